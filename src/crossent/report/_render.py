"""The self-contained HTML page of ``crossent report``: figures embedded as base64 PNG, no network.

Figures are drawn on :class:`matplotlib.figure.Figure` objects directly (no pyplot), so nothing
global changes in the process and no display is needed.
"""

from __future__ import annotations

import base64
import html
import math
from typing import Any

import numpy as np

from crossent.files import figure_bytes

from ._compute import Report, Scored, metric_labels

CLASS_ROWS = 20  # rows of the per-class table on the page; the JSON has every class
BEFORE = "#c0392b"
AFTER = "#2471a3"


def _png(fig: Any) -> str:
    data = figure_bytes(fig, format="png", dpi=96, bbox_inches="tight")
    return base64.b64encode(data).decode("ascii")


def literal(text: str) -> str:
    """User text (a class or file name) as matplotlib draws it literally: a ``$`` would start
    mathtext (``$\\frac{$`` fails to parse, ``$x$`` is drawn as math), so it is escaped."""
    return text.replace("$", r"\$")


def _figure(width: float, height: float, ncols: int = 1) -> tuple[Any, Any]:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), layout="constrained")
    axes = fig.subplots(1, ncols)
    return fig, axes


def new_axes() -> Any:
    """Axes on a new Figure of the report's size (no pyplot: nothing global changes)."""
    return _figure(5.5, 4.2)[1]


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


def _versions(report: Report) -> list[tuple[str, Scored, str]]:
    versions = [("as given", report.before, BEFORE)]
    if report.after is not None:
        versions.append(("after temperature scaling", report.after, AFTER))
    return versions


def plot_reliability(ax: Any, scored: Scored, *, color: str = BEFORE, counts: bool = True) -> Any:
    """Draw one version's reliability diagram on the matplotlib axes ``ax`` and return it.

    Bars: the accuracy in each confidence bin; hatched: the gap to the bin's mean confidence;
    dashed: perfect calibration. ``counts`` writes each bin's number of examples above it.
    """
    binary = "ece_positive" in scored.metrics  # the curve is of P(y = 1)
    return plot_curve(
        ax,
        scored.curve,
        color=color,
        counts=counts,
        xlabel="predicted P(y = 1)" if binary else "confidence (top-label probability)",
        ylabel="frequency of y = 1" if binary else "accuracy",
    )


def plot_curve(ax: Any, curve: Any, *, color: str, counts: bool, xlabel: str, ylabel: str) -> Any:
    """Draw a :class:`~crossent.calibration.ReliabilityCurve` (the bars of
    :func:`plot_reliability`) on ``ax`` and return it."""
    edges = np.asarray(curve.edges)
    lo, hi = edges[:-1], edges[1:]
    acc = np.nan_to_num(np.asarray(curve.accuracy))
    conf = np.asarray(curve.confidence)
    n_in = np.asarray(curve.counts)
    filled = n_in > 0
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
        [0, 1], [0, 1], color="#333333", linestyle="--", linewidth=1, label="perfect calibration"
    )
    if counts and len(lo) <= 40:  # more labels than that overlap
        # a row of counts above the data, one per filled bin
        for x, count in zip((lo + hi) / 2, n_in, strict=True):
            if count:
                ax.text(
                    x, 1.015, f"{int(count):,}", rotation=90, ha="center", va="bottom",
                    fontsize=6, color="#444444",
                )  # fmt: skip
    ax.set(xlim=(0, 1), ylim=(0, 1.16 if counts else 1), xlabel=xlabel, ylabel=ylabel)
    return ax


def plot_risk_coverage(ax: Any, scored: Scored, *, color: str = BEFORE, label: str = "") -> Any:
    """Draw the risk-coverage curve (error rate of the most confident examples kept) on ``ax``."""
    risk = scored.risk
    if risk is None:
        raise ValueError("no risk-coverage curve: it is left out with per-example weights")
    name = f"{label}: " if label else ""
    ax.step(
        risk.coverage,
        risk.risk,
        where="post",
        color=color,
        linewidth=1.5,
        label=f"{name}AURC {risk.aurc:.4f} (optimal {risk.optimal_aurc:.4f})",
    )
    ax.set(xlim=(0, 1), ylim=(0, None), xlabel="coverage", ylabel="risk (error rate)")
    return ax


