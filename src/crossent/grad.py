"""Closed-form gradients of crossent's losses: ``crossent.grad.<loss>(same arguments)``.

Each returns d loss / d logits (d loss / d probs for the losses from probabilities) with the
input's shape and dtype, without autograd: ``p - y`` and its weighted, smoothed, focal, z-loss,
MSE and hinge generalizations.

>>> import crossent as ce
>>> print(ce.grad.softmax_cross_entropy([[0.0, 0.0]], [1]))
[[ 0.5 -0.5]]
"""

from ._gradients import (
    binary_cross_entropy,
    categorical_cross_entropy,
    distillation_loss,
    hinge_loss,
    mse_loss,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
    softmax_focal_loss,
)

__all__ = [
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "distillation_loss",
    "hinge_loss",
    "mse_loss",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
]
