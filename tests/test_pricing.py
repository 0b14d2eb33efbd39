"""Black-76: golden values (Haug 1998), no-arbitrage properties, Greeks, edges, bad inputs."""

import csv
import math
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.pricing import (
    black76_delta,
    black76_gamma,
    black76_price,
    black76_theta,
    black76_vega,
)

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"
GOLDEN_TOL = 1e-4  # the published values carry 4 decimals


def _golden_rows() -> list[dict[str, str]]:
    path = GOLDEN_DIR / "black76.csv"
    with path.open() as fh:
        lines = [line for line in fh if not line.startswith("#")]
    return list(csv.DictReader(lines))


GOLDEN = _golden_rows()


def test_golden_file_has_rows():
    assert len(GOLDEN) >= 9
    assert {row["quantity"] for row in GOLDEN} == {"price", "delta"}


@pytest.mark.parametrize(
    "row", GOLDEN, ids=lambda r: f"{r['quantity']}-{r['type']}-{r['F']}-{r['K']}"
)
def test_golden_black76(row):
    """Every row of tests/golden/black76.csv (Haug, The Complete Guide..., 1998)."""
    args = tuple(float(row[k]) for k in ("F", "K", "T", "sigma", "r"))
    is_call = row["type"] == "call"
    fn = {"price": black76_price, "delta": black76_delta}[row["quantity"]]
    F, K, T, sigma, r = args
    assert fn(F, K, T, sigma, r, is_call) == pytest.approx(float(row["published"]), abs=GOLDEN_TOL)


def test_golden_vectorised_equals_scalar():
    rows = [r for r in GOLDEN if r["quantity"] == "price"]
    cols = {k: np.array([float(r[k]) for r in rows]) for k in ("F", "K", "T", "sigma", "r")}
    flags = np.array([r["type"] == "call" for r in rows])
    vec = black76_price(cols["F"], cols["K"], cols["T"], cols["sigma"], cols["r"], flags)
    assert isinstance(vec, np.ndarray) and vec.shape == (len(rows),)
    for i, r in enumerate(rows):
        assert vec[i] == pytest.approx(float(r["published"]), abs=GOLDEN_TOL)


# Strategies: moneyness within a factor e^3, vols up to 300%, up to 5 years.
fwd = st.floats(1e-2, 1e6)
money = st.floats(-3.0, 3.0)
tenor = st.floats(0.0, 5.0)
vol = st.floats(0.0, 3.0)
rate = st.floats(-0.05, 0.2)


@settings(max_examples=200, deadline=None)
@given(F=fwd, m=money, T=tenor, sigma=vol, r=rate)
def test_put_call_parity(F, m, T, sigma, r):
    K = F * math.exp(m)
    c = black76_price(F, K, T, sigma, r, True)
    p = black76_price(F, K, T, sigma, r, False)
    assert c - p == pytest.approx(math.exp(-r * T) * (F - K), abs=1e-10 * (F + K))


@settings(max_examples=200, deadline=None)
@given(F=fwd, m=money, T=tenor, sigma=vol, r=rate, is_call=st.booleans())
def test_price_bounds(F, m, T, sigma, r, is_call):
    K = F * math.exp(m)
    df = math.exp(-r * T)
    price = black76_price(F, K, T, sigma, r, is_call)
    intrinsic = max(F - K, 0.0) if is_call else max(K - F, 0.0)
    upper = F if is_call else K
    slack = 1e-14 * df * upper  # numpy's exp may differ from math.exp by an ulp
    assert df * intrinsic - slack <= price <= df * upper + slack
    assert math.isfinite(price)


@settings(max_examples=200, deadline=None)
@given(
    F=fwd,
    m=money,
    T=st.floats(0.01, 5.0),
    sigma=st.floats(0.01, 3.0),
    r=rate,
    bump=st.floats(1e-3, 0.5),
)
def test_monotone_in_forward_and_vol(F, m, T, sigma, r, bump):
    K = F * math.exp(m)
    slack = 1e-12 * (F + K)
    c0, p0 = (black76_price(F, K, T, sigma, r, flag) for flag in (True, False))
    c1, p1 = (black76_price(F * (1 + bump), K, T, sigma, r, flag) for flag in (True, False))
    assert c1 >= c0 - slack  # calls rise with F
    assert p1 <= p0 + slack  # puts fall with F
    for flag in (True, False):
        lo = black76_price(F, K, T, sigma, r, flag)
        hi = black76_price(F, K, T, sigma + bump, r, flag)
        assert hi >= lo - slack


