"""The numbers of ``crossent report``: scores before and after cross-fitted temperature scaling."""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import crossent as ce
from crossent import calibration as cal

from ._load import Predictions

N_BINS = 15
LN2 = math.log(2.0)


@dataclass
class Scored:
    """Probabilities and the per-example quantities of one version (as given, or scaled)."""

    probs: np.ndarray
    loss: np.ndarray  # per-example log-loss in nats (clipped as log_loss)
    metrics: dict[str, float]
    per_class: dict[str, list[float]]
    curve: cal.ReliabilityCurve


@dataclass
class Report:
    """Everything the terminal table, the JSON and the HTML show."""

    predictions: Predictions
    before: Scored
    after: Scored | None
    temperatures: list[float]
    decomposition: cal.LogLossDecomposition | None
    notes: list[str] = field(default_factory=list)


METRIC_LABELS = {
    "log_loss_nats": "log-loss (nats)",
    "log_loss_bits": "log-loss (bits)",
    "perplexity": "perplexity",
    "accuracy": "accuracy",
    "top5_accuracy": "top-5 accuracy",
    "brier": "Brier score",
    "ece": "ECE (top-label, 15 bins)",
    "ece_classwise": "ECE (class-wise)",
    "mce": "MCE (max gap)",
    "rmsce": "RMS calibration error",
    "mean_confidence": "mean confidence",
    "entropy_nats": "mean entropy (nats)",
}


def _per_example_loss(probs: np.ndarray, labels: np.ndarray) -> np.ndarray:
    eps = float(np.finfo(probs.dtype).eps)
    return -np.log(np.clip(probs[np.arange(len(labels)), labels], eps, 1 - eps))


def score(probs: np.ndarray, labels: np.ndarray) -> Scored:
    """All metrics of probabilities ``probs`` (N, K) against ``labels``."""
    k = probs.shape[1]
    loss = _per_example_loss(probs, labels)
    nats = float(cal.log_loss(probs, labels))
    metrics = {
        "log_loss_nats": nats,
        "log_loss_bits": nats / LN2,
        "perplexity": math.exp(nats),
        "brier": float(cal.brier_score(probs, labels)),
        "ece": float(cal.expected_calibration_error(probs, labels, n_bins=N_BINS)),
        "ece_classwise": float(
            cal.expected_calibration_error(probs, labels, n_bins=N_BINS, scope="classwise")
        ),
        "mce": float(cal.expected_calibration_error(probs, labels, n_bins=N_BINS, norm="max")),
        "rmsce": float(cal.expected_calibration_error(probs, labels, n_bins=N_BINS, norm="l2")),
        "mean_confidence": float(probs.max(axis=1).mean()),
        "entropy_nats": float(np.mean(ce.entropy(probs))),
    }
    # argmax accuracy (ties go to the first class), as the reliability diagram counts a hit
    metrics["accuracy"] = float(np.mean(probs.argmax(axis=1) == labels))
    if k > 5:
        metrics["top5_accuracy"] = float(cal.top_k_accuracy(probs, labels, k=5))
    onehot = labels[:, None] == np.arange(k)
    count = onehot.sum(axis=0)
    safe = np.maximum(count, 1)
    pred = probs.argmax(axis=1)
    classwise = cal.reliability_curve(probs, labels, n_bins=N_BINS, scope="classwise")
    weights = classwise.counts / len(labels)
    gaps = np.nan_to_num(np.abs(classwise.accuracy - classwise.confidence))
    per_class = {
        "count": count.astype(float).tolist(),
        "frequency": (count / len(labels)).tolist(),
        "mean_probability": probs.mean(axis=0).tolist(),
        "recall": np.where(
            count > 0, ((pred == labels)[:, None] & onehot).sum(0) / safe, np.nan
        ).tolist(),
        "cross_entropy": np.where(
            count > 0, (loss[:, None] * onehot).sum(0) / safe, np.nan
        ).tolist(),
        "ece": (weights * gaps).sum(axis=1).tolist(),
    }
    curve = cal.reliability_curve(probs, labels, n_bins=N_BINS)
    return Scored(probs, loss, metrics, per_class, curve)


def _to_probs(values: np.ndarray, kind: str) -> np.ndarray:
    return values if kind == "probs" else np.asarray(ce.softmax(values))


def compute(
    predictions: Predictions, *, seed: int = 0, step: Callable[[str], Any] | None = None
) -> Report:
    """Score the predictions, then cross-fit a temperature on two halves and score again.

    The examples are shuffled with ``seed`` and split in two halves A and B; the temperature
    fitted on A scales B and the one fitted on B scales A, so every example is scored with a
    temperature that never saw it.
    """
    step = step or (lambda _: None)
    values, labels, kind = predictions.values, predictions.labels, predictions.kind
    step("scoring the predictions")
    before = score(_to_probs(values, kind), labels)
    notes = []
    step("fitting the temperature on each half")
    order = np.random.default_rng(seed).permutation(len(labels))
    halves = (order[: len(order) // 2], order[len(order) // 2 :])
    scaled = np.empty_like(before.probs)
    temperatures: list[float] = []
    try:
        for fit_on, apply_to in (halves, halves[::-1]):
            t = cal.fit_temperature(values[fit_on], labels[fit_on], kind=kind)
            temperatures.append(t)
            rescaled = np.asarray(cal.apply_temperature(values[apply_to], t, kind=kind))
            scaled[apply_to] = _to_probs(rescaled, kind)
    except ValueError as error:
        notes.append(f"temperature scaling skipped: {error}")
        temperatures = []
    step("scoring after temperature scaling")
    after = score(scaled, labels) if temperatures else None
    decomposition = None
    try:
        decomposition = cal.log_loss_decomposition(values, labels, kind=kind)
    except ValueError as error:
        notes.append(f"log-loss decomposition skipped: {error}")
    return Report(predictions, before, after, temperatures, decomposition, notes)


def to_json(report: Report, html: str | None) -> dict[str, Any]:
    """The machine-readable summary (``--json``)."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()
        }

    def per_class(s: Scored) -> dict[str, list[float | None]]:
        return {k: [x if math.isfinite(x) else None for x in v] for k, v in s.per_class.items()}

    p = report.predictions
    d = report.decomposition
    return {
        "source": p.source,
        "examples": int(p.values.shape[0]),
        "classes": int(p.values.shape[1]),
        "kind": p.kind,
        "class_names": p.class_names,
        "before": clean(report.before.metrics),
        "after_temperature": clean(report.after.metrics) if report.after else None,
        "temperatures": report.temperatures,
        "decomposition_nats": None
        if d is None
        else {
            "log_loss": d.log_loss,
            "calibration": d.calibration,
            "refinement": d.refinement,
            "temperature": d.temperature,
        },
        "per_class_before": per_class(report.before),
        "per_class_after": per_class(report.after) if report.after else None,
        "notes": p.notes + report.notes,
        "html": html,
    }
