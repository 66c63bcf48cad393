"""nll_loss and kl_div_loss against PyTorch's F.nll_loss / F.kl_div and optax's KL functions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import special

import crossent as ce

from ._support import (
    REDUCTIONS,
    Case,
    check_autograd_through_crossent_equals_closed_form,
    check_closed_form_equals_autograd_of_reference,
    check_closed_form_equals_finite_differences,
    close,
    load,
    params,
    t64,
    to_dim1,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional
RNG = np.random.default_rng(77)
K = 5
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])


def scores(*shape):
    """Arbitrary real scores (NLLLoss does not ask for log-probabilities)."""
    return RNG.normal(scale=2.0, size=(*shape, K))


def labels(*shape, ignore=False):
    t = RNG.integers(0, K, size=shape)
    if ignore:
        t.reshape(-1)[::3] = -100
    return t


def torch_nll(x, t, weight=None, **kw):
    w = None if weight is None else t64(weight)
    return F.nll_loss(t64(to_dim1(x)), t64(t), weight=w, **kw).numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("shape", [(6,), (3, 4)])  # (N,) and the K-dim (N, d1) of PyTorch
def test_nll_loss_matches_torch(xp, reduction, weighted, shape):
    x, t = scores(*shape), labels(*shape, ignore=True)
    w = WEIGHT if weighted else None
    got = ce.nll_loss(
        xp.asarray(x), xp.asarray(t), reduction=reduction,
        class_weight=None if w is None else xp.asarray(w),
    )  # fmt: skip
    close(got, torch_nll(x, t, weight=w, reduction=reduction))


def test_nll_loss_class_axis_one_as_pytorch():
    x, t = np.moveaxis(scores(2, 3), -1, 1), labels(2, 3)  # (N, C, d1)
    close(ce.nll_loss(x, t, axis=1), F.nll_loss(t64(x), t64(t)).numpy())


def test_nll_of_log_softmax_is_the_cross_entropy(xp):
    x, t = scores(7), labels(7, ignore=True)
    lp = ce.log_softmax(xp.asarray(x))
    close(ce.nll_loss(lp, xp.asarray(t)), ce.softmax_cross_entropy(x, t))


def test_nll_loss_edge_values():
    x = np.array([[-math.inf, 0.0], [np.nan, 0.0], [-1.0, -2.0]])
    t = np.array([0, -100, 1])
    # -inf at the target gives +inf; an ignored row holding NaN is exactly 0
    np.testing.assert_array_equal(ce.nll_loss(x, t, reduction="none"), [math.inf, 0.0, 2.0])
    # a zero class weight removes the -inf target: 0 * inf = 0
    got = ce.nll_loss(x, t, class_weight=np.array([0.0, 1.0]), reduction="none")
    np.testing.assert_array_equal(got, [0.0, 0.0, 2.0])
    assert float(ce.nll_loss(x[:2], np.array([-100, -100]))) == 0.0  # PyTorch: NaN
    with pytest.raises(TypeError, match="class indices"):
        ce.nll_loss(x, special.softmax(x[2:3].repeat(3, 0), axis=-1))
    with pytest.raises(ValueError, match="targets must be in"):
        ce.nll_loss(x, np.array([0, 2, 1]))


# ------------------------------------------------------------------------------ KL divergence


def distributions(*shape, zeros=True):
    p = special.softmax(RNG.normal(scale=2.0, size=(*shape, K)), axis=-1)
    if zeros:
        p.reshape(-1, K)[::2, 1] = 0.0  # 0 log 0 = 0 terms
        p /= p.sum(-1, keepdims=True)
    return p


def torch_kl(log_q, target, reduction, log_target):
    torch_reduction = "batchmean" if reduction == "mean" else reduction
    out = F.kl_div(t64(log_q), t64(target), reduction=torch_reduction, log_target=log_target)
    return out.numpy()


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("log_target", [False, True])
def test_kl_div_loss_matches_torch(xp, reduction, log_target):
    log_q = special.log_softmax(RNG.normal(size=(6, K)), axis=-1)
    p = distributions(6, zeros=not log_target)
    target = np.log(p) if log_target else p
    got = ce.kl_div_loss(
        xp.asarray(log_q), xp.asarray(target), log_target=log_target, reduction=reduction
    )
    close(got, torch_kl(log_q, target, reduction, log_target))


def test_kl_div_loss_rows_match_optax():
    optax = pytest.importorskip("optax")
    jnp = load("jax")
    log_q = special.log_softmax(RNG.normal(size=(4, 3, K)), axis=-1)
    p = distributions(4, 3, zeros=False)
    for log_target, target, peer in [
        (False, p, optax.losses.kl_divergence),
        (True, np.log(p), optax.losses.kl_divergence_with_log_targets),
    ]:
        got = ce.kl_div_loss(jnp.asarray(log_q), jnp.asarray(target), log_target=log_target,
                             reduction="none").sum(-1)  # fmt: skip
        close(got, peer(jnp.asarray(log_q), jnp.asarray(target)))
        # over a tuple of axes: the divergence of the joint distribution over both
        got = ce.kl_div_loss(log_q, target, log_target=log_target, axis=(1, 2), reduction="sum")
        close(got, peer(jnp.asarray(log_q), jnp.asarray(target), axis=(1, 2)).sum())


def test_kl_div_loss_limits_where_torch_gives_nan():
    log_q = np.array([[0.0, -math.inf]])
    p = np.array([[1.0, 0.0]])
    assert float(ce.kl_div_loss(log_q, p)) == 0.0  # torch: 0 * -(-inf) = NaN
    assert float(ce.kl_div_loss(log_q, np.array([[0.0, -math.inf]]), log_target=True)) == 0.0
    with pytest.raises(ValueError, match="target"):
        ce.kl_div_loss(log_q, np.array([[1.5, -0.5]]))


# --------------------------------------------------------------------------------- gradients


def ref_nll(z, t, *, class_weight=None, ignore_index=-100, reduction="mean", axis=-1):
    w = None if class_weight is None else t64(class_weight)
    return F.nll_loss(z if z.ndim == 2 else z.movedim(-1, 1), t, weight=w,
                      ignore_index=ignore_index, reduction=reduction)  # fmt: skip


def ref_kl(z, target, *, log_target=False, reduction="mean", axis=-1):
    reduction = "batchmean" if reduction == "mean" else reduction
    return F.kl_div(z, target, reduction=reduction, log_target=log_target)


CASES = [
    Case(f"nll-{r}-{w}", "nll_loss", ref_nll, scores(5), labels(5, ignore=True),
         {"reduction": r, "class_weight": WEIGHT if w else None})
    for r in REDUCTIONS for w in (False, True)
] + [
    Case(f"kl-{r}-{lt}", "kl_div_loss", ref_kl,
         special.log_softmax(RNG.normal(size=(4, K)), axis=-1),
         np.log(distributions(4, zeros=False)) if lt else distributions(4),
         {"reduction": r, "log_target": lt})
    for r in REDUCTIONS for lt in (False, True)
]  # fmt: skip


@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "array_api_strict"])
@params(CASES)
def test_closed_form_equals_autograd_of_reference(backend, case):
    check_closed_form_equals_autograd_of_reference(load(backend), case)


@params(CASES)
def test_closed_form_equals_finite_differences(case):
    check_closed_form_equals_finite_differences(case)


@params(CASES)
def test_autograd_through_crossent_equals_closed_form(case):
    check_autograd_through_crossent_equals_closed_form(case)
