"""Backtest report: markdown tables and PNG charts (matplotlib, Agg backend).

``write_report`` produces ``report.md`` (method, backtest table per confidence, capital-efficiency
table), ``backtest.csv`` (the same rows, machine-readable) and one chart per asset and confidence:
margin against realised loss for every strategy, exceedances marked, the out-of-sample start
drawn as a vertical line.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

import numpy as np

from offchain.backtest import AssetRun, BacktestConfig, BacktestRow, summarize
from offchain.capital_efficiency import (
    EfficiencyRow,
    MarketPoint,
    efficiency_table,
    market_point,
)
from offchain.data import PriceSeries

__all__ = [
    "backtest_doc_section",
    "backtest_markdown",
    "basis_doc_section",
    "efficiency_doc_section",
    "efficiency_markdown",
    "efficiency_points",
    "efficiency_readme_section",
    "efficiency_rows",
    "plot_run",
    "write_backtest_sections",
    "write_efficiency_sections",
    "write_report",
]


def efficiency_rows(series: Sequence[PriceSeries], config: BacktestConfig) -> list[EfficiencyRow]:
    """The capital-efficiency table of every asset at its last calibrated close."""
    rows: list[EfficiencyRow] = []
    for s in series:
        rows += efficiency_table(market_point(s, config), config)
    return rows


def efficiency_points(series: Sequence[PriceSeries], config: BacktestConfig) -> list[MarketPoint]:
    """The market state of every asset the efficiency table is computed at."""
    return [market_point(s, config) for s in series]


#: The strategies the README quotes (hedged books, where netting matters).
README_STRATEGIES = ("covered call", "short straddle", "bull call spread", "iron condor")
README = Path(__file__).resolve().parents[1] / "README.md"
RESULTS = Path(__file__).resolve().parents[1] / "docs" / "backtest-results.md"
EFFICIENCY_TITLE = "Capital efficiency"


def efficiency_doc_section(
    points: Sequence[MarketPoint], rows: Sequence[EfficiencyRow], config: BacktestConfig
) -> str:
    """The body of docs/backtest-results.md's capital-efficiency section (what ``python -m
    offchain efficiency`` prints)."""
    states = ", ".join(
        f"{p.asset} {p.as_of} (forward {p.forward:,.2f}, PSR {p.psr:.2%}, IV proxy {p.iv:.1%})"
        for p in points
    )
    by = {(r.asset, r.strategy): r for r in rows}
    hedged = "; ".join(
        f"{name} " + " / ".join(f"{by[p.asset, name].legs_ratio:.2f}x" for p in points)
        for name in README_STRATEGIES
        if all((p.asset, name) in by for p in points)
    )
    return (
        f"Market state: each asset's calibration at the last close of its backtest data, "
        f"{states}; grid {config.grid.name}, short-option minimum {config.som_rate:.0%} of spot "
        f"per short option and IM factor {config.im_factor:g} (params/margin.json); one unit per "
        "leg; MM in USD. (a) the portfolio model, (b) each leg margined alone and summed, (c) "
        "full collateralisation of short options (Opyn-style: a short call locks one unit of the "
        "underlying, a short put its strike; futures legs at their stand-alone margin).\n\n"
        + efficiency_markdown(rows)
        + f"\n(b)/(a) for the hedged books ({' / '.join(p.asset for p in points)}): {hedged}. "
        "Single-leg books cost the same under (a) and (b); a book whose scan nets to little sits "
        "at the short-option-minimum floor, which bounds its (b)/(a).\n"
    )


def efficiency_readme_section(rows: Sequence[EfficiencyRow], config: BacktestConfig) -> str:
    """The body of README.md's capital-efficiency section: the hedged books' saving against
    margining each leg alone, at the parameter set's short-option minimum."""
    assets = list(dict.fromkeys(r.asset for r in rows))
    by = {(r.asset, r.strategy): r for r in rows}
    lines = [
        f"What `make efficiency` prints (short-option minimum {config.som_rate:.0%} of spot, "
        "grid and vol shocks from params/margin.json; full table and market state in "
        "[docs/backtest-results.md](docs/backtest-results.md)): the margin of a hedged book "
        "margined leg by leg, divided by its portfolio margin.",
        "",
        "| strategy | " + " | ".join(f"{a} (b)/(a)" for a in assets) + " |",
        "| --- | " + " | ".join("---:" for _ in assets) + " |",
    ]
    for name in README_STRATEGIES:
        cells = [f"{by[a, name].legs_ratio:.2f}x" for a in assets if (a, name) in by]
        if len(cells) == len(assets):
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


