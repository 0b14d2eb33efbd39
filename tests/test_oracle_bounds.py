"""The off-chain mirror of RiskOracle's bounds (``offchain.oracle_bounds``): strike codes
round-trip, the keeper's ``bound_quotes`` clamps what it would post (options, spots, prices,
futures), and whatever the mirror clamps the chain accepts while one unit beyond its mark cap
is refused."""

import ape
import pytest
from contract_support import BTC, PSR, SPOTS, examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from offchain.codec import KIND_CALL, KIND_PUT, OptionPost
from offchain.fixed_point import WAD
from offchain.keeper.config import UnderlyingInfo
from offchain.keeper.policy import Posted, Quote
from offchain.keeper.quotes import Item, bound_quotes
from offchain.oracle_bounds import (
    CAP_PERIOD,
    band,
    bound_option,
    clamp_mark,
    clamp_price,
    code_strike,
    deviation_cap,
    gap_rate,
    price_cap,
    seconds_for_move,
    strike_code,
)
from offchain.scenarios import CRYPTO_35


@given(m=st.integers(1, 2**27 - 1), x=st.integers(0, 10))
def test_strike_codes_round_trip(m, x):
    strike = m * 10**x
    assert code_strike(strike_code(strike)) == strike
    assert strike_code(strike) >> 27 >= x  # trailing zeros go to the exponent: one code each


def test_strike_with_too_many_digits_is_refused():
    with pytest.raises(ValueError, match="significant digits"):
        strike_code(123_456_789 * WAD + 1)
    with pytest.raises(ValueError, match="strike must be"):
        strike_code(0)


def _option_quote(iid, mark, ra):
    return (
        Quote(mark, tuple(ra), SPOTS[BTC]),
        Item("c", "instrument", BTC, OptionPost.option(iid, mark, ra).as_arg()),
    )


