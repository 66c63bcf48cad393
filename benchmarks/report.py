"""Time and peak memory of ``crossent report`` on synthetic logits of growing size.

For each size, seeded synthetic float32 logits (N x K, default K = 1000) and their labels are
written once to a file, then the real command (``crossent report FILE -o PAGE.html --json``,
HTML page and figures included) runs in a fresh Python process. The wall time is the whole
process, interpreter start and imports included; the peak memory is that process's resident
high-water mark (``ru_maxrss`` from ``os.wait4``: every allocator, the input array included).

The logits are ``2 z`` for a well-separated ``z`` (a standard normal plus 3 on a random class)
and the labels are drawn from ``softmax(z)`` by the Gumbel-max trick, so the model is
over-confident by a temperature of 2 and the report's cross-fitted temperature has work to do.
Sizes given with ``--sizes`` go into an uncompressed ``.npz`` (the file is read whole, as
``np.load`` does); sizes given with ``--mapped`` into a ``.npy`` pair that the report reads
through a memory map, a block of rows at a time.

Usage::

    python benchmarks/report.py [--sizes 20000 200000] [--mapped 1000000] [--classes 1000]
                                [--dir DIR] [--json PATH] [--profile DIR]

Run it against other code with ``PYTHONPATH=/path/to/other/src``; the child process inherits the
environment. ``--profile DIR`` runs each report under cProfile and writes ``DIR/report-N.prof``
(read with ``python -m pstats``); the times then include the profiler's overhead. Numbers depend
on the machine and its load; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

CHUNK = 20_000  # rows generated at a time (the same data whatever the size of the machine)
SEED = 0

CHILD = """
import sys
sys.argv = ["crossent", *sys.argv[1:]]
profile = {profile!r}
from crossent._entry import main
if profile:
    import cProfile
    try:
        cProfile.run("main()", profile)
    except SystemExit as stop:
        raise SystemExit(stop.code) from None
else:
    main()
"""


def _chunk(n: int, k: int, start: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng([SEED, start // CHUNK])
    rows = min(CHUNK, n - start)
    z = rng.standard_normal((rows, k), dtype=np.float32)
    z[np.arange(rows), rng.integers(0, k, rows)] += 3.0
    with np.errstate(divide="ignore"):  # a draw of exactly 0 is a Gumbel of -inf: never picked
        gumbel = -np.log(-np.log(rng.random((rows, k), dtype=np.float32)))
    labels = np.argmax(z + gumbel, axis=1)  # a draw from softmax(z)
    return 2.0 * z, labels  # the logits: twice as sharp as the labels warrant


def write_data(n: int, k: int, folder: Path, *, mapped: bool) -> list[str]:
    """Write the N x K logits and labels (once; reused when present); the report's arguments."""
    if mapped:
        logits, labels = folder / f"logits-{n}x{k}.npy", folder / f"labels-{n}.npy"
        if not (logits.exists() and labels.exists()):
            out = np.lib.format.open_memmap(logits, mode="w+", dtype=np.float32, shape=(n, k))
            y = np.empty(n, dtype=np.int64)
            for start in range(0, n, CHUNK):
                z, t = _chunk(n, k, start)
                out[start : start + len(t)] = z
                y[start : start + len(t)] = t
            out.flush()
            del out
            np.save(labels, y)
        return [str(logits), "--labels", str(labels)]
    path = folder / f"logits-{n}x{k}.npz"
    if not path.exists():
        z = np.empty((n, k), dtype=np.float32)
        y = np.empty(n, dtype=np.int64)
        for start in range(0, n, CHUNK):
            zz, t = _chunk(n, k, start)
            z[start : start + len(t)] = zz
            y[start : start + len(t)] = t
        np.savez(path, logits=z, labels=y)
    return [str(path)]


def run_report(args: list[str], page: Path, profile: str | None) -> dict[str, Any]:
    """Run ``crossent report`` in a fresh process: wall time, peak RSS and its JSON summary."""
    command = [sys.executable, "-c", CHILD.format(profile=profile)]
    command += ["report", *args, "-o", str(page), "--force", "--json"]
    with tempfile.TemporaryFile("w+") as out_file, tempfile.TemporaryFile("w+") as err_file:
        start = time.perf_counter()
        proc = subprocess.Popen(command, stdout=out_file, stderr=err_file, text=True)
        # wait4 gives this child's own resource usage (getrusage(RUSAGE_CHILDREN) would be
        # the max over every child so far)
        _, status, usage = os.wait4(proc.pid, 0)
        wall = time.perf_counter() - start
        proc.returncode = os.waitstatus_to_exitcode(status)
        out_file.seek(0)
        err_file.seek(0)
        out, err = out_file.read(), err_file.read()
    if proc.returncode != 0:
        raise RuntimeError(f"crossent report failed ({proc.returncode}): {err.strip()[-2000:]}")
    summary = json.loads(out)
    # ru_maxrss is in KiB on Linux, in bytes on macOS
    peak = usage.ru_maxrss * (1 if sys.platform == "darwin" else 1024)
    return {"wall_s": wall, "peak_rss_mb": peak / 1e6, "summary": summary}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[20_000, 200_000])
    parser.add_argument("--mapped", type=int, nargs="*", default=[1_000_000])
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=None, help="where the data files go")
    parser.add_argument("--json", type=Path, default=None, help="write the results here")
    parser.add_argument("--profile", type=Path, default=None, help="cProfile output folder")
    a = parser.parse_args(argv)
    folder = a.dir or Path(tempfile.gettempdir()) / "crossent-report-bench"
    folder.mkdir(parents=True, exist_ok=True)
    k = a.classes
    results = []
    plan = [(n, False) for n in a.sizes] + [(n, True) for n in a.mapped]
    for n, mapped in plan:
        args = write_data(n, k, folder, mapped=mapped)
        profile = None
        if a.profile is not None:
            a.profile.mkdir(parents=True, exist_ok=True)
            profile = str(a.profile / f"report-{n}.prof")
        r = run_report(args, folder / f"report-{n}.html", profile)
        s = r.pop("summary")
        input_mb = n * k * 4 / 1e6
        row = {
            "rows": n,
            "classes": k,
            "file": "npy (memory map)" if mapped else "npz",
            "input_mb": input_mb,
            **r,
            "peak_over_input": r["peak_rss_mb"] / input_mb,
            "ns_per_value": r["wall_s"] / (n * k) * 1e9,
            "ece": s["before"]["ece"],
            "ece_after": (s["after_temperature"] or {}).get("ece"),
            "log_loss": s["before"]["log_loss_nats"],
            "temperatures": s["temperatures"],
        }
        results.append(row)
        print(
            f"{n:>9} x {k} {row['file']:<17} {input_mb:8.0f} MB  {r['wall_s']:7.1f} s  "
            f"peak {r['peak_rss_mb']:7.0f} MB ({row['peak_over_input']:.2f} x input)  "
            f"{row['ns_per_value']:.1f} ns/value  ECE {row['ece']:.4f}  T {row['temperatures']}",
            flush=True,
        )
    if a.json is not None:
        doc = {
            "machine": {
                "platform": platform.platform(),
                "cpus": os.cpu_count(),
                "python": platform.python_version(),
            },
            "results": results,
        }
        a.json.write_text(json.dumps(doc, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
