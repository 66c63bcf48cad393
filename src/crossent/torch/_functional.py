"""Softmax cross-entropy, BCE with logits and focal loss as autograd Functions.

Each forward saves only what its closed-form backward needs (the input and a log-sum-exp per
sample, never the softmax or log-softmax), and the backward writes the gradient in one buffer:
a training step holds less than ``torch.nn.CrossEntropyLoss``, which keeps the log-softmax
from forward and allocates two logits-sized tensors in backward. The class axis is dim 1, as
in ``torch.nn`` (inputs (N, C, d1, ..., dk), or (C,) without a batch).

No function here synchronizes with the device or branches on tensor values, so all of them
trace under ``torch.compile(fullgraph=True)``.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from ._validate import (
    check_class_vector,
    check_float,
    check_fraction,
    check_nonnegative,
    check_nonnegative_values,
    check_reduction,
    check_softcap,
    check_targets_in_range,
    compute_dtype,
    may_read_values,
)

__all__ = ["binary_cross_entropy_with_logits", "cross_entropy", "focal_loss"]


def _softplus(x: torch.Tensor) -> torch.Tensor:
    # max(x, 0) + log1p(exp(-|x|)): no overflow, exact at +-inf (F.softplus cuts off at 20).
    return x.clamp_min(0) + torch.log1p(torch.exp(-x.abs()))


def _mul0(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """a * b with 0 * inf = 0: a zero weight removes its term even where the term is infinite."""
    return torch.where(a == 0, 0, a * b)


def _class_view(vector: torch.Tensor, ndim: int) -> torch.Tensor:
    """A per-class vector shaped to broadcast along dim 1 of an ndim-dimensional input."""
    return vector.view((1, -1) + (1,) * (ndim - 2))


def _safe_mean(total: torch.Tensor, count: torch.Tensor) -> torch.Tensor:
    # 0 (with a zero gradient) when nothing counts, not PyTorch's 0/0 = NaN (pytorch #70348).
    positive = count > 0
    return torch.where(positive, total / torch.where(positive, count, 1), 0)


def _row_scale(
    grad: torch.Tensor, reduction: str, count: torch.Tensor, dtype: torch.dtype
) -> torch.Tensor:
    """d loss / d l_i: the upstream gradient, divided by the mean's denominator for "mean"."""
    grad = grad.to(dtype)
    if reduction == "mean":
        return _safe_mean(grad, count.to(dtype))
    return grad


def _reduce(loss: torch.Tensor, reduction: str, count: torch.Tensor) -> torch.Tensor:
    if reduction == "none":
        return loss
    total = loss.sum()
    return total if reduction == "sum" else _safe_mean(total, count.to(total.dtype))


