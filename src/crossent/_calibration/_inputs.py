"""Checking and flattening the inputs of the metrics, and the small array helpers they share.

``_prepare`` reads every metric's input as the package describes: probabilities (or scores, or
logits) of shape ``(..., K)``, classes last, and integer labels of the leading shape, flattened
to ``(N, K)`` and ``(N,)``; a 1-D ``probs`` with labels of the same shape is the probability of
class 1 of a binary problem.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .._namespace import Array, is_concrete, namespace, numel, result_dtype, upcast
from .._semantics import reduce
from .._validation import (
    check_base,
    check_index_targets,
    check_nonnegative_array,
    check_unit_interval,
    first_bad,
    format_index,
)


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _prepare(values: Array, labels: Array, *, name: str = "probs") -> tuple[Any, Array, Array, Any]:
    """Namespace, values as ``(N, K)`` in the compute dtype, labels as ``(N,)``, result dtype.

    Labels are checked to be integers in [0, K); values are not range-checked here.
    """
    xp, (values, labels) = namespace(values, labels, names=(name, "labels"))
    if not xp.isdtype(values.dtype, "real floating"):
        if xp.isdtype(values.dtype, "integral") or values.dtype == xp.bool:
            values = xp.astype(values, xp.asarray(0.0).dtype)
        else:
            raise TypeError(f"{name} must be a real floating array, got dtype {values.dtype}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    dtype = result_dtype(xp, values.dtype)
    v = upcast(xp, values)
    if v.ndim == labels.ndim and v.ndim >= 1 and tuple(v.shape) == tuple(labels.shape):
        if name != "probs":
            raise ValueError(
                f"{name} of shape {tuple(v.shape)} has no class axis (a 1-D binary {name} "
                "is only read as probabilities); give one column per class"
            )
        # Binary shorthand: the probability of class 1, as scikit-learn's y_prob.
        v = xp.stack([1 - v, v], axis=-1)
    if v.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., K) with a class axis last; got shape {tuple(v.shape)}"
        )
    if tuple(v.shape[:-1]) != tuple(labels.shape):
        raise ValueError(
            f"labels must have shape {tuple(v.shape[:-1])} (the shape of {name} without its last, "
            f"class axis); got {tuple(labels.shape)}"
        )
    k = int(v.shape[-1])
    if k < 2:
        raise ValueError(f"{name} must have at least 2 classes along the last axis; got {k}")
    v = xp.reshape(v, (-1, k))
    y = xp.reshape(labels, (-1,))
    if v.shape[0] == 0:
        raise ValueError(f"{name} holds no examples (shape {tuple(values.shape)})")
    check_index_targets(xp, y, k, None)
    return xp, v, y, dtype


def _prepare_probs(probs: Array, labels: Array) -> tuple[Any, Array, Array, Any]:
    xp, p, y, dtype = _prepare(probs, labels)
    check_unit_interval(xp, p, "probs")
    return xp, p, y, dtype


def _log_of_base(base: float | None) -> float:
    """The divisor that turns nats into units of ``base`` (1 for nats)."""
    b = check_base(base)
    return 1.0 if b is None else math.log(b)


def _onehot(xp: Any, y: Array, k: int) -> Array:
    return y[:, None] == xp.arange(k, dtype=y.dtype)


def _take(xp: Any, x: Array, y: Array) -> Array:
    """x[i, y[i]] for a 2-D ``x``."""
    return xp.take_along_axis(x, y[:, None], axis=-1)[:, 0]


def _precise(xp: Any, x: Array) -> Array:
    """``x`` in float64 where the library has it (jax without x64 does not), else unchanged."""
    info = xp.__array_namespace_info__()
    if "float64" in info.dtypes(kind="real floating") and x.dtype != xp.float64:
        return xp.astype(x, xp.float64)
    return x


def _out(xp: Any, x: Array, dtype: Any) -> Array:
    return xp.astype(x, dtype)


def _check_finite_or_neg_inf(xp: Any, z: Array, name: str) -> None:
    """No NaN and no +inf (a -inf logit is the log of a zero probability and is fine)."""
    # One reduction in the common case: the max is NaN or +inf exactly when some value is.
    if not is_concrete(z) or numel(z) == 0 or float(xp.max(z)) < math.inf:
        return
    found = first_bad(xp, xp.isnan(z) | (z == math.inf), z)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must be finite (or -inf); found {value} at index {format_index(index)}"
        )


def _sample_weights(xp: Any, weights: Any, shape: tuple[int, ...], *, like: Array) -> Array:
    """Per-example weights checked once for every metric: flat float64 (where the library has
    it), of the labels' ``shape``, finite, >= 0 and not all 0 (their sum divides every mean).
    """
    w = xp.asarray(weights, device=getattr(like, "device", None))
    if w.dtype == xp.bool or xp.isdtype(w.dtype, "integral"):
        w = xp.astype(w, xp.asarray(0.0).dtype)
    if not xp.isdtype(w.dtype, "real floating"):
        raise TypeError(f"weights must be real numbers, got dtype {w.dtype}")
    if tuple(w.shape) != tuple(shape):
        raise ValueError(
            f"weights must have the labels' shape {tuple(shape)}, one per example; "
            f"got shape {tuple(w.shape)}"
        )
    w = _precise(xp, xp.reshape(w, (-1,)))
    if is_concrete(w):
        check_nonnegative_array(xp, w, "weights")
        if not float(xp.sum(w)) > 0:
            raise ValueError(
                "weights must not all be 0: their sum is the denominator of every mean"
            )
    return w


def _shape(a: Any) -> tuple[int, ...]:
    """The shape of an array or of nested lists (without converting an array)."""
    if hasattr(a, "shape"):
        return tuple(int(d) for d in a.shape)
    return tuple(np.shape(a))


def _mean(xp: Any, x: Array, weights: Array | None) -> Array:
    r"""The mean of per-example values, or their weighted mean :math:`\sum_i w_i x_i / \sum_i w_i`
    (scikit-learn's ``sample_weight``): the loss rule's reduction with the weights' sum as the
    normalizer."""
    if weights is None:
        return xp.mean(x)
    x = _precise(xp, x)
    total = xp.sum(weights)
    return reduce(xp, x, "mean", total, sample_weight=weights, normalizer=total)
