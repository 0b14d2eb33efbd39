"""What the keeper marks a perpetual at and the funding rate it posts for it.

The perp mark: the keeper's data is spot history (daily closes, intraday steps), which has no
perpetual market, so the perp is marked at ``spot x (1 + premium)`` with ``premium`` a stated
model, ``KeeperConfig.perp_premium``: 0 by default (the perp at the index), a constant the
demo sets to show funding changing hands. A venue with a perp order book would mark it from
that book instead.

The rate: each round, for every underlying with a perp, the hourly rate of
``offchain.funding_rate`` from that round's model perp mark and spot (``compute_quotes``, before
``bound_quotes``: the oracle's per-post caps let a posted mark lag its spot in a fast market,
and that lag is no premium anyone quoted), capped at the lower of the perp's on-chain cap and the
parameter set's; ``RiskOracle.post_funding`` clamps it again.
It is posted when it differs from the rate last posted or when the last post is
``funding_heartbeat`` old: the oracle accrues a posted rate for at most 8 hours (FUNDING_GAP),
so a quiet market still gets a post well inside that.

Pure functions: no chain, no clock, no files.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from offchain.fixed_point import WAD, to_wad
from offchain.funding_rate import hourly_funding_rate
from offchain.keeper.policy import Posted, Quote
from offchain.margin import Kind
from offchain.params import FundingParams
from offchain.sdk import InstrumentMeta

__all__ = ["FundingPost", "funding_posts", "perp_mark"]

#: A funding post's name in the keeper's record of what it posted (``state.posted``).
PREFIX = "F:"


def perp_mark(spot: int, premium: float) -> int:
    """``spot x (1 + premium)`` (WAD): the mark of a perp of contract size 1."""
    if not -1.0 < premium < 1.0:
        raise ValueError(f"perp premium must be in (-1, 1), got {premium}")
    return spot + spot * to_wad(premium) // WAD


@dataclass(frozen=True)
class FundingPost:
    """One element of ``RiskOracle.post_funding``: the underlying and its hourly rate (WAD)."""

    name: str  # "F:<underlying>"
    underlying: int
    rate: int

    @property
    def arg(self) -> tuple[int, int]:
        return (self.underlying, self.rate)


def funding_posts(
    ts: int,
    quotes: Mapping[str, tuple[Quote, object]],
    instruments: Sequence[InstrumentMeta],
    names: Mapping[int, str],
    underlying_names: Mapping[int, str],
    posted: Mapping[str, Posted],
    params: FundingParams,
    heartbeat: int,
) -> list[FundingPost]:
    """The funding rates to post at ``ts``, by underlying id.

    ``quotes`` are the round's model quotes (``U:<name>`` the spot, the perp's name its mark);
    a perp whose spot or mark is not quoted this round is skipped. A perp's cap is its listing's
    (``InstrumentMeta.strike`` holds it for kind 3) when known, else the parameter set's.
    """
    out = []
    for m in sorted(instruments, key=lambda m: m.underlying):
        if m.kind is not Kind.PERP or m.underlying not in underlying_names:
            continue
        und = underlying_names[m.underlying]
        spot, perp = quotes.get(f"U:{und}"), quotes.get(names.get(m.id, ""))
        if spot is None or perp is None:
            continue
        cap = params.wad("cap_per_hour")
        if m.strike > 0:
            cap = min(cap, m.strike)
        rate = hourly_funding_rate(
            int(perp[0].mark),
            int(spot[0].mark),
            interest=params.wad("interest"),
            dampener=params.wad("dampener"),
            cap=cap,
        )
        name = f"{PREFIX}{und}"
        last = posted.get(name)
        if last is None or int(last.quote.mark) != rate or ts - last.posted_at >= heartbeat:
            out.append(FundingPost(name, m.underlying, rate))
    return out
