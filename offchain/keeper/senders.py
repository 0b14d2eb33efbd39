"""How the keeper's actions leave the process: ``ChainSender`` signs transactions through
``TxManager`` and saves the state files; ``DryRunSender`` logs what would be sent and changes
nothing. The runner holds one of them and never asks which: a dry run takes the same decisions
in the same order, and nothing is signed or written.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from typing import Any, Protocol

from offchain.keeper.logfmt import log_event
from offchain.keeper.reverts import revert_reason
from offchain.keeper.tx import TRANSIENT_ERRORS

__all__ = ["ChainSender", "DryRunSender", "Outcome", "Sender", "Store"]

_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    """How one keyed action ended: ``confirmed`` (final on-chain, or would be in a dry run) and
    the gas it used (0 when unknown or not sent)."""

    key: str
    confirmed: bool
    gas_used: int = 0


class Store(Protocol):
    """A state file: ``save`` writes ``state`` atomically."""

    def save(self, state: Any) -> None: ...


class Sender(Protocol):
    """Sends keyed actions (idempotent per key) and saves the runner's state files."""

    @property
    def address(self) -> str | None: ...

    def send(self, key: str, to: str, data: bytes) -> bool:
        """Send the action once; False (logged) if it would revert now."""
        ...

    def wait(self, key: str) -> Outcome: ...

    def save(self, store: Store | None, state: Any) -> None: ...


class ChainSender:
    """Signs through ``tx`` (a ``TxManager``); ``w3`` reads receipts for the gas report."""

    def __init__(self, tx: Any, w3: Any = None, wait_timeout: float = 120.0) -> None:
        self.tx = tx
        self.w3 = w3
        self.wait_timeout = wait_timeout

    @property
    def address(self) -> str | None:
        return self.tx.address

    def send(self, key: str, to: str, data: bytes) -> bool:
        from web3.exceptions import ContractLogicError

        try:
            self.tx.send(key, to, data=data)
        except ContractLogicError as exc:
            # e.g. another keeper posted this timestamp first
            log_event(_log, logging.WARNING, "tx_would_revert", key=key, reason=revert_reason(exc))
            return False
        return True

    def wait(self, key: str) -> Outcome:
        rec = self.tx.wait(key, self.wait_timeout)
        if str(rec.status) != "confirmed":
            log_event(_log, logging.WARNING, "tx_not_confirmed", key=key, status=str(rec.status))
            return Outcome(key, False)
        return Outcome(key, True, self._gas(rec))

    def save(self, store: Store | None, state: Any) -> None:
        if store is not None:
            store.save(state)

    def _gas(self, rec: Any) -> int:
        """Gas used by a final transaction (reporting only: after a few failed reads, 0)."""
        if self.w3 is None or rec.mined_hash is None:
            return 0
        for attempt in range(5):
            try:
                return int(self.w3.eth.get_transaction_receipt(rec.mined_hash)["gasUsed"])
            except TRANSIENT_ERRORS as exc:
                log_event(_log, logging.WARNING, "gas_read_retry", key=rec.key, error=str(exc))
                time.sleep(0.05 * 2**attempt)
        return 0


class DryRunSender:
    """Logs ``would_send`` for each action and reports it confirmed; saves nothing."""

    def __init__(self, address: str | None = None) -> None:
        self._address = address

    @property
    def address(self) -> str | None:
        return self._address

    def send(self, key: str, to: str, data: bytes) -> bool:
        log_event(_log, logging.INFO, "would_send", key=key, to=to, bytes=len(data))
        return True

    def wait(self, key: str) -> Outcome:
        return Outcome(key, True)

    def save(self, store: Store | None, state: Any) -> None:
        pass
