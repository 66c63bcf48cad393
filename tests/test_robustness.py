"""Hostile inputs and tracing: no silent NaN, errors that name the value, jit and compile."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

import crossent as ce
from conftest import to_np

LOGITS = np.array([[2.0, 1.0, 0.1], [0.5, -1.0, 3.0]])
TARGETS = np.array([0, 2])


# ---------------------------------------------------------------- extreme values


@pytest.mark.parametrize("scale", [1e4, 1e30])
def test_huge_logits_give_the_exact_margin(xp, scale):
    # float16 where the library has it (array_api_strict does not)
    dtype = getattr(xp, "float16", xp.float32) if scale == 1e4 else xp.float32
    logits = xp.asarray(np.array([[scale, -scale], [scale, -scale]]), dtype=dtype)
    losses = ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1])), reduction="none")
    assert losses.dtype == dtype
    np.testing.assert_allclose(to_np(losses), [0.0, 2 * scale], rtol=1e-3)
    grads = to_np(ce.grad.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1]))))
    np.testing.assert_allclose(grads, [[0, 0], [0.5, -0.5]], atol=1e-3)


def test_infinite_logits_give_the_limit(xp):
    inf = math.inf
    logits = xp.asarray(np.array([[inf, 0.0, 0.0], [inf, 0.0, 0.0], [0.0, -inf, 1.0], [-inf] * 3]))
    losses = to_np(
        ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 1, 1, 2])), reduction="none")
    )
    np.testing.assert_allclose(losses, [0.0, inf, inf, math.log(3)])
    bce = to_np(
        ce.sigmoid_binary_cross_entropy(
            xp.asarray(np.array([inf, -inf, inf, -inf])),
            xp.asarray(np.array([1.0, 0.0, 0.0, 0.5])),
            reduction="none",
        )
    )
    np.testing.assert_allclose(bce, [0.0, 0.0, inf, inf])


def test_nan_stays_in_its_row(xp):
    logits = xp.asarray(np.array([[np.nan, 0.0], [1.0, 0.0]]))
    losses = to_np(ce.softmax_cross_entropy(logits, xp.asarray(np.array([0, 0])), reduction="none"))
    assert np.isnan(losses[0]) and losses[1] == pytest.approx(math.log1p(math.exp(-1)))
    # an ignored row holding NaN contributes nothing
    kept = ce.softmax_cross_entropy(logits, xp.asarray(np.array([-100, 0])))
    assert float(to_np(kept)) == pytest.approx(math.log1p(math.exp(-1)))


def test_empty_and_all_ignored_batches_give_zero(xp):
    empty = ce.softmax_cross_entropy(xp.zeros((0, 4)), xp.asarray(np.zeros(0, dtype=np.int64)))
    assert float(to_np(empty)) == 0.0
    logits = xp.asarray(LOGITS)
    ignored = xp.asarray(np.array([-100, -100]))
    assert float(to_np(ce.softmax_cross_entropy(logits, ignored))) == 0.0
    assert np.all(to_np(ce.grad.softmax_cross_entropy(logits, ignored)) == 0)
    assert float(to_np(ce.softmax_focal_loss(logits, ignored))) == 0.0


def test_all_ignored_gives_zero_gradient_through_torch_autograd():
    torch = pytest.importorskip("torch")
    z = torch.tensor(LOGITS, requires_grad=True)
    loss = ce.softmax_cross_entropy(z, torch.tensor([-100, -100]), label_smoothing=0.1)
    loss.backward()
    assert loss.item() == 0.0 and torch.all(z.grad == 0)
    assert torch.isnan(
        torch.nn.functional.cross_entropy(z, torch.tensor([-100, -100]))
    )  # the PyTorch behaviour crossent deviates from


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_half_precision_is_computed_in_float32(name):
    torch = pytest.importorskip("torch")
    dtype = getattr(torch, name)
    logits = torch.tensor([[300.0, 0.0, -300.0]] * 4, dtype=dtype)
    loss = ce.softmax_cross_entropy(logits, torch.tensor([2, 2, 2, 2]))
    assert loss.dtype == dtype and loss.item() == 600.0  # float16 exp overflows at 11


# ---------------------------------------------------------------- errors name the value


@pytest.mark.parametrize(
    ("call", "error", "match"),
    [
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, 7]), ValueError, r"found 7 at index 1"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, -3]), ValueError, r"found -3 at index 1"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0.0, 2.0]), TypeError, r"integer"),
        (lambda: ce.softmax_cross_entropy(LOGITS, [0, 1, 2]), ValueError, r"shape \(2,\)"),
        (lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, reduction="avg"), ValueError, "avg"),
        (lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, axis=2), ValueError, "axis=2"),
        (
            lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, weight=[1.0, -1.0, 1.0]),
            ValueError,
            r"found -1.0 at class 1",
        ),
        (lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, weight=[1.0]), ValueError, r"\(3,\)"),
        (
            lambda: ce.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=1.5),
            ValueError,
            "1.5",
        ),
        (lambda: ce.binary_cross_entropy([0.5, 1.2], [1.0, 0.0]), ValueError, r"1.2 at index 1"),
        (lambda: ce.binary_cross_entropy([0.5], [1.0, 0.0]), ValueError, "same shape"),
        (lambda: ce.categorical_cross_entropy([[0.5, -0.1]], [0]), ValueError, "-0.1"),
        (lambda: ce.entropy([0.5, 1.5]), ValueError, r"1.5 at index 1"),
        (lambda: ce.entropy([0.5, 0.5], base=1), ValueError, "base"),
        (lambda: ce.kl_divergence([0.5, 0.5], [1.0]), ValueError, "same shape"),
        (lambda: ce.distillation_loss(LOGITS, LOGITS, temperature=0), ValueError, "temperature"),
        (lambda: ce.softmax_focal_loss(LOGITS, TARGETS, gamma=-1), ValueError, "gamma"),
        (lambda: ce.one_hot([0, 3], 3), ValueError, r"found 3 at index 1"),
        (lambda: ce.class_weights([0, 0, 2], 3), ValueError, "class 1 has no example"),
        (lambda: ce.sigmoid_binary_cross_entropy([0.0], [2.0]), ValueError, "2.0"),
    ],
)
def test_bad_input_raises_naming_the_value(call, error, match):
    with pytest.raises(error, match=match):
        call()


# ---------------------------------------------------------------- tracing


def test_jax_jit_and_grad():
    jax = pytest.importorskip("jax")
    jnp = jax.numpy
    logits, targets = jnp.asarray(LOGITS), jnp.asarray(TARGETS)
    loss = jax.jit(lambda z, t: ce.softmax_cross_entropy(z, t, label_smoothing=0.1))
    np.testing.assert_allclose(
        loss(logits, targets), ce.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=0.1)
    )
    grad = jax.grad(lambda z: ce.softmax_cross_entropy(z, targets, label_smoothing=0.1))(logits)
    expected = ce.grad.softmax_cross_entropy(LOGITS, TARGETS, label_smoothing=0.1)
    np.testing.assert_allclose(np.asarray(grad), expected, rtol=1e-6)
    # Value checks are skipped under tracing instead of breaking it.
    jax.jit(lambda z, t: ce.softmax_cross_entropy(z, t))(logits, targets + 10)


def test_torch_compile_fullgraph():
    torch = pytest.importorskip("torch")
    logits, targets = torch.tensor(LOGITS), torch.tensor(TARGETS)
    with warnings.catch_warnings():
        # dynamo and inductor warn about their own internals (lru_cache, jit.script_method)
        warnings.simplefilter("ignore")
        compiled = torch.compile(
            lambda z, t: ce.softmax_cross_entropy(z, t, label_smoothing=0.1), fullgraph=True
        )
        got = compiled(logits, targets)
    expected = torch.nn.functional.cross_entropy(logits, targets, label_smoothing=0.1)
    torch.testing.assert_close(got, expected)
