"""Multi-label predictions: K independent sigmoid probabilities (or logits) per example.

Labels are an (N, K) array of 0/1 of the predictions' shape (``--multilabel``, or detected
and said in the notes). Each label j is its own binary problem, P(label j = 1) its forecast:
per label, its binary cross-entropy (BCE, nats and bits), Brier score, prevalence and ECE
(the reliability of P(label = 1)); pooled over all N K (example, label) pairs, the
micro-averaged BCE, Brier and ECE/MCE/RMSCE (one set of bins for every pair) and their
reliability diagram; and the macro means over labels. Micro and macro BCE and Brier are the
same number (every label has the same N examples, so the same denominator); the calibration
errors differ (pooled bins against the mean of per-label ones).

Scale: one pass over the predictions a block of rows at a time (:func:`row_blocks`), adding
per-label sums and per-(label, bin) statistics (:func:`crossent.calibration.bin_statistics`);
memory is the input (when read whole), the (N, K) labels as bool, a few blocks and O(K B)
sums: no N x K temporary. Logits go through crossent's sigmoid and its stable BCE from logits
(``max(z, 0) - z y + log1p(exp(-|z|))``, unclipped); probabilities through its BCE of
probabilities, clipped at the dtype's epsilon as scikit-learn's ``log_loss`` is.
"""

from __future__ import annotations

import html
import json
import math
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import Any

import numpy as np

import crossent as ce
from crossent import calibration as cal
from crossent.errors import UsageError
from crossent.files import save_figures

from ._load import Predictions, _decide_kind, _error, _first, _numeric, _scan, row_blocks
from ._weights import weights_note as _weights_note

LN2 = math.log(2.0)
FIGURES = ("reliability", "per_label")
SUMMARY_LABELS = {
    "bce_nats": "binary cross-entropy (nats)",
    "bce_bits": "binary cross-entropy (bits)",
    "brier": "Brier score",
    "ece": "ECE of P(label = 1)",
    "mce": "MCE (max gap)",
    "rmsce": "RMS calibration error",
    "mean_probability": "mean P(label = 1)",
    "prevalence": "prevalence (frequency of 1)",
}


def looks_multilabel(values: Any, labels: np.ndarray) -> bool:
    """Labels of the predictions' 2-D shape: one 0/1 per (example, label)."""
    shape = tuple(getattr(values, "shape", np.shape(values)))
    return labels.ndim == 2 and len(shape) == 2 and tuple(labels.shape) == shape


def _labels_01(labels: np.ndarray, shape: tuple[int, ...]) -> np.ndarray:
    if labels.ndim != 2 or tuple(labels.shape) != shape:
        raise _error(
            f"multi-label needs labels of the predictions' shape {shape}, one 0/1 per "
            f"(example, label); got shape {tuple(labels.shape)}"
        )
    if labels.dtype == bool:
        return labels
    if not _numeric(labels.dtype):
        raise _error(f"multi-label labels must be 0/1; got dtype {labels.dtype}")
    bad = ~((labels == 0) | (labels == 1))
    if bad.any():
        i, j = _first(bad, 0) or (0, 0)
        raise _error(
            f"multi-label labels must be 0/1 (labels of the predictions' shape are read as "
            f"multi-label); found {labels[i, j]} at row {i}, label {j}"
        )
    return labels == 1


