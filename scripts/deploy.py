"""``ape run deploy``: deploy (or complete) the system on any network.

Lists the grids, underlyings, collateral and instruments of a config file
(``deploy/config.json``), grants the keeper and venue roles, and writes the addresses to
``deployments/<network>.json``. Everything is checked before the first transaction (the config,
every token address, the deployer's funds), so a deployment that fails leaves nothing behind.

The deployments file is never overwritten silently. When it names contracts that have code on
this node, the script stops and asks for a choice: ``--update`` completes that deployment (sends
only the listings the chain does not have yet), ``--out FILE`` deploys a new system beside it,
``--force`` deploys a new system and replaces the file. When its contracts have no code (a fresh
local node), a local run says so and replaces it; a public network refuses without ``--force``.

On every non-local network the admin of every contract ends as a timelock (``Timelock.vy``)
whose proposer, canceller and executor is the multisig given by ``--timelock-admin``; without
it the script refuses before anything is sent. Local runs keep the deployer as the admin unless
``--timelock`` asks for one. The delay is the config's ``timelock_delay`` (2 days) or
``--timelock-delay``.

    ape run deploy                                         # local anvil, test accounts
    ape run deploy --network ethereum:sepolia:node --account deployer --keeper 0xKeeper \
        --guardian 0xGuardian --timelock-admin 0xSafe
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import click
from ape import chain, project
from eth_utils import is_hex_address

from offchain.errors import UserError
from offchain.sdk import Client, Deployment, deploy_system, load_config
from offchain.sdk.config import SystemConfig, checked_address
from offchain.sdk.deploy import Say, has_code, is_local_network
from offchain.sdk.timelock import TimelockSpec, timelock_spec
from scripts import _anvil
from scripts._common import (
    REPO,
    ScriptCommand,
    deployment_path,
    read_deployment,
    resolve_account,
)


def existing_deployment(
    path: Path, network_name: str, *, update: bool, force: bool
) -> tuple[Deployment | None, str | None]:
    """The deployment to complete (``update``; else None: deploy anew) and, when a file is to
    be replaced, the line saying so. Refuses to replace a file silently (the rule in the module
    docstring)."""
    if not path.exists():
        if update:
            raise UserError(f"--update: {path} does not exist; deploy without --update first")
        return None, None
    recorded = read_deployment(path)
    live = recorded.chain_id == chain.chain_id and has_code(chain, recorded.oracle)
    if live:
        if update:
            return recorded, None
        if force:
            return None, f"{path}: replacing the deployment of oracle {recorded.oracle} (--force)"
        raise UserError(
            f"{path} already holds a deployment on this node (oracle {recorded.oracle}): "
            "--update completes it, --out FILE deploys a new one beside it, --force replaces it"
        )
    if update:
        raise UserError(
            f"--update: the contracts in {path} have no code on {network_name} (chain id "
            f"{chain.chain_id}); check --network, or deploy anew with --force or --out"
        )
    if force or is_local_network(network_name):
        return None, f"{path} named contracts with no code on this node (a fresh node): replaced"
    raise UserError(
        f"{path} names contracts with no code on {network_name} (chain id {chain.chain_id}): "
        "check --network and its RPC; --force replaces the file, --out FILE writes elsewhere"
    )


def deploy(
    network_name: str,
    cfg: SystemConfig,
    admin,
    keepers=(),
    venues=(),
    out: str | Path | None = None,
    *,
    guardians=(),
    timelock: TimelockSpec | None = None,
    update: bool = False,
    force: bool = False,
    say: Say = click.echo,
) -> Client:
    """Deploy or complete the system described by ``cfg``; return its client. ``timelock``:
    hand every admin over to a timelock once listed (``timelock_spec`` decides)."""
    path = Path(out) if out else deployment_path(network_name)
    existing, replacing = existing_deployment(path, network_name, update=update, force=force)
    c = deploy_system(
        project,
        chain,
        admin,
        cfg,
        keepers=keepers,
        venues=venues,
        guardians=guardians,
        existing=existing,
        network=network_name,
        timelock=timelock,
        log=say,
    )
    c.deployment.save(path)
    if replacing:
        say(replacing)
    say(f"deployment written to {path}")
    return c


def role_holder(value: str, option: str, network_name: str) -> Any:
    """An address (``0x`` + 40 hex digits) or an Ape account alias."""
    if value.startswith("0x"):
        if not is_hex_address(value):
            raise UserError(f"{option} {value}: not an address (0x and 40 hex digits)")
        try:
            return checked_address(value)  # a mistyped mixed-case address fails its checksum
        except ValueError as exc:
            raise UserError(f"{option} {exc}") from None
    return resolve_account(value, network_name, 0)


_anvil.install()  # local runs: Ape's anvil without --steps-tracing (see scripts/_anvil.py)


@click.command(cls=ScriptCommand)
@click.option(
    "--config",
    "config_path",
    default=str(REPO / "deploy" / "config.json"),
    show_default=True,
    help="instruments and collateral to list",
)
@click.option("--account", default=None, help="admin: an `ape accounts` alias (local: TEST::0)")
@click.option("--keeper", "keepers", multiple=True, help="address or alias given the keeper role")
@click.option("--venue", "venues", multiple=True, help="address or alias given the venue role")
@click.option(
    "--guardian", "guardians", multiple=True, help="address or alias that may pause at once"
)
@click.option(
    "--timelock-admin",
    default=None,
    help="multisig (a Safe) that proposes, cancels and executes the timelock's calls; "
    "required on non-local networks",
)
@click.option(
    "--timelock-delay",
    type=int,
    default=None,
    help="seconds a change waits (default: the config's timelock_delay, 2 days)",
)
@click.option("--timelock", "want_timelock", is_flag=True, help="install the timelock locally too")
@click.option("--out", default=None, help="deployment file (default deployments/<network>.json)")
@click.option("--update", is_flag=True, help="complete the deployment the file holds")
@click.option("--force", is_flag=True, help="deploy anew and replace the deployment file")
@click.option("--autosign", is_flag=True, help="sign without a prompt per transaction (keyfile)")
def cli(
    network,
    config_path,
    account,
    keepers,
    venues,
    guardians,
    timelock_admin,
    timelock_delay,
    want_timelock,
    out,
    update,
    force,
    autosign,
):
    """Deploy RiskOracle, MarginEngine, MarginViews (and mock tokens on local networks)."""
    if update and force:
        raise UserError("--update completes the recorded deployment, --force replaces it: pick one")
    name = network.name
    cfg = load_config(config_path)  # a bad config is reported before any account is unlocked
    local = is_local_network(name)
    # decided before any account is unlocked: a public network without its multisig stops here
    multisig = role_holder(timelock_admin, "--timelock-admin", name) if timelock_admin else None
    spec = timelock_spec(
        name,
        local,
        multisig=None if multisig is None else str(getattr(multisig, "address", multisig)),
        delay=cfg.timelock_delay if timelock_delay is None else timelock_delay,
        requested=want_timelock,
    )
    admin = resolve_account(account, name, 0)
    if autosign and hasattr(admin, "set_autosign"):
        passphrase = os.environ.get(f"APE_ACCOUNTS_{admin.alias}_PASSPHRASE")
        admin.set_autosign(True, passphrase=passphrase)
    keepers = keepers or (("TEST::1",) if local else ())
    venues = venues or (("TEST::2",) if local else ())
    deploy(
        name,
        cfg,
        admin,
        [role_holder(k, "--keeper", name) for k in keepers],
        [role_holder(v, "--venue", name) for v in venues],
        out,
        guardians=[role_holder(g, "--guardian", name) for g in guardians],
        timelock=spec,
        update=update,
        force=force,
    )
