"""Per-token weights, the explicit normalizer and the temperature of the fused linear CE.

Against the float64 reference of the materialized logits (linear_support.py): the loss and the
gradients of hidden, weight, bias and the sample weights, for every reduction (reduction="none"
with a random upstream gradient: Liger #968), negative weights, with class weights, smoothing,
z-loss, softcap and shift; gradient accumulation over micro-batches with the normalizer
(Liger #802, #1298); torch.compile with ignored tokens (Liger #1338); the errors.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from linear_support import F64, V, assert_grads, inputs, reference, sweep_module  # noqa: E402

from crossent.torch import LinearCrossEntropyLoss, linear_cross_entropy  # noqa: E402

_linear = pytest.importorskip("crossent.torch._linear")


@pytest.fixture(params=["cpu", "device"])
def path(request, monkeypatch):
    """The CPU sweep (target-logit shift, factored gradient) or the one accelerators take."""
    if request.param == "device":
        monkeypatch.setattr(sweep_module(), "_host_shortcuts", lambda hidden: False)
    return request.param


def _weights(gen, shape, dtype=torch.float32):
    """Per-token weights of both signs and one exact 0; a leaf for crossent, one for the ref."""
    s = torch.randn(shape, generator=gen, dtype=F64)
    s.view(-1)[0] = 0.0
    ours = s.to(dtype).requires_grad_()
    return ours, ours.detach().to(F64).requires_grad_()


OPTIONS = [
    {},
    {"class_weight": True, "label_smoothing": 0.1, "z_loss": 1e-3},
    {"softcap": 3.0, "z_loss": 1e-2, "shift": True},
    {"class_weight": True, "softcap": 4.0, "label_smoothing": 0.2, "shift": True},
]


@pytest.mark.parametrize("precompute", [True, False], ids=["precompute", "recompute"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("options", OPTIONS, ids=["plain", "cw-e-z", "cap-z-shift", "all"])
def test_sample_weight_matches_reference(options, reduction, precompute, path, monkeypatch):
    """Loss and gradients (hidden, weight, bias, sample_weight) of sum(out * v) for a random v."""
    monkeypatch.setattr(_linear, "PRECOMPUTE", precompute)
    ours, theirs, y, gen = inputs(30)
    opts = dict(options)
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2 if opts.pop("class_weight", False) else None
    s, s_ref = _weights(gen, y.shape)
    out = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], class_weight=None if cw is None else cw.float(),
        sample_weight=s, reduction=reduction, chunk_size=4, **opts,
    )  # fmt: skip
    smoothing = opts.pop("label_smoothing", 0.0)
    ref = reference(
        theirs[0], theirs[1], y, bias=theirs[2], class_weight=cw, sample_weight=s_ref,
        reduction=reduction, smoothing=smoothing, **opts,
    )["loss"]  # fmt: skip
    assert out.shape == ref.shape and out.dtype == torch.float32
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-5, atol=1e-6)
    v = torch.randn(ref.shape, generator=gen, dtype=F64)
    (out.to(F64) * v).sum().backward()
    (ref * v).sum().backward()
    assert_grads([*ours, s], [*theirs, s_ref])


@pytest.mark.parametrize("reduction", ["mean", "sum"])
def test_unit_sample_weights_change_nothing(reduction):
    """All-ones weights give bit-for-bit the unweighted loss (mul by 1 is exact)."""
    ours, _, y, _ = inputs(31)
    plain = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], reduction=reduction)
    ones = torch.ones(y.shape)
    weighted = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], reduction=reduction, sample_weight=ones
    )
    assert torch.equal(plain, weighted)


@pytest.mark.parametrize("as_tensor", [True, False], ids=["tensor", "number"])
@pytest.mark.parametrize("weighted", [False, True], ids=["unweighted", "weighted"])
def test_micro_batches_add_up_to_the_full_batch(weighted, as_tensor, path):
    """k micro-batches, each normalized by the count of the whole batch (Hugging Face's
    num_items_in_batch), sum to the full batch's mean loss and gradients; per-micro-batch
    means do not (Liger #802, #1298)."""
    gen = torch.Generator().manual_seed(32)
    n, d = 23, 8
    h = torch.randn(n, d, generator=gen, requires_grad=True)
    w = torch.randn(V, d, generator=gen).div(2).requires_grad_()
    y = torch.randint(0, V, (n,), generator=gen)
    y[[1, 2, 3, 9, 20]] = -100  # ignored tokens spread unevenly over the micro-batches
    cw = torch.rand(V, generator=gen) + 0.2 if weighted else None
    s = torch.randn(n, generator=gen) if weighted else None
    opts = {"class_weight": cw, "label_smoothing": 0.1, "z_loss": 1e-3, "chunk_size": 3}
    full = linear_cross_entropy(h, w, y, sample_weight=s, **opts)
    full.backward()
    want = [full.detach(), h.grad.clone(), w.grad.clone()]
    h.grad = w.grad = None
    count = (cw[y.clamp_min(0)] if weighted else torch.ones(n))[y != -100].sum()
    normalizer = count if as_tensor else float(count)
    if not weighted:  # Hugging Face passes the token count as an integer tensor
        normalizer = (y != -100).sum() if as_tensor else int((y != -100).sum())
    total, means = torch.zeros(()), torch.zeros(())
    for part in (slice(0, 4), slice(4, 13), slice(13, 23)):
        sp = None if s is None else s[part]
        loss = linear_cross_entropy(h[part], w, y[part], sample_weight=sp, normalizer=normalizer,
                                    **opts)  # fmt: skip
        loss.backward()
        total = total + loss.detach()
        means = means + linear_cross_entropy(h[part], w, y[part], sample_weight=sp, **opts)
    torch.testing.assert_close(total, want[0], rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(h.grad, want[1], rtol=1e-5, atol=1e-7)
    torch.testing.assert_close(w.grad, want[2], rtol=1e-5, atol=1e-7)
    assert abs(float(means.detach()) / 3 - float(want[0])) > 1e-3  # what the normalizer fixes


def test_normalizer_against_reference_and_zero():
    """mean = sum_i s_i l_i / normalizer (the reference), and 0 with zero gradients when the
    normalizer is 0 (every token of the accumulated batch ignored)."""
    ours, theirs, y, gen = inputs(33)
    s, s_ref = _weights(gen, y.shape)
    out = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], sample_weight=s,
                               normalizer=torch.tensor(40), shift=True)  # fmt: skip
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], sample_weight=s_ref,
                    normalizer=40.0, shift=True)["loss"]  # fmt: skip
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-5, atol=1e-6)
    out.backward()
    ref.backward()
    assert_grads([*ours, s], [*theirs, s_ref])
    # the same count as a Python or NumPy integer
    for count in (40, np.int64(40)):
        again = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], sample_weight=s,
                                     normalizer=count, shift=True)  # fmt: skip
        assert torch.equal(again, out)
    for t in ours:
        t.grad = None
    zero = linear_cross_entropy(ours[0], ours[1], torch.full_like(y, -100), normalizer=0)
    zero.backward()
    assert zero.item() == 0.0 and all(not t.grad.any() for t in ours[:2])


