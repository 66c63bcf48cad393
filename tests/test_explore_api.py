"""The explorer's JSON API, its static files and its command (``crossent explore``).

Values are checked against independent references (NumPy formulas, PyTorch autograd and
``F.cross_entropy``, the seed-002 worked numbers); error handling is checked with explicit bad
requests and with hypothesis-generated bodies that must never produce a 500.
"""

from __future__ import annotations

import json
import math
import re
import socket
import subprocess
import sys
import time
import warnings
from importlib import resources

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

pytest.importorskip("starlette")
with warnings.catch_warnings():
    # Starlette >= 1.x prefers httpx2 for its TestClient and warns when it falls back to httpx;
    # either works for these tests, and the project depends on httpx only.
    warnings.simplefilter("ignore", UserWarning)
    from starlette.testclient import TestClient

import crossent as ce
from crossent.explore import _compute
from crossent.explore._validate import MAX_BODY_BYTES
from crossent.explore.server import create_app

SEED_LOGITS = [2.0, 1.2, 0.3, -0.8, -2.0]  # seed 002's single example, target 0
BUG_LOGITS = [2.0, 1.0, 0.1]  # seed 002's double-softmax starter, target 0
PIPELINE = {
    "x": [1.0, -0.5],
    "W": [[0.5, -0.3], [0.2, 0.8], [-0.4, 0.1]],
    "b": [0.1, 0.0, -0.2],
    "target": 2,
    "lr": 0.5,
}
VALID = {
    "quiz": {"probs": [0.1, 0.7, 0.1, 0.05, 0.05], "target": 1},
    "binary": {"p": 0.7, "y": 1},
    "softmax_ce": {"logits": SEED_LOGITS, "target": 0},
    "double_softmax": {"logits": BUG_LOGITS, "target": 0},
    "smoothing": {
        "logits": SEED_LOGITS,
        "target": 0,
        "label_smoothing": 0.1,
        "temperature": 2.0,
        "gamma": 2.0,
    },
    "pipeline": PIPELINE,
}


def _strict_loads(content: bytes) -> dict:
    """Parse a response as strict JSON: NaN/Infinity literals are an error."""

    def refuse(name: str) -> None:
        raise AssertionError(f"response contains the non-JSON literal {name}")

    return json.loads(content, parse_constant=refuse)


@pytest.fixture(scope="module")
def client() -> TestClient:
    return TestClient(create_app(), base_url="http://127.0.0.1")


def post(client: TestClient, name: str, body: dict) -> dict:
    response = client.post(f"/api/{name}", json=body)
    assert response.status_code == 200, response.text
    return _strict_loads(response.content)


# ---------------------------------------------------------------- page and static files


def test_index_is_served_with_a_strict_content_security_policy(client):
    response = client.get("/")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    policy = response.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "connect-src 'self'" in policy
    for panel in ("quiz", "binary", "logits", "double", "smoothing", "pipeline"):
        assert f'id="{panel}"' in response.text


@pytest.mark.parametrize(
    ("name", "media"),
    [
        ("explore.js", "javascript"),
        ("explore.css", "text/css"),
        ("favicon.svg", "image/svg+xml"),
        ("index.html", "text/html"),
    ],
)
def test_static_files_ship_in_the_package_and_are_served(client, name, media):
    packaged = resources.files("crossent.explore").joinpath("static", name)
    assert packaged.is_file()
    response = client.get(f"/static/{name}")
    assert response.status_code == 200
    assert media in response.headers["content-type"]
    assert response.content == packaged.read_bytes()


def test_static_files_reference_nothing_outside_the_server():
    static = resources.files("crossent.explore").joinpath("static")
    url = re.compile(r"""(?:https?:)?//[\w.-]+\.[a-z]{2,}""", re.IGNORECASE)
    for entry in static.iterdir():
        text = entry.read_text(encoding="utf-8")
        found = [m for m in url.findall(text) if m != "http://www.w3.org"]  # SVG namespace name
        assert not found, f"{entry.name} references {found}"
        assert "@import" not in text and "cdn" not in text.lower()


