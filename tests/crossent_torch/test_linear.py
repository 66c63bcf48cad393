"""crossent.torch.linear_cross_entropy against F.cross_entropy(hidden @ weight.T + bias), on CPU.

Loss and the gradients of hidden, weight and bias over the whole option grid (small shapes,
several chunks with a ragged last one), against a float64 reference; both smoothing
conventions; bfloat16/float16; the overflow retry of the CPU sweep's target-logit shift; the
all-ignored batch; bit-identical repeats; the memory check (a subprocess whose peak RSS would
show the N x V logits); and the error messages.
"""

from __future__ import annotations

import itertools
import json
import os
import subprocess
import sys
import textwrap

import pytest

torch = pytest.importorskip("torch")


from linear_support import PEAK_PROBE, inputs  # noqa: E402

from crossent._linear_common import MIN_CHUNK_ROWS  # noqa: E402
from crossent.torch import LinearCrossEntropyLoss, linear_cross_entropy  # noqa: E402
from crossent.torch._linear import CHUNK_BYTES, default_chunk_size  # noqa: E402

_linear = sys.modules["crossent.torch._linear"]
_sweep = sys.modules["crossent.torch._linear_sweep"]
F = torch.nn.functional

F64 = torch.float64
B, T, D, V = 2, 7, 8, 37


def reference(h, w, y, *, bias=None, class_weight=None, smoothing=0.0, z_loss=0.0,
              softcap=None, reduction="mean", shift=False, ignore_index=-100,
              convention="uniform"):  # fmt: skip
    """F.cross_entropy of the materialized logits, plus z_loss * w[y] * lse^2.

    With ``convention="others"``: 1 - e on the target, e / (V - 1) on every other class (the
    class weights applied to each term), written out with log_softmax."""
    z = h @ w.T
    if bias is not None:
        z = z + bias
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    if shift:  # True is 1; an integer k: position t scores target t + k
        z, y = z[..., : -int(shift), :], y[..., int(shift) :]
    batch = y.shape
    z, y = z.reshape(-1, z.shape[-1]), y.reshape(-1)
    valid = y != ignore_index
    t = torch.where(valid, y, 0)
    if convention == "uniform":
        per = F.cross_entropy(
            z, y, weight=class_weight, ignore_index=ignore_index, reduction="none",
            label_smoothing=smoothing,
        )  # fmt: skip
    else:
        vocab = z.shape[-1]
        cw = class_weight if class_weight is not None else torch.ones(vocab, dtype=z.dtype)
        q = (1 - smoothing) * F.one_hot(t, vocab) + smoothing / (vocab - 1) * (
            1 - F.one_hot(t, vocab)
        )
        per = torch.where(valid, -(cw * q * torch.log_softmax(z, -1)).sum(-1), 0)
    w_t = (class_weight[t] if class_weight is not None else torch.ones_like(per)) * valid
    per = per + z_loss * w_t * torch.logsumexp(z, 1) ** 2
    if reduction == "none":
        return per.reshape(batch)
    return per.sum() if reduction == "sum" else per.sum() / w_t.sum()


def _check(out, ref, ours, theirs, gen, *, rtol=1e-5, atol=1e-6):
    assert out.shape == ref.shape
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=rtol, atol=atol)
    u = torch.randn(ref.shape, generator=gen, dtype=F64)
    (out.to(F64) * u).sum().backward()
    (ref * u).sum().backward()
    for a, b in zip(ours, theirs, strict=True):
        if a is not None:
            assert a.grad.dtype == a.dtype
            scale = b.grad.abs().max().clamp_min(1e-3)
            torch.testing.assert_close(a.grad.to(F64) / scale, b.grad / scale, rtol=0, atol=rtol)


@pytest.fixture(params=["cpu", "device"])
def path(request, monkeypatch):
    """The CPU sweep (target-logit shift, factored gradient) or the one accelerators take."""
    if request.param == "device":
        monkeypatch.setattr(_sweep, "_host_shortcuts", lambda hidden: False)
    return request.param


