"""Streaming, mergeable calibration metrics: batch by batch, across processes.

:class:`StreamingCalibration` keeps the sufficient statistics of the one-shot figures (per-bin
counts and sums of weight, confidence and hits; the sums of the per-example log-loss and Brier
score; class-wise, the same per class) as float64 NumPy arrays on the host. ``update`` reduces
a batch to them where the batch lives (on the GPU for a CUDA tensor) and copies only those
``O(B)`` (class-wise ``O(K B)``) numbers to the host; ``merge`` adds two states, ``sync``
all-reduces them over ``torch.distributed``, ``compute`` turns them into the figures with the
same formulas as the one-shot functions (:func:`~crossent.calibration.expected_calibration_error`
and its neighbours).
"""

from __future__ import annotations

import copy
import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import array_api_compat.numpy as xnp
import numpy as np

from .._namespace import Array, default_int, numel, quiet_numpy, to_numpy
from .._primitives import _softmax
from ._batch_sums import (
    diagnose,
    prediction_sums,
    refuse_traced,
    shape_of,
    summary_sums,
    weights_of,
)
from ._binning import BinStatistics, ReliabilityCurve, _check_binning_options, _uniform_edges
from ._inputs import _choice, _drop_ignored, _prepare
from ._temperature import KINDS, _resolve_kind

_INT = np.int64
_FLOAT = np.float64


@dataclass(frozen=True)
class ClassStatistics:
    """Per-class figures of a :class:`CalibrationSummary` (arrays of shape ``(K,)``).

    Attributes
    ----------
    count : numpy.ndarray
        Number (total weight) of examples whose label is the class.
    frequency : numpy.ndarray
        ``count`` over all examples.
    mean_probability : numpy.ndarray
        Mean predicted probability of the class over all examples.
    recall : numpy.ndarray
        Fraction of the class's examples whose top class is the label; NaN for an absent class.
    log_loss : numpy.ndarray
        Mean log-loss (nats) of the class's examples; NaN for an absent class.
    ece : numpy.ndarray
        The class's term of the class-wise ECE, :math:`\\sum_b \\frac{n_{kb}}{N} \\lvert
        \\operatorname{acc}_k(b) - \\operatorname{conf}_k(b) \\rvert`.
    """

    count: np.ndarray
    frequency: np.ndarray
    mean_probability: np.ndarray
    recall: np.ndarray
    log_loss: np.ndarray
    ece: np.ndarray


@dataclass(frozen=True)
class CalibrationSummary:
    """The figures of a :class:`StreamingCalibration` (Python floats and NumPy arrays).

    Attributes
    ----------
    examples : int
        Number of examples seen.
    weight : float
        Their total weight (``examples`` when no weights were given).
    log_loss : float
        Mean log-loss in nats (:func:`~crossent.calibration.log_loss`, clipped as it clips).
    accuracy : float
        Fraction of examples whose top class (the first on ties) is the label.
    brier : float or None
        Multiclass Brier score; None when per-example summaries came without a Brier term.
    ece, mce, rmsce : float
        Top-label expected, maximum and root-mean-square calibration errors.
    ece_classwise : float or None
        Class-wise ECE; None unless the state is class-wise and every example came with its
        full prediction.
    mean_confidence : float
        Mean top-class probability.
    curve : ReliabilityCurve
        Top-label reliability curve (NumPy arrays; edges in float64).
    classwise_curve : ReliabilityCurve or None
        Class-wise reliability curve, shape ``(K, B)``, when class-wise figures are available.
    classes : ClassStatistics or None
        Per-class figures, when class-wise figures are available.
    """

    examples: int
    weight: float
    log_loss: float
    accuracy: float
    brier: float | None
    ece: float
    mce: float
    rmsce: float
    ece_classwise: float | None
    mean_confidence: float
    curve: ReliabilityCurve
    classwise_curve: ReliabilityCurve | None
    classes: ClassStatistics | None