def test_health_reports_version_endpoints_and_limits(client):
    data = client.get("/api/health").json()
    assert data["version"] == ce.__version__
    assert data["endpoints"] == sorted(VALID)
    assert data["limits"]["quiz_classes"] == 10


def test_pyproject_lists_the_static_files_as_package_data():
    from pathlib import Path

    pyproject = Path(__file__).resolve().parents[1] / "pyproject.toml"
    if not pyproject.exists():
        pytest.skip("not running from a source checkout")
    assert '"explore/static/*"' in pyproject.read_text()


# ---------------------------------------------------------------- values


def test_quiz_matches_the_definitions_and_the_seed(client):
    probs = np.array(VALID["quiz"]["probs"])
    y = np.eye(5)[1]
    data = post(client, "quiz", VALID["quiz"])
    assert data["cross_entropy"] == pytest.approx(-math.log(0.7), rel=1e-12)
    assert round(data["cross_entropy"], 2) == 0.36  # seed 002: "70% ... costs you 0.36"
    assert data["cross_entropy_bits"] == pytest.approx(-math.log2(0.7), rel=1e-12)
    assert data["entropy"] == pytest.approx(-(probs * np.log(probs)).sum(), rel=1e-12)
    assert data["entropy_bits"] == pytest.approx(-(probs * np.log2(probs)).sum(), rel=1e-12)
    assert data["kl_divergence"] == pytest.approx(data["cross_entropy"], rel=1e-12)
    assert data["mse"] == pytest.approx(((probs - y) ** 2).sum(), rel=1e-12)
    assert data["uniform_loss"] == pytest.approx(math.log(5), rel=1e-12)
    q = np.array(data["curve"]["confidence"])
    assert q.min() > 0 and q.max() < 1 and np.all(np.diff(q) > 0)
    np.testing.assert_allclose(data["curve"]["cross_entropy"], -np.log(q), rtol=1e-12)
    mse = (1 - q) ** 2 + 4 * ((1 - q) / 4) ** 2
    np.testing.assert_allclose(data["curve"]["mse"], mse, rtol=1e-9, atol=1e-15)


@pytest.mark.parametrize("k", [2, 3, 10])
def test_quiz_uniform_guess_costs_log_k_whatever_the_true_class(client, k):
    for target in (0, k - 1):
        data = post(client, "quiz", {"probs": [1.0 / k] * k, "target": target})
        assert data["cross_entropy"] == pytest.approx(math.log(k), rel=1e-12)
        assert data["entropy"] == pytest.approx(math.log(k), rel=1e-12)
        assert data["uniform_loss"] == pytest.approx(math.log(k), rel=1e-12)


def test_quiz_confidently_wrong_is_expensive_and_zero_is_infinite(client):
    data = post(client, "quiz", {"probs": [0.01, 0.99, 0.0], "target": 0})
    assert round(data["cross_entropy"], 1) == 4.6  # seed 002: "predict 0.01 ... I charge you 4.6"
    data = post(client, "quiz", {"probs": [0.0, 1.0], "target": 0})
    assert data["cross_entropy"] == "Infinity"
    assert data["kl_divergence"] == "Infinity"
    assert data["mse"] == pytest.approx(2.0)


def test_binary_matches_the_seed_comparison_with_mse(client):
    right = post(client, "binary", {"p": 0.99, "y": 1})
    wrong = post(client, "binary", {"p": 0.01, "y": 1})
    # seed 002: MSE 0.0001 vs 0.98; cross-entropy 0.01 vs 4.6
    assert right["mse"] == pytest.approx(1e-4, rel=1e-9)
    assert wrong["mse"] == pytest.approx(0.9801, rel=1e-9)
    assert right["loss"] == pytest.approx(-math.log(0.99), rel=1e-12)
    assert wrong["loss"] == pytest.approx(-math.log(0.01), rel=1e-12)
    assert wrong["loss_bits"] == pytest.approx(-math.log2(0.01), rel=1e-12)
    for d, p in ((right, 0.99), (wrong, 0.01)):
        assert d["grad_logit"] == pytest.approx(p - 1, rel=1e-9)
        assert d["mse_grad_logit"] == pytest.approx(2 * (p - 1) * p * (1 - p), rel=1e-9)
    grid = np.array(right["curve"]["p"])
    np.testing.assert_allclose(right["curve"]["loss_y1"], -np.log(grid), rtol=1e-12)
    np.testing.assert_allclose(right["curve"]["loss_y0"], -np.log1p(-grid), rtol=1e-12)
    np.testing.assert_allclose(right["curve"]["mse_y1"], (1 - grid) ** 2, rtol=1e-9)
    np.testing.assert_allclose(right["curve"]["mse_y0"], grid**2, rtol=1e-9)


