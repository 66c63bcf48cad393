"""Losses from predicted probabilities (clipped before the log), with their gradients.

Prefer logits when you have them: a clip always caps the loss (here at -log eps). The target
distribution (class weights, smoothing, ignore_index, the mean's normalizer) is the softmax
cross-entropy's, from the same rules (:mod:`crossent._semantics`).
"""

from __future__ import annotations

from dataclasses import replace
from functools import partial
from typing import Any

from .._dispatch import elementwise, subtract_at, torch_functions
from .._namespace import Array, as_dtype, numel, quiet_numpy, upcast
from .._namespace import clip as clip_values
from .._semantics import (
    SoftmaxCE,
    element_count,
    mean_scale,
    probability_targets,
    reduce,
    softmax_ce_coefficients,
)
from .._semantics import softmax_ce_loss as _softmax_ce_loss
from .._validation import (
    check_fraction,
    check_reduction,
    check_rows_sum_to_one,
    check_smoothing_convention,
    check_unit_interval,
    renamed,
)
from ._problem import (
    BinaryProblem,
    ClassProblem,
    IndexTargets,
    class_last,
    gather,
    gradient_of,
    prepare_binary,
    prepare_classes,
)
from ._weighting import per_sample, per_sample_gradient
from .softmax import count

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_grad",
    "categorical_cross_entropy",
    "categorical_cross_entropy_grad",
    "clip_eps",
]


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


def _prepare_categorical(
    probs: Array,
    targets: Array,
    *,
    axis: int | tuple[int, ...],
    eps: float | None,
    class_weight: Array | None,
    weight: Array | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing_convention: str,
    reduction: str,
    renormalize: bool,
) -> tuple[ClassProblem, SoftmaxCE, float]:
    """Problem, options and the clip of a categorical loss on probabilities (each row divided
    by its sum with ``renormalize``: the problem's values are then those quotients)."""
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    convention = check_smoothing_convention(smoothing_convention)
    class_weight = renamed(class_weight, weight, "class_weight", "weight")
    problem = prepare_classes(
        probs, targets, axis=axis, class_weight=class_weight, ignore_index=ignore_index
    )
    xp = problem.xp
    check_unit_interval(xp, problem.values, "probs")
    if renormalize:
        total = xp.sum(problem.values, axis=-1, keepdims=True)
        problem = replace(problem, raw=problem.values / total)
    else:
        check_rows_sum_to_one(xp, problem.values, "probs")
    clip = clip_eps(xp, problem.values.dtype, eps)
    rule = SoftmaxCE(problem.num_classes, e, convention)
    return problem, rule, clip


def _target_distribution(problem: ClassProblem, rule: SoftmaxCE) -> Array:
    """The weighted, smoothed target distribution q: the loss is -sum_c q_c log p_c."""
    xp, tg = problem.xp, problem.targets
    if not isinstance(tg, IndexTargets):
        return probability_targets(xp, rule, problem.soft_targets, problem.class_weight)
    w_sum = 0.0  # a is not needed here: q = b onehot + r w
    _, b, r = softmax_ce_coefficients(xp, rule, lse=0, w_t=tg.w_t, valid=tg.valid, w_sum=w_sum)
    q = b[..., None] * problem.onehot(tg.index)
    if r is not None:
        q = q + r[..., None] * (1.0 if problem.class_weight is None else problem.class_weight)
    return q


