"""Checking and flattening the inputs of the metrics, and the small array helpers they share.

``_prepare`` reads every metric's input as the package describes: probabilities (or scores, or
logits) of shape ``(..., K)``, classes last, and integer labels of the leading shape, flattened
to ``(N, K)`` and ``(N,)``; a 1-D ``probs`` with labels of the same shape is the probability of
class 1 of a binary problem.
"""

from __future__ import annotations

import math
import warnings
from typing import Any

import numpy as np

from .._namespace import (
    Array,
    _is_array,
    is_concrete,
    is_dask,
    namespace,
    numel,
    result_dtype,
    to_numpy,
    upcast,
)
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


def _drop_ignored(
    values: Any, labels: Any, weights: Any, ignore_index: Any, *, name: str, by_weight: bool = False
) -> tuple[Any, Any, Any]:
    """The examples whose label is not ``ignore_index`` (torchmetrics' ``ignore_index``).

    The one implementation of the option for every metric, one-shot and streaming: the rows
    are dropped from the raw inputs (the labels' boolean mask indexes the leading axes of the
    predictions and the weights), so everything after sees only the kept examples. Inputs whose
    shapes do not line up are returned unchanged, for the checks of :func:`_prepare` to name.
    A boolean mask gives a data-dependent shape, so this needs concrete labels (no ``jit``).
    A lazy Dask batch, or with ``by_weight`` values read by rows later (the temperature fit's
    datasets), keep their rows instead: the ignored examples get weight 0 (weights of the
    labels' shape are made) and label 0, which every weighted mean and bin sum leaves out.
    """
    if ignore_index is None:
        return values, labels, weights
    if isinstance(ignore_index, bool) or not isinstance(ignore_index, (int, str, np.integer)):
        raise TypeError(f"ignore_index must be an integer label (or None), got {ignore_index!r}")
    if by_weight:  # the values are not read here
        xp, (labels,) = namespace(labels, names=("labels",))
        lead = shape_ok = tuple(labels.shape)
    else:
        xp, (values, labels) = namespace(values, labels, names=(name, "labels"))
        lead, shape_ok = tuple(labels.shape), tuple(values.shape[: labels.ndim])
    if weights is not None:  # weights of another library are taken, as _sample_weights does
        weights = xp.asarray(
            to_numpy(weights)
            if _is_array(weights) and not _same_library(weights, labels)
            else weights,
            device=getattr(labels, "device", None),
        )
    if shape_ok != lead or (weights is not None and tuple(weights.shape) != lead):
        return values, labels, weights
    keep = labels != ignore_index
    if by_weight or is_dask(labels):
        # (Dask: a mask index would give chunks of unknown size, known only after a compute.)
        # the default float (float64 where the library has it: _sample_weights makes it so)
        one = xp.ones_like(labels, dtype=xp.asarray(0.0).dtype) if weights is None else weights
        weights = xp.where(keep, one, xp.zeros_like(one))
        return values, xp.where(keep, labels, xp.zeros_like(labels)), weights
    return values[keep], labels[keep], None if weights is None else weights[keep]


def _same_library(a: Any, b: Any) -> bool:
    return type(a).__module__.split(".")[0] == type(b).__module__.split(".")[0]


def _prepare(
    values: Array,
    labels: Array,
    *,
    name: str = "probs",
    weights: Any = None,
    ignore_index: Any = None,
    classes: Any = None,
    encode: bool = False,
) -> tuple[Any, Array, Array, Array | None, Any]:
    """Namespace, values as ``(N, K)`` in the compute dtype, labels as ``(N,)``, the weights
    checked by :func:`_sample_weights` as ``(N,)`` float (None without), result dtype.

    Labels are checked to be integers in [0, K); values are not range-checked here. Examples
    whose label is ``ignore_index`` are dropped first (:func:`_drop_ignored`). With ``encode``
    (``log_loss``), labels given as class names, or any labels with ``classes``, become column
    indices as scikit-learn's ``LabelBinarizer`` orders them (:func:`_class_indices`).
    """
    values, labels, weights = _drop_ignored(values, labels, weights, ignore_index, name=name)
    if encode and (classes is not None or _is_class_names(labels)):
        labels = _class_indices(labels, classes, _shape(values))
    xp, (values, labels) = namespace(values, labels, names=(name, "labels"))
    if not xp.isdtype(values.dtype, "real floating"):
        if xp.isdtype(values.dtype, "integral") or values.dtype == xp.bool:
            values = xp.astype(values, xp.asarray(0.0).dtype)
        else:
            raise TypeError(f"{name} must be a real floating array, got dtype {values.dtype}")
    if not xp.isdtype(labels.dtype, "integral"):
        hint = " (log_loss also takes class names, as scikit-learn)" if not encode else ""
        raise TypeError(f"labels must be integer class indices{hint}, got dtype {labels.dtype}")
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
    w = None if weights is None else _sample_weights(xp, weights, tuple(labels.shape), like=v)
    v = xp.reshape(v, (-1, k))
    y = xp.reshape(labels, (-1,))
    if v.shape[0] == 0:
        if ignore_index is not None:
            raise ValueError(
                f"every example's label equals ignore_index={ignore_index!r}: none is left"
            )
        raise ValueError(f"{name} holds no examples (shape {tuple(values.shape)})")
    check_index_targets(xp, y, k, None)
    return xp, v, y, w, dtype


