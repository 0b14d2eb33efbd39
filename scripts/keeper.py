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

import click
from ape import chain, project

from offchain.keeper.logfmt import configure_logging, log_event, stamp_handlers
from offchain.keeper.service import (
    SOURCES,
    KeeperOptions,
    build_source,
    check_options,
    open_deployment,
    open_service_keeper,
)
from offchain.keeper.shutdown import Shutdown
from scripts import _anvil
from scripts._common import ScriptCommand, resolve_account


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
@click.option(
    "--steps-per-day",
    default=KeeperOptions.steps_per_day,
    show_default=True,
    help="csv: intraday steps",
)
@click.option("--seed", default=KeeperOptions.seed, show_default=True, help="sim: random seed")
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
@click.option("--state-dir", default=KeeperOptions.state_dir, show_default=True)
@click.option("--confirmations", default=None, type=int, help="default 1 local, 2 otherwise")
@click.option(
    "--threshold", default=KeeperOptions.threshold, show_default=True, help="relative move to post"
)
@click.option(
    "--heartbeat",
    default=KeeperOptions.heartbeat,
    show_default=True,
    help="seconds (< oracle max_age)",
)
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
    options = KeeperOptions(
        deployment=deployment,
        source=source,
        start=start,
        end=end,
        steps_per_day=steps_per_day,
        seed=seed,
        file=file_,
        url=url,
        feeds=tuple(feeds),
        warp=warp,
        state_dir=state_dir,
        confirmations=confirmations,
        threshold=threshold,
        heartbeat=heartbeat,
        dry_run=dry_run,
    )
    check_options(options, name)
    c = open_deployment(project, chain, name, deployment)
    src = build_source(options, c, chain)
    signer = None if dry_run else signing_account(account, name)
    runner = open_service_keeper(c, signer, options, name, src)
    reason = "source_exhausted"
    with Shutdown(stop_grace) as shutdown:
        try:
            done = shutdown.run(runner.run, src, rounds, idle_sleep=interval, stop=shutdown.event)
        finally:
            runner.close()
        if shutdown.signal_name is not None:
            reason = shutdown.signal_name
        elif rounds is not None and done is not None and done >= rounds:
            reason = "rounds_done"
        log_event(_log, logging.INFO, "stopped", reason=reason, **runner.totals)
