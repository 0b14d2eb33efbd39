"""Helpers shared by the ``ape run`` scripts: accounts by alias, deployment file paths."""

from __future__ import annotations

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
