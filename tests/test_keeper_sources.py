"""Market data sources: real history replay, simulation, JSON file / HTTP, on-chain feed."""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import pytest
import vyper
from anvil_node import AnvilNode
from tick_server import TickServer

from offchain.keeper.sources import (
    AggregatorV3Source,
    CsvReplaySource,
    FeedError,
    HttpJsonSource,
    JsonFileSource,
    MarketDataSource,
    SimulatedSource,
    SimulationConfig,
    SourceError,
    Tick,
)
from offchain.paths import data_dir

REPO = Path(__file__).resolve().parents[1]


def ts(day: str) -> int:
    return int(datetime.fromisoformat(day).replace(tzinfo=UTC).timestamp())


def drain(source: MarketDataSource) -> list[Tick]:
    out = []
    while (tick := source.next_tick()) is not None:
        out.append(tick)
    return out


# --------------------------------------------------------------------------- CSV replay


def test_every_source_satisfies_the_interface(tmp_path):
    (tmp_path / "t.json").write_text('[{"timestamp": 1, "spots": {"BTC": 1.0}}]')
    sources = [
        CsvReplaySource(["BTC"], "2020-03-12", "2020-03-13"),
        SimulatedSource(SimulationConfig(steps=1), seed=1),
        JsonFileSource(tmp_path / "t.json"),
        HttpJsonSource("http://127.0.0.1:9/ticks"),
    ]
    assert all(isinstance(s, MarketDataSource) for s in sources)


def test_march_2020_crash_day_in_four_steps():
    # BTC closes (Yahoo, end of day): 2020-03-11 7_911.430176, 2020-03-12 4_970.788086;
    # ETH CoinGecko snapshots at 00:00 UTC: 2020-03-12 194.217941, 2020-03-13 110.597898.
    ticks = drain(CsvReplaySource(["BTC", "ETH"], "2020-03-12", "2020-03-13", steps_per_day=4))
    assert [t.timestamp for t in ticks] == [ts("2020-03-12") + 21_600 * k for k in range(5)]
    assert ticks[0].spots == {"BTC": 7_911.430176, "ETH": 194.217941}
    assert ticks[-1].spots == {"BTC": 4_970.788086, "ETH": 110.597898}
    r = 4_970.788086 / 7_911.430176
    for k, tick in enumerate(ticks):
        assert tick.spots["BTC"] == pytest.approx(7_911.430176 * r ** (k / 4), rel=1e-12)
    assert [round(t.spots["BTC"], 1) for t in ticks[1:4]] == [7_043.6, 6_271.0, 5_583.2]
    # a 30-day realised vol hint, known before the crash
    assert 0.3 < ticks[1].realised_vol["BTC"] < 1.5 and "ETH" in ticks[1].realised_vol


def test_alignment_skips_instants_missing_for_one_underlying():
    # Yahoo has no BTC bar for 2020-04-17, so the instant 2020-04-18 00:00 has no BTC close:
    # the aligned replay goes from 04-17 to 04-19, with its steps spread over the 2-day gap.
    both = drain(CsvReplaySource(["BTC", "ETH"], "2020-04-17", "2020-04-19", steps_per_day=2))
    assert [t.timestamp for t in both] == [
        ts("2020-04-17"),
        ts("2020-04-18"),  # halfway (interpolated), not a real 04-18 close
        ts("2020-04-19"),
    ]
    eth_only = drain(CsvReplaySource(["ETH"], "2020-04-17", "2020-04-19", steps_per_day=2))
    assert len(eth_only) == 5


def test_len_matches_the_ticks_and_vol_needs_history():
    # 13 snapshots from 2015-08-07 to 08-20 (CoinGecko has none for 2015-08-09): 12 intervals
    src = CsvReplaySource(["ETH"], "2015-08-07", "2015-08-20", steps_per_day=3)
    ticks = drain(src)
    assert len(ticks) == len(src) == 1 + 12 * 3
    assert ticks[0].realised_vol == {}  # first day of history: no returns yet
    assert src.next_tick() is None  # exhausted for ever


def test_csv_replay_rejects_bad_arguments():
    with pytest.raises(ValueError, match="no history"):
        CsvReplaySource(["DOGE"], "2020-01-01", "2020-01-02")
    with pytest.raises(ValueError, match="before start"):
        CsvReplaySource(["BTC"], "2020-01-02", "2020-01-01")
    with pytest.raises(ValueError, match="no common data"):
        CsvReplaySource(["BTC", "ETH"], "2022-01-01", "2022-02-01")  # BTC file ends 2021-08


