r"""Vocabulary-parallel fused linear cross-entropy over ``torch.distributed``.

Tensor parallelism splits the head weight over the vocabulary: rank r holds the rows
``[start_r, start_r + V_r)`` of W (and of the bias), every rank the same hidden states and
targets. Each rank runs the ordinary chunk sweep (:class:`~._linear_sweep.Sweep`) over its
slice and keeps, per token, the statistics of its slice: the log-sum-exp :math:`L_r`, the
target's negative log-probability within the slice (on the rank holding the target), the
smoothing sum :math:`\sum_{c \in r} w_c (L_r - z_c)`, the entropy :math:`H_r` of the slice's
softmax and its top logit. They combine exactly, with :math:`M = \max_r L_r` and
:math:`\pi_r = e^{L_r - M}`, :math:`S = \sum_r \pi_r`:

.. math::

    \operatorname{LSE} = M + \log S, \qquad
    -\log p_t = \log S + (M - z_t), \qquad
    \sum_c w_c (\operatorname{LSE} - z_c) = w_\Sigma \log S
        + \sum_r \Big[\sum_{c \in r} w_c (L_r - z_c) + w_{\Sigma r} (M - L_r)\Big],

    H = \log S + \frac{1}{S} \sum_r \pi_r (H_r + M - L_r),

every term a bounded difference (no cancellation beyond the single-process sweep's). The
loss rows then come from the same rule (:func:`~crossent._semantics.softmax_ce_loss`) as the
single-process call. The backward sweeps each slice again from the global log-sum-exp
(four products per chunk: the gradients cannot be formed before the global statistics
exist), writes the slice's weight and bias gradients locally and sums the hidden gradient.

Collectives (all ``all_reduce``, counted by the tests), per call:

* forward: 1 SUM of the layout (4 integers per rank: where each slice starts, its size, the
  number of targets and a checksum of them, which must agree; read on the host, so one
  synchronization on CUDA), 1 MAX of the per-token
  :math:`L_r` (and top logit), 1 SUM of the per-token pack :math:`[\pi_r, M - z_t,
  \text{smoothing}, \text{entropy}]`; plus 1 MIN of the first index of the maximum when
  "prediction", "correct" or "accuracy" is asked for;
* backward: 1 SUM of the (N, D) hidden gradient (none when hidden needs no gradient).

Per token that is at most 2 + 4 + 1 numbers in the forward and D in the backward; nothing of
size N x V is ever communicated or held.

Examples
--------
One process holding the whole vocabulary is the smallest group (with several, each rank
passes its slice of ``w`` and where it starts):

>>> import torch
>>> import torch.distributed as dist
>>> from crossent.torch import linear_cross_entropy
>>> dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)
>>> g = torch.Generator().manual_seed(0)
>>> h, w = torch.randn(5, 4, generator=g), torch.randn(10, 4, generator=g)
>>> y = torch.tensor([1, 3, 5, -100, 9])
>>> loss = linear_cross_entropy(h, w, y, process_group=dist.group.WORLD, vocab_start=0)
>>> bool(torch.allclose(loss, linear_cross_entropy(h, w, y)))
True
>>> dist.destroy_process_group()
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from .._semantics import softmax_ce_loss
from ..losses._problem import index_target_data
from ._functions import _xp
from ._linear_sweep import Options, Result, Sweep, Targets

__all__ = [
    "Shard", "from_dtensor", "global_count", "is_dtensor", "layout", "shard_targets",
    "vocab_parallel_sweep",
]  # fmt: skip


@dataclass(frozen=True)
class Shard:
    """Where this rank's slice of the vocabulary lies: rows ``[start, stop)`` of ``vocab``."""

    group: Any
    start: int
    stop: int
    vocab: int
    argmax: bool = False  # whether the first index of the maximum is combined (one more MIN)


def _dist() -> Any:
    import torch.distributed as dist

    if not dist.is_available() or not dist.is_initialized():
        raise RuntimeError(
            "process_group= needs an initialized torch.distributed process group "
            "(torch.distributed.init_process_group)"
        )
    return dist


