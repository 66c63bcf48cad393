"""crossent: cross-entropy, exact and stable, on NumPy, PyTorch, JAX and any Array API library.

>>> import crossent as ce
>>> print(round(float(ce.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0])), 4))
0.417
"""

from . import grad
from ._diagnostics import Finding, diagnose
from ._gradients import GradientCheck, check_gradient
from ._information import cross_entropy, entropy, js_divergence, kl_divergence, perplexity
from ._losses import (
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
from ._primitives import log_sigmoid, log_softmax, logsumexp, sigmoid, softmax, softplus
from ._targets import class_weights, one_hot, smooth_labels

__version__ = "0.1.0"

__all__ = [
    "Finding",
    "GradientCheck",
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "check_gradient",
    "class_weights",
    "cross_entropy",
    "diagnose",
    "distillation_loss",
    "entropy",
    "grad",
    "hinge_loss",
    "js_divergence",
    "kl_divergence",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "mse_loss",
    "one_hot",
    "perplexity",
    "sigmoid",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "softplus",
]
