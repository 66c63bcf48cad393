"""Focal losses (Lin et al. 2017), softmax and sigmoid, with their closed-form gradients.

Both are computed in log space, so losses and gradients stay finite at saturated logits for
every ``gamma >= 0`` (optax #1267 gave NaN for gamma < 2). The softmax focal loss is a function
of one number per row, the margin (:func:`crossent._semantics.focal_loss`); torch tensors go to
the torch autograd Function, which calls the same rules.
"""

from __future__ import annotations

import operator
from functools import partial
from typing import Any

from .._dispatch import (
    elementwise,
    focal_gradient,
    focal_margin,
    jax_functions,
    torch_functions,
    when_finite,
)
from .._namespace import Array, as_dtype, numel, quiet_numpy
from .._namespace import clip as clip_values
from .._semantics import (
    binary_ce_grad,
    binary_ce_loss,
    element_count,
    focal_loss,
    focal_slope,
    heaviside,
    mean_scale,
    mul0,
    reduce,
)
from .._validation import check_class_vector, check_fraction, check_nonnegative, check_reduction
from ._problem import (
    BinaryProblem,
    ClassProblem,
    gradient_of,
    index_targets,
    prepare_binary,
    prepare_classes,
    safe_log,
    take_per_class,
)
from ._weighting import per_sample, per_sample_gradient

__all__ = [
    "sigmoid_focal_loss",
    "sigmoid_focal_loss_grad",
    "softmax_focal_loss",
    "softmax_focal_loss_grad",
]


# ---------------------------------------------------------------- softmax focal loss


def prepare_softmax_focal(
    logits: Array,
    targets: Array,
    *,
    axis: int | tuple[int, ...],
    alpha: float | Array | None,
    gamma: float,
    ignore_index: int,
    reduction: str,
) -> tuple[ClassProblem, Array, float]:
    """The validated problem, alpha of each row's target (0 where ignored), and gamma."""
    check_reduction(reduction)
    gamma = check_nonnegative(gamma, "gamma")
    problem = prepare_classes(
        logits, targets, axis=axis, ignore_index=ignore_index, allow_probability_targets=False
    )
    xp, tg = problem.xp, index_targets(problem)
    dtype = tg.w_t.dtype
    if alpha is None or isinstance(alpha, (int, float)):
        a = 1.0 if alpha is None else check_nonnegative(alpha, "alpha")
        alpha_t = a * xp.astype(tg.valid, dtype)
    else:
        vector = check_class_vector(xp, alpha, problem.num_classes, "alpha", dtype)
        alpha_t = take_per_class(xp, vector, tg.index)
        alpha_t = xp.where(tg.valid, alpha_t, xp.zeros_like(alpha_t))
    return problem, alpha_t, gamma


def _valid_count(xp: Any, problem: ClassProblem) -> Array:
    valid = index_targets(problem).valid
    return xp.sum(xp.astype(valid, problem.values.dtype))


