# ruff: noqa: RUF001  (the tour prints math: −, ×, σ, α are meant, not look-alikes)
"""``crossent tour`` end to end: its figures, and its seed-wrong marks checked independently.

Every seed figure below is recomputed here in NumPy float64 (without crossent); a seed figure is
right when it equals that value rounded to the digits the seed prints. The tour must mark
exactly the wrong ones.
"""

from __future__ import annotations

import json
import math
from decimal import Decimal

import numpy as np
import pytest
import typer
from typer.testing import CliRunner

from crossent.apps import cli, tour
from crossent.errors import UsageError


def _softmax(z: np.ndarray) -> np.ndarray:
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


def _entropy_bits(p: list[float]) -> float:
    q = np.array([x for x in p if x > 0])
    return float(-(q * np.log2(q)).sum())


def _rounds_to(value: float, printed: str, signless: bool = False) -> bool:
    """``printed`` is ``value`` rounded to its last printed digit (decimal or significant)."""
    seed = Decimal(printed.replace("−", "-"))
    if signless:
        value, seed = abs(value), abs(seed)
    exponent = seed.as_tuple().exponent
    assert isinstance(exponent, int)
    if exponent >= 0 and "." not in printed:  # an integer: keep its significant digits only
        digits = printed.lstrip("-−").rstrip("0") or "0"
        exponent = len(printed.lstrip("-−")) - len(digits)
    return round(Decimal(value), -exponent) == seed.quantize(Decimal(10) ** exponent)


