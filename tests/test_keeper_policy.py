"""The keeper's decision functions: worked cases first, then properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from offchain.fixed_point import WAD
from offchain.keeper.policy import (
    Posted,
    Quote,
    Reason,
    Update,
    batch_by_gas,
    choose_liquidations,
    due_settlements,
    liquidation_targets,
    select_updates,
    settlements_due,
    settlements_to_trigger,
    spots_for_settlement,
)
from offchain.margin import Kind
from offchain.sdk import InstrumentMeta

HOUR = 3_600
NOW = 1_700_000_000

# --------------------------------------------------------------------------- select_updates


def posted(mark: float, risk: tuple[float, ...] = (), age: int = 60, scale: float | None = None):
    return Posted(Quote(mark, risk, scale), NOW - age)


def test_worked_example_from_the_module_docstring():
    prev = {"BTC": posted(60_000, (-1_200.0,), age=HOUR)}
    # mark +0.67%: posted
    assert select_updates(prev, {"BTC": Quote(60_400, (-1_200.0,))}, NOW, 0.005, 2 * HOUR) == [
        Update("BTC", Reason.MOVED)
    ]
    # risk entry moves by 300 = 0.5% of 60_000: not beyond the threshold
    assert select_updates(prev, {"BTC": Quote(60_000, (-1_500.0,))}, NOW, 0.005, 2 * HOUR) == []
    # 301: beyond
    assert select_updates(prev, {"BTC": Quote(60_000, (-1_501.0,))}, NOW, 0.005, 2 * HOUR) == [
        Update("BTC", Reason.RISK)
    ]


def test_new_instruments_are_posted_and_delisted_ones_ignored():
    prev = {"OLD": posted(1.0)}
    current = {"BTC-C-70000": Quote(1_250.0, (10.0, -20.0), scale=60_000.0)}
    assert select_updates(prev, current, NOW, 0.01, HOUR) == [Update("BTC-C-70000", Reason.NEW)]


def test_risk_threshold_uses_the_quote_scale():
    # an option worth 50 with a scale of 60_000 (spot): a risk entry change of 100 is 0.17%
    prev = {"OPT": posted(50.0, (-900.0, 400.0), scale=60_000.0)}
    small = {"OPT": Quote(50.0, (-1_000.0, 400.0), scale=60_000.0)}
    big = {"OPT": Quote(50.0, (-1_700.0, 400.0), scale=60_000.0)}
    assert select_updates(prev, small, NOW, 0.005, HOUR) == []
    assert select_updates(prev, big, NOW, 0.005, HOUR) == [Update("OPT", Reason.RISK)]


def test_a_changed_array_length_is_posted():
    prev = {"X": posted(10.0, (1.0, 2.0))}
    assert select_updates(prev, {"X": Quote(10.0, (1.0, 2.0, 3.0))}, NOW, 0.5, HOUR) == [
        Update("X", Reason.SHAPE)
    ]


def test_heartbeat_with_margin_boundary():
    cur = {"ETH": Quote(3_000.0)}
    heartbeat, margin = HOUR, 300
    just_before = {"ETH": posted(3_000.0, age=heartbeat - margin - 1)}
    at = {"ETH": posted(3_000.0, age=heartbeat - margin)}
    assert select_updates(just_before, cur, NOW, 0.01, heartbeat, margin) == []
    assert select_updates(at, cur, NOW, 0.01, heartbeat, margin) == [
        Update("ETH", Reason.HEARTBEAT)
    ]


def test_zero_previous_mark_counts_as_moved_unless_still_zero():
    prev = {"F": posted(0.0)}
    assert select_updates(prev, {"F": Quote(0.0)}, NOW, 0.01, HOUR) == []
    assert select_updates(prev, {"F": Quote(1e-9)}, NOW, 0.01, HOUR) == [Update("F", Reason.MOVED)]


def test_wad_integers_work_like_floats():
    wad = 10**18
    prev = {"BTC": posted(60_000 * wad, (-1_200 * wad,), scale=60_000 * wad)}
    cur = {"BTC": Quote(60_000 * wad, (-1_501 * wad,), scale=60_000 * wad)}
    assert select_updates(prev, cur, NOW, 0.005, HOUR) == [Update("BTC", Reason.RISK)]


@pytest.mark.parametrize(
    ("threshold", "heartbeat", "margin"), [(-0.1, HOUR, 0), (0.01, HOUR, -1), (0.01, 60, 60)]
)
def test_select_updates_rejects_bad_parameters(threshold, heartbeat, margin):
    with pytest.raises(ValueError):
        select_updates({}, {}, NOW, threshold, heartbeat, margin)


finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
quotes = st.builds(
    Quote,
    mark=st.floats(min_value=1e-3, max_value=1e9),
    risk_array=st.lists(finite, max_size=6).map(tuple),
    scale=st.one_of(st.none(), st.floats(min_value=1e-3, max_value=1e9)),
)


@given(q=quotes, age=st.integers(0, HOUR - 1))
def test_property_an_unchanged_quote_within_its_heartbeat_is_never_posted(q, age):
    assert select_updates({"A": Posted(q, NOW - age)}, {"A": q}, NOW, 0.0, HOUR) == []


@given(q=quotes, bump=st.floats(min_value=1e-6, max_value=10.0))
def test_property_with_zero_threshold_any_mark_change_is_posted(q, bump):
    moved = Quote(q.mark * (1 + bump), q.risk_array, q.scale)
    if moved.mark == q.mark:
        return
    out = select_updates({"A": Posted(q, NOW)}, {"A": moved}, NOW, 0.0, HOUR)
    assert out == [Update("A", Reason.MOVED)]


@given(
    prev=st.dictionaries(st.sampled_from("ABCDEF"), quotes),
    cur=st.dictionaries(st.sampled_from("ABCDEF"), quotes),
    threshold=st.floats(min_value=0, max_value=0.5),
)
def test_property_selection_is_a_subset_in_order_and_new_names_are_always_in(prev, cur, threshold):
    out = select_updates({k: Posted(q, NOW) for k, q in prev.items()}, cur, NOW, threshold, HOUR)
    names = [u.name for u in out]
    assert names == [n for n in cur if n in names]
    assert {n for n in cur if n not in prev} <= set(names)


# --------------------------------------------------------------------------- batch_by_gas


def test_batch_worked_example():
    batches = batch_by_gas(list(range(10)), 50_000, 30_000, 1_000_000, 0.5)
    assert [len(b) for b in batches] == [9, 1]


def test_batch_with_per_item_gas_and_empty_input():
    gas = {"a": 100, "b": 300, "c": 100, "d": 200}
    assert batch_by_gas(list(gas), gas.__getitem__, 50, 1_000, 0.5) == [["a", "b"], ["c", "d"]]
    assert batch_by_gas([], 1, 0, 100, 1.0) == []


def test_batch_rejects_an_item_that_cannot_fit_and_bad_fractions():
    with pytest.raises(ValueError, match="budget"):
        batch_by_gas([1], 600, 0, 1_000, 0.5)
    for fraction in (0.0, 1.5):
        with pytest.raises(ValueError, match="fraction"):
            batch_by_gas([1], 1, 0, 1_000, fraction)


@given(
    gases=st.lists(st.integers(0, 5_000), max_size=60),
    base=st.integers(0, 2_000),
    limit=st.integers(40_000, 200_000),
    fraction=st.floats(min_value=0.2, max_value=1.0),
)
def test_property_batches_partition_fit_and_are_greedy(gases, base, limit, fraction):
    items = list(enumerate(gases))
    batches = batch_by_gas(items, lambda it: it[1], base, limit, fraction)
    budget = math.floor(limit * fraction)
    assert [it for b in batches for it in b] == items  # order kept, nothing lost or doubled
    for b in batches:
        assert b and base + sum(g for _, g in b) <= budget
    for b, nxt in zip(batches, batches[1:], strict=False):
        assert base + sum(g for _, g in b) + nxt[0][1] > budget  # the next item did not fit


# --------------------------------------------------------------------------- liquidations


def test_liquidations_most_negative_first_skipping_pending_and_healthy():
    health = {"0xa": -5, "0xb": 0, "0xc": -100, "0xd": 7, "0xe": -5, "0xf": -50}
    assert choose_liquidations(health, already_pending={"0xf"}) == ["0xc", "0xa", "0xe"]


@given(
    health=st.dictionaries(st.text("0123456789abcdef", min_size=1, max_size=4), st.integers()),
    pending=st.sets(st.text("0123456789abcdef", min_size=1, max_size=4)),
)
def test_property_liquidations(health, pending):
    out = choose_liquidations(health, pending)
    assert set(out) == {a for a, h in health.items() if h < 0 and a not in pending}
    assert [health[a] for a in out] == sorted(health[a] for a in out)


# --------------------------------------------------------------------------- settlements


def test_due_settlements():
    expiries = {"BTC-28MAR": NOW - 10, "ETH-28MAR": NOW - 10, "BTC-27JUN": NOW + 1, "X": NOW}
    assert due_settlements(expiries, NOW, settled={"ETH-28MAR"}) == ["BTC-28MAR", "X"]
    assert due_settlements(list(expiries.items()), NOW - 11, settled=()) == []


# --------------------------------------------------------------------------- whom, what to settle


def test_liquidation_targets_keep_the_order_and_skip_the_keeper_s_own_account():
    assert liquidation_targets(["0xb", "0xk", "0xa"], "0xk") == ["0xb", "0xa"]
    assert liquidation_targets(["0xb", "0xk"], None) == ["0xb", "0xk"]


def test_settlements_are_triggered_once_a_spot_after_expiry_is_stored():
    call = InstrumentMeta(1, 1, Kind.CALL, 9_000 * WAD, 100)
    settled_future = InstrumentMeta(2, 1, Kind.FUTURE, 0, 50)
    eth_put = InstrumentMeta(3, 2, Kind.PUT, 3_000 * WAD, 60)
    live = InstrumentMeta(4, 1, Kind.FUTURE, 0, 500)
    earlier_put = InstrumentMeta(5, 1, Kind.PUT, 10_000 * WAD, 80)
    late_put = InstrumentMeta(6, 1, Kind.PUT, 10_000 * WAD, 150)
    names = {1: "c", 2: "f", 3: "p", 4: "l", 5: "q", 6: "r"}
    due = settlements_to_trigger(
        [call, settled_future, eth_put, live, earlier_put, late_put],
        names,
        settled={2},
        now=200,
        # BTC's spot is stored at 120: after the call's and the earlier put's expiry, not after
        # the late put's; ETH's spot is at its put's expiry, not after it: both wait
        spot_times={1: 120, 2: 60},
    )
    assert due == [earlier_put, call]


def test_the_spot_of_an_expired_unsettled_instrument_is_posted_after_its_expiry():
    btc_call = InstrumentMeta(1, 1, Kind.CALL, 9_000 * WAD, 100)
    eth_fut = InstrumentMeta(2, 2, Kind.FUTURE, 0, 100)
    span_fut = InstrumentMeta(3, 3, Kind.FUTURE, 0, 100)
    live = InstrumentMeta(4, 1, Kind.FUTURE, 0, 500)
    posted_at = {"U:BTC": 90, "U:ETH": 110, "U:SPAN": 100}
    prev = {k: Posted(Quote(1.0), t) for k, t in posted_at.items()}
    names = {1: "BTC", 2: "ETH", 3: "SPAN"}
    metas = [btc_call, eth_fut, span_fut, live]
    # ETH was posted after its future's expiry; SPAN's future is settled
    assert spots_for_settlement(metas, {3}, prev, 120, names) == {"U:BTC"}
    assert spots_for_settlement(metas, set(), prev, 120, names) == {"U:BTC", "U:SPAN"}
    assert spots_for_settlement(metas, set(), prev, 100, names) == set()  # not expired before ts


def test_settlements_due_one_call_per_account_within_the_limit():
    holdings = {"0xb": {7: WAD, 9: -WAD}, "0xa": {9: WAD}, "0xc": {8: WAD}}
    assert settlements_due(holdings, {7, 9}, 10) == [("0xa", 9), ("0xb", 7)]
    assert settlements_due(holdings, {7, 9}, 1) == [("0xa", 9)]
    assert settlements_due(holdings, set(), 10) == []


def test_the_insurance_fund_is_never_a_liquidation_target():
    below = ["0xAAA", "0xFund", "0xBBB"]
    assert liquidation_targets(below, "0xBBB", ("0xfund",)) == ["0xAAA"]
