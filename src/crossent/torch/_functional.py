"""Deprecated PyTorch-named functions, kept so that code written against crossent 0.1 runs.

``crossent.torch.cross_entropy`` was the same loss as :func:`crossent.softmax_cross_entropy`
with the class axis at dim 1, and so on: one name per loss now, with ``axis=1`` for
``(N, C, d1, ...)`` inputs. Each alias warns once per call site and forwards.
"""

from __future__ import annotations

import warnings
from typing import Any

import torch

from .. import losses

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "focal_loss"]


def class_axis(input: torch.Tensor) -> int:
    """torch.nn's class dimension: 1 for (N, C, d1, ...), 0 for an unbatched (C,) input."""
    return 1 if input.ndim > 1 else 0


def _deprecated(old: str, new: str) -> None:
    warnings.warn(
        f"crossent.torch.{old} is deprecated; use crossent.{new} (same options)",
        DeprecationWarning,
        stacklevel=3,
    )


def cross_entropy(
    input: torch.Tensor, target: torch.Tensor, /, *, weight: Any = None, **options: Any
) -> torch.Tensor:
    """Deprecated: ``crossent.softmax_cross_entropy(input, target, axis=1, class_weight=...)``."""
    _deprecated("cross_entropy", "softmax_cross_entropy(..., axis=1, class_weight=weight)")
    return losses.softmax_cross_entropy(
        input, target, axis=class_axis(input), class_weight=weight, **options
    )


def binary_cross_entropy_with_logits(
    input: torch.Tensor, target: torch.Tensor, /, **options: Any
) -> torch.Tensor:
    """Deprecated: ``crossent.sigmoid_binary_cross_entropy(input, target, ...)``."""
    _deprecated("binary_cross_entropy_with_logits", "sigmoid_binary_cross_entropy")
    return losses.sigmoid_binary_cross_entropy(input, target, **options)


def focal_loss(input: torch.Tensor, target: torch.Tensor, /, **options: Any) -> torch.Tensor:
    """Deprecated: ``crossent.softmax_focal_loss(input, target, axis=1, ...)``."""
    _deprecated("focal_loss", "softmax_focal_loss(..., axis=1)")
    return losses.softmax_focal_loss(input, target, axis=class_axis(input), **options)
