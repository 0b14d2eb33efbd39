"""The demo behind ``ape run demo`` (``make demo``): the March 2020 crash through the system.

Starts anvil (Ape's local foundry provider), deploys ``deploy/demo.json``, opens realistic books
for 27 traders and 4 market makers on BTC and ETH, then replays BTC and ETH from the daily history
in ``data/`` with intraday steps, compressed in time, the keeper posting risk arrays, checking every
account off-chain with the integer reference, liquidating and settling. A live table follows the
replay; ``out/demo/report.md`` (with PNG charts) and a solvency check close it.

History on a later chain: every replayed timestamp (and every expiry) is moved by a whole number
of days so that it lies after the chain's clock, and the chain's clock is moved to each tick
before its round; dates shown are the real ones.

    ape run demo                 # full: 27 traders, 2020-03-09 .. 2020-03-28, 4 steps a day
    ape run demo --short         # CI: 13 traders, 2020-03-10 .. 2020-03-14
"""

from __future__ import annotations

import logging
import math
import shutil
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ape import accounts, chain, project

from offchain.demo_report import DemoRun, RoundSnapshot
from offchain.fixed_point import WAD, to_wad
from offchain.keeper.config import KeeperConfig
from offchain.keeper.replay import CalibratedPsr, ShiftedSource
from offchain.keeper.runner import open_keeper
from offchain.keeper.sources import CsvReplaySource
from offchain.keeper.tx import TxConfig
from offchain.margin import AccountInt, Kind, account_margin_int
from offchain.sdk import Client, InstrumentMeta, deploy_system, load_config, to_units
from offchain.solvency import audit, read_ledger
from scripts._common import REPO

DAY = 86_400
CONFIG = REPO / "deploy" / "demo.json"
USD = 10**6


# ------------------------------------------------------------------------------ the books


@dataclass(frozen=True)
class Book:
    """A trader: legs ``(instrument key, signed size)`` traded against a maker of its
    underlying at the posted mark; ``target`` = equity / IM after funding (the leverage);
    ``collateral`` token amounts (whole tokens) deposited besides cash."""

    name: str
    legs: tuple[tuple[str, float], ...]
    target: float
    collateral: tuple[tuple[str, float], ...] = ()
    style: str = ""


