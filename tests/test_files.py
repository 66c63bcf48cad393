"""crossent.files.write_output: no write through a symlink, no check-then-write race, atomic
replacement with force; and the commands that write files use it."""

from __future__ import annotations

import os
import stat

import pytest

from crossent.errors import UsageError
from crossent.files import path_taken, write_output


def test_a_dangling_symlink_is_not_written_through(tmp_path):
    victim = tmp_path / "victim.txt"  # does not exist: the link dangles
    link = tmp_path / "out.html"
    link.symlink_to(victim)
    assert path_taken(link) and not link.exists()  # Path.exists follows the link
    with pytest.raises(UsageError, match="already exists; pass --force"):
        write_output(link, "page", force=False)
    assert not victim.exists()
    write_output(link, "page", force=True)  # replaces the link itself
    assert not link.is_symlink() and link.read_text() == "page" and not victim.exists()


def test_a_symlink_to_a_file_is_replaced_not_followed(tmp_path):
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    link = tmp_path / "out.json"
    link.symlink_to(victim)
    write_output(link, b"new", force=True)
    assert victim.read_text() == "keep me" and link.read_bytes() == b"new"


def test_a_file_created_after_the_check_is_not_overwritten(tmp_path, monkeypatch):
    """The exclusive create itself refuses a file that appeared after any earlier check."""
    path = tmp_path / "out.txt"
    assert not path_taken(path)
    path.write_text("someone else's")  # the race: created between check and write
    with pytest.raises(UsageError, match="already exists"):
        write_output(path, "ours", force=False)
    assert path.read_text() == "someone else's"


def test_force_replaces_atomically_and_leaves_no_temporary(tmp_path, monkeypatch):
    path = tmp_path / "out.txt"
    path.write_text("old")
    write_output(path, "new", force=True)
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]
    assert stat.S_IMODE(path.stat().st_mode) == 0o644

    def failing_replace(src, dst):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", failing_replace)
    with pytest.raises(OSError, match="disk full"):
        write_output(path, "newer", force=True)
    assert path.read_text() == "new" and os.listdir(tmp_path) == ["out.txt"]


def test_a_folder_is_refused(tmp_path):
    with pytest.raises(UsageError, match="is a folder"):
        write_output(tmp_path, "x", force=True)


def test_the_report_command_does_not_write_through_a_dangling_symlink(tmp_path):
    from crossent.report import example_path, write_report

    victim = tmp_path / "elsewhere.html"
    link = tmp_path / "report.html"
    link.symlink_to(victim)
    with pytest.raises(UsageError, match="already exists"):
        write_report(example_path(), output=link, resamples=0)
    assert not victim.exists()
