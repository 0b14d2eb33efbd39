"""Where the benchmarks write: each replaces its own section of ``docs/benchmarks.md``.

A section runs from its ``## title`` line to the next ``## `` heading; the prose sections between
them (targets, the storage floor) are kept as they are. A missing section is appended.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def _section(title: str) -> re.Pattern[str]:
    return re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)


def write_section(title: str, body: str, doc: Path = DOC, after: str | None = None) -> None:
    """Replace the section ``## {title}`` of ``doc`` with ``body``; a missing one goes right
    after the section ``## {after}`` if that exists, else at the end."""
    section = f"## {title}\n\n{body.strip()}\n\n"
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    if (found := _section(title).search(old)) is not None:
        new = old[: found.start()] + section + old[found.end() :]
    elif after is not None and (anchor := _section(after).search(old)) is not None:
        new = old[: anchor.end()] + section + old[anchor.end() :]
    else:
        new = old.rstrip() + "\n\n" + section
    doc.write_text(new.rstrip() + "\n")
