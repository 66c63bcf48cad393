"""The loss rules of src/crossent/_semantics.py, tested directly against independent references:
explicit target distributions, SciPy, and torch autograd of the textbook formulas (float64)."""

from __future__ import annotations

import math

import array_api_compat
import numpy as np
import pytest
from scipy import special

from conftest import to_np
from crossent import _semantics as sem

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(11)
inf = math.inf

# The rules run inside the public functions, which silence NumPy's floating-point warnings
# (0 * inf is computed, then replaced): do the same when calling them directly.
quiet = pytest.mark.filterwarnings("ignore:invalid value:RuntimeWarning")


def namespace(xp):
    """The Array API namespace crossent hands to the rules for arrays of ``xp``."""
    return array_api_compat.array_namespace(xp.asarray([0.0]))


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a))


# ------------------------------------------------------------------------- label smoothing


@pytest.mark.parametrize("k", [2, 3, 5, 10])
@pytest.mark.parametrize("e", [0.0, 0.1, 0.5, 1.0])
def test_both_smoothing_conventions_give_distributions(k, e):
    onehot = np.eye(k)[1]
    uniform = sem.smoothing(e, k, "uniform")
    q = uniform.on_target * onehot + uniform.per_class
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(q[1], 1 - e + e / k, rtol=1e-15)  # Szegedy et al., PyTorch
    np.testing.assert_allclose(np.delete(q, 1), e / k, rtol=1e-15, atol=1e-300)
    others = sem.smoothing(e, k, "others")
    q = others.on_target * onehot + others.per_class
    np.testing.assert_allclose(q.sum(), 1.0, rtol=1e-15)
    np.testing.assert_allclose(q[1], 1 - e, rtol=1e-15, atol=1e-15)  # exactly 1 - e
    np.testing.assert_allclose(np.delete(q, 1), e / (k - 1), rtol=1e-15, atol=1e-300)
    assert np.all(q >= -1e-15)


def test_no_smoothing_is_the_one_hot_target_in_both_conventions():
    for convention in sem.SMOOTHING_CONVENTIONS:
        assert sem.smoothing(0.0, 4, convention) == sem.Smoothing(1.0, 0.0)
    assert sem.SoftmaxCE(4).smoothing == sem.Smoothing(1.0, 0.0)


def test_others_convention_needs_two_classes():
    with pytest.raises(ValueError, match="2 classes"):
        sem.smoothing(0.1, 1, "others")
    uniform = sem.smoothing(0.1, 1, "uniform")
    assert math.isclose(uniform.on_target + uniform.per_class, 1.0)


def test_binary_targets_are_the_two_class_case(xp):
    ns = namespace(xp)
    y = np.array([0.0, 1.0, 0.3, 1.0])
    for e in (0.0, 0.2):
        uniform = to_np(sem.binary_targets(ns, xp.asarray(y), e, "uniform"))
        np.testing.assert_allclose(uniform, (1 - e) * y + e / 2, rtol=1e-15)
        others = to_np(sem.binary_targets(ns, xp.asarray(y), e, "others"))
        np.testing.assert_allclose(others, (1 - e) * y + e * (1 - y), rtol=1e-15)


# ---------------------------------------------------------------------- elementary rules


@quiet
def test_mul0_is_zero_times_anything_and_a_times_b_otherwise(xp):
    ns = namespace(xp)
    a = np.array([0.0, 0.0, 2.0, 0.5, -1.0, 0.0, 3.0])
    b = np.array([inf, -inf, 3.0, inf, inf, 5.0, -2.0])
    got = to_np(sem.mul0(ns, xp.asarray(a), xp.asarray(b)))
    np.testing.assert_array_equal(got, [0.0, 0.0, 6.0, inf, -inf, 0.0, -6.0])
    nonzero = a != 0
    np.testing.assert_array_equal(got[nonzero], (a * b)[nonzero])
    with np.errstate(invalid="ignore"):
        assert np.isnan(np.float64(0.0) * inf)  # what plain multiplication would give


