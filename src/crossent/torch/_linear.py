"""Fused linear cross-entropy: the loss of softmax(hidden @ weight.T + bias), chunk by chunk.

A language model's head turns N hidden states into N x V logits; at N = 8192 and V = 128k the
float32 logits take 4 GB and PyTorch holds three tensors of that size between the forward and
the end of the backward. Here the rows are processed in chunks: for each chunk the logits are
computed into one reused (chunk, V) buffer, reduced to a log-sum-exp, turned in place into the
gradient of the loss with respect to the logits, and multiplied straight into the gradients of
hidden, weight and bias. Nothing of size N x V ever exists; the memory is
O(chunk x V + N + V x D), whatever N is.

When the loss is reduced ("mean" or "sum") and gradients are wanted, the gradients are computed
during the forward pass (one pass over the chunks, three matrix products per chunk) and scaled
by the scalar upstream gradient in the backward: a quarter fewer products than recomputing the
logits in the backward. With ``reduction="none"`` the upstream gradient differs per row, so the
backward recomputes each chunk's logits (four products per chunk) from the saved log-sum-exp.

The chunks are visited in a fixed order and accumulated with plain matrix products (no atomics),
so results are bit-identical run to run. On CUDA nothing reads a tensor's value on the host
(no ``.item()``, no ``nonzero()``, no branch on data), so the call can be captured in a graph;
only the CPU path, where reading is free, branches on two flags (see :func:`_host_shortcuts`).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.autograd.function import once_differentiable

from .._semantics import SoftmaxCE, softmax_ce_coefficients, softmax_ce_loss
from .._validation import (
    check_class_vector,
    check_floating,
    check_fraction,
    check_index_targets,
    check_integer,
    check_nonnegative,
    check_reduction,
    check_same_device,
    check_smoothing_convention,
    check_softcap,
)
from ..losses._problem import IndexTargets, index_target_data
from ._functions import _xp, compute_dtype

__all__ = ["LinearCrossEntropyLoss", "linear_cross_entropy"]

#: Bytes of the per-chunk logits buffer when ``chunk_size`` is None.
CHUNK_BYTES = {"cpu": 128 * 2**20, "default": 256 * 2**20}


def default_chunk_size(num_rows: int, vocab: int, device: torch.device) -> int:
    """Rows per chunk: a logits buffer of at most ``CHUNK_BYTES`` (float32), chunks balanced.

    The rows are split into equal chunks (the last one no smaller than the others by more than
    the number of chunks), so no chunk is a thin sliver that runs its products slowly.
    """
    budget = CHUNK_BYTES.get(device.type, CHUNK_BYTES["default"])
    rows = max(1, min(max(budget // (4 * max(vocab, 1)), 16), num_rows))
    chunks = -(-num_rows // rows) if num_rows else 1
    return max(1, -(-num_rows // chunks))


def _mm_dtype(hidden: torch.Tensor) -> torch.dtype:
    """The dtype of the matrix products: float32 (or float64) on CPU, the input's elsewhere.

    On CPU a float16/bfloat16 weight is upcast once, so every product accumulates and rounds
    in float32 (CPUs have no faster low-precision path to lose). On accelerators the products
    run in the input dtype on tensor cores (accumulating in float32 inside each product) and
    their results are upcast.
    """
    return compute_dtype(hidden.dtype) if hidden.device.type == "cpu" else hidden.dtype


def _host_shortcuts(hidden: torch.Tensor) -> bool:
    """Whether the sweep takes its two CPU shortcuts, each saving one pass over every chunk.

    1. The softmax is shifted by each row's target logit, and the row maxima are taken only
       for a chunk where some logit exceeds its target's by more than ~44 (the sum of exps
       passes 2**64): reading that flag is free on CPU, a synchronization on a device.
    2. The per-row factor of the gradient, d l / d z = c exp(z - m) - b onehot(t) - r w, is
       applied to the (rows, D) operands and results of the products instead of the (V, rows)
       chunk, and the one-hot term is added with ``index_add_``: deterministic on CPU, atomic
       (run-to-run different) on CUDA.

    Elsewhere every chunk is shifted by its row maxima and the gradient written in the chunk.
    """
    return hidden.device.type == "cpu"


#: Whether a reduced loss computes its gradients during the forward pass (see the module
#: docstring); tests switch it off to check the backward's recomputing sweep.
PRECOMPUTE = True


class _Options:
    """The non-tensor options of one call (a plain object: the Function saves it on ctx)."""

    __slots__ = ("chunk", "ignore_index", "precompute", "reduction", "rule")

    def __init__(
        self, *, rule: SoftmaxCE, ignore_index: int, reduction: str, chunk: int, precompute: bool
    ) -> None:
        self.rule = rule
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.chunk = chunk
        self.precompute = precompute


class _Targets:
    """Per-row target data shared by forward and backward (all of length N, no host sync)."""

    def __init__(
        self, targets: torch.Tensor, class_weight: torch.Tensor | None, ignore_index: int,
        dtype: torch.dtype, vocab: int,
    ) -> None:  # fmt: skip
        self.class_weight = None if class_weight is None else class_weight.to(dtype)
        data: IndexTargets = index_target_data(
            _xp(), targets, self.class_weight, ignore_index, dtype
        )
        self.valid, self.index, self.w_t = data.valid, data.index, data.w_t
        cw = self.class_weight
        self.w_sum: torch.Tensor | float = float(vocab) if cw is None else cw.sum()


class _Sweep:
    """One pass over the chunks: log-sum-exp and losses, and/or the gradients.

    A chunk's logits are held transposed, (V, rows): the products ``W @ h_c.T``,
    ``G.T @ W`` and ``G @ h_c`` then run at close to the speed of one large product on CPU
    (a (rows, V) layout costs about 10% more at 256 rows), and the reductions over classes
    are vectorized across the rows. The buffer is one flat allocation whose first V * rows
    elements serve every chunk, the ragged last one included, as a contiguous (V, rows) view.

    ``mm_weight`` is the weight in the dtype of the matrix products (see :func:`_mm_dtype`).
    """

    def __init__(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        tgt: _Targets,
        opts: _Options,
    ) -> None:
        self.dtype = compute_dtype(hidden.dtype)
        self.mm_dtype = _mm_dtype(hidden)
        self.hidden = hidden
        self.mm_weight = weight.to(self.mm_dtype)
        self.bias = None if bias is None else bias.to(self.dtype).unsqueeze(1)
        self.tgt = tgt
        self.opts = opts
        self.shortcuts = _host_shortcuts(hidden)
        self.w_dot_weight: torch.Tensor | None = None

    def _chunk_logits(self, r0: int, r1: int, z: torch.Tensor, th: torch.Tensor | None) -> None:
        """z (V, rows) = the chunk's (soft-capped) logits; th = tanh(logits / cap) if capped."""
        self._logits(r0, r1, z)
        cap = self.opts.rule.softcap
        if cap is not None:
            assert th is not None
            torch.div(z, cap, out=th).tanh_()
            torch.mul(th, cap, out=z)

    def _exp_shifted(
        self, z: torch.Tensor, z_t: torch.Tensor, r0: int, r1: int, th: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor]:
        """z <- exp(z - m) in place; returns m, sum_c w_c (z_c - m) (with smoothing), sum exp.

        m is the target logit where the host may check the sums (CPU), else the row max; a chunk
        where a sum grows too large (a logit far above its target's) is recomputed and shifted
        by its row maxima.
        """
        tgt = self.tgt
        for by_max in (False, True) if self.shortcuts else (True,):
            m = z.amax(0) if by_max else z_t
            m = torch.where(torch.isfinite(m), m, 0)  # a row without a finite max: shift 0
            z.sub_(m)
            zw = None
            if self.opts.rule.smoothing.per_class > 0:
                # sum_c w_c (z_c - m): the smoothing term without cancellation
                zw = z.sum(0) if tgt.class_weight is None else tgt.class_weight @ z
            z.exp_()
            sum_exp = z.sum(0)
            # Past 2**64 (a logit ~44 above its target's) 1/sum nears float32's subnormals.
            if by_max or not bool((sum_exp >= 2.0**64).any()):
                break
            self._chunk_logits(r0, r1, z, th)  # start this chunk again, shifted by the max
        return m, zw, sum_exp

    def _logits(self, r0: int, r1: int, out: torch.Tensor) -> None:
        """out (V, rows) = W @ h[r0:r1].T + b."""
        h = self.hidden[r0:r1].to(self.mm_dtype)
        if self.mm_dtype == self.dtype:
            if self.bias is None:
                torch.mm(self.mm_weight, h.t(), out=out)
            else:
                torch.addmm(self.bias, self.mm_weight, h.t(), out=out)
        else:
            out.copy_(torch.mm(self.mm_weight, h.t()))
            if self.bias is not None:
                out.add_(self.bias)

    def run(
        self,
        *,
        lse_in: torch.Tensor | None,
        scale: torch.Tensor | None,
        need_h: bool,
        need_w: bool,
        need_b: bool,
    ) -> tuple[
        torch.Tensor,
        torch.Tensor | None,
        torch.Tensor | None,
        torch.Tensor | None,
        torch.Tensor | None,
    ]:
        """Visit every chunk in order.

        Without ``lse_in`` (forward) it returns the log-sum-exp and the per-row losses; with
        ``scale`` (d loss / d l_i per row, or a scalar) it also returns the gradients of
        hidden, weight and bias that are asked for. With ``lse_in`` (backward) the losses are
        not recomputed and the softmax comes straight from the saved log-sum-exp.
        """
        opts, tgt = self.opts, self.tgt
        n_rows, vocab = self.hidden.shape[0], self.mm_weight.shape[0]
        dtype, device = self.dtype, self.hidden.device
        rule, xp = opts.rule, _xp()
        cap = rule.softcap
        grads = scale is not None and (need_h or need_w or need_b)
        rows = max(1, min(opts.chunk, n_rows))

        lse = torch.empty(n_rows, dtype=dtype, device=device) if lse_in is None else lse_in
        loss = torch.empty(n_rows, dtype=dtype, device=device) if lse_in is None else None
        gh = gw = gb = None
        if grads and need_h:
            gh_dtype = dtype if self.mm_dtype == dtype else self.hidden.dtype
            gh = torch.empty(n_rows, self.hidden.shape[1], dtype=gh_dtype, device=device)
        if grads and need_w:
            # The first chunk writes it (no zero fill) unless there is no chunk at all.
            first_writes = self.mm_dtype == dtype and n_rows > 0
            make = torch.empty if first_writes else torch.zeros
            gw = make(vocab, self.hidden.shape[1], dtype=dtype, device=device)
        if grads and need_b:
            gb = torch.zeros(vocab, dtype=dtype, device=device)
        flat = torch.empty(rows * vocab, dtype=dtype, device=device)
        flat_tanh = torch.empty_like(flat) if cap is not None else None
        # sum_i r_i h_i over all rows (the factored path's smoothing term of the weight gradient)
        smooth = torch.zeros(self.hidden.shape[1], dtype=dtype, device=device)

        for r0 in range(0, n_rows, rows):
            r1 = min(r0 + rows, n_rows)
            n = r1 - r0
            z = flat[: vocab * n].view(vocab, n)  # this chunk's logits, transposed
            th = None if flat_tanh is None else flat_tanh[: vocab * n].view(vocab, n)
            self._chunk_logits(r0, r1, z, th)
            index = tgt.index[r0:r1].unsqueeze(0)
            w_t, valid = tgt.w_t[r0:r1], tgt.valid[r0:r1]
            if lse_in is None:
                assert loss is not None
                z_t = z.gather(0, index)[0]
                m, zw, sum_exp = self._exp_shifted(z, z_t, r0, r1, th)
                log_sum = sum_exp.log()
                lse_c = m + log_sum
                lse[r0:r1] = lse_c
                # sum_c w_c (lse - z_c) = sum(w) log(sum exp) - sum_c w_c (z_c - m)
                smooth_nll = None if zw is None else tgt.w_sum * log_sum - zw
                loss[r0:r1] = softmax_ce_loss(
                    xp, rule, nll_t=log_sum + (m - z_t), smooth_nll=smooth_nll, lse=lse_c,
                    w_t=w_t, valid=valid,
                )  # fmt: skip
                if not grads:
                    continue
                inv = 1 / sum_exp  # z now holds exp(z - m); p = exp(z - m) / sum_exp
            else:
                lse_c = lse_in[r0:r1]
                z.sub_(lse_c).exp_()  # p
                inv = None
            assert scale is not None
            s = scale[r0:r1] if scale.ndim else scale
            # d l / d z = c exp(z - m) - b onehot(t) - r w, per row (column of the chunk), from
            # the rule's a p - b onehot - r w: c = s a / sum exp, b and r times s.
            a, b, r = softmax_ce_coefficients(
                xp, rule, lse=lse_c, w_t=w_t, valid=valid, w_sum=tgt.w_sum
            )
            c = s * a if inv is None else s * a * inv
            b = s * b
            r = None if r is None else s * r
            if self.shortcuts and th is None:
                self._accumulate_factored(r0, r1, z, c, b, r, gh, gw, gb, smooth)
                continue
            z.mul_(c)
            z.scatter_add_(0, index, (-b).unsqueeze(0))
            if r is not None:
                if tgt.class_weight is None:
                    z.sub_(r)
                else:
                    z.addr_(tgt.class_weight, r, alpha=-1)
            if th is not None:
                th.mul_(th).neg_().add_(1)  # d cap*tanh(x/cap)/dx = 1 - tanh^2
                z.mul_(th)
            self._accumulate(r0, r1, z, gh, gw, gb)
        if gw is not None and rule.smoothing.per_class > 0 and self.shortcuts and cap is None:
            # the smoothing term's weight gradient, - w (sum_i r_i h_i), added once
            if tgt.class_weight is None:
                gw.sub_(smooth)
            else:
                gw.addr_(tgt.class_weight, smooth, alpha=-1)
        return lse, loss, gh, gw, gb

    def _accumulate_factored(
        self,
        r0: int,
        r1: int,
        ez: torch.Tensor,
        c: torch.Tensor,
        b: torch.Tensor,
        r: torch.Tensor | None,
        gh: torch.Tensor | None,
        gw: torch.Tensor | None,
        gb: torch.Tensor | None,
        smooth: torch.Tensor,
    ) -> None:
        """Add the gradients of d l / d z = ez diag(c) - onehot(t) diag(b) - w r^T.

        ``ez`` (V, rows) holds exp(z - m) and is never written: the per-row factors go onto the
        (rows, D) operands and results, the one-hot term is a gather and an index_add_ of
        ``rows`` rows, and the smoothing term is rank one (its weight part is summed into
        ``smooth`` and added once by the caller).
        """
        tgt = self.tgt
        t = tgt.index[r0:r1]
        if gb is not None:
            gb.add_(torch.mv(ez, c))
            gb.index_add_(0, t, -b)
            if r is not None:
                total = r.sum()
                gb.sub_(total if tgt.class_weight is None else total * tgt.class_weight)
        if gh is not None:
            out = gh[r0:r1]
            torch.mm(ez.t(), self.mm_weight, out=out)
            out.mul_(c.unsqueeze(1))
            out.sub_(b.unsqueeze(1) * self.mm_weight[t])
            if r is not None:
                if self.w_dot_weight is None:  # sum_c w_c W_c, once per sweep
                    cw = tgt.class_weight
                    self.w_dot_weight = self.mm_weight.sum(0) if cw is None else cw @ self.mm_weight
                out.sub_(r.unsqueeze(1) * self.w_dot_weight)
        if gw is not None:
            h = self.hidden[r0:r1].to(self.mm_dtype)
            if r0 == 0:
                torch.mm(ez, h * c.unsqueeze(1), out=gw)
            else:
                gw.addmm_(ez, h * c.unsqueeze(1))
            gw.index_add_(0, t, h * (-b).unsqueeze(1))
            if r is not None:
                smooth.add_(r @ h)

    def _accumulate(
        self,
        r0: int,
        r1: int,
        g: torch.Tensor,
        gh: torch.Tensor | None,
        gw: torch.Tensor | None,
        gb: torch.Tensor | None,
    ) -> None:
        """Add one chunk's d loss / d logits (``g``, (V, rows)) into the gradients, in order."""
        if gb is not None:
            gb.add_(g.sum(1))
        g_mm = g if self.mm_dtype == self.dtype else g.to(self.mm_dtype)
        if gh is not None:
            torch.mm(g_mm.t(), self.mm_weight, out=gh[r0:r1])
        if gw is not None:
            h = self.hidden[r0:r1].to(self.mm_dtype)
            if self.mm_dtype == self.dtype:
                if r0 == 0:
                    torch.mm(g_mm, h, out=gw)
                else:
                    gw.addmm_(g_mm, h)
                return
            # Low-precision products, float32 accumulator: a block of classes at a time, so
            # the product's temporary is no larger than the chunk's buffer.
            vocab, features = gw.shape
            block = max(1, (vocab * (r1 - r0)) // max(features, 1))
            for v0 in range(0, vocab, block):
                v1 = min(v0 + block, vocab)
                gw[v0:v1].add_(torch.mm(g_mm[v0:v1], h))


class _LinearCE(torch.autograd.Function):
    @staticmethod
    def forward(
        ctx: Any,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        targets: torch.Tensor,
        class_weight: torch.Tensor | None,
        opts: _Options,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        dtype = compute_dtype(hidden.dtype)
        vocab = weight.shape[0]
        tgt = _Targets(targets, class_weight, opts.ignore_index, dtype, vocab)
        count = tgt.w_t.sum()
        positive = count > 0
        # 1 / sum_i w[y_i], or 0 when every target is ignored (loss 0, zero gradients).
        inv_count = torch.where(positive, 1 / torch.where(positive, count, 1), 0)
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        precompute = opts.precompute and opts.reduction != "none" and (need_h or need_w or need_b)
        scale = None
        if precompute:
            one = torch.ones((), dtype=dtype, device=hidden.device)
            scale = inv_count if opts.reduction == "mean" else one
        sweep = _Sweep(hidden, weight, bias, tgt, opts)
        lse, loss, gh, gw, gb = sweep.run(
            lse_in=None, scale=scale, need_h=need_h, need_w=need_w, need_b=need_b
        )
        assert loss is not None
        if opts.reduction == "none":
            out = loss
        else:
            total = loss.sum()
            out = total if opts.reduction == "sum" else torch.where(positive, total / count, 0)
        ctx.opts = opts
        ctx.stash = (gh, gw, gb) if precompute else None
        ctx.save_for_backward(hidden, weight, bias, targets, class_weight, lse, inv_count)
        ctx.mark_non_differentiable(lse)
        ctx.set_materialize_grads(False)
        return out.to(hidden.dtype), lse

    @staticmethod
    @once_differentiable
    def backward(
        ctx: Any, grad: torch.Tensor | None, _grad_lse: torch.Tensor | None
    ) -> tuple[torch.Tensor | None, ...]:
        hidden, weight, bias, targets, class_weight, lse, inv_count = ctx.saved_tensors
        opts: _Options = ctx.opts
        need_h, need_w, need_b = ctx.needs_input_grad[:3]
        if grad is None:
            return None, None, None, None, None, None
        dtype = lse.dtype
        g = grad.to(dtype)
        scale: torch.Tensor | None = None
        if ctx.stash is not None:
            # Gradients computed in forward for a unit upstream gradient: scale them. The stash
            # is consumed, so a second backward (retain_graph=True) recomputes below.
            gh, gw, gb = ctx.stash
            ctx.stash = None
            # The usual upstream gradient is 1: skip scaling V x D numbers where checking is free.
            unit = _host_shortcuts(hidden) and bool(g == 1)
            scale = None if unit else g
        else:
            tgt = _Targets(targets, class_weight, opts.ignore_index, dtype, weight.shape[0])
            if opts.reduction == "mean":
                g = g * inv_count
            sweep = _Sweep(hidden, weight, bias, tgt, opts)
            _, _, gh, gw, gb = sweep.run(
                lse_in=lse, scale=g, need_h=need_h, need_w=need_w, need_b=need_b
            )
        grads: list[torch.Tensor | None] = []
        for tensor, like in ((gh, hidden), (gw, weight), (gb, bias)):
            if tensor is None or like is None:
                grads.append(None)
                continue
            if scale is not None:
                tensor = tensor.to(dtype).mul_(scale)  # in place: the stash is not reused
            grads.append(tensor.to(like.dtype))
        return grads[0], grads[1], grads[2], None, None, None


def _shift_targets(targets: torch.Tensor, ignore_index: int) -> torch.Tensor:
    """targets[..., t + 1] at position t; the last position of each sequence is ignored."""
    pad = torch.full_like(targets[..., :1], ignore_index)
    return torch.cat([targets[..., 1:], pad], dim=-1)


def _validate(
    hidden: torch.Tensor,
    weight: torch.Tensor,
    targets: torch.Tensor,
    bias: torch.Tensor | None,
    class_weight: torch.Tensor | None,
    chunk_size: int | None,
) -> None:
    xp = _xp()
    check_floating(xp, hidden, "hidden")
    check_floating(xp, weight, "weight")
    check_integer(xp, targets, "targets")
    if hidden.ndim < 2:
        raise ValueError(
            f"hidden must have shape (N, D) or (B, T, D); got shape {tuple(hidden.shape)}"
        )
    if weight.ndim != 2:
        raise ValueError(
            f"weight must have shape (V, D), one row per class; got shape {tuple(weight.shape)}"
        )
    if weight.shape[1] != hidden.shape[-1]:
        raise ValueError(
            f"weight has {weight.shape[1]} features per class (shape {tuple(weight.shape)}) but "
            f"hidden has {hidden.shape[-1]} (shape {tuple(hidden.shape)}); they must be equal"
        )
    if weight.shape[0] == 0:
        raise ValueError("weight has 0 rows: need at least one class")
    if weight.dtype != hidden.dtype:
        raise TypeError(
            f"hidden and weight must have the same dtype; got {hidden.dtype} and {weight.dtype}"
        )
    if tuple(targets.shape) != tuple(hidden.shape[:-1]):
        raise ValueError(
            f"targets must have shape {tuple(hidden.shape[:-1])} (hidden's shape "
            f"{tuple(hidden.shape)} without the last dimension); got {tuple(targets.shape)}"
        )
    vocab = weight.shape[0]
    for name, array in (("weight", weight), ("targets", targets), ("bias", bias)):
        if array is not None:
            check_same_device(array, name, hidden)
    for name, vector in (("bias", bias), ("class_weight", class_weight)):
        if vector is not None:
            check_floating(xp, vector, name)
            check_same_device(vector, name, hidden)
            check_class_vector(
                xp, vector, vocab, name, vector.dtype, nonnegative=name == "class_weight"
            )
    if chunk_size is not None and (
        isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1
    ):
        raise ValueError(f"chunk_size must be None or a positive integer, got {chunk_size!r}")


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
    reduction: str = "mean",
    shift: bool = False,
    chunk_size: int | None = None,
    return_lse: bool = False,
    smoothing_convention: str = "uniform",
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    r"""Cross-entropy of ``softmax(hidden @ weight.T + bias)`` without materializing the logits.

    Equals ``F.cross_entropy(hidden @ weight.T + bias, targets, ...)`` (loss and the gradients
    of hidden, weight and bias, to float32 rounding) for every option, while holding only one
    (chunk, V) block of logits at a time: memory :math:`O(\text{chunk} \cdot V + N + V D)`
    instead of three N x V tensors. With :math:`z = s \tanh((h W^\top + b)/s)` (or without the
    cap), class weights :math:`w`, smoothing :math:`e` over :math:`V` classes and z-loss
    :math:`\zeta`:

    .. math::

        \ell_i = (1-e)\, w_{y_i} (\operatorname{LSE}(z_i) - z_{i y_i})
                 + \frac{e}{V} \sum_c w_c (\operatorname{LSE}(z_i) - z_{ic})
                 + \zeta\, w_{y_i} \operatorname{LSE}(z_i)^2,
        \qquad \text{mean} = \frac{\sum_i \ell_i}{\sum_i w_{y_i}}

    over non-ignored rows; 0 with zero gradients when every target is ignored. Deterministic
    (bit-identical run to run); float16/bfloat16 inputs accumulate in float32; on CUDA it never
    synchronizes with the host (graph-capturable).

    Parameters
    ----------
    hidden : torch.Tensor
        Hidden states, shape (N, D) or (B, T, D).
    weight : torch.Tensor
        The classifier (unembedding) matrix, shape (V, D), same dtype as ``hidden``.
    targets : torch.Tensor
        Integer class indices of shape ``hidden.shape[:-1]``.
    bias : torch.Tensor, optional
        Bias of the classifier, shape (V,).
    ignore_index : int, default -100
        Targets equal to it contribute nothing.
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
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns one loss per position (shape of ``targets``; 0 where ignored).
    shift : bool, default False
        Score position t against target t + 1 (causal language modelling): equals passing
        ``hidden[..., :-1, :]`` and ``targets[..., 1:]``. With ``reduction="none"`` the result
        has one position less along the sequence.
    chunk_size : int, optional
        Rows per chunk; default: a logits buffer of about 128 MiB on CPU, 256 MiB elsewhere.
    return_lse : bool, default False
        Also return the log-sum-exp of each scored row (float32, float64 for float64 inputs;
        not differentiable).

    Returns
    -------
    torch.Tensor or (torch.Tensor, torch.Tensor)
        The loss in ``hidden``'s dtype, and the log-sum-exp if ``return_lse``.

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
    """
    _validate(hidden, weight, targets, bias, class_weight, chunk_size)
    check_reduction(reduction)
    vocab = weight.shape[0]
    rule = SoftmaxCE(
        vocab,
        label_smoothing=check_fraction(label_smoothing, "label_smoothing"),
        smoothing_convention=check_smoothing_convention(smoothing_convention),
        z_loss=check_nonnegative(z_loss, "z_loss"),
        softcap=check_softcap(softcap),
    )
    rule.smoothing  # noqa: B018 -- raises now for a convention the class count cannot take
    opts = _Options(
        rule=rule,
        ignore_index=int(ignore_index),
        reduction=reduction,
        chunk=0,
        # Under no_grad / inference_mode, needs_input_grad still says True for parameters:
        # only grad mode tells that no backward will come (forward runs with grad disabled).
        precompute=PRECOMPUTE and torch.is_grad_enabled(),
    )
    check_index_targets(_xp(), targets, vocab, opts.ignore_index)
    batch_shape = tuple(targets.shape)
    if shift:
        targets = _shift_targets(targets, opts.ignore_index)
    h2 = hidden.reshape(-1, hidden.shape[-1])
    t1 = targets.reshape(-1).long()
    opts.chunk = chunk_size or default_chunk_size(h2.shape[0], vocab, h2.device)
    loss, lse = _LinearCE.apply(h2, weight, bias, t1, class_weight, opts)
    lse = lse.view(batch_shape)
    if reduction == "none":
        loss = loss.view(batch_shape)
    if shift:
        lse = lse[..., :-1]
        if reduction == "none":
            loss = loss[..., :-1]
    return (loss, lse) if return_lse else loss


class LinearCrossEntropyLoss(torch.nn.Module):
    r"""The module form of :func:`linear_cross_entropy`: ``loss = module(hidden, weight, targets)``.

    The classifier weight stays where it lives (usually the model's ``lm_head.weight``); the
    module holds the options and an optional ``class_weight`` buffer.

    Parameters
    ----------
    ignore_index, label_smoothing, smoothing_convention, z_loss, softcap, reduction, shift,
    chunk_size, return_lse
        As in :func:`linear_cross_entropy`.
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
        shift: bool = False,
        chunk_size: int | None = None,
        return_lse: bool = False,
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
        self.shift = shift
        self.chunk_size = chunk_size
        self.return_lse = return_lse

    def forward(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        targets: torch.Tensor,
        bias: torch.Tensor | None = None,
    ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
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
            reduction=self.reduction,
            shift=self.shift,
            chunk_size=self.chunk_size,
            return_lse=self.return_lse,
        )

    def extra_repr(self) -> str:
        return (
            f"reduction={self.reduction!r}, ignore_index={self.ignore_index}, "
            f"label_smoothing={self.label_smoothing}, z_loss={self.z_loss}, "
            f"softcap={self.softcap}, shift={self.shift}"
        )
