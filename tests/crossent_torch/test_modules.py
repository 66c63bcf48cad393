"""crossent.torch's nn.Module drop-ins (CrossEntropyLoss, BCEWithLogitsLoss, FocalLoss), on CPU.

Constructor compatibility with torch.nn (same parameters, positions, defaults, buffers, state
dicts, legacy size_average/reduce); options checked at construction; extra_repr; each module a
thin wrapper over its core loss (bit-identical loss and gradient, class dim 1 or 0 for an
unbatched input); parity with the torch.nn module over the option grid; torch.compile; the
error messages; and the deprecated function aliases, which warn and forward.
"""

from __future__ import annotations

import inspect
import itertools

import numpy as np
import pytest

torch = pytest.importorskip("torch")

from ce_torch_support import DYNAMO_WARNING, F64, backward_both, close, pair  # noqa: E402

import crossent as ce  # noqa: E402
import crossent.torch as cet  # noqa: E402

F = torch.nn.functional
nn = torch.nn


# ----------------------------------------------------------------- construction


@pytest.mark.parametrize(
    ("ours", "theirs", "extras"),
    [
        (cet.CrossEntropyLoss, nn.CrossEntropyLoss, {"z_loss": 0.0, "softcap": None}),
        (cet.BCEWithLogitsLoss, nn.BCEWithLogitsLoss, {"label_smoothing": 0.0}),
    ],
    ids=["CrossEntropyLoss", "BCEWithLogitsLoss"],
)
def test_constructor_signature_extends_torch_nn(ours, theirs, extras):
    """torch.nn's parameters in the same order, kind and default; the extras keyword-only."""
    mine = list(inspect.signature(ours.__init__).parameters.values())
    base = list(inspect.signature(theirs.__init__).parameters.values())
    assert [(p.name, p.kind, p.default) for p in mine[: len(base)]] == [
        (p.name, p.kind, p.default) for p in base
    ]
    rest = mine[len(base) :]
    assert {p.name: p.default for p in rest} == extras
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in rest)
    assert issubclass(ours, theirs)


def test_positional_arguments_mean_what_they_mean_in_torch_nn():
    w = torch.rand(5)
    ours = cet.CrossEntropyLoss(w, None, 3, None, "sum", 0.1)
    theirs = nn.CrossEntropyLoss(w, None, 3, None, "sum", 0.1)
    for name in ("ignore_index", "reduction", "label_smoothing"):
        assert getattr(ours, name) == getattr(theirs, name)
    assert torch.equal(ours.weight, theirs.weight)
    pw = torch.rand(4)
    ours_b = cet.BCEWithLogitsLoss(w[:4], None, None, "none", pw)
    theirs_b = nn.BCEWithLogitsLoss(w[:4], None, None, "none", pw)
    assert ours_b.reduction == theirs_b.reduction == "none"
    assert torch.equal(ours_b.weight, theirs_b.weight)
    assert torch.equal(ours_b.pos_weight, theirs_b.pos_weight)


def test_is_a_drop_in_for_torch_nn():
    w = torch.rand(5)
    theirs = nn.CrossEntropyLoss(weight=w, ignore_index=3, label_smoothing=0.1)
    ours = cet.CrossEntropyLoss(weight=torch.ones(5))
    ours.load_state_dict(theirs.state_dict())
    assert isinstance(ours, nn.CrossEntropyLoss)
    assert torch.equal(ours.weight, w)
    assert isinstance(cet.BCEWithLogitsLoss(), nn.BCEWithLogitsLoss)
    # (its legacy size_average and repr checks: test_legacy_size_average_..., test_extra_repr)


