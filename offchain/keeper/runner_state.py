"""What the runner remembers next to the transaction ledger, in the same database
(``state.StateStore``, table by table):

- **Account index** (``accounts``): every address the engine's events have named (deposits,
  withdrawals, position changes, settlements). Addresses only ever join it, one row each as they
  are seen, so a replayed or reorged block range cannot corrupt it; an address with nothing left
  is simply healthy. The last block the index covers is ``KeeperState.last_block`` (saved
  *after* the accounts, so a crash in between only rescans a range).
- **Round plan** (write-ahead): the batches of one round, each with its idempotency key, the
  quote names it carries and its calldata, saved *before* the first transaction is signed. A
  keeper killed mid-round resumes the same plan: keys already in the ledger are not sent again,
  and no item is regrouped into a second transaction for the same timestamp.
- ``last_ts``: the data timestamp of the last round whose plan was completed (a tick at or
  before it is not posted again).

Each save is one SQLite transaction (new accounts, plan and ``last_ts`` together).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

__all__ = ["Batch", "RunnerState", "RunnerStore", "RoundPlan"]

JSON_VERSION = 1  # of the runner files earlier versions kept (read by the migration)


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
            "version": JSON_VERSION,
            "accounts": sorted(self.accounts),
            "plan": None if self.plan is None else self.plan.to_json(),
            "last_ts": self.last_ts,
        }

    @classmethod
    def from_json(cls, obj: Any) -> RunnerState:
        if not isinstance(obj, dict) or obj.get("version") != JSON_VERSION:
            raise ValueError(f"not a version {JSON_VERSION} runner state")
        accounts = obj["accounts"]
        if not isinstance(accounts, list) or not all(isinstance(a, str) for a in accounts):
            raise ValueError("accounts must be a list of addresses")
        plan = obj.get("plan")
        return cls(
            set(accounts),
            None if plan is None else RoundPlan.from_json(plan),
            int(obj["last_ts"]),
        )


class RunnerStore:
    """The runner's view on a ``StateStore``: ``load`` and ``save`` a ``RunnerState`` (``save``
    inserts only the accounts not saved yet). Obtained with ``StateStore.runner_store()``."""

    def __init__(self, db: Any) -> None:
        self.db = db

    @property
    def path(self) -> Path:
        return self.db.path

    def load(self) -> RunnerState:
        return self.db.load_runner()

    def save(self, state: RunnerState) -> None:
        self.db.save_runner(state)
