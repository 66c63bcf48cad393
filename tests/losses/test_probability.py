"""Losses from probabilities (categorical_cross_entropy, binary_cross_entropy) against PyTorch,
scikit-learn's log_loss and float64 formulas, and their closed-form gradients."""

from __future__ import annotations

import math

import numpy as np
import pytest
from sklearn.metrics import log_loss

import crossent as ce
from conftest import to_np

from ._support import (
    REDUCTIONS,
    Case,
    check_autograd_through_crossent_equals_closed_form,
    check_closed_form_equals_autograd_of_reference,
    check_closed_form_equals_finite_differences,
    close,
    params,
    reduce_np,
    reduce_t,
    t64,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)
K = 5
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def index_targets(shape):
    t = RNG.integers(0, K, size=shape)
    flat = t.reshape(-1)
    flat[::3] = -100
    flat[1] = 1  # some survive
    return t


# ------------------------------------------------------------------------ binary_cross_entropy


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(xp, reduction, weighted):
    probs = RNG.uniform(0.01, 0.99, size=(6, 3))
    targets = RNG.uniform(size=(6, 3))
    weight = RNG.uniform(0, 2, size=(6, 3)) if weighted else None
    want = F.binary_cross_entropy(
        t64(probs),
        t64(targets),
        weight=None if weight is None else t64(weight),
        reduction=reduction,
    ).numpy()
    got = ce.binary_cross_entropy(
        xp.asarray(probs),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        reduction=reduction,
    )
    close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_binary_cross_entropy_with_loss_matches_torch(xp, reduction):
    """(loss, gradient) from one pass, blocked on large NumPy arrays (several blocks), against
    F.binary_cross_entropy and its autograd in float64 (no clip reached: PyTorch has none)."""
    probs = RNG.uniform(1e-6, 1 - 1e-6, size=(300, 700))
    targets = (RNG.uniform(size=probs.shape) < 0.4).astype(np.float64)
    weight = RNG.uniform(0, 2, size=probs.shape[-1:])
    p = t64(probs).requires_grad_(True)
    want = F.binary_cross_entropy(p, t64(targets), weight=t64(weight), reduction=reduction)
    want.sum().backward()
    loss, grad = ce.grad.binary_cross_entropy(
        xp.asarray(probs), xp.asarray(targets), weight=xp.asarray(weight), reduction=reduction,
        with_loss=True,
    )  # fmt: skip
    close(loss, want.detach().numpy())
    close(grad, p.grad.numpy(), rtol=1e-10)


def test_binary_cross_entropy_matches_log_loss_with_explicit_eps(xp):
    probs = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 0.999, 1e-20])
    labels = np.array([1, 0, 1, 1, 0, 0, 1])
    eps = float(np.finfo(np.float64).eps)
    got = ce.binary_cross_entropy(xp.asarray(probs), xp.asarray(labels.astype(np.float64)), eps=eps)
    close(got, log_loss(labels, probs, labels=[0, 1]), rtol=1e-13)
    # another explicit clip: the loss caps at -log(eps)
    per = ce.binary_cross_entropy(
        xp.asarray(probs), xp.asarray(labels.astype(np.float64)), eps=1e-7, reduction="none"
    )
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    close(per, -(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped)), rtol=1e-9)


@pytest.mark.parametrize(("dtype", "cap"), [("float64", 36.04365338911715), ("float32", 15.942385)])
def test_default_clip_is_machine_epsilon_of_the_dtype(dtype, cap):
    probs = np.array([0.0], dtype=dtype)
    got = ce.binary_cross_entropy(probs, np.array([1.0], dtype=dtype))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(float(got), cap, rtol=1e-6)
    np.testing.assert_allclose(float(got), -math.log(np.finfo(dtype).eps), rtol=1e-6)


