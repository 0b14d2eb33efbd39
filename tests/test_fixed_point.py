"""docs/fixed-point.md §2-§3: division helpers, to_wad, risk-array encoding, futures arrays."""

import math
from decimal import Decimal
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.fixed_point import (
    INT16_MAX,
    INT16_MIN,
    MAX_PRICE,
    MAX_SCENARIOS,
    MAX_SIZE,
    WAD,
    curve_shift_wad,
    decode_risk_array,
    div_ceil,
    div_floor,
    div_trunc,
    encode_risk_array,
    futures_risk_array_wad,
    risk_array_exponent,
    to_wad,
)

big = st.integers(-(2**255), 2**255 - 1)
divisor = st.integers(1, 2**128)
# Risk arrays: anything from wei to far beyond realistic USD values.
ra_value = st.one_of(st.integers(-(2**20), 2**20), st.integers(-(2**200), 2**200))
risk_array = st.lists(ra_value, min_size=1, max_size=MAX_SCENARIOS)
size = st.integers(-MAX_SIZE, MAX_SIZE)


# §2 division -------------------------------------------------------------------------------


def test_division_examples():
    assert (div_trunc(-7, 2), div_floor(-7, 2), div_ceil(-7, 2)) == (-3, -4, -3)
    assert (div_trunc(7, 2), div_floor(7, 2), div_ceil(7, 2)) == (3, 3, 4)
    assert (div_trunc(-6, 3), div_floor(-6, 3), div_ceil(-6, 3)) == (-2, -2, -2)
    assert (div_trunc(0, 5), div_floor(0, 5), div_ceil(0, 5)) == (0, 0, 0)


@settings(max_examples=200)
@given(a=big, b=divisor)
def test_division_matches_exact_rational(a, b):
    exact = Fraction(a, b)
    assert div_floor(a, b) == math.floor(exact)
    assert div_ceil(a, b) == math.ceil(exact)
    assert div_trunc(a, b) == math.trunc(exact)
    assert div_floor(a, b) <= exact <= div_ceil(a, b)
    assert abs(div_trunc(a, b)) <= abs(exact)


@pytest.mark.parametrize("fn", [div_trunc, div_floor, div_ceil])
def test_division_bad_inputs(fn):
    with pytest.raises(ValueError, match="b must be > 0"):
        fn(1, 0)
    with pytest.raises(ValueError, match="b must be > 0"):
        fn(1, -3)
    with pytest.raises(ValueError, match="a must be an int"):
        fn(1.5, 2)
    with pytest.raises(ValueError, match="b must be an int"):
        fn(1, 2.0)
    with pytest.raises(ValueError, match="a must be an int"):
        fn(True, 2)


# to_wad ------------------------------------------------------------------------------------


