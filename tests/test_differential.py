"""Differential test, the core of the on-chain margin: hypothesis builds portfolios (several
underlyings on the 35- and 16-scenario grids, futures and options, long and short, random sizes,
posted arrays, marks, prices and collateral), books them on-chain through trades, and the
engine's `account_state` (and MarginViews' per-underlying terms) must equal the offchain integer
reference `offchain.margin.account_margin_int` exactly, with the collateral linked to one
underlying scanned as a spot leg (docs/fixed-point.md §5.1), its price fresh or stale. Futures
arrays, computed on-chain, must equal `offchain.fixed_point.futures_risk_array_wad` encoded, with
the curve shift of their expiry (random basis and roll) on the tilted scenarios; futures calendars
carry their basis and roll charges on-chain as in the reference. Perps join the books
(docs/fixed-point.md §9, §10): funding accrues at random rates (beyond the cap: clamped) over
random times, a settlement realises variation margin into a non-zero basis, and the chain's
`account_state` and `vm_basis` equal the reference to the wei throughout; a wound-down perp reads
settled with its funding in the basis."""

import pytest
from contract_support import BTC, DAY, ETH, SPAN, USD, examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from offchain.codec import KIND_CALL, KIND_FUTURE, KIND_PERP, KIND_PUT, id_fields
from offchain.fixed_point import (
    MAX_BASIS,
    MAX_ROLL,
    WAD,
    div_ceil,
    div_floor,
    encode_risk_array,
    scenario_lin_wad,
)
from offchain.funding import FUNDING_GAP
from offchain.margin import (
    AccountInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
    account_margin_int,
    realise_int,
    settlement_cash,
    trade_cash_amount,
)
from offchain.oracle_bounds import bound_option, code_strike

HAIRCUT_WETH = WAD // 5
D_BTC, D_ETH, D_SPAN = 11, 12, 13
DEPOSIT = 10**11 * USD  # 100bn USD each, so every generated trade passes IM
FUNDING_CAP = 10**16  # 1 % per hour per perp