def test_state_dicts_load_both_ways():
    """Same buffers as torch.nn: a state dict moves between our module and theirs both ways;
    FocalLoss keeps a tensor alpha as a buffer."""
    ours = cet.CrossEntropyLoss(weight=torch.rand(5), z_loss=1e-3)
    theirs = nn.CrossEntropyLoss(weight=torch.ones(5))
    assert ours.state_dict().keys() == theirs.state_dict().keys()
    theirs.load_state_dict(ours.state_dict())
    assert torch.equal(theirs.weight, ours.weight)
    bce = cet.BCEWithLogitsLoss(weight=torch.rand(3), pos_weight=torch.rand(3))
    torch_bce = nn.BCEWithLogitsLoss(weight=torch.ones(3), pos_weight=torch.ones(3))
    assert bce.state_dict().keys() == torch_bce.state_dict().keys() == {"weight", "pos_weight"}
    torch_bce.load_state_dict(bce.state_dict())
    fresh = cet.BCEWithLogitsLoss(weight=torch.zeros(3), pos_weight=torch.zeros(3))
    fresh.load_state_dict(torch_bce.state_dict())
    assert torch.equal(fresh.weight, bce.weight) and torch.equal(fresh.pos_weight, bce.pos_weight)
    alpha = torch.rand(4)
    focal = cet.FocalLoss(alpha=alpha)
    assert set(focal.state_dict()) == {"alpha"}
    other = cet.FocalLoss(alpha=torch.zeros(4))
    other.load_state_dict(focal.state_dict())
    assert torch.equal(other.alpha, alpha)
    assert cet.FocalLoss(alpha=0.25).state_dict() == {}


def test_legacy_size_average_and_reduce_map_to_reduction():
    with pytest.warns(UserWarning):
        assert cet.CrossEntropyLoss(size_average=False).reduction == "sum"
    with pytest.warns(UserWarning):
        assert cet.CrossEntropyLoss(reduce=False).reduction == "none"
    with pytest.warns(UserWarning):
        assert cet.BCEWithLogitsLoss(size_average=False).reduction == "sum"


@pytest.mark.parametrize(
    ("make", "match"),
    [
        (lambda: cet.CrossEntropyLoss(reduction="avg"), r"reduction must be one of"),
        (lambda: cet.BCEWithLogitsLoss(reduction="avg"), r"reduction must be one of"),
        (lambda: cet.FocalLoss(reduction="avg"), r"reduction must be one of"),
        (lambda: cet.CrossEntropyLoss(label_smoothing=1.5),
         r"label_smoothing must be in \[0, 1\], got 1.5"),
        (lambda: cet.CrossEntropyLoss(softcap=0.0), r"softcap must be None or"),
        (lambda: cet.CrossEntropyLoss(z_loss=-1.0), r"z_loss must be a finite"),
        (lambda: cet.BCEWithLogitsLoss(label_smoothing=-0.1), r"label_smoothing must be in"),
        (lambda: cet.FocalLoss(gamma=-1.0), r"gamma must be a finite number >= 0"),
        (lambda: cet.FocalLoss(alpha=-0.5), r"alpha must be a finite number >= 0"),
    ],
)  # fmt: skip
def test_options_are_checked_at_construction(make, match):
    """A bad option fails when the module is built, not at its first call."""
    with pytest.raises(ValueError, match=match):
        make()


def test_extra_repr():
    assert cet.CrossEntropyLoss().extra_repr() == "reduction='mean'"
    full = cet.CrossEntropyLoss(
        ignore_index=0, reduction="sum", label_smoothing=0.1, z_loss=0.5, softcap=3.0
    )
    assert full.extra_repr() == (
        "reduction='sum', ignore_index=0, label_smoothing=0.1, z_loss=0.5, softcap=3.0"
    )
    assert repr(full) == f"CrossEntropyLoss({full.extra_repr()})"
    assert cet.FocalLoss(alpha=0.25).extra_repr() == "alpha=0.25, gamma=2.0, reduction='mean'"
    assert "z_loss=0.5" in repr(cet.CrossEntropyLoss(z_loss=0.5))
    tensor_alpha = cet.FocalLoss(alpha=torch.ones(3), gamma=1.0, reduction="none")
    assert tensor_alpha.extra_repr() == "alpha=tensor, gamma=1.0, reduction='none'"


# ----------------------------------------------------------------- thin wrappers


def _inputs(kind, shape, gen):
    x = 3 * torch.randn(shape, generator=gen, dtype=F64)
    classes = shape[1] if len(shape) > 1 else shape[0]
    if kind == "prob":
        return x, torch.softmax(torch.randn(shape, generator=gen, dtype=F64), 1)
    if kind == "binary":
        return x, torch.rand(shape, generator=gen, dtype=F64)
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    y = torch.randint(0, classes, target_shape, generator=gen)
    if y.numel() > 2:
        y.view(-1)[2] = 1 if kind == "ignore-1" else -100
    return x, y


