# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""Gap-move drain: one owner holds a long BTC future in account X and the matching short in
account Y (a self-matched trade, each funded at IM + 1 USD). When the price gaps past X's MM
in one post, a third party liquidates X, the insurance fund pays X's deficit and Y keeps the
gain: the owner nets the fund's payment. Two rules bound it (docs/liquidation.md, "Gap losses
and the fund"):

- the gap rate: one post moves a spot or a future's mark by at most min(max_deviation,
  0.75 * psr) per CAP_PERIOD, less than the scan range that margined the books, so a book at
  MM is still solvent after one post and a liquidation between posts leaves no deficit;
- the fund share: when nobody liquidates between capped posts and X ends insolvent, the fund
  pays at most fund_share * D while opposite open interest exists, the rest is socialised at
  once over it, i.e. over Y: at fund_share 0 the owner nets nothing from the fund.

The owner's net is X's and Y's equity (pending charges deducted) after, minus right after the
trade. `python -m bench.gap_drain` prints the table of the net by fund and position size."""

from __future__ import annotations

import ape
import pytest
from contract_support import BTC, PSR, SPOTS
from liquidation_support import (  # noqa: F401 (fixtures)
    BIG,
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)
from test_liquidation import assert_matches, reference

from offchain.fixed_point import WAD
from offchain.margin import AccountInt, account_margin_int
from offchain.oracle_bounds import CAP_PERIOD, gap_rate, price_cap

F60K = SPOTS[BTC]
GAP = 30  # percent: beyond X's MM (16 % scan range at IM + 1 USD), within max_deviation


def open_pair(liq, x, y, third, size: int, fund_usd: int) -> int:
    """X buys `size` BTC futures from Y at the mark, each funded at IM + 1 USD; the fund holds
    `fund_usd`; the third party is funded to take X over. Returns the owner's equity."""
    iid = liq.s.instruments["btc-fut"]
    book = AccountInt(0, {iid: size})
    im = account_margin_int(book, liq.market_int(book), liq.s.engine.im_factor()).initial_margin
    for acct in (x, y):
        liq.deposit(acct, im // WAD + 2)
    liq.deposit(third, BIG // 10**6 // 10)
    if fund_usd:
        liq.top_up_fund(fund_usd)
    liq.trade(x, y, "btc-fut", size, F60K)
    return owner_equity(liq, x, y)


def owner_equity(liq, x, y) -> int:
    return liq.state(x)[0] + liq.state(y)[0]


def capped_step(liq, target: int) -> int:
    """The next BTC spot toward `target` that one post allows after a full CAP_PERIOD."""
    spot = liq.s.oracle.underlying_state(BTC)[0]
    cap = price_cap(
        spot, gap_rate(liq.s.oracle.underlying_params(BTC).max_deviation, PSR), CAP_PERIOD
    )
    return max(target, spot - cap)


def test_one_post_cannot_gap_past_the_scan_range(liq, bystander, hedger, liquidator_account):
    """A 30 % gap in one post is refused even after a full CAP_PERIOD, for the spot and for the
    future's mark alone (its own cap); 12 % (0.75 of the 16 % scan range) lands."""
    s = liq.s
    open_pair(liq, bystander, hedger, liquidator_account, WAD, 0)
    fut = s.instruments["btc-fut"]
    s.sleep(CAP_PERIOD)
    with ape.reverts("oracle: spot deviation"):
        s.post([(BTC, F60K * (100 - GAP) // 100, PSR)])
    with ape.reverts("oracle: mark deviation"):
        s.post([], [s.future_item(fut, F60K * (100 - GAP) // 100)])
    with ape.reverts("oracle: mark deviation"):  # one wei beyond the gap rate
        s.post([], [s.future_item(fut, F60K * 88 // 100 - 1)])
    s.post([(BTC, F60K * 88 // 100, PSR)], [s.future_item(fut, F60K * 88 // 100)])
    assert s.oracle_views.risk_array(fut)[0] == F60K * 88 // 100


@pytest.mark.parametrize("size", [WAD, 10 * WAD])
@pytest.mark.parametrize("fund_usd", [0, 1_000_000])
def test_gap_walked_with_liquidations_between_steps_leaves_no_deficit(
    liq, bystander, hedger, liquidator_account, size, fund_usd
):
    """The 30 % gap walked in capped posts (12 %, 12 %, the rest), a third party liquidating X
    whenever it is below MM: X is never insolvent, the fund pays nothing and the owner nets
    the penalties lost (<= 0), whatever the fund and the position size."""
    lq = liq.liquidator
    fut = liq.s.instruments["btc-fut"]
    before = open_pair(liq, bystander, hedger, liquidator_account, size, fund_usd)
    fund = liq.s.engine.cash(lq)
    target = F60K * (100 - GAP) // 100
    steps = 0
    while liq.s.oracle.underlying_state(BTC)[0] > target:
        liq.move(BTC, capped_step(liq, target))
        steps += 1
        if liq.health(bystander) < 0:
            held = liq.account(bystander).positions.get(fut, 0)
            lq.liquidate(bystander, sender=liquidator_account)
            # the owner stays flat, as the attack intends: Y buys back from the liquidator
            # what it took (else the owner's net is a short's gain on a falling price)
            taken = held - liq.account(bystander).positions.get(fut, 0)
            mark = liq.s.oracle_views.risk_array(fut)[0]
            liq.trade(hedger, liquidator_account, "btc-fut", taken, mark)
    assert steps == 3
    assert lq.bad_debt() == lq.fund_payouts() == lq.socialised() == 0
    assert liq.s.engine.cash(lq) >= fund  # the fund only took its penalty share
    net = owner_equity(liq, bystander, hedger) - before
    assert net <= 0, f"owner nets {net / WAD:,.2f} USD"


@pytest.mark.parametrize("share", [WAD, WAD // 2, 0])
def test_without_liquidations_between_steps_the_fund_pays_at_most_its_share(
    liq, admin, bystander, hedger, liquidator_account, share
):
    """Nobody liquidates X while the gap is walked: it ends insolvent with deficit D. The fund
    pays min(D, fund, fund_share * D), the rest is socialised over Y's short at once, and the
    owner nets at most the fund's payment: nothing at fund_share 0. Chain == reference to the
    wei; fund_payouts + socialised == bad_debt."""
    lq = liq.liquidator
    lq.set_fund_share(share, sender=admin)
    before = open_pair(liq, bystander, hedger, liquidator_account, 10 * WAD, 1_000_000)
    target = F60K * (100 - GAP) // 100
    while liq.s.oracle.underlying_state(BTC)[0] > target:
        liq.move(BTC, capped_step(liq, target))
    _a, _l, r = reference(liq, bystander, liquidator_account)
    fund = liq.s.engine.cash(lq)
    lq.liquidate(bystander, sender=liquidator_account)
    assert_matches(liq, bystander, liquidator_account, r)
    d = lq.bad_debt()
    assert d > 0
    assert lq.fund_payouts() == min(d, fund, share * d // WAD)
    assert lq.socialised() == d - lq.fund_payouts()
    liq.check_bad_debt_split()
    net = owner_equity(liq, bystander, hedger) - before
    assert net <= lq.fund_payouts()
    if share == 0:
        assert net <= 0, f"owner nets {net / WAD:,.2f} USD"


def test_fund_share_is_bounded_and_set_by_the_admin_only(liq, admin, bystander):
    """Default 1 (the fund pays first); above 1 and a non-admin caller revert (the deployed
    admin is the Timelock: tests/test_timelock.py refuses its old admin's direct calls)."""
    lq = liq.liquidator
    assert lq.fund_share() == WAD
    with ape.reverts("liquidation: fund share > 1"):
        lq.set_fund_share(WAD + 1, sender=admin)
    with ape.reverts("roles: not admin"):
        lq.set_fund_share(0, sender=bystander)
    tx = lq.set_fund_share(WAD // 4, sender=admin)
    assert lq.fund_share() == WAD // 4
    assert [log.fund_share for log in tx.decode_logs(lq.FundShareSet)] == [WAD // 4]