# The state's layout: name, shape (with "B" the bins, "K" the classes), dtype. The order is the
# order of the packed vector that ``sync`` all-reduces, so every process must use the same one.
_TOP = (
    ("counts", ("B",), _INT),
    ("from_summaries", (), _INT),  # examples without a full prediction (no class-wise figures)
    ("without_brier", (), _INT),  # examples whose Brier term is unknown
    ("weighted", (), _INT),  # examples given with a weight (the debiased l2 needs counts)
    ("weight", ("B",), _FLOAT),
    ("confidence", ("B",), _FLOAT),
    ("hits", ("B",), _FLOAT),
    ("nll", (), _FLOAT),
    ("brier", (), _FLOAT),
)
_CLASSWISE = (
    ("class_counts", ("K", "B"), _INT),
    ("class_weight", ("K", "B"), _FLOAT),
    ("class_confidence", ("K", "B"), _FLOAT),
    ("class_hits", ("K", "B"), _FLOAT),
    ("label_hits", ("K",), _FLOAT),  # weighted hits, summed by label (per-class recall)
    ("label_nll", ("K",), _FLOAT),  # weighted log-loss, summed by label
)
# Per-batch checks packed beside the sums, so an accelerator is read once per batch.
_CHECKS = ("bad_labels", "bad_values", "bad_weights")


def _layout(n_bins: int, k: int | None, classwise: bool) -> list[tuple[str, tuple[int, ...], Any]]:
    sizes = {"B": n_bins, "K": k}
    entries = list(_TOP) + (list(_CLASSWISE) if classwise and k is not None else [])
    return [(name, tuple(int(sizes[d] or 0) for d in dims), dtype) for name, dims, dtype in entries]


