"""The demo behind ``ape run demo`` (``make demo``): the March 2020 crash through the system.

Starts anvil (Ape's local foundry provider), deploys ``deploy/demo.json``, opens realistic books
for 24 traders and 4 market makers on BTC and ETH, then replays BTC and ETH from the shared daily
history with intraday steps, compressed in time, the keeper posting risk arrays, checking every
account off-chain with the integer reference, liquidating and settling. A live table follows the
replay; ``out/demo/report.md`` (with PNG charts) and a solvency check close it.

History on a later chain: every replayed timestamp (and every expiry) is moved by a whole number
of days so that it lies after the chain's clock, and the chain's clock is moved to each tick
before its round; dates shown are the real ones.

    ape run demo                 # full: 24 traders, 2020-03-09 .. 2020-03-28, 4 steps a day
    ape run demo --short         # CI: 10 traders, 2020-03-10 .. 2020-03-14
"""

from __future__ import annotations

import json
import logging
import math
import shutil
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from ape import accounts, chain, project

from offchain.chain import Chain, InstrumentMeta, load_config, to_units
from offchain.fixed_point import WAD
from offchain.keeper.runner import CalibratedPsr, KeeperConfig, ShiftedSource, open_keeper
from offchain.keeper.sources import CsvReplaySource
from offchain.keeper.tx import TxConfig
from offchain.margin import AccountInt, margin_state_int
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
        (("ETH-20200327-F", -200),),
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
SHORT_BOOKS = 10
MAKERS = ("maker_btc_a", "maker_btc_b", "maker_eth_a", "maker_eth_b")
MIN_EQUITY = 5_000  # USD
MAKER_CASH = 20_000_000  # USD each: market makers are well capitalised
LIQUIDATOR_CASH = 20_000_000  # the keeper's own margin account, which takes liquidated books
INSURANCE_FUND = 250_000  # USD seeded into the insurance fund


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


@dataclass
class Solvency:
    vault_cash: int  # stablecoin held by the engine, WAD
    sum_cash: int  # sum of every account's cash (WAD), insurance fund included
    dust: int  # vault_cash - sum_cash (rounding kept by the vault, >= 0)
    collateral_ok: bool  # per asset: sum of balances == total owed <= vault holdings
    below_mm: list[str]
    negative_equity: list[str]
    bad_debt: int  # WAD, uncovered: left as negative equity or not paid by fund / socialisation
    bad_debt_total: int = 0  # WAD, all bad debt met by liquidations
    fund_payouts: int = 0
    socialised: int = 0
    insurance_fund: int = 0

    @property
    def ok(self) -> bool:
        return (
            0 <= self.dust <= 10**9
            and self.collateral_ok
            and not self.below_mm
            and not self.negative_equity
            and self.bad_debt == 0
        )


@dataclass
class DemoResult:
    rounds: int = 0
    failed_rounds: int = 0  # rounds the keeper gave up on (resumed at the next tick)
    posts: int = 0
    batches: int = 0
    transactions: int = 0
    gas: int = 0
    liquidations: int = 0
    settlement_prices: int = 0
    settlements: int = 0
    setup_seconds: float = 0.0
    replay_seconds: float = 0.0
    total_seconds: float = 0.0
    accounts: int = 0
    history: list[dict[str, Any]] = field(default_factory=list)
    solvency: Solvency | None = None
    report: Path | None = None


# ------------------------------------------------------------------------------ helpers


def _key(meta: InstrumentMeta, names: dict[int, str], offset: int) -> str:
    """``BTC-20200327-C-9000``: the instrument named by its real (unshifted) expiry."""
    shifted = InstrumentMeta(meta.id, meta.underlying, meta.kind, meta.strike, meta.expiry - offset)
    return shifted.name(names)


def _fund(c: Chain, admin: Any, acct: Any, usd: int, coll: dict[str, float]) -> None:
    chain.set_balance(acct.address, 10**21)
    c.fund(admin, acct, "cash", usd * USD)
    c.deposit(acct, "cash", usd * USD)
    for sym, amount in coll.items():
        units = to_units(amount, 18 if sym == "WETH" else 8)
        c.fund(admin, acct, sym, units)
        c.deposit(acct, sym, units)


def _im_needed(market: Any, legs: list[tuple[int, int]], coll_value: int) -> tuple[int, int]:
    """(max IM over the book's prefixes, IM of the full book), reference model, cash 0."""
    worst = 0
    pos: dict[int, int] = {}
    im = 0
    for iid, q in legs:
        pos[iid] = pos.get(iid, 0) + q
        st = margin_state_int(AccountInt(0, dict(pos)), market.market, market.im_factor)
        im = st.initial_margin
        worst = max(worst, im)
    return worst, im


