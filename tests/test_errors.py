"""``offchain.errors``: the one way commands report a mistake. A ``UserError`` is one line and exit
2, a bad option too (click's own error, otherwise four lines), anything else one line and exit 1;
the traceback only with ``--verbose``."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from offchain.errors import OneLineCommand, OneLineGroup, UserError, did_you_mean


@click.group(cls=OneLineGroup)
def tool() -> None:
    """A command line built the way the project's are."""


@tool.command()
@click.option("--count", type=int, default=1)
@click.option("--fail", type=click.Choice(["user", "bug", "param", "none"]), default="none")
def run(count: int, fail: str) -> None:
    if fail == "user":
        raise UserError("--thing 3: must be 1 or 2; pass --thing 1")
    if fail == "bug":
        raise KeyError("a\nmultiline\nmessage")
    if fail == "param":
        raise click.BadParameter("count and fail disagree", param_hint="'--count'")
    click.echo(f"ran {count}")


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner(mix_stderr=False)


def only_line(result) -> str:
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    return lines[0]


def test_a_user_error_is_one_line_and_exit_2(runner):
    result = runner.invoke(tool, ["run", "--fail", "user"])
    assert result.exit_code == 2
    assert only_line(result) == "error: --thing 3: must be 1 or 2; pass --thing 1"


def test_an_unexpected_error_is_one_line_and_exit_1_with_the_way_to_the_traceback(runner):
    result = runner.invoke(tool, ["run", "--fail", "bug"])
    assert result.exit_code == 1
    line = only_line(result)
    assert line.startswith("error: KeyError: 'a") and "--verbose" in line


def test_verbose_prints_the_traceback(runner):
    result = runner.invoke(tool, ["run", "--fail", "user", "--verbose"])
    assert result.exit_code == 2
    assert "Traceback" in result.stderr and result.stderr.strip().endswith("pass --thing 1")


@pytest.mark.parametrize(
    "args,part",
    [
        (["run", "--count", "many"], "'many' is not a valid integer"),
        (["run", "--colour"], "No such option: --colour"),
        (["rn"], "No such command 'rn'"),
        (["run", "--fail", "param"], "Invalid value for '--count': count and fail disagree"),
    ],
)
def test_a_bad_option_or_command_is_one_line_and_exit_2(runner, args, part):
    result = runner.invoke(tool, args)
    assert result.exit_code == 2
    line = only_line(result)
    assert line.startswith("error: ") and part in line and "--help" in line


def test_a_good_run_is_untouched(runner):
    result = runner.invoke(tool, ["run", "--count", "3"])
    assert result.exit_code == 0 and result.output == "ran 3\n" and result.stderr == ""


def test_a_plain_command_gets_the_same_treatment(runner):
    @click.command(cls=OneLineCommand)
    def alone() -> None:
        raise UserError("no input given; pass one")

    result = runner.invoke(alone, [])
    assert result.exit_code == 2 and only_line(result) == "error: no input given; pass one"


def test_did_you_mean_names_the_closest_choice_or_nothing():
    assert did_you_mean("haircutt", ["haircut", "decimals"]) == " (did you mean 'haircut'?)"
    assert did_you_mean("zzz", ["haircut", "decimals"]) == ""
