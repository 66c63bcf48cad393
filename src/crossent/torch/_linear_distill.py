"""Fused distillation: the divergence between a student head and a teacher head, chunk by chunk.

Distilling a language model compares two N x V distributions, the teacher's and the student's;
materialized in float32 at N = 8192 and V = 128k each takes 4 GB, and autograd keeps several.
Here, as in the fused cross-entropy (:mod:`._linear`), the rows are processed in chunks: for
each chunk both heads' logits are computed into two reused (V, rows) buffers (one
:class:`~._linear_sweep.Head` each), turned into log-probabilities, reduced to the per-row
divergence (:func:`crossent._semantics.distillation_rows`, the rule the core's
``distillation_loss`` uses) and, when gradients are wanted, turned into the gradient of the
student's logits and multiplied straight into the gradients of the student's hidden states,
weight and bias. Neither model's N x V logits ever exist.

The teacher is a fixed target: no gradient flows to its hidden states, weight or bias (as in
``kl_div`` against a detached teacher, the usual setting). A reduced loss computes its
gradients during the forward pass and scales them by the upstream gradient in the backward
(four products per chunk: two forward, two backward); ``reduction="none"`` recomputes both
heads' logits in the backward with each row's upstream gradient.
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._linear_common import check_overflow
from .._semantics import (
    DISTILLATION_KINDS,
    denominator,
    distillation_rows,
    loss_row_scale,
    reduce,
)
from .._validation import check_positive, check_reduction, check_same_device
from ._functions import _xp, compute_dtype
from ._linear import _validate_head, _weighting
from ._linear_sweep import Head, _host_shortcuts, default_chunk_size

__all__ = ["linear_distillation_loss"]

#: Chunk-sized arrays alive at once, about: both heads' logits and the rule's temporaries (the
#: probabilities, differences, products). The default chunk fits this many in the budget; the
#: peak measured in tests/crossent_torch/test_linear_distill.py is 10-13 (JSD the most).
CHUNK_BUFFERS = 8

#: Bytes of all of a default chunk's buffers together, and its fewest rows: the distillation
#: products are four per chunk and its buffers eight, so it keeps the larger budget of its own
#: and no row floor (a 256-row floor would hold 1 GB at a 128k vocabulary).
DISTILL_CHUNK_BYTES = {"cpu": 128 * 2**20, "default": 256 * 2**20}


class _Options:
    """The non-tensor options of one call (saved on ctx)."""

    __slots__ = ("beta", "chunk", "kind", "precompute", "reduction", "temperature")

    def __init__(
        self, *, kind: str, beta: float, temperature: float, reduction: str, chunk: int,
        precompute: bool,
    ) -> None:  # fmt: skip
        self.kind = kind
        self.beta = beta
        self.temperature = temperature
        self.reduction = reduction
        self.chunk = chunk
        self.precompute = precompute


def _sweep(
    student: Head,
    teacher: Head,
    valid: torch.Tensor,
    opts: _Options,
    *,
    scale: torch.Tensor | float | None,
    need: tuple[bool, ...],
    rows_out: bool,
) -> tuple[torch.Tensor | None, tuple[torch.Tensor | None, ...]]:
    """Visit every chunk in order: the per-row losses :math:`T^2 D_i` (0 on invalid rows) if
    ``rows_out``, and with ``scale`` (the upstream gradient of each row, or a scalar) the
    gradients of the student's hidden states, weight and bias asked for in ``need``."""
    n_rows, vocab = student.hidden.shape[0], student.mm_weight.shape[0]
    dtype, device, xp = student.dtype, student.hidden.device, _xp()
    t = opts.temperature
    grads = scale is not None and any(need)
    gh, gw, gb = student.gradient_buffers(*(grads and x for x in need))
    rows = torch.empty(n_rows, dtype=dtype, device=device) if rows_out else None
    chunk = max(1, min(opts.chunk, n_rows))
    flat_s = torch.empty(chunk * vocab, dtype=dtype, device=device)
    flat_t = torch.empty_like(flat_s)
    for r0 in range(0, n_rows, chunk):
        r1 = min(r0 + chunk, n_rows)
        n = r1 - r0
        zs, zt = flat_s[: vocab * n].view(vocab, n), flat_t[: vocab * n].view(vocab, n)
        for head, z in ((student, zs), (teacher, zt)):
            head.logits(r0, r1, z)
            if t != 1.0:
                z.div_(t)
            z.sub_(torch.logsumexp(z, 0))  # log-probabilities, classes along dim 0
        div, g = distillation_rows(xp, zt, zs, kind=opts.kind, beta=opts.beta, axis=0, grad=grads)
        ok = valid[r0:r1]
        if rows is not None:
            rows[r0:r1] = torch.where(ok, (t * t) * div, 0)
        if g is None:
            continue
        assert scale is not None
        s = scale[r0:r1] if isinstance(scale, torch.Tensor) and scale.ndim else scale
        # d (T^2 D(softmax(z / T))) / dz = T dD/ds; an invalid row is 0 whatever it holds
        g.mul_(s * t).masked_fill_(~ok, 0)
        student.accumulate(r0, r1, g, gh, gw, gb)
    return rows, (gh, gw, gb)


