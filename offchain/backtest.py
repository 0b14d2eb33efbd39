"""Backtest statistics: exceedance counting, Kupiec POF test, Basel traffic light."""

from __future__ import annotations

import numpy as np
from scipy import stats
from scipy.special import xlogy

__all__ = ["count_exceedances", "kupiec_lr", "kupiec_pvalue", "traffic_light"]


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
