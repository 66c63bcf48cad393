"""The chunk sweep of the JAX fused linear cross-entropy (see :mod:`crossent.jax._linear`).

The rows are cut into chunks of equal size (the last one padded with ignored rows of zeros) and
visited by ``lax.scan``: each chunk's (rows, V) logits exist only inside one step, so neither
the forward nor the backward ever holds N x V numbers.

:func:`sweep` is a ``jax.custom_vjp`` from (hidden, weight, bias) to per-row statistics: the
loss of each row (before reduction), the log-probability of the target, the log-sum-exp and
the entropy. Its backward takes one upstream gradient per row and statistic and writes every
chunk's gradient with respect to the logits from per-row coefficients,

.. math:: \\frac{\\partial}{\\partial z} = A\\, p + E\\, p \\log p - B\\, e_t - R\\, w,

recomputing the chunk's logits from the saved log-sum-exp (four matrix products per chunk in
all) and accumulating the gradients of weight and bias in the scan's carry, in a fixed order
(deterministic).

The common case, a reduced loss with no differentiable per-token output, takes a second
``custom_vjp`` (:func:`reduced`), as the torch op does: there the upstream gradient is one
scalar and the per-row scale ``d reduce / d l_i`` is known in the forward, so its forward rule
computes the gradients in the same sweep (three products per chunk) and the backward only
scales them. Without differentiation (the primal function) it computes the loss alone.

With ``Static.axis`` (a mesh axis under ``shard_map``) each device holds the rows of weight
for a slice of the classes: a row's max and sums take a ``pmax`` and one ``psum``, the
gradient of hidden a ``psum``; the gradients of weight and bias stay local.
"""

from __future__ import annotations

from functools import partial
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from jax import lax

from .._semantics import (
    SoftmaxCE,
    loss_row_scale,
    probability_ce_coefficient,
    probability_ce_loss,
    probability_targets,
    reduce,
    softmax_ce_coefficients,
    softmax_ce_loss,
)


class Static(NamedTuple):
    """The hashable options of one sweep (``nondiff_argnums`` of the custom_vjp)."""

    rule: SoftmaxCE
    temperature: float
    chunk: int
    entropy: bool  # compute the entropy of each row
    top: bool  # compute the top logit and its class
    mm_dtype: Any  # the dtype of the matrix products' operands
    dtype: Any  # the inputs' dtype (of the gradients)
    axis: str | None = None  # the mesh axis the classes are sharded over (see Static docs)


class Rows(NamedTuple):
    """Per-row target data, (N,) each: the class index (0 where ignored), whether the row is
    scored, the target's class weight (0 where ignored); and the class weights (V,) or None.
    With probability targets ``soft`` holds them, (N, V) (then every row is scored, index 0,
    weight 1), and the loss is that of :func:`~crossent._semantics.probability_targets`."""

    index: Any
    valid: Any
    w_t: Any
    class_weight: Any
    soft: Any = None


def _zero_cotangent(x: Any) -> Any:
    if jnp.issubdtype(x.dtype, jnp.inexact):
        return jnp.zeros_like(x)
    return np.zeros(x.shape, dtype=jax.dtypes.float0)


def compute_dtype(dtype: Any) -> Any:
    return jnp.float64 if dtype == jnp.float64 else jnp.float32


def _chunks(x: Any, chunk: int) -> Any:
    """(N, ...) -> (N / chunk, chunk, ...), the rows padded with zeros to whole chunks (None
    stays None: an absent leaf of the scan's inputs)."""
    if x is None:
        return None
    pad = -x.shape[0] % chunk
    if pad:
        x = jnp.concatenate([x, jnp.zeros((pad, *x.shape[1:]), x.dtype)])
    return x.reshape(-1, chunk, *x.shape[1:])


def _unchunk(x: Any, n: int) -> Any:
    return x.reshape(-1, *x.shape[2:])[:n]


