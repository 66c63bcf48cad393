"""The explorer's JSON API as plain functions: a request object in, a response object out.

Each function validates its request with :class:`~crossent.explore._validate.Fields` and then
asks ``crossent`` for every number it returns, so the page shows what a training script using
crossent computes. The only arithmetic done here is the model around the loss (the linear layer
of the pipeline, the chain rule through an extra softmax) and unit conversion.

Numbers that are not finite (a loss of ``-log 0``) are returned as the strings ``"Infinity"``,
``"-Infinity"`` and ``"NaN"`` by :func:`to_json`, which JavaScript's ``Number()`` reads back.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any

import numpy as np

import crossent as ce

from ._validate import Fields, RequestError

MAX_QUIZ_CLASSES = 10
"""The quiz panel: 2 to 10 classes (issue 5)."""
MAX_CLASSES = 32
"""Every other panel: a sane cap on the number of logits a page can drag."""
MAX_LOGIT = 1000.0
"""Largest logit magnitude accepted (exp(1000) overflows float64; the library copes, the page
has no use for more)."""
MAX_FEATURES = 8
"""Inputs of the pipeline's linear layer."""
MAX_INPUT = 100.0
"""Largest input, weight or bias magnitude of the pipeline."""
SUM_TOLERANCE = 1e-6
"""How far the quiz's probabilities may sum from 1."""
CURVE_POINTS = 199
LN2 = math.log(2.0)

Json = dict[str, Any]


# ---------------------------------------------------------------- helpers


def _num(x: Any) -> float:
    """A 0-d (or 1-element) array as a Python float."""
    return float(np.asarray(x, dtype=np.float64).reshape(()))


def _vec(x: Any) -> list[float]:
    return [float(v) for v in np.asarray(x, dtype=np.float64).reshape(-1)]


def _logits_and_target(fields: Fields, *, max_classes: int) -> tuple[np.ndarray, int]:
    logits = fields.vector("logits", min_len=2, max_len=max_classes, lo=-MAX_LOGIT, hi=MAX_LOGIT)
    target = fields.integer("target", lo=0, hi=len(logits) - 1)
    return np.asarray(logits, dtype=np.float64), target


def _confidence_grid() -> np.ndarray:
    """Confidence in the true class from 0.005 to 0.995, the x axis of every loss curve."""
    return np.linspace(0.005, 0.995, CURVE_POINTS)


def _curve_logits(grid: np.ndarray, num_classes: int, target: int) -> np.ndarray:
    """Logits whose softmax puts ``q`` on the target and spreads ``1 - q`` evenly on the rest.

    Logits are log-probabilities up to a constant, so ``log p`` is a valid set of logits.
    """
    rest = np.log((1.0 - grid) / (num_classes - 1))
    logits = np.repeat(rest[:, None], num_classes, axis=1)
    logits[:, target] = np.log(grid)
    return logits


# ---------------------------------------------------------------- endpoints


