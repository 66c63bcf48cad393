"""The torch path of the core losses: autograd Functions with closed-form backward passes.

``crossent.softmax_cross_entropy(tensor, ...)`` (and the BCE and softmax focal losses) validate
their inputs once in the core and come here (:func:`crossent._dispatch.torch_functions`). The
rules (per-row loss, gradient coefficients, limits, safe mean) are :mod:`crossent._semantics`';
what is torch-only is how the log-sum-exp and the softmax are obtained (in cache-sized row
blocks on CPU, one kernel on accelerators and under ``torch.compile``) and that the backward
writes the gradient in one buffer, in place.

Each forward saves only what its backward needs (the input and a log-sum-exp per row, never
the softmax or log-softmax): a training step holds less than ``torch.nn.CrossEntropyLoss``,
which keeps the log-softmax and allocates two logits-sized tensors in backward. Nothing here
synchronizes with a device or branches on tensor values off the CPU, so every Function traces
under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from functools import partial
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._dispatch import elementwise
from .._namespace import all_finite, is_concrete
from .._semantics import (
    SoftmaxCE,
    binary_targets,
    focal_loss,
    focal_slope,
    limit_rows,
    mean_scale,
    mul0,
    probability_ce_coefficient,
    probability_ce_loss,
    probability_targets,
    reduce,
    softmax_ce_coefficients,
    softmax_ce_loss,
    softplus,
)
from .._semantics import smoothing as smoothing_of
from ..losses._problem import BinaryProblem, ClassProblem, IndexTargets
from ..losses.binary import elementwise_grad, elementwise_loss
from ..losses.focal import sigmoid_focal_grad_rule, sigmoid_focal_rule
from ..losses.probability import binary_grad_rule, binary_loss_rule
from ..losses.softmax import class_sum

__all__ = [
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "sigmoid_focal_loss",
    "softmax_cross_entropy",
    "softmax_focal_loss",
]

#: Elements per row block of the CPU loops below (4 MiB of float32).
CPU_BLOCK = 1 << 20


def _xp() -> Any:
    import array_api_compat.torch as xp

    return xp


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """float32 for float16/bfloat16/float32 (the accumulation dtype), float64 for float64."""
    return torch.float64 if dtype == torch.float64 else torch.float32


def _result_dtype(logits: torch.Tensor) -> torch.dtype:
    """The loss's dtype: the logits' floating dtype, or the default float for integer logits."""
    return logits.dtype if logits.dtype.is_floating_point else torch.get_default_dtype()


def _row_blocks(z: torch.Tensor) -> int | None:
    """Rows per block for a blocked CPU loop over dim 0, or None for one whole-tensor kernel.

    On CPU, ``torch.logsumexp`` and ``exp(z - lse)`` over a large input allocate input-sized
    temporaries and page them in: blocks of rows that stay in cache run 2-3x faster (measured
    on (65536, 1000) float32). On GPUs, and while ``torch.compile`` traces (it fuses these ops
    itself and would unroll the loop), one kernel is right.
    """
    # is_compiling() first: a size test seen while tracing would become a recompile guard.
    if torch.compiler.is_compiling() or z.device.type != "cpu" or z.numel() <= CPU_BLOCK:
        return None
    return max(1, CPU_BLOCK // max(1, z.shape[1]))


def logsumexp(z: torch.Tensor) -> torch.Tensor:
    """log sum_c exp(z_c) along dim 1 of a 2-D tensor."""
    rows = _row_blocks(z)
    if rows is None:
        return torch.logsumexp(z, 1)
    out = z.new_empty(z.shape[:1])
    for zb, ob in zip(z.split(rows), out.split(rows), strict=True):
        torch.logsumexp(zb, 1, out=ob)
    return out


def softmax(z: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """exp(z - lse) in a new tensor: the softmax along dim 1 from its saved log-sum-exp."""
    rows = _row_blocks(z)
    if rows is None:
        return torch.exp(z - lse.unsqueeze(1))
    out = torch.empty_like(z)
    for zb, lb, ob in zip(z.split(rows), lse.split(rows), out.split(rows), strict=True):
        torch.sub(zb, lb.unsqueeze(1), out=ob).exp_()
    return out


def _limit(z: torch.Tensor, inf_rows: torch.Tensor) -> torch.Tensor:
    """z with its infinite rows at their limit; ``z`` itself (no full-size pass) when the flags
    can be read and none is set."""
    if is_concrete(inf_rows) and not bool(inf_rows.any()):
        return z
    return limit_rows(_xp(), z, inf_rows)


def finite_logsumexp(
    z: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z with infinite rows at their limit, its log-sum-exp, the raw log-sum-exp, the flags)."""
    lse_raw = logsumexp(z)
    inf_rows = torch.isinf(lse_raw)
    limited = _limit(z, inf_rows)
    lse = lse_raw if limited is z else logsumexp(limited)
    return limited, lse, lse_raw, inf_rows


