"""The layouts of ``F.linear_cross_entropy`` that the fused ops reduce to their core call.

The fused cross-entropy (:func:`crossent.torch.linear_cross_entropy`,
:func:`crossent.jax.linear_cross_entropy`) sweeps hidden states (..., D) against one head
(V, D). PyTorch's ``F.linear_cross_entropy`` also takes

- an unbatched hidden state (D,): the call on the batch of one row, each per-position result
  squeezed to 0-d (:func:`unbatched`);
- a K-dimensional weight (C, d1, ..., dK, D): logits (N, C, d1, ..., dK), C classes at each of
  the d1 x ... x dK positions, i.e. one head of C rows per position (:func:`k_dimensional`):
  one fused call per head on the same hidden states, with the denominator of their common
  mean, so nothing of size N x C x prod(d) exists.

Both are written once here for every framework: the caller passes its own entry point
(``call``), the namespace, and how to split an array along an axis into views (``unbind``:
torch's, whose backward stacks the heads' gradients into one tensor, not the generic one,
whose per-slice backward would allocate a whole weight per head).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence
from typing import Any

from ._linear_common import (
    HeadLayout,
    LinearCEOutput,
    check_probabilities,
    check_shift,
    refuse_with_k_dimensions,
    validate_class_weight,
)
from ._namespace import Array
from ._validation import check_index_targets
from .losses._problem import index_target_data

__all__ = ["k_dimensional", "unbatched"]


def _squeeze_row(x: Any) -> Any:
    """A per-position result of the one-row call as the unbatched call's (0-d)."""
    return x[0] if getattr(x, "ndim", 0) == 1 else x


def unbatched(
    call: Callable[..., Any], hidden: Array, weight: Array, targets: Array, options: dict[str, Any]
) -> Any:
    """The call on one hidden state (D,): that of the batch of one row, per-position results
    (and a ``reduction="none"`` loss) squeezed to 0-d, as PyTorch's unbatched input."""
    if check_shift(options["shift"]):
        raise ValueError(
            f"shift={options['shift']!r} needs a sequence axis; hidden of shape "
            f"{tuple(hidden.shape)} has none"
        )
    sw = options["sample_weight"]
    options = {**options, "sample_weight": None if sw is None else sw[None]}
    out = call(hidden[None], weight, targets[None], **options)
    if isinstance(out, tuple):
        return tuple(_squeeze_row(x) for x in out)
    if isinstance(out, LinearCEOutput):
        fields = {f.name: _squeeze_row(getattr(out, f.name)) for f in dataclasses.fields(out)}
        return LinearCEOutput(**fields)
    return _squeeze_row(out)


def k_dimensional(
    xp: Any,
    call: Callable[..., Any],
    layout: HeadLayout,
    hidden: Array,
    weight: Array,
    targets: Array,
    options: dict[str, Any],
    *,
    unbind: Callable[[Array, int], Sequence[Array]],
    refused: Sequence[str],
    dtype: Any,
    devices: bool = True,
) -> Any:
    """A weight (C, d1, ..., dK, D): the fused ``call`` once per position's head, losses
    summed (stacked in the loss's shape for ``reduction="none"``, as is ``return_lse``).

    The mean divides by the count of every position: :math:`\\sum w_{y}` over the valid
    class-index targets of all heads, the number of positions with probability targets
    (F.cross_entropy's), or the caller's ``normalizer``. ``refused`` names the options the
    layout does not take; ``dtype`` is the compute dtype of the count; ``devices``: check the
    class weights' device (not for traced JAX arrays).
    """
    refuse_with_k_dimensions(tuple(weight.shape), **{name: options[name] for name in refused})
    classes, m, batch = layout.classes, math.prod(layout.out), layout.batch
    heads = unbind(xp.reshape(weight, (classes, m, weight.shape[-1])), 1)
    bias = options["bias"]
    biases = [None] * m if bias is None else unbind(xp.reshape(bias, (classes, m)), 1)
    if layout.probabilities:
        check_probabilities(xp, targets, layout)  # here, to name the (row, position)
        per_head = unbind(xp.reshape(targets, (*batch, classes, m)), -1)
    else:
        per_head = unbind(xp.reshape(targets, (*batch, m)), -1)
    sw = options["sample_weight"]
    weights = [None] * m if sw is None else unbind(xp.reshape(sw, (*batch, m)), -1)
    normalizer, reduction = options["normalizer"], options["reduction"]
    if reduction == "mean" and normalizer is None:
        if layout.probabilities:
            normalizer = float(math.prod(layout.loss_shape))
        else:
            cw, ignore_index = options["class_weight"], int(options["ignore_index"])
            validate_class_weight(xp, hidden, cw, classes, devices=devices)
            check_index_targets(xp, targets, classes, ignore_index)
            cw = None if cw is None else xp.astype(cw, dtype)
            normalizer = xp.sum(index_target_data(xp, targets, cw, ignore_index, dtype).w_t)
    results = [
        call(
            hidden, heads[j], per_head[j],
            **{**options, "bias": biases[j], "sample_weight": weights[j], "normalizer": normalizer},
        )
        for j in range(m)
    ]  # fmt: skip
    lse = None
    if options["return_lse"]:
        results, lses = (list(x) for x in zip(*results, strict=True))
        lse = xp.reshape(xp.stack(lses, axis=-1), layout.loss_shape)
    if reduction == "none":
        return_loss = xp.reshape(xp.stack(results, axis=-1), layout.loss_shape)
    else:
        return_loss = xp.sum(xp.stack(results), axis=0)
    return return_loss if lse is None else (return_loss, lse)
