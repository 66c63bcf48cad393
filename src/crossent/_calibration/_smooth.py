r"""Smooth ECE (Błasiok & Nakkiran 2023): a calibration error that smooths instead of binning.

The definition, for forecasts :math:`f_i \in [0, 1]` with outcomes :math:`y_i \in \{0, 1\}`:
smooth the residuals :math:`r_i = f_i - y_i` with the reflected Gaussian kernel :math:`K_\sigma`
(the density on [0, 1] of :math:`f + \sigma Z` folded back into [0, 1] at both ends, so every
example keeps a unit mass) and integrate the absolute value,

.. math::

    \operatorname{smECE}_\sigma = \int_0^1 \Big| \frac{1}{N} \sum_i K_\sigma(t, f_i)\,
    r_i \Big| \, dt,

then take the bandwidth at the fixed point :math:`\sigma^* = \operatorname{smECE}_{\sigma^*}`
(unique: the error decreases in :math:`\sigma`), found by bisection.

The computation follows the authors' reference (``relplot``) step for step, so that both agree:
a grid of about :math:`10 / \sigma` points (at least 1001) on [0, 1]; every example's mass
split linearly between its two grid neighbours; the reflected convolution; linear
interpolation onto about :math:`10 / \sigma` evaluation points (at least 200); the integral as
the ratio of sums :math:`\sum_t |S_r(t)| / \sum_t S_1(t)` of the smoothed residuals and
masses; ten halvings of [0, 1] for the bandwidth, keeping the upper end of the last bracket
(the smallest bandwidth tried with :math:`\sigma \ge \operatorname{smECE}_\sigma`), bandwidths
under 0.001 counting as too small. The convolution is an FFT on the period-2 circle of the even
extension, O(G log G) for G grid points (relplot convolves directly, O(G^2)), and the grid
deposits are bincounts, so the cost is two O(N) passes plus about ten small FFTs.

Where the two differ, on purpose (each measured against relplot 1.0.3 in the tests):

* relplot mirrors the grid without repeating its end points, so an example at exactly 0 or 1
  (a confidence that rounded to 1.0) keeps only half its mass, in the residual and in the
  normaliser; here the mirror image of an end point lands on itself and every example counts
  once, as the definition says. On real networks with many confidences of 1.0 this moves the
  value a lot (0.076 -> 0.053 on a CIFAR-10 WideResNet); elsewhere the two agree to 1e-8.
* relplot truncates the kernel at distance 0.5 and reflects once; here every image of the
  Gaussian is summed. This matters only for bandwidths above about 0.1.
* relplot's kernel is off-centre by half a grid step when its grid has an even number of
  points (some bandwidths under 0.01); here it is centred.
* relplot adds 1e-4 per evaluation point to the normaliser (a guard against division by zero
  that the ratio of sums does not need): a relative 1e-4 / N.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import array_api_compat.numpy as xnp
import numpy as np

from .._namespace import Array
from ._inputs import _sample_weights
from ._statistics import _numpy_probs, _summaries

# relplot's search: ten halvings of [0, 1]; bandwidths below 0.001 count as too small.
_HALVINGS = 10
_SMALLEST = 0.001


@dataclass(frozen=True)
class SmoothECE:
    r"""A smooth calibration error and the kernel bandwidth it used.

    Attributes
    ----------
    value : float
        The smooth ECE, in [0, 1].
    bandwidth : float
        The Gaussian kernel's standard deviation :math:`\sigma` (the fixed point, or the one
        given).
    """

    value: float
    bandwidth: float


def smooth_ece(
    probs: Array,
    labels: Array,
    /,
    *,
    bandwidth: float | None = None,
    ignore_index: int | None = None,
) -> SmoothECE:
    r"""Smooth ECE of the top-class confidence (Błasiok & Nakkiran 2023).

    With :math:`f_i = \max_k p_{ik}` and :math:`o_i = [\arg\max_k p_{ik} = y_i]` (the top-label
    view of :func:`expected_calibration_error` and relplot's
    ``multiclass_logits_to_confidences``),

    .. math::

        \operatorname{smECE}_\sigma = \int_0^1 \Big| \frac{1}{N}\sum_i K_\sigma(t, f_i)
        (f_i - o_i) \Big| \, dt, \qquad \sigma = \sigma^* :
        \sigma^* = \operatorname{smECE}_{\sigma^*},

    with :math:`K_\sigma` the Gaussian kernel reflected at 0 and 1. Unlike the binned ECE it
    has no bin edges to choose, and it is a consistent calibration measure: small exactly when
    the predictor is close to a perfectly calibrated one. See the module notes for the
    discretization (relplot's) and the few places where relplot's value differs.

    Parameters
    ----------
    probs : array
        Predicted probabilities, shape ``(..., K)``, or ``(N,)`` for a binary class-1
        probability (folded to the top class, as the binned ECE does).
    labels : array
        Integer labels in [0, K).
    bandwidth : float, optional
        A fixed kernel bandwidth :math:`\sigma` (relplot's ``smECE_sigma``); by default the
        fixed point (relplot's ``smECE``). At least 1e-4: the grid has about
        :math:`10 / \sigma` points.
    ignore_index : int, optional
        Examples whose label equals it are left out, as if absent (torchmetrics'
        ``ignore_index``; e.g. -100 for a language model's padding tokens).

    Returns
    -------
    SmoothECE
        ``value`` and ``bandwidth``.

    References
    ----------
    Błasiok, Nakkiran (2023), Smooth ECE: Principled Reliability Diagrams via Kernel Smoothing.
    arXiv:2309.12236; reference code: the ``relplot`` package.

    Examples
    --------
    >>> import numpy as np
    >>> import crossent.calibration as cal
    >>> rng = np.random.default_rng(0)
    >>> conf = rng.uniform(0.5, 1.0, 2000)
    >>> right = rng.random(2000) < conf - 0.1  # 10 points overconfident
    >>> probs = np.stack([conf, 1 - conf], axis=1)
    >>> result = cal.smooth_ece(probs, np.where(right, 0, 1))
    >>> print(round(result.value, 2), round(result.bandwidth, 2))
    0.1 0.1
    """
    if bandwidth is not None:
        bandwidth = _check_bandwidth(bandwidth)
    _, p, y, _ = _numpy_probs(probs, labels, ignore_index=ignore_index)
    return _smooth_ece_of(np.max(p, axis=1), np.argmax(p, axis=1) == y, bandwidth)


def smooth_ece_from_summaries(
    confidence: Array,
    correct: Array,
    /,
    *,
    bandwidth: float | None = None,
    weights: Array | None = None,
) -> SmoothECE:
    """:func:`smooth_ece` from each example's top-class confidence and whether the top class is
    right (a language model's token summaries, or a report's per-example data).

    ``weights`` (non-negative, one per example) weigh each example's kernel mass and residual
    (integer weights equal repeated examples).

    Examples
    --------
    >>> import crossent.calibration as cal
    >>> print(round(cal.smooth_ece_from_summaries([0.9, 0.8, 0.6], [1, 0, 1]).value, 4))
    0.1711
    """
    if bandwidth is not None:
        bandwidth = _check_bandwidth(bandwidth)
    conf, hit = _summaries(confidence, correct)
    w = None
    if weights is not None:
        w = np.asarray(_sample_weights(xnp, np.asarray(weights), conf.shape, like=conf))
    return _smooth_ece_of(conf, hit, bandwidth, w)


def _smooth_ece_of(
    conf: np.ndarray, hit: np.ndarray, bandwidth: float | None, w: np.ndarray | None = None
) -> SmoothECE:
    """Smooth ECE of top-class confidences and hits (weighted by ``w``)."""
    conf = np.asarray(conf, dtype=np.float64)
    smoother = _Smoother(conf, conf - hit)
    if bandwidth is not None:
        return SmoothECE(smoother.value(bandwidth, w), bandwidth)
    value, sigma = smoother.fixed_point(w)
    return SmoothECE(value, sigma)


def _check_bandwidth(bandwidth: float) -> float:
    if isinstance(bandwidth, bool) or not isinstance(bandwidth, (int, float)):
        raise TypeError(f"bandwidth must be a number or None, got {bandwidth!r}")
    if not (math.isfinite(bandwidth) and bandwidth >= 1e-4):
        raise ValueError(
            f"bandwidth must be a finite number >= 1e-4 (the grid has about 10 / bandwidth "
            f"points), got {bandwidth!r}"
        )
    return float(bandwidth)


def _grid_points(sigma: float) -> int:
    """relplot's grid: about 10 / sigma points, at least 1001 (a step of sigma / 10 or less)."""
    return max(2000, round(20 / sigma)) // 2 + 1


def _evaluation_points(sigma: float) -> int:
    return max(round(10 / sigma), 200)


class _Smoother:
    """Smooth ECE of fixed forecasts ``f`` and residuals ``r`` under any example weights.

    The grid cell and split of every forecast depend only on the grid size, and the kernel's
    spectrum only on the bandwidth, so both are kept; the grid masses of one set of weights
    are kept through a bandwidth search (the grid size changes only under bandwidth 0.01). A
    bootstrap resample then costs a few weighted bincounts and a few small FFTs.
    """

    def __init__(self, f: np.ndarray, r: np.ndarray) -> None:
        self.f = f
        self.r = r
        self._cells: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        self._spectra: dict[float, np.ndarray] = {}

    def _deposits(self, m: int, weights: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
        """Residual and mass on a grid of ``m`` points, each example's split linearly between
        its two neighbouring grid points."""
        if m not in self._cells:
            position = self.f * (m - 1)
            j = np.clip(np.floor(position), 0, m - 2).astype(np.intp)
            frac = position - j
            self._cells[m] = (np.concatenate([j, j + 1]), np.concatenate([1 - frac, frac]))
        cells, split = self._cells[m]
        mass = split if weights is None else split * np.tile(weights, 2)
        residual = mass * np.tile(self.r, 2)
        return np.bincount(cells, residual, minlength=m), np.bincount(cells, mass, minlength=m)

    def _spectrum(self, sigma: float, m: int) -> np.ndarray:
        """rFFT of the Gaussian wrapped on the period-2 circle of ``2 (m - 1)`` grid points."""
        if sigma not in self._spectra:
            size = 2 * (m - 1)
            offset = np.arange(size) / (m - 1)
            offset = np.where(offset > 1, offset - 2, offset)  # signed distance on the circle
            images = math.ceil(5 * sigma) + 1  # every image within 10 sigma and more
            shifts = 2.0 * np.arange(-images, images + 1)
            d = offset[:, None] + shifts[None, :]
            kernel = np.exp(-0.5 * (d / sigma) ** 2).sum(axis=1) / (math.sqrt(2 * math.pi) * sigma)
            self._spectra[sigma] = np.fft.rfft(kernel)
        return self._spectra[sigma]

    def _smoothed(self, grid: np.ndarray, sigma: float) -> np.ndarray:
        """Reflected-Gaussian smoothing of grid masses, at the grid points."""
        m = grid.shape[0]
        # Even extension on the circle: node j and its mirror 2 - j; the mirrors of the end
        # nodes are themselves, so they get both copies and every example a unit mass.
        even = np.concatenate([grid, grid[-2:0:-1]])
        even[0] *= 2
        even[m - 1] *= 2
        full = np.fft.irfft(np.fft.rfft(even) * self._spectrum(sigma, m), n=even.shape[0])
        return full[:m]

    def value(
        self,
        sigma: float,
        weights: np.ndarray | None,
        deposits: dict[int, tuple[np.ndarray, np.ndarray]] | None = None,
    ) -> float:
        """smECE at bandwidth ``sigma`` with example weights (None: all 1)."""
        m = _grid_points(sigma)
        deposits = {} if deposits is None else deposits
        if m not in deposits:
            deposits[m] = self._deposits(m, weights)
        residual, mass = deposits[m]
        grid = np.linspace(0.0, 1.0, m)
        t = np.linspace(0.0, 1.0, _evaluation_points(sigma))
        smooth_residual = np.interp(t, grid, self._smoothed(residual, sigma))
        smooth_mass = np.interp(t, grid, self._smoothed(mass, sigma))
        return float(np.sum(np.abs(smooth_residual)) / np.sum(smooth_mass))

    def fixed_point(self, weights: np.ndarray | None) -> tuple[float, float]:
        """``(smECE, sigma)`` at relplot's bisection estimate of ``sigma = smECE_sigma``."""
        values: dict[float, float] = {}
        deposits: dict[int, tuple[np.ndarray, np.ndarray]] = {}

        def too_small(sigma: float) -> bool:
            if sigma < _SMALLEST:
                return True
            values[sigma] = self.value(sigma, weights, deposits)
            return sigma < values[sigma]

        if too_small(1.0):
            return values[1.0], 1.0
        small, large = 0.0, 1.0
        for _ in range(_HALVINGS):
            middle = (small + large) / 2
            if too_small(middle):
                small = middle
            else:
                large = middle
        return values[large], large
