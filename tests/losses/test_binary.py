"""sigmoid_binary_cross_entropy and its closed-form gradient against PyTorch's BCE with logits."""

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
    mpmath_logit_grid,
    over_backends,
    params,
    t64,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)


BCE_GRID = list(
    itertools.product(
        [(8,), (6, 4)],
        [None, "elementwise", "last"],  # weight
        [False, True],  # pos_weight
        REDUCTIONS,
    )
)


@pytest.mark.parametrize(
    ("backend", "shape", "weight_kind", "use_pos", "reduction"),
    over_backends(BCE_GRID, everywhere=lambda combo: len(combo[0]) == 2),
)
def test_sigmoid_bce_matches_torch(backend, shape, weight_kind, use_pos, reduction):
    """Loss and closed-form gradient == F.binary_cross_entropy_with_logits and its autograd."""
    xp = load(backend)
    logits = RNG.normal(scale=3.0, size=shape)
    targets = RNG.uniform(size=shape)
    targets[..., :2] = np.round(targets[..., :2])  # hard and soft labels
    weight = {
        None: None,
        "elementwise": RNG.uniform(0, 2, size=shape),
        "last": RNG.uniform(0, 2, size=shape[-1:]),
    }[weight_kind]
    pos = RNG.uniform(0.5, 3.0, size=shape[-1:]) if use_pos else None
    z = t64(logits.copy()).requires_grad_(True)
    want = F.binary_cross_entropy_with_logits(
        z,
        t64(targets),
        weight=None if weight is None else t64(weight),
        pos_weight=None if pos is None else t64(pos),
        reduction=reduction,
    )
    want.sum().backward()
    opts = dict(
        weight=None if weight is None else xp.asarray(weight),
        pos_weight=None if pos is None else xp.asarray(pos),
        reduction=reduction,
    )
    got = ce.sigmoid_binary_cross_entropy(xp.asarray(logits), xp.asarray(targets), **opts)
    close(got, want.detach().numpy())
    grad = ce.grad.sigmoid_binary_cross_entropy(xp.asarray(logits), xp.asarray(targets), **opts)
    close(grad, z.grad.numpy(), rtol=1e-10)
    loss, grad = ce.grad.sigmoid_binary_cross_entropy(
        xp.asarray(logits), xp.asarray(targets), with_loss=True, **opts
    )
    close(loss, want.detach().numpy())
    close(grad, z.grad.numpy(), rtol=1e-10)


@pytest.mark.parametrize("infinite", [False, True])
def test_with_loss_over_blocks_equals_torch(infinite):
    """One blocked pass for loss and gradient (several blocks, float32), and the guarded
    fallback when a logit is infinite, against PyTorch in float64."""
    logits = RNG.normal(scale=4.0, size=(300, 700)).astype(np.float32)
    targets = (RNG.uniform(size=logits.shape) < 0.3).astype(np.float32)
    if infinite:
        logits[0, :2], targets[0, :2] = [np.inf, -np.inf], [1.0, 0.0]
    weight = RNG.uniform(0, 2, size=logits.shape[-1:]).astype(np.float32)
    # PyTorch gives NaN at +-inf (pytorch #49844): its reference there is the limit, +-1e4
    z = t64(np.clip(logits, -1e4, 1e4).astype(np.float64)).requires_grad_(True)
    want = F.binary_cross_entropy_with_logits(z, t64(targets.astype(np.float64)), weight=t64(
        weight.astype(np.float64)))  # fmt: skip
    want.backward()
    loss, grad = ce.grad.sigmoid_binary_cross_entropy(logits, targets, weight=weight,
                                                      with_loss=True)  # fmt: skip
    assert loss.dtype == grad.dtype == np.float32
    np.testing.assert_allclose(loss, want.item(), rtol=1e-5)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=1e-4, atol=1e-12)


def test_sigmoid_bce_label_smoothing_is_e_over_two(xp):
    logits = RNG.normal(size=(5, 3))
    targets = RNG.integers(0, 2, size=(5, 3)).astype(np.float64)
    want = F.binary_cross_entropy_with_logits(t64(logits), t64(0.8 * targets + 0.1)).numpy()
    got = ce.sigmoid_binary_cross_entropy(
        xp.asarray(logits), xp.asarray(targets), label_smoothing=0.2
    )
    close(got, want)


def test_sigmoid_bce_others_convention_keeps_one_minus_e(xp):
    # two classes: "others" moves e to the other class, so a target of 1 becomes 1 - e
    logits = RNG.normal(size=(5, 3))
    targets = RNG.uniform(size=(5, 3))
    targets[:, 0] = np.round(targets[:, 0])
    smoothed = 0.8 * targets + 0.2 * (1 - targets)
    want = F.binary_cross_entropy_with_logits(t64(logits), t64(smoothed), reduction="sum")
    got = ce.sigmoid_binary_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        label_smoothing=0.2,
        smoothing_convention="others",
        reduction="sum",
    )
    close(got, want.numpy())