BOOKS: tuple[Book, ...] = (
    Book("btc_long_fut", (("BTC-20200327-F", 10),), 1.5, style="unhedged long future"),
    Book("btc_short_fut", (("BTC-20200327-F", -5),), 1.5, style="unhedged short future"),
    Book("btc_naked_put", (("BTC-20200327-P-7000", -10),), 1.2, style="naked short put"),
    Book(
        "btc_covered_call",
        (("BTC-20200327-F", 5), ("BTC-20200327-C-9000", -5)),
        1.3,
        style="covered call (long future + short call)",
    ),
    Book(
        "btc_short_strangle",
        (("BTC-20200327-C-8000", -5), ("BTC-20200327-P-7000", -5)),
        1.3,
        style="short straddle/strangle",
    ),
    Book("eth_long_fut", (("ETH-20200327-F", 200),), 1.5, style="unhedged long future"),
    Book(
        "eth_weth_basis",
        # hedged beyond the roll window: a hedge that expires inside it stops offsetting the WETH
        (("ETH-20200626-F", -200),),
        1.5,
        (("WETH", 250),),
        style="WETH collateral hedged by a short future",
    ),
    Book("eth_naked_put", (("ETH-20200327-P-180", -300),), 1.2, style="naked short put"),
    Book("eth_long_call", (("ETH-20200327-C-200", 300),), 1.5, style="long call"),
    Book(
        "cross_pairs",
        (("BTC-20200327-F", 2), ("ETH-20200327-F", -80)),
        1.5,
        style="BTC long / ETH short pair",
    ),
    # ---- perps: a basis trade, a delta-hedged option book, a leveraged long
    Book(
        "eth_perp_basis",
        (("ETH-PERP", -200),),
        1.5,
        (("WETH", 200),),
        style="basis trade: WETH collateral, short perp (receives funding)",
    ),
    Book(
        "btc_calls_perp_hedged",
        # short 10 calls at 8,000 (delta about -5 with BTC near 8,000) hedged by 5 long perps
        (("BTC-20200327-C-8000", -10), ("BTC-PERP", 5)),
        1.3,
        style="short calls delta-hedged with perps",
    ),
    Book(
        "btc_perp_long_levered",
        (("BTC-PERP", 10),),
        1.1,
        style="leveraged perp long",
    ),
    # ---- the full demo adds these
    Book(
        "btc_long_fut_wbtc",
        (("BTC-20200327-F", 5),),
        1.5,
        (("WBTC", 3),),
        style="long future on WBTC collateral (wrong-way)",
    ),
    Book(
        "btc_calendar",
        (("BTC-20200327-F", 10), ("BTC-20200313-F", -10)),
        1.5,
        style="calendar spread (hedged futures)",
    ),
    Book(
        "btc_protective_put",
        (("BTC-20200327-F", 5), ("BTC-20200327-P-7000", 5)),
        1.3,
        style="long future + long put",
    ),
    Book(
        "btc_bull_call_spread",
        (("BTC-20200327-C-8000", 10), ("BTC-20200327-C-9000", -10)),
        1.2,
        style="bull call spread",
    ),
    Book("btc_weekly_put", (("BTC-20200313-P-7000", -10),), 1.5, style="short weekly put"),
    Book(
        "btc_long_straddle",
        (("BTC-20200327-C-8000", 3), ("BTC-20200327-P-7000", 3)),
        1.5,
        style="long straddle",
    ),
    Book(
        "btc_risk_reversal",
        (("BTC-20200327-C-9000", 10), ("BTC-20200327-P-6000", -10)),
        1.3,
        style="risk reversal",
    ),
    Book(
        "btc_put_spread",
        (("BTC-20200327-P-7000", 10), ("BTC-20200327-P-6000", -10)),
        1.5,
        style="bear put spread",
    ),
    Book(
        "btc_conservative",
        (("BTC-20200327-F", 2),),
        5.0,
        style="small long future, well funded",
    ),
    Book(
        "eth_covered_call",
        (("ETH-20200327-F", 200), ("ETH-20200327-C-250", -200)),
        1.3,
        style="covered call",
    ),
    Book(
        "eth_short_strangle",
        (("ETH-20200327-C-250", -200), ("ETH-20200327-P-150", -200)),
        1.5,
        style="short strangle",
    ),
    Book(
        "eth_put_spread",
        (("ETH-20200327-P-180", 200), ("ETH-20200327-P-150", -200)),
        1.5,
        style="bear put spread",
    ),
    Book(
        "eth_weekly_put",
        (("ETH-20200313-P-180", -300),),
        2.0,
        style="short weekly put",
    ),
    Book(
        "cross_hedger",
        (("BTC-20200327-P-7000", 5),),
        2.0,
        (("WETH", 300),),
        style="WETH holder buying BTC puts",
    ),
)
SHORT_BOOKS = 13
#: The demo's perp premium model: spot history has no perp market, so the perps are marked at
#: spot x (1 + 0.1%) (a contango premium, stated, not data): funding then runs at
#: (0.1% - 0.05%) / 8 per hour, longs paying shorts (keeper/funding.py).
PERP_PREMIUM = 0.001
MAKERS = ("maker_btc_a", "maker_btc_b", "maker_eth_a", "maker_eth_b")
MIN_EQUITY = 5_000  # USD
MAKER_CASH = 20_000_000  # USD each: market makers are well capitalised
LIQUIDATOR_CASH = 20_000_000  # the keeper's own margin account, which takes liquidated books
INSURANCE_FUND = 250_000  # USD seeded into the insurance fund
KEEPER_LABEL = "keeper (liquidator)"


@dataclass(frozen=True)
class DemoOptions:
    short: bool = False
    out: Path = REPO / "out" / "demo"
    start: str = "2020-03-09"
    end: str = "2020-03-28"
    steps_per_day: int = 4
    live: bool = True

    @classmethod
    def for_mode(cls, short: bool, **kw: Any) -> DemoOptions:
        if short:
            kw.setdefault("start", "2020-03-10")
            kw.setdefault("end", "2020-03-14")
        return cls(short=short, **kw)


# ------------------------------------------------------------------------------ helpers


def _key(meta: InstrumentMeta, names: dict[int, str], offset: int) -> str:
    """``BTC-20200327-C-9000``: the instrument named by its real (unshifted) expiry."""
    shifted = InstrumentMeta(meta.id, meta.underlying, meta.kind, meta.strike, meta.expiry - offset)
    return shifted.name(names)


