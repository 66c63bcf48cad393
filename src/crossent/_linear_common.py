"""What the fused linear cross-entropy of every framework shares, written once and importing
no framework: the checks of its inputs, the default chunk size, and the optional per-token
outputs with their result object.

Each output comes from the statistics the chunk sweep computes anyway, or from one more
reduction of a chunk it already holds (the entropy, the top logit and its class): asking for
them never materializes the N x V logits. See :func:`crossent.torch.linear_cross_entropy` and
:func:`crossent.jax.linear_cross_entropy`.
"""

from __future__ import annotations

import numbers
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ._namespace import Array, is_concrete
from ._semantics import mean_scale
from ._validation import (
    check_class_vector,
    check_floating,
    check_integer,
    check_probability_dtype,
    check_rows_sum_to_one,
    check_same_device,
    check_unit_interval,
)

__all__ = [
    "CHUNK_BYTES", "MIN_CHUNK_ROWS", "OUTPUTS", "HeadLayout", "LinearCEOutput", "balanced_chunk",
    "head_layout",
]  # fmt: skip


#: Bytes of the fused cross-entropy's per-chunk logits buffer when ``chunk_size`` is None.
#: On CPU 48 MiB: at 4096 x 1024 x 32000 (float32, 2 cores) chunks of 373 rows run forward +
#: backward as fast as chunks of 1024 (2.11 s against 2.09 s, benchmarks/linear_ce.py) and hold
#: 48 MB of logits instead of 128.
CHUNK_BYTES = {"cpu": 48 * 2**20, "default": 256 * 2**20}

#: Fewest rows per default chunk, whatever the vocabulary. The weight gradient's product has
#: the chunk's rows as its inner dimension; on CPU it slows below about 256 rows (the same
#: shape: 2.25 s with 256-row chunks, 2.62 s with 128), so a large vocabulary gets 256-row
#: chunks above the byte budget rather than thin, slow ones.
MIN_CHUNK_ROWS = {"cpu": 256, "default": 16}


