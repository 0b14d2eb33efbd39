"""Reference margin: an integer model equal to the contracts, and a vectorised float model.

Semantics: docs/design.md §4-§5 (SPAN-style scan per underlying, short-option minimum as a
floor, MM, IM, equity, health). The integer model (``account_margin_int`` and friends) implements
``docs/fixed-point.md`` §4-§6 exactly, bit for bit; the contracts are tested against it. The float
model (``margin_of_accounts``) is the same formula without the encoding pad and integer rounding,
for many accounts at once (research, backtests, what-if).

Worked example (integer model, numbers from this code): one short call (q = -1) whose risk array
is [0, +1,234.5, -300] USD per long unit encodes with e = 56 as entries [0, 17132, -4164]; the
decoded gain 17132 * 2**56 = 1,234.4907... USD is the short's worst loss (scenario 1), the
precision pad is 2**56 wei = 0.072 USD, and the short-option minimum on spot 30,000 at 10% is
3,000 USD, so MM = max(1,234.49 + 0.07, 3,000) = 3,000 USD (the floor binds) and IM = 3,750 USD
at im_factor 1.25. With cash 10,000 and mark 500 the equity is 9,500 and health 6,500.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import NamedTuple

import numpy as np
import scipy.sparse as sp

from offchain.fixed_point import (
    INT16_MAX,
    INT16_MIN,
    INT256_MAX,
    INT256_MIN,
    MAX_PRICE,
    MAX_SCENARIOS,
    MAX_SIZE,
    UINT8_MAX,
    WAD,
    div_ceil,
    div_floor,
    encode_risk_array,
)

__all__ = [
    "Kind",
    "InstrumentInt",
    "UnderlyingInt",
    "CollateralInt",
    "MarketInt",
    "AccountInt",
    "UnderlyingRisk",
    "AccountMarginInt",
    "collateral_legs",
    "equity_int",
    "underlying_risk_int",
    "account_margin_int",
    "trade_cash_amount",
    "settlement_cash",
    "MarketArrays",
    "MarginArrays",
    "margin_of_accounts",
    "scenario_losses",
]


class Kind(enum.IntEnum):
    """Instrument kind, as stored on-chain (uint8)."""

    FUTURE = 0
    CALL = 1
    PUT = 2
    # a perpetual: no expiry, an array like a future's at the spot end of the curve
    PERP = 3

    @property
    def is_option(self) -> bool:
        return self is Kind.CALL or self is Kind.PUT


# --------------------------------------------------------------------------------------------
# Integer model (docs/fixed-point.md §4-§6)
# --------------------------------------------------------------------------------------------


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int | np.integer):
        raise ValueError(f"{name} must be an int, got {type(value).__name__}")
    return int(value)


def _in_range(name: str, value: object, lo: int, hi: int) -> int:
    """``value`` as int, checked ``lo <= value <= hi``."""
    v = _int(name, value)
    if not lo <= v <= hi:
        raise ValueError(f"{name} must be in [{lo}, {hi}], got {v}")
    return v


def _int256(name: str, value: int) -> int:
    """The chain reverts where a value leaves int256; the model raises ``OverflowError``."""
    if not INT256_MIN <= value <= INT256_MAX:
        raise OverflowError(f"margin: int256 overflow in {name}")
    return value


def _freeze(mapping: Mapping) -> Mapping:
    return MappingProxyType(dict(mapping))


@dataclass(frozen=True)
class InstrumentInt:
    """One listed instrument as the chain stores it.

    Attributes:
        underlying: underlying id.
        kind: future, call or put.
        mark: mark price (WAD, ``0 <= mark < 2**96``; futures ``> 0``).
        exponent: risk-array exponent ``e`` (uint8).
        entries: int16 risk-array entries, one per scenario of the underlying's grid.
    """

    underlying: int
    kind: Kind
    mark: int
    exponent: int
    entries: tuple[int, ...]

    def __post_init__(self) -> None:
        _int("underlying", self.underlying)
        object.__setattr__(self, "kind", Kind(self.kind))
        lo = 1 if self.kind is Kind.FUTURE else 0
        _in_range("mark", self.mark, lo, MAX_PRICE - 1)
        _in_range("exponent", self.exponent, 0, UINT8_MAX)
        entries = tuple(_in_range("entries[s]", v, INT16_MIN, INT16_MAX) for v in self.entries)
        if not 0 < len(entries) <= MAX_SCENARIOS:
            raise ValueError(f"entries must hold 1..{MAX_SCENARIOS} values, got {len(entries)}")
        object.__setattr__(self, "entries", entries)
        # Decoded once: the margin loop then does one multiplication per scenario.
        object.__setattr__(self, "_decoded", tuple(v << self.exponent for v in entries))
        object.__setattr__(self, "_max_abs", max(abs(v) for v in self._decoded))

    @classmethod
    def from_wad_array(
        cls, underlying: int, kind: Kind, mark: int, ra_wad: list[int]
    ) -> InstrumentInt:
        """Encode a WAD risk array (§3) and build the instrument."""
        e, entries = encode_risk_array(ra_wad)
        return cls(underlying, kind, mark, e, tuple(entries))

    @property
    def decoded(self) -> list[int]:
        """Decoded risk array ``entry * 2**e`` (WAD)."""
        return list(self._decoded)


@dataclass(frozen=True)
class UnderlyingInt:
    """Per-underlying oracle state: spot (WAD), short-option-minimum rate (WAD), grid size and,
    for underlyings with linked collateral, ``lin[s] = div_floor(c[s] * psr, WAD)`` (§3, §5.1)."""

    spot: int
    som_rate: int
    n_scenarios: int
    lin: tuple[int, ...] = ()

    def __post_init__(self) -> None:
        _in_range("spot", self.spot, 0, MAX_PRICE - 1)
        _in_range("som_rate", self.som_rate, 0, WAD)
        _in_range("n_scenarios", self.n_scenarios, 1, MAX_SCENARIOS)
        lin = tuple(_in_range("lin[s]", v, -(2**63), 2**63 - 1) for v in self.lin)
        if lin and len(lin) != self.n_scenarios:
            raise ValueError(f"lin must hold {self.n_scenarios} values, got {len(lin)}")
        object.__setattr__(self, "lin", lin)


@dataclass(frozen=True)
class CollateralInt:
    """Non-cash collateral asset: price (WAD), haircut (WAD, <= WAD), token decimals (<= 18)
    and the underlying it is linked to (§5.1; ``None``: valued by §4 only)."""

    price: int
    haircut: int
    decimals: int
    underlying: int | None = None

    def __post_init__(self) -> None:
        _in_range("price", self.price, 0, MAX_PRICE - 1)
        _in_range("haircut", self.haircut, 0, WAD)
        _in_range("decimals", self.decimals, 0, 18)
        if self.underlying is not None:
            _int("underlying", self.underlying)

    def leg(self, und: UnderlyingInt) -> InstrumentInt:
        """The asset's spot leg (§5.1): a future at mark ``price > 0`` on ``und``'s ``lin``."""
        if len(und.lin) != und.n_scenarios:
            raise ValueError(f"underlying {self.underlying}: lin is needed for linked collateral")
        ra = [div_floor(self.price * v, WAD) for v in und.lin]
        return InstrumentInt.from_wad_array(self.underlying, Kind.FUTURE, self.price, ra)


def collateral_legs(
    collateral: Mapping[int, int], market: MarketInt, held: set[int] | Mapping
) -> dict[int, list[tuple[InstrumentInt, int]]]:
    """Spot legs (§5.1) of the linked assets in ``collateral`` whose underlying is in ``held``:
    ``{underlying: [(leg, amount_wad)]}``. A zero price or amount adds nothing and is left out.

    Raises:
        ValueError: an unknown asset, or a linked underlying without ``lin``.
    """
    out: dict[int, list[tuple[InstrumentInt, int]]] = {}
    for i, amount in collateral.items():
        col = market.collaterals.get(i)
        if col is None:
            raise ValueError(f"collateral[{i}]: unknown collateral asset")
        if col.underlying is None or col.underlying not in held or amount == 0 or col.price == 0:
            continue
        und = market.underlyings.get(col.underlying)
        if und is None:
            raise ValueError(f"collateral[{i}]: unknown underlying {col.underlying}")
        out.setdefault(col.underlying, []).append(
            (col.leg(und), amount * 10 ** (18 - col.decimals))
        )
    return out


@dataclass(frozen=True)
class MarketInt:
    """Everything the margin computation reads from the oracle, keyed by id."""

    instruments: Mapping[int, InstrumentInt]
    underlyings: Mapping[int, UnderlyingInt]
    collaterals: Mapping[int, CollateralInt] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name in ("instruments", "underlyings", "collaterals"):
            object.__setattr__(self, name, _freeze(getattr(self, name)))
        for j, ins in self.instruments.items():
            if not isinstance(ins, InstrumentInt):
                raise ValueError(f"instruments[{j}] must be an InstrumentInt")
            und = self.underlyings.get(ins.underlying)
            if und is None:
                raise ValueError(f"instruments[{j}]: unknown underlying {ins.underlying}")
            if len(ins.entries) != und.n_scenarios:
                raise ValueError(
                    f"instruments[{j}]: {len(ins.entries)} entries, underlying {ins.underlying} "
                    f"has {und.n_scenarios} scenarios"
                )


@dataclass(frozen=True)
class AccountInt:
    """An account: cash (WAD, may be negative), positions ``{instrument: q}`` (WAD, signed),
    collateral ``{asset: amount}`` (token units)."""

    cash: int
    positions: Mapping[int, int] = field(default_factory=dict)
    collateral: Mapping[int, int] = field(default_factory=dict)

    def __post_init__(self) -> None:
        _in_range("cash", self.cash, INT256_MIN, INT256_MAX)
        for j, q in self.positions.items():
            _in_range(f"positions[{j}]", q, -MAX_SIZE, MAX_SIZE)
        for i, a in self.collateral.items():
            _in_range(f"collateral[{i}]", a, 0, 2**256 - 1)
        object.__setattr__(self, "positions", _freeze(self.positions))
        object.__setattr__(self, "collateral", _freeze(self.collateral))


class UnderlyingRisk(NamedTuple):
    """Per-underlying margin terms of §5 (all WAD except the scenario index)."""

    worst_scenario: int
    worst_loss: int
    pad: int
    som: int
    risk: int


@dataclass(frozen=True)
class AccountMarginInt:
    """Result of ``account_margin_int`` (WAD integers)."""

    equity: int
    initial_margin: int
    maintenance_margin: int
    per_underlying: Mapping[int, UnderlyingRisk]

    @property
    def health(self) -> int:
        """``equity - MM``; below zero the account is liquidatable."""
        return self.equity - self.maintenance_margin


def equity_int(account: AccountInt, market: MarketInt) -> int:
    """Equity of §4: ``cash + sum_i coll_i + div_floor(sum_j q_j * mark_j, WAD)``.

    ``coll_i = div_floor(div_floor(amount_wad_i * price_i, WAD) * (WAD - haircut_i), WAD)`` with
    ``amount_wad_i = amount_i * 10**(18 - decimals_i)``.

    Raises:
        ValueError: a position or collateral on an unknown id.
        OverflowError: a value leaves int256 (the chain reverts there).
    """
    total = account.cash
    for i, amount in account.collateral.items():
        col = market.collaterals.get(i)
        if col is None:
            raise ValueError(f"collateral[{i}]: unknown collateral asset")
        amount_wad = amount * 10 ** (18 - col.decimals)
        value = div_floor(div_floor(amount_wad * col.price, WAD) * (WAD - col.haircut), WAD)
        total += _int256("collateral value", value)
    pos = 0
    for j, q in account.positions.items():
        ins = market.instruments.get(j)
        if ins is None:
            raise ValueError(f"positions[{j}]: unknown instrument")
        pos += q * ins.mark
    total += div_floor(_int256("position value", pos), WAD)
    return _int256("equity", total)


def underlying_risk_int(
    positions: Mapping[int, int],
    market: MarketInt,
    underlying: int,
    collateral: Mapping[int, int] | None = None,
) -> UnderlyingRisk:
    """Margin terms of one underlying (§5) for the positions held on it, plus the spot legs of
    the linked ``collateral`` (§5.1) when a position is held on it.

    ``acc[s] = sum_j q_j * entry_j[s] * 2**e_j``; ``loss[s] = div_ceil(-acc[s], WAD)``;
    ``worst = max_s loss[s]`` (first scenario attaining it);
    ``pad = div_ceil(sum_{q_j<0} -q_j * 2**e_j, WAD)``;
    ``som = div_ceil(div_ceil(sum_{option, q_j<0} -q_j * spot, WAD) * som_rate, WAD)``;
    ``risk = max(max(worst, 0) + pad, som)``. Positions on other underlyings are ignored.

    Raises:
        ValueError: unknown instrument or underlying.
        OverflowError: a value leaves int256.
    """
    und = market.underlyings.get(underlying)
    if und is None:
        raise ValueError(f"underlying {underlying} is unknown")
    legs = []
    for j, q in positions.items():
        ins = market.instruments.get(j)
        if ins is None:
            raise ValueError(f"positions[{j}]: unknown instrument")
        if ins.underlying == underlying and q != 0:
            legs.append((ins, q))
    if legs and collateral:
        legs += collateral_legs(collateral, market, {underlying}).get(underlying, [])
    return _underlying_risk(legs, und)


def _underlying_risk(legs: list[tuple[InstrumentInt, int]], und: UnderlyingInt) -> UnderlyingRisk:
    """§5 for the non-zero legs held on one underlying."""
    acc = [0] * und.n_scenarios
    pad_sum = 0
    short_options = 0
    for ins, q in legs:
        if abs(q) * ins._max_abs > INT256_MAX:
            raise OverflowError("margin: int256 overflow in q * entry * 2**e")
        acc = [a + q * d for a, d in zip(acc, ins._decoded, strict=True)]
        if q < 0:
            pad_sum += -q << ins.exponent
            if ins.kind.is_option:
                short_options += -q
    if not (INT256_MIN <= min(acc) and max(acc) <= INT256_MAX):
        raise OverflowError("margin: int256 overflow in acc")
    losses = [-(a // WAD) for a in acc]  # div_ceil(-a, WAD) == -div_floor(a, WAD)
    worst = max(losses)
    worst_s = losses.index(worst)
    pad = div_ceil(_int256("pad", pad_sum), WAD)
    short_notional = div_ceil(_int256("short notional", short_options * und.spot), WAD)
    som = div_ceil(short_notional * und.som_rate, WAD)
    risk = max(max(worst, 0) + pad, som)
    return UnderlyingRisk(worst_s, worst, pad, som, _int256("risk", risk))


def account_margin_int(account: AccountInt, market: MarketInt, im_factor: int) -> AccountMarginInt:
    """Equity, MM, IM and per-underlying terms of one account, exactly as the contracts compute.

    ``MM = sum_u risk_u`` over the underlyings the account holds a non-zero position on, each
    with the spot legs of the linked collateral held (§5.1);
    ``IM = div_ceil(MM * im_factor, WAD)``; see ``underlying_risk_int`` and ``equity_int``.

    Args:
        account: the account.
        market: oracle state.
        im_factor: WAD, ``>= WAD`` (1.25 = ``125 * 10**16``).

    Raises:
        ValueError: ``im_factor < WAD``, unknown ids.
        OverflowError: a value leaves int256.
    """
    im_factor = _in_range("im_factor", im_factor, WAD, INT256_MAX)
    equity = equity_int(account, market)
    legs: dict[int, list[tuple[InstrumentInt, int]]] = {}
    for j, q in account.positions.items():
        ins = market.instruments.get(j)
        if ins is None:
            raise ValueError(f"positions[{j}]: unknown instrument")
        if q != 0:
            legs.setdefault(ins.underlying, []).append((ins, q))
    for u, extra in collateral_legs(account.collateral, market, legs).items():
        legs[u] += extra
    per_u = {u: _underlying_risk(legs[u], market.underlyings[u]) for u in sorted(legs)}
    mm = _int256("MM", sum(r.risk for r in per_u.values()))
    im = div_ceil(_int256("MM * im_factor", mm * im_factor), WAD)
    return AccountMarginInt(equity, im, mm, MappingProxyType(per_u))


def trade_cash_amount(q: int, p: int) -> int:
    """Cash the buyer pays for a trade of ``q > 0`` contracts at price ``p`` (§6).

    ``amount = div_ceil(q * p, WAD)``: the buyer's cash falls by it, the seller's rises by it.

    >>> trade_cash_amount(3 * 10**17, 10**18 // 3)  # 0.3 contracts at 1/3 USD
    100000000000000000

    Raises:
        ValueError: ``q`` outside ``(0, MAX_SIZE]`` or ``p`` outside ``[0, 2**96)``.
    """
    q = _in_range("q", q, 1, MAX_SIZE)
    p = _in_range("p", p, 0, MAX_PRICE - 1)
    return div_ceil(q * p, WAD)


def settlement_cash(q: int, price: int) -> int:
    """Cash credited to a position of ``q`` (signed) settled at ``price`` (§6): floor, both signs.

    >>> settlement_cash(-10**18, 5 * 10**17 + 1), settlement_cash(10**18, 5 * 10**17 + 1)
    (-500000000000000001, 500000000000000001)

    Raises:
        ValueError: ``|q| > MAX_SIZE`` or ``price`` outside ``[0, 2**96)``.
    """
    q = _in_range("q", q, -MAX_SIZE, MAX_SIZE)
    price = _in_range("price", price, 0, MAX_PRICE - 1)
    return div_floor(q * price, WAD)


# --------------------------------------------------------------------------------------------
# Float model (research): many accounts at once
# --------------------------------------------------------------------------------------------


def _float_vector(name: str, value: object, n: int | None = None) -> np.ndarray:
    arr = np.asarray(value, dtype=np.float64)
    if arr.ndim != 1 or (n is not None and arr.shape[0] != n):
        want = f"({n},)" if n is not None else "1-D"
        raise ValueError(f"{name} must have shape {want}, got {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite")
    return arr


@dataclass(frozen=True)
class MarketArrays:
    """Market for the float model: instruments as parallel arrays.

    Attributes:
        underlying: (n,) int, underlying index in ``[0, U)`` of each instrument.
        is_option: (n,) bool.
        marks: (n,) mark prices.
        risk_arrays: (n, S) weighted value change of one long unit per scenario (losses
            negative); rows of an underlying with fewer scenarios are padded at the end.
        spot: (U,) spot per underlying.
        som_rate: (U,) short-option-minimum rate per underlying.
        n_scenarios: (U,) scenarios per underlying (default: all ``S``).
        collateral_price: (C,) price per collateral unit.
        haircut: (C,) haircut in ``[0, 1]``.
        collateral_underlying: (C,) underlying index a collateral is linked to, -1 if none
            (docs/fixed-point.md §5.1; default: none linked).
        collateral_arrays: (C, S) value change of one collateral unit per scenario, a future at
            mark ``collateral_price`` (rows of unlinked collateral unused; default zero).
    """

    underlying: np.ndarray
    is_option: np.ndarray
    marks: np.ndarray
    risk_arrays: np.ndarray
    spot: np.ndarray
    som_rate: np.ndarray
    n_scenarios: np.ndarray | None = None
    collateral_price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    haircut: np.ndarray = field(default_factory=lambda: np.zeros(0))
    collateral_underlying: np.ndarray | None = None
    collateral_arrays: np.ndarray | None = None

    def __post_init__(self) -> None:
        ra = np.asarray(self.risk_arrays, dtype=np.float64)
        if ra.ndim != 2 or ra.shape[1] == 0:
            raise ValueError(f"risk_arrays must have shape (n, S), got {ra.shape}")
        if not np.all(np.isfinite(ra)):
            raise ValueError("risk_arrays must be finite")
        n, s = ra.shape
        und = np.asarray(self.underlying)
        if und.shape != (n,) or (n and not np.issubdtype(und.dtype, np.integer)):
            raise ValueError(f"underlying must be an int array of shape ({n},)")
        spot = _float_vector("spot", self.spot)
        n_und = spot.shape[0]
        if n and (und.min() < 0 or und.max() >= n_und):
            raise ValueError(f"underlying must index spot, i.e. lie in [0, {n_und})")
        is_opt = np.asarray(self.is_option, dtype=bool)
        if is_opt.shape != (n,):
            raise ValueError(f"is_option must have shape ({n},), got {is_opt.shape}")
        som = _float_vector("som_rate", self.som_rate, n_und)
        if np.any(som < 0) or np.any(spot < 0):
            raise ValueError("spot and som_rate must be >= 0")
        n_sc = (
            np.full(n_und, s, dtype=np.int64)
            if self.n_scenarios is None
            else np.asarray(self.n_scenarios, dtype=np.int64)
        )
        if n_sc.shape != (n_und,) or np.any(n_sc < 1) or np.any(n_sc > s):
            raise ValueError(f"n_scenarios must have shape ({n_und},) with values in [1, {s}]")
        price = _float_vector("collateral_price", self.collateral_price)
        hc = _float_vector("haircut", self.haircut, price.shape[0])
        if np.any(hc < 0) or np.any(hc > 1):
            raise ValueError("haircut must lie in [0, 1]")
        n_col = price.shape[0]
        cu = (
            np.full(n_col, -1, dtype=np.int64)
            if self.collateral_underlying is None
            else np.asarray(self.collateral_underlying, dtype=np.int64)
        )
        if cu.shape != (n_col,) or np.any(cu < -1) or np.any(cu >= n_und):
            raise ValueError(
                f"collateral_underlying must have shape ({n_col},) with values in [-1, {n_und})"
            )
        ca = (
            np.zeros((n_col, s))
            if self.collateral_arrays is None
            else np.asarray(self.collateral_arrays, dtype=np.float64)
        )
        if ca.shape != (n_col, s) or not np.all(np.isfinite(ca)):
            raise ValueError(f"collateral_arrays must be finite with shape ({n_col}, {s})")
        for name, value in (
            ("underlying", und.astype(np.int64)),
            ("is_option", is_opt),
            ("marks", _float_vector("marks", self.marks, n)),
            ("risk_arrays", ra),
            ("spot", spot),
            ("som_rate", som),
            ("n_scenarios", n_sc),
            ("collateral_price", price),
            ("haircut", hc),
            ("collateral_underlying", cu),
            ("collateral_arrays", ca),
        ):
            object.__setattr__(self, name, value)

    @property
    def n_instruments(self) -> int:
        return self.risk_arrays.shape[0]

    @property
    def n_underlyings(self) -> int:
        return self.spot.shape[0]


@dataclass(frozen=True)
class MarginArrays:
    """Float margin of many accounts (A accounts, U underlyings).

    Attributes:
        equity, maintenance_margin, initial_margin, health: (A,).
        scan: (A, U) ``max(0, max_s loss_u[s])``.
        som: (A, U) short-option minimum.
        risk: (A, U) ``max(scan, som)``; ``maintenance_margin = risk.sum(1)``.
        worst_scenario: (A, U) first scenario of the largest loss (-1 where no position).
    """

    equity: np.ndarray
    maintenance_margin: np.ndarray
    initial_margin: np.ndarray
    health: np.ndarray
    scan: np.ndarray
    som: np.ndarray
    risk: np.ndarray
    worst_scenario: np.ndarray


def _as_csr(positions: np.ndarray | sp.spmatrix, n_instruments: int) -> sp.csr_matrix:
    if sp.issparse(positions):
        mat = sp.csr_matrix(positions, dtype=np.float64)
    else:
        dense = np.asarray(positions, dtype=np.float64)
        if dense.ndim != 2:
            raise ValueError(f"positions must be 2-D (accounts x instruments), got {dense.shape}")
        mat = sp.csr_matrix(dense)
    if mat.shape[1] != n_instruments:
        raise ValueError(
            f"positions must have {n_instruments} columns (one per instrument), got {mat.shape[1]}"
        )
    if not np.all(np.isfinite(mat.data)):
        raise ValueError("positions must be finite")
    mat.eliminate_zeros()
    return mat


def _pair_rows(pos: sp.csr_matrix, market: MarketArrays) -> tuple[sp.csr_matrix, np.ndarray]:
    """Regroup nonzeros by (account, underlying): one row per pair that holds a position.

    Returns the (pairs x instruments) matrix and each pair's key ``account * U + underlying``.
    """
    n_acc = pos.shape[0]
    n_und = market.n_underlyings
    rows = np.repeat(np.arange(n_acc, dtype=np.int64), np.diff(pos.indptr))
    key = rows * n_und + market.underlying[pos.indices]
    present = np.zeros(n_acc * n_und, dtype=bool)
    present[key] = True
    pair_keys = np.flatnonzero(present)
    rank = np.cumsum(present) - 1
    pair_rows = rank[key]
    mat = sp.coo_matrix(
        (pos.data, (pair_rows, pos.indices)), shape=(pair_keys.shape[0], pos.shape[1])
    ).tocsr()
    return mat, pair_keys


def margin_of_accounts(
    positions: np.ndarray | sp.spmatrix,
    market: MarketArrays,
    cash: np.ndarray | None = None,
    collateral: np.ndarray | sp.spmatrix | None = None,
    im_factor: float = 1.25,
) -> MarginArrays:
    """Float margin of many accounts at once (docs/design.md §5, SPAN-style).

    For each account a and underlying u it holds a position on:
    ``loss[s] = -sum_{j on u} q_aj * RA[j, s]``, ``scan = max(0, max_s loss[s])``,
    ``som = som_rate_u * spot_u * sum_{option j on u, q_aj < 0} -q_aj``,
    ``risk = max(scan, som)``; ``MM = sum_u risk``, ``IM = im_factor * MM``,
    ``equity = cash + sum_i c_ai * price_i * (1 - haircut_i) + sum_j q_aj * mark_j``,
    ``health = equity - MM``. A collateral linked to u adds ``-c_ai * CA[i, s]`` to ``loss[s]``
    (a long spot leg, docs/fixed-point.md §5.1). Same as the integer model without encoding
    pad and rounding.

    The scan is one sparse product: the nonzeros are regrouped into one row per (account,
    underlying) pair, and that (pairs x instruments) matrix times the (instruments x S) arrays
    gives every pair's scenario P&L; the cost is ``nnz * S``.

    Args:
        positions: (A, n) dense array or scipy sparse matrix of signed sizes.
        market: instruments, arrays, spot, SOM rates, collateral prices.
        cash: (A,) cash, default zero.
        collateral: (A, C) collateral amounts, default none.
        im_factor: ``>= 1``.

    Raises:
        ValueError: shapes that do not match the market, non-finite values, ``im_factor < 1``.
    """
    if not np.isfinite(im_factor) or im_factor < 1:
        raise ValueError(f"im_factor must be >= 1, got {im_factor}")
    pos = _as_csr(positions, market.n_instruments)
    n_acc, n_und = pos.shape[0], market.n_underlyings
    cash_v = np.zeros(n_acc) if cash is None else _float_vector("cash", cash, n_acc)

    equity = cash_v + pos @ market.marks
    coll = None
    if collateral is not None:
        coll = collateral if sp.issparse(collateral) else np.asarray(collateral, dtype=np.float64)
        if coll.shape != (n_acc, market.collateral_price.shape[0]):
            raise ValueError(
                f"collateral must have shape ({n_acc}, {market.collateral_price.shape[0]}), "
                f"got {coll.shape}"
            )
        equity = equity + coll @ (market.collateral_price * (1.0 - market.haircut))

    pairs, keys = _pair_rows(pos, market)
    pair_und = keys % n_und
    losses = -(pairs @ market.risk_arrays)
    if coll is not None:
        pair_acc = keys // n_und
        for i in np.flatnonzero(market.collateral_underlying >= 0):
            rows = np.flatnonzero(pair_und == market.collateral_underlying[i])
            amount = coll[:, [i]] if sp.issparse(coll) else coll[:, i : i + 1]
            amount = np.asarray(amount.todense() if sp.issparse(amount) else amount).ravel()
            losses[rows] -= amount[pair_acc[rows]][:, None] * market.collateral_arrays[i]
    s_max = market.risk_arrays.shape[1]
    if np.any(market.n_scenarios < s_max):
        padded = np.arange(s_max)[None, :] >= market.n_scenarios[pair_und][:, None]
        losses[padded] = -np.inf
    worst_s = np.argmax(losses, axis=1)
    worst = losses[np.arange(losses.shape[0]), worst_s]
    scan_p = np.maximum(worst, 0.0)

    short_opt = pairs.minimum(0) @ market.is_option.astype(np.float64)
    som_p = -short_opt * market.spot[pair_und] * market.som_rate[pair_und]
    risk_p = np.maximum(scan_p, som_p)

    def scatter(values: np.ndarray, fill: float) -> np.ndarray:
        out = np.full(n_acc * n_und, fill, dtype=values.dtype)
        out[keys] = values
        return out.reshape(n_acc, n_und)

    risk = scatter(risk_p, 0.0)
    mm = risk.sum(axis=1)
    return MarginArrays(
        equity=equity,
        maintenance_margin=mm,
        initial_margin=mm * im_factor,
        health=equity - mm,
        scan=scatter(scan_p, 0.0),
        som=scatter(som_p, 0.0),
        risk=risk,
        worst_scenario=scatter(worst_s.astype(np.int64), -1),
    )


def scenario_losses(positions: np.ndarray, market: MarketArrays, underlying: int) -> np.ndarray:
    """Per-scenario losses ``-sum_{j on u} q_j * RA[j, s]`` of accounts on one underlying.

    Args:
        positions: (n,) one account or (A, n) many.
        underlying: underlying index.

    Returns:
        (S_u,) or (A, S_u) losses (positive = loss).
    """
    if not 0 <= underlying < market.n_underlyings:
        raise ValueError(f"underlying must be in [0, {market.n_underlyings}), got {underlying}")
    q = np.asarray(positions, dtype=np.float64)
    if q.shape[-1] != market.n_instruments or q.ndim not in (1, 2):
        n = market.n_instruments
        raise ValueError(f"positions must have shape (n,) or (A, n) with n = {n}, got {q.shape}")
    on_u = market.underlying == underlying
    s_u = int(market.n_scenarios[underlying])
    return -(q[..., on_u] @ market.risk_arrays[on_u, :s_u])