def open_books(
    c: Chain, admin: Any, venue: Any, books: tuple[Book, ...], offset: int, say: Any
) -> dict[str, Any]:
    """Fund makers and traders, trade every leg at the posted mark against a maker, and bring
    each trader to its target equity / IM by withdrawing the excess cash."""
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
        legs = [(by_key[k].id, int(q * WAD)) for k, q in book.legs]
        coll = dict(book.collateral)
        coll_value = 0
        worst_im, full_im = _im_needed(market, legs, coll_value)
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
        eq, im, _ = c.account_state(acct)[:3]
        excess = eq - max(im * book.target, MIN_EQUITY * WAD)
        cash = int(c.engine.cash(acct))
        amount = min(int(excess), cash) // 10**12  # to USDC units, floor
        if amount > 0:
            c.withdraw(acct, "cash", amount)
        eq, im, mm = c.account_state(acct)[:3]
        say(
            f"  {book.name:<22} {book.style:<44} equity {eq / WAD:>12,.0f}  "
            f"IM {im / WAD:>11,.0f}  MM {mm / WAD:>11,.0f}"
        )
    return people


# ------------------------------------------------------------------------------ the run


def run_demo(opts: DemoOptions, say: Any = print) -> DemoResult:
    """Deploy, open the books, replay, check solvency, write the report. Needs a connected
    local provider (``ape run demo`` or an Ape test)."""
    t_start = time.monotonic()
    result = DemoResult()
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
    cfg = load_config(CONFIG, now=now)
    c = Chain.deploy(
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
    kcfg = KeeperConfig(heartbeat=12 * 3_600, heartbeat_margin=3_600, threshold=0.002)
    txcfg = TxConfig(
        confirmations=1,
        poll_interval=0.01,
        stuck_after_blocks=1_000,
        stuck_after_seconds=3_600,
        rpc_deadline=180,
    )
    runner = open_keeper(
        c,
        keeper.private_key,
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
    result.accounts = len(people)
    result.setup_seconds = time.monotonic() - t_start
    labels = {p.address: n for n, p in people.items()}
    labels[keeper.address] = "keeper (liquidator)"
    t_replay = time.monotonic()
    result.history.append(_snapshot(c, runner, tick, offset, report, labels))
    live = _Live(opts.live, labels)
    with live:
        while (tick := source.next_tick()) is not None:
            if tick.timestamp > chain.blocks.head.timestamp:
                chain.mine(timestamp=tick.timestamp)
            report = runner.try_round(tick)
            if report is None:
                result.failed_rounds += 1
                continue
            snap = _snapshot(c, runner, tick, offset, report, labels)
            result.history.append(snap)
            live.update(snap, runner.totals)
    result.replay_seconds = time.monotonic() - t_replay
    result.rounds = len(result.history)
    t = runner.totals
    result.posts, result.batches, result.gas = t["posts"], t["batches"], t["gas"]
    result.transactions = t["transactions"]
    result.liquidations, result.settlements = t["liquidations"], t["settlements"]
    result.settlement_prices = t["settlement_prices"]
    result.solvency = solvency(c, runner, [*people.values(), keeper])
    runner.close()
    result.total_seconds = time.monotonic() - t_start
    result.report = write_report(out, opts, result, labels, books)
    klog.removeHandler(handler)
    handler.close()
    klog.propagate = True
    return result


def _snapshot(c: Chain, runner: Any, tick: Any, offset: int, report: Any, labels: dict) -> dict:
    market = runner.last_market
    accts = {}
    for addr, acct in runner.accounts.items():
        if addr not in labels:
            continue
        st = market.margin(acct)
        accts[labels[addr]] = (st.equity, st.initial_margin, st.maintenance_margin)
    return {
        "date": datetime.fromtimestamp(tick.timestamp - offset, UTC),
        "spots": dict(tick.spots),
        "accounts": accts,
        "posted": len(report.posted),
        "gas": report.gas_used,
        "liquidations": [labels.get(a, a) for a in report.liquidations],
        "below_mm": [labels.get(a, a) for a in report.below_mm],
        "settled": len(report.settled),
        "fund": c.insurance_fund(),
        "seconds": report.seconds,
    }


class _Live:
    """The rich live table (a no-op when ``enabled`` is false or stdout is not a terminal)."""

    def __init__(self, enabled: bool, labels: dict) -> None:
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

    def update(self, snap: dict, totals: dict) -> None:
        if self._live is None:
            return
        from rich.table import Table

        title = (
            f"{snap['date']:%Y-%m-%d %H:%M}  BTC {snap['spots']['BTC']:,.0f}  "
            f"ETH {snap['spots']['ETH']:,.2f}  posts {totals['posts']}  gas {totals['gas']:,}  "
            f"liquidations {totals['liquidations']}  settlements {totals['settlements']}"
        )
        table = Table(title=title)
        for col in ("account", "equity", "IM", "MM", "equity/MM", "status"):
            table.add_column(col, justify="left" if col in ("account", "status") else "right")
        for name, (eq, im, mm) in sorted(snap["accounts"].items()):
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


# ------------------------------------------------------------------------------ solvency


def solvency(c: Chain, runner: Any, people: list[Any]) -> Solvency:
    """The books balance, nobody is left below MM, bad debt is covered."""
    holders = {p.address for p in people} | set(runner.book.accounts)
    scale = int(c.engine.cash_scale())
    vault_cash = int(c.cash.balanceOf(c.engine)) * scale
    sum_cash = sum(int(c.engine.cash(a)) for a in holders)
    coll_ok = True
    for addr in c.assets():
        owed = sum(int(c.engine.collateral(addr, a)) for a in holders)
        total = int(c.engine.total(addr))
        held = int(c.project.MockERC20.at(addr).balanceOf(c.engine))
        coll_ok &= owed == total <= held
    below, negative = [], []
    for a in sorted(holders):
        if c.liquidator is not None and a == c.liquidator.address:
            continue  # the fund is not a margin account
        eq, _, mm = c.account_state(a)[:3]
        if eq < mm:
            below.append(a)
        if eq < 0:
            negative.append(a)
    total = payouts = social = 0
    if c.liquidator is not None:
        total = int(c.liquidator.bad_debt())
        payouts = int(c.liquidator.fund_payouts())
        social = int(c.liquidator.socialised())
    uncovered = (total - payouts - social) - sum(min(c.account_state(a)[0], 0) for a in negative)
    return Solvency(
        vault_cash,
        sum_cash,
        vault_cash - sum_cash,
        coll_ok,
        below,
        negative,
        uncovered,
        total,
        payouts,
        social,
        c.insurance_fund(),
    )


# ------------------------------------------------------------------------------ report


def write_report(
    out: Path, opts: DemoOptions, r: DemoResult, labels: dict, books: tuple[Book, ...]
) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    dates = [h["date"] for h in r.history]
    fig, ax = plt.subplots(figsize=(9, 4))
    btc = [h["spots"]["BTC"] for h in r.history]
    eth = [h["spots"]["ETH"] for h in r.history]
    ax.plot(dates, btc, color="tab:orange", label="BTC")
    ax.set_ylabel("BTC (USD)")
    ax2 = ax.twinx()
    ax2.plot(dates, eth, color="tab:blue", label="ETH")
    ax2.set_ylabel("ETH (USD)")
    ax.set_title("Replayed prices")
    fig.autofmt_xdate()
    fig.savefig(out / "price.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    names = sorted({n for h in r.history for n in h["accounts"]})
    cols = 4
    rows = math.ceil(len(names) / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, 2.4 * rows), sharex=True)
    for k, name in enumerate(names):
        axk = axes.flat[k]
        eqs = [h["accounts"].get(name, (math.nan,) * 3)[0] / WAD for h in r.history]
        mms = [h["accounts"].get(name, (math.nan,) * 3)[2] / WAD for h in r.history]
        axk.plot(dates, eqs, label="equity")
        axk.plot(dates, mms, label="MM", color="tab:red")
        axk.set_title(name, fontsize=8)
        axk.tick_params(labelsize=6)
    for k in range(len(names), rows * cols):
        axes.flat[k].axis("off")
    axes.flat[0].legend(fontsize=6)
    fig.autofmt_xdate()
    fig.tight_layout()
    fig.savefig(out / "accounts.png", dpi=90)
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3))
    cum = 0
    series = []
    for h in r.history:
        cum += len(h["liquidations"])
        series.append(cum)
    ax.step(dates, series, where="post", label="liquidations (cumulative)")
    ax.bar(
        dates,
        [len(h["below_mm"]) for h in r.history],
        width=0.15,
        alpha=0.4,
        color="tab:red",
        label="accounts below MM",
    )
    ax.legend(fontsize=8)
    ax.set_title("Liquidations")
    fig.autofmt_xdate()
    fig.savefig(out / "liquidations.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    fig, ax = plt.subplots(figsize=(9, 3))
    ax.plot(dates, [h["fund"] / WAD for h in r.history])
    ax.set_title("Insurance fund (USD)")
    fig.autofmt_xdate()
    fig.savefig(out / "insurance_fund.png", dpi=100, bbox_inches="tight")
    plt.close(fig)

    s = r.solvency
    last = r.history[-1]
    lines = [
        "# Demo: the March 2020 crash through the margin engine",
        "",
        f"Replay {opts.start} .. {opts.end}, {opts.steps_per_day} steps a day, "
        f"{'short' if opts.short else 'full'} mode: {r.accounts} accounts "
        f"({len(books)} traders, {len(MAKERS)} market makers), {r.rounds} keeper rounds.",
        "",
        "| | |",
        "| --- | ---: |",
        f"| keeper posts (items) | {r.posts:,} |",
        f"| post transactions (batches) | {r.batches:,} |",
        f"| keeper transactions in all (posts, registrations, liquidations, settlements) | "
        f"{r.transactions:,} |",
        f"| gas spent by the keeper | {r.gas:,} |",
        f"| liquidations | {r.liquidations} |",
        f"| settlement prices posted / accounts settled | {r.settlement_prices} / "
        f"{r.settlements} |",
        f"| bad debt met by liquidations (USD) | {s.bad_debt_total / WAD:,.2f} |",
        f"| paid by the insurance fund / socialised (USD) | {s.fund_payouts / WAD:,.2f} / "
        f"{s.socialised / WAD:,.2f} |",
        f"| uncovered bad debt (USD) | {s.bad_debt / WAD:,.2f} |",
        f"| insurance fund at the end (USD) | {s.insurance_fund / WAD:,.2f} |",
        f"| setup time (deploy, books) | {r.setup_seconds:.1f} s |",
        f"| replay time | {r.replay_seconds:.1f} s |",
        f"| total | {r.total_seconds:.1f} s |",
        "",
        "## Solvency check",
        "",
        f"- stablecoin held by the vault: {s.vault_cash / WAD:,.6f} USD; sum of account cash: "
        f"{s.sum_cash / WAD:,.6f} USD; difference {s.dust} wei (rounding kept by the vault, "
        "never owed): " + ("balanced" if 0 <= s.dust <= 10**9 else "**NOT balanced**"),
        "- collateral balances equal what the vault owes and holds: "
        + ("yes" if s.collateral_ok else "**no**"),
        f"- accounts below MM at the end: {len(s.below_mm)}"
        + ("" if not s.below_mm else " (" + ", ".join(labels.get(a, a) for a in s.below_mm) + ")"),
        f"- accounts with negative equity: {len(s.negative_equity)}",
        f"- verdict: **{'solvent' if s.ok else 'NOT solvent'}**",
        "",
        "## Charts",
        "",
        "![price](price.png)",
        "",
        "![equity vs MM](accounts.png)",
        "",
        "![liquidations](liquidations.png)",
        "",
        "![insurance fund](insurance_fund.png)",
        "",
        "## Accounts at the end",
        "",
        "| account | book | equity | IM | MM |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    styles = {b.name: b.style for b in books}
    for name in sorted(last["accounts"]):
        eq, im, mm = last["accounts"][name]
        lines.append(
            f"| {name} | {styles.get(name, 'market maker')} | {eq / WAD:,.0f} | "
            f"{im / WAD:,.0f} | {mm / WAD:,.0f} |"
        )
    lines += [
        "",
        "## Rounds",
        "",
        "| date (UTC) | BTC | ETH | posted | gas | below MM | liquidated | settled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for h in r.history:
        lines.append(
            f"| {h['date']:%Y-%m-%d %H:%M} | {h['spots']['BTC']:,.0f} | "
            f"{h['spots']['ETH']:,.2f} | {h['posted']} | {h['gas']:,} | {len(h['below_mm'])} | "
            f"{', '.join(h['liquidations'])} | {h['settled']} |"
        )
    path = out / "report.md"
    path.write_text("\n".join(lines) + "\n")
    summary = {
        "mode": "short" if opts.short else "full",
        "rounds": r.rounds,
        "failed_rounds": r.failed_rounds,
        "accounts": r.accounts,
        "posts": r.posts,
        "batches": r.batches,
        "transactions": r.transactions,
        "gas": r.gas,
        "liquidations": r.liquidations,
        "settlement_prices": r.settlement_prices,
        "settlements": r.settlements,
        "rounds_below_mm": sum(1 for h in r.history if h["below_mm"]),
        "setup_seconds": round(r.setup_seconds, 1),
        "replay_seconds": round(r.replay_seconds, 1),
        "total_seconds": round(r.total_seconds, 1),
        "solvency": {
            "ok": s.ok,
            "vault_cash_wad": str(s.vault_cash),
            "sum_cash_wad": str(s.sum_cash),
            "dust_wei": s.dust,
            "collateral_ok": s.collateral_ok,
            "below_mm": [labels.get(a, a) for a in s.below_mm],
            "negative_equity": [labels.get(a, a) for a in s.negative_equity],
            "bad_debt_total_wad": str(s.bad_debt_total),
            "fund_payouts_wad": str(s.fund_payouts),
            "socialised_wad": str(s.socialised),
            "uncovered_wad": str(s.bad_debt),
            "insurance_fund_wad": str(s.insurance_fund),
        },
    }
    (out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return path
