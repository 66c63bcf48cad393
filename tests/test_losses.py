"""Losses against torch.nn.functional, scikit-learn and float64 NumPy formulas, on every backend.

PyTorch puts the class axis at dim 1; crossent at -1 by default, so the references move it.
"""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
from scipy import special
from sklearn.metrics import hinge_loss as sk_hinge_loss
from sklearn.metrics import log_loss
from sklearn.utils.class_weight import compute_class_weight

import crossent as ce
from conftest import _load, to_np

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(1234)
K = 5
WEIGHT = np.array([0.5, 2.0, 1.0, 3.0, 0.25])
REDUCTIONS = ["mean", "sum", "none"]


def t64(a):
    return torch.from_numpy(np.ascontiguousarray(a))


def to_dim1(a):
    """crossent's (..., K) layout -> PyTorch's (N, K, d1, ...)."""
    return np.moveaxis(a, -1, 1) if a.ndim > 2 else a


def index_targets(shape, ignore_index=None, rng=RNG):
    t = rng.integers(0, K, size=shape)
    if ignore_index is not None:
        flat = t.reshape(-1)
        flat[::3] = ignore_index
        flat[1] = (ignore_index + 1) % K if 0 <= ignore_index < K else 1  # some survive
    return t


def torch_ce(logits, targets, **kw):
    z = t64(to_dim1(logits))
    t = t64(targets) if targets.dtype.kind in "iu" else t64(to_dim1(targets))
    if kw.get("weight") is not None:
        kw["weight"] = t64(kw["weight"])
    return F.cross_entropy(z, t, **kw).numpy()


FAST = ("numpy", "torch")
SLOW = ("array_api_strict", "jax")  # jax dispatch costs ~0.3 s per new shape: a sample only


def over_backends(grid, every=8):
    """(backend, *combo): the whole grid on NumPy and PyTorch, every 8th combo on the others."""
    params = []
    for i, combo in enumerate(grid):
        params += [(b, *combo) for b in FAST]
        params += [(b, *combo) for j, b in enumerate(SLOW) if (i + 2 * j) % every == 0]
    return params


def load(name):
    try:
        return _load(name)
    except ImportError:
        pytest.skip(f"{name} is not installed")


def close(got, want, rtol=1e-12, atol=1e-12):
    got = to_np(got)
    want = np.asarray(want, dtype=np.float64)
    assert got.shape == want.shape, (got.shape, want.shape)
    np.testing.assert_allclose(got, want, rtol=rtol, atol=atol)


# ------------------------------------------------------- softmax_cross_entropy, index targets

SCE_GRID = list(
    itertools.product(
        [(6, K), (3, 4, K)],  # shape
        [False, True],  # weight
        [None, -100, 2],  # ignore_index in the targets (2: a real class id, pytorch #63004)
        [0.0, 0.15],  # label smoothing
        REDUCTIONS,
    )
)


@pytest.mark.parametrize(
    ("backend", "shape", "weighted", "ignore", "smoothing", "reduction"), over_backends(SCE_GRID)
)
def test_softmax_ce_index_targets_match_torch(
    backend, shape, weighted, ignore, smoothing, reduction
):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=shape)
    targets = index_targets(shape[:-1], ignore)
    weight = WEIGHT if weighted else None
    ignore_index = -100 if ignore is None else ignore
    opts = dict(weight=weight, ignore_index=ignore_index, label_smoothing=smoothing)
    want = torch_ce(logits, targets, reduction=reduction, **opts)
    if weighted:
        opts["weight"] = xp.asarray(WEIGHT)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits), xp.asarray(targets), reduction=reduction, **opts
    )
    close(got, want)


def test_ignore_index_that_is_a_class_still_enters_the_softmax():
    # pytorch #63004: class 2 is ignored as a target but its logit stays in every softmax
    logits = np.array([[0.0, 1.0, 5.0], [2.0, 0.0, 1.0]])
    got = ce.softmax_cross_entropy(logits, np.array([2, 0]), ignore_index=2, reduction="none")
    np.testing.assert_allclose(got, [0.0, special.logsumexp(logits[1]) - 2.0], rtol=1e-14)
    mean = ce.softmax_cross_entropy(logits, np.array([1, 0]), ignore_index=2)
    want = (special.logsumexp(logits, axis=-1) - [1.0, 2.0]).mean()
    np.testing.assert_allclose(mean, want, rtol=1e-14)


