"""MarginEngine: trade booking and its guards, IM / risk-reducing rule, open-interest and
position limits, guardian pause, staleness, margin-checked withdrawals, settlement, admin
setters, and the bytecode size limit."""

import ape
import pytest
from contract_support import BTC, DAY, ETH, PSR, SPOTS, USD

from offchain.codec import KIND_FUTURE, id_fields
from offchain.fixed_point import (
    WAD,
    decode_risk_array,
    div_ceil,
    encode_risk_array,
    futures_risk_array_wad,
)
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ROLE_GUARDIAN

SPOT = SPOTS[BTC]


def future_mm(mark: int, q: int = WAD) -> int:
    """MM of a long position of q futures: the worst decoded scenario loss (9,600.38 USD for
    one BTC future at 60,000: the 16% move plus the encoding rounding, < 2**e)."""
    e, entries = encode_risk_array(
        futures_risk_array_wad(mark, CRYPTO_35.linear_coefficients_wad(), PSR)
    )
    return max(div_ceil(-q * v, WAD) for v in decode_risk_array(e, entries))


FUT_MM = future_mm(SPOT)
ZERO = "0x0000000000000000000000000000000000000000"


def fund(s, acct, usd):
    s.usdc.mint(acct, usd * USD, sender=acct)
    s.usdc.approve(s.engine, 2**256 - 1, sender=acct)
    s.engine.deposit(s.usdc, usd * USD, sender=acct)


@pytest.fixture
def fut(market):
    return market.instruments["btc-fut"]


def test_trade_books_positions_cash_and_event(market, trader, maker, fut):
    s = market
    fund(s, trader, 100_000)
    fund(s, maker, 100_000)
    tx = s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    ev = tx.events.filter(s.engine.Trade)[0]
    assert (ev.buyer, ev.seller, ev.instrument, ev.size, ev.price, ev.amount) == (
        trader.address,
        maker.address,
        fut,
        WAD,
        SPOT,
        SPOT,
    )
    changes = tx.events.filter(s.engine.PositionChanged)
    assert [(c.account, c.size) for c in changes] == [(trader.address, WAD), (maker.address, -WAD)]
    assert s.engine.cash(trader) == 100_000 * WAD - SPOT
    assert s.engine.cash(maker) == 100_000 * WAD + SPOT
    assert s.engine.positions_of(trader) == ([fut], [WAD])
    assert s.engine.open_interest(fut) == WAD
    eq, im, mm = s.engine.account_state(trader)[:3]
    assert (eq, mm) == (100_000 * WAD, FUT_MM)
    assert im == div_ceil(FUT_MM * 125, 100)
    worst = s.views.worst_scenarios(trader)
    assert len(worst) == 1 and worst[0].underlying == BTC and worst[0].worst_loss == FUT_MM
    # closing the position removes it
    s.engine.trade(maker, trader, fut, WAD, SPOT, sender=s.venue)
    assert s.engine.positions_of(trader) == ([], [])
    assert s.engine.open_interest(fut) == 0
    assert s.engine.account_state(trader)[:3] == (100_000 * WAD, 0, 0)


