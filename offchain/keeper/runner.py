"""The keeper loop (docs/design.md §8): plain decision functions, ``KeeperRunner`` a thin adapter.

One round for a tick of market data:

1. ``compute_quotes``: marks and SPAN risk arrays of every live instrument (vectorised Black-76
   over the scenario grid, ``offchain.risk_arrays``) with the PSR of ``offchain.calibration``,
   as WAD integers ready for ``RiskOracle.post``; futures carry only their mark because the
   oracle computes their arrays itself (``docs/fixed-point.md`` §3).
2. ``plan_round``: ``policy.select_updates`` picks what moved beyond the threshold or nears its
   heartbeat (an underlying is posted with any of its instruments, so option arrays are checked
   against the spot they were computed from); ``policy.batch_by_gas`` splits the items into
   gas-bounded batches, then into the oracle's per-call limits.
3. The plan is written ahead (``book.BookStore``), then each batch is sent through ``TxManager``
   with the key ``post:<ts>:<k>`` and awaited; confirmed names become ``state.posted``.
4. The account index is extended from the engine's events since ``state.last_block``; changed
   accounts are re-read; every account's health is computed off-chain with the integer
   reference (``ChainMarket.margin``), and those below MM are reported (and liquidated once the
   chain has a liquidation entry point).
5. Expired instruments get a settlement price (``policy.due_settlements``) and every account
   holding them is settled.

Dry-run: the same decisions, logged, nothing signed or saved.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from offchain.calibration import CalibrationParams, psr_series
from offchain.chain import ChainMarket, InstrumentMeta, OptionPost
from offchain.data import load_asset
from offchain.fixed_point import WAD, to_wad
from offchain.keeper.book import Batch, BookState, BookStore, RoundPlan
from offchain.keeper.logfmt import log_event
from offchain.keeper.policy import (
    Posted,
    Quote,
    batch_by_gas,
    choose_liquidations,
    due_settlements,
    select_updates,
)
from offchain.keeper.sources import Tick
from offchain.keeper.tx import TRANSIENT_ERRORS, TxError
from offchain.margin import AccountInt, Kind
from offchain.risk_arrays import Instruments, MarketState, VolSurface, marks, risk_arrays
from offchain.scenarios import ScenarioGrid

__all__ = [
    "CalibratedPsr",
    "Item",
    "KeeperConfig",
    "KeeperRunner",
    "RoundReport",
    "ShiftedSource",
    "UnderlyingInfo",
    "compute_quotes",
    "health_by_account",
    "item_gas",
    "plan_round",
    "settlement_price",
]

_log = logging.getLogger(__name__)

MAX_POST_UNDERLYINGS = 16
MAX_POST_INSTRUMENTS = 64
MAX_POST_ASSETS = 8
MIN_TIME_TO_EXPIRY = 60  # seconds; closer to expiry an instrument is not repriced any more


@dataclass(frozen=True)
class KeeperConfig:
    """Knobs of the keeper (defaults for a public network; the demo shortens nothing but the
    heartbeat, whose clock is the replayed one)."""

    threshold: float = 0.002  # relative move that triggers a post
    heartbeat: int = 600  # seconds; must stay below the oracle's max_age
    heartbeat_margin: int = 60
    block_gas_limit: int = 30_000_000
    gas_fraction: float = 0.5  # share of a block one batch may take
    base_gas: int = 60_000  # per post transaction
    vol_default: float = 0.8  # annualised, when the tick has no vol for an underlying
    vol_floor: float = 0.2
    skew: float = -0.1  # d(vol) / d ln(K/F): puts richer than calls
    wait_timeout: float = 120.0  # seconds to wait for a transaction to be final
    settle_batch: int = 50  # settle() calls per round at most


@dataclass(frozen=True)
class UnderlyingInfo:
    """What the keeper knows of an underlying: names, grid, PSR bounds, collateral it prices."""

    name: str
    id: int
    grid: ScenarioGrid
    psr_min: float
    psr_max: float
    assets: tuple[str, ...] = ()  # token addresses whose USD price is this spot


@dataclass(frozen=True)
class Item:
    """One element of a post: ``kind`` is "underlying", "asset" or "instrument"; ``arg`` the
    tuple ``RiskOracle.post`` takes for it, an instrument's as ``(id, mark, e, words)`` which
    ``codec.pack_post`` turns into the contract's packed words (JSON-friendly ints and strings)."""

    name: str
    kind: str
    underlying: int
    arg: tuple


