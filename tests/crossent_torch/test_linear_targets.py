"""crossent.torch.linear_cross_entropy in PyTorch's F.linear_cross_entropy conventions: probability
targets, a hidden state without batch dimension, and the K-dimensional head (C, d1, ..., D).

The peer is ``torch.nn.functional.linear_cross_entropy`` itself (its reference path,
``options=None``: ``cross_entropy(linear(input, weight, bias), target)``) on the same inputs in
float64; options it lacks (z-loss, soft cap, temperature, per-token weights) are checked against
a float64 brute force from the materialized logits with ``F.cross_entropy``.
"""

from __future__ import annotations

import sys

import pytest

torch = pytest.importorskip("torch")

from linear_support import assert_grads  # noqa: E402

from crossent.torch import linear_cross_entropy  # noqa: E402

_linear = sys.modules["crossent.torch._linear"]
_sweep = sys.modules["crossent.torch._linear_sweep"]
F = torch.nn.functional
F64 = torch.float64
N, D, C = 13, 6, 11

pytestmark = pytest.mark.skipif(
    not hasattr(F, "linear_cross_entropy"), reason="needs torch with F.linear_cross_entropy"
)


def _leaves(gen, shapes, dtype=torch.float32):
    """(ours, theirs): random leaves in ``dtype`` and the same values in float64."""
    values = [None if s is None else torch.randn(s, generator=gen, dtype=F64) / 2 for s in shapes]
    ours = [None if v is None else v.to(dtype).requires_grad_() for v in values]
    theirs = [None if v is None else v.to(dtype).to(F64).requires_grad_() for v in values]
    return ours, theirs


def _distribution(gen, shape, class_axis=-1, *, sharp=2.0, zeros=True):
    """Random probability rows along ``class_axis``, some entries exactly 0."""
    p = torch.softmax(sharp * torch.randn(shape, generator=gen, dtype=F64), class_axis)
    if zeros:
        p = torch.where(torch.rand(shape, generator=gen, dtype=F64) < 0.2, 0.0, p)
        p = p / p.sum(class_axis, keepdim=True)
    return p


def _compare(ours, theirs, out, ref, gen, *, rtol=1e-5, atol=1e-6, grad_atol=1e-5):
    assert out.shape == ref.shape
    torch.testing.assert_close(out.to(F64), ref.detach(), rtol=rtol, atol=atol)
    u = torch.randn(ref.shape, generator=gen, dtype=F64)
    (out.to(F64) * u).sum().backward()
    (ref * u).sum().backward()
    assert_grads(ours, theirs, atol=grad_atol)


@pytest.fixture(params=["cpu", "device"])
def path(request, monkeypatch):
    """The CPU sweep, or the branch-free accelerator sweep (forced on CPU)."""
    if request.param == "device":
        monkeypatch.setattr(_sweep, "_host_shortcuts", lambda hidden: False)
    return request.param


# ------------------------------------------------------------- probability targets


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize(
    "options",
    [{}, {"class_weight": True}, {"label_smoothing": 0.2}, {"class_weight": True,
                                                           "label_smoothing": 0.1}],
)  # fmt: skip
def test_probability_targets_match_torch(reduction, precompute, options, path, monkeypatch):
    monkeypatch.setattr(_linear, "PRECOMPUTE", precompute)
    gen = torch.Generator().manual_seed(1)
    ours, theirs = _leaves(gen, [(N, D), (C, D), (C,)])
    y = _distribution(gen, (N, C))
    cw = torch.rand(C, generator=gen, dtype=F64) + 0.2 if options.get("class_weight") else None
    e = options.get("label_smoothing", 0.0)
    out = linear_cross_entropy(
        *ours[:2], y.float(), bias=ours[2], class_weight=None if cw is None else cw.float(),
        label_smoothing=e, reduction=reduction, chunk_size=4,
    )  # fmt: skip
    ref = F.linear_cross_entropy(
        *theirs[:2], y.float().to(F64), linear_bias=theirs[2], weight=cw, label_smoothing=e,
        reduction=reduction,
    )  # fmt: skip
    _compare(ours, theirs, out, ref, gen)


