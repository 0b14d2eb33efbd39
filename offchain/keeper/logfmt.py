"""Structured logs with the standard library: one event name plus ``key=value`` fields per line.

    >>> kv("tx_sent", key="post:17", nonce=4)
    'event=tx_sent key=post:17 nonce=4'

Values with spaces, quotes or ``=`` are JSON-quoted so that a line stays machine-splittable.
"""

from __future__ import annotations

import json
import logging
from typing import Any

__all__ = ["kv", "log_event"]


def _fmt(value: Any) -> str:
    text = str(value)
    if text == "" or any(c in text for c in ' ="\n\t'):
        return json.dumps(text)
    return text


def kv(event: str, **fields: Any) -> str:
    """Format one log line: ``event=<event>`` followed by the fields in the given order."""
    parts = [f"event={event}"]
    parts.extend(f"{name}={_fmt(value)}" for name, value in fields.items())
    return " ".join(parts)


def log_event(logger: logging.Logger, level: int, event: str, **fields: Any) -> None:
    """Log ``kv(event, **fields)`` at ``level`` (formatting only when the level is enabled)."""
    if logger.isEnabledFor(level):
        logger.log(level, kv(event, **fields))
