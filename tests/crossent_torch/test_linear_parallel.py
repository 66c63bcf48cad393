"""The vocabulary-parallel fused linear cross-entropy (``process_group=``, ``vocab_start=``) and
the data-parallel global mean (``mean_group=``) over torch.distributed's gloo backend, in 2 and
3 local processes with uneven vocabulary slices (ranks not in slice order), and a DTensor head
sharded over the vocabulary, each rank against the float64 reference of the materialized
logits on the whole weight (linear_support.py).

Process start-up is the cost (each child imports torch), so one spawn per world size runs every
case; a failing case raises in its child and torch.multiprocessing.spawn re-raises it here with
the child's traceback. Each call counts the all_reduce calls of its forward and of its backward
(torch.distributed.all_reduce wrapped in the child) and the size of what they carry.
"""

from __future__ import annotations

import os
import sys

import pytest

torch = pytest.importorskip("torch")
dist = pytest.importorskip("torch.distributed")
mp = pytest.importorskip("torch.multiprocessing")

from linear_support import F64, V, assert_grads, inputs, reference, sweep_module  # noqa: E402

from crossent.torch import LinearCrossEntropyLoss, linear_cross_entropy  # noqa: E402

if not dist.is_available():  # pragma: no cover
    pytest.skip("torch.distributed is not available", allow_module_level=True)

ALL = ("logprob", "entropy", "prediction", "correct", "accuracy", "confidence", "lse", "z_loss")

# The vocabulary slice [start, stop) of each rank: uneven, and not in rank order for 3 ranks.
SLICES = {2: [(0, 15), (15, V)], 3: [(20, V), (0, 5), (5, 20)]}

# (options, reduction, upstream gradient of a reduced loss or None, logits scale, outputs)
CASES = [
    ({}, "mean", 1.0, 1.0, None),
    ({"class_weight": True, "label_smoothing": 0.1, "z_loss": 1e-2, "temperature": 0.8}, "sum",
     2.5, 1.0, None),
    ({"softcap": 3.0, "z_loss": 1e-3, "shift": True, "sample_weight": True}, "none", None, 1.0,
     None),
    ({"class_weight": True, "softcap": 30.0, "temperature": 1.7, "shift": True,
      "sample_weight": True, "label_smoothing": 0.2, "smoothing_convention": "others"}, "mean",
     -0.7, 1.0, ALL),
    ({"z_loss": 1e-4, "label_smoothing": 0.1}, "none", None, 60.0, ALL),  # the overflow retry
    ({"normalizer": 5.0, "ignore_index": 3, "bias": False}, "mean", 1.0, 1.0, ("lse", "z_loss")),
    ({"label_smoothing": 0.05}, "mean", 1.0, 1.0, ("confidence", "entropy")),
]  # fmt: skip


class Counter:
    """torch.distributed.all_reduce wrapped: each call's op and number of elements."""

    def __init__(self):
        self.calls = []
        self._all_reduce = dist.all_reduce

    def __enter__(self):
        def counted(tensor, op=dist.ReduceOp.SUM, group=None, async_op=False):
            self.calls.append((str(op).rsplit(".", 1)[-1], tensor.numel()))
            return self._all_reduce(tensor, op=op, group=group, async_op=async_op)

        dist.all_reduce = counted
        return self

    def __exit__(self, *exc):
        dist.all_reduce = self._all_reduce

    def take(self):
        calls, self.calls = self.calls, []
        return calls


def _leaf(t, rows=None):
    if t is None:
        return None
    t = t.detach()
    return (t if rows is None else t[rows[0] : rows[1]]).clone().requires_grad_()


