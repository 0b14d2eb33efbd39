"""A private anvil node per test: a free loopback port, killed at teardown.

The native binary, not the npm wrapper: killing the wrapper would orphan the node it spawns."""

from __future__ import annotations

import ctypes
import signal
import socket
import subprocess
import sys
import time
from typing import Any

import requests
from web3 import Web3

from scripts._anvil import native_anvil

_PR_SET_PDEATHSIG = 1  # prctl option, linux/prctl.h

#: Private keys of anvil's default accounts (mnemonic "test test ... junk"); test value only.
DEV_KEYS = (
    "0xac0974bec39a17e36ba4a6b4d238ff944bacb478cbed5efcae784d7bf4f2ff80",
    "0x59c6995e998f97a5a0044966f0945389dc9e86dae88c7a8412f4603b6b78690d",
    "0x5de4111afa1a4b94908f83103eb1f1706367c2e68ca870fc3fb9a804cdab365a",
    "0x7c852118294e51e653712a81e05800f419141751be58f605c371e15141b007a6",
)


def dev_account(private_key: str) -> Any:
    """The Ape test account (``ape_test.TestAccount``) of one of ``DEV_KEYS``: what the keeper's
    ``TxManager`` signs with in tests that run their own node."""
    from ape_test import TestAccount
    from eth_account import Account

    address = Account.from_key(private_key).address
    return TestAccount(
        index=DEV_KEYS.index(private_key), address_str=address, private_key=private_key
    )


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def http_web3(url: str, timeout: float = 10.0) -> Web3:
    """web3 over HTTP without web3's own retries (the code under test does its own)."""
    return Web3(
        Web3.HTTPProvider(
            url, request_kwargs={"timeout": timeout}, exception_retry_configuration=None
        )
    )


def _die_with_parent() -> None:
    """Linux: the kernel kills the node when the process that started it dies, even by SIGKILL
    (a CI timeout), when no teardown runs. Tied to the starting thread: start nodes from the
    main thread (fixtures do)."""
    ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL)


class AnvilNode:
    """``anvil --host 127.0.0.1 --port <free> --silent``; ``stop()`` kills it."""

    def __init__(self, *args: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = subprocess.Popen(
            [native_anvil(), "--host", "127.0.0.1", "--port", str(self.port), "--silent", *args],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            preexec_fn=_die_with_parent if sys.platform == "linux" else None,
        )
        self.w3 = http_web3(self.url)
        deadline = time.monotonic() + 20
        while True:
            try:
                self.chain_id = self.w3.eth.chain_id
                break
            except requests.exceptions.ConnectionError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(f"anvil did not start on {self.url}") from None
                time.sleep(0.05)

    def rpc(self, method: str, *params: Any) -> Any:
        response = self.w3.provider.make_request(method, list(params))
        if "error" in response:
            raise RuntimeError(f"{method}: {response['error']}")
        return response.get("result")

    def mine(self, blocks: int = 1) -> None:
        self.rpc("anvil_mine", hex(blocks))

    def automine(self, on: bool) -> None:
        self.rpc("evm_setAutomine", on)

    def balance(self, address: str) -> int:
        return self.w3.eth.get_balance(address)

    def nonce(self, address: str) -> int:
        return self.w3.eth.get_transaction_count(address, "latest")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(timeout=10)
