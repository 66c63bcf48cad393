"""The NumPy fast path (crossent._fast) gives the same losses and gradients as PyTorch."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest

import crossent as ce
from crossent import _fast

torch = pytest.importorskip("torch")
F = torch.nn.functional

N, K = 512, 300  # above _fast.MIN_ELEMENTS, so the blocked kernels run


@pytest.fixture
def batch():
    rng = np.random.default_rng(3)
    logits = (rng.normal(size=(N, K)) * 4).astype(np.float32)
    targets = rng.integers(0, K, size=N)
    targets[::7] = -100
    logits[5, 17] = np.inf  # an infinite row forces the safe path for this call
    return logits, targets


def test_fast_path_is_taken():
    x = np.zeros((N, K), np.float32)
    assert _fast.applies(array_api_compat.array_namespace(x), x)


@pytest.mark.parametrize(
    "options",
    [{}, {"label_smoothing": 0.1}, {"weight": True, "label_smoothing": 0.2}, {"reduction": "sum"}],
)
def test_loss_and_gradient_match_torch(batch, options):
    logits, targets = batch
    logits = np.where(np.isinf(logits), 0.0, logits).astype(np.float32)
    options = dict(options)
    if options.pop("weight", False):
        options["weight"] = np.linspace(0.5, 2.0, K).astype(np.float32)
    torch_options = {
        k: torch.tensor(v).double() if k == "weight" else v for k, v in options.items()
    }
    z = torch.tensor(logits, dtype=torch.float64, requires_grad=True)
    expected = F.cross_entropy(z, torch.tensor(targets), **torch_options)
    expected.backward()
    got = ce.softmax_cross_entropy(logits, targets, **options)
    grad = ce.grad.softmax_cross_entropy(logits, targets, **options)
    np.testing.assert_allclose(got, expected.item(), rtol=2e-5)
    np.testing.assert_allclose(grad, z.grad.numpy(), rtol=2e-4, atol=1e-8)


def test_infinite_row_takes_the_safe_path(batch):
    logits, targets = batch
    targets[5] = 17  # the true class holds the +inf: the limit loss of that row is 0
    losses = ce.softmax_cross_entropy(logits, targets, reduction="none")
    grad = ce.grad.softmax_cross_entropy(logits, targets, reduction="none")
    finite = np.where(np.isinf(logits), 0.0, logits)
    expected = F.cross_entropy(
        torch.tensor(finite, dtype=torch.float64), torch.tensor(targets), reduction="none"
    ).numpy()
    others = np.arange(N) != 5
    np.testing.assert_allclose(losses[others], expected[others], rtol=2e-5)
    assert losses[5] == 0 and np.all(grad[5] == 0)
    assert np.isfinite(grad).all()


def test_row_logsumexp_limits():
    x = np.zeros((4, 1 << 15), np.float32)
    x[1, 3] = np.inf
    x[2] = -np.inf
    x[3, 0] = np.nan
    lse = _fast.row_logsumexp(x)
    assert lse[0] == pytest.approx(np.log(1 << 15))
    assert lse[1] == np.inf and lse[2] == -np.inf and np.isnan(lse[3])


@pytest.mark.parametrize("options", [{}, {"z_loss": 1e-3}, {"label_smoothing": 0.1}])
def test_with_loss_equals_loss_and_grad(batch, options):
    logits, targets = batch
    logits = np.where(np.isinf(logits), 0.0, logits).astype(np.float32)
    loss, grad = ce.grad.softmax_cross_entropy(logits, targets, with_loss=True, **options)
    np.testing.assert_allclose(loss, ce.softmax_cross_entropy(logits, targets, **options))
    expected = ce.grad.softmax_cross_entropy(logits.astype(np.float64), targets, **options)
    np.testing.assert_allclose(grad, expected, rtol=1e-4, atol=1e-9)
