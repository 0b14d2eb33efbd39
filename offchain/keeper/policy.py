"""The keeper's decisions, as plain functions: what to post, how to batch it, whom to liquidate,
what to settle. No I/O here; the runner feeds these functions and acts on their answers.

Worked example (``select_updates``): BTC mark posted at 60_000 an hour ago, now 60_400 with a
0.5% threshold: |60_400 / 60_000 - 1| = 0.67% > 0.5%, so BTC is posted with reason ``moved``.
A risk-array entry moving from -1_200 to -1_500 on a scale of 60_000 is a change of 0.5% of the
scale, which is not beyond a 0.5% threshold, so it alone does not trigger a post.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar

from offchain.margin import AccountInt
from offchain.sdk import ChainMarket, InstrumentMeta

__all__ = [
    "Posted",
    "Quote",
    "Reason",
    "Update",
    "batch_by_gas",
    "choose_liquidations",
    "due_settlements",
    "health_by_account",
    "liquidation_targets",
    "select_updates",
    "settlements_due",
    "settlements_to_trigger",
    "spots_for_settlement",
]

T = TypeVar("T")


@dataclass(frozen=True)
class Quote:
    """What the keeper would post for one instrument or underlying.

    ``mark`` and ``risk_array`` in any consistent unit (floats, or WAD integers). ``scale`` is the
    size against which risk-array changes are measured (e.g. spot times contract size); ``None``
    means ``abs(mark)``.
    """

    mark: float
    risk_array: tuple[float, ...] = ()
    scale: float | None = None

    def risk_scale(self) -> float:
        return abs(self.mark) if self.scale is None else abs(self.scale)


@dataclass(frozen=True)
class Posted:
    """A quote as last posted on-chain, and when (unix seconds of the posted data)."""

    quote: Quote
    posted_at: int


class Reason(StrEnum):
    NEW = "new"
    MOVED = "moved"
    RISK = "risk"
    SHAPE = "shape"
    HEARTBEAT = "heartbeat"


@dataclass(frozen=True)
class Update:
    name: str
    reason: Reason


def _rel_change(old: float, new: float) -> float:
    if old == new:
        return 0.0
    if old == 0:
        return math.inf
    return abs(new - old) / abs(old)


def _update_reason(
    prev: Posted, cur: Quote, now: int, threshold: float, heartbeat: int, margin: int
) -> Reason | None:
    old = prev.quote
    if _rel_change(old.mark, cur.mark) > threshold:
        return Reason.MOVED
    if len(old.risk_array) != len(cur.risk_array):
        return Reason.SHAPE
    scale = cur.risk_scale()
    for a, b in zip(old.risk_array, cur.risk_array, strict=True):
        if a != b and (scale == 0 or abs(b - a) / scale > threshold):
            return Reason.RISK
    if now - prev.posted_at >= heartbeat - margin:
        return Reason.HEARTBEAT
    return None


def select_updates(
    previous: Mapping[str, Posted],
    current: Mapping[str, Quote],
    now: int,
    threshold: float,
    heartbeat: int,
    margin: int = 0,
) -> list[Update]:
    """Which of ``current`` to post, with the first reason that applies, in ``current``'s order.

    Posted when: never posted before (``new``); the mark moved by more than ``threshold``
    relative to the posted mark (``moved``); the risk array changed length (``shape``); any
    risk-array entry moved by more than ``threshold`` times the quote's scale (``risk``); or the
    posted value is at least ``heartbeat - margin`` seconds old (``heartbeat``), so that a post
    lands before the on-chain ``max_age`` expires. Names in ``previous`` but not in ``current``
    (delisted) are ignored.

    Raises:
        ValueError: on a negative threshold or margin, or a margin not below the heartbeat.
    """
    if threshold < 0 or margin < 0 or heartbeat <= margin:
        raise ValueError(
            f"need threshold >= 0 and 0 <= margin < heartbeat, got {threshold}, {margin}, "
            f"{heartbeat}"
        )
    out: list[Update] = []
    for name, quote in current.items():
        prev = previous.get(name)
        reason = (
            Reason.NEW
            if prev is None
            else _update_reason(prev, quote, now, threshold, heartbeat, margin)
        )
        if reason is not None:
            out.append(Update(name, reason))
    return out


def batch_by_gas(
    items: Sequence[T],
    gas_per_item: int | Callable[[T], int],
    base_gas: int,
    block_gas_limit: int,
    fraction: float,
) -> list[list[T]]:
    """Split ``items`` (order kept) into batches whose gas fits ``fraction`` of a block.

    A batch costs ``base_gas + sum(gas of its items)``; the budget is
    ``floor(block_gas_limit * fraction)``. Greedy: each batch is filled until the next item does
    not fit. Example: 10 items of 50_000 gas, base 30_000, limit 1_000_000, fraction 0.5 ->
    budget 500_000 -> batches of 9 and 1.

    Raises:
        ValueError: on a fraction outside (0, 1], or an item that cannot fit even alone.
    """
    if not 0 < fraction <= 1:
        raise ValueError(f"fraction must be in (0, 1], got {fraction}")
    budget = math.floor(block_gas_limit * fraction)
    cost = gas_per_item if callable(gas_per_item) else (lambda _item: gas_per_item)
    batches: list[list[T]] = []
    batch: list[T] = []
    used = base_gas
    for item in items:
        gas = cost(item)
        if gas < 0:
            raise ValueError(f"negative gas {gas} for item {item!r}")
        if base_gas + gas > budget:
            raise ValueError(
                f"item {item!r} needs {base_gas + gas} gas with the base, over the batch budget "
                f"{budget}"
            )
        if batch and used + gas > budget:
            batches.append(batch)
            batch, used = [], base_gas
        batch.append(item)
        used += gas
    if batch:
        batches.append(batch)
    return batches


def choose_liquidations(
    health_by_account: Mapping[str, int], already_pending: Collection[str]
) -> list[str]:
    """Accounts with health < 0 (equity - MM, signed WAD), most negative first.

    Accounts with a liquidation already pending are skipped, so a slow transaction is not
    doubled. Ties are broken by address for a deterministic order.
    """
    pending = set(already_pending)
    under = [(h, a) for a, h in health_by_account.items() if h < 0 and a not in pending]
    under.sort()
    return [a for _, a in under]


def due_settlements(
    instruments: Mapping[str, int] | Iterable[tuple[str, int]],
    now: int,
    settled: Collection[str],
) -> list[str]:
    """Instruments whose expiry (unix seconds) is at or before ``now`` and not yet settled,
    earliest expiry first (then by name)."""
    pairs = instruments.items() if isinstance(instruments, Mapping) else instruments
    done = set(settled)
    due = sorted((expiry, name) for name, expiry in pairs if expiry <= now and name not in done)
    return [name for _, name in due]


def liquidation_targets(
    below_mm: Sequence[str], own_account: str | None, not_accounts: Collection[str] = ()
) -> list[str]:
    """The accounts below MM the keeper liquidates, in the order given (worst first): all but
    its own margin account, which is the one that takes the positions, and the system's own
    contracts (``not_accounts``: the Liquidator holds the insurance fund, whose cash is negative
    while a socialised loss is being charged; the Liquidator refuses it as an account)."""
    skip = {a.lower() for a in not_accounts}
    return [a for a in below_mm if a != own_account and a.lower() not in skip]


def health_by_account(
    market: ChainMarket, accounts: Mapping[str, AccountInt]
) -> dict[str, tuple[int, int, int]]:
    """``{address: (equity, IM, MM)}`` with the integer reference, for every account that can be
    below MM: one holding positions, or one owing cash (settled positions folded in), which
    collateral may or may not cover. An account with neither has MM 0 and equity >= 0.

    This is the reference the round's sweep (``sweep.sweep_health``) equals: the sweep runs the
    same integer model only on the accounts its float pass cannot decide.

    Example: a put writer settled in the money, cash -36,166 against 30 WETH, no positions:
    at ETH 1,100 (20% haircut) equity is -36,166 + 30 x 1,100 x 0.8 = -9,766 < MM = 0.
    """
    out = {}
    for addr, acct in accounts.items():
        if not acct.positions and acct.cash >= 0:
            continue
        st = market.account_margin(acct)
        out[addr] = (st.equity, st.initial_margin, st.maintenance_margin)
    return out


def settlements_to_trigger(
    instruments: Sequence[InstrumentMeta],
    names: Mapping[int, str],
    settled: Collection[int],
    now: int,
    spot_times: Mapping[int, int],
) -> list[InstrumentMeta]:
    """Expired instruments not settled yet whose underlying's latest stored spot
    (``spot_times``: underlying id -> its timestamp) is after their expiry, earliest expiry first
    (``due_settlements``). ``RiskOracle.settle_expired`` values each at its payoff at the TWAP of
    the spot before expiry, and needs that later spot: no post can then land in the window."""
    by_name = {names[m.id]: m for m in instruments}
    due = due_settlements(
        {name: m.expiry for name, m in by_name.items()},
        now,
        {names[i] for i in settled if i in names},
    )
    return [
        by_name[name]
        for name in due
        if spot_times.get(by_name[name].underlying, 0) > by_name[name].expiry
    ]


def spots_for_settlement(
    instruments: Sequence[InstrumentMeta],
    settled: Collection[int],
    posted: Mapping[str, Posted],
    ts: int,
    underlying_names: Mapping[int, str],
) -> set[str]:
    """Underlying items (``U:<name>``) to post at ``ts`` whether or not they moved: each has an
    instrument expired before ``ts`` and not settled whose spot was last posted at or before that
    expiry, so ``settle_expired`` still waits for a spot after it."""
    out = set()
    done = set(settled)
    for m in instruments:
        if m.id in done or m.expiry >= ts or m.underlying not in underlying_names:
            continue
        key = f"U:{underlying_names[m.underlying]}"
        last = posted.get(key)
        if last is None or last.posted_at <= m.expiry:
            out.add(key)
    return out


def settlements_due(
    holdings: Mapping[str, Mapping[int, int]], settled: Collection[int], limit: int
) -> list[tuple[str, int]]:
    """``(account, instrument)`` per ``settle(account)`` call to send: among the first ``limit``
    (account, settled instrument) pairs by address then id, one per account (one call settles
    all of an account's expired positions)."""
    done = set(settled)
    pairs = [(a, j) for a in sorted(holdings) for j in sorted(holdings[a]) if j in done]
    out: list[tuple[str, int]] = []
    seen: set[str] = set()
    for account, instrument in pairs[:limit]:
        if account not in seen:
            seen.add(account)
            out.append((account, instrument))
    return out
