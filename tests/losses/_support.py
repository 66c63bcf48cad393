"""Helpers shared by the loss tests: backends, float64 comparisons, and the gradient battery.

Every loss file lists its gradient cases (:class:`Case`) and runs the same three checks on them:
the closed form on every backend equals torch autograd of an independent float64 reference, the
closed form equals central finite differences of crossent's own loss (which matches the
reference), and torch autograd through crossent's torch path equals the closed form.
"""

from __future__ import annotations

import itertools
from typing import Any, NamedTuple

import numpy as np
import pytest

import crossent as ce
from conftest import _load, to_np

torch = pytest.importorskip("torch")

REDUCTIONS = ["mean", "sum", "none"]
FAST = ("numpy", "torch")
SLOW = ("array_api_strict", "jax")  # jax dispatch costs ~0.3 s per new shape: a sample only


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def to_dim1(a):
    """crossent's (..., K) layout -> PyTorch's (N, K, d1, ...)."""
    return np.moveaxis(a, -1, 1) if a.ndim > 2 else a


def load(name):
    try:
        return _load(name)
    except ImportError:
        pytest.skip(f"{name} is not installed")


def over_backends(grid, every=8, everywhere=None):
    """(backend, *combo): the whole grid on NumPy and PyTorch, every 8th combo on the others,
    and every combo on every backend where ``everywhere(combo)`` holds."""
    params = []
    for i, combo in enumerate(grid):
        params += [(b, *combo) for b in FAST]
        full = everywhere is not None and everywhere(combo)
        params += [(b, *combo) for j, b in enumerate(SLOW) if full or (i + 2 * j) % every == 0]
    return params


def mpmath_logit_grid():
    """(mpmath at 50 digits, logits, targets): every pair of logits from -700 to 700 (confident
    right and wrong ones) and targets 0, 0.3 and 1, as float64 arrays."""
    mpmath = pytest.importorskip("mpmath")
    mpmath.mp.dps = 50
    zs = [-700.0, -60.0, -30.0, -5.0, -0.5, 0.0, 0.5, 5.0, 30.0, 60.0, 700.0]
    ys = [0.0, 0.3, 1.0]
    z, y = (np.array(v, dtype=np.float64) for v in zip(*itertools.product(zs, ys), strict=True))
    return mpmath, z, y


def close(got, want, rtol=1e-12, atol=1e-12):
    got = to_np(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


def reduce_np(per, reduction, denom=None):
    """A float64 reduction of per-sample losses; "mean" divides by ``denom`` (default: count)."""
    denom = per.size if denom is None else denom
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


def reduce_t(per, reduction, denom=None):
    denom = per.numel() if denom is None else denom
    return {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]


# ------------------------------------------------------------------------ gradient battery


class Case(NamedTuple):
    """A gradient case: loss ``name`` at ``(x, t)`` with ``opts``; ``ref`` is a torch float64
    reference of the loss, written independently of crossent (differentiable)."""

    id: str
    name: str
    ref: Any
    x: np.ndarray
    t: np.ndarray
    opts: dict


def params(cases):
    return pytest.mark.parametrize("case", cases, ids=[c.id for c in cases])


def total(out):
    return out.sum() if out.ndim else out


def finite_differences(fn, x, h=1e-6):
    g = np.zeros_like(x)
    flat, gflat = x.reshape(-1), g.reshape(-1)
    for i in range(flat.size):
        old = flat[i]
        flat[i] = old + h
        up = float(np.sum(fn(x)))
        flat[i] = old - h
        down = float(np.sum(fn(x)))
        flat[i] = old
        gflat[i] = (up - down) / (2 * h)
    return g


def on(xp, opts):
    """``opts`` with its arrays moved to the library ``xp``."""
    return {k: xp.asarray(v) if isinstance(v, np.ndarray) else v for k, v in opts.items()}


def reference_gradient(case):
    """d sum(reference) / d x by torch autograd, in float64."""
    z = t64(case.x.copy()).requires_grad_(True)
    total(case.ref(z, t64(case.t), **case.opts)).backward()
    return z.grad.numpy()


def check_closed_form_equals_autograd_of_reference(xp, case):
    """crossent.grad.<loss> on ``xp`` == torch autograd of the independent reference."""
    closed = getattr(ce.grad, case.name)(
        xp.asarray(case.x), xp.asarray(case.t), **on(xp, case.opts)
    )
    assert type(closed) is type(xp.asarray(case.x))
    closed = to_np(closed)
    assert closed.shape == case.x.shape
    np.testing.assert_allclose(closed, reference_gradient(case), rtol=1e-10, atol=1e-12)


def check_closed_form_equals_finite_differences(case):
    fn = getattr(ce, case.name)
    x, t, opts = case.x, case.t, case.opts
    # the loss itself agrees with the reference ...
    want = case.ref(t64(x), t64(t), **opts).numpy()
    np.testing.assert_allclose(to_np(fn(x, t, **opts)), want, rtol=1e-12, atol=1e-12)
    # ... and its closed-form gradient with its own finite differences
    numerical = finite_differences(lambda v: to_np(fn(v, t, **opts)), x.copy())
    closed = to_np(getattr(ce.grad, case.name)(x, t, **opts))
    np.testing.assert_allclose(closed, numerical, rtol=1e-6, atol=1e-7)


def check_autograd_through_crossent_equals_closed_form(case):
    z = t64(case.x.copy()).requires_grad_(True)
    total(getattr(ce, case.name)(z, t64(case.t), **on(torch, case.opts))).backward()
    closed = to_np(getattr(ce.grad, case.name)(case.x, case.t, **case.opts))
    np.testing.assert_allclose(z.grad.numpy(), closed, rtol=1e-10, atol=1e-12)