def _logits(st: Static, h: Any, weight: Any, bias: Any) -> tuple[Any, Any]:
    """(z, tanh) of one chunk: z = softcap(h W^T + b) / T in the compute dtype, (rows, V);
    ``weight`` is already in the products' dtype (cast once, outside the loop)."""
    dtype = compute_dtype(h.dtype)
    z = jnp.dot(h.astype(st.mm_dtype), weight.T, preferred_element_type=dtype)
    if bias is not None:
        z = z + bias.astype(dtype)
    th = None
    cap = st.rule.softcap
    if cap is not None:
        th = jnp.tanh(z / cap)
        z = th * cap
    if st.temperature != 1.0:
        z = z / st.temperature
    return z, th


def _classes(st: Static, vocab: int) -> Any:
    """The class index of each of this device's ``vocab`` columns (an offset when sharded)."""
    iota = jnp.arange(vocab)
    return iota if st.axis is None else iota + lax.axis_index(st.axis) * vocab


def _w_sum(st: Static, weight: Any, cw: Any) -> Any:
    """sum_c w_c over every class (V without class weights), summed over the shards."""
    if cw is None:
        return weight.shape[0] * (1 if st.axis is None else lax.axis_size(st.axis))
    return jnp.sum(cw) if st.axis is None else lax.psum(jnp.sum(cw), st.axis)


def _chunk_forward(st: Static, weight: Any, bias: Any, w_sum: Any, cw: Any, xs: Any) -> Any:
    """Per-row (loss, log p_t, lse, entropy, top logit, argmax) of one chunk."""
    h, index, valid, w_t, soft = xs
    return _stats(st, _logits(st, h, weight, bias)[0], index, valid, w_t, w_sum, cw, soft)


def _soft_q(st: Static, soft: Any, cw: Any, dtype: Any) -> Any:
    """The weighted, smoothed target distribution of a chunk of probability targets."""
    return probability_targets(jnp, st.rule, soft.astype(dtype), cw)


def _stats(
    st: Static, z: Any, index: Any, valid: Any, w_t: Any, w_sum: Any, cw: Any, soft: Any = None
) -> Any:
    r"""Per-row (loss, log p_t, lse, entropy, top logit, argmax) of one chunk's logits; with
    probability targets ``soft`` the loss is :math:`S \log\sum_c e^{z_c - m} - \sum_c q_c
    (z_c - m)`, :math:`S = \sum_c q_c`, and log p_t is 0."""
    top = top_here = jnp.max(z, axis=1)
    if st.axis is not None:  # the first of the two collectives per row: the max
        top = lax.pmax(top_here, st.axis)
    m = jnp.where(jnp.isfinite(top), top, 0.0)  # a row without a finite max: shift 0
    zs = z - m[:, None]
    e = jnp.exp(zs)
    sums = [jnp.sum(e, axis=1)]
    if st.axis is None:
        sums.append(jnp.take_along_axis(zs, index[:, None], axis=1)[:, 0])
    else:  # the target's logit is on one shard: 0 elsewhere
        onehot = _classes(st, z.shape[1])[None, :] == index[:, None]
        sums.append(jnp.sum(jnp.where(onehot, zs, 0.0), axis=1))
    smoothing = st.rule.smoothing.per_class > 0 and soft is None  # (q holds it otherwise)
    if smoothing:  # sum_c w_c (z_c - m)
        sums.append(jnp.sum(zs, axis=1) if cw is None else zs @ cw)
    if st.entropy:  # sum_c e_c (z_c - m)
        sums.append(jnp.sum(e * zs, axis=1))
    q = None if soft is None else _soft_q(st, soft, cw, z.dtype)
    if q is not None:  # never sharded over the vocabulary (the entry refuses it)
        sums.extend([jnp.sum(q, axis=1), jnp.sum(q * zs, axis=1)])
    if st.axis is not None:  # the second: every per-row sum at once
        sums = list(lax.psum(jnp.stack(sums), st.axis))
    sum_exp, zs_t = sums[0], sums[1]
    log_sum = jnp.log(sum_exp)
    lse = m + log_sum
    nll_t = log_sum - zs_t
    smooth_nll = None
    if smoothing:
        # sum_c w_c (lse - z_c) = sum(w) log(sum exp) - sum_c w_c (z_c - m): no cancellation
        smooth_nll = w_sum * log_sum - sums[2]
    zeros = jnp.zeros_like(lse)
    if q is not None:
        cross = sums[-2] * log_sum - sums[-1]
        loss, logprob = probability_ce_loss(jnp, st.rule, cross=cross, lse=lse), zeros
    else:
        loss = softmax_ce_loss(
            jnp, st.rule, nll_t=nll_t, smooth_nll=smooth_nll, lse=lse, w_t=w_t, valid=valid
        )
        logprob = jnp.where(valid, -nll_t, 0.0)
    # H = lse - sum_c p_c z_c = log(sum exp) - sum_c e_c (z_c - m) / sum exp
    entropy = log_sum - sums[2 + smoothing] / sum_exp if st.entropy else zeros
    argmax = jnp.zeros_like(index)
    if st.top:
        argmax = _classes(st, z.shape[1])[jnp.argmax(z, axis=1)].astype(index.dtype)
        if st.axis is not None:  # the first class holding the max, over the shards
            beyond = jnp.iinfo(index.dtype).max
            argmax = lax.pmin(jnp.where(top_here == top, argmax, beyond), st.axis)
    return loss, logprob, lse, entropy, top if st.top else zeros, argmax


