"""The CPU fast path: cache-blocked loops for large NumPy arrays (and torch CPU tensors).

Array API code cannot write into an existing buffer (there is no ``out=``), so on NumPy every
``z - m`` and ``exp`` allocates and page-faults a fresh array as large as the logits. The two
softmax kernels walk the rows in blocks that stay in cache and reuse one buffer, which makes the
row log-sum-exp about twice as fast on a (65536, 1000) float32 array. :func:`map_blocks` applies
an element-wise rule (written once, in :mod:`crossent._semantics`) block by block, so that its
temporaries are cache-sized and reused instead of array-sized: 3-4x faster for the binary
cross-entropy. They are used only for large C-contiguous inputs; everything else takes the
Array API path.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import Any

import numpy as np

BLOCK_ELEMENTS = 1 << 18  # ~1 MB of float32 per block: fits in L2 on current CPUs
MIN_ELEMENTS = 1 << 16  # below this the Array API path is as fast


def applies(xp: Any, x: Any) -> bool:
    """Whether ``x`` (classes last) is a NumPy array worth the blocked kernels."""
    return (
        getattr(xp, "__name__", "") == "array_api_compat.numpy"
        and x.ndim == 2
        and x.size >= MIN_ELEMENTS
        and x.flags.c_contiguous
    )


def blockable(xp: Any, x: Any, *others: Any) -> bool:
    """Whether an element-wise rule over ``x`` is worth :func:`map_blocks`: a large C-contiguous
    NumPy array, or a torch CPU tensor outside ``torch.compile`` (which fuses it itself) and
    outside autograd's recording (block-wise writes and a float sum would cut the graph)."""
    name = getattr(xp, "__name__", "")
    if name == "array_api_compat.numpy":
        return x.ndim >= 1 and x.size >= MIN_ELEMENTS and x.flags.c_contiguous
    if name == "array_api_compat.torch":
        torch = sys.modules["torch"]
        recording = torch.is_grad_enabled() and any(
            getattr(a, "requires_grad", False) for a in (x, *others)
        )
        return (
            not torch.compiler.is_compiling()
            and not recording
            and x.device.type == "cpu"
            and x.ndim >= 1
            and x.numel() >= MIN_ELEMENTS
            and x.is_contiguous()
        )
    return False


def fits_blocks(x: Any, *others: Any) -> bool:
    """Whether every one of ``others`` is None, has ``x``'s shape, or broadcasts along its last
    axis only (what :func:`map_blocks` can slice)."""
    cols = int(x.shape[-1]) if x.ndim else 1
    return all(
        o is None
        or tuple(o.shape) == tuple(x.shape)
        or (o.ndim <= 1 and int(o.size if isinstance(o, np.ndarray) else o.numel()) in (1, cols))
        for o in others
    )


def map_blocks(
    fn: Callable[..., Any], x: Any, *others: Any, out: Any = None, total: bool = False
) -> Any:
    """``fn(x, *others)`` of an element-wise ``fn``, computed over cache-sized blocks of rows.

    ``others`` have ``x``'s shape (sliced like it), or broadcast along its last axis, or are
    None. Returns the result in ``out`` (a new array like ``x`` if None), or with ``total`` its
    sum as a Python float (accumulated in double precision, the array never formed).
    """
    cols = int(x.shape[-1]) if x.ndim else 1
    flat = x.reshape(-1, cols)
    full = [o is not None and tuple(o.shape) == tuple(x.shape) for o in others]
    flat_others = [o.reshape(-1, cols) if f else o for o, f in zip(others, full, strict=True)]
    if not total and out is None:
        out = x.new_empty(x.shape) if hasattr(x, "new_empty") else np.empty_like(x)
    flat_out = None if total else out.reshape(-1, cols)
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    acc = 0.0
    for start in range(0, int(flat.shape[0]), step):
        rows = slice(start, start + step)
        args = [o[rows] if f else o for o, f in zip(flat_others, full, strict=True)]
        block = fn(flat[rows], *args)
        if flat_out is None:
            acc += float(block.sum())
        else:
            flat_out[rows] = block
    return acc if total else out