def test_data_dir_env_override_and_malformed_csv(tmp_path, monkeypatch):
    data = tmp_path / "data"
    data.mkdir()
    (data / "eth_usd_daily.csv").write_text("date,close\n2020-01-01,100\n2020-01-02,110\n")
    monkeypatch.setenv("PM_DATA_DIR", str(data))
    assert data_dir() == data.resolve()
    ticks = drain(CsvReplaySource(["ETH"], "2020-01-01", "2020-01-02"))
    assert [t.spots["ETH"] for t in ticks] == [100.0, 110.0]
    (data / "eth_usd_daily.csv").write_text("date,close\n2020-01-01,100\n2020-01-02,-5\n")
    with pytest.raises(SourceError, match="line 3: close -5.0 is not positive"):
        CsvReplaySource(["ETH"], "2020-01-01", "2020-01-02")
    monkeypatch.setenv("PM_DATA_DIR", str(tmp_path / "nowhere"))
    with pytest.raises(FileNotFoundError, match="PM_DATA_DIR"):
        data_dir()


# --------------------------------------------------------------------------- simulation


def test_simulation_is_deterministic_per_seed():
    config = SimulationConfig(steps=200)
    a, b, c = (drain(SimulatedSource(config, seed)) for seed in (7, 7, 8))
    assert a == b
    assert a != c
    assert len(a) == 201 and a[0].spots == {"BTC": 60_000.0, "ETH": 3_000.0}
    assert all(t1.timestamp - t0.timestamp == config.dt for t0, t1 in zip(a, a[1:], strict=False))


def log_returns(ticks: list[Tick], name: str) -> np.ndarray:
    return np.diff(np.log([t.spots[name] for t in ticks]))


def test_simulation_correlation_and_volatility_without_jumps():
    config = SimulationConfig(steps=20_000, jump_intensity=0.0, garch_alpha=0.0, garch_beta=0.0)
    ticks = drain(SimulatedSource(config, seed=3))
    btc, eth = log_returns(ticks, "BTC"), log_returns(ticks, "ETH")
    assert np.corrcoef(btc, eth)[0, 1] == pytest.approx(0.8, abs=0.03)
    per_year = math.sqrt(31_536_000 / config.dt)
    assert np.std(btc) * per_year == pytest.approx(0.6, rel=0.05)
    assert np.std(eth) * per_year == pytest.approx(0.8, rel=0.05)


def test_simulation_jumps_raise_later_volatility():
    # Frequent large down-jumps: every large down move is followed by a higher conditional vol.
    config = SimulationConfig(
        steps=5_000,
        jump_intensity=40.0,
        jump_mean=-0.15,
        jump_std=0.01,
        garch_alpha=0.1,
        garch_beta=0.85,
    )
    ticks = drain(SimulatedSource(config, seed=11))
    r = log_returns(ticks, "BTC")
    jumps = np.flatnonzero(r < -0.1)
    assert len(jumps) > 10
    for i in jumps:
        assert ticks[i + 1].realised_vol["BTC"] > ticks[i].realised_vol["BTC"]
    vols = np.array([t.realised_vol["BTC"] for t in ticks])
    assert vols.max() > 2 * 0.6  # clustering: vol far above its long-run level after jumps


@pytest.mark.parametrize(
    "bad",
    [
        {"spot0": (1.0,)},
        {"correlation": ((1.0, 1.2), (1.2, 1.0))},
        {"correlation": ((1.0, 0.5), (0.4, 1.0))},
        {"garch_alpha": 0.5, "garch_beta": 0.5},
        {"vol": (0.0, 0.8)},
    ],
)
def test_simulation_config_is_validated(bad):
    with pytest.raises(ValueError):
        SimulationConfig(**bad)


# --------------------------------------------------------------------------- JSON file / HTTP


def test_json_file_source(tmp_path):
    path = tmp_path / "ticks.json"
    path.write_text(
        json.dumps(
            {
                "ticks": [
                    {"timestamp": 100, "spots": {"BTC": 60_000}, "implied_vol": {"BTC": 0.7}},
                    {"timestamp": 160, "spots": {"BTC": 59_000.5, "ETH": 2_900}},
                ]
            }
        )
    )
    ticks = drain(JsonFileSource(path))
    assert ticks == [
        Tick(100, {"BTC": 60_000.0}, {}, {"BTC": 0.7}),
        Tick(160, {"BTC": 59_000.5, "ETH": 2_900.0}),
    ]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ("[{", "not valid JSON"),
        (
            '[{"timestamp": 2, "spots": {"BTC": 1}}, {"timestamp": 2, "spots": {"BTC": 1}}]',
            "increase",
        ),
        ('[{"timestamp": 2, "spots": {"BTC": -1}}]', "must be positive"),
        ('[{"timestamp": 2, "spots": {"BTC": "1"}}]', "is not a number"),
        ('[{"timestamp": 2, "spots": {}}]', "at least one price"),
        ('[{"timestamp": -2, "spots": {"BTC": 1}}]', "timestamp"),
    ],
)
def test_json_file_source_rejects_bad_data(tmp_path, payload, message):
    path = tmp_path / "ticks.json"
    path.write_text(payload)
    with pytest.raises(SourceError, match=message):
        JsonFileSource(path)


