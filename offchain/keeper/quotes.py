"""What the keeper quotes and posts: marks and risk arrays of every live instrument
(``compute_quotes``), the items that moved enough to post, in gas-bounded batches within the
oracle's per-call limits (``plan_round``), and the ``RiskOracle.post`` arguments of a batch
(``batch_args``); ``bound_quotes`` keeps quotes inside the oracle's per-time deviation caps
and option quotes inside its no-arbitrage band and array limits (``offchain.oracle_bounds``).
Pure functions: no chain, no clock, no files.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from offchain.codec import OptionPost, id_fields
from offchain.fixed_point import WAD, to_wad
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.funding import perp_mark
from offchain.keeper.policy import Posted, Quote, batch_by_gas, select_updates
from offchain.margin import Kind
from offchain.oracle_bounds import bound_option, clamp_price, code_strike, gap_rate
from offchain.risk_arrays import Instruments, MarketState, VolSurface, marks, risk_arrays
from offchain.sdk import InstrumentMeta

__all__ = ["Item", "batch_args", "bound_quotes", "compute_quotes", "item_gas", "plan_round"]

MAX_POST_UNDERLYINGS = 16
MAX_POST_INSTRUMENTS = 64
MAX_POST_ASSETS = 8
MIN_TIME_TO_EXPIRY = 60  # seconds; closer to expiry an instrument is not repriced any more
DEFAULTS = KeeperConfig()


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


def compute_quotes(
    ts: int,
    spots: Mapping[str, float],
    vols: Mapping[str, float],
    psr: Mapping[str, float],
    underlyings: Sequence[UnderlyingInfo],
    instruments: Sequence[InstrumentMeta],
    names: Mapping[int, str],
    cfg: KeeperConfig = DEFAULTS,
) -> dict[str, tuple[Quote, Item]]:
    """Quote (for ``select_updates``) and post item of every underlying, collateral price and
    live instrument at ``ts``; WAD integers throughout.

    Underlying quote: ``mark = spot``, ``risk_array = (psr,)``. Future: ``mark = F x size``,
    ``risk_array = (F x psr,)`` (its on-chain array scales with both). Perp: like a future at
    ``mark = spot x (1 + cfg.perp_premium)`` (``keeper.funding.perp_mark``), never expiring.
    Option: Black-76 mark and the weighted scenario P&L per long contract, ``scale = spot x
    size``. An instrument within
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
        for m in instruments:
            if m.kind is Kind.PERP and m.underlying in index:
                # posted like a future (mark only); its array is computed on-chain at tau = 0
                u = group[index[m.underlying]]
                mark = perp_mark(to_wad(float(spots[u.name])), cfg.perp_premium)
                psr_w = to_wad(min(max(psr[u.name], u.psr_min), u.psr_max))
                quote = Quote(mark, (mark * psr_w // WAD,), to_wad(float(spots[u.name])))
                item = Item(
                    names[m.id], "instrument", m.underlying, OptionPost.future(m.id, mark).as_arg()
                )
                out[names[m.id]] = (quote, item)
        live = [
            m
            for m in instruments
            if m.underlying in index
            and m.kind is not Kind.PERP
            and m.expiry > ts + MIN_TIME_TO_EXPIRY
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
        mkt = MarketState(
            ts,
            spot,
            VolSurface(atm, np.full(len(group), cfg.skew)),
            basis=np.array([u.basis / WAD for u in group]),
            roll=np.array([float(u.roll) for u in group]),
        )
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


def bound_quotes(
    ts: int,
    quotes: Mapping[str, tuple[Quote, Item]],
    posted: Mapping[str, Posted],
    underlyings: Sequence[UnderlyingInfo],
) -> dict[str, tuple[Quote, Item]]:
    """``quotes`` clamped into what ``RiskOracle.post`` accepts at ``ts``, from what was last
    posted (the keeper's record of the chain): every spot, collateral price and future mark
    into its deviation cap for the time since its previous post (a spot's and a future's at the
    gap rate of the scan range, for a future the smaller of this round's and the last posted,
    whichever the chain holds when it lands); every option's mark and array
    into the band at this round's (clamped) spot and its deviation cap. A lagging value stays
    "moved" and is posted again next round, closing the gap at the cap's pace, so a large
    move never makes a batch revert."""
    info = {u.id: u for u in underlyings}
    out = dict(quotes)

    def last(name: str) -> tuple[int, int] | None:
        p = posted.get(name)
        return None if p is None else (int(p.quote.mark), p.posted_at)

    for u in underlyings:
        devs = dict(zip(u.assets, u.asset_max_deviations, strict=False))
        for addr in u.assets:
            name = f"A:{addr}"
            if name in quotes:
                quote, item = quotes[name]
                price = clamp_price(quote.mark, last(name), devs.get(addr, u.max_deviation), ts)
                out[name] = (Quote(price), Item(name, item.kind, item.underlying, (addr, price)))
        name = f"U:{u.name}"
        if name in quotes:
            quote, item = quotes[name]
            spot = clamp_price(quote.mark, last(name), gap_rate(u.max_deviation, item.arg[2]), ts)
            arg = (item.arg[0], spot, item.arg[2])
            out[name] = (Quote(spot, quote.risk_array), Item(name, item.kind, item.underlying, arg))
    spots = {u.id: out[f"U:{u.name}"][0].mark for u in underlyings if f"U:{u.name}" in out}
    rates = {}  # underlying id -> a future's gap rate
    for u in underlyings:
        name = f"U:{u.name}"
        psrs = [quotes[name][0].risk_array[0]] if name in quotes else []
        if name in posted and posted[name].quote.risk_array:
            psrs.append(posted[name].quote.risk_array[0])
        rates[u.id] = gap_rate(u.max_deviation, min(psrs)) if psrs else u.max_deviation
    for name, (quote, item) in quotes.items():
        if item.kind != "instrument" or item.underlying not in info:
            continue
        if not item.arg[3]:
            # a future: its mark capped like a spot (its array is computed on-chain)
            u = info[item.underlying]
            mark = clamp_price(quote.mark, last(name), rates[u.id], ts)
            if mark != quote.mark:
                psr = quote.risk_array[0] * WAD // quote.mark
                post = OptionPost.future(item.arg[0], mark)
                out[name] = (
                    Quote(mark, (mark * psr // WAD,), quote.scale),
                    Item(name, item.kind, item.underlying, post.as_arg()),
                )
            continue
        if item.underlying not in spots:
            continue
        iid, u = item.arg[0], info[item.underlying]
        code, kind, _, _ = id_fields(iid)
        mark, ra = bound_option(
            kind,
            code_strike(code),
            spots[item.underlying],
            u.max_deviation,
            u.max_array_ratio,
            quote.mark,
            quote.risk_array,
            last(name),
            ts,
        )
        if (mark, tuple(ra)) == (quote.mark, quote.risk_array):
            continue
        post = OptionPost.option(iid, mark, ra)
        out[name] = (
            Quote(mark, tuple(ra), quote.scale),
            Item(name, item.kind, item.underlying, post.as_arg()),
        )
    return out


def plan_round(
    ts: int,
    quotes: Mapping[str, tuple[Quote, Item]],
    posted: Mapping[str, Posted],
    cfg: KeeperConfig = DEFAULTS,
    force: Collection[str] = (),
) -> list[list[Item]]:
    """Items to post at ``ts``, in gas-bounded batches that also respect the oracle's per-call
    limits (16 underlyings, 64 instruments, 8 prices).

    Selected by ``select_updates``, plus the names in ``force`` (the spots a settlement waits
    for, ``policy.spots_for_settlement``); an underlying (and the prices it drives) is added
    whenever one of its instruments is posted. Order: per underlying id, the underlying, its
    prices, then its instruments by id, so every batch sees its spot posted in the same or an
    earlier batch.
    """
    current = {name: q for name, (q, _) in quotes.items()}
    chosen = {
        u.name
        for u in select_updates(
            posted, current, ts, cfg.threshold, cfg.heartbeat, cfg.heartbeat_margin
        )
    } | (set(force) & set(current))
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
