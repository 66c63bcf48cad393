"""Time of every crossent loss family on NumPy, PyTorch and JAX against each framework's own op.

One (N, K) float32 NumPy array of standard-normal logits (default 65536 x 1000, 262 MB) and, per
family, the targets it needs (random int64 class indices, or random 0/1 float32 of the same
shape). For each family, each method is timed forward and forward + backward; the figure is the
best of ``--repeat`` calls after one warm-up call (which also compiles the JAX functions), and
the methods of a family take turns, one call each per round. Each crossent row is reported as a
ratio to its peer, the framework's own op or the plain expression of the same loss:

========================  =====================================  ===============================
family                    crossent                               peer (NumPy and torch rows / JAX)
========================  =====================================  ===============================
softmax_ce                ``softmax_cross_entropy``,             ``F.cross_entropy`` / logsumexp
                          ``crossent.torch.CrossEntropyLoss``    minus the gathered target logit
sigmoid_bce               ``sigmoid_binary_cross_entropy``,      ``F.binary_cross_entropy_with_
                          ``crossent.torch.BCEWithLogitsLoss``   logits`` / the stable formula
softmax_focal (gamma=2)   ``softmax_focal_loss``,                ``-(1 - p_t)**2 * log p_t`` from
                          ``crossent.torch.FocalLoss``           log_softmax, in torch / in JAX
sigmoid_focal             ``sigmoid_focal_loss`` (alpha=0.25,    ``torchvision.ops.sigmoid_focal_
(alpha=0.25, gamma=2)     gamma=2)                               loss`` (or its formula written
                                                                 out in torch) / same in JAX
categorical_ce            ``categorical_cross_entropy`` on       ``F.nll_loss(log(p.clamp_min(
                          softmax probabilities                  eps)))`` / the same in JAX
binary_ce                 ``binary_cross_entropy`` on sigmoid    ``F.binary_cross_entropy`` /
                          probabilities                          the same in JAX
========================  =====================================  ===============================

The last two are the losses from probabilities (computed once from the logits, outside the
timing). NumPy rows run ``ce.<loss>`` (forward) and ``ce.grad.<loss>`` (forward + backward: one
call with ``with_loss=True`` where the gradient accepts it, else the loss and the gradient as
two calls), and their peer is the torch op on the same memory (``torch.from_numpy``). torch rows
call the core API with tensors (``ce.<loss>(tensor, ...)``) and the drop-in module where there
is one, with ``.backward()`` for the gradient. JAX rows run ``jax.jit`` of the loss and of
``jax.value_and_grad`` of it, synchronized with ``block_until_ready``.

A method that raises (an input the code does not accept yet, a missing keyword or module) is
reported as ``error: <message>`` in its row; the others still run. With torch rows, the growth
of the peak resident set (VmHWM) during one call in a fresh subprocess is reported as in
``benchmarks/core.py`` (``--no-rss`` skips it). torch uses its default number of threads, NumPy
one, XLA its own.

Usage::

    python benchmarks/families.py [--rows 65536] [--classes 1000] [--repeat 5]
                                  [--only FAMILY ...] [--json PATH] [--no-rss]

Numbers depend on the machine; nothing here asserts on them.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from _peak import measure, versions, write_json

os.environ.setdefault("JAX_PLATFORMS", "cpu")  # no accelerator probing (and its warnings)

Call = Callable[[], float]


class Data:
    """The arrays of one run, made on first use and shared by every method that needs them."""

    def __init__(self, rows: int, classes: int, seed: int = 0) -> None:
        self.rows, self.classes, self.seed = rows, classes, seed
        self._jax: dict[str, Any] = {}

    @functools.cached_property
    def logits(self) -> np.ndarray:
        """Standard-normal float32 logits, drawn in float32 (no float64 copy)."""
        rng = np.random.default_rng(self.seed)
        return rng.standard_normal((self.rows, self.classes), dtype=np.float32)

    @functools.cached_property
    def labels(self) -> np.ndarray:
        """Random int64 class indices."""
        return np.random.default_rng(self.seed + 1).integers(0, self.classes, size=self.rows)

    @functools.cached_property
    def binary(self) -> np.ndarray:
        """Random 0/1 float32 targets of the logits' shape."""
        rng = np.random.default_rng(self.seed + 2)
        return (rng.random((self.rows, self.classes), dtype=np.float32) < 0.5).astype(np.float32)

    @functools.cached_property
    def probs(self) -> np.ndarray:
        """Softmax of the logits along the class axis (float32, in place into one new array)."""
        p = self.logits - self.logits.max(axis=1, keepdims=True)
        np.exp(p, out=p)
        p /= p.sum(axis=1, keepdims=True)
        return p

    @functools.cached_property
    def sigprobs(self) -> np.ndarray:
        """Sigmoid of the logits (float32)."""
        p = np.negative(self.logits)
        np.exp(p, out=p)
        p += 1.0
        np.reciprocal(p, out=p)
        return p

    def array(self, name: str) -> np.ndarray:
        return getattr(self, name)

    def jax_array(self, name: str) -> Any:
        """The JAX copy of one array (int32 class indices: JAX's default integer), cached."""
        if name not in self._jax:
            import jax.numpy as jnp

            a = self.array(name)
            self._jax[name] = jnp.asarray(a.astype(np.int32) if name == "labels" else a)
        return self._jax[name]

    def drop_jax(self) -> None:
        self._jax.clear()