GRID = list(itertools.product([0.0, 0.1], [0.0, 1e-2], [None, 4.0], [False, True], [False, True]))


@pytest.mark.parametrize("shift", [False, True], ids=["noshift", "shift"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    ("smoothing", "z_loss", "softcap", "weighted", "bias"),
    GRID,
    ids=[f"e{e}-z{z}-cap{c}-w{int(w)}-b{int(b)}" for e, z, c, w, b in GRID],
)
def test_matches_materialized_cross_entropy(
    smoothing, z_loss, softcap, weighted, bias, reduction, shift, path
):
    ours, theirs, y, gen = inputs(10, bias=bias)
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2 if weighted else None
    opts = {"z_loss": z_loss, "softcap": softcap, "reduction": reduction, "shift": shift}
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], class_weight=None if cw is None else cw.float(),
        label_smoothing=smoothing, chunk_size=4, **opts,
    )  # fmt: skip
    ref = reference(
        theirs[0], theirs[1], y, bias=theirs[2], class_weight=cw, smoothing=smoothing, **opts
    )
    _check(out, ref, ours, theirs, gen)


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_recompute_path_matches(reduction, path, monkeypatch):
    """Gradients recomputed in backward (the path of reduction='none') for mean and sum too."""
    monkeypatch.setattr(_linear, "PRECOMPUTE", False)
    sweeps = []
    run = _sweep.Sweep.run

    def spy(self, **kwargs):
        sweeps.append("backward" if kwargs["lse_in"] is not None else "forward")
        return run(self, **kwargs)

    monkeypatch.setattr(_sweep.Sweep, "run", spy)
    ours, theirs, y, gen = inputs(11, bias=True)
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], label_smoothing=0.1, z_loss=1e-3, softcap=3.0,
        reduction=reduction, chunk_size=3,
    )  # fmt: skip
    assert sweeps == ["forward"]
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], smoothing=0.1, z_loss=1e-3,
                    softcap=3.0, reduction=reduction)  # fmt: skip
    _check(out, ref, ours, theirs, gen)
    assert sweeps == ["forward", "backward"]  # the gradients came from the recomputing sweep


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_others_smoothing_convention(weighted, reduction, path):
    """smoothing_convention="others" (1 - e on the target, e/(V-1) elsewhere), with z-loss and
    a bias, against the materialized float64 reference written out with log_softmax."""
    ours, theirs, y, gen = inputs(24, bias=True)
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2 if weighted else None
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], class_weight=None if cw is None else cw.float(),
        label_smoothing=0.2, smoothing_convention="others", z_loss=1e-3, reduction=reduction,
        chunk_size=4,
    )  # fmt: skip
    ref = reference(
        theirs[0], theirs[1], y, bias=theirs[2], class_weight=cw, smoothing=0.2, z_loss=1e-3,
        reduction=reduction, convention="others",
    )  # fmt: skip
    _check(out, ref, ours, theirs, gen)
    module = LinearCrossEntropyLoss(
        label_smoothing=0.2, smoothing_convention="others", z_loss=1e-3, reduction=reduction,
        chunk_size=4, class_weight=None if cw is None else cw.float(),
    )  # fmt: skip
    assert torch.equal(module(ours[0], ours[1], y, ours[2]).detach(), out.detach())


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16], ids=["bf16", "f16"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_low_precision_accumulates_in_float32(dtype, reduction):
    """Inputs rounded to bfloat16/float16, everything after computed in float32: the result is
    the float64 loss of the rounded inputs to bfloat16/float16 output rounding."""
    ours, theirs, y, gen = inputs(12, dtype=dtype, bias=True)
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], label_smoothing=0.1, reduction=reduction,
        chunk_size=5,
    )  # fmt: skip
    assert out.dtype == dtype
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], smoothing=0.1, reduction=reduction)
    _check(out, ref, ours, theirs, gen, rtol=1e-2, atol=1e-2)


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_accelerator_low_precision_path(monkeypatch, reduction):
    """The path CUDA takes (products in bfloat16, float32 accumulation over chunks and class
    blocks, softmax shifted by the row maxima, no value read on the host), forced on CPU."""
    monkeypatch.setattr(_sweep, "_mm_dtype", lambda hidden: hidden.dtype)
    monkeypatch.setattr(_sweep, "_host_shortcuts", lambda hidden: False)
    ours, theirs, y, gen = inputs(23, dtype=torch.bfloat16, bias=True)
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], z_loss=1e-3, reduction=reduction, chunk_size=3
    )
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], z_loss=1e-3, reduction=reduction)
    _check(out, ref, ours, theirs, gen, rtol=2e-2, atol=2e-2)