def _fund(c: Client, admin: Any, acct: Any, usd: int, coll: dict[str, float]) -> None:
    chain.set_balance(acct.address, 10**21)
    c.fund(admin, acct, "cash", usd * USD)
    c.deposit(acct, "cash", usd * USD)
    for sym, amount in coll.items():
        units = to_units(amount, int(c.tokens[sym].decimals()))
        c.fund(admin, acct, sym, units)
        c.deposit(acct, sym, units)


def _im_needed(market: Any, legs: list[tuple[int, int]]) -> tuple[int, int]:
    """(max IM over the book's prefixes, IM of the full book), reference model, cash 0."""
    worst = 0
    pos: dict[int, int] = {}
    im = 0
    for iid, q in legs:
        pos[iid] = pos.get(iid, 0) + q
        st = account_margin_int(AccountInt(0, dict(pos)), market.market, market.im_factor)
        im = st.initial_margin
        worst = max(worst, im)
    return worst, im


def open_books(
    c: Client, admin: Any, venue: Any, books: tuple[Book, ...], offset: int, say: Any
) -> dict[str, Any]:
    """Fund makers and traders, trade every leg at the posted mark against a maker, and bring
    each trader to its target equity / IM by withdrawing the excess cash (what settlement leaves
    as cash at most)."""
    metas = c.listed_instruments()
    names = {v: k for k, v in c.deployment.underlyings.items()}
    by_key = {_key(m, names, offset): m for m in metas}
    market = c.market_int([m.id for m in metas])
    people: dict[str, Any] = {}
    for name in MAKERS:
        acct = accounts.test_accounts.generate_test_account()
        _fund(c, admin, acct, MAKER_CASH, {})
        c.authorise(acct, venue)
        people[name] = acct
    turn = {"BTC": 0, "ETH": 0}
    for book in books:
        acct = accounts.test_accounts.generate_test_account()
        people[book.name] = acct
        legs = [(by_key[k].id, to_wad(q)) for k, q in book.legs]
        coll = dict(book.collateral)
        worst_im, full_im = _im_needed(market, legs)
        # a hedged book can have an IM near zero (a calendar spread nets on one grid): every
        # trader keeps at least MIN_EQUITY
        eq_target = max(math.ceil(full_im * book.target / WAD), MIN_EQUITY)
        deposit = max(eq_target, math.ceil(worst_im * 1.02 / WAD) + 1)
        _fund(c, admin, acct, deposit, coll)
        c.authorise(acct, venue)
        for (key, _), (iid, q) in zip(book.legs, legs, strict=True):
            und = key.split("-")[0]
            maker = people[f"maker_{und.lower()}_{'ab'[turn[und] % 2]}"]
            turn[und] += 1
            mark = market.market.instruments[iid].mark
            buyer, seller = (acct, maker) if q > 0 else (maker, acct)
            c.trade(venue, buyer, seller, iid, abs(q), mark)
        state = c.account_state(acct)
        excess = state.equity - max(state.initial_margin * book.target, MIN_EQUITY * WAD)
        # the cash a withdrawal can take is the settled one: a short future's notional is not
        # cash once its variation margin is realised (the excess may sit in collateral)
        c.settle(admin, acct)
        cash = int(c.engine.cash(acct))
        amount = min(int(excess), cash) // 10**12  # to USDC units, floor
        if amount > 0:
            c.withdraw(acct, "cash", amount)
        state = c.account_state(acct)
        eq, im, mm = state.equity, state.initial_margin, state.maintenance_margin
        say(
            f"  {book.name:<22} {book.style:<44} equity {eq / WAD:>12,.0f}  "
            f"IM {im / WAD:>11,.0f}  MM {mm / WAD:>11,.0f}"
        )
    return people


# ------------------------------------------------------------------------------ the run


