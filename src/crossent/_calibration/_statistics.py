"""Statistics of a prediction set beyond the scores: the Brier decomposition and risk-coverage.

NumPy only (these summarize a prediction set on the host; a tensor is copied to NumPy first).
Single entries (any probabilities of any classes, as the Brier decomposition and
:mod:`crossent._calibration._bootstrap` need them) get their bins from :func:`_entry_bins`,
which applies the binning module's one rule (``_bin_index``) to the edges of ``_bin_edges``;
:func:`_outside_first_bin` finds the few entries of
an ``(N, K)`` matrix that are not in the first bin, so that class-wise sums cost a pass over the
matrix plus work proportional to those entries, not ``N K`` bincounts: with uniform bins and
rows that sum to 1, at most ``B`` entries of a row reach ``1 / B``.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

from .._namespace import Array, to_numpy
from ._binning import _bin_edges, _bin_index, _check_binning_options
from ._inputs import _prepare_probs

# Rows per block of the passes over an (N, K) matrix: bounds the temporaries (a mask, the
# float64 copy of the block) to a few tens of MB whatever N is.
_BLOCK_ENTRIES = 1 << 20


def _numpy_probs(
    probs: Array, labels: Array, *, weights: Any = None, ignore_index: Any = None
) -> tuple[Any, np.ndarray, np.ndarray, np.ndarray | None]:
    """Namespace, ``(N, K)`` probabilities, ``(N,)`` labels and weights (None without) on the
    host, validated as every metric does (:func:`_prepare`, ``ignore_index`` included)."""
    xp, p, y, w, _ = _prepare_probs(
        _host(probs),
        _host(labels),
        weights=None if weights is None else _host(weights),
        ignore_index=ignore_index,
    )
    return xp, np.asarray(p), np.asarray(y), None if w is None else np.asarray(w)


def _host(x: Array) -> Any:
    return x if isinstance(x, (list, tuple, float, int)) else to_numpy(x)


def _row_blocks(n: int, k: int) -> Iterator[slice]:
    step = max(1, _BLOCK_ENTRIES // max(k, 1))
    for start in range(0, n, step):
        yield slice(start, min(n, start + step))


# ---------------------------------------------------------------- bins of single entries


@dataclass(frozen=True)
class _BinRule:
    """The options that decide a bin (checked by ``_check_binning_options``)."""

    n_bins: int
    binning: str
    right_closed: bool
    ones_in_own_bin: bool

    @property
    def slots(self) -> int:
        """Bins per column, the extra bin of confidences equal to 1 included."""
        return self.n_bins + 1 if self.ones_in_own_bin else self.n_bins

    def edges(self, xp: Any, conf: np.ndarray) -> _Edges:
        """The bins of ``_binned`` for confidences ``conf`` of shape ``(N, C)``."""
        return _Edges(np.asarray(_bin_edges(xp, conf, self.n_bins, self.binning)), self)


@dataclass(frozen=True)
class _Edges:
    """Bin edges of each column, ``(C, B + 1)`` in the data's dtype, and the rule they follow."""

    edges: np.ndarray
    rule: _BinRule

    @property
    def shared(self) -> bool:
        """Every column has the same edges."""
        return self.rule.binning == "uniform" or self.edges.shape[0] == 1

    def statistics_row(self, column: int = 0) -> np.ndarray:
        """A column's edges as :class:`BinStatistics` holds them (with ``ones_in_own_bin``, the
        degenerate last bin ``[1, 1]`` appended)."""
        row = self.edges[column]
        return np.append(row, row[-1]) if self.rule.ones_in_own_bin else row


