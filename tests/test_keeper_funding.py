"""The keeper posts each perp's funding rate on anvil: the oracle stores the keeper's rate,
accrues it into the funding index at the posted spot, and an unchanged rate is posted again
only after the funding heartbeat.

A module-wide deployment of one underlying with a future and a perp; Ape's isolation rolls the
chain back after every test.
"""

from __future__ import annotations

import pytest

from offchain.fixed_point import WAD, div_floor
from offchain.funding_rate import hourly_funding_rate
from offchain.keeper.config import KeeperConfig
from offchain.keeper.runner import open_keeper
from offchain.keeper.sources import Tick
from offchain.keeper.tx import TxConfig
from offchain.params import margin_params
from offchain.sdk import deploy_system, parse_config

HOUR = 3_600
BTC = 1
CONFIG = {
    "grids": {"crypto-35": 1},
    "cash": {"symbol": "USDC", "decimals": 6, "deposit_cap": 10**11},
    "collateral": [],
    "underlyings": [
        {"name": "BTC", "id": BTC, "grid": "crypto-35", "max_deviation": 0.5, "max_array_ratio": 2}
    ],
    "instruments": [
        {"underlying": "BTC", "kind": "future", "expiry": "2099-12-31"},
        {"underlying": "BTC", "kind": "perp"},
    ],
    "max_age": 86_400,
}
FAST = TxConfig(
    confirmations=1, poll_interval=0.01, stuck_after_blocks=1_000, stuck_after_seconds=3_600
)


@pytest.fixture(scope="module")
def perp_system(project, chain, admin, keeper):
    return deploy_system(project, chain, admin, parse_config(CONFIG), keepers=[keeper])


def keeper_for(c, acct, tmp_path, premium: float):
    cfg = KeeperConfig(heartbeat=12 * HOUR, heartbeat_margin=HOUR, perp_premium=premium)
    return open_keeper(
        c, acct, str(tmp_path), tx_config=FAST, psr=lambda u, ts: 0.1, cfg=cfg, liquidate=False
    )


def rate_for(premium: float) -> int:
    f = margin_params().funding
    spot = 60_000 * WAD
    return hourly_funding_rate(
        spot + spot * int(premium * 10**6) // 10**6,
        spot,
        interest=f.wad("interest"),
        dampener=f.wad("dampener"),
        cap=f.wad("cap_per_hour"),
    )


def test_the_keeper_posts_the_rate_and_the_oracle_accrues_it(perp_system, chain, keeper, tmp_path):
    c = perp_system
    runner = keeper_for(c, keeper, tmp_path, premium=0.002)
    expected = rate_for(0.002)
    assert expected == (2 * 10**15 - 5 * 10**14) // 8  # (0.2% - 0.05%) / 8 per hour
    t0 = chain.blocks.head.timestamp + 60
    chain.mine(timestamp=t0)
    report = runner.round(Tick(t0, {"BTC": 60_000.0}, {"BTC": 0.6}))
    assert report.funding == {"BTC": expected}
    f0, rate, t_post, cap = c.oracle.funding_state(BTC)
    assert (rate, cap) == (expected, margin_params().funding.wad("cap_per_hour"))
    # two hours on, before any other post: F_now = F + rate x spot x 2 h (floor)
    chain.mine(timestamp=t_post + 2 * HOUR)
    spot = 60_000 * WAD
    assert c.funding_index(BTC) == f0 + div_floor(expected * spot * 2 * HOUR, HOUR * WAD)
    runner.close()


def test_an_unchanged_rate_waits_for_its_heartbeat_and_a_new_premium_is_posted_at_once(
    perp_system, chain, keeper, tmp_path
):
    c = perp_system
    runner = keeper_for(c, keeper, tmp_path, premium=0.0)
    t0 = chain.blocks.head.timestamp + 60
    chain.mine(timestamp=t0)
    assert runner.round(Tick(t0, {"BTC": 60_000.0}, {"BTC": 0.6})).funding == {"BTC": 10**14 // 8}
    chain.mine(timestamp=t0 + 600)
    assert runner.round(Tick(t0 + 600, {"BTC": 60_000.0}, {"BTC": 0.6})).funding == {}
    chain.mine(timestamp=t0 + HOUR)
    assert runner.round(Tick(t0 + HOUR, {"BTC": 60_000.0}, {"BTC": 0.6})).funding == {
        "BTC": 10**14 // 8
    }
    runner.close()
    # a keeper marking the perp 1% below spot: shorts pay longs from its first round
    runner = keeper_for(c, keeper, tmp_path, premium=-0.01)
    t1 = t0 + HOUR + 60
    chain.mine(timestamp=t1)
    report = runner.round(Tick(t1, {"BTC": 60_000.0}, {"BTC": 0.6}))
    assert report.funding == {"BTC": rate_for(-0.01)} and rate_for(-0.01) < 0
    assert c.oracle.funding_state(BTC)[1] == rate_for(-0.01)
    runner.close()
