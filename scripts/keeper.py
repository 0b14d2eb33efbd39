"""``ape run keeper``: run the keeper against a deployment (``deployments/<network>.json``).

    ape run keeper --dry-run --rounds 1             # what would be posted; sends nothing
    ape run keeper --source sim --rounds 24 --warp  # local: simulated hours, clock follows
    ape run keeper --source csv --start 2020-03-10 --end 2020-03-14 --warp
    ape run keeper --network ethereum:sepolia:node --account keeper --source http \\
        --url https://example.org/ticks.json --interval 30

Sources: ``csv`` (the history in ``data/``, timestamps shifted to the chain's clock), ``sim``
(seeded GARCH + jumps starting now), ``json`` (a file of ticks), ``http`` (polled URL), ``feed``
(Chainlink-style AggregatorV3 feeds, ``--feed BTC=0x... --feed ETH=0x...``).
``--source`` is required off local networks (a forgotten one never means simulated prices
there); local networks default to ``sim``.

Logs go to stderr, one line per event with its UTC time and level
(``2026-12-02T11:20:00Z INFO event=round posted=... gas=...``). SIGTERM or SIGINT lets the round
under way finish (abandoned after ``--stop-grace`` seconds or at a second signal, its plan kept on
disk), then one ``event=stopped`` line gives the totals and the exit code is 0.
"""

from __future__ import annotations

import logging
import math
from pathlib import Path

import click
from ape import chain, project
from eth_utils import is_hex_address

from offchain.errors import UserError
from offchain.keeper.config import KeeperConfig
from offchain.keeper.logfmt import configure_logging, log_event, stamp_handlers
from offchain.keeper.replay import ShiftedSource
from offchain.keeper.runner import open_keeper
from offchain.keeper.shutdown import Shutdown
from offchain.keeper.sources import (
    AggregatorV3Source,
    CsvReplaySource,
    HttpJsonSource,
    JsonFileSource,
    SimulatedSource,
    SimulationConfig,
)
from offchain.keeper.tx import TxConfig
from offchain.sdk import Client
from scripts import _anvil
from scripts._common import (
    LOCAL_NETWORKS,
    REPO,
    ScriptCommand,
    check_days,
    deployment_path,
    is_local_network,
    resolve_account,
)


def signing_account(alias, network_name):
    """The keeper's Ape account (``resolve_account``: ``ape.accounts.load(alias)``, any account
    plugin; test account 1 on a local network without ``--account``), ready to sign unattended
    (``unattended``)."""
    return unattended(resolve_account(alias, network_name, 1))


def unattended(account):
    """``account`` with autosign on when it asks before each signature (a keyfile account):
    Ape unlocks it once with ``APE_ACCOUNTS_<alias>_PASSPHRASE`` or a passphrase prompt. The
    key stays inside the account; the keeper only ever sees signed transactions. A passphrase
    that does not unlock it is a usage error naming the variable."""
    from ape.exceptions import AccountsError

    set_autosign = getattr(account, "set_autosign", None)
    if set_autosign is None:
        return account
    variable = f"APE_ACCOUNTS_{account.alias}_PASSPHRASE"
    try:
        set_autosign(True)
    except AccountsError as exc:
        raise click.BadParameter(
            f"cannot unlock {account.alias}: {exc}; set {variable} to its passphrase or type it "
            "when asked",
            param_hint="--account",
        ) from None
    except click.Abort:  # the prompt met the end of stdin: a service has no terminal
        raise click.BadParameter(
            f"cannot unlock {account.alias}: no passphrase given; set {variable} (a service has "
            "no terminal to ask on)",
            param_hint="--account",
        ) from None
    return account


_log = logging.getLogger("offchain.keeper.service")


class _Warp:
    """Local networks only: move anvil's clock to each tick before its round."""

    def __init__(self, source):
        self.source = source

    def next_tick(self):
        tick = self.source.next_tick()
        if tick is not None and tick.timestamp > chain.blocks.head.timestamp:
            chain.mine(timestamp=tick.timestamp)
        return tick


def make_source(kind, runner_chain, start, end, steps_per_day, seed, file, url, feeds, w3):
    """The market data source named on the command line."""
    unds = sorted(runner_chain.deployment.underlyings)
    now = chain.blocks.head.timestamp
    if kind == "csv":
        replay = CsvReplaySource(unds, start or "2020-03-10", end or "2020-03-14", steps_per_day)
        first = replay.next_tick()
        offset = math.ceil((now + 60 - first.timestamp) / 86_400) * 86_400
        replay = CsvReplaySource(unds, start or "2020-03-10", end or "2020-03-14", steps_per_day)
        return ShiftedSource(replay, offset)
    if kind == "sim":
        return SimulatedSource(SimulationConfig(start=now + 1), seed)
    if kind == "json":
        return JsonFileSource(file)
    if kind == "http":
        return HttpJsonSource(url)
    pairs = dict(f.split("=", 1) for f in feeds)
    return AggregatorV3Source(w3, pairs)


SOURCES = ("csv", "sim", "json", "http", "feed")