#: The docs/backtest-results.md section of each confidence's backtest table.
BACKTEST_TITLES = {
    0.99: "Backtest at the target confidence, 99% (headline)",
    0.995: "Sensitivity: PSR at 99.5% (= 99% two-sided coverage, the CCP convention)",
}
BASIS_TITLE = "Futures calendar: a stress test of the basis size"


def backtest_doc_section(rows: Sequence[BacktestRow]) -> str:
    """A backtest table and the count of its Kupiec verdicts per window."""
    counts = []
    for window in dict.fromkeys(r.window for r in rows):
        in_window = [r for r in rows if r.window == window]
        verdicts = {
            v: sum(r.verdict == v for r in in_window)
            for v in dict.fromkeys(r.verdict for r in in_window)
        }
        counts.append(f"{window}: " + ", ".join(f"{n} {v}" for v, n in sorted(verdicts.items())))
    many = [f"{r.asset} {r.strategy} ({r.window})" for r in rows if r.verdict.endswith("too many")]
    return (
        backtest_markdown(rows)
        + "\nKupiec verdicts per window (rows of both assets): "
        + "; ".join(counts)
        + ". Rejected for too many exceedances: "
        + (", ".join(many) if many else "none")
        + ".\n"
    )


def basis_doc_section(points: Sequence[MarketPoint], basis: float) -> str:
    """The basis stress table at each asset's efficiency market point."""
    from offchain.basis_stress import basis_stress, basis_stress_markdown

    rows = [row for p in points for row in basis_stress(p, basis)]
    return (
        "The price history has one close per day and no futures curve, so a +1 near / -1 far "
        "futures spread has no realised loss to backtest: both legs are marked at the same "
        "forward. Its margin comes from the forward-curve (tilt) scenarios, whose size is the "
        f"parameter set's `basis` ({basis:g} per year of expiry gap, params/margin.json): the two "
        "forwards move apart by basis x gap x forward. The basis is therefore a stress "
        "parameter, tested here against relative moves of one forward against the other, not "
        "backtested. One unit per leg, USD, at the capital-efficiency market state.\n\n"
        + basis_stress_markdown(rows, basis)
    )


def write_backtest_sections(
    runs: Sequence[AssetRun], points: Sequence[MarketPoint], basis: float
) -> list[Path]:
    """Replace docs/backtest-results.md's backtest table of each confidence and its basis
    stress table with what this code gives."""
    from bench.doc import write_section

    for conf in dict.fromkeys(r.config.calibration.confidence for r in runs):
        rows = [
            row for r in runs if r.config.calibration.confidence == conf for row in summarize(r)
        ]
        title = BACKTEST_TITLES.get(conf, f"Backtest, PSR confidence {conf:.1%}")
        write_section(title, backtest_doc_section(rows), RESULTS)
    write_section(
        BASIS_TITLE, basis_doc_section(points, basis), RESULTS, after=BACKTEST_TITLES[0.99]
    )
    return [RESULTS]


def write_efficiency_sections(doc: str, readme: str) -> list[Path]:
    """Replace the capital-efficiency sections of docs/backtest-results.md and README.md."""
    from bench.doc import write_section

    write_section(EFFICIENCY_TITLE, doc, RESULTS)
    write_section(EFFICIENCY_TITLE, readme, README, after="How margin is computed")
    return [RESULTS, README]


