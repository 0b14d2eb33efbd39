# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""The escape hatch on anvil: when the keeper stops posting for longer than the escape delay,
anyone winds the system down; every position then settles at its last mark (or its settlement
price), insolvent accounts are liquidated on the last data, and every account takes out what it
is owed, to the wei the vault keeps from rounding."""

from __future__ import annotations

import ape
from contract_support import BTC, DAY, ETH, SPAN, USD
from liquidation_support import (  # noqa: F401 (fixtures)
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)

from offchain.codec import id_fields
from offchain.fixed_point import WAD
from offchain.margin import settlement_cash
from offchain.sdk.client import CLOCK_STEP

WOUND_DOWN_MAX_AGE = 2**40 - 1
ESCAPE_DELAY = 3 * DAY  # the oracle's default
E_SETTLED = 255
TOKEN = 10**12  # WAD per stablecoin unit (6 decimals)


def go_silent(s, seconds: int) -> None:
    """Let `seconds` pass since the last post the clock recorded, plus the hour by which the
    record may trail the last post (the keeper is dead)."""
    s.sleep(s.client().escape_hatch().last_post + CLOCK_STEP + seconds - s.now())


def test_wind_down_before_the_escape_delay_reverts(market, outsider):
    s = market
    hatch = s.client().escape_hatch()
    assert hatch.escape_delay == ESCAPE_DELAY and not hatch.wound_down
    assert hatch.opens_at == hatch.last_post + ESCAPE_DELAY + CLOCK_STEP + 1
    go_silent(s, ESCAPE_DELAY - 60)  # (anvil's clock moves on between blocks)
    with ape.reverts("oracle: escape delay not over"):
        s.oracle.wind_down(sender=outsider)
    # a post (any batch) restarts the clock
    s.post([(BTC, s.oracle.underlying_state(BTC)[0], s.oracle.underlying_state(BTC)[1])])
    go_silent(s, ESCAPE_DELAY - 60)
    with ape.reverts("oracle: escape delay not over"):
        s.oracle.wind_down(sender=outsider)
    assert not s.oracle.wound_down()


def test_the_hatch_never_opens_before_the_delay_after_the_last_post(market, outsider):
    # The clock records a post only once the recorded one is an hour old (a storage write
    # saved per batch): a post 59 minutes after the record leaves it, and the hatch still
    # opens no earlier than the escape delay after that later post.
    s = market
    recorded = s.client().escape_hatch().last_post
    s.sleep(recorded + CLOCK_STEP - 60 - s.now())
    s.post([(BTC, s.oracle.underlying_state(BTC)[0], s.oracle.underlying_state(BTC)[1])])
    last_post = s.chain.blocks.head.timestamp
    hatch = s.client().escape_hatch()
    assert hatch.last_post == recorded < last_post
    assert hatch.opens_at > last_post + ESCAPE_DELAY
    s.sleep(hatch.opens_at - 60 - s.now())  # (anvil's clock moves on between blocks)
    with ape.reverts("oracle: escape delay not over"):
        s.oracle.wind_down(sender=outsider)
    s.chain.mine(timestamp=hatch.opens_at)
    s.oracle.wind_down(sender=outsider)
    assert s.client().escape_hatch().wound_down


def test_a_fresh_deployment_cannot_be_wound_down_before_its_first_post(
    project, admin, usdc, outsider, chain
):
    from offchain.sdk import deploy_core

    core = deploy_core(project, admin, usdc, 10**20)
    chain.pending_timestamp = chain.blocks.head.timestamp + 31 * DAY
    chain.mine()
    with ape.reverts("oracle: escape delay not over"):
        core.oracle.wind_down(sender=outsider)


def test_a_second_wind_down_reverts(market, outsider, admin):
    s = market
    go_silent(s, ESCAPE_DELAY + 1)
    tx = s.oracle.wind_down(sender=outsider)
    event = tx.events.filter(s.oracle.WoundDown)[0]
    assert event.caller == outsider.address
    assert event.last_post == s.client().escape_hatch().last_post
    assert s.oracle.wound_down() and s.client().escape_hatch().opens_at is None
    with ape.reverts("oracle: wound down"):
        s.oracle.wind_down(sender=admin)


def test_after_wind_down_nothing_new_can_be_posted_listed_or_traded(
    market, outsider, trader, maker
):
    s = market
    iid = s.instruments["btc-fut"]
    go_silent(s, ESCAPE_DELAY + 1)
    s.oracle.wind_down(sender=outsider)
    spot, psr, _ = s.oracle.underlying_state(BTC)
    with ape.reverts("oracle: wound down"):
        s.post([(BTC, spot, psr)], [s.future_item(iid, spot)])
    with ape.reverts("oracle: wound down"):
        s.oracle.list_instrument(BTC, 0, 0, s.now() + 10 * DAY, WAD, sender=s.admin)
    with ape.reverts("oracle: wound down"):
        s.oracle.list_underlying(99, 1, WAD // 100, WAD, 0, WAD // 10, WAD, 0, 0, sender=s.admin)
    with ape.reverts("oracle: wound down"):
        s.oracle.list_asset(outsider, WAD // 10, sender=s.admin)
    s.sleep(id_fields(iid)[3] - s.now() + 1)
    with ape.reverts("oracle: wound down"):
        s.oracle.settle_expired(iid, sender=outsider)
    s.engine.deposit(s.usdc, 100_000 * USD, sender=trader)
    s.engine.deposit(s.usdc, 100_000 * USD, sender=maker)
    with ape.reverts("engine: wound down"):
        s.engine.trade(trader, maker, s.instruments["eth-call"], WAD, WAD, sender=s.venue)


def test_the_escape_delay_is_bounded_and_set_by_the_admin_only(market, admin, outsider):
    s = market
    with ape.reverts("roles: not admin"):
        s.oracle.set_escape_delay(2 * DAY, sender=outsider)
    for bad in (DAY - 1, 30 * DAY + 1, 0):
        with ape.reverts("oracle: delay out of bounds"):
            s.oracle.set_escape_delay(bad, sender=admin)
    max_age = s.oracle.max_age()
    for ok in (DAY, 30 * DAY):
        tx = s.oracle.set_escape_delay(ok, sender=admin)
        assert tx.events.filter(s.oracle.EscapeDelaySet)[0].escape_delay == ok
        assert s.client().escape_hatch().escape_delay == ok
    # the fields packed beside it keep their values
    assert s.oracle.max_age() == max_age
    s.oracle.set_max_age(600, sender=admin)
    assert s.client().escape_hatch().escape_delay == 30 * DAY and s.oracle.max_age() == 600


def test_wound_down_views_report_every_instrument_settled_at_its_last_mark(market, outsider):
    s = market
    ids = [
        s.instruments[f"{t}-{k}"] for t in ("btc", "eth", "span") for k in ("fut", "call", "put")
    ]
    never_posted = s.list_instrument("eth-fut-2", ETH, 0, 0, s.now() + 40 * DAY)
    before = {i: s.oracle_views.risk_array(i) for i in ids}
    go_silent(s, ESCAPE_DELAY + 1)
    s.oracle.wind_down(sender=outsider)
    words, uwords, awords, max_age = s.oracle.snapshot(
        [*ids, never_posted], [BTC, ETH, SPAN], [s.weth.address]
    )
    assert max_age == WOUND_DOWN_MAX_AGE
    for i, w in zip(ids, words, strict=False):
        mark, _e, ts, _entries = before[i]
        assert w[0] == (mark << 160) | (E_SETTLED << 152) | (ts << 112) and w[1] == w[2] == 0
        assert s.oracle_views.risk_array(i) == (mark, E_SETTLED, ts, [])
        assert s.oracle_views.instrument_age(i) == (0, False)
    assert words[-1][0] == E_SETTLED << 152  # never posted: settled at 0 (no one holds it)
    assert (
        s.oracle_views.underlying_age(BTC)[1] is False
        and s.oracle_views.asset_age(s.weth)[1] is False
    )
    market_int = s.client().market_int([*ids, never_posted])
    assert market_int.settled == {
        **{i: before[i][0] for i in ids},
        never_posted: 0,
    }
    assert not market_int.market.instruments


def test_a_dead_keeper_cannot_trap_funds(
    liq, trader, maker, hedger, bystander, liquidator_account, outsider
):
    """The drill: a live book (futures, options, a settled short-dated future, WETH and WBTC
    collateral, an account that ends insolvent), the keeper stops, no one can trade, withdraw
    or liquidate on stale data; after the escape delay an outsider winds down, the insolvent
    account is liquidated on the last prices, every account settles and takes everything out,
    and the vault's tokens are exactly what is left: the fund's cash and the rounding it keeps."""
    s = liq.s
    lq = liq.liquidator
    c = s.client(lq)
    accounts = (trader, maker, hedger, bystander, liquidator_account)
    units0 = {(a, t): t.balanceOf(a) for a in accounts for t in (s.usdc, s.weth, s.wbtc)}
    vault0 = {t: t.balanceOf(s.engine) for t in (s.usdc, s.weth, s.wbtc)}
    short = s.list_instrument("btc-fut-1d", BTC, 0, 0, s.now() + DAY)
    s.engine_admin.set_instrument_limits(short, 10**24, 10**23, sender=s.admin)
    liq.refresh()
    s.post([(BTC, *s.oracle.underlying_state(BTC)[:2])], [s.future_item(short, 60_000 * WAD)])
    liq.deposit(trader, 300_000)
    s.engine.deposit(s.wbtc, 2 * 10**8, sender=trader)
    liq.deposit(maker, 2_000_000)
    s.engine.deposit(s.weth, 50 * WAD, sender=maker)
    liq.deposit(hedger, 2_000)
    s.engine.deposit(s.weth, 3 * WAD, sender=hedger)
    liq.deposit(bystander, 5_000)
    liq.deposit(liquidator_account, 1_000_000)
    liq.top_up_fund(10_000)
    liq.trade(trader, maker, "btc-call", 2 * WAD, 3_000 * WAD)
    liq.trade(maker, trader, "eth-put", 5 * WAD // 3, 150 * WAD)
    liq.trade(maker, trader, "btc-fut", WAD // 3, 60_000 * WAD)
    liq.trade(trader, maker, "btc-fut-1d", WAD, 60_000 * WAD)
    liq.trade(hedger, maker, "eth-fut", 10 * WAD, 3_000 * WAD)
    # the short-dated future expires and is settled while the keeper is alive
    s.sleep(DAY + 1)
    liq.refresh()
    s.oracle.settle_expired(short, sender=s.keeper)  # at the TWAP of the spots posted
    # ETH falls 40 % in capped steps: the hedger's equity ends below zero; then the keeper dies
    for spot in (2_700, 2_430, 2_190, 1_970, 1_800):
        liq.move(ETH, spot * WAD - 7)  # (marks off whole dollars: settlement rounds)
    assert c.account_state(hedger).equity < 0
    go_silent(s, ESCAPE_DELAY - 60)
    # trapped: stale data blocks the liquidation and any margin-checked withdrawal
    with ape.reverts("liquidation: stale oracle"):
        lq.liquidate(hedger, sender=liquidator_account)
    with ape.reverts():
        s.engine.withdraw(s.usdc, USD, sender=trader)
    with ape.reverts("oracle: escape delay not over"):
        c.wind_down(outsider)
    s.sleep(61)
    c.wind_down(outsider)
    assert c.wound_down()
    # every book is valued at its last marks with no margin left, on-chain as off-chain
    market = c.market_int()
    for a in accounts:
        st = c.account_state(a)
        ref = market.account_margin(c.account_int(a, market))
        assert (st.equity, st.maintenance_margin, st.initial_margin) == (
            ref.equity,
            ref.maintenance_margin,
            ref.initial_margin,
        )
        assert st.maintenance_margin == 0 and st.fresh
    # the insolvent account is liquidated first, on the last prices
    assert c.account_state(hedger).equity < 0
    lq.liquidate(hedger, sender=liquidator_account)
    assert c.account_state(hedger).equity >= 0
    # everyone settles (anyone may call it) and takes everything out; settlement floors both
    # sides of a position, so the vault keeps what the floors leave
    market = c.market_int()
    expected_kept = -sum(
        settlement_cash(q, market.settled[j]) for a in accounts for j, q in c.positions(a).items()
    )
    paid = {}
    for a in accounts:
        s.engine.settle(a, sender=outsider)
        assert s.engine.position_count(a) == 0
        for token in (s.weth, s.wbtc):
            held = s.engine.collateral(token, a)
            if held:
                s.engine.withdraw(token, held, sender=a)
        cash = s.engine.cash(a)
        assert cash >= 0
        if cash >= TOKEN:
            s.engine.withdraw(s.usdc, cash // TOKEN, sender=a)
        assert 0 <= s.engine.cash(a) < TOKEN
        paid[a] = {t: t.balanceOf(a) - units0[(a, t)] for t in (s.usdc, s.weth, s.wbtc)}
    # nothing is left but the fund's cash, each account's dust below one token unit and the
    # settlement floors, to the wei
    assert s.weth.balanceOf(s.engine) == vault0[s.weth]
    assert s.wbtc.balanceOf(s.engine) == vault0[s.wbtc]
    left = s.usdc.balanceOf(s.engine) - vault0[s.usdc]
    dust = sum(s.engine.cash(a) for a in accounts)
    kept = left * TOKEN - dust - lq.insurance_fund()
    assert kept == expected_kept > 0
    # the bystander, who only deposited, gets every unit back; the liquidator bought WETH
    assert paid[bystander] == {s.usdc: 0, s.weth: 0, s.wbtc: 0}
    assert paid[liquidator_account][s.weth] > 0 and paid[hedger][s.weth] == -3 * WAD