class _LinearDistill(torch.autograd.Function):
    """(student h, W, b, teacher h, W, b, valid, normalizer, options) -> the loss."""

    @staticmethod
    def forward(
        ctx: Any,
        s_hidden: torch.Tensor,
        s_weight: torch.Tensor,
        s_bias: torch.Tensor | None,
        t_hidden: torch.Tensor,
        t_weight: torch.Tensor,
        t_bias: torch.Tensor | None,
        valid: torch.Tensor,
        normalizer: torch.Tensor | None,
        opts: _Options,
    ) -> torch.Tensor:
        xp, dtype = _xp(), compute_dtype(s_hidden.dtype)
        d = denominator(valid.sum(dtype=dtype), normalizer)
        need = tuple(ctx.needs_input_grad[:3])
        precompute = opts.precompute and opts.reduction != "none" and any(need)
        scale = loss_row_scale(xp, opts.reduction, d) if precompute else None
        student = Head(s_hidden, s_weight, s_bias)
        teacher = Head(t_hidden.detach(), t_weight.detach(), _detach(t_bias), dtype)
        rows, stash = _sweep(student, teacher, valid, opts, scale=scale, need=need, rows_out=True)
        assert rows is not None
        inputs = (s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias)
        check_overflow(xp, rows, inputs, opts.temperature)
        ctx.opts = opts
        ctx.stash = stash if precompute else None
        ctx.save_for_backward(s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, valid, d)
        ctx.set_materialize_grads(False)
        return reduce(xp, rows, opts.reduction, d).to(s_hidden.dtype)

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor | None) -> tuple:
        s_hidden, s_weight, s_bias, t_hidden, t_weight, t_bias, valid, d = ctx.saved_tensors
        opts: _Options = ctx.opts
        none = (None,) * 6
        if grad is None:
            return (None, None, None, *none)
        dtype = d.dtype
        g = grad.to(dtype)
        scale: torch.Tensor | None = None
        if ctx.stash is not None:
            # computed in forward for a unit upstream gradient; consumed (a second backward
            # with retain_graph=True recomputes below)
            grads, ctx.stash = ctx.stash, None
            unit = _host_shortcuts(s_hidden) and bool(g == 1)
            scale = None if unit else g
        else:
            up = g * loss_row_scale(_xp(), opts.reduction, d)
            student = Head(s_hidden, s_weight, s_bias)
            teacher = Head(t_hidden, t_weight, t_bias, dtype)
            need = tuple(ctx.needs_input_grad[:3])
            _, grads = _sweep(student, teacher, valid, opts, scale=up, need=need, rows_out=False)
        out: list[torch.Tensor | None] = []
        for tensor, like in zip(grads, (s_hidden, s_weight, s_bias), strict=True):
            if tensor is None or like is None:
                out.append(None)
                continue
            if scale is not None:
                tensor = tensor.to(dtype).mul_(scale)
            out.append(tensor.to(like.dtype))
        return (*out, *none)