def quiz(body: Json) -> Json:
    """The pop quiz: a predicted distribution graded against the true class.

    Request ``{"probs": [K numbers in [0, 1] summing to 1], "target": t}``, ``2 <= K <= 10``.

    Returns cross-entropy ``-log p_t`` in nats and bits, the entropy of the prediction,
    ``KL(y || p)``, the squared error ``sum (p - y)^2``, the uniform guess's loss ``log K`` and
    the loss-versus-confidence curves (cross-entropy and MSE, the other classes sharing the rest
    evenly).
    """
    fields = Fields(body)
    probs_list = fields.vector("probs", min_len=2, max_len=MAX_QUIZ_CLASSES, lo=0.0, hi=1.0)
    k = len(probs_list)
    target = fields.integer("target", lo=0, hi=k - 1)
    fields.finish()
    total = math.fsum(probs_list)
    if abs(total - 1.0) > SUM_TOLERANCE:
        raise RequestError(f"probs must sum to 1 (a distribution), got a sum of {total:.9g}")
    p = np.asarray(probs_list, dtype=np.float64)
    y = ce.one_hot(np.asarray(target), k, dtype=np.float64)
    uniform = np.full(k, 1.0 / k)
    with np.errstate(divide="ignore"):
        log_p = np.log(p)  # logits whose softmax is p: the MSE the seeds compare with
    grid = _confidence_grid()
    curve_logits = _curve_logits(grid, k, target)
    curve_targets = np.full(grid.shape, target)
    curve_probs = ce.softmax(curve_logits)
    curve_y = np.repeat(y[None, :], grid.size, axis=0)
    return {
        "num_classes": k,
        "target": target,
        "probs": _vec(p),
        "cross_entropy": _num(ce.cross_entropy(y, p)),
        "cross_entropy_bits": _num(ce.cross_entropy(y, p, base=2)),
        "entropy": _num(ce.entropy(p)),
        "entropy_bits": _num(ce.entropy(p, base=2)),
        "kl_divergence": _num(ce.kl_divergence(y, p)),
        "mse": _num(ce.mse_loss(log_p[None, :], np.asarray([target]))),
        "uniform_loss": _num(ce.cross_entropy(y, uniform)),
        "curve": {
            "confidence": _vec(grid),
            "cross_entropy": _vec(ce.cross_entropy(curve_y, curve_probs)),
            "mse": _vec(ce.mse_loss(curve_logits, curve_targets, reduction="none")),
        },
    }


def binary(body: Json) -> Json:
    """Binary cross-entropy of one probability against a label.

    Request ``{"p": number in [0, 1], "y": number in [0, 1]}`` (default ``y = 1``).

    Returns the loss in nats and bits (``binary_cross_entropy``, which clips ``p`` at the
    machine epsilon), the squared error ``(p - y)^2``, the gradients with respect to the logit
    of cross-entropy (``p - y``) and of squared error (``2 (p - y) p (1 - p)``), and both curves
    ``-log p`` and ``-log(1 - p)`` with their squared-error counterparts.
    """
    fields = Fields(body)
    p = fields.number("p", lo=0.0, hi=1.0)
    y = fields.number("y", lo=0.0, hi=1.0, default=1.0)
    fields.finish()
    with np.errstate(divide="ignore"):
        logit = np.log(np.asarray([p])) - np.log1p(-np.asarray([p]))  # sigmoid(logit) = p
    label = np.asarray([y])
    loss = _num(ce.binary_cross_entropy(np.asarray([p]), label))
    grid = _confidence_grid()
    grid_logits = np.log(grid) - np.log1p(-grid)
    ones, zeros = np.ones_like(grid), np.zeros_like(grid)
    return {
        "p": p,
        "y": y,
        "loss": loss,
        "loss_bits": loss / LN2,
        "mse": _num(ce.mse_loss(logit, label, activation="sigmoid")),
        "grad_logit": _num(ce.grad.sigmoid_binary_cross_entropy(logit, label)),
        "mse_grad_logit": _num(ce.grad.mse_loss(logit, label, activation="sigmoid")),
        "curve": {
            "p": _vec(grid),
            "loss_y1": _vec(ce.binary_cross_entropy(grid, ones, reduction="none")),
            "loss_y0": _vec(ce.binary_cross_entropy(grid, zeros, reduction="none")),
            "mse_y1": _vec(ce.mse_loss(grid_logits, ones, activation="sigmoid", reduction="none")),
            "mse_y0": _vec(ce.mse_loss(grid_logits, zeros, activation="sigmoid", reduction="none")),
        },
    }


