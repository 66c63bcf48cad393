"""Softmax cross-entropy against class indices or probabilities, and its closed-form gradient.

Semantics follow PyTorch's ``F.cross_entropy`` wherever PyTorch is finite (class weights,
``ignore_index``, label smoothing with weights, the weighted mean's normalizer), with the class
axis last by default; the rules are :mod:`crossent._semantics`'. Torch tensors go to the torch
autograd Function (:mod:`crossent.torch._functions`), which calls the same rules.
"""

from __future__ import annotations

from typing import Any

from .._dispatch import (
    jax_functions,
    row_logsumexp,
    scaled_softmax,
    subtract_at,
    torch_functions,
)
from .._namespace import Array, all_finite, as_dtype, numel, quiet_numpy
from .._primitives import _shift_by_max
from .._semantics import (
    SoftmaxCE,
    mean_scale,
    mul0,
    probability_ce_coefficient,
    probability_ce_loss,
    probability_targets,
    reduce,
    softmax_ce_coefficients,
    softmax_ce_loss,
)
from .._validation import (
    check_reduction,
    check_softmax_rule,
    renamed,
)
from ._problem import ClassProblem, IndexTargets, gather, gradient_of, prepare_classes
from ._weighting import per_sample, per_sample_gradient

__all__ = ["softmax_cross_entropy", "softmax_cross_entropy_grad"]


def prepare_softmax_ce(
    logits: Array,
    targets: Array,
    *,
    axis: int | tuple[int, ...],
    class_weight: Array | None,
    weight: Array | None,
    ignore_index: int,
    label_smoothing: float,
    smoothing_convention: str,
    z_loss: float,
    softcap: float | None,
    reduction: str,
) -> tuple[ClassProblem, SoftmaxCE]:
    """The validated problem and the checked options of a softmax cross-entropy."""
    check_reduction(reduction)
    class_weight = renamed(class_weight, weight, "class_weight", "weight")
    problem = prepare_classes(
        logits, targets, axis=axis, class_weight=class_weight, ignore_index=ignore_index
    )
    options = check_softmax_rule(
        problem.num_classes, label_smoothing=label_smoothing,
        smoothing_convention=smoothing_convention, z_loss=z_loss, softcap=softcap,
    )  # fmt: skip
    return problem, options


def capped(xp: Any, z: Array, softcap: float | None) -> tuple[Array, Array | None]:
    """Logits after the soft cap ``s tanh(z / s)`` (Gemma 2), and tanh for the backward."""
    if softcap is None:
        return z, None
    th = xp.tanh(z / softcap)
    return th * softcap, th


def class_sum(xp: Any, class_weight: Array | None, x: Array) -> Array:
    """sum_c w_c x_c along the last axis (0 * inf = 0 for a zero weight)."""
    if class_weight is None:
        return xp.sum(x, axis=-1)
    return xp.sum(mul0(xp, xp.broadcast_to(class_weight, x.shape), x), axis=-1)


