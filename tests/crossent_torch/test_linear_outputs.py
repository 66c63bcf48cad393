"""The per-token outputs of the fused linear cross-entropy (``outputs=``), against the float64
reference of the materialized logits (linear_support.py): every value, with every option
(class weights, smoothing, z-loss, softcap, temperature, shift, sample weights, logits large
enough for the CPU sweep's overflow retry); the gradients through the log-probability (a
GRPO-style objective that ignores the loss) and the entropy; which sweeps run; the errors.
"""

from __future__ import annotations

import pytest

torch = pytest.importorskip("torch")

from linear_support import F64, V, assert_grads, inputs, reference, sweep_module  # noqa: E402

from crossent.torch import LinearCEOutput, LinearCrossEntropyLoss, linear_cross_entropy  # noqa: E402

ALL = ("logprob", "entropy", "prediction", "correct", "accuracy", "confidence", "lse", "z_loss")


@pytest.fixture(params=["cpu", "device"])
def path(request, monkeypatch):
    """The CPU sweep (target-logit shift, factored gradient) or the one accelerators take."""
    if request.param == "device":
        monkeypatch.setattr(sweep_module(), "_host_shortcuts", lambda hidden: False)
    return request.param


def _spy_sweeps(monkeypatch):
    """The list of sweeps that run: "forward", "forward+grads" (precomputed), "backward"."""
    sweep = sweep_module()
    runs, run = [], sweep.Sweep.run

    def spy(self, **kwargs):
        if kwargs["lse_in"] is not None:
            runs.append("backward")
        else:
            runs.append("forward+grads" if kwargs["up"] is not None else "forward")
        return run(self, **kwargs)

    monkeypatch.setattr(sweep.Sweep, "run", spy)
    return runs


CASES = [
    ({}, "mean", 1.0),
    ({"class_weight": True, "label_smoothing": 0.1, "z_loss": 1e-2, "temperature": 0.8}, "sum",
     1.0),
    ({"softcap": 3.0, "z_loss": 1e-3, "shift": True, "sample_weight": True}, "none", 1.0),
    ({"class_weight": True, "softcap": 30.0, "temperature": 1.7, "shift": True,
      "sample_weight": True, "label_smoothing": 0.2}, "mean", 1.0),
    ({"z_loss": 1e-4}, "none", 60.0),  # logits of order 1e3: the CPU sweep's overflow retry
]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "reduction", "scale"), CASES, ids=["plain", "cw-e-z-T", "cap-s", "all", "large"]
)
def test_every_output_matches_reference(options, reduction, scale, path):
    ours, theirs, y, gen = inputs(40, scale=scale)
    opts = dict(options)
    # about half the targets are the top class (cap and T > 0 keep the argmax): accuracy ~ 1/2
    top = (theirs[0] @ theirs[1].T + theirs[2]).argmax(-1)
    scored = y[..., 1:] if opts.get("shift") else y
    hit = (torch.rand(scored.shape, generator=gen) < 0.5) & (scored != -100)
    scored[hit] = (top[..., :-1] if opts.get("shift") else top)[hit]
    cw = torch.rand(V, generator=gen, dtype=F64) + 0.2 if opts.pop("class_weight", False) else None
    s = torch.randn(y.shape, generator=gen, dtype=F64) if opts.pop("sample_weight", False) else None
    common = {"class_weight": cw, "sample_weight": s, "reduction": reduction}
    got = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], outputs=ALL, chunk_size=4,
        **{k: v if not isinstance(v, torch.Tensor) else v.float() for k, v in common.items()},
        **opts,
    )  # fmt: skip
    smoothing = opts.pop("label_smoothing", 0.0)
    want = reference(theirs[0], theirs[1], y, bias=theirs[2], smoothing=smoothing, **common, **opts)
    assert isinstance(got, LinearCEOutput)
    for name in ("loss", "z_loss", "logprob", "entropy", "confidence", "lse", "accuracy"):
        value = getattr(got, name)
        assert value.shape == want[name].shape, name
        assert value.dtype == torch.float32, name
        tol = 1e-5 * max(1.0, scale)  # float32 logits of order 1e3 round at 1e-4
        torch.testing.assert_close(value.to(F64), want[name].detach(), rtol=tol, atol=tol)
    for name in ("prediction", "correct"):
        assert torch.equal(getattr(got, name), want[name]), name
    assert 0.2 < float(got.accuracy) < 1
    # the loss is that of the plain call, bit for bit
    plain = linear_cross_entropy(
        ours[0], ours[1], y, bias=ours[2], chunk_size=4,
        **{k: v if not isinstance(v, torch.Tensor) else v.float() for k, v in common.items()},
        label_smoothing=smoothing, **opts,
    )  # fmt: skip
    assert torch.equal(plain, got.loss)