def reliability_figure(report: Report) -> Any:
    """Reliability diagrams (accuracy against confidence per bin), as given and scaled."""
    versions = _versions(report)
    fig, axes = _figure(5.0 * len(versions), 4.6, len(versions))
    axes = np.atleast_1d(axes)
    for ax, (title, scored, color) in zip(axes, versions, strict=True):
        plot_reliability(ax, scored, color=color)
        ece = scored.metrics.get("ece_positive", scored.metrics["ece"])
        ax.set_title(f"{title}: ECE {ece:.2%}")
    _legend(fig, axes[0])
    return fig


def risk_coverage_figure(report: Report) -> Any:
    """The risk-coverage curves of both versions on one small figure."""
    fig, ax = _figure(5.5, 3.4)
    for title, scored, color in _versions(report):
        plot_risk_coverage(ax, scored, color=color, label=title)
    _legend(fig, ax)
    return fig


def confidence_figure(report: Report) -> Any:
    """Histogram of the top-label confidence, with the accuracy and the mean confidence."""
    fig, ax = _figure(6.5, 3.6)
    bins = np.linspace(0, 1, 2 * report.n_bins + 1)
    versions = _versions(report)
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
    return fig


def loss_figure(report: Report) -> Any:
    """Distribution of the per-example log-loss (log-spaced bins: it spans many decades)."""
    fig, ax = _figure(6.5, 3.6)
    versions = _versions(report)
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
    return fig


def per_class_figure(report: Report) -> Any:
    """Cross-entropy of each class's examples, as given and scaled."""
    k = len(report.predictions.class_names)
    fig, ax = _figure(max(6.5, min(16.0, 0.18 * k + 3)), 3.4)
    plot_per_class(ax, report)
    _legend(fig, ax)
    return fig


def plot_per_class(ax: Any, report: Report) -> Any:
    """Draw each class's mean log-loss, as given and scaled, on ``ax`` and return it."""
    k = len(report.predictions.class_names)
    x = np.arange(k)
    versions = _versions(report)
    if k > 50:  # one outline per version: thousands of bars are slow to draw and unreadable
        for title, scored, color in versions:
            ce_of = np.nan_to_num(np.asarray(scored.per_class["cross_entropy"], dtype=float))
            ax.stairs(ce_of, np.arange(k + 1) - 0.5, color=color, label=title, linewidth=0.8)
    else:
        width = 0.8 / len(versions)
        for i, (title, scored, color) in enumerate(versions):
            offset = (i - (len(versions) - 1) / 2) * width
            ce_of = scored.per_class["cross_entropy"]
            ax.bar(x + offset, ce_of, width=width, color=color, label=title)
    ax.set(xlabel="class", ylabel="mean log-loss (nats)", xlim=(-1, k))
    if k <= 20:
        ax.set_xticks(x, [literal(name) for name in report.predictions.class_names])
    return ax


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
td.ci { color: #666; font-size: 0.8rem; }
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
    "smooth_ece": True,
    "aurc": True,
}


def _fmt(x: float | None, digits: int = 4) -> str:
    if x is None or not math.isfinite(x):
        return "n/a"
    return f"{x:.{digits}f}"


def _change(a: float, b: float) -> str:
    """``a - b`` to 4 decimals with its sign; a change that rounds to zero has none."""
    text = f"{a - b:+.4f}"
    return "0.0000" if text in ("+0.0000", "-0.0000") else text


def _interval(scored: Scored, key: str) -> str:
    """The cell of a metric's bootstrap interval, empty without one."""
    if scored.intervals is None or key not in scored.intervals.intervals:
        return ""
    ci = scored.intervals[key]
    return f'<td class="ci">[{_fmt(ci.low)}, {_fmt(ci.high)}]</td>'


