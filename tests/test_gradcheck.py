"""crossent.check_gradient (src/crossent/_gradcheck.py): central finite differences pass a right
gradient and catch wrong ones."""

from __future__ import annotations

import numpy as np
import pytest
from scipy import special

import crossent as ce

RNG = np.random.default_rng(99)
K = 4
W = np.array([0.5, 2.0, 1.0, 3.0])


def logits(*shape):
    return RNG.normal(scale=2.0, size=shape)


def labels(*shape):
    return RNG.integers(0, K, size=shape)


def test_check_gradient_passes_a_right_gradient():
    x, t = logits(3, K), labels(3)
    loss = lambda z: ce.softmax_cross_entropy(z, t, class_weight=W)
    right = ce.grad.softmax_cross_entropy(x, t, class_weight=W)
    result = ce.check_gradient(loss, x, grad=right)
    assert result
    assert result.ok
    assert result.max_abs_error < 1e-8
    assert isinstance(result, ce.GradientCheck)
    np.testing.assert_array_equal(result.analytic, right)
    np.testing.assert_allclose(result.numerical, right, atol=1e-8)
    assert ce.check_gradient(
        loss, x, grad=lambda z: ce.grad.softmax_cross_entropy(z, t, class_weight=W)
    )


@pytest.mark.parametrize(
    "wrong",
    [
        lambda x, t: special.softmax(x, axis=-1) - np.eye(K)[t],  # forgot the weighted mean
        lambda x, t: 1.001 * ce.grad.softmax_cross_entropy(x, t, class_weight=W),  # 0.1 % off
        lambda x, t: -ce.grad.softmax_cross_entropy(x, t, class_weight=W),  # sign
        lambda x, t: ce.grad.softmax_cross_entropy(x, t),  # ignored the weights
    ],
    ids=["unnormalized", "scaled", "sign", "unweighted"],
)
def test_check_gradient_catches_a_wrong_gradient(wrong):
    x, t = logits(3, K), labels(3)
    loss = lambda z: ce.softmax_cross_entropy(z, t, class_weight=W)
    result = ce.check_gradient(loss, x, grad=wrong(x, t))
    assert not result
    assert not result.ok
    assert result.max_abs_error > 1e-6


def test_check_gradient_catches_a_gradient_that_forgot_the_targets():
    x, t = logits(7, 5) * 1.5, RNG.integers(0, 5, size=7)
    wrong = ce.softmax(x) / 7  # forgot to subtract y
    check = ce.check_gradient(lambda v: ce.softmax_cross_entropy(v, t), x, grad=wrong)
    assert not check.ok and check.max_abs_error > 0.01


def test_check_gradient_on_a_non_loss_function():
    x = RNG.normal(size=(5,))
    assert ce.check_gradient(lambda v: np.sum(np.sin(v)), x, grad=np.cos(x))
    assert not ce.check_gradient(lambda v: np.sum(np.sin(v)), x, grad=np.sin(x))


def test_check_gradient_names_a_shape_mismatch():
    x = RNG.normal(size=(2, 3))
    with pytest.raises(ValueError, match=r"\(3, 2\).*\(2, 3\)"):
        ce.check_gradient(lambda v: np.sum(v), x, grad=np.ones((3, 2)))


def test_check_gradient_never_passes_a_nan():
    x = RNG.normal(size=(3,))
    nan_grad = np.array([1.0, np.nan, 1.0])
    assert not ce.check_gradient(lambda v: np.sum(v), x, grad=nan_grad)
