"""The timelock is the admin of every contract: users see each admin action coming.

On anvil, through the SDK's deploy path with the timelock enabled (``deploy_system(...,
timelock=TimelockSpec(...))``, what ``ape run deploy`` does on every non-local network): after
deployment every admin is the timelock and the deployer holds no role on it; the old admin's
direct calls revert; a change scheduled by the multisig (with the calldata the SDK encodes, as a
Safe sends it) reverts before the delay and lands after it; the guardian still pauses at once;
role grants go through the timelock; a re-run of the deployment by the deployer is refused.
Pure: the decision whether a network gets a timelock (a public one without the multisig is
refused) and the operation id the SDK computes, checked against the contract's own.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import ape
import pytest

from offchain.errors import UserError
from offchain.fixed_point import WAD
from offchain.sdk import Deployment, deploy_system, deploy_token, load_config
from offchain.sdk import deploy as sdk_deploy
from offchain.sdk.deploy import preflight
from offchain.sdk.roles import ROLE_GUARDIAN, ROLE_KEEPER
from offchain.sdk.timelock import (
    CANCELLER_ROLE,
    DEFAULT_DELAY,
    EXECUTOR_ROLE,
    MAX_DELAY,
    MIN_DELAY,
    PROPOSER_ROLE,
    Call,
    Proposal,
    TimelockSpec,
    call_from_text,
    encode_call,
    execute,
    proposal,
    schedule,
    timelock_spec,
)

REPO = Path(__file__).resolve().parents[1]
SAFE = "0x5Afe000000000000000000000000000000005afe"
DEFAULT_ADMIN_ROLE = bytes(32)
NOT_READY = "timelock_controller: operation is not ready"


# --------------------------------------------------------------------------- pure


def test_a_public_network_without_the_multisig_is_refused():
    with pytest.raises(UserError) as err:
        timelock_spec("sepolia", False, multisig=None, delay=DEFAULT_DELAY)
    message = str(err.value)
    assert "\n" not in message
    assert "sepolia is not a local network" in message and "--timelock-admin 0x" in message
    spec = timelock_spec("sepolia", False, multisig=SAFE, delay=DEFAULT_DELAY)
    assert spec == TimelockSpec(DEFAULT_DELAY, SAFE)


def test_a_local_network_stays_direct_unless_asked():
    assert timelock_spec("local", True, multisig=None, delay=DEFAULT_DELAY) is None
    asked = timelock_spec("local", True, multisig=SAFE, delay=MIN_DELAY, requested=True)
    assert asked == TimelockSpec(MIN_DELAY, SAFE)
    with pytest.raises(UserError, match="--timelock-admin"):
        timelock_spec("local", True, multisig=None, delay=DEFAULT_DELAY, requested=True)


def test_the_zero_address_cannot_be_the_multisig():
    with pytest.raises(UserError, match="the zero address cannot propose"):
        timelock_spec("sepolia", False, multisig="0x" + "00" * 20, delay=DEFAULT_DELAY)


@pytest.mark.parametrize("delay", [0, MIN_DELAY - 1, MAX_DELAY + 1])
def test_a_delay_out_of_bounds_is_one_line(delay):
    with pytest.raises(UserError, match=f"--timelock-delay {delay}: the timelock delay must be"):
        timelock_spec("sepolia", False, multisig=SAFE, delay=delay)


def test_the_deployment_file_keeps_the_timelock(tmp_path):
    dep = Deployment("sepolia", 11155111, 1, "0x1", "0x2", "0x3", "0x4", "0x5")
    dep.timelock, dep.timelock_delay, dep.timelock_admin = "0x6", DEFAULT_DELAY, SAFE
    dep.save(tmp_path / "d.json")
    back = Deployment.load(tmp_path / "d.json")
    assert (back.timelock, back.timelock_delay, back.timelock_admin) == ("0x6", DEFAULT_DELAY, SAFE)


# --------------------------------------------------------------------------- on anvil


@pytest.fixture(scope="module")
def multisig(accounts):
    return accounts[7]


@pytest.fixture(scope="module")
def newcomer(accounts):
    return accounts[8]


@pytest.fixture(scope="module")
def locked(project, chain, admin, keeper, venue, guardian, multisig):
    cfg = load_config(REPO / "deploy" / "config.json")
    return deploy_system(
        project,
        chain,
        admin,
        cfg,
        keepers=[keeper],
        venues=[venue],
        guardians=[guardian],
        timelock=TimelockSpec(DEFAULT_DELAY, multisig.address),
    )


def wait(chain, seconds: int) -> None:
    chain.mine(timestamp=chain.blocks.head.timestamp + seconds)


def eth_params(c):
    return c.oracle.underlying_params(c.deployment.underlyings["ETH"])


def tightened(c) -> tuple:
    """ETH's parameters with the short-option minimum tripled and the scan range at its top."""
    p = eth_params(c)
    uid = c.deployment.underlyings["ETH"]
    return (
        uid,
        p.psr_max,
        p.psr_max,
        3 * p.som_rate,
        p.max_deviation,
        p.max_array_ratio,
        p.basis,
        p.roll,
    )


