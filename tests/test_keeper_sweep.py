"""The keeper's health sweep (``offchain.keeper.sweep``): the float pass over the position book
decides nothing the integer reference would decide differently, and the book follows the
accounts the engine's events touched."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from offchain.codec import instrument_id
from offchain.fixed_point import INT16_MAX, INT16_MIN, MAX_SIZE, WAD
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.policy import choose_liquidations, health_by_account
from offchain.keeper.runner import KeeperRunner
from offchain.keeper.senders import DryRunSender
from offchain.keeper.sources import Tick
from offchain.keeper.state import StateStore
from offchain.keeper.sweep import PositionBook, float_health, sweep_health
from offchain.margin import CollateralInt, InstrumentInt, Kind, MarketInt, UnderlyingInt
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ChainMarket, InstrumentMeta

T0 = 1_700_000_000


def reference(market: ChainMarket, raws: dict) -> tuple[dict, list[str]]:
    """What the integer-only sweep gives: health of every account in it, and whom it
    liquidates in which order."""
    health = health_by_account(market, {a: market.account(*raw) for a, raw in raws.items()})
    return health, choose_liquidations({a: eq - mm for a, (eq, _, mm) in health.items()}, ())


# ------------------------------------------------------------------------------ random books


@st.composite
def markets(draw) -> tuple[ChainMarket, list[int]]:
    """Up to 3 underlyings, up to 8 posted instruments (some the twin of another, so that
    large opposite positions cancel), settled instruments, up to 2 collateral assets, each
    possibly linked to an underlying (a spot leg in its scan, docs/fixed-point.md §5.1)."""
    unds = {}
    for u in range(1, draw(st.integers(1, 3)) + 1):
        n = draw(st.integers(1, 8))
        lin = draw(st.lists(st.integers(-WAD, WAD), min_size=n, max_size=n))
        unds[u] = UnderlyingInt(
            spot=draw(st.integers(0, 10**23)),
            som_rate=draw(st.integers(0, WAD // 5)),
            n_scenarios=n,
            lin=tuple(lin),
        )
    instruments: dict[int, InstrumentInt] = {}
    for serial in range(1, draw(st.integers(1, 8)) + 1):
        if instruments and draw(st.booleans()):
            twin = instruments[draw(st.sampled_from(sorted(instruments)))]
            kind, ins = twin.kind, twin
        else:
            u = draw(st.sampled_from(sorted(unds)))
            kind = draw(st.sampled_from(list(Kind)))
            n = unds[u].n_scenarios
            ins = InstrumentInt(
                u,
                kind,
                draw(st.integers(1 if kind in (Kind.FUTURE, Kind.PERP) else 0, 10**24)),
                draw(st.integers(0, 100)),
                tuple(draw(st.lists(st.integers(INT16_MIN, INT16_MAX), min_size=n, max_size=n))),
            )
        instruments[instrument_id(serial, int(kind), ins.underlying, T0)] = ins
    settled = {
        instrument_id(100 + k, 1, 1, T0 - 1): draw(st.integers(0, 10**23))
        for k in range(draw(st.integers(0, 2)))
    }
    colls = {
        i: CollateralInt(
            draw(st.integers(0, 10**22)),
            draw(st.integers(0, WAD)),
            draw(st.integers(0, 18)),
            draw(st.one_of(st.none(), st.sampled_from(sorted(unds)))),
        )
        for i in range(draw(st.integers(0, 2)))
    }
    market = ChainMarket(
        MarketInt(instruments, unds, colls),
        settled,
        {},
        draw(st.integers(WAD, 2 * WAD)),
        {f"0xtoken{i}": i for i in colls},
    )
    return market, sorted(instruments) + sorted(settled)


sizes = st.one_of(
    st.integers(-(10**22), 10**22), st.integers(-MAX_SIZE, MAX_SIZE), st.sampled_from([-1, 1])
)


@st.composite
def books(draw) -> tuple[ChainMarket, dict, set[str]]:
    """A market and up to 12 accounts; some have their cash set so that their exact health is
    within 3 wei of zero (the boundary), returned as the third element."""
    market, ids = draw(markets())
    tokens = sorted(market.asset_index)
    raws, boundary = {}, set()
    for a in range(draw(st.integers(1, 12))):
        addr = f"0x{a:040x}"
        positions = draw(st.dictionaries(st.sampled_from(ids), sizes, max_size=6))
        coll = {t: draw(st.integers(0, 10**30)) for t in tokens if draw(st.booleans())}
        cash = draw(st.integers(-(10**26), 10**26))
        if draw(st.booleans()):
            st0 = market.account_margin(market.account(0, positions, coll))
            cash = st0.maintenance_margin - st0.equity + draw(st.integers(-3, 3))
            final = market.account(cash, positions, coll)
            if final.positions or final.cash < 0:  # in the sweep
                boundary.add(addr)
        raws[addr] = (cash, positions, coll)
    return market, raws, boundary


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), split=st.integers(0, 12), chunk=st.sampled_from([4, 4_096]))
def test_the_sweep_decides_as_the_integer_model(book, split, chunk):
    """Below-MM set and order, every health value, and the exactly checked accounts equal the
    integer model's; accounts at the boundary are always checked exactly; the float health is
    within its stated bound wherever it is trusted. The book is filled in two batches and
    starts narrow (its width grows)."""
    market, raws, boundary = book
    health, below = reference(market, raws)
    pb = PositionBook(width=1)
    items = list(raws.items())
    pb.update(dict(items[:split]))
    pb.update(dict(items[split:]))
    sweep = sweep_health(market, pb, raws, chunk)  # rows per block of the float pass
    assert sweep.below_mm == below
    assert dict(sweep.health) == health
    assert len(sweep.health) == len(health)
    assert all((a in sweep.health) == (a in health) for a in raws)
    assert all(health[a] == v for a, v in sweep.exact.items())
    assert boundary <= set(sweep.exact)
    assert set(below) <= set(sweep.exact)
    f = sweep.floats
    for addr, (eq, _im, mm) in health.items():
        r = pb.row[addr]
        if not f.exact_only[r]:
            assert abs(f.health[r] - (eq - mm)) <= f.bound[r]


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(book=books(), data=st.data())
def test_rewritten_rows_give_what_a_fresh_book_gives(book, data):
    """Accounts re-read with other positions (fewer, more, none) are rewritten in place: the
    book then sweeps as one built from the new reads alone."""
    market, raws, _ = book
    pb = PositionBook(width=2)
    pb.update(raws)
    ids = sorted(market.market.instruments) + sorted(market.settled)
    changed = {
        a: (raw[0] - WAD, data.draw(st.dictionaries(st.sampled_from(ids), sizes, max_size=6)), {})
        for a, raw in raws.items()
        if data.draw(st.booleans())
    }
    pb.update(changed)
    now = raws | changed
    assert len(pb) == len(raws)
    for addr, (cash, positions, _coll) in now.items():
        r = pb.row[addr]
        held = {pb.instruments[s]: q for s, q in zip(pb.slot[r], pb.qty[r], strict=True) if q}
        assert held == {j: float(q) for j, q in positions.items() if q}
        assert pb.cash[r] == float(cash)
    fresh = PositionBook()
    fresh.update(now)
    a, b = float_health(market, pb), float_health(market, fresh)
    rows = [fresh.row[addr] for addr in pb.addresses]
    assert (abs(a.health - b.health[rows]) <= a.bound).all()  # summed in another order
    assert (a.member == b.member[rows]).all()
    assert sweep_health(market, pb, now).below_mm == reference(market, now)[1]


# ------------------------------------------------------------------- what the floats cannot value


def one_future(mark: int = 60_000 * WAD) -> tuple[ChainMarket, int]:
    iid = instrument_id(1, int(Kind.FUTURE), 1, T0)
    ins = InstrumentInt(1, Kind.FUTURE, mark, 56, (0, 20_000, -20_000))  # 1,441 USD a unit
    market = MarketInt({iid: ins}, {1: UnderlyingInt(mark, WAD // 10, 3)})
    return ChainMarket(market, {}, {}, 125 * WAD // 100, {}), iid


def test_an_instrument_the_market_does_not_price_fails_as_in_the_integer_sweep():
    market, iid = one_future()
    unposted = instrument_id(2, int(Kind.CALL), 1, T0)
    raws = {"0xa": (10**6 * WAD, {iid: WAD}, {}), "0xb": (10**6 * WAD, {unposted: WAD}, {})}
    pb = PositionBook()
    pb.update(raws)
    with pytest.raises(ValueError, match="unknown instrument"):
        reference(market, raws)
    with pytest.raises(ValueError, match="unknown instrument"):
        sweep_health(market, pb, raws)


def test_magnitudes_near_int256_overflow_as_in_the_integer_sweep():
    market, iid = one_future()
    huge = InstrumentInt(1, Kind.FUTURE, 60_000 * WAD, 250, (INT16_MAX, 0, 0))
    iid2 = instrument_id(3, int(Kind.FUTURE), 1, T0)
    m = market.market
    market = ChainMarket(
        MarketInt({**m.instruments, iid2: huge}, m.underlyings), {}, {}, market.im_factor, {}
    )
    raws = {"0xa": (10**6 * WAD, {iid: WAD}, {}), "0xb": (0, {iid2: -MAX_SIZE}, {})}
    pb = PositionBook()
    pb.update(raws)
    assert pb.row["0xb"] in set(float_health(market, pb).exact_only.nonzero()[0])
    with pytest.raises(OverflowError):
        reference(market, raws)
    with pytest.raises(OverflowError):
        sweep_health(market, pb, raws)


# ------------------------------------------------------------------ incremental index in a round


class EventChain:
    """A chain client for the runner: ``touched`` is what the engine's events name in the next
    block range, ``accounts`` the state ``account_raw`` reads (each read is counted)."""

    def __init__(self, market: ChainMarket, iid: int) -> None:
        self.market, self.iid = market, iid
        self.head = SimpleNamespace(timestamp=T0 + 3_600, number=1)
        self.chain_manager = SimpleNamespace(blocks=SimpleNamespace(head=self.head))
        self.deployment = SimpleNamespace(block=0)
        self.oracle = SimpleNamespace(address="0xoracle")
        self.engine = SimpleNamespace(address="0xengine")
        self.wound = False  # RiskOracle.wound_down()
        self.accounts: dict[str, tuple] = {}
        self.touched: set[str] = set()
        self.reads: list[str] = []

    def listed_instruments(self):
        return [InstrumentMeta(self.iid, 1, Kind.FUTURE, 0, T0 + 86_400)]

    def post_calldata(self, *args):
        return b"post"

    def accounts_touched(self, start, stop):
        touched, self.touched = self.touched, set()
        return touched

    def account_raw(self, addr):
        self.reads.append(addr)
        return self.accounts[addr]

    def market_int(self, ids):
        return self.market

    def wound_down(self):
        return self.wound

    def next_block(self) -> None:
        self.head.number += 1
        self.head.timestamp += 60


def test_an_account_changed_by_an_event_is_re_indexed(tmp_path):
    """Round 1 indexes the two accounts the events named (short and long one future at
    60,000, equity 1,500 and 10,000, MM 1,441). Round 2: an event touches only ``0xa``, which
    sold a second future (MM 2,882 against the same equity); only it is read again, its row is
    rewritten (no new row), and it is found below MM. Round 3: a new account, long one future
    with equity 1,000, gets a new row and is found below MM after ``0xa``."""
    market, iid = one_future()
    chain = EventChain(market, iid)
    unds = [UnderlyingInfo("BTC", 1, CRYPTO_35, 0.04, 0.5)]
    store = StateStore(tmp_path, "dry-run")
    runner = KeeperRunner(
        chain,
        DryRunSender(),
        store,
        store.load(),
        store.runner_store(),
        unds,
        lambda u, ts: 0.1,
        KeeperConfig(),
    )
    chain.accounts = {
        "0xa": (61_500 * WAD, {iid: -WAD}, {}),
        "0xb": (-50_000 * WAD, {iid: WAD}, {}),
    }
    chain.touched = {"0xa", "0xb"}
    report = runner.round(Tick(T0 + 3_600, {"BTC": 60_000.0}))
    assert sorted(chain.reads) == ["0xa", "0xb"] and report.below_mm == []
    assert set(report.health) == {"0xa", "0xb"} and len(runner.book) == 2
    row = runner.book.row["0xa"]

    chain.next_block()
    chain.accounts["0xa"] = (121_500 * WAD, {iid: -2 * WAD}, {})
    chain.touched = {"0xa"}
    chain.reads.clear()
    report = runner.round(Tick(T0 + 3_660, {"BTC": 60_000.0}))
    assert chain.reads == ["0xa"]
    assert runner.book.row["0xa"] == row and len(runner.book) == 2
    assert runner.book.qty[row, 0] == -2.0 * WAD
    assert report.below_mm == ["0xa"]
    assert report.health["0xa"] == reference(market, chain.accounts)[0]["0xa"]
    assert runner.accounts["0xa"].positions == {iid: -2 * WAD}

    chain.next_block()
    chain.accounts["0xc"] = (-59_000 * WAD, {iid: WAD}, {})
    chain.touched = {"0xc"}
    report = runner.round(Tick(T0 + 3_720, {"BTC": 60_000.0}))
    assert runner.book.row["0xc"] == 2 and len(runner.book) == 3
    assert report.below_mm == ["0xa", "0xc"] == reference(market, chain.accounts)[1]
    runner.close()


def test_a_perp_holder_is_decided_as_the_integer_model_decides():
    """A perp's value carries its funding index: an account holding one is decided exactly as
    the integer sweep decides it."""
    market, fut = one_future()
    perp = instrument_id(2, int(Kind.PERP), 1, 2**40 - 1)
    ins = InstrumentInt(1, Kind.PERP, 60_000 * WAD, 0, (0, 0, 0))
    market = ChainMarket(
        MarketInt({**market.market.instruments, perp: ins}, market.market.underlyings),
        {},
        {},
        market.im_factor,
        {},
    )
    raws = {"0xa": (10**6 * WAD, {fut: WAD}, {}), "0xb": (-(10**3) * WAD, {perp: -WAD}, {})}
    pb = PositionBook()
    pb.update(raws)
    sweep = sweep_health(market, pb, raws)
    health, order = reference(market, raws)
    assert dict(sweep.health) == health and list(sweep.below_mm) == order