def softmax_ce(body: Json) -> Json:
    """Logits through softmax to the loss and its gradient ``p - y``.

    Request ``{"logits": [K numbers], "target": t}``, ``2 <= K <= 32``, ``|z| <= 1000``.

    Returns the probabilities, the loss in nats and bits, the gradient with respect to the
    logits (``crossent.grad.softmax_cross_entropy``), its norm and sum (always 0), the entropy
    of the prediction, ``KL(y || p)`` and the squared error. The loss is computed from the
    logits and stays finite; KL is computed from the probabilities, so it is infinite where
    ``p_t`` underflows to 0 (logit gaps beyond about 745), which is the reason to fuse.
    """
    fields = Fields(body)
    z, target = _logits_and_target(fields, max_classes=MAX_CLASSES)
    fields.finish()
    logits, targets = z[None, :], np.asarray([target])
    probs = ce.softmax(z)
    grad = np.asarray(ce.grad.softmax_cross_entropy(logits, targets))[0]
    loss = _num(ce.softmax_cross_entropy(logits, targets))
    y = ce.one_hot(np.asarray(target), z.size, dtype=np.float64)
    return {
        "logits": _vec(z),
        "target": target,
        "probs": _vec(probs),
        "log_probs": _vec(ce.log_softmax(z)),
        "loss": loss,
        "loss_bits": loss / LN2,
        "grad": _vec(grad),
        "grad_norm": float(np.linalg.norm(grad)),
        "grad_sum": float(np.sum(grad)),
        "entropy": _num(ce.entropy(probs)),
        "kl_divergence": _num(ce.kl_divergence(y, probs)),
        "mse": _num(ce.mse_loss(logits, targets)),
    }


def double_softmax(body: Json) -> Json:
    """The double-softmax bug: the same logits through the right path and the wrong one.

    Request ``{"logits": [K numbers], "target": t}``.

    Right: ``softmax_cross_entropy(z, t)``. Wrong: ``softmax_cross_entropy(softmax(z), t)``,
    probabilities passed where logits belong. Returns each path's loss, gradient with respect to
    ``z`` and its norm, and the ratio of the norms. The wrong path's gradient is the library's
    gradient at ``p = softmax(z)`` pulled back through the extra softmax:
    ``J^T g = p * (g - <p, g>)``.
    """
    fields = Fields(body)
    z, target = _logits_and_target(fields, max_classes=MAX_CLASSES)
    fields.finish()
    logits, targets = z[None, :], np.asarray([target])
    right_grad = np.asarray(ce.grad.softmax_cross_entropy(logits, targets))[0]
    p = np.asarray(ce.softmax(z))
    g = np.asarray(ce.grad.softmax_cross_entropy(p[None, :], targets))[0]
    wrong_grad = p * (g - np.dot(p, g))  # chain rule through softmax: J = diag(p) - p p^T
    right_norm = float(np.linalg.norm(right_grad))
    wrong_norm = float(np.linalg.norm(wrong_grad))
    findings = ce.diagnose(p[None, :], targets) if hasattr(ce, "diagnose") else []
    return {
        "logits": _vec(z),
        "target": target,
        "probs": _vec(p),
        "right": {
            "loss": _num(ce.softmax_cross_entropy(logits, targets)),
            "grad": _vec(right_grad),
            "grad_norm": right_norm,
        },
        "wrong": {
            "inputs": _vec(p),
            "probs": _vec(ce.softmax(p)),
            "loss": _num(ce.softmax_cross_entropy(p[None, :], targets)),
            "grad": _vec(wrong_grad),
            "grad_norm": wrong_norm,
        },
        "ratio": wrong_norm / right_norm if right_norm > 0 else None,
        "diagnosis": [
            {"code": str(f.code), "severity": str(f.severity), "message": str(f.message)}
            for f in findings
        ],
    }


