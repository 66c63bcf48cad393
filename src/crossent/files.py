"""Writing the output files of crossent's commands and reports: never through a symlink, and
never over a file by a check-then-write race.

Without ``force`` the file is created with ``O_CREAT | O_EXCL | O_NOFOLLOW``: the kernel refuses
any existing entry, a symlink (dangling or not) included, at the moment of creation. With
``force`` the bytes go to a temporary file in the same folder which then replaces the entry in
one ``os.replace`` (a rename: atomic, and it replaces a symlink itself, never its target), so a
reader sees the old file or the new one, never half of one.
"""

from __future__ import annotations

import io
import os
import tempfile
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from .errors import UsageError

__all__ = ["figure_bytes", "path_taken", "write_output"]

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)


def path_taken(path: Path) -> bool:
    """Whether ``path`` names anything, a dangling symlink included (``Path.exists`` follows
    links, so a dangling one looks free)."""
    return os.path.lexists(path)


def write_output(path: str | os.PathLike[str], data: str | bytes, /, *, force: bool) -> Path:
    """Write ``data`` (str: UTF-8) to ``path``; its absolute path.

    Raises
    ------
    crossent.errors.UsageError
        ``path`` exists (a symlink included) and ``force`` is false; or it is a folder.

    Examples
    --------
    >>> import tempfile
    >>> folder = Path(tempfile.mkdtemp())
    >>> write_output(folder / "a.txt", "one", force=False).read_text()
    'one'
    >>> try:
    ...     write_output(folder / "a.txt", "two", force=False)
    ... except UsageError as error:
    ...     print(str(error).endswith("a.txt already exists; pass --force to overwrite it"))
    True
    >>> write_output(folder / "a.txt", "two", force=True).read_text()
    'two'
    """
    path = Path(path)
    payload = data.encode("utf-8") if isinstance(data, str) else data
    if path.is_dir() and not path.is_symlink():
        raise UsageError(f"{path} is a folder; give a file name")
    if not force:
        try:
            fd = os.open(path, _NEW, 0o644)
        except FileExistsError:
            raise UsageError(f"{path} already exists; pass --force to overwrite it") from None
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        return path.resolve()
    fd, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(payload)
        os.chmod(temporary, 0o644)  # mkstemp's 0600 would hide the output from its readers
        os.replace(temporary, path)
    except BaseException:
        os.unlink(temporary)
        raise
    return path.resolve()


def figure_bytes(fig: Any, /, *, format: str, **options: Any) -> bytes:
    """A matplotlib figure saved to bytes (then written with :func:`write_output`)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format=format, **options)
    return buffer.getvalue()


def save_figures(
    folder: str | os.PathLike[str], figures: Callable[[str], Any], names: Iterable[str], format: str
) -> list[Path]:
    """Write ``figures(name)`` for each name to ``folder/<name>.<format>`` (svg, pdf or png),
    replacing files of those names; the paths written."""
    if format not in ("svg", "pdf", "png"):
        raise ValueError(f"format is 'svg', 'pdf' or 'png', not {format!r}")
    target = Path(folder)
    if not target.is_dir():
        raise ValueError(f"{target} is not an existing folder")
    return [
        write_output(
            target / f"{name}.{format}",
            figure_bytes(figures(name), format=format, bbox_inches="tight"),
            force=True,
        )
        for name in names
    ]
