"""softmax_cross_entropy and its closed-form gradient against PyTorch and float64 formulas.

PyTorch puts the class axis at dim 1; crossent at -1 by default, so the references move it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special

import crossent as ce
from conftest import to_np

from ._support import (
    REDUCTIONS,
    Case,
    check_autograd_through_crossent_equals_closed_form,
    check_closed_form_equals_autograd_of_reference,
    check_closed_form_equals_finite_differences,
    close,
    load,
    on,
    over_backends,
    params,
    reduce_np,
    t64,
    to_dim1,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)
K = 5
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def index_targets(shape, ignore_index=None, rng=RNG):
    t = rng.integers(0, K, size=shape)
    if ignore_index is not None:
        flat = t.reshape(-1)
        flat[::3] = ignore_index
        flat[1] = (ignore_index + 1) % K if 0 <= ignore_index < K else 1  # some survive
    return t


def torch_ce(logits, targets, **kw):
    z = t64(to_dim1(logits))
    t = t64(targets) if targets.dtype.kind in "iu" else t64(to_dim1(targets))
    if kw.get("weight") is not None:
        kw["weight"] = t64(kw["weight"])
    return F.cross_entropy(z, t, **kw).numpy()


def torch_ce_grad(logits, targets, **kw):
    """d sum(F.cross_entropy) / d logits by torch autograd, in crossent's (..., K) layout."""
    z = t64(logits.copy()).requires_grad_(True)
    zc = torch.movedim(z, -1, 1) if z.ndim > 2 else z
    if kw.get("weight") is not None:
        kw["weight"] = t64(kw["weight"])
    out = F.cross_entropy(zc, t64(targets), **kw)
    (out.sum() if out.ndim else out).backward()
    return z.grad.numpy()


# ------------------------------------------------------------------------ index targets

SCE_GRID = list(
    itertools.product(
        [(6, K), (3, 4, K)],  # shape
        [False, True],  # class weights
        [None, -100, 2],  # ignore_index in the targets (2: a real class id, pytorch #63004)
        [0.0, 0.15],  # label smoothing
        REDUCTIONS,
    )
)


@pytest.mark.parametrize(
    ("backend", "shape", "weighted", "ignore", "smoothing", "reduction"),
    over_backends(SCE_GRID, everywhere=lambda combo: len(combo[0]) == 2),
)
def test_softmax_ce_index_targets_match_torch(
    backend, shape, weighted, ignore, smoothing, reduction
):
    """Loss and closed-form gradient == F.cross_entropy and its autograd (2-D: every backend)."""
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=shape)
    targets = index_targets(shape[:-1], ignore)
    weight = WEIGHT if weighted else None
    ignore_index = -100 if ignore is None else ignore
    opts = dict(ignore_index=ignore_index, label_smoothing=smoothing, reduction=reduction)
    want = torch_ce(logits, targets, weight=weight, **opts)
    want_grad = torch_ce_grad(logits, targets, weight=weight, **opts)
    if weighted:
        opts["class_weight"] = xp.asarray(WEIGHT)
    z, t = xp.asarray(logits), xp.asarray(targets)
    close(ce.softmax_cross_entropy(z, t, **opts), want)
    close(ce.grad.softmax_cross_entropy(z, t, **opts), want_grad, rtol=1e-10)


def test_ignore_index_that_is_a_class_still_enters_the_softmax():
    # pytorch #63004: class 2 is ignored as a target but its logit stays in every softmax
    logits = np.array([[0.0, 1.0, 5.0], [2.0, 0.0, 1.0]])
    got = ce.softmax_cross_entropy(logits, np.array([2, 0]), ignore_index=2, reduction="none")
    np.testing.assert_allclose(got, [0.0, special.logsumexp(logits[1]) - 2.0], rtol=1e-14)
    mean = ce.softmax_cross_entropy(logits, np.array([1, 0]), ignore_index=2)
    want = (special.logsumexp(logits, axis=-1) - [1.0, 2.0]).mean()
    np.testing.assert_allclose(mean, want, rtol=1e-14)


