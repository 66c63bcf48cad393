"""Array namespace lookup, dtype policy and input validation shared by every public function.

This is the only module that knows about concrete frameworks, and it knows them only by name:
nothing here imports torch or jax. Every public function calls :func:`namespace` once at its
entry and hands the returned ``xp`` to the private helpers.
"""

from __future__ import annotations

import functools
import math
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import array_api_compat
import numpy as np

Array = Any  # an array of any Array API library; the library does not have a common static type

REDUCTIONS = ("mean", "sum", "none")

F = TypeVar("F", bound=Callable[..., Any])


def quiet_numpy(fn: F) -> F:
    """Silence NumPy's warnings for log(0), inf - inf and overflow inside ``fn``.

    crossent produces those on purpose (the limits of infinite inputs) and resolves them with
    ``where``, so the warnings are noise (NumPy and array_api_strict raise them). The context is
    not entered for torch tensors: torch.compile cannot trace ``np.errstate``.
    """

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        if any(type(a).__module__.startswith("torch") for a in args):
            return fn(*args, **kwargs)
        with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
            return fn(*args, **kwargs)

    return wrapper  # type: ignore[return-value]


def namespace(*arrays: Any) -> tuple[Any, list[Any]]:
    """Return the common array namespace of ``arrays`` and the arrays converted to it.

    Python lists, tuples and scalars are read as NumPy arrays, so ``ce.entropy([0.5, 0.5])``
    works. ``None`` entries stay ``None``.
    """
    arrays_only = [a for a in arrays if a is not None and _is_array(a)]
    xp = array_api_compat.array_namespace(*arrays_only) if arrays_only else _numpy_namespace()
    converted = [a if a is None or _is_array(a) else xp.asarray(a) for a in arrays]
    return xp, converted


def _numpy_namespace() -> Any:
    import array_api_compat.numpy as np_xp

    return np_xp


def _is_array(x: Any) -> bool:
    return array_api_compat.is_array_api_obj(x) and not isinstance(x, (int, float, bool))


def numel(x: Array) -> int:
    """Number of elements (``x.size`` is a method on torch tensors)."""
    return int(array_api_compat.size(x) or 0)


def default_int(xp: Any) -> Any:
    """The namespace's default integer dtype (int64 in NumPy and torch, int32 in JAX without x64).

    One integer dtype per backend: torch gathers only with int64, and JAX warns on int64.
    """
    return xp.asarray(0).dtype


def compute_dtype(xp: Any, dtype: Any) -> Any:
    """The floating dtype the math is done in: float16/bfloat16 are raised to float32.

    Half-precision exponentials and sums overflow or lose every digit (pytorch #85791), so the
    reductions always run in at least float32 and the result is cast back at the end.
    """
    if xp.isdtype(dtype, "integral") or dtype == xp.bool:
        return xp.asarray(0.0).dtype  # the library's default floating dtype
    if not xp.isdtype(dtype, "real floating"):
        raise TypeError(f"expected a real floating or integer array, got dtype {dtype}")
    if xp.finfo(dtype).bits < 32:
        return xp.float32
    return dtype


def result_dtype(xp: Any, dtype: Any) -> Any:
    """The dtype a result is returned in: the input's floating dtype, or the default float."""
    if xp.isdtype(dtype, "real floating"):
        return dtype
    return compute_dtype(xp, dtype)


def upcast(xp: Any, x: Array) -> Array:
    """``x`` in its :func:`compute_dtype` (a no-op for float32/float64 arrays)."""
    dtype = compute_dtype(xp, x.dtype)
    return x if x.dtype == dtype else xp.astype(x, dtype)


def is_concrete(x: Any) -> bool:
    """Whether ``x`` holds data that can be read now (not a jax tracer, not torch.compile).

    Value checks (targets in range, probabilities in [0, 1]) need concrete data; under tracing
    they are skipped rather than crashing the trace.
    """
    module = type(x).__module__
    if module.startswith("jax"):
        return not any(cls.__name__ == "Tracer" for cls in type(x).__mro__)
    if module.startswith("torch"):
        torch = sys.modules["torch"]
        if torch.compiler.is_compiling():
            return False
        return not (hasattr(torch, "_subclasses") and _is_fake_tensor(torch, x))
    return True


def _is_fake_tensor(torch: Any, x: Any) -> bool:
    fake = getattr(torch._subclasses, "FakeTensor", None)
    return fake is not None and isinstance(x, fake)


def to_numpy(x: Array) -> np.ndarray:
    """A NumPy copy of a concrete array of any library (for error messages and diagnostics)."""
    if type(x).__module__.startswith("torch"):
        return x.detach().cpu().numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(x)


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
    xp: Any, vector: Array | None, num_classes: int, name: str, dtype: Any
) -> Array | None:
    """A per-class vector (weights, alpha) of shape (K,), non-negative, in ``dtype``."""
    if vector is None:
        return None
    vector = xp.asarray(vector) if _is_array(vector) else xp.asarray(vector, dtype=dtype)
    if tuple(vector.shape) != (num_classes,):
        raise ValueError(
            f"{name} must have shape ({num_classes},), one value per class; "
            f"got shape {tuple(vector.shape)}"
        )
    vector = xp.astype(vector, dtype)
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


def check_unit_interval(xp: Any, values: Array, name: str) -> None:
    """Every value in [0, 1] (NaN included as bad), else a ValueError naming the first."""
    if not is_concrete(values):
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


def reduce(xp: Any, losses: Array, reduction: str, *, denominator: Array | None = None) -> Array:
    """Apply ``reduction`` to per-sample ``losses``.

    ``denominator`` (the sum of weights, or the number of non-ignored samples) replaces the
    element count of "mean". An empty or fully ignored batch gives 0 with a zero gradient, not
    the 0/0 = NaN of PyTorch (pytorch #70348): the safe denominator keeps the backward finite.
    """
    check_reduction(reduction)
    if reduction == "none":
        return losses
    total = xp.sum(losses)
    if reduction == "sum":
        return total
    if denominator is None:
        denominator = xp.asarray(float(numel(losses)), dtype=total.dtype)
    denominator = xp.astype(denominator, total.dtype)
    safe = xp.where(denominator > 0, denominator, xp.ones_like(denominator))
    return xp.where(denominator > 0, total / safe, xp.zeros_like(total))
