"""Checks a person runs on the inputs of a loss: the classic cross-entropy bugs, found and measured.

:func:`diagnose` looks at concrete data (it converts to NumPy), so call it outside ``jax.jit``.
Each :class:`Finding` says what is wrong, where, and what to do.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from ._namespace import to_numpy

__all__ = ["Finding", "diagnose"]

SUM_TOLERANCE = 1e-3  # how far a row may sum from 1 and still count as a distribution


@dataclass(frozen=True)
class Finding:
    """One diagnosis: a stable ``code``, a ``severity`` and a message a person can act on."""

    code: str
    severity: str  # "error": the loss is wrong or will fail; "warning": likely a bug; "info"
    message: str

    def __str__(self) -> str:
        return f"{self.severity}: {self.message} [{self.code}]"


def _as_numpy(x: Any) -> np.ndarray:
    return np.asarray(x) if isinstance(x, (list, tuple, int, float)) else to_numpy(x)


def _where(index: tuple[int, ...]) -> str:
    return str(index[0]) if len(index) == 1 else str(tuple(int(i) for i in index))


def _first(mask: np.ndarray) -> tuple[int, ...]:
    return tuple(int(i) for i in np.argwhere(mask)[0])


def _check_values(values: np.ndarray, targets: np.ndarray | None) -> list[Finding]:
    findings = []
    nan = np.isnan(values)
    if nan.any():
        findings.append(
            Finding(
                "nan",
                "error",
                f"{int(nan.sum())} NaN value(s), the first at index {_where(_first(nan))}: "
                "every loss that reads them is NaN; find where they come from upstream",
            )
        )
    inf = np.isinf(values)
    if inf.any():
        findings.append(
            Finding(
                "inf",
                "warning",
                f"{int(inf.sum())} infinite value(s), the first {values[_first(inf)]} at index "
                f"{_where(_first(inf))}: crossent gives the limit, but a probability of exactly "
                "0 or 1 (or an infinite logit) usually means an overflow upstream",
            )
        )
    finite = values[np.isfinite(values)]
    if values.ndim == 0 or values.shape[-1] < 2 or finite.size == 0:
        return findings
    sums = values.sum(axis=-1)
    in_unit = bool(((values >= 0) & (values <= 1)).all())
    if in_unit and np.all(np.abs(sums - 1) <= SUM_TOLERANCE):
        findings.append(_double_softmax(values, targets))
    elif in_unit:
        row = _first(np.abs(sums - 1) > SUM_TOLERANCE)
        findings.append(
            Finding(
                "rows_not_normalized",
                "warning",
                f"all values are in [0, 1] but rows do not sum to 1 (row {_where(row)} sums to "
                f"{sums[row]:.4g}): if these are independent (multi-label) probabilities, use "
                "binary_cross_entropy; if they are one distribution over K classes, they are "
                "not normalized",
            )
        )
    elif bool((values <= 0).all()) and np.all(
        np.abs(np.log(np.exp(values).sum(axis=-1))) <= SUM_TOLERANCE
    ):
        findings.append(
            Finding(
                "log_probabilities",
                "info",
                "values look like log-probabilities (each row's exp sums to 1): "
                "softmax_cross_entropy accepts them unchanged, since log_softmax of "
                "log-probabilities is themselves",
            )
        )
    return findings


def _double_softmax(probs: np.ndarray, targets: np.ndarray | None) -> Finding:
    """Measure what passing probabilities as logits does to the loss and the gradient."""
    from .losses.softmax import softmax_cross_entropy, softmax_cross_entropy_grad

    message = (
        "values look like probabilities (every row is in [0, 1] and sums to 1), but "
        "softmax_cross_entropy expects logits: it would apply softmax a second time (seed 002's "
        "bug). Pass the logits, or use categorical_cross_entropy for probabilities"
    )
    if targets is None or not np.issubdtype(targets.dtype, np.integer):
        return Finding("probabilities_as_logits", "warning", message + ".")
    in_range = (targets >= 0) & (targets < probs.shape[-1])
    if targets.shape != probs.shape[:-1] or not in_range.all():
        return Finding("probabilities_as_logits", "warning", message + ".")
    # The logits behind these probabilities are log(p) up to a constant, so the right loss and
    # gradient are those of log(p); the buggy path softmaxes p again and its gradient flows back
    # through the softmax Jacobian diag(p) - p p^T.
    with np.errstate(divide="ignore"):
        logits = np.log(probs)
    right_loss = float(softmax_cross_entropy(logits, targets))
    wrong_loss = float(softmax_cross_entropy(probs, targets))
    right = np.asarray(softmax_cross_entropy_grad(logits, targets, reduction="sum"))
    g = np.asarray(softmax_cross_entropy_grad(probs, targets, reduction="sum"))
    wrong = probs * (g - (g * probs).sum(axis=-1, keepdims=True))
    right_norm = float(np.linalg.norm(right, axis=-1).mean())
    wrong_norm = float(np.linalg.norm(wrong, axis=-1).mean())
    ratio = wrong_norm / right_norm if right_norm > 0 else float("nan")
    return Finding(
        "probabilities_as_logits",
        "warning",
        f"{message}. Measured on this batch: loss {wrong_loss:.4f} instead of {right_loss:.4f} "
        f"nats, and the mean gradient norm shrinks to {ratio:.1%} of the right one "
        f"({wrong_norm:.4g} instead of {right_norm:.4g}).",
    )


def _check_targets(values: np.ndarray, targets: np.ndarray, ignore_index: int) -> list[Finding]:
    if values.ndim == 0:
        return []
    num_classes = values.shape[-1]
    batch_shape = values.shape[:-1]
    integral = np.issubdtype(targets.dtype, np.integer) or targets.dtype == bool
    findings = []
    if targets.shape == values.shape:
        sums = targets.sum(axis=-1) if targets.size else np.ones(1)
        one_hot = bool(np.isin(targets, (0, 1)).all() and np.all(sums == 1))
        if integral:
            findings.append(
                Finding(
                    "one_hot_integer_targets",
                    "error",
                    f"targets have the input's shape {values.shape} but an integer dtype: "
                    "class-index targets drop the class axis. Pass targets.argmax(axis=-1)"
                    + ("" if one_hot else ", or probabilities as floats"),
                )
            )
        elif one_hot:
            findings.append(
                Finding(
                    "one_hot_targets",
                    "info",
                    "targets are one-hot rows: they work as probability targets, but class "
                    "indices (targets.argmax(axis=-1)) give the same loss with less memory, and "
                    "are needed for ignore_index and PyTorch's weighted mean",
                )
            )
        elif not np.all(np.abs(sums - 1) <= SUM_TOLERANCE):
            row = _first(np.abs(sums - 1) > SUM_TOLERANCE)
            findings.append(
                Finding(
                    "targets_not_normalized",
                    "warning",
                    f"probability targets do not sum to 1 (row {_where(row)} sums to "
                    f"{sums[row]:.4g})",
                )
            )
        return findings
    if targets.shape == (*batch_shape, 1):
        return [
            Finding(
                "targets_extra_axis",
                "error",
                f"targets have shape {targets.shape}: class indices must have shape "
                f"{batch_shape}; squeeze the last axis",
            )
        ]
    if targets.shape != batch_shape:
        return [
            Finding(
                "targets_shape",
                "error",
                f"targets have shape {targets.shape}; expected class indices of shape "
                f"{batch_shape} or probabilities of shape {values.shape}",
            )
        ]
    if not integral:
        whole = bool(np.all(np.isfinite(targets)) and np.all(targets == np.round(targets)))
        hint = "cast them with astype(int)" if whole else "they hold non-integer values"
        return [
            Finding(
                "float_index_targets",
                "error",
                f"targets have the shape of class indices but dtype {targets.dtype}: {hint}",
            )
        ]
    bad = ((targets < 0) | (targets >= num_classes)) & (targets != ignore_index)
    if bad.any():
        index = _first(bad)
        findings.append(
            Finding(
                "targets_out_of_range",
                "error",
                f"targets must be in [0, {num_classes}) or equal ignore_index={ignore_index}; "
                f"found {int(targets[index])} at index {_where(index)}",
            )
        )
    if targets.size and bool(np.all(targets == ignore_index)):
        findings.append(
            Finding(
                "all_ignored",
                "warning",
                f"every target equals ignore_index={ignore_index}: the loss is 0 (PyTorch: NaN) "
                "and nothing is learned from this batch",
            )
        )
    return findings


def diagnose(
    values: Any, targets: Any = None, /, *, axis: int = -1, ignore_index: int = -100
) -> list[Finding]:
    r"""Find the classic mistakes in the inputs of a cross-entropy loss.

    Checks, with the class axis ``axis``:

    * NaN or infinite values;
    * probabilities passed where logits are expected (seed 002's softmax-applied-twice bug),
      with the measured loss and the shrink of the gradient norm when ``targets`` are indices;
    * values in [0, 1] whose rows do not sum to 1, and log-probabilities (harmless);
    * targets out of range, one-hot given where indices are expected (and integer one-hot),
      class indices stored as floats, an extra axis of length 1, targets all ignored,
      probability targets that do not sum to 1.

    Parameters
    ----------
    values : array
        What you pass as logits (or probabilities).
    targets : array, optional
        The targets you pass with them.
    axis : int, default -1
        The class axis.
    ignore_index : int, default -100
        The ignored target value.

    Returns
    -------
    list of Finding
        Empty when nothing looks wrong.

    Examples
    --------
    >>> import crossent as ce
    >>> probs = ce.softmax([[2.0, 1.0, 0.1]])
    >>> for finding in ce.diagnose(probs, [0]):
    ...     print(finding.code)
    probabilities_as_logits
    >>> ce.diagnose([[2.0, 1.0, 0.1]], [0])
    []
    """
    v = _as_numpy(values)
    if not np.issubdtype(v.dtype, np.floating):
        v = v.astype(np.float64)
    v = v.astype(np.float64)
    if v.ndim > 0:
        v = np.moveaxis(v, axis, -1)
    t = None
    if targets is not None:
        t = _as_numpy(targets)
        if t.shape == _as_numpy(values).shape and t.ndim > 0:
            t = np.moveaxis(t, axis, -1)
    findings = _check_values(v, t)
    if t is not None:
        findings += _check_targets(v, t, ignore_index)
    return findings