def item_gas(item: Item) -> int:
    """Gas budgeted for one item inside a post. Measured in the demo (35-scenario grid): a
    first post of 19 items (2 spots, 2 prices, 15 instruments) costs 1.31M gas, about 68k an
    item, since it writes fresh slots; a repeat post of the same 19 costs 0.74M, about 37k an
    item. The budget uses the first-post figures, so a batch never outgrows its share.
    """
    if item.kind == "instrument":
        return 75_000 if item.arg[3] else 70_000
    return 30_000


# --------------------------------------------------------------------------- PSR and time


class CalibratedPsr:
    """PSR per underlying from ``offchain.calibration.psr_series`` on the history in ``data/``:
    the PSR in force is the one calibrated at the last close before the tick (no look-ahead);
    ticks after the history use its last value. ``time_offset`` is subtracted from tick
    timestamps first (the demo replays 2020 on a later chain clock)."""

    def __init__(
        self,
        underlyings: Sequence[str],
        params: CalibrationParams | None = None,
        time_offset: int = 0,
    ) -> None:
        params = params or CalibrationParams()
        self.time_offset = time_offset
        self._series: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        for u in underlyings:
            prices = load_asset(u)
            ps = psr_series(prices.close, params)
            days = np.array(
                [np.datetime64(str(d), "s").astype(np.int64) for d in prices.dates],
                dtype=np.int64,
            )
            ok = np.isfinite(ps.psr)
            # a close of day d is known at the end of d
            self._series[u] = (days[ok] + 86_400, ps.psr[ok])

    def __call__(self, underlying: str, ts: int) -> float:
        known, psr = self._series[underlying]
        i = int(np.searchsorted(known, ts - self.time_offset, side="right")) - 1
        return float(psr[max(i, 0)])


class ShiftedSource:
    """A market data source whose tick timestamps are moved by ``offset`` seconds (replaying
    history on a chain whose clock is later). ``first_ts`` / ``last_ts`` track what passed."""

    def __init__(self, source: Any, offset: int) -> None:
        self.source = source
        self.offset = offset

    def next_tick(self) -> Tick | None:
        t = self.source.next_tick()
        if t is None:
            return None
        return Tick(t.timestamp + self.offset, t.spots, t.realised_vol, t.implied_vol)


# --------------------------------------------------------------------------- decisions


