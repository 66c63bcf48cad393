"""crossent.torch's drop-in losses against torch.nn.functional and the core, on CPU.

Parity of the loss and of every gradient (input, and probability targets where PyTorch has
one) with PyTorch over the option grid, in float32 and bfloat16; the extras (z-loss, softcap,
all-ignored batches, infinite logits, saturated focal loss); what the backward keeps in
memory; torch.compile(fullgraph=True); and the error messages.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")
F = torch.nn.functional

import crossent as ce  # noqa: E402
import crossent.torch as cet  # noqa: E402

F64 = torch.float64


def _pair(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A leaf in ``dtype`` for crossent, and a float64 leaf of the same values for the reference."""
    a = x.detach().clone().to(dtype).requires_grad_()
    return a, a.detach().to(F64).requires_grad_()


def _tol(dtype: torch.dtype) -> dict:
    return {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-6}


def _close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype
    torch.testing.assert_close(got.to(F64), want.detach(), **_tol(dtype))


def _backward_both(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Backward through both with the same upstream gradient (random for reduction='none')."""
    u = torch.randn(ref.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    (out.to(F64) * u).sum().backward()
    (ref * u).sum().backward()


# ----------------------------------------------------------------- CrossEntropyLoss

SHAPES = [(6, 5), (3, 5, 2, 3), (5,)]


@pytest.fixture(params=["one-kernel", "row-blocks"])
def cpu_blocks(request, monkeypatch):
    """Run a test on both CPU paths: one kernel, and the blocked loop large inputs take.

    With 20 elements per block, (6, 5) runs in blocks of 4 + 2 rows, (7, 5) in 4 + 3,
    (3, 5, 2, 3) and (3, 5, 4) one row at a time, and (5,) in one kernel.
    """
    if request.param == "row-blocks":
        monkeypatch.setattr("crossent.torch._functional._CPU_BLOCK", 20)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCdd", "C"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_index_targets_match_pytorch(dtype, shape, reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(0)
    num_classes = shape[1] if len(shape) > 1 else shape[0]
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    for smoothing, weighted, ignore in itertools.product([0.0, 0.2], [False, True], [False, True]):
        x = 3 * torch.randn(shape, generator=gen)
        y = torch.randint(0, num_classes, target_shape, generator=gen)
        if ignore and y.numel() > 1:
            y.view(-1)[1] = -100
        w = torch.rand(num_classes, generator=gen, dtype=F64) + 0.1 if weighted else None
        a, b = _pair(x, dtype)
        loss = cet.CrossEntropyLoss(
            weight=None if w is None else w.to(dtype),
            reduction=reduction,
            label_smoothing=smoothing,
        )
        out = loss(a, y)
        ref = F.cross_entropy(b, y, weight=w, reduction=reduction, label_smoothing=smoothing)
        _close(out, ref, dtype)
        _backward_both(out, ref)
        _close(a.grad, b.grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_probability_targets_match_pytorch(dtype, reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(2)
    for shape, smoothing, weighted in itertools.product(
        [(6, 5), (3, 5, 4)], [0.0, 0.1], [False, True]
    ):
        x = 2 * torch.randn(shape, generator=gen)
        p = torch.softmax(torch.randn(shape, generator=gen, dtype=F64), 1)
        w = torch.rand(shape[1], generator=gen, dtype=F64) if weighted else None
        a, b = _pair(x, dtype)
        pa, pb = _pair(p, dtype)
        out = cet.cross_entropy(
            a, pa, weight=None if w is None else w.to(dtype), reduction=reduction,
            label_smoothing=smoothing,
        )  # fmt: skip
        ref = F.cross_entropy(b, pb, weight=w, reduction=reduction, label_smoothing=smoothing)
        _close(out, ref, dtype)
        _backward_both(out, ref)
        _close(a.grad, b.grad, dtype)
        _close(pa.grad, pb.grad, dtype)


def _reference_ce(z, y, *, weight=None, smoothing=0.0, z_loss=0.0, softcap=None, ignore=-100):
    """F.cross_entropy of soft-capped logits plus z_loss * w[y] * lse^2 (per sample)."""
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    ce_i = F.cross_entropy(
        z, y, weight=weight, ignore_index=ignore, reduction="none", label_smoothing=smoothing
    )
    valid = y != ignore
    w_t = weight[torch.where(valid, y, 0)] if weight is not None else torch.ones_like(ce_i)
    w_t = w_t * valid
    return ce_i + z_loss * w_t * torch.logsumexp(z, 1) ** 2, w_t


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_z_loss_and_softcap(reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(3)
    x = 8 * torch.randn(7, 6, generator=gen)
    y = torch.randint(0, 6, (7,), generator=gen)
    y[2] = -100
    w = torch.rand(6, generator=gen, dtype=F64) + 0.5
    for z_loss, softcap, smoothing in itertools.product([0.0, 1e-2], [None, 5.0], [0.0, 0.1]):
        a, b = _pair(x, torch.float32)
        out = cet.CrossEntropyLoss(
            weight=w.float(), reduction=reduction, label_smoothing=smoothing, z_loss=z_loss,
            softcap=softcap,
        )(a, y)  # fmt: skip
        per, w_t = _reference_ce(
            b, y, weight=w, smoothing=smoothing, z_loss=z_loss, softcap=softcap
        )
        ref = {"none": per, "sum": per.sum(), "mean": per.sum() / w_t.sum()}[reduction]
        _close(out, ref, torch.float32)
        _backward_both(out, ref)
        _close(a.grad, b.grad, torch.float32)


@pytest.mark.parametrize("loss_fn", ["cross_entropy", "focal"])
def test_all_ignored_gives_zero_and_zero_gradient(loss_fn):
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.full((4,), -100)
    if loss_fn == "cross_entropy":
        loss = cet.CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3)(x, y)
        assert torch.isnan(F.cross_entropy(x, y))  # what PyTorch does (pytorch #70348)
    else:
        loss = cet.FocalLoss()(x, y)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(
    "loss_fn",
    [
        cet.CrossEntropyLoss(),
        cet.CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3, softcap=5.0),
        cet.FocalLoss(gamma=0.0),
        cet.FocalLoss(gamma=2.0),
    ],
    ids=["ce", "ce-softcap", "focal-0", "focal-2"],
)
def test_ignored_rows_may_hold_nan_or_inf(loss_fn, cpu_blocks):
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    x[1] = float("nan")
    x[2, 1] = float("inf")
    x.requires_grad_()
    loss = loss_fn(x, torch.tensor([0, -100, -100, 2]))
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[1:3], torch.zeros(2, 5))


INF = float("inf")
INFINITE_ROWS = [[INF, 0, -INF], [INF, INF, 0], [0, 1, -INF], [-INF, -INF, -INF], [1, 2, 3]]


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"weight": [0.5, 1.0, 2.0]},
        {"label_smoothing": 0.1},
        {"weight": [1.0, 0.0, 1.0], "label_smoothing": 0.1},
        {"probabilities": True},
    ],
    ids=["plain", "weight", "smoothing", "zero-weight-smoothing", "prob-targets"],
)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64], ids=["f32", "f64"])
def test_infinite_logits_give_the_limit_like_the_core(options, dtype, cpu_blocks):
    """+inf takes all the mass, -inf none, a row of -inf is uniform: loss and gradient equal the
    core's (0, log 2, +inf where it belongs), never NaN."""
    options = dict(options)
    x = torch.tensor(INFINITE_ROWS, dtype=F64)
    if options.pop("probabilities", False):
        y = torch.tensor([[0.5, 0.5, 0.0]] * 5, dtype=F64)
    else:
        y = torch.tensor([0, 0, 1, 2, 2])
    core = {k: np.asarray(v) for k, v in options.items() if k == "weight"}
    core.update({k: v for k, v in options.items() if k != "weight"})
    want = ce.softmax_cross_entropy(x.numpy(), y.numpy(), reduction="none", **core)
    want_grad = ce.grad.softmax_cross_entropy(x.numpy(), y.numpy(), reduction="none", **core)
    if "weight" in options:
        options["weight"] = torch.tensor(options["weight"], dtype=dtype)
    a = x.to(dtype).requires_grad_()
    out = cet.cross_entropy(a, y.to(dtype) if y.is_floating_point() else y, reduction="none",
                            **options)  # fmt: skip
    out.backward(torch.ones_like(out))
    assert not torch.isnan(out).any() and not torch.isnan(a.grad).any()
    np.testing.assert_allclose(out.detach().double().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(a.grad.double().numpy(), want_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_at_infinite_logits_gives_the_limit_like_the_core(gamma, cpu_blocks):
    """The focal loss and its gradient at +-inf logits: the core's limits, finite, never NaN."""
    x = torch.tensor(INFINITE_ROWS, dtype=F64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 2, 2])
    out = cet.focal_loss(x, y, gamma=gamma, reduction="none")
    out.backward(torch.ones_like(out))
    want = ce.softmax_focal_loss(x.detach().numpy(), y.numpy(), gamma=gamma, reduction="none")
    want_grad = ce.grad.softmax_focal_loss(
        x.detach().numpy(), y.numpy(), gamma=gamma, reduction="none"
    )
    assert np.isfinite(want).all() and np.isfinite(want_grad).all()
    np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-12)
    np.testing.assert_allclose(x.grad.numpy(), want_grad, rtol=1e-12, atol=1e-15)
    # an alpha of 0 on the target silences its term even where that term is +inf
    alpha = torch.tensor([1.0, 0.0, 2.0], dtype=F64)
    z = torch.tensor([[0.0, -INF, 1.0]], dtype=F64)
    zero = cet.focal_loss(z, torch.tensor([1]), alpha=alpha, gamma=gamma, reduction="sum")
    assert float(zero) == 0.0


@pytest.mark.parametrize("weight", [None, [1.0, 1.0, 0.0]], ids=["unweighted", "zero-weight"])
def test_z_loss_of_an_infinite_row_is_inf(weight):
    """+inf where a row's log-sum-exp is infinite, 0 where its weight is 0 (never 0 * inf)."""
    x = torch.tensor(INFINITE_ROWS)
    y = [0, 0, 1, 2, 2]
    w = None if weight is None else torch.tensor(weight)
    out = cet.cross_entropy(x, torch.tensor(y), weight=w, z_loss=1e-2, reduction="none")
    want = ce.softmax_cross_entropy(
        x.numpy(), y, weight=None if w is None else w.numpy(), z_loss=1e-2, reduction="none"
    )
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)


