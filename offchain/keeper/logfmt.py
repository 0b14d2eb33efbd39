"""Structured logs with the standard library: one event name plus ``key=value`` fields per line.

    >>> kv("tx_sent", key="post:17", nonce=4)
    'event=tx_sent key=post:17 nonce=4'

Values with spaces, quotes or ``=`` are JSON-quoted so that a line stays machine-splittable.
``configure_logging`` prefixes each line with its UTC time and level, as an operator's log
collector expects them::

    2026-12-02T11:20:00Z INFO event=round ts=1796210951 posted=9 ...
"""

from __future__ import annotations

import json
import logging
import sys
import time
from typing import Any, TextIO

__all__ = ["UtcFormatter", "configure_logging", "kv", "log_event", "stamp_handlers"]


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


class UtcFormatter(logging.Formatter):
    """``<UTC ISO-8601 time>Z <LEVEL> <message>``, whatever the machine's time zone."""

    converter = time.gmtime

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)s %(message)s", datefmt="%Y-%m-%dT%H:%M:%SZ")


def configure_logging(level: int = logging.INFO, stream: TextIO | None = None) -> logging.Handler:
    """Route the keeper's loggers (``offchain.*``) to ``stream`` (default stderr) through
    ``UtcFormatter``; return the handler. Called again, it replaces its previous handler, so a
    line is never written twice."""
    logger = logging.getLogger("offchain")
    for old in [h for h in logger.handlers if isinstance(h.formatter, UtcFormatter)]:
        logger.removeHandler(old)
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(UtcFormatter())
    logger.addHandler(handler)
    logger.setLevel(level)
    return handler


def stamp_handlers(logger_name: str) -> None:
    """Give the handlers already on ``logger_name`` (Ape's own, for its few lines such as an
    account unlocked from the environment) the ``UtcFormatter``, so that every line an operator
    reads carries its time and level."""
    for handler in logging.getLogger(logger_name).handlers:
        handler.setFormatter(UtcFormatter())
