"""vyper-guard on every contract, failing on any finding that is not in the reviewed baseline.

Run: `python -m scripts.lint_guard` (part of `make lint`); `--update` rewrites the baseline
keeping the reviews of findings still present and marking new ones UNREVIEWED (which fails
until someone triages them). vyper-guard (pinned in pyproject.toml) runs on `contracts/*.vy`
and `contracts/modules/*.vy` with every detector, source semantics and no AI triage, so the
result does not depend on a config file or a network. The test doubles in `contracts/test/`
are not scanned (several misbehave on purpose).

A finding is identified by (file, detector, title, source line): the title names the function,
and the stripped text of the flagged line stands for the place, so the baseline survives code
moving up or down but not a change to the flagged line. Identical keys are counted. Every
baseline entry carries a verdict and a one-line reason; docs/security.md ("vyper-guard
triage") has the full argument per detector.

Exit status 1 on: a finding not in the baseline, a baseline entry without a verdict or
reason, or vyper-guard failing. Baseline entries no longer found are reported, not fatal.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BASELINE = ROOT / "scripts" / "vyper_guard_baseline.json"
SCANNED = ("contracts/*.vy", "contracts/modules/*.vy")
VERDICTS = ("false positive", "accepted risk")
ARGS = [
    "--detectors",
    "all",
    "--severity-threshold",
    "INFO",
    "--semantic-mode",
    "source",
    "--no-priority-triage",
    "--no-project-graph",
]

Key = tuple[str, str, str, str]


def _guard() -> str:
    local = Path(sys.executable).parent / "vyper-guard"
    return str(local) if local.exists() else (shutil.which("vyper-guard") or "vyper-guard")


def sources() -> list[Path]:
    return sorted(p for pattern in SCANNED for p in ROOT.glob(pattern))


def run_guard(path: Path) -> list[dict]:
    """vyper-guard's findings on one file (raises RuntimeError when it fails)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "report.json"
        proc = subprocess.run(
            [_guard(), "analyze", str(path), "-f", "json", "-o", str(out), *ARGS],
            capture_output=True,
            text=True,
            cwd=tmp,
        )
        if proc.returncode != 0 or not out.exists():
            raise RuntimeError(f"vyper-guard failed on {path}: {proc.stdout}{proc.stderr}")
        return json.loads(out.read_text())["findings"]


def finding_key(rel: str, finding: dict, lines: list[str]) -> Key:
    """(file, detector, title, stripped source line) of one vyper-guard finding."""
    n = finding.get("line_number") or 0
    context = lines[n - 1].strip() if 0 < n <= len(lines) else ""
    return (rel, finding["detector"], finding["title"], context)


def entry_key(entry: dict) -> Key:
    return (entry["file"], entry["detector"], entry["title"], entry["context"])


def scan() -> Counter[Key]:
    """Every current finding, counted by key."""
    paths = sources()
    with ThreadPoolExecutor(max_workers=4) as pool:
        reports = list(pool.map(run_guard, paths))
    found: Counter[Key] = Counter()
    for path, findings in zip(paths, reports, strict=True):
        rel = path.relative_to(ROOT).as_posix()
        lines = path.read_text().splitlines()
        for f in findings:
            found[finding_key(rel, f, lines)] += 1
    return found


def load_baseline(path: Path = BASELINE) -> list[dict]:
    return json.loads(path.read_text())["findings"] if path.exists() else []


def compare(found: Counter[Key], baseline: list[dict]) -> tuple[list[Key], list[Key], list[str]]:
    """(new findings, baseline entries no longer found, unreviewed entries) — one item per
    occurrence."""
    accepted: Counter[Key] = Counter(entry_key(e) for e in baseline)
    new = list((found - accepted).elements())
    stale = list((accepted - found).elements())
    unreviewed = [
        f"{e['file']}: {e['detector']}: {e['title']}"
        for e in baseline
        if e.get("verdict") not in VERDICTS or not e.get("why", "").strip()
    ]
    return new, stale, unreviewed


def updated_baseline(found: Counter[Key], baseline: list[dict]) -> list[dict]:
    """The current findings, each with the review of a matching old entry or UNREVIEWED."""
    reviews: dict[Key, list[dict]] = {}
    for e in baseline:
        reviews.setdefault(entry_key(e), []).append(e)
    out = []
    for key in sorted(found):
        old = reviews.get(key, [])
        for i in range(found[key]):
            review = old[i] if i < len(old) else (old[-1] if old else {})
            file, detector, title, context = key
            out.append(
                {
                    "file": file,
                    "detector": detector,
                    "title": title,
                    "context": context,
                    "verdict": review.get("verdict", "UNREVIEWED"),
                    "why": review.get("why", ""),
                }
            )
    return out


def summary(found: Counter[Key]) -> str:
    by_detector = Counter()
    for (_f, detector, _t, _c), n in found.items():
        by_detector[detector] += n
    return ", ".join(f"{d} {n}" for d, n in by_detector.most_common())


def main(argv: list[str]) -> int:
    baseline = load_baseline()
    try:
        found = scan()
    except RuntimeError as err:
        print(f"FAIL {err}")
        return 1
    if "--update" in argv:
        entries = updated_baseline(found, baseline)
        note = "Reviewed vyper-guard findings (scripts/lint_guard.py); reasons: docs/security.md"
        BASELINE.write_text(json.dumps({"note": note, "findings": entries}, indent=1) + "\n")
        print(f"wrote {BASELINE.relative_to(ROOT)}: {len(entries)} findings")
        baseline = entries
    new, stale, unreviewed = compare(found, baseline)
    for file, detector, title, context in new:
        print(f"FAIL new vyper-guard finding {file}: {detector}: {title}\n       at: {context}")
    for item in unreviewed:
        print(f"FAIL baseline entry without a verdict and reason: {item}")
    for file, detector, title, _context in stale:
        print(f"note baseline entry no longer found (remove it): {file}: {detector}: {title}")
    total = sum(found.values())
    print(f"vyper-guard: {total} findings ({summary(found)}); {len(new)} new, {len(stale)} gone")
    return 1 if new or unreviewed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
