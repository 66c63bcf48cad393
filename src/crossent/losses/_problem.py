"""Validated loss inputs: the class axis moved last, targets checked, per-row target data.

Every loss validates its inputs here, once, before any path (NumPy fast path, torch autograd
Function, generic Array API code) runs; the messages are the same on every library.
"""

from __future__ import annotations

import functools
import inspect
import math
from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property
from typing import Any

from .._namespace import Array, as_dtype, default_int, namespace, result_dtype, upcast
from .._validation import (
    check_class_vector,
    check_index_targets,
    check_no_ignore_index,
    check_nonnegative_array,
    check_probability_dtype,
    check_same_shape,
    check_unit_interval,
    normalize_axes,
    normalize_axis,
)


@dataclass(frozen=True)
class IndexTargets:
    """Class-index targets: ``index`` with ignored entries set to 0, ``valid`` marks the others,
    ``w_t`` is the class weight of each target (1 without weights, 0 where ignored)."""

    index: Array
    valid: Array
    w_t: Array


@dataclass(frozen=True)
class ClassProblem:
    """A validated K-class problem with the class axis moved last.

    ``raw`` keeps the input's dtype (the torch autograd Functions cast inside, so a half
    precision input is not copied before the call); ``values`` is it in the compute dtype.
    ``targets`` are :class:`IndexTargets`, or probabilities of the input's shape (class last).
    """

    xp: Any
    raw: Array
    targets: IndexTargets | Array
    class_weight: Array | None
    num_classes: int
    axis: int | tuple[int, ...]
    dtype: Any
    class_shape: tuple[int, ...] = ()

    @cached_property
    def values(self) -> Array:
        return upcast(self.xp, self.raw)

    @cached_property
    def soft_targets(self) -> Array:
        """Probability targets in the compute dtype (only for probability targets)."""
        assert not isinstance(self.targets, IndexTargets)
        return self.xp.astype(self.targets, self.values.dtype)

    def onehot(self, index: Array) -> Array:
        xp = self.xp
        return xp.astype(index[..., None] == xp.arange(self.num_classes), self.values.dtype)

    def restore(self, per_class: Array) -> Array:
        """Move the class axis of a per-class result back and cast it to the input dtype."""
        return restore_axis(self.xp, per_class, self.axis, self.dtype, self.class_shape)


def class_axes(axis: int | tuple[int, ...], ndim: int) -> int | tuple[int, ...]:
    """The class axis normalized, or several class axes (optax's ``axis=(...)``) as a tuple.

    Several axes act as one class axis of their product's length, a class index being the
    flat index over them in the order given (row-major, as ``ravel_multi_index``).
    """
    if isinstance(axis, tuple):
        axes = normalize_axes(axis, ndim)
        return axes[0] if len(axes) == 1 else axes
    return normalize_axis(axis, ndim)


def class_last(xp: Any, x: Array, axis: int | tuple[int, ...]) -> Array:
    """``x`` with its (normalized) class ``axis`` moved last, several axes merged into one."""
    if isinstance(axis, tuple):
        rest = tuple(a for a in range(x.ndim) if a not in axis)
        if rest + axis != tuple(range(x.ndim)):
            x = xp.permute_dims(x, rest + axis)
        batch = tuple(int(n) for n in x.shape[: len(rest)])
        return xp.reshape(x, (*batch, math.prod(int(n) for n in x.shape[len(rest) :])))
    return x if axis == x.ndim - 1 else xp.moveaxis(x, axis, -1)


def restore_axis(
    xp: Any,
    x: Array,
    axis: int | tuple[int, ...],
    dtype: Any,
    class_shape: tuple[int, ...] = (),
) -> Array:
    """Inverse of :func:`class_last`, cast to ``dtype``: for per-class results (gradients).

    ``class_shape`` is the lengths of several class axes, in the order of ``axis``.
    """
    if isinstance(axis, tuple):
        x = xp.reshape(x, (*x.shape[:-1], *class_shape))
        ndim = x.ndim
        order = tuple(a for a in range(ndim) if a not in axis) + axis
        if order != tuple(range(ndim)):
            x = xp.permute_dims(x, tuple(order.index(a) for a in range(ndim)))
    elif axis != x.ndim - 1:
        x = xp.moveaxis(x, -1, axis)
    return as_dtype(xp, x, dtype)


def gather(xp: Any, x: Array, index: Array) -> Array:
    """x[..., index[...]] along the last axis."""
    return xp.take_along_axis(x, index[..., None], axis=-1)[..., 0]


def take_per_class(xp: Any, vector: Array, index: Array) -> Array:
    """``vector[index]`` for an index array of any shape."""
    flat = xp.take(vector, xp.reshape(index, (-1,)), axis=0)
    return xp.reshape(flat, index.shape)


