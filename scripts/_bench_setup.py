"""The market both gas benchmarks start from: one underlying on the 35-scenario crypto grid with
``n`` calls and ``n`` futures listed, the keeper and venue roles granted, generous limits."""

from __future__ import annotations

from typing import Any, NamedTuple

from ape import accounts, chain, project

from offchain.codec import KIND_CALL, KIND_FUTURE
from offchain.fixed_point import WAD
from offchain.scenarios import CRYPTO_35

SPOT = 60_000 * WAD
PSR = 16 * WAD // 100


class BenchMarket(NamedTuple):
    """Unpacks in field order: admin, keeper, venue, usdc, oracle, engine, coeffs, opts, futs,
    engine_admin."""

    admin: Any
    keeper: Any
    venue: Any
    usdc: Any
    oracle: Any
    engine: Any
    coeffs: list[int]
    opts: list[int]
    futs: list[int]
    engine_admin: Any


def deploy_bench_market(n: int) -> BenchMarket:
    """Deploy oracle, engine and a 6-decimal mock USDC; list ``n`` calls and ``n`` futures."""
    admin, keeper, venue = (accounts.test_accounts[i] for i in (0, 1, 2))
    usdc = admin.deploy(project.MockERC20, "USD Coin", "USDC", 6)
    oracle = admin.deploy(project.RiskOracle, admin)
    engine_admin = admin.deploy(project.EngineAdmin, admin)
    engine = admin.deploy(project.MarginEngine, engine_admin, oracle, usdc, 10**26)
    engine_admin.bind(engine, sender=admin)
    oracle.grant_role(keeper, 1, sender=admin)
    engine_admin.grant_role(venue, 2, sender=admin)
    coeffs = CRYPTO_35.linear_coefficients_wad()
    oracle.register_grid(1, coeffs, sender=admin)
    oracle.list_underlying(1, 1, WAD // 100, WAD, WAD // 10, WAD // 2, 2 * WAD, sender=admin)
    expiry = chain.blocks.head.timestamp + 30 * 86_400
    opts, futs = [], []
    for k in range(n):
        tx = oracle.list_instrument(1, KIND_CALL, SPOT + k * WAD, expiry, WAD, sender=admin)
        opts.append(tx.return_value)
        tx = oracle.list_instrument(1, KIND_FUTURE, 0, expiry + k, WAD, sender=admin)
        futs.append(tx.return_value)
    for iid in opts + futs:
        engine_admin.set_instrument_limits(iid, 10**24, 10**23, sender=admin)
    return BenchMarket(admin, keeper, venue, usdc, oracle, engine, coeffs, opts, futs, engine_admin)