def test_temperature_matches_reference(path):
    """logits / T after the soft cap, before everything: loss and gradients."""
    ours, theirs, y, gen = inputs(34)
    s, s_ref = _weights(gen, y.shape)
    opts = {"softcap": 5.0, "z_loss": 1e-3, "label_smoothing": 0.1, "reduction": "none"}
    out = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], temperature=0.7,
                               sample_weight=s, chunk_size=5, **opts)  # fmt: skip
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], temperature=0.7, sample_weight=s_ref,
                    softcap=5.0, z_loss=1e-3, smoothing=0.1, reduction="none")["loss"]  # fmt: skip
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-5, atol=1e-6)
    v = torch.randn(ref.shape, generator=gen, dtype=F64)
    (out.to(F64) * v).sum().backward()
    (ref * v).sum().backward()
    assert_grads([*ours, s], [*theirs, s_ref])
    # without the cap too, reduced (the gradients computed in forward)
    for t in (*ours, *theirs):
        t.grad = None
    out = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], temperature=2.5)
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], temperature=2.5)["loss"]
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-5, atol=1e-6)
    out.backward()
    ref.backward()
    assert_grads(ours, theirs)


@pytest.mark.filterwarnings("ignore::UserWarning", "ignore::DeprecationWarning")
def test_torch_compile_with_ignored_tokens():
    """Under torch.compile (which runs the op eagerly, breaking the graph around its host
    reads), loss and gradients with ignored tokens and per-token weights equal the reference
    (Liger #1338: a silently wrong loss under torch.compile with ignore_index)."""
    ours, theirs, y, gen = inputs(35)
    y.view(-1)[5:9] = -100
    s, s_ref = _weights(gen, y.shape)

    def step(h, w, b, s):
        mean = linear_cross_entropy(h, w, y, bias=b, sample_weight=s, shift=True)
        rows = linear_cross_entropy(h, w, y, bias=b, sample_weight=s, reduction="none")
        return mean, rows

    torch._dynamo.reset()
    mean, rows = torch.compile(step, backend="aot_eager")(*ours, s)
    ref_mean = reference(*theirs[:2], y, bias=theirs[2], sample_weight=s_ref, shift=True)["loss"]
    ref_rows = reference(*theirs[:2], y, bias=theirs[2], sample_weight=s_ref, reduction="none")
    torch.testing.assert_close(mean.to(F64), ref_mean.detach(), rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(rows.to(F64), ref_rows["loss"].detach(), rtol=1e-5, atol=1e-6)
    v = torch.randn(rows.shape, generator=gen, dtype=F64)
    (mean.to(F64) + (rows.to(F64) * v).sum()).backward()
    (ref_mean + (ref_rows["loss"] * v).sum()).backward()
    assert_grads([*ours, s], [*theirs, s_ref])


def test_module_passes_weights_and_normalizer():
    ours, theirs, y, gen = inputs(36)
    s, s_ref = _weights(gen, y.shape)
    module = LinearCrossEntropyLoss(shift=True, temperature=1.5)
    assert "temperature=1.5" in repr(module)
    out = module(ours[0], ours[1], y, ours[2], sample_weight=s, normalizer=torch.tensor(9.0))
    ref = reference(theirs[0], theirs[1], y, bias=theirs[2], shift=True, temperature=1.5,
                    sample_weight=s_ref, normalizer=9.0)["loss"]  # fmt: skip
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=1e-5, atol=1e-6)


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