def _entry_bins(values: np.ndarray, columns: np.ndarray | int, edges: _Edges) -> np.ndarray:
    """Bin of each value, ``values[j]`` being a probability of column ``columns[j]``.

    The binning module's rule (:func:`crossent._calibration._binning._bin_index`); with an edge
    row per column, the values are grouped by column and each group searched in its row.
    """
    rule = edges.rule
    options = {"right_closed": rule.right_closed, "ones_in_own_bin": rule.ones_in_own_bin}
    if edges.shared:
        return np.asarray(_bin_index(xnp, values, edges.edges[0], **options))
    k = edges.edges.shape[0]
    cols = np.broadcast_to(columns, values.shape)
    # grouped by column with a counting sort: NumPy's stable sort of 16-bit keys is a radix sort
    order = np.argsort(cols.astype(np.uint16) if k <= 1 << 16 else cols, kind="stable")
    sizes = np.bincount(cols, minlength=k)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    grouped = values[order]
    bins = np.empty(values.shape, dtype=np.intp)
    bins[order] = np.concatenate(
        [
            _bin_index(xnp, grouped[bounds[c] : bounds[c + 1]], edges.edges[c], **options)
            for c in np.flatnonzero(sizes)
        ]
        or [np.zeros(0, dtype=np.intp)]
    )
    return bins


def _first_bin_threshold(edges: _Edges) -> tuple[np.ndarray | None, bool]:
    """Per-column value above which (or from which) an entry leaves the first bin."""
    if edges.edges.shape[1] == 2:
        return None, False
    return edges.edges[:, 1], not edges.rule.right_closed


def _outside_first_bin(
    p: np.ndarray, edges: _Edges
) -> Iterator[tuple[slice, np.ndarray, np.ndarray, np.ndarray, np.ndarray]]:
    """Per block of rows: the rows, columns, bins and values of the entries not in bin 0."""
    threshold, inclusive = _first_bin_threshold(edges)
    n, k = p.shape
    for block in _row_blocks(n, k):
        q = p[block]
        if threshold is None:
            mask = q >= 1 if edges.rule.ones_in_own_bin else np.zeros(q.shape, dtype=bool)
        else:
            mask = q >= threshold if inclusive else q > threshold
            if edges.rule.ones_in_own_bin:
                mask |= q >= 1
        rows, cols = np.nonzero(mask)
        values = q[rows, cols]
        yield block, rows + block.start, cols, _entry_bins(values, cols, edges), values


# ---------------------------------------------------------------- Brier decomposition


@dataclass(frozen=True)
class BrierDecomposition:
    r"""Murphy's partition of the Brier score over the bins of a reliability diagram.

    ``brier = reliability - resolution + uncertainty + within_bin_variance -
    within_bin_covariance`` holds exactly (to rounding); the last two terms are 0 when the
    forecasts are constant within each bin, which is Murphy's (1973) three-term form.

    Attributes
    ----------
    brier : float
        The score decomposed: the multiclass Brier score (class-wise scope) or the top-label
        Brier score :math:`\frac{1}{N}\sum_i (c_i - [\hat y_i = y_i])^2` (top-label scope).
    reliability : float
        :math:`\frac{1}{N}\sum_{k,b} n_{kb} (\bar f_{kb} - \bar o_{kb})^2`, the calibration term
        (lower is better).
    resolution : float
        :math:`\frac{1}{N}\sum_{k,b} n_{kb} (\bar o_{kb} - \bar o_k)^2`, how far the bins'
        outcome rates move from the base rate (higher is better).
    uncertainty : float
        :math:`\sum_k \bar o_k (1 - \bar o_k)`, the score of always forecasting the base rates.
    within_bin_variance : float
        :math:`\frac{1}{N}\sum_{k,b}\sum_{i \in b} (f_{ik} - \bar f_{kb})^2`.
    within_bin_covariance : float
        :math:`\frac{2}{N}\sum_{k,b}\sum_{i \in b} (f_{ik} - \bar f_{kb})(o_{ik} - \bar o_{kb})`.
    """

    brier: float
    reliability: float
    resolution: float
    uncertainty: float
    within_bin_variance: float
    within_bin_covariance: float


