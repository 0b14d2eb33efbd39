"""One line per mistake: how every command (``ape run deploy/keeper/demo/bench_*``,
``python -m offchain``) reports what its user typed or gave wrong.

Code that finds a bad input raises ``UserError`` with the problem and the fix in one sentence.
Commands are built with ``one_line_command(<click command class>)`` (or ``OneLineGroup``): a
``UserError`` becomes ``error: <message>`` on stderr and exit code 2, and so does a bad option
(click's usage errors, otherwise four lines); any other exception becomes one line with its type
and exit code 1. The traceback is printed only with ``--verbose``, the option the class adds.
"""

from __future__ import annotations

import difflib
import sys
import traceback
from collections.abc import Callable, Iterable
from typing import Any

import click

__all__ = [
    "EXIT_USAGE",
    "OneLineCommand",
    "OneLineGroup",
    "UserError",
    "did_you_mean",
    "one_line_command",
]

EXIT_USAGE = 2  # what click uses for a bad option


class UserError(Exception):
    """A bad input: ``str(err)`` is the one line shown (the problem, then the fix)."""


def did_you_mean(word: str, choices: Iterable[str]) -> str:
    """``" (did you mean 'haircut'?)"`` for the closest of ``choices``, else ``""``."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _first_line(err: BaseException) -> str:
    lines = str(err).strip().splitlines()
    line = lines[0] if lines else ""
    return line if len(line) <= 200 else line[:197] + "..."


class _UsageLine(click.UsageError):
    """A click usage error shown as one line, with where to find the usage."""

    def show(self, file: Any = None) -> None:
        where = f" (see {self.ctx.command_path} --help)" if self.ctx else ""
        click.echo(f"error: {self.format_message()}{where}", err=True)


def _one_line_usage(err: click.UsageError) -> click.UsageError:
    return err if isinstance(err, _UsageLine) else _UsageLine(err.format_message(), err.ctx)


def _reported(run: Callable[[], Any], verbose: bool) -> Any:
    """``run()``, with every exception it raises turned into one line on stderr."""
    try:
        return run()
    except click.UsageError as err:  # a bad option found by the command itself
        raise _one_line_usage(err) from None
    except (click.exceptions.Exit, click.ClickException, click.Abort):
        raise  # click's own, shown by click
    except Exception as err:  # noqa: BLE001 - the boundary where errors meet the user
        if verbose:
            traceback.print_exc()
        if isinstance(err, UserError):
            click.echo(f"error: {err}", err=True)
            sys.exit(EXIT_USAGE)
        hint = "" if verbose else " (run with --verbose for the traceback)"
        click.echo(f"error: {type(err).__name__}: {_first_line(err)}{hint}", err=True)
        sys.exit(1)


def one_line_command(base: type[click.Command]) -> type[click.Command]:
    """``base`` (a click command class, e.g. Ape's ``ConnectedProviderCommand``) with a
    ``--verbose`` option and one-line errors, its usage errors included."""

    class OneLine(base):  # type: ignore[misc,valid-type]
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            verbose = click.Option(
                ["--verbose"], is_flag=True, help="print the traceback of an error"
            )
            kwargs["params"] = [*kwargs.get("params", []), verbose]
            super().__init__(*args, **kwargs)

        def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
            try:
                return super().make_context(*args, **kwargs)
            except click.UsageError as err:
                raise _one_line_usage(err) from None

        def invoke(self, ctx: click.Context) -> Any:
            # the whole run, connecting to a network (Ape's commands) included
            verbose = bool(ctx.params.pop("verbose", False))
            return _reported(lambda: super(OneLine, self).invoke(ctx), verbose)

    OneLine.__name__ = OneLine.__qualname__ = f"OneLine{base.__name__}"
    return OneLine


OneLineCommand = one_line_command(click.Command)


class OneLineGroup(click.Group):
    """A group whose subcommands are ``OneLineCommand`` and whose own usage errors (an unknown
    subcommand) are one line."""

    command_class = OneLineCommand

    def make_context(self, *args: Any, **kwargs: Any) -> click.Context:
        try:
            return super().make_context(*args, **kwargs)
        except click.UsageError as err:
            raise _one_line_usage(err) from None

    def resolve_command(self, ctx: click.Context, args: list[str]) -> Any:
        try:
            return super().resolve_command(ctx, args)
        except click.UsageError as err:
            raise _one_line_usage(err) from None