@quiet_numpy
@per_sample()
def categorical_cross_entropy(
    probs: Array,
    targets: Array,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
    eps: float | None = None,
    class_weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing_convention: str = "uniform",
    reduction: str = "mean",
    weight: Array | None = None,
    renormalize: bool = False,
) -> Array:
    r"""Cross-entropy of predicted probabilities, clipped to [eps, 1 - eps] before the log.

    .. math:: \ell_i = -\sum_c q_{ic} \log \operatorname{clip}(p_{ic}, \epsilon, 1 - \epsilon)

    with the same target distribution :math:`q` (weights, smoothing, ignore_index, mean
    normalizer) as :func:`softmax_cross_entropy`. Prefer logits when you have them: a clip
    always caps the loss (here at :math:`-\log\epsilon`). Rows that do not sum to 1 (within
    1e-3; float16: :math:`\sqrt{\text{eps}}`) are an error, unless ``renormalize=True``
    divides each by its sum first, as Keras' ``categorical_crossentropy`` does.

    Parameters
    ----------
    probs : array
        Predicted probabilities in [0, 1], classes along ``axis``.
    targets : array
        Integer class indices, or probabilities with the shape of ``probs``.
    axis : int or tuple of ints, default -1
        The class axis, or several axes taken as one (optax; flat class index in their order).
    eps : float, optional
        The clip; default the machine epsilon of the dtype (scikit-learn's ``log_loss``).
    class_weight : array, optional
        Non-negative weight per class.
    ignore_index : int, default -100
        Index targets equal to it contribute nothing.
    label_smoothing : float, default 0
        Smoothing of the targets.
    smoothing_convention : {"uniform", "others"}
        e/K on every class, or e/(K-1) on the other classes.
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.
    weight : array, optional
        Deprecated name of ``class_weight``.
    renormalize : bool, default False
        Divide each row by its sum before the clip (Keras); the gradient includes that
        division.

    Returns
    -------
    array
        The loss in the probabilities' floating dtype.

    Examples
    --------
    >>> import crossent as ce
    >>> print(round(float(ce.categorical_cross_entropy([[0.2, 0.7, 0.1]], [1])), 4))
    0.3567
    >>> # Keras divides by the row sum: the same probabilities, halved
    >>> p2 = [[0.1, 0.35, 0.05]]
    >>> print(round(float(ce.categorical_cross_entropy(p2, [1], renormalize=True)), 4))
    0.3567
    """
    problem, rule, clip = _prepare_categorical(
        probs, targets, axis=axis, eps=eps, class_weight=class_weight, weight=weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing,
        smoothing_convention=smoothing_convention, reduction=reduction,
        renormalize=renormalize,
    )  # fmt: skip
    xp, tg, p = problem.xp, problem.targets, problem.values
    if isinstance(tg, IndexTargets) and rule.smoothing.per_class == 0:
        # Only the target's probability is read: gather, then clip and log N numbers, not N K.
        nll_t = -xp.log(clip_values(xp, gather(xp, p, tg.index), clip, 1 - clip))
        loss = _softmax_ce_loss(
            xp, rule, nll_t=nll_t, smooth_nll=None, lse=0.0, w_t=tg.w_t, valid=tg.valid
        )
    elif isinstance(tg, IndexTargets):
        nll = -xp.log(clip_values(xp, p, clip, 1 - clip))
        w = problem.class_weight
        loss = _softmax_ce_loss(
            xp, rule, nll_t=gather(xp, nll, tg.index),
            smooth_nll=xp.sum(nll if w is None else w * nll, axis=-1), lse=0.0,
            w_t=tg.w_t, valid=tg.valid,
        )  # fmt: skip
    else:
        nll = -xp.log(clip_values(xp, p, clip, 1 - clip))
        loss = xp.sum(_target_distribution(problem, rule) * nll, axis=-1)
    return as_dtype(xp, reduce(xp, loss, reduction, count(problem)), problem.dtype)