def test_weighted_mean_normalizer_is_sum_of_target_weights():
    # pytorch #50528: the weighted mean is sum w[y] l / sum w[y], not the mean of "none"
    logits = RNG.normal(size=(5, K))
    targets = np.array([0, 1, 1, 3, 4])
    per = ce.softmax_cross_entropy(logits, targets, class_weight=WEIGHT, reduction="none")
    mean = ce.softmax_cross_entropy(logits, targets, class_weight=WEIGHT)
    np.testing.assert_allclose(mean, per.sum() / WEIGHT[targets].sum(), rtol=1e-14)
    assert not np.isclose(mean, per.mean())


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8"])
def test_integer_target_dtypes(xp, name):
    # "Integer targets of any integer dtype" (DESIGN.md): not only int64
    logits = RNG.normal(size=(4, K))
    targets = np.array([0, 4, 2, 1])
    got = ce.softmax_cross_entropy(xp.asarray(logits), xp.asarray(targets, dtype=getattr(xp, name)))
    close(got, torch_ce(logits, targets))


def test_weight_is_a_deprecated_alias_of_class_weight():
    z, t = RNG.normal(size=(4, K)), np.array([0, 4, 2, 1])
    for fn in (ce.softmax_cross_entropy, ce.grad.softmax_cross_entropy):
        with pytest.warns(DeprecationWarning, match="class_weight="):
            old = fn(z, t, weight=WEIGHT, label_smoothing=0.1)
        np.testing.assert_array_equal(old, fn(z, t, class_weight=WEIGHT, label_smoothing=0.1))
        with pytest.raises(TypeError, match="class_weight"):
            fn(z, t, weight=WEIGHT, class_weight=WEIGHT)


# ------------------------------------------------------------------------ probability targets


@pytest.mark.parametrize(
    ("backend", "shape", "weighted", "smoothing", "reduction"),
    over_backends(
        list(itertools.product([(6, K), (3, 4, K)], [False, True], [0.0, 0.2], REDUCTIONS))
    ),
)
def test_softmax_ce_probability_targets_match_torch(backend, shape, weighted, smoothing, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=shape)
    targets = RNG.dirichlet(np.ones(K), size=shape[:-1])
    targets[0, ...] = np.eye(K)[1]  # a hard row among the soft ones
    weight = WEIGHT if weighted else None
    want = torch_ce(logits, targets, weight=weight, label_smoothing=smoothing, reduction=reduction)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        class_weight=None if weight is None else xp.asarray(weight),
        label_smoothing=smoothing,
        reduction=reduction,
    )
    close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_axis_one_equals_torch_dim_one(xp, reduction):
    logits = RNG.normal(size=(3, K, 4))  # PyTorch's own layout (N, C, d1)
    targets = index_targets((3, 4), -100)
    want = F.cross_entropy(
        t64(logits), t64(targets), weight=t64(WEIGHT), label_smoothing=0.1, reduction=reduction
    ).numpy()
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        axis=1,
        class_weight=xp.asarray(WEIGHT),
        label_smoothing=0.1,
        reduction=reduction,
    )
    close(got, want)
    # probability targets along dim 1, with and without class weights and smoothing
    soft = np.moveaxis(RNG.dirichlet(np.ones(K), size=(3, 4)), -1, 1)
    for weight, smoothing in [(None, 0.0), (None, 0.1), (WEIGHT, 0.1)]:
        want = F.cross_entropy(
            t64(logits),
            t64(soft),
            weight=None if weight is None else t64(weight),
            label_smoothing=smoothing,
            reduction=reduction,
        )
        got = ce.softmax_cross_entropy(
            xp.asarray(logits),
            xp.asarray(soft),
            axis=1,
            class_weight=None if weight is None else xp.asarray(weight),
            label_smoothing=smoothing,
            reduction=reduction,
        )
        close(got, want.numpy())


# ------------------------------------------------------------- z-loss, conventions, softcap