@pytest.mark.parametrize(("p", "y"), [(0.0, 1.0), (1.0, 0.0), (0.0, 0.0), (1.0, 1.0), (0.5, 0.3)])
def test_binary_is_finite_at_the_ends_and_accepts_soft_labels(client, p, y):
    data = post(client, "binary", {"p": p, "y": y})
    assert all(math.isfinite(data[key]) for key in ("loss", "mse", "grad_logit"))
    eps = np.finfo(np.float64).eps
    clipped = min(max(p, eps), 1 - eps)
    expected = -(y * math.log(clipped) + (1 - y) * math.log(1 - clipped))
    assert data["loss"] == pytest.approx(expected, rel=1e-6, abs=1e-12)


def test_softmax_ce_matches_torch_autograd():
    torch = pytest.importorskip("torch")
    client = TestClient(create_app(), base_url="http://127.0.0.1")
    rng = np.random.default_rng(5)
    cases = [(SEED_LOGITS, 0), *[(list(rng.normal(0, 3, k)), int(k - 1)) for k in (2, 7, 32)]]
    for logits, target in cases:
        data = post(client, "softmax_ce", {"logits": logits, "target": target})
        z = torch.tensor([logits], dtype=torch.float64, requires_grad=True)
        loss = torch.nn.functional.cross_entropy(z, torch.tensor([target]))
        loss.backward()
        assert data["loss"] == pytest.approx(loss.item(), rel=1e-12)
        assert data["loss_bits"] == pytest.approx(loss.item() / math.log(2), rel=1e-12)
        np.testing.assert_allclose(data["grad"], z.grad[0].numpy(), rtol=1e-10, atol=1e-15)
        probs = torch.softmax(z.detach(), -1)[0].numpy()
        np.testing.assert_allclose(data["probs"], probs, rtol=1e-12)
        assert abs(data["grad_sum"]) < 1e-12
        assert data["grad_norm"] == pytest.approx(float(np.linalg.norm(z.grad[0])), rel=1e-10)
        assert data["entropy"] == pytest.approx(-(probs * np.log(probs)).sum(), rel=1e-10)
        assert data["kl_divergence"] == pytest.approx(loss.item(), rel=1e-10)
        y = np.eye(len(logits))[target]
        assert data["mse"] == pytest.approx(((probs - y) ** 2).sum(), rel=1e-10)


def test_softmax_ce_true_class_pushed_up_others_down_in_proportion(client):
    data = post(client, "softmax_ce", {"logits": SEED_LOGITS, "target": 0})
    grad, probs = np.array(data["grad"]), np.array(data["probs"])
    assert grad[0] < 0 and np.all(grad[1:] > 0)
    np.testing.assert_allclose(grad[1:], probs[1:], rtol=1e-12)  # p - y, y = 0 off the target
    assert data["loss"] == pytest.approx(0.5371587570980944, rel=1e-12)


def test_softmax_ce_survives_huge_logits(client):
    data = post(client, "softmax_ce", {"logits": [1000.0, -1000.0, 0.0], "target": 1})
    assert data["loss"] == pytest.approx(2000.0)
    assert data["grad"] == pytest.approx([1.0, -1.0, 0.0])


