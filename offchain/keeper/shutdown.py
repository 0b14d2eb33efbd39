"""Stopping a long-running keeper on SIGTERM or SIGINT without losing or doubling anything.

The first signal sets ``Shutdown.event``: ``KeeperRunner.run`` lets the round under way finish
and starts no other. If that round is still running ``grace`` seconds later, or a second signal
comes, ``RoundAbandoned`` is raised in the main thread and the round is abandoned where it
stands. That is safe for the same reason a kill -9 is: the round's plan and every transaction's
record are on disk before anything is sent, so the next start resumes the plan with the same
idempotency keys.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from types import FrameType, TracebackType
from typing import Any, TypeVar

from offchain.keeper.logfmt import log_event

__all__ = ["RoundAbandoned", "Shutdown"]

_log = logging.getLogger(__name__)
T = TypeVar("T")

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


class RoundAbandoned(BaseException):
    """The round under way is abandoned (a second signal, or the grace period ran out).

    A ``BaseException``, like ``KeyboardInterrupt``, so that no ``except Exception`` on the way
    (a signer plugin's error handling, say) turns it into an ordinary failed round."""


class Shutdown:
    """Signal handlers for the duration of a ``with`` block (main thread only).

    ``event`` is set by the first SIGTERM / SIGINT; ``signal_name`` is that signal's name.
    ``grace`` seconds after it (0: wait for the round however long it takes), or at a second
    signal, the call under ``run`` is abandoned. Outside ``run`` (while the keeper closes its
    files and logs its totals) further signals are ignored, so the exit stays clean."""

    def __init__(self, grace: float = 30.0) -> None:
        if grace < 0:
            raise ValueError(f"grace must be >= 0 seconds, got {grace}")
        self.grace = grace
        self.event = threading.Event()
        self.signal_name: str | None = None
        self.abandoned = False
        self._armed = False
        self._previous: dict[int, Any] = {}

    def __enter__(self) -> Shutdown:
        for sig in (*STOP_SIGNALS, signal.SIGALRM):
            self._previous[sig] = signal.signal(sig, self._on_signal)
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        signal.setitimer(signal.ITIMER_REAL, 0)
        for sig, handler in self._previous.items():
            signal.signal(sig, handler)
        self._previous.clear()

    def run(self, fn: Callable[..., T], *args: Any, **kwargs: Any) -> T | None:
        """``fn(*args, **kwargs)``, abandonable: its result, or None (logged
        ``round_abandoned``) when a second signal or the end of the grace period interrupted
        it."""
        try:
            self._armed = True
            try:
                return fn(*args, **kwargs)
            finally:
                self._armed = False  # first: no abandonment can escape past this point
                signal.setitimer(signal.ITIMER_REAL, 0)
        except RoundAbandoned as exc:
            self.abandoned = True
            log_event(_log, logging.WARNING, "round_abandoned", cause=str(exc))
            return None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        name = "grace_over" if signum == signal.SIGALRM else signal.Signals(signum).name
        if not self.event.is_set():
            if signum == signal.SIGALRM:
                return  # not ours: no stop was asked for
            self.signal_name = name
            self.event.set()
            log_event(_log, logging.WARNING, "stopping", signal=name, grace=self.grace)
            if self.grace > 0:
                signal.setitimer(signal.ITIMER_REAL, self.grace)
            return
        if self._armed:
            self._armed = False  # once
            raise RoundAbandoned(name)
