"""Risk arrays: weighted value change of one long unit of each instrument under each scenario.

``RA[j, s] = w_s * (V_j(F * (1 + m_s), sigma_js, T_j) - V_j(F, sigma_j, T_j))`` where ``m_s`` is
the scenario's price move as a fraction of the price (``move * PSR`` or a fraction), ``w_s`` its
effective weight and ``sigma_js`` the shocked vol (docs/design.md §5, SPAN). Losses are
negative. Options are repriced with Black-76 (``offchain.pricing``) on the forward of their
expiry, sticky strike; futures are linear: ``RA = F * m_s * w_s`` exactly, which equals
``F * c_s * PSR``.

A scenario with a forward-curve tilt ``t_s`` also moves the forward of expiry ``T`` by
``t_s * h_T``, the curve shift of that expiry (``docs/fixed-point.md`` §3): basis times time to
expiry, less up to one PSR inside the roll window before expiry. Futures then gain
``F * t_s * h_T`` (the chain adds it unweighted; a tilted scenario has weight 1) and options are
repriced at ``F * (1 + m_s + t_s * h_T)``.

For the chain, ``risk_arrays_wad`` gives WAD integers (futures through
``fixed_point.futures_risk_array_wad``, the formula the oracle itself applies; options through
``to_wad``) and ``encode_all`` the stored ``(exponent, int16 entries)`` per instrument
(``docs/fixed-point.md`` §3).

Example: a future at F = 100 on the CME grid with PSR = 0.16 has the array
``[0, 0, 5.33, 5.33, -5.33, -5.33, ..., 16, 16, -16, -16, 11.2, -11.2]`` (the extreme move
2 x 16 = 32 counted at 35%).
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

from offchain.fixed_point import (
    MAX_PRICE,
    TAU_CAP,
    curve_shift_wad,
    encode_risk_array,
    futures_risk_array_wad,
    to_wad,
)
from offchain.margin import InstrumentInt, Kind, MarketArrays, MarketInt, UnderlyingInt
from offchain.pricing import _price_from_logs, _price_kernel
from offchain.scenarios import ScenarioGrid

__all__ = [
    "SECONDS_PER_YEAR",
    "Instruments",
    "VolSurface",
    "MarketState",
    "years_to_expiry",
    "curve_shifts",
    "forwards",
    "implied_vols",
    "marks",
    "risk_arrays",
    "risk_arrays_wad",
    "spot_leg_arrays",
    "marks_wad",
    "encode_all",
    "market_arrays",
    "market_int",
]

_WORKERS = min(2, os.cpu_count() or 1)
_PARALLEL_MIN = 4_096  # options; below this one thread is faster than the hand-off
_POOL: ThreadPoolExecutor | None = None


def _pool() -> ThreadPoolExecutor:
    """A small shared pool: numpy and scipy ufuncs release the GIL on large arrays."""
    global _POOL
    if _POOL is None:
        _POOL = ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="risk-arrays")
    return _POOL


SECONDS_PER_YEAR = 31_536_000
"""Year fraction = seconds / 31,536,000 (365 days), as on-chain (``docs/fixed-point.md`` §1)."""


@dataclass(frozen=True)
class Instruments:
    """Listed instruments as parallel arrays (n instruments).

    Attributes:
        underlying: (n,) int underlying index.
        kind: (n,) int, ``Kind`` codes (0 future, 1 call, 2 put).
        strike: (n,) float, > 0 for options (ignored for futures).
        expiry: (n,) int unix seconds.
    """

    underlying: np.ndarray
    kind: np.ndarray
    strike: np.ndarray
    expiry: np.ndarray

    def __post_init__(self) -> None:
        und = np.asarray(self.underlying)
        n = und.shape[0] if und.ndim == 1 else -1
        if und.ndim != 1 or (n and not np.issubdtype(und.dtype, np.integer)) or np.any(und < 0):
            raise ValueError("underlying must be a 1-D array of non-negative ints")
        kind = np.asarray(self.kind)
        if kind.shape != (n,) or not np.all(np.isin(kind, [k.value for k in Kind])):
            raise ValueError(
                f"kind must have shape ({n},) with values 0 (future), 1 (call), 2 (put)"
            )
        strike = np.asarray(self.strike, dtype=np.float64)
        if strike.shape != (n,):
            raise ValueError(f"strike must have shape ({n},), got {strike.shape}")
        is_opt = (kind == Kind.CALL) | (kind == Kind.PUT)
        if not np.all(np.isfinite(strike[is_opt])) or np.any(strike[is_opt] <= 0):
            raise ValueError("strike must be finite and > 0 for options")
        expiry = np.asarray(self.expiry)
        if expiry.shape != (n,) or (n and not np.issubdtype(expiry.dtype, np.integer)):
            raise ValueError(f"expiry must be an int array (unix seconds) of shape ({n},)")
        object.__setattr__(self, "underlying", und.astype(np.int64))
        object.__setattr__(self, "kind", kind.astype(np.int64))
        object.__setattr__(self, "strike", np.where(is_opt, strike, np.nan))
        object.__setattr__(self, "expiry", expiry.astype(np.int64))

    @classmethod
    def from_records(cls, records: Iterable[Mapping[str, object]]) -> Instruments:
        """Build from dicts ``{"underlying", "kind" ("future"|"call"|"put"), "strike", "expiry"}``.

        Raises:
            ValueError: naming the record index and field.
        """
        und, kind, strike, expiry = [], [], [], []
        for i, rec in enumerate(records):
            try:
                kind_name = str(rec["kind"]).upper()
                if kind_name not in Kind.__members__:
                    raise ValueError(f"kind must be future, call or put, got {rec['kind']!r}")
                kind.append(Kind[kind_name].value)
                und.append(int(rec["underlying"]))
                strike.append(float(rec.get("strike", np.nan) or np.nan))
                expiry.append(int(rec["expiry"]))
            except KeyError as exc:
                raise ValueError(f"instruments[{i}]: missing field {exc}") from None
            except (TypeError, ValueError) as exc:
                raise ValueError(f"instruments[{i}]: {exc}") from None
        return cls(
            np.array(und, dtype=np.int64),
            np.array(kind, dtype=np.int64),
            np.array(strike, dtype=np.float64),
            np.array(expiry, dtype=np.int64),
        )

    def __len__(self) -> int:
        return self.underlying.shape[0]

    @property
    def is_option(self) -> np.ndarray:
        return (self.kind == Kind.CALL) | (self.kind == Kind.PUT)


@dataclass(frozen=True)
class VolSurface:
    """A simple smile per underlying: ``sigma = max(min_vol, atm_u + skew_u * ln(K / F))``."""

    atm: np.ndarray
    skew: np.ndarray | None = None
    min_vol: float = 0.01

    def __post_init__(self) -> None:
        atm = np.asarray(self.atm, dtype=np.float64)
        if atm.ndim != 1 or not np.all(np.isfinite(atm)) or np.any(atm < 0):
            raise ValueError("atm must be a 1-D array of finite vols >= 0")
        skew = np.zeros_like(atm) if self.skew is None else np.asarray(self.skew, np.float64)
        if skew.shape != atm.shape or not np.all(np.isfinite(skew)):
            raise ValueError(f"skew must be finite with shape {atm.shape}")
        if not np.isfinite(self.min_vol) or self.min_vol < 0:
            raise ValueError("min_vol must be finite and >= 0")
        object.__setattr__(self, "atm", atm)
        object.__setattr__(self, "skew", skew)

    def vol(self, underlying: np.ndarray, strike: np.ndarray, forward: np.ndarray) -> np.ndarray:
        u = np.asarray(underlying)
        if u.size and u.max() >= self.atm.shape[0]:
            raise ValueError(
                f"vol surface has {self.atm.shape[0]} underlyings, got index {u.max()}"
            )
        with np.errstate(invalid="ignore"):
            smile = self.atm[u] + self.skew[u] * np.log(strike / forward)
        return np.maximum(np.nan_to_num(smile, nan=self.atm[u]), self.min_vol)


@dataclass(frozen=True)
class MarketState:
    """Market at ``valuation_time`` (unix seconds).

    Forward of an expiry: ``forwards[(u, expiry)]`` when given, else ``spot_u * exp(rate * T)``.
    Implied vol: ``vols`` per instrument ((n,) array) or a ``VolSurface``.
    Forward curve per underlying: ``basis`` (fraction per year) and ``roll`` (seconds), both
    zero when absent (``docs/fixed-point.md`` §3); ``valuation_time`` is the batch timestamp.
    """

    valuation_time: int
    spot: np.ndarray
    vols: np.ndarray | VolSurface
    rate: float = 0.0
    forwards: Mapping[tuple[int, int], float] = field(default_factory=dict)
    basis: np.ndarray | None = None
    roll: np.ndarray | None = None

    def __post_init__(self) -> None:
        spot = np.asarray(self.spot, dtype=np.float64)
        if spot.ndim != 1 or not np.all(np.isfinite(spot)) or np.any(spot <= 0):
            raise ValueError("spot must be a 1-D array of finite prices > 0")
        if not np.isfinite(self.rate):
            raise ValueError("rate must be finite")
        if not isinstance(self.vols, VolSurface):
            vols = np.asarray(self.vols, dtype=np.float64)
            if vols.ndim != 1 or not np.all(np.isfinite(vols)) or np.any(vols < 0):
                raise ValueError("vols must be a 1-D array of finite vols >= 0 or a VolSurface")
            object.__setattr__(self, "vols", vols)
        for key, value in self.forwards.items():
            if not (np.isfinite(value) and value > 0):
                raise ValueError(f"forwards[{key}] must be finite and > 0, got {value}")
        for name, hi in (("basis", 0.5), ("roll", 14 * 86_400)):
            v = getattr(self, name)
            v = np.zeros_like(spot) if v is None else np.asarray(v, dtype=np.float64)
            if v.shape != spot.shape or not np.all((v >= 0) & (v <= hi)):
                raise ValueError(f"{name} must hold one value in [0, {hi}] per underlying")
            object.__setattr__(self, name, v)
        object.__setattr__(self, "spot", spot)


def years_to_expiry(instruments: Instruments, market: MarketState) -> np.ndarray:
    """``(expiry - valuation_time) / 31,536,000``; raises ``ValueError`` if any has expired."""
    secs = instruments.expiry - int(market.valuation_time)
    if np.any(secs < 0):
        j = int(np.flatnonzero(secs < 0)[0])
        raise ValueError(f"instrument {j} expired before valuation_time")
    return secs / SECONDS_PER_YEAR


def curve_shifts(instruments: Instruments, market: MarketState, psr: np.ndarray) -> np.ndarray:
    """Curve shift ``h`` of each instrument's expiry (float twin of
    ``fixed_point.curve_shift_wad``); ``psr`` per underlying."""
    und = instruments.underlying
    tau = np.clip(instruments.expiry - int(market.valuation_time), 0, TAU_CAP).astype(np.float64)
    roll = market.roll[und]
    with np.errstate(divide="ignore", invalid="ignore"):
        ramp = np.where(tau < roll, np.minimum(2.0 * (roll - tau), roll) / roll, 0.0)
    h = market.basis[und] * tau / SECONDS_PER_YEAR - psr[und] * ramp
    return np.where(instruments.expiry == 0, 0.0, h)


def forwards(instruments: Instruments, market: MarketState) -> np.ndarray:
    """Forward of each instrument's underlying and expiry."""
    und = instruments.underlying
    if und.size and und.max() >= market.spot.shape[0]:
        raise ValueError(
            f"market has {market.spot.shape[0]} underlyings, instruments use {und.max()}"
        )
    t = years_to_expiry(instruments, market)
    fwd = market.spot[und] * np.exp(market.rate * t)
    if market.forwards:
        for j, key in enumerate(zip(und.tolist(), instruments.expiry.tolist(), strict=True)):
            if key in market.forwards:
                fwd[j] = market.forwards[key]
    return fwd