def numpy_sce(logits, targets, *, weight=None, ignore_index=-100, e=0.0, z=0.0, others=False):
    """(per-sample losses, mean denominator): the spec's float64 formula, index targets."""
    k = logits.shape[-1]
    w = np.ones(k) if weight is None else weight
    lse = special.logsumexp(logits, axis=-1)
    nlp = lse[..., None] - logits
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    wy = np.where(valid, w[safe], 0.0)
    onehot = np.eye(k)[safe]
    # the target distribution: e/K on every class, or e/(K-1) on every other class
    q = (1 - e) * onehot + (e / (k - 1) * (1 - onehot) if others else e / k)
    per = np.where(valid, (w * q * nlp).sum(-1), 0.0) + z * wy * lse**2
    return per, wy.sum()


@pytest.mark.parametrize(
    ("backend", "weighted", "smoothing", "coefficient", "reduction"),
    over_backends(
        list(itertools.product([False, True], [0.0, 0.1], [1e-3, 1e-2], REDUCTIONS)),
        everywhere=lambda combo: True,
    ),
)
def test_z_loss_index_targets_match_formula(backend, weighted, smoothing, coefficient, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=3.0, size=(3, 4, K)) + 5.0  # lse far from 0
    targets = index_targets((3, 4), -100)
    weight = WEIGHT if weighted else None
    per, denom = numpy_sce(logits, targets, weight=weight, e=smoothing, z=coefficient)
    base, _ = numpy_sce(logits, targets, weight=weight, e=smoothing)
    # the formula without the z term is PyTorch's
    np.testing.assert_allclose(
        base,
        torch_ce(logits, targets, weight=weight, label_smoothing=smoothing, reduction="none"),
        rtol=1e-12,
    )
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        class_weight=None if weight is None else xp.asarray(weight),
        label_smoothing=smoothing,
        z_loss=coefficient,
        reduction=reduction,
    )
    close(got, reduce_np(per, reduction, denom))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_z_loss_probability_targets_match_formula(xp, reduction):
    logits = RNG.normal(scale=3.0, size=(6, K)) - 4.0
    soft = RNG.dirichlet(np.ones(K), size=6)
    lse = special.logsumexp(logits, axis=-1)
    q = 0.9 * soft + 0.1 / K
    per = -(WEIGHT * q * (logits - lse[:, None])).sum(-1) + 0.01 * lse**2
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(soft),
        class_weight=xp.asarray(WEIGHT),
        label_smoothing=0.1,
        z_loss=0.01,
        reduction=reduction,
    )
    close(got, reduce_np(per, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_smoothing_conventions_match_formula(xp, weighted, reduction):
    """ "uniform" gives the true class 1 - e + e/K (PyTorch); "others" exactly 1 - e."""
    logits = RNG.normal(scale=2.0, size=(3, 4, K))
    targets = index_targets((3, 4), -100)
    weight = WEIGHT if weighted else None
    opts = dict(label_smoothing=0.2, reduction=reduction)
    if weighted:
        opts["class_weight"] = xp.asarray(WEIGHT)
    z, t = xp.asarray(logits), xp.asarray(targets)
    for convention in ("uniform", "others"):
        per, denom = numpy_sce(logits, targets, weight=weight, e=0.2, others=convention == "others")
        got = ce.softmax_cross_entropy(z, t, smoothing_convention=convention, **opts)
        close(got, reduce_np(per, reduction, denom))
    # probability targets: each class gets (1 - e) y_c + e/(K-1) (1 - y_c)
    soft = RNG.dirichlet(np.ones(K), size=(3, 4))
    q = 0.8 * soft + 0.2 / (K - 1) * (1 - soft)
    w = np.ones(K) if weight is None else weight
    per = -(w * q * special.log_softmax(logits, axis=-1)).sum(-1)
    got = ce.softmax_cross_entropy(z, xp.asarray(soft), smoothing_convention="others", **opts)
    close(got, reduce_np(per, reduction))


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_softcap_is_applied_first(xp, reduction):
    """softcap=s is the cross-entropy (and z-loss) of s tanh(z / s) (Gemma 2)."""
    logits = RNG.normal(scale=8.0, size=(6, K))
    targets = index_targets((6,), -100)
    capped = 5.0 * np.tanh(logits / 5.0)
    per, denom = numpy_sce(capped, targets, weight=WEIGHT, e=0.1, z=1e-2)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        class_weight=xp.asarray(WEIGHT),
        label_smoothing=0.1,
        z_loss=1e-2,
        softcap=5.0,
        reduction=reduction,
    )
    close(got, reduce_np(per, reduction, denom))
    want = torch_ce(capped, targets, label_smoothing=0.1, reduction=reduction)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits), xp.asarray(targets), label_smoothing=0.1, softcap=5.0,
        reduction=reduction,
    )  # fmt: skip
    close(got, want)


