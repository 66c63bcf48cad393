"""Binary cross-entropy from logits (binary and multi-label), and its closed-form gradient.

Equals ``torch.nn.functional.binary_cross_entropy_with_logits`` wherever that is finite; at
logits of +-inf it gives the limit (0 or +inf) and a finite gradient, never NaN (pytorch
#49844). Torch tensors go to the torch autograd Function, which calls the same rules.
"""

from __future__ import annotations

from functools import partial
from typing import Any

from .._dispatch import elementwise, jax_functions, torch_functions, when_finite
from .._namespace import Array, all_finite, as_dtype, numel, quiet_numpy
from .._semantics import (
    binary_ce_grad,
    binary_ce_loss,
    binary_targets,
    element_count,
    mean_scale,
    mul0,
)
from .._validation import check_fraction, check_reduction, check_smoothing_convention
from ._problem import BinaryProblem, gradient_of, prepare_binary
from ._weighting import per_sample, per_sample_gradient

__all__ = ["sigmoid_binary_cross_entropy", "sigmoid_binary_cross_entropy_grad"]


def prepare_sigmoid_bce(
    logits: Array,
    targets: Array,
    *,
    weight: Array | None,
    pos_weight: Array | None,
    label_smoothing: float,
    smoothing_convention: str,
    reduction: str,
) -> tuple[BinaryProblem, float, str]:
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    convention = check_smoothing_convention(smoothing_convention)
    problem = prepare_binary(logits, targets, weight=weight, pos_weight=pos_weight)
    return problem, e, convention


@quiet_numpy
@per_sample()
def sigmoid_binary_cross_entropy(
    logits: Array,
    targets: Array,
    /,
    *,
    weight: Array | None = None,
    pos_weight: Array | None = None,
    label_smoothing: float = 0.0,
    smoothing_convention: str = "uniform",
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
        Targets become ``(1 - e) y + e/2`` (the two-class case of either convention:
        ``smoothing_convention="others"`` gives ``(1 - 2e) y + e``).
    smoothing_convention : {"uniform", "others"}
        As in :func:`crossent.softmax_cross_entropy`, with two classes.
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
    problem, e, convention = prepare_sigmoid_bce(
        logits, targets, weight=weight, pos_weight=pos_weight, label_smoothing=label_smoothing,
        smoothing_convention=smoothing_convention, reduction=reduction,
    )  # fmt: skip
    xp = problem.xp
    functions = torch_functions(xp) or jax_functions(xp)
    if functions is not None:
        return functions.binary_cross_entropy_with_logits(problem, e, convention, reduction)
    z, arrays = problem.z, (problem.y, problem.weight, problem.pos_weight)

    def compute(guard: bool) -> Array:
        # Zero coefficients must silence infinite terms only where a logit is infinite.
        rule = partial(elementwise_loss, xp, label_smoothing=e, convention=convention,
                       guard_infinite=guard)  # fmt: skip
        if reduction == "none":
            return elementwise(xp, rule, z, *arrays)
        total = elementwise(xp, rule, z, *arrays, total=True)
        return total * mean_scale(xp, element_count(xp, z)) if reduction == "mean" else total

    loss = when_finite(xp, z, lambda: compute(False), lambda: compute(True))
    return as_dtype(xp, loss, problem.dtype)


def elementwise_loss(
    xp: Any, z: Array, y: Array, weight: Array | None, pos_weight: Array | None, *,
    label_smoothing: float, convention: str, guard_infinite: bool,
) -> Array:  # fmt: skip
    """The element-wise loss of logits and raw targets (smoothed here): the rule, weighted."""
    y = binary_targets(xp, y, label_smoothing, convention)
    loss = binary_ce_loss(xp, z, y, pos_weight, guard_infinite=guard_infinite)
    if weight is None:
        return loss
    return mul0(xp, weight, loss) if guard_infinite else weight * loss


def elementwise_grad(
    xp: Any, z: Array, y: Array, weight: Array | None, pos_weight: Array | None, *,
    label_smoothing: float, convention: str, scale: float,
) -> Array:  # fmt: skip
    """d loss / d z element-wise, times ``scale`` (the mean's 1 / count, or 1)."""
    grad = binary_ce_grad(xp, z, binary_targets(xp, y, label_smoothing, convention), pos_weight)
    return grad * scale if weight is None else grad * (weight * scale)


def elementwise_grad_and_loss(
    xp: Any, z: Array, y: Array, weight: Array | None, pos_weight: Array | None, *,
    label_smoothing: float, convention: str, scale: float,
) -> tuple[Array, Array]:  # fmt: skip
    """(d loss / d z times ``scale``, the loss) element-wise, from one ``exp(-|z|)``; for
    finite logits (the loss unguarded)."""
    y = binary_targets(xp, y, label_smoothing, convention)
    e = xp.exp(-xp.abs(z))
    loss = binary_ce_loss(xp, z, y, pos_weight, guard_infinite=False, exp_neg_abs=e)
    grad = binary_ce_grad(xp, z, y, pos_weight, e)
    if weight is None:
        return grad * scale, loss
    return grad * (weight * scale), weight * loss


@quiet_numpy
@gradient_of(sigmoid_binary_cross_entropy)
@per_sample_gradient(sigmoid_binary_cross_entropy)
def sigmoid_binary_cross_entropy_grad(
    logits: Array, targets: Array, /, *, with_loss: bool = False, **options: Any
) -> Any:
    r"""Gradient of :func:`crossent.sigmoid_binary_cross_entropy` with respect to the logits.

    .. math:: \frac{\partial \ell}{\partial z} = w \bigl[(1-y)\,\sigma(z) - \pi y\,\sigma(-z)\bigr]

    which is :math:`\sigma(z) - y` without weights, computed as :math:`(H(z) - y) -
    \operatorname{sign}(z)\,\sigma(-|z|)` (:math:`H` the step), exact where :math:`\sigma(z)`
    and :math:`y` are both near 1 or both near 0. With ``with_loss=True`` it returns
    ``(loss, gradient)``, for "mean" and "sum" from one pass over the logits that shares
    :math:`e^{-|z|}` between the two (what a training step needs).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.sigmoid_binary_cross_entropy([0.0, 2.0], [1.0, 0.0], reduction="sum"))
    [-0.5         0.88079708]
    >>> loss, g = ce.grad.sigmoid_binary_cross_entropy([0.0], [1.0], with_loss=True)
    >>> print(round(float(loss), 4), g)
    0.6931 [-0.5]
    """
    problem, e, convention = prepare_sigmoid_bce(logits, targets, **options)
    xp, z = problem.xp, problem.z
    reduction = options["reduction"]
    scale = 1 / max(numel(z), 1) if reduction == "mean" else 1.0
    arrays = (problem.y, problem.weight, problem.pos_weight)
    if with_loss and reduction != "none" and all_finite(xp, z):
        rule = partial(elementwise_grad_and_loss, xp, label_smoothing=e, convention=convention,
                       scale=scale)  # fmt: skip
        grad, total = elementwise(xp, rule, z, *arrays, pair=True)
        loss = total * mean_scale(xp, element_count(xp, z)) if reduction == "mean" else total
        return as_dtype(xp, loss, problem.dtype), as_dtype(xp, grad, problem.dtype)
    rule = partial(elementwise_grad, xp, label_smoothing=e, convention=convention, scale=scale)
    grad = as_dtype(xp, elementwise(xp, rule, z, *arrays), problem.dtype)
    if not with_loss:
        return grad
    return sigmoid_binary_cross_entropy(logits, targets, **options), grad
