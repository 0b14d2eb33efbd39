"""The demo's report from a hand-made three-round run: files, numbers and verdict, no chain."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime

from offchain.demo_report import (
    CHARTS,
    DemoRun,
    RoundSnapshot,
    closing_lines,
    funding_flows,
    write_report,
)
from offchain.fixed_point import WAD
from offchain.solvency import AssetLedger, LedgerSnapshot, audit


def snapshot(hour: int, btc: float, alice: int, liquidated: tuple[str, ...] = ()) -> RoundSnapshot:
    return RoundSnapshot(
        date=datetime(2020, 3, 12, hour, tzinfo=UTC),
        spots={"BTC": btc, "ETH": btc / 40},
        accounts={"alice": (alice * WAD, 5_000 * WAD, 4_000 * WAD), "maker": (10**6 * WAD, 0, 0)},
        posted=5,
        gas=300_000,
        liquidated=liquidated,
        below_mm=liquidated,
        settled=0,
        insurance_fund=250_000 * WAD,
        seconds=0.1,
    )


def run(vault_cash: int) -> DemoRun:
    ledger = LedgerSnapshot(
        vault_cash=vault_cash,
        cash={"0xa": 1_000 * WAD, "0xm": 10**6 * WAD},
        collateral={"WETH": AssetLedger(owed=5, recorded=5, held=5)},
        margin={"0xa": (1_000 * WAD, 0), "0xm": (10**6 * WAD, 0)},
    )
    return DemoRun(
        "2020-03-12",
        "2020-03-12",
        4,
        short=True,
        traders=1,
        makers=1,
        styles={"alice": "naked short put", "maker": "market maker"},
        labels={"0xa": "alice", "0xm": "maker"},
        posts=15,
        batches=3,
        transactions=4,
        gas=900_000,
        liquidations=1,
        history=[
            snapshot(0, 7_900, 6_000),
            snapshot(6, 7_000, 3_000, ("alice",)),
            snapshot(12, 6_300, 1_000),
        ],
        solvency=audit(ledger),
    )


def test_the_report_names_the_liquidation_and_the_verdict(tmp_path):
    demo = run(vault_cash=1_001_000 * WAD + 8)
    report = write_report(tmp_path, demo).read_text()
    assert "| 2020-03-12 06:00 | 7,000 | 175.00 | 5 | 300,000 | 1 | alice | 0 |" in report
    assert "| alice | naked short put | 1,000 | 5,000 | 4,000 |" in report
    assert "difference 8 wei" in report and "verdict: **solvent**" in report
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert (summary["rounds"], summary["accounts"], summary["rounds_below_mm"]) == (3, 2, 1)
    assert summary["solvency"]["dust_wei"] == 8 and summary["solvency"]["ok"]
    for chart in CHARTS:
        assert (tmp_path / chart).stat().st_size > 1_000
    lines = closing_lines(demo)
    assert lines[0].startswith("3 keeper rounds: 15 items posted in 3 transactions")
    assert lines[-1].startswith("solvent: the vault keeps 8 wei of rounding")


def test_a_vault_short_of_cash_reads_not_solvent(tmp_path):
    demo = run(vault_cash=1_001_000 * WAD - 1)
    assert closing_lines(demo)[-1].startswith(
        "NOT solvent (see the report): the vault owes 1 wei more than it holds"
    )
    report = write_report(tmp_path, demo).read_text()
    assert "**NOT balanced**" in report and "verdict: **NOT solvent**" in report


def with_perps(demo: DemoRun) -> DemoRun:
    """alice short 2 BTC perps, the maker long 2, then alice liquidated into the keeper; the
    funding index rises 100 then 50 USD per contract (longs pay)."""
    book = [
        {"alice": {"BTC": -2 * WAD}, "maker": {"BTC": 2 * WAD}},
        {"keeper": {"BTC": -2 * WAD}, "maker": {"BTC": 2 * WAD}},
        {"keeper": {"BTC": -2 * WAD}, "maker": {"BTC": 2 * WAD}},
    ]
    index = [0, 100 * WAD, 150 * WAD]
    demo.history = [
        replace(h, funding_index={"BTC": f}, funding_rates={"BTC": 10**14 // 8}, perps=p)
        for h, f, p in zip(demo.history, index, book, strict=True)
    ]
    demo.perp_premium = 0.001
    demo.styles["keeper"] = "liquidator"
    return demo


def test_funding_paid_and_received_per_holder_balance(tmp_path):
    demo = with_perps(run(vault_cash=1_001_000 * WAD))
    flows = funding_flows(demo.history)
    # q x dF: alice held through the first rise, the keeper through the second
    assert flows == {
        "alice": -200 * WAD * WAD,
        "maker": 300 * WAD * WAD,
        "keeper": -100 * WAD * WAD,
    }
    report = write_report(tmp_path, demo).read_text()
    assert "## Funding" in report and "premium of 0.10%" in report
    assert "- BTC: 3 rates posted, from 0.001250% to 0.001250% per hour" in report
    assert "| maker | market maker | 300.00 |  |" in report
    assert "| alice | naked short put |  | 200.00 |" in report
    assert "| **all holders** | | 300.00 | 300.00 |" in report
    assert "Paid equals received: difference 0 wei." in report
    funding = json.loads((tmp_path / "summary.json").read_text())["funding"]
    assert funding["balanced"] and funding["paid_wad"] == str(300 * WAD)
    assert funding["by_account_wad"]["keeper"] == str(-100 * WAD)
    assert "funding: 300.00 USD paid, 300.00 USD received (balanced)" in closing_lines(demo)


def test_a_holder_missing_from_the_record_shows_as_unbalanced(tmp_path):
    demo = with_perps(run(vault_cash=1_001_000 * WAD))
    demo.history[0] = replace(demo.history[0], perps={"alice": {"BTC": -2 * WAD}})
    report = write_report(tmp_path, demo).read_text()
    assert "Paid **does not equal** received" in report
    assert any("(NOT balanced)" in line for line in closing_lines(demo))


def test_a_run_without_perps_has_no_funding_section(tmp_path):
    demo = run(vault_cash=1_001_000 * WAD)
    assert "## Funding" not in write_report(tmp_path, demo).read_text()
    assert not any(line.startswith("funding:") for line in closing_lines(demo))
