"""What every way of starting the keeper shares: its options (``KeeperOptions``, from the
command line of ``ape run keeper`` or the ``KEEPER_*`` environment of the Silverback bot),
the deployment it serves (``open_deployment``), the market data source (``build_source``) and
one round with the numbers an operator watches (``KeeperService.step``).

``ape run keeper`` (``scripts/keeper.py``) loops over the source with ``KeeperRunner.run``;
the Silverback bot (``offchain/keeper/bot.py``) calls ``KeeperService.step`` from its block or
cron handler and hands the returned metrics to Silverback.

Every problem with an option, the deployment file or the node is a ``ServiceError`` whose
message is one line: what is wrong and how to fix it.
"""

from __future__ import annotations

import difflib
import logging
import math
import os
import threading
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

from offchain.errors import UserError
from offchain.keeper.logfmt import log_event
from offchain.keeper.replay import ShiftedSource
from offchain.keeper.sources import (
    AggregatorV3Source,
    CsvReplaySource,
    HttpJsonSource,
    JsonFileSource,
    SimulatedSource,
    SimulationConfig,
    SourceError,
    Tick,
)
from offchain.sdk.deploy import is_local_network

__all__ = [
    "SOURCES",
    "ClockWarp",
    "KeeperOptions",
    "KeeperService",
    "ServiceError",
    "build_source",
    "check_days",
    "check_options",
    "default_deployment_path",
    "oldest_data_age",
    "open_deployment",
    "open_service_keeper",
    "replay_psr",
    "round_metrics",
]

_log = logging.getLogger(__name__)

REPO = Path(__file__).resolve().parents[2]
SOURCES = ("csv", "sim", "json", "http", "feed")
DAY = 86_400
ENV_PREFIX = "KEEPER_"
CSV_START, CSV_END = "2020-03-10", "2020-03-14"  # the csv source's days by default: the crash


class ServiceError(UserError, ValueError):
    """A bad option, deployment file or node: the message is the one line to show."""


@dataclass(frozen=True)
class KeeperOptions:
    """Everything an operator chooses about a keeper (the ``ape run keeper`` options; the bot
    reads them from ``KEEPER_<NAME>`` environment variables, e.g. ``KEEPER_SOURCE=http``).

    ``offset`` (csv only) moves the replayed history by that many seconds; without it the
    replay starts a minute after the chain's clock, rounded to whole days, which differs on
    every start, so a replay that must survive restarts names its offset."""

    deployment: str | None = None
    source: str | None = None
    start: str | None = None
    end: str | None = None
    steps_per_day: int = 4
    offset: int | None = None
    seed: int = 1
    file: str | None = None
    url: str | None = None
    feeds: tuple[str, ...] = ()
    warp: bool = False
    state_dir: str = str(REPO / "keeper-state")
    confirmations: int | None = None
    threshold: float = 0.002
    heartbeat: int = 600
    dry_run: bool = False
    cron: str | None = None  # the bot: a cron schedule drives rounds instead of new blocks
    metrics_host: str = "127.0.0.1"  # the bot's Prometheus endpoint (offchain.keeper.metrics)
    metrics_port: int = 9101

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> KeeperOptions:
        """The options named by ``KEEPER_*`` variables; an unknown name or a value of the wrong
        type is a ``ServiceError`` naming the variable (and the closest known name)."""
        environ = os.environ if environ is None else environ
        known = {f.name: f for f in fields(cls)}
        values: dict[str, Any] = {}
        for var, text in sorted(environ.items()):
            if not var.startswith(ENV_PREFIX):
                continue
            name = var[len(ENV_PREFIX) :].lower()
            if name not in known:
                names = [ENV_PREFIX + n.upper() for n in known]
                close = difflib.get_close_matches(var, names, n=1)
                hint = f"did you mean {close[0]}?" if close else f"known: {', '.join(names)}"
                raise ServiceError(f"unknown environment variable {var}: {hint}")
            values[name] = _parse(var, known[name].type, text)
        return cls(**values)


