"""PolyLoss (Leng et al. 2022): the cross-entropy plus epsilon times its first Taylor term.

The cross-entropy part and its gradient are the softmax cross-entropy's (:mod:`.softmax`, the
rules of :mod:`crossent._semantics`); this module adds :math:`\\epsilon (1 - p_t)`.
"""

from __future__ import annotations

from typing import Any

from .._namespace import Array, as_dtype, quiet_numpy
from .._primitives import _log_softmax
from .._semantics import SoftmaxCE, probability_targets, reduce
from .._validation import check_finite
from ._problem import ClassProblem, IndexTargets, gather, gradient_of
from ._weighting import per_sample, per_sample_gradient
from .softmax import _row_scale, count, gradient, per_row_loss, prepare_softmax_ce

__all__ = ["poly_loss", "poly_loss_grad"]


def _prepare_poly(
    logits: Array,
    targets: Array,
    *,
    epsilon: float,
    axis: int | tuple[int, ...],
    ignore_index: int,
    label_smoothing: float,
    reduction: str,
) -> tuple[ClassProblem, SoftmaxCE, float]:
    problem, rule = prepare_softmax_ce(
        logits, targets, axis=axis, class_weight=None, weight=None, ignore_index=ignore_index,
        label_smoothing=label_smoothing, smoothing_convention="uniform", z_loss=0.0,
        softcap=None, reduction=reduction,
    )  # fmt: skip
    return problem, rule, check_finite(epsilon, "epsilon")


def _target_mass(problem: ClassProblem, rule: SoftmaxCE, p: Array) -> tuple[Array, Array]:
    """(:math:`p_t = \\sum_c q_c p_c` per row, 0 on ignored rows; the target distribution q)."""
    xp, tg = problem.xp, problem.targets
    if isinstance(tg, IndexTargets):
        s = rule.smoothing
        # q = on_target * onehot + per_class, whose sum against p is on_target p_y + per_class
        p_t = s.on_target * gather(xp, p, tg.index) + s.per_class
        q = s.on_target * problem.onehot(tg.index) + s.per_class
        return xp.where(tg.valid, p_t, xp.ones_like(p_t)), q
    q = probability_targets(xp, rule, problem.soft_targets, None)
    return xp.sum(q * p, axis=-1), q


@quiet_numpy
@per_sample()
def poly_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    epsilon: float = 2.0,
    axis: int | tuple[int, ...] = -1,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    reduction: str = "mean",
) -> Array:
    r"""Poly-1 loss of Leng et al.: softmax cross-entropy plus :math:`\epsilon (1 - p_t)`.

    .. math:: \ell_i = -\sum_c q_{ic} \log p_{ic} + \epsilon\,(1 - p_{t,i}), \qquad
              p_{t,i} = \sum_c q_{ic}\, p_{ic}

    with :math:`p = \operatorname{softmax}(z)` and :math:`q` the (smoothed) target
    distribution: the one-hot of the class for index targets, :math:`p_t = p_{y}` without
    smoothing. :math:`\epsilon = 0` is the cross-entropy; the paper recommends 2 for ImageNet
    classification, -1 for detection. "mean" averages over non-ignored samples.

    Parameters
    ----------
    logits : array
        Unnormalized scores, classes along ``axis``.
    targets : array
        Integer class indices (the shape of ``logits`` without ``axis``), or probabilities of
        the shape of ``logits`` (optax's ``poly_loss_cross_entropy`` takes these).
    epsilon : float, default 2
        Coefficient of the first polynomial term :math:`1 - p_t` (any finite real; optax's
        default, the paper's value for ImageNet).
    axis : int or tuple of ints, default -1
        The class axis, or several axes taken as one (optax).
    ignore_index : int, default -100
        Index targets equal to it contribute nothing.
    label_smoothing : float, default 0
        Mix ``e`` of the uniform distribution into the targets; :math:`p_t` is then taken
        against the smoothed targets (the paper's implementation).
    reduction : {"mean", "sum", "none"}
        How per-sample losses are combined.

    Returns
    -------
    array
        The loss in the logits' floating dtype.

    References
    ----------
    .. [1] Leng et al., "PolyLoss: A Polynomial Expansion Perspective of Classification Loss
       Functions", ICLR 2022.

    Examples
    --------
    >>> import crossent as ce
    >>> # the cross-entropy 0.417 plus 2 (1 - 0.659)
    >>> print(round(float(ce.poly_loss([[2.0, 1.0, 0.1]], [0], epsilon=2.0)), 4))
    1.099
    """
    problem, rule, eps = _prepare_poly(
        logits, targets, epsilon=epsilon, axis=axis, ignore_index=ignore_index,
        label_smoothing=label_smoothing, reduction=reduction,
    )  # fmt: skip
    xp, z = problem.xp, problem.values
    p_t, _ = _target_mass(problem, rule, xp.exp(_log_softmax(xp, z, -1)))
    rows = per_row_loss(problem, rule, z) + eps * (1 - p_t)
    return as_dtype(xp, reduce(xp, rows, reduction, count(problem)), problem.dtype)


@quiet_numpy
@gradient_of(poly_loss)
@per_sample_gradient(poly_loss)
def poly_loss_grad(logits: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.poly_loss`:
    :math:`(S p - q) - \epsilon\, p \odot (q - p_t)`, with :math:`S = \sum_c q_c`.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.poly_loss([[0.0, 0.0]], [1], epsilon=1.0))
    [[ 0.75 -0.75]]
    """
    problem, rule, eps = _prepare_poly(logits, targets, **options)
    xp, z = problem.xp, problem.values
    scale = _row_scale(problem, options["reduction"])
    g, _ = gradient(problem, rule, z, None, scale)
    p = xp.exp(_log_softmax(xp, z, -1))
    p_t, q = _target_mass(problem, rule, p)
    if isinstance(problem.targets, IndexTargets):  # ignored rows: no poly term either
        scale = xp.where(problem.targets.valid, scale, xp.zeros_like(scale))
    g = g - (eps * scale)[..., None] * p * (q - p_t[..., None])
    return problem.restore(g)
