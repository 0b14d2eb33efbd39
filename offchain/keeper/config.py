"""What the keeper is told: its knobs (``KeeperConfig``) and what it knows of each underlying
(``UnderlyingInfo``, read from the deployment by ``runner.keeper_underlyings``)."""

from __future__ import annotations

from dataclasses import dataclass

from offchain.scenarios import ScenarioGrid

__all__ = ["KeeperConfig", "UnderlyingInfo"]


@dataclass(frozen=True)
class KeeperConfig:
    """Knobs of the keeper (defaults for a public network; the demo shortens nothing but the
    heartbeat, whose clock is the replayed one)."""

    threshold: float = 0.002  # relative move that triggers a post
    heartbeat: int = 600  # seconds; must stay below the oracle's max_age
    heartbeat_margin: int = 60
    block_gas_limit: int = 30_000_000
    gas_fraction: float = 0.5  # share of a block one batch may take
    base_gas: int = 60_000  # per post transaction
    vol_default: float = 0.8  # annualised, when the tick has no vol for an underlying
    vol_floor: float = 0.2
    skew: float = -0.1  # d(vol) / d ln(K/F): puts richer than calls
    wait_timeout: float = 120.0  # seconds to wait for a transaction to be final
    settle_batch: int = 50  # settle() calls per round at most
    source_retry: float = 5.0  # seconds before asking a failed market data source again
    # a perp is marked at spot x (1 + perp_premium): spot history has no perp market, so the
    # premium is a stated model, 0 (the perp at the index) unless told (keeper/funding.py)
    perp_premium: float = 0.0
    funding_heartbeat: int = 3_600  # seconds; an unchanged funding rate is posted again after


@dataclass(frozen=True)
class UnderlyingInfo:
    """What the keeper knows of an underlying: names, grid, PSR bounds, collateral it prices."""

    name: str
    id: int
    grid: ScenarioGrid
    psr_min: float
    psr_max: float
    assets: tuple[str, ...] = ()  # token addresses whose USD price is this spot
    # the oracle's bounds on posts (WAD): deviation cap per cap period, |array| / spot
    max_deviation: int = 5 * 10**17
    max_array_ratio: int = 2 * 10**18
    # each collateral's own deviation cap, in the order of ``assets`` (the underlying's if absent)
    asset_max_deviations: tuple[int, ...] = ()
    # the forward curve (docs/fixed-point.md §3): basis (WAD per year) and roll window (seconds),
    # so option arrays move with the same curve shift as the chain's futures arrays
    basis: int = 0
    roll: int = 0
