# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Liquidator on anvil: every rule and guard with its reason string, the insurance fund and the
socialisation books, the views, and on-chain == offchain reference (docs/fixed-point.md §8)."""

from __future__ import annotations

import re
from pathlib import Path

import ape
import pytest
from contract_support import BTC, ETH, USD, examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st
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

from offchain.fixed_point import WAD
from offchain.liquidation import LiquidationError
from offchain.liquidation import liquidate as ref_liquidate
from offchain.margin import AccountInt, account_margin_int

F60K = 60_000 * WAD


def long_btc(liq, trader, maker, cash_usd: int, size: int = WAD):
    """`trader` deposits `cash_usd` and buys `size` BTC futures from `maker` at the mark."""
    liq.deposit(trader, cash_usd)
    liq.deposit(maker, 10_000_000)
    liq.trade(trader, maker, "btc-fut", size, F60K)


# ---------------------------------------------------------------- wiring and parameters


def test_wiring_is_set_once_and_hooks_are_restricted(liq, admin, outsider, trader):
    e, lq = liq.s.engine, liq.liquidator
    assert e.liquidator() == lq.address and not e.socialising()
    with ape.reverts("engine: liquidator already set"):
        liq.s.engine_admin.set_liquidator(outsider, sender=admin)
    with ape.reverts("engine: not liquidator"):
        e.liquidation_move(trader, outsider, [], [], [], [], 1, 0, 0, False, sender=outsider)
    with ape.reverts("liquidation: not engine"):
        lq.touch(trader, 0, sender=outsider)


def test_params_defaults_bounds_and_admin(liq, admin, outsider):
    lq = liq.liquidator
    assert (lq.penalty_rate(), lq.liquidator_share(), lq.min_fraction()) == (
        WAD // 10,
        WAD // 2,
        WAD // 10,
    )
    assert (lq.min_remaining_mm(), lq.collateral_discount()) == (100 * WAD, 5 * WAD // 100)
    good = [WAD // 5, WAD, 0, 0, WAD // 2]
    with ape.reverts("roles: not admin"):
        lq.set_params(*good, sender=outsider)
    bad = [
        ([WAD // 2 + 1, WAD, 0, 0, 0], "liquidation: penalty too large"),
        ([0, WAD + 1, 0, 0, 0], "liquidation: share out of bounds"),
        ([0, 0, WAD + 1, 0, 0], "liquidation: min fraction > 1"),
        ([0, 0, 0, 10**24 + 1, 0], "liquidation: min mm too large"),
        ([0, 0, 0, 0, WAD // 2 + 1], "liquidation: discount too large"),
    ]
    for args, reason in bad:
        with ape.reverts(reason):
            lq.set_params(*args, sender=admin)
    tx = lq.set_params(*good, sender=admin)
    ev = tx.events[0]
    assert (ev.penalty_rate, ev.liquidator_share, ev.collateral_discount) == (
        WAD // 5,
        WAD,
        WAD // 2,
    )


# ---------------------------------------------------------------- guards


def test_healthy_account_cannot_be_liquidated(liq, trader, maker, liquidator_account):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    assert liq.views.liquidation_preview(trader).status == 1
    with ape.reverts("liquidation: healthy"):
        liq.liquidator.liquidate(trader, sender=liquidator_account)


def test_self_liquidation_reverts(liq, trader, maker):
    long_btc(liq, trader, maker, 12_500)
    liq.move(BTC, 56_000 * WAD)
    with ape.reverts("liquidation: self"):
        liq.liquidator.liquidate(trader, sender=trader)


def test_the_insurance_fund_and_system_contracts_cannot_be_liquidated(
    liq, trader, maker, liquidator_account, hedger, outsider
):
    """After a socialised loss the fund's cash is negative until holders pay their charges.
    That advance is no bad debt: an outsider without a deposit must not "liquidate" the fund
    (booking it again as bad debt the fund pays to itself), nor any other system contract;
    the preview says so and `register` keeps them off the scanned list."""
    e, lq = liq.s.engine, liq.liquidator
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.deposit(hedger, 50_000)
    liq.trade(maker, hedger, "btc-fut", WAD, F60K)
    liq.top_up_fund(1_000)
    liq.move(BTC, 45_000 * WAD)
    lq.liquidate(trader, sender=liquidator_account)
    assert lq.socialised() > 0 and lq.insurance_fund() < 0
    books = (lq.bad_debt(), lq.fund_payouts(), lq.socialised(), lq.insurance_fund())
    listed = lq.account_count()
    system = (lq.address, e.address, liq.s.engine_admin.address, liq.s.oracle.address)
    for addr in system:
        assert lq.is_system_account(addr)
        assert liq.views.liquidation_preview(addr).status == 6
        with ape.reverts("liquidation: not an account"):
            lq.liquidate(addr, sender=outsider)
        lq.register(addr, sender=outsider)
        assert not lq.registered(addr)
    assert (lq.bad_debt(), lq.fund_payouts(), lq.socialised(), lq.insurance_fund()) == books
    assert lq.account_count() == listed
    # an ordinary account is still one
    assert not lq.is_system_account(outsider) and not lq.is_system_account(trader)
    lq.register(outsider, sender=outsider)
    assert lq.registered(outsider) and lq.account_count() == listed + 1


def test_stale_oracle_blocks_liquidation(liq, trader, maker, liquidator_account):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 56_000 * WAD)
    liq.s.sleep(liq.s.oracle.max_age() + 1)
    assert liq.views.liquidation_preview(trader).status == 2
    with ape.reverts("liquidation: stale oracle"):
        liq.liquidator.liquidate(trader, sender=liquidator_account)


def test_liquidator_must_end_above_initial_margin(liq, trader, maker, outsider):
    long_btc(liq, trader, maker, 12_500)
    liq.move(BTC, 56_000 * WAD)
    # the outsider has no cash: taking a BTC future leaves it below IM
    with ape.reverts("liquidation: liquidator below IM"):
        liq.liquidator.liquidate(trader, sender=outsider)


def test_fraction_cap_guards(liq, trader, maker, liquidator_account):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 56_000 * WAD)
    with ape.reverts("liquidation: bad fraction"):
        liq.liquidator.liquidate(trader, 0, sender=liquidator_account)
    with ape.reverts("liquidation: bad fraction"):
        liq.liquidator.liquidate(trader, WAD + 1, sender=liquidator_account)
    with ape.reverts("liquidation: fraction too small"):
        liq.liquidator.liquidate(trader, WAD // 20, sender=liquidator_account)
    assert liq.views.liquidation_preview(trader, WAD // 20).status == 3


# ---------------------------------------------------------------- partial liquidation


def test_partial_liquidation_restores_im_and_matches_reference(
    liq, trader, maker, liquidator_account
):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 56_000 * WAD)
    eq, im, mm, _ = liq.state(trader)
    assert eq < mm
    health_before = eq - mm
    preview = liq.views.liquidation_preview(trader)
    a, lacct, r = reference(liq, trader, liquidator_account)
    assert 0 < r.fraction < WAD
    tx = liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert tx.return_value == r.fraction
    assert_matches(liq, trader, liquidator_account, r)
    # preview == outcome
    assert preview.status == 0 and preview.fraction == r.fraction
    assert list(preview.taken) == list(r.taken.values())
    assert preview.position_cash == r.position_cash and preview.penalty == r.penalty
    # rule: at or above IM afterwards, health higher
    eq2, im2, mm2, _ = liq.state(trader)
    assert eq2 >= im2 and eq2 - mm2 > health_before
    ev = [e for e in tx.events if e.event_name == "Liquidated"][0]
    assert ev.account == trader and ev.liquidator == liquidator_account
    assert ev.fraction == r.fraction and ev.penalty == r.penalty
    assert ev.penalty_to_liquidator + ev.penalty_to_fund == r.penalty
    # the event carries what moved (the engine logs no per-position change in a liquidation)
    assert dict(zip(ev.instruments, ev.sizes, strict=True)) == dict(r.taken)
    assert liq.s.engine.cash(liq.liquidator) == r.penalty_to_fund
    # a second liquidation (same state, next block) takes nothing more
    with ape.reverts("liquidation: healthy"):
        liq.liquidator.liquidate(trader, sender=liquidator_account)


def test_capped_liquidation_then_the_rest(liq, trader, maker, liquidator_account):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 56_000 * WAD)
    h0 = liq.health(trader)
    _, _, r = reference(liq, trader, liquidator_account, WAD // 10)
    liq.liquidator.liquidate(trader, WAD // 10, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    assert r.fraction == WAD // 10
    h1 = liq.health(trader)
    assert h1 > h0
    # still below MM: a second liquidation takes exactly what is still needed
    if h1 < 0:
        _, _, r2 = reference(liq, trader, liquidator_account)
        liq.liquidator.liquidate(trader, sender=liquidator_account)
        assert_matches(liq, trader, liquidator_account, r2)
        eq, im, _mm, _ = liq.state(trader)
        assert eq >= im


@pytest.fixture
def double(project, liq, admin):
    """A contract margin account that liquidates twice in one transaction, funded with 1M."""
    d = admin.deploy(project.MockDoubleLiquidator, liq.liquidator)
    liq.s.engine.deposit(liq.s.usdc, 1_000_000 * USD, d, sender=admin)
    return d


def test_second_liquidation_in_the_same_transaction_takes_nothing(liq, trader, maker, double):
    long_btc(liq, trader, maker, 12_500)
    liq.move(BTC, 56_000 * WAD)
    with ape.reverts("liquidation: healthy"):
        double.liquidate_twice(trader, WAD, WAD, sender=liq.s.admin)


def test_capped_then_rest_in_the_same_transaction_takes_only_what_is_needed(
    liq, trader, maker, double
):
    long_btc(liq, trader, maker, 12_500)
    liq.move(BTC, 54_000 * WAD)  # deep enough that a 10 % cap leaves it below MM
    size_before = liq.account(trader).positions
    a, lacct, r1 = reference(liq, trader, double.address, WAD // 10)
    # the reference of the second liquidation starts from the state the first one leaves
    market = liq.market_int(a, lacct)
    r2 = ref_liquidate(r1.account, r1.liquidator, market, liq.params(), r1.ledger, WAD)
    tx = double.liquidate_twice(trader, WAD // 10, WAD, sender=liq.s.admin)
    f1, f2 = tx.return_value
    assert f1 == WAD // 10 == r1.fraction
    # the second one took exactly the closed-form rest, no more
    assert f2 == r2.fraction
    assert_matches(liq, trader, double.address, r2)
    eq, im, _mm, _ = liq.state(trader)
    assert eq >= im
    assert 0 < f2 < WAD
    left = liq.account(trader).positions
    assert all(0 < left[j] < size_before[j] for j in size_before)


def test_dust_account_is_taken_whole(liq, trader, maker, liquidator_account):
    # 0.01 BTC: MM ~ 96 USD < min_remaining_mm (100)
    long_btc(liq, trader, maker, 125, WAD // 100)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 56_000 * WAD)
    _, _, r = reference(liq, trader, liquidator_account)
    liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert r.fraction == WAD
    assert liq.s.engine.position_count(trader) == 0
    assert_matches(liq, trader, liquidator_account, r)


# ---------------------------------------------------------------- insolvency


def test_insolvent_account_fund_then_socialisation(
    liq, trader, maker, liquidator_account, bystander, hedger
):
    e, lq = liq.s.engine, liq.liquidator
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.deposit(bystander, 5_000)
    # a second short holder: hedger also sold 1 BTC future to the maker's side
    liq.deposit(hedger, 50_000)
    liq.trade(maker, hedger, "btc-fut", WAD, F60K)
    liq.top_up_fund(1_000)
    liq.move(BTC, 45_000 * WAD)
    eq, _im, _mm, _ = liq.state(trader)
    assert eq < 0  # 12,500 - 15,000
    _, _, r = reference(liq, trader, liquidator_account)
    assert r.bad_debt == -eq and r.fund_payout == 1_000 * WAD
    assert r.socialised == r.bad_debt - r.fund_payout
    tx = liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    liq.check_bad_debt_split()
    assert e.socialising()
    bd = [x for x in tx.events if x.event_name == "BadDebt"][0]
    assert (bd.amount, bd.fund_payout, bd.socialised) == (r.bad_debt, r.fund_payout, r.socialised)
    assert e.cash(trader) == 0 and e.position_count(trader) == 0
    # the shorts (maker net short 0 after its buy... hedger short 1, maker short 1) owe it
    pending = lq.pending_charge(maker) + lq.pending_charge(hedger)
    assert r.socialised <= pending <= r.socialised + 2
    assert lq.pending_charge(liquidator_account) == 0  # long, like the account it took over
    assert lq.pending_charge(bystander) == 0
    # the engine's state deducts the pending charge, read through its one assembler
    eq_h, _, _, p_h = liq.state(hedger)
    assert p_h == lq.pending_charge(hedger) == e.margin_inputs(hedger, [], [], True, True)[3]
    assert p_h > 0 and e.margin_inputs(hedger, [], [], True, False)[3] == 0
    # a touch realises it: the fund gets it back, and the state is what it said
    fund_before = e.cash(lq)
    cash_h = e.cash(hedger)
    tx = e.withdraw(liq.s.usdc, 1 * USD, sender=hedger)
    # the withdrawal settles first: the short's variation margin, -1 x the 45,000 mark (its
    # 60,000 notional came in at the trade), is realised into cash
    assert e.cash(hedger) == cash_h - p_h - 45_000 * WAD - 10**18
    assert e.cash(lq) == fund_before + p_h
    assert lq.pending_charge(hedger) == 0 and lq.charges_realised() == p_h
    assert liq.state(hedger)[0] == eq_h - 10**18
    # the bystander without positions never pays and withdraws everything
    cash_b = e.cash(bystander)
    assert cash_b == 5_000 * WAD
    e.withdraw(liq.s.usdc, 5_000 * USD, sender=bystander)
    assert e.cash(bystander) == 0


def test_insolvent_account_covered_by_fund(liq, trader, maker, liquidator_account):
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.top_up_fund(100_000)
    liq.move(BTC, 45_000 * WAD)
    _, _, r = reference(liq, trader, liquidator_account)
    liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    assert r.socialised == 0 and r.fund_payout == r.bad_debt > 0
    assert not liq.s.engine.socialising()
    assert liq.liquidator.insurance_fund() == 100_000 * WAD - r.bad_debt


def test_collateral_sold_to_liquidator_at_discount(liq, trader, maker, liquidator_account):
    s = liq.s
    # trader: 2 WETH (3,000 each, haircut 20%) and a little cash, long 1 BTC future
    s.engine.deposit(s.weth, 4 * WAD, sender=trader)
    liq.deposit(trader, 8_700)
    liq.deposit(maker, 10_000_000)
    liq.trade(trader, maker, "btc-fut", WAD, F60K)
    liq.deposit(liquidator_account, 1_000_000)
    liq.move(BTC, 42_000 * WAD)
    a, _, r = reference(liq, trader, liquidator_account)
    assert r.fraction == WAD and r.collateral_sold
    tx = liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    sold = [x for x in tx.events if x.event_name == "CollateralSold"][0]
    assert sold.asset == s.weth.address and sold.amount == r.collateral_sold[0]
    assert sold.paid == r.collateral_paid
    assert s.engine.collateral(s.weth, liquidator_account) == sold.amount
    assert s.engine.asset_mask(liquidator_account) & 1 == 1
    assert s.engine.cash(trader) >= 0 and r.bad_debt == 0


def test_settlement_of_an_insolvent_account_then_liquidation(
    liq, trader, maker, liquidator_account, admin, chain
):
    """Settling an insolvent account leaves negative cash and no positions: the liquidation of
    what is left realises the bad debt; nothing is left open to socialise it over, so the fund
    pays it (even beyond its balance, as a fund deficit)."""
    s = liq.s
    lq = liq.liquidator
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.top_up_fund(1_000)
    iid = s.instruments["btc-fut"]
    s.settle_at_spot(BTC, 45_000 * WAD, [iid])
    s.engine.settle(trader, sender=maker)
    assert s.engine.position_count(trader) == 0 and s.engine.cash(trader) == -2_500 * WAD
    _, _, r = reference(liq, trader, liquidator_account)
    lq.liquidate(trader, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    assert s.engine.cash(trader) == 0
    assert lq.bad_debt() == 2_500 * WAD == lq.fund_payouts() and lq.socialised() == 0
    assert lq.insurance_fund() == -1_500 * WAD


def test_settled_positions_are_taken_over_at_the_settlement_price(
    liq, trader, maker, liquidator_account
):
    """Before anyone settles it, the insolvent account is liquidated whole: the liquidator takes
    the settled position at the settlement price and settles it itself."""
    s = liq.s
    lq = liq.liquidator
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(liquidator_account, 1_000_000)
    liq.top_up_fund(1_000_000)
    iid = s.instruments["btc-fut"]
    s.settle_at_spot(BTC, 45_000 * WAD, [iid])
    lq.liquidate(trader, sender=liquidator_account)
    assert s.engine.position_count(trader) == 0 and s.engine.cash(trader) == 0
    assert lq.bad_debt() == 2_500 * WAD == lq.fund_payouts()
    s.engine.settle(liquidator_account, sender=maker)
    assert s.engine.position_count(liquidator_account) == 0


def id_expiry(iid: int) -> int:
    return (iid >> 56) & (2**40 - 1)


# ---------------------------------------------------------------- views


def test_accounts_below_mm_is_paged(liq, trader, maker, liquidator_account, hedger, outsider):
    lq = liq.liquidator
    long_btc(liq, trader, maker, 12_500)
    liq.deposit(hedger, 12_500)
    liq.trade(hedger, maker, "btc-fut", WAD, F60K)
    for a in (trader, maker, hedger):
        lq.register(a, sender=outsider)
    lq.register(trader, sender=outsider)  # idempotent
    assert lq.account_count() == 3
    with ape.reverts("liquidation: zero account"):
        lq.register("0x0000000000000000000000000000000000000000", sender=outsider)
    assert list(liq.views.accounts_below_mm(0, 10)) == []
    liq.move(BTC, 56_000 * WAD)
    assert list(liq.views.accounts_below_mm(0, 10)) == [trader, hedger]
    assert list(liq.views.accounts_below_mm(1, 1)) == []
    assert list(liq.views.accounts_below_mm(2, 1)) == [hedger]
    assert list(liq.views.accounts_below_mm(5, 10)) == []


# ---------------------------------------------------------------- on-chain == reference


@examples(ci=6, long=60, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    size=st.integers(WAD // 10, 3 * WAD),
    short=st.booleans(),
    hedge=st.integers(0, 2),
    margin_pct=st.integers(101, 140),
    move_pct=st.integers(1, 45),
    cap=st.sampled_from([WAD, WAD // 2, WAD // 4]),
    fund=st.sampled_from([0, 500, 50_000]),
)
def test_chain_equals_reference(
    liq,
    trader,
    maker,
    liquidator_account,
    chain_snapshot,
    size,
    short,
    hedge,
    margin_pct,
    move_pct,
    cap,
    fund,
):
    with chain_snapshot():
        s = liq.s
        liq.move(BTC, 60_000 * WAD)  # option arrays of realistic size (liquidation_support)
        liq.deposit(maker, 50_000_000)
        liq.deposit(liquidator_account, 50_000_000)
        if fund:
            liq.top_up_fund(fund)
        fut, opt = s.instruments["btc-fut"], s.instruments["btc-put" if not short else "btc-call"]
        q = -size if short else size
        positions = {opt: size * hedge // 2, fut: q} if hedge else {fut: q}
        # deposit margin_pct % of the portfolio's IM (reference margin on the chain's market)
        probe = AccountInt(0, positions)
        im = account_margin_int(probe, liq.market_int(probe), liq.params().im_factor).initial_margin
        liq.deposit(trader, im * margin_pct // 100 // WAD + 1)
        if hedge:  # a protective option first, bought from the maker at its mark
            liq.trade(
                trader,
                maker,
                "btc-put" if not short else "btc-call",
                size * hedge // 2,
                3_000 * WAD,
            )
        buyer, seller = (maker, trader) if short else (trader, maker)
        liq.trade(buyer, seller, "btc-fut", size, F60K)
        spot = 60_000 * WAD * (100 + move_pct if short else 100 - move_pct) // 100
        liq.move(BTC, spot)
        eq, _im, mm, _ = liq.state(trader)
        if eq >= mm:
            with ape.reverts("liquidation: healthy"):
                liq.liquidator.liquidate(trader, cap, sender=liquidator_account)
            return
        h0 = eq - mm
        try:
            _, _, r = reference(liq, trader, liquidator_account, cap)
        except LiquidationError as exc:
            with ape.reverts(str(exc)):
                liq.liquidator.liquidate(trader, cap, sender=liquidator_account)
            return
        liq.liquidator.liquidate(trader, cap, sender=liquidator_account)
        assert_matches(liq, trader, liquidator_account, r)
        liq.check_bad_debt_split()
        assert liq.health(trader) >= h0
        _ = ETH


# ---------------------------------------------------------------- reason strings

LIQUIDATION_NOT_REACHED = {
    # the liquidator's size after the transfer above MAX_SIZE (1e30 contracts); the engine's
    # positions._set checks the same bound when the move is applied
    "liquidation: size out of bounds",
    # an index above 2**128 WAD per contract
    "liquidation: loss index overflow",
}


def test_every_liquidation_reason_is_tested_and_fits_one_word():
    root = Path(__file__).resolve().parent.parent
    pattern = r'"(liquidation: [^"]*)"'
    found = set()
    for path in (root / "contracts").rglob("*.vy"):
        found |= set(re.findall(pattern, path.read_text()))
    tested = set()
    for path in (root / "tests").glob("test_*.py"):
        text = path.read_text()
        # ape.reverts("...") and the (args, "reason") pairs of the parameter test
        tested |= set(re.findall(r'reverts\("(liquidation: [^"]*)"\)', text))
        tested |= set(re.findall(r'\], "(liquidation: [^"]*)"\)', text))
    assert found - tested - LIQUIDATION_NOT_REACHED == set()
    for reason in found:
        assert len(reason.encode()) <= 32, reason
