"""crossent.torch.linear_distillation_loss against the materialized float64 reference.

The reference is written from the definitions with torch's own functions, independently of
crossent: both heads' logits ``h W^T + b`` over T, ``log_softmax``, ``F.kl_div`` with log
targets for the two KLs and, for JSD, the log-mixture by ``logsumexp`` as TRL's
``generalized_jsd_loss`` writes it; the teacher detached; gradients by autograd through it.
Checked: values and gradients for every kind and reduction, invalid rows, chunks that do not
divide the rows, the recomputing backward, the normalizer, the memory (no N x V tensor).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import textwrap

import pytest

pytest.importorskip("torch.nn")

import torch
from linear_support import PEAK_PROBE, assert_grads

from crossent.torch import linear_distillation_loss

F = torch.nn.functional
F64 = torch.float64
B, T, DS, DT, V = 2, 7, 6, 9, 37


def reference(hs, ws, bs, ht, wt, bt, *, valid, temperature=1.0, kind="forward", beta=0.5,
              reduction="mean", normalizer=None):  # fmt: skip
    """The loss from both heads' materialized logits, in float64; the teacher detached."""
    s = hs @ ws.T + (0 if bs is None else bs)
    with torch.no_grad():
        t = ht @ wt.T + (0 if bt is None else bt)
    log_q = F.log_softmax(s / temperature, -1)
    log_p = F.log_softmax(t / temperature, -1)

    def kl(log_a, log_b):  # KL(a || b) per row
        return F.kl_div(log_b, log_a, log_target=True, reduction="none").sum(-1)

    if kind == "forward":
        rows = kl(log_p, log_q)
    elif kind == "reverse":
        rows = kl(log_q, log_p)
    else:
        log_m = torch.logsumexp(
            torch.stack([log_q + math.log(1 - beta), log_p + math.log(beta)]), dim=0
        )
        rows = beta * kl(log_p, log_m) + (1 - beta) * kl(log_q, log_m)
    rows = torch.where(valid, temperature**2 * rows, 0.0)
    if reduction == "none":
        return rows
    if reduction == "sum":
        return rows.sum()
    count = valid.sum() if normalizer is None else normalizer
    return rows.sum() / count if count > 0 else 0 * rows.sum()


def heads(seed, *, dtype=torch.float32, bias=True, shape=(B, T)):
    """(ours, theirs, valid): student (h, W, b) and teacher (h, W, b) leaves in ``dtype`` and
    float64 copies of the same values; two invalid positions."""
    gen = torch.Generator().manual_seed(seed)
    made = []
    for width in (DS, DT):
        h = torch.randn(*shape, width, generator=gen, dtype=F64)
        w = torch.randn(V, width, generator=gen, dtype=F64) / 2
        b = torch.randn(V, generator=gen, dtype=F64) if bias else None
        made += [h, w, b]
    ours = [None if x is None else x.to(dtype).requires_grad_() for x in made]
    theirs = [None if x is None else x.to(dtype).to(F64).requires_grad_() for x in made]
    valid = torch.ones(shape, dtype=torch.bool)
    valid.view(-1)[2] = valid.view(-1)[-4] = False
    return ours, theirs, valid


def call(args, **options):
    hs, ws, bs, ht, wt, bt = args
    return linear_distillation_loss(hs, ws, ht, wt, student_bias=bs, teacher_bias=bt, **options)


def backward(loss, gen):
    """Backpropagate a random upstream gradient (same values for ours and the reference)."""
    up = torch.randn(loss.shape, generator=gen, dtype=F64) if loss.ndim else torch.tensor(1.7)
    loss.backward(up.to(loss.dtype))


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_matches_materialized_reference(kind, reduction):
    ours, theirs, valid = heads(0)
    options = dict(temperature=2.5, kind=kind, beta=0.3, reduction=reduction)
    loss = call(ours, valid=valid, chunk_size=5, **options)  # 14 rows: chunks 5, 5, 4
    want = reference(*theirs, valid=valid, **options)
    assert loss.dtype == torch.float32 and loss.shape == want.shape
    torch.testing.assert_close(loss.to(F64), want.detach(), rtol=1e-5, atol=1e-6)
    backward(loss, torch.Generator().manual_seed(1))
    backward(want, torch.Generator().manual_seed(1))
    assert_grads(ours[:3], theirs[:3])
    assert all(x is None or x.grad is None for x in ours[3:])  # the teacher is a fixed target