def test_float64_is_exact():
    ours, theirs, y, gen = inputs(13, dtype=F64, bias=True)
    out = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], z_loss=1e-2, chunk_size=6)
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], z_loss=1e-2)
    _check(out, ref, ours, theirs, gen, rtol=1e-12, atol=1e-12)


def test_two_dimensional_hidden_and_upstream_scale():
    ours, theirs, y, gen = inputs(14, shape=(9, D), bias=False)
    out = linear_cross_entropy(ours[0], ours[1], y, shift=True, chunk_size=2)
    ref = reference(theirs[0], theirs[1], y, shift=True)
    _check(3.5 * out, 3.5 * ref, ours, theirs, gen)


@pytest.mark.parametrize("shortcuts", [True, False], ids=["cpu", "device"])
def test_large_logits_do_not_overflow(monkeypatch, shortcuts):
    """Logits of order 1e4: on CPU the target-logit shift overflows and the chunk is redone
    with the row maxima; the path accelerators take shifts by the maxima from the start."""
    monkeypatch.setattr(_sweep, "_host_shortcuts", lambda hidden: shortcuts)
    ours, theirs, y, gen = inputs(15, bias=False)
    with torch.no_grad():
        for t in (*ours[:2], *theirs[:2]):
            t.mul_(60.0)  # logits of order 1e4
    out = linear_cross_entropy(ours[0], ours[1], y, reduction="none", chunk_size=5)
    ref = reference(theirs[0], theirs[1], y, reduction="none")
    assert torch.isfinite(out).all()
    _check(out, ref, ours, theirs, gen, rtol=1e-4, atol=1e-2)


# Logit margins (largest logit minus the target's) of the rows of test_overflow_retry_...: on
# CPU the sweep shifts each row by its target logit and redoes a chunk shifted by its row max
# once some sum of exp(z - z_t) reaches 2**64 (a margin past ln 2**64 = 44.36).
RETRY_MARGINS = [3.0, 44.5, 46.0, 50.0, 60.0, 70.0, 75.0, 85.0, 100.0]


def _retry_inputs():
    """Rows whose logits are set exactly, beside weight columns of order 1e20.

    Row k of hidden is one-hot at feature k, so its logits are weight[:, k] (small integers and
    halves, exact in float32): the target (class 0) at 0, one class at RETRY_MARGINS[k]. The
    other features of weight are +-1e20 and hidden is 0 there (no effect on the logits), but
    they enter the hidden gradient sum_c p_c W_c - W_t: unshifted, exp(z - z_t) of a margin
    past 42.7 times 1e20 overflows float32 (past ~88.7 exp itself overflows).
    """
    k, vocab = len(RETRY_MARGINS), 8
    features = k + 3
    w = torch.zeros(vocab, features)
    base = torch.tensor([0.0, 1.0, -2.0, 3.0, 0.5, 2.0, -1.0, 1.5])
    for i, margin in enumerate(RETRY_MARGINS):
        w[:, i] = base
        w[3 + i % 4, i] = margin
    gen = torch.Generator().manual_seed(25)
    w[:, k:] = (2 * torch.rand(vocab, features - k, generator=gen) - 1) * 1e20
    h = torch.zeros(k, features)
    h[torch.arange(k), torch.arange(k)] = 1.0
    return h, w, torch.zeros(k, dtype=torch.long)


