"""The torch path of the core losses (crossent.torch._functions), on CPU.

``ce.softmax_cross_entropy``, ``ce.sigmoid_binary_cross_entropy`` and ``ce.softmax_focal_loss``
called with torch tensors run autograd Functions with closed-form backward passes. Here: parity
of the loss and of every gradient (input, and probability targets where PyTorch has one) with
torch.nn.functional over the option grid, in float32 and bfloat16; the closed-form backward
against autograd and finite differences; the extras (z-loss, softcap, both smoothing
conventions, all-ignored batches, ignored rows holding NaN, infinite logits, saturated focal
loss); what the backward keeps in memory; torch.compile(fullgraph=True) with dynamic shapes;
both CPU paths (one kernel, row blocks); and the error messages.
"""

from __future__ import annotations

import itertools
import subprocess
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ce_torch_support import (  # noqa: E402
    CPU_PATHS,
    DYNAMO_WARNING,
    F64,
    backward_both,
    close,
    pair,
    use_cpu_path,
)

import crossent as ce  # noqa: E402

F = torch.nn.functional
INF = float("inf")
INFINITE_ROWS = [[INF, 0, -INF], [INF, INF, 0], [0, 1, -INF], [-INF, -INF, -INF], [1, 2, 3]]


@pytest.fixture(params=CPU_PATHS)
def cpu_blocks(request, monkeypatch):
    """Run a test on both CPU paths: one kernel, and the blocked loop large inputs take."""
    use_cpu_path(request.param, monkeypatch)


# ----------------------------------------------------------------- softmax cross-entropy