def check(
    values: Any,
    labels: np.ndarray,
    *,
    kind: str,
    source: str,
    key: str,
    class_names: list[str] | None,
    weights: np.ndarray | None,
    detected: bool,
) -> Predictions:
    """Validated multi-label :class:`Predictions` (one pass over the values)."""
    if not _numeric(values.dtype):
        raise _error(f"predictions must be numbers; got dtype {values.dtype}")
    shape = tuple(int(d) for d in values.shape)
    if len(shape) != 2:
        raise _error(f"multi-label predictions must have shape (N, K); got shape {shape}")
    if shape[0] < 2:
        raise _error(f"need at least 2 examples; got {shape[0]}")
    if shape[1] < 1:
        raise _error(f"multi-label predictions need at least one label column; got {shape}")
    y = _labels_01(labels, shape)
    if isinstance(values, np.ndarray) and not np.issubdtype(values.dtype, np.floating):
        values = values.astype(np.float64)
    elif isinstance(values, np.ndarray) and np.finfo(values.dtype).bits < 32:
        values = values.astype(np.float32)
    scan = _scan(values, None)  # NaN and +inf raise here
    notes = []
    if detected:
        notes.append(
            f"multi-label: detected (the labels are a {shape[0]:,} x {shape[1]:,} array of "
            "0/1 of the predictions' shape); each column is its own P(label = 1)"
        )
    if kind == "auto":
        if key.lower() == "logits":
            kind = "logits"
            notes.append("read as logits (the array is named 'logits'); P(label = 1) = sigmoid(z)")
        elif scan.outside is None:
            kind = "probs"
            notes.append("read as probabilities: every value is in [0, 1]")
        else:
            kind = "logits"
            notes.append("read as logits: values outside [0, 1]; P(label = 1) = sigmoid(z)")
    elif kind == "probs":
        _decide_kind(scan, kind, key, 2, np.dtype(np.float64))  # a value outside [0, 1] raises
    if kind == "logits":
        for start, _, v in row_blocks(values):
            where = _first(np.isneginf(v), start)
            if where is not None:
                raise _error(
                    f"logits must be finite; found -inf at row {where[0]}, label {where[1]}"
                )
    if weights is not None:
        notes.append(_weights_note(weights) + "; a row's weight applies to all its labels")
    names = class_names if class_names and len(class_names) == shape[1] else None
    names = names or [str(j) for j in range(shape[1])]
    return Predictions(values, y, kind, source, names, notes, weights, multilabel=True)


@dataclass
class MultilabelReport:
    """The multi-label report: per-label figures, pooled (micro) and macro summaries.

    ``per_label`` maps each figure ("prevalence", "mean_probability", "positives", "bce_nats",
    "bce_bits", "brier", "ece") to one value per label; ``pooled`` holds the micro averages
    over all (example, label) pairs and ``macro`` the means over labels; ``curve`` is the
    reliability curve of the pooled pairs.
    """

    predictions: Predictions
    per_label: dict[str, list[float]]
    pooled: dict[str, float]
    macro: dict[str, float]
    curve: cal.ReliabilityCurve
    notes: list[str] = field(default_factory=list)
    n_bins: int = 15
    clipped: int = 0

    def to_json(self) -> str:
        """The summary of ``crossent report --json``, as a JSON string."""
        return json.dumps(json_summary(self, None), indent=2)

    def to_html(self) -> str:
        """The self-contained HTML page (figures embedded)."""
        from ._render import _png

        return render_html(self, {name: _png(self.figure(name)) for name in FIGURES})

    def _repr_html_(self) -> str:
        return self.to_html()

    def figure(self, name: str) -> Any:
        """ "reliability" (the pooled pairs) or "per_label" (each label's ECE against its
        prevalence), as a matplotlib Figure."""
        from ._render import _figure, _legend

        if name not in FIGURES:
            raise ValueError(f"no figure {name!r}; the figures are {', '.join(FIGURES)}")
        fig, ax = _figure(5.5, 4.6)
        if name == "reliability":
            self.plot_reliability(ax)
            ax.set_title(f"all (example, label) pairs: ECE {self.pooled['ece']:.2%}")
            _legend(fig, ax)
        else:
            self.plot_per_label(ax)
        return fig

    def plot_reliability(self, ax: Any = None) -> Any:
        """Draw the reliability diagram of the pooled pairs on ``ax`` (a new one if None)."""
        from ._render import BEFORE, new_axes, plot_curve

        return plot_curve(
            ax if ax is not None else new_axes(),
            self.curve,
            color=BEFORE,
            counts=True,
            xlabel="predicted P(label = 1)",
            ylabel="frequency of label = 1",
        )

    def plot_per_label(self, ax: Any = None) -> Any:
        """Draw each label's ECE against its prevalence on ``ax`` (a new one if None)."""
        from ._render import BEFORE, new_axes

        ax = ax if ax is not None else new_axes()
        ax.scatter(self.per_label["prevalence"], self.per_label["ece"], s=12, color=BEFORE)
        ax.set(xlim=(0, 1), ylim=(0, None), xlabel="prevalence", ylabel="ECE of the label")
        return ax

    def save_figures(self, folder: str | PathLike[str], /, *, format: str = "svg") -> list[Path]:
        """Write every figure to ``folder`` as ``<name>.<format>`` (svg, pdf or png)."""
        return save_figures(folder, self.figure, FIGURES, format)