def _parse(var: str, kind: Any, text: str) -> Any:
    """``text`` as the field's type (``int``, ``float``, ``bool``, ``str``, a comma list)."""
    kind = str(kind)
    text = text.strip()
    if "None" in kind and text == "":
        return None
    try:
        if kind.startswith("int"):
            return int(text)
        if kind.startswith("float"):
            value = float(text)
            if not math.isfinite(value):
                raise ValueError(text)
            return value
    except ValueError:
        raise ServiceError(f"{var}={text!r} is not a number: give e.g. {var}=2") from None
    if kind == "bool":
        if text.lower() in ("1", "true", "yes", "on"):
            return True
        if text.lower() in ("0", "false", "no", "off", ""):
            return False
        raise ServiceError(f"{var}={text!r} is not a yes/no value: give {var}=1 or {var}=0")
    if kind.startswith("tuple"):
        return tuple(part.strip() for part in text.split(",") if part.strip())
    return text


def check_days(start: str | None, end: str | None) -> None:
    """``--start``/``--end`` of a csv replay: ISO dates, in order."""
    for option, day in (("--start", start), ("--end", end)):
        if day is not None:
            try:
                date.fromisoformat(day)
            except ValueError:
                raise ServiceError(f"{option} {day}: not a date (YYYY-MM-DD)") from None
    if start and end and start > end:
        raise ServiceError(f"--start {start} is after --end {end}: swap them")


def check_options(options: KeeperOptions, network_name: str) -> None:
    """Refuse, before anything is opened or sent, options that cannot work on this network.
    Each message names the command-line option; the bot's variable is ``KEEPER_<OPTION>``."""
    local = is_local_network(network_name)
    o = options
    if o.source is None and not local:
        raise ServiceError(
            f"--source is required on {network_name}: one of {', '.join(SOURCES)} "
            "(only local networks default to simulated prices)"
        )
    if o.source is not None and o.source not in SOURCES:
        raise ServiceError(f"--source {o.source}: choose one of {', '.join(SOURCES)}")
    kind = o.source or "sim"
    needs = {"json": ("--file", o.file), "http": ("--url", o.url), "feed": ("--feed", o.feeds)}
    examples = {"--file": "ticks.json", "--url": "https://...", "--feed": "BTC=0x..."}
    for source, (option, value) in needs.items():
        if source == kind and not value:
            raise ServiceError(
                f"--source {source} needs {option} (for example {option} {examples[option]})"
            )
        if source != kind and value:
            raise ServiceError(f"{option} goes with --source {source}, not --source {kind}")
    if (o.start or o.end or o.offset is not None) and kind != "csv":
        raise ServiceError(f"--start/--end/--offset go with --source csv, not --source {kind}")
    if o.file and not Path(o.file).is_file():
        raise ServiceError(f"--file {o.file}: no such file")
    if o.url and not o.url.startswith(("http://", "https://")):
        raise ServiceError(f"--url {o.url}: not an http(s) URL")
    for pair in o.feeds:
        und, _, addr = pair.partition("=")
        if not und or not (addr.startswith("0x") and len(addr) == 42):
            raise ServiceError(f"--feed {pair}: expected UNDERLYING=0xADDRESS (e.g. BTC=0x5f4e...)")
    check_days(o.start, o.end)
    if o.warp and not local:
        raise ServiceError(f"--warp moves the clock of a local node only, not {network_name}'s")
    if o.steps_per_day < 1:
        raise ServiceError(f"--steps-per-day {o.steps_per_day}: give 1 or more")
    if o.heartbeat <= 0 or not 0 < o.threshold < 1:
        raise ServiceError("--heartbeat must be positive seconds and --threshold within (0, 1)")
    if o.confirmations is not None and o.confirmations < 1:
        raise ServiceError(f"--confirmations {o.confirmations}: give 1 or more")
    if not 0 < o.metrics_port < 65_536:
        raise ServiceError(f"metrics port {o.metrics_port} is not a TCP port: give 1-65535")
    if o.cron is not None and len(o.cron.split()) != 5:
        raise ServiceError(f"cron schedule {o.cron!r} needs 5 fields, e.g. '* * * * *'")


