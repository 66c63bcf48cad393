"""Target helpers (src/crossent/_targets.py): one_hot, smooth_labels and class_weights against
NumPy and scikit-learn."""

from __future__ import annotations

import numpy as np
import pytest
from sklearn.utils.class_weight import compute_class_weight

import crossent as ce
from conftest import to_np

RNG = np.random.default_rng(1234)
K = 5


def close(got, want, rtol=1e-12, atol=1e-12):
    got = to_np(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def test_one_hot(xp):
    labels = np.array([[0, 3], [2, 1]])
    got = ce.one_hot(xp.asarray(labels), 4, dtype=xp.float32)
    assert got.dtype == xp.float32
    np.testing.assert_array_equal(to_np(got), np.eye(4)[labels])
    default = ce.one_hot(xp.asarray(labels), 4)
    np.testing.assert_array_equal(to_np(default), np.eye(4)[labels])


@pytest.mark.parametrize("e", [0.0, 0.1, 0.3])
def test_smooth_labels_both_conventions(xp, e):
    labels = np.array([0, 3, 1])
    onehot = np.eye(4)[labels]
    # from indices the result is in the library's default float (float32 in torch)
    uniform = ce.smooth_labels(xp.asarray(labels), num_classes=4, label_smoothing=e)
    close(uniform, (1 - e) * onehot + e / 4, rtol=1e-6, atol=1e-7)
    others = ce.smooth_labels(
        xp.asarray(labels), num_classes=4, label_smoothing=e, smoothing_convention="others"
    )
    close(others, np.where(onehot == 1, 1 - e, e / 3), rtol=1e-6, atol=1e-7)
    # given a float64 one-hot distribution instead of indices
    close(ce.smooth_labels(xp.asarray(onehot), label_smoothing=e), (1 - e) * onehot + e / 4)
    for got in (uniform, others):
        np.testing.assert_allclose(to_np(got).sum(-1), 1.0)


def test_smooth_labels_old_keywords_warn_and_agree():
    want = ce.smooth_labels(
        [0, 2], num_classes=3, label_smoothing=0.2, smoothing_convention="others"
    )
    with pytest.warns(DeprecationWarning, match="smoothing= is deprecated"):
        got = ce.smooth_labels([0, 2], num_classes=3, smoothing=0.2, smoothing_convention="others")
    np.testing.assert_array_equal(got, want)
    with pytest.warns(DeprecationWarning, match="convention= is deprecated"):
        got = ce.smooth_labels([0, 2], num_classes=3, label_smoothing=0.2, convention="others")
    np.testing.assert_array_equal(got, want)
    with pytest.raises(TypeError, match="needs label_smoothing"):
        ce.smooth_labels([0, 2], num_classes=3)


def test_class_weights_match_sklearn_balanced(xp):
    labels = np.concatenate([np.arange(K), RNG.integers(0, K, size=50), np.zeros(20, int)])
    want = compute_class_weight("balanced", classes=np.arange(K), y=labels)
    close(ce.class_weights(xp.asarray(labels), K), want, rtol=1e-6)  # default float
    np.testing.assert_allclose(want, len(labels) / (K * np.bincount(labels, minlength=K)))
