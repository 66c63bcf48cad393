"""Stable primitives: log-sum-exp, (log-)softmax, (log-)sigmoid, softplus, xlogy.

Every function accepts arrays of any Array API library, computes float16/bfloat16 inputs in
float32 and returns the input's floating dtype. Infinite inputs give the mathematical limit,
never NaN: a row whose maximum is +inf puts all its mass on its +inf entries, a row of all -inf
is uniform (softmax is shift invariant, and every entry is equal).
"""

from __future__ import annotations

import math
from typing import Any

from ._namespace import (
    Array,
    is_concrete,
    namespace,
    quiet_numpy,
    result_dtype,
    upcast,
)
from ._semantics import limit_rows
from ._semantics import sigmoid as _sigmoid
from ._semantics import softplus as _softplus
from ._validation import normalize_axis

__all__ = ["log_sigmoid", "log_softmax", "logsumexp", "sigmoid", "softmax", "softplus"]


# ---------------------------------------------------------------- private helpers (take xp)


def _lse(xp: Any, x: Array, axis: int, keepdims: bool = False) -> Array:
    """log(sum(exp(x))) along ``axis`` of an array already in its compute dtype."""
    if x.shape[axis] == 0:
        shape = list(x.shape)
        shape[axis] = 1
        out = xp.full(tuple(shape), -math.inf, dtype=x.dtype)
        return out if keepdims else xp.squeeze(out, axis=axis)
    m = xp.max(x, axis=axis, keepdims=True)
    # Shift by the max so no exp overflows; a +-inf max would give inf - inf = NaN, so those rows
    # shift by 0 instead (their sum is then inf or 0, whose log is the right +-inf).
    m = xp.where(xp.isfinite(m), m, xp.zeros_like(m))
    out = xp.log(xp.sum(xp.exp(x - m), axis=axis, keepdims=True)) + m
    return out if keepdims else xp.squeeze(out, axis=axis)


def _shift_by_max(xp: Any, x: Array, axis: int = -1) -> Array:
    """``x - max(x)`` along ``axis``, rows with an infinite max at their limit (limit_rows).

    A row with a +inf entry becomes 0 on its +inf entries and -inf elsewhere (all the mass goes
    there); a row of all -inf becomes all 0 (uniform). A NaN row stays NaN.
    """
    x = x if axis in (-1, x.ndim - 1) else xp.moveaxis(x, axis, -1)
    m = xp.max(x, axis=-1, keepdims=True)
    finite = xp.isfinite(m)
    shifted = x - xp.where(finite, m, xp.zeros_like(m))
    # The extra full-size pass is only paid when a row really has an infinite max, or when the
    # data cannot be inspected (jax.jit, torch.compile), where both branches must be traced.
    if not is_concrete(m) or not bool(xp.all(finite)):
        shifted = limit_rows(xp, shifted, xp.isinf(m[..., 0]))
    return shifted if axis in (-1, x.ndim - 1) else xp.moveaxis(shifted, -1, axis)


def _log_softmax(xp: Any, x: Array, axis: int) -> Array:
    shifted = _shift_by_max(xp, x, axis)
    return shifted - xp.log(xp.sum(xp.exp(shifted), axis=axis, keepdims=True))


def _softmax(xp: Any, x: Array, axis: int) -> Array:
    e = xp.exp(_shift_by_max(xp, x, axis))
    return e / xp.sum(e, axis=axis, keepdims=True)


def _xlogy(xp: Any, x: Array, y: Array) -> Array:
    """x * log(y) with 0 * log(0) = 0 (and a finite gradient where x == 0)."""
    zero = x == 0
    safe_y = xp.where(zero, xp.ones_like(y), y)
    return xp.where(zero, xp.zeros_like(x), x * xp.log(safe_y))


def _elementwise(fn: Any, x: Array) -> Array:
    xp, (x,) = namespace(x)
    return xp.astype(fn(xp, upcast(xp, x)), result_dtype(xp, x.dtype))


def _along_axis(fn: Any, x: Array, axis: int) -> Array:
    xp, (x,) = namespace(x)
    axis = normalize_axis(axis, x.ndim)
    return xp.astype(fn(xp, upcast(xp, x), axis), result_dtype(xp, x.dtype))


# ---------------------------------------------------------------- public API


