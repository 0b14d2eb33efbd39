"""Fail on any tracked file that points outside the checkout.

Run: `python -m scripts.lint_paths [ROOT]` (part of `make lint`). The product reads only its own
files (`data/`, `tests/golden/`, `docs/`), so two kinds of reference are findings, in code, tests,
docs and config alike:

- an absolute path under a machine's work, home, root or temporary folder (the four names in
  `_ABSOLUTE`) written as a path: not part of a URL or of a longer relative path (a `tmp` folder
  inside `out` is fine);
- a folder of shared material beside or above the checkout: its data, golden files or design
  document (the names in `_SHARED`).

The files are those `git ls-files` lists, or every file under ROOT outside the ignored build
folders when ROOT is not a git checkout. This file spells the patterns out and is not scanned.
Prints one line per finding, `file:line: text`, and exits with status 1 if there is any.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# A slash not preceded by a name character, '.', '~' or '-': the start of an absolute path.
_ABSOLUTE = re.compile(r"(?<![\w.~\-])/(work|home|root|tmp)/")
_SHARED = re.compile(r"\.\./shared\b|\bshared/(data|golden|DESIGN\.md)\b")

# Build and tool folders that `.gitignore` keeps out of a checkout.
_UNTRACKED = {
    ".git",
    ".venv",
    "node_modules",
    ".build",
    "out",
    ".cache",
    "__pycache__",
    ".hypothesis",
    ".pytest_cache",
    ".ruff_cache",
    "keeper-state",
}


def findings(name: str, text: str) -> list[str]:
    """The `name:line: text` findings of one file's text: line 2 of a file whose second line
    assigns an absolute temporary-folder path comes back as `a.py:2: <that line>`."""
    out = []
    for number, line in enumerate(text.splitlines(), start=1):
        if _ABSOLUTE.search(line) or _SHARED.search(line):
            out.append(f"{name}:{number}: {line.strip()}")
    return out


def tracked_files(root: Path) -> Iterator[Path]:
    """Files of the checkout at ``root``: git's list, or a walk when ``root`` has no ``.git``."""
    if (root / ".git").exists():
        listing = subprocess.run(
            ["git", "-C", str(root), "ls-files", "-z"], check=True, capture_output=True
        ).stdout
        for name in listing.decode().split("\0"):
            if name:
                yield root / name
        return
    for path in sorted(root.rglob("*")):
        if path.is_file() and not _UNTRACKED.intersection(path.relative_to(root).parts):
            yield path


def main(argv: list[str]) -> int:
    root = Path(argv[0]).resolve() if argv else ROOT
    own = Path(__file__).resolve()
    found: list[str] = []
    scanned = 0
    for path in tracked_files(root):
        if path.resolve() == own or not path.is_file():
            continue
        try:
            text = path.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            continue  # binary (images): no text paths
        scanned += 1
        found += findings(path.relative_to(root).as_posix(), text)
    for line in found:
        print(line)
    if found:
        print(f"lint_paths: {len(found)} reference(s) outside the checkout", file=sys.stderr)
        return 1
    print(f"lint_paths: {scanned} files, no reference outside the checkout")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
