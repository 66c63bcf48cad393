"""Closed-form gradients of crossent's losses: ``crossent.grad.<loss>(same arguments)``.

Each returns d loss / d logits (d loss / d probs for the losses from probabilities) with the
input's shape and dtype, without autograd: ``p - y`` and its weighted, smoothed, focal, z-loss,
MSE and hinge generalizations. For ``reduction="none"`` it is the gradient of the sum of the
per-sample losses. Built from the registry :data:`crossent.losses.LOSSES`.

>>> import crossent as ce
>>> print(ce.grad.softmax_cross_entropy([[0.0, 0.0]], [1]))
[[ 0.5 -0.5]]
"""

from .losses import LOSSES

binary_cross_entropy = LOSSES["binary_cross_entropy"].gradient
categorical_cross_entropy = LOSSES["categorical_cross_entropy"].gradient
distillation_loss = LOSSES["distillation_loss"].gradient
hinge_loss = LOSSES["hinge_loss"].gradient
kl_div_loss = LOSSES["kl_div_loss"].gradient
mse_loss = LOSSES["mse_loss"].gradient
nll_loss = LOSSES["nll_loss"].gradient
poly_loss = LOSSES["poly_loss"].gradient
sigmoid_binary_cross_entropy = LOSSES["sigmoid_binary_cross_entropy"].gradient
sigmoid_focal_loss = LOSSES["sigmoid_focal_loss"].gradient
softmax_cross_entropy = LOSSES["softmax_cross_entropy"].gradient
softmax_focal_loss = LOSSES["softmax_focal_loss"].gradient

__all__ = sorted(LOSSES)
