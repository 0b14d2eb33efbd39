"""The system a deployment lists, read from a config file (``deploy/config.json``).

Numbers are human units converted exactly (``"haircut": 0.2`` is ``2 * 10**17`` WAD, a deposit cap
of 1,000 tokens of 6 decimals is ``10**9`` units), and every bound a contract would refuse halfway
through a deployment is refused here first, with the field named.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from offchain.fixed_point import WAD, to_wad
from offchain.margin import Kind
from offchain.scenarios import PRESETS, ScenarioGrid

__all__ = [
    "CollateralSpec",
    "InstrumentSpec",
    "SystemConfig",
    "UnderlyingSpec",
    "load_config",
    "parse_config",
    "to_units",
]


def to_units(x: float | int | str | Decimal, decimals: int) -> int:
    """Token units of a human amount: ``to_units("1.5", 6) == 1_500_000``."""
    d = Decimal(str(x)) * 10**decimals
    if d != d.to_integral_value():
        raise ValueError(f"{x} has more than {decimals} decimals")
    return int(d)


@dataclass(frozen=True)
class UnderlyingSpec:
    """An underlying and its oracle bounds (fractions as WAD; see RiskOracle.list_underlying)."""

    name: str
    id: int
    grid: str
    psr_min: int
    psr_max: int
    som_rate: int
    max_deviation: int
    max_array_ratio: int

    @property
    def scenario_grid(self) -> ScenarioGrid:
        return PRESETS[self.grid]


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument to list; ``expiry`` unix seconds (before any time offset)."""

    underlying: str
    kind: Kind
    strike: int
    expiry: int
    contract_size: int = WAD
    open_interest_cap: int = 10**6 * WAD
    position_limit: int = 10**5 * WAD


@dataclass(frozen=True)
class CollateralSpec:
    """A token: the settlement stablecoin (``haircut`` 0, ``priced_by`` None) or a collateral
    asset priced by an underlying's spot. ``address`` None deploys a mock (local networks)."""

    symbol: str
    decimals: int
    deposit_cap: int  # token units
    haircut: int = 0
    priced_by: str | None = None
    max_deviation: int = WAD // 2
    address: str | None = None


@dataclass(frozen=True)
class SystemConfig:
    grids: Mapping[str, int]
    underlyings: tuple[UnderlyingSpec, ...]
    instruments: tuple[InstrumentSpec, ...]
    cash: CollateralSpec
    collateral: tuple[CollateralSpec, ...] = ()
    im_factor: int = 125 * 10**16
    max_age: int = 900

    def underlying(self, name: str) -> UnderlyingSpec:
        for u in self.underlyings:
            if u.name == name:
                return u
        raise KeyError(f"unknown underlying {name!r}")


