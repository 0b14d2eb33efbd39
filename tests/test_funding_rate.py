"""The funding-rate formula (offchain/funding_rate.py): hand-worked examples, signs, the
dampener's dead band, the cap, rounding and refused inputs."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offchain.fixed_point import WAD
from offchain.funding_rate import FUNDING_PERIOD_HOURS, hourly_funding_rate, premium_wad
from offchain.params import margin_params

INTEREST = 10**14  # 0.01% per 8 hours
DAMP = 5 * 10**14  # 0.05%
CAP = 3 * 10**16  # 3% per hour


def rate(mark: float | int, index: float | int, cap: int = CAP) -> int:
    return hourly_funding_rate(
        int(mark * WAD), int(index * WAD), interest=INTEREST, dampener=DAMP, cap=cap
    )


def test_at_the_index_the_rate_is_the_interest_an_eighth_each_hour():
    # 0.01% / 8 = 0.00125% per hour: longs pay shorts the interest
    assert rate(10_000, 10_000) == 12_500_000_000_000 == INTEREST // 8


def test_hyperliquids_worked_example_premium_one_percent():
    # Hyperliquid docs: premium 1%, interest 0.01% -> 1% + clamp(0.01% - 1%) = 0.95% per 8h
    assert premium_wad(10_100 * WAD, 10_000 * WAD) == 10**16
    assert rate(10_100, 10_000) == (10**16 - DAMP) // 8 == 1_187_500_000_000_000


def test_a_discount_makes_shorts_pay_longs():
    # premium -1%: -1% + clamp(0.01% + 1%, -0.05%, 0.05%) = -0.95% per 8 hours
    assert rate(9_900, 10_000) == -(10**16 - DAMP) // 8 == -1_187_500_000_000_000


def test_a_premium_within_the_dampener_of_the_interest_pays_the_interest():
    # |i - p| <= 0.05%: the clamp returns i - p, so F = i for every p in [-0.04%, 0.06%]
    for mark in (9_996, 9_999, 10_000, 10_003, 10_006):
        assert rate(mark, 10_000) == INTEREST // 8, mark
    # just outside the band the premium shows through, less the dampener
    assert rate(10_007, 10_000) == (7 * 10**14 - DAMP) // 8 > INTEREST // 8
    assert rate(9_995, 10_000) == 0  # p = -0.05%: -0.05% + 0.05% = 0


def test_the_rate_is_capped_on_both_sides():
    assert rate(20_000, 10_000) == CAP  # premium 100%: (1 - 0.0005) / 8 = 12.49% > 3%
    assert rate(5_000, 10_000) == -CAP
    small = 10**15  # 0.1% per hour
    assert rate(10_100, 10_000, cap=small) == small
    assert rate(9_900, 10_000, cap=small) == -small


def test_rounding_is_toward_zero_in_the_premium_and_the_hourly_split():
    # premium of 1 wei over an index of 3 WAD: 1 * WAD / (3 * WAD) = 0.33 -> 0
    assert premium_wad(3 * WAD + 1, 3 * WAD) == 0
    assert premium_wad(3 * WAD - 1, 3 * WAD) == 0
    # 8-hour rate -7 wei beyond the band: -7 / 8 -> 0 (not -1)
    assert hourly_funding_rate(WAD, WAD, interest=-7, dampener=10, cap=CAP) == 0
    assert hourly_funding_rate(WAD, WAD, interest=7, dampener=10, cap=CAP) == 0
    assert hourly_funding_rate(WAD, WAD, interest=-8, dampener=10, cap=CAP) == -1


@given(
    index=st.integers(10**15, 10**24),
    bps=st.integers(-5_000, 5_000),
)
def test_sign_follows_the_premium_beyond_the_band_and_mirrors_without_interest(index, bps):
    mark_up = index + index * bps // 10_000
    if mark_up <= 0:
        return
    r = hourly_funding_rate(mark_up, index, interest=INTEREST, dampener=DAMP, cap=CAP)
    assert -CAP <= r <= CAP
    p = premium_wad(mark_up, index)
    if p > INTEREST + DAMP:
        assert r > 0
    if p < INTEREST - DAMP:
        assert r < 0
    # without interest the formula is odd in the premium (rounding is toward zero)
    mark_down = 2 * index - mark_up
    if mark_down > 0:
        up = hourly_funding_rate(mark_up, index, interest=0, dampener=DAMP, cap=CAP)
        down = hourly_funding_rate(mark_down, index, interest=0, dampener=DAMP, cap=CAP)
        assert up == -down


def test_the_shipped_parameters_give_hyperliquids_numbers():
    f = margin_params().funding
    assert (f.wad("interest"), f.wad("dampener"), f.wad("cap_per_hour")) == (INTEREST, DAMP, CAP)
    assert f.im_reserve_hours == FUNDING_PERIOD_HOURS


@pytest.mark.parametrize(
    "kwargs,message",
    [
        ({"perp_mark": WAD, "index": 0}, "index must be > 0"),
        ({"perp_mark": 0, "index": WAD}, "perp_mark must be > 0"),
        ({"perp_mark": 1.5, "index": WAD}, "perp_mark must be an int"),
        ({"perp_mark": WAD, "index": WAD, "cap": 0}, "cap must be > 0"),
        ({"perp_mark": WAD, "index": WAD, "dampener": -1}, "dampener must be >= 0"),
    ],
)
def test_bad_inputs_are_refused_with_the_argument_named(kwargs, message):
    args = {"interest": INTEREST, "dampener": DAMP, "cap": CAP} | kwargs
    with pytest.raises(ValueError, match=message):
        hourly_funding_rate(**args)
