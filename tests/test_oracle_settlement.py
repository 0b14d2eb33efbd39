"""RiskOracle settlement: an expired instrument settles at its payoff at the TWAP of the stored
spot over the window before expiry, computed on-chain from the per-post observations, to the
wei as `offchain.settlement` computes it; the keeper only triggers it, and so can anyone."""

import ape
import pytest
from contract_support import (
    ARRAY_RATIO,
    BTC,
    GRID_CRYPTO,
    MAX_DEV,
    PSR,
    SOM_RATE,
    SPOTS,
    examples,
)
from hypothesis import HealthCheck, example, given
from hypothesis import strategies as st

from offchain.codec import KIND_CALL, KIND_FUTURE, KIND_PUT, id_fields
from offchain.fixed_point import WAD, to_wad
from offchain.margin import Kind
from offchain.settlement import (
    SettlementError,
    observations,
    payoff,
    settlement,
    twap,
)

FRESH = 7  # an underlying listed by the test itself: its first observation is the test's


def _advance(s, t):
    """Mine a block at time t unless the chain is already there."""
    if s.now() < t:
        s.chain.pending_timestamp = t
        s.chain.mine()


def _expire(s, iid):
    """Move the chain past the instrument's expiry."""
    _advance(s, id_fields(iid)[3] + 1)


def _post_at(s, und, t, spot):
    _advance(s, t)
    s.post([(und, spot, PSR)], timestamp=t)


def _chain_observations(s, und):
    """(timestamp, spot) of every stored observation."""
    n = s.oracle_views.observation_count(und)
    return [tuple(int(x) for x in s.oracle.observation(und, k)) for k in range(n)]


def _list_fresh_underlying(s):
    s.oracle.list_underlying(
        FRESH, GRID_CRYPTO, WAD // 100, WAD, SOM_RATE, MAX_DEV, ARRAY_RATIO, 0, 0, sender=s.admin
    )