def gradient_of(loss: Callable[..., Any]) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a gradient function exactly its loss's arguments (one signature, written once).

    The gradient is written ``grad(x, targets, /, *, <own options>, **options)``; it is called
    with the loss's signature (plus its own keyword-only options), and receives every option of
    the loss in ``options``, defaults filled in. An unknown keyword is a TypeError, as for the
    loss. ``help()`` and ``inspect.signature`` show the full signature.
    """
    loss_signature = inspect.signature(loss)

    def decorate(grad: Callable[..., Any]) -> Callable[..., Any]:
        own = [
            p
            for p in inspect.signature(grad).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY
        ]
        signature = loss_signature.replace(
            parameters=[*loss_signature.parameters.values(), *own],
            return_annotation=inspect.signature(grad).return_annotation,
        )

        @functools.wraps(grad)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            bound = signature.bind(*args, **kwargs)
            bound.apply_defaults()
            return grad(*bound.args, **bound.kwargs)

        wrapper.__signature__ = signature  # type: ignore[attr-defined]
        return wrapper

    return decorate


def index_target_data(
    xp: Any, targets: Array, class_weight: Array | None, ignore_index: int | None, dtype: Any
) -> IndexTargets:
    """The per-row target data of (checked) class indices, ``w_t`` in ``dtype``."""
    valid = targets != ignore_index if ignore_index is not None else xp.ones_like(targets) > 0
    t = xp.where(valid, targets, xp.zeros_like(targets))
    if class_weight is None:
        w_t = xp.astype(valid, dtype)
    else:
        w_t = take_per_class(xp, class_weight, t)
        w_t = xp.where(valid, w_t, xp.zeros_like(w_t))
    return IndexTargets(t, valid, w_t)


def prepare_classes(
    values: Array,
    targets: Array,
    *,
    axis: int | tuple[int, ...],
    class_weight: Array | None = None,
    ignore_index: int | None = -100,
    allow_probability_targets: bool = True,
) -> ClassProblem:
    """Validate logits/probabilities and targets of a K-class problem; move the class axis last."""
    if targets is None:
        raise TypeError("targets must be an array of class indices or probabilities, got None")
    xp, (values, targets, class_weight) = namespace(
        values, targets, class_weight, names=("predictions", "targets", "class_weight?")
    )
    if values.ndim == 0:
        raise ValueError("expected an array with a class axis, got a 0-d array")
    axis = class_axes(axis, values.ndim)
    class_shape = tuple(int(values.shape[a]) for a in axis) if isinstance(axis, tuple) else ()
    dtype = result_dtype(xp, values.dtype)
    raw = class_last(xp, values, axis)
    compute = upcast(xp, xp.asarray(0, dtype=values.dtype)).dtype
    num_classes = int(raw.shape[-1])
    if num_classes == 0:
        raise ValueError(f"the class axis (axis={axis}) has length 0; need at least one class")
    batch_shape = tuple(raw.shape[:-1])
    w = check_class_vector(xp, class_weight, num_classes, "weight", compute)

    if xp.isdtype(targets.dtype, "integral"):
        if tuple(targets.shape) != batch_shape:
            raise ValueError(
                f"class-index targets must have shape {batch_shape} (the shape of the input "
                f"{tuple(values.shape)} without axis {axis}); got {tuple(targets.shape)}"
            )
        # a uint8 array cannot even be compared with ignore_index=-100 under array_api_strict
        targets = xp.astype(targets, default_int(xp))
        check_index_targets(xp, targets, num_classes, ignore_index)
        tg = index_target_data(xp, targets, w, ignore_index, compute)
        return ClassProblem(xp, raw, tg, w, num_classes, axis, dtype, class_shape)

    check_probability_dtype(xp, targets, batch_shape)
    if not allow_probability_targets:
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    check_no_ignore_index(ignore_index)
    check_same_shape(values, targets, ("input", "probability targets"))
    check_unit_interval(xp, targets, "probability targets")
    y = class_last(xp, targets, axis)
    return ClassProblem(xp, raw, y, w, num_classes, axis, dtype, class_shape)


def index_targets(problem: ClassProblem) -> IndexTargets:
    """The problem's class-index targets (for the losses that take no probabilities)."""
    assert isinstance(problem.targets, IndexTargets)
    return problem.targets


@dataclass(frozen=True)
class BinaryProblem:
    """A validated element-wise binary problem: logits (or probabilities) and targets in the
    compute dtype, optional weights; ``raw`` is the input as given (for the torch Function)."""

    xp: Any
    raw: Array
    raw_targets: Array
    z: Array
    y: Array
    weight: Array | None
    pos_weight: Array | None
    dtype: Any


def prepare_binary(
    logits: Array,
    targets: Array,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    names: tuple[str, str] = ("logits", "targets"),
) -> BinaryProblem:
    """Validate an element-wise binary problem (targets in [0, 1], weights finite and >= 0)."""
    if targets is None:
        raise TypeError(f"{names[1]} must be an array of the {names[0]}' shape, got None")
    xp, (logits, targets, weight, pos_weight) = namespace(
        logits, targets, weight, pos_weight, names=(*names, "weight?", "pos_weight?")
    )
    check_same_shape(logits, targets, names)
    dtype = result_dtype(xp, logits.dtype)
    z = upcast(xp, logits)
    y = xp.astype(targets, z.dtype)
    check_unit_interval(xp, y, names[1])
    extra = []
    for name, array in (("weight", weight), ("pos_weight", pos_weight)):
        if array is not None:
            array = xp.astype(array, z.dtype)
            check_nonnegative_array(xp, array, name)
        extra.append(array)
    return BinaryProblem(xp, logits, targets, z, y, extra[0], extra[1], dtype)


def safe_log(xp: Any, x: Array) -> Array:
    """log(x) with log(0) = -inf and no division by zero in a gradient taken through it."""
    positive = x > 0
    return xp.where(positive, xp.log(xp.where(positive, x, xp.ones_like(x))), -math.inf)
