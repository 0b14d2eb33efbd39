"""``ape run deploy`` and ``ape run keeper`` as an operator types them: each bad input exits 2
with one line on stderr and sends nothing (the deployer's nonce is unchanged).

The scripts run as subprocesses against anvil nodes started here: one as Ape's local network
(``--network ethereum:local:foundry`` pointed at it) and one standing in for a public network
(chain id 11155111, reached as ``ethereum:sepolia:node`` through ``SEPOLIA_RPC_URL``, which
``ape-config.yaml`` reads).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from anvil_node import AnvilNode

from offchain.errors import UserError
from offchain.keeper.service import KeeperOptions, check_days, check_options
from scripts._common import resolve_account
from scripts.deploy import read_deployment, role_holder

REPO = Path(__file__).resolve().parents[1]
ADMIN = "0xf39Fd6e51aad88F6F4ce6aB8827279cffFb92266"  # TEST::0, the local deployer
NOWHERE = "0x000000000000000000000000000000000000dEaD"
SEPOLIA = ["--network", "ethereum:sepolia:node"]
SAFE = "0x5Afe000000000000000000000000000000005afe"  # the multisig a public deployment needs
ACCOUNT_AND_SAFE = ["--account", "TEST::0", "--timelock-admin", SAFE]
MULTISIG = "TEST::7"


@pytest.fixture(scope="module")
def local_node():
    node = AnvilNode()
    yield node
    node.stop()


@pytest.fixture(scope="module")
def public_node():
    node = AnvilNode("--chain-id", "11155111")
    yield node
    node.stop()


def on(node: AnvilNode) -> list[str]:
    return [
        "--network",
        "ethereum:local:foundry",
        "--provider-settings",
        json.dumps({"host": node.url}),
    ]


def ape_run(*args: str, rpc: str | None = None) -> subprocess.CompletedProcess:
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{REPO / 'node_modules' / '.bin'}:{bin_dir}:{os.environ['PATH']}"}
    if rpc:
        env["SEPOLIA_RPC_URL"] = rpc
    return subprocess.run(
        [str(bin_dir / "ape"), "run", *args],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )


def one_line(proc: subprocess.CompletedProcess, *parts: str) -> str:
    """The run exited 2 with one line on stderr holding ``parts``, and no traceback."""
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 2, (proc.returncode, proc.stdout[-2000:], proc.stderr[-2000:])
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    for part in parts:
        assert part in lines[0], lines[0]
    return lines[0]


def config_file(tmp_path: Path, edit) -> str:
    cfg = json.loads((REPO / "deploy" / "config.json").read_text())
    edit(cfg)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg))
    return str(path)


def test_a_config_typo_exits_with_one_line_and_deploys_nothing(local_node, tmp_path):
    typo = config_file(
        tmp_path, lambda c: c["collateral"][0].update(haircutt=c["collateral"][0].pop("haircut"))
    )
    nonce = local_node.nonce(ADMIN)
    out = tmp_path / "local.json"
    proc = ape_run("deploy", *on(local_node), "--config", typo, "--out", str(out))
    one_line(proc, "collateral[0]: unknown key 'haircutt' (did you mean 'haircut'?)")
    assert local_node.nonce(ADMIN) == nonce and not out.exists()
    # the traceback is there for whoever asks for it
    verbose = ape_run("deploy", *on(local_node), "--config", typo, "--out", str(out), "--verbose")
    assert verbose.returncode == 2 and "Traceback" in verbose.stderr


def test_a_token_address_without_code_exits_with_one_line_and_deploys_nothing(local_node, tmp_path):
    bad = config_file(tmp_path, lambda c: c["cash"].update(address=NOWHERE))
    nonce = local_node.nonce(ADMIN)
    out = tmp_path / "local.json"
    proc = ape_run("deploy", *on(local_node), "--config", bad, "--out", str(out))
    one_line(proc, f"cash USDC at {NOWHERE}: no contract there on local")
    assert local_node.nonce(ADMIN) == nonce and not out.exists()


def test_the_deployments_file_is_never_overwritten_silently(local_node, public_node, tmp_path):
    out = tmp_path / "local.json"
    first = ape_run("deploy", *on(local_node), "--out", str(out))
    assert first.returncode == 0, first.stderr[-2000:]
    written = out.read_text()
    nonce = local_node.nonce(ADMIN)
    # its contracts have code on this node: a plain re-run asks for a choice
    again = ape_run("deploy", *on(local_node), "--out", str(out))
    one_line(again, "already holds a deployment on this node", "--update", "--out FILE", "--force")
    assert local_node.nonce(ADMIN) == nonce and out.read_text() == written
    # --update completes it: everything is listed already, so nothing is sent
    update = ape_run("deploy", *on(local_node), "--out", str(out), "--update")
    assert update.returncode == 0, update.stderr[-2000:]
    assert local_node.nonce(ADMIN) == nonce
    assert json.loads(out.read_text()) == json.loads(written)
    # on a public network, a file whose contracts have no code there is refused, not replaced
    public = ape_run("deploy", *SEPOLIA, *ACCOUNT_AND_SAFE, "--out", str(out), rpc=public_node.url)
    one_line(public, "no code on sepolia", "--force")
    assert out.read_text() == written
    # a fresh local node: the stale file is replaced, and the run says so
    fresh = AnvilNode()
    try:
        stale = ape_run("deploy", *on(fresh), "--out", str(out))
    finally:
        fresh.stop()
    assert stale.returncode == 0, stale.stderr[-2000:]
    assert "no code on this node (a fresh node): replaced" in stale.stdout


def test_a_public_network_without_the_timelock_multisig_is_refused(public_node, tmp_path):
    out = tmp_path / "sepolia.json"
    nonce = public_node.nonce(ADMIN)
    proc = ape_run(
        "deploy", *SEPOLIA, "--account", "TEST::0", "--out", str(out), rpc=public_node.url
    )
    one_line(proc, "sepolia is not a local network", "--timelock-admin 0x")
    assert public_node.nonce(ADMIN) == nonce and not out.exists()
    short = ape_run(
        "deploy", *SEPOLIA, *ACCOUNT_AND_SAFE, "--timelock-delay", "60", rpc=public_node.url
    )
    one_line(short, "--timelock-delay 60: the timelock delay must be between 3600")


def test_a_timelocked_deployment_changes_only_through_proposals(local_node, tmp_path):
    out = tmp_path / "local.json"
    first = ape_run(
        "deploy", *on(local_node), "--out", str(out), "--timelock", "--timelock-admin", MULTISIG
    )
    assert first.returncode == 0, first.stderr[-2000:]
    recorded = json.loads(out.read_text())
    assert recorded["timelock"] and recorded["timelock_delay"] == 2 * 86_400
    nonce = local_node.nonce(ADMIN)
    update = ape_run("deploy", *on(local_node), "--out", str(out), "--update")
    one_line(update, "not the deployer", "through proposals of its multisig")
    assert local_node.nonce(ADMIN) == nonce
    typo = ape_run("timelock", *on(local_node), "--deployment", str(out), "oracel", "set_max_age")
    one_line(typo, "no contract 'oracel' (did you mean 'oracle'?)")
    call = ["--deployment", str(out), "oracle", "set_max_age", "600"]
    shown = ape_run("timelock", *on(local_node), *call)
    assert shown.returncode == 0, shown.stderr[-2000:]
    printed = json.loads(shown.stdout[shown.stdout.index("{") :])
    assert printed["status"] == {"state": "unset"}
    assert printed["schedule"]["to"] == recorded["timelock"]
    send = ["--account", MULTISIG, "--send"]
    scheduled = ape_run("timelock", *on(local_node), *send, "schedule", *call)
    assert scheduled.returncode == 0, scheduled.stderr[-2000:]
    assert '"state": "waiting"' in scheduled.stdout
    early = ape_run("timelock", *on(local_node), *send, "execute", *call)
    one_line(early, "--send execute: the operation", "is waiting until", "needs it ready")
    local_node.rpc("evm_increaseTime", 2 * 86_400)
    local_node.mine()
    done = ape_run("timelock", *on(local_node), *send, "execute", *call)
    assert done.returncode == 0, done.stderr[-2000:]
    assert '"state": "done"' in done.stdout


def test_a_missing_source_on_a_public_network_exits_with_one_line(public_node):
    block = public_node.w3.eth.block_number
    proc = ape_run("keeper", *SEPOLIA, rpc=public_node.url)
    one_line(proc, "--source is required on sepolia")
    assert public_node.w3.eth.block_number == block


def test_mock_tokens_are_refused_on_a_public_network(public_node, tmp_path):
    out = tmp_path / "sepolia.json"
    nonce = public_node.nonce(ADMIN)
    proc = ape_run("deploy", *SEPOLIA, *ACCOUNT_AND_SAFE, "--out", str(out), rpc=public_node.url)
    one_line(proc, "cash USDC has no 'address'", "only on local networks, not on sepolia")
    assert public_node.nonce(ADMIN) == nonce and not out.exists()


def test_a_bad_option_value_is_one_line_too():
    one_line(ape_run("keeper", "--source", "csvv"), "Invalid value for '--source'", "--help")
    one_line(ape_run("keeper", "--source", "json"), "--source json needs --file")


@pytest.mark.parametrize(
    "network,source,kw,parts",
    [
        ("sepolia", None, {}, ("--source is required on sepolia",)),
        ("local", "json", {}, ("--source json needs --file",)),
        ("local", "http", {}, ("--source http needs --url",)),
        ("local", "feed", {}, ("--source feed needs --feed",)),
        (
            "local",
            "http",
            {"file": "ticks.json", "url": "https://x"},
            ("--file goes with --source json",),
        ),
        (
            "local",
            "json",
            {"file": "no-such-ticks.json"},
            ("--file no-such-ticks.json: no such file",),
        ),
        ("local", "http", {"url": "ftp://x"}, ("not an http(s) URL",)),
        ("local", "feed", {"feeds": ("BTC:0x12",)}, ("expected UNDERLYING=0xADDRESS",)),
        ("local", "sim", {"start": "2020-03-10"}, ("go with --source csv, not --source sim",)),
        ("local", "csv", {"start": "2020-13-01"}, ("--start 2020-13-01: not a date",)),
        ("local", "csv", {"start": "2020-03-14", "end": "2020-03-10"}, ("is after --end",)),
        (
            "sepolia",
            "http",
            {"url": "https://x", "warp": True},
            ("--warp moves the clock of a local",),
        ),
    ],
)
def test_each_bad_keeper_option_is_one_line(network, source, kw, parts):
    with pytest.raises(UserError) as err:
        check_options(KeeperOptions(source=source, **kw), network)
    assert "\n" not in str(err.value)
    for part in parts:
        assert part in str(err.value)


def test_good_keeper_options_pass():
    feed = "BTC=0x5f4eC3Df9cbd43714FE2740f5E3616155c5b8419"
    for network, options in [
        ("local", KeeperOptions()),  # local networks only: simulated prices by default
        ("sepolia", KeeperOptions(source="http", url="https://feed.example/ticks")),
        ("mainnet", KeeperOptions(source="feed", feeds=(feed,))),
        ("local", KeeperOptions(source="csv", start="2020-03-10", end="2020-03-14", warp=True)),
    ]:
        check_options(options, network)


@pytest.mark.parametrize(
    "call,part",
    [
        (lambda: role_holder("0x12", "--keeper", "local"), "--keeper 0x12: not an address"),
        (lambda: resolve_account("nobody", "sepolia", 0), "no account 'nobody'"),
        (lambda: resolve_account(None, "sepolia", 0), "--account is required on sepolia"),
        (lambda: check_days("2020-03-32", None), "--start 2020-03-32: not a date"),
    ],
)
def test_each_bad_account_address_or_day_is_one_line(call, part):
    with pytest.raises(UserError, match=part.replace("(", r"\(")) as err:
        call()
    assert "\n" not in str(err.value)


def test_a_broken_deployments_file_is_one_line(tmp_path):
    path = tmp_path / "local.json"
    path.write_text('{"oracle": ')
    with pytest.raises(UserError, match="is not a deployments file") as err:
        read_deployment(path)
    assert "\n" not in str(err.value) and "--out" in str(err.value)