def test_default_clip_matches_log_loss(xp):
    """With the default clip both losses equal scikit-learn's log_loss (which clips at the
    dtype's eps), and a certain mistake costs -log(eps)."""
    probs = RNG.dirichlet(np.ones(K), size=7)
    labels = RNG.integers(0, K, size=7)
    p = probs[:, 0]
    y = (RNG.uniform(size=7) > 0.5).astype(np.float64)
    close(ce.binary_cross_entropy(xp.asarray(p), xp.asarray(y)), log_loss(y, p), rtol=1e-10)
    close(
        ce.categorical_cross_entropy(xp.asarray(probs), xp.asarray(labels)),
        log_loss(labels, probs, labels=range(K)),
        rtol=1e-10,
    )
    certain = xp.asarray(np.array([[1.0, 0.0]]))
    capped = ce.categorical_cross_entropy(certain, xp.asarray(np.array([1])))
    close(capped, -np.log(np.finfo(np.float64).eps), rtol=1e-10)


# ------------------------------------------------------------------- categorical_cross_entropy


@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_cross_entropy_matches_log_loss(xp, weighted):
    probs = RNG.dirichlet(np.ones(K), size=40)
    labels = np.concatenate([np.arange(K), RNG.integers(0, K, size=35)])
    probs[3] = np.eye(K)[0]  # a confident miss: true class 3 has probability 0
    sample_weight = WEIGHT[labels] if weighted else None
    want = log_loss(labels, probs, labels=np.arange(K), sample_weight=sample_weight)
    got = ce.categorical_cross_entropy(
        xp.asarray(probs),
        xp.asarray(labels),
        class_weight=xp.asarray(WEIGHT) if weighted else None,
        eps=float(np.finfo(np.float64).eps),
    )
    close(got, want, rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_categorical_cross_entropy_options_match_formula(xp, reduction):
    probs = RNG.dirichlet(np.ones(K), size=(3, 4))
    probs[0, 0] = np.eye(K)[4]  # exact zeros: the clip decides
    targets = index_targets((3, 4))
    targets[0, 0] = 2
    e, eps = 0.1, 1e-6
    logp = np.log(np.clip(probs, eps, 1 - eps))  # no softmax, no renormalization
    valid = targets != -100
    safe = np.where(valid, targets, 0)
    wy = np.where(valid, WEIGHT[safe], 0.0)
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    opts = dict(eps=eps, class_weight=xp.asarray(WEIGHT), label_smoothing=e, reduction=reduction)
    per = (1 - e) * wy * nll + e * np.where(valid, -(logp * WEIGHT).sum(-1) / K, 0.0)
    got = ce.categorical_cross_entropy(xp.asarray(probs), xp.asarray(targets), **opts)
    close(got, reduce_np(per, reduction, wy.sum()))
    # "others": the true class keeps exactly 1 - e, every other class gets e / (K - 1)
    onehot = np.eye(K)[safe]
    q = (1 - e) * onehot + e / (K - 1) * (1 - onehot)
    per = np.where(valid, -(WEIGHT * q * logp).sum(-1), 0.0)
    got = ce.categorical_cross_entropy(
        xp.asarray(probs), xp.asarray(targets), smoothing_convention="others", **opts
    )
    close(got, reduce_np(per, reduction, wy.sum()))


def test_categorical_cross_entropy_probability_targets(xp):
    probs = RNG.dirichlet(np.ones(K), size=6)
    soft = RNG.dirichlet(np.ones(K), size=6)
    want = -(soft * np.log(probs)).sum(-1)
    got = ce.categorical_cross_entropy(xp.asarray(probs), xp.asarray(soft), reduction="none")
    close(got, want)


def test_weight_is_a_deprecated_alias_of_class_weight():
    probs, t = RNG.dirichlet(np.ones(K), size=4), np.array([0, 4, 2, 1])
    for fn in (ce.categorical_cross_entropy, ce.grad.categorical_cross_entropy):
        with pytest.warns(DeprecationWarning, match="class_weight="):
            old = fn(probs, t, weight=WEIGHT, label_smoothing=0.1)
        np.testing.assert_array_equal(old, fn(probs, t, class_weight=WEIGHT, label_smoothing=0.1))
        with pytest.raises(TypeError, match="class_weight"):
            fn(probs, t, weight=WEIGHT, class_weight=WEIGHT)


# ------------------------------------------------------------------------------- gradients


def ref_categorical(p, t, *, eps=None, class_weight=None, label_smoothing=0.0,
                    smoothing_convention="uniform", reduction="mean"):  # fmt: skip
    eps = float(np.finfo(np.float64).eps) if eps is None else eps  # the documented default
    logp = torch.log(p.clamp(eps, 1 - eps))
    k = p.shape[-1]
    w = torch.ones(k, dtype=p.dtype) if class_weight is None else t64(class_weight)
    e = label_smoothing
    y = F.one_hot(t, k).to(p.dtype) if t.dtype == torch.int64 else t
    if smoothing_convention == "uniform":
        q = (1 - e) * y + e / k
    else:
        q = (1 - e) * y + e / (k - 1) * (1 - y)
    per = -(w * q * logp).sum(-1)
    return reduce_t(per, reduction, w[t].sum() if t.dtype == torch.int64 else None)


def ref_binary(p, t, *, weight=None, reduction="mean"):
    return F.binary_cross_entropy(
        p, t, weight=None if weight is None else t64(weight), reduction=reduction
    )


GRNG = np.random.default_rng(99)
W4 = np.array([0.5, 2.0, 1.0, 3.0])


def labels(*shape, k=4):
    return GRNG.integers(0, k, size=shape)


def probs(*shape, k=4):
    return GRNG.dirichlet(np.ones(k) * 3, size=shape)


def binary_targets(*shape):
    y = GRNG.uniform(size=shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])
    return y