def test_softplus_and_sigmoid_match_scipy(xp):
    ns = namespace(xp)
    x = np.array([-inf, -800.0, -50.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 50.0, 800.0, inf])
    np.testing.assert_allclose(to_np(sem.softplus(ns, xp.asarray(x))), np.logaddexp(0, x),
                               rtol=1e-14)  # fmt: skip
    np.testing.assert_allclose(to_np(sem.sigmoid(ns, xp.asarray(x))), special.expit(x),
                               rtol=1e-15)  # fmt: skip


def test_limit_rows_replace_infinite_rows_by_their_limit(xp):
    ns = namespace(xp)
    z = np.array(
        [[inf, 0.0, 1.0], [inf, inf, 1.0], [-inf, -inf, -inf], [0.5, -inf, 2.0], [inf, 0.0, 1.0]]
    )
    flags = np.array([True, True, True, False, False])
    got = to_np(sem.limit_rows(ns, xp.asarray(z), xp.asarray(flags)))
    want = np.array([[0, -inf, -inf], [0, 0, -inf], [0, 0, 0], [0.5, -inf, 2.0], [inf, 0.0, 1.0]])
    np.testing.assert_array_equal(got, want)
    # the limit's softmax is the limit of the softmax, and its log-sum-exp is finite
    for limit, approach in [
        (got[0], [1e300, 0.0, 1.0]),
        (got[1], [1e300, 1e300, 1.0]),
        (got[2], [-1e300, -1e300, -1e300]),
    ]:
        np.testing.assert_allclose(special.softmax(limit), special.softmax(approach), atol=1e-300)
        assert np.isfinite(special.logsumexp(limit))


def test_mean_scale_of_nothing_is_zero(xp):
    ns = namespace(xp)
    got = to_np(sem.mean_scale(ns, xp.asarray(np.array([0.0, 4.0, 0.5]))))
    np.testing.assert_array_equal(got, [0.0, 0.25, 2.0])


def test_mean_scale_of_zero_has_a_zero_gradient_under_autograd():
    ns = namespace(torch)
    count = torch.tensor([0.0, 4.0], dtype=torch.float64, requires_grad=True)
    scale = sem.mean_scale(ns, count)
    scale.sum().backward()
    np.testing.assert_array_equal(scale.detach().numpy(), [0.0, 0.25])
    np.testing.assert_array_equal(count.grad.numpy(), [0.0, -1 / 16])  # d(1/c)/dc = -1/c^2


def test_reduce(xp):
    ns = namespace(xp)
    losses = xp.asarray(np.array([1.0, 2.0, 3.0]))
    count = xp.asarray(4.0)
    np.testing.assert_array_equal(to_np(sem.reduce(ns, losses, "none", count)), [1.0, 2.0, 3.0])
    assert float(to_np(sem.reduce(ns, losses, "sum", count))) == 6.0
    assert float(to_np(sem.reduce(ns, losses, "mean", count))) == 1.5
    # the mean of nothing is 0, not 0 / 0
    empty = xp.asarray(np.zeros(0))
    assert float(to_np(sem.reduce(ns, empty, "mean", xp.asarray(0.0)))) == 0.0
    zeros = xp.asarray(np.zeros(3))
    assert float(to_np(sem.reduce(ns, zeros, "mean", xp.asarray(0.0)))) == 0.0