def test_weighted_mean_normalizer_is_sum_of_target_weights():
    # pytorch #50528: the weighted mean is sum w[y] l / sum w[y], not the mean of "none"
    logits = RNG.normal(size=(5, K))
    targets = np.array([0, 1, 1, 3, 4])
    per = ce.softmax_cross_entropy(logits, targets, weight=WEIGHT, reduction="none")
    mean = ce.softmax_cross_entropy(logits, targets, weight=WEIGHT)
    np.testing.assert_allclose(mean, per.sum() / WEIGHT[targets].sum(), rtol=1e-14)
    assert not np.isclose(mean, per.mean())


# ------------------------------------------------ softmax_cross_entropy, probability targets


@pytest.mark.parametrize(
    ("backend", "shape", "weighted", "smoothing", "reduction"),
    over_backends(
        list(itertools.product([(6, K), (3, 4, K)], [False, True], [0.0, 0.2], REDUCTIONS))
    ),
)
def test_softmax_ce_probability_targets_match_torch(backend, shape, weighted, smoothing, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=shape)
    targets = RNG.dirichlet(np.ones(K), size=shape[:-1])
    targets[0, ...] = np.eye(K)[1]  # a hard row among the soft ones
    weight = WEIGHT if weighted else None
    want = torch_ce(logits, targets, weight=weight, label_smoothing=smoothing, reduction=reduction)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        label_smoothing=smoothing,
        reduction=reduction,
    )
    close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_class_axis_one_equals_torch_dim_one(xp, reduction):
    logits = RNG.normal(size=(3, K, 4))  # PyTorch's own layout (N, C, d1)
    targets = index_targets((3, 4), -100)
    want = F.cross_entropy(
        t64(logits), t64(targets), weight=t64(WEIGHT), label_smoothing=0.1, reduction=reduction
    ).numpy()
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        axis=1,
        weight=xp.asarray(WEIGHT),
        label_smoothing=0.1,
        reduction=reduction,
    )
    close(got, want)
    soft = RNG.dirichlet(np.ones(K), size=(3, 4))
    want = F.cross_entropy(t64(logits), t64(np.moveaxis(soft, -1, 1)), reduction=reduction)
    got = ce.softmax_cross_entropy(
        xp.asarray(logits), xp.asarray(np.moveaxis(soft, -1, 1)), axis=1, reduction=reduction
    )
    close(got, want.numpy())


@pytest.mark.parametrize("name", ["int8", "int16", "int32", "int64", "uint8"])
def test_integer_target_dtypes(xp, name):
    # "Integer targets of any integer dtype" (DESIGN.md): not only int64
    logits = RNG.normal(size=(4, K))
    targets = np.array([0, 4, 2, 1])
    got = ce.softmax_cross_entropy(xp.asarray(logits), xp.asarray(targets, dtype=getattr(xp, name)))
    close(got, torch_ce(logits, targets))


# ------------------------------------------------------------------------------ z-loss


def numpy_sce(logits, targets, *, weight=None, ignore_index=-100, e=0.0, z=0.0):
    """(per-sample losses, mean denominator): the spec's float64 formula, index targets."""
    w = np.ones(logits.shape[-1]) if weight is None else weight
    lse = special.logsumexp(logits, axis=-1)
    nlp = lse[..., None] - logits
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    wy = np.where(valid, w[safe], 0.0)
    nll = np.take_along_axis(nlp, safe[..., None], axis=-1)[..., 0]
    smooth = (nlp * w).sum(-1) / logits.shape[-1]
    per = (1 - e) * wy * nll + e * np.where(valid, smooth, 0.0) + z * wy * lse**2
    return per, wy.sum()


