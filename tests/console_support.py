"""A local deployment as `ape run deploy` makes it (``deploy/config.json``, keeper TEST::1, venue
TEST::2) with market data posted (BTC 60,000, ETH 3,000, a PSR of 12%, WETH and WBTC priced),
and ``ape console``'s namespace over it: what the console tests and the venue how-to run on."""

from __future__ import annotations

import os
import sys
from pathlib import Path

from offchain.codec import OptionPost, id_fields
from offchain.fixed_point import WAD
from offchain.oracle_bounds import bound_option, code_strike
from offchain.scenarios import CRYPTO_35
from offchain.sdk import Client, deploy_system, load_config

REPO = Path(__file__).resolve().parents[1]
SPOTS = {1: 60_000 * WAD, 2: 3_000 * WAD}
PSR = 12 * WAD // 100


def bounded_option(oracle, iid: int, spot: int, mark: int, risk: list[int], ts: int) -> OptionPost:
    """An option post clamped into the oracle's bounds at ``ts`` (band, per-time cap from the
    stored mark, array limits), as the keeper clamps its quotes."""
    params = oracle.underlying_params(id_fields(iid)[2])
    word = oracle.instrument_word(iid, 0)
    old = None if (word >> 152) & 0xFF >= 254 else (word >> 160, (word >> 112) % 2**40)
    kind, strike = id_fields(iid)[1], code_strike(iid % 2**32)
    dev, ratio = params.max_deviation, params.max_array_ratio
    mark, risk = bound_option(kind, strike, spot, dev, ratio, mark, risk, old, ts)
    return OptionPost.option(iid, mark, risk)


def deploy_local(project, chain, admin, keeper, venue) -> Client:
    cfg = load_config(REPO / "deploy" / "config.json")
    return deploy_system(project, chain, admin, cfg, keepers=[keeper], venues=[venue])


def post_market(client: Client, keeper, spots: dict[int, int] = SPOTS) -> None:
    """Every instrument, underlying and collateral price at ``spots`` (underlying id -> WAD),
    stamped 900 s after the last block (the time every price needs to move by its full cap)."""
    chain = client.chain_manager
    ts = chain.blocks.head.timestamp + 900
    chain.mine(timestamp=ts)
    items = []
    for iid in sorted(client.deployment.instruments.values()):
        _, kind, und, _ = id_fields(iid)
        spot = spots[und]
        if kind in (0, 3):  # a future or a perp: the mark only
            items.append(OptionPost.future(iid, spot))
        else:
            risk = [spot // 25 * c // WAD for c in CRYPTO_35.linear_coefficients_wad()]
            items.append(bounded_option(client.oracle, iid, spot, spot // 20, risk, ts))
    collateral = client.deployment.collateral
    client.post(
        keeper,
        ts,
        [(u, spot, PSR) for u, spot in spots.items()],
        items,
        [(collateral["WETH"], spots[2]), (collateral["WBTC"], spots[1])],
    )


def console_namespace(project, chain, networks, client: Client, folder: Path) -> dict:
    """What ``ape console`` defines on this deployment: ``ape_console_extras.ape_init_extras``
    plus Ape's own ``accounts`` (the account manager, as in the console)."""
    from ape import accounts

    path = folder / "local.json"
    client.deployment.save(path)
    before = os.environ.get("PM_DEPLOYMENT")
    os.environ["PM_DEPLOYMENT"] = str(path)
    sys.path.insert(0, str(REPO))
    try:
        import ape_console_extras

        extras = ape_console_extras.ape_init_extras(project, chain, networks, accounts)
    finally:
        sys.path.remove(str(REPO))
        if before is None:
            del os.environ["PM_DEPLOYMENT"]
        else:
            os.environ["PM_DEPLOYMENT"] = before
    return {"accounts": accounts, **extras}