def default_deployment_path(network_name: str) -> Path:
    """``deployments/<network>.json`` in the checkout."""
    return REPO / "deployments" / f"{network_name}.json"


def open_deployment(project: Any, chain: Any, network_name: str, path: str | None = None) -> Any:
    """The SDK client of the deployment in ``path`` (default ``deployments/<network>.json``),
    after checking that its oracle is on the connected node."""
    from offchain.sdk import Client

    file = Path(path) if path else default_deployment_path(network_name)
    if not file.is_file():
        raise ServiceError(f"{file} not found: run `ape run deploy` on {network_name} first")
    try:
        client = Client.connect(project, chain, file)
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceError(f"{file} is not a deployment file ({exc}): deploy again") from None
    if not chain.provider.get_code(client.deployment.oracle):
        raise ServiceError(
            f"no RiskOracle at {client.deployment.oracle} on {network_name}: {file} belongs to "
            "another node (a local node started by Ape is new on every run; see docs/deploy.md)"
        )
    return client


def build_source(options: KeeperOptions, client: Any, chain: Any) -> Any:
    """The market data source ``options`` name (``sim`` when none is named, local only), on
    the clock of ``chain`` (Ape's chain manager); with ``warp``, the node's clock follows it."""
    unds = sorted(client.deployment.underlyings)
    head_ts = int(chain.blocks.head.timestamp)
    kind = options.source or "sim"
    try:
        if kind == "csv":
            start, end = options.start or CSV_START, options.end or CSV_END

            def replay() -> CsvReplaySource:
                return CsvReplaySource(unds, start, end, options.steps_per_day)

            offset = options.offset
            if offset is None:
                first = replay().next_tick()
                offset = math.ceil((head_ts + 60 - first.timestamp) / DAY) * DAY
            source: Any = ShiftedSource(replay(), offset)
        elif kind == "sim":
            source = SimulatedSource(SimulationConfig(start=head_ts + 1), options.seed)
        elif kind == "json":
            source = JsonFileSource(options.file)
        elif kind == "http":
            source = HttpJsonSource(options.url)
        else:
            pairs = dict(f.split("=", 1) for f in options.feeds)
            source = AggregatorV3Source(chain.provider.web3, pairs)
    except (ValueError, SourceError) as exc:
        raise ServiceError(f"{kind} source: {exc}") from None
    return ClockWarp(source, chain) if options.warp else source


def open_service_keeper(
    client: Any, account: Any, options: KeeperOptions, network_name: str, source: Any
) -> Any:
    """``open_keeper`` with the options' thresholds, state folder and confirmations (1 on a
    local network, 2 elsewhere, unless given), and a replay's PSR (``replay_psr``)."""
    from offchain.keeper.config import KeeperConfig
    from offchain.keeper.runner import open_keeper
    from offchain.keeper.tx import TxConfig

    local = is_local_network(network_name)
    confirmations = options.confirmations or (1 if local else 2)
    return open_keeper(
        client,
        account,
        options.state_dir,
        cfg=KeeperConfig(threshold=options.threshold, heartbeat=options.heartbeat),
        tx_config=TxConfig(confirmations=confirmations, poll_interval=0.05 if local else 1.0),
        psr=replay_psr(source, client, options),
        dry_run=options.dry_run,
    )


def replay_psr(source: Any, client: Any, options: KeeperOptions) -> Any:
    """The PSR for a replay moved onto a later clock (``ShiftedSource``): calibrated on the
    history as known at each tick's real date, up to the replay's last day. None (the keeper's
    default) for other sources."""
    from offchain.keeper.replay import CalibratedPsr

    if isinstance(source, ClockWarp):
        source = source.source
    if not isinstance(source, ShiftedSource):
        return None
    end = date.fromisoformat(options.end or CSV_END)
    until = int(datetime(end.year, end.month, end.day, tzinfo=UTC).timestamp()) + 2 * DAY
    names = sorted(client.deployment.underlyings)
    return CalibratedPsr(names, time_offset=source.offset, until=until)


