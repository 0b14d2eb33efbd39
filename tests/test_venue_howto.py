"""The venue how-to of ``docs/deploy.md`` runs as written: its ``pycon`` sessions are doctests
run in order, in one console namespace, on a fresh local deployment of ``deploy/config.json``
with BTC at 60,000, ETH at 3,000 and a PSR of 12% posted; its ``In [n]:`` lines run in IPython
with the console's one-line errors and must print the line shown under them. ``...`` in an
output stands for what changes between deployments (instrument names carry the expiry date).
The ``bash`` blocks are commands for a person and are not run."""

from __future__ import annotations

import doctest
import re

import pytest
from console_support import REPO, console_namespace, deploy_local, post_market

SECTION = "## A venue, step by step"


def howto() -> str:
    """The section, with the lines before it blanked so that line numbers are the file's."""
    text = (REPO / "docs" / "deploy.md").read_text()
    start = text.index(SECTION)
    end = text.find("\n## ", start + 1)
    return "\n" * text[:start].count("\n") + text[start : end if end != -1 else len(text)]


def blocks(section: str, language: str) -> list[tuple[int, str]]:
    """``(line number of the first line, body)`` of each fenced block in ``language``."""
    return [
        (section[: m.start()].count("\n") + 1, m[1])
        for m in re.finditer(rf"^```{language}\n(.*?)^```$", section, re.S | re.M)
    ]


def test_the_howto_has_sessions_for_every_step():
    section = howto()
    sessions = "".join(body for _, body in blocks(section, "pycon"))
    for helper in ("roles_of", "deposit(", "authorise_venue(", "trade_preview(", "trade(venue"):
        assert helper in sessions, helper
    for helper in ("margin_of(", "liquidation_preview(", "withdraw_preview("):
        assert helper in sessions, helper
    assert blocks(section, "text"), "the one-line errors are shown"


@pytest.fixture
def namespace(project, chain, networks, admin, keeper, venue, tmp_path):
    client = deploy_local(project, chain, admin, keeper, venue)
    post_market(client, keeper)
    return console_namespace(project, chain, networks, client, tmp_path)


def test_the_venue_howto_runs_as_written(namespace, capsys):
    section = howto()
    parser = doctest.DocTestParser()
    runner = doctest.DocTestRunner(optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    globs = dict(namespace)
    report = []
    for line, body in blocks(section, "pycon"):
        test = parser.get_doctest(
            body, globs, f"{SECTION[3:]} (line {line})", "docs/deploy.md", line
        )
        failed, _ = runner.run(test, out=report.append, clear_globs=False)
        globs = test.globs  # a DocTest runs on a copy: the next session goes on from this one
        if failed:
            break
    assert not runner.failures, "".join(report)

    from IPython.core.interactiveshell import InteractiveShell

    import ape_console_extras

    shell = InteractiveShell.instance(user_ns=globs)
    try:
        ape_console_extras.install_one_line_errors(shell)
        capsys.readouterr()
        checker = doctest.OutputChecker()
        for _, body in blocks(section, "text"):
            lines = body.splitlines()
            for typed, shown in zip(lines[::2], lines[1::2], strict=True):
                cell = re.fullmatch(r"In \[\d+\]: (.*)", typed)
                assert cell, typed
                shell.run_cell(cell[1])
                captured = capsys.readouterr()
                printed = captured.err + captured.out
                assert checker.check_output(shown + "\n", printed, doctest.ELLIPSIS), (
                    f"{typed}\nshown:   {shown}\nprinted: {printed}"
                )
    finally:
        InteractiveShell.clear_instance()
