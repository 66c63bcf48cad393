"""The cross-entropy loss family, from logits and from probabilities.

Semantics follow PyTorch (``F.cross_entropy``, ``F.binary_cross_entropy_with_logits``) wherever
PyTorch is finite, with the class axis last by default. Documented deviations: a batch whose
targets are all ignored gives 0 (PyTorch: NaN), infinite logits give the mathematical limit
(PyTorch: NaN for BCE), half precision is computed in float32.

Each loss has a ``_prepare_*`` step shared with :mod:`crossent._gradients`, so validation and
the computed intermediate quantities are written once.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from ._namespace import (
    Array,
    check_class_vector,
    check_fraction,
    check_index_targets,
    check_nonnegative,
    check_nonnegative_array,
    check_positive,
    check_reduction,
    check_same_shape,
    check_unit_interval,
    default_int,
    is_concrete,
    namespace,
    normalize_axis,
    quiet_numpy,
    reduce,
    result_dtype,
    upcast,
)
from ._primitives import _log_softmax, _lse, _mul0, _shift_by_max, _sigmoid, _softmax, _softplus

__all__ = [
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "distillation_loss",
    "hinge_loss",
    "mse_loss",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
]


# ---------------------------------------------------------------- shared preparation


@dataclass
class ClassProblem:
    """A validated K-class problem with the class axis moved last.

    ``targets`` are integer indices (``index_targets``) with ignored entries replaced by 0, or
    probabilities with the logits' shape. ``valid`` marks non-ignored samples; ``weight`` is
    the per-class weight vector or None; ``w_t`` the weight of each sample's true class (0 for
    ignored samples).
    """

    xp: Any
    values: Array
    targets: Array
    index_targets: bool
    valid: Array | None
    weight: Array | None
    w_t: Array | None
    num_classes: int
    axis: int
    dtype: Any

    def onehot(self) -> Array:
        xp = self.xp
        return xp.astype(self.targets[..., None] == xp.arange(self.num_classes), self.values.dtype)

    def restore(self, per_class: Array) -> Array:
        """Move the class axis of a per-class result back and cast it to the input dtype."""
        return restore_axis(self.xp, per_class, self.axis, self.dtype)


def class_last(xp: Any, x: Array, axis: int) -> Array:
    """``x`` with its (normalized) class ``axis`` moved last."""
    return x if axis == x.ndim - 1 else xp.moveaxis(x, axis, -1)


def restore_axis(xp: Any, x: Array, axis: int, dtype: Any) -> Array:
    """Inverse of :func:`class_last`, cast to ``dtype``: for per-class results (gradients)."""
    if axis != x.ndim - 1:
        x = xp.moveaxis(x, -1, axis)
    return xp.astype(x, dtype)


def all_finite(xp: Any, x: Array) -> bool:
    """Whether ``x`` is concrete and finite everywhere (False under tracing: the safe path)."""
    return is_concrete(x) and bool(xp.all(xp.isfinite(x)))


def _gather(xp: Any, x: Array, index: Array) -> Array:
    """x[..., index[...]] along the last axis."""
    return xp.take_along_axis(x, index[..., None], axis=-1)[..., 0]


def _take_weight(xp: Any, weight: Array, index: Array) -> Array:
    flat = xp.take(weight, xp.reshape(index, (-1,)), axis=0)
    return xp.reshape(flat, index.shape)


def prepare_classes(
    values: Array,
    targets: Array,
    *,
    axis: int,
    weight: Array | None = None,
    ignore_index: int | None = -100,
    allow_probability_targets: bool = True,
) -> ClassProblem:
    """Validate logits/probabilities and targets of a K-class problem; move the class axis last."""
    xp, (values, targets, weight) = namespace(values, targets, weight)
    if values.ndim == 0:
        raise ValueError("expected an array with a class axis, got a 0-d array")
    axis = normalize_axis(axis, values.ndim)
    dtype = result_dtype(xp, values.dtype)
    z = class_last(xp, upcast(xp, values), axis)
    num_classes = int(z.shape[-1])
    if num_classes == 0:
        raise ValueError(f"the class axis (axis={axis}) has length 0; need at least one class")
    batch_shape = tuple(z.shape[:-1])
    w = check_class_vector(xp, weight, num_classes, "weight", z.dtype)

    if xp.isdtype(targets.dtype, "integral"):
        if tuple(targets.shape) != batch_shape:
            raise ValueError(
                f"class-index targets must have shape {batch_shape} (the shape of the input "
                f"{tuple(values.shape)} without axis {axis}); got {tuple(targets.shape)}"
            )
        # a uint8 array cannot even be compared with ignore_index=-100 under array_api_strict
        targets = xp.astype(targets, default_int(xp))
        check_index_targets(xp, targets, num_classes, ignore_index)
        valid = targets != ignore_index if ignore_index is not None else xp.ones_like(targets) > 0
        t = xp.where(valid, targets, xp.zeros_like(targets))
        if w is not None:
            w_t = _take_weight(xp, w, t)
        else:
            w_t = xp.ones(batch_shape, dtype=z.dtype)
        w_t = xp.where(valid, w_t, xp.zeros_like(w_t))
        return ClassProblem(xp, z, t, True, valid, w, w_t, num_classes, axis, dtype)

    if not xp.isdtype(targets.dtype, "real floating"):
        raise TypeError(
            f"targets must be integer class indices or probabilities, got {targets.dtype}"
        )
    if tuple(targets.shape) == batch_shape:
        raise TypeError(
            f"targets of shape {batch_shape} look like class indices but have dtype "
            f"{targets.dtype}; class indices must be an integer array"
        )
    if not allow_probability_targets:
        raise TypeError(f"targets must be integer class indices, got dtype {targets.dtype}")
    check_same_shape(values, targets, ("input", "probability targets"))
    check_unit_interval(xp, targets, "probability targets")
    y = class_last(xp, xp.astype(targets, z.dtype), axis)
    return ClassProblem(xp, z, y, False, None, w, None, num_classes, axis, dtype)


def target_distribution(problem: ClassProblem, label_smoothing: float) -> Array:
    """The weighted target distribution q with loss = -sum_c q_c log p_c.

    Index targets: q = (1-e) w[y] onehot(y) + (e/K) w, zero for ignored samples (PyTorch's
    smoothing with class weights). Probability targets: q = w * ((1-e) y + e/K).
    """
    xp, e, k = problem.xp, label_smoothing, problem.num_classes
    if problem.index_targets:
        assert problem.w_t is not None and problem.valid is not None
        q = (1 - e) * problem.w_t[..., None] * problem.onehot()
        if e > 0:
            w = problem.weight if problem.weight is not None else xp.ones(k, dtype=q.dtype)
            q = q + (e / k) * xp.astype(problem.valid, q.dtype)[..., None] * w
        return q
    q = problem.targets if e == 0 else (1 - e) * problem.targets + e / k
    return q * problem.weight if problem.weight is not None else q


def _mean_denominator(problem: ClassProblem) -> Array | None:
    """PyTorch's normalizer: sum of w[y_i] over non-ignored samples for index targets, else N."""
    return problem.xp.sum(problem.w_t) if problem.index_targets else None