def test_double_softmax_matches_autograd_and_the_seed_finite_differences(client):
    torch = pytest.importorskip("torch")
    data = post(client, "double_softmax", {"logits": BUG_LOGITS, "target": 0})
    z = torch.tensor([BUG_LOGITS], dtype=torch.float64, requires_grad=True)
    right = torch.nn.functional.cross_entropy(z, torch.tensor([0]))
    (g_right,) = torch.autograd.grad(right, z)
    wrong = torch.nn.functional.cross_entropy(torch.softmax(z, -1), torch.tensor([0]))
    (g_wrong,) = torch.autograd.grad(wrong, z)
    assert data["right"]["loss"] == pytest.approx(right.item(), rel=1e-12)
    assert data["wrong"]["loss"] == pytest.approx(wrong.item(), rel=1e-12)
    np.testing.assert_allclose(data["right"]["grad"], g_right[0].numpy(), rtol=1e-10)
    np.testing.assert_allclose(data["wrong"]["grad"], g_wrong[0].numpy(), rtol=1e-10)

    # seed 002's own numerical gradient of the buggy path
    def buggy(logits: np.ndarray) -> float:
        p = np.exp(logits - logits.max())
        p /= p.sum()
        q = p - p.max()
        return float(-(q - np.log(np.exp(q).sum()))[0])

    x, eps = np.array(BUG_LOGITS), 1e-5
    numeric = [(buggy(x + eps * e) - buggy(x - eps * e)) / (2 * eps) for e in np.eye(3)]
    np.testing.assert_allclose(data["wrong"]["grad"], numeric, rtol=1e-6)
    ratio = np.linalg.norm(g_wrong) / np.linalg.norm(g_right)
    assert data["ratio"] == pytest.approx(float(ratio), rel=1e-10)
    assert data["ratio"] < 1
    codes = [finding["code"] for finding in data["diagnosis"]]
    assert "probabilities_as_logits" in codes


def _torch_loss_and_grad(loss_fn, temperature: float) -> tuple[float, np.ndarray]:
    """A PyTorch loss of ``z / T`` for the seed logits, and its gradient with respect to z."""
    import torch

    z = torch.tensor([SEED_LOGITS], dtype=torch.float64, requires_grad=True)
    loss = loss_fn(z / temperature)
    (grad,) = torch.autograd.grad(loss, z)
    return loss.item(), grad[0].numpy()


@pytest.mark.parametrize(
    ("eps", "temperature", "gamma"), [(0.1, 2.0, 2.0), (0.0, 1.0, 0.0), (0.5, 0.3, 4.5)]
)
def test_smoothing_temperature_and_focal_match_torch(client, eps, temperature, gamma):
    torch = pytest.importorskip("torch")
    functional = torch.nn.functional
    body = {**VALID["smoothing"], "label_smoothing": eps, "temperature": temperature}
    data = post(client, "smoothing", {**body, "gamma": gamma})
    target = torch.tensor([0])

    def focal(s: torch.Tensor) -> torch.Tensor:
        log_pt = torch.log_softmax(s, -1)[0, 0]
        return -((1 - log_pt.exp()) ** gamma) * log_pt

    references = {
        "cross_entropy": lambda s: functional.cross_entropy(s, target),
        "smoothed": lambda s: functional.cross_entropy(s, target, label_smoothing=eps),
        "focal": focal,
    }
    for key, loss_fn in references.items():
        loss, grad = _torch_loss_and_grad(loss_fn, temperature)
        assert data[key]["loss"] == pytest.approx(loss, rel=1e-10, abs=1e-15)
        np.testing.assert_allclose(data[key]["grad"], grad, rtol=1e-8, atol=1e-14)
    expected_q = (1 - eps) * np.eye(5)[0] + eps / 5
    np.testing.assert_allclose(data["target_distribution"], expected_q, rtol=1e-12)
    probs = torch.softmax(torch.tensor(SEED_LOGITS, dtype=torch.float64) / temperature, -1)
    np.testing.assert_allclose(data["probs"], probs.numpy(), rtol=1e-12)
    q = np.array(data["curve"]["confidence"])
    np.testing.assert_allclose(data["curve"]["cross_entropy"], -np.log(q), rtol=1e-10)
    np.testing.assert_allclose(
        data["curve"]["focal"], -((1 - q) ** gamma) * np.log(q), rtol=1e-8, atol=1e-15
    )


