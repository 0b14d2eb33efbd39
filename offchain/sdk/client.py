"""The typed client over a deployed system: the scripts, the keeper, the console and the tests
read and send through it, so every contract call of the off-chain side is written once.

``Client.connect`` opens a ``Deployment`` (``deployments/<network>.json``); ``deploy.deploy_system``
builds one. Sending methods take Ape accounts (``sender=``); the keeper, which signs through its
``TxManager``, takes the ``*_calldata`` methods instead. ``market_int()`` and
``account_int(address)`` read back everything the integer reference of ``docs/fixed-point.md``
needs, so the keeper computes health off-chain exactly as the engine does.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from offchain.codec import OptionPost, id_fields, pack_post
from offchain.margin import AccountInt, Kind
from offchain.scenarios import PRESETS
from offchain.sdk.decode import ChainMarket, InstrumentMeta, decode_market

__all__ = ["AccountState", "Client", "Deployment", "EscapeHatch", "PostedBatch"]

SNAPSHOT_MAX = 32  # RiskOracle.snapshot takes at most 32 instruments / underlyings per call
ASSETS_MAX = 8
LOG_CHUNK = 5_000  # blocks per eth_getLogs call
# RiskOracle's clock word: last post [0, 40) | max_age [40, 80) | escape delay [80, 120) | bit 120
MASK40 = 2**40 - 1
WOUND_DOWN_BIT = 1 << 120
# a post rewrites the clock's last-post time only once it is this old (RiskOracle.CLOCK_STEP)
CLOCK_STEP = 3_600
MASK96 = 2**96 - 1


@dataclass
class Deployment:
    """Addresses of one deployment (``deployments/<network>.json``)."""

    network: str
    chain_id: int
    block: int
    oracle: str
    engine_admin: str
    engine: str
    views: str
    cash: str
    collateral: dict[str, str] = field(default_factory=dict)
    underlyings: dict[str, int] = field(default_factory=dict)
    instruments: dict[str, int] = field(default_factory=dict)
    asset_prices: dict[str, str] = field(default_factory=dict)  # token -> underlying name
    liquidator: str | None = None
    liquidation_views: str | None = None
    # OracleViews: the oracle's decoded reads (risk arrays, grids, ages, asset prices)
    oracle_views: str | None = None
    # The admin of every contract when set: proposals wait timelock_delay seconds; the
    # multisig timelock_admin proposes, cancels and executes them.
    timelock: str | None = None
    timelock_delay: int | None = None
    timelock_admin: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "network": self.network,
            "chain_id": self.chain_id,
            "block": self.block,
            "oracle": self.oracle,
            "engine_admin": self.engine_admin,
            "engine": self.engine,
            "views": self.views,
            "cash": self.cash,
            "collateral": dict(self.collateral),
            "underlyings": dict(self.underlyings),
            "instruments": {k: str(v) for k, v in self.instruments.items()},
            "asset_prices": dict(self.asset_prices),
            "liquidator": self.liquidator,
            "liquidation_views": self.liquidation_views,
            "oracle_views": self.oracle_views,
            "timelock": self.timelock,
            "timelock_delay": self.timelock_delay,
            "timelock_admin": self.timelock_admin,
        }

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> Deployment:
        return cls(
            network=obj["network"],
            chain_id=int(obj["chain_id"]),
            block=int(obj["block"]),
            oracle=obj["oracle"],
            engine_admin=obj["engine_admin"],
            engine=obj["engine"],
            views=obj["views"],
            cash=obj["cash"],
            collateral=dict(obj.get("collateral", {})),
            underlyings={k: int(v) for k, v in obj.get("underlyings", {}).items()},
            instruments={k: int(v) for k, v in obj.get("instruments", {}).items()},
            asset_prices=dict(obj.get("asset_prices", {})),
            liquidator=obj.get("liquidator"),
            liquidation_views=obj.get("liquidation_views"),
            oracle_views=obj.get("oracle_views"),
            timelock=obj.get("timelock"),
            timelock_delay=None
            if obj.get("timelock_delay") is None
            else int(obj["timelock_delay"]),
            timelock_admin=obj.get("timelock_admin"),
        )

    def save(self, path: str | os.PathLike[str]) -> None:
        """Atomic write (temporary file + rename)."""
        p = Path(path)
        p.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=p.parent, prefix=p.name, suffix=".tmp")
        with os.fdopen(fd, "w") as f:
            json.dump(self.to_json(), f, indent=2, sort_keys=True)
            f.write("\n")
        os.replace(tmp, p)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Deployment:
        return cls.from_json(json.loads(Path(path).read_text()))


def _chunks(items: Sequence[Any], n: int) -> Iterable[Sequence[Any]]:
    for i in range(0, len(items), n):
        yield items[i : i + n]


@dataclass(frozen=True)
class AccountState:
    """An account as the engine's ``account_state`` values it (WAD). ``equity`` has the pending
    socialised-loss charge deducted and counts collateral without a fresh price at zero; the
    account is liquidatable when it is ``fresh`` and ``health < 0``."""

    equity: int
    initial_margin: int
    maintenance_margin: int
    pending_charge: int
    fresh: bool

    @property
    def health(self) -> int:
        return self.equity - self.maintenance_margin


@dataclass(frozen=True)
class PostedBatch:
    """One oracle batch as it landed (``Client.posted_batches``): options first, then futures,
    in calldata order."""

    block: int
    timestamp: int
    underlyings: list[int]
    instruments: list[int]
    assets: list[str]


@dataclass(frozen=True)
class EscapeHatch:
    """The oracle's escape hatch: once no post has landed for longer than ``escape_delay``
    seconds, anyone may call ``RiskOracle.wind_down``; wound down, every position settles at its
    last mark and trading stops for good. The oracle records the last post to the hour (a post
    rewrites the time only once it is ``CLOCK_STEP`` old, which saves a storage write per
    batch), so the hatch opens ``CLOCK_STEP`` after the delay counted from the recorded time:
    never earlier than ``escape_delay`` after the last post, at most an hour later."""

    last_post: int  # block time of the last post recorded (0: never posted)
    escape_delay: int
    wound_down: bool

    @classmethod
    def from_clock(cls, word: int) -> EscapeHatch:
        return cls(word & MASK40, (word >> 80) & MASK40, bool(word & WOUND_DOWN_BIT))

    @property
    def opens_at(self) -> int | None:
        """First block time at which ``wind_down`` is accepted (None: never posted, or done)."""
        if self.wound_down or self.last_post == 0:
            return None
        return self.last_post + self.escape_delay + CLOCK_STEP + 1


class Client:
    """The deployed system behind Ape contract objects.

    Build with ``deploy.deploy_system(...)`` (fresh or idempotent re-run) or ``Client.connect(...)``
    on a ``Deployment``. Sending methods take Ape accounts (``sender=``); the keeper, which signs
    through ``TxManager``, uses the ``*_calldata`` methods instead.
    """

    def __init__(self, project: Any, chain_manager: Any, deployment: Deployment) -> None:
        self.project = project
        self.chain_manager = chain_manager
        self.deployment = deployment
        self.oracle = project.RiskOracle.at(deployment.oracle)
        self.engine_admin = project.EngineAdmin.at(deployment.engine_admin)
        self.engine = project.MarginEngine.at(deployment.engine)
        self.views = project.MarginViews.at(deployment.views)
        self.cash = project.MockERC20.at(deployment.cash)
        self.tokens = {sym: project.MockERC20.at(a) for sym, a in deployment.collateral.items()}
        self.underlying_names = {v: k for k, v in deployment.underlyings.items()}
        self.liquidator = (
            project.Liquidator.at(deployment.liquidator) if deployment.liquidator else None
        )
        self.liquidation_views = (
            project.LiquidationViews.at(deployment.liquidation_views)
            if deployment.liquidation_views
            else None
        )
        self.oracle_views = (
            project.OracleViews.at(deployment.oracle_views) if deployment.oracle_views else None
        )
        # the admin of every contract when the deployment has one (offchain.sdk.timelock)
        self.timelock = project.Timelock.at(deployment.timelock) if deployment.timelock else None
        self._asset_info: dict[str, tuple[int, int, int]] | None = None
        self._asset_links: dict[str, int] | None = None
        self._w3_events: dict[tuple[str, str], Any] = {}
        self._im_factor: int | None = None

    @classmethod
    def connect(
        cls, project: Any, chain_manager: Any, deployment: Deployment | str | os.PathLike[str]
    ) -> Client:
        dep = deployment if isinstance(deployment, Deployment) else Deployment.load(deployment)
        return cls(project, chain_manager, dep)

    # ---------------------------------------------------------------- listings (events)

    def listed_instruments(self, start_block: int | None = None) -> list[InstrumentMeta]:
        """Every instrument listed by the oracle, from its ``InstrumentListed`` events."""
        start = self.deployment.block if start_block is None else start_block
        out = []
        for ev in self.events(self.oracle, "InstrumentListed", start, self._head()):
            out.append(
                InstrumentMeta(
                    int(ev["instrument"]),
                    int(ev["underlying"]),
                    Kind(int(ev["kind"])),
                    int(ev["strike"]),
                    int(ev["expiry"]),
                    int(ev["contract_size"]),
                )
            )
        return sorted(out, key=lambda m: m.id)

    def events(self, contract: Any, name: str, start: int, stop: int) -> list[Mapping[str, Any]]:
        """Decoded arguments of ``contract``'s ``name`` events in blocks ``[start, stop]``,
        in chain order, read with ``eth_getLogs`` from the node (Ape's event queries clamp
        the range to its own cached head, which can lag behind the keeper's transactions)."""
        return [dict(log["args"]) for log in self._logs(contract, name, start, stop)]

    def _logs(self, contract: Any, name: str, start: int, stop: int) -> list[Any]:
        """``contract``'s ``name`` logs in blocks ``[start, stop]`` as web3 decodes them (args,
        block number, transaction hash), in chain order."""
        if stop < start:
            return []
        key = (contract.address, name)
        if key not in self._w3_events:
            abi = [
                a.model_dump(by_alias=True, mode="json")
                for a in contract.contract_type.abi
                if a.type == "event" and a.name == name
            ]
            w3 = self.chain_manager.provider.web3
            self._w3_events[key] = getattr(
                w3.eth.contract(address=contract.address, abi=abi).events, name
            )
        out = []
        for lo in range(start, stop + 1, LOG_CHUNK):  # public RPCs cap the range per call
            hi = min(lo + LOG_CHUNK - 1, stop)
            out += self._w3_events[key]().get_logs(from_block=lo, to_block=hi)
        return out

    def underlying_params(self, underlying: int) -> Any:
        return self.oracle.underlying_params(underlying)

    def accounts_touched(self, start_block: int, stop_block: int) -> set[str]:
        """Accounts named by engine events in ``[start_block, stop_block]``: deposits, position
        changes and settlements (what changes cash, positions or collateral), and both sides
        of each liquidation (the engine moves those positions without a per-position event)."""
        out: set[str] = set()
        for name in ("Deposit", "Withdraw", "PositionChanged", "Settled"):
            for ev in self.events(self.engine, name, start_block, stop_block):
                out.add(str(ev["account"]))
        if self.liquidator is not None:
            for ev in self.events(self.liquidator, "Liquidated", start_block, stop_block):
                out.update((str(ev["account"]), str(ev["liquidator"])))
        return out

    def _head(self) -> int:
        """The node's latest block number (asked each time: Ape's head can lag behind
        transactions sent by the keeper's own transaction manager)."""
        return int(self.chain_manager.provider.web3.eth.block_number)

    # ---------------------------------------------------------------- oracle posts

    def post_args(
        self,
        timestamp: int,
        underlyings: Sequence[tuple[int, int, int]],
        instruments: Sequence[OptionPost],
        assets: Sequence[tuple[str, int]],
    ) -> tuple[int, list, list, list, list]:
        options, futures = pack_post([p.as_arg() for p in instruments])
        return (
            int(timestamp),
            [tuple(u) for u in underlyings],
            options,
            futures,
            [tuple(a) for a in assets],
        )

    def post_calldata(self, *args: Any) -> bytes:
        """Calldata of ``RiskOracle.post`` for ``post_args(...)``."""
        return bytes(self.oracle.post.encode_input(*self.post_args(*args)))

    def post_funding_calldata(self, posts: Sequence[tuple[int, int]]) -> bytes:
        """Calldata of ``RiskOracle.post_funding``: ``(underlying id, hourly rate WAD)`` per
        underlying with a perp (the oracle clamps each rate to the perp's cap)."""
        return bytes(self.oracle.post_funding.encode_input([tuple(p) for p in posts]))

    def post(self, sender: Any, *args: Any) -> Any:
        return self.oracle.post(*self.post_args(*args), sender=sender)

    def settle_expired_calldata(self, instrument: int) -> bytes:
        """``RiskOracle.settle_expired(instrument)``: the chain computes the settlement price."""
        return bytes(self.oracle.settle_expired.encode_input(instrument))

    def posted_batches(self, start: int, stop: int) -> list[PostedBatch]:
        """Every oracle batch that landed in blocks ``[start, stop]``, in chain order, with the
        ids it posted: the ``Posted`` event counts them, and the ids come from the
        transaction's calldata (logging them cost ~420 gas per instrument)."""
        w3 = self.chain_manager.provider.web3
        out = []
        for log in self._logs(self.oracle, "Posted", start, stop):
            tx = w3.eth.get_transaction(log["transactionHash"])
            if str(tx["to"]).lower() != str(self.oracle.address).lower():
                raise ValueError(
                    f"batch in {log['transactionHash'].hex()} was not sent to the oracle "
                    "directly: decode its ids from the caller's calldata"
                )
            _, args = self.oracle.decode_input(bytes(tx["input"]))
            ids = [int(o[0]) & MASK96 for o in args["options"]]
            ids += [int(h) & MASK96 for h in args["futures"]]
            out.append(
                PostedBatch(
                    int(log["blockNumber"]),
                    int(args["timestamp"]),
                    [int(u[0]) for u in args["underlyings"]],
                    ids,
                    [str(a[0]) for a in args["assets"]],
                )
            )
        return out

    def funding_index(self, underlying: int) -> int:
        """The funding index F of the underlying's perp now (WAD per contract; 0 without one)."""
        return int(self.oracle.funding_index(underlying))

    def spot_timestamp(self, underlying: int) -> int:
        """Timestamp of the underlying's latest stored spot (0: never posted)."""
        return int(self.oracle.underlying_state(underlying)[2])

    def escape_hatch(self) -> EscapeHatch:
        """The escape hatch's state (one read of the oracle's clock word)."""
        return EscapeHatch.from_clock(int(self.oracle.clock()))

    def wound_down(self) -> bool:
        return bool(self.oracle.wound_down())

    def wind_down(self, sender: Any) -> Any:
        """``RiskOracle.wind_down``: open to anyone once the escape delay has passed."""
        return self.oracle.wind_down(sender=sender)

    def settle_calldata(self, account: str) -> bytes:
        return bytes(self.engine.settle.encode_input(account))

    def liquidate_calldata(self, account: str) -> bytes:
        """``Liquidator.liquidate(account)``: the caller's margin account takes the positions."""
        return bytes(self.liquidator.liquidate.encode_input(account))

    def register_calldata(self, account: str) -> bytes:
        """``Liquidator.register(account)``: adds it to the on-chain paged scan."""
        return bytes(self.liquidator.register.encode_input(account))

    def insurance_fund(self) -> int:
        """The insurance fund (WAD): the Liquidator's cash in the engine; 0 without one."""
        return 0 if self.liquidator is None else int(self.liquidator.insurance_fund())

    # ---------------------------------------------------------------- accounts

    def fund(self, admin: Any, account: Any, symbol: str, amount: int) -> None:
        """Mint mock tokens (token units) to ``account`` and approve the engine (local only)."""
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        token.mint(account, amount, sender=admin)
        token.approve(self.engine, 2**256 - 1, sender=account)

    def deposit(self, account: Any, symbol: str, amount: int) -> Any:
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        return self.engine.deposit(token, amount, sender=account)

    def withdraw(self, account: Any, symbol: str, amount: int) -> Any:
        token = self.cash if symbol == "cash" else self.tokens[symbol]
        return self.engine.withdraw(token, amount, sender=account)

    def authorise(self, account: Any, venue: Any) -> Any:
        return self.engine_admin.authorise_venue(venue, True, sender=account)

    def trade(
        self, venue: Any, buyer: Any, seller: Any, instrument: int, size: int, price: int
    ) -> Any:
        """A trade of ``size`` (WAD, > 0) of ``instrument`` at ``price`` (WAD): buyer long."""
        return self.engine.trade(buyer, seller, instrument, size, price, sender=venue)

    def settle(self, sender: Any, account: Any) -> Any:
        return self.engine.settle(account, sender=sender)

    # ---------------------------------------------------------------- reads

    def account_state(self, account: Any) -> AccountState:
        """``account`` as the engine values it (the one read of the engine's account view)."""
        st = self.engine.account_state(account)
        return AccountState(
            int(st.equity),
            int(st.initial_margin),
            int(st.maintenance_margin),
            int(st.pending_charge),
            bool(st.fresh),
        )

    def worst_scenarios(self, account: Any) -> list[Any]:
        return list(self.views.worst_scenarios(account))

    def positions(self, account: Any) -> dict[int, int]:
        ids, sizes = self.engine.positions_of(account)
        return {int(i): int(q) for i, q in zip(ids, sizes, strict=True)}

    def assets(self) -> dict[str, tuple[int, int, int]]:
        """Listed non-cash collateral: address -> (asset index, haircut WAD, decimals)."""
        if self._asset_info is None:
            info = {}
            for addr in self.deployment.collateral.values():
                index = int(self.engine.asset_index(addr))
                if index == 0:
                    continue
                scale = int(self.engine.asset_scale(addr))
                decimals = 18 - (len(str(scale)) - 1)
                info[addr] = (index - 1, int(self.engine.asset_haircut(addr)), decimals)
            self._asset_info = info
        return self._asset_info

    def im_factor(self) -> int:
        if self._im_factor is None:
            self._im_factor = int(self.engine.im_factor())
        return self._im_factor

    def market_int(self, instruments: Sequence[int] | None = None) -> ChainMarket:
        """Oracle state of ``instruments`` (default: every listed one) for the reference, with
        collateral priced by liquidation's rule (stale or never posted: zero)."""
        ids = (
            [m.id for m in self.listed_instruments()] if instruments is None else list(instruments)
        )
        unds = sorted({id_fields(i)[2] for i in ids} | set(self.deployment.underlyings.values()))
        assets = self.assets()
        addrs = list(assets)
        iw: dict[int, list[int]] = {}
        uw: dict[int, list[int]] = {}
        aw: dict[str, int] = {}
        first = True
        for chunk in _chunks(ids, SNAPSHOT_MAX) if ids else [[]]:
            u_arg = unds[:SNAPSHOT_MAX] if first else []
            a_arg = addrs[:ASSETS_MAX] if first else []
            words, uwords, awords, max_age = self.oracle.snapshot(list(chunk), u_arg, a_arg)
            for i, w in zip(chunk, words, strict=True):
                iw[i] = [int(x) for x in w]
            for u, w in zip(u_arg, uwords, strict=True):
                uw[u] = [int(x) for x in w]
            for a, w in zip(a_arg, awords, strict=True):
                aw[a] = int(w)
            first = False
        # collateral is valued as account_state and the Liquidator value it: a price older than
        # max_age (or never posted) counts as zero
        now = int(self.chain_manager.blocks.head.timestamp)
        links = self.asset_links()
        grids = {u: self.grid_of(u) for u in uw if u in set(links.values())}
        return decode_market(
            iw,
            uw,
            aw,
            assets,
            self.im_factor(),
            stale_before=now - int(max_age),
            links=links,
            grids=grids,
        )

    def asset_links(self) -> dict[str, int]:
        """Listed collateral linked to an underlying (docs/fixed-point.md §5.1): address ->
        underlying id (set once, so read once)."""
        if self._asset_links is None:
            self._asset_links = {
                a: u
                for a in self.assets()
                if (u := int(self.engine_admin.asset_underlying(a))) != 0
            }
        return self._asset_links

    def grid_of(self, underlying: int) -> list[int]:
        """``c[s]`` (WAD) of an underlying's grid, from its data contract (a STOP byte, then
        four int64 per word)."""
        gid = int(self.oracle.underlying_params(underlying).grid_id)
        n = int(self.oracle.grid_size(gid))
        code = bytes(self.chain_manager.provider.get_code(self.oracle.grid_code(gid)))
        words = [int.from_bytes(code[1 + 32 * k : 33 + 32 * k], "big") for k in range(10)]
        out = []
        for s in range(n):
            bits = (words[s >> 2] >> (64 * (s & 3))) & (2**64 - 1)
            out.append(bits - 2**64 if bits >= 2**63 else bits)
        return out

    def account_raw(self, account: Any) -> tuple[int, dict[int, int], dict[str, int], int]:
        """``(cash WAD, {instrument: size}, {token: units}, variation-margin basis WAD**2)`` as
        the engine stores them."""
        cash = int(self.engine.cash(account))
        positions = self.positions(account)
        if self.liquidator is not None and positions and self.engine.socialising():
            # a socialised loss not yet realised is owed: equity counts it (account_state)
            cash -= int(self.liquidator.pending_charge(account))
        mask = int(self.engine.asset_mask(account))
        coll = {}
        for addr, (index, _, _) in self.assets().items():
            if mask >> index & 1:
                coll[addr] = int(self.engine.collateral(addr, account))
        return cash, positions, coll, int(self.engine.vm_basis(account))

    def account_int(self, account: Any, market: ChainMarket) -> AccountInt:
        """The account as the reference model sees it (cash, live positions, collateral)."""
        return market.account(*self.account_raw(account))

    def grid_name(self, underlying: int) -> str:
        """The preset grid (``offchain.scenarios.PRESETS``) whose coefficients the underlying's
        registered grid holds."""
        gid = int(self.oracle.underlying_params(underlying).grid_id)
        if self.oracle_views is None:
            raise KeyError("the deployment has no oracle_views: run `ape run deploy` to add it")
        coefficients = [int(c) for c in self.oracle_views.grid(gid)]
        for name, grid in PRESETS.items():
            if grid.linear_coefficients_wad() == coefficients:
                return name
        raise KeyError(f"grid {gid} is none of the presets {sorted(PRESETS)}")
