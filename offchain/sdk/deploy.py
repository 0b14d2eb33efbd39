"""Deploying the system, the one place that does it: the deploy script, the demo, the tests and
the benchmarks all build their chains here.

``deploy_system`` deploys (or completes) everything a ``SystemConfig`` describes and returns a
``Client``. Idempotent: given an ``existing`` deployment whose contracts have code, nothing is
redeployed, and each listing (grid, underlying, asset, collateral, instrument, role, parameter) is
sent only if the chain does not have it yet. The steps it is made of (``deploy_core``,
``deploy_liquidator``, ``list_config``, ``grant_roles``) are public for tests that need a
contract before anything is listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from offchain.fixed_point import WAD
from offchain.sdk.client import Client, Deployment
from offchain.sdk.config import InstrumentSpec, SystemConfig
from offchain.sdk.decode import InstrumentMeta
from offchain.sdk.roles import ROLE_GUARDIAN, ROLE_KEEPER, ROLE_VENUE

__all__ = [
    "Core",
    "deploy_core",
    "deploy_liquidation_views",
    "deploy_liquidator",
    "deploy_system",
    "deploy_token",
    "grant_roles",
    "instrument_name",
    "list_config",
]

Say = Callable[[str], None]


def deploy_token(project: Any, admin: Any, symbol: str, decimals: int, name: str = "") -> Any:
    """A mock ERC-20 (local networks), named ``name`` or its symbol."""
    return admin.deploy(project.MockERC20, name or symbol, symbol, decimals)


class Core(NamedTuple):
    """The contracts every deployment has: the oracle, the engine's configuration contract
    (roles, venue authorisations, listings and limits), the engine and its views."""

    oracle: Any
    engine_admin: Any
    engine: Any
    views: Any


def deploy_core(project: Any, admin: Any, cash: Any, deposit_cap: int) -> Core:
    """The core contracts, wired, nothing listed: ``deposit_cap`` in units of ``cash``.

    EngineAdmin is deployed first, the engine takes its address, and EngineAdmin is bound to
    that engine once (it writes every configuration change into it)."""
    oracle = admin.deploy(project.RiskOracle, admin)
    engine_admin = admin.deploy(project.EngineAdmin, admin)
    engine = admin.deploy(project.MarginEngine, engine_admin, oracle, cash, deposit_cap)
    engine_admin.bind(engine, sender=admin)
    views = admin.deploy(project.MarginViews, engine)
    return Core(oracle, engine_admin, engine, views)


def deploy_liquidator(project: Any, admin: Any, engine_admin: Any, engine: Any) -> Any:
    """A Liquidator wired to ``engine`` through ``engine_admin`` (the engine takes one, once)."""
    liquidator = admin.deploy(project.Liquidator, admin, engine)
    engine_admin.set_liquidator(liquidator, sender=admin)
    return liquidator


def deploy_liquidation_views(project: Any, admin: Any, liquidator: Any) -> Any:
    return admin.deploy(project.LiquidationViews, liquidator)


def grant_roles(
    oracle: Any,
    engine_admin: Any,
    admin: Any,
    *,
    keepers: Sequence[Any] = (),
    venues: Sequence[Any] = (),
    guardians: Sequence[Any] = (),
) -> None:
    """Keepers post to the oracle; venues and guardians hold their roles in EngineAdmin (the
    engine asks it). Sent once each."""
    for role, who in ((ROLE_KEEPER, keepers), (ROLE_VENUE, venues), (ROLE_GUARDIAN, guardians)):
        target = oracle if role == ROLE_KEEPER else engine_admin
        for account in who:
            if not target.has_role(account, role):
                target.grant_role(account, role, sender=admin)


def instrument_name(config: SystemConfig, spec: InstrumentSpec, time_offset: int = 0) -> str:
    """The name ``list_config`` records ``spec`` under in ``Deployment.instruments``."""
    uid = config.underlying(spec.underlying).id
    expiry = spec.expiry + time_offset
    meta = InstrumentMeta(0, uid, spec.kind, spec.strike, expiry, spec.contract_size)
    return meta.name({uid: spec.underlying})


def list_config(
    oracle: Any,
    engine_admin: Any,
    engine: Any,
    deployment: Deployment,
    admin: Any,
    config: SystemConfig,
    time_offset: int = 0,
    say: Say | None = None,
) -> None:
    """Send every listing of ``config`` the chain does not have yet; record the underlyings and
    instruments in ``deployment``. ``time_offset`` seconds are added to every expiry (the demo
    replays history on a chain whose clock is later)."""
    say = say or (lambda _msg: None)
    for u in config.underlyings:
        gid = config.grids[u.grid]
        if oracle.grid_size(gid) == 0:
            oracle.register_grid(gid, u.scenario_grid.linear_coefficients_wad(), sender=admin)
            say(f"grid {u.grid} registered as {gid}")
        if oracle.underlying_params(u.id).scenarios == 0:
            oracle.list_underlying(
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
        deployment.underlyings[u.name] = u.id
    if oracle.max_age() != config.max_age:
        oracle.set_max_age(config.max_age, sender=admin)
    if engine.im_factor() != config.im_factor:
        engine_admin.set_im_factor(config.im_factor, sender=admin)
    for spec in config.collateral:
        token = deployment.collateral[spec.symbol]
        if not oracle.asset_listed(token):
            oracle.list_asset(token, spec.max_deviation, sender=admin)
        listed = engine.asset_index(token) != 0
        if not listed or (engine.asset_haircut(token), engine.asset_deposit_cap(token)) != (
            spec.haircut,
            spec.deposit_cap,
        ):
            engine_admin.list_collateral(token, spec.haircut, spec.deposit_cap, sender=admin)
            say(f"collateral {spec.symbol} listed (haircut {spec.haircut / WAD:.0%})")
    for spec in config.instruments:
        uid = config.underlying(spec.underlying).id
        expiry = spec.expiry + time_offset
        name = instrument_name(config, spec, time_offset)
        iid = deployment.instruments.get(name)
        if iid is None or not oracle.instrument_listed(iid):
            tx = oracle.list_instrument(
                uid, int(spec.kind), spec.strike, expiry, spec.contract_size, sender=admin
            )
            iid = int(tx.events.filter(oracle.InstrumentListed)[0].instrument)
            deployment.instruments[name] = iid
            say(f"instrument {name} listed as {iid:#x}")
        limits = (engine.open_interest_cap(iid), engine.position_limit(iid))
        if limits != (spec.open_interest_cap, spec.position_limit):
            engine_admin.set_instrument_limits(
                iid, spec.open_interest_cap, spec.position_limit, sender=admin
            )


def deploy_system(
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
    liquidator: bool = True,
    log: Say | None = None,
) -> Client:
    """Deploy (or complete) the system of ``config`` and return its client.

    Tokens without an address in the config are deployed as mocks. ``liquidator`` False leaves
    the engine without a Liquidator (the margin-check benchmark measures the engine alone).
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
        cash = config.cash.address
        if cash is None:
            cash = deploy_token(project, admin, config.cash.symbol, config.cash.decimals).address
        core = deploy_core(project, admin, cash, config.cash.deposit_cap)
        dep = Deployment(
            network=network,
            chain_id=chain_manager.chain_id,
            block=block,
            oracle=core.oracle.address,
            engine_admin=core.engine_admin.address,
            engine=core.engine.address,
            views=core.views.address,
            cash=cash,
        )
        say(
            f"deployed oracle {core.oracle.address}, engine admin {core.engine_admin.address}, "
            f"engine {core.engine.address}, views {core.views.address}"
        )
    for spec in config.collateral:
        addr = dep.collateral.get(spec.symbol) or spec.address
        if not has_code(addr):
            addr = deploy_token(project, admin, spec.symbol, spec.decimals).address
        dep.collateral[spec.symbol] = addr
        dep.asset_prices[addr] = spec.priced_by
    oracle = project.RiskOracle.at(dep.oracle)
    engine_admin = project.EngineAdmin.at(dep.engine_admin)
    engine = project.MarginEngine.at(dep.engine)
    if liquidator:
        if not has_code(dep.liquidator):
            liq = deploy_liquidator(project, admin, engine_admin, engine)
            dep.liquidator = liq.address
            dep.liquidation_views = deploy_liquidation_views(project, admin, liq).address
            say(f"deployed liquidator {liq.address}")
        else:
            if str(engine.liquidator()) != dep.liquidator:
                engine_admin.set_liquidator(dep.liquidator, sender=admin)
            if not has_code(dep.liquidation_views):
                liq = project.Liquidator.at(dep.liquidator)
                dep.liquidation_views = deploy_liquidation_views(project, admin, liq).address
    list_config(oracle, engine_admin, engine, dep, admin, config, time_offset, say)
    grant_roles(oracle, engine_admin, admin, keepers=keepers, venues=venues, guardians=guardians)
    return Client(project, chain_manager, dep)
