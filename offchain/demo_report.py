"""The demo's report: what a replay did, as ``report.md``, ``summary.json`` and four PNG charts.

``DemoRun`` is the record a replay fills (one ``RoundSnapshot`` per keeper round); ``write_report``
turns it into files and ``closing_lines`` into the few lines ``make demo`` ends with. Amounts are
WAD in the record and USD on the page.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from itertools import accumulate
from pathlib import Path
from typing import Any

from offchain.fixed_point import WAD
from offchain.solvency import Solvency

__all__ = [
    "CHARTS",
    "DemoRun",
    "RoundSnapshot",
    "closing_lines",
    "funding_flows",
    "report_markdown",
    "summary",
    "write_report",
]

CHARTS = ("price.png", "accounts.png", "liquidations.png", "insurance_fund.png")


@dataclass(frozen=True)
class RoundSnapshot:
    """The state after one keeper round."""

    date: datetime  # the tick's real (unshifted) time, UTC
    spots: Mapping[str, float]  # USD
    accounts: Mapping[str, tuple[int, int, int]]  # label -> (equity, IM, MM)
    posted: int  # items posted (spots, prices, instruments)
    gas: int  # gas of the keeper's transactions in the round
    liquidated: tuple[str, ...]  # labels, in the order liquidated
    below_mm: tuple[str, ...]  # labels found below MM before liquidating
    settled: int  # accounts settled
    insurance_fund: int
    seconds: float
    # perps: each underlying's funding index F after the round (WAD per contract, the oracle's
    # funding_index), the hourly rate posted in the round (WAD) and each account's perp
    # positions after it (label -> underlying -> signed size, WAD)
    funding_index: Mapping[str, int] = field(default_factory=dict)
    funding_rates: Mapping[str, int] = field(default_factory=dict)
    perps: Mapping[str, Mapping[str, int]] = field(default_factory=dict)


@dataclass
class DemoRun:
    """What one replay did."""

    start: str  # first replayed day, YYYY-MM-DD
    end: str  # last replayed day
    steps_per_day: int
    short: bool
    traders: int
    makers: int
    styles: dict[str, str]  # account label -> what the account is (a trader's book, a maker)
    labels: dict[str, str] = field(default_factory=dict)  # address -> label
    failed_rounds: int = 0  # rounds the keeper gave up on (resumed at the next tick)
    posts: int = 0
    batches: int = 0
    transactions: int = 0
    gas: int = 0
    liquidations: int = 0
    settlement_prices: int = 0
    settlements: int = 0
    setup_seconds: float = 0.0
    replay_seconds: float = 0.0
    total_seconds: float = 0.0
    history: list[RoundSnapshot] = field(default_factory=list)
    solvency: Solvency | None = None
    perp_premium: float = 0.0  # the premium the keeper marked the perps at (keeper/funding.py)

    @property
    def rounds(self) -> int:
        return len(self.history)

    @property
    def accounts(self) -> int:
        return self.traders + self.makers

    def names(self, addresses: tuple[str, ...]) -> list[str]:
        return [self.labels.get(a, a) for a in addresses]


def funding_flows(history: list[RoundSnapshot]) -> dict[str, int]:
    """Funding each account paid (> 0) or received (< 0) over the run, WAD**2 (exact): the sum
    over consecutive rounds of its perp position after the first times the change of the
    funding index, ``q x dF`` (longs pay when F rises). Across all holders it sums to zero to
    the unit whenever every long has its short (each trade has both sides)."""
    out: dict[str, int] = {}
    for h0, h1 in zip(history, history[1:], strict=False):
        for label, positions in h0.perps.items():
            for und, q in positions.items():
                d_f = h1.funding_index.get(und, 0) - h0.funding_index.get(und, 0)
                out[label] = out.get(label, 0) + q * d_f
    return out


def _funding_totals(run: DemoRun) -> tuple[dict[str, int], int, int]:
    flows = funding_flows(run.history)
    paid = sum(v for v in flows.values() if v > 0)
    received = -sum(v for v in flows.values() if v < 0)
    return flows, paid, received


def closing_lines(run: DemoRun) -> list[str]:
    """The end of the story: counts, bad debt and the solvency verdict."""
    s = _solvency(run)
    verdict = "solvent" if s.ok else "NOT solvent (see the report)"
    if s.dust >= 0:
        cash = f"the vault keeps {s.dust} wei of rounding"
    else:
        cash = f"the vault owes {-s.dust} wei more than it holds"
    _, paid, received = _funding_totals(run)
    funding = (
        [
            f"funding: {_usd(paid // WAD)} USD paid, {_usd(received // WAD)} USD received "
            f"({'balanced' if paid == received else 'NOT balanced'})"
        ]
        if any(h.perps for h in run.history)
        else []
    )
    return [
        f"{run.rounds} keeper rounds: {run.posts:,} items posted in {run.batches} transactions, "
        f"{run.transactions} keeper transactions in all, {run.gas:,} gas",
        f"{run.liquidations} liquidations, "
        f"{run.settlement_prices} instruments settled at the TWAP, "
        f"{run.settlements} accounts settled",
        f"bad debt {_usd(s.bad_debt)} USD (insurance fund {_usd(s.fund_payouts)}, socialised "
        f"{_usd(s.socialised)}, uncovered {_usd(s.uncovered_bad_debt)}); insurance fund at the "
        f"end {_usd(s.insurance_fund)} USD",
        *funding,
        f"{verdict}: {cash}, "
        f"{len(s.unbalanced_assets)} unbalanced collateral assets, "
        f"{len(s.below_mm)} accounts below MM; {run.total_seconds:.0f} s",
    ]


def write_report(out: Path, run: DemoRun) -> Path:
    """``report.md``, ``summary.json`` and the charts in ``out``; returns the report's path."""
    _plot_prices(run, out / "price.png")
    _plot_accounts(run, out / "accounts.png")
    _plot_liquidations(run, out / "liquidations.png")
    _plot_insurance_fund(run, out / "insurance_fund.png")
    path = out / "report.md"
    path.write_text(report_markdown(run))
    (out / "summary.json").write_text(json.dumps(summary(run), indent=2) + "\n")
    return path