Y4 = torch.tensor([0, 1, -100, 3])


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"sample_weight": _t(3)}, ValueError,
         r"sample_weight must have the targets' shape \(4,\)"),
        ({"sample_weight": torch.tensor([1.0, float("nan"), 0.0, 1.0])}, ValueError,
         r"sample_weight must be finite; found nan at index 1"),
        ({"sample_weight": torch.ones(4, dtype=torch.long)}, TypeError,
         r"sample_weight must be a floating array"),
        ({"normalizer": 3.0, "reduction": "sum"}, ValueError,
         r"normalizer is the denominator of reduction='mean'; got reduction='sum'"),
        ({"normalizer": -1}, ValueError, r"normalizer must be a finite number >= 0, got -1.0"),
        ({"normalizer": torch.tensor(float("inf"))}, ValueError, r"got inf"),
        ({"normalizer": torch.ones(2)}, ValueError, r"a number or a 0-d array; got shape \(2,\)"),
        ({"normalizer": True}, TypeError, r"normalizer must be None, a number or a 0-d array"),
        ({"normalizer": "4"}, TypeError, r"got str"),
        ({"normalizer": torch.tensor(True)}, TypeError, r"normalizer must be a real number"),
        ({"temperature": 0.0}, ValueError, r"temperature must be a finite number > 0, got 0.0"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_cross_entropy(_t(4, 8), _t(V, 8), Y4, **kwargs)
