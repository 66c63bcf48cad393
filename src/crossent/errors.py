"""The error type that every crossent application raises for a problem the user caused.

>>> from crossent.errors import UsageError
>>> issubclass(UsageError, ValueError)
True
"""

from __future__ import annotations

__all__ = ["UsageError"]


class UsageError(ValueError):
    """A problem with the user's input (a bad file, a bad option): shown as one line, exit 2.

    It is a :class:`ValueError`, so Python callers of :mod:`crossent.report` catch it as one; the
    ``crossent`` command prints its message after ``crossent: error:`` and exits with code 2.
    """
