"""Linked collateral on-chain (docs/fixed-point.md §5.1): an asset linked to an underlying is a
long spot leg in that underlying's scan while the account holds a position on it. WETH backing
short ETH puts leaves less health than the same value in USDC (wrong-way), WETH under short ETH
calls more (covered); linking refuses hostile inputs. The differential test
(`tests/test_differential.py`) proves the chain equals the reference to the wei."""

import ape
import pytest
from contract_support import BTC, ETH, PSR, SPOTS, USD

from offchain.fixed_point import WAD

HAIRCUT_WETH = WAD // 5
WETH_UNITS = 10 * WAD
# the equity 10 WETH bring at the posted price: 10 x 3,000 x 0.8 USD
WETH_VALUE_USD = 10 * 3_000 * 8 // 10
CUSHION_USD = 50_000


@pytest.fixture(scope="module")
def linked(market, admin, maker):
    """`market` with WETH linked to ETH (Ape's isolation restores the chain after the module:
    the session's WETH stays unlinked for the other modules)."""
    s = market
    s.engine_admin.link_collateral(s.weth, ETH, sender=admin)
    s.usdc.mint(maker, 10**9 * USD, sender=admin)
    s.engine.deposit(s.usdc, 10**9 * USD, sender=maker)
    return s


def _short_ten(s, account, instrument, weth: bool, admin, maker, size=10 * WAD, price=None):
    """`account` sells `size` `instrument` to the maker, backed by 10 WETH or their value in
    USDC."""
    usd = CUSHION_USD + (0 if weth else WETH_VALUE_USD)
    s.usdc.mint(account, usd * USD, sender=admin)
    s.usdc.approve(s.engine, 2**256 - 1, sender=account)
    s.engine.deposit(s.usdc, usd * USD, sender=account)
    if weth:
        s.weth.mint(account, WETH_UNITS, sender=admin)
        s.weth.approve(s.engine, 2**256 - 1, sender=account)
        s.engine.deposit(s.weth, WETH_UNITS, sender=account)
    s.engine_admin.authorise_venue(s.venue, True, sender=account)
    price = SPOTS[ETH] // 5 if price is None else price
    s.engine.trade(maker, account, instrument, size, price, sender=s.venue)
    return s.engine.account_state(account)


@pytest.mark.parametrize("option", ["eth-put", "eth-call"])
def test_weth_vs_usdc_at_equal_equity(linked, accounts, admin, maker, chain_snapshot, option):
    """Short ETH puts: the WETH falls with the puts' loss, so it leaves less health than USDC.
    Short ETH calls: the WETH gains when the calls lose, so it leaves more."""
    s = linked
    with chain_snapshot():
        iid = s.instruments[option]
        # a call of delta 0.9 (its scan above the short-option minimum of 10% of spot), a put of
        # delta -0.5
        scale = 9 * PSR * SPOTS[ETH] // (10 * WAD) if option == "eth-call" else -PSR * 1_500
        s.post(
            [(ETH, SPOTS[ETH], PSR)],
            [s.option_item(iid, SPOTS[ETH] // 5, s.flat_option_ra(ETH, scale))],
            [(s.weth.address, SPOTS[ETH])],
        )
        with_weth = _short_ten(s, accounts[8], iid, True, admin, maker)
        with_usdc = _short_ten(s, accounts[9], iid, False, admin, maker)
        assert with_weth.equity == with_usdc.equity
        health_weth = with_weth.equity - with_weth.maintenance_margin
        health_usdc = with_usdc.equity - with_usdc.maintenance_margin
        if option == "eth-put":
            assert health_weth < health_usdc
        else:
            assert health_weth > health_usdc


def test_the_sdk_reference_values_the_leg_as_the_engine(
    linked, accounts, admin, maker, chain_snapshot
):
    """`Client.market_int` reads the link and the grid: its integer reference equals
    `account_state` to the wei for WETH under short ETH puts and calls."""
    s = linked
    with chain_snapshot():
        client = s.client()
        for k, option in ((8, "eth-put"), (9, "eth-call")):
            _short_ten(s, accounts[k], s.instruments[option], True, admin, maker)
        market = client.market_int()
        for k in (8, 9):
            ref = market.account_margin(market.account(*client.account_raw(accounts[k])))
            state = s.engine.account_state(accounts[k])
            assert (ref.equity, ref.initial_margin, ref.maintenance_margin) == (
                state.equity,
                state.initial_margin,
                state.maintenance_margin,
            )
        assert client.asset_links() == {s.weth.address: ETH}
        assert client.grid_of(ETH) == s.grids[ETH]


def test_weth_without_eth_positions_adds_no_margin(linked, accounts, admin, maker, chain_snapshot):
    """WETH under a BTC position only: the BTC scan alone, as for USDC."""
    s = linked
    with chain_snapshot():
        iid = s.instruments["btc-put"]
        small = {"size": WAD // 10, "price": SPOTS[BTC] // 20}
        a = _short_ten(s, accounts[8], iid, True, admin, maker, **small)
        b = _short_ten(s, accounts[9], iid, False, admin, maker, **small)
        assert a.maintenance_margin > 0
        assert (a.equity, a.maintenance_margin) == (b.equity, b.maintenance_margin)


def test_withdraw_preview_shrinks_the_leg(linked, accounts, admin, maker, chain_snapshot):
    """Withdrawing WETH under short calls: the preview counts the smaller leg, as the engine."""
    s = linked
    with chain_snapshot():
        x = accounts[8]
        _short_ten(s, x, s.instruments["eth-call"], True, admin, maker)
        eq, im, mm, allowed, _code = s.views.withdraw_preview(x, s.weth, 4 * WAD)
        assert allowed
        s.engine.withdraw(s.weth, 4 * WAD, sender=x)
        state = s.engine.account_state(x)
        assert (eq, im, mm) == (
            state.equity,
            state.initial_margin,
            state.maintenance_margin,
        )


def test_linking_refuses_hostile_inputs(linked, project, admin, outsider, chain_snapshot):
    s = linked
    ea = s.engine_admin
    with chain_snapshot():
        with ape.reverts("roles: not admin"):
            ea.link_collateral(s.wbtc, BTC, sender=outsider)
        with ape.reverts("engine: system address"):
            ea.link_collateral(s.engine, ETH, sender=admin)
        with ape.reverts("engine: asset not listed"):
            ea.link_collateral(s.usdc, ETH, sender=admin)
        for bad in (0, 999, 2**16, 2**256 - 1):
            with ape.reverts("engine: unknown underlying"):
                ea.link_collateral(s.wbtc, bad, sender=admin)
        with ape.reverts("engine: asset already linked"):
            ea.link_collateral(s.weth, BTC, sender=admin)
        with ape.reverts("engine: asset already linked"):
            ea.link_collateral(s.weth, ETH, sender=admin)
        tx = ea.link_collateral(s.wbtc, BTC, sender=admin)
        assert ea.asset_underlying(s.wbtc) == BTC and ea.linked_assets() == 2
        assert [(e.asset, e.underlying) for e in tx.events] == [(s.wbtc.address, BTC)]
        # at most two linked assets
        token = admin.deploy(project.MockERC20, "W3", "W3", 18)
        with ape.reverts("engine: asset not listed"):
            ea.link_collateral(token, ETH, sender=admin)
        s.oracle.list_asset(token, WAD // 2, sender=admin)
        ea.list_collateral(token, HAIRCUT_WETH, 10**24, sender=admin)
        with ape.reverts("engine: too many linked assets"):
            ea.link_collateral(token, ETH, sender=admin)
