"""The keeper's state on disk: one JSON file, replaced atomically, never reset silently.

Contents: the last posted quote per instrument / underlying (for thresholds and heartbeats), the
idempotency ledger of the transaction manager (key -> nonce, hashes, status), and the last block
the event index has processed.

Durability: ``save`` writes a temporary file in the same directory, fsyncs it, renames it over the
state file (atomic on POSIX) and fsyncs the directory, so after a crash the file holds either the
old or the new state, never a torn one. A file that does not parse or does not match the schema
raises ``StateCorruptedError`` naming the file and the problem; the keeper then stops rather than
forget what it has already sent.

One process per state file: ``StateStore`` holds an exclusive ``flock`` on ``<file>.lock`` while
open, so a second keeper pointed at the same file fails at once with ``StateLockedError``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
from dataclasses import asdict, dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

from .logfmt import log_event
from .policy import Posted, Quote

__all__ = [
    "SCHEMA_VERSION",
    "KeeperState",
    "StateCorruptedError",
    "StateLockedError",
    "StateStore",
    "TxRecord",
    "TxStatus",
]

SCHEMA_VERSION = 1

_log = logging.getLogger(__name__)


class StateCorruptedError(RuntimeError):
    """The state file exists but cannot be read as keeper state."""


class StateLockedError(RuntimeError):
    """Another process holds the state file."""


class TxStatus(StrEnum):
    SIGNED = "signed"  # persisted, not yet accepted by a node
    PENDING = "pending"  # accepted by a node, not mined
    MINED = "mined"  # in a block, fewer than `confirmations` deep
    CONFIRMED = "confirmed"  # final, receipt status 1
    REVERTED = "reverted"  # final, receipt status 0 (the nonce is used)
    FAILED = "failed"  # rejected by the node, never entered a pool (nonce released)
    CONFLICT = "conflict"  # the nonce was used by a transaction that is not ours

    @property
    def final(self) -> bool:
        return self in (TxStatus.CONFIRMED, TxStatus.REVERTED, TxStatus.FAILED, TxStatus.CONFLICT)


@dataclass
class TxRecord:
    """One logical action (idempotency key) and every transaction sent for it (same nonce).

    ``raw`` is the latest signed payload, kept so a dropped transaction can be re-sent as is;
    ``hashes`` lists every signed version (original and fee bumps), oldest first.
    """

    key: str
    sender: str
    nonce: int
    chain_id: int
    to: str | None
    value: int
    data: str
    gas: int
    max_fee: int
    priority_fee: int
    raw: str
    hashes: list[str]
    status: TxStatus
    created_at: float
    sent_at: float | None = None
    sent_block: int | None = None
    bumps: int = 0
    mined_hash: str | None = None
    block_number: int | None = None
    block_hash: str | None = None
    error: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["status"] = str(self.status)
        return out

    @classmethod
    def from_json(cls, obj: Any) -> TxRecord:
        if not isinstance(obj, dict):
            raise ValueError("ledger entry is not an object")
        try:
            rec = cls(**obj)
            rec.status = TxStatus(rec.status)
        except (TypeError, ValueError) as exc:
            raise ValueError(f"bad ledger entry: {exc}") from exc
        for name in ("nonce", "chain_id", "value", "gas", "max_fee", "priority_fee", "bumps"):
            v = getattr(rec, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise ValueError(f"ledger entry {rec.key!r}: {name} must be an integer >= 0")
        if not isinstance(rec.hashes, list) or not all(isinstance(h, str) for h in rec.hashes):
            raise ValueError(f"ledger entry {rec.key!r}: hashes must be a list of strings")
        if not rec.hashes:
            raise ValueError(f"ledger entry {rec.key!r}: no transaction hash")
        return rec


@dataclass
class KeeperState:
    """Everything the keeper must remember across restarts."""

    posted: dict[str, Posted] = field(default_factory=dict)
    ledger: dict[str, TxRecord] = field(default_factory=dict)
    last_block: int | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "last_block": self.last_block,
            "posted": {
                name: {
                    "mark": p.quote.mark,
                    "risk_array": list(p.quote.risk_array),
                    "scale": p.quote.scale,
                    "posted_at": p.posted_at,
                }
                for name, p in self.posted.items()
            },
            "ledger": {key: rec.to_json() for key, rec in self.ledger.items()},
        }

    @classmethod
    def from_json(cls, obj: Any) -> KeeperState:
        if not isinstance(obj, dict):
            raise ValueError("top level is not an object")
        if obj.get("version") != SCHEMA_VERSION:
            raise ValueError(f"schema version {obj.get('version')!r}, expected {SCHEMA_VERSION}")
        last_block = obj.get("last_block")
        if last_block is not None and (not isinstance(last_block, int) or last_block < 0):
            raise ValueError("last_block must be null or an integer >= 0")
        posted_obj = obj.get("posted")
        ledger_obj = obj.get("ledger")
        if not isinstance(posted_obj, dict) or not isinstance(ledger_obj, dict):
            raise ValueError("'posted' and 'ledger' must be objects")
        posted: dict[str, Posted] = {}
        for name, p in posted_obj.items():
            try:
                quote = Quote(
                    mark=_number(p["mark"]),
                    risk_array=tuple(_number(x) for x in p["risk_array"]),
                    scale=None if p["scale"] is None else _number(p["scale"]),
                )
                posted_at = p["posted_at"]
            except (KeyError, TypeError) as exc:
                raise ValueError(f"posted entry {name!r}: {exc!r}") from exc
            if not isinstance(posted_at, int):
                raise ValueError(f"posted entry {name!r}: posted_at must be an integer")
            posted[name] = Posted(quote, posted_at)
        ledger: dict[str, TxRecord] = {}
        for key, rec in ledger_obj.items():
            ledger[key] = TxRecord.from_json(rec)
            if ledger[key].key != key:
                raise ValueError(f"ledger entry {key!r} carries key {ledger[key].key!r}")
        return cls(posted=posted, ledger=ledger, last_block=last_block)


def _number(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"{x!r} is not a number")
    return x


class StateStore:
    """Load and atomically save one ``KeeperState`` file; holds the file's lock while open.

    Use as a context manager, or call ``close()``. ``save`` is thread-safe.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd: int | None = os.open(str(self.path) + ".lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            self._lock_fd = None
            raise StateLockedError(
                f"{self.path} is in use by another keeper process (lock {self.path}.lock)"
            ) from None

    def load(self) -> KeeperState:
        """The saved state, or an empty one when the file does not exist yet.

        Raises:
            StateCorruptedError: the file is not valid JSON or not a valid keeper state.
        """
        try:
            text = self.path.read_text(encoding="utf-8")
        except FileNotFoundError:
            log_event(_log, logging.INFO, "state_new", path=str(self.path))
            return KeeperState()
        except (OSError, UnicodeDecodeError) as exc:
            raise StateCorruptedError(f"{self.path}: cannot read: {exc}") from exc
        try:
            obj = json.loads(text)
        except json.JSONDecodeError as exc:
            raise StateCorruptedError(
                f"{self.path}: not valid JSON ({exc}); the keeper does not reset its state "
                "silently: repair the file or move it away deliberately"
            ) from exc
        try:
            state = KeeperState.from_json(obj)
        except ValueError as exc:
            raise StateCorruptedError(f"{self.path}: {exc}") from exc
        log_event(
            _log,
            logging.INFO,
            "state_loaded",
            path=str(self.path),
            posted=len(state.posted),
            ledger=len(state.ledger),
            last_block=state.last_block,
        )
        return state

    def save(self, state: KeeperState) -> None:
        """Write ``state`` atomically (temp file, fsync, rename, fsync of the directory)."""
        if self._lock_fd is None:
            raise RuntimeError(f"{self.path}: store is closed")
        text = json.dumps(state.to_json(), sort_keys=True, indent=1)
        with self._lock:
            tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
            with open(tmp, "w", encoding="utf-8") as f:
                f.write(text)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            dir_fd = os.open(self.path.parent, os.O_RDONLY)
            try:
                os.fsync(dir_fd)
            finally:
                os.close(dir_fd)

    def close(self) -> None:
        if self._lock_fd is not None:
            fcntl.flock(self._lock_fd, fcntl.LOCK_UN)
            os.close(self._lock_fd)
            self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
