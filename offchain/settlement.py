"""Settlement of an expired instrument, as ``RiskOracle.settle_expired`` computes it, to the wei.

The oracle keeps one observation per posted spot of an underlying, its timestamp and the spot,
and sums ``spot * seconds`` over the steps in the window (the spot is constant between posts).
This reference takes another route to the same integral: each observation carries the integral
of the spots before it (spot-seconds, exact), and the window's integral is a difference of two
of them. The settlement index is the time-weighted average of the spot over the
``TWAP_WINDOW`` seconds before expiry, the window clipped at the first observation; the payoff
of one long contract is the future's index, the call's ``max(TWAP - K, 0)`` or the put's
``max(K - TWAP, 0)``, times ``contract_size // WAD``.

Worked example: spot 60,000 posted at t=0, 63,000 at t=1,200, expiry 1,800 (window [0, 1,800]):
TWAP = (60,000 x 1,200 + 63,000 x 600) / 1,800 = 61,000; a put struck at 65,000 pays 4,000.
"""

from __future__ import annotations

import bisect
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from offchain.fixed_point import WAD
from offchain.margin import Kind

__all__ = [
    "TWAP_WINDOW",
    "Observation",
    "SettlementError",
    "observations",
    "payoff",
    "settlement",
    "twap",
]

TWAP_WINDOW = 1800  # seconds; RiskOracle.TWAP_WINDOW
MAX_PRICE = 2**96 - 1


class SettlementError(ValueError):
    """The oracle would revert with ``oracle: <reason>``."""


@dataclass(frozen=True)
class Observation:
    """One stored spot: when, the spot (WAD), and spot-seconds before it (the reference's)."""

    timestamp: int
    spot: int
    cumulative: int


def observations(posts: Iterable[tuple[int, int]]) -> list[Observation]:
    """The observations the oracle stores for spots posted as ``(timestamp, spot WAD)`` in order
    (timestamps strictly increasing, as the oracle requires)."""
    out: list[Observation] = []
    for t, spot in posts:
        if out:
            prev = out[-1]
            if t <= prev.timestamp:
                raise ValueError(f"timestamps must increase: {t} after {prev.timestamp}")
            cum = prev.cumulative + prev.spot * (t - prev.timestamp)
        else:
            cum = 0
        out.append(Observation(int(t), int(spot), cum))
    return out


def _cumulative_at(obs: Sequence[Observation], x: int) -> int:
    """Spot-seconds up to ``x``, ``obs[0].timestamp <= x``: the last
    observation at or before ``x`` with its spot held until ``x``."""
    k = bisect.bisect_right([o.timestamp for o in obs], x) - 1
    o = obs[k]
    return o.cumulative + o.spot * (x - o.timestamp)


def twap(obs: Sequence[Observation], expiry: int, now: int, window: int = TWAP_WINDOW) -> int:
    """TWAP (WAD) of the spot over ``[expiry - window, expiry]`` at block time ``now``.

    Raises:
        SettlementError: ``not expired`` (``now < expiry``), ``no spot after expiry`` (the last
            observation is not after expiry: a later post could still land in the window),
            ``no spot before expiry``.
    """
    if now < expiry:
        raise SettlementError("not expired")
    if not obs or obs[-1].timestamp <= expiry:
        raise SettlementError("no spot after expiry")
    if obs[0].timestamp >= expiry:
        raise SettlementError("no spot before expiry")
    start = max(obs[0].timestamp, expiry - window)
    area = _cumulative_at(obs, expiry) - _cumulative_at(obs, start)
    return area // (expiry - start)


def payoff(kind: Kind, strike: int, contract_size: int, index: int) -> int:
    """Value (WAD) of one long contract at the settlement ``index``: future ``index``, call
    ``max(index - K, 0)``, put ``max(K - index, 0)``, times ``contract_size // WAD``.

    Raises:
        SettlementError: ``bad price`` when the value does not fit the oracle's 96-bit mark.
    """
    kind = Kind(kind)
    if kind is Kind.FUTURE:
        v = index
    elif kind is Kind.CALL:
        v = max(index - strike, 0)
    else:
        v = max(strike - index, 0)
    price = v * contract_size // WAD
    if price > MAX_PRICE:
        raise SettlementError("bad price")
    return price


def settlement(
    obs: Sequence[Observation],
    kind: Kind,
    strike: int,
    contract_size: int,
    expiry: int,
    now: int,
) -> tuple[int, int]:
    """``(TWAP, price)`` that ``RiskOracle.settle_expired`` stores for an instrument."""
    index = twap(obs, expiry, now)
    return index, payoff(kind, strike, contract_size, index)
