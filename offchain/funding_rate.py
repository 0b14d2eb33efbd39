"""The hourly funding rate a perpetual pays: from the premium of its mark over the index.

The form is Hyperliquid's and BitMEX's (and Binance's): an 8-hour rate

    p    = (perp_mark - index) / index                      the premium
    F_8h = p + clamp(i - p, -d, +d)                          i: interest, d: the dampener

paid hourly at one eighth of it, then capped at the perp's hourly cap:

    rate = clamp(F_8h / 8, -cap, +cap)       (WAD per hour; longs pay when rate > 0)

With the perp at the index (p = 0) the rate is the interest, i / 8 per hour; for |p - i| <= d
the clamp returns the interest (the premium is damped away); beyond it the rate follows the
premium less the dampener. ``index`` is the underlying's spot as posted to the oracle.

Sources (docs/parameters.md, "Funding", has the values and their anchors):

- Hyperliquid docs, "Funding" (hyperliquid.gitbook.io/hyperliquid-docs/trading/funding):
  ``F = Average Premium Index (P) + clamp(interest rate - P, -0.0005, 0.0005)`` for 8 hours,
  paid every hour at one eighth of it; interest 0.01% per 8 hours; funding capped at 4% per
  hour. Its worked example: premium 1%, interest 0.01% -> 1% - 0.05% = 0.95% per 8 hours.
- BitMEX, "Perpetual Contracts Guide" (bitmex.com/app/perpetualContractsGuide): ``Funding Rate =
  Premium Index + clamp(Interest Rate - Premium Index, 0.05%, -0.05%)``, every 8 hours.
- Deribit, "Funding Specifications" (support.deribit.com, article 31424939178397): premium rate
  ``(mark - index) / index``; a damper of +-0.025% (``max(0.025%, p) + min(-0.025%, p)``) and a
  per-instrument cap, paid continuously as ``rate x time / 8 hours``: the same shape without the
  interest term.

Two differences, both deliberate: Hyperliquid averages the premium sampled every 5 seconds over
the hour; here the keeper posts the premium of each round and the oracle accrues the posted rate
until the next post (a piecewise-constant rate, the time-weighted average of the posts). And the
oracle clamps the posted rate to the cap again (``RiskOracle.post_funding``), so a keeper bug
cannot exceed it.

Integer arithmetic, WAD in and out: the premium and the division by 8 round toward zero, so the
rate of a premium and of its negative differ only through the interest term.
"""

from __future__ import annotations

from offchain.fixed_point import WAD, div_trunc

__all__ = ["FUNDING_PERIOD_HOURS", "hourly_funding_rate", "premium_wad"]

#: The period the interest and the dampener are quoted for (hours): 8 at every venue cited.
FUNDING_PERIOD_HOURS = 8


def _int(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ValueError(f"{name} must be an int (WAD), got {type(value).__name__}")
    return value


def premium_wad(perp_mark: int, index: int) -> int:
    """``(perp_mark - index) / index`` in WAD, rounded toward zero.

    >>> premium_wad(10_100 * 10**18, 10_000 * 10**18) == 10**16   # 1%
    True
    """
    perp_mark, index = _int("perp_mark", perp_mark), _int("index", index)
    if index <= 0:
        raise ValueError(f"index must be > 0, got {index}")
    if perp_mark <= 0:
        raise ValueError(f"perp_mark must be > 0, got {perp_mark}")
    return div_trunc((perp_mark - index) * WAD, index)


def hourly_funding_rate(
    perp_mark: int, index: int, *, interest: int, dampener: int, cap: int
) -> int:
    """The hourly funding rate (WAD per hour, signed; longs pay when positive).

    Args:
        perp_mark: the perp's mark (WAD USD per contract of size 1).
        index: the underlying's spot (WAD USD).
        interest: the interest rate per 8 hours (WAD; Hyperliquid's 0.01% is ``10**14``).
        dampener: the clamp on ``interest - premium`` per 8 hours (WAD, >= 0; 0.05% is
            ``5 * 10**14``).
        cap: the hourly cap (WAD per hour, > 0); the result lies in ``[-cap, cap]``.

    >>> hourly_funding_rate(10**18, 10**18, interest=10**14, dampener=5 * 10**14, cap=4 * 10**16)
    12500000000000
    """
    interest, dampener = _int("interest", interest), _int("dampener", dampener)
    cap = _int("cap", cap)
    if dampener < 0:
        raise ValueError(f"dampener must be >= 0, got {dampener}")
    if cap <= 0:
        raise ValueError(f"cap must be > 0, got {cap}")
    p = premium_wad(perp_mark, index)
    rate_8h = p + min(max(interest - p, -dampener), dampener)
    hourly = div_trunc(rate_8h, FUNDING_PERIOD_HOURS)
    return min(max(hourly, -cap), cap)