def run_demo(opts: DemoOptions, say: Any = print) -> DemoRun:
    """Deploy, open the books, replay, audit solvency. Needs a connected local provider
    (``ape run demo`` or an Ape test); ``offchain.demo_report`` writes the report of the run."""
    t_start = time.monotonic()
    out = Path(opts.out)
    shutil.rmtree(out, ignore_errors=True)
    out.mkdir(parents=True)
    admin, keeper, venue = (accounts.test_accounts[i] for i in range(3))
    # the keeper's structured log lines go to out/demo/keeper.log, not over the live table
    klog = logging.getLogger("offchain.keeper")
    handler = logging.FileHandler(out / "keeper.log")
    handler.setFormatter(logging.Formatter("%(asctime)s %(message)s"))
    klog.addHandler(handler)
    klog.setLevel(logging.INFO)
    klog.propagate = False
    replay = CsvReplaySource(["BTC", "ETH"], opts.start, opts.end, opts.steps_per_day)
    first = replay.next_tick()
    now = chain.blocks.head.timestamp
    offset = math.ceil((now + 3_600 - first.timestamp) / DAY) * DAY
    say(
        f"replaying {opts.start} .. {opts.end} ({len(replay)} ticks), chain clock shifted by "
        f"{offset // DAY} days"
    )
    cfg = load_config(CONFIG)
    c = deploy_system(
        project,
        chain,
        admin,
        cfg,
        keepers=[keeper],
        venues=[venue],
        time_offset=offset,
        network="local",
    )
    c.deployment.save(out / "deployment.json")
    say(f"deployed {CONFIG.relative_to(REPO)}; addresses in {out / 'deployment.json'}")
    kcfg = KeeperConfig(
        heartbeat=12 * 3_600, heartbeat_margin=3_600, threshold=0.002, perp_premium=PERP_PREMIUM
    )
    txcfg = TxConfig(
        confirmations=1,
        poll_interval=0.01,
        stuck_after_blocks=1_000,
        stuck_after_seconds=3_600,
        rpc_deadline=180,
    )
    runner = open_keeper(
        c,
        keeper,
        str(out / "keeper-state"),
        cfg=kcfg,
        tx_config=txcfg,
        psr=CalibratedPsr(["BTC", "ETH"], time_offset=offset),
    )
    if c.liquidator is not None:
        # the keeper liquidates into its own margin account; the fund gets a seed
        chain.set_balance(keeper.address, 10**21)
        c.fund(admin, keeper, "cash", LIQUIDATOR_CASH * USD)
        c.deposit(keeper, "cash", LIQUIDATOR_CASH * USD)
        c.fund(admin, admin, "cash", INSURANCE_FUND * USD)
        c.engine.deposit(c.cash, INSURANCE_FUND * USD, c.liquidator.address, sender=admin)
        say(f"keeper margin {LIQUIDATOR_CASH:,} USD, insurance fund {INSURANCE_FUND:,} USD")
    source = ShiftedSource(replay, offset)
    tick = type(first)(first.timestamp + offset, first.spots, first.realised_vol, first.implied_vol)
    chain.mine(timestamp=tick.timestamp)
    report = runner.round(tick)
    say(
        f"initial post: {len(report.posted)} items in {report.batches} batch(es), "
        f"gas {report.gas_used:,}"
    )
    books = BOOKS[:SHORT_BOOKS] if opts.short else BOOKS
    say(f"opening {len(books)} books and {len(MAKERS)} market makers")
    people = open_books(c, admin, venue, books, offset, say)
    styles = {b.name: b.style for b in books} | {m: "market maker" for m in MAKERS}
    styles[KEEPER_LABEL] = "liquidator: takes the positions it liquidates"
    run = DemoRun(
        opts.start,
        opts.end,
        opts.steps_per_day,
        opts.short,
        traders=len(books),
        makers=len(MAKERS),
        styles=styles,
        labels={p.address: n for n, p in people.items()} | {keeper.address: KEEPER_LABEL},
        setup_seconds=time.monotonic() - t_start,
        perp_premium=PERP_PREMIUM,
    )
    t_replay = time.monotonic()
    run.history.append(_snapshot(c, runner, tick, offset, report, run.labels))
    with _Live(opts.live) as live:
        if not live.enabled:
            say("replay: the rounds that liquidate or settle")
        while (tick := source.next_tick()) is not None:
            if tick.timestamp > chain.blocks.head.timestamp:
                chain.mine(timestamp=tick.timestamp)
            report = runner.try_round(tick)
            if report is None:
                run.failed_rounds += 1
                say(f"  {_real_date(tick, offset):%Y-%m-%d %H:%M}  the keeper gave up this round")
                continue
            snap = _snapshot(c, runner, tick, offset, report, run.labels)
            run.history.append(snap)
            live.update(snap, runner.totals)
            if not live.enabled and (snap.liquidated or snap.settled):
                say(_round_line(snap))
    run.replay_seconds = time.monotonic() - t_replay
    totals = runner.totals
    run.posts, run.batches, run.gas = totals["posts"], totals["batches"], totals["gas"]
    run.transactions = totals["transactions"]
    run.liquidations, run.settlements = totals["liquidations"], totals["settlements"]
    run.settlement_prices = totals["settlement_prices"]
    holders = {p.address for p in people.values()} | {keeper.address} | runner.known_accounts
    run.solvency = audit(read_ledger(c, holders))
    runner.close()
    run.total_seconds = time.monotonic() - t_start
    klog.removeHandler(handler)
    handler.close()
    klog.propagate = True
    return run


