"""The NumPy fast path (crossent._fast) gives the same losses and gradients as PyTorch, and the
dispatch (crossent._dispatch) picks it, the torch Functions or the generic code consistently."""

from __future__ import annotations

import array_api_compat
import numpy as np
import pytest
from scipy import special

import crossent as ce
from conftest import to_np
from crossent import _dispatch, _fast

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
    [
        {},
        {"label_smoothing": 0.1},
        {"class_weight": True, "label_smoothing": 0.2},
        {"reduction": "sum"},
    ],
)
def test_loss_and_gradient_match_torch(batch, options):
    logits, targets = batch
    logits = np.where(np.isinf(logits), 0.0, logits).astype(np.float32)
    options = dict(options)
    if options.pop("class_weight", False):
        options["class_weight"] = np.linspace(0.5, 2.0, K).astype(np.float32)
    torch_options = {
        ("weight" if k == "class_weight" else k): torch.tensor(v).double()
        if k == "class_weight"
        else v
        for k, v in options.items()
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


# ----------------------------------------------------------------------------- dispatch


def compat(xp):
    return array_api_compat.array_namespace(xp.asarray([0.0]))


def test_torch_functions_only_for_torch(xp):
    functions = _dispatch.torch_functions(compat(xp))
    if xp.__name__ == "torch":
        from crossent.torch import _functions

        assert functions is _functions
    else:
        assert functions is None


@pytest.mark.parametrize("shape", [(4, 7), (N, K)], ids=["generic", "fast"])
def test_row_statistics_match_scipy_on_either_path(shape):
    rng = np.random.default_rng(8)
    z = rng.normal(scale=3.0, size=shape)
    ns = compat(np)
    assert _fast.applies(ns, z) == (shape == (N, K))
    lse = _dispatch.row_logsumexp(ns, z)
    np.testing.assert_allclose(lse, special.logsumexp(z, axis=-1), rtol=1e-13)
    kept = _dispatch.row_logsumexp(ns, z, keepdims=True)
    np.testing.assert_allclose(kept, special.logsumexp(z, axis=-1, keepdims=True), rtol=1e-13)
    scale = rng.uniform(0.5, 2.0, size=shape[0])
    p, lse = _dispatch.scaled_softmax(ns, z, scale)
    np.testing.assert_allclose(p, special.softmax(z, axis=-1) * scale[:, None], rtol=1e-12)
    np.testing.assert_allclose(lse, special.logsumexp(z, axis=-1), rtol=1e-13)
    index = rng.integers(0, shape[1], size=shape[0])
    want = p.copy()
    want[np.arange(shape[0]), index] -= scale
    np.testing.assert_allclose(_dispatch.subtract_at(ns, p.copy(), index, scale), want)


def test_row_statistics_on_every_backend(xp):
    z = np.array([[0.5, -1.0, 2.0], [3.0, 3.0, 3.0]])
    ns = compat(xp)
    lse = _dispatch.row_logsumexp(ns, xp.asarray(z))
    np.testing.assert_allclose(to_np(lse), special.logsumexp(z, axis=-1), rtol=1e-14)
    along0 = _dispatch.row_logsumexp(ns, xp.asarray(z.T), axis=0)
    np.testing.assert_allclose(to_np(along0), special.logsumexp(z, axis=-1), rtol=1e-14)
    p, lse = _dispatch.scaled_softmax(ns, xp.asarray(z), xp.asarray(np.array([1.0, 2.0])))
    np.testing.assert_allclose(to_np(p), special.softmax(z, axis=-1) * [[1.0], [2.0]])
    g = _dispatch.subtract_at(
        ns, xp.asarray(z), xp.asarray(np.array([2, 0])), xp.asarray(np.array([1.0, 0.5]))
    )
    np.testing.assert_allclose(to_np(g), z - [[0, 0, 1.0], [0.5, 0, 0]])


def test_scaled_softmax_takes_the_limit_of_infinite_rows():
    # the fast kernel gives NaN for such rows; the dispatch then takes the safe path
    z = np.zeros((N, K))
    z[3, 5] = np.inf
    z[4] = -np.inf
    with np.errstate(invalid="ignore"):
        p, lse = _dispatch.scaled_softmax(compat(np), z, np.ones(N))
    assert np.isfinite(p).all() and np.isfinite(lse).all()
    np.testing.assert_array_equal(p[3], np.eye(K)[5])
    np.testing.assert_allclose(p[4], 1 / K)
    np.testing.assert_allclose(lse[[3, 4]], [0.0, np.log(K)])


@pytest.mark.parametrize("threads", [2, 3])
def test_threaded_blocks_give_the_same_bits_as_one_thread(monkeypatch, threads):
    """Many small blocks on several threads: every kernel and a blocked sum equal the one-thread
    result bit for bit, and the caller's np.errstate holds in the workers (no warning from the
    infinite row's exp(inf - inf) or log(0))."""
    rng = np.random.default_rng(11)
    z = (rng.normal(size=(301, 257)) * 30).astype(np.float32)  # some exp(z - max) underflow
    t = rng.integers(0, 257, size=301)
    y = (rng.random(z.shape) < 0.3).astype(np.float32)
    z[-7, 3], z[-2] = np.inf, -np.inf  # in the last run of blocks: a worker thread's
    monkeypatch.setattr(_fast, "MIN_ELEMENTS", 1)
    monkeypatch.setattr(_fast, "BLOCK_ELEMENTS", 257 * 5)  # 61 blocks of 5 rows
    slope = np.linspace(-1, 1, 301, dtype=np.float32)

    def run() -> list[np.ndarray]:
        return [
            _fast.row_logsumexp(z),
            *_fast.softmax_with_lse(z),
            *_fast.focal_margin(z, t),
            _fast.focal_gradient(z, t, slope),
            np.asarray(ce.sigmoid_binary_cross_entropy(z, y)),
            ce.grad.sigmoid_binary_cross_entropy(z, y),
            np.asarray(ce.softmax_focal_loss(z, t)),
            ce.grad.softmax_cross_entropy(z, t),
        ]

    monkeypatch.setattr(_fast, "THREADS", 1)
    one = run()
    monkeypatch.setattr(_fast, "THREADS", threads)
    many = run()
    for a, b in zip(one, many, strict=True):
        np.testing.assert_array_equal(a, b)
