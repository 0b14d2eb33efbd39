"""Capital efficiency: the strategy suite margined three ways at one market state.

(a) **portfolio**: the portfolio model (docs/design.md §5: one scan over all legs on the
    underlying, the short-option minimum as a floor), ``margin.margin_of_accounts`` on the
    strategy as one account;
(b) **sum of legs**: each leg margined alone by the same model, the margins added (what a venue
    without cross-margining charges);
(c) **full collateral**: the way Opyn-style option vaults secure a short option, by locking its
    worst payoff: a short call locks one unit of the underlying (its value, the forward), a short
    put locks its strike; long options need nothing (the premium is paid). Such vaults do not
    list futures, so a future leg is charged its stand-alone model margin, as in (b).

The market state is an asset's calibration as of the last close of its data (``market_point``):
forward = the close, PSR from ``calibration.calibrate``, implied vol from ``backtest.iv_proxy``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import scipy.sparse as sp

from offchain.backtest import (
    DEFAULT_CONFIG,
    STRATEGIES,
    BacktestConfig,
    Strategy,
    build_book,
    iv_proxy,
)
from offchain.calibration import calibrate
from offchain.data import PriceSeries
from offchain.margin import Kind, MarketArrays, margin_of_accounts
from offchain.risk_arrays import Instruments, MarketState, marks, risk_arrays

__all__ = ["EfficiencyRow", "MarketPoint", "efficiency_table", "market_point"]


@dataclass(frozen=True)
class MarketPoint:
    """One underlying's market state: forward (USD), PSR (fraction), implied vol (annual)."""

    asset: str
    as_of: str
    forward: float
    psr: float
    iv: float

    def __post_init__(self) -> None:
        if not self.forward > 0.0:
            raise ValueError(f"forward: {self.forward} must be > 0")
        if not 0.0 < self.psr <= 1.0:
            raise ValueError(f"psr: {self.psr} not in (0, 1]")
        if not self.iv > 0.0:
            raise ValueError(f"iv: {self.iv} must be > 0")


@dataclass(frozen=True)
class EfficiencyRow:
    """Margin of one strategy under the three regimes (USD) and the ratios to the portfolio."""

    asset: str
    strategy: str
    portfolio: float
    sum_of_legs: float
    full_collateral: float

    @property
    def legs_ratio(self) -> float:
        """(b) / (a): how much more a per-leg venue charges."""
        return self.sum_of_legs / self.portfolio

    @property
    def collateral_ratio(self) -> float:
        """(c) / (a): how much more full collateralisation locks."""
        return self.full_collateral / self.portfolio


def market_point(series: PriceSeries, config: BacktestConfig = DEFAULT_CONFIG) -> MarketPoint:
    """The calibrated market state of ``series`` as of its last close."""
    start = config.start_of(series.asset)
    if start is not None:
        series = series.window(start=start)
    cal = calibrate(series.asset, series.close, series.dates, config.calibration)
    return MarketPoint(
        series.asset,
        cal.as_of,
        float(series.close[-1]),
        cal.psr,
        float(iv_proxy(cal.sigma_daily, config.iv_premium)),
    )


def efficiency_table(
    point: MarketPoint,
    config: BacktestConfig = DEFAULT_CONFIG,
    strategies: tuple[Strategy, ...] = STRATEGIES,
) -> list[EfficiencyRow]:
    """Margins (a), (b), (c) of every strategy at ``point`` (one unit per leg)."""
    book = build_book(np.array([point.forward]), np.array([point.iv]), strategies)
    n = book.qty.shape[0]
    ins = Instruments(np.zeros(n, dtype=np.int64), book.kind, book.strike, book.expiry)
    market = MarketState(0, np.array([point.forward]), np.full(n, point.iv))
    arrays = risk_arrays(ins, market, config.grid, [point.psr])
    is_option = book.kind != Kind.FUTURE
    ma = MarketArrays(
        underlying=ins.underlying,
        is_option=is_option,
        marks=marks(ins, market),
        risk_arrays=arrays,
        spot=np.array([point.forward]),
        som_rate=np.array([config.som_rate]),
    )
    rows = np.arange(n)
    k = len(strategies)
    whole = sp.csr_matrix((book.qty, (book.strategy, rows)), shape=(k, n))
    alone = sp.csr_matrix((book.qty, (rows, rows)), shape=(n, n))
    mm_whole = margin_of_accounts(whole, ma, im_factor=config.im_factor).maintenance_margin
    mm_leg = margin_of_accounts(alone, ma, im_factor=config.im_factor).maintenance_margin
    short = book.qty < 0
    locked = np.where(
        is_option,
        np.where(
            short, -book.qty * np.where(book.kind == Kind.CALL, point.forward, book.strike), 0
        ),
        mm_leg,
    )
    legs = np.bincount(book.strategy, weights=mm_leg, minlength=k)
    full = np.bincount(book.strategy, weights=locked, minlength=k)
    return [
        EfficiencyRow(point.asset, s.name, float(mm_whole[i]), float(legs[i]), float(full[i]))
        for i, s in enumerate(strategies)
    ]
