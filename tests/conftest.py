"""Fixtures for the contract tests: accounts by role, one deployment of RiskOracle, EngineAdmin,
MarginEngine and MarginViews with mock tokens (deployed and listed by `offchain.sdk`, like every
deployment), and a `System` helper that posts market data.

Deployments are session-scoped; Ape's isolation snapshots the chain around every test, so each
test starts from the same listed-and-funded state. Hypothesis tests snapshot/restore per
example themselves (`chain_snapshot`).
"""

from __future__ import annotations

import contextlib
import os
import sys

import pytest
from ape.exceptions import ContractLogicError, TransactionError
from ape_foundry.provider import FoundryProvider
from contract_support import (
    ARRAY_RATIO,
    BTC,
    CASH_CAP,
    DAY,
    ETH,
    GRID_CME,
    GRID_CRYPTO,
    MAX_DEV,
    OI_CAP,
    POSITION_LIMIT,
    PSR,
    SOM_RATE,
    SPAN,
    SPOTS,
    USD,
    System,
)
from leaked_processes import kill, mark_session, survivors

from offchain.fixed_point import WAD
from offchain.margin import Kind
from offchain.scenarios import CME_SPAN_16, CRYPTO_35
from offchain.sdk import (
    Client,
    CollateralSpec,
    Deployment,
    InstrumentSpec,
    SystemConfig,
    UnderlyingSpec,
    deploy_core,
    deploy_token,
    grant_roles,
    instrument_name,
    list_config,
)
from scripts import _anvil

_anvil.install()


def _plain_revert(self, exception, revert_message=None, **kwargs):
    """Revert errors without call-trace rendering and source tracebacks: each of those costs
    0.5-10 s per revert and the tests assert reason strings only. APE_TRACES=1 restores them."""
    if revert_message in (None, "0x"):
        revert_message = TransactionError.DEFAULT_MESSAGE
    if revert_message.startswith("revert: "):
        revert_message = revert_message[8:]
    return ContractLogicError(base_err=exception, revert_message=revert_message)


if not os.environ.get("APE_TRACES"):
    FoundryProvider._handle_execution_reverted = _plain_revert


_LEAK_TOKEN = pytest.StashKey[str]()
_SESSION = pytest.StashKey[pytest.Session]()


def pytest_configure(config):
    config.stash[_LEAK_TOKEN] = mark_session()


def pytest_sessionstart(session):
    session.config.stash[_SESSION] = session


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    """Fail the run when a process it started outlives it (after Ape stops its own node in its
    `pytest_unconfigure`); the survivors are listed, then killed."""
    session = config.stash.get(_SESSION, None)
    leaked = survivors(config.stash[_LEAK_TOKEN]) if session is not None else {}
    if not leaked:
        return
    lines = [f"  {pid}: {cmd[:160]}" for pid, cmd in sorted(leaked.items())]
    message = f"FAILED: {len(leaked)} process(es) started by the tests outlived them (killed):"
    sys.stderr.write("\n".join([message, *lines]) + "\n")
    kill(list(leaked))
    session.exitstatus = pytest.ExitCode.TESTS_FAILED


@pytest.fixture(scope="session")
def admin(accounts):
    return accounts[0]


@pytest.fixture(scope="session")
def keeper(accounts):
    return accounts[1]


@pytest.fixture(scope="session")
def venue(accounts):
    return accounts[2]


@pytest.fixture(scope="session")
def guardian(accounts):
    return accounts[3]


@pytest.fixture(scope="session")
def trader(accounts):
    return accounts[4]


@pytest.fixture(scope="session")
def maker(accounts):
    return accounts[5]


@pytest.fixture(scope="session")
def outsider(accounts):
    return accounts[6]


@pytest.fixture(scope="session")
def usdc(project, admin):
    return deploy_token(project, admin, "USDC", 6, "USD Coin")


@pytest.fixture(scope="session")
def weth(project, admin):
    return deploy_token(project, admin, "WETH", 18, "Wrapped Ether")


@pytest.fixture(scope="session")
def wbtc(project, admin):
    return deploy_token(project, admin, "WBTC", 8, "Wrapped BTC")


@pytest.fixture(scope="session")
def core(project, admin, usdc):
    """RiskOracle, EngineAdmin, MarginEngine, MarginViews and OracleViews, wired, with nothing
    listed."""
    return deploy_core(project, admin, usdc, CASH_CAP)


@pytest.fixture(scope="session")
def oracle(core):
    return core.oracle


@pytest.fixture(scope="session")
def engine_admin(core):
    return core.engine_admin


@pytest.fixture(scope="session")
def engine(core):
    return core.engine


@pytest.fixture(scope="session")
def views(core):
    return core.views


@pytest.fixture(scope="session")
def oracle_views(core):
    return core.oracle_views


