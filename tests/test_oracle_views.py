"""OracleViews, the oracle's read-only lens: what it decodes equals the oracle's raw words
decoded by `offchain.codec`, while live, after a settlement and once wound down."""

from __future__ import annotations

import ape
from contract_support import BTC, DAY, ETH, GRID_CME, GRID_CRYPTO, SPAN, SPOTS

from offchain.codec import unpack_entries
from offchain.fixed_point import WAD
from offchain.sdk.client import CLOCK_STEP

MASK40 = 2**40 - 1
E_LISTED, E_SETTLED = 254, 255
ESCAPE_DELAY = 3 * DAY  # the oracle's default


def expected_risk_array(s, iid, wound_down=False):
    """(mark, e, timestamp, entries) from the raw storage words, by the oracle's rules."""
    words = [int(s.oracle.instrument_word(iid, k)) for k in range(3)]
    w0 = words[0]
    mark, e, ts = w0 >> 160, (w0 >> 152) & 255, (w0 >> 112) & MASK40
    if wound_down:
        return mark, E_SETTLED, ts, []
    if e == E_LISTED:
        return 0, 0, 0, []
    if e == E_SETTLED:
        return mark, e, ts, []
    return mark, e, ts, unpack_entries(words, s.n_scenarios[(iid >> 40) & 0xFFFF])


def expected_age(s, ts, wound_down=False):
    age = max(s.now() - ts, 0)
    return age, ts == 0 or (not wound_down and age > s.oracle.max_age())


def check_all(s, ids, wound_down=False):
    ov = s.oracle_views
    _iw, uw, aw, _max_age = s.oracle.snapshot([], [BTC, ETH, SPAN], [s.weth, s.wbtc])
    for iid in ids:
        got = ov.risk_array(iid)
        assert (*got[:3], list(got[3])) == expected_risk_array(s, iid, wound_down)
        ts = (int(s.oracle.instrument_word(iid, 0)) >> 112) & MASK40
        settled = (int(s.oracle.instrument_word(iid, 0)) >> 152) & 255 == E_SETTLED
        want = (0, False) if settled or wound_down else expected_age(s, ts)
        assert ov.instrument_age(iid) == want
    for u, w in zip((BTC, ETH, SPAN), uw, strict=True):
        assert ov.underlying_age(u) == expected_age(s, (w[0] >> 160) & MASK40, wound_down)
        assert ov.observation_count(u) == (w[0] >> 208) & MASK40
    for token, w in zip((s.weth, s.wbtc), aw, strict=True):
        assert ov.asset_price(token) == (w & (2**96 - 1), w >> 96)
        assert ov.asset_age(token) == expected_age(s, w >> 96, wound_down)


def test_the_lens_decodes_posted_settled_and_wound_down_data_like_the_raw_words(market, outsider):
    s = market
    ids = [
        s.instruments[f"{t}-{k}"] for t in ("btc", "eth", "span") for k in ("fut", "call", "put")
    ]
    listed = s.list_instrument("views-listed", ETH, 0, 0, s.now() + 40 * DAY)
    put = s.list_instrument("views-put", BTC, 2, 70_000 * WAD, s.now() + 3 * 3_600)
    check_all(s, [*ids, listed, put])
    assert s.oracle_views.risk_array(listed) == (0, 0, 0, [])
    assert s.oracle_views.instrument_age(listed)[1] is True  # never posted: stale
    # posted arrays decode to their entries (39, 35 and 16 scenarios: all three words)
    assert all(
        len(s.oracle_views.risk_array(i)[3]) == s.n_scenarios[(i >> 40) & 0xFFFF] for i in ids
    )
    (settled,) = s.settle_at_spot(BTC, SPOTS[BTC], [put])
    check_all(s, [*ids, listed, put])
    assert s.oracle_views.risk_array(put)[:2] == (settled, E_SETTLED) == (10_000 * WAD, 255)
    # stale past max_age, and settled instruments are never stale
    s.sleep(s.oracle.max_age() + 1)
    check_all(s, [*ids, listed, put])
    assert s.oracle_views.underlying_age(BTC)[1] is True and s.oracle_views.asset_age(s.weth)[1]
    assert s.oracle_views.instrument_age(put) == (0, False)
    s.sleep(ESCAPE_DELAY + CLOCK_STEP + 1)  # the clock records the last post to the hour
    s.oracle.wind_down(sender=outsider)
    check_all(s, [*ids, listed, put], wound_down=True)
    assert s.oracle_views.underlying_age(BTC)[1] is False
    # a never-posted asset stays stale even wound down (timestamp 0)
    assert s.oracle_views.asset_age(outsider)[1] is True
    with ape.reverts("oracle: unknown instrument"):
        s.oracle_views.risk_array(ids[0] + 2**31)


def test_the_lens_reads_grids_from_their_data_contracts(system):
    s = system
    for u in (BTC, ETH, SPAN):
        gid = int(s.oracle.underlying_params(u).grid_id)
        assert gid in (GRID_CRYPTO, GRID_CME)
        assert list(s.oracle_views.grid(gid)) == s.grids[u]
    assert s.oracle_views.grid(99) == []
    assert s.oracle_views.ORACLE() == s.oracle.address
