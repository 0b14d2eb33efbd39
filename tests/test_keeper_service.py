"""``ape run keeper`` as an operator runs it: log lines carry their UTC time and level, a post the
chain refuses is logged with the contract's reason text, and SIGTERM / SIGINT stop the keeper
with its state on disk, one ``stopped`` line with the totals and exit code 0; a round that does
not finish within the grace period is abandoned and resumed at the next start without a second
post."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from eth_abi import encode
from faulty_rpc import FaultyRpcProxy
from test_keeper_integration import CONFIG, FAST, PSR, advance, tick
from web3.exceptions import ContractLogicError

from offchain.keeper.logfmt import UtcFormatter, configure_logging, log_event, stamp_handlers
from offchain.keeper.reverts import ERROR_SELECTOR, decode_revert, revert_reason
from offchain.keeper.runner import open_keeper
from offchain.keeper.shutdown import Shutdown
from offchain.sdk import ROLE_KEEPER, deploy_system, parse_config

REPO = Path(__file__).resolve().parents[1]
LINE = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ (DEBUG|INFO|WARNING|ERROR|CRITICAL) event=\w+")
STARTUP = 240  # seconds for `ape run` to start and post (Ape's import is slow on a busy machine)


@pytest.fixture(scope="module")
def sysm(project, chain, admin, keeper, venue):
    cfg = parse_config(CONFIG, now=chain.blocks.head.timestamp)
    return deploy_system(project, chain, admin, cfg, keepers=[keeper], venues=[venue])


# ------------------------------------------------------------------------------ log lines


def test_a_log_line_starts_with_its_utc_time_and_level():
    record = logging.LogRecord(
        "offchain.keeper.runner", logging.INFO, "", 0, "event=round", (), None
    )
    record.created = 1_796_210_400.0  # 2026-12-02 11:20:00 UTC
    assert UtcFormatter().format(record) == "2026-12-02T11:20:00Z INFO event=round"


def test_configured_logging_writes_each_event_once_with_time_and_level():
    logger = logging.getLogger("offchain")
    before = (list(logger.handlers), logger.level)
    first, second = io.StringIO(), io.StringIO()
    try:
        configure_logging(stream=first)
        configure_logging(logging.INFO, stream=second)  # replaces the first, adds no second
        log_event(logging.getLogger("offchain.keeper.tx"), logging.WARNING, "tx_bumped", nonce=4)
        log_event(logging.getLogger("offchain.keeper.tx"), logging.DEBUG, "hidden")
    finally:
        logger.handlers[:], logger.level = before
    assert first.getvalue() == ""
    lines = second.getvalue().splitlines()
    assert (
        len(lines) == 1
        and LINE.match(lines[0])
        and lines[0].endswith(" WARNING event=tx_bumped nonce=4")
    )


def test_another_library_s_handlers_get_the_same_line_shape():
    out = io.StringIO()
    logger = logging.getLogger("test_keeper_service.library")
    handler = logging.StreamHandler(out)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    logger.addHandler(handler)
    try:
        stamp_handlers("test_keeper_service.library")
        logger.warning("Danger! This account will now sign any transaction it's given.")
    finally:
        logger.removeHandler(handler)
    assert re.match(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ WARNING Danger! ", out.getvalue())


# ------------------------------------------------------------------------------ revert reasons


def test_revert_data_is_decoded_to_its_reason_text():
    error = ERROR_SELECTOR + encode(["string"], ["oracle: not newer"])
    panic = bytes.fromhex("4e487b71") + encode(["uint256"], [0x11])
    assert decode_revert(error) == decode_revert("0x" + error.hex()) == "oracle: not newer"
    assert decode_revert(panic) == "panic 0x11: arithmetic overflow or underflow"
    assert decode_revert(b"") == "reverted without a reason"
    assert (
        decode_revert("0xdeadbeef" + "00" * 32) == "custom error 0xdeadbeef with 32 bytes of data"
    )
    assert decode_revert(ERROR_SELECTOR + b"\x01") == "custom error 0x08c379a0 with 1 bytes of data"
    exc = ContractLogicError("execution reverted: oracle: not newer", data="0x" + error.hex())
    assert revert_reason(exc) == "oracle: not newer"
    assert revert_reason(ContractLogicError("execution reverted: no data")) == "no data"


def test_a_post_the_oracle_refuses_is_logged_with_its_reason_text(
    sysm, chain, admin, keeper, outsider, tmp_path, caplog
):
    c = sysm
    c.oracle.grant_role(outsider, ROLE_KEEPER, sender=admin)
    ts = advance(chain, 60)
    keepers = [
        open_keeper(c, who, str(tmp_path / n), tx_config=FAST, psr=lambda u, t: PSR[u])
        for n, who in (("a", keeper), ("b", outsider))
    ]
    try:
        keepers[0].round(tick(ts, 60_000.0, 3_000.0))
        with caplog.at_level("INFO", logger="offchain.keeper"):
            report = keepers[1].round(tick(ts, 60_000.0, 3_000.0))
    finally:
        for k in keepers:
            k.close()
    assert report.rejected == [f"post:{ts}:0"]
    lines = [r.getMessage() for r in caplog.records if "event=tx_would_revert" in r.getMessage()]
    assert lines == [f'event=tx_would_revert key=post:{ts}:0 reason="oracle: not newer"']


# ------------------------------------------------------------------------------ signals


def test_the_first_signal_asks_to_stop_and_the_second_abandons_the_call(caplog):
    previous = signal.getsignal(signal.SIGINT)

    def until_interrupted(shutdown: Shutdown) -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        assert shutdown.event.is_set() and shutdown.signal_name == "SIGTERM"
        os.kill(os.getpid(), signal.SIGINT)
        for _ in range(500):  # the handler runs between two bytecodes of this loop
            time.sleep(0.01)
        return "finished"

    with caplog.at_level("INFO", logger="offchain.keeper"), Shutdown(grace=0) as shutdown:
        assert shutdown.run(until_interrupted, shutdown) is None
        assert shutdown.abandoned
        os.kill(os.getpid(), signal.SIGTERM)  # outside `run`: ignored while the keeper closes
    assert signal.getsignal(signal.SIGINT) is previous
    messages = [r.getMessage() for r in caplog.records]
    assert messages == [
        "event=stopping signal=SIGTERM grace=0",
        "event=round_abandoned cause=SIGINT",
    ]


def test_a_round_still_running_after_the_grace_period_is_abandoned(caplog):
    def long_round() -> str:
        os.kill(os.getpid(), signal.SIGTERM)
        for _ in range(500):
            time.sleep(0.01)
        return "finished"

    with caplog.at_level("INFO", logger="offchain.keeper"), Shutdown(grace=0.05) as shutdown:
        assert shutdown.run(long_round) is None
    assert [r.getMessage() for r in caplog.records][-1] == "event=round_abandoned cause=grace_over"
    with Shutdown(grace=5) as shutdown:  # a round that ends in time is not abandoned
        assert shutdown.run(lambda: "finished") == "finished" and not shutdown.abandoned


# ------------------------------------------------------------------------------ ape run keeper


def start_keeper(url: str, deployment: Path, state_dir: Path, log: Path, *extra: str):
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{REPO / 'node_modules' / '.bin'}:{bin_dir}:{os.environ['PATH']}"}
    args = [
        str(bin_dir / "ape"),
        "run",
        "keeper",
        "--network",
        "ethereum:local:foundry",
        "--provider-settings",
        json.dumps({"host": url}),
        "--deployment",
        str(deployment),
        "--state-dir",
        str(state_dir),
        "--source",
        "sim",
        "--warp",
        "--interval",
        "0.2",
        *extra,
    ]
    return subprocess.Popen(
        args, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=log.open("w"), text=True
    )


def wait_for(proc: subprocess.Popen, log: Path, pattern: str, count: int = 1) -> None:
    deadline = time.monotonic() + STARTUP
    while log.read_text().count(pattern) < count:
        assert proc.poll() is None, log.read_text()[-3000:]
        assert time.monotonic() < deadline, f"no {pattern!r} in time: {log.read_text()[-3000:]}"
        time.sleep(0.1)


def stop(proc: subprocess.Popen, sig: int) -> int:
    proc.send_signal(sig)
    try:
        return proc.wait(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)


def keeper_lines(log: Path) -> list[str]:
    """The keeper's own lines (Ape's and warnings' have another shape)."""
    return [line for line in log.read_text().splitlines() if " event=" in line]


