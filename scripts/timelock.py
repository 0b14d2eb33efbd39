"""``ape run timelock``: the transactions a multisig sends to change a timelocked deployment.

    ape run timelock --network ethereum:sepolia:node oracle set_max_age 600
    ape run timelock --network ethereum:sepolia:node engine_admin set_im_factor 1300000000000000000
    ape run timelock --send schedule --account TEST::7 oracle set_max_age 600   # local drill

Prints one JSON object: the call, the operation id, the delay, the operation's state on chain
(``unset``, ``waiting`` with the time it becomes ready, ``ready``, ``done``) and the three
transactions ``{to, value, data}`` a multisig (a Safe's transaction builder: "custom data")
sends to the timelock: ``schedule`` now, ``execute`` once the delay has passed, ``cancel`` to
drop it meanwhile. Running the same command again shows the state; the same call and salt
always give the same operation. ``--send`` sends one of them from an Ape account holding the
role (a multisig that is an Ape account, or a local drill). Arguments are integers (WAD amounts
as whole numbers), addresses, ``true``/``false`` or 32-byte hex, read by the function's ABI.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import click
from ape import chain, project

from offchain.errors import UserError
from offchain.sdk import Client
from offchain.sdk.timelock import Proposal, call_from_text, check_delay
from scripts import _anvil
from scripts._common import ScriptCommand, deployment_path, read_deployment, resolve_account


def open_timelocked(path: Path) -> Client:
    """The client of the deployment at ``path``; one that has no timelock is a one-line error."""
    if not path.exists():
        raise UserError(f"{path} does not exist; give the deployments file with --deployment")
    client = Client(project, chain, read_deployment(path))
    if client.timelock is None:
        raise UserError(
            f"{path} has no timelock: its admin calls the contracts directly (ape run deploy "
            "installs one on every non-local network, or locally with --timelock)"
        )
    return client


def state(timelock, operation_id: bytes) -> dict:
    """Where the operation stands: unset, waiting (until when), ready or done."""
    ts = timelock.get_timestamp(operation_id)
    if ts == 0:
        return {"state": "unset"}
    if ts == 1:
        return {"state": "done"}
    if ts > chain.blocks.head.timestamp:
        when = datetime.fromtimestamp(ts, UTC).strftime("%Y-%m-%d %H:%M:%S UTC")
        return {"state": "waiting", "ready_at": ts, "ready_at_utc": when}
    return {"state": "ready"}


def salt_bytes(text: str) -> bytes:
    try:
        value = int(text, 0)
    except ValueError:
        raise UserError(f"--salt {text!r}: give a whole number (0, 1, 0x2a...)") from None
    if not 0 <= value < 2**256:
        raise UserError(f"--salt {text}: must be in [0, 2**256)")
    return value.to_bytes(32, "big")


_anvil.install()


@click.command(cls=ScriptCommand)
@click.argument("contract")
@click.argument("function")
@click.argument("args", nargs=-1)
@click.option("--deployment", "deployment_file", default=None, help="deployments file")
@click.option("--salt", default="0", show_default=True, help="tells identical operations apart")
@click.option("--delay", type=int, default=None, help="seconds (default: the minimum delay)")
@click.option(
    "--send",
    type=click.Choice(["schedule", "execute", "cancel"]),
    default=None,
    help="send this transaction from --account",
)
@click.option("--account", default=None, help="the proposer/executor's `ape accounts` alias")
def cli(network, contract, function, args, deployment_file, salt, delay, send, account):
    """Print (or send) the timelock transactions of CONTRACT.FUNCTION(ARGS)."""
    if send and account is None:
        raise UserError(f"--send {send} needs --account (an account holding the timelock's role)")
    path = Path(deployment_file) if deployment_file else deployment_path(network.name)
    c = open_timelocked(path)
    tl = c.timelock
    contracts = {"oracle": c.oracle, "engine_admin": c.engine_admin, "timelock": tl}
    if c.liquidator is not None:
        contracts["liquidator"] = c.liquidator
    call = call_from_text(contracts, contract, function, args)
    minimum = tl.get_minimum_delay()
    wait = minimum if delay is None else check_delay(delay, "--delay")
    if wait < minimum:
        raise UserError(f"--delay {wait}: below the timelock's minimum delay of {minimum} seconds")
    p = Proposal((call,), delay=wait, salt=salt_bytes(salt))
    if send:
        now = state(tl, p.operation_id)
        allowed = {"schedule": ("unset",), "execute": ("ready",), "cancel": ("waiting", "ready")}
        if now["state"] not in allowed[send]:
            when = f" until {now['ready_at_utc']}" if "ready_at_utc" in now else ""
            raise UserError(
                f"--send {send}: the operation {p.operation_id.hex()[:10]}... is "
                f"{now['state']}{when}; a {send} needs it {' or '.join(allowed[send])}"
            )
        sender = resolve_account(account, network.name, 0)
        data = {
            "schedule": p.schedule_calldata,
            "execute": p.execute_calldata,
            "cancel": p.cancel_calldata,
        }
        sender.transfer(tl, 0, data=data[send])
    out = {"call": f"{contract}.{function}({', '.join(args)})", **p.as_transactions(tl.address)}
    out["status"] = state(tl, p.operation_id)
    click.echo(json.dumps(out, indent=2))
