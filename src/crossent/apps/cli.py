"""The ``crossent`` command.

Each subcommand lives in its own module of :mod:`crossent.apps`, which exposes
``register(app)``; heavy imports (matplotlib, starlette, torch) happen inside the command bodies,
so ``crossent --help`` is quick.
Any error a user can cause ends with a one-line message and exit code 2, never a traceback.
"""

from __future__ import annotations

import importlib
import sys
from typing import Any

import typer

app = typer.Typer(
    name="crossent",
    help="Cross-entropy, exact and stable: a tour, a report on predictions, training, an explorer.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """Keep subcommand names even while only one subcommand is registered."""


# Modules that register a subcommand, in the order `crossent --help` lists them.
COMMAND_MODULES = (
    "crossent.apps.tour",
    "crossent.apps.report",
    "crossent.apps.train",
    "crossent.apps.explore",
    "crossent.apps.lm",
)

for _name in COMMAND_MODULES:
    importlib.import_module(_name).register(app)

# The optional packages the commands import when they need them, and the extra that installs
# each (pyproject.toml): a missing one is a one-line hint, not a traceback.
EXTRAS = {
    "matplotlib": ("matplotlib", "report"),
    "pyarrow": ("pyarrow", "report"),
    "sklearn": ("scikit-learn", "report"),
    "starlette": ("starlette", "explore"),
    "uvicorn": ("uvicorn", "explore"),
    # crossent lm: torch, transformers and tokenizers all come with the transformers extra
    "torch": ("torch", "transformers"),
    "transformers": ("transformers", "transformers"),
    "tokenizers": ("tokenizers", "transformers"),
}


# click's UsageError (BadParameter, NoSuchOption, ...): typer >= 0.2x vendors click as
# typer._click, older typer uses click itself; typer exports BadParameter either way
ClickUsageError: Any = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def main() -> None:
    """Entry point: run the app, turning user errors into one line on stderr and exit code 2."""
    try:
        # not standalone: click's own errors (a bad option value) come back here, to be told in
        # one line like every other user error rather than in click's usage box
        code = app(standalone_mode=False)
    except ClickUsageError as error:
        if type(error).__name__ == "NoArgsIsHelpError":  # plain `crossent`: the help
            error.show()
            sys.exit(error.exit_code)
        where = f" (see '{error.ctx.command_path} --help')" if error.ctx else ""
        message = " ".join(error.format_message().split())
        typer.echo(f"crossent: error: {message}{where}", err=True)
        sys.exit(2)
    except typer.Abort:
        typer.echo("Aborted!", err=True)
        sys.exit(1)
    except ModuleNotFoundError as error:
        top = (error.name or "").split(".")[0]
        if top not in EXTRAS:
            raise
        package, extra = EXTRAS[top]
        typer.echo(
            f"crossent: error: this needs {package}, which is not installed: "
            f"pip install 'crossent[{extra}]'",
            err=True,
        )
        sys.exit(2)
    except (ValueError, TypeError, OSError) as error:  # crossent.errors.UsageError among them
        typer.echo(f"crossent: error: {error}", err=True)
        sys.exit(2)
    except MemoryError as error:  # NumPy's says what it could not allocate
        detail = str(error).splitlines()[0] if str(error) else "an allocation failed"
        typer.echo(f"crossent: error: out of memory ({detail})", err=True)
        sys.exit(2)
    sys.exit(code if isinstance(code, int) else 0)
