r"""Bootstrap confidence intervals of the summary metrics, and of their difference between models.

A resample of the N examples drawn with replacement is a vector of counts :math:`w` (how many
times each example was drawn; they sum to N), and every metric is a function of weighted sums
:math:`\sum_i w_i x_i` of per-example quantities, computed once:

* the means (log-loss, accuracy, top-5 accuracy, Brier score, confidence, entropy): one
  ``(R, N) x (N, columns)`` product for a chunk of R resamples;
* the top-label ECE, MCE and RMSCE: per-bin sums of 1, :math:`c_i` and :math:`[\text{hit}_i]`,
  two weighted bincounts a resample (the hits keyed apart, so that one gives the count and the
  hits; uniform bins are fixed; quantile edges are recomputed
  from the resample's sorted confidences, as the metric would compute them), turned into the
  errors by the one-shot formulas (:meth:`BinStatistics.calibration_error`);
* the class-wise ECE: per (class k, bin b) the weighted count, the sum of :math:`p_{ik}` and
  the hits :math:`\sum_i w_i [p_{ik} \in b][y_i = k]`, given to the same
  :meth:`BinStatistics.calibration_error`. The hits are one entry per example (the label's),
  and the count and sum are the few entries outside the first bin (at most B a row when rows
  sum to 1) plus, for the first bin, the column totals (N, and :math:`\sum_i w_i p_{ik}`)
  minus the other bins. The totals :math:`\sum_i w_i p_{ik}` are the one O(N K) part, and no
  cheaper exact route exists: each is a generic linear function of the N weights. They are one
  BLAS product of the chunk of resamples with the matrix;
* the smooth ECE and the AURC: weighted bincounts over fixed grid cells, and cumulative sums
  over the examples sorted once by confidence.

So no resample copies the ``(N, K)`` matrix. Resample r takes the indices
``rng.integers(0, N, size=N)``, drawn in order, so the same seed and N give the same resamples:
that is what pairs two models in :func:`bootstrap_difference`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .._information import entropy
from .._namespace import Array
from ._binning import BinStatistics, _check_binning_options
from ._scores import _nll_of_probs, expected_calibration_error
from ._smooth import _Smoother
from ._statistics import (
    _BLOCK_ENTRIES,
    _aurc,
    _BinRule,
    _ConfidenceGroups,
    _entry_bins,
    _harmonic,
    _numpy_probs,
    _outside_first_bin,
    _row_blocks,
)

METRICS = (
    "log_loss_nats",
    "log_loss_bits",
    "perplexity",
    "accuracy",
    "top5_accuracy",
    "brier",
    "ece",
    "ece_classwise",
    "mce",
    "rmsce",
    "mean_confidence",
    "entropy_nats",
    "smooth_ece",
    "aurc",
)

# The default: the metrics of ``crossent report``'s summary.
SUMMARY = METRICS[:-2]

# The weights of a chunk of resamples as float64 and as the data's dtype: about this many bytes.
_CHUNK_BYTES = 192 << 20

MAX_RESAMPLES = 100_000
"""Most bootstrap resamples: time and the replicates' memory grow linearly with it, and the
intervals' Monte Carlo error is already far below their width at 10,000."""


@dataclass(frozen=True)
class Interval:
    """A metric's value and its bootstrap confidence interval.

    Attributes
    ----------
    estimate : float
        The metric on the examples given.
    low, high : float
        The percentile interval: the ``(1 - level) / 2`` and ``(1 + level) / 2`` quantiles of
        the bootstrap replicates (NumPy's linear interpolation).
    standard_error : float
        The standard deviation of the replicates.
    bias : float
        The mean of the replicates minus the estimate: the bootstrap's estimate of the metric's
        bias (Efron & Tibshirani 1993, ch. 10). Binned calibration errors are biased upwards
        (the bins' sampling noise adds to their gaps), and where that bias is large against the
        spread, as for a class-wise ECE with few examples per class and bin, the percentile
        interval lies above the estimate.
    """

    estimate: float
    low: float
    high: float
    standard_error: float
    bias: float


@dataclass(frozen=True)
class BootstrapResult:
    """Bootstrap intervals of several metrics (see :func:`bootstrap_intervals`).

    Attributes
    ----------
    intervals : dict of str to Interval
        One interval per metric, in the order asked.
    replicates : dict of str to numpy.ndarray
        The metric on each resample, shape ``(n_resamples,)``.
    confidence_level : float
        The coverage the intervals aim at.
    n_resamples : int
        The number of resamples.
    """

    intervals: dict[str, Interval]
    replicates: dict[str, np.ndarray]
    confidence_level: float
    n_resamples: int

    def __getitem__(self, metric: str) -> Interval:
        if metric not in self.intervals:
            computed = list(self.intervals)
            raise KeyError(f"no interval for {metric!r}; these were computed: {computed}")
        return self.intervals[metric]


