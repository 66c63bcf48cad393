"""The self-contained HTML page of ``crossent report``: figures embedded as base64 PNG, no network.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot), so nothing
global changes in the process and no display is needed.
"""

from __future__ import annotations

import base64
import html
import io
import math
from typing import Any

import numpy as np

from ._compute import Report, metric_labels

BEFORE = "#c0392b"
AFTER = "#2471a3"


def _png(fig: Any) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def _legend(fig: Any, ax: Any) -> None:
    """The legend of ``ax``'s artists below the axes, where it hides no data."""
    handles, labels = ax.get_legend_handles_labels()
    fig.legend(
        handles,
        labels,
        loc="outside lower center",
        ncols=min(3, len(labels)),
        fontsize=8,
        frameon=False,
    )


def reliability_png(report: Report) -> str:
    """Reliability diagrams (accuracy against confidence per bin), as given and scaled."""
    versions = [("as given", report.before, BEFORE)]
    if report.after is not None:
        versions.append(("after temperature scaling", report.after, AFTER))
    fig, axes = _figure(5.0 * len(versions), 4.6, len(versions))
    axes = np.atleast_1d(axes)
    for ax, (title, scored, color) in zip(axes, versions, strict=True):
        curve = scored.curve
        edges = np.asarray(curve.edges)
        lo, hi = edges[:-1], edges[1:]
        acc = np.nan_to_num(np.asarray(curve.accuracy))
        conf = np.asarray(curve.confidence)
        filled = np.asarray(curve.counts) > 0
        ax.bar(
            lo,
            acc,
            width=hi - lo,
            align="edge",
            color=color,
            alpha=0.75,
            edgecolor="white",
            label="accuracy in bin",
        )
        gap_lo = np.where(filled, np.minimum(acc, np.nan_to_num(conf)), 0)
        gap_hi = np.where(filled, np.maximum(acc, np.nan_to_num(conf)), 0)
        ax.bar(
            lo,
            gap_hi - gap_lo,
            bottom=gap_lo,
            width=hi - lo,
            align="edge",
            fill=False,
            hatch="//",
            edgecolor="#555555",
            linewidth=0.5,
            label="gap to confidence",
        )
        ax.plot(
            [0, 1],
            [0, 1],
            color="#333333",
            linestyle="--",
            linewidth=1,
            label="perfect calibration",
        )
        ax.set(
            xlim=(0, 1),
            ylim=(0, 1),
            xlabel="confidence (top-label probability)",
            ylabel="accuracy",
            title=f"{title}: ECE {scored.metrics['ece']:.2%}",
        )
    _legend(fig, axes[0])
    return _png(fig)


def confidence_png(report: Report) -> str:
    """Histogram of the top-label confidence, with the accuracy and the mean confidence."""
    fig, ax = _figure(6.5, 3.6)
    bins = np.linspace(0, 1, 2 * report.n_bins + 1)
    versions = [("as given", report.before, BEFORE)]
    if report.after is not None:
        versions.append(("after temperature scaling", report.after, AFTER))
    for title, scored, color in versions:
        style = {"histtype": "stepfilled", "alpha": 0.35, "color": color}
        ax.hist(scored.confidence, bins=bins, label=title, **style)
        ax.axvline(
            scored.metrics["mean_confidence"],
            color=color,
            linewidth=1.5,
            label=f"mean confidence {scored.metrics['mean_confidence']:.3f}",
        )
    ax.axvline(
        report.before.metrics["accuracy"],
        color="#222222",
        linestyle=":",
        linewidth=1.5,
        label=f"accuracy {report.before.metrics['accuracy']:.3f}",
    )
    ax.set(
        xlim=(0, 1), xlabel="confidence (top-label probability)", ylabel="examples", yscale="log"
    )
    _legend(fig, ax)
    return _png(fig)


