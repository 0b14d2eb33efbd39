"""Processes a test session started that are still alive when it ends.

The session puts a token in its own environment before it starts anything; every process started
after that inherits it, through wrappers and after being orphaned (an orphan is reparented away
from pytest, so a walk over pytest's descendants would miss exactly the leaks that matter).
Reads ``/proc``; where there is none (macOS, Windows) nothing is found.
"""

from __future__ import annotations

import os
import signal
import time
import uuid
from pathlib import Path

MARKER = "PM_TEST_SESSION"
_PROC = Path("/proc")


def mark_session() -> str:
    """Put a fresh token in the environment that every later child process inherits."""
    token = uuid.uuid4().hex
    os.environ[MARKER] = token
    return token


def processes_with_token(token: str) -> dict[int, str]:
    """pid -> command line of each live process carrying ``token``, this process excepted.

    A process's ``/proc/<pid>/environ`` is the environment it was started with, so this process
    (which set the token after it started) and zombies (whose environ reads empty) never match.
    """
    needle = f"{MARKER}={token}".encode()
    found: dict[int, str] = {}
    if not _PROC.is_dir():
        return found
    for entry in _PROC.iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if needle not in (entry / "environ").read_bytes().split(b"\0"):
                continue
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:  # exited meanwhile, or another user's process
            continue
        found[int(entry.name)] = cmdline.replace(b"\0", b" ").decode(errors="replace").strip()
    return found


def survivors(token: str, grace: float = 3.0) -> dict[int, str]:
    """The processes still carrying ``token`` after ``grace`` seconds (a node told to stop may
    take a moment to exit)."""
    deadline = time.monotonic() + grace
    while (alive := processes_with_token(token)) and time.monotonic() < deadline:
        time.sleep(0.1)
    return alive


def kill(pids: list[int]) -> None:
    """SIGKILL each pid that still exists, so a leak found once does not pile up across runs."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