@pytest.mark.parametrize(
    ("backend", "weighted", "smoothing", "reduction"),
    over_backends(list(itertools.product([False, True], [0.0, 0.1], REDUCTIONS))),
)
def test_z_loss_index_targets_match_formula(backend, weighted, smoothing, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=3.0, size=(3, 4, K)) + 5.0  # lse far from 0
    targets = index_targets((3, 4), -100)
    weight = WEIGHT if weighted else None
    per, denom = numpy_sce(logits, targets, weight=weight, e=smoothing, z=1e-3)
    base, _ = numpy_sce(logits, targets, weight=weight, e=smoothing)
    # the formula without the z term is PyTorch's
    np.testing.assert_allclose(
        base,
        torch_ce(logits, targets, weight=weight, label_smoothing=smoothing, reduction="none"),
        rtol=1e-12,
    )
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / denom}[reduction]
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        label_smoothing=smoothing,
        z_loss=1e-3,
        reduction=reduction,
    )
    close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_z_loss_probability_targets_match_formula(xp, reduction):
    logits = RNG.normal(scale=3.0, size=(6, K)) - 4.0
    soft = RNG.dirichlet(np.ones(K), size=6)
    lse = special.logsumexp(logits, axis=-1)
    q = 0.9 * soft + 0.1 / K
    per = -(WEIGHT * q * (logits - lse[:, None])).sum(-1) + 0.01 * lse**2
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(soft),
        weight=xp.asarray(WEIGHT),
        label_smoothing=0.1,
        z_loss=0.01,
        reduction=reduction,
    )
    close(got, want)


# ------------------------------------------------------------------- documented deviations


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("smoothing", [0.0, 0.1])
def test_all_targets_ignored_give_zero_and_zero_gradient(reduction, smoothing):
    logits = torch.tensor(RNG.normal(size=(4, K)), requires_grad=True)
    targets = torch.full((4,), -100)
    loss = ce.softmax_cross_entropy(
        logits, targets, weight=t64(WEIGHT), label_smoothing=smoothing, reduction=reduction
    )
    # PyTorch gives NaN here (pytorch #70348)
    assert torch.isnan(F.cross_entropy(logits.detach(), targets, label_smoothing=smoothing))
    np.testing.assert_array_equal(to_np(loss), np.zeros(4) if reduction == "none" else 0.0)
    loss.sum().backward()
    np.testing.assert_array_equal(logits.grad.numpy(), np.zeros((4, K)))


def test_all_ignored_on_every_backend(xp):
    logits = xp.asarray(RNG.normal(size=(2, 3, K)))
    targets = xp.asarray(np.full((2, 3), 7))
    got = ce.softmax_cross_entropy(logits, targets, ignore_index=7, z_loss=0.1)
    assert float(to_np(got)) == 0.0


def test_infinite_logits_give_the_limit(xp):
    inf = math.inf
    logits = np.array(
        [[inf, 0.0, 1.0], [inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, 0.0, 1.0], [-inf, -inf, 2.0]]
    )
    targets = np.array([0, 1, 1, 0, 2])
    got = to_np(ce.softmax_cross_entropy(xp.asarray(logits), xp.asarray(targets), reduction="none"))
    want = [0.0, inf, np.logaddexp(0.0, 1.0), inf, 0.0]
    np.testing.assert_allclose(got, want, rtol=1e-14)
    assert not np.isnan(got).any()
    # finite rows only: the mean is finite; and label smoothing never makes a NaN
    finite = ce.softmax_cross_entropy(xp.asarray(logits[[0, 2, 4]]), xp.asarray(targets[[0, 2, 4]]))
    np.testing.assert_allclose(to_np(finite), np.logaddexp(0.0, 1.0) / 3, rtol=1e-14)
    smoothed = to_np(
        ce.softmax_cross_entropy(
            xp.asarray(logits), xp.asarray(targets), label_smoothing=0.1, reduction="none"
        )
    )
    assert not np.isnan(smoothed).any()


# ------------------------------------------------------------ sigmoid_binary_cross_entropy


BCE_GRID = list(
    itertools.product(
        [(8,), (6, 4)],
        [None, "elementwise", "last"],  # weight
        [False, True],  # pos_weight
        REDUCTIONS,
    )
)


@pytest.mark.parametrize(
    ("backend", "shape", "weight_kind", "use_pos", "reduction"), over_backends(BCE_GRID)
)
def test_sigmoid_bce_matches_torch(backend, shape, weight_kind, use_pos, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=3.0, size=shape)
    targets = RNG.uniform(size=shape)
    targets[..., :2] = np.round(targets[..., :2])  # hard and soft labels
    weight = {
        None: None,
        "elementwise": RNG.uniform(0, 2, size=shape),
        "last": RNG.uniform(0, 2, size=shape[-1:]),
    }[weight_kind]
    pos = RNG.uniform(0.5, 3.0, size=shape[-1:]) if use_pos else None
    want = F.binary_cross_entropy_with_logits(
        t64(logits),
        t64(targets),
        weight=None if weight is None else t64(weight),
        pos_weight=None if pos is None else t64(pos),
        reduction=reduction,
    ).numpy()
    got = ce.sigmoid_binary_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        pos_weight=None if pos is None else xp.asarray(pos),
        reduction=reduction,
    )
    close(got, want)


