"""The solvency audit: the vault holds what it owes, nobody is left below maintenance margin, and
every bad debt a liquidation met is paid by the insurance fund or socialised.

``read_ledger`` reads the numbers from a deployment (the chain client); ``audit`` is a pure
function of them, so the demo, the keeper and the tests judge a state the same way.

Worked example: the vault holds 1,000.000000 USDC (1,000e18 WAD) and its accounts' cash sums to
1,000e18 - 8: it keeps 8 wei of rounding (every rounding goes against the account) and is
balanced. Had the accounts' cash summed to 1,000e18 + 1, the vault would owe 1 wei it does not hold.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

#: Rounding (WAD wei of the settlement token) the vault may keep; it may never owe any.
MAX_ROUNDING_DUST = 10**9


@dataclass(frozen=True)
class AssetLedger:
    """One collateral asset, in its token units."""

    owed: int  # sum of every holder's balance
    recorded: int  # the vault's running total of balances
    held: int  # the token balance of the vault

    @property
    def balanced(self) -> bool:
        return self.owed == self.recorded <= self.held


@dataclass(frozen=True)
class LedgerSnapshot:
    """What the audit needs, all settlement-token amounts in WAD."""

    vault_cash: int  # settlement token held by the vault
    cash: Mapping[str, int]  # each holder's cash, the insurance fund included
    collateral: Mapping[str, AssetLedger]  # by asset symbol
    margin: Mapping[str, tuple[int, int]]  # each margin account's (equity, MM); not the fund
    bad_debt: int = 0  # all bad debt met by liquidations
    fund_payouts: int = 0  # the part the insurance fund paid
    socialised: int = 0  # the part charged to the other accounts
    insurance_fund: int = 0


@dataclass(frozen=True)
class Solvency:
    """The audit's verdict and the numbers behind it (WAD)."""

    vault_cash: int
    sum_cash: int
    dust: int  # vault_cash - sum_cash: rounding kept by the vault (never negative when solvent)
    unbalanced_assets: tuple[str, ...]  # collateral whose balances, total and holdings disagree
    below_mm: tuple[str, ...]
    negative_equity: tuple[str, ...]
    uncovered_bad_debt: int  # neither paid nor socialised, or still negative equity
    bad_debt: int
    fund_payouts: int
    socialised: int
    insurance_fund: int

    @property
    def cash_balanced(self) -> bool:
        return 0 <= self.dust <= MAX_ROUNDING_DUST

    @property
    def ok(self) -> bool:
        return (
            self.cash_balanced
            and not self.unbalanced_assets
            and not self.below_mm
            and not self.negative_equity
            and self.uncovered_bad_debt == 0
        )


def audit(ledger: LedgerSnapshot) -> Solvency:
    """Judge a ledger: cash and every collateral asset balance, nobody is below MM, bad debt is
    covered. Negative equity left on an account counts as uncovered bad debt."""
    sum_cash = sum(ledger.cash.values())
    below = tuple(a for a, (equity, mm) in sorted(ledger.margin.items()) if equity < mm)
    negative = tuple(a for a, (equity, _) in sorted(ledger.margin.items()) if equity < 0)
    unpaid = ledger.bad_debt - ledger.fund_payouts - ledger.socialised
    uncovered = unpaid + sum(-ledger.margin[a][0] for a in negative)
    return Solvency(
        vault_cash=ledger.vault_cash,
        sum_cash=sum_cash,
        dust=ledger.vault_cash - sum_cash,
        unbalanced_assets=tuple(s for s, a in sorted(ledger.collateral.items()) if not a.balanced),
        below_mm=below,
        negative_equity=negative,
        uncovered_bad_debt=uncovered,
        bad_debt=ledger.bad_debt,
        fund_payouts=ledger.fund_payouts,
        socialised=ledger.socialised,
        insurance_fund=ledger.insurance_fund,
    )


def read_ledger(client: Any, holders: Iterable[str]) -> LedgerSnapshot:
    """The ledger of a deployment (``offchain.sdk.Client``) over ``holders``: every address
    that may hold cash or collateral (the Liquidator, which holds the insurance fund, is added,
    and so is the clearing account, the engine's own cash: realised variation margin and
    funding not yet collected from or paid to the other side, docs/fixed-point.md §10)."""
    engine, liquidator = client.engine, client.liquidator
    fund = liquidator.address if liquidator is not None else None
    clearing = str(engine.address)
    everyone = sorted(set(holders) | ({fund} if fund else set()))
    collateral = {
        symbol: AssetLedger(
            owed=sum(int(engine.collateral(token, a)) for a in everyone),
            recorded=int(engine.total(token)),
            held=int(token.balanceOf(engine)),
        )
        for symbol, token in client.tokens.items()
    }
    margin = {}
    for a in everyone:
        if a != fund:  # the fund is not a margin account
            state = client.account_state(a)
            margin[a] = (state.equity, state.maintenance_margin)
    bad_debt = payouts = socialised = 0
    if liquidator is not None:
        bad_debt = int(liquidator.bad_debt())
        payouts = int(liquidator.fund_payouts())
        socialised = int(liquidator.socialised())
    return LedgerSnapshot(
        vault_cash=int(client.cash.balanceOf(engine)) * int(engine.cash_scale()),
        cash={a: int(engine.cash(a)) for a in [*everyone, clearing]},
        collateral=collateral,
        margin=margin,
        bad_debt=bad_debt,
        fund_payouts=payouts,
        socialised=socialised,
        insurance_fund=client.insurance_fund(),
    )
