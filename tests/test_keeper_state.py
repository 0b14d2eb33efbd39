"""The keeper's state database: exact round trips, one row written per change, a kill -9 leaves
one consistent state, corruption and unknown schemas are errors naming the file, one process per
(deployment, signer), two networks never share state, JSON state of earlier versions migrated."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from offchain.keeper.logfmt import kv
from offchain.keeper.policy import Posted, Quote, Reason, Update, select_updates
from offchain.keeper.runner import deployment_folder
from offchain.keeper.runner_state import Batch, RoundPlan, RunnerState
from offchain.keeper.state import (
    DB_NAME,
    KeeperState,
    StateCorruptedError,
    StateLockedError,
    StateStore,
    TxRecord,
    TxStatus,
)

WAD = 10**18
REPO = Path(__file__).resolve().parents[1]
SIGNER = "0x70997970C51812dc3A010C7d01b50e0d17dc79C8"
OTHER = "0x3C44CdDdB6a900fa2b585dd299e03d12FA4293BC"
ORACLE = "0x5FbDB2315678afecb367f032d93F642f64180aa3"


def record(
    key: str = "post:BTC:round:17",
    status: TxStatus = TxStatus.PENDING,
    created_at: float = 1_700_000_000.5,
    sender: str = SIGNER,
    payload: int = 2,
) -> TxRecord:
    return TxRecord(
        key=key,
        sender=sender,
        nonce=4,
        chain_id=31337,
        to="0x" + "ab" * 20,
        value=0,
        data="0x" + "12" * payload,
        gas=90_000,
        max_fee=3 * 10**9,
        priority_fee=10**9,
        raw="0x02f8" + "34" * payload,
        hashes=["0x" + "11" * 32],
        status=status,
        created_at=created_at,
        sent_at=1_700_000_001.0,
        sent_block=12,
        mined_hash="0x" + "11" * 32 if status.final else None,
        block_number=13 if status.final else None,
    )


def sample_state() -> KeeperState:
    return KeeperState(
        posted={
            "BTC": Posted(Quote(60_000 * WAD, (-1 * WAD, 2 * WAD), 60_000 * WAD), 1_700_000_000),
            "ETH-C-4000": Posted(Quote(125.5, (0.5, -0.25)), 1_700_000_060),
        },
        ledger={"post:BTC:round:17": record()},
        last_block=1234,
    )


def save_all(store: StateStore, state: KeeperState) -> None:
    store.save(state)
    for rec in state.ledger.values():
        store.save_record(rec)


def plan(ts: int, n: int = 2) -> RoundPlan:
    return RoundPlan(
        ts,
        tuple(Batch(f"post:{ts}:{k}", ("BTC",), "0x" + "ab" * 8) for k in range(n)),
        {"BTC": {"mark": 2**200 + 1, "risk_array": [-(2**190), 3], "scale": None}},
    )


def files(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    return tmp_path / "keeper-state" / deployment_folder(31337, ORACLE)


# --------------------------------------------------------------------------- round trips


def test_a_new_signer_starts_from_an_empty_state(folder):
    with StateStore(folder, SIGNER) as store:
        assert store.load() == KeeperState()
        assert store.runner_store().load() == RunnerState()
    assert files(folder) == sorted([DB_NAME, SIGNER.lower() + ".lock"])


def test_round_trip_keeps_every_field_exactly(folder):
    state = sample_state()
    runner = RunnerState({"0xa", "0xb"}, plan(1_700_000_000), 1_699_999_000)
    with StateStore(folder, SIGNER) as store:
        save_all(store, state)
        store.runner_store().save(runner)
    with StateStore(folder, SIGNER) as store:
        loaded = store.load()
        assert store.runner_store().load() == runner
    assert loaded == state
    assert loaded.posted["BTC"].quote.mark == 60_000 * WAD  # big integers stay exact
    assert isinstance(loaded.ledger["post:BTC:round:17"].status, TxStatus)
    assert runner.plan is not None and runner.plan.quotes["BTC"]["mark"] == 2**200 + 1


def test_saving_one_record_writes_one_row_whatever_the_ledger_size(folder):
    with StateStore(folder, SIGNER) as store:
        state = store.load()
        for i in range(2_000):
            state.ledger[f"action:{i}"] = record(f"action:{i}", TxStatus.CONFIRMED)
        with store._write() as c:  # the ledger as a long-running keeper has it
            for rec in state.ledger.values():
                store._write_record(c, rec)
        conn = store._conn
        assert conn is not None
        before = conn.total_changes
        rec = state.ledger["action:7"]
        rec.status = TxStatus.REVERTED
        store.save_record(rec)
        assert conn.total_changes - before == 1
        state.posted["BTC"] = Posted(Quote(1.0), 1)
        state.posted["ETH"] = Posted(Quote(2.0), 1)
        store.save(state)
        before = conn.total_changes
        state.posted["ETH"] = Posted(Quote(2.5), 2)
        store.save(state)  # one changed quote and the signer's row
        assert conn.total_changes - before == 2
        before = conn.total_changes
        store.save(state)  # nothing changed: nothing written
        assert conn.total_changes == before
    with StateStore(folder, SIGNER) as store:
        again = store.load()
    assert again.ledger["action:7"].status == TxStatus.REVERTED
    assert again.posted["ETH"] == Posted(Quote(2.5), 2) and len(again.ledger) == 2_000


def test_the_account_index_is_saved_one_row_per_new_account(folder):
    with StateStore(folder, SIGNER) as store:
        runner_store = store.runner_store()
        runner = runner_store.load()
        runner.accounts |= {f"0x{i:040x}" for i in range(500)}
        runner_store.save(runner)
        conn = store._conn
        assert conn is not None
        before = conn.total_changes
        runner.accounts.add("0x" + "ee" * 20)
        runner_store.save(runner)
        assert conn.total_changes - before == 2  # the new account and the signer's row
    with StateStore(folder, SIGNER) as store:
        assert len(store.runner_store().load().accounts) == 501


KILL_WRITER = """
import sys
from offchain.keeper.policy import Posted, Quote
from offchain.keeper.state import StateStore
with StateStore(sys.argv[1], sys.argv[2]) as store:
    state = store.load()
    print("ready", flush=True)
    i = 0
    while True:
        i += 1
        state.posted["BTC"] = Posted(Quote(float(i), tuple(range(64))), i)
        state.last_block = i
        store.save(state)
