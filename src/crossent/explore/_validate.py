"""Small explicit checks for the explorer's JSON requests.

Every check raises :class:`RequestError` with a message that names the offending field, its
index and its value, and the HTTP status the server answers with (400 for a body that is not
JSON, 413 for one that is too large, 422 for JSON of the wrong shape, type or range). Nothing a
client sends may reach the library unchecked, so a bad request is never a 500.
"""

from __future__ import annotations

import json
import math
from typing import Any

MAX_BODY_BYTES = 64 * 1024
"""Largest request body accepted (the biggest valid request is well under 4 KiB)."""

MAX_INT_DIGITS = 1000
"""Most digits an integer literal may have, checked before Python converts it (int() of n
digits costs O(n**2) and refuses more than 4300); a field still says when a shorter integer is
too large for a float (10**308 has 309 digits)."""


class RequestError(Exception):
    """A request the explorer refuses, with the HTTP status to answer with.

    Parameters
    ----------
    message : str
        What is wrong, naming the field and value.
    status : int, default 422
        The 4xx status code of the answer.
    """

    def __init__(self, message: str, status: int = 422) -> None:
        super().__init__(message)
        self.message = message
        self.status = status


def _reject_constant(name: str) -> float:
    raise RequestError(f"non-finite number {name} is not allowed; send finite numbers only")


def _parse_int(text: str) -> int:
    digits = len(text.lstrip("-"))
    if digits > MAX_INT_DIGITS:
        raise RequestError(
            f"an integer of {digits} digits; numbers may have at most {MAX_INT_DIGITS} digits",
            status=400,
        )
    return int(text)


def parse_body(raw: bytes) -> dict[str, Any]:
    """Decode a request body into a JSON object.

    Parameters
    ----------
    raw : bytes
        The body as received.

    Returns
    -------
    dict
        The decoded JSON object.

    Raises
    ------
    RequestError
        413 for a body over :data:`MAX_BODY_BYTES`, 400 for bytes that are not UTF-8 JSON
        or for an integer of more than :data:`MAX_INT_DIGITS` digits, 422 for
        ``NaN``/``Infinity`` literals or JSON that is not an object.

    Examples
    --------
    >>> parse_body(b'{"target": 1}')
    {'target': 1}
    >>> parse_body(b'[1, 2]')
    Traceback (most recent call last):
    ...
    crossent.explore._validate.RequestError: request body must be a JSON object, got a list
    """
    if len(raw) > MAX_BODY_BYTES:
        raise RequestError(
            f"request body is {len(raw)} bytes; the limit is {MAX_BODY_BYTES}", status=413
        )
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as error:
        raise RequestError(f"request body is not UTF-8: {error}", status=400) from None
    if not text.strip():
        raise RequestError("request body is empty; send a JSON object", status=400)
    try:
        data = json.loads(text, parse_constant=_reject_constant, parse_int=_parse_int)
    except ValueError as error:  # JSONDecodeError and any conversion the decoder refuses
        raise RequestError(f"malformed JSON: {error}", status=400) from None
    except RecursionError:
        raise RequestError("malformed JSON: nested too deeply", status=400) from None
    if not isinstance(data, dict):
        raise RequestError(f"request body must be a JSON object, got {_kind(data)}")
    return data