def test_smoothing_in_the_loss_equals_smoothed_targets():
    z, y = RNG.normal(size=(5, K)), RNG.integers(0, K, size=5)
    a = ce.softmax_cross_entropy(z, y, label_smoothing=0.2)
    b = ce.softmax_cross_entropy(z, ce.smooth_labels(y, num_classes=K, label_smoothing=0.2))
    np.testing.assert_allclose(a, b, rtol=1e-13)
    c = ce.softmax_cross_entropy(z, y, label_smoothing=0.2, smoothing_convention="others")
    d = ce.softmax_cross_entropy(
        z, ce.smooth_labels(y, num_classes=K, label_smoothing=0.2, smoothing_convention="others")
    )
    np.testing.assert_allclose(c, d, rtol=1e-13)


# ------------------------------------------------------------------- documented deviations


@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_all_targets_ignored_give_zero_and_zero_gradient(reduction, smoothing, weighted):
    logits = torch.tensor(RNG.normal(size=(4, K)), requires_grad=True)
    targets = torch.full((4,), -100)
    loss = ce.softmax_cross_entropy(
        logits,
        targets,
        class_weight=t64(WEIGHT) if weighted else None,
        label_smoothing=smoothing,
        reduction=reduction,
    )
    # PyTorch gives NaN here (pytorch #70348)
    assert torch.isnan(F.cross_entropy(logits.detach(), targets, label_smoothing=smoothing))
    np.testing.assert_array_equal(to_np(loss), np.zeros(4) if reduction == "none" else 0.0)
    loss.sum().backward()
    np.testing.assert_array_equal(logits.grad.numpy(), np.zeros((4, K)))


def test_all_ignored_on_every_backend(xp):
    logits = xp.asarray(RNG.normal(size=(2, 3, K)))
    targets = xp.asarray(np.full((2, 3), 7))
    got = ce.softmax_cross_entropy(logits, targets, ignore_index=7, z_loss=0.1)
    assert float(to_np(got)) == 0.0


def test_all_ignored_gives_zero_gradient():
    g = ce.grad.softmax_cross_entropy(
        RNG.normal(size=(3, K)), np.full(3, -100), label_smoothing=0.1
    )
    np.testing.assert_array_equal(g, np.zeros((3, K)))


def test_infinite_logits_give_the_limit(xp):
    inf = math.inf
    logits = np.array(
        [[inf, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, -inf, 2.0]]
    )
    targets = np.array([0, 1, 1, 0, 2])
    got = to_np(ce.softmax_cross_entropy(xp.asarray(logits), xp.asarray(targets), reduction="none"))
    want = [0.0, inf, np.logaddexp(0.0, 1.0), inf, 0.0]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert not np.isnan(got).any()
    # finite rows only: the mean is finite; and label smoothing never makes a NaN
    finite = ce.softmax_cross_entropy(xp.asarray(logits[[0, 2, 4]]), xp.asarray(targets[[0, 2, 4]]))
    np.testing.assert_allclose(to_np(finite), np.logaddexp(0.0, 1.0) / 3, rtol=1e-14)
    smoothed = to_np(
        ce.softmax_cross_entropy(
            xp.asarray(logits), xp.asarray(targets), label_smoothing=0.1, reduction="none"
        )
    )
    assert not np.isnan(smoothed).any()


