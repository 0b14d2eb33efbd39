"""``ape run demo`` (``make demo``): the March 2020 crash replayed through the whole system.

Deploys on anvil, opens 24 traders' books and 4 market makers on BTC and ETH, replays BTC and ETH
from the daily history in ``data/`` with the keeper posting, liquidating and settling, shows a
live table and writes ``out/demo/report.md`` with charts and a solvency check
(``scripts/_demo.py`` does the work; Ape loads script files outside the module system, so the
dataclasses live there).

    ape run demo               # full: 2020-03-09 .. 2020-03-28, 4 steps a day
    ape run demo --short       # CI: 10 traders, 2020-03-10 .. 2020-03-14
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import click
from ape.cli import ConnectedProviderCommand

from offchain.fixed_point import WAD
from scripts import _anvil
from scripts._common import REPO
from scripts._demo import DemoOptions, run_demo

# Ape's anvil records every EVM step in memory (--steps-tracing); a full replay of keeper posts
# grows it past 20 GB. The project's patch (scripts/_anvil.py) starts it without.
_anvil.install()


@click.command(cls=ConnectedProviderCommand)
@click.option("--short", is_flag=True, help="CI mode: fewer accounts and days")
@click.option("--out", default=str(REPO / "out" / "demo"), show_default=True)
@click.option("--start", default=None, help="first replayed day (default 2020-03-09)")
@click.option("--end", default=None, help="last replayed day (default 2020-03-28)")
@click.option("--steps-per-day", default=4, show_default=True)
@click.option("--no-live", is_flag=True, help="no live table (plain log lines)")
def cli(network, short, out, start, end, steps_per_day, no_live):
    """Replay the March 2020 crash through deploy, keeper, liquidations and settlement."""
    if network.name != "local":
        raise SystemExit("the demo runs on the local network (anvil) only")
    kw: dict[str, Any] = {"out": Path(out), "steps_per_day": steps_per_day, "live": not no_live}
    if start:
        kw["start"] = start
    if end:
        kw["end"] = end
    r = run_demo(DemoOptions.for_mode(short, **kw), say=click.echo)
    s = r.solvency
    click.echo(
        f"{r.rounds} rounds, {r.posts} posts in {r.batches} batches ({r.transactions} keeper "
        f"transactions), gas {r.gas:,}, {r.liquidations} liquidations, {r.settlements} "
        f"settlements, bad debt {s.bad_debt_total / WAD:,.2f} USD ({s.bad_debt / WAD:,.2f} "
        f"uncovered); {r.total_seconds:.0f} s. Report: {r.report}"
    )
    if not s.ok:
        raise SystemExit("solvency check failed (see the report)")
