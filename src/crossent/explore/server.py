"""The explorer's web server: a Starlette app served by uvicorn on 127.0.0.1 only.

Routes:

- ``GET /`` the page (``static/index.html``), with a Content-Security-Policy that lets it load
  nothing from outside this server;
- ``GET /static/...`` its CSS, JavaScript and icon, all shipped in the package;
- ``GET /api/health`` the crossent version, the limits and the list of endpoints;
- ``POST /api/<name>`` for each name in :data:`crossent.explore._compute.ENDPOINTS`.

Every error is answered with JSON ``{"error": message}`` and a 4xx status; the host header must
name 127.0.0.1 or localhost (a guard against DNS rebinding).
"""

from __future__ import annotations

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
from starlette.middleware.trustedhost import TrustedHostMiddleware
from starlette.requests import Request
from starlette.responses import FileResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles

import crossent

from . import _compute
from ._validate import MAX_BODY_BYTES, RequestError, parse_body

STATIC_DIR = Path(__file__).parent / "static"
HOST = "127.0.0.1"
DEFAULT_PORT = 8765
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


def _endpoint(name: str) -> Callable[[Request], Any]:
    async def endpoint(request: Request) -> Response:
        raw = b""
        async for chunk in request.stream():
            raw += chunk
            if len(raw) > MAX_BODY_BYTES:
                break  # parse_body answers 413 without reading the rest
        try:
            return _json(_compute.compute(name, parse_body(raw)))
        except RequestError as error:
            return _error(error.message, error.status)

    endpoint.__name__ = f"api_{name}"
    return endpoint


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
        middleware=[Middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))],
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
    config = uvicorn.Config(create_app(), log_level="warning", lifespan="off", access_log=False)
    server = uvicorn.Server(config)
    echo(f"crossent explore: serving on {url}  (Ctrl-C to stop)")
    if open_browser:
        threading.Thread(target=_open_when_started, args=(server, url), daemon=True).start()
    try:
        server.run(sockets=[sock])
    finally:
        sock.close()