@pytest.mark.parametrize("chunk_size", [1, 4], ids=["row-chunks", "mixed-chunks"])
@pytest.mark.parametrize("smoothing", [0.0, 0.1], ids=["e0", "e0.1"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_overflow_retry_of_the_target_shift(reduction, smoothing, chunk_size, path):
    """Margins of 44.5 to 100 in float32: a chunk whose sum of exps reaches 2**64 is redone
    shifted by its row maxima, so loss and gradients equal the float64 reference.

    With one row per chunk each margin is its own case: a retry threshold raised past 2**64
    (to 2**70, 2**100, ...) or no retry leaves an unshifted chunk whose hidden gradient
    overflows (inf/NaN); without the retry a margin of 100 also overflows the loss. The path
    accelerators take shifts by the maxima from the start.
    """
    h, w, y = _retry_inputs()
    ours = [h.clone().requires_grad_(), w.clone().requires_grad_()]
    theirs = [t.to(F64).requires_grad_() for t in (h, w)]
    out = linear_cross_entropy(
        *ours, y, label_smoothing=smoothing, reduction=reduction, chunk_size=chunk_size
    )
    ref = reference(*theirs, y, smoothing=smoothing, reduction=reduction)
    assert torch.isfinite(out).all()
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-6, atol=1e-6)
    u = torch.rand(ref.shape, generator=torch.Generator().manual_seed(26), dtype=F64) + 0.5
    (out.to(F64) * u).sum().backward()
    (ref * u).sum().backward()
    k = len(RETRY_MARGINS)
    for got, want in ((ours[0].grad, theirs[0].grad), (ours[1].grad, theirs[1].grad)):
        assert torch.isfinite(got).all()
        # the small-logit features and the 1e20 ones, each to its own scale
        for part in (slice(0, k), slice(k, None)):
            g, r = got[:, part].to(F64), want[:, part]
            scale = r.abs().max().clamp_min(1e-30)
            torch.testing.assert_close(g / scale, r / scale, rtol=0, atol=1e-5)


def test_return_lse():
    ours, theirs, y, _ = inputs(16, bias=True)
    loss, lse = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], return_lse=True, shift=True, reduction="none"
    )
    want = torch.logsumexp(theirs[0] @ theirs[1].T + theirs[2], -1)[:, :-1]
    assert lse.shape == loss.shape == (B, T - 1)
    assert lse.dtype == torch.float32 and not lse.requires_grad
    torch.testing.assert_close(lse.to(F64), want.detach(), rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_all_ignored_gives_zero_loss_and_zero_gradients(reduction):
    ours, _, y, _ = inputs(17, bias=True)
    y = torch.full_like(y, -100)
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], label_smoothing=0.1, z_loss=1e-3, reduction=reduction
    )
    out.sum().backward()
    assert torch.equal(out, torch.zeros_like(out))
    for t in ours:
        assert torch.equal(t.grad, torch.zeros_like(t))


def test_empty_batch():
    h = torch.zeros(0, D, requires_grad=True)
    w = torch.randn(V, D, requires_grad=True)
    out = linear_cross_entropy(h, w, torch.zeros(0, dtype=torch.long))
    out.backward()
    assert out.item() == 0.0
    assert torch.equal(w.grad, torch.zeros_like(w))


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_repeat_runs_are_bit_identical(reduction, path):
    gen = torch.Generator().manual_seed(18)
    h = torch.randn(300, 64, generator=gen)
    w = torch.randn(1000, 64, generator=gen) / 8
    y = torch.randint(0, 1000, (300,), generator=gen)
    runs = []
    for _ in range(2):
        hh, ww = h.clone().requires_grad_(), w.clone().requires_grad_()
        out = linear_cross_entropy(hh, ww, y, reduction=reduction, label_smoothing=0.1,
                                   chunk_size=64)  # fmt: skip
        out.sum().backward()
        runs.append((out, hh.grad, ww.grad))
    for a, b in zip(*runs, strict=True):
        assert torch.equal(a, b)


def test_chunk_size_changes_only_rounding():
    ours, _, y, _ = inputs(19, bias=False)
    got = [linear_cross_entropy(ours[0], ours[1], y, chunk_size=c) for c in (1, 3, 14, 1000)]
    for g in got[1:]:
        torch.testing.assert_close(g, got[0])


