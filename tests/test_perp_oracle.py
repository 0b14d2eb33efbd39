"""RiskOracle perpetuals: listing (one per underlying, a funding cap, no expiry), perp marks posted
and bounded like a future's with the array computed on-chain at the spot end of the curve (h = 0,
equal to the reference to the wei), `post_funding` (keeper only, clamped to the cap) and the
funding index F_now that `snapshot` reports in uw[k][1] >> 128, equal to offchain.funding."""

import ape
import pytest
from contract_support import BTC, ETH, SPAN, SPOTS, examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from offchain.codec import KIND_FUTURE, KIND_PERP, PERP_EXPIRY, id_fields
from offchain.fixed_point import WAD, curve_shift_wad, encode_risk_array, futures_risk_array_wad
from offchain.funding import (
    FUNDING_GAP,
    MAX_FUNDING_CAP,
    FundingState,
    clamp_rate,
    funding_index_now,
    pack_funding_word,
)
from offchain.margin import Kind
from offchain.oracle_bounds import CAP_PERIOD, gap_rate, price_cap
from offchain.sdk.decode import InstrumentMeta

CAP = 10**16  # 1 % per hour
PSR = 16 * WAD // 100


def _signed128(x):
    return x - 2**128 if x >> 127 else x


def _list_perp(s, u, cap=CAP):
    return s.list_instrument(f"perp-{u}", u, KIND_PERP, cap, 0)