def _index_nll(
    problem: ClassProblem, nll_t: Array, log_probs: Array | None, label_smoothing: float
) -> Array:
    """Per-sample weighted, smoothed NLL for index targets, from -log p of the true class.

    ``log_probs`` (all classes) is needed only for label smoothing. Terms with a zero weight
    are exactly 0 even where log p is -inf (a class weight of 0 silences its class).
    """
    xp, e, k = problem.xp, label_smoothing, problem.num_classes
    assert problem.w_t is not None and problem.valid is not None
    loss = _mul0(xp, (1 - e) * problem.w_t, nll_t)
    if e > 0:
        assert log_probs is not None
        w = problem.weight if problem.weight is not None else xp.ones(k, dtype=loss.dtype)
        smooth = -xp.sum(_mul0(xp, xp.broadcast_to(w, log_probs.shape), log_probs), axis=-1)
        loss = loss + (e / k) * smooth
    # Ignored samples contribute exactly 0, whatever their logits hold (even NaN).
    return xp.where(problem.valid, loss, xp.zeros_like(loss))


# ---------------------------------------------------------------- losses from logits


def prepare_softmax_ce(
    logits: Array,
    targets: Array,
    *,
    axis: int,
    weight: Array | None,
    ignore_index: int | None,
    label_smoothing: float,
    z_loss: float,
) -> tuple[ClassProblem, float, float]:
    """Validated problem, label smoothing and z-loss coefficient of a softmax cross-entropy."""
    e = check_fraction(label_smoothing, "label_smoothing")
    z_coef = check_nonnegative(z_loss, "z_loss")
    problem = prepare_classes(logits, targets, axis=axis, weight=weight, ignore_index=ignore_index)
    return problem, e, z_coef