def smoothing(body: Json) -> Json:
    """Label smoothing, temperature and focal gamma acting on one example.

    Request ``{"logits": [...], "target": t, "label_smoothing": e in [0, 1],
    "temperature": T in [0.05, 20], "gamma": g in [0, 10], "convention": "uniform" | "others"}``
    (defaults 0, 1, 2, "uniform").

    The logits are divided by ``T``; returns the smoothed target distribution
    (``smooth_labels``), the probabilities ``softmax(z / T)``, plain, smoothed and focal losses
    with their gradients with respect to ``z`` (the library's gradient at ``z / T`` times
    ``1 / T``), and the three loss-versus-confidence curves.
    """
    fields = Fields(body)
    z, target = _logits_and_target(fields, max_classes=MAX_CLASSES)
    e = fields.number("label_smoothing", lo=0.0, hi=1.0, default=0.0)
    temperature = fields.number("temperature", lo=0.05, hi=20.0, default=1.0)
    gamma = fields.number("gamma", lo=0.0, hi=10.0, default=2.0)
    convention = fields.choice("convention", ("uniform", "others"), default="uniform")
    fields.finish()
    k = z.size
    targets = np.asarray([target])
    scaled = (z / temperature)[None, :]
    smoothed = np.asarray(
        ce.smooth_labels(
            targets, num_classes=k, label_smoothing=e, smoothing_convention=convention
        ),
        dtype=np.float64,
    )

    def smooth_loss(logits: np.ndarray, t: np.ndarray, **kw: Any) -> Any:
        if convention == "uniform":  # PyTorch's label_smoothing= argument
            return ce.softmax_cross_entropy(logits, t, label_smoothing=e, **kw)
        q = ce.smooth_labels(t, num_classes=k, label_smoothing=e, smoothing_convention="others")
        return ce.softmax_cross_entropy(logits, np.asarray(q, dtype=np.float64), **kw)

    def smooth_grad(logits: np.ndarray, t: np.ndarray) -> Any:
        if convention == "uniform":
            return ce.grad.softmax_cross_entropy(logits, t, label_smoothing=e)
        q = ce.smooth_labels(t, num_classes=k, label_smoothing=e, smoothing_convention="others")
        return ce.grad.softmax_cross_entropy(logits, np.asarray(q, dtype=np.float64))

    losses: dict[str, Callable[..., Any]] = {
        "cross_entropy": lambda lg, t, **kw: ce.softmax_cross_entropy(lg, t, **kw),
        "smoothed": smooth_loss,
        "focal": lambda lg, t, **kw: ce.softmax_focal_loss(lg, t, gamma=gamma, **kw),
    }
    grads: dict[str, Callable[[np.ndarray, np.ndarray], Any]] = {
        "cross_entropy": lambda lg, t: ce.grad.softmax_cross_entropy(lg, t),
        "smoothed": smooth_grad,
        "focal": lambda lg, t: ce.grad.softmax_focal_loss(lg, t, gamma=gamma),
    }
    grid = _confidence_grid()
    curve_logits = _curve_logits(grid, k, target)
    curve_targets = np.full(grid.shape, target)
    result: Json = {
        "logits": _vec(z),
        "target": target,
        "label_smoothing": e,
        "temperature": temperature,
        "gamma": gamma,
        "convention": convention,
        "target_distribution": _vec(smoothed[0]),
        "probs": _vec(ce.softmax(scaled)),
        "curve": {"confidence": _vec(grid)},
    }
    for name, loss_fn in losses.items():
        grad = np.asarray(grads[name](scaled, targets))[0] / temperature  # d(z/T)/dz = 1/T
        result[name] = {
            "loss": _num(loss_fn(scaled, targets)),
            "grad": _vec(grad),
            "grad_norm": float(np.linalg.norm(grad)),
        }
        result["curve"][name] = _vec(loss_fn(curve_logits, curve_targets, reduction="none"))
    return result


