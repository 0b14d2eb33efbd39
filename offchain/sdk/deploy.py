"""Deploying the system, the one place that does it: the deploy script, the demo, the tests and
the benchmarks all build their chains here.

``deploy_system`` deploys (or completes) everything a ``SystemConfig`` describes and returns a
``Client``. Before its first transaction, ``preflight`` checks everything the deployment depends
on (token contracts and their decimals and symbol, values within the contracts' bounds, expiries
after the chain's time, the deployer's funds), so a deployment that fails, fails before it costs
anything. Idempotent: given an ``existing`` deployment whose contracts have code, nothing is
redeployed, and each listing (grid, underlying, asset, collateral, instrument, role, parameter) is
sent only if the chain does not have it yet. The steps it is made of (``deploy_core``,
``deploy_liquidator``, ``list_config``, ``grant_roles``) are public for tests that need a
contract before anything is listed.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from typing import Any, NamedTuple

from eth_abi import decode

from offchain.errors import UserError
from offchain.fixed_point import WAD
from offchain.funding import CAP_UNIT, MAX_FUNDING_CAP
from offchain.margin import Kind
from offchain.sdk.client import Client, Deployment, EscapeHatch
from offchain.sdk.config import CollateralSpec, InstrumentSpec, SystemConfig, check_bounds
from offchain.sdk.decode import InstrumentMeta
from offchain.sdk.roles import ROLE_GUARDIAN, ROLE_KEEPER, ROLE_VENUE
from offchain.sdk.timelock import TimelockSpec, install_timelock

__all__ = [
    "LOCAL_NETWORKS",
    "Core",
    "check_token",
    "has_code",
    "deploy_core",
    "deploy_liquidation_views",
    "deploy_liquidator",
    "deploy_oracle_views",
    "deploy_system",
    "deploy_token",
    "grant_roles",
    "instrument_name",
    "is_local_network",
    "list_config",
    "preflight",
]

Say = Callable[[str], None]

#: Ape's local network (a node Ape starts, or one you started and point the provider at).
LOCAL_NETWORKS = frozenset({"local", "anvil"})

# Gas of each step, measured on anvil for deploy/config.json (core 13.7M, liquidator 7.7M, a mock
# token 0.42M, a listing or role at most 0.24M) and rounded up: the funds check needs an upper
# bound, not an exact figure.
GAS_CORE = 16_000_000  # RiskOracle, EngineAdmin, MarginEngine, bind, MarginViews, OracleViews
GAS_LIQUIDATOR = 9_000_000  # Liquidator, set_liquidator, LiquidationViews
GAS_MOCK_TOKEN = 600_000
GAS_LISTING = 300_000  # one grid, underlying, asset, collateral, instrument, limit or role
GAS_TIMELOCK = 7_000_000  # Timelock, three transfer_admin, the hand-over batch (5.5M measured)
FEE_HEADROOM = 2  # fees may rise while the deployment is under way


def is_local_network(name: str) -> bool:
    """A local node (``local``) or a fork of a public network (``mainnet-fork``): the networks
    where mock tokens may be deployed and the keeper may simulate prices."""
    return name in LOCAL_NETWORKS or name.endswith("-fork")


def deploy_token(project: Any, admin: Any, symbol: str, decimals: int, name: str = "") -> Any:
    """A mock ERC-20 (local networks), named ``name`` or its symbol."""
    return admin.deploy(project.MockERC20, name or symbol, symbol, decimals)


class Core(NamedTuple):
    """The contracts every deployment has: the oracle, the engine's configuration contract
    (roles, venue authorisations, listings and limits), the engine and the views of both."""

    oracle: Any
    engine_admin: Any
    engine: Any
    views: Any
    oracle_views: Any


def deploy_core(project: Any, admin: Any, cash: Any, deposit_cap: int) -> Core:
    """The core contracts, wired, nothing listed: ``deposit_cap`` in units of ``cash``.

    OracleViews (which prices linked collateral legs for the engine) and EngineAdmin are
    deployed first, the engine takes their addresses, and EngineAdmin is bound to
    that engine once (it writes every configuration change into it)."""
    oracle = admin.deploy(project.RiskOracle, admin)
    oracle_views = deploy_oracle_views(project, admin, oracle)
    engine_admin = admin.deploy(project.EngineAdmin, admin)
    engine = admin.deploy(
        project.MarginEngine, engine_admin, oracle, oracle_views, cash, deposit_cap
    )
    engine_admin.bind(engine, sender=admin)
    views = admin.deploy(project.MarginViews, engine)
    return Core(oracle, engine_admin, engine, views, oracle_views)


def deploy_oracle_views(project: Any, admin: Any, oracle: Any) -> Any:
    """OracleViews, the read-only lens decoding ``oracle``'s data (it holds nothing)."""
    return admin.deploy(project.OracleViews, oracle)


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
    meta = InstrumentMeta(0, uid, spec.kind, spec.strike, _expiry(spec, time_offset))
    return meta.name({uid: spec.underlying})


