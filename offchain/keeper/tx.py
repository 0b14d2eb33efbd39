"""``TxManager``: sends the keeper's transactions from one Ape account and sees them through.

Signing goes through the account's ``sign_transaction`` (``ape.api.AccountAPI``), so any Ape
account plugin signs: a keyfile (``ape accounts``), a test account, a cloud KMS (ape-aws), a
hardware wallet (ape-ledger). The manager never holds a private key; it keeps the serialized
signed transaction, which is what a node is sent and what a restart re-sends.

What it guarantees (the failure model is in ``docs/keeper.md``):

- **Idempotency.** Every logical action has a key (``"post:BTC:round:17"``). The record for a key
  (nonce, every signed hash, the latest signed payload, status) is written to the state file
  *before* the transaction is broadcast, so a crash at any point leaves a record that a restarted
  manager completes, and ``send`` with a known key never signs a second transaction for it.
- **Nonces.** Reserved locally, starting from ``eth_getTransactionCount(pending)`` (and above
  every unfinished record); a node answering "nonce too low" on a fresh send makes the manager
  check whether the transaction was in fact mined, else re-sync and re-sign.
- **RPC errors.** Connection errors, timeouts and HTTP errors are retried with exponential
  backoff and jitter, bounded in attempts and total time; then ``RpcUnavailableError``.
- **Stuck transactions.** Not mined ``stuck_after_seconds`` or ``stuck_after_blocks`` after the
  last broadcast: re-signed on the same nonce with both fee fields raised by at least
  ``bump_bps`` (12.5% by default, what nodes require for a replacement), up to ``max_fee_cap``.
- **Dropped transactions.** A pending transaction the node no longer knows is re-sent from the
  stored signed payload (same hash).
- **Reorgs.** A receipt counts only once ``confirmations`` blocks deep and its block is still
  canonical; a receipt that disappears or moves to another block sends the record back to
  pending (re-sent if the node lost it) and it is confirmed again.
"""

from __future__ import annotations

import copy
import logging
import math
import random
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import requests
from eth_account import Account
from eth_utils import keccak
from web3 import Web3
from web3.exceptions import TransactionNotFound, Web3RPCError

from .logfmt import log_event
from .state import KeeperState, StateStore, TxRecord, TxStatus

__all__ = [
    "RpcUnavailableError",
    "SigningError",
    "TxConfig",
    "TxError",
    "TxManager",
    "TxRejectedError",
    "TxTimeoutError",
    "bumped",
]

_log = logging.getLogger(__name__)

GWEI = 10**9

#: Errors worth retrying: the request may not have reached the node, or its answer was lost.
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    requests.exceptions.RequestException,
    ConnectionError,
    TimeoutError,
)


class TxError(RuntimeError):
    """Base of the manager's errors."""


class RpcUnavailableError(TxError):
    """The RPC endpoint kept failing for the configured attempts / time."""


class TxRejectedError(TxError):
    """The node refused a new transaction outright (e.g. insufficient funds)."""


class TxTimeoutError(TxError):
    """``wait`` ran out of time before the record became final."""


class SigningError(TxError):
    """The account did not sign (declined, its signer failed, or the signature is not its own)."""