@quiet
@pytest.mark.parametrize(
    ("reduction", "normalizer"),
    [("none", None), ("sum", None), ("mean", None), ("mean", 7.0), ("mean", 0.0)],
)
def test_reduce_with_sample_weights_and_normalizer(xp, reduction, normalizer):
    """s_i l_i, their sum, and that sum over the normalizer (else the batch count; 0 over 0),
    against NumPy; d reduce / d l_i = loss_row_scale, by torch autograd."""
    ns = namespace(xp)
    losses = np.array([1.5, 0.0, 2.0, np.inf, 0.25])
    s = np.array([2.0, -1.0, -0.5, 0.0, 3.0])  # negative advantages; weight 0 removes inf
    count = np.asarray(4.0)  # float64 arrays on every library
    weighted = np.array([3.0, 0.0, -1.0, 0.0, 0.75])
    d = count if normalizer is None else normalizer
    want = {"none": weighted, "sum": weighted.sum(),
            "mean": weighted.sum() / d if d else 0.0}[reduction]  # fmt: skip
    norm = None if normalizer is None else xp.asarray(np.asarray(normalizer))
    got = sem.reduce(
        ns, xp.asarray(losses), reduction, xp.asarray(count), sample_weight=xp.asarray(s),
        normalizer=norm,
    )  # fmt: skip
    np.testing.assert_array_equal(to_np(got), want)
    # the gradient rule, on the finite rows
    rows = t64(np.where(np.isfinite(losses), losses, 0.0)).requires_grad_()
    sw, tn = t64(s), None if normalizer is None else t64(np.asarray(normalizer))
    ref = sem.reduce(namespace(torch), rows, reduction, t64(count), sample_weight=sw,
                     normalizer=tn)  # fmt: skip
    (ref * (t64(np.arange(5.0)) + 1 if reduction == "none" else 1)).sum().backward()
    scale = sem.loss_row_scale(ns, reduction, xp.asarray(count), sample_weight=xp.asarray(s),
                               normalizer=norm)  # fmt: skip
    upstream = np.arange(5.0) + 1 if reduction == "none" else 1.0
    np.testing.assert_allclose(upstream * to_np(scale), rows.grad.numpy(), rtol=1e-15)
    # without sample weights the scale is the mean's 1 / D (a scalar), or 1
    plain = sem.loss_row_scale(ns, reduction, xp.asarray(count), normalizer=norm)
    assert float(to_np(plain)) == (1.0 if reduction != "mean" else (1 / d if d else 0.0))


def test_z_loss_rows_are_the_z_part_of_the_loss(xp):
    ns = namespace(xp)
    lse, w_t = np.array([1.0, -2.0, 3.0]), np.array([0.5, 2.0, 0.0])
    valid = np.array([True, True, False])
    rule = sem.SoftmaxCE(4, z_loss=0.1)
    got = sem.z_loss_rows(ns, rule, lse=xp.asarray(lse), w_t=xp.asarray(w_t),
                          valid=xp.asarray(valid))  # fmt: skip
    np.testing.assert_allclose(to_np(got), [0.05, 0.8, 0.0], rtol=1e-15)
    none = sem.z_loss_rows(ns, sem.SoftmaxCE(4), lse=xp.asarray(lse), w_t=xp.asarray(w_t),
                           valid=xp.asarray(valid))  # fmt: skip
    np.testing.assert_array_equal(to_np(none), 0.0)


# ---------------------------------------------------------------- softmax cross-entropy rows


def torch_target_distribution(y, k, e, convention):
    """q of probability (or one-hot) targets ``y``: each class gets (1 - e) y_c plus e/K, or
    e/(K-1) times (1 - y_c) ("others")."""
    if convention == "uniform":
        return (1 - e) * y + e / k
    return (1 - e) * y + e / (k - 1) * (1 - y)


