"""poly_loss against optax's poly_loss_cross_entropy and a float64 formula; several class axes
(optax's axis=(...)) on the softmax losses against optax and against the merged axis."""

from __future__ import annotations

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
    reduce_np,
)

torch = pytest.importorskip("torch")
RNG = np.random.default_rng(4242)
K = 5


def poly_np(z, q, epsilon):
    """Leng et al.'s Poly-1 in float64: -sum q log p + epsilon (1 - sum q p)."""
    log_p = special.log_softmax(z, axis=-1)
    return -(q * log_p).sum(-1) + epsilon * (1 - (q * np.exp(log_p)).sum(-1))


def smoothed_onehot(t, smoothing):
    return (1 - smoothing) * np.eye(K)[t] + smoothing / K


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("epsilon", [-1.0, 0.0, 2.0])
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_poly_loss_matches_the_formula(xp, reduction, epsilon, smoothing):
    z, t = RNG.normal(scale=2.0, size=(6, K)), RNG.integers(0, K, size=6)
    t[::4] = -100
    valid = t != -100
    per = np.where(valid, poly_np(z, smoothed_onehot(np.where(valid, t, 0), smoothing), epsilon), 0)
    got = ce.poly_loss(xp.asarray(z), xp.asarray(t), epsilon=epsilon,
                       label_smoothing=smoothing, reduction=reduction)  # fmt: skip
    close(got, reduce_np(per, reduction, valid.sum()))


@pytest.mark.parametrize("epsilon", [-1.0, 2.0])
def test_poly_loss_matches_optax(epsilon):
    optax = pytest.importorskip("optax")
    jnp = load("jax")
    z, t = RNG.normal(scale=2.0, size=(3, 4, K)), RNG.integers(0, K, size=(3, 4))
    for targets, labels in [(t, np.eye(K)[t]), (smoothed_onehot(t, 0.2), smoothed_onehot(t, 0.2))]:
        want = optax.losses.poly_loss_cross_entropy(jnp.asarray(z), jnp.asarray(labels),
                                                    epsilon=epsilon)  # fmt: skip
        close(ce.poly_loss(jnp.asarray(z), jnp.asarray(targets), epsilon=epsilon,
                           reduction="none"), want)  # fmt: skip
    # the same labels reached by smoothing class indices
    want = optax.losses.poly_loss_cross_entropy(
        jnp.asarray(z), jnp.asarray(smoothed_onehot(t, 0.2)), epsilon=epsilon
    )
    got = ce.poly_loss(z, t, epsilon=epsilon, label_smoothing=0.2, reduction="none")
    close(got, want)


def test_poly_loss_with_epsilon_zero_is_the_cross_entropy():
    z, t = RNG.normal(size=(5, K)), RNG.integers(0, K, size=5)
    close(ce.poly_loss(z, t, epsilon=0.0), ce.softmax_cross_entropy(z, t))
    with pytest.raises(ValueError, match="epsilon must be a finite number, got inf"):
        ce.poly_loss(z, t, epsilon=float("inf"))


def ref_poly(z, t, *, epsilon=2.0, reduction="mean", label_smoothing=0.0, **_):
    q = (
        t
        if t.dtype.is_floating_point
        else (
            (1 - label_smoothing) * torch.nn.functional.one_hot(t.clamp(min=0), K).double()
            + label_smoothing / K
        )
    )
    valid = torch.ones(z.shape[:-1], dtype=torch.bool) if t.dtype.is_floating_point else t >= 0
    log_p = torch.log_softmax(z, -1)
    per = -(q * log_p).sum(-1) + epsilon * (1 - (q * log_p.exp()).sum(-1))
    per = torch.where(valid, per, torch.zeros_like(per))
    return {"none": per, "sum": per.sum(), "mean": per.sum() / valid.sum()}[reduction]


def _ignored(t):
    t = t.copy()
    t[::3] = -100
    return t


CASES = [
    Case(f"poly-{r}-{e}-{s}", "poly_loss", ref_poly, RNG.normal(size=(5, K)),
         _ignored(RNG.integers(0, K, size=5)),
         {"reduction": r, "epsilon": e, "label_smoothing": s})
    for r in REDUCTIONS for e in (-1.0, 2.0) for s in (0.0, 0.1)
] + [
    Case(f"poly-soft-{r}", "poly_loss", ref_poly, RNG.normal(size=(4, K)),
         special.softmax(RNG.normal(size=(4, K)), axis=-1), {"reduction": r, "epsilon": 2.0})
    for r in REDUCTIONS
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


# ------------------------------------------------------------------ several class axes (optax)

AXES = [(1, 2), (2, 1), (-1, 1)]


@pytest.mark.parametrize("axis", AXES)
def test_tuple_class_axes_match_optax(axis):
    optax = pytest.importorskip("optax")
    jnp = load("jax")
    z = RNG.normal(size=(2, 3, 4, 5))
    n = int(np.prod([z.shape[a] for a in axis]))
    t = RNG.integers(0, n, size=tuple(d for a, d in enumerate(z.shape) if a not in
                                      [x % 4 for x in axis]))  # fmt: skip
    want = optax.losses.softmax_cross_entropy_with_integer_labels(
        jnp.asarray(z), jnp.asarray(t), axis=axis
    )
    close(ce.softmax_cross_entropy(z, t, axis=axis, reduction="none"), want, rtol=1e-6)
    close(ce.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(t), axis=axis,
                                   reduction="none"), want, rtol=1e-6)  # fmt: skip
    q = special.softmax(RNG.normal(size=z.shape), axis=axis)
    want = optax.losses.softmax_cross_entropy(jnp.asarray(z), jnp.asarray(q), axis=axis)
    close(ce.softmax_cross_entropy(z, q, axis=axis, reduction="none"), want, rtol=1e-6)
    want = optax.losses.poly_loss_cross_entropy(jnp.asarray(z), jnp.asarray(q), axis=axis)
    close(ce.poly_loss(z, q, axis=axis, reduction="none"), want, rtol=1e-6)


@pytest.mark.parametrize("name", ["softmax_cross_entropy", "softmax_focal_loss", "poly_loss",
                                  "nll_loss", "categorical_cross_entropy"])  # fmt: skip
@pytest.mark.parametrize("backend", ["numpy", "torch", "jax", "array_api_strict"])
def test_tuple_class_axes_equal_the_merged_axis(name, backend):
    """Loss and gradient over axes (2, 1) equal those over one axis made by merging them."""
    xp = load(backend)
    z = RNG.normal(size=(2, 3, 4, 5))
    if name == "categorical_cross_entropy":
        z = special.softmax(z, axis=(1, 2))
    merged = np.moveaxis(np.swapaxes(z, 1, 2), (1, 2), (-2, -1)).reshape(2, 5, 12)
    t = RNG.integers(0, 12, size=(2, 5))
    loss, grad = getattr(ce, name), getattr(ce.grad, name)
    close(loss(xp.asarray(z), xp.asarray(t), axis=(2, 1), reduction="none"),
          loss(merged, t, reduction="none"))  # fmt: skip
    g = grad(xp.asarray(z), xp.asarray(t), axis=(2, 1))
    want = np.swapaxes(np.moveaxis(grad(merged, t).reshape(2, 5, 4, 3), (-2, -1), (1, 2)), 1, 2)
    close(g, want)
