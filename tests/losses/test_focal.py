"""softmax_focal_loss and sigmoid_focal_loss against float64 references (torchvision's formula),
and their closed-form gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
import scipy.special as sp

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
    mpmath_logit_grid,
    over_backends,
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


def softmax_focal_ref(logits, targets, alpha, gamma, ignore_index=-100):
    logp = sp.log_softmax(logits, axis=-1)
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    logpt = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    if alpha is None:
        a = 1.0
    elif np.ndim(alpha) == 0:
        a = alpha
    else:
        a = np.asarray(alpha)[safe]
    per = np.where(valid, -a * (1 - np.exp(logpt)) ** gamma * logpt, 0.0)
    return per, valid.sum()


@pytest.mark.parametrize(
    ("backend", "alpha", "gamma", "reduction"),
    over_backends(list(itertools.product([None, 0.25, "per-class"], [0.0, 0.5, 2.0], REDUCTIONS))),
)
def test_softmax_focal_matches_reference(backend, alpha, gamma, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=(3, 4, K))
    targets = index_targets((3, 4))
    a = WEIGHT / WEIGHT.sum() if alpha == "per-class" else alpha
    per, count = softmax_focal_ref(logits, targets, a, gamma)
    got = ce.softmax_focal_loss(
        xp.asarray(logits),
        xp.asarray(targets),
        alpha=xp.asarray(a) if alpha == "per-class" else a,
        gamma=gamma,
        reduction=reduction,
    )
    close(got, reduce_np(per, reduction, count), rtol=1e-10)


def test_softmax_focal_with_gamma_zero_is_cross_entropy(xp):
    logits, targets = RNG.normal(size=(6, K)), RNG.integers(0, K, size=6)
    got = ce.softmax_focal_loss(xp.asarray(logits), xp.asarray(targets), gamma=0.0)
    close(got, F.cross_entropy(t64(logits), t64(targets)).numpy())


def sigmoid_focal_ref(logits, targets, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss, written out in float64 NumPy."""
    p = sp.expit(logits)
    bce = np.logaddexp(0, logits) - logits * targets
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None and alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


@pytest.mark.parametrize(
    ("backend", "alpha", "gamma", "reduction"),
    over_backends(list(itertools.product([0.25, None, 0.9], [0.0, 1.0, 2.0, 3.5], REDUCTIONS))),
)
def test_sigmoid_focal_matches_torchvision_formula(backend, alpha, gamma, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=(6, 3))
    targets = RNG.integers(0, 2, size=(6, 3)).astype(np.float64)
    per = sigmoid_focal_ref(logits, targets, alpha, gamma)
    got = ce.sigmoid_focal_loss(
        xp.asarray(logits), xp.asarray(targets), alpha=alpha, gamma=gamma, reduction=reduction
    )
    close(got, reduce_np(per, reduction), rtol=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_losses_match_references_with_defaults(xp, gamma):
    # a scalar alpha of 0.3 (softmax) and the default alpha of 0.25 (sigmoid), 2-D, mean
    logits = RNG.normal(size=(7, K)) * 3
    targets = RNG.integers(0, K, size=7)
    got = ce.softmax_focal_loss(xp.asarray(logits), xp.asarray(targets), gamma=gamma, alpha=0.3)
    p = sp.softmax(logits, axis=-1)[np.arange(7), targets]  # no log-space tricks
    close(got, (0.3 * (1 - p) ** gamma * -np.log(p)).mean(), rtol=1e-10)
    y = (RNG.uniform(size=(7, K)) > 0.5).astype(np.float64)
    p = sp.expit(logits)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    reference = ((0.25 * y + 0.75 * (1 - y)) * (1 - p_t) ** gamma * bce).mean()
    got = ce.sigmoid_focal_loss(xp.asarray(logits), xp.asarray(y), gamma=gamma)
    close(got, reference, rtol=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_gradients_finite_at_saturated_logits(gamma):
    # optax #1267: NaN gradients for gamma < 2 once 1 - p_t rounds to 0
    big = [[60.0, -60.0, 0.0], [-1e4, 1e4, 0.0], [800.0, 0.0, -800.0], [0.0, 50.0, 0.0]]
    z = torch.tensor(big, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 0, 1])
    ce.softmax_focal_loss(z, targets, gamma=gamma).backward()
    assert torch.isfinite(z.grad).all(), z.grad
    closed = to_np(ce.grad.softmax_focal_loss(np.array(big), targets.numpy(), gamma=gamma))
    assert np.isfinite(closed).all()
    np.testing.assert_allclose(closed, z.grad.numpy(), atol=1e-12)

    s = torch.tensor([60.0, -60.0, 1e4, -1e4, 40.0, -40.0], dtype=torch.float64)
    s.requires_grad_(True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    loss = ce.sigmoid_focal_loss(s, y, gamma=gamma, reduction="sum")
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(s.grad).all(), s.grad
    closed = to_np(
        ce.grad.sigmoid_focal_loss(s.detach().numpy(), y.numpy(), gamma=gamma, reduction="sum")
    )
    np.testing.assert_allclose(closed, s.grad.numpy(), atol=1e-12)


@pytest.mark.parametrize("gamma", [0.5, 1.0, 1.5, 2.0, 3.0])
def test_sigmoid_focal_relative_accuracy_against_mpmath(gamma):
    """Loss and gradient of every element to 1e-12 relatively against 50-digit arithmetic,
    confident right and wrong logits and soft targets included (both the direct form,
    gamma >= 1, and the log-space one)."""
    mpmath, z, y = mpmath_logit_grid()

    def exact(zi, yi):
        zi, yi = mpmath.mpf(zi), mpmath.mpf(yi)
        p = 1 / (1 + mpmath.exp(-zi))
        q = yi * (1 - p) + (1 - yi) * p  # 1 - p_t, exactly
        bce = yi * mpmath.log1p(mpmath.exp(-zi)) + (1 - yi) * mpmath.log1p(mpmath.exp(zi))
        return 0.25 * yi + 0.75 * (1 - yi), q, bce

    def loss(zi, yi):
        a, q, bce = exact(zi, yi)
        return a * q**gamma * bce

    pairs = list(zip(z, y, strict=True))
    want = np.array([float(loss(a, b)) for a, b in pairs])
    want_grad = np.array([float(mpmath.diff(lambda t, b=b: loss(t, b), a)) for a, b in pairs])
    got = ce.sigmoid_focal_loss(z, y, gamma=gamma, reduction="none")
    grad = ce.grad.sigmoid_focal_loss(z, y, gamma=gamma, reduction="sum")
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-11, atol=1e-300)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_float32_focal_gradients_finite_when_saturated(gamma):
    # float32 torch tensors, and the closed form called on torch tensors
    z = torch.tensor([[60.0, 0.0, -5.0], [-60.0, 0.0, 3.0]], requires_grad=True)
    ce.softmax_focal_loss(z, torch.tensor([0, 0]), gamma=gamma).backward()
    assert torch.isfinite(z.grad).all()
    closed = ce.grad.softmax_focal_loss(z.detach(), torch.tensor([0, 0]), gamma=gamma)
    close(closed, z.grad.numpy(), rtol=1e-6, atol=1e-7)
    s = torch.tensor([80.0, -80.0, 0.0], requires_grad=True)
    ce.sigmoid_focal_loss(s, torch.tensor([1.0, 0.0, 1.0]), gamma=gamma).backward()
    assert torch.isfinite(s.grad).all()


# ------------------------------------------------------------------------------- gradients


def ref_softmax_focal(z, t, *, alpha=None, gamma=2.0, ignore_index=-100, reduction="mean"):
    logp = F.log_softmax(z, dim=-1)
    valid = t != ignore_index
    safe = t.clamp(0)
    logpt = logp.gather(-1, safe[..., None])[..., 0]
    a = 1.0 if alpha is None else (t64(np.asarray(alpha))[safe] if np.ndim(alpha) else alpha)
    per = torch.where(valid, -a * (1 - logpt.exp()) ** gamma * logpt, 0.0)
    return reduce_t(per, reduction, valid.sum())


def ref_sigmoid_focal(z, t, *, alpha=0.25, gamma=2.0, reduction="mean"):
    p = torch.sigmoid(z)
    bce = F.binary_cross_entropy_with_logits(z, t, reduction="none")
    p_t = p * t + (1 - p) * (1 - t)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None:
        loss = (alpha * t + (1 - alpha) * (1 - t)) * loss
    return reduce_t(loss, reduction)


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


def binary_targets(*shape):
    y = GRNG.uniform(size=shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])
    return y


