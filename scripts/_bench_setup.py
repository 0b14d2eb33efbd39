"""The market both gas benchmarks start from: one underlying on the 35-scenario crypto grid with
``n`` calls and ``n`` futures listed, the keeper and venue roles granted, generous limits."""

from __future__ import annotations

from typing import Any, NamedTuple

from ape import accounts, chain, project

from offchain.fixed_point import WAD
from offchain.margin import Kind
from offchain.scenarios import CRYPTO_35
from offchain.sdk import (
    Client,
    CollateralSpec,
    InstrumentSpec,
    SystemConfig,
    UnderlyingSpec,
    deploy_system,
    instrument_name,
)

SPOT = 60_000 * WAD
PSR = 16 * WAD // 100
LIMITS = (10**24, 10**23)  # open-interest cap and position limit of every instrument


class BenchMarket(NamedTuple):
    """Unpacks in field order: admin, keeper, venue, usdc, oracle, engine, coeffs, opts, futs,
    client (the SDK client of the same deployment), perp (the BTC perpetual)."""

    admin: Any
    keeper: Any
    venue: Any
    usdc: Any
    oracle: Any
    engine: Any
    coeffs: list[int]
    opts: list[int]
    futs: list[int]
    client: Client
    perp: int


def deploy_bench_market(n: int) -> BenchMarket:
    """Deploy oracle, engine and a 6-decimal mock USDC; list ``n`` calls, ``n`` futures and the
    BTC perpetual (funding cap 1 % per hour)."""
    admin, keeper, venue = (accounts.test_accounts[i] for i in (0, 1, 2))
    expiry = chain.blocks.head.timestamp + 30 * 86_400
    instruments = []
    for k in range(n):
        instruments.append(InstrumentSpec("BTC", Kind.CALL, SPOT + k * WAD, expiry, WAD, *LIMITS))
        instruments.append(InstrumentSpec("BTC", Kind.FUTURE, 0, expiry + k, WAD, *LIMITS))
    perp = InstrumentSpec("BTC", Kind.PERP, 0, 0, WAD, *LIMITS, funding_cap=WAD // 100)
    config = SystemConfig(
        grids={CRYPTO_35.name: 1},
        underlyings=(
            UnderlyingSpec("BTC", 1, CRYPTO_35.name, WAD // 100, WAD, WAD // 10, WAD // 2, 2 * WAD),
        ),
        instruments=(*instruments, perp),
        cash=CollateralSpec("USDC", 6, 10**26),
        # a linked collateral: its spot leg's cost in the margin check is a benchmark row
        collateral=(CollateralSpec("WBTC", 8, 10**20, WAD // 10, "BTC", linked=True),),
    )
    client = deploy_system(
        project, chain, admin, config, keepers=[keeper], venues=[venue], liquidator=False
    )
    ids = [client.deployment.instruments[instrument_name(config, spec)] for spec in instruments]
    return BenchMarket(
        admin,
        keeper,
        venue,
        client.cash,
        client.oracle,
        client.engine,
        CRYPTO_35.linear_coefficients_wad(),
        ids[0::2],
        ids[1::2],
        client,
        client.deployment.instruments[instrument_name(config, perp)],
    )
