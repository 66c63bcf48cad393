"""Losses of log-scores given directly: the negative log-likelihood and the KL divergence.

Neither applies a softmax: the input is taken as log-probabilities (``nll_loss`` accepts any
real scores, as PyTorch's ``NLLLoss``). Their rules are :mod:`crossent._semantics`'
(the weighted mean of PyTorch, ``0 log 0 = 0``).
"""

from __future__ import annotations

from typing import Any

from .._dispatch import subtract_at
from .._namespace import Array, as_dtype, namespace, quiet_numpy, result_dtype, upcast
from .._semantics import element_count, kl_terms, mean_scale, mul0, reduce
from .._validation import check_reduction, check_same_shape, check_unit_interval
from ._problem import (
    ClassProblem,
    class_axes,
    class_last,
    gather,
    gradient_of,
    index_targets,
    prepare_classes,
    restore_axis,
    safe_log,
)
from ._weighting import per_sample, per_sample_gradient
from .softmax import count

__all__ = ["kl_div_loss", "kl_div_loss_grad", "nll_loss", "nll_loss_grad"]


def _prepare_nll(
    log_probs: Array,
    targets: Array,
    *,
    axis: int | tuple[int, ...],
    class_weight: Array | None,
    ignore_index: int,
    reduction: str,
) -> ClassProblem:
    check_reduction(reduction)
    return prepare_classes(
        log_probs, targets, axis=axis, class_weight=class_weight, ignore_index=ignore_index,
        allow_probability_targets=False,
    )  # fmt: skip