def test_to_wad_scalars_and_arrays():
    assert to_wad(1.5) == 3 * WAD // 2
    assert to_wad(-0.25) == -WAD // 4
    assert to_wad(0) == 0
    assert to_wad(np.float64(2.0)) == 2 * WAD
    nested = to_wad(np.array([[1.0, -2.0], [0.5, 0.0]]))
    assert nested == [[WAD, -2 * WAD], [WAD // 2, 0]]
    assert all(isinstance(v, int) for row in nested for v in row)


def test_to_wad_takes_the_decimal_a_value_is_written_as():
    # 0.07 * 1e18 in float arithmetic is 70000000000000008: the decimal reading is exact.
    assert 0.07 * 1e18 != 7 * 10**16
    assert to_wad(0.07) == to_wad("0.07") == to_wad(Decimal("0.07")) == 7 * 10**16
    assert to_wad(0.1) == 10**17 and to_wad("0.2") == 2 * 10**17 and to_wad(9000) == 9000 * WAD
    assert to_wad(10**30) == 10**48  # ints exactly, beyond float and default Decimal precision
    assert to_wad("123456789012345678.123456789012345678") == 123456789012345678123456789012345678


def test_to_wad_rounds_half_to_even_beyond_18_decimals():
    assert to_wad(2.5e-18) == 2 and to_wad(3.5e-18) == 4 and to_wad(-2.5e-18) == -2
    assert to_wad("0.0000000000000000014") == 1 and to_wad("-0.0000000000000000016") == -2


@given(
    st.decimals(
        allow_nan=False, allow_infinity=False, places=18, min_value=-(10**9), max_value=10**9
    )
)
def test_to_wad_is_exact_up_to_18_decimals(value):
    assert to_wad(value) == int(value * 10**18) == to_wad(str(value))


@pytest.mark.parametrize(
    "bad,message",
    [
        (float("nan"), "nan is not finite"),
        (float("inf"), "inf is not finite"),
        ([1.0, float("-inf")], "-inf is not finite"),
        ("NaN", "NaN is not finite"),
        ("abc", "'abc' is not a number"),
        (True, "got bool"),
    ],
)
def test_to_wad_bad_inputs(bad, message):
    with pytest.raises(ValueError, match=message):
        to_wad(bad)


# §3 encoding ------------------------------------------------------------------------------


def test_encoding_worked_example():
    """-3 USD and +0.5 USD: bitlen(3e18 - 1) = 62, so e = 47; 3e18 / 2**47 = 21316.2 -> -21317."""
    e, entries = encode_risk_array([-3 * WAD, WAD // 2])
    assert (e, entries) == (47, [-21317, 3552])
    assert decode_risk_array(e, entries) == [-21317 * 2**47, 3552 * 2**47]


def test_encoding_small_values_are_exact():
    ra = [0, 1, -1, INT16_MAX, INT16_MIN, 12345]
    assert encode_risk_array(ra) == (0, ra)
    assert encode_risk_array([INT16_MAX + 1]) == (1, [2**14])
    assert encode_risk_array([INT16_MIN - 1]) == (1, [-(2**14) - 1])


@settings(max_examples=200)
@given(ra=risk_array)
def test_encoding_bounds_and_precision(ra):
    e, entries = encode_risk_array(ra)
    assert e == risk_array_exponent(ra)
    assert 0 <= e <= 255
    assert all(INT16_MIN <= v <= INT16_MAX for v in entries)
    decoded = decode_risk_array(e, entries)
    for x, d in zip(ra, decoded, strict=True):
        assert d <= x < d + 2**e  # never overstates a long unit's gain
    if e > 0:
        # e is the smallest that fits: some entry uses the full 15 magnitude bits, and every
        # entry keeps the error below 2**-14 of the largest value.
        assert max(v if v >= 0 else -v - 1 for v in entries) >= 2**14
        biggest = max(abs(x) for x in ra)
        assert all(x - d < biggest * 2.0**-14 for x, d in zip(ra, decoded, strict=True))


@settings(max_examples=200)
@given(ra=risk_array, q=size)
def test_encode_round_trip_never_understates_a_loss(ra, q):
    """For any sign of q: decoded loss + precision pad (shorts) >= true loss (all WAD**2)."""
    e, entries = encode_risk_array(ra)
    pad = -q * 2**e if q < 0 else 0
    for x, d in zip(ra, decode_risk_array(e, entries), strict=True):
        true_loss = -q * x
        assert -q * d + pad >= true_loss
        # ... and the pad is tight: less than one unit of 2**e per contract above the truth
        assert -q * d + pad - true_loss <= abs(q) * 2**e


def test_encoding_bad_inputs():
    with pytest.raises(ValueError, match="must not be empty"):
        encode_risk_array([])
    with pytest.raises(ValueError, match="at most 39"):
        encode_risk_array([0] * 40)
    with pytest.raises(ValueError, match="does not fit uint8"):
        encode_risk_array([2**300])
    with pytest.raises(ValueError, match="must be an int"):
        encode_risk_array([1.0])


@pytest.mark.parametrize(
    "e,entries,match",
    [
        (-1, [0], "e must be in"),
        (256, [0], "e must be in"),
        (0, [], "1..39"),
        (0, [0] * 40, "1..39"),
        (0, [INT16_MAX + 1], "must be int16"),
        (0, [INT16_MIN - 1], "must be int16"),
        (0, [0.5], "must be an int"),
        (1.0, [0], "e must be an int"),
    ],
)
def test_decoding_bad_inputs(e, entries, match):
    with pytest.raises(ValueError, match=match):
        decode_risk_array(e, entries)


# §3 futures --------------------------------------------------------------------------------


def test_futures_array_worked_example():
    """Mark 100, PSR 16%: +1/3 -> 100 * floor(0.16/3 in WAD) = 5.3333333333333333, and the CME
    extreme -0.7 -> -11.2 exactly."""
    c = [WAD // 3, -7 * WAD // 10, 0]
    ra = futures_risk_array_wad(100 * WAD, c, 16 * WAD // 100)
    # lin = floor(333333333333333333 * 0.16e18 / 1e18) = 53333333333333333
    assert ra == [100 * 53333333333333333, -112 * WAD // 10, 0]


def test_futures_array_floors_negative_quotients():
    """§3 says div_floor in both steps: a down scenario with non-integer quotients rounds toward
    minus infinity (a long's loss is never understated). Truncation toward zero would give
    lin = -53333333333333333 and ra = trunc(-79999999999999999.5) = -79999999999999999."""
    c = -(WAD // 3)  # -333333333333333333
    psr = 16 * WAD // 100
    # c * psr / WAD = -53333333333333333.28: floor -53333333333333334
    assert div_floor(c * psr, WAD) == -53333333333333334
    assert div_trunc(c * psr, WAD) == -53333333333333333
    # 1.5 * -53333333333333334 = -80000000000000001 exactly; with mark 1.5 + 1 wei the
    # quotient is non-integer again and floors one further
    assert futures_risk_array_wad(3 * WAD // 2, [c], psr) == [-80000000000000001]
    assert futures_risk_array_wad(3 * WAD // 2 + 1, [c], psr) == [-80000000000000002]
    # up scenarios are unchanged: floor == trunc for non-negative quotients
    assert futures_risk_array_wad(3 * WAD // 2, [-c], psr) == [79999999999999999]


@settings(max_examples=200)
@given(
    mark=st.integers(1, MAX_PRICE - 1),
    c=st.lists(st.integers(-10 * WAD, 10 * WAD), min_size=1, max_size=MAX_SCENARIOS),
    psr=st.integers(1, WAD),
)
def test_futures_array_is_floored_linear_value(mark, c, psr):
    ra = futures_risk_array_wad(mark, c, psr)
    for cs, x in zip(c, ra, strict=True):
        lin = math.floor(Fraction(cs * psr, WAD))
        assert x == math.floor(Fraction(mark * lin, WAD))
        exact = Fraction(mark * cs * psr, WAD * WAD)
        # Floor in both steps: ra <= exact (a long's value change is never overstated, its
        # loss never understated) and the gap is below mark/WAD + 1 wei.
        assert x <= exact
        assert exact - x < Fraction(mark, WAD) + 1


@pytest.mark.parametrize(
    "mark,c,psr,match",
    [
        (0, [WAD], WAD // 10, "mark must be in"),
        (MAX_PRICE, [WAD], WAD // 10, "mark must be in"),
        (WAD, [WAD], 0, "psr must be in"),
        (WAD, [WAD], WAD + 1, "psr must be in"),
        (WAD, [], WAD // 10, "c must hold"),
        (WAD, [0] * 40, WAD // 10, "c must hold"),
        (WAD, [0.5], WAD // 10, "c\\[s\\] must be an int"),
        (1.0, [WAD], WAD // 10, "mark must be an int"),
    ],
)
def test_futures_array_bad_inputs(mark, c, psr, match):
    with pytest.raises(ValueError, match=match):
        futures_risk_array_wad(mark, c, psr)


@pytest.mark.parametrize("module", ["fixed_point", "pricing", "scenarios", "margin"])
def test_docstring_examples(module):
    """The worked numbers in the docstrings are executed, so they cannot drift from the code."""
    import doctest
    import importlib

    result = doctest.testmod(importlib.import_module(f"offchain.{module}"))
    assert result.attempted > 0 and result.failed == 0


# §3 curve shift --------------------------------------------------------------------------------


def test_curve_shift_ramps_the_near_leg_out_over_the_roll_window():
    """h = basis * tau - roll ramp: 0 ramp from R on, half a PSR at 3R/4, a full PSR from R/2
    to expiry and after it; no expiry: 0; the doc's values."""
    basis, roll, psr, year = WAD // 20, 4 * 86_400, WAD // 10, 31_536_000
    assert curve_shift_wad(0, 5, basis, roll, psr) == 0
    assert curve_shift_wad(roll, 0, basis, roll, psr) == basis * roll // year
    assert (
        curve_shift_wad(3 * roll // 4, 0, basis, roll, psr)
        == basis * (3 * roll // 4) // year - psr // 2
    )
    for tau in (roll // 2, 1, 0):
        assert curve_shift_wad(1000 + tau, 1000, basis, roll, psr) == basis * tau // year - psr
    assert curve_shift_wad(10, 1000, basis, roll, psr) == -psr  # expired: tau = 0
    assert curve_shift_wad(5 * year, 0, WAD // 2, 0, psr) == WAD  # tau capped at 2 years
    assert curve_shift_wad(91 * 86_400, 0, basis, roll, psr) == 12465753424657534


@pytest.mark.parametrize(
    "args,match",
    [
        ((1, 0, WAD // 2 + 1, 0, 0), "basis"),
        ((1, 0, 0, 14 * 86_400 + 1, 0), "roll"),
        ((1, 0, 0, 0, WAD + 1), "psr"),
        ((-1, 0, 0, 0, 0), "expiry and ts"),
    ],
)
def test_curve_shift_refuses_out_of_bounds_inputs(args, match):
    with pytest.raises(ValueError, match=match):
        curve_shift_wad(*args)


def test_futures_array_adds_the_floored_tilt_move():
    """lin[s] = div_floor(c * psr, WAD) + div_floor(t * h, WAD), floored for either sign."""
    psr, mark = 16 * WAD // 100, 100 * WAD
    h = -(WAD // 3)
    ra = futures_risk_array_wad(mark, [0, WAD // 3, 0], psr, [WAD, 0, -WAD // 7], h)
    assert ra[0] == mark * div_floor(WAD * h, WAD) // WAD
    assert ra[1] == futures_risk_array_wad(mark, [WAD // 3], psr)[0]
    assert ra[2] == div_floor(mark * div_floor(-WAD // 7 * h, WAD), WAD)
    with pytest.raises(ValueError, match="one tilt per scenario"):
        futures_risk_array_wad(mark, [0, 0], psr, [0], h)
