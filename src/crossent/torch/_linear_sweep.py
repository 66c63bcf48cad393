"""The chunk sweep of the fused linear cross-entropy (see :mod:`crossent.torch._linear`).

For each chunk of rows the logits are computed into one reused (V, rows) buffer, reduced to a
log-sum-exp and the per-row statistics (loss, and on request the log-probability of the
target, the entropy, the top logit and its class), then turned in place into the gradient of
whatever is differentiated with respect to the logits and multiplied straight into the
gradients of hidden, weight and bias. Every gradient is written from per-row coefficients:

.. math:: \\frac{\\partial}{\\partial z} = A\\, p + E\\, p \\log p - B\\, e_t - R\\, w

where the loss contributes :func:`~crossent._semantics.softmax_ce_coefficients` times its
upstream gradient, the log-probability of the target :math:`e_t - p` and the entropy
:math:`-p (\\log p + H)`, each times its own upstream gradient; a temperature divides all of
them by T and a soft cap multiplies by :math:`1 - \\tanh^2`.

The chunks are visited in a fixed order and accumulated with plain matrix products (no
atomics), so results are bit-identical run to run. On CUDA nothing reads a tensor's value on
the host (no ``.item()``, no ``nonzero()``, no branch on data); only the CPU path, where
reading is free, branches on two flags (see :func:`_host_shortcuts`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from .._linear_common import balanced_chunk
from .._semantics import (
    SoftmaxCE,
    probability_ce_coefficient,
    probability_ce_loss,
    softmax_ce_coefficients,
    softmax_ce_loss,
)
from ..losses._problem import IndexTargets, index_target_data
from ._functions import _xp, compute_dtype


def default_chunk_size(num_rows: int, vocab: int, device: torch.device, **budget: int) -> int:
    """Rows per chunk on ``device`` (see :func:`crossent._linear_common.balanced_chunk`)."""
    return balanced_chunk(num_rows, vocab, device.type, **budget)


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


#: The per-row statistics a forward sweep can also return (``Options.want``); "smooth" is
#: the smoothing sum sum_c w_c (LSE - z_c) (with label smoothing only), which the
#: vocabulary-parallel path combines over ranks (:mod:`._linear_parallel`).
STATISTICS = ("logprob", "entropy", "max", "smooth")


class Options:
    """The non-tensor options of one call (a plain object: the Function saves it on ctx).

    ``want`` names the statistics of :data:`STATISTICS` the forward sweep computes besides
    the loss; ``grad_outputs`` those that are differentiable ("logprob", "entropy").
    """

    __slots__ = (
        "chunk", "grad_outputs", "ignore_index", "precompute", "reduction", "rule",
        "temperature", "want",
    )  # fmt: skip

    def __init__(
        self, *, rule: SoftmaxCE, ignore_index: int, reduction: str, chunk: int, precompute: bool,
        temperature: float = 1.0, want: frozenset[str] = frozenset(),
        grad_outputs: frozenset[str] = frozenset(),
    ) -> None:  # fmt: skip
        self.rule = rule
        self.ignore_index = ignore_index
        self.reduction = reduction
        self.chunk = chunk
        self.precompute = precompute
        self.temperature = temperature
        self.want = want
        self.grad_outputs = grad_outputs


class Targets:
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
        # Vocabulary-parallel sweeps (._linear_parallel) hold a slice of the classes: ``index``
        # is then the target's index in the slice (0 elsewhere) and ``here`` marks the rows
        # whose target lies in it, the only rows with a one-hot term in the gradient.
        self.here: torch.Tensor | None = None
        # Probability targets (N, V), as the caller gave them (see :meth:`probabilities`).
        self.soft: torch.Tensor | None = None

    @classmethod
    def probabilities(
        cls, soft: torch.Tensor, class_weight: torch.Tensor | None, dtype: torch.dtype,
        vocab: int,
    ) -> Targets:  # fmt: skip
        """Targets of probability rows (N, V): every row scored and counted once (PyTorch's
        mean over samples), the distribution read chunk by chunk in the sweep (never copied
        whole, nor cast)."""
        n = soft.shape[0]
        index = torch.zeros(n, dtype=torch.long, device=soft.device)
        tgt = cls(index, None, -100, dtype, vocab)
        tgt.class_weight = None if class_weight is None else class_weight.to(dtype)
        tgt.soft = soft
        return tgt


@dataclass
class Upstream:
    """What a gradient sweep differentiates: d out / d (row statistic), per row or scalar.

    ``scale`` multiplies the loss rows (upstream gradient times sample weight, over the
    mean's denominator); ``logprob`` and ``entropy`` are the upstream gradients of those
    outputs, and ``entropy_value`` the saved entropies their gradient needs.
    """

    scale: torch.Tensor | None = None
    logprob: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    entropy_value: torch.Tensor | None = None


@dataclass
class Result:
    """What one sweep returns; a field is None where it was not computed."""

    lse: torch.Tensor
    loss: torch.Tensor | None = None
    gh: torch.Tensor | None = None
    gw: torch.Tensor | None = None
    gb: torch.Tensor | None = None
    logprob: torch.Tensor | None = None
    entropy: torch.Tensor | None = None
    argmax: torch.Tensor | None = None
    top_logit: torch.Tensor | None = None
    smooth: torch.Tensor | None = None


def _scaled(x: torch.Tensor | None, factor: float | None) -> torch.Tensor | None:
    return x if x is None or factor is None else x * factor


class Head:
    """One classifier head over hidden states: a chunk's logits and the gradients they feed.

    Shared by the fused cross-entropy's :class:`Sweep` and the fused distillation loss
    (:mod:`._linear_distill`, which holds two heads, student and teacher). ``dtype`` is the
    dtype of the chunk buffers and gradients (``hidden``'s compute dtype unless given);
    ``mm_weight`` is the weight in the dtype of the matrix products (see :func:`_mm_dtype`).
    """

    def __init__(
        self,
        hidden: torch.Tensor,
        weight: torch.Tensor,
        bias: torch.Tensor | None,
        dtype: torch.dtype | None = None,
    ) -> None:
        self.dtype = dtype or compute_dtype(hidden.dtype)
        self.mm_dtype = _mm_dtype(hidden)
        self.hidden = hidden
        self.mm_weight = weight.to(self.mm_dtype)
        self.bias = None if bias is None else bias.to(self.dtype).unsqueeze(1)

    def gradient_buffers(
        self, need_h: bool, need_w: bool, need_b: bool
    ) -> tuple[torch.Tensor | None, torch.Tensor | None, torch.Tensor | None]:
        """Empty gradients of hidden, weight and bias (None where not needed), ready for
        :meth:`accumulate`."""
        n_rows, features = self.hidden.shape
        vocab, device = self.mm_weight.shape[0], self.hidden.device
        gh = gw = gb = None
        if need_h:
            gh_dtype = self.dtype if self.mm_dtype == self.dtype else self.hidden.dtype
            gh = torch.empty(n_rows, features, dtype=gh_dtype, device=device)
        if need_w:
            # The first chunk writes it (no zero fill) unless there is no chunk at all.
            first_writes = self.mm_dtype == self.dtype and n_rows > 0
            make = torch.empty if first_writes else torch.zeros
            gw = make(vocab, features, dtype=self.dtype, device=device)
        if need_b:
            gb = torch.zeros(vocab, dtype=self.dtype, device=device)
        return gh, gw, gb

    def logits(self, r0: int, r1: int, out: torch.Tensor) -> None:
        """out (V, rows) = W @ h[r0:r1].T + b."""
        h = self.hidden[r0:r1].to(self.mm_dtype)
        if self.mm_dtype == out.dtype:
            if self.bias is None:
                torch.mm(self.mm_weight, h.t(), out=out)
            else:
                torch.addmm(self.bias, self.mm_weight, h.t(), out=out)
        else:
            out.copy_(torch.mm(self.mm_weight, h.t()))
            if self.bias is not None:
                out.add_(self.bias)

    def accumulate(
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


class Sweep(Head):
    """One pass over the chunks: log-sum-exp, losses and statistics, and/or the gradients.

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
        tgt: Targets,
        opts: Options,
    ) -> None:
        super().__init__(hidden, weight, bias)
        self.tgt = tgt
        self.opts = opts
        self.shortcuts = _host_shortcuts(hidden)
        self.w_dot_weight: torch.Tensor | None = None
        self.iota: torch.Tensor | None = None  # (V, 2): class index, 1 (see _argmax)
        # logits / T: 1/T scales the logits after the cap, and every gradient coefficient
        self.inv_t = None if opts.temperature == 1.0 else 1.0 / opts.temperature

    def _chunk_logits(self, r0: int, r1: int, z: torch.Tensor, th: torch.Tensor | None) -> None:
        """z (V, rows) = the chunk's (soft-capped) logits over T; th = tanh(logits / cap)."""
        self.logits(r0, r1, z)
        cap = self.opts.rule.softcap
        if cap is not None:
            assert th is not None
            torch.div(z, cap, out=th).tanh_()
            torch.mul(th, cap if self.inv_t is None else cap * self.inv_t, out=z)
        elif self.inv_t is not None:
            z.mul_(self.inv_t)

    def _exp_shifted(
        self, z: torch.Tensor, z_t: torch.Tensor, r0: int, r1: int, th: torch.Tensor | None,
        aux: torch.Tensor | None, row_max: torch.Tensor | None,
    ) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor, torch.Tensor]:  # fmt: skip
        """exp(z - m); returns m, sum_c w_c (z_c - m) (with smoothing), sum exp and the tensor
        that holds exp(z - m): z itself, or ``aux`` (then z keeps z - m, for the entropy).

        m is the target logit where the host may check the sums (CPU), else the row max
        (``row_max`` when the caller has it); a chunk where a sum grows too large (a logit far
        above its target's) is recomputed and shifted by its row maxima.
        """
        tgt = self.tgt
        by_max_only = not self.shortcuts or row_max is not None
        for by_max in (True,) if by_max_only else (False, True):
            m = (z.amax(0) if row_max is None else row_max) if by_max else z_t
            m = torch.where(torch.isfinite(m), m, 0)  # a row without a finite max: shift 0
            z.sub_(m)
            zw = None
            if self.opts.rule.smoothing.per_class > 0:
                # sum_c w_c (z_c - m): the smoothing term without cancellation
                zw = z.sum(0) if tgt.class_weight is None else tgt.class_weight @ z
            e = z.exp_() if aux is None else torch.exp(z, out=aux)
            sum_exp = e.sum(0)
            # Past 2**64 (a logit ~44 above its target's) 1/sum nears float32's subnormals.
            if by_max or not bool((sum_exp >= 2.0**64).any()):
                break
            self._chunk_logits(r0, r1, z, th)  # start this chunk again, shifted by the max
        return m, zw, sum_exp, e

    def _argmax(self, z: torch.Tensor, aux: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The max of each column of z (V, rows) and the first class that holds it.

        On CPU an index reduction along the strided class axis is a scalar loop (about ten
        times ``amax``); there the first index of the max is read off the mask ``z == max``
        (written into ``aux``) with one product: sum_c [z_c = max] c, exact in floating point
        for V < 2**24, and the count of maxima picks out the rare ties, redone exactly.
        """
        vocab = z.shape[0]
        if not self.shortcuts or vocab >= 2**24:
            values, index = z.max(0)  # one kernel on accelerators, no host read
            return values, index
        top = z.amax(0)
        torch.eq(z, top, out=aux)
        if self.iota is None:
            self.iota = torch.stack([torch.arange(vocab), torch.ones(vocab)], 1).to(z)
        first, count = (aux.t() @ self.iota).unbind(1)
        index = first.long()
        ties = count > 1
        if bool(ties.any()):
            cols = ties.nonzero()[:, 0]
            index[cols] = z[:, cols].argmax(0)
        return top, index

    def _coefficients(
        self, up: Upstream, r0: int, r1: int, lse: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
        """Per-row (A, B, R, E) of d/dz = A p + E p log p - B onehot(t) - R w (module doc)."""
        tgt, rule = self.tgt, self.opts.rule
        w_t, valid = tgt.w_t[r0:r1], tgt.valid[r0:r1]
        e = None
        if up.scale is not None:
            s = up.scale[r0:r1] if up.scale.ndim else up.scale
            ca, cb, cr = softmax_ce_coefficients(
                _xp(), rule, lse=lse, w_t=w_t, valid=valid, w_sum=tgt.w_sum
            )
            a, b, r = s * ca, s * cb, None if cr is None else s * cr
        else:  # the loss is not differentiated (a GRPO objective on the log-probabilities)
            a, b, r = torch.zeros_like(lse), torch.zeros_like(lse), None
        if up.logprob is not None:
            # d log p_t / dz = onehot(t) - p; an ignored row's log-probability is the constant 0
            u = torch.where(valid, up.logprob[r0:r1], 0)
            a, b = a - u, b - u
        if up.entropy is not None:
            # d H / dz = -p (log p + H), for every row (the entropy needs no target)
            assert up.entropy_value is not None
            u = up.entropy[r0:r1]
            a, e = a - u * up.entropy_value[r0:r1], -u
        if tgt.here is not None:  # the target's class is on another rank's slice
            b = torch.where(tgt.here[r0:r1], b, 0)
        return a, b, r, e  # each a new tensor: the caller scales a in place

    def run(
        self,
        *,
        lse_in: torch.Tensor | None,
        up: Upstream | None,
        need_h: bool,
        need_w: bool,
        need_b: bool,
    ) -> Result:
        """Visit every chunk in order.

        Without ``lse_in`` (forward) it returns the log-sum-exp, the per-row losses and the
        statistics of ``opts.want``; with ``up`` it also returns the gradients of hidden,
        weight and bias that are asked for. With ``lse_in`` (backward) the losses are not
        recomputed and the softmax comes straight from the saved log-sum-exp.
        """
        opts, tgt = self.opts, self.tgt
        n_rows, vocab = self.hidden.shape[0], self.mm_weight.shape[0]
        dtype, device = self.dtype, self.hidden.device
        rule, xp = opts.rule, _xp()
        cap = rule.softcap
        grads = up is not None and (need_h or need_w or need_b)
        rows = max(1, min(opts.chunk, n_rows))
        forward = lse_in is None
        entropy_grad = up is not None and up.entropy is not None

        def rows_of(name: str, kind: torch.dtype = dtype) -> torch.Tensor | None:
            wanted = forward and name in opts.want
            return torch.empty(n_rows, dtype=kind, device=device) if wanted else None

        lse = torch.empty(n_rows, dtype=dtype, device=device) if lse_in is None else lse_in
        res = Result(lse=lse)
        res.loss = torch.empty(n_rows, dtype=dtype, device=device) if forward else None
        res.logprob, res.entropy = rows_of("logprob"), rows_of("entropy")
        res.argmax, res.top_logit = rows_of("max", torch.long), rows_of("max")
        res.smooth = rows_of("smooth") if rule.smoothing.per_class > 0 else None
        gh, gw, gb = self.gradient_buffers(grads and need_h, grads and need_w, grads and need_b)
        flat = torch.empty(rows * vocab, dtype=dtype, device=device)
        flat_tanh = torch.empty_like(flat) if cap is not None else None
        # a second chunk buffer: z - m for the entropy (forward), p beside log p (its gradient)
        need_aux = res.entropy is not None or res.argmax is not None or (grads and entropy_grad)
        flat_aux = torch.empty_like(flat) if need_aux else None
        # with probability targets: the chunk's target distribution
        flat_q = torch.empty_like(flat) if tgt.soft is not None else None
        # sum_i r_i h_i over all rows (the factored path's smoothing term of the weight gradient)
        smooth = torch.zeros(self.hidden.shape[1], dtype=dtype, device=device)

        for r0 in range(0, n_rows, rows):
            r1 = min(r0 + rows, n_rows)
            n = r1 - r0
            z = flat[: vocab * n].view(vocab, n)  # this chunk's logits, transposed
            th = None if flat_tanh is None else flat_tanh[: vocab * n].view(vocab, n)
            aux = None if flat_aux is None else flat_aux[: vocab * n].view(vocab, n)
            self._chunk_logits(r0, r1, z, th)
            if flat_q is not None:
                q = flat_q[: vocab * n].view(vocab, n)
                self._soft_chunk(r0, r1, z, th, q, lse_in, up if grads else None, res)
                if grads:
                    self.accumulate(r0, r1, z, gh, gw, gb)
                continue
            index = tgt.index[r0:r1].unsqueeze(0)
            w_t, valid = tgt.w_t[r0:r1], tgt.valid[r0:r1]
            if lse_in is None:
                assert res.loss is not None
                row_max = None
                if res.argmax is not None and res.top_logit is not None:
                    assert aux is not None
                    row_max, res.argmax[r0:r1] = self._argmax(z, aux)
                    res.top_logit[r0:r1] = row_max
                z_t = z.gather(0, index)[0]
                exp_aux = aux if res.entropy is not None else None
                m, zw, sum_exp, ez = self._exp_shifted(z, z_t, r0, r1, th, exp_aux, row_max)
                log_sum = sum_exp.log()
                lse_c = m + log_sum
                res.lse[r0:r1] = lse_c
                nll_t = log_sum + (m - z_t)
                # sum_c w_c (lse - z_c) = sum(w) log(sum exp) - sum_c w_c (z_c - m)
                smooth_nll = None if zw is None else tgt.w_sum * log_sum - zw
                res.loss[r0:r1] = softmax_ce_loss(
                    xp, rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=lse_c, w_t=w_t,
                    valid=valid,
                )  # fmt: skip
                if res.logprob is not None:
                    res.logprob[r0:r1] = torch.where(valid, -nll_t, 0)
                if res.smooth is not None and smooth_nll is not None:
                    res.smooth[r0:r1] = smooth_nll
                if res.entropy is not None:
                    # H = lse - sum_c p_c z_c = log(sum exp) - sum_c e_c (z_c - m) / sum exp
                    res.entropy[r0:r1] = log_sum - z.mul_(ez).sum(0) / sum_exp
                z = ez  # exp(z - m) from here on
                if not grads:
                    continue
                inv = 1 / sum_exp  # z now holds exp(z - m); p = exp(z - m) / sum_exp
            else:
                lse_c = lse_in[r0:r1]
                z.sub_(lse_c)  # log p
                if entropy_grad:
                    assert aux is not None
                    torch.exp(z, out=aux)  # p beside log p
                else:
                    z.exp_()  # p
                inv = None
            assert up is not None
            a, b, r, e = self._coefficients(up, r0, r1, lse_c)
            if self.inv_t is not None:  # d (x / T) / dx = 1 / T
                a.mul_(self.inv_t)
                b, r, e = b * self.inv_t, _scaled(r, self.inv_t), _scaled(e, self.inv_t)
            c = a if inv is None else a.mul_(inv)
            if self.shortcuts and th is None and e is None:
                self._accumulate_factored(r0, r1, z, c, b, r, gh, gw, gb, smooth)
                continue
            if e is None:
                z.mul_(c)
            else:  # z holds log p, aux holds p: (c + e log p) p
                assert aux is not None
                z.mul_(e).add_(c).mul_(aux)
            z.scatter_add_(0, index, (-b).unsqueeze(0))
            if r is not None:
                if tgt.class_weight is None:
                    z.sub_(r)
                else:
                    z.addr_(tgt.class_weight, r, alpha=-1)
            if th is not None:
                th.mul_(th).neg_().add_(1)  # d cap*tanh(x/cap)/dx = 1 - tanh^2
                z.mul_(th)
            self.accumulate(r0, r1, z, gh, gw, gb)
        if gw is not None and rule.smoothing.per_class > 0 and self.shortcuts and cap is None:
            # the smoothing term's weight gradient, - w (sum_i r_i h_i), added once
            if tgt.class_weight is None:
                gw.sub_(smooth)
            else:
                gw.addr_(tgt.class_weight, smooth, alpha=-1)
        res.gh, res.gw, res.gb = gh, gw, gb
        return res

    def _fill_targets(self, r0: int, r1: int, q: torch.Tensor) -> torch.Tensor:
        """q (V, rows) = the chunk's weighted, smoothed targets :math:`w (\alpha y + \beta)`:
        :func:`~crossent._semantics.probability_targets` computed in place (no temporary of
        the chunk's size)."""
        tgt, s = self.tgt, self.opts.rule.smoothing
        assert tgt.soft is not None
        q.copy_(tgt.soft[r0:r1].t())
        if s.per_class > 0:
            q.mul_(s.on_target).add_(s.per_class)
        if tgt.class_weight is not None:
            q.mul_(tgt.class_weight.unsqueeze(1))
        return q

    def _soft_chunk(
        self, r0: int, r1: int, z: torch.Tensor, th: torch.Tensor | None, q: torch.Tensor,
        lse_in: torch.Tensor | None, up: Upstream | None, res: Result,
    ) -> None:  # fmt: skip
        r"""One chunk against probability targets: its losses (forward) and, with ``up``, d/dz
        written into ``z``.

        With :math:`q` the weighted, smoothed targets (:func:`probability_targets`) the loss is
        :math:`\sum_c q_c (\operatorname{LSE} - z_c) = S \log\sum_c e^{z_c - m} - \sum_c
        q_c (z_c - m)`, :math:`S = \sum_c q_c`, and its gradient :math:`a p - q`
        (:func:`probability_ce_coefficient`). The softmax is shifted by the row maxima (there
        is no target logit to shift by). ``q`` is a chunk buffer that receives the targets
        (twice in a forward with gradients: once multiplied into q (z - m) for the loss, once
        for the gradient; a copy instead of a third chunk buffer).
        """
        rule = self.opts.rule
        q_sum = self._fill_targets(r0, r1, q).sum(0)
        if lse_in is None:
            assert res.loss is not None
            m = z.amax(0)
            m = torch.where(torch.isfinite(m), m, 0)  # a row without a finite max: shift 0
            z.sub_(m)
            qz = q.mul_(z).sum(0)
            sum_exp = z.exp_().sum(0)
            log_sum = sum_exp.log()
            lse = m + log_sum
            res.lse[r0:r1] = lse
            cross = q_sum * log_sum - qz
            res.loss[r0:r1] = probability_ce_loss(_xp(), rule, cross=cross, lse=lse)
            if up is None:
                return
            self._fill_targets(r0, r1, q)
            c = 1 / sum_exp  # z holds exp(z - m); p = exp(z - m) / sum_exp
        else:
            lse = lse_in[r0:r1]
            z.sub_(lse).exp_()  # p
            c = torch.ones_like(lse)
        assert up is not None and up.scale is not None
        s = up.scale[r0:r1] if up.scale.ndim else up.scale
        if self.inv_t is not None:  # d (x / T) / dx = 1 / T
            s = s * self.inv_t
        a = probability_ce_coefficient(_xp(), rule, q_sum=q_sum, lse=lse)
        z.mul_(c.mul_(a).mul_(s))
        z.addcmul_(q, s.expand_as(lse), value=-1)  # - s q
        if th is not None:
            th.mul_(th).neg_().add_(1)  # d cap*tanh(x/cap)/dx = 1 - tanh^2
            z.mul_(th)

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
