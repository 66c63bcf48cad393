"""Dask arrays through crossent: lazy results, the batch chunks kept, NumPy's values.

Reference: the same function on the NumPy arrays the Dask arrays are made of. Laziness: no
scheduler run happens until ``.compute()`` (a Dask callback counts the runs). Chunks: every
task of the computation holds at most one batch chunk's rows (a callback sees each task's
result), so no step merges the batch into one block; elementwise results keep the input's
batch chunks.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytest

import crossent as ce
import crossent.calibration as cal

da = pytest.importorskip("dask.array")
dask = pytest.importorskip("dask")
from dask.callbacks import Callback  # noqa: E402

N, K, CHUNK = 480, 6, 40  # twelve batch chunks of CHUNK * K = 240 values; N > 240
LIMIT = CHUNK * K  # the most values a task may hold: one chunk of an (N, K) input


class Watch(Callback):
    """Counts scheduler runs and the size of the largest array a task produced."""

    def __init__(self) -> None:
        super().__init__()
        self.runs = 0
        self.largest = 0

    def _start(self, dsk: Any) -> None:
        self.runs += 1

    def _posttask(self, key: Any, result: Any, dsk: Any, state: Any, id: Any) -> None:
        name = key[0] if isinstance(key, tuple) else key
        # from_array's task holding the input, compute()'s concatenation of the output, and
        # broadcast views of a scalar (stride 0: they hold no rows)
        outside = any(result is a for a in DATA.values()) or str(name).startswith("finalize")
        held = isinstance(result, np.ndarray) and 0 not in result.strides
        if held and not outside:
            self.largest = max(self.largest, int(result.size))


def _data() -> dict[str, np.ndarray]:
    rng = np.random.default_rng(21)
    z = rng.normal(0, 2, (N, K))
    p = np.exp(z - z.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    labels = rng.integers(0, K, N)
    padded = labels.copy()
    padded[rng.uniform(size=N) < 0.2] = -100
    return {
        "z": z,
        "p": p,
        "y": labels,
        "y_pad": padded,
        "soft": rng.dirichlet(np.ones(K), N),
        "t01": (rng.uniform(size=(N, K)) < 0.3).astype(np.float64),
        "p01": rng.uniform(0.01, 0.99, (N, K)),
        "w": rng.uniform(0, 2, N),
        "teacher": rng.normal(0, 2, (N, K)),
        "log_soft": np.log(rng.dirichlet(np.ones(K), N)),
        "keep": rng.uniform(size=N) < 0.8,
        "class_w": rng.uniform(0.5, 2, K),
    }


DATA = _data()


def _lazy(name: str) -> Any:
    a = DATA[name]
    if a.shape[0] != N:  # a per-class vector: one chunk
        return da.from_array(a, chunks=a.shape)
    return da.from_array(a, chunks=(CHUNK, *a.shape[1:]))


# name -> (function, argument names, options)
CASES: dict[str, tuple[Callable[..., Any], tuple[str, ...], dict[str, Any]]] = {
    "softmax_ce": (ce.softmax_cross_entropy, ("z", "y"), {}),
    "softmax_ce_sum": (ce.softmax_cross_entropy, ("z", "y"), {"reduction": "sum"}),
    "softmax_ce_none": (ce.softmax_cross_entropy, ("z", "y"), {"reduction": "none"}),
    "softmax_ce_smooth_ignore": (
        ce.softmax_cross_entropy,
        ("z", "y_pad"),
        {"label_smoothing": 0.1, "ignore_index": -100},
    ),
    "softmax_ce_soft": (ce.softmax_cross_entropy, ("z", "soft"), {}),
    "softmax_ce_grad": (ce.grad.softmax_cross_entropy, ("z", "y"), {}),
    "softmax_ce_sample_weight_where": (
        ce.softmax_cross_entropy,
        ("z", "y"),
        {"sample_weight": "w", "where": "keep"},
    ),
    "softmax_ce_class_weight": (
        ce.softmax_cross_entropy,
        ("z", "y_pad"),
        {"class_weight": "class_w"},
    ),
    "cross_entropy": (ce.cross_entropy, ("soft", "p"), {}),
    "sigmoid_bce": (ce.sigmoid_binary_cross_entropy, ("z", "t01"), {}),
    "sigmoid_bce_none": (ce.sigmoid_binary_cross_entropy, ("z", "t01"), {"reduction": "none"}),
    "sigmoid_bce_grad": (ce.grad.sigmoid_binary_cross_entropy, ("z", "t01"), {}),
    "sigmoid_focal": (ce.sigmoid_focal_loss, ("z", "t01"), {}),
    "softmax_focal": (ce.softmax_focal_loss, ("z", "y"), {"gamma": 2.0}),
    "softmax_focal_grad": (ce.grad.softmax_focal_loss, ("z", "y"), {"gamma": 2.0}),
    "poly": (ce.poly_loss, ("z", "y"), {}),
    "poly_none_ignore": (ce.poly_loss, ("z", "y_pad"), {"reduction": "none"}),
    "poly_grad": (ce.grad.poly_loss, ("z", "y"), {}),
    "softmax_ce_z_loss_softcap": (
        ce.softmax_cross_entropy,
        ("z", "y"),
        {"z_loss": 1e-3, "softcap": 5.0},
    ),
    "sigmoid_focal_grad": (ce.grad.sigmoid_focal_loss, ("z", "t01"), {}),
    "hinge": (ce.hinge_loss, ("z", "y"), {}),
    "mse_grad": (ce.grad.mse_loss, ("z", "y"), {}),
    "distillation_grad": (ce.grad.distillation_loss, ("z", "teacher"), {"temperature": 2.0}),
    "nll_grad": (ce.grad.nll_loss, ("log_soft", "y"), {}),
    "kl_div_grad": (ce.grad.kl_div_loss, ("log_soft", "soft"), {}),
    "binary_ce_grad": (ce.grad.binary_cross_entropy, ("p01", "t01"), {}),
    "js_divergence": (ce.js_divergence, ("soft", "p"), {}),
    "categorical_ce": (ce.categorical_cross_entropy, ("p", "y"), {}),
    "categorical_ce_grad": (ce.grad.categorical_cross_entropy, ("p", "y"), {}),
    "binary_ce": (ce.binary_cross_entropy, ("p01", "t01"), {}),
    "nll": (ce.nll_loss, ("log_soft", "y"), {}),
    "kl_div": (ce.kl_div_loss, ("log_soft", "soft"), {}),
    "distillation": (ce.distillation_loss, ("z", "teacher"), {"temperature": 2.0}),
    "logsumexp": (ce.logsumexp, ("z",), {"axis": -1}),
    "log_softmax": (ce.log_softmax, ("z",), {}),
    "entropy": (ce.entropy, ("soft",), {}),
    "kl_divergence": (ce.kl_divergence, ("soft", "p"), {}),
    "log_loss": (cal.log_loss, ("p", "y"), {}),
    "log_loss_weighted": (cal.log_loss, ("p", "y"), {"weights": "w"}),
    "brier": (cal.brier_score, ("p", "y"), {}),
    "top_k": (cal.top_k_accuracy, ("z", "y"), {"k": 2}),
    "perplexity": (cal.label_perplexity, ("p", "y"), {}),
    "ece": (cal.expected_calibration_error, ("p", "y"), {"n_bins": 10}),
    "rmsce_torchmetrics_bins": (
        cal.expected_calibration_error,
        ("p", "y"),
        {"norm": "l2", "right_closed": False, "ones_in_own_bin": True},
    ),
    "mce_weighted": (cal.expected_calibration_error, ("p", "y"), {"norm": "max", "weights": "w"}),
    "ece_classwise": (cal.expected_calibration_error, ("p", "y"), {"scope": "classwise"}),
    "debiased_rmsce": (cal.expected_calibration_error, ("p", "y"), {"norm": "l2", "debias": True}),
    # ignore_index on a lazy batch: the ignored examples are weighted 0 instead of dropped
    "log_loss_ignore": (cal.log_loss, ("p", "y_pad"), {"ignore_index": -100}),
    "brier_ignore_weighted": (
        cal.brier_score,
        ("p", "y_pad"),
        {"ignore_index": -100, "weights": "w"},
    ),
    "perplexity_ignore": (cal.label_perplexity, ("p", "y_pad"), {"ignore_index": -100}),
    "top_k_ignore": (cal.top_k_accuracy, ("z", "y_pad"), {"k": 2, "ignore_index": -100}),
    "ece_ignore": (cal.expected_calibration_error, ("p", "y_pad"), {"ignore_index": -100}),
    "ece_classwise_ignore": (
        cal.expected_calibration_error,
        ("p", "y_pad"),
        {"scope": "classwise", "norm": "max", "ignore_index": -100},
    ),
}
ARRAY_OPTIONS = {"weights", "sample_weight", "where", "class_weight"}


def _call(case: str, lazy: bool) -> Any:
    fn, names, options = CASES[case]
    make = _lazy if lazy else DATA.__getitem__
    args = [make(n) for n in names]
    opts = {k: make(v) if k in ARRAY_OPTIONS else v for k, v in options.items()}
    return fn(*args, **opts)


@pytest.mark.parametrize("case", sorted(CASES))
def test_lazy_chunked_and_equal_to_numpy(case: str) -> None:
    watch = Watch()
    with watch:
        result = _call(case, lazy=True)
    assert isinstance(result, da.Array), type(result)
    assert watch.runs == 0, "building the result ran the scheduler"
    with watch:
        values = result.compute()
    assert watch.runs == 1
    assert watch.largest <= LIMIT, f"a task held {watch.largest} values: the batch was merged"
    expected = _call(case, lazy=False)
    np.testing.assert_allclose(values, np.asarray(expected), rtol=1e-12, atol=1e-14)
    if result.ndim >= 1 and result.shape[0] == N:
        assert result.chunks[0] == (CHUNK,) * (N // CHUNK)


def test_the_watch_sees_a_merged_batch() -> None:
    """The chunk check can fail: a batch rechunked to one block is caught."""
    watch = Watch()
    with watch:
        (_lazy("z") * 2).rechunk({0: -1}).persist()
    assert watch.largest == N * K


def test_class_axis_in_chunks_too() -> None:
    """Logits chunked along the classes as well: the class axis is gathered per row block."""
    z = da.from_array(DATA["z"], chunks=(CHUNK, K // 2))
    watch = Watch()
    with watch:
        result = ce.softmax_cross_entropy(z, _lazy("y"), reduction="none")
        assert watch.runs == 0
        values = result.compute()
    assert result.chunks[0] == (CHUNK,) * (N // CHUNK)
    assert watch.largest <= LIMIT
    expected = ce.softmax_cross_entropy(DATA["z"], DATA["y"], reduction="none")
    np.testing.assert_allclose(values, expected, rtol=1e-12)


def test_quantile_bins_refuse_a_lazy_batch() -> None:
    with pytest.raises(ValueError, match="binning='quantile' sorts every confidence"):
        cal.expected_calibration_error(_lazy("p"), _lazy("y"), binning="quantile")


def test_bad_labels_fail_when_computed() -> None:
    """Value checks would compute the graph, so they wait: a label outside [0, K) raises
    when the result is computed, as NumPy's indexing raises."""
    bad = _lazy("y") + K
    result = ce.softmax_cross_entropy(_lazy("z"), bad)
    with pytest.raises(IndexError, match="out of bounds"):
        result.compute()
    with pytest.raises(IndexError, match="out of bounds"):
        cal.log_loss(_lazy("p"), bad).compute()


def test_import_crossent_does_not_import_dask() -> None:
    import subprocess
    import sys

    code = "import sys, crossent, crossent.calibration; print('dask' in sys.modules)"
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert out.strip() == "False"


@pytest.mark.parametrize("case", ["softmax_ce", "sigmoid_focal_grad", "log_loss", "ece"])
def test_float32_stays_float32(case: str) -> None:
    fn, names, options = CASES[case]
    data = [DATA[n].astype(np.float32) if DATA[n].dtype == np.float64 else DATA[n] for n in names]
    lazy = [da.from_array(a, chunks=(CHUNK, *a.shape[1:])) for a in data]
    result = fn(*lazy, **options)
    expected = fn(*data, **options)
    assert result.dtype == np.float32 == np.asarray(expected).dtype
    np.testing.assert_allclose(result.compute(), expected, rtol=2e-6, atol=1e-7)