def _vocab_parallel_case(rank, world, seed, case, counter):
    options, reduction, upstream, scale, outputs = case
    start, stop = SLICES[world][rank]
    opts = dict(options)
    use_bias = opts.pop("bias", True)
    ours, theirs, y, gen = inputs(seed, scale=scale, bias=use_bias)
    ignore = opts.get("ignore_index", -100)
    y[y == -100] = ignore
    if outputs is not None and "prediction" in outputs:
        # a tie of the top logit across two ranks' slices at token 0: the first class wins
        for t in (ours, theirs):
            with torch.no_grad():
                t[1][[2, 30]] = 4.0 * t[0][0, 0] / t[0][0, 0].norm()
                if t[2] is not None:
                    t[2][[2, 30]] = 10.0
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2 if opts.pop("class_weight", False) else None
    s = torch.randn(y.shape, generator=gen, dtype=F64) if opts.pop("sample_weight", False) else None
    common = {"class_weight": cw, "sample_weight": s, "reduction": reduction}
    h, w, b = _leaf(ours[0]), _leaf(ours[1], (start, stop)), _leaf(ours[2], (start, stop))
    f32 = {k: v if not isinstance(v, torch.Tensor) else v.float() for k, v in common.items()}
    got = linear_cross_entropy(
        h, w, y, bias=b, outputs=outputs, chunk_size=4, process_group=dist.group.WORLD,
        vocab_start=start, entropy_grad=outputs is not None and "entropy" in outputs, **f32,
        **opts,
    )  # fmt: skip
    forward = counter.take()
    ref_opts = {k: v for k, v in opts.items() if k != "smoothing_convention"}
    smoothing = ref_opts.pop("label_smoothing", 0.0)
    if opts.get("smoothing_convention") == "others":  # as e' = e V / (V - 1) uniform
        smoothing = smoothing * V / (V - 1)
    want = reference(
        theirs[0], theirs[1], y, bias=theirs[2], smoothing=smoothing, **common, **ref_opts
    )
    loss = got if outputs is None else got.loss
    tol = 1e-5 * scale
    torch.testing.assert_close(loss.to(F64), want["loss"].detach(), rtol=tol, atol=tol)
    ours_obj, want_obj = loss.to(F64), want["loss"]
    if reduction == "none":
        u = torch.randn(loss.shape, generator=gen, dtype=F64)
        ours_obj, want_obj = (ours_obj * u).sum(), (want_obj * u).sum()
    else:
        ours_obj, want_obj = ours_obj * upstream, want_obj * upstream
    if outputs is not None:
        for name in ("z_loss", "logprob", "entropy", "confidence", "lse", "accuracy"):
            if name in outputs:
                value = getattr(got, name).to(F64)
                torch.testing.assert_close(value, want[name].detach(), rtol=tol, atol=tol)
        for name in ("prediction", "correct"):
            if name in outputs:
                assert torch.equal(getattr(got, name), want[name]), name
        if "logprob" in outputs:  # the log-probability and the entropy are differentiable
            u = torch.randn(want["logprob"].shape, generator=gen, dtype=F64)
            ours_obj = ours_obj + (got.logprob.to(F64) * u).sum() + (got.entropy * u).sum()
            want_obj = want_obj + (want["logprob"] * u).sum() + (want["entropy"] * u).sum()
    ours_obj.backward()
    backward = counter.take()
    want_obj.backward()
    rows = [theirs[0].grad] + [None if t is None else t.grad[start:stop] for t in theirs[1:]]
    # logits of order 1e3 round at 1e-4 in float32 (the single-process call is off by 2.5e-5)
    assert_grads([h, w, b], [_Grad(t) for t in rows], atol=2e-5 * max(1.0, scale / 10))
    # the collectives: layout, MAX, SUM (and MIN of the argmax); the hidden gradient's SUM
    argmax = outputs is not None and bool({"prediction", "correct", "accuracy"} & set(outputs))
    assert [op for op, _ in forward] == ["SUM", "MAX", "SUM"] + ["MIN"] * argmax, forward
    assert [op for op, _ in backward] == ["SUM"], backward
    n = y.numel()
    assert max(size for _, size in forward + backward) <= n * max(4, h.shape[-1]) < n * V


class _Grad:
    """A stand-in leaf whose .grad is a given tensor (the reference's rows of a slice)."""

    def __init__(self, grad):
        self.grad = grad
        self.dtype = None if grad is None else grad.dtype


