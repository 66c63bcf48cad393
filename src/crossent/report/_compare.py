"""Several models' predictions of the same labels on one page: ``crossent report a.npz b.npz``.

Each model is scored as a report of its own (:func:`crossent.report._compute.compute`); the
difference of each metric against the first model gets a paired bootstrap interval
(:func:`crossent.calibration.bootstrap_difference`: both models scored on the same resamples),
on the predictions as given. Memory: the first model's probabilities and one other's at a time
(two N x K arrays) for the paired bootstrap.
"""

from __future__ import annotations

import html
import json
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from crossent import calibration as cal
from crossent.errors import UsageError

from ._compute import (
    CONFIDENCE_LEVEL,
    INTERVAL_METRICS,
    N_BINS,
    RESAMPLES,
    Report,
    _held,
    bootstrap,
    compute,
    metric_labels,
)
from ._load import Predictions
from ._render import (
    _CSS,
    _figure,
    _fmt,
    _img,
    _legend,
    _png,
    literal,
    new_axes,
    plot_risk_coverage,
    risk_section,
)

COLORS = ("#c0392b", "#2471a3", "#1e8449", "#7d3c98", "#d68910", "#17a589", "#566573")
FIGURES = ("reliability", "risk_coverage")


def check_same_labels(names: Sequence[str], models: Sequence[Predictions]) -> None:
    """Raise a one-line UsageError unless every model has the first one's labels and classes."""
    first, labels = names[0], models[0].labels
    k = int(models[0].values.shape[1])
    for name, p in zip(names, models, strict=True):
        if p.multilabel:
            raise UsageError(f"{name} is multi-label: comparing multi-label models is not built")
    for name, p in zip(names[1:], models[1:], strict=True):
        if len(p.labels) != len(labels):
            raise UsageError(
                f"{name} has {len(p.labels):,} examples but {first} has {len(labels):,}: "
                "a comparison needs predictions of the same examples"
            )
        if int(p.values.shape[1]) != k:
            raise UsageError(f"{name} has {p.values.shape[1]} classes but {first} has {k}")
        wa, wb = models[0].weights, p.weights
        same = wa is None and wb is None
        same = same or (wa is not None and wb is not None and np.array_equal(wa, wb))
        if not same:
            raise UsageError(
                f"the weights of {name} differ from those of {first}: a comparison weighs "
                "every model's examples alike"
            )
        differ = p.labels != labels
        if differ.any():
            i = int(np.argmax(differ))
            raise UsageError(
                f"the labels of {name} differ from those of {first} ({int(differ.sum()):,} "
                f"examples, the first at index {i}: {p.labels[i]} against {labels[i]})"
            )


@dataclass
class Comparison:
    """Several reports on the same labels and the paired bootstrap of each difference.

    ``differences[name]`` holds ``metric(name) - metric(first)`` on the predictions as given,
    with its interval (None without resamples); ``reports[0]`` is the reference model.
    """

    names: list[str]
    reports: list[Report]
    differences: dict[str, cal.BootstrapResult | None]

    def to_json(self) -> str:
        """The comparison of ``crossent report A B --json``: one entry per model."""
        return json.dumps(comparison_json(self, None), indent=2)

    def to_html(self) -> str:
        """The self-contained HTML page (figures embedded)."""
        weighted = self.reports[0].before.risk is None
        names = [n for n in FIGURES if not (weighted and n == "risk_coverage")]
        return render_comparison(self, {name: _png(self.figure(name)) for name in names})

    def _repr_html_(self) -> str:
        return self.to_html()

    def figure(self, name: str) -> Any:
        """ "reliability" (overlaid diagrams) or "risk_coverage", as a matplotlib Figure."""
        if name not in FIGURES:
            raise ValueError(f"no figure {name!r}; the figures are {', '.join(FIGURES)}")
        fig, ax = _figure(6.0, 4.6)
        if name == "reliability":
            plot_reliabilities(ax, self)
        else:
            for model, report, color in zip(self.names, self.reports, COLORS, strict=False):
                plot_risk_coverage(ax, report.before, color=color, label=literal(model))
        _legend(fig, ax)
        return fig

    def plot_reliability(self, ax: Any = None) -> Any:
        """Draw the models' reliability curves on one matplotlib ``ax`` and return it."""
        return plot_reliabilities(ax if ax is not None else new_axes(), self)


def plot_reliabilities(ax: Any, comparison: Comparison) -> Any:
    """Each model's reliability curve (accuracy against mean confidence per filled bin)."""
    binary = int(comparison.reports[0].predictions.values.shape[1]) == 2
    for model, report, color in zip(comparison.names, comparison.reports, COLORS, strict=False):
        curve = report.before.curve
        filled = np.asarray(curve.counts) > 0
        conf = np.asarray(curve.confidence)[filled]
        acc = np.asarray(curve.accuracy)[filled]
        ece = report.before.metrics["ece_positive" if binary else "ece"]
        label = f"{literal(model)} (ECE {ece:.2%})"
        ax.plot(conf, acc, marker="o", markersize=4, color=color, label=label)
    ax.plot([0, 1], [0, 1], color="#333333", linestyle="--", linewidth=1, label="perfect")
    what = ("predicted P(y = 1)", "frequency of y = 1") if binary else ("confidence", "accuracy")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel=what[0], ylabel=what[1])
    return ax