@quiet_numpy
@per_sample()
def nll_loss(
    log_probs: Array,
    targets: Array,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
    class_weight: Array | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> Array:
    r"""Negative log-likelihood of class indices under given log-scores (PyTorch's ``NLLLoss``).

    .. math:: \ell_i = -w_{y_i}\, x_{i y_i}, \qquad
              \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over non-ignored samples. No softmax is applied: ``softmax_cross_entropy(z, y)`` equals
    ``nll_loss(log_softmax(z), y)``. Any real scores are accepted, as in PyTorch.

    Parameters
    ----------
    log_probs : array
        Log-probabilities (or any scores), classes along ``axis``.
    targets : array
        Integer class indices, the shape of ``log_probs`` without ``axis``.
    axis : int or tuple of ints, default -1
        The class axis (PyTorch: 1). Several axes act as one class axis (optax), a class
        index being the flat index over them in the order given.
    class_weight : array, optional
        Non-negative weight per class, shape (K,) (PyTorch's ``weight``).
    ignore_index : int, default -100
        Targets equal to it contribute nothing, not even to the mean's denominator.
    reduction : {"mean", "sum", "none"}
        "mean" divides by :math:`\sum_i w_{y_i}` (PyTorch's weighted mean), 0 when nothing
        counts (PyTorch: NaN).

    Returns
    -------
    array
        The loss in the input's floating dtype. A target whose log-probability is -inf gives
        +inf (0 when its class weight is 0).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.nll_loss([[-0.1, -2.5], [-1.2, -0.4]], [0, 1]).round(4))
    0.25
    >>> print(ce.nll_loss([[-0.1, -2.5], [-1.2, -0.4]], [0, -100], reduction="none"))
    [0.1 0. ]
    """
    problem = _prepare_nll(
        log_probs, targets, axis=axis, class_weight=class_weight, ignore_index=ignore_index,
        reduction=reduction,
    )  # fmt: skip
    xp, tg = problem.xp, index_targets(problem)
    # 0 * -inf = 0 for a zero class weight; ignored rows are 0 whatever they hold (NaN too)
    rows = -mul0(xp, tg.w_t, gather(xp, problem.values, tg.index))
    rows = xp.where(tg.valid, rows, xp.zeros_like(rows))
    return as_dtype(xp, reduce(xp, rows, reduction, count(problem)), problem.dtype)


@quiet_numpy
@gradient_of(nll_loss)
@per_sample_gradient(nll_loss)
def nll_loss_grad(log_probs: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.nll_loss`: :math:`-w_{y_i}` at each target, 0 elsewhere
    (divided by :math:`\sum_i w_{y_i}` for the mean).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.nll_loss([[-0.1, -2.5], [-1.2, -0.4]], [0, 1]))
    [[-0.5  0. ]
     [ 0.  -0.5]]
    """
    problem = _prepare_nll(log_probs, targets, **options)
    xp, tg = problem.xp, index_targets(problem)
    amount = tg.w_t
    if options["reduction"] == "mean":
        amount = amount * mean_scale(xp, count(problem))
    g = subtract_at(xp, xp.zeros_like(problem.values), tg.index, amount)
    return problem.restore(g)


def _prepare_kl(
    log_input: Array,
    target: Array,
    *,
    log_target: bool,
    axis: int | tuple[int, ...],
    reduction: str,
) -> tuple[Any, Array, Array, Array, int | tuple[int, ...], tuple[int, ...], Any]:
    """(xp, log q, p, log p, axis, class shape, dtype): class axis last, compute dtype."""
    check_reduction(reduction)
    if target is None:
        raise TypeError("target must be an array of the input's shape, got None")
    xp, (x, t) = namespace(log_input, target, names=("log_input", "target"))
    check_same_shape(x, t, ("log_input", "target"))
    if x.ndim == 0:
        raise ValueError("expected an array with a class axis, got a 0-d array")
    axis = class_axes(axis, x.ndim)
    shape = tuple(int(x.shape[a]) for a in axis) if isinstance(axis, tuple) else ()
    dtype = result_dtype(xp, x.dtype)
    log_q = class_last(xp, upcast(xp, x), axis)
    t = xp.astype(class_last(xp, t, axis), log_q.dtype)
    if log_target:
        return xp, log_q, xp.exp(t), t, axis, shape, dtype
    check_unit_interval(xp, t, "target")
    return xp, log_q, t, safe_log(xp, t), axis, shape, dtype


@quiet_numpy
@per_sample(terms=True)
def kl_div_loss(
    log_input: Array,
    target: Array,
    /,
    *,
    log_target: bool = False,
    axis: int | tuple[int, ...] = -1,
    reduction: str = "mean",
) -> Array:
    r"""KL divergence :math:`KL(p \| q)` of a target :math:`p` from log-probabilities
    :math:`\log q` (PyTorch's ``KLDivLoss``, optax's ``kl_divergence``).

    .. math:: \ell_{ic} = p_{ic} (\log p_{ic} - \log q_{ic}), \qquad
              \text{mean} = \frac{1}{N} \sum_i \sum_c \ell_{ic}

    with ``0 log 0 = 0``. ``log_target=True`` takes the target as log-probabilities
    :math:`\log p` (PyTorch ``log_target=True``, optax ``kl_divergence_with_log_targets``),
    exact where :math:`p` underflows.

    Parameters
    ----------
    log_input : array
        Log-probabilities :math:`\log q`, classes along ``axis``.
    target : array
        Probabilities :math:`p` (in [0, 1]), or log-probabilities with ``log_target``; the
        shape of ``log_input``.
    log_target : bool, default False
        Whether ``target`` is given in log space.
    axis : int or tuple of ints, default -1
        The class axis (or axes): the terms of a row are summed along it.
    reduction : {"mean", "sum", "none"}
        "none" returns the terms :math:`\ell_{ic}` elementwise (PyTorch's "none"; optax's
        per-row divergence is their sum along ``axis``); "sum" adds them all; "mean" divides
        that sum by the number of rows :math:`N` (PyTorch's "batchmean" for a 2-D input: the
        KL per sample; PyTorch's own "mean" divides by the number of terms instead, which is
        not a divergence).

    Returns
    -------
    array
        The loss in ``log_input``'s floating dtype.

    Examples
    --------
    >>> import math
    >>> import crossent as ce
    >>> p = [[0.5, 0.5, 0.0]]
    >>> log_q = [[math.log(0.25), math.log(0.5), math.log(0.25)]]
    >>> print(round(float(ce.kl_div_loss(log_q, p)), 4))  # 0.5 log 2, the last term 0 log 0
    0.3466
    >>> print(ce.kl_div_loss(log_q, [[math.log(0.5), math.log(0.5), -math.inf]],
    ...                      log_target=True, reduction="none").round(4))
    [[0.3466 0.     0.    ]]
    """
    xp, log_q, p, log_p, axis, shape, dtype = _prepare_kl(
        log_input, target, log_target=log_target, axis=axis, reduction=reduction
    )
    terms = kl_terms(xp, p, log_p, log_q)
    if reduction == "none":
        return restore_axis(xp, terms, axis, dtype, shape)
    rows = xp.sum(terms, axis=-1)
    return as_dtype(xp, reduce(xp, rows, reduction, element_count(xp, rows)), dtype)


@quiet_numpy
@gradient_of(kl_div_loss)
@per_sample_gradient(kl_div_loss)
def kl_div_loss_grad(log_input: Array, target: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.kl_div_loss` in ``log_input``: :math:`-p` (divided by
    :math:`N` for the mean).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.kl_div_loss([[-1.0, -0.5]], [[0.25, 0.75]]))
    [[-0.25 -0.75]]
    """
    xp, log_q, p, _, axis, shape, dtype = _prepare_kl(log_input, target, **options)
    g = -p
    if options["reduction"] == "mean":
        g = g * mean_scale(xp, element_count(xp, log_q[..., 0]))
    return restore_axis(xp, g, axis, dtype, shape)