def brier_decomposition(
    probs: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    binning: str = "uniform",
    scope: str = "classwise",
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
    ignore_index: int | None = None,
) -> BrierDecomposition:
    r"""Reliability, resolution and uncertainty of the Brier score (Murphy 1973), binned.

    For each class k (class-wise) or for the top-class confidence (top-label), the forecasts
    :math:`f_{ik}` are put in the bins of :func:`reliability_curve`; bin b of column k holds
    :math:`n_{kb}` examples with mean forecast :math:`\bar f_{kb}` and outcome rate
    :math:`\bar o_{kb}` (the outcome :math:`o_{ik}` is "the label is k", or "the prediction is
    right"); :math:`\bar o_k` is the overall rate. Then, exactly,

    .. math::

        \text{BS} = \underbrace{\tfrac{1}{N}\textstyle\sum_{k,b} n_{kb}(\bar f_{kb} -
        \bar o_{kb})^2}_{\text{reliability}} - \underbrace{\tfrac{1}{N}\textstyle\sum_{k,b}
        n_{kb}(\bar o_{kb} - \bar o_k)^2}_{\text{resolution}} + \underbrace{\textstyle\sum_k
        \bar o_k(1 - \bar o_k)}_{\text{uncertainty}} + \text{WBV} - \text{WBC}

    where WBV and WBC are the within-bin variance of the forecasts and twice their within-bin
    covariance with the outcomes (Stephenson, Coelho & Jolliffe 2008). They vanish when every
    bin holds a single forecast value, which gives Murphy's three terms; with binned continuous
    forecasts they are small but not 0, and are reported rather than folded into a term.

    The class-wise scope (the default) decomposes the multiclass Brier score
    :func:`brier_score` as the sum of the K one-vs-rest decompositions, which is the standard
    multiclass form (Murphy's vector partition groups identical forecast vectors instead, which
    continuous forecasts never share). The top-label scope decomposes the Brier score of the
    top-class confidence; its reliability term is the square of the top-label RMSCE.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``, or ``(N,)`` for a binary class-1
        probability.
    labels : array
        Integer labels in [0, K).
    n_bins, binning, right_closed, ones_in_own_bin
        The bins, as :func:`reliability_curve`.
    scope : {"classwise", "top_label"}
        Decompose the multiclass Brier score, or the top-label one.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    BrierDecomposition
        The score and its five terms, as Python floats (computed in float64).

    References
    ----------
    Murphy (1973), A new vector partition of the probability score. J. Appl. Meteor. 12.
    Stephenson, Coelho, Jolliffe (2008), Two extra components in the Brier score decomposition.
    Weather and Forecasting 23.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> probs = [[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]]
    >>> d = cal.brier_decomposition(probs, [0, 1, 1, 1], n_bins=5)
    >>> print(round(d.reliability, 4), round(d.resolution, 4), round(d.uncertainty, 4))
    0.18 0.125 0.375
    >>> print(round(d.reliability - d.resolution + d.uncertainty, 4), round(d.brier, 4))
    0.43 0.43
    """
    _check_binning_options(n_bins, binning, scope, right_closed, ones_in_own_bin)
    xp, p, y, _ = _numpy_probs(probs, labels, ignore_index=ignore_index)
    rule = _BinRule(n_bins, binning, right_closed, ones_in_own_bin)
    if scope == "top_label":
        conf = np.max(p, axis=1)
        hit = (np.argmax(p, axis=1) == y).astype(np.float64)
        sums = _top_label_sums(conf, hit, rule.edges(xp, conf[:, None]))
    else:
        sums = _classwise_sums(p, y, rule.edges(xp, p))
    return _decompose(sums, p.shape[0])


# Per (column, bin): count, sum of f, of f^2, of the outcome o, of f o.
_Sums = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]


