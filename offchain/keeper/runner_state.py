"""The runner's own state file, next to the ``StateStore`` file: the account index and the round
plan in flight.

- **Account index**: every address the engine's events have named (deposits, withdrawals,
  position changes, settlements). Addresses only ever join it, so a replayed or reorged block
  range cannot corrupt it; an address with nothing left is simply healthy. The last block the
  index covers is ``KeeperState.last_block`` (saved *after* this file, so a crash in between
  only rescans a range).
- **Round plan** (write-ahead): the batches of one round, each with its idempotency key, the
  quote names it carries and its calldata, saved *before* the first transaction is signed. A
  keeper killed mid-round resumes the same plan: keys already in the ledger are not sent again,
  and no item is regrouped into a second transaction for the same timestamp.
- ``last_ts``: the data timestamp of the last round whose plan was completed (a tick at or
  before it is not posted again).

Writes are atomic (temporary file, fsync, rename, fsync of the directory), like ``StateStore``.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Batch", "RunnerState", "RunnerStore", "RoundPlan"]

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Batch:
    """One ``RiskOracle.post`` transaction of a round."""

    key: str
    names: tuple[str, ...]
    calldata: str  # 0x-hex


@dataclass(frozen=True)
class RoundPlan:
    """All batches of the round at data timestamp ``ts``, and the quotes they post
    (``{name: {"mark", "risk_array", "scale"}}``, WAD integers)."""

    ts: int
    batches: tuple[Batch, ...]
    quotes: dict[str, dict[str, Any]]

    def to_json(self) -> dict[str, Any]:
        return {
            "ts": self.ts,
            "batches": [
                {"key": b.key, "names": list(b.names), "calldata": b.calldata} for b in self.batches
            ],
            "quotes": self.quotes,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> RoundPlan:
        return cls(
            int(obj["ts"]),
            tuple(Batch(b["key"], tuple(b["names"]), b["calldata"]) for b in obj["batches"]),
            dict(obj["quotes"]),
        )


@dataclass
class RunnerState:
    accounts: set[str] = field(default_factory=set)
    plan: RoundPlan | None = None
    last_ts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {
            "version": SCHEMA_VERSION,
            "accounts": sorted(self.accounts),
            "plan": None if self.plan is None else self.plan.to_json(),
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_json(cls, obj: Any) -> RunnerState:
        if not isinstance(obj, dict) or obj.get("version") != SCHEMA_VERSION:
            raise ValueError(f"not a version {SCHEMA_VERSION} runner state")
        plan = obj.get("plan")
        return cls(
            set(obj["accounts"]),
            None if plan is None else RoundPlan.from_json(plan),
            int(obj["last_ts"]),
        )


class RunnerStore:
    """Load / atomically save one ``RunnerState`` file. A file that does not parse raises
    ``ValueError`` naming it (never reset silently: the plan guards against double posts)."""

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)

    def load(self) -> RunnerState:
        if not self.path.exists():
            return RunnerState()
        try:
            return RunnerState.from_json(json.loads(self.path.read_text()))
        except (ValueError, KeyError, TypeError) as exc:
            raise ValueError(f"{self.path}: corrupted runner state: {exc}") from None

    def save(self, state: RunnerState) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)  # a dry run never gets here
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=self.path.name, suffix=".tmp")
        try:
            with os.fdopen(fd, "w") as f:
                json.dump(state.to_json(), f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        dfd = os.open(self.path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