def balanced_chunk(
    num_rows: int,
    vocab: int,
    platform: str,
    *,
    budget: int | None = None,
    min_rows: int | None = None,
) -> int:
    """Rows per chunk: a float32 (rows, vocab) buffer of at most ``budget`` bytes (default
    ``CHUNK_BYTES``) but at least ``min_rows`` rows (default ``MIN_CHUNK_ROWS``), chunks
    balanced.

    The rows are split into equal chunks (the last one no smaller than the others by more than
    the number of chunks), so no chunk is a thin sliver that runs its products slowly.
    ``platform`` is "cpu" or anything else (an accelerator).
    """
    if budget is None:
        budget = CHUNK_BYTES.get(platform, CHUNK_BYTES["default"])
    if min_rows is None:
        min_rows = MIN_CHUNK_ROWS.get(platform, MIN_CHUNK_ROWS["default"])
    rows = max(1, min(max(budget // (4 * max(vocab, 1)), min_rows), num_rows))
    chunks = -(-num_rows // rows) if num_rows else 1
    return max(1, -(-num_rows // chunks))


@dataclass(frozen=True)
class HeadLayout:
    """The shapes of one call, in PyTorch's ``F.linear_cross_entropy`` conventions.

    hidden is (*batch, D) (``batch`` may be empty: one unbatched row), weight (C, *out, D):
    ``classes`` = C classes for each of the prod(out) positions of a K-dimensional loss
    (``out`` = (d1, ..., dK), empty for the usual (C, D) head); the logits are
    (*batch, C, *out). Targets are class indices (*batch, *out) or, with ``probabilities``,
    a distribution over the classes (*batch, C, *out).
    """

    batch: tuple[int, ...]
    classes: int
    out: tuple[int, ...]
    probabilities: bool

    @property
    def loss_shape(self) -> tuple[int, ...]:
        """The shape of ``reduction="none"``: one loss per scored position."""
        return (*self.batch, *self.out)


def head_layout(xp: Any, hidden: Array, weight: Array, targets: Array, bias: Array | None = None
                ) -> HeadLayout:  # fmt: skip
    """Check the shapes of hidden, weight, targets (and bias) against each other; the layout.

    Integer targets are class indices, floating ones probabilities (of the logits' shape, as
    PyTorch tells them apart); anything else is a TypeError, a mismatched shape a ValueError
    naming both shapes.
    """
    if hidden.ndim < 1:
        raise ValueError("hidden must have shape (D,), (N, D) or (B, T, D); got a 0-d array")
    if weight.ndim < 2:
        raise ValueError(
            "weight must have shape (V, D), one row per class, or (C, d1, ..., dK, D) for a "
            f"K-dimensional loss; got shape {tuple(weight.shape)}"
        )
    if weight.shape[-1] != hidden.shape[-1]:
        raise ValueError(
            f"weight has {weight.shape[-1]} features per class (shape {tuple(weight.shape)}) "
            f"but hidden has {hidden.shape[-1]} (shape {tuple(hidden.shape)}); they must be "
            "equal"
        )
    batch = tuple(int(n) for n in hidden.shape[:-1])
    classes, out = int(weight.shape[0]), tuple(int(n) for n in weight.shape[1:-1])
    if bias is not None and tuple(bias.shape) != (classes, *out):
        raise ValueError(
            f"bias must have shape {(classes, *out)} (weight's {tuple(weight.shape)} without "
            f"the features); got {tuple(bias.shape)}"
        )
    indices, dims = (*batch, *out), (*batch, classes, *out)
    what = f"hidden {tuple(hidden.shape)} and weight {tuple(weight.shape)}"
    if xp.isdtype(targets.dtype, "integral"):
        if tuple(targets.shape) != indices:
            raise ValueError(
                f"class-index targets must have shape {indices} for {what}; got "
                f"{tuple(targets.shape)}"
            )
        return HeadLayout(batch, classes, out, probabilities=False)
    check_probability_dtype(xp, targets, indices)
    if tuple(targets.shape) != dims:
        raise ValueError(
            f"probability targets must have the logits' shape {dims} for {what}; got "
            f"{tuple(targets.shape)}"
        )
    return HeadLayout(batch, classes, out, probabilities=True)


def check_probabilities(xp: Any, targets: Array, layout: HeadLayout) -> None:
    """Probability targets in [0, 1] whose distributions (along the class axis) sum to 1, else
    a ValueError naming the first offending value or row (where the data can be read)."""
    check_unit_interval(xp, targets, "probability targets")
    class_axis = len(layout.batch)
    rows = targets if not layout.out else xp.moveaxis(targets, class_axis, -1)
    check_rows_sum_to_one(
        xp, rows, "probability targets",
        remedy="divide each by its sum; to leave a sample out, give it a sample_weight of 0",
    )  # fmt: skip


def _given(value: Any) -> bool:
    """Whether an option is set (not None, False or 0: the defaults of those refused below)."""
    return (
        value is not None
        and value is not False
        and not (isinstance(value, numbers.Number) and value == 0)
    )


def refuse_with_probabilities(**options: Any) -> None:
    """A ValueError naming the first option set that probability targets do not take: they
    have no target index (per-token outputs), no sequence position to shift, no vocabulary
    slice of theirs."""
    for name, value in options.items():
        if _given(value):
            raise ValueError(
                f"{name}={value!r} is not supported with probability targets (they take the "
                "loss options: class_weight, label_smoothing, z_loss, softcap, temperature, "
                "sample_weight, normalizer, return_lse)"
            )


def refuse_with_k_dimensions(weight_shape: tuple[int, ...], **options: Any) -> None:
    """A ValueError naming the first option set that a K-dimensional weight does not take."""
    for name, value in options.items():
        if _given(value):
            raise ValueError(
                f"{name}={value!r} is not supported with a K-dimensional weight of shape "
                f"{weight_shape}"
            )


def validate_head(
    xp: Any,
    hidden: Array,
    weight: Array,
    bias: Array | None,
    chunk_size: int | None,
    prefix: str = "",
    *,
    devices: bool = True,
) -> None:
    """Check one head: hidden (..., D), weight (V, D) of its dtype, bias (V,), the chunk size;
    ``prefix`` names the head in the messages ("student_", "teacher_"); ``devices``: check
    that the arrays share hidden's device (not for traced JAX arrays, which have none)."""
    h_name, w_name, b_name = (prefix + name for name in ("hidden", "weight", "bias"))
    check_floating(xp, hidden, h_name)
    check_floating(xp, weight, w_name)
    if hidden.ndim < 2:
        raise ValueError(
            f"{h_name} must have shape (N, D) or (B, T, D); got shape {tuple(hidden.shape)}"
        )
    if weight.ndim != 2:
        raise ValueError(
            f"{w_name} must have shape (V, D), one row per class; got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"{w_name} has {weight.shape[1]} features per class (shape {tuple(weight.shape)}) "
            f"but {h_name} has {hidden.shape[-1]} (shape {tuple(hidden.shape)}); they must be "
            "equal"
        )
    if weight.shape[0] == 0:
        raise ValueError(f"{w_name} has 0 rows: need at least one class")
    if weight.dtype != hidden.dtype:
        raise TypeError(
            f"{h_name} and {w_name} must have the same dtype; got {hidden.dtype} and {weight.dtype}"
        )
    if devices:
        check_same_device(weight, w_name, hidden)
    if bias is not None:
        check_floating(xp, bias, b_name)
        if devices:
            check_same_device(bias, b_name, hidden)
        check_class_vector(xp, bias, weight.shape[0], b_name, bias.dtype, nonnegative=False)
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")


def validate_targets(
    xp: Any,
    hidden: Array,
    targets: Array,
    class_weight: Array | None,
    vocab: int,
    *,
    devices: bool = True,
) -> None:
    """Check the integer targets (hidden's shape without D) and the class weights (V,) of
    the whole vocabulary (``vocab`` classes, more than a vocabulary-parallel rank's rows)."""
    check_integer(xp, targets, "targets")
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"targets must have shape {tuple(hidden.shape[:-1])} (hidden's shape "
            f"{tuple(hidden.shape)} without the last dimension); got {tuple(targets.shape)}"
        )
    if devices:
        check_same_device(targets, "targets", hidden)
    validate_class_weight(xp, hidden, class_weight, vocab, devices=devices)


def validate_class_weight(
    xp: Any, hidden: Array, class_weight: Array | None, vocab: int, *, devices: bool = True
) -> None:
    """Check the class weights: finite, >= 0, one per class of the whole vocabulary."""
    if class_weight is not None:
        check_floating(xp, class_weight, "class_weight")
        if devices:
            check_same_device(class_weight, "class_weight", hidden)
        check_class_vector(
            xp, class_weight, vocab, "class_weight", class_weight.dtype, nonnegative=True
        )


#: The names ``outputs=`` accepts, each a field of :class:`LinearCEOutput`.
OUTPUTS = ("logprob", "entropy", "prediction", "correct", "accuracy", "confidence", "lse", "z_loss")

# the statistic of the sweep (_linear_sweep.STATISTICS) or of the Function each output needs
_NEEDS = {
    "logprob": "logprob",
    "entropy": "entropy",
    "prediction": "max",
    "correct": "max",
    "accuracy": "max",
    "confidence": "max",
    "z_loss": "z_loss",
}


@dataclass(frozen=True)
class LinearCEOutput:
    r"""The loss and the per-token outputs asked for with ``outputs=`` (None where not asked).

    Per-token fields are arrays of the input's library (torch tensors, JAX arrays) with the
    targets' shape (one position less along the sequence with
    ``shift=True``) and are float32 (float64 for float64 inputs); all are computed from the
    logits as the loss sees them, :math:`z = \operatorname{softcap}(h W^\top + b) / T`, with
    :math:`p = \operatorname{softmax}(z)`.

    Attributes
    ----------
    loss : array
        The loss, as without ``outputs``.
    logprob : array or None
        :math:`\log p_{y}` of the target, 0 at ignored positions. Differentiable: gradients
        flow to hidden, weight and bias (a GRPO/PPO objective is built on it).
    entropy : array or None
        :math:`H(p) = -\sum_c p_c \log p_c` at every position (ignored ones included: it needs
        no target). Differentiable with ``entropy_grad=True``, else detached.
    prediction : array or None
        :math:`\arg\max_c z_c` (int64; the first class among equal logits).
    correct : array or None
        ``prediction == target`` (bool; False at ignored positions).
    accuracy : array or None
        Token accuracy, a 0-d tensor: correct / non-ignored positions (0 when none).
    confidence : array or None
        The top-1 probability :math:`\max_c p_c`: with ``correct``, what token-level
        calibration (:func:`crossent.calibration.expected_calibration_error`) bins.
    lse : array or None
        :math:`\operatorname{LSE}(z)` at every position (not differentiable).
    z_loss : array or None
        The z-loss part of ``loss`` (reduced and weighted as the loss; not differentiable):
        the value a training log reports apart. 0 without ``z_loss``.
    """

    loss: Array
    logprob: Array | None = None
    entropy: Array | None = None
    prediction: Array | None = None
    correct: Array | None = None
    accuracy: Array | None = None
    confidence: Array | None = None
    lse: Array | None = None
    z_loss: Array | None = None


def check_outputs(
    outputs: Sequence[str] | None, *, entropy_grad: bool, return_lse: bool
) -> frozenset[str] | None:
    """The set of output names asked for (None: the plain call), or an error naming the value."""
    if outputs is None:
        if entropy_grad:
            raise ValueError("entropy_grad=True needs the entropy: pass outputs=('entropy', ...)")
        return None
    if isinstance(outputs, str) or not isinstance(outputs, Sequence):
        raise TypeError(
            f"outputs must be a sequence of names such as ('logprob', 'entropy'), got {outputs!r}"
        )
    unknown = [name for name in outputs if name not in OUTPUTS]
    if unknown:
        raise ValueError(f"outputs must be names among {OUTPUTS}; got {unknown[0]!r}")
    names = frozenset(outputs)
    if entropy_grad and "entropy" not in names:
        raise ValueError("entropy_grad=True needs the entropy: add 'entropy' to outputs")
    if return_lse:
        raise ValueError("return_lse=True with outputs: ask for 'lse' in outputs instead")
    return names


def statistics(names: frozenset[str] | None) -> frozenset[str]:
    """What the sweep (and the Function) must compute for these outputs."""
    return frozenset(_NEEDS[n] for n in names or () if n in _NEEDS)


def assemble(
    xp: Any,
    names: frozenset[str],
    loss: Array,
    per_position: dict[str, Array | None],
    *,
    targets: Array,
    ignore_index: int,
) -> LinearCEOutput:
    """The result object from the Function's per-position statistics (already in the targets'
    shape, shift applied) and the scored ``targets`` of the same shape."""
    lse, top = per_position["lse"], per_position["top_logit"]
    argmax = per_position["argmax"]
    fields: dict[str, Array | None] = {
        "logprob": per_position["logprob"],
        "entropy": per_position["entropy"],
        "prediction": argmax,
        "lse": lse,
        "z_loss": per_position["z_loss"],
    }
    if "confidence" in names:
        assert top is not None and lse is not None
        fields["confidence"] = xp.exp(top - lse)  # max_c p_c = exp(max_c z_c - LSE) <= 1
    if "correct" in names or "accuracy" in names:
        assert argmax is not None and lse is not None
        valid = targets != ignore_index
        correct = (argmax == targets) & valid
        fields["correct"] = correct
        dtype = lse.dtype
        count = xp.sum(xp.astype(valid, dtype))
        fields["accuracy"] = xp.sum(xp.astype(correct, dtype)) * mean_scale(xp, count)
    return LinearCEOutput(loss, **{n: v for n, v in fields.items() if n in names})


def check_overflow(
    xp: Any, rows: Array, inputs: Sequence[Array | None], temperature: float
) -> None:
    """Refuse logits that overflow the compute dtype: from finite ``inputs``, a per-row
    log-sum-exp (or loss) that is not finite means some ``h W^T / T`` was +-inf, and the loss
    and every gradient of its row NaN (inf - inf). Checked where the host reads for free
    (``is_concrete``: on the CPU, not traced); inputs holding NaN or inf themselves propagate,
    as in PyTorch."""
    if not is_concrete(rows) or bool(xp.all(xp.isfinite(rows))):
        return
    if not all(t is None or bool(xp.all(xp.isfinite(t))) for t in inputs):
        return
    row = int(np.flatnonzero(~np.asarray(xp.isfinite(rows)))[0])
    raise ValueError(
        f"the logits of row {row} overflow {rows.dtype} (temperature {temperature:g}): scale "
        "the hidden states or the weight down, raise the temperature, or compute in float64"
    )


def check_shift(shift: Any) -> int:
    """``shift`` as the number k of positions a target is ahead of its hidden state: False is 0,
    True is 1 (causal language modelling), an integer k >= 0 is Cut Cross-Entropy's ``shift``;
    anything else (2.0, -1, "1") is refused rather than read as True."""
    if isinstance(shift, bool):
        return int(shift)
    if isinstance(shift, numbers.Integral) and int(shift) >= 0:
        return int(shift)
    raise ValueError(f"shift must be a bool or an integer >= 0, got {shift!r}")
