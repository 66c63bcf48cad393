"""The losses the seeds compare with cross-entropy: squared error of the probabilities, and
the multiclass hinge (Crammer-Singer), each with its (sub)gradient.
"""

from __future__ import annotations

import math
from typing import Any

from .._namespace import Array, as_dtype, numel, quiet_numpy
from .._primitives import _sigmoid, _softmax
from .._semantics import element_count, reduce
from .._validation import check_nonnegative, check_reduction
from ._problem import (
    ClassProblem,
    IndexTargets,
    gather,
    gradient_of,
    index_targets,
    prepare_binary,
    prepare_classes,
)
from ._weighting import per_sample, per_sample_gradient

__all__ = ["hinge_loss", "hinge_loss_grad", "mse_loss", "mse_loss_grad"]


def _dense_targets(problem: ClassProblem) -> Array:
    """One-hot rows for index targets, the probabilities themselves otherwise."""
    tg = problem.targets
    return problem.onehot(tg.index) if isinstance(tg, IndexTargets) else problem.soft_targets


@quiet_numpy
@per_sample()
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
        b = prepare_binary(logits, targets)
        loss = (_sigmoid(b.xp, b.z) - b.y) ** 2
        return as_dtype(b.xp, reduce(b.xp, loss, reduction, element_count(b.xp, loss)), b.dtype)
    if activation != "softmax":
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    problem = prepare_classes(logits, targets, axis=axis, ignore_index=None)
    xp = problem.xp
    loss = xp.sum((_softmax(xp, problem.values, -1) - _dense_targets(problem)) ** 2, axis=-1)
    return as_dtype(xp, reduce(xp, loss, reduction, element_count(xp, loss)), problem.dtype)


@quiet_numpy
@gradient_of(mse_loss)
@per_sample_gradient(mse_loss)
def mse_loss_grad(logits: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.mse_loss` with respect to the logits.

    .. math::

        \text{sigmoid:}\; 2(\sigma - y)\,\sigma(1 - \sigma), \qquad
        \text{softmax:}\; p \odot \bigl(g - \langle g, p \rangle\bigr),\; g = 2(p - y)

    The factor :math:`\sigma(1-\sigma)` (the softmax Jacobian) vanishes on confident mistakes.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.mse_loss([0.0], [1.0], activation="sigmoid"))
    [-0.25]
    """
    axis, activation, reduction = options["axis"], options["activation"], options["reduction"]
    check_reduction(reduction)
    if activation == "sigmoid":
        b = prepare_binary(logits, targets)
        s = _sigmoid(b.xp, b.z)
        grad = 2 * (s - b.y) * s * (1 - s)
        if reduction == "mean":
            grad = grad / max(numel(grad), 1)
        return as_dtype(b.xp, grad, b.dtype)
    if activation != "softmax":
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    problem = prepare_classes(logits, targets, axis=axis, ignore_index=None)
    xp = problem.xp
    p = _softmax(xp, problem.values, -1)
    g = 2 * (p - _dense_targets(problem))
    grad = p * (g - xp.sum(g * p, axis=-1, keepdims=True))
    if reduction == "mean":
        grad = grad / max(numel(grad) // problem.num_classes, 1)
    return problem.restore(grad)


def hinge_parts(
    logits: Array, targets: Array, *, axis: int, margin: float
) -> tuple[ClassProblem, Array, Array]:
    """Problem, the per-sample hinge and the index of the strongest rival class."""
    margin = check_nonnegative(margin, "margin")
    problem = prepare_classes(
        logits, targets, axis=axis, ignore_index=None, allow_probability_targets=False
    )
    xp, z, t = problem.xp, problem.values, index_targets(problem).index
    is_target = t[..., None] == xp.arange(problem.num_classes)
    rivals = xp.where(is_target, xp.full_like(z, -math.inf), z)
    gap = margin + xp.max(rivals, axis=-1) - gather(xp, z, t)
    loss = xp.maximum(gap, xp.zeros_like(gap))
    return problem, loss, xp.argmax(rivals, axis=-1)


@quiet_numpy
@per_sample()
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
    xp = problem.xp
    return as_dtype(xp, reduce(xp, loss, reduction, element_count(xp, loss)), problem.dtype)


@quiet_numpy
@gradient_of(hinge_loss)
@per_sample_gradient(hinge_loss)
def hinge_loss_grad(logits: Array, targets: Array, /, **options: Any) -> Any:
    r"""(Sub)gradient of :func:`crossent.hinge_loss` with respect to the logits.

    .. math:: \frac{\partial \ell}{\partial z} = [\ell > 0]\,(e_{j^*} - e_y), \quad
              j^* = \arg\max_{j \ne y} z_j

    Zero once the margin is met: the hinge stops pushing, cross-entropy does not.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.hinge_loss([[2.0, 0.0], [0.5, 0.0]], [0, 0], reduction="sum"))
    [[ 0.  0.]
     [-1.  1.]]
    """
    reduction = options["reduction"]
    check_reduction(reduction)
    axis, margin = options["axis"], options["margin"]
    problem, loss, rival = hinge_parts(logits, targets, axis=axis, margin=margin)
    xp = problem.xp
    rival_onehot = xp.astype(rival[..., None] == xp.arange(problem.num_classes), loss.dtype)
    grad = rival_onehot - problem.onehot(index_targets(problem).index)
    grad = xp.where((loss > 0)[..., None], grad, xp.zeros_like(grad))
    if reduction == "mean":
        grad = grad / max(numel(loss), 1)
    return problem.restore(grad)
