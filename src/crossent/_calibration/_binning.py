"""Confidence bins: the edges (uniform or quantile), bin membership, the per-bin statistics.

Bin-edge conventions (the reason the published tools disagree on the same predictions):

===========================  ===========================================================
``right_closed=True``        bins ``[0, e1], (e1, e2], ..., (e_{B-1}, 1]``: Guo et al. 2017 and
(default)                    scikit-learn's ``calibration_curve`` (``searchsorted`` on the inner
                             edges), a confidence of 0 in the first bin.
``right_closed=False``       bins ``[0, e1), [e1, e2), ..., [e_{B-1}, 1]``: netcal; the last bin is
                             closed, so a confidence of exactly 1.0 lies in it.
``right_closed=False,``      torchmetrics' ``MulticlassCalibrationError``: ``[lo, hi)`` bins and a
``ones_in_own_bin=True``     hidden extra bin holding the confidences equal to 1.0
                             (torchmetrics #3510).
===========================  ===========================================================

Only the inner edges decide a bin; they are compared in the computation dtype (float32 for
float32 input, as torchmetrics does; pass float64 data to compare against scikit-learn's float64
edges bit for bit). ``torch.linspace`` rounds some edges one ulp away from ``k / B``, which only
matters for a confidence equal to an edge to the last bit.

Every binned metric is a function of three sufficient statistics per bin: the count, the sum of
the confidences and the number of hits (:class:`BinStatistics`). They come from one bin index
per value (``searchsorted`` on the inner edges) and one ``bincount`` per statistic over the
flattened index ``column * bins + bin``: never a mask per bin. Sums of statistics of disjoint
batches are the statistics of their union, which is what a streaming evaluation accumulates.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from .. import _dispatch, _fast
from .._namespace import Array, _is_array, default_int, is_dask, namespace, upcast
from .._validation import check_index_targets, check_unit_interval
from ._inputs import _choice, _precise, _sample_weights, _take

BINNINGS = ("uniform", "quantile")
SCOPES = ("top_label", "classwise")
NORMS = ("l1", "l2", "max")


MAX_BINS = 100_000
"""Most bins any binned statistic takes: every bin costs memory per class (three sums), and
more bins than this are more than any calibration set can fill."""


def _check_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or not 1 <= n_bins <= MAX_BINS:
        raise ValueError(f"n_bins must be an integer from 1 to {MAX_BINS:,}, got {n_bins!r}")
    return n_bins


def _check_edge_options(right_closed: bool, ones_in_own_bin: bool) -> None:
    if ones_in_own_bin and right_closed:
        raise ValueError(
            "ones_in_own_bin=True needs right_closed=False: with (lo, hi] bins a confidence of "
            "1.0 already lies in the last bin"
        )


def _check_binning_options(
    n_bins: int, binning: str, scope: str, right_closed: bool, ones_in_own_bin: bool
) -> None:
    _check_n_bins(n_bins)
    _choice(binning, BINNINGS, "binning")
    _choice(scope, SCOPES, "scope")
    _check_edge_options(right_closed, ones_in_own_bin)


def _inner_positions(n: int, n_bins: int) -> np.ndarray:
    """Virtual indices of the quantiles ``i / B`` into ``n`` sorted values, as NumPy computes them.

    ``np.percentile(x, np.linspace(0, 1, B + 1) * 100)`` (scikit-learn's quantile strategy) goes
    through ``i * (1 / B) * 100 / 100 * (n - 1)``; the same float64 steps (elementwise IEEE
    operations, vectorized: no Python loop over the bins) give the same edges.
    """
    qs = np.arange(n_bins + 1, dtype=np.float64) * (1.0 / n_bins)
    qs[-1] = 1.0
    return ((qs * 100.0) / 100.0) * (n - 1)


def _uniform_edges(xp: Any, n_bins: int, dtype: Any, device: Any = None) -> Array:
    """``[0, 1/B, ..., 1]`` rounded once to ``dtype`` (the edges every equal-width bin uses):
    ``i / B`` in float64 (correctly rounded, as Python's ``i / B``), then cast."""
    edges = np.arange(n_bins + 1, dtype=np.float64) / n_bins
    return xp.asarray(xp.asarray(edges), dtype=dtype, device=device)


def _bin_edges(xp: Any, conf: Array, n_bins: int, binning: str) -> Array:
    """Bin edges of shape ``(C, B + 1)`` for confidences ``conf`` of shape ``(N, C)``."""
    columns = int(conf.shape[1])
    if binning == "uniform":
        edges = _uniform_edges(xp, n_bins, conf.dtype, getattr(conf, "device", None))
        return xp.broadcast_to(edges[None, :], (columns, n_bins + 1))
    if is_dask(conf):
        raise ValueError(
            "binning='quantile' sorts every confidence, which would merge a Dask array's batch "
            "chunks into one block; use binning='uniform' (computed chunk by chunk), or "
            "compute the inputs first (np.asarray(x) or x.compute())"
        )
    # Equal-mass edges: the linear-interpolation quantiles of each column (np.percentile's
    # default). Ties collapse edges, leaving some bins empty, as in scikit-learn.
    s = xp.sort(conf, axis=0)
    n = int(s.shape[0])
    v = _inner_positions(n, n_bins)
    lo = np.floor(v)
    t = v - lo  # float64, as NumPy's; rounded to the data's dtype where it meets the data
    device = getattr(conf, "device", None)
    index = xp.asarray(lo.astype(np.int64), device=device)
    a = xp.take(s, index, axis=0)
    b = xp.take(s, xp.asarray(np.minimum(lo + 1, n - 1).astype(np.int64), device=device), axis=0)
    d = b - a
    below = xp.asarray(t < 0.5, device=device)[:, None]
    t_low = xp.asarray(t, dtype=s.dtype, device=device)[:, None]
    t_high = xp.asarray(1.0 - t, dtype=s.dtype, device=device)[:, None]
    # NumPy's _lerp: a + d t below t = 0.5 and b - d (1 - t) above, exact at both ends.
    return xp.permute_dims(xp.where(below, a + d * t_low, b - d * t_high), (1, 0))


# ---------------------------------------------------------------- the sufficient statistics


@dataclass(frozen=True)
class ReliabilityCurve:
    """Per-bin statistics of a reliability diagram.

    Attributes
    ----------
    edges : array
        Bin edges, shape ``(B + 1,)`` (top-label) or ``(K, B + 1)`` (class-wise). With
        ``ones_in_own_bin`` a last, degenerate bin ``[1, 1]`` is appended.
    counts : array
        Number of examples in each bin (integer), shape ``(B,)`` or ``(K, B)``.
    confidence : array
        Mean predicted probability in each bin; NaN for an empty bin.
    accuracy : array
        Fraction of hits in each bin (top-label: the prediction is right; class-wise: the label
        is that class); NaN for an empty bin.
    """

    edges: Array
    counts: Array
    confidence: Array
    accuracy: Array


@dataclass(frozen=True)
class BinStatistics:
    r"""Count, sum of confidences and number of hits in each confidence bin.

    The sufficient statistics of every binned calibration metric: from them,
    :meth:`calibration_error` gives the ECE, RMSCE and MCE and :meth:`reliability_curve` the
    diagram. Statistics of disjoint sets of examples with the same ``edges`` add up
    (``counts``, ``sum_confidence`` and ``sum_hits`` element-wise) to those of the union.

    Attributes
    ----------
    edges : array
        Bin edges, ``(B + 1,)`` or ``(C, B + 1)`` (one row per column of confidences); with
        ``ones_in_own_bin`` a degenerate last bin ``[1, 1]`` is appended.
    counts : array
        Number of values in each bin (integer), ``(B,)`` or ``(C, B)``.
    sum_confidence : array
        Sum of the confidences in each bin, accumulated in float64 where the library has it.
    sum_hits : array
        Number of hits in each bin (integer).
    """

    edges: Array
    counts: Array
    sum_confidence: Array
    sum_hits: Array

    def _means(self) -> tuple[Any, Array, Array, Array]:
        """Namespace, mean confidence and accuracy per bin (0 where empty), non-empty mask."""
        xp, (counts,) = namespace(self.counts)
        n = xp.astype(counts, self.sum_confidence.dtype)
        nonempty = counts > 0
        safe = xp.where(nonempty, n, xp.ones_like(n))
        conf = xp.where(nonempty, self.sum_confidence / safe, xp.zeros_like(n))
        hits = xp.astype(self.sum_hits, n.dtype)
        acc = xp.where(nonempty, hits / safe, xp.zeros_like(n))
        return xp, conf, acc, nonempty

    def calibration_error(
        self, *, norm: str = "l1", debias: bool = False, average: bool = True
    ) -> Array:
        r"""ECE (``"l1"``), RMSCE (``"l2"``) or MCE (``"max"``) of the binned confidences.

        .. math::

            \text{l1} = \sum_b \frac{n_b}{N} \lvert \operatorname{acc}(b) -
            \operatorname{conf}(b) \rvert, \quad
            \text{l2} = \Big(\sum_b \frac{n_b}{N} (\operatorname{acc}(b) -
            \operatorname{conf}(b))^2\Big)^{1/2}, \quad
            \text{max} = \max_{b:\, n_b > 0} \lvert \operatorname{acc}(b) -
            \operatorname{conf}(b) \rvert

        With several columns the l1 errors are averaged, the squared l2 errors averaged before
        the root and the max taken over all of them (``average=False``: one error per column);
        ``debias`` is Kumar et al.'s (2019) debiased l2 (see
        :func:`crossent.calibration.expected_calibration_error`).

        Parameters
        ----------
        norm : {"l1", "l2", "max"}
            The norm of the gaps.
        debias : bool, default False
            The debiased l2 estimator (``norm="l2"`` only).
        average : bool, default True
            One error for all columns, or (False) one per column.

        Returns
        -------
        array
            A 0-d array (or one value per column) in the dtype of ``sum_confidence``.

        Examples
        --------
        >>> import crossent.calibration as cal
        >>> stats = cal.bin_statistics([0.9, 0.8, 0.3], [1, 0, 1], edges=[0.0, 0.5, 1.0])
        >>> print(float(stats.calibration_error()))
        0.4
        """
        _choice(norm, NORMS, "norm")
        if debias and norm != "l2":
            raise ValueError(
                f"debias=True is the debiased l2 estimator; it needs norm='l2', got {norm!r}"
            )
        xp, mean_conf, acc, _ = self._means()
        gap = acc - mean_conf  # 0 in empty bins
        n = xp.astype(self.counts, gap.dtype)
        weight = n / xp.sum(n, axis=-1, keepdims=True)
        if norm == "l1":
            per_column = xp.sum(weight * xp.abs(gap), axis=-1)
            return xp.mean(per_column) if average else per_column
        if norm == "max":
            return xp.max(xp.abs(gap)) if average else xp.max(xp.abs(gap), axis=-1)
        square = gap * gap
        if debias:
            usable = self.counts >= 2
            noise = acc * (1 - acc) / xp.where(usable, n - 1, xp.ones_like(n))
            square = xp.where(usable, square - noise, xp.zeros_like(square))
        total = xp.sum(weight * square, axis=-1)
        if average:
            total = xp.mean(total)
        return xp.sqrt(xp.maximum(total, xp.zeros_like(total)))

    def reliability_curve(self) -> ReliabilityCurve:
        """The reliability diagram's data: mean confidence and accuracy per bin, NaN where empty.

        Examples
        --------
        >>> import crossent.calibration as cal
        >>> stats = cal.bin_statistics([0.9, 0.8, 0.3], [1, 0, 1], edges=[0.0, 0.5, 1.0])
        >>> print(stats.reliability_curve().accuracy)
        [1.  0.5]
        """
        xp, mean_conf, acc, nonempty = self._means()
        nan = xp.full_like(mean_conf, math.nan)
        return ReliabilityCurve(
            self.edges,
            self.counts,
            xp.where(nonempty, mean_conf, nan),
            xp.where(nonempty, acc, nan),
        )


def _row_blocks(xp: Any, x: Array) -> list[tuple[int, int]]:
    """Row ranges to walk: cache-sized blocks for NumPy (its temporaries stay in cache and are
    reused), one block elsewhere (a GPU wants large kernels)."""
    rows = int(x.shape[0])
    if not _fast.blockable(xp, x):
        return [(0, rows)]
    step = max(1, _fast.BLOCK_ELEMENTS // max(int(x.shape[1]), 1))
    return [(start, min(start + step, rows)) for start in range(0, rows, step)]


def _bin_index(
    xp: Any, conf: Array, edges: Array, *, right_closed: bool, ones_in_own_bin: bool
) -> Array:
    """Bin of each value of ``conf`` (N, C) given ``edges`` (B + 1,) or (C, B + 1).

    Shared edges (B + 1,) take ``conf`` of any shape. The rule is
    :func:`crossent._dispatch.bin_index`'s.
    """
    options = {"right_closed": right_closed, "ones_in_own_bin": ones_in_own_bin}
    if edges.ndim == 1:
        return _dispatch.bin_index(xp, conf, edges[1:-1], **options)
    # an edge row per column (quantile bins): a search per column
    columns = [
        _dispatch.bin_index(xp, conf[:, c], edges[c, 1:-1], **options)
        for c in range(int(conf.shape[1]))
    ]
    return xp.stack(columns, axis=1)


def _flat_bins(
    xp: Any, conf: Array, hit: Array, edges: Array, *, right_closed: bool, ones_in_own_bin: bool
) -> tuple[Array, Array]:
    """The index ``column * nb + bin`` of each value of ``conf`` (N, C), flattened, and of the
    hits: ``hit`` (N,) the hit column of each row gives (N,); ``hit`` (N, C) bool gives
    (N C,), the values that are not hits sent to the extra index ``C nb`` (a bincount of
    length ``C nb + 1`` then drops them). ``nb`` counts the extra bin of ``ones_in_own_bin``.
    """
    columns = int(conf.shape[1])
    nb = int(edges.shape[-1]) - (0 if ones_in_own_bin else 1)
    idx = _bin_index(xp, conf, edges, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin)
    flat = idx + xp.arange(columns, dtype=idx.dtype, device=getattr(idx, "device", None)) * nb
    if hit.ndim == 1:
        hit_flat = _take(xp, flat, xp.astype(hit, flat.dtype))
    else:
        hit_flat = xp.reshape(xp.where(hit, flat, xp.full_like(flat, columns * nb)), (-1,))
    return xp.reshape(flat, (-1,)), hit_flat


def _weighted_sums(
    xp: Any,
    conf: Array,
    hit: Array,
    w: Array,
    edges: Array,
    *,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> tuple[Array, Array, Array, Array]:
    """Per (column, bin) of ``conf`` (N, C): the integer count, and the sums of the weights,
    of the weighted confidences and of the weighted hits, each (C, nb). ``w`` (N,) is one
    weight per row, given to every column of the row; ``hit`` as in :func:`_bin_statistics`.
    """
    n, columns = (int(d) for d in conf.shape)
    nb = int(edges.shape[-1]) - (0 if ones_in_own_bin else 1)
    length = columns * nb
    flat, hit_flat = _flat_bins(
        xp, conf, hit, edges, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin
    )
    wide = xp.reshape(xp.broadcast_to(w[:, None], (n, columns)), (-1,))

    def count(index: Array, weights: Array | None = None, dropped: int = 0) -> Array:
        out = _dispatch.bincount(xp, index, length=length + dropped, weights=weights)[:length]
        return xp.reshape(out, (columns, nb))

    # a hit column per row: its bin, weighted by the row's weight; else the non-hits dropped
    return (
        count(flat),
        count(flat, wide),
        count(flat, wide * _precise(xp, xp.reshape(conf, (-1,)))),
        count(hit_flat, w if hit.ndim == 1 else wide, dropped=1),
    )


def _bin_statistics(
    xp: Any,
    conf: Array,
    hit: Array,
    edges: Array,
    *,
    right_closed: bool,
    ones_in_own_bin: bool,
    weights: Array | None = None,
) -> BinStatistics:
    """Statistics of ``conf`` (N, C); ``hit`` is (N, C) bool or (N,) the hit column of each row.

    ``edges`` is (B + 1,) for bins shared by every column, or (C, B + 1). With ``weights``
    (N,) every count and hit is a sum of weights (float).
    """
    columns = int(conf.shape[1])
    n_bins = int(edges.shape[-1]) - 1
    nb = n_bins + 1 if ones_in_own_bin else n_bins
    length = columns * nb
    if edges.ndim == 2 and bool(xp.all(edges == edges[:1, :])):
        edges = edges[0, :]  # the same edges for every column: one search over all values
    per_row = hit.ndim == 1
    counts = sums = hits = None
    options = {"right_closed": right_closed, "ones_in_own_bin": ones_in_own_bin}
    for start, stop in _row_blocks(xp, conf):
        block = conf[start:stop, :]
        hit_block = hit[start:stop] if per_row else hit[start:stop, :]
        if weights is not None:
            _, c, s, h = _weighted_sums(xp, block, hit_block, weights[start:stop], edges, **options)
            c, s, h = (xp.reshape(a, (-1,)) for a in (c, s, h))
        elif (
            sparse := _dispatch.sparse_bin_sums(xp, block, hit_block, edges, **options)
        ) is not None:
            c, s, h = sparse
        else:
            flat, hit_flat = _flat_bins(xp, block, hit_block, edges, **options)
            values = _precise(xp, xp.reshape(block, (-1,)))
            c = _dispatch.bincount(xp, flat, length=length)
            s = _dispatch.bincount(xp, flat, length=length, weights=values)
            h = _dispatch.bincount(xp, hit_flat, length=length + 1)[:length]
        counts = c if counts is None else counts + c
        sums = s if sums is None else sums + s
        hits = h if hits is None else hits + h
    shape = (columns, nb)
    if ones_in_own_bin:
        edges = xp.concat([edges, edges[..., -1:]], axis=-1)
    if edges.ndim == 1:
        edges = xp.broadcast_to(edges[None, :], (columns, nb + 1))
    if weights is not None:  # sums of weights: float
        return BinStatistics(edges, *(xp.reshape(a, shape) for a in (counts, sums, hits)))
    index_dtype = default_int(xp)
    return BinStatistics(
        edges,
        xp.astype(xp.reshape(counts, shape), index_dtype),
        xp.reshape(sums, shape),
        xp.astype(xp.reshape(hits, shape), index_dtype),
    )


def _confidence_and_hits(xp: Any, p: Array, y: Array, scope: str) -> tuple[Array, Array]:
    """Confidences ``(N, C)`` and their hits: the top class (C = 1, hits ``(N, 1)`` bool) or
    every class (C = K, hits given as the label of each row: no ``(N, K)`` one-hot is built)."""
    if scope == "top_label":
        conf = xp.max(p, axis=-1)
        hit = xp.argmax(p, axis=-1) == y
        return conf[:, None], hit[:, None]
    return p, y


def _scope_statistics(
    xp: Any,
    p: Array,
    y: Array,
    *,
    n_bins: int,
    binning: str,
    scope: str,
    right_closed: bool,
    ones_in_own_bin: bool,
    weights: Array | None = None,
) -> BinStatistics:
    """The bin statistics a metric of ``scope`` needs, from checked ``(N, K)`` probabilities
    (with ``weights``, checked per-example weights: quantile edges stay those of the
    examples, unweighted; the weights weigh what lies in each bin)."""
    conf, hit = _confidence_and_hits(xp, p, y, scope)
    if binning == "uniform":  # one edge row for every column: one search over all values
        edges = _uniform_edges(xp, n_bins, conf.dtype, getattr(conf, "device", None))
    else:
        edges = _bin_edges(xp, conf, n_bins, binning)
    return _bin_statistics(
        xp,
        conf,
        hit,
        edges,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
        weights=weights,
    )


def _as_confidence(xp: Any, confidence: Array) -> Array:
    """Real floating confidences in [0, 1], in the computation dtype (at least float32)."""
    if not xp.isdtype(confidence.dtype, "real floating"):
        raise TypeError(f"confidence must be a real floating array, got dtype {confidence.dtype}")
    if confidence.ndim not in (1, 2):
        raise ValueError(
            f"confidence must have shape (N,) or (N, C); got shape {tuple(confidence.shape)}"
        )
    check_unit_interval(xp, confidence, "confidence")
    return upcast(xp, confidence)


def bin_edges(confidence: Array, /, *, n_bins: int = 15, binning: str = "uniform") -> Array:
    r"""Bin edges for confidences: equal-width on [0, 1], or the quantiles of each column.

    ``"uniform"`` gives :math:`e_i = i / B`; ``"quantile"`` gives the linear-interpolation
    quantiles :math:`i / B` of each column (``np.percentile``'s default, scikit-learn's
    ``strategy="quantile"``; ties collapse edges and leave bins empty). The edges are in the
    confidences' computation dtype, the dtype in which :func:`bin_statistics` compares.

    Parameters
    ----------
    confidence : array
        Confidences in [0, 1], shape ``(N,)`` or ``(N, C)``.
    n_bins : int, default 15
        Number of bins B.
    binning : {"uniform", "quantile"}
        Equal-width or equal-mass bins.

    Returns
    -------
    array
        Shape ``(B + 1,)`` for 1-D confidences, ``(C, B + 1)`` for 2-D ones.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(cal.bin_edges([0.1, 0.2, 0.4, 0.9], n_bins=2, binning="quantile"))
    [0.1 0.3 0.9]
    """
    _check_n_bins(n_bins)
    _choice(binning, BINNINGS, "binning")
    xp, (confidence,) = namespace(confidence, names=("confidence",))
    conf = _as_confidence(xp, confidence)
    if binning == "quantile" and int(conf.shape[0]) == 0:
        raise ValueError("quantile bin edges need at least one confidence; got none")
    edges = _bin_edges(xp, conf if conf.ndim == 2 else conf[:, None], n_bins, binning)
    # a copy, not a read-only broadcast view (torch.asarray warns on those)
    return xp.asarray(edges[0, :] if conf.ndim == 1 else edges, copy=True)


def bin_statistics(
    confidence: Array,
    hits: Array,
    /,
    *,
    edges: Array,
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
    weights: Array | None = None,
) -> BinStatistics:
    r"""Per-bin count, sum of confidences and number of hits: what every binned metric needs.

    For bin :math:`b` of column :math:`c`: :math:`n_{cb} = \#\{i : x_{ic} \in B_b\}`,
    :math:`S_{cb} = \sum_{i : x_{ic} \in B_b} x_{ic}` and
    :math:`H_{cb} = \sum_{i : x_{ic} \in B_b} [\text{hit}_{ic}]`. Each value gets its bin from
    a search of the inner edges and the three sums come from one ``bincount`` each, so the cost
    is a few passes over the values. Statistics of disjoint batches binned with the same edges
    add up to the statistics of all of them: call it per batch and sum.

    Parameters
    ----------
    confidence : array
        Confidences in [0, 1], shape ``(N,)`` (e.g. the top-label probability) or ``(N, C)``
        (e.g. every class's probability).
    hits : array
        Whether each confidence was right: bool or 0/1 of ``confidence``'s shape; or, for 2-D
        confidences, an integer array ``(N,)`` giving the one column of each row that is a hit
        (the label, for class-wise calibration; no ``(N, C)`` one-hot needed).
    edges : array
        Increasing bin edges from 0 to 1, ``(B + 1,)`` shared by every column or ``(C, B + 1)``
        (:func:`bin_edges`). They are compared in the confidences' computation dtype.
    right_closed : bool, default True
        ``(lo, hi]`` bins (Guo et al., scikit-learn) or ``[lo, hi)`` (netcal, torchmetrics).
    ones_in_own_bin : bool, default False
        With ``right_closed=False``, confidences equal to 1.0 in an extra last bin
        (torchmetrics).
    weights : array, optional
        Non-negative weight of each example (row), shape ``(N,)``: then
        :math:`n_{cb} = \sum_{i : x_{ic} \in B_b} w_i`, :math:`S_{cb} = \sum w_i x_{ic}` and
        :math:`H_{cb} = \sum w_i [\text{hit}_{ic}]` (floats), which the same formulas turn into
        weighted calibration errors (scikit-learn's ``sample_weight``: integer weights equal
        repeated rows).

    Returns
    -------
    BinStatistics
        Arrays ``(B,)`` for 1-D confidences, ``(C, B)`` for 2-D ones (``B + 1`` bins with
        ``ones_in_own_bin``).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> stats = cal.bin_statistics([0.9, 0.8, 0.3], [1, 0, 1], edges=[0.0, 0.5, 1.0])
    >>> print(stats.counts, stats.sum_confidence, stats.sum_hits)
    [1 2] [0.3 1.7] [1 1]
    >>> weighted = cal.bin_statistics([0.9, 0.8, 0.3], [1, 0, 1], edges=[0.0, 0.5, 1.0],
    ...                               weights=[2.0, 1.0, 1.0])
    >>> print(weighted.counts, weighted.sum_confidence, weighted.sum_hits)
    [1. 3.] [0.3 2.6] [1. 2.]
    """
    _check_edge_options(right_closed, ones_in_own_bin)
    xp, (confidence, hits) = namespace(confidence, hits, names=("confidence", "hits"))
    conf = _as_confidence(xp, confidence)
    device = getattr(conf, "device", None)
    if not _is_array(edges):
        edges = xp.asarray(edges, dtype=conf.dtype, device=device)
    edges = xp.astype(edges, conf.dtype)
    columns = 1 if conf.ndim == 1 else int(conf.shape[1])
    if (
        edges.ndim not in (1, 2)
        or int(edges.shape[-1]) < 2
        or (edges.ndim == 2 and int(edges.shape[0]) != columns)
    ):
        raise ValueError(
            f"edges must have shape (B + 1,) or ({columns}, B + 1) with B >= 1; "
            f"got shape {tuple(edges.shape)}"
        )
    if not bool(xp.all(edges[..., 1:] >= edges[..., :-1])):
        raise ValueError("edges must be increasing along their last axis")
    n = int(conf.shape[0])
    if conf.ndim == 2 and hits.ndim == 1 and xp.isdtype(hits.dtype, "integral"):
        if int(hits.shape[0]) != n:
            raise ValueError(
                f"hits of shape {tuple(hits.shape)} need one column index per row ({n})"
            )
        check_index_targets(xp, hits, columns, None)
        hit = hits
    else:
        if tuple(hits.shape) != tuple(conf.shape):
            raise ValueError(
                f"hits must have confidence's shape {tuple(conf.shape)} (or, for 2-D confidences, "
                f"be one integer column index per row); got shape {tuple(hits.shape)}"
            )
        if hits.dtype != xp.bool:
            if not bool(xp.all((hits == 0) | (hits == 1))):
                raise ValueError("hits must be bool or 0/1 (or one integer column index per row)")
            hits = hits == 1
        hit = hits if conf.ndim == 2 else hits[:, None]
    w = None if weights is None else _sample_weights(xp, weights, (n,), like=conf)
    stats = _bin_statistics(
        xp,
        conf if conf.ndim == 2 else conf[:, None],
        hit,
        edges,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
        weights=w,
    )
    if conf.ndim == 2:
        return stats
    return BinStatistics(
        stats.edges[0, :], stats.counts[0, :], stats.sum_confidence[0, :], stats.sum_hits[0, :]
    )