def test_smoothing_others_convention_puts_one_minus_eps_on_the_true_class(client):
    body = {**VALID["smoothing"], "convention": "others", "temperature": 1.0}
    data = post(client, "smoothing", body)
    q = np.array([0.9, 0.025, 0.025, 0.025, 0.025])  # seed 002: 0.9 and 0.1 / (K - 1)
    np.testing.assert_allclose(data["target_distribution"], q, rtol=1e-12)
    z = np.array(SEED_LOGITS)
    log_p = z - np.log(np.exp(z).sum())
    assert data["smoothed"]["loss"] == pytest.approx(-(q * log_p).sum(), rel=1e-12)
    np.testing.assert_allclose(data["smoothed"]["grad"], np.exp(log_p) - q, atol=1e-12)


def test_pipeline_matches_a_torch_linear_layer_and_a_step_lowers_the_loss(client):
    torch = pytest.importorskip("torch")
    data = post(client, "pipeline", PIPELINE)
    w = torch.tensor(PIPELINE["W"], dtype=torch.float64, requires_grad=True)
    b = torch.tensor(PIPELINE["b"], dtype=torch.float64, requires_grad=True)
    x = torch.tensor(PIPELINE["x"], dtype=torch.float64)
    z = w @ x + b
    loss = torch.nn.functional.cross_entropy(z[None], torch.tensor([PIPELINE["target"]]))
    loss.backward()
    np.testing.assert_allclose(data["logits"], z.detach().numpy(), rtol=1e-12)
    assert data["loss"] == pytest.approx(loss.item(), rel=1e-12)
    np.testing.assert_allclose(data["grad_W"], w.grad.numpy(), rtol=1e-10, atol=1e-15)
    np.testing.assert_allclose(data["grad_b"], b.grad.numpy(), rtol=1e-10, atol=1e-15)
    w_new = w.detach() - 0.5 * w.grad
    b_new = b.detach() - 0.5 * b.grad
    np.testing.assert_allclose(data["W_new"], w_new.numpy(), rtol=1e-12)
    z_new = w_new @ x + b_new
    new_loss = torch.nn.functional.cross_entropy(z_new[None], torch.tensor([2]))
    assert data["loss_new"] == pytest.approx(new_loss.item(), rel=1e-12)
    assert data["loss_new"] < data["loss"]
    assert data["onehot"] == [0.0, 0.0, 1.0]


def test_compute_runs_without_http():
    out = _compute.compute("softmax_ce", {"logits": [0.0, 0.0], "target": 1})
    assert out["grad"] == [0.5, -0.5]


# ---------------------------------------------------------------- bad requests

