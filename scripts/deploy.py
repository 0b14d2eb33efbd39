"""``ape run deploy``: deploy (or complete) the system on any network, idempotently.

Lists the grids, underlyings, collateral and instruments of a config file
(``deploy/config.json``), grants the keeper and venue roles, and writes the addresses to
``deployments/<network>.json``. Run again, it reuses the contracts recorded there (when they
have code) and sends only the listings the chain does not have yet.

    ape run deploy                                         # local anvil, test accounts
    ape run deploy --network ethereum:sepolia:node --account deployer --keeper 0xKeeper
"""

from __future__ import annotations

import os
from pathlib import Path

import click
from ape import chain, project
from ape.cli import ConnectedProviderCommand

from offchain.sdk import Client, Deployment, deploy_system, load_config
from scripts import _anvil
from scripts._common import REPO, deployment_path, resolve_account


def deploy(
    network_name: str,
    config_path: str | Path,
    admin,
    keepers=(),
    venues=(),
    out: str | Path | None = None,
    time_offset: int = 0,
    now: int | None = None,
) -> Client:
    """Deploy or complete the system; return its client. ``now`` resolves relative expiries
    (default: the chain's clock)."""
    path = Path(out) if out else deployment_path(network_name)
    existing = Deployment.load(path) if path.exists() else None
    now = chain.blocks.head.timestamp if now is None else now
    cfg = load_config(config_path, now=now)
    c = deploy_system(
        project,
        chain,
        admin,
        cfg,
        keepers=keepers,
        venues=venues,
        existing=existing,
        network=network_name,
        time_offset=time_offset,
        log=click.echo,
    )
    c.deployment.save(path)
    click.echo(f"deployment written to {path}")
    return c


_anvil.install()  # local runs: Ape's anvil without --steps-tracing (see scripts/_anvil.py)


@click.command(cls=ConnectedProviderCommand)
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
@click.option("--out", default=None, help="deployment file (default deployments/<network>.json)")
@click.option("--autosign", is_flag=True, help="sign without a prompt per transaction (keyfile)")
def cli(network, config_path, account, keepers, venues, out, autosign):
    """Deploy RiskOracle, MarginEngine, MarginViews (and mock tokens on local networks)."""
    name = network.name
    admin = resolve_account(account, name, 0)
    if autosign and hasattr(admin, "set_autosign"):
        passphrase = os.environ.get(f"APE_ACCOUNTS_{admin.alias}_PASSPHRASE")
        admin.set_autosign(True, passphrase=passphrase)
    if not keepers and name in ("local",):
        keepers = ("TEST::1",)
    if not venues and name in ("local",):
        venues = ("TEST::2",)

    def who(x):
        return x if x.startswith("0x") and len(x) == 42 else resolve_account(x, name, 0)

    deploy(name, config_path, admin, [who(k) for k in keepers], [who(v) for v in venues], out)
