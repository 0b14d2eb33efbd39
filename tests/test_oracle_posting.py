"""RiskOracle.post in its packed format (docs/contracts.md, "Posting format"): futures arrays
computed on-chain with floor division and equal to the off-chain reference bit for bit (also on
grids of 5 and 39 scenarios and when the exponent changes between posts), the lane-parallel
option checks (canonical exponent, magnitude bound) against a straightforward model, and the
header guards that only raw calldata can reach."""

import ape
import pytest
from contract_support import BTC, ETH, SPAN, SPOTS, examples
from hypothesis import HealthCheck, given
from hypothesis import strategies as st

from offchain.codec import KIND_CALL, KIND_FUTURE, pack_entries, pack_post, post_header
from offchain.fixed_point import (
    MAX_BASIS,
    MAX_PRICE,
    MAX_ROLL,
    TAU_CAP,
    WAD,
    curve_shift_wad,
    div_trunc,
    encode_risk_array,
    futures_risk_array_wad,
)
from offchain.oracle_bounds import CAP_PERIOD, clamp_price, gap_rate, price_cap

# Test underlyings: a 39-scenario grid (every lane of the three words) with extreme and odd
# coefficients, and a 5-scenario grid (one word).
G39, G5 = 39, 5
U39, U5 = 39, 5
C39 = [
    8 * WAD,
    -8 * WAD,
    -(WAD // 3),
    WAD // 3,
    -7 * WAD // 10,
    1,
    -1,
    0,
] + [(-1) ** k * (k * WAD // 7 + k) for k in range(31)]
C5 = [-(WAD // 3), WAD // 3, -WAD, 1, -1]
# a 39-scenario grid with the most tilts a grid may carry (2), in the first and last words
GT, UT = 40, 40
T39 = [0] * 39
T39[0], T39[38] = WAD, -(WAD // 7)
RATIO = 2 * WAD
SPOT39 = 60_000 * WAD
PSR_MIN = 10**15


@pytest.fixture(scope="module")
def posting(system, admin):
    s = system
    o = s.oracle
    o.register_grid(G39, C39, [0] * len(C39), sender=admin)
    o.register_grid(G5, C5, [0] * len(C5), sender=admin)
    for u, g, c in ((U39, G39, C39), (U5, G5, C5)):
        # deviation cap 100 %: a second mark anywhere in [0, 2 * first]
        o.list_underlying(u, g, PSR_MIN, WAD, WAD // 10, WAD, RATIO, 0, 0, sender=admin)
        s.grids[u], s.n_scenarios[u] = c, len(c)
    expiry = s.now() + 30 * 86_400
    s.list_instrument("u39-call", U39, KIND_CALL, SPOT39, expiry)
    s.list_instrument("u39-fut", U39, KIND_FUTURE, 0, expiry)
    s.list_instrument("u5-fut", U5, KIND_FUTURE, 0, expiry)
    s.list_instrument("u5-call", U5, KIND_CALL, WAD, expiry)
    s.post([(U39, SPOT39, 16 * WAD // 100), (U5, WAD, 16 * WAD // 100)])
    return s


@pytest.fixture(scope="module")
def tilted(posting, admin):
    """`posting` plus UT on a tilted 39-scenario grid, posted at SPOT39."""
    s = posting
    s.oracle.register_grid(GT, C39, T39, sender=admin)
    s.oracle.list_underlying(UT, GT, PSR_MIN, WAD, WAD // 10, WAD, RATIO, 0, 0, sender=admin)
    s.grids[UT], s.tilts[UT], s.n_scenarios[UT] = C39, T39, len(C39)
    s.post([(UT, SPOT39, 16 * WAD // 100)])
    return s


def _trunc_array(mark, c, psr):
    """Truncation toward zero in both steps: the rounding the oracle must not use (it can
    understate a long future's loss)."""
    return [div_trunc(mark * div_trunc(cs * psr, WAD), WAD) for cs in c]


def _stored(s, iid):
    mark, e, _ts, entries = s.oracle_views.risk_array(iid)
    return mark, (e, list(entries))


# ---------------------------------------------------------------------------- futures


@pytest.mark.parametrize("tag,u", [("btc", BTC), ("eth", ETH), ("span", SPAN)])
def test_futures_arrays_of_a_mixed_batch_equal_the_reference(market, tag, u):
    """`market` posted BTC, ETH (35 scenarios) and SPAN (16) futures and options in one batch:
    the underlying context is reloaded between them."""
    s = market
    mark, stored = _stored(s, s.instruments[f"{tag}-fut"])
    assert stored == encode_risk_array(futures_risk_array_wad(mark, s.grids[u], 16 * WAD // 100))


def test_futures_array_floors_negative_quotients_on_chain(posting):
    """A tiny mark keeps e = 0, so the stored entries are the WAD values themselves and the
    floor of §3 is visible: truncation would store -5333 where floor stores -5334."""
    s = posting
    iid = s.instruments["u5-fut"]
    mark, psr = 100_001, 16 * WAD // 100
    s.post([(U5, WAD, psr)], [s.future_item(iid, mark)])
    floor = futures_risk_array_wad(mark, C5, psr)
    assert floor == [-5334, 5333, -16001, 0, -1]
    assert _trunc_array(mark, C5, psr) == [-5333, 5333, -16000, 0, 0]
    assert _stored(s, iid) == (mark, encode_risk_array(floor)) == (mark, (0, floor))


@examples(25, 300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    u=st.sampled_from([U39, U5]),
    mark=st.one_of(st.integers(1, 10**7), st.integers(1, MAX_PRICE - 1)),
    psr=st.integers(PSR_MIN, WAD),
    move=st.integers(0, 2 * WAD),
    psr2=st.integers(PSR_MIN, WAD),
)
def test_futures_arrays_equal_the_reference(posting, chain_snapshot, u, mark, psr, move, psr2):
    """First post (exponent from scratch) and a second one within its cap, the gap rate
    min(100 %, 0.75 * psr2) (the oracle first tries the previous exponent): both equal the
    off-chain encoding."""
    s = posting
    iid = s.instruments["u39-fut" if u == U39 else "u5-fut"]
    spot = SPOT39 if u == U39 else WAD
    with chain_snapshot():
        s.post([(u, spot, psr)], [s.future_item(iid, mark)])
        expect = encode_risk_array(futures_risk_array_wad(mark, s.grids[u], psr))
        assert _stored(s, iid) == (mark, expect)
        mark2 = clamp_price(max(1, mark * move // WAD), (mark, 0), gap_rate(WAD, psr2), CAP_PERIOD)
        s.post([(u, spot, psr2)], [s.future_item(iid, mark2)])
        expect2 = encode_risk_array(futures_risk_array_wad(mark2, s.grids[u], psr2))
        assert _stored(s, iid) == (mark2, expect2)


def test_futures_exponent_follows_mark_and_psr(posting):
    """The oracle starts from the future's previous exponent and recomputes it when the largest
    magnitude no longer has exactly 15 significant bits: up (mark doubled, psr raised) and down
    (mark halved, psr lowered), each step equal to the reference."""
    s = posting
    iid = s.instruments["u39-fut"]
    steps = [
        (10**22, WAD // 10),
        (2 * 10**22, WAD // 10),  # up
        (10**22, WAD // 10),  # down
        (10**22 - 1, WAD // 10),  # same
        (10**22, WAD // 2),  # psr up
        (10**22, WAD // 20),  # psr down
        (1, WAD // 20),  # the smallest mark: e = 0 ...
        (1, PSR_MIN),  # ... stays 0 (a 1-wei mark moves by 0 at the gap rate: it stays)
    ]
    exponents = []
    for k, (mark, psr) in enumerate(steps):
        if k == 6:  # a mark of 1 wei is beyond the deviation cap: the first post of another
            iid = s.list_instrument("u39-fut-small", U39, KIND_FUTURE, 0, s.now() + 86_400)
        else:  # a move beyond one post's cap (0.75 * psr) is walked, a full cap a post
            old = _stored(s, iid)[0]
            while 0 < price_cap(old, gap_rate(WAD, psr), CAP_PERIOD) < abs(mark - old):
                old = clamp_price(mark, (old, 0), gap_rate(WAD, psr), CAP_PERIOD)
                s.post([(U39, SPOT39, psr)], [s.future_item(iid, old)])
        s.post([(U39, SPOT39, psr)], [s.future_item(iid, mark)])
        expect = encode_risk_array(futures_risk_array_wad(mark, C39, psr))
        assert _stored(s, iid) == (mark, expect)
        exponents.append(expect[0])
    assert exponents[1] == exponents[0] + 1 and exponents[2] == exponents[0]
    assert exponents[4] > exponents[3] > exponents[5]
    assert exponents[6:] == [0, 0]


@examples(25, 300, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    u=st.sampled_from([UT, BTC, SPAN]),
    tau=st.one_of(st.integers(2, 20 * 86_400), st.integers(2, TAU_CAP + 86_400)),
    basis=st.integers(0, MAX_BASIS),
    roll=st.one_of(st.integers(0, MAX_ROLL), st.just(4 * 86_400)),
    psr=st.integers(WAD // 100, WAD),
    mark=st.one_of(st.integers(1, 10**7), st.integers(1, MAX_PRICE - 1)),
)
def test_tilted_futures_arrays_equal_the_reference(
    tilted, chain_snapshot, u, tau, basis, roll, psr, mark
):
    """A future's array with the curve shift of its expiry at the batch timestamp (basis over
    the time to expiry, less the roll ramp) on the tilted scenarios equals the reference to the
    wei: any expiry (inside the roll window and beyond the 2-year cap), basis, roll, psr and
    mark, on a 39-scenario grid (tilts on entries 0 and 38), crypto-35 and CME-16 (none)."""
    s = tilted
    with chain_snapshot():
        s.set_curve(u, basis, roll)
        iid = s.list_instrument("tilt-fut", u, KIND_FUTURE, 0, s.now() + tau)
        spot = s.oracle.underlying_state(u)[0] or SPOTS[u]
        s.post([(u, spot, psr)], [s.future_item(iid, mark)])
        _mark, e, ts, entries = s.oracle_views.risk_array(iid)
        expect = s.future_reference(iid, mark, psr, ts)
        assert (e, list(entries)) == encode_risk_array(expect)
        if u == SPAN:  # CME-16 carries no tilt: the classic array
            assert expect == futures_risk_array_wad(mark, s.grids[SPAN], psr)


def test_tilted_entry_sets_the_exponent_without_overflowing_its_lane(tilted):
    """Largest basis, an expiry beyond the 2-year cap and the smallest psr: the tilted entries
    (about 1 WAD of move against c * psr <= 8e15) are the array's largest, so the exponent
    comes from them; an exponent from the untilted entries alone would overflow int16."""
    s = tilted
    s.set_curve(UT, MAX_BASIS, 0)
    iid = s.list_instrument("tilt-far", UT, KIND_FUTURE, 0, s.now() + TAU_CAP + 86_400)
    mark = MAX_PRICE - 1
    s.post([(UT, SPOT39, PSR_MIN)], [s.future_item(iid, mark)])
    _mark, e, ts, entries = s.oracle_views.risk_array(iid)
    h = curve_shift_wad((iid >> 56) % 2**40, ts, MAX_BASIS, 0, PSR_MIN)
    assert h == WAD  # 0.5 a year over the 2-year cap
    expect = futures_risk_array_wad(mark, C39, PSR_MIN, T39, h)
    assert (e, list(entries)) == encode_risk_array(expect)
    untilted = encode_risk_array(futures_risk_array_wad(mark, C39, PSR_MIN))
    assert e > untilted[0] + 5
    assert entries[0] > 2**14  # the tilt-up entry, near full scale
    assert entries[38] < -(2**11)  # the tilt-down entry, t = -1/7
    assert max(abs(v) for k, v in enumerate(entries) if T39[k] == 0) < 2**10


# ---------------------------------------------------------------------------- options


def _verdict(entries, e, ratio_cap):
    """The option checks of docs/contracts.md, written out plainly (a call marked MARK39: its
    entries may gain up to ratio_cap and lose up to the mark)."""
    if e > 127:
        return "oracle: exponent too large"
    if e and all(-16384 <= v <= 16383 for v in entries):
        return "oracle: non-canonical exponent"
    if max(entries) << e > ratio_cap:
        return "oracle: array gain above payoff"
    if -min(entries) << e > min(MARK39, ratio_cap):
        return "oracle: array loss above premium"
    return None


def _post_option(s, iid, e, entries):
    return s.post([], [(iid, MARK39, e, pack_entries(entries))], bounded=False)


RATIO_CAP = SPOT39 * RATIO // WAD  # 1.2e23: limit = RATIO_CAP >> e is below 2**15 from e = 62
# the call's mark: the highest the band allows (its spot), so losses reach 2**15 at e = 60
MARK39 = SPOT39


@st.composite
def option_arrays(draw):
    e = draw(st.one_of(st.integers(55, 80), st.integers(0, 130)))
    lim = RATIO_CAP >> e if e <= 127 else 0
    loss = MARK39 >> e if e <= 127 else 0
    edge = sorted({0, 1, lim - 1, lim, lim + 1, 16383, 16384, 32767})
    edge += [-v for v in (loss - 1, loss, loss + 1) if 0 <= v <= 32768]
    edge = [v for v in edge if -(2**15) <= v <= 32767]
    value = st.one_of(
        st.integers(-(2**15), 2**15 - 1),
        st.integers(-min(lim + 1, 2**15), min(lim + 1, 2**15 - 1)),
        st.sampled_from(edge + [-v for v in edge if v <= 2**15] + [-(2**15), -16385]),
    )
    return e, draw(st.lists(value, min_size=39, max_size=39))


@examples(40, 400, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(arr=option_arrays())
def test_option_checks_equal_the_plain_model(posting, chain_snapshot, arr):
    s = posting
    e, entries = arr
    iid = s.instruments["u39-call"]
    want = _verdict(entries, e, RATIO_CAP)
    with chain_snapshot():
        if want is None:
            _post_option(s, iid, e, entries)
            assert _stored(s, iid)[1] == (e, entries)
        else:
            with ape.reverts(want):
                _post_option(s, iid, e, entries)


@pytest.mark.parametrize("lane", [0, 6, 7, 8, 22, 23, 24, 34, 35, 38])
def test_magnitude_bound_is_exact_in_every_word(posting, lane):
    """entry * 2**e <= max_array_ratio * spot (gains) and >= -mark (losses: a long option
    loses at most its premium), tried at each limit and one beyond in the first, middle and
    last lanes of each word."""
    s = posting
    iid = s.instruments["u39-call"]
    e = 62
    lim, loss = RATIO_CAP >> e, MARK39 >> e
    assert 16384 <= lim < 2**15 - 1 and loss < lim
    for v, reason in (
        (lim, None),
        (-loss, None),
        (lim + 1, "oracle: array gain above payoff"),
        (-loss - 1, "oracle: array loss above premium"),
    ):
        entries = [0] * 39
        entries[(lane + 1) % 39] = 16384  # an entry with 15 bits: e = 62 is canonical
        entries[lane] = v
        if reason is None:
            _post_option(s, iid, e, entries)
        else:
            with ape.reverts(reason):
                _post_option(s, iid, e, entries)
    # one exponent lower the gain limit is above int16: even 2**15 - 1 passes
    assert RATIO_CAP >> (e - 1) >= 2**15
    entries = [0] * 39
    entries[lane] = 2**15 - 1
    _post_option(s, iid, e - 1, entries)
    assert _stored(s, iid)[1] == (e - 1, entries)


@pytest.mark.parametrize("lane", [0, 6, 7, 22, 23, 38])
def test_canonical_exponent_needs_an_entry_with_15_bits(posting, lane):
    """e > 0 needs some entry outside [-16384, 16383] (bits 15 and 14 of its lane differ)."""
    s = posting
    iid = s.instruments["u39-call"]
    e = 61  # the limits (gains 52,040, losses 26,020) let all of these through
    for v, ok in ((16383, False), (-16384, False), (16384, True), (-16385, True)):
        entries = [0] * 39
        entries[lane] = v
        if ok:
            _post_option(s, iid, e, entries)
        else:
            with ape.reverts("oracle: non-canonical exponent"):
                _post_option(s, iid, e, entries)
    # e = 0 is always canonical
    entries = [0] * 39
    entries[lane] = 1
    _post_option(s, iid, 0, entries)


# ---------------------------------------------------------------------------- raw format


def _raw_post(s, options=(), futures=()):
    s.sleep(1)
    return s.oracle.post(s.now(), [], list(options), list(futures), [], sender=s.keeper)


def test_header_guards(market):
    s = market
    call = s.instruments["btc-call"]
    fut = s.instruments["btc-fut"]
    mark = s.oracle_views.risk_array(call)[0]
    e, entries = encode_risk_array(s.flat_option_ra(BTC, SPOTS[BTC] // 25))
    words = pack_entries(entries)
    good = [post_header(call, mark, e, 3), *words]
    _raw_post(s, [good])
    # the header's word count must be n_slots(S) (3 for 35 scenarios); other bits between
    # the id and e are not allowed either
    for bad in (post_header(call, mark, e, 2), post_header(call, mark, e, 3) | 1 << 140):
        with ape.reverts("oracle: wrong array length"):
            _raw_post(s, [[bad, *words]])
    # an option has no array in `futures`
    with ape.reverts("oracle: wrong array length"):
        _raw_post(s, [], [post_header(call, mark)])
    # a future carries nothing besides mark and id in `futures`, and is never in `options`
    fmark = s.oracle_views.risk_array(fut)[0]
    for bad in (
        post_header(fut, fmark, 1),
        post_header(fut, fmark, 0, 1),
        post_header(fut, fmark) | 1 << 159,
    ):
        with ape.reverts("oracle: future array posted"):
            _raw_post(s, [], [bad])
    with ape.reverts("oracle: future array posted"):
        _raw_post(s, [[post_header(fut, fmark, 0, 3), 0, 0, 0]])
    # an id beyond 96 bits is no id
    with ape.reverts("oracle: unknown instrument"):
        _raw_post(s, [], [post_header(fut, fmark) | 1 << 95])


def test_a_posted_batch_lists_its_options_then_futures(market):
    s = market
    items = [s.future_item(s.instruments["eth-fut"], SPOTS[ETH])]
    for tag, u in (("btc", BTC), ("eth", ETH)):
        iid = s.instruments[f"{tag}-call"]
        items.append(
            s.option_item(iid, s.oracle_views.risk_array(iid)[0], s.flat_option_ra(u, WAD))
        )
    options, futures = pack_post(items)
    assert len(options) == 2 and len(futures) == 1
    tx = s.post([], items)
    ev = tx.events.filter(s.oracle.Posted)[0]
    assert (ev.underlyings, ev.instruments, ev.assets) == (0, 3, 0)
    # the event counts; the SDK reads the ids from the batch's calldata
    (batch,) = s.client().posted_batches(tx.block_number, tx.block_number)
    assert batch.instruments == [s.instruments[k] for k in ("btc-call", "eth-call", "eth-fut")]
    assert (batch.block, batch.timestamp, batch.underlyings, batch.assets) == (
        tx.block_number,
        ev.event_arguments["timestamp"],  # (a log's `.timestamp` is its block's)
        [],
        [],
    )
