"""What the bot and ``ape run keeper`` share (``offchain.keeper.service``), without a chain: the
options an operator gives (environment or command line) are checked with one-line errors, and
a step runs one round on the right tick and returns the metrics Silverback records."""

from __future__ import annotations

import threading
from types import SimpleNamespace

import pytest

from offchain.keeper.runner import RoundReport
from offchain.keeper.runner_state import RoundPlan
from offchain.keeper.service import (
    KeeperOptions,
    KeeperService,
    ServiceError,
    check_options,
    oldest_data_age,
    round_metrics,
)
from offchain.keeper.sources import SourceError, Tick

FEED = "0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"


def test_options_come_from_keeper_variables_with_their_types():
    env = {
        "KEEPER_SOURCE": "csv",
        "KEEPER_OFFSET": "86400",
        "KEEPER_THRESHOLD": "0.01",
        "KEEPER_WARP": "yes",
        "KEEPER_FEEDS": f"BTC={FEED}, ETH={FEED}",
        "KEEPER_CONFIRMATIONS": "",
        "HOME": "/somewhere",  # other variables are not the keeper's
    }
    o = KeeperOptions.from_env(env)
    assert (o.source, o.offset, o.threshold, o.warp) == ("csv", 86_400, 0.01, True)
    assert o.feeds == (f"BTC={FEED}", f"ETH={FEED}") and o.confirmations is None
    assert KeeperOptions.from_env({}) == KeeperOptions()


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"KEEPER_SORCE": "csv"}, "unknown environment variable KEEPER_SORCE: did you mean "),
        ({"KEEPER_HEARTBEAT": "10m"}, "KEEPER_HEARTBEAT='10m' is not a number"),
        ({"KEEPER_THRESHOLD": "nan"}, "KEEPER_THRESHOLD='nan' is not a number"),
        ({"KEEPER_WARP": "maybe"}, "KEEPER_WARP='maybe' is not a yes/no value"),
    ],
)
def test_a_bad_keeper_variable_is_named_in_one_line(env, message):
    with pytest.raises(ServiceError) as exc:
        KeeperOptions.from_env(env)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)
    if "SORCE" in message:
        assert str(exc.value).endswith("KEEPER_SOURCE?")


@pytest.mark.parametrize(
    ("options", "network", "message"),
    [
        (KeeperOptions(), "sepolia", "--source is required on sepolia: one of csv, sim"),
        (KeeperOptions(source="csv", warp=True), "sepolia", "--warp moves the clock of a local"),
        (KeeperOptions(source="jsn"), "local", "--source jsn: choose one of"),
        (KeeperOptions(source="json"), "local", "--source json needs --file"),
        (KeeperOptions(source="json", file="/no/such.json"), "local", "--file /no/such.json: no"),
        (KeeperOptions(source="http"), "local", "--source http needs --url"),
        (KeeperOptions(source="http", url="file:///etc"), "local", "--url file:///etc: not an"),
        (KeeperOptions(source="feed"), "local", "--source feed needs --feed"),
        (KeeperOptions(source="feed", feeds=("BTC:0x12",)), "local", "--feed BTC:0x12: expected"),
        (KeeperOptions(url="https://x"), "local", "--url goes with --source http, not --source "),
        (KeeperOptions(start="2020-03-10"), "local", "--start/--end/--offset go with --source csv"),
        (KeeperOptions(source="csv", start="10/03/2020"), "local", "--start 10/03/2020: not a"),
        (
            KeeperOptions(source="csv", start="2020-03-14", end="2020-03-10"),
            "local",
            "--start 2020-03-14 is after --end 2020-03-10: swap them",
        ),
        (KeeperOptions(steps_per_day=0), "local", "--steps-per-day 0: give 1 or more"),
        (KeeperOptions(threshold=1.5), "local", "--heartbeat must be positive seconds"),
        (KeeperOptions(confirmations=0), "local", "--confirmations 0: give 1 or more"),
        (KeeperOptions(metrics_port=70_000), "local", "metrics port 70000 is not a TCP port"),
        (KeeperOptions(cron="*/5 * *"), "local", "cron schedule '*/5 * *' needs 5 fields"),
    ],
)
def test_options_that_cannot_work_are_refused_before_anything_opens(options, network, message):
    with pytest.raises(ServiceError) as exc:
        check_options(options, network)
    assert str(exc.value).startswith(message) and "\n" not in str(exc.value)