def cce(id, x, t, **opts):
    return Case(id, "categorical_cross_entropy", ref_categorical, x, t, opts)


def bce(id, x, t, **opts):
    return Case(id, "binary_cross_entropy", ref_binary, x, t, opts)


CASES = [
    cce("cce", probs(5), labels(5), eps=1e-7),
    cce("cce-opts", probs(5), labels(5), eps=1e-7, class_weight=W4, label_smoothing=0.1,
        reduction="sum"),
    cce("cce-soft", probs(5), GRNG.dirichlet(np.ones(4), size=5), eps=1e-7, class_weight=W4),
    cce("cce-smooth-default-eps", probs(7, k=5), labels(7, k=5), label_smoothing=0.2),
    cce("cce-others", probs(6), labels(6), eps=1e-7, class_weight=W4, label_smoothing=0.2,
        smoothing_convention="others"),
    bce("binary", GRNG.uniform(0.05, 0.95, size=(4, 3)), binary_targets(4, 3)),
    bce("binary-weight", GRNG.uniform(0.05, 0.95, size=(6,)), binary_targets(6),
        weight=GRNG.uniform(0, 2, size=6), reduction="sum"),
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


# ---------------------------------------------------- rows that do not sum to 1; renormalize


def keras_categorical(p, q, eps):
    """Keras' categorical_crossentropy(from_logits=False) in float64: p / sum, clip, -sum q log."""
    r = np.clip(p / p.sum(-1, keepdims=True), eps, 1 - eps)
    return -(q * np.log(r)).sum(-1)


def test_rows_not_summing_to_one_raise_and_renormalize_reproduces_keras(xp):
    rng = np.random.default_rng(5)
    p = rng.uniform(0.01, 0.5, size=(6, 4))  # sigmoid-like outputs: rows sum to 0.04 .. 2
    y = rng.integers(0, 4, size=6)
    with pytest.raises(ValueError, match=r"probs must sum to 1 .* index 0 sums to .*renormalize"):
        ce.categorical_cross_entropy(xp.asarray(p), xp.asarray(y))
    eps = float(np.finfo(np.float64).eps)
    got = ce.categorical_cross_entropy(xp.asarray(p), xp.asarray(y), renormalize=True,
                                       reduction="none")  # fmt: skip
    np.testing.assert_allclose(to_np(got), keras_categorical(p, np.eye(4)[y], eps), rtol=1e-13)
    # gradient: through the division, against torch autograd of the float64 formula
    z = torch.from_numpy(p.copy()).requires_grad_(True)
    (
        -(torch.from_numpy(np.eye(4)[y]) * torch.log(z / z.sum(-1, keepdim=True))).sum(-1)
    ).mean().backward()
    g = ce.grad.categorical_cross_entropy(xp.asarray(p), xp.asarray(y), renormalize=True)
    np.testing.assert_allclose(to_np(g), z.grad.numpy(), rtol=1e-10, atol=1e-13)
