"""Integer liquidation reference (docs/fixed-point.md §8): hand examples and properties.

Properties (hypothesis): a liquidation never lowers the account's health; an uncapped partial
liquidation leaves the account at or above IM; the penalty never exceeds the equity the account
has; cash and collateral are conserved; fund payouts + socialised loss == bad debt; the loss
charged to holders covers the socialised loss; an account without positions is never charged.
"""

from __future__ import annotations

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from offchain.fixed_point import WAD, futures_risk_array_wad
from offchain.liquidation import (
    LONG,
    SHORT,
    LiquidationError,
    LiquidationParams,
    LossLedger,
    choose_fraction,
    liquidate,
    liquidation_fraction,
    pending_charge,
    sale_pay,
    sale_units,
    socialise,
    split_penalty,
    taken_sizes,
)
from offchain.margin import (
    AccountInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
    account_margin_int,
    equity_int,
)
from offchain.scenarios import CME_SPAN_16

P = LiquidationParams()
C = CME_SPAN_16.linear_coefficients_wad()
PSR = 16 * WAD // 100
FUT, CALL, PUT, FUT2 = 1, 2, 3, 4
WETH = 0


def make_market(spot: int, call_mark: int, put_mark: int, weth_price: int = 3_000 * WAD):
    fut = futures_risk_array_wad(spot, C, PSR)
    call = [x * 6 // 10 + abs(x) // 10 for x in fut]  # delta 0.6 with convexity
    put = [-(x * 4 // 10) + abs(x) // 10 for x in fut]  # delta -0.4 with convexity
    fut2 = futures_risk_array_wad(spot * 101 // 100, C, PSR)
    return MarketInt(
        {
            FUT: InstrumentInt.from_wad_array(1, Kind.FUTURE, spot, fut),
            CALL: InstrumentInt.from_wad_array(1, Kind.CALL, call_mark, call),
            PUT: InstrumentInt.from_wad_array(1, Kind.PUT, put_mark, put),
            FUT2: InstrumentInt.from_wad_array(1, Kind.FUTURE, spot * 101 // 100, fut2),
        },
        {1: UnderlyingInt(spot, WAD // 10, len(C))},
        {WETH: CollateralInt(weth_price, WAD // 5, 18)},
    )


MARKET = make_market(60_000 * WAD, 3_000 * WAD, 2_500 * WAD)


def state(acct, market=MARKET):
    return account_margin_int(acct, market, P.im_factor)


def with_equity(positions, target, market=MARKET, collateral=None):
    """An account holding `positions` (+ collateral) whose equity is exactly `target`."""
    collateral = collateral or {}
    base = equity_int(AccountInt(0, positions, collateral), market)
    return AccountInt(target - base, positions, collateral)


def open_interest_of(*accounts):
    """Open interest (sum of longs) of the given accounts plus a counterparty closing the book."""
    oi = {}
    net = {}
    for a in accounts:
        for j, q in a.positions.items():
            oi[j] = oi.get(j, 0) + max(q, 0)
            net[j] = net.get(j, 0) + q
    for j, n in net.items():
        if n < 0:  # the counterparty is long -n
            oi[j] += -n
    return oi


def closing(*accounts):
    """The counterparty holding the opposite of the accounts' net positions."""
    net = {}
    for a in accounts:
        for j, q in a.positions.items():
            net[j] = net.get(j, 0) - q
    return AccountInt(0, {j: q for j, q in net.items() if q})


RICH = AccountInt(10**8 * WAD)


# ---------------------------------------------------------------- hand examples


def test_worked_example_single_future():
    a = with_equity({FUT: WAD}, 9_000 * WAD)
    st0 = state(a)
    assert st0.maintenance_margin == 9_600_377_368_861_214_769_152
    r = liquidate(a, RICH, MARKET, P, LossLedger(open_interest={FUT: WAD}))
    assert r.fraction == 271_771_174_764_581_229
    assert r.taken == {FUT: 271_771_174_764_581_229}
    assert r.position_cash == 16_306_270_485_874_873_740_000
    assert r.penalty == 260_910_583_571_871_170_843
    after = state(r.account)
    assert after.equity >= after.initial_margin
    assert after.equity - after.initial_margin < 10**6  # and no more than needed
    assert r.penalty_to_liquidator == r.penalty // 2
    assert r.penalty_to_fund == r.penalty - r.penalty // 2
    assert r.ledger.fund == r.penalty_to_fund


def test_fraction_formula_and_bounds():
    assert liquidation_fraction(0, 10 * WAD, 12 * WAD, 0) == WAD
    assert liquidation_fraction(-5, 10 * WAD, 12 * WAD, 0) == WAD
    # E = 9, M = 10, I = 12.5, p = 0.1: f = 3.5 / (12.5 - 1) = 0.3043...
    assert (
        liquidation_fraction(9 * WAD, 10 * WAD, 125 * WAD // 10, WAD // 10)
        == 304_347_826_086_956_522
    )
    # never above one
    assert liquidation_fraction(1, 10 * WAD, 30 * WAD, WAD // 2) == WAD
    with pytest.raises(ValueError):
        liquidation_fraction(11 * WAD, 10 * WAD, 12 * WAD, 0)


def test_caller_cap_and_anti_dust():
    mm, im = 10_000 * WAD, 12_500 * WAD
    f = liquidation_fraction(9_000 * WAD, mm, im, P.penalty_rate)
    assert choose_fraction(9_000 * WAD, mm, im, P, WAD) == (f, False)
    assert choose_fraction(9_000 * WAD, mm, im, P, WAD // 5) == (WAD // 5, True)
    with pytest.raises(LiquidationError, match="liquidation: fraction too small"):
        choose_fraction(9_000 * WAD, mm, im, P, WAD // 20)
    with pytest.raises(LiquidationError, match="liquidation: bad fraction"):
        choose_fraction(9_000 * WAD, mm, im, P, 0)
    with pytest.raises(LiquidationError, match="liquidation: bad fraction"):
        choose_fraction(9_000 * WAD, mm, im, P, WAD + 1)
    # a small account: the remaining MM would be dust, the whole account goes
    assert choose_fraction(90 * WAD, 100 * WAD, 125 * WAD, P, WAD) == (WAD, False)
    # a cap smaller than min_fraction is allowed when the needed fraction is smaller still
    # (with im_factor 1.05 the needed fraction is about (k - 1) / (k - p) = 5.3%)
    tiny = liquidation_fraction(99_990 * WAD, 100_000 * WAD, 105_000 * WAD, P.penalty_rate)
    assert tiny < WAD // 10
    assert choose_fraction(99_990 * WAD, 100_000 * WAD, 105_000 * WAD, P, tiny) == (tiny, False)


def test_taken_sizes_round_away_from_zero():
    t = taken_sizes({FUT: 3, CALL: -3, PUT: 0}, WAD // 2)
    assert t == {FUT: 2, CALL: -2}
    assert taken_sizes({FUT: 7 * WAD, CALL: -WAD}, WAD) == {FUT: 7 * WAD, CALL: -WAD}


def test_guards():
    a = with_equity({FUT: WAD}, 9_000 * WAD)
    ledger = LossLedger(open_interest={FUT: WAD})
    with pytest.raises(LiquidationError, match="liquidation: self"):
        liquidate(a, a, MARKET, P, ledger, same=True)
    with pytest.raises(LiquidationError, match="liquidation: stale oracle"):
        liquidate(a, RICH, MARKET, P, ledger, fresh=False)
    healthy = with_equity({FUT: WAD}, 9_601 * WAD)
    with pytest.raises(LiquidationError, match="liquidation: healthy"):
        liquidate(healthy, RICH, MARKET, P, ledger)
    poor = AccountInt(1_000 * WAD)
    with pytest.raises(LiquidationError, match="liquidation: liquidator below IM"):
        liquidate(a, poor, MARKET, P, ledger)


def test_penalty_split():
    assert split_penalty(101, WAD // 2) == (50, 51)
    assert split_penalty(101, WAD) == (101, 0)
    assert split_penalty(101, 0) == (0, 101)


def test_insolvent_fund_pays_then_socialises():
    a = with_equity({FUT: WAD}, -1_000 * WAD)
    counter = AccountInt(0, {FUT: -WAD})
    oi = open_interest_of(a, counter)
    # fund holds 400: pays 400, socialises 600 on the shorts (open interest 1)
    r = liquidate(a, RICH, MARKET, P, LossLedger(fund=400 * WAD, open_interest=oi))
    assert r.fraction == WAD and r.penalty == 0
    assert r.bad_debt == 1_000 * WAD
    assert r.fund_payout == 400 * WAD and r.socialised == 600 * WAD
    assert r.index_deltas == {FUT: (SHORT, 600 * WAD)}
    assert r.account.cash == 0 and r.account.positions == {}
    assert r.ledger.fund == -600 * WAD  # the fund advanced the socialised part
    assert pending_charge(counter.positions, r.ledger.index, {}) == 600 * WAD
    assert pending_charge(r.liquidator.positions, r.ledger.index, {}) == 0  # L is long
    assert pending_charge({}, r.ledger.index, {}) == 0


def test_insolvent_fund_covers_everything():
    a = with_equity({FUT: -WAD}, -1_000 * WAD)
    r = liquidate(a, RICH, MARKET, P, LossLedger(fund=5_000 * WAD, open_interest={FUT: WAD}))
    assert r.fund_payout == 1_000 * WAD and r.socialised == 0 and r.index_deltas == {}
    assert r.ledger.fund == 4_000 * WAD


def test_counterparty_liquidator_bears_the_loss_it_nets_away():
    """The liquidator was the only counterparty: the takeover closes its short, so no open
    interest is left, but the netted short still counts as opposite interest and pays its share
    at once; the fund ends where it started (a third-party liquidator leaves the same loss on
    the short, charged later through the index)."""
    a = with_equity({FUT: WAD}, -1_000 * WAD)
    liq = AccountInt(10**8 * WAD, {FUT: -WAD})
    r = liquidate(a, liq, MARKET, P, LossLedger(fund=0, open_interest={FUT: WAD}))
    assert r.ledger.open_interest[FUT] == 0
    assert r.socialised == r.bad_debt == 1_000 * WAD and r.fund_payout == 0
    assert r.ledger.fund == 0  # advanced 1,000 and repaid at once by the liquidator
    assert r.liquidator.cash == liq.cash - r.position_cash + r.penalty_to_liquidator - 1_000 * WAD
    third = liquidate(a, RICH, MARKET, P, LossLedger(fund=0, open_interest={FUT: WAD}))
    assert third.index_deltas == r.index_deltas  # the same loss per short contract


def test_nothing_eligible_fund_absorbs():
    """Defensive path: with no opposite open interest at all (given here directly; a consistent
    book always has the account's counterparties somewhere), the fund absorbs the whole deficit,
    even beyond its balance, as a fund payout."""
    a = with_equity({FUT: WAD}, -1_000 * WAD)
    r = liquidate(a, RICH, MARKET, P, LossLedger(fund=0, open_interest={FUT: 0}))
    assert r.fund_payout == r.bad_debt == 1_000 * WAD and r.socialised == 0
    assert r.ledger.fund == -1_000 * WAD


@pytest.mark.parametrize(
    "share,paid",
    [(WAD, 1_000), (WAD // 4, 250), (0, 0), (WAD // 3, 333)],
)
def test_fund_share_caps_the_payout_and_socialises_the_rest(share, paid):
    """With opposite open interest, the fund pays min(D, fund, div_floor(fund_share * D, WAD))
    and the rest is socialised at once onto the shorts; fund_payouts + socialised == D."""
    a = with_equity({FUT: WAD}, -1_000 * WAD)
    params = LiquidationParams(fund_share=share)
    r = liquidate(a, RICH, MARKET, params, LossLedger(fund=5_000 * WAD, open_interest={FUT: WAD}))
    expect = min(1_000 * WAD, share * 1_000 * WAD // WAD)
    assert paid * WAD <= expect < (paid + 1) * WAD
    assert r.fund_payout == expect and r.socialised == r.bad_debt - expect
    assert r.ledger.fund_payouts + r.ledger.socialised == r.ledger.bad_debt
    assert pending_charge({FUT: -WAD}, r.ledger.index, {}) == r.socialised
    # nothing eligible: the fund pays all of it, whatever its share
    none = liquidate(a, RICH, MARKET, params, LossLedger(fund=0, open_interest={FUT: 0}))
    assert none.fund_payout == none.bad_debt == 1_000 * WAD and none.socialised == 0


def test_fund_share_out_of_bounds_is_refused():
    with pytest.raises(ValueError, match="fund_share must be an int in"):
        LiquidationParams(fund_share=WAD + 1)
    with pytest.raises(ValueError, match="fund_share must be an int in"):
        LiquidationParams(fund_share=-1)


def test_stale_collateral_is_worth_zero_and_blocks_a_write_off():
    """A collateral price of 0 stands for a stale one (docs/fixed-point.md §8): it adds no
    equity, is not sold, and an insolvent account holding it is not written off."""
    stale = make_market(20_000 * WAD, 1_000 * WAD, 1_000 * WAD, weth_price=0)
    a = with_equity({FUT: WAD}, -1_000 * WAD, stale, {WETH: WAD})
    with pytest.raises(LiquidationError, match="liquidation: stale collateral"):
        liquidate(a, RICH, stale, P, LossLedger(open_interest={FUT: WAD}))


def test_collateral_sold_at_discount():
    # A: short future, 1 WETH collateral, cash deeply negative after a crash-up
    a = with_equity({FUT: -WAD}, 500 * WAD, collateral={WETH: WAD})
    r = liquidate(a, RICH, MARKET, P, LossLedger(open_interest={FUT: WAD}))
    assert r.fraction == WAD
    d = min(P.collateral_discount, WAD // 5)
    cash_after_pen = a.cash + r.position_cash - r.penalty
    assert cash_after_pen < 0
    units = sale_units(-cash_after_pen, WAD, 1, 3_000 * WAD, d)
    assert r.collateral_sold == {WETH: units}
    assert r.collateral_paid == sale_pay(units, 1, 3_000 * WAD, d)
    assert r.account.cash >= 0 and r.bad_debt == 0
    assert r.liquidator.collateral == {WETH: units}


def test_socialise_weights_and_exact_sum():
    spread = socialise(1_000, {FUT: WAD, CALL: -WAD}, MARKET, {FUT: 3 * WAD, CALL: WAD})
    # weights 60,000 : 3,000 -> shares 952 (floor) and 48 (the rest)
    assert spread[FUT] == (SHORT, 318, 952)  # div_ceil(952 * WAD, 3 * WAD)
    assert spread[CALL] == (LONG, 48, 48)
    assert spread[FUT][2] + spread[CALL][2] == 1_000
    assert spread[CALL][0] == LONG
    assert socialise(1_000, {FUT: WAD}, MARKET, {FUT: 0}) == {}


# ---------------------------------------------------------------- properties

sizes = st.integers(-5 * WAD, 5 * WAD)


@st.composite
def scenario(draw):
    spot = draw(st.integers(20_000, 100_000)) * WAD
    market = make_market(
        spot,
        draw(st.integers(0, 10_000)) * WAD,
        draw(st.integers(0, 10_000)) * WAD,
        draw(st.integers(1, 5_000)) * WAD,  # posted prices are never 0 (0 stands for stale)
    )
    pos = {}
    for j in (FUT, CALL, PUT, FUT2):
        if draw(st.booleans()):
            q = draw(sizes)
            if q:
                pos[j] = q
    coll = {WETH: draw(st.integers(0, 3 * WAD))} if draw(st.booleans()) else {}
    ratio = draw(st.integers(-600, 999))  # equity / MM in per mille
    l_pos = {j: draw(sizes) for j in (FUT, CALL) if draw(st.booleans())}
    l_pos = {j: q for j, q in l_pos.items() if q}
    fund = draw(st.integers(0, 20_000)) * WAD
    cap = draw(st.sampled_from([WAD, WAD // 2, WAD // 5, WAD // 10]))
    params = LiquidationParams(
        penalty_rate=draw(st.sampled_from([0, WAD // 20, WAD // 10, WAD // 2])),
        liquidator_share=draw(st.sampled_from([0, WAD // 2, WAD])),
        min_remaining_mm=draw(st.sampled_from([0, 100 * WAD])),
    )
    return market, pos, coll, ratio, l_pos, fund, cap, params


@settings(max_examples=300, deadline=None)
@given(scenario())
def test_liquidation_properties(case):
    market, pos, coll, ratio, l_pos, fund, cap, params = case
    base = account_margin_int(AccountInt(0, pos, coll), market, params.im_factor)
    mm = base.maintenance_margin
    assume(mm > 0)
    a = with_equity(pos, mm * ratio // 1000, market, coll)
    liq = AccountInt(10**9 * WAD, l_pos)
    counter = closing(a, liq)
    oi = open_interest_of(a, liq, counter)
    st0 = account_margin_int(a, market, params.im_factor)
    assert st0.equity < st0.maintenance_margin
    try:
        r = liquidate(
            a, liq, market, params, LossLedger(fund=fund, open_interest=oi), max_fraction=cap
        )
    except LiquidationError as exc:
        assert str(exc) == "liquidation: fraction too small"
        return
    after = account_margin_int(r.account, market, params.im_factor)
    # health never lowered
    assert after.health >= st0.health
    # uncapped partial: at or above IM
    if r.fraction < WAD and cap == WAD:
        assert after.equity >= after.initial_margin
    if r.fraction < WAD:
        assert r.bad_debt == 0 and r.collateral_sold == {}
    # penalty never exceeds what the account has after the transfer at mark
    moved = {j: q - r.taken.get(j, 0) for j, q in a.positions.items()}
    eq_transfer = equity_int(AccountInt(a.cash + r.position_cash, moved, a.collateral), market)
    assert 0 <= r.penalty <= max(eq_transfer, 0)
    assert eq_transfer >= st0.equity  # the transfer at mark never costs the account
    assert r.penalty_to_liquidator + r.penalty_to_fund == r.penalty
    # conservation of cash (accounts + fund) and collateral
    assert r.account.cash + r.liquidator.cash + r.ledger.fund == a.cash + liq.cash + fund
    for i in set(a.collateral) | set(r.liquidator.collateral):
        total = r.account.collateral.get(i, 0) + r.liquidator.collateral.get(i, 0)
        assert total == a.collateral.get(i, 0) + liq.collateral.get(i, 0)
    # books
    assert r.ledger.fund_payouts + r.ledger.socialised == r.ledger.bad_debt == r.bad_debt
    assert r.fund_payout <= max(fund + r.penalty_to_fund, 0) or r.socialised == 0
    # holders of the opposite side owe at least the socialised loss; no-position accounts nothing
    owed = sum(
        pending_charge(h.positions, r.ledger.index, {}) for h in (r.account, r.liquidator, counter)
    )
    # the liquidator pays its netted opposite size's share at once
    owed += r.liquidator_charge
    assert owed >= r.socialised
    assert owed <= r.socialised + 3 * len(r.index_deltas) + sum(
        abs(q) for h in (r.liquidator, counter) for q in h.positions.values()
    )
    assert pending_charge(r.account.positions, r.ledger.index, {}) == 0 or r.fraction < WAD
    assert pending_charge({}, r.ledger.index, {}) == 0
    # open interest bookkeeping matches the accounts
    oi_after = open_interest_of(r.account, r.liquidator, counter)
    for j in r.taken:
        assert r.ledger.open_interest[j] == oi_after.get(j, 0)


@settings(max_examples=100, deadline=None)
@given(scenario())
def test_second_liquidation_takes_nothing_more(case):
    """After an uncapped liquidation the account is at or above IM: a second one reverts."""
    market, pos, coll, ratio, l_pos, fund, _cap, params = case
    base = account_margin_int(AccountInt(0, pos, coll), market, params.im_factor)
    assume(base.maintenance_margin > 0)
    a = with_equity(pos, base.maintenance_margin * ratio // 1000, market, coll)
    liq = AccountInt(10**9 * WAD, l_pos)
    ledger = LossLedger(fund=fund, open_interest=open_interest_of(a, liq, closing(a, liq)))
    r = liquidate(a, liq, market, params, ledger)
    with pytest.raises(LiquidationError, match="liquidation: healthy"):
        liquidate(r.account, r.liquidator, market, params, r.ledger)
