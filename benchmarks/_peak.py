"""What every benchmark measures and records the same way: the time and peak memory of one
call (:func:`measure`, in a fresh child process: :func:`run_child`), the versions of the
libraries (:func:`versions`), the JSON file (:func:`write_json`).

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
import importlib
import importlib.util
import json
import platform
import resource
import subprocess
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


def run_child(cmd: list[str]) -> dict[str, Any]:
    """Run a benchmark's child process; the JSON object it printed last, or a failed status
    with the last line of its stderr."""
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    lines = [line for line in proc.stdout.splitlines() if line.startswith("{")]
    if proc.returncode != 0 or not lines:
        tail = (proc.stderr.strip().splitlines() or ["no output"])[-1][:200]
        return {"status": f"failed (exit {proc.returncode}): {tail}"}
    result: dict[str, Any] = json.loads(lines[-1])
    return result


def versions(*modules: str) -> dict[str, str]:
    """Python's version and each module's ``__version__`` ("missing" or "not importable")."""
    out = {"python": platform.python_version()}
    for module in modules:
        try:
            out[module] = importlib.import_module(module).__version__
        except Exception:  # a peer's import may fail in many ways
            out[module] = "not importable" if importlib.util.find_spec(module) else "missing"
    return out


def write_json(path: str | None, config: dict[str, Any], results: Any) -> None:
    """Write ``{"config": ..., "results": ...}`` to ``path`` (nothing when None) and say so."""
    if path:
        with open(path, "w") as f:
            json.dump({"config": config, "results": results}, f, indent=2)
        print(f"wrote {path}")