def test_options_that_work_pass():
    check_options(KeeperOptions(), "local")  # sim on a local network
    check_options(KeeperOptions(source="feed", feeds=(f"BTC={FEED}",)), "mainnet")
    check_options(KeeperOptions(source="csv", warp=True, cron="*/5 * * * *"), "anvil")
    check_options(KeeperOptions(warp=True), "mainnet-fork")  # a fork is local


# ------------------------------------------------------------------------------ one step


class FakeSource:
    def __init__(self, ticks):
        self.ticks = list(ticks)

    def next_tick(self):
        item = self.ticks.pop(0) if self.ticks else None
        if isinstance(item, Exception):
            raise item
        return item


class FakeRunner:
    """Records the ticks of its rounds; ``last_ts`` / ``plan`` as a restarted keeper has them."""

    def __init__(self, last_ts=0, plan=None):
        self.runner_state = SimpleNamespace(last_ts=last_ts, plan=plan)
        self.ticks = []
        self.last_market = None
        self.instruments = []
        self.closed = False
        self.entered = threading.Event()
        self.release = threading.Event()
        self.release.set()

    def try_round(self, tick):
        self.entered.set()
        self.release.wait(10)
        self.ticks.append(tick.timestamp)
        self.runner_state.plan = None
        self.runner_state.last_ts = max(self.runner_state.last_ts, tick.timestamp)
        return RoundReport(tick.timestamp, posted=["U:BTC", "BTC-F"], batches=1, gas_used=7)

    def close(self):
        self.closed = True


def tick(ts):
    return Tick(ts, {"BTC": 60_000.0})


def service(runner, ticks):
    return KeeperService(runner, FakeSource(ticks), lambda: (1, 10_000))


def test_a_restarted_replay_passes_over_the_ticks_already_done():
    runner = FakeRunner(last_ts=200)
    s = service(runner, [tick(100), tick(200), tick(300)])
    m = s.step()
    assert runner.ticks == [300] and m["data_ts"] == 300 and m["posts"] == 2 and m["gas"] == 7


def test_a_round_interrupted_by_a_crash_is_finished_with_its_own_tick():
    plan = RoundPlan(200, (), {})
    runner = FakeRunner(last_ts=100, plan=plan)
    s = service(runner, [tick(100), tick(200), tick(300)])
    s.step()
    s.step()
    assert runner.ticks == [200, 300]


def test_without_new_data_the_round_runs_again_on_the_last_tick():
    runner = FakeRunner()
    s = service(runner, [tick(100)])
    s.step()
    s.step()
    assert runner.ticks == [100, 100] and s.rounds == 2


def test_steps_without_a_round_say_why():
    runner = FakeRunner()
    s = service(runner, [SourceError("feed down")])
    assert set(s.step()) == {"source_errors", "round_seconds"}
    assert set(s.step()) == {"idle", "round_seconds"}  # no tick has ever come
    assert runner.ticks == []

    runner.try_round = lambda t: None  # a transaction not final in time: the plan stays
    s = service(runner, [tick(100)])
    assert s.step()["failed_rounds"] == 1


def test_a_step_while_a_round_runs_returns_at_once_and_close_waits_for_the_round():
    runner = FakeRunner()
    runner.release.clear()
    s = service(runner, [tick(100), tick(200)])
    first = threading.Thread(target=s.step)
    first.start()
    assert runner.entered.wait(10)
    assert s.step() is None  # no second round alongside the first
    closer = threading.Thread(target=s.close)
    closer.start()
    closer.join(0.2)
    assert closer.is_alive() and not runner.closed
    runner.release.set()
    first.join(10)
    closer.join(10)
    assert runner.closed and runner.ticks == [100]