def _expiry(rec: Mapping[str, Any], now: int) -> int:
    if "expiry" in rec:
        text = str(rec["expiry"]).replace("Z", "+00:00")
        dt = datetime.fromisoformat(text)
        if dt.tzinfo is None:
            dt = dt.replace(tzinfo=UTC)
        return int(dt.timestamp())
    if "expiry_days" in rec:
        # Whole days from now, at 08:00 UTC (the usual crypto expiry time).
        day = (now // 86_400 + int(rec["expiry_days"])) * 86_400
        return day + 8 * 3_600
    raise ValueError("instrument needs 'expiry' (ISO time) or 'expiry_days'")


def _kind(value: Any) -> Kind:
    try:
        return Kind[str(value).upper()]
    except KeyError:
        raise ValueError(f"config: instrument kind {value!r} is not future, call or put") from None


def _check_bounds(cfg: SystemConfig) -> None:
    """What the contracts would refuse mid-deploy, refused here with the field named."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise ValueError(f"config: {what}")

    need(cfg.im_factor >= WAD, f"im_factor must be >= 1, got {cfg.im_factor / WAD}")
    need(cfg.max_age > 0, "max_age must be > 0 seconds")
    for u in cfg.underlyings:
        need(
            0 < u.psr_min <= u.psr_max <= WAD,
            f"underlying {u.name}: need 0 < psr_min <= psr_max <= 1",
        )
        need(0 <= u.som_rate <= WAD, f"underlying {u.name}: som_rate must be in [0, 1]")
        need(0 < u.max_deviation <= WAD, f"underlying {u.name}: max_deviation must be in (0, 1]")
        need(u.max_array_ratio > 0, f"underlying {u.name}: max_array_ratio must be > 0")
    for t in (cfg.cash, *cfg.collateral):
        need(0 <= t.decimals <= 18, f"token {t.symbol}: decimals must be in [0, 18]")
        need(t.deposit_cap > 0, f"token {t.symbol}: deposit_cap must be > 0")
        need(0 <= t.haircut < WAD, f"token {t.symbol}: haircut must be in [0, 1)")
        need(0 < t.max_deviation <= WAD, f"token {t.symbol}: max_deviation must be in (0, 1]")
    for i in cfg.instruments:
        name = f"instrument {i.underlying} {i.kind.name.lower()}"
        need(
            i.strike > 0 if i.kind.is_option else i.strike == 0,
            f"{name}: strike must be > 0 for an option and absent (0) for a future",
        )
        need(i.contract_size > 0, f"{name}: contract_size must be > 0")
        need(i.open_interest_cap > 0 and i.position_limit > 0, f"{name}: caps must be > 0")


def parse_config(data: Mapping[str, Any], now: int | None = None) -> SystemConfig:
    """Build a ``SystemConfig`` from the JSON structure of ``deploy/config.json``.

    Numbers are human units (``"haircut": 0.2``, ``"strike": 9000``) converted exactly to WAD;
    deposit caps are whole tokens. ``now`` (unix seconds) resolves ``expiry_days``.

    Raises:
        ValueError: naming the section and the problem.
    """
    now = int(datetime.now(UTC).timestamp()) if now is None else now
    try:
        grids = {str(k): int(v) for k, v in data["grids"].items()}
        unds = tuple(
            UnderlyingSpec(
                name=u["name"],
                id=int(u["id"]),
                grid=u["grid"],
                psr_min=to_wad(u["psr_min"]),
                psr_max=to_wad(u["psr_max"]),
                som_rate=to_wad(u["som_rate"]),
                max_deviation=to_wad(u["max_deviation"]),
                max_array_ratio=to_wad(u["max_array_ratio"]),
            )
            for u in data["underlyings"]
        )

        def token(t: Mapping[str, Any]) -> CollateralSpec:
            return CollateralSpec(
                symbol=t["symbol"],
                decimals=int(t["decimals"]),
                deposit_cap=to_units(t["deposit_cap"], int(t["decimals"])),
                haircut=to_wad(t.get("haircut", 0)),
                priced_by=t.get("priced_by"),
                max_deviation=to_wad(t.get("max_deviation", "0.5")),
                address=t.get("address"),
            )

        cash = token(data["cash"])
        coll = tuple(token(t) for t in data.get("collateral", ()))
        ins = tuple(
            InstrumentSpec(
                underlying=i["underlying"],
                kind=_kind(i["kind"]),
                strike=to_wad(i.get("strike", 0)),
                expiry=_expiry(i, now),
                contract_size=to_wad(i.get("contract_size", 1)),
                open_interest_cap=to_wad(i.get("open_interest_cap", 1_000_000)),
                position_limit=to_wad(i.get("position_limit", 100_000)),
            )
            for i in data["instruments"]
        )
    except KeyError as exc:
        raise ValueError(f"config: missing field {exc}") from None
    cfg = SystemConfig(
        grids=grids,
        underlyings=unds,
        instruments=ins,
        cash=cash,
        collateral=coll,
        im_factor=to_wad(data.get("im_factor", "1.25")),
        max_age=int(data.get("max_age", 900)),
    )
    _check_bounds(cfg)
    names = {u.name for u in unds}
    for u in unds:
        if u.grid not in grids or u.grid not in PRESETS:
            raise ValueError(f"config: underlying {u.name} uses unknown grid {u.grid!r}")
    for i in ins:
        if i.underlying not in names:
            raise ValueError(f"config: instrument on unknown underlying {i.underlying!r}")
    for c in coll:
        if c.priced_by not in names:
            raise ValueError(f"config: collateral {c.symbol} priced by unknown {c.priced_by!r}")
    return cfg


def load_config(path: str | os.PathLike[str], now: int | None = None) -> SystemConfig:
    """``parse_config`` of a JSON file; errors name the file."""
    p = Path(path)
    try:
        data = json.loads(p.read_text())
        return parse_config(data, now)
    except (OSError, json.JSONDecodeError, ValueError) as exc:
        raise ValueError(f"{p}: {exc}") from None
