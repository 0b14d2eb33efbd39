"""Decoding on-chain data for the integer reference: the oracle's ``InstrumentListed`` events
(``InstrumentMeta``) and its packed storage words (``decode_market``).

Worked example: an option's storage word 0 holds
``mark << 160 | e << 152 | timestamp << 112 | entries 0..6``; the word
``(500 * 10**18) << 160 | 56 << 152 | 1_700_000_000 << 112 | 0xFFFF0001`` decodes to mark 500 USD,
exponent 56 and entries ``[1, -1, 0, ...]``, i.e. a risk array of ``[2**56, -2**56, 0, ...]`` wei.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal

from offchain.codec import (
    EXPONENT_LISTED,
    EXPONENT_SETTLED,
    EXPONENT_SHIFT,
    MARK_SHIFT,
    TS_SHIFT,
    id_fields,
    unpack_entries,
)
from offchain.fixed_point import WAD, scenario_lin_wad
from offchain.margin import (
    AccountInt,
    AccountMarginInt,
    CollateralInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
    account_margin_int,
    settlement_cash,
)

__all__ = ["ChainMarket", "InstrumentMeta", "decode_market"]

MASK40 = 2**40 - 1
MASK96 = 2**96 - 1
MASK64 = 2**64 - 1


@dataclass(frozen=True)
class InstrumentMeta:
    """A listed instrument as the oracle's ``InstrumentListed`` event describes it (WAD)."""

    id: int
    underlying: int
    kind: Kind
    strike: int
    expiry: int
    contract_size: int = WAD

    @property
    def expires(self) -> bool:
        """False for a perp: its expiry field is PERP_EXPIRY, never a date."""
        return self.kind is not Kind.PERP

    def name(self, underlying_names: Mapping[int, str]) -> str:
        """``BTC-20200327-C-9000``, ``ETH-20200327-F``: stable across restarts and keepers.

        The day alone names the usual 08:00 UTC expiry; any other time is spelled out to the
        second (``BTC-20200327T093001-F``), so two listings never share a name. A perp (one per
        underlying, never expiring) is ``BTC-PERP``."""
        if self.kind is Kind.PERP:
            return f"{underlying_names.get(self.underlying, str(self.underlying))}-PERP"
        when = datetime.fromtimestamp(self.expiry, UTC)
        day = when.strftime("%Y%m%d" if when.strftime("%H%M%S") == "080000" else "%Y%m%dT%H%M%S")
        und = underlying_names.get(self.underlying, str(self.underlying))
        if self.kind is Kind.FUTURE:
            return f"{und}-{day}-F"
        strike = Decimal(self.strike) / WAD
        return f"{und}-{day}-{'C' if self.kind is Kind.CALL else 'P'}-{strike.normalize():f}"


@dataclass(frozen=True)
class ChainMarket:
    """Oracle state for the integer reference: ``market`` (posted instruments, underlyings,
    collateral keyed by engine asset index), settlement prices of settled instruments, the
    posting timestamp of each instrument and the engine's ``im_factor``."""

    market: MarketInt
    settled: Mapping[int, int]
    timestamps: Mapping[int, int]
    im_factor: int
    asset_index: Mapping[str, int]

    def account(
        self,
        cash: int,
        positions: Mapping[int, int],
        collateral: Mapping[str, int],
        vm_basis: int = 0,
    ) -> AccountInt:
        """An ``AccountInt`` with settled positions folded into cash exactly as the engine's
        ``portfolio._risk`` does: ``div_floor(q * P, WAD)`` per settled position; a settled
        (wound-down) perp's funding, ``q * F_now``, folded into the basis (docs/fixed-point.md
        §10: the engine counts it until the position is settled, then keeps it there)."""
        live: dict[int, int] = {}
        for j, q in positions.items():
            if q == 0:
                continue
            if j in self.settled:
                cash += settlement_cash(q, self.settled[j])
                und = self.market.underlyings.get((j >> 40) & 0xFFFF)
                if (j >> 32) & 0xFF == Kind.PERP and und is not None:
                    vm_basis += q * und.funding_index
            else:
                live[j] = q
        coll = {self.asset_index[a]: amt for a, amt in collateral.items() if amt}
        return AccountInt(cash, live, coll, vm_basis)

    def account_margin(self, account: AccountInt) -> AccountMarginInt:
        """Equity, IM and MM of ``account`` by the integer reference, to the wei as on-chain."""
        return account_margin_int(account, self.market, self.im_factor)


