"""The ``crossent explore`` command: serve :mod:`crossent.explore` on 127.0.0.1.

Nothing heavy is imported here: starlette and uvicorn are imported when the command runs.
"""

from __future__ import annotations

from typing import Annotated

import typer

from crossent.errors import UsageError

__all__ = ["register"]


def register(app: typer.Typer) -> None:
    """Add the ``explore`` command to the ``crossent`` app.

    Parameters
    ----------
    app : typer.Typer
        The CLI application.
    """

    @app.command("explore")
    def explore(
        port: Annotated[
            int,
            typer.Option("--port", min=0, max=65535, help="Port on 127.0.0.1 (0: any free one)."),
        ] = 8765,
        no_browser: Annotated[
            bool, typer.Option("--no-browser", help="Print the address; do not open a browser.")
        ] = False,
    ) -> None:
        """Interactive page: drag probabilities and logits, watch the loss and gradient move."""
        try:
            from crossent.explore.server import serve
        except ImportError as error:
            raise UsageError(
                f"crossent explore needs starlette and uvicorn ({error.name} is missing): "
                "pip install 'crossent[explore]'"
            ) from None
        serve(port, open_browser=not no_browser, echo=typer.echo)