WRAPPERS = [
    ("ce", "index", (6, 5), {}),
    ("ce", "index", (3, 5, 2, 2), {"reduction": "none"}),
    ("ce", "index", (5,), {"label_smoothing": 0.1}),
    ("ce", "ignore-1", (6, 5), {"ignore_index": 1, "label_smoothing": 0.2, "z_loss": 1e-2,
                                "softcap": 4.0, "weight": True, "reduction": "sum"}),
    ("ce", "prob", (6, 5), {"label_smoothing": 0.1, "weight": True}),
    ("ce", "prob", (3, 5, 4), {"reduction": "none", "z_loss": 1e-3}),
    ("bce", "binary", (6, 4), {}),
    ("bce", "binary", (3, 4, 2), {"weight": True, "pos_weight": True, "label_smoothing": 0.1,
                                  "reduction": "none"}),
    ("focal", "index", (6, 5), {}),
    ("focal", "index", (3, 5, 4), {"alpha": 0.25, "gamma": 1.0, "reduction": "sum"}),
    ("focal", "ignore-1", (6, 5), {"alpha": "tensor", "ignore_index": 1, "reduction": "none"}),
    ("focal", "index", (5,), {"gamma": 0.5}),
]  # fmt: skip


@pytest.mark.parametrize(
    ("loss", "kind", "shape", "options"),
    WRAPPERS,
    ids=[f"{w[0]}-{w[1]}-{len(w[2])}d-{'-'.join(w[3]) or 'defaults'}" for w in WRAPPERS],
)
def test_modules_are_thin_wrappers_of_the_core(loss, kind, shape, options):
    """module(x, y) is the core loss with the class dim of torch.nn (1, or 0 for an unbatched
    (C,) input) and the module's options: the same loss and gradient, bit for bit."""
    gen = torch.Generator().manual_seed(11)
    x, y = _inputs(kind, shape, gen)
    classes = shape[1] if len(shape) > 1 else shape[0]
    opts = dict(options)
    core = dict(options)
    if opts.get("weight"):
        size = classes if loss == "ce" else shape[-1]
        opts["weight"] = core["weight"] = torch.rand(size, generator=gen, dtype=F64)
    if opts.get("pos_weight"):
        opts["pos_weight"] = core["pos_weight"] = torch.rand(shape[-1], generator=gen, dtype=F64)
    if opts.get("alpha") == "tensor":
        opts["alpha"] = core["alpha"] = torch.rand(classes, generator=gen, dtype=F64)
    axis = 1 if len(shape) > 1 else 0
    if loss == "ce":
        module = cet.CrossEntropyLoss(**opts)
        if "weight" in core:
            core["class_weight"] = core.pop("weight")
        fn = lambda x, y: ce.softmax_cross_entropy(x, y, axis=axis, **core)
    elif loss == "bce":
        module = cet.BCEWithLogitsLoss(**opts)
        fn = lambda x, y: ce.sigmoid_binary_cross_entropy(x, y, **core)
    else:
        module = cet.FocalLoss(**opts)
        fn = lambda x, y: ce.softmax_focal_loss(x, y, axis=axis, **core)
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    out, want = module(a, y), fn(b, y)
    backward_both(out, want)
    assert out.shape == want.shape
    assert torch.equal(out, want)
    assert torch.equal(a.grad, b.grad)


def test_bce_label_smoothing_matches_the_core():
    x = torch.randn(6, 4, dtype=F64)
    t = (torch.rand(6, 4, dtype=F64) > 0.5).to(F64)
    out = cet.BCEWithLogitsLoss(label_smoothing=0.2)(x, t)
    want = ce.sigmoid_binary_cross_entropy(x.numpy(), t.numpy(), label_smoothing=0.2)
    np.testing.assert_allclose(out.item(), float(want), rtol=1e-12)