def test_saves_less_for_backward_than_torch():
    """Between forward and backward, crossent keeps a few numbers per sample besides the input;
    PyTorch keeps the (N, C) log-softmax."""

    def saved_bytes(loss_fn, x):
        seen = []

        def pack(t):
            if t.data_ptr() != x.data_ptr():
                seen.append(t.numel() * t.element_size())
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            loss_fn(x, y)
        return sum(seen)

    n, c = 64, 1000
    x = torch.randn(n, c, requires_grad=True)
    y = torch.randint(0, c, (n,))
    ours = saved_bytes(cet.CrossEntropyLoss(label_smoothing=0.1), x)
    theirs = saved_bytes(torch.nn.CrossEntropyLoss(label_smoothing=0.1), x)
    assert theirs >= n * c * 4
    assert ours <= 64 * n  # log-sum-exp, targets, masks, weights: O(N)


def test_is_a_drop_in_for_torch_nn():
    w = torch.rand(5)
    theirs = torch.nn.CrossEntropyLoss(weight=w, ignore_index=3, label_smoothing=0.1)
    ours = cet.CrossEntropyLoss(weight=torch.ones(5))
    ours.load_state_dict(theirs.state_dict())
    assert isinstance(ours, torch.nn.CrossEntropyLoss)
    assert torch.equal(ours.weight, w)
    assert isinstance(cet.BCEWithLogitsLoss(), torch.nn.BCEWithLogitsLoss)
    with pytest.warns(UserWarning):
        legacy = cet.CrossEntropyLoss(size_average=False)
    assert legacy.reduction == "sum"
    assert "z_loss=0.5" in repr(cet.CrossEntropyLoss(z_loss=0.5))


