"""A keeper-like process for the kill/restart test: sends ``action:0..n-1`` one by one.

    python tests/tx_worker.py <rpc_url> <private_key> <state_folder> <recipient> <n> <pause>

It waits for each action to be mined, then ``pause`` seconds, before the next, so the test can
kill it mid-run.
"""

from __future__ import annotations

import sys
import time

from anvil_node import http_web3
from eth_account import Account

from offchain.keeper.state import StateStore
from offchain.keeper.tx import TxConfig, TxManager


def main(url: str, key: str, path: str, to: str, n: int, pause: float) -> None:
    with StateStore(path, Account.from_key(key).address) as store:
        state = store.load()
        config = TxConfig(confirmations=1, poll_interval=0.02)
        manager = TxManager(http_web3(url), key, store, state, config)
        for i in range(n):
            manager.send(f"action:{i}", to, value=1_000 + i, gas=21_000)
            manager.wait(f"action:{i}", timeout=30)
            time.sleep(pause)


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], int(sys.argv[5]), float(sys.argv[6]))