def _prepare_probs(
    probs: Array,
    labels: Array,
    *,
    weights: Any = None,
    ignore_index: Any = None,
    classes: Any = None,
    encode: bool = False,
) -> tuple[Any, Array, Array, Array | None, Any]:
    """:func:`_prepare` of probabilities, checked to lie in [0, 1]."""
    xp, p, y, w, dtype = _prepare(
        probs, labels, weights=weights, ignore_index=ignore_index, classes=classes, encode=encode
    )
    check_unit_interval(xp, p, "probs")
    return xp, p, y, w, dtype


def _is_class_names(labels: Any) -> bool:
    """Whether ``labels`` are class names rather than column indices: strings, objects,
    booleans or floats (scikit-learn reads them all as class names)."""
    if _is_array(labels) and not isinstance(labels, np.ndarray):
        return False  # another library's array: its dtype decides in _prepare
    return np.asarray(labels).dtype.kind in "OUSbf"


def _class_indices(labels: Any, classes: Any, values_shape: tuple[int, ...]) -> np.ndarray:
    """Column indices of class-name labels, with scikit-learn's ``log_loss`` semantics.

    The classes are ``classes`` if given, else the distinct labels, in sorted order
    (``LabelBinarizer``'s ``classes_``, which is ``np.unique``'s order): label ``c`` is column
    ``searchsorted(classes, c)``. As scikit-learn: a ``classes`` not given in sorted order is
    warned about (its columns are still read in sorted order), a label outside ``classes`` is
    a ValueError naming it, fewer than 2 classes or a class count other than the number of
    columns is a ValueError. A 1-D ``probs`` is the probability of the second class.
    """
    y = np.asarray(to_numpy(labels) if _is_array(labels) else labels)
    if y.dtype.kind == "f" and not (np.isfinite(y) & (y == np.round(y))).all():
        # scikit-learn reads such targets as continuous, not as classes, and refuses them
        at = int(np.argmax(~(np.isfinite(y) & (y == np.round(y)))))
        raise ValueError(
            f"float labels must be whole numbers (class names); found {y.ravel()[at]} at index {at}"
        )
    if classes is None:
        found = _sorted_classes(y.ravel())
    else:
        given = np.asarray(to_numpy(classes) if _is_array(classes) else classes)
        if given.ndim != 1:
            raise ValueError(f"labels= must be a 1-D list of classes; got shape {given.shape}")
        found = _sorted_classes(given)
        if len(found) != len(given) or not all(a == b for a, b in zip(found, given, strict=True)):
            warnings.warn(
                f"labels={given.tolist()} are not in sorted order: the columns of probs are "
                f"read as the sorted classes {found.tolist()} (scikit-learn's LabelBinarizer "
                "order); pass labels in that order",
                UserWarning,
                stacklevel=4,
            )
        inside = _isin(y, found)
        if not inside.all():
            extra = sorted({v for v in y[~inside].tolist()}, key=repr)
            raise ValueError(
                f"labels (the targets) contain {extra} not among the classes given by "
                f"labels={given.tolist()}"
            )
    if len(found) < 2:
        if classes is None:
            raise ValueError(
                f"the labels contain only one class ({found.tolist()[0]!r}); give every class "
                "with labels=[...]"
            )
        raise ValueError(f"labels= must hold at least two classes, got {found.tolist()}")
    columns = 2 if len(values_shape) == y.ndim else (values_shape[-1] if values_shape else 0)
    if len(found) != columns:
        where = "labels=" if classes is not None else "the labels"
        raise ValueError(
            f"{where} hold {len(found)} classes {found.tolist()} but probs has {columns} "
            "columns (one per class, in sorted class order); give every class with labels=[...]"
        )
    position = {c: i for i, c in enumerate(found.tolist())}
    return np.array([position[c] for c in y.ravel().tolist()], dtype=np.int64).reshape(y.shape)


def _sorted_classes(y: np.ndarray) -> np.ndarray:
    """The distinct labels in sorted order (``np.unique``; a mix of strings and numbers,
    which cannot be sorted, is refused as scikit-learn refuses it)."""
    try:
        return np.unique(y)
    except TypeError:
        kinds = sorted({type(v).__name__ for v in y.tolist()})
        raise TypeError(f"labels mix types that cannot be ordered: {kinds}") from None


def _isin(y: np.ndarray, classes: np.ndarray) -> np.ndarray:
    # Python equality, as scikit-learn's set difference: np.isin compares a str with an int badly
    known = set(classes.tolist())
    return np.array([v in known for v in y.ravel().tolist()], dtype=bool).reshape(y.shape)


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
