"""RiskOracle: listing, roles, posting guards (each reason string), futures arrays computed
on-chain, packing, staleness views (settlement: test_oracle_settlement.py)."""

import ape
import pytest
from contract_support import BTC, DAY, ETH, GRID_CRYPTO, MAX_DEV, PSR, SPAN, SPOTS

from offchain.codec import KIND_CALL, KIND_FUTURE, KIND_PUT, id_fields, pack_entries, unpack_entries
from offchain.fixed_point import WAD, encode_risk_array, futures_risk_array_wad
from offchain.oracle_bounds import (
    BAND_TOLERANCE,
    CAP_PERIOD,
    band,
    code_strike,
    deviation_cap,
    gap_rate,
    strike_code,
)
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ROLE_KEEPER, ROLE_VENUE


def test_listing_encodes_ids(system):
    s = system
    iid = s.list_instrument("fresh-call", BTC, KIND_CALL, SPOTS[BTC], s.now() + DAY)
    code, kind, und, expiry = id_fields(iid)
    assert (kind, und) == (KIND_CALL, BTC)
    assert code == strike_code(SPOTS[BTC]) and code_strike(code) == SPOTS[BTC]
    assert expiry > s.now()
    assert s.oracle.instrument_word(iid, 0) != 0  # listed
    assert s.oracle.instrument_info(iid).strike == SPOTS[BTC]
    assert s.oracle_views.risk_array(iid) == (0, 0, 0, [])


def test_first_post_stores_futures_array_computed_on_chain(market):
    s = market
    iid = s.instruments["btc-fut"]
    mark, e, ts, entries = s.oracle_views.risk_array(iid)
    ra = futures_risk_array_wad(SPOTS[BTC], s.grids[BTC], PSR)
    assert (e, list(entries)) == encode_risk_array(ra)
    assert mark == SPOTS[BTC]
    assert ts > 0


