"""The solvency audit on hand-made ledgers: a balanced state passes, each kind of imbalance is
flagged by name."""

from __future__ import annotations

from dataclasses import replace

from offchain.fixed_point import WAD
from offchain.solvency import MAX_ROUNDING_DUST, AssetLedger, LedgerSnapshot, audit

FUND = "0xfund"


def balanced() -> LedgerSnapshot:
    """Two traders and the fund; the vault keeps 8 wei of rounding; WETH fully backed; a 400 USD
    bad debt, 300 paid by the fund and 100 socialised."""
    cash = {"0xalice": 6_000 * WAD, "0xbob": 3_000 * WAD - 8, FUND: 1_000 * WAD}
    return LedgerSnapshot(
        vault_cash=10_000 * WAD,
        cash=cash,
        collateral={"WETH": AssetLedger(owed=250 * WAD, recorded=250 * WAD, held=250 * WAD)},
        margin={"0xalice": (6_000 * WAD, 4_000 * WAD), "0xbob": (3_000 * WAD, 2_500 * WAD)},
        bad_debt=400 * WAD,
        fund_payouts=300 * WAD,
        socialised=100 * WAD,
        insurance_fund=1_000 * WAD,
    )


def test_a_balanced_ledger_is_solvent():
    verdict = audit(balanced())
    assert verdict.ok and verdict.cash_balanced
    assert verdict.dust == 8 and verdict.sum_cash == 10_000 * WAD - 8
    assert verdict.unbalanced_assets == verdict.below_mm == verdict.negative_equity == ()
    assert verdict.uncovered_bad_debt == 0


def test_a_vault_owing_one_wei_more_than_it_holds_is_flagged():
    ledger = balanced()
    cash = {**ledger.cash, "0xbob": ledger.cash["0xbob"] + 9}
    verdict = audit(replace(ledger, cash=cash))
    assert verdict.dust == -1 and not verdict.cash_balanced and not verdict.ok


def test_rounding_kept_beyond_the_tolerance_is_flagged():
    ledger = balanced()
    cash = {**ledger.cash, "0xbob": ledger.cash["0xbob"] - MAX_ROUNDING_DUST}
    verdict = audit(replace(ledger, cash=cash))
    assert verdict.dust == MAX_ROUNDING_DUST + 8 and not verdict.ok


def test_collateral_the_vault_does_not_hold_or_miscounts_is_flagged():
    short = AssetLedger(owed=250 * WAD, recorded=250 * WAD, held=250 * WAD - 1)
    miscounted = AssetLedger(owed=250 * WAD, recorded=249 * WAD, held=250 * WAD)
    surplus = AssetLedger(owed=3, recorded=3, held=5)  # a donation to the vault is harmless
    ledger = replace(balanced(), collateral={"WBTC": miscounted, "WETH": short, "X": surplus})
    verdict = audit(ledger)
    assert verdict.unbalanced_assets == ("WBTC", "WETH") and not verdict.ok


def test_accounts_below_maintenance_and_negative_equity_are_named():
    margin = {**balanced().margin, "0xcarol": (2_000 * WAD, 2_500 * WAD), "0xdan": (-50, 10)}
    verdict = audit(replace(balanced(), margin=margin))
    assert verdict.below_mm == ("0xcarol", "0xdan")
    assert verdict.negative_equity == ("0xdan",)
    # negative equity left on an account is bad debt nobody has met
    assert verdict.uncovered_bad_debt == 50 and not verdict.ok


def test_bad_debt_neither_paid_nor_socialised_is_uncovered():
    verdict = audit(replace(balanced(), socialised=40 * WAD))
    assert verdict.uncovered_bad_debt == 60 * WAD and not verdict.ok
