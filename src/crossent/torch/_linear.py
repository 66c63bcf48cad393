"""Fused linear cross-entropy: the loss of softmax(hidden @ weight.T + bias), chunk by chunk.

A language model's head turns N hidden states into N x V logits; at N = 8192 and V = 128k the
float32 logits take 4 GB and PyTorch holds three tensors of that size between the forward and
the end of the backward. Here the rows are processed in chunks (:mod:`._linear_sweep`): for
each chunk the logits are computed into one reused (chunk, V) buffer, reduced to a
log-sum-exp, turned in place into the gradient of the loss with respect to the logits, and
multiplied straight into the gradients of hidden, weight and bias. Nothing of size N x V ever
exists; the memory is O(chunk x V + N + V x D), whatever N is.

When the loss is reduced ("mean" or "sum") and gradients are wanted, the gradients are computed
during the forward pass (one pass over the chunks, three matrix products per chunk) and scaled
by the scalar upstream gradient in the backward: a quarter fewer products than recomputing the
logits in the backward. With ``reduction="none"``, or with a differentiable per-token output
(the log-probability, the entropy with ``entropy_grad``), the upstream gradient differs per
row, so the backward recomputes each chunk's logits (four products per chunk) from the saved
log-sum-exp, once for the loss and those outputs together.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._linear_common import (
    CHUNK_BYTES,
    LinearCEOutput,
    assemble,
    check_outputs,
    check_overflow,
    check_probabilities,
    check_shift,
    head_layout,
    refuse_with_probabilities,
    statistics,
    validate_class_weight,
    validate_head,
    validate_targets,
)
from .._linear_layouts import k_dimensional, unbatched
from .._namespace import is_concrete
from .._semantics import denominator, loss_row_scale, reduce, z_loss_rows
from .._validation import (
    check_fraction,
    check_index_targets,
    check_no_ignore_index,
    check_nonnegative,
    check_normalizer,
    check_positive,
    check_reduction,
    check_same_device,
    check_sample_weight,
    check_smoothing_convention,
    check_softcap,
    check_softmax_rule,
)
from . import _linear_parallel as _parallel
from . import _linear_sweep as _sweep
from ._functions import _xp, compute_dtype
from ._linear_sweep import Options, Sweep, Targets, Upstream, default_chunk_size

__all__ = [
    "CHUNK_BYTES",
    "LinearCEOutput",
    "LinearCrossEntropyLoss",
    "default_chunk_size",
    "linear_cross_entropy",
]

#: Whether a reduced loss computes its gradients during the forward pass (see the module
#: docstring); tests switch it off to check the backward's recomputing sweep.
PRECOMPUTE = True


def _scalar(value: torch.Tensor | float, like: torch.Tensor) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value
    return torch.full((), value, dtype=like.dtype, device=like.device)


class _LinearCE(torch.autograd.Function):
    """Returns (loss, lse, logprob, entropy, argmax, top logit, z-loss); None where not asked."""

    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        class_weight: torch.Tensor | None,
        sample_weight: torch.Tensor | None,
        normalizer: torch.Tensor | None,
        opts: Options,
        shard: _parallel.Shard | None,
    ) -> tuple[torch.Tensor | None, ...]:
        xp, dtype = _xp(), compute_dtype(hidden.dtype)
        tgt = _targets(targets, class_weight, opts, dtype, weight, shard, forward=True)
        sw = None if sample_weight is None else sample_weight.to(dtype)
        # the mean's denominator: sum_i w[y_i] over valid rows, or the explicit normalizer
        d = denominator(tgt.w_t.sum(), normalizer)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        # (vocabulary-parallel: no gradient before the global log-sum-exp exists)
        precompute = (
            opts.precompute and opts.reduction != "none" and (need_h or need_w or need_b)
            and not opts.grad_outputs and shard is None
        )  # fmt: skip
        up = None
        if precompute:
            up = Upstream(_scalar(loss_row_scale(xp, opts.reduction, d, sample_weight=sw), d))
        if shard is None:
            res = Sweep(hidden, weight, bias, tgt, opts).run(
                lse_in=None, up=up, need_h=need_h, need_w=need_w, need_b=need_b
            )
        else:
            w_sum = float(shard.vocab) if class_weight is None else class_weight.to(dtype).sum()
            res = _parallel.vocab_parallel_sweep(hidden, weight, bias, tgt, opts, shard, w_sum)
        assert res.loss is not None
        check_overflow(xp, res.lse, (hidden, weight, bias), opts.temperature)
        out = reduce(xp, res.loss, opts.reduction, d, sample_weight=sw)
        z_out = None
        if "z_loss" in opts.want:
            z_rows = z_loss_rows(xp, opts.rule, lse=res.lse, w_t=tgt.w_t, valid=tgt.valid)
            z_out = reduce(xp, z_rows, opts.reduction, d, sample_weight=sw)
        ctx.opts, ctx.shard = opts, shard
        ctx.sw_dtype = None if sample_weight is None else sample_weight.dtype
        ctx.stash = (res.gh, res.gw, res.gb) if precompute else None
        entropy = res.entropy if "entropy" in opts.grad_outputs else None
        rows = res.loss if ctx.needs_input_grad[5] else None  # d out / d s_i needs l_i
        ctx.save_for_backward(
            hidden, weight, bias, targets, class_weight, sw, res.lse, d, entropy, rows
        )
        fixed = [res.lse, res.argmax, res.top_logit, z_out]
        if "entropy" not in opts.grad_outputs:
            fixed.append(res.entropy)
        ctx.mark_non_differentiable(*(t for t in fixed if t is not None))
        ctx.set_materialize_grads(False)
        return (
            out.to(hidden.dtype), res.lse, res.logprob, res.entropy, res.argmax, res.top_logit,
            z_out,
        )  # fmt: skip

    @staticmethod
    @once_differentiable
    def backward(ctx: Any, grad: torch.Tensor | None, *grads: torch.Tensor | None) -> tuple:
        hidden, weight, bias, targets, class_weight, sw, lse, d, entropy, rows = ctx.saved_tensors
        opts: Options = ctx.opts
        xp, dtype = _xp(), lse.dtype
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        g = None if grad is None else grad.to(dtype)
        g_lp = grads[1] if "logprob" in opts.grad_outputs else None
        g_h = grads[2] if "entropy" in opts.grad_outputs else None
        gh = gw = gb = None
        scale: torch.Tensor | None = None
        if ctx.stash is not None and g is not None:
            # Gradients computed in forward for a unit upstream gradient: scale them. The stash
            # is consumed, so a second backward (retain_graph=True) recomputes below.
            gh, gw, gb = ctx.stash
            ctx.stash = None
            # The usual upstream gradient is 1: skip scaling V x D numbers where checking is free.
            unit = _sweep._host_shortcuts(hidden) and bool(g == 1)
            scale = None if unit else g
        elif g is not None or g_lp is not None or g_h is not None:
            # the loss and the differentiable outputs, in one recomputing sweep
            if g is not None:
                scale = g * loss_row_scale(xp, opts.reduction, d, sample_weight=sw)
            up = Upstream(
                scale=scale,
                logprob=None if g_lp is None else g_lp.to(dtype),
                entropy=None if g_h is None else g_h.to(dtype),
                entropy_value=entropy,
            )
            scale = None  # consumed by the sweep
            tgt = _targets(targets, class_weight, opts, dtype, weight, ctx.shard, forward=False)
            res = Sweep(hidden, weight, bias, tgt, opts).run(
                lse_in=lse, up=up, need_h=need_h, need_w=need_w, need_b=need_b
            )
            gh, gw, gb = res.gh, res.gw, res.gb
            if ctx.shard is not None and gh is not None:  # each slice's part of d/dh
                gh = _parallel.all_reduce_sum(gh, ctx.shard)
        out: list[torch.Tensor | None] = []
        for tensor, like in ((gh, hidden), (gw, weight), (gb, bias)):
            if tensor is None or like is None:
                out.append(None)
                continue
            if scale is not None:
                tensor = tensor.to(dtype).mul_(scale)  # in place: the stash is not reused
            out.append(tensor.to(like.dtype))
        g_sw = None
        if rows is not None and g is not None:
            g_sw = (g * rows * loss_row_scale(xp, opts.reduction, d)).to(ctx.sw_dtype)
        return out[0], out[1], out[2], None, None, g_sw, None, None, None


def _targets(
    targets: torch.Tensor,
    class_weight: torch.Tensor | None,
    opts: Options,
    dtype: torch.dtype,
    weight: torch.Tensor,
    shard: _parallel.Shard | None,
    *,
    forward: bool,
) -> Targets:
    """The sweep's targets: of the whole weight, or of this rank's slice of the vocabulary."""
    if targets.is_floating_point():  # probabilities (N, V); never vocabulary-parallel
        return Targets.probabilities(targets, class_weight, dtype, weight.shape[0])
    if shard is None:
        return Targets(targets, class_weight, opts.ignore_index, dtype, weight.shape[0])
    return _parallel.shard_targets(
        targets, class_weight, opts.ignore_index, dtype, shard, forward=forward
    )


def _shift(x: torch.Tensor, k: int, fill: float) -> torch.Tensor:
    """x[..., t + k] at position t, the last k positions filled (an ignored target, a weight of
    0: the weight travels with its target)."""
    return torch.cat([x[..., k:], torch.full_like(x[..., :k], fill)], dim=-1)


def _validate_head(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    chunk_size: int | None,
    prefix: str = "",
) -> None:
    validate_head(_xp(), hidden, weight, bias, chunk_size, prefix)


def _validate(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    class_weight: torch.Tensor | None,
    chunk_size: int | None,
    vocab: int,
) -> None:
    _validate_head(hidden, weight, bias, chunk_size)
    if not targets.is_floating_point():
        validate_targets(_xp(), hidden, targets, class_weight, vocab)
        return
    check_same_device(targets, "targets", hidden)
    validate_class_weight(_xp(), hidden, class_weight, vocab)


def _weighting(
    hidden: torch.Tensor,
    sample_weight: torch.Tensor | None,
    normalizer: torch.Tensor | float | None,
    reduction: str,
) -> torch.Tensor | None:
    """Check the per-token weights' device (their values and shape are checked on entry) and
    the normalizer; the normalizer as a 0-d tensor on hidden's device in the compute dtype
    (None if not given)."""
    if sample_weight is not None:
        check_same_device(sample_weight, "sample_weight", hidden)
    check_normalizer(normalizer)
    if normalizer is None:
        return None
    if reduction != "mean":
        raise ValueError(
            f"normalizer is the denominator of reduction='mean'; got reduction={reduction!r}"
        )
    dtype = compute_dtype(hidden.dtype)
    if isinstance(normalizer, torch.Tensor):
        if normalizer.device == hidden.device or not is_concrete(normalizer):
            return normalizer.detach().to(device=hidden.device, dtype=dtype)
        # a count on the CPU beside an accelerator: read for free and filled there (a copy
        # from pageable host memory would synchronize the stream)
        normalizer = float(normalizer)
    return torch.full((), float(normalizer), dtype=dtype, device=hidden.device)


def linear_cross_entropy(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    /,
    *,
    bias: torch.Tensor | None = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: torch.Tensor | None = None,
    sample_weight: torch.Tensor | None = None,
    reduction: str = "mean",
    normalizer: torch.Tensor | float | None = None,
    temperature: float = 1.0,
    shift: bool | int = False,
    chunk_size: int | None = None,
    return_lse: bool = False,
    smoothing_convention: str = "uniform",
    outputs: Sequence[str] | None = None,
    entropy_grad: bool = False,
    process_group: Any = None,
    vocab_start: int | None = None,
    mean_group: Any = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | LinearCEOutput:
    r"""Cross-entropy of ``softmax(hidden @ weight.T + bias)`` without materializing the logits.

    Equals ``F.cross_entropy(hidden @ weight.T + bias, targets, ...)`` (loss and the gradients
    of hidden, weight and bias, to float32 rounding) for every option, while holding only one
    (chunk, V) block of logits at a time: memory :math:`O(\text{chunk} \cdot V + N + V D)`
    instead of three N x V tensors. With :math:`z = s \tanh((h W^\top + b)/s) / T` (or without
    the cap), class weights :math:`w`, per-token weights :math:`s_i`, smoothing :math:`e` over
    :math:`V` classes and z-loss :math:`\zeta`:

    .. math::

        \ell_i = (1-e)\, w_{y_i} (\operatorname{LSE}(z_i) - z_{i y_i})
                 + \frac{e}{V} \sum_c w_c (\operatorname{LSE}(z_i) - z_{ic})
                 + \zeta\, w_{y_i} \operatorname{LSE}(z_i)^2,
        \qquad \text{mean} = \frac{\sum_i s_i \ell_i}{D},
        \quad D = \text{normalizer, else} \sum_i w_{y_i}

    over non-ignored rows ("sum": :math:`\sum_i s_i \ell_i`; "none": :math:`s_i \ell_i`); 0
    with zero gradients when :math:`D = 0` (every target ignored). Against probability targets
    :math:`y_{ic}` (PyTorch's rule, class weights and smoothing inside the sum):

    .. math::

        \ell_i = \sum_c w_c \bigl((1-e)\, y_{ic} + \tfrac{e}{V}\bigr)
                 (\operatorname{LSE}(z_i) - z_{ic}) + \zeta \operatorname{LSE}(z_i)^2,
        \qquad D = \text{normalizer, else the number of rows.}

    Sample weights never enter
    :math:`D`: without them the mean is PyTorch's (class-weighted) mean; with them it is a mean
    over tokens, defined for negative weights (RL advantages) or weights that sum to 0; for a
    mean normalized by the weights pass ``normalizer=sample_weight.sum()``. Deterministic
    (bit-identical run to run); float16/bfloat16 inputs accumulate in float32; on CUDA it never
    synchronizes with the host (graph-capturable).

    Parameters
    ----------
    hidden : torch.Tensor
        Hidden states, shape (N, D) or (B, T, D), or (D,): one unbatched row, whose
        per-position results are 0-d (PyTorch's unbatched input).
    weight : torch.Tensor
        The classifier (unembedding) matrix, shape (V, D), same dtype as ``hidden``. As in
        ``F.linear_cross_entropy``, a weight (C, d1, ..., dK, D) makes a K-dimensional loss:
        the logits are (N, C, d1, ..., dK), C classes at each of the d1 x ... x dK positions
        (one head of C rows per position), each position a scored target; the mean is over
        all of them. Not with ``outputs``, ``shift`` or vocabulary parallelism.
    targets : torch.Tensor
        Integer class indices of shape ``hidden.shape[:-1]`` (with a K-dimensional weight
        ``(*hidden.shape[:-1], d1, ..., dK)``), or floating **probability targets** of the
        logits' shape: ``(*hidden.shape[:-1], V)`` (``(N, C, d1, ..., dK)`` for a
        K-dimensional weight), each distribution in [0, 1] summing to 1 (else a ValueError
        naming the value or the row: PyTorch takes any floats). They compose with
        ``class_weight``, ``label_smoothing``, ``z_loss``, ``softcap``, ``temperature``,
        ``sample_weight``, ``normalizer``, ``mean_group`` and ``return_lse``; ``outputs``,
        ``shift``, a non-default ``ignore_index`` (PyTorch raises too) and vocabulary
        parallelism are refused. The sweep reads them chunk by chunk (never copied whole):
        the logits are still never materialized, but the targets themselves are N x V, so
        the memory saved is the logits' and their gradient's only. One more chunk buffer
        holds a chunk of targets, and the softmax is shifted by the row max.
    bias : torch.Tensor, optional
        Bias of the classifier, shape (V,) (``(C, d1, ..., dK)`` for a K-dimensional weight).
    ignore_index : int, default -100
        Class-index targets equal to it contribute nothing.
    label_smoothing : float, default 0
        Smoothing ``e`` with PyTorch's e/V convention (class weights included).
    smoothing_convention : {"uniform", "others"}
        e/V on every class, or e/(V-1) on the other classes (see
        :func:`crossent.softmax_cross_entropy`).
    z_loss : float, default 0
        Coefficient of the squared log-sum-exp (PaLM), weighted like the NLL.
    softcap : float, optional
        Soft cap :math:`s \tanh(z/s)` of the logits (Gemma 2).
    class_weight : torch.Tensor, optional
        A weight per class, shape (V,): PyTorch's ``weight`` argument of ``cross_entropy``.
    sample_weight : torch.Tensor, optional
        A finite real weight per token, the loss's shape (that of class-index targets; the
        targets' without the class axis for probability targets; negative values allowed: RL
        advantages); it multiplies each token's loss and composes with every other option.
        With ``shift`` it is shifted with the targets (the weight of target t + 1 scores
        position t). Differentiable (:math:`\partial/\partial s_i = \ell_i / D`).
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns one loss per position (shape of ``targets``; 0 where ignored).
    normalizer : float or torch.Tensor, optional
        With ``reduction="mean"``: the denominator :math:`D` instead of the batch's own count,
        a number >= 0 or a 0-d tensor (integer or floating; no gradient), used where the loss
        is computed without reading it on the host. For gradient accumulation pass the count
        of the whole accumulated batch (Hugging Face's ``num_items_in_batch``): the
        micro-batches' losses and gradients then add up to the full batch's.
    temperature : float, default 1
        Divide the (soft-capped) logits by T > 0 before everything else: the loss and every
        output are those of :math:`\operatorname{softmax}(z / T)` (sampling temperature).
    shift : bool or int, default False
        Score position t against target t + k along the last axis of ``targets``: True is
        k = 1 (causal language modelling), an integer k >= 0 as Cut Cross-Entropy's ``shift``;
        equals passing ``hidden[..., :-k, :]`` and ``targets[..., k:]``. With
        ``reduction="none"`` (and the per-token outputs) the result has k positions less.
    chunk_size : int, optional
        Rows per chunk; default: a logits buffer of about 48 MiB on CPU (at least 256 rows),
        256 MiB elsewhere.
    return_lse : bool, default False
        Also return the log-sum-exp of each scored row (float32, float64 for float64 inputs;
        not differentiable).
    outputs : sequence of str, optional
        Per-token outputs computed in the same sweep, never holding N x V: any of "logprob"
        (differentiable), "entropy", "prediction", "correct", "accuracy", "confidence",
        "lse", "z_loss" (see :class:`~crossent.torch.LinearCEOutput`). The result is then a
        ``LinearCEOutput``. Asking for "logprob" (or a differentiable entropy) under grad mode
        makes the backward recompute the logits, once for the loss and the outputs together
        (four products per chunk instead of three); the entropy and the outputs built on the
        argmax take one more chunk-sized buffer.
    entropy_grad : bool, default False
        Let gradients flow through the "entropy" output (an entropy bonus in the objective).
        Off, the entropy is detached and a logged entropy costs the gradients nothing.
    process_group : torch.distributed.ProcessGroup, optional
        Vocabulary (tensor) parallelism: ``weight`` (and ``bias``) hold only this rank's
        contiguous slice of the classes, rows ``vocab_start`` to ``vocab_start + len(weight)``
        of the whole head; ``hidden``, ``targets`` (global class indices), ``sample_weight``,
        ``normalizer`` and ``class_weight`` (the full (V,) vector) are the same on every rank
        of the group. The slices may differ in size; together they must tile [0, V). Every
        rank gets the loss and outputs of the call on the whole weight, the whole hidden
        gradient and its slice's rows of the weight and bias gradients, with three all_reduce
        calls in the forward (a fourth for "prediction", "correct" or "accuracy") and one in
        the backward, nothing of size N x V communicated (see
        :mod:`crossent.torch._linear_parallel`). The backward recomputes the logits (four
        products per chunk instead of three).
    vocab_start : int, optional
        With ``process_group``: the class index of this rank's first weight row. A
        ``weight`` that is a DTensor sharded over the vocabulary (``Shard(0)`` on a 1-D mesh,
        as ``ColwiseParallel`` makes it) takes this path by itself, its group and first row
        read from the mesh; a DTensor ``hidden`` is made replicated first (sequence
        parallelism), a plain one is taken as the same on every rank. If the ranks hold
        different tokens (the layout's all_reduce tells), the DTensor weight is FSDP2's
        (``fully_shard``) read outside its module's forward: it is all-gathered for the call
        (the whole weight on each rank while it lasts) and its gradient reduce-scattered
        back, averaged over the ranks as FSDP2 does for every other parameter.
    mean_group : torch.distributed.ProcessGroup, optional
        Data or sequence parallelism, with ``reduction="mean"``: the denominator is the count
        :math:`\sum_i w_{y_i}` of the valid tokens of every rank of the group (one all_reduce
        of a 0-d tensor, never read on the host), so each rank returns its share
        :math:`\sum_{i \in \text{rank}} s_i \ell_i / D` and the shares (and their gradients)
        add up to the mean over all tokens. Under DDP/FSDP, whose gradient all-reduce averages
        over ranks, multiply the loss by the world size (as Hugging Face's Trainer does with
        ``average_tokens_across_devices``). Not with ``normalizer``.

    Returns
    -------
    torch.Tensor, (torch.Tensor, torch.Tensor) or LinearCEOutput
        The loss in ``hidden``'s dtype; with ``return_lse`` also the log-sum-exp; with
        ``outputs`` a ``LinearCEOutput`` holding the loss and the outputs asked for.

    Examples
    --------
    >>> import torch
    >>> import torch.nn.functional as F
    >>> from crossent.torch import linear_cross_entropy
    >>> g = torch.Generator().manual_seed(0)
    >>> h = torch.randn(6, 4, generator=g)
    >>> w = torch.randn(10, 4, generator=g)
    >>> y = torch.tensor([1, 3, 5, -100, 9, 0])
    >>> loss = linear_cross_entropy(h, w, y, chunk_size=4)
    >>> bool(torch.allclose(loss, F.cross_entropy(h @ w.T, y)))
    True

    Two micro-batches normalized by the count of both add up to the full batch's mean:

    >>> n = (y != -100).sum()
    >>> parts = [linear_cross_entropy(h[i:i + 3], w, y[i:i + 3], normalizer=n) for i in (0, 3)]
    >>> bool(torch.allclose(sum(parts), loss))
    True

    Per-token log-probabilities (differentiable) and token accuracy from the same sweep:

    >>> out = linear_cross_entropy(h, w, y, outputs=("logprob", "accuracy"))
    >>> bool(torch.allclose(out.logprob[0], torch.log_softmax(h @ w.T, -1)[0, 1]))
    True
    >>> out.accuracy.shape
    torch.Size([])

    Probability targets (soft labels, distillation from fixed teacher probabilities), a
    single unbatched hidden state, and a K-dimensional head, as ``F.linear_cross_entropy``:

    >>> p = torch.softmax(torch.randn(6, 10, generator=g), -1)
    >>> soft = linear_cross_entropy(h, w, p, label_smoothing=0.1)
    >>> bool(torch.allclose(soft, F.cross_entropy(h @ w.T, p, label_smoothing=0.1)))
    True
    >>> linear_cross_entropy(h[0], w, torch.tensor(1)).shape
    torch.Size([])
    >>> w3 = torch.randn(10, 3, 4, generator=g)  # 10 classes at each of 3 positions
    >>> y3 = torch.randint(0, 10, (6, 3), generator=g)
    >>> z3 = torch.einsum("nd,cjd->ncj", h, w3)  # the (N, C, 3) logits it never builds
    >>> bool(torch.allclose(linear_cross_entropy(h, w3, y3), F.cross_entropy(z3, y3)))
    True
    """
    options = {k: v for k, v in locals().items() if k not in ("hidden", "weight", "targets")}
    sharded_head = None
    if _parallel.is_dtensor(weight):
        sharded_head = (weight, bias)
        hidden, weight, bias, process_group, vocab_start = _parallel.from_dtensor(
            hidden, weight, bias, process_group, vocab_start
        )
    layout = head_layout(_xp(), hidden, weight, targets, bias)
    if sample_weight is not None:
        check_sample_weight(_xp(), sample_weight, layout.loss_shape)
    if layout.out:
        return k_dimensional(
            _xp(), linear_cross_entropy, layout, hidden, weight, targets, options,
            unbind=lambda x, axis: x.unbind(axis),
            refused=("outputs", "shift", "process_group", "vocab_start", "mean_group"),
            dtype=compute_dtype(hidden.dtype),
        )  # fmt: skip
    if not layout.batch:
        return unbatched(linear_cross_entropy, hidden, weight, targets, options)
    soft = layout.probabilities
    if soft:
        check_no_ignore_index(ignore_index)
        refuse_with_probabilities(
            outputs=outputs, shift=shift, process_group=process_group, vocab_start=vocab_start
        )
    shard = None
    if process_group is not None or vocab_start is not None:
        # one all_reduce: where each rank's slice starts, and the whole vocabulary's size
        shard = _parallel.layout(
            weight, targets, process_group, vocab_start, split_tokens=sharded_head is not None
        )
        if shard is None:  # a DTensor head, different tokens per rank: FSDP2's, gathered
            weight, bias = _parallel.gather_head(*sharded_head)  # type: ignore[misc]
            process_group = vocab_start = None
    vocab = weight.shape[0] if shard is None else shard.vocab
    _validate(hidden, weight, targets, bias, class_weight, chunk_size, vocab)
    check_reduction(reduction)
    names = check_outputs(outputs, entropy_grad=entropy_grad, return_lse=return_lse)
    norm = _weighting(hidden, sample_weight, normalizer, reduction)
    if mean_group is not None and (reduction != "mean" or normalizer is not None):
        raise ValueError(
            "mean_group= sets the denominator of reduction='mean'; got "
            f"reduction={reduction!r}, normalizer={normalizer!r}"
        )
    if shard is not None and names is not None and names & {"prediction", "correct", "accuracy"}:
        shard = dataclasses.replace(shard, argmax=True)
    rule = check_softmax_rule(
        vocab, label_smoothing=label_smoothing, smoothing_convention=smoothing_convention,
        z_loss=z_loss, softcap=softcap,
    )  # fmt: skip
    grad_outputs: frozenset[str] | set[str] = frozenset()
    if names is not None and torch.is_grad_enabled():
        grad_outputs = names & {"logprob"} | (names & {"entropy"} if entropy_grad else set())
    opts = Options(
        rule=rule,
        ignore_index=int(ignore_index),
        reduction=reduction,
        chunk=0,
        # Under no_grad / inference_mode, needs_input_grad still says True for parameters:
        # only grad mode tells that no backward will come (forward runs with grad disabled).
        precompute=PRECOMPUTE and torch.is_grad_enabled(),
        temperature=check_positive(temperature, "temperature"),
        want=statistics(names),
        grad_outputs=frozenset(grad_outputs),
    )
    batch_shape = layout.loss_shape
    k = check_shift(shift)
    if soft:
        check_probabilities(_xp(), targets, layout)
        t1 = targets.reshape(-1, vocab)
    else:
        check_index_targets(_xp(), targets, vocab, opts.ignore_index)
        if k:
            targets = _shift(targets, k, opts.ignore_index)
            sample_weight = None if sample_weight is None else _shift(sample_weight, k, 0.0)
        t1 = targets.reshape(-1).long()
    h2 = hidden.reshape(-1, hidden.shape[-1])
    s1 = None if sample_weight is None else sample_weight.reshape(-1)
    opts.chunk = chunk_size or default_chunk_size(h2.shape[0], weight.shape[0], h2.device)
    if mean_group is not None:
        dtype = compute_dtype(hidden.dtype)
        # probability targets count every row once (no index to ignore, no class weight)
        count_of = torch.zeros_like(t1[:, 0], dtype=torch.long) if soft else t1
        cw = None if soft else class_weight
        norm = _parallel.global_count(count_of, cw, opts.ignore_index, dtype, mean_group)
    loss, *stats = _LinearCE.apply(h2, weight, bias, t1, class_weight, s1, norm, opts, shard)

    def per_position(x: torch.Tensor) -> torch.Tensor:
        """A per-row result in the targets' shape, without the k unscored last positions."""
        x = x.view(batch_shape)
        return x[..., : max(x.shape[-1] - k, 0)] if k else x

    if reduction == "none":
        loss = per_position(loss)
    if names is None:
        return (loss, per_position(stats[0])) if return_lse else loss
    keys = ("lse", "logprob", "entropy", "argmax", "top_logit", "z_loss")
    rows = {k: v if v is None or (k == "z_loss" and reduction != "none") else per_position(v)
            for k, v in zip(keys, stats, strict=True)}  # fmt: skip
    scored = per_position(targets)
    assert scored is not None
    return assemble(_xp(), names, loss, rows, targets=scored, ignore_index=opts.ignore_index)


class LinearCrossEntropyLoss(torch.nn.Module):
    r"""The module form of :func:`linear_cross_entropy`: ``loss = module(hidden, weight, targets)``.

    The classifier weight stays where it lives (usually the model's ``lm_head.weight``); the
    module holds the options and an optional ``class_weight`` buffer; the per-batch
    ``sample_weight`` and ``normalizer`` are arguments of the call.

    Parameters
    ----------
    ignore_index, label_smoothing, smoothing_convention, z_loss, softcap, reduction, shift,
    chunk_size, return_lse, temperature, outputs, entropy_grad
        As in :func:`linear_cross_entropy`.
    process_group, vocab_start, mean_group
        As in :func:`linear_cross_entropy`: a module per rank of a vocabulary-parallel head
        (its ``weight`` the rank's rows, from ``vocab_start``), or a data-parallel global mean.
    class_weight : torch.Tensor, optional
        A weight per class (registered as a buffer).

    Examples
    --------
    >>> import torch
    >>> from crossent.torch import LinearCrossEntropyLoss
    >>> head = torch.nn.Linear(8, 32, bias=False)
    >>> h = torch.randn(2, 5, 8, requires_grad=True)
    >>> y = torch.randint(0, 32, (2, 5))
    >>> loss = LinearCrossEntropyLoss(shift=True, z_loss=1e-4)(h, head.weight, y)
    >>> loss.backward()
    >>> h.grad.shape, head.weight.grad.shape
    (torch.Size([2, 5, 8]), torch.Size([32, 8]))
    """

    class_weight: torch.Tensor | None

    def __init__(
        self,
        *,
        ignore_index: int = -100,
        label_smoothing: float = 0.0,
        smoothing_convention: str = "uniform",
        z_loss: float = 0.0,
        softcap: float | None = None,
        class_weight: torch.Tensor | None = None,
        reduction: str = "mean",
        temperature: float = 1.0,
        shift: bool | int = False,
        chunk_size: int | None = None,
        return_lse: bool = False,
        outputs: Sequence[str] | None = None,
        entropy_grad: bool = False,
        process_group: Any = None,
        vocab_start: int | None = None,
        mean_group: Any = None,
    ) -> None:
        super().__init__()
        check_reduction(reduction)
        self.ignore_index = ignore_index
        self.label_smoothing = check_fraction(label_smoothing, "label_smoothing")
        self.smoothing_convention = check_smoothing_convention(smoothing_convention)
        self.z_loss = check_nonnegative(z_loss, "z_loss")
        self.softcap = check_softcap(softcap)
        self.register_buffer("class_weight", class_weight)
        self.reduction = reduction
        self.temperature = check_positive(temperature, "temperature")
        self.shift = shift
        self.chunk_size = chunk_size
        self.return_lse = return_lse
        check_outputs(outputs, entropy_grad=entropy_grad, return_lse=return_lse)
        self.outputs = None if outputs is None else tuple(outputs)
        self.entropy_grad = entropy_grad
        self.process_group = process_group
        self.vocab_start = vocab_start
        self.mean_group = mean_group

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
        *,
        sample_weight: torch.Tensor | None = None,
        normalizer: torch.Tensor | float | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor] | LinearCEOutput:
        return linear_cross_entropy(
            hidden,
            weight,
            targets,
            bias=bias,
            ignore_index=self.ignore_index,
            label_smoothing=self.label_smoothing,
            smoothing_convention=self.smoothing_convention,
            z_loss=self.z_loss,
            softcap=self.softcap,
            class_weight=self.class_weight,
            sample_weight=sample_weight,
            reduction=self.reduction,
            normalizer=normalizer,
            temperature=self.temperature,
            shift=self.shift,
            chunk_size=self.chunk_size,
            return_lse=self.return_lse,
            outputs=self.outputs,
            entropy_grad=self.entropy_grad,
            process_group=self.process_group,
            vocab_start=self.vocab_start,
            mean_group=self.mean_group,
        )

    def extra_repr(self) -> str:
        extra = "" if self.temperature == 1.0 else f", temperature={self.temperature}"
        extra += "" if self.outputs is None else f", outputs={self.outputs}"
        extra += "" if self.vocab_start is None else f", vocab_start={self.vocab_start}"
        return (
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss}, "
            f"softcap={self.softcap}, shift={self.shift}{extra}"
        )
