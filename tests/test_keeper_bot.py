"""The keeper as a Silverback bot, as an operator runs it: ``silverback run
offchain.keeper.bot:bot --network ethereum:local:foundry --account TEST::1 --record`` against an
anvil node that is already running (``APE_FOUNDRY_HOST`` points Ape's foundry provider at it),
on a fresh deployment of ``deploy/demo.json`` with a few of the demo's books.

The bot replays 10-14 March 2020 (4 steps a day, the node's clock moved to each tick), posting,
liquidating and settling; it is killed with SIGKILL mid-replay and started again, finishes the
replay, and stops on SIGTERM. The chain then shows every item posted at most once per
timestamp and every keeper transaction successful, and Silverback's session files hold the
metrics each round returned, which match the chain.
"""

from __future__ import annotations

import contextlib
import json
import math
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest
from anvil_node import AnvilNode, free_port
from ape import accounts, networks

from offchain.keeper.config import KeeperConfig
from offchain.keeper.replay import ShiftedSource
from offchain.keeper.runner import open_keeper
from offchain.keeper.service import KeeperOptions, replay_psr
from offchain.keeper.sources import CsvReplaySource, Tick
from offchain.keeper.tx import TxConfig
from offchain.sdk import Client, deploy_system, load_config
from scripts._demo import BOOKS, open_books

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent
DAY = 86_400
USD = 10**6
START, END, STEPS = "2020-03-10", "2020-03-14", 4
HEARTBEAT = 12 * 3_600
#: liquidated in the crash (naked puts, unhedged longs) and one holder of a 13 March expiry
BOOK_NAMES = ("btc_long_fut", "btc_naked_put", "eth_long_fut", "eth_naked_put", "btc_weekly_put")
METRICS = {"posts", "gas", "liquidations", "settlements", "data_age", "round_seconds"}


@contextlib.contextmanager
def on_node(node: AnvilNode):
    """Ape's chain, accounts and project on ``node`` (the test session's own node meanwhile
    waits, untouched)."""
    with networks.ethereum.local.use_provider("foundry", provider_settings={"host": node.url}):
        yield


@pytest.fixture
def deployment(project, tmp_path):
    """A node with the demo's system deployed on it with expiries moved onto its clock, five
    books opened at the first tick's marks (posted by an in-process keeper with the bot's account
    and state folder); then a block every second besides the blocks of transactions, as on a
    live network (the bot's rounds follow new blocks)."""
    from ape import chain

    node = AnvilNode()
    stop_mining = threading.Event()
    try:
        with on_node(node):
            admin, keeper, venue = (accounts.test_accounts[i] for i in range(3))
            replay = CsvReplaySource(["BTC", "ETH"], START, END, STEPS)
            first = replay.next_tick()
            now = chain.blocks.head.timestamp
            offset = math.ceil((now + 3_600 - first.timestamp) / DAY) * DAY
            cfg = load_config(REPO / "deploy" / "demo.json")
            c = deploy_system(
                project, chain, admin, cfg, keepers=[keeper], venues=[venue], time_offset=offset
            )
            path = tmp_path / "deployment.json"
            c.deployment.save(path)
            chain.set_balance(keeper.address, 10**21)
            c.fund(admin, keeper, "cash", 20_000_000 * USD)  # the keeper liquidates into it
            c.deposit(keeper, "cash", 20_000_000 * USD)
            c.fund(admin, admin, "cash", 250_000 * USD)
            c.engine.deposit(c.cash, 250_000 * USD, c.liquidator.address, sender=admin)
            state_dir = tmp_path / "keeper-state"
            runner = open_keeper(
                c,
                keeper,
                str(state_dir),
                cfg=KeeperConfig(heartbeat=HEARTBEAT),
                tx_config=TxConfig(confirmations=1, poll_interval=0.02),
                psr=replay_psr(ShiftedSource(replay, offset), c, KeeperOptions(end=END)),
            )
            ts = first.timestamp + offset
            chain.mine(timestamp=ts)
            assert runner.round(Tick(ts, first.spots, first.realised_vol)).batches >= 1
            runner.close()
            books = tuple(b for b in BOOKS if b.name in BOOK_NAMES)
            people = open_books(c, admin, venue, books, offset, lambda _line: None)
            last = offset + max(t.timestamp for t in iter(replay.next_tick, None))
        threading.Thread(target=mine_every_second, args=(node, stop_mining), daemon=True).start()
        yield {
            "node": node,
            "path": path,
            "offset": offset,
            "first_ts": ts,
            "last_ts": last,
            "state_dir": state_dir,
            "keeper": keeper.address,
            "people": people,
            "metrics_port": free_port(),
        }
    finally:
        stop_mining.set()
        node.stop()


