"""Evaluating predicted probabilities: calibration error, reliability bins, scores, temperature.

Every metric takes probabilities of shape ``(..., K)`` (classes last) and integer labels of the
leading shape; a 1-D ``probs`` with labels of the same shape is read as the probability of class 1
of a binary problem. Leading axes are flattened: every row is one example.

One module per concern: ``_inputs`` checks and flattens the inputs; ``_binning`` computes the
bin edges and the per-bin sufficient statistics every binned metric comes from (count, sum of
confidences, hits: :func:`bin_statistics`; its notes give the bin-edge conventions that make
the published tools disagree); ``_scores`` holds the reliability curve, the calibration errors
and the proper scores; ``_temperature`` fits and applies a temperature and decomposes the log-loss;
``_streaming`` accumulates the same figures batch by batch and across processes (``_batch_sums``
reduces one batch where it lives).
:mod:`crossent.calibration` is the public face; every name is re-exported here.
"""

from __future__ import annotations

from ._binning import BINNINGS as BINNINGS
from ._binning import MAX_BINS as MAX_BINS
from ._binning import NORMS as NORMS
from ._binning import SCOPES as SCOPES
from ._binning import BinStatistics as BinStatistics
from ._binning import ReliabilityCurve as ReliabilityCurve
from ._binning import _bin_edges as _bin_edges
from ._binning import _bin_statistics as _bin_statistics
from ._binning import _check_binning_options as _check_binning_options
from ._binning import _check_n_bins as _check_n_bins
from ._binning import _confidence_and_hits as _confidence_and_hits
from ._binning import _inner_positions as _inner_positions
from ._binning import _scope_statistics as _scope_statistics
from ._binning import bin_edges as bin_edges
from ._binning import bin_statistics as bin_statistics
from ._bootstrap import MAX_RESAMPLES as MAX_RESAMPLES
from ._bootstrap import METRICS as METRICS
from ._bootstrap import BootstrapResult as BootstrapResult
from ._bootstrap import Interval as Interval
from ._bootstrap import bootstrap_difference as bootstrap_difference
from ._bootstrap import bootstrap_intervals as bootstrap_intervals
from ._inputs import _check_finite_or_neg_inf as _check_finite_or_neg_inf
from ._inputs import _choice as _choice
from ._inputs import _log_of_base as _log_of_base
from ._inputs import _onehot as _onehot
from ._inputs import _out as _out
from ._inputs import _precise as _precise
from ._inputs import _prepare as _prepare
from ._inputs import _prepare_probs as _prepare_probs
from ._inputs import _take as _take
from ._scores import _nll_of_probs as _nll_of_probs
from ._scores import brier_score as brier_score
from ._scores import expected_calibration_error as expected_calibration_error
from ._scores import label_perplexity as label_perplexity
from ._scores import log_loss as log_loss
from ._scores import reliability_curve as reliability_curve
from ._scores import top_k_accuracy as top_k_accuracy
from ._smooth import SmoothECE as SmoothECE
from ._smooth import smooth_ece as smooth_ece
from ._smooth import smooth_ece_from_summaries as smooth_ece_from_summaries
from ._statistics import BrierDecomposition as BrierDecomposition
from ._statistics import BrierSums as BrierSums
from ._statistics import RiskCoverage as RiskCoverage
from ._statistics import brier_decomposition as brier_decomposition
from ._statistics import brier_sums as brier_sums
from ._statistics import risk_coverage_curve as risk_coverage_curve
from ._statistics import risk_coverage_from_summaries as risk_coverage_from_summaries
from ._streaming import CalibrationSummary as CalibrationSummary
from ._streaming import ClassStatistics as ClassStatistics
from ._streaming import StreamingCalibration as StreamingCalibration
from ._temperature import KINDS as KINDS
from ._temperature import LogLossDecomposition as LogLossDecomposition
from ._temperature import _as_logits as _as_logits
from ._temperature import _fit as _fit
from ._temperature import _log_of_probs as _log_of_probs
from ._temperature import _looks_like_probs as _looks_like_probs
from ._temperature import _resolve_kind as _resolve_kind
from ._temperature import _row_terms as _row_terms
from ._temperature import apply_temperature as apply_temperature
from ._temperature import fit_temperature as fit_temperature
from ._temperature import log_loss_decomposition as log_loss_decomposition

__all__ = [
    "MAX_BINS",
    "MAX_RESAMPLES",
    "METRICS",
    "BinStatistics",
    "BootstrapResult",
    "BrierDecomposition",
    "BrierSums",
    "CalibrationSummary",
    "ClassStatistics",
    "Interval",
    "LogLossDecomposition",
    "ReliabilityCurve",
    "RiskCoverage",
    "SmoothECE",
    "StreamingCalibration",
    "apply_temperature",
    "bin_edges",
    "bin_statistics",
    "bootstrap_difference",
    "bootstrap_intervals",
    "brier_decomposition",
    "brier_score",
    "brier_sums",
    "expected_calibration_error",
    "fit_temperature",
    "label_perplexity",
    "log_loss",
    "log_loss_decomposition",
    "reliability_curve",
    "risk_coverage_curve",
    "risk_coverage_from_summaries",
    "smooth_ece",
    "smooth_ece_from_summaries",
    "top_k_accuracy",
]