def test_sigterm_finishes_the_round_logs_stopped_and_exits_0(sysm, chain, keeper, tmp_path):
    c = sysm
    deployment = tmp_path / "deployment.json"
    c.deployment.save(deployment)
    log = tmp_path / "keeper.log"
    proc = start_keeper(chain.provider.uri, deployment, tmp_path / "state", log)
    wait_for(proc, log, "event=round ", 2)
    assert stop(proc, signal.SIGTERM) == 0

    lines = keeper_lines(log)
    assert all(LINE.match(line) for line in lines), [x for x in lines if not LINE.match(x)]
    stopped = [line for line in lines if " event=stopped " in line]
    assert len(stopped) == 1 and stopped[0] == lines[-1]
    rounds = sum(" event=round " in line for line in lines)
    assert f"INFO event=stopped reason=SIGTERM rounds={rounds} " in stopped[0]
    assert rounds >= 2 and any("WARNING event=stopping signal=SIGTERM" in x for x in lines)

    k = open_keeper(c, keeper, str(tmp_path / "state"), tx_config=FAST, psr=lambda u, t: PSR[u])
    try:  # the round under way was finished: no plan left, nothing unfinished, last post on chain
        assert k.runner_state.plan is None and k.sender.tx.unfinished() == []
        assert k.runner_state.last_ts == c.oracle.underlying_state(1)[2]
    finally:
        k.close()


