"""Is the fused linear cross-entropy bit-for-bit reproducible? Run it many times and count.

For each thread count (a fresh process each, since torch fixes its thread pool at start), the
forward + backward of ``crossent.torch.linear_cross_entropy`` on the same inputs runs
``--repeats`` times, with the inputs copied to buffers of different alignments (0, 4, 8, 16
and 32 bytes past the allocator's) in turn, as a caller's tensors would be. Each run is
reduced to a hash of the bytes of the loss and of the gradients of h and W; the output is
the number of distinct hashes per output and thread count (1 means bit-identical every time),
and whether the thread counts agree with each other.

Usage::

    python benchmarks/determinism.py [--shape 4096x512x16000] [--repeats 20] [--threads 1,2]
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys

OUTPUTS = ("loss", "grad_h", "grad_w")


def child(shape: tuple[int, int, int], repeats: int, threads: int) -> dict[str, list[str]]:
    """In this process: the hashes of every output of every run."""
    import torch

    from crossent.torch import linear_cross_entropy

    torch.set_num_threads(threads)
    n, d, v = shape
    gen = torch.Generator().manual_seed(0)
    h0 = torch.randn(n, d, generator=gen)
    w0 = torch.randn(v, d, generator=gen) / d**0.5
    y = torch.randint(0, v, (n,), generator=gen)

    def at_offset(x: torch.Tensor, offset: int) -> torch.Tensor:
        buffer = torch.empty(x.numel() + 8)
        view = buffer[offset : offset + x.numel()].view(x.shape)
        return view.copy_(x).requires_grad_()

    hashes: dict[str, list[str]] = {name: [] for name in OUTPUTS}
    for r in range(repeats):
        offset = (0, 1, 2, 4, 8)[r % 5]  # floats: 0, 4, 8, 16, 32 bytes
        h, w = at_offset(h0, offset), at_offset(w0, offset)
        loss = linear_cross_entropy(h, w, y)
        loss.backward()
        assert h.grad is not None and w.grad is not None
        for name, t in zip(OUTPUTS, (loss, h.grad, w.grad), strict=True):
            hashes[name].append(hashlib.sha256(t.detach().numpy().tobytes()).hexdigest()[:16])
    return hashes


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--shape", default="4096x512x16000", help="N x D x V")
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--threads", default="1,2", help="comma-separated thread counts")
    parser.add_argument("--child", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    try:
        n, d, v = (int(p) for p in args.shape.lower().split("x"))
        threads = [int(t) for t in args.threads.split(",") if t.strip()]
    except ValueError:
        parser.error(f"--shape must look like 4096x512x16000 and --threads like 1,2: {args}")
    if min(n, d, v, args.repeats, *threads) < 1:
        parser.error("the shape, --repeats and --threads must be positive")
    if args.child:
        print(json.dumps(child((n, d, v), args.repeats, args.child)))
        return 0
    results = {}
    for t in threads:
        cmd = [sys.executable, os.path.abspath(__file__), "--shape", args.shape]
        cmd += ["--repeats", str(args.repeats), "--child", str(t)]
        proc = subprocess.run(cmd, capture_output=True, text=True, check=True)
        results[t] = json.loads(proc.stdout.strip().splitlines()[-1])
    print(f"N x D x V = {args.shape}, {args.repeats} runs per thread count, 5 alignments")
    print(f"{'threads':>8}" + "".join(f"{name:>22}" for name in OUTPUTS))
    for t, hashes in results.items():
        cells = [f"{len(set(hashes[name]))} distinct" for name in OUTPUTS]
        print(f"{t:>8}" + "".join(f"{c:>22}" for c in cells))
    for name in OUTPUTS:
        first = {t: hashes[name][0] for t, hashes in results.items()}
        same = len(set(first.values())) == 1
        print(f"{name}: {'the same' if same else 'different'} across thread counts {threads}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