def test_every_admin_is_the_timelock_and_the_deployer_holds_no_role(locked, admin, multisig):
    c = locked
    tl = c.timelock
    assert c.deployment.timelock == tl.address
    assert (c.deployment.timelock_delay, c.deployment.timelock_admin) == (
        DEFAULT_DELAY,
        multisig.address,
    )
    for contract in (c.oracle, c.engine_admin, c.liquidator):
        assert contract.admin() == tl.address
        assert contract.pending_admin() == "0x" + "00" * 20
    assert c.engine.engine_admin() == c.engine_admin.address  # the engine's admin is EngineAdmin
    assert tl.get_minimum_delay() == DEFAULT_DELAY
    for role in (DEFAULT_ADMIN_ROLE, PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE):
        assert not tl.hasRole(role, admin)
    for role in (PROPOSER_ROLE, CANCELLER_ROLE, EXECUTOR_ROLE):
        assert tl.hasRole(role, multisig)
    assert not tl.hasRole(DEFAULT_ADMIN_ROLE, multisig)  # its roles change by proposal too
    assert tl.hasRole(DEFAULT_ADMIN_ROLE, tl)


def test_the_admin_cannot_tighten_parameters_without_notice(chain, locked, admin, multisig):
    c = locked
    weth = c.deployment.collateral["WETH"]
    before = eth_params(c)
    args = tightened(c)
    # the old admin's direct calls: every parameter, listing and role
    with ape.reverts("roles: not admin"):
        c.oracle.set_underlying_params(*args, sender=admin)
    with ape.reverts("roles: not admin"):
        c.engine_admin.list_collateral(weth, 9 * WAD // 10, 10**6 * WAD, sender=admin)
    with ape.reverts("roles: not admin"):
        c.engine_admin.set_im_factor(3 * WAD, sender=admin)
    with ape.reverts("roles: not admin"):
        c.liquidator.set_params(WAD // 2, WAD, WAD, 10**24, WAD // 2, sender=admin)
    with ape.reverts("roles: not admin"):
        c.liquidator.set_fund_share(0, sender=admin)
    with ape.reverts("roles: not admin"):
        c.oracle.transfer_admin(admin, sender=admin)
    # the multisig proposes the same change with the calldata a Safe sends
    p = proposal(c.oracle.set_underlying_params, *args)
    short = Proposal(p.calls, delay=DEFAULT_DELAY - 1)
    with ape.reverts("timelock_controller: insufficient delay"):
        schedule(c.timelock, multisig, short)
    with ape.reverts("access_control: account is missing role"):
        schedule(c.timelock, admin, p)  # the deployer is no proposer
    schedule(c.timelock, multisig, p)
    assert c.timelock.is_operation_pending(p.operation_id)
    assert c.timelock.get_timestamp(p.operation_id) == chain.blocks.head.timestamp + DEFAULT_DELAY
    with ape.reverts(NOT_READY):
        execute(c.timelock, multisig, p)
    wait(chain, DEFAULT_DELAY - 10)
    with ape.reverts(NOT_READY):
        execute(c.timelock, multisig, p)
    assert eth_params(c) == before  # users had the whole delay to see it and leave
    wait(chain, 10)
    with ape.reverts("access_control: account is missing role"):
        execute(c.timelock, admin, p)  # the deployer is no executor either
    execute(c.timelock, multisig, p)
    after = eth_params(c)
    assert (after.psr_min, after.som_rate) == (args[1], args[3])
    assert c.timelock.is_operation_done(p.operation_id)
    with ape.reverts(NOT_READY):
        execute(c.timelock, multisig, p)  # once


def test_a_scheduled_change_can_be_cancelled(chain, locked, multisig):
    c = locked
    p = proposal(c.engine_admin.set_im_factor, 3 * WAD)
    schedule(c.timelock, multisig, p)
    multisig.transfer(c.timelock, 0, data=p.cancel_calldata)
    wait(chain, DEFAULT_DELAY)
    with ape.reverts(NOT_READY):
        execute(c.timelock, multisig, p)
    assert c.engine.im_factor() != 3 * WAD


def test_the_guardian_pauses_at_once_and_unpausing_waits(chain, locked, admin, guardian, multisig):
    c = locked
    c.engine_admin.pause(sender=guardian)
    assert c.engine.paused()
    with ape.reverts("roles: not admin"):
        c.engine_admin.unpause(sender=admin)
    p = proposal(c.engine_admin.unpause)
    schedule(c.timelock, multisig, p)
    wait(chain, DEFAULT_DELAY)
    execute(c.timelock, multisig, p)
    assert not c.engine.paused()


def test_role_grants_go_through_the_timelock(chain, locked, admin, multisig, newcomer):
    c = locked
    with ape.reverts("roles: not admin"):
        c.oracle.grant_role(newcomer, ROLE_KEEPER, sender=admin)
    with ape.reverts("roles: not admin"):
        c.engine_admin.grant_role(newcomer, ROLE_GUARDIAN, sender=admin)
    # one batch: both grants land together or not at all
    grants = Proposal(
        (
            encode_call(c.oracle.grant_role, newcomer, ROLE_KEEPER),
            encode_call(c.engine_admin.grant_role, newcomer, ROLE_GUARDIAN),
        ),
        delay=DEFAULT_DELAY,
    )
    schedule(c.timelock, multisig, grants)
    with ape.reverts(NOT_READY):
        execute(c.timelock, multisig, grants)
    assert not c.oracle.has_role(newcomer, ROLE_KEEPER)
    wait(chain, DEFAULT_DELAY)
    execute(c.timelock, multisig, grants)
    assert c.oracle.has_role(newcomer, ROLE_KEEPER)
    assert c.engine_admin.has_role(newcomer, ROLE_GUARDIAN)


def test_the_timelocks_own_delay_changes_only_through_itself(chain, locked, multisig):
    c = locked
    with ape.reverts("timelock_controller: caller must be timelock"):
        c.timelock.update_delay(MIN_DELAY, sender=multisig)
    p = proposal(c.timelock.update_delay, MIN_DELAY)
    schedule(c.timelock, multisig, p)
    wait(chain, DEFAULT_DELAY)
    execute(c.timelock, multisig, p)
    assert c.timelock.get_minimum_delay() == MIN_DELAY


def test_the_operation_id_is_the_contracts(locked):
    c = locked
    one = proposal(c.oracle.set_max_age, 600, salt=b"\x01" * 32)
    call = one.calls[0]
    assert (
        c.timelock.hash_operation(call.target, 0, call.data, bytes(32), b"\x01" * 32)
        == one.operation_id
    )
    two = Proposal((call, Call(c.engine_admin.address, b"\x12\x34")), delay=DEFAULT_DELAY)
    assert (
        c.timelock.hash_operation_batch(
            [x.target for x in two.calls], [0, 0], [x.data for x in two.calls], bytes(32), bytes(32)
        )
        == two.operation_id
    )


def test_the_deployer_cannot_complete_a_timelocked_deployment(project, chain, locked, admin):
    cfg = load_config(REPO / "deploy" / "config.json")
    nonce = admin.nonce
    with pytest.raises(UserError, match="a timelocked deployment changes only through proposals"):
        preflight(chain, admin, cfg, existing=locked.deployment)
    with pytest.raises(UserError, match="not the deployer"):
        deploy_system(project, chain, admin, cfg, existing=locked.deployment)
    assert admin.nonce == nonce


def test_a_public_deployment_needs_a_multisig_with_code(project, chain, admin, monkeypatch):
    cfg = load_config(REPO / "deploy" / "config.json")
    tokens = {
        spec.symbol: deploy_token(project, admin, spec.symbol, spec.decimals).address
        for spec in (cfg.cash, *cfg.collateral)
    }
    cfg = replace(
        cfg,
        cash=replace(cfg.cash, address=tokens[cfg.cash.symbol]),
        collateral=tuple(replace(c, address=tokens[c.symbol]) for c in cfg.collateral),
    )
    monkeypatch.setattr(sdk_deploy, "is_local_network", lambda _name: False)
    nonce = admin.nonce
    with pytest.raises(UserError) as err:
        deploy_system(project, chain, admin, cfg, timelock=TimelockSpec(DEFAULT_DELAY, SAFE))
    assert f"--timelock-admin {SAFE}: no contract there" in str(err.value)
    assert admin.nonce == nonce
    contract = TimelockSpec(DEFAULT_DELAY, tokens["USDC"])  # any address with code passes
    assert preflight(chain, admin, cfg, timelock=contract) is False


@pytest.mark.parametrize(
    "typed,part",
    [
        (("oracel", "set_max_age", "600"), "no contract 'oracel' (did you mean 'oracle'?)"),
        (("oracle", "set_max_ag", "600"), "no function 'set_max_ag' that changes state"),
        (("oracle", "max_age"), "no function 'max_age' that changes state"),  # a view
        (("oracle", "set_max_age"), "set_max_age(uint256 max_age_) takes 1 arguments, 0 given"),
        (("oracle", "set_max_age", "10m"), "'10m': not a whole number"),
        (("oracle", "set_max_age", "-1"), "'-1': must not be negative"),
        (("oracle", "grant_role", "0x12", "1"), "'0x12': not an address"),
        (
            ("oracle", "grant_role", "0x5afe000000000000000000000000000000005AFE", "1"),
            "checksum mismatch",
        ),
    ],
)
def test_each_bad_typed_call_is_one_line(locked, typed, part):
    contracts = {"oracle": locked.oracle, "engine_admin": locked.engine_admin}
    with pytest.raises(UserError) as err:
        call_from_text(contracts, typed[0], typed[1], typed[2:])
    assert part in str(err.value) and "\n" not in str(err.value)


def test_a_typed_call_encodes_as_the_sdk_call(locked, keeper):
    c = locked
    typed = call_from_text({"oracle": c.oracle}, "oracle", "grant_role", (keeper.address, "1"))
    assert typed == encode_call(c.oracle.grant_role, keeper.address, ROLE_KEEPER)


def test_the_documented_batch_runs_and_lands_after_the_delay(chain, locked, multisig, newcomer):
    """docs/deploy.md, "Change a timelocked deployment": its Python block runs as written (with
    real addresses for the placeholders) and its batch lands only after the delay."""
    doc = (REPO / "docs" / "deploy.md").read_text()
    section = doc.split("## Change a timelocked deployment", 1)[1]
    code = section.split("```python\n", 1)[1].split("```", 1)[0]
    code = code.replace('"0xNewKeeper"', repr(newcomer.address))
    code = code.replace('"0xNewGuardian"', repr(newcomer.address))
    ns = {"system": locked, "ROLE_KEEPER": ROLE_KEEPER, "ROLE_GUARDIAN": ROLE_GUARDIAN}
    exec(code, ns)  # noqa: S102 - the documentation's own code
    txs = ns["p"].as_transactions(locked.timelock.address)
    assert txs["schedule"]["to"] == locked.timelock.address and txs["delay"] == DEFAULT_DELAY
    batch = ns["batch"]
    schedule(locked.timelock, multisig, batch)
    with ape.reverts(NOT_READY):
        execute(locked.timelock, multisig, batch)
    wait(chain, DEFAULT_DELAY)
    execute(locked.timelock, multisig, batch)
    assert locked.oracle.has_role(newcomer, ROLE_KEEPER)
    assert locked.engine_admin.has_role(newcomer, ROLE_GUARDIAN)
