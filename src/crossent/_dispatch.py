"""The one place that chooses how a loss is computed: NumPy fast kernels, torch autograd
Functions, or the generic Array API code (after array-api-extra's ``_delegation.py``).

Each public loss validates its inputs once (:mod:`crossent.losses._problem`), then asks here:

- :func:`torch_functions`: for torch tensors, the module of autograd Functions with closed-form
  backward passes (imported on first use: ``import crossent`` never imports torch);
- :func:`jax_functions`: for JAX arrays, the module of ``jax.custom_vjp`` losses;
- :func:`row_logsumexp`, :func:`scaled_softmax`, :func:`subtract_at`: the row statistics of a
  softmax, from the cache-blocked NumPy kernels (:mod:`crossent._fast`) where they apply, else
  from the generic code; :func:`elementwise`: an element-wise rule over cache-sized blocks;
- :func:`when_finite`: the guards for +-inf inputs only where some input is infinite;
- :func:`bincount` and :func:`bin_index`: the per-bin sums of the calibration metrics, from
  ``np.bincount``, ``torch.bincount`` or ``jnp.bincount`` where the library has one (the Array
  API has none), and the bin of each value, by ``searchsorted`` or NumPy's faster equivalent
  for equal-width bins; :func:`sparse_bin_sums`: NumPy's per-bin sums of a softmax's many
  small probabilities, binning only the few above the first edge.
"""

from __future__ import annotations

import math
import sys
from collections.abc import Callable
from types import ModuleType
from typing import Any

import numpy as np

from . import _fast
from ._namespace import Array, all_finite, default_int
from ._primitives import _lse, _shift_by_max


def torch_functions(xp: Any) -> ModuleType | None:
    """``crossent.torch._functions`` for the torch namespace, else None."""
    # By name: array_api_compat's namespace tests are cached functions torch.compile warns on.
    if getattr(xp, "__name__", "") != "array_api_compat.torch":
        return None
    from .torch import _functions

    return _functions


def jax_functions(xp: Any) -> ModuleType | None:
    """``crossent.jax._functions`` for JAX's namespace, else None."""
    if getattr(xp, "__name__", "") != "jax.numpy":
        return None
    from .jax import _functions

    return _functions


def row_logsumexp(xp: Any, z: Array, *, axis: int = -1, keepdims: bool = False) -> Array:
    """The log-sum-exp along ``axis`` (a +inf entry gives +inf, a row of -inf gives -inf)."""
    if axis % max(z.ndim, 1) == z.ndim - 1 and _fast.applies(xp, z):
        lse = _fast.row_logsumexp(z)
        return lse[:, None] if keepdims else lse
    return _lse(xp, z, axis, keepdims)


def scaled_softmax(xp: Any, z: Array, scale: Array) -> tuple[Array, Array]:
    """``(softmax(z) * scale[..., None], log-sum-exp)`` of classes-last ``z``.

    Rows with an infinite log-sum-exp get their limit (:func:`crossent._semantics.limit_rows`),
    and the log-sum-exp returned is that of the limit (finite).
    """
    if _fast.applies(xp, z):
        p, lse = _fast.softmax_with_lse(z, scale)
        if all_finite(xp, lse):
            return p, lse
    shifted = _shift_by_max(xp, z)
    log_sum = xp.log(xp.sum(xp.exp(shifted), axis=-1, keepdims=True))
    lse = log_sum[..., 0] + _finite_max(xp, z)
    return xp.exp(shifted - log_sum) * scale[..., None], lse


def _finite_max(xp: Any, z: Array) -> Array:
    m = xp.max(z, axis=-1)
    return xp.where(xp.isfinite(m), m, xp.zeros_like(m))


def subtract_at(xp: Any, g: Array, index: Array, amount: Array) -> Array:
    """``g[..., index] -= amount`` along the last axis (in place on large NumPy arrays)."""
    if _fast.applies(xp, g):
        return _fast.subtract_at(g, index, amount)
    onehot = xp.astype(index[..., None] == xp.arange(g.shape[-1]), g.dtype)
    return g - amount[..., None] * onehot