def softmax_ce_per_sample(problem: ClassProblem, lse: Array, e: float, z_coef: float) -> Array:
    """Per-sample softmax cross-entropy, given the log-sum-exp of each row's logits."""
    xp, z = problem.xp, problem.values
    if problem.index_targets and e == 0 and all_finite(xp, lse):
        # CE = logsumexp(z) - z_t: the common case needs nothing more than the true logit.
        loss = _index_nll(problem, lse - _gather(xp, z, problem.targets), None, e)
    else:
        # Smoothing, soft targets and infinite rows work on logits shifted by their max, whose
        # +-inf rows hold the limit (see _shift_by_max). Never softmax-then-log.
        shifted = _shift_by_max(xp, z, -1)
        log_probs = shifted - xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
        if problem.index_targets:
            nll_t = 0.0 - _gather(xp, log_probs, problem.targets)  # +0.0, not -0.0, at p = 1
            loss = _index_nll(problem, nll_t, log_probs, e)
        else:
            q = target_distribution(problem, e)
            loss = -xp.sum(_mul0(xp, q, log_probs), axis=-1)
    if z_coef > 0:
        w_z = problem.w_t if problem.w_t is not None else xp.ones_like(lse)
        loss = loss + _mul0(xp, z_coef * w_z, lse * lse)
    return loss


def finish(problem: ClassProblem, per_sample: Array, reduction: str) -> Array:
    """Reduce per-sample losses with PyTorch's normalizer and cast to the input dtype."""
    xp = problem.xp
    out = reduce(xp, per_sample, reduction, denominator=_mean_denominator(problem))
    return xp.astype(out, problem.dtype)


@quiet_numpy
def softmax_cross_entropy(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int = -1,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    reduction: str = "mean",
) -> Array:
    r"""Cross-entropy of ``softmax(logits)`` against class indices or target probabilities.

    For class-index targets :math:`y_i`, with class weights :math:`w`, smoothing :math:`e`
    over :math:`K` classes and z-loss coefficient :math:`\zeta`:

    .. math::

        \ell_i = (1-e)\, w_{y_i} \bigl(\operatorname{LSE}(z_i) - z_{i y_i}\bigr)
                 + \frac{e}{K} \sum_c w_c \bigl(\operatorname{LSE}(z_i) - z_{ic}\bigr)
                 + \zeta\, w_{y_i} \operatorname{LSE}(z_i)^2,
        \qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over non-ignored samples, exactly as ``torch.nn.functional.cross_entropy`` (plus z-loss).
    For probability targets :math:`y_{ic}`, :math:`\ell_i = -\sum_c w_c ((1-e) y_{ic} + e/K)
    \log p_{ic}` and the mean divides by the number of samples.

    Parameters
    ----------
    logits : array
        Unnormalized scores, classes along ``axis``. Never pass probabilities (see
        :func:`crossent.diagnose`).
    targets : array
        Integer class indices with the shape of ``logits`` without ``axis``, or probabilities
        with the shape of ``logits``.
    axis : int, default -1
        The class axis (PyTorch uses 1: pass ``axis=1`` for (N, C, d1, ...) inputs).
    weight : array, optional
        Non-negative weight per class, shape (K,).
    ignore_index : int, default -100
        Index targets equal to it contribute nothing (not even to the mean's denominator).
    label_smoothing : float, default 0
        Mix ``e`` of the uniform distribution into the targets (the e/K convention).
    z_loss : float, default 0
        Coefficient of :math:`\operatorname{LSE}(z)^2`, which keeps logits from drifting.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the per-sample losses (0 for ignored samples).

    Returns
    -------
    array
        The loss, in the logits' floating dtype. A batch whose targets are all ignored gives 0
        (PyTorch: NaN). Infinite logits give the limit: 0 where the true class holds the +inf,
        +inf where the true class has logit -inf.

    References
    ----------
    .. [1] PyTorch, ``torch.nn.functional.cross_entropy``.
    .. [2] Chowdhery et al., "PaLM" (2022), for the z-loss.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0])), 4))
    0.417
    >>> print(ce.softmax_cross_entropy([[1000.0, 0.0, -1000.0]], [2], reduction="none"))
    [2000.]
    """
    check_reduction(reduction)
    problem, e, z_coef = prepare_softmax_ce(
        logits,
        targets,
        axis=axis,
        weight=weight,
        ignore_index=ignore_index,
        label_smoothing=label_smoothing,
        z_loss=z_loss,
    )
    lse = _lse(problem.xp, problem.values, -1)
    return finish(problem, softmax_ce_per_sample(problem, lse, e, z_coef), reduction)


