"""The keeper runner's decisions (what to post, batching, whom to liquidate, settlement prices) and
its restart semantics, without a chain: a fake chain client and a fake transaction manager that
keeps its idempotency ledger in the real state database, as ``TxManager`` does."""

from __future__ import annotations

import time
from types import SimpleNamespace

import pytest

from offchain.codec import PERP_EXPIRY, unpack_entries
from offchain.fixed_point import WAD, decode_risk_array, to_wad
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.funding import funding_posts, perp_mark
from offchain.keeper.policy import Posted, Quote, health_by_account
from offchain.keeper.quotes import batch_args, compute_quotes, item_gas, plan_round
from offchain.keeper.runner import KeeperRunner
from offchain.keeper.runner_state import Batch, RoundPlan, RunnerState
from offchain.keeper.senders import ChainSender, DryRunSender
from offchain.keeper.sources import Tick
from offchain.keeper.state import StateCorruptedError, StateStore, TxRecord, TxStatus
from offchain.margin import (
    AccountInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
)
from offchain.params import margin_params
from offchain.scenarios import CRYPTO_35
from offchain.sdk import ChainMarket, InstrumentMeta, decode_market

T0 = 1_700_000_000
DAY = 86_400
BTC, ETH = 1, 2
UNDS = [
    UnderlyingInfo("BTC", BTC, CRYPTO_35, 0.04, 0.5, ("0xWBTC",)),
    UnderlyingInfo("ETH", ETH, CRYPTO_35, 0.04, 0.5),
]
NAMES = {BTC: "BTC", ETH: "ETH"}


def meta(serial: int, und: int, kind: Kind, strike: float = 0, days: int = 30) -> InstrumentMeta:
    iid = serial | int(kind) << 32 | und << 40 | (T0 + days * DAY) << 56
    return InstrumentMeta(iid, und, kind, to_wad(strike), T0 + days * DAY)


METAS = [
    meta(1, BTC, Kind.FUTURE),
    meta(2, BTC, Kind.CALL, 60_000),
    meta(3, BTC, Kind.PUT, 55_000),
    meta(4, ETH, Kind.FUTURE),
    meta(5, ETH, Kind.PUT, 2_800),
    meta(6, BTC, Kind.CALL, 60_000, days=0),  # expires at T0: not quoted after it
]
INAMES = {m.id: m.name(NAMES) for m in METAS}
SPOTS = {"BTC": 60_000.0, "ETH": 3_000.0}
PSR = {"BTC": 0.12, "ETH": 0.15}


def quotes(ts: int = T0, spots=SPOTS, psr=PSR):
    return compute_quotes(ts, spots, {"BTC": 0.6, "ETH": 0.8}, psr, UNDS, METAS, INAMES)


# --------------------------------------------------------------------------- compute_quotes


def test_quotes_cover_underlyings_prices_and_live_instruments():
    q = quotes()
    assert set(q) == {"U:BTC", "U:ETH", "A:0xWBTC"} | {INAMES[m.id] for m in METAS[:5]}
    spot_q, item = q["U:BTC"]
    assert item.arg == (BTC, 60_000 * WAD, to_wad(0.12))
    assert spot_q.risk_array == (to_wad(0.12),)
    assert q["A:0xWBTC"][1].arg == ("0xWBTC", 60_000 * WAD)