def test_sigmoid_bce_label_smoothing_is_e_over_two(xp):
    logits = RNG.normal(size=(5, 3))
    targets = RNG.integers(0, 2, size=(5, 3)).astype(np.float64)
    want = F.binary_cross_entropy_with_logits(t64(logits), t64(0.8 * targets + 0.1)).numpy()
    got = ce.sigmoid_binary_cross_entropy(
        xp.asarray(logits), xp.asarray(targets), label_smoothing=0.2
    )
    close(got, want)


def test_sigmoid_bce_is_finite_at_infinite_logits(xp):
    inf = math.inf
    logits = np.array([inf, -inf, inf, -inf, inf])
    targets = np.array([1.0, 0.0, 0.0, 1.0, 0.5])
    got = to_np(
        ce.sigmoid_binary_cross_entropy(
            xp.asarray(logits),
            xp.asarray(targets),
            pos_weight=xp.asarray([2.0]),
            reduction="none",
        )
    )
    np.testing.assert_array_equal(got, [0.0, 0.0, inf, inf, inf])
    # torch gives NaN in the first two (pytorch #49844)
    ok = ce.sigmoid_binary_cross_entropy(xp.asarray(logits[:2]), xp.asarray(targets[:2]))
    assert float(to_np(ok)) == 0.0


# ---------------------------------------------------------------- losses from probabilities


@pytest.mark.parametrize("reduction", REDUCTIONS)
@pytest.mark.parametrize("weighted", [False, True])
def test_binary_cross_entropy_matches_torch(xp, reduction, weighted):
    probs = RNG.uniform(0.01, 0.99, size=(6, 3))
    targets = RNG.uniform(size=(6, 3))
    weight = RNG.uniform(0, 2, size=(6, 3)) if weighted else None
    want = F.binary_cross_entropy(
        t64(probs),
        t64(targets),
        weight=None if weight is None else t64(weight),
        reduction=reduction,
    ).numpy()
    got = ce.binary_cross_entropy(
        xp.asarray(probs),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        reduction=reduction,
    )
    close(got, want)


def test_binary_cross_entropy_matches_log_loss_with_explicit_eps(xp):
    probs = np.array([0.0, 1.0, 0.3, 1.0, 0.0, 0.999, 1e-20])
    labels = np.array([1, 0, 1, 1, 0, 0, 1])
    eps = float(np.finfo(np.float64).eps)
    got = ce.binary_cross_entropy(xp.asarray(probs), xp.asarray(labels.astype(np.float64)), eps=eps)
    close(got, log_loss(labels, probs, labels=[0, 1]), rtol=1e-13)
    # another explicit clip: the loss caps at -log(eps)
    per = ce.binary_cross_entropy(
        xp.asarray(probs), xp.asarray(labels.astype(np.float64)), eps=1e-7, reduction="none"
    )
    clipped = np.clip(probs, 1e-7, 1 - 1e-7)
    close(per, -(labels * np.log(clipped) + (1 - labels) * np.log1p(-clipped)), rtol=1e-9)


@pytest.mark.parametrize(("dtype", "cap"), [("float64", 36.04365338911715), ("float32", 15.942385)])
def test_default_clip_is_machine_epsilon_of_the_dtype(dtype, cap):
    probs = np.array([0.0], dtype=dtype)
    got = ce.binary_cross_entropy(probs, np.array([1.0], dtype=dtype))
    assert got.dtype == np.dtype(dtype)
    np.testing.assert_allclose(float(got), cap, rtol=1e-6)
    np.testing.assert_allclose(float(got), -math.log(np.finfo(dtype).eps), rtol=1e-6)


