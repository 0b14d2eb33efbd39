"""Backtest of the margin model on real BTC and ETH history, with Kupiec and Basel statistics.

Method. For every day ``t`` of an asset's history after the calibration warm-up:

1. the model as of ``t``: PSR from ``calibration.psr_series`` (EWMA vol known at the close of
   ``t``, Student-t fit on data up to ``t``, frozen after ``in_sample_end``), implied-vol proxy
   ``iv_proxy`` from the same EWMA vol, forward = the close (rate 0: a cash-settled future on a
   stablecoin with no carry);
2. the standard portfolios (``STRATEGIES``) formed at that close, one unit per leg;
3. MM from ``risk_arrays`` + ``margin.margin_of_accounts`` (the float reference model: scan over the
   grid, short-option minimum as a floor);
4. the realised loss over the next horizon: every leg marked again at the close ``t + h`` with
   the implied-vol proxy of that day and ``h`` days less to expiry (Black-76, ``marks``);
5. an exceedance when that loss is strictly above MM.

Per strategy and window (in-sample up to ``in_sample_end``, out-of-sample after it) the count of
exceedances is tested with Kupiec's proportion-of-failures LR (``kupiec_lr``) and placed in a
Basel traffic-light zone (``traffic_light``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
import scipy.sparse as sp
from scipy import stats
from scipy.special import xlogy

from offchain.calibration import CalibrationParams, psr_series
from offchain.data import PriceSeries
from offchain.margin import Kind, MarketArrays, margin_of_accounts
from offchain.params import margin_params
from offchain.pricing import black76_delta
from offchain.risk_arrays import Instruments, MarketState, marks, risk_arrays
from offchain.scenarios import CRYPTO_35, ScenarioGrid

__all__ = [
    "STRATEGIES",
    "AssetRun",
    "BacktestConfig",
    "DEFAULT_CONFIG",
    "BacktestRow",
    "Book",
    "Leg",
    "Strategy",
    "build_book",
    "count_exceedances",
    "iv_proxy",
    "kupiec_lr",
    "kupiec_pvalue",
    "run_asset",
    "summarize",
    "traffic_light",
]


def kupiec_lr(p: float, days: int, exceedances: int) -> float:
    """Kupiec (1995) proportion-of-failures likelihood ratio, chi-square(1) under H0.

    ``LR = -2 ln[(1-p)^(T-N) p^N] + 2 ln[(1-N/T)^(T-N) (N/T)^N]`` with ``0 ln 0 = 0``.
    Worked number: p = 1%, T = 250, N = 0 -> -500 ln 0.99 = 5.0252 (rejected at 5%).
    """
    if not 0.0 < p < 1.0:
        raise ValueError(f"p: {p} not in (0, 1)")
    if days < 1:
        raise ValueError(f"days: {days} < 1")
    if not 0 <= exceedances <= days:
        raise ValueError(f"exceedances: {exceedances} not in [0, {days}]")
    t, n = float(days), float(exceedances)
    rate = n / t
    null = xlogy(t - n, 1.0 - p) + xlogy(n, p)
    alt = xlogy(t - n, 1.0 - rate) + xlogy(n, rate)
    return float(max(0.0, -2.0 * (null - alt)))


def kupiec_pvalue(lr: float) -> float:
    """``P(chi2(1) > lr)``; 3.841 gives 5%."""
    return float(stats.chi2.sf(lr, df=1))


def traffic_light(days: int, exceedances: int, p: float = 0.01) -> str:
    """Basel traffic-light zone, the 250-day table generalised to any window.

    The Basel Committee (1996, "Supervisory framework for the use of backtesting") places a count
    of exceptions in the green zone while the binomial probability of seeing at most that many
    under a correct model stays below 95%, red from 99.99% on, yellow in between. With T = 250 and
    p = 1% that is green 0-4, yellow 5-9, red 10+. The same two cumulative-probability cut-offs
    applied to Binomial(T, p) scale the table to a window of T days.
    """
    if days < 1:
        raise ValueError(f"days: {days} < 1")
    if not 0 <= exceedances <= days:
        raise ValueError(f"exceedances: {exceedances} not in [0, {days}]")
    cdf = stats.binom.cdf(exceedances, days, p)
    if cdf < 0.95:
        return "green"
    if cdf < 0.9999 - 1e-12:
        return "yellow"
    return "red"


def count_exceedances(loss: np.ndarray, margin: np.ndarray) -> np.ndarray:
    """Boolean mask of days where the realised loss strictly exceeds the margin held.

    Days where either value is NaN (outside the calibrated window) are never exceedances; the
    caller counts only valid days.
    """
    loss = np.asarray(loss, dtype=np.float64)
    margin = np.asarray(margin, dtype=np.float64)
    if loss.shape != margin.shape:
        raise ValueError(f"loss/margin: shapes {loss.shape} and {margin.shape} differ")
    with np.errstate(invalid="ignore"):
        return np.isfinite(loss) & np.isfinite(margin) & (loss > margin)


# --------------------------------------------------------------------------------------------
# Strategy suite
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Leg:
    """One leg of a standard portfolio: kind, strike as a multiple of the forward, expiry, size.

    ``kind`` is ``Kind.FUTURE``, ``Kind.CALL``, ``Kind.PUT`` or ``Kind.PERP``; ``moneyness`` is
    ``K / F`` on the day the portfolio is formed (ignored for futures and perps); ``qty`` is
    signed (long > 0). A perp is booked as a future at the spot end of the curve (expiry 0, as
    the chain margins it) with no funding: the data has no perp market, so none is charged.
    """

    kind: Kind
    moneyness: float
    tenor_days: int
    qty: float


@dataclass(frozen=True)
class Strategy:
    """A named standard portfolio. With ``delta_hedge`` a future (of the first leg's expiry) or,
    with ``hedge`` ``Kind.PERP``, a perp is added whose size cancels the Black-76 delta of the
    option legs on the day the portfolio is formed."""

    name: str
    legs: tuple[Leg, ...]
    delta_hedge: bool = False
    hedge: Kind = Kind.FUTURE

    @property
    def n_legs(self) -> int:
        return len(self.legs) + int(self.delta_hedge)


_F, _C, _P, _PERP = Kind.FUTURE, Kind.CALL, Kind.PUT, Kind.PERP
_DAY = 86_400  # seconds

STRATEGIES: tuple[Strategy, ...] = (
    Strategy("long future", (Leg(_F, 1.0, 30, 1.0),)),
    Strategy("short future", (Leg(_F, 1.0, 30, -1.0),)),
    Strategy("short call", (Leg(_C, 1.0, 30, -1.0),)),
    Strategy("short put", (Leg(_P, 1.0, 30, -1.0),)),
    Strategy("short straddle", (Leg(_C, 1.0, 30, -1.0), Leg(_P, 1.0, 30, -1.0))),
    Strategy("covered call", (Leg(_F, 1.0, 30, 1.0), Leg(_C, 1.1, 30, -1.0))),
    Strategy("bull call spread", (Leg(_C, 1.0, 30, 1.0), Leg(_C, 1.1, 30, -1.0))),
    Strategy("calendar spread", (Leg(_C, 1.0, 30, -1.0), Leg(_C, 1.0, 60, 1.0))),
    Strategy(
        "iron condor",
        (
            Leg(_P, 0.8, 30, 1.0),
            Leg(_P, 0.9, 30, -1.0),
            Leg(_C, 1.1, 30, -1.0),
            Leg(_C, 1.2, 30, 1.0),
        ),
    ),
    Strategy("delta-hedged short call", (Leg(_C, 1.0, 30, -1.0),), delta_hedge=True),
    Strategy("collateral-backed short put", (Leg(_F, 1.0, 0, 1.0), Leg(_P, 1.0, 30, -1.0))),
    Strategy("covered call on collateral", (Leg(_F, 1.0, 0, 1.0), Leg(_C, 1.1, 30, -1.0))),
    Strategy("long perp", (Leg(_PERP, 1.0, 0, 1.0),)),
    Strategy("short perp", (Leg(_PERP, 1.0, 0, -1.0),)),
    Strategy("perp-hedged short call", (Leg(_C, 1.0, 30, -1.0),), delta_hedge=True, hedge=_PERP),
)
"""The suite of the backtest and the capital-efficiency table: one unit per leg, 30-day options
(60 days for the calendar's long leg), strikes relative to the forward on the day of formation.
The last two hold one unit of the underlying's collateral token (WETH under ETH options, WBTC
under BTC options) as a spot leg: a future of expiry 0, which moves like the underlying's spot
in every scenario (how the scan counts collateral priced by an underlying); its haircut, a
liquidity charge on equity, is not counted as margin here, so the test is the stricter one. The
perps are futures at the spot end of the curve (expiry 0) paying no funding: the data has
spot closes only, no perp market and so no premium to fund (docs/backtest-results.md)."""


@dataclass(frozen=True)
class Book:
    """Every leg of every strategy on every day as flat instrument arrays (one row per leg).

    Row ``i`` belongs to day ``day[i]`` (an index into the days of the run, which is also its
    underlying index: each day is margined as its own underlying) and strategy ``strategy[i]``.
    """

    day: np.ndarray
    strategy: np.ndarray
    kind: np.ndarray
    strike: np.ndarray
    expiry: np.ndarray  # seconds after the day's valuation time
    qty: np.ndarray


def build_book(
    forward: np.ndarray, iv: np.ndarray, strategies: tuple[Strategy, ...] = STRATEGIES
) -> Book:
    """The suite formed on each of ``len(forward)`` days (forward and implied vol per day).

    Delta hedges use ``black76_delta`` at the day's forward and implied vol, with r = 0.
    """
    forward = np.asarray(forward, dtype=np.float64)
    iv = np.asarray(iv, dtype=np.float64)
    n_days = forward.shape[0]
    cols: dict[str, list[np.ndarray]] = {k: [] for k in Book.__dataclass_fields__}
    days = np.arange(n_days)

    def add(k: int, kind: Kind, strike: np.ndarray, tenor: int, qty: np.ndarray) -> None:
        cols["day"].append(days)
        cols["strategy"].append(np.full(n_days, k))
        cols["kind"].append(np.full(n_days, int(kind)))
        cols["strike"].append(strike)
        cols["expiry"].append(np.full(n_days, tenor * _DAY))
        cols["qty"].append(qty)

    nan = np.full(n_days, np.nan)
    for k, strat in enumerate(strategies):
        delta = np.zeros(n_days)
        for leg in strat.legs:
            if leg.kind == Kind.PERP:  # a future at the spot end, no funding (see Leg)
                add(k, Kind.FUTURE, nan, 0, np.full(n_days, leg.qty))
                delta += leg.qty
                continue
            strike = forward * leg.moneyness if leg.kind != Kind.FUTURE else nan
            add(k, leg.kind, strike, leg.tenor_days, np.full(n_days, leg.qty))
            if leg.kind == Kind.FUTURE:
                delta += leg.qty
            else:
                t = leg.tenor_days / 365.0
                delta += leg.qty * black76_delta(forward, strike, t, iv, 0.0, leg.kind == Kind.CALL)
        if strat.delta_hedge:
            tenor = 0 if strat.hedge == Kind.PERP else strat.legs[0].tenor_days
            add(k, Kind.FUTURE, nan, tenor, -delta)
    flat = {k: np.concatenate(v) for k, v in cols.items()}
    order = np.lexsort((flat["strategy"], flat["day"]))  # group rows by day, then strategy
    return Book(**{k: v[order] for k, v in flat.items()})


# --------------------------------------------------------------------------------------------
# Day-by-day backtest
# --------------------------------------------------------------------------------------------


def iv_proxy(sigma_daily: np.ndarray | float, premium: float) -> np.ndarray | float:
    """Implied-volatility proxy: ``premium * sigma_EWMA * sqrt(365)`` (annualised, calendar days).

    The data has no option prices; crypto implied vol has traded above realised (a variance risk
    premium of roughly 10%, e.g. Deribit DVOL against 30-day realised), hence ``premium = 1.10``
    by default. Worked number: daily EWMA 3% -> 1.1 * 0.03 * 19.105 = 63.0%.
    """
    return premium * np.asarray(sigma_daily, dtype=np.float64) * math.sqrt(365.0)


@dataclass(frozen=True)
class BacktestConfig:
    """Everything a backtest run depends on besides the price data."""

    calibration: CalibrationParams = field(default_factory=CalibrationParams)
    iv_premium: float = 1.10
    # the parameter set's short-option minimum and IM factor (params/margin.json)
    som_rate: float = field(default_factory=lambda: float(margin_params().som_rate))
    im_factor: float = field(default_factory=lambda: float(margin_params().im_factor))
    grid: ScenarioGrid = CRYPTO_35
    in_sample_end: str = "2021-12-31"
    starts: tuple[tuple[str, str], ...] = (("ETH", "2015-09-01"),)
    strategies: tuple[Strategy, ...] = STRATEGIES
    chunk_days: int = 128

    def __post_init__(self) -> None:
        if not self.iv_premium > 0.0:
            raise ValueError(f"iv_premium: {self.iv_premium} must be > 0")
        if not 0.0 <= self.som_rate <= 1.0:
            raise ValueError(f"som_rate: {self.som_rate} not in [0, 1]")
        if not self.im_factor >= 1.0:
            raise ValueError(f"im_factor: {self.im_factor} < 1")
        if self.chunk_days < 1:
            raise ValueError(f"chunk_days: {self.chunk_days} < 1")

    def start_of(self, asset: str) -> str | None:
        """First date used for ``asset`` (None: the whole file)."""
        return dict(self.starts).get(asset)


DEFAULT_CONFIG = BacktestConfig()
"""The configuration of the reported backtest (docs/backtest-results.md)."""


@dataclass(frozen=True)
class AssetRun:
    """Margin and realised loss of every strategy on every backtest day of one asset.

    ``margin[d, k]``: MM of strategy ``k`` formed at the close of ``dates[d]`` with the model as of
    that day; ``loss[d, k]``: its realised loss over the next horizon (positive = loss), marking
    options with Black-76 at the next close's forward and implied-vol proxy, one horizon closer
    to expiry.
    """

    asset: str
    dates: np.ndarray
    spot: np.ndarray
    psr: np.ndarray
    iv: np.ndarray
    margin: np.ndarray
    loss: np.ndarray
    in_sample: np.ndarray
    strategies: tuple[str, ...]
    config: BacktestConfig

    @property
    def exceed(self) -> np.ndarray:
        return count_exceedances(self.loss, self.margin)


def run_asset(
    series: PriceSeries,
    config: BacktestConfig = BacktestConfig(),
    advance: Callable[[int], None] | None = None,
) -> AssetRun:
    """Backtest the strategy suite on one asset's closes (see the module docs for the method).

    Each day is its own underlying in one vectorised risk-array call (``risk_arrays``) and in
    ``margin_of_accounts`` (in chunks of ``chunk_days`` days), so the run has no per-day Python
    loop.
    ``advance(k)`` is called as chunks finish (for a progress bar; total = number of days).
    """
    cal = config.calibration
    start = config.start_of(series.asset)
    if start is not None:
        series = series.window(start=start)
    h = cal.horizon_days
    end = np.datetime64(config.in_sample_end, "D")
    last_in = int(np.searchsorted(series.dates, end, side="right")) - 1
    ps = psr_series(series.close, cal, series.dates, fit_until=last_in)
    n = len(series)
    idx = np.arange(ps.first_valid, n - h)
    if idx.shape[0] == 0:
        raise ValueError(f"{series.asset}: no day with a calibrated margin and a next close")
    spot, spot1 = series.close[idx], series.close[idx + h]
    iv = iv_proxy(ps.sigma[idx], config.iv_premium)
    iv1 = iv_proxy(ps.sigma[idx + h], config.iv_premium)
    psr = ps.psr[idx]
    gap = (series.dates[idx + h] - series.dates[idx]).astype(np.int64) * _DAY

    book = build_book(spot, iv, config.strategies)
    ins = Instruments(book.day, book.kind, book.strike, book.expiry)
    today = MarketState(0, spot, iv[book.day])
    arrays = risk_arrays(ins, today, config.grid, psr)
    mark0 = marks(ins, today)
    # one horizon closer to expiry; a spot leg (expiry 0: collateral) stays spot
    later = np.where(book.expiry == 0, 0, book.expiry - gap[book.day])
    ins1 = Instruments(book.day, book.kind, book.strike, later)
    mark1 = marks(ins1, MarketState(0, spot1, iv1[book.day]))

    n_days, n_strat = idx.shape[0], len(config.strategies)
    account = book.day * n_strat + book.strategy
    loss = -np.bincount(account, weights=book.qty * (mark1 - mark0), minlength=n_days * n_strat)
    margin = np.empty(n_days * n_strat)
    bounds = np.searchsorted(book.day, np.arange(0, n_days + config.chunk_days, config.chunk_days))
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        if lo == hi:
            continue
        d0, d1 = int(book.day[lo]), int(book.day[hi - 1]) + 1
        rows = np.arange(lo, hi)
        market = MarketArrays(
            underlying=book.day[rows] - d0,
            is_option=book.kind[rows] != Kind.FUTURE,
            marks=mark0[rows],
            risk_arrays=arrays[rows],
            spot=spot[d0:d1],
            som_rate=np.full(d1 - d0, config.som_rate),
        )
        acc = account[rows] - d0 * n_strat
        pos = sp.csr_matrix(
            (book.qty[rows], (acc, rows - lo)), shape=((d1 - d0) * n_strat, hi - lo)
        )
        state = margin_of_accounts(pos, market, im_factor=config.im_factor)
        margin[d0 * n_strat : d1 * n_strat] = state.maintenance_margin
        if advance is not None:
            advance(d1 - d0)
    return AssetRun(
        asset=series.asset,
        dates=series.dates[idx],
        spot=spot,
        psr=psr,
        iv=iv,
        margin=margin.reshape(n_days, n_strat),
        loss=loss.reshape(n_days, n_strat),
        in_sample=idx <= last_in,
        strategies=tuple(s.name for s in config.strategies),
        config=config,
    )


@dataclass(frozen=True)
class BacktestRow:
    """One line of the backtest table."""

    asset: str
    strategy: str
    window: str  # "in-sample" | "out-of-sample"
    start: str
    end: str
    confidence: float
    days: int
    exceedances: int
    rate: float
    kupiec_lr: float
    kupiec_p: float
    zone: str

    @property
    def verdict(self) -> str:
        """Kupiec at 5%: "not rejected", or rejected with too many / too few exceedances (the
        latter is a conservative model: safe, but it costs capital)."""
        if self.kupiec_p >= 0.05:
            return "not rejected"
        return "rejected: too many" if self.rate > 1.0 - self.confidence else "rejected: too few"


def summarize(run: AssetRun) -> list[BacktestRow]:
    """Kupiec and traffic-light rows per strategy and window (empty windows are left out)."""
    conf = run.config.calibration.confidence
    p = 1.0 - conf
    out = []
    exceed = run.exceed
    for window, mask in (("in-sample", run.in_sample), ("out-of-sample", ~run.in_sample)):
        days = int(mask.sum())
        if days == 0:
            continue
        dates = run.dates[mask]
        for k, name in enumerate(run.strategies):
            n_exc = int(exceed[mask, k].sum())
            lr = kupiec_lr(p, days, n_exc)
            out.append(
                BacktestRow(
                    run.asset,
                    name,
                    window,
                    str(dates[0]),
                    str(dates[-1]),
                    conf,
                    days,
                    n_exc,
                    n_exc / days,
                    lr,
                    kupiec_pvalue(lr),
                    traffic_light(days, n_exc, p),
                )
            )
    return out