def check_source_options(
    network_name: str,
    source: str | None,
    *,
    file: str | None = None,
    url: str | None = None,
    feeds: tuple[str, ...] = (),
    start: str | None = None,
    end: str | None = None,
    warp: bool = False,
) -> str:
    """The source to use, after checking the options that go with it; a one-line
    ``UserError`` otherwise. Off local networks ``--source`` has no default: a forgotten one
    must not post simulated prices."""
    local = is_local_network(network_name)
    if source is None:
        if not local:
            raise UserError(
                f"--source is required on {network_name}: one of {', '.join(SOURCES)} "
                "(only local networks default to simulated prices)"
            )
        source = "sim"
    needs = {"json": ("--file", file), "http": ("--url", url), "feed": ("--feed", feeds)}
    for kind, (option, value) in needs.items():
        if kind == source and not value:
            example = {"--file": "ticks.json", "--url": "https://...", "--feed": "BTC=0x..."}
            raise UserError(
                f"--source {kind} needs {option} (for example {option} {example[option]})"
            )
        if kind != source and value:
            raise UserError(f"{option} goes with --source {kind}, not --source {source}")
    if (start or end) and source != "csv":
        raise UserError(f"--start/--end go with --source csv, not --source {source}")
    if file and not Path(file).is_file():
        raise UserError(f"--file {file}: no such file")
    if url and not url.startswith(("http://", "https://")):
        raise UserError(f"--url {url}: not an http(s) URL")
    for feed in feeds:
        name, _, addr = feed.partition("=")
        if not name or not is_hex_address(addr) or not addr.startswith("0x"):
            raise UserError(f"--feed {feed}: expected UNDERLYING=0xADDRESS (e.g. BTC=0x5f4e...)")
    check_days(start, end)
    if warp and not local:
        raise UserError(f"--warp moves the clock of a local node only, not {network_name}'s")
    return source


_anvil.install()  # local runs: Ape's anvil without --steps-tracing (see scripts/_anvil.py)


@click.command(cls=ScriptCommand)
@click.option("--deployment", default=None, help="default deployments/<network>.json")
@click.option("--account", default=None, help="keeper: `ape accounts` alias (local: TEST::1)")
@click.option("--dry-run", is_flag=True, help="compute and report, sign and save nothing")
@click.option(
    "--source",
    type=click.Choice(SOURCES),
    default=None,
    help="market data (required off local networks; local default: sim)",
)
@click.option("--rounds", type=int, default=None, help="stop after this many rounds")
@click.option("--start", default=None, help="csv: first day (YYYY-MM-DD)")
@click.option("--end", default=None, help="csv: last day")
@click.option("--steps-per-day", default=4, show_default=True, help="csv: intraday steps")
@click.option("--seed", default=1, show_default=True, help="sim: random seed")
@click.option("--file", "file_", default=None, help="json: file of ticks")
@click.option("--url", default=None, help="http: URL of ticks")
@click.option("--feed", "feeds", multiple=True, help="feed: UNDERLYING=aggregator address")
@click.option(
    "--interval",
    default=0.0,
    show_default=True,
    help="seconds to wait when the source has nothing new (0: stop)",
)
@click.option("--warp", is_flag=True, help="local only: move anvil's clock to each tick")
@click.option("--state-dir", default=str(REPO / "keeper-state"), show_default=True)
@click.option("--confirmations", default=None, type=int, help="default 1 local, 2 otherwise")
@click.option("--threshold", default=0.002, show_default=True, help="relative move to post")
@click.option("--heartbeat", default=600, show_default=True, help="seconds (< oracle max_age)")
@click.option(
    "--stop-grace",
    type=click.FloatRange(min=0),
    default=30.0,
    show_default=True,
    help="seconds a round may take to finish after SIGTERM/SIGINT before it is abandoned",
)
def cli(
    network,
    deployment,
    account,
    dry_run,
    source,
    rounds,
    start,
    end,
    steps_per_day,
    seed,
    file_,
    url,
    feeds,
    interval,
    warp,
    state_dir,
    confirmations,
    threshold,
    heartbeat,
    stop_grace,
):
    """Post risk arrays, watch every account's margin, liquidate, settle."""
    configure_logging(logging.INFO)
    stamp_handlers("ape")
    name = network.name
    local = name in LOCAL_NETWORKS
    source = check_source_options(
        name, source, file=file_, url=url, feeds=feeds, start=start, end=end, warp=warp
    )
    path = Path(deployment) if deployment else deployment_path(name)
    if not path.exists():
        raise UserError(f"{path} not found: run `ape run deploy` on {name} first")
    c = Client.connect(project, chain, path)
    if not chain.provider.get_code(c.deployment.oracle):
        raise UserError(
            f"no RiskOracle at {c.deployment.oracle} on {name}: {path} belongs to another node "
            "(a local node started by Ape is new on every run; see docs/deploy.md)"
        )
    signer = None if dry_run else signing_account(account, name)
    if confirmations is None:
        confirmations = 1 if local else 2
    runner = open_keeper(
        c,
        signer,
        state_dir,
        cfg=KeeperConfig(threshold=threshold, heartbeat=heartbeat),
        tx_config=TxConfig(confirmations=confirmations, poll_interval=0.05 if local else 1.0),
        dry_run=dry_run,
    )
    reason = "source_exhausted"
    with Shutdown(stop_grace) as shutdown:
        try:
            src = make_source(
                source, c, start, end, steps_per_day, seed, file_, url, feeds, runner.w3
            )
            if warp:  # local only (check_source_options)
                src = _Warp(src)
            done = shutdown.run(runner.run, src, rounds, idle_sleep=interval, stop=shutdown.event)
        finally:
            runner.close()
        if shutdown.signal_name is not None:
            reason = shutdown.signal_name
        elif rounds is not None and done is not None and done >= rounds:
            reason = "rounds_done"
        log_event(_log, logging.INFO, "stopped", reason=reason, **runner.totals)
