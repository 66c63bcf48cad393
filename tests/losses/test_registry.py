"""The registry crossent.losses.LOSSES: every loss has a closed-form gradient with the same
arguments, and it is the one source of crossent's loss exports and of crossent.grad."""

from __future__ import annotations

import inspect

import pytest

import crossent as ce
import crossent.grad
import crossent.losses
from crossent.losses import LOSSES

# Public functions whose names read like losses but that are measures of distributions or
# calibration metrics, not trainable losses of logits with a gradient in crossent.grad.
NOT_LOSSES = {
    "cross_entropy": "information measure H(p, q) of two distributions",
    "log_loss": "calibration metric (scikit-learn's log_loss)",
}

# Public helpers of the loss modules that are not losses.
HELPERS = {"clip_eps": "the default clip of probability inputs"}


def keyword_parameters(fn):
    return {
        name: (p.kind, p.default)
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is not inspect.Parameter.POSITIONAL_ONLY
    }


def positional_parameters(fn):
    return [
        name
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.POSITIONAL_ONLY
    ]


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_gradient_takes_the_loss_arguments(name):
    entry = LOSSES[name]
    assert entry.name == name
    assert entry.loss.__name__ == name
    loss, grad = keyword_parameters(entry.loss), keyword_parameters(entry.gradient)
    grad.pop("with_loss", None)  # the gradient may also return the loss
    assert grad == loss
    assert positional_parameters(entry.gradient) == positional_parameters(entry.loss)


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_exports_come_from_the_registry(name):
    assert getattr(ce, name) is LOSSES[name].loss
    assert getattr(ce.grad, name) is LOSSES[name].gradient
    assert getattr(crossent.losses, name) is LOSSES[name].loss


def test_grad_and_crossent_export_exactly_the_registry():
    assert sorted(crossent.grad.__all__) == sorted(LOSSES)
    assert sorted(n for n in crossent.losses.__all__ if n not in ("LOSSES", "Loss")) == sorted(
        LOSSES
    )
    assert {n for n in ce.__all__ if n in LOSSES} == set(LOSSES)


def test_every_exported_loss_has_a_gradient():
    """A public loss function without an entry (so without a gradient) fails here: those
    defined in crossent.losses, and any export named like a loss."""
    missing = []
    for name in ce.__all__:
        obj = getattr(ce, name)
        if not inspect.isfunction(obj) or name in NOT_LOSSES:
            continue
        defined_in_losses = obj.__module__.startswith("crossent.losses")
        named_like_a_loss = name.endswith(("_loss", "cross_entropy"))
        if (defined_in_losses or named_like_a_loss) and name not in LOSSES:
            missing.append(name)
    assert missing == []
    for name, reason in NOT_LOSSES.items():
        assert name in ce.__all__, f"{name} ({reason}) is no longer exported: drop it here"
        assert name not in LOSSES


def test_every_loss_module_pairs_each_loss_with_its_grad():
    for module in (
        crossent.losses.softmax,
        crossent.losses.binary,
        crossent.losses.focal,
        crossent.losses.probability,
        crossent.losses.distillation,
        crossent.losses.comparison,
        crossent.losses.logspace,
        crossent.losses.poly,
    ):
        public = [n for n in module.__all__ if callable(getattr(module, n))]
        losses = [n for n in public if not n.endswith("_grad") and n not in HELPERS]
        for name in losses:
            assert f"{name}_grad" in public, (module.__name__, name)
            assert name in LOSSES
            assert LOSSES[name].gradient is getattr(module, f"{name}_grad")