class ClockWarp:
    """Local networks only: move the node's clock to each tick before its round."""

    def __init__(self, source: Any, chain: Any) -> None:
        self.source = source
        self.chain = chain

    def next_tick(self) -> Tick | None:
        tick = self.source.next_tick()
        if tick is not None and tick.timestamp > self.chain.blocks.head.timestamp:
            self.chain.mine(timestamp=tick.timestamp)
        return tick


def oldest_data_age(runner: Any, head_ts: int) -> int | None:
    """Seconds from the oldest risk data the keeper relies on (the oracle's posting timestamp of
    each live, posted instrument in the last market it read) to ``head_ts``; None before any."""
    market = runner.last_market
    if market is None:
        return None
    expiry = {m.id: m.expiry for m in runner.instruments}
    stamps = [
        market.timestamps[i]
        for i in market.market.instruments
        if expiry.get(i, 0) > head_ts and i in market.timestamps
    ]
    return head_ts - min(stamps) if stamps else None


def round_metrics(report: Any, data_age: int | None) -> dict[str, int | float]:
    """The numbers of one round an operator watches (what Silverback records per handler)."""
    metrics: dict[str, int | float] = {
        "posts": len(report.posted),
        "batches": report.batches,
        "transactions": report.transactions,
        "gas": report.gas_used,
        "accounts": len(report.health),
        "below_mm": len(report.below_mm),
        "liquidations": len(report.liquidations),
        "settlement_prices": len(report.settlement_prices),
        "settlements": len(report.settled),
        "data_ts": report.ts,
        "round_seconds": round(report.seconds, 4),
    }
    if data_age is not None:
        metrics["data_age"] = data_age
    return metrics


@dataclass
class KeeperService:
    """One keeper (``KeeperRunner``) and its source, stepped one round at a time.

    A step asks the source for a tick and runs ``runner.try_round`` on it. When the source has
    nothing new, the round runs on the last tick again: nothing is posted (its timestamp is not
    newer), but new accounts are indexed, expired instruments settled and every account swept.
    Ticks not newer than the last posted round are passed over (a finite replay restarted after
    a crash resumes where it stopped). ``step`` is safe to call from several threads: a call
    made while a round runs returns None at once."""

    runner: Any
    source: Any
    head: Any  # () -> (block number, timestamp) of the latest block
    last_tick: Tick | None = None
    rounds: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def step(self) -> dict[str, int | float] | None:
        if not self._lock.acquire(blocking=False):
            return None
        try:
            return self._step()
        finally:
            self._lock.release()

    def _step(self) -> dict[str, int | float]:
        t0 = time.monotonic()
        try:
            tick = self._next_new_tick()
        except SourceError as exc:
            log_event(_log, logging.WARNING, "round_skipped", cause="source", error=str(exc))
            return self._idle("source_errors", t0)
        if tick is None:
            if self.last_tick is None:
                return self._idle("idle", t0)
            tick = self.last_tick
        self.last_tick = tick
        report = self.runner.try_round(tick)
        if report is None:
            return self._idle("failed_rounds", t0)
        self.rounds += 1
        return round_metrics(report, oldest_data_age(self.runner, self.head()[1]))

    def _next_new_tick(self) -> Tick | None:
        """The source's next tick newer than what is done; a round interrupted by a crash is
        not done, and its own tick comes again (its plan resumes with the same spots)."""
        state = self.runner.runner_state
        done = state.last_ts if state.plan is None else state.plan.ts - 1
        while True:
            tick = self.source.next_tick()
            if tick is None or tick.timestamp > done:
                return tick

    def _idle(self, counter: str, t0: float) -> dict[str, int | float]:
        """A step without a round: the counter that says why, and the data's age."""
        metrics: dict[str, int | float] = {counter: 1, "round_seconds": time.monotonic() - t0}
        age = oldest_data_age(self.runner, self.head()[1])
        if age is not None:
            metrics["data_age"] = age
        return metrics

    def close(self) -> None:
        """Release the keeper's state (its lock); waits for a round in progress to end."""
        with self._lock:
            self.runner.close()