def test_keeper_clamps_option_quotes_into_the_oracle_bounds():
    """A quote above the band is posted at the band, a jump at the cap for the time since the
    last post, an array losing more than the premium at the premium; a quote inside is kept."""
    iid = strike_code(60_000 * WAD) | KIND_CALL << 32 | BTC << 40 | 2_000_000_000 << 56
    spot = SPOTS[BTC]
    u = UnderlyingInfo("BTC", BTC, CRYPTO_35, 0.01, 1.0, (), WAD // 2, 2 * WAD)
    unds = {"U:BTC": (Quote(spot, (PSR,)), Item("U:BTC", "underlying", BTC, (BTC, spot, PSR)))}
    ra = [-2 * spot] + [0] * 34
    quotes = {**unds, "c": _option_quote(iid, 2 * spot, ra)}
    out = bound_quotes(1_000, quotes, {}, [u])
    assert out["c"][0].mark == spot
    assert min(out["c"][0].risk_array) >= -spot
    posted = {"c": Posted(Quote(1_000 * WAD), 1_000)}
    out = bound_quotes(1_090, {**unds, "c": _option_quote(iid, 5_000 * WAD, [0] * 35)}, posted, [u])
    assert out["c"][0].mark == 1_000 * WAD + deviation_cap(1_000 * WAD, spot, WAD // 2, 90)
    inside = {**unds, "c": _option_quote(iid, 1_010 * WAD, [0] * 35)}
    assert bound_quotes(1_090, inside, posted, [u]) == inside


def test_keeper_posts_spot_price_and_future_at_their_cap_and_catches_up():
    """A spot, a collateral price and a future's mark that moved more than their caps allow
    since their last posts are posted at the caps (the batch cannot revert on them); later
    rounds close the gap at the cap's pace, and a move within the cap is posted as quoted. A
    spot and a future move at the gap rate, 0.75 of the scan range (12 % a period at 16 %),
    capped by max_deviation; a collateral price at its own max_deviation."""
    spot, fut = SPOTS[BTC], 2 | BTC << 40 | 2_000_000_000 << 56
    u = UnderlyingInfo("BTC", BTC, CRYPTO_35, 0.01, 1.0, ("0xW",), WAD // 2, 2 * WAD, (WAD // 10,))

    def quotes(x, psr=PSR):
        return {
            "U:BTC": (Quote(x, (psr,)), Item("U:BTC", "underlying", BTC, (BTC, x, psr))),
            "A:0xW": (Quote(x), Item("A:0xW", "asset", BTC, ("0xW", x))),
            "F": (
                Quote(x, (x * psr // WAD,), x),
                Item("F", "instrument", BTC, OptionPost.future(fut, x).as_arg()),
            ),
        }

    posted = {n: Posted(Quote(spot), 1_000) for n in ("U:BTC", "A:0xW", "F")}
    rate = gap_rate(WAD // 2, PSR)
    assert rate == 12 * WAD // 100
    out = bound_quotes(1_001, quotes(2 * spot), posted, [u])
    step = price_cap(spot, rate, 1)
    assert step == spot * 12 // 100 // 900
    assert out["U:BTC"][1].arg == (BTC, spot + step, PSR)
    assert out["A:0xW"][1].arg == ("0xW", spot + price_cap(spot, WAD // 10, 1))
    assert out["F"][1].arg == OptionPost.future(fut, spot + step).as_arg()
    # a full period later: the full cap
    out = bound_quotes(1_000 + 2 * CAP_PERIOD, quotes(2 * spot), posted, [u])
    assert out["U:BTC"][0].mark == out["F"][0].mark == spot * 112 // 100
    assert out["A:0xW"][0].mark == spot * 11 // 10
    # a scan range of 80 %: max_deviation (50 %) is the smaller; the future keeps the smaller
    # of this round's and the last posted scan range, whichever the chain holds when it lands
    posted["U:BTC"] = Posted(Quote(spot, (PSR,)), 1_000)
    out = bound_quotes(1_000 + 2 * CAP_PERIOD, quotes(2 * spot, 5 * PSR), posted, [u])
    assert out["U:BTC"][0].mark == spot * 3 // 2
    assert out["F"][0].mark == spot * 112 // 100
    inside = quotes(spot + step)
    assert bound_quotes(1_001, inside, posted, [u])["U:BTC"] == inside["U:BTC"]
    assert seconds_for_move(spot + step, spot, rate) == 1
    assert seconds_for_move(spot + step + 1, spot, rate) == 2
    assert seconds_for_move(spot * 112 // 100 + 1, spot, rate) is None


@examples(12, 100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    kind=st.sampled_from([KIND_CALL, KIND_PUT]),
    spot_pct=st.integers(50, 150),
    mark1=st.integers(0, 2 * SPOTS[BTC]),
    mark2=st.integers(0, 2 * SPOTS[BTC]),
    dt=st.integers(1, 2 * CAP_PERIOD),
    scale=st.integers(-2 * SPOTS[BTC], 2 * SPOTS[BTC]),
)
def test_chain_accepts_what_the_mirror_clamps(
    market, chain_snapshot, kind, spot_pct, mark1, mark2, dt, scale
):
    """Two posts of an option clamped by the mirror land; the second one unit beyond the
    mirror's cap (where the band leaves room) is refused with the mirror's reason."""
    s = market
    iid = s.instruments["btc-call" if kind == KIND_CALL else "btc-put"]
    strike = code_strike(iid % 2**32)
    spot = SPOTS[BTC]
    ra = s.flat_option_ra(BTC, scale)
    with chain_snapshot():
        old_mark, _e, old_ts, _ = s.oracle_views.risk_array(iid)
        m1, ra1 = bound_option(
            kind, strike, spot, WAD // 2, 2 * WAD, mark1, ra, (old_mark, old_ts), old_ts + 1
        )
        s.post([], [s.option_item(iid, m1, ra1)], timestamp=old_ts + 1, bounded=False)
        assert s.oracle_views.risk_array(iid)[0] == m1
        ts2 = old_ts + 1 + dt
        spot_old, _psr, spot_ts = s.oracle.underlying_state(BTC)
        # the spot as the keeper posts it: within its cap for the time since its last post
        rate = gap_rate(WAD // 2, PSR)
        spot2 = clamp_price(spot * spot_pct // 100, (spot_old, spot_ts), rate, ts2)
        s.sleep(dt + 1)
        unds = [(BTC, spot2, PSR)]
        m2, ra2 = bound_option(
            kind, strike, spot2, WAD // 2, 2 * WAD, mark2, ra, (m1, old_ts + 1), ts2
        )
        assert m2 == clamp_mark(kind, strike, spot2, WAD // 2, mark2, (m1, old_ts + 1), ts2)
        lo, hi = band(kind, strike, spot2)
        ref = min(max(m1, lo), hi)
        beyond = ref + deviation_cap(ref, spot2, WAD // 2, dt) + 1
        if beyond <= hi:
            with ape.reverts("oracle: mark deviation"):
                s.post(unds, [s.option_item(iid, beyond, [0] * 35)], timestamp=ts2, bounded=False)
        s.post(unds, [s.option_item(iid, m2, ra2)], timestamp=ts2, bounded=False)
        assert s.oracle_views.risk_array(iid)[0] == m2