def test_sigmoid_bce_is_finite_at_infinite_logits(xp):
    inf = math.inf
    logits = np.array([inf, -inf, inf, -inf, inf])
    targets = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    got = to_np(
        ce.sigmoid_binary_cross_entropy(
            xp.asarray(logits),
            xp.asarray(targets),
            pos_weight=xp.asarray([2.0]),
            reduction="none",
        )
    )
    np.testing.assert_array_equal(got, [0.0, 0.0, inf, inf, inf])
    # torch gives NaN in the first two (pytorch #49844)
    ok = ce.sigmoid_binary_cross_entropy(xp.asarray(logits[:2]), xp.asarray(targets[:2]))
    assert float(to_np(ok)) == 0.0


# ------------------------------------------------------------------------------- gradients


def ref_sigmoid_bce(z, t, *, weight=None, pos_weight=None, label_smoothing=0.0,
                    smoothing_convention="uniform", reduction="mean"):  # fmt: skip
    e = label_smoothing
    t = (1 - e) * t + (e / 2 if smoothing_convention == "uniform" else e * (1 - t))
    return F.binary_cross_entropy_with_logits(
        z,
        t,
        weight=None if weight is None else t64(weight),
        pos_weight=None if pos_weight is None else t64(pos_weight),
        reduction=reduction,
    )


GRNG = np.random.default_rng(99)


def logits(*shape, scale=2.0):
    return GRNG.normal(scale=scale, size=shape)


def binary_targets(*shape):
    y = GRNG.uniform(size=shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])
    return y


def case(id, x, t, **opts):
    return Case(id, "sigmoid_binary_cross_entropy", ref_sigmoid_bce, x, t, opts)