def test_second_backward_recomputes():
    """retain_graph: the gradients stashed in forward are consumed, the second pass recomputes."""
    ours, _, y, _ = inputs(20, bias=False)
    out = linear_cross_entropy(ours[0], ours[1], y, chunk_size=5)
    out.backward(retain_graph=True)
    first = ours[1].grad.clone()
    ours[1].grad = None
    out.backward()
    torch.testing.assert_close(ours[1].grad, first)


def test_gradients_only_where_asked():
    ours, theirs, y, gen = inputs(21, bias=False)
    w = ours[1].detach()
    out = linear_cross_entropy(ours[0], w, y, chunk_size=5)
    ref = reference(theirs[0], theirs[1].detach(), y)
    _check(out, ref, [ours[0]], [theirs[0]], gen)
    with torch.no_grad():
        assert not linear_cross_entropy(ours[0], ours[1], y).requires_grad


def test_no_gradient_work_without_grad_mode(monkeypatch):
    # parameters keep requires_grad=True under no_grad/inference_mode: an evaluation loop must
    # still take the forward-only sweep (one product per chunk), not compute unused gradients
    ours, _, y, _ = inputs(22, bias=False)

    def fail(*args, **kwargs):
        raise AssertionError("gradients computed without grad mode")

    monkeypatch.setattr(_sweep.Sweep, "accumulate", fail)
    monkeypatch.setattr(_sweep.Sweep, "_accumulate_factored", fail)
    for context in (torch.no_grad, torch.inference_mode):
        with context():
            loss = linear_cross_entropy(ours[0], ours[1], y, chunk_size=5)
        assert torch.isfinite(loss)


def test_module_form():
    ours, theirs, y, gen = inputs(22, bias=False)
    cw = torch.rand(V, generator=gen, dtype=F64)
    module = LinearCrossEntropyLoss(class_weight=cw.float(), shift=True, z_loss=1e-3)
    assert "class_weight" in module.state_dict()
    out = module(ours[0], ours[1], y)
    ref = reference(theirs[0], theirs[1], y, class_weight=cw, shift=True, z_loss=1e-3)
    _check(out, ref, ours[:2], theirs[:2], gen)


def test_default_chunk_fits_the_budget():
    cpu = torch.device("cpu")
    for n, v in [(8192, 128256), (4096, 32000), (10, 50), (100000, 256000), (0, 10)]:
        rows = default_chunk_size(n, v, cpu)
        assert 1 <= rows <= max(n, 1)
        assert rows * v * 4 <= max(CHUNK_BYTES["cpu"], MIN_CHUNK_ROWS["cpu"] * v * 4)
    assert default_chunk_size(8192, 128256, cpu) == 256  # the row floor, above the budget
    assert default_chunk_size(4096, 32000, cpu) == 373  # 11 equal chunks, not 10 x 393 + 166
    assert default_chunk_size(100, 10**6, cpu) == 100  # the floor never exceeds N


# ----------------------------------------------------------------- no N x V tensor anywhere

