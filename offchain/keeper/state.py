"""The keeper's durable state: one SQLite database per deployment, written incrementally.

``keeper-state/<chain id>-<oracle address>/keeper.sqlite`` holds, per signing account (rows keyed
by the lower-case address):

- the idempotency ledger of the transaction manager, one row per ``TxRecord`` (key -> nonce,
  hashes, signed payload, status), upserted in its own transaction whenever that record changes;
- ``done_keys``: keys of final records pruned from the ledger that must never be sent again
  (see ``StateStore.prune``);
- the last posted quote per instrument / underlying (thresholds and heartbeats);
- the last block the event index has processed, the account index, the runner's round plan in
  flight and the timestamp of the last completed round (``runner_state``).

Durability: WAL mode with ``synchronous=FULL``: every commit is on disk before ``save`` returns.
The ledger is write-ahead for transactions that leave the machine, so a commit lost to a power
cut (what ``NORMAL`` allows) could let a restarted keeper sign a second transaction for a key
whose first one was broadcast. Each write is one SQLite transaction, so a kill -9 leaves the old
or the new state. A file that is not a database, fails SQLite's integrity check, or carries
another schema version raises ``StateCorruptedError`` naming the file; the keeper never resets
its state silently.

One process per (deployment, signer): ``StateStore`` holds an exclusive ``flock`` on
``<address>.lock`` next to the database while open, so a second keeper with the same key on the
same deployment fails at once with ``StateLockedError``. Keepers with other keys may share the
file (SQLite serialises their writes).

State kept by earlier versions as JSON (``<address>.json`` and ``<address>.runner.json`` in the
same folder) is imported on the first writable open, in one transaction, and the files are
renamed ``*.migrated``.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field, fields
from enum import StrEnum
from pathlib import Path
from typing import Any

from offchain.errors import UserError

from .logfmt import log_event
from .policy import Posted, Quote
from .runner_state import RoundPlan, RunnerState, RunnerStore

__all__ = [
    "DB_NAME",
    "JSON_VERSION",
    "SCHEMA_VERSION",
    "KeeperState",
    "StateCorruptedError",
    "StateLockedError",
    "StateStore",
    "TxRecord",
    "TxStatus",
]

#: The database file in a deployment folder.
DB_NAME = "keeper.sqlite"
#: ``PRAGMA user_version`` of the database this module reads and writes.
SCHEMA_VERSION = 1
#: Version of the JSON state files it migrates.
JSON_VERSION = 1
_WAL_LIMIT = 16 * 1024 * 1024  # bytes the WAL file keeps after a checkpoint
_PAGE_SIZE = 8_192

_log = logging.getLogger(__name__)


class StateCorruptedError(UserError, RuntimeError):
    """The state exists but cannot be read as keeper state."""


class StateLockedError(UserError, RuntimeError):
    """Another process holds the state of this signer in this deployment."""


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
        return self in _FINAL


_FINAL = frozenset({TxStatus.CONFIRMED, TxStatus.REVERTED, TxStatus.FAILED, TxStatus.CONFLICT})


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
        out = {name: getattr(self, name) for name in _RECORD_FIELDS}  # asdict is 5x slower
        out["status"] = str(self.status)
        out["hashes"] = list(self.hashes)
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


_RECORD_FIELDS = tuple(f.name for f in fields(TxRecord))


@dataclass
class KeeperState:
    """Everything the transaction manager and the quote thresholds must remember."""

    posted: dict[str, Posted] = field(default_factory=dict)
    ledger: dict[str, TxRecord] = field(default_factory=dict)
    last_block: int | None = None

    def to_json(self) -> dict[str, Any]:
        """The JSON form earlier versions kept on disk (read by the migration)."""
        return {
            "version": JSON_VERSION,
            "last_block": self.last_block,
            "posted": {name: _posted_to_json(p) for name, p in self.posted.items()},
            "ledger": {key: rec.to_json() for key, rec in self.ledger.items()},
        }

    @classmethod
    def from_json(cls, obj: Any) -> KeeperState:
        if not isinstance(obj, dict):
            raise ValueError("top level is not an object")
        if obj.get("version") != JSON_VERSION:
            raise ValueError(f"schema version {obj.get('version')!r}, expected {JSON_VERSION}")
        last_block = obj.get("last_block")
        if last_block is not None and (not isinstance(last_block, int) or last_block < 0):
            raise ValueError("last_block must be null or an integer >= 0")
        posted_obj = obj.get("posted")
        ledger_obj = obj.get("ledger")
        if not isinstance(posted_obj, dict) or not isinstance(ledger_obj, dict):
            raise ValueError("'posted' and 'ledger' must be objects")
        posted = {name: _posted_from_json(name, p) for name, p in posted_obj.items()}
        ledger: dict[str, TxRecord] = {}
        for key, rec in ledger_obj.items():
            ledger[key] = TxRecord.from_json(rec)
            if ledger[key].key != key:
                raise ValueError(f"ledger entry {key!r} carries key {ledger[key].key!r}")
        return cls(posted=posted, ledger=ledger, last_block=last_block)


def _posted_to_json(p: Posted) -> dict[str, Any]:
    q = p.quote
    return {
        "mark": q.mark,
        "risk_array": list(q.risk_array),
        "scale": q.scale,
        "posted_at": p.posted_at,
    }


def _posted_from_json(name: str, p: Any) -> Posted:
    try:
        quote = Quote(
            mark=_number(p["mark"]),
            risk_array=tuple(_number(x) for x in p["risk_array"]),
            scale=None if p["scale"] is None else _number(p["scale"]),
        )
        posted_at = p["posted_at"]
    except (KeyError, TypeError) as exc:
        raise ValueError(f"posted entry {name!r}: {exc!r}") from exc
    if not isinstance(posted_at, int) or isinstance(posted_at, bool):
        raise ValueError(f"posted entry {name!r}: posted_at must be an integer")
    return Posted(quote, posted_at)


def _number(x: Any) -> float:
    if isinstance(x, bool) or not isinstance(x, int | float):
        raise TypeError(f"{x!r} is not a number")
    return x


def _dumps(obj: Any) -> str:
    # JSON text keeps WAD integers beyond 64 bits exact (SQLite integers stop at 2**63)
    return json.dumps(obj, separators=(",", ":"))


_SCHEMA = (
    """CREATE TABLE signer_state (
        signer TEXT PRIMARY KEY,       -- lower-case address
        last_block INTEGER,            -- last block the event index processed; NULL: none yet
        last_ts INTEGER NOT NULL DEFAULT 0,  -- data timestamp of the last completed round
        plan TEXT,                     -- the round plan in flight (JSON), NULL when none
        migrated_from TEXT             -- JSON files imported into this row, if any
    )""",
    """CREATE TABLE ledger (
        signer TEXT NOT NULL,
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        created_at REAL NOT NULL,
        record TEXT NOT NULL,          -- TxRecord as JSON
        PRIMARY KEY (signer, key)
    )""",
    """CREATE TABLE done_keys (
        signer TEXT NOT NULL,
        key TEXT NOT NULL,
        status TEXT NOT NULL,
        nonce INTEGER NOT NULL,
        chain_id INTEGER NOT NULL,
        mined_hash TEXT,
        block_number INTEGER,
        created_at REAL NOT NULL,
        PRIMARY KEY (signer, key)
    ) WITHOUT ROWID""",
    """CREATE TABLE posted (
        signer TEXT NOT NULL,
        name TEXT NOT NULL,
        quote TEXT NOT NULL,           -- {"mark", "risk_array", "scale", "posted_at"} as JSON
        PRIMARY KEY (signer, name)
    )""",
    """CREATE TABLE accounts (
        signer TEXT NOT NULL,
        address TEXT NOT NULL,
        PRIMARY KEY (signer, address)
    ) WITHOUT ROWID""",
)
_TABLES = frozenset({"signer_state", "ledger", "done_keys", "posted", "accounts"})

_UPSERT_RECORD = (
    "INSERT INTO ledger (signer, key, status, created_at, record) VALUES (?, ?, ?, ?, ?) "
    "ON CONFLICT (signer, key) DO UPDATE SET status = excluded.status, "
    "created_at = excluded.created_at, record = excluded.record"
)
_UPSERT_POSTED = (
    "INSERT INTO posted (signer, name, quote) VALUES (?, ?, ?) "
    "ON CONFLICT (signer, name) DO UPDATE SET quote = excluded.quote"
)


def _timed_key(key: str) -> tuple[str, int] | None:
    """``("post", ts)`` for ``post:<ts>:<k>``, ``("liq", ts)`` for ``liq:<ts>:<address>``."""
    parts = key.split(":")
    if len(parts) == 3 and parts[0] in ("post", "liq") and parts[1].isdigit():
        return parts[0], int(parts[1])
    return None


class StateStore:
    """The database of one signer in one deployment folder; holds the signer's lock while open.

    ``load`` / ``save`` read and write the ``KeeperState`` (``save`` writes what changed in
    ``posted`` and ``last_block``); ``save_record`` upserts one ledger record (the transaction
    manager calls it on every change); ``prune`` forgets old final records; ``runner_store()``
    is the runner's view on the same database. Use as a context manager, or call ``close()``.
    Thread-safe.

    ``read_only=True`` (a dry run) takes no lock and creates nothing: it reads the database if
    one exists, else the JSON files of an earlier version, else nothing; every write raises.
    """

    def __init__(
        self,
        folder: str | os.PathLike[str],
        signer: str,
        *,
        read_only: bool = False,
        synchronous: str = "FULL",
        timeout: float = 30.0,
    ) -> None:
        if synchronous not in ("FULL", "NORMAL", "EXTRA"):
            raise ValueError(f"synchronous must be FULL, NORMAL or EXTRA, not {synchronous!r}")
        self.folder = Path(folder)
        self.signer = str(signer)
        self.path = self.folder / DB_NAME
        self.read_only = read_only
        self._id = self.signer.lower()
        self._mutex = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._lock_fd: int | None = None
        self._snapshot: tuple[KeeperState, RunnerState] | None = None
        self._saved_posted: dict[str, Posted] = {}
        self._saved_last_block: int | None = None
        self._saved_accounts: set[str] = set()
        if read_only:
            self._open_read_only(timeout)
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        self._lock_fd = _flock(self.folder / f"{self._id}.lock", self._locked_message())
        try:
            self._conn = self._connect(self.path, timeout, synchronous)
            self._migrate_json()
            with self._write() as c:
                c.execute("INSERT OR IGNORE INTO signer_state (signer) VALUES (?)", (self._id,))
        except BaseException:
            self.close()
            raise

    # ------------------------------------------------------------------ opening

    def _locked_message(self) -> str:
        return (
            f"{self.path}: the state of {self.signer} is in use by another keeper process "
            f"(lock {self.folder / (self._id + '.lock')}); stop it, or use another key"
        )

    def _connect(self, path: Path | str, timeout: float, synchronous: str) -> sqlite3.Connection:
        """A connection to a database of this schema (created when the file is new)."""
        conn = sqlite3.connect(
            path, timeout=timeout, isolation_level=None, check_same_thread=False, uri=True
        )
        try:
            if not self.read_only:
                # a new file only: a ledger row is ~2 KB, one per 4 KB page would waste half
                conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")
                with _transaction(conn):
                    if _schema_version(conn) == 0 and not _tables(conn):
                        for statement in _SCHEMA:
                            conn.execute(statement)
                        conn.execute(f"PRAGMA user_version={SCHEMA_VERSION}")
            self._check(conn)  # before anything below changes a file this keeper did not write
            if not self.read_only:
                mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
                if str(mode).lower() != "wal":
                    raise StateCorruptedError(f"{self.path}: cannot use WAL mode (got {mode})")
                conn.execute(f"PRAGMA synchronous={synchronous}")
                # a big transaction (a migration, a first prune) grows the WAL file; cut it back
                conn.execute(f"PRAGMA journal_size_limit={_WAL_LIMIT}")
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StateCorruptedError(
                f"{self.path}: not a readable keeper database ({exc}); the keeper does not reset "
                "its state silently: restore the file from a backup or move it away deliberately"
            ) from exc
        except BaseException:
            conn.close()
            raise
        return conn

    def _check(self, conn: sqlite3.Connection) -> None:
        version = _schema_version(conn)
        if version != SCHEMA_VERSION:
            raise StateCorruptedError(
                f"{self.path}: schema version {version}, this keeper reads version "
                f"{SCHEMA_VERSION}; run the keeper version that wrote it, or move the file away"
            )
        missing = _TABLES - _tables(conn)
        if missing:
            raise StateCorruptedError(f"{self.path}: tables missing: {', '.join(sorted(missing))}")
        problems = [row[0] for row in conn.execute("PRAGMA quick_check")]
        if problems != ["ok"]:
            raise StateCorruptedError(
                f"{self.path}: integrity check failed: {'; '.join(problems[:3])}; restore the "
                "file from a backup or move it away deliberately"
            )

    def _open_read_only(self, timeout: float) -> None:
        """A snapshot for a dry run: nothing is locked, created or migrated."""
        state, runner = KeeperState(), RunnerState()
        legacy = self._legacy_files()
        if self.path.exists():
            # with no -wal file the database is complete and nobody is writing: read it as
            # immutable (no -wal / -shm created); else a writer is up and its files exist
            wal = Path(str(self.path) + "-wal").exists()
            uri = f"{self.path.resolve().as_uri()}?{'mode=ro' if wal else 'immutable=1'}"
            self._conn = self._connect(uri, timeout, "FULL")
            if self._signer_row() is not None:
                state, runner = self._read_state(), self._read_runner()
                legacy = {}
        if legacy:
            state, runner = self._parse_legacy(legacy)
        self._snapshot = (state, runner)

    # ------------------------------------------------------------------ migration

    def _legacy_files(self) -> dict[str, Path]:
        """The JSON state of an earlier version for this signer: ``{"state": ..., "runner":
        ...}`` (names compared without case: they used the checksummed address)."""
        if not self.folder.is_dir():
            return {}
        wanted = {f"{self._id}.json": "state", f"{self._id}.runner.json": "runner"}
        return {
            wanted[p.name.lower()]: p
            for p in self.folder.iterdir()
            if p.name.lower() in wanted and p.is_file()
        }

    def _parse_legacy(self, files: dict[str, Path]) -> tuple[KeeperState, RunnerState]:
        state, runner = KeeperState(), RunnerState()
        for kind, path in files.items():
            try:
                obj = json.loads(path.read_text(encoding="utf-8"))
                if kind == "state":
                    state = KeeperState.from_json(obj)
                else:
                    runner = RunnerState.from_json(obj)
            except (OSError, UnicodeDecodeError, ValueError, KeyError, TypeError) as exc:
                raise StateCorruptedError(
                    f"{path}: cannot migrate this JSON state ({exc}); repair the file or move it "
                    "away deliberately"
                ) from exc
            foreign = [k for k, r in state.ledger.items() if r.sender.lower() != self._id]
            if foreign:
                raise StateCorruptedError(
                    f"{path}: holds records of another account (keys {foreign[:3]})"
                )
        return state, runner

    def _migrate_json(self) -> None:
        """Import ``<address>.json`` and ``<address>.runner.json`` once, then rename them."""
        files = self._legacy_files()
        if not files:
            return
        state_file = files.get("state", self.folder / f"{self.signer}.json")
        legacy_lock = Path(str(state_file) + ".lock")  # what an earlier keeper held
        lock_fd = _flock(
            legacy_lock,
            f"{self.folder}: a keeper of an earlier version holds the JSON state of "
            f"{self.signer}; stop it before starting this one",
        )
        try:
            row = self._signer_row()
            if row is None:
                self._import_json(files)
            elif row["migrated_from"] is None:
                raise StateCorruptedError(
                    f"{self.path} already holds the state of {self.signer}, and "
                    f"{', '.join(str(p) for p in files.values())} too; the keeper does not "
                    "choose between them: move one away deliberately"
                )
            # imported (now, or by a start that stopped before renaming): never read again
            for path in files.values():
                os.replace(path, path.with_name(path.name + ".migrated"))
            legacy_lock.unlink(missing_ok=True)
            _fsync_dir(self.folder)
        finally:
            _unlock(lock_fd)

    def _import_json(self, files: dict[str, Path]) -> None:
        state, runner = self._parse_legacy(files)
        names = sorted(p.name for p in files.values())
        with self._write() as c:
            c.execute(
                "INSERT INTO signer_state (signer, migrated_from) VALUES (?, ?)",
                (self._id, _dumps(names)),
            )
            self._write_state(c, state, state.posted, ())
            for rec in state.ledger.values():
                self._write_record(c, rec)
            self._write_runner(c, runner, runner.accounts)
        log_event(
            _log,
            logging.INFO,
            "state_migrated",
            path=str(self.path),
            files=",".join(names),
            ledger=len(state.ledger),
            posted=len(state.posted),
            accounts=len(runner.accounts),
        )

    # ------------------------------------------------------------------ KeeperState

    def load(self) -> KeeperState:
        """The saved state (posted, full ledger, last block); empty for a new signer.

        Raises:
            StateCorruptedError: a row does not parse as keeper state.
        """
        if self._snapshot is not None:
            return self._snapshot[0]
        state = self._read_state()
        log_event(
            _log,
            logging.INFO,
            "state_loaded" if state.ledger or state.posted else "state_new",
            path=str(self.path),
            signer=self.signer,
            posted=len(state.posted),
            ledger=len(state.ledger),
            last_block=state.last_block,
        )
        return state

    def save(self, state: KeeperState) -> None:
        """Write the quotes of ``state.posted`` that changed since the last save, and
        ``last_block``, in one transaction. Ledger records are written by ``save_record``."""
        with self._mutex:
            changed = {n: p for n, p in state.posted.items() if self._saved_posted.get(n) != p}
            gone = self._saved_posted.keys() - state.posted.keys()
            if not changed and not gone and state.last_block == self._saved_last_block:
                return
            with self._write() as c:
                self._write_state(c, state, changed, gone)
            self._saved_posted.update(changed)
            for n in gone:
                del self._saved_posted[n]
            self._saved_last_block = state.last_block

    def save_record(self, rec: TxRecord) -> None:
        """Upsert one ledger record (its own transaction: on disk when this returns)."""
        if rec.sender.lower() != self._id:
            raise ValueError(
                f"{self.path}: record {rec.key!r} is from {rec.sender}, not {self.signer}"
            )
        with self._write() as c:
            self._write_record(c, rec)

    def done_record(self, key: str) -> TxRecord | None:
        """The compact final record of a pruned key that must never be sent again, or None."""
        if self._conn is None:
            return None
        with self._mutex:
            row = self._conn.execute(
                "SELECT status, nonce, chain_id, mined_hash, block_number, created_at "
                "FROM done_keys WHERE signer = ? AND key = ?",
                (self._id, key),
            ).fetchone()
        if row is None:
            return None
        status, nonce, chain_id, mined_hash, block_number, created_at = row
        if status not in {s.value for s in TxStatus} or not isinstance(nonce, int):
            raise StateCorruptedError(f"{self.path}: done key {key!r} has a bad row: {row}")
        return TxRecord(
            key=key,
            sender=self.signer,
            nonce=nonce,
            chain_id=chain_id,
            to=None,
            value=0,
            data="0x",
            gas=0,
            max_fee=0,
            priority_fee=0,
            raw="",
            hashes=[mined_hash] if mined_hash else [],
            status=TxStatus(status),
            created_at=created_at,
            mined_hash=mined_hash,
            block_number=block_number,
        )

    def prune(self, state: KeeperState, before: float) -> int:
        """Forget final ledger records created before ``before`` (unix seconds); return how many.

        Records not final are always kept, and so is every key a restarted runner could still
        send: a post key of a round not completed yet (``post:<ts>:<k>`` with ``ts`` above the
        last completed round, or in the plan in flight). Which keys are forgotten entirely:

        - ``post:<ts>:<k>`` of completed rounds: the runner plans a new round only for a
          timestamp above ``last_ts``, so the key cannot come back;
        - ``liq:<ts>:<address>``: a liquidation is decided again from the chain; the Liquidator
          refuses an account that is not below MM (the send is then not made), and one that is
          below MM again must be liquidated again;
        - ``failed`` records: the node refused them, so they would be sent again anyway.

        Every other key (``register:<address>``, ``settle_expired:<id>``, ``settle:<id>:<address>``
        and any key whose kind is not known here) carries no round and could be asked for again
        (an account replayed from events, a settlement read from a lagging node): it moves to
        ``done_keys`` as a compact final record (about 100 bytes instead of the full payload),
        which ``TxManager.send`` consults, so it is never sent a second time.
        """
        with self._mutex:
            row = self._signer_row()
            last_ts = 0 if row is None else int(row["last_ts"])
            plan = self._plan(row)
            in_flight = {b.key for b in plan.batches} if plan is not None else set()
            drop: list[TxRecord] = []
            keep_done: list[TxRecord] = []
            for key, rec in state.ledger.items():
                if not rec.status.final or rec.created_at >= before or key in in_flight:
                    continue
                timed = _timed_key(key)
                if timed is not None and timed[0] == "post":
                    if timed[1] <= last_ts:
                        drop.append(rec)
                elif timed is not None or rec.status == TxStatus.FAILED:
                    drop.append(rec)
                else:
                    keep_done.append(rec)
            if not drop and not keep_done:
                return 0
            with self._write() as c:
                c.executemany(
                    "DELETE FROM ledger WHERE signer = ? AND key = ?",
                    [(self._id, r.key) for r in (*drop, *keep_done)],
                )
                c.executemany(
                    "INSERT OR REPLACE INTO done_keys (signer, key, status, nonce, chain_id, "
                    "mined_hash, block_number, created_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [
                        (
                            self._id,
                            r.key,
                            str(r.status),
                            r.nonce,
                            r.chain_id,
                            r.mined_hash,
                            r.block_number,
                            r.created_at,
                        )
                        for r in keep_done
                    ],
                )
            for r in (*drop, *keep_done):
                del state.ledger[r.key]
        n = len(drop) + len(keep_done)
        log_event(_log, logging.INFO, "ledger_pruned", forgotten=len(drop), done=len(keep_done))
        return n

    def counts(self) -> dict[str, int]:
        """Rows of this signer per table (operators' and tests' view of the database size)."""
        if self._conn is None:
            return {}
        with self._mutex:
            return {
                table: self._conn.execute(
                    f"SELECT COUNT(*) FROM {table} WHERE signer = ?", (self._id,)
                ).fetchone()[0]
                for table in ("ledger", "done_keys", "posted", "accounts")
            }

    # ------------------------------------------------------------------ RunnerState

    def runner_store(self) -> RunnerStore:
        """The runner's view (account index, round plan, ``last_ts``) on this database."""
        return RunnerStore(self)

    def load_runner(self) -> RunnerState:
        if self._snapshot is not None:
            return self._snapshot[1]
        return self._read_runner()

    def save_runner(self, runner: RunnerState) -> None:
        """Insert the accounts new since the last save (the index only grows, so a save
        without new ones skips the set difference); write the plan and ``last_ts``."""
        with self._mutex:
            grew = len(runner.accounts) != len(self._saved_accounts)
            new = runner.accounts - self._saved_accounts if grew else set()
            with self._write() as c:
                self._write_runner(c, runner, new)
            self._saved_accounts |= new

    # ------------------------------------------------------------------ rows

    def _signer_row(self) -> sqlite3.Row | None:
        assert self._conn is not None
        with self._mutex:
            cur = self._conn.cursor()
            cur.row_factory = sqlite3.Row
            return cur.execute(
                "SELECT last_block, last_ts, plan, migrated_from FROM signer_state "
                "WHERE signer = ?",
                (self._id,),
            ).fetchone()

    def _plan(self, row: sqlite3.Row | None) -> RoundPlan | None:
        if row is None or row["plan"] is None:
            return None
        try:
            return RoundPlan.from_json(json.loads(row["plan"]))
        except (ValueError, KeyError, TypeError) as exc:
            raise StateCorruptedError(f"{self.path}: bad round plan: {exc!r}") from exc

    def _read_state(self) -> KeeperState:
        assert self._conn is not None
        with self._mutex:
            row = self._signer_row()
            state = KeeperState(last_block=None if row is None else row["last_block"])
            try:
                for name, text in self._conn.execute(
                    "SELECT name, quote FROM posted WHERE signer = ?", (self._id,)
                ):
                    state.posted[name] = _posted_from_json(name, json.loads(text))
                for key, text in self._conn.execute(
                    "SELECT key, record FROM ledger WHERE signer = ?", (self._id,)
                ):
                    rec = TxRecord.from_json(json.loads(text))
                    if rec.key != key:
                        raise ValueError(f"ledger entry {key!r} carries key {rec.key!r}")
                    state.ledger[key] = rec
            except ValueError as exc:  # json.JSONDecodeError is a ValueError
                raise StateCorruptedError(f"{self.path}: {exc}") from exc
            self._saved_posted = dict(state.posted)
            self._saved_last_block = state.last_block
            return state

    def _read_runner(self) -> RunnerState:
        assert self._conn is not None
        with self._mutex:
            row = self._signer_row()
            accounts = {
                a
                for (a,) in self._conn.execute(
                    "SELECT address FROM accounts WHERE signer = ?", (self._id,)
                )
            }
            plan = self._plan(row)
            self._saved_accounts = set(accounts)
            return RunnerState(accounts, plan, 0 if row is None else int(row["last_ts"]))

    def _write_state(
        self, c: sqlite3.Connection, state: KeeperState, changed: dict[str, Posted], gone: Any
    ) -> None:
        c.executemany(
            _UPSERT_POSTED,
            [(self._id, n, _dumps(_posted_to_json(p))) for n, p in changed.items()],
        )
        c.executemany(
            "DELETE FROM posted WHERE signer = ? AND name = ?", [(self._id, n) for n in gone]
        )
        c.execute(
            "UPDATE signer_state SET last_block = ? WHERE signer = ?", (state.last_block, self._id)
        )

    def _write_record(self, c: sqlite3.Connection, rec: TxRecord) -> None:
        c.execute(
            _UPSERT_RECORD,
            (self._id, rec.key, str(rec.status), rec.created_at, _dumps(rec.to_json())),
        )

    def _write_runner(self, c: sqlite3.Connection, runner: RunnerState, new: Any) -> None:
        c.executemany(
            "INSERT OR IGNORE INTO accounts (signer, address) VALUES (?, ?)",
            [(self._id, a) for a in sorted(new)],
        )
        plan = None if runner.plan is None else _dumps(runner.plan.to_json())
        c.execute(
            "UPDATE signer_state SET plan = ?, last_ts = ? WHERE signer = ?",
            (plan, int(runner.last_ts), self._id),
        )

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``: the write lock is taken up front)."""
        if self.read_only:
            raise RuntimeError(f"{self.path}: opened read-only (a dry run writes nothing)")
        if self._conn is None:
            raise RuntimeError(f"{self.path}: store is closed")
        with self._mutex, _transaction(self._conn):
            yield self._conn

    # ------------------------------------------------------------------ closing

    def close(self) -> None:
        with self._mutex:
            if self._conn is not None:
                self._conn.close()
                self._conn = None
            if self._lock_fd is not None:
                _unlock(self._lock_fd)
                self._lock_fd = None

    def __enter__(self) -> StateStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def _transaction(conn: sqlite3.Connection) -> Iterator[None]:
    conn.execute("BEGIN IMMEDIATE")
    try:
        yield
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")


def _schema_version(conn: sqlite3.Connection) -> int:
    return int(conn.execute("PRAGMA user_version").fetchone()[0])


def _tables(conn: sqlite3.Connection) -> set[str]:
    return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


def _flock(path: Path, message: str) -> int:
    """An exclusive, non-blocking ``flock`` on ``path`` (created); ``StateLockedError`` if held."""
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise StateLockedError(message) from None
    return fd


def _unlock(fd: int) -> None:
    fcntl.flock(fd, fcntl.LOCK_UN)
    os.close(fd)


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
