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

import json
import math
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from os import PathLike
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, overload

import numpy as np

import crossent as ce
from crossent import calibration as cal
from crossent.errors import UsageError
from crossent.files import save_figures

from ._load import Predictions, row_blocks

if TYPE_CHECKING:
    from ._compare import Comparison
    from ._multilabel import MultilabelReport

N_BINS = 15
# Bootstrap resamples by default (see the README for the trade-off and the measurements).
RESAMPLES = 200
CONFIDENCE_LEVEL = 0.95
# Which versions get bootstrap intervals: the predictions as given, or also the scaled ones.
INTERVALS = ("given", "both")
# The metrics with a bootstrap interval: the summary's (smooth ECE and AURC cost O(N) per
# resample each, so they get one too).
INTERVAL_METRICS = cal.METRICS
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
    brier_parts: cal.BrierDecomposition | None = None
    risk: cal.RiskCoverage | None = None
    smooth: cal.SmoothECE | None = None
    intervals: cal.BootstrapResult | None = None


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
    resamples: int = RESAMPLES
    intervals: str = "given"

    @overload
    @classmethod
    def from_arrays(
        cls,
        predictions: Mapping[str, Any],
        labels: Any,
        /,
        *,
        names: None = ...,
        kind: str = ...,
        class_names: Sequence[str] | None = ...,
        name: str = ...,
        seed: int = ...,
        n_bins: int = ...,
        binning: str = ...,
        resamples: int = ...,
        intervals: str = ...,
        weights: Any = ...,
        multilabel: bool | None = ...,
    ) -> Comparison: ...

    @overload
    @classmethod
    def from_arrays(
        cls,
        predictions: Sequence[Any],
        labels: Any,
        /,
        *,
        names: Sequence[str],
        kind: str = ...,
        class_names: Sequence[str] | None = ...,
        name: str = ...,
        seed: int = ...,
        n_bins: int = ...,
        binning: str = ...,
        resamples: int = ...,
        intervals: str = ...,
        weights: Any = ...,
        multilabel: bool | None = ...,
    ) -> Comparison: ...

    @overload
    @classmethod
    def from_arrays(
        cls,
        predictions: Any,
        labels: Any,
        /,
        *,
        names: None = ...,
        kind: str = ...,
        class_names: Sequence[str] | None = ...,
        name: str = ...,
        seed: int = ...,
        n_bins: int = ...,
        binning: str = ...,
        resamples: int = ...,
        intervals: str = ...,
        weights: Any = ...,
        multilabel: Literal[False] | None = ...,
    ) -> Report: ...

    @overload
    @classmethod
    def from_arrays(
        cls,
        predictions: Any,
        labels: Any,
        /,
        *,
        names: None = ...,
        kind: str = ...,
        class_names: Sequence[str] | None = ...,
        name: str = ...,
        seed: int = ...,
        n_bins: int = ...,
        binning: str = ...,
        resamples: int = ...,
        intervals: str = ...,
        weights: Any = ...,
        multilabel: Literal[True],
    ) -> MultilabelReport: ...

    @classmethod
    def from_arrays(
        cls,
        predictions: Any,
        labels: Any,
        /,
        *,
        kind: str = "auto",
        class_names: Sequence[str] | None = None,
        name: str = "arrays",
        names: Sequence[str] | None = None,
        seed: int = 0,
        n_bins: int = N_BINS,
        binning: str = "uniform",
        resamples: int = RESAMPLES,
        intervals: str = "given",
        weights: Any = None,
        multilabel: bool | None = None,
    ) -> Report | Comparison | MultilabelReport:
        """The report of predictions and labels held in memory (a notebook's entry).

        Parameters
        ----------
        predictions : array_like, or a dict of them
            Probabilities or logits, shape ``(N, K)`` (NumPy, or anything ``numpy.asarray``
            reads: a CPU tensor, a list); or ``(N,)``, one probability of class 1 per example
            (scikit-learn's ``predict_proba(X)[:, 1]``), a binary problem. Several models of
            the same labels: a dict ``{name: predictions}``, or a list with ``names``; then
            the result is a :class:`~crossent.report.Comparison`.
        labels : array_like
            Class indices, shape ``(N,)``; or class names (strings) of ``class_names``.
        kind : {"auto", "probs", "logits"}, default "auto"
            What the predictions are; "auto" decides from the values, as the command does.
        class_names : sequence of str, optional
            One name per class, in the order of the prediction columns (the per-class table;
            string labels are matched to them); default ``0 .. K-1``.
        name : str, default "arrays"
            What the page calls the predictions (one model).
        names : sequence of str, optional
            The names of several models given as a list.
        seed, n_bins, binning, resamples, intervals
            As :func:`crossent.report.write_report`.
        weights : array_like, optional
            Non-negative weight of each example, shape ``(N,)`` (scikit-learn's
            ``sample_weight``): every metric is weighted, ``sum w x / sum w``, the
            temperature fits too, and a bootstrap resample keeps each drawn example's weight.
            The AURC is left out (no weighted form).
        multilabel : bool, optional
            True: ``predictions`` are K independent probabilities (or logits) per example and
            ``labels`` an ``(N, K)`` array of 0/1; None (default) detects it (labels of the
            predictions' 2-D shape: the result is then a
            :class:`~crossent.report.MultilabelReport`, whose notes say so); False never.

        Returns
        -------
        Report or Comparison
            Show it in Jupyter (``_repr_html_``), or use :meth:`to_html`, :meth:`to_json`,
            :meth:`figure` and the ``plot_*`` methods.

        Raises
        ------
        crossent.errors.UsageError
            Predictions or labels that the command would refuse, with the same message.

        Examples
        --------
        >>> import numpy as np
        >>> from crossent.report import Report
        >>> rng = np.random.default_rng(0)
        >>> logits = 3 * rng.normal(size=(500, 4))
        >>> labels = rng.integers(0, 4, 500)
        >>> report = Report.from_arrays(logits, labels, kind="logits", resamples=0)
        >>> round(report.before.metrics["accuracy"], 3)
        0.264
        >>> both = Report.from_arrays({"T=1": logits, "T=2": logits / 2}, labels, resamples=0)
        >>> both.names
        ['T=1', 'T=2']
        >>> weighted = Report.from_arrays(logits, labels, weights=np.repeat([1.0, 2.0], 250),
        ...                               resamples=0)
        >>> round(weighted.before.metrics["accuracy"], 3)
        0.257
        """
        from . import _check_options
        from ._compare import compare
        from ._load import from_arrays

        _check_options(kind, n_bins, binning, resamples, intervals)
        cnames = None if class_names is None else [str(c) for c in class_names]
        if isinstance(predictions, Mapping):
            models = {str(key): value for key, value in predictions.items()}
        elif names is not None:
            models = dict(zip([str(x) for x in names], predictions, strict=True))
            if len(models) != len(names):
                raise UsageError("names must be distinct, one per model")
        else:
            models = {name: predictions}
        checked = []
        for key, value in models.items():
            values = np.asarray(value)
            if cnames is not None and values.ndim == 2 and len(cnames) != values.shape[1]:
                raise UsageError(
                    f"class_names has {len(cnames)} names for {values.shape[1]} classes "
                    "of predictions"
                )
            checked.append(
                from_arrays(
                    values,
                    labels,
                    kind=kind,
                    source=key,
                    class_names=cnames,
                    weights=weights,
                    multilabel=multilabel,
                )
            )
        options: dict[str, Any] = {
            "seed": seed, "n_bins": n_bins, "binning": binning, "resamples": resamples
        }  # fmt: skip
        if len(checked) == 1 and not isinstance(predictions, Mapping) and names is None:
            if checked[0].multilabel:
                from . import _multilabel

                return _multilabel.compute(
                    checked[0], n_bins=n_bins, binning=binning, resamples=resamples
                )
            return compute(checked[0], intervals=intervals, **options)
        if not checked:
            raise UsageError("no models given")
        return compare(list(models), checked, **options)

    def to_json(self) -> str:
        """The summary of ``crossent report --json``, as a JSON string."""
        from ._summary import to_json

        return json.dumps(to_json(self, None), indent=2)

    def to_html(self) -> str:
        """The self-contained HTML page (figures embedded)."""
        from . import _render

        return _render.render_html(self, _render.figures(self))

    def _repr_html_(self) -> str:
        return self.to_html()

    def figure(self, name: str) -> Any:
        """One of the page's figures as a matplotlib Figure (``savefig`` to SVG, PDF, PNG).

        ``name`` is one of "reliability", "confidence", "loss", "per_class", "risk_coverage".
        """
        from . import _render

        if name not in _render.FIGURES:
            raise ValueError(f"no figure {name!r}; the figures are {', '.join(_render.FIGURES)}")
        if name == "risk_coverage" and self.before.risk is None:
            raise ValueError("no risk-coverage figure: it is left out with per-example weights")
        return _render.FIGURES[name](self)

    def save_figures(self, folder: str | PathLike[str], /, *, format: str = "svg") -> list[Path]:
        """Write every figure to ``folder`` as ``<name>.<format>`` (svg, pdf or png); the
        risk-coverage figure is left out with per-example weights."""
        from . import _render

        skip = {"risk_coverage"} if self.before.risk is None else set()
        names = [name for name in _render.FIGURES if name not in skip]
        return save_figures(folder, self.figure, names, format)

    def _version(self, version: str) -> Scored:
        if version == "before":
            return self.before
        if version == "after" and self.after is not None:
            return self.after
        raise ValueError(
            f"version is 'before' or 'after' (when the temperature was fitted), not {version!r}"
        )

    def plot_reliability(self, ax: Any = None, *, version: str = "before") -> Any:
        """Draw the reliability diagram (bin counts above) on ``ax`` (a new one if None)."""
        from . import _render

        ax = ax if ax is not None else _render.new_axes()
        color = _render.BEFORE if version == "before" else _render.AFTER
        return _render.plot_reliability(ax, self._version(version), color=color)

    def plot_risk_coverage(self, ax: Any = None, *, version: str = "before") -> Any:
        """Draw the risk-coverage curve on ``ax`` (a new one if None) and return it."""
        from . import _render

        ax = ax if ax is not None else _render.new_axes()
        color = _render.BEFORE if version == "before" else _render.AFTER
        return _render.plot_risk_coverage(ax, self._version(version), color=color)

    def plot_per_class(self, ax: Any = None) -> Any:
        """Draw each class's mean log-loss, before and after scaling, on ``ax``; return it."""
        from . import _render

        return _render.plot_per_class(ax if ax is not None else _render.new_axes(), self)


