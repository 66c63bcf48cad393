"""Scores of predicted probabilities: reliability curve, calibration errors, proper scores.

The reliability curve and the calibration errors (ECE, RMSCE, MCE) bin the confidences; the
bin-edge conventions (``right_closed``, ``ones_in_own_bin``) are the module notes of
:mod:`crossent._calibration._binning`. The Brier score, log-loss, label perplexity and top-k
accuracy need no bins.
"""

from __future__ import annotations

from typing import Any

from .. import _dispatch
from .._namespace import Array
from ..losses.probability import clip_eps
from ._binning import NORMS as NORMS
from ._binning import ReliabilityCurve, _check_binning_options, _scope_statistics
from ._inputs import (
    _check_finite_or_neg_inf,
    _choice,
    _log_of_base,
    _mean,
    _out,
    _prepare,
    _prepare_probs,
    _take,
)

# ---------------------------------------------------------------- reliability and ECE


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
    weights: Array | None = None,
    ignore_index: int | None = None,
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
    weights : array, optional
        Non-negative weight of each example, the labels' shape (scikit-learn's
        ``sample_weight``): a bin's count is its weight and its means are weighted, so
        integer weights equal repeated examples.
        Quantile edges stay the quantiles of the examples (unweighted).
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

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
    xp, p, y, w, dtype = _prepare_probs(probs, labels, weights=weights, ignore_index=ignore_index)
    stats = _scope_statistics(
        xp,
        p,
        y,
        n_bins=n_bins,
        binning=binning,
        scope=scope,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
        weights=w,
    )
    curve = stats.reliability_curve()
    edges, counts, conf, acc = curve.edges, curve.counts, curve.confidence, curve.accuracy
    if scope == "top_label":
        edges, counts, conf, acc = edges[0, :], counts[0, :], conf[0, :], acc[0, :]
    return ReliabilityCurve(
        _out(xp, edges, dtype), counts, _out(xp, conf, dtype), _out(xp, acc, dtype)
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
    weights: Array | None = None,
    ignore_index: int | None = None,
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
        The debiased l2 estimator of Kumar et al. (2019) (needs unweighted examples).
    weights : array, optional
        Non-negative weight of each example, the labels' shape (scikit-learn's
        ``sample_weight``): a bin's count is its weight and its means are weighted, so
        integer weights equal repeated examples.
        Quantile edges stay the quantiles of the examples (unweighted).
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

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
    if debias and weights is not None:
        raise ValueError("debias=True needs unweighted examples (it uses the bin counts)")
    xp, p, y, w, dtype = _prepare_probs(probs, labels, weights=weights, ignore_index=ignore_index)
    stats = _scope_statistics(
        xp,
        p,
        y,
        n_bins=n_bins,
        binning=binning,
        scope=scope,
        right_closed=right_closed,
        ones_in_own_bin=ones_in_own_bin,
        weights=w,
    )
    return _out(xp, stats.calibration_error(norm=norm, debias=debias), dtype)


# ---------------------------------------------------------------- proper scores and accuracy


def brier_score(
    probs: Array, labels: Array, /, *, weights: Array | None = None, ignore_index: int | None = None
) -> Array:
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
    weights : array, optional
        Non-negative weight of each example, the labels' shape (scikit-learn's
        ``sample_weight``): every mean is :math:`\sum_i w_i x_i / \sum_i w_i`, so integer
        weights equal repeated examples.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

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
    xp, p, y, w, dtype = _prepare_probs(probs, labels, weights=weights, ignore_index=ignore_index)
    # p - onehot(y) without the (N, K) one-hot: a copy with 1 subtracted at each label
    diff = _dispatch.subtract_at(xp, xp.asarray(p, copy=True), y, xp.ones_like(y, dtype=p.dtype))
    return _out(xp, _mean(xp, xp.sum(diff * diff, axis=-1), w), dtype)


def _nll_of_probs(xp: Any, p: Array, y: Array, eps: float | None) -> Array:
    e = clip_eps(xp, p.dtype, eps)
    p_y = xp.clip(_take(xp, p, y), e, 1 - e)
    return -xp.log(p_y)