# ----------------------------------------------------------------- parity with torch.nn


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("shape", [(6, 5), (3, 5, 2, 3), (5,)], ids=["NC", "NCdd", "C"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_cross_entropy_loss_matches_torch_nn(dtype, shape, reduction):
    gen = torch.Generator().manual_seed(0)
    num_classes = shape[1] if len(shape) > 1 else shape[0]
    target_shape = shape[:1] + shape[2:] if len(shape) > 1 else ()
    for smoothing, weighted, ignore in itertools.product([0.0, 0.2], [False, True], [False, True]):
        x = 3 * torch.randn(shape, generator=gen)
        y = torch.randint(0, num_classes, target_shape, generator=gen)
        if ignore and y.numel() > 1:
            y.view(-1)[1] = -100
        w = torch.rand(num_classes, generator=gen, dtype=F64) + 0.1 if weighted else None
        a, b = pair(x, dtype)
        out = cet.CrossEntropyLoss(
            weight=None if w is None else w.to(dtype), reduction=reduction,
            label_smoothing=smoothing,
        )(a, y)  # fmt: skip
        ref = nn.CrossEntropyLoss(weight=w, reduction=reduction, label_smoothing=smoothing)(b, y)
        close(out, ref, dtype)
        backward_both(out, ref)
        close(a.grad, b.grad, dtype)


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16], ids=["f32", "bf16"])
@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_bce_with_logits_loss_matches_torch_nn(dtype, reduction):
    gen = torch.Generator().manual_seed(4)
    for weighted, positive_weighted in itertools.product([False, True], [False, True]):
        x = 4 * torch.randn(5, 3, generator=gen)
        t = torch.rand(5, 3, generator=gen, dtype=F64)
        w = torch.rand(3, generator=gen, dtype=F64) if weighted else None
        pw = 3 * torch.rand(3, generator=gen, dtype=F64) if positive_weighted else None
        a, b = pair(x, dtype)
        ta, tb = pair(t, dtype)
        loss = cet.BCEWithLogitsLoss(
            weight=None if w is None else w.to(dtype),
            pos_weight=None if pw is None else pw.to(dtype),
            reduction=reduction,
        )
        out = loss(a, ta)
        ref = nn.BCEWithLogitsLoss(weight=w, pos_weight=pw, reduction=reduction)(b, tb)
        close(out, ref, dtype)
        backward_both(out, ref)
        close(a.grad, b.grad, dtype)
        close(ta.grad, tb.grad, dtype)


@pytest.mark.parametrize(
    "make",
    [
        lambda: cet.CrossEntropyLoss(),
        lambda: cet.CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3),
        lambda: cet.FocalLoss(gamma=2.0),
        lambda: cet.BCEWithLogitsLoss(),
    ],
    ids=["ce", "ce-options", "focal", "bce"],
)
def test_integer_logits_equal_integer_valued_float_logits(make):
    """Integer logits are accepted (computed in torch's default float): the result is a float
    tensor equal to that of the same values as float32, not truncated to an integer."""
    loss = make()
    x = torch.tensor([[1, 2, -1], [0, 3, 1], [2, 2, 0]])
    y = (x > 1).float() if isinstance(loss, nn.BCEWithLogitsLoss) else torch.tensor([0, 1, 2])
    got, want = loss(x, y), loss(x.float(), y)
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, want)


# ----------------------------------------------------------------- torch.compile


@pytest.mark.parametrize(
    "make",
    [
        lambda: (cet.CrossEntropyLoss(label_smoothing=0.1, z_loss=1e-3, softcap=5.0), "index"),
        lambda: (cet.CrossEntropyLoss(reduction="none"), "prob"),
        lambda: (cet.BCEWithLogitsLoss(pos_weight=torch.full((6,), 2.0)), "binary"),
        lambda: (cet.FocalLoss(gamma=1.5, alpha=0.5), "index"),
    ],
    ids=["ce", "ce-prob", "bce", "focal"],
)
@pytest.mark.filterwarnings(DYNAMO_WARNING)
def test_torch_compile_fullgraph(make):
    module, kind = make()
    gen = torch.Generator().manual_seed(7)
    x = torch.randn(8, 6, generator=gen)
    if kind == "index":
        y = torch.randint(0, 6, (8,), generator=gen)
        y[0] = -100
    elif kind == "prob":
        y = torch.softmax(torch.randn(8, 6, generator=gen), 1)
    else:
        y = torch.rand(8, 6, generator=gen)
    torch._dynamo.reset()
    compiled = torch.compile(module, fullgraph=True, backend="aot_eager")
    a = x.clone().requires_grad_()
    b = x.clone().requires_grad_()
    out = compiled(a, y)
    want = module(b, y)
    out.sum().backward()
    want.sum().backward()
    torch.testing.assert_close(out, want)
    torch.testing.assert_close(a.grad, b.grad)


