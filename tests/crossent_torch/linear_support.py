"""The float64 reference of the fused linear cross-entropy's weights, normalizer and outputs,
from the materialized logits (a plain module shared by test_linear_weights.py and
test_linear_outputs.py; see ce_torch_support.py for why it is not a conftest.py).

Written from the definitions with torch's own functions, independently of crossent: the
logits ``softcap(h W^T + b) / T``, ``F.cross_entropy(..., reduction="none")`` plus the z-loss
per row, the per-token weights and the documented denominator, and ``log_softmax`` for the
outputs. Gradients come from autograd through it.
"""

from __future__ import annotations

import sys
import textwrap

import pytest

pytest.importorskip("torch.nn")  # "torch" alone could resolve to this folder (a namespace)

import torch

F = torch.nn.functional
F64 = torch.float64
B, T, D, V = 2, 7, 8, 37


def sweep_module():
    """crossent.torch._linear_sweep (its CPU shortcuts are patched to force the device path)."""
    import crossent.torch  # noqa: F401

    return sys.modules["crossent.torch._linear_sweep"]


def reference(h, w, y, *, bias=None, class_weight=None, smoothing=0.0, z_loss=0.0,
              softcap=None, temperature=1.0, sample_weight=None, normalizer=None,
              reduction="mean", shift=False, ignore_index=-100):  # fmt: skip
    """{"loss", "z_loss", "logprob", "entropy", "prediction", "correct", "accuracy",
    "confidence", "lse"} from the materialized logits, in float64."""
    z = h @ w.T
    if bias is not None:
        z = z + bias
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    s = sample_weight
    if shift:
        z, y = z[..., :-1, :], y[..., 1:]
        s = None if s is None else s[..., 1:]
    batch = y.shape
    z, y = z.reshape(-1, z.shape[-1]), y.reshape(-1)
    valid = y != ignore_index
    t = torch.where(valid, y, 0)
    rows = F.cross_entropy(
        z, y, weight=class_weight, ignore_index=ignore_index, reduction="none",
        label_smoothing=smoothing,
    )  # fmt: skip
    w_t = (class_weight[t] if class_weight is not None else torch.ones_like(rows)) * valid
    lse = torch.logsumexp(z, -1)
    z_rows = z_loss * w_t * lse**2
    rows = rows + z_rows
    count = w_t.sum() if normalizer is None else torch.as_tensor(normalizer, dtype=F64)

    def reduced(x):
        x = x if s is None else x * s.reshape(-1)
        if reduction == "none":
            return x.reshape(batch)
        return x.sum() if reduction == "sum" else (x.sum() / count if count > 0 else 0 * x.sum())

    logp = torch.log_softmax(z, -1)
    prediction = z.argmax(-1)
    correct = (prediction == y) & valid
    out = {
        "loss": reduced(rows),
        "z_loss": reduced(z_rows),
        "logprob": torch.where(valid, logp.gather(1, t[:, None])[:, 0], 0.0),
        "entropy": -(logp.exp() * logp).sum(-1),
        "prediction": prediction,
        "correct": correct,
        "confidence": logp.max(-1).values.exp(),
        "lse": lse,
    }
    for key in ("logprob", "entropy", "prediction", "correct", "confidence", "lse"):
        out[key] = out[key].reshape(batch)
    out["accuracy"] = (
        correct.sum(dtype=F64) / valid.sum() if valid.any() else torch.zeros((), dtype=F64)
    )
    return out


def inputs(seed, *, bias=True, shape=(B, T, D), vocab=V, dtype=torch.float32, scale=1.0):
    """(ours, theirs, targets, generator): leaves for crossent in ``dtype`` and float64 leaves
    of the same values for the reference; two ignored targets."""
    gen = torch.Generator().manual_seed(seed)
    h = torch.randn(shape, generator=gen, dtype=F64) * scale
    w = torch.randn(vocab, shape[-1], generator=gen, dtype=F64) / 2
    b = torch.randn(vocab, generator=gen, dtype=F64) if bias else None
    y = torch.randint(0, vocab, shape[:-1], generator=gen)
    y.view(-1)[2] = -100
    y.view(-1)[-4] = -100
    ours = [None if t is None else t.to(dtype).requires_grad_() for t in (h, w, b)]
    theirs = [None if t is None else t.to(dtype).to(F64).requires_grad_() for t in (h, w, b)]
    return ours, theirs, y, gen


def assert_grads(ours, theirs, *, atol=1e-5):
    """Each gradient of crossent against the reference's, relative to the latter's scale."""
    for a, b in zip(ours, theirs, strict=True):
        if a is None:
            continue
        assert a.grad is not None and a.grad.dtype == a.dtype
        scale = b.grad.abs().max().clamp_min(1e-3)
        torch.testing.assert_close(a.grad.to(F64) / scale, b.grad / scale, rtol=0, atol=atol)


# The start of a child process that measures a call's peak memory: the growth of the resident
# high-water mark (VmHWM, reset through clear_refs) over the resident set before the call.
PEAK_PROBE = textwrap.dedent(
    """
    import ctypes, gc

    def status(field):
        with open("/proc/self/status") as f:
            return int(next(l for l in f if l.startswith(field + ":")).split()[1]) * 1024

    def peak_of(step):
        gc.collect()
        ctypes.CDLL("libc.so.6").malloc_trim(0)
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        before = status("VmRSS")
        step()
        return status("VmHWM") - before
    """
)