@pytest.fixture
def tick_server() -> Iterator[TickServer]:
    server = TickServer()
    yield server
    server.stop()


def test_http_source_returns_only_newer_ticks(tick_server):
    src = HttpJsonSource(tick_server.url, timeout=2)
    tick_server.payload = {"timestamp": 100, "spots": {"BTC": 60_000}}
    assert src.next_tick() == Tick(100, {"BTC": 60_000.0})
    assert src.next_tick() is None  # same tick served again: nothing new
    tick_server.payload = [
        {"timestamp": 100, "spots": {"BTC": 60_000}},
        {"timestamp": 110, "spots": {"BTC": 60_100}},
        {"timestamp": 120, "spots": {"BTC": 60_200}},
    ]
    assert [src.next_tick().timestamp, src.next_tick().timestamp] == [110, 120]
    assert src.next_tick() is None
    assert tick_server.hits == 4


def test_http_source_errors(tick_server):
    tick_server.status = 503
    with pytest.raises(SourceError, match="HTTP 503"):
        HttpJsonSource(tick_server.url, timeout=2).next_tick()
    tick_server.status = 200
    tick_server.payload = {"timestamp": 1, "spots": {"BTC": 0}}
    with pytest.raises(SourceError, match="must be positive"):
        HttpJsonSource(tick_server.url, timeout=2).next_tick()
    with pytest.raises(ValueError, match="http"):
        HttpJsonSource("file:///etc/passwd")


def test_http_source_bounds_the_whole_answer_by_its_timeout(tick_server):
    """Each byte arrives well within the socket timeout, the whole answer does not."""
    tick_server.payload = {"timestamp": 1, "spots": {"BTC": 60_000}}
    tick_server.drip = 0.05
    with pytest.raises(SourceError, match="no complete answer within 0.3 s"):
        HttpJsonSource(tick_server.url, timeout=0.3).next_tick()


# --------------------------------------------------------------------------- AggregatorV3


@pytest.fixture(scope="module")
def feeds() -> Iterator[tuple[AnvilNode, dict[str, object]]]:
    """anvil with two MockAggregatorV3 feeds (BTC, ETH), deployed by the first dev account."""
    node = AnvilNode()
    source = (REPO / "contracts" / "test" / "MockAggregatorV3.vy").read_text()
    out = vyper.compile_code(source, output_formats=["abi", "bytecode"])
    w3 = node.w3
    admin = w3.eth.accounts[0]
    factory = w3.eth.contract(abi=out["abi"], bytecode=out["bytecode"])
    contracts = {}
    for name in ("BTC", "ETH"):
        tx = factory.constructor(f"{name} / USD").transact({"from": admin})
        address = w3.eth.get_transaction_receipt(tx)["contractAddress"]
        contracts[name] = w3.eth.contract(address=address, abi=out["abi"])
    yield node, contracts
    node.stop()


def set_round(node, contract, round_id, answer, updated_at, answered_in=None) -> None:
    answered = round_id if answered_in is None else answered_in
    contract.functions.set_round(round_id, answer, updated_at, answered).transact(
        {"from": node.w3.eth.accounts[0]}
    )


def chain_now(node) -> int:
    return node.w3.eth.get_block("latest")["timestamp"]


def test_aggregator_source_reads_spots_and_waits_for_new_rounds(feeds):
    node, c = feeds
    now = chain_now(node)
    set_round(node, c["BTC"], 10, 6_012_345_000_000, now - 30)
    set_round(node, c["ETH"], 20, 301_250_000_000, now - 10)
    src = AggregatorV3Source(
        node.w3, {u: k.address for u, k in c.items()}, max_age=3_600, clock=lambda: now
    )
    tick = src.next_tick()
    assert tick == Tick(now - 30, {"BTC": 60_123.45, "ETH": 3_012.5})
    assert src.next_tick() is None  # no new round
    set_round(node, c["ETH"], 21, 300_000_000_000, now)
    assert src.next_tick().spots["ETH"] == 3_000.0