def test_the_data_age_is_that_of_the_oldest_live_posted_instrument():
    head = 10_000
    metas = [SimpleNamespace(id=i, expiry=e) for i, e in ((1, 20_000), (2, 20_000), (3, 9_000))]
    market = SimpleNamespace(
        market=SimpleNamespace(instruments={1: None, 2: None, 3: None}),
        timestamps={1: 9_400, 2: 9_700, 3: 1_000, 4: 10},  # 3 expired, 4 settled (not live)
    )
    runner = SimpleNamespace(last_market=market, instruments=metas)
    assert oldest_data_age(runner, head) == 600
    assert oldest_data_age(SimpleNamespace(last_market=None, instruments=metas), head) is None
    report = RoundReport(9_990, posted=["a", "b"], liquidations=["x"], settled=[("y", "F")])
    m = round_metrics(report, 600)
    assert (m["posts"], m["liquidations"], m["settlements"], m["data_age"]) == (2, 1, 1, 600)
    assert "data_age" not in round_metrics(report, None)


def test_the_prometheus_recorder_serves_the_round_metrics(tmp_path, monkeypatch):
    import asyncio
    import urllib.request

    from anvil_node import free_port
    from silverback.recorder import TaskResult
    from silverback.types import SilverbackID

    from offchain.keeper.metrics import PrometheusRecorder

    port = free_port()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("KEEPER_METRICS_PORT", str(port))
    recorder = PrometheusRecorder()
    rounds = [
        {"posts": 19, "gas": 400_000, "liquidations": 0, "data_age": 600, "round_seconds": 0.2},
        {"posts": 15, "gas": 300_000, "liquidations": 2, "data_age": 60, "round_seconds": 0.5},
    ]

    async def record():
        await recorder.init(SilverbackID(name="keeper", ecosystem="ethereum", network="local"))
        for metrics in rounds:
            await recorder.add_result(
                TaskResult(task_name="keeper_round", execution_time=0.1, metrics=metrics)
            )
        await recorder.add_result(
            TaskResult(task_name="keeper_round", execution_time=0.1, error="boom", metrics={})
        )

    try:
        asyncio.run(record())
        page = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5).read()
    finally:
        recorder.close()
    lines = set(page.decode().splitlines())
    assert {
        "keeper_posts_total 34.0",
        "keeper_gas_total 700000.0",
        "keeper_liquidations_total 2.0",
        "keeper_data_age 60.0",
        "keeper_round_seconds 0.5",
        'keeper_handler_errors_total{task="keeper_round"} 1.0',
    } <= lines
    # the session file Silverback's --record writes is still written
    (session,) = (tmp_path / ".silverback-sessions" / "keeper" / "ethereum" / "local").iterdir()
    assert len(session.read_text().splitlines()) == 3


def test_a_replay_s_psr_calibrated_up_to_its_end_is_the_full_calibration_s():
    """``replay_psr`` calibrates only up to the replay's last day (half the start-up time of
    the bot on the 2020 crash): no look-ahead, so every tick of the replay gets the same PSR."""
    from offchain.keeper.replay import CalibratedPsr, ShiftedSource
    from offchain.keeper.service import replay_psr

    offset = 200 * 86_400
    client = SimpleNamespace(deployment=SimpleNamespace(underlyings={"BTC": 1}))
    options = KeeperOptions(source="csv", end="2020-03-14")
    cut = replay_psr(ShiftedSource(None, offset), client, options)
    full = CalibratedPsr(["BTC"], time_offset=offset)
    ticks = range(1_583_798_400, 1_584_316_800, 21_600)  # 2020-03-10 .. 03-15, 6-hourly
    assert [cut("BTC", t + offset) for t in ticks] == [full("BTC", t + offset) for t in ticks]
    assert replay_psr(object(), client, options) is None  # other sources: the keeper's default