@pytest.mark.filterwarnings(DYNAMO_WARNING)
@pytest.mark.filterwarnings("ignore:`torch.jit.script_method` is deprecated:DeprecationWarning")
def test_torch_compile_inductor():
    """The default backend too (C++ code generation: one module, to keep the suite quick)."""
    torch._dynamo.reset()
    module = cet.CrossEntropyLoss(label_smoothing=0.1)
    x = torch.randn(8, 6, requires_grad=True)
    y = torch.randint(0, 6, (8,))
    out = torch.compile(module, fullgraph=True)(x, y)
    out.backward()
    grad = x.grad.clone()
    x.grad = None
    module(x, y).backward()
    torch.testing.assert_close(out, module(x, y))
    torch.testing.assert_close(grad, x.grad)


# ----------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("call", "match"),
    [
        (lambda: cet.CrossEntropyLoss(weight=torch.tensor([1.0, -1.0, 1.0, 1.0]))(
            torch.randn(3, 4), torch.tensor([0, 1, 2])),
         r"weight must be finite and >= 0; found -1.0 at class 1"),
        (lambda: cet.CrossEntropyLoss(weight=torch.tensor([1.0, 1.0, float("inf"), 1.0]))(
            torch.randn(3, 4), torch.tensor([0, 1, 2])),
         r"weight must be finite and >= 0; found inf at class 2"),
        (lambda: cet.BCEWithLogitsLoss(pos_weight=torch.tensor([1.0, -2.0]))(
            torch.randn(3, 2), torch.rand(3, 2)),
         r"pos_weight must be finite and >= 0; found -2.0 at index 1"),
        (lambda: cet.BCEWithLogitsLoss(weight=torch.tensor([float("nan"), 1.0]))(
            torch.randn(3, 2), torch.rand(3, 2)),
         r"weight must be finite and >= 0; found nan at index 0"),
    ],
)  # fmt: skip
def test_errors_name_the_offending_value(call, match):
    with pytest.raises(ValueError, match=match):
        call()


# ----------------------------------------------------------------- deprecated aliases


@pytest.mark.parametrize(
    ("alias", "core", "kind", "options"),
    [
        ("cross_entropy", "softmax_cross_entropy", "index", {"label_smoothing": 0.1}),
        ("cross_entropy", "softmax_cross_entropy", "unbatched", {}),
        ("focal_loss", "softmax_focal_loss", "index", {"gamma": 1.5}),
        ("binary_cross_entropy_with_logits", "sigmoid_binary_cross_entropy", "binary", {}),
    ],
    ids=["cross_entropy", "cross_entropy-unbatched", "focal_loss", "bce_with_logits"],
)
def test_deprecated_aliases_warn_and_forward(alias, core, kind, options):
    """crossent.torch.cross_entropy / focal_loss / binary_cross_entropy_with_logits warn and
    give the core loss with torch.nn's class dim (1, or 0 for an unbatched (C,) input);
    cross_entropy's ``weight=`` is the core's ``class_weight=``."""
    gen = torch.Generator().manual_seed(9)
    x = torch.randn(6, 4, generator=gen)
    if kind == "unbatched":
        x, y, axis = x[0], torch.tensor(2), 0
    elif kind == "index":
        y, axis = torch.randint(0, 4, (6,), generator=gen), 1
    else:
        y, axis = torch.rand(6, 4, generator=gen), None
    old_opts, new_opts = dict(options), dict(options)
    if alias == "cross_entropy":
        w = torch.rand(4, generator=gen) + 0.5
        old_opts["weight"], new_opts["class_weight"] = w, w
    if axis is not None:
        new_opts["axis"] = axis
    a, b = x.clone().requires_grad_(), x.clone().requires_grad_()
    with pytest.warns(DeprecationWarning, match=rf"crossent.torch.{alias} is deprecated"):
        out = getattr(cet, alias)(a, y, **old_opts)
    want = getattr(ce, core)(b, y, **new_opts)
    out.backward()
    want.backward()
    assert torch.equal(out, want)
    assert torch.equal(a.grad, b.grad)