CASES = [
    case("bce", logits(4, 3), binary_targets(4, 3)),
    case("bce-weights", logits(4, 3), binary_targets(4, 3),
         weight=GRNG.uniform(0, 2, size=(4, 3)), pos_weight=np.array([0.5, 2.0, 3.0])),
    case("bce-sum", logits(4, 3), binary_targets(4, 3), pos_weight=np.array([2.0, 1.0, 0.3]),
         reduction="sum"),
    case("bce-none", logits(7), binary_targets(7), reduction="none"),
    case("bce-pos-weight-soft", logits(7, 5, scale=3.0),
         special.softmax(GRNG.normal(size=(7, 5)), axis=-1),
         pos_weight=GRNG.uniform(0.2, 2.0, size=5)),
    case("bce-smooth", logits(5, 3), binary_targets(5, 3), label_smoothing=0.1,
         weight=GRNG.uniform(0, 2, size=3)),
    case("bce-smooth-others", logits(5, 3), binary_targets(5, 3), label_smoothing=0.2,
         smoothing_convention="others", pos_weight=np.array([2.0, 1.0, 0.3]), reduction="sum"),
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


def test_gradient_is_sigmoid_minus_y(xp):
    x = logits(2, 3, 4)
    y = np.round(GRNG.dirichlet(np.ones(4), size=(2, 3)))
    g = ce.grad.sigmoid_binary_cross_entropy(xp.asarray(x), xp.asarray(y))
    assert type(g) is type(xp.asarray(x))
    np.testing.assert_allclose(to_np(g), (special.expit(x) - y) / x.size, rtol=1e-12)


@pytest.mark.parametrize("smoothing", [0.0, 0.2])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_jax_custom_vjp_gradients_of_logits_and_targets(smoothing, reduction):
    # The JAX path is a custom_vjp: both cotangents against autodiff of the plain formula.
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    rng = np.random.default_rng(5)
    z = jnp.asarray(rng.normal(size=(6, 4)) * 3)
    y = jnp.asarray(rng.random((6, 4)))
    w, pw = jnp.asarray(rng.random(4) + 0.5), jnp.asarray(rng.random(4) + 0.5)

    def plain(z, y):
        t = (1 - smoothing) * y + smoothing / 2
        loss = w * (pw * t * jax.nn.softplus(-z) + (1 - t) * jax.nn.softplus(z))
        return {"mean": jnp.mean, "sum": jnp.sum, "none": lambda a: a}[reduction](loss)

    def ours(z, y):
        return ce.sigmoid_binary_cross_entropy(
            z, y, weight=w, pos_weight=pw, label_smoothing=smoothing, reduction=reduction
        )

    def total(f):
        return jax.jit(jax.grad(lambda z, y: jnp.sum(f(z, y) ** 2), argnums=(0, 1)))

    np.testing.assert_allclose(ours(z, y), plain(z, y), rtol=1e-12)
    for got, want in zip(total(ours)(z, y), total(plain)(z, y), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-14)
    # +-inf logits under jit: the limit, not NaN (the guarded branch of the lax.cond)
    edge = jnp.asarray([[jnp.inf, -jnp.inf, 0.0]])
    got = jax.jit(lambda a: ce.sigmoid_binary_cross_entropy(a, jnp.asarray([[1.0, 0.0, 1.0]]),
                                                            reduction="none"))(edge)  # fmt: skip
    np.testing.assert_allclose(got, [[0.0, 0.0, np.log(2)]])


def _bce_against_mpmath():
    """Logits and targets with their loss and gradient in 50-digit arithmetic: confident right
    and wrong logits, soft targets."""
    mpmath, z, y = mpmath_logit_grid()

    def loss(zi, yi):
        zi, yi = mpmath.mpf(zi), mpmath.mpf(yi)
        return yi * mpmath.log1p(mpmath.exp(-zi)) + (1 - yi) * mpmath.log1p(mpmath.exp(zi))

    pairs = list(zip(z, y, strict=True))
    want = np.array([float(loss(a, b)) for a, b in pairs])
    want_grad = np.array([float(mpmath.diff(lambda t, b=b: loss(t, b), a)) for a, b in pairs])
    return z, y, want, want_grad


BCE_PATHS = ["numpy", "numpy blocked", "numpy with_loss", "torch", "jax"]


@pytest.mark.parametrize("path", BCE_PATHS)
def test_sigmoid_bce_relative_accuracy_against_mpmath(path):
    """Every element's loss and gradient to 1e-12 relatively, on every path: a confident right
    logit's gradient is -sigmoid(-|z|) itself, not sigmoid(z) - 1, whose digits cancel
    (PyTorch's and JAX's autodiff give 0 or a few digits there)."""
    z, y, want, want_grad = _bce_against_mpmath()
    if path == "numpy blocked":  # a copy per row, large enough for the cache-blocked kernel
        z, y = np.tile(z, (2000, 1)), np.tile(y, (2000, 1))
    if path in ("numpy", "numpy blocked"):
        got = ce.sigmoid_binary_cross_entropy(z, y, reduction="none")
        grad = ce.grad.sigmoid_binary_cross_entropy(z, y, reduction="sum")
    elif path == "numpy with_loss":  # the loss as a sum of one element
        got = [float(ce.grad.sigmoid_binary_cross_entropy(z[i : i + 1], y[i : i + 1],
                                                           reduction="sum", with_loss=True)[0])
               for i in range(z.size)]  # fmt: skip
        grad = ce.grad.sigmoid_binary_cross_entropy(z, y, reduction="sum", with_loss=True)[1]
    elif path == "torch":
        zt = torch.tensor(z, requires_grad=True)
        got = ce.sigmoid_binary_cross_entropy(zt, torch.tensor(y), reduction="none")
        got.sum().backward()
        got, grad = got.detach(), zt.grad
    else:
        jax = pytest.importorskip("jax")
        jax.config.update("jax_enable_x64", True)
        zj, yj = jax.numpy.asarray(z), jax.numpy.asarray(y)
        got = ce.sigmoid_binary_cross_entropy(zj, yj, reduction="none")
        grad = jax.grad(lambda a: ce.sigmoid_binary_cross_entropy(a, yj, reduction="sum"))(zj)
    got, grad = to_np(got), to_np(grad)
    if path == "numpy blocked":
        got, grad = got[-1], grad[-1]
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=0)
    np.testing.assert_allclose(grad, want_grad, rtol=1e-12, atol=1e-300)


def test_jax_second_derivative_is_sigmoid_prime_at_zero():
    """jax.hessian differentiates the custom_vjp's backward rule: at z = 0 (zero-initialised
    logits, Newton's method from w = 0) it must give sigmoid'(0) = 1/4, not 0."""
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    jnp = jax.numpy
    z = jnp.asarray([0.0, -0.0, 1e-20, -1e-20, 1.0, -3.0])

    def loss(a):
        return ce.sigmoid_binary_cross_entropy(a, jnp.asarray([1.0, 0.0, 1.0, 0.3, 1.0, 0.0]),
                                               reduction="sum")  # fmt: skip

    p = special.expit(np.asarray(z))
    np.testing.assert_allclose(np.diag(jax.hessian(loss)(z)), p * (1 - p), rtol=1e-12)
