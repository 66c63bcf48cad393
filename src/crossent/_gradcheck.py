"""Compare a gradient with central finite differences (seed 004's gradient check)."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._namespace import Array, quiet_numpy, to_numpy

__all__ = ["GradientCheck", "check_gradient"]


@dataclass(frozen=True)
class GradientCheck:
    """Result of :func:`check_gradient`: both gradients and how far apart they are."""

    analytic: np.ndarray
    numerical: np.ndarray
    max_abs_error: float
    max_rel_error: float
    ok: bool

    def __bool__(self) -> bool:
        return self.ok


@quiet_numpy
def check_gradient(
    fn: Callable[[Any], Any],
    x: Array,
    /,
    *,
    grad: Array | Callable[[Any], Any],
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> GradientCheck:
    r"""Compare a gradient with central finite differences of ``fn`` (seed 004's gradient check).

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}

    The differences are taken in float64 NumPy, whatever ``x`` is, with an error of order
    :math:`h^2`. The check passes when every entry satisfies
    ``|analytic - numerical| <= atol + rtol * |numerical|``.

    Parameters
    ----------
    fn : callable
        Scalar function of one array (called with float64 NumPy arrays).
    x : array
        The point at which to check.
    grad : array or callable
        The gradient to check, or a function of ``x`` returning it.
    eps : float, default 1e-6
        The step h.
    rtol, atol : float
        Tolerances of the comparison.

    Returns
    -------
    GradientCheck
        ``ok`` (also its truth value), the errors, and both gradients.

    Examples
    --------
    >>> import crossent as ce
    >>> x = [[2.0, 1.0, 0.1]]
    >>> loss = lambda z: ce.softmax_cross_entropy(z, [0])
    >>> bool(ce.check_gradient(loss, x, grad=ce.grad.softmax_cross_entropy(x, [0])))
    True
    >>> bool(ce.check_gradient(loss, x, grad=ce.softmax(x)))  # forgot to subtract y
    False
    """
    point = np.array(to_numpy(np.asarray(x) if isinstance(x, (list, tuple)) else x), np.float64)
    analytic = grad(x) if callable(grad) else grad
    analytic_np = np.asarray(to_numpy(analytic), dtype=np.float64)
    if analytic_np.shape != point.shape:
        raise ValueError(f"grad has shape {analytic_np.shape}, but x has shape {point.shape}")
    numerical = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        step = np.zeros_like(point)
        step[index] = eps
        upper = float(to_numpy(fn(point + step)))
        lower = float(to_numpy(fn(point - step)))
        numerical[index] = (upper - lower) / (2 * eps)
    error = np.abs(analytic_np - numerical)
    scale = np.maximum(np.abs(numerical), np.finfo(np.float64).tiny)
    ok = bool(np.all(error <= atol + rtol * np.abs(numerical)))
    return GradientCheck(
        analytic=analytic_np,
        numerical=numerical,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float((error / scale).max(initial=0.0)),
        ok=ok and not math.isnan(float(error.sum())),
    )