def _detach(x: torch.Tensor | None) -> torch.Tensor | None:
    return None if x is None else x.detach()


def linear_distillation_loss(
    student_hidden: torch.Tensor,
    student_weight: torch.Tensor,
    teacher_hidden: torch.Tensor,
    teacher_weight: torch.Tensor,
    /,
    *,
    student_bias: torch.Tensor | None = None,
    teacher_bias: torch.Tensor | None = None,
    temperature: float = 1.0,
    kind: str = "forward",
    beta: float = 0.5,
    valid: torch.Tensor | None = None,
    reduction: str = "mean",
    normalizer: torch.Tensor | float | None = None,
    chunk_size: int | None = None,
) -> torch.Tensor:
    r"""Distillation loss between two linear heads without materializing either's logits.

    With the student's logits :math:`s = h^S W_S^\top + b_S` and the teacher's
    :math:`t = h^T W_T^\top + b_T` (same vocabulary V; the hidden sizes may differ),
    :math:`q = \operatorname{softmax}(s / T)` and :math:`p = \operatorname{softmax}(t / T)`:

    .. math::

        \ell_i = T^2 \begin{cases}
            KL(p_i \| q_i) = \sum_c p_{ic} \log (p_{ic} / q_{ic}) & \text{"forward"} \\
            KL(q_i \| p_i) & \text{"reverse"} \\
            \beta\, KL(p_i \| m_i) + (1 - \beta)\, KL(q_i \| m_i),
            \ m_i = \beta p_i + (1 - \beta) q_i & \text{"jsd"}
        \end{cases}

    "forward" is :func:`crossent.distillation_loss` (Hinton et al.: the :math:`T^2` keeps the
    gradient's scale independent of T); "reverse" is the mode-seeking KL of on-policy
    distillation (MiniLLM); "jsd" is the generalized Jensen-Shannon divergence of GKD (Agarwal
    et al.; TRL's ``beta``, its limits 0 and 1 being "forward" and "reverse" up to scale).
    "mean" is :math:`\sum_i \ell_i / D` over valid rows, :math:`D` = ``normalizer`` or the
    number of valid rows (``kl_div``'s "batchmean"; 0 with zero gradients when it is 0); "sum"
    :math:`\sum_i \ell_i`; "none" :math:`\ell_i` (0 at invalid rows).

    Only the student is trained: gradients flow to ``student_hidden``, ``student_weight`` and
    ``student_bias``, never to the teacher's tensors (detached, as a fixed target is). The rows
    are processed in chunks holding both heads' (V, rows) logits and a few temporaries of that
    size, so memory is :math:`O(\text{chunk} \cdot V + N + V D)`. Deterministic;
    float16/bfloat16 inputs accumulate in float32.

    Parameters
    ----------
    student_hidden, teacher_hidden : torch.Tensor
        Hidden states of shape (N, D_S) or (B, T, D_S), and the teacher's of the same leading
        shape with its own width D_T.
    student_weight, teacher_weight : torch.Tensor
        The heads, shapes (V, D_S) and (V, D_T), each in its hidden states' dtype.
    student_bias, teacher_bias : torch.Tensor, optional
        Biases of shape (V,).
    temperature : float, default 1
        Softening temperature T > 0, applied to both heads.
    kind : {"forward", "reverse", "jsd"}
        The divergence.
    beta : float, default 0.5
        The teacher's weight in the mixture of "jsd", in (0, 1); unused by the KLs.
    valid : torch.Tensor, optional
        Boolean mask of the scored positions, of the hidden states' leading shape (e.g.
        ``labels != -100`` for the positions that have a label); default all.
    reduction : {"mean", "sum", "none"}
        How the per-row losses are combined.
    normalizer : torch.Tensor or float, optional
        The denominator of "mean" instead of the count of valid rows: with the count of the
        whole accumulated batch, micro-batches add up to the full batch's loss.
    chunk_size : int, optional
        Rows per chunk; default: the chunks' buffers within crossent's budget (128 MiB on CPU).

    Returns
    -------
    torch.Tensor
        The loss in ``student_hidden``'s dtype (shape of the leading dimensions for "none").

    Examples
    --------
    >>> import torch
    >>> import crossent as ce
    >>> from crossent.torch import linear_distillation_loss
    >>> g = torch.Generator().manual_seed(0)
    >>> h_s, w_s = torch.randn(6, 4, generator=g), torch.randn(10, 4, generator=g)
    >>> h_t, w_t = torch.randn(6, 8, generator=g), torch.randn(10, 8, generator=g)
    >>> loss = linear_distillation_loss(h_s, w_s, h_t, w_t, temperature=2.0, chunk_size=4)
    >>> want = ce.distillation_loss(h_s @ w_s.T, h_t @ w_t.T, temperature=2.0)
    >>> bool(torch.allclose(loss, want))
    True
    >>> jsd = linear_distillation_loss(h_s, w_s, h_t, w_t, kind="jsd", beta=0.5)
    >>> bool(0 <= jsd <= torch.log(torch.tensor(2.0)))
    True
    """
    check_reduction(reduction)
    if kind not in DISTILLATION_KINDS:
        raise ValueError(f"kind must be one of {DISTILLATION_KINDS}, got {kind!r}")
    if isinstance(beta, bool) or not isinstance(beta, int | float) or not 0 < beta < 1:
        raise ValueError(f"beta must be a number in (0, 1), got {beta!r}")
    t = check_positive(temperature, "temperature")
    _validate_head(student_hidden, student_weight, student_bias, chunk_size, "student_")
    _validate_head(teacher_hidden, teacher_weight, teacher_bias, None, "teacher_")
    lead = tuple(student_hidden.shape[:-1])
    if tuple(teacher_hidden.shape[:-1]) != lead:
        raise ValueError(
            f"teacher_hidden must have the leading shape {lead} of student_hidden (shape "
            f"{tuple(student_hidden.shape)}); got shape {tuple(teacher_hidden.shape)}"
        )
    vocab = student_weight.shape[0]
    if teacher_weight.shape[0] != vocab:
        raise ValueError(
            f"teacher_weight has {teacher_weight.shape[0]} classes but student_weight has "
            f"{vocab}; the heads must share the vocabulary"
        )
    check_same_device(teacher_hidden, "teacher_hidden", student_hidden)
    if valid is None:
        valid = torch.ones(lead, dtype=torch.bool, device=student_hidden.device)
    else:
        if valid.dtype != torch.bool or tuple(valid.shape) != lead:
            raise ValueError(
                f"valid must be a boolean mask of shape {lead}; got {valid.dtype} of shape "
                f"{tuple(valid.shape)}"
            )
        check_same_device(valid, "valid", student_hidden)
    norm = _weighting(student_hidden, None, normalizer, reduction)
    h_s = student_hidden.reshape(-1, student_hidden.shape[-1])
    h_t = teacher_hidden.reshape(-1, teacher_hidden.shape[-1])
    # both heads' logits and the rule's temporaries share the budget of one buffer
    chunk = chunk_size or default_chunk_size(
        h_s.shape[0],
        vocab * CHUNK_BUFFERS,
        h_s.device,
        budget=DISTILL_CHUNK_BYTES["cpu" if h_s.device.type == "cpu" else "default"],
        min_rows=16,
    )
    opts = _Options(
        kind=kind, beta=float(beta), temperature=t, reduction=reduction, chunk=chunk,
        precompute=torch.is_grad_enabled(),
    )  # fmt: skip
    loss = _LinearDistill.apply(
        h_s, student_weight, student_bias, h_t, teacher_weight, teacher_bias,
        valid.reshape(-1), norm, opts,
    )  # fmt: skip
    return loss.view(lead) if reduction == "none" else loss