def _forward(st: Static, hidden: Any, weight: Any, bias: Any, rows: Rows) -> tuple[Any, ...]:
    n = hidden.shape[0]
    w_sum = _w_sum(st, weight, rows.class_weight)
    per_row = (hidden, rows.index, rows.valid, rows.w_t, rows.soft)
    xs = tuple(_chunks(a, st.chunk) for a in per_row)
    step = partial(_chunk_forward, st, weight.astype(st.mm_dtype), bias, w_sum, rows.class_weight)
    # a scan without a carry: XLA keeps one chunk's logits live at a time
    _, out = lax.scan(lambda c, x: (c, step(x)), None, xs)
    return tuple(_unchunk(a, n) for a in out)


@partial(jax.custom_vjp, nondiff_argnums=(0,))
def sweep(st: Static, hidden: Any, weight: Any, bias: Any, rows: Rows) -> tuple[Any, ...]:
    """(loss rows, log p_t, lse, entropy, top logit, argmax), each (N,); differentiable in
    the first four."""
    return _forward(st, hidden, weight, bias, rows)


def _sweep_fwd(
    st: Static, hidden: Any, weight: Any, bias: Any, rows: Rows
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:
    out = _forward(st, hidden, weight, bias, rows)
    return out, (hidden, weight, bias, rows, out[2], out[3])


def _dlogits(
    st: Static, z: Any, th: Any, xs: Any, w_sum: Any, cw: Any, entropy: Any = None,
    g_lp: Any = None, g_lse: Any = None, g_h: Any = None,
) -> Any:  # fmt: skip
    """d/dz of one chunk, ``A p + E p log p - B e_t - R w`` (module docstring), from the row
    statistics and the upstream gradients of the loss rows (``g_loss``) and of the outputs;
    against probability targets (``soft``), ``a p - q`` times ``g_loss``."""
    index, valid, w_t, lse, g_loss, soft = xs
    log_p = z - lse[:, None]
    p = jnp.exp(log_p)
    if soft is not None:
        q = _soft_q(st, soft, cw, z.dtype)
        a = probability_ce_coefficient(jnp, st.rule, q_sum=jnp.sum(q, axis=1), lse=lse)
        g = g_loss[:, None] * (a[:, None] * p - q)
        if st.temperature != 1.0:
            g = g / st.temperature
        return g if th is None else g * (1 - th * th)
    a, b, r = softmax_ce_coefficients(jnp, st.rule, lse=lse, w_t=w_t, valid=valid, w_sum=w_sum)
    a, b = g_loss * a, g_loss * b
    if g_lp is not None:
        u = jnp.where(valid, g_lp, 0.0)  # d log p_t / dz = e_t - p; an ignored row's: 0
        a, b = a - u + g_lse, b - u  # d lse / dz = p
    g = a[:, None] * p
    if st.entropy and g_h is not None:  # d H / dz = -p (log p + H)
        g = g - (g_h * entropy)[:, None] * p - g_h[:, None] * (p * log_p)
    # the one-hot term as a compare with a class iota: XLA fuses it into the elementwise chain
    onehot = _classes(st, z.shape[1])[None, :] == index[:, None]
    g = g - jnp.where(onehot, b[:, None], 0.0)
    if r is not None:
        r = g_loss * r
        g = g - r[:, None] * (1.0 if cw is None else cw[None, :])
    if st.temperature != 1.0:
        g = g / st.temperature
    if th is not None:
        g = g * (1 - th * th)  # d s tanh(x / s) / dx
    return g


def _products(st: Static, weight: Any, h: Any, g: Any, carry: Any) -> tuple[Any, Any]:
    """Add a chunk's d/dz ``g`` into the carried gradients of weight and bias; return the
    gradient of the chunk's hidden states."""
    gw, gb = carry
    gm = g.astype(st.mm_dtype)
    gh = jnp.dot(gm, weight, preferred_element_type=g.dtype)
    if st.axis is not None:  # each shard's classes contribute to every hidden state
        gh = lax.psum(gh, st.axis)
    gw = gw + jnp.dot(gm.T, h.astype(st.mm_dtype), preferred_element_type=g.dtype)
    gb = None if gb is None else gb + jnp.sum(g, axis=0)
    return (gw, gb), gh


def _chunk_backward(
    st: Static, weight: Any, bias: Any, w_sum: Any, cw: Any, carry: Any, xs: Any
) -> tuple[Any, Any]:
    """The recomputing backward of one chunk (the logits again, from the saved lse)."""
    h, index, valid, w_t, soft, lse, entropy, g_loss, g_lp, g_lse, g_h = xs
    z, th = _logits(st, h, weight, bias)
    g = _dlogits(st, z, th, (index, valid, w_t, lse, g_loss, soft), w_sum, cw, entropy, g_lp,
                 g_lse, g_h)  # fmt: skip
    return _products(st, weight, h, g, carry)


def _gradient_carry(weight: Any, bias: Any, dtype: Any) -> tuple[Any, Any]:
    # zeros_like: the carry varies over a mesh axis wherever the weight does (shard_map)
    gb = None if bias is None else jnp.zeros_like(bias, dtype=dtype)
    return jnp.zeros_like(weight, dtype=dtype), gb


def _sweep_bwd(st: Static, saved: tuple[Any, ...], grads: tuple[Any, ...]) -> tuple[Any, ...]:
    hidden, weight, bias, rows, lse, entropy = saved
    g_loss, g_lp, g_lse, g_h = (g.astype(lse.dtype) for g in grads[:4])
    n = hidden.shape[0]
    w_sum = _w_sum(st, weight, rows.class_weight)
    per_row = (
        hidden, rows.index, rows.valid, rows.w_t, rows.soft, lse, entropy, g_loss, g_lp, g_lse,
        g_h,
    )  # fmt: skip
    xs = tuple(_chunks(a, st.chunk) for a in per_row)  # padded rows have zero upstream
    carry = _gradient_carry(weight, bias, lse.dtype)
    step = partial(_chunk_backward, st, weight.astype(st.mm_dtype), bias, w_sum, rows.class_weight)
    (gw, gb), gh = lax.scan(step, carry, xs)
    # the target data has no gradient (the caller stops it); integer leaves take float0
    zero_rows = Rows(*(None if x is None else _zero_cotangent(x) for x in rows))
    return (
        _unchunk(gh, n).astype(hidden.dtype),
        gw.astype(weight.dtype),
        None if gb is None else gb.astype(bias.dtype),
        zero_rows,
    )


sweep.defvjp(_sweep_fwd, _sweep_bwd)


# The reduced loss, differentiated: its gradients are computed during the forward pass (three
# matrix products per chunk instead of four) for the per-row scale d reduce / d l_i, known
# there, and the backward only multiplies them by the scalar upstream gradient.


@partial(jax.custom_vjp, nondiff_argnums=(0, 1))
def reduced(
    st: Static, reduction: str, hidden: Any, weight: Any, bias: Any, rows: Rows, sw: Any,
    d: Any,
) -> tuple[Any, ...]:  # fmt: skip
    """(reduced loss, then the (N,) statistics of :func:`_sweep`, not differentiable)."""
    out = _forward(st, hidden, weight, bias, rows)
    return (reduce(jnp, out[0], reduction, d, sample_weight=sw), *out[1:])


def _chunk_fused(
    st: Static, weight: Any, bias: Any, w_sum: Any, cw: Any, carry: Any, xs: Any
) -> tuple[Any, Any]:
    """One chunk's statistics and gradients (for the per-row scale of the loss) in one go."""
    h, index, valid, w_t, soft, scale = xs
    z, th = _logits(st, h, weight, bias)
    stats = _stats(st, z, index, valid, w_t, w_sum, cw, soft)
    g = _dlogits(st, z, th, (index, valid, w_t, stats[2], scale, soft), w_sum, cw)
    carry, gh = _products(st, weight, h, g, carry)
    return carry, (stats, gh)


def _reduced_fwd(
    st: Static, reduction: str, hidden: Any, weight: Any, bias: Any, rows: Rows, sw: Any,
    d: Any,
) -> tuple[tuple[Any, ...], tuple[Any, ...]]:  # fmt: skip
    n = hidden.shape[0]
    dtype = compute_dtype(hidden.dtype)
    w_sum = _w_sum(st, weight, rows.class_weight)
    scale = jnp.broadcast_to(loss_row_scale(jnp, reduction, d, sample_weight=sw), (n,))
    per_row = (hidden, rows.index, rows.valid, rows.w_t, rows.soft, scale.astype(dtype))
    xs = tuple(_chunks(a, st.chunk) for a in per_row)  # padded rows have scale 0
    step = partial(_chunk_fused, st, weight.astype(st.mm_dtype), bias, w_sum, rows.class_weight)
    (gw, gb), (stats, gh) = lax.scan(step, _gradient_carry(weight, bias, dtype), xs)
    out = tuple(_unchunk(a, n) for a in stats)
    loss = reduce(jnp, out[0], reduction, d, sample_weight=sw)
    grads = (_unchunk(gh, n), gw, gb)
    return (loss, *out[1:]), (grads, out[0] if sw is not None else None, rows, sw, d)


def _reduced_bwd(st: Static, reduction: str, saved: tuple[Any, ...], grads: Any) -> tuple:
    (gh, gw, gb), loss_rows, rows, sw, d = saved
    g = grads[0].astype(gh.dtype)
    out = tuple(None if x is None else (x * g).astype(st.dtype) for x in (gh, gw, gb))
    g_sw = None
    if sw is not None:  # d reduce / d s_i = l_i (over the mean's denominator)
        g_sw = (g * loss_rows * loss_row_scale(jnp, reduction, d)).astype(sw.dtype)
    zero_rows = Rows(*(None if x is None else _zero_cotangent(x) for x in rows))
    return (*out, zero_rows, g_sw, jnp.zeros_like(d))


reduced.defvjp(_reduced_fwd, _reduced_bwd)
