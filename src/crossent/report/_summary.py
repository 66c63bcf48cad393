"""The machine-readable summary of a single-label report (``crossent report --json``)."""

from __future__ import annotations

import math
from dataclasses import asdict
from typing import Any

from ._compute import CONFIDENCE_LEVEL, Report, Scored
from ._multilabel import MultilabelReport, json_summary


def to_json(report: Report | MultilabelReport, html: str | None) -> dict[str, Any]:
    """The machine-readable summary (``--json``) of a report, single- or multi-label."""
    if isinstance(report, MultilabelReport):
        return json_summary(report, html)

    def clean(d: dict[str, Any]) -> dict[str, Any]:
        return {
            k: (v if not isinstance(v, float) or math.isfinite(v) else None) for k, v in d.items()
        }

    def per_class(s: Scored) -> dict[str, list[float | None]]:
        return {k: [x if math.isfinite(x) else None for x in v] for k, v in s.per_class.items()}

    def intervals(s: Scored) -> dict[str, dict[str, float]] | None:
        if s.intervals is None:
            return None
        return {name: clean(asdict(ci)) for name, ci in s.intervals.intervals.items()}

    def parts(s: Scored) -> dict[str, float] | None:
        return None if s.brier_parts is None else clean(asdict(s.brier_parts))

    def risk(s: Scored) -> dict[str, float] | None:
        r = s.risk
        if r is None:
            return None
        return {"aurc": r.aurc, "optimal_aurc": r.optimal_aurc, "excess_aurc": r.excess_aurc}

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
        "binary": int(p.values.shape[1]) == 2,
        "weighted": p.weights is not None,
        "total_weight": None if p.weights is None else float(p.weights.sum()),
        "resamples": report.resamples,
        "intervals": report.intervals if report.resamples else None,
        "confidence_level": CONFIDENCE_LEVEL if report.resamples else None,
        "before": clean(report.before.metrics),
        "intervals_before": intervals(report.before),
        "intervals_after": intervals(report.after) if report.after else None,
        "brier_decomposition_before": parts(report.before),
        "brier_decomposition_after": parts(report.after) if report.after else None,
        "risk_coverage_before": risk(report.before),
        "risk_coverage_after": risk(report.after) if report.after else None,
        "smooth_ece_bandwidth": report.before.smooth.bandwidth if report.before.smooth else None,
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
