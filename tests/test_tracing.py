"""Tracing: jax.jit / jax.grad and torch.compile(fullgraph=True) through the losses.

Value checks that need concrete data are skipped under tracing, so a traced call must neither
raise a concretization error nor change the numbers.
"""

from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
from scipy import special

import crossent as ce

RNG = np.random.default_rng(3)
K = 5
LOGITS = RNG.normal(scale=2.0, size=(6, K))
TARGETS = np.array([0, 4, -100, 2, 1, 3])
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


@pytest.fixture(scope="module")
def jax():
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.fixture(scope="module")
def torch():
    return pytest.importorskip("torch")


def test_jax_jit_matches_eager(jax):
    jnp = jax.numpy
    opts = dict(label_smoothing=0.1, z_loss=1e-3)

    @jax.jit
    def loss(z, t, w):
        return ce.softmax_cross_entropy(z, t, class_weight=w, **opts)

    z, t, w = jnp.asarray(LOGITS), jnp.asarray(TARGETS), jnp.asarray(WEIGHT)
    got = loss(z, t, w)
    want = ce.softmax_cross_entropy(LOGITS, TARGETS, class_weight=WEIGHT, **opts)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)
    # a second call with new values reuses the trace
    z2 = jnp.asarray(LOGITS[::-1].copy())
    want2 = ce.softmax_cross_entropy(LOGITS[::-1].copy(), TARGETS, class_weight=WEIGHT, **opts)
    np.testing.assert_allclose(np.asarray(loss(z2, t, w)), want2, rtol=1e-12)


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_jax_jit_probability_targets_and_reductions(jax, reduction):
    jnp = jax.numpy
    soft = RNG.dirichlet(np.ones(K), size=6)
    fn = jax.jit(lambda z, y: ce.softmax_cross_entropy(z, y, reduction=reduction))
    got = fn(jnp.asarray(LOGITS), jnp.asarray(soft))
    want = ce.softmax_cross_entropy(LOGITS, soft, reduction=reduction)
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


def test_jax_grad_equals_closed_form(jax):
    jnp = jax.numpy

    def loss(z):
        return ce.softmax_cross_entropy(z, jnp.asarray(TARGETS), class_weight=jnp.asarray(WEIGHT))

    g = jax.jit(jax.grad(loss))(jnp.asarray(LOGITS))
    closed = ce.grad.softmax_cross_entropy(LOGITS, TARGETS, class_weight=WEIGHT)
    np.testing.assert_allclose(np.asarray(g), closed, rtol=1e-10, atol=1e-14)
    valid = TARGETS != -100
    p = special.softmax(LOGITS, axis=-1)
    onehot = np.eye(K)[np.where(valid, TARGETS, 0)]
    wy = np.where(valid, WEIGHT[np.where(valid, TARGETS, 0)], 0.0)
    np.testing.assert_allclose(np.asarray(g), wy[:, None] * (p - onehot) / wy.sum(), atol=1e-14)


def test_jax_grad_all_ignored_is_zero_not_nan(jax):
    jnp = jax.numpy
    fn = jax.jit(jax.value_and_grad(lambda z, t: ce.softmax_cross_entropy(z, t)))
    value, g = fn(jnp.asarray(LOGITS), jnp.full((6,), -100))
    assert float(value) == 0.0
    np.testing.assert_array_equal(np.asarray(g), np.zeros((6, K)))


def test_jax_jit_with_targets_closed_over(jax):
    # labels captured by the loss closure: inside jit, every jnp operation on them is traced
    # even though the array itself is concrete, so a value check must look at its result
    jnp = jax.numpy
    t = jnp.asarray(TARGETS)
    got = jax.jit(lambda z: ce.softmax_cross_entropy(z, t, ignore_index=-100))(jnp.asarray(LOGITS))
    np.testing.assert_allclose(np.asarray(got), ce.softmax_cross_entropy(LOGITS, TARGETS))


@pytest.mark.parametrize(
    "loss", [ce.sigmoid_binary_cross_entropy, ce.sigmoid_focal_loss, ce.binary_cross_entropy]
)
def test_jax_jit_with_unit_interval_targets_closed_over(jax, loss):
    # the same for the [0, 1] targets' check (it used to read a traced min: a crash)
    jnp = jax.numpy
    y = (np.arange(12.0).reshape(3, 4) % 3) / 2
    x = special.expit(LOGITS[:3, :4]) if loss is ce.binary_cross_entropy else LOGITS[:3, :4]
    t = jnp.asarray(y)
    got = jax.jit(lambda z: loss(z, t))(jnp.asarray(x))
    np.testing.assert_allclose(np.asarray(got), loss(x, y), rtol=1e-6)