def _metrics_table(report: Report) -> str:
    after = report.after
    ci = report.before.intervals is not None
    level = f"{report.before.intervals.confidence_level:.0%} CI" if ci else ""  # type: ignore[union-attr]
    head = "<tr><th>metric</th><th>as given</th>" + (f"<th>{level}</th>" if ci else "")
    if after:
        head += "<th>temperature-scaled (cross-fitted)</th>"
        head += f"<th>{level}</th>" if ci else ""
        head += "<th>change</th>"
    rows = []
    for key, label in metric_labels(report).items():
        if key not in report.before.metrics:
            continue
        b = report.before.metrics[key]
        row = f"<tr><td>{html.escape(label)}</td><td>{_fmt(b)}</td>"
        row += _interval(report.before, key) if ci else ""
        if after:
            a = after.metrics[key]
            cls = ""
            if key in _LOWER_IS_BETTER and abs(a - b) >= 5e-5:  # a visible change
                good = (a < b) == _LOWER_IS_BETTER[key]
                cls = ' class="better"' if good else ' class="worse"'
            row += f"<td>{_fmt(a)}</td>"
            row += (_interval(after, key) or "<td></td>") if ci else ""
            row += f"<td{cls}>{_change(a, b)}</td>"
        rows.append(row + "</tr>")
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def worst_first(ece: list[float], what: str, metric: str) -> tuple[list[int], str]:
    """The rows to show (every one up to :data:`CLASS_ROWS`; beyond, the largest ``ece``
    first) and the paragraph that summarizes the rest ("" when every row is shown)."""
    k = len(ece)
    if k <= CLASS_ROWS:
        return list(range(k)), ""
    values = np.asarray(ece, dtype=float)
    order = np.argsort(-np.nan_to_num(values, nan=-1.0), kind="stable")
    others = values[order[CLASS_ROWS:]]
    others = others[np.isfinite(others)]
    rest = (
        f'<p class="muted">The {CLASS_ROWS} {what} of largest {metric}, worst first; '
        f"the other {k - CLASS_ROWS:,} {what} have {metric} "
        f"{_fmt(float(np.median(others)) if len(others) else None)} (median), "
        f"{_fmt(float(np.max(others)) if len(others) else None)} at most. Every one is in "
        "the JSON (<code>crossent report --json</code>, "
        "<code>Report.to_json()</code>).</p>"
    )
    return [int(i) for i in order[:CLASS_ROWS]], rest


def _per_class_table(report: Report) -> str:
    """Every class up to :data:`CLASS_ROWS`; beyond, the worst classes by class-wise ECE (as
    given) and a line summarizing the rest (the full table is in the JSON)."""
    b, a = report.before.per_class, report.after.per_class if report.after else None
    shown, rest = worst_first(b["ece"], "classes", "class-wise ECE")
    head = (
        "<tr><th>class</th><th>examples</th><th>frequency</th><th>mean p(class)</th>"
        "<th>recall</th><th>cross-entropy (nats)</th>"
    )
    head += "<th>cross-entropy after T</th>" if a else ""
    head += "<th>class-wise ECE</th></tr>"
    rows = []
    for i in shown:
        name = report.predictions.class_names[i]
        row = (
            f"<tr><td>{html.escape(name)}</td><td>{int(b['count'][i])}</td>"
            f"<td>{_fmt(b['frequency'][i])}</td><td>{_fmt(b['mean_probability'][i])}</td>"
            f"<td>{_fmt(b['recall'][i])}</td><td>{_fmt(b['cross_entropy'][i])}</td>"
        )
        if a:
            row += f"<td>{_fmt(a['cross_entropy'][i])}</td>"
        row += f"<td>{_fmt(b['ece'][i])}</td></tr>"
        rows.append(row)
    return f"<table><thead>{head}</thead><tbody>{''.join(rows)}</tbody></table>{rest}"


def _bootstrap_text(report: Report) -> str:
    result = report.before.intervals
    if result is None:
        return '<p class="muted">No bootstrap intervals (--resamples 0).</p>'
    return (
        f'<p class="muted">Intervals: {result.confidence_level:.0%} percentile bootstrap over '
        f"{result.n_resamples:,} resamples of the {len(report.predictions.labels):,} examples "
        "(seeded; the examples taken as independent draws). They show the noise of this test "
        "set's size, not of the model's training.</p>"
    )