Setup = Callable[[Data], tuple[Call, str]]  # prepares the inputs: (call returning the loss, note)


# ---------------------------------------------------------------------------------------------
# Peers: the framework's own op, or the plain expression of the same loss.


def _torch_softmax_ce(z: Any, t: Any) -> Any:
    import torch.nn.functional as F

    return F.cross_entropy(z, t)


def _torch_sigmoid_bce(z: Any, y: Any) -> Any:
    import torch.nn.functional as F

    return F.binary_cross_entropy_with_logits(z, y)


def _torch_softmax_focal(z: Any, t: Any, gamma: float = 2.0) -> Any:
    import torch.nn.functional as F

    log_p_t = F.log_softmax(z, dim=-1).gather(-1, t[:, None])[:, 0]
    return (-((1 - log_p_t.exp()) ** gamma) * log_p_t).mean()


def _torchvision_focal() -> Callable[..., Any] | None:
    try:
        from torchvision.ops import sigmoid_focal_loss
    except Exception:  # not installed, or built for another torch
        return None
    return sigmoid_focal_loss


def _torch_sigmoid_focal(z: Any, y: Any, alpha: float = 0.25, gamma: float = 2.0) -> Any:
    """torchvision.ops.sigmoid_focal_loss(reduction="mean"), written out as in its source."""
    import torch
    import torch.nn.functional as F

    p = torch.sigmoid(z)
    ce_loss = F.binary_cross_entropy_with_logits(z, y, reduction="none")
    p_t = p * y + (1 - p) * (1 - y)
    loss = ce_loss * ((1 - p_t) ** gamma)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return (alpha_t * loss).mean()


def _torch_categorical(p: Any, t: Any) -> Any:
    import torch
    import torch.nn.functional as F

    eps = float(torch.finfo(p.dtype).eps)  # crossent's default clip
    return F.nll_loss(torch.log(p.clamp_min(eps)), t)


def _torch_binary(p: Any, y: Any) -> Any:
    import torch.nn.functional as F

    return F.binary_cross_entropy(p, y)


def _jax_softmax_ce(z: Any, t: Any) -> Any:
    import jax
    import jax.numpy as jnp

    return jnp.mean(jax.nn.logsumexp(z, -1) - jnp.take_along_axis(z, t[:, None], -1)[:, 0])


def _jax_bce_terms(z: Any, y: Any) -> Any:
    import jax.numpy as jnp

    return jnp.maximum(z, 0) - z * y + jnp.log1p(jnp.exp(-jnp.abs(z)))


def _jax_sigmoid_bce(z: Any, y: Any) -> Any:
    import jax.numpy as jnp

    return jnp.mean(_jax_bce_terms(z, y))


def _jax_softmax_focal(z: Any, t: Any, gamma: float = 2.0) -> Any:
    import jax
    import jax.numpy as jnp

    log_p_t = jnp.take_along_axis(jax.nn.log_softmax(z, -1), t[:, None], -1)[:, 0]
    return jnp.mean(-((1 - jnp.exp(log_p_t)) ** gamma) * log_p_t)


def _jax_sigmoid_focal(z: Any, y: Any, alpha: float = 0.25, gamma: float = 2.0) -> Any:
    import jax
    import jax.numpy as jnp

    p = jax.nn.sigmoid(z)
    p_t = p * y + (1 - p) * (1 - y)
    loss = _jax_bce_terms(z, y) * ((1 - p_t) ** gamma)
    alpha_t = alpha * y + (1 - alpha) * (1 - y)
    return jnp.mean(alpha_t * loss)


