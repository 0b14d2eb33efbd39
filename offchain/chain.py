"""One typed client over the deployed contracts, used by the scripts, the keeper and the tests.

Every contract call of the off-chain side is written here once: deploying and listing the system
from a config file (``deploy/config.json``), posting oracle rounds, deposits, withdrawals, trades,
settlement, and reading back everything the integer reference of ``docs/fixed-point.md`` needs
(``market_int()`` and ``account_int(address)``), so the keeper computes health off-chain exactly
as the engine does.

The pure parts (config parsing, instrument ids, decoding the oracle's packed words into
``margin.MarketInt``) need no chain and are unit-tested directly; ``Chain`` wraps Ape contract
objects and is imported by ``ape run`` scripts, ``ape console`` and the Ape tests.

Worked example of the decoding: an option's storage word 0 holds
``mark << 160 | e << 152 | timestamp << 112 | entries 0..6``; the word
``(500 * 10**18) << 160 | 56 << 152 | 1_700_000_000 << 112 | 0xFFFF0001`` decodes to mark 500 USD,
``e = 56``, entries ``[1, -1, 0, ...]``, i.e. a risk array of ``[2**56, -2**56, 0, ...]`` wei.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from offchain.codec import (
    E_LISTED,
    E_SETTLED,
    E_SHIFT,
    MARK_SHIFT,
    TS_SHIFT,
    id_fields,
    instrument_id,
    pack_entries,
    pack_post,
    unpack_entries,
)
from offchain.fixed_point import WAD, encode_risk_array
from offchain.margin import (
    AccountInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarginStateInt,
    MarketInt,
    UnderlyingInt,
    margin_state_int,
    settlement_cash,
)
from offchain.scenarios import PRESETS, ScenarioGrid

__all__ = [
    "ROLE_GUARDIAN",
    "ROLE_KEEPER",
    "ROLE_VENUE",
    "Chain",
    "ChainMarket",
    "CollateralSpec",
    "Deployment",
    "InstrumentMeta",
    "InstrumentSpec",
    "SystemConfig",
    "UnderlyingSpec",
    "decode_market",
    "id_fields",
    "instrument_id",
    "load_config",
    "pack_entries",
    "to_wad",
    "unpack_entries",
]

ROLE_KEEPER = 1
ROLE_VENUE = 2
ROLE_GUARDIAN = 4

MASK40 = 2**40 - 1
MASK96 = 2**96 - 1
SNAPSHOT_MAX = 32  # RiskOracle.snapshot takes at most 32 instruments / underlyings per call
ASSETS_MAX = 8
LOG_CHUNK = 5_000  # blocks per eth_getLogs call


# ------------------------------------------------------------------------------------ units


def to_wad(x: float | int | str | Decimal) -> int:
    """Exact decimal to WAD: ``to_wad("0.2") == 2 * 10**17``; floats go through ``str``."""
    if isinstance(x, bool):
        raise ValueError("a number is needed, got bool")
    try:
        d = Decimal(str(x)) * WAD
    except InvalidOperation:
        raise ValueError(f"{x!r} is not a number") from None
    if not d.is_finite() or d != d.to_integral_value():
        raise ValueError(f"{x} is not finite or has more than 18 decimals")
    return int(d)


def to_units(x: float | int | str | Decimal, decimals: int) -> int:
    """Token units of a human amount: ``to_units("1.5", 6) == 1_500_000``."""
    d = Decimal(str(x)) * 10**decimals
    if d != d.to_integral_value():
        raise ValueError(f"{x} has more than {decimals} decimals")
    return int(d)


# ------------------------------------------------------------------------ instrument ids


@dataclass(frozen=True)
class InstrumentMeta:
    """A listed instrument as the oracle's ``InstrumentListed`` event describes it (WAD)."""

    id: int
    underlying: int
    kind: Kind
    strike: int
    expiry: int
    contract_size: int = WAD

    def name(self, underlying_names: Mapping[int, str]) -> str:
        """``BTC-20200327-C-9000``, ``ETH-20200327-F``: stable across restarts and keepers."""
        day = datetime.fromtimestamp(self.expiry, UTC).strftime("%Y%m%d")
        und = underlying_names.get(self.underlying, str(self.underlying))
        if self.kind is Kind.FUTURE:
            return f"{und}-{day}-F"
        strike = Decimal(self.strike) / WAD
        return f"{und}-{day}-{'C' if self.kind is Kind.CALL else 'P'}-{strike.normalize():f}"