def bootstrap_intervals(
    probs: Array,
    labels: Array,
    /,
    *,
    metrics: Sequence[str] | None = None,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
    n_bins: int = 15,
    binning: str = "uniform",
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
    weights: Array | None = None,
    ignore_index: int | None = None,
) -> BootstrapResult:
    r"""Percentile bootstrap confidence intervals for the metrics of a prediction set.

    Draw ``n_resamples`` resamples of the N examples with replacement, compute each metric on
    each, and report the quantiles of those replicates:

    .. math::

        [\hat\theta^*_{(\alpha/2)},\ \hat\theta^*_{(1 - \alpha/2)}], \qquad
        \alpha = 1 - \text{confidence\_level}.

    The interval covers the sampling noise of a metric on a finite test set (the examples are
    taken as independent draws). A binned calibration error is biased upwards at small N (a
    calibrated model still shows an ECE above 0) and its replicates more so; each interval
    reports that bias (see :class:`Interval`).

    Each replicate equals the one-shot metric on the resampled rows, and none copies the
    ``(N, K)`` matrix (see the module notes). At 200,000 x 1,000 with 1,000 resamples the
    summary's metrics took 8 s on a shared 2-core machine, half of it the class-wise ECE (an
    O(N K) product per resample); the others cost O(N) per resample.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``, or ``(N,)`` for a binary class-1
        probability.
    labels : array
        Integer labels in [0, K).
    metrics : sequence of str, optional
        Which of ``log_loss_nats``, ``log_loss_bits``, ``perplexity``, ``accuracy``,
        ``top5_accuracy``, ``brier``, ``ece`` (top-label), ``ece_classwise``, ``mce``,
        ``rmsce``, ``mean_confidence``, ``entropy_nats``, ``smooth_ece``, ``aurc``: the names
        and definitions of ``crossent report``'s summary and of :func:`smooth_ece` and
        :func:`risk_coverage_curve`. Default: the summary's, all but the last two
        (``top5_accuracy`` only with more than 5 classes).
    n_resamples : int, default 1000
        Number of bootstrap resamples, from 2 to 100,000 (the time is linear in it).
    confidence_level : float, default 0.95
        Coverage of the intervals, in (0, 1).
    seed : int, numpy.random.Generator or None, default 0
        The resamples' source: a seed for ``numpy.random.default_rng``, a Generator (which is
        advanced), or None for fresh entropy.
    n_bins, binning, right_closed, ones_in_own_bin
        The bins of the ECE, class-wise ECE, MCE and RMSCE, as
        :func:`expected_calibration_error`. The class-wise ECE with quantile bins recomputes
        every class's edges on every resample, at O(N K log N) each: slow at scale.
    weights : array, optional
        Non-negative weight of each example (scikit-learn's ``sample_weight``): the metrics
        are weighted (as the one-shot functions' ``weights=``) and a resampled example keeps
        its weight (drawn twice, it counts twice its weight). Quantile edges stay those of the
        resampled examples, unweighted. ``aurc`` has no weighted form and is refused.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    BootstrapResult
        ``intervals`` (estimate, low, high, standard error and bias per metric) and
        ``replicates``.

    References
    ----------
    Efron, Tibshirani (1993), An Introduction to the Bootstrap, ch. 13 (percentile intervals).

    Examples
    --------
    >>> import numpy as np
    >>> import crossent.calibration as cal
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet(np.ones(3), size=500)
    >>> labels = np.array([rng.choice(3, p=p) for p in probs])  # calibrated by construction
    >>> result = cal.bootstrap_intervals(probs, labels, metrics=["accuracy", "brier"], seed=1)
    >>> ci = result["accuracy"]
    >>> print(round(ci.estimate, 3), round(ci.low, 3), round(ci.high, 3))
    0.626 0.584 0.67
    """
    rule = _BinRule(n_bins, binning, right_closed, ones_in_own_bin)
    (prepared,), rng, names = _setup(
        [probs], labels, metrics, n_resamples, confidence_level, seed, rule, weights, ignore_index
    )
    replicates = _resample([prepared], rng, n_resamples)[0]
    estimate = prepared.evaluate(np.ones((1, prepared.n)))
    return _result(names, estimate, replicates, confidence_level, n_resamples)