def _jax_categorical(p: Any, t: Any) -> Any:
    import jax.numpy as jnp

    eps = float(jnp.finfo(p.dtype).eps)
    return -jnp.mean(jnp.log(jnp.take_along_axis(jnp.maximum(p, eps), t[:, None], -1)[:, 0]))


def _jax_binary(p: Any, y: Any) -> Any:
    """F.binary_cross_entropy's formula: each log clamped at -100."""
    import jax.numpy as jnp

    log_p = jnp.maximum(jnp.log(p), -100.0)
    log_q = jnp.maximum(jnp.log1p(-p), -100.0)
    return -jnp.mean(y * log_p + (1 - y) * log_q)


# ---------------------------------------------------------------------------------------------
# Families and their methods.


@dataclass(frozen=True)
class Family:
    key: str
    title: str
    loss: str  # name of the crossent function, in crossent and in crossent.grad
    inputs: tuple[str, str]  # Data attributes: (values, targets)
    kwargs: dict[str, Any] = field(default_factory=dict)
    dropin: str | None = None  # class in crossent.torch
    torch_peer: Callable[..., Any] = _torch_softmax_ce
    torch_peer_name: str = ""
    jax_peer: Callable[..., Any] = _jax_softmax_ce
    jax_peer_name: str = ""


def _families() -> list[Family]:
    tv = _torchvision_focal() is not None
    return [
        Family(
            "softmax_ce",
            "softmax cross-entropy, int64 class targets",
            "softmax_cross_entropy",
            ("logits", "labels"),
            dropin="CrossEntropyLoss",
            torch_peer=_torch_softmax_ce,
            torch_peer_name="torch F.cross_entropy",
            jax_peer=_jax_softmax_ce,
            jax_peer_name="jax plain: mean(logsumexp - z[t])",
        ),
        Family(
            "sigmoid_bce",
            "sigmoid binary cross-entropy from logits, 0/1 float targets",
            "sigmoid_binary_cross_entropy",
            ("logits", "binary"),
            dropin="BCEWithLogitsLoss",
            torch_peer=_torch_sigmoid_bce,
            torch_peer_name="torch F.binary_cross_entropy_with_logits",
            jax_peer=_jax_sigmoid_bce,
            jax_peer_name="jax plain: mean(max(z,0) - z*y + log1p(exp(-|z|)))",
        ),
        Family(
            "softmax_focal",
            "softmax focal loss, gamma=2, int64 class targets",
            "softmax_focal_loss",
            ("logits", "labels"),
            kwargs={"gamma": 2.0},
            dropin="FocalLoss",
            torch_peer=_torch_softmax_focal,
            torch_peer_name="torch plain: -(1-p_t)**2 * log_p_t from log_softmax",
            jax_peer=_jax_softmax_focal,
            jax_peer_name="jax plain: -(1-p_t)**2 * log_p_t from log_softmax",
        ),
        Family(
            "sigmoid_focal",
            "sigmoid focal loss, alpha=0.25, gamma=2, mean, 0/1 float targets",
            "sigmoid_focal_loss",
            ("logits", "binary"),
            kwargs={"alpha": 0.25, "gamma": 2.0, "reduction": "mean"},
            torch_peer=_torch_sigmoid_focal_peer(),
            torch_peer_name=(
                "torchvision.ops.sigmoid_focal_loss"
                if tv
                else "torch plain: torchvision's formula (no torchvision)"
            ),
            jax_peer=_jax_sigmoid_focal,
            jax_peer_name="jax plain: torchvision's formula",
        ),
        Family(
            "categorical_ce",
            "categorical cross-entropy of softmax probabilities, int64 class targets",
            "categorical_cross_entropy",
            ("probs", "labels"),
            torch_peer=_torch_categorical,
            torch_peer_name="torch F.nll_loss(log(p.clamp_min(eps)))",
            jax_peer=_jax_categorical,
            jax_peer_name="jax plain: -mean(log(max(p, eps))[t])",
        ),
        Family(
            "binary_ce",
            "binary cross-entropy of sigmoid probabilities, 0/1 float targets",
            "binary_cross_entropy",
            ("sigprobs", "binary"),
            torch_peer=_torch_binary,
            torch_peer_name="torch F.binary_cross_entropy",
            jax_peer=_jax_binary,
            jax_peer_name="jax plain: -mean(y log p + (1-y) log(1-p))",
        ),
    ]


