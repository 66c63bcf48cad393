"""Fused linear cross-entropy for JAX: the loss of softmax(hidden @ weight.T + bias), by chunks.

The same operation as :func:`crossent.torch.linear_cross_entropy`, with the same options and
the same rules (:mod:`crossent._semantics`, :mod:`crossent._linear_common`); the chunk sweep
and its two ``jax.custom_vjp`` are in :mod:`crossent.jax._linear_sweep`. This module checks
the inputs, builds the per-row target data, picks the sweep and reduces its per-row results
with the rules of :mod:`crossent._semantics` (plain JAX, so autodiff composes them: the
gradient of the per-token weights, ``vmap`` and ``jit`` come for free).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from .._linear_common import (
    LinearCEOutput,
    assemble,
    balanced_chunk,
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
from .._semantics import denominator, reduce, z_loss_rows
from .._validation import (
    check_index_targets,
    check_no_ignore_index,
    check_normalizer,
    check_positive,
    check_reduction,
    check_sample_weight,
    check_softmax_rule,
)
from ..losses._problem import index_target_data
from ._linear_sweep import Rows, Static, compute_dtype, reduced, sweep

__all__ = ["linear_cross_entropy"]

jax.tree_util.register_dataclass(
    LinearCEOutput,
    data_fields=[
        "loss", "logprob", "entropy", "prediction", "correct", "accuracy", "confidence", "lse",
        "z_loss",
    ],
    meta_fields=[],
)  # fmt: skip


def _shift(x: Any, k: int, fill: Any) -> Any:
    """x[..., t + k] at position t, the last k positions filled (the target travels with its
    weight: the last k positions of each sequence are unscored)."""
    return jnp.concatenate([x[..., k:], jnp.full_like(x[..., :k], fill)], axis=-1)


def linear_cross_entropy(
    hidden: Any,
    weight: Any,
    targets: Any,
    /,
    *,
    bias: Any = None,
    ignore_index: int = -100,
    label_smoothing: float = 0.0,
    smoothing_convention: str = "uniform",
    z_loss: float = 0.0,
    softcap: float | None = None,
    class_weight: Any = None,
    sample_weight: Any = None,
    reduction: str = "mean",
    normalizer: Any = None,
    temperature: float = 1.0,
    shift: bool | int = False,
    chunk_size: int | None = None,
    return_lse: bool = False,
    outputs: Sequence[str] | None = None,
    entropy_grad: bool = False,
    vocab_axis: str | None = None,
) -> Any:
    r"""Cross-entropy of ``softmax(hidden @ weight.T + bias)`` without materializing the logits.

    The JAX form of :func:`crossent.torch.linear_cross_entropy`, with its options and its
    definition: with :math:`z = s \tanh((h W^\top + b)/s) / T` (or without the cap), class
    weights :math:`w`, per-token weights :math:`s_i`, smoothing :math:`e` over :math:`V`
    classes and z-loss :math:`\zeta`,

    .. math::

        \ell_i = (1-e)\, w_{y_i} (\operatorname{LSE}(z_i) - z_{i y_i})
                 + \frac{e}{V} \sum_c w_c (\operatorname{LSE}(z_i) - z_{ic})
                 + \zeta\, w_{y_i} \operatorname{LSE}(z_i)^2,
        \qquad \text{mean} = \frac{\sum_i s_i \ell_i}{D},
        \quad D = \text{normalizer, else} \sum_i w_{y_i}

    over non-ignored rows ("sum": :math:`\sum_i s_i \ell_i`; "none": :math:`s_i \ell_i`),
    0 with zero gradients when :math:`D = 0`. It runs under ``jax.jit``, ``jax.grad``,
    ``jax.value_and_grad`` and ``jax.vmap``; only one (chunk, V) block of logits is live at a
    time, in the forward and in the backward (memory :math:`O(\text{chunk} \cdot V + N + V D)`
    instead of the N x V logits and their gradient). Deterministic; bfloat16/float16 inputs
    accumulate in float32 (on CPU the products run in float32).

    Parameters
    ----------
    hidden : jax.Array
        Hidden states, shape (N, D) or (B, T, D), or (D,) (one unbatched row; per-position
        results are 0-d).
    weight : jax.Array
        The classifier (unembedding) matrix, shape (V, D), same dtype as ``hidden``; or
        (C, d1, ..., dK, D), a K-dimensional loss as ``F.linear_cross_entropy``'s (C classes
        at each of the d1 x ... x dK positions; not with ``outputs``, ``shift`` or
        ``vocab_axis``).
    targets : jax.Array
        Integer class indices of shape ``hidden.shape[:-1]`` (``(*hidden.shape[:-1], d1, ...,
        dK)`` with a K-dimensional weight), or floating probability targets of the logits'
        shape (``(*hidden.shape[:-1], V)``, ``(N, C, d1, ..., dK)``), as in
        :func:`crossent.torch.linear_cross_entropy`: each distribution in [0, 1] and summing
        to 1 (checked outside ``jit``), the mean over rows, no gradient, not with
        ``outputs``, ``shift``, ``vocab_axis`` or a non-default ``ignore_index``. The memory
        saved is then the logits' only: the targets are N x V themselves.
    bias, ignore_index, label_smoothing, smoothing_convention, z_loss, softcap, class_weight
        As in :func:`crossent.torch.linear_cross_entropy`. ``class_weight`` gets no gradient.
    sample_weight : jax.Array, optional
        A finite real weight per token (the targets' shape), shifted with the targets under
        ``shift``; differentiable (:math:`\partial/\partial s_i = \ell_i / D`).
    reduction : {"mean", "sum", "none"}
        ``"none"`` returns one loss per position (0 where ignored).
    normalizer : float or jax.Array, optional
        With ``reduction="mean"``: the denominator :math:`D` (no gradient).
    temperature : float, default 1
        Divide the (soft-capped) logits by T > 0.
    shift : bool or int, default False
        Score position t against target t + k: True is k = 1, an integer k >= 0 as Cut
        Cross-Entropy's ``shift``; with ``reduction="none"`` the result has k positions less
        along the sequence.
    chunk_size : int, optional
        Rows per chunk (the last chunk is padded); default: a logits block of about 48 MiB
        on CPU (at least 256 rows), 256 MiB on accelerators.
    return_lse : bool, default False
        Also return the log-sum-exp of each scored row (no gradient).
    outputs : sequence of str, optional
        Per-token outputs from the same sweep: "logprob" (differentiable), "entropy",
        "prediction", "correct", "accuracy", "confidence", "lse", "z_loss"; the result is then
        a :class:`~crossent.torch.LinearCEOutput` (a pytree).
    entropy_grad : bool, default False
        Let gradients flow through the "entropy" output; off, it is a constant.
    vocab_axis : str, optional
        Inside ``jax.shard_map``: the mesh axis over which ``weight`` (and ``bias``,
        ``class_weight``) are sharded by classes, each device holding V / P rows, while
        ``hidden``, ``targets`` and ``sample_weight`` are replicated over it. Each row then
        takes two small collectives in the forward (``pmax`` of the row max, one ``psum`` of
        the per-row sums), the backward one ``psum`` of the gradient of ``hidden``; the
        result equals the unsharded one and is the same on every device.

    Returns
    -------
    jax.Array, (jax.Array, jax.Array) or LinearCEOutput
        The loss in ``hidden``'s dtype; with ``return_lse`` also the log-sum-exp; with
        ``outputs`` the loss and the outputs asked for.

    Examples
    --------
    >>> import jax, jax.numpy as jnp, optax
    >>> from crossent.jax import linear_cross_entropy
    >>> k1, k2 = jax.random.split(jax.random.key(0))
    >>> h = jax.random.normal(k1, (6, 4))
    >>> w = jax.random.normal(k2, (10, 4))
    >>> y = jnp.array([1, 3, 5, 2, 9, 0])
    >>> loss = jax.jit(lambda h, w: linear_cross_entropy(h, w, y, chunk_size=4))(h, w)
    >>> ref = optax.softmax_cross_entropy_with_integer_labels(h @ w.T, y).mean()
    >>> bool(jnp.allclose(loss, ref, rtol=1e-5))
    True
    >>> gh, gw = jax.grad(lambda h, w: linear_cross_entropy(h, w, y), argnums=(0, 1))(h, w)
    >>> gh.shape, gw.shape
    ((6, 4), (10, 4))

    Probability targets (soft labels) against optax's loss on the materialized logits:

    >>> p = jax.nn.softmax(jax.random.normal(k1, (6, 10)))
    >>> soft = linear_cross_entropy(h, w, p)
    >>> bool(jnp.allclose(soft, optax.softmax_cross_entropy(h @ w.T, p).mean(), rtol=1e-5))
    True
    """
    options = {k: v for k, v in locals().items() if k not in ("hidden", "weight", "targets")}
    layout = head_layout(jnp, hidden, weight, targets, bias)
    if sample_weight is not None:
        check_sample_weight(jnp, sample_weight, layout.loss_shape)
    if layout.out:
        return k_dimensional(
            jnp, linear_cross_entropy, layout, hidden, weight, targets, options,
            unbind=lambda x, axis: jnp.unstack(x, axis=axis),
            refused=("outputs", "shift", "vocab_axis"), dtype=compute_dtype(hidden.dtype),
            devices=False,
        )  # fmt: skip
    if not layout.batch:
        return unbatched(linear_cross_entropy, hidden, weight, targets, options)
    soft = layout.probabilities
    validate_head(jnp, hidden, weight, bias, chunk_size, devices=False)
    if soft:
        check_no_ignore_index(ignore_index)
        refuse_with_probabilities(outputs=outputs, shift=shift, vocab_axis=vocab_axis)
        validate_class_weight(jnp, hidden, class_weight, int(weight.shape[0]), devices=False)
        check_probabilities(jnp, targets, layout)
    else:
        validate_targets(jnp, hidden, targets, class_weight, int(weight.shape[0]), devices=False)
    check_reduction(reduction)
    names = check_outputs(outputs, entropy_grad=entropy_grad, return_lse=return_lse)
    check_normalizer(normalizer)
    if normalizer is not None and reduction != "mean":
        raise ValueError(
            f"normalizer is the denominator of reduction='mean'; got reduction={reduction!r}"
        )
    shards = 1 if vocab_axis is None else lax.axis_size(vocab_axis)
    vocab = weight.shape[0] * shards  # every class, over the shards
    rule = check_softmax_rule(
        vocab, label_smoothing=label_smoothing, smoothing_convention=smoothing_convention,
        z_loss=z_loss, softcap=softcap,
    )  # fmt: skip
    want = statistics(names)
    dtype = compute_dtype(hidden.dtype)
    batch_shape = layout.loss_shape
    k = check_shift(shift)
    if not soft:
        check_index_targets(jnp, targets, vocab, int(ignore_index))
    if k:
        targets = _shift(targets, k, ignore_index)
        sample_weight = None if sample_weight is None else _shift(sample_weight, k, 0)
    h2 = hidden.reshape(-1, hidden.shape[-1])
    n = h2.shape[0]
    platform = "cpu" if jax.default_backend() == "cpu" else "default"
    # On CPU the products run in float32 (there is no faster low-precision path to lose);
    # on accelerators in the input dtype, accumulating in float32.
    mm_dtype = dtype if platform == "cpu" else hidden.dtype
    st = Static(
        rule=rule,
        temperature=check_positive(temperature, "temperature"),
        chunk=chunk_size or balanced_chunk(n, weight.shape[0], platform),
        entropy="entropy" in want,
        top="max" in want,
        mm_dtype=mm_dtype,
        dtype=hidden.dtype,
        axis=vocab_axis,
    )
    cw = None if class_weight is None else lax.stop_gradient(class_weight.astype(dtype))
    if soft:  # every row scored and counted once (PyTorch's mean over samples)
        tg = index_target_data(jnp, jnp.zeros(n, jnp.int32), None, None, dtype)
    else:
        tg = index_target_data(
            jnp, targets.reshape(-1), cw if vocab_axis is None else None, int(ignore_index), dtype
        )
    w_t = tg.w_t
    if cw is not None and vocab_axis is not None:  # w[y] lives on the shard holding class y
        local = tg.index - lax.axis_index(vocab_axis) * weight.shape[0]
        here = (local >= 0) & (local < weight.shape[0])
        w_y = jnp.where(here, cw[jnp.clip(local, 0, weight.shape[0] - 1)], 0.0)
        w_t = jnp.where(tg.valid, lax.psum(w_y, vocab_axis), 0.0)
    y = lax.stop_gradient(targets.reshape(n, -1)) if soft else None
    rows = Rows(tg.index, tg.valid, w_t, cw, y)
    sw = None if sample_weight is None else sample_weight.reshape(-1).astype(dtype)
    norm = None if normalizer is None else jnp.asarray(normalizer, dtype)
    d = lax.stop_gradient(denominator(jnp.sum(w_t), norm))
    if reduction != "none" and not ("logprob" in want or entropy_grad):
        # one scalar upstream gradient: the gradients are computed in the forward sweep
        loss, logprob, lse, entropy, top, argmax = reduced(
            st, reduction, h2, weight, bias, rows, sw, d
        )
    else:  # an upstream gradient per row: the backward sweep recomputes the logits
        loss_rows, logprob, lse, entropy, top, argmax = sweep(st, h2, weight, bias, rows)
        loss = reduce(jnp, loss_rows, reduction, d, sample_weight=sw)
    check_overflow(jnp, lse, (h2, weight, bias), st.temperature)
    loss = loss.astype(hidden.dtype)
    lse, top = lax.stop_gradient(lse), lax.stop_gradient(top)
    if "entropy" in want and not entropy_grad:
        entropy = lax.stop_gradient(entropy)

    def per_position(x: Any) -> Any:
        """A per-row result in the targets' shape, without the k unscored last positions."""
        x = x.reshape(batch_shape)
        return x[..., : max(x.shape[-1] - k, 0)] if k else x

    if reduction == "none":
        loss = per_position(loss)
    if names is None:
        return (loss, per_position(lse)) if return_lse else loss
    z_out = None
    if "z_loss" in want:
        z_rows = z_loss_rows(jnp, rule, lse=lse, w_t=w_t, valid=tg.valid)
        z_out = lax.stop_gradient(reduce(jnp, z_rows, reduction, d, sample_weight=sw))
        z_out = per_position(z_out) if reduction == "none" else z_out
    stats = {
        "lse": per_position(lse),
        "logprob": per_position(logprob) if "logprob" in want else None,
        "entropy": per_position(entropy) if "entropy" in want else None,
        "argmax": per_position(argmax) if "max" in want else None,
        "top_logit": per_position(top) if "max" in want else None,
        "z_loss": z_out,
    }
    scored = per_position(targets)
    return assemble(jnp, names, loss, stats, targets=scored, ignore_index=int(ignore_index))
