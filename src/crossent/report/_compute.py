"""The numbers of ``crossent report``: scores before and after cross-fitted temperature scaling.

Each version of the predictions (as given, then temperature-scaled) is scored in one pass over
its rows, a block at a time (:func:`crossent.report._load.row_blocks`): each block's
probabilities give per-example numbers (top-label confidence, right or not, log-loss) and
per-class sums (the class-wise bin statistics), and every metric comes from those at the end.
So the time is linear in N x K, and the memory is the input (when it is read into memory), a
few blocks, and a few numbers per example: never an N x K temporary. The temperature fits read
the predictions the same way (:func:`crossent.calibration.fit_temperature` accepts rows read on
demand).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import numpy as np

import crossent as ce
from crossent import calibration as cal

from ._load import Predictions, row_blocks

N_BINS = 15
BINNINGS = ("uniform", "quantile")
LN2 = math.log(2.0)


@dataclass
class Scored:
    """Per-example numbers and the metrics of one version (as given, or scaled).

    ``confidence`` is each example's top-label probability, ``correct`` whether its top class
    (the first of a tie) is the label, ``loss`` its log-loss in nats (clipped at the machine
    epsilon, as :func:`crossent.calibration.log_loss`), ``clipped`` how many label
    probabilities the clip raised.
    """

    confidence: np.ndarray
    correct: np.ndarray
    loss: np.ndarray
    metrics: dict[str, float]
    per_class: dict[str, list[float]]
    curve: cal.ReliabilityCurve
    clipped: int = 0


@dataclass
class Report:
    """Everything the terminal table, the JSON and the HTML show."""

    predictions: Predictions
    before: Scored
    after: Scored | None
    temperatures: list[float]
    decomposition: cal.LogLossDecomposition | None
    notes: list[str] = field(default_factory=list)
    n_bins: int = N_BINS
    binning: str = "uniform"


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


def metric_labels(report: Report) -> dict[str, str]:
    """:data:`METRIC_LABELS` with the report's bins in the ECE's name."""
    kind = "" if report.binning == "uniform" else "equal-mass "
    return {**METRIC_LABELS, "ece": f"ECE (top-label, {report.n_bins} {kind}bins)"}


def _probabilities(
    values: Any, kind: str, temperature: np.ndarray | None = None
) -> Iterator[tuple[int, int, np.ndarray]]:
    """Blocks of probabilities of the rows of ``values``, each row scaled by its temperature."""
    for start, stop, v in row_blocks(values):
        if temperature is not None:
            t = temperature[start:stop]
            scaled = np.empty_like(v)
            for value in np.unique(t):  # the two halves' temperatures
                rows = t == value
                scaled[rows] = np.asarray(cal.apply_temperature(v[rows], float(value), kind=kind))
            v = scaled
        yield start, stop, v if kind == "probs" else np.asarray(ce.softmax(v))


def score(
    blocks: Iterator[tuple[int, int, np.ndarray]],
    labels: np.ndarray,
    *,
    n_classes: int,
    n_bins: int = N_BINS,
    binning: str = "uniform",
) -> Scored:
    """All metrics of the probabilities in ``blocks`` (row ranges covering ``labels``)."""
    n, k = len(labels), n_classes
    confidence = np.empty(n)
    correct = np.empty(n, dtype=bool)
    loss = np.empty(n)
    brier = entropy = 0.0
    top5 = clipped = 0
    edges = counts = sums = hits = None
    for start, stop, p in blocks:
        y = labels[start:stop]
        rows = np.arange(stop - start)
        confidence[start:stop] = p.max(axis=1)
        # argmax (ties go to the first class), as the reliability diagram counts a hit
        correct[start:stop] = p.argmax(axis=1) == y
        eps = float(np.finfo(p.dtype).eps)
        p_y = p[rows, y]
        loss[start:stop] = -np.log(np.clip(p_y, eps, 1 - eps))
        clipped += int((p_y < eps).sum())
        brier += float(cal.brier_score(p, y)) * len(y)
        entropy += float(np.sum(np.asarray(ce.entropy(p)), dtype=np.float64))
        if k > 5:
            top5 += round(float(cal.top_k_accuracy(p, y, k=5)) * len(y))
        if edges is None:
            edges = cal.bin_edges(p[:1, 0], n_bins=n_bins)  # equal-width: the class-wise bins
        stats = cal.bin_statistics(p, y, edges=edges)
        counts = stats.counts if counts is None else counts + stats.counts
        sums = stats.sum_confidence if sums is None else sums + stats.sum_confidence
        hits = stats.sum_hits if hits is None else hits + stats.sum_hits
    classwise = cal.BinStatistics(np.broadcast_to(edges, (k, n_bins + 1)), counts, sums, hits)
    top = cal.bin_statistics(
        confidence, correct, edges=cal.bin_edges(confidence, n_bins=n_bins, binning=binning)
    )
    nats = float(np.mean(loss))
    metrics = {
        "log_loss_nats": nats,
        "log_loss_bits": nats / LN2,
        "perplexity": math.exp(nats),
        "brier": brier / n,
        "ece": float(top.calibration_error()),
        "ece_classwise": float(classwise.calibration_error()),
        "mce": float(top.calibration_error(norm="max")),
        "rmsce": float(top.calibration_error(norm="l2")),
        "mean_confidence": float(np.mean(confidence)),
        "entropy_nats": entropy / n,
        "accuracy": float(np.mean(correct)),
    }
    if k > 5:
        metrics["top5_accuracy"] = top5 / n
    count = np.bincount(labels, minlength=k)
    safe = np.maximum(count, 1)
    per_class = {
        "count": count.astype(float).tolist(),
        "frequency": (count / n).tolist(),
        "mean_probability": (np.asarray(sums).sum(axis=1) / n).tolist(),
        "recall": np.where(count > 0, np.bincount(labels[correct], minlength=k) / safe, np.nan)
        .astype(float)
        .tolist(),
        "cross_entropy": np.where(
            count > 0, np.bincount(labels, weights=loss, minlength=k) / safe, np.nan
        ).tolist(),
        "ece": np.asarray(classwise.calibration_error(average=False)).tolist(),
    }
    curve = top.reliability_curve()
    return Scored(confidence, correct, loss, metrics, per_class, curve, clipped)


def _fits(
    predictions: Predictions, seed: int, notes: list[str]
) -> tuple[list[float], np.ndarray | None, cal.LogLossDecomposition | None]:
    """The temperature of all examples (the decomposition), then of each half, cross-fitted.

    The examples are shuffled with ``seed`` and split in two halves; the temperature fitted on
    one half scales the other, so every example is scored with a temperature that never saw
    it. Returns both temperatures, each example's, and the decomposition.
    """
    values, labels, kind = predictions.values, predictions.labels, predictions.kind
    n = len(labels)
    try:
        decomposition = cal.log_loss_decomposition(values, labels, kind=kind)
    except ValueError as error:
        notes.append(f"temperature scaling skipped: {error}")
        return [], None, None
    first = np.zeros(n, dtype=bool)
    first[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
    temperatures: list[float] = []
    for i, half in enumerate((first, ~first)):
        try:
            temperatures.append(cal.fit_temperature(values, labels, kind=kind, weights=half))
        except ValueError as error:
            notes.append(
                f"cross-fitted temperature scaling skipped: on half {i + 1} of 2 "
                f"({int(half.sum()):,} examples), {error}; on all {n:,} examples the optimal "
                f"temperature is {decomposition.temperature:.4f} (the decomposition)"
            )
            return [], None, decomposition
    # the temperature fitted on one half scales the other
    per_example = np.where(first, temperatures[1], temperatures[0])
    return temperatures, per_example, decomposition


def compute(
    predictions: Predictions,
    *,
    seed: int = 0,
    n_bins: int = N_BINS,
    binning: str = "uniform",
    step: Callable[[str], Any] | None = None,
) -> Report:
    """Score the predictions, cross-fit a temperature on two halves and score again.

    ``n_bins`` and ``binning`` are the top-label bins (ECE, MCE, RMSCE, reliability diagram);
    the class-wise ECE uses ``n_bins`` equal-width bins (equal-mass bins of every class would
    need all N x K probabilities sorted).
    """
    step = step or (lambda _: None)
    values, labels, kind = predictions.values, predictions.labels, predictions.kind
    k = int(values.shape[1])
    options = {"n_classes": k, "n_bins": n_bins, "binning": binning}
    step("scoring the predictions")
    before = score(_probabilities(values, kind), labels, **options)
    step("fitting the temperature on each half")
    notes: list[str] = []
    temperatures, per_example, decomposition = _fits(predictions, seed, notes)
    step("scoring after temperature scaling")
    after = None
    if per_example is not None:
        after = score(_probabilities(values, kind, per_example), labels, **options)
    return Report(predictions, before, after, temperatures, decomposition, notes, n_bins, binning)


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
        "bins": report.n_bins,
        "binning": report.binning,
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