def layout(
    weight: torch.Tensor,
    targets: torch.Tensor,
    group: Any,
    vocab_start: int | None,
    *,
    split_tokens: bool = False,
) -> Shard | None:
    """Exchange every rank's (start, size) in one all_reduce and check that they tile [0, V).

    The same all_reduce carries the number of targets and a checksum of them: the
    vocabulary-parallel call needs the same tokens on every rank. Hidden states split over the
    ranks (data parallelism) return None with ``split_tokens`` (a DTensor weight: FSDP2's,
    read outside its module's forward, which the caller gathers) and raise otherwise.
    """
    if vocab_start is None or group is None:
        raise ValueError(
            "the vocabulary-parallel call needs both process_group= and vocab_start= "
            f"(got process_group={group!r}, vocab_start={vocab_start!r})"
        )
    if isinstance(vocab_start, bool) or not isinstance(vocab_start, int) or vocab_start < 0:
        raise ValueError(f"vocab_start must be an integer >= 0, got {vocab_start!r}")
    dist = _dist()
    world, rank = dist.get_world_size(group), dist.get_rank(group)
    table = torch.zeros(world, 4, dtype=torch.int64, device=weight.device)
    table[rank, 0], table[rank, 1], table[rank, 2] = vocab_start, weight.shape[0], targets.numel()
    # sum_i (i + 1) y_i, wrapping around in int64 alike on every rank
    flat = targets.reshape(-1).long()
    table[rank, 3] = (flat * torch.arange(1, flat.numel() + 1, device=flat.device)).sum()
    dist.all_reduce(table, op=dist.ReduceOp.SUM, group=group)
    rows = table.tolist()
    for r, row in enumerate(rows):
        if row[2:] != rows[0][2:]:
            if split_tokens:
                return None
            raise ValueError(
                "the vocabulary-parallel call needs the same hidden states and targets on every "
                f"rank of process_group; rank {r} holds {row[2]} targets with checksum {row[3]}, "
                f"rank 0 {rows[0][2]} with checksum {rows[0][3]} (tokens split over the ranks: "
                "pass the whole weight, e.g. an FSDP2 weight inside the sharded module's "
                "forward or after module.unshard(), and mean_group= for the global mean)"
            )
    slices = sorted((int(s), int(n), r) for r, (s, n, _, _) in enumerate(rows))
    end = 0
    for start, size, r in slices:
        if start != end:
            raise ValueError(
                "the ranks' vocabulary slices must tile [0, V) without gaps or overlaps; "
                f"rank {r} starts at {start} where the previous slice ends at {end} "
                f"(start, size per rank: {[row[:2] for row in rows]})"
            )
        end = start + size
    return Shard(group, vocab_start, vocab_start + weight.shape[0], end)


def is_dtensor(x: Any) -> bool:
    """Whether ``x`` is a ``torch.distributed.tensor.DTensor``."""
    try:
        from torch.distributed.tensor import DTensor
    except ImportError:  # pragma: no cover - a torch built without distributed
        return False
    return isinstance(x, DTensor)


def from_dtensor(
    hidden: Any, weight: Any, bias: Any, process_group: Any, vocab_start: int | None
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, Any, int | None]:
    """The local tensors and the layout of a DTensor head (``weight`` is a DTensor).

    ``Shard(0)`` over a 1-D mesh (what ``ColwiseParallel`` makes of a head): the local rows,
    the mesh's process group and the global index of the first local row, so the call takes
    the vocabulary-parallel path. ``Replicate()``: the local (whole) weight, an ordinary call.
    A DTensor ``hidden`` is first made replicated over the mesh (an all-gather of the N x D
    hidden states, for sequence parallelism), a plain tensor is taken as replicated already.
    Gradients flow back through ``to_local``: the weight's as a DTensor of the same layout.
    """
    from torch.distributed.tensor import Replicate, Shard

    mesh, placements = weight.device_mesh, tuple(weight.placements)
    if process_group is not None or vocab_start is not None:
        raise ValueError(
            "a DTensor weight carries its own layout: pass neither process_group= nor "
            f"vocab_start= (got {process_group!r}, {vocab_start!r})"
        )
    if mesh.ndim != 1 or placements not in ((Shard(0),), (Replicate(),)):
        raise ValueError(
            "a DTensor weight must be sharded over the vocabulary (Shard(0)) or replicated on a "
            f"1-D device mesh; got placements {placements} on a {mesh.ndim}-D mesh"
        )

    def local(x: Any, name: str, want: tuple) -> Any:
        if x is None or not is_dtensor(x):
            return x
        if x.device_mesh != mesh:
            raise ValueError(f"{name} is a DTensor on another device mesh than weight's")
        return x.redistribute(mesh, want).to_local()

    hidden = local(hidden, "hidden", (Replicate(),))
    bias = local(bias, "bias", placements)
    if placements == (Replicate(),):
        return hidden, weight.to_local(), bias, None, None
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    _, offset = compute_local_shape_and_global_offset(weight.shape, mesh, placements)
    return hidden, weight.to_local(), bias, mesh.get_group(), int(offset[0])


def gather_head(weight: Any, bias: Any) -> tuple[torch.Tensor, torch.Tensor | None]:
    """The whole head of a vocabulary-sharded DTensor weight (and bias) whose ranks hold
    different tokens: FSDP2's sharded parameter, read outside its module's forward.

    All-gathered for the call (the whole weight on every rank while it lasts, as FSDP2's own
    forward holds it); the gradient goes back reduce-scattered and averaged over the ranks, as
    FSDP2 treats every other parameter (its default gradient divide factor), a DTensor of the
    parameter's layout.
    """
    from torch.distributed.tensor import Partial, Replicate

    def whole(x: Any) -> Any:
        if x is None or not is_dtensor(x):
            return x
        replicated = x.redistribute(x.device_mesh, [Replicate()])
        return replicated.to_local(grad_placements=[Partial("avg")])

    return whole(weight), whole(bias)


