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
    as_dtype,
    compute_dtype,
    is_concrete,
    namespace,
    quiet_numpy,
    result_dtype,
    upcast,
)
from ._semantics import limit_rows
from ._semantics import sigmoid as _sigmoid
from ._semantics import softplus as _softplus
from ._validation import broadcast_weights, normalize_axes, normalize_axis

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
    xp, (x,) = namespace(x, names=("x",))
    return xp.astype(fn(xp, upcast(xp, x)), result_dtype(xp, x.dtype))


def _along_axis(fn: Any, x: Array, axis: int) -> Array:
    xp, (x,) = namespace(x, names=("x",))
    axis = normalize_axis(axis, x.ndim)
    return xp.astype(fn(xp, upcast(xp, x), axis), result_dtype(xp, x.dtype))


# ---------------------------------------------------------------- public API


Axes = int | tuple[int, ...] | None


def _merge_axes(xp: Any, x: Array, axes: tuple[int, ...]) -> Array:
    """``x`` as a 2-D array: the other axes (in order) merged into rows, ``axes`` into columns.

    A single trailing axis of a C-contiguous array is a view; anything else is one copy.
    """
    rest = tuple(a for a in range(x.ndim) if a not in axes)
    if rest + axes != tuple(range(x.ndim)):
        x = xp.permute_dims(x, rest + axes)
    rows = math.prod(int(x.shape[a]) for a in range(len(rest)))
    cols = math.prod(int(x.shape[a]) for a in range(len(rest), x.ndim))
    return xp.reshape(x, (rows, cols))


def _split_axes(xp: Any, y: Array, shape: tuple[int, ...], axes: tuple[int, ...]) -> Array:
    """Inverse of :func:`_merge_axes` for an array of the merged shape."""
    rest = tuple(a for a in range(len(shape)) if a not in axes)
    order = rest + axes
    y = xp.reshape(y, tuple(shape[a] for a in order))
    if order == tuple(range(len(shape))):
        return y
    return xp.permute_dims(y, tuple(order.index(a) for a in range(len(shape))))


def _reduced_shape(shape: tuple[int, ...], axes: tuple[int, ...], keepdims: bool) -> tuple:
    if keepdims:
        return tuple(1 if a in axes else n for a, n in enumerate(shape))
    return tuple(n for a, n in enumerate(shape) if a not in axes)


def _lse_split(xp: Any, a: Array, b: Array | None) -> tuple[Array, Array]:
    r"""``(log|sum_j b_j e^{a_j}|, sign of the sum)`` per row of a 2-D ``a`` (SciPy's method).

    The maximum terms are taken out of the sum: with :math:`k = \sum_{a_j = m} b_j` and
    :math:`s = \sum_{a_j < m} b_j e^{a_j - m} / k`, the result is
    :math:`m + \log|k| + \log|1 + s|`, and ``log1p`` keeps a tail smaller than the
    rounding of 1 (``logsumexp([0, -40])`` is 4.2e-18, not 0). A zero weight removes its
    term even where ``a`` is infinite or NaN; a row of no terms is -inf with sign 0.
    """
    if b is not None:
        a = xp.where(b == 0, xp.full_like(a, -math.inf), a)
    m = xp.max(a, axis=-1, keepdims=True)
    top = a == m
    ones = xp.ones_like(a)
    k = xp.sum(xp.where(top, ones if b is None else b, xp.zeros_like(a)), axis=-1, keepdims=True)
    # a -inf maximum (nothing to add) would give -inf - -inf = NaN: shift those rows by 0
    shift = xp.where(m == -math.inf, xp.zeros_like(m), m)
    e = xp.exp(xp.where(top, xp.full_like(a, -math.inf), a) - shift)
    s = xp.sum(e if b is None else b * e, axis=-1, keepdims=True)
    s = xp.where(s == 0, s, s / xp.where(k == 0, ones[..., :1], k))
    sign = xp.sign(s + 1) * xp.sign(k)
    out = xp.log1p(xp.where(s < -1, -s - 2, s)) + xp.log(xp.abs(k)) + m
    empty = m == -math.inf
    out = xp.where(empty, xp.full_like(out, -math.inf), out)
    sign = xp.where(empty, xp.zeros_like(sign), sign)
    return out[..., 0], sign[..., 0]


def _precise_lse(xp: Any, z: Array) -> Array:
    """The log-sum-exp of each row of a 2-D ``z``, its maximum term split out with log1p."""
    from . import _fast  # the dispatch layer's kernels import this module

    if _fast.applies(xp, z):
        return _fast.row_logsumexp(z, precise=True)
    if z.shape[-1] == 0:
        return xp.full(z.shape[:-1], -math.inf, dtype=z.dtype)
    return _lse_split(xp, z, None)[0]