def elementwise(
    xp: Any, rule: Any, x: Array, *others: Array | None, total: bool = False, pair: bool = False
) -> Any:
    """``rule(x, *others)`` of an element-wise rule, or with ``total`` its sum; with ``pair``
    the rule returns two arrays and this (the first, the sum of the second).

    Large CPU arrays go through cache-sized blocks (:func:`crossent._fast.map_blocks`), whose
    temporaries stay in cache instead of page-faulting array-sized ones; the sum is then
    accumulated block by block without forming the array.
    """
    if _fast.blockable(xp, x, *others) and _fast.fits_blocks(x, *others):
        if pair:
            out, summed = _fast.map_blocks(rule, x, *others, pair=True)
            return out, xp.asarray(summed, dtype=x.dtype)
        if total:
            return xp.asarray(_fast.map_blocks(rule, x, *others, total=True), dtype=x.dtype)
        return _fast.map_blocks(rule, x, *others)
    if pair:
        first, second = rule(x, *others)
        return xp.broadcast_to(first, x.shape), xp.sum(xp.broadcast_to(second, x.shape))
    out = xp.broadcast_to(rule(x, *others), x.shape)
    return xp.sum(out) if total else out


def focal_margin(xp: Any, z: Array, index: Array) -> tuple[Array, Array | None]:
    """(d = LSE of the other classes - z_t per row, the rivals' shifted logits or None).

    The blocked NumPy kernel where it applies and every row is safe for it (finite, rivals'
    terms far from subnormal); else the Array API path, which also returns the logits of the
    rivals shifted by the max (-inf at the target) that its gradient needs.
    """
    if _fast.applies(xp, z):
        d, rivals = _fast.focal_margin(z, index)
        tiny = float(xp.finfo(z.dtype).tiny) * 2.0**30
        if all_finite(xp, d) and bool(xp.all(rivals > tiny)):
            return d, None
    shifted = _shift_by_max(xp, z)
    is_target = index[..., None] == xp.arange(z.shape[-1])
    others = xp.where(is_target, xp.full_like(shifted, -math.inf), shifted)
    z_t = xp.take_along_axis(shifted, index[..., None], axis=-1)[..., 0]
    return _lse(xp, others, -1) - z_t, others


def focal_gradient(xp: Any, z: Array, index: Array, slope: Array, others: Array | None) -> Array:
    """``slope * (softmax of the rivals - onehot(t))`` per row (``others`` from focal_margin)."""
    if others is None:
        return _fast.focal_gradient(z, index, slope)
    lse_others = _lse(xp, others, -1, keepdims=True)
    # Other classes all at -inf (the target holds all the mass): rivals 0, not -inf - -inf
    lse_others = xp.where(xp.isfinite(lse_others), lse_others, xp.zeros_like(lse_others))
    onehot = xp.astype(index[..., None] == xp.arange(z.shape[-1]), z.dtype)
    return slope[..., None] * (xp.exp(others - lse_others) - onehot)


def when_finite(xp: Any, x: Array, fast: Callable[[], Any], guarded: Callable[[], Any]) -> Any:
    """``fast()`` if every value of ``x`` can be read and is finite, else ``guarded()``.

    The guards that make +-inf inputs give their limits (``0 * inf = 0`` and the like) cost
    full-size ``where`` passes: one reduction decides instead. Data that cannot be read
    (tracers, torch.compile, CUDA) takes the guarded branch; the JAX losses with a
    ``custom_vjp`` branch with ``lax.cond`` themselves (autodiff through a ``cond`` would keep
    the residuals of both branches).
    """
    return fast() if all_finite(xp, x) else guarded()