# ---------------------------------------------------------------------------- config


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


# ------------------------------------------------------------------------- deployment file


@dataclass
class Deployment:
    """Addresses of one deployment (``deployments/<network>.json``)."""

    network: str
    chain_id: int
    block: int
    oracle: str
    engine_admin: str
    engine: str
    views: str
    cash: str
    collateral: dict[str, str] = field(default_factory=dict)
    underlyings: dict[str, int] = field(default_factory=dict)
    instruments: dict[str, int] = field(default_factory=dict)
    asset_prices: dict[str, str] = field(default_factory=dict)  # token -> underlying name
    liquidator: str | None = None
    liquidation_views: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "chain_id": self.chain_id,
            "block": self.block,
            "oracle": self.oracle,
            "engine_admin": self.engine_admin,
            "engine": self.engine,
            "views": self.views,
            "cash": self.cash,
            "collateral": dict(self.collateral),
            "underlyings": dict(self.underlyings),
            "instruments": {k: str(v) for k, v in self.instruments.items()},
            "asset_prices": dict(self.asset_prices),
            "liquidator": self.liquidator,
            "liquidation_views": self.liquidation_views,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Deployment:
        return cls(
            network=obj["network"],
            chain_id=int(obj["chain_id"]),
            block=int(obj["block"]),
            oracle=obj["oracle"],
            engine_admin=obj["engine_admin"],
            engine=obj["engine"],
            views=obj["views"],
            cash=obj["cash"],
            collateral=dict(obj.get("collateral", {})),
            underlyings={k: int(v) for k, v in obj.get("underlyings", {}).items()},
            instruments={k: int(v) for k, v in obj.get("instruments", {}).items()},
            asset_prices=dict(obj.get("asset_prices", {})),
            liquidator=obj.get("liquidator"),
            liquidation_views=obj.get("liquidation_views"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomic write (temporary file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        return cls.from_json(json.loads(Path(path).read_text()))


# --------------------------------------------------------------------- decoding the oracle


@dataclass(frozen=True)
class ChainMarket:
    """Oracle state for the integer reference: ``market`` (posted instruments, underlyings,
    collateral keyed by engine asset index), settlement prices of settled instruments, the
    posting timestamp of each instrument and the engine's ``im_factor``."""

    market: MarketInt
    settled: Mapping[int, int]
    timestamps: Mapping[int, int]
    im_factor: int
    asset_index: Mapping[str, int]

    def account(
        self, cash: int, positions: Mapping[int, int], collateral: Mapping[str, int]
    ) -> AccountInt:
        """An ``AccountInt`` with settled positions folded into cash exactly as the engine's
        ``portfolio._risk`` does: ``div_floor(q * P, WAD)`` per settled position."""
        live: dict[int, int] = {}
        for j, q in positions.items():
            if q == 0:
                continue
            if j in self.settled:
                cash += settlement_cash(q, self.settled[j])
            else:
                live[j] = q
        coll = {self.asset_index[a]: amt for a, amt in collateral.items() if amt}
        return AccountInt(cash, live, coll)

    def margin(self, account: AccountInt) -> MarginStateInt:
        return margin_state_int(account, self.market, self.im_factor)


def decode_market(
    instrument_words: Mapping[int, Sequence[int]],
    underlying_words: Mapping[int, Sequence[int]],
    asset_words: Mapping[str, int],
    assets: Mapping[str, tuple[int, int, int]],
    im_factor: int,
) -> ChainMarket:
    """Build the integer reference's market from ``RiskOracle.snapshot`` words.

    Args:
        instrument_words: id -> the three storage words (all zero: listed, never posted).
        underlying_words: id -> ``[spot | psr << 96 | ts << 160, scenarios, som_rate]``.
        asset_words: token address -> ``price | ts << 96``.
        assets: token address -> (engine asset index, haircut WAD, decimals).
        im_factor: the engine's IM factor (WAD).
    """
    unds = {
        u: UnderlyingInt(w[0] & MASK96, w[2], w[1]) for u, w in underlying_words.items() if w[1]
    }
    instruments: dict[int, InstrumentInt] = {}
    settled: dict[int, int] = {}
    stamps: dict[int, int] = {}
    for iid, words in instrument_words.items():
        w0 = words[0]
        e = (w0 >> E_SHIFT) & 0xFF
        mark = w0 >> MARK_SHIFT
        if w0 == 0 or e == E_LISTED:
            continue
        stamps[iid] = (w0 >> TS_SHIFT) & MASK40
        if e == E_SETTLED:
            settled[iid] = mark
            continue
        _, kind, und, _ = id_fields(iid)
        n = unds[und].n_scenarios
        entries = unpack_entries([w0, *words[1:]], n)
        instruments[iid] = InstrumentInt(und, Kind(kind), mark, e, tuple(entries))
    colls = {
        index: CollateralInt(asset_words.get(addr, 0) & MASK96, haircut, decimals)
        for addr, (index, haircut, decimals) in assets.items()
    }
    return ChainMarket(
        MarketInt(instruments, unds, colls),
        settled,
        stamps,
        im_factor,
        {a: v[0] for a, v in assets.items()},
    )


def _has_contract_type(project: Any, name: str) -> bool:
    try:
        getattr(project, name)
    except AttributeError:
        return False
    return True


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


# --------------------------------------------------------------------------- the client


@dataclass(frozen=True)
class OptionPost:
    """One instrument of a post: futures carry only the mark (their array is computed
    on-chain); options carry the exponent and packed entries."""

    instrument: int
    mark: int
    e: int = 0
    words: tuple[int, ...] = ()

    @classmethod
    def future(cls, instrument: int, mark: int) -> OptionPost:
        return cls(instrument, mark)

    @classmethod
    def option(cls, instrument: int, mark: int, ra_wad: Sequence[int]) -> OptionPost:
        e, entries = encode_risk_array(list(ra_wad))
        return cls(instrument, mark, e, tuple(pack_entries(entries)))

    def as_arg(self) -> tuple[int, int, int, list[int]]:
        return (self.instrument, self.mark, self.e, list(self.words))


class Chain:
    """The deployed system behind Ape contract objects.

    Build with ``Chain.deploy(...)`` (fresh or idempotent re-run) or ``Chain.connect(...)`` on a
    ``Deployment``. Sending methods take Ape accounts (``sender=``); the keeper, which signs
    through ``TxManager``, uses the ``*_calldata`` methods instead.
    """

    def __init__(self, project: Any, chain_manager: Any, deployment: Deployment) -> None:
        self.project = project
        self.chain_manager = chain_manager
        self.deployment = deployment
        self.oracle = project.RiskOracle.at(deployment.oracle)
        self.engine_admin = project.EngineAdmin.at(deployment.engine_admin)
        self.engine = project.MarginEngine.at(deployment.engine)
        self.views = project.MarginViews.at(deployment.views)
        self.cash = project.MockERC20.at(deployment.cash)
        self.tokens = {sym: project.MockERC20.at(a) for sym, a in deployment.collateral.items()}
        self.underlying_names = {v: k for k, v in deployment.underlyings.items()}
        self.liquidator = (
            project.Liquidator.at(deployment.liquidator) if deployment.liquidator else None
        )
        self.liquidation_views = (
            project.LiquidationViews.at(deployment.liquidation_views)
            if deployment.liquidation_views
            else None
        )
        self._asset_info: dict[str, tuple[int, int, int]] | None = None
        self._w3_events: dict[tuple[str, str], Any] = {}
        self._im_factor: int | None = None

    # ---------------------------------------------------------------- deploy

    @classmethod
    def connect(
        cls, project: Any, chain_manager: Any, deployment: Deployment | str | os.PathLike[str]
    ) -> Chain:
        dep = deployment if isinstance(deployment, Deployment) else Deployment.load(deployment)
        return cls(project, chain_manager, dep)

    @classmethod
    def deploy(
        cls,
        project: Any,
        chain_manager: Any,
        admin: Any,
        config: SystemConfig,
        *,
        keepers: Sequence[Any] = (),
        venues: Sequence[Any] = (),
        guardians: Sequence[Any] = (),
        existing: Deployment | None = None,
        network: str = "local",
        time_offset: int = 0,
        log: Any = None,
    ) -> Chain:
        """Deploy (or complete) the system of ``config`` and return its client.

        Idempotent: with ``existing`` whose contracts have code, nothing is redeployed, and
        each listing (grid, underlying, asset, collateral, instrument, role, parameter) is
        sent only if the chain does not have it yet. ``time_offset`` seconds are added to every
        expiry (the demo replays history on a chain whose clock is later).
        """
        say = log or (lambda _msg: None)

        def has_code(addr: str | None) -> bool:
            return bool(addr) and len(chain_manager.provider.get_code(addr)) > 0

        reuse = existing is not None and all(
            has_code(a)
            for a in (
                existing.oracle,
                existing.engine_admin,
                existing.engine,
                existing.views,
                existing.cash,
            )
        )
        if reuse:
            dep = existing
            say(f"reusing deployment: oracle {dep.oracle}, engine {dep.engine}")
        else:
            block = chain_manager.blocks.head.number
            cash_addr = config.cash.address
            if cash_addr is None:
                cash_addr = admin.deploy(
                    project.MockERC20, config.cash.symbol, config.cash.symbol, config.cash.decimals
                ).address
            oracle = admin.deploy(project.RiskOracle, admin)
            engine_admin = admin.deploy(project.EngineAdmin, admin)
            engine = admin.deploy(
                project.MarginEngine, engine_admin, oracle, cash_addr, config.cash.deposit_cap
            )
            engine_admin.bind(engine, sender=admin)
            views = admin.deploy(project.MarginViews, engine)
            dep = Deployment(
                network=network,
                chain_id=chain_manager.chain_id,
                block=block,
                oracle=oracle.address,
                engine_admin=engine_admin.address,
                engine=engine.address,
                views=views.address,
                cash=cash_addr,
            )
            say(f"deployed oracle {oracle.address}, engine {engine.address}, views {views.address}")
        for spec in config.collateral:
            addr = dep.collateral.get(spec.symbol) or spec.address
            if not has_code(addr):
                addr = admin.deploy(
                    project.MockERC20, spec.symbol, spec.symbol, spec.decimals
                ).address
            dep.collateral[spec.symbol] = addr
            dep.asset_prices[addr] = spec.priced_by
        if _has_contract_type(project, "Liquidator"):
            engine = project.MarginEngine.at(dep.engine)
            if not has_code(dep.liquidator):
                liq = admin.deploy(project.Liquidator, admin, engine)
                dep.liquidator = liq.address
                dep.liquidation_views = admin.deploy(project.LiquidationViews, liq).address
                say(f"deployed liquidator {liq.address}")
            if str(engine.liquidator()) != dep.liquidator:
                project.EngineAdmin.at(dep.engine_admin).set_liquidator(
                    dep.liquidator, sender=admin
                )
        self = cls(project, chain_manager, dep)
        self._list(admin, config, time_offset, say)
        for role, who in ((ROLE_KEEPER, keepers), (ROLE_VENUE, venues), (ROLE_GUARDIAN, guardians)):
            target = self.oracle if role == ROLE_KEEPER else self.engine_admin
            for acct in who:
                if not target.has_role(acct, role):
                    target.grant_role(acct, role, sender=admin)
        self.underlying_names = {v: k for k, v in dep.underlyings.items()}
        return self

    def _list(self, admin: Any, cfg: SystemConfig, time_offset: int, say: Any) -> None:
        o, e, dep = self.oracle, self.engine, self.deployment
        ea = self.engine_admin
        for u in cfg.underlyings:
            gid = cfg.grids[u.grid]
            if o.grid_size(gid) == 0:
                o.register_grid(gid, u.scenario_grid.linear_coefficients_wad(), sender=admin)
                say(f"grid {u.grid} registered as {gid}")
            if o.underlying_params(u.id).scenarios == 0:
                o.list_underlying(
                    u.id,
                    gid,
                    u.psr_min,
                    u.psr_max,
                    u.som_rate,
                    u.max_deviation,
                    u.max_array_ratio,
                    sender=admin,
                )
                say(f"underlying {u.name} listed as {u.id}")
            dep.underlyings[u.name] = u.id
        if o.max_age() != cfg.max_age:
            o.set_max_age(cfg.max_age, sender=admin)
        if e.im_factor() != cfg.im_factor:
            ea.set_im_factor(cfg.im_factor, sender=admin)
        for spec in cfg.collateral:
            token = dep.collateral[spec.symbol]
            if not o.asset_listed(token):
                o.list_asset(token, spec.max_deviation, sender=admin)
            if e.asset_index(token) == 0:
                ea.list_collateral(token, spec.haircut, spec.deposit_cap, sender=admin)
                say(f"collateral {spec.symbol} listed (haircut {spec.haircut / WAD:.0%})")
        for spec in cfg.instruments:
            uid = cfg.underlying(spec.underlying).id
            expiry = spec.expiry + time_offset
            meta = InstrumentMeta(0, uid, spec.kind, spec.strike, expiry, spec.contract_size)
            name = meta.name(self.underlying_names | {uid: spec.underlying})
            iid = dep.instruments.get(name)
            if iid is None or not o.instrument_listed(iid):
                tx = o.list_instrument(
                    uid, int(spec.kind), spec.strike, expiry, spec.contract_size, sender=admin
                )
                iid = int(tx.events.filter(o.InstrumentListed)[0].instrument)
                dep.instruments[name] = iid
                say(f"instrument {name} listed as {iid:#x}")
            if e.open_interest_cap(iid) != spec.open_interest_cap:
                ea.set_instrument_limits(
                    iid, spec.open_interest_cap, spec.position_limit, sender=admin
                )

    # ---------------------------------------------------------------- listings (events)

    def listed_instruments(self, start_block: int | None = None) -> list[InstrumentMeta]:
        """Every instrument listed by the oracle, from its ``InstrumentListed`` events."""
        start = self.deployment.block if start_block is None else start_block
        out = []
        for ev in self.events(self.oracle, "InstrumentListed", start, self._head()):
            out.append(
                InstrumentMeta(
                    int(ev["instrument"]),
                    int(ev["underlying"]),
                    Kind(int(ev["kind"])),
                    int(ev["strike"]),
                    int(ev["expiry"]),
                    int(ev["contract_size"]),
                )
            )
        return sorted(out, key=lambda m: m.id)

    def events(self, contract: Any, name: str, start: int, stop: int) -> list[Mapping[str, Any]]:
        """Decoded arguments of ``contract``'s ``name`` events in blocks ``[start, stop]``,
        in chain order, read with ``eth_getLogs`` from the node (Ape's event queries clamp
        the range to its own cached head, which can lag behind the keeper's transactions)."""
        if stop < start:
            return []
        key = (contract.address, name)
        if key not in self._w3_events:
            abi = [
                a.model_dump(by_alias=True, mode="json")
                for a in contract.contract_type.abi
                if a.type == "event" and a.name == name
            ]
            w3 = self.chain_manager.provider.web3
            self._w3_events[key] = getattr(
                w3.eth.contract(address=contract.address, abi=abi).events, name
            )
        out = []
        for lo in range(start, stop + 1, LOG_CHUNK):  # public RPCs cap the range per call
            hi = min(lo + LOG_CHUNK - 1, stop)
            logs = self._w3_events[key]().get_logs(from_block=lo, to_block=hi)
            out += [dict(log["args"]) for log in logs]
        return out

    def underlying_params(self, underlying: int) -> Any:
        return self.oracle.underlying_params(underlying)

    def accounts_touched(self, start_block: int, stop_block: int) -> set[str]:
        """Accounts named by engine events in ``[start_block, stop_block]``: deposits, position
        changes and settlements (what changes cash, positions or collateral), and both sides
        of each liquidation (the engine moves those positions without a per-position event)."""
        out: set[str] = set()
        for name in ("Deposit", "Withdraw", "PositionChanged", "Settled"):
            for ev in self.events(self.engine, name, start_block, stop_block):
                out.add(str(ev["account"]))
        if self.liquidator is not None:
            for ev in self.events(self.liquidator, "Liquidated", start_block, stop_block):
                out.update((str(ev["account"]), str(ev["liquidator"])))
        return out

    def _head(self) -> int:
        """The node's latest block number (asked each time: Ape's head can lag behind
        transactions sent by the keeper's own transaction manager)."""
        return int(self.chain_manager.provider.web3.eth.block_number)

    # ---------------------------------------------------------------- oracle posts

    def post_args(
        self,
        timestamp: int,
        underlyings: Sequence[tuple[int, int, int]],
        instruments: Sequence[OptionPost],
        assets: Sequence[tuple[str, int]],
    ) -> tuple[int, list, list, list, list]:
        options, futures = pack_post([p.as_arg() for p in instruments])
        return (
            int(timestamp),
            [tuple(u) for u in underlyings],
            options,
            futures,
            [tuple(a) for a in assets],
        )

    def post_calldata(self, *args: Any) -> bytes:
        """Calldata of ``RiskOracle.post`` for ``post_args(...)``."""
        return bytes(self.oracle.post.encode_input(*self.post_args(*args)))

    def post(self, sender: Any, *args: Any) -> Any:
        return self.oracle.post(*self.post_args(*args), sender=sender)

    def settlement_calldata(self, instrument: int, price: int) -> bytes:
        return bytes(self.oracle.post_settlement.encode_input(instrument, price))

    def settle_calldata(self, account: str) -> bytes:
        return bytes(self.engine.settle.encode_input(account))

    def liquidate_calldata(self, account: str) -> bytes:
        """``Liquidator.liquidate(account)``: the caller's margin account takes the positions."""
        return bytes(self.liquidator.liquidate.encode_input(account))

    def register_calldata(self, account: str) -> bytes:
        """``Liquidator.register(account)``: adds it to the on-chain paged scan."""
        return bytes(self.liquidator.register.encode_input(account))

    def insurance_fund(self) -> int:
        """The insurance fund (WAD): the Liquidator's cash in the engine; 0 without one."""
        return 0 if self.liquidator is None else int(self.liquidator.insurance_fund())

    # ---------------------------------------------------------------- accounts

    def fund(self, admin: Any, account: Any, symbol: str, amount: int) -> None:
        """Mint mock tokens (token units) to ``account`` and approve the engine (local only)."""
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        token.mint(account, amount, sender=admin)
        token.approve(self.engine, 2**256 - 1, sender=account)

    def deposit(self, account: Any, symbol: str, amount: int) -> Any:
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        return self.engine.deposit(token, amount, sender=account)

    def withdraw(self, account: Any, symbol: str, amount: int) -> Any:
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        return self.engine.withdraw(token, amount, sender=account)

    def authorise(self, account: Any, venue: Any) -> Any:
        return self.engine_admin.authorise_venue(venue, True, sender=account)

    def trade(
        self, venue: Any, buyer: Any, seller: Any, instrument: int, size: int, price: int
    ) -> Any:
        """Book ``size`` (WAD, > 0) of ``instrument`` at ``price`` (WAD): buyer long."""
        return self.engine.trade(buyer, seller, instrument, size, price, sender=venue)

    def settle(self, sender: Any, account: Any) -> Any:
        return self.engine.settle(account, sender=sender)

    # ---------------------------------------------------------------- reads

    def account_state(self, account: Any) -> tuple[int, int, int, int, bool]:
        """``(equity, IM, MM, pending charge, fresh)`` WAD, from the engine: equity has the
        pending socialised-loss charge deducted and collateral without a fresh price at zero."""
        st = self.engine.account_state(account)
        return (
            int(st.equity),
            int(st.initial_margin),
            int(st.maintenance_margin),
            int(st.pending_charge),
            bool(st.fresh),
        )

    def worst_scenarios(self, account: Any) -> list[Any]:
        return list(self.views.worst_scenarios(account))

    def positions(self, account: Any) -> dict[int, int]:
        ids, sizes = self.engine.positions_of(account)
        return {int(i): int(q) for i, q in zip(ids, sizes, strict=True)}

    def assets(self) -> dict[str, tuple[int, int, int]]:
        """Listed non-cash collateral: address -> (asset index, haircut WAD, decimals)."""
        if self._asset_info is None:
            info = {}
            for addr in self.deployment.collateral.values():
                index = int(self.engine.asset_index(addr))
                if index == 0:
                    continue
                scale = int(self.engine.asset_scale(addr))
                decimals = 18 - (len(str(scale)) - 1)
                info[addr] = (index - 1, int(self.engine.asset_haircut(addr)), decimals)
            self._asset_info = info
        return self._asset_info

    def im_factor(self) -> int:
        if self._im_factor is None:
            self._im_factor = int(self.engine.im_factor())
        return self._im_factor

    def market_int(self, instruments: Sequence[int] | None = None) -> ChainMarket:
        """Oracle state of ``instruments`` (default: every listed one) for the reference."""
        ids = (
            [m.id for m in self.listed_instruments()] if instruments is None else list(instruments)
        )
        unds = sorted({id_fields(i)[2] for i in ids} | set(self.deployment.underlyings.values()))
        assets = self.assets()
        addrs = list(assets)
        iw: dict[int, list[int]] = {}
        uw: dict[int, list[int]] = {}
        aw: dict[str, int] = {}
        first = True
        for chunk in _chunks(ids, SNAPSHOT_MAX) if ids else [[]]:
            u_arg = unds[:SNAPSHOT_MAX] if first else []
            a_arg = addrs[:ASSETS_MAX] if first else []
            words, uwords, awords, _ = self.oracle.snapshot(list(chunk), u_arg, a_arg)
            for i, w in zip(chunk, words, strict=True):
                iw[i] = [int(x) for x in w]
            for u, w in zip(u_arg, uwords, strict=True):
                uw[u] = [int(x) for x in w]
            for a, w in zip(a_arg, awords, strict=True):
                aw[a] = int(w)
            first = False
        return decode_market(iw, uw, aw, assets, self.im_factor())

    def account_raw(self, account: Any) -> tuple[int, dict[int, int], dict[str, int]]:
        """``(cash WAD, {instrument: size}, {token: units})`` as the engine stores them."""
        cash = int(self.engine.cash(account))
        positions = self.positions(account)
        if self.liquidator is not None and positions and self.engine.socialising():
            # a socialised loss not yet realised is owed: equity counts it (account_state)
            cash -= int(self.liquidator.pending_charge(account))
        mask = int(self.engine.asset_mask(account))
        coll = {}
        for addr, (index, _, _) in self.assets().items():
            if mask >> index & 1:
                coll[addr] = int(self.engine.collateral(addr, account))
        return cash, positions, coll

    def account_int(self, account: Any, market: ChainMarket) -> AccountInt:
        """The account as the reference model sees it (cash, live positions, collateral)."""
        return market.account(*self.account_raw(account))

    def margin_report(self, account: Any) -> dict[str, Any]:
        """Equity, IM, MM, health and the worst scenario per underlying (WAD ints), from the
        engine and the views, plus the off-chain reference's equity and MM for comparison."""
        eq, im, mm, _pending, _fresh = self.account_state(account)
        market = self.market_int()
        ref = market.margin(self.account_int(account, market))
        worst = []
        for r in self.worst_scenarios(account):
            u = int(r.underlying)
            grid = PRESETS[self.grid_name(u)]
            s = int(r.worst_scenario)
            worst.append(
                {
                    "underlying": self.underlying_names.get(u, str(u)),
                    "scenario": s,
                    "label": grid.scenarios[s].label if s < len(grid) else str(s),
                    "loss": int(r.worst_loss),
                    "pad": int(r.pad),
                    "som": int(r.som),
                    "risk": int(r.risk),
                }
            )
        return {
            "equity": eq,
            "initial_margin": im,
            "maintenance_margin": mm,
            "health": eq - mm,
            "worst": worst,
            "reference_equity": ref.equity,
            "reference_mm": ref.maintenance_margin,
        }

    def grid_name(self, underlying: int) -> str:
        """The preset grid (``offchain.scenarios.PRESETS``) whose coefficients the underlying's
        registered grid holds."""
        gid = int(self.oracle.underlying_params(underlying).grid_id)
        coefficients = [int(c) for c in self.oracle.grid(gid)]
        for name, grid in PRESETS.items():
            if grid.linear_coefficients_wad() == coefficients:
                return name
        raise KeyError(f"grid {gid} is none of the presets {sorted(PRESETS)}")


def format_margin_report(report: Mapping[str, Any], account: str = "") -> str:
    """Plain-text rendering of ``Chain.margin_report`` (USD with two decimals).

    >>> print(format_margin_report({"equity": 10**22, "initial_margin": 5 * 10**21,
    ...     "maintenance_margin": 4 * 10**21, "health": 6 * 10**21, "worst": [],
    ...     "reference_equity": 10**22, "reference_mm": 4 * 10**21}))
    equity 10,000.00  IM 5,000.00  MM 4,000.00  health 6,000.00 (ok)
    off-chain reference: equity 10,000.00  MM 4,000.00 (equal)
    """
    eq, im, mm = report["equity"], report["initial_margin"], report["maintenance_margin"]
    status = "below MM: liquidatable" if eq < mm else "below IM" if eq < im else "ok"
    lines = [
        (f"{account}\n" if account else "")
        + f"equity {eq / WAD:,.2f}  IM {im / WAD:,.2f}  MM {mm / WAD:,.2f}  "
        f"health {report['health'] / WAD:,.2f} ({status})"
    ]
    for w in report["worst"]:
        lines.append(
            f"  {w['underlying']}: worst scenario {w['scenario']} ({w['label']}) loss "
            f"{w['loss'] / WAD:,.2f}, pad {w['pad'] / WAD:,.2f}, short-option minimum "
            f"{w['som'] / WAD:,.2f} -> risk {w['risk'] / WAD:,.2f}"
        )
    same = report["reference_equity"] == eq and report["reference_mm"] == mm
    lines.append(
        f"off-chain reference: equity {report['reference_equity'] / WAD:,.2f}  "
        f"MM {report['reference_mm'] / WAD:,.2f} ({'equal' if same else 'DIFFERENT'})"
    )
    return "\n".join(lines)