METRIC_LABELS = {
    "log_loss_nats": "log-loss (nats)",
    "log_loss_bits": "log-loss (bits)",
    "perplexity": "perplexity",
    "accuracy": "accuracy",
    "top5_accuracy": "top-5 accuracy",
    "brier": "Brier score",
    "ece": "ECE (top-label, 15 bins)",
    "ece_classwise": "ECE (class-wise)",
    "ece_positive": "ECE of P(y = 1), binary",
    "mce": "MCE (max gap)",
    "rmsce": "RMS calibration error",
    "mean_confidence": "mean confidence",
    "entropy_nats": "mean entropy (nats)",
    "smooth_ece": "smooth ECE (top-label)",
    "aurc": "AURC (risk-coverage area)",
}


def metric_labels(report: Report) -> dict[str, str]:
    """:data:`METRIC_LABELS` with the report's bins in the ECE's name."""
    kind = "" if report.binning == "uniform" else "equal-mass "
    return {
        **METRIC_LABELS,
        "ece": f"ECE (top-label, {report.n_bins} {kind}bins)",
        "ece_positive": f"ECE of P(y = 1), binary ({report.n_bins} {kind}bins)",
    }


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
    weights: np.ndarray | None = None,
) -> Scored:
    """All metrics of the probabilities in ``blocks`` (row ranges covering ``labels``); with
    ``weights`` every mean is weighted (``sum w x / sum w``) and the AURC is left out."""
    n, k = len(labels), n_classes
    w = weights
    total = float(n) if w is None else float(w.sum())
    confidence = np.empty(n)
    correct = np.empty(n, dtype=bool)
    loss = np.empty(n)
    p1 = np.empty(n if k == 2 else 0)  # P(y = 1) of a binary problem
    brier = entropy = top5 = 0.0
    clipped = 0
    edges = counts = sums = hits = None
    brier_sums: cal.BrierSums | None = None
    for start, stop, p in blocks:
        y = labels[start:stop]
        wb = None if w is None else w[start:stop]
        rows = np.arange(stop - start)
        confidence[start:stop] = p.max(axis=1)
        if k == 2:
            p1[start:stop] = p[:, 1]
        # argmax (ties go to the first class), as the reliability diagram counts a hit
        correct[start:stop] = p.argmax(axis=1) == y
        eps = float(np.finfo(p.dtype).eps)
        p_y = p[rows, y]
        loss[start:stop] = -np.log(np.clip(p_y, eps, 1 - eps))
        clipped += int((p_y < eps).sum())
        if edges is None:
            edges = cal.bin_edges(p[:1, 0], n_bins=n_bins)  # equal-width: the class-wise bins
        mass = float(len(y)) if wb is None else float(wb.sum())
        if mass == 0:  # a block of weight 0 adds nothing to any sum
            continue
        brier += float(cal.brier_score(p, y, weights=wb)) * mass
        block_entropy = np.asarray(ce.entropy(p), dtype=np.float64)
        entropy += float(np.sum(block_entropy if wb is None else block_entropy * wb))
        if k > 5:
            top5 += float(cal.top_k_accuracy(p, y, k=5, weights=wb)) * mass
        stats = cal.bin_statistics(p, y, edges=edges, weights=wb)
        counts = stats.counts if counts is None else counts + stats.counts
        sums = stats.sum_confidence if sums is None else sums + stats.sum_confidence
        hits = stats.sum_hits if hits is None else hits + stats.sum_hits
        # Murphy's terms per (class, bin) in the same equal-width bins: sums over blocks add up
        parts = cal.brier_sums(p, y, n_bins=n_bins, weights=wb)
        brier_sums = parts if brier_sums is None else brier_sums + parts
    assert edges is not None and brier_sums is not None  # there are at least two examples
    classwise = cal.BinStatistics(np.broadcast_to(edges, (k, n_bins + 1)), counts, sums, hits)
    top = cal.bin_statistics(
        confidence,
        correct,
        edges=cal.bin_edges(confidence, n_bins=n_bins, binning=binning),
        weights=w,
    )
    nats = float(np.average(loss, weights=w))
    metrics = {
        "log_loss_nats": nats,
        "log_loss_bits": nats / LN2,
        "perplexity": math.exp(nats),
        "brier": brier / total,
        "ece": float(top.calibration_error()),
        "ece_classwise": float(classwise.calibration_error()),
        "mce": float(top.calibration_error(norm="max")),
        "rmsce": float(top.calibration_error(norm="l2")),
        "mean_confidence": float(np.average(confidence, weights=w)),
        "entropy_nats": entropy / total,
        "accuracy": float(np.average(correct, weights=w)),
    }
    smooth = cal.smooth_ece_from_summaries(confidence, correct, weights=w)
    metrics["smooth_ece"] = smooth.value
    risk = None
    if w is None:  # the AURC's closed form counts whole examples
        risk = cal.risk_coverage_from_summaries(confidence, correct)
        metrics["aurc"] = risk.aurc
    if k > 5:
        metrics["top5_accuracy"] = top5 / total
    count = np.bincount(labels, minlength=k)
    mass_of = np.bincount(labels, weights=w, minlength=k)  # each class's weight
    safe = np.where(mass_of > 0, mass_of, 1.0)
    right = np.bincount(labels[correct], weights=None if w is None else w[correct], minlength=k)
    per_class = {
        "count": count.astype(float).tolist(),
        "frequency": (mass_of / total).tolist(),
        "mean_probability": (np.asarray(sums).sum(axis=1) / total).tolist(),
        "recall": np.where(mass_of > 0, right / safe, np.nan).astype(float).tolist(),
        "cross_entropy": np.where(
            mass_of > 0,
            np.bincount(labels, weights=loss if w is None else loss * w, minlength=k) / safe,
            np.nan,
        ).tolist(),
        "ece": np.asarray(classwise.calibration_error(average=False)).tolist(),
    }
    curve = top.reliability_curve()
    if k == 2:
        # A binary problem is shown as binary: the reliability of P(y = 1), not of the top label.
        positive = cal.bin_statistics(
            p1, labels == 1, edges=cal.bin_edges(p1, n_bins=n_bins, binning=binning), weights=w
        )
        metrics["ece_positive"] = float(positive.calibration_error())
        curve = positive.reliability_curve()
    brier_parts = brier_sums.decomposition()
    return Scored(
        confidence, correct, loss, metrics, per_class, curve, clipped, brier_parts, risk, smooth
    )


