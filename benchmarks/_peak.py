"""The time and peak memory of one call, measured the same way by every benchmark.

Peak memory is what the call adds on top of what the process holds before it: on CUDA
``torch.cuda.max_memory_allocated`` less the memory allocated before the call; on CPU the growth
of the resident set's high-water mark (Linux: VmHWM reset to the current RSS by writing 5 to
/proc/self/clear_refs, after ``malloc_trim`` hands freed heap memory back, so only the call's own
allocations count). It sees every allocator (NumPy's, torch's, BLAS threads'), which
tracemalloc does not. Off Linux it falls back to the growth of ``ru_maxrss``, which undercounts
when the setup peaked higher; the returned ``how`` says which was used.
"""

from __future__ import annotations

import ctypes
import gc
import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Measured:
    """One call: its result, wall-clock seconds, peak bytes above the start, and how measured."""

    result: Any
    seconds: float
    peak_bytes: int
    how: str


def trim_heap() -> None:
    """Give freed heap memory back to the OS, so the next peak counts only new allocations."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def _status_bytes(field: str) -> int:
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith(field + ":"))
    return int(line.split()[1]) * 1024


def _maxrss_bytes() -> int:
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale


def measure(call: Callable[[], Any], *, device: str = "cpu") -> Measured:
    """Run ``call()`` once and measure its time and peak memory (see the module docstring)."""
    if device == "cuda":
        import torch

        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before, how = torch.cuda.memory_allocated(), "cuda max_memory_allocated"
    else:
        trim_heap()
        try:
            with open("/proc/self/clear_refs", "w") as f:
                f.write("5")  # VmHWM := VmRSS
            before, how = _status_bytes("VmRSS"), "VmHWM - VmRSS before"
        except OSError:
            before, how = _maxrss_bytes(), "ru_maxrss growth (undercounts)"
    start = time.perf_counter()
    result = call()
    if device == "cuda":
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    if device == "cuda":
        peak = torch.cuda.max_memory_allocated()
    elif how.startswith("VmHWM"):
        peak = _status_bytes("VmHWM")
    else:
        peak = _maxrss_bytes()
    return Measured(result, seconds, peak - before, how)
