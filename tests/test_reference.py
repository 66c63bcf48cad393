"""The core against independent references: PyTorch, SciPy, scikit-learn and float64 formulas.

Every test runs on each array library of the ``xp`` fixture; the references run on NumPy/torch
float64 copies of the same inputs.
"""

from __future__ import annotations

import numpy as np
import pytest
import scipy.special as sp
import scipy.stats
from sklearn.metrics import hinge_loss as sk_hinge
from sklearn.metrics import log_loss as sk_log_loss
from sklearn.utils.class_weight import compute_class_weight

import crossent as ce
from conftest import to_np

torch = pytest.importorskip("torch")
F = torch.nn.functional

RNG = np.random.default_rng(2026)
N, K = 7, 5
LOGITS = RNG.normal(size=(N, K)) * 3
TARGETS = RNG.integers(0, K, size=N)
PROBS = sp.softmax(RNG.normal(size=(N, K)), axis=-1)
WEIGHT = RNG.uniform(0.2, 2.0, size=K)


def close(a, b, rtol=1e-10, atol=1e-12):
    np.testing.assert_allclose(to_np(a), np.asarray(b, dtype=np.float64), rtol=rtol, atol=atol)


# ---------------------------------------------------------------- primitives and information


def test_primitives_match_scipy(xp):
    x = xp.asarray(LOGITS)
    close(ce.logsumexp(x), sp.logsumexp(LOGITS, axis=-1))
    close(ce.log_softmax(x, axis=0), sp.log_softmax(LOGITS, axis=0))
    close(ce.softmax(x), sp.softmax(LOGITS, axis=-1))
    close(ce.sigmoid(x), sp.expit(LOGITS))
    close(ce.log_sigmoid(x), sp.log_expit(LOGITS))
    close(ce.softplus(x), np.logaddexp(0, LOGITS))


@pytest.mark.parametrize("base", [None, 2, 10])
def test_information_measures_match_scipy(xp, base):
    p, q = xp.asarray(PROBS), xp.asarray(PROBS[::-1].copy())
    scale = 1.0 if base is None else np.log(base)
    close(ce.entropy(p, base=base), scipy.stats.entropy(PROBS, axis=-1, base=base))
    close(ce.kl_divergence(p, q, base=base), sp.rel_entr(PROBS, PROBS[::-1]).sum(-1) / scale)
    close(ce.cross_entropy(p, q, base=base), -sp.xlogy(PROBS, PROBS[::-1]).sum(-1) / scale)
    js = scipy.spatial.distance.jensenshannon(PROBS, PROBS[::-1], axis=-1, base=base) ** 2
    close(ce.js_divergence(p, q, base=base), js, rtol=1e-8)
    close(ce.perplexity(p), np.exp(scipy.stats.entropy(PROBS, axis=-1)))


# ---------------------------------------------------------------- losses against PyTorch


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
@pytest.mark.parametrize("smoothing", [0.0, 0.15])
@pytest.mark.parametrize("weighted", [False, True])
@pytest.mark.parametrize("ignore_index", [-100, 2])  # 2 is a real class id (pytorch #63004)
def test_softmax_cross_entropy_matches_torch(xp, reduction, smoothing, weighted, ignore_index):
    targets = TARGETS.copy()
    targets[1] = ignore_index
    options = {"label_smoothing": smoothing, "reduction": reduction, "ignore_index": ignore_index}
    weight = WEIGHT if weighted else None
    got = ce.softmax_cross_entropy(
        xp.asarray(LOGITS),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        **options,
    )
    z = torch.tensor(LOGITS, requires_grad=True)
    expected = F.cross_entropy(
        z, torch.tensor(targets), weight=None if weight is None else torch.tensor(weight), **options
    )
    close(got, expected.detach().numpy())
    expected.sum().backward()
    grad = ce.grad.softmax_cross_entropy(
        xp.asarray(LOGITS),
        xp.asarray(targets),
        weight=None if weight is None else xp.asarray(weight),
        **options,
    )
    close(grad, z.grad.numpy())


@pytest.mark.parametrize("weighted", [False, True])
def test_probability_targets_and_class_axis_match_torch(xp, weighted):
    logits = RNG.normal(size=(3, K, 4))  # PyTorch's (N, C, d1) layout: axis=1
    targets = sp.softmax(RNG.normal(size=(3, K, 4)), axis=1)
    weight = WEIGHT if weighted else None
    got = ce.softmax_cross_entropy(
        xp.asarray(logits),
        xp.asarray(targets),
        axis=1,
        weight=None if weight is None else xp.asarray(weight),
        label_smoothing=0.1,
    )
    expected = F.cross_entropy(
        torch.tensor(logits),
        torch.tensor(targets),
        weight=None if weight is None else torch.tensor(weight),
        label_smoothing=0.1,
    )
    close(got, expected.numpy())


