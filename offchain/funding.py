"""Perpetual funding: the integer reference of the oracle's funding index (docs/fixed-point.md §9).

One word per underlying with a perp, ``F int100 [0, 100) | rate int56 [100, 156) | t [156, 196) |
som_rate [196, 256)`` (the underlying's short-option-minimum rate, kept there so the snapshot reads
one word); the cap is stored apart. ``F`` is the cumulative funding paid by one
long contract (WAD USD, signed): it rises while the rate is positive (perp above the index). Between
funding posts it accrues at the stored rate on the underlying's current spot, for at most
``FUNDING_GAP`` seconds after the last post (a silent keeper stops funding):

``F_now = F + div_floor(rate * spot * min(now - t, FUNDING_GAP), 3600 * WAD)``.

>>> w = pack_funding_word(0, 10**14, 1_000)
>>> funding_index_now(w, 2_000 * WAD, 1_000 + 3_600)  # 0.01 %/h on 2,000 USD for an hour
200000000000000000
>>> funding_index_now(w, 2_000 * WAD, 1_000 + 10 * 3_600)  # capped at 8 hours of accrual
1600000000000000000
"""

from __future__ import annotations

from dataclasses import dataclass

from offchain.fixed_point import WAD, div_floor

__all__ = [
    "CAP_UNIT",
    "FUNDING_GAP",
    "MAX_FUNDING_CAP",
    "MAX_FUNDING_INDEX",
    "FundingState",
    "clamp_rate",
    "funding_index_now",
    "funding_state_after_post",
    "pack_funding_word",
    "unpack_funding_word",
]

#: Seconds of accrual after the last funding post at most (RiskOracle.FUNDING_GAP).
FUNDING_GAP = 8 * 3600
#: A cap must be a multiple of 10**12 WAD per hour.
CAP_UNIT = 10**12
#: Largest hourly funding-rate cap a perp may be listed with: 3 % per hour (the rate is an int56).
MAX_FUNDING_CAP = 3 * 10**16
#: ``post_funding`` refuses an index at or beyond this size (F_now then fits its int100).
MAX_FUNDING_INDEX = 2**98
HOUR = 3600
RATE_SHIFT, FTS_SHIFT, SOM_SHIFT = 100, 156, 196


@dataclass(frozen=True)
class FundingState:
    """A decoded funding word: index ``F`` and hourly ``rate`` (WAD, signed), time ``t`` of the
    last funding post (the listing's before the first) and ``cap`` (WAD per hour)."""

    index: int
    rate: int
    t: int
    cap: int


def _signed(x: int, bits: int) -> int:
    x &= (1 << bits) - 1
    return x - (1 << bits) if x >> (bits - 1) else x


def unpack_funding_word(word: int, cap: int = 0) -> FundingState:
    """The fields of a funding word with the perp's ``cap`` (stored apart; ``RiskOracle.
    funding_state`` returns the same four values)."""
    if not 0 <= word < 2**256:
        raise ValueError(f"a funding word is a uint256, got {word}")
    return FundingState(
        _signed(word, 100),
        _signed(word >> RATE_SHIFT, 56),
        (word >> FTS_SHIFT) & (2**40 - 1),
        cap,
    )


def pack_funding_word(index: int, rate: int, t: int, som_rate: int = 0) -> int:
    """The word of ``(index, rate, t)`` with the underlying's ``som_rate``; each field must fit
    its bits."""
    if not -(2**99) <= index < 2**99 or not -(2**55) <= rate < 2**55 or not 0 <= t < 2**40:
        raise ValueError(f"funding fields out of range: index {index}, rate {rate}, t {t}")
    if not 0 <= som_rate < 2**60:
        raise ValueError(f"som_rate out of range: {som_rate}")
    return (
        (index % 2**100)
        | ((rate % 2**56) << RATE_SHIFT)
        | (t << FTS_SHIFT)
        | (som_rate << SOM_SHIFT)
    )


def funding_index_now(word_or_fields: int | FundingState, spot: int, now: int) -> int:
    """``F_now`` (WAD per contract of size 1) of a funding word or its fields at time ``now``
    with the underlying's current spot (WAD), as ``RiskOracle.snapshot`` and
    ``RiskOracle.funding_index`` compute it.

    Raises:
        ValueError: a spot outside ``[0, 2**96)`` or ``now`` before the word's time.
    """
    f = (
        word_or_fields
        if isinstance(word_or_fields, FundingState)
        else unpack_funding_word(word_or_fields)
    )
    if not 0 <= spot < 2**96:
        raise ValueError(f"spot must be in [0, 2**96), got {spot}")
    if now < f.t:
        raise ValueError(f"now ({now}) is before the funding word's time ({f.t})")
    return f.index + div_floor(f.rate * spot * min(now - f.t, FUNDING_GAP), HOUR * WAD)


def clamp_rate(rate: int, cap: int) -> int:
    """The rate ``post_funding`` stores: clamped into ``[-cap, cap]`` (exchanges clamp)."""
    return max(-cap, min(cap, rate))


def funding_state_after_post(state: FundingState, spot: int, now: int, rate: int) -> FundingState:
    """The state after ``post_funding`` of ``rate`` at ``now`` with the current ``spot``:
    ``F := F_now``, ``t := now``, ``rate := clamp(rate, -cap, cap)``.

    Raises:
        ValueError: ``|F_now| >= 2**98`` (the chain refuses the post: "oracle: funding out of
            bounds").
    """
    f = funding_index_now(state, spot, now)
    if abs(f) >= MAX_FUNDING_INDEX:
        raise ValueError(f"funding index {f} out of bounds (|F| < 2**98)")
    return FundingState(f, clamp_rate(rate, state.cap), now, state.cap)