@quiet_numpy
def logsumexp(x: Array, /, *, axis: int = -1, keepdims: bool = False) -> Array:
    r"""Log of the sum of exponentials, computed without overflow.

    .. math:: \operatorname{LSE}(x) = m + \log \sum_j e^{x_j - m}, \quad m = \max_j x_j

    Parameters
    ----------
    x : array
        Input values.
    axis : int, default -1
        Axis to reduce (SciPy's default ``axis=None`` flattens; crossent reduces the class axis).
    keepdims : bool, default False
        Keep the reduced axis with length 1.

    Returns
    -------
    array
        The log-sum-exp, in ``x``'s floating dtype. A +inf entry gives +inf; a row of -inf
        (or an empty row) gives -inf.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.logsumexp([1000.0, 1000.0])))  # naive log(sum(exp)) overflows
    1000.6931471805599
    """
    from ._dispatch import row_logsumexp  # the dispatch layer imports this module

    xp, (x,) = namespace(x)
    axis = normalize_axis(axis, x.ndim)
    lse = row_logsumexp(xp, upcast(xp, x), axis=axis, keepdims=keepdims)
    return xp.astype(lse, result_dtype(xp, x.dtype))


@quiet_numpy
def log_softmax(x: Array, /, *, axis: int = -1) -> Array:
    r"""Logarithm of the softmax, computed as ``x - logsumexp(x)`` (never softmax-then-log).

    .. math:: \log \operatorname{softmax}(x)_i = x_i - \operatorname{LSE}(x)

    Parameters
    ----------
    x : array
        Logits.
    axis : int, default -1
        The class axis.

    Returns
    -------
    array
        Log-probabilities, same shape and floating dtype as ``x``.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.log_softmax([1000.0, 0.0, -1000.0]))
    [    0. -1000. -2000.]
    """
    return _along_axis(_log_softmax, x, axis)


@quiet_numpy
def softmax(x: Array, /, *, axis: int = -1) -> Array:
    r"""Softmax, shifted by the row maximum so no exponential overflows.

    .. math:: \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}

    Parameters
    ----------
    x : array
        Logits.
    axis : int, default -1
        The class axis.

    Returns
    -------
    array
        Probabilities summing to 1 along ``axis``. Rows with +inf entries share the mass among
        them; a row of all -inf is uniform.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.softmax([2.0, 1.0, 0.1]).round(4))
    [0.659  0.2424 0.0986]
    """
    return _along_axis(_softmax, x, axis)


@quiet_numpy
def softplus(x: Array, /) -> Array:
    r"""Softplus :math:`\log(1 + e^x)`, computed as ``max(x, 0) + log1p(exp(-|x|))``.

    It is the binary cross-entropy of a logit whose true label is 0, and the cross-entropy of a
    two-class logit margin (seed 003).

    Parameters
    ----------
    x : array
        Input values.

    Returns
    -------
    array
        Softplus of ``x``; ``softplus(inf) = inf``, ``softplus(-inf) = 0``.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.softplus([-50.0, 0.0, 50.0]))
    [1.92874985e-22 6.93147181e-01 5.00000000e+01]
    """
    return _elementwise(_softplus, x)


@quiet_numpy
def log_sigmoid(x: Array, /) -> Array:
    r"""Log of the sigmoid, computed as ``-softplus(-x)``.

    .. math:: \log \sigma(x) = -\log(1 + e^{-x})

    Parameters
    ----------
    x : array
        Logits.

    Returns
    -------
    array
        ``log(sigmoid(x))``; stays finite (``≈ x``) where ``sigmoid(x)`` underflows to 0.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.log_sigmoid([-1000.0, 0.0]))
    [-1000.            -0.69314718]
    """
    return _elementwise(lambda xp, v: -_softplus(xp, -v), x)


@quiet_numpy
def sigmoid(x: Array, /) -> Array:
    r"""Logistic sigmoid :math:`\sigma(x) = 1 / (1 + e^{-x})`, without overflow for any x.

    Parameters
    ----------
    x : array
        Logits.

    Returns
    -------
    array
        Probabilities in [0, 1].

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.sigmoid([-1000.0, 0.0, 1000.0]))
    [0.  0.5 1. ]
    """
    return _elementwise(_sigmoid, x)