def decode_market(
    instrument_words: Mapping[int, Sequence[int]],
    underlying_words: Mapping[int, Sequence[int]],
    asset_words: Mapping[str, int],
    assets: Mapping[str, tuple[int, int, int]],
    im_factor: int,
    stale_before: int | None = None,
    links: Mapping[str, int] | None = None,
    grids: Mapping[int, Sequence[int]] | None = None,
) -> ChainMarket:
    """Build the integer reference's market from ``RiskOracle.snapshot`` words.

    Args:
        instrument_words: id -> the three storage words (all zero: listed, never posted).
        underlying_words: id -> ``[spot | psr << 96 | ts << 160, scenarios | F << 128, som_rate]``.
        asset_words: token address -> ``price | ts << 96``.
        assets: token address -> (engine asset index, haircut WAD, decimals).
        im_factor: the engine's IM factor (WAD).
        stale_before: if given, a collateral price stamped before it (or never posted) counts
            as zero, as ``MarginEngine.account_state`` and the Liquidator value collateral
            (``ts + max_age < block.timestamp``: pass ``block.timestamp - max_age``).
        links: token address -> the underlying it is linked to (``EngineAdmin.asset_underlying``;
            absent or 0: unlinked).
        grids: underlying id -> its grid's ``c[s]`` (WAD), for the spot legs of linked
            collateral (docs/fixed-point.md §5.1) at the posted psr.
    """
    links = {a: u for a, u in (links or {}).items() if u}
    grids = grids or {}
    unds = {}
    for u, w in underlying_words.items():
        # w[1]: the scenario count in its low byte; with a perp, its funding index F above bit
        # 128 (RiskOracle.snapshot)
        if not w[1] & 255:
            continue
        psr = (w[0] >> 96) & MASK64
        lin = tuple(scenario_lin_wad(grids[u], psr)) if u in grids and psr else ()
        # the scenario word carries the perp's funding index above bit 128 (int128)
        f = w[1] >> 128
        unds[u] = UnderlyingInt(w[0] & MASK96, w[2], w[1] & 255, lin, f - 2**128 if f >> 127 else f)
    instruments: dict[int, InstrumentInt] = {}
    settled: dict[int, int] = {}
    stamps: dict[int, int] = {}
    for iid, words in instrument_words.items():
        w0 = words[0]
        exponent = (w0 >> EXPONENT_SHIFT) & 0xFF
        mark = w0 >> MARK_SHIFT
        if w0 == 0 or exponent == EXPONENT_LISTED:
            continue
        stamps[iid] = (w0 >> TS_SHIFT) & MASK40
        if exponent == EXPONENT_SETTLED:
            settled[iid] = mark
            continue
        _, kind, und, _ = id_fields(iid)
        n = unds[und].n_scenarios
        entries = unpack_entries([w0, *words[1:]], n)
        instruments[iid] = InstrumentInt(und, Kind(kind), mark, exponent, tuple(entries))
    colls = {}
    for addr, (index, haircut, decimals) in assets.items():
        word = asset_words.get(addr, 0)
        stamp = word >> 96
        stale = stale_before is not None and (stamp == 0 or stamp < stale_before)
        colls[index] = CollateralInt(
            0 if stale else word & MASK96, haircut, decimals, links.get(addr)
        )
    return ChainMarket(
        MarketInt(instruments, unds, colls),
        settled,
        stamps,
        im_factor,
        {a: v[0] for a, v in assets.items()},
    )
