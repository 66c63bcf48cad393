"""Evaluating predicted probabilities: calibration error, reliability bins, scores, temperature.

Every metric takes probabilities of shape ``(..., K)`` (classes last) and integer labels of the
leading shape; a 1-D ``probs`` with labels of the same shape is read as the probability of class 1
of a binary problem. Leading axes are flattened: every row is one example.

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

from ._losses import clip_eps
from ._namespace import (
    Array,
    check_base,
    check_index_targets,
    check_positive,
    check_unit_interval,
    default_int,
    first_bad,
    format_index,
    namespace,
    result_dtype,
    upcast,
)
from ._primitives import _log_softmax, _lse, _mul0, _softmax

__all__ = [
    "LogLossDecomposition",
    "ReliabilityCurve",
    "apply_temperature",
    "brier_score",
    "expected_calibration_error",
    "fit_temperature",
    "label_perplexity",
    "log_loss",
    "log_loss_decomposition",
    "reliability_curve",
    "top_k_accuracy",
]

NORMS = ("l1", "l2", "max")
BINNINGS = ("uniform", "quantile")
SCOPES = ("top_label", "classwise")
KINDS = ("auto", "probs", "logits")

# ---------------------------------------------------------------- validation


def _choice(value: str, allowed: tuple[str, ...], name: str) -> str:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {allowed}, got {value!r}")
    return value


def _check_n_bins(n_bins: int) -> int:
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    return n_bins


def _prepare(values: Array, labels: Array, *, name: str = "probs") -> tuple[Any, Array, Array, Any]:
    """Namespace, values as ``(N, K)`` in the compute dtype, labels as ``(N,)``, result dtype.

    Labels are checked to be integers in [0, K); values are not range-checked here.
    """
    xp, (values, labels) = namespace(values, labels)
    if not xp.isdtype(values.dtype, "real floating"):
        if xp.isdtype(values.dtype, "integral") or values.dtype == xp.bool:
            values = xp.astype(values, xp.asarray(0.0).dtype)
        else:
            raise TypeError(f"{name} must be a real floating array, got dtype {values.dtype}")
    if not xp.isdtype(labels.dtype, "integral"):
        raise TypeError(f"labels must be integer class indices, got dtype {labels.dtype}")
    dtype = result_dtype(xp, values.dtype)
    v = upcast(xp, values)
    if v.ndim == labels.ndim and v.ndim >= 1 and tuple(v.shape) == tuple(labels.shape):
        if name != "probs":
            raise ValueError(
                f"{name} of shape {tuple(v.shape)} has no class axis (a 1-D binary {name} "
                "is only read as probabilities); give one column per class"
            )
        # Binary shorthand: the probability of class 1, as scikit-learn's y_prob.
        v = xp.stack([1 - v, v], axis=-1)
    if v.ndim < 2:
        raise ValueError(
            f"{name} must have shape (..., K) with a class axis last; got shape {tuple(v.shape)}"
        )
    if tuple(v.shape[:-1]) != tuple(labels.shape):
        raise ValueError(
            f"labels must have shape {tuple(v.shape[:-1])} (the shape of {name} without its last, "
            f"class axis); got {tuple(labels.shape)}"
        )
    k = int(v.shape[-1])
    if k < 2:
        raise ValueError(f"{name} must have at least 2 classes along the last axis; got {k}")
    v = xp.reshape(v, (-1, k))
    y = xp.reshape(labels, (-1,))
    if v.shape[0] == 0:
        raise ValueError(f"{name} holds no examples (shape {tuple(values.shape)})")
    check_index_targets(xp, y, k, None)
    return xp, v, y, dtype


def _prepare_probs(probs: Array, labels: Array) -> tuple[Any, Array, Array, Any]:
    xp, p, y, dtype = _prepare(probs, labels)
    check_unit_interval(xp, p, "probs")
    return xp, p, y, dtype


def _log_of_base(base: float | None) -> float:
    """The divisor that turns nats into units of ``base`` (1 for nats)."""
    b = check_base(base)
    return 1.0 if b is None else math.log(b)


def _onehot(xp: Any, y: Array, k: int) -> Array:
    return y[:, None] == xp.arange(k, dtype=y.dtype)


def _take(xp: Any, x: Array, y: Array) -> Array:
    """x[i, y[i]] for a 2-D ``x``."""
    return xp.take_along_axis(x, y[:, None], axis=-1)[:, 0]


def _precise(xp: Any, x: Array) -> Array:
    """``x`` in float64 where the library has it (jax without x64 does not), else unchanged."""
    info = xp.__array_namespace_info__()
    if "float64" in info.dtypes(kind="real floating") and x.dtype != xp.float64:
        return xp.astype(x, xp.float64)
    return x


def _out(xp: Any, x: Array, dtype: Any) -> Array:
    return xp.astype(x, dtype)


# ---------------------------------------------------------------- binning


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


# ---------------------------------------------------------------- reliability and ECE


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


def _means(xp: Any, bins: _Bins) -> tuple[Array, Array, Array]:
    """Mean confidence and accuracy per bin (0 where empty) and the non-empty mask."""
    n = xp.astype(bins.counts, bins.sum_conf.dtype)
    nonempty = bins.counts > 0
    safe = xp.where(nonempty, n, xp.ones_like(n))
    conf = xp.where(nonempty, bins.sum_conf / safe, xp.zeros_like(n))
    acc = xp.where(nonempty, xp.astype(bins.sum_hit, n.dtype) / safe, xp.zeros_like(n))
    return conf, acc, nonempty


def reliability_curve(
    probs: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    binning: str = "uniform",
    scope: str = "top_label",
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
) -> ReliabilityCurve:
    r"""Count, mean confidence and accuracy in each confidence bin: a reliability diagram's data.

    For bin :math:`B_b`, :math:`\operatorname{conf}(b) = \frac{1}{n_b}\sum_{i \in B_b} c_i` and
    :math:`\operatorname{acc}(b) = \frac{1}{n_b}\sum_{i \in B_b} [\text{hit}_i]`, where top-label
    uses :math:`c_i = \max_k p_{ik}` and hit = "argmax is the label"; class-wise does it for
    each class k with :math:`c_i = p_{ik}` and hit = "the label is k" (scikit-learn's
    ``calibration_curve`` of the one-vs-rest problem of class k).

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``; or ``(N,)`` for the class-1 probability of
        a binary problem.
    labels : array
        Integer labels in [0, K), shape ``probs.shape[:-1]``.
    n_bins : int, default 15
        Number of bins B.
    binning : {"uniform", "quantile"}
        Equal-width bins on [0, 1], or equal-mass bins whose edges are the linear-interpolation
        quantiles of the confidences (ties collapse edges and leave bins empty).
    scope : {"top_label", "classwise"}
        Bin the top-class confidence, or every class's probability separately.
    right_closed : bool, default True
        ``(lo, hi]`` bins (Guo et al., scikit-learn) or ``[lo, hi)`` bins (netcal, torchmetrics);
        see the module notes.
    ones_in_own_bin : bool, default False
        With ``right_closed=False``, put confidences equal to 1.0 in an extra bin, as
        torchmetrics does.

    Returns
    -------
    ReliabilityCurve
        ``edges``, ``counts``, ``confidence`` and ``accuracy`` arrays.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> curve = cal.reliability_curve([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7]], [0, 1, 1], n_bins=2)
    >>> print(curve.counts, curve.confidence, curve.accuracy)
    [0 3] [nan 0.8] [       nan 0.66666667]
    """
    _check_binning_options(n_bins, binning, scope, right_closed, ones_in_own_bin)
    xp, p, y, dtype = _prepare_probs(probs, labels)
    conf, hit = _confidence_and_hits(xp, p, y, scope)
    bins = _binned(
        xp,
        conf,
        hit,
        n_bins=n_bins,
        binning=binning,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
    )
    mean_conf, acc, nonempty = _means(xp, bins)
    nan = xp.full_like(mean_conf, math.nan)
    mean_conf = xp.where(nonempty, mean_conf, nan)
    acc = xp.where(nonempty, acc, nan)
    if scope == "top_label":
        return ReliabilityCurve(
            _out(xp, bins.edges[0, :], dtype),
            bins.counts[0, :],
            _out(xp, mean_conf[0, :], dtype),
            _out(xp, acc[0, :], dtype),
        )
    return ReliabilityCurve(
        _out(xp, bins.edges, dtype), bins.counts, _out(xp, mean_conf, dtype), _out(xp, acc, dtype)
    )


def expected_calibration_error(
    probs: Array,
    labels: Array,
    /,
    *,
    n_bins: int = 15,
    norm: str = "l1",
    binning: str = "uniform",
    scope: str = "top_label",
    right_closed: bool = True,
    ones_in_own_bin: bool = False,
    debias: bool = False,
) -> Array:
    r"""Expected calibration error: the binned gap between confidence and accuracy.

    .. math::

        \text{l1 (ECE)} = \sum_b \frac{n_b}{N} \lvert \operatorname{acc}(b) -
        \operatorname{conf}(b) \rvert, \quad
        \text{l2 (RMSCE)} = \Big(\sum_b \frac{n_b}{N}
        (\operatorname{acc}(b) - \operatorname{conf}(b))^2\Big)^{1/2}, \quad
        \text{max (MCE)} = \max_{b:\, n_b > 0} \lvert \operatorname{acc}(b) -
        \operatorname{conf}(b) \rvert

    With ``debias=True`` (l2 only) each bin's squared gap loses its sampling noise
    :math:`\operatorname{acc}(b)(1 - \operatorname{acc}(b)) / (n_b - 1)`, bins with fewer than 2
    examples are dropped, and the square root is taken of the sum clipped at 0 (Kumar et al.
    2019, ``verified_calibration``). Class-wise: the per-class l1 errors are averaged (Kull et
    al. 2019), the per-class squared errors averaged before the root (Kumar's marginal CE), the
    max taken over classes.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``, or ``(N,)`` for a binary class-1
        probability.
    labels : array
        Integer labels in [0, K).
    n_bins : int, default 15
        Number of bins (Guo et al. 2017 use 15).
    norm : {"l1", "l2", "max"}
        ECE, root-mean-square calibration error, or maximum calibration error.
    binning : {"uniform", "quantile"}
        Equal-width or equal-mass ("adaptive") bins.
    scope : {"top_label", "classwise"}
        Calibration of the top-class confidence, or of every class's probability.
    right_closed : bool, default True
        ``(lo, hi]`` bins (Guo et al., scikit-learn) or ``[lo, hi)`` (netcal, torchmetrics).
    ones_in_own_bin : bool, default False
        With ``right_closed=False``: confidences equal to 1.0 form their own bin, which
        reproduces torchmetrics' ``MulticlassCalibrationError`` exactly (torchmetrics #3510).
    debias : bool, default False
        The debiased l2 estimator of Kumar et al. (2019).

    Returns
    -------
    array
        A 0-d array in the probabilities' floating dtype, in [0, 1].

    References
    ----------
    Guo, Pleiss, Sun, Weinberger (2017), On Calibration of Modern Neural Networks.
    Kumar, Liang, Ma (2019), Verified Uncertainty Calibration.
    Kull et al. (2019), Beyond temperature scaling (class-wise ECE).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> probs = [[0.9, 0.1], [0.6, 0.4], [0.3, 0.7], [0.2, 0.8]]
    >>> labels = [0, 1, 1, 1]
    >>> print(round(float(cal.expected_calibration_error(probs, labels, n_bins=5)), 4))
    0.3
    """
    _check_binning_options(n_bins, binning, scope, right_closed, ones_in_own_bin)
    _choice(norm, NORMS, "norm")
    if debias and norm != "l2":
        raise ValueError(
            f"debias=True is the debiased l2 estimator; it needs norm='l2', got {norm!r}"
        )
    xp, p, y, dtype = _prepare_probs(probs, labels)
    conf, hit = _confidence_and_hits(xp, p, y, scope)
    bins = _binned(
        xp,
        conf,
        hit,
        n_bins=n_bins,
        binning=binning,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
    )
    mean_conf, acc, _ = _means(xp, bins)
    gap = acc - mean_conf  # 0 in empty bins
    weight = xp.astype(bins.counts, gap.dtype) / float(conf.shape[0])
    if norm == "l1":
        return _out(xp, xp.mean(xp.sum(weight * xp.abs(gap), axis=-1)), dtype)
    if norm == "max":
        return _out(xp, xp.max(xp.abs(gap)), dtype)
    square = gap * gap
    if debias:
        n = xp.astype(bins.counts, gap.dtype)
        usable = bins.counts >= 2
        noise = acc * (1 - acc) / xp.where(usable, n - 1, xp.ones_like(n))
        square = xp.where(usable, square - noise, xp.zeros_like(square))
    total = xp.mean(xp.sum(weight * square, axis=-1))
    return _out(xp, xp.sqrt(xp.maximum(total, xp.zeros_like(total))), dtype)


# ---------------------------------------------------------------- proper scores and accuracy


def brier_score(probs: Array, labels: Array, /) -> Array:
    r"""Multiclass Brier score: the mean squared distance to the one-hot label.

    .. math:: \text{BS} = \frac{1}{N} \sum_i \sum_k (p_{ik} - [y_i = k])^2 \in [0, 2]

    scikit-learn's ``brier_score_loss`` gives the same for K >= 3 and half of it for K = 2
    (``scale_by_half="auto"``).

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)`` or ``(N,)`` (binary class-1 probability).
    labels : array
        Integer labels in [0, K).

    Returns
    -------
    array
        A 0-d array in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(float(cal.brier_score([[0.8, 0.2], [0.4, 0.6]], [0, 0])), 4))
    0.4
    """
    xp, p, y, dtype = _prepare_probs(probs, labels)
    diff = p - xp.astype(_onehot(xp, y, int(p.shape[-1])), p.dtype)
    return _out(xp, xp.mean(xp.sum(diff * diff, axis=-1)), dtype)


def _nll_of_probs(xp: Any, p: Array, y: Array, eps: float | None) -> Array:
    e = clip_eps(xp, p.dtype, eps)
    p_y = xp.clip(_take(xp, p, y), e, 1 - e)
    return -xp.log(p_y)


def log_loss(
    probs: Array, labels: Array, /, *, base: float | None = None, eps: float | None = None
) -> Array:
    r"""Mean negative log-likelihood of the labels (cross-entropy of the predictions).

    .. math:: \text{NLL} = -\frac{1}{N} \sum_i \log_b \operatorname{clip}(p_{i y_i},
              \epsilon, 1 - \epsilon)

    The clip is scikit-learn's ``log_loss`` (``eps`` = the dtype's machine epsilon): a
    probability of 0 costs :math:`-\log \epsilon` (15.9 nats in float32), not infinity.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)`` or ``(N,)`` (binary class-1 probability).
    labels : array
        Integer labels in [0, K).
    base : float, optional
        Logarithm base: None for nats, 2 for bits.
    eps : float, optional
        The clip; default the machine epsilon of the probabilities' dtype (0 disables it).

    Returns
    -------
    array
        A 0-d array in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(float(cal.log_loss([[0.5, 0.5], [0.25, 0.75]], [0, 1], base=2)), 4))
    0.7075
    """
    log_b = _log_of_base(base)
    xp, p, y, dtype = _prepare_probs(probs, labels)
    return _out(xp, xp.mean(_nll_of_probs(xp, p, y, eps)) / log_b, dtype)


def label_perplexity(probs: Array, labels: Array, /, *, eps: float | None = None) -> Array:
    r"""Perplexity of the labels under the predictions: ``exp`` of the mean log-loss in nats.

    .. math:: \operatorname{PPL} = \exp\Big(-\frac{1}{N}\sum_i \log p_{i y_i}\Big)

    The effective number of classes the model hesitates between (K for a uniform guess, 1 for a
    certain and right one). :func:`crossent.perplexity` is the per-distribution
    :math:`e^{H(p, q)}` instead.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``.
    labels : array
        Integer labels in [0, K).
    eps : float, optional
        The clip of :func:`log_loss`.

    Returns
    -------
    array
        A 0-d array >= 1.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(float(cal.label_perplexity([[0.25] * 4, [0.25] * 4], [0, 3])), 4))
    4.0
    """
    xp, p, y, dtype = _prepare_probs(probs, labels)
    return _out(xp, xp.exp(xp.mean(_nll_of_probs(xp, p, y, eps))), dtype)


def top_k_accuracy(scores: Array, labels: Array, /, *, k: int = 1) -> Array:
    r"""Fraction of examples whose label is among the k highest scores.

    .. math:: \frac{1}{N} \sum_i \big[\, \#\{c : s_{ic} > s_{i y_i}\} < k \,\big]

    A tie with the label's score counts in the label's favour (scikit-learn's
    ``top_k_accuracy_score`` breaks ties by class order instead).

    Parameters
    ----------
    scores : array
        Probabilities or logits, shape ``(..., K)`` (any monotone score works).
    labels : array
        Integer labels in [0, K).
    k : int, default 1
        How many top classes count as right.

    Returns
    -------
    array
        A 0-d array in [0, 1] in the scores' floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> scores = [[0.5, 0.3, 0.2], [0.1, 0.3, 0.6], [0.2, 0.5, 0.3]]
    >>> print(float(cal.top_k_accuracy(scores, [0, 1, 2], k=2)))
    1.0
    """
    if isinstance(k, bool) or not isinstance(k, int) or k < 1:
        raise ValueError(f"k must be a positive integer, got {k!r}")
    xp, s, y, dtype = _prepare(scores, labels, name="scores")
    _check_finite_or_neg_inf(xp, s, "scores")
    above = xp.sum(xp.astype(s > _take(xp, s, y)[:, None], default_int(xp)), axis=-1)
    return _out(xp, xp.mean(xp.astype(above < k, s.dtype)), dtype)


# ---------------------------------------------------------------- temperature scaling


def _check_finite_or_neg_inf(xp: Any, z: Array, name: str) -> None:
    """No NaN and no +inf (a -inf logit is the log of a zero probability and is fine)."""
    found = first_bad(xp, xp.isnan(z) | (z == math.inf), z)
    if found is not None:
        index, value = found
        raise ValueError(
            f"{name} must be finite (or -inf); found {value} at index {format_index(index)}"
        )


def _looks_like_probs(xp: Any, v: Array) -> bool:
    """Every value in [0, 1] and every row summing to 1 (to a tolerance of the dtype)."""
    if not bool(xp.all((v >= 0) & (v <= 1))):
        return False
    k = int(v.shape[-1])
    tol = max(1e-4, 4 * k * float(xp.finfo(v.dtype).eps))
    return bool(xp.all(xp.abs(xp.sum(v, axis=-1) - 1) <= tol))


def _log_of_probs(xp: Any, p: Array) -> Array:
    # log(0) = -inf without the divide-by-zero warning of a bare log.
    positive = p > 0
    return xp.where(
        positive, xp.log(xp.where(positive, p, xp.ones_like(p))), xp.full_like(p, -math.inf)
    )


def _resolve_kind(xp: Any, v: Array, kind: str) -> str:
    _choice(kind, KINDS, "kind")
    if kind == "auto":
        return "probs" if _looks_like_probs(xp, v) else "logits"
    return kind


def _as_logits(xp: Any, v: Array, kind: str) -> Array:
    """Logits (log-probabilities for probabilities) of an ``(N, K)`` array of either kind."""
    if kind == "probs":
        check_unit_interval(xp, v, "probs")
        return _log_of_probs(xp, v)
    _check_finite_or_neg_inf(xp, v, "logits")
    return v


def _nll_terms(xp: Any, z: Array, z_y: Array, beta: float) -> tuple[float, float, float]:
    """Mean NLL of softmax(beta z) and its first two derivatives in beta.

    d/dbeta [lse(beta z) - beta z_y] = E_p[z] - z_y, and the second derivative is Var_p[z] >= 0:
    the NLL is convex in beta = 1/T.
    """
    s = beta * z
    log_p = _log_softmax(xp, s, -1)
    p = xp.exp(log_p)
    mean_z = xp.sum(_mul0(xp, p, z), axis=-1)
    d = z - mean_z[:, None]
    var = xp.sum(_mul0(xp, p, d * d), axis=-1)
    nll = _lse(xp, s, -1) - beta * z_y
    return float(xp.mean(nll)), float(xp.mean(mean_z - z_y)), float(xp.mean(var))


def _prepare_temperature(values: Array, labels: Array, kind: str) -> tuple[Any, Array, Array]:
    """Float64 (where available) logits shifted to row max 0, and the label's logit."""
    xp, v, y, _ = _prepare(values, labels, name="values")
    z = _as_logits(xp, v, _resolve_kind(xp, v, kind))
    z = _precise(xp, z)
    m = xp.max(z, axis=-1, keepdims=True)
    found = first_bad(xp, m[:, 0] == -math.inf, m[:, 0])
    if found is not None:
        index, _ = found
        raise ValueError(f"row {format_index(index)} has no finite value (all probabilities 0)")
    z = z - m  # NLL and its derivatives are invariant under a shift of each row
    z_y = _take(xp, z, y)
    found = first_bad(xp, z_y == -math.inf, z_y)
    if found is not None:
        index, _ = found
        raise ValueError(
            f"the label has probability 0 at example {format_index(index)}: the log-loss is "
            "infinite at every temperature; clip the probabilities first"
        )
    return xp, z, z_y


def fit_temperature(
    values: Array,
    labels: Array,
    /,
    *,
    kind: str = "auto",
    tol: float = 1e-12,
    max_iter: int = 200,
) -> float:
    r"""The temperature T > 0 that minimizes the log-loss of ``softmax(z / T)`` (Guo et al. 2017).

    .. math:: T^\ast = \arg\min_{T > 0} \frac{1}{N}\sum_i \Big[\operatorname{LSE}(z_i / T)
              - z_{i y_i} / T\Big]

    The objective is convex in :math:`\beta = 1/T` (its second derivative is the variance of
    the logits under the scaled softmax), so the minimum is found exactly: a bracket on the sign
    of the derivative, then Newton steps safeguarded by bisection, to a relative tolerance
    ``tol`` on :math:`\beta` (the result is computed in float64 where the library has it). It
    minimizes the log-loss, not the ECE, and can raise the ECE.

    Parameters
    ----------
    values : array
        Logits or log-probabilities, or probabilities (their log is taken), shape ``(..., K)``.
    labels : array
        Integer labels in [0, K) (the held-out set the temperature is fitted on).
    kind : {"auto", "probs", "logits"}
        What ``values`` are. "auto" reads them as probabilities when every value is in [0, 1]
        and every row sums to 1 (within ``max(1e-4, 4 K eps)``), else as logits.
    tol : float, default 1e-12
        Relative tolerance on :math:`1/T`.
    max_iter : int, default 200
        Iteration cap of the Newton/bisection phase.

    Returns
    -------
    float
        The optimal temperature (T > 1 softens over-confident predictions).

    Raises
    ------
    ValueError
        When no finite optimum exists: every example's label has the top score (the log-loss
        keeps falling as T -> 0), or the labels score at most the row average (it falls as
        T -> inf); or a label has probability 0 (infinite loss at every T).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> logits = [[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    >>> labels = [0, 0, 1, 1]  # 75% right at 98% confidence: over-confident
    >>> print(round(cal.fit_temperature(logits, labels), 4))
    3.6410
    """
    xp, z, z_y = _prepare_temperature(values, labels, kind)
    tol = float(tol)
    # The derivative at beta -> inf is mean(max z - z_y) = mean(-z_y); at beta -> 0+ it is the
    # mean over examples of (average finite logit - label logit).
    if float(xp.mean(-z_y)) <= 0:
        raise ValueError(
            "no finite optimal temperature: every example's label has the top score, so the "
            "log-loss keeps falling as T -> 0"
        )
    finite = z > -math.inf
    zeros = xp.zeros_like(z)
    row_mean = xp.sum(xp.where(finite, z, zeros), axis=-1) / xp.sum(
        xp.astype(finite, z.dtype), axis=-1
    )
    if float(xp.mean(row_mean - z_y)) >= 0:
        raise ValueError(
            "no finite optimal temperature: the labels score no better than the average class, "
            "so the log-loss keeps falling as T -> inf"
        )

    def derivative(beta: float) -> tuple[float, float]:
        _, g, h = _nll_terms(xp, z, z_y, beta)
        return g, h

    # Bracket the root of the increasing derivative by doubling or halving beta from 1.
    beta, (g, _) = 1.0, derivative(1.0)
    growing = g < 0
    while (g < 0) if growing else (g > 0):
        if not 1e-300 < beta < 1e300:
            raise ValueError("no finite optimal temperature: the derivative never changes sign")
        beta = beta * 2.0 if growing else beta / 2.0
        g, _ = derivative(beta)
    if g == 0:
        return 1.0 / beta
    lo, hi = (beta / 2.0, beta) if growing else (beta, beta * 2.0)
    # Safeguarded Newton on the bracket [lo, hi].
    beta = math.sqrt(lo * hi)
    for _ in range(max_iter):
        g, h = derivative(beta)
        if g == 0:
            break
        if g > 0:
            hi = beta
        else:
            lo = beta
        step = g / h if h > 0 else math.inf
        if abs(step) <= tol * beta:  # converged: the last Newton step is below the tolerance
            beta = min(max(beta - step, lo), hi)
            break
        new = beta - step
        if not lo < new < hi:
            new = 0.5 * (lo + hi)  # Newton left the bracket: bisect instead
        if hi - lo <= tol * beta:
            beta = new
            break
        beta = new
    return 1.0 / beta


def apply_temperature(values: Array, temperature: float, /, *, kind: str = "auto") -> Array:
    r"""Scale by a temperature: logits to ``z / T``, probabilities to ``softmax(log p / T)``.

    .. math:: p_k(T) = \frac{e^{z_k / T}}{\sum_j e^{z_j / T}} \propto p_k^{1/T}

    Parameters
    ----------
    values : array
        Logits (classes last) or probabilities.
    temperature : float
        T > 0 (from :func:`fit_temperature`).
    kind : {"auto", "probs", "logits"}
        What ``values`` are ("auto" as in :func:`fit_temperature`); the result is of the same
        kind.

    Returns
    -------
    array
        Scaled logits, or rescaled probabilities, with ``values``' shape and floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(cal.apply_temperature([[0.9, 0.1]], 2.0).round(4))
    [[0.75 0.25]]
    """
    t = check_positive(temperature, "temperature")
    xp, (values,) = namespace(values)
    if values.ndim < 1:
        raise ValueError("values must have a class axis (the last axis)")
    dtype = result_dtype(xp, values.dtype)
    v = upcast(
        xp, values if xp.isdtype(values.dtype, "real floating") else xp.astype(values, dtype)
    )
    flat = xp.reshape(v, (-1, int(v.shape[-1])))
    resolved = _resolve_kind(xp, flat, kind)
    z = _as_logits(xp, flat, resolved)
    if resolved == "logits":
        return _out(xp, v / t, dtype)
    return _out(xp, xp.reshape(_softmax(xp, z / t, -1), v.shape), dtype)


@dataclass(frozen=True)
class LogLossDecomposition:
    r"""The log-loss split into what the optimal temperature removes and the rest.

    ``log_loss = calibration + refinement`` (in the chosen base), with
    ``calibration = NLL(T=1) - NLL(T*) >= 0`` and ``refinement = NLL(T*)``.

    Attributes
    ----------
    log_loss : float
        The mean log-loss of the predictions as given.
    calibration : float
        The part removed by the optimal temperature ``T*`` on the same data.
    refinement : float
        The log-loss left after it.
    temperature : float
        ``T*``.
    """

    log_loss: float
    calibration: float
    refinement: float
    temperature: float


def log_loss_decomposition(
    values: Array, labels: Array, /, *, kind: str = "auto", base: float | None = None
) -> LogLossDecomposition:
    r"""Split the log-loss into a calibration part and the rest, with the optimal temperature.

    Seed 003 splits the expected loss into the irreducible entropy and a divergence,
    :math:`\mathbb{E}[-\log q_Y] = \mathbb{E}[H(p(\cdot|x))] + \mathbb{E}[D_{KL}(p \| q)]`.
    Grouping the examples by their forecast gives the proper-scoring-rule decomposition
    :math:`\mathbb{E}[-\log q_Y] = \mathbb{E}[H(c)] + \mathbb{E}[D_{KL}(c \| q)]`, with
    :math:`c = P(Y \mid q)` the calibrated forecast: refinement plus calibration.

    This function estimates it with the temperature family, exactly (no bins):

    .. math::

        \text{calibration} = \text{NLL}(q) - \min_{T>0} \text{NLL}(q^{(T)}) \ge 0, \qquad
        \text{refinement} = \text{NLL}(q^{(T^\ast)})

    Because :math:`q \mapsto q^{(T)}` is invertible, :math:`c` is the same for both, so in the
    population the calibration part equals
    :math:`\mathbb{E}[D_{KL}(c\|q)] - \mathbb{E}[D_{KL}(c\|q^{(T^\ast)})]`: a lower bound on
    the true calibration term (a temperature cannot fix every miscalibration), and the
    refinement an upper bound on :math:`\mathbb{E}[H(c)] \ge \mathbb{E}[H(p(\cdot|x))]`. It is
    measured in-sample; fit ``T`` on held-out data to judge a recalibration (as
    ``crossent report`` does).

    Parameters
    ----------
    values : array
        Logits, log-probabilities or probabilities, shape ``(..., K)``.
    labels : array
        Integer labels in [0, K).
    kind : {"auto", "probs", "logits"}
        What ``values`` are (see :func:`fit_temperature`).
    base : float, optional
        Logarithm base of the reported losses: None for nats, 2 for bits.

    Returns
    -------
    LogLossDecomposition
        ``log_loss``, ``calibration``, ``refinement`` and ``temperature`` (floats). The log-loss
        here is unclipped (a probability of 0 for a label is an error).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> logits = [[4.0, 0.0], [4.0, 0.0], [4.0, 0.0], [0.0, 4.0]]
    >>> d = cal.log_loss_decomposition(logits, [0, 0, 1, 1])
    >>> print(round(d.log_loss, 4), round(d.calibration, 4), round(d.refinement, 4))
    1.0181 0.4558 0.5623
    """
    log_b = _log_of_base(base)
    temperature = fit_temperature(values, labels, kind=kind)
    xp, z, z_y = _prepare_temperature(values, labels, kind)
    before, _, _ = _nll_terms(xp, z, z_y, 1.0)
    after, _, _ = _nll_terms(xp, z, z_y, 1.0 / temperature)
    after = min(after, before)  # T = 1 is feasible: the optimum is never worse
    return LogLossDecomposition(
        log_loss=before / log_b,
        calibration=(before - after) / log_b,
        refinement=after / log_b,
        temperature=temperature,
    )
