"""Shared constants and the `System` helper of the contract tests (imported by conftest and the
test modules as `contract_support`)."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import ape
import requests
from eth_abi import decode as abi_decode
from hypothesis import settings

from offchain.codec import (
    EXPONENT_LISTED,
    EXPONENT_SETTLED,
    KIND_CALL,
    KIND_FUTURE,
    KIND_PERP,
    KIND_PUT,
    WORDS_SHIFT,
    id_fields,
    n_slots,
    pack_entries,
    pack_post,
    post_header,
    unpack_entries,
)
from offchain.fixed_point import WAD, curve_shift_wad, encode_risk_array, futures_risk_array_wad
from offchain.oracle_bounds import (
    CAP_PERIOD,
    bound_option,
    clamp_price,
    code_strike,
    gap_rate,
    price_cap,
    seconds_for_move,
)
from offchain.sdk import Client, Deployment
from offchain.settlement import TWAP_WINDOW

LONG = os.environ.get("HYPOTHESIS_PROFILE") == "long"
# `make test` (and CI) draws the same examples on every run, so a failure CI sees is one a
# developer's run saw first and reproduces; HYPOTHESIS_PROFILE=long explores at random.
settings.register_profile("ci", derandomize=True, database=None)
if not LONG:
    settings.load_profile("ci")


def examples(ci: int, long: int, **kwargs) -> settings:
    """Hypothesis settings for contract tests: `ci` examples by default, `long` when
    HYPOTHESIS_PROFILE=long (chain tests are slow, so the counts are set per test)."""
    return settings(max_examples=long if LONG else ci, deadline=None, **kwargs)


def batch_call(provider, calls):
    """Many views in ONE JSON-RPC batch of `eth_call`s (a separate call costs ~7 ms of HTTP
    round trip, a batched one ~0.1 ms): `calls` is a list of `(contract.method, *args)`; returns
    the decoded outputs in order, a bare value for a one-output method, else a tuple (structs as
    tuples). Raises on the first call that reverts."""
    payload, abis = [], []
    for k, (handler, *args) in enumerate(calls):
        abi = next(a for a in handler.abis if len(a.inputs) == len(args))
        tx = {
            "to": handler.contract.address,
            "data": "0x" + bytes(handler.encode_input(*args)).hex(),
        }
        payload.append({"jsonrpc": "2.0", "id": k, "method": "eth_call", "params": [tx, "latest"]})
        abis.append(abi)
    if not payload:
        return []
    replies = {r["id"]: r for r in requests.post(provider.uri, json=payload, timeout=60).json()}
    out = []
    for k, abi in enumerate(abis):
        reply = replies[k]
        if "error" in reply:
            raise RuntimeError(f"{abi.name}{calls[k][1:]} reverted: {reply['error']}")
        raw = bytes.fromhex(reply["result"][2:])
        values = abi_decode([o.canonical_type for o in abi.outputs], raw)
        out.append(values[0] if len(values) == 1 else tuple(values))
    return out


USD = 10**6  # settlement stablecoin has 6 decimals
GRID_CRYPTO, GRID_CME = 1, 2
BTC, ETH, SPAN = 1, 2, 3
DAY = 86_400
PSR = 16 * WAD // 100
SOM_RATE = WAD // 10
MAX_DEV = WAD // 2
ARRAY_RATIO = 2 * WAD
CASH_CAP = 10**26  # token units of the 6-decimal stablecoin (cap * 1e12 <= 2**128)
OI_CAP = 10**24  # 1M contracts
POSITION_LIMIT = 10**23  # 100k contracts
SPOTS = {BTC: 60_000 * WAD, ETH: 3_000 * WAD, SPAN: 100 * WAD}


@dataclass
class System:
    """Handles and helpers of one deployment (all amounts WAD unless noted)."""

    chain: object
    oracle: object
    engine: object
    views: object
    usdc: object
    weth: object
    wbtc: object
    admin: object
    keeper: object
    venue: object
    guardian: object
    # roles, venue authorisations and configuration of the engine
    engine_admin: object = None
    # OracleViews: decoded risk arrays, grids, ages and asset prices of the oracle
    oracle_views: object = None
    instruments: dict = field(default_factory=dict)  # name -> id
    n_scenarios: dict = field(default_factory=dict)  # underlying -> S
    grids: dict = field(default_factory=dict)  # underlying -> c[s] (WAD)
    tilts: dict = field(default_factory=dict)  # underlying -> t[s] (WAD); absent: all zero

    def client(self, liquidator=None):
        """The SDK client over this deployment (it reads the market through `snapshot`)."""
        dep = Deployment(
            "local",
            self.chain.chain_id,
            0,
            self.oracle.address,
            self.engine_admin.address,
            self.engine.address,
            self.views.address,
            self.usdc.address,
            collateral={"WETH": self.weth.address, "WBTC": self.wbtc.address},
            liquidator=None if liquidator is None else str(liquidator.address),
            oracle_views=self.oracle_views.address,
        )
        return Client(ape.project, self.chain, dep)

    # ---- time
    def now(self) -> int:
        return self.chain.blocks.head.timestamp

    def sleep(self, seconds: int) -> None:
        self.chain.pending_timestamp = self.now() + seconds
        self.chain.mine()

    # ---- listing
    def list_instrument(self, name, underlying, kind, strike, expiry, size=WAD):
        tx = self.oracle.list_instrument(underlying, kind, strike, expiry, size, sender=self.admin)
        iid = tx.return_value
        self.instruments[name] = iid
        return iid

    def future_reference(self, iid, mark, psr, ts):
        """The reference WAD array of future `iid` posted at batch time `ts` with `psr`, on its
        underlying's grid, tilts, basis and roll as the oracle holds them (fixed-point.md §3)."""
        u = (iid >> 40) & 0xFFFF
        p = self.oracle.underlying_params(u)
        # a perp (kind 3) sits at the spot end of the curve: no expiry, h = 0
        expiry = 0 if (iid >> 32) & 0xFF == KIND_PERP else (iid >> 56) % 2**40
        h = curve_shift_wad(expiry, ts, p.basis, p.roll, psr)
        return futures_risk_array_wad(mark, self.grids[u], psr, self.tilts.get(u), h)

    def set_curve(self, u, basis, roll):
        """Set underlying `u`'s basis (WAD per year) and roll window (seconds), rest kept."""
        p = self.oracle.underlying_params(u)
        return self.oracle.set_underlying_params(
            u,
            p.psr_min,
            p.psr_max,
            p.som_rate,
            p.max_deviation,
            p.max_array_ratio,
            basis,
            roll,
            sender=self.admin,
        )

    # ---- posting
    def post(
        self,
        underlyings=(),
        instruments=(),
        assets=(),
        timestamp=None,
        sender=None,
        bounded=True,
    ):
        """underlyings: [(id, spot, psr)], instruments: [(id, mark, e, words)], assets:
        [(token, price)]. Mines a block first so `timestamp` (default: head) is strictly newer
        than anything posted before. With `bounded` (the default) each option's mark and array
        are first clamped into the oracle's bounds, as the keeper does
        (`offchain.oracle_bounds`): tests of other things post arbitrary option data; tests of
        the bounds pass `bounded=False`. Without a `timestamp`, a bounded post first lets as many
        seconds pass as its largest spot, future-mark or price move needs under the oracle's
        per-time deviation caps (one at least), as a keeper's clock would."""
        wait = bounded and timestamp is None
        self.sleep(self.seconds_needed(underlyings, instruments, assets) if wait else 1)
        ts = self.now() if timestamp is None else timestamp
        if bounded:
            spots = {u: spot for u, spot, _psr in underlyings}
            instruments = [self.bounded_item(it, ts, spots) for it in instruments]
        options, futures = pack_post([it for it in instruments if len(it[3]) <= 3])
        for iid, mark, e, words in instruments:
            if len(words) > 3:  # a hostile header claiming more entry words than it carries
                extra = (len(words) - 3) << WORDS_SHIFT
                options.append([post_header(iid, mark, e, 3) + extra, *words[:3]])
        return self.oracle.post(
            ts,
            list(underlyings),
            options,
            futures,
            list(assets),
            sender=sender or self.keeper,
        )

    def seconds_needed(self, underlyings, instruments, assets) -> int:
        """Seconds since their previous posts (from the next block) before the spots, future
        marks and collateral prices of a post are within their caps (1 when none moves, or when
        one moves beyond a full cap period's cap: such a post is meant to revert)."""
        now = self.now()
        moves = []  # (new, old, rate, seconds already passed)
        psrs = {}  # the scan range in force once the post's underlyings land
        for u, spot, psr in underlyings:
            old, _p, ts = self.oracle.underlying_state(u)
            psrs[u] = psr
            if old:
                dev = gap_rate(self.oracle.underlying_params(u).max_deviation, psr)
                moves.append((spot, old, dev, now - ts))
        for iid, mark, _e, words in instruments:
            word = self.oracle.instrument_word(iid, 0)
            if words or (iid >> 32) & 0xFF not in (KIND_FUTURE, KIND_PERP) or word == 0:
                continue
            if (word >> 152) & 0xFF not in (EXPONENT_LISTED, EXPONENT_SETTLED):
                u = (iid >> 40) & 0xFFFF
                psr = psrs.get(u) or self.oracle.underlying_state(u)[1]
                dev = gap_rate(self.oracle.underlying_params(u).max_deviation, psr)
                moves.append((mark, word >> 160, dev, now - (word >> 112) % 2**40))
        for token, price in assets:
            old, ts = self.oracle_views.asset_price(token)
            dev = self.oracle.asset_max_deviation(token)
            if old and dev:
                moves.append((price, old, dev, now - ts))
        wait = 1
        for new, old, dev, passed in moves:
            need = seconds_for_move(new, old, dev) if dev else None
            if need is not None:
                wait = max(wait, need - passed)
        return wait

    def bounded_item(self, item, ts, spots):
        """An option item clamped into what `post` accepts at `ts` (`spots`: the spots of the
        same post; others are read from the oracle); futures and malformed items unchanged."""
        iid, mark, e, words = item
        kind = (iid >> 32) & 0xFF
        u = (iid >> 40) & 0xFFFF
        if kind not in (KIND_CALL, KIND_PUT) or u not in self.n_scenarios:
            return item
        if len(words) != n_slots(self.n_scenarios[u]):
            return item
        old_word = self.oracle.instrument_word(iid, 0)
        old_e = (old_word >> 152) & 0xFF
        if old_word == 0 or old_e == EXPONENT_SETTLED or e > 127:
            return item
        old = None if old_e == EXPONENT_LISTED else (old_word >> 160, (old_word >> 112) % 2**40)
        spot = spots.get(u) or self.oracle.underlying_state(u)[0]
        if spot == 0:  # the oracle refuses the post: "oracle: underlying not posted"
            return item
        params = self.oracle.underlying_params(u)
        ra = [v << e for v in unpack_entries(words, self.n_scenarios[u])]
        mark, ra = bound_option(
            kind,
            code_strike(iid % 2**32),
            spot,
            params.max_deviation,
            params.max_array_ratio,
            mark,
            ra,
            old,
            ts,
        )
        return self.option_item(iid, mark, ra)

    @staticmethod
    def option_item(iid, mark, ra_wad):
        e, entries = encode_risk_array(ra_wad)
        return (iid, mark, e, pack_entries(entries))

    @staticmethod
    def future_item(iid, mark):
        return (iid, mark, 0, [])

    @staticmethod
    def raw_option_item(iid, mark, e, entries):
        """An option item with an explicit exponent and int16 entries (no canonical encoding):
        for posts the oracle must refuse (exponent too large, non-canonical exponent)."""
        return (iid, mark, e, pack_entries(entries))

    @staticmethod
    def future_item_with_array(iid, mark, ra_wad):
        """A future posted with an array (the oracle computes futures arrays itself)."""
        e, entries = encode_risk_array(ra_wad)
        return (iid, mark, e, pack_entries(entries))

    @staticmethod
    def malformed_option_item(iid, mark, ra_wad, how):
        """An option item of the wrong length (`oracle: wrong array length`): one word missing
        ("short"), one word too many ("long"), or an entry beyond the grid's last ("stray")."""
        e, entries = encode_risk_array(ra_wad)
        words = pack_entries(entries)
        if how == "short":
            words = words[:-1]
        elif how == "long":
            words = [*words, 0]
        elif how == "stray":
            assert n_slots(len(entries) + 1) == len(words), "no spare entry in the last word"
            words = pack_entries([*entries, 1])
        else:
            raise ValueError(how)
        return (iid, mark, e, words)

    def settle_at_spot(self, underlying, spot, iids):
        """Hold `spot` over the settlement window of `iids` (one expiry, more than TWAP_WINDOW
        ahead), post it again after expiry and settle them on-chain: each settles at its payoff
        at TWAP = `spot`. Returns the settlement prices."""
        expiry = id_fields(iids[0])[3]
        start = expiry - TWAP_WINDOW - 1
        # a move beyond one post's cap (the gap rate) is walked first, a full cap a post
        rate = gap_rate(self.oracle.underlying_params(underlying).max_deviation, PSR)
        old = self.oracle.underlying_state(underlying)[0]
        while 0 < price_cap(old, rate, CAP_PERIOD) < abs(spot - old):
            old = clamp_price(spot, (old, 0), rate, CAP_PERIOD)
            self.post([(underlying, old, PSR)])
        assert self.now() < start, "the settlement window has begun"
        self.sleep(start - 1 - self.now())
        self.post([(underlying, spot, PSR)])
        self.sleep(expiry + 1 - self.now())
        self.post([(underlying, spot, PSR)])
        return [self.oracle.settle_expired(i, sender=self.keeper).return_value for i in iids]

    def flat_option_ra(self, underlying, scale):
        """A simple option array: value change = scale * c[s] (WAD), like a delta-`scale` option."""
        return [scale * c // WAD for c in self.grids[underlying]]
