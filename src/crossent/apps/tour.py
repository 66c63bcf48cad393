# ruff: noqa: RUF001  (the tour prints math: −, ×, σ, α are meant, not look-alikes)
"""The ``crossent tour`` command: every worked example of the seeds, recomputed by crossent.

Each section is a function returning :class:`Row` objects, one per figure: what crossent
computes beside what the seed prints, and whether the seed's figure agrees at the precision it
prints. A seed figure agrees when it is the library's value rounded to the seed's last printed
digit ("0.47" for 0.4690, "five hundred" for 458); otherwise it is marked wrong. Several seed
figures are wrong: they do not follow from the seed's own inputs.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Annotated, Any

import numpy as np
import typer

import crossent as ce
from crossent.errors import UsageError

# ---------------------------------------------------------------- rows and their checks

_NUMBER = re.compile(r"[-+−]?(?:\d+\.?\d*|\.\d+)(?:[eE][-+]?\d+)?")


@dataclass(frozen=True)
class Row:
    """One figure of the tour.

    Attributes
    ----------
    quantity : str
        What the figure is.
    crossent : str
        The library's figure, formatted.
    values : tuple of float
        The library's numbers behind ``crossent``.
    seed : str or None
        The seed's figure as it prints it; None where the seed prints none.
    verdict : {"agrees", "wrong"} or None
        Whether the seed's figure is right; None where there is nothing to check.
    note : str
        Why, where it is not obvious.
    """

    quantity: str
    crossent: str
    values: tuple[float, ...]
    seed: str | None
    verdict: str | None
    note: str


def _tolerance(number: str) -> float:
    """Half a unit in the last printed digit: 0.005 for "0.47", 500 for "5000", 0.5 for "4"."""
    mantissa = number.lstrip("+-−").lower().split("e")[0]
    exponent = int(number.lower().split("e")[1]) if "e" in number.lower() else 0
    if "." in mantissa:
        unit = -len(mantissa.split(".")[1])
    else:
        unit = len(mantissa) - len(mantissa.rstrip("0")) if mantissa.strip("0") else 0
    return 0.5 * 10.0 ** (unit + exponent)


def agrees(values: Sequence[float], printed: str, *, signless: bool = False) -> bool:
    """Whether every number in ``printed`` is the matching value rounded to its printed digits.

    Parameters
    ----------
    values : sequence of float
        The exact values, in the order the numbers appear in ``printed``; a single printed
        number is compared with every value.
    printed : str
        Text holding the seed's numbers, e.g. ``"0.0198 × 0.0099 = 0.0002"``.
    signless : bool, default False
        Compare magnitudes (for a seed that prints gradients without their sign).

    Returns
    -------
    bool

    Examples
    --------
    >>> agrees([0.4690], "0.47"), agrees([458.2], "500"), agrees([50.5], "5000")
    (True, True, False)
    """
    numbers = _NUMBER.findall(printed)
    if len(numbers) == 1:
        numbers = numbers * len(values)
    if len(numbers) != len(values):
        raise ValueError(f"{printed!r} holds {len(numbers)} numbers, expected {len(values)}")
    for value, number in zip(values, numbers, strict=True):
        seed = float(number.replace("−", "-"))
        if signless:
            value, seed = abs(value), abs(seed)
        if not abs(value - seed) <= _tolerance(number) * (1 + 1e-9):
            return False
    return True


def _format(values: Sequence[float], fmt: str) -> str:
    shown = [format(v, fmt) for v in values]
    return shown[0] if len(shown) == 1 else "[" + ", ".join(shown) + "]"


def fig(
    quantity: str,
    value: Any,
    *,
    seed: str | None = None,
    read: str | None = None,
    holds: bool | None = None,
    signless: bool = False,
    fmt: str = ".4f",
    template: str | None = None,
    note: str = "",
) -> Row:
    """Make a :class:`Row`, checking the seed's figure against the library's value.

    Parameters
    ----------
    quantity : str
        What the figure is.
    value : array_like or str
        The library's figure (any array of crossent's output; a string is shown as is).
    seed : str, optional
        The seed's figure as printed.
    read : str, optional
        The number a verbal seed figure states ("ten thousand" is read as "10000"); default
        the numbers in ``seed``.
    holds : bool, optional
        The verdict of a seed claim that is not a number ("Similar", "doesn't overflow").
    signless : bool, default False
        Compare magnitudes only.
    fmt : str, default ".4f"
        Format of each number.
    template : str, optional
        ``str.format`` template taking the numbers positionally, instead of a list.
    note : str, optional
        Explanation shown under the table.

    Returns
    -------
    Row
    """
    if isinstance(value, str):
        values: tuple[float, ...] = ()
        shown = value
    else:
        values = tuple(float(v) for v in np.ravel(np.asarray(value, dtype=np.float64)))
        shown = template.format(*values) if template else _format(values, fmt)
    verdict = None
    if holds is not None:
        verdict = holds
    elif seed is not None and _NUMBER.search(read if read is not None else seed):
        verdict = agrees(values, read if read is not None else seed, signless=signless)
    label = None if verdict is None else ("agrees" if verdict else "wrong")
    return Row(quantity, shown, values, seed, label, note)


@dataclass(frozen=True)
class Section:
    """A named group of figures: ``rows()`` computes them."""

    name: str
    title: str
    source: str
    rows: Callable[[], list[Row]]


SECTIONS: list[Section] = []


def _section(name: str, title: str, source: str) -> Callable[[Callable[[], list[Row]]], Any]:
    def add(rows: Callable[[], list[Row]]) -> Callable[[], list[Row]]:
        SECTIONS.append(Section(name, title, source, rows))
        return rows

    return add


def _logit(p: float) -> np.ndarray:
    """The logit whose sigmoid is ``p`` (to feed the seeds' probabilities to logit losses)."""
    return np.array([math.log(p / (1 - p))])


def _num(x: Any) -> float:
    return float(np.asarray(x, dtype=np.float64).reshape(-1)[0])


# ---------------------------------------------------------------- the sections


@_section("entropy", "Entropy in bits", "seed 000, entropy table")
def _entropy() -> list[Row]:
    table = [
        ("Deterministic [1, 0]", [1.0, 0.0], "0.00"),
        ("Fair coin [0.5, 0.5]", [0.5, 0.5], "1.00"),
        ("Biased coin [0.9, 0.1]", [0.9, 0.1], "0.47"),
        ("Fair die [1/6 ×6]", [1 / 6] * 6, "2.58"),
        ("Loaded die [0.5, 0.1 ×5]", [0.5] + [0.1] * 5, "2.16"),
    ]
    rows = [fig(f"H({name})", ce.entropy(p, base=2), seed=seed) for name, p, seed in table]
    p, q = [0.9, 0.1], [0.5, 0.5]
    return [
        *rows,
        fig("H(fair coin) in nats (base=None)", ce.entropy([0.5, 0.5])),
        fig("H(P, Q), P=[0.9, 0.1], Q=[0.5, 0.5]", ce.cross_entropy(p, q, base=2)),
        fig(
            "H(P) + D_KL(P‖Q) (same P, Q)",
            ce.entropy(p, base=2) + ce.kl_divergence(p, q, base=2),
            note="H(P, Q) = H(P) + D_KL(P‖Q) ≥ H(P): the extra bits of the wrong code.",
        ),
    ]


@_section("penalties", "What a wrong confidence costs (nats)", "seeds 000 and 002, prose")
def _penalties() -> list[Row]:
    ones = np.ones(1)
    ce_99 = ce.binary_cross_entropy([0.99], ones)
    ce_01 = ce.binary_cross_entropy([0.01], ones)
    mse_99 = ce.mse_loss(_logit(0.99), ones, activation="sigmoid")
    mse_01 = ce.mse_loss(_logit(0.01), ones, activation="sigmoid")
    uniform = ce.categorical_cross_entropy(np.full((5, 5), 0.2), np.arange(5), reduction="none")
    return [
        fig("−log 0.99 (right, 99% sure)", ce_99, seed="≈ 0.01"),
        fig("−log 0.01 (1% on the truth)", ce_01, seed="≈ 4.6"),
        fig("−log 0.7 (right, 70% sure)", ce.binary_cross_entropy([0.7], ones), seed="0.36"),
        fig(
            "uniform over 5 classes, true class 0…4",
            uniform,
            seed="log(5) ≈ 1.61",
            read="1.61",
            note="The uniform guess costs log K whichever class is true.",
        ),
        fig("MSE (1 − 0.99)²", mse_99, seed="0.0001"),
        fig("MSE (1 − 0.01)²", mse_01, seed="0.98"),
        fig(
            "MSE ratio, wrong / right",
            _num(mse_01) / _num(mse_99),
            fmt=".0f",
            seed="a factor of about ten thousand",
            read="10000",
        ),
        fig(
            "CE ratio, wrong / right",
            _num(ce_01) / _num(ce_99),
            fmt=".1f",
            seed="a factor of five hundred",
            read="500",
            note="458 rounds to five hundred at the one digit the seed gives (460 = 4.6 / 0.01).",
        ),
    ]


@_section("bce", "Binary cross-entropy, y = 1", "seed 000 BCE demo; seed 003 gradients")
def _bce() -> list[Row]:
    p = np.array([0.99, 0.01, 0.5])
    y = np.ones(3)
    z = np.log(p / (1 - p))
    not_shown = "the seed prints the code, not its output"
    rows = [
        fig(
            "BCE from probs, p = 0.99, 0.01, 0.50",
            ce.binary_cross_entropy(p, y, reduction="none"),
            note=not_shown,
        ),
        fig(
            "BCE from logits z = log(p / (1−p))",
            ce.sigmoid_binary_cross_entropy(z, y, reduction="none"),
        ),
    ]
    for prob, seed in ((0.8, "-0.2"), (0.3, "-0.7")):
        rows.append(
            fig(
                f"∂L/∂z = p − y at p = {prob}",
                ce.grad.sigmoid_binary_cross_entropy(_logit(prob), np.ones(1)),
                seed=seed,
            )
        )
    return rows


@_section("cce", "Three-class example, logits [2.0, 1.0, 0.1], class 0", "seed 000; seed 004")
def _cce() -> list[Row]:
    logits = np.array([[2.0, 1.0, 0.1]])
    onehot = np.array([[1.0, 0.0, 0.0]])
    probs = ce.softmax(logits)
    return [
        fig("softmax probabilities", probs, note="seed 000 prints the code, not its output"),
        fig("CCE from probs (one-hot targets)", ce.categorical_cross_entropy(probs, onehot)),
        fig("CCE from logits (one-hot targets)", ce.softmax_cross_entropy(logits, onehot)),
        fig("sparse CCE (index target 0)", ce.softmax_cross_entropy(logits, np.array([0]))),
        fig("∂L/∂z = p − y", ce.grad.softmax_cross_entropy(logits, np.array([0]))),
        fig(
            "seed 004: ŷ = [0.2, 0.7, 0.1], class 1",
            ce.categorical_cross_entropy(np.array([[0.2, 0.7, 0.1]]), np.array([1])),
        ),
    ]


_FIVE = [2.0, 1.2, 0.3, -0.8, -2.0]
_BATCH = np.array([_FIVE, [-1.0, -0.5, 2.0, 0.1, -0.3], [0.5] * 5])
_BATCH_TARGETS = np.array([0, 2, 1])


@_section("five-class", "Five-class and batch examples", "seed 002, NumPy and PyTorch layers")
def _five_class() -> list[Row]:
    one = np.array([_FIVE])
    grad_mean = ce.grad.softmax_cross_entropy(_BATCH, _BATCH_TARGETS)
    grad_sum = ce.grad.softmax_cross_entropy(_BATCH, _BATCH_TARGETS, reduction="sum")
    return [
        fig(
            "softmax([2.0, 1.2, 0.3, −0.8, −2.0])",
            ce.softmax(one),
            seed="[0.6439, 0.2896, 0.0466, 0.0155, 0.0044]",
            note="the seed's probabilities do not follow from its logits",
        ),
        fig(
            "loss −log p₀",
            ce.softmax_cross_entropy(one, np.array([0])),
            seed="0.4404",
            note="not even −log of its own 0.6439, which is 0.4402",
        ),
        fig(
            "batch per-sample losses (targets 0, 2, 1)",
            ce.softmax_cross_entropy(_BATCH, _BATCH_TARGETS, reduction="none"),
        ),
        fig(
            "batch loss (mean)",
            ce.softmax_cross_entropy(_BATCH, _BATCH_TARGETS),
            seed="0.7456",
        ),
        fig(
            "∂loss/∂z, first row (mean: ÷ 3)",
            grad_mean[0],
            seed="[-0.3561, 0.2896, 0.0466, 0.0155, 0.0044]",
            note=(
                "the seed's row is its own wrong probabilities minus the one-hot, and is not "
                "divided by the batch size 3 that its comment announces"
            ),
        ),
        fig("first row undivided, p − y", grad_sum[0]),
    ]


@_section("extreme", "Extreme logits", "seed 000 stability demo; seed 003")
def _extreme() -> list[Row]:
    logits = np.array([[1000.0, 0.0, -1000.0]])
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp(logits) / np.sum(np.exp(logits), axis=-1, keepdims=True)
    loss = ce.softmax_cross_entropy(logits, np.array([0]))
    bce = ce.sigmoid_binary_cross_entropy(np.array([50.0]), np.ones(1))
    return [
        fig(
            "the seed's naive exp-then-normalize (NumPy)",
            naive,
            fmt=".0f",
            seed="“This doesn't overflow in NumPy”",
            holds=bool(np.all(np.isfinite(naive))),
            note="np.exp(1000) overflows to inf (a RuntimeWarning); inf / inf is NaN",
        ),
        fig("ce.softmax of [1000, 0, −1000]", ce.softmax(logits), fmt=".0f"),
        fig(
            "CE, true class 0",
            loss,
            fmt=".6f",
            seed="“finite and correct”",
            holds=_num(loss) == 0.0,
        ),
        fig(
            "CE, true class 2 (−1000)",
            ce.softmax_cross_entropy(logits, np.array([2])),
            fmt=".1f",
        ),
        fig(
            "logsumexp([710, 0]) (exp(710) overflows)",
            ce.logsumexp(np.array([710.0, 0.0])),
            fmt=".4f",
        ),
        fig(
            "BCE with logit 50, y = 1",
            bce,
            fmt=".4e",
            seed="“correctly close to 0”",
            holds=0.0 < _num(bce) < 1e-20,
        ),
        fig(
            "BCE with logit 50, y = 0",
            ce.sigmoid_binary_cross_entropy(np.array([50.0]), np.zeros(1)),
        ),
    ]


@_section(
    "smoothing",
    "Label smoothing and class weights: 4×5 logits of np.random.seed(42), targets [0, 1, 2, 0]",
    "seed 000 practical variants; seed 002",
)
def _smoothing() -> list[Row]:
    logits = np.random.RandomState(42).randn(4, 5)  # the draws of np.random.seed(42); randn
    y = np.array([0, 1, 2, 0])
    w = np.array([1.0, 1.0, 5.0, 1.0, 1.0])
    uniform = ce.smooth_labels(y, label_smoothing=0.1, num_classes=5)
    others = ce.smooth_labels(y, label_smoothing=0.1, num_classes=5, smoothing_convention="others")
    per_sample = ce.softmax_cross_entropy(logits, y, class_weight=w, reduction="none")
    return [
        fig("standard CCE", ce.softmax_cross_entropy(logits, y)),
        fig(
            "smoothed CCE, α = 0.1 (α/K)", ce.softmax_cross_entropy(logits, y, label_smoothing=0.1)
        ),
        fig("same via smooth_labels targets", ce.softmax_cross_entropy(logits, uniform)),
        fig("smoothed target, class 0 (α/K)", uniform[0], fmt=".3f"),
        fig("seed 002's smoothing (0.9, α/(K−1))", others[0], fmt=".3f"),
        fig("CCE with seed 002's smoothing", ce.softmax_cross_entropy(logits, others)),
        fig(
            "weighted, seed: mean(w[y]·ce)",
            np.mean(np.asarray(per_sample)),
            note=(
                "seed 000 divides Σ w[yᵢ]·ceᵢ by N = 4; PyTorch (and crossent) divide by "
                "Σ w[yᵢ] = 8, so the seed's figure is twice PyTorch's for these targets"
            ),
        ),
        fig(
            "weighted, PyTorch: Σ w[y]·ce / Σ w[y]",
            ce.softmax_cross_entropy(logits, y, class_weight=w),
        ),
        fig(
            "class_weights(targets, 3) = N / (K n_k)",
            ce.class_weights(y, 3),
            note="classes 3 and 4 have no example here: their N / (K · 0) is undefined",
        ),
    ]


@_section("mse-gradient", "MSE versus cross-entropy gradient, y = 1", "seed 000 gradient table")
def _mse_gradient() -> list[Row]:
    table = [  # ŷ, the seed's MSE column, the seed's BCE column, the seed's learning signal
        (0.01, "0.0198 × 0.0099 = 0.0002", "-0.99", "5000× stronger"),
        (0.10, "0.18 × 0.09 = 0.016", "-0.90", "56× stronger"),
        (0.50, "0.50 × 0.25 = 0.125", "-0.50", "4× stronger"),
        (0.90, "0.18 × 0.09 = 0.016", "-0.10", "Similar"),
        (0.99, "0.0198 × 0.0099 = 0.0002", "-0.01", "Similar"),
    ]
    mse_note = (
        "the seed's column should be ∂MSE/∂z = 2(ŷ−y)·σ'(z); it prints 2ŷ(1−ŷ) = 2σ' as the "
        "first factor, so its products are 2σ'², and it drops the minus sign"
    )
    ratio_note = (
        "BCE / MSE = 1 / (2ŷ(1−ŷ)): 50.5× at ŷ = 0.01 and again at 0.99, never 5000×; the "
        "seed divides by its wrong products"
    )
    rows = []
    for p, mse_seed, bce_seed, signal in table:
        z, ones = _logit(p), np.ones(1)
        s = _num(ce.sigmoid(z))
        mse = _num(ce.grad.mse_loss(z, ones, activation="sigmoid"))
        bce = _num(ce.grad.sigmoid_binary_cross_entropy(z, ones))
        ratio = bce / mse
        rows += [
            fig(
                f"ŷ={p:.2f}  ∂MSE/∂z = 2(ŷ−y) × σ'",
                [2 * (s - 1), s * (1 - s), mse],
                template="{0:.4g} × {1:.4g} = {2:.4g}",
                seed=mse_seed,
                signless=True,
                note=mse_note,
            ),
            fig(f"ŷ={p:.2f}  ∂BCE/∂z = ŷ − y", bce, fmt=".2f", seed=bce_seed),
            fig(
                f"ŷ={p:.2f}  ∂BCE/∂z ÷ ∂MSE/∂z",
                ratio,
                template="{0:.3g}×",
                seed=signal,
                holds=ratio < 2 if signal == "Similar" else None,
                note=ratio_note,
            ),
        ]
    return rows


@_section("double-softmax", "Softmax applied twice", "seed 002 debugging exercise")
def _double_softmax() -> list[Row]:
    logits = np.array([[2.0, 1.0, 0.1]])
    target = np.array([0])
    probs = ce.softmax(logits)
    grad_a = ce.grad.softmax_cross_entropy(logits, target)
    # Version B: dL/dz = J_softmax(z)ᵀ g with g = dL/dp, the gradient at the probabilities.
    g = np.asarray(ce.grad.softmax_cross_entropy(probs, target))
    p = np.asarray(probs)
    grad_b = p * (g - np.sum(g * p, axis=-1, keepdims=True))
    check = ce.check_gradient(
        lambda z: ce.softmax_cross_entropy(ce.softmax(z), target), logits, grad=grad_b
    )
    norm_a, norm_b = float(np.linalg.norm(grad_a)), float(np.linalg.norm(grad_b))
    findings = ce.diagnose(probs, target)
    return [
        fig("A: loss from logits", ce.softmax_cross_entropy(logits, target), fmt=".5f"),
        fig("A: gradient p − y", grad_a),
        fig("A: gradient norm", norm_a, fmt=".5f"),
        fig("B: loss from softmax(logits)", ce.softmax_cross_entropy(probs, target), fmt=".5f"),
        fig("B: gradient (chain rule)", grad_b),
        fig(
            "B: ce.check_gradient vs finite differences",
            check.max_abs_error,
            template=("passes" if check.ok else "FAILS") + ", max error {0:.0e}",
        ),
        fig("B: gradient norm", norm_b, fmt=".5f"),
        fig(
            "B's gradient norm / A's",
            norm_b / norm_a,
            fmt=".2%",
            seed="“B's gradient is visibly smaller”",
            holds=norm_b < norm_a,
        ),
        fig(
            "ce.diagnose(softmax(logits), targets)",
            ", ".join(f.code for f in findings) or "no finding",
            note=" ".join(f.message for f in findings),
        ),
    ]


@_section(
    "margin",
    "Cross-entropy versus hinge along the margin m = z_y − z_j",
    "seed 003, margin-based losses",
)
def _margin() -> list[Row]:
    rows = []
    for m in (-10.0, -2.0, 0.0, 0.5, 2.0, 5.0):
        pair = np.array([[m, 0.0]])
        target = np.array([0])
        loss = _num(ce.softplus(np.array([-m])))
        grad = _num(ce.grad.softmax_cross_entropy(pair, target))  # d/dz_y = d/dm
        hinge = _num(ce.hinge_loss(pair, target))
        hinge_grad = _num(ce.grad.hinge_loss(pair, target))
        ce_seed = ce_holds = None
        if m > 1:
            ce_seed, ce_holds = "never exactly 0; small, decaying gradient", loss > 0 > grad
        elif m < -5:
            ce_seed, ce_holds = "≈ |m|, linear: does not saturate", abs(loss + m) < 1e-3
        rows += [
            fig(
                f"m = {m:g}  CE softplus(−m), ∂/∂m",
                [loss, grad],
                template="{0:.4f}, {1:+.4f}",
                seed=ce_seed,
                holds=ce_holds,
            ),
            fig(
                f"m = {m:g}  hinge max(0, 1−m), ∂/∂m",
                [hinge, hinge_grad],
                template="{0:.4f}, {1:g}",
                seed="0, gradient 0" if m > 1 else None,
                holds=hinge == 0 == hinge_grad if m > 1 else None,
            ),
        ]
    return rows


# ---------------------------------------------------------------- output


def _jsonable(value: float) -> float | str:
    return value if math.isfinite(value) else str(value)


def _render(computed: list[tuple[Section, list[Row]]], as_json: bool) -> None:
    checked = [r for _, rows in computed for r in rows if r.verdict is not None]
    wrong = sum(r.verdict == "wrong" for r in checked)
    if as_json:
        doc = {
            "sections": [
                {
                    "name": s.name,
                    "title": s.title,
                    "source": s.source,
                    "rows": [
                        {**asdict(r), "values": [_jsonable(v) for v in r.values]} for r in rows
                    ],
                }
                for s, rows in computed
            ],
            "checked": len(checked),
            "wrong": wrong,
        }
        typer.echo(json.dumps(doc, indent=2, ensure_ascii=False, allow_nan=False))
        return

    from rich import box
    from rich.console import Console
    from rich.markup import escape
    from rich.padding import Padding
    from rich.table import Table

    console = Console(highlight=False)
    width = min(console.width, 100)
    marks = {"agrees": "[green]✓[/]", "wrong": "[bold red]✗ wrong[/]", None: ""}
    for section, rows in computed:
        table = Table(
            title=f"[bold]{escape(section.title)}[/]  "
            f"[dim]({escape(section.source)}; --section {section.name})",
            title_justify="left",
            box=box.SIMPLE_HEAD,
            width=width,
        )
        table.add_column("quantity", ratio=5)
        table.add_column("crossent", ratio=4)
        table.add_column("seed prints", ratio=4)
        table.add_column("", width=7, no_wrap=True)
        for r in rows:
            seed = "[dim]—[/]" if r.seed is None else escape(r.seed)
            table.add_row(escape(r.quantity), escape(r.crossent), seed, marks[r.verdict])
        notes = Table.grid(padding=(0, 1))
        notes.add_column(width=3, justify="right")
        notes.add_column()
        for note in dict.fromkeys(r.note for r in rows if r.note):
            notes.add_row("•", escape(note))
        console.print(table, Padding(notes, (0, 0, 1, 0)), style=None, width=width)
    console.print(
        f"{len(checked)} seed figures checked: {len(checked) - wrong} agree, {wrong} wrong "
        "(crossent's value stands beside each)."
    )


_SECTION_NAMES = ", ".join(s.name for s in SECTIONS)


def register(app: typer.Typer) -> None:
    """Add the ``tour`` command to ``app``."""

    @app.command()
    def tour(
        section: Annotated[
            str | None,
            typer.Option(
                "--section",
                "-s",
                help=f"Show one section: {_SECTION_NAMES}.",
                show_default=False,
            ),
        ] = None,
        as_json: Annotated[
            bool, typer.Option("--json", help="Print the figures as JSON instead of tables.")
        ] = False,
    ) -> None:
        """Walk through every worked example of the seeds, computed by crossent.

        Beside each figure a seed prints, the library's figure, and a mark where the seed is
        wrong.
        """
        chosen = [s for s in SECTIONS if section is None or s.name == section]
        if not chosen:
            raise UsageError(f"unknown section {section!r}; choose one of: {_SECTION_NAMES}")
        _render([(s, s.rows()) for s in chosen], as_json)