def mine_every_second(node: AnvilNode, stop: threading.Event) -> None:
    """``evm_mine`` each second (anvil's --block-time turns automine off, and its
    --mixed-mining confuses Ape's deployments)."""
    while not stop.wait(1.0):
        with contextlib.suppress(Exception):
            node.mine()


def bot_env(dep: dict, name: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPER_", "SILVERBACK_"))}
    return env | {
        "PATH": f"{REPO / 'node_modules' / '.bin'}:{BIN}:{env['PATH']}",
        "APE_FOUNDRY_HOST": dep["node"].url,
        "SILVERBACK_BOT_NAME": name,
        "KEEPER_DEPLOYMENT": str(dep["path"]),
        "KEEPER_SOURCE": "csv",
        "KEEPER_START": START,
        "KEEPER_END": END,
        "KEEPER_STEPS_PER_DAY": str(STEPS),
        "KEEPER_OFFSET": str(dep["offset"]),
        "KEEPER_WARP": "1",
        "KEEPER_HEARTBEAT": str(HEARTBEAT),
        "KEEPER_STATE_DIR": str(dep["state_dir"]),
        "KEEPER_METRICS_PORT": str(dep["metrics_port"]),
    }


def start_command() -> list[str]:
    return [
        str(BIN / "silverback"),
        "run",
        "offchain.keeper.bot:bot",
        "--network",
        "ethereum:local:foundry",
        "--account",
        "TEST::1",
        "--record",
        "--recorder",
        "offchain.keeper.metrics:PrometheusRecorder",
        "--max-exceptions",
        "3",
    ]


def start_bot(env: dict[str, str], log: Path) -> subprocess.Popen:
    with log.open("a") as out:
        return subprocess.Popen(
            start_command(), cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT
        )


def rounds(sessions: Path) -> list[list[dict]]:
    """The ``keeper_round`` results of each recorded session, oldest session first."""
    out = []
    for file in sorted(sessions.glob("session-*.jsonl")):
        lines = [json.loads(line) for line in file.read_text().splitlines() if line.strip()]
        out.append([r for r in lines if r["task_name"] == "keeper_round" and r["metrics"]])
    return out


def values(record: dict) -> dict:
    return {k: v["data"] for k, v in record["metrics"].items()}


def wait_for(proc: subprocess.Popen, log: Path, done, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if proc.poll() is not None:
            pytest.fail(f"the bot exited with {proc.returncode}:\n{log.read_text()[-4000:]}")
        if time.monotonic() > deadline:
            pytest.fail(f"timed out waiting for the bot:\n{log.read_text()[-4000:]}")
        time.sleep(0.2)


def stop(proc: subprocess.Popen) -> int | None:
    if proc.poll() is None:
        proc.kill()
    return proc.wait(timeout=30)


def test_the_bot_keeps_a_deployment_posted_liquidated_and_settled_across_a_kill(
    deployment, tmp_path
):
    dep = deployment
    name = f"keeper-test-{os.getpid()}-{tmp_path.name}"
    sessions = REPO / ".silverback-sessions" / name / "ethereum" / "local"
    env = bot_env(dep, name)
    log = tmp_path / "bot.log"
    try:
        bot = start_bot(env, log)
        try:
            # a few rounds that post, then SIGKILL wherever the bot is
            wait_for(
                bot,
                log,
                lambda: sum(values(r)["posts"] > 0 for s in rounds(sessions) for r in s) >= 4,
                90,
            )
            bot.send_signal(signal.SIGKILL)
            assert bot.wait(timeout=30) == -signal.SIGKILL
            bot = start_bot(env, log)
            wait_for(
                bot,
                log,
                lambda: (
                    len(rounds(sessions)) == 2
                    and any(values(r)["data_ts"] == dep["last_ts"] for r in rounds(sessions)[1])
                ),
                90,
            )
            url = f"http://127.0.0.1:{dep['metrics_port']}/metrics"
            scraped = urllib.request.urlopen(url, timeout=10).read().decode().splitlines()
            # a second bot with the same key on the same deployment is refused in one line
            twin = subprocess.run(
                start_command(), cwd=REPO, env=env, capture_output=True, text=True, timeout=120
            )
            assert twin.returncode == 2, twin.stdout + twin.stderr
            assert "in use by another keeper process" in twin.stderr.splitlines()[-1]
            assert "Traceback" not in twin.stdout + twin.stderr
            bot.send_signal(signal.SIGTERM)
            assert bot.wait(timeout=60) == 0
        finally:
            stop(bot)
        text = log.read_text()
        first, second = rounds(sessions)
        assert "SIGTERM signal received" in text and "close_keeper_service" in text

        with on_node(dep["node"]):
            from ape import chain, project

            c = Client.connect(project, chain, dep["path"])
            head = chain.blocks.head.number
            posted = c.posted_batches(c.deployment.block, head)
            liquidated = list(c.events(c.liquidator, "Liquidated", c.deployment.block, head))
            settled = list(c.events(c.engine, "Settled", c.deployment.block, head))
            positions = [iid for p in dep["people"].values() for iid in c.positions(p)]
            oracle_ts = int(c.oracle.underlying_state(1)[2])
            w3 = chain.provider.web3
            keeper_txs = [
                tx
                for n in range(c.deployment.block, head + 1)
                for tx in w3.eth.get_block(n, full_transactions=True)["transactions"]
                if tx["from"] == dep["keeper"]
            ]
            statuses = Counter(
                w3.eth.get_transaction_receipt(tx["hash"])["status"] for tx in keeper_txs
            )
    finally:
        shutil.rmtree(REPO / ".silverback-sessions" / name, ignore_errors=True)

    # the replay got posted to its last tick, and no item twice for one timestamp
    assert oracle_ts == dep["last_ts"]
    items = Counter(
        (b.timestamp, kind, str(x))
        for b in posted
        for kind in ("underlyings", "instruments", "assets")
        for x in getattr(b, kind)
    )
    assert items and max(items.values()) == 1
    stamps = sorted({ts for ts, _, _ in items})
    assert stamps[0] == dep["first_ts"] and stamps[-1] == dep["last_ts"]
    # every keeper transaction succeeded: nothing was sent twice and refused as "not newer"
    assert statuses == Counter({1: len(keeper_txs)})

    # the crash liquidated; the 13 March instruments were settled: only 27 March legs are left
    assert liquidated and settled
    assert positions and all((iid >> 56) > dep["last_ts"] for iid in positions)

    # Silverback recorded each round's metrics, and they match the chain
    before, after = [values(r) for r in first], [values(r) for r in second]
    assert all(METRICS <= set(m) for m in before + after)
    assert 1 <= sum(m["liquidations"] for m in before + after) <= len(liquidated)
    assert sum(m["settlements"] for m in before + after) >= 1
    by_ts = Counter(ts for ts, _, _ in items)
    # a round's posts are the items posted at its timestamp (a round the kill interrupted is
    # finished by the first round after the restart, with its own tick)
    posting = [m for m in before + after if m["posts"]]
    assert len(posting) >= 4 and all(m["posts"] == by_ts[m["data_ts"]] for m in posting)
    assert max(m["data_age"] for m in before + after) <= HEARTBEAT + DAY // STEPS

    # the Prometheus endpoint of the second run served what its rounds returned (scraped while
    # it ran: some posts, and no more than its session file holds at the end)
    served = dict(line.split(" ") for line in scraped if line.startswith("keeper_"))
    assert float(served["keeper_posts_total"]) <= sum(m["posts"] for m in after)
    assert float(served["keeper_posts_total"]) >= 1
    assert "keeper_data_age" in served and "keeper_round_seconds" in served


@pytest.mark.parametrize(
    ("env", "message"),
    [
        (
            {"KEEPER_SORCE": "csv"},
            "error: unknown environment variable KEEPER_SORCE: did you mean KEEPER_SOURCE?",
        ),
    ],
)
def test_the_bot_refuses_a_bad_setting_in_one_line_before_it_starts(env, message, tmp_path):
    node = AnvilNode()
    try:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("KEEPER_", "SILVERBACK_"))}
        cmd = [str(BIN / "silverback"), "run", "offchain.keeper.bot:bot"]
        cmd += ["--network", "ethereum:local:foundry", "--account", "TEST::1"]
        proc = subprocess.run(
            cmd,
            cwd=REPO,
            env=base | {"APE_FOUNDRY_HOST": node.url} | env,
            capture_output=True,
            text=True,
            timeout=120,
        )
    finally:
        node.stop()
    assert proc.returncode == 2, proc.stdout + proc.stderr
    assert proc.stderr.splitlines()[-1] == message
    assert "Traceback" not in proc.stdout + proc.stderr