def pipeline(body: Json) -> Json:
    """Seed 004's forward and backward pass through a linear classifier.

    Request ``{"x": [D inputs], "W": [K rows of D], "b": [K], "target": t, "lr": eta}``,
    ``1 <= D <= 8``, ``2 <= K <= 10``.

    Forward: ``z = W x + b``, ``p = softmax(z)``, ``L = softmax_cross_entropy(z, t)``. Backward:
    ``dL/dz = p - y`` (``crossent.grad``), ``dL/dW = (p - y) x^T``, ``dL/db = p - y``. Update:
    ``W' = W - eta dL/dW``, ``b' = b - eta dL/db``, and the loss after that step.
    """
    fields = Fields(body)
    x = fields.vector("x", min_len=1, max_len=MAX_FEATURES, lo=-MAX_INPUT, hi=MAX_INPUT)
    b = fields.vector("b", min_len=2, max_len=MAX_QUIZ_CLASSES, lo=-MAX_INPUT, hi=MAX_INPUT)
    weights = fields.matrix("W", rows=len(b), cols=len(x), lo=-MAX_INPUT, hi=MAX_INPUT)
    target = fields.integer("target", lo=0, hi=len(b) - 1)
    lr = fields.number("lr", lo=0.0, hi=10.0, default=0.5)
    fields.finish()
    xv, bv, w = (np.asarray(a, dtype=np.float64) for a in (x, b, weights))
    targets = np.asarray([target])
    z = w @ xv + bv  # the model: a linear layer
    loss = _num(ce.softmax_cross_entropy(z[None, :], targets))
    grad_z = np.asarray(ce.grad.softmax_cross_entropy(z[None, :], targets))[0]
    grad_w = np.outer(grad_z, xv)  # chain rule: z = W x + b
    w_new, b_new = w - lr * grad_w, bv - lr * grad_z
    z_new = w_new @ xv + b_new
    return {
        "x": _vec(xv),
        "W": w.tolist(),
        "b": _vec(bv),
        "target": target,
        "lr": lr,
        "logits": _vec(z),
        "probs": _vec(ce.softmax(z)),
        "onehot": _vec(ce.one_hot(targets, bv.size, dtype=np.float64)),
        "loss": loss,
        "grad_logits": _vec(grad_z),
        "grad_W": grad_w.tolist(),
        "grad_b": _vec(grad_z),
        "W_new": w_new.tolist(),
        "b_new": _vec(b_new),
        "logits_new": _vec(z_new),
        "loss_new": _num(ce.softmax_cross_entropy(z_new[None, :], targets)),
    }


ENDPOINTS: dict[str, Callable[[Json], Json]] = {
    "quiz": quiz,
    "binary": binary,
    "softmax_ce": softmax_ce,
    "double_softmax": double_softmax,
    "smoothing": smoothing,
    "pipeline": pipeline,
}
"""The POST endpoints under ``/api/``, by name."""


def compute(name: str, body: Json) -> Json:
    """Run endpoint ``name`` on a decoded request, turning library input errors into 422.

    Parameters
    ----------
    name : str
        A key of :data:`ENDPOINTS`.
    body : dict
        The decoded JSON request.

    Returns
    -------
    dict
        The response object (may contain non-finite floats; see :func:`to_json`).

    Examples
    --------
    >>> out = compute("softmax_ce", {"logits": [0.0, 0.0], "target": 1})
    >>> out["loss"] == math.log(2), out["grad"]
    (True, [0.5, -0.5])
    """
    with np.errstate(all="ignore"):
        try:
            return ENDPOINTS[name](body)
        except (ValueError, TypeError) as error:  # the library refusing an input
            raise RequestError(str(error)) from error


def _clean(value: Any) -> Any:
    if isinstance(value, float):
        if math.isfinite(value):
            return value
        return "NaN" if math.isnan(value) else ("Infinity" if value > 0 else "-Infinity")
    if isinstance(value, dict):
        return {key: _clean(v) for key, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_clean(v) for v in value]
    return value


def to_json(value: Any) -> bytes:
    """Encode a response as strict JSON, non-finite floats as ``"Infinity"``/``"NaN"`` strings.

    Examples
    --------
    >>> to_json({"loss": float("inf"), "p": [0.5, float("nan")]})
    b'{"loss":"Infinity","p":[0.5,"NaN"]}'
    """
    return json.dumps(_clean(value), allow_nan=False, separators=(",", ":")).encode()
