"""Helpers shared by the ``ape run`` scripts: accounts by alias, deployment file paths, the
checks of options several scripts take."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ape import accounts
from ape.cli import ConnectedProviderCommand

from offchain.errors import UserError, one_line_command
from offchain.keeper.service import default_deployment_path as deployment_path
from offchain.sdk.client import Deployment
from offchain.sdk.deploy import is_local_network

__all__ = [
    "REPO",
    "ScriptCommand",
    "deployment_path",
    "read_deployment",
    "resolve_account",
]

REPO = Path(__file__).resolve().parents[1]

#: The class of every ``ape run`` script's command: Ape's network options, one-line errors
#: (exit 2 for a bad input), the traceback only with ``--verbose`` (``offchain.errors``).
ScriptCommand = one_line_command(ConnectedProviderCommand)


def resolve_account(alias: str | None, network_name: str, default_index: int) -> Any:
    """An Ape account: ``TEST::<n>`` or ``<n>`` for a test account, else an alias from
    ``ape accounts``. Without ``alias``, local networks use test account ``default_index``."""
    if alias is None:
        if not is_local_network(network_name):
            raise UserError(
                f"--account is required on {network_name}: an alias from `ape accounts list`"
            )
        return accounts.test_accounts[default_index]
    text = alias.removeprefix("TEST::")
    if text.isdigit():
        return accounts.test_accounts[int(text)]
    try:
        return accounts.load(alias)
    except (KeyError, ValueError):
        raise UserError(
            f"no account {alias!r}: use an alias from `ape accounts list` (or add one with "
            f"`ape accounts import {alias}`), or TEST::<n> for a test account"
        ) from None


def read_deployment(path: Path) -> Deployment:
    """The deployments file at ``path``; a file that is not one is a one-line error."""
    try:
        return Deployment.load(path)
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise UserError(
            f"{path} is not a deployments file ({type(err).__name__}: {err}); move it away or "
            "write elsewhere with --out"
        ) from None
