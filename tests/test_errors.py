"""``crossent.errors.UsageError``: a ValueError in Python; one line and exit 2 in the command."""

from __future__ import annotations

import sys

import pytest
import typer

from crossent.apps import cli
from crossent.errors import UsageError


def test_a_usage_error_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="bad input"):
        raise UsageError("bad input")


def test_the_command_shows_it_in_one_line_with_exit_code_2(capsys, monkeypatch) -> None:
    app = typer.Typer(add_completion=False)

    @app.command()
    def fail() -> None:
        """Raise the error a command raises for a bad input."""
        raise UsageError("no such file: x.npz")

    monkeypatch.setattr(cli, "app", app)
    monkeypatch.setattr(sys, "argv", ["crossent"])
    with pytest.raises(SystemExit) as exit_info:
        cli.main()
    assert exit_info.value.code == 2
    assert capsys.readouterr().err == "crossent: error: no such file: x.npz\n"