# ----------------------------------------------------------------- BCEWithLogitsLoss


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_pytorch(dtype, reduction):
    gen = torch.Generator().manual_seed(4)
    for weighted, positive_weighted in itertools.product([False, True], [False, True]):
        x = 4 * torch.randn(5, 3, generator=gen)
        t = torch.rand(5, 3, generator=gen, dtype=F64)
        w = torch.rand(3, generator=gen, dtype=F64) if weighted else None
        pw = 3 * torch.rand(3, generator=gen, dtype=F64) if positive_weighted else None
        a, b = _pair(x, dtype)
        ta, tb = _pair(t, dtype)
        loss = cet.BCEWithLogitsLoss(
            weight=None if w is None else w.to(dtype),
            pos_weight=None if pw is None else pw.to(dtype),
            reduction=reduction,
        )
        out = loss(a, ta)
        ref = F.binary_cross_entropy_with_logits(
            b, tb, weight=w, pos_weight=pw, reduction=reduction
        )
        _close(out, ref, dtype)
        _backward_both(out, ref)
        _close(a.grad, b.grad, dtype)
        _close(ta.grad, tb.grad, dtype)


def test_bce_is_finite_at_infinite_logits():
    inf = float("inf")
    x = torch.tensor([inf, -inf, inf, -inf], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0])
    out = cet.binary_cross_entropy_with_logits(x, t, reduction="none")
    assert out.tolist() == [0.0, 0.0, inf, inf]
    out[:2].sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.isnan(F.binary_cross_entropy_with_logits(x[:1], t[:1]))  # PyTorch: #49844


