"""Where the shared project data lives (``shared/``: design, golden files, market data).

A worktree sits at ``/work/wt/<name>``, the main checkout next to ``shared/``; so the location is
resolved at run time rather than from ``__file__``'s depth.
"""

from __future__ import annotations

import os
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
_FALLBACK = Path("/work/shared")


def shared_dir() -> Path:
    """Return the shared directory.

    Order: the environment variable ``PM_SHARED_DIR`` if set (it must exist), else the first
    existing of ``<repo>/../shared`` and ``/work/shared``.

    Raises:
        FileNotFoundError: if ``PM_SHARED_DIR`` points nowhere or no candidate exists.
    """
    env = os.environ.get("PM_SHARED_DIR")
    if env:
        path = Path(env).expanduser().resolve()
        if not path.is_dir():
            raise FileNotFoundError(f"PM_SHARED_DIR={env} is not a directory")
        return path
    for candidate in (_REPO.parent / "shared", _FALLBACK):
        if candidate.is_dir():
            return candidate.resolve()
    raise FileNotFoundError(
        f"shared directory not found: set PM_SHARED_DIR or create {_REPO.parent / 'shared'}"
    )