def _top_label_sums(conf: np.ndarray, hit: np.ndarray, edges: _Edges) -> _Sums:
    bins = _entry_bins(conf, 0, edges)
    f = conf.astype(np.float64)
    m = edges.rule.slots

    def count(weights: np.ndarray | None) -> np.ndarray:
        return np.bincount(bins, weights, minlength=m)[None, :]

    return count(None), count(f), count(f * f), count(hit), count(f * hit)


def _classwise_sums(
    p: np.ndarray, y: np.ndarray, edges: _Edges, w: np.ndarray | None = None
) -> _Sums:
    """Per (class, bin): count, sum of f, of f^2, of the outcome, and of f where it is 1
    (each term weighted by its example's weight in ``w``, when given).

    The entries outside the first bin are binned one by one; the first bin of each class is
    its column total minus the other bins, so the pass over the matrix is a column sum.
    """
    n, k = p.shape
    m = edges.rule.slots
    count = np.zeros(k * m)
    s1 = np.zeros(k * m)
    s2 = np.zeros(k * m)
    total1 = np.zeros(k)
    total2 = np.zeros(k)
    for block, rows, cols, bins, values in _outside_first_bin(p, edges):
        q = p[block].astype(np.float64)
        qw = q if w is None else q * w[block, None]
        total1 += qw.sum(axis=0)
        total2 += np.einsum("ij,ij->j", qw, q)
        keys = cols * m + bins
        v = values.astype(np.float64)
        weight = None if w is None else w[rows]
        vw = v if weight is None else v * weight
        count += np.bincount(keys, weight, minlength=k * m)
        s1 += np.bincount(keys, vw, minlength=k * m)
        s2 += np.bincount(keys, vw * v, minlength=k * m)
    count, s1, s2 = (a.reshape(k, m) for a in (count, s1, s2))
    count[:, 0] = (n if w is None else w.sum()) - count[:, 1:].sum(axis=1)
    s1[:, 0] = total1 - s1[:, 1:].sum(axis=1)
    s2[:, 0] = total2 - s2[:, 1:].sum(axis=1)
    # Outcomes are 1 only at the label entries: one entry per example.
    f_label = p[np.arange(n), y]
    label_keys = y * m + _entry_bins(f_label, y, edges)
    f_label = f_label.astype(np.float64)
    so = np.bincount(label_keys, w, minlength=k * m).astype(np.float64).reshape(k, m)
    fw = f_label if w is None else f_label * w
    sfo = np.bincount(label_keys, fw, minlength=k * m).reshape(k, m)
    return count.astype(np.float64), s1, s2, so, sfo


@dataclass(frozen=True)
class BrierSums:
    """Per (class, bin) sums from which :func:`brier_decomposition` is computed.

    Sums of disjoint blocks of examples (``a + b``) are the sums of their union, so a data set
    read block by block is decomposed exactly as if it were read whole.

    Attributes
    ----------
    count, sum_forecast, sum_forecast_squared, sum_outcome, sum_forecast_outcome : numpy.ndarray
        Per (class, bin), shape ``(K, B)``, float64: the number of entries, and the sums of
        :math:`f`, :math:`f^2`, :math:`o` and :math:`f o`.
    examples : float
        The number of examples summed (their total weight, with weights).
    """

    count: np.ndarray
    sum_forecast: np.ndarray
    sum_forecast_squared: np.ndarray
    sum_outcome: np.ndarray
    sum_forecast_outcome: np.ndarray
    examples: float

    def __add__(self, other: BrierSums) -> BrierSums:
        if self.count.shape != other.count.shape:
            raise ValueError(
                f"cannot add Brier sums of shape {self.count.shape} and {other.count.shape}"
            )
        a, b = self._arrays(), other._arrays()
        return BrierSums(a[0] + b[0], a[1] + b[1], a[2] + b[2], a[3] + b[3], a[4] + b[4],
                         self.examples + other.examples)  # fmt: skip

    def _arrays(self) -> _Sums:
        return (self.count, self.sum_forecast, self.sum_forecast_squared, self.sum_outcome,
                self.sum_forecast_outcome)  # fmt: skip

    def decomposition(self) -> BrierDecomposition:
        """The decomposition of the examples summed (see :func:`brier_decomposition`)."""
        if not self.examples > 0:
            raise ValueError("no examples were summed: the Brier score of nothing is undefined")
        return _decompose(self._arrays(), self.examples)