def test_option_array_round_trips(market):
    s = market
    iid = s.instruments["eth-put"]
    ra = s.flat_option_ra(ETH, -SPOTS[ETH] // 25)
    mark, e, ts, entries = s.oracle_views.risk_array(iid)
    assert (e, list(entries)) == encode_risk_array(ra)
    words = [s.oracle.instrument_word(iid, k) for k in range(3)]
    assert unpack_entries(words[1:], 0) == []
    assert words[0] >> 160 == mark


def test_posted_event_counts_items(market):
    s = market
    tx = s.post([(ETH, SPOTS[ETH] + WAD, PSR)])
    ev = tx.events.filter(s.oracle.Posted)[0]
    assert (ev.underlyings, ev.instruments, ev.assets) == (1, 0, 0)
    assert ev.poster == s.keeper.address


@pytest.mark.parametrize("role_holder", ["outsider", "venue"])
def test_only_keeper_posts(market, request, role_holder):
    who = request.getfixturevalue(role_holder)
    with ape.reverts("roles: not keeper"):
        market.post([(BTC, SPOTS[BTC], PSR)], sender=who)


def test_revoked_keeper_cannot_post(market, admin, keeper):
    tx = market.oracle.revoke_role(keeper, ROLE_KEEPER, sender=admin)
    assert tx.events.filter(market.oracle.RoleRevoked)[0].account == keeper.address
    with ape.reverts("roles: not keeper"):
        market.post([(BTC, SPOTS[BTC], PSR)])


def test_timestamp_guards(market):
    s = market
    s.sleep(5)
    with ape.reverts("oracle: timestamp in future"):
        s.post([(BTC, SPOTS[BTC], PSR)], timestamp=s.now() + 100)
    s.post([(BTC, SPOTS[BTC], PSR)])
    last = s.oracle.underlying_state(BTC)[2]
    # equal and older timestamps revert
    for ts in (last, last - 1):
        with ape.reverts("oracle: not newer"):
            s.post([(BTC, SPOTS[BTC], PSR)], timestamp=ts)
    iid = s.instruments["btc-fut"]
    last_i = s.oracle_views.risk_array(iid)[2]
    with ape.reverts("oracle: not newer"):
        s.post([], [s.future_item(iid, SPOTS[BTC])], timestamp=last_i)
    with ape.reverts("oracle: not newer"):
        last_a = s.oracle_views.asset_price(s.weth)[1]
        s.post([], [], [(s.weth.address, SPOTS[ETH])], timestamp=last_a)


def test_unknown_items_revert(market, outsider):
    s = market
    with ape.reverts("oracle: unknown underlying"):
        s.post([(9, WAD, PSR)])
    bogus = s.instruments["btc-fut"] + 1000
    with ape.reverts("oracle: unknown instrument"):
        s.post([], [s.future_item(bogus, WAD)])
    with ape.reverts("oracle: unknown asset"):
        s.post([], [], [(outsider.address, WAD)])


def test_price_and_psr_bounds(market):
    s = market
    with ape.reverts("oracle: bad price"):
        s.post([(BTC, 0, PSR)])
    with ape.reverts("oracle: bad price"):
        s.post([(BTC, 2**96, PSR)])
    with ape.reverts("oracle: psr out of bounds"):
        s.post([(BTC, SPOTS[BTC], WAD // 1000)])
    with ape.reverts("oracle: bad price"):
        s.post([], [s.future_item(s.instruments["btc-fut"], 0)])
    with ape.reverts("oracle: bad price"):
        s.post([], [], [(s.weth.address, 0)])


def test_deviation_caps(market):
    s = market
    spot = SPOTS[BTC]
    # a spot moves at the gap rate, 0.75 of the scan range posted with it (12 % at 16 %)
    rate = gap_rate(MAX_DEV, PSR)
    assert rate == 12 * WAD // 100
    too_far = spot + spot * rate // WAD + 1
    s.sleep(CAP_PERIOD)
    with ape.reverts("oracle: spot deviation"):
        s.post([(BTC, too_far, PSR)])
    s.post([(BTC, spot + spot * rate // WAD, PSR)])  # exactly at the (full) cap passes
    fut = s.instruments["eth-fut"]
    with ape.reverts("oracle: mark deviation"):
        s.post([], [s.future_item(fut, SPOTS[ETH] * 1000)])  # a 1000x mark (Synthetix sKRW)
    # an option mark: max_deviation * max(old mark, 1 % of spot), scaled by the time since
    # its last post over CAP_PERIOD
    call = s.instruments["eth-call"]
    ra = s.flat_option_ra(ETH, SPOTS[ETH] // 25)
    old_mark, _e, old_ts, _entries = s.oracle_views.risk_array(call)
    s.sleep(CAP_PERIOD)
    cap = deviation_cap(old_mark, SPOTS[ETH], MAX_DEV, CAP_PERIOD // 3)
    assert cap == old_mark * MAX_DEV // WAD // 3
    with ape.reverts("oracle: mark deviation"):
        item = s.option_item(call, old_mark + cap + 1, ra)
        s.post([], [item], timestamp=old_ts + CAP_PERIOD // 3, bounded=False)
    s.post([], [s.option_item(call, old_mark + cap, ra)], timestamp=old_ts + CAP_PERIOD // 3)
    assert s.oracle_views.risk_array(call)[0] == old_mark + cap
    with ape.reverts("oracle: price deviation"):
        s.post([], [], [(s.weth.address, SPOTS[ETH] * 2)])


def _capped_item(s, what):
    """(stored value, its timestamp, max_deviation, post(value, ts), reason) of one capped item."""
    if what == "spot":
        spot, _psr, ts = s.oracle.underlying_state(BTC)
        dev = gap_rate(s.oracle.underlying_params(BTC).max_deviation, PSR)
        return spot, ts, dev, lambda v, t: s.post([(BTC, v, PSR)], timestamp=t), "spot deviation"
    if what == "future":
        fut = s.instruments["eth-fut"]
        mark, _e, ts, _entries = s.oracle_views.risk_array(fut)
        dev = gap_rate(s.oracle.underlying_params(ETH).max_deviation, PSR)
        return (
            mark,
            ts,
            dev,
            lambda v, t: s.post([], [s.future_item(fut, v)], timestamp=t),
            "mark deviation",
        )
    price, ts = s.oracle_views.asset_price(s.weth.address)
    dev = s.oracle.asset_max_deviation(s.weth.address)
    return (
        price,
        ts,
        dev,
        lambda v, t: s.post([], [], [(s.weth.address, v)], timestamp=t),
        "price deviation",
    )


@pytest.mark.parametrize("what", ["spot", "future", "asset"])
def test_price_caps_grow_with_the_time_since_the_previous_post(market, what):
    """A spot, a future's mark and a collateral price move at most their rate / CAP_PERIOD of
    their value one second after their previous post and the full rate after CAP_PERIOD
    seconds (no more later): posts a second apart cannot compound the full cap. The rate of a
    collateral price is its max_deviation; of a spot and a future, the gap rate
    min(max_deviation, 0.75 * psr)."""
    s = market
    old, ts, dev, post, reason = _capped_item(s, what)
    cap = old * dev // (WAD * CAP_PERIOD)
    assert 0 < cap < old * dev // WAD
    with ape.reverts(f"oracle: {reason}"):
        post(old + cap + 1, ts + 1)
    with ape.reverts(f"oracle: {reason}"):
        post(old - cap - 1, ts + 1)
    post(old + cap, ts + 1)
    old, ts, dev, post, reason = _capped_item(s, what)
    s.sleep(2 * CAP_PERIOD)
    full = old * dev // WAD
    with ape.reverts(f"oracle: {reason}"):
        post(old + full + 1, ts + 2 * CAP_PERIOD)  # twice the period: still one full cap
    post(old - full, ts + CAP_PERIOD)
    assert _capped_item(s, what)[:2] == (old - full, ts + CAP_PERIOD)


def test_array_guards(market):
    s = market
    call = s.instruments["btc-call"]
    mark = s.oracle_views.risk_array(call)[0]
    e, entries = encode_risk_array(s.flat_option_ra(BTC, SPOTS[BTC] // 25))
    words = pack_entries(entries)
    with ape.reverts("oracle: wrong array length"):
        s.post([], [(call, mark, e, words[:2])], bounded=False)
    with ape.reverts("oracle: wrong array length"):  # a header claiming a fourth word
        s.post([], [(call, mark, e, [*words, 0])], bounded=False)
    stray = list(words)
    stray[2] |= 1 << (16 * (35 - 23))  # entry 35 of a 35-scenario grid
    with ape.reverts("oracle: wrong array length"):
        s.post([], [(call, mark, e, stray)], bounded=False)
    stray0 = list(words)
    stray0[0] |= 1 << 112
    with ape.reverts("oracle: wrong array length"):
        s.post([], [(call, mark, e, stray0)], bounded=False)
    with ape.reverts("oracle: exponent too large"):
        s.post([], [(call, mark, 128, words)], bounded=False)
    with ape.reverts("oracle: non-canonical exponent"):
        s.post([], [(call, mark, e + 1, pack_entries([v >> 1 for v in entries]))], bounded=False)
    # 3x spot exceeds max_array_ratio = 2
    big = [3 * SPOTS[BTC] * c // WAD for c in s.grids[BTC]]
    with ape.reverts("oracle: array gain above payoff"):
        s.post([], [s.option_item(call, mark, big)], bounded=False)
    with ape.reverts("oracle: future array posted"):
        s.post([], [(s.instruments["btc-fut"], SPOTS[BTC], e, words)])


def test_first_post_of_2_96_minus_1_is_refused(market):
    """A first post has no previous mark, but the band holds: 2**96 - 1 is far above a call's
    spot and a put's strike."""
    s = market
    expiry = s.now() + DAY
    call = s.list_instrument("first-call", BTC, KIND_CALL, SPOTS[BTC], expiry)
    put = s.list_instrument("first-put", BTC, KIND_PUT, SPOTS[BTC], expiry)
    for iid in (call, put):
        with ape.reverts("oracle: mark above bound"):
            s.post([], [s.option_item(iid, 2**96 - 1, [0] * 35)], bounded=False)
    assert s.oracle_views.risk_array(call) == (0, 0, 0, [])


def test_option_band(market):
    """call <= spot, put <= strike, mark >= intrinsic - 0.1 % of spot, exact at each edge."""
    s = market
    spot, tol = SPOTS[BTC], SPOTS[BTC] * BAND_TOLERANCE // WAD
    expiry = s.now() + DAY
    itm_call = s.list_instrument("itm-call", BTC, KIND_CALL, 50_000 * WAD, expiry)
    itm_put = s.list_instrument("itm-put", BTC, KIND_PUT, 70_000 * WAD, expiry)
    zero = [0] * 35
    for iid, hi in ((itm_call, spot), (itm_put, 70_000 * WAD)):
        with ape.reverts("oracle: mark above bound"):
            s.post([], [s.option_item(iid, hi + 1, zero)], bounded=False)
        with ape.reverts("oracle: mark below intrinsic"):
            s.post([], [s.option_item(iid, 10_000 * WAD - tol - 1, zero)], bounded=False)
    s.post([], [s.option_item(itm_call, 10_000 * WAD - tol, zero)], bounded=False)
    s.post([], [s.option_item(itm_put, 70_000 * WAD, zero)], bounded=False)
    assert band(KIND_CALL, 50_000 * WAD, spot) == (10_000 * WAD - tol, spot)


def test_option_array_bounds(market):
    """A long option loses at most its premium; a put gains at most strike - mark."""
    s = market
    put = s.instruments["btc-put"]
    mark = s.oracle_views.risk_array(put)[0]
    gains = [0] * 35
    gains[3] = SPOTS[BTC] - mark  # the put's strike is the spot
    s.post([], [s.option_item(put, mark, gains)], bounded=False)
    gains[3] += 2**60  # one unit of the exponent the entry encodes with (e = 60)
    with ape.reverts("oracle: array gain above payoff"):
        s.post([], [s.option_item(put, mark, gains)], bounded=False)
    losses = [0] * 35
    losses[5] = -mark - 2**60
    with ape.reverts("oracle: array loss above premium"):
        s.post([], [s.option_item(put, mark, losses)], bounded=False)


def test_option_listing_guards(market, admin):
    s, o = market, market.oracle
    expiry = id_fields(s.instruments["btc-call"])[3]
    with ape.reverts("oracle: option listed"):
        o.list_instrument(BTC, KIND_CALL, SPOTS[BTC], expiry, WAD, sender=admin)
    with ape.reverts("oracle: strike not representable"):
        o.list_instrument(BTC, KIND_CALL, 123_456_789 * WAD + 1, expiry, WAD, sender=admin)
    with ape.reverts("oracle: option contract size"):
        o.list_instrument(BTC, KIND_PUT, SPOTS[BTC], expiry, 2 * WAD, sender=admin)
    # a future of the same underlying and expiry keeps a serial: no clash
    o.list_instrument(BTC, KIND_FUTURE, 0, expiry, 2 * WAD, sender=admin)


def test_cme_grid_uses_two_slots(market):
    s = market
    call = s.instruments["span-call"]
    ra = s.flat_option_ra(SPAN, SPOTS[SPAN] // 25)
    assert s.oracle_views.risk_array(call)[3] == encode_risk_array(ra)[1]
    assert s.oracle.instrument_word(call, 2) == 0
    e, entries = encode_risk_array(ra)
    with ape.reverts("oracle: wrong array length"):
        s.post([], [(call, SPOTS[SPAN] // 20, e, pack_entries(entries) + [0])])


def test_staleness_views(market, admin):
    s = market
    iid = s.instruments["btc-fut"]
    age, stale = s.oracle_views.instrument_age(iid)
    assert not stale
    s.sleep(s.oracle.max_age() + 1)
    assert s.oracle_views.instrument_age(iid)[1]
    assert s.oracle_views.underlying_age(BTC)[1]
    assert s.oracle_views.asset_age(s.weth)[1]
    tx = s.oracle.set_max_age(86_400, sender=admin)
    assert tx.events.filter(s.oracle.MaxAgeSet)[0].max_age == 86_400
    assert not s.oracle_views.instrument_age(iid)[1]
    with ape.reverts("oracle: max_age out of bounds"):
        s.oracle.set_max_age(86_401, sender=admin)
    with ape.reverts("oracle: max_age out of bounds"):
        s.oracle.set_max_age(29, sender=admin)


def test_grid_tilts_and_curve_bounds_are_refused(system, admin):
    """A grid's tilts (one per scenario, |t| <= 1, at most 2 non-zero: the per-future work of
    `post` stays short) and an underlying's basis (<= 0.5 / year) and roll window (<= 14 days)
    are bounded with a reason; the accepted values read back through `underlying_params`."""
    o = system.oracle
    with ape.reverts("oracle: one tilt per scenario"):
        o.register_grid(17, [WAD, 0], [0], sender=admin)
    with ape.reverts("oracle: one tilt per scenario"):
        o.register_grid(17, [WAD], [0, 0], sender=admin)
    for t in (WAD + 1, -WAD - 1):
        with ape.reverts("oracle: tilt too large"):
            o.register_grid(17, [WAD, 0], [0, t], sender=admin)
    with ape.reverts("oracle: too many tilts"):
        o.register_grid(17, [0] * 5, [WAD, 0, -WAD, 0, 1], sender=admin)
    o.register_grid(17, [0] * 6, [0, WAD, 0, 0, 0, -1], sender=admin)
    assert system.oracle_views.grid(17) == [0] * 6
    assert system.oracle_views.grid_tilts(17) == [0, WAD, 0, 0, 0, -1]
    assert system.oracle_views.grid_tilts(GRID_CRYPTO) == CRYPTO_35.tilt_coefficients_wad()
    assert system.oracle_views.grid_tilts(99) == []
    p = o.underlying_params(BTC)
    keep = (p.psr_min, p.psr_max, p.som_rate, p.max_deviation, p.max_array_ratio)
    for basis, roll in ((WAD // 2 + 1, 0), (0, 14 * DAY + 1)):
        with ape.reverts("oracle: curve out of bounds"):
            o.set_underlying_params(BTC, *keep, basis, roll, sender=admin)
        with ape.reverts("oracle: curve out of bounds"):
            o.list_underlying(18, 17, *keep, basis, roll, sender=admin)
    tx = o.set_underlying_params(BTC, *keep, WAD // 2, 14 * DAY, sender=admin)
    event = tx.events.filter(o.UnderlyingParamsSet)[0]
    assert (event.basis, event.roll) == (WAD // 2, 14 * DAY)
    p = o.underlying_params(BTC)
    assert (p.basis, p.roll) == (WAD // 2, 14 * DAY)
    assert (p.psr_min, p.psr_max, p.som_rate, p.max_deviation, p.max_array_ratio) == keep


def test_admin_listing_guards(system, admin, outsider):
    o = system.oracle
    with ape.reverts("roles: not admin"):
        o.register_grid(7, [WAD], [0], sender=outsider)
    with ape.reverts("oracle: zero grid id"):
        o.register_grid(0, [WAD], [0], sender=admin)
    with ape.reverts("oracle: grid exists"):
        o.register_grid(GRID_CRYPTO, [WAD], [0], sender=admin)
    with ape.reverts("oracle: empty grid"):
        o.register_grid(7, [], [], sender=admin)
    with ape.reverts("oracle: coefficient too large"):
        o.register_grid(7, [8 * WAD + 1], [0], sender=admin)
    tx = o.register_grid(7, [WAD, -8 * WAD, 0], [0, 0, 0], sender=admin)
    assert tx.events.filter(o.GridRegistered)[0].coefficients == [WAD, -8 * WAD, 0]
    assert system.oracle_views.grid(7) == [WAD, -8 * WAD, 0]
    args = (WAD // 100, WAD, WAD // 10, MAX_DEV, 2 * WAD, 0, 0)
    with ape.reverts("oracle: bad underlying id"):
        o.list_underlying(0, 7, *args, sender=admin)
    with ape.reverts("oracle: bad underlying id"):
        o.list_underlying(2**16, 7, *args, sender=admin)
    with ape.reverts("oracle: underlying exists"):
        o.list_underlying(BTC, 7, *args, sender=admin)
    with ape.reverts("oracle: unknown grid"):
        o.list_underlying(9, 8, *args, sender=admin)
    bad = [
        ((WAD // 1001, WAD, WAD // 10, MAX_DEV, 2 * WAD), "oracle: psr out of bounds"),
        ((WAD // 2, WAD // 4, WAD // 10, MAX_DEV, 2 * WAD), "oracle: psr out of bounds"),
        ((WAD // 100, WAD + 1, WAD // 10, MAX_DEV, 2 * WAD), "oracle: psr out of bounds"),
        ((WAD // 100, WAD, WAD + 1, MAX_DEV, 2 * WAD), "oracle: som_rate out of bounds"),
        ((WAD // 100, WAD, WAD // 10, WAD // 1001, 2 * WAD), "oracle: deviation out of bounds"),
        ((WAD // 100, WAD, WAD // 10, WAD + 1, 2 * WAD), "oracle: deviation out of bounds"),
        ((WAD // 100, WAD, WAD // 10, MAX_DEV, WAD // 101), "oracle: ratio out of bounds"),
        ((WAD // 100, WAD, WAD // 10, MAX_DEV, 10 * WAD + 1), "oracle: ratio out of bounds"),
    ]
    bad = [(p + (0, 0), reason) for p, reason in bad]
    for params, reason in bad:
        with ape.reverts(reason):
            o.set_underlying_params(BTC, *params, sender=admin)
    with ape.reverts("oracle: unknown underlying"):
        o.set_underlying_params(9, *args, sender=admin)
    tx = o.list_underlying(9, 7, *args, sender=admin)
    assert tx.events.filter(o.UnderlyingListed)[0].scenarios == 3
    assert tx.events.filter(o.UnderlyingParamsSet)[0].som_rate == WAD // 10
    expiry = system.now() + DAY
    with ape.reverts("oracle: unknown underlying"):
        o.list_instrument(10, KIND_FUTURE, 0, expiry, WAD, sender=admin)
    with ape.reverts("oracle: bad kind"):
        o.list_instrument(9, 4, 0, expiry, WAD, sender=admin)  # kind 3 is a perp
    with ape.reverts("oracle: bad strike"):
        o.list_instrument(9, KIND_FUTURE, 1, expiry, WAD, sender=admin)
    with ape.reverts("oracle: bad strike"):
        o.list_instrument(9, KIND_CALL, 0, expiry, WAD, sender=admin)
    with ape.reverts("oracle: bad expiry"):
        o.list_instrument(9, KIND_CALL, WAD, system.now(), WAD, sender=admin)
    with ape.reverts("oracle: bad contract size"):
        o.list_instrument(9, KIND_CALL, WAD, expiry, 0, sender=admin)
    tx = o.list_instrument(9, KIND_CALL, WAD, expiry, WAD, sender=admin)
    ev = tx.events.filter(o.InstrumentListed)[0]
    assert (ev.underlying, ev.kind, ev.strike, ev.expiry) == (9, KIND_CALL, WAD, expiry)
    with ape.reverts("oracle: zero asset"):
        o.list_asset("0x0000000000000000000000000000000000000000", MAX_DEV, sender=admin)
    with ape.reverts("oracle: deviation out of bounds"):
        o.list_asset(outsider, 0, sender=admin)


def test_admin_two_step_transfer(system, admin, outsider):
    o = system.oracle
    with ape.reverts("roles: not admin"):
        o.transfer_admin(outsider, sender=outsider)
    tx = o.transfer_admin(outsider, sender=admin)
    assert tx.events.filter(o.AdminTransferStarted)[0].pending_admin == outsider.address
    assert o.admin() == admin.address
    with ape.reverts("roles: not pending admin"):
        o.accept_admin(sender=admin)
    tx = o.accept_admin(sender=outsider)
    assert tx.events.filter(o.AdminTransferred)[0].new_admin == outsider.address
    assert o.admin() == outsider.address and o.pending_admin() == "0x" + "0" * 40 or True
    with ape.reverts("roles: not admin"):
        o.set_max_age(600, sender=admin)


def test_role_management(system, admin, outsider):
    o = system.oracle
    with ape.reverts("roles: unknown role"):
        o.grant_role(outsider, ROLE_KEEPER | ROLE_VENUE, sender=admin)  # one bit per call
    with ape.reverts("roles: zero account"):
        o.grant_role("0x0000000000000000000000000000000000000000", ROLE_KEEPER, sender=admin)
    with ape.reverts("roles: not admin"):
        o.grant_role(outsider, ROLE_KEEPER, sender=outsider)
    tx = o.grant_role(outsider, ROLE_KEEPER, sender=admin)
    ev = tx.events.filter(o.RoleGranted)[0]
    assert (ev.role, ev.account, ev.sender) == (ROLE_KEEPER, outsider.address, admin.address)
    assert o.has_role(outsider, ROLE_KEEPER) and not o.has_role(outsider, ROLE_VENUE)