SHAPES = [(6, 5), (3, 5, 2, 3), (5,)]


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("shape", SHAPES, ids=["NC", "NCdd", "C"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_index_targets_match_pytorch(dtype, shape, reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(0)
    num_classes = shape[1] if len(shape) > 1 else shape[0]
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    axis = 1 if len(shape) > 1 else 0
    for smoothing, weighted, ignore in itertools.product([0.0, 0.2], [False, True], [False, True]):
        x = 3 * torch.randn(shape, generator=gen)
        y = torch.randint(0, num_classes, target_shape, generator=gen)
        if ignore and y.numel() > 1:
            y.view(-1)[1] = -100
        w = torch.rand(num_classes, generator=gen, dtype=F64) + 0.1 if weighted else None
        a, b = pair(x, dtype)
        out = ce.softmax_cross_entropy(
            a, y, axis=axis, class_weight=None if w is None else w.to(dtype),
            reduction=reduction, label_smoothing=smoothing,
        )  # fmt: skip
        ref = F.cross_entropy(b, y, weight=w, reduction=reduction, label_smoothing=smoothing)
        close(out, ref, dtype)
        backward_both(out, ref)
        close(a.grad, b.grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_probability_targets_match_pytorch(dtype, reduction, cpu_blocks):
    gen = torch.Generator().manual_seed(2)
    for shape, smoothing, weighted in itertools.product(
        [(6, 5), (3, 5, 4)], [0.0, 0.1], [False, True]
    ):
        x = 2 * torch.randn(shape, generator=gen)
        p = torch.softmax(torch.randn(shape, generator=gen, dtype=F64), 1)
        w = torch.rand(shape[1], generator=gen, dtype=F64) if weighted else None
        a, b = pair(x, dtype)
        pa, pb = pair(p, dtype)
        out = ce.softmax_cross_entropy(
            a, pa, axis=1, class_weight=None if w is None else w.to(dtype), reduction=reduction,
            label_smoothing=smoothing,
        )  # fmt: skip
        ref = F.cross_entropy(b, pb, weight=w, reduction=reduction, label_smoothing=smoothing)
        close(out, ref, dtype)
        backward_both(out, ref)
        close(a.grad, b.grad, dtype)
        close(pa.grad, pb.grad, dtype)


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
        a, b = pair(x, torch.float32)
        out = ce.softmax_cross_entropy(
            a, y, axis=1, class_weight=w.float(), reduction=reduction, label_smoothing=smoothing,
            z_loss=z_loss, softcap=softcap,
        )  # fmt: skip
        per, w_t = _reference_ce(
            b, y, weight=w, smoothing=smoothing, z_loss=z_loss, softcap=softcap
        )
        ref = {"none": per, "sum": per.sum(), "mean": per.sum() / w_t.sum()}[reduction]
        close(out, ref, torch.float32)
        backward_both(out, ref)
        close(a.grad, b.grad, torch.float32)


def _others_targets(y, num_classes, e):
    """The 'others' convention: 1 - e on the target, e / (K - 1) on every other class."""
    onehot = F.one_hot(y, num_classes).to(F64) if y.ndim == 1 else y
    return (1 - e - e / (num_classes - 1)) * onehot + e / (num_classes - 1)


@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
@pytest.mark.parametrize("reduction", ["mean", "none"])
def test_others_smoothing_convention_matches_autograd(weighted, reduction, cpu_blocks):
    """smoothing_convention="others" on the torch path: loss, logit gradient and (soft targets)
    target gradient equal autograd of -sum_c w_c q_c log p_c with q = (1-e) y + e/(K-1) (1-y)."""
    gen = torch.Generator().manual_seed(31)
    x = 2 * torch.randn(7, 5, generator=gen, dtype=F64)
    w = torch.rand(5, generator=gen, dtype=F64) + 0.5 if weighted else torch.ones(5, dtype=F64)
    e = 0.3
    # class indices (one ignored row) ...
    y = torch.randint(0, 5, (7,), generator=gen)
    y[4] = -100
    valid = y != -100
    a, b = pair(x, F64)
    out = ce.softmax_cross_entropy(
        a, y, axis=1, class_weight=w if weighted else None, label_smoothing=e,
        smoothing_convention="others", reduction=reduction,
    )  # fmt: skip
    q = _others_targets(torch.where(valid, y, 0), 5, e)
    per = torch.where(valid, -(w * q * torch.log_softmax(b, 1)).sum(1), 0)
    w_t = torch.where(valid, w[torch.where(valid, y, 0)], 0)
    ref = per if reduction == "none" else per.sum() / w_t.sum()
    close(out, ref, F64)
    backward_both(out, ref)
    close(a.grad, b.grad, F64)
    # ... and probabilities (the mean over rows), with the target's gradient
    p = torch.softmax(torch.randn(7, 5, generator=gen, dtype=F64), 1)
    a, b = pair(x, F64)
    pa, pb = pair(p, F64)
    out = ce.softmax_cross_entropy(
        a, pa, axis=1, class_weight=w if weighted else None, label_smoothing=e,
        smoothing_convention="others", reduction=reduction,
    )  # fmt: skip
    per = -(w * _others_targets(pb, 5, e) * torch.log_softmax(b, 1)).sum(1)
    ref = per if reduction == "none" else per.mean()
    close(out, ref, F64)
    backward_both(out, ref)
    close(a.grad, b.grad, F64)
    close(pa.grad, pb.grad, F64)


@pytest.mark.parametrize("loss_fn", ["cross_entropy", "focal"])
def test_all_ignored_gives_zero_and_zero_gradient(loss_fn):
    x = torch.randn(4, 3, requires_grad=True)
    y = torch.full((4,), -100)
    if loss_fn == "cross_entropy":
        loss = ce.softmax_cross_entropy(x, y, axis=1, label_smoothing=0.1, z_loss=1e-3)
        assert torch.isnan(F.cross_entropy(x, y))  # what PyTorch does (pytorch #70348)
    else:
        loss = ce.softmax_focal_loss(x, y, axis=1)
    loss.backward()
    assert loss.item() == 0.0
    assert torch.equal(x.grad, torch.zeros_like(x))


@pytest.mark.parametrize(
    ("loss_fn", "options"),
    [
        (ce.softmax_cross_entropy, {}),
        (ce.softmax_cross_entropy, {"label_smoothing": 0.1, "z_loss": 1e-3, "softcap": 5.0}),
        (ce.softmax_focal_loss, {"gamma": 0.0}),
        (ce.softmax_focal_loss, {"gamma": 2.0}),
    ],
    ids=["ce", "ce-softcap", "focal-0", "focal-2"],
)
def test_ignored_rows_may_hold_nan_or_inf(loss_fn, options, cpu_blocks):
    x = torch.randn(4, 5, generator=torch.Generator().manual_seed(3))
    x[1] = float("nan")
    x[2, 1] = float("inf")
    x.requires_grad_()
    loss = loss_fn(x, torch.tensor([0, -100, -100, 2]), axis=1, **options)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()
    assert torch.equal(x.grad[1:3], torch.zeros(2, 5))


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"class_weight": [0.5, 1.0, 2.0]},
        {"label_smoothing": 0.1},
        {"class_weight": [1.0, 0.0, 1.0], "label_smoothing": 0.1},
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
    core = {k: np.asarray(v) if k == "class_weight" else v for k, v in options.items()}
    want = ce.softmax_cross_entropy(x.numpy(), y.numpy(), reduction="none", **core)
    want_grad = ce.grad.softmax_cross_entropy(x.numpy(), y.numpy(), reduction="none", **core)
    if "class_weight" in options:
        options["class_weight"] = torch.tensor(options["class_weight"], dtype=dtype)
    a = x.to(dtype).requires_grad_()
    out = ce.softmax_cross_entropy(a, y.to(dtype) if y.is_floating_point() else y, axis=1,
                                   reduction="none", **options)  # fmt: skip
    out.backward(torch.ones_like(out))
    assert not torch.isnan(out).any() and not torch.isnan(a.grad).any()
    np.testing.assert_allclose(out.detach().double().numpy(), want, rtol=1e-6)
    np.testing.assert_allclose(a.grad.double().numpy(), want_grad, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("weight", [None, [1.0, 1.0, 0.0]], ids=["unweighted", "zero-weight"])
def test_z_loss_of_an_infinite_row_is_inf(weight):
    """+inf where a row's log-sum-exp is infinite, 0 where its weight is 0 (never 0 * inf)."""
    x = torch.tensor(INFINITE_ROWS)
    y = [0, 0, 1, 2, 2]
    w = None if weight is None else torch.tensor(weight)
    out = ce.softmax_cross_entropy(
        x, torch.tensor(y), axis=1, class_weight=w, z_loss=1e-2, reduction="none"
    )
    want = ce.softmax_cross_entropy(
        x.numpy(), y, class_weight=None if w is None else w.numpy(), z_loss=1e-2, reduction="none"
    )
    np.testing.assert_allclose(out.numpy(), want, rtol=1e-6)


def test_z_loss_gradient_of_an_infinite_row_is_that_of_its_limit():
    """Rule 6: with z_loss, the gradient at a row whose log-sum-exp is infinite is that of the
    row's limit (finite), on the torch path as in the core."""
    x = torch.tensor(INFINITE_ROWS, dtype=F64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 2, 2])
    out = ce.softmax_cross_entropy(x, y, axis=1, z_loss=1e-2, reduction="none")
    out.backward(torch.ones_like(out))
    limit = torch.tensor([[0, -INF, -INF], [0, 0, -INF], [0, 1, -INF], [0, 0, 0], [1, 2, 3]])
    limit = limit.to(F64).requires_grad_()
    F.cross_entropy(limit, y, reduction="none").add(
        1e-2 * torch.logsumexp(limit, 1) ** 2
    ).sum().backward()
    assert torch.isfinite(x.grad).all()
    torch.testing.assert_close(x.grad, limit.grad, rtol=1e-12, atol=1e-15)
    want = ce.grad.softmax_cross_entropy(
        x.detach().numpy(), y.numpy(), z_loss=1e-2, reduction="none"
    )
    np.testing.assert_allclose(x.grad.numpy(), want, rtol=1e-12, atol=1e-15)


def test_float64_smoothing_gradient_is_float64_exact():
    # the smoothing term once rounded in the default dtype (float32): errors near 1e-9
    x = torch.randn(7, 6, dtype=F64, generator=torch.Generator().manual_seed(3))
    y = torch.tensor([0, 5, 2, -100, 1, 3, 4])
    w = torch.rand(6, dtype=F64, generator=torch.Generator().manual_seed(4))
    for weight in (None, w):
        a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
        ce.softmax_cross_entropy(
            a, y, axis=1, class_weight=weight, label_smoothing=0.3, reduction="sum"
        ).backward()
        F.cross_entropy(b, y, weight=weight, label_smoothing=0.3, reduction="sum").backward()
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-13, atol=1e-14)


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
    ours = saved_bytes(lambda x, y: ce.softmax_cross_entropy(x, y, axis=1, label_smoothing=0.1), x)
    theirs = saved_bytes(torch.nn.CrossEntropyLoss(label_smoothing=0.1), x)
    assert theirs >= n * c * 4
    assert ours <= 64 * n  # log-sum-exp, targets, masks, weights: O(N)


# ----------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_matches_pytorch(dtype, reduction):
    gen = torch.Generator().manual_seed(4)
    for weighted, positive_weighted in itertools.product([False, True], [False, True]):
        x = 4 * torch.randn(5, 3, generator=gen)
        t = torch.rand(5, 3, generator=gen, dtype=F64)
        w = torch.rand(3, generator=gen, dtype=F64) if weighted else None
        pw = 3 * torch.rand(3, generator=gen, dtype=F64) if positive_weighted else None
        a, b = pair(x, dtype)
        ta, tb = pair(t, dtype)
        out = ce.sigmoid_binary_cross_entropy(
            a, ta, weight=None if w is None else w.to(dtype),
            pos_weight=None if pw is None else pw.to(dtype), reduction=reduction,
        )  # fmt: skip
        ref = F.binary_cross_entropy_with_logits(
            b, tb, weight=w, pos_weight=pw, reduction=reduction
        )
        close(out, ref, dtype)
        backward_both(out, ref)
        close(a.grad, b.grad, dtype)
        close(ta.grad, tb.grad, dtype)


@pytest.mark.parametrize("convention", ["uniform", "others"])
def test_bce_label_smoothing_matches_autograd(convention):
    """Smoothed binary targets ((1-e) y + e/2, or (1-2e) y + e): loss and the gradients of the
    logits and of the targets equal autograd of F.binary_cross_entropy_with_logits."""
    gen = torch.Generator().manual_seed(41)
    x = 3 * torch.randn(6, 4, generator=gen, dtype=F64)
    t = torch.rand(6, 4, generator=gen, dtype=F64)
    pw = torch.rand(4, generator=gen, dtype=F64) + 0.5
    e = 0.2
    a, b = pair(x, F64)
    ta, tb = pair(t, F64)
    out = ce.sigmoid_binary_cross_entropy(
        a, ta, pos_weight=pw, label_smoothing=e, smoothing_convention=convention
    )
    smoothed = (1 - e) * tb + e / 2 if convention == "uniform" else (1 - 2 * e) * tb + e
    ref = F.binary_cross_entropy_with_logits(b, smoothed, pos_weight=pw)
    close(out, ref, F64)
    backward_both(out, ref)
    close(a.grad, b.grad, F64)
    close(ta.grad, tb.grad, F64)


def test_bce_is_finite_at_infinite_logits():
    x = torch.tensor([INF, -INF, INF, -INF], requires_grad=True)
    t = torch.tensor([1.0, 0.0, 0.0, 1.0])
    out = ce.sigmoid_binary_cross_entropy(x, t, reduction="none")
    assert out.tolist() == [0.0, 0.0, INF, INF]
    out[:2].sum().backward()
    assert x.grad.tolist() == [0.0, 0.0, 0.0, 0.0]
    assert torch.isnan(F.binary_cross_entropy_with_logits(x[:1], t[:1]))  # PyTorch: #49844


def test_bce_gradient_keeps_subnormal_sigmoids(cpu_blocks):
    """torch.sigmoid flushes sigmoid(z) to 0 below z = -88.7 in float32 (exp(-z) overflows):
    rows that reach there take the exact rule, the others torch's kernel; both against the
    float64 sigmoid rounded to float32."""
    z = torch.tensor([[-100.0, -95.0, -89.0, -50.0], [0.5, -3.0, 50.0, -80.0]])
    assert torch.sigmoid(z)[0, 0] == 0  # what the exact rule must not do
    x = z.clone().requires_grad_()
    ce.sigmoid_binary_cross_entropy(x, torch.zeros_like(z), reduction="sum").backward()
    want = torch.sigmoid(z.double()).float()
    assert want[0, 0] > 0
    torch.testing.assert_close(x.grad, want, rtol=1.3e-6, atol=0)


# ----------------------------------------------------------------- focal loss


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
        out = ce.softmax_focal_loss(got_x, y, axis=1, alpha=a_opt, gamma=gamma, reduction=reduction)
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
        backward_both(out, ref)
        torch.testing.assert_close(got_x.grad, ref_x.grad, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_at_infinite_logits_gives_the_limit_like_the_core(gamma, cpu_blocks):
    """The focal loss and its gradient at +-inf logits: the core's limits, finite, never NaN."""
    x = torch.tensor(INFINITE_ROWS, dtype=F64, requires_grad=True)
    y = torch.tensor([0, 0, 1, 2, 2])
    out = ce.softmax_focal_loss(x, y, axis=1, gamma=gamma, reduction="none")
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
    zero = ce.softmax_focal_loss(
        z, torch.tensor([1]), axis=1, alpha=alpha, gamma=gamma, reduction="sum"
    )
    assert float(zero) == 0.0


@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_target_logit_of_minus_inf_gives_a_finite_gradient(gamma, cpu_blocks):
    """A target logit of -inf (others finite): margin d = +inf, loss +inf, and the gradient is
    the finite limit f'(d) (r - e_t) with f'(+inf) = 1 (sigma(-d) softplus(d) is 0 * inf,
    whose limit is 0), r the softmax of the other classes; an ignored row beside it stays 0."""
    x = torch.tensor([[0.0, 1.0, -INF], [-INF, 5.0, 0.0], [1.0, 2.0, 3.0]], dtype=F64)
    x.requires_grad_()
    y = torch.tensor([2, 0, -100])
    out = ce.softmax_focal_loss(x, y, axis=1, gamma=gamma, reduction="none")
    out.backward(torch.ones_like(out))
    assert out.tolist() == [INF, INF, 0.0]
    assert torch.isfinite(x.grad).all()
    r0, r1 = torch.softmax(torch.tensor([0.0, 1.0], dtype=F64), 0).tolist()
    s1, s2 = torch.softmax(torch.tensor([5.0, 0.0], dtype=F64), 0).tolist()
    want = torch.tensor([[r0, r1, -1.0], [-1.0, s1, s2], [0.0, 0.0, 0.0]], dtype=F64)
    torch.testing.assert_close(x.grad, want, rtol=1e-12, atol=1e-15)
    summed = x.detach().clone().requires_grad_()
    ce.softmax_focal_loss(summed, y, axis=1, gamma=gamma, reduction="sum").backward()
    torch.testing.assert_close(summed.grad, want, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("gamma", [0.0, 0.25, 0.5, 1.0, 2.0])
def test_focal_gradient_is_finite_at_saturated_logits(gamma):
    x = torch.tensor([[1e4, 0.0, -1e4], [-1e4, 0.0, 1e4], [30.0, 0.0, 0.0]], requires_grad=True)
    loss = ce.softmax_focal_loss(x, torch.tensor([0, 0, 0]), axis=1, gamma=gamma)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(x.grad).all()


def test_focal_bfloat16_is_computed_in_float32():
    gen = torch.Generator().manual_seed(6)
    x = torch.randn(8, 4, generator=gen).bfloat16().requires_grad_()
    y = torch.randint(0, 4, (8,), generator=gen)
    out = ce.softmax_focal_loss(x, y, axis=1)
    out.backward()
    want = ce.softmax_focal_loss(x.detach().float(), y, axis=1)
    assert out.dtype == torch.bfloat16 and x.grad.dtype == torch.bfloat16
    torch.testing.assert_close(out.float(), want, rtol=1e-2, atol=1e-3)


# ----------------------------------------------------------------- closed forms, dtypes


GRADCHECK_TARGETS = torch.tensor([0, 3, -100, 1, 2])


def _gradcheck_case(name, gen):
    """(loss of the differentiable inputs, extra differentiable inputs) for one Function."""
    w = torch.rand(4, generator=gen, dtype=F64) + 0.5
    y = GRADCHECK_TARGETS
    if name == "ce-index":
        opts = {"label_smoothing": 0.2, "z_loss": 0.05, "softcap": 3.0, "reduction": "none"}
        return lambda x: ce.softmax_cross_entropy(x, y, axis=1, class_weight=w, **opts), []
    if name == "ce-index-others":
        opts = {"label_smoothing": 0.2, "smoothing_convention": "others"}
        return lambda x: ce.softmax_cross_entropy(x, y, axis=1, class_weight=w, **opts), []
    if name == "ce-prob":
        p = torch.softmax(torch.randn(5, 4, generator=gen, dtype=F64), 1)
        opts = {"label_smoothing": 0.1, "z_loss": 0.05, "softcap": 3.0}
        return lambda x, p: ce.softmax_cross_entropy(x, p, axis=1, class_weight=w, **opts), [p]
    if name == "bce":
        t = torch.rand(5, 4, generator=gen, dtype=F64)
        opts = {"weight": w - 0.5, "pos_weight": w, "label_smoothing": 0.1, "reduction": "sum"}
        return lambda x, t: ce.sigmoid_binary_cross_entropy(x, t, **opts), [t]
    assert name == "focal"
    opts = {"gamma": 1.5, "alpha": w, "reduction": "none"}
    return lambda x: ce.softmax_focal_loss(x, y, axis=1, **opts), []


@pytest.mark.parametrize("name", ["ce-index", "ce-index-others", "ce-prob", "bce", "focal"])
def test_closed_form_backward_passes_gradcheck(name):
    """Each Function's closed-form backward (logits, and the targets where they are
    differentiable) against finite differences, in float64."""
    gen = torch.Generator().manual_seed(42)
    fn, extra = _gradcheck_case(name, gen)
    x = (2 * torch.randn(5, 4, generator=gen, dtype=F64)).requires_grad_()
    inputs = (x, *(t.requires_grad_() for t in extra))
    assert torch.autograd.gradcheck(fn, inputs, eps=1e-6, atol=1e-7, rtol=1e-5)


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, y: ce.softmax_cross_entropy(x, y, axis=1),
        lambda x, y: ce.softmax_cross_entropy(x, y, axis=1, reduction="none"),
        lambda x, y: ce.softmax_focal_loss(x, y, axis=1),
        lambda x, y: ce.sigmoid_binary_cross_entropy(x, F.one_hot(y, 4).to(x.dtype)),
    ],
    ids=["ce", "ce-none", "focal", "bce"],
)
def test_integer_logits_are_computed_in_the_default_float(loss):
    """Integer logits are accepted (computed in torch's default float): the loss is a float
    tensor equal to that of the same values as float32, never truncated to an integer."""
    x = torch.tensor([[1, 2, -1, 0], [0, 3, 1, 1], [2, 2, 0, -3]])
    y = torch.tensor([0, 1, 2])
    got, want = loss(x, y), loss(x.float(), y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


# ----------------------------------------------------------------- torch.compile


@pytest.mark.parametrize(
    "loss",
    [
        lambda x, y: ce.softmax_cross_entropy(x, y, axis=1),
        lambda x, y: ce.softmax_cross_entropy(
            x, y, axis=1, label_smoothing=0.1, z_loss=1e-3, softcap=5.0
        ),
        lambda x, y: ce.softmax_focal_loss(x, y, axis=1),
        lambda x, y: ce.sigmoid_binary_cross_entropy(x, F.one_hot(y, 6)),
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


# ----------------------------------------------------------------- errors, imports


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 4, 1]), axis=1),
         ValueError,
         r"targets must be in \[0, 4\) or equal ignore_index=-100; found 4 at index 1"),
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1]), axis=1),
         ValueError, r"must have shape \(3,\).*got \(2,\)"),
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.rand(3, 5), axis=1),
         ValueError,
         r"input and probability targets must have the same shape; got \(3, 4\) and \(3, 5\)"),
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), axis=1,
                                          class_weight=torch.ones(3)), ValueError,
         r"weight must have shape \(4,\).*got shape \(3,\)"),
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0, 1, 2]), axis=1,
                                          reduction="avg"),
         ValueError, r"reduction must be one of"),
        (lambda: ce.sigmoid_binary_cross_entropy(torch.randn(3), torch.rand(4)),
         ValueError, r"logits and targets must have the same shape; got \(3,\) and \(4,\)"),
        (lambda: ce.softmax_focal_loss(torch.randn(3, 4), torch.rand(3), axis=1), TypeError,
         r"targets of shape \(3,\) look like class indices but have dtype torch.float32"),
        (lambda: ce.softmax_focal_loss(torch.randn(3, 4), torch.tensor([0, 1, -3]), axis=1),
         ValueError, r"found -3 at index 2"),
        (lambda: ce.softmax_cross_entropy(torch.randn(3, 4), torch.tensor([0.0, 1.0, 2.0]),
                                          axis=1), TypeError,
         r"targets of shape \(3,\) look like class indices but have dtype torch.float32; "
         r"class indices must be an integer array"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


def test_import_crossent_does_not_import_torch():
    code = "import sys, crossent; assert 'torch' not in sys.modules, 'torch imported'"
    subprocess.run([sys.executable, "-c", code], check=True)