def softmax_case(id, x, t, **opts):
    return Case(id, "softmax_focal_loss", ref_softmax_focal, x, t, opts)


def sigmoid_case(id, x, t, **opts):
    return Case(id, "sigmoid_focal_loss", ref_sigmoid_focal, x, t, opts)


CASES = [
    softmax_case("sfocal", logits(6, 4), labels(6)),
    softmax_case("sfocal-half", logits(6, 4), labels(6, ignore=-100), gamma=0.5,
                 alpha=W4 / W4.sum()),
    softmax_case("sfocal-sum", logits(6, 4), labels(6), gamma=1.0, alpha=0.25, reduction="sum"),
    softmax_case("sfocal-alpha-weights", logits(7, 5, scale=3.0), labels(7, k=5), gamma=1.5,
                 alpha=GRNG.uniform(0.2, 2.0, size=5)),
    sigmoid_case("bfocal", logits(5, 3), binary_targets(5, 3)),
    sigmoid_case("bfocal-opts", logits(5, 3), np.round(binary_targets(5, 3)), alpha=None,
                 gamma=0.5, reduction="sum"),
    sigmoid_case("bfocal-soft-half", logits(7, 5, scale=3.0),
                 sp.softmax(GRNG.normal(size=(7, 5)), axis=-1), gamma=0.5),
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


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_focal_jax_custom_vjp_gradients_of_logits_and_targets(reduction):
    # The JAX path is a custom_vjp: both cotangents against autodiff of torchvision's formula.
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(6)
    z = jnp.asarray(rng.normal(size=(5, 3)) * 3)
    y = jnp.asarray(rng.random((5, 3)) * 0.8 + 0.1)  # soft targets: d/dy is smooth

    def plain(z, y):
        p = jax.nn.sigmoid(z)
        bce = y * jax.nn.softplus(-z) + (1 - y) * jax.nn.softplus(z)
        p_t = p * y + (1 - p) * (1 - y)
        loss = (0.25 * y + 0.75 * (1 - y)) * (1 - p_t) ** 2 * bce
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda a: a}[reduction](loss)

    def ours(z, y):
        return ce.sigmoid_focal_loss(z, y, alpha=0.25, gamma=2.0, reduction=reduction)

    def grads(f):
        return jax.jit(jax.grad(lambda z, y: jnp.sum(f(z, y) ** 2), argnums=(0, 1)))

    np.testing.assert_allclose(ours(z, y), plain(z, y), rtol=1e-12)
    for got, want in zip(grads(ours)(z, y), grads(plain)(z, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-9, atol=1e-14)