def _torch_sigmoid_focal_peer() -> Callable[..., Any]:
    tv = _torchvision_focal()
    if tv is None:
        return _torch_sigmoid_focal
    return lambda z, y: tv(z, y, alpha=0.25, gamma=2.0, reduction="mean")


FAMILY_KEYS = (
    "softmax_ce",
    "sigmoid_bce",
    "softmax_focal",
    "sigmoid_focal",
    "categorical_ce",
    "binary_ce",
)


@dataclass(frozen=True)
class Method:
    """One timed computation: ``setup(data)`` prepares its inputs and returns the call."""

    family: str
    library: str  # "numpy", "torch" or "jax"
    mode: str  # "fwd" or "fwd+bwd"
    name: str
    role: str  # "crossent" or "peer"
    setup: Setup  # (call returning the loss, note)

    @property
    def key(self) -> str:
        return f"{self.family}|{self.library}|{self.mode}|{self.name}"


def _numpy_forward(fam: Family) -> Setup:
    def setup(data: Data) -> tuple[Call, str]:
        import crossent as ce

        fn = getattr(ce, fam.loss)
        a, b = (data.array(n) for n in fam.inputs)
        return (lambda: float(fn(a, b, **fam.kwargs))), ""

    return setup


def _numpy_gradient(fam: Family) -> Setup:
    def setup(data: Data) -> tuple[Call, str]:
        import crossent as ce

        loss_fn, grad_fn = getattr(ce, fam.loss), getattr(ce.grad, fam.loss)
        a, b = (data.array(n) for n in fam.inputs)
        try:  # probe on two rows: does this gradient return the loss too?
            grad_fn(a[:2], b[:2], with_loss=True, **fam.kwargs)
        except TypeError:

            def two_calls() -> float:
                loss = loss_fn(a, b, **fam.kwargs)
                grad_fn(a, b, **fam.kwargs)
                return float(loss)

            return two_calls, "loss + grad, two calls"

        def fused() -> float:
            loss, _ = grad_fn(a, b, with_loss=True, **fam.kwargs)
            return float(loss)

        return fused, "with_loss=True"

    return setup


def _torch_inputs(fam: Family, data: Data, grad: bool) -> tuple[Any, Any]:
    import torch

    a, b = (torch.from_numpy(data.array(n)) for n in fam.inputs)
    return (a.requires_grad_() if grad else a), b


def _torch_method(fam: Family, make: Callable[[], Callable[[Any, Any], Any]], grad: bool) -> Setup:
    def setup(data: Data) -> tuple[Call, str]:
        import torch

        fn = make()
        a, b = _torch_inputs(fam, data, grad)
        if not grad:

            def forward() -> float:
                with torch.no_grad():
                    return float(fn(a, b))

            return forward, ""

        def backward() -> float:
            a.grad = None
            loss = fn(a, b)
            loss.backward()
            return float(loss.detach())

        return backward, ""

    return setup


def _jax_method(fam: Family, make: Callable[[], Callable[[Any, Any], Any]], grad: bool) -> Setup:
    def setup(data: Data) -> tuple[Call, str]:
        import jax

        fn = make()
        a, b = (data.jax_array(n) for n in fam.inputs)
        if not grad:
            forward = jax.jit(fn)
            return (lambda: float(forward(a, b).block_until_ready())), ""
        value_and_grad = jax.jit(jax.value_and_grad(fn))

        def backward() -> float:
            loss, g = value_and_grad(a, b)
            jax.block_until_ready((loss, g))
            return float(loss)

        return backward, ""

    return setup


