# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""A liquidation takes linked collateral with the positions in the same proportion
(docs/fixed-point.md §8.2): WETH linked to ETH is a spot leg of ETH's scan, so cutting the short
future (or the short options) it hedges without it would leave the account more exposed than it
was. On-chain == reference to the wei; the remaining book loses no more in any scan scenario than
the book before; an unlinked asset (or a linked one without a leg) stays with the account in a
partial liquidation, as before."""

from __future__ import annotations

import pytest
from contract_support import BTC, ETH, SPOTS
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

from offchain.fixed_point import WAD, div_ceil
from offchain.margin import AccountInt, MarketInt, account_margin_int, collateral_legs

WETH_UNITS = 10 * WAD
SIZE = 10 * WAD
BTC_SIZE = WAD
# the book each scenario writes against its 10 WETH: (instrument, price), plus a short BTC
# future whose rise makes the account liquidatable
BOOKS = {
    "weth_hedged_by_short_future": ("eth-fut", SPOTS[ETH]),
    "weth_under_short_calls": ("eth-call", SPOTS[ETH] // 20),
    "weth_under_short_puts": ("eth-put", SPOTS[ETH] // 20),
}


@pytest.fixture(scope="module")
def linked(liq, admin):
    """`liq` with WETH linked to ETH (Ape's isolation unlinks it after the module)."""
    liq.s.engine_admin.link_collateral(liq.s.weth, ETH, sender=admin)
    liq.move(ETH, SPOTS[ETH])
    return liq


def _book(liq, trader, maker, liquidator_account, name: str, slack_usd: int = 100):
    """`trader`: 10 WETH, short 10 of the scenario's ETH instrument, short 1 BTC future; its
    cash (then WETH) withdrawn to `slack_usd` above IM. The liquidator and the maker are
    funded."""
    s = liq.s
    instrument, price = BOOKS[name]
    liq.deposit(maker, 10_000_000)
    liq.deposit(liquidator_account, 1_000_000)
    s.engine.deposit(s.weth, WETH_UNITS, sender=trader)
    liq.deposit(trader, 200_000)
    liq.trade(maker, trader, instrument, SIZE, price)
    liq.trade(maker, trader, "btc-fut", BTC_SIZE, SPOTS[BTC])
    _withdraw_to_slack(s, trader, maker, slack_usd)


def _withdraw_to_slack(s, trader, maker, slack_usd: int) -> None:
    """Bring `trader` to `slack_usd` above IM: withdraw its stablecoin, and if a short future's
    notional kept the excess out of reach (settled first, it is not cash), give the rest away
    in a round trip of its BTC future (bought back above the mark, sold again at it): equity
    falls, positions and collateral stay."""
    e = s.engine
    e.settle(trader, sender=trader)
    eq, im = e.account_state(trader)[:2]
    excess = eq - im - slack_usd * WAD
    usd = min(excess // 10**12, e.cash(trader) // 10**12)
    if usd > 0:
        e.withdraw(s.usdc, usd, sender=trader)
        excess -= usd * 10**12
    if excess > 0:
        fut = s.instruments["btc-fut"]
        ids, sizes = e.positions_of(trader)
        q = -dict(zip(ids, sizes, strict=True))[fut]
        mark = s.oracle.instrument_word(fut, 0) >> 160
        e.trade(trader, maker, fut, q, mark + excess * WAD // q, sender=s.venue)
        e.trade(maker, trader, fut, q, mark, sender=s.venue)


def _losses(acct: AccountInt, market: MarketInt, u: int) -> list[int]:
    """Loss (WAD, positive a loss) of `acct` in each scan scenario of underlying `u`: its
    positions on `u` plus the spot legs of its linked collateral (§5, §5.1), before rounding."""
    legs = [
        (market.instruments[j], q)
        for j, q in acct.positions.items()
        if q != 0 and market.instruments[j].underlying == u
    ]
    if legs:
        legs += collateral_legs(acct.collateral, market, {u}).get(u, [])
    acc = [0] * market.underlyings[u].n_scenarios
    for ins, q in legs:
        acc = [a + q * d for a, d in zip(acc, ins.decoded, strict=True)]
    return [-(a // WAD) for a in acc]


def _tolerance(acct: AccountInt, market: MarketInt) -> int:
    """Rounding of the sizes taken (one wei of size each, away from zero): one wei of size
    moves a scenario's loss by at most its largest array entry / WAD."""
    return sum(div_ceil(market.instruments[j]._max_abs, WAD) + 1 for j in acct.positions) + 2


@pytest.mark.parametrize("btc_spot", [64_000, 75_000], ids=["partial", "full"])
def test_liquidation_takes_linked_collateral_in_proportion_to_positions(
    linked, trader, maker, liquidator_account, btc_spot
):
    """WETH hedged by a short ETH future: f of the future and f of the WETH go to the
    liquidator (all of both when f = 1), paid at the price less min(discount, haircut); chain,
    preview and reference agree to the wei."""
    liq, s = linked, linked.s
    liq.top_up_fund(100_000)
    _book(liq, trader, maker, liquidator_account, "weth_hedged_by_short_future")
    liq.move(BTC, btc_spot * WAD)
    weth_liquidator = s.engine.collateral(s.weth, liquidator_account)
    preview = liq.views.liquidation_preview(trader)
    _a, _l, r = reference(liq, trader, liquidator_account)
    assert (r.fraction < WAD) == (btc_spot == 64_000)
    units = min(WETH_UNITS, div_ceil(WETH_UNITS * r.fraction, WAD))
    weth = s.engine.asset_index(s.weth) - 1
    assert r.collateral_sold[weth] == units
    tx = liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert tx.return_value == r.fraction
    assert_matches(liq, trader, liquidator_account, r)
    assert preview.fraction == r.fraction and preview.collateral_paid == r.collateral_paid
    assert r.collateral_sold == {weth: units}
    assert list(preview.collateral_sold) == [units]  # the trader holds WETH only
    # the WETH moved to the liquidator, the hedge intact: as much WETH left as short futures
    assert s.engine.collateral(s.weth, liquidator_account) == weth_liquidator + units
    assert s.engine.collateral(s.weth, trader) == WETH_UNITS - units
    left = liq.account(trader).positions.get(s.instruments["eth-fut"], 0)
    assert -left == WETH_UNITS - units
    sold = [e for e in tx.events if e.event_name == "CollateralSold"]
    assert [(e.asset, e.amount) for e in sold][:1] == [(s.weth.address, units)]
    price = SPOTS[ETH]
    d = min(liq.liquidator.collateral_discount(), s.engine.asset_haircut(s.weth))
    assert sold[0].paid == units * price // WAD * (WAD - d) // WAD


@pytest.mark.parametrize("name", sorted(BOOKS))
def test_liquidation_never_leaves_the_account_more_exposed(
    linked, trader, maker, liquidator_account, name
):
    """In every scan scenario of every underlying, the remaining book loses no more than the
    book before (up to the rounding of the sizes taken), and its scan risk is not larger. Had
    the WETH stayed whole under the future or the calls it hedges, ETH's scan would have grown
    (under short puts it adds to the risk: keeping it is no hedge to cut)."""
    liq, s = linked, linked.s
    _book(liq, trader, maker, liquidator_account, name)
    liq.move(BTC, 64_000 * WAD)
    before = liq.account(trader)
    market = liq.market_int(before)
    m0 = account_margin_int(before, market, s.engine.im_factor())
    liq.liquidator.liquidate(trader, sender=liquidator_account)
    after = liq.account(trader)
    m1 = account_margin_int(after, market, s.engine.im_factor())
    assert 0 < -after.positions[s.instruments["btc-fut"]] < BTC_SIZE, "a partial liquidation"
    tol = _tolerance(before, market)
    for u in (BTC, ETH):
        for lost_before, lost_after in zip(
            _losses(before, market, u), _losses(after, market, u), strict=True
        ):
            assert max(lost_after, 0) <= max(lost_before, 0) + tol
        assert m1.per_underlying[u].risk <= m0.per_underlying[u].risk + tol
    if name != "weth_under_short_puts":
        # where the WETH hedges: cutting the positions but keeping it whole (the rule before
        # this one) would have left ETH's worst scenario worse than before
        kept = AccountInt(after.cash, after.positions, before.collateral)
        worst_kept = max(_losses(kept, market, ETH))
        assert worst_kept > max(max(_losses(before, market, ETH)), 0) + tol


def test_unlinked_collateral_stays_in_a_partial_liquidation(
    linked, trader, maker, liquidator_account
):
    """WBTC (not linked) and WETH without an ETH position (no leg) under a short BTC future: a
    partial liquidation takes positions only, as before; chain == reference."""
    liq, s = linked, linked.s
    liq.deposit(maker, 10_000_000)
    liq.deposit(liquidator_account, 1_000_000)
    s.engine.deposit(s.weth, WAD, sender=trader)
    s.engine.deposit(s.wbtc, 10**7, sender=trader)  # 0.1 WBTC
    liq.deposit(trader, 100_000)
    liq.trade(maker, trader, "btc-fut", WAD, SPOTS[BTC])
    _withdraw_to_slack(s, trader, maker, 100)
    liq.move(BTC, 64_000 * WAD)
    held = (s.engine.collateral(s.weth, trader), s.engine.collateral(s.wbtc, trader))
    preview = liq.views.liquidation_preview(trader)
    _a, _l, r = reference(liq, trader, liquidator_account)
    assert 0 < r.fraction < WAD and r.collateral_sold == {} and r.collateral_paid == 0
    tx = liq.liquidator.liquidate(trader, sender=liquidator_account)
    assert_matches(liq, trader, liquidator_account, r)
    assert not [e for e in tx.events if e.event_name == "CollateralSold"]
    assert set(preview.collateral_sold) <= {0} and preview.collateral_paid == 0
    assert (s.engine.collateral(s.weth, trader), s.engine.collateral(s.wbtc, trader)) == held