def _expected() -> dict[tuple[str, str], str]:
    """(section, quantity) -> "agrees" | "wrong" for every figure the seeds print."""
    out: dict[tuple[str, str], str] = {}

    def expect(section: str, quantity: str, ok: bool) -> None:
        out[(section, quantity)] = "agrees" if ok else "wrong"

    def numbers(section: str, quantity: str, values, printed: list[str], signless=False):
        values = np.ravel(values)
        ok = all(_rounds_to(float(v), s, signless) for v, s in zip(values, printed, strict=True))
        expect(section, quantity, ok)

    # seed 000: the entropy table
    for name, p, seed in [
        ("Deterministic [1, 0]", [1.0, 0.0], "0.00"),
        ("Fair coin [0.5, 0.5]", [0.5, 0.5], "1.00"),
        ("Biased coin [0.9, 0.1]", [0.9, 0.1], "0.47"),
        ("Fair die [1/6 ×6]", [1 / 6] * 6, "2.58"),
        ("Loaded die [0.5, 0.1 ×5]", [0.5] + [0.1] * 5, "2.16"),
    ]:
        numbers("entropy", f"H({name})", _entropy_bits(p), [seed])

    # seeds 000 and 002: prose
    nll = {p: -math.log(p) for p in (0.99, 0.01, 0.7)}
    mse = {p: (1 - p) ** 2 for p in (0.99, 0.01)}
    numbers("penalties", "−log 0.99 (right, 99% sure)", nll[0.99], ["0.01"])
    numbers("penalties", "−log 0.01 (1% on the truth)", nll[0.01], ["4.6"])
    numbers("penalties", "−log 0.7 (right, 70% sure)", nll[0.7], ["0.36"])
    numbers("penalties", "uniform over 5 classes, true class 0…4", [math.log(5)] * 5, ["1.61"] * 5)
    numbers("penalties", "MSE (1 − 0.99)²", mse[0.99], ["0.0001"])
    numbers("penalties", "MSE (1 − 0.01)²", mse[0.01], ["0.98"])
    numbers("penalties", "MSE ratio, wrong / right", mse[0.01] / mse[0.99], ["10000"])
    numbers("penalties", "CE ratio, wrong / right", nll[0.01] / nll[0.99], ["500"])

    # seed 003: BCE gradients p - y
    numbers("bce", "∂L/∂z = p − y at p = 0.8", 0.8 - 1, ["-0.2"])
    numbers("bce", "∂L/∂z = p − y at p = 0.3", 0.3 - 1, ["-0.7"])

    # seed 002: five classes and the batch
    batch = np.array([[2.0, 1.2, 0.3, -0.8, -2.0], [-1.0, -0.5, 2.0, 0.1, -0.3], [0.5] * 5])
    targets = np.array([0, 2, 1])
    p = _softmax(batch)
    losses = -np.log(p[np.arange(3), targets])
    grad = (p - np.eye(5)[targets]) / 3
    numbers(
        "five-class",
        "softmax([2.0, 1.2, 0.3, −0.8, −2.0])",
        p[0],
        ["0.6439", "0.2896", "0.0466", "0.0155", "0.0044"],
    )
    numbers("five-class", "loss −log p₀", losses[0], ["0.4404"])
    numbers("five-class", "batch loss (mean)", losses.mean(), ["0.7456"])
    numbers(
        "five-class",
        "∂loss/∂z, first row (mean: ÷ 3)",
        grad[0],
        ["-0.3561", "0.2896", "0.0466", "0.0155", "0.0044"],
    )

    # seed 000: stability claims
    with np.errstate(over="ignore", invalid="ignore"):
        naive = np.exp([1000.0, 0.0, -1000.0])
        naive = naive / naive.sum()
    expect("extreme", "the seed's naive exp-then-normalize (NumPy)", bool(np.isfinite(naive).all()))
    expect("extreme", "CE, true class 0", 1000 + math.log1p(math.exp(-1000)) - 1000 == 0)
    expect("extreme", "BCE with logit 50, y = 1", 0 < math.log1p(math.exp(-50)) < 1e-20)

    # seed 000: the MSE-versus-BCE gradient table, y = 1
    table = [
        (0.01, ["0.0198", "0.0099", "0.0002"], "-0.99", "5000"),
        (0.10, ["0.18", "0.09", "0.016"], "-0.90", "56"),
        (0.50, ["0.50", "0.25", "0.125"], "-0.50", "4"),
        (0.90, ["0.18", "0.09", "0.016"], "-0.10", None),
        (0.99, ["0.0198", "0.0099", "0.0002"], "-0.01", None),
    ]
    for y_hat, mse_seed, bce_seed, ratio_seed in table:
        sigma_prime = y_hat * (1 - y_hat)
        d_mse = 2 * (y_hat - 1) * sigma_prime
        numbers(
            "mse-gradient",
            f"ŷ={y_hat:.2f}  ∂MSE/∂z = 2(ŷ−y) × σ'",
            [2 * (y_hat - 1), sigma_prime, d_mse],
            mse_seed,
            signless=True,
        )
        numbers("mse-gradient", f"ŷ={y_hat:.2f}  ∂BCE/∂z = ŷ − y", y_hat - 1, [bce_seed])
        ratio = (y_hat - 1) / d_mse
        quantity = f"ŷ={y_hat:.2f}  ∂BCE/∂z ÷ ∂MSE/∂z"
        if ratio_seed is None:  # "Similar"
            expect("mse-gradient", quantity, ratio < 2)
        else:
            numbers("mse-gradient", quantity, ratio, [ratio_seed])

    # seed 002: softmax applied twice shrinks the gradient
    z = np.array([2.0, 1.0, 0.1])
    probs = _softmax(z)
    g = _softmax(probs) - np.eye(3)[0]
    grad_b = probs * (g - g @ probs)
    shrink = np.linalg.norm(grad_b) / np.linalg.norm(probs - np.eye(3)[0])
    expect("double-softmax", "B's gradient norm / A's", shrink < 1)

    # seed 003: margins
    expect("margin", "m = -10  CE softplus(−m), ∂/∂m", abs(math.log1p(math.exp(10)) - 10) < 1e-3)
    for m in (2.0, 5.0):
        expect("margin", f"m = {m:g}  CE softplus(−m), ∂/∂m", math.log1p(math.exp(-m)) > 0)
        expect("margin", f"m = {m:g}  hinge max(0, 1−m), ∂/∂m", max(0.0, 1 - m) == 0)
    return out


