"""crossent.calibration's bootstrap against brute-force resampling and on calibrated data.

The reference resamples the rows themselves (the documented draws: resample r takes
``rng.integers(0, N, size=N)``) and calls the one-shot metrics on them; the coverage test draws
many small test sets from a known calibrated model whose population values are known.
"""

from __future__ import annotations

import math

import numpy as np
import pytest

import crossent as ce
import crossent.calibration as cal
from crossent._calibration import METRICS


def one_shot(probs: np.ndarray, labels: np.ndarray, **bins: object) -> dict[str, float]:
    """Every metric of the bootstrap, from the public one-shot functions."""
    nats = float(cal.log_loss(probs, labels))
    ece = {
        name: float(cal.expected_calibration_error(probs, labels, **bins, **extra))
        for name, extra in (
            ("ece", {}),
            ("ece_classwise", {"scope": "classwise"}),
            ("mce", {"norm": "max"}),
            ("rmsce", {"norm": "l2"}),
        )
    }
    return {
        "log_loss_nats": nats,
        "log_loss_bits": nats / math.log(2),
        "perplexity": math.exp(nats),
        "accuracy": float(np.mean(probs.argmax(axis=1) == labels)),
        "top5_accuracy": float(cal.top_k_accuracy(probs, labels, k=5)),
        "brier": float(cal.brier_score(probs, labels)),
        **ece,
        "mean_confidence": float(probs.max(axis=1).mean()),
        "entropy_nats": float(np.mean(ce.entropy(probs))),
        "smooth_ece": cal.smooth_ece(probs, labels).value,
        "aurc": cal.risk_coverage_curve(probs, labels).aurc,
    }


def brute_force(probs, labels, n_resamples, seed, **bins):
    rng = np.random.default_rng(seed)
    n = len(labels)
    rows = [
        one_shot(probs[i], labels[i], **bins)
        for i in (rng.integers(0, n, size=n) for _ in range(n_resamples))
    ]
    return {name: np.array([r[name] for r in rows]) for name in METRICS}


def small_problem(n: int = 60, k: int = 7, seed: int = 5) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    probs = np.asarray(ce.softmax(2 * rng.normal(size=(n, k))))
    probs[:6] = np.round(probs[:6], 1)  # tied confidences, and entries on bin edges
    probs[:6] /= probs[:6].sum(axis=1, keepdims=True)
    probs[6] = np.eye(k)[0]  # a confidence of exactly 1
    return probs, rng.integers(0, k, size=n)


BINS = [
    {},
    {"binning": "quantile"},
    {"right_closed": False, "ones_in_own_bin": True, "n_bins": 10},
    {"n_bins": 1},
]


@pytest.mark.parametrize("bins", BINS, ids=["uniform", "quantile", "torchmetrics", "one-bin"])
def test_replicates_are_the_metrics_of_the_resampled_rows(bins: dict) -> None:
    probs, labels = small_problem()
    result = cal.bootstrap_intervals(probs, labels, metrics=METRICS, n_resamples=12, seed=3, **bins)
    reference = brute_force(probs, labels, 12, 3, **bins)
    given = one_shot(probs, labels, **bins)
    for name in METRICS:
        np.testing.assert_allclose(
            result.replicates[name], reference[name], rtol=1e-12, err_msg=name
        )
        assert result[name].estimate == pytest.approx(given[name], rel=1e-12), name


def test_interval_is_the_percentiles_of_the_replicates() -> None:
    probs, labels = small_problem()
    result = cal.bootstrap_intervals(
        probs, labels, metrics=["brier", "ece"], n_resamples=50, confidence_level=0.8, seed=1
    )
    assert list(result.intervals) == ["brier", "ece"]
    for name in ("brier", "ece"):
        reps = result.replicates[name]
        assert reps.shape == (50,)
        low, high = np.quantile(reps, [0.1, 0.9])
        assert (result[name].low, result[name].high) == (low, high)
        assert result[name].standard_error == pytest.approx(np.std(reps, ddof=1))
        assert result[name].bias == pytest.approx(np.mean(reps) - result[name].estimate)
    assert result.confidence_level == 0.8 and result.n_resamples == 50


def test_difference_pairs_the_resamples() -> None:
    probs, labels = small_problem()
    other = np.asarray(ce.softmax(3 * np.log(probs + 1e-3)))  # sharper, other errors
    names = ["log_loss_nats", "accuracy", "ece", "ece_classwise", "aurc"]
    diff = cal.bootstrap_difference(probs, other, labels, metrics=names, n_resamples=30, seed=7)
    a = cal.bootstrap_intervals(probs, labels, metrics=names, n_resamples=30, seed=7)
    b = cal.bootstrap_intervals(other, labels, metrics=names, n_resamples=30, seed=7)
    reference = brute_force(other, labels, 30, 7)
    for name in names:
        np.testing.assert_allclose(diff.replicates[name], b.replicates[name] - a.replicates[name])
        np.testing.assert_allclose(
            diff.replicates[name] + a.replicates[name], reference[name], rtol=1e-12
        )
        assert diff[name].estimate == pytest.approx(b[name].estimate - a[name].estimate)
    same = cal.bootstrap_difference(probs, probs, labels, n_resamples=5)
    assert all(np.all(r == 0) for r in same.replicates.values())