def test_trade_guards(market, trader, maker, outsider, fut):
    s = market
    fund(s, trader, 100_000)
    fund(s, maker, 100_000)
    with ape.reverts("roles: not venue"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=outsider)
    with ape.reverts("engine: venue not authorised"):
        s.engine.trade(trader, outsider, fut, WAD, SPOT, sender=s.venue)
    s.engine_admin.authorise_venue(s.venue, False, sender=maker)
    with ape.reverts("engine: venue not authorised"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    tx = s.engine_admin.authorise_venue(s.venue, True, sender=maker)
    assert tx.events.filter(s.engine_admin.VenueAuthorised)[0].allowed
    with ape.reverts("engine: self trade"):
        s.engine.trade(trader, trader, fut, WAD, SPOT, sender=s.venue)
    with ape.reverts("engine: bad size"):
        s.engine.trade(trader, maker, fut, 0, SPOT, sender=s.venue)
    with ape.reverts("engine: bad size"):
        s.engine.trade(trader, maker, fut, 10**30 + 1, SPOT, sender=s.venue)
    with ape.reverts("engine: bad price"):
        s.engine.trade(trader, maker, fut, WAD, 2**96, sender=s.venue)
    s.chain.pending_timestamp = id_fields(fut)[3]
    s.chain.mine()
    with ape.reverts("engine: instrument expired"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)


def test_initial_margin_check_and_preview(market, trader, maker, fut):
    s = market
    im = div_ceil(FUT_MM * 125, 100)
    s.engine.deposit(s.usdc, -(-im // 10**12) - 1, sender=trader)  # 1 micro-dollar short of IM
    fund(s, maker, 100_000)
    eq, p_im, p_mm, allowed, code = s.views.trade_preview(trader, fut, WAD, SPOT)
    assert (p_im, p_mm, allowed, code) == (im, FUT_MM, False, 3)
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    s.engine.deposit(s.usdc, 1, sender=trader)
    eq, p_im, p_mm, allowed, code = s.views.trade_preview(trader, fut, WAD, SPOT)
    assert allowed and code == 0
    s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    assert s.engine.account_state(trader)[:3] == (eq, p_im, p_mm)
    # the seller side is checked too
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(maker, trader, s.instruments["eth-fut"], WAD, SPOTS[ETH], sender=s.venue)


def _underwater_long(s, trader, maker, fut):
    """trader: long 2 futures, then the price falls so that equity < IM (but > 0)."""
    fund(s, trader, 25_000)
    fund(s, maker, 1_000_000)
    s.engine.trade(trader, maker, fut, 2 * WAD, SPOT, sender=s.venue)
    new = SPOT * 95 // 100
    s.post([(BTC, new, PSR)], [s.future_item(fut, new)])
    eq, im, mm = s.engine.account_state(trader)[:3]
    assert mm < eq < im
    return new


def test_risk_reducing_trade_allowed_below_im(market, trader, maker, fut):
    s = market
    new = _underwater_long(s, trader, maker, fut)
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(trader, maker, fut, WAD, new, sender=s.venue)
    # a reduction that lowers equity (sold far below mark) is not risk-reducing
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(maker, trader, fut, WAD // 10, new - 2_000 * WAD, sender=s.venue)
    eq0, _, mm0 = s.engine.account_state(trader)[:3]
    assert s.views.trade_preview(trader, fut, -WAD, new)[3]
    s.engine.trade(maker, trader, fut, WAD, new, sender=s.venue)  # trader sells 1 at mark
    eq1, _, mm1 = s.engine.account_state(trader)[:3]
    assert mm1 < mm0 and eq1 >= eq0


def test_closing_a_short_at_mark_is_risk_reducing_despite_rounding(market, trader, maker, fut):
    """The buyer pays ceil(q * p) but its position value rises by floor: closing at exactly the
    mark can cost 1 wei of equity, which the rule tolerates (docs/contracts.md, trade rule)."""
    s = market
    fund(s, trader, 25_000)
    fund(s, maker, 1_000_000)
    s.engine.trade(maker, trader, fut, 2 * WAD, SPOT, sender=s.venue)  # trader short 2
    new = SPOT * 101 // 100 + 1  # a mark that is not a whole number of WAD
    s.post([(BTC, new, PSR)], [s.future_item(fut, new)])
    eq0, im0, mm0 = s.engine.account_state(trader)[:3]
    assert mm0 < eq0 < im0
    # small enough to stay under IM; q * mark / WAD is not a whole number: the buyer rounds up
    q = WAD // 300
    s.engine.trade(trader, maker, fut, q, new, sender=s.venue)
    eq1, im1, mm1 = s.engine.account_state(trader)[:3]
    assert mm1 < mm0 and eq1 == eq0 - 1 and eq1 < im1
    # more than the 1-wei tolerance is not risk-reducing
    with ape.reverts("engine: below initial margin"):
        s.engine.trade(trader, maker, fut, q, new + WAD, sender=s.venue)


def test_pause_blocks_new_risk_only(market, trader, maker, outsider, guardian, admin, fut):
    s = market
    new = _underwater_long(s, trader, maker, fut)
    fund(s, outsider, 10)
    with ape.reverts("roles: not guardian"):
        s.engine_admin.pause(sender=outsider)
    tx = s.engine_admin.pause(sender=guardian)
    assert tx.events.filter(s.engine_admin.PauseSet)[0].paused
    s.engine_admin.authorise_venue(s.venue, True, sender=outsider)
    with ape.reverts("engine: paused"):
        s.engine.trade(maker, outsider, fut, WAD // 10, new, sender=s.venue)
    with ape.reverts("engine: paused"):
        s.engine.withdraw(s.usdc, USD, sender=maker)  # maker has positions
    s.engine.deposit(s.usdc, USD, sender=maker)  # deposits stay open
    s.engine.withdraw(s.usdc, 10 * USD, sender=outsider)  # no positions: stays open
    s.engine.trade(maker, trader, fut, WAD, new, sender=s.venue)  # risk-reducing for both
    with ape.reverts("roles: not admin"):
        s.engine_admin.unpause(sender=guardian)
    s.engine_admin.unpause(sender=admin)
    assert not s.engine.paused()


def test_stale_oracle_blocks_new_risk_only(market, trader, maker, outsider, fut):
    s = market
    fund(s, trader, 200_000)
    fund(s, maker, 100_000)
    fund(s, outsider, 10)
    s.engine.trade(trader, maker, fut, 2 * WAD, SPOT, sender=s.venue)
    s.sleep(s.oracle.max_age() + 1)
    assert not s.engine.account_state(trader).fresh
    assert s.views.trade_preview(trader, fut, WAD, SPOT)[4] == 2
    with ape.reverts("engine: stale oracle"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    with ape.reverts("engine: stale oracle"):
        s.engine.withdraw(s.usdc, USD, sender=trader)
    s.engine.trade(maker, trader, fut, WAD, SPOT, sender=s.venue)  # reduces both sides
    s.engine.withdraw(s.usdc, 10 * USD, sender=outsider)


def test_opening_a_position_in_a_stale_instrument_is_refused_as_stale(market, trader, maker, fut):
    # with ample margin on both sides, the reason is the stale data, not the margin
    s = market
    fund(s, trader, 200_000)
    fund(s, maker, 200_000)
    s.sleep(s.oracle.max_age() + 1)
    assert s.views.trade_preview(trader, fut, WAD, SPOT)[4] == 2
    with ape.reverts("engine: stale oracle"):
        s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)


def test_withdraw_is_margin_checked(market, trader, maker, fut):
    s = market
    fund(s, trader, 20_000)
    fund(s, maker, 100_000)
    s.engine.trade(maker, trader, fut, WAD, SPOT, sender=s.venue)  # trader short: cash 80k
    eq, im, _ = s.engine.account_state(trader)[:3]
    free = (eq - im) // 10**12
    assert s.views.withdraw_preview(trader, s.usdc, free)[3]
    pv = s.views.withdraw_preview(trader, s.usdc, free + 1)
    assert not pv[3] and pv[4] == 3
    with ape.reverts("engine: below initial margin"):
        s.engine.withdraw(s.usdc, free + 1, sender=trader)
    s.engine.withdraw(s.usdc, free, sender=trader)
    assert s.engine.account_state(trader)[:2] == (pv[0] + 10**12, pv[1])


def test_collateral_counts_and_debt_blocks_free_exit(market, trader, maker, fut):
    s = market
    s.engine.deposit(s.weth, 10 * WAD, sender=trader)  # 30,000 USD at 20% haircut = 24,000
    fund(s, maker, 100_000)
    assert s.engine.account_state(trader)[0] == 24_000 * WAD
    s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    assert s.engine.cash(trader) == -SPOT  # negative cash backed by margin
    with ape.reverts("engine: below initial margin"):
        s.engine.withdraw(s.weth, 5 * WAD, sender=trader)
    s.engine.trade(maker, trader, fut, WAD, SPOT - 1_000 * WAD, sender=s.venue)  # closes at a loss
    assert s.engine.positions_of(trader) == ([], [])
    assert s.engine.cash(trader) == -1_000 * WAD
    # no positions but a debt: withdrawing collateral is margin-checked (equity >= 0)
    with ape.reverts("engine: below initial margin"):
        s.engine.withdraw(s.weth, 10 * WAD, sender=trader)
    s.engine.withdraw(s.weth, 9 * WAD, sender=trader)
    with ape.reverts("vault: insufficient balance"):
        s.engine.withdraw(s.usdc, 1, sender=trader)


def test_insufficient_holdings(market, trader, maker, fut):
    """Cash owed to an account beyond the stablecoin the vault holds does not leave: a short
    sold 5,000 USD above the mark is owed that much once its variation margin is realised."""
    s = market
    s.engine.deposit(s.weth, 100 * WAD, sender=trader)
    s.engine.deposit(s.weth, 100 * WAD, sender=maker)
    fund(s, maker, 1_000)
    s.engine.trade(maker, trader, fut, WAD, SPOT + 5_000 * WAD, sender=s.venue)
    with ape.reverts("vault: insufficient holdings"):
        s.engine.withdraw(s.usdc, 5_000 * USD, sender=trader)


def test_open_interest_cap_and_position_limit(
    market, trader, maker, admin, outsider, guardian, fut
):
    s = market
    fund(s, trader, 1_000_000)
    fund(s, maker, 1_000_000)
    with ape.reverts("roles: not admin"):
        s.engine_admin.set_instrument_limits(fut, WAD, WAD, sender=outsider)
    with ape.reverts("engine: unknown instrument"):
        s.engine_admin.set_instrument_limits(fut + 999, WAD, WAD, sender=admin)
    with ape.reverts("engine: limit out of bounds"):
        s.engine_admin.set_instrument_limits(fut, 10**33 + 1, WAD, sender=admin)
    with ape.reverts("engine: limit out of bounds"):
        s.engine_admin.set_instrument_limits(fut, WAD, 2 * WAD, sender=admin)
    tx = s.engine_admin.set_instrument_limits(fut, 3 * WAD, 2 * WAD, sender=admin)
    ev = tx.events.filter(s.engine_admin.InstrumentLimitsSet)[0]
    assert (ev.instrument, ev.open_interest_cap, ev.position_limit) == (fut, 3 * WAD, 2 * WAD)
    with ape.reverts("engine: position limit"):
        s.engine.trade(trader, maker, fut, 2 * WAD + 1, SPOT, sender=s.venue)
    s.engine.trade(trader, maker, fut, 2 * WAD, SPOT, sender=s.venue)  # OI 2
    s.engine_admin.authorise_venue(s.venue, True, sender=outsider)
    s.engine_admin.authorise_venue(s.venue, True, sender=guardian)
    fund(s, outsider, 1_000_000)
    fund(s, guardian, 1_000_000)
    with ape.reverts("engine: open interest cap"):
        s.engine.trade(outsider, guardian, fut, 2 * WAD, SPOT, sender=s.venue)  # OI 4 > 3
    s.engine.trade(outsider, trader, fut, 2 * WAD, SPOT, sender=s.venue)  # OI unchanged
    assert s.engine.open_interest(fut) == 2 * WAD
    # a zero cap disables new exposure, reductions stay possible
    s.engine_admin.set_instrument_limits(fut, 0, 0, sender=admin)
    with ape.reverts("engine: position limit"):
        s.engine.trade(outsider, maker, fut, WAD, SPOT, sender=s.venue)
    s.engine.trade(maker, outsider, fut, WAD, SPOT, sender=s.venue)
    assert s.engine.open_interest(fut) == WAD


def test_too_many_positions(system, trader, maker, admin):
    s = system
    expiry = s.now() + 10 * DAY
    ids = [s.list_instrument(f"f{k}", ETH, KIND_FUTURE, 0, expiry) for k in range(33)]
    for i in ids:
        s.engine_admin.set_instrument_limits(i, 10**24, 10**23, sender=admin)
    s.post([(ETH, SPOTS[ETH], PSR)], [s.future_item(i, SPOTS[ETH]) for i in ids])
    fund(s, trader, 10_000_000)
    fund(s, maker, 10_000_000)
    for i in ids[:32]:
        s.engine.trade(trader, maker, i, WAD, SPOTS[ETH], sender=s.venue)
    assert s.engine.position_count(trader) == 32
    with ape.reverts("engine: too many positions"):
        s.engine.trade(trader, maker, ids[32], WAD, SPOTS[ETH], sender=s.venue)
    with ape.reverts("engine: too many positions"):
        s.views.trade_preview(trader, ids[32], WAD, SPOTS[ETH])
    s.engine.trade(maker, trader, ids[5], WAD, SPOTS[ETH], sender=s.venue)  # remove one
    assert s.engine.position_count(trader) == 31
    ids_now, _ = s.engine.positions_of(trader)
    assert sorted(ids_now) == sorted(ids[:5] + ids[6:32])
    s.engine.trade(trader, maker, ids[32], WAD, SPOTS[ETH], sender=s.venue)
    assert s.engine.position_count(trader) == 32


def test_settle_without_settled_positions(market, trader, outsider, maker, fut):
    s = market
    assert s.engine.settle(trader, sender=outsider).return_value == 0
    fund(s, trader, 100_000)
    fund(s, maker, 100_000)
    s.engine.trade(trader, maker, fut, WAD, SPOT, sender=s.venue)
    assert s.engine.settle(trader, sender=outsider).return_value == 0
    assert s.engine.positions_of(trader) == ([fut], [WAD])


def test_admin_setters_and_roles(market, admin, outsider, guardian):
    s = market
    with ape.reverts("roles: not admin"):
        s.engine_admin.set_im_factor(WAD, sender=outsider)
    for bad in (WAD - 1, 3 * WAD + 1):
        with ape.reverts("engine: im_factor out of bounds"):
            s.engine_admin.set_im_factor(bad, sender=admin)
    tx = s.engine_admin.set_im_factor(3 * WAD, sender=admin)
    assert tx.events.filter(s.engine_admin.ImFactorSet)[0].im_factor == 3 * WAD
    s.engine_admin.transfer_admin(outsider, sender=admin)
    s.engine_admin.accept_admin(sender=outsider)
    with ape.reverts("roles: not admin"):
        s.engine_admin.set_im_factor(WAD, sender=admin)
    s.engine_admin.revoke_role(guardian, ROLE_GUARDIAN, sender=outsider)
    with ape.reverts("roles: not guardian"):
        s.engine_admin.pause(sender=guardian)
    s.engine_admin.pause(sender=outsider)  # the admin may pause too


def test_deployed_bytecode_below_limit(chain, oracle, engine_admin, engine, views):
    contracts = (oracle, engine_admin, engine, views)
    sizes = {c: len(chain.provider.get_code(c.address)) for c in contracts}
    assert all(n < 24_576 for n in sizes.values()), sizes
    assert all(n > 0 for n in sizes.values())


def test_constructor_guards(project, admin, oracle, oracle_views, usdc):
    with ape.reverts("engine: zero oracle"):
        admin.deploy(project.MarginEngine, admin, ZERO, oracle_views, usdc, 1)
    with ape.reverts("engine: zero oracle"):
        admin.deploy(project.MarginEngine, admin, oracle, ZERO, usdc, 1)
    with ape.reverts("engine: zero admin"):
        admin.deploy(project.MarginEngine, ZERO, oracle, oracle_views, usdc, 1)
    with ape.reverts("roles: zero admin"):
        admin.deploy(project.EngineAdmin, ZERO)
    with ape.reverts("vault: zero token"):
        admin.deploy(project.MarginEngine, admin, oracle, oracle_views, ZERO, 1)
    with ape.reverts("vault: cap out of bounds"):
        admin.deploy(project.MarginEngine, admin, oracle, oracle_views, usdc, 2**128)


def test_engine_admin_binds_one_engine_once_and_only_it_configures(
    project, admin, outsider, oracle, oracle_views, usdc, engine_admin, engine
):
    assert engine.engine_admin() == engine_admin.address
    assert engine_admin.engine() == engine.address and engine_admin.oracle() == oracle.address
    with ape.reverts("engine: admin already bound"):
        engine_admin.bind(engine, sender=admin)
    fresh = admin.deploy(project.EngineAdmin, admin)
    # before `bind`, every configuration call names the missing engine
    for call, args in (
        (fresh.list_collateral, (usdc, 0, 1)),
        (fresh.set_instrument_limits, (1, 0, 0)),
        (fresh.set_im_factor, (WAD,)),
        (fresh.pause, ()),
        (fresh.unpause, ()),
        (fresh.set_liquidator, (outsider,)),
    ):
        with ape.reverts("engine: admin not bound"):
            call(*args, sender=admin)
    with ape.reverts("roles: not admin"):
        fresh.bind(engine, sender=outsider)
    with ape.reverts("engine: not administered here"):
        fresh.bind(engine, sender=admin)
    other = admin.deploy(project.MarginEngine, fresh, oracle, oracle_views, usdc, 1)
    tx = fresh.bind(other, sender=admin)
    assert tx.events.filter(fresh.ImFactorSet)[0].im_factor == 125 * WAD // 100
    # wired once and for good: only a Liquidator of this engine (an address could drain it)
    with ape.reverts("engine: wrong liquidator"):
        fresh.set_liquidator(outsider, sender=admin)
    liquidator = admin.deploy(project.Liquidator, admin, other)
    tx = fresh.set_liquidator(liquidator, sender=admin)
    assert tx.events.filter(fresh.LiquidatorSet)[0].liquidator == liquidator.address
    assert other.liquidator() == liquidator.address
    # the hooks take values from EngineAdmin only (it validates them first)
    for hook, args in (
        (engine.apply_collateral, (usdc, 0, 1, 1)),
        (engine.apply_instrument_limits, (1, 1, 1)),
        (engine.apply_risk_switches, (WAD, True)),
        (engine.apply_liquidator, (outsider,)),
    ):
        for who in (admin, outsider):
            with ape.reverts("engine: not engine admin"):
                hook(*args, sender=who)
