"""The bounds ``RiskOracle.post`` puts on an option's mark and risk array, as the contract's exact
integer rules, and the clamp that brings a quote inside them (so a keeper's post never reverts
on them). Marks and arrays are per contract; an option's contract size is 1.

- Band (zero rates, forward = spot): ``intrinsic - tol <= mark <= hi``, ``hi`` the spot for a
  call and the strike for a put, ``tol = spot * BAND_TOLERANCE / WAD``.
- Deviation, after the first post: ``|mark - ref| <= cap``, ``ref`` the old mark clamped into
  the new band, ``cap = max(ref, spot * SCALE_FLOOR / WAD) * dev * min(dt, CAP_PERIOD) /
  (WAD * CAP_PERIOD)`` (one floor), ``dt`` the seconds since the instrument's previous post.
- Spot, future mark, collateral price, after the first post: ``|new - old| <= old * dev *
  min(dt, CAP_PERIOD) / (WAD * CAP_PERIOD)`` (one floor; ``price_cap``): a burst of posts in
  one block moves a price no further than the seconds between them allow. ``dev`` is the
  collateral's max_deviation for a collateral price and, for a spot or a future's mark, the
  gap rate ``min(max_deviation, 3 * psr >> 2)`` (``gap_rate``: GAP_RATIO = 0.75 of the scan
  range in force after the post's underlyings), so one post never moves a spot or a future
  by the whole scan range that margined it. ``clamp_price`` posts the capped value; the keeper
  catches up at the cap's pace.
- Array (entries ``v``, exponent ``e``): ``-(loss_cap >> e) <= v <= gain_cap >> e`` with
  ``loss_cap = min(mark, ratio_cap)`` and ``gain_cap = ratio_cap`` (call) or
  ``min(ratio_cap, strike - mark)`` (put), ``ratio_cap = spot * max_array_ratio / WAD``.
- Strike code (the low 32 bits of an option's id): ``mantissa | exponent << 27``, strike =
  mantissa * 10**exponent WAD, the exponent as large as possible.
"""

from __future__ import annotations

from collections.abc import Sequence

from offchain.fixed_point import WAD, encode_risk_array

__all__ = [
    "BAND_TOLERANCE",
    "CAP_PERIOD",
    "GAP_RATIO",
    "SCALE_FLOOR",
    "array_limits",
    "band",
    "bound_option",
    "clamp_mark",
    "clamp_price",
    "code_strike",
    "deviation_cap",
    "gap_rate",
    "price_cap",
    "seconds_for_move",
    "strike_code",
]

BAND_TOLERANCE = 10**15  # 0.1 % of spot below intrinsic value
SCALE_FLOOR = 10**16  # deviation caps are relative to at least 1 % of spot
CAP_PERIOD = 900  # seconds until a deviation cap reaches max_deviation
GAP_RATIO = 3 * WAD // 4  # a spot or future moves at most this share of its scan range a period
STRIKE_MANTISSA = 2**27 - 1
STRIKE_EXP_SHIFT = 27
MAX_STRIKE = 2**96 - 1
KIND_CALL, KIND_PUT = 1, 2


def strike_code(strike: int) -> int:
    """The 32-bit code of a strike (WAD) in an option's id; ValueError when the strike has
    more than 27 bits of decimal mantissa (``RiskOracle``: "oracle: strike not representable")."""
    if not 0 < strike <= MAX_STRIKE:
        raise ValueError(f"strike must be in (0, 2**96), got {strike}")
    m, x = strike, 0
    while x < 31 and m % 10 == 0:
        m, x = m // 10, x + 1
    if m > STRIKE_MANTISSA:
        raise ValueError(
            f"strike {strike} has {len(str(m))} significant digits; round it to at most 8 "
            "(its decimal mantissa must fit 27 bits)"
        )
    return m | (x << STRIKE_EXP_SHIFT)


def code_strike(code: int) -> int:
    """The strike (WAD) of a 32-bit strike code."""
    return (code & STRIKE_MANTISSA) * 10 ** ((code >> STRIKE_EXP_SHIFT) & 31)


def band(kind: int, strike: int, spot: int) -> tuple[int, int]:
    """``(lo, hi)``: the marks ``post`` accepts for one contract at ``spot`` (WAD)."""
    if kind == KIND_PUT:
        hi, lo = strike, strike - min(spot, strike)
    else:
        hi, lo = spot, spot - min(strike, spot)
    tol = spot * BAND_TOLERANCE // WAD
    return lo - min(lo, tol), hi