"""


def test_a_kill_9_mid_write_leaves_one_consistent_state(folder):
    """The writer saves ``posted`` and ``last_block`` together in a loop and is killed at an
    arbitrary point: the database opens, and both values come from the same save."""
    worker = subprocess.Popen(
        [sys.executable, "-c", KILL_WRITER, str(folder), SIGNER],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    try:
        assert worker.stdout is not None and worker.stdout.readline() == b"ready\n"
        deadline = time.monotonic() + 30
        while True:  # wait for some saves, however slow the disk
            assert worker.poll() is None, worker.stderr.read().decode()  # type: ignore[union-attr]
            assert time.monotonic() < deadline, "the writer saved nothing"
            conn = sqlite3.connect(folder / DB_NAME)
            (done,) = conn.execute(
                "SELECT last_block FROM signer_state WHERE signer = ?", (SIGNER.lower(),)
            ).fetchone()
            conn.close()
            if (done or 0) > 50:
                break
            time.sleep(0.01)
    finally:
        worker.kill()
        worker.wait(timeout=10)
    with StateStore(folder, SIGNER) as store:
        state = store.load()
    assert state.last_block is not None and state.last_block > 50
    assert state.posted["BTC"].posted_at == state.last_block
    assert state.posted["BTC"].quote.mark == float(state.last_block)


# --------------------------------------------------------------------------- errors and locks


def test_a_corrupted_database_is_an_error_naming_the_file_and_is_left_alone(folder):
    folder.mkdir(parents=True)
    path = folder / DB_NAME
    path.write_bytes(b"this is not a database" * 100)
    before = path.read_bytes()
    with pytest.raises(StateCorruptedError, match="not a readable keeper database") as err:
        StateStore(folder, SIGNER)
    assert str(path) in str(err.value)
    assert path.read_bytes() == before  # never reset silently
    with pytest.raises(StateCorruptedError, match="not a readable keeper database"):
        StateStore(folder, SIGNER, read_only=True)


def test_a_damaged_page_is_an_error_naming_the_file(folder):
    with StateStore(folder, SIGNER) as store:
        state = store.load()
        for i in range(300):
            state.ledger[f"a:{i}"] = record(f"a:{i}", TxStatus.CONFIRMED, payload=500)
            store.save_record(state.ledger[f"a:{i}"])
    path = folder / DB_NAME
    data = bytearray(path.read_bytes())
    assert len(data) > 200_000
    data[80_000:88_192] = bytes(range(256)) * 32  # 8 KB amid the ledger
    path.write_bytes(bytes(data))
    with pytest.raises(StateCorruptedError) as err:
        with StateStore(folder, SIGNER) as store:
            store.load()
    assert str(path) in str(err.value)


def test_an_unknown_schema_version_is_an_error_naming_the_file(folder):
    with StateStore(folder, SIGNER) as store:
        save_all(store, sample_state())
    path = folder / DB_NAME
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 2")
    conn.close()
    before = path.read_bytes()
    with pytest.raises(StateCorruptedError, match="schema version 2, this keeper reads version 1"):
        StateStore(folder, SIGNER)
    assert path.read_bytes() == before
    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 0")  # tables of unknown origin, no version
    conn.close()
    with pytest.raises(StateCorruptedError, match=f"{path}: schema version 0"):
        StateStore(folder, SIGNER)


@pytest.mark.parametrize(
    ("table", "column", "value", "message"),
    [
        ("ledger", "record", "{not json", "Expecting property name"),
        ("ledger", "record", '{"key": "x"}', "bad ledger entry"),
        ("posted", "quote", '{"mark": "x"}', "posted entry 'BTC'"),
        ("signer_state", "plan", '{"ts": 1}', "bad round plan"),
    ],
)
def test_a_row_that_does_not_parse_is_an_error_naming_the_file(
    folder, table, column, value, message
):
    with StateStore(folder, SIGNER) as store:
        save_all(store, sample_state())
    conn = sqlite3.connect(folder / DB_NAME)
    conn.execute(f"UPDATE {table} SET {column} = ?", (value,))
    conn.commit()
    conn.close()
    with pytest.raises(StateCorruptedError, match=message) as err:
        with StateStore(folder, SIGNER) as store:
            store.load()
            store.runner_store().load()
    assert str(folder / DB_NAME) in str(err.value)


LOCK_HOLDER = """
import sys, time
from offchain.keeper.state import StateStore
with StateStore(sys.argv[1], sys.argv[2]):
    print("open", flush=True)
    time.sleep(60)