def test_bce_label_smoothing_matches_the_core():
    x = torch.randn(6, 4, dtype=F64)
    t = (torch.rand(6, 4, dtype=F64) > 0.5).to(F64)
    out = cet.BCEWithLogitsLoss(label_smoothing=0.2)(x, t)
    want = ce.sigmoid_binary_cross_entropy(x.numpy(), t.numpy(), label_smoothing=0.2)
    np.testing.assert_allclose(out.item(), float(want), rtol=1e-12)


# ----------------------------------------------------------------- FocalLoss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_focal_matches_the_core_and_autograd(gamma, reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(5)
    x = 2 * torch.randn(7, 5, generator=gen, dtype=F64)
    y = torch.randint(0, 5, (7,), generator=gen)
    y[3] = -100
    alpha = torch.rand(5, generator=gen, dtype=F64)
    for a_opt in (None, 0.25, alpha):
        got_x = x.clone().requires_grad_()
        out = cet.FocalLoss(alpha=a_opt, gamma=gamma, reduction=reduction)(got_x, y)
        core_alpha = a_opt.numpy() if isinstance(a_opt, torch.Tensor) else a_opt
        want = ce.softmax_focal_loss(
            x.numpy(), y.numpy(), alpha=core_alpha, gamma=gamma, reduction=reduction
        )
        np.testing.assert_allclose(out.detach().numpy(), want, rtol=1e-10, atol=1e-12)
        # autograd of the textbook formula (fine at these moderate logits)
        ref_x = x.clone().requires_grad_()
        valid = y != -100
        t = torch.where(valid, y, 0)
        log_p = torch.log_softmax(ref_x, 1).gather(1, t[:, None])[:, 0]
        a_t = a_opt[t] if isinstance(a_opt, torch.Tensor) else (1.0 if a_opt is None else a_opt)
        per = torch.where(valid, -a_t * (1 - log_p.exp()) ** gamma * log_p, 0)
        ref = {"none": per, "sum": per.sum(), "mean": per.sum() / valid.sum()}[reduction]
        _backward_both(out, ref)
        torch.testing.assert_close(got_x.grad, ref_x.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_focal_gradient_is_finite_at_saturated_logits(gamma):
    x = torch.tensor([[1e4, 0.0, -1e4], [-1e4, 0.0, 1e4], [30.0, 0.0, 0.0]], requires_grad=True)
    loss = cet.focal_loss(x, torch.tensor([0, 0, 0]), gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


def test_focal_bfloat16_is_computed_in_float32():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 4, generator=gen).bfloat16().requires_grad_()
    y = torch.randint(0, 4, (8,), generator=gen)
    out = cet.focal_loss(x, y)
    out.backward()
    want = cet.focal_loss(x.detach().float(), y)
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want, rtol=1e-2, atol=1e-3)


