# ruff: noqa: F811  (pytest fixtures imported from liquidation_support by name)
"""The March 2020 BTC crash replayed on anvil: the same book and oracle data as
offchain.crash_replay, a keeper that liquidates every account below MM after each post. Every
liquidation equals the reference; every account ends healthy or liquidated; the bad debt equals
the pure-Python figure (to the wei-level rounding of the opening trades) and is covered by the
fund or socialised: fund payouts + socialised == bad debt."""

from __future__ import annotations

from contract_support import BTC, DAY, PSR, SOM_RATE
from liquidation_support import (  # noqa: F401 (fixtures)
    bystander,
    hedger,
    liq,
    liquidator,
    liquidator_account,
    lviews,
)
from test_liquidation import assert_matches, reference

from offchain.codec import KIND_CALL, KIND_FUTURE, KIND_PUT
from offchain.crash_replay import BOOK, CALL, FUT, PUT, STRIKES, observations, replay
from offchain.fixed_point import WAD, to_wad
from offchain.margin import AccountInt, account_margin_int
from offchain.oracle_bounds import CAP_PERIOD


def test_march_2020_on_chain(liq, accounts, maker, liquidator_account, bystander, chain, admin):
    s = liq.s
    # the chain fixture lists BTC with its own short-option minimum: the reference takes the same
    obs = observations(SOM_RATE / WAD)
    expiry = s.now() + 30 * DAY
    ids = {
        FUT: s.list_instrument("m20-fut", BTC, KIND_FUTURE, 0, expiry),
        PUT: s.list_instrument("m20-put", BTC, KIND_PUT, int(STRIKES[PUT]) * WAD, expiry),
        CALL: s.list_instrument("m20-call", BTC, KIND_CALL, int(STRIKES[CALL]) * WAD, expiry),
    }
    for iid in ids.values():
        s.engine_admin.set_instrument_limits(iid, 10**24, 10**23, sender=admin)

    def post(ob):
        items = [s.future_item(ids[FUT], ob.marks_wad[FUT])]
        for j in (PUT, CALL):
            items.append(s.option_item(ids[j], ob.marks_wad[j], list(ob.arrays_wad[j])))
        # a full cap period between posts, as between the replay's daily observations: the
        # oracle's per-time option caps are then at their widest
        s.sleep(CAP_PERIOD)
        s.post([(BTC, ob.spot_wad, PSR)], items, [(s.wbtc.address, ob.spot_wad)])

    # the data moves from 60,000 to 9,078: walk the spot there inside the deviation cap
    for spot in (35_000, 18_000, 9_500):
        liq.move(BTC, spot * WAD)
    post(obs[0])
    liq.deposit(maker, 10_000_000)
    liq.deposit(liquidator_account, 10_000_000)
    liq.deposit(bystander, 1_000)
    params = liq.params()
    book_accounts = {}
    for spec in BOOK:
        acct = accounts.generate_test_account()
        chain.set_balance(acct, 10**21)
        s.usdc.mint(acct, 10**9 * 10**6, sender=admin)
        s.usdc.approve(s.engine, 2**256 - 1, sender=acct)
        s.engine_admin.authorise_venue(s.venue, True, sender=acct)
        pos = {ids[j]: to_wad(q) for j, q in spec.positions.items()}
        probe = AccountInt(0, pos)
        st = account_margin_int(probe, liq.market_int(probe), params.im_factor)
        target = int(st.initial_margin * spec.margin_ratio)
        # deposit plenty and trade every leg at its mark; then bring the equity down to exactly
        # `target` (the opening of offchain.crash_replay): through the price of the last leg when
        # it is a purchase (the buyer pays more), else by withdrawing the surplus
        liq.deposit(acct, 3 * st.initial_margin // WAD + 1_000)
        legs = sorted(pos.items(), key=lambda kv: kv[1] > 0)  # a long leg last, if any
        for n, (iid, q) in enumerate(legs):
            price = s.oracle_views.risk_array(iid)[0]
            if n == len(legs) - 1 and q > 0:
                price += (liq.state(acct)[0] - target) * WAD // q
            buyer, seller = (acct, maker) if q > 0 else (maker, acct)
            s.engine.trade(buyer, seller, iid, abs(q), price, sender=s.venue)
        if legs[-1][1] < 0:
            s.engine.withdraw(s.usdc, (liq.state(acct)[0] - target) // 10**12, sender=acct)
        eq, im, _mm, _ = liq.state(acct)
        assert 0 <= eq - target <= 10**12 and eq >= im
        book_accounts[spec.name] = acct

    for ob in obs[1:]:
        post(ob)
        for spec in BOOK:
            acct = book_accounts[spec.name]
            eq, _im, mm, _p = liq.state(acct)
            if s.engine.position_count(acct) == 0 or eq >= mm:
                continue
            _, _, r = reference(liq, acct, liquidator_account)
            liq.liquidator.liquidate(acct, sender=liquidator_account)
            assert_matches(liq, acct, liquidator_account, r)
            liq.check_bad_debt_split()

    pure = replay(som_rate=SOM_RATE / WAD)
    lq = liq.liquidator
    for spec in BOOK:
        acct = book_accounts[spec.name]
        eq, _im, mm, _p = liq.state(acct)
        liquidated = s.engine.position_count(acct) == 0
        assert liquidated or eq >= mm
        assert (pure.outcome[spec.name] == "liquidated") == liquidated
    assert lq.fund_payouts() + lq.socialised() == lq.bad_debt()
    # the opening equities differ from the pure replay's by < 1e-6 USD (token units)
    assert abs(lq.bad_debt() - pure.bad_debt) <= 10**14
    assert abs(lq.socialised() - pure.socialised) <= 10**14
    # the bystander (no positions) never paid anything
    assert lq.pending_charge(bystander) == 0 and s.engine.cash(bystander) == 1_000 * WAD