class StreamingCalibration:
    r"""Calibration metrics accumulated batch by batch, mergeable, synchronizable.

    ``update`` adds a batch of predictions (probabilities or logits, on any array library, on
    any device), ``update_summaries`` a batch of per-example summaries (top-1 confidence,
    correct or not, log-loss: a language model's tokens need no logits), ``merge`` or ``+``
    adds another state, ``sync`` all-reduces the state over ``torch.distributed``, and
    ``compute`` gives the figures of every example seen: log-loss, accuracy, Brier score, ECE
    (top-label and class-wise), MCE, RMSCE and the reliability curves, with the formulas of the
    one-shot functions (:func:`~crossent.calibration.expected_calibration_error`, ...).

    What is exact. The counts (examples, bin counts and, without weights, hits) are integers
    equal to the one-shot's: every bin is decided as the one-shot decides it, the confidence
    compared with the edges ``i / B`` rounded to the batch's dtype, so they agree even for a
    confidence on an edge. The sums (confidence per bin, log-loss, Brier) are float64 sums of
    the per-example terms the one-shot computes in the batch's dtype. With every example in one
    float64 NumPy batch, the ECE, MCE and RMSCE (top-label and class-wise), the reliability
    curves and the log-loss are bitwise the one-shot's (the same terms added in the same
    order); over several batches the per-batch sums are added in another order, about 1e-16
    relative apart. The Brier term is :math:`\sum_k p_k^2 - 2 p_y + 1` (one pass over the row,
    no one-hot), which rounds differently from the one-shot's :math:`\sum_k (p_k - [y = k])^2`
    by about the dtype's epsilon per example. For float32 predictions the one-shot log-loss and
    Brier score are float32 means and the float64 sums here are the more accurate. On a GPU,
    ``torch.bincount``'s float64 atomic additions make the last bit of a bin's sum depend on
    the scheduling. Logits are turned into probabilities by :func:`crossent.softmax`, as
    ``crossent report`` does.

    Only uniform bins stream: quantile edges are quantiles of every confidence, unknown until
    the last batch, so ``binning="quantile"`` raises.

    On an accelerator the ``(N, K)`` batch never leaves the device: it is reduced there, in
    float64 where the library has it (JAX without x64 sums each batch in float32; the batches
    are then added in float64 on the host), to the per-bin sums, which are copied to the host in one
    transfer of ``O(B)`` numbers (``O(K B)`` class-wise) together with the counts of invalid
    labels, values and weights (so a bad batch raises, naming the first bad value, without a
    second read). That copy synchronizes the host with the device once per batch.

    Parameters
    ----------
    n_bins : int, default 15
        Number of equal-width confidence bins B.
    binning : {"uniform"}
        Only uniform bins stream; "quantile" raises a ValueError.
    right_closed : bool, default True
        ``(lo, hi]`` bins (Guo et al., scikit-learn) or ``[lo, hi)`` (netcal, torchmetrics).
    ones_in_own_bin : bool, default False
        With ``right_closed=False``, confidences equal to 1.0 in an extra bin (torchmetrics).
    num_classes : int, optional
        K; inferred from the first batch of predictions when not given. Every batch must have
        it.
    classwise : bool, default False
        Also keep the ``K x B`` class-wise bins and per-class sums (class-wise ECE and curve,
        per-class figures). Each batch then costs a pass over every class probability; off,
        the state is ``O(B)`` and a batch costs ``O(N)`` after the softmax.
    kind : {"auto", "probs", "logits"}
        What ``update``'s predictions are; "auto" decides on the first batch (probabilities
        when every value is in [0, 1] and every row sums to 1) and keeps that decision.
    eps : float, optional
        The clip of the log-loss (:func:`~crossent.calibration.log_loss`); default the machine
        epsilon of each batch's dtype.

    Examples
    --------
    >>> import numpy as np
    >>> import crossent.calibration as cal
    >>> rng = np.random.default_rng(0)
    >>> probs = rng.dirichlet(np.ones(4), size=1000)
    >>> labels = rng.integers(0, 4, 1000)
    >>> state = cal.StreamingCalibration(n_bins=10, classwise=True)
    >>> for start in range(0, 1000, 300):
    ...     state.update(probs[start : start + 300], labels[start : start + 300])
    >>> summary = state.compute()
    >>> one_shot = cal.expected_calibration_error(probs, labels, n_bins=10)
    >>> print(summary.examples, bool(np.isclose(summary.ece, float(one_shot), rtol=1e-12)))
    1000 True
    """

    def __init__(
        self,
        *,
        n_bins: int = 15,
        binning: str = "uniform",
        right_closed: bool = True,
        ones_in_own_bin: bool = False,
        num_classes: int | None = None,
        classwise: bool = False,
        kind: str = "auto",
        eps: float | None = None,
    ) -> None:
        _check_binning_options(n_bins, binning, "top_label", right_closed, ones_in_own_bin)
        if binning != "uniform":
            raise ValueError(
                f"binning={binning!r} cannot stream: quantile edges are quantiles of every "
                "confidence, unknown until the last batch; use binning='uniform', or the "
                "one-shot functions on the whole set"
            )
        if num_classes is not None and (
            isinstance(num_classes, bool) or not isinstance(num_classes, int) or num_classes < 2
        ):
            raise ValueError(f"num_classes must be an integer >= 2, got {num_classes!r}")
        if eps is not None and not 0.0 <= float(eps) < 0.5:
            raise ValueError(f"eps must be in [0, 0.5), got {eps!r}")
        self.n_bins = n_bins
        self.right_closed = right_closed
        self.ones_in_own_bin = ones_in_own_bin
        self.classwise = bool(classwise)
        self.kind = _choice(kind, KINDS, "kind")
        self.eps = None if eps is None else float(eps)
        self.num_classes = num_classes
        self._kind: str | None = None if kind == "auto" else kind
        self._sums = self._zeros()

    # ------------------------------------------------------------ state

    @property
    def _total_bins(self) -> int:
        return self.n_bins + (1 if self.ones_in_own_bin else 0)

    def _layout(self) -> list[tuple[str, tuple[int, ...], Any]]:
        return _layout(self._total_bins, self.num_classes, self.classwise)

    def _zeros(self) -> dict[str, np.ndarray]:
        return {name: np.zeros(shape, dtype) for name, shape, dtype in self._layout()}

    def _set_classes(self, k: int, source: str) -> None:
        if self.num_classes is None:
            self.num_classes = k
            self._sums.update({n: v for n, v in self._zeros().items() if n not in self._sums})
        elif k != self.num_classes:
            raise ValueError(
                f"{source} has {k} classes but this state has num_classes={self.num_classes}"
            )

    @property
    def examples(self) -> int:
        """Number of examples seen so far."""
        return int(self._sums["counts"].sum())

    def __repr__(self) -> str:
        return (
            f"StreamingCalibration(n_bins={self.n_bins}, num_classes={self.num_classes}, "
            f"classwise={self.classwise}, examples={self.examples})"
        )

    def reset(self) -> None:
        """Forget every example (the options and the class count stay)."""
        self._sums = self._zeros()

    def copy(self) -> StreamingCalibration:
        """An independent copy of the state."""
        return copy.deepcopy(self)

    # ------------------------------------------------------------ adding batches

    @quiet_numpy
    def update(
        self,
        predictions: Array,
        labels: Array,
        /,
        *,
        weights: Array | None = None,
        ignore_index: int | None = None,
    ) -> None:
        r"""Add a batch of predictions and their integer labels.

        Parameters
        ----------
        predictions : array
            Probabilities or logits, shape ``(..., K)`` (classes last), or ``(N,)`` for the
            class-1 probability of a binary problem; any array library, any device.
        labels : array
            Integer labels in [0, K), shape ``predictions.shape[:-1]``.
        weights : array, optional
            Non-negative per-example weights of the labels' shape: every sum becomes a
            weighted sum (an integer weight counts an example that many times).
        ignore_index : int, optional
            Examples with this label are left out (e.g. -100 for a language model's padding
            tokens); a batch of only such examples adds nothing.

        Raises
        ------
        ValueError
            An empty batch, a class count other than the state's, a label outside [0, K), a
            NaN prediction (or a probability outside [0, 1]), a negative or non-finite weight;
            the message names the first offending value. The state is unchanged.
        """
        name = "logits" if self._kind == "logits" else "probs"
        predictions, labels, weights = _drop_ignored(
            predictions, labels, weights, ignore_index, name=name
        )
        if ignore_index is not None and numel(labels) == 0:
            return  # a batch of only ignored examples adds nothing
        xp, v, y, _, _ = _prepare(predictions, labels, name=name)
        refuse_traced(v)
        k = int(v.shape[-1])
        if self.num_classes is not None and k != self.num_classes:
            raise ValueError(
                f"this batch of predictions has {k} classes but this state has "
                f"num_classes={self.num_classes}"
            )
        kind = self._kind or _resolve_kind(xp, v, "auto")
        p = _softmax(xp, v, -1) if kind == "logits" else v
        w = weights_of(xp, weights, shape_of(labels), y)
        batch = prediction_sums(
            xp,
            p,
            y,
            w,
            classwise=self.classwise,
            n_bins=self.n_bins,
            right_closed=self.right_closed,
            ones_in_own_bin=self.ones_in_own_bin,
            eps=self.eps,
            check_range=kind == "probs",
        )
        values = {"bad_values": (v, kind), "bad_labels": (y, k), "bad_weights": (w, None)}
        self._add(xp, batch, values, weighted=0 if w is None else int(y.shape[0]), k=k)
        self._set_classes(k, "this batch of predictions")
        self._kind = kind

    @quiet_numpy
    def update_summaries(
        self,
        confidence: Array,
        correct: Array,
        nll: Array,
        /,
        *,
        weights: Array | None = None,
        brier: Array | None = None,
    ) -> None:
        r"""Add a batch of per-example summaries instead of full predictions.

        A language model's token-level calibration needs only, per token, the top-1
        probability, whether the top-1 token is the label, and the label's log-loss (a fused
        linear cross-entropy produces them without the logits). The top-label figures (ECE,
        MCE, RMSCE, curve, accuracy, log-loss) stay exact; class-wise figures need the full
        predictions and are unavailable (None in :meth:`compute`) once a state holds
        summaries, as is the Brier score unless every batch gives ``brier``.

        Parameters
        ----------
        confidence : array
            Top-1 probabilities in [0, 1], any shape (flattened).
        correct : array
            Whether the top-1 class is the label: booleans, or 0/1 of any numeric dtype.
        nll : array
            Per-example log-loss in nats (>= 0; +inf for a label of probability 0).
        weights : array, optional
            Non-negative per-example weights (e.g. a token mask as 0/1).
        brier : array, optional
            Per-example Brier terms :math:`\sum_k (p_k - [y = k])^2 \in [0, 2]`.

        Raises
        ------
        ValueError
            Shapes that differ, an empty batch, a confidence outside [0, 1] or NaN, a
            ``correct`` other than 0/1, a NaN or negative ``nll``, a bad weight or Brier term.
        """
        xp, batch, values, n = summary_sums(
            confidence,
            correct,
            nll,
            weights,
            brier,
            n_bins=self.n_bins,
            right_closed=self.right_closed,
            ones_in_own_bin=self.ones_in_own_bin,
        )
        self._add(xp, batch, values, weighted=0 if weights is None else n)
        self._sums["from_summaries"] += n
        if brier is None:
            self._sums["without_brier"] += n

    def _add(
        self,
        xp: Any,
        batch: dict[str, Array],
        values: dict[str, Any],
        *,
        weighted: int,
        k: int | None = None,
    ) -> None:
        """Copy a batch's sums to the host in one transfer, check them, add them."""
        k = self.num_classes if k is None else k
        layout = [e for e in _layout(self._total_bins, k, self.classwise) if e[0] in batch]
        checks = [c for c in _CHECKS if c in batch]
        ints = [xp.reshape(batch[n], (-1,)) for n, _, t in layout if t is _INT]
        ints += [xp.reshape(batch[c], (1,)) for c in checks]
        floats = [xp.reshape(batch[n], (-1,)) for n, _, t in layout if t is _FLOAT]
        int_host = to_numpy(xp.concat([xp.astype(a, default_int(xp)) for a in ints]))
        float_host = to_numpy(xp.concat(floats)) if floats else np.zeros(0)
        found = dict(zip(checks, int_host[len(int_host) - len(checks) :].tolist(), strict=True))
        for check in checks:
            if found[check]:
                diagnose(check, *values[check])
        offsets = {_INT: 0, _FLOAT: 0}
        hosts = {_INT: int_host, _FLOAT: float_host}
        for n, shape, t in layout:
            size = math.prod(shape)
            part = hosts[t][offsets[t] : offsets[t] + size]
            offsets[t] += size
            if n not in self._sums:  # the class-wise arrays of a state's first batch
                self._sums[n] = np.zeros(shape, t)
            self._sums[n] += part.reshape(shape).astype(t)
        self._sums["weighted"] += weighted

    # ------------------------------------------------------------ combining states

    def _check_compatible(self, other: StreamingCalibration) -> None:
        if not isinstance(other, StreamingCalibration):
            raise TypeError(f"can only merge a StreamingCalibration, got {type(other).__name__}")
        for option in ("n_bins", "right_closed", "ones_in_own_bin", "classwise", "eps"):
            mine, theirs = getattr(self, option), getattr(other, option)
            if mine != theirs:
                raise ValueError(f"cannot merge states with {option}={mine!r} and {theirs!r}")

    def merge(self, other: StreamingCalibration) -> StreamingCalibration:
        """Add the examples of ``other`` (same options) to this state; returns this state."""
        self._check_compatible(other)
        if other.num_classes is not None:
            self._set_classes(other.num_classes, "the other state")
        for n, v in other._sums.items():
            self._sums[n] += v
        if self._kind is None:
            self._kind = other._kind
        return self

    def __add__(self, other: StreamingCalibration) -> StreamingCalibration:
        return self.copy().merge(other)

    def sync(self, *, group: Any = None) -> StreamingCalibration:
        """A new state holding the examples of every process of a ``torch.distributed`` group.

        Two collectives: an all-reduce of a few numbers that checks every process has the same
        options and class count (a process that saw no batch takes the others' count), then
        one all-reduce (sum) of every statistic packed in a float64 tensor (the integer
        counts are exact in float64 below 2**53). Every process must call it. This state is
        left as it was, so more batches can follow and ``sync`` be called again. With the
        NCCL backend the tensors go through the current CUDA device.

        Parameters
        ----------
        group : torch.distributed.ProcessGroup, optional
            The group (default: the whole world).

        Returns
        -------
        StreamingCalibration
            The figures of the union of the processes' examples.
        """
        # The options as numbers; each entry also goes negated so one MAX gives the min too.
        unknown_k = -1
        header = [
            float(self.n_bins),
            float(self.right_closed),
            float(self.ones_in_own_bin),
            float(self.classwise),
            -1.0 if self.eps is None else self.eps,
        ]
        k = self.num_classes if self.num_classes is not None else unknown_k
        big = float(2**62)
        reduced = _all_reduce(
            np.array(header + [-h for h in header] + [k, -(k if k >= 0 else big)]), "max", group
        ).tolist()
        n = len(header)
        highest, lowest = reduced[:n], [-r for r in reduced[n : 2 * n]]
        if highest != lowest:
            raise ValueError(
                "the processes' states have different options (n_bins, right_closed, "
                f"ones_in_own_bin, classwise, eps): from {lowest} to {highest}"
            )
        k_max, k_min = int(reduced[2 * n]), -reduced[2 * n + 1]
        out = self.copy()
        if k_max >= 0:
            if k_max != int(k_min):
                raise ValueError(f"the processes' states have {int(k_min)} to {k_max} classes")
            out._set_classes(k_max, "another process's state")
        layout = out._layout()
        packed = np.concatenate([out._sums[n].astype(_FLOAT).ravel() for n, _, _ in layout])
        total = _all_reduce(packed, "sum", group)
        offset = 0
        for name, shape, dtype in layout:
            size = math.prod(shape)
            part = total[offset : offset + size].reshape(shape)
            offset += size
            out._sums[name] = np.rint(part).astype(dtype) if dtype is _INT else part
        return out

    # ------------------------------------------------------------ figures

    def _check_nonempty(self) -> None:
        if self.examples == 0:
            raise ValueError("no examples yet: call update() or update_summaries() first")

    def _classwise_available(self) -> bool:
        return self.classwise and self.num_classes is not None and self._sums["from_summaries"] == 0

    def _require_classwise(self, what: str) -> None:
        if not self.classwise:
            raise ValueError(f"{what} needs a state created with classwise=True")
        if self._sums["from_summaries"]:
            raise ValueError(
                f"{what} needs every example's full prediction; "
                f"{int(self._sums['from_summaries'])} came as per-example summaries"
            )

    def _statistics(self, scope: str) -> BinStatistics:
        """The top-label (B,) or class-wise (K, B) bin statistics of the examples seen.

        Without weights the counts are the integer counts, as in the one-shot function; with
        weights every "count" (and hit) is a sum of weights, which the same formulas take.
        """
        s = self._sums
        prefix = "" if scope == "top_label" else "class_"
        edges = self._edges()
        if scope == "classwise":
            edges = np.broadcast_to(edges, (int(self.num_classes or 0), edges.shape[0]))
        mass = s[prefix + "weight"] if s["weighted"] else s[prefix + "counts"]
        return BinStatistics(edges, mass, s[prefix + "confidence"], s[prefix + "hits"])

    def _edges(self) -> np.ndarray:
        edges = np.asarray(_uniform_edges(xnp, self.n_bins, _FLOAT))
        return np.concatenate([edges, edges[-1:]]) if self.ones_in_own_bin else edges

    def expected_calibration_error(
        self, *, norm: str = "l1", scope: str = "top_label", debias: bool = False
    ) -> float:
        """The calibration error of the examples seen, as the one-shot function computes it.

        Parameters
        ----------
        norm : {"l1", "l2", "max"}
            ECE, RMSCE or MCE (:func:`~crossent.calibration.expected_calibration_error`).
        scope : {"top_label", "classwise"}
            Top-class confidence, or every class (needs ``classwise=True`` and full predictions).
        debias : bool, default False
            Kumar et al.'s debiased l2 (needs unweighted examples: it uses the bin counts).

        Returns
        -------
        float
        """
        _choice(scope, ("top_label", "classwise"), "scope")
        if debias and self._sums["weighted"]:
            raise ValueError("debias=True needs unweighted examples (it uses the bin counts)")
        self._check_nonempty()
        if scope == "classwise":
            self._require_classwise("the class-wise calibration error")
        return float(self._statistics(scope).calibration_error(norm=norm, debias=debias))

    def reliability_curve(self, *, scope: str = "top_label") -> ReliabilityCurve:
        """The reliability curve of the examples seen (NumPy arrays, float64 edges).

        Counts are the integer bin counts; confidence and accuracy the (weighted) means, NaN in
        an empty bin, as :func:`~crossent.calibration.reliability_curve` gives them.
        """
        _choice(scope, ("top_label", "classwise"), "scope")
        self._check_nonempty()
        if scope == "classwise":
            self._require_classwise("the class-wise reliability curve")
        prefix = "" if scope == "top_label" else "class_"
        curve = self._statistics(scope).reliability_curve()
        return dataclasses.replace(curve, counts=self._sums[prefix + "counts"].copy())

    def compute(self) -> CalibrationSummary:
        """Every figure of the examples seen.

        Returns
        -------
        CalibrationSummary
            Class-wise fields are None unless the state is class-wise and every example came
            with its full prediction; ``brier`` is None when summaries came without it.

        Raises
        ------
        ValueError
            When no example has been added.
        """
        self._check_nonempty()
        s = self._sums
        weight = float(s["weight"].sum())
        classwise = self._classwise_available()
        return CalibrationSummary(
            examples=self.examples,
            weight=weight,
            log_loss=float(s["nll"]) / weight,
            accuracy=float(s["hits"].sum()) / weight,
            brier=None if s["without_brier"] else float(s["brier"]) / weight,
            ece=self.expected_calibration_error(),
            mce=self.expected_calibration_error(norm="max"),
            rmsce=self.expected_calibration_error(norm="l2"),
            ece_classwise=self.expected_calibration_error(scope="classwise") if classwise else None,
            mean_confidence=float(s["confidence"].sum()) / weight,
            curve=self.reliability_curve(),
            classwise_curve=self.reliability_curve(scope="classwise") if classwise else None,
            classes=self._class_statistics(weight) if classwise else None,
        )

    def _class_statistics(self, weight: float) -> ClassStatistics:
        s = self._sums
        count = s["class_hits"].sum(axis=1)
        with np.errstate(divide="ignore", invalid="ignore"):
            recall = np.where(count > 0, s["label_hits"] / count, np.nan)
            loss = np.where(count > 0, s["label_nll"] / count, np.nan)
        ece = self._statistics("classwise").calibration_error(average=False)
        return ClassStatistics(
            count=count,
            frequency=count / weight,
            mean_probability=s["class_confidence"].sum(axis=1) / weight,
            recall=recall,
            log_loss=loss,
            ece=np.asarray(ece, dtype=np.float64),
        )


# ---------------------------------------------------------------- torch.distributed


def _all_reduce(values: np.ndarray, op: str, group: Any) -> np.ndarray:
    """All-reduce a float64 vector over ``torch.distributed`` (torch imported only here)."""
    import torch
    import torch.distributed as dist

    if not (dist.is_available() and dist.is_initialized()):
        raise RuntimeError(
            "sync() needs an initialized torch.distributed process group "
            "(torch.distributed.init_process_group)"
        )
    # NCCL reduces only CUDA tensors; gloo and the others take CPU tensors.
    on_gpu = dist.get_backend(group) == "nccl"
    device = torch.device("cuda", torch.cuda.current_device()) if on_gpu else "cpu"
    tensor = torch.as_tensor(np.asarray(values, dtype=np.float64), device=device).clone()
    reduce_op = dist.ReduceOp.SUM if op == "sum" else dist.ReduceOp.MAX
    dist.all_reduce(tensor, op=reduce_op, group=group)
    return tensor.cpu().numpy()