@pytest.fixture(scope="module")
def book(project, system, trader, maker, admin):
    """`system` plus 8 never-posted instruments per underlying (24) and deep pockets."""
    s = system
    expiry2 = s.now() + 60 * DAY
    own = []
    # own underlyings (never posted), on the grids of BTC, ETH and SPAN
    for u, base in ((D_BTC, BTC), (D_ETH, ETH), (D_SPAN, SPAN)):
        grid = s.oracle.underlying_params(base).grid_id
        s.oracle.list_underlying(
            u, grid, WAD // 100, WAD, WAD // 10, WAD // 2, 2 * WAD, 0, 0, sender=admin
        )
        s.grids[u], s.n_scenarios[u] = s.grids[base], s.n_scenarios[base]
        s.tilts[u] = s.tilts.get(base)
    for tag, u in (("btc", D_BTC), ("eth", D_ETH), ("span", D_SPAN)):
        for k in (1, 2):
            own.append(s.list_instrument(f"d-{tag}-fut{k}", u, KIND_FUTURE, 0, expiry2 + k))
        for k in (1, 2, 3):
            own.append(s.list_instrument(f"d-{tag}-call{k}", u, KIND_CALL, WAD * k, expiry2))
            # puts struck at 10k-30k USD: room below the strike for marks and arrays
            strike = 10_000 * WAD * k
            own.append(s.list_instrument(f"d-{tag}-put{k}", u, KIND_PUT, strike, expiry2))
        own.append(s.list_instrument(f"d-{tag}-perp", u, KIND_PERP, FUNDING_CAP, 0))
    s.own = own
    # own collateral token (never priced)
    s.dweth = admin.deploy(project.MockERC20, "Diff WETH", "DWETH", 18)
    s.oracle.list_asset(s.dweth, WAD // 2, sender=admin)
    s.engine_admin.list_collateral(s.dweth, HAIRCUT_WETH, 10**30, sender=admin)
    # it moves with D_ETH in the scan
    s.engine_admin.link_collateral(s.dweth, D_ETH, sender=admin)
    s.dweth.mint(trader, 1_000 * WAD, sender=admin)
    s.dweth.approve(s.engine, 2**256 - 1, sender=trader)
    for iid in own:
        s.engine_admin.set_instrument_limits(iid, 10**24, 10**23, sender=admin)
    for acct in (trader, maker):
        s.usdc.mint(acct, DEPOSIT, sender=admin)
        s.engine.deposit(s.usdc, DEPOSIT, sender=acct)
    return s


@st.composite
def portfolios(draw, instruments):
    unds = draw(
        st.lists(st.sampled_from([D_BTC, D_ETH, D_SPAN]), min_size=1, max_size=3, unique=True)
    )
    market = {}
    for u in unds:
        spot = draw(st.integers(10**18, 10**23))
        psr = draw(st.integers(10**16, 10**18))
        market[u] = (spot, psr)
    candidates = sorted(i for i in instruments if id_fields(i)[2] in market)
    ids = draw(st.lists(st.sampled_from(candidates), min_size=1, max_size=16, unique=True))
    positions = []
    for iid in ids:
        _, kind, u, _ = id_fields(iid)
        spot, _ = market[u]
        q = draw(st.integers(-(10**22), 10**22).filter(lambda x: x != 0))
        price = draw(st.integers(0, 2 * spot))
        if kind in (KIND_FUTURE, KIND_PERP):
            mark = draw(st.integers(spot // 2, 2 * spot))
            ra = None
        else:
            mark = draw(st.integers(0, spot))
            bits = draw(st.integers(0, spot.bit_length()))
            bound = min(spot, 2**bits)
            n = 35 if u != D_SPAN else 16
            ra = draw(st.lists(st.integers(-bound, bound), min_size=n, max_size=n))
            # within the oracle's bounds on a first post (band, loss <= mark, put gains)
            mark, ra = bound_option(
                kind, code_strike(iid % 2**32), spot, WAD // 2, 2 * WAD, mark, ra
            )
        positions.append((iid, q, price, mark, ra))
    weth = draw(st.integers(0, 100 * WAD))
    weth_price = draw(st.integers(WAD, 10**23))
    # forward curve per underlying: basis (WAD per year) and roll window (seconds)
    curves = {u: (draw(st.integers(0, MAX_BASIS)), draw(st.integers(0, MAX_ROLL))) for u in market}
    return market, positions, weth, weth_price, curves


def _market_int(s, market, positions, weth_price, funding=None):
    """(instruments, MarketInt) of the reference: `funding` {underlying: F_now} of the perps."""
    funding = funding or {}
    instruments = {}
    for iid, _q, _p, mark, ra in positions:
        _, kind, u, _ = id_fields(iid)
        spot, psr = market[u]
        if kind in (KIND_FUTURE, KIND_PERP):
            # the curve shift of its expiry at the batch timestamp it was posted at
            ts = s.oracle_views.risk_array(iid)[2]
            e, entries = encode_risk_array(s.future_reference(iid, mark, psr, ts))
        else:
            e, entries = encode_risk_array(ra)
        instruments[iid] = InstrumentInt(u, Kind(kind), mark, e, tuple(entries))
    unds = {
        u: UnderlyingInt(
            spot,
            s.oracle.underlying_params(u).som_rate,
            s.n_scenarios[u],
            tuple(scenario_lin_wad(s.grids[u], psr)),
            funding.get(u, 0),
        )
        for u, (spot, psr) in market.items()
    }
    collaterals = {0: CollateralInt(weth_price, HAIRCUT_WETH, 18, D_ETH)}
    return instruments, MarketInt(instruments, unds, collaterals)


def _account_int(s, account, positions, weth_amount, basis=0):
    return AccountInt(
        s.engine.cash(account),
        {iid: q for iid, q, *_ in positions if q},
        {0: weth_amount} if weth_amount else {},
        basis,
    )


def _model(
    s, account, market, positions, weth_amount, weth_price, im_factor, funding=None, basis=0
):
    """The reference of `account` holding `positions`; `funding`: {underlying: F_now} of the
    perps, `basis`: its variation-margin basis (WAD**2)."""
    instruments, mkt = _market_int(s, market, positions, weth_price, funding)
    acct = _account_int(s, account, positions, weth_amount, basis)
    return instruments, account_margin_int(acct, mkt, im_factor)


@examples(
    20, 300, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow]
)
@given(data=st.data())
def test_account_state_equals_offchain_integer_model(book, trader, maker, chain_snapshot, data):
    s = book
    market, positions, weth, weth_price, curves = data.draw(portfolios(s.own))
    with chain_snapshot():
        for u, (basis, roll) in curves.items():
            s.set_curve(u, basis, roll)
        if weth:
            s.engine.deposit(s.dweth, weth, sender=trader)
        items = []
        for iid, _q, _p, mark, ra in positions:
            items.append(s.future_item(iid, mark) if ra is None else s.option_item(iid, mark, ra))
        s.post(
            [(u, spot, psr) for u, (spot, psr) in market.items()],
            items,
            [(s.dweth.address, weth_price)],
        )
        expected_cash = s.engine.cash(trader)
        for iid, q, price, _mark, _ra in positions:
            if q > 0:
                s.engine.trade(trader, maker, iid, q, price, sender=s.venue)
                expected_cash -= trade_cash_amount(q, price)
            else:
                s.engine.trade(maker, trader, iid, -q, price, sender=s.venue)
                expected_cash += trade_cash_amount(-q, price)
        assert s.engine.cash(trader) == expected_cash
        im_factor = s.engine.im_factor()
        instruments_int, ref = _model(s, trader, market, positions, weth, weth_price, im_factor)
        # futures arrays computed on-chain equal the reference encoding
        for iid, ins in instruments_int.items():
            _, e, _, entries = s.oracle_views.risk_array(iid)
            assert (e, tuple(entries)) == (ins.exponent, ins.entries)
        assert s.engine.account_state(trader)[:3] == (
            ref.equity,
            ref.initial_margin,
            ref.maintenance_margin,
        )
        details = {d.underlying: d for d in s.views.worst_scenarios(trader)}
        assert set(details) == set(ref.per_underlying)
        for u, r in ref.per_underlying.items():
            d = details[u]
            assert (d.worst_scenario, d.worst_loss, d.pad, d.som, d.risk) == tuple(r)
        # the maker holds the mirror book, no collateral
        mirror = [(iid, -q, p, m, ra) for iid, q, p, m, ra in positions]
        _, ref_m = _model(s, maker, market, mirror, 0, weth_price, im_factor)
        assert s.engine.account_state(maker)[:3] == (
            ref_m.equity,
            ref_m.initial_margin,
            ref_m.maintenance_margin,
        )
        # after a withdrawal of cash, margin moves exactly by the withdrawn WAD amount; the
        # withdrawal settles first: the variation margin of the futures and perps (marks away
        # from the trade prices) becomes cash and the basis takes r * WAD (§10)
        basis = {trader.address: 0, maker.address: 0}
        if s.views.withdraw_preview(trader, s.usdc, USD)[3]:
            _, mkt = _market_int(s, market, positions, weth_price)
            realised = realise_int(_account_int(s, trader, positions, weth), mkt)
            s.engine.withdraw(s.usdc, USD, sender=trader)
            assert s.engine.cash(trader) == realised.cash - USD * 10**12
            basis[trader.address] = realised.vm_basis
            assert s.engine.vm_basis(trader) == basis[trader.address]
            _, ref_w = _model(
                s,
                trader,
                market,
                positions,
                weth,
                weth_price,
                im_factor,
                basis=basis[trader.address],
            )
            assert s.engine.account_state(trader)[:3] == (
                ref_w.equity,
                ref_w.initial_margin,
                ref_w.maintenance_margin,
            )
            assert ref_w.equity == ref.equity - USD * 10**12
        funding = _fund_and_realise(
            s, data, trader, maker, market, positions, items, weth, weth_price, basis
        )
        weth_price_now = weth_price
        # the collateral's price goes stale: under the stale-at-zero rule of `account_state` it
        # is worth 0 and its leg adds nothing
        if weth and data.draw(st.booleans(), label="stale collateral"):
            s.sleep(s.oracle.max_age() + 1)
            s.post([(u, spot, psr) for u, (spot, psr) in market.items()], items)
            weth_price_now = 0
        _, ref_s = _model(
            s,
            trader,
            market,
            positions,
            weth,
            weth_price_now,
            im_factor,
            funding,
            basis[trader.address],
        )
        assert s.engine.account_state(trader)[:3] == (
            ref_s.equity,
            ref_s.initial_margin,
            ref_s.maintenance_margin,
        )


def _fund_and_realise(s, data, trader, maker, market, positions, items, weth, weth_price, basis):
    """Funding at random rates (beyond the cap: clamped) accrues over a random time on the
    perps of the book; both sides equal the reference; the trader settles (its variation margin
    realised into its basis), trades a random size of a perp at a moved index (the basis takes
    -dq * F) and funding accrues again; the index is then frozen (rate 0). `basis`: each side's
    expected basis, updated. Returns {underlying: F_now}."""
    perps = [iid for iid, *_ in positions if id_fields(iid)[1] == KIND_PERP]
    if not perps:
        return {}
    unds = sorted({id_fields(iid)[2] for iid in perps})
    cap = 3 * FUNDING_CAP
    rates = {u: data.draw(st.integers(-cap, cap), label=f"rate {u}") for u in unds}
    clamped = {u: max(-FUNDING_CAP, min(FUNDING_CAP, r)) for u, r in rates.items()}
    price_posts = [(u, spot, psr) for u, (spot, psr) in market.items()]
    im_factor = s.engine.im_factor()
    mirror = [(iid, -q, p, m, ra) for iid, q, p, m, ra in positions]
    sides = ((trader, positions, weth), (maker, mirror, 0))
    s.oracle.post_funding(list(rates.items()), sender=s.keeper)
    t0 = s.now()

    def index_at(ts):
        return {
            u: div_floor(clamped[u] * market[u][0] * min(ts - t0, FUNDING_GAP), 3600 * WAD)
            for u in unds
        }

    def check(funding):
        for acct, book_, w in sides:
            _, ref = _model(
                s, acct, market, book_, w, weth_price, im_factor, funding, basis[acct.address]
            )
            assert s.engine.vm_basis(acct) == basis[acct.address]
            assert s.engine.account_state(acct)[:3] == (
                ref.equity,
                ref.initial_margin,
                ref.maintenance_margin,
            )

    # fresh marks after the wait (the time the funding accrues over), same prices
    s.sleep(data.draw(st.integers(1, FUNDING_GAP + 3600), label="elapsed"))
    s.post(price_posts, items, [(s.dweth.address, weth_price)])
    funding = index_at(s.now())
    assert {u: s.oracle.funding_index(u) for u in unds} == funding
    check(funding)
    # the trader settles: variation margin (marks and funding at the settle's block) realised
    before = _account_int(s, trader, positions, weth, basis[trader.address])
    s.engine.settle(trader, sender=maker)
    funding = index_at(s.now())
    _, mkt = _market_int(s, market, positions, weth_price, funding)
    realised = realise_int(before, mkt)
    basis[trader.address] = realised.vm_basis
    assert s.engine.cash(trader) == realised.cash
    check(funding)
    # a perp changes size at the index of the trade's block: it pays funding from then on
    iid = data.draw(st.sampled_from(perps), label="perp traded")
    dq = data.draw(st.integers(1, 10**22), label="perp size")
    mark = s.oracle_views.risk_array(iid)[0]
    buy = data.draw(st.booleans(), label="trader buys")
    buyer, seller = (trader, maker) if buy else (maker, trader)
    s.engine.trade(buyer, seller, iid, dq, mark, sender=s.venue)
    f = index_at(s.now())[id_fields(iid)[2]]
    basis[buyer.address] -= dq * f
    basis[seller.address] += dq * f
    sign = 1 if buy else -1
    positions[:] = [(i, q + sign * dq if i == iid else q, p, m, ra) for i, q, p, m, ra in positions]
    mirror = [(i, -q, p, m, ra) for i, q, p, m, ra in positions]
    sides = ((trader, positions, weth), (maker, mirror, 0))
    s.sleep(data.draw(st.integers(1, 4 * 3600), label="elapsed again"))
    s.post(price_posts, items, [(s.dweth.address, weth_price)])
    check(index_at(s.now()))
    # frozen from here: the stale-collateral step below sees the same index
    s.oracle.post_funding([(u, 0) for u in unds], sender=s.keeper)
    funding = index_at(s.now())
    assert {u: s.oracle.funding_index(u) for u in unds} == funding
    return funding


def test_settlement_matches_reference(book, trader, maker):
    """Settle a future and an option at expiry: cash moves by settlement_cash exactly and the
    remaining margin equals the reference without the settled positions."""
    s = book
    fut, call = s.instruments["d-btc-fut1"], s.instruments["d-btc-call1"]
    spot = 60_000 * WAD
    ra = s.flat_option_ra(D_BTC, spot // 2)
    s.post(
        [(D_BTC, spot, 16 * WAD // 100)],
        [s.future_item(fut, spot), s.option_item(call, spot - WAD, ra)],  # struck at 1 USD
    )
    q_f, q_c = 3 * WAD + 7, -(WAD // 3)
    s.engine.trade(trader, maker, fut, q_f, spot, sender=s.venue)
    s.engine.trade(maker, trader, call, -q_c, spot // 20 + 1, sender=s.venue)
    # odd wei values: the TWAP of a constant spot is that spot, the call pays it minus K
    p_f, p_c = s.settle_at_spot(D_BTC, spot + 12_345 * WAD + 1, [fut, call])
    assert p_c == p_f - s.oracle.instrument_info(call).strike
    before = s.engine.cash(trader)
    eq_view = s.engine.account_state(trader)[0]
    tx = s.engine.settle(trader, sender=maker)
    assert tx.return_value == 2
    expected = before + settlement_cash(q_f, p_f) + settlement_cash(q_c, p_c)
    assert s.engine.cash(trader) == expected
    assert s.engine.positions_of(trader) == ([], [])
    assert s.engine.account_state(trader)[:3] == (expected, 0, 0)
    assert eq_view == expected  # the view counted settled positions as settled
    events = tx.events.filter(s.engine.Settled)
    assert {(e.instrument, e.size, e.price) for e in events} == {(fut, q_f, p_f), (call, q_c, p_c)}
    assert s.engine.open_interest(fut) == 0


def test_worst_scenario_is_the_first_of_rounded_ties(book, trader, maker, chain_snapshot):
    """Scenario losses 1000.3 and 1000.6 wei round to the same 1001 wei: the worst scenario is
    the first of them (docs/fixed-point.md §5), not the larger loss before rounding. The chain
    divides only the largest loss and finds the scenario in a second pass."""
    s = book
    iid = s.own[2]  # d-btc-call1
    ra = [0] * s.n_scenarios[D_BTC]
    ra[1] = -(1000 * WAD + 3 * WAD // 10)
    ra[2] = -(1000 * WAD + 6 * WAD // 10)
    with chain_snapshot():
        s.post([(D_BTC, 60_000 * WAD, WAD // 10)], [s.option_item(iid, WAD, ra)])
        s.engine.trade(trader, maker, iid, 1, WAD, sender=s.venue)  # long 1 wei contract
        (d,) = s.views.worst_scenarios(trader)
        assert (d.worst_scenario, d.worst_loss) == (1, 1001)
        _, ref = _model(
            s, trader, {D_BTC: (60_000 * WAD, WAD // 10)}, [(iid, 1, WAD, WAD, ra)], 0, 0, WAD
        )
        assert tuple(ref.per_underlying[D_BTC])[:2] == (1, 1001)


# ---------------------------------------------------------------------------- calendars

CAL_SPOT, CAL_PSR = 92_000 * WAD, 8 * WAD // 100
CAL_BASIS, CAL_ROLL = WAD // 20, 4 * DAY


def _calendar(s, trader, maker, near_expiry, far_expiry):
    """Trader long 1 far / short 1 near future on D_BTC (basis 0.05, roll 4 days), both marked
    at spot 92,000; returns the two ids."""
    near = s.list_instrument("cal-near", D_BTC, KIND_FUTURE, 0, near_expiry)
    far = s.list_instrument("cal-far", D_BTC, KIND_FUTURE, 0, far_expiry)
    for iid in (near, far):
        s.engine_admin.set_instrument_limits(iid, 10**24, 10**23, sender=s.admin)
    s.set_curve(D_BTC, CAL_BASIS, CAL_ROLL)
    _post_calendar(s, near, far)
    s.engine.trade(maker, trader, near, WAD, CAL_SPOT, sender=s.venue)
    s.engine.trade(trader, maker, far, WAD, CAL_SPOT, sender=s.venue)
    return near, far


def _post_calendar(s, near, far):
    s.post(
        [(D_BTC, CAL_SPOT, CAL_PSR)], [s.future_item(near, CAL_SPOT), s.future_item(far, CAL_SPOT)]
    )


def _calendar_mm(s, account, legs):
    """(on-chain MM, reference MM) of `account` holding `legs` [(iid, q)] at CAL_SPOT."""
    market = {D_BTC: (CAL_SPOT, CAL_PSR)}
    positions = [(iid, q, CAL_SPOT, CAL_SPOT, None) for iid, q in legs]
    _, ref = _model(s, account, market, positions, 0, WAD, s.engine.im_factor())
    return s.engine.account_state(account)[2], ref.maintenance_margin


def test_quarter_calendar_carries_one_percent_of_spot(book, trader, maker):
    """A +1 / -1 BTC futures calendar one quarter apart (30 and 121 days out) has MM >= 1% of
    spot on-chain, equal to the reference to the wei, on either side of the spread."""
    s = book
    now = s.now()
    near, far = _calendar(s, trader, maker, now + 30 * DAY, now + 121 * DAY)
    for account, sign in ((trader, 1), (maker, -1)):
        chain_mm, ref_mm = _calendar_mm(s, account, [(near, -sign * WAD), (far, sign * WAD)])
        assert chain_mm == ref_mm
        assert chain_mm >= CAL_SPOT // 100


def test_calendar_carries_margin_before_its_near_leg_expires(book, trader, maker):
    """From the roll window R before the near expiry the near leg stops offsetting: MM rises
    on a schedule, reaches at least the naked near leg's MM at R/2 and stays there until just
    before expiry; on-chain equals the reference at every step."""
    s = book
    near_expiry = s.now() + 3 * CAL_ROLL
    near, far = _calendar(s, trader, maker, near_expiry, near_expiry + 91 * DAY)
    legs = [(near, -WAD), (far, WAD)]
    mms = []
    for before in (2 * CAL_ROLL, CAL_ROLL, 3 * CAL_ROLL // 4, CAL_ROLL // 2, 60):
        s.sleep(near_expiry - before - s.now() - 1)
        _post_calendar(s, near, far)
        chain_mm, ref_mm = _calendar_mm(s, trader, legs)
        assert chain_mm == ref_mm
        mms.append(chain_mm)
    _, naked = _calendar_mm(s, trader, [(near, -WAD)])
    assert mms[0] == pytest.approx(mms[1], rel=0.01)  # no roll charge yet at R
    assert mms[1] < mms[2] < mms[3]  # the ramp
    assert mms[3] >= naked and mms[4] >= naked  # the near leg no longer offsets


def test_a_wound_down_perp_matches_the_reference(book, trader, maker, chain_snapshot):
    """The escape hatch on a perp with funding behind it: wound down, the perp reads settled at
    its last mark while its funding index keeps to its 8-hour bound; `account_state` equals the
    reference (the chain client's, the settled perp's funding folded into the basis, and the
    closed form) before and after `settle`, which realises everything and leaves a flat account
    whose basis is a fraction of a wei in its favour."""
    s = book
    perp, fut = s.instruments["d-btc-perp"], s.instruments["d-btc-fut1"]
    spot, psr = 61_234 * WAD + 5, 16 * WAD // 100
    mark = spot + 321 * WAD
    q, q_f = 3 * WAD + 7, -(WAD // 3)
    rate = FUNDING_CAP // 3 + 1
    with chain_snapshot():
        s.post([(D_BTC, spot, psr)], [s.future_item(perp, mark), s.future_item(fut, spot)])
        s.engine.trade(trader, maker, perp, q, spot - 11, sender=s.venue)
        s.engine.trade(maker, trader, fut, -q_f, spot + 13, sender=s.venue)
        s.oracle.post_funding([(D_BTC, rate)], sender=s.keeper)
        t0 = s.now()
        clock = s.oracle.clock()  # last post (to the hour) | escape delay << 80
        s.sleep((clock & (2**40 - 1)) + (clock >> 80 & (2**40 - 1)) + 3600 + 1 - s.now())
        s.oracle.wind_down(sender=maker)
        f = s.oracle.funding_index(D_BTC)
        assert f == div_floor(rate * spot * min(s.now() - t0, FUNDING_GAP), 3600 * WAD) > 0
        client = s.client()
        for acct, sign in ((trader, 1), (maker, -1)):
            market = client.market_int([perp, fut])
            assert set(market.settled) == {perp, fut}
            ref = market.account_margin(market.account(*client.account_raw(acct)))
            cash = s.engine.cash(acct)
            assert s.engine.vm_basis(acct) == 0  # both trades at a zero index, none realised
            # settled at the last marks: cash + the payoffs - the funding owed, nothing at risk
            pay = settlement_cash(sign * q, mark) + settlement_cash(sign * q_f, spot)
            closed = cash + pay - div_ceil(sign * q * f, WAD)
            state = s.engine.account_state(acct)
            assert state[:3] == (ref.equity, ref.initial_margin, ref.maintenance_margin)
            assert state[:3] == (closed, 0, 0)
            s.engine.settle(acct, sender=acct)
            assert s.engine.position_count(acct) == 0
            assert s.engine.cash(acct) == closed
            assert -WAD < s.engine.vm_basis(acct) <= 0
            assert s.engine.account_state(acct)[:3] == (closed, 0, 0)


def test_a_short_perp_adds_no_short_option_minimum(book, trader, maker, chain_snapshot):
    """A perp is not an option (docs/fixed-point.md §9): a short perp alone, whose scan is below
    what a short-option minimum on its notional would be, carries the scan's risk only (som 0),
    on-chain as in the reference (the case the random books found on the 16-scenario grid)."""
    s = book
    perp = s.instruments["d-span-perp"]
    spot, psr = 269_764_316_977_892_098_048, 67_408_408_490_699_808
    mark, q = spot // 2, -1_225_065
    market = {D_SPAN: (spot, psr)}
    with chain_snapshot():
        s.post([(D_SPAN, spot, psr)], [s.future_item(perp, mark)])
        s.engine.trade(maker, trader, perp, -q, 377_280, sender=s.venue)
        _, ref = _model(s, trader, market, [(perp, q, 0, mark, None)], 0, WAD, WAD)
        assert ref.per_underlying[D_SPAN].som == 0
        (d,) = s.views.worst_scenarios(trader)
        assert (d.worst_scenario, d.worst_loss, d.pad, d.som, d.risk) == tuple(
            ref.per_underlying[D_SPAN]
        )
        assert s.engine.account_state(trader)[2] == ref.maintenance_margin