@pytest.mark.parametrize("weighted", [False, True])
def test_categorical_cross_entropy_matches_log_loss(xp, weighted):
    probs = RNG.dirichlet(np.ones(K), size=40)
    labels = np.concatenate([np.arange(K), RNG.integers(0, K, size=35)])
    probs[3] = np.eye(K)[0]  # a confident miss: true class 3 has probability 0
    sample_weight = WEIGHT[labels] if weighted else None
    want = log_loss(labels, probs, labels=np.arange(K), sample_weight=sample_weight)
    got = ce.categorical_cross_entropy(
        xp.asarray(probs),
        xp.asarray(labels),
        weight=xp.asarray(WEIGHT) if weighted else None,
        eps=float(np.finfo(np.float64).eps),
    )
    close(got, want, rtol=1e-13)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_categorical_cross_entropy_options_match_formula(xp, reduction):
    probs = RNG.dirichlet(np.ones(K), size=(3, 4))
    probs[0, 0] = np.eye(K)[4]  # exact zeros: the clip decides
    targets = index_targets((3, 4), -100)
    targets[0, 0] = 2
    e, eps = 0.1, 1e-6
    logp = np.log(np.clip(probs, eps, 1 - eps))  # no softmax, no renormalization
    valid = targets != -100
    safe = np.where(valid, targets, 0)
    wy = np.where(valid, WEIGHT[safe], 0.0)
    nll = -np.take_along_axis(logp, safe[..., None], -1)[..., 0]
    per = (1 - e) * wy * nll + e * np.where(valid, -(logp * WEIGHT).sum(-1) / K, 0.0)
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / wy.sum()}[reduction]
    got = ce.categorical_cross_entropy(
        xp.asarray(probs),
        xp.asarray(targets),
        eps=eps,
        weight=xp.asarray(WEIGHT),
        label_smoothing=e,
        reduction=reduction,
    )
    close(got, want)


def test_categorical_cross_entropy_probability_targets(xp):
    probs = RNG.dirichlet(np.ones(K), size=6)
    soft = RNG.dirichlet(np.ones(K), size=6)
    want = -(soft * np.log(probs)).sum(-1)
    got = ce.categorical_cross_entropy(xp.asarray(probs), xp.asarray(soft), reduction="none")
    close(got, want)


# ----------------------------------------------------------------------------- focal losses


def softmax_focal_ref(logits, targets, alpha, gamma, ignore_index=-100):
    logp = special.log_softmax(logits, axis=-1)
    valid = targets != ignore_index
    safe = np.where(valid, targets, 0)
    logpt = np.take_along_axis(logp, safe[..., None], axis=-1)[..., 0]
    if alpha is None:
        a = 1.0
    elif np.ndim(alpha) == 0:
        a = alpha
    else:
        a = np.asarray(alpha)[safe]
    per = np.where(valid, -a * (1 - np.exp(logpt)) ** gamma * logpt, 0.0)
    return per, valid.sum()


@pytest.mark.parametrize(
    ("backend", "alpha", "gamma", "reduction"),
    over_backends(list(itertools.product([None, 0.25, "per-class"], [0.0, 0.5, 2.0], REDUCTIONS))),
)
def test_softmax_focal_matches_reference(backend, alpha, gamma, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=(3, 4, K))
    targets = index_targets((3, 4), -100)
    a = WEIGHT / WEIGHT.sum() if alpha == "per-class" else alpha
    per, count = softmax_focal_ref(logits, targets, a, gamma)
    want = {"none": per, "sum": per.sum(), "mean": per.sum() / count}[reduction]
    got = ce.softmax_focal_loss(
        xp.asarray(logits),
        xp.asarray(targets),
        alpha=xp.asarray(a) if alpha == "per-class" else a,
        gamma=gamma,
        reduction=reduction,
    )
    close(got, want, rtol=1e-10)


def test_softmax_focal_with_gamma_zero_is_cross_entropy(xp):
    logits, targets = RNG.normal(size=(6, K)), RNG.integers(0, K, size=6)
    got = ce.softmax_focal_loss(xp.asarray(logits), xp.asarray(targets), gamma=0.0)
    close(got, torch_ce(logits, targets))


def sigmoid_focal_ref(logits, targets, alpha, gamma):
    """torchvision.ops.sigmoid_focal_loss, written out in float64 NumPy."""
    p = special.expit(logits)
    bce = np.logaddexp(0, logits) - logits * targets
    p_t = p * targets + (1 - p) * (1 - targets)
    loss = bce * (1 - p_t) ** gamma
    if alpha is not None and alpha >= 0:
        loss = (alpha * targets + (1 - alpha) * (1 - targets)) * loss
    return loss