def shard_targets(
    targets: torch.Tensor,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    dtype: torch.dtype,
    shard: Shard,
    *,
    forward: bool,
) -> Targets:
    """The sweep's targets for this rank's slice: ``w_t`` and ``valid`` of the whole vocabulary
    (``class_weight`` is the full (V,) vector on every rank), the target's index in the slice
    with ``here``, the slice of the class weights, and their sum over the slice (``forward``,
    where the sweep sums the slice) or over the whole vocabulary (the gradient's coefficient).
    """
    tgt = Targets(targets, class_weight, ignore_index, dtype, shard.vocab)
    local = tgt.index - shard.start
    size = shard.stop - shard.start
    tgt.here = tgt.valid & (local >= 0) & (local < size)
    tgt.index = torch.where(tgt.here, local, 0)
    if tgt.class_weight is not None:
        tgt.class_weight = tgt.class_weight[shard.start : shard.stop]
    if forward:
        cw = tgt.class_weight
        tgt.w_sum = float(size) if cw is None else cw.sum()
    return tgt


def vocab_parallel_sweep(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    tgt: Targets,
    opts: Options,
    shard: Shard,
    w_sum: torch.Tensor | float,
) -> Result:
    """The forward statistics of the whole vocabulary (lse, loss rows and ``opts.want``) from
    this rank's sweep over its slice and two or three all_reduce calls (module docstring).
    ``tgt`` is :func:`shard_targets` (forward) and ``w_sum`` the class weights' global sum."""
    dist = _dist()
    rule, xp = opts.rule, _xp()
    local_opts = Options(
        rule=rule, ignore_index=opts.ignore_index, reduction=opts.reduction, chunk=opts.chunk,
        precompute=False, temperature=opts.temperature,
        want=opts.want | {"logprob", "smooth"},
    )  # fmt: skip
    part = Sweep(hidden, weight, bias, tgt, local_opts).run(
        lse_in=None, up=None, need_h=False, need_w=False, need_b=False
    )
    assert part.logprob is not None and tgt.here is not None
    top = part.top_logit
    high = part.lse.clone() if top is None else torch.stack([part.lse, top])
    dist.all_reduce(high, op=dist.ReduceOp.MAX, group=shard.group)
    m = high if top is None else high[0]
    m = torch.where(torch.isfinite(m), m, 0)  # a row without a finite LSE: shift 0
    gap = m - part.lse  # >= 0
    pi = torch.exp(-gap)
    # M - z_t on the rank holding the target: (M - L_r) + (L_r - z_t)
    pack = [pi, torch.where(tgt.here, gap - part.logprob, 0)]
    if part.smooth is not None:
        pack.append(part.smooth + tgt.w_sum * gap)
    if part.entropy is not None:
        pack.append(pi * (part.entropy + gap))
    sums = torch.stack(pack)
    dist.all_reduce(sums, op=dist.ReduceOp.SUM, group=shard.group)
    log_s = sums[0].log()
    res = Result(lse=m + log_s)
    nll_t = log_s + sums[1]
    smooth_nll = None if part.smooth is None else w_sum * log_s + sums[2]
    res.loss = softmax_ce_loss(
        xp, rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=res.lse, w_t=tgt.w_t, valid=tgt.valid
    )
    if "logprob" in opts.want:
        res.logprob = torch.where(tgt.valid, -nll_t, 0)
    if part.entropy is not None:
        res.entropy = log_s + sums[-1] / sums[0]
    if top is not None:
        res.top_logit = high[1]
        assert part.argmax is not None
        if shard.argmax:
            # the first class holding the global maximum: the smallest index among the ranks
            # that hold it (a tie across ranks included)
            first = torch.where(top == res.top_logit, part.argmax + shard.start, shard.vocab)
            dist.all_reduce(first, op=dist.ReduceOp.MIN, group=shard.group)
            res.argmax = first
    return res


def all_reduce_sum(tensor: torch.Tensor, shard: Shard) -> torch.Tensor:
    """Sum a partial gradient over the ranks, in place."""
    dist = _dist()
    dist.all_reduce(tensor, op=dist.ReduceOp.SUM, group=shard.group)
    return tensor


def global_count(
    targets: torch.Tensor,
    class_weight: torch.Tensor | None,
    ignore_index: int,
    dtype: torch.dtype,
    group: Any,
) -> torch.Tensor:
    """The mean's denominator over every rank of ``group``: :math:`\\sum_i w_{y_i}` over the
    non-ignored targets of all ranks, one all_reduce of a 0-d tensor (never read on the host).
    """
    dist = _dist()
    data = index_target_data(
        _xp(), targets, None if class_weight is None else class_weight.to(dtype), ignore_index,
        dtype,
    )  # fmt: skip
    count = data.w_t.sum()
    dist.all_reduce(count, op=dist.ReduceOp.SUM, group=group)
    return count
