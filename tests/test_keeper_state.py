"""The keeper's state file: round trip, atomic replacement, corruption is an error, one owner."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from offchain.keeper.logfmt import kv
from offchain.keeper.policy import Posted, Quote, Reason, Update, select_updates
from offchain.keeper.state import (
    KeeperState,
    StateCorruptedError,
    StateLockedError,
    StateStore,
    TxRecord,
    TxStatus,
)

WAD = 10**18


def record(key: str = "post:BTC:round:17", status: TxStatus = TxStatus.PENDING) -> TxRecord:
    return TxRecord(
        key=key,
        sender="0x70997970C51812dc3A010C7d01b50e0d17dc79C8",
        nonce=4,
        chain_id=31337,
        to="0x" + "ab" * 20,
        value=0,
        data="0x1234",
        gas=90_000,
        max_fee=3 * 10**9,
        priority_fee=10**9,
        raw="0x02f8",
        hashes=["0x" + "11" * 32],
        status=status,
        created_at=1_700_000_000.5,
        sent_at=1_700_000_001.0,
        sent_block=12,
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


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return tmp_path / "keeper-state" / "keeper.json"


def test_missing_file_is_a_fresh_state(path):
    with StateStore(path) as store:
        assert store.load() == KeeperState()


def test_round_trip_keeps_every_field_exactly(path):
    state = sample_state()
    with StateStore(path) as store:
        store.save(state)
    with StateStore(path) as store:
        loaded = store.load()
    assert loaded == state
    assert loaded.posted["BTC"].quote.mark == 60_000 * WAD  # big integers stay exact
    assert isinstance(loaded.ledger["post:BTC:round:17"].status, TxStatus)


def test_save_replaces_atomically_and_leaves_no_temp_files(path):
    with StateStore(path) as store:
        store.save(sample_state())
        state = store.load()
        state.last_block = 2000
        store.save(state)
    assert json.loads(path.read_text())["last_block"] == 2000
    assert sorted(p.name for p in path.parent.iterdir()) == ["keeper.json", "keeper.json.lock"]


def test_a_failed_save_keeps_the_previous_file(path, monkeypatch):
    with StateStore(path) as store:
        store.save(sample_state())
        before = path.read_bytes()

        def crash(*_args: object) -> None:
            raise OSError("disk full")

        monkeypatch.setattr(os, "replace", crash)
        state = sample_state()
        state.last_block = 99
        with pytest.raises(OSError, match="disk full"):
            store.save(state)
    assert path.read_bytes() == before


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"version": 1, "posted": {', "not valid JSON"),
        ("[]", "top level is not an object"),
        ('{"version": 99, "posted": {}, "ledger": {}}', "schema version 99"),
        ('{"version": 1, "posted": [], "ledger": {}}', "must be objects"),
        ('{"version": 1, "posted": {"BTC": {"mark": "x"}}, "ledger": {}}', "posted entry 'BTC'"),
        ('{"version": 1, "posted": {}, "ledger": {}, "last_block": -1}', "last_block"),
    ],
)
def test_corrupted_files_raise_a_clear_error_and_are_left_alone(path, content, message):
    path.parent.mkdir(parents=True)
    path.write_text(content)
    with StateStore(path) as store, pytest.raises(StateCorruptedError, match=message) as err:
        store.load()
    assert str(path) in str(err.value)
    assert path.read_text() == content  # never reset silently


def test_a_bad_ledger_entry_is_reported(path):
    obj = sample_state().to_json()
    obj["ledger"]["post:BTC:round:17"]["nonce"] = -1
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(obj))
    with StateStore(path) as store, pytest.raises(StateCorruptedError, match="nonce"):
        store.load()
    obj["ledger"]["post:BTC:round:17"]["nonce"] = 4
    obj["ledger"]["post:BTC:round:17"]["status"] = "lost"
    path.write_text(json.dumps(obj))
    with StateStore(path) as store, pytest.raises(StateCorruptedError, match="bad ledger entry"):
        store.load()


def test_one_store_per_file(path):
    first = StateStore(path)
    try:
        with pytest.raises(StateLockedError, match="in use"):
            StateStore(path)
    finally:
        first.close()
    with StateStore(path) as again:  # released on close
        again.save(KeeperState())


def test_final_statuses():
    assert {s for s in TxStatus if s.final} == {
        TxStatus.CONFIRMED,
        TxStatus.REVERTED,
        TxStatus.FAILED,
        TxStatus.CONFLICT,
    }


def test_restart_resumes_thresholds_and_heartbeats_from_the_file(path):
    # Round 1 posts BTC and ETH; the keeper dies; after restart only what moved or aged is due.
    now = 1_700_000_000
    first = {"BTC": Quote(60_000.0), "ETH": Quote(3_000.0)}
    with StateStore(path) as store:
        state = store.load()
        updates = select_updates(state.posted, first, now, 0.005, 3_600, 60)
        assert {u.reason for u in updates} == {Reason.NEW}
        for u in updates:
            state.posted[u.name] = Posted(first[u.name], now)
        store.save(state)
    with StateStore(path) as store:
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