def count(problem: ClassProblem) -> Array:
    """The mean's normalizer: sum_i w[y_i] over non-ignored rows, or the number of rows."""
    xp = problem.xp
    if isinstance(problem.targets, IndexTargets):
        return xp.sum(problem.targets.w_t)
    return xp.asarray(float(numel(problem.raw) // problem.num_classes), dtype=problem.values.dtype)


def per_row_loss(
    problem: ClassProblem, rule: SoftmaxCE, z: Array, lse: Array | None = None
) -> Array:
    """Per-row losses of (capped) logits ``z``; ``lse`` may pass a known raw log-sum-exp."""
    xp, tg = problem.xp, problem.targets
    if lse is None:
        lse = row_logsumexp(xp, z)
    smoothing = rule.smoothing.per_class > 0
    if isinstance(tg, IndexTargets) and not smoothing and all_finite(xp, lse):
        # CE = LSE(z) - z_t: the common case needs nothing more than the target logit.
        return softmax_ce_loss(
            xp, rule, nll_t=lse - gather(xp, z, tg.index), smooth_nll=None, lse=lse,
            w_t=tg.w_t, valid=tg.valid,
        )  # fmt: skip
    # Smoothing, soft targets and infinite rows work on logits shifted by their max, whose
    # +-inf rows hold the limit. Never softmax-then-log.
    shifted = _shift_by_max(xp, z)
    log_sum = xp.log(xp.sum(xp.exp(shifted), axis=-1))
    nll = log_sum[..., None] - shifted  # -log p
    if isinstance(tg, IndexTargets):
        smooth_nll = class_sum(xp, problem.class_weight, nll) if smoothing else None
        nll_t = log_sum - gather(xp, shifted, tg.index)
        return softmax_ce_loss(
            xp, rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=lse, w_t=tg.w_t, valid=tg.valid
        )
    q = probability_targets(xp, rule, problem.soft_targets, problem.class_weight)
    # q log p with 0 where q = 0, even where log p = -inf (a masked class)
    return probability_ce_loss(xp, rule, cross=xp.sum(mul0(xp, q, nll), axis=-1), lse=lse)


def gradient(
    problem: ClassProblem, rule: SoftmaxCE, z: Array, th: Array | None, scale: Array
) -> tuple[Array, Array]:
    """(d loss / d logits, classes last; the limit rows' log-sum-exp) at capped logits ``z``.

    ``th`` is tanh(logits / softcap) with a soft cap (else None), ``scale`` is d total / d l_i
    per row (the mean's 1 / count, or 1). With index targets the
    gradient ``a p - b onehot - r w`` is written once (p times its row factor) and then touched
    only at the targets.
    """
    xp, tg = problem.xp, problem.targets
    if not isinstance(tg, IndexTargets):
        q = probability_targets(xp, rule, problem.soft_targets, problem.class_weight)
        p, lse = scaled_softmax(xp, z, xp.ones_like(z[..., 0]))
        a = probability_ce_coefficient(xp, rule, q_sum=xp.sum(q, axis=-1), lse=lse)
        g = (a[..., None] * p - q) * scale[..., None]
        return (g if th is None else g * (1 - th * th)), lse
    w_sum: Array | float = (
        float(problem.num_classes) if problem.class_weight is None else xp.sum(problem.class_weight)
    )
    if rule.z_loss > 0:  # a needs the log-sum-exp first
        p, lse = scaled_softmax(xp, z, xp.ones_like(tg.w_t))
        a, b, r = softmax_ce_coefficients(
            xp, rule, lse=lse, w_t=tg.w_t, valid=tg.valid, w_sum=w_sum
        )
        g = p * (a * scale)[..., None]
    else:
        a, b, r = softmax_ce_coefficients(xp, rule, lse=0, w_t=tg.w_t, valid=tg.valid, w_sum=w_sum)
        g, lse = scaled_softmax(xp, z, a * scale)
    if r is not None:
        w = 1.0 if problem.class_weight is None else problem.class_weight
        g = g - (r * scale)[..., None] * w
    g = subtract_at(xp, g, tg.index, b * scale)
    if th is not None:
        g = g * (1 - th * th)  # d s tanh(x / s) / dx
    if not all_finite(xp, lse):  # ignored rows get exactly 0, even where they hold NaN
        g = xp.where(tg.valid[..., None], g, xp.zeros_like(g))
    return g, lse


def _row_scale(problem: ClassProblem, reduction: str) -> Array:
    """d total / d l_i: the mean's 1 / count (0 when nothing counts), else 1."""
    xp = problem.xp
    # shaped like a row of the input, so a chunked (Dask) batch keeps its chunks
    rows = xp.ones_like(problem.raw[..., 0], dtype=problem.values.dtype)
    return rows * mean_scale(xp, count(problem)) if reduction == "mean" else rows


@quiet_numpy
@per_sample()
def softmax_cross_entropy(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
    class_weight: Array | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing_convention: str = "uniform",
    z_loss: float = 0.0,
    softcap: float | None = None,
    reduction: str = "mean",
    weight: Array | None = None,
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
    With ``smoothing_convention="others"`` the true class keeps exactly :math:`1-e` and every
    other class gets :math:`e/(K-1)`. For probability targets :math:`y_{ic}`,
    :math:`\ell_i = -\sum_c w_c ((1-e) y_{ic} + e/K) \log p_{ic} + \zeta \operatorname{LSE}^2`
    and the mean divides by the number of samples. Torch tensors take a closed-form backward
    (no log-softmax kept between forward and backward).

    Parameters
    ----------
    logits : array
        Unnormalized scores, classes along ``axis``. Never pass probabilities (see
        :func:`crossent.diagnose`).
    targets : array
        Integer class indices with the shape of ``logits`` without ``axis``, or probabilities
        with the shape of ``logits``.
    axis : int or tuple of ints, default -1
        The class axis (PyTorch uses 1: pass ``axis=1`` for (N, C, d1, ...) inputs). Several
        axes act as one class axis (optax), a class index being the flat index over them in
        the order given.
    class_weight : array, optional
        Non-negative weight per class, shape (K,) (PyTorch's ``weight``).
    ignore_index : int, default -100
        Index targets equal to it contribute nothing (not even to the mean's denominator).
    label_smoothing : float, default 0
        Mix ``e`` of the uniform distribution into the targets.
    smoothing_convention : {"uniform", "others"}
        e/K on every class (PyTorch, optax, Keras), or e/(K-1) on the other classes.
    z_loss : float, default 0
        Coefficient of :math:`\operatorname{LSE}(z)^2`, which keeps logits from drifting.
    softcap : float, optional
        Soft cap of the logits, :math:`s \tanh(z/s)` (Gemma 2), applied first.
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns the per-sample losses (0 for ignored samples).
    weight : array, optional
        Deprecated name of ``class_weight``.

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

    Per-sample weights and a mask: the weighted mean :math:`\sum s_i \ell_i / \sum s_i`
    over unmasked samples (scikit-learn), or Keras' division by their count:

    >>> import numpy as np
    >>> z, y = np.array([[2.0, 0.0], [0.0, 2.0], [1.0, 1.0]]), np.array([0, 0, 1])
    >>> s, keep = np.array([1.0, 3.0, 2.0]), np.array([True, True, False])
    >>> print(ce.softmax_cross_entropy(z, y, reduction="none").round(4))
    [0.1269 2.1269 0.6931]
    >>> print(round(float(ce.softmax_cross_entropy(z, y, sample_weight=s, where=keep)), 4))
    1.6269
    >>> print(round(float(ce.softmax_cross_entropy(z, y, sample_weight=s, where=keep,
    ...                                            normalizer="count")), 4))  # (0.127 + 6.381) / 2
    3.2538
    """
    problem, rule = prepare_softmax_ce(
        logits, targets, axis=axis, class_weight=class_weight, weight=weight,
        ignore_index=ignore_index, label_smoothing=label_smoothing,
        smoothing_convention=smoothing_convention, z_loss=z_loss, softcap=softcap,
        reduction=reduction,
    )  # fmt: skip
    xp = problem.xp
    functions = torch_functions(xp)
    if functions is None and isinstance(problem.targets, IndexTargets):
        functions = jax_functions(xp)
    if functions is not None:
        return functions.softmax_cross_entropy(problem, rule, reduction)
    z, _ = capped(xp, problem.values, rule.softcap)
    loss = reduce(xp, per_row_loss(problem, rule, z), reduction, count(problem))
    return as_dtype(xp, loss, problem.dtype)


@quiet_numpy
@gradient_of(softmax_cross_entropy)
@per_sample_gradient(softmax_cross_entropy)
def softmax_cross_entropy_grad(
    logits: Array, targets: Array, /, *, with_loss: bool = False, **options: Any
) -> Any:
    r"""Gradient of :func:`crossent.softmax_cross_entropy` with respect to the logits.

    With :math:`q` the weighted (smoothed) target distribution and :math:`S = \sum_c q_c`:

    .. math:: \frac{\partial \ell}{\partial z} = S\, p - q
              \;+\; 2 \zeta\, w_y \operatorname{LSE}(z)\, p

    which is the famous :math:`p - y` for one-hot targets without weights (times
    :math:`1 - \tanh^2(z/s)` with a soft cap). With ``with_loss=True`` it returns
    ``(loss, gradient)`` from one pass over the logits (what a training step needs).

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0]).round(4))
    [[-0.341   0.2424  0.0986]]
    >>> loss, g = ce.grad.softmax_cross_entropy([[0.0, 0.0]], [1], with_loss=True)
    >>> print(round(float(loss), 4), g)
    0.6931 [[ 0.5 -0.5]]
    """
    problem, rule = prepare_softmax_ce(logits, targets, **options)
    xp = problem.xp
    z, th = capped(xp, problem.values, rule.softcap)
    g, lse = gradient(problem, rule, z, th, _row_scale(problem, options["reduction"]))
    if not with_loss:
        return problem.restore(g)
    # The limit's log-sum-exp is the raw one wherever it is finite (else recomputed).
    rows = per_row_loss(problem, rule, z, lse if all_finite(xp, lse) else None)
    loss = as_dtype(xp, reduce(xp, rows, options["reduction"], count(problem)), problem.dtype)
    return loss, problem.restore(g)