def test_aggregator_source_uses_chain_time_by_default(feeds):
    node, c = feeds
    set_round(node, c["BTC"], 30, 5_000_000_000_000, chain_now(node))
    src = AggregatorV3Source(node.w3, {"BTC": c["BTC"].address}, max_age=600)
    assert src.next_tick().spots == {"BTC": 50_000.0}
    node.rpc("evm_increaseTime", 601)
    node.mine()
    with pytest.raises(FeedError, match="stale: updated 60[1-9] s ago"):
        src.next_tick()


@pytest.mark.parametrize(
    ("round_id", "answer", "age", "answered_in", "message"),
    [
        (40, 0, 10, None, "answer 0 is not positive"),
        (41, -5, 10, None, "answer -5 is not positive"),
        (42, 100, 7_200, None, "stale: updated 7200 s ago, max_age 3600 s"),
        (43, 100, 10, 42, "answeredInRound 42 < roundId 43"),
        (44, 100, -100, None, "is after now"),
    ],
)
def test_aggregator_source_rejects_bad_answers(feeds, round_id, answer, age, answered_in, message):
    node, c = feeds
    now = chain_now(node) + 1_000
    set_round(node, c["BTC"], round_id, answer, now - age, answered_in)
    src = AggregatorV3Source(node.w3, {"BTC": c["BTC"].address}, clock=lambda: now)
    with pytest.raises(FeedError, match=message) as err:
        src.next_tick()
    assert err.value.underlying == "BTC" and err.value.feed == c["BTC"].address


def test_aggregator_source_rejects_an_incomplete_round(feeds):
    node, c = feeds
    set_round(node, c["ETH"], 50, 100, 0)
    src = AggregatorV3Source(node.w3, {"ETH": c["ETH"].address}, clock=lambda: 10**10)
    with pytest.raises(FeedError, match="incomplete"):
        src.next_tick()


def test_aggregator_source_turns_an_unreadable_feed_or_node_into_a_source_error(feeds):
    from web3 import Web3

    node, c = feeds
    no_code = "0x" + "11" * 20
    with pytest.raises(SourceError, match="feeds unreadable"):
        AggregatorV3Source(node.w3, {"BTC": no_code}, clock=lambda: 1).next_tick()
    closed = Web3(Web3.HTTPProvider("http://127.0.0.1:9", exception_retry_configuration=None))
    with pytest.raises(SourceError, match="feeds unreadable"):
        AggregatorV3Source(closed, {"BTC": c["BTC"].address}, clock=lambda: 1).next_tick()


def test_mock_aggregator_is_admin_only(feeds):
    node, c = feeds
    with pytest.raises(Exception, match="mock: not admin"):
        c["BTC"].functions.set_round(1, 1, 1, 1).transact({"from": node.w3.eth.accounts[1]})
    assert c["BTC"].functions.decimals().call() == 8


@pytest.mark.parametrize(
    ("underlying", "file", "offset_days"),
    [("BTC", "btc_usd_daily.csv", 1), ("ETH", "eth_usd_daily.csv", 0)],
)
def test_calibrated_psr_is_known_when_its_close_is(underlying, file, offset_days):
    """Each file's own date convention: a CoinGecko ETH row of day d (a 00:00 UTC snapshot) is
    known at d 00:00, a Yahoo BTC row of day d (the close at the end of d) at d+1 00:00, and a
    tick one second earlier still sees the previous row's PSR."""
    from offchain.calibration import CalibrationParams, psr_series
    from offchain.data import CLOSE_OFFSET_DAYS, load_asset
    from offchain.keeper.replay import CalibratedPsr
    from offchain.keeper.sources import HISTORY_FILES

    assert CLOSE_OFFSET_DAYS[file] == offset_days
    assert HISTORY_FILES[underlying] == (file, offset_days)  # the replay's prices agree
    until = ts("2020-03-20")
    replay = CalibratedPsr([underlying], until=until)
    prices = load_asset(underlying)
    n = int(np.searchsorted(prices.known_at, until, side="right"))
    expected = psr_series(prices.close[:n], CalibrationParams()).psr
    # a replay clock moved by whole days sees the same instants shifted
    shifted = CalibratedPsr([underlying], until=until, time_offset=7 * 86_400)
    for day in ("2020-03-12", "2020-03-13", "2020-03-16"):
        i = int(np.searchsorted(prices.dates, np.datetime64(day)))
        assert str(prices.dates[i]) == day
        assert expected[i] != expected[i - 1]  # the PSR moves on these crash days
        known = ts(day) + offset_days * 86_400
        assert replay(underlying, known) == expected[i]
        assert replay(underlying, known - 1) == expected[i - 1]
        assert shifted(underlying, known + 7 * 86_400 - 1) == expected[i - 1]
