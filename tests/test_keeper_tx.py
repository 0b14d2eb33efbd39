"""TxManager against a real anvil node, each fault injected for real.

Every test checks the effect on chain, not only the manager's view: the sender's nonce (how many
transactions were mined) and the recipient's balance (how many transfers happened).
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from anvil_node import DEV_KEYS, AnvilNode, http_web3
from eth_account import Account
from faulty_rpc import FaultyRpcProxy
from web3 import Web3

from offchain.keeper.state import DB_NAME, StateLockedError, StateStore, TxStatus
from offchain.keeper.tx import (
    RpcUnavailableError,
    TxConfig,
    TxManager,
    TxRejectedError,
    already_known,
    bumped,
)

REPO = Path(__file__).resolve().parents[1]
RECIPIENT = Web3.to_checksum_address("0x" + "ab" * 20)
FAST = TxConfig(
    confirmations=2,
    stuck_after_seconds=3_600,
    stuck_after_blocks=1_000,
    rpc_backoff=0.01,
    rpc_backoff_max=0.05,
    rpc_deadline=10,
    poll_interval=0.01,
)


class FakeClock:
    """Wall clock for the manager that the test moves by hand (no timing in assertions)."""

    def __init__(self) -> None:
        self.now = 1_700_000_000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def node() -> Iterator[AnvilNode]:
    n = AnvilNode()
    yield n
    n.stop()


@pytest.fixture
def keeper_key() -> str:
    return DEV_KEYS[1]


@pytest.fixture
def keeper(keeper_key: str) -> str:
    return Account.from_key(keeper_key).address


class Opened:
    """A manager with its store; ``close()`` releases the signer's state."""

    def __init__(
        self,
        url: str,
        key: str,
        folder: Path,
        config: TxConfig = FAST,
        clock: FakeClock | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.store = StateStore(folder, Account.from_key(key).address)
        self.state = self.store.load()
        self.manager = TxManager(
            http_web3(url, timeout=timeout),
            key,
            self.store,
            self.state,
            config,
            clock=clock or FakeClock(),
        )

    def close(self) -> None:
        self.store.close()


@pytest.fixture
def opened() -> Iterator[list[Opened]]:
    """Registry of managers opened by a test, closed at teardown."""
    made: list[Opened] = []
    yield made
    for o in made:
        o.close()


def open_manager(registry: list[Opened], *args: object, **kwargs: object) -> TxManager:
    o = Opened(*args, **kwargs)  # type: ignore[arg-type]
    registry.append(o)
    return o.manager


def drive(manager: TxManager, node: AnvilNode, keys: list[str], rounds: int = 40) -> None:
    """Alternate ``step`` and one mined block until every key is final (bounded)."""
    for _ in range(rounds):
        manager.step()
        if all(manager.record(k).status.final for k in keys):  # type: ignore[union-attr]
            return
        node.mine()
    pending = {k: manager.record(k).status for k in keys}  # type: ignore[union-attr]
    raise AssertionError(f"not final after {rounds} rounds: {pending}")


def test_send_confirms_once_and_a_known_key_is_not_sent_again(node, opened, tmp_path, keeper):
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path)
    before = node.balance(RECIPIENT)
    first = m.send("post:BTC:round:1", RECIPIENT, value=10**15)
    drive(m, node, ["post:BTC:round:1"])
    again = m.send("post:BTC:round:1", RECIPIENT, value=10**15)
    drive(m, node, ["post:BTC:round:1"])

    rec = m.record("post:BTC:round:1")
    assert rec.status == TxStatus.CONFIRMED
    assert again.hashes == first.hashes == [rec.mined_hash]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) - before == 10**15


def test_rpc_errors_every_fourth_request_are_retried(node, opened, tmp_path, keeper):
    # (web3's validation middleware wraps eth_estimateGas in two eth_chainId calls, so failing
    # every third request would fail that call on every attempt.)
    proxy = FaultyRpcProxy(node.url, fail_every=4, mode="error").start()
    try:
        m = open_manager(opened, proxy.url, DEV_KEYS[1], tmp_path)
        keys = [f"post:round:{i}" for i in range(5)]
        for i, k in enumerate(keys):
            m.send(k, RECIPIENT, value=1 + i)
        drive(m, node, keys)
    finally:
        proxy.stop()
    assert proxy.faults >= 5  # the faults really happened
    assert all(m.record(k).status == TxStatus.CONFIRMED for k in keys)
    assert node.nonce(keeper) == 5
    assert node.balance(RECIPIENT) == sum(1 + i for i in range(5))