@quiet_numpy
@gradient_of(categorical_cross_entropy)
@per_sample_gradient(categorical_cross_entropy)
def categorical_cross_entropy_grad(probs: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.categorical_cross_entropy` with respect to the probabilities.

    .. math:: \frac{\partial \ell}{\partial p_c} = -\frac{q_c}{p_c}
              \quad (0 \text{ where the clip is active})

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.categorical_cross_entropy([[0.5, 0.5]], [0]))
    [[-2. -0.]]
    """
    problem, rule, clip = _prepare_categorical(probs, targets, **options)
    xp, p = problem.xp, problem.values
    scale = mean_scale(xp, count(problem)) if options["reduction"] == "mean" else 1.0
    g = _categorical_gradient(problem, rule, clip, scale)
    if options["renormalize"]:
        # through r = p / S: dr_c / dp_j = (delta_cj - r_c) / S, with S from the raw rows
        total = xp.sum(upcast(xp, class_last(xp, xp.asarray(probs), problem.axis)), axis=-1)
        g = (g - xp.sum(g * p, axis=-1, keepdims=True)) / total[..., None]
    return problem.restore(g)


def _categorical_gradient(
    problem: ClassProblem, rule: SoftmaxCE, clip: float, scale: Array | float
) -> Array:
    """d loss / d p of the problem's (classes-last) probabilities."""
    xp, tg, p = problem.xp, problem.targets, problem.values
    if isinstance(tg, IndexTargets) and rule.smoothing.per_class == 0:
        # q is one-hot: the gradient is -w_t / p_t at the target, 0 elsewhere.
        p_t = gather(xp, p, tg.index)
        inside = xp.astype((p_t >= clip) & (p_t <= 1 - clip), p.dtype)
        at_target = tg.w_t * inside / clip_values(xp, p_t, clip, 1 - clip) * scale
        return subtract_at(xp, xp.zeros_like(p), tg.index, at_target)
    clipped = clip_values(xp, p, clip, 1 - clip)
    inside = xp.astype(clipped == p, p.dtype)
    return -_target_distribution(problem, rule) / clipped * inside * scale


def _prepare_binary_probs(
    probs: Array, targets: Array, *, eps: float | None, weight: Array | None, reduction: str
) -> tuple[BinaryProblem, float]:
    """(problem, clip) of a binary loss on probabilities."""
    check_reduction(reduction)
    problem = prepare_binary(probs, targets, weight=weight, names=("probs", "targets"))
    check_unit_interval(problem.xp, problem.z, "probs")
    return problem, clip_eps(problem.xp, problem.z.dtype, eps)


def binary_loss_rule(xp: Any, p: Array, y: Array, w: Array | None, *, clip: float) -> Array:
    """-w [y log p + (1 - y) log(1 - p)] at p clipped to [clip, 1 - clip], element-wise."""
    p = clip_values(xp, p, clip, 1 - clip)
    # log1p(-p) keeps the digits of log(1 - p) for small p
    loss = -(y * xp.log(p) + (1 - y) * xp.log1p(-p))
    return loss if w is None else w * loss


def binary_grad_rule(
    xp: Any, p: Array, y: Array, w: Array | None, *, clip: float, scale: float
) -> Array:
    """w ((1 - y) / (1 - p) - y / p), 0 where the clip is active, times ``scale``."""
    inside = xp.astype((p >= clip) & (p <= 1 - clip), p.dtype)
    p = clip_values(xp, p, clip, 1 - clip)
    grad = ((1 - y) / (1 - p) - y / p) * (inside * scale)
    return grad if w is None else w * grad


@quiet_numpy
@per_sample()
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
    >>> import numpy as np
    >>> import crossent as ce
    >>> ones = [1.0, 1.0, 1.0]
    >>> print(ce.binary_cross_entropy([0.99, 0.01, 0.5], ones, reduction="none").round(4))
    [0.0101 4.6052 0.6931]
    >>> # scikit-learn's log_loss(y, p, sample_weight=[2, 1, 1]): (2 * 0.0101 + 4.6052 + 0.6931) / 4
    >>> w = np.array([2.0, 1.0, 1.0])
    >>> print(round(float(ce.binary_cross_entropy([0.99, 0.01, 0.5], ones, sample_weight=w)), 4))
    1.3296
    """
    problem, clip = _prepare_binary_probs(
        probs, targets, eps=eps, weight=weight, reduction=reduction
    )
    xp, p = problem.xp, problem.z
    functions = torch_functions(xp)
    no_other_grads = not any(
        getattr(a, "requires_grad", False) for a in (problem.raw_targets, problem.weight)
    )
    if functions is not None and no_other_grads:
        return functions.binary_cross_entropy(problem, clip, reduction)
    rule = partial(binary_loss_rule, xp, clip=clip)
    if reduction == "none":
        return as_dtype(xp, elementwise(xp, rule, p, problem.y, problem.weight), problem.dtype)
    total = elementwise(xp, rule, p, problem.y, problem.weight, total=True)
    if reduction == "mean":
        total = total * mean_scale(xp, element_count(xp, p))
    return as_dtype(xp, total, problem.dtype)


def binary_grad_and_loss_rule(
    xp: Any, p: Array, y: Array, w: Array | None, *, clip: float, scale: float
) -> tuple[Array, Array]:
    """(the gradient times ``scale``, the loss) element-wise, from one pass."""
    return binary_grad_rule(xp, p, y, w, clip=clip, scale=scale), binary_loss_rule(
        xp, p, y, w, clip=clip
    )


@quiet_numpy
@gradient_of(binary_cross_entropy)
@per_sample_gradient(binary_cross_entropy)
def binary_cross_entropy_grad(
    probs: Array, targets: Array, /, *, with_loss: bool = False, **options: Any
) -> Any:
    r"""Gradient of :func:`crossent.binary_cross_entropy` with respect to the probabilities.

    .. math:: \frac{\partial \ell}{\partial p} = w \Bigl(\frac{1 - y}{1 - p} - \frac{y}{p}\Bigr)
              \quad (0 \text{ where the clip is active})

    With ``with_loss=True`` it returns ``(loss, gradient)``, for "mean" and "sum" from one
    pass over the probabilities.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.binary_cross_entropy([0.5], [1.0]))
    [-2.]
    >>> loss, g = ce.grad.binary_cross_entropy([0.5], [1.0], with_loss=True)
    >>> print(round(float(loss), 4), g)
    0.6931 [-2.]
    """
    problem, clip = _prepare_binary_probs(probs, targets, **options)
    xp, p = problem.xp, problem.z
    reduction = options["reduction"]
    scale = 1 / max(numel(p), 1) if reduction == "mean" else 1.0
    arrays = (problem.y, problem.weight)
    if with_loss and reduction != "none":
        rule = partial(binary_grad_and_loss_rule, xp, clip=clip, scale=scale)
        grad, total = elementwise(xp, rule, p, *arrays, pair=True)
        loss = total * mean_scale(xp, element_count(xp, p)) if reduction == "mean" else total
        return as_dtype(xp, loss, problem.dtype), as_dtype(xp, grad, problem.dtype)
    rule = partial(binary_grad_rule, xp, clip=clip, scale=scale)
    grad = as_dtype(xp, elementwise(xp, rule, p, *arrays), problem.dtype)
    if not with_loss:
        return grad
    return binary_cross_entropy(probs, targets, **options), grad