@pytest.mark.parametrize(
    "opts",
    [{"z_loss": 0.1}, {"z_loss": 0.1, "label_smoothing": 0.1, "class_weight": WEIGHT[:3]}],
    ids=["z", "z-smooth-weight"],
)
def test_z_loss_gradient_at_infinite_rows_is_that_of_the_limit(xp, opts):
    """A row with an infinite log-sum-exp gets the (finite) gradient of its limit: 0 on its
    maxima and -inf elsewhere for a row holding +inf, uniform for a row of -inf."""
    inf = math.inf
    logits = np.array([[inf, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, -inf, -inf], [0.5, -1.0, 2.0]])
    limit = np.array([[0.0, -inf, -inf], [0.0, -inf, -inf], [0.0, 0.0, 0.0], [0.5, -1.0, 2.0]])
    targets = np.array([0, 1, 2, 1])
    for reduction in ("sum", "mean"):
        options = {**opts, "reduction": reduction}
        z = t64(limit.copy()).requires_grad_(True)
        ref_softmax_ce(z, t64(targets), **options).backward()
        want = z.grad.numpy()
        assert np.isfinite(want).all()
        got = ce.grad.softmax_cross_entropy(
            xp.asarray(logits), xp.asarray(targets), **on(xp, options)
        )
        np.testing.assert_allclose(to_np(got), want, rtol=1e-12, atol=1e-15)
        # the torch path (autograd Function) agrees
        z = t64(logits.copy()).requires_grad_(True)
        ce.softmax_cross_entropy(z, t64(targets), **on(torch, options)).backward()
        np.testing.assert_allclose(z.grad.numpy(), want, rtol=1e-12, atol=1e-15)


# ------------------------------------------------------------------------------- gradients


def ref_softmax_ce(z, t, *, class_weight=None, ignore_index=-100, label_smoothing=0.0,
                   smoothing_convention="uniform", z_loss=0.0, softcap=None, reduction="mean",
                   axis=-1):  # fmt: skip
    """Torch float64 reference: F.cross_entropy (or the "others" target written out), plus
    the z-loss, after the soft cap."""
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = torch.movedim(z, axis, -1)
    index = t.dtype == torch.int64
    if not index:
        t = torch.movedim(t, axis, -1)
    k = z.shape[-1]
    w = torch.ones(k, dtype=z.dtype) if class_weight is None else t64(class_weight)
    valid = t != ignore_index if index else torch.ones(z.shape[:-1], dtype=torch.bool)
    if smoothing_convention == "uniform":
        per = F.cross_entropy(
            torch.movedim(z, -1, 1) if z.ndim > 2 else z,
            t if index else (torch.movedim(t, -1, 1) if t.ndim > 2 else t),
            weight=None if class_weight is None else w,
            ignore_index=ignore_index,
            label_smoothing=label_smoothing,
            reduction="none",
        )
    else:
        y = F.one_hot(t.clamp(0), k).to(z.dtype) if index else t
        e = label_smoothing
        q = (1 - e) * y + e / (k - 1) * (1 - y)
        per = torch.where(valid, -(w * q * F.log_softmax(z, -1)).sum(-1), 0.0)
    lse = torch.logsumexp(z, dim=-1)
    if index:
        wy = torch.where(valid, w[t.clamp(0)], 0)
        per = per + z_loss * wy * lse**2
        denom = wy.sum()
    else:
        per = per + z_loss * lse**2
        denom = per.numel()
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


GRNG = np.random.default_rng(99)
W4 = np.array([0.5, 2.0, 1.0, 3.0])


def logits(*shape, scale=2.0):
    return GRNG.normal(scale=scale, size=shape)


def labels(*shape, ignore=None, k=4):
    t = GRNG.integers(0, k, size=shape)
    if ignore is not None:
        t.reshape(-1)[::3] = ignore
        t.reshape(-1)[1] = 1
    return t


def soft(*shape, k=4):
    return GRNG.dirichlet(np.ones(k), size=shape)


def case(id, x, t, **opts):
    return Case(id, "softmax_cross_entropy", ref_softmax_ce, x, t, opts)