@pytest.mark.parametrize(
    ("backend", "alpha", "gamma", "reduction"),
    over_backends(list(itertools.product([0.25, None, 0.9], [0.0, 1.0, 2.0, 3.5], REDUCTIONS))),
)
def test_sigmoid_focal_matches_torchvision_formula(backend, alpha, gamma, reduction):
    xp = load(backend)
    logits = RNG.normal(scale=2.0, size=(6, 3))
    targets = RNG.integers(0, 2, size=(6, 3)).astype(np.float64)
    per = sigmoid_focal_ref(logits, targets, alpha, gamma)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    got = ce.sigmoid_focal_loss(
        xp.asarray(logits), xp.asarray(targets), alpha=alpha, gamma=gamma, reduction=reduction
    )
    close(got, want, rtol=1e-10)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_gradients_finite_at_saturated_logits(gamma):
    # optax #1267: NaN gradients for gamma < 2 once 1 - p_t rounds to 0
    big = [[60.0, -60.0, 0.0], [-1e4, 1e4, 0.0], [800.0, 0.0, -800.0], [0.0, 50.0, 0.0]]
    z = torch.tensor(big, dtype=torch.float64, requires_grad=True)
    targets = torch.tensor([0, 1, 0, 1])
    ce.softmax_focal_loss(z, targets, gamma=gamma).backward()
    assert torch.isfinite(z.grad).all(), z.grad
    closed = to_np(ce.grad.softmax_focal_loss(np.array(big), targets.numpy(), gamma=gamma))
    assert np.isfinite(closed).all()
    np.testing.assert_allclose(closed, z.grad.numpy(), atol=1e-12)

    s = torch.tensor([60.0, -60.0, 1e4, -1e4, 40.0, -40.0], dtype=torch.float64)
    s.requires_grad_(True)
    y = torch.tensor([1.0, 0.0, 1.0, 0.0, 0.0, 1.0])
    loss = ce.sigmoid_focal_loss(s, y, gamma=gamma, reduction="sum")
    assert torch.isfinite(loss)
    loss.backward()
    assert torch.isfinite(s.grad).all(), s.grad
    closed = to_np(
        ce.grad.sigmoid_focal_loss(s.detach().numpy(), y.numpy(), gamma=gamma, reduction="sum")
    )
    np.testing.assert_allclose(closed, s.grad.numpy(), atol=1e-12)


# ------------------------------------------------------------------------------ distillation


@pytest.mark.parametrize(
    ("temperature", "reduction"), list(itertools.product([1.0, 2.0, 4.5], REDUCTIONS))
)
def test_distillation_matches_torch_kl_div(xp, temperature, reduction):
    s, t = RNG.normal(scale=3.0, size=(2, 7, K))
    T = temperature
    ls = F.log_softmax(t64(s) / T, dim=-1)
    pt = F.softmax(t64(t) / T, dim=-1)
    if reduction == "none":
        want = T * T * F.kl_div(ls, pt, reduction="none").sum(-1)
    else:
        want = T * T * F.kl_div(ls, pt, reduction="batchmean" if reduction == "mean" else "sum")
    got = ce.distillation_loss(xp.asarray(s), xp.asarray(t), temperature=T, reduction=reduction)
    close(got, want.numpy())


def test_distillation_axis(xp):
    s, t = RNG.normal(size=(2, 3, K, 2))
    got = ce.distillation_loss(xp.asarray(s), xp.asarray(t), axis=2, temperature=2.0)
    want = ce.distillation_loss(np.moveaxis(s, 2, -1), np.moveaxis(t, 2, -1), temperature=2.0)
    close(got, want)


# ---------------------------------------------------------------------------- hinge and MSE


def test_hinge_matches_sklearn(xp):
    z = RNG.normal(scale=2.0, size=(30, 4))
    y = np.concatenate([np.arange(4), RNG.integers(0, 4, size=26)])
    got = ce.hinge_loss(xp.asarray(z), xp.asarray(y))
    close(got, sk_hinge_loss(y, z, labels=np.arange(4)))


