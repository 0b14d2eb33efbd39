"""Strict, typed reading of the JSON files people write (the deploy config, the CLI's market and
portfolio files): every key must be a known one, every value of the expected type, and every
problem is one ``InputError`` naming the file and the field, with the fix when there is one
(``deploy/config.json: collateral[0]: unknown key 'haircutt' (did you mean 'haircut'?)``).
"""

from __future__ import annotations

import json
import math
from collections.abc import Collection, Mapping
from datetime import UTC, date, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from offchain.data import InputError
from offchain.errors import did_you_mean

__all__ = ["Fields", "read_json"]

_MISSING: Any = object()


def read_json(path: Path) -> Any:
    """The parsed file; an unreadable file or invalid JSON is one ``InputError``."""
    try:
        text = path.read_text()
    except OSError as err:
        raise InputError(path, "", err.strerror or "cannot be read") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as err:
        raise InputError(path, f"line {err.lineno}", f"invalid JSON ({err.msg})") from None


def _shown(value: Any) -> str:
    try:
        return json.dumps(value)
    except (TypeError, ValueError):
        return repr(value)


class Fields:
    """One JSON object at ``where`` in ``path``; ``keys`` are the keys it may have.

    ``retired`` maps a key that is no longer accepted to the sentence saying what replaces it.
    """

    def __init__(
        self,
        path: str | Path,
        where: str,
        obj: Any,
        keys: Collection[str],
        retired: Mapping[str, str] | None = None,
    ) -> None:
        self.path, self.where, self.obj = path, where, obj
        if not isinstance(obj, dict):
            raise InputError(
                path, where or "top level", f"must be a JSON object, got {_shown(obj)}"
            )
        for key in obj:
            if retired and key in retired:
                raise self.fail(key, retired[key])
            if key not in keys:
                hint = did_you_mean(str(key), keys) or f" (valid keys: {', '.join(sorted(keys))})"
                raise InputError(path, where or "top level", f"unknown key {key!r}{hint}")

    def name(self, key: str) -> str:
        return f"{self.where}.{key}" if self.where else key

    def fail(self, key: str, message: str) -> InputError:
        return InputError(self.path, self.name(key), message)

    def has(self, key: str) -> bool:
        return key in self.obj

    def raw(self, key: str, default: Any = _MISSING) -> Any:
        if key not in self.obj:
            if default is _MISSING:
                raise self.fail(key, "missing")
            return default
        return self.obj[key]

    def number(
        self, key: str, default: Any = _MISSING, lo: float | None = None, strict: bool = False
    ) -> float:
        """A finite JSON number, ``>= lo`` (``> lo`` when ``strict``)."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise self.fail(key, f"must be a number, got {_shown(value)}")
        value = float(value)
        bad_lo = lo is not None and (value <= lo if strict else value < lo)
        if not math.isfinite(value) or bad_lo:
            bound = "" if lo is None else f" {'>' if strict else '>='} {lo:g}"
            raise self.fail(key, f"must be a finite number{bound}, got {value:g}")
        return value

    def decimal(self, key: str, default: Any = _MISSING) -> Decimal:
        """A number kept exactly as written: a JSON number, or a decimal in a string
        (``"0.2"``) for more digits than a float holds."""
        value = self.raw(key, default)
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise self.fail(key, f"must be a number, got {_shown(value)}")
        try:
            exact = Decimal(str(value).strip())
        except InvalidOperation:
            raise self.fail(key, f"must be a number, got {_shown(value)}") from None
        if not exact.is_finite():
            raise self.fail(key, f"must be a finite number, got {_shown(value)}")
        return exact

    def integer(self, key: str, default: Any = _MISSING, lo: int = 0, hi: int | None = None) -> int:
        """A whole JSON number in ``[lo, hi]``."""
        value = self.raw(key, default)
        whole = isinstance(value, int) or (isinstance(value, float) and value.is_integer())
        if isinstance(value, bool) or not whole:
            raise self.fail(key, f"must be a whole number, got {_shown(value)}")
        value = int(value)
        if value < lo or (hi is not None and value > hi):
            upper = f" and <= {hi:,}" if hi is not None else ""
            raise self.fail(key, f"must be >= {lo:,}{upper}, got {value:,}")
        return value

    def text(self, key: str, default: Any = _MISSING) -> str:
        value = self.raw(key, default)
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {_shown(value)}")
        return value

    def time(self, key: str, date_hour: int = 0, unix: bool = True) -> int:
        """Unix seconds of an ISO date (at ``date_hour`` UTC), an ISO date/time (UTC unless it
        names a zone) or, when ``unix``, a whole number of seconds."""
        value = self.raw(key)
        if unix and isinstance(value, int) and not isinstance(value, bool) and value >= 0:
            return value
        if isinstance(value, str):
            try:
                if len(value) == 10:
                    day = date.fromisoformat(value)
                    at = datetime(day.year, day.month, day.day, date_hour, tzinfo=UTC)
                    return int(at.timestamp())
                moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
                if moment.tzinfo is None:
                    moment = moment.replace(tzinfo=UTC)
                return int(moment.timestamp())
            except ValueError:
                pass
        what = "an ISO date/time or unix seconds" if unix else "an ISO date or date/time"
        example = "" if unix else ' (for example "2027-03-26" or "2027-03-26T08:00:00Z")'
        raise self.fail(key, f"must be {what}{example}, got {_shown(value)}")

    def items(self, key: str, default: Any = _MISSING, empty: bool = False) -> list[Any]:
        """A JSON list (non-empty unless ``empty``)."""
        value = self.raw(key, default)
        if not isinstance(value, list) or (not value and not empty):
            raise self.fail(key, "must be a list" if empty else "must be a non-empty list")
        return value