def _brute_force(h, w, b, y, *, z_loss=0.0, softcap=None, temperature=1.0, sample_weight=None,
                 reduction="mean"):  # fmt: skip
    """F.cross_entropy of the materialized logits against probabilities, plus z * LSE^2 per
    row, weighted per token; the mean over rows (PyTorch's for probability targets)."""
    z = h @ w.T + b
    if softcap is not None:
        z = softcap * torch.tanh(z / softcap)
    z = z / temperature
    rows = F.cross_entropy(z, y, reduction="none") + z_loss * torch.logsumexp(z, -1) ** 2
    if sample_weight is not None:
        rows = rows * sample_weight
    return {"none": rows, "sum": rows.sum(), "mean": rows.sum() / rows.shape[0]}[reduction]


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize(
    "options",
    [{"z_loss": 1e-2}, {"softcap": 1.5}, {"temperature": 0.7},
     {"z_loss": 1e-3, "softcap": 2.0, "temperature": 1.3}],
)  # fmt: skip
def test_probability_targets_with_the_other_loss_options(reduction, options, path):
    gen = torch.Generator().manual_seed(2)
    ours, theirs = _leaves(gen, [(N, D), (C, D), (C,)])
    y = _distribution(gen, (N, C))
    s = torch.randn(N, generator=gen, dtype=F64)  # per-token weights, negative ones too
    out = linear_cross_entropy(
        *ours[:2], y.float(), bias=ours[2], sample_weight=s.float(), reduction=reduction,
        chunk_size=5, **options,
    )  # fmt: skip
    ref = _brute_force(*theirs, y.float().to(F64), sample_weight=s.float().to(F64),
                       reduction=reduction, **options)  # fmt: skip
    _compare(ours, theirs, out, ref, gen)


def test_one_hot_probabilities_equal_class_indices():
    gen = torch.Generator().manual_seed(3)
    ours, _ = _leaves(gen, [(N, D), (C, D), (C,)], dtype=F64)
    t = torch.randint(0, C, (N,), generator=gen)
    kwargs = {"bias": ours[2], "label_smoothing": 0.1, "z_loss": 1e-3, "chunk_size": 4}
    soft = linear_cross_entropy(*ours[:2], F.one_hot(t, C).to(F64), **kwargs)
    hard = linear_cross_entropy(*ours[:2], t, **kwargs)
    g_soft = torch.autograd.grad(soft, ours)
    g_hard = torch.autograd.grad(hard, ours)
    torch.testing.assert_close(soft, hard)
    for a, b in zip(g_soft, g_hard, strict=True):
        torch.testing.assert_close(a, b)


def test_probability_targets_of_a_sequence_batch_and_normalizer():
    """(B, T, D) hidden with (B, T, C) targets, and an explicit normalizer (gradient
    accumulation): the halves' losses add up to the whole batch's mean."""
    gen = torch.Generator().manual_seed(4)
    (h, w, _), _ = _leaves(gen, [(2, 5, D), (C, D), None], dtype=F64)
    y = _distribution(gen, (2, 5, C))
    whole = F.linear_cross_entropy(h.reshape(10, D), w, y.reshape(10, C))  # 2-D input only
    torch.testing.assert_close(linear_cross_entropy(h, w, y), whole)
    halves = [linear_cross_entropy(h[i : i + 1], w, y[i : i + 1], normalizer=10) for i in (0, 1)]
    torch.testing.assert_close(sum(halves), whole)


def test_half_precision_probability_targets_accumulate_in_float32():
    gen = torch.Generator().manual_seed(5)
    ours, theirs = _leaves(gen, [(N, D), (C, D), (C,)], dtype=torch.bfloat16)
    y = _distribution(gen, (N, C), zeros=False).to(torch.bfloat16)
    y = y / y.sum(-1, keepdim=True)  # rounded rows still sum to 1 within the tolerance
    out = linear_cross_entropy(*ours[:2], y, bias=ours[2], chunk_size=4)
    assert out.dtype == torch.bfloat16
    ref = F.linear_cross_entropy(*theirs[:2], y.to(F64), linear_bias=theirs[2])
    # bfloat16 results: the gradients are rounded to 8 bits of mantissa
    _compare(ours, theirs, out, ref, gen, rtol=1e-2, atol=1e-2, grad_atol=1e-2)


