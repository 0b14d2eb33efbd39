"""``ape run keeper``: run the keeper against a deployment (``deployments/<network>.json``).

    ape run keeper --dry-run --rounds 1             # what would be posted; sends nothing
    ape run keeper --source sim --rounds 24 --warp  # local: simulated hours, clock follows
    ape run keeper --source csv --start 2020-03-10 --end 2020-03-14 --warp
    ape run keeper --network ethereum:sepolia:node --account keeper --source http \\
        --url https://example.org/ticks.json --interval 30

Sources: ``csv`` (the history in ``data/``, timestamps shifted to the chain's clock), ``sim``
(seeded GARCH + jumps starting now), ``json`` (a file of ticks), ``http`` (polled URL), ``feed``
(Chainlink-style AggregatorV3 feeds, ``--feed BTC=0x... --feed ETH=0x...``). Logs are one line
per event (``event=round posted=... gas=...``). ``--source`` is required off local networks
(a forgotten one never means simulated prices there); local networks default to ``sim``.
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
from offchain.keeper.replay import ShiftedSource
from offchain.keeper.runner import open_keeper
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
    private_key,
    resolve_account,
)


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
):
    """Post risk arrays, watch every account's margin, liquidate, settle."""
    logging.basicConfig(level=logging.INFO, format="%(message)s")
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
    key = None if dry_run else private_key(resolve_account(account, name, 1))
    if confirmations is None:
        confirmations = 1 if local else 2
    runner = open_keeper(
        c,
        key,
        state_dir,
        cfg=KeeperConfig(threshold=threshold, heartbeat=heartbeat),
        tx_config=TxConfig(confirmations=confirmations, poll_interval=0.05 if local else 1.0),
        dry_run=dry_run,
    )
    try:
        src = make_source(source, c, start, end, steps_per_day, seed, file_, url, feeds, runner.w3)
        if warp:  # local only (check_source_options)
            src = _Warp(src)
        done = runner.run(src, rounds, idle_sleep=interval)
    finally:
        runner.close()
    t = runner.totals
    click.echo(
        f"{done} rounds: {t['posts']} items posted in {t['batches']} transactions, gas "
        f"{t['gas']:,}, {t['liquidations']} liquidations, {t['settlement_prices']} settlement "
        f"prices, {t['settlements']} settlements"
    )