"""


def test_a_second_process_with_the_same_key_is_locked_out(folder):
    holder = subprocess.Popen(
        [sys.executable, "-c", LOCK_HOLDER, str(folder), SIGNER],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(StateLockedError, match="in use by another keeper process"):
            StateStore(folder, SIGNER.lower())  # the address in any case
        with StateStore(folder, OTHER) as other:  # another key shares the database
            other.save(KeeperState(last_block=9))
    finally:
        holder.kill()
        holder.wait(timeout=10)
    with StateStore(folder, SIGNER) as again:  # the lock dies with its process
        assert again.load().last_block is None
    with StateStore(folder, OTHER) as other:
        assert other.load().last_block == 9


def test_one_store_per_signer_in_a_process_too(folder):
    first = StateStore(folder, SIGNER)
    try:
        with pytest.raises(StateLockedError):
            StateStore(folder, SIGNER)
    finally:
        first.close()
    with StateStore(folder, SIGNER) as again:  # released on close
        again.save(KeeperState())


def test_a_record_of_another_signer_is_refused(folder):
    with StateStore(folder, SIGNER) as store, pytest.raises(ValueError, match="not 0x7099"):
        store.save_record(record(sender=OTHER))


def test_two_networks_with_one_key_keep_two_states(tmp_path):
    """The same key and the same oracle address on chain 1 and chain 11155111 (a deployment
    replayed with the same deployer nonce gets the same address): two folders, two states."""
    mainnet = tmp_path / deployment_folder(1, ORACLE)
    sepolia = tmp_path / deployment_folder(11155111, ORACLE)
    with StateStore(mainnet, SIGNER) as a, StateStore(sepolia, SIGNER) as b:
        sa, sb = a.load(), b.load()
        sa.posted["BTC"] = Posted(Quote(60_000.0), 1_700_000_000)
        sa.last_block = 19_000_000
        a.save(sa)
        a.runner_store().save(RunnerState({"0xa"}, None, 1_700_000_000))
        assert sb == KeeperState() and b.runner_store().load() == RunnerState()
    with StateStore(sepolia, SIGNER) as b:
        assert b.load() == KeeperState() and b.runner_store().load().last_ts == 0
    with StateStore(mainnet, SIGNER) as a:
        assert a.load().last_block == 19_000_000
        assert a.runner_store().load().last_ts == 1_700_000_000


# --------------------------------------------------------------------------- dry runs


def test_a_read_only_store_creates_nothing_and_refuses_writes(tmp_path, folder):
    with StateStore(folder, SIGNER, read_only=True) as ro:
        assert ro.load() == KeeperState()
        with pytest.raises(RuntimeError, match="read-only"):
            ro.save(KeeperState(last_block=1))
    assert list(tmp_path.iterdir()) == []
    with StateStore(folder, SIGNER) as store:
        save_all(store, sample_state())
    before = files(folder)
    with StateStore(folder, SIGNER) as writer, StateStore(folder, SIGNER, read_only=True) as ro:
        assert ro.load() == sample_state()  # no lock taken: the writer is up
        writer.save(KeeperState(last_block=1))
    with StateStore(folder, SIGNER, read_only=True) as ro:
        assert ro.load().last_block == 1
        with pytest.raises(RuntimeError, match="read-only"):
            ro.save_record(record())
    assert files(folder) == before


# --------------------------------------------------------------------------- pruning


def test_pruning_keeps_what_could_be_sent_again(folder):
    with StateStore(folder, SIGNER) as store:
        state = store.load()
        keys = {
            "post:100:0": TxStatus.CONFIRMED,  # round completed: forgotten
            "post:200:0": TxStatus.CONFIRMED,  # round 200 in flight (the plan): kept
            "post:300:0": TxStatus.CONFIRMED,  # above last_ts, no plan: kept
            "post:90:0": TxStatus.PENDING,  # not final: kept
            "liq:100:0xa": TxStatus.CONFIRMED,  # the Liquidator refuses a healthy account
            "register:0xa": TxStatus.CONFIRMED,  # done key
            "settle_expired:7": TxStatus.REVERTED,  # done key
            "settle:7:0xa": TxStatus.CONFLICT,  # done key
            "register:0xb": TxStatus.FAILED,  # refused by the node: sent again anyway
            "liq:150:0xb": TxStatus.CONFIRMED,  # too recent
        }
        for key, status in keys.items():
            state.ledger[key] = record(key, status, created_at=1_000.0)
            store.save_record(state.ledger[key])
        state.ledger["liq:150:0xb"].created_at = 5_000.0
        store.save_record(state.ledger["liq:150:0xb"])
        store.runner_store().save(RunnerState(set(), plan(200, 1), 150))
        assert store.prune(state, before=2_000.0) == 6
        kept = {"post:200:0", "post:300:0", "post:90:0", "liq:150:0xb"}
        assert set(state.ledger) == kept
        assert store.counts() == {"ledger": 4, "done_keys": 3, "posted": 0, "accounts": 0}
        for key in ("register:0xa", "settle_expired:7", "settle:7:0xa"):
            done = store.done_record(key)
            assert done is not None and done.status == keys[key] and done.nonce == 4
        assert store.done_record("liq:100:0xa") is None
        assert store.done_record("register:0xb") is None
    with StateStore(folder, SIGNER) as store:
        assert set(store.load().ledger) == kept  # the database agrees with memory


def test_the_ledger_stays_bounded_over_10k_rounds(folder):
    """10,000 hourly rounds as the runner writes them (plan ahead, two post batches of ~4 KB,
    a liquidation every 5th round, a new account registered every 100th), pruned each round with
    a one-day horizon: the ledger holds one day of records, the file stops growing, and only
    the done keys of registrations (one per account) accumulate."""
    hour, horizon, rounds = 3_600, 86_400, 10_000
    # synchronous=NORMAL: what is tested is the bound, not durability on power loss
    with StateStore(folder, SIGNER, synchronous="NORMAL") as store:
        state = store.load()
        runner_store = store.runner_store()
        runner = runner_store.load()
        sizes = {}
        for r in range(rounds):
            now = 1_700_000_000 + r * hour
            runner.plan = plan(now)
            runner_store.save(runner)
            keys = [b.key for b in runner.plan.batches]
            keys += [f"liq:{now}:0x{r % 7:040x}"] if r % 5 == 0 else []
            keys += [f"register:0x{r:040x}"] if r % 100 == 0 else []
            for key in keys:
                rec = record(key, TxStatus.CONFIRMED, created_at=now, payload=2_000)
                state.ledger[key] = rec
                store.save_record(rec)
            runner.plan, runner.last_ts = None, now
            runner_store.save(runner)
            store.prune(state, now - horizon)
            if r + 1 in (2_000, rounds):
                sizes[r + 1] = (folder / DB_NAME).stat().st_size
        counts = store.counts()
    per_round = 2 + 1 / 5
    assert len(state.ledger) == counts["ledger"] <= (horizon / hour + 1) * per_round + 1
    assert counts["done_keys"] == rounds // 100  # one per registered account
    assert sizes[rounds] <= sizes[2_000] * 1.1  # freed pages are reused
    assert sizes[rounds] < 2_000_000  # vs ~100 MB for the 22,000 records written


# --------------------------------------------------------------------------- migration


def write_legacy(folder: Path, name: str = SIGNER) -> tuple[KeeperState, RunnerState]:
    """The two JSON files an earlier keeper kept for ``name`` in ``folder``."""
    state = sample_state()
    state.ledger = {
        "post:1699990000:0": record("post:1699990000:0", TxStatus.CONFIRMED),
        "liq:1699990000:0xa": record("liq:1699990000:0xa", TxStatus.SIGNED),
    }
    runner = RunnerState({"0xa", "0xb"}, plan(1_700_000_000), 1_699_990_000)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{name}.json").write_text(json.dumps(state.to_json()))
    (folder / f"{name}.runner.json").write_text(json.dumps(runner.to_json()))
    return state, runner


def test_json_state_is_migrated_once_and_the_files_renamed(folder, caplog):
    state, runner = write_legacy(folder)
    (folder / f"{SIGNER}.json.lock").touch()  # an earlier keeper's lock file, released
    with caplog.at_level("INFO", logger="offchain.keeper"), StateStore(folder, SIGNER) as store:
        assert store.load() == state
        assert store.runner_store().load() == runner
    assert any("event=state_migrated" in r.getMessage() for r in caplog.records)
    assert files(folder) == sorted(
        [
            DB_NAME,
            f"{SIGNER}.json.migrated",
            f"{SIGNER}.runner.json.migrated",
            SIGNER.lower() + ".lock",
        ]
    )
    # the renamed files are never read again
    (folder / f"{SIGNER}.json.migrated").write_text("{garbage")
    with StateStore(folder, SIGNER) as store:
        assert store.load() == state


def test_a_migration_interrupted_before_the_rename_is_not_imported_twice(folder):
    state, runner = write_legacy(folder)
    with StateStore(folder, SIGNER) as store:
        rec = store.load().ledger["liq:1699990000:0xa"]
        rec.status = TxStatus.PENDING  # the keeper went on after the migration
        store.save_record(rec)
    for name in (f"{SIGNER}.json", f"{SIGNER}.runner.json"):  # as if the rename was lost
        os.replace(folder / f"{name}.migrated", folder / name)
    with StateStore(folder, SIGNER) as store:
        assert store.load().ledger["liq:1699990000:0xa"].status == TxStatus.PENDING
    assert not (folder / f"{SIGNER}.json").exists()


def test_json_state_next_to_an_unrelated_database_row_is_an_error(folder):
    with StateStore(folder, SIGNER) as store:
        store.save(KeeperState(last_block=5))
    write_legacy(folder)
    with pytest.raises(StateCorruptedError, match="does not choose between them"):
        StateStore(folder, SIGNER)
    assert (folder / f"{SIGNER}.json").exists()


def test_a_bad_json_file_is_not_migrated_and_names_the_file(folder):
    write_legacy(folder)
    (folder / f"{SIGNER}.runner.json").write_text('{"version": 1, "accounts": "0xa"}')
    with pytest.raises(StateCorruptedError, match="runner.json: cannot migrate"):
        StateStore(folder, SIGNER)
    conn = sqlite3.connect(folder / DB_NAME)
    assert conn.execute("SELECT COUNT(*) FROM ledger").fetchone() == (0,)  # nothing half-done
    assert (folder / f"{SIGNER}.json").exists()


def test_an_earlier_keeper_still_running_blocks_the_migration(folder):
    write_legacy(folder)
    holder = subprocess.Popen(
        [
            sys.executable,
            "-c",
            "import fcntl, os, sys, time\n"
            "fd = os.open(sys.argv[1], os.O_RDWR | os.O_CREAT)\n"
            "fcntl.flock(fd, fcntl.LOCK_EX)\nprint('open', flush=True)\ntime.sleep(60)",
            str(folder / f"{SIGNER}.json.lock"),
        ],
        stdout=subprocess.PIPE,
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline() == b"open\n"
        with pytest.raises(StateLockedError, match="earlier version"):
            StateStore(folder, SIGNER)
    finally:
        holder.kill()
        holder.wait(timeout=10)
    assert (folder / f"{SIGNER}.json").exists()


def test_a_dry_run_reads_json_state_without_migrating_it(folder):
    state, runner = write_legacy(folder)
    before = files(folder)
    with StateStore(folder, SIGNER, read_only=True) as ro:
        assert ro.load() == state and ro.load_runner() == runner
    assert files(folder) == before


# --------------------------------------------------------------------------- behaviour on top


def test_final_statuses():
    assert {s for s in TxStatus if s.final} == {
        TxStatus.CONFIRMED,
        TxStatus.REVERTED,
        TxStatus.FAILED,
        TxStatus.CONFLICT,
    }


def test_restart_resumes_thresholds_and_heartbeats_from_the_database(folder):
    # Round 1 posts BTC and ETH; the keeper dies; after restart only what moved or aged is due.
    now = 1_700_000_000
    first = {"BTC": Quote(60_000.0), "ETH": Quote(3_000.0)}
    with StateStore(folder, SIGNER) as store:
        state = store.load()
        updates = select_updates(state.posted, first, now, 0.005, 3_600, 60)
        assert {u.reason for u in updates} == {Reason.NEW}
        for u in updates:
            state.posted[u.name] = Posted(first[u.name], now)
        store.save(state)
    with StateStore(folder, SIGNER) as store:
        state = store.load()
    later = {"BTC": Quote(60_100.0), "ETH": Quote(3_030.0)}  # +0.17% and +1%
    assert select_updates(state.posted, later, now + 600, 0.005, 3_600, 60) == [
        Update("ETH", Reason.MOVED)
    ]
    assert select_updates(state.posted, later, now + 3_540, 0.005, 3_600, 60) == [
        Update("BTC", Reason.HEARTBEAT),
        Update("ETH", Reason.MOVED),
    ]


def test_log_lines_are_key_value():
    assert kv("tx_sent", key="post:17", nonce=4, error="a b") == (
        'event=tx_sent key=post:17 nonce=4 error="a b"'
    )