def bootstrap_difference(
    probs_a: Array,
    probs_b: Array,
    labels: Array,
    /,
    *,
    metrics: Sequence[str] | None = None,
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int | np.random.Generator | None = 0,
    n_bins: int = 15,
    binning: str = "uniform",
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
    weights: Array | None = None,
    ignore_index: int | None = None,
) -> BootstrapResult:
    r"""Paired bootstrap intervals of ``metric(b) - metric(a)`` for two models on the same labels.

    Both models are scored on the same resamples of the examples, so the interval of the
    difference reflects only how differently the two models do on the same examples, which is
    much narrower than the two separate intervals suggest when the models err on the same
    examples:

    .. math::

        \Delta^*_r = m(b;\, \text{resample } r) - m(a;\, \text{resample } r), \qquad
        [\Delta^*_{(\alpha/2)},\ \Delta^*_{(1 - \alpha/2)}].

    An interval that excludes 0 says that the difference is larger than the resampling noise
    of this test set (at the given level, for that one metric).

    Parameters
    ----------
    probs_a, probs_b : array
        The two models' probabilities for the same examples, the same shape ``(..., K)``.
    labels : array
        Integer labels in [0, K).
    metrics, n_resamples, confidence_level, seed, n_bins, binning, right_closed, ones_in_own_bin
    weights
        As :func:`bootstrap_intervals`.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    BootstrapResult
        Per metric, the estimate ``metric(b) - metric(a)`` on the examples given, its
        interval, and the replicates of the difference.

    Examples
    --------
    >>> import numpy as np
    >>> import crossent as ce
    >>> import crossent.calibration as cal
    >>> rng = np.random.default_rng(0)
    >>> logits = 3 * rng.normal(size=(2000, 4))
    >>> labels = np.array([rng.choice(4, p=p) for p in ce.softmax(logits)])
    >>> sharp = ce.softmax(2 * logits)  # overconfident: temperature 0.5
    >>> diff = cal.bootstrap_difference(ce.softmax(logits), sharp, labels, metrics=["ece"])
    >>> ci = diff["ece"]
    >>> print(ci.low > 0, round(ci.estimate, 2))
    True 0.09
    """
    rule = _BinRule(n_bins, binning, right_closed, ones_in_own_bin)
    prepared, rng, names = _setup(
        [probs_a, probs_b],
        labels,
        metrics,
        n_resamples,
        confidence_level,
        seed,
        rule,
        weights,
        ignore_index,
    )
    a, b = _resample(prepared, rng, n_resamples)
    ones = np.ones((1, prepared[0].n))
    estimate_a, estimate_b = (model.evaluate(ones) for model in prepared)
    difference = {name: b[name] - a[name] for name in names}
    estimate = {name: estimate_b[name] - estimate_a[name] for name in names}
    return _result(names, estimate, difference, confidence_level, n_resamples)


# ---------------------------------------------------------------- checks and the resampling


def _setup(
    probs: list[Array],
    labels: Array,
    metrics: Sequence[str] | None,
    n_resamples: int,
    confidence_level: float,
    seed: int | np.random.Generator | None,
    rule: _BinRule,
    weights: Array | None,
    ignore_index: int | None,
) -> tuple[list[_Model], np.random.Generator, list[str]]:
    _check_binning_options(
        rule.n_bins, rule.binning, "top_label", rule.right_closed, rule.ones_in_own_bin
    )
    if (
        isinstance(n_resamples, bool)
        or not isinstance(n_resamples, int)
        or not 2 <= n_resamples <= MAX_RESAMPLES
    ):
        raise ValueError(
            f"n_resamples must be an integer from 2 to {MAX_RESAMPLES:,}, got {n_resamples!r}"
        )
    if (
        isinstance(confidence_level, bool)
        or not isinstance(confidence_level, (int, float))
        or not 0 < confidence_level < 1
    ):
        raise ValueError(f"confidence_level must be a number in (0, 1), got {confidence_level!r}")
    rng = _generator(seed)
    shapes = [tuple(np.shape(p)) for p in probs]
    if len(set(shapes)) > 1:
        raise ValueError(
            f"probs_a and probs_b must have the same shape (the same examples and classes); "
            f"got {shapes[0]} and {shapes[1]}"
        )
    checked = [_numpy_probs(p, labels, weights=weights, ignore_index=ignore_index) for p in probs]
    names = _metric_names(metrics, checked[0][1].shape[1])
    sw = checked[0][3]
    if sw is not None and "aurc" in names:
        raise ValueError(
            "aurc has no weighted form here (its closed form counts whole examples); "
            "leave it out of metrics when giving weights"
        )
    return [_Model(xp, p, y, names, rule, sw) for xp, p, y, _ in checked], rng, names


