"""Validation shared by the PyTorch losses: clear errors, no host-device synchronization.

Checks of shapes, dtypes and options always run (they read metadata only). Checks of values
(targets in range) need the data: they run on CPU tensors outside ``torch.compile`` and are
skipped on accelerators, where reading a value would synchronize the host with the device and
break CUDA-graph capture. There an out-of-range target fails inside the gather, as in PyTorch.
"""

from __future__ import annotations

import math

import torch

from .._namespace import (
    check_fraction,
    check_nonnegative,
    check_reduction,
    first_bad,
    format_index,
)

__all__ = [
    "check_class_vector",
    "check_device",
    "check_float",
    "check_fraction",
    "check_integer",
    "check_nonnegative",
    "check_nonnegative_values",
    "check_reduction",
    "check_softcap",
    "check_targets_in_range",
    "compute_dtype",
    "may_read_values",
]


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16/float32 (the accumulation dtype), float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def may_read_values(*tensors: torch.Tensor | None) -> bool:
    """Whether value checks may read these tensors now: all on CPU and not being traced."""
    if torch.compiler.is_compiling():
        return False
    return all(t is None or t.device.type == "cpu" for t in tensors)


def check_softcap(softcap: float | None) -> float | None:
    """None, or a finite number > 0."""
    if softcap is None:
        return None
    value = float(softcap)
    if not 0.0 < value < math.inf:  # comparisons only: traceable with symbolic floats
        raise ValueError(f"softcap must be None or a finite number > 0, got {softcap!r}")
    return value


def check_targets_in_range(targets: torch.Tensor, num_classes: int, ignore_index: int) -> None:
    """Class indices in [0, num_classes) or equal to ``ignore_index`` (CPU, eager only)."""
    if targets.numel() == 0 or not may_read_values(targets):
        return
    bad = ((targets < 0) | (targets >= num_classes)) & (targets != ignore_index)
    found = first_bad(torch, bad, targets)
    if found is not None:
        index, value = found
        raise ValueError(
            f"targets must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
            f"found {value} at index {format_index(index)}"
        )


def check_float(tensor: torch.Tensor, name: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if not tensor.dtype.is_floating_point:
        raise TypeError(
            f"{name} must be a floating tensor (float16, bfloat16, float32 or float64), "
            f"got {tensor.dtype}"
        )


def check_integer(tensor: torch.Tensor, name: str) -> None:
    if not isinstance(tensor, torch.Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(tensor).__name__}")
    if tensor.dtype.is_floating_point or tensor.dtype.is_complex or tensor.dtype == torch.bool:
        raise TypeError(f"{name} must be an integer tensor of class indices, got {tensor.dtype}")


def check_class_vector(
    vector: torch.Tensor | None,
    num_classes: int,
    name: str,
    like: torch.Tensor,
    *,
    nonnegative: bool = True,
) -> None:
    """A per-class vector of shape (num_classes,) on ``like``'s device; weights >= 0 and finite."""
    if vector is None:
        return
    check_float(vector, name)
    if tuple(vector.shape) != (num_classes,):
        raise ValueError(
            f"{name} must have shape ({num_classes},), one value per class; "
            f"got shape {tuple(vector.shape)}"
        )
    check_device(vector, name, like)
    if nonnegative:
        check_nonnegative_values(vector, name, where="class")


def check_nonnegative_values(
    tensor: torch.Tensor | None, name: str, *, where: str = "index"
) -> None:
    """Every value finite and >= 0 (CPU, eager only), else a ValueError naming the first."""
    if tensor is None or tensor.numel() == 0 or not may_read_values(tensor):
        return
    found = first_bad(torch, ~((tensor >= 0) & (tensor < math.inf)), tensor)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must be finite and >= 0; found {value} at {where} {format_index(index)}"
        )


def check_device(tensor: torch.Tensor, name: str, like: torch.Tensor) -> None:
    if tensor.device != like.device:
        raise ValueError(f"{name} is on {tensor.device} but the input is on {like.device}")