CASES = [
    case("sce", logits(5, 4), labels(5)),
    case("sce-sum", logits(5, 4), labels(5), reduction="sum"),
    case("sce-none", logits(5, 4), labels(5), reduction="none"),
    case("sce-weight", logits(6, 4), labels(6), class_weight=W4),
    case("sce-ignore", logits(2, 3, 4), labels(2, 3, ignore=-100), class_weight=W4),
    case("sce-ignore-class", logits(6, 4), labels(6, ignore=2), ignore_index=2,
         label_smoothing=0.1),
    case("sce-smooth-weight", logits(6, 4), labels(6), class_weight=W4, label_smoothing=0.2),
    case("sce-weight-smooth-k5", logits(7, 5, scale=3.0), labels(7, k=5), class_weight=WEIGHT,
         label_smoothing=0.1),
    case("sce-zloss", logits(6, 4) + 3.0, labels(6, ignore=-100), class_weight=W4, z_loss=0.05,
         label_smoothing=0.1),
    case("sce-3d-all", logits(2, 3, 4), labels(2, 3, ignore=-100), class_weight=W4,
         label_smoothing=0.1, z_loss=0.01),
    case("sce-probs", logits(5, 4), soft(5), class_weight=W4, label_smoothing=0.1, z_loss=0.01),
    case("sce-axis1", logits(2, 4, 3), labels(2, 3), axis=1, class_weight=W4,
         label_smoothing=0.1),
    case("sce-others", logits(6, 4), labels(6, ignore=-100), class_weight=W4,
         label_smoothing=0.2, smoothing_convention="others", reduction="sum"),
    case("sce-others-probs", logits(5, 4), soft(5), label_smoothing=0.2,
         smoothing_convention="others"),
    case("sce-softcap", logits(6, 4, scale=6.0), labels(6, ignore=-100), class_weight=W4,
         label_smoothing=0.1, z_loss=0.01, softcap=4.0),
    case("sce-softcap-probs", logits(5, 4, scale=6.0), soft(5), softcap=3.0, reduction="none"),
]  # fmt: skip


@params(CASES)
def test_closed_form_equals_autograd_of_reference(xp, case):
    check_closed_form_equals_autograd_of_reference(xp, case)


@params(CASES)
def test_closed_form_equals_finite_differences(case):
    check_closed_form_equals_finite_differences(case)


@params(CASES)
def test_autograd_through_crossent_equals_closed_form(case):
    check_autograd_through_crossent_equals_closed_form(case)


def test_softmax_gradient_is_p_minus_y():
    x, t = logits(3, 4), labels(3)
    g = ce.grad.softmax_cross_entropy(x, t, reduction="sum")
    np.testing.assert_allclose(g, special.softmax(x, axis=-1) - np.eye(4)[t], atol=1e-15)
    # rows sum to zero: the gradient moves probability mass, it does not create it
    np.testing.assert_allclose(g.sum(-1), 0.0, atol=1e-15)


@pytest.mark.parametrize("dtype", ["float32", "float16"])
def test_closed_form_keeps_dtype(dtype):
    x = logits(3, 4).astype(dtype)
    g = ce.grad.softmax_cross_entropy(x, labels(3))
    assert g.dtype == np.dtype(dtype)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "poly_loss", "softmax_focal_loss"])
def test_ignore_index_with_probability_targets_raises_as_torch(name):
    z = RNG.normal(size=(3, K))
    q = special.softmax(RNG.normal(size=(3, K)), axis=-1)
    with pytest.raises(RuntimeError, match="ignore_index is not supported"):
        torch.nn.functional.cross_entropy(t64(z), t64(q), ignore_index=1)
    if name == "softmax_focal_loss":  # takes class indices only
        with pytest.raises(TypeError, match="integer class indices"):
            ce.softmax_focal_loss(z, q, ignore_index=1)
        return
    with pytest.raises(ValueError, match="ignore_index=1 applies to class-index targets only"):
        getattr(ce, name)(z, q, ignore_index=1)
    # the default -100 is PyTorch's default too, and it accepts it with probabilities
    close(ce.softmax_cross_entropy(z, q), torch_ce(z, q))