@quiet_numpy
@per_sample()
def softmax_focal_loss(
    logits: Array,
    targets: Array,
    /,
    *,
    axis: int | tuple[int, ...] = -1,
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
    axis : int or tuple of ints, default -1
        The class axis, or several axes taken as one (optax; flat class index in their order).
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
    problem, alpha_t, gamma = prepare_softmax_focal(
        logits, targets, axis=axis, alpha=alpha, gamma=gamma, ignore_index=ignore_index,
        reduction=reduction,
    )  # fmt: skip
    xp, tg = problem.xp, index_targets(problem)
    functions = torch_functions(xp) or jax_functions(xp)
    if functions is not None:
        return functions.softmax_focal_loss(problem, alpha_t, gamma, reduction)
    d, _ = focal_margin(xp, problem.values, tg.index)
    loss = mul0(xp, alpha_t, focal_loss(xp, d, gamma))  # alpha 0 silences even an inf term
    loss = xp.where(tg.valid, loss, xp.zeros_like(loss))
    return as_dtype(xp, reduce(xp, loss, reduction, _valid_count(xp, problem)), problem.dtype)


@quiet_numpy
@gradient_of(softmax_focal_loss)
@per_sample_gradient(softmax_focal_loss)
def softmax_focal_loss_grad(logits: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.softmax_focal_loss` with respect to the logits.

    With the margin :math:`d = \operatorname{LSE}_{c \ne t} z_c - z_t` the loss is
    :math:`f(d) = \alpha\, \sigma(d)^\gamma \operatorname{softplus}(d)`, so

    .. math:: \frac{\partial \ell}{\partial z} = f'(d)\,(r - e_t), \quad
              f'(d) = \alpha\, \sigma(d)^\gamma
              \bigl[\gamma\, \sigma(-d) \operatorname{softplus}(d) + \sigma(d)\bigr]

    where :math:`r` is the softmax over the other classes (0 on the target). Every factor is
    bounded, so the gradient is finite at saturated logits for every :math:`\gamma \ge 0`.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.softmax_focal_loss([[2.0, 1.0, 0.1]], [0], gamma=0.0).round(4))
    [[-0.341   0.2424  0.0986]]
    """
    problem, alpha_t, gamma = prepare_softmax_focal(logits, targets, **options)
    xp, tg = problem.xp, index_targets(problem)
    d, others = focal_margin(xp, problem.values, tg.index)
    slope = mul0(xp, alpha_t, focal_slope(xp, d, gamma))
    if options["reduction"] == "mean":
        slope = slope * mean_scale(xp, _valid_count(xp, problem))
    grad = focal_gradient(xp, problem.values, tg.index, slope, others)
    if others is not None:  # the fast kernel's rows are all finite; NaN ones are masked here
        grad = xp.where(tg.valid[..., None], grad, xp.zeros_like(grad))
    return problem.restore(grad)


# ---------------------------------------------------------------- sigmoid focal loss


def sigmoid_focal_parts(
    logits: Array, targets: Array, *, alpha: float | None, gamma: float, reduction: str
) -> tuple[BinaryProblem, float | None, float]:
    """(problem, alpha or None, gamma) of torchvision's sigmoid focal loss, checked."""
    check_reduction(reduction)
    gamma = check_nonnegative(gamma, "gamma")
    problem = prepare_binary(logits, targets)
    a = None if alpha is None or alpha < 0 else check_fraction(alpha, "alpha")
    return problem, a, gamma


def _focal_terms(xp: Any, z: Array, y: Array, *, guard: bool) -> tuple[Array, Array, Array, Array]:
    """(BCE, log(1 - p_t), softplus(z), softplus(-z)) element-wise, sharing log1p(exp(-|z|)).

    ``guard`` is for infinite logits: 0 * inf = 0 in the BCE, and no -inf - -inf in the
    log-add-exp (both of its terms are -inf at z = +-inf); finite logits need neither.
    """
    tail = xp.log1p(xp.exp(-xp.abs(z)))
    zero = xp.zeros_like(z)
    sp_pos, sp_neg = xp.maximum(z, zero) + tail, xp.maximum(-z, zero) + tail
    times = partial(mul0, xp) if guard else operator.mul
    bce = times(y, sp_neg) + times(1 - y, sp_pos)
    # log(1 - p_t) = log(y sigmoid(-z) + (1 - y) sigmoid(z)) as a log-add-exp of two terms: no
    # cancellation where the prediction is right and confident.
    # safe_log keeps autodiff through log(0) finite; the forward alone needs plain logs.
    log = partial(safe_log, xp) if guard else xp.log
    a, b = log(y) - sp_pos, log(1 - y) - sp_neg
    gap = xp.where(a == b, xp.zeros_like(a), xp.abs(a - b)) if guard else xp.abs(a - b)
    log_1m_pt = xp.maximum(a, b) + xp.log1p(xp.exp(-gap))
    return bce, log_1m_pt, sp_pos, sp_neg


def _alpha_t(xp: Any, y: Array, alpha: float | None) -> Array | None:
    return None if alpha is None else alpha * y + (1 - alpha) * (1 - y)


def _direct_terms(xp: Any, z: Array, y: Array) -> tuple[Array, Array, Array, Array]:
    """(BCE, 1 - p_t, sigmoid(z) - y, sigmoid(z) sigmoid(-z)) element-wise for finite z, from one
    exp(-|z|): 1 - p_t = y sigmoid(-z) + (1 - y) sigmoid(z) is a sum of non-negative terms, so
    it keeps its digits where the prediction is right and confident (sigmoid(-|z|) = e/(1+e),
    not 1 - sigmoid(|z|)). Its power is taken directly where the exponent is >= 0, i.e. for
    gamma >= 1 (the gradient's gamma - 1): half the transcendental functions of the log-space
    form, which the rest (gamma < 1, whose gradient has (1 - p_t)^(gamma - 1)) still needs."""
    e = xp.exp(-xp.abs(z))
    r = 1 / (1 + e)  # sigmoid(|z|); sigmoid(-|z|) = e r
    s = heaviside(xp, z)  # the branch by arithmetic; every term stays non-negative
    a = y * (1 - s) + (1 - y) * s
    bce = binary_ce_loss(xp, z, y, None, guard_infinite=False, exp_neg_abs=e)
    sig_minus_y = binary_ce_grad(xp, z, y, None, e)  # without sigmoid(z) - y's cancellation
    return bce, r * (a + (1 - a) * e), sig_minus_y, e * r * r


def sigmoid_focal_rule(
    xp: Any, z: Array, y: Array, *, alpha: float | None, gamma: float, guard: bool
) -> Array:
    """The element-wise loss alpha_t (1 - p_t)^gamma BCE (the power directly for finite
    logits and gamma >= 1, else in log space)."""
    if gamma >= 1 and not guard:
        bce, one_minus_pt, _, _ = _direct_terms(xp, z, y)
        loss = one_minus_pt**gamma * bce
    else:
        bce, log_1m_pt, _, _ = _focal_terms(xp, z, y, guard=guard)
        loss = bce if gamma == 0 else xp.exp(gamma * log_1m_pt) * bce
    alpha_t = _alpha_t(xp, y, alpha)
    if alpha_t is None:
        return loss
    return mul0(xp, alpha_t, loss) if guard else alpha_t * loss


def sigmoid_focal_grad_rule(
    xp: Any, z: Array, y: Array, *, alpha: float | None, gamma: float, scale: float
) -> Array:
    """d loss / d z element-wise, times ``scale``."""
    if gamma >= 1:
        # d/dz (1 - p_t) = (1 - 2y) sigmoid(z) sigmoid(-z); z clipped as below
        bce, q, sig_minus_y, slope = _direct_terms(xp, clip_values(xp, z, -1e4, 1e4), y)
        grad = gamma * (1 - 2 * y) * q ** (gamma - 1) * slope * bce + q**gamma * sig_minus_y
        alpha_t = _alpha_t(xp, y, alpha)
        return (grad if alpha_t is None else alpha_t * grad) * scale
    grad = binary_ce_grad(xp, z, y, None)  # sigmoid(z) - y without its cancellation
    if gamma > 0:
        # At |z| = inf the exponent below is inf - inf; the gradient's limit there is what a
        # logit of +-1e4 gives (every exponential has long underflowed), so clip to that.
        z = clip_values(xp, z, -1e4, 1e4)
        bce, log_1m_pt, sp_pos, sp_neg = _focal_terms(xp, z, y, guard=False)  # z is finite
        d_focal = (1 - 2 * y) * xp.exp((gamma - 1) * log_1m_pt - sp_neg - sp_pos)
        grad = gamma * d_focal * bce + xp.exp(gamma * log_1m_pt) * grad
    alpha_t = _alpha_t(xp, y, alpha)  # the gradient is finite everywhere: no 0 * inf
    return (grad if alpha_t is None else alpha_t * grad) * scale


@quiet_numpy
@per_sample()
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

    computed with :math:`1 - p_t = y\,\sigma(-z) + (1-y)\,\sigma(z)` (a sum of non-negative
    terms, no cancellation where the prediction is right and confident) for
    :math:`\gamma \ge 1`, and as a log-sum-exp in log space for :math:`\gamma < 1` (whose
    gradient holds :math:`(1 - p_t)^{\gamma - 1}`), so it stays finite and smooth at
    saturated logits for every :math:`\gamma \ge 0`, loss and gradient accurate to 1e-12
    relatively (tested against 50-digit arithmetic).

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
    problem, a, gamma = sigmoid_focal_parts(
        logits, targets, alpha=alpha, gamma=gamma, reduction=reduction
    )
    xp, z = problem.xp, problem.z
    functions = jax_functions(xp)  # a custom_vjp (both cotangents)
    if functions is None and not getattr(problem.raw_targets, "requires_grad", False):
        functions = torch_functions(xp)  # an autograd Function (the logits' gradient only)
    if functions is not None:
        return functions.sigmoid_focal_loss(problem, a, gamma, reduction)

    def compute(guard: bool) -> Array:
        rule = partial(sigmoid_focal_rule, xp, alpha=a, gamma=gamma, guard=guard)
        if reduction == "none":
            return elementwise(xp, rule, z, problem.y)
        total = elementwise(xp, rule, z, problem.y, total=True)
        return total * mean_scale(xp, element_count(xp, z)) if reduction == "mean" else total

    # Autodiff to the targets (torch tensors that require grad) needs the guarded logs.
    to_targets = bool(getattr(problem.raw_targets, "requires_grad", False))
    loss = when_finite(xp, z, lambda: compute(to_targets), lambda: compute(True))
    return as_dtype(xp, loss, problem.dtype)


@quiet_numpy
@gradient_of(sigmoid_focal_loss)
@per_sample_gradient(sigmoid_focal_loss)
def sigmoid_focal_loss_grad(logits: Array, targets: Array, /, **options: Any) -> Any:
    r"""Gradient of :func:`crossent.sigmoid_focal_loss` with respect to the logits.

    With :math:`L = \log(1 - p_t)` and :math:`\operatorname{BCE}' = \sigma(z) - y`:

    .. math:: \frac{\partial \ell}{\partial z} = \alpha_t e^{\gamma L}
              \bigl[\gamma L' \operatorname{BCE} + \sigma(z) - y\bigr], \quad
              e^{\gamma L} L' = (1 - 2y)\, e^{(\gamma - 1) L + \log\sigma(z) + \log\sigma(-z)}

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.sigmoid_focal_loss([0.0], [1.0], alpha=None, gamma=0.0))
    [-0.5]
    """
    problem, a, gamma = sigmoid_focal_parts(logits, targets, **options)
    xp, z = problem.xp, problem.z
    scale = 1 / max(numel(z), 1) if options["reduction"] == "mean" else 1.0
    rule = partial(sigmoid_focal_grad_rule, xp, alpha=a, gamma=gamma, scale=scale)
    return as_dtype(xp, elementwise(xp, rule, z, problem.y), problem.dtype)
