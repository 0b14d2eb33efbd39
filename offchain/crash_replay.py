"""Replay of the BTC crash of March 2020 on a book of hedged and unhedged accounts.

The market: BTC (``data/btc_usd_daily.csv``, 2020-03-05 .. 2020-03-20), one future and two
options expiring 2020-03-27, Black-76 marks, risk arrays on the CRYPTO_35 grid with a PSR of 16%
and short-option minimum 10% (docs/design.md §5). Implied vol: the annualised EWMA (lambda 0.94)
of daily log returns, floored at 50%. Each day is observed three times, its extreme
against the day's direction first (a down day: high, low, close; an up day: low, high, close),
so the intraday low of 2020-03-12/13 (3,858 intraday on some venues; 4,107 in this file) is
seen by the keeper. A move beyond what one post allows (the gap rate, 0.75 of the PSR per
``CAP_PERIOD``) is posted as the keeper posts it: in equal steps a ``CAP_PERIOD`` apart, each
followed by the liquidations.

The book: every account opens its portfolio on 2020-03-05 against one market maker at the
marks, with equity a stated multiple of its initial margin; a keeper liquidates (uncapped,
``offchain.liquidation``) every account below maintenance margin after each observation, into
one well-capitalised liquidator. The insurance fund starts empty (default), so any bad debt
beyond the penalties it has collected is socialised.

``replay()`` returns the bad debt and how it was covered; ``observations()`` gives the exact
oracle data (marks, encoded arrays), so the on-chain test can post the same and compare.

Result with default parameters (``tests/test_crash_replay.py`` pins it): see
``docs/liquidation.md`` "March 2020".
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np

from offchain.data import load_asset
from offchain.fixed_point import WAD, encode_risk_array, to_wad
from offchain.liquidation import (
    LONG,
    SHORT,
    LiquidationParams,
    LossLedger,
    liquidate,
    pending_charge,
)
from offchain.margin import AccountInt, InstrumentInt, MarketInt, account_margin_int
from offchain.oracle_bounds import CAP_PERIOD, bound_option, gap_rate
from offchain.params import margin_params
from offchain.risk_arrays import Instruments, MarketState, market_int, risk_arrays_wad
from offchain.scenarios import CRYPTO_35

__all__ = [
    "START",
    "END",
    "EXPIRY",
    "PSR",
    "SOM_RATE",
    "FUT",
    "PUT",
    "CALL",
    "AccountSpec",
    "BOOK",
    "Observation",
    "observations",
    "ReplayResult",
    "replay",
]

START, END = "2020-03-05", "2020-03-20"
EXPIRY = int(datetime(2020, 3, 27, 8, tzinfo=UTC).timestamp())
#: A fixed stress PSR (the March 2020 study's scan range, not a calibrated one).
PSR = 0.16
#: The parameter set's short-option minimum (params/margin.json).
SOM_RATE = float(margin_params().som_rate)
# the oracle's bounds on posts (WAD): deviation cap per cap period, |array| / spot
MAX_DEVIATION = WAD // 2
MAX_ARRAY_RATIO = 2 * WAD
VOL_FLOOR = 0.50
EWMA_LAMBDA = 0.94
#: Instrument indices (ids in the reference market): future, put 7,000, call 10,000.
FUT, PUT, CALL = 0, 1, 2
STRIKES = {PUT: 7_000.0, CALL: 10_000.0}
MAKER, LIQUIDATOR = "maker", "liquidator"


@dataclass(frozen=True)
class AccountSpec:
    """An account of the book: positions (contracts, signed) and equity / IM at the start."""

    name: str
    positions: Mapping[int, float]
    margin_ratio: float


BOOK: tuple[AccountSpec, ...] = (
    AccountSpec("long-future-at-im", {FUT: 1.0}, 1.02),
    AccountSpec("long-future-1.5im", {FUT: 2.0}, 1.5),
    AccountSpec("long-future-3im", {FUT: 1.0}, 3.0),
    AccountSpec("short-future-at-im", {FUT: -1.0}, 1.02),
    AccountSpec("protected-long", {FUT: 1.0, PUT: 1.0}, 1.02),
    AccountSpec("covered-call", {FUT: 1.0, CALL: -1.0}, 1.02),
    AccountSpec("short-put-at-im", {PUT: -2.0}, 1.02),
    AccountSpec("put-spread-hedged-short", {FUT: -1.0, CALL: 1.0}, 1.02),
)


def _instruments() -> Instruments:
    return Instruments(
        underlying=np.zeros(3, dtype=np.int64),
        kind=np.array([0, 2, 1], dtype=np.int64),
        strike=np.array([np.nan, STRIKES[PUT], STRIKES[CALL]]),
        expiry=np.full(3, EXPIRY, dtype=np.int64),
    )


@dataclass(frozen=True)
class Observation:
    """One oracle post: label, unix time, spot (float), vol, the reference market and the WAD
    data posted (spot, marks, risk arrays before encoding)."""

    label: str
    time: int
    spot: float
    vol: float
    market: MarketInt
    spot_wad: int
    marks_wad: tuple[int, ...]
    arrays_wad: tuple[tuple[int, ...], ...]


def _ewma_vols(close: np.ndarray) -> np.ndarray:
    """Annualised EWMA vol known at each close (from the returns up to that close)."""
    rets = np.diff(np.log(close))
    var = np.empty(len(close))
    v = float(np.var(rets[:20])) if len(rets) >= 20 else float(np.var(rets))
    var[0] = v
    for i, r in enumerate(rets, start=1):
        v = EWMA_LAMBDA * v + (1 - EWMA_LAMBDA) * r * r
        var[i] = v
    return np.sqrt(var * 365.0)


def _catch_up(prev: float, spot: float) -> list[float]:
    """The spots the keeper posts from ``prev`` to ``spot``, a CAP_PERIOD apart: equal ratios,
    each within 99 % of the gap rate (``offchain.oracle_bounds.gap_rate``; the 1 % margin keeps
    the future's mark, rounded from the float spot, inside its cap too), ``spot`` last."""
    rate = 0.99 * gap_rate(MAX_DEVIATION, to_wad(PSR)) / WAD
    n = 1
    while abs((spot / prev) ** (1 / n) - 1) > rate:
        n += 1
    return [prev * (spot / prev) ** ((m + 1) / n) for m in range(n - 1)] + [spot]


def observations(som_rate: float = SOM_RATE, catch_up: bool = True) -> list[Observation]:
    """The posts of the replay, in order (the first one is the opening at the 2020-03-05 close),
    options margined with ``som_rate`` (the parameter set's unless a test lists another);
    without ``catch_up`` each observation is posted at once, however far it moves (the chain
    refuses such posts: the gap rate)."""
    series = load_asset("BTC")
    hist = series.window("2020-01-01", END)
    vols = _ewma_vols(hist.close)
    ins = _instruments()
    out = []
    dates = [str(d) for d in hist.dates]
    i0 = dates.index(START)
    last: dict[int, tuple[int, int]] = {}
    for i in range(i0, len(dates)):
        day = int(datetime.fromisoformat(dates[i]).replace(tzinfo=UTC).timestamp())
        vol = max(VOL_FLOOR, float(vols[i - 1]))
        if i == i0:
            path = [("close", float(hist.close[i]))]
        elif hist.close[i] < hist.open[i]:
            path = [
                ("high", float(hist.high[i])),
                ("low", float(hist.low[i])),
                ("close", float(hist.close[i])),
            ]
        else:
            path = [
                ("low", float(hist.low[i])),
                ("high", float(hist.high[i])),
                ("close", float(hist.close[i])),
            ]
        steps = []  # (label, time, spot): the keeper's posts, catching up at the gap rate
        for k, (what, spot) in enumerate(path):
            t = day + (k + 1) * 28_800  # 08:00, 16:00, 24:00
            walk = _catch_up(steps[-1][2] if steps else out[-1].spot if out else spot, spot)
            walk = walk if catch_up else [spot]
            for m, x in enumerate(walk):
                tag = "" if m == len(walk) - 1 else f" (capped {m + 1}/{len(walk) - 1})"
                steps.append((f"{dates[i]} {what}{tag}", t + m * CAP_PERIOD, x))
        for label, t, spot in steps:
            ms = MarketState(t, np.array([spot]), np.full(3, vol))
            arrays = [list(a) for a in risk_arrays_wad(ins, ms, CRYPTO_35, [PSR])]
            mkt = market_int(ins, ms, arrays, [som_rate])
            # what the keeper posts: options clamped into the oracle's bounds
            # (offchain.oracle_bounds), the cap for the time since the previous observation
            for j in (PUT, CALL):
                m = mkt.instruments[j]
                mark, arrays[j] = bound_option(
                    int(m.kind),
                    to_wad(STRIKES[j]),
                    to_wad(spot),
                    MAX_DEVIATION,
                    MAX_ARRAY_RATIO,
                    m.mark,
                    arrays[j],
                    last.get(j),
                    t,
                )
                e, entries = encode_risk_array(arrays[j])
                ins_j = InstrumentInt(m.underlying, m.kind, mark, e, tuple(entries))
                mkt = MarketInt({**mkt.instruments, j: ins_j}, mkt.underlyings, mkt.collaterals)
                last[j] = (mark, t)
            out.append(
                Observation(
                    label,
                    t,
                    spot,
                    vol,
                    mkt,
                    to_wad(spot),
                    tuple(mkt.instruments[j].mark for j in (FUT, PUT, CALL)),
                    tuple(tuple(a) for a in arrays),
                )
            )
    return out


@dataclass
class ReplayResult:
    """Outcome of a replay (WAD amounts)."""

    bad_debt: int
    fund_payouts: int
    socialised: int
    fund: int
    liquidations: list[tuple[str, str, int, int]] = field(
        default_factory=list
    )  # label, acct, f, bad
    final: dict[str, AccountInt] = field(default_factory=dict)
    outcome: dict[str, str] = field(default_factory=dict)  # healthy / liquidated / partially ...
    charges: int = 0

    @property
    def bad_debt_usd(self) -> float:
        return self.bad_debt / WAD


def opening_accounts(market: MarketInt, params: LiquidationParams) -> dict[str, AccountInt]:
    """Accounts at the opening: every spec with equity = margin_ratio * IM (cash set so), the
    maker holding the opposite of the whole book with 10M USD, the liquidator 10M USD."""
    accts: dict[str, AccountInt] = {}
    maker_pos: dict[int, int] = {}
    for spec in BOOK:
        pos = {j: to_wad(q) for j, q in spec.positions.items()}
        st = account_margin_int(AccountInt(0, pos), market, params.im_factor)
        target = int(st.initial_margin * spec.margin_ratio)
        accts[spec.name] = AccountInt(target - st.equity, pos)
        for j, q in pos.items():
            maker_pos[j] = maker_pos.get(j, 0) - q
    mk = AccountInt(0, {j: q for j, q in maker_pos.items() if q})
    value = account_margin_int(mk, market, params.im_factor).equity
    accts[MAKER] = AccountInt(10_000_000 * WAD - value, mk.positions)
    accts[LIQUIDATOR] = AccountInt(10_000_000 * WAD)
    return accts


def replay(
    params: LiquidationParams | None = None,
    fund: int = 0,
    som_rate: float = SOM_RATE,
    catch_up: bool = True,
) -> ReplayResult:
    """Run the book through the crash; return the bad debt, its split and each account's
    outcome (``catch_up``: see ``observations``)."""
    params = params or LiquidationParams()
    obs = observations(som_rate, catch_up)
    accts = opening_accounts(obs[0].market, params)
    oi: dict[int, int] = {}
    for a in accts.values():
        for j, q in a.positions.items():
            oi[j] = oi.get(j, 0) + max(q, 0)
    ledger = LossLedger(fund=fund, open_interest=oi)
    snaps: dict[str, dict[int, tuple[int, int]]] = {n: {} for n in accts}
    result = ReplayResult(0, 0, 0, fund)
    liquidated: set[str] = set()
    charges = 0

    def realise(name: str) -> None:
        nonlocal ledger, charges
        a = accts[name]
        c = pending_charge(a.positions, ledger.index, snaps[name])
        if c:
            accts[name] = AccountInt(a.cash - c, a.positions, a.collateral)
            ledger = LossLedger(
                ledger.fund + c,
                ledger.open_interest,
                ledger.index,
                ledger.bad_debt,
                ledger.fund_payouts,
                ledger.socialised,
            )
            charges += c
        snaps[name] = {j: ledger.index.get(j, (0, 0)) for j in a.positions}

    for ob in obs[1:]:
        for spec in BOOK:
            name = spec.name
            a = accts[name]
            if not a.positions:
                continue
            pend = pending_charge(a.positions, ledger.index, snaps[name])
            st = account_margin_int(
                AccountInt(a.cash - pend, a.positions, a.collateral), ob.market, params.im_factor
            )
            if st.equity >= st.maintenance_margin:
                continue
            realise(name)
            realise(LIQUIDATOR)
            r = liquidate(accts[name], accts[LIQUIDATOR], ob.market, params, ledger)
            for j in r.taken:
                if accts[LIQUIDATOR].positions.get(j, 0) == 0:
                    snaps[LIQUIDATOR][j] = ledger.index.get(j, (0, 0))
            accts[name], accts[LIQUIDATOR], ledger = r.account, r.liquidator, r.ledger
            liquidated.add(name)
            result.liquidations.append((ob.label, name, r.fraction, r.bad_debt))
    last = obs[-1].market
    for spec in BOOK:
        a = accts[spec.name]
        if not a.positions:
            result.outcome[spec.name] = "liquidated"
        else:
            pend = pending_charge(a.positions, ledger.index, snaps[spec.name])
            st = account_margin_int(AccountInt(a.cash - pend, a.positions), last, params.im_factor)
            assert st.equity >= st.maintenance_margin, spec.name
            result.outcome[spec.name] = (
                "partially liquidated" if spec.name in liquidated else "healthy"
            )
    result.bad_debt, result.fund_payouts, result.socialised = (
        ledger.bad_debt,
        ledger.fund_payouts,
        ledger.socialised,
    )
    result.fund = ledger.fund
    result.final = dict(accts)
    result.charges = charges
    assert LONG == 0 and SHORT == 1 and math.isfinite(result.bad_debt_usd)
    return result


if __name__ == "__main__":  # pragma: no cover - manual run: python -m offchain.crash_replay
    res = replay()
    for liq in res.liquidations:
        print(liq[0], liq[1], f"f={liq[2] / WAD:.4f}", f"bad={liq[3] / WAD:,.2f}")
    for name, what in res.outcome.items():
        print(f"{name:28s} {what}")
    print(
        f"bad debt {res.bad_debt / WAD:,.2f} USD: fund {res.fund_payouts / WAD:,.2f}, "
        f"socialised {res.socialised / WAD:,.2f}; fund ends at {res.fund / WAD:,.2f}"
    )
