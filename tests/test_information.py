"""Information measures against scipy.stats.entropy, scipy.special and scipy.spatial."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest
from scipy import special, stats
from scipy.spatial.distance import jensenshannon

import crossent as ce
from conftest import to_np

RNG = np.random.default_rng(7)
BASES = [None, 2, math.e, 10]


def dist(*shape, zeros=False):
    p = RNG.dirichlet(np.ones(shape[-1]), size=shape[:-1])
    if zeros:
        p[..., 0] = 0.0
        p /= p.sum(-1, keepdims=True)
    return p


def log_base(base):
    return 1.0 if base is None else math.log(base)


P = dist(4, 6, zeros=True)
Q = dist(4, 6)


@pytest.mark.parametrize("base", BASES)
def test_entropy_matches_scipy(xp, base):
    got = ce.entropy(xp.asarray(P), base=base)
    want = stats.entropy(P, axis=-1, base=base)
    assert tuple(got.shape) == (4,)
    np.testing.assert_allclose(to_np(got), want, rtol=1e-13)


@pytest.mark.parametrize("base", BASES)
def test_cross_entropy_matches_xlogy(xp, base):
    got = ce.cross_entropy(xp.asarray(P), xp.asarray(Q), base=base)
    want = -special.xlogy(P, Q).sum(-1) / log_base(base)
    np.testing.assert_allclose(to_np(got), want, rtol=1e-13)
    # H(p, q) = H(p) + KL(p || q)
    np.testing.assert_allclose(
        to_np(got), stats.entropy(P, axis=-1, base=base) + stats.entropy(P, Q, axis=-1, base=base)
    )


@pytest.mark.parametrize("base", BASES)
def test_kl_divergence_matches_rel_entr_and_scipy(xp, base):
    got = to_np(ce.kl_divergence(xp.asarray(P), xp.asarray(Q), base=base))
    np.testing.assert_allclose(got, special.rel_entr(P, Q).sum(-1) / log_base(base), rtol=1e-12)
    np.testing.assert_allclose(got, stats.entropy(P, Q, axis=-1, base=base), rtol=1e-12)


@pytest.mark.parametrize("base", BASES)
def test_js_divergence_is_squared_jensenshannon(xp, base):
    got = to_np(ce.js_divergence(xp.asarray(P), xp.asarray(Q), base=base))
    want = jensenshannon(P, Q, axis=-1, base=base) ** 2
    np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-15)
    # symmetric, bounded by log(2) in the chosen base
    back = to_np(ce.js_divergence(xp.asarray(Q), xp.asarray(P), base=base))
    np.testing.assert_allclose(got, back, rtol=1e-12)
    assert np.all(got <= math.log(2) / log_base(base) + 1e-12)


def test_axis_argument_equals_moving_the_axis(xp):
    p3, q3 = dist(3, 5, 4), dist(3, 5, 4)
    for fn in (ce.kl_divergence, ce.cross_entropy, ce.js_divergence):
        along0 = fn(xp.asarray(np.moveaxis(p3, -1, 0)), xp.asarray(np.moveaxis(q3, -1, 0)), axis=0)
        np.testing.assert_allclose(to_np(along0), to_np(fn(xp.asarray(p3), xp.asarray(q3))))
    got = ce.entropy(xp.asarray(np.moveaxis(p3, -1, 1)), axis=1, base=2)
    np.testing.assert_allclose(to_np(got), stats.entropy(p3, axis=-1, base=2), rtol=1e-13)


def test_textbook_values(xp):
    # a fair coin has one bit; a uniform over 8 outcomes has 3 bits
    np.testing.assert_allclose(to_np(ce.entropy(xp.asarray([0.5, 0.5]), base=2)), 1.0)
    np.testing.assert_allclose(to_np(ce.entropy(xp.asarray(np.full(8, 1 / 8)), base=2)), 3.0)
    # a certain outcome has none (0 log 0 = 0)
    assert float(to_np(ce.entropy(xp.asarray([1.0, 0.0, 0.0])))) == 0.0


def test_gibbs_inequality_and_kl_nonnegative(xp):
    p, q = dist(200, 7, zeros=True), dist(200, 7)
    h = to_np(ce.entropy(xp.asarray(p)))
    hpq = to_np(ce.cross_entropy(xp.asarray(p), xp.asarray(q)))
    kl = to_np(ce.kl_divergence(xp.asarray(p), xp.asarray(q)))
    assert np.all(hpq >= h - 1e-12)
    assert np.all(kl >= 0)
    np.testing.assert_allclose(hpq - h, kl, atol=1e-12)


def test_kl_of_a_distribution_with_itself_is_zero(xp):
    for base in BASES:
        kl = to_np(ce.kl_divergence(xp.asarray(P), xp.asarray(P), base=base))
        np.testing.assert_allclose(kl, 0.0, atol=1e-15)
        js = to_np(ce.js_divergence(xp.asarray(P), xp.asarray(P), base=base))
        np.testing.assert_allclose(js, 0.0, atol=1e-15)


def test_kl_is_infinite_where_q_misses_support(xp):
    got = to_np(ce.kl_divergence(xp.asarray([[0.5, 0.5, 0.0]]), xp.asarray([[1.0, 0.0, 0.0]])))
    np.testing.assert_array_equal(got, special.rel_entr([0.5, 0.5, 0.0], [1, 0, 0]).sum())
    assert np.isinf(got).all()


def test_perplexity(xp):
    np.testing.assert_allclose(to_np(ce.perplexity(xp.asarray(np.full(5, 0.2)))), 5.0)
    np.testing.assert_allclose(
        to_np(ce.perplexity(xp.asarray(P))), np.exp(stats.entropy(P, axis=-1))
    )
    np.testing.assert_allclose(
        to_np(ce.perplexity(xp.asarray(P), xp.asarray(Q))),
        np.exp(-special.xlogy(P, Q).sum(-1)),
        rtol=1e-12,
    )


def test_no_renormalization():
    # scipy.stats.entropy renormalizes; crossent takes the values as given
    p = np.array([0.1, 0.3])
    np.testing.assert_allclose(ce.entropy(p), -0.1 * math.log(0.1) - 0.3 * math.log(0.3))
    assert not np.isclose(ce.entropy(p), stats.entropy(p))


@pytest.mark.parametrize("bad", [-0.1, 1.5])
@pytest.mark.parametrize("which", ["entropy", "cross_entropy", "kl_divergence", "js_divergence"])
def test_probabilities_outside_unit_interval_raise(which, bad):
    p = np.array([[0.2, 0.8], [0.3, 0.7]])
    q = p.copy()
    q[1, 0] = bad
    fn = getattr(ce, which)
    with pytest.raises(ValueError, match=re.escape(str(bad))):
        fn(q) if which == "entropy" else fn(p, q)
    if which != "entropy":
        with pytest.raises(ValueError, match=re.escape(str(bad))):
            fn(q, p)


@pytest.mark.parametrize("base", [1, 1.0, 0.5, 0, -2])
@pytest.mark.parametrize("which", ["entropy", "cross_entropy", "kl_divergence", "js_divergence"])
def test_base_must_exceed_one(which, base):
    p = np.array([0.5, 0.5])
    fn = getattr(ce, which)
    with pytest.raises(ValueError, match=re.escape(str(base))):
        fn(p, base=base) if which == "entropy" else fn(p, p, base=base)


def test_nan_is_not_silently_a_probability():
    # NaN is not in [0, 1]: either an error naming it or a NaN result, never a number
    try:
        out = ce.entropy(np.array([0.5, np.nan]))
    except ValueError as err:
        assert "nan" in str(err).lower()
    else:
        assert np.isnan(out)