@quiet_numpy
def logsumexp(
    x: Array,
    /,
    *,
    axis: Axes = -1,
    keepdims: bool = False,
    b: Array | None = None,
    return_sign: bool = False,
) -> Array | tuple[Array, Array]:
    r"""Log of the sum of exponentials, computed without overflow or lost small terms.

    .. math:: \operatorname{LSE}(x) = \log \sum_j b_j e^{x_j}
              = m + \log k + \operatorname{log1p}\Bigl(\frac{1}{k}
                \sum_{x_j < m} b_j e^{x_j - m}\Bigr)

    with :math:`m = \max_j x_j` and :math:`k = \sum_{x_j = m} b_j` (:math:`b = 1` by
    default): the maximum terms are split out of the sum so ``log1p`` keeps a tail below
    the rounding of 1 (SciPy's method since 1.15, gh-18295).

    Parameters
    ----------
    x : array
        Input values.
    axis : int, tuple of ints or None, default -1
        Axis or axes to reduce; None reduces every axis (SciPy's default ``axis=None``
        flattens; crossent reduces the class axis).
    keepdims : bool, default False
        Keep the reduced axes with length 1.
    b : array, optional
        Weights of the terms, broadcastable to ``x``; they may be negative, to subtract terms.
        A zero weight removes its term, even where ``x`` is infinite or NaN.
    return_sign : bool, default False
        Also return the sign of the sum (+1, -1, or 0 for a zero sum) and give
        ``log|sum|`` as the value.

    Returns
    -------
    array or (array, array)
        The log-sum-exp, in ``x``'s floating dtype (the promoted one with ``b``); with
        ``return_sign``, the pair ``(log|sum|, sign)``. A +inf entry gives +inf; a row of
        -inf (or an empty row) gives -inf. Without ``return_sign`` a negative sum has no
        real logarithm and gives NaN, as in SciPy: pass ``return_sign=True`` when weights
        can be negative.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.logsumexp([1000.0, 1000.0])))  # naive log(sum(exp)) overflows
    1000.6931471805599
    >>> print(float(ce.logsumexp([0.0, -40.0])))  # log1p keeps e^-40; log(1 + e^-40) = 0
    4.248354255291589e-18
    >>> value, sign = ce.logsumexp([1.0, 2.0], b=[1.0, -1.0], return_sign=True)
    >>> print(round(float(value), 4), float(sign))  # log|e - e^2|, and the sum is negative
    1.5413 -1.0
    >>> print(ce.logsumexp([[0.0, 1.0], [2.0, 3.0]], axis=None).round(4))
    3.4402
    """
    xp, (x, b) = namespace(x, b, names=("x", "b?"))
    if x.ndim == 0 and axis is None:
        x = xp.reshape(x, (1,))
    axes = normalize_axes(axis, x.ndim)
    dtype = result_dtype(xp, x.dtype)
    if b is not None and xp.isdtype(b.dtype, "real floating"):
        dtype = xp.result_type(dtype, b.dtype)  # SciPy promotes x and b
    z = as_dtype(xp, x, compute_dtype(xp, dtype))
    shape = tuple(int(n) for n in z.shape)
    flat = _merge_axes(xp, z, axes)
    sign = None
    if b is None and not return_sign:
        out = _precise_lse(xp, flat)
    elif flat.shape[-1] == 0:
        out = xp.full(flat.shape[:-1], -math.inf, dtype=z.dtype)
        sign = xp.zeros_like(out)
    else:
        w = None if b is None else broadcast_weights(xp, xp.astype(b, z.dtype), shape, "b")
        out, sign = _lse_split(xp, flat, None if w is None else _merge_axes(xp, w, axes))
    if sign is not None and not return_sign:
        # a negative sum has no real logarithm (SciPy's rule; return_sign gives log|sum|)
        out = xp.where(sign < 0, xp.full_like(out, math.nan), out)
    reduced = _reduced_shape(shape, axes, keepdims)
    out = xp.astype(xp.reshape(out, reduced), dtype)
    if not return_sign:
        return out
    return out, xp.astype(xp.reshape(sign, reduced), dtype)


def _over_axes(fn: Any, x: Array, axis: Axes) -> Array:
    xp, (x,) = namespace(x, names=("x",))
    if x.ndim == 0 and axis is None:
        return _along_axis(fn, xp.reshape(x, (1,)), 0)[0]
    axes = normalize_axes(axis, x.ndim)
    if len(axes) == 1:
        return _along_axis(fn, x, axes[0])
    shape = tuple(int(n) for n in x.shape)
    out = fn(xp, _merge_axes(xp, upcast(xp, x), axes), -1)
    return xp.astype(_split_axes(xp, out, shape, axes), result_dtype(xp, x.dtype))


@quiet_numpy
def log_softmax(x: Array, /, *, axis: Axes = -1) -> Array:
    r"""Logarithm of the softmax, computed as ``x - logsumexp(x)`` (never softmax-then-log).

    .. math:: \log \operatorname{softmax}(x)_i = x_i - \operatorname{LSE}(x)

    Parameters
    ----------
    x : array
        Logits.
    axis : int, tuple of ints or None, default -1
        The class axis, or axes taken together as one distribution (None: all of them).

    Returns
    -------
    array
        Log-probabilities, same shape and floating dtype as ``x``.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.log_softmax([1000.0, 0.0, -1000.0]))
    [    0. -1000. -2000.]
    >>> print(ce.log_softmax([[0.0, 0.0], [0.0, 0.0]], axis=None).round(4))  # one distribution
    [[-1.3863 -1.3863]
     [-1.3863 -1.3863]]
    """
    return _over_axes(_log_softmax, x, axis)


@quiet_numpy
def softmax(x: Array, /, *, axis: Axes = -1) -> Array:
    r"""Softmax, shifted by the row maximum so no exponential overflows.

    .. math:: \operatorname{softmax}(x)_i = \frac{e^{x_i - m}}{\sum_j e^{x_j - m}}

    Parameters
    ----------
    x : array
        Logits.
    axis : int, tuple of ints or None, default -1
        The class axis, or axes taken together as one distribution (None: all of them).

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
    >>> print(ce.softmax([[1.0, 1.0], [1.0, 1.0]], axis=(0, 1)))
    [[0.25 0.25]
     [0.25 0.25]]
    """
    return _over_axes(_softmax, x, axis)


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