def _perp_on_a_new_underlying(s, u):
    """Underlying `u` on a two-scenario grid, psr from 0.1 %, and a perp on it at the largest
    cap."""
    s.oracle.register_grid(u, [WAD // 10, -(WAD // 10)], [0, 0], sender=s.admin)
    s.oracle.list_underlying(u, u, 10**15, WAD, 0, WAD, WAD, 0, 0, sender=s.admin)
    s.n_scenarios[u] = 2
    _list_perp(s, u, MAX_FUNDING_CAP)


def _state(s, u):
    return tuple(s.oracle.funding_state(u))


def _word(s, u):
    return FundingState(*_state(s, u))


@pytest.fixture
def perp(market):
    """`market` plus a BTC perp marked at spot."""
    s = market
    iid = _list_perp(s, BTC)
    s.post([(BTC, SPOTS[BTC], PSR)], [s.future_item(iid, SPOTS[BTC])])
    return s, iid


# ---------------------------------------------------------------------------- listing


def test_a_perp_lists_with_its_cap_and_no_expiry(market):
    s = market
    iid = _list_perp(s, ETH)
    now = s.now()
    assert id_fields(iid)[1:] == (KIND_PERP, ETH, PERP_EXPIRY)
    assert _state(s, ETH) == (0, 0, now, CAP)
    assert s.oracle.funding_index(ETH) == 0 and s.oracle.funding_index(BTC) == 0
    _iw, uw, _aw, _age = s.oracle.snapshot([], [ETH, BTC], [])
    # the scenario count in the low byte, F = 0 above it; BTC has no perp
    assert uw[0][1] == s.n_scenarios[ETH] and uw[1][1] == s.n_scenarios[BTC]
    assert uw[0][0] >> 248 == 1 and uw[1][0] >> 248 == 0
    # it never settles
    with ape.reverts("oracle: not expired"):
        s.oracle.settle_expired(iid, sender=s.admin)


@pytest.mark.parametrize("cap", [0, MAX_FUNDING_CAP + 10**12, CAP + 1, 10**12 - 1])
def test_a_perp_needs_a_cap_in_units_of_1e12_up_to_4_percent(market, cap):
    with ape.reverts("oracle: bad funding cap"):
        market.oracle.list_instrument(ETH, KIND_PERP, cap, 0, WAD, sender=market.admin)


def test_a_perp_with_the_largest_cap_lists(market):
    _list_perp(market, ETH, MAX_FUNDING_CAP)
    assert _state(market, ETH)[3] == MAX_FUNDING_CAP


def test_perp_listing_refusals(market):
    s, o, a = market, market.oracle, market.admin
    with ape.reverts("oracle: bad expiry"):
        o.list_instrument(ETH, KIND_PERP, CAP, s.now() + 86_400, WAD, sender=a)
    with ape.reverts("oracle: perp contract size"):
        o.list_instrument(ETH, KIND_PERP, CAP, 0, 2 * WAD, sender=a)
    with ape.reverts("oracle: unknown underlying"):
        o.list_instrument(77, KIND_PERP, CAP, 0, WAD, sender=a)
    with ape.reverts("oracle: bad kind"):
        o.list_instrument(ETH, 4, CAP, 0, WAD, sender=a)
    _list_perp(s, ETH)
    with ape.reverts("oracle: perp listed"):
        o.list_instrument(ETH, KIND_PERP, CAP, 0, WAD, sender=a)
    with ape.reverts("roles: not admin"):
        o.list_instrument(BTC, KIND_PERP, CAP, 0, WAD, sender=s.keeper)


# ---------------------------------------------------------------------------- marks


def test_a_perp_array_is_a_futures_array_at_h_0(market):
    """On BTC's tilted grid with a basis and roll window that move every dated future's tilted
    scenarios, the perp's array is the untilted-curve array (h = 0) to the wei, a future's is
    not."""
    s = market
    s.set_curve(BTC, 10**17, 4 * 86_400)
    iid = _list_perp(s, BTC)
    fut = s.list_instrument("btc-fut-2d", BTC, KIND_FUTURE, 0, s.now() + 2 * 86_400)
    mark = SPOTS[BTC] + 123_456_789
    s.post([(BTC, SPOTS[BTC], PSR)], [s.future_item(iid, mark), s.future_item(fut, mark)])
    _m, e, ts, entries = s.oracle_views.risk_array(iid)
    c, t = s.grids[BTC], s.tilts[BTC]
    assert any(t)
    assert (e, list(entries)) == encode_risk_array(futures_risk_array_wad(mark, c, PSR, t, 0))
    assert s.future_reference(iid, mark, PSR, ts) == futures_risk_array_wad(mark, c, PSR, t, 0)
    h = curve_shift_wad(id_fields(fut)[3], ts, 10**17, 4 * 86_400, PSR)
    _m, e2, _ts, entries2 = s.oracle_views.risk_array(fut)
    assert h != 0
    assert (e2, list(entries2)) == encode_risk_array(futures_risk_array_wad(mark, c, PSR, t, h))
    assert list(entries2) != list(entries)


@examples(10, 100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(u=st.sampled_from([BTC, SPAN]), mark=st.integers(1, 2**96 - 2), psr=st.integers(10**16, WAD))
def test_perp_arrays_equal_the_reference(market, chain_snapshot, u, mark, psr):
    s = market
    with chain_snapshot():
        s.set_curve(u, 5 * 10**17, 14 * 86_400)
        iid = _list_perp(s, u)
        s.post([(u, SPOTS[u], psr)], [s.future_item(iid, mark)])
        _m, e, ts, entries = s.oracle_views.risk_array(iid)
        assert (e, list(entries)) == encode_risk_array(s.future_reference(iid, mark, psr, ts))
        assert s.future_reference(iid, mark, psr, ts) == futures_risk_array_wad(
            mark, s.grids[u], psr, s.tilts.get(u), 0
        )


def test_a_perp_mark_moves_at_most_the_gap_rate(perp):
    s, iid = perp
    old = SPOTS[BTC]
    ts = s.oracle_views.risk_array(iid)[2]
    s.sleep(CAP_PERIOD + 5)
    dev = gap_rate(s.oracle.underlying_params(BTC).max_deviation, PSR)
    cap = price_cap(old, dev, CAP_PERIOD)
    with ape.reverts("oracle: mark deviation"):
        s.post([], [s.future_item(iid, old + cap + 1)], timestamp=ts + CAP_PERIOD, bounded=False)
    s.post([], [s.future_item(iid, old + cap)], timestamp=ts + CAP_PERIOD, bounded=False)
    assert s.oracle_views.risk_array(iid)[0] == old + cap


def test_a_perp_takes_no_posted_array(perp):
    s, iid = perp
    with ape.reverts("oracle: future array posted"):
        s.post([], [s.future_item_with_array(iid, SPOTS[BTC], [WAD] * s.n_scenarios[BTC])])
    with ape.reverts("oracle: bad price"):
        s.post([], [s.future_item(iid, 0)], bounded=False)


# ---------------------------------------------------------------------------- funding


def test_post_funding_accrues_clamps_and_logs(perp):
    s, _iid = perp
    t0 = _state(s, BTC)[2]
    tx = s.oracle.post_funding([(BTC, 3 * CAP)], sender=s.keeper)
    t1 = s.chain.blocks.head.timestamp
    assert _state(s, BTC) == (0, CAP, t1, CAP)  # rate was 0 before: F stays 0
    ev = tx.events.filter(s.oracle.FundingPosted)[0]
    assert (ev.underlying, ev.rate, ev.index) == (BTC, CAP, 0)
    assert t1 > t0
    s.sleep(1800)
    w = _word(s, BTC)
    now = s.now()
    expect = funding_index_now(w, SPOTS[BTC], now)
    assert expect == SPOTS[BTC] * CAP * (now - t1) // (3600 * WAD) > 0
    assert s.oracle.funding_index(BTC) == expect
    # clamped at -cap on the other side; F carried over at the current spot
    tx = s.oracle.post_funding([(BTC, -(2**200))], sender=s.keeper)
    t2 = s.chain.blocks.head.timestamp
    f2 = funding_index_now(w, SPOTS[BTC], t2)
    assert _state(s, BTC) == (f2, -CAP, t2, CAP)
    assert tx.events.filter(s.oracle.FundingPosted)[0].index == f2


def test_funding_stops_accruing_8_hours_after_the_last_post(perp):
    s, _iid = perp
    s.oracle.post_funding([(BTC, CAP // 2)], sender=s.keeper)
    s.sleep(FUNDING_GAP + 5 * 3600)
    assert s.oracle.funding_index(BTC) == SPOTS[BTC] * (CAP // 2) * FUNDING_GAP // (3600 * WAD)


def test_post_funding_refusals(perp, outsider):
    s, _iid = perp
    with ape.reverts("roles: not keeper"):
        s.oracle.post_funding([(BTC, 1)], sender=outsider)
    with ape.reverts("oracle: no perp"):
        s.oracle.post_funding([(BTC, 1), (ETH, 1)], sender=s.keeper)
    with ape.reverts("oracle: no perp"):
        s.oracle.post_funding([(999, 1)], sender=s.keeper)


@examples(15, 200, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    rates=st.lists(st.integers(-(2**70), 2**70), min_size=1, max_size=3),
    spots=st.lists(st.integers(1, 2**90), min_size=3, max_size=3),
    gaps=st.lists(st.integers(1, 3 * FUNDING_GAP), min_size=3, max_size=3),
)
def test_funding_index_equals_the_reference(market, chain_snapshot, rates, spots, gaps):
    """Posts of random rates (clamped), with the spot moved between them (any value: a first
    post of the spot, as a fresh underlying's), dt beyond 8 hours included: the stored word, the
    view and the snapshot equal offchain.funding to the wei."""
    s = market
    with chain_snapshot():
        _perp_on_a_new_underlying(s, 90)
        word = _word(s, 90)
        spot = 0
        for k, rate in enumerate(rates):
            s.sleep(gaps[k] - 1)
            spot = spots[k] if k == 0 else spot
            if k == 0:
                s.post([(90, spot, PSR)])
            s.oracle.post_funding([(90, rate)], sender=s.keeper)
            now = s.chain.blocks.head.timestamp
            f = funding_index_now(word, spot, now)
            word = FundingState(f, clamp_rate(rate, MAX_FUNDING_CAP), now, MAX_FUNDING_CAP)
            assert _word(s, 90) == word
        s.sleep(gaps[-1])
        now = s.now()
        expect = funding_index_now(word, spot, now)
        assert s.oracle.funding_index(90) == expect
        uw = s.oracle.snapshot([], [90], [])[1][0]
        assert uw[1] & 255 == 2 and _signed128(uw[1] >> 128) == expect


def test_negative_index_in_the_snapshot(perp):
    s, iid = perp
    s.oracle.post_funding([(BTC, -CAP)], sender=s.keeper)
    s.sleep(3600)
    iw, uw, _aw, _age = s.oracle.snapshot([iid], [BTC], [])
    f = s.oracle.funding_index(BTC)
    assert f < 0 and _signed128(uw[0][1] >> 128) == f and uw[0][1] & 255 == s.n_scenarios[BTC]
    # the instrument words still read the scenario count right (three words for 35 entries)
    assert iw[0][2] != 0


def test_an_index_at_its_bound_stops_funding_posts(market, chain_snapshot):
    """At the largest spot and the largest cap F grows by 2**91 an hour: after some 128 hours of
    posts the index reaches 2**98 and the next post is refused, so F_now always fits its int100."""
    s = market
    with chain_snapshot():
        _perp_on_a_new_underlying(s, 91)
        s.post([(91, 2**96 - 1, 10**15)])
        posts = 0
        while abs(s.oracle.funding_index(91)) < 2**98:
            s.oracle.post_funding([(91, MAX_FUNDING_CAP)], sender=s.keeper)
            s.sleep(FUNDING_GAP)
            posts += 1
        assert 12 <= posts <= 20
        with ape.reverts("oracle: funding out of bounds"):
            s.oracle.post_funding([(91, MAX_FUNDING_CAP)], sender=s.keeper)


def test_after_wind_down_funding_posts_stop_and_the_index_stays_bounded(perp, outsider):
    s, iid = perp
    s.oracle.post_funding([(BTC, CAP)], sender=s.keeper)
    s.sleep(s.oracle.clock() >> 80 & (2**40 - 1))
    s.sleep(3600 + 3600)
    s.oracle.wind_down(sender=outsider)
    with ape.reverts("oracle: wound down"):
        s.oracle.post_funding([(BTC, CAP)], sender=s.keeper)
    word = _word(s, BTC)
    assert s.oracle.funding_index(BTC) == funding_index_now(word, SPOTS[BTC], s.now())
    assert s.oracle.funding_index(BTC) == SPOTS[BTC] * CAP * FUNDING_GAP // (3600 * WAD)
    iw, _uw, _aw, _age = s.oracle.snapshot([iid], [BTC], [])
    assert (iw[0][0] >> 152) & 255 == 255  # the perp reads settled at its last mark


# ---------------------------------------------------------------------------- off-chain


def test_a_perp_is_named_without_a_date_and_never_expires():
    meta = InstrumentMeta(1, ETH, Kind.PERP, CAP, PERP_EXPIRY)
    assert meta.name({ETH: "ETH"}) == "ETH-PERP" and not meta.expires
    assert not Kind.PERP.is_option and Kind.CALL.is_option and Kind.PUT.is_option


@given(
    f=st.integers(-(2**98), 2**98),
    rate=st.integers(-MAX_FUNDING_CAP, MAX_FUNDING_CAP),
    spot=st.integers(0, 2**96 - 1),
    dt=st.integers(0, 3 * FUNDING_GAP),
)
def test_the_funding_reference_floors_and_caps_the_accrual(f, rate, spot, dt):
    word = pack_funding_word(f, rate, 1_000)
    got = funding_index_now(word, spot, 1_000 + dt)
    x = rate * spot * min(dt, FUNDING_GAP)
    # floor: never above the exact value, less than one wei below it
    assert (got - f) * 3600 * WAD <= x < (got - f + 1) * 3600 * WAD
