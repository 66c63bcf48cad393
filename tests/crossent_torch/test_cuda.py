"""The torch functions on an accelerator, against the float64 CPU reference (benchmarks/gpu.sh).

On CUDA where there is one; on the CPU otherwise (CI has no GPU; the other tests also force
the device code path on CPU), so the checks themselves run everywhere. Checked: the fused
linear cross-entropy (options, outputs, a large vocabulary in bfloat16, on CUDA no N x V
tensor in its peak memory), the fused distillation loss and the core losses, on the device,
against float64 references from the materialized logits.
"""

from __future__ import annotations

import os

import pytest

pytest.importorskip("torch.nn")

import torch
from linear_support import inputs, reference

import crossent as ce
import crossent.torch as ct

# CUDA where there is one, else the CPU (so CI runs these checks too); CROSSENT_TEST_DEVICE
# names another torch device.
DEVICE = os.environ.get("CROSSENT_TEST_DEVICE") or ("cuda" if torch.cuda.is_available() else "cpu")

F = torch.nn.functional
F64 = torch.float64


def on_device(leaves):
    """Leaves of the same values on the device (gradients land on these)."""
    return [None if t is None else t.detach().to(DEVICE).requires_grad_() for t in leaves]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1, "z_loss": 1e-2}, {"softcap": 4.0, "shift": True}],
    ids=["plain", "smooth-z", "softcap-shift"],
)
def test_linear_cross_entropy_matches_reference(reduction, options):
    ours, theirs, y, gen = inputs(3)
    ours = on_device(ours)
    cw = torch.rand(ours[1].shape[0], generator=gen, dtype=F64) + 0.2
    out = ct.linear_cross_entropy(
        ours[0], ours[1], y.to(DEVICE), bias=ours[2], class_weight=cw.float().to(DEVICE),
        reduction=reduction, chunk_size=5, **options,
    )  # fmt: skip
    smoothing = options.get("label_smoothing", 0.0)
    rest = {k: v for k, v in options.items() if k != "label_smoothing"}
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], class_weight=cw,
                    smoothing=smoothing, reduction=reduction, **rest)["loss"]  # fmt: skip
    assert out.device.type == torch.device(DEVICE).type
    torch.testing.assert_close(out.double().cpu(), ref, rtol=1e-5, atol=1e-6)
    g = torch.rand(ref.shape, generator=gen, dtype=F64)
    out.backward(g.float().to(DEVICE))
    ref.backward(g)
    for a, b in zip(ours, theirs, strict=True):
        scale = b.grad.abs().max().clamp_min(1e-3)
        torch.testing.assert_close(a.grad.double().cpu() / scale, b.grad / scale, rtol=0, atol=1e-5)


def test_outputs_on_the_device():
    ours, theirs, y, _ = inputs(4)
    ours = on_device(ours)
    names = ("logprob", "entropy", "prediction", "correct", "confidence", "lse")
    out = ct.linear_cross_entropy(ours[0], ours[1], y.to(DEVICE), bias=ours[2], outputs=names)
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2])
    for name in names:
        got = getattr(out, name).cpu()
        if got.dtype.is_floating_point:
            torch.testing.assert_close(got.double(), ref[name], rtol=1e-5, atol=1e-6)
        else:
            assert torch.equal(got, ref[name]), name


def test_large_vocabulary_in_bfloat16():
    """A 32k vocabulary in bfloat16: the loss and gradients within bfloat16's precision of the
    float64 loss of the same (rounded) inputs, and no N x V buffer in the peak on CUDA."""
    n, d, v = 512, 64, 32000
    gen = torch.Generator().manual_seed(5)
    h = torch.randn(n, d, generator=gen, dtype=F64).to(torch.bfloat16)
    w = (torch.randn(v, d, generator=gen, dtype=F64) / d**0.5).to(torch.bfloat16)
    y = torch.randint(0, v, (n,), generator=gen)
    ours = on_device([h, w])
    theirs = [t.double().requires_grad_() for t in (h, w)]
    if torch.device(DEVICE).type == "cuda":
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
        before = torch.cuda.memory_allocated()
    loss = ct.linear_cross_entropy(ours[0], ours[1], y.to(DEVICE), chunk_size=128)
    loss.backward()
    if torch.device(DEVICE).type == "cuda":
        extra = torch.cuda.max_memory_allocated() - before
        # gradients (2 bytes each) plus fp32 chunk buffers of 128 rows: far below N x V x 4
        assert extra < (n * d + v * d) * 2 + 8 * 128 * v * 4 < n * v * 4 * 2
    ref = F.cross_entropy(theirs[0] @ theirs[1].T, y)
    ref.backward()
    assert loss.dtype == torch.bfloat16
    torch.testing.assert_close(loss.double().cpu(), ref.detach(), rtol=1e-2, atol=0)
    for a, b in zip(ours, theirs, strict=True):
        scale = b.grad.abs().max()
        torch.testing.assert_close(a.grad.double().cpu() / scale, b.grad / scale, rtol=0, atol=2e-2)


def test_distillation_on_the_device():
    gen = torch.Generator().manual_seed(6)
    hs, ws = torch.randn(12, 6, generator=gen), torch.randn(37, 6, generator=gen)
    ht, wt = torch.randn(12, 9, generator=gen), torch.randn(37, 9, generator=gen)
    student = on_device([hs, ws])
    loss = ct.linear_distillation_loss(
        student[0], student[1], ht.to(DEVICE), wt.to(DEVICE), chunk_size=5
    )
    loss.backward()
    hs64, ws64 = hs.double().requires_grad_(), ws.double().requires_grad_()
    log_q = F.log_softmax(hs64 @ ws64.T, -1)
    log_p = F.log_softmax(ht.double() @ wt.double().T, -1)
    ref = F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")
    ref.backward()
    torch.testing.assert_close(loss.double().cpu(), ref.detach(), rtol=1e-5, atol=1e-6)
    for a, b in zip(student, (hs64, ws64), strict=True):
        torch.testing.assert_close(a.grad.double().cpu(), b.grad, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_core_losses_on_the_device(dtype):
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(64, 10, generator=gen, dtype=F64) * 3
    y = torch.randint(0, 10, (64,), generator=gen)
    z = torch.randn(64, 10, generator=gen, dtype=F64)
    t = (torch.rand(64, 10, generator=gen) < 0.3).double()
    tol = {"rtol": 1e-5, "atol": 1e-6} if dtype == torch.float32 else {"rtol": 2e-2, "atol": 0}
    cases = [
        (ce.softmax_cross_entropy, F.cross_entropy, x, y),
        (ce.sigmoid_binary_cross_entropy, F.binary_cross_entropy_with_logits, z, t),
    ]
    for ours, peer, inp, target in cases:
        leaf = inp.to(dtype).to(DEVICE).requires_grad_()
        loss = ours(
            leaf, target.to(DEVICE).to(dtype) if target.is_floating_point() else target.to(DEVICE)
        )
        loss.backward()
        ref_leaf = inp.to(dtype).double().requires_grad_()
        ref = peer(ref_leaf, target)
        ref.backward()
        assert loss.device.type == torch.device(DEVICE).type and loss.dtype == dtype
        torch.testing.assert_close(loss.double().cpu(), ref.detach(), **tol)
        torch.testing.assert_close(leaf.grad.double().cpu(), ref_leaf.grad, **tol)