def test_rpc_timeouts_are_retried(node, opened, tmp_path, keeper):
    # Every 5th request is held 1 s; the client gives up after 0.3 s and retries.
    proxy = FaultyRpcProxy(node.url, fail_every=5, mode="delay", delay=1.0).start()
    try:
        m = open_manager(opened, proxy.url, DEV_KEYS[1], tmp_path, timeout=0.3)
        keys = [f"post:round:{i}" for i in range(3)]
        for k in keys:
            m.send(k, RECIPIENT, value=7)
        drive(m, node, keys)
    finally:
        proxy.stop()
    assert proxy.faults >= 3
    assert node.nonce(keeper) == 3
    assert node.balance(RECIPIENT) == 21


def test_lost_answer_to_a_send_is_not_sent_twice(node, opened, tmp_path, keeper):
    # The node mines the transaction but the client sees a 502: the retry meets "nonce too low",
    # and the manager finds its own receipt instead of re-signing with a new nonce.
    proxy = FaultyRpcProxy(
        node.url, fail_every=1, mode="lost", only_methods=frozenset({"eth_sendRawTransaction"})
    )
    proxy.max_faults = 1
    proxy.start()
    try:
        m = open_manager(opened, proxy.url, DEV_KEYS[1], tmp_path)
        rec = m.send("post:round:1", RECIPIENT, value=5)
        drive(m, node, ["post:round:1"])
    finally:
        proxy.stop()
    assert proxy.faults == 1
    assert proxy.methods.count("eth_sendRawTransaction") == 2
    assert m.record("post:round:1").mined_hash == rec.hashes[0]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 5


@pytest.mark.parametrize(
    ("message", "known"),
    [
        ("{'code': -32000, 'message': 'already known'}", True),
        ("known transaction: 0xabc", True),
        # anvil, when a retried send meets the first one still in its pool (seen under load)
        ("{'code': -32003, 'message': 'transaction already imported'}", True),
        ("{'code': -32003, 'message': 'insufficient funds for gas * price + value'}", False),
        ("nonce too low", False),
    ],
)
def test_a_resend_the_node_already_holds_counts_as_sent(message, known):
    assert already_known(message) is known


def test_rpc_down_is_bounded_and_the_signed_payload_is_sent_later(node, opened, tmp_path, keeper):
    proxy = FaultyRpcProxy(
        node.url, fail_every=1, only_methods=frozenset({"eth_sendRawTransaction"})
    ).start()
    try:
        m = open_manager(opened, proxy.url, DEV_KEYS[1], tmp_path)
        with pytest.raises(RpcUnavailableError, match="eth_sendRawTransaction"):
            m.send("post:round:1", RECIPIENT, value=3)
        assert proxy.faults == FAST.rpc_attempts  # bounded, not forever
        rec = m.record("post:round:1")
        assert rec.status == TxStatus.SIGNED  # persisted before the broadcast
        assert node.nonce(keeper) == 0
        proxy.fail_every = 0  # the endpoint heals
        drive(m, node, ["post:round:1"])
    finally:
        proxy.stop()
    assert m.record("post:round:1").mined_hash == rec.hashes[0]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 3


def test_dropped_transaction_is_resent(node, opened, tmp_path, keeper):
    node.automine(False)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path)
    rec = m.send("post:round:1", RECIPIENT, value=9)
    node.rpc("anvil_dropTransaction", rec.hashes[0])
    assert node.rpc("eth_getTransactionByHash", rec.hashes[0]) is None
    m.step()  # notices the drop and re-sends the stored payload
    assert node.rpc("eth_getTransactionByHash", rec.hashes[0]) is not None
    drive(m, node, ["post:round:1"])
    final = m.record("post:round:1")
    assert final.status == TxStatus.CONFIRMED
    assert final.hashes == rec.hashes and final.mined_hash == rec.hashes[0]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 9