def brier_sums(
    probs: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    weights: Array | None = None,
    ignore_index: int | None = None,
) -> BrierSums:
    """The class-wise :class:`BrierSums` of a block of examples, in ``n_bins`` equal-width bins.

    ``brier_sums(p[:m], y[:m]) + brier_sums(p[m:], y[m:])`` decomposes like
    ``brier_decomposition(p, y, n_bins=n_bins)`` (uniform bins, right-closed, class-wise).
    With ``weights`` (one per example, non-negative) every sum is weighted and ``examples``
    is their total: the decomposition of the weighted Brier score (integer weights equal
    repeated examples). Examples labelled ``ignore_index`` are left out.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> probs = [[0.8, 0.2], [0.8, 0.2], [0.3, 0.7], [0.3, 0.7]]
    >>> first = cal.brier_sums(probs[:1], [0], n_bins=5)
    >>> rest = cal.brier_sums(probs[1:], [1, 1, 1], n_bins=5)
    >>> print(round((first + rest).decomposition().reliability, 4))
    0.18
    """
    _check_binning_options(n_bins, "uniform", "classwise", True, False)
    xp, p, y, w = _numpy_probs(probs, labels, weights=weights, ignore_index=ignore_index)
    rule = _BinRule(n_bins, "uniform", True, False)
    if w is None:
        return BrierSums(*_classwise_sums(p, y, rule.edges(xp, p[:1])), int(p.shape[0]))
    return BrierSums(*_classwise_sums(p, y, rule.edges(xp, p[:1]), w), float(w.sum()))


def _decompose(sums: _Sums, n: float) -> BrierDecomposition:
    """The terms from per-(column, bin) sums; every sum over an empty bin is 0."""
    count, s1, s2, so, sfo = sums
    filled = count > 0
    safe = np.where(filled, count, 1.0)
    f_bar = s1 / safe
    o_bar = so / safe
    base = so.sum(axis=1, keepdims=True) / n
    reliability = float(np.sum(count * (f_bar - o_bar) ** 2) / n)
    resolution = float(np.sum(count * (o_bar - base) ** 2) / n)
    uncertainty = float(np.sum(base * (1 - base)))
    # Within-bin moments from the sums: sum (f - f_bar)^2 = s2 - s1 f_bar, and
    # sum (f - f_bar)(o - o_bar) = sfo - s1 o_bar, in float64.
    variance = float(np.sum(s2 - s1 * f_bar) / n)
    covariance = float(2 * np.sum(sfo - s1 * o_bar) / n)
    brier = float((s2.sum() - 2 * sfo.sum() + so.sum()) / n)
    return BrierDecomposition(brier, reliability, resolution, uncertainty, variance, covariance)


# ---------------------------------------------------------------- risk-coverage and AURC


@dataclass(frozen=True)
class RiskCoverage:
    r"""The risk-coverage curve of selective prediction and its area.

    Attributes
    ----------
    threshold : numpy.ndarray
        The distinct top-class confidences, decreasing: predicting only when the confidence is
        at least ``threshold[g]`` covers ``coverage[g]`` of the examples.
    coverage : numpy.ndarray
        Fraction of examples covered at each threshold, increasing to 1.
    risk : numpy.ndarray
        Error rate among the covered examples at each threshold.
    aurc : float
        Area under the risk-coverage curve (lower is better): the mean over the N coverage
        levels k / N of the error rate of the k most confident examples, ties grouped.
    optimal_aurc : float
        The AURC of a confidence that ranks every right prediction above every error, for the
        same predictions: the least any confidence can reach.
    excess_aurc : float
        ``aurc - optimal_aurc`` (E-AURC), the part of the area due to the ranking.
    """

    threshold: np.ndarray
    coverage: np.ndarray
    risk: np.ndarray
    aurc: float
    optimal_aurc: float
    excess_aurc: float


