"""What an owner holding both sides of a future in two accounts nets from the insurance fund
when the price gaps past maintenance margin, before and after the rules that bound it.

Run: ``python -m bench.gap_drain`` (a benchmark: it prints a table, writes it to
docs/benchmarks.md, section "Gap-move drain", and asserts only that its own books balance). It
runs on the integer references the contracts are tested against (``offchain.margin``,
``offchain.liquidation``, ``offchain.oracle_bounds``), without the node:

1. the owner's account X buys ``q`` BTC futures at 60,000 from the owner's account Y; each
   deposits just above its IM (IM + 1 USD), on the BTC grid and IM factor of
   deploy/config.json, at a scan range (PSR) of 8% or 16%;
2. the price falls by the gap, in one of five ways:
   - before: in one post, the largest move the per-time cap allowed after a full
     ``CAP_PERIOD`` when it was BTC's ``max_deviation`` alone (50%);
   - one post at the gap rate: the largest move a post allows now, ``min(max_deviation,
     0.75 * psr)``;
   - the same 50% walked in posts at the gap rate, a third party liquidating X (partially,
     with ``liquidate``) after each post that leaves it below MM;
   - the 50% walked with nobody liquidating until the end, at ``fund_share`` 1 (the default:
     the fund pays first) and 0;
3. a third party liquidates X when it is below MM at the end. X's deficit is bad debt: the
   reference's ledger pays ``min(deficit, fund, fund_share * deficit)`` from the insurance fund
   and socialises the rest over the open interest opposite to X, which is Y's short, as a
   pending charge on Y.

The owner's net is X's and Y's equity after, Y's pending charge taken off, minus the two
deposits: Y's gain net of the charge, less what X loses. It is computed for each fund size.
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
from offchain.oracle_bounds import CAP_PERIOD, gap_rate, price_cap
from offchain.scenarios import PRESETS
from offchain.sdk.config import load_config

CONFIG = Path(__file__).resolve().parent.parent / "deploy" / "config.json"
FUT = 1
PRICE = 60_000 * WAD
FUNDS = (10_000, 100_000, 1_000_000)  # USD in the insurance fund before the gap
SIZES = (1, 10, 100)  # BTC futures, long in X and short in Y
PSRS = (8, 16)  # percent: BTC's scan range in examples/market.json, and the contract tests'
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


def run(q: int, psr: int, path: list[int], between: bool, fund: int, underlying, params):
    """X and Y open ``q`` BTC at PRICE; the marks follow ``path``; a third party liquidates X
    after each step that leaves it below MM (``between``; Y then buys back what it took) or
    after the last one only.
    Returns (deposit, deficit, fund payout, owner's net), WAD."""
    size = q * WAD
    im = account_margin_int(
        AccountInt(0, {FUT: size}), btc_market(PRICE, underlying, psr), params.im_factor
    ).initial_margin
    deposit = im + WAD
    # a trade at the mark leaves each side's equity at its deposit
    x = AccountInt(deposit - size * PRICE // WAD, {FUT: size})
    y = AccountInt(deposit + size * PRICE // WAD, {FUT: -size})
    third = THIRD_PARTY
    ledger = LossLedger(fund=fund, open_interest={FUT: size})
    snap = {}  # Y's loss-index snapshot: its charge is paid before it trades
    for k, mark in enumerate(path):
        market = btc_market(mark, underlying, psr)
        if (between or k == len(path) - 1) and x.positions:
            if account_margin_int(x, market, params.im_factor).health < 0:
                res = liquidate(x, third, market, params, ledger)
                x, third, ledger = res.account, res.liquidator, res.ledger
                if between and res.taken.get(FUT):
                    # the owner stays flat, as the attack intends: Y buys back from the
                    # liquidator at the mark what it took from X (without this the owner's
                    # net is a short's gain on a falling price, paid by the liquidator)
                    t = res.taken[FUT]
                    paid = pending_charge(y.positions, ledger.index, snap) + t * mark // WAD
                    y, snap = AccountInt(y.cash - paid, {FUT: y.positions[FUT] + t}), ledger.index
                    third = AccountInt(
                        third.cash + t * mark // WAD,
                        {FUT: third.positions[FUT] - t},
                    )
    charge = pending_charge(y.positions, ledger.index, snap)
    net = equity_int(x, market) + equity_int(y, market) - charge - 2 * deposit
    # the reference's own books: the fund and the winner's charge cover the bad debt, and
    # the owner keeps at most what the fund pays (the penalties of partial liquidations
    # are lost)
    assert ledger.fund_payouts + ledger.socialised == ledger.bad_debt
    assert net <= ledger.fund_payouts
    return deposit, ledger.bad_debt, ledger.fund_payouts, net


def walk(price: int, target: int, rate: int) -> list[int]:
    """The marks of posts a full CAP_PERIOD apart from ``price`` down to ``target``, each at
    the cap the rate allows."""
    path = []
    while price > target:
        price = max(target, price - price_cap(price, rate, CAP_PERIOD))
        path.append(price)
    return path


def usd(x: int) -> str:
    return f"{x / WAD:,.0f}"


def fund_label(usd_amount: int) -> str:
    return f"{usd_amount // 10**6}M" if usd_amount >= 10**6 else f"{usd_amount // 1000}k"


def main() -> None:
    argparse.ArgumentParser(description=__doc__.splitlines()[0]).parse_args()
    cfg = load_config(CONFIG)
    btc = next(u for u in cfg.underlyings if u.name == "BTC")
    base = LiquidationParams(im_factor=cfg.im_factor)
    zero = LiquidationParams(im_factor=cfg.im_factor, fund_share=0)
    target = PRICE - price_cap(PRICE, btc.max_deviation, CAP_PERIOD)
    gap = f"{100 * (PRICE - target) // PRICE}%"

    head = ["PSR", "BTC", "deposit each", "how the price falls", "deficit"]
    for f in FUNDS:
        head += [f"fund {fund_label(f)} pays", "owner nets"]
    table = [
        "| " + " | ".join(head) + " |",
        "| --- | ---: | ---: | --- |" + " ---: |" * (len(head) - 4),
    ]
    worst = {}  # scenario -> the owner's largest net over every row
    for psr_pct in PSRS:
        psr = psr_pct * WAD // 100
        rate = gap_rate(btc.max_deviation, psr)
        one = PRICE - price_cap(PRICE, rate, CAP_PERIOD)
        steps = walk(PRICE, target, rate)
        scenarios = [
            (f"before: {gap} in one post", [target], False, base),
            (f"one post at the gap rate ({100 * rate / WAD:g}%)", [one], False, base),
            (f"{gap} in {len(steps)} posts, liquidated between", steps, True, base),
            (f"{gap} in {len(steps)} posts, not liquidated, fund_share 1", steps, False, base),
            (f"{gap} in {len(steps)} posts, not liquidated, fund_share 0", steps, False, zero),
        ]
        for q in SIZES:
            for label, path, between, params in scenarios:
                cols = None
                for fund in FUNDS:
                    dep, bad, paid, net = run(q, psr, path, between, fund * WAD, btc, params)
                    if cols is None:
                        cols = [f"{psr_pct}%", str(q), usd(dep), label, usd(bad)]
                    cols += [usd(paid), usd(net)]
                    worst[label] = max(worst.get(label, net), net)
                table.append("| " + " | ".join(cols) + " |")
    print("\n".join(table))
    write_section(
        "Gap-move drain",
        "Command: `python -m bench.gap_drain` (in `make bench`). One owner holds a long BTC "
        "future at 60,000 in account X and the matching short in account Y, each funded at IM "
        f"+ 1 USD (grid {btc.grid}, IM factor {cfg.im_factor / WAD:g}). The price falls by "
        f"{gap} (BTC's max_deviation {btc.max_deviation / WAD:g} a {CAP_PERIOD} s period): "
        "before the gap rate in one post; now a post moves a spot or a future by at most "
        "min(max_deviation, 0.75 x PSR) a period, so the largest one-post move, the same "
        "fall walked in such posts with a third party liquidating X after each, and the walk "
        "with nobody liquidating until the end, at fund_share 1 (the default) and 0. At the "
        "end a third party liquidates X; its deficit is bad debt, the insurance fund pays "
        "min(deficit, fund, fund_share x deficit) and the rest is charged to the opposite "
        "open interest, Y's short. The owner nets Y's gain after that charge less what X "
        "loses. USD, on the integer references of the margin and the liquidation (the "
        "contracts equal them to the wei; `tests/test_gap_drain.py` runs the same attack "
        "on-chain).\n\n" + "\n".join(table) + "\n\n" + summary(worst),
        after="Liquidation: the storage floor and the designs that go lower",
    )


def summary(worst: dict) -> str:
    """The paragraph under the table, its numbers taken from the measured rows (``worst``:
    the owner's largest net per way the price falls, over sizes, PSRs and funds)."""

    def most(part: str) -> str:
        return usd(max(v for k, v in worst.items() if part in k))

    return (
        "Before, the owner netted what the fund paid, min(deficit, fund), to the wei: the part "
        "of the deficit the fund does not cover comes back to Y as its socialised charge. A "
        "post now moves a price by less than the scan range that margined X, so one post "
        "leaves X solvent (deficit 0), and a liquidation after each post keeps it so (Y buys "
        "back from the liquidator what it took, so the owner stays flat): the owner loses the "
        f"penalties (largest net over the rows: {most('gap rate')} USD in one post, "
        f"{most('liquidated between')} walked). A deficit arises only when nobody liquidates X "
        "while the walk takes it past zero equity; the fund then pays at most fund_share x "
        "deficit: at the default 1 the owner nets min(deficit, fund) as before, at 0 nothing "
        f"(largest net {most('fund_share 0')} USD), and the holders of the opposite side bear "
        "the loss at once instead of the fund."
    )


if __name__ == "__main__":
    main()