def test_a_deep_in_the_money_put_settles_at_its_payoff_from_the_twap(market, outsider):
    # A put struck at 90,000 with BTC at 60,000 is worth 30,000. A keeper that could choose the
    # settlement price settled it at 0; now the price is the payoff at the TWAP, computed by the
    # chain, and spots posted after expiry (here walked 50% lower at the gap rate) cannot move
    # it.
    s = market
    assert not hasattr(s.oracle, "post_settlement")
    iid = s.list_instrument("deep-put", BTC, KIND_PUT, 90_000 * WAD, s.now() + 3_600)
    for _ in range(6):
        s.sleep(600)
        s.post([(BTC, SPOTS[BTC], PSR)])
    _expire(s, iid)
    for k in range(1, 8):  # each post within the gap rate (12%): -10% six times, then to 50%
        s.post([(BTC, SPOTS[BTC] * 9**k // 10**k if k < 7 else SPOTS[BTC] // 2, PSR)])
    tx = s.oracle.settle_expired(iid, sender=outsider)
    ev = tx.events.filter(s.oracle.InstrumentSettled)[0]
    assert (ev.twap, ev.price, ev.caller) == (SPOTS[BTC], 30_000 * WAD, outsider.address)
    assert s.oracle_views.risk_array(iid)[:2] == (30_000 * WAD, 255)
    assert s.oracle_views.instrument_age(iid) == (0, False)


def test_settlement_averages_the_spot_over_the_window_before_expiry(market):
    s = market
    expiry = s.now() + 4_000
    call = s.list_instrument("twap-call", BTC, KIND_CALL, 60_000 * WAD, expiry)
    fut = s.list_instrument("twap-fut", BTC, KIND_FUTURE, 0, expiry, size=2 * WAD)
    # 60,000 until expiry - 1,200, then 63,000: TWAP over the last 1,800 s is 62,000
    _post_at(s, BTC, expiry - 3_000, 60_000 * WAD)
    _post_at(s, BTC, expiry - 1_200, 63_000 * WAD)
    _expire(s, call)
    s.post([(BTC, 61_000 * WAD, PSR)])
    assert s.oracle.settlement_preview(call) == (62_000 * WAD, 2_000 * WAD)
    assert s.oracle.settle_expired(fut, sender=s.keeper).return_value == 124_000 * WAD
    assert s.oracle.settle_expired(call, sender=s.keeper).return_value == 2_000 * WAD


def test_each_post_appends_an_observation(market):
    s = market
    n0 = s.oracle_views.observation_count(BTC)
    t0, _ = s.oracle.observation(BTC, n0 - 1)
    _post_at(s, BTC, t0 + 100, SPOTS[BTC] + WAD)
    assert s.oracle_views.observation_count(BTC) == n0 + 1
    assert s.oracle.observation(BTC, n0) == (t0 + 100, SPOTS[BTC] + WAD)
    assert s.oracle.underlying_state(BTC) == (SPOTS[BTC] + WAD, PSR, t0 + 100)


def test_settle_expired_reverts_before_expiry(market):
    s = market
    with ape.reverts("oracle: not expired"):
        s.oracle.settle_expired(s.instruments["btc-fut"], sender=s.keeper)


def test_settle_expired_waits_for_a_spot_after_expiry(market):
    # a post timestamped inside the window could still land: the window is not final yet
    s = market
    iid = s.list_instrument("no-post", BTC, KIND_FUTURE, 0, s.now() + 600)
    s.post([(BTC, SPOTS[BTC], PSR)])
    _expire(s, iid)
    with ape.reverts("oracle: no spot after expiry"):
        s.oracle.settle_expired(iid, sender=s.keeper)
    _post_at(s, BTC, id_fields(iid)[3], SPOTS[BTC])  # at expiry: not after it
    with ape.reverts("oracle: no spot after expiry"):
        s.oracle.settle_expired(iid, sender=s.keeper)
    s.post([(BTC, SPOTS[BTC], PSR)])
    s.oracle.settle_expired(iid, sender=s.keeper)


def test_settle_expired_reverts_once_settled(market):
    s = market
    iid = s.instruments["btc-put"]
    _expire(s, iid)
    s.post([(BTC, SPOTS[BTC], PSR)])
    s.oracle.settle_expired(iid, sender=s.keeper)
    with ape.reverts("oracle: instrument settled"):
        s.oracle.settle_expired(iid, sender=s.keeper)
    with ape.reverts("oracle: instrument settled"):
        s.post([], [s.option_item(iid, SPOTS[BTC] // 20, s.flat_option_ra(BTC, SPOTS[BTC]))])


def test_settle_expired_reverts_on_an_unknown_instrument(market):
    s = market
    with ape.reverts("oracle: unknown instrument"):
        s.oracle.settle_expired(s.instruments["btc-fut"] + 1000, sender=s.keeper)


def test_settle_expired_reverts_without_a_spot_before_expiry(system):
    s = system
    _list_fresh_underlying(s)
    iid = s.list_instrument("late", FRESH, KIND_FUTURE, 0, s.now() + 60)
    _expire(s, iid)
    s.post([(FRESH, 1_000 * WAD, PSR)])
    with ape.reverts("oracle: no spot before expiry"):
        s.oracle.settle_expired(iid, sender=s.keeper)


_SPOT = st.integers(500, 1_500).map(lambda x: x * WAD + 123_456_789)
# per-post moves in per mille, within the gap rate (0.75 x PSR 16% = 12% a cap period)
_MOVES = st.lists(st.integers(-115, 115), min_size=11, max_size=11)


@examples(12, 150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    gaps=st.lists(st.integers(2, 1_500), min_size=1, max_size=10),
    first_spot=_SPOT,
    moves=_MOVES,
    expiry_after=st.integers(0, 9),
    expiry_offset=st.integers(0, 1_499),
    kind=st.sampled_from([Kind.FUTURE, Kind.CALL, Kind.PUT]),
    strike=_SPOT,
    size=st.sampled_from([WAD, WAD // 10, 3 * WAD + 7]),
)
# a fall over a 30 s gap: the scaled move must round toward zero, or it exceeds the cap
@example(
    gaps=[2, 2, 2, 2, 2, 30],
    first_spot=500 * WAD + 123_456_789,
    moves=[0, 0, 0, 0, 0, -113, 0, 0, 0, 0, 0],
    expiry_after=0,
    expiry_offset=0,
    kind=Kind.FUTURE,
    strike=500 * WAD + 123_456_789,
    size=WAD,
)
def test_twap_and_payoff_equal_the_python_reference_to_the_wei(
    system, chain_snapshot, gaps, first_spot, moves, expiry_after, expiry_offset, kind, strike, size
):
    s = system
    with chain_snapshot():
        _list_fresh_underlying(s)
        first = s.now() + 10
        times = [first]
        for g in gaps:
            times.append(times[-1] + g)
        # expiry strictly between posts k and k + 1 (the window is clipped at the first post
        # when that is less than TWAP_WINDOW earlier)
        k = min(expiry_after, len(gaps) - 1)
        expiry = times[k] + 1 + expiry_offset % (times[k + 1] - times[k] - 1)
        # an option is one unit of the underlying, struck at 8 significant digits at most
        digits = max(0, len(str(strike)) - 8)
        strike_arg = 0 if kind is Kind.FUTURE else strike // 10**digits * 10**digits
        size = size if kind is Kind.FUTURE else WAD
        iid = s.list_instrument("diff", FRESH, int(kind), strike_arg, expiry, size=size)
        spot = first_spot
        gaps_after = [b - a for a, b in zip(times, times[1:], strict=False)] + [900]
        posts = []
        for t, move, gap in zip(times, moves, gaps_after, strict=False):
            _post_at(s, FRESH, t, spot)
            posts.append((t, spot))
            # the spot's cap grows with the time to the next post (full after 900 s)
            # (rounded toward zero: a floored fall would overshoot the cap)
            scaled = abs(move) * min(gap, 900) // 900
            spot = spot * (1_000 + (scaled if move >= 0 else -scaled)) // 1_000
        assert _chain_observations(s, FRESH) == posts
        ref = observations(posts)
        now = s.now() + 1
        expected = settlement(ref, kind, strike_arg, size, expiry, now)
        s.chain.pending_timestamp = now
        tx = s.oracle.settle_expired(iid, sender=s.keeper)
        ev = tx.events.filter(s.oracle.InstrumentSettled)[0]
        assert (ev.twap, ev.price) == expected
        assert expected[1] == payoff(kind, strike_arg, size, expected[0])


def test_reference_worked_example():
    # the module docstring's example: 60,000 for 1,200 s then 63,000 for 600 s
    obs = observations([(0, 60_000 * WAD), (1_200, 63_000 * WAD), (2_000, 62_000 * WAD)])
    assert settlement(obs, Kind.PUT, 65_000 * WAD, WAD, 1_800, 2_000) == (61_000 * WAD, 4_000 * WAD)
    assert twap(obs, 1_900, 3_000, window=600) == 63_000 * WAD


def test_reference_refuses_what_the_oracle_refuses():
    obs = observations([(100, WAD), (200, 2 * WAD)])
    for expiry, now, reason in (
        (150, 149, "not expired"),
        (200, 300, "no spot after expiry"),
        (100, 300, "no spot before expiry"),
    ):
        with pytest.raises(SettlementError, match=reason):
            twap(obs, expiry, now)
    with pytest.raises(SettlementError, match="bad price"):
        payoff(Kind.FUTURE, 0, 10**30, 2**96 - 1)


@pytest.mark.parametrize(
    ("kind", "strike", "index", "value"),
    [
        (Kind.FUTURE, 0, 5_000.5, 5_000.5),
        (Kind.CALL, 4_000, 5_000, 1_000),
        (Kind.CALL, 6_000, 5_000, 0),
        (Kind.PUT, 6_000, 5_000, 1_000),
        (Kind.PUT, 4_000, 5_000, 0),
    ],
)
def test_payoff_of_one_long_contract(kind, strike, index, value):
    assert payoff(kind, to_wad(strike), WAD, to_wad(index)) == to_wad(value)
    assert payoff(kind, to_wad(strike), WAD // 10, to_wad(index)) == to_wad(value) // 10
