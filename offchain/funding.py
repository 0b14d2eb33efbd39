"""Perpetual funding: the integer reference of the oracle's funding index (docs/fixed-point.md §9).

One word per underlying with a perp, ``F int128 [0, 128) | rate int64 [128, 192) | t [192, 232) |
cap [232, 256)`` (cap in units of 10**12 WAD per hour). ``F`` is the cumulative funding paid by one
long contract (WAD USD, signed): it rises while the rate is positive (perp above the index). Between
funding posts it accrues at the stored rate on the underlying's current spot, for at most
``FUNDING_GAP`` seconds after the last post (a silent keeper stops funding):

``F_now = F + div_floor(rate * spot * min(now - t, FUNDING_GAP), 3600 * WAD)``.

>>> w = pack_funding_word(0, 10**14, 1_000, 10**16)
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
    "FundingState",
    "clamp_rate",
    "funding_index_now",
    "funding_word_after_post",
    "pack_funding_word",
    "unpack_funding_word",
]

#: Seconds of accrual after the last funding post at most (RiskOracle.FUNDING_GAP).
FUNDING_GAP = 8 * 3600
#: The cap is stored in units of 10**12 WAD per hour; a cap must be a multiple of it.
CAP_UNIT = 10**12
#: Largest hourly funding-rate cap a perp may be listed with: 4 % per hour (Hyperliquid's cap).
MAX_FUNDING_CAP = 4 * 10**16
HOUR = 3600
RATE_SHIFT, FTS_SHIFT, CAP_SHIFT = 128, 192, 232


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


def unpack_funding_word(word: int) -> FundingState:
    """The fields of a funding word (``RiskOracle.funding_state`` returns the same)."""
    if not 0 <= word < 2**256:
        raise ValueError(f"a funding word is a uint256, got {word}")
    return FundingState(
        _signed(word, 128),
        _signed(word >> RATE_SHIFT, 64),
        (word >> FTS_SHIFT) & (2**40 - 1),
        (word >> CAP_SHIFT) * CAP_UNIT,
    )


def pack_funding_word(index: int, rate: int, t: int, cap: int) -> int:
    """The word of ``(index, rate, t, cap)``; each field must fit its bits, ``cap`` a multiple
    of ``CAP_UNIT`` in ``(0, MAX_FUNDING_CAP]``."""
    if not -(2**127) <= index < 2**127 or not -(2**63) <= rate < 2**63 or not 0 <= t < 2**40:
        raise ValueError(f"funding fields out of range: index {index}, rate {rate}, t {t}")
    if not 0 < cap <= MAX_FUNDING_CAP or cap % CAP_UNIT:
        raise ValueError(
            f"funding cap must be a multiple of 10**12 in (0, {MAX_FUNDING_CAP}], got {cap}"
        )
    return (
        (index % 2**128)
        | ((rate % 2**64) << RATE_SHIFT)
        | (t << FTS_SHIFT)
        | ((cap // CAP_UNIT) << CAP_SHIFT)
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


def funding_word_after_post(word: int, spot: int, now: int, rate: int) -> int:
    """The word after ``post_funding`` of ``rate`` at ``now`` with the current ``spot``:
    ``F := F_now``, ``t := now``, ``rate := clamp(rate, -cap, cap)``."""
    f = unpack_funding_word(word)
    return pack_funding_word(funding_index_now(f, spot, now), clamp_rate(rate, f.cap), now, f.cap)