def risk_coverage_curve(
    probs: Array, labels: Array, /, *, ignore_index: int | None = None
) -> RiskCoverage:
    r"""Risk against coverage when only the most confident predictions are kept, and its AURC.

    Sort the examples by top-class confidence :math:`c_i = \max_k p_{ik}`, highest first; the
    prediction is :math:`\arg\max_k p_{ik}` (the first class on a tie) and an error is a wrong
    one. Keeping the examples with :math:`c_i \ge \tau` covers :math:`n(\tau)` of them with
    risk :math:`e(\tau) / n(\tau)`, :math:`e` counting the errors among them. The curve has one
    point per distinct confidence: examples with the same confidence cannot be told apart by a
    threshold, so they are covered together (ties grouped).

    The area is the mean selective risk over the coverage levels :math:`k/N` (Geifman, Uziel &
    El-Yaniv 2019),

    .. math::

        \text{AURC} = \frac{1}{N}\sum_{k=1}^{N} \frac{E_k}{k},

    where :math:`E_k` counts the errors among the k most confident examples. Inside a group of
    tied confidences, :math:`E_k` grows linearly at the group's error rate: the expected count
    over every order of the tied examples, so the AURC is the average over all tie-breaks, and
    does not depend on the input order as an ``argsort`` would. The optimal AURC puts the
    :math:`E = E_N` errors last:
    :math:`\frac{1}{N}\sum_{k = N - E + 1}^{N} \frac{k - N + E}{k}`, which Geifman et al.
    approximate by :math:`r + (1 - r)\ln(1 - r)` with :math:`r = E / N`.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``, or ``(N,)`` for a binary class-1
        probability (its confidence is then :math:`\max(p, 1 - p)`).
    labels : array
        Integer labels in [0, K).
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    RiskCoverage
        The curve (``threshold``, ``coverage``, ``risk``, float64) and ``aurc``,
        ``optimal_aurc``, ``excess_aurc``.

    References
    ----------
    Geifman, El-Yaniv (2017), Selective classification for deep neural networks. NeurIPS.
    Geifman, Uziel, El-Yaniv (2019), Bias-reduced uncertainty estimation for deep neural
    classifiers. ICLR.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> probs = [[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.45, 0.55]]
    >>> rc = cal.risk_coverage_curve(probs, [1, 1, 0, 1])
    >>> print(rc.coverage, rc.risk)
    [0.25 0.5  0.75 1.  ] [1.         0.5        0.33333333 0.25      ]
    >>> print(round(rc.aurc, 4), round(rc.optimal_aurc, 4))
    0.5208 0.0625
    """
    _, p, y, _ = _numpy_probs(probs, labels, ignore_index=ignore_index)
    return _risk_coverage_of(np.max(p, axis=1), np.argmax(p, axis=1) != y)


def risk_coverage_from_summaries(confidence: Array, correct: Array, /) -> RiskCoverage:
    """:func:`risk_coverage_curve` from each example's top-class confidence and whether the
    top class is right (a language model's token summaries, or a report's per-example data).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(cal.risk_coverage_from_summaries([0.9, 0.8, 0.6], [True, False, True]).aurc, 4))
    0.2778
    """
    conf, hit = _summaries(confidence, correct)
    return _risk_coverage_of(conf, ~hit)


