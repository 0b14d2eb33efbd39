"""Capital efficiency: the orderings that must hold between the three margin regimes."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.backtest import STRATEGIES
from offchain.capital_efficiency import MarketPoint, efficiency_table, market_point
from offchain.data import load_backtest_series

SINGLE = {s.name for s in STRATEGIES if s.n_legs == 1}
OPTION_ONLY = {
    s.name for s in STRATEGIES if all(leg.kind != 0 for leg in s.legs) and not s.delta_hedge
}


def _by_name(point: MarketPoint) -> dict:
    return {r.strategy: r for r in efficiency_table(point)}


@pytest.fixture(scope="module", params=["BTC", "ETH"])
def table(request):
    return _by_name(market_point(load_backtest_series(request.param)))


def test_market_point_is_the_last_close():
    point = market_point(load_backtest_series("ETH"))
    assert point.as_of == "2026-01-05"
    assert point.forward == pytest.approx(3139.057042)
    assert 0.04 <= point.psr <= 0.5 and 0.1 < point.iv < 3.0


def test_netting_never_costs(table):
    """(a) <= (b): a scan over all legs is at most the sum of the legs' scans (and the
    short-option minimum is additive), for every strategy."""
    for r in table.values():
        assert r.portfolio <= r.sum_of_legs * (1 + 1e-12), r


def test_single_leg_strategies_are_margined_alike(table):
    for name in SINGLE:
        r = table[name]
        assert r.portfolio == pytest.approx(r.sum_of_legs, rel=1e-12)


def test_hedged_books_are_cheaper_than_their_naked_short_leg(table):
    """Covered call < long future + naked short call; spreads and the condor < their naked
    short legs; the delta hedge < the naked short call."""
    naked_call = table["short call"].portfolio
    naked_put = table["short put"].portfolio
    assert table["covered call"].portfolio < table["covered call"].sum_of_legs
    assert table["covered call"].portfolio < table["long future"].portfolio + naked_call
    assert table["bull call spread"].portfolio < naked_call
    assert table["calendar spread"].portfolio < naked_call
    assert table["iron condor"].portfolio < naked_call + naked_put
    assert table["delta-hedged short call"].portfolio < naked_call
    for name in ("covered call", "bull call spread", "calendar spread", "iron condor"):
        assert table[name].legs_ratio > 1.5, name


def test_full_collateral_locks_the_worst_payoff(table):
    """(c): a short call locks one forward, a short put its strike; long options lock nothing."""
    fwd = table["short call"].full_collateral
    assert table["short put"].full_collateral == pytest.approx(fwd)  # ATM put: strike = F
    assert table["short straddle"].full_collateral == pytest.approx(2 * fwd)
    assert table["bull call spread"].full_collateral == pytest.approx(fwd)
    assert table["iron condor"].full_collateral == pytest.approx(fwd + 0.9 * fwd)
    for name in OPTION_ONLY:
        assert table[name].full_collateral >= table[name].portfolio, name
        assert table[name].collateral_ratio >= 1.0


@settings(max_examples=25, deadline=None)
@given(
    fwd=st.floats(10.0, 200_000.0),
    psr=st.floats(0.02, 0.5),
    iv=st.floats(0.1, 2.0),
)
def test_orderings_hold_at_any_market_state(fwd, psr, iv):
    table = _by_name(MarketPoint("X", "t", fwd, psr, iv))
    for r in table.values():
        assert 0.0 < r.portfolio <= r.sum_of_legs * (1 + 1e-12)
    for name in OPTION_ONLY:
        assert table[name].portfolio <= table[name].full_collateral * (1 + 1e-12)


def test_margin_is_homogeneous_in_the_price_level():
    """All legs scale with the forward at fixed PSR and vol: margins scale by the same factor."""
    a = _by_name(MarketPoint("X", "t", 1000.0, 0.1, 0.6))
    b = _by_name(MarketPoint("X", "t", 3000.0, 0.1, 0.6))
    for name, r in a.items():
        assert b[name].portfolio == pytest.approx(3 * r.portfolio, rel=1e-9)
        assert b[name].full_collateral == pytest.approx(3 * r.full_collateral, rel=1e-9)


@pytest.mark.parametrize("kwargs", [{"forward": 0.0}, {"psr": 1.5}, {"iv": 0.0}])
def test_market_point_validates(kwargs):
    base = {"asset": "X", "as_of": "t", "forward": 1.0, "psr": 0.1, "iv": 0.5}
    with pytest.raises(ValueError):
        MarketPoint(**{**base, **kwargs})
