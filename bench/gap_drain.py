"""What an owner holding both sides of a future in two accounts nets from the fund in a gap.

The price gaps past maintenance margin in one oracle post, the losing account is liquidated and
the insurance fund pays its bad debt.

Run: ``python -m bench.gap_drain`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Gap-move drain", and asserts only that its own books balance). It
runs on the integer references the contracts are tested against (``offchain.margin``,
``offchain.liquidation``), without the node:

1. the owner's account X buys ``q`` BTC futures at 60,000 from the owner's account Y; each
   deposits just above its IM (IM + 1 USD), on the BTC grid and IM factor of
   deploy/config.json, at a scan range (PSR) of 8% or 16%;
2. one oracle post moves spot and the future's mark down by the gap: the largest move the
   per-time cap allows after a full ``CAP_PERIOD`` (BTC's ``max_deviation`` in
   deploy/config.json), or 20%;
3. a third party liquidates X with ``liquidate``, which takes the whole account (its equity is
   below zero, or a few dollars above it, which the penalty takes). X's deficit is bad debt:
   the reference's ledger pays ``min(deficit, fund)`` from the insurance fund and socialises
   the rest over the open interest opposite to X, which is Y's short, as a pending charge on Y.

The owner's net is X's and Y's equity after, Y's pending charge taken off, minus the two
deposits: Y's gain net of the charge, less the deposit X loses. It is computed for each fund
size; the deficit does not depend on it.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from bench.doc import write_section
from offchain.fixed_point import WAD, futures_risk_array_wad
from offchain.liquidation import LiquidationParams, LossLedger, liquidate, pending_charge
from offchain.margin import (
    AccountInt,
    InstrumentInt,
    Kind,
    MarketInt,
    UnderlyingInt,
    account_margin_int,
    equity_int,
)
from offchain.oracle_bounds import CAP_PERIOD, price_cap
from offchain.scenarios import PRESETS
from offchain.sdk.config import load_config

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "config.json"
FUT = 1
PRICE = 60_000 * WAD
FUNDS = (10_000, 100_000, 1_000_000)  # USD in the insurance fund before the gap
SIZES = (1, 10, 100)  # BTC futures, long in X and short in Y
PSRS = (8, 16)  # percent: BTC's scan range in examples/market.json, and the contract tests'
OTHER_GAP = 20  # percent
THIRD_PARTY = AccountInt(10**9 * WAD)  # the liquidator: cash only, far above any IM


def btc_market(mark: int, underlying, psr: int) -> MarketInt:
    """The oracle's state with spot and the future's mark at ``mark`` (the array the chain
    computes from the mark, as in ``RiskOracle``'s futures loop)."""
    coeffs = PRESETS[underlying.grid].linear_coefficients_wad()
    ra = futures_risk_array_wad(mark, coeffs, psr)
    return MarketInt(
        {FUT: InstrumentInt.from_wad_array(underlying.id, Kind.FUTURE, mark, ra)},
        {underlying.id: UnderlyingInt(mark, underlying.som_rate, len(coeffs))},
    )


def cell(q: int, gap: int, psr: int, funds: tuple[int, ...], underlying, params) -> dict:
    """One (size, gap, PSR) row: the deposit, X's deficit, and per fund size what the fund
    pays and what the owner nets (WAD)."""
    size = q * WAD
    before = btc_market(PRICE, underlying, psr)
    im = account_margin_int(AccountInt(0, {FUT: size}), before, params.im_factor).initial_margin
    deposit = im + WAD
    # a trade at the mark leaves each side's equity at its deposit
    x = AccountInt(deposit - size * PRICE // WAD, {FUT: size})
    y = AccountInt(deposit + size * PRICE // WAD, {FUT: -size})
    after = btc_market(PRICE - gap, underlying, psr)
    row = {"deposit": deposit, "paid": [], "net": []}
    for fund in funds:
        ledger = LossLedger(fund=fund * WAD, open_interest={FUT: size})
        res = liquidate(x, THIRD_PARTY, after, params, ledger)
        charge = pending_charge(y.positions, res.ledger.index, {})
        net = equity_int(res.account, after) + equity_int(y, after) - charge - 2 * deposit
        # the reference's own books: the fund and the winner's charge cover the bad debt, and
        # what the fund pays is what the owner keeps (without bad debt, the penalty takes X's
        # last equity)
        assert res.fund_payout + res.socialised == res.bad_debt
        assert net == res.fund_payout if res.bad_debt else net <= 0
        row["deficit"] = res.bad_debt
        row["paid"].append(res.fund_payout)
        row["net"].append(net)
    return row


def usd(x: int) -> str:
    return f"{x / WAD:,.0f}"


def fund_label(usd_amount: int) -> str:
    return f"{usd_amount // 10**6}M" if usd_amount >= 10**6 else f"{usd_amount // 1000}k"


def summary(per_btc: dict, max_gap: int, other_gap: int) -> str:
    """The paragraph under the table, its numbers taken from the measured rows."""
    lo, hi = min(PSRS), max(PSRS)

    def per(psr: int, gap: int) -> str:
        return f"{per_btc[(psr, gap)] / WAD:,.0f}"

    return (
        "The owner nets exactly what the fund pays, min(deficit, fund), to the wei: the part "
        "of the deficit the fund does not cover comes back to Y as its socialised charge, so "
        "only the fund's payment leaves the owner's two accounts richer. A move the cap allows "
        f"in one post leaves a deficit of {per(hi, max_gap)} USD per BTC at a {hi}% scan range "
        f"and {per(lo, max_gap)} at {lo}%, so a large enough position empties any of these "
        f"funds in one post. A {OTHER_GAP}% gap leaves {per(lo, other_gap)} USD per BTC at "
        f"{lo}% and {per(hi, other_gap)} at {hi}%, where IM covers the move and the penalty "
        "takes the little equity X has left. Nothing on-chain bounds the drain "
        "yet: neither one post's move relative to the scan range nor the fund's share of a "
        "loss whose winner is the loser's own counterparty."
    )


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    cfg = load_config(CONFIG)
    btc = next(u for u in cfg.underlyings if u.name == "BTC")
    params = LiquidationParams(im_factor=cfg.im_factor)
    max_gap = price_cap(PRICE, btc.max_deviation, CAP_PERIOD)
    gaps = [(f"{100 * max_gap / PRICE:g}% (cap)", max_gap)]
    gaps.append((f"{OTHER_GAP}%", PRICE * OTHER_GAP // 100))
    assert all(g <= max_gap for _, g in gaps), "a gap beyond the cap cannot be posted at once"

    head = ["PSR", "gap", "BTC", "deposit each", "deficit"]
    for f in FUNDS:
        head += [f"fund {fund_label(f)} pays", "owner nets"]
    table = ["| " + " | ".join(head) + " |", "| --- | --- | ---: |" + " ---: |" * (len(head) - 3)]
    per_btc = {}  # (PSR, gap) -> deficit of one BTC
    for psr in PSRS:
        for label, gap in gaps:
            for q in SIZES:
                r = cell(q, gap, psr * WAD // 100, FUNDS, btc, params)
                per_btc.setdefault((psr, gap), r["deficit"] / q)
                cols = [f"{psr}%", label, str(q), usd(r["deposit"]), usd(r["deficit"])]
                for paid, net in zip(r["paid"], r["net"], strict=True):
                    cols += [usd(paid), usd(net)]
                table.append("| " + " | ".join(cols) + " |")
    print("\n".join(table))
    write_section(
        "Gap-move drain",
        "Command: `python -m bench.gap_drain` (in `make bench`). One owner holds a long BTC "
        "future at 60,000 in account X and the matching short in account Y, each funded at IM "
        f"+ 1 USD (grid {btc.grid}, IM factor {cfg.im_factor / WAD:g}). One oracle post moves "
        "spot and the mark down by the gap: the largest move BTC's per-time cap allows after "
        f"a full {CAP_PERIOD} s (max_deviation {btc.max_deviation / WAD:g}), or "
        f"{OTHER_GAP}%. A third party liquidates X; its deficit is bad debt, the insurance "
        "fund pays first and the rest is charged to the opposite open interest, Y's short. "
        "The owner nets Y's gain after that charge less the deposit X loses. USD, on the "
        "integer references of the margin and the liquidation (the contracts equal them to "
        "the wei).\n\n"
        + "\n".join(table)
        + "\n\n"
        + summary(per_btc, max_gap, PRICE * OTHER_GAP // 100),
        after="Liquidation: the storage floor and the designs that go lower",
    )


if __name__ == "__main__":
    main()