def test_stuck_transaction_is_bumped_on_the_same_nonce(node, opened, tmp_path, keeper):
    node.automine(False)
    clock = FakeClock()
    config = replace(FAST, stuck_after_seconds=30)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config, clock)
    rec = m.send("post:round:1", RECIPIENT, value=11)
    m.step()
    assert m.record("post:round:1").bumps == 0  # not stuck yet
    clock.now += 30
    m.step()
    bumped_rec = m.record("post:round:1")
    assert bumped_rec.bumps == 1 and len(bumped_rec.hashes) == 2
    assert bumped_rec.nonce == rec.nonce
    assert bumped_rec.max_fee >= bumped(rec.max_fee, 1_250)
    assert bumped_rec.priority_fee >= bumped(rec.priority_fee, 1_250)
    # the node replaced the original in its pool
    assert node.rpc("eth_getTransactionByHash", rec.hashes[0]) is None
    assert node.rpc("eth_getTransactionByHash", bumped_rec.hashes[1]) is not None
    node.mine()
    drive(m, node, ["post:round:1"])
    final = m.record("post:round:1")
    assert final.mined_hash == bumped_rec.hashes[1]
    receipt = node.w3.eth.get_transaction_receipt(final.mined_hash)
    assert receipt["effectiveGasPrice"] > 0
    assert node.rpc("eth_getTransactionReceipt", rec.hashes[0]) is None
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 11


def test_transaction_priced_out_by_a_base_fee_spike_is_repriced(node, opened, tmp_path, keeper):
    # A base-fee spike leaves the transaction below the base fee: blocks pass without it and
    # anvil evicts it from its pool; re-sending it as is is refused ("max fee per gas less than
    # block base fee"), so the manager re-signs it on the same nonce above the new base fee.
    node.automine(False)
    config = replace(FAST, stuck_after_blocks=2)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config)
    rec = m.send("post:round:1", RECIPIENT, value=13)
    node.rpc("anvil_setNextBlockBaseFeePerGas", hex(20 * 10**9))
    node.mine(2)
    assert node.nonce(keeper) == 0  # passed by
    m.step()
    bumped_rec = m.record("post:round:1")
    assert bumped_rec.bumps == 1 and bumped_rec.max_fee > 2 * rec.max_fee
    drive(m, node, ["post:round:1"])
    assert m.record("post:round:1").mined_hash == bumped_rec.hashes[-1]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 13


def test_stuck_after_blocks_and_a_refused_replacement_keeps_the_original(
    node, opened, tmp_path, keeper, caplog
):
    # The block gas limit drops below the transaction's gas after it entered the pool: anvil keeps
    # it but mines blocks without it. After `stuck_after_blocks` the manager tries a replacement,
    # which the node refuses (its gas exceeds the block limit); the record keeps the original,
    # which is mined once the limit is back.
    node.automine(False)
    config = replace(FAST, stuck_after_blocks=2)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config)
    rec = m.send("post:round:1", RECIPIENT, value=23, gas=60_000)
    node.rpc("anvil_setBlockGasLimit", hex(50_000))
    node.mine(2)
    assert node.nonce(keeper) == 0
    with caplog.at_level("WARNING", logger="offchain.keeper.tx"):
        m.step()
    assert any("event=tx_bump_refused" in r.message and "gas" in r.message for r in caplog.records)
    kept = m.record("post:round:1")
    assert kept.hashes == rec.hashes and kept.bumps == 0 and kept.max_fee == rec.max_fee
    node.rpc("anvil_setBlockGasLimit", hex(30_000_000))
    drive(m, node, ["post:round:1"])
    assert m.record("post:round:1").mined_hash == rec.hashes[0]
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 23


def test_fee_cap_stops_bumping(node, opened, tmp_path):
    node.automine(False)
    clock = FakeClock()
    base = node.w3.eth.get_block("latest")["baseFeePerGas"]
    cap = 2 * base + FAST.priority_fee  # exactly the initial max fee
    config = replace(FAST, stuck_after_seconds=30, max_fee_cap=cap)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config, clock)
    rec = m.send("post:round:1", RECIPIENT, value=1)
    assert rec.max_fee == cap
    clock.now += 30
    m.step()
    after = m.record("post:round:1")
    assert after.bumps == 0 and after.hashes == rec.hashes and after.max_fee <= cap


