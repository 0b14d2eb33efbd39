"""``ape run demo`` (``make demo``): the March 2020 crash replayed through the whole system.

Deploys on anvil, opens 27 traders' books and 4 market makers on BTC and ETH, replays BTC and ETH
from the daily history in ``data/`` with the keeper posting, liquidating and settling, shows a
live table and writes ``out/demo/report.md`` with charts and a solvency check
(``scripts/_demo.py`` tells the story; ``offchain.demo_report`` and ``offchain.solvency`` write
the report and audit the books).

    ape run demo               # full: 2020-03-09 .. 2020-03-28, 4 steps a day
    ape run demo --short       # CI: 13 traders, 2020-03-10 .. 2020-03-14
"""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

import click
from ape.logging import LogLevel, logger

from offchain.demo_report import closing_lines, write_report
from offchain.errors import UserError
from offchain.keeper.service import check_days
from scripts import _anvil
from scripts._common import REPO, ScriptCommand
from scripts._demo import DemoOptions, run_demo

# anvil's native binary without --steps-tracing, which would grow it past 20 GB over a full replay
_anvil.install()
# The story, not Ape's `INFO: Confirmed 0x...` per transaction; warnings and errors still show
# (`-v INFO` brings the lines back).
logger.set_level(LogLevel.WARNING)
# pydantic-settings warns about a field of ape-vyper's own config at every compile: noise here
warnings.filterwarnings("ignore", message="Field 'import_remapping' has an incomplete definition")


@click.command(cls=ScriptCommand)
@click.option("--short", is_flag=True, help="CI mode: fewer accounts and days")
@click.option("--out", default=str(REPO / "out" / "demo"), show_default=True)
@click.option("--start", default=None, help="first replayed day (default 2020-03-09)")
@click.option("--end", default=None, help="last replayed day (default 2020-03-28)")
@click.option("--steps-per-day", default=4, show_default=True)
@click.option("--no-live", is_flag=True, help="no live table (plain log lines)")
def cli(network, short, out, start, end, steps_per_day, no_live):
    """Replay the March 2020 crash through deploy, keeper, liquidations and settlement."""
    if network.name != "local":
        raise UserError(
            f"the demo runs on the local network only, not {network.name}: drop --network"
        )
    check_days(start, end)
    if steps_per_day < 1:
        raise UserError(f"--steps-per-day {steps_per_day}: must be 1 or more")
    kw: dict[str, Any] = {"out": Path(out), "steps_per_day": steps_per_day, "live": not no_live}
    if start:
        kw["start"] = start
    if end:
        kw["end"] = end
    opts = DemoOptions.for_mode(short, **kw)
    run = run_demo(opts, say=click.echo)
    report = write_report(opts.out, run)
    for line in closing_lines(run):
        click.echo(line)
    click.echo(f"report: {report}")
    if not run.solvency.ok:
        raise SystemExit("solvency check failed (see the report)")
