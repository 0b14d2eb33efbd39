"""Margin: the integer model of docs/fixed-point.md §4-§6 and the vectorised float model."""

import math
from fractions import Fraction

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.fixed_point import (
    INT16_MAX,
    INT16_MIN,
    MAX_SIZE,
    WAD,
    futures_risk_array_wad,
    scenario_lin_wad,
)
from offchain.margin import (
    AccountInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarketArrays,
    MarketInt,
    UnderlyingInt,
    UnderlyingRisk,
    account_margin_int,
    equity_int,
    margin_of_accounts,
    scenario_losses,
    settlement_cash,
    trade_cash_amount,
    underlying_risk_int,
)
from offchain.risk_arrays import (
    Instruments,
    MarketState,
    VolSurface,
    market_arrays,
    market_int,
    risk_arrays,
    risk_arrays_wad,
    spot_leg_arrays,
)
from offchain.scenarios import CRYPTO_35

IM_125 = 125 * 10**16

# --------------------------------------------------------------------------------------------
# Hand-computed worked examples (integer model)
# --------------------------------------------------------------------------------------------


def test_worked_example_short_call_som_binds():
    """One short call; array [0, +1234.5, -300] USD per long unit (the module docstring).

    1234.5e18 = 1.2345e21 lies in [2**70, 2**71): bitlen 71, so e = 71 - 15 = 56.
    entries: 1234.5e18 >> 56 = 17132, -300e18 >> 56 = -4164 (floor). The short's loss in
    scenario 1 is 17132 * 2**56 wei = 1,234.4907... USD; pad = 1 * 2**56; SOM = 30,000 * 10%.
    """
    ins = InstrumentInt.from_wad_array(
        1, Kind.CALL, 500 * WAD, [0, 1234 * WAD + WAD // 2, -300 * WAD]
    )
    assert (ins.exponent, ins.entries) == (56, (0, 17132, -4164))
    market = MarketInt({7: ins}, {1: UnderlyingInt(30_000 * WAD, WAD // 10, 3)})
    state = account_margin_int(AccountInt(10_000 * WAD, {7: -WAD}), market, IM_125)
    assert state.per_underlying[1] == UnderlyingRisk(
        worst_scenario=1,
        worst_loss=17132 * 2**56,  # 1_234_490_701_057_781_399_552
        pad=2**56,  # 72_057_594_037_927_936
        som=3_000 * WAD,
        risk=3_000 * WAD,
    )
    assert state.maintenance_margin == 3_000 * WAD
    assert state.initial_margin == 3_750 * WAD
    assert state.equity == 9_500 * WAD  # 10,000 cash - 1 x 500 mark
    assert state.health == 6_500 * WAD


def _two_underlying_book():
    """BTC (id 1) and ETH (id 2), three scenarios each; see test_worked_example_two_underlyings."""
    underlyings = {
        1: UnderlyingInt(spot=50_000 * WAD, som_rate=10**15, n_scenarios=3),  # SOM 0.1%
        2: UnderlyingInt(spot=2_000 * WAD, som_rate=5 * 10**14, n_scenarios=3),  # SOM 0.05%
    }
    instruments = {
        10: InstrumentInt(1, Kind.FUTURE, 50_000 * WAD, 60, (0, 100, -100)),
        11: InstrumentInt(1, Kind.CALL, 1_000 * WAD, 58, (-50, -200, 300)),
        20: InstrumentInt(2, Kind.PUT, 80 * WAD, 56, (10, -40, 20)),
    }
    collaterals = {
        1: CollateralInt(price=2_000 * WAD, haircut=2 * 10**17, decimals=18),  # WETH, 20%
        2: CollateralInt(price=WAD, haircut=10**16, decimals=6),  # USDC, 1%
    }
    return MarketInt(instruments, underlyings, collaterals)


def test_worked_example_two_underlyings():
    """Hand computation (units: wei; 2**58 = 288230376151711744, 2**56 = 72057594037927936).

    Account: cash -5,000; +2 BTC futures, -3 BTC calls, -10 ETH puts; 1.5 WETH, 1,234.567891 USDC.

    Equity: WETH 1.5 x 2,000 x 0.8 = 2,400; USDC 1,234.567891 x 0.99 = 1,222.22221209;
    positions 2 x 50,000 - 3 x 1,000 - 10 x 80 = 96,200; total 94,822.22221209.

    BTC, acc[s] / (1e18 * 2**58) = 2 x 4 x entry10 - 3 x entry11 = [150, 1400, -1700]:
    losses [-150, -1400, 1700] x 2**58, worst scenario 2; pad = 3 x 2**58;
    SOM = 3 x 50,000 x 0.001 = 150 USD < 1703 x 2**58 = 490.86 USD, so risk = 1703 x 2**58.
    ETH, acc[s] / (1e18 * 2**56) = -10 x entry20 = [-100, 400, -200]: losses [100, -400, 200],
    worst scenario 2; pad = 10 x 2**56; SOM = 10 x 2,000 x 0.0005 = 10 USD < 210 x 2**56 = 15.13.
    MM = 1703 x 2**58 + 210 x 2**56 = 7022 x 2**56; IM at 1.2 = ceil(7022 x 2**56 x 1.2).
    """
    market = _two_underlying_book()
    account = AccountInt(
        cash=-5_000 * WAD,
        positions={10: 2 * WAD, 11: -3 * WAD, 20: -10 * WAD},
        collateral={1: 15 * 10**17, 2: 1_234_567_891},
    )
    state = account_margin_int(account, market, 12 * 10**17)
    assert state.equity == 94_822_222_212_090_000_000_000
    assert state.per_underlying[1] == UnderlyingRisk(
        2, 1700 * 2**58, 3 * 2**58, 150 * WAD, 1703 * 2**58
    )
    assert state.per_underlying[2] == UnderlyingRisk(
        2, 200 * 2**56, 10 * 2**56, 10 * WAD, 210 * 2**56
    )
    assert state.maintenance_margin == 7022 * 2**56 == 505_988_425_334_329_966_592
    assert state.initial_margin == -(-(7022 * 2**56 * 12) // 10) == 607_186_110_401_195_959_911
    assert state.health == state.equity - state.maintenance_margin
    assert list(state.per_underlying) == [1, 2]


def test_equity_rounds_down_once_over_the_position_sum():
    """pos_value = div_floor(sum q * mark, WAD): one division over the sum (§4)."""
    market = MarketInt(
        {1: InstrumentInt(0, Kind.CALL, 1, 0, (0,)), 2: InstrumentInt(0, Kind.PUT, 1, 0, (0,))},
        {0: UnderlyingInt(WAD, 0, 1)},
    )
    # q * mark = 0.6 wei and -0.6 wei: the sum is 0 -> 0 (per-term floors would give -1).
    account = AccountInt(0, {1: 6 * 10**17, 2: -6 * 10**17})
    assert equity_int(account, market) == 0
    # A lone short: -0.6 wei floors to -1 (against the account).
    assert equity_int(AccountInt(0, {2: -6 * 10**17}), market) == -1


def test_worst_scenario_is_first_of_ties_and_q_zero_is_ignored():
    market = MarketInt(
        {
            1: InstrumentInt(0, Kind.FUTURE, WAD, 0, (5, 5, -1)),
            2: InstrumentInt(3, Kind.PUT, 1, 0, (1,)),
        },
        {0: UnderlyingInt(WAD, 0, 3), 3: UnderlyingInt(WAD, WAD, 1)},
    )
    state = account_margin_int(AccountInt(0, {1: -WAD, 2: 0}), market, WAD)
    assert state.per_underlying == {0: UnderlyingRisk(0, 5, 1, 0, 6)}
    assert state.maintenance_margin == state.initial_margin == 6


def test_scenario_losses_round_up_for_both_signs():
    """acc = +-1.5e18 wei**2: loss = div_ceil(-acc, WAD) gives -1 for a gain and 2 for a loss."""
    market = MarketInt(
        {1: InstrumentInt(0, Kind.FUTURE, WAD, 0, (-1, 1))}, {0: UnderlyingInt(WAD, 0, 2)}
    )
    assert underlying_risk_int({1: 3 * WAD // 2}, market, 0) == UnderlyingRisk(0, 2, 0, 0, 2)
    # short 1.5: losses [-1, 2], pad = div_ceil(1.5e18 * 2**0, WAD) = 2
    assert underlying_risk_int({1: -3 * WAD // 2}, market, 0) == UnderlyingRisk(1, 2, 2, 0, 4)


def test_som_is_a_floor_not_an_add_on():
    # A long call and a short call: the scan nets, the SOM counts the short leg only.
    market = MarketInt(
        {
            1: InstrumentInt(0, Kind.CALL, WAD, 40, (100, -100)),
            2: InstrumentInt(0, Kind.CALL, WAD, 40, (90, -90)),
        },
        {0: UnderlyingInt(1_000 * WAD, 10**17, 2)},
    )
    r = underlying_risk_int({1: WAD, 2: -WAD}, market, 0)
    assert r.worst_loss == 10 * 2**40 and r.pad == 2**40
    assert r.som == 100 * WAD and r.risk == 100 * WAD  # max(11 * 2**40, 100 USD)


# --------------------------------------------------------------------------------------------
# Integer model properties
# --------------------------------------------------------------------------------------------


@st.composite
def int_markets(draw):
    n_und = draw(st.integers(1, 3))
    unds = {
        u: UnderlyingInt(
            spot=draw(st.integers(1, 10**23)),
            som_rate=draw(st.integers(0, WAD // 5)),
            n_scenarios=draw(st.integers(1, 6)),
        )
        for u in range(n_und)
    }
    instruments = {}
    for j in range(draw(st.integers(1, 6))):
        u = draw(st.integers(0, n_und - 1))
        kind = draw(st.sampled_from(list(Kind)))
        s = unds[u].n_scenarios
        entries = draw(st.lists(st.integers(INT16_MIN, INT16_MAX), min_size=s, max_size=s))
        instruments[j] = InstrumentInt(
            u,
            kind,
            draw(st.integers(1, 10**24)),
            draw(st.integers(0, 80)),
            tuple(entries),
        )
    return MarketInt(instruments, unds)


sizes = st.integers(-(10**24), 10**24)


def _positions(data, market):
    return data.draw(
        st.dictionaries(st.sampled_from(sorted(market.instruments)), sizes, max_size=6)
    )


@settings(max_examples=150, deadline=None)
@given(market=int_markets(), data=st.data(), c=st.integers(1, 1000))
def test_int_mm_positively_homogeneous_within_rounding(market, data, c):
    """Integer c: c * MM(q) - 2 (c - 1) * U <= MM(c q) <= c * MM(q), U = underlyings held.

    Each of worst loss, pad and SOM is a ceiling of something that scales exactly by c, and
    c * ceil(x) - (c - 1) <= ceil(c x) <= c * ceil(x); the SOM has two ceilings, hence 2 (c - 1).
    """
    pos = _positions(data, market)
    base = account_margin_int(AccountInt(0, pos), market, IM_125)
    scaled = account_margin_int(AccountInt(0, {j: c * q for j, q in pos.items()}), market, IM_125)
    n_und = len(base.per_underlying)
    assert c * base.maintenance_margin - 2 * (c - 1) * n_und <= scaled.maintenance_margin
    assert scaled.maintenance_margin <= c * base.maintenance_margin
    for u, r in base.per_underlying.items():
        assert c * r.risk - 2 * (c - 1) <= scaled.per_underlying[u].risk <= c * r.risk


@settings(max_examples=150, deadline=None)
@given(market=int_markets(), data=st.data())
def test_int_netting_never_costs(market, data):
    """risk_u(A + B) <= risk_u(A) + risk_u(B) per underlying, exactly (ceil is subadditive)."""
    a, b = _positions(data, market), _positions(data, market)
    both = {j: a.get(j, 0) + b.get(j, 0) for j in set(a) | set(b)}
    sa, sb, sab = (account_margin_int(AccountInt(0, p), market, IM_125) for p in (a, b, both))
    zero = UnderlyingRisk(0, 0, 0, 0, 0)
    for u, r in sab.per_underlying.items():
        assert r.risk <= sa.per_underlying.get(u, zero).risk + sb.per_underlying.get(u, zero).risk
    assert sab.maintenance_margin <= sa.maintenance_margin + sb.maintenance_margin


@settings(max_examples=150, deadline=None)
@given(market=int_markets(), data=st.data())
def test_int_perfect_hedge_has_zero_scan_risk(market, data):
    """Long q of an instrument and short q of an identical listing: every scenario loss is 0."""
    j = data.draw(st.sampled_from(sorted(market.instruments)))
    q = data.draw(st.integers(1, 10**24))
    twin = max(market.instruments) + 1
    instruments = dict(market.instruments) | {twin: market.instruments[j]}
    market = MarketInt(instruments, market.underlyings)
    u = market.instruments[j].underlying
    r = underlying_risk_int({j: q, twin: -q}, market, u)
    assert r.worst_loss == 0 and r.worst_scenario == 0
    assert r.risk == max(r.pad, r.som)  # only the short leg's pad and the SOM floor remain


def _reference_underlying_risk(positions, market, u):
    """§5 re-derived with exact fractions and math.ceil, independent of the model's code."""
    und = market.underlyings[u]
    legs = [
        (market.instruments[j], q)
        for j, q in positions.items()
        if q != 0 and market.instruments[j].underlying == u
    ]
    losses = [
        math.ceil(Fraction(-sum(q * ins.entries[s] * 2**ins.exponent for ins, q in legs), WAD))
        for s in range(und.n_scenarios)
    ]
    worst = max(losses)
    pad = math.ceil(Fraction(sum(-q * 2**ins.exponent for ins, q in legs if q < 0), WAD))
    shorts = sum(-q for ins, q in legs if q < 0 and ins.kind.is_option)
    som = math.ceil(Fraction(math.ceil(Fraction(shorts * und.spot, WAD)) * und.som_rate, WAD))
    return UnderlyingRisk(losses.index(worst), worst, pad, som, max(max(worst, 0) + pad, som))


@settings(max_examples=150, deadline=None)
@given(market=int_markets(), data=st.data())
def test_int_model_equals_exact_fraction_reference(market, data):
    pos = _positions(data, market)
    state = account_margin_int(AccountInt(0, pos), market, IM_125)
    for u, r in state.per_underlying.items():
        assert r == _reference_underlying_risk(pos, market, u)
    mm = sum(r.risk for r in state.per_underlying.values())
    assert state.initial_margin == math.ceil(Fraction(mm * IM_125, WAD))
    pos_value = sum(q * market.instruments[j].mark for j, q in pos.items())
    assert state.equity == math.floor(Fraction(pos_value, WAD))


@settings(max_examples=150, deadline=None)
@given(market=int_markets(), data=st.data())
def test_int_terms_are_consistent(market, data):
    pos = _positions(data, market)
    state = account_margin_int(AccountInt(0, pos), market, IM_125)
    assert state.maintenance_margin == sum(r.risk for r in state.per_underlying.values())
    assert state.initial_margin >= state.maintenance_margin >= 0
    for r in state.per_underlying.values():
        assert r.risk >= r.som and r.risk >= max(r.worst_loss, 0) + r.pad
        assert r.risk in (r.som, max(r.worst_loss, 0) + r.pad)
    held = {market.instruments[j].underlying for j, q in pos.items() if q != 0}
    assert set(state.per_underlying) == held


@settings(max_examples=200)
@given(q=st.integers(1, MAX_SIZE), p=st.integers(0, 2**96 - 1))
def test_trade_amount_rounds_against_the_buyer(q, p):
    amount = trade_cash_amount(q, p)
    assert amount * WAD >= q * p > (amount - 1) * WAD


@settings(max_examples=200)
@given(q=st.integers(-MAX_SIZE, MAX_SIZE), p=st.integers(0, 2**96 - 1))
def test_settlement_rounds_against_the_holder(q, p):
    cash = settlement_cash(q, p)
    assert cash * WAD <= q * p < (cash + 1) * WAD


def test_cash_examples():
    assert trade_cash_amount(3 * 10**17, WAD // 3) == 10**17  # 0.3 x 0.333.. = 0.0999..9 -> up
    assert trade_cash_amount(WAD, 7) == 7
    assert settlement_cash(-WAD, 5 * 10**17 + 1) == -(5 * 10**17 + 1)
    assert settlement_cash(-1, 1) == -1 and settlement_cash(1, 1) == 0


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda: trade_cash_amount(0, WAD), "q must be in"),
        (lambda: trade_cash_amount(-WAD, WAD), "q must be in"),
        (lambda: trade_cash_amount(WAD, -1), "p must be in"),
        (lambda: trade_cash_amount(WAD, 2**96), "p must be in"),
        (lambda: trade_cash_amount(1.0, WAD), "q must be an int"),
        (lambda: settlement_cash(MAX_SIZE + 1, WAD), "q must be in"),
        (lambda: settlement_cash(WAD, -1), "price must be in"),
    ],
)
def test_cash_bad_inputs(call, match):
    with pytest.raises(ValueError, match=match):
        call()


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: InstrumentInt(0, Kind.FUTURE, 0, 0, (0,)), "mark must be in"),
        (lambda: InstrumentInt(0, Kind.CALL, 2**96, 0, (0,)), "mark must be in"),
        (lambda: InstrumentInt(0, Kind.CALL, 1, 256, (0,)), "exponent must be in"),
        (lambda: InstrumentInt(0, Kind.CALL, 1, 0, (INT16_MAX + 1,)), r"entries\[s\] must be in"),
        (lambda: InstrumentInt(0, Kind.CALL, 1, 0, ()), "entries must hold 1..39"),
        (lambda: InstrumentInt(0, 7, 1, 0, (0,)), "is not a valid Kind"),
        (lambda: InstrumentInt(0.5, Kind.CALL, 1, 0, (0,)), "underlying must be an int"),
        (lambda: UnderlyingInt(WAD, WAD + 1, 3), "som_rate must be in"),
        (lambda: UnderlyingInt(WAD, 0, 40), "n_scenarios must be in"),
        (lambda: UnderlyingInt(-1, 0, 3), "spot must be in"),
        (lambda: CollateralInt(WAD, WAD + 1, 18), "haircut must be in"),
        (lambda: CollateralInt(WAD, 0, 19), "decimals must be in"),
        (lambda: AccountInt(0, {1: MAX_SIZE + 1}), r"positions\[1\] must be in"),
        (lambda: AccountInt(0, {}, {1: -1}), r"collateral\[1\] must be in"),
        (lambda: AccountInt(True), "cash must be an int"),
        (
            lambda: MarketInt(
                {1: InstrumentInt(9, Kind.CALL, 1, 0, (0,))}, {0: UnderlyingInt(1, 0, 1)}
            ),
            r"instruments\[1\]: unknown underlying 9",
        ),
        (
            lambda: MarketInt(
                {1: InstrumentInt(0, Kind.CALL, 1, 0, (0, 0))}, {0: UnderlyingInt(1, 0, 1)}
            ),
            r"instruments\[1\]: 2 entries, underlying 0 has 1 scenarios",
        ),
        (lambda: MarketInt({1: "call"}, {}), r"instruments\[1\] must be an InstrumentInt"),
    ],
)
def test_int_inputs_are_validated(build, match):
    with pytest.raises(ValueError, match=match):
        build()


def test_account_margin_int_bad_inputs():
    market = _two_underlying_book()
    with pytest.raises(ValueError, match="im_factor must be in"):
        account_margin_int(AccountInt(0, {10: WAD}), market, WAD - 1)
    with pytest.raises(ValueError, match=r"positions\[99\]: unknown instrument"):
        account_margin_int(AccountInt(0, {99: WAD}), market, WAD)
    with pytest.raises(ValueError, match=r"collateral\[9\]: unknown collateral asset"):
        account_margin_int(AccountInt(0, {}, {9: 1}), market, WAD)
    with pytest.raises(ValueError, match="underlying 5 is unknown"):
        underlying_risk_int({}, market, 5)
    huge = MarketInt(
        {1: InstrumentInt(0, Kind.FUTURE, 1, 255, (INT16_MAX,))}, {0: UnderlyingInt(1, 0, 1)}
    )
    with pytest.raises(OverflowError, match="margin: int256 overflow"):
        account_margin_int(AccountInt(0, {1: -MAX_SIZE}), huge, WAD)


# --------------------------------------------------------------------------------------------
# Float model
# --------------------------------------------------------------------------------------------


def _reference_margin(P, m, cash, im_factor):
    """Straightforward per-account loop: the definition, for comparison."""
    n_acc = P.shape[0]
    mm = np.zeros(n_acc)
    risk = np.zeros((n_acc, m.n_underlyings))
    for a in range(n_acc):
        for u in range(m.n_underlyings):
            on_u = m.underlying == u
            q = P[a, on_u]
            if not np.any(q != 0):
                continue
            s_u = m.n_scenarios[u]
            losses = -(q @ m.risk_arrays[on_u, :s_u])
            scan = max(0.0, losses.max())
            short = -q[(q < 0) & m.is_option[on_u]].sum()
            risk[a, u] = max(scan, short * m.spot[u] * m.som_rate[u])
        mm[a] = risk[a].sum()
    equity = cash + P @ m.marks
    return equity, mm, mm * im_factor, risk


def _random_float_market(rng, n=12, n_und=3, s=7):
    return MarketArrays(
        underlying=rng.integers(0, n_und, n),
        is_option=rng.random(n) < 0.7,
        marks=rng.random(n) * 100,
        risk_arrays=rng.normal(size=(n, s)) * 10,
        spot=rng.random(n_und) * 1000,
        som_rate=rng.random(n_und) * 0.01,
        n_scenarios=rng.integers(1, s + 1, n_und),
    )


@pytest.mark.parametrize("seed", range(5))
def test_float_model_equals_per_account_loop(seed):
    rng = np.random.default_rng(seed)
    m = _random_float_market(rng)
    P = rng.normal(size=(40, m.n_instruments)) * (rng.random((40, m.n_instruments)) < 0.3)
    P[0] = 0.0  # an account with no position
    cash = rng.normal(size=40) * 100
    equity, mm, im, risk = _reference_margin(P, m, cash, 1.3)
    for positions in (P, sp.csr_matrix(P), sp.coo_matrix(P)):
        st_ = margin_of_accounts(positions, m, cash=cash, im_factor=1.3)
        np.testing.assert_allclose(st_.maintenance_margin, mm, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st_.initial_margin, im, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st_.risk, risk, rtol=1e-12, atol=1e-12)
        np.testing.assert_allclose(st_.equity, equity, rtol=1e-12)
        np.testing.assert_allclose(st_.health, equity - mm, rtol=1e-12, atol=1e-9)
    assert np.all(st_.worst_scenario[0] == -1) and st_.maintenance_margin[0] == 0
    held = st_.worst_scenario >= 0
    assert np.all(st_.worst_scenario[held] < m.n_scenarios[np.nonzero(held)[1]])


def test_float_losses_and_collateral():
    m = MarketArrays(
        underlying=np.array([0, 0, 1]),
        is_option=np.array([False, True, True]),
        marks=np.array([100.0, 5.0, 2.0]),
        risk_arrays=np.array([[10.0, -10.0, 0.0], [1.0, -2.0, 3.0], [0.5, -0.5, 0.0]]),
        spot=np.array([100.0, 50.0]),
        som_rate=np.array([0.01, 0.0]),
        n_scenarios=np.array([3, 2]),
        collateral_price=np.array([2000.0]),
        haircut=np.array([0.2]),
    )
    q = np.array([[1.0, -2.0, 4.0]])
    np.testing.assert_allclose(scenario_losses(q[0], m, 0), [-8.0, 6.0, 6.0])
    np.testing.assert_allclose(scenario_losses(q, m, 1), [[-2.0, 2.0]])
    st_ = margin_of_accounts(q, m, cash=np.array([-50.0]), collateral=np.array([[0.5]]))
    # u0: worst loss 6 at scenario 1 (first of the tie), SOM 2 x 100 x 1% = 2 -> 6; u1: 2 -> 8
    np.testing.assert_array_equal(st_.worst_scenario, [[1, 1]])
    np.testing.assert_allclose(st_.maintenance_margin, [8.0])
    np.testing.assert_allclose(st_.equity, [-50 + 800 + 100 - 10 + 8])


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1), c=st.floats(1e-3, 1e3))
def test_float_mm_positively_homogeneous(seed, c):
    rng = np.random.default_rng(seed)
    m = _random_float_market(rng)
    P = rng.normal(size=(10, m.n_instruments))
    base = margin_of_accounts(P, m).maintenance_margin
    np.testing.assert_allclose(margin_of_accounts(c * P, m).maintenance_margin, c * base, rtol=1e-9)


@settings(max_examples=100, deadline=None)
@given(seed=st.integers(0, 2**32 - 1))
def test_float_netting_and_perfect_hedge(seed):
    rng = np.random.default_rng(seed)
    m = _random_float_market(rng)
    A = rng.normal(size=(10, m.n_instruments)) * (rng.random((10, m.n_instruments)) < 0.5)
    B = rng.normal(size=(10, m.n_instruments)) * (rng.random((10, m.n_instruments)) < 0.5)
    ra, rb, rab = (margin_of_accounts(P, m).risk for P in (A, B, A + B))
    assert np.all(rab <= ra + rb + 1e-9 * (1 + ra + rb))
    # Perfect hedge: duplicate the instruments, hold +A on the originals and -A on the twins.
    twin = MarketArrays(
        underlying=np.tile(m.underlying, 2),
        is_option=np.tile(m.is_option, 2),
        marks=np.tile(m.marks, 2),
        risk_arrays=np.tile(m.risk_arrays, (2, 1)),
        spot=m.spot,
        som_rate=m.som_rate,
        n_scenarios=m.n_scenarios,
    )
    hedged = margin_of_accounts(np.hstack([A, -A]), twin)
    np.testing.assert_allclose(hedged.scan, 0.0, atol=1e-12)
    np.testing.assert_allclose(hedged.risk, hedged.som, atol=1e-12)


@pytest.mark.parametrize(
    "kwargs,match",
    [
        ({"risk_arrays": np.zeros(3)}, r"risk_arrays must have shape \(n, S\)"),
        ({"risk_arrays": np.full((2, 2), np.nan)}, "risk_arrays must be finite"),
        ({"underlying": np.array([0, 5])}, "underlying must index spot"),
        ({"underlying": np.array([0.0, 1.0])}, "underlying must be an int array"),
        ({"is_option": np.array([True])}, r"is_option must have shape \(2,\)"),
        ({"marks": np.array([1.0])}, r"marks must have shape \(2,\)"),
        ({"som_rate": np.array([-0.1, 0.0])}, "spot and som_rate must be >= 0"),
        (
            {"n_scenarios": np.array([3, 1])},
            r"n_scenarios must have shape \(2,\) with values in \[1, 2\]",
        ),
        ({"haircut": np.array([1.5]), "collateral_price": np.array([1.0])}, "haircut must lie"),
        (
            {"haircut": np.array([0.1, 0.1]), "collateral_price": np.array([1.0])},
            "haircut must have",
        ),
    ],
)
def test_float_market_bad_inputs(kwargs, match):
    args = {
        "underlying": np.array([0, 1]),
        "is_option": np.array([True, False]),
        "marks": np.array([1.0, 2.0]),
        "risk_arrays": np.zeros((2, 2)),
        "spot": np.array([1.0, 1.0]),
        "som_rate": np.array([0.1, 0.1]),
    } | kwargs
    with pytest.raises(ValueError, match=match):
        MarketArrays(**args)


def test_margin_of_accounts_bad_inputs():
    m = _random_float_market(np.random.default_rng(0), n=4)
    with pytest.raises(ValueError, match="positions must have 4 columns"):
        margin_of_accounts(np.zeros((2, 3)), m)
    with pytest.raises(ValueError, match="positions must be 2-D"):
        margin_of_accounts(np.zeros(4), m)
    with pytest.raises(ValueError, match="positions must be finite"):
        margin_of_accounts(np.full((1, 4), np.inf), m)
    with pytest.raises(ValueError, match="im_factor must be >= 1"):
        margin_of_accounts(np.zeros((1, 4)), m, im_factor=0.9)
    with pytest.raises(ValueError, match=r"cash must have shape \(1,\)"):
        margin_of_accounts(np.zeros((1, 4)), m, cash=np.zeros(2))
    with pytest.raises(ValueError, match=r"collateral must have shape \(1, 0\)"):
        margin_of_accounts(np.zeros((1, 4)), m, collateral=np.zeros((1, 1)))
    with pytest.raises(ValueError, match="underlying must be in"):
        scenario_losses(np.zeros(4), m, 9)
    with pytest.raises(ValueError, match="positions must have shape"):
        scenario_losses(np.zeros(3), m, 0)


# --------------------------------------------------------------------------------------------
# Integer model vs float model on a real book (risk arrays from Black-76)
# --------------------------------------------------------------------------------------------

T0 = 1_700_000_000
DAY = 86_400


def _real_book():
    kinds = [0, 1, 2, 1, 2, 0, 1, 2, 1, 2]
    und = [0, 0, 0, 0, 0, 1, 1, 1, 1, 1]
    strikes = [np.nan, 60_000, 60_000, 75_000, 50_000, np.nan, 3_000, 3_000, 3_500, 2_500]
    days = [30, 30, 30, 90, 7, 60, 30, 30, 90, 7]
    ins = Instruments(
        np.array(und), np.array(kinds), np.array(strikes, dtype=float), T0 + DAY * np.array(days)
    )
    mkt = MarketState(T0, [60_000.0, 3_000.0], VolSurface([0.6, 0.75], [-0.1, -0.05]), rate=0.04)
    psr = [0.16, 0.2]
    som = [0.005, 0.005]
    ra = risk_arrays(ins, mkt, CRYPTO_35, psr)
    wad = risk_arrays_wad(ins, mkt, CRYPTO_35, psr)
    return ra, market_arrays(ins, mkt, ra, som), market_int(ins, mkt, wad, som)


RA_F, MARKET_F, MARKET_I = _real_book()


@settings(max_examples=100, deadline=None)
@given(q=st.lists(st.integers(-(10**8), 10**8), min_size=10, max_size=10))
def test_int_and_float_models_agree_within_the_pad(q):
    """Sizes in micro-contracts. The integer MM never falls below the float MM (beyond float
    noise) and exceeds it by at most the encoding error and pad: 2 sum_j |q_j| 2**e_j / WAD plus
    a few wei of rounding per underlying."""
    q_wad = [k * 10**12 for k in q]
    q_f = np.array(q, dtype=float) / 1e6
    state_i = account_margin_int(AccountInt(0, dict(enumerate(q_wad))), MARKET_I, IM_125)
    state_f = margin_of_accounts(q_f[None, :], MARKET_F, im_factor=1.25)
    exps = [MARKET_I.instruments[j].exponent for j in range(10)]
    enc = sum(abs(k) * 2**e for k, e in zip(q_wad, exps, strict=True)) / WAD
    # Float noise and to_wad conversion (including truncated on-chain futures arrays).
    scale = float(np.abs(q_f) @ (np.abs(RA_F).max(axis=1) + MARKET_F.marks))
    noise = 1e-12 * scale * WAD + 10
    mm_f = float(state_f.maintenance_margin[0]) * WAD
    assert mm_f - noise <= state_i.maintenance_margin <= mm_f + 2 * enc + 8 + noise
    assert state_i.equity == pytest.approx(float(state_f.equity[0]) * WAD, abs=noise)


# --------------------------------------------------------------------------------------------
# Linked collateral: a spot leg in its underlying's scan (docs/fixed-point.md §5.1)
# --------------------------------------------------------------------------------------------

ETH = 1
WETH = 0
ETH_CALL, ETH_PUT, ETH_FUTURE = 6, 7, 5
WETH_PRICE = 3_000 * WAD
WETH_HAIRCUT = WAD // 5
PSR_ETH = 2 * 10**17


def _with_weth(market: MarketInt, linked: bool = True) -> MarketInt:
    """MARKET_I with ETH's lin (grid CRYPTO_35, psr 0.2) and WETH (18 decimals) linked to ETH."""
    und = dict(market.underlyings)
    eth = und[ETH]
    lin = tuple(scenario_lin_wad(CRYPTO_35.linear_coefficients_wad(), PSR_ETH))
    und[ETH] = UnderlyingInt(eth.spot, eth.som_rate, eth.n_scenarios, lin)
    col = CollateralInt(WETH_PRICE, WETH_HAIRCUT, 18, ETH if linked else None)
    return MarketInt(market.instruments, und, {WETH: col})


def _weth_vs_usdc(positions: dict[int, int], amount: int = 10 * WAD):
    """(state with `amount` WETH, state with the same equity in cash)."""
    market = _with_weth(MARKET_I)
    value = equity_int(AccountInt(0, {}, {WETH: amount}), market)
    weth = account_margin_int(AccountInt(0, positions, {WETH: amount}), market, IM_125)
    usdc = account_margin_int(AccountInt(value, positions), market, IM_125)
    assert weth.equity == usdc.equity
    return weth, usdc


def test_weth_under_short_puts_leaves_less_health_than_usdc():
    """Wrong-way: the puts lose exactly when the WETH backing them falls."""
    weth, usdc = _weth_vs_usdc({ETH_PUT: -10 * WAD})
    assert weth.health < usdc.health
    assert weth.maintenance_margin > usdc.maintenance_margin


def test_weth_under_short_calls_leaves_more_health_than_usdc():
    """Covered calls: the WETH gains when the calls lose."""
    weth, usdc = _weth_vs_usdc({ETH_CALL: -10 * WAD})
    assert weth.health > usdc.health
    assert weth.maintenance_margin < usdc.maintenance_margin


def test_weth_hedged_by_a_short_future_carries_almost_no_scan_risk():
    """10 WETH against 10 short ETH futures: the legs cancel up to the forward's carry."""
    weth, usdc = _weth_vs_usdc({ETH_FUTURE: -10 * WAD})
    assert weth.maintenance_margin < usdc.maintenance_margin // 10


def test_collateral_without_positions_on_its_underlying_adds_no_margin():
    """WETH with only BTC positions, or with none: MM as if it were unlinked."""
    linked, plain = _with_weth(MARKET_I), _with_weth(MARKET_I, linked=False)
    for positions in ({}, {0: -WAD, 1: 2 * WAD}, {ETH_PUT: 0}):
        acct = AccountInt(0, positions, {WETH: 7 * WAD})
        a = account_margin_int(acct, linked, IM_125)
        b = account_margin_int(acct, plain, IM_125)
        assert (a.equity, a.maintenance_margin) == (b.equity, b.maintenance_margin)


def test_collateral_leg_is_a_future_at_the_asset_price():
    """The leg is the oracle's futures array at mark = price (tau 0), so WETH scans exactly like
    a long ETH future of the same size marked at the WETH price."""
    market = _with_weth(MARKET_I)
    lin = market.underlyings[ETH].lin
    c = CRYPTO_35.linear_coefficients_wad()
    assert list(lin) == scenario_lin_wad(c, PSR_ETH)
    leg = market.collaterals[WETH].leg(market.underlyings[ETH])
    fut = InstrumentInt.from_wad_array(
        ETH, Kind.FUTURE, WETH_PRICE, futures_risk_array_wad(WETH_PRICE, c, PSR_ETH)
    )
    assert leg == fut
    with_leg = underlying_risk_int({ETH_PUT: -WAD}, market, ETH, {WETH: 3 * WAD})
    ins = dict(market.instruments) | {99: fut}
    as_future = underlying_risk_int(
        {ETH_PUT: -WAD, 99: 3 * WAD}, MarketInt(ins, market.underlyings), ETH
    )
    assert with_leg == as_future


def test_linked_collateral_needs_lin_and_a_known_underlying():
    market = _with_weth(MARKET_I)
    und = dict(market.underlyings)
    und[ETH] = UnderlyingInt(und[ETH].spot, und[ETH].som_rate, und[ETH].n_scenarios)
    no_lin = MarketInt(market.instruments, und, market.collaterals)
    with pytest.raises(ValueError, match="lin is needed for linked collateral"):
        account_margin_int(AccountInt(0, {ETH_PUT: -WAD}, {WETH: WAD}), no_lin, IM_125)
    with pytest.raises(ValueError, match="lin must hold 35 values"):
        UnderlyingInt(WAD, 0, 35, (1, 2))


def test_float_model_counts_linked_collateral_like_the_integer_model():
    """The float scan with collateral arrays matches the integer one within the encoding."""
    market = _with_weth(MARKET_I)
    ca = spot_leg_arrays([3_000.0], [ETH], CRYPTO_35, [0.16, 0.2])
    fm = MarketArrays(
        **{k: getattr(MARKET_F, k) for k in ("underlying", "is_option", "marks", "risk_arrays")},
        spot=MARKET_F.spot,
        som_rate=MARKET_F.som_rate,
        collateral_price=np.array([3_000.0]),
        haircut=np.array([0.2]),
        collateral_underlying=np.array([ETH]),
        collateral_arrays=ca,
    )
    for positions in ({ETH_PUT: -10}, {ETH_CALL: -10}, {ETH_FUTURE: -10}, {0: 1}):
        q = np.zeros(10)
        for j, v in positions.items():
            q[j] = v
        f = margin_of_accounts(q[None, :], fm, collateral=np.array([[10.0]]))
        i = account_margin_int(
            AccountInt(0, {j: v * WAD for j, v in positions.items()}, {WETH: 10 * WAD}),
            market,
            IM_125,
        )
        assert i.maintenance_margin / WAD == pytest.approx(f.maintenance_margin[0], rel=1e-4, abs=1)
        assert i.equity / WAD == pytest.approx(f.equity[0], rel=1e-9)
    with pytest.raises(ValueError, match="collateral_underlying must have shape"):
        MarketArrays(**{**fm.__dict__, "collateral_underlying": np.array([5])})