def prepare_binary(
    logits: Array,
    targets: Array,
    *,
    weight: Array | None,
    pos_weight: Array | None,
    label_smoothing: float,
) -> tuple[Any, Array, Array, Array | None, Array | None, Any]:
    """Validated (xp, z, y, weight, pos_weight, dtype) of an element-wise binary problem."""
    xp, (logits, targets, weight, pos_weight) = namespace(logits, targets, weight, pos_weight)
    e = check_fraction(label_smoothing, "label_smoothing")
    check_same_shape(logits, targets, ("logits", "targets"))
    dtype = result_dtype(xp, logits.dtype)
    z = upcast(xp, logits)
    y = xp.astype(targets, z.dtype)
    check_unit_interval(xp, y, "targets")
    if e > 0:
        y = (1 - e) * y + e / 2  # the binary case of e/K, K = 2 (Keras' convention)
    extra = []
    for name, array in (("weight", weight), ("pos_weight", pos_weight)):
        if array is not None:
            array = xp.astype(array, z.dtype)
            check_nonnegative_array(xp, array, name)
        extra.append(array)
    return xp, z, y, extra[0], extra[1], dtype


@quiet_numpy
def sigmoid_binary_cross_entropy(
    logits: Array,
    targets: Array,
    /,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Array:
    r"""Binary cross-entropy of ``sigmoid(logits)``, element-wise (binary and multi-label).

    .. math::

        \ell = w \bigl[\, \pi\, y \operatorname{softplus}(-z) + (1 - y) \operatorname{softplus}(z)
        \bigr]

    with :math:`\pi` the ``pos_weight``; :math:`\operatorname{softplus}(-z) = -\log\sigma(z)`
    and :math:`\operatorname{softplus}(z) = -\log(1-\sigma(z))` are computed without overflow.
    Equals ``torch.nn.functional.binary_cross_entropy_with_logits``; unlike it, +-inf logits
    give the limit (0 or +inf), never NaN (pytorch #49844).

    Parameters
    ----------
    logits : array
        One logit per binary decision.
    targets : array
        Targets in [0, 1] (hard or soft), same shape as ``logits``.
    weight : array, optional
        Non-negative weights broadcastable to ``logits``.
    pos_weight : array, optional
        Weight of the positive term, broadcast along the last axis (one per label).
    label_smoothing : float, default 0
        Targets become ``(1 - e) y + e/2``.
    reduction : {"mean", "sum", "none"}
        "mean" averages over every element.

    Returns
    -------
    array
        The loss in the logits' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> ones = [1.0, 1.0, 1.0]
    >>> print(ce.sigmoid_binary_cross_entropy([50.0, -50.0, 0.0], ones, reduction="none"))
    [1.92874985e-22 5.00000000e+01 6.93147181e-01]
    """
    check_reduction(reduction)
    xp, z, y, w, pw, dtype = prepare_binary(
        logits, targets, weight=weight, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
    positive = y if pw is None else pw * y
    # A zero coefficient removes its term even where softplus is +inf (y = 1 at z = +inf).
    loss = _mul0(xp, positive, _softplus(xp, -z)) + _mul0(xp, 1 - y, _softplus(xp, z))
    if w is not None:
        loss = _mul0(xp, xp.broadcast_to(w, loss.shape), loss)
    return xp.astype(reduce(xp, loss, reduction), dtype)


def _focal_margin(problem: ClassProblem) -> tuple[Array, Array]:
    """d = LSE_{c != t}(z) - z_t and the softmax over the other classes.

    In terms of d, 1 - p_t = sigmoid(d) and -log p_t = softplus(d): the focal loss becomes a
    function of one number computed without cancellation, even where p_t rounds to 1.
    """
    xp = problem.xp
    shifted = _shift_by_max(xp, problem.values, -1)
    is_target = problem.targets[..., None] == xp.arange(problem.num_classes)
    others = xp.where(is_target, xp.full_like(shifted, -math.inf), shifted)
    lse_others = _lse(xp, others, -1)
    d = lse_others - _gather(xp, shifted, problem.targets)
    return d, others


def focal_from_margin(xp: Any, d: Array, gamma: float) -> Array:
    """softplus(d) * sigmoid(d)^gamma, in log space (finite gradient for every gamma >= 0)."""
    ce = _softplus(xp, d)
    if gamma == 0:
        return ce
    return xp.exp(gamma * -_softplus(xp, -d)) * ce


def prepare_softmax_focal(
    logits: Array,
    targets: Array,
    *,
    axis: int,
    alpha: float | Array | None,
    gamma: float,
    ignore_index: int | None,
) -> tuple[ClassProblem, Array, Array, Array]:
    """Problem, alpha_t (0 where ignored), margin d and the shifted logits of the other classes."""
    check_nonnegative(gamma, "gamma")
    problem = prepare_classes(
        logits, targets, axis=axis, ignore_index=ignore_index, allow_probability_targets=False
    )
    xp = problem.xp
    assert problem.valid is not None
    if alpha is None or isinstance(alpha, (int, float)):
        a = 1.0 if alpha is None else check_nonnegative(alpha, "alpha")
        alpha_t = a * xp.astype(problem.valid, problem.values.dtype)
    else:
        vector = check_class_vector(xp, alpha, problem.num_classes, "alpha", problem.values.dtype)
        assert vector is not None
        alpha_t = _take_weight(xp, vector, problem.targets)
        alpha_t = xp.where(problem.valid, alpha_t, xp.zeros_like(alpha_t))
    d, others = _focal_margin(problem)
    return problem, alpha_t, d, others


@quiet_numpy
def softmax_focal_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int = -1,
    alpha: float | Array | None = None,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Array:
    r"""Multiclass focal loss: cross-entropy down-weighted on examples already classified well.

    .. math:: \ell_i = -\alpha_{y_i} (1 - p_{i y_i})^\gamma \log p_{i y_i}

    Computed from the margin :math:`d = \operatorname{LSE}_{c \ne t} z_c - z_t`, where
    :math:`1 - p_t = \sigma(d)` and :math:`-\log p_t = \operatorname{softplus}(d)`: no
    :math:`1 - p_t` cancellation, and finite gradients at saturated logits for every
    :math:`\gamma \ge 0` (optax #1267 gave NaN for :math:`\gamma < 2`).

    Parameters
    ----------
    logits : array
        Unnormalized scores, classes along ``axis``.
    targets : array
        Integer class indices.
    axis : int, default -1
        The class axis.
    alpha : float or array, optional
        A scalar weight, or one weight per class (shape (K,)). None means 1.
    gamma : float, default 2
        Focusing exponent; 0 gives plain cross-entropy.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}
        "mean" averages over the non-ignored samples.

    Returns
    -------
    array
        The loss, in the logits' floating dtype.

    References
    ----------
    .. [1] Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.softmax_focal_loss([[2.0, 1.0, 0.1]], [0], gamma=2.0)), 4))
    0.0485
    """
    check_reduction(reduction)
    problem, alpha_t, d, _ = prepare_softmax_focal(
        logits, targets, axis=axis, alpha=alpha, gamma=gamma, ignore_index=ignore_index
    )
    xp = problem.xp
    assert problem.valid is not None
    loss = _mul0(xp, alpha_t, focal_from_margin(xp, d, gamma))
    count = xp.sum(xp.astype(problem.valid, loss.dtype))
    return xp.astype(reduce(xp, loss, reduction, denominator=count), problem.dtype)


def sigmoid_focal_parts(
    logits: Array, targets: Array, *, alpha: float | None, gamma: float
) -> tuple[Any, Array, Array, Array, Array, Any]:
    """(xp, z, y, alpha_t, log(1 - p_t), dtype) of torchvision's sigmoid focal loss."""
    check_nonnegative(gamma, "gamma")
    xp, z, y, _, _, dtype = prepare_binary(
        logits, targets, weight=None, pos_weight=None, label_smoothing=0.0
    )
    if alpha is None or alpha < 0:
        alpha_t = xp.ones_like(y)
    else:
        a = check_fraction(alpha, "alpha")
        alpha_t = a * y + (1 - a) * (1 - y)
    # log(1 - p_t) = log(y sigmoid(-z) + (1 - y) sigmoid(z)), as a log-sum-exp of two terms:
    # no cancellation where the prediction is right and confident.
    log_terms = xp.stack(
        [_safe_log(xp, y) - _softplus(xp, z), _safe_log(xp, 1 - y) - _softplus(xp, -z)], axis=-1
    )
    return xp, z, y, alpha_t, _lse(xp, log_terms, -1), dtype


def _safe_log(xp: Any, x: Array) -> Array:
    """log(x) with log(0) = -inf and no division by zero in a gradient taken through it."""
    positive = x > 0
    return xp.where(positive, xp.log(xp.where(positive, x, xp.ones_like(x))), -math.inf)


@quiet_numpy
def sigmoid_focal_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    alpha: float | None = 0.25,
    gamma: float = 2.0,
    reduction: str = "mean",
) -> Array:
    r"""Binary (and multi-label) focal loss of ``sigmoid(logits)``, torchvision's semantics.

    .. math::

        \ell = \alpha_t (1 - p_t)^\gamma \operatorname{BCE}(z, y), \quad
        p_t = p y + (1-p)(1-y), \quad \alpha_t = \alpha y + (1-\alpha)(1-y)

    computed with :math:`\log(1 - p_t)` as a log-sum-exp, so it stays finite and smooth at
    saturated logits for every :math:`\gamma \ge 0`.

    Parameters
    ----------
    logits : array
        One logit per binary decision.
    targets : array
        Targets in [0, 1], same shape.
    alpha : float or None, default 0.25
        Weight of positives (negatives get 1 - alpha); None or a negative value disables it.
    gamma : float, default 2
        Focusing exponent.
    reduction : {"mean", "sum", "none"}
        torchvision's default is "none"; crossent's is "mean" like every other loss here.

    Returns
    -------
    array
        The loss, in the logits' floating dtype.

    References
    ----------
    .. [1] Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.sigmoid_focal_loss([3.0, -3.0], [1.0, 1.0], reduction="none").round(4))
    [0.     0.6916]
    """
    check_reduction(reduction)
    xp, z, y, alpha_t, log_one_minus_pt, dtype = sigmoid_focal_parts(
        logits, targets, alpha=alpha, gamma=gamma
    )
    bce = _mul0(xp, y, _softplus(xp, -z)) + _mul0(xp, 1 - y, _softplus(xp, z))
    loss = bce if gamma == 0 else xp.exp(gamma * log_one_minus_pt) * bce
    return xp.astype(reduce(xp, _mul0(xp, alpha_t, loss), reduction), dtype)


def prepare_distillation(
    student_logits: Array, teacher_logits: Array, *, temperature: float, axis: int
) -> tuple[Any, Array, Array, float, int, Any]:
    """(xp, log p_teacher, log q_student, T, axis, dtype), the class axis moved last."""
    t = check_positive(temperature, "temperature")
    xp, (s, te) = namespace(student_logits, teacher_logits)
    check_same_shape(s, te, ("student_logits", "teacher_logits"))
    axis = normalize_axis(axis, s.ndim)
    dtype = result_dtype(xp, s.dtype)
    log_q, log_p = (_log_softmax(xp, class_last(xp, upcast(xp, a), axis) / t, -1) for a in (s, te))
    return xp, log_p, xp.astype(log_q, log_p.dtype), t, axis, dtype


@quiet_numpy
def distillation_loss(
    student_logits: Array,
    teacher_logits: Array,
    /,
    *,
    temperature: float = 1.0,
    axis: int = -1,
    reduction: str = "mean",
) -> Array:
    r"""Knowledge-distillation loss of Hinton et al.: KL of the softened distributions times T².

    .. math::

        \ell_i = T^2\, D_{KL}\bigl(\operatorname{softmax}(t_i / T) \,\|\,
                 \operatorname{softmax}(s_i / T)\bigr)

    The :math:`T^2` keeps the gradient's scale independent of the temperature. "mean" averages
    over samples (PyTorch's ``kl_div(..., reduction="batchmean")``).

    Parameters
    ----------
    student_logits, teacher_logits : array
        Logits of the same shape, classes along ``axis``.
    temperature : float, default 1
        Softening temperature T > 0.
    axis : int, default -1
        The class axis.
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.

    Returns
    -------
    array
        The loss in the student logits' floating dtype.

    References
    ----------
    .. [1] Hinton, Vinyals, Dean, "Distilling the Knowledge in a Neural Network", 2015.

    Examples
    --------
    >>> import crossent as ce
    >>> print(float(ce.distillation_loss([[1.0, 2.0]], [[1.0, 2.0]], temperature=4.0)))
    0.0
    """
    check_reduction(reduction)
    xp, log_teacher, log_student, t, _, dtype = prepare_distillation(
        student_logits, teacher_logits, temperature=temperature, axis=axis
    )
    teacher = xp.exp(log_teacher)
    loss = (t * t) * xp.sum(_mul0(xp, teacher, log_teacher - log_student), axis=-1)
    return xp.astype(reduce(xp, loss, reduction), dtype)


@quiet_numpy
def mse_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int = -1,
    activation: str = "softmax",
    reduction: str = "mean",
) -> Array:
    r"""Squared error of the predicted probabilities: the loss the seeds compare with CE.

    .. math::

        \ell_i = \sum_c (p_{ic} - y_{ic})^2, \quad p = \operatorname{softmax}(z)
        \qquad\text{or}\qquad \ell = (\sigma(z) - y)^2

    Its gradient carries the factor :math:`\sigma'(z) = p(1-p)` that vanishes on confident
    mistakes, which is why cross-entropy learns faster (see :func:`crossent.grad.mse_loss`).

    Parameters
    ----------
    logits : array
        Logits (the probabilities are formed inside).
    targets : array
        Softmax: class indices or probabilities; sigmoid: targets of the logits' shape.
    axis : int, default -1
        The class axis (softmax only).
    activation : {"softmax", "sigmoid"}
        How logits become probabilities.
    reduction : {"mean", "sum", "none"}
        "mean" averages over samples (softmax) or elements (sigmoid).

    Returns
    -------
    array
        The loss in the logits' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.mse_loss([4.59512], [1.0], activation="sigmoid")), 4))
    0.0001
    """
    check_reduction(reduction)
    if activation == "sigmoid":
        xp, z, y, _, _, dtype = prepare_binary(
            logits, targets, weight=None, pos_weight=None, label_smoothing=0.0
        )
        return xp.astype(reduce(xp, (_sigmoid(xp, z) - y) ** 2, reduction), dtype)
    if activation != "softmax":
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    problem = prepare_classes(logits, targets, axis=axis, ignore_index=None)
    xp = problem.xp
    y = problem.onehot() if problem.index_targets else problem.targets
    loss = xp.sum((_softmax(xp, problem.values, -1) - y) ** 2, axis=-1)
    return xp.astype(reduce(xp, loss, reduction), problem.dtype)