# ----------------------------------------------------------------- compile, errors, imports

# torch 2.13's Dynamo warns on tracing any autograd.Function (its own internal instantiation).
DYNAMO_WARNING = "ignore:.*should not be instantiated:DeprecationWarning"


@pytest.mark.parametrize(
    "make",
    [
        lambda: (cet.CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3, softcap=5.0), "index"),
        lambda: (cet.CrossEntropyLoss(reduction="none"), "prob"),
        lambda: (cet.BCEWithLogitsLoss(pos_weight=torch.full((6,), 2.0)), "binary"),
        lambda: (cet.FocalLoss(gamma=1.5, alpha=0.5), "index"),
    ],
    ids=["ce", "ce-prob", "bce", "focal"],
)
@pytest.mark.filterwarnings(DYNAMO_WARNING)
def test_torch_compile_fullgraph(make):
    module, kind = make()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 6, generator=gen)
    if kind == "index":
        y = torch.randint(0, 6, (8,), generator=gen)
        y[0] = -100
    elif kind == "prob":
        y = torch.softmax(torch.randn(8, 6, generator=gen), 1)
    else:
        y = torch.rand(8, 6, generator=gen)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    out = compiled(a, y)
    want = module(b, y)
    out.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, y: cet.cross_entropy(x, y),
        lambda x, y: cet.cross_entropy(x, y, label_smoothing=0.1, z_loss=1e-3, softcap=5.0),
        lambda x, y: cet.focal_loss(x, y),
        lambda x, y: cet.binary_cross_entropy_with_logits(x, torch.nn.functional.one_hot(y, 6)),
    ],
    ids=["ce-defaults", "ce-options", "focal", "bce"],
)
@pytest.mark.filterwarnings(DYNAMO_WARNING)
def test_torch_compile_dynamic_shapes(loss):
    """Symbolic shapes and floats: option checks must not call math on them, and one graph
    serves every batch size."""
    torch._dynamo.reset()
    from torch._dynamo.testing import CompileCounter

    counter = CompileCounter()
    compiled = torch.compile(loss, fullgraph=True, dynamic=True, backend=counter)
    gen = torch.Generator().manual_seed(8)
    for n in (8, 11, 200_000):  # 200000 x 6 takes the blocked path in eager
        x = torch.randn(n, 6, generator=gen)
        y = torch.randint(0, 6, (n,), generator=gen)
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        out, want = compiled(a, y), loss(b, y)
        out.backward()
        want.backward()
        torch.testing.assert_close(out, want)
        torch.testing.assert_close(a.grad, b.grad)
    assert counter.frame_count == 1


