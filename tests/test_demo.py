"""The demo's short mode end to end on anvil (deploy, books, the March 2020 crash, keeper posts,
liquidations and settlement), with its solvency check asserted."""

from __future__ import annotations

from scripts._demo import DemoOptions, run_demo


def test_short_demo_replays_the_crash_and_stays_solvent(tmp_path):
    out = tmp_path / "demo"
    r = run_demo(DemoOptions.for_mode(True, out=out, live=False), say=lambda *_: None)
    s = r.solvency
    assert r.rounds == 17 and r.accounts == 14
    assert r.posts > 17 * 5 and r.batches >= r.rounds  # every round posts something
    # the crash day puts accounts below maintenance margin, and the keeper acts on them
    assert any(h["below_mm"] for h in r.history)
    assert r.liquidations >= 1
    # the books balance: vault cash == sum of account cash + fund, to the wei (rounding dust >= 0)
    assert 0 <= s.dust <= 10**9 and s.collateral_ok
    assert s.below_mm == [] and s.negative_equity == [] and s.bad_debt == 0
    assert s.ok
    text = (out / "report.md").read_text()
    assert "verdict: **solvent**" in text
    for png in ("price.png", "accounts.png", "liquidations.png", "insurance_fund.png"):
        assert (out / png).stat().st_size > 1_000
