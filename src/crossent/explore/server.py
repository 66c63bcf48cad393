"""The explorer's web server: a Starlette app served by uvicorn on 127.0.0.1 only.

Routes:

- ``GET /`` the page (``static/index.html``), with a Content-Security-Policy that lets it load
  nothing from outside this server;
- ``GET /static/...`` its CSS, JavaScript and icon, all shipped in the package;
- ``GET /api/health`` the crossent version, the limits and the list of endpoints;
- ``POST /api/<name>`` for each name in :data:`crossent.explore._compute.ENDPOINTS`.

Every error is answered with JSON ``{"error": message}`` and a 4xx status; the host header must
name 127.0.0.1 or localhost (a guard against DNS rebinding). A request body must arrive within
:data:`BODY_TIMEOUT_S` seconds (else 408), an idle connection is closed after
:data:`IDLE_TIMEOUT_S`, and a client that goes away is logged in one line, without a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
import webbrowser
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.requests import ClientDisconnect, Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Receive, Scope, Send

import crossent

from . import _compute
from ._validate import MAX_BODY_BYTES, RequestError, parse_body

STATIC_DIR = Path(__file__).parent / "static"
HOST = "127.0.0.1"
DEFAULT_PORT = 8765
BODY_TIMEOUT_S = 10.0
"""Seconds a client has to send a request body once its headers are in (then 408)."""
IDLE_TIMEOUT_S = 5
"""Seconds an idle keep-alive connection stays open (uvicorn's ``timeout_keep_alive``)."""
_log = logging.getLogger("crossent.explore")
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; font-src 'self'; object-src 'none'; base-uri 'none'; "
    "form-action 'none'; frame-ancestors 'none'"
)


def _json(value: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(
        _compute.to_json(value),
        status_code=status,
        media_type="application/json",
        headers={"Cache-Control": "no-store", **(headers or {})},
    )


def _error(message: str, status: int, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status=status, headers=headers)


async def _index(request: Request) -> Response:
    return FileResponse(
        STATIC_DIR / "index.html",
        headers={
            "Content-Security-Policy": CONTENT_SECURITY_POLICY,
            "X-Content-Type-Options": "nosniff",
            "Cache-Control": "no-cache",
        },
    )


async def _health(request: Request) -> Response:
    return _json(
        {
            "version": crossent.__version__,
            "endpoints": sorted(_compute.ENDPOINTS),
            "limits": {
                "quiz_classes": _compute.MAX_QUIZ_CLASSES,
                "classes": _compute.MAX_CLASSES,
                "logit": _compute.MAX_LOGIT,
                "features": _compute.MAX_FEATURES,
                "body_bytes": MAX_BODY_BYTES,
            },
        }
    )


async def _read_body(request: Request) -> bytes:
    """The body, read up to one byte past the limit (parse_body then answers 413)."""
    raw = b""
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > MAX_BODY_BYTES:
            break
    return raw


def _endpoint(name: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        try:
            async with asyncio.timeout(BODY_TIMEOUT_S):
                raw = await _read_body(request)
        except TimeoutError:
            return _error(f"the request body did not arrive within {BODY_TIMEOUT_S:g} s", 408)
        except ClientDisconnect:
            _log.info("client %s disconnected before its request to /api/%s was read",
                      request.client.host if request.client else "?", name)  # fmt: skip
            return Response(status_code=400)  # never sent: the client is gone
        try:
            return _json(_compute.compute(name, parse_body(raw)))
        except RequestError as error:
            return _error(error.message, error.status)

    endpoint.__name__ = f"api_{name}"
    return endpoint


class _HostGuard:
    """Answer a request whose Host header is not one of ``allowed`` with a JSON 400 (a guard
    against DNS rebinding; Starlette's TrustedHostMiddleware answers in plain text)."""

    def __init__(self, app: ASGIApp, allowed: Sequence[str]) -> None:
        self.app = app
        self.allowed = set(allowed)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in ("http", "websocket"):
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
            if name not in self.allowed:
                shown = host if len(host) <= 60 else host[:60] + "..."
                message = f"host {shown!r} is not served here; use {sorted(self.allowed)}"
                await _error(message, 400)(scope, receive, send)
                return
        await self.app(scope, receive, send)


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    headers = dict(exc.headers or {})
    return _error(str(exc.detail), exc.status_code, headers)


def create_app(*, allowed_hosts: Sequence[str] = (HOST, "localhost")) -> Starlette:
    """Build the explorer's ASGI application.

    Parameters
    ----------
    allowed_hosts : sequence of str, default ("127.0.0.1", "localhost")
        Host names the server answers to (others get 400).

    Returns
    -------
    starlette.applications.Starlette
        The app: the page, its static files and the JSON API.

    Examples
    --------
    >>> app = create_app()
    >>> [route.path for route in app.routes][:3]
    ['/', '/api/health', '/api/quiz']
    """
    routes: list[Any] = [
        Route("/", _index, methods=["GET"]),
        Route("/api/health", _health, methods=["GET"]),
        *[Route(f"/api/{name}", _endpoint(name), methods=["POST"]) for name in _compute.ENDPOINTS],
        Mount("/static", StaticFiles(directory=STATIC_DIR), name="static"),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(_HostGuard, allowed=list(allowed_hosts))],
        exception_handlers={HTTPException: _http_error},
    )


def bind(port: int) -> socket.socket:
    """A listening-ready socket on 127.0.0.1:``port`` (0 picks a free port).

    Raises
    ------
    OSError
        When the port is taken or not allowed, with a message that suggests ``--port``.
    """
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((HOST, port))
    except OSError as error:
        sock.close()
        reason = error.strerror or str(error)
        raise OSError(
            f"cannot listen on {HOST}:{port} ({reason}); choose another with --port N "
            "(--port 0 picks a free one)"
        ) from None
    return sock


def _open_when_started(server: Any, url: str) -> None:
    for _ in range(200):
        if server.started:
            webbrowser.open(url)
            return
        time.sleep(0.05)


def serve(
    port: int = DEFAULT_PORT,
    *,
    open_browser: bool = True,
    echo: Callable[[str], Any] = print,
) -> None:
    """Serve the explorer on 127.0.0.1 until interrupted.

    Parameters
    ----------
    port : int, default 8765
        TCP port; 0 picks a free one.
    open_browser : bool, default True
        Open the page in the default browser once the server is up.
    echo : callable, default print
        Where the address line goes.
    """
    import uvicorn

    sock = bind(port)
    url = f"http://{HOST}:{sock.getsockname()[1]}/"
    config = uvicorn.Config(
        create_app(),
        log_level="warning",
        lifespan="off",
        access_log=False,
        timeout_keep_alive=IDLE_TIMEOUT_S,
    )
    server = uvicorn.Server(config)
    echo(f"crossent explore: serving on {url}  (Ctrl-C to stop)")
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
