"""The ``crossent`` console script: a one-line message when the command's extra is missing.

The script is installed with every install, but typer and rich come with the ``cli`` extra
(and with ``report`` and ``explore``); a core-only install gets a hint, not a traceback.
"""

from __future__ import annotations

import sys

CLI_MODULES = ("typer", "rich", "click")


def main() -> None:
    try:
        from crossent.apps.cli import main as cli_main
    except ModuleNotFoundError as exc:
        if exc.name not in CLI_MODULES:
            raise
        print(
            f"crossent: the command needs the 'cli' extra ({exc.name} is not installed): "
            "pip install 'crossent[cli]'",
            file=sys.stderr,
        )
        raise SystemExit(2) from None
    cli_main()
