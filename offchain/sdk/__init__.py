"""The off-chain SDK: one way to configure, deploy, decode and talk to the system.

- ``config``: the system a deployment lists (``deploy/config.json``), validated up front.
- ``deploy``: deploying and listing it, idempotently; the only place that deploys.
- ``decode``: listed instruments and the oracle's packed words, as the integer reference reads them.
- ``client``: the typed client every script, the keeper and the tests read and send through.
- ``roles``: the contracts' role bits.
- ``timelock``: the timelock that administers a public deployment: whether one is installed,
  the installation, and the schedule/execute/cancel calldata of a multisig's proposal.
- ``records``: what people read: named records in human units, the contracts' outcome codes as
  enums, one-line ``InputError``.
- ``console``: the client for people (names in, records out); ``ape console``'s helpers.
"""

from offchain.sdk.client import AccountState, Client, Deployment, EscapeHatch, PostedBatch
from offchain.sdk.config import (
    CollateralSpec,
    InstrumentSpec,
    SystemConfig,
    UnderlyingSpec,
    load_config,
    parse_config,
    to_units,
)
from offchain.sdk.console import Console
from offchain.sdk.decode import ChainMarket, InstrumentMeta, decode_market
from offchain.sdk.deploy import (
    deploy_core,
    deploy_liquidation_views,
    deploy_liquidator,
    deploy_system,
    deploy_token,
    grant_roles,
    instrument_name,
    list_config,
)
from offchain.sdk.records import (
    InputError,
    LiquidationPreview,
    LiquidationStatus,
    MarginOutcome,
    MarginReport,
    MarginStatus,
    TradePreview,
    WithdrawPreview,
)
from offchain.sdk.roles import ROLE_GUARDIAN, ROLE_KEEPER, ROLE_VENUE

__all__ = [
    "ROLE_GUARDIAN",
    "ROLE_KEEPER",
    "ROLE_VENUE",
    "AccountState",
    "ChainMarket",
    "Client",
    "CollateralSpec",
    "Console",
    "Deployment",
    "EscapeHatch",
    "InputError",
    "InstrumentMeta",
    "InstrumentSpec",
    "LiquidationPreview",
    "LiquidationStatus",
    "MarginOutcome",
    "MarginReport",
    "MarginStatus",
    "PostedBatch",
    "SystemConfig",
    "TradePreview",
    "UnderlyingSpec",
    "WithdrawPreview",
    "decode_market",
    "deploy_core",
    "deploy_liquidation_views",
    "deploy_liquidator",
    "deploy_system",
    "deploy_token",
    "grant_roles",
    "instrument_name",
    "list_config",
    "load_config",
    "parse_config",
    "to_units",
]
