"""Invariants of the mathematics, checked with hypothesis on random inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import crossent as ce

SETTINGS = settings(max_examples=60, deadline=None)
finite = st.floats(-30, 30, allow_nan=False, allow_infinity=False)


@st.composite
def problems(draw):
    """(logits (N, K), integer targets (N,), probability rows (N, K))."""
    n = draw(st.integers(1, 6))
    k = draw(st.integers(2, 6))
    logits = draw(arrays(np.float64, (n, k), elements=finite))
    targets = draw(arrays(np.int64, (n,), elements=st.integers(0, k - 1)))
    raw = draw(arrays(np.float64, (n, k), elements=st.floats(0.01, 1.0)))
    return logits, targets, raw / raw.sum(axis=-1, keepdims=True)


@SETTINGS
@given(problems(), finite)
def test_shift_invariance(problem, shift):
    logits, targets, _ = problem
    np.testing.assert_allclose(
        ce.softmax_cross_entropy(logits + shift, targets, reduction="none"),
        ce.softmax_cross_entropy(logits, targets, reduction="none"),
        rtol=1e-9,
        atol=1e-9,
    )


@SETTINGS
@given(problems(), st.floats(0, 1))
def test_integer_targets_equal_one_hot_targets(problem, smoothing):
    logits, targets, _ = problem
    onehot = ce.one_hot(targets, logits.shape[-1])
    options = {"label_smoothing": smoothing, "reduction": "none"}
    np.testing.assert_allclose(
        ce.softmax_cross_entropy(logits, targets, **options),
        ce.softmax_cross_entropy(logits, onehot, **options),
        rtol=1e-9,
        atol=1e-9,
    )


@SETTINGS
@given(problems())
def test_axis_equals_moving_the_axis_last(problem):
    logits, targets, probs = problem
    np.testing.assert_allclose(
        ce.softmax_cross_entropy(logits.T, targets, axis=0),
        ce.softmax_cross_entropy(logits, targets),
        rtol=1e-12,
    )
    np.testing.assert_allclose(
        ce.grad.softmax_cross_entropy(logits.T, probs.T, axis=0).T,
        ce.grad.softmax_cross_entropy(logits, probs),
        rtol=1e-12,
    )


@SETTINGS
@given(problems())
def test_closed_form_gradient_equals_finite_differences(problem):
    logits, targets, _ = problem
    check = ce.check_gradient(
        lambda z: ce.softmax_cross_entropy(z, targets, label_smoothing=0.1, z_loss=1e-3),
        logits,
        grad=ce.grad.softmax_cross_entropy(logits, targets, label_smoothing=0.1, z_loss=1e-3),
        rtol=1e-4,
        atol=1e-7,
    )
    assert check.ok, check.max_abs_error


@SETTINGS
@given(problems())
def test_gibbs_inequality_and_kl(problem):
    _, _, p = problem
    q = p[::-1]
    assert np.all(ce.cross_entropy(p, q) >= ce.entropy(p) - 1e-12)
    assert np.all(ce.kl_divergence(p, q) >= -1e-12)
    assert np.all(ce.kl_divergence(p, p) == 0)
    np.testing.assert_allclose(
        ce.cross_entropy(p, q), ce.entropy(p) + ce.kl_divergence(p, q), rtol=1e-10
    )
    assert np.all(ce.js_divergence(p, q, base=2) <= 1 + 1e-12)


@SETTINGS
@given(problems())
def test_loss_from_logits_equals_loss_from_their_probabilities(problem):
    logits, targets, _ = problem
    np.testing.assert_allclose(
        ce.categorical_cross_entropy(ce.softmax(logits), targets, eps=0.0),
        ce.softmax_cross_entropy(logits, targets),
        rtol=1e-7,
        atol=1e-12,  # log(p) of a rounded p near 1 keeps only absolute accuracy: why logits win
    )