def _expiry(spec: InstrumentSpec, time_offset: int) -> int:
    """The ``expiry`` argument of ``list_instrument``: 0 for a perp (it never expires)."""
    return 0 if spec.kind is Kind.PERP else spec.expiry + time_offset


def _strike(spec: InstrumentSpec) -> int:
    """The ``strike`` argument of ``list_instrument``: a perp's is its funding-rate cap."""
    return spec.funding_cap if spec.kind is Kind.PERP else spec.strike


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
            grid = u.scenario_grid
            oracle.register_grid(
                gid, grid.linear_coefficients_wad(), grid.tilt_coefficients_wad(), sender=admin
            )
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
                u.basis,
                u.roll,
                sender=admin,
            )
            say(f"underlying {u.name} listed as {u.id}")
        deployment.underlyings[u.name] = u.id
    if oracle.max_age() != config.max_age:
        oracle.set_max_age(config.max_age, sender=admin)
    if EscapeHatch.from_clock(int(oracle.clock())).escape_delay != config.escape_delay:
        oracle.set_escape_delay(config.escape_delay, sender=admin)
    if engine.im_factor() != config.im_factor:
        engine_admin.set_im_factor(config.im_factor, sender=admin)
    for spec in config.collateral:
        token = deployment.collateral[spec.symbol]
        if oracle.asset_max_deviation(token) == 0:  # not listed
            oracle.list_asset(token, spec.max_deviation, sender=admin)
        listed = engine.asset_index(token) != 0
        if not listed or (engine.asset_haircut(token), engine.asset_deposit_cap(token)) != (
            spec.haircut,
            spec.deposit_cap,
        ):
            engine_admin.list_collateral(token, spec.haircut, spec.deposit_cap, sender=admin)
            say(f"collateral {spec.symbol} listed (haircut {spec.haircut / WAD:.0%})")
        if spec.linked and engine_admin.asset_underlying(token) == 0:
            uid = config.underlying(spec.priced_by).id
            engine_admin.link_collateral(token, uid, sender=admin)
            say(f"collateral {spec.symbol} moves with {spec.priced_by} in the scan")
    for spec in config.instruments:
        uid = config.underlying(spec.underlying).id
        expiry = _expiry(spec, time_offset)
        name = instrument_name(config, spec, time_offset)
        iid = deployment.instruments.get(name)
        if iid is None or oracle.instrument_word(iid, 0) == 0:  # not listed
            tx = oracle.list_instrument(
                uid, int(spec.kind), _strike(spec), expiry, spec.contract_size, sender=admin
            )
            iid = int(tx.events.filter(oracle.InstrumentListed)[0].instrument)
            deployment.instruments[name] = iid
            say(f"instrument {name} listed as {iid:#x}")
        limits = (engine.open_interest_cap(iid), engine.position_limit(iid))
        if limits != (spec.open_interest_cap, spec.position_limit):
            engine_admin.set_instrument_limits(
                iid, spec.open_interest_cap, spec.position_limit, sender=admin
            )


def has_code(chain_manager: Any, addr: str | None) -> bool:
    return bool(addr) and len(chain_manager.provider.get_code(addr)) > 0


def _call(chain_manager: Any, addr: str, selector: str) -> bytes | None:
    """Raw ``eth_call`` of a no-argument view; None when it reverts."""
    try:
        return bytes(chain_manager.provider.web3.eth.call({"to": addr, "data": selector}))
    except Exception:  # noqa: BLE001 - any revert or decoding refusal means "does not answer"
        return None


def _token_symbol(raw: bytes) -> str | None:
    """``symbol()`` as ``string`` (ERC-20) or ``bytes32`` (a few old tokens)."""
    try:
        return str(decode(["string"], raw)[0])
    except Exception:  # noqa: BLE001 - not ABI-encoded as a string
        pass
    if len(raw) == 32:
        return raw.rstrip(b"\0").decode("utf-8", "replace")
    return None