def test_probability_targets_return_lse():
    gen = torch.Generator().manual_seed(6)
    (h, w, b), _ = _leaves(gen, [(N, D), (C, D), (C,)], dtype=F64)
    y = _distribution(gen, (N, C))
    loss, lse = linear_cross_entropy(h, w, y, bias=b, return_lse=True, chunk_size=4)
    torch.testing.assert_close(lse, torch.logsumexp(h @ w.T + b, -1))
    torch.testing.assert_close(loss, F.linear_cross_entropy(h, w, y, linear_bias=b))


# ------------------------------------------------------------- unbatched hidden (D,)


@pytest.mark.parametrize("kind", ["index", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_unbatched_hidden_matches_torch(kind, reduction):
    gen = torch.Generator().manual_seed(7)
    ours, theirs = _leaves(gen, [(D,), (C, D), (C,)])
    y = torch.tensor(4) if kind == "index" else _distribution(gen, (C,)).float()
    out = linear_cross_entropy(*ours[:2], y, bias=ours[2], reduction=reduction)
    ref = F.linear_cross_entropy(
        *theirs[:2], y if kind == "index" else y.to(F64), linear_bias=theirs[2],
        reduction=reduction,
    )  # fmt: skip
    assert out.shape == () and ours[0].shape == (D,)
    _compare(ours, theirs, out, ref, gen)


def test_unbatched_hidden_outputs_are_zero_dimensional():
    gen = torch.Generator().manual_seed(8)
    (h, w, _), _ = _leaves(gen, [(D,), (C, D), None], dtype=F64)
    out = linear_cross_entropy(h, w, torch.tensor(2), outputs=("logprob", "entropy", "accuracy"))
    logp = torch.log_softmax(w @ h, -1)
    assert out.logprob.shape == out.entropy.shape == out.accuracy.shape == ()
    torch.testing.assert_close(out.logprob, logp[2])
    torch.testing.assert_close(out.entropy, -(logp.exp() * logp).sum())
    _, lse = linear_cross_entropy(h, w, torch.tensor(2), return_lse=True)
    torch.testing.assert_close(lse, torch.logsumexp(w @ h, -1))


# ------------------------------------------------------------- K-dimensional head


@pytest.mark.parametrize("kind", ["index", "probabilities"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("out", [(3,), (2, 3)])
def test_k_dimensional_weight_matches_torch(kind, reduction, out):
    """weight (C, d1, ..., D): C classes at every position of (d1, ...); bias (C, d1, ...),
    class weights, ignored targets (class indices) and smoothing, as F.linear_cross_entropy."""
    gen = torch.Generator().manual_seed(9)
    ours, theirs = _leaves(gen, [(N, D), (C, *out, D), (C, *out)])
    cw = torch.rand(C, generator=gen, dtype=F64) + 0.2
    if kind == "index":
        y = torch.randint(0, C, (N, *out), generator=gen)
        y.view(-1)[[1, 5]] = -100
        y_ref = y
    else:
        y = _distribution(gen, (N, C, *out), class_axis=1).float()
        y_ref = y.to(F64)
    out_ = linear_cross_entropy(
        *ours[:2], y, bias=ours[2], class_weight=cw.float(), label_smoothing=0.1,
        reduction=reduction, chunk_size=4,
    )  # fmt: skip
    ref = F.linear_cross_entropy(
        *theirs[:2], y_ref, linear_bias=theirs[2], weight=cw.float().to(F64),
        label_smoothing=0.1, reduction=reduction,
    )  # fmt: skip
    _compare(ours, theirs, out_, ref, gen)


def test_k_dimensional_weight_with_sample_weight_normalizer_and_lse():
    """Per-position weights of the loss's shape, an explicit normalizer, and the log-sum-exp of
    each position: from the materialized (N, C, d) logits."""
    gen = torch.Generator().manual_seed(10)
    (h, w, b), _ = _leaves(gen, [(N, D), (C, 4, D), (C, 4)], dtype=F64)
    y = torch.randint(0, C, (N, 4), generator=gen)
    s = torch.rand(N, 4, generator=gen, dtype=F64)
    z = torch.einsum("nd,cjd->ncj", h, w) + b
    loss, lse = linear_cross_entropy(
        h, w, y, bias=b, sample_weight=s, normalizer=7.0, z_loss=1e-2, return_lse=True
    )
    rows = F.cross_entropy(z, y, reduction="none") + 1e-2 * torch.logsumexp(z, 1) ** 2
    torch.testing.assert_close(loss, (rows * s).sum() / 7.0)
    torch.testing.assert_close(lse, torch.logsumexp(z, 1))


def test_k_dimensional_weight_unbatched_hidden():
    """A (D,) hidden with a (C, d, D) weight: the batch of one (F.linear_cross_entropy refuses
    this combination; crossent takes it, the weight's shape telling the classes apart)."""
    gen = torch.Generator().manual_seed(11)
    (h, w, _), _ = _leaves(gen, [(D,), (C, 3, D), None], dtype=F64)
    y = torch.tensor([1, 0, 5])
    z = torch.einsum("d,cjd->cj", h, w)
    torch.testing.assert_close(
        linear_cross_entropy(h, w, y, reduction="none"),
        F.cross_entropy(z[None], y[None], reduction="none")[0],
    )


# ------------------------------------------------------------- errors


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


_P = torch.full((4, C), 1.0 / C)  # valid probability targets for (4, D) hidden
_NEGATIVE = _P.clone()
_NEGATIVE[1, 2] = -0.25


@pytest.mark.parametrize(
    ("args", "kwargs", "error", "match"),
    [
        ((_t(4, D), _t(C, D), _P), {"ignore_index": 0}, ValueError,
         r"ignore_index=0 applies to class-index targets only"),
        ((_t(4, D), _t(C, D), _NEGATIVE), {}, ValueError,
         r"probability targets must be probabilities in \[0, 1\]; found -0.25 at index "
         r"\(1, 2\)"),
        ((_t(4, D), _t(C, D), _P * 0.5), {}, ValueError,
         r"probability targets must sum to 1 along the class axis; the row at index 0 sums to "
         r"0.5 .*sample_weight of 0"),
        ((_t(4, D), _t(C, D), _t(4, C + 1)), {}, ValueError,
         r"probability targets must have the logits' shape \(4, 11\) .* got \(4, 12\)"),
        ((_t(4, D), _t(C, D), _t(4, C, dtype=torch.bool)), {}, TypeError,
         r"targets must be integer class indices or probabilities, got dtype torch.bool"),
        ((_t(4, D), _t(C, D), _P), {"outputs": ("logprob",)}, ValueError,
         r"outputs=\('logprob',\) is not supported with probability targets"),
        ((_t(2, 2, D), _t(C, D), torch.full((2, 2, C), 1.0 / C)), {"shift": True}, ValueError,
         r"shift=True is not supported with probability targets"),
        ((_t(4, D), _t(C, D), _P), {"sample_weight": _t(4, C)}, ValueError,
         r"sample_weight must have the targets' shape \(4,\); got \(4, 11\)"),
        ((_t(D), _t(C, D), _t(dtype=torch.long)), {"shift": 1}, ValueError,
         r"shift=1 needs a sequence axis; hidden of shape \(6,\) has none"),
        ((_t(D), _t(C, D), _t(1, dtype=torch.long)), {}, ValueError,
         r"class-index targets must have shape \(\) for hidden \(6,\)"),
        ((_t(4, D), _t(C, 3, D), _t(4, dtype=torch.long)), {}, ValueError,
         r"class-index targets must have shape \(4, 3\) for hidden \(4, 6\) and weight "
         r"\(11, 3, 6\); got \(4,\)"),
        ((_t(4, D), _t(C, 3, D), _t(4, 3, dtype=torch.long)), {"bias": _t(C)}, ValueError,
         r"bias must have shape \(11, 3\)"),
        ((_t(4, D), _t(C, 3, D), _t(4, 3, dtype=torch.long)), {"outputs": ("entropy",)},
         ValueError, r"outputs=\('entropy',\) is not supported with a K-dimensional weight"),
        ((_t(4, D), _t(C, 2, D), torch.cat([_P[..., None], 2 * _P[..., None]], -1)), {},
         ValueError, r"the row at index \(0, 1\) sums to 2"),
        ((_t(4, D), _t(C, 3, D), torch.tensor([[0, 1, 11]] * 4)), {}, ValueError,
         r"targets must be in \[0, 11\) or equal ignore_index=-100; found 11 at index "
         r"\(0, 2\)"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(args, kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_cross_entropy(*args, **kwargs)


def test_torch_also_refuses_ignore_index_with_probability_targets():
    """The peer's rule that the ValueError above mirrors."""
    with pytest.raises(RuntimeError, match="ignore_index cannot be specified"):
        F.linear_cross_entropy(_t(4, D), _t(C, D), _P, ignore_index=0)
