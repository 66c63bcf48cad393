"""Masks and per-sample weights for every core loss: ``where=``, ``sample_weight=``,
``normalizer=`` (and ``float32_output=``), added once to each loss and its gradient by
:func:`per_sample` and :func:`per_sample_gradient`.

A call without them is the loss itself (nothing more is done, so the fast paths stay as they
are). With them, the loss's own per-sample values (``reduction="none"``) are masked, weighted
and reduced by the rules of :mod:`crossent._semantics` (:func:`weighted_count`,
:func:`reduce`, :func:`loss_row_scale`), the same rules as the fused op's per-token weights;
the gradient is the per-sample gradient scaled by :math:`d\\,\\text{total} / d\\ell_i`.
"""

from __future__ import annotations

import functools
import inspect
import numbers
from collections.abc import Callable
from typing import Any

from .._namespace import Array, as_dtype, compute_dtype, default_int, namespace
from .._semantics import loss_row_scale, reduce, weighted_count
from .._validation import (
    broadcast_weights,
    check_normalizer,
    check_reduction,
    check_sample_weight,
)
from ._problem import class_axes, class_last, index_target_data, restore_axis

NEW_OPTIONS = {"where": None, "sample_weight": None, "normalizer": None, "float32_output": False}

DOC = """    where : array of bool, optional
        Per-sample mask (optax's ``where``), broadcastable to the per-sample losses (the
        input's shape without the class axis; the input's shape for the element-wise
        losses). A False sample gives 0, whatever it holds, with a zero gradient, and leaves
        the mean's denominator.
    sample_weight : array, optional
        Per-sample weight :math:`s_i` (Keras, scikit-learn), broadcastable like ``where``;
        any finite real. Combines with class weights, ``ignore_index`` and smoothing: the
        per-sample loss (already class-weighted) is multiplied by :math:`s_i`.
    normalizer : None, "count" or number, optional
        Denominator of ``reduction="mean"``. None: :math:`\\sum_i s_i c_i`, the weighted mean
        (scikit-learn's ``log_loss(sample_weight=)``), with :math:`c_i` what a sample counts
        for without sample weights (its class weight :math:`w_{y_i}` where the loss takes
        class weights, else 1; 0 if ignored or masked); the mean is 0 when that sum is
        <= 0, so signed weights (RL advantages) want "count". "count": :math:`\\sum_i c_i`, Keras'
        ``sum_over_batch_size`` (the default of the fused op's ``normalizer``). A number
        >= 0 or a 0-d array: that denominator (gradient accumulation over micro-batches).
    float32_output : bool, default False
        Return the loss of a float16/bfloat16 input in float32 (it is computed in float32
        anyway), as Cut Cross-Entropy does, instead of rounding it to the input's dtype; a
        gradient keeps the input's dtype. Other dtypes are unchanged.
"""


def _docstring(doc: str | None) -> str | None:
    """Insert the three options' entries before the Returns section of a numpydoc docstring."""
    marker = "\n    Returns\n    -------"
    if doc is None or marker not in doc:
        return doc
    head, tail = doc.split(marker, 1)
    return f"{head.rstrip()}\n{DOC.rstrip()}\n{marker}{tail}"


def _signature(fn: Callable[..., Any]) -> inspect.Signature:
    signature = inspect.signature(fn)
    extra = [
        inspect.Parameter(name, inspect.Parameter.KEYWORD_ONLY, default=default, annotation=Any)
        for name, default in NEW_OPTIONS.items()
    ]
    return signature.replace(parameters=[*signature.parameters.values(), *extra])