def _capped(
    logits: torch.Tensor, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits in the compute dtype after the soft cap, and tanh(z / softcap) for the backward."""
    z = logits.to(compute_dtype(logits.dtype))
    if softcap is None:
        return z, None
    th = torch.tanh(z / softcap)
    return th * softcap, th


def _row_scale(grad: torch.Tensor, reduction: str, count: torch.Tensor) -> torch.Tensor:
    """d total / d l_i: the upstream gradient, times the mean's 1 / count for "mean"."""
    if reduction == "mean":
        return grad * mean_scale(_xp(), count.to(grad.dtype))
    return grad


# ----------------------------------------------------------------- softmax cross-entropy


class _IndexCE(torch.autograd.Function):
    """Cross-entropy of (N, C) logits against class indices."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        index: torch.Tensor,
        valid: torch.Tensor,
        w_t: torch.Tensor,
        weight: torch.Tensor | None,
        rule: SoftmaxCE,
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        z, _ = _capped(logits, rule.softcap)
        z, lse, lse_raw, inf_rows = finite_logsumexp(z)
        nll_t = lse - z.gather(1, index.unsqueeze(1)).squeeze(1)
        smooth_nll = None
        if rule.smoothing.per_class > 0:
            smooth_nll = class_sum(xp, weight, lse.unsqueeze(1) - z)
        loss = softmax_ce_loss(
            xp, rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=lse_raw, w_t=w_t, valid=valid
        )
        count = w_t.sum()
        ctx.save_for_backward(logits, index, valid, w_t, weight, lse, inf_rows, count)
        ctx.options = (rule, reduction)
        return reduce(xp, loss, reduction, count).to(_result_dtype(logits))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, index, valid, w_t, weight, lse, inf_rows, count = ctx.saved_tensors
        rule, reduction = ctx.options
        z, th = _capped(logits, rule.softcap)
        z = _limit(z, inf_rows)
        s = _row_scale(grad.to(z.dtype), reduction, count)
        w_sum = weight.sum() if weight is not None else float(z.shape[1])
        a, b, r = softmax_ce_coefficients(_xp(), rule, lse=lse, w_t=w_t, valid=valid, w_sum=w_sum)
        out = softmax(z, lse)
        out.mul_((s * a).unsqueeze(1))
        out.scatter_add_(1, index.unsqueeze(1), (-s * b).unsqueeze(1))
        if r is not None:
            sr = (s * r).unsqueeze(1)
            out.sub_(sr * weight.unsqueeze(0) if weight is not None else sr)
        if th is not None:
            out.mul_(1 - th * th)  # d softcap*tanh(x/softcap) / dx
        # Last, in place: ignored rows get exactly 0 whatever their logits hold (NaN, inf).
        out.masked_fill_(~valid.unsqueeze(1), 0)
        return out.to(logits.dtype), None, None, None, None, None, None


class _ProbabilityCE(torch.autograd.Function):
    """Cross-entropy of (N, C) logits against target probabilities (mean over rows)."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        rule: SoftmaxCE,
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        z, _ = _capped(logits, rule.softcap)
        z, lse, lse_raw, inf_rows = finite_logsumexp(z)
        q = probability_targets(xp, rule, target.to(z.dtype), _cast(weight, z.dtype))
        # q log p with 0 where q = 0, even where log p = -inf (a masked class)
        cross = mul0(xp, q, lse.unsqueeze(1) - z).sum(1)
        loss = probability_ce_loss(xp, rule, cross=cross, lse=lse_raw)
        # A fill, not torch.tensor(): no host-to-device copy (CUDA-graph capturable).
        count = torch.full((), float(lse.numel()), dtype=z.dtype, device=z.device)
        ctx.save_for_backward(logits, target, weight, lse, inf_rows, count)
        ctx.options = (rule, reduction)
        return reduce(xp, loss, reduction, count).to(_result_dtype(logits))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target, weight, lse, inf_rows, count = ctx.saved_tensors
        rule, reduction = ctx.options
        xp = _xp()
        z, th = _capped(logits, rule.softcap)
        z = _limit(z, inf_rows)
        s = _row_scale(grad.to(z.dtype), reduction, count)
        s = s.unsqueeze(1) if s.ndim else s
        w = _cast(weight, z.dtype)
        q = probability_targets(xp, rule, target.to(z.dtype), w)
        grad_target = None
        if ctx.needs_input_grad[1]:
            # d l / d y_c = -alpha w_c log p_c, alpha the smoothing's coefficient of y
            log_p = z - lse.unsqueeze(1)
            if w is not None:
                log_p = log_p * w.unsqueeze(0)
            grad_target = (-rule.smoothing.on_target * s * log_p).to(target.dtype)
        a = probability_ce_coefficient(xp, rule, q_sum=q.sum(1), lse=lse)
        out = softmax(z, lse)
        out.mul_(a.unsqueeze(1)).sub_(q).mul_(s)
        if th is not None:
            out.mul_(1 - th * th)
        return out.to(logits.dtype), grad_target, None, None, None


def _cast(weight: torch.Tensor | None, dtype: torch.dtype) -> torch.Tensor | None:
    return None if weight is None else weight.to(dtype)


def _rows(x: torch.Tensor, num_classes: int) -> torch.Tensor:
    """A classes-last tensor as (rows, classes)."""
    return x.reshape(-1, num_classes)


def softmax_cross_entropy(problem: ClassProblem, rule: SoftmaxCE, reduction: str) -> torch.Tensor:
    """The torch path of :func:`crossent.softmax_cross_entropy` (inputs validated)."""
    k = problem.num_classes
    batch = tuple(problem.raw.shape[:-1])
    logits = _rows(problem.raw, k)
    tg = problem.targets
    if isinstance(tg, IndexTargets):
        out = _IndexCE.apply(
            logits, tg.index.reshape(-1), tg.valid.reshape(-1), tg.w_t.reshape(-1),
            problem.class_weight, rule, reduction,
        )  # fmt: skip
    else:
        out = _ProbabilityCE.apply(logits, _rows(tg, k), problem.class_weight, rule, reduction)
    return out.reshape(batch) if reduction == "none" else out


# ----------------------------------------------------------------- binary cross-entropy


class _BCEWithLogits(torch.autograd.Function):
    """Element-wise BCE with logits: the core's rule, blocked on CPU, guarded at +-inf."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        pos_weight: torch.Tensor | None,
        smoothing: tuple[float, str],
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        dtype = compute_dtype(logits.dtype)
        z, arrays = logits.to(dtype), _binary_operands(target, weight, pos_weight, dtype)
        # Off the CPU (or while tracing) nothing is read: the guarded, branch-free rule runs.
        rule = partial(elementwise_loss, xp, label_smoothing=smoothing[0],
                       convention=smoothing[1], guard_infinite=not all_finite(xp, z))  # fmt: skip
        ctx.save_for_backward(logits, target, weight, pos_weight)
        ctx.options = (smoothing, reduction)
        if reduction == "none":
            return elementwise(xp, rule, z, *arrays).to(_result_dtype(logits))
        total = elementwise(xp, rule, z, *arrays, total=True)
        if reduction == "mean":
            total = total / max(z.numel(), 1)  # the mean of nothing is 0, not 0/0
        return total.to(_result_dtype(logits))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target, weight, pos_weight = ctx.saved_tensors
        (e, convention), reduction = ctx.options
        xp = _xp()
        dtype = compute_dtype(logits.dtype)
        z, arrays = logits.to(dtype), _binary_operands(target, weight, pos_weight, dtype)
        s = grad.to(dtype)
        if reduction == "mean":
            s = s / max(z.numel(), 1)
        rule = partial(_bce_grad, xp, label_smoothing=e, convention=convention)
        grad_z = elementwise(xp, rule, z, *arrays)
        grad_z = grad_z.mul_(s)
        grad_y = None
        if ctx.needs_input_grad[1]:
            # d l / d y = w (pi softplus(-z) - softplus(z)), times the smoothing's coefficient of y
            _, w, pw = arrays
            sp_neg = softplus(xp, -z)
            dy = (sp_neg if pw is None else pw * sp_neg) - softplus(xp, z)
            dy = dy if w is None else w * dy
            on_target = smoothing_of(e, 2, convention).on_target
            grad_y = (on_target * s * dy).to(target.dtype)
        return grad_z.to(logits.dtype), grad_y, None, None, None, None


def _bce_grad(
    xp: Any, z: torch.Tensor, y: torch.Tensor, weight: torch.Tensor | None,
    pos_weight: torch.Tensor | None, *, label_smoothing: float, convention: str,
) -> torch.Tensor:  # fmt: skip
    """d loss / d z element-wise (a block of it on CPU): the core's rule
    (:func:`crossent._semantics.binary_ce_grad`), spelled in torch's fused kernels where exact.

    ``(H(z) - y) - sign(z) sigmoid(-|z|)`` with ``torch.sigmoid`` and in-place operations: the
    core's spelling (exp, a division and a dozen separate kernels per block) took 1.1-1.3x
    PyTorch's forward + backward at 65536 x 1000, this one 1.0x. ``torch.sigmoid(-|z|)`` is
    exact to rounding except beyond |z| = log(finfo.max) (88.7 in float32), where exp(|z|)
    overflows and it flushes the (subnormal) value to 0: the block's largest |z| decides.
    """
    if pos_weight is None and is_concrete(z) and z.numel():
        magnitude = z.abs()
        if float(magnitude.max()) < math.log(torch.finfo(z.dtype).max):
            tail = magnitude.neg_().sigmoid_()  # sigmoid(-|z|)
            sign = torch.sign(z)
            target = binary_targets(xp, y, label_smoothing, convention)
            grad = sign.mul(0.5).add_(0.5).sub_(target).addcmul_(sign, tail, value=-1)
            return grad if weight is None else grad.mul_(weight)
    return elementwise_grad(xp, z, y, weight, pos_weight, label_smoothing=label_smoothing,
                            convention=convention, scale=1.0)  # fmt: skip


def _binary_operands(
    target: torch.Tensor, weight: torch.Tensor | None, pos_weight: torch.Tensor | None,
    dtype: torch.dtype,
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:  # fmt: skip
    return target.to(dtype), _cast(weight, dtype), _cast(pos_weight, dtype)


def binary_cross_entropy_with_logits(
    problem: BinaryProblem, label_smoothing: float, convention: str, reduction: str
) -> torch.Tensor:
    """The torch path of :func:`crossent.sigmoid_binary_cross_entropy` (inputs validated)."""
    target = problem.raw_targets
    if not target.dtype.is_floating_point:
        target = target.to(problem.z.dtype)
    return _BCEWithLogits.apply(
        problem.raw, target, problem.weight, problem.pos_weight, (label_smoothing, convention),
        reduction,
    )  # fmt: skip


class _SigmoidFocal(torch.autograd.Function):
    """Element-wise sigmoid focal loss: the core's rules, blocked on CPU, closed-form backward."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        alpha: float | None,
        gamma: float,
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        dtype = compute_dtype(logits.dtype)
        z, y = logits.to(dtype), target.to(dtype)
        rule = partial(sigmoid_focal_rule, xp, alpha=alpha, gamma=gamma,
                       guard=not all_finite(xp, z))  # fmt: skip
        ctx.save_for_backward(logits, target)
        ctx.options = (alpha, gamma, reduction)
        if reduction == "none":
            return elementwise(xp, rule, z, y).to(_result_dtype(logits))
        total = elementwise(xp, rule, z, y, total=True)
        if reduction == "mean":
            total = total / max(z.numel(), 1)
        return total.to(_result_dtype(logits))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target = ctx.saved_tensors
        alpha, gamma, reduction = ctx.options
        xp = _xp()
        dtype = compute_dtype(logits.dtype)
        s = grad.to(dtype)
        if reduction == "mean":
            s = s / max(logits.numel(), 1)
        rule = partial(sigmoid_focal_grad_rule, xp, alpha=alpha, gamma=gamma, scale=1.0)
        grad_z = elementwise(xp, rule, logits.to(dtype), target.to(dtype)).mul_(s)
        return grad_z.to(logits.dtype), None, None, None, None


def sigmoid_focal_loss(
    problem: BinaryProblem, alpha: float | None, gamma: float, reduction: str
) -> torch.Tensor:
    """The torch path of :func:`crossent.sigmoid_focal_loss` (targets without gradient)."""
    target = problem.raw_targets
    if not target.dtype.is_floating_point:
        target = target.to(problem.z.dtype)
    return _SigmoidFocal.apply(problem.raw, target, alpha, gamma, reduction)


class _BinaryFromProbs(torch.autograd.Function):
    """Binary cross-entropy of probabilities: the core's clipped rule, blocked on CPU."""

    @staticmethod
    def forward(
        ctx: Any,
        probs: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        clip: float,
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        dtype = compute_dtype(probs.dtype)
        p, y, w = probs.to(dtype), target.to(dtype), _cast(weight, dtype)
        rule = partial(binary_loss_rule, xp, clip=clip)
        ctx.save_for_backward(probs, target, weight)
        ctx.options = (clip, reduction)
        if reduction == "none":
            return elementwise(xp, rule, p, y, w).to(_result_dtype(probs))
        total = elementwise(xp, rule, p, y, w, total=True)
        if reduction == "mean":
            total = total / max(p.numel(), 1)
        return total.to(_result_dtype(probs))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        probs, target, weight = ctx.saved_tensors
        clip, reduction = ctx.options
        xp = _xp()
        dtype = compute_dtype(probs.dtype)
        s = grad.to(dtype)
        if reduction == "mean":
            s = s / max(probs.numel(), 1)
        rule = partial(binary_grad_rule, xp, clip=clip, scale=1.0)
        g = elementwise(xp, rule, probs.to(dtype), target.to(dtype), _cast(weight, dtype))
        return g.mul_(s).to(probs.dtype), None, None, None, None


def binary_cross_entropy(problem: BinaryProblem, clip: float, reduction: str) -> torch.Tensor:
    """The torch path of :func:`crossent.binary_cross_entropy` (targets without gradient)."""
    target = problem.raw_targets
    if not target.dtype.is_floating_point:
        target = target.to(problem.z.dtype)
    return _BinaryFromProbs.apply(problem.raw, target, problem.weight, clip, reduction)


# ----------------------------------------------------------------- focal loss


def _focal_parts(
    logits: torch.Tensor, index: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compute-dtype logits with the target masked to -inf, LSE of the others, the margin d."""
    z = logits.to(compute_dtype(logits.dtype))
    z = _limit(z, torch.isinf(z.amax(1)))  # rows holding +inf, or all -inf: their limit
    is_target = torch.arange(z.shape[1], device=z.device).unsqueeze(0) == index.unsqueeze(1)
    z_t = z.gather(1, index.unsqueeze(1)).squeeze(1)
    others = z.masked_fill(is_target, -math.inf)
    lse_others = logsumexp(others)
    return others, lse_others, lse_others - z_t


def _blocked_margin(z: torch.Tensor, index: torch.Tensor) -> torch.Tensor | None:
    """d of every row in one blocked CPU pass, or None where the masked path must run.

    exp(z - max) once per block, the target's term set to 0 before the sum, so the rivals' sum
    never comes from ``total - target`` (no cancellation as p_t -> 1). None off the CPU, under
    tracing, or when a row is not finite or its rivals' terms may be subnormal.
    """
    rows = _row_blocks(z)
    if rows is None:
        return None
    d = z.new_empty(z.shape[0])
    smallest = math.inf
    for zb, tb, db in zip(z.split(rows), index.split(rows), d.split(rows), strict=True):
        m = zb.amax(1, keepdim=True)
        e = torch.sub(zb, m).exp_()
        e.scatter_(1, tb.unsqueeze(1), 0.0)
        rivals = e.sum(1)
        smallest = min(smallest, float(rivals.min()))
        torch.add(rivals.log(), m.squeeze(1) - zb.gather(1, tb.unsqueeze(1)).squeeze(1), out=db)
    tiny = torch.finfo(z.dtype).tiny * 2.0**30
    return d if smallest > tiny and bool(torch.isfinite(d).all()) else None


def _blocked_focal_gradient(
    z: torch.Tensor, index: torch.Tensor, coef: torch.Tensor
) -> torch.Tensor:
    """``coef * (softmax of the rivals - onehot(t))`` per row, in one blocked CPU pass."""
    out = torch.empty_like(z)
    rows = _row_blocks(z) or z.shape[0]
    for zb, tb, cb, ob in zip(
        z.split(rows), index.split(rows), coef.split(rows), out.split(rows), strict=True
    ):
        torch.sub(zb, zb.amax(1, keepdim=True), out=ob).exp_()
        ob.scatter_(1, tb.unsqueeze(1), 0.0)
        ob.mul_((cb / ob.sum(1)).unsqueeze(1))
        ob.scatter_(1, tb.unsqueeze(1), (-cb).unsqueeze(1))
    return out


class _Focal(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        index: torch.Tensor,
        valid: torch.Tensor,
        alpha_t: torch.Tensor,
        gamma: float,
        reduction: str,
    ) -> torch.Tensor:
        xp = _xp()
        z = logits.to(compute_dtype(logits.dtype))
        d = _blocked_margin(z, index)
        blocked = d is not None
        if d is None:
            _, _, d = _focal_parts(logits, index)
        loss = mul0(xp, alpha_t.to(d.dtype), focal_loss(xp, d, gamma))  # alpha 0 silences inf
        loss = torch.where(valid, loss, 0)
        count = valid.sum().to(d.dtype)
        ctx.save_for_backward(logits, index, valid, alpha_t, count, d)
        ctx.options = (gamma, reduction, blocked)
        return reduce(xp, loss, reduction, count).to(_result_dtype(logits))

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, index, valid, alpha_t, count, d = ctx.saved_tensors
        gamma, reduction, blocked = ctx.options
        xp = _xp()
        s = _row_scale(grad.to(d.dtype), reduction, count)
        coef = torch.where(valid, s * mul0(xp, alpha_t.to(d.dtype), focal_slope(xp, d, gamma)), 0)
        if blocked:  # every row finite (checked in forward): ignored rows have coef 0
            out = _blocked_focal_gradient(logits.to(d.dtype), index, coef)
            return out.to(logits.dtype), None, None, None, None, None
        others, lse_others, _ = _focal_parts(logits, index)
        # d d / d z_c = softmax of the other classes (0 at the target); d d / d z_t = -1
        out = softmax(others, torch.where(torch.isfinite(lse_others), lse_others, 0))
        out.scatter_(1, index.unsqueeze(1), -1.0)
        out.mul_(coef.unsqueeze(1))
        out.masked_fill_(~valid.unsqueeze(1), 0)  # ignored rows: 0, even where they hold NaN
        return out.to(logits.dtype), None, None, None, None, None


def softmax_focal_loss(
    problem: ClassProblem, alpha_t: torch.Tensor, gamma: float, reduction: str
) -> torch.Tensor:
    """The torch path of :func:`crossent.softmax_focal_loss` (inputs validated)."""
    tg = problem.targets
    assert isinstance(tg, IndexTargets)
    batch = tuple(problem.raw.shape[:-1])
    out = _Focal.apply(
        _rows(problem.raw, problem.num_classes), tg.index.reshape(-1), tg.valid.reshape(-1),
        alpha_t.reshape(-1), gamma, reduction,
    )  # fmt: skip
    return out.reshape(batch) if reduction == "none" else out
