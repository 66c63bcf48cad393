"""Per-example weights of the report: checked once, and the note that says so."""

from __future__ import annotations

from typing import Any

import numpy as np

from ._load import _error, _numeric


def check_weights(weights: Any, n: int) -> np.ndarray:
    """Per-example weights as float64 ``(N,)``: numbers, finite, >= 0, not all 0 (the rule of
    the calibration functions' ``weights=``, with the report's one-line errors)."""
    w = np.asarray(weights)
    if w.dtype == bool:
        w = w.astype(np.float64)
    if not _numeric(w.dtype):
        raise _error(f"weights must be numbers; got dtype {w.dtype}")
    if w.ndim == 2 and w.shape[1] == 1:
        w = w[:, 0]
    if w.shape != (n,):
        raise _error(f"weights must be one number per example, shape ({n},); got shape {w.shape}")
    w = w.astype(np.float64)
    bad = ~((w >= 0) & (w < np.inf))
    if bad.any():
        i = int(np.argmax(bad))
        raise _error(f"weights must be finite and >= 0; found {w[i]} at index {i}")
    if not w.sum() > 0:
        raise _error("weights are all 0: their sum is the denominator of every mean")
    return w


def weights_note(w: np.ndarray) -> str:
    """The note that says the report is weighted, and how much."""
    zero = int((w == 0).sum())
    return (
        f"per-example weights: every mean is weighted, sum w x / sum w (total weight "
        f"{w.sum():.6g}{f', {zero:,} examples of weight 0' if zero else ''})"
    )