def _summaries(confidence: Array, correct: Array) -> tuple[np.ndarray, np.ndarray]:
    """Checked NumPy copies of per-example confidences (in [0, 1]) and hits (0/1 or bool)."""
    conf = np.asarray(confidence, dtype=np.float64)
    hit = np.asarray(correct)
    if conf.ndim != 1 or hit.shape != conf.shape or conf.size == 0:
        raise ValueError(
            "confidence and correct must be 1-D, of the same non-zero length; got shapes "
            f"{conf.shape} and {hit.shape}"
        )
    bad = ~((conf >= 0) & (conf <= 1))
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise ValueError(f"confidence must lie in [0, 1]; got {float(conf[i])!r} at index {i}")
    if hit.dtype != np.bool_:
        if not np.isin(hit, (0, 1)).all():
            raise ValueError("correct must be booleans or 0/1 values")
        hit = hit.astype(bool)
    return conf, hit


def _risk_coverage_of(conf: np.ndarray, error: np.ndarray) -> RiskCoverage:
    """The curve of top-class confidences and errors."""
    groups = _ConfidenceGroups.of(conf, error)
    covered, wrong = groups.cumulative(None)
    n = conf.shape[0]
    harmonic = _harmonic(n)
    aurc = _aurc(covered, wrong, harmonic)
    optimal = _optimal_aurc(float(wrong[-1]), n, harmonic)
    return RiskCoverage(groups.values, covered / n, wrong / covered, aurc, optimal, aurc - optimal)


@dataclass(frozen=True)
class _ConfidenceGroups:
    """Examples sorted by decreasing confidence, and where each group of equal ones ends."""

    order: np.ndarray  # (N,) examples by decreasing confidence (stable)
    error: np.ndarray  # (N,) float64, 1 for an error, in that order
    ends: np.ndarray  # (G,) position in that order of the last example of each group
    values: np.ndarray  # (G,) the confidence of each group, decreasing

    @classmethod
    def of(cls, conf: np.ndarray, error: np.ndarray) -> _ConfidenceGroups:
        order = np.argsort(-conf, kind="stable")
        ranked = conf[order]
        ends = np.flatnonzero(np.append(ranked[1:] != ranked[:-1], True))
        return cls(order, error[order].astype(np.float64), ends, ranked[ends].astype(np.float64))

    def cumulative(self, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Examples and errors covered down to each group, counted with ``weights``."""
        w = np.ones(self.order.shape[0]) if weights is None else weights[self.order]
        return np.cumsum(w)[self.ends], np.cumsum(w * self.error)[self.ends]


def _harmonic(n: int) -> np.ndarray:
    """``H[k] = 1 + 1/2 + ... + 1/k`` for k = 0..n (``H[0] = 0``)."""
    h = np.zeros(n + 1)
    np.cumsum(1.0 / np.arange(1, n + 1), out=h[1:])
    return h


def _aurc(covered: np.ndarray, wrong: np.ndarray, harmonic: np.ndarray) -> float:
    r"""AURC from the examples and errors covered down to each confidence group, in order.

    In a group g covering ranks :math:`n_{g-1} < k \le n_g` with error rate :math:`\rho_g`,
    :math:`E_k = E_{g-1} + (k - n_{g-1}) \rho_g`, so its terms sum in closed form:
    :math:`(E_{g-1} - n_{g-1}\rho_g)(H_{n_g} - H_{n_{g-1}}) + (E_g - E_{g-1})`. Counts are
    integers (resampling weights included), so ``harmonic`` is indexed exactly; a group that a
    resample left out has size 0 and adds nothing.
    """
    start = np.concatenate([[0.0], covered[:-1]])
    e_start = np.concatenate([[0.0], wrong[:-1]])
    size = covered - start
    rate = np.divide(wrong - e_start, size, out=np.zeros_like(size), where=size > 0)
    h = harmonic[covered.astype(np.intp)] - harmonic[start.astype(np.intp)]
    return float((np.sum((e_start - start * rate) * h) + wrong[-1]) / covered[-1])


def _optimal_aurc(n_errors: float, n: int, harmonic: np.ndarray) -> float:
    """AURC when the errors come last: ``(1/N) sum_{k > N - E} (k - N + E) / k``."""
    right = round(n - n_errors)
    return float((n_errors - right * (harmonic[n] - harmonic[right])) / n)