def test_entropy_through_the_overflow_retry(monkeypatch):
    """Without the argmax outputs the CPU sweep shifts by the target logit; logits of order 1e3
    make it redo chunks shifted by the row max, the entropy's buffer included."""
    sweep = sweep_module()
    retries = []
    chunk_logits = sweep.Sweep._chunk_logits

    def spy(self, *args):
        retries.append(args[0])
        return chunk_logits(self, *args)

    monkeypatch.setattr(sweep.Sweep, "_chunk_logits", spy)
    ours, theirs, y, _ = inputs(47, scale=60.0)
    got = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], outputs=("entropy", "logprob"),
                               chunk_size=4)  # fmt: skip
    want = reference(theirs[0], theirs[1], y, bias=theirs[2])
    assert len(retries) > len(range(0, y.numel(), 4))  # some chunk was computed twice
    for name in ("entropy", "logprob"):
        value = getattr(got, name).to(F64)
        torch.testing.assert_close(value, want[name].detach(), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize(
    "options",
    [{}, {"softcap": 4.0, "temperature": 0.6, "shift": True},
     {"label_smoothing": 0.1, "z_loss": 1e-3}],
    ids=["plain", "cap-T-shift", "e-z"],
)  # fmt: skip
def test_gradients_through_logprob_and_entropy(options, path):
    """d/d(h, W, b) of loss + sum(logprob * u) + sum(entropy * v), entropy_grad=True."""
    ours, theirs, y, gen = inputs(41)
    opts = dict(options)
    got = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], outputs=("logprob", "entropy"),
                               entropy_grad=True, chunk_size=3, **opts)  # fmt: skip
    assert got.logprob.requires_grad and got.entropy.requires_grad
    smoothing = opts.pop("label_smoothing", 0.0)
    want = reference(theirs[0], theirs[1], y, bias=theirs[2], smoothing=smoothing, **opts)
    u = torch.randn(want["logprob"].shape, generator=gen, dtype=F64)
    v = torch.randn(want["entropy"].shape, generator=gen, dtype=F64)
    objective = got.loss.to(F64) + (got.logprob.to(F64) * u).sum() + (got.entropy * v).sum()
    objective.backward()
    (want["loss"] + (want["logprob"] * u).sum() + (want["entropy"] * v).sum()).backward()
    assert_grads(ours, theirs)


def test_grpo_objective_on_logprob_alone(monkeypatch, path):
    """A clipped policy-gradient objective built on the log-probabilities only (the loss is
    not used): correct gradients, from one forward sweep without gradient work and one
    backward sweep."""
    runs = _spy_sweeps(monkeypatch)
    ours, theirs, y, gen = inputs(42)
    advantages = torch.randn(y.shape[0], 1, generator=gen, dtype=F64).expand(y.shape)
    old = torch.randn(y.shape, generator=gen, dtype=F64) * 0.1 - 3.0
    mask = (y != -100).double()

    def objective(logprob):
        ratio = torch.exp(logprob - old)
        clipped = torch.minimum(ratio * advantages, ratio.clamp(0.8, 1.2) * advantages)
        return -(clipped * mask).sum() / mask.sum()

    got = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2], outputs=("logprob",))
    objective(got.logprob.to(F64)).backward()
    objective(reference(theirs[0], theirs[1], y, bias=theirs[2])["logprob"]).backward()
    assert_grads(ours, theirs)
    assert runs == ["forward", "backward"]