def _blocks(rows: int, cols: int) -> range:
    return range(0, rows, max(1, BLOCK_ELEMENTS // max(cols, 1)))


def row_logsumexp(z: np.ndarray) -> np.ndarray:
    """log(sum(exp(z))) of each row of a 2-D array, shifted by the row max."""
    rows, cols = z.shape
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    out = np.empty(rows, dtype=z.dtype)
    buffer = np.empty((min(step, rows), cols), dtype=z.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):  # log(0) = -inf for all -inf rows
        for start in _blocks(rows, cols):
            _lse_block(z[start : start + step], buffer, out[start : start + step])
    return out


def _lse_block(block: np.ndarray, buffer: np.ndarray, out: np.ndarray) -> None:
    work = buffer[: block.shape[0]]
    m = block.max(axis=1, keepdims=True)
    m[~np.isfinite(m)] = 0  # as the Array API path: a +-inf max shifts by 0, giving +-inf
    np.subtract(block, m, out=work)
    np.exp(work, out=work)
    out[:] = np.log(work.sum(axis=1)) + m[:, 0]


def softmax_with_lse(
    z: np.ndarray, row_scale: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """``softmax(z) * row_scale`` and the row log-sum-exp, in one blocked pass over ``z``.

    Rows whose max is not finite come out NaN here; the caller takes the safe path for them.
    """
    rows, cols = z.shape
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    out = np.empty_like(z)
    lse = np.empty(rows, dtype=z.dtype)
    with np.errstate(divide="ignore", invalid="ignore"):
        for start in _blocks(rows, cols):
            stop = start + step
            work = out[start:stop]
            m = z[start:stop].max(axis=1, keepdims=True)
            np.subtract(z[start:stop], m, out=work)
            np.exp(work, out=work)
            total = work.sum(axis=1)
            lse[start:stop] = np.log(total) + m[:, 0]
            factor = 1 / total if row_scale is None else row_scale[start:stop] / total
            work *= factor[:, None]
    return out, lse


def subtract_at(g: np.ndarray, index: np.ndarray, amount: np.ndarray) -> np.ndarray:
    """``g[i, index[i]] -= amount[i]`` in place (no one-hot mask over the whole array)."""
    rows = np.arange(g.shape[0])
    g[rows, index] -= amount
    return g


def focal_margin(z: np.ndarray, index: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(d = LSE of the other classes - z_t, the rivals' sum of exp(z - max)) of each row.

    One blocked pass: exp(z - max) once, the target's term set to 0 before the sum, so the
    rivals' sum never comes from ``total - target`` (no cancellation where p_t -> 1). Rows whose
    max is not finite, or whose rivals' sum is so small that its terms may be subnormal, are for
    the caller to redo on the Array API path.
    """
    rows, cols = z.shape
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    d = np.empty(rows, dtype=z.dtype)
    rivals = np.empty(rows, dtype=z.dtype)
    work = np.empty((min(step, rows), cols), dtype=z.dtype)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        for start in _blocks(rows, cols):
            block = z[start : start + step]
            n = block.shape[0]
            here = np.arange(n)
            m = block.max(axis=1)
            np.subtract(block, m[:, None], out=work[:n])
            np.exp(work[:n], out=work[:n])
            work[here, index[start : start + n]] = 0
            total = work[:n].sum(axis=1)
            rivals[start : start + n] = total
            d[start : start + n] = np.log(total) + m - block[here, index[start : start + n]]
    return d, rivals


def focal_gradient(z: np.ndarray, index: np.ndarray, slope: np.ndarray) -> np.ndarray:
    """``slope * (softmax of the rivals - onehot(t))`` per row, in one blocked pass over z."""
    rows, cols = z.shape
    step = max(1, BLOCK_ELEMENTS // max(cols, 1))
    out = np.empty_like(z)
    with np.errstate(divide="ignore", invalid="ignore", under="ignore"):
        for start in _blocks(rows, cols):
            block = z[start : start + step]
            g = out[start : start + step]
            n = block.shape[0]
            here = np.arange(n)
            t = index[start : start + n]
            np.subtract(block, block.max(axis=1, keepdims=True), out=g)
            np.exp(g, out=g)
            g[here, t] = 0
            g *= (slope[start : start + n] / g.sum(axis=1))[:, None]
            g[here, t] = -slope[start : start + n]
    return out


def uniform_bin_index(x: np.ndarray, edges: np.ndarray, *, right_closed: bool) -> np.ndarray:
    """``searchsorted(edges[1:-1], x)`` for the equal-width edges ``float(i / B)``, faster.

    ``np.searchsorted`` of unsorted keys costs about 20 ns a value (a branchy binary search);
    ``floor(B x)`` lands within one bin of the answer (both it and the edges are rounded to
    the last bit only), and comparing ``x`` with the two edges of that bin settles it, so the
    index is the same to the bit as the binary search's in about 6 ns a value.
    ``right_closed`` is ``side="left"`` (a value on an edge goes to the bin below it).
    """
    n_bins = int(edges.shape[0]) - 1
    guess = np.multiply(x, x.dtype.type(n_bins)).astype(np.intp)
    np.clip(guess, 0, n_bins - 1, out=guess)
    lower = edges.copy()  # lower[g] = edges[g], upper[g] = edges[g + 1]; the outer ones never move
    lower[0] = -np.inf
    upper = np.append(edges[1:-1], np.inf).astype(edges.dtype)
    bound = np.take(lower, guess)
    below = x <= bound if right_closed else x < bound
    np.take(upper, guess, out=bound)
    above = x > bound if right_closed else x >= bound
    guess -= below
    guess += above
    return guess