class _Weighted:
    """The validated mask, weights and denominator of one call, and the loss's layout."""

    def __init__(
        self,
        loss: Callable[..., Any],
        x: Array,
        t: Array,
        options: dict[str, Any],
        where: Any,
        sample_weight: Any,
        normalizer: Any,
        terms: bool,
    ) -> None:
        self.reduction = options.get("reduction", "mean")
        check_reduction(self.reduction)
        if isinstance(normalizer, str):
            if normalizer != "count":
                raise ValueError(
                    f'normalizer must be None, "count" or a number; got {normalizer!r}'
                )
        else:
            check_normalizer(normalizer)
        if normalizer is not None and self.reduction != "mean":
            raise ValueError(
                f"normalizer is the denominator of reduction='mean'; got "
                f"reduction={self.reduction!r}"
            )
        raw = loss(x, t, **{**options, "reduction": "none"})
        xp, (x, t, where, sample_weight) = namespace(
            x, t, where, sample_weight, names=("input", "targets", "where?", "sample_weight?")
        )
        self.xp, self.x, self.dtype = xp, x, raw.dtype
        self.terms = terms
        # per-sample values of the input's shape are element-wise; else a class axis was reduced
        self.classes = terms or tuple(raw.shape) != tuple(x.shape)
        self.axis: int | tuple[int, ...] = -1
        if self.classes:
            self.axis = class_axes(options.get("axis", -1), x.ndim)
        rows = self.raw = as_dtype(xp, raw, compute_dtype(xp, raw.dtype))
        if terms:  # element-wise terms of a per-row divergence: the row is their sum
            rows = xp.sum(class_last(xp, rows, self.axis), axis=-1)
        shape = tuple(int(n) for n in rows.shape)
        counts = self._counts(t, options, shape, rows.dtype)
        self.mask = None
        if where is not None:
            if where.dtype != xp.bool:
                raise TypeError(f"where must be a boolean array, got dtype {where.dtype}")
            self.mask = broadcast_weights(xp, where, shape, "where")
            counts = xp.where(self.mask, counts, xp.zeros_like(counts))
            rows = xp.where(self.mask, rows, xp.zeros_like(rows))
        self.s = None
        if sample_weight is not None:
            s = broadcast_weights(xp, sample_weight, shape, "sample_weight")
            check_sample_weight(xp, s, shape)
            self.s = xp.astype(s, rows.dtype)
            if self.mask is not None:
                self.s = xp.where(self.mask, self.s, xp.zeros_like(self.s))
        self.rows = rows
        self.count, self.explicit = weighted_count(xp, counts, self.s, normalizer)
        if isinstance(self.explicit, numbers.Real):
            self.explicit = xp.asarray(float(self.explicit), dtype=rows.dtype)
        elif self.explicit is not None:
            self.explicit = xp.astype(namespace(rows, self.explicit)[1][1], rows.dtype)

    def _counts(self, t: Array, options: dict[str, Any], shape: tuple, dtype: Any) -> Array:
        """c_i: the class weight of an index target (1 without), 0 where ignored; else 1."""
        xp = self.xp
        if not self.classes or self.terms or not xp.isdtype(t.dtype, "integral"):
            return xp.ones(shape, dtype=dtype)
        weight = options.get("class_weight")
        if weight is None:
            weight = options.get("weight")
        if weight is not None:
            weight = xp.astype(namespace(self.x, weight)[1][1], dtype)
        t = xp.astype(t, default_int(xp))
        return index_target_data(xp, t, weight, options.get("ignore_index"), dtype).w_t

    def loss(self) -> Array:
        xp = self.xp
        if self.terms and self.reduction == "none":  # each term times its row's weight
            scale = xp.ones_like(self.rows) if self.s is None else self.s
            terms = self._per_class(self.raw, scale, self.mask)
            return as_dtype(xp, terms, self.dtype)
        out = reduce(
            xp, self.rows, self.reduction, self.count, sample_weight=self.s,
            normalizer=self.explicit,
        )  # fmt: skip
        return as_dtype(xp, out, self.dtype)

    def gradient(self, g: Array) -> Array:
        """The per-sample gradient ``g`` (that of reduction="none") times d total / d l_i."""
        xp = self.xp
        scale = loss_row_scale(
            xp, self.reduction, self.count, sample_weight=self.s, normalizer=self.explicit
        )
        scale = xp.broadcast_to(xp.asarray(scale, dtype=self.rows.dtype), self.rows.shape)
        if self.mask is not None:
            scale = xp.where(self.mask, scale, xp.zeros_like(scale))
        return self._per_class(g, scale, self.mask)

    def _per_class(self, g: Array, scale: Array, mask: Array | None) -> Array:
        """``g`` (the input's layout) times a per-sample ``scale`` (the rows' shape)."""
        xp = self.xp
        dtype = g.dtype
        if not self.classes:
            out = xp.astype(g, scale.dtype) * scale
            if mask is not None:
                out = xp.where(mask, out, xp.zeros_like(out))
            return as_dtype(xp, out, dtype)
        shape = (
            tuple(int(self.x.shape[a]) for a in self.axis) if isinstance(self.axis, tuple) else ()
        )
        last = xp.astype(class_last(xp, g, self.axis), scale.dtype) * scale[..., None]
        if mask is not None:
            last = xp.where(mask[..., None], last, xp.zeros_like(last))
        return restore_axis(xp, last, self.axis, dtype, shape)