def _data_parallel_case(rank, world, counter):
    """mean_group=: each rank scores a different, uneven part of the tokens with the whole
    weight; the ranks' losses add up to the single-process mean and so do the gradients."""
    ours, theirs, y, gen = inputs(70, shape=(1, 40, 8))
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2
    cuts = [0, 7, 40] if world == 2 else [0, 25, 26, 40]
    r0, r1 = cuts[rank], cuts[rank + 1]
    h, w, b = _leaf(ours[0][:, r0:r1]), _leaf(ours[1]), _leaf(ours[2])
    got = linear_cross_entropy(
        h, w, y[:, r0:r1], bias=b, class_weight=cw.float(), label_smoothing=0.1, z_loss=1e-3,
        mean_group=dist.group.WORLD, chunk_size=3,
    )  # fmt: skip
    assert [op for op, _ in counter.take()] == ["SUM"]  # the count, a 0-d tensor
    got.backward()
    want = reference(*theirs[:2], y, bias=theirs[2], class_weight=cw, smoothing=0.1, z_loss=1e-3)
    want["loss"].backward()
    total = got.detach().clone()
    dist.all_reduce(total)
    torch.testing.assert_close(total.to(F64), want["loss"].detach(), rtol=1e-5, atol=1e-6)
    grads = [w.grad.clone(), b.grad.clone()]
    for g in grads:
        dist.all_reduce(g)
    scale = theirs[0].grad.abs().max()
    torch.testing.assert_close(h.grad.to(F64) / scale, theirs[0].grad[:, r0:r1] / scale,
                               rtol=0, atol=1e-5)  # fmt: skip
    for g, t in zip(grads, theirs[1:], strict=True):
        torch.testing.assert_close(g.to(F64), t.grad, rtol=1e-5, atol=1e-6)
    counter.take()


def _module_case(rank, world, counter):
    """LinearCrossEntropyLoss with process_group= / vocab_start= and with mean_group= gives
    the function's values on each rank (the options reach the call)."""
    start, stop = SLICES[world][rank]
    ours, _, y, _ = inputs(71, bias=False)
    h, w = _leaf(ours[0]), _leaf(ours[1], (start, stop))
    group = dist.group.WORLD
    module = LinearCrossEntropyLoss(process_group=group, vocab_start=start, chunk_size=4)
    assert f"vocab_start={start}" in repr(module)
    got = module(h, w, y)
    want = linear_cross_entropy(h, w, y, process_group=group, vocab_start=start, chunk_size=4)
    assert torch.equal(got, want)
    whole = _leaf(ours[1])
    got = LinearCrossEntropyLoss(mean_group=group)(h, whole, y)
    assert torch.equal(got, linear_cross_entropy(h, whole, y, mean_group=group))
    counter.take()


