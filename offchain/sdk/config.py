"""The system a deployment lists, read from a config file (``deploy/config.json``).

Numbers are human units converted exactly (``"haircut": 0.2`` is ``2 * 10**17`` WAD, a deposit cap
of 1,000 tokens of 6 decimals is ``10**9`` units). The reading is strict: an unknown key at any
level is refused with the closest valid one named, a value of the wrong type or outside what a
contract accepts is refused with the field named, each in one line. Expiries are dates, so the
same file lists the same instruments on every run (docs/deploy.md has the reference).
"""

from __future__ import annotations

import os
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

from eth_utils import is_checksum_address, is_hex_address, to_checksum_address

from offchain.data import InputError
from offchain.errors import did_you_mean
from offchain.fixed_point import WAD, to_wad
from offchain.funding import CAP_UNIT, MAX_FUNDING_CAP
from offchain.jsonfields import Fields, read_json
from offchain.margin import Kind
from offchain.oracle_bounds import strike_code
from offchain.params import margin_params
from offchain.scenarios import PRESETS, ScenarioGrid
from offchain.sdk.timelock import DEFAULT_DELAY, MAX_DELAY, MIN_DELAY

__all__ = [
    "CollateralSpec",
    "InstrumentSpec",
    "SystemConfig",
    "UnderlyingSpec",
    "check_bounds",
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
    """An underlying and its oracle bounds (fractions as WAD; see RiskOracle.list_underlying).
    ``basis`` is the forward-curve basis (WAD per year), ``roll`` the window (seconds) before
    an expiry in which a leg stops offsetting (``docs/fixed-point.md`` §3)."""

    name: str
    id: int
    grid: str
    psr_min: int
    psr_max: int
    som_rate: int
    max_deviation: int
    max_array_ratio: int
    basis: int = 0
    roll: int = 0

    @property
    def scenario_grid(self) -> ScenarioGrid:
        return PRESETS[self.grid]


@dataclass(frozen=True)
class InstrumentSpec:
    """An instrument to list; ``expiry`` unix seconds (before any time offset), 0 for a perp
    (it never expires); ``funding_cap`` a perp's hourly funding-rate cap (WAD per hour), 0 for
    the other kinds."""

    underlying: str
    kind: Kind
    strike: int
    expiry: int
    contract_size: int = WAD
    open_interest_cap: int = 10**6 * WAD
    position_limit: int = 10**5 * WAD
    # a perp's hourly funding-rate cap (WAD per hour; listed as its `strike`); 0 otherwise
    funding_cap: int = 0


@dataclass(frozen=True)
class CollateralSpec:
    """A token: the settlement stablecoin (``haircut`` 0, ``priced_by`` None) or a collateral
    asset priced by an underlying's spot; ``linked``: it also moves with that underlying in the
    scan (docs/fixed-point.md §5.1, for 1:1 wrappers). ``address`` None deploys a mock (local
    networks)."""

    symbol: str
    decimals: int
    deposit_cap: int  # token units
    haircut: int = 0
    priced_by: str | None = None
    max_deviation: int = WAD // 2
    address: str | None = None
    linked: bool = False


@dataclass(frozen=True)
class SystemConfig:
    grids: Mapping[str, int]
    underlyings: tuple[UnderlyingSpec, ...]
    instruments: tuple[InstrumentSpec, ...]
    cash: CollateralSpec
    collateral: tuple[CollateralSpec, ...] = ()
    im_factor: int = 125 * 10**16
    max_age: int = 900
    timelock_delay: int = DEFAULT_DELAY  # seconds; used where the deployment has a timelock
    escape_delay: int = 3 * 86_400

    def underlying(self, name: str) -> UnderlyingSpec:
        for u in self.underlyings:
            if u.name == name:
                return u
        raise KeyError(f"unknown underlying {name!r}")


# The contracts' bounds (RiskOracle, EngineAdmin, the vault), in human units: a value outside
# them would revert halfway through a deployment, so it is refused before the first transaction.
HAIRCUT_MAX = Decimal("0.9")
PSR_MIN = Decimal("0.001")
DEVIATION_MIN = Decimal("0.001")
ARRAY_RATIO = (Decimal("0.01"), Decimal(10))
MAX_BASIS = Decimal("0.5")  # per year
MAX_ROLL = 14 * 86_400  # seconds
IM_FACTOR = (Decimal(1), Decimal(3))
MAX_AGE = (30, 86_400)
ESCAPE_DELAY = (86_400, 30 * 86_400)
MAX_UNDERLYING_ID = 2**16 - 1
MAX_STRIKE_WAD = 2**96 - 1
MAX_CONTRACT_SIZE_WAD = 10**30
MAX_OPEN_INTEREST_WAD = 10**33
MAX_POSITION_WAD = 10**30
MAX_DEPOSIT_CAP_WAD = 2**128
MAX_EXPIRY = 2**40 - 1
MAX_TOKENS = 8  # the settlement token and the collateral
EXPIRY_HOUR = 8  # a date alone means 08:00 UTC, the usual crypto expiry time

TOP_KEYS = (
    "grids",
    "cash",
    "collateral",
    "underlyings",
    "instruments",
    "im_factor",
    "max_age",
    "timelock_delay",
    "escape_delay",
)
CASH_KEYS = ("symbol", "decimals", "deposit_cap", "address")
COLLATERAL_KEYS = (*CASH_KEYS, "haircut", "priced_by", "max_deviation", "linked")
UNDERLYING_KEYS = (
    "name",
    "id",
    "grid",
    "psr_min",
    "psr_max",
    "som_rate",
    "max_deviation",
    "max_array_ratio",
    "basis",
    "roll",
)
INSTRUMENT_KEYS = (
    "underlying",
    "kind",
    "strike",
    "expiry",
    "contract_size",
    "open_interest_cap",
    "position_limit",
    "funding_cap",
)
RETIRED = {
    "expiry_days": "'expiry_days' counts from the day of the run, so a re-run would list new "
    'instruments: give the date instead, "expiry": "2027-03-26" (08:00 UTC)'
}


def _wad_text(x: int) -> str:
    return f"{Decimal(x) / WAD:f}".rstrip("0").rstrip(".") if x % WAD else str(x // WAD)


def check_bounds(cfg: SystemConfig, source: str | os.PathLike[str] = "config") -> None:
    """What the contracts would refuse mid-deploy, refused here with the entry named
    (``deploy/config.json: collateral WETH: haircut must be in [0, 0.9], got 1.5``)."""

    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise InputError(source, where, what)

    lo, hi = (to_wad(b) for b in IM_FACTOR)
    need(
        lo <= cfg.im_factor <= hi,
        "im_factor",
        f"must be in [1, 3], got {_wad_text(cfg.im_factor)}",
    )
    need(
        MAX_AGE[0] <= cfg.max_age <= MAX_AGE[1],
        "max_age",
        f"must be in [30, 86400] seconds, got {cfg.max_age}",
    )
    need(
        ESCAPE_DELAY[0] <= cfg.escape_delay <= ESCAPE_DELAY[1],
        "escape_delay",
        f"must be in [86400, 2592000] seconds (1 to 30 days), got {cfg.escape_delay}",
    )
    for u in cfg.underlyings:
        at = f"underlying {u.name}"
        need(0 < u.id <= MAX_UNDERLYING_ID, at, f"id must be in [1, 65535], got {u.id}")
        need(
            to_wad(PSR_MIN) <= u.psr_min <= u.psr_max <= WAD,
            at,
            f"need 0.001 <= psr_min <= psr_max <= 1, got {_wad_text(u.psr_min)} and "
            f"{_wad_text(u.psr_max)}",
        )
        need(0 <= u.som_rate <= WAD, at, f"som_rate must be in [0, 1], got {_wad_text(u.som_rate)}")
        need(
            to_wad(DEVIATION_MIN) <= u.max_deviation <= WAD,
            at,
            f"max_deviation must be in [0.001, 1], got {_wad_text(u.max_deviation)}",
        )
        need(
            to_wad(ARRAY_RATIO[0]) <= u.max_array_ratio <= to_wad(ARRAY_RATIO[1]),
            at,
            f"max_array_ratio must be in [0.01, 10], got {_wad_text(u.max_array_ratio)}",
        )
        need(
            0 <= u.basis <= to_wad(MAX_BASIS),
            at,
            f"basis must be in [0, 0.5] per year, got {_wad_text(u.basis)}",
        )
        need(
            0 <= u.roll <= MAX_ROLL,
            at,
            f"roll must be in [0, {MAX_ROLL}] seconds (14 days), got {u.roll}",
        )
    need(
        1 + len(cfg.collateral) <= MAX_TOKENS,
        "collateral",
        f"at most {MAX_TOKENS - 1} tokens besides the settlement token, got {len(cfg.collateral)}",
    )
    for t in (cfg.cash, *cfg.collateral):
        at = "cash" if t is cfg.cash else f"collateral {t.symbol}"
        need(0 <= t.decimals <= 18, at, f"decimals must be in [0, 18], got {t.decimals}")
        wad_cap = t.deposit_cap * 10 ** (18 - min(t.decimals, 18))
        need(0 < wad_cap <= MAX_DEPOSIT_CAP_WAD, at, "deposit_cap must be > 0 and < 3.4e20 tokens")
        if t is cfg.cash:
            need(t.haircut == 0, at, "the settlement token has no haircut")
        need(
            0 <= t.haircut <= to_wad(HAIRCUT_MAX),
            at,
            f"haircut must be in [0, 0.9], got {_wad_text(t.haircut)}",
        )
        need(
            to_wad(DEVIATION_MIN) <= t.max_deviation <= WAD,
            at,
            f"max_deviation must be in [0.001, 1], got {_wad_text(t.max_deviation)}",
        )
    for i in cfg.instruments:
        at = f"instrument {i.underlying} {i.kind.name.lower()}"
        if i.kind is Kind.PERP:
            need(i.strike == 0 and i.expiry == 0, at, "a perp has no strike and no expiry")
            need(i.contract_size == WAD, at, "a perp's contract_size is 1: remove it")
            need(
                0 < i.funding_cap <= MAX_FUNDING_CAP and i.funding_cap % CAP_UNIT == 0,
                at,
                f"funding_cap must be in (0, {_wad_text(MAX_FUNDING_CAP)}] per hour, a multiple "
                f"of 0.000001, got {_wad_text(i.funding_cap)}",
            )
        else:
            need(i.funding_cap == 0, at, "only a perp has a funding_cap: remove it")
        if i.kind.is_option:
            need(0 < i.strike <= MAX_STRIKE_WAD, at, "strike must be > 0 (and < 7.9e10)")
            try:
                strike_code(i.strike)
            except ValueError as exc:
                need(False, at, str(exc))
            need(i.contract_size == WAD, at, "an option's contract_size is 1: remove it")
        else:
            need(i.strike == 0, at, f"a {i.kind.name.lower()} has no strike: remove 'strike'")
        if i.kind is not Kind.PERP:
            need(0 < i.expiry <= MAX_EXPIRY, at, f"expiry out of range: {i.expiry}")
        need(
            0 < i.contract_size <= MAX_CONTRACT_SIZE_WAD,
            at,
            "contract_size must be > 0 and <= 1e12",
        )
        need(
            0 < i.open_interest_cap <= MAX_OPEN_INTEREST_WAD,
            at,
            "open_interest_cap must be > 0 and <= 1e15",
        )
        need(
            0 < i.position_limit <= min(i.open_interest_cap, MAX_POSITION_WAD),
            at,
            "position_limit must be > 0 and <= open_interest_cap (and <= 1e12)",
        )


def checked_address(text: str) -> str:
    """``text`` as a checksummed address; ``ValueError`` (one line) if it is not one or a
    mixed-case address fails its checksum (a mistyped character)."""
    if not (text.startswith("0x") and is_hex_address(text)):
        raise ValueError(f"must be a 0x-prefixed 40-hex-digit address, got {text!r}")
    body = text[2:]
    if body not in (body.lower(), body.upper()) and not is_checksum_address(text):
        raise ValueError(f"{text} fails its checksum: copy the address again")
    return to_checksum_address(text)


def _address(f: Fields, key: str) -> str | None:
    if not f.has(key):
        return None
    try:
        return checked_address(f.text(key))
    except ValueError as exc:
        raise f.fail(key, str(exc)) from None


def _choice(f: Fields, key: str, choices: Collection[str], what: str) -> str:
    value = f.text(key)
    if value not in choices:
        hint = did_you_mean(value, choices) or f" (one of {', '.join(sorted(choices))})"
        raise f.fail(key, f"unknown {what} {value!r}{hint}")
    return value


def _token(path: str, where: str, obj: Any, underlyings: Collection[str]) -> CollateralSpec:
    cash = where == "cash"
    f = Fields(path, where, obj, CASH_KEYS if cash else COLLATERAL_KEYS)
    decimals = f.integer("decimals", hi=18)
    cap = f.decimal("deposit_cap")
    try:
        units = to_units(cap, decimals)
    except ValueError:
        raise f.fail("deposit_cap", f"{cap} has more than {decimals} decimals") from None
    return CollateralSpec(
        symbol=f.text("symbol"),
        decimals=decimals,
        deposit_cap=units,
        haircut=0 if cash else to_wad(f.decimal("haircut")),
        priced_by=None if cash else _choice(f, "priced_by", underlyings, "underlying"),
        max_deviation=to_wad(f.decimal("max_deviation", "0.5")) if not cash else WAD // 2,
        address=_address(f, "address"),
        linked=False if cash else _flag(f, "linked"),
    )


def margin_param(f: Fields, key: str) -> Decimal:
    """``key`` of the one parameter set (params/margin.json) when the config omits it; an
    explicit value must be the same number, else it is refused with both values named (the
    deploy config, the examples and the published tables all read that file)."""
    chosen = margin_params().value(key)
    if not f.has(key):
        return chosen
    given = f.decimal(key)
    if given != chosen:
        raise f.fail(
            key,
            f"{given} differs from params/margin.json's {chosen}: remove it (the value is filled "
            "from there) or change params/margin.json, which every published table reads",
        )
    return given


def _flag(f: Fields, key: str) -> bool:
    value = f.raw(key, False)
    if not isinstance(value, bool):
        raise f.fail(key, f"must be true or false, got {value!r}")
    return value


def _kind(f: Fields) -> Kind:
    name = _choice(f, "kind", ("future", "call", "put", "perp"), "kind")
    return Kind[name.upper()]


def _funding_cap(f: Fields) -> int:
    """A perp's hourly funding cap (WAD): params/margin.json's ``funding.cap_per_hour`` when
    omitted; an explicit value must be the same number (every published table reads that file)."""
    chosen = margin_params().funding.cap_per_hour
    if f.has("funding_cap"):
        given = f.decimal("funding_cap")
        if given != chosen:
            raise f.fail(
                "funding_cap",
                f"{given} differs from params/margin.json's funding.cap_per_hour {chosen}: remove "
                "it (the value is filled from there) or change params/margin.json",
            )
    return to_wad(chosen)


def _perp(f: Fields, underlying: str) -> InstrumentSpec:
    """A perpetual: no strike, no expiry, contract size 1, its funding cap from the parameters."""
    for key, why in (
        ("strike", "a perp has no strike: remove it (its funding cap is 'funding_cap')"),
        ("expiry", "a perp has no expiry: remove it"),
    ):
        if f.has(key):
            raise f.fail(key, why)
    if f.has("contract_size") and f.decimal("contract_size") != 1:
        raise f.fail("contract_size", "a perp's contract_size is 1 (funding is per unit): remove")
    return InstrumentSpec(
        underlying=underlying,
        kind=Kind.PERP,
        strike=0,
        expiry=0,
        open_interest_cap=to_wad(f.decimal("open_interest_cap", 1_000_000)),
        position_limit=to_wad(f.decimal("position_limit", 100_000)),
        funding_cap=_funding_cap(f),
    )


def parse_config(data: Any, source: str | os.PathLike[str] = "config") -> SystemConfig:
    """Build a ``SystemConfig`` from the JSON structure of ``deploy/config.json``.

    Numbers are human units (``"haircut": 0.2``, ``"strike": 9000``) converted exactly to WAD;
    deposit caps are whole tokens; an expiry is a date (08:00 UTC) or an ISO date/time.

    Raises:
        InputError: one line naming ``source``, the field and the fix (an unknown key names the
            closest valid one).
    """
    path = str(source)
    top = Fields(path, "", data, TOP_KEYS)
    g = Fields(path, "grids", top.raw("grids"), PRESETS)
    grids = {name: g.integer(name, lo=1) for name in g.obj}
    if not grids:
        raise top.fail("grids", f"must name at least one grid (one of {', '.join(PRESETS)})")
    if len(set(grids.values())) != len(grids):
        raise top.fail("grids", "two grids share an id")
    unds: list[UnderlyingSpec] = []
    for n, item in enumerate(top.items("underlyings")):
        f = Fields(path, f"underlyings[{n}]", item, UNDERLYING_KEYS)
        spec = UnderlyingSpec(
            name=f.text("name"),
            id=f.integer("id", lo=1, hi=MAX_UNDERLYING_ID),
            grid=_choice(f, "grid", grids, "grid (not in 'grids')"),
            psr_min=to_wad(margin_param(f, "psr_min")),
            psr_max=to_wad(margin_param(f, "psr_max")),
            som_rate=to_wad(margin_param(f, "som_rate")),
            max_deviation=to_wad(f.decimal("max_deviation")),
            max_array_ratio=to_wad(f.decimal("max_array_ratio")),
            basis=to_wad(margin_param(f, "basis")),
            roll=int(margin_param(f, "roll")),
        )
        if any(u.name == spec.name for u in unds):
            raise f.fail("name", f"underlying {spec.name!r} is listed twice")
        if any(u.id == spec.id for u in unds):
            raise f.fail("id", f"id {spec.id} is already underlying {spec.name!r}'s")
        unds.append(spec)
    names = [u.name for u in unds]
    cash = _token(path, "cash", top.raw("cash"), names)
    coll: list[CollateralSpec] = []
    for n, item in enumerate(top.items("collateral", (), empty=True)):
        token = _token(path, f"collateral[{n}]", item, names)
        for other in (cash, *coll):
            if other.symbol == token.symbol:
                raise InputError(path, f"collateral[{n}].symbol", f"{token.symbol} is listed twice")
            if token.address and other.address == token.address:
                raise InputError(
                    path, f"collateral[{n}].address", f"{token.address} is also {other.symbol}"
                )
        coll.append(token)
    ins: list[InstrumentSpec] = []
    for n, item in enumerate(top.items("instruments")):
        f = Fields(path, f"instruments[{n}]", item, INSTRUMENT_KEYS, RETIRED)
        underlying = _choice(f, "underlying", names, "underlying")
        kind = _kind(f)
        if kind is Kind.PERP:
            spec = _perp(f, underlying)
            if any(o.kind is Kind.PERP and o.underlying == underlying for o in ins):
                why = f"{underlying} has a perp already: one per underlying"
                raise InputError(path, f"instruments[{n}]", why)
            ins.append(spec)
            continue
        if f.has("funding_cap"):
            raise f.fail("funding_cap", "only a perp has a funding_cap: remove it (or kind perp)")
        if kind.is_option:
            strike = to_wad(f.decimal("strike"))
        elif f.has("strike"):
            raise f.fail("strike", "a future has no strike: remove it (or make kind call/put)")
        else:
            strike = 0
        spec = InstrumentSpec(
            underlying=underlying,
            kind=kind,
            strike=strike,
            expiry=f.time("expiry", date_hour=EXPIRY_HOUR, unix=False),
            contract_size=to_wad(f.decimal("contract_size", 1)),
            open_interest_cap=to_wad(f.decimal("open_interest_cap", 1_000_000)),
            position_limit=to_wad(f.decimal("position_limit", 100_000)),
        )
        if any(_same_listing(spec, other) for other in ins):
            raise InputError(path, f"instruments[{n}]", "the same instrument is listed twice")
        ins.append(spec)
    cfg = SystemConfig(
        grids=grids,
        underlyings=tuple(unds),
        instruments=tuple(ins),
        cash=cash,
        collateral=tuple(coll),
        im_factor=to_wad(margin_param(top, "im_factor")),
        max_age=top.integer("max_age", 900),
        timelock_delay=top.integer("timelock_delay", DEFAULT_DELAY, lo=MIN_DELAY, hi=MAX_DELAY),
        escape_delay=top.integer("escape_delay", 3 * 86_400),
    )
    check_bounds(cfg, path)
    return cfg


def _same_listing(a: InstrumentSpec, b: InstrumentSpec) -> bool:
    return (a.underlying, a.kind, a.strike, a.expiry, a.contract_size) == (
        b.underlying,
        b.kind,
        b.strike,
        b.expiry,
        b.contract_size,
    )


def load_config(path: str | os.PathLike[str]) -> SystemConfig:
    """``parse_config`` of a JSON file; errors name the file."""
    p = Path(path)
    return parse_config(read_json(p), p)
