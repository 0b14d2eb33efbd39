"""Names for ``ape console``: the deployment of the connected network and helpers for people.

    $ ape console --network ethereum:sepolia:node
    In [1]: margin_of("0xAbc...")
    Out[1]:
    0xAbc...
    equity 12,345.00  IM 9,000.00  MM 7,200.00  health 5,145.00 (ok)
      BTC: worst scenario 25 (-1 PSR, vol up, w 1) loss 7,100.00, pad 0.07, ...

Helpers (``offchain.sdk.Console``; accounts by address, account object, ``TEST::<n>`` or alias,
instruments by name, tokens by symbol, amounts in USD / contracts / tokens; each answers with a
named record and refuses bad input with one line): ``instruments``, ``balances_of``,
``positions_of``, ``roles_of``, ``margin_of``, ``trade_preview``, ``withdraw_preview``,
``liquidation_preview``, ``deposit``, ``withdraw``, ``authorise_venue``, ``trade``.

Contracts: ``system`` (the ``offchain.sdk.Client``), ``engine`` (also ``vault``: the vault lives
in the engine), ``engine_admin`` (roles, venue authorisations, listings, limits, pause),
``oracle``, ``oracle_views`` (decoded risk arrays, grids, ages, asset prices), ``views``,
``usdc`` (the settlement token), ``liquidator``, ``liquidation_views`` and ``timelock`` (the
admin of a timelocked deployment, else None).
The deployment file is ``deployments/<network>.json`` or ``$PM_DEPLOYMENT``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

HELPERS = (
    "instruments",
    "balances_of",
    "positions_of",
    "roles_of",
    "margin_of",
    "trade_preview",
    "withdraw_preview",
    "liquidation_preview",
    "deposit",
    "withdraw",
    "authorise_venue",
    "trade",
    "escape_hatch",
    "wind_down",
)


def ape_init_extras(project, chain, networks, accounts):
    from offchain.sdk import ROLE_GUARDIAN, ROLE_KEEPER, ROLE_VENUE, Client, Console

    name = networks.provider.network.name
    path = Path(os.environ.get("PM_DEPLOYMENT") or Path("deployments") / f"{name}.json")
    if not path.exists():
        print(f"no deployment at {path}: `ape run deploy` first (or set PM_DEPLOYMENT)")
        return {}
    system = Client.connect(project, chain, path)
    if not chain.provider.get_code(system.deployment.oracle):
        print(f"{path} does not match this node (no RiskOracle at {system.deployment.oracle})")
        return {}
    desk = Console(system, accounts)
    install_one_line_errors()
    return {
        "system": system,
        "desk": desk,
        "engine_admin": system.engine_admin,
        "engine": system.engine,
        "vault": system.engine,
        "oracle": system.oracle,
        "oracle_views": system.oracle_views,
        "views": system.views,
        "usdc": system.cash,
        "liquidator": system.liquidator,
        "liquidation_views": system.liquidation_views,
        "timelock": system.timelock,
        "ROLE_KEEPER": ROLE_KEEPER,
        "ROLE_VENUE": ROLE_VENUE,
        "ROLE_GUARDIAN": ROLE_GUARDIAN,
        **{h: getattr(desk, h) for h in HELPERS},
    }


def one_line(value: BaseException) -> str:
    """The line the console prints for a helper's refusal or a contract's revert."""
    from ape.exceptions import ArgumentsLengthError, ContractLogicError, ConversionError

    if isinstance(value, ContractLogicError):
        return f"reverted: {value.revert_message}"
    if isinstance(value, ConversionError):
        return (
            f"error: {value} A contract takes a 0x address or an account object; the helpers "
            "also take TEST::<n> and aliases."
        )
    if isinstance(value, ArgumentsLengthError):
        return f"error: {' '.join(str(value).split())}"
    return f"error: {value}"


def _typed_wrong(value: BaseException, tb) -> bool:
    """A TypeError raised by the typed line itself, not inside a call: a helper called with the
    wrong number or names of arguments (``margin_of(a, 3)``)."""
    if not isinstance(value, TypeError) or tb is None:
        return False
    while tb.tb_next is not None:
        tb = tb.tb_next
    return tb.tb_frame.f_code.co_name == "<module>"


def install_one_line_errors(shell=None) -> None:
    """Make IPython print one line instead of a traceback for a helper's ``InputError``, a
    revert, an argument a contract call cannot convert or a call with the wrong arguments.

    Ape's console plugin installs its own handler for Ape's exceptions, possibly after this file
    is loaded, so the handler is (re)installed before each cell, wrapping whatever handler is
    there for the other exception types."""
    if shell is None:
        try:
            from IPython import get_ipython
        except ImportError:
            return
        shell = get_ipython()
        if shell is None:
            return
    from ape.exceptions import ArgumentsLengthError, ContractLogicError, ConversionError

    from offchain.errors import UserError

    one_liners = (UserError, ContractLogicError, ConversionError, ArgumentsLengthError)

    def install(*_args) -> None:
        if getattr(shell.CustomTB, "_one_line", False):
            return
        previous_types, previous = tuple(shell.custom_exceptions), shell.CustomTB

        def handler(self, etype, value, tb, tb_offset=None):
            if isinstance(value, one_liners) or _typed_wrong(value, tb):
                print(one_line(value), file=sys.stderr)
                return None
            if isinstance(value, previous_types):
                return previous(etype, value, tb, tb_offset)
            self.showtraceback((etype, value, tb), tb_offset=tb_offset)
            return None

        shell.set_custom_exc((*one_liners, TypeError, *previous_types), handler)
        shell.CustomTB.__func__._one_line = True

    install()
    if install not in shell.events.callbacks["pre_run_cell"]:
        shell.events.register("pre_run_cell", install)