def efficiency_markdown(rows: Sequence[EfficiencyRow], points: str = "") -> str:
    """Markdown table: (a) portfolio, (b) sum of legs, (c) full collateral, ratios (b)/(a),
    (c)/(a)."""
    lines = [
        "| asset | strategy | (a) portfolio MM | (b) sum of legs | (c) full collateral "
        "| (b)/(a) | (c)/(a) |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in rows:
        lines.append(
            f"| {r.asset} | {r.strategy} | {r.portfolio:,.2f} | {r.sum_of_legs:,.2f} | "
            f"{r.full_collateral:,.2f} | {r.legs_ratio:.2f} | {r.collateral_ratio:.2f} |"
        )
    return (points + "\n" if points else "") + "\n".join(lines) + "\n"


def backtest_markdown(rows: Sequence[BacktestRow]) -> str:
    """Markdown table of backtest rows (asset, strategy, window, ..., Kupiec LR and p, zone)."""
    lines = [
        "| asset | strategy | window | dates | target | days | exceed. | rate | Kupiec LR "
        "| p | Kupiec 5% | zone |",
        "| --- | --- | --- | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | --- |",
    ]
    for r in rows:
        lines.append(
            f"| {r.asset} | {r.strategy} | {r.window} | {r.start} .. {r.end} | "
            f"{r.confidence:.1%} | {r.days} | {r.exceedances} | {r.rate:.2%} | "
            f"{r.kupiec_lr:.3f} | {r.kupiec_p:.3f} | {r.verdict} | {r.zone} |"
        )
    return "\n".join(lines) + "\n"


def plot_run(run: AssetRun, path: Path) -> Path:
    """Margin and realised loss (% of the forward) of every strategy, exceedances marked."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    k = len(run.strategies)
    cols = 2
    rows = (k + cols - 1) // cols
    fig, axes = plt.subplots(rows, cols, figsize=(14, 2.4 * rows), sharex=True, squeeze=False)
    days = run.dates.astype("datetime64[D]").astype(object)
    exceed = run.exceed
    oos = np.flatnonzero(~run.in_sample)
    for i, name in enumerate(run.strategies):
        ax = axes[i // cols][i % cols]
        mm = 100 * run.margin[:, i] / run.spot
        loss = 100 * run.loss[:, i] / run.spot
        ax.plot(days, loss, lw=0.4, color="0.55", label="realised loss")
        ax.plot(days, mm, lw=0.8, color="tab:blue", label="MM")
        hit = np.flatnonzero(exceed[:, i])
        ax.scatter(
            [days[j] for j in hit],
            loss[hit],
            s=10,
            color="tab:red",
            zorder=3,
            label=f"exceedance ({hit.size})",
        )
        if oos.size:
            ax.axvline(days[oos[0]], color="k", lw=0.8, ls="--")
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("% of forward", fontsize=8)
        ax.tick_params(labelsize=7)
        ax.legend(fontsize=7, loc="upper left")
    for j in range(k, rows * cols):
        axes[j // cols][j % cols].axis("off")
    conf = run.config.calibration.confidence
    fig.suptitle(
        f"{run.asset}: maintenance margin vs next-day realised loss, PSR at {conf:.1%}"
        + (" (dashed: out-of-sample from 2022)" if oos.size else ""),
        fontsize=11,
    )
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path


def _method(config: BacktestConfig, runs: Sequence[AssetRun]) -> str:
    cal = config.calibration
    windows = "\n".join(
        f"- {r.asset}: margin days {r.dates[0]} .. {r.dates[-1]} ({r.dates.shape[0]} days; "
        f"{int(r.in_sample.sum())} in-sample, {int((~r.in_sample).sum())} out-of-sample)"
        for r in runs
        if r.config.calibration.confidence == cal.confidence
    )
    lines = [
        "## Method",
        "",
        f"- PSR: EWMA volatility (lambda {cal.ewma_lambda}) x Student-t quantile fitted by maximum "
        f"likelihood on EWMA-standardised log returns (expanding window, refitted every "
        f"{cal.refit_every_days} days, dof clipped to [{cal.min_dof}, {cal.max_dof}]), one-sided "
        f"at the target confidence, horizon {cal.horizon_days} day(s), floor {cal.psr_floor:.0%}, "
        f"cap {cal.psr_cap:.0%}. Warm-up: the first {cal.warmup_days} returns seed the EWMA and "
        f"the first fit. Point in time: day t uses closes up to t; the t fit is frozen after "
        f"{config.in_sample_end} (the EWMA keeps updating), so 2022+ is out of sample.",
        f"- Implied-vol proxy (the data has no option prices): {config.iv_premium:g} x EWMA daily "
        "vol x sqrt(365), flat across strikes and expiries; rate 0, forward = the close.",
        f"- Margin: grid {config.grid.name} ({len(config.grid)} scenarios), risk arrays by "
        "Black-76, float reference model (scan per underlying, short-option minimum "
        f"{config.som_rate:.0%} of spot per short option as a floor). Portfolios formed at each "
        "close, one unit per leg, 30-day options (60-day long leg in the calendar), strikes as a "
        "multiple of the forward.",
        "- Exceedance: next-day loss (all legs marked again at the next close with that day's vol "
        "proxy, one day closer to expiry) strictly above MM. Kupiec POF test (chi-square(1), 5%: "
        "LR > 3.841); Basel zone from the binomial probability of at most N exceedances: green "
        "< 95%, red >= 99.99% (the 250-day table at 99%: green 0-4, yellow 5-9, red 10+), "
        "scaled to the window.",
        "- Data: the CoinGecko daily closes of both assets (data/SOURCES.md). Windows: BTC from "
        f"the file's start, ETH from {config.start_of('ETH')} (the August 2015 launch market "
        "moves -53%, -48%, +55% and +45% in a day on a few quotes).",
        windows,
        "",
    ]
    return "\n".join(lines)


def write_report(
    out_dir: Path,
    runs: Sequence[AssetRun],
    efficiency: Sequence[EfficiencyRow],
    charts: bool = True,
    command: str | None = None,
) -> Path:
    """Write ``report.md``, ``backtest.csv`` and (with ``charts``) one PNG per run."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    all_rows: list[BacktestRow] = []
    parts = [
        "# Margin model backtest\n",
        f"Reproduce: `{command or 'python -m offchain backtest --out ' + str(out_dir)}`\n",
    ]
    if runs:
        parts.append(_method(runs[0].config, runs))
    for conf in dict.fromkeys(r.config.calibration.confidence for r in runs):
        conf_runs = [r for r in runs if r.config.calibration.confidence == conf]
        rows = [row for r in conf_runs for row in summarize(r)]
        all_rows += rows
        parts.append(f"## Backtest, PSR confidence {conf:.1%}\n")
        parts.append(backtest_markdown(rows))
        if charts:
            images = []
            for r in conf_runs:
                name = f"{r.asset.lower()}_{round(conf * 1000):d}.png"
                plot_run(r, out_dir / name)
                images.append(f"![{r.asset} at {conf:.1%}]({name})")
            parts.append("\n".join(images) + "\n")
    if efficiency:
        parts.append("## Capital efficiency (USD, one unit per leg)\n")
        parts.append(efficiency_markdown(efficiency))
    report = out_dir / "report.md"
    report.write_text("\n".join(parts))
    with (out_dir / "backtest.csv").open("w", newline="") as handle:
        fields = list(BacktestRow.__dataclass_fields__)
        writer = csv.DictWriter(handle, fieldnames=fields)
        writer.writeheader()
        for row in all_rows:
            writer.writerow(asdict(row))
    return report