@pytest.mark.parametrize("convention", ["uniform", "others"])
@pytest.mark.parametrize(
    ("e", "zeta", "weighted"),
    [(0.0, 0.0, False), (0.2, 0.0, True), (0.1, 0.05, True), (0.0, 0.1, False)],
)
def test_softmax_ce_rows_and_coefficients_against_autograd(xp, convention, e, zeta, weighted):
    """ℓ = Σ_c w_c q_c (-log p_c) + ζ w_t LSE² per row, ∂ℓ/∂z = a p - b e_t - r w."""
    ns = namespace(xp)
    n, k = 6, 4
    z = RNG.normal(scale=2.0, size=(n, k)) + 1.0
    t = RNG.integers(0, k, size=n)
    valid = np.ones(n, dtype=bool)
    valid[2] = False  # an ignored row
    w = RNG.uniform(0.3, 2.0, size=k) if weighted else np.ones(k)
    # the reference, by torch autograd
    zt = t64(z.copy()).requires_grad_(True)
    q = torch_target_distribution(F.one_hot(t64(t), k).double(), k, e, convention)
    lse_t = torch.logsumexp(zt, -1)
    ref = -(t64(w) * q * F.log_softmax(zt, -1)).sum(-1) + zeta * t64(w[t]) * lse_t**2
    ref = torch.where(t64(valid), ref, 0.0)
    ref.sum().backward()
    # the rule, from the row statistics
    lse = special.logsumexp(z, axis=-1)
    nll = lse[:, None] - z
    w_t = np.where(valid, w[t], 0.0)
    rule = sem.SoftmaxCE(k, label_smoothing=e, smoothing_convention=convention, z_loss=zeta)
    loss = sem.softmax_ce_loss(
        ns,
        rule,
        nll_t=xp.asarray(nll[np.arange(n), t]),
        smooth_nll=xp.asarray((w * nll).sum(-1)),
        lse=xp.asarray(lse),
        w_t=xp.asarray(w_t),
        valid=xp.asarray(valid),
    )
    np.testing.assert_allclose(to_np(loss), ref.detach().numpy(), rtol=1e-12, atol=1e-14)
    a, b, r = sem.softmax_ce_coefficients(
        ns, rule, lse=xp.asarray(lse), w_t=xp.asarray(w_t), valid=xp.asarray(valid),
        w_sum=float(w.sum()),
    )  # fmt: skip
    assert (r is None) == (e == 0)
    r = np.zeros(n) if r is None else to_np(r)
    p = special.softmax(z, axis=-1)
    g = to_np(a)[:, None] * p - to_np(b)[:, None] * np.eye(k)[t] - r[:, None] * w
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-14)


@pytest.mark.parametrize("convention", ["uniform", "others"])
@pytest.mark.parametrize(("e", "zeta"), [(0.0, 0.0), (0.2, 0.0), (0.1, 0.05)])
def test_probability_targets_loss_and_coefficient_against_autograd(xp, convention, e, zeta):
    """q = w (α y + β); ℓ = -Σ q log p + ζ LSE², ∂ℓ/∂z = (Σ q + 2 ζ LSE) p - q."""
    ns = namespace(xp)
    n, k = 5, 4
    z = RNG.normal(scale=2.0, size=(n, k))
    y = RNG.dirichlet(np.ones(k), size=n)
    w = RNG.uniform(0.3, 2.0, size=k)
    zt = t64(z.copy()).requires_grad_(True)
    q_ref = t64(w) * torch_target_distribution(t64(y), k, e, convention)
    ref = -(q_ref * F.log_softmax(zt, -1)).sum(-1) + zeta * torch.logsumexp(zt, -1) ** 2
    ref.sum().backward()
    rule = sem.SoftmaxCE(k, label_smoothing=e, smoothing_convention=convention, z_loss=zeta)
    q = to_np(sem.probability_targets(ns, rule, xp.asarray(y), xp.asarray(w)))
    np.testing.assert_allclose(q, q_ref.numpy(), rtol=1e-14)
    lse = special.logsumexp(z, axis=-1)
    cross = -(q * special.log_softmax(z, axis=-1)).sum(-1)
    loss = sem.probability_ce_loss(ns, rule, cross=xp.asarray(cross), lse=xp.asarray(lse))
    np.testing.assert_allclose(to_np(loss), ref.detach().numpy(), rtol=1e-12)
    a = sem.probability_ce_coefficient(ns, rule, q_sum=xp.asarray(q.sum(-1)), lse=xp.asarray(lse))
    g = to_np(a)[:, None] * special.softmax(z, axis=-1) - q
    np.testing.assert_allclose(g, zt.grad.numpy(), rtol=1e-12, atol=1e-14)


