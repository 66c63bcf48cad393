"""Invariants with hypothesis: they hold for every input, not only the ones we thought of."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

import crossent as ce

SETTINGS = settings(max_examples=50, deadline=None)
# the tests that absorbed a twin from the former test_invariants.py keep its 60 examples
SETTINGS_60 = settings(max_examples=60, deadline=None)
finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False, width=64)


@st.composite
def logits_and_targets(draw, max_classes=6, extra_dims=False):
    k = draw(st.integers(2, max_classes))
    n = draw(st.integers(1, 6))
    shape = (n, draw(st.integers(1, 3)), k) if extra_dims and draw(st.booleans()) else (n, k)
    z = draw(hnp.arrays(np.float64, shape, elements=finite))
    t = draw(hnp.arrays(np.int64, shape[:-1], elements=st.integers(0, k - 1)))
    return z, t


@st.composite
def distributions(draw, k=None, zeros=True):
    k = draw(st.integers(2, 6)) if k is None else k
    elems = st.floats(0, 1, allow_nan=False) if zeros else st.floats(1e-3, 1)
    raw = draw(hnp.arrays(np.float64, (3, k), elements=elems))
    raw[:, 0] += 1e-3  # never an all-zero row
    return raw / raw.sum(-1, keepdims=True)


options = st.fixed_dictionaries(
    {"label_smoothing": st.sampled_from([0.0, 0.1, 0.5]), "z_loss": st.sampled_from([0.0, 1e-3])}
)


@SETTINGS_60
@given(logits_and_targets(extra_dims=True), st.floats(-1e3, 1e3), options)
def test_shift_invariance(zt, c, opts):
    z, t = zt
    # z_loss depends on the log-sum-exp itself, so only the pure cross-entropy is shift invariant
    opts = {**opts, "z_loss": 0.0}
    for reduction in ("mean", "none"):
        a = ce.softmax_cross_entropy(z, t, reduction=reduction, **opts)
        b = ce.softmax_cross_entropy(z + c, t, reduction=reduction, **opts)
        np.testing.assert_allclose(b, a, rtol=1e-9, atol=1e-9 * (1 + abs(c)))
    np.testing.assert_allclose(ce.softmax(z + c), ce.softmax(z), atol=1e-12)
    np.testing.assert_allclose(
        ce.grad.softmax_cross_entropy(z + c, t, **opts),
        ce.grad.softmax_cross_entropy(z, t, **opts),
        atol=1e-12,
    )


@SETTINGS_60
@given(
    logits_and_targets(extra_dims=True),
    options,
    st.sampled_from(["mean", "sum", "none"]),
    st.one_of(st.none(), st.floats(0, 1)),
)
def test_integer_targets_equal_one_hot_targets(zt, opts, reduction, smoothing):
    z, t = zt
    if smoothing is not None:  # any smoothing in [0, 1], not only the sampled ones
        opts = {**opts, "label_smoothing": smoothing}
    k = z.shape[-1]
    onehot = np.eye(k)[t]
    a = ce.softmax_cross_entropy(z, t, reduction=reduction, **opts)
    b = ce.softmax_cross_entropy(z, onehot, reduction=reduction, **opts)
    np.testing.assert_allclose(a, b, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        ce.grad.softmax_cross_entropy(z, t, reduction=reduction, **opts),
        ce.grad.softmax_cross_entropy(z, onehot, reduction=reduction, **opts),
        rtol=1e-10,
        atol=1e-12,
    )
    np.testing.assert_allclose(
        ce.one_hot(t, k, dtype=np.float64), onehot
    )  # the helper agrees with np.eye


@SETTINGS_60
@given(
    hnp.arrays(np.float64, st.tuples(*[st.integers(1, 3)] * 3), elements=finite),
    st.integers(0, 2),
    st.data(),
)
def test_axis_equals_moving_the_axis_last(z, axis, data):
    k = z.shape[axis]
    t_shape = tuple(s for i, s in enumerate(z.shape) if i != axis)
    t = data.draw(hnp.arrays(np.int64, t_shape, elements=st.integers(0, k - 1)))
    last = np.moveaxis(z, axis, -1)
    for red, e in itertools.product(("mean", "none"), (0.0, 0.1)):
        np.testing.assert_allclose(
            ce.softmax_cross_entropy(z, t, axis=axis, reduction=red, label_smoothing=e),
            ce.softmax_cross_entropy(last, t, reduction=red, label_smoothing=e),
            rtol=1e-12,
        )
    np.testing.assert_allclose(
        np.moveaxis(ce.grad.softmax_cross_entropy(z, t, axis=axis), axis, -1),
        ce.grad.softmax_cross_entropy(last, t),
        atol=1e-14,
    )
    # probability targets along the same axis
    raw = data.draw(hnp.arrays(np.float64, z.shape, elements=st.floats(0.01, 1.0)))
    probs = raw / raw.sum(axis=axis, keepdims=True)
    np.testing.assert_allclose(
        np.moveaxis(ce.grad.softmax_cross_entropy(z, probs, axis=axis), axis, -1),
        ce.grad.softmax_cross_entropy(last, np.moveaxis(probs, axis, -1)),
        rtol=1e-12,
        atol=1e-14,
    )
    np.testing.assert_allclose(
        np.moveaxis(ce.log_softmax(z, axis=axis), axis, -1), ce.log_softmax(last), atol=1e-13
    )


@SETTINGS
@given(
    logits_and_targets(),
    st.sampled_from([0.0, 0.5, 1.0, 2.0]),
    st.sampled_from(["softmax_cross_entropy", "softmax_focal_loss", "hinge_loss", "mse_loss"]),
)
def test_closed_form_gradient_equals_autograd(zt, gamma, name):
    torch = pytest.importorskip("torch")
    z, t = zt
    opts = {"gamma": gamma} if name == "softmax_focal_loss" else {}
    if name == "hinge_loss":
        # the hinge has kinks at ties and at margin 0; keep away from them
        z = z + np.arange(z.shape[-1]) * 1e-3
        others = np.where(np.eye(z.shape[-1], dtype=bool)[t], -np.inf, z).max(-1)
        zy = np.take_along_axis(z, t[:, None], -1)[:, 0]
        if np.any(np.abs(1 + others - zy) < 1e-6):
            return
    x = torch.from_numpy(z.copy()).requires_grad_(True)
    getattr(ce, name)(x, torch.from_numpy(t), **opts).backward()
    closed = getattr(ce.grad, name)(z, t, **opts)
    np.testing.assert_allclose(closed, x.grad.numpy(), rtol=1e-8, atol=1e-12)


@SETTINGS_60
@given(logits_and_targets(), st.sampled_from([0.0, 0.1, 0.2]))
def test_closed_form_gradient_equals_finite_differences(zt, e):
    z, t = zt
    loss = lambda v: ce.softmax_cross_entropy(v, t, label_smoothing=e, z_loss=1e-3)
    grad = lambda v: ce.grad.softmax_cross_entropy(v, t, label_smoothing=e, z_loss=1e-3)
    # logits anywhere in [-30, 30], up to 6 classes: to 1e-4
    check = ce.check_gradient(loss, z, grad=grad(z), rtol=1e-4, atol=1e-7)
    assert check, (check.max_abs_error, check.max_rel_error)
    # where finite differences resolve the curvature: to the default 1e-5
    z = np.clip(z, -10, 10)
    check = ce.check_gradient(loss, z, grad=grad(z))
    assert check, (check.max_abs_error, check.max_rel_error)


@SETTINGS
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(distributions(k), distributions(k, False))))
def test_gibbs_inequality(pq):
    p, q = pq
    h = ce.entropy(p)
    hpq = ce.cross_entropy(p, q)
    assert np.all(hpq >= h - 1e-12)
    np.testing.assert_allclose(hpq - h, ce.kl_divergence(p, q), atol=1e-10)
    np.testing.assert_allclose(hpq, h + ce.kl_divergence(p, q), rtol=1e-10)
    # log base only rescales
    np.testing.assert_allclose(ce.cross_entropy(p, q, base=2), hpq / np.log(2), rtol=1e-12)


@SETTINGS
@given(st.integers(2, 6).flatmap(lambda k: st.tuples(distributions(k), distributions(k, False))))
def test_kl_nonnegative_and_zero_on_itself(pq):
    p, q = pq
    assert np.all(ce.kl_divergence(p, q) >= 0)
    assert np.all(ce.kl_divergence(p, p) == 0)  # exactly (documented)
    assert np.all(ce.kl_divergence(q, q) == 0)
    js = ce.js_divergence(p, q)
    assert np.all(js >= -1e-15)
    assert np.all(js <= np.log(2) + 1e-12)
    assert np.all(ce.js_divergence(p, q, base=2) <= 1 + 1e-12)  # one bit at most


@SETTINGS
@given(hnp.arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(2, 6)), elements=finite))
def test_softmax_is_a_distribution_and_log_softmax_its_log(z):
    p = ce.softmax(z)
    assert np.all(p >= 0)
    np.testing.assert_allclose(p.sum(-1), 1.0, rtol=1e-12)
    np.testing.assert_allclose(np.exp(ce.log_softmax(z)), p, rtol=1e-12, atol=1e-300)
    np.testing.assert_allclose(ce.log_softmax(z), z - ce.logsumexp(z, keepdims=True), atol=1e-12)


@SETTINGS
@given(hnp.arrays(np.float64, st.integers(1, 8), elements=st.floats(-700, 700)))
def test_sigmoid_identities(x):
    np.testing.assert_allclose(ce.log_sigmoid(x), -ce.softplus(-x), rtol=1e-14)
    np.testing.assert_allclose(
        ce.softplus(x) - ce.softplus(-x), x, atol=1e-12 * (1 + np.abs(x).max())
    )
    np.testing.assert_allclose(ce.sigmoid(x) + ce.sigmoid(-x), 1.0, rtol=1e-15)


@SETTINGS
@given(logits_and_targets(), st.sampled_from([0.0, 0.5, 2.0]))
def test_focal_is_at_most_cross_entropy(zt, gamma):
    z, t = zt
    focal = ce.softmax_focal_loss(z, t, gamma=gamma, reduction="none")
    plain = ce.softmax_cross_entropy(z, t, reduction="none")
    assert np.all(focal <= plain + 1e-12)
    assert np.all(focal >= 0)


@SETTINGS_60
@given(logits_and_targets())
def test_loss_from_logits_equals_loss_from_their_probabilities(zt):
    logits, targets = zt
    np.testing.assert_allclose(
        ce.categorical_cross_entropy(ce.softmax(logits), targets, eps=0.0),
        ce.softmax_cross_entropy(logits, targets),
        rtol=1e-7,
        atol=1e-12,  # log(p) of a rounded p near 1 keeps only absolute accuracy: why logits win
    )