@pytest.mark.parametrize("kind", ["forward", "reverse", "jsd"])
def test_float64_is_exact(kind):
    ours, _, valid = heads(2, dtype=F64, bias=False)
    loss = call(ours, valid=valid, kind=kind, chunk_size=3)
    theirs = [None if x is None else x.detach().clone().requires_grad_() for x in ours]
    want = reference(*theirs, valid=valid, kind=kind)
    torch.testing.assert_close(loss, want, rtol=1e-12, atol=1e-14)
    loss.backward()
    want.backward()
    for a, b in zip(ours[:2], theirs[:2], strict=True):
        torch.testing.assert_close(a.grad, b.grad, rtol=1e-10, atol=1e-13)


def test_forward_kind_is_the_core_distillation_loss():
    """kind="forward" over all rows is crossent.distillation_loss of the two logits."""
    import crossent as ce

    ours, _, _ = heads(3, dtype=F64)
    hs, ws, bs, ht, wt, bt = (None if x is None else x.detach() for x in ours)
    for reduction in ("mean", "sum", "none"):
        got = call((hs, ws, bs, ht, wt, bt), temperature=3.0, reduction=reduction)
        core = ce.distillation_loss(
            hs @ ws.T + bs, ht @ wt.T + bt, temperature=3.0, reduction=reduction
        )
        torch.testing.assert_close(got, core, rtol=1e-12, atol=1e-14)


def test_second_backward_recomputes_and_default_chunk():
    """A reduced loss keeps its gradients from the forward once; a second backward
    (retain_graph) recomputes them; the default chunk size gives the same numbers."""
    ours, theirs, valid = heads(4)
    loss = call(ours, valid=valid, kind="reverse")
    loss.backward(retain_graph=True)
    first = [x.grad.clone() for x in ours[:3]]
    for x in ours[:3]:
        x.grad = None
    loss.backward()
    for a, x in zip(first, ours[:3], strict=True):
        torch.testing.assert_close(x.grad, a, rtol=1e-6, atol=1e-7)
    want = reference(*theirs, valid=valid, kind="reverse")
    want.backward()
    assert_grads(ours[:3], theirs[:3])


def test_normalizer_adds_micro_batches_up_to_the_full_batch():
    ours, _, valid = heads(5, dtype=F64)
    full = call(ours, valid=valid, kind="jsd")
    count = valid.sum()
    parts = [
        call([None if x is None else (x[i] if x.ndim == 3 else x) for x in ours],
             valid=valid[i], kind="jsd", normalizer=count)
        for i in range(B)
    ]  # fmt: skip
    torch.testing.assert_close(sum(parts), full, rtol=1e-12, atol=1e-14)


def test_invalid_rows_contribute_nothing_whatever_they_hold():
    """An invalid (padding) position: a NaN teacher and a huge student contribute exactly 0."""
    ours, _, valid = heads(6)
    with torch.no_grad():
        ours[0].view(-1, DS)[2] = 1e30
        ours[3].view(-1, DT)[2] = math.nan
    rows = call(ours, valid=valid, reduction="none")
    assert torch.isfinite(rows).all() and rows.view(-1)[2] == 0
    call(ours, valid=valid).backward()
    assert all(torch.isfinite(x.grad).all() for x in ours[:3])
    assert (ours[0].grad.view(-1, DS)[2] == 0).all()


def test_all_invalid_gives_zero_loss_and_zero_gradients():
    ours, _, valid = heads(7)
    loss = call(ours, valid=torch.zeros_like(valid))
    assert loss.item() == 0
    loss.backward()
    assert all((x.grad == 0).all() for x in ours[:3])


