"""The JAX path of the softmax cross-entropy: a ``jax.custom_vjp`` with the closed-form gradient.

``crossent.softmax_cross_entropy(jax_array, targets)`` with class-index targets validates in the
core and comes here (:func:`crossent._dispatch.jax_functions`). The rules are
:mod:`crossent._semantics`'; what is JAX-only is that the gradient is written by hand instead of
derived by autodiff, which gives three things autodiff of the forward cannot: rows with an
infinite log-sum-exp get the gradient of their limit (autodiff sees a constant there), ignored
rows whose logits hold NaN get exactly 0 (autodiff propagates 0 * NaN = NaN through the masked
branch), and XLA fuses the whole backward into one pass over the logits.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import jax
import jax.numpy as jnp

from .._dispatch import focal_gradient, focal_margin
from .._semantics import (
    SoftmaxCE,
    focal_loss,
    focal_slope,
    mean_scale,
    mul0,
    reduce,
    smoothing,
    softmax_ce_coefficients,
    softmax_ce_loss,
    softplus,
)
from ..losses._problem import BinaryProblem, ClassProblem, index_targets
from ..losses.binary import elementwise_grad, elementwise_loss
from ..losses.focal import sigmoid_focal_grad_rule, sigmoid_focal_rule

__all__ = [
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
]


def _compute_dtype(dtype: Any) -> Any:
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _shifted(
    logits: Any, valid: Any, softcap: float | None, guard: bool
) -> tuple[Any, Any, Any, Any | None]:
    """(z - max with infinite rows at their limit, the finite max, the raw max, tanh or None).

    With ``guard`` (some logit is not finite) ignored rows are set to 0, so a NaN there reaches
    neither the loss nor the gradient, and rows with an infinite max take their limit (0 on
    the maxima, -inf elsewhere). Finite logits skip both: a ``where`` in the element-wise chain
    stops XLA from vectorizing it (2-5x slower on CPU), so it runs only when needed.
    """
    z = logits.astype(_compute_dtype(logits.dtype))
    th = None
    if softcap is not None:
        th = jnp.tanh(z / softcap)
        z = th * softcap
    if not guard:
        m = jnp.max(z, axis=-1)
        return z - m[:, None], m, m, th
    z = jnp.where(valid[:, None], z, 0.0)
    m = jnp.max(z, axis=-1, keepdims=True)
    finite = jnp.isfinite(m)
    m_fin = jnp.where(finite, m, 0.0)
    shifted = jnp.where(finite, z - m_fin, jnp.where(z == m, 0.0, -math.inf))
    return shifted, m_fin[:, 0], m[:, 0], th


def _forward(
    rule: SoftmaxCE, reduction: str, logits: Any, index: Any, valid: Any, w_t: Any, w: Any
) -> tuple[Any, Any, Any, Any]:
    """(loss, (log-sum of the shifted exps, finite row max), whether the plain rule held, the
    plain rule's shifted exps: the backward's softmax, unused and dropped by XLA without it)."""
    compute = partial(_guarded_forward, rule, reduction, logits, index, valid, w_t, w)
    *plain, exps = compute(False)
    # The unguarded rule is exact, limits included, on every row whose max is finite (an
    # infinite or NaN logit makes it inf or NaN): a check on N numbers, not a pass over the
    # logits. Only otherwise the guarded rule runs.
    finite = jnp.all(jnp.isfinite(plain[1][1]))
    loss, stats = jax.lax.cond(finite, lambda: tuple(plain), lambda: compute(True)[:2])
    return loss, stats, finite, exps


def _guarded_forward(
    rule: SoftmaxCE, reduction: str, logits: Any, index: Any, valid: Any, w_t: Any, w: Any,
    guard: bool,
) -> tuple[Any, Any, Any]:  # fmt: skip
    shifted, m_fin, m, _ = _shifted(logits, valid, rule.softcap, guard)
    exps = jnp.exp(shifted)
    log_sum = jnp.log(jnp.sum(exps, axis=-1))
    if guard:
        nll_t = log_sum - jnp.take_along_axis(shifted, index[:, None], axis=-1)[:, 0]
    else:
        # The target logit from the input (N numbers), so that XLA fuses z - max into the one
        # reduction instead of writing it out for a gather.
        raw_t = jnp.take_along_axis(logits, index[:, None], axis=-1)[:, 0]
        z_t = raw_t.astype(m.dtype)
        if rule.softcap is not None:
            z_t = rule.softcap * jnp.tanh(z_t / rule.softcap)
        nll_t = log_sum - (z_t - m)
    smooth_nll = None
    if rule.smoothing.per_class > 0:
        # sum_c w_c (log_sum - shifted_c): two sums of non-negative terms, no cancellation
        w_sum = float(shifted.shape[-1]) if w is None else jnp.sum(w)
        weighted = shifted if w is None else mul0(jnp, w[None, :], shifted)
        smooth_nll = w_sum * log_sum - jnp.sum(weighted, axis=-1)
    lse = m_fin + log_sum  # the limit's log-sum-exp; the raw one is +-inf where m is
    lse_raw = jnp.where(jnp.isfinite(m), lse, m)
    loss = softmax_ce_loss(
        jnp, rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=lse_raw, w_t=w_t, valid=valid
    )
    total = reduce(jnp, loss, reduction, jnp.sum(w_t)).astype(logits.dtype)
    return total, (log_sum, m_fin, m), exps


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _index_ce(
    rule: SoftmaxCE, reduction: str, logits: Any, index: Any, valid: Any, w_t: Any, w: Any
) -> Any:
    return _forward(rule, reduction, logits, index, valid, w_t, w)[0]


def _index_ce_fwd(
    rule: SoftmaxCE, reduction: str, logits: Any, index: Any, valid: Any, w_t: Any, w: Any
) -> tuple[Any, tuple[Any, ...]]:
    loss, stats, finite, exps = _forward(rule, reduction, logits, index, valid, w_t, w)
    return loss, (logits, index, valid, w_t, w, stats, exps, finite)


def _index_ce_bwd(
    rule: SoftmaxCE, reduction: str, saved: tuple[Any, ...], grad: Any
) -> tuple[Any, None, None, None, None]:
    logits, index, valid, w_t, w, (log_sum, m_fin, m), exps, _ = saved
    z = logits.astype(exps.dtype)
    th = None
    if rule.softcap is not None:
        th = jnp.tanh(z / rule.softcap)
        z = th * rule.softcap
    # No lax.cond here: XLA runs the N x K work inside a conditional's branch on one thread
    # (1.5x slower at 65536 x 1000 on two cores). The forward's exps, scaled by 1 / sum, are
    # the softmax wherever the plain rule held (no second exp per logit: XLA's autodiff of the
    # plain expression keeps them too); on the other rows (an infinite max, or ignored) the
    # guarded forward's statistics give the limit, uniform over the row's maxima: 1 / count
    # at z == max. Both as one select, so the gradient is one fused pass.
    plain_row = valid & jnp.isfinite(m)
    softmax = jnp.exp(-log_sum)[:, None] * jnp.where(plain_row[:, None], exps, z == m[:, None])
    s = grad.astype(exps.dtype)
    if reduction == "mean":
        s = s * mean_scale(jnp, jnp.sum(w_t))
    w_sum = float(softmax.shape[-1]) if w is None else jnp.sum(w)
    a, b, r = softmax_ce_coefficients(
        jnp, rule, lse=m_fin + log_sum, w_t=w_t, valid=valid, w_sum=w_sum
    )
    g = (s * a)[:, None] * softmax
    if r is not None:
        g = g - (s * r)[:, None] * (1.0 if w is None else w[None, :])
    # The one-hot term as a compare in the chain (without an exp in it XLA still vectorizes).
    g = g - (s * b)[:, None] * (jnp.arange(g.shape[1])[None, :] == index[:, None])
    if th is not None:  # d s tanh(x / s) / dx; 0 on ignored rows, even where they hold NaN
        g = g * jnp.where(valid[:, None], 1 - th * th, 0.0)
    return g.astype(logits.dtype), None, None, None, None


_index_ce.defvjp(_index_ce_fwd, _index_ce_bwd)


def _over_rows(loss: Any, problem: ClassProblem, reduction: str, *per_row: Any) -> Any:
    """``loss(logits (N, K), index, valid, *per_row)`` over the flattened rows of ``problem``,
    its per-row result (``reduction="none"``) shaped back like the batch."""
    tg = index_targets(problem)
    rows = (
        problem.raw.reshape(-1, problem.num_classes),
        tg.index.reshape(-1),
        tg.valid.reshape(-1),
    )
    out = loss(*rows, *per_row)
    return out.reshape(tuple(problem.raw.shape[:-1])) if reduction == "none" else out


def softmax_cross_entropy(problem: ClassProblem, rule: SoftmaxCE, reduction: str) -> Any:
    """The JAX path of :func:`crossent.softmax_cross_entropy` for class-index targets."""
    w_t = index_targets(problem).w_t.reshape(-1)
    loss = partial(_index_ce, rule, reduction)
    return _over_rows(loss, problem, reduction, w_t, problem.class_weight)


# ----------------------------------------------------------------- binary cross-entropy


def _on_finite(x: Any, compute: Any, *, primal: bool) -> Any:
    """``compute(False)`` (the plain rule) where it is exact, else ``compute(True)`` (the
    guarded rule, 0 * inf = 0): a select in the element-wise chain stops XLA from vectorizing
    it (5x slower), so one reduction decides.

    The primal (the loss alone) runs the plain rule first and keeps it if its value is
    finite: the guards change only 0 * inf terms, which make the plain value NaN, so a finite
    plain value is the guarded one, and no pass over ``x`` is needed. The custom_vjp's forward
    checks that ``x`` is finite instead and runs both rules inside the cond: with the plain
    rule hoisted out of it there, forward + backward took 2x as long (XLA, CPU).
    """
    if primal:
        plain = compute(False)
        return jax.lax.cond(jnp.isfinite(jnp.sum(plain)), lambda: plain, lambda: compute(True))
    finite = jnp.isfinite(jnp.sum(x))
    return jax.lax.cond(finite, lambda: compute(False), lambda: compute(True))


def _bce_operands(y: Any, w: Any, pw: Any, dtype: Any) -> tuple[Any, Any, Any]:
    return tuple(None if a is None else a.astype(dtype) for a in (y, w, pw))  # type: ignore[return-value]


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _bce(
    label_smoothing: float, convention: str, reduction: str, z: Any, y: Any, w: Any, pw: Any
) -> Any:
    return _bce_value(label_smoothing, convention, reduction, z, y, w, pw, primal=True)


def _bce_fwd(
    label_smoothing: float, convention: str, reduction: str, z: Any, y: Any, w: Any, pw: Any
) -> tuple[Any, tuple[Any, ...]]:
    loss = _bce_value(label_smoothing, convention, reduction, z, y, w, pw, primal=False)
    return loss, (z, y, w, pw)


def _bce_value(
    label_smoothing: float, convention: str, reduction: str, z: Any, y: Any, w: Any, pw: Any,
    *, primal: bool,
) -> Any:  # fmt: skip
    dtype = _compute_dtype(z.dtype)
    operands = (z.astype(dtype), *_bce_operands(y, w, pw, dtype))

    def compute(guard: bool) -> Any:
        loss = elementwise_loss(jnp, *operands, label_smoothing=label_smoothing,
                                convention=convention, guard_infinite=guard)  # fmt: skip
        loss = jnp.broadcast_to(loss, z.shape)
        if reduction == "none":
            return loss
        total = jnp.sum(loss)
        return total / max(loss.size, 1) if reduction == "mean" else total

    return _on_finite(operands[0], compute, primal=primal).astype(z.dtype)


def _bce_bwd(
    label_smoothing: float, convention: str, reduction: str, saved: tuple[Any, ...], grad: Any
) -> tuple[Any, Any, None, None]:
    z, y, w, pw = saved
    dtype = _compute_dtype(z.dtype)
    zc, yc, wc, pwc = z.astype(dtype), *_bce_operands(y, w, pw, dtype)
    s = grad.astype(dtype)
    if reduction == "mean":
        s = s / max(z.size, 1)
    # d l / d z has no 0 * inf: it is finite at every z, so it needs no guard.
    g = elementwise_grad(jnp, zc, yc, wc, pwc, label_smoothing=label_smoothing,
                         convention=convention, scale=1.0)  # fmt: skip
    # d l / d y = w (pi softplus(-z) - softplus(z)), times the smoothing's coefficient of y
    sp_neg, sp_pos = softplus(jnp, -zc), softplus(jnp, zc)
    dy = (sp_neg if pwc is None else pwc * sp_neg) - sp_pos
    dy = dy if wc is None else wc * dy
    on_target = smoothing(label_smoothing, 2, convention).on_target
    grad_y = jnp.broadcast_to(on_target * s * dy, y.shape).astype(y.dtype)
    return jnp.broadcast_to(g * s, z.shape).astype(z.dtype), grad_y, None, None


_bce.defvjp(_bce_fwd, _bce_bwd)


def binary_cross_entropy_with_logits(
    problem: BinaryProblem, label_smoothing: float, convention: str, reduction: str
) -> Any:
    """The JAX path of :func:`crossent.sigmoid_binary_cross_entropy` (inputs validated)."""
    y = problem.raw_targets
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(problem.z.dtype)
    return _bce(
        label_smoothing, convention, reduction, problem.raw, y, problem.weight, problem.pos_weight
    )


# ----------------------------------------------------------------- sigmoid focal loss


@partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _sigmoid_focal(alpha: float | None, gamma: float, reduction: str, z: Any, y: Any) -> Any:
    return _sigmoid_focal_value(alpha, gamma, reduction, z, y, primal=True)


def _sigmoid_focal_loss(
    alpha: float | None, gamma: float, reduction: str, z: Any, y: Any, guard: bool
) -> Any:
    loss = sigmoid_focal_rule(jnp, z, y, alpha=alpha, gamma=gamma, guard=guard)
    if reduction == "none":
        return loss
    total = jnp.sum(loss)
    return total / max(loss.size, 1) if reduction == "mean" else total


def _sigmoid_focal_fwd(
    alpha: float | None, gamma: float, reduction: str, z: Any, y: Any
) -> tuple[Any, tuple[Any, ...]]:
    return _sigmoid_focal_value(alpha, gamma, reduction, z, y, primal=False), (z, y)


def _sigmoid_focal_value(
    alpha: float | None, gamma: float, reduction: str, z: Any, y: Any, *, primal: bool
) -> Any:
    dtype = _compute_dtype(z.dtype)
    zc, yc = z.astype(dtype), y.astype(dtype)
    compute = partial(_sigmoid_focal_loss, alpha, gamma, reduction, zc, yc)
    return _on_finite(zc, compute, primal=primal).astype(z.dtype)


def _sigmoid_focal_bwd(
    alpha: float | None, gamma: float, reduction: str, saved: tuple[Any, ...], grad: Any
) -> tuple[Any, Any]:
    z, y = saved
    dtype = _compute_dtype(z.dtype)
    zc, yc = z.astype(dtype), y.astype(dtype)
    s = grad.astype(dtype)
    if reduction == "mean":
        s = s / max(z.size, 1)
    g = sigmoid_focal_grad_rule(jnp, zc, yc, alpha=alpha, gamma=gamma, scale=1.0) * s
    # d l / d y by autodiff of the guarded rule: XLA drops it under jit when nobody asks.
    _, pullback = jax.vjp(lambda t: _sigmoid_focal_loss(alpha, gamma, reduction, zc, t, True), yc)
    (grad_y,) = pullback(grad.astype(dtype))
    return g.astype(z.dtype), grad_y.astype(y.dtype)


_sigmoid_focal.defvjp(_sigmoid_focal_fwd, _sigmoid_focal_bwd)


def sigmoid_focal_loss(
    problem: BinaryProblem, alpha: float | None, gamma: float, reduction: str
) -> Any:
    """The JAX path of :func:`crossent.sigmoid_focal_loss` (inputs validated)."""
    y = problem.raw_targets
    if not jnp.issubdtype(y.dtype, jnp.floating):
        y = y.astype(problem.z.dtype)
    return _sigmoid_focal(alpha, gamma, reduction, problem.raw, y)


# ----------------------------------------------------------------- softmax focal loss


def _rivals(z: Any, index: Any) -> tuple[Any, Any]:
    """(the log-sum-exp of each row's other classes, whether it is exact on every row).

    Shifted by the row max (one plain reduction, as ``log_softmax``); the target is masked by
    comparing a column iota with the index, which XLA vectorizes (it is the +-inf guards'
    selects that it cannot). The sum is exact unless it is NaN (a NaN or +inf logit) or so
    small that its terms are subnormal (a target far above every rival): those rows need the
    core's guarded rule.
    """
    m = jnp.max(z, axis=-1)
    is_target = jnp.arange(z.shape[-1])[None, :] == index[:, None]
    total = jnp.sum(jnp.where(is_target, 0.0, jnp.exp(z - m[:, None])), axis=-1)
    exact = jnp.all(total > jnp.finfo(z.dtype).tiny * 2.0**30)  # False where NaN
    return m + jnp.log(total), exact


def _focal_reduce(loss: Any, valid: Any, reduction: str, dtype: Any) -> Any:
    loss = jnp.where(valid, loss, 0.0)
    return reduce(jnp, loss, reduction, jnp.sum(valid.astype(loss.dtype))).astype(dtype)


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def _softmax_focal(
    gamma: float, reduction: str, z: Any, index: Any, valid: Any, alpha_t: Any
) -> Any:
    return _softmax_focal_fwd(gamma, reduction, z, index, valid, alpha_t)[0]


def _softmax_focal_fwd(
    gamma: float, reduction: str, z: Any, index: Any, valid: Any, alpha_t: Any
) -> tuple[Any, tuple[Any, ...]]:
    zc = z.astype(_compute_dtype(z.dtype))
    lse_rivals, plain = _rivals(zc, index)
    d = lse_rivals - jnp.take_along_axis(zc, index[:, None], axis=-1)[:, 0]
    # One check on N numbers instead of a pass over the logits for finiteness.
    d = jax.lax.cond(plain, lambda: d, lambda: focal_margin(jnp, zc, index)[0])
    loss = mul0(jnp, alpha_t, focal_loss(jnp, d, gamma))  # alpha 0 silences even an inf term
    saved = (z, index, valid, alpha_t, d, lse_rivals, plain)
    return _focal_reduce(loss, valid, reduction, z.dtype), saved


def _softmax_focal_bwd(
    gamma: float, reduction: str, saved: tuple[Any, ...], grad: Any
) -> tuple[Any, None, None, None]:
    z, index, valid, alpha_t, d, lse_rivals, plain = saved
    zc = z.astype(d.dtype)
    slope = mul0(jnp, alpha_t, focal_slope(jnp, d, gamma)) * grad.astype(d.dtype)
    if reduction == "mean":
        slope = slope * mean_scale(jnp, jnp.sum(valid.astype(d.dtype)))

    def gradient(guard: bool) -> Any:
        if guard:
            _, others = focal_margin(jnp, zc, index)
            return jnp.where(valid[:, None], focal_gradient(jnp, zc, index, slope, others), 0.0)
        # slope * (softmax of the rivals - onehot): one pass, ignored rows have slope 0
        is_target = jnp.arange(zc.shape[-1])[None, :] == index[:, None]
        rivals = jnp.where(is_target, -1.0, jnp.exp(zc - lse_rivals[:, None]))
        return slope[:, None] * rivals

    g = jax.lax.cond(plain, lambda: gradient(False), lambda: gradient(True))
    return g.astype(z.dtype), None, None, None


_softmax_focal.defvjp(_softmax_focal_fwd, _softmax_focal_bwd)


def softmax_focal_loss(problem: ClassProblem, alpha_t: Any, gamma: float, reduction: str) -> Any:
    """The JAX path of :func:`crossent.softmax_focal_loss` (inputs validated)."""
    loss = partial(_softmax_focal, gamma, reduction)
    return _over_rows(loss, problem, reduction, alpha_t.reshape(-1))