def _brier_section(report: Report) -> str:
    rows = []
    for title, scored, _ in _versions(report):
        d = scored.brier_parts
        if d is None:
            continue
        total = d.reliability - d.resolution + d.uncertainty
        rows.append(
            f"<tr><td>{title}</td><td>{_fmt(d.brier)}</td><td>{_fmt(d.reliability)}</td>"
            f"<td>{_fmt(d.resolution)}</td><td>{_fmt(d.uncertainty)}</td>"
            f"<td>{_fmt(d.within_bin_variance - d.within_bin_covariance)}</td>"
            f"<td>{_fmt(total)}</td></tr>"
        )
    if not rows:
        return ""
    return (
        "<h2>Brier score decomposition</h2>"
        "<p>Brier = reliability &minus; resolution + uncertainty + within-bin terms "
        f"(Murphy 1973, over the {report.n_bins} equal-width bins of each class; the "
        "within-bin terms, Stephenson et al. 2008, vanish when each bin holds one forecast "
        "value). Reliability is the calibration part (lower is better), resolution how far "
        "the bins' outcome rates move from the base rates (higher is better).</p>"
        "<table><thead><tr><th>version</th><th>Brier</th><th>reliability</th>"
        "<th>resolution</th><th>uncertainty</th><th>within-bin</th>"
        "<th>rel &minus; res + unc</th></tr></thead>"
        f"<tbody>{''.join(rows)}</tbody></table>"
    )


def _img(png: str, alt: str) -> str:
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{png}">'


def risk_section(png: str | None) -> str:
    """The risk-coverage section (a sentence when the curve was left out: weights)."""
    if png is None:
        return (
            '<h2>Risk-coverage</h2><p class="muted">Left out: the examples are weighted, and '
            "the AURC's closed form counts whole examples.</p>"
        )
    return f"""<h2>Risk-coverage</h2>
{_img(png, "risk-coverage curve")}
<p class="muted">Predicting only on the most confident examples: the error rate (risk) of those
kept against the fraction kept (coverage). AURC is the area under the curve, the mean risk
over coverages (lower is better); the optimal AURC is that of a confidence ranking every right
prediction above every error (Geifman et al. 2019).</p>"""


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
    classes = "binary (the reliability diagram is of P(y = 1))" if k == 2 else f"{k} classes"
    note_items = "".join(f"<li>{html.escape(x)}</li>" for x in notes)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossent report: {html.escape(p.source)}</title>
<style>{_CSS}</style></head>
<body>
<h1>Predictions report</h1>
<p class="muted">{html.escape(p.source)} · {n} examples · {classes} · read as
{"probabilities" if p.kind == "probs" else "logits"} · made by crossent</p>
{f'<p class="muted">{html.escape(provenance)}</p>' if provenance else ""}
{f'<ul class="notes">{note_items}</ul>' if note_items else ""}
<h2>Summary</h2>
{_metrics_table(report)}
{temps}
<p class="muted">Calibration errors use {bins}, each bin
(lo, hi] (Guo et al. 2017, scikit-learn); the class-wise ECE averages the per-class errors.
Log-loss clips probabilities at the machine epsilon (scikit-learn's convention).</p>
{_bootstrap_text(report)}
{decomposition}
{_brier_section(report)}
<h2>Reliability diagram</h2>
{_img(figures["reliability"], "reliability diagram")}
<p class="muted">The number above each bar is the bin's count of examples. The smooth ECE
(Błasiok &amp; Nakkiran 2023) needs no bins: it smooths the gaps with a Gaussian kernel of
bandwidth {report.before.smooth.bandwidth if report.before.smooth else float("nan"):.4f}
(as given).</p>
{risk_section(figures.get("risk_coverage"))}
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


FIGURES = {
    "reliability": reliability_figure,
    "confidence": confidence_figure,
    "loss": loss_figure,
    "per_class": per_class_figure,
    "risk_coverage": risk_coverage_figure,
}


def figures(report: Report) -> dict[str, str]:
    """All figures as base64 PNG strings (no risk-coverage curve with weights)."""
    return {
        name: _png(draw(report))
        for name, draw in FIGURES.items()
        if name != "risk_coverage" or report.before.risk is not None
    }