def _data_parallel_soft_case(rank, world, counter):
    """mean_group= with probability targets: each rank's share of the mean over all rows, the
    shares adding up to F.linear_cross_entropy's mean (loss and weight gradient)."""
    ours, theirs, _, gen = inputs(71, shape=(40, 8))
    p = torch.softmax(2 * torch.randn(40, V, generator=gen, dtype=F64), -1)
    cuts = [0, 7, 40] if world == 2 else [0, 25, 26, 40]
    r0, r1 = cuts[rank], cuts[rank + 1]
    h, w = _leaf(ours[0][r0:r1]), _leaf(ours[1])
    got = linear_cross_entropy(h, w, p[r0:r1].float(), label_smoothing=0.1,
                               mean_group=dist.group.WORLD, chunk_size=3)  # fmt: skip
    assert [op for op, _ in counter.take()] == ["SUM"]  # the count of rows, a 0-d tensor
    got.backward()
    want = torch.nn.functional.linear_cross_entropy(
        *theirs[:2], p.float().to(F64), label_smoothing=0.1
    )
    want.backward()
    total, gw = got.detach().clone(), w.grad.clone()
    dist.all_reduce(total)
    dist.all_reduce(gw)
    torch.testing.assert_close(total.to(F64), want.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(gw.to(F64), theirs[1].grad, rtol=1e-5, atol=1e-6)
    counter.take()


def _dtensor_case(rank, world, counter):
    """A DTensor head sharded over the vocabulary (Shard(0), torch's uneven chunks) takes the
    vocabulary-parallel path by itself, with plain (replicated) hidden states or DTensor ones
    split over the sequence (sequence parallelism)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard, distribute_tensor

    mesh = init_device_mesh("cpu", (world,))
    for seq_parallel in (False, True):
        ours, theirs, y, gen = inputs(75)
        cw = torch.rand(V, generator=gen, dtype=F64) + 0.2
        w = distribute_tensor(ours[1].detach(), mesh, [Shard(0)]).requires_grad_()
        b = distribute_tensor(ours[2].detach(), mesh, [Shard(0)]).requires_grad_()
        h = ours[0].detach().clone()
        if seq_parallel:
            h = distribute_tensor(h, mesh, [Shard(1)])
        h.requires_grad_()
        counter.take()
        got = linear_cross_entropy(h, w, y, bias=b, class_weight=cw.float(), z_loss=1e-3,
                                   label_smoothing=0.1, chunk_size=3)  # fmt: skip
        calls = counter.take()
        assert [op for op, _ in calls] == ["SUM", "MAX", "SUM"], calls
        assert not isinstance(got, type(w))
        got.backward()
        want = reference(
            *theirs[:2], y, bias=theirs[2], class_weight=cw, smoothing=0.1, z_loss=1e-3
        )
        want["loss"].backward()
        torch.testing.assert_close(got.to(F64), want["loss"].detach(), rtol=1e-5, atol=1e-6)
        assert w.grad.placements == (Shard(0),)
        gh = h.grad.redistribute(mesh, [Replicate()]).to_local() if seq_parallel else h.grad
        got_grads = [gh, w.grad.full_tensor(), b.grad.full_tensor()]
        assert_grads([_Grad(g) for g in got_grads], theirs)


def _fsdp_case(rank, world, counter):
    """An FSDP2-sharded head (fully_shard: a Shard(0) DTensor parameter) called directly, each
    rank with its own tokens: gathered for the call, the loss each rank's own, the weight and
    bias gradients reduce-scattered and averaged over the ranks (FSDP2's rule)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard
    from torch.distributed.tensor import Shard

    mesh = init_device_mesh("cpu", (world,))
    ours, theirs, y, _ = inputs(77, shape=(1, 40, 8))
    cuts = [0, 7, 40] if world == 2 else [0, 25, 26, 40]
    head = torch.nn.Linear(8, V)
    with torch.no_grad():
        head.weight.copy_(ours[1])
        head.bias.copy_(ours[2])
    fully_shard(head, mesh=mesh)
    assert head.weight.placements == (Shard(0),)
    r0, r1 = cuts[rank], cuts[rank + 1]
    h = _leaf(ours[0][:, r0:r1])
    counter.take()
    got = linear_cross_entropy(h, head.weight, y[:, r0:r1], bias=head.bias, z_loss=1e-3,
                               label_smoothing=0.1, chunk_size=3)  # fmt: skip
    calls = [op for op, _ in counter.take()]
    assert calls == ["SUM"], calls  # the layout's all_reduce (the gather is no all_reduce)
    got.backward()
    mean = [torch.zeros_like(theirs[1]), torch.zeros_like(theirs[2])]
    for r in range(world):
        a, b = cuts[r], cuts[r + 1]
        hr = theirs[0][:, a:b].detach().clone().requires_grad_()
        wr, br = (t.detach().clone().requires_grad_() for t in theirs[1:])
        want = reference(hr, wr, y[:, a:b], bias=br, smoothing=0.1, z_loss=1e-3)
        want["loss"].backward()
        mean = [m + g / world for m, g in zip(mean, (wr.grad, br.grad), strict=True)]
        if r == rank:
            torch.testing.assert_close(got.to(F64), want["loss"].detach(), rtol=1e-5, atol=1e-6)
            torch.testing.assert_close(h.grad.to(F64), hr.grad, rtol=1e-5, atol=1e-6)
    assert head.weight.grad.placements == (Shard(0),)
    for param, want_grad in zip((head.weight, head.bias), mean, strict=True):
        torch.testing.assert_close(param.grad.full_tensor().to(F64), want_grad,
                                   rtol=1e-5, atol=1e-6)  # fmt: skip
    counter.take()


def _errors(rank, world):
    with pytest.raises(ValueError, match="needs both process_group= and vocab_start="):
        linear_cross_entropy(torch.zeros(4, 8), torch.zeros(5, 8), torch.zeros(4, dtype=torch.long),
                             process_group=dist.group.WORLD)  # fmt: skip
    # overlapping slices: every rank sees the same table and raises
    with pytest.raises(ValueError, match=r"tile \[0, V\).*rank \d starts at"):
        linear_cross_entropy(torch.zeros(4, 8), torch.zeros(5, 8), torch.zeros(4, dtype=torch.long),
                             process_group=dist.group.WORLD, vocab_start=2 * rank)  # fmt: skip
    # tokens split over the ranks (data parallelism) cannot take the vocabulary-parallel path
    with pytest.raises(ValueError, match=r"same hidden states and targets on every rank.*rank 1"):
        linear_cross_entropy(torch.zeros(4, 8), torch.zeros(5, 8), torch.arange(4) + rank,
                             process_group=dist.group.WORLD, vocab_start=5 * rank)  # fmt: skip
    with pytest.raises(ValueError, match=r"process_group=.* not supported with probability"):
        linear_cross_entropy(torch.zeros(4, 8), torch.zeros(5, 8), torch.full((4, 5), 0.2),
                             process_group=dist.group.WORLD, vocab_start=5 * rank)  # fmt: skip
    with pytest.raises(ValueError, match="mean_group= sets the denominator"):
        linear_cross_entropy(torch.zeros(4, 8), torch.zeros(5, 8), torch.zeros(4, dtype=torch.long),
                             reduction="sum", mean_group=dist.group.WORLD)  # fmt: skip


def _worker(rank, world, store_path):
    torch.set_num_threads(1)
    store = dist.FileStore(store_path, world)
    dist.init_process_group("gloo", store=store, rank=rank, world_size=world)
    try:
        with Counter() as counter:
            for i, case in enumerate(CASES):
                try:
                    _vocab_parallel_case(rank, world, 80 + i, case, counter)
                except AssertionError as error:
                    error.add_note(f"rank {rank} of {world}, CASES[{i}] = {case}")
                    raise
            # the sweep accelerators take (row-max shift, gradient written in the chunk)
            sweep = sweep_module()
            shortcuts = sweep._host_shortcuts
            sweep._host_shortcuts = lambda hidden: False
            try:
                for i in (1, 3):
                    _vocab_parallel_case(rank, world, 90 + i, CASES[i], counter)
            finally:
                sweep._host_shortcuts = shortcuts
            _data_parallel_case(rank, world, counter)
            _module_case(rank, world, counter)
            _data_parallel_soft_case(rank, world, counter)
            _dtensor_case(rank, world, counter)
            _fsdp_case(rank, world, counter)
        _errors(rank, world)
        # every rank done before any leaves: a rank that exits while a peer is still in a
        # collective aborts it
        dist.barrier()
    except BaseException:
        dist.destroy_process_group()
        raise
    # Every check passed. gloo's teardown (destroy_process_group, or the interpreter's exit
    # with the group alive) aborted twice under load after that point ("terminate called
    # without an active exception", SIGABRT): a rank that passed leaves without it.
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


# 16 s and 25 s measured at a load average of 12 on 2 cores (mostly process start-up)
@pytest.mark.parametrize("world", [2, pytest.param(3, marks=pytest.mark.slow)])
def test_vocab_parallel_and_global_mean_match_single_process(world, tmp_path):
    mp.spawn(_worker, args=(world, str(tmp_path / "store")), nprocs=world, join=True)