BAD_REQUESTS = [
    # (endpoint, raw body, status, fragment of the message)
    ("quiz", b"{not json", 400, "malformed JSON"),
    ("quiz", b"", 400, "empty"),
    ("quiz", b"\xff\xfe", 400, "UTF-8"),
    ("quiz", b"[0.5, 0.5]", 422, "JSON object"),
    ("quiz", b'"hello"', 422, "JSON object"),
    ("quiz", b'{"probs": [0.5, NaN], "target": 0}', 422, "non-finite"),
    ("quiz", b'{"probs": [0.5, Infinity], "target": 0}', 422, "non-finite"),
    ("quiz", b'{"probs": [0.5, 1e999], "target": 0}', 422, "finite"),
    ("quiz", b'{"probs": [0.5, 0.5]}', 422, "missing field 'target'"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": 2}', 422, "target"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": -1}', 422, "target"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": 0.5}', 422, "integer"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": true}', 422, "integer"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": "0"}', 422, "integer"),
    ("quiz", b'{"probs": [0.5, 0.6], "target": 0}', 422, "sum to 1"),
    ("quiz", b'{"probs": [1.5, -0.5], "target": 0}', 422, "probs[0]"),
    ("quiz", b'{"probs": [1.0], "target": 0}', 422, "2 to 10"),
    ("quiz", json.dumps({"probs": [1 / 11] * 11, "target": 0}).encode(), 422, "2 to 10"),
    ("quiz", b'{"probs": "0.5,0.5", "target": 0}', 422, "list"),
    ("quiz", b'{"probs": [0.5, "0.5"], "target": 0}', 422, "probs[1]"),
    ("quiz", b'{"probs": [0.5, [0.5]], "target": 0}', 422, "probs[1]"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": 0, "extra": 1}', 422, "unknown field"),
    ("quiz", b'{"probs": [0.5, 0.5], "target": 1' + b"0" * 400 + b"}", 422, "target"),
    ("binary", b'{"p": 1.5}', 422, "p must be in [0, 1]"),
    ("binary", b'{"p": null}', 422, "number"),
    ("binary", b'{"p": 0.5, "y": 2}', 422, "y must be"),
    ("binary", b'{"p": 1' + b"0" * 400 + b"}", 422, "finite"),
    ("softmax_ce", b'{"logits": [], "target": 0}', 422, "2 to 32"),
    ("softmax_ce", json.dumps({"logits": [0.0] * 33, "target": 0}).encode(), 422, "2 to 32"),
    ("softmax_ce", b'{"logits": [0, 1e5], "target": 0}', 422, "logits[1]"),
    ("softmax_ce", b'{"logits": {"a": 1}, "target": 0}', 422, "list"),
    ("double_softmax", b'{"logits": [1, 2], "target": 5}', 422, "target"),
    ("smoothing", b'{"logits": [1, 2], "target": 0, "temperature": 0}', 422, "temperature"),
    ("smoothing", b'{"logits": [1, 2], "target": 0, "label_smoothing": 1.5}', 422, "smoothing"),
    ("smoothing", b'{"logits": [1, 2], "target": 0, "gamma": -1}', 422, "gamma"),
    ("smoothing", b'{"logits": [1, 2], "target": 0, "convention": "x"}', 422, "convention"),
    ("pipeline", b'{"x": [1], "W": [[1]], "b": [0], "target": 0}', 422, "b must hold"),
    ("pipeline", b'{"x": [1, 2], "W": [[1], [2]], "b": [0, 0], "target": 0}', 422, "W[0]"),
    ("pipeline", b'{"x": [1, 2], "W": [[1, 2]], "b": [0, 0], "target": 0}', 422, "2 rows"),
    ("pipeline", b'{"x": [1, 2], "W": 3, "b": [0, 0], "target": 0}', 422, "rows"),
    ("pipeline", b'{"x": [1], "W": [[1], [2]], "b": [0, 0], "target": 0, "lr": 99}', 422, "lr"),
    ("quiz", b"[" * 50_000 + b"]" * 10_000, 400, "malformed"),
    ("quiz", b" " * (MAX_BODY_BYTES + 1), 413, "limit"),
]


@pytest.mark.parametrize(("name", "body", "status", "fragment"), BAD_REQUESTS)
def test_bad_requests_get_a_4xx_with_a_json_message(client, name, body, status, fragment):
    response = client.post(
        f"/api/{name}", content=body, headers={"content-type": "application/json"}
    )
    assert response.status_code == status, response.text
    message = _strict_loads(response.content)["error"]
    assert fragment in message
    assert len(message) < 400


def test_wrong_method_unknown_endpoint_and_foreign_host_are_4xx(client):
    response = client.get("/api/quiz")
    assert response.status_code == 405
    assert "error" in response.json() and "POST" in response.headers["allow"]
    response = client.post("/api/nope", json={})
    assert response.status_code == 404 and "error" in response.json()
    assert client.get("/static/nothing.js").status_code == 404
    foreign = TestClient(create_app(), base_url="http://evil.example")
    for response in (foreign.post("/api/quiz", json=VALID["quiz"]), foreign.get("/")):
        assert response.status_code == 400
        assert "evil.example" in _strict_loads(response.content)["error"]  # JSON, as promised


@pytest.mark.parametrize("digits", [1001, 4301, 50_000])
def test_integers_too_long_for_python_are_a_400(client, digits):
    """Python refuses int() of more than 4300 digits with a ValueError (not a JSONDecodeError)."""
    for name in sorted(VALID):
        body = b'{"target": ' + b"7" * digits + b"}"
        response = client.post(f"/api/{name}", content=body)
        assert response.status_code == 400, response.text
        assert "digits" in _strict_loads(response.content)["error"]