@dataclass(frozen=True)
class TxConfig:
    """Knobs of ``TxManager`` (defaults suit a public L1/L2 endpoint; tests shorten the times)."""

    confirmations: int = 2  # blocks (the receipt's included) before a receipt is final
    priority_fee: int = 1 * GWEI  # initial maxPriorityFeePerGas
    base_fee_multiplier: int = 2  # initial maxFeePerGas = base fee x this + priority fee
    max_fee_cap: int = 500 * GWEI  # never sign a maxFeePerGas above this
    bump_bps: int = 1_250  # fee increase per bump, basis points (>= 12.5%)
    stuck_after_seconds: float = 90.0  # not mined this long after a broadcast: bump
    stuck_after_blocks: int = 3  # or this many new blocks without it: bump
    gas_multiplier: float = 1.2  # gas limit = estimate x this, when no gas is given
    rpc_attempts: int = 5  # tries per RPC call
    rpc_backoff: float = 0.25  # first retry delay, seconds; doubles per attempt
    rpc_backoff_max: float = 4.0  # cap of one delay before jitter
    rpc_deadline: float = 30.0  # total seconds one RPC call may take with its retries
    poll_interval: float = 1.0  # seconds between rounds of ``wait``
    nonce_resyncs: int = 3  # re-signs with a fresh nonce per ``send`` on "nonce too low"

    def __post_init__(self) -> None:
        if self.bump_bps < 1_250:
            raise ValueError("bump_bps must be >= 1250 (12.5%), or nodes refuse replacements")
        if self.confirmations < 1 or self.rpc_attempts < 1 or self.nonce_resyncs < 1:
            raise ValueError("confirmations, rpc_attempts and nonce_resyncs must be >= 1")
        if self.priority_fee > self.max_fee_cap:
            raise ValueError("priority_fee above max_fee_cap")


