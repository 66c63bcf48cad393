"""Input validation shared by every public function, on every library: one set of messages.

Checks of shapes, dtypes and options read metadata only and always run. Checks of values
(targets in range, probabilities in [0, 1], weights finite and >= 0) need the data: they run
where it can be read for free (:func:`crossent._namespace.is_concrete`) and are skipped under
tracing and on accelerators.
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Sequence
from typing import Any

import array_api_compat
import numpy as np

from ._namespace import Array, _is_array, is_concrete, numel, to_numpy
from ._semantics import REDUCTIONS, SMOOTHING_CONVENTIONS, SoftmaxCE


def first_bad(xp: Any, bad: Array, values: Array) -> tuple[tuple[int, ...], Any] | None:
    """Index and value of the first ``True`` of ``bad``, for error messages; None if none.

    The mask, not the input, decides whether the data can be read: under ``jax.jit`` a concrete
    array captured by a closure gives a traced mask, and reading it would break the trace.
    """
    if not is_concrete(bad) or numel(bad) == 0 or not bool(xp.any(bad)):
        return None
    index = tuple(int(i) for i in np.argwhere(to_numpy(bad))[0])
    value = to_numpy(values)[index]
    return index, value.item() if hasattr(value, "item") else value


def format_index(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(index)


def normalize_axis(axis: int, ndim: int, *, name: str = "axis") -> int:
    """``axis`` as a non-negative integer, or a ValueError naming it."""
    if isinstance(axis, bool) or not isinstance(axis, int):
        raise TypeError(f"{name} must be an integer, got {axis!r}")
    if not -ndim <= axis < ndim:
        raise ValueError(f"{name}={axis} is out of range for an array of {ndim} dimensions")
    return axis % ndim


def check_smoothing_convention(convention: str) -> str:
    if convention not in SMOOTHING_CONVENTIONS:
        raise ValueError(
            f"smoothing_convention must be one of {SMOOTHING_CONVENTIONS}, got {convention!r}"
        )
    return convention


def check_softcap(softcap: float | None) -> float | None:
    """None, or a finite number > 0."""
    if softcap is None:
        return None
    value = float(softcap)
    if not 0.0 < value < math.inf:  # comparisons only: traceable with symbolic floats
        raise ValueError(f"softcap must be None or a finite number > 0, got {softcap!r}")
    return value


def check_reduction(reduction: str) -> None:
    if reduction not in REDUCTIONS:
        raise ValueError(f"reduction must be one of {REDUCTIONS}, got {reduction!r}")


def check_fraction(value: float, name: str, *, upper_inclusive: bool = True) -> float:
    """A Python float in [0, 1] (or [0, 1)), else a ValueError naming it."""
    value = float(value)
    # Comparisons only (NaN fails them all): math.isnan cannot trace a symbolic float under
    # torch.compile(dynamic=True).
    ok = 0.0 <= value <= 1.0 if upper_inclusive else 0.0 <= value < 1.0
    if not ok:
        bound = "]" if upper_inclusive else ")"
        raise ValueError(f"{name} must be in [0, 1{bound}, got {value}")
    return value


def check_nonnegative(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 <= value < math.inf:  # comparisons only, as in check_fraction
        raise ValueError(f"{name} must be a finite number >= 0, got {value}")
    return value


def check_finite(value: float, name: str) -> float:
    """A finite Python float of either sign, else a ValueError naming it."""
    value = float(value)
    if not -math.inf < value < math.inf:  # comparisons only, as in check_fraction
        raise ValueError(f"{name} must be a finite number, got {value}")
    return value


def check_positive(value: float, name: str) -> float:
    value = float(value)
    if not 0.0 < value < math.inf:  # comparisons only, as in check_fraction
        raise ValueError(f"{name} must be a finite number > 0, got {value}")
    return value


def check_base(base: float | None) -> float | None:
    """A logarithm base > 1 (None means nats)."""
    if base is None:
        return None
    value = float(base)
    if not value > 1.0 or math.isinf(value):
        raise ValueError(f"base must be None (nats) or a finite number > 1, got {base!r}")
    return value


def check_class_vector(
    xp: Any,
    vector: Array | None,
    num_classes: int,
    name: str,
    dtype: Any,
    *,
    nonnegative: bool = True,
) -> Array | None:
    """A per-class vector (weights, alpha, a bias) of shape (K,) in ``dtype``; weights must be
    finite and >= 0."""
    if vector is None:
        return None
    vector = vector if _is_array(vector) else xp.asarray(vector, dtype=dtype)
    if tuple(vector.shape) != (num_classes,):
        raise ValueError(
            f"{name} must have shape ({num_classes},), one value per class; "
            f"got shape {tuple(vector.shape)}"
        )
    vector = xp.astype(vector, dtype)
    if nonnegative:
        check_nonnegative_array(xp, vector, name, where="class")
    return vector


def check_nonnegative_array(xp: Any, values: Array, name: str, *, where: str = "index") -> None:
    """Every value finite and >= 0 (NaN is bad), else a ValueError naming the first.

    An infinite weight would turn the loss into inf / inf = NaN.
    """
    found = first_bad(xp, ~((values >= 0) & (values < math.inf)), values)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must be finite and >= 0; found {value} at {where} {format_index(index)}"
        )


def check_index_targets(
    xp: Any, targets: Array, num_classes: int, ignore_index: int | None
) -> None:
    """Integer class indices in [0, K) or equal to ``ignore_index``, else a ValueError."""
    if not is_concrete(targets):
        return
    bad = (targets < 0) | (targets >= num_classes)
    if ignore_index is not None:
        bad = bad & (targets != ignore_index)
    found = first_bad(xp, bad, targets)
    if found is not None:
        index, value = found
        allowed = f"[0, {num_classes})"
        if ignore_index is not None:
            allowed += f" or equal ignore_index={ignore_index}"
        raise ValueError(
            f"targets must be in {allowed}; found {value} at index {format_index(index)}"
        )


def check_sample_weight(xp: Any, sample_weight: Array, shape: tuple[int, ...]) -> None:
    """A floating array of per-sample weights of the targets' ``shape``: any finite real
    (negative RL advantages included), NaN and inf rejected where the data can be read."""
    check_floating(xp, sample_weight, "sample_weight")
    if tuple(sample_weight.shape) != tuple(shape):
        raise ValueError(
            f"sample_weight must have the targets' shape {tuple(shape)}; "
            f"got {tuple(sample_weight.shape)}"
        )
    if not is_concrete(sample_weight):
        return
    found = first_bad(xp, ~xp.isfinite(sample_weight), sample_weight)
    if found is not None:
        index, value = found
        raise ValueError(
            f"sample_weight must be finite; found {value} at index {format_index(index)}"
        )


def check_normalizer(normalizer: Any) -> None:
    """None, a real number >= 0, or a 0-d real array holding one (read only where free).

    The mean's explicit denominator (the token count of an accumulated batch): an integer or
    floating 0-d tensor stays on its device and is never read there (no host sync).
    """
    if normalizer is None:
        return
    if isinstance(normalizer, numbers.Real) and not isinstance(normalizer, bool):
        value = float(normalizer)  # Python and NumPy scalars
    elif _is_array(normalizer):
        if normalizer.ndim != 0:
            raise ValueError(
                f"normalizer must be a number or a 0-d array; got shape {tuple(normalizer.shape)}"
            )
        xp = array_api_compat.array_namespace(normalizer)
        if not xp.isdtype(normalizer.dtype, ("real floating", "integral")):
            raise TypeError(f"normalizer must be a real number, got dtype {normalizer.dtype}")
        if not is_concrete(normalizer):
            return
        value = float(normalizer)
    else:
        raise TypeError(
            f"normalizer must be None, a number or a 0-d array, got {type(normalizer).__name__}"
        )
    if not 0.0 <= value < math.inf:
        raise ValueError(f"normalizer must be a finite number >= 0, got {value}")


def check_unit_interval(xp: Any, values: Array, name: str) -> None:
    """Every value in [0, 1] (NaN included as bad), else a ValueError naming the first."""
    if not is_concrete(values) or numel(values) == 0:
        return
    # Two reductions, no temporary, in the common case (a NaN makes min and max NaN, which
    # fails the comparison); the mask that finds the offending value is built only on failure.
    if bool(xp.min(values) >= 0) and bool(xp.max(values) <= 1):
        return
    found = first_bad(xp, ~((values >= 0) & (values <= 1)), values)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must be probabilities in [0, 1]; found {value} at index {format_index(index)}"
        )


def check_same_shape(a: Array, b: Array, names: Sequence[str]) -> None:
    if tuple(a.shape) != tuple(b.shape):
        raise ValueError(
            f"{names[0]} and {names[1]} must have the same shape; "
            f"got {tuple(a.shape)} and {tuple(b.shape)}"
        )


def check_same_device(array: Array, name: str, like: Array) -> None:
    device, expected = getattr(array, "device", None), getattr(like, "device", None)
    if device != expected:
        raise ValueError(f"{name} is on {device} but the input is on {expected}")


def check_floating(xp: Any, x: Array, name: str) -> None:
    if not _is_array(x):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if not xp.isdtype(x.dtype, "real floating"):
        raise TypeError(
            f"{name} must be a floating array (float16, bfloat16, float32 or float64), "
            f"got {x.dtype}"
        )


def check_integer(xp: Any, x: Array, name: str) -> None:
    if not _is_array(x):
        raise TypeError(f"{name} must be an array, got {type(x).__name__}")
    if not xp.isdtype(x.dtype, "integral"):
        raise TypeError(f"{name} must be an integer array of class indices, got {x.dtype}")


def renamed(new: Any, old: Any, new_name: str, old_name: str, default: Any = None) -> Any:
    """The value of a keyword renamed from ``old_name``: a DeprecationWarning when it is used."""
    if old is None:
        return new
    if new is not default:
        raise TypeError(f"pass {new_name}= only (the old name {old_name}= is deprecated)")
    warnings.warn(
        f"{old_name}= is deprecated; use {new_name}= (the same values)",
        DeprecationWarning,
        stacklevel=3,
    )
    return old


def normalize_axes(axis: int | tuple[int, ...] | None, ndim: int) -> tuple[int, ...]:
    """``axis`` (an int, a tuple of ints, or None for every axis) as non-negative axes, in the
    order given (a class index over several axes is a flat index in that order, as optax's).

    A repeated axis is a ValueError (NumPy's rule), an empty tuple too: there is nothing to
    reduce over.
    """
    if axis is None:
        return tuple(range(ndim))
    if not isinstance(axis, tuple):
        return (normalize_axis(axis, ndim),)
    if not axis:
        raise ValueError("axis=() names no axis; pass an int, a non-empty tuple or None")
    axes = tuple(normalize_axis(a, ndim) for a in axis)
    if len(set(axes)) != len(axes):
        raise ValueError(f"axis={axis} repeats an axis")
    return axes


def broadcast_weights(xp: Any, weights: Array, shape: tuple[int, ...], name: str) -> Array:
    """``weights`` broadcast to ``shape`` (NumPy's trailing rule), else a ValueError naming both."""
    fits = weights.ndim <= len(shape) and all(
        int(n) in (1, m) for n, m in zip(reversed(weights.shape), reversed(shape), strict=False)
    )
    if not fits:
        raise ValueError(f"{name} of shape {tuple(weights.shape)} does not broadcast to {shape}")
    return xp.broadcast_to(weights, shape)


#: What check_rows_sum_to_one suggests by default (the losses on probabilities have the option).
RENORMALIZE_HINT = "pass renormalize=True to divide each row by its sum, as Keras does"


def check_rows_sum_to_one(xp: Any, p: Array, name: str, *, remedy: str = RENORMALIZE_HINT) -> None:
    """Every row of ``p`` (classes last) sums to 1 within max(1e-3, sqrt(eps) of its dtype),
    else a ValueError naming the first row and its sum (skipped where the data cannot be read);
    ``remedy`` ends the message (what the caller's function offers).

    The tolerance lets rounded probabilities (a float16 softmax) and a finite-difference step
    through; what it catches is far off: sigmoid outputs of a multi-label model, logits.
    """
    if not is_concrete(p) or numel(p) == 0:
        return
    sums = xp.sum(p, axis=-1)
    tol = max(1e-3, math.sqrt(float(xp.finfo(p.dtype).eps)))
    found = first_bad(xp, xp.abs(sums - 1) > tol, sums)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must sum to 1 along the class axis; the row at index "
            f"{format_index(index) if index else '()'} sums to {value:.6g} ({remedy})"
        )


def check_probability_dtype(xp: Any, targets: Any, index_shape: tuple[int, ...]) -> None:
    """Targets that are not integer class indices: floating probabilities, and not of the
    class indices' shape (a float array of that shape is class indices of the wrong dtype),
    else a TypeError naming the dtype and shapes."""
    if not xp.isdtype(targets.dtype, "real floating"):
        raise TypeError(
            f"targets must be integer class indices or probabilities, got dtype {targets.dtype}"
        )
    if tuple(targets.shape) == tuple(index_shape):
        raise TypeError(
            f"targets of shape {tuple(index_shape)} look like class indices but have dtype "
            f"{targets.dtype}; class indices must be an integer array"
        )


def check_no_ignore_index(ignore_index: int | None) -> None:
    """Probability targets take no ``ignore_index`` (None or the default ``-100`` mean none),
    else a ValueError naming it: PyTorch raises too, there is no index to compare with a row of
    probabilities."""
    if ignore_index not in (None, -100):
        raise ValueError(
            f"ignore_index={ignore_index} applies to class-index targets only; probability "
            "targets have no index to ignore (to leave a sample out, give it a sample_weight "
            "of 0)"
        )


def check_softmax_rule(
    num_classes: int,
    *,
    label_smoothing: float,
    smoothing_convention: str,
    z_loss: float,
    softcap: float | None,
) -> SoftmaxCE:
    """The checked options of a softmax cross-entropy over ``num_classes`` classes (the core
    losses and both fused ops), each refused by name; a smoothing convention the class count
    cannot take (e/(K-1) with one class) raises here, not in the loss."""
    rule = SoftmaxCE(
        num_classes,
        label_smoothing=check_fraction(label_smoothing, "label_smoothing"),
        smoothing_convention=check_smoothing_convention(smoothing_convention),
        z_loss=check_nonnegative(z_loss, "z_loss"),
        softcap=check_softcap(softcap),
    )
    rule.smoothing  # noqa: B018 -- raises now for a convention the class count cannot take
    return rule