def log_loss(
    probs: Array,
    targets: Array,
    /,
    *,
    base: float | None = None,
    eps: float | None = None,
    weights: Array | None = None,
    labels: Any = None,
    ignore_index: Any = None,
) -> Array:
    r"""Mean negative log-likelihood of the labels (cross-entropy of the predictions).

    .. math:: \text{NLL} = -\frac{1}{N} \sum_i \log_b \operatorname{clip}(p_{i y_i},
              \epsilon, 1 - \epsilon)

    The clip is scikit-learn's ``log_loss`` (``eps`` = the dtype's machine epsilon): a
    probability of 0 costs :math:`-\log \epsilon` (15.9 nats in float32), not infinity.

    Integer targets are column indices. Targets given as class names (strings, any objects,
    booleans or floats), or any targets with ``labels=``, are read as scikit-learn's
    ``log_loss(y_true, y_proba, labels=...)`` reads them: the classes are ``labels`` (else
    the distinct targets) in sorted order, the order of ``LabelBinarizer`` and ``np.unique``,
    column j of ``probs`` is the j-th class, and a 1-D ``probs`` is the probability of the
    second class. ``labels`` not in sorted order are warned about (the columns stay in sorted
    order, as in scikit-learn); a target outside ``labels``, fewer than 2 classes, or a class
    count other than the number of columns is a ValueError. To read integer targets the
    scikit-learn way (classes inferred from the targets), pass ``labels=np.unique(targets)``.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)`` or ``(N,)`` (binary class-1 probability).
    targets : array
        Integer labels in [0, K), shape ``probs.shape[:-1]``; or class names (see above).
    base : float, optional
        Logarithm base: None for nats, 2 for bits.
    eps : float, optional
        The clip; default the machine epsilon of the probabilities' dtype (0 disables it).
    weights : array, optional
        Non-negative weight of each example, the labels' shape (scikit-learn's
        ``sample_weight``): every mean is :math:`\sum_i w_i x_i / \sum_i w_i`, so integer
        weights equal repeated examples.
    labels : array-like, optional
        Every class, for the column order (scikit-learn's ``labels``); needed when the
        targets miss a class.
    ignore_index : int or label, optional
        Examples whose target equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    array
        A 0-d array in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(float(cal.log_loss([[0.5, 0.5], [0.25, 0.75]], [0, 1], base=2)), 4))
    0.7075
    >>> probs = [[0.7, 0.2, 0.1], [0.1, 0.8, 0.1], [0.3, 0.3, 0.4]]
    >>> print(round(float(cal.log_loss(probs, ["cat", "dog", "eel"])), 4))
    0.4987
    >>> print(round(float(cal.log_loss([0.9, 0.2], ["spam", "ham"], labels=["ham", "spam"])), 4))
    0.1643
    """
    log_b = _log_of_base(base)
    xp, p, y, w, dtype = _prepare_probs(
        probs, targets, weights=weights, ignore_index=ignore_index, classes=labels, encode=True
    )
    return _out(xp, _mean(xp, _nll_of_probs(xp, p, y, eps), w) / log_b, dtype)


def label_perplexity(
    probs: Array, labels: Array, /, *, eps: float | None = None, ignore_index: int | None = None
) -> Array:
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
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

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
    xp, p, y, w, dtype = _prepare_probs(probs, labels, ignore_index=ignore_index)
    return _out(xp, xp.exp(_mean(xp, _nll_of_probs(xp, p, y, eps), w)), dtype)


def top_k_accuracy(
    scores: Array,
    labels: Array,
    /,
    *,
    k: int = 1,
    weights: Array | None = None,
    ignore_index: int | None = None,
) -> Array:
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
    weights : array, optional
        Non-negative weight of each example, the labels' shape (scikit-learn's
        ``sample_weight``): every mean is :math:`\sum_i w_i x_i / \sum_i w_i`, so integer
        weights equal repeated examples.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

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
    xp, s, y, w, dtype = _prepare(
        scores, labels, name="scores", weights=weights, ignore_index=ignore_index
    )
    _check_finite_or_neg_inf(xp, s, "scores")
    above = xp.count_nonzero(s > _take(xp, s, y)[:, None], axis=-1)
    return _out(xp, _mean(xp, xp.astype(above < k, s.dtype), w), dtype)
