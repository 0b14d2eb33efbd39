"""``ape run demo --short`` end to end, as CI runs the README's main job: its own anvil, deploy,
17 accounts' books, the 10-14 March 2020 crash replayed with the keeper posting, liquidating and
settling, then the report and its solvency check (the command fails when the check fails)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_short_demo_replays_the_crash_and_stays_solvent(tmp_path):
    out = tmp_path / "demo"
    bin_dir = Path(sys.executable).parent
    env = {**os.environ, "PATH": f"{REPO / 'node_modules' / '.bin'}:{bin_dir}:{os.environ['PATH']}"}
    proc = subprocess.run(
        [str(bin_dir / "ape"), "run", "demo", "--short", "--no-live", "--out", str(out)],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    summary = json.loads((out / "summary.json").read_text())
    s = summary["solvency"]
    assert proc.returncode == 0, (proc.stdout[-3000:], proc.stderr[-3000:], s)
    assert summary["rounds"] == 17 and summary["accounts"] == 17 and summary["failed_rounds"] == 0
    assert summary["posts"] > 17 * 5 and summary["batches"] >= 17  # every round posts
    # the crash day puts accounts below maintenance margin, and the keeper liquidates them
    assert summary["rounds_below_mm"] >= 1 and summary["liquidations"] >= 1
    # the books balance to the wei (the vault may keep rounding dust, never owe it)
    assert int(s["vault_cash_wad"]) - int(s["sum_cash_wad"]) == s["dust_wei"]
    assert 0 <= s["dust_wei"] <= 10**9 and s["collateral_ok"]
    # nobody is left below MM and all bad debt is covered by the fund or socialised
    assert s["below_mm"] == [] and s["negative_equity"] == [] and int(s["uncovered_wad"]) == 0
    assert int(s["bad_debt_total_wad"]) == int(s["fund_payouts_wad"]) + int(s["socialised_wad"])
    assert s["ok"] and s["unbalanced_assets"] == []
    assert "verdict: **solvent**" in (out / "report.md").read_text()
    # the perp books pay and receive funding, and the two sides balance to the wei
    funding = summary["funding"]
    assert funding["balanced"] and int(funding["paid_wad"]) > 0
    assert int(funding["by_account_wad"]["eth_perp_basis"]) < 0  # the short perp receives
    assert "## Funding" in (out / "report.md").read_text()
    # the story, with the summary's numbers, not Ape's line per transaction
    assert "Confirmed 0x" not in proc.stdout + proc.stderr
    assert f"{summary['liquidations']} liquidations" in proc.stdout
    assert f"solvent: the vault keeps {s['dust_wei']} wei of rounding" in proc.stdout
    for png in ("price.png", "accounts.png", "liquidations.png", "insurance_fund.png"):
        assert (out / png).stat().st_size > 1_000