def test_reorg_after_receipt_resends_and_reconfirms(node, opened, tmp_path, keeper):
    config = replace(FAST, confirmations=3)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config)
    rec = m.send("post:round:1", RECIPIENT, value=17)  # automine: mined at once
    m.step()
    mined = m.record("post:round:1")
    assert mined.status == TxStatus.MINED
    node.rpc("anvil_reorg", 1, [])  # the block with the transaction is replaced by an empty one
    assert node.rpc("eth_getTransactionReceipt", rec.hashes[0]) is None
    assert node.balance(RECIPIENT) == 0
    m.step()  # receipt gone: back to pending, the node lost it too: re-sent (and automined)
    drive(m, node, ["post:round:1"])
    final = m.record("post:round:1")
    assert final.status == TxStatus.CONFIRMED
    assert final.mined_hash == rec.hashes[0]
    assert final.block_hash != mined.block_hash
    assert node.w3.eth.get_block(final.block_number)["hash"].to_0x_hex() == final.block_hash
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 17


def test_reorg_that_reincludes_the_transaction_is_reconfirmed_without_resend(
    node, opened, tmp_path, keeper
):
    config = replace(FAST, confirmations=3)
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, config)
    rec = m.send("post:round:1", RECIPIENT, value=19)
    m.step()
    mined = m.record("post:round:1")
    node.rpc("anvil_reorg", 1, [[rec.raw, 0]])  # same transaction, in a different block
    sends_before = rec.hashes
    m.step()
    moved = m.record("post:round:1")
    assert moved.status == TxStatus.MINED and moved.block_hash != mined.block_hash
    drive(m, node, ["post:round:1"])
    final = m.record("post:round:1")
    assert final.status == TxStatus.CONFIRMED and final.hashes == sends_before
    assert node.nonce(keeper) == 1
    assert node.balance(RECIPIENT) == 19


def test_rejected_send_is_failed_and_its_nonce_reused(node, opened, tmp_path, keeper):
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path)
    too_much = node.balance(keeper) * 2
    with pytest.raises(TxRejectedError, match="(?i)insufficient funds"):
        m.send("post:round:1", RECIPIENT, value=too_much, gas=21_000)
    assert m.record("post:round:1").status == TxStatus.FAILED
    rec = m.send("post:round:2", RECIPIENT, value=1)
    assert rec.nonce == 0  # no gap left behind
    drive(m, node, ["post:round:2"])
    assert node.nonce(keeper) == 1


def test_nonce_used_elsewhere_is_resynced(node, opened, tmp_path, keeper, keeper_key):
    m = open_manager(opened, node.url, keeper_key, tmp_path)
    m.send("post:round:1", RECIPIENT, value=1)  # the manager now tracks nonce 1 locally
    drive(m, node, ["post:round:1"])
    # someone else sends from the same key behind the manager's back (nonce 1)
    outside = Account.from_key(keeper_key).sign_transaction(
        {
            "type": 2,
            "chainId": node.chain_id,
            "nonce": 1,
            "to": RECIPIENT,
            "value": 100,
            "gas": 21_000,
            "maxFeePerGas": 10 * 10**9,
            "maxPriorityFeePerGas": 10**9,
        }
    )
    node.w3.eth.send_raw_transaction(outside.raw_transaction)
    rec = m.send("post:round:2", RECIPIENT, value=2)
    assert rec.nonce == 2
    drive(m, node, ["post:round:2"])
    assert node.nonce(keeper) == 3
    assert node.balance(RECIPIENT) == 103


def ledger_rows(folder: Path) -> int:
    """Records in the state database, read as another process would while the keeper runs."""
    db = folder / DB_NAME
    if not db.exists():
        return 0
    conn = sqlite3.connect(db, timeout=10)
    try:
        return conn.execute("SELECT COUNT(*) FROM ledger").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is being created
        return 0
    finally:
        conn.close()


