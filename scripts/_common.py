"""Helpers shared by the ``ape run`` scripts: accounts by alias, deployment file paths, keys."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ape import accounts

REPO = Path(__file__).resolve().parents[1]
LOCAL_NETWORKS = {"local", "anvil"}


def deployment_path(network_name: str) -> Path:
    """``deployments/<network>.json`` in the project."""
    return REPO / "deployments" / f"{network_name}.json"


def resolve_account(alias: str | None, network_name: str, default_index: int) -> Any:
    """An Ape account: ``TEST::<n>`` or ``<n>`` for a test account, else an alias from
    ``ape accounts``. Without ``alias``, local networks use test account ``default_index``."""
    if alias is None:
        if network_name not in LOCAL_NETWORKS:
            raise SystemExit(f"--account is required on {network_name} (an `ape accounts` alias)")
        return accounts.test_accounts[default_index]
    text = alias.removeprefix("TEST::")
    if text.isdigit():
        return accounts.test_accounts[int(text)]
    return accounts.load(alias)


def private_key(account: Any) -> str:
    """The signing key of an Ape account, for the keeper's ``TxManager``.

    Test accounts expose it; a keyfile account (``ape accounts import``) is decrypted with the
    passphrase from ``APE_ACCOUNTS_<alias>_PASSPHRASE`` (Ape's own variable) or a prompt.
    """
    key = getattr(account, "private_key", None)
    if key:
        return key if str(key).startswith("0x") else "0x" + str(key)
    import click
    from eth_account import Account

    alias = account.alias
    passphrase = os.environ.get(f"APE_ACCOUNTS_{alias}_PASSPHRASE") or click.prompt(
        f"passphrase of {alias}", hide_input=True
    )
    keyfile = json.loads(Path(account.keyfile_path).read_text())
    return "0x" + Account.decrypt(keyfile, passphrase).hex().removeprefix("0x")
