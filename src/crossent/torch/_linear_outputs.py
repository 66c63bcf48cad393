"""The optional per-token outputs of the fused linear cross-entropy, and their result object.

Each comes from the statistics the chunk sweep computes anyway, or from one more reduction of
a chunk it already holds (the entropy, the top logit and its class): asking for them never
materializes the N x V logits. See :func:`crossent.torch.linear_cross_entropy`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch

from .._semantics import mean_scale
from ._functions import _xp

__all__ = ["OUTPUTS", "LinearCEOutput"]

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

    Per-token fields have the targets' shape (one position less along the sequence with
    ``shift=True``) and are float32 (float64 for float64 inputs); all are computed from the
    logits as the loss sees them, :math:`z = \operatorname{softcap}(h W^\top + b) / T`, with
    :math:`p = \operatorname{softmax}(z)`.

    Attributes
    ----------
    loss : torch.Tensor
        The loss, as without ``outputs``.
    logprob : torch.Tensor or None
        :math:`\log p_{y}` of the target, 0 at ignored positions. Differentiable: gradients
        flow to hidden, weight and bias (a GRPO/PPO objective is built on it).
    entropy : torch.Tensor or None
        :math:`H(p) = -\sum_c p_c \log p_c` at every position (ignored ones included: it needs
        no target). Differentiable with ``entropy_grad=True``, else detached.
    prediction : torch.Tensor or None
        :math:`\arg\max_c z_c` (int64; the first class among equal logits).
    correct : torch.Tensor or None
        ``prediction == target`` (bool; False at ignored positions).
    accuracy : torch.Tensor or None
        Token accuracy, a 0-d tensor: correct / non-ignored positions (0 when none).
    confidence : torch.Tensor or None
        The top-1 probability :math:`\max_c p_c`: with ``correct``, what token-level
        calibration (:func:`crossent.calibration.expected_calibration_error`) bins.
    lse : torch.Tensor or None
        :math:`\operatorname{LSE}(z)` at every position (not differentiable).
    z_loss : torch.Tensor or None
        The z-loss part of ``loss`` (reduced and weighted as the loss; not differentiable):
        the value a training log reports apart. 0 without ``z_loss``.
    """

    loss: torch.Tensor
    logprob: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    prediction: torch.Tensor | None = None
    correct: torch.Tensor | None = None
    accuracy: torch.Tensor | None = None
    confidence: torch.Tensor | None = None
    lse: torch.Tensor | None = None
    z_loss: torch.Tensor | None = None


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
    names: frozenset[str],
    loss: torch.Tensor,
    per_position: dict[str, torch.Tensor | None],
    *,
    targets: torch.Tensor,
    ignore_index: int,
) -> LinearCEOutput:
    """The result object from the Function's per-position statistics (already in the targets'
    shape, shift applied) and the scored ``targets`` of the same shape."""
    lse, top = per_position["lse"], per_position["top_logit"]
    argmax = per_position["argmax"]
    fields: dict[str, torch.Tensor | None] = {
        "logprob": per_position["logprob"],
        "entropy": per_position["entropy"],
        "prediction": argmax,
        "lse": lse,
        "z_loss": per_position["z_loss"],
    }
    if "confidence" in names:
        assert top is not None and lse is not None
        fields["confidence"] = torch.exp(top - lse)  # max_c p_c = exp(max_c z_c - LSE) <= 1
    if "correct" in names or "accuracy" in names:
        assert argmax is not None and lse is not None
        valid = targets != ignore_index
        correct = (argmax == targets) & valid
        fields["correct"] = correct
        dtype = lse.dtype
        count = valid.sum(dtype=dtype)
        fields["accuracy"] = correct.sum(dtype=dtype) * mean_scale(_xp(), count)
    return LinearCEOutput(loss, **{n: v for n, v in fields.items() if n in names})