def system_config(usdc, weth, wbtc, expiry: int) -> SystemConfig:
    """Three underlyings (BTC and ETH on the crypto grid, SPAN on the CME one), a future, an
    at-the-money call and put on each, WETH and WBTC as collateral."""
    grids = {CRYPTO_35.name: GRID_CRYPTO, CME_SPAN_16.name: GRID_CME}
    underlyings = tuple(
        UnderlyingSpec(name, u, grid.name, WAD // 100, WAD, SOM_RATE, MAX_DEV, ARRAY_RATIO)
        for name, u, grid in (
            ("BTC", BTC, CRYPTO_35),
            ("ETH", ETH, CRYPTO_35),
            ("SPAN", SPAN, CME_SPAN_16),
        )
    )
    instruments = tuple(
        InstrumentSpec(u.name, kind, strike, expiry, WAD, OI_CAP, POSITION_LIMIT)
        for u in underlyings
        for kind, strike in ((Kind.FUTURE, 0), (Kind.CALL, SPOTS[u.id]), (Kind.PUT, SPOTS[u.id]))
    )
    return SystemConfig(
        grids=grids,
        underlyings=underlyings,
        instruments=instruments,
        cash=CollateralSpec("USDC", 6, CASH_CAP, address=usdc.address),
        collateral=(
            CollateralSpec("WETH", 18, 10**30, WAD // 5, "ETH", MAX_DEV, weth.address),
            CollateralSpec("WBTC", 8, 10**20, WAD // 4, "BTC", MAX_DEV, wbtc.address),
        ),
    )


@pytest.fixture(scope="session")
def system(
    project,
    chain,
    oracle,
    engine_admin,
    engine,
    views,
    oracle_views,
    usdc,
    weth,
    wbtc,
    admin,
    keeper,
    venue,
    guardian,
    trader,
    maker,
):
    s = System(chain, oracle, engine, views, usdc, weth, wbtc, admin, keeper, venue, guardian)
    s.engine_admin = engine_admin
    s.oracle_views = oracle_views
    cfg = system_config(usdc, weth, wbtc, s.now() + 30 * DAY)
    dep = Deployment(
        "local",
        chain.chain_id,
        chain.blocks.head.number,
        oracle.address,
        engine_admin.address,
        engine.address,
        views.address,
        usdc.address,
        collateral={"WETH": weth.address, "WBTC": wbtc.address},
        oracle_views=oracle_views.address,
    )
    list_config(oracle, engine_admin, engine, dep, admin, cfg)
    grant_roles(oracle, engine_admin, admin, keepers=[keeper], venues=[venue], guardians=[guardian])
    for u in cfg.underlyings:
        coeffs = u.scenario_grid.linear_coefficients_wad()
        s.grids[u.id] = coeffs
        s.tilts[u.id] = u.scenario_grid.tilt_coefficients_wad()
        s.n_scenarios[u.id] = len(coeffs)
    for spec in cfg.instruments:
        tag = f"{spec.underlying.lower()}-{spec.kind.name.lower().replace('future', 'fut')}"
        s.instruments[tag] = dep.instruments[instrument_name(cfg, spec)]
    client = Client(project, chain, dep)
    for acct in (trader, maker):
        client.fund(admin, acct, "cash", 10**9 * USD)
        client.fund(admin, acct, "WETH", 1_000 * WAD)
        client.fund(admin, acct, "WBTC", 100 * 10**8)
        client.authorise(acct, venue)
    return s


@pytest.fixture(scope="session")
def market(system):
    """`system` plus a first post of every underlying, instrument and asset (fresh data)."""
    s = system
    unds = [(u, SPOTS[u], PSR) for u in (BTC, ETH, SPAN)]
    items = []
    for tag, u in (("btc", BTC), ("eth", ETH), ("span", SPAN)):
        spot = SPOTS[u]
        items.append(s.future_item(s.instruments[f"{tag}-fut"], spot))
        items.append(
            s.option_item(s.instruments[f"{tag}-call"], spot // 20, s.flat_option_ra(u, spot // 25))
        )
        items.append(
            s.option_item(s.instruments[f"{tag}-put"], spot // 20, s.flat_option_ra(u, -spot // 25))
        )
    s.post(unds, items, [(s.weth.address, SPOTS[ETH]), (s.wbtc.address, SPOTS[BTC])])
    return s


def _resync_clock(chain):
    """Anvil keeps its clock offset across `evm_revert`: after a test that jumped 30 days, the
    next test's blocks would land 30 days later (stale data, expired instruments). Pin the clock
    to the restored head instead."""
    chain.provider.make_request("evm_setTime", [chain.blocks.head.timestamp + 1])


_CHAIN_FIXTURES = {"chain", "project", "core", "oracle", "engine", "views", "usdc", "weth", "wbtc"}
_CHAIN_FIXTURES |= {"oracle_views"}
_CHAIN_FIXTURES |= {"system", "market"}


@pytest.fixture(autouse=True)
def _pinned_clock(request):
    """Only for tests that touch the chain: the offchain tests stay pure Python."""
    if _CHAIN_FIXTURES & set(request.fixturenames):
        _resync_clock(request.getfixturevalue("chain"))


@pytest.fixture
def chain_snapshot(chain):
    """Context manager: run a block and restore the chain afterwards (per hypothesis example)."""

    @contextlib.contextmanager
    def _snap():
        sid = chain.snapshot()
        try:
            yield
        finally:
            chain.restore(sid)
            _resync_clock(chain)

    return _snap