def bumped(fee: int, bump_bps: int) -> int:
    """``fee`` raised by ``bump_bps`` basis points, rounded up (1 gwei, 1250 -> 1.125 gwei)."""
    return -(-fee * (10_000 + bump_bps) // 10_000)


def _fee_too_low(message: str) -> bool:
    """A node's refusal because of the fee (below the base fee or the pool's minimum)."""
    low = message.lower()
    return "base fee" in low or "underpriced" in low or "fee too low" in low


def _hex(value: bytes) -> str:
    return Web3.to_hex(value)


def _default_ecosystem() -> Any:
    """The connected network's ecosystem (it builds that network's transactions), else
    Ethereum's (a manager used outside an Ape network context, e.g. on a plain anvil URL)."""
    from ape import networks

    provider = networks.active_provider
    return provider.network.ecosystem if provider is not None else networks.ethereum


def _signed_mismatch(raw: bytes, fields: dict[str, Any], address: str) -> str | None:
    """What is wrong with ``raw`` as the signature of ``fields`` by ``address``, or None."""
    from eth_account.typed_transactions import TypedTransaction
    from hexbytes import HexBytes

    try:
        got = TypedTransaction.from_bytes(HexBytes(raw)).as_dict()
        signer = Account.recover_transaction(raw)
    except Exception as exc:  # noqa: BLE001 - whatever the decoder raises, the bytes are bad
        return f"bytes that are no signed transaction ({type(exc).__name__}: {exc})"
    if signer != address:
        return f"a transaction signed by {signer}"
    to = got.get("to") or b""
    expected = {
        "chainId": fields["chain_id"],
        "nonce": fields["nonce"],
        "value": fields["value"],
        "data": fields["data"],
        "gas": fields["gas_limit"],
        "maxFeePerGas": fields["max_fee"],
        "maxPriorityFeePerGas": fields["max_priority_fee"],
        "to": bytes.fromhex(fields["receiver"][2:]) if "receiver" in fields else b"",
    }
    actual = {**{k: got.get(k) for k in expected}, "to": bytes(to)}
    actual["data"] = bytes(actual["data"] or b"")
    changed = [k for k in expected if actual[k] != expected[k]]
    return f"a transaction with other fields ({', '.join(changed)})" if changed else None


def already_known(message: str) -> bool:
    """Whether a node's refusal of ``eth_sendRawTransaction`` says it already holds this very
    transaction: geth "already known" / "known transaction", anvil "transaction already
    imported" (seen when a lost answer is retried while the first send is still pending)."""
    low = message.lower()
    return any(p in low for p in ("already known", "known transaction", "already imported"))


class TxManager:
    """Transactions of one Ape account, with the guarantees of the module docstring.

    ``account`` is an ``ape.api.AccountAPI``: the manager builds each transaction with
    ``ecosystem.create_transaction`` (default: the connected network's ecosystem, else
    Ethereum's) and has the account sign it. An account that asks before signing (a keyfile
    account without autosign) asks for every transaction; a keeper enables autosign first.

    ``state`` is the keeper's loaded state and ``store`` the file it came from; the manager
    mutates ``state.ledger`` and saves through ``store`` after every change (one state file per
    account). Thread-safe: ``send`` and ``step`` take one lock.

    ``clock`` is wall time (persisted as ``sent_at``, so it must survive a restart), ``sleep`` the
    pause between retries and polls, ``rng`` the jitter source.
    """

    def __init__(
        self,
        w3: Web3,
        account: Any,
        store: StateStore,
        state: KeeperState,
        config: TxConfig | None = None,
        *,
        ecosystem: Any = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], None] = time.sleep,
        rng: random.Random | None = None,
    ) -> None:
        self._w3 = w3
        self._account = account
        self._address = Web3.to_checksum_address(str(account.address))
        self._ecosystem = ecosystem if ecosystem is not None else _default_ecosystem()
        self._store = store
        self._state = state
        self.config = config or TxConfig()
        self._clock = clock
        self._sleep = sleep
        self._rng = rng or random.Random()
        self._lock = threading.RLock()
        self._next_nonce: int | None = None
        self._chain_id: int | None = None
        foreign = [k for k, r in state.ledger.items() if r.sender != self.address]
        if foreign:
            raise ValueError(
                f"state file {store.path} holds records of another account (keys {foreign[:3]});"
                " use one state file per account"
            )

    # ------------------------------------------------------------------ public API

    @property
    def address(self) -> str:
        return self._address

    def record(self, key: str) -> TxRecord | None:
        """A copy of the record for ``key``, or ``None``."""
        with self._lock:
            rec = self._state.ledger.get(key)
            return copy.deepcopy(rec) if rec is not None else None

    def unfinished(self) -> list[TxRecord]:
        """Copies of the records not final yet, by nonce."""
        with self._lock:
            recs = [r for r in self._state.ledger.values() if not r.status.final]
            return copy.deepcopy(sorted(recs, key=lambda r: r.nonce))

    def send(
        self,
        key: str,
        to: str | None,
        value: int = 0,
        data: bytes = b"",
        gas: int | None = None,
    ) -> TxRecord:
        """Sign and broadcast the action ``key`` once; a known key returns its record unchanged.

        Only a ``failed`` record (refused by the node, never in a pool) is attempted again. The
        record is persisted before the broadcast; if the RPC is down, ``RpcUnavailableError``
        propagates and ``step`` broadcasts the stored payload later.

        Raises:
            ValueError: an empty key, a negative value or a non-positive gas limit.
            TxRejectedError: the node refused the transaction (record ``failed``).
            RpcUnavailableError: the endpoint kept failing (record stays ``signed``).
        """
        if not key or value < 0 or (gas is not None and gas <= 0):
            raise ValueError(f"need a non-empty key, value >= 0 and gas > 0: {key!r}")
        with self._lock:
            existing = self._state.ledger.get(key)
            if existing is not None and existing.status != TxStatus.FAILED:
                log_event(
                    _log, logging.INFO, "idempotent_skip", key=key, status=str(existing.status)
                )
                return copy.deepcopy(existing)
            to_addr = Web3.to_checksum_address(to) if to else None
            if gas is None:
                estimate = self._call(
                    "eth_estimateGas",
                    self._w3.eth.estimate_gas,
                    {"from": self.address, "to": to_addr, "value": value, "data": _hex(data)},
                )
                gas = math.ceil(estimate * self.config.gas_multiplier)
            max_fee, priority_fee = self._initial_fees()
            rec = TxRecord(
                key=key,
                sender=self.address,
                nonce=self._reserve_nonce(),
                chain_id=self._get_chain_id(),
                to=to_addr,
                value=value,
                data=_hex(data),
                gas=gas,
                max_fee=max_fee,
                priority_fee=priority_fee,
                raw="",
                hashes=[],
                status=TxStatus.SIGNED,
                created_at=self._clock(),
            )
            try:
                self._sign_into(rec)
            except SigningError as exc:
                self._release_nonce(rec.nonce)
                log_event(_log, logging.ERROR, "tx_unsigned", key=key, error=str(exc))
                raise
            self._state.ledger[key] = rec
            self._save()
            log_event(
                _log,
                logging.INFO,
                "tx_signed",
                key=key,
                nonce=rec.nonce,
                hash=rec.hashes[-1],
                max_fee=max_fee,
                priority_fee=priority_fee,
            )
            for _ in range(self.config.nonce_resyncs):
                outcome = self._broadcast(rec)
                if outcome == "ok":
                    break
                if outcome == "nonce_used":
                    if self._find_receipt(rec) is not None:
                        # An earlier attempt got through after all (a lost answer).
                        self._mark_sent(rec)
                        break
                    self._next_nonce = None
                    old = rec.nonce
                    rec.nonce = self._reserve_nonce()
                    rec.hashes = []
                    try:
                        self._sign_into(rec)
                    except SigningError as exc:
                        # nothing of this record is in a pool: sent again by a later `send`
                        rec.status = TxStatus.FAILED
                        rec.error = str(exc)
                        self._release_nonce(rec.nonce)
                        self._save(rec)
                        log_event(_log, logging.ERROR, "tx_unsigned", key=key, error=str(exc))
                        raise
                    self._save()
                    log_event(
                        _log,
                        logging.WARNING,
                        "nonce_resync",
                        key=key,
                        old_nonce=old,
                        nonce=rec.nonce,
                        hash=rec.hashes[-1],
                    )
                    continue
                rec.status = TxStatus.FAILED
                rec.error = outcome
                self._release_nonce(rec.nonce)
                self._save()
                log_event(_log, logging.ERROR, "tx_rejected", key=key, error=outcome)
                raise TxRejectedError(f"{key}: node refused the transaction: {outcome}")
            else:
                raise TxError(
                    f"{key}: nonce still in use after {self.config.nonce_resyncs} re-syncs; "
                    "is another process sending from this account?"
                )
            return copy.deepcopy(rec)

    def step(self) -> list[TxRecord]:
        """One round over unfinished records: receipts, confirmations, reorgs, drops, bumps.

        Returns copies of the records that became final in this round.
        """
        with self._lock:
            active = sorted(
                (r for r in self._state.ledger.values() if not r.status.final),
                key=lambda r: r.nonce,
            )
            if not active:
                return []
            head = self._call("eth_blockNumber", lambda: self._w3.eth.block_number)
            used = self._call(
                "eth_getTransactionCount",
                self._w3.eth.get_transaction_count,
                self.address,
                "latest",
            )
            done = []
            for rec in active:
                self._advance(rec, head, used)
                if rec.status.final:
                    done.append(copy.deepcopy(rec))
            return done

    def wait(self, key: str, timeout: float) -> TxRecord:
        """Call ``step`` until the record of ``key`` is final; return a copy of it.

        Raises:
            KeyError: unknown key.
            TxTimeoutError: not final within ``timeout`` seconds.
        """
        deadline = time.monotonic() + timeout
        while True:
            self.step()
            with self._lock:
                rec = self._state.ledger[key]
                if rec.status.final:
                    return copy.deepcopy(rec)
                status = rec.status
            if time.monotonic() >= deadline:
                raise TxTimeoutError(f"{key}: still {status} after {timeout} s")
            self._sleep(self.config.poll_interval)

    def prune(self, older_than: float) -> int:
        """Forget final records created more than ``older_than`` seconds ago; return how many.

        Only for keys that can never recur (e.g. keys with a round number that only grows).
        """
        with self._lock:
            cutoff = self._clock() - older_than
            old = [
                k for k, r in self._state.ledger.items() if r.status.final and r.created_at < cutoff
            ]
            for k in old:
                del self._state.ledger[k]
            if old:
                self._save()
            return len(old)

    # ------------------------------------------------------------------ record progress

    def _advance(self, rec: TxRecord, head: int, used_nonces: int) -> None:
        receipt = self._find_receipt(rec)
        if receipt is not None:
            self._on_receipt(rec, receipt, head)
            return
        if rec.status == TxStatus.MINED:
            log_event(
                _log,
                logging.WARNING,
                "tx_reorged",
                key=rec.key,
                nonce=rec.nonce,
                block=rec.block_number,
                block_hash=rec.block_hash,
            )
            rec.status = TxStatus.PENDING
            rec.mined_hash = rec.block_hash = rec.block_number = None
            self._save()
        if used_nonces > rec.nonce:
            receipt = self._find_receipt(rec)  # mined between the two queries?
            if receipt is not None:
                self._on_receipt(rec, receipt, head)
                return
            rec.status = TxStatus.CONFLICT
            rec.error = f"nonce {rec.nonce} used by a transaction not in {rec.hashes}"
            self._save()
            log_event(_log, logging.ERROR, "tx_conflict", key=rec.key, nonce=rec.nonce)
            return
        if rec.status == TxStatus.SIGNED or not self._known(rec.hashes[-1]):
            if rec.status != TxStatus.SIGNED:
                log_event(_log, logging.WARNING, "tx_dropped", key=rec.key, hash=rec.hashes[-1])
            outcome = self._broadcast(rec, head)
            ok = outcome in ("ok", "nonce_used")
            log_event(
                _log,
                logging.INFO if ok else logging.WARNING if _fee_too_low(outcome) else logging.ERROR,
                "tx_rebroadcast",
                key=rec.key,
                nonce=rec.nonce,
                hash=rec.hashes[-1],
                outcome=outcome,
            )
            if _fee_too_low(outcome):
                self._bump(rec, head)  # e.g. evicted after a base-fee rise: re-price it
            elif outcome not in ("ok", "nonce_used"):
                rec.error = outcome  # kept signed: retried next round (e.g. once funded)
                self._save()
            return
        if self._is_stuck(rec, head):
            self._bump(rec, head)

    def _on_receipt(self, rec: TxRecord, receipt: Any, head: int) -> None:
        number = int(receipt["blockNumber"])
        block_hash = _hex(receipt["blockHash"])
        if rec.status != TxStatus.MINED or rec.block_hash != block_hash:
            event = "tx_remined" if rec.status == TxStatus.MINED else "tx_mined"
            rec.status = TxStatus.MINED
            rec.mined_hash = _hex(receipt["transactionHash"])
            rec.block_number = number
            rec.block_hash = block_hash
            self._save()
            log_event(
                _log,
                logging.INFO,
                event,
                key=rec.key,
                nonce=rec.nonce,
                hash=rec.mined_hash,
                block=number,
                block_hash=block_hash,
            )
        if head - number + 1 < self.config.confirmations:
            return
        block = self._call("eth_getBlockByNumber", self._w3.eth.get_block, number)
        if _hex(block["hash"]) != block_hash:
            log_event(_log, logging.WARNING, "tx_block_replaced", key=rec.key, block=number)
            return  # the next round re-reads the receipt from the canonical chain
        rec.status = TxStatus.CONFIRMED if receipt["status"] == 1 else TxStatus.REVERTED
        self._save()
        log_event(
            _log,
            logging.INFO if rec.status == TxStatus.CONFIRMED else logging.ERROR,
            "tx_final",
            key=rec.key,
            status=str(rec.status),
            hash=rec.mined_hash,
            block=number,
            gas_used=int(receipt["gasUsed"]),
        )

    def _is_stuck(self, rec: TxRecord, head: int) -> bool:
        if rec.sent_at is None or rec.sent_block is None:
            return True
        waited = self._clock() - rec.sent_at
        return (
            waited >= self.config.stuck_after_seconds
            or head - rec.sent_block >= self.config.stuck_after_blocks
        )

    def _bump(self, rec: TxRecord, head: int) -> None:
        cfg = self.config
        base = self._base_fee()
        priority = bumped(rec.priority_fee, cfg.bump_bps)
        max_fee = max(bumped(rec.max_fee, cfg.bump_bps), base * cfg.base_fee_multiplier + priority)
        max_fee = min(max_fee, cfg.max_fee_cap)
        if max_fee < bumped(rec.max_fee, cfg.bump_bps) or priority > max_fee:
            log_event(
                _log,
                logging.WARNING,
                "fee_cap_reached",
                key=rec.key,
                nonce=rec.nonce,
                max_fee=rec.max_fee,
                cap=cfg.max_fee_cap,
            )
            rec.sent_at, rec.sent_block = self._clock(), head  # warn once per stuck period
            self._save()
            return
        previous = (rec.raw, rec.max_fee, rec.priority_fee, list(rec.hashes))
        rec.max_fee, rec.priority_fee = max_fee, priority
        try:
            self._sign_into(rec)
        except SigningError as exc:
            # the signed transaction stays in the pool as it was; asked again next stuck period
            rec.raw, rec.max_fee, rec.priority_fee, rec.hashes = previous
            rec.sent_at, rec.sent_block = self._clock(), head
            self._save(rec)
            log_event(_log, logging.ERROR, "tx_bump_unsigned", key=rec.key, error=str(exc))
            return
        rec.bumps += 1
        self._save()  # the new hash is on disk before any node sees it
        outcome = self._broadcast(rec, head)
        if outcome not in ("ok", "nonce_used"):
            rec.raw, rec.max_fee, rec.priority_fee, rec.hashes = previous
            rec.bumps -= 1
            rec.sent_at, rec.sent_block = self._clock(), head
            self._save()
        log_event(
            _log,
            logging.WARNING,
            "tx_bumped" if outcome in ("ok", "nonce_used") else "tx_bump_refused",
            key=rec.key,
            nonce=rec.nonce,
            hash=rec.hashes[-1],
            max_fee=rec.max_fee,
            priority_fee=rec.priority_fee,
            outcome=outcome,
        )

    # ------------------------------------------------------------------ node access

    def _broadcast(self, rec: TxRecord, head: int | None = None) -> str:
        """Send ``rec.raw``: ``"ok"``, ``"nonce_used"`` or the node's refusal message."""
        try:
            self._call("eth_sendRawTransaction", self._w3.eth.send_raw_transaction, rec.raw)
        except Web3RPCError as exc:
            message = str(exc)
            low = message.lower()
            if "nonce too low" in low:
                return "nonce_used"
            known = already_known(message)
            # anvil answers an identical re-send with "replacement transaction underpriced"
            if not known and not ("underpriced" in low and self._known(rec.hashes[-1])):
                return message
        self._mark_sent(rec, head)
        return "ok"

    def _mark_sent(self, rec: TxRecord, head: int | None = None) -> None:
        if head is None:
            head = self._call("eth_blockNumber", lambda: self._w3.eth.block_number)
        rec.status = TxStatus.PENDING
        rec.sent_at = self._clock()
        rec.sent_block = head
        rec.error = None
        self._save()
        log_event(_log, logging.INFO, "tx_sent", key=rec.key, nonce=rec.nonce, hash=rec.hashes[-1])

    def _find_receipt(self, rec: TxRecord) -> Any | None:
        for h in reversed(rec.hashes):
            try:
                return self._call(
                    "eth_getTransactionReceipt", self._w3.eth.get_transaction_receipt, h
                )
            except TransactionNotFound:
                continue
        return None

    def _known(self, tx_hash: str) -> bool:
        try:
            self._call("eth_getTransactionByHash", self._w3.eth.get_transaction, tx_hash)
        except TransactionNotFound:
            return False
        return True

    def _sign_into(self, rec: TxRecord) -> None:
        """Have the account sign ``rec`` as it stands: ``rec.raw`` becomes the serialized signed
        transaction and its hash is appended to ``rec.hashes``. Raises ``SigningError``, with
        ``rec`` untouched, when the account declines, its signer fails, or what it returns is
        not this very transaction signed by this account (a plugin that re-prices or re-numbers
        a transaction would break the ledger's nonce bookkeeping)."""
        fields: dict[str, Any] = {
            "type": 2,
            "chain_id": rec.chain_id,
            "nonce": rec.nonce,
            "value": rec.value,
            "data": bytes.fromhex(rec.data.removeprefix("0x")),
            "gas_limit": rec.gas,
            "max_fee": rec.max_fee,
            "max_priority_fee": rec.priority_fee,
        }
        if rec.to is not None:
            fields["receiver"] = rec.to
        txn = self._ecosystem.create_transaction(**fields)
        try:
            signed = self._account.sign_transaction(txn)
            raw = bytes(signed.serialize_transaction()) if signed is not None else None
        except Exception as exc:  # any plugin's failure (KMS unreachable, device locked, ...)
            raise SigningError(
                f"{rec.key}: account {self.address} could not sign: {type(exc).__name__}: {exc}"
            ) from exc
        if raw is None:
            raise SigningError(f"{rec.key}: account {self.address} declined to sign")
        problem = _signed_mismatch(raw, fields, self.address)
        if problem:
            raise SigningError(f"{rec.key}: account {self.address} returned {problem}")
        rec.raw = _hex(raw)
        rec.hashes.append(_hex(keccak(raw)))

    def _base_fee(self) -> int:
        block = self._call("eth_getBlockByNumber", self._w3.eth.get_block, "latest")
        base = block.get("baseFeePerGas")
        if base is None:
            raise TxError("the chain has no EIP-1559 base fee; legacy gas pricing is not supported")
        return int(base)

    def _initial_fees(self) -> tuple[int, int]:
        cfg = self.config
        base = self._base_fee()
        max_fee = min(cfg.max_fee_cap, base * cfg.base_fee_multiplier + cfg.priority_fee)
        if max_fee < base + cfg.priority_fee:
            log_event(
                _log, logging.WARNING, "fee_capped", base_fee=base, max_fee_cap=cfg.max_fee_cap
            )
        return max_fee, min(cfg.priority_fee, max_fee)

    def _get_chain_id(self) -> int:
        if self._chain_id is None:
            self._chain_id = int(self._call("eth_chainId", lambda: self._w3.eth.chain_id))
        return self._chain_id

    def _reserve_nonce(self) -> int:
        if self._next_nonce is None:
            chain = self._call(
                "eth_getTransactionCount",
                self._w3.eth.get_transaction_count,
                self.address,
                "pending",
            )
            ours = [r.nonce + 1 for r in self._state.ledger.values() if not r.status.final]
            self._next_nonce = max([int(chain), *ours])
            log_event(_log, logging.INFO, "nonce_sync", chain=chain, next=self._next_nonce)
        nonce = self._next_nonce
        self._next_nonce += 1
        return nonce

    def _release_nonce(self, nonce: int) -> None:
        if self._next_nonce == nonce + 1:
            self._next_nonce = nonce
        else:
            self._next_nonce = None  # re-sync on the next reservation

    def _save(self, rec: TxRecord | None = None) -> None:
        """Persist after a change (of ``rec``); the JSON state file is written whole."""
        self._store.save(self._state)

    def _call(self, what: str, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(*args)`` with retries on transient errors (exponential backoff, equal jitter)."""
        cfg = self.config
        deadline = time.monotonic() + cfg.rpc_deadline
        for attempt in range(1, cfg.rpc_attempts + 1):
            try:
                return fn(*args)
            except TRANSIENT_ERRORS as exc:
                left = deadline - time.monotonic()
                if attempt == cfg.rpc_attempts or left <= 0:
                    log_event(_log, logging.ERROR, "rpc_unavailable", call=what, error=str(exc))
                    raise RpcUnavailableError(
                        f"{what}: failed {attempt} times in {cfg.rpc_deadline} s; last error: {exc}"
                    ) from exc
                ceiling = min(cfg.rpc_backoff_max, cfg.rpc_backoff * 2 ** (attempt - 1))
                delay = min(left, ceiling * (0.5 + 0.5 * self._rng.random()))
                log_event(
                    _log,
                    logging.WARNING,
                    "rpc_retry",
                    call=what,
                    attempt=attempt,
                    delay=round(delay, 3),
                    error=type(exc).__name__,
                )
                self._sleep(delay)
        raise RpcUnavailableError(f"{what}: no attempt made (rpc_attempts < 1)")