def _column_sums(x: np.ndarray, w: np.ndarray | None) -> np.ndarray:
    """Per-label sums of a block, weighted by the rows' weights, in float64."""
    return x.sum(axis=0, dtype=np.float64) if w is None else w @ x.astype(np.float64)


def compute(
    predictions: Predictions, *, n_bins: int = 15, binning: str = "uniform", resamples: int = 0
) -> MultilabelReport:
    """Score multi-label predictions in one pass over their rows (see the module notes)."""
    if binning != "uniform":
        raise UsageError(
            "multi-label uses equal-width bins: equal-mass bins of every label would need all "
            "N x K probabilities sorted; drop --binning quantile"
        )
    values, y, w = predictions.values, predictions.labels, predictions.weights
    n, k = (int(d) for d in values.shape)
    total = float(n) if w is None else float(w.sum())
    bce = np.zeros(k)
    brier = np.zeros(k)
    positives = np.zeros(k)
    mean_p = np.zeros(k)
    clipped = 0
    stats: cal.BinStatistics | None = None
    edges = None
    for start, stop, v in row_blocks(values):
        yb = y[start:stop]
        wb = None if w is None else w[start:stop]
        target = yb.astype(v.dtype)
        if predictions.kind == "logits":
            p = np.asarray(ce.sigmoid(v))
            loss = np.asarray(ce.sigmoid_binary_cross_entropy(v, target, reduction="none"))
        else:
            p = v
            loss = np.asarray(ce.binary_cross_entropy(v, target, reduction="none"))
            eps = float(np.finfo(v.dtype).eps)
            clipped += int(np.count_nonzero(np.where(yb, v < eps, v > 1 - eps)))
        bce += _column_sums(loss, wb)
        brier += _column_sums(np.square(p - target), wb)
        positives += _column_sums(target, wb)
        mean_p += _column_sums(p, wb)
        if edges is None:
            edges = cal.bin_edges(p[:1, 0], n_bins=n_bins)
        if wb is not None and not wb.sum() > 0:
            continue  # a block of weight 0 adds nothing to the bins
        part = cal.bin_statistics(p, yb, edges=edges, weights=wb)
        stats = part if stats is None else _add(stats, part)
    assert stats is not None  # the weights are not all 0
    per_label_ece = np.asarray(stats.calibration_error(average=False), dtype=float)
    pooled_stats = cal.BinStatistics(
        stats.edges[0], *(np.asarray(a).sum(axis=0) for a in (stats.counts,
        stats.sum_confidence, stats.sum_hits))
    )  # fmt: skip
    per_label = {
        "prevalence": positives / total,
        "positives": positives,
        "mean_probability": mean_p / total,
        "bce_nats": bce / total,
        "bce_bits": bce / total / LN2,
        "brier": brier / total,
        "ece": per_label_ece,
    }
    pooled = {
        "bce_nats": float(bce.sum() / (total * k)),
        "bce_bits": float(bce.sum() / (total * k) / LN2),
        "brier": float(brier.sum() / (total * k)),
        "ece": float(pooled_stats.calibration_error()),
        "mce": float(pooled_stats.calibration_error(norm="max")),
        "rmsce": float(pooled_stats.calibration_error(norm="l2")),
        "mean_probability": float(mean_p.sum() / (total * k)),
        "prevalence": float(positives.sum() / (total * k)),
    }
    macro = {
        "bce_nats": float(np.mean(per_label["bce_nats"])),
        "bce_bits": float(np.mean(per_label["bce_bits"])),
        "brier": float(np.mean(per_label["brier"])),
        "ece": float(np.mean(per_label_ece)),
        "mce": float(np.mean(np.asarray(stats.calibration_error(norm="max", average=False)))),
        "rmsce": float(np.mean(np.asarray(stats.calibration_error(norm="l2", average=False)))),
        "mean_probability": float(np.mean(per_label["mean_probability"])),
        "prevalence": float(np.mean(per_label["prevalence"])),
    }
    notes = []
    if resamples:
        notes.append(
            "multi-label: no bootstrap intervals and no temperature scaling (built for "
            "single-label predictions only)"
        )
    if clipped:
        notes.append(
            f"{clipped:,} (example, label) probabilities of 0 or 1 on the wrong side: their "
            "BCE is clipped at -log(eps), as scikit-learn's log_loss"
        )
    return MultilabelReport(
        predictions,
        {name: [float(x) for x in values] for name, values in per_label.items()},
        pooled,
        macro,
        pooled_stats.reliability_curve(),
        notes,
        n_bins,
        clipped,
    )