def test_z_loss_matches_a_float64_formula(xp):
    got = ce.softmax_cross_entropy(
        xp.asarray(LOGITS), xp.asarray(TARGETS), weight=xp.asarray(WEIGHT), z_loss=1e-2
    )
    lse = sp.logsumexp(LOGITS, axis=-1)
    w_t = WEIGHT[TARGETS]
    per = w_t * (lse - LOGITS[np.arange(N), TARGETS]) + 1e-2 * w_t * lse**2
    close(got, per.sum() / w_t.sum())


@pytest.mark.parametrize("reduction", ["mean", "sum", "none"])
def test_sigmoid_bce_matches_torch(xp, reduction):
    targets = RNG.uniform(size=(N, K))
    weight, pos_weight = RNG.uniform(size=(N, K)), RNG.uniform(0.5, 3, size=K)
    got = ce.sigmoid_binary_cross_entropy(
        xp.asarray(LOGITS),
        xp.asarray(targets),
        weight=xp.asarray(weight),
        pos_weight=xp.asarray(pos_weight),
        reduction=reduction,
    )
    z = torch.tensor(LOGITS, requires_grad=True)
    expected = F.binary_cross_entropy_with_logits(
        z,
        torch.tensor(targets),
        weight=torch.tensor(weight),
        pos_weight=torch.tensor(pos_weight),
        reduction=reduction,
    )
    close(got, expected.detach().numpy())
    expected.sum().backward()
    grad = ce.grad.sigmoid_binary_cross_entropy(
        xp.asarray(LOGITS),
        xp.asarray(targets),
        weight=xp.asarray(weight),
        pos_weight=xp.asarray(pos_weight),
        reduction=reduction,
    )
    close(grad, z.grad.numpy())


def test_losses_from_probabilities_match_torch_and_sklearn(xp):
    p = PROBS[:, 0]
    y = (RNG.uniform(size=N) > 0.5).astype(np.float64)
    close(
        ce.binary_cross_entropy(xp.asarray(p), xp.asarray(y)),
        F.binary_cross_entropy(torch.tensor(p), torch.tensor(y)).numpy(),
    )
    close(ce.binary_cross_entropy(xp.asarray(p), xp.asarray(y)), sk_log_loss(y, p))
    close(
        ce.categorical_cross_entropy(xp.asarray(PROBS), xp.asarray(TARGETS)),
        sk_log_loss(TARGETS, PROBS, labels=range(K)),
    )
    # The explicit clip caps a certain mistake at -log(eps), as scikit-learn does.
    certain = xp.asarray(np.array([[1.0, 0.0]]))
    capped = ce.categorical_cross_entropy(certain, xp.asarray(np.array([1])))
    close(capped, -np.log(np.finfo(np.float64).eps))


def focal_reference(z, t, gamma, alpha):
    """torchvision-style softmax focal loss in float64 (no log-space tricks)."""
    p = sp.softmax(z, axis=-1)[np.arange(len(t)), t]
    return (alpha * (1 - p) ** gamma * -np.log(p)).mean()


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_losses_match_references(xp, gamma):
    got = ce.softmax_focal_loss(xp.asarray(LOGITS), xp.asarray(TARGETS), gamma=gamma, alpha=0.3)
    close(got, focal_reference(LOGITS, TARGETS, gamma, 0.3))
    y = (RNG.uniform(size=(N, K)) > 0.5).astype(np.float64)
    p = sp.expit(LOGITS)
    bce = -(y * np.log(p) + (1 - y) * np.log(1 - p))
    p_t = p * y + (1 - p) * (1 - y)
    reference = ((0.25 * y + 0.75 * (1 - y)) * (1 - p_t) ** gamma * bce).mean()
    close(ce.sigmoid_focal_loss(xp.asarray(LOGITS), xp.asarray(y), gamma=gamma), reference)