def hinge_parts(
    logits: Array, targets: Array, *, axis: int, margin: float
) -> tuple[ClassProblem, Array, Array]:
    """Problem, the per-sample hinge and the index of the strongest rival class."""
    margin = check_nonnegative(margin, "margin")
    problem = prepare_classes(
        logits, targets, axis=axis, ignore_index=None, allow_probability_targets=False
    )
    xp, z = problem.xp, problem.values
    is_target = problem.targets[..., None] == xp.arange(problem.num_classes)
    rivals = xp.where(is_target, xp.full_like(z, -math.inf), z)
    gap = margin + xp.max(rivals, axis=-1) - _gather(xp, z, problem.targets)
    loss = xp.maximum(gap, xp.zeros_like(gap))
    return problem, loss, xp.argmax(rivals, axis=-1)


@quiet_numpy
def hinge_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int = -1,
    margin: float = 1.0,
    reduction: str = "mean",
) -> Array:
    r"""Multiclass hinge loss (Crammer-Singer), the margin loss of SVMs.

    .. math:: \ell_i = \max\bigl(0,\; \Delta + \max_{j \ne y_i} z_{ij} - z_{i y_i}\bigr)

    It is 0, with a zero gradient, once the true class leads by the margin; cross-entropy
    (:math:`\operatorname{softplus}(-m)` for two classes) never stops pushing (seed 003).
    Equals ``sklearn.metrics.hinge_loss`` for multiclass decision values.

    Parameters
    ----------
    logits : array
        Scores, classes along ``axis``.
    targets : array
        Integer class indices.
    axis : int, default -1
        The class axis.
    margin : float, default 1
        The required lead :math:`\Delta` of the true class.
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.

    Returns
    -------
    array
        The loss in the logits' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.hinge_loss([[2.0, 0.0], [0.5, 0.0], [0.0, 1.0]], [0, 0, 0], reduction="none"))
    [0.  0.5 2. ]
    """
    check_reduction(reduction)
    problem, loss, _ = hinge_parts(logits, targets, axis=axis, margin=margin)
    return problem.xp.astype(reduce(problem.xp, loss, reduction), problem.dtype)


