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
