"""The keeper as a Silverback bot (``docs/keeper.md``, "Running the keeper as a service").

    silverback run offchain.keeper.bot:bot --network ethereum:sepolia:node --account keeper \\
        --record --max-exceptions 5          # KEEPER_SOURCE=http KEEPER_URL=https://...

Options come from ``KEEPER_*`` environment variables (``service.KeeperOptions``: the names of
``ape run keeper``'s options, e.g. ``KEEPER_SOURCE``, ``KEEPER_DEPLOYMENT``); they, the
deployment file, the node and the market data source are checked when Silverback loads this
module, and a problem stops it there with one line on stderr and exit code 2.

- startup (one worker): opens the keeper's state for the signing account (``--account``;
  test account 1 on a local network without it);
- each new block, or each tick of ``KEEPER_CRON`` when set: one round
  (``KeeperService.step``), whose metrics (posts, gas, liquidations, settlements, data_age,
  round_seconds, ...) Silverback logs, records with ``--record`` and checks against
  ``on_metric`` handlers;
- an exception in a round counts towards Silverback's ``--max-exceptions`` (a transaction not
  final in time or a node outage inside the transaction manager is not one: that round's plan
  is kept and resumed, as with ``ape run keeper``);
- shutdown (SIGINT/SIGTERM): releases the keeper's state.
"""

from __future__ import annotations

import logging
import sys
from typing import Any

from ape import accounts, chain, project
from silverback import SilverbackBot

from offchain.errors import UserError
from offchain.keeper.logfmt import configure_logging
from offchain.keeper.service import (
    KeeperOptions,
    KeeperService,
    ServiceError,
    build_source,
    check_options,
    open_deployment,
    open_service_keeper,
)
from offchain.sdk.deploy import is_local_network

__all__ = ["bot"]


def _refuse(message: str) -> None:
    """Stop the bot before it starts: one line, exit code 2 (no traceback)."""
    sys.stderr.write(f"error: {message}\n")
    raise SystemExit(2)


bot = SilverbackBot()
configure_logging(logging.INFO)  # the keeper's event lines with UTC time and level, on stderr
_network = bot.provider.network.name
_local = is_local_network(_network)


def _signer(options: KeeperOptions) -> Any:
    """``--account``'s account (Silverback loads it, with autosign for a keyfile account);
    without it, test account 1 on a local network; None for a dry run."""
    if options.dry_run:
        return None
    return bot.signer if bot.signer is not None else accounts.test_accounts[1]


def _head() -> tuple[int, int]:
    head = chain.blocks.head
    return int(head.number), int(head.timestamp)


# Everything that can refuse to start (options, deployment, node, source, the state database
# and its lock) is opened here, before Silverback starts, so a refusal is one line, not a
# traceback from inside a startup handler.
try:
    OPTIONS = KeeperOptions.from_env()
    check_options(OPTIONS, _network)
    if bot.signer is None and not _local and not OPTIONS.dry_run:
        raise ServiceError(
            f"no signing account on {_network}: pass --account <alias> (or KEEPER_DRY_RUN=1)"
        )
    _client = open_deployment(project, chain, _network, OPTIONS.deployment)
    _source = build_source(OPTIONS, _client, chain)
    _runner = open_service_keeper(_client, _signer(OPTIONS), OPTIONS, _network, _source)
except UserError as exc:
    _refuse(str(exc))

_service: KeeperService | None = None


@bot.on_startup()
def open_keeper_service(startup_state: Any) -> dict[str, int]:
    """Start rounds on the keeper opened above; report what it resumes from."""
    global _service
    _service = KeeperService(_runner, _source, _head)
    return {"resumed_ts": _runner.runner_state.last_ts, "accounts": len(_runner.known_accounts)}


def _round() -> dict[str, int | float] | None:
    """One round; None while the previous one still runs (rounds never overlap)."""
    if _service is None:
        return None
    return _service.step()


if OPTIONS.cron:

    @bot.cron(OPTIONS.cron)
    def keeper_round(time: Any) -> dict[str, int | float] | None:
        return _round()

else:

    @bot.on_(chain.blocks)
    def keeper_round(block: Any) -> dict[str, int | float] | None:
        return _round()


@bot.on_shutdown()
def close_keeper_service() -> None:
    """Release the keeper's state once the round in progress (if any) has ended."""
    if _service is not None:
        _service.close()
