"""The loss families, one module each, every loss beside its closed-form gradient.

:data:`LOSSES` is the one registry: it builds ``crossent``'s exports and ``crossent.grad``, and
a test checks that every loss has a gradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import binary, comparison, distillation, focal, logspace, poly, probability, softmax


@dataclass(frozen=True)
class Loss:
    """A public loss and its closed-form gradient (same arguments, d loss / d input)."""

    name: str
    loss: Callable[..., Any]
    gradient: Callable[..., Any]


def _family(module: Any, *names: str) -> list[Loss]:
    return [Loss(n, getattr(module, n), getattr(module, f"{n}_grad")) for n in names]


LOSSES: dict[str, Loss] = {
    entry.name: entry
    for entry in [
        *_family(softmax, "softmax_cross_entropy"),
        *_family(binary, "sigmoid_binary_cross_entropy"),
        *_family(focal, "softmax_focal_loss", "sigmoid_focal_loss"),
        *_family(probability, "categorical_cross_entropy", "binary_cross_entropy"),
        *_family(distillation, "distillation_loss"),
        *_family(comparison, "mse_loss", "hinge_loss"),
        *_family(logspace, "nll_loss", "kl_div_loss"),
        *_family(poly, "poly_loss"),
    ]
}

binary_cross_entropy = probability.binary_cross_entropy
categorical_cross_entropy = probability.categorical_cross_entropy
distillation_loss = distillation.distillation_loss
hinge_loss = comparison.hinge_loss
kl_div_loss = logspace.kl_div_loss
mse_loss = comparison.mse_loss
nll_loss = logspace.nll_loss
poly_loss = poly.poly_loss
sigmoid_binary_cross_entropy = binary.sigmoid_binary_cross_entropy
sigmoid_focal_loss = focal.sigmoid_focal_loss
softmax_cross_entropy = softmax.softmax_cross_entropy
softmax_focal_loss = focal.softmax_focal_loss

__all__ = ["LOSSES", "Loss", *sorted(LOSSES)]
