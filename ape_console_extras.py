"""Names for ``ape console``: the deployment of the connected network and ``margin_of``.

    $ ape console --network ethereum:sepolia:node
    In [1]: margin_of("0xAbc...")
    equity 12,345.00  IM 9,000.00  MM 7,200.00  health 5,145.00 (ok)
      BTC: worst scenario 25 (-1 PSR, vol up, w 1) loss 7,100.00, pad 0.07, ...
    In [2]: engine.cash("0xAbc...")

Objects: ``system`` (the ``offchain.sdk.Client``), ``engine`` (also ``vault``: the
vault lives in the engine), ``engine_admin`` (roles, venue authorisations, listings, limits,
pause), ``oracle``, ``views``, ``usdc`` (the settlement token),
``liquidator`` and ``liquidation_views`` (``liquidation_preview``, ``accounts_below_mm``). The
deployment file is ``deployments/<network>.json`` or ``$PM_DEPLOYMENT``.
"""

from __future__ import annotations

import os
from pathlib import Path


def ape_init_extras(project, chain, networks):
    from offchain.sdk import Client, format_margin_report

    name = networks.provider.network.name
    path = Path(os.environ.get("PM_DEPLOYMENT") or Path("deployments") / f"{name}.json")
    if not path.exists():
        print(f"no deployment at {path}: `ape run deploy` first (or set PM_DEPLOYMENT)")
        return {}
    system = Client.connect(project, chain, path)
    if not chain.provider.get_code(system.deployment.oracle):
        print(f"{path} does not match this node (no RiskOracle at {system.deployment.oracle})")
        return {}

    def margin_of(address):
        """Print equity, IM, MM, health and the worst scenario per underlying; return them."""
        report = system.margin_report(address)
        print(format_margin_report(report, str(address)))
        return report

    return {
        "system": system,
        "engine_admin": system.engine_admin,
        "engine": system.engine,
        "vault": system.engine,
        "oracle": system.oracle,
        "views": system.views,
        "usdc": system.cash,
        "liquidator": system.liquidator,
        "liquidation_views": system.liquidation_views,
        "margin_of": margin_of,
    }