def bincount(xp: Any, index: Array, *, length: int, weights: Array | None = None) -> Array:
    """``out[j] = sum of weights[i] (or 1) over index[i] == j`` for a 1-D ``index`` in [0, length).

    Integer counts without ``weights``; with them, sums in the weights' dtype (NumPy: float64).
    Libraries without a bincount get a stable sort of the index and differences of the
    cumulative sums at the segment boundaries.
    """
    name = getattr(xp, "__name__", "")
    if name == "array_api_compat.numpy":
        return np.bincount(index, weights=weights, minlength=length)
    if name == "array_api_compat.torch":
        torch = sys.modules["torch"]
        return torch.bincount(index, weights=weights, minlength=length)
    if name == "jax.numpy":
        return xp.bincount(index, weights=weights, length=length)
    if name == "array_api_compat.dask.array":
        # chunk by chunk, then the per-chunk counts are added: no global sort of the batch
        return sys.modules["dask.array"].bincount(index, weights=weights, minlength=length)
    order = xp.argsort(index, stable=True)
    sorted_index = xp.take(index, order)
    bounds = xp.searchsorted(sorted_index, xp.arange(length + 1, dtype=index.dtype), side="left")
    if weights is None:
        return bounds[1:] - bounds[:-1]
    running = xp.cumulative_sum(xp.take(weights, order), include_initial=True)
    return xp.take(running, bounds[1:]) - xp.take(running, bounds[:-1])


def bin_index(
    xp: Any, x: Array, inner: Array, *, right_closed: bool, ones_in_own_bin: bool = False
) -> Array:
    """The bin of each value of ``x`` given the sorted inner edges ``inner`` (1-D).

    The one rule for which bin a value goes to. ``right_closed`` counts the edges below the
    value (``side="left"``: bins ``(lo, hi]``), else the edges at or below it
    (``side="right"``: bins ``[lo, hi)``); ``ones_in_own_bin`` sends a value of 1 to an extra
    bin ``B`` after the ``B`` bins of the edges (torchmetrics). Same shape as ``x``.
    """
    n_bins = int(inner.shape[0]) + 1
    idx = _searched_bin(xp, x, inner, n_bins, right_closed)
    if ones_in_own_bin:
        idx = xp.where(x >= 1, xp.full_like(idx, n_bins), idx)
    return idx


def _searched_bin(xp: Any, x: Array, inner: Array, n_bins: int, right_closed: bool) -> Array:
    if n_bins == 1:
        return xp.zeros(x.shape, dtype=default_int(xp))
    if getattr(xp, "__name__", "") == "array_api_compat.numpy":
        edges = np.concatenate([[0.0], inner, [1.0]]).astype(x.dtype)
        if np.array_equal(edges, np.asarray([i / n_bins for i in range(n_bins + 1)], x.dtype)):
            return _fast.uniform_bin_index(x, edges, right_closed=right_closed)
    side = "left" if right_closed else "right"
    if getattr(xp, "__name__", "") == "array_api_compat.torch":
        # torch copies (and warns about) a strided column; the copy is the same, said once
        x, inner = x.contiguous(), inner.contiguous()
    flat = xp.searchsorted(inner, xp.reshape(x, (-1,)), side=side)
    return xp.reshape(flat, x.shape)


def sparse_bin_sums(
    xp: Any, conf: Array, hit: Array, edges: Array, *, right_closed: bool, ones_in_own_bin: bool
) -> tuple[Array, Array, Array] | None:
    """Flat per-(column, bin) count, sum and hits binning only the values above the first
    edge (NumPy, edges shared by every column, most values in the first bin), else None."""
    if not (
        getattr(xp, "__name__", "") == "array_api_compat.numpy"
        and edges.ndim == 1
        and int(edges.shape[0]) > 2
        and int(conf.shape[1]) > 1
    ):
        return None
    inner = edges[1:-1]

    def bins(values: Array) -> Array:
        return bin_index(
            xp, values, inner, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin
        )

    return _fast.sparse_bin_sums(
        conf, hit, edges, bins, right_closed=right_closed, ones_in_own_bin=ones_in_own_bin
    )
