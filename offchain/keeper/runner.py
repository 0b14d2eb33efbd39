"""The keeper loop (``docs/keeper.md``): ``KeeperRunner`` only orchestrates; what to quote and post
(``quotes``), whom to liquidate and what to settle (``policy``) are plain functions, and every
action leaves through one ``Sender`` (``senders``: signing, or a dry run that changes nothing).

One round for a tick of market data:

1. ``quotes.compute_quotes``: marks and SPAN risk arrays of every live instrument (vectorised
   Black-76 over the scenario grid) with the PSR in force, as WAD integers ready for
   ``RiskOracle.post``; ``quotes.plan_round`` picks what moved beyond the threshold or nears its
   heartbeat and splits it into gas-bounded batches within the oracle's per-call limits.
   ``keeper.funding.funding_posts``: the hourly funding rate of every perp (from the premium of
   its model mark over the spot, before the oracle's per-post caps), posted first, as one
   ``RiskOracle.post_funding`` with the key ``funding:<ts>``, when it changed or its heartbeat
   is due.
2. The plan is written ahead (``runner_state.RunnerStore``, a view on the state database), then
   each batch is sent with the key ``post:<ts>:<k>`` and awaited; confirmed names become
   ``state.posted``.
3. The account index is extended from the engine's events since ``state.last_block``; changed
   accounts are re-read.
4. ``policy.settlements_to_trigger`` are settled on-chain (``RiskOracle.settle_expired``: the
   price is the payoff at the TWAP of the spot before expiry; step 1 posts the spot after
   expiry it needs, ``policy.spots_for_settlement``) and ``policy.settlements_due`` settled; the
   market and the settled accounts are read again.
5. Every account that can be below MM is checked off-chain (``sweep.sweep_health``: a float
   pass over the position book, the integer reference wherever the float answer is within its
   error bound of zero or below it), and ``policy.liquidation_targets`` are liquidated, worst
   first.
6. Final ledger records past the horizon are pruned (``TxManager.prune``), so the ledger stays
   bounded however long the keeper runs.

Once the oracle is wound down (``RiskOracle.wind_down``, the escape hatch) nothing more can be
posted: the keeper logs one ``wound_down`` line, drops any plan in flight and stops posting for
good, and keeps settling (every instrument then reads as settled at its last mark) and
liquidating insolvent accounts on the last data.

A market data source that fails (``SourceError``: down, too slow, malformed) skips the round
with one ``round_skipped`` log line; the next tick proceeds.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from offchain.fixed_point import WAD
from offchain.keeper.config import KeeperConfig, UnderlyingInfo
from offchain.keeper.funding import PREFIX as FUNDING_PREFIX
from offchain.keeper.funding import funding_posts
from offchain.keeper.logfmt import log_event
from offchain.keeper.policy import (
    Posted,
    Quote,
    liquidation_targets,
    settlements_due,
    settlements_to_trigger,
    spots_for_settlement,
)
from offchain.keeper.quotes import batch_args, bound_quotes, compute_quotes, plan_round
from offchain.keeper.replay import CalibratedPsr
from offchain.keeper.runner_state import Batch, RoundPlan, RunnerStore
from offchain.keeper.senders import ChainSender, DryRunSender, Sender, Store
from offchain.keeper.sources import SourceError, Tick
from offchain.keeper.sweep import AccountsView, PositionBook, sweep_health
from offchain.keeper.tx import TxError
from offchain.margin import AccountInt
from offchain.params import margin_params
from offchain.sdk import ChainMarket, InstrumentMeta

__all__ = [
    "KeeperChain",
    "KeeperRunner",
    "RoundReport",
    "deployment_folder",
    "keeper_underlyings",
    "open_keeper",
]

_log = logging.getLogger(__name__)

DEFAULTS = KeeperConfig()
# cash, positions, collateral, variation-margin basis
RawAccount = tuple[int, dict[int, int], dict[str, int], int]


class KeeperChain(Protocol):
    """What the runner reads and encodes through the SDK client (``offchain.sdk.Client``)."""

    deployment: Any
    oracle: Any
    engine: Any
    liquidator: Any
    chain_manager: Any

    def listed_instruments(self) -> list[InstrumentMeta]: ...

    def accounts_touched(self, start_block: int, stop_block: int) -> set[str]: ...

    def account_raw(self, account: str) -> RawAccount: ...

    def market_int(self, instruments: Sequence[int]) -> ChainMarket: ...

    def wound_down(self) -> bool: ...

    def post_calldata(self, *args: Any) -> bytes: ...

    def post_funding_calldata(self, posts: Sequence[tuple[int, int]]) -> bytes: ...

    def settle_expired_calldata(self, instrument: int) -> bytes: ...

    def spot_timestamp(self, underlying: int) -> int: ...

    def settle_calldata(self, account: str) -> bytes: ...

    def liquidate_calldata(self, account: str) -> bytes: ...

    def register_calldata(self, account: str) -> bytes: ...


@dataclass
class RoundReport:
    """What one round did (the demo's table and the tests read it)."""

    ts: int
    posted: list[str] = field(default_factory=list)
    batches: int = 0
    rejected: list[str] = field(default_factory=list)  # batch keys the chain refused
    gas_used: int = 0
    transactions: int = 0
    health: Mapping[str, tuple[int, int, int]] = field(default_factory=dict)
    below_mm: list[str] = field(default_factory=list)
    liquidations: list[str] = field(default_factory=list)
    settlement_prices: list[str] = field(default_factory=list)  # settle_expired confirmed
    settled: list[tuple[str, str]] = field(default_factory=list)
    funding: dict[str, int] = field(default_factory=dict)  # underlying -> hourly rate posted
    seconds: float = 0.0


class KeeperRunner:
    """Wires a market data tick, the decisions, the chain client and a ``Sender``.

    ``state_store`` (a ``StateStore``) saves ``state`` (the ``KeeperState`` whose ledger
    ``TxManager`` keeps); ``runner_store`` (its ``runner_store()`` view) holds the account index
    and the round plan in flight. Both are written through ``sender.save``, so a
    ``DryRunSender`` leaves them untouched.
    """

    def __init__(
        self,
        chain: KeeperChain,
        sender: Sender,
        state_store: Store | None,
        state: Any,
        runner_store: RunnerStore,
        underlyings: Sequence[UnderlyingInfo],
        psr: Callable[[str, int], float],
        cfg: KeeperConfig = DEFAULTS,
        *,
        w3: Any = None,
        liquidate: bool = True,
    ) -> None:
        self.chain = chain
        self.sender = sender
        self.state_store = state_store
        self.state = state
        self.runner_store = runner_store
        self.runner_state = runner_store.load()
        self.underlyings = list(underlyings)
        self.psr = psr
        self.cfg = cfg
        self.w3 = w3
        self.liquidate = liquidate and getattr(chain, "liquidator", None) is not None
        self.instruments: list[InstrumentMeta] = []
        self.names: dict[int, str] = {}
        self.raw: dict[str, RawAccount] = {}
        self.accounts: Mapping[str, AccountInt] = {}
        self.book = PositionBook()  # the raw reads as arrays, for the health sweep
        self._stale: set[str] = set(self.runner_state.accounts)
        self.last_spots: dict[str, float] = {}
        self.last_market: ChainMarket | None = None
        self.wound_down = False  # the oracle's escape hatch was used: posting is over for good
        self.totals = {
            "rounds": 0,
            "posts": 0,
            "batches": 0,
            "transactions": 0,
            "gas": 0,
            "liquidations": 0,
            "settlement_prices": 0,
            "settlements": 0,
        }
        self._by_id = {u.id: u for u in self.underlyings}
        self.refresh_instruments()

    @property
    def address(self) -> str | None:
        """The keeper's account (its margin account takes liquidated positions)."""
        return self.sender.address

    @property
    def known_accounts(self) -> set[str]:
        """Every account the engine's events have named so far."""
        return set(self.runner_state.accounts)

    # ---------------------------------------------------------------- setup

    def close(self) -> None:
        """Close the state database and release its lock."""
        close = getattr(self.state_store, "close", None)
        if close is not None:
            close()

    def refresh_instruments(self) -> None:
        """Re-read the listed instruments from the oracle's events."""
        metas = self.chain.listed_instruments()
        names = {u.id: u.name for u in self.underlyings}
        self.instruments = [m for m in metas if m.underlying in self._by_id]
        self.names = {m.id: m.name(names) for m in self.instruments}

    # ---------------------------------------------------------------- one round

    def round(self, tick: Tick) -> RoundReport:
        """Post, index, settle, check health and liquidate for ``tick``."""
        t0 = time.monotonic()
        head_ts = self._head()["timestamp"]
        ts = min(int(tick.timestamp), int(head_ts))
        report = RoundReport(ts)
        self.last_spots.update(tick.spots)
        if not self._check_wound_down(ts):
            if self.runner_state.plan is not None:
                self._execute(self.runner_state.plan, report)
            if ts > self.runner_state.last_ts:
                self._post(tick, ts, report)
        self._index(report)
        market = self._market()
        # settle before the sweep: an expired leg is then cash, not a stale mark that makes
        # `liquidate` revert, and a book left unhedged by its settlement is seen this round
        if self._settle(market, head_ts, report):
            self._reread()
            market = self._market()
        raws = dict(self.raw)  # what this round's results read, whatever the next re-reads
        self.accounts = AccountsView(market, raws)
        sweep = sweep_health(market, self.book, raws)
        report.health, report.below_mm = sweep.health, sweep.below_mm
        for addr in report.below_mm:
            log_event(_log, logging.WARNING, "below_mm", account=addr, ts=ts)
        if self.liquidate:
            self._liquidate(
                liquidation_targets(report.below_mm, self.address, self._system_addresses()),
                ts,
                report,
            )
        if self.runner_state.plan is None:  # no key of an unfinished round is ever pruned
            self.sender.prune()
        report.seconds = time.monotonic() - t0
        self.totals["rounds"] += 1
        self.totals["posts"] += len(report.posted)
        self.totals["batches"] += report.batches
        self.totals["transactions"] += report.transactions
        self.totals["gas"] += report.gas_used
        self.totals["liquidations"] += len(report.liquidations)
        self.totals["settlement_prices"] += len(report.settlement_prices)
        self.totals["settlements"] += len(report.settled)
        log_event(
            _log,
            logging.INFO,
            "round",
            ts=ts,
            posted=len(report.posted),
            batches=report.batches,
            gas=report.gas_used,
            accounts=len(report.health),
            below_mm=len(report.below_mm),
            liquidated=len(report.liquidations),
            settled=len(report.settled),
            seconds=round(report.seconds, 3),
        )
        return report

    def run(
        self,
        source: Any,
        rounds: int | None = None,
        idle_sleep: float = 0.0,
        stop: threading.Event | None = None,
    ) -> int:
        """Rounds from ``source`` until it is exhausted (finite sources) or ``rounds`` done.

        A tick the source cannot deliver (``SourceError``) is a skipped round: one
        ``round_skipped`` log line, then a pause of ``idle_sleep`` but at least
        ``cfg.source_retry`` seconds before the source is asked again.

        ``stop`` (set from a signal handler, say) ends the loop before the next tick: a round
        under way finishes first, a pause is cut short."""
        done = 0
        while (rounds is None or done < rounds) and not (stop is not None and stop.is_set()):
            try:
                tick = source.next_tick()
            except SourceError as exc:
                log_event(_log, logging.WARNING, "round_skipped", cause="source", error=str(exc))
                done += 1
                if rounds is None or done < rounds:
                    _pause(max(idle_sleep, self.cfg.source_retry), stop)
                continue
            if tick is None:
                if idle_sleep <= 0:
                    break
                _pause(idle_sleep, stop)
                continue
            self.try_round(tick)
            done += 1
        return done

    def try_round(self, tick: Tick) -> RoundReport | None:
        """``round``, but an RPC outage or a transaction not final in time ends the round
        with a log line instead of the process: the round's plan is on disk and is resumed,
        with the same keys (nothing sent twice), at the next tick."""
        try:
            return self.round(tick)
        except TxError as exc:
            log_event(_log, logging.ERROR, "round_failed", ts=tick.timestamp, error=str(exc))
            return None

    # ---------------------------------------------------------------- posting

    def _check_wound_down(self, ts: int) -> bool:
        """True once the oracle is wound down; the first time, one log line and the plan in
        flight (its posts would revert) dropped."""
        if self.wound_down or not self.chain.wound_down():
            return self.wound_down
        self.wound_down = True
        log_event(_log, logging.WARNING, "wound_down", ts=ts, posting="stopped")
        if self.runner_state.plan is not None:
            self.runner_state.plan = None
            self.sender.save(self.runner_store, self.runner_state)
        return True

    def _post(self, tick: Tick, ts: int, report: RoundReport) -> None:
        vols = {**tick.realised_vol, **tick.implied_vol}
        psr = {u.name: self.psr(u.name, ts) for u in self.underlyings if u.name in tick.spots}
        model = compute_quotes(
            ts, tick.spots, vols, psr, self.underlyings, self.instruments, self.names, self.cfg
        )
        quotes = bound_quotes(ts, model, self.state.posted, self.underlyings)
        settled = self.last_market.settled if self.last_market is not None else {}
        force = spots_for_settlement(
            self.instruments,
            settled,
            self.state.posted,
            ts,
            {u.id: u.name for u in self.underlyings},
        )
        batches = plan_round(ts, quotes, self.state.posted, self.cfg, force)
        # funding from the model's quotes: the oracle's per-post caps make a posted mark lag
        # in a fast market, and a perp lagging its spot would read as a premium nobody quoted
        funding = funding_posts(
            ts,
            model,
            self.instruments,
            self.names,
            {u.id: u.name for u in self.underlyings},
            self.state.posted,
            margin_params().funding,
            self.cfg.funding_heartbeat,
        )
        # funding first: the oracle accrues the elapsed period at the spot in force during it,
        # then the new rate runs from this round's data
        first = (
            [
                Batch(
                    f"funding:{ts}",
                    tuple(f.name for f in funding),
                    "0x" + self.chain.post_funding_calldata([f.arg for f in funding]).hex(),
                )
            ]
            if funding
            else []
        )
        plan = RoundPlan(
            ts,
            tuple(first)
            + tuple(
                Batch(
                    f"post:{ts}:{k}",
                    tuple(i.name for i in b),
                    "0x" + self.chain.post_calldata(*batch_args(ts, b)).hex(),
                )
                for k, b in enumerate(batches)
            ),
            {
                i.name: {"mark": q.mark, "risk_array": list(q.risk_array), "scale": q.scale}
                for b in batches
                for i in b
                for q in (quotes[i.name][0],)
            }
            | {f.name: {"mark": f.rate, "risk_array": [], "scale": None} for f in funding},
        )
        self.runner_state.plan = plan
        self.sender.save(self.runner_store, self.runner_state)
        self._execute(plan, report)

    def _execute(self, plan: RoundPlan, report: RoundReport) -> None:
        """Send every batch of ``plan`` (idempotent per key), then wait for each, and record
        what landed: all are in flight before the first wait."""
        to = self.chain.oracle.address
        sent = []
        for b in plan.batches:
            if self.sender.send(b.key, to, bytes.fromhex(b.calldata[2:])):
                sent.append(b)
            else:
                report.rejected.append(b.key)
        for b in sent:
            outcome = self.sender.wait(b.key)
            if not outcome.confirmed:
                report.rejected.append(b.key)
                continue
            report.gas_used += outcome.gas_used
            report.transactions += 1
            report.batches += not b.key.startswith("funding:")  # batches of `post` only
            for name in b.names:
                q = plan.quotes[name]
                quote = Quote(q["mark"], tuple(q["risk_array"]), q["scale"])
                self.state.posted[name] = Posted(quote, plan.ts)
                if name.startswith(FUNDING_PREFIX):  # a rate, not an item of `post`
                    report.funding[name[len(FUNDING_PREFIX) :]] = int(q["mark"])
                else:
                    report.posted.append(name)
        self.sender.save(self.state_store, self.state)
        self.runner_state.plan = None
        self.runner_state.last_ts = max(self.runner_state.last_ts, plan.ts)
        self.sender.save(self.runner_store, self.runner_state)

    def _head(self) -> dict[str, int]:
        """Number and timestamp of the latest block, read from the node each time."""
        if self.w3 is not None:
            block = self.w3.eth.get_block("latest")
            return {"number": int(block["number"]), "timestamp": int(block["timestamp"])}
        head = self.chain.chain_manager.blocks.head
        return {"number": int(head.number), "timestamp": int(head.timestamp)}

    # ---------------------------------------------------------------- accounts

    def _index(self, report: RoundReport) -> None:
        """Extend the account index from engine events; re-read the accounts they touched."""
        head = self._head()["number"]
        last = self.state.last_block
        start = self.chain.deployment.block if last is None else last + 1
        if start <= head:
            # the system's contracts (the Liquidator holds the fund's cash) are not accounts:
            # never registered, re-read or swept
            touched = self.chain.accounts_touched(start, head) - set(self._system_addresses())
            new = touched - self.runner_state.accounts
            self._stale |= touched
            if new:
                # registered before they join the saved index: a crash in between rescans
                # this range, and a `register:` key already sent is not sent again
                if self.liquidate:
                    self._register(sorted(new), report)
                self.runner_state.accounts |= new
                self.sender.save(self.runner_store, self.runner_state)
            self.state.last_block = head
            self.sender.save(self.state_store, self.state)
        self._reread()

    def _reread(self) -> None:
        """Read again the accounts whose chain state changed since they were last read, and
        rewrite their rows of the position book."""
        fresh = {addr: self.chain.account_raw(addr) for addr in sorted(self._stale)}
        self.raw.update(fresh)
        self.book.update(fresh)
        self._stale = set()

    def _market(self) -> ChainMarket:
        """The oracle's current data for every listed instrument, as the integer reference."""
        self.last_market = self.chain.market_int([m.id for m in self.instruments])
        return self.last_market

    # ---------------------------------------------------------------- liquidation

    def _system_addresses(self) -> tuple[str, ...]:
        """Contracts that are not margin accounts although they hold engine cash."""
        liquidator = getattr(self.chain, "liquidator", None)
        return (str(liquidator.address),) if liquidator is not None else ()

    def _liquidate(self, targets: Sequence[str], ts: int, report: RoundReport) -> None:
        """``Liquidator.liquidate`` for each target; the keeper's own margin account takes the
        positions (it must stay above IM, or the call reverts)."""
        to = self.chain.liquidator.address
        for addr in targets:
            key = f"liq:{ts}:{addr}"
            if self._send_and_wait(key, to, self.chain.liquidate_calldata(addr), report):
                report.liquidations.append(addr)
                self._stale.add(addr)
                if self.address is not None:
                    self._stale.add(self.address)

    def _register(self, accounts: Sequence[str], report: RoundReport) -> None:
        """Add newly seen accounts to the Liquidator's on-chain list (``accounts_below_mm``
        pages through it), once each."""
        to = self.chain.liquidator.address
        for addr in accounts:
            self._send_and_wait(f"register:{addr}", to, self.chain.register_calldata(addr), report)

    # ---------------------------------------------------------------- settlement

    def _settle(self, market: ChainMarket, now: int, report: RoundReport) -> bool:
        """Trigger ``settle_expired`` for every expired instrument whose underlying has a spot
        stored after expiry (the chain values it from the TWAP before expiry), then ``settle``
        each account holding one. True when either changed the chain (the market and those
        accounts must be read again)."""
        # wound down, every instrument reads as settled at its last mark: nothing to trigger
        waiting = {
            m.underlying
            for m in self.instruments
            if m.expiry <= now and m.id not in market.settled and not self.wound_down
        }
        spot_times = {u: self.chain.spot_timestamp(u) for u in sorted(waiting)}
        due = settlements_to_trigger(self.instruments, self.names, market.settled, now, spot_times)
        newly = set()
        for meta in due:
            data = self.chain.settle_expired_calldata(meta.id)
            key = f"settle_expired:{meta.id}"
            if self._send_and_wait(key, self.chain.oracle.address, data, report):
                report.settlement_prices.append(self.names[meta.id])
                newly.add(meta.id)
        holdings = {addr: raw[1] for addr, raw in self.raw.items()}  # (cash, positions, ...)
        settled = set(market.settled) | newly
        for addr, iid in settlements_due(holdings, settled, self.cfg.settle_batch):
            key = f"settle:{iid}:{addr}"
            data = self.chain.settle_calldata(addr)
            if self._send_and_wait(key, self.chain.engine.address, data, report):
                report.settled.append((addr, self.names.get(iid, str(iid))))
                self._stale.add(addr)
        return bool(newly or report.settled)

    def _send_and_wait(self, key: str, to: str, data: bytes, report: RoundReport) -> bool:
        if not self.sender.send(key, to, data):
            return False
        outcome = self.sender.wait(key)
        if outcome.confirmed:
            report.gas_used += outcome.gas_used
            report.transactions += 1
        return outcome.confirmed


def _pause(seconds: float, stop: threading.Event | None) -> None:
    """Sleep ``seconds``, or until ``stop`` is set."""
    if stop is None:
        time.sleep(seconds)
    else:
        stop.wait(seconds)


def keeper_underlyings(chain: Any) -> list[UnderlyingInfo]:
    """The deployment's underlyings as the keeper needs them: grid (matched against the
    presets by its coefficients), PSR bounds from the oracle, the collateral each one prices."""
    from offchain.scenarios import PRESETS

    out = []
    for name, uid in sorted(chain.deployment.underlyings.items(), key=lambda kv: kv[1]):
        params = chain.underlying_params(uid)
        grid = PRESETS[chain.grid_name(uid)]
        assets = tuple(a for a, u in chain.deployment.asset_prices.items() if u == name)
        out.append(
            UnderlyingInfo(
                name,
                uid,
                grid,
                int(params.psr_min) / WAD,
                int(params.psr_max) / WAD,
                assets,
                int(params.max_deviation),
                int(params.max_array_ratio),
                tuple(int(chain.oracle.asset_max_deviation(a)) for a in assets),
                int(params.basis),
                int(params.roll),
            )
        )
    return out


def deployment_folder(chain_id: int, oracle: str) -> str:
    """The state folder of one deployment: ``<chain id>-<oracle address>``."""
    return f"{int(chain_id)}-{str(oracle).lower()}"


def open_keeper(
    chain: Any,
    account: Any,
    state_dir: str,
    *,
    rpc_url: str | None = None,
    cfg: KeeperConfig = DEFAULTS,
    tx_config: Any = None,
    psr: Callable[[str, int], float] | None = None,
    dry_run: bool = False,
    liquidate: bool = True,
) -> KeeperRunner:
    """A ``KeeperRunner`` with its state in ``state_dir``: one folder per deployment
    (``<chain id>-<oracle address>``, so the same key on another network or another deployment
    starts afresh instead of reusing the first one's timestamps) holding one SQLite database,
    ``keeper.sqlite``, whose rows are keyed by the signing account (``state.StateStore``; JSON
    state of an earlier version found there is migrated into it).

    ``account`` is the Ape account (``ape.api.AccountAPI``, any plugin) that signs through
    ``TxManager``. ``account`` None (or ``dry_run``) builds a dry-run keeper: a
    ``DryRunSender``, and the account's saved state (if any) read without locking or creating
    anything. ``rpc_url`` defaults to the Ape provider's URI. ``psr`` defaults to
    ``CalibratedPsr`` on the bundled history. Close it with ``runner.close()``.
    """
    from pathlib import Path

    from web3 import Web3

    from offchain.keeper.state import StateStore
    from offchain.keeper.tx import TxManager

    unds = keeper_underlyings(chain)
    url = rpc_url or chain.chain_manager.provider.uri
    w3 = Web3(Web3.HTTPProvider(url, exception_retry_configuration=None))
    psr = psr or CalibratedPsr([u.name for u in unds])
    address = None if account is None else Web3.to_checksum_address(str(account.address))
    name = address or "dry-run"
    folder = Path(state_dir) / deployment_folder(chain.deployment.chain_id, chain.oracle.address)
    store = StateStore(folder, name, read_only=address is None or dry_run)
    state = store.load()
    runner_store = store.runner_store()
    if address is None or dry_run:
        sender: Sender = DryRunSender(address)
    else:
        sender = ChainSender(TxManager(w3, account, store, state, tx_config), w3, cfg.wait_timeout)
    return KeeperRunner(
        chain, sender, store, state, runner_store, unds, psr, cfg, w3=w3, liquidate=liquidate
    )