def test_jax_grad_finite_at_infinite_logits(jax):
    jnp = jax.numpy
    z = jnp.asarray([[jnp.inf, 0.0, 1.0], [-jnp.inf, 0.0, 1.0]])
    t = jnp.asarray([0, 2])
    value, g = jax.value_and_grad(lambda v: ce.softmax_cross_entropy(v, t))(z)
    np.testing.assert_allclose(float(value), (np.logaddexp(0, 1) - 1) / 2, rtol=1e-12)
    assert not np.isnan(np.asarray(g)).any()


def test_jax_jit_does_not_trip_on_value_checks(jax):
    # concrete-data checks are skipped under tracing: no ConcretizationTypeError
    jnp = jax.numpy
    fns = [
        lambda z, t: ce.softmax_cross_entropy(z, t),
        lambda z, t: ce.softmax_focal_loss(z, t, gamma=0.5),
        lambda z, t: ce.categorical_cross_entropy(ce.softmax(z), t),
        lambda z, t: ce.grad.softmax_cross_entropy(z, t),
    ]
    z, t = jnp.asarray(LOGITS), jnp.asarray(np.array([0, 4, 1, 2, 1, 3]))
    for fn in fns:
        out = jax.jit(fn)(z, t)
        assert np.isfinite(np.asarray(out)).all()
    p = jnp.asarray(RNG.dirichlet(np.ones(K), size=3))
    h = jax.jit(ce.entropy)(p)
    np.testing.assert_allclose(np.asarray(h), -special.xlogy(np.asarray(p), np.asarray(p)).sum(-1))
    bce = jax.jit(ce.binary_cross_entropy)(p, jnp.ones_like(p))
    assert np.isfinite(float(bce))


def test_jax_jit_and_grad_with_smoothing(jax):
    jnp = jax.numpy
    logits, targets = np.array([[2.0, 1.0, 0.1], [0.5, -1.0, 3.0]]), np.array([0, 2])
    z, t = jnp.asarray(logits), jnp.asarray(targets)
    loss = jax.jit(lambda z, t: ce.softmax_cross_entropy(z, t, label_smoothing=0.1))
    np.testing.assert_allclose(
        loss(z, t), ce.softmax_cross_entropy(logits, targets, label_smoothing=0.1)
    )
    grad = jax.grad(lambda v: ce.softmax_cross_entropy(v, t, label_smoothing=0.1))(z)
    expected = ce.grad.softmax_cross_entropy(logits, targets, label_smoothing=0.1)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6)
    # value checks are skipped under tracing instead of breaking it: out-of-range targets
    jax.jit(lambda z, t: ce.softmax_cross_entropy(z, t))(z, t + 10)


def test_jax_vmap(jax):
    jnp = jax.numpy
    fn = jax.vmap(lambda z, t: ce.softmax_cross_entropy(z[None], t[None]))
    got = fn(jnp.asarray(LOGITS), jnp.asarray(np.array([0, 4, 1, 2, 1, 3])))
    want = ce.softmax_cross_entropy(LOGITS, np.array([0, 4, 1, 2, 1, 3]), reduction="none")
    np.testing.assert_allclose(np.asarray(got), want, rtol=1e-12)


@pytest.mark.parametrize(
    "weighted", [pytest.param(True, marks=pytest.mark.slow, id="weighted"), False]
)
def test_torch_compile_fullgraph(torch, weighted):
    # a few seconds on CPU: one small compiled function, forward and backward
    torch._dynamo.reset()
    with warnings.catch_warnings():
        # dynamo warns about array_api_compat's lru_cache and its own internals, not crossent's
        warnings.simplefilter("ignore")
        _compile_and_check(torch, WEIGHT if weighted else None)


def _compile_and_check(torch, weight):
    w = None if weight is None else torch.from_numpy(weight)
    opts = dict(class_weight=w, label_smoothing=0.1)
    compiled = torch.compile(lambda z, t: ce.softmax_cross_entropy(z, t, **opts), fullgraph=True)
    z = torch.from_numpy(LOGITS.copy()).requires_grad_(True)
    t = torch.from_numpy(TARGETS)
    got = compiled(z, t)
    ref = torch.nn.functional.cross_entropy(
        torch.from_numpy(LOGITS), t, weight=w, label_smoothing=0.1
    )
    np.testing.assert_allclose(got.detach().numpy(), ref.numpy(), rtol=1e-10)
    got.backward()
    closed = ce.grad.softmax_cross_entropy(
        LOGITS, TARGETS, class_weight=weight, label_smoothing=0.1
    )
    np.testing.assert_allclose(z.grad.numpy(), closed, rtol=1e-8, atol=1e-12)
