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
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .._namespace import Array, default_int
from ._inputs import _choice, _onehot

BINNINGS = ("uniform", "quantile")
SCOPES = ("top_label", "classwise")


def _check_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return n_bins


def _inner_positions(n: int, n_bins: int) -> list[float]:
    """Virtual indices of the quantiles ``i / B`` into ``n`` sorted values, as NumPy computes them.

    ``np.percentile(x, np.linspace(0, 1, B + 1) * 100)`` (scikit-learn's quantile strategy) goes
    through ``i * (1 / B) * 100 / 100 * (n - 1)``; the same float steps give the same edges.
    """
    step = 1.0 / n_bins
    qs = [i * step for i in range(n_bins)] + [1.0]
    return [((q * 100.0) / 100.0) * (n - 1) for q in qs]


def _bin_edges(xp: Any, conf: Array, n_bins: int, binning: str) -> Array:
    """Bin edges of shape ``(C, B + 1)`` for confidences ``conf`` of shape ``(N, C)``."""
    columns = int(conf.shape[1])
    if binning == "uniform":
        edges = xp.asarray([i / n_bins for i in range(n_bins + 1)], dtype=conf.dtype)
        return xp.broadcast_to(edges[None, :], (columns, n_bins + 1))
    # Equal-mass edges: the linear-interpolation quantiles of each column (np.percentile's
    # default). Ties collapse edges, leaving some bins empty, as in scikit-learn.
    s = xp.sort(conf, axis=0)
    n = int(s.shape[0])
    rows = []
    for v in _inner_positions(n, n_bins):
        lo = math.floor(v)
        t = v - lo
        a = s[lo, :]
        b = s[min(lo + 1, n - 1), :]
        d = b - a
        # NumPy's _lerp: a + d t below t = 0.5 and b - d (1 - t) above, exact at both ends.
        rows.append(a + d * t if t < 0.5 else b - d * (1.0 - t))
    return xp.stack(rows, axis=-1)


@dataclass(frozen=True)
class _Bins:
    edges: Array  # (C, nb + 1)
    counts: Array  # (C, nb) integer
    sum_conf: Array  # (C, nb)
    sum_hit: Array  # (C, nb)


def _binned(
    xp: Any,
    conf: Array,
    hit: Array,
    *,
    n_bins: int,
    binning: str,
    right_closed: bool,
    ones_in_own_bin: bool,
) -> _Bins:
    """Per-bin count, sum of confidence and sum of hits for each column of ``conf`` ``(N, C)``."""
    edges = _bin_edges(xp, conf, n_bins, binning)
    index_dtype = default_int(xp)
    idx = xp.zeros(conf.shape, dtype=index_dtype)
    for j in range(1, n_bins):
        e = edges[:, j][None, :]
        # A value on an inner edge belongs to the bin below it when bins are (lo, hi].
        above = conf > e if right_closed else conf >= e
        idx = idx + xp.astype(above, index_dtype)
    nb = n_bins
    if ones_in_own_bin:
        idx = xp.where(conf >= 1, xp.full_like(idx, n_bins), idx)
        nb = n_bins + 1
        edges = xp.concat([edges, edges[:, -1:]], axis=-1)
    zero = xp.zeros_like(conf)
    hit_i = xp.astype(hit, index_dtype)
    counts, sum_conf, sum_hit = [], [], []
    for b in range(nb):
        m = idx == b
        counts.append(xp.sum(xp.astype(m, index_dtype), axis=0))
        sum_conf.append(xp.sum(xp.where(m, conf, zero), axis=0))
        sum_hit.append(xp.sum(xp.where(m, hit_i, xp.zeros_like(hit_i)), axis=0))
    return _Bins(
        edges, xp.stack(counts, axis=-1), xp.stack(sum_conf, axis=-1), xp.stack(sum_hit, axis=-1)
    )


def _confidence_and_hits(xp: Any, p: Array, y: Array, scope: str) -> tuple[Array, Array]:
    """``(N, C)`` confidences and hits: the top class (C = 1) or every class (C = K)."""
    if scope == "top_label":
        conf = xp.max(p, axis=-1)
        hit = xp.argmax(p, axis=-1) == y
        return conf[:, None], hit[:, None]
    return p, _onehot(xp, y, int(p.shape[-1]))


def _check_binning_options(
    n_bins: int, binning: str, scope: str, right_closed: bool, ones_in_own_bin: bool
) -> None:
    _check_n_bins(n_bins)
    _choice(binning, BINNINGS, "binning")
    _choice(scope, SCOPES, "scope")
    if ones_in_own_bin and right_closed:
        raise ValueError(
            "ones_in_own_bin=True needs right_closed=False: with (lo, hi] bins a confidence of "
            "1.0 already lies in the last bin"
        )


def _means(xp: Any, bins: _Bins) -> tuple[Array, Array, Array]:
    """Mean confidence and accuracy per bin (0 where empty) and the non-empty mask."""
    n = xp.astype(bins.counts, bins.sum_conf.dtype)
    nonempty = bins.counts > 0
    safe = xp.where(nonempty, n, xp.ones_like(n))
    conf = xp.where(nonempty, bins.sum_conf / safe, xp.zeros_like(n))
    acc = xp.where(nonempty, xp.astype(bins.sum_hit, n.dtype) / safe, xp.zeros_like(n))
    return conf, acc, nonempty
