"""distillation_loss against PyTorch's KL divergence of temperature-scaled softmaxes, and its
closed-form gradient."""

from __future__ import annotations

import itertools

import numpy as np
import pytest

import crossent as ce

from ._support import (
    REDUCTIONS,
    Case,
    check_autograd_through_crossent_equals_closed_form,
    check_closed_form_equals_autograd_of_reference,
    check_closed_form_equals_finite_differences,
    close,
    params,
    reduce_t,
    t64,
)

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)
K = 5


@pytest.mark.parametrize(
    ("temperature", "reduction"), list(itertools.product([1.0, 2.0, 3.0, 4.5], REDUCTIONS))
)
def test_distillation_matches_torch_kl_div(xp, temperature, reduction):
    s, t = RNG.normal(scale=3.0, size=(2, 7, K))
    T = temperature
    ls = F.log_softmax(t64(s) / T, dim=-1)
    pt = F.softmax(t64(t) / T, dim=-1)
    if reduction == "none":
        want = T * T * F.kl_div(ls, pt, reduction="none").sum(-1)
    else:
        want = T * T * F.kl_div(ls, pt, reduction="batchmean" if reduction == "mean" else "sum")
    got = ce.distillation_loss(xp.asarray(s), xp.asarray(t), temperature=T, reduction=reduction)
    close(got, want.numpy())


def test_distillation_axis(xp):
    s, t = RNG.normal(size=(2, 3, K, 2))
    got = ce.distillation_loss(xp.asarray(s), xp.asarray(t), axis=2, temperature=2.0)
    want = ce.distillation_loss(np.moveaxis(s, 2, -1), np.moveaxis(t, 2, -1), temperature=2.0)
    close(got, want)


# ------------------------------------------------------------------------------- gradients


def ref_distillation(s, t, *, temperature=1.0, reduction="mean"):
    T = temperature
    per = F.kl_div(F.log_softmax(s / T, -1), F.softmax(t / T, -1), reduction="none").sum(-1)
    return reduce_t(T * T * per, reduction)


GRNG = np.random.default_rng(99)


def logits(*shape, scale=2.0):
    return GRNG.normal(scale=scale, size=shape)


def case(id, x, t, **opts):
    return Case(id, "distillation_loss", ref_distillation, x, t, opts)


CASES = [
    case("distill", logits(5, 4), logits(5, 4)),
    case("distill-T", logits(5, 4), logits(5, 4), temperature=3.0, reduction="sum"),
    case("distill-T2-peaked-teacher", logits(7, 5, scale=3.0),
         4 * np.exp(logits(7, 5)) / np.exp(logits(7, 5)).sum(-1, keepdims=True),
         temperature=2.0),
    case("distill-none", logits(2, 3, 4), logits(2, 3, 4), temperature=0.5, reduction="none"),
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