# ---------------------------------------------------------------- losses from probabilities


def clip_eps(xp: Any, dtype: Any, eps: float | None) -> float:
    """The clip of probability inputs: the dtype's machine epsilon unless given (explicit caps).

    With it, -log(eps) caps a loss term at 36.04 in float64 and 15.94 in float32, as
    scikit-learn's ``log_loss``; PyTorch's ``binary_cross_entropy`` caps at 100 instead.
    """
    if eps is None:
        return float(xp.finfo(dtype).eps)
    eps = float(eps)
    if not 0.0 <= eps < 0.5:
        raise ValueError(f"eps must be in [0, 0.5), got {eps}")
    return eps


def prepare_categorical(
    probs: Array,
    targets: Array,
    *,
    axis: int,
    eps: float | None,
    weight: Array | None,
    ignore_index: int | None,
) -> tuple[ClassProblem, Array, float]:
    """Problem, clipped probabilities and the clip value of a loss from probabilities."""
    problem = prepare_classes(probs, targets, axis=axis, weight=weight, ignore_index=ignore_index)
    xp = problem.xp
    check_unit_interval(xp, problem.values, "probs")
    e = clip_eps(xp, problem.values.dtype, eps)
    return problem, xp.clip(problem.values, e, 1 - e), e


@quiet_numpy
def categorical_cross_entropy(
    probs: Array,
    targets: Array,
    /,
    *,
    axis: int = -1,
    eps: float | None = None,
    weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Array:
    r"""Cross-entropy of predicted probabilities, clipped to [eps, 1 - eps] before the log.

    .. math:: \ell_i = -\sum_c q_{ic} \log \operatorname{clip}(p_{ic}, \epsilon, 1 - \epsilon)

    with the same target distribution :math:`q` (weights, smoothing, ignore_index, mean
    normalizer) as :func:`softmax_cross_entropy`. Prefer logits when you have them: a clip
    always caps the loss (here at :math:`-\log\epsilon`). Rows are not renormalized.

    Parameters
    ----------
    probs : array
        Predicted probabilities in [0, 1], classes along ``axis``.
    targets : array
        Integer class indices, or probabilities with the shape of ``probs``.
    axis : int, default -1
        The class axis.
    eps : float, optional
        The clip; default the machine epsilon of the dtype (scikit-learn's ``log_loss``).
    weight : array, optional
        Non-negative weight per class.
    ignore_index : int, default -100
        Index targets equal to it contribute nothing.
    label_smoothing : float, default 0
        The e/K smoothing of the targets.
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.

    Returns
    -------
    array
        The loss in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.categorical_cross_entropy([[0.2, 0.7, 0.1]], [1])), 4))
    0.3567
    """
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    problem, clipped, _ = prepare_categorical(
        probs, targets, axis=axis, eps=eps, weight=weight, ignore_index=ignore_index
    )
    xp = problem.xp
    log_probs = xp.log(clipped)
    if problem.index_targets:
        loss = _index_nll(problem, -_gather(xp, log_probs, problem.targets), log_probs, e)
    else:
        loss = -xp.sum(target_distribution(problem, e) * log_probs, axis=-1)
    return finish(problem, loss, reduction)


def prepare_probability_binary(
    probs: Array, targets: Array, *, eps: float | None, weight: Array | None
) -> tuple[Any, Array, Array, Array | None, Array, Any]:
    """(xp, clipped probs, targets, weight, inside-clip mask, dtype) of a binary loss on probs."""
    xp, p, y, w, _, dtype = prepare_binary(
        probs, targets, weight=weight, pos_weight=None, label_smoothing=0.0
    )
    check_unit_interval(xp, p, "probs")
    e = clip_eps(xp, p.dtype, eps)
    return xp, xp.clip(p, e, 1 - e), y, w, (p >= e) & (p <= 1 - e), dtype


@quiet_numpy
def binary_cross_entropy(
    probs: Array,
    targets: Array,
    /,
    *,
    eps: float | None = None,
    weight: Array | None = None,
    reduction: str = "mean",
) -> Array:
    r"""Binary cross-entropy (log loss) of predicted probabilities, clipped to [eps, 1 - eps].

    .. math:: \ell = -w \bigl[y \log \hat p + (1 - y) \log(1 - \hat p)\bigr],
              \quad \hat p = \operatorname{clip}(p, \epsilon, 1 - \epsilon)

    ``log1p(-p)`` keeps the digits of :math:`\log(1-p)` for small p. The clip is explicit:
    PyTorch clamps the log at -100 instead, Keras clips at 1e-7.

    Parameters
    ----------
    probs : array
        Predicted probabilities of the positive class, in [0, 1].
    targets : array
        Targets in [0, 1], same shape.
    eps : float, optional
        The clip; default the machine epsilon of the dtype.
    weight : array, optional
        Non-negative weights broadcastable to ``probs``.
    reduction : {"mean", "sum", "none"}
        "mean" averages over elements.

    Returns
    -------
    array
        The loss in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> ones = [1.0, 1.0, 1.0]
    >>> print(ce.binary_cross_entropy([0.99, 0.01, 0.5], ones, reduction="none").round(4))
    [0.0101 4.6052 0.6931]
    """
    check_reduction(reduction)
    xp, p, y, w, _, dtype = prepare_probability_binary(probs, targets, eps=eps, weight=weight)
    loss = -(y * xp.log(p) + (1 - y) * xp.log1p(-p))
    if w is not None:
        loss = w * loss
    return xp.astype(reduce(xp, loss, reduction), dtype)