def _add(a: cal.BinStatistics, b: cal.BinStatistics) -> cal.BinStatistics:
    """Statistics of two disjoint blocks binned alike: their sums."""
    return cal.BinStatistics(
        a.edges, a.counts + b.counts, a.sum_confidence + b.sum_confidence, a.sum_hits + b.sum_hits
    )


def json_summary(report: MultilabelReport, html_path: str | None) -> dict[str, Any]:
    """The machine-readable summary (``--json``): every label in ``per_label``."""

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()
        }

    p = report.predictions
    return {
        "source": p.source,
        "multilabel": True,
        "examples": int(p.values.shape[0]),
        "labels": int(p.values.shape[1]),
        "kind": p.kind,
        "label_names": p.class_names,
        "bins": report.n_bins,
        "binning": "uniform",
        "weighted": p.weights is not None,
        "total_weight": None if p.weights is None else float(p.weights.sum()),
        "pooled": clean(report.pooled),
        "macro": clean(report.macro),
        "per_label": {"name": p.class_names, **report.per_label},
        "notes": p.notes + report.notes,
        "html": html_path,
    }


def _summary_table(report: MultilabelReport) -> str:
    from ._render import _fmt

    rows = "".join(
        f"<tr><td>{html.escape(label)}</td><td>{_fmt(report.pooled[key])}</td>"
        f"<td>{_fmt(report.macro[key])}</td></tr>"
        for key, label in SUMMARY_LABELS.items()
    )
    return (
        "<table><thead><tr><th>metric</th><th>pooled pairs (micro)</th>"
        f"<th>mean over labels (macro)</th></tr></thead><tbody>{rows}</tbody></table>"
    )


def _label_table(report: MultilabelReport) -> str:
    from ._render import _fmt, worst_first

    b = report.per_label
    shown, rest = worst_first(b["ece"], "labels", "ECE")
    head = (
        "<tr><th>label</th><th>prevalence</th><th>mean P(1)</th><th>BCE (nats)</th>"
        "<th>BCE (bits)</th><th>Brier</th><th>ECE</th></tr>"
    )
    rows = "".join(
        f"<tr><td>{html.escape(report.predictions.class_names[i])}</td>"
        f"<td>{_fmt(b['prevalence'][i])}</td><td>{_fmt(b['mean_probability'][i])}</td>"
        f"<td>{_fmt(b['bce_nats'][i])}</td><td>{_fmt(b['bce_bits'][i])}</td>"
        f"<td>{_fmt(b['brier'][i])}</td><td>{_fmt(b['ece'][i])}</td></tr>"
        for i in shown
    )
    return f"<table><thead>{head}</thead><tbody>{rows}</tbody></table>{rest}"


def render_html(report: MultilabelReport, figures: dict[str, str], *, provenance: str = "") -> str:
    """The multi-label page as a string."""
    from ._render import _CSS, _img

    p = report.predictions
    n, k = p.values.shape
    notes = "".join(f"<li>{html.escape(x)}</li>" for x in p.notes + report.notes)
    loss = (
        "BCE from logits is exact (crossent's stable form, no clip)"
        if p.kind == "logits"
        else "BCE clips probabilities at the machine epsilon (scikit-learn's convention)"
    )
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossent report: {html.escape(p.source)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Multi-label predictions report</h1>
<p class="muted">{html.escape(p.source)} · {n:,} examples · {k:,} labels (multi-label) · read as
{"probabilities" if p.kind == "probs" else "logits (P = sigmoid(z))"} · made by crossent</p>
{f'<p class="muted">{html.escape(provenance)}</p>' if provenance else ""}
{f'<ul class="notes">{notes}</ul>' if notes else ""}
<h2>Summary</h2>
{_summary_table(report)}
<p class="muted">Each label is a binary problem, P(label = 1) its forecast. Pooled: all
{n * k:,} (example, label) pairs in one set of {report.n_bins} equal-width bins (lo, hi];
macro: the mean of each label's figure. BCE and Brier are the same both ways (every label has
the same examples). {loss}.</p>
<h2>Reliability diagram (all pairs)</h2>
{_img(figures["reliability"], "reliability diagram of the pooled pairs")}
<h2>Per label</h2>
{_img(figures["per_label"], "per-label ECE against prevalence")}
<details open><summary>Per-label table</summary>
{_label_table(report)}
</details>
</body></html>
"""