def methods_of(fam: Family) -> list[Method]:
    """Every method of one family, in table order: per library, forward then backward."""

    def core() -> Callable[[Any, Any], Any]:
        import crossent as ce

        fn = getattr(ce, fam.loss)
        return lambda a, b: fn(a, b, **fam.kwargs)

    def dropin() -> Callable[[Any, Any], Any]:
        import crossent.torch

        return getattr(crossent.torch, str(fam.dropin))(**fam.kwargs)

    def peer_torch() -> Callable[[Any, Any], Any]:
        return fam.torch_peer

    def peer_jax() -> Callable[[Any, Any], Any]:
        return fam.jax_peer

    out: list[Method] = []

    def add(library: str, mode: str, name: str, role: str, setup: Setup) -> None:
        out.append(Method(fam.key, library, mode, name, role, setup))

    add("numpy", "fwd", f"ce.{fam.loss}", "crossent", _numpy_forward(fam))
    add("numpy", "fwd+bwd", f"ce.grad.{fam.loss}", "crossent", _numpy_gradient(fam))
    for mode, grad in (("fwd", False), ("fwd+bwd", True)):
        add("torch", mode, fam.torch_peer_name, "peer", _torch_method(fam, peer_torch, grad))
        add("torch", mode, f"ce.{fam.loss}(tensor)", "crossent", _torch_method(fam, core, grad))
        if fam.dropin:
            name = f"crossent.torch.{fam.dropin}()"
            add("torch", mode, name, "crossent", _torch_method(fam, dropin, grad))
    for mode, grad in (("fwd", False), ("fwd+bwd", True)):
        add("jax", mode, fam.jax_peer_name, "peer", _jax_method(fam, peer_jax, grad))
        add("jax", mode, f"jit ce.{fam.loss}", "crossent", _jax_method(fam, core, grad))
    return out


def peer_of(method: Method, methods: list[Method]) -> Method | None:
    """The peer a crossent row is compared with: the torch op for NumPy and torch, JAX's own."""
    library = "jax" if method.library == "jax" else "torch"
    for m in methods:
        if m.role == "peer" and m.library == library and m.mode == method.mode:
            return m
    return None


# ---------------------------------------------------------------------------------------------
# Timing and memory.


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0] if text else ''}".rstrip(": ")


def time_family(methods: list[Method], data: Data, repeat: int) -> dict[str, dict[str, Any]]:
    """Warm up every method once (its loss is the one reported), then ``repeat`` rounds.

    The methods take turns (one call each per round), so a burst of load from another process
    hits them alike; the best of its calls is each method's figure. A method that raises in its
    setup, its warm-up or a timed call is recorded with the error and left out of later rounds.
    """
    out: dict[str, dict[str, Any]] = {}
    calls: dict[str, Call] = {}
    for m in methods:
        rec: dict[str, Any] = {"loss": None, "note": "", "error": None, "times_s": []}
        out[m.key] = rec
        try:
            call, rec["note"] = m.setup(data)
            rec["loss"] = call()
            calls[m.key] = call
        except Exception as exc:
            rec["error"] = _one_line(exc)
    for _ in range(repeat):
        for key, call in list(calls.items()):
            start = time.perf_counter()
            try:
                call()
            except Exception as exc:
                out[key]["error"] = _one_line(exc)
                del calls[key]
                continue
            out[key]["times_s"].append(time.perf_counter() - start)
    return out


def rss_child(key: str, rows: int, classes: int) -> None:
    """In a fresh process: growth of the peak RSS during one call of ``key`` (JSON; how it
    is measured: _peak.measure)."""
    fam = next(f for f in _families() if f.key == key.split("|")[0])
    method = next(m for m in methods_of(fam) if m.key == key)
    call, _ = method.setup(Data(rows, classes))
    print(json.dumps({"rss_peak_bytes": measure(call).peak_bytes}))


def rss_peak(key: str, rows: int, classes: int) -> float | None:
    """Run :func:`rss_child` in a subprocess; None if it failed (or off Linux)."""
    if not os.path.exists("/proc/self/clear_refs"):
        return None
    cmd = [sys.executable, __file__, "--rss-child", key, "--rows", str(rows)]
    proc = subprocess.run(
        [*cmd, "--classes", str(classes)], capture_output=True, text=True, check=False
    )
    if proc.returncode != 0:
        return None
    return float(json.loads(proc.stdout.strip().splitlines()[-1])["rss_peak_bytes"])


# ---------------------------------------------------------------------------------------------
# The run.


def _row_text(r: dict[str, Any]) -> str:
    name = r["method"] + (f" ({r['note']})" if r["note"] else "")
    head = f"  {r['library']:<6}{r['mode']:<8}{name:<62}"
    if r["error"]:
        return head + f"error: {r['error']}"[:160]
    ratio = "peer" if r["role"] == "peer" else "n/a"
    if r["x_peer"] is not None:
        ratio = f"{r['x_peer']:.2f}"
    rss = "" if r["rss_peak_mb"] is None else f"{r['rss_peak_mb']:.0f}"
    loss = "n/a" if r["loss"] is None else f"{r['loss']:.6g}"
    return head + f"{r['best_s'] * 1e3:>10.1f}{ratio:>8}{loss:>12}{rss:>9}"


