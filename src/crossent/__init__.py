"""crossent: cross-entropy, exact and stable, on NumPy, PyTorch, JAX and any Array API library.

>>> import crossent as ce
>>> print(round(float(ce.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0])), 4))
0.417

Dask arrays (``pip install 'crossent[dask]'``) stay lazy and keep their chunks along the batch;
the losses and the calibration metrics with uniform bins are computed chunk by chunk:

>>> import dask.array as da
>>> z = da.from_array([[2.0, 1.0, 0.1]] * 4, chunks=(2, 3))
>>> loss = ce.softmax_cross_entropy(z, da.from_array([0, 0, 0, 0], chunks=2))
>>> print(type(loss).__name__, round(float(loss.compute()), 4))
Array 0.417
"""

from . import calibration, errors, grad, losses
from ._calibration import (
    LogLossDecomposition,
    ReliabilityCurve,
    apply_temperature,
    brier_score,
    expected_calibration_error,
    fit_temperature,
    label_perplexity,
    log_loss,
    log_loss_decomposition,
    reliability_curve,
    top_k_accuracy,
)
from ._diagnostics import Finding, diagnose
from ._gradcheck import GradientCheck, check_gradient
from ._information import cross_entropy, entropy, js_divergence, kl_divergence, perplexity
from ._primitives import log_sigmoid, log_softmax, logsumexp, sigmoid, softmax, softplus
from ._targets import class_weights, one_hot, smooth_labels
from .losses import (
    binary_cross_entropy,
    categorical_cross_entropy,
    distillation_loss,
    hinge_loss,
    kl_div_loss,
    mse_loss,
    nll_loss,
    poly_loss,
    sigmoid_binary_cross_entropy,
    sigmoid_focal_loss,
    softmax_cross_entropy,
    softmax_focal_loss,
)

__version__ = "0.1.0"

__all__ = [
    "Finding",
    "GradientCheck",
    "LogLossDecomposition",
    "ReliabilityCurve",
    "apply_temperature",
    "binary_cross_entropy",
    "brier_score",
    "calibration",
    "categorical_cross_entropy",
    "check_gradient",
    "class_weights",
    "cross_entropy",
    "diagnose",
    "distillation_loss",
    "entropy",
    "errors",
    "expected_calibration_error",
    "fit_temperature",
    "grad",
    "hinge_loss",
    "js_divergence",
    "kl_div_loss",
    "kl_divergence",
    "label_perplexity",
    "log_loss",
    "log_loss_decomposition",
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "losses",
    "mse_loss",
    "nll_loss",
    "one_hot",
    "perplexity",
    "poly_loss",
    "reliability_curve",
    "sigmoid",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "smooth_labels",
    "softmax",
    "softmax_cross_entropy",
    "softmax_focal_loss",
    "softplus",
    "top_k_accuracy",
]
