"""The vyper-guard baseline check (`scripts/lint_guard.py`) fails on a new finding, counts
repeated findings, refuses unreviewed baseline entries, and reads vyper-guard's real JSON (one
run on a tiny contract, so a change of the report format cannot make the lint pass silently)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

from scripts import lint_guard as lint

A = ("contracts/X.vy", "integer_overflow", "Unsafe arithmetic (unsafe_add) in f()", "x = 1")
B = ("contracts/X.vy", "cei_violation", "CEI violation in g()", "y = 2")


def entry(key, verdict="false positive", why="bounded"):
    file, detector, title, context = key
    return dict(
        file=file, detector=detector, title=title, context=context, verdict=verdict, why=why
    )


def test_reviewed_findings_pass_and_new_ones_fail():
    assert lint.compare(Counter([A]), [entry(A)]) == ([], [], [])
    new, stale, unreviewed = lint.compare(Counter([A, B]), [entry(A)])
    assert (new, stale, unreviewed) == ([B], [], [])


def test_occurrences_are_counted_and_gone_entries_reported():
    new, _stale, _ = lint.compare(Counter([A, A]), [entry(A)])
    assert new == [A]  # a second identical finding is new
    _new, stale, _ = lint.compare(Counter(), [entry(A)])
    assert stale == [A]


def test_unreviewed_entries_fail():
    for bad in (entry(A, verdict="UNREVIEWED"), entry(A, why=" "), entry(A, verdict="maybe")):
        assert lint.compare(Counter([A]), [bad])[2]


def test_update_keeps_reviews_and_marks_new_findings():
    out = lint.updated_baseline(Counter([A, B]), [entry(A, why="kept")])
    by_detector = {e["detector"]: e for e in out}
    assert by_detector["integer_overflow"]["why"] == "kept"
    assert by_detector["cei_violation"]["verdict"] == "UNREVIEWED"


def test_finding_key_uses_the_stripped_source_line():
    lines = ["a", "    b = unsafe_add(c, 1)  ", "d"]
    finding = {"detector": "integer_overflow", "title": "t", "line_number": 2}
    assert lint.finding_key("f.vy", finding, lines) == (
        "f.vy",
        "integer_overflow",
        "t",
        "b = unsafe_add(c, 1)",
    )
    assert lint.finding_key("f.vy", {**finding, "line_number": None}, lines)[3] == ""


def test_vyper_guard_report_is_parsed(tmp_path: Path):
    src = tmp_path / "Tiny.vy"
    src.write_text(
        "# pragma version 0.4.3\n"
        "x: public(uint256)\n\n\n"
        "@external\n"
        "def f(a: uint256):\n"
        "    self.x = unsafe_add(a, 1)\n"
    )
    findings = lint.run_guard(src)
    keys = {lint.finding_key("Tiny.vy", f, src.read_text().splitlines()) for f in findings}
    assert (
        "Tiny.vy",
        "integer_overflow",
        "Unsafe arithmetic (unsafe_add) in f()",
        "self.x = unsafe_add(a, 1)",
    ) in keys


def test_baseline_file_is_fully_reviewed():
    baseline = lint.load_baseline()
    assert baseline, "scripts/vyper_guard_baseline.json is missing or empty"
    assert all(e["verdict"] in lint.VERDICTS and e["why"].strip() for e in baseline)
