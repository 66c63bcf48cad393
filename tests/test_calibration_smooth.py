"""crossent.calibration.smooth_ece against relplot (the authors' code) and the integral itself."""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import pytest

import crossent.calibration as cal
from crossent._calibration._smooth import _Smoother

relplot = pytest.importorskip("relplot")

DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "netcal-cifar"


def two_columns(f: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities whose top-label confidence is ``f`` (>= 0.5) and hit is ``y``."""
    return np.stack([f, 1 - f], axis=1), np.where(y == 1, 0, 1)


def synthetic(kind: str, n: int = 4000, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Confidences in [0.51, 0.99], away from the ends, with outcomes of a known calibration."""
    rng = np.random.default_rng(seed)
    f = rng.uniform(0.51, 0.99, n)
    truth = {"calibrated": f, "overconfident": f - 0.15, "underconfident": np.sqrt(f)}[kind]
    return f, (rng.random(n) < truth).astype(np.float64)


@pytest.mark.parametrize("kind", ["calibrated", "overconfident", "underconfident"])
def test_reproduces_relplot_away_from_the_ends(kind: str) -> None:
    f, y = synthetic(kind)
    theirs, width = relplot.smECE(f, y, return_width=True)
    ours = cal.smooth_ece(*two_columns(f, y))
    assert ours.bandwidth == width
    # relplot adds 1e-4 per evaluation point to the normalizer: a relative 1e-4 / N
    assert ours.value == pytest.approx(theirs, rel=1e-6)
    for sigma in (0.01, 0.03, 0.1):
        fixed = cal.smooth_ece(*two_columns(f, y), bandwidth=sigma)
        assert fixed.value == pytest.approx(relplot.smECE_sigma(f, y, sigma), rel=1e-6)
        assert fixed.bandwidth == sigma


def test_reproduces_relplot_on_a_real_network() -> None:
    """CIFAR-100 LeNet-5: no confidence near 0 or 1."""
    path = DATA / "lenet-5-cifar-100.npz"
    if not path.exists():
        if os.environ.get("CI"):
            raise FileNotFoundError(path)
        pytest.skip(f"{path} is not here (it is in CI)")
    with np.load(path) as d:
        probs, labels = d["predictions"].astype(np.float64), d["ground_truth"]
    f, y = relplot.multiclass_logits_to_confidences(probs, labels, probs=True)
    theirs, width = relplot.smECE(f, y, return_width=True)
    ours = cal.smooth_ece(probs, labels)
    assert (ours.value, ours.bandwidth) == (pytest.approx(theirs, rel=1e-6), width)


def test_relplot_counts_half_of_an_example_at_1() -> None:
    """The one place the two differ on purpose: relplot mirrors its grid without repeating the
    end points, so an example at exactly 0 or 1 keeps half its mass; weighting those examples
    by 1/2 here reproduces relplot, and the unweighted value is the definition's."""
    f, y = synthetic("overconfident", n=3000, seed=1)
    f[:1000] = 1.0  # confidences that rounded to 1
    half = np.where(f == 1.0, 0.5, 1.0)
    smoother = _Smoother(f, f - y)
    for sigma in (0.02, 0.05):
        theirs = relplot.smECE_sigma(f, y, sigma)
        assert smoother.value(sigma, half) == pytest.approx(theirs, rel=1e-6)
        assert abs(smoother.value(sigma, None) - theirs) > 0.05 * theirs


def smoothed(t: np.ndarray, f: np.ndarray, r: np.ndarray, sigma: float) -> np.ndarray:
    """(1/N) sum_i K(t, f_i) r_i, K(t, f) the density of f + sigma Z folded into [0, 1]: the
    Gaussian at f and at its mirror -f, repeated with period 2 (every image within 6)."""
    total = np.zeros_like(t)
    for shift in 2.0 * np.arange(-3, 4):
        for centre in (f + shift, -f + shift):
            d = (t[:, None] - centre[None, :]) / sigma
            total += np.exp(-0.5 * d * d) @ r
    return total / (math.sqrt(2 * math.pi) * sigma * len(f))


@pytest.mark.parametrize("sigma", [0.02, 0.1, 0.3])
def test_matches_the_kernel_sums(sigma: float) -> None:
    """The definition, brute force in float64: every example's reflected kernel summed exactly.

    smECE_sigma = int_0^1 |h(t)| dt / int_0^1 delta(t) dt with h(t) = (1/N) sum_i K(t, f_i)
    (f_i - y_i) and delta the same with 1 for f - y (its integral is 1). Both integrals are
    relplot's rule, plain sums over round(10 / sigma) evenly spaced points (at least 200), here
    of the exact kernel sums; the grid deposit and FFT convolution must agree with them. A
    fifth of the examples sit at exactly 1 and carry most of the miscalibration: halving their
    mass, as relplot does, is far off.
    """
    rng = np.random.default_rng(0)
    f = rng.uniform(0, 1, 300)
    y = (rng.random(300) < f).astype(np.float64)  # calibrated inside
    f[:60] = 1.0
    y[:60] = rng.random(60) < 0.6  # overconfident at 1
    f[60:70] = 0.0
    t = np.linspace(0, 1, max(round(10 / sigma), 200))
    h = smoothed(t, f, f - y, sigma)
    reference = np.sum(np.abs(h)) / np.sum(smoothed(t, f, np.ones_like(f), sigma))
    ours = _Smoother(f, f - y).value(sigma, None)
    assert ours == pytest.approx(reference, rel=1e-4)
    # The plain sums are the integral to 2% here: they weigh the end points double what the
    # trapezoid rule does, and the miscalibration sits at t = 1 (a lost factor, such as the
    # normalizer's, would be far off).
    fine = np.linspace(0, 1, 5_001)
    assert ours == pytest.approx(
        np.trapezoid(np.abs(smoothed(fine, f, f - y, sigma)), fine), rel=2e-2
    )
    halved = _Smoother(f, f - y).value(sigma, np.where((f == 0) | (f == 1), 0.5, 1.0))
    assert abs(halved - reference) > 0.1 * reference


def test_bandwidth_is_the_fixed_point() -> None:
    """sigma brackets the fixed point: smECE_sigma <= sigma, and one step 2^-10 below, above."""
    f, y = synthetic("overconfident")
    result = cal.smooth_ece(*two_columns(f, y))
    below = result.bandwidth - 2.0**-10
    assert result.value <= result.bandwidth
    assert cal.smooth_ece(*two_columns(f, y), bandwidth=below).value > below


def test_top_label_of_multiclass_probabilities() -> None:
    rng = np.random.default_rng(2)
    probs = rng.dirichlet(np.ones(5) * 0.3, size=3000)
    sharp = probs**1.5 / np.sum(probs**1.5, axis=1, keepdims=True)  # overconfident
    labels = (rng.random((3000, 1)) > np.cumsum(probs, axis=1)).sum(axis=1)
    probs = sharp
    f, y = relplot.multiclass_logits_to_confidences(probs, labels, probs=True)
    interior = (f > 0.002) & (f < 0.998)
    ours = cal.smooth_ece(probs[interior], labels[interior])
    assert ours.value == pytest.approx(relplot.smECE(f[interior], y[interior]), rel=1e-6)


@pytest.mark.parametrize(
    ("bandwidth", "error", "match"),
    [
        (0.0, ValueError, "bandwidth must be a finite number >= 1e-4.*got 0.0"),
        (math.nan, ValueError, "got nan"),
        ("0.1", TypeError, "bandwidth must be a number or None, got '0.1'"),
        (True, TypeError, "got True"),
    ],
)
def test_bad_bandwidth_is_named(bandwidth: object, error: type, match: str) -> None:
    with pytest.raises(error, match=match):
        cal.smooth_ece([[0.6, 0.4]], [0], bandwidth=bandwidth)  # type: ignore[arg-type]


def test_bad_probabilities_are_named() -> None:
    with pytest.raises(ValueError, match=r"probs must be probabilities in \[0, 1\]; found nan"):
        cal.smooth_ece([[0.6, 0.4], [math.nan, 0.5]], [0, 1])