def deviation_cap(ref: int, spot: int, dev: int, dt: int) -> int:
    """Largest ``|mark - ref|`` after ``dt`` seconds (``dev`` the underlying's max_deviation)."""
    base = max(ref, spot * SCALE_FLOOR // WAD)
    return base * dev * min(dt, CAP_PERIOD) // (WAD * CAP_PERIOD)


def gap_rate(max_deviation: int, psr: int) -> int:
    """The deviation rate of a spot or future mark (WAD per ``CAP_PERIOD``): ``max_deviation``
    or ``GAP_RATIO`` of the scan range ``psr``, the smaller (``3 * psr >> 2`` on-chain, the same
    floor)."""
    return min(max_deviation, psr * GAP_RATIO // WAD)


def price_cap(old: int, dev: int, dt: int) -> int:
    """Largest ``|new - old|`` of a spot, future mark or collateral price ``dt`` seconds after
    its previous post ``old``."""
    return old * dev * min(dt, CAP_PERIOD) // (WAD * CAP_PERIOD)


def clamp_price(new: int, old: tuple[int, int] | None, dev: int, ts: int) -> int:
    """``new`` moved into the cap around the previous ``(price, timestamp)`` for a post at
    ``ts`` (unchanged on a first post)."""
    if old is None or old[0] == 0:
        return new
    cap = price_cap(old[0], dev, ts - old[1])
    return min(max(new, old[0] - cap), old[0] + cap)


def seconds_for_move(new: int, old: int, dev: int) -> int | None:
    """Fewest seconds after a post of ``old`` before ``new`` may be posted (at least 1); None
    when even a full ``CAP_PERIOD`` does not allow it."""
    gap = abs(new - old)
    if gap > price_cap(old, dev, CAP_PERIOD):
        return None
    # smallest dt with old * dev * dt // (WAD * CAP_PERIOD) >= gap
    dt = -(-gap * WAD * CAP_PERIOD // (old * dev)) if gap else 1
    return max(1, dt)


def clamp_mark(
    kind: int,
    strike: int,
    spot: int,
    dev: int,
    mark: int,
    old: tuple[int, int] | None = None,
    ts: int = 0,
) -> int:
    """``mark`` moved into the band and, given the instrument's previous ``(mark, timestamp)``,
    into the deviation cap around it (the band holds the reference, so both can hold)."""
    lo, hi = band(kind, strike, spot)
    if old is not None:
        ref = min(max(old[0], lo), hi)
        cap = deviation_cap(ref, spot, dev, ts - old[1])
        mark = min(max(mark, ref - cap), ref + cap)
    return min(max(mark, lo), hi)


def array_limits(
    kind: int, strike: int, spot: int, ratio: int, mark: int, e: int
) -> tuple[int, int]:
    """``(g, l)``: entries must lie in ``[-l, g]`` at exponent ``e`` (``ratio`` the
    underlying's max_array_ratio)."""
    ratio_cap = spot * ratio // WAD
    gain_cap = min(ratio_cap, strike - mark) if kind == KIND_PUT else ratio_cap
    return min(gain_cap >> e, 2**15 - 1), min(min(mark, ratio_cap) >> e, 2**15)


def bound_option(
    kind: int,
    strike: int,
    spot: int,
    dev: int,
    ratio: int,
    mark: int,
    ra: Sequence[int],
    old: tuple[int, int] | None = None,
    ts: int = 0,
) -> tuple[int, list[int]]:
    """``(mark, ra)`` clamped so that ``post`` accepts them: the mark by ``clamp_mark``, each
    array value into the limits at the exponent it encodes with (values clamped to multiples of
    ``2**e`` encode exactly, so a second pass at most lowers ``e`` and loosens nothing)."""
    mark = clamp_mark(kind, strike, spot, dev, mark, old, ts)
    out = list(ra)
    while True:
        e, entries = encode_risk_array(out)
        g, l_ = array_limits(kind, strike, spot, ratio, mark, e)
        if all(-l_ <= v <= g for v in entries):
            return mark, out
        out = [min(max(v, -l_), g) << e for v in entries]
