"""The applications' room: ``crossent.apps`` holds the command, on crossent's public names.

``crossent.report`` and ``crossent.explore`` work from Python without the cli extra; no
application imports a private module of crossent, and only the console script imports the CLI.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import crossent

PACKAGE = Path(crossent.__file__).parent
APPLICATIONS = ("apps", "report", "explore")


def _imports(path: Path) -> set[str]:
    """The absolute modules (and names from them) that the file imports: ``crossent._x``..."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            found |= {node.module} | {f"{node.module}.{alias.name}" for alias in node.names}
    return found


def test_applications_import_only_public_names_of_crossent() -> None:
    for path in (p for name in APPLICATIONS for p in (PACKAGE / name).rglob("*.py")):
        for module in _imports(path):
            parts = module.split(".")
            assert parts[0] != "crossent" or not any(p.startswith("_") for p in parts[1:]), (
                f"{path.relative_to(PACKAGE)} imports {module}"
            )


def test_only_the_console_script_imports_the_apps() -> None:
    importers = {
        path.relative_to(PACKAGE).as_posix()
        for path in PACKAGE.rglob("*.py")
        if any(m.startswith("crossent.apps") for m in _imports(path))
    }
    assert {p for p in importers if not p.startswith("apps/")} == {"_entry.py"}


def test_report_and_explore_work_without_the_cli_extra(tmp_path) -> None:
    code = (
        "import sys\n"
        "for name in ('typer', 'rich', 'click'):\n"
        "    sys.modules[name] = None\n"
        "import crossent.explore\n"
        "from crossent.report import write_report\n"
        f"report, page = write_report(output={str(tmp_path / 'cifar.html')!r})\n"
        "print(report.predictions.kind, page)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.split() == ["probs", str((tmp_path / "cifar.html").resolve())]
    assert (tmp_path / "cifar.html").read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