def loss_png(report: Report) -> str:
    """Distribution of the per-example log-loss (log-spaced bins: it spans many decades)."""
    fig, ax = _figure(6.5, 3.6)
    versions = [("as given", report.before, BEFORE)]
    if report.after is not None:
        versions.append(("after temperature scaling", report.after, AFTER))
    floor = 1e-8
    top = max(float(s.loss.max()) for _, s, _ in versions)
    bins = np.logspace(math.log10(floor), math.log10(max(top, 10 * floor)) + 0.01, 50)
    for title, scored, color in versions:
        ax.hist(
            np.maximum(scored.loss, floor),
            bins=bins,
            histtype="step",
            linewidth=1.8,
            color=color,
            label=f"{title} (mean {scored.metrics['log_loss_nats']:.4f} nats)",
        )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set(xlabel="per-example log-loss -ln p(label) (nats)", ylabel="examples")
    _legend(fig, ax)
    return _png(fig)


def per_class_png(report: Report) -> str:
    """Cross-entropy of each class's examples, as given and scaled."""
    k = len(report.predictions.class_names)
    fig, ax = _figure(max(6.5, min(16.0, 0.18 * k + 3)), 3.4)
    x = np.arange(k)
    width = 0.4 if report.after is not None else 0.8
    ax.bar(
        x - (width / 2 if report.after else 0),
        report.before.per_class["cross_entropy"],
        width=width,
        color=BEFORE,
        label="as given",
    )
    if report.after is not None:
        ax.bar(
            x + width / 2,
            report.after.per_class["cross_entropy"],
            width=width,
            color=AFTER,
            label="after temperature scaling",
        )
    ax.set(xlabel="class", ylabel="mean log-loss (nats)", xlim=(-1, k))
    if k <= 20:
        ax.set_xticks(x, report.predictions.class_names)
    _legend(fig, ax)
    return _png(fig)


# ---------------------------------------------------------------- HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2rem auto;
       max-width: 1100px; color: #222; line-height: 1.45; padding: 0 1rem; }