@pytest.mark.parametrize("gamma", [0.0, 0.5, 1.0, 2.0])
def test_focal_gradients_are_finite_when_saturated(gamma):
    z = torch.tensor([[60.0, 0.0, -5.0], [-60.0, 0.0, 3.0]], requires_grad=True)
    ce.softmax_focal_loss(z, torch.tensor([0, 0]), gamma=gamma).backward()
    assert torch.isfinite(z.grad).all()
    closed = ce.grad.softmax_focal_loss(z.detach(), torch.tensor([0, 0]), gamma=gamma)
    close(closed, z.grad.numpy(), rtol=1e-6, atol=1e-7)
    s = torch.tensor([80.0, -80.0, 0.0], requires_grad=True)
    ce.sigmoid_focal_loss(s, torch.tensor([1.0, 0.0, 1.0]), gamma=gamma).backward()
    assert torch.isfinite(s.grad).all()


def test_distillation_hinge_and_mse(xp):
    teacher = RNG.normal(size=(N, K))
    expected = 9 * F.kl_div(
        F.log_softmax(torch.tensor(LOGITS) / 3, -1),
        F.softmax(torch.tensor(teacher) / 3, -1),
        reduction="batchmean",
    )
    close(ce.distillation_loss(xp.asarray(LOGITS), xp.asarray(teacher), temperature=3.0), expected)
    close(
        ce.hinge_loss(xp.asarray(LOGITS), xp.asarray(TARGETS)),
        sk_hinge(TARGETS, LOGITS, labels=np.arange(K)),
    )
    onehot = np.eye(K)[TARGETS]
    close(
        ce.mse_loss(xp.asarray(LOGITS), xp.asarray(TARGETS)),
        ((sp.softmax(LOGITS, -1) - onehot) ** 2).sum(-1).mean(),
    )


def test_helpers(xp):
    labels = np.array([0, 0, 0, 1, 2, 2])
    close(
        ce.class_weights(xp.asarray(labels), 3),
        compute_class_weight("balanced", classes=np.arange(3), y=labels),
        rtol=1e-6,  # in the library's default float: float32 for torch
    )
    close(ce.one_hot(xp.asarray(TARGETS), K), np.eye(K)[TARGETS])
    uniform = ce.smooth_labels(xp.asarray(TARGETS), smoothing=0.1, num_classes=K)
    close(uniform, 0.9 * np.eye(K)[TARGETS] + 0.1 / K, rtol=1e-6)
    others = ce.smooth_labels(
        xp.asarray(TARGETS), smoothing=0.1, num_classes=K, convention="others"
    )
    close(others, np.where(np.eye(K)[TARGETS] == 1, 0.9, 0.1 / (K - 1)), rtol=1e-6)


# ---------------------------------------------------------------- gradients for every loss

GRADIENT_CASES = {
    "softmax_cross_entropy": (LOGITS, TARGETS, {"weight": WEIGHT, "label_smoothing": 0.1}),
    "sigmoid_binary_cross_entropy": (LOGITS, PROBS, {"pos_weight": WEIGHT}),
    "softmax_focal_loss": (LOGITS, TARGETS, {"gamma": 1.5, "alpha": WEIGHT}),
    "sigmoid_focal_loss": (LOGITS, PROBS, {"gamma": 0.5}),
    "distillation_loss": (LOGITS, PROBS * 4, {"temperature": 2.0}),
    "mse_loss": (LOGITS, TARGETS, {}),
    "hinge_loss": (LOGITS, TARGETS, {}),
    "categorical_cross_entropy": (PROBS, TARGETS, {"label_smoothing": 0.2}),
    "binary_cross_entropy": (PROBS, PROBS[::-1].copy(), {}),
}


@pytest.mark.parametrize("name", sorted(GRADIENT_CASES))
def test_closed_form_gradient_equals_autograd_and_finite_differences(name):
    x, targets, options = GRADIENT_CASES[name]
    loss, grad = getattr(ce, name), getattr(ce.grad, name)
    torch_options = {
        k: torch.tensor(v) if isinstance(v, np.ndarray) else v for k, v in options.items()
    }
    z = torch.tensor(x, requires_grad=True)
    loss(z, torch.tensor(targets), **torch_options).backward()
    closed = grad(x, targets, **options)
    close(closed, z.grad.numpy(), rtol=1e-7, atol=1e-10)
    check = ce.check_gradient(lambda v: loss(v, targets, **options), x, grad=closed, rtol=1e-4)
    assert check.ok, (check.max_abs_error, check.max_rel_error)


def test_check_gradient_catches_a_wrong_gradient():
    wrong = ce.softmax(LOGITS) / N  # forgot to subtract y
    check = ce.check_gradient(lambda v: ce.softmax_cross_entropy(v, TARGETS), LOGITS, grad=wrong)
    assert not check.ok and check.max_abs_error > 0.01