def summary(run: DemoRun) -> dict[str, Any]:
    """The machine-readable numbers (WAD amounts as strings: JSON numbers lose precision)."""
    s = _solvency(run)
    flows, paid, received = _funding_totals(run)
    return {
        "mode": "short" if run.short else "full",
        "rounds": run.rounds,
        "failed_rounds": run.failed_rounds,
        "accounts": run.accounts,
        "posts": run.posts,
        "batches": run.batches,
        "transactions": run.transactions,
        "gas": run.gas,
        "liquidations": run.liquidations,
        "settlement_prices": run.settlement_prices,
        "settlements": run.settlements,
        "rounds_below_mm": sum(1 for h in run.history if h.below_mm),
        "setup_seconds": round(run.setup_seconds, 1),
        "replay_seconds": round(run.replay_seconds, 1),
        "total_seconds": round(run.total_seconds, 1),
        "solvency": {
            "ok": s.ok,
            "vault_cash_wad": str(s.vault_cash),
            "sum_cash_wad": str(s.sum_cash),
            "dust_wei": s.dust,
            "collateral_ok": not s.unbalanced_assets,
            "unbalanced_assets": list(s.unbalanced_assets),
            "below_mm": run.names(s.below_mm),
            "negative_equity": run.names(s.negative_equity),
            "bad_debt_total_wad": str(s.bad_debt),
            "fund_payouts_wad": str(s.fund_payouts),
            "socialised_wad": str(s.socialised),
            "uncovered_wad": str(s.uncovered_bad_debt),
            "insurance_fund_wad": str(s.insurance_fund),
        },
        "funding": {
            "perp_premium": run.perp_premium,
            "paid_wad": str(paid // WAD),
            "received_wad": str(received // WAD),
            "balanced": paid == received,
            "by_account_wad": {k: str(v // WAD) for k, v in sorted(flows.items()) if v},
        },
    }


def report_markdown(run: DemoRun) -> str:
    """``report.md``: the numbers, the solvency check, the charts, every account and round."""
    s = _solvency(run)
    lines = [
        "# Demo: the March 2020 crash through the margin engine",
        "",
        f"Replay {run.start} .. {run.end}, {run.steps_per_day} steps a day, "
        f"{'short' if run.short else 'full'} mode: {run.accounts} accounts "
        f"({run.traders} traders, {run.makers} market makers), {run.rounds} keeper rounds.",
        "",
        "| | |",
        "| --- | ---: |",
        f"| keeper posts (items) | {run.posts:,} |",
        f"| post transactions (batches) | {run.batches:,} |",
        "| keeper transactions in all (posts, registrations, liquidations, settlements) | "
        f"{run.transactions:,} |",
        f"| gas spent by the keeper | {run.gas:,} |",
        f"| liquidations | {run.liquidations} |",
        f"| instruments settled at the TWAP / accounts settled | {run.settlement_prices} / "
        f"{run.settlements} |",
        f"| bad debt met by liquidations (USD) | {_usd(s.bad_debt)} |",
        f"| paid by the insurance fund / socialised (USD) | {_usd(s.fund_payouts)} / "
        f"{_usd(s.socialised)} |",
        f"| uncovered bad debt (USD) | {_usd(s.uncovered_bad_debt)} |",
        f"| insurance fund at the end (USD) | {_usd(s.insurance_fund)} |",
        f"| setup time (deploy, books) | {run.setup_seconds:.1f} s |",
        f"| replay time | {run.replay_seconds:.1f} s |",
        f"| total | {run.total_seconds:.1f} s |",
        "",
        "## Solvency check",
        "",
        f"- stablecoin held by the vault: {s.vault_cash / WAD:,.6f} USD; sum of account cash: "
        f"{s.sum_cash / WAD:,.6f} USD; difference {s.dust} wei (rounding kept by the vault, "
        "never owed): " + ("balanced" if s.cash_balanced else "**NOT balanced**"),
        "- collateral balances equal what the vault owes and holds: "
        + ("yes" if not s.unbalanced_assets else "**no** (" + ", ".join(s.unbalanced_assets) + ")"),
        f"- accounts below MM at the end: {len(s.below_mm)}"
        + ("" if not s.below_mm else " (" + ", ".join(run.names(s.below_mm)) + ")"),
        f"- accounts with negative equity: {len(s.negative_equity)}",
        f"- verdict: **{'solvent' if s.ok else 'NOT solvent'}**",
        "",
        "## Charts",
        "",
        "![BTC and ETH, USD](price.png)",
        "",
        "![equity and MM per account, USD, liquidations marked](accounts.png)",
        "",
        "![liquidations and accounts below MM](liquidations.png)",
        "",
        "![insurance fund, USD](insurance_fund.png)",
        "",
        "## Accounts at the end",
        "",
        "| account | strategy or role | equity (USD) | IM (USD) | MM (USD) |",
        "| --- | --- | ---: | ---: | ---: |",
    ]
    for name, (eq, im, mm) in sorted(run.history[-1].accounts.items()):
        usd = " | ".join(f"{v / WAD:,.0f}" for v in (eq, im, mm))
        lines.append(f"| {name} | {run.styles.get(name, '')} | {usd} |")
    lines += _funding_section(run)
    lines += [
        "",
        "## Rounds",
        "",
        "| date (UTC) | BTC (USD) | ETH (USD) | posted | gas | below MM | liquidated | settled |",
        "| --- | ---: | ---: | ---: | ---: | ---: | --- | ---: |",
    ]
    for h in run.history:
        lines.append(
            f"| {h.date:%Y-%m-%d %H:%M} | {h.spots['BTC']:,.0f} | {h.spots['ETH']:,.2f} | "
            f"{h.posted} | {h.gas:,} | {len(h.below_mm)} | {', '.join(h.liquidated)} | "
            f"{h.settled} |"
        )
    return "\n".join(lines) + "\n"


def _funding_section(run: DemoRun) -> list[str]:
    """Funding paid and received per holder of a perp, the totals and the rates posted."""
    if not any(h.perps for h in run.history):
        return []
    flows, paid, received = _funding_totals(run)
    rates: dict[str, list[int]] = {}
    for h in run.history:
        for und, r in h.funding_rates.items():
            rates.setdefault(und, []).append(r)
    lines = [
        "",
        "## Funding",
        "",
        "The perps are marked at spot x (1 + premium) with a premium of "
        f"{run.perp_premium:.2%} (the data has no perp market: a stated model); the keeper "
        "posts the hourly rate p + clamp(0.01% - p, -0.05%, 0.05%) per 8 hours, / 8, capped, "
        "and the oracle accrues it into each perp's funding index F. An account's funding is "
        "the sum over rounds of its perp position times the change of F (positive: paid).",
        "",
    ]
    for und, rs in sorted(rates.items()):
        lines.append(
            f"- {und}: {len(rs)} rates posted, from {min(rs) / WAD:.6%} to {max(rs) / WAD:.6%} "
            "per hour"
        )
    lines += [
        "",
        "| account | strategy or role | paid (USD) | received (USD) |",
        "| --- | --- | ---: | ---: |",
    ]
    for name, v in sorted(flows.items()):
        if v == 0:
            continue
        cells = (_usd(v // WAD), "") if v > 0 else ("", _usd(-v // WAD))
        lines.append(f"| {name} | {run.styles.get(name, '')} | {cells[0]} | {cells[1]} |")
    lines += [
        f"| **all holders** | | {_usd(paid // WAD)} | {_usd(received // WAD)} |",
        "",
        f"Paid {'equals' if paid == received else '**does not equal**'} received: difference "
        f"{(paid - received) // WAD} wei.",
    ]
    return lines


# ------------------------------------------------------------------------------ charts


def _pyplot() -> Any:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _date_axis(ax: Any, days: float, label: str | None) -> None:
    """Day ticks, at most about eight of them."""
    import matplotlib.dates as mdates

    ax.xaxis.set_major_locator(mdates.DayLocator(interval=max(1, math.ceil(days / 8))))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%d %b"))
    if label:
        ax.set_xlabel(label)


def _short_usd() -> Any:
    """Tick labels ``12k``, ``20M``: the accounts' scales differ by a factor of a thousand."""
    from matplotlib.ticker import FuncFormatter

    def label(value: float, _: int) -> str:
        for scale, suffix in ((1e6, "M"), (1e3, "k")):
            if abs(value) >= scale:
                return f"{value / scale:g}{suffix}"
        return f"{value:g}"

    return FuncFormatter(label)


def _days(run: DemoRun) -> float:
    return (run.history[-1].date - run.history[0].date).total_seconds() / 86_400


def _dates_label(run: DemoRun) -> str:
    """``date (2020, UTC)``: the ticks show day and month only."""
    first, last = run.history[0].date.year, run.history[-1].date.year
    return f"date ({first if first == last else f'{first}-{last}'}, UTC)"


def _finish(plt: Any, fig: Any, ax: Any, run: DemoRun, title: str, path: Path) -> None:
    """Title, date axis, save, close: the end of every single-panel chart."""
    ax.set_title(title)
    _date_axis(ax, _days(run), _dates_label(run))
    fig.savefig(path, dpi=100, bbox_inches="tight")
    plt.close(fig)


def _plot_prices(run: DemoRun, path: Path) -> None:
    """BTC and ETH on their own scales; a dotted line at each round that liquidated."""
    plt = _pyplot()
    dates = [h.date for h in run.history]
    fig, ax = plt.subplots(figsize=(9, 4))
    handles = ax.plot(dates, [h.spots["BTC"] for h in run.history], color="tab:orange", label="BTC")
    ax.set_ylabel("BTC (USD)")
    eth_ax = ax.twinx()
    eth = [h.spots["ETH"] for h in run.history]
    handles += eth_ax.plot(dates, eth, color="tab:blue", label="ETH")
    eth_ax.set_ylabel("ETH (USD)")
    for k, h in enumerate(h for h in run.history if h.liquidated):
        line = ax.axvline(h.date, color="tab:red", lw=0.8, ls=":")
        if k == 0:
            line.set_label("round with liquidations")
            handles.append(line)
    ax.legend(handles=handles, loc="upper right", fontsize=8)
    _finish(plt, fig, ax, run, "Replayed prices", path)


def _plot_accounts(run: DemoRun, path: Path) -> None:
    """Equity and MM of each account at every round; a red cross where it was liquidated."""
    plt = _pyplot()
    dates = [h.date for h in run.history]
    names = sorted({n for h in run.history for n in h.accounts})
    cols = 4
    rows = math.ceil(len(names) / cols)
    height = 2.3 * rows + 0.9  # the last 0.9 inch holds the title and the legend
    fig, axes = plt.subplots(rows, cols, figsize=(4 * cols, height), sharex=True, squeeze=False)
    missing = (math.nan,) * 3
    for k, name in enumerate(names):
        ax = axes.flat[k]
        states = [h.accounts.get(name, missing) for h in run.history]
        ax.plot(dates, [eq / WAD for eq, _, _ in states], label="equity")
        ax.plot(dates, [mm / WAD for _, _, mm in states], color="tab:red", label="MM")
        hits = [h for h in run.history if name in h.liquidated]
        if hits:
            equity_after = [h.accounts.get(name, missing)[0] / WAD for h in hits]
            ax.plot([h.date for h in hits], equity_after, "x", color="tab:red", ms=7, mew=2)
            ax.lines[-1].set_label("liquidated (equity after the round)")
        ax.set_title(name + (f" ({len(hits)} liquidated)" if hits else ""), fontsize=8)
        ax.tick_params(labelsize=6)
        ax.yaxis.set_major_formatter(_short_usd())
        if k % cols == 0:
            ax.set_ylabel("USD", fontsize=7)
        _date_axis(ax, _days(run), None)
        if k + cols >= len(names):  # the lowest plot of its column carries the dates
            ax.xaxis.set_tick_params(labelbottom=True)
    for k in range(len(names), rows * cols):
        axes.flat[k].axis("off")
    legend: dict[str, Any] = {}
    for ax in axes.flat:
        for handle, label in zip(*ax.get_legend_handles_labels(), strict=True):
            legend.setdefault(label, handle)
    title = f"Equity and maintenance margin (MM) per account, USD; {_dates_label(run)}"
    fig.suptitle(title, y=1 - 0.12 / height, va="top")
    fig.legend(
        legend.values(),
        legend.keys(),
        loc="upper center",
        ncol=3,
        fontsize=9,
        bbox_to_anchor=(0.5, 1 - 0.45 / height),
    )
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.9 / height))
    fig.savefig(path, dpi=90)
    plt.close(fig)


def _plot_liquidations(run: DemoRun, path: Path) -> None:
    plt = _pyplot()
    dates = [h.date for h in run.history]
    cumulative = list(accumulate(len(h.liquidated) for h in run.history))
    fig, ax = plt.subplots(figsize=(9, 3))
    ax.step(dates, cumulative, where="post", label="liquidations (cumulative)")
    below = [len(h.below_mm) for h in run.history]
    ax.bar(dates, below, width=0.15, alpha=0.5, color="tab:red", label="accounts below MM")
    ax.set_ylabel("liquidations / accounts")
    ax.legend(fontsize=8)
    _finish(plt, fig, ax, run, "Liquidations", path)


def _plot_insurance_fund(run: DemoRun, path: Path) -> None:
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(9, 3))
    fund = [h.insurance_fund / WAD for h in run.history]
    ax.plot([h.date for h in run.history], fund, label="insurance fund")
    ax.set_ylabel("USD")
    ax.yaxis.set_major_formatter("{x:,.0f}")
    ax.legend(fontsize=8)
    _finish(plt, fig, ax, run, "Insurance fund: its share of penalties in, bad debt out", path)


def _solvency(run: DemoRun) -> Solvency:
    if run.solvency is None:
        raise ValueError("the run has no solvency audit yet")
    return run.solvency


def _usd(wad: int) -> str:
    return f"{wad / WAD:,.2f}"