@pytest.mark.filterwarnings(DYNAMO_WARNING)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_inductor():
    """The default backend too (C++ code generation: one module, to keep the suite quick)."""
    torch._dynamo.reset()
    module = cet.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.randint(0, 6, (8,))
    out = torch.compile(module, fullgraph=True)(x, y)
    out.backward()
    grad = x.grad.clone()
    x.grad = None
    module(x, y).backward()
    torch.testing.assert_close(out, module(x, y))
    torch.testing.assert_close(grad, x.grad)


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.tensor([0, 4, 1])), ValueError,
         r"targets must be in \[0, 4\) or equal ignore_index=-100; found 4 at index 1"),
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.tensor([0, 1])), ValueError,
         r"must have shape \(3,\).*got \(2,\)"),
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.rand(3, 5)), ValueError,
         r"probability targets must have the input's shape \(3, 4\); got \(3, 5\)"),
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]),
                                   weight=torch.ones(3)), ValueError,
         r"weight must have shape \(4,\).*got shape \(3,\)"),
        (lambda: cet.cross_entropy(torch.tensor([[1, 2]]), torch.tensor([0])), TypeError,
         r"input must be a floating tensor.*torch.int64"),
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]),
                                   reduction="avg"), ValueError, r"reduction must be one of"),
        (lambda: cet.CrossEntropyLoss(label_smoothing=1.5), ValueError,
         r"label_smoothing must be in \[0, 1\], got 1.5"),
        (lambda: cet.CrossEntropyLoss(softcap=0.0), ValueError, r"softcap must be None or"),
        (lambda: cet.CrossEntropyLoss(z_loss=-1.0), ValueError, r"z_loss must be a finite"),
        (lambda: cet.binary_cross_entropy_with_logits(torch.randn(3), torch.rand(4)),
         ValueError, r"target must have the input's shape \(3,\); got \(4,\)"),
        (lambda: cet.focal_loss(torch.randn(3, 4), torch.rand(3)), TypeError,
         r"integer tensor of class indices, got torch.float32"),
        (lambda: cet.focal_loss(torch.randn(3, 4), torch.tensor([0, 1, -3])), ValueError,
         r"found -3 at index 2"),
        (lambda: cet.FocalLoss(gamma=-1.0), ValueError, r"gamma must be a finite number >= 0"),
        (lambda: cet.FocalLoss(reduction="avg"), ValueError, r"reduction must be one of"),
        (lambda: cet.CrossEntropyLoss(reduction="avg"), ValueError, r"reduction must be one of"),
        (lambda: cet.BCEWithLogitsLoss(reduction="avg"), ValueError, r"reduction must be one of"),
        (lambda: cet.CrossEntropyLoss(weight=torch.tensor([1.0, -1.0, 1.0, 1.0]))(
            torch.randn(3, 4), torch.tensor([0, 1, 2])), ValueError,
         r"weight must be finite and >= 0; found -1.0 at class 1"),
        (lambda: cet.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0, float("inf"), 1.0]))(
            torch.randn(3, 4), torch.tensor([0, 1, 2])), ValueError,
         r"weight must be finite and >= 0; found inf at class 2"),
        (lambda: cet.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, -2.0]))(
            torch.randn(3, 2), torch.rand(3, 2)), ValueError,
         r"pos_weight must be finite and >= 0; found -2.0 at index 1"),
        (lambda: cet.BCEWithLogitsLoss(weight=torch.tensor([float("nan"), 1.0]))(
            torch.randn(3, 2), torch.rand(3, 2)), ValueError,
         r"weight must be finite and >= 0; found nan at index 0"),
        (lambda: cet.linear_cross_entropy(torch.randn(3, 2), torch.randn(4, 2),
                                          torch.tensor([0, 1, 2]),
                                          class_weight=torch.tensor([1.0, 1.0, 1.0, -0.5])),
         ValueError, r"class_weight must be finite and >= 0; found -0.5 at class 3"),
        (lambda: cet.cross_entropy(torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0])), TypeError,
         r"class-index targets must be integers, got torch.float32"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_float64_smoothing_gradient_is_float64_exact():
    # the smoothing term once rounded in the default dtype (float32): errors near 1e-9
    x = torch.randn(7, 6, dtype=F64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 5, 2, -100, 1, 3, 4])
    w = torch.rand(6, dtype=F64, generator=torch.Generator().manual_seed(4))
    for weight in (None, w):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        cet.cross_entropy(a, y, weight=weight, label_smoothing=0.3, reduction="sum").backward()
        F.cross_entropy(b, y, weight=weight, label_smoothing=0.3, reduction="sum").backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-13, atol=1e-14)


def test_import_crossent_does_not_import_torch():
    code = "import sys, crossent; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