def _defaults(fn: Callable[..., Any]) -> dict[str, Any]:
    """The keyword-only options of ``fn`` and their defaults."""
    return {
        name: p.default
        for name, p in inspect.signature(fn).parameters.items()
        if p.kind is inspect.Parameter.KEYWORD_ONLY
    }


def per_sample(*, terms: bool = False) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Give a loss ``where=``, ``sample_weight=`` and ``normalizer=`` (see :data:`DOC`).

    ``terms``: the loss's ``reduction="none"`` gives element-wise terms whose sum along the
    class axis is a sample's loss (the KL divergence).
    """

    def decorate(loss: Callable[..., Any]) -> Callable[..., Any]:
        defaults = _defaults(loss)

        @functools.wraps(loss)
        def wrapper(
            x: Array,
            t: Array,
            /,
            *,
            where: Any = None,
            sample_weight: Any = None,
            normalizer: Any = None,
            float32_output: bool = False,
            **options: Any,
        ) -> Any:
            if float32_output:
                x = _at_least_float32(x)
            if where is None and sample_weight is None and normalizer is None:
                return loss(x, t, **options)  # the plain call: nothing added
            options = {**defaults, **options}
            return _Weighted(loss, x, t, options, where, sample_weight, normalizer, terms).loss()

        wrapper.__signature__ = _signature(loss)  # type: ignore[attr-defined]
        wrapper.__doc__ = _docstring(loss.__doc__)
        wrapper.terms = terms  # type: ignore[attr-defined]
        return wrapper

    return decorate


def per_sample_gradient(
    loss: Callable[..., Any],
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """The gradient of a :func:`per_sample` loss: the plain gradient without the options,
    else the per-sample gradient (``reduction="none"``) times :math:`d\\,\text{total}/d\\ell_i`.
    """
    terms = getattr(loss, "terms", False)

    def decorate(grad: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(grad)
        def wrapper(x: Array, t: Array, /, **options: Any) -> Any:
            where = options.pop("where", None)
            sample_weight = options.pop("sample_weight", None)
            normalizer = options.pop("normalizer", None)
            if options.pop("float32_output", False):
                return _float32_loss(wrapper, x, t, where, sample_weight, normalizer, options)
            if where is None and sample_weight is None and normalizer is None:
                return grad(x, t, **options)
            with_loss = options.pop("with_loss", False)
            weighted = _Weighted(loss, x, t, options, where, sample_weight, normalizer, terms)
            g = weighted.gradient(grad(x, t, **{**options, "reduction": "none"}))
            return (weighted.loss(), g) if with_loss else g

        return wrapper

    return decorate


def _at_least_float32(x: Array) -> Array:
    """A float16/bfloat16 array cast to float32; anything else as it is."""
    xp, (x,) = namespace(x)
    if xp.isdtype(x.dtype, "real floating") and xp.finfo(x.dtype).bits < 32:
        return xp.astype(x, xp.float32)
    return x


def _float32_loss(
    grad: Callable[..., Any],
    x: Array,
    t: Array,
    where: Any,
    sample_weight: Any,
    normalizer: Any,
    options: dict[str, Any],
) -> Any:
    """The gradient at the float32 input, in the input's dtype; a loss asked for stays float32."""
    xp, (x,) = namespace(x)
    out = grad(
        _at_least_float32(x), t, where=where, sample_weight=sample_weight,
        normalizer=normalizer, **options,
    )  # fmt: skip
    if isinstance(out, tuple):
        return out[0], as_dtype(xp, out[1], x.dtype)
    return as_dtype(xp, out, x.dtype)