def test_low_precision_and_mixed_teacher_dtype():
    """A bfloat16 student against a float32 teacher: float32 accumulation, bf16 gradients."""
    ours, theirs, valid = heads(8, dtype=torch.bfloat16)
    ours[3:] = [x.detach().float() for x in theirs[3:]]
    loss = call(ours, valid=valid, kind="jsd")
    want = reference(*theirs, valid=valid, kind="jsd")
    assert loss.dtype == torch.bfloat16
    torch.testing.assert_close(loss.double(), want.detach(), rtol=1e-2, atol=1e-3)
    loss.backward()
    want.backward()
    assert ours[1].grad.dtype == torch.bfloat16
    assert_grads(ours[:3], theirs[:3], atol=2e-2)


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("args", "kwargs", "match"),
    [
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DT)), {"kind": "kl"}, r"kind must be one of"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DT)), {"kind": "jsd", "beta": 1.0},
         r"beta must be a number in \(0, 1\), got 1.0"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V + 1, DT)), {},
         r"teacher_weight has 38 classes but student_weight has 37"),
        ((_t(4, DS), _t(V, DS), _t(5, DT), _t(V, DT)), {},
         r"teacher_hidden must have the leading shape \(4,\)"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DS)), {},
         r"teacher_weight has 6 features per class .* teacher_hidden has 9"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DT)), {"valid": _t(4)},
         r"valid must be a boolean mask of shape \(4,\); got torch.float32"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DT)), {"temperature": 0.0},
         r"temperature"),
        ((_t(4, DS), _t(V, DS), _t(4, DT), _t(V, DT)), {"reduction": "sum", "normalizer": 3.0},
         r"normalizer is the denominator of reduction='mean'"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(args, kwargs, match):
    with pytest.raises(ValueError, match=match):
        linear_distillation_loss(*args, **kwargs)


# ----------------------------------------------------------------- no N x V tensor anywhere

MEMORY_CHILD = PEAK_PROBE + textwrap.dedent(
    """
    import json, sys
    import torch
    import torch.nn.functional as F
    from crossent.torch import linear_distillation_loss

    torch.set_num_threads(1)  # many small chunks: no waiting on a busy second thread

    n, d, v, chunk = (int(a) for a in sys.argv[1:5])
    g = torch.Generator().manual_seed(0)
    hs = torch.randn(n, d, generator=g).requires_grad_()
    ws = torch.randn(v, d, generator=g).requires_grad_()
    ht, wt = torch.randn(n, 2 * d, generator=g), torch.randn(v, 2 * d, generator=g)
    u = torch.randn(n, generator=g)

    def run(fn):
        def step():
            hs.grad = ws.grad = None
            fn()
        step()  # warm-up: lazy initialization is not the loss's memory
        return peak_of(step)

    def ours(kind, reduction="mean"):
        loss = linear_distillation_loss(
            hs, ws, ht, wt, kind=kind, temperature=2.0, chunk_size=chunk, reduction=reduction)
        loss.backward() if reduction == "mean" else loss.backward(u)

    def torch_kl():
        log_q = F.log_softmax(hs @ ws.T / 2, -1)
        log_p = F.log_softmax(ht @ wt.T / 2, -1)
        (4 * F.kl_div(log_q, log_p, log_target=True, reduction="batchmean")).backward()

    print(json.dumps({
        "forward": run(lambda: ours("forward")),
        "jsd": run(lambda: ours("jsd")),
        "reverse-none": run(lambda: ours("reverse", "none")),
        "torch": run(torch_kl),
    }))
    """
)


@pytest.mark.slow  # ~8 s of CPU: 64 chunks x 4 variants, warm-up included
@pytest.mark.skipif(not os.path.exists("/proc/self/clear_refs"), reason="needs Linux /proc")
def test_never_materializes_the_logits():
    """Peak RSS growth of forward + backward in a fresh process, against the 128 MiB of one
    model's logits: plain PyTorch shows several such tensors (about 640 MB); the fused loss
    with 128-row chunks (2 MiB each) stays under half of one, for the forward KL, the JSD,
    and the reverse KL with reduction="none" (the backward recomputing both heads). Measured:
    about 20, 26 and 24 MB, 10-13 chunk buffers (both heads' logits, the rule's temporaries
    and the allocator's slack)."""
    n, d, v, chunk = 8192, 16, 4096, 128
    logits = n * v * 4
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, str(n), str(d), str(v), str(chunk)],
        capture_output=True, text=True, check=True, timeout=180,
    )  # fmt: skip
    peaks = json.loads(proc.stdout.strip().splitlines()[-1])
    assert peaks["torch"] > 2 * logits, peaks
    for key in ("forward", "jsd", "reverse-none"):
        assert peaks[key] < logits / 2, peaks