# ------------------------------------------------------------------------------ focal loss


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0, 3.5])
def test_focal_loss_and_slope_of_the_margin(xp, gamma):
    """d = LSE_{c≠t} z_c - z_t: the loss is (1 - p_t)^γ (-log p_t), the slope its derivative."""
    ns = namespace(xp)
    z = RNG.normal(scale=2.0, size=(8, 4))
    t = RNG.integers(0, 4, size=8)
    others = np.where(np.eye(4, dtype=bool)[t], -inf, z)
    d = special.logsumexp(others, axis=-1) - z[np.arange(8), t]
    p_t = special.softmax(z, axis=-1)[np.arange(8), t]
    got = to_np(sem.focal_loss(ns, xp.asarray(d), gamma))
    np.testing.assert_allclose(got, (1 - p_t) ** gamma * -np.log(p_t), rtol=1e-12)
    dt = t64(d.copy()).requires_grad_(True)
    (torch.sigmoid(dt) ** gamma * F.softplus(dt)).sum().backward()  # the naive f(d)
    slope = to_np(sem.focal_slope(ns, xp.asarray(d), gamma))
    np.testing.assert_allclose(slope, dt.grad.numpy(), rtol=1e-12)


@quiet
@pytest.mark.parametrize("gamma", [0.0, 0.5, 2.0])
def test_focal_limits_at_infinite_margins(xp, gamma):
    # d = -inf: a certain target (loss 0, slope 0); d = +inf: target logit -inf (slope 1)
    ns = namespace(xp)
    d = xp.asarray(np.array([-inf, inf, -800.0, 800.0]))
    loss = to_np(sem.focal_loss(ns, d, gamma))
    np.testing.assert_array_equal(loss[[0, 1]], [0.0, inf])
    slope = to_np(sem.focal_slope(ns, d, gamma))
    assert not np.isnan(slope).any()
    np.testing.assert_allclose(slope, [0.0, 1.0, 0.0, 1.0], atol=1e-300)


# -------------------------------------------------------------------- binary cross-entropy


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_ce_loss_and_grad_against_torch(xp, weighted):
    ns = namespace(xp)
    z = RNG.normal(scale=3.0, size=(5, 3))
    y = RNG.uniform(size=(5, 3))
    y[:, 0] = np.round(y[:, 0])
    pos = RNG.uniform(0.5, 3.0, size=3) if weighted else None
    zt = t64(z.copy()).requires_grad_(True)
    ref = F.binary_cross_entropy_with_logits(
        zt, t64(y), pos_weight=None if pos is None else t64(pos), reduction="none"
    )
    ref.sum().backward()
    pw = None if pos is None else xp.asarray(pos)
    for guard in (False, True):
        loss = sem.binary_ce_loss(ns, xp.asarray(z), xp.asarray(y), pw, guard_infinite=guard)
        np.testing.assert_allclose(to_np(loss), ref.detach().numpy(), rtol=1e-12)
    grad = sem.binary_ce_grad(ns, xp.asarray(z), xp.asarray(y), pw)
    np.testing.assert_allclose(to_np(grad), zt.grad.numpy(), rtol=1e-12, atol=1e-15)


@quiet
def test_binary_ce_guard_removes_zero_terms_at_infinite_logits(xp):
    ns = namespace(xp)
    z = xp.asarray(np.array([inf, -inf, inf, -inf, inf]))
    y = xp.asarray(np.array([1.0, 0.0, 0.0, 1.0, 0.5]))
    pw = xp.asarray(np.array([2.0]))
    got = to_np(sem.binary_ce_loss(ns, z, y, pw, guard_infinite=True))
    np.testing.assert_array_equal(got, [0.0, 0.0, inf, inf, inf])
    grad = to_np(sem.binary_ce_grad(ns, z, y, pw))
    np.testing.assert_array_equal(grad, [0.0, 0.0, 1.0, -2.0, 0.5])