h1 { font-size: 1.6rem; margin-bottom: 0.2rem; } h2 { margin-top: 2rem; font-size: 1.2rem; }
.muted { color: #666; font-size: 0.9rem; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.9rem; }
th, td { padding: 0.25rem 0.7rem; border-bottom: 1px solid #ddd; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f4f4f4; }
img { max-width: 100%; height: auto; display: block; margin: 0.6rem 0; }
.better { color: #1e8449; } .worse { color: #b03a2e; }
ul.notes li { margin: 0.2rem 0; }
details { margin: 0.8rem 0; }
"""

# Whether a smaller value is better, for colouring the change column.
_LOWER_IS_BETTER = {
    "log_loss_nats": True,
    "log_loss_bits": True,
    "perplexity": True,
    "brier": True,
    "ece": True,
    "ece_classwise": True,
    "mce": True,
    "rmsce": True,
    "accuracy": False,
    "top5_accuracy": False,
}


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _change(a: float, b: float) -> str:
    """``a - b`` to 4 decimals with its sign; a change that rounds to zero has none."""
    text = f"{a - b:+.4f}"
    return "0.0000" if text in ("+0.0000", "-0.0000") else text


def _metrics_table(report: Report) -> str:
    after = report.after
    head = "<tr><th>metric</th><th>as given</th>"
    if after:
        head += "<th>temperature-scaled (cross-fitted)</th><th>change</th>"
    rows = []
    for key, label in metric_labels(report).items():
        if key not in report.before.metrics:
            continue
        b = report.before.metrics[key]
        row = f"<tr><td>{html.escape(label)}</td><td>{_fmt(b)}</td>"
        if after:
            a = after.metrics[key]
            cls = ""
            if key in _LOWER_IS_BETTER and abs(a - b) >= 5e-5:  # a visible change
                good = (a < b) == _LOWER_IS_BETTER[key]
                cls = ' class="better"' if good else ' class="worse"'
            row += f"<td>{_fmt(a)}</td><td{cls}>{_change(a, b)}</td>"
        rows.append(row + "</tr>")
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def _per_class_table(report: Report) -> str:
    b, a = report.before.per_class, report.after.per_class if report.after else None
    head = (
        "<tr><th>class</th><th>examples</th><th>frequency</th><th>mean p(class)</th>"
        "<th>recall</th><th>cross-entropy (nats)</th>"
    )
    head += "<th>cross-entropy after T</th>" if a else ""
    head += "<th>class-wise ECE</th></tr>"
    rows = []
    for i, name in enumerate(report.predictions.class_names):
        row = (
            f"<tr><td>{html.escape(name)}</td><td>{int(b['count'][i])}</td>"
            f"<td>{_fmt(b['frequency'][i])}</td><td>{_fmt(b['mean_probability'][i])}</td>"
            f"<td>{_fmt(b['recall'][i])}</td><td>{_fmt(b['cross_entropy'][i])}</td>"
        )
        if a:
            row += f"<td>{_fmt(a['cross_entropy'][i])}</td>"
        row += f"<td>{_fmt(b['ece'][i])}</td></tr>"
        rows.append(row)
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>"


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def render_html(report: Report, figures: dict[str, str], *, provenance: str = "") -> str:
    """The whole page as a string."""
    p = report.predictions
    n, k = p.values.shape
    notes = p.notes + report.notes
    temps = ""
    if report.temperatures:
        temps = (
            f"<p>Temperatures fitted on each half and applied to the other: "
            f"T = {report.temperatures[0]:.4f} and T = {report.temperatures[1]:.4f} "
            "(T &gt; 1 softens over-confident predictions).</p>"
        )
    d = report.decomposition
    decomposition = ""
    if d is not None:
        summary_loss = report.before.metrics["log_loss_nats"]
        why = "Unclipped log-loss"
        if f"{d.log_loss:.4f}" != f"{summary_loss:.4f}":
            why = (
                f"This log-loss is unclipped, hence {d.log_loss:.4f} here and {summary_loss:.4f} "
                f"in the summary, which clips each label's probability at the machine epsilon "
                f"as scikit-learn does ({report.before.clipped:,} of {n:,} examples clipped)"
            )
        decomposition = (
            "<h2>Where the log-loss comes from</h2>"
            f"<p>Log-loss {d.log_loss:.4f} nats = calibration {d.calibration:.4f} + refinement "
            f"{d.refinement:.4f}. The calibration part is what the best single temperature "
            f"(T* = {d.temperature:.4f}, fitted on all examples) removes; the refinement is what "
            "is left: the loss of the recalibrated forecast, an upper bound on the entropy no "
            f"recalibration can remove. {why}; in-sample.</p>"
        )
    bins = (
        f"{report.n_bins} equal-width bins of the confidence"
        if report.binning == "uniform"
        else f"{report.n_bins} bins of the confidence holding equal numbers of examples "
        f"(the class-wise ECE: {report.n_bins} equal-width bins)"
    )
    note_items = "".join(f"<li>{html.escape(x)}</li>" for x in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossent report: {html.escape(p.source)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Predictions report</h1>
<p class="muted">{html.escape(p.source)} · {n} examples · {k} classes · read as
{"probabilities" if p.kind == "probs" else "logits"} · made by crossent</p>
{f'<p class="muted">{html.escape(provenance)}</p>' if provenance else ""}
{f'<ul class="notes">{note_items}</ul>' if note_items else ""}
<h2>Summary</h2>
{_metrics_table(report)}
{temps}
<p class="muted">Calibration errors use {bins}, each bin
(lo, hi] (Guo et al. 2017, scikit-learn); the class-wise ECE averages the per-class errors.
Log-loss clips probabilities at the machine epsilon (scikit-learn's convention).</p>
{decomposition}
<h2>Reliability diagram</h2>
{_img(figures["reliability"], "reliability diagram")}
<h2>Confidence histogram</h2>
{_img(figures["confidence"], "confidence histogram")}
<h2>Per-example loss</h2>
{_img(figures["loss"], "per-example log-loss distribution")}
<h2>Per class</h2>
{_img(figures["per_class"], "per-class cross-entropy")}
<details open><summary>Per-class table</summary>
{_per_class_table(report)}
</details>
</body></html>
"""


def figures(report: Report) -> dict[str, str]:
    """All figures as base64 PNG strings."""
    return {
        "reliability": reliability_png(report),
        "confidence": confidence_png(report),
        "loss": loss_png(report),
        "per_class": per_class_png(report),
    }