def _kind(value: Any) -> str:
    """A short, bounded description of a JSON value for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:20] + "..."
        return f"the string {shown!r}"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, int) and abs(value) >= 10**15:
        return "an integer too large to be a float" if abs(value) > 10**308 else f"{value:.6g}"
    return repr(value)


def _as_number(value: Any, where: str) -> float:
    """``value`` as a finite float, or a RequestError naming ``where``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise RequestError(f"{where} must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise RequestError(f"{where} must be a finite number, got {_kind(value)}") from None
    if not math.isfinite(number):
        raise RequestError(f"{where} must be a finite number, got {number}")
    return number


def _range_text(lo: float, hi: float) -> str:
    return f"[{lo:g}, {hi:g}]"


class Fields:
    """Typed access to the fields of one request object, each checked as it is read.

    Parameters
    ----------
    body : dict
        The decoded request (from :func:`parse_body`).

    Examples
    --------
    >>> fields = Fields({"logits": [2.0, 1.0], "target": 0})
    >>> fields.vector("logits", min_len=2, max_len=10, lo=-100, hi=100)
    [2.0, 1.0]
    >>> fields.integer("target", lo=0, hi=1)
    0
    >>> fields.finish()
    """

    def __init__(self, body: dict[str, Any]) -> None:
        self.body = body
        self.read: set[str] = set()

    def _get(self, name: str, default: Any) -> Any:
        self.read.add(name)
        if name in self.body:
            return self.body[name]
        if default is not None:
            return default
        raise RequestError(f"missing field {name!r}")

    def number(self, name: str, *, lo: float, hi: float, default: float | None = None) -> float:
        """A finite number in ``[lo, hi]``."""
        value = _as_number(self._get(name, default), name)
        if not lo <= value <= hi:
            raise RequestError(f"{name} must be in {_range_text(lo, hi)}, got {value:g}")
        return value

    def integer(self, name: str, *, lo: int, hi: int, default: int | None = None) -> int:
        """An integer in ``[lo, hi]`` (a float with an integral value is accepted)."""
        value = self._get(name, default)
        if isinstance(value, float) and value.is_integer():
            value = int(value)
        if isinstance(value, bool) or not isinstance(value, int):
            raise RequestError(f"{name} must be an integer, got {_kind(value)}")
        if not lo <= value <= hi:
            raise RequestError(f"{name} must be an integer in [{lo}, {hi}], got {_kind(value)}")
        return value

    def choice(self, name: str, options: tuple[str, ...], *, default: str) -> str:
        """One of the strings ``options``."""
        value = self._get(name, default)
        if not isinstance(value, str) or value not in options:
            raise RequestError(f"{name} must be one of {list(options)}, got {_kind(value)}")
        return value

    def vector(
        self,
        name: str,
        *,
        min_len: int,
        max_len: int,
        lo: float,
        hi: float,
        default: list[float] | None = None,
    ) -> list[float]:
        """A list of ``min_len`` to ``max_len`` finite numbers, each in ``[lo, hi]``."""
        return self._vector(self._get(name, default), name, min_len, max_len, lo, hi)

    @staticmethod
    def _vector(
        value: Any, name: str, min_len: int, max_len: int, lo: float, hi: float
    ) -> list[float]:
        size = f"{min_len}" if min_len == max_len else f"{min_len} to {max_len}"
        if not isinstance(value, list):
            raise RequestError(f"{name} must be a list of {size} numbers, got {_kind(value)}")
        if not min_len <= len(value) <= max_len:
            raise RequestError(f"{name} must hold {size} numbers, got {len(value)}")
        numbers = [_as_number(item, f"{name}[{i}]") for i, item in enumerate(value)]
        for i, number in enumerate(numbers):
            if not lo <= number <= hi:
                raise RequestError(f"{name}[{i}] must be in {_range_text(lo, hi)}, got {number:g}")
        return numbers

    def matrix(self, name: str, *, rows: int, cols: int, lo: float, hi: float) -> list[list[float]]:
        """A ``rows`` x ``cols`` list of lists of finite numbers in ``[lo, hi]``."""
        value = self._get(name, None)
        if not isinstance(value, list) or len(value) != rows:
            got = f"{len(value)} rows" if isinstance(value, list) else _kind(value)
            raise RequestError(f"{name} must be a list of {rows} rows, got {got}")
        return [
            self._vector(row, f"{name}[{r}]", cols, cols, lo, hi) for r, row in enumerate(value)
        ]

    def finish(self) -> None:
        """Refuse fields that were not read (a misspelt option must not pass silently)."""
        unknown = sorted(str(key) for key in self.body if key not in self.read)
        if unknown:
            shown = ", ".join(repr(key[:30]) for key in unknown[:5])
            expected = ", ".join(sorted(self.read))
            raise RequestError(f"unknown field(s) {shown}; expected only: {expected}")
