"""Shared fixtures: the ``xp`` fixture runs a test on every installed array library."""

from __future__ import annotations

import importlib
import os

import numpy as np
import pytest

BACKENDS = ("numpy", "array_api_strict", "torch", "jax")


def _load(name: str):
    if name == "jax":
        os.environ.setdefault("JAX_PLATFORMS", "cpu")
        jax = importlib.import_module("jax")
        jax.config.update("jax_enable_x64", True)
        return importlib.import_module("jax.numpy")
    return importlib.import_module(name)


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array library under test. CI installs all four; a developer may lack one."""
    try:
        return _load(request.param)
    except ImportError:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"{request.param} is not installed")


def to_np(x) -> np.ndarray:
    """A float64/int NumPy copy of an array of any library, for comparisons."""
    if hasattr(x, "detach"):
        x = x.detach().cpu()
        if x.dtype.is_floating_point:
            x = x.double()
        return x.numpy()
    try:
        return np.asarray(x)
    except (TypeError, ValueError, RuntimeError):
        return np.from_dlpack(x)