def implied_vols(instruments: Instruments, market: MarketState, fwd: np.ndarray) -> np.ndarray:
    """Implied vol per instrument (0 for futures)."""
    if isinstance(market.vols, VolSurface):
        strike = np.where(instruments.is_option, instruments.strike, fwd)
        vol = market.vols.vol(instruments.underlying, strike, fwd)
    else:
        vol = market.vols
        if vol.shape != (len(instruments),):
            raise ValueError(f"vols must have shape ({len(instruments)},), got {vol.shape}")
    return np.where(instruments.is_option, vol, 0.0)


def _inputs(instruments: Instruments, market: MarketState):
    t = years_to_expiry(instruments, market)
    fwd = forwards(instruments, market)
    vol = implied_vols(instruments, market, fwd)
    strike = np.where(instruments.is_option, instruments.strike, fwd)
    return t, fwd, vol, strike


def marks(instruments: Instruments, market: MarketState) -> np.ndarray:
    """Mark of each instrument: the forward for futures, the Black-76 price for options."""
    t, fwd, vol, strike = _inputs(instruments, market)
    price = _price_kernel(fwd, strike, t, vol, market.rate, instruments.kind == Kind.CALL)
    return np.where(instruments.is_option, price, fwd)


def _psr_vector(psr_by_underlying: Sequence[float] | np.ndarray, n_und: int) -> np.ndarray:
    psr = np.asarray(psr_by_underlying, dtype=np.float64)
    if psr.ndim != 1 or psr.shape[0] < n_und:
        raise ValueError(f"psr_by_underlying must hold one PSR per underlying ({n_und})")
    if not np.all(np.isfinite(psr)) or np.any(psr <= 0) or np.any(psr > 1):
        raise ValueError("psr_by_underlying must lie in (0, 1]")
    return psr


