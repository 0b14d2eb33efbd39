# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Findings of the adversarial review (docs/security.md, "Review findings"), each pinned by a
test. A finding still open is an `xfail(strict=True)` test that asserts the SAFE behaviour: it
fails today, and once the contract is fixed it passes, which strict mode turns into a failure
until the marker is removed. Documented behaviour the review confirmed is a plain test."""

from __future__ import annotations

import ape
from ape.exceptions import ContractLogicError
from contract_support import (
    ARRAY_RATIO,
    BTC,
    DAY,
    GRID_CRYPTO,
    MAX_DEV,
    OI_CAP,
    POSITION_LIMIT,
    PSR,
    SOM_RATE,
    USD,
)
from liquidation_support import (  # noqa: F401 (fixtures)
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)

from offchain.codec import KIND_CALL, KIND_FUTURE
from offchain.fixed_point import WAD

F60K = 60_000 * WAD


def test_future_posted_before_its_underlying_never_carries_a_zero_array(system, trader, maker):
    """F1. `RiskOracle.post` computes a future's array from the underlying's stored psr; before
    the underlying's first post that psr is 0, so the array would be all zero (psr_min bypassed)
    and, once the underlying is posted, a 100-unit future would margin at 0. An instrument of an
    underlying without a spot is refused, futures and options alike."""
    s = system
    new_u = 77  # a fresh underlying, never posted whatever ran before in this test run
    s.oracle.list_underlying(
        new_u, GRID_CRYPTO, WAD // 100, WAD, SOM_RATE, MAX_DEV, ARRAY_RATIO, 0, 0, sender=s.admin
    )
    fut = s.list_instrument("f1-fut", new_u, KIND_FUTURE, 0, s.now() + 30 * DAY)
    s.engine_admin.set_instrument_limits(fut, OI_CAP, POSITION_LIMIT, sender=s.admin)
    with ape.reverts("oracle: underlying not posted"):
        s.post([], [s.future_item(fut, F60K)])
    call = s.list_instrument("f1-call", new_u, KIND_CALL, F60K, s.now() + 30 * DAY)
    with ape.reverts("oracle: underlying not posted"):
        s.post([], [s.option_item(call, 1_000 * WAD, [-1_000 * WAD] * 35)])
    # in the same batch after its underlying, the future gets its psr_min-bounded array
    s.post([(new_u, F60K, PSR)], [s.future_item(fut, F60K)])
    s.engine.deposit(s.usdc, 10 * USD, sender=trader)
    s.engine.deposit(s.usdc, 10 * USD, sender=maker)
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(trader, maker, fut, 100 * WAD, F60K, sender=s.venue)


def test_dust_of_an_unpriced_collateral_cannot_block_liquidation(
    project, liq, trader, maker, liquidator_account
):
    """F2. A deposit needs no price. If liquidation needed every price the account uses to be
    fresh, collateral included, an account below MM could deposit 1 unit of a listed collateral
    whose price is stale or was never posted and no longer be liquidated ("liquidation: stale
    oracle"); anyone could do the same to any account (deposit on behalf), which also blocks
    that account's new risk. A liquidation values collateral without a fresh price at zero and
    ignores its timestamp (`liquidation._load`)."""
    s = liq.s
    tok = s.admin.deploy(project.MockERC20, "Dust", "DUST", 18)
    s.oracle.list_asset(tok, WAD // 2, sender=s.admin)
    s.engine_admin.list_collateral(
        tok, WAD // 2, 10**24, sender=s.admin
    )  # priced "listed", no price
    tok.mint(trader, 10, sender=s.admin)
    tok.approve(s.engine, 10, sender=trader)
    liq.deposit(trader, 12_500)
    liq.deposit(maker, 10_000_000)
    liq.deposit(liquidator_account, 1_000_000)
    liq.trade(trader, maker, "btc-fut", WAD, F60K)
    liq.move(BTC, 56_000 * WAD)
    assert liq.health(trader) < 0
    try:
        s.engine.deposit(tok, 1, sender=trader)
    except ContractLogicError:
        pass  # refused: one of the fixes
    liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert liq.health(trader) >= 0


def test_insolvent_account_with_unpriced_collateral_is_not_written_off(
    project, liq, trader, maker, liquidator_account
):
    """F2, second half. Valuing unpriced collateral at zero must not let an insolvent account
    keep it while its debt is written off as bad debt: the full liquidation waits
    ("liquidation: stale collateral") until the price is posted, then sells it."""
    s = liq.s
    tok = s.admin.deploy(project.MockERC20, "Dust", "DUST", 18)
    s.oracle.list_asset(tok, WAD // 2, sender=s.admin)
    s.engine_admin.list_collateral(tok, WAD // 2, 10**30, sender=s.admin)
    tok.mint(trader, 10 * WAD, sender=s.admin)
    tok.approve(s.engine, 10 * WAD, sender=trader)
    liq.deposit(trader, 12_500)
    liq.deposit(maker, 10_000_000)
    liq.deposit(liquidator_account, 1_000_000)
    liq.trade(trader, maker, "btc-fut", WAD, F60K)
    s.engine.deposit(tok, 10 * WAD, sender=trader)  # 1,500 USD after haircut once priced
    liq.move(BTC, 45_000 * WAD)  # -15,000: insolvent without the token
    bad_debt = liq.liquidator.bad_debt()
    assert liq.views.liquidation_preview(trader).status == 5  # waits for the price
    with ape.reverts("liquidation: stale collateral"):
        liq.liquidator.liquidate(trader, sender=liquidator_account)
    s.post([], [], [(tok, 300 * WAD)])  # the first price: still insolvent (-1,000 USD)
    liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert s.engine.position_count(trader) == 0
    assert s.engine.collateral(tok, liquidator_account) > 0  # sold at a discount
    assert liq.liquidator.bad_debt() == bad_debt  # covered by the token, nothing written off


def test_exported_module_getters_stay_open_to_reentry(project, system, trader, admin):
    """Confirmed design (docs/security.md, "Re-entrancy"): the engine's own functions, views
    included, are locked during a token callback, but the getters it exports from the vault,
    positions and roles modules follow those modules' (absent) pragma and can be read; the
    values are consistent because the engine calls a token only before the first write of a
    deposit or after the last write of a withdrawal."""
    s = system
    t = admin.deploy(project.MockReentrantToken, 18)
    s.oracle.list_asset(t, WAD // 2, sender=admin)
    s.engine_admin.list_collateral(t, WAD // 2, 10**24, sender=admin)
    t.mint(trader, 10 * WAD, sender=admin)
    t.approve(s.engine, 2**256 - 1, sender=trader)
    s.engine.deposit(t, 4 * WAD, sender=trader)
    t.arm(s.engine, s.engine.account_state.encode_input(trader), sender=admin)
    s.engine.withdraw(t, WAD, sender=trader)
    assert t.reentry_attempts() == 1 and not t.reentry_succeeded()  # engine view: locked
    t.arm(s.engine, s.engine.collateral.encode_input(t, trader), sender=admin)
    s.engine.withdraw(t, WAD, sender=trader)
    assert t.reentry_attempts() == 2 and t.reentry_succeeded()  # vault getter: open
    assert s.engine.collateral(t, trader) == 2 * WAD
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(t, 3 * WAD, sender=trader)