async def _call(app, receive) -> tuple[list[dict], Exception | None]:
    """One POST /api/quiz through the ASGI app with the given receive channel."""
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": "POST",
        "scheme": "http", "path": "/api/quiz", "raw_path": b"/api/quiz", "query_string": b"",
        "root_path": "", "headers": [(b"host", b"127.0.0.1"), (b"content-length", b"20")],
        "client": ("127.0.0.1", 5000), "server": ("127.0.0.1", 8765),
    }  # fmt: skip
    try:
        await app(scope, receive, send)
    except Exception as error:  # the server would log it with a traceback
        return sent, error
    return sent, None


def test_a_body_that_never_comes_is_answered_408(monkeypatch):
    import asyncio

    from crossent.explore import server

    monkeypatch.setattr(server, "BODY_TIMEOUT_S", 0.2)

    async def silent() -> dict:
        await asyncio.sleep(3600)
        return {}

    sent, error = asyncio.run(_call(create_app(), silent))
    assert error is None
    assert sent[0]["status"] == 408
    assert "body" in json.loads(sent[1]["body"])["error"]


def test_a_client_that_disconnects_is_logged_in_one_line(caplog):
    import asyncio
    import logging

    async def gone() -> dict:
        return {"type": "http.disconnect"}

    with caplog.at_level(logging.INFO, logger="crossent.explore"):
        _sent, error = asyncio.run(_call(create_app(), gone))
    assert error is None  # the answer goes nowhere; uvicorn drops it
    (record,) = [r for r in caplog.records if r.name == "crossent.explore"]
    assert "disconnected" in record.getMessage() and record.exc_info is None


# ---------------------------------------------------------------- property-based error handling

json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.lists(inner, max_size=12) | st.dictionaries(st.text(max_size=6), inner),
    max_leaves=30,
)
numbers = st.floats(allow_nan=False, allow_infinity=False, width=64) | st.integers(-5, 15)
unit = st.floats(min_value=0, max_value=1)
field_values = (
    json_values
    | numbers
    | st.lists(numbers, max_size=40)
    | st.lists(unit, min_size=1, max_size=12)
    | st.lists(st.lists(numbers, max_size=4), max_size=12)
)


def _near_valid(name: str) -> st.SearchStrategy[dict]:
    """The endpoint's valid request with some fields replaced, dropped or added."""
    valid = VALID[name]
    return st.fixed_dictionaries(
        {}, optional={key: field_values | st.just(value) for key, value in valid.items()}
    ) | st.builds(
        lambda base, extra: {**base, **extra},
        st.just(valid),
        st.dictionaries(st.sampled_from([*valid, "extra"]), field_values, max_size=2),
    )


def _check_answer(response) -> None:
    assert response.status_code < 500, response.text
    data = _strict_loads(response.content)
    if response.status_code >= 400:
        assert response.status_code in (400, 413, 422)
        assert isinstance(data["error"], str) and data["error"]


@pytest.mark.parametrize("name", sorted(VALID))
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_json_bodies_never_give_a_500(client, name, data):
    body = data.draw(
        json_values | _near_valid(name) | st.dictionaries(st.text(max_size=6), field_values)
    )
    content = json.dumps(body, allow_nan=True).encode()
    _check_answer(client.post(f"/api/{name}", content=content))


@pytest.mark.parametrize("name", ["quiz", "pipeline"])
@settings(max_examples=40, deadline=None)
@given(raw=st.binary(max_size=200))
def test_random_bytes_never_give_a_500(client, name, raw):
    _check_answer(client.post(f"/api/{name}", content=raw))


logit_lists = st.lists(
    st.floats(-1000, 1000) | st.sampled_from([-1000.0, 1000.0, 0.0]), min_size=2, max_size=32
)


