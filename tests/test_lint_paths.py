"""The path lint (`scripts/lint_paths.py`) reports every reference outside the checkout, one line
each with file and line, passes relative paths and URLs, and finds the repo itself clean.

The offending strings are assembled from parts: this file is tracked, so the lint scans it too.
"""

from __future__ import annotations

import pytest

from scripts import lint_paths as lint


def _absolute(folder: str, rest: str) -> str:
    return f"/{folder}/{rest}"


SHARED = "shared"
OUTSIDE = [
    _absolute("work", f"{SHARED}/prices.csv"),
    _absolute("home", "alice/data"),
    _absolute("root", ".cache/x"),
    _absolute("tmp", "run/out.json"),
    f"../{SHARED}/notes.md",
    f"read {SHARED}/data here",
    f"see {SHARED}/golden/black76.csv",
    f"{SHARED}/DESIGN.md section 5",
]
INSIDE = [
    "data/btc_usd_daily.csv",
    "tests/golden/black76.csv",
    "out/tmp/report.md",  # relative: a folder named tmp inside the checkout
    "https://example.org/tmp/feed.json",  # a URL, not a path on this host
    "~" + _absolute("work", "notes"),  # a home-relative path, not an absolute one
    "shared by Vyper and Python",
]


@pytest.mark.parametrize("text", OUTSIDE)
def test_reference_outside_the_checkout_is_a_finding(text):
    assert lint.findings("docs/x.md", f"first line\n  {text}\n") == [f"docs/x.md:2: {text}"]


@pytest.mark.parametrize("text", INSIDE)
def test_paths_inside_the_checkout_and_urls_pass(text):
    assert lint.findings("docs/x.md", text) == []


def test_main_prints_one_line_per_finding_and_fails(tmp_path, capsys):
    (tmp_path / "offchain").mkdir()
    (tmp_path / "offchain" / "paths.py").write_text(
        f'FALLBACK = "{_absolute("work", SHARED)}"\nOK = "data"\n'
    )
    (tmp_path / "README.md").write_text(f"Data in ../{SHARED}/data.\n")
    (tmp_path / "out").mkdir()  # build output is not part of the checkout
    (tmp_path / "out" / "log.txt").write_text(_absolute("tmp", "x") + "\n")
    assert lint.main([str(tmp_path)]) == 1
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        f"README.md:1: Data in ../{SHARED}/data.",
        f'offchain/paths.py:1: FALLBACK = "{_absolute("work", SHARED)}"',
    ]


def test_repo_is_clean(capsys):
    assert lint.main([]) == 0, capsys.readouterr().out