def test_killed_mid_run_and_restarted_sends_each_action_once(node, tmp_path, keeper, keeper_key):
    n = 30
    worker = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "tx_worker.py"), node.url, keeper_key, str(tmp_path)]
        + [RECIPIENT, str(n), "0.05"],
        env={**os.environ, "PYTHONPATH": str(REPO)},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 60
        recorded = 0
        while recorded < 4:
            assert worker.poll() is None, worker.stderr.read().decode()
            assert time.monotonic() < deadline, "worker made no progress"
            recorded = ledger_rows(tmp_path)
            time.sleep(0.01)
    finally:
        worker.kill()  # SIGKILL: no cleanup, no final save
        worker.wait(timeout=10)
    done_before = ledger_rows(tmp_path)
    assert 4 <= done_before < n  # killed mid-run

    with StateStore(tmp_path, keeper) as store:
        state = store.load()
        m = TxManager(http_web3(node.url), keeper_key, store, state, FAST)
        keys = [f"action:{i}" for i in range(n)]
        for i, k in enumerate(keys):  # the restarted keeper replays the whole plan
            m.send(k, RECIPIENT, value=1_000 + i, gas=21_000)
        drive(m, node, keys)
        mined = {m.record(k).mined_hash for k in keys}
    assert len(mined) == n
    assert node.nonce(keeper) == n
    assert node.balance(RECIPIENT) == sum(1_000 + i for i in range(n))


def test_prune_forgets_old_final_records_and_never_sends_their_keys_again(
    node, opened, tmp_path, keeper
):
    clock = FakeClock()
    m = open_manager(opened, node.url, DEV_KEYS[1], tmp_path, FAST, clock)
    m.send("register:0xa", RECIPIENT, value=1)  # a key without a round: kept as a done key
    m.send("liq:1700000000:0xa", RECIPIENT, value=1)  # decided again from the chain
    drive(m, node, ["register:0xa", "liq:1700000000:0xa"])
    clock.now += 3_600
    node.automine(False)
    m.send("register:0xb", RECIPIENT, value=1)  # stays pending
    assert m.prune(older_than=600) == 2
    assert m.record("register:0xa") is None and m.record("liq:1700000000:0xa") is None
    assert m.record("register:0xb") is not None
    assert m.send("register:0xa", RECIPIENT, value=1).status == TxStatus.CONFIRMED
    assert m.wait("register:0xa", 1).status == TxStatus.CONFIRMED
    assert node.nonce(keeper) == 2  # only the pruned liquidation key may be sent again
    m.send("liq:1700000000:0xa", RECIPIENT, value=1)
    node.automine(True)
    drive(m, node, ["register:0xb", "liq:1700000000:0xa"])
    assert node.nonce(keeper) == 4
    assert node.balance(RECIPIENT) == 4


def test_a_second_manager_on_the_same_state_is_refused(node, opened, tmp_path, keeper):
    open_manager(opened, node.url, DEV_KEYS[1], tmp_path)
    with pytest.raises(StateLockedError):
        StateStore(tmp_path, keeper)


def test_two_keepers_race_on_the_same_round(node, opened, tmp_path):
    # Two accounts post "round 17" at the same moment, each twice (a retrying caller). Which post
    # wins is the oracle contract's business; each keeper's own ledger holds one transaction.
    # Both keep their state in the same database (rows keyed by signer).
    managers = [open_manager(opened, node.url, DEV_KEYS[i], tmp_path) for i in (1, 2)]
    barrier = threading.Barrier(4)
    errors: list[BaseException] = []

    def post(m: TxManager) -> None:
        try:
            barrier.wait(timeout=10)
            m.send("post:BTC:round:17", RECIPIENT, value=1)
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=post, args=(m,)) for m in managers for _ in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=30)
    assert not errors
    for m in managers:
        drive(m, node, ["post:BTC:round:17"])
        rec = m.record("post:BTC:round:17")
        assert rec.status == TxStatus.CONFIRMED and len(rec.hashes) == 1
        assert node.nonce(m.address) == 1
    assert node.balance(RECIPIENT) == 2
