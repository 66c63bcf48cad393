"""``ignore_index=`` of the calibration functions: examples with that label are left out.

References: torchmetrics' ``multiclass_calibration_error`` and ``multiclass_accuracy`` with
``ignore_index`` on the same inputs, and every function on the kept rows only (the option's
definition), with weights, leading axes and the streaming state.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest

import crossent.calibration as cal

IGNORE = -100


@pytest.fixture(scope="module")
def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """300 examples of 5 classes, a third of them labelled IGNORE, and real weights."""
    rng = np.random.default_rng(11)
    z = rng.normal(0, 2, (300, 5))
    probs = np.exp(z - z.max(1, keepdims=True))
    probs /= probs.sum(1, keepdims=True)
    labels = rng.integers(0, 5, 300)
    labels[rng.uniform(size=300) < 1 / 3] = IGNORE
    return probs, labels, rng.uniform(0, 2, 300)


@pytest.mark.parametrize("norm", ["l1", "l2", "max"])
def test_ece_matches_torchmetrics_ignore_index(data, norm: str) -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_calibration_error

    probs, labels, _ = data
    theirs = multiclass_calibration_error(
        torch.from_numpy(probs),
        torch.from_numpy(labels),
        num_classes=5,
        n_bins=10,
        norm=norm,
        ignore_index=IGNORE,
    )
    ours = cal.expected_calibration_error(
        probs,
        labels,
        n_bins=10,
        norm=norm,
        right_closed=False,
        ones_in_own_bin=True,
        ignore_index=IGNORE,
    )
    # torchmetrics sums its bins in float32
    assert float(ours) == pytest.approx(float(theirs), abs=1e-6)


@pytest.mark.parametrize("k", [1, 2, 3])
def test_top_k_accuracy_matches_torchmetrics_ignore_index(data, k: int) -> None:
    torch = pytest.importorskip("torch")
    from torchmetrics.functional.classification import multiclass_accuracy

    probs, labels, _ = data
    theirs = multiclass_accuracy(
        torch.from_numpy(probs),
        torch.from_numpy(labels),
        num_classes=5,
        top_k=k,
        average="micro",
        ignore_index=IGNORE,
    )
    ours = cal.top_k_accuracy(probs, labels, k=k, ignore_index=IGNORE)
    assert float(ours) == pytest.approx(float(theirs), rel=1e-6)


CASES = {
    "log_loss": (cal.log_loss, {}),
    "brier_score": (cal.brier_score, {}),
    "label_perplexity": (cal.label_perplexity, {}),
    "top_k_accuracy": (cal.top_k_accuracy, {"k": 2}),
    "ece_quantile_classwise": (
        cal.expected_calibration_error,
        {"binning": "quantile", "scope": "classwise", "n_bins": 7},
    ),
    "rmsce_debiased": (cal.expected_calibration_error, {"norm": "l2", "debias": True}),
    "mce": (cal.expected_calibration_error, {"norm": "max"}),
}
WEIGHTED = {"log_loss", "brier_score", "top_k_accuracy", "ece_quantile_classwise", "mce"}


@pytest.mark.parametrize(
    ("name", "weighted"),
    [(n, False) for n in sorted(CASES)] + [(n, True) for n in sorted(WEIGHTED)],
)
def test_equals_the_function_on_the_kept_rows(data, name: str, weighted: bool) -> None:
    fn, options = CASES[name]
    probs, labels, weights = data
    keep = labels != IGNORE
    extra = {"weights": weights} if weighted else {}
    kept = {"weights": weights[keep]} if weighted else {}
    got = fn(probs, labels, ignore_index=IGNORE, **options, **extra)
    expected = fn(probs[keep], labels[keep], **options, **kept)
    assert float(got) == float(expected)


def _assert_same(a: Any, b: Any) -> None:
    """Equal results: dataclasses field by field, dicts key by key, arrays element by element."""
    if dataclasses.is_dataclass(a):
        assert type(a) is type(b)
        for field in dataclasses.fields(a):
            _assert_same(getattr(a, field.name), getattr(b, field.name))
    elif isinstance(a, dict):
        assert a.keys() == b.keys()
        for key in a:
            _assert_same(a[key], b[key])
    elif isinstance(a, (list, tuple)):
        assert len(a) == len(b)
        for x, y in zip(a, b, strict=True):
            _assert_same(x, y)
    else:
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))


SUMMARIES = {
    "brier_decomposition": (cal.brier_decomposition, {"n_bins": 8}),
    "brier_sums": (cal.brier_sums, {"n_bins": 8}),
    "risk_coverage_curve": (cal.risk_coverage_curve, {}),
    "smooth_ece": (cal.smooth_ece, {}),
    "bootstrap_intervals": (cal.bootstrap_intervals, {"n_resamples": 20, "seed": 1}),
}


@pytest.mark.parametrize("name", sorted(SUMMARIES))
def test_summaries_equal_those_of_the_kept_rows(data, name: str) -> None:
    fn, options = SUMMARIES[name]
    probs, labels, weights = data
    keep = labels != IGNORE
    got = fn(probs, labels, ignore_index=IGNORE, **options)
    _assert_same(got, fn(probs[keep], labels[keep], **options))
    if name in ("brier_sums", "bootstrap_intervals"):  # with weights, dropped alike
        options = {**options, "metrics": ["ece", "brier"]} if name != "brier_sums" else options
        got = fn(probs, labels, ignore_index=IGNORE, weights=weights, **options)
        _assert_same(got, fn(probs[keep], labels[keep], weights=weights[keep], **options))


class _Rows:
    """Values read only by row slices (an HDF5 or zarr dataset's interface)."""

    def __init__(self, a: np.ndarray) -> None:
        self.a, self.shape = a, a.shape

    def __getitem__(self, rows: slice) -> np.ndarray:
        assert isinstance(rows, slice), "read by row slices only"
        return self.a[rows]


@pytest.mark.parametrize("layout", ["array", "rows", "torch"])
def test_temperature_fit_and_decomposition_leave_the_ignored_rows_out(data, layout: str) -> None:
    probs, labels, weights = data
    logits = np.log(probs) * 1.7  # over-confident, so T is well away from 1
    keep = labels != IGNORE
    values: Any = logits
    if layout == "rows":
        values = _Rows(logits)
    elif layout == "torch":
        torch = pytest.importorskip("torch")
        values, labels = torch.from_numpy(logits), torch.from_numpy(labels)
    t_kept = cal.fit_temperature(logits[keep], np.asarray(labels)[keep], weights=weights[keep])
    t = cal.fit_temperature(values, labels, weights=weights, ignore_index=IGNORE)
    assert t == pytest.approx(t_kept, rel=1e-9)
    d = cal.log_loss_decomposition(values, labels, ignore_index=IGNORE)
    d_kept = cal.log_loss_decomposition(logits[keep], np.asarray(labels)[keep])
    for field in ("log_loss", "calibration", "refinement", "temperature"):
        assert getattr(d, field) == pytest.approx(getattr(d_kept, field), rel=1e-9, abs=1e-12)


def test_bootstrap_difference_drops_the_same_rows_for_both_models(data) -> None:
    probs, labels, _ = data
    other = np.roll(probs, 1, axis=1)
    keep = labels != IGNORE
    options = {"n_resamples": 20, "seed": 2}
    got = cal.bootstrap_difference(probs, other, labels, ignore_index=IGNORE, **options)
    _assert_same(got, cal.bootstrap_difference(probs[keep], other[keep], labels[keep], **options))


def test_reliability_curve_and_leading_axes(data) -> None:
    """(batch, tokens, K) predictions with padded labels: the rows are dropped before the
    flattening; the curve equals the one of the kept rows."""
    probs, labels, _ = data
    p3, y3 = probs.reshape(3, 100, 5), labels.reshape(3, 100)
    keep = labels != IGNORE
    for scope in ("top_label", "classwise"):
        got = cal.reliability_curve(p3, y3, scope=scope, ignore_index=IGNORE)
        expected = cal.reliability_curve(probs[keep], labels[keep], scope=scope)
        for field in ("edges", "counts", "confidence", "accuracy"):
            np.testing.assert_array_equal(getattr(got, field), getattr(expected, field))


def test_binary_shorthand_and_torch(data) -> None:
    torch = pytest.importorskip("torch")
    probs, labels, _ = data
    p1 = probs[:, 0]
    y = np.where(labels == IGNORE, IGNORE, labels % 2)
    keep = y != IGNORE
    expected = float(cal.brier_score(p1[keep], y[keep]))
    assert float(cal.brier_score(p1, y, ignore_index=IGNORE)) == expected
    got = cal.log_loss(torch.from_numpy(probs), torch.from_numpy(labels), ignore_index=IGNORE)
    assert isinstance(got, torch.Tensor)
    assert float(got) == pytest.approx(float(cal.log_loss(probs[keep], labels[keep])), rel=1e-12)


def test_streaming_state_drops_the_same_rows(data) -> None:
    probs, labels, weights = data
    state = cal.StreamingCalibration(n_bins=10)
    for start in range(0, 300, 64):
        part = slice(start, start + 64)
        state.update(probs[part], labels[part], weights=weights[part], ignore_index=IGNORE)
    keep = labels != IGNORE
    summary = state.compute()
    assert summary.examples == int(keep.sum())
    one_shot = cal.expected_calibration_error(
        probs, labels, n_bins=10, weights=weights, ignore_index=IGNORE
    )
    assert summary.ece == pytest.approx(float(one_shot), rel=1e-12)


def test_refusals(data) -> None:
    probs, labels, _ = data
    with pytest.raises(ValueError, match="every example's label equals ignore_index=-100"):
        cal.brier_score(probs[:3], [IGNORE] * 3, ignore_index=IGNORE)
    with pytest.raises(TypeError, match=r"ignore_index must be an integer label.*True"):
        cal.brier_score(probs, labels, ignore_index=True)
    # a label other than ignore_index outside [0, K) is still an error
    with pytest.raises(ValueError, match="found -100 at index"):
        cal.brier_score(probs, labels, ignore_index=-1)
    # weights of the wrong shape are named, not mis-indexed
    with pytest.raises(ValueError, match="weights must have the labels' shape"):
        cal.log_loss(probs, labels, weights=np.ones(7), ignore_index=IGNORE)
    # kept rows whose weights are all 0
    w = np.where(labels == IGNORE, 1.0, 0.0)
    with pytest.raises(ValueError, match="weights must not all be 0"):
        cal.brier_score(probs, labels, weights=w, ignore_index=IGNORE)