@pytest.mark.parametrize(
    ("margin", "reduction"), list(itertools.product([1.0, 0.3, 2.0], REDUCTIONS))
)
def test_hinge_margin_and_reductions(xp, margin, reduction):
    z = RNG.normal(scale=2.0, size=(3, 5, 4))
    y = RNG.integers(0, 4, size=(3, 5))
    zy = np.take_along_axis(z, y[..., None], -1)[..., 0]
    others = np.where(np.eye(4, dtype=bool)[y], -np.inf, z).max(-1)
    per = np.maximum(0.0, margin + others - zy)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    got = ce.hinge_loss(xp.asarray(z), xp.asarray(y), margin=margin, reduction=reduction)
    close(got, want)


@pytest.mark.parametrize("reduction", REDUCTIONS)
def test_mse_softmax_matches_numpy(xp, reduction):
    z = RNG.normal(size=(6, K))
    y = RNG.integers(0, K, size=6)
    per = ((special.softmax(z, axis=-1) - np.eye(K)[y]) ** 2).sum(-1)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    close(ce.mse_loss(xp.asarray(z), xp.asarray(y), reduction=reduction), want)
    soft = RNG.dirichlet(np.ones(K), size=6)
    per = ((special.softmax(z, axis=-1) - soft) ** 2).sum(-1)
    want = {"none": per, "sum": per.sum(), "mean": per.mean()}[reduction]
    close(ce.mse_loss(xp.asarray(z), xp.asarray(soft), reduction=reduction), want)


def test_mse_sigmoid_matches_numpy(xp):
    # sigmoid: element-wise squared error (the docstring), "mean" over elements
    z = RNG.normal(size=(6, 3))
    y = RNG.integers(0, 2, size=(6, 3)).astype(np.float64)
    per = (special.expit(z) - y) ** 2
    got = ce.mse_loss(xp.asarray(z), xp.asarray(y), activation="sigmoid", reduction="none")
    close(got, per)
    close(ce.mse_loss(xp.asarray(z), xp.asarray(y), activation="sigmoid"), per.mean())


# ---------------------------------------------------------------------------------- helpers


def test_one_hot(xp):
    labels = np.array([[0, 3], [2, 1]])
    got = ce.one_hot(xp.asarray(labels), 4, dtype=xp.float32)
    assert got.dtype == xp.float32
    np.testing.assert_array_equal(to_np(got), np.eye(4)[labels])
    default = ce.one_hot(xp.asarray(labels), 4)
    np.testing.assert_array_equal(to_np(default), np.eye(4)[labels])


@pytest.mark.parametrize("e", [0.0, 0.1, 0.3])
def test_smooth_labels_both_conventions(xp, e):
    labels = np.array([0, 3, 1])
    onehot = np.eye(4)[labels]
    # from indices the result is in the library's default float (float32 in torch)
    uniform = ce.smooth_labels(xp.asarray(labels), num_classes=4, smoothing=e)
    close(uniform, (1 - e) * onehot + e / 4, rtol=1e-6, atol=1e-7)
    others = ce.smooth_labels(xp.asarray(labels), num_classes=4, smoothing=e, convention="others")
    close(others, np.where(onehot == 1, 1 - e, e / 3), rtol=1e-6, atol=1e-7)
    # given a float64 one-hot distribution instead of indices
    close(ce.smooth_labels(xp.asarray(onehot), smoothing=e), (1 - e) * onehot + e / 4)
    for got in (uniform, others):
        np.testing.assert_allclose(to_np(got).sum(-1), 1.0)


def test_smoothing_in_the_loss_equals_smoothed_targets():
    z, y = RNG.normal(size=(5, K)), RNG.integers(0, K, size=5)
    a = ce.softmax_cross_entropy(z, y, label_smoothing=0.2)
    b = ce.softmax_cross_entropy(z, ce.smooth_labels(y, num_classes=K, smoothing=0.2))
    np.testing.assert_allclose(a, b, rtol=1e-13)


def test_class_weights_match_sklearn_balanced(xp):
    labels = np.concatenate([np.arange(K), RNG.integers(0, K, size=50), np.zeros(20, int)])
    want = compute_class_weight("balanced", classes=np.arange(K), y=labels)
    close(ce.class_weights(xp.asarray(labels), K), want, rtol=1e-6)  # default float
    np.testing.assert_allclose(want, len(labels) / (K * np.bincount(labels, minlength=K)))