def test_a_round_abandoned_at_the_end_of_the_grace_period_resumes_without_a_second_post(
    sysm, chain, keeper, tmp_path
):
    """Every receipt request is held 1 s by a proxy, so the round is still waiting for its post
    when SIGTERM comes; 0.3 s later it is abandoned. The restarted keeper completes the plan it
    finds on disk with the same transaction."""
    c = sysm
    deployment = tmp_path / "deployment.json"
    c.deployment.save(deployment)
    log = tmp_path / "keeper.log"
    slow = frozenset({"eth_getTransactionReceipt"})
    proxy = FaultyRpcProxy(chain.provider.uri, fail_every=1, mode="delay", only_methods=slow)
    proxy.start()
    nonce0 = chain.provider.web3.eth.get_transaction_count(keeper.address)
    try:
        proc = start_keeper(proxy.url, deployment, tmp_path / "state", log, "--stop-grace", "0.3")
        wait_for(proc, log, "event=tx_sent ")
        assert stop(proc, signal.SIGTERM) == 0
    finally:
        proxy.stop()
    lines = keeper_lines(log)
    assert all(LINE.match(line) for line in lines)
    assert "WARNING event=round_abandoned cause=grace_over" in lines[-2]
    assert "INFO event=stopped reason=SIGTERM rounds=0 posts=0 " in lines[-1]
    assert not any(" event=round " in line for line in lines)

    k = open_keeper(c, keeper, str(tmp_path / "state"), tx_config=FAST, psr=lambda u, t: PSR[u])
    try:
        plan = k.runner_state.plan
        assert plan is not None and len(plan.batches) == 1  # the plan was left on disk
        report = k.round(tick(plan.ts, 60_000.0, 3_000.0))  # the next start, same data time
        assert report.batches == 1 and k.runner_state.plan is None
        assert k.runner_state.last_ts == plan.ts == c.oracle.underlying_state(1)[2]
    finally:
        k.close()
    sent = chain.provider.web3.eth.get_transaction_count(keeper.address) - nonce0
    assert sent == 1  # the abandoned round's transaction, not a second one