def compare(
    names: Sequence[str],
    models: Sequence[Predictions],
    *,
    seed: int = 0,
    n_bins: int = N_BINS,
    binning: str = "uniform",
    resamples: int = RESAMPLES,
    step: Callable[[str], Any] | None = None,
) -> Comparison:
    """Score every model and bootstrap each one's differences from the first (paired)."""
    step = step or (lambda _: None)
    check_same_labels(names, models)
    options: dict[str, Any] = {"seed": seed, "n_bins": n_bins, "binning": binning}
    reports = []
    for name, p in zip(names, models, strict=True):
        step(f"scoring {name}")
        reports.append(compute(p, resamples=resamples, **options))
    differences: dict[str, cal.BootstrapResult | None] = {name: None for name in names[1:]}
    if resamples:
        step("paired bootstrap of the differences")
        first = models[0]
        reference = _held(first.values, first.kind, None, None)
        metrics = [m for m in INTERVAL_METRICS if m in reports[0].before.metrics]
        for name, p in zip(names[1:], models[1:], strict=True):
            other = _held(p.values, p.kind, None, None)
            differences[name] = bootstrap(
                [reference, other],
                first.labels,
                metrics,
                resamples=resamples,
                weights=first.weights,
                **options,
            )
    return Comparison(list(names), reports, differences)


def comparison_json(comparison: Comparison, html_path: str | None) -> dict[str, Any]:
    """One entry per model (the single report's JSON, its name, its differences from the first)."""
    models = []
    for name, report in zip(comparison.names, comparison.reports, strict=True):
        from ._summary import to_json

        entry = {"name": name, **to_json(report, None)}
        diff = comparison.differences.get(name)
        entry["difference_from_first"] = (
            None
            if diff is None
            else {m: asdict(ci) for m, ci in diff.intervals.items() if np.isfinite(ci.estimate)}
        )
        models.append(entry)
    return {
        "reference": comparison.names[0],
        "confidence_level": CONFIDENCE_LEVEL if comparison.reports[0].resamples else None,
        "models": models,
        "html": html_path,
    }


def _table(comparison: Comparison) -> str:
    first = comparison.reports[0]
    head = "<tr><th>metric</th>"
    for i, name in enumerate(comparison.names):
        head += f"<th>{html.escape(name)}</th>"
        if i:
            head += f"<th>{html.escape(name)} &minus; {html.escape(comparison.names[0])}</th>"
    rows = []
    for key, label in metric_labels(first).items():
        if key not in first.before.metrics:
            continue
        row = f"<tr><td>{html.escape(label)}</td>"
        for i, (name, report) in enumerate(zip(comparison.names, comparison.reports, strict=True)):
            row += f"<td>{_fmt(report.before.metrics[key])}</td>"
            if not i:
                continue
            diff = comparison.differences.get(name)
            delta = report.before.metrics[key] - first.before.metrics[key]
            text, cls = f"{delta:+.4f}", ""
            if diff is not None and key in diff.intervals:
                ci = diff[key]
                text += f' <span class="ci">[{_fmt(ci.low)}, {_fmt(ci.high)}]</span>'
                if ci.low > 0 or ci.high < 0:  # the interval excludes no difference
                    cls = ' class="clear"'
            row += f"<td{cls}>{text}</td>"
        rows.append(row + "</tr>")
    after = "<tr><td>log-loss after temperature scaling (cross-fitted)</td>"
    for i, report in enumerate(comparison.reports):
        value = report.after.metrics["log_loss_nats"] if report.after else float("nan")
        after += f"<td>{_fmt(value)}</td>" + ("<td></td>" if i else "")
    rows.append(after + "</tr>")
    return f"<table><thead>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>"


def render_comparison(comparison: Comparison, figures: dict[str, str]) -> str:
    """The comparison page as a string."""
    first = comparison.reports[0]
    n, k = first.predictions.values.shape
    notes = "".join(
        f"<li>{html.escape(name)}: {html.escape(note)}</li>"
        for name, report in zip(comparison.names, comparison.reports, strict=True)
        for note in report.predictions.notes + report.notes
    )
    resamples = first.resamples
    intervals = (
        f"Each difference's {CONFIDENCE_LEVEL:.0%} interval is a paired percentile bootstrap "
        f"over {resamples:,} resamples: both models scored on the same resampled examples, so "
        "it holds only how differently they do on the same examples. A difference whose "
        "interval excludes 0 is in bold."
        if resamples
        else "No bootstrap intervals (--resamples 0)."
    )
    kind = "binary (the reliability of P(y = 1))" if k == 2 else f"{k} classes"
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>crossent report: {len(comparison.names)} models compared</title>
<style>{_CSS} td.clear {{ font-weight: bold; }}</style></head>
<body>
<h1>Comparing {len(comparison.names)} models</h1>
<p class="muted">{" · ".join(html.escape(x) for x in comparison.names)} · the same {n:,}
examples · {kind} · made by crossent</p>
{f'<ul class="notes">{notes}</ul>' if notes else ""}
<h2>Summary (predictions as given)</h2>
{_table(comparison)}
<p class="muted">{intervals}</p>
<h2>Reliability diagrams</h2>
{_img(figures["reliability"], "overlaid reliability diagrams")}
{risk_section(figures.get("risk_coverage"))}
</body></html>
"""
