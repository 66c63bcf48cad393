"""hinge_loss against scikit-learn and mse_loss against float64 formulas, and their
closed-form gradients."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from scipy import special
from sklearn.metrics import hinge_loss as sk_hinge_loss

import crossent as ce

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
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)
K = 5


# ---------------------------------------------------------------------------------- hinge


def test_hinge_matches_sklearn(xp):
    z = RNG.normal(scale=2.0, size=(30, 4))
    y = np.concatenate([np.arange(4), RNG.integers(0, 4, size=26)])
    got = ce.hinge_loss(xp.asarray(z), xp.asarray(y))
    close(got, sk_hinge_loss(y, z, labels=np.arange(4)))


@pytest.mark.parametrize(
    ("margin", "reduction"), list(itertools.product([1.0, 0.3, 2.0], REDUCTIONS))
)
def test_hinge_margin_and_reductions(xp, margin, reduction):
    z = RNG.normal(scale=2.0, size=(3, 5, 4))
    y = RNG.integers(0, 4, size=(3, 5))
    zy = np.take_along_axis(z, y[..., None], -1)[..., 0]
    others = np.where(np.eye(4, dtype=bool)[y], -np.inf, z).max(-1)
    per = np.maximum(0.0, margin + others - zy)
    got = ce.hinge_loss(xp.asarray(z), xp.asarray(y), margin=margin, reduction=reduction)
    close(got, reduce_np(per, reduction))


# ------------------------------------------------------------------------------------ MSE


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_softmax_matches_numpy(xp, reduction):
    z = RNG.normal(size=(6, K))
    y = RNG.integers(0, K, size=6)
    per = ((special.softmax(z, axis=-1) - np.eye(K)[y]) ** 2).sum(-1)
    close(ce.mse_loss(xp.asarray(z), xp.asarray(y), reduction=reduction), reduce_np(per, reduction))
    soft = RNG.dirichlet(np.ones(K), size=6)
    per = ((special.softmax(z, axis=-1) - soft) ** 2).sum(-1)
    got = ce.mse_loss(xp.asarray(z), xp.asarray(soft), reduction=reduction)
    close(got, reduce_np(per, reduction))


def test_mse_sigmoid_matches_numpy(xp):
    # sigmoid: element-wise squared error (the docstring), "mean" over elements
    z = RNG.normal(size=(6, 3))
    y = RNG.integers(0, 2, size=(6, 3)).astype(np.float64)
    per = (special.expit(z) - y) ** 2
    got = ce.mse_loss(xp.asarray(z), xp.asarray(y), activation="sigmoid", reduction="none")
    close(got, per)
    close(ce.mse_loss(xp.asarray(z), xp.asarray(y), activation="sigmoid"), per.mean())


# ------------------------------------------------------------------------------- gradients


def ref_mse(z, t, *, activation="softmax", reduction="mean"):
    if activation == "sigmoid":
        return reduce_t((torch.sigmoid(z) - t) ** 2, reduction)
    y = F.one_hot(t, z.shape[-1]).double() if t.dtype == torch.int64 else t
    return reduce_t(((F.softmax(z, -1) - y) ** 2).sum(-1), reduction)


def ref_hinge(z, t, *, margin=1.0, reduction="mean"):
    zy = z.gather(-1, t[..., None])[..., 0]
    others = torch.where(F.one_hot(t, z.shape[-1]).bool(), -torch.inf, z).amax(-1)
    return reduce_t(torch.clamp(margin + others - zy, min=0), reduction)


GRNG = np.random.default_rng(99)


def logits(*shape, scale=2.0):
    return GRNG.normal(scale=scale, size=shape)


def labels(*shape):
    return GRNG.integers(0, 4, size=shape)


def binary_targets(*shape):
    y = GRNG.uniform(size=shape)
    y.reshape(-1)[::2] = np.round(y.reshape(-1)[::2])
    return y


def mse(id, x, t, **opts):
    return Case(id, "mse_loss", ref_mse, x, t, opts)


def hinge(id, x, t, **opts):
    return Case(id, "hinge_loss", ref_hinge, x, t, opts)


CASES = [
    mse("mse", logits(5, 4), labels(5)),
    mse("mse-probs", logits(5, 4), GRNG.dirichlet(np.ones(4), size=5), reduction="sum"),
    mse("mse-sigmoid", logits(5, 3), binary_targets(5, 3), activation="sigmoid"),
    hinge("hinge", logits(8, 4), labels(8)),
    hinge("hinge-margin", logits(8, 4), labels(8), margin=0.5, reduction="sum"),
]


@params(CASES)
def test_closed_form_equals_autograd_of_reference(xp, case):
    check_closed_form_equals_autograd_of_reference(xp, case)


@params(CASES)
def test_closed_form_equals_finite_differences(case):
    check_closed_form_equals_finite_differences(case)


@params(CASES)
def test_autograd_through_crossent_equals_closed_form(case):
    check_autograd_through_crossent_equals_closed_form(case)