@settings(max_examples=200, deadline=None)
@given(F=fwd, m=money, T=tenor, sigma=vol, r=rate, is_call=st.booleans())
def test_vega_and_gamma_non_negative(F, m, T, sigma, r, is_call):
    K = F * math.exp(m)
    assert black76_vega(F, K, T, sigma, r, is_call) >= 0.0
    assert black76_gamma(F, K, T, sigma, r, is_call) >= 0.0


def test_gamma_of_a_subnormal_volatility_is_zero_not_nan():
    """Regression (hypothesis, shrunk): sigma = 5e-324 makes F * sigma * sqrt(T) underflow to 0
    while n(d1) is 0 too; gamma is 0 there, not 0/0 = NaN."""
    for is_call in (True, False):
        g = black76_gamma(0.5, 1.3591409142295225, 1.0, 5e-324, 0.0, is_call)
        assert g == 0.0
        assert black76_vega(0.5, 1.3591409142295225, 1.0, 5e-324, 0.0, is_call) == 0.0


@pytest.mark.parametrize("is_call", [True, False])
@pytest.mark.parametrize("F,K,T,sigma,r", [(100, 90, 0.5, 0.3, 0.05), (100, 120, 2.0, 0.8, 0.01)])
def test_greeks_match_finite_differences(F, K, T, sigma, r, is_call):
    h = 1e-4

    def price(**kw):
        args = {"F": F, "K": K, "T": T, "sigma": sigma, "r": r} | kw
        return black76_price(args["F"], args["K"], args["T"], args["sigma"], args["r"], is_call)

    delta = (price(F=F + h) - price(F=F - h)) / (2 * h)
    hg = 1e-2  # wider step for the second difference (rounding noise ~ eps * V / h**2)
    gamma = (price(F=F + hg) - 2 * price() + price(F=F - hg)) / hg**2
    vega = (price(sigma=sigma + h) - price(sigma=sigma - h)) / (2 * h)
    theta = -(price(T=T + h) - price(T=T - h)) / (2 * h)
    assert black76_delta(F, K, T, sigma, r, is_call) == pytest.approx(delta, rel=1e-6)
    assert black76_gamma(F, K, T, sigma, r, is_call) == pytest.approx(gamma, rel=1e-4)
    assert black76_vega(F, K, T, sigma, r, is_call) == pytest.approx(vega, rel=1e-6)
    assert black76_theta(F, K, T, sigma, r, is_call) == pytest.approx(theta, rel=1e-6)


def test_worked_number_in_docstring():
    """Haug's F = K = 19 example: v = 0.28 sqrt(0.75), d1 = v / 2, call = put."""
    v = 0.28 * math.sqrt(0.75)
    d1 = v / 2
    n = 0.5 * (1 + math.erf(d1 / math.sqrt(2)))
    expected = math.exp(-0.075) * 19 * (2 * n - 1)
    assert black76_price(19, 19, 0.75, 0.28, 0.10, True) == pytest.approx(expected, rel=1e-14)
    assert black76_price(19, 19, 0.75, 0.28, 0.10, False) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("F,K", [(110.0, 100.0), (90.0, 100.0), (100.0, 100.0)])
@pytest.mark.parametrize("T,sigma", [(0.0, 0.3), (1.0, 0.0), (0.0, 0.0)])
def test_expiry_or_zero_vol_is_discounted_intrinsic(F, K, T, sigma):
    r = 0.05
    df = math.exp(-r * T)
    assert black76_price(F, K, T, sigma, r, True) == pytest.approx(df * max(F - K, 0), abs=1e-15)
    assert black76_price(F, K, T, sigma, r, False) == pytest.approx(df * max(K - F, 0), abs=1e-15)
    assert black76_gamma(F, K, T, sigma, r, True) == 0.0
    # Vega is the right derivative at sigma = 0: df F n(0) sqrt(T) at the money, 0 elsewhere.
    atm_vega = df * F * math.sqrt(T) / math.sqrt(2 * math.pi) if F == K else 0.0
    assert black76_vega(F, K, T, sigma, r, True) == pytest.approx(atm_vega, abs=1e-15)
    delta = black76_delta(F, K, T, sigma, r, True)
    assert delta == pytest.approx(df * (1.0 if F > K else 0.0 if F < K else 0.5))
    assert black76_theta(F, K, T, sigma, r, True) == pytest.approx(r * df * max(F - K, 0))