def check_token(chain_manager: Any, where: str, addr: str, spec: CollateralSpec) -> None:
    """The token at ``addr`` is an ERC-20 whose ``decimals()`` and ``symbol()`` are the config's."""
    net = chain_manager.provider.network.name
    if not has_code(chain_manager, addr):
        raise UserError(
            f"{where} {spec.symbol} at {addr}: no contract there on {net}; check the address "
            "and the network"
        )
    raw = _call(chain_manager, addr, "0x313ce567")  # decimals()
    if raw is None or len(raw) != 32:
        raise UserError(
            f"{where} {spec.symbol} at {addr}: decimals() does not answer, so it is not an "
            "ERC-20 token; check the address"
        )
    decimals = int.from_bytes(raw, "big")
    if decimals != spec.decimals:
        raise UserError(
            f"{where} {spec.symbol} at {addr}: the token has {decimals} decimals, the config "
            f"says {spec.decimals}; fix 'decimals' (deposit_cap is read in its units)"
        )
    raw = _call(chain_manager, addr, "0x95d89b41")  # symbol()
    symbol = None if raw is None else _token_symbol(raw)
    if symbol is None:
        raise UserError(
            f"{where} {spec.symbol} at {addr}: symbol() does not answer; check the address"
        )
    if symbol != spec.symbol:
        raise UserError(
            f"{where} {spec.symbol} at {addr}: the token's symbol is {symbol!r}; set "
            f'"symbol": {symbol!r} if this is the right token'
        )


def _iso(ts: int) -> str:
    return datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M UTC")


