# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Perps and variation margin in the engine (docs/fixed-point.md §10): a perp is listed, traded,
margined, funded, liquidated and wound down on the chain, its margin equal to the integer
reference to the wei; funding paid equals funding received; no account pays funding for a period
it did not hold; gains on a future or a perp become cash the account can withdraw while it holds
the position; cash is conserved (accounts, fund and clearing account = the vault's stablecoin)."""

import ape
import pytest
from contract_support import BTC, SPOTS
from liquidation_support import (  # noqa: F401 (fixtures)
    assert_matches,
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
    reference,
)

from offchain.codec import KIND_PERP
from offchain.fixed_point import WAD, div_ceil, div_floor
from offchain.margin import realise_int, variation_margin_int

USD = 10**6
PSR = 16 * WAD // 100
CAP = 10**16  # 1 % per hour
SPOT = SPOTS[BTC]


def _deposit(s, *accounts, usd=1_000_000):
    for a in accounts:
        s.engine.deposit(s.usdc, usd * USD, sender=a)


@pytest.fixture
def perp(market, trader, maker, chain_snapshot):
    """`market` plus a BTC perp marked at spot, tradable (caps set); trader and maker hold a
    million USD each."""
    s = market
    with chain_snapshot():
        _deposit(s, trader, maker)
        iid = s.list_instrument("btc-perp", BTC, KIND_PERP, CAP, 0)
        s.engine_admin.set_instrument_limits(iid, 10**6 * WAD, 10**5 * WAD, sender=s.admin)
        s.post([(BTC, SPOT, PSR)], [s.future_item(iid, SPOT)])
        yield s, iid


def _reference(s, *accounts):
    client = s.client()
    market = client.market_int()
    return market, {a: market.account(*client.account_raw(a)) for a in accounts}


def _assert_margin_equals_reference(s, *accounts):
    market, accts = _reference(s, *accounts)
    for a in accounts:
        ref = market.account_margin(accts[a])
        st = s.engine.account_state(a)
        assert (ref.equity, ref.initial_margin, ref.maintenance_margin) == (
            st.equity,
            st.initial_margin,
            st.maintenance_margin,
        ), a


def _cash_total(s, *accounts):
    """Every account's cash, the fund's and the clearing account's (the engine's own), WAD."""
    extra = [s.engine.address]
    wired = s.engine.liquidator()
    if wired != "0x0000000000000000000000000000000000000000":
        extra.append(wired)
    return sum(int(s.engine.cash(a)) for a in [*accounts, *extra])


def _vault_cash(s):
    return int(s.usdc.balanceOf(s.engine)) * int(s.engine.cash_scale())


def _funding_post(s, rate):
    return s.oracle.post_funding([(BTC, rate)], sender=s.keeper)


def test_perp_margin_equals_the_reference_as_funding_accrues(perp, trader, maker):
    s, iid = perp
    s.engine.trade(trader, maker, iid, 3 * WAD, SPOT, sender=s.venue)
    _assert_margin_equals_reference(s, trader, maker)
    _funding_post(s, CAP // 4)
    s.sleep(5 * 3600 + 17)
    f = s.oracle.funding_index(BTC)
    assert f == SPOT * (CAP // 4) * (5 * 3600 + 17) // (3600 * WAD)
    _assert_margin_equals_reference(s, trader, maker)
    # at a zero rate the index holds still: so do both equities
    _funding_post(s, 0)
    eq_long = int(s.engine.account_state(trader).equity)
    eq_short = int(s.engine.account_state(maker).equity)
    s.sleep(3600)
    assert int(s.engine.account_state(trader).equity) == eq_long
    assert int(s.engine.account_state(maker).equity) == eq_short


def test_funding_paid_equals_funding_received_when_both_settle(perp, trader, maker):
    s, iid = perp
    q = 2 * WAD + 3  # a size off whole contracts: the realisations round
    before = {a: int(s.engine.cash(a)) for a in (trader, maker, s.engine.address)}
    s.engine.trade(trader, maker, iid, q, SPOT, sender=s.venue)
    _funding_post(s, CAP // 3)
    s.sleep(4 * 3600)
    _funding_post(s, -(CAP // 7))
    s.sleep(3 * 3600 + 11)
    _funding_post(s, 0)  # the index holds still from here: the blocks below see the same F
    assert int(s.oracle.funding_index(BTC)) != 0
    vault = _vault_cash(s)
    for a in (trader, maker):
        market_ref, accts = _reference(s, a)
        expect = realise_int(accts[a], market_ref.market)
        s.engine.settle(a, sender=a)
        assert int(s.engine.cash(a)) == expect.cash
    f = int(s.oracle.funding_index(BTC))
    paid = before[trader] - int(s.engine.cash(trader))
    received = int(s.engine.cash(maker)) - before[maker]
    clearing = int(s.engine.cash(s.engine.address)) - before[s.engine.address]
    # mark == trade price, so beyond the trade's own rounding (the buyer pays the ceiling of
    # q * price, the seller gets it) all the variation margin is funding, q * F each way, each
    # side's realisation floored against it: what the long pays is what the short receives and
    # the clearing account keeps the wei the floors leave (accounts + clearing conserve cash)
    assert paid == div_ceil(q * f, WAD) and received == div_floor(q * f, WAD)
    assert paid - received == clearing and 0 <= clearing <= 1
    assert _vault_cash(s) == vault
    assert _cash_total(s, trader, maker) == sum(before.values())


def test_no_funding_for_a_period_not_held(perp, trader, maker, accounts, admin):
    s, iid = perp
    late = accounts[8]
    client = s.client()
    client.fund(admin, late, "cash", 10**7 * USD)
    client.authorise(late, s.venue)
    _deposit(s, late)
    s.engine.trade(trader, maker, iid, WAD, SPOT, sender=s.venue)
    _funding_post(s, CAP)
    s.sleep(6 * 3600)
    s.post([(BTC, SPOT, PSR)], [s.future_item(iid, SPOT)])  # fresh marks for the trade
    # `late` buys from the first long at mark: it takes the position, not the funding behind it
    s.engine.trade(late, trader, iid, WAD, SPOT, sender=s.venue)
    f_entry = int(s.oracle.funding_index(BTC))  # the trade's block
    eq0 = int(s.engine.account_state(late).equity)
    s.sleep(3600)
    f_now = int(s.oracle.funding_index(BTC))
    assert f_now > f_entry > 0
    assert eq0 - int(s.engine.account_state(late).equity) == f_now - f_entry
    # the first long paid up to its exit, no more: settled, it is flat with its funding paid
    eq_t = int(s.engine.account_state(trader).equity)
    s.engine.settle(trader, sender=trader)
    assert s.engine.position_count(trader) == 0
    assert int(s.engine.account_state(trader).equity) == eq_t
    _assert_margin_equals_reference(s, trader, late, maker)


def test_a_future_gain_is_withdrawable_while_the_position_is_held(
    market, trader, maker, chain_snapshot
):
    s = market
    fut = s.instruments["btc-fut"]
    _deposit(s, trader, maker, usd=100_000)
    s.engine.deposit(s.weth, 100 * WAD, sender=trader)
    cash0 = int(s.engine.cash(trader))
    s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    up = SPOT + SPOT // 50
    s.post([(BTC, up, PSR)], [s.future_item(fut, up)])
    market_ref, accts = _reference(s, trader)
    r = variation_margin_int(accts[trader], market_ref.market)
    # the realised cash is the deposit plus the gain: all of it can leave (the collateral the
    # account holds covers the position's margin) while the position stays
    assert int(s.engine.cash(trader)) + r == cash0 + (up - SPOT)
    bal = s.usdc.balanceOf(trader)
    amount = (cash0 + up - SPOT) // 10**12
    s.engine.withdraw(s.usdc, amount, sender=trader)
    assert s.usdc.balanceOf(trader) - bal == amount
    assert list(s.engine.positions_of(trader)[0]) == [fut]
    assert int(s.engine.vm_basis(trader)) == WAD * up  # the mark realised, WAD**2
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.usdc, 1 * USD, sender=trader)
    _assert_margin_equals_reference(s, trader, maker)


def test_a_withdrawal_above_the_realised_cash_is_refused(market, trader, maker):
    s = market
    fut = s.instruments["btc-fut"]
    _deposit(s, trader, maker, usd=100_000)
    s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    # the notional paid comes back as realised cash (mark == price): 100,000 USD, not a wei more
    realised = int(s.engine.cash(trader)) + SPOT
    assert realised == 100_000 * WAD
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.usdc, realised // 10**12 + 1, sender=trader)


def test_settle_realises_variation_margin_and_conserves_cash(perp, trader, maker):
    s, iid = perp
    fut = s.instruments["btc-fut"]
    everyone = (trader, maker)
    total0 = _cash_total(s, *everyone)
    vault0 = _vault_cash(s)
    s.engine.trade(trader, maker, iid, 2 * WAD, SPOT, sender=s.venue)
    s.engine.trade(maker, trader, fut, WAD, SPOT + 7, sender=s.venue)
    down = SPOT - SPOT // 40
    _funding_post(s, -CAP // 2)
    s.post([(BTC, down, PSR)], [s.future_item(iid, down), s.future_item(fut, down)])
    _funding_post(s, 0)  # the index holds still from here: the blocks below see the same F
    for a in everyone:
        market_ref, accts = _reference(s, a)
        expect = realise_int(accts[a], market_ref.market)
        eq = int(s.engine.account_state(a).equity)
        tx = s.engine.settle(a, sender=a)
        assert int(s.engine.cash(a)) == expect.cash
        assert int(s.engine.vm_basis(a)) == expect.vm_basis
        assert int(s.engine.account_state(a).equity) == eq
        r = expect.cash - accts[a].cash
        events = tx.events.filter(s.engine.VariationMargin)
        assert [(e.account, e.amount) for e in events] == ([(a, r)] if r else [])
    assert _cash_total(s, *everyone) == total0
    assert _vault_cash(s) == vault0


def test_a_leveraged_perp_long_is_liquidated_and_keeps_its_funding(
    liq, liquidator_account, bystander, maker, chain_snapshot
):
    """A 3x perp long falls below maintenance as the price falls; the liquidation equals the
    reference to the wei, and the funding it owed stays with it (its basis takes t * F)."""
    s = liq.s
    with chain_snapshot():
        iid = s.list_instrument("btc-perp", BTC, KIND_PERP, CAP, 0)
        s.engine_admin.set_instrument_limits(iid, 10**6 * WAD, 10**5 * WAD, sender=s.admin)
        s.post([(BTC, SPOT, PSR)], [s.future_item(iid, SPOT)])
        liq.deposit(bystander, SPOT // WAD // 3)
        liq.deposit(liquidator_account, 10_000_000)
        liq.deposit(maker, 10_000_000)
        s.engine.trade(bystander, maker, iid, WAD, SPOT, sender=s.venue)
        _funding_post(s, CAP)
        s.sleep(2 * 3600)
        price = SPOT
        while liq.health(bystander) >= 0:
            price -= SPOT // 100
            s.post([(BTC, price, PSR)], [s.future_item(iid, price)])
        _funding_post(s, 0)  # the index holds still: the reference's block and the liquidation's
        basis = int(s.engine.vm_basis(bystander))
        f = int(s.oracle.funding_index(BTC))
        total0 = _cash_total(s, bystander, liquidator_account, maker)
        _a, _l, r = reference(liq, bystander, liquidator_account)
        liq.liquidator.liquidate(bystander, sender=liquidator_account)
        assert_matches(liq, bystander, liquidator_account, r)
        taken = r.taken[iid]
        assert int(s.engine.vm_basis(bystander)) - basis == taken * f
        assert int(s.engine.vm_basis(liquidator_account)) == -taken * f
        assert _cash_total(s, bystander, liquidator_account, maker) == total0
        _assert_margin_equals_reference(s, bystander, liquidator_account, maker)


def test_a_wound_down_perp_settles_at_its_last_mark_with_its_funding(perp, trader, maker):
    """The escape hatch: a wound-down perp reads settled at its last mark; `settle` pays it and
    moves its funding into the basis, equity unchanged, and all the equity can leave."""
    s, iid = perp
    s.engine.trade(trader, maker, iid, WAD, SPOT, sender=s.venue)
    _funding_post(s, CAP // 2)
    s.sleep(3600)
    s.sleep(s.oracle.clock() >> 80 & (2**40 - 1))
    s.oracle.wind_down(sender=maker)
    eq = {a: int(s.engine.account_state(a).equity) for a in (trader, maker)}
    total0 = _cash_total(s, trader, maker)
    for a in (trader, maker):
        assert s.engine.settle(a, sender=a).return_value == 1
        assert s.engine.position_count(a) == 0
        assert int(s.engine.account_state(a).equity) == eq[a]
        # a flat account's basis is a fraction of a wei in its favour: its cash is all its own
        assert -WAD < int(s.engine.vm_basis(a)) <= 0
    assert _cash_total(s, trader, maker) == total0
    for a in (trader, maker):
        s.engine.withdraw(s.usdc, int(s.engine.cash(a)) // 10**12, sender=a)
