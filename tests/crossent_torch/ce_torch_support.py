"""Helpers shared by the tests of crossent's torch path (tests/crossent_torch/test_*.py).

A plain module, not a conftest.py: a conftest.py here would be imported as ``conftest``
ahead of tests/conftest.py and break the other tests' ``from conftest import to_np``; and no
``__init__.py`` here, since pytest would import this folder as the package ``torch``.
"""

from __future__ import annotations

import pytest

pytest.importorskip("torch.nn")  # "torch" alone could resolve to this folder (a namespace)

import torch

F64 = torch.float64

# torch 2.13's Dynamo warns on tracing any autograd.Function (its own internal instantiation).
DYNAMO_WARNING = "ignore:.*should not be instantiated:DeprecationWarning"

CPU_PATHS = ["one-kernel", "row-blocks"]


def use_cpu_path(name: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run the torch path's CPU loops as one kernel, or in the row blocks large inputs take.

    The torch path sees (rows, classes) with the classes last: with 20 elements per block,
    (6, 5) runs in blocks of 4 + 2 rows, (7, 5) in 4 + 3, (3, 5, 2, 3) (18 rows of 5) and
    (3, 5, 4) (12 rows of 5) in blocks of 4, and (5,) in one kernel.
    """
    from crossent.torch import _functions

    if name == "row-blocks":
        monkeypatch.setattr(_functions, "CPU_BLOCK", 20)
        assert _functions._row_blocks(torch.empty(6, 5)) == 4
        assert _functions._row_blocks(torch.empty(1, 5)) is None
    else:
        assert _functions._row_blocks(torch.empty(6, 5)) is None


def pair(x: torch.Tensor, dtype: torch.dtype) -> tuple[torch.Tensor, torch.Tensor]:
    """A leaf in ``dtype`` for crossent, and a float64 leaf of the same values for the reference."""
    a = x.detach().clone().to(dtype).requires_grad_()
    return a, a.detach().to(F64).requires_grad_()


def tol(dtype: torch.dtype) -> dict:
    return {"rtol": 2e-2, "atol": 2e-2} if dtype == torch.bfloat16 else {"rtol": 1e-5, "atol": 1e-6}


def close(got: torch.Tensor, want: torch.Tensor, dtype: torch.dtype) -> None:
    assert got.dtype == dtype
    torch.testing.assert_close(got.to(F64), want.detach(), **tol(dtype))


def backward_both(out: torch.Tensor, ref: torch.Tensor) -> None:
    """Backward through both with the same upstream gradient (random for reduction='none')."""
    u = torch.randn(ref.shape, dtype=F64, generator=torch.Generator().manual_seed(1))
    (out.to(F64) * u).sum().backward()
    (ref * u).sum().backward()