def _generator(seed: int | np.random.Generator | None) -> np.random.Generator:
    if isinstance(seed, np.random.Generator):
        return seed
    if seed is None or (isinstance(seed, int) and not isinstance(seed, bool) and seed >= 0):
        return np.random.default_rng(seed)
    raise TypeError(
        f"seed must be a non-negative integer, a numpy.random.Generator or None, got {seed!r}"
    )


def _metric_names(metrics: Sequence[str] | None, k: int) -> list[str]:
    if metrics is None:
        return [m for m in SUMMARY if m != "top5_accuracy" or k > 5]
    if isinstance(metrics, str):
        raise TypeError(f"metrics must be a sequence of names, e.g. [{metrics!r}], not a string")
    names = list(dict.fromkeys(metrics))
    unknown = [m for m in names if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metric {unknown[0]!r}; the metrics are {METRICS}")
    if not names:
        raise ValueError(f"metrics is empty; name at least one of {METRICS}")
    return names


def _resample(
    models: list[_Model], rng: np.random.Generator, n_resamples: int
) -> list[dict[str, np.ndarray]]:
    """Every model's replicates on the same resamples, a chunk of resamples at a time."""
    n = models[0].n
    chunk = max(1, min(n_resamples, _CHUNK_BYTES // (12 * n)))
    parts: list[list[dict[str, np.ndarray]]] = [[] for _ in models]
    for start in range(0, n_resamples, chunk):
        size = min(chunk, n_resamples - start)
        weights = np.empty((size, n))
        for r in range(size):
            weights[r] = np.bincount(rng.integers(0, n, size=n), minlength=n)
        for model, part in zip(models, parts, strict=True):
            part.append(model.evaluate(weights))
    return [{name: np.concatenate([p[name] for p in part]) for name in part[0]} for part in parts]


def _result(
    names: list[str],
    estimate: dict[str, np.ndarray],
    replicates: dict[str, np.ndarray],
    confidence_level: float,
    n_resamples: int,
) -> BootstrapResult:
    tail = (1 - confidence_level) / 2
    intervals = {}
    for name in names:
        low, high = np.quantile(replicates[name], [tail, 1 - tail])
        value = float(estimate[name][0])
        intervals[name] = Interval(
            value,
            float(low),
            float(high),
            float(np.std(replicates[name], ddof=1)),
            float(np.mean(replicates[name])) - value,
        )
    return BootstrapResult(
        intervals, {m: replicates[m] for m in names}, float(confidence_level), n_resamples
    )


# ---------------------------------------------------------------- one model's summaries


class _Model:
    """Per-example summaries of one model, and every asked metric under resampling weights.

    ``evaluate(weights)`` takes weights of shape ``(R, N)`` (counts; all ones for the examples
    as given) and returns each metric's ``R`` values; an example's weight is its count times
    its ``sample_weight``.
    """

    def __init__(
        self,
        xp: Any,
        p: np.ndarray,
        y: np.ndarray,
        names: list[str],
        rule: _BinRule,
        sample_weight: np.ndarray | None = None,
    ) -> None:
        self.n, self.k = p.shape
        self.sample_weight = sample_weight
        self.names = set(names)
        self.p, self.y = p, y
        self.rule = rule
        need = self.names.__contains__
        conf = np.max(p, axis=1)  # the data's dtype: quantile edges must be computed in it
        hit = np.argmax(p, axis=1) == y
        columns: dict[str, np.ndarray] = {}
        if need("log_loss_nats") or need("log_loss_bits") or need("perplexity"):
            columns["nll"] = np.asarray(_nll_of_probs(xp, p, y, None))
        if need("accuracy"):
            columns["hit"] = hit
        if need("mean_confidence"):
            columns["conf"] = conf
        row_columns = (("brier", "brier"), ("entropy_nats", "entropy"), ("top5_accuracy", "top5"))
        wanted = [column for name, column in row_columns if need(name)]
        if wanted:
            columns.update(self._row_statistics(p, y, wanted))
        self.binned_top = need("ece") or need("mce") or need("rmsce")
        if self.binned_top:
            self.conf = conf
            self.conf64 = conf.astype(np.float64)
            self.hit_offset = np.where(hit, rule.slots, 0)
            if rule.binning == "uniform":
                self.top_edges = rule.edges(xp, conf[:, None])
                self.top_bins = _entry_bins(conf, 0, self.top_edges)
                self.top_keys = self.top_bins + self.hit_offset
            else:
                self.conf_order = np.argsort(conf, kind="stable")
                self.conf_sorted = conf[self.conf_order]
        self.layout = {name: i for i, name in enumerate(columns)}
        self.table = (
            np.stack([c.astype(np.float64) for c in columns.values()], axis=1) if columns else None
        )
        self.classwise = need("ece_classwise") and rule.binning == "uniform"
        if self.classwise:
            self._prepare_classwise(xp, p, y)
        if need("smooth_ece"):
            c64 = conf.astype(np.float64)
            self.smoother = _Smoother(c64, c64 - hit)
        if need("aurc"):
            self.groups = _ConfidenceGroups.of(conf, ~hit)
            self.harmonic = _harmonic(self.n)

    @staticmethod
    def _row_statistics(p: np.ndarray, y: np.ndarray, wanted: list[str]) -> dict[str, np.ndarray]:
        """Per example, in blocks of rows (one pass): Brier term, entropy, top-5 hit."""
        n = p.shape[0]
        out = {name: np.empty(n, dtype=bool if name == "top5" else np.float64) for name in wanted}
        for block in _row_blocks(*p.shape):
            q = p[block]
            q_y = q[np.arange(q.shape[0]), y[block]]
            if "brier" in out:
                # sum_k (p_k - [y = k])^2 = sum_k p_k^2 - 2 p_y + 1
                out["brier"][block] = np.einsum("ij,ij->i", q, q) - 2.0 * q_y + 1.0
            if "entropy" in out:
                out["entropy"][block] = entropy(q)
            if "top5" in out:
                # top-k accuracy's rule: fewer than k classes score strictly above the label
                out["top5"][block] = np.count_nonzero(q > q_y[:, None], axis=1) < 5
        return out

    def _prepare_classwise(self, xp: Any, p: np.ndarray, y: np.ndarray) -> None:
        edges = self.rule.edges(xp, p[:1])
        m = edges.rule.slots
        self.slots = m
        self.class_row = edges.statistics_row()
        label_value = p[np.arange(self.n), y]
        self.label_keys = y * m + _entry_bins(label_value, y, edges)
        rows, keys, values = [], [], []
        for _, r, cols, bins, v in _outside_first_bin(p, edges):
            rows.append(r)
            keys.append(cols * m + bins)
            values.append(v.astype(np.float64))
        self.upper_rows = np.concatenate(rows)
        self.upper_keys = np.concatenate(keys)
        self.upper_values = np.concatenate(values)
        # the upper entries' counts and the labels' hits from one bincount: the hits keyed
        # after the K m counts
        self.count_hit_rows = np.concatenate([self.upper_rows, np.arange(self.n)])
        self.count_hit_keys = np.concatenate([self.upper_keys, self.label_keys + self.k * m])

    def evaluate(self, counts: np.ndarray) -> dict[str, np.ndarray]:
        weights = counts if self.sample_weight is None else counts * self.sample_weight
        out: dict[str, np.ndarray] = {}
        need = self.names.__contains__
        # The means: one (R, N) x (N, columns) product.
        sums = weights @ self.table if self.table is not None else None
        if sums is not None:
            total = weights.sum(axis=1)
            means = {name: sums[:, i] / total for name, i in self.layout.items()}
            if "nll" in means:
                out["log_loss_nats"] = means["nll"]
                out["log_loss_bits"] = means["nll"] / math.log(2.0)
                out["perplexity"] = np.exp(means["nll"])
            for name, column in (
                ("accuracy", "hit"),
                ("mean_confidence", "conf"),
                ("brier", "brier"),
                ("entropy_nats", "entropy"),
                ("top5_accuracy", "top5"),
            ):
                if need(name):
                    out[name] = means[column]
        if self.binned_top:
            stats = self._top_bins(counts, weights)
            for name, norm in (("ece", "l1"), ("mce", "max"), ("rmsce", "l2")):
                out[name] = stats.calibration_error(norm=norm, average=False)
        if need("ece_classwise"):
            out["ece_classwise"] = self._classwise_ece(counts, weights)
        if need("smooth_ece"):
            out["smooth_ece"] = np.array([self.smoother.fixed_point(w)[0] for w in weights])
        if need("aurc"):
            g, h = self.groups, self.harmonic
            out["aurc"] = np.array([_aurc(*g.cumulative(w), h) for w in weights])
        return {name: out[name] for name in self.names}

    def _top_bins(self, counts: np.ndarray, weights: np.ndarray) -> BinStatistics:
        """Per resample (a row) and bin: the weighted count, sum of confidences and hits.

        Uniform bins are fixed; quantile edges are those of the resample's own confidences
        (its sorted confidences are the sorted ones repeated by their ``counts``), as the
        metric computes them.
        """
        rule = self.rule
        slots = rule.slots
        shape = (weights.shape[0], slots)
        count, confidence, hits = np.empty(shape), np.empty(shape), np.empty(shape)
        edges = []
        for i, (drawn_count, w) in enumerate(zip(counts, weights, strict=True)):
            if rule.binning == "uniform":
                bins, keys, row = self.top_bins, self.top_keys, self.top_edges
            else:
                order = self.conf_order
                drawn = np.repeat(self.conf_sorted, drawn_count[order].astype(np.intp))
                row = rule.edges(np, drawn[:, None])
                bins = _entry_bins(self.conf, 0, row)
                keys = bins + self.hit_offset
            edges.append(row.statistics_row())
            # one bincount for the count and the hits: the hits are keyed to bins + slots
            split = np.bincount(keys, w, minlength=2 * slots)
            count[i] = split[:slots] + split[slots:]
            hits[i] = split[slots:]
            confidence[i] = np.bincount(bins, w * self.conf64, minlength=slots)
        return BinStatistics(np.stack(edges), count, confidence, hits)

    def _classwise_ece(self, counts: np.ndarray, weights: np.ndarray) -> np.ndarray:
        k, n = self.k, self.n
        if not self.classwise:
            # Quantile edges of every class move with the resample: the metric itself, on the
            # resampled rows (their order does not matter).
            rule = self.rule
            values = []
            for drawn in counts:
                rows = np.repeat(np.arange(n), drawn.astype(np.intp))
                sw = self.sample_weight
                ece = expected_calibration_error(
                    self.p[rows],
                    self.y[rows],
                    n_bins=rule.n_bins,
                    binning=rule.binning,
                    scope="classwise",
                    right_closed=rule.right_closed,
                    ones_in_own_bin=rule.ones_in_own_bin,
                    weights=None if sw is None else sw[rows],
                )
                values.append(float(ece))
            return np.array(values)
        m = self.slots
        # sum_i w_i p_ik for every class: the one O(N K) product, in the data's dtype.
        totals = (self.p.T @ weights.T.astype(self.p.dtype)).T.astype(np.float64)
        out = np.empty(weights.shape[0])
        # a few resamples at a time: their (resample, class, bin) sums stay a few tens of MB
        step = max(1, _BLOCK_ENTRIES // (k * m))
        for start in range(0, weights.shape[0], step):
            part = weights[start : start + step]
            out[start : start + step] = self._classwise_block(part, totals[start : start + step])
        return out

    def _classwise_block(self, weights: np.ndarray, totals: np.ndarray) -> np.ndarray:
        k, m, r = self.k, self.slots, weights.shape[0]
        count, confidence, hits = (np.empty((r, k, m)) for _ in range(3))
        upper = self.upper_rows.shape[0]
        for i, w in enumerate(weights):
            drawn = w[self.count_hit_rows]
            split = np.bincount(self.count_hit_keys, drawn, minlength=2 * k * m)
            count[i] = split[: k * m].reshape(k, m)
            hits[i] = split[k * m :].reshape(k, m)
            confidence[i] = np.bincount(
                self.upper_keys, drawn[:upper] * self.upper_values, minlength=k * m
            ).reshape(k, m)
        # the first bin holds what the others leave of each class's total weight
        count[:, :, 0] = weights.sum(axis=1)[:, None] - count[:, :, 1:].sum(axis=2)
        confidence[:, :, 0] = totals - confidence[:, :, 1:].sum(axis=2)
        # each (resample, class) a column of the one-shot formula, whose classes are averaged
        # as the one-shot averages them
        edges = np.broadcast_to(self.class_row, (r * k, m + 1))
        stats = BinStatistics(edges, *(a.reshape(r * k, m) for a in (count, confidence, hits)))
        return np.mean(stats.calibration_error(average=False).reshape(r, k), axis=1)