def _real_date(tick: Any, offset: int) -> datetime:
    return datetime.fromtimestamp(tick.timestamp - offset, UTC)


def _snapshot(
    c: Client, runner: Any, tick: Any, offset: int, report: Any, labels: dict[str, str]
) -> RoundSnapshot:
    market = runner.last_market
    states = {}
    for addr, acct in runner.accounts.items():
        if addr in labels:
            st = market.account_margin(acct)
            states[labels[addr]] = (st.equity, st.initial_margin, st.maintenance_margin)
    names = {v: k for k, v in c.deployment.underlyings.items()}
    perp_of = {m.id: names[m.underlying] for m in runner.instruments if m.kind is Kind.PERP}
    perps = {
        labels[addr]: {perp_of[j]: q for j, q in raw[1].items() if j in perp_of and q}
        for addr, raw in runner.raw.items()
        if addr in labels
    }
    return RoundSnapshot(
        date=_real_date(tick, offset),
        spots=dict(tick.spots),
        accounts=states,
        posted=len(report.posted),
        gas=report.gas_used,
        liquidated=tuple(labels.get(a, a) for a in report.liquidations),
        below_mm=tuple(labels.get(a, a) for a in report.below_mm),
        settled=len(report.settled),
        insurance_fund=c.insurance_fund(),
        seconds=report.seconds,
        funding_index={u: c.funding_index(c.deployment.underlyings[u]) for u in perp_of.values()},
        funding_rates=dict(report.funding),
        perps={k: v for k, v in perps.items() if v},
    )


def _round_line(snap: RoundSnapshot) -> str:
    """``2020-03-12 18:00  BTC  5,583  ETH 127.32  liquidated btc_naked_put, ...`` (and
    ``settled 6 accounts`` in a round that settles)."""
    events = []
    if snap.liquidated:
        events.append(f"liquidated {', '.join(snap.liquidated)}")
    if snap.settled:
        events.append(f"settled {snap.settled} accounts")
    return (
        f"  {snap.date:%Y-%m-%d %H:%M}  BTC {snap.spots['BTC']:>6,.0f}  "
        f"ETH {snap.spots['ETH']:>6,.2f}  " + "; ".join(events)
    )


class _Live:
    """The rich live table (a no-op when ``enabled`` is false or stdout is not a terminal)."""

    def __init__(self, enabled: bool) -> None:
        from rich.console import Console

        self.console = Console()
        self.enabled = enabled and self.console.is_terminal
        self._live = None

    def __enter__(self) -> _Live:
        if self.enabled:
            from rich.live import Live

            self._live = Live(console=self.console, refresh_per_second=8)
            self._live.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._live is not None:
            self._live.__exit__(*exc)

    def update(self, snap: RoundSnapshot, totals: dict) -> None:
        if self._live is None:
            return
        from rich.table import Table

        title = (
            f"{snap.date:%Y-%m-%d %H:%M}  BTC {snap.spots['BTC']:,.0f}  "
            f"ETH {snap.spots['ETH']:,.2f}  posts {totals['posts']}  gas {totals['gas']:,}  "
            f"liquidations {totals['liquidations']}  settlements {totals['settlements']}"
        )
        table = Table(title=title)
        for col in ("account", "equity", "IM", "MM", "equity/MM", "status"):
            table.add_column(col, justify="left" if col in ("account", "status") else "right")
        for name, (eq, im, mm) in sorted(snap.accounts.items()):
            ratio = eq / mm if mm else math.inf
            status = "[red]below MM" if eq < mm else "[yellow]below IM" if eq < im else "[green]ok"
            table.add_row(
                name,
                f"{eq / WAD:,.0f}",
                f"{im / WAD:,.0f}",
                f"{mm / WAD:,.0f}",
                "-" if mm == 0 else f"{ratio:.2f}",
                status,
            )
        self._live.update(table)
