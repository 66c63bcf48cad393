"""Closed-form gradients of every loss, without autograd, and a finite-difference check.

Each function takes exactly the arguments of its loss and returns d loss / d logits (for the
losses from probabilities, d loss / d probs), with the input's shape and dtype. For
``reduction="none"`` it returns the gradient of the sum of the per-sample losses, i.e. each
sample's gradient with respect to its own row. The validation and intermediate quantities come
from the same ``prepare_*`` helpers as the losses.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from . import _fast
from ._losses import (
    ClassProblem,
    all_finite,
    finish,
    hinge_parts,
    prepare_binary,
    prepare_categorical,
    prepare_classes,
    prepare_distillation,
    prepare_probability_binary,
    prepare_softmax_ce,
    prepare_softmax_focal,
    restore_axis,
    sigmoid_focal_parts,
    softmax_ce_per_sample,
    target_distribution,
)
from ._namespace import (
    Array,
    check_fraction,
    check_reduction,
    numel,
    quiet_numpy,
    to_numpy,
)
from ._primitives import _lse, _mul0, _sigmoid, _softmax, _softplus

__all__ = [
    "GradientCheck",
    "binary_cross_entropy",
    "categorical_cross_entropy",
    "check_gradient",
    "distillation_loss",
    "hinge_loss",
    "mse_loss",
    "sigmoid_binary_cross_entropy",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
]


def _scale(xp: Any, grad: Array, reduction: str, denominator: Array | float) -> Array:
    """Divide by the mean's denominator (0 gradient for an empty or fully ignored batch)."""
    check_reduction(reduction)
    if reduction != "mean":
        return grad
    denominator = xp.asarray(denominator, dtype=grad.dtype)
    safe = xp.where(denominator > 0, denominator, xp.ones_like(denominator))
    return xp.where(denominator > 0, grad / safe, xp.zeros_like(grad))


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
    with_loss: bool = False,
) -> Array | tuple[Array, Array]:
    r"""Gradient of :func:`crossent.softmax_cross_entropy` with respect to the logits.

    With :math:`q` the weighted (smoothed) target distribution and :math:`S = \sum_c q_c`:

    .. math:: \frac{\partial \ell}{\partial z} = S\, p - q
              \;+\; 2 \zeta\, w_y \operatorname{LSE}(z)\, p

    which is the famous :math:`p - y` for one-hot targets without weights. With
    ``with_loss=True`` it returns ``(loss, gradient)`` from one pass over the logits (what a
    training step needs), instead of the two passes of calling the loss and the gradient.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.softmax_cross_entropy([[2.0, 1.0, 0.1]], [0]).round(4))
    [[-0.341   0.2424  0.0986]]
    >>> loss, g = ce.grad.softmax_cross_entropy([[0.0, 0.0]], [1], with_loss=True)
    >>> print(round(float(loss), 4), g)
    0.6931 [[ 0.5 -0.5]]
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
    grad, lse = _softmax_ce_grad(problem, e, z_coef, reduction)
    if not with_loss:
        return grad
    return finish(problem, softmax_ce_per_sample(problem, lse, e, z_coef), reduction), grad


def _softmax_ce_grad(
    problem: ClassProblem, e: float, z_coef: float, reduction: str
) -> tuple[Array, Array]:
    """(gradient in the input's layout, row log-sum-exp) of the softmax cross-entropy."""
    xp, z = problem.xp, problem.values
    if not problem.index_targets:
        q = target_distribution(problem, e)
        lse = _lse(xp, z, -1)
        s = xp.sum(q, axis=-1)
        if z_coef > 0:
            s = s + 2 * z_coef * lse
        grad = _mul0(xp, s[..., None], _softmax(xp, z, -1)) - q
        return problem.restore(_scale(xp, grad, reduction, float(numel(s)))), lse

    # Index targets: grad = S p - q with q = (1-e) w_y e_y + (e/K) w, never forming q.
    # The mean's 1/sum(w_y) is folded into per-row factors, so the full-size array is written
    # once (p times its row factor) and then touched only at the targets.
    assert problem.w_t is not None and problem.valid is not None
    w_t, k = problem.w_t, problem.num_classes
    total = xp.sum(w_t)
    inv = xp.ones_like(total)
    if reduction == "mean":
        inv = xp.where(total > 0, 1 / xp.where(total > 0, total, inv), xp.zeros_like(total))
    valid = xp.astype(problem.valid, z.dtype)
    weights_sum = float(k) if problem.weight is None else xp.sum(problem.weight)
    row = ((1 - e) * w_t + (e / k) * weights_sum * valid) * inv
    fast = _fast.applies(xp, z)
    if fast and z_coef == 0:
        grad, lse = _fast.softmax_with_lse(z, row)
    else:
        lse = _lse(xp, z, -1)
        if z_coef > 0:
            row = row + 2 * z_coef * _mul0(xp, w_t, lse) * inv
        grad = None
    if grad is None or not all_finite(xp, lse):
        grad = _mul0(xp, row[..., None], _softmax(xp, z, -1))
    if e > 0:
        w = problem.weight if problem.weight is not None else xp.ones(k, dtype=z.dtype)
        grad = grad - ((e / k) * valid * inv)[..., None] * w
    at_target = (1 - e) * w_t * inv
    if _fast.applies(xp, grad):
        grad = _fast.subtract_at(grad, problem.targets, at_target)
    else:
        grad = grad - at_target[..., None] * problem.onehot()
    return problem.restore(grad), lse


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
    r"""Gradient of :func:`crossent.sigmoid_binary_cross_entropy` with respect to the logits.

    .. math:: \frac{\partial \ell}{\partial z} = w \bigl[(\pi y + 1 - y)\,\sigma(z) - \pi y\bigr]

    which is :math:`\sigma(z) - y` without weights.

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.sigmoid_binary_cross_entropy([0.0, 2.0], [1.0, 0.0], reduction="sum"))
    [-0.5         0.88079708]
    """
    xp, z, y, w, pw, dtype = prepare_binary(
        logits, targets, weight=weight, pos_weight=pos_weight, label_smoothing=label_smoothing
    )
    positive = y if pw is None else pw * y
    grad = (positive + 1 - y) * _sigmoid(xp, z) - positive
    if w is not None:
        grad = xp.broadcast_to(w, grad.shape) * grad
    return xp.astype(_scale(xp, grad, reduction, float(numel(grad))), dtype)


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
    check_reduction(reduction)
    problem, alpha_t, d, others = prepare_softmax_focal(
        logits, targets, axis=axis, alpha=alpha, gamma=gamma, ignore_index=ignore_index
    )
    xp = problem.xp
    slope = _sigmoid(xp, d)
    if gamma > 0:
        slope = xp.exp(-gamma * _softplus(xp, -d)) * (
            gamma * _mul0(xp, _sigmoid(xp, -d), _softplus(xp, d)) + slope
        )
    slope = _mul0(xp, alpha_t, slope)
    lse_others = _lse(xp, others, -1, keepdims=True)
    # Other classes all at -inf (the target holds all the mass): rivals 0, not -inf - -inf
    lse_others = xp.where(xp.isfinite(lse_others), lse_others, xp.zeros_like(lse_others))
    rivals = xp.exp(others - lse_others)
    grad = slope[..., None] * (rivals - problem.onehot())
    assert problem.valid is not None
    grad = xp.where(problem.valid[..., None], grad, xp.zeros_like(grad))
    count = xp.sum(xp.astype(problem.valid, grad.dtype))
    return problem.restore(_scale(xp, grad, reduction, count))


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
    check_reduction(reduction)
    xp, z, y, alpha_t, log_1m_pt, dtype = sigmoid_focal_parts(
        logits, targets, alpha=alpha, gamma=gamma
    )
    grad = _sigmoid(xp, z) - y
    if gamma > 0:
        # At |z| = inf the exponent below is inf - inf; the gradient's limit there is what a
        # logit of +-1e4 gives (every exponential has long underflowed), so clip to that.
        z = xp.clip(z, -1e4, 1e4)
        bce = _mul0(xp, y, _softplus(xp, -z)) + _mul0(xp, 1 - y, _softplus(xp, z))
        log_sig_both = -_softplus(xp, -z) - _softplus(xp, z)
        d_focal = (1 - 2 * y) * xp.exp((gamma - 1) * log_1m_pt + log_sig_both)
        grad = gamma * d_focal * bce + xp.exp(gamma * log_1m_pt) * grad
    grad = _mul0(xp, alpha_t, grad)
    return xp.astype(_scale(xp, grad, reduction, float(numel(grad))), dtype)


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
    r"""Gradient of :func:`crossent.distillation_loss` with respect to the student logits.

    .. math:: \frac{\partial \ell}{\partial s} = T\,\bigl(\operatorname{softmax}(s/T)
              - \operatorname{softmax}(t/T)\bigr)

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.distillation_loss([[0.0, 0.0]], [[0.0, 0.0]], temperature=2.0))
    [[0. 0.]]
    """
    check_reduction(reduction)
    xp, log_teacher, log_student, t, axis, dtype = prepare_distillation(
        student_logits, teacher_logits, temperature=temperature, axis=axis
    )
    grad = t * (xp.exp(log_student) - xp.exp(log_teacher))
    samples = float(numel(grad) // max(int(grad.shape[-1]), 1))
    return restore_axis(xp, _scale(xp, grad, reduction, samples), axis, dtype)


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
    check_reduction(reduction)
    if activation == "sigmoid":
        xp, z, y, _, _, dtype = prepare_binary(
            logits, targets, weight=None, pos_weight=None, label_smoothing=0.0
        )
        s = _sigmoid(xp, z)
        grad = 2 * (s - y) * s * (1 - s)
        return xp.astype(_scale(xp, grad, reduction, float(numel(grad))), dtype)
    if activation != "softmax":
        raise ValueError(f"activation must be 'softmax' or 'sigmoid', got {activation!r}")
    problem = prepare_classes(logits, targets, axis=axis, ignore_index=None)
    xp = problem.xp
    y = problem.onehot() if problem.index_targets else problem.targets
    p = _softmax(xp, problem.values, -1)
    g = 2 * (p - y)
    grad = p * (g - xp.sum(g * p, axis=-1, keepdims=True))
    return problem.restore(_scale(xp, grad, reduction, float(numel(grad) // problem.num_classes)))


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
    check_reduction(reduction)
    problem, loss, rival = hinge_parts(logits, targets, axis=axis, margin=margin)
    xp = problem.xp
    rival_onehot = xp.astype(rival[..., None] == xp.arange(problem.num_classes), loss.dtype)
    grad = rival_onehot - problem.onehot()
    grad = xp.where((loss > 0)[..., None], grad, xp.zeros_like(grad))
    return problem.restore(_scale(xp, grad, reduction, float(numel(loss))))


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
    r"""Gradient of :func:`crossent.categorical_cross_entropy` with respect to the probabilities.

    .. math:: \frac{\partial \ell}{\partial p_c} = -\frac{q_c}{p_c}
              \quad (0 \text{ where the clip is active})

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.categorical_cross_entropy([[0.5, 0.5]], [0]))
    [[-2. -0.]]
    """
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    problem, clipped, _ = prepare_categorical(
        probs, targets, axis=axis, eps=eps, weight=weight, ignore_index=ignore_index
    )
    xp = problem.xp
    inside = xp.astype(clipped == problem.values, clipped.dtype)
    grad = -target_distribution(problem, e) / clipped * inside
    if problem.valid is not None:
        denominator: Array | float = xp.sum(problem.w_t)
    else:
        denominator = float(numel(grad) // problem.num_classes)
    return problem.restore(_scale(xp, grad, reduction, denominator))


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
    r"""Gradient of :func:`crossent.binary_cross_entropy` with respect to the probabilities.

    .. math:: \frac{\partial \ell}{\partial p} = w \Bigl(\frac{1 - y}{1 - p} - \frac{y}{p}\Bigr)
              \quad (0 \text{ where the clip is active})

    Examples
    --------
    >>> import crossent as ce
    >>> print(ce.grad.binary_cross_entropy([0.5], [1.0]))
    [-2.]
    """
    check_reduction(reduction)
    xp, p, y, w, inside, dtype = prepare_probability_binary(probs, targets, eps=eps, weight=weight)
    grad = ((1 - y) / (1 - p) - y / p) * xp.astype(inside, p.dtype)
    if w is not None:
        grad = xp.broadcast_to(w, grad.shape) * grad
    return xp.astype(_scale(xp, grad, reduction, float(numel(grad))), dtype)


# ---------------------------------------------------------------- gradient checking


@dataclass(frozen=True)
class GradientCheck:
    """Result of :func:`check_gradient`: both gradients and how far apart they are."""

    analytic: np.ndarray
    numerical: np.ndarray
    max_abs_error: float
    max_rel_error: float
    ok: bool

    def __bool__(self) -> bool:
        return self.ok


@quiet_numpy
def check_gradient(
    fn: Callable[[Any], Any],
    x: Array,
    /,
    *,
    grad: Array | Callable[[Any], Any],
    eps: float = 1e-6,
    rtol: float = 1e-5,
    atol: float = 1e-8,
) -> GradientCheck:
    r"""Compare a gradient with central finite differences of ``fn`` (seed 004's gradient check).

    .. math:: \frac{\partial f}{\partial x_i} \approx \frac{f(x + h e_i) - f(x - h e_i)}{2h}

    The differences are taken in float64 NumPy, whatever ``x`` is, with an error of order
    :math:`h^2`. The check passes when every entry satisfies
    ``|analytic - numerical| <= atol + rtol * |numerical|``.

    Parameters
    ----------
    fn : callable
        Scalar function of one array (called with float64 NumPy arrays).
    x : array
        The point at which to check.
    grad : array or callable
        The gradient to check, or a function of ``x`` returning it.
    eps : float, default 1e-6
        The step h.
    rtol, atol : float
        Tolerances of the comparison.

    Returns
    -------
    GradientCheck
        ``ok`` (also its truth value), the errors, and both gradients.

    Examples
    --------
    >>> import crossent as ce
    >>> x = [[2.0, 1.0, 0.1]]
    >>> loss = lambda z: ce.softmax_cross_entropy(z, [0])
    >>> bool(ce.check_gradient(loss, x, grad=ce.grad.softmax_cross_entropy(x, [0])))
    True
    >>> bool(ce.check_gradient(loss, x, grad=ce.softmax(x)))  # forgot to subtract y
    False
    """
    point = np.array(to_numpy(np.asarray(x) if isinstance(x, (list, tuple)) else x), np.float64)
    analytic = grad(x) if callable(grad) else grad
    analytic_np = np.asarray(to_numpy(analytic), dtype=np.float64)
    if analytic_np.shape != point.shape:
        raise ValueError(f"grad has shape {analytic_np.shape}, but x has shape {point.shape}")
    numerical = np.zeros_like(point)
    for index in np.ndindex(point.shape):
        step = np.zeros_like(point)
        step[index] = eps
        upper = float(to_numpy(fn(point + step)))
        lower = float(to_numpy(fn(point - step)))
        numerical[index] = (upper - lower) / (2 * eps)
    error = np.abs(analytic_np - numerical)
    scale = np.maximum(np.abs(numerical), np.finfo(np.float64).tiny)
    ok = bool(np.all(error <= atol + rtol * np.abs(numerical)))
    return GradientCheck(
        analytic=analytic_np,
        numerical=numerical,
        max_abs_error=float(error.max(initial=0.0)),
        max_rel_error=float((error / scale).max(initial=0.0)),
        ok=ok and not math.isnan(float(error.sum())),
    )