def preflight(
    chain_manager: Any,
    admin: Any,
    config: SystemConfig,
    *,
    existing: Deployment | None = None,
    time_offset: int = 0,
    liquidator: bool = True,
    timelock: TimelockSpec | None = None,
) -> bool:
    """Check everything ``deploy_system`` needs before it sends anything; returns whether
    ``existing`` is reused (its contracts have code on this node). ``timelock``: the deployment
    installs one (its gas is counted); off local networks its multisig must be a contract.

    Raises:
        UserError: one line: the first problem and its fix.
    """
    check_bounds(config)
    net = chain_manager.provider.network.name
    reuse = existing is not None and all(
        has_code(chain_manager, a)
        for a in (
            existing.oracle,
            existing.engine_admin,
            existing.engine,
            existing.views,
            existing.cash,
        )
    )
    if reuse and existing is not None:
        raw = _call(chain_manager, existing.oracle, "0xf851a440")  # admin()
        holder = None if raw is None else str(decode(["address"], raw)[0])
        if holder is not None and holder.lower() != admin.address.lower():
            raise UserError(
                f"the oracle's admin is {holder}, not the deployer {admin.address}: a "
                "timelocked deployment changes only through proposals of its multisig "
                "(docs/deploy.md, 'Change a timelocked deployment')"
            )
    mocks = 0
    tokens = [("cash", config.cash, existing.cash if reuse and existing else None)]
    for spec in config.collateral:
        recorded = existing.collateral.get(spec.symbol) if reuse and existing else None
        tokens.append(("collateral", spec, recorded))
    for where, spec, recorded in tokens:
        if spec.address and recorded and spec.address.lower() != recorded.lower():
            raise UserError(
                f"{where} {spec.symbol}: the deployment holds {recorded}, the config names "
                f"{spec.address}; a listed token cannot be swapped (deploy anew with --out)"
            )
        addr = spec.address or (recorded if has_code(chain_manager, recorded) else None)
        if addr is None:
            if not is_local_network(net):
                raise UserError(
                    f"{where} {spec.symbol} has no 'address': mock tokens (anyone can mint them) "
                    f"are deployed only on local networks, not on {net}; give the token's address"
                )
            mocks += 1
            continue
        check_token(chain_manager, where, addr, spec)
    now = chain_manager.blocks.head.timestamp
    listed = existing.instruments if reuse and existing else {}
    for spec in config.instruments:
        name = instrument_name(config, spec, time_offset)
        if spec.kind is Kind.PERP:
            if not 0 < spec.funding_cap <= MAX_FUNDING_CAP or spec.funding_cap % CAP_UNIT:
                raise UserError(
                    f"instrument {name}: funding_cap {spec.funding_cap} must be a multiple of "
                    f"10**12 in (0, {MAX_FUNDING_CAP}] (WAD per hour); give one in range"
                )
        elif name not in listed and spec.expiry + time_offset <= now:
            raise UserError(
                f"instrument {name}: expiry {_iso(spec.expiry)} is not after the chain's time "
                f"({_iso(now - time_offset)}); give a later 'expiry'"
            )
    listings = (
        len(config.grids)
        + 2 * len(config.underlyings)
        + 2 * len(config.collateral)
        + 2 * len(config.instruments)
        + 5
    )
    gas = (0 if reuse else GAS_CORE) + mocks * GAS_MOCK_TOKEN + listings * GAS_LISTING
    if liquidator and not (reuse and existing and has_code(chain_manager, existing.liquidator)):
        gas += GAS_LIQUIDATOR
    if timelock is not None:
        gas += GAS_TIMELOCK
        if not is_local_network(net) and not has_code(chain_manager, timelock.multisig):
            raise UserError(
                f"--timelock-admin {timelock.multisig}: no contract there on {net}; the "
                "timelock's proposer must be a multisig (a Safe) deployed on this network"
            )
    price = chain_manager.provider.web3.eth.gas_price * FEE_HEADROOM
    balance = chain_manager.provider.get_balance(admin.address)
    if balance < gas * price:
        raise UserError(
            f"the deployer {admin.address} holds {balance / 10**18:.6g} ETH on {net}; this "
            f"deployment needs up to {gas * price / 10**18:.6g} ETH ({gas:,} gas at "
            f"{price / 10**9:.3g} gwei): fund it first"
        )
    return reuse


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
    timelock: TimelockSpec | None = None,
    log: Say | None = None,
) -> Client:
    """Deploy (or complete) the system of ``config`` and return its client.

    ``preflight`` runs first: nothing is sent unless every check passes. Tokens without an
    address in the config are deployed as mocks (local networks only). ``liquidator`` False
    leaves the engine without a Liquidator (the margin-check benchmark measures the engine alone).
    ``timelock``: once everything is listed and the roles granted, a timelock becomes the admin
    of every contract (``timelock.install_timelock``); every later change is a proposal.
    """
    say = log or (lambda _msg: None)

    def deployed(addr: str | None) -> bool:
        return has_code(chain_manager, addr)

    reuse = preflight(
        chain_manager,
        admin,
        config,
        existing=existing,
        time_offset=time_offset,
        liquidator=liquidator,
        timelock=timelock,
    )
    if reuse and existing is not None:
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
            oracle_views=core.oracle_views.address,
        )
        say(
            f"deployed oracle {core.oracle.address}, engine admin {core.engine_admin.address}, "
            f"engine {core.engine.address}, views {core.views.address}, "
            f"oracle views {core.oracle_views.address}"
        )
    for spec in config.collateral:
        addr = dep.collateral.get(spec.symbol) or spec.address
        if not deployed(addr):
            addr = deploy_token(project, admin, spec.symbol, spec.decimals).address
        dep.collateral[spec.symbol] = addr
        dep.asset_prices[addr] = spec.priced_by
    oracle = project.RiskOracle.at(dep.oracle)
    if not deployed(dep.oracle_views):
        dep.oracle_views = deploy_oracle_views(project, admin, oracle).address
    engine_admin = project.EngineAdmin.at(dep.engine_admin)
    engine = project.MarginEngine.at(dep.engine)
    if liquidator:
        if not deployed(dep.liquidator):
            liq = deploy_liquidator(project, admin, engine_admin, engine)
            dep.liquidator = liq.address
            dep.liquidation_views = deploy_liquidation_views(project, admin, liq).address
            say(f"deployed liquidator {liq.address}")
        else:
            if str(engine.liquidator()) != dep.liquidator:
                engine_admin.set_liquidator(dep.liquidator, sender=admin)
            if not deployed(dep.liquidation_views):
                liq = project.Liquidator.at(dep.liquidator)
                dep.liquidation_views = deploy_liquidation_views(project, admin, liq).address
    list_config(oracle, engine_admin, engine, dep, admin, config, time_offset, say)
    grant_roles(oracle, engine_admin, admin, keepers=keepers, venues=venues, guardians=guardians)
    if timelock is not None:
        install_timelock(project, chain_manager, admin, dep, timelock, say)
    return Client(project, chain_manager, dep)
