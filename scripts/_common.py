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


class LocalNode:
    """An anvil of our own on a free loopback port, for the demo.

    Ape's foundry provider starts anvil with ``--steps-tracing``, which keeps every executed step
    of every transaction in memory; the keeper's posts run hundreds of thousands of steps each,
    and a full replay grows that node past 20 GB. This node runs without step tracing, with the
    same test mnemonic, so Ape connects to it through ``provider_settings={"host": uri}``.
    """

    def __init__(self, mnemonic: str, accounts: int = 10) -> None:
        import shutil
        import socket
        import subprocess
        import time
        import urllib.request

        local = REPO / "node_modules" / ".bin" / "anvil"
        binary = str(local) if local.exists() else shutil.which("anvil")
        if binary is None:
            raise SystemExit("anvil not found: run `make setup`")
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.uri = f"http://127.0.0.1:{port}"
        self.proc = subprocess.Popen(
            [
                binary,
                "--host",
                "127.0.0.1",
                "--port",
                str(port),
                "--silent",
                "--mnemonic",
                mnemonic,
                "--accounts",
                str(accounts),
                "--balance",
                "100000",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 30
        body = b'{"jsonrpc":"2.0","id":1,"method":"eth_chainId","params":[]}'
        while True:
            try:
                req = urllib.request.Request(self.uri, body, {"Content-Type": "application/json"})
                urllib.request.urlopen(req, timeout=2).read()
                return
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise SystemExit(f"anvil did not start on {self.uri}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except Exception:  # noqa: BLE001 - a node that ignores SIGTERM is killed
                self.proc.kill()
                self.proc.wait(timeout=10)