def _fits(
    predictions: Predictions, seed: int, notes: list[str]
) -> tuple[list[float], np.ndarray | None, cal.LogLossDecomposition | None]:
    """The temperature of all examples (the decomposition), then of each half, cross-fitted.

    The examples are shuffled with ``seed`` and split in two halves; the temperature fitted on
    one half scales the other, so every example is scored with a temperature that never saw
    it. Returns both temperatures, each example's, and the decomposition.
    """
    values, labels, kind = predictions.values, predictions.labels, predictions.kind
    w = predictions.weights
    n = len(labels)
    try:
        decomposition = cal.log_loss_decomposition(values, labels, kind=kind, weights=w)
    except ValueError as error:
        notes.append(f"temperature scaling skipped: {error}")
        return [], None, None
    first = np.zeros(n, dtype=bool)
    first[np.random.default_rng(seed).permutation(n)[: n // 2]] = True
    temperatures: list[float] = []
    for i, half in enumerate((first, ~first)):
        try:
            weights = half if w is None else half * w
            temperatures.append(cal.fit_temperature(values, labels, kind=kind, weights=weights))
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


def _held(values: Any, kind: str, temperature: np.ndarray | None, out: np.ndarray | None) -> Any:
    """The probabilities of ``values`` whole, for the bootstrap (it needs the N x K matrix).

    Probabilities already in memory are used as they are; otherwise they are written a block
    at a time into ``out`` (reused between the two versions: one N x K buffer in all).
    """
    if kind == "probs" and temperature is None and isinstance(values, np.ndarray):
        return values
    if out is None:
        out = np.empty(values.shape, dtype=values.dtype)
    for start, stop, p in _probabilities(values, kind, temperature):
        out[start:stop] = p
    return out


def bootstrap(
    probs: Sequence[np.ndarray],
    labels: np.ndarray,
    metrics: Sequence[str],
    *,
    resamples: int,
    seed: int,
    n_bins: int,
    binning: str,
    weights: np.ndarray | None = None,
) -> cal.BootstrapResult:
    """Intervals of one model's ``metrics`` (one array in ``probs``), or of the paired difference
    of two models (two arrays: :func:`crossent.calibration.bootstrap_difference`), in the
    report's bins: the class-wise ECE keeps equal-width bins whatever ``binning`` (the same
    seed draws the same resamples, so both calls pair up)."""
    fn: Any = cal.bootstrap_intervals if len(probs) == 1 else cal.bootstrap_difference
    options: dict[str, Any] = {
        "n_resamples": resamples,
        "confidence_level": CONFIDENCE_LEVEL,
        "seed": seed,
        "n_bins": n_bins,
        "weights": weights,
    }
    names = [m for m in metrics if m in INTERVAL_METRICS]
    if binning == "uniform" or "ece_classwise" not in names:
        return fn(*probs, labels, metrics=names, binning=binning, **options)
    top = [m for m in names if m != "ece_classwise"]
    result = fn(*probs, labels, metrics=top, binning=binning, **options)
    classwise = fn(*probs, labels, metrics=["ece_classwise"], **options)
    return cal.BootstrapResult(
        {**result.intervals, **classwise.intervals},
        {**result.replicates, **classwise.replicates},
        result.confidence_level,
        resamples,
    )


def bias_notes(version: str, scored: Scored) -> list[str]:
    """A line for each interval that misses its estimate, and why (the bootstrap's bias)."""
    if scored.intervals is None:
        return []
    notes = []
    for name, ci in scored.intervals.intervals.items():
        if ci.low <= ci.estimate <= ci.high:
            continue
        side = "above" if ci.low > ci.estimate else "below"
        notes.append(
            f"{version}: the interval of {METRIC_LABELS[name]} [{ci.low:.4f}, {ci.high:.4f}] "
            f"lies {side} the estimate {ci.estimate:.4f}: the metric is biased on resamples "
            f"(bootstrap bias {ci.bias:+.4f}: a resample's noise adds to the calibration gaps), "
            "so read the interval as its spread, not its location"
        )
    return notes


def compute(
    predictions: Predictions,
    *,
    seed: int = 0,
    n_bins: int = N_BINS,
    binning: str = "uniform",
    resamples: int = RESAMPLES,
    intervals: str = "given",
    step: Callable[[str], Any] | None = None,
) -> Report:
    """Score the predictions, cross-fit a temperature on two halves and score again.

    ``n_bins`` and ``binning`` are the top-label bins (ECE, MCE, RMSCE, reliability diagram);
    the class-wise ECE uses ``n_bins`` equal-width bins (equal-mass bins of every class would
    need all N x K probabilities sorted). With ``resamples`` > 0 the summary of the predictions
    as given (``intervals="given"``) or of both versions (``"both"``: twice the bootstrap's
    time) gets percentile bootstrap intervals (seeded with ``seed``), which need the
    probabilities whole: one N x K array more (the input's own, for probabilities already in
    memory).
    """
    step = step or (lambda _: None)
    values, labels, kind = predictions.values, predictions.labels, predictions.kind
    k = int(values.shape[1])
    w = predictions.weights
    options: dict[str, Any] = {"n_classes": k, "n_bins": n_bins, "binning": binning, "weights": w}
    boot: dict[str, Any] = {
        "resamples": resamples,
        "seed": seed,
        "n_bins": n_bins,
        "binning": binning,
        "weights": w,
    }
    step("scoring the predictions")
    held = None
    if resamples:
        held = _held(values, kind, None, None)
        before = score(row_blocks(held), labels, **options)
        step("bootstrap intervals")
        before.intervals = bootstrap([held], labels, list(before.metrics), **boot)
    else:
        before = score(_probabilities(values, kind), labels, **options)
    step("fitting the temperature on each half")
    notes: list[str] = []
    temperatures, per_example, decomposition = _fits(predictions, seed, notes)
    step("scoring after temperature scaling")
    after = None
    if per_example is not None:
        if resamples and intervals == "both":
            buffer = None if held is values else held
            held = _held(values, kind, per_example, buffer)
            after = score(row_blocks(held), labels, **options)
            after.intervals = bootstrap([held], labels, list(after.metrics), **boot)
        else:
            after = score(_probabilities(values, kind, per_example), labels, **options)
    del held
    notes += bias_notes("as given", before)
    if after is not None:
        notes += bias_notes("temperature-scaled", after)
    return Report(
        predictions,
        before,
        after,
        temperatures,
        decomposition,
        notes,
        n_bins,
        binning,
        resamples,
        intervals,
    )
