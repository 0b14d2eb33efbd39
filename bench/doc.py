"""Where the benchmarks write: each replaces its own section of ``docs/benchmarks.md``.

A section runs from its ``## title`` line to the next ``## `` heading; the prose sections between
them (targets, the storage floor) are kept as they are. A missing section is appended.
"""

from __future__ import annotations

import re
from pathlib import Path

DOC = Path(__file__).resolve().parent.parent / "docs" / "benchmarks.md"


def write_section(title: str, body: str, doc: Path = DOC) -> None:
    """Replace (or append) the section ``## {title}`` of ``doc`` with ``body``."""
    section = f"## {title}\n\n{body.strip()}\n"
    old = doc.read_text() if doc.exists() else "# Benchmarks\n"
    pattern = re.compile(rf"^## {re.escape(title)}\n.*?(?=^## |\Z)", re.S | re.M)
    if pattern.search(old):
        new = pattern.sub(lambda _m: section + "\n", old, count=1)
    else:
        new = old.rstrip() + "\n\n" + section
    doc.write_text(new.rstrip() + "\n")