def _capped(
    logits: torch.Tensor, softcap: float | None
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Logits in the compute dtype after the soft cap, and tanh(z / softcap) for the backward."""
    z = logits.to(compute_dtype(logits.dtype))
    if softcap is None:
        return z, None
    th = torch.tanh(z / softcap)
    return th * softcap, th


#: Elements per row block of the CPU loops below (4 MiB of float32).
_CPU_BLOCK = 1 << 20


def _row_blocks(z: torch.Tensor) -> int | None:
    """Rows per block for a blocked CPU loop over dim 0, or None for one whole-tensor kernel.

    On CPU, ``torch.logsumexp`` and ``exp(z - lse)`` over a large input allocate input-sized
    temporaries and page them in: blocks of rows that stay in cache run 2-3x faster (measured
    on (65536, 1000) float32). On GPUs, and while ``torch.compile`` traces (it fuses these ops
    itself and would unroll the loop), one kernel is right.
    """
    # is_compiling() first: a size test seen while tracing would become a recompile guard.
    if torch.compiler.is_compiling() or z.device.type != "cpu" or z.numel() <= _CPU_BLOCK:
        return None
    return max(1, _CPU_BLOCK // max(1, z[0].numel()))


def _logsumexp(z: torch.Tensor) -> torch.Tensor:
    """log sum_c exp(z_c) along dim 1."""
    rows = _row_blocks(z)
    if rows is None:
        return torch.logsumexp(z, 1)
    out = z.new_empty(z.shape[:1] + z.shape[2:])
    for zb, ob in zip(z.split(rows), out.split(rows), strict=True):
        torch.logsumexp(zb, 1, out=ob)
    return out


def _limit_rows(z: torch.Tensor, inf_rows: torch.Tensor) -> torch.Tensor:
    """z with each row whose log-sum-exp is infinite replaced by its limit (the core's too).

    A row holding +inf puts all its mass on its +inf entries, and a row of -inf is uniform: such
    a row becomes 0 on its maxima and -inf elsewhere, whose softmax is that limit and whose
    log-sum-exp is finite, so no inf - inf turns into NaN. Returns ``z`` itself (no full-size
    pass) when the flags can be read and none is set.
    """
    if may_read_values(inf_rows) and not bool(inf_rows.any()):
        return z
    limit = torch.full_like(z, -math.inf).masked_fill_(z == z.amax(1, keepdim=True), 0)
    return torch.where(inf_rows.unsqueeze(1), limit, z)


def _finite_logsumexp(
    z: torch.Tensor,
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """(z with infinite rows at their limit, its log-sum-exp, the raw log-sum-exp, the flags)."""
    lse_raw = _logsumexp(z)
    inf_rows = torch.isinf(lse_raw)
    limited = _limit_rows(z, inf_rows)
    lse = lse_raw if limited is z else _logsumexp(limited)
    return limited, lse, lse_raw, inf_rows


def _softmax(z: torch.Tensor, lse: torch.Tensor) -> torch.Tensor:
    """exp(z - lse) in a new tensor: the softmax along dim 1 from its saved log-sum-exp."""
    rows = _row_blocks(z)
    if rows is None:
        return torch.exp(z - lse.unsqueeze(1))
    out = torch.empty_like(z)
    for zb, lb, ob in zip(z.split(rows), lse.split(rows), out.split(rows), strict=True):
        torch.sub(zb, lb.unsqueeze(1), out=ob).exp_()
    return out


# ----------------------------------------------------------------- softmax cross-entropy


class _IndexCE(torch.autograd.Function):
    """Cross-entropy against class indices (weights, ignore_index, smoothing, z-loss, softcap)."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        ignore_index: int,
        smoothing: float,
        z_loss: float,
        softcap: float | None,
        reduction: str,
    ) -> torch.Tensor:
        z, _ = _capped(logits, softcap)
        num_classes = z.shape[1]
        z, lse, lse_raw, inf_rows = _finite_logsumexp(z)
        valid = target != ignore_index
        t = torch.where(valid, target, 0)
        w = None if weight is None else weight.to(z.dtype)
        w_t = torch.where(valid, w[t], 0) if w is not None else valid.to(z.dtype)
        z_t = z.gather(1, t.unsqueeze(1)).squeeze(1)
        loss = (1 - smoothing) * _mul0(w_t, lse - z_t)
        if smoothing > 0:
            # sum_c w_c (-log p_c), PyTorch's smoothing term (class weights included).
            log_p = z - lse.unsqueeze(1)
            if w is not None:
                log_p = _mul0(_class_view(w, z.ndim), log_p)
            loss = loss - (smoothing / num_classes) * log_p.sum(1)
        if z_loss > 0:
            # +inf for a row with an infinite LSE, unless its weight is 0
            loss = loss + z_loss * _mul0(w_t, lse_raw * lse_raw)
        # Ignored samples contribute exactly 0, whatever their logits hold.
        loss = torch.where(valid, loss, 0)
        count = w_t.sum()
        ctx.save_for_backward(logits, t, valid, w_t, w, lse, inf_rows, count)
        ctx.options = (smoothing, z_loss, softcap, reduction)
        return _reduce(loss, reduction, count).to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, t, valid, w_t, w, lse, inf_rows, count = ctx.saved_tensors
        smoothing, z_loss, softcap, reduction = ctx.options
        z, th = _capped(logits, softcap)
        z = _limit_rows(z, inf_rows)
        num_classes = z.shape[1]
        s = _row_scale(grad, reduction, count, z.dtype)
        w_sum = w.sum() if w is not None else float(num_classes)
        # d l / d z = a p - (1-e) w_t onehot - (e/K) w,
        # a = (1-e) w_t + (e/K) sum(w) + 2 zeta w_t lse
        a = (1 - smoothing) * w_t + 2 * z_loss * w_t * lse
        # valid as z's dtype: a bool times a Python float would round in the default dtype
        valid_f = valid.to(z.dtype)
        if smoothing > 0:
            a = a + (smoothing / num_classes) * w_sum * valid_f
        out = _softmax(z, lse)
        out.mul_((s * a).unsqueeze(1))
        out.scatter_add_(1, t.unsqueeze(1), (-(1 - smoothing) * s * w_t).unsqueeze(1))
        if smoothing > 0:
            r = ((smoothing / num_classes) * s * valid_f).unsqueeze(1)
            out.sub_(r * _class_view(w, z.ndim) if w is not None else r)
        if th is not None:
            out.mul_(1 - th * th)  # d softcap*tanh(x/softcap) / dx
        # Last, in place: ignored rows get exactly 0 whatever their logits hold (NaN, inf).
        out.masked_fill_(~valid.unsqueeze(1), 0)
        return out.to(logits.dtype), None, None, None, None, None, None, None


class _ProbabilityCE(torch.autograd.Function):
    """Cross-entropy against target probabilities of the input's shape (mean over samples)."""

    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        smoothing: float,
        z_loss: float,
        softcap: float | None,
        reduction: str,
    ) -> torch.Tensor:
        z, _ = _capped(logits, softcap)
        z, lse, lse_raw, inf_rows = _finite_logsumexp(z)
        q = _probability_weights(target, weight, smoothing, z.dtype)
        # q log p with 0 where q = 0, even where log p = -inf (a masked class)
        loss = -torch.where(q == 0, 0, q * (z - lse.unsqueeze(1))).sum(1)
        if z_loss > 0:
            loss = loss + z_loss * lse_raw * lse_raw
        # A fill, not torch.tensor(): no host-to-device copy (CUDA-graph capturable).
        count = torch.full((), float(lse.numel()), dtype=z.dtype, device=z.device)
        ctx.save_for_backward(logits, target, weight, lse, inf_rows, count)
        ctx.options = (smoothing, z_loss, softcap, reduction)
        return _reduce(loss, reduction, count).to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target, weight, lse, inf_rows, count = ctx.saved_tensors
        smoothing, z_loss, softcap, reduction = ctx.options
        z, th = _capped(logits, softcap)
        z = _limit_rows(z, inf_rows)
        s = _row_scale(grad, reduction, count, z.dtype)
        s = s.unsqueeze(1) if s.ndim else s
        q = _probability_weights(target, weight, smoothing, z.dtype)
        grad_target = None
        if ctx.needs_input_grad[1]:
            # d l / d y_c = -(1-e) w_c log p_c
            log_p = z - lse.unsqueeze(1)
            if weight is not None:
                log_p = log_p * _class_view(weight.to(z.dtype), z.ndim)
            grad_target = (-(1 - smoothing) * s * log_p).to(target.dtype)
        a = q.sum(1, keepdim=True) + 2 * z_loss * lse.unsqueeze(1)
        out = _softmax(z, lse)
        out.mul_(a).sub_(q).mul_(s)
        if th is not None:
            out.mul_(1 - th * th)
        return out.to(logits.dtype), grad_target, None, None, None, None, None


