"""Build-time parts of the guides: the figures, drawn by the package, and command output.

``.. crossent-command:: tour --section five-class`` runs ``crossent tour --section five-class``
while the page is read and shows the command with what it printed; a command that fails stops
the build (an error, which ``-W`` keeps an error). So the command lines of the guides are run,
as the doctest builder runs their Python examples.

Nothing is committed: the report's figures come from the CIFAR-10 predictions shipped in the
package (``crossent.report.example_path``, ``Report.save_figures``) and the training figures from
``crossent train`` (the main job of ``make demo``), into ``docs/_generated`` (git-ignored).
A figure already there is kept, so the doctest and HTML builds of one ``make docs`` (which
starts from a clean folder) draw them once.
"""

from __future__ import annotations

import contextlib
import io
import os
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
from docutils import nodes
from sphinx.util.docutils import SphinxDirective

# run the console script's function, so the command is the one of this source tree
ENTRY = "from crossent._entry import main; main()"


TRAIN = ("curves.png", "calibration.png")
# CIFAR-10's classes in the order of its labels 0-9
CIFAR10 = "airplane automobile bird cat deer dog frog horse ship truck".split()


def report_figures(folder: Path) -> None:
    from crossent.report import Report, example_path

    with np.load(example_path(), allow_pickle=False) as data:
        probs, labels = data["predictions"], data["ground_truth"]
    report = Report.from_arrays(probs, labels, kind="probs", class_names=CIFAR10)
    folder.mkdir(parents=True, exist_ok=True)
    report.save_figures(folder, format="svg")


def train_figures(folder: Path) -> None:
    from crossent.apps.train import train_command

    # the command prints its JSON summary; the build log does not need it
    with contextlib.redirect_stdout(io.StringIO()):
        train_command(out=folder, force=True, as_json=True)


def generate(app: Any) -> None:
    root = Path(app.srcdir) / "_generated"
    report, train = root / "report", root / "train"
    if not all((report / f"{name}.svg").exists() for name in _report_names()):
        report_figures(report)
    if not all((train / name).exists() for name in TRAIN):
        train_figures(train)


def _report_names() -> tuple[str, ...]:
    from crossent.report import _render

    return tuple(_render.FIGURES)


class CrossentCommand(SphinxDirective):
    """Run ``crossent ARGS`` and show ``$ crossent ARGS`` and its standard output."""

    required_arguments = 1
    final_argument_whitespace = True
    has_content = False

    def run(self) -> list[nodes.Node]:
        args = shlex.split(self.arguments[0])
        env = {**os.environ, "COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}
        done = subprocess.run(
            [sys.executable, "-c", ENTRY, *args],
            capture_output=True,
            text=True,
            env=env,
            cwd=self.env.srcdir,  # paths in the arguments are relative to docs/
            timeout=120,
            check=False,
        )
        if done.returncode != 0:
            raise self.error(
                f"crossent {self.arguments[0]} exited with {done.returncode}: {done.stderr[-2000:]}"
            )
        # paths under docs/ are shown relative to it, not as this machine's absolute paths
        shown = done.stdout.replace(f"{self.env.srcdir}{os.sep}", "")
        text = f"$ crossent {self.arguments[0]}\n" + "\n".join(
            line.rstrip() for line in shown.rstrip().splitlines()
        )
        block = nodes.literal_block(text, text)
        block["language"] = "text"
        return [block]


def setup(app: Any) -> dict[str, Any]:
    app.connect("builder-inited", generate)
    app.add_directive("crossent-command", CrossentCommand)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
