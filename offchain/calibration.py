"""Calibration of the price scan range (PSR): EWMA volatility x fat-tailed quantile.

Method (docs/design.md §5, "PSR calibrated per underlying from an EWMA volatility and a fat-tailed
quantile"):

1. Daily log returns ``r_t = ln(C_t / C_{t-1})``.
2. RiskMetrics EWMA variance (J.P. Morgan RiskMetrics 1996; J. Hull, *Risk Management and
   Financial Institutions*, ch. 10)::

       s2_t = lambda * s2_{t-1} + (1 - lambda) * r_{t-1}^2

   so ``sigma_t`` is the forecast for ``r_t`` made with returns up to ``t-1``. Worked number
   (Hull's example): lambda 0.90, sigma 1%, return 2% -> sqrt(0.9e-4 + 0.1 * 4e-4) = 1.14018%.
3. Standardised returns ``z_t = r_t / sigma_t``; a Student-t with location 0 is fitted to them by
   maximum likelihood (degrees of freedom ``nu`` and scale ``s``), on an expanding window of data up
   to the calibration day, refitted every ``refit_every_days`` rows (monthly by default).
4. ``PSR_t = clip(q * sigma_{t+1} * sqrt(h), floor, cap)`` with ``q = t.ppf(confidence; nu, 0, s)``
   and ``sigma_{t+1}`` the EWMA forecast after the close of day ``t``. The sqrt(h) rule treats the
   h daily standardised shocks as independent; for h = 1 (the default) it is exact.

Why a Student-t on EWMA-standardised returns rather than filtered historical simulation: the EWMA
filter removes most of the volatility clustering, but the standardised crypto returns still have
excess kurtosis (fitted nu of about 3 to 5); a fitted t extrapolates the 99% and 99.9% tails
smoothly from a few hundred points, where the empirical 99% quantile of FHS rests on two or three
observations per year and jumps when one of them leaves or enters the window. The price is a
symmetric tail; crypto's two tails are close enough at daily horizons that the fitted symmetric t
covers both (the backtest checks long and short futures separately).

The floor keeps margin from collapsing in calm markets (anti-procyclicality, as CCPs floor their
scan ranges); the cap keeps a broken print from posting an absurd PSR (the grid's tail scenarios,
out to -66% / +500%, cover moves beyond it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np
from scipy import signal, stats

from offchain.params import margin_params

__all__ = [
    "Calibration",
    "CalibrationParams",
    "PSRSeries",
    "StudentT",
    "calibrate",
    "ewma_sigma",
    "ewma_update",
    "fit_student_t",
    "log_returns",
    "psr_from_sigma",
    "psr_series",
]


@dataclass(frozen=True)
class CalibrationParams:
    """Parameters of the PSR calibration (all dimensionless; horizon and windows in data rows)."""

    ewma_lambda: float = 0.94
    confidence: float = 0.99
    horizon_days: int = 1
    # the PSR bounds of the parameter set (params/margin.json psr_min / psr_max)
    psr_floor: float = field(default_factory=lambda: float(margin_params().psr_min))
    psr_cap: float = field(default_factory=lambda: float(margin_params().psr_max))
    warmup_days: int = 250
    refit_every_days: int = 30
    min_dof: float = 2.5
    max_dof: float = 100.0

    def __post_init__(self) -> None:
        if not 0.0 < self.ewma_lambda < 1.0:
            raise ValueError(f"ewma_lambda: {self.ewma_lambda} not in (0, 1)")
        if not 0.5 < self.confidence < 1.0:
            raise ValueError(f"confidence: {self.confidence} not in (0.5, 1)")
        if self.horizon_days < 1:
            raise ValueError(f"horizon_days: {self.horizon_days} < 1")
        if not 0.0 <= self.psr_floor <= self.psr_cap:
            raise ValueError(f"psr_floor/psr_cap: need 0 <= {self.psr_floor} <= {self.psr_cap}")
        if self.warmup_days < 60:
            # The first 30 standardised returns carry the EWMA seed and are never fitted.
            raise ValueError(f"warmup_days: {self.warmup_days} < 60 (too few to fit a tail)")
        if self.refit_every_days < 1:
            raise ValueError(f"refit_every_days: {self.refit_every_days} < 1")
        if not 2.0 < self.min_dof <= self.max_dof:
            raise ValueError(f"min_dof/max_dof: need 2 < {self.min_dof} <= {self.max_dof}")


@dataclass(frozen=True)
class StudentT:
    """A location-0 Student-t: degrees of freedom and scale (of the standardised returns)."""

    dof: float
    scale: float

    def quantile(self, confidence: float | np.ndarray) -> float | np.ndarray:
        """Upper quantile, e.g. ``StudentT(4, 0.7).quantile(0.99) = 0.7 * 3.747 = 2.623``."""
        return stats.t.ppf(confidence, self.dof, loc=0.0, scale=self.scale)


@dataclass(frozen=True)
class PSRSeries:
    """Calibration as of every day ``t`` (arrays aligned with the price series).

    ``sigma[t]``: EWMA daily vol forecast for the return from ``t`` to ``t+1`` (known at the close
    of ``t``); ``dof[t]``, ``scale[t]``: the t fit in force on day ``t``; ``psr[t]``: the scan range
    for the horizon starting at ``t``. Entries before the warm-up are NaN.
    """

    dates: np.ndarray
    sigma: np.ndarray
    dof: np.ndarray
    scale: np.ndarray
    psr: np.ndarray
    params: CalibrationParams

    @property
    def first_valid(self) -> int:
        """Index of the first day with a calibrated PSR."""
        return int(np.argmax(np.isfinite(self.psr)))


def log_returns(close: np.ndarray) -> np.ndarray:
    """``ln(C_t / C_{t-1})`` for t = 1..n-1 (length n-1)."""
    close = np.asarray(close, dtype=np.float64)
    if close.ndim != 1 or close.shape[0] < 2:
        raise ValueError("close: need a 1-d array of at least two prices")
    if not np.all(np.isfinite(close)) or np.any(close <= 0.0):
        raise ValueError("close: prices must be finite and positive")
    return np.diff(np.log(close))


def ewma_update(prev_sigma: float, ret: float, lam: float = 0.94) -> float:
    """One RiskMetrics step: ``sqrt(lam * prev_sigma^2 + (1 - lam) * ret^2)``.

    >>> round(ewma_update(0.01, 0.02, 0.90), 7)
    0.0114018
    """
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam: {lam} not in (0, 1)")
    if prev_sigma < 0.0:
        raise ValueError(f"prev_sigma: {prev_sigma} < 0")
    return math.sqrt(lam * prev_sigma * prev_sigma + (1.0 - lam) * ret * ret)


def ewma_sigma(returns: np.ndarray, lam: float = 0.94, sigma0: float | None = None) -> np.ndarray:
    """EWMA volatility forecasts, length ``len(returns) + 1``.

    ``out[0] = sigma0`` (default: root mean square of the first min(30, n) returns) and
    ``out[t+1] = ewma_update(out[t], returns[t], lam)``, computed as one linear filter over the
    squared returns (no Python loop).
    """
    r = np.asarray(returns, dtype=np.float64)
    if r.ndim != 1 or r.shape[0] == 0:
        raise ValueError("returns: need a non-empty 1-d array")
    if not 0.0 < lam < 1.0:
        raise ValueError(f"lam: {lam} not in (0, 1)")
    if sigma0 is None:
        sigma0 = float(np.sqrt(np.mean(r[: min(30, r.shape[0])] ** 2)))
    if sigma0 < 0.0:
        raise ValueError(f"sigma0: {sigma0} < 0")
    s2_0 = sigma0 * sigma0
    # y[n] = lam * y[n-1] + (1 - lam) * x[n], with y[-1] = s2_0.
    s2, _ = signal.lfilter([1.0 - lam], [1.0, -lam], r * r, zi=[lam * s2_0])
    return np.sqrt(np.concatenate(([s2_0], s2)))


def fit_student_t(z: np.ndarray, min_dof: float = 2.5, max_dof: float = 100.0) -> StudentT:
    """Maximum-likelihood location-0 Student-t fit to standardised returns ``z``.

    The degrees of freedom are clipped to ``[min_dof, max_dof]`` (below 2 the variance is
    infinite; above 100 the t is a normal for every practical purpose); when clipping binds, the
    scale is refitted with the clipped dof.
    """
    z = np.asarray(z, dtype=np.float64)
    z = z[np.isfinite(z)]
    if z.shape[0] < 30:
        raise ValueError(f"z: {z.shape[0]} finite values, need at least 30 to fit a tail")
    dof, _, scale = stats.t.fit(z, floc=0.0)
    if not min_dof <= dof <= max_dof:
        dof = float(np.clip(dof, min_dof, max_dof))
        _, _, scale = stats.t.fit(z, fix_df=dof, floc=0.0)
    return StudentT(float(dof), float(scale))


def psr_from_sigma(
    sigma: float | np.ndarray, dist: StudentT, params: CalibrationParams
) -> float | np.ndarray:
    """``clip(q * sigma * sqrt(h), floor, cap)`` with ``q`` the t quantile at the confidence.

    Worked number: sigma 4%, t(nu=4, scale 0.72), 99%, h = 1: 0.72 * 3.747 * 0.04 = 10.8%.
    """
    q = dist.quantile(params.confidence)
    raw = q * np.asarray(sigma, dtype=np.float64) * math.sqrt(params.horizon_days)
    out = np.clip(raw, params.psr_floor, params.psr_cap)
    return float(out) if out.ndim == 0 else out


def psr_series(
    close: np.ndarray,
    params: CalibrationParams = CalibrationParams(),
    dates: np.ndarray | None = None,
    fit_until: int | None = None,
) -> PSRSeries:
    """Point-in-time calibration for every day of a price series (no look-ahead).

    Day ``t``'s PSR uses closes ``0..t`` only: the EWMA forecast made at the close of ``t`` (for
    the return from ``t`` to ``t + 1``) and the t fit of the last refit day ``<= t`` (expanding
    window of standardised returns). The first ``warmup_days`` returns seed the EWMA and the
    first fit; earlier days are NaN.

    ``fit_until`` (a day index) freezes the t fit after that day: later days keep the last fit
    made on or before it while the EWMA volatility goes on updating. The backtest uses it to
    calibrate on data up to 2021-12-31 and run the years after out of sample.
    """
    close = np.asarray(close, dtype=np.float64)
    r = log_returns(close)
    n = close.shape[0]
    if r.shape[0] <= params.warmup_days:
        raise ValueError(
            f"close: {n} prices, need more than warmup_days + 1 = {params.warmup_days + 1}"
        )
    sig = ewma_sigma(r, params.ewma_lambda)  # sig[k] forecasts r[k] = ln C_{k+1}/C_k
    z = r / sig[:-1]
    # Day t (price index) knows returns r[0..t-1]; its forecast for r[t] is sig[t].
    sigma_day = sig  # length n: sig[t] is known at the close of day t
    dof = np.full(n, np.nan)
    scale = np.full(n, np.nan)
    start = params.warmup_days  # first day with warmup_days returns behind it
    refit_days = np.arange(start, n, params.refit_every_days)
    if fit_until is not None:
        refit_days = refit_days[refit_days <= max(fit_until, start)]
    for k, day in enumerate(refit_days):
        # Skip the first 30 standardised returns: they depend on the EWMA seed.
        fit = fit_student_t(z[30:day], params.min_dof, params.max_dof)
        stop = refit_days[k + 1] if k + 1 < refit_days.shape[0] else n
        dof[day:stop] = fit.dof
        scale[day:stop] = fit.scale
    q = np.full(n, np.nan)
    ok = np.isfinite(dof)
    q[ok] = stats.t.ppf(params.confidence, dof[ok], loc=0.0, scale=scale[ok])
    raw = q * sigma_day * math.sqrt(params.horizon_days)
    psr = np.where(ok, np.clip(raw, params.psr_floor, params.psr_cap), np.nan)
    if dates is None:
        dates = np.arange(n)
    return PSRSeries(np.asarray(dates), sigma_day, dof, scale, psr, params)


@dataclass(frozen=True)
class Calibration:
    """The calibration as of the last day of a series: what the keeper would post today."""

    asset: str
    as_of: str
    sigma_daily: float
    dof: float
    scale: float
    psr: float
    params: CalibrationParams


def calibrate(
    asset: str,
    close: np.ndarray,
    dates: np.ndarray,
    params: CalibrationParams = CalibrationParams(),
) -> Calibration:
    """PSR of ``asset`` as of the last close: EWMA forecast and a t fit on all standardised returns.

    ``dates`` only labels the result (``as_of``); the fit uses every return after the first 30.
    """
    close = np.asarray(close, dtype=np.float64)
    r = log_returns(close)
    if r.shape[0] < 60:
        raise ValueError(f"close: {close.shape[0]} prices, need at least 61 to calibrate")
    sig = ewma_sigma(r, params.ewma_lambda)
    fit = fit_student_t(r[30:] / sig[30:-1], params.min_dof, params.max_dof)
    psr = psr_from_sigma(float(sig[-1]), fit, params)
    return Calibration(
        asset, str(dates[-1]), float(sig[-1]), fit.dof, fit.scale, float(psr), params
    )