def _probability_weights(
    target: torch.Tensor, weight: torch.Tensor | None, smoothing: float, dtype: torch.dtype
) -> torch.Tensor:
    """q = w * ((1-e) y + e/K): the loss is -sum_c q_c log p_c."""
    q = target.to(dtype)
    if smoothing > 0:
        q = (1 - smoothing) * q + smoothing / q.shape[1]
    if weight is not None:
        q = q * _class_view(weight.to(dtype), q.ndim)
    return q


def _index_shape(input: torch.Tensor) -> tuple[int, ...]:
    """The shape of class-index targets for ``input``: its shape without dim 1."""
    return tuple(input.shape[:1] + input.shape[2:]) if input.ndim > 1 else ()


def _batched(input: torch.Tensor, target: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, bool]:
    """(N, C, ...) views of an unbatched (C,) input and its target."""
    if input.ndim == 1:
        return input.unsqueeze(0), target.unsqueeze(0), True
    return input, target, False


def cross_entropy(
    input: torch.Tensor,
    target: torch.Tensor,
    /,
    *,
    weight: torch.Tensor | None = None,
    ignore_index: int = -100,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
) -> torch.Tensor:
    r"""Softmax cross-entropy with ``torch.nn.functional.cross_entropy``'s semantics, and more.

    For class-index targets, with class weights :math:`w`, smoothing :math:`e`, :math:`K`
    classes and z-loss coefficient :math:`\zeta`:

    .. math::

        \ell_i = (1-e)\, w_{y_i} (-\log p_{i y_i}) + \frac{e}{K} \sum_c w_c (-\log p_{ic})
                 + \zeta\, w_{y_i} \operatorname{LSE}(z_i)^2,
        \qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over non-ignored samples; 0 (with a zero gradient) when every target is ignored, where
    PyTorch gives NaN. Probability targets give :math:`-\sum_c w_c ((1-e) y_c + e/K) \log p_c
    + \zeta \operatorname{LSE}^2` and a mean over samples. With ``softcap`` the logits first
    become :math:`s \tanh(z / s)` (Gemma 2). The backward is the closed form :math:`a p - q`
    from the saved log-sum-exp; float16/bfloat16 inputs are computed in float32.

    Parameters
    ----------
    input : torch.Tensor
        Logits of shape (N, C, d1, ..., dk), or (C,) for one sample. Classes along dim 1.
    target : torch.Tensor
        Integer class indices of shape (N, d1, ..., dk), or probabilities of ``input``'s shape.
    weight : torch.Tensor, optional
        A weight per class, shape (C,).
    ignore_index : int, default -100
        Index targets equal to it contribute nothing, not even to the mean's denominator.
    reduction : {"mean", "sum", "none"}
        As in PyTorch.
    label_smoothing : float, default 0
        Mix ``e`` of the uniform distribution into the targets (the e/K convention).
    z_loss : float, default 0
        Coefficient of :math:`\operatorname{LSE}(z)^2` (PaLM's z-loss), weighted like the NLL.
        A row whose LSE is infinite then has loss +inf; its gradient is that of the row's limit
        (finite), since an infinite loss has no gradient to match.
    softcap : float, optional
        Soft cap of the logits, :math:`s \tanh(z/s)`, applied before the loss.

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import cross_entropy
    >>> logits = torch.tensor([[2.0, 1.0, 0.1], [0.5, 2.5, 0.3]])
    >>> print(round(float(cross_entropy(logits, torch.tensor([0, 1]))), 4))
    0.3185
    >>> print(float(cross_entropy(logits, torch.tensor([-100, -100]))))
    0.0
    """
    check_float(input, "input")
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    zeta = check_nonnegative(z_loss, "z_loss")
    cap = check_softcap(softcap)
    if input.ndim == 0:
        raise ValueError("input must have a class dimension: shape (C,) or (N, C, d1, ..., dk)")
    num_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    check_class_vector(weight, num_classes, "weight", input)
    x, y, unbatched = _batched(input, target)
    if isinstance(target, torch.Tensor) and target.dtype.is_floating_point:
        if target.shape != input.shape:
            if tuple(target.shape) == _index_shape(input):
                raise TypeError(
                    f"class-index targets must be integers, got {target.dtype}; probability "
                    f"targets need the input's shape {tuple(input.shape)}"
                )
            raise ValueError(
                f"probability targets must have the input's shape {tuple(input.shape)}; "
                f"got {tuple(target.shape)}"
            )
        out = _ProbabilityCE.apply(x, y, weight, e, zeta, cap, reduction)
    else:
        if (
            not isinstance(target, torch.Tensor)
            or target.dtype == torch.bool
            or target.dtype.is_complex
        ):
            raise TypeError(
                "target must be an integer tensor of class indices or a floating tensor of "
                f"probabilities, got {getattr(target, 'dtype', type(target).__name__)}"
            )
        if tuple(target.shape) != _index_shape(input):
            raise ValueError(
                f"class-index targets must have shape {_index_shape(input)} (the input's shape "
                f"{tuple(input.shape)} without dim 1); got {tuple(target.shape)}"
            )
        check_targets_in_range(target, num_classes, ignore_index)
        y = y.long()
        out = _IndexCE.apply(x, y, weight, ignore_index, e, zeta, cap, reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out


# ----------------------------------------------------------------- binary cross-entropy


def _times0(coef: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    # coef * value with 0 * inf = 0: a zero coefficient removes its term (finite at +-inf).
    return torch.where(coef == 0, 0, coef * value)


class _BCEWithLogits(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        weight: torch.Tensor | None,
        pos_weight: torch.Tensor | None,
        smoothing: float,
        reduction: str,
    ) -> torch.Tensor:
        dtype = compute_dtype(logits.dtype)
        z = logits.to(dtype)
        y = target.to(dtype)
        if smoothing > 0:
            y = (1 - smoothing) * y + smoothing / 2
        positive = y if pos_weight is None else pos_weight.to(dtype) * y
        # -log sigmoid(z) = softplus(-z), -log(1 - sigmoid(z)) = softplus(z)
        loss = _times0(positive, _softplus(-z)) + _times0(1 - y, _softplus(z))
        if weight is not None:
            loss = _times0(weight.to(dtype).expand_as(loss), loss)
        ctx.save_for_backward(logits, target, weight, pos_weight)
        ctx.options = (smoothing, reduction)
        count = torch.full((), float(loss.numel()), dtype=dtype, device=loss.device)
        return _reduce(loss, reduction, count).to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, target, weight, pos_weight = ctx.saved_tensors
        smoothing, reduction = ctx.options
        dtype = compute_dtype(logits.dtype)
        z = logits.to(dtype)
        y = target.to(dtype)
        if smoothing > 0:
            y = (1 - smoothing) * y + smoothing / 2
        pw = None if pos_weight is None else pos_weight.to(dtype)
        s = grad.to(dtype)
        if reduction == "mean":
            s = s / max(z.numel(), 1)
        if weight is not None:
            s = s * weight.to(dtype)
        positive = y if pw is None else pw * y
        # d/dz [pi y softplus(-z) + (1-y) softplus(z)] = (1-y) sigmoid(z) - pi y sigmoid(-z)
        grad_z = s * ((1 - y) * torch.sigmoid(z) - positive * torch.sigmoid(-z))
        grad_y = None
        if ctx.needs_input_grad[1]:
            dy = (_softplus(-z) if pw is None else pw * _softplus(-z)) - _softplus(z)
            grad_y = ((1 - smoothing) * s * dy).to(target.dtype)
        return grad_z.to(logits.dtype), grad_y, None, None, None, None


def binary_cross_entropy_with_logits(
    input: torch.Tensor,
    target: torch.Tensor,
    /,
    *,
    weight: torch.Tensor | None = None,
    pos_weight: torch.Tensor | None = None,
    reduction: str = "mean",
    label_smoothing: float = 0.0,
) -> torch.Tensor:
    r"""Binary cross-entropy of ``sigmoid(input)``, finite at :math:`\pm\infty` logits.

    .. math::

        \ell = w \bigl[\pi\, y \operatorname{softplus}(-z) + (1-y) \operatorname{softplus}(z)\bigr]

    with :math:`\pi` the ``pos_weight`` (broadcast along the last dimension). Equals
    ``torch.nn.functional.binary_cross_entropy_with_logits`` wherever that is finite; at
    :math:`z = \pm\infty` it gives the limit (0 or +inf) and a finite gradient where PyTorch
    gives NaN (pytorch #49844).

    Parameters
    ----------
    input : torch.Tensor
        Logits, any shape.
    target : torch.Tensor
        Targets in [0, 1] of ``input``'s shape.
    weight : torch.Tensor, optional
        Weights broadcastable to ``input``.
    pos_weight : torch.Tensor, optional
        Weight of the positive term, one per class along the last dimension.
    reduction : {"mean", "sum", "none"}
        "mean" averages over every element.
    label_smoothing : float, default 0
        Targets become :math:`(1-e) y + e/2`.

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import binary_cross_entropy_with_logits
    >>> z = torch.tensor([float("inf"), float("-inf"), 0.0], requires_grad=True)
    >>> loss = binary_cross_entropy_with_logits(z, torch.tensor([1.0, 0.0, 1.0]), reduction="sum")
    >>> loss.backward()
    >>> print(round(loss.item(), 4), z.grad.tolist())
    0.6931 [0.0, 0.0, -0.5]
    """
    check_float(input, "input")
    check_reduction(reduction)
    e = check_fraction(label_smoothing, "label_smoothing")
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.shape != input.shape:
        raise ValueError(
            f"target must have the input's shape {tuple(input.shape)}; got {tuple(target.shape)}"
        )
    if not target.dtype.is_floating_point:
        target = target.to(input.dtype)
    check_nonnegative_values(weight, "weight")
    check_nonnegative_values(pos_weight, "pos_weight")
    return _BCEWithLogits.apply(input, target, weight, pos_weight, e, reduction)


# ----------------------------------------------------------------- focal loss


def _focal_parts(
    logits: torch.Tensor, t: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Compute-dtype logits with the true class masked to -inf, LSE of the others, the margin d.

    d = LSE_{c != t} z_c - z_t, so 1 - p_t = sigmoid(d) and -log p_t = softplus(d): no
    1 - p_t cancellation, even where p_t rounds to 1.
    """
    z = logits.to(compute_dtype(logits.dtype))
    z = _limit_rows(z, torch.isinf(z.amax(1)))  # rows holding +inf, or all -inf: their limit
    classes = torch.arange(z.shape[1], device=z.device).view((1, -1) + (1,) * (z.ndim - 2))
    is_target = classes == t.unsqueeze(1)
    z_t = z.gather(1, t.unsqueeze(1)).squeeze(1)
    others = z.masked_fill(is_target, float("-inf"))
    lse_others = _logsumexp(others)
    return others, lse_others, lse_others - z_t


class _Focal(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        logits: torch.Tensor,
        target: torch.Tensor,
        alpha: torch.Tensor | None,
        alpha_scalar: float,
        gamma: float,
        ignore_index: int,
        reduction: str,
    ) -> torch.Tensor:
        valid = target != ignore_index
        t = torch.where(valid, target, 0)
        _, _, d = _focal_parts(logits, t)
        if alpha is not None:
            a_t = torch.where(valid, alpha.to(d.dtype)[t], 0)
        else:
            a_t = alpha_scalar * valid.to(d.dtype)
        focal = _softplus(d)
        if gamma > 0:
            # sigmoid(d)^gamma in log space: finite at saturated logits for every gamma.
            focal = torch.exp(gamma * -_softplus(-d)) * focal
        loss = torch.where(valid, _mul0(a_t, focal), 0)  # alpha 0 silences even an inf term
        count = valid.sum().to(d.dtype)
        ctx.save_for_backward(logits, t, valid, a_t, count)
        ctx.options = (gamma, reduction)
        return _reduce(loss, reduction, count).to(logits.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor | None, ...]:
        logits, t, valid, a_t, count = ctx.saved_tensors
        gamma, reduction = ctx.options
        others, lse_others, d = _focal_parts(logits, t)
        s = _row_scale(grad, reduction, count, d.dtype)
        sig = torch.sigmoid(d)
        if gamma > 0:
            # f(d) = sigmoid(d)^g softplus(d),
            # f'(d) = sigmoid(d)^g (g sigmoid(-d) softplus(d) + sigmoid(d))
            tail = torch.where(torch.isinf(d), 0, torch.sigmoid(-d) * _softplus(d))
            df = torch.exp(gamma * -_softplus(-d)) * (gamma * tail + sig)
        else:
            df = sig
        coef = torch.where(valid, s * a_t * df, 0)
        # d d / d z_c = softmax of the other classes (0 at the target); d d / d z_t = -1
        lse_safe = torch.where(torch.isfinite(lse_others), lse_others, 0)
        out = _softmax(others, lse_safe)
        out.scatter_(1, t.unsqueeze(1), -1.0)
        out.mul_(coef.unsqueeze(1))
        out.masked_fill_(~valid.unsqueeze(1), 0)  # ignored rows: 0, even where they hold NaN
        return out.to(logits.dtype), None, None, None, None, None, None


def focal_loss(
    input: torch.Tensor,
    target: torch.Tensor,
    /,
    *,
    alpha: float | torch.Tensor | None = None,
    gamma: float = 2.0,
    ignore_index: int = -100,
    reduction: str = "mean",
) -> torch.Tensor:
    r"""Softmax focal loss, computed in log space (finite gradients for every gamma >= 0).

    .. math:: \ell_i = -\alpha_{y_i} (1 - p_{i y_i})^\gamma \log p_{i y_i}

    evaluated from the margin :math:`d = \operatorname{LSE}_{c \ne t} z_c - z_t` as
    :math:`\alpha_t \exp(\gamma \log\sigma(d)) \operatorname{softplus}(d)`, so saturated
    logits give finite losses and gradients even for :math:`\gamma < 1` (optax #1267).
    Matches :func:`crossent.softmax_focal_loss`; "mean" averages over non-ignored samples.

    Parameters
    ----------
    input : torch.Tensor
        Logits (N, C, d1, ..., dk) or (C,); classes along dim 1.
    target : torch.Tensor
        Integer class indices of shape (N, d1, ..., dk).
    alpha : float or torch.Tensor, optional
        A scalar weight, or one weight per class (shape (C,)). None means 1.
    gamma : float, default 2
        Focusing exponent; 0 gives cross-entropy.
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
    reduction : {"mean", "sum", "none"}
        Reduction over samples.

    Returns
    -------
    torch.Tensor
        The loss in ``input``'s dtype.

    References
    ----------
    .. [1] Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017.

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import focal_loss
    >>> print(round(float(focal_loss(torch.tensor([[2.0, 1.0, 0.1]]), torch.tensor([0]))), 4))
    0.0485
    """
    check_float(input, "input")
    check_reduction(reduction)
    g = check_nonnegative(gamma, "gamma")
    if input.ndim == 0:
        raise ValueError("input must have a class dimension: shape (C,) or (N, C, d1, ..., dk)")
    num_classes = input.shape[1] if input.ndim > 1 else input.shape[0]
    if not isinstance(target, torch.Tensor) or target.dtype.is_floating_point:
        raise TypeError(
            f"target must be an integer tensor of class indices, got "
            f"{getattr(target, 'dtype', type(target).__name__)}"
        )
    alpha_vector: torch.Tensor | None = None
    alpha_scalar = 1.0
    if isinstance(alpha, torch.Tensor):
        check_class_vector(alpha, num_classes, "alpha", input)
        alpha_vector = alpha
    elif alpha is not None:
        alpha_scalar = check_nonnegative(alpha, "alpha")
    x, y, unbatched = _batched(input, target)
    if tuple(target.shape) != _index_shape(input):
        raise ValueError(
            f"targets must have shape {_index_shape(input)} (the input's shape "
            f"{tuple(input.shape)} without dim 1); got {tuple(target.shape)}"
        )
    check_targets_in_range(target, num_classes, ignore_index)
    out = _Focal.apply(x, y.long(), alpha_vector, alpha_scalar, g, ignore_index, reduction)
    return out.squeeze(0) if unbatched and reduction == "none" else out