EXPECTED = _expected()


def _app() -> typer.Typer:
    """The tour on an app of its own: a group, whatever else cli.app holds today."""
    app = typer.Typer(add_completion=False)

    @app.callback()
    def main() -> None:
        """Test group."""

    tour.register(app)
    return app


def _run(*args: str, columns: int = 100):
    result = CliRunner().invoke(_app(), ["tour", *args], env={"COLUMNS": str(columns)})
    assert result.exit_code == 0, result.output
    return result.output


@pytest.fixture(scope="module")
def doc() -> dict:
    return json.loads(_run("--json"))


def test_cli_registers_tour():
    assert "crossent.apps.tour" in cli.COMMAND_MODULES
    names = {c.name or c.callback.__name__ for c in cli.app.registered_commands if c.callback}
    assert "tour" in names


def test_rounding_rule_of_the_test():
    assert _rounds_to(0.4690, "0.47") and _rounds_to(458.2, "500") and _rounds_to(9801, "10000")
    assert not _rounds_to(50.5, "5000") and not _rounds_to(5.56, "56")
    assert _rounds_to(-0.000198, "0.0002", signless=True)


def test_seed_wrong_marks_exactly_where_the_seed_is_wrong(doc):
    marked = {
        (s["name"], r["quantity"]): r["verdict"]
        for s in doc["sections"]
        for r in s["rows"]
        if r["verdict"] is not None
    }
    assert marked == EXPECTED
    assert doc["checked"] == len(EXPECTED)
    assert doc["wrong"] == sum(v == "wrong" for v in EXPECTED.values())


def test_the_known_wrong_figures_are_among_them():
    wrong = {q for (_, q), v in EXPECTED.items() if v == "wrong"}
    assert {"loss −log p₀", "batch loss (mean)", "∂loss/∂z, first row (mean: ÷ 3)"} <= wrong
    assert "ŷ=0.01  ∂BCE/∂z ÷ ∂MSE/∂z" in wrong  # 50.5x, not 5000x
    assert "H(Biased coin [0.9, 0.1])" not in wrong


def test_text_output_holds_key_figures_and_marks():
    out = _run()
    z = np.array([2.0, 1.0, 0.1])
    five = np.array([2.0, 1.2, 0.3, -0.8, -2.0])
    probs = _softmax(z)
    g = _softmax(probs) - np.eye(3)[0]
    shrink = np.linalg.norm(probs * (g - g @ probs)) / np.linalg.norm(probs - np.eye(3)[0])
    for figure in (
        f"{-math.log(probs[0]):.4f}",  # 0.4170
        f"{math.log(5):.4f}",  # the uniform guess over five classes
        f"{-math.log(_softmax(five)[0]):.4f}",  # the corrected five-class loss, 0.5372
        f"{shrink:.2%}",  # the double-softmax gradient shrink
    ):
        assert figure in out, figure
    n_wrong = sum(v == "wrong" for v in EXPECTED.values())
    assert out.count("✗") == n_wrong
    assert out.count("✓") == len(EXPECTED) - n_wrong
    assert f"{len(EXPECTED)} seed figures checked" in out


def test_fits_in_100_columns():
    out = _run(columns=160)
    assert max(len(line.rstrip()) for line in out.splitlines()) <= 100


def test_one_section(doc):
    out = _run("--section", "five-class")
    assert "Five-class" in out and "Entropy" not in out
    assert [s["name"] for s in doc["sections"]] == [s.name for s in tour.SECTIONS]


def test_unknown_section_names_the_choices():
    result = CliRunner().invoke(_app(), ["tour", "--section", "nope"])
    assert isinstance(result.exception, UsageError)
    assert "five-class" in str(result.exception)


def test_json_values_are_plain_json(doc):
    row = next(r for s in doc["sections"] for r in s["rows"] if r["quantity"] == "loss −log p₀")
    assert row["values"] == pytest.approx([0.5371587570980944], rel=1e-12)
    assert row["seed"] == "0.4404"
