"""Fixtures for the contract tests: accounts by role, one deployment of RiskOracle, EngineAdmin,
MarginEngine and MarginViews with mock tokens, and a `System` helper that lists and posts market
data.

Deployments are session-scoped; Ape's isolation snapshots the chain around every test, so each
test starts from the same listed-and-funded state. Hypothesis tests snapshot/restore per
example themselves (`chain_snapshot`).
"""

from __future__ import annotations

import contextlib
import os

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

from offchain.codec import KIND_CALL, KIND_FUTURE, KIND_PUT
from offchain.fixed_point import WAD
from offchain.scenarios import CME_SPAN_16, CRYPTO_35
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
    return admin.deploy(project.MockERC20, "USD Coin", "USDC", 6)


@pytest.fixture(scope="session")
def weth(project, admin):
    return admin.deploy(project.MockERC20, "Wrapped Ether", "WETH", 18)


@pytest.fixture(scope="session")
def wbtc(project, admin):
    return admin.deploy(project.MockERC20, "Wrapped BTC", "WBTC", 8)


@pytest.fixture(scope="session")
def oracle(project, admin):
    return admin.deploy(project.RiskOracle, admin)


@pytest.fixture(scope="session")
def engine_admin(project, admin):
    return admin.deploy(project.EngineAdmin, admin)


@pytest.fixture(scope="session")
def engine(project, admin, engine_admin, oracle, usdc):
    engine = admin.deploy(project.MarginEngine, engine_admin, oracle, usdc, CASH_CAP)
    engine_admin.bind(engine, sender=admin)
    return engine


@pytest.fixture(scope="session")
def views(project, admin, engine):
    return admin.deploy(project.MarginViews, engine)


@pytest.fixture(scope="session")
def system(
    chain,
    oracle,
    engine_admin,
    engine,
    views,
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
    oracle.register_grid(GRID_CRYPTO, CRYPTO_35.linear_coefficients_wad(), sender=admin)
    oracle.register_grid(GRID_CME, CME_SPAN_16.linear_coefficients_wad(), sender=admin)
    for u, g in ((BTC, GRID_CRYPTO), (ETH, GRID_CRYPTO), (SPAN, GRID_CME)):
        oracle.list_underlying(u, g, WAD // 100, WAD, SOM_RATE, MAX_DEV, ARRAY_RATIO, sender=admin)
        coeffs = (CRYPTO_35 if g == GRID_CRYPTO else CME_SPAN_16).linear_coefficients_wad()
        s.grids[u] = coeffs
        s.n_scenarios[u] = len(coeffs)
    oracle.list_asset(weth, MAX_DEV, sender=admin)
    oracle.list_asset(wbtc, MAX_DEV, sender=admin)
    oracle.grant_role(keeper, 1, sender=admin)
    engine_admin.grant_role(venue, 2, sender=admin)
    engine_admin.grant_role(guardian, 4, sender=admin)
    engine_admin.list_collateral(weth, WAD // 5, 10**30, sender=admin)
    engine_admin.list_collateral(wbtc, WAD // 4, 10**20, sender=admin)
    expiry = s.now() + 30 * DAY
    for u, tag in ((BTC, "btc"), (ETH, "eth"), (SPAN, "span")):
        spot = SPOTS[u]
        s.list_instrument(f"{tag}-fut", u, KIND_FUTURE, 0, expiry)
        s.list_instrument(f"{tag}-call", u, KIND_CALL, spot, expiry)
        s.list_instrument(f"{tag}-put", u, KIND_PUT, spot, expiry)
    for iid in s.instruments.values():
        engine_admin.set_instrument_limits(iid, OI_CAP, POSITION_LIMIT, sender=admin)
    for acct in (trader, maker):
        usdc.mint(acct, 10**9 * USD, sender=admin)
        usdc.approve(engine, 2**256 - 1, sender=acct)
        weth.mint(acct, 1_000 * WAD, sender=admin)
        weth.approve(engine, 2**256 - 1, sender=acct)
        wbtc.mint(acct, 100 * 10**8, sender=admin)
        wbtc.approve(engine, 2**256 - 1, sender=acct)
        engine_admin.authorise_venue(venue, True, sender=acct)
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
            s.option_item(s.instruments[f"{tag}-call"], spot // 20, s.flat_option_ra(u, spot // 2))
        )
        items.append(
            s.option_item(s.instruments[f"{tag}-put"], spot // 20, s.flat_option_ra(u, -spot // 2))
        )
    s.post(unds, items, [(s.weth.address, SPOTS[ETH]), (s.wbtc.address, SPOTS[BTC])])
    return s


def _resync_clock(chain):
    """Anvil keeps its clock offset across `evm_revert`: after a test that jumped 30 days, the
    next test's blocks would land 30 days later (stale data, expired instruments). Pin the clock
    to the restored head instead."""
    chain.provider.make_request("evm_setTime", [chain.blocks.head.timestamp + 1])


_CHAIN_FIXTURES = {"chain", "project", "oracle", "engine", "views", "usdc", "weth", "wbtc"}
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