def compute_quotes(
    ts: int,
    spots: Mapping[str, float],
    vols: Mapping[str, float],
    psr: Mapping[str, float],
    underlyings: Sequence[UnderlyingInfo],
    instruments: Sequence[InstrumentMeta],
    names: Mapping[int, str],
    cfg: KeeperConfig = KeeperConfig(),
) -> dict[str, tuple[Quote, Item]]:
    """Quote (for ``select_updates``) and post item of every underlying, collateral price and
    live instrument at ``ts``; WAD integers throughout.

    Underlying quote: ``mark = spot``, ``risk_array = (psr,)``. Future: ``mark = F x size``,
    ``risk_array = (F x psr,)`` (its on-chain array scales with both). Option: Black-76 mark and
    the weighted scenario P&L per long contract, ``scale = spot x size``. An instrument within
    ``MIN_TIME_TO_EXPIRY`` of expiry (or past it) is not quoted: it awaits settlement.
    Underlyings missing from ``spots`` are skipped with their instruments.
    """
    out: dict[str, tuple[Quote, Item]] = {}
    by_grid: dict[str, list[UnderlyingInfo]] = {}
    for u in underlyings:
        if u.name not in spots:
            continue
        p = min(max(psr[u.name], u.psr_min), u.psr_max)
        spot_w, psr_w = to_wad(float(spots[u.name])), to_wad(p)
        out[f"U:{u.name}"] = (
            Quote(spot_w, (psr_w,)),
            Item(f"U:{u.name}", "underlying", u.id, (u.id, spot_w, psr_w)),
        )
        for addr in u.assets:
            out[f"A:{addr}"] = (Quote(spot_w), Item(f"A:{addr}", "asset", u.id, (addr, spot_w)))
        by_grid.setdefault(u.grid.name, []).append(u)
    for group in by_grid.values():
        grid = group[0].grid
        index = {u.id: k for k, u in enumerate(group)}
        live = [
            m for m in instruments if m.underlying in index and m.expiry > ts + MIN_TIME_TO_EXPIRY
        ]
        if not live:
            continue
        ins = Instruments(
            np.array([index[m.underlying] for m in live], dtype=np.int64),
            np.array([int(m.kind) for m in live], dtype=np.int64),
            np.array([m.strike / WAD if m.kind is not Kind.FUTURE else np.nan for m in live]),
            np.array([m.expiry for m in live], dtype=np.int64),
        )
        spot = np.array([float(spots[u.name]) for u in group])
        atm = np.array(
            [max(float(vols.get(u.name, cfg.vol_default)), cfg.vol_floor) for u in group]
        )
        psr_vec = np.array([min(max(psr[u.name], u.psr_min), u.psr_max) for u in group])
        mkt = MarketState(ts, spot, VolSurface(atm, np.full(len(group), cfg.skew)))
        arrays = risk_arrays(ins, mkt, grid, psr_vec)
        mk = marks(ins, mkt)
        for j, m in enumerate(live):
            name = names[m.id]
            size = m.contract_size
            u = group[index[m.underlying]]
            scale = to_wad(float(spots[u.name])) * size // WAD
            mark = to_wad(float(mk[j])) * size // WAD
            if m.kind is Kind.FUTURE:
                psr_w = to_wad(float(psr_vec[index[m.underlying]]))
                quote = Quote(mark, (mark * psr_w // WAD,), scale)
                post = OptionPost.future(m.id, mark)
            else:
                ra = [v * size // WAD for v in to_wad(arrays[j])]
                quote = Quote(mark, tuple(ra), scale)
                post = OptionPost.option(m.id, mark, ra)
            out[name] = (quote, Item(name, "instrument", m.underlying, post.as_arg()))
    return out


def plan_round(
    ts: int,
    quotes: Mapping[str, tuple[Quote, Item]],
    posted: Mapping[str, Posted],
    cfg: KeeperConfig = KeeperConfig(),
) -> list[list[Item]]:
    """Items to post at ``ts``, in gas-bounded batches that also respect the oracle's per-call
    limits (16 underlyings, 64 instruments, 8 prices).

    Selected by ``select_updates``; an underlying (and the prices it drives) is added whenever
    one of its instruments is posted. Order: per underlying id, the underlying, its prices, then
    its instruments by id, so every batch sees its spot posted in the same or an earlier batch.
    """
    current = {name: q for name, (q, _) in quotes.items()}
    chosen = {
        u.name
        for u in select_updates(
            posted, current, ts, cfg.threshold, cfg.heartbeat, cfg.heartbeat_margin
        )
    }
    items = [item for _, item in quotes.values()]
    with_instruments = {i.underlying for i in items if i.kind == "instrument" and i.name in chosen}
    rank = {"underlying": 0, "asset": 1, "instrument": 2}
    ordered = sorted(
        (
            i
            for i in items
            if i.name in chosen or (i.kind != "instrument" and i.underlying in with_instruments)
        ),
        key=lambda i: (i.underlying, rank[i.kind], i.arg[0] if i.kind == "instrument" else 0),
    )
    budget_batches = batch_by_gas(
        ordered, item_gas, cfg.base_gas, cfg.block_gas_limit, cfg.gas_fraction
    )
    limits = {"underlying": MAX_POST_UNDERLYINGS, "asset": MAX_POST_ASSETS}
    out: list[list[Item]] = []
    for batch in budget_batches:
        cur: list[Item] = []
        counts = {"underlying": 0, "asset": 0, "instrument": 0}
        for item in batch:
            if counts[item.kind] == limits.get(item.kind, MAX_POST_INSTRUMENTS):
                out.append(cur)
                cur, counts = [], {"underlying": 0, "asset": 0, "instrument": 0}
            cur.append(item)
            counts[item.kind] += 1
        if cur:
            out.append(cur)
    return out


def batch_args(ts: int, batch: Sequence[Item]) -> tuple[int, list, list, list]:
    """``RiskOracle.post`` arguments of one batch."""
    unds = [i.arg for i in batch if i.kind == "underlying"]
    ins = [
        OptionPost(i.arg[0], i.arg[1], i.arg[2], tuple(i.arg[3]))
        for i in batch
        if i.kind == "instrument"
    ]
    assets = [i.arg for i in batch if i.kind == "asset"]
    return ts, unds, ins, assets


def health_by_account(
    market: ChainMarket, accounts: Mapping[str, AccountInt]
) -> dict[str, tuple[int, int, int]]:
    """``{address: (equity, IM, MM)}`` with the integer reference, for accounts that hold
    positions (an account without positions has MM 0 and cannot be liquidated)."""
    out = {}
    for addr, acct in accounts.items():
        if not acct.positions:
            continue
        st = market.margin(acct)
        out[addr] = (st.equity, st.initial_margin, st.maintenance_margin)
    return out


def settlement_price(meta: InstrumentMeta, spot: float) -> int:
    """Value of one long contract at expiry (WAD): future ``S``, call ``max(S - K, 0)``, put
    ``max(K - S, 0)``, times the contract size. ``settlement_price(BTC call K=9,000, 9,500)`` is
    500 USD."""
    s = to_wad(float(spot))
    if meta.kind is Kind.FUTURE:
        v = s
    elif meta.kind is Kind.CALL:
        v = max(s - meta.strike, 0)
    else:
        v = max(meta.strike - s, 0)
    return v * meta.contract_size // WAD


# --------------------------------------------------------------------------- the runner


@dataclass
class RoundReport:
    """What one round did (the demo's table and the tests read it)."""

    ts: int
    posted: list[str] = field(default_factory=list)
    batches: int = 0
    rejected: list[str] = field(default_factory=list)  # batch keys the chain refused
    gas_used: int = 0
    transactions: int = 0
    health: dict[str, tuple[int, int, int]] = field(default_factory=dict)
    below_mm: list[str] = field(default_factory=list)
    liquidations: list[str] = field(default_factory=list)
    settlement_prices: list[str] = field(default_factory=list)
    settled: list[tuple[str, str]] = field(default_factory=list)
    seconds: float = 0.0


class KeeperRunner:
    """Wires sources, decisions, the chain client and ``TxManager`` (``tx`` None = dry run)."""

    def __init__(
        self,
        chain: Any,
        tx: Any,
        store: Any,
        state: Any,
        book_store: BookStore,
        underlyings: Sequence[UnderlyingInfo],
        psr: Callable[[str, int], float],
        cfg: KeeperConfig = KeeperConfig(),
        *,
        w3: Any = None,
        dry_run: bool = False,
        liquidate: bool = True,
    ) -> None:
        self.chain = chain
        self.tx = tx
        self.store = store
        self.state = state
        self.book_store = book_store
        self.book: BookState = book_store.load()
        self.underlyings = list(underlyings)
        self.psr = psr
        self.cfg = cfg
        self.w3 = w3
        self.dry_run = dry_run or tx is None
        self.liquidate = liquidate and getattr(chain, "liquidator", None) is not None
        self.address = None if tx is None else tx.address
        self.instruments: list[InstrumentMeta] = []
        self.names: dict[int, str] = {}
        self.raw: dict[str, tuple[int, dict[int, int], dict[str, int]]] = {}
        self.accounts: dict[str, AccountInt] = {}
        self._stale: set[str] = set(self.book.accounts)
        self.last_spots: dict[str, float] = {}
        self.last_market: ChainMarket | None = None
        self.totals = {
            "posts": 0,
            "batches": 0,
            "transactions": 0,
            "gas": 0,
            "liquidations": 0,
            "settlement_prices": 0,
            "settlements": 0,
        }
        self._by_name = {u.name: u for u in self.underlyings}
        self._by_id = {u.id: u for u in self.underlyings}
        self.refresh_instruments()

    # ---------------------------------------------------------------- setup

    def close(self) -> None:
        """Release the state file's lock."""
        if self.store is not None:
            self.store.close()

    def refresh_instruments(self) -> None:
        """Re-read the listed instruments from the oracle's events."""
        metas = self.chain.listed_instruments()
        names = {u.id: u.name for u in self.underlyings}
        self.instruments = [m for m in metas if m.underlying in self._by_id]
        self.names = {m.id: m.name(names) for m in self.instruments}

    # ---------------------------------------------------------------- one round

    def round(self, tick: Tick) -> RoundReport:
        """Post, index, check health, liquidate and settle for ``tick``."""
        t0 = time.monotonic()
        head_ts = self._head()["timestamp"]
        ts = min(int(tick.timestamp), int(head_ts))
        report = RoundReport(ts)
        self.last_spots.update(tick.spots)
        if self.book.plan is not None and not self.dry_run:
            self._execute(self.book.plan, report)
        if ts > self.book.last_ts:
            self._post(tick, ts, report)
        self._index(report)
        market = self.chain.market_int([m.id for m in self.instruments])
        self.last_market = market
        self.accounts = {a: market.account(*raw) for a, raw in self.raw.items()}
        report.health = health_by_account(market, self.accounts)
        below = choose_liquidations({a: h[0] - h[2] for a, h in report.health.items()}, ())
        report.below_mm = below
        self._liquidate(below, ts, report)
        self._settle(market, head_ts, report)
        report.seconds = time.monotonic() - t0
        self.totals["posts"] += len(report.posted)
        self.totals["batches"] += report.batches
        self.totals["transactions"] += report.transactions
        self.totals["gas"] += report.gas_used
        log_event(
            _log,
            logging.INFO,
            "round",
            ts=ts,
            posted=len(report.posted),
            batches=report.batches,
            gas=report.gas_used,
            accounts=len(report.health),
            below_mm=len(below),
            liquidated=len(report.liquidations),
            settled=len(report.settled),
            seconds=round(report.seconds, 3),
            dry_run=self.dry_run,
        )
        return report

    def run(self, source: Any, rounds: int | None = None, idle_sleep: float = 0.0) -> int:
        """Rounds from ``source`` until it is exhausted (finite sources) or ``rounds`` done."""
        done = 0
        while rounds is None or done < rounds:
            tick = source.next_tick()
            if tick is None:
                if idle_sleep <= 0:
                    break
                time.sleep(idle_sleep)
                continue
            self.try_round(tick)
            done += 1
        return done

    def try_round(self, tick: Tick) -> RoundReport | None:
        """``round``, but an RPC outage or a transaction not final in time ends the round
        with a log line instead of the process: the round's plan is on disk and is resumed,
        with the same keys (nothing sent twice), at the next tick."""
        try:
            return self.round(tick)
        except TxError as exc:
            log_event(_log, logging.ERROR, "round_failed", ts=tick.timestamp, error=str(exc))
            return None

    # ---------------------------------------------------------------- posting

    def _post(self, tick: Tick, ts: int, report: RoundReport) -> None:
        vols = {**tick.realised_vol, **tick.implied_vol}
        psr = {u.name: self.psr(u.name, ts) for u in self.underlyings if u.name in tick.spots}
        quotes = compute_quotes(
            ts, tick.spots, vols, psr, self.underlyings, self.instruments, self.names, self.cfg
        )
        batches = plan_round(ts, quotes, self.state.posted, self.cfg)
        plan = RoundPlan(
            ts,
            tuple(
                Batch(
                    f"post:{ts}:{k}",
                    tuple(i.name for i in b),
                    "0x" + self.chain.post_calldata(*batch_args(ts, b)).hex(),
                )
                for k, b in enumerate(batches)
            ),
            {
                i.name: {"mark": q.mark, "risk_array": list(q.risk_array), "scale": q.scale}
                for b in batches
                for i in b
                for q in (quotes[i.name][0],)
            },
        )
        if self.dry_run:
            report.posted = [n for b in plan.batches for n in b.names]
            report.batches = len(plan.batches)
            for b in plan.batches:
                log_event(_log, logging.INFO, "would_post", key=b.key, items=len(b.names))
            return
        self.book.plan = plan
        self.book_store.save(self.book)
        self._execute(plan, report)

    def _execute(self, plan: RoundPlan, report: RoundReport) -> None:
        """Send every batch of ``plan`` (idempotent per key), wait, record what landed."""
        from web3.exceptions import ContractLogicError

        sent = []
        for b in plan.batches:
            try:
                self.tx.send(b.key, self.chain.oracle.address, data=bytes.fromhex(b.calldata[2:]))
                sent.append(b)
            except ContractLogicError as exc:
                # The batch would revert now (e.g. another keeper posted this timestamp).
                report.rejected.append(b.key)
                log_event(_log, logging.WARNING, "post_rejected", key=b.key, reason=str(exc))
        for b in sent:
            rec = self.tx.wait(b.key, self.cfg.wait_timeout)
            if str(rec.status) != "confirmed":
                report.rejected.append(b.key)
                log_event(_log, logging.WARNING, "post_failed", key=b.key, status=str(rec.status))
                continue
            report.gas_used += self._gas(rec)
            report.transactions += 1
            report.batches += 1
            for name in b.names:
                q = plan.quotes[name]
                quote = Quote(q["mark"], tuple(q["risk_array"]), q["scale"])
                self.state.posted[name] = Posted(quote, plan.ts)
                report.posted.append(name)
        self.store.save(self.state)
        self.book.plan = None
        self.book.last_ts = max(self.book.last_ts, plan.ts)
        self.book_store.save(self.book)

    def _head(self) -> dict[str, int]:
        """Number and timestamp of the latest block, read from the node each time."""
        if self.w3 is not None:
            block = self.w3.eth.get_block("latest")
            return {"number": int(block["number"]), "timestamp": int(block["timestamp"])}
        head = self.chain.chain_manager.blocks.head
        return {"number": int(head.number), "timestamp": int(head.timestamp)}

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

    # ---------------------------------------------------------------- accounts

    def _index(self, report: RoundReport) -> None:
        """Extend the account index from engine events; re-read the accounts they touched."""
        head = self._head()["number"]
        start = (
            self.chain.deployment.block
            if self.state.last_block is None
            else self.state.last_block + 1
        )
        if start <= head:
            touched = self.chain.accounts_touched(start, head)
            new = touched - self.book.accounts
            self._stale |= touched
            if new and not self.dry_run:
                self.book.accounts |= new
                self.book_store.save(self.book)
                if self.liquidate:
                    self._register(sorted(new), report)
            elif new:
                self.book.accounts |= new
            if not self.dry_run:
                self.state.last_block = head
                self.store.save(self.state)
            else:
                self.state.last_block = head
        for addr in sorted(self._stale):
            self.raw[addr] = self.chain.account_raw(addr)
        self._stale = set()

    # ---------------------------------------------------------------- liquidation

    def _liquidate(self, below: Sequence[str], ts: int, report: RoundReport) -> None:
        """``Liquidator.liquidate`` for each account below MM, worst first; the keeper's own
        margin account takes the positions (it must stay above IM, or the call reverts)."""
        for addr in below:
            log_event(_log, logging.WARNING, "below_mm", account=addr, ts=ts)
            if not self.liquidate or addr == self.address:
                continue
            key = f"liq:{ts}:{addr}"
            if self.dry_run:
                log_event(_log, logging.INFO, "would_liquidate", key=key)
                report.liquidations.append(addr)
                continue
            target = self.chain.liquidator.address
            if self._send_and_wait(key, target, self.chain.liquidate_calldata(addr), report):
                report.liquidations.append(addr)
                self._stale.add(addr)
                if self.address is not None:
                    self._stale.add(self.address)
        self.totals["liquidations"] += len(report.liquidations)

    def _register(self, accounts: Sequence[str], report: RoundReport) -> None:
        """Add newly seen accounts to the Liquidator's on-chain list (``accounts_below_mm``
        pages through it), once each."""
        for addr in accounts:
            self._send_and_wait(
                f"register:{addr}",
                self.chain.liquidator.address,
                self.chain.register_calldata(addr),
                report,
            )

    # ---------------------------------------------------------------- settlement

    def _settle(self, market: ChainMarket, now: int, report: RoundReport) -> None:
        """Post the settlement price of every expired instrument (the value at the spot of the
        first tick at or after its expiry), then ``settle`` each account holding one (a single
        call settles all of an account's expired positions)."""
        expiries = {self.names[m.id]: m.expiry for m in self.instruments}
        due = due_settlements(
            expiries, int(now), {self.names[i] for i in market.settled if i in self.names}
        )
        by_name = {self.names[m.id]: m for m in self.instruments}
        newly = set()
        for name in due:
            meta = by_name[name]
            und = self._by_id[meta.underlying].name
            if und not in self.last_spots:
                continue
            price = settlement_price(meta, self.last_spots[und])
            key = f"settle_price:{meta.id}"
            if self.dry_run:
                log_event(_log, logging.INFO, "would_post_settlement", instrument=name, price=price)
                report.settlement_prices.append(name)
                continue
            data = self.chain.settlement_calldata(meta.id, price)
            if self._send_and_wait(key, self.chain.oracle.address, data, report):
                report.settlement_prices.append(name)
                newly.add(meta.id)
        settled_ids = set(market.settled) | newly
        todo = [
            (addr, iid)
            for addr, (_, positions, _) in sorted(self.raw.items())
            for iid in sorted(positions)
            if iid in settled_ids
        ]
        done_accounts: set[str] = set()
        for addr, iid in todo[: self.cfg.settle_batch]:
            if addr in done_accounts:
                continue
            key = f"settle:{iid}:{addr}"
            if self.dry_run:
                report.settled.append((addr, self.names.get(iid, str(iid))))
                done_accounts.add(addr)
                continue
            if self._send_and_wait(
                key, self.chain.engine.address, self.chain.settle_calldata(addr), report
            ):
                report.settled.append((addr, self.names.get(iid, str(iid))))
                self._stale.add(addr)
            done_accounts.add(addr)
        self.totals["settlement_prices"] += len(report.settlement_prices)
        self.totals["settlements"] += len(report.settled)

    def _send_and_wait(self, key: str, to: str, data: bytes, report: RoundReport) -> bool:
        from web3.exceptions import ContractLogicError

        try:
            self.tx.send(key, to, data=data)
        except ContractLogicError as exc:
            log_event(_log, logging.WARNING, "tx_would_revert", key=key, reason=str(exc))
            return False
        rec = self.tx.wait(key, self.cfg.wait_timeout)
        ok = str(rec.status) == "confirmed"
        if ok:
            report.gas_used += self._gas(rec)
            report.transactions += 1
        else:
            log_event(_log, logging.WARNING, "tx_not_confirmed", key=key, status=str(rec.status))
        return ok


def keeper_underlyings(chain: Any) -> list[UnderlyingInfo]:
    """The deployment's underlyings as the keeper needs them: grid (matched against the
    presets by its coefficients), PSR bounds from the oracle, the collateral each one prices."""
    from offchain.scenarios import PRESETS

    out = []
    for name, uid in sorted(chain.deployment.underlyings.items(), key=lambda kv: kv[1]):
        params = chain.underlying_params(uid)
        grid = PRESETS[chain.grid_name(uid)]
        assets = tuple(a for a, u in chain.deployment.asset_prices.items() if u == name)
        out.append(
            UnderlyingInfo(
                name, uid, grid, int(params.psr_min) / WAD, int(params.psr_max) / WAD, assets
            )
        )
    return out


def open_keeper(
    chain: Any,
    private_key: str | None,
    state_dir: str,
    *,
    rpc_url: str | None = None,
    cfg: KeeperConfig = KeeperConfig(),
    tx_config: Any = None,
    psr: Callable[[str, int], float] | None = None,
    dry_run: bool = False,
    liquidate: bool = True,
) -> KeeperRunner:
    """A ``KeeperRunner`` with its state files in ``state_dir`` (one pair per signing account:
    ``<address>.json`` for ``StateStore``, ``<address>.runner.json`` for the runner's own).

    ``private_key`` None (or ``dry_run``) builds a dry-run keeper that signs nothing and writes
    nothing. ``rpc_url`` defaults to the Ape provider's URI. ``psr`` defaults to
    ``CalibratedPsr`` on the daily history in ``data/``. Close it with ``runner.close()``.
    """
    import json
    from pathlib import Path

    from eth_account import Account
    from web3 import Web3

    from offchain.keeper.state import KeeperState, StateStore
    from offchain.keeper.tx import TxManager

    unds = keeper_underlyings(chain)
    url = rpc_url or chain.chain_manager.provider.uri
    w3 = Web3(Web3.HTTPProvider(url, exception_retry_configuration=None))
    psr = psr or CalibratedPsr([u.name for u in unds])
    if private_key is None or dry_run:
        # Reads the account's state file (if any) without locking it; writes nothing.
        addr = "dry-run" if private_key is None else Account.from_key(private_key).address
        path = Path(state_dir) / f"{addr}.json"
        state = (
            KeeperState.from_json(json.loads(path.read_text())) if path.exists() else KeeperState()
        )
        book = BookStore(Path(state_dir) / f"{addr}.runner.json")
        return KeeperRunner(
            chain,
            None,
            None,
            state,
            book,
            unds,
            psr,
            cfg,
            w3=w3,
            dry_run=True,
            liquidate=liquidate,
        )
    address = Account.from_key(private_key).address
    store = StateStore(Path(state_dir) / f"{address}.json")
    state = store.load()
    tx = TxManager(w3, private_key, store, state, tx_config)
    runner = KeeperRunner(
        chain,
        tx,
        store,
        state,
        BookStore(Path(state_dir) / f"{address}.runner.json"),
        unds,
        psr,
        cfg,
        w3=w3,
        liquidate=liquidate,
    )
    return runner