def test_default_metrics_are_the_summary() -> None:
    probs, labels = small_problem()
    result = cal.bootstrap_intervals(probs, labels, n_resamples=2)
    assert list(result.intervals) == [m for m in METRICS if m not in ("smooth_ece", "aurc")]
    three = cal.bootstrap_intervals(*small_problem(k=3), n_resamples=2)
    assert "top5_accuracy" not in three.intervals


def test_seed_and_generator() -> None:
    probs, labels = small_problem()
    run = lambda seed: cal.bootstrap_intervals(
        probs, labels, metrics=["accuracy"], n_resamples=20, seed=seed
    ).replicates["accuracy"]
    np.testing.assert_array_equal(run(4), run(4))
    np.testing.assert_array_equal(run(np.random.default_rng(4)), run(4))
    generator = np.random.default_rng(4)
    assert not np.array_equal(run(generator), run(generator))  # a Generator is advanced


def test_percentile_intervals_cover_the_population_value() -> None:
    """Nominal 90% intervals on 400 test sets of 500 examples from a calibrated model.

    Labels drawn from the predicted probabilities make the model calibrated, so the population
    log-loss is E[H(p)], the accuracy E[max p] and the Brier score E[1 - sum p^2], here by
    Monte Carlo over a million probability vectors (error ~2e-4, against interval widths of
    ~0.05).
    """
    rng = np.random.default_rng(0)
    alpha = np.array([0.6, 0.6, 0.6, 0.6])
    population = rng.dirichlet(alpha, size=1_000_000)
    truth = {
        "log_loss_nats": float(np.mean(ce.entropy(population))),
        "accuracy": float(np.mean(population.max(axis=1))),
        "brier": float(np.mean(1 - np.sum(population**2, axis=1))),
    }
    covered = dict.fromkeys(truth, 0)
    repetitions = 400
    for _ in range(repetitions):
        probs = rng.dirichlet(alpha, size=500)
        labels = (rng.random((500, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
        result = cal.bootstrap_intervals(
            probs, labels, metrics=list(truth), n_resamples=400, confidence_level=0.9, seed=rng
        )
        for name, value in truth.items():
            covered[name] += result[name].low <= value <= result[name].high
    for name, hits in covered.items():
        assert 0.85 <= hits / repetitions <= 0.95, (name, hits)


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"n_resamples": 1}, ValueError, "n_resamples must be an integer from 2 to 100,000, got 1"),
        ({"n_resamples": 10**9}, ValueError, "from 2 to 100,000, got 1000000000"),
        ({"n_resamples": 10.0}, ValueError, "got 10.0"),
        ({"confidence_level": 1.0}, ValueError, r"confidence_level must be a number in \(0, 1\)"),
        ({"confidence_level": 95}, ValueError, "got 95"),
        ({"seed": -1}, TypeError, "seed must be a non-negative integer"),
        ({"seed": "a"}, TypeError, "got 'a'"),
        ({"metrics": ["ece", "ECE"]}, ValueError, "unknown metric 'ECE'"),
        ({"metrics": "ece"}, TypeError, "metrics must be a sequence of names"),
        ({"metrics": []}, ValueError, "metrics is empty"),
        ({"binning": "equal"}, ValueError, "binning must be one of"),
        ({"n_bins": 0}, ValueError, "n_bins must be an integer from 1 to 100,000, got 0"),
    ],
)
def test_bad_options_are_named(kwargs: dict, error: type, match: str) -> None:
    probs, labels = small_problem()
    with pytest.raises(error, match=match):
        cal.bootstrap_intervals(probs, labels, **kwargs)


def test_bad_inputs_are_named() -> None:
    probs, labels = small_problem()
    with pytest.raises(ValueError, match="same shape"):
        cal.bootstrap_difference(probs, probs[:-1], labels)
    with pytest.raises(ValueError, match=r"probs must be probabilities in \[0, 1\]; found 1.5"):
        cal.bootstrap_intervals(np.where(probs == probs.max(), 1.5, probs), labels)
    with pytest.raises(KeyError, match="no interval for 'aurc'"):
        cal.bootstrap_intervals(probs, labels, metrics=["ece"], n_resamples=2)["aurc"]


def test_torch_input_gives_the_numpy_result() -> None:
    torch = pytest.importorskip("torch")
    probs, labels = small_problem()
    ours = cal.bootstrap_intervals(torch.from_numpy(probs), torch.from_numpy(labels), n_resamples=5)
    numpy = cal.bootstrap_intervals(probs, labels, n_resamples=5)
    assert ours.intervals == numpy.intervals
