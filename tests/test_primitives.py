"""Primitives against scipy.special in float64, and dtype behaviour of the low-precision floats."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import crossent as ce
from conftest import to_np

RNG = np.random.default_rng(20240601)
X3 = RNG.normal(scale=4.0, size=(3, 4, 5))
# values where the naive formulas overflow or lose every digit
WIDE = np.array([-800.0, -50.0, -20.0, -1.0, -1e-8, 0.0, 1e-8, 1.0, 20.0, 50.0, 800.0])


def asx(xp, a, dtype=None):
    return xp.asarray(a) if dtype is None else xp.asarray(a, dtype=dtype)


@pytest.mark.parametrize("axis", [-1, 0, 1, 2])
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_matches_scipy(xp, axis, keepdims):
    got = ce.logsumexp(asx(xp, X3), axis=axis, keepdims=keepdims)
    want = special.logsumexp(X3, axis=axis, keepdims=keepdims)
    assert tuple(got.shape) == want.shape
    np.testing.assert_allclose(to_np(got), want, rtol=1e-13, atol=1e-13)


def test_logsumexp_default_axis_is_last_not_flattened(xp):
    got = ce.logsumexp(asx(xp, X3))
    np.testing.assert_allclose(to_np(got), special.logsumexp(X3, axis=-1), rtol=1e-13)


@pytest.mark.parametrize("axis", [-1, 0, 1])
def test_log_softmax_and_softmax_match_scipy(xp, axis):
    x = asx(xp, X3)
    np.testing.assert_allclose(
        to_np(ce.log_softmax(x, axis=axis)), special.log_softmax(X3, axis=axis), atol=1e-13
    )
    np.testing.assert_allclose(
        to_np(ce.softmax(x, axis=axis)), special.softmax(X3, axis=axis), atol=1e-15
    )


def test_huge_logits_stay_exact(xp):
    x = np.array([[1000.0, 999.0, -1000.0], [-1e300, -1e300, -1e300]])
    np.testing.assert_allclose(
        to_np(ce.logsumexp(asx(xp, x))), special.logsumexp(x, axis=-1), rtol=1e-15
    )
    np.testing.assert_allclose(
        to_np(ce.log_softmax(asx(xp, x))), special.log_softmax(x, axis=-1), rtol=1e-15
    )


def test_elementwise_match_scipy(xp):
    x = asx(xp, WIDE)
    np.testing.assert_allclose(to_np(ce.sigmoid(x)), special.expit(WIDE), rtol=1e-15, atol=0)
    np.testing.assert_allclose(
        to_np(ce.log_sigmoid(x)), special.log_expit(WIDE), rtol=1e-14, atol=0
    )
    np.testing.assert_allclose(to_np(ce.softplus(x)), np.logaddexp(0, WIDE), rtol=1e-14, atol=0)


def test_elementwise_random_match_scipy(xp):
    r = RNG.normal(scale=10.0, size=(7, 3))
    x = asx(xp, r)
    np.testing.assert_allclose(to_np(ce.sigmoid(x)), special.expit(r), rtol=1e-14)
    np.testing.assert_allclose(to_np(ce.log_sigmoid(x)), special.log_expit(r), rtol=1e-14)
    np.testing.assert_allclose(to_np(ce.softplus(x)), np.logaddexp(0, r), rtol=1e-14)


def test_infinities_give_the_limits(xp):
    inf = math.inf
    x = asx(xp, np.array([-inf, inf]))
    np.testing.assert_array_equal(to_np(ce.sigmoid(x)), [0.0, 1.0])
    np.testing.assert_array_equal(to_np(ce.log_sigmoid(x)), [-inf, 0.0])
    np.testing.assert_array_equal(to_np(ce.softplus(x)), [0.0, inf])
    rows = np.array([[0.0, -inf, 1.0], [-inf, -inf, -inf], [inf, 0.0, 1.0]])
    lse = to_np(ce.logsumexp(asx(xp, rows)))
    np.testing.assert_allclose(lse, [np.logaddexp(0.0, 1.0), -inf, inf])
    sm = to_np(ce.softmax(asx(xp, rows[[0, 2]])))
    np.testing.assert_allclose(sm, [special.softmax([0.0, -inf, 1.0]), [1.0, 0.0, 0.0]])
    lsm = to_np(ce.log_softmax(asx(xp, rows[:1])))
    np.testing.assert_allclose(lsm, special.log_softmax(rows[:1], axis=-1))


def test_lists_read_as_numpy():
    out = ce.softmax([1.0, 2.0, 3.0])
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, special.softmax([1.0, 2.0, 3.0]))
    assert isinstance(ce.logsumexp([[0.0, 0.0]]), np.ndarray)


# ------------------------------------------------------------------------- dtypes


def _low_precision_cases():
    cases = []
    for lib in ("torch", "jax"):
        for name in ("float32", "float16", "bfloat16"):
            cases.append((lib, name))
    cases.append(("numpy", "float32"))
    cases.append(("numpy", "float16"))
    return cases


def _make(lib, name, a):
    if lib == "torch":
        torch = pytest.importorskip("torch")
        return torch.asarray(a, dtype=getattr(torch, name))
    if lib == "jax":
        pytest.importorskip("jax")
        import jax.numpy as jnp

        return jnp.asarray(a, dtype=getattr(jnp, name))
    return np.asarray(a, dtype=name)


def _rounded(x):
    """The float64 values actually held by a low-precision array."""
    return to_np(x).astype(np.float64)


RESOLUTION = {"float32": 2e-6, "float16": 2e-3, "bfloat16": 1.6e-2}


@pytest.mark.parametrize(("lib", "name"), _low_precision_cases())
def test_primitives_keep_the_input_dtype(lib, name):
    x = _make(lib, name, RNG.normal(scale=3.0, size=(4, 6)))
    x64 = _rounded(x)
    tol = RESOLUTION[name]
    checks = [
        (ce.logsumexp(x), special.logsumexp(x64, axis=-1)),
        (ce.log_softmax(x), special.log_softmax(x64, axis=-1)),
        (ce.softmax(x), special.softmax(x64, axis=-1)),
        (ce.sigmoid(x), special.expit(x64)),
        (ce.log_sigmoid(x), special.log_expit(x64)),
        (ce.softplus(x), np.logaddexp(0, x64)),
    ]
    for got, want in checks:
        assert got.dtype == x.dtype, (got.dtype, x.dtype)
        np.testing.assert_allclose(_rounded(got), want, rtol=tol, atol=tol)


@pytest.mark.parametrize(("lib", "name"), [c for c in _low_precision_cases() if c[1] != "float32"])
def test_reduction_is_accumulated_in_float32(lib, name):
    # 5000 terms of exp(0) = 1: a float16 (or bfloat16) accumulator sticks at 2048 (256),
    # a float32 one reaches 5000 exactly.
    x = _make(lib, name, np.zeros((2, 5000)))
    got = ce.logsumexp(x)
    assert got.dtype == x.dtype
    np.testing.assert_allclose(_rounded(got), math.log(5000.0), rtol=RESOLUTION[name])
    # a row of large equal logits: exp overflows float16 without the max shift
    y = _make(lib, name, np.full((1, 3000), 60.0))
    np.testing.assert_allclose(
        _rounded(ce.logsumexp(y)), 60.0 + math.log(3000.0), rtol=RESOLUTION[name]
    )


@pytest.mark.parametrize("name", ["float16", "bfloat16"])
def test_torch_float16_softmax_sums_to_one(name):
    torch = pytest.importorskip("torch")
    x = torch.asarray(RNG.normal(scale=5.0, size=(3, 2000)), dtype=getattr(torch, name))
    p = ce.softmax(x)
    assert p.dtype == x.dtype
    np.testing.assert_allclose(to_np(p).sum(-1), 1.0, atol=RESOLUTION[name] * 4)


# ------------------------------------------------- SciPy's full surface: b, return_sign, axes

AXES = [None, -1, 0, (0, 2), (2, 0, 1)]
# weights of both signs, some zero: the sums of some rows are negative, of others positive
B3 = RNG.choice([-1.5, -0.5, 0.0, 0.5, 1.0, 2.0], size=(3, 4, 5))


@pytest.mark.parametrize("axis", AXES)
@pytest.mark.parametrize("keepdims", [False, True])
def test_logsumexp_axes_match_scipy(xp, axis, keepdims):
    got = ce.logsumexp(asx(xp, X3), axis=axis, keepdims=keepdims)
    want = special.logsumexp(X3, axis=axis, keepdims=keepdims)
    assert tuple(got.shape) == np.shape(want)
    np.testing.assert_allclose(to_np(got), want, rtol=1e-13, atol=1e-13)


@pytest.mark.parametrize("axis", AXES)
def test_logsumexp_signed_weights_match_scipy(xp, axis):
    value, sign = ce.logsumexp(asx(xp, X3), b=asx(xp, B3), axis=axis, return_sign=True)
    want_value, want_sign = special.logsumexp(X3, b=B3, axis=axis, return_sign=True)
    np.testing.assert_array_equal(to_np(sign), want_sign)
    np.testing.assert_allclose(to_np(value), want_value, rtol=1e-12, atol=1e-12)
    # without the sign a negative sum has no real logarithm: NaN exactly where SciPy's is
    plain = to_np(ce.logsumexp(asx(xp, X3), b=asx(xp, B3), axis=axis))
    np.testing.assert_allclose(plain, special.logsumexp(X3, b=B3, axis=axis), rtol=1e-12)
    assert (np.isnan(plain) == (np.asarray(want_sign) < 0)).all()


def test_logsumexp_broadcast_weights_and_zero_weight_masks(xp):
    x = np.array([[0.0, np.inf, 1.0], [np.nan, 2.0, 3.0]])
    b = np.array([1.0, 0.0, 2.0])  # broadcast over the rows; the 0 removes the +inf
    got = to_np(ce.logsumexp(asx(xp, x), b=asx(xp, b)))
    np.testing.assert_allclose(got, special.logsumexp(x, b=b, axis=-1))
    y = np.array([[np.inf, 0.0], [np.nan, 1.0]])
    mask = np.array([[0.0, 1.0], [0.0, 1.0]])  # a zero weight removes an infinite or NaN term
    np.testing.assert_allclose(to_np(ce.logsumexp(asx(xp, y), b=asx(xp, mask))), [0.0, 1.0])


@pytest.mark.parametrize("tail", [-1.0, -20.0, -40.0, -300.0])
def test_logsumexp_keeps_the_tail_under_rounding(xp, tail):
    """The maximum term split out with log1p (SciPy gh-18295): log(1 + e^-40) is not 0."""
    got = to_np(ce.logsumexp(asx(xp, np.array([0.0, tail]))))
    np.testing.assert_allclose(got, np.logaddexp(0.0, tail), rtol=1e-15, atol=0)
    assert float(got) == pytest.approx(special.logsumexp([0.0, tail]), rel=1e-15, abs=0)
    # the same value with return_sign (the weighted path) and over tied maxima
    value, sign = ce.logsumexp(asx(xp, np.array([0.0, tail])), return_sign=True)
    np.testing.assert_allclose(to_np(value), np.logaddexp(0.0, tail), rtol=1e-15, atol=0)
    assert float(to_np(sign)) == 1.0
    tied = to_np(ce.logsumexp(asx(xp, np.array([0.0, 0.0, tail]))))
    np.testing.assert_allclose(tied, np.logaddexp(math.log(2.0), tail), rtol=1e-15)


def test_logsumexp_fast_kernel_keeps_the_tail():
    """The blocked NumPy kernel (large arrays) splits the maximum out of near-certain rows."""
    from crossent import _fast

    x = RNG.normal(size=(40000, 3)) - np.array([0.0, 45.0, 50.0])
    x[1::2] -= x[1::2, :1]  # near-certain rows with maximum 0: m + tail keeps the tail
    x[::2] = RNG.normal(size=(20000, 3))  # half the rows with comparable terms
    assert _fast.applies(ce._primitives.namespace(x)[0], x)
    got = ce.logsumexp(x)
    np.testing.assert_allclose(got, special.logsumexp(x, axis=-1), rtol=1e-14, atol=1e-15)
    # the near-certain rows: what lies above the maximum, e^-45 or so, to the last digits
    tail = np.log1p(np.exp(x[1::2, 1] - x[1::2, 0]) + np.exp(x[1::2, 2] - x[1::2, 0]))
    assert tail.max() < 1e-15
    np.testing.assert_allclose(got[1::2], tail, rtol=1e-13)
    x32 = x.astype(np.float32)
    want32 = special.logsumexp(x32.astype(np.float64), axis=-1)
    np.testing.assert_allclose(ce.logsumexp(x32), want32, rtol=2e-7, atol=1e-7)


@pytest.mark.parametrize("axis", AXES)
def test_softmax_and_log_softmax_over_axes_match_scipy(xp, axis):
    x = asx(xp, X3)
    np.testing.assert_allclose(
        to_np(ce.softmax(x, axis=axis)), special.softmax(X3, axis=axis), rtol=1e-13, atol=1e-16
    )
    np.testing.assert_allclose(
        to_np(ce.log_softmax(x, axis=axis)), special.log_softmax(X3, axis=axis), atol=1e-13
    )


def test_scalar_input_with_axis_none(xp):
    x = asx(xp, 3.0)
    assert float(to_np(ce.logsumexp(x, axis=None))) == 3.0
    assert float(to_np(ce.softmax(x, axis=None))) == 1.0
    assert float(to_np(ce.log_softmax(x, axis=None))) == 0.0


def test_bad_axes_name_the_value():
    with pytest.raises(ValueError, match=r"axis=\(0, 0\) repeats"):
        ce.logsumexp(X3, axis=(0, 0))
    with pytest.raises(ValueError, match="axis=3 is out of range"):
        ce.softmax(X3, axis=(0, 3))
    with pytest.raises(ValueError, match=r"axis=\(\) names no axis"):
        ce.log_softmax(X3, axis=())
    with pytest.raises(ValueError, match=r"b of shape \(4,\) does not broadcast to \(3, 4, 5\)"):
        ce.logsumexp(X3, b=np.ones(4))


@pytest.mark.parametrize(("lib", "name"), _low_precision_cases())
@pytest.mark.parametrize("axis", [None, (0, 1)])
def test_axes_and_weights_keep_the_input_dtype(lib, name, axis):
    raw = RNG.normal(scale=3.0, size=(4, 6, 2))
    x = _make(lib, name, raw)
    x64 = _rounded(x)
    b = _make(lib, name, RNG.choice([-1.5, -0.5, 0.0, 0.5, 1.0, 2.0], size=(4, 6, 2)))
    b64 = _rounded(b)
    tol = RESOLUTION[name]
    value, sign = ce.logsumexp(x, b=b, axis=axis, return_sign=True)
    want_value, want_sign = special.logsumexp(x64, b=b64, axis=axis, return_sign=True)
    for got, want in [
        (value, want_value),
        (ce.logsumexp(x, axis=axis), special.logsumexp(x64, axis=axis)),
        (ce.softmax(x, axis=axis), special.softmax(x64, axis=axis)),
        (ce.log_softmax(x, axis=axis), special.log_softmax(x64, axis=axis)),
    ]:
        assert got.dtype == x.dtype
        np.testing.assert_allclose(_rounded(got), want, rtol=tol, atol=tol)
    np.testing.assert_array_equal(_rounded(sign), want_sign)


def test_autodiff_through_sigmoid_is_its_derivative_at_and_near_zero():
    """torch autograd and jax.grad differentiate ce.sigmoid itself (mse_loss with a sigmoid
    activation does): sigmoid'(x) = p (1 - p) at 0, -0 and tiny x, where both branches meet."""
    torch = pytest.importorskip("torch")
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    x = np.array([0.0, -0.0, 1e-9, -1e-9, 1e-20, 2.0, -2.0])
    p = special.expit(x)
    # torch's d|x|/dx is 0 at x = 0 itself (JAX's is 1), so torch starts at the tiny x
    t = torch.tensor(x[2:], requires_grad=True)
    ce.sigmoid(t).sum().backward()
    np.testing.assert_allclose(t.grad.numpy(), (p * (1 - p))[2:], rtol=1e-12)
    grad = jax.vmap(jax.grad(ce.sigmoid))(jax.numpy.asarray(x))
    np.testing.assert_allclose(np.asarray(grad), p * (1 - p), rtol=1e-12)
