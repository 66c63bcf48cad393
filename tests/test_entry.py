"""The ``crossent`` console script (``crossent._entry``) on an install without the cli extra."""

from __future__ import annotations

import subprocess
import sys


def test_command_without_the_cli_extra_says_so_in_one_line():
    """A core-only install (typer missing) gets a hint and exit code 2, not a traceback."""
    code = "import sys; sys.modules['typer'] = None\nfrom crossent._entry import main\nmain()\n"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 2
    assert proc.stderr.strip().splitlines() == [
        "crossent: the command needs the 'cli' extra (typer is not installed): "
        "pip install 'crossent[cli]'"
    ]