def test_futures_post_only_their_mark_and_track_the_psr():
    quote, item = quotes()[INAMES[METAS[0].id]]
    assert item.arg == (METAS[0].id, 60_000 * WAD, 0, [])  # forward = spot at rate 0
    assert quote.risk_array == (60_000 * WAD * to_wad(0.12) // WAD,)


def test_option_items_encode_the_quoted_array():
    quote, item = quotes()[INAMES[METAS[2].id]]
    iid, mark, e, words = item.arg
    assert 0 < mark < 55_000 * WAD and len(quote.risk_array) == len(CRYPTO_35)
    decoded = decode_risk_array(e, unpack_entries(words, len(CRYPTO_35)))
    for d, ra in zip(decoded, quote.risk_array, strict=True):
        assert d <= ra < d + 2**e
    # a long put gains when the price falls by a scan range and loses when it rises
    up, down = (
        next(k for k, sc in enumerate(CRYPTO_35.scenarios) if sc.move == m and sc.vol == "none")
        for m in (1, -1)
    )
    assert quote.risk_array[down] > 0 > quote.risk_array[up]


def test_psr_is_clamped_to_the_oracle_bounds():
    q = quotes(psr={"BTC": 0.9, "ETH": 0.01})
    assert q["U:BTC"][1].arg[2] == to_wad(0.5)
    assert q["U:ETH"][1].arg[2] == to_wad(0.04)


def test_an_underlying_without_a_price_is_skipped_with_its_instruments():
    q = quotes(spots={"BTC": 60_000.0})
    assert not any(n.startswith("ETH") or n == "U:ETH" for n in q)


# --------------------------------------------------------------------------- plan_round


def posted_from(batches, ts):
    q = quotes(ts)
    return {i.name: Posted(q[i.name][0], ts) for b in batches for i in b}


def test_first_round_posts_everything_underlying_first():
    (batch,) = plan_round(T0, quotes(), {})
    kinds = [(i.underlying, i.kind) for i in batch]
    assert kinds == sorted(
        kinds, key=lambda k: (k[0], ["underlying", "asset", "instrument"].index(k[1]))
    )
    assert len(batch) == 8


def test_nothing_moved_nothing_posted_until_the_heartbeat():
    cfg = KeeperConfig(heartbeat=600, heartbeat_margin=60)
    prev = posted_from(plan_round(T0, quotes(), {}, cfg), T0)
    assert plan_round(T0 + 60, quotes(T0), prev, cfg) == []
    (batch,) = plan_round(T0 + 540, quotes(T0), prev, cfg)
    assert len(batch) == 8


def test_a_moved_underlying_posts_its_instruments_and_prices_only():
    prev = posted_from(plan_round(T0, quotes(), {}), T0)
    moved = {"BTC": 60_600.0, "ETH": 3_000.0}
    (batch,) = plan_round(T0 + 60, quotes(T0, spots=moved), prev)
    assert {i.name for i in batch} == {"U:BTC", "A:0xWBTC"} | {INAMES[m.id] for m in METAS[:3]}


def test_a_spot_a_settlement_waits_for_is_posted_although_it_did_not_move():
    cfg = KeeperConfig(heartbeat=600, heartbeat_margin=60)
    prev = posted_from(plan_round(T0, quotes(), {}, cfg), T0)
    (batch,) = plan_round(T0 + 60, quotes(T0), prev, cfg, force={"U:ETH"})
    assert {i.name for i in batch} == {"U:ETH"}


def test_batches_fit_the_gas_budget_and_keep_spot_first():
    cfg = KeeperConfig(block_gas_limit=600_000, gas_fraction=0.5, base_gas=60_000)
    batches = plan_round(T0, quotes(), {}, cfg)
    assert len(batches) > 1
    seen_spot = set()
    for b in batches:
        assert cfg.base_gas + sum(item_gas(i) for i in b) <= 300_000
        for i in b:
            if i.kind == "underlying":
                seen_spot.add(i.underlying)
            elif i.kind == "instrument":
                assert i.underlying in seen_spot


def test_batches_respect_the_oracle_per_call_limits():
    metas = [meta(k, BTC, Kind.CALL, 40_000 + 500 * k) for k in range(1, 71)]
    names = {m.id: m.name(NAMES) for m in metas}
    q = compute_quotes(T0, SPOTS, {}, PSR, UNDS[:1], metas, names)
    cfg = KeeperConfig(block_gas_limit=10**9, gas_fraction=1.0)
    batches = plan_round(T0, q, {}, cfg)
    assert [sum(i.kind == "instrument" for i in b) for b in batches] == [64, 6]
    ts, unds, ins, assets = batch_args(T0, batches[0])
    assert len(unds) == 1 and len(ins) == 64 and len(assets) == 1


def test_option_quotes_carry_the_chain_curve_shift():
    """The keeper reprices options at F (1 + m + t h) with the basis and roll the oracle holds
    for the underlying: a deep in-the-money call moves like its future in the tilted scenarios
    (index 0 up, 2 down), an untilted scenario does not change, and without a basis the tilted
    scenarios of a far call hold only its vol shock."""
    from dataclasses import replace

    call = meta(1, BTC, Kind.CALL, 10_000, days=180)
    names = {call.id: call.name(NAMES)}
    curved = replace(UNDS[0], basis=WAD // 20, roll=4 * DAY)
    with_curve = compute_quotes(T0, SPOTS, {}, PSR, [curved], [call], names)
    flat = compute_quotes(T0, SPOTS, {}, PSR, UNDS[:1], [call], names)
    ra, ra0 = with_curve[names[call.id]][0].risk_array, flat[names[call.id]][0].risk_array
    shift = 60_000 * 0.05 * 180 / 365  # F * basis * tau, about 1,479 USD
    assert (ra[0] - ra0[0]) / WAD == pytest.approx(shift, rel=0.02)
    assert (ra[2] - ra0[2]) / WAD == pytest.approx(-shift, rel=0.02)
    assert ra[1] == ra0[1]


# --------------------------------------------------------------------------- health, settlement


def one_future_market(mark: int) -> ChainMarket:
    from offchain.fixed_point import futures_risk_array_wad

    c = CRYPTO_35.linear_coefficients_wad()
    ra = futures_risk_array_wad(mark, c, to_wad(0.1))
    ins = InstrumentInt.from_wad_array(BTC, Kind.FUTURE, mark, ra)
    market = MarketInt({7: ins}, {BTC: UnderlyingInt(mark, WAD // 10, len(c))})
    return ChainMarket(market, {}, {}, 125 * WAD // 100, {})


def test_health_and_whom_to_liquidate():
    from offchain.keeper.policy import choose_liquidations

    m = one_future_market(60_000 * WAD)
    accounts = {
        "0xthin": AccountInt(-60_000 * WAD + 5_000 * WAD, {7: WAD}),
        "0xthinner": AccountInt(-60_000 * WAD + 1_000 * WAD, {7: WAD}),
        "0xrich": AccountInt(-60_000 * WAD + 50_000 * WAD, {7: WAD}),
        "0xflat": AccountInt(10 * WAD),
    }
    h = health_by_account(m, accounts)
    assert set(h) == {"0xthin", "0xthinner", "0xrich"}  # no positions, no margin
    eq, im, mm = h["0xthin"]
    assert eq == 5_000 * WAD and mm > eq and im > mm
    below = choose_liquidations({a: v[0] - v[2] for a, v in h.items()}, ())
    assert below == ["0xthinner", "0xthin"]


def test_an_account_owing_cash_without_positions_is_in_the_health_sweep():
    """A put writer settled in the money: cash -36,166 against 30 WETH (20% haircut), no
    positions. At ETH 1,100 its equity is -36,166 + 30 x 1,100 x 0.8 = -9,766 < MM = 0."""
    from offchain.keeper.policy import choose_liquidations
    from offchain.margin import CollateralInt

    weth = 0
    market = MarketInt({}, {}, {weth: CollateralInt(1_100 * WAD, WAD // 5, 18)})
    m = ChainMarket(market, {}, {}, 125 * WAD // 100, {})
    accounts = {
        "0xwriter": AccountInt(-36_166 * WAD, {}, {weth: 30 * WAD}),
        "0xcovered": AccountInt(-20_000 * WAD, {}, {weth: 30 * WAD}),
        "0xflat": AccountInt(10 * WAD, {}, {weth: WAD}),
    }
    h = health_by_account(m, accounts)
    assert h == {"0xwriter": (-9_766 * WAD, 0, 0), "0xcovered": (6_400 * WAD, 0, 0)}
    assert choose_liquidations({a: v[0] - v[2] for a, v in h.items()}, ()) == ["0xwriter"]


def test_settled_positions_fold_into_cash_as_the_engine_does():
    market = decode_market({}, {BTC: [5 * WAD, len(CRYPTO_35), 0]}, {}, {}, WAD)
    market = ChainMarket(market.market, {9: 3 * WAD + 1}, {}, WAD, {})
    acct = market.account(100, {9: -(WAD // 3)}, {})
    # -(1e18 // 3) * (3e18 + 1) / 1e18 = -999_999_999_999_999_999.33..., floored to -1e18
    assert acct == AccountInt(100 - WAD, {})


# --------------------------------------------------------------------------- runner restarts


class Killed(RuntimeError):
    pass


KEEPER = "0x" + "ee" * 20


class FakeTx:
    """``TxManager``'s contract: a key already in the ledger (or pruned into the done keys) is
    never sent again, each record is upserted when it changes, ``prune`` forgets final records
    older than ``prune_after``; ``kill_at`` raises on that many sends (the process dies
    mid-round). ``now`` is its wall clock."""

    address = KEEPER
    prune_after = 86_400.0

    def __init__(self, state, store, chain, kill_at: int | None = None, now: float = 0.0):
        self.state, self.store, self.chain, self.kill_at = state, store, chain, kill_at
        self.now = now

    def send(self, key, to, data=b""):
        known = self.state.ledger.get(key) or self.store.done_record(key)
        if known is not None:
            return known
        if self.kill_at is not None and len(self.chain.sent) == self.kill_at:
            raise Killed(key)
        rec = TxRecord(
            key,
            KEEPER,
            len(self.chain.sent),
            1,
            to,
            0,
            "0x" + data.hex(),
            1,
            1,
            1,
            "0x",
            ["0x" + "00" * 32],
            TxStatus.SIGNED,
            self.now,
        )
        self.state.ledger[key] = rec
        self.store.save_record(rec)
        self.chain.sent.append(key)
        return rec

    def wait(self, key, timeout):
        rec = self.state.ledger.get(key) or self.store.done_record(key)
        if not rec.status.final:
            rec.status = TxStatus.CONFIRMED
            self.store.save_record(rec)
        return rec

    def prune(self, older_than=None):
        return self.store.prune(self.state, self.now - self.prune_after)


class FakeChain:
    def __init__(self):
        self.sent: list[str] = []
        self.head = SimpleNamespace(timestamp=T0 + 10 * 3_600, number=5)
        self.chain_manager = SimpleNamespace(blocks=SimpleNamespace(head=self.head))
        self.deployment = SimpleNamespace(block=0)
        self.oracle = SimpleNamespace(address="0xoracle")
        self.engine = SimpleNamespace(address="0xengine")
        self.wound = False  # RiskOracle.wound_down()

    def listed_instruments(self):
        return METAS[:5]

    def post_calldata(self, ts, unds, ins, assets):
        return repr((ts, unds, [p.as_arg() for p in ins], assets)).encode()

    def accounts_touched(self, start, stop):
        return set()

    def market_int(self, ids):
        return ChainMarket(MarketInt({}, {}), {}, {}, WAD, {})

    def wound_down(self):
        return self.wound


def open_runner(tmp_path, chain, kill_at=None, cfg=None, now=0.0):
    store = StateStore(tmp_path, KEEPER)
    state = store.load()
    tx = FakeTx(state, store, chain, kill_at, now)
    runner = KeeperRunner(
        chain,
        ChainSender(tx),
        store,
        state,
        store.runner_store(),
        UNDS,
        lambda u, ts: PSR[u],
        cfg or KeeperConfig(block_gas_limit=500_000, gas_fraction=0.6),
    )
    return runner


def saved_runner_state(tmp_path) -> RunnerState:
    with StateStore(tmp_path, KEEPER) as store:
        return store.load_runner()


def tick(ts=T0 + 3_600, btc=60_000.0):
    return Tick(ts, {"BTC": btc, "ETH": 3_000.0}, {"BTC": 0.6, "ETH": 0.8})


def test_a_round_posts_in_several_batches_each_once(tmp_path):
    chain = FakeChain()
    runner = open_runner(tmp_path, chain)
    report = runner.round(tick())
    assert report.batches == len(chain.sent) > 1
    assert chain.sent == [f"post:{T0 + 3_600}:{k}" for k in range(len(chain.sent))]
    assert len(report.posted) == 8
    runner.round(tick())  # the same tick again: nothing new to post
    assert len(chain.sent) == report.batches
    runner.close()


def test_a_wound_down_oracle_gets_no_more_posts_and_one_log_line(tmp_path, caplog):
    """After the escape hatch (``RiskOracle.wind_down``) every post would revert: the keeper
    says so once, drops the plan in flight and sends nothing more to the oracle, round after
    round (it keeps settling and liquidating, which need no post)."""
    chain = FakeChain()
    runner = open_runner(tmp_path, chain)
    runner.round(tick())
    sent = list(chain.sent)
    chain.wound = True
    runner.runner_state.plan = RoundPlan(T0, (Batch("post:late:0", ("x",), "0x00"),), {})
    runner.sender.save(runner.runner_store, runner.runner_state)
    with caplog.at_level("INFO", logger="offchain.keeper"):
        runner.round(tick(ts=T0 + 7_200, btc=61_000.0))
        runner.round(tick(ts=T0 + 10_800, btc=62_000.0))
    assert chain.sent == sent and runner.runner_state.plan is None
    lines = [r.getMessage() for r in caplog.records if "event=wound_down" in r.getMessage()]
    assert len(lines) == 1 and "posting=stopped" in lines[0]
    runner.close()
    assert saved_runner_state(tmp_path).plan is None


def test_killed_mid_round_resumes_the_same_plan_without_double_sends(tmp_path):
    chain = FakeChain()
    runner = open_runner(tmp_path, chain, kill_at=1)
    with pytest.raises(Killed):
        runner.round(tick())
    runner.close()
    plan = saved_runner_state(tmp_path).plan
    assert plan is not None and len(plan.batches) > 1

    restarted = open_runner(tmp_path, chain)
    # the next tick moved the price: the old plan is finished first, with its own items
    report = restarted.round(tick(T0 + 7_200, btc=61_000.0))
    keys = chain.sent
    assert len(keys) == len(set(keys))  # no key twice
    old = [k for k in keys if k.startswith(f"post:{T0 + 3_600}:")]
    assert len(old) == len(plan.batches)
    new = [k for k in keys if k.startswith(f"post:{T0 + 7_200}:")]
    assert new and report.posted
    assert restarted.state.posted["U:BTC"].quote.mark == to_wad(61_000.0)
    restarted.close()
    saved = saved_runner_state(tmp_path)
    assert saved.plan is None and saved.last_ts == T0 + 7_200
    with StateStore(tmp_path, KEEPER) as ledger:  # the database holds every key once
        assert sorted(ledger.load().ledger) == sorted(keys)


def test_a_plan_in_flight_is_not_pruned_however_long_the_keeper_was_down(tmp_path):
    """Killed mid-round, restarted a week later (every record of the plan far past the pruning
    horizon): the plan is finished with its own keys, none sent twice, and only then pruned."""
    chain = FakeChain()
    runner = open_runner(tmp_path, chain, kill_at=1)
    with pytest.raises(Killed):
        runner.round(tick())
    runner.close()
    plan = saved_runner_state(tmp_path).plan
    assert plan is not None
    restarted = open_runner(tmp_path, chain, now=7 * DAY)
    restarted.sender.tx.prune()  # a prune before the round (not what the runner does) ...
    assert plan.batches[0].key in restarted.state.ledger  # ... keeps the plan's keys
    restarted.round(tick(T0 + 7_200, btc=61_000.0))
    assert len(chain.sent) == len(set(chain.sent))
    assert len([k for k in chain.sent if k.startswith(f"post:{T0 + 3_600}:")]) == len(plan.batches)
    # once the plan is complete, the round prunes its record sent a week ago, not the others
    assert plan.batches[0].key not in restarted.state.ledger
    assert plan.batches[1].key in restarted.state.ledger
    restarted.close()


def test_the_runner_prunes_its_ledger_every_round(tmp_path):
    """200 hourly rounds with a price move each (every round posts), a one-day horizon: the
    ledger holds about a day of records, never the whole history."""
    chain = FakeChain()
    runner = open_runner(tmp_path, chain)
    tx = runner.sender.tx
    for r in range(200):
        tx.now = r * 3_600.0
        chain.head.timestamp = chain.head.number = T0 + (r + 1) * 3_600
        runner.round(tick(T0 + (r + 1) * 3_600, btc=60_000.0 * (1.01 if r % 2 else 0.99)))
    per_round = len(chain.sent) / 200
    assert len(chain.sent) > 200
    assert len(runner.state.ledger) <= (24 + 1) * per_round + 2
    assert runner.state_store.counts()["ledger"] == len(runner.state.ledger)
    runner.close()


def test_dry_run_sends_and_saves_nothing(tmp_path):
    chain = FakeChain()
    store = StateStore(tmp_path, KEEPER, read_only=True)
    runner = KeeperRunner(
        chain,
        DryRunSender(),
        store,
        store.load(),
        store.runner_store(),
        UNDS,
        lambda u, ts: PSR[u],
    )
    report = runner.round(tick())
    assert len(report.posted) == 8 and chain.sent == []
    assert list(tmp_path.iterdir()) == []
    # the same decisions again: what it would have posted counts as posted
    assert runner.round(tick(T0 + 3_660)).posted == []
    runner.close()


def test_runner_store_round_trip_and_corruption(tmp_path):
    with StateStore(tmp_path, KEEPER) as db:
        store = db.runner_store()
        assert store.load() == RunnerState()
        s = RunnerState({"0xa", "0xb"}, None, 7)
        store.save(s)
        assert store.load() == s
        assert db._conn is not None
        db._conn.execute("UPDATE signer_state SET plan = '{not json'")
        with pytest.raises(StateCorruptedError, match="bad round plan"):
            store.load()


def test_quote_json_round_trip_is_exact():
    q = Quote(2**200 + 1, (-(2**190), 3), 10**30)
    assert Quote(q.mark, tuple(q.risk_array), q.scale) == q


# --------------------------------------------------------------------------- market data failures


def feed_tick(ts: int) -> dict:
    return {"timestamp": ts, "spots": {"BTC": 60_000.0, "ETH": 3_000.0}}


@pytest.mark.parametrize("fault", ["down", "error", "slow", "malformed", "invalid"])
def test_a_failing_feed_skips_the_round_and_the_next_good_tick_proceeds(
    tmp_path, caplog, monkeypatch, fault
):
    """``--source http`` with the feed down (connection refused), answering 503, slower than
    the source's timeout, serving something that is not JSON, or JSON that is not a valid tick:
    each round it cannot deliver is skipped with one log line and no traceback, the keeper
    pauses before asking again, and the round after the feed recovers posts."""
    from tick_server import TickServer

    from offchain.keeper.sources import HttpJsonSource

    pauses: list[float] = []
    clock = SimpleNamespace(sleep=pauses.append, monotonic=time.monotonic)
    monkeypatch.setattr("offchain.keeper.runner.time", clock)  # the runner's pauses only
    server = TickServer()
    src = HttpJsonSource(server.url, timeout=0.3)
    if fault == "down":
        server.stop()
    elif fault == "error":
        server.status = 503
    elif fault == "slow":
        server.delay, server.payload = 1.0, feed_tick(T0 + 3_600)
    elif fault == "malformed":
        server.body = b'{"timestamp": 1, "spots": {"BTC": 6'
    else:
        server.payload = {"timestamp": T0 + 3_600, "spots": {"BTC": -1.0}}
    chain = FakeChain()
    runner = open_runner(
        tmp_path, chain, cfg=KeeperConfig(block_gas_limit=500_000, source_retry=2.5)
    )
    with caplog.at_level("INFO", logger="offchain.keeper"):
        assert runner.run(src, rounds=2, idle_sleep=1.0) == 2
    skipped = [r for r in caplog.records if "event=round_skipped" in r.getMessage()]
    assert len(skipped) == 2 and chain.sent == []
    assert all(r.exc_info is None and "cause=source" in r.getMessage() for r in skipped)
    assert not [r for r in caplog.records if "event=round " in r.getMessage() + " "]
    assert pauses == [2.5]  # between the two skipped rounds, none after the last
    if fault == "down":
        server = TickServer(server.port)
    server.status, server.delay, server.body = 200, 0.0, None
    server.payload = feed_tick(T0 + 3_600)
    try:
        assert runner.run(src, rounds=1) == 1
    finally:
        server.stop()
        runner.close()
    assert chain.sent and chain.sent[0] == f"post:{T0 + 3_600}:0"


# --------------------------------------------------------------------------- perps and funding

PERP_CAP = 3 * 10**16


def perp_meta(serial: int, und: int, cap: int = PERP_CAP) -> InstrumentMeta:
    iid = serial | int(Kind.PERP) << 32 | und << 40 | PERP_EXPIRY << 56
    return InstrumentMeta(iid, und, Kind.PERP, cap, PERP_EXPIRY)


PERPS = [perp_meta(7, BTC), perp_meta(8, ETH)]
PNAMES = {m.id: m.name(NAMES) for m in PERPS}


def test_a_perp_is_quoted_like_a_future_at_spot_times_one_plus_the_premium():
    assert list(PNAMES.values()) == ["BTC-PERP", "ETH-PERP"]
    flat = compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES)
    quote, item = flat["BTC-PERP"]
    assert quote.mark == 60_000 * WAD and item.arg == (PERPS[0].id, 60_000 * WAD, 0, [])
    assert quote.risk_array == (60_000 * WAD * to_wad(0.12) // WAD,)
    cfg = KeeperConfig(perp_premium=0.001)
    rich = compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES, cfg)
    assert rich["BTC-PERP"][0].mark == 60_060 * WAD
    assert rich["ETH-PERP"][0].mark == 3_003 * WAD
    # a perp never expires: still quoted a century on, where the futures are not
    later = compute_quotes(T0 + 36_500 * DAY, SPOTS, {}, PSR, UNDS, METAS + PERPS, INAMES | PNAMES)
    assert {"BTC-PERP", "ETH-PERP"} <= set(later) and INAMES[METAS[0].id] not in later


def test_perp_mark_refuses_a_premium_that_is_not_a_fraction():
    assert perp_mark(100 * WAD, -0.5) == 50 * WAD
    for bad in (1.0, -1.0, 3.0):
        with pytest.raises(ValueError, match="perp premium must be in"):
            perp_mark(WAD, bad)


def funding_for(quotes, posted=None, ts=T0, perps=PERPS):
    return funding_posts(
        ts, quotes, perps, PNAMES, NAMES, posted or {}, margin_params().funding, 3_600
    )


def test_funding_is_the_capped_hyperliquid_rate_of_each_perps_premium():
    at_index = funding_for(compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES))
    # the perp at the index pays the interest: 0.01% / 8 per hour, longs to shorts
    assert [(f.name, f.underlying, f.rate) for f in at_index] == [
        ("F:BTC", BTC, 10**14 // 8),
        ("F:ETH", ETH, 10**14 // 8),
    ]
    cfg = KeeperConfig(perp_premium=-0.01)
    below = funding_for(compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES, cfg))
    assert [f.rate for f in below] == [-(10**16 - 5 * 10**14) // 8] * 2  # shorts pay longs
    # the listing's cap binds when it is below the parameter set's
    tight = [perp_meta(7, BTC, cap=10**14)]
    assert [
        f.rate
        for f in funding_for(
            compute_quotes(T0, SPOTS, {}, PSR, UNDS, tight, PNAMES, cfg), perps=tight
        )
    ] == [-(10**14)]


def test_an_unchanged_rate_is_posted_again_only_after_its_heartbeat():
    q = compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES)
    posted = {f.name: Posted(Quote(f.rate), T0) for f in funding_for(q)}
    assert funding_for(q, posted, ts=T0 + 3_599) == []
    assert [f.name for f in funding_for(q, posted, ts=T0 + 3_600)] == ["F:BTC", "F:ETH"]
    moved = compute_quotes(T0, SPOTS, {}, PSR, UNDS, PERPS, PNAMES, KeeperConfig(perp_premium=0.01))
    assert [f.name for f in funding_for(moved, posted, ts=T0 + 1)] == ["F:BTC", "F:ETH"]
    # no spot this round (the underlying is skipped): no funding for its perp
    btc_only = compute_quotes(T0, {"BTC": 60_000.0}, {}, PSR, UNDS, PERPS, PNAMES)
    assert [f.name for f in funding_for(btc_only)] == ["F:BTC"]


class PerpChain(FakeChain):
    def listed_instruments(self):
        return METAS[:5] + PERPS

    def post_funding_calldata(self, posts):
        return repr(("funding", posts)).encode()


def test_a_round_posts_funding_first_then_the_marks_and_records_the_rates(tmp_path):
    chain = PerpChain()
    runner = open_runner(tmp_path, chain)
    report = runner.round(tick())
    ts = T0 + 3_600
    assert chain.sent[0] == f"funding:{ts}" and chain.sent[1] == f"post:{ts}:0"
    assert report.batches == len(chain.sent) - 1 and report.transactions == len(chain.sent)
    assert report.funding == {"BTC": 10**14 // 8, "ETH": 10**14 // 8}
    # the perps' marks are items of the post; the rates are reported apart
    assert {"BTC-PERP", "ETH-PERP"} <= set(report.posted)
    assert not {"F:BTC", "F:ETH"} & set(report.posted)
    assert runner.state.posted["F:ETH"] == Posted(Quote(10**14 // 8), ts)
    # the next tick within the hour: the rate did not change, no funding post
    sent = len(chain.sent)
    report = runner.round(tick(ts + 600))
    assert report.funding == {} and not any(k.startswith("funding:") for k in chain.sent[sent:])
    # an hour on: posted again (the oracle accrues a rate for at most 8 hours)
    report = runner.round(tick(ts + 3_600))
    assert report.funding == {"BTC": 10**14 // 8, "ETH": 10**14 // 8}
    runner.close()


def test_a_crash_the_oracle_caps_lets_the_perp_mark_lag_is_not_funded(tmp_path):
    """The oracle's per-post caps make the posted perp mark lag a crashing spot; the rate comes
    from the model (perp at spot x (1 + premium)), so the lag is not read as a premium."""
    chain = PerpChain()
    runner = open_runner(tmp_path, chain)
    runner.round(tick())
    # the PSR jumps with the crash: the spot may step at the new gap rate, a future's or perp's
    # mark at the smaller of the old and the new (bound_quotes), so the perp falls behind
    runner.psr = lambda u, ts: 0.4
    report = runner.round(tick(T0 + 2 * 3_600, btc=30_000.0))
    posted = runner.state.posted
    spot, perp = posted["U:BTC"].quote.mark, posted["BTC-PERP"].quote.mark
    assert 30_000 * WAD < spot < perp  # both capped, the perp further behind
    assert report.funding["BTC"] == 10**14 // 8
    runner.close()