def main(argv: list[str] | None = None) -> int:
    """Run every family (or those of ``--only``), print the table, optionally write JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=65536)
    parser.add_argument("--classes", type=int, default=1000)
    parser.add_argument("--repeat", type=int, default=5, help="timed calls after a warm-up")
    parser.add_argument(
        "--only",
        action="append",
        choices=FAMILY_KEYS,
        metavar="FAMILY",
        help=f"run only this family (repeatable): {', '.join(FAMILY_KEYS)}",
    )
    parser.add_argument("--json", metavar="PATH", help="also write the figures to PATH")
    parser.add_argument("--no-rss", action="store_true", help="skip the subprocess RSS runs")
    parser.add_argument("--rss-child", metavar="KEY", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.rss_child:
        rss_child(args.rss_child, args.rows, args.classes)
        return 0

    import torch

    import crossent

    families = [f for f in _families() if not args.only or f.key in args.only]
    data = Data(args.rows, args.classes)
    mb = 1e6
    array_mb = args.rows * args.classes * 4 / mb
    config = {
        "shape": [args.rows, args.classes],
        "dtype": "float32",
        "array_mb": array_mb,
        "repeat": args.repeat,
        "cpus": os.cpu_count(),
        "torch_threads": torch.get_num_threads(),
        "machine": platform.machine(),
        "crossent_file": crossent.__file__,
        "versions": versions("numpy", "torch", "jax", "jaxlib", "torchvision", "crossent"),
    }
    print(
        f"crossent loss families on a {args.rows} x {args.classes} float32 array "
        f"({array_mb:.0f} MB); best of {args.repeat} interleaved rounds after a warm-up; "
        f"{os.cpu_count()} CPUs, torch threads {torch.get_num_threads()}, NumPy single-threaded"
    )
    print("versions: " + ", ".join(f"{k} {v}" for k, v in config["versions"].items()))
    print(f"crossent from {crossent.__file__}")
    header = (
        f"  {'lib':<6}{'mode':<8}{'method':<62}{'best ms':>10}{'x peer':>8}{'loss':>12}"
        f"{'RSS MB':>9}"
    )
    results: list[dict[str, Any]] = []
    for fam in families:
        methods = methods_of(fam)
        timed = time_family(methods, data, args.repeat)
        data.drop_jax()
        rows: list[dict[str, Any]] = []
        for m in methods:
            rec = timed[m.key]
            times = rec["times_s"]
            error = rec["error"] or (None if times else "no timed call")
            rss = None
            if m.library == "torch" and not args.no_rss and error is None:
                rss = rss_peak(m.key, args.rows, args.classes)
            rows.append(
                {
                    "family": fam.key,
                    "library": m.library,
                    "mode": m.mode,
                    "method": m.name,
                    "role": m.role,
                    "note": rec["note"],
                    "error": error,
                    "loss": rec["loss"],
                    "best_s": min(times) if times else None,
                    "times_s": times,
                    "rss_peak_mb": None if rss is None else rss / mb,
                    "peer": None,
                    "x_peer": None,
                }
            )
        by_key = {m.key: r for m, r in zip(methods, rows, strict=True)}
        for m, r in zip(methods, rows, strict=True):
            peer = peer_of(m, methods) if m.role == "crossent" else None
            if peer is None:
                continue
            p = by_key[peer.key]
            r["peer"] = peer.name
            if r["best_s"] is not None and p["best_s"] is not None:
                r["x_peer"] = r["best_s"] / p["best_s"]
        print(f"\n{fam.key}: {fam.title}")
        print(f"  peers: numpy and torch rows vs {fam.torch_peer_name}; jax rows vs its own")
        print(header)
        print("  " + "-" * (len(header) - 2))
        for r in rows:
            print(_row_text(r))
        sys.stdout.flush()
        results.extend(rows)
    print(
        "\nx peer: crossent time / peer time, same library group and mode (NumPy rows against "
        "torch).\nRSS MB (torch rows): growth of the peak resident set during one call in a "
        "fresh process.\nfwd: forward only (torch under no_grad); fwd+bwd: loss and gradient "
        "with respect to the first input."
    )
    write_json(args.json, config, results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