def test_logged_outputs_keep_the_gradients_of_the_forward_pass(monkeypatch):
    """A detached entropy, accuracy and confidence beside the loss: the gradients are still
    computed in the forward sweep (three products per chunk) and no backward sweep runs."""
    runs = _spy_sweeps(monkeypatch)
    ours, theirs, y, _ = inputs(43)
    got = linear_cross_entropy(ours[0], ours[1], y, bias=ours[2],
                               outputs=("entropy", "accuracy", "confidence", "z_loss"))  # fmt: skip
    assert not got.entropy.requires_grad and not got.confidence.requires_grad
    got.loss.backward()
    reference(theirs[0], theirs[1], y, bias=theirs[2])["loss"].backward()
    assert_grads(ours, theirs)
    assert runs == ["forward+grads"]


def test_no_gradient_work_without_grad_mode(monkeypatch):
    runs = _spy_sweeps(monkeypatch)
    ours, _, y, _ = inputs(44)
    with torch.no_grad():
        got = linear_cross_entropy(ours[0], ours[1], y, outputs=("logprob", "entropy"))
    assert not got.logprob.requires_grad and runs == ["forward"]


def test_prediction_takes_the_first_of_equal_logits():
    """Tied top logits (an identity head): the first class, as torch.argmax."""
    z = torch.tensor([[1.0, 3.0, 3.0, 0.0], [2.0, 2.0, 2.0, 2.0], [0.0, 0.0, 5.0, 5.0]])
    y = torch.tensor([2, 0, 3])
    got = linear_cross_entropy(z, torch.eye(4), y, outputs=("prediction", "correct", "accuracy"))
    assert torch.equal(got.prediction, z.argmax(-1))
    assert got.correct.tolist() == [False, True, False]
    torch.testing.assert_close(got.accuracy, torch.tensor(1 / 3))


def test_all_ignored_outputs():
    ours, _, y, _ = inputs(45)
    got = linear_cross_entropy(ours[0], ours[1], torch.full_like(y, -100), outputs=ALL)
    assert float(got.accuracy) == 0.0 and not got.correct.any()
    assert torch.equal(got.logprob, torch.zeros_like(got.logprob))
    assert torch.isfinite(got.entropy).all() and (got.entropy > 0).all()


def test_module_and_unrequested_fields():
    ours, theirs, y, _ = inputs(46)
    module = LinearCrossEntropyLoss(shift=True, outputs=("logprob",))
    got = module(ours[0], ours[1], y, ours[2])
    assert got.entropy is None and got.prediction is None and got.accuracy is None
    want = reference(theirs[0], theirs[1], y, bias=theirs[2], shift=True)["logprob"]
    torch.testing.assert_close(got.logprob.to(F64), want.detach(), rtol=1e-5, atol=1e-6)


def _t(*shape, dtype=torch.float32):
    return torch.zeros(shape, dtype=dtype)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"outputs": "logprob"}, TypeError, r"outputs must be a sequence of names"),
        ({"outputs": ("logprobs",)}, ValueError, r"outputs must be names among .* 'logprobs'"),
        ({"entropy_grad": True}, ValueError, r"entropy_grad=True needs the entropy"),
        ({"outputs": ("logprob",), "entropy_grad": True}, ValueError, r"add 'entropy'"),
        ({"outputs": ("lse",), "return_lse": True}, ValueError, r"ask for 'lse' in outputs"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(kwargs, error, match):
    with pytest.raises(error, match=match):
        linear_cross_entropy(_t(4, 8), _t(V, 8), torch.tensor([0, 1, -100, 3]), **kwargs)