@st.composite
def valid_requests(draw, name: str) -> dict:
    """Requests inside every documented limit: these must all be answered with 200."""
    if name == "binary":
        return {"p": draw(st.floats(0, 1)), "y": draw(st.floats(0, 1))}
    if name == "pipeline":
        d, k = draw(st.integers(1, 8)), draw(st.integers(2, 10))
        big = st.floats(-100, 100)
        return {
            "x": draw(st.lists(big, min_size=d, max_size=d)),
            "W": draw(st.lists(st.lists(big, min_size=d, max_size=d), min_size=k, max_size=k)),
            "b": draw(st.lists(big, min_size=k, max_size=k)),
            "target": draw(st.integers(0, k - 1)),
            "lr": draw(st.floats(0, 10)),
        }
    logits = draw(logit_lists)
    body = {"logits": logits, "target": draw(st.integers(0, len(logits) - 1))}
    if name == "smoothing":
        body.update(
            label_smoothing=draw(st.floats(0, 1)),
            temperature=draw(st.floats(0.05, 20)),
            gamma=draw(st.floats(0, 10)),
            convention=draw(st.sampled_from(["uniform", "others"])),
        )
    return body


def _finite_numbers(value) -> bool:
    if isinstance(value, dict):
        return all(_finite_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(_finite_numbers(v) for v in value)
    return not isinstance(value, str) or value not in ("NaN", "Infinity", "-Infinity")


@pytest.mark.parametrize(
    "name", ["binary", "softmax_ce", "double_softmax", "smoothing", "pipeline"]
)
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_every_request_within_the_limits_is_answered_with_finite_numbers(client, name, data):
    body = data.draw(valid_requests(name))
    response = client.post(f"/api/{name}", json=body)
    assert response.status_code == 200, response.text
    answer = _strict_loads(response.content)
    answer.pop("ratio", None)  # None when the right gradient underflows to 0
    if name == "softmax_ce" and answer["probs"][answer["target"]] == 0:
        # p_t underflowed: KL from probabilities is inf, the fused loss is not
        assert answer.pop("kl_divergence") == "Infinity"
        assert answer["loss"] > 700
    assert _finite_numbers(answer), answer


@settings(max_examples=60, deadline=None)
@given(
    probs=st.lists(st.floats(0, 1), min_size=2, max_size=10).filter(lambda p: sum(p) > 0),
    target=st.integers(0, 9),
)
def test_any_normalized_quiz_is_answered_with_its_cross_entropy(client, probs, target):
    p = np.array(probs) / math.fsum(probs)
    target = target % len(probs)
    response = client.post("/api/quiz", json={"probs": list(p), "target": target})
    _check_answer(response)
    if response.status_code == 200:
        loss = response.json()["cross_entropy"]
        expected = -math.log(p[target]) if p[target] > 0 else math.inf
        assert float(loss) == pytest.approx(expected, rel=1e-9)


# ---------------------------------------------------------------- the command


def test_explore_is_a_crossent_command():
    from typer.testing import CliRunner

    from crossent.apps.cli import app

    runner = CliRunner()
    assert "explore" in runner.invoke(app, ["--help"]).output
    result = runner.invoke(app, ["explore", "--help"])
    assert result.exit_code == 0
    assert "--port" in result.output and "--no-browser" in result.output


def _run_cli(*args: str) -> subprocess.Popen:
    code = "from crossent.apps.cli import main; main()"
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def test_explore_serves_on_127_0_0_1_and_prints_the_address():
    with _run_cli("explore", "--port", "0", "--no-browser") as proc:
        _check_server(proc)


def _check_server(proc: subprocess.Popen) -> None:
    import httpx

    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        match = re.search(r"http://127\.0\.0\.1:(\d+)/", line)
        assert match, line
        url = match.group(0)
        deadline = time.monotonic() + 15
        while True:
            try:
                health = httpx.get(url + "api/health", timeout=2)
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.05)
        assert health.json()["version"] == ce.__version__
        answer = httpx.post(url + "api/softmax_ce", json=VALID["softmax_ce"], timeout=5)
        assert answer.json()["loss"] == pytest.approx(0.5371587570980944, rel=1e-12)
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def test_explore_on_a_busy_port_is_one_line_and_exit_2():
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        with _run_cli("explore", "--port", str(port), "--no-browser") as proc:
            _, err = proc.communicate(timeout=30)
    assert proc.returncode == 2
    assert err.startswith("crossent: error: cannot listen on 127.0.0.1:")
    assert "--port" in err and err.count("\n") == 1