MEMORY_CHILD = PEAK_PROBE + textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.nn.functional as F
    from crossent.torch import linear_cross_entropy

    n, d, v, chunk = (int(a) for a in sys.argv[1:5])
    g = torch.Generator().manual_seed(0)
    h = torch.randn(n, d, generator=g).requires_grad_()
    w = torch.randn(v, d, generator=g).requires_grad_()
    y = torch.randint(0, v, (n,), generator=g)
    u = torch.randn(n, generator=g)
    p = torch.softmax(torch.randn(n, v, generator=g), -1)  # before the measure: the user's

    def run(fn):
        def step():
            h.grad = w.grad = None
            fn()
        step()  # warm-up: lazy initialization is not the loss's memory
        return peak_of(step)

    print(json.dumps({
        "mean": run(lambda: linear_cross_entropy(h, w, y, chunk_size=chunk).backward()),
        "none": run(lambda: linear_cross_entropy(
            h, w, y, chunk_size=chunk, reduction="none").backward(u)),
        "outputs": run(lambda: (lambda o: (o.loss + o.logprob.sum() + o.entropy.sum()).backward())(
            linear_cross_entropy(h, w, y, chunk_size=chunk, entropy_grad=True,
                                 outputs=("logprob", "entropy", "confidence")))),
        "soft": run(lambda: linear_cross_entropy(
            h, w, p, chunk_size=chunk, label_smoothing=0.1).backward()),
        "torch": run(lambda: F.cross_entropy(h @ w.T, y).backward()),
    }))
    """
)


@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_never_materializes_the_logits():
    """Peak RSS growth of forward + backward in a fresh process, against the 128 MiB of logits.

    Plain PyTorch, measured the same way, must show them (so the check can see them); crossent
    with 512-row chunks (8 MiB) stays under a quarter of their size, forward and backward, with
    gradients computed in forward ("mean") and recomputed in backward ("none"), and with the
    per-token outputs differentiated (their second chunk buffer included), and against
    probability targets.
    """
    n, d, v, chunk = 8192, 16, 4096, 512
    logits = n * v * 4
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(n), str(d), str(v), str(chunk)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["torch"] > logits, peaks
    assert peaks["mean"] < logits / 4, peaks
    assert peaks["none"] < logits / 4, peaks
    assert peaks["outputs"] < logits / 4, peaks  # two chunk buffers, still no N x V
    # probability targets (N x V themselves, allocated before): two chunk buffers
    assert peaks["soft"] < logits / 4, peaks


# ----------------------------------------------------------------- errors


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((_t(), _t(V, D), _t(dtype=torch.long)), {}, ValueError,
         r"hidden must have shape \(D,\), \(N, D\) or \(B, T, D\); got a 0-d array"),
        ((_t(4, D), _t(V, D + 1), _t(4, dtype=torch.long)), {}, ValueError,
         r"weight has 9 features per class .* hidden has 8"),
        ((_t(4, D), _t(V), _t(4, dtype=torch.long)), {}, ValueError,
         r"weight must have shape \(V, D\)"),
        ((_t(4, D), _t(V, D, 1), _t(4, dtype=torch.long)), {}, ValueError,
         r"weight has 1 features per class \(shape \(37, 8, 1\)\)"),
        ((_t(4, D), _t(V, D, dtype=F64), _t(4, dtype=torch.long)), {}, TypeError,
         r"same dtype; got torch.float32 and torch.float64"),
        ((_t(4, D, dtype=torch.long), _t(V, D), _t(4, dtype=torch.long)), {}, TypeError,
         r"hidden must be a floating array \(float16, bfloat16, float32 or float64\), "
         r"got torch.int64"),
        ((_t(4, D), _t(V, D), _t(4)), {}, TypeError,
         r"targets of shape \(4,\) look like class indices but have dtype torch.float32; "
         r"class indices must be an integer array"),
        ((_t(2, 3, D), _t(V, D), _t(3, 2, dtype=torch.long)), {}, ValueError,
         r"targets must have shape \(2, 3\) .* got \(3, 2\)"),
        ((_t(4, D), _t(V, D), torch.tensor([0, 5, 37, -100])), {}, ValueError,
         r"targets must be in \[0, 37\) or equal ignore_index=-100; found 37 at index 2"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"bias": _t(V + 1)}, ValueError,
         r"bias must have shape \(37,\)"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"class_weight": _t(3)}, ValueError,
         r"class_weight must have shape \(37,\)"),
        ((torch.randn(3, 2), torch.randn(4, 2), torch.tensor([0, 1, 2])),
         {"class_weight": torch.tensor([1.0, 1.0, 1.0, -0.5])}, ValueError,
         r"class_weight must be finite and >= 0; found -0.5 at class 3"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"smoothing_convention": "both"},
         ValueError, r"smoothing_convention"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"reduction": "avg"}, ValueError,
         r"reduction must be one of"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"label_smoothing": -0.1}, ValueError,
         r"label_smoothing must be in \[0, 1\]"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"softcap": -1.0}, ValueError,
         r"softcap must be None or a finite number > 0, got -1.0"),
        ((_t(4, D), _t(V, D), _t(4, dtype=torch.long)), {"chunk_size": 0}, ValueError,
         r"chunk_size must be None or a positive integer, got 0"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_cross_entropy(*args, **kwargs)


def test_benchmark_script_runs(tmp_path):
    """benchmarks/linear_ce.py on a tiny shape: every method agrees on the loss, JSON is written."""
    root = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    script = os.path.join(root, "benchmarks", "linear_ce.py")
    out = tmp_path / "lce.json"
    cmd = [sys.executable, script, "--shapes", "64x16x100", "--repeats", "1", "--json", str(out)]
    subprocess.run([*cmd, "--methods", "torch,crossent,liger"], check=True, capture_output=True)
    rows = {r["method"]: r for r in json.loads(out.read_text())["results"]}
    assert rows["torch"]["status"] == rows["crossent"]["status"] == "ok"
    assert rows["liger"]["status"].startswith("skipped")
    assert abs(rows["torch"]["loss"] - rows["crossent"]["loss"]) < 1e-5


@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_overflowing_logits_are_refused_not_nan(reduction, path):
    """From finite inputs, logits of +-inf in float32 made every loss and gradient of the row
    NaN (inf - inf) where the materialized core loss gives inf: now a ValueError naming the
    row; inputs that hold NaN themselves still propagate it, as PyTorch does."""
    from crossent.torch import linear_distillation_loss

    gen = torch.Generator().manual_seed(4)
    h, w = torch.randn(6, 8, generator=gen), torch.randn(11, 8, generator=gen) * 1e3
    y = torch.arange(6)
    big = h.clone()
    big[3] *= 1e36  # finite, but its logits (~1e39) are not
    with pytest.raises(ValueError, match=r"logits of row 3 overflow torch\.float32"):
        linear_cross_entropy(big, w, y, reduction=reduction, chunk_size=4)
    with pytest.raises(ValueError, match=r"overflow torch\.float32 \(temperature 1e-300\)"):
        linear_cross_entropy(h, w, y, temperature=1e-300, reduction=reduction)
    with pytest.raises(ValueError, match="logits of row 3 overflow"):
        linear_distillation_loss(h, w, big, w, reduction=reduction)
    nan = h.clone()
    nan[2, 0] = float("nan")
    assert torch.isnan(linear_cross_entropy(nan, w, y, reduction=reduction)).any()


@pytest.mark.parametrize("reduction", ["mean", "none"])
@pytest.mark.parametrize("k", [2, 3])
def test_an_integer_shift_scores_target_t_plus_k(k, reduction, path):
    """shift=k (Cut Cross-Entropy's integer shift) against the materialized reference on
    hidden[..., :-k, :] and targets[..., k:], gradients included; shift=True is shift=1."""
    ours, theirs, y, gen = inputs(30 + k)
    cw = torch.rand(ours[1].shape[0], generator=gen, dtype=F64) + 0.2
    out = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], shift=k, chunk_size=3,
                               class_weight=cw.float(), label_smoothing=0.1,
                               reduction=reduction)  # fmt: skip
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], shift=k, class_weight=cw,
                    smoothing=0.1, reduction=reduction)  # fmt: skip
    _check(out, ref, ours, theirs, gen)
    h, w = (t.detach() for t in ours[:2])
    assert torch.equal(linear_cross_entropy(h, w, y, shift=True),
                       linear_cross_entropy(h, w, y, shift=1))  # fmt: skip


@pytest.mark.parametrize("bad", [2.0, -1, "1", 1.5, None])
def test_a_shift_that_is_not_a_count_is_refused(bad):
    """shift=2 was silently read as shift=True (any truthy value)."""
    (h, w, _), _, y, _ = inputs(5)
    with pytest.raises(ValueError, match=r"shift must be a bool or an integer >= 0, got"):
        linear_cross_entropy(h, w, y, shift=bad)
