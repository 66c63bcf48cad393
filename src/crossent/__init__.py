"""crossent: cross-entropy, exact and stable, on NumPy, PyTorch, JAX and any Array API library.

>>> import crossent as ce
>>> print(round(float(ce.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0])), 4))
0.417
"""

from ._primitives import log_sigmoid, log_softmax, logsumexp, sigmoid, softmax, softplus

__version__ = "0.1.0"

__all__ = [
    "log_sigmoid",
    "log_softmax",
    "logsumexp",
    "sigmoid",
    "softmax",
    "softplus",
]