@pytest.mark.parametrize(
    "fn", [black76_price, black76_delta, black76_gamma, black76_vega, black76_theta]
)
def test_extreme_strikes_and_moneyness_have_no_nan(fn):
    K = np.array([1e-300, 1e-12, 1.0, 1e12, 1e300])
    with np.errstate(over="raise", divide="raise", invalid="raise"):
        for is_call in (True, False):
            out = fn(1.0, K, np.array([[0.0], [1e-8], [1.0], [50.0]]), 0.5, 0.03, is_call)
            assert out.shape == (4, 5)
            assert np.all(np.isfinite(out))


def test_deep_itm_and_otm_values():
    assert black76_price(1.0, 1e-300, 1.0, 0.5, 0.0, True) == pytest.approx(1.0)
    assert black76_price(1.0, 1e300, 1.0, 0.5, 0.0, True) == 0.0
    assert black76_price(1.0, 1e300, 1.0, 0.5, 0.0, False) == pytest.approx(1e300)
    assert black76_price(100.0, 1.0, 0.01, 0.1, 0.0, True) == pytest.approx(99.0, rel=1e-15)


def test_scalar_returns_float_and_arrays_broadcast():
    assert isinstance(black76_price(100, 100, 1, 0.2, 0, True), float)
    out = black76_price(
        np.array([90.0, 100.0, 110.0]), 100.0, 1.0, 0.2, 0.0, np.array([[True], [False]])
    )
    assert out.shape == (2, 3)
    assert out[0, 0] < out[0, 1] < out[0, 2]
    assert out[1, 0] > out[1, 1] > out[1, 2]
    assert black76_price(100, 100, 1, 0.2, 0, 1) == black76_price(100, 100, 1, 0.2, 0, True)


@pytest.mark.parametrize(
    "fn", [black76_price, black76_delta, black76_gamma, black76_vega, black76_theta]
)
@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"F": 0.0}, "F must be > 0"),
        ({"F": -1.0}, "F must be > 0"),
        ({"K": 0.0}, "K must be > 0"),
        ({"K": np.array([1.0, -1.0])}, "K must be > 0"),
        ({"T": -1e-9}, "T must be >= 0"),
        ({"sigma": -0.1}, "sigma must be >= 0"),
        ({"F": float("nan")}, "F must be finite"),
        ({"r": float("inf")}, "r must be finite"),
        ({"sigma": "high"}, "sigma must be numeric"),
        ({"is_call": 2}, "is_call must be bool"),
        ({"is_call": "call"}, "is_call must be bool"),
        ({"F": np.ones(3), "K": np.ones(2)}, r"shapes do not broadcast: F \(3,\), K \(2,\)"),
    ],
)
def test_bad_inputs_name_the_argument(fn, kwargs, match):
    args = {"F": 100.0, "K": 100.0, "T": 1.0, "sigma": 0.2, "r": 0.0, "is_call": True} | kwargs
    with pytest.raises(ValueError, match=match):
        fn(**args)


def test_regression_bounds_at_zero_vol_within_an_ulp():
    """Shrunk hypothesis case: numpy's exp and math.exp may differ by one ulp."""
    F, K, T, r = 1.0, math.e, 2.0, 0.1875
    price = black76_price(F, K, T, 0.0, r, False)
    assert price == pytest.approx(math.exp(-r * T) * (K - F), rel=1e-15)


def test_regression_denormal_vol_time_gives_no_warning():
    """Shrunk hypothesis case: sigma sqrt(T) denormal; gamma is +inf at the money, no warning."""
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = black76_gamma(1.0, 1.0, 6.666325222396796e-211, 6.666325222396796e-211, 0.0, False)
        v = black76_vega(1.0, 1.0, 6.666325222396796e-211, 6.666325222396796e-211, 0.0, False)
    assert g == math.inf and v >= 0.0