def risk_arrays(
    instruments: Instruments,
    market: MarketState,
    grid: ScenarioGrid,
    psr_by_underlying: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Weighted value change per long unit, shape ``(n_instruments, S)`` (losses negative).

    Args:
        instruments: futures and European options.
        market: forwards/spot, vols, rate, valuation time.
        grid: scenario grid (S scenarios).
        psr_by_underlying: (U,) price scan range per underlying, as a fraction in (0, 1].

    Raises:
        ValueError: expired instruments, bad PSR, a scenario price at or below zero.
    """
    t, fwd, vol, strike = _inputs(instruments, market)
    und = instruments.underlying
    n_und = int(und.max()) + 1 if len(instruments) else 0
    psr_u = _psr_vector(psr_by_underlying, n_und)
    # Moves and weights depend on the underlying only: (U, S) tables, gathered by row.
    moves_u = grid.price_moves(psr_u)
    if np.any(1.0 + moves_u[:n_und] <= 0):
        raise ValueError("a scenario moves a price to zero or below (PSR too large for the grid)")
    weights_u = grid.weights(psr_u)
    tilt = np.array([float(t) for t in grid.tilts()])
    # the forward-curve move t_s * h_j of every instrument and scenario (zero when untilted)
    curve = curve_shifts(instruments, market, psr_u)[:, None] * tilt if tilt.any() else None
    out = np.empty((len(instruments), len(grid)))
    fut = ~instruments.is_option
    out[fut] = fwd[fut, None] * moves_u[und[fut]] * weights_u[und[fut]]  # exact: F * m * w
    if curve is not None:
        out[fut] += fwd[fut, None] * curve[fut]
    opt = np.flatnonzero(instruments.is_option)
    if opt.size:
        log1p_u = np.log1p(moves_u)
        gross_u = 1.0 + moves_u

        def chunk(rows: np.ndarray) -> None:
            u = und[rows]
            f0, k, v0, tt = fwd[rows, None], strike[rows, None], vol[rows], t[rows]
            sqrt_t = np.sqrt(tt)[:, None]
            df = np.exp(-market.rate * tt)[:, None]
            phi = np.where(instruments.kind[rows] == Kind.CALL, 1.0, -1.0)[:, None]
            log_fk = np.log(f0) - np.log(k)
            base = _price_from_logs(f0, k, log_fk, v0[:, None] * sqrt_t, df, phi)
            v = grid.shocked_vols(v0, tt * 365.0)
            v *= sqrt_t
            if curve is None:
                gross, log_gross = gross_u[u], log1p_u[u]
            else:
                gross = gross_u[u] + curve[rows]
                if np.any(gross <= 0):
                    raise ValueError("a tilted scenario moves a forward to zero or below")
                log_gross = np.log(gross)
            scen = _price_from_logs(f0 * gross, k, log_fk + log_gross, v, df, phi)
            scen -= base
            scen *= weights_u[u]
            out[rows] = scen

        pieces = np.array_split(opt, _WORKERS) if opt.size >= _PARALLEL_MIN else [opt]
        if len(pieces) > 1:
            list(_pool().map(chunk, pieces))
        else:
            chunk(opt)
    return out


def risk_arrays_wad(
    instruments: Instruments,
    market: MarketState,
    grid: ScenarioGrid,
    psr_by_underlying: Sequence[float] | np.ndarray,
) -> list[list[int]]:
    """WAD risk arrays as the chain holds them before encoding.

    Futures: ``futures_risk_array_wad(to_wad(F), c, to_wad(psr), t, h)`` with ``h =
    curve_shift_wad(expiry, valuation_time, to_wad(basis), roll, to_wad(psr))``, the oracle's
    own formula at batch time ``valuation_time``; options: ``to_wad`` of ``risk_arrays``.
    """
    arrays = risk_arrays(instruments, market, grid, psr_by_underlying)
    fwd = forwards(instruments, market)
    psr = np.asarray(psr_by_underlying, dtype=np.float64)
    c_wad = grid.linear_coefficients_wad()
    t_wad = grid.tilt_coefficients_wad()
    out = to_wad(arrays)
    for j in np.flatnonzero(~instruments.is_option):
        u = int(instruments.underlying[j])
        mark = to_wad(float(fwd[j]))
        psr_w = to_wad(float(psr[u]))
        h = curve_shift_wad(
            int(instruments.expiry[j]),
            int(market.valuation_time),
            to_wad(float(market.basis[u])),
            int(market.roll[u]),
            psr_w,
        )
        out[j] = futures_risk_array_wad(mark, c_wad, psr_w, t_wad, h)
    return out


def spot_leg_arrays(
    prices: Sequence[float] | np.ndarray,
    underlying: Sequence[int] | np.ndarray,
    grid: ScenarioGrid,
    psr_by_underlying: Sequence[float] | np.ndarray,
) -> np.ndarray:
    """Float arrays of linked collateral (``docs/fixed-point.md`` §5.1), shape ``(C, S)``: one
    unit priced ``prices[i]`` moves like a future at that mark (``tau = 0``) on its underlying;
    rows with ``underlying[i] < 0`` (unlinked) are zero."""
    price = np.asarray(prices, dtype=np.float64)
    und = np.asarray(underlying, dtype=np.int64)
    psr = np.asarray(psr_by_underlying, dtype=np.float64)
    out = np.zeros((price.shape[0], len(grid)))
    linked = np.flatnonzero(und >= 0)
    if linked.size:
        p_u = psr[und[linked]]
        out[linked] = price[linked, None] * grid.price_moves(p_u) * grid.weights(p_u)
    return out


def marks_wad(instruments: Instruments, market: MarketState) -> list[int]:
    """``to_wad`` of ``marks``; raises ``ValueError`` if a mark reaches 2**96 wei."""
    out = to_wad(marks(instruments, market))
    if any(m >= MAX_PRICE for m in out):
        raise ValueError("a mark does not fit 96 bits")
    return out


def encode_all(arrays: np.ndarray | Sequence[Sequence[int]]) -> tuple[list[int], list[list[int]]]:
    """Encode every instrument's array (``docs/fixed-point.md`` §3).

    Args:
        arrays: WAD integer arrays (e.g. ``risk_arrays_wad``), or a float ndarray that is converted
            with ``to_wad`` first.

    Returns:
        ``(exponents, entries)``: one uint8 exponent and one list of int16 entries per instrument.
    """
    if isinstance(arrays, np.ndarray) and arrays.dtype.kind == "f":
        if arrays.ndim != 2:
            raise ValueError(f"arrays must be 2-D (instruments x scenarios), got {arrays.shape}")
        arrays = to_wad(arrays)
    exponents, entries = [], []
    for row in arrays:
        e, ent = encode_risk_array([int(v) for v in row])
        exponents.append(e)
        entries.append(ent)
    return exponents, entries


def market_arrays(
    instruments: Instruments,
    market: MarketState,
    arrays: np.ndarray,
    som_rate: Sequence[float] | np.ndarray,
    n_scenarios: Sequence[int] | None = None,
) -> MarketArrays:
    """The float margin model's market (``margin.MarketArrays``) for these instruments."""
    return MarketArrays(
        underlying=instruments.underlying,
        is_option=instruments.is_option,
        marks=marks(instruments, market),
        risk_arrays=arrays,
        spot=market.spot,
        som_rate=np.asarray(som_rate, dtype=np.float64),
        n_scenarios=None if n_scenarios is None else np.asarray(n_scenarios),
    )


def market_int(
    instruments: Instruments,
    market: MarketState,
    arrays_wad: Sequence[Sequence[int]],
    som_rate: Sequence[float] | np.ndarray,
) -> MarketInt:
    """The integer model's market (``margin.MarketInt``): instrument ``j`` has id ``j``,
    underlying ``u`` id ``u``; marks, spot and SOM rates converted with ``to_wad``."""
    exps, entries = encode_all(arrays_wad)
    mk = marks_wad(instruments, market)
    ins = {
        j: InstrumentInt(
            int(instruments.underlying[j]),
            Kind(int(instruments.kind[j])),
            mk[j],
            exps[j],
            tuple(entries[j]),
        )
        for j in range(len(instruments))
    }
    s = len(entries[0]) if entries else 1
    unds = {
        u: UnderlyingInt(to_wad(float(market.spot[u])), to_wad(float(som_rate[u])), s)
        for u in range(market.spot.shape[0])
    }
    return MarketInt(ins, unds)
