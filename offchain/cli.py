"""Command line: ``python -m offchain {backtest,margin,arrays,efficiency}``.

File formats (JSON; documented with examples in ``examples/`` and ``docs/methodology.md``):

*Market file* (``examples/market.json``)::

    {
      "valuation_time": "2026-01-05T08:00:00Z",   ISO date/time (UTC) or unix seconds
      "rate": 0.0,                                 continuously compounded, optional
      "grid": "crypto-35",                         preset name or an inline grid (from_dict)
      "im_factor": 1.25,                           optional
      "underlyings": [
        {"name": "ETH", "spot": 3139.06, "psr": 0.075, "atm_vol": 0.50,
         "skew": 0.0, "som_rate": 0.02,            skew and som_rate optional
         "basis": 0.05, "roll": 345600}            forward-curve basis per year and roll window
                                                   in seconds, optional (som_rate, basis, roll:
                                                   params/margin.json's if omitted)
      ],
      "instruments": [
        {"id": "ETH-FEB26-F", "underlying": "ETH", "kind": "future", "expiry": "2026-02-04"},
        {"id": "ETH-FEB26-C3400", "underlying": "ETH", "kind": "call", "strike": 3400,
         "expiry": "2026-02-04T08:00:00Z", "iv": 0.52}           iv optional (else the smile)
      ],
      "collateral": [                              optional
        {"symbol": "WETH", "underlying": "ETH", "haircut": 0.2, "price": 3139.06}
      ]                                            price optional (the underlying's spot)
    }

A collateral asset moves 1:1 with its underlying in that underlying's scan while the portfolio
holds a position on it (a long spot leg, docs/fixed-point.md §5.1); equity counts it at
``price * (1 - haircut)``.

*Portfolio file* (``examples/portfolio.json``)::

    {"market": "market.json",                      path relative to this file
     "cash": 20000,                                USD, optional
     "positions": [{"instrument": "ETH-FEB26-C3400", "size": -10}, ...],
     "collateral": {"WETH": 30}}                   token units, optional

Every problem with a file is reported as one line naming the file and the field
(``examples/market.json: instruments[2].strike: must be a number > 0``; an unknown key names the
closest valid one), exit code 2; ``--verbose`` adds the traceback.
"""

from __future__ import annotations

import csv
import io
import json
import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
import numpy as np

from offchain.data import InputError
from offchain.errors import OneLineGroup, did_you_mean
from offchain.jsonfields import Fields, read_json
from offchain.params import margin_params
from offchain.paths import data_dir as data_folder

if TYPE_CHECKING:  # the core is imported lazily so that `--help` starts fast
    from offchain.risk_arrays import Instruments, MarketState
    from offchain.scenarios import ScenarioGrid

__all__ = ["LoadedMarket", "Portfolio", "cli", "load_market", "load_portfolio", "main"]


# --------------------------------------------------------------------------------------------
# File formats
# --------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedMarket:
    """A market file turned into the core types (``risk_arrays.Instruments``/``MarketState``)."""

    path: Path
    names: tuple[str, ...]  # underlying names, index = underlying id
    ids: tuple[str, ...]  # instrument ids, index = instrument row
    instruments: Instruments
    state: MarketState
    grid: ScenarioGrid
    psr: np.ndarray
    som_rate: np.ndarray
    im_factor: float
    # collateral assets: symbol, underlying index, price, haircut (one row each)
    collateral: tuple[str, ...] = ()
    collateral_underlying: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    collateral_price: np.ndarray = field(default_factory=lambda: np.zeros(0))
    haircut: np.ndarray = field(default_factory=lambda: np.zeros(0))


@dataclass(frozen=True)
class Portfolio:
    """A portfolio file: signed sizes per instrument row of its market, cash and collateral
    amounts per collateral row of its market."""

    path: Path
    market: LoadedMarket
    sizes: np.ndarray
    cash: float
    collateral: np.ndarray = field(default_factory=lambda: np.zeros(0))


MARKET_KEYS = (
    "valuation_time",
    "rate",
    "grid",
    "im_factor",
    "underlyings",
    "instruments",
    "collateral",
)
COLLATERAL_KEYS = ("symbol", "underlying", "haircut", "price")
UNDERLYING_KEYS = ("name", "spot", "psr", "atm_vol", "skew", "som_rate", "basis", "roll")
# forward-curve bounds (docs/fixed-point.md §3); the defaults are params/margin.json's
MAX_BASIS = 0.5
MAX_ROLL = 14 * 86_400
INSTRUMENT_KEYS = ("id", "underlying", "kind", "strike", "expiry", "iv")
PORTFOLIO_KEYS = ("market", "cash", "positions", "collateral")
POSITION_KEYS = ("instrument", "size")


def load_market(path: str | Path) -> LoadedMarket:
    """Parse and validate a market file (format in the module docstring)."""
    from offchain.margin import Kind
    from offchain.risk_arrays import Instruments, MarketState, VolSurface, forwards
    from offchain.scenarios import PRESETS, ScenarioGrid

    path = Path(path)
    top = Fields(path, "", read_json(path), MARKET_KEYS)
    valuation = top.time("valuation_time")
    rate = top.number("rate", 0.0)
    im_factor = top.number("im_factor", float(margin_params().im_factor), lo=1.0)
    grid_spec = top.raw("grid", "crypto-35")
    if isinstance(grid_spec, str):
        if grid_spec not in PRESETS:
            raise top.fail(
                "grid", f"unknown preset {grid_spec!r}, expected one of {sorted(PRESETS)}"
            )
        grid = PRESETS[grid_spec]
    else:
        try:
            grid = ScenarioGrid.from_dict(grid_spec)
        except ValueError as err:
            raise top.fail("grid", str(err)) from None

    names: list[str] = []
    spot, psr, atm, skew, som, basis, roll = [], [], [], [], [], [], []
    for i, item in enumerate(top.items("underlyings")):
        f = Fields(path, f"underlyings[{i}]", item, UNDERLYING_KEYS)
        name = f.text("name")
        if name in names:
            raise f.fail("name", f"duplicate underlying {name!r}")
        names.append(name)
        spot.append(f.number("spot", lo=0.0, strict=True))
        value = f.number("psr", lo=0.0, strict=True)
        if value > 1.0:
            raise f.fail("psr", f"must be a fraction in (0, 1], got {value:g}")
        psr.append(value)
        atm.append(f.number("atm_vol", lo=0.0))
        skew.append(f.number("skew", 0.0))
        rate_u = f.number("som_rate", float(margin_params().som_rate), lo=0.0)
        if rate_u > 1.0:
            raise f.fail("som_rate", f"must be a fraction in [0, 1], got {rate_u:g}")
        som.append(rate_u)
        basis_u = f.number("basis", float(margin_params().basis), lo=0.0)
        if basis_u > MAX_BASIS:
            raise f.fail("basis", f"must be in [0, {MAX_BASIS}] per year, got {basis_u:g}")
        basis.append(basis_u)
        roll_u = f.number("roll", float(margin_params().roll), lo=0.0)
        if roll_u > MAX_ROLL or roll_u != int(roll_u):
            raise f.fail("roll", f"must be whole seconds in [0, {MAX_ROLL}], got {roll_u:g}")
        roll.append(roll_u)

    ids: list[str] = []
    und, kind, strike, expiry, iv = [], [], [], [], []
    for i, item in enumerate(top.items("instruments")):
        f = Fields(path, f"instruments[{i}]", item, INSTRUMENT_KEYS)
        ident = f.text("id")
        if ident in ids:
            raise f.fail("id", f"duplicate instrument {ident!r}")
        ids.append(ident)
        u_name = f.text("underlying")
        if u_name not in names:
            raise f.fail("underlying", f"unknown underlying {u_name!r}")
        und.append(names.index(u_name))
        k_name = f.text("kind").upper()
        if k_name not in Kind.__members__:
            raise f.fail("kind", f"must be future, call, put or perp, got {f.raw('kind')!r}")
        kind.append(Kind[k_name].value)
        is_opt = Kind[k_name].is_option
        strike.append(f.number("strike", lo=0.0, strict=True) if is_opt else np.nan)
        if Kind[k_name] is Kind.PERP:
            # a perp is margined as a future at the spot end of the curve (no expiry)
            expiry.append(valuation + 1)
            iv.append(np.nan)
            continue
        exp = f.time("expiry")
        if exp <= valuation:
            raise f.fail("expiry", "must be after valuation_time")
        expiry.append(exp)
        iv.append(f.number("iv", lo=0.0, strict=True) if is_opt and "iv" in item else np.nan)

    symbols: list[str] = []
    c_und, c_price, c_haircut = [], [], []
    for i, item in enumerate(top.items("collateral") if top.has("collateral") else []):
        f = Fields(path, f"collateral[{i}]", item, COLLATERAL_KEYS)
        symbol = f.text("symbol")
        if symbol in symbols:
            raise f.fail("symbol", f"duplicate collateral {symbol!r}")
        symbols.append(symbol)
        u_name = f.text("underlying")
        if u_name not in names:
            hint = did_you_mean(u_name, names) or f" (one of {', '.join(names)})"
            raise f.fail("underlying", f"unknown underlying {u_name!r}{hint}")
        c_und.append(names.index(u_name))
        haircut = f.number("haircut", lo=0.0)
        if haircut >= 1.0:
            raise f.fail("haircut", f"must be a fraction in [0, 1), got {haircut:g}")
        c_haircut.append(haircut)
        c_price.append(f.number("price", spot[names.index(u_name)], lo=0.0, strict=True))

    try:
        ins = Instruments(
            np.array(und, dtype=np.int64),
            np.array(kind, dtype=np.int64),
            np.array(strike, dtype=np.float64),
            np.array(expiry, dtype=np.int64),
        )
        surface = VolSurface(np.array(atm), np.array(skew))
        probe = MarketState(valuation, np.array(spot), surface, rate)
        fwd = forwards(ins, probe)
        smile = surface.vol(ins.underlying, np.where(ins.is_option, ins.strike, fwd), fwd)
        vols = np.where(np.isnan(iv), smile, iv)
        state = MarketState(
            valuation, np.array(spot), vols, rate, basis=np.array(basis), roll=np.array(roll)
        )
    except ValueError as err:
        raise InputError(path, "", str(err)) from None
    return LoadedMarket(
        path,
        tuple(names),
        tuple(ids),
        ins,
        state,
        grid,
        np.array(psr),
        np.array(som),
        im_factor,
        tuple(symbols),
        np.array(c_und, dtype=np.int64),
        np.array(c_price, dtype=np.float64),
        np.array(c_haircut, dtype=np.float64),
    )


def load_portfolio(path: str | Path, market: str | Path | None = None) -> Portfolio:
    """Parse a portfolio file; its ``market`` path is relative to the portfolio file unless
    ``market`` overrides it."""
    path = Path(path)
    top = Fields(path, "", read_json(path), PORTFOLIO_KEYS)
    if market is None:
        market = path.parent / top.text("market")
    loaded = load_market(market)
    sizes = np.zeros(len(loaded.ids))
    for i, item in enumerate(top.items("positions")):
        f = Fields(path, f"positions[{i}]", item, POSITION_KEYS)
        ident = f.text("instrument")
        if ident not in loaded.ids:
            raise f.fail("instrument", f"not in {loaded.path}: {ident!r}")
        sizes[loaded.ids.index(ident)] += f.number("size")
    cash = top.number("cash", 0.0)
    amounts = np.zeros(len(loaded.collateral))
    held = top.raw("collateral", {})
    if not isinstance(held, dict):
        raise top.fail("collateral", 'must be an object of amounts, e.g. {"WETH": 30}')
    for symbol, amount in held.items():
        if symbol not in loaded.collateral:
            listed = loaded.collateral
            hint = did_you_mean(symbol, listed) or (
                f" (one of {', '.join(listed)})" if listed else " (its market lists none)"
            )
            raise top.fail("collateral", f"unknown collateral {symbol!r}{hint}")
        if isinstance(amount, bool) or not isinstance(amount, int | float) or not amount >= 0:
            raise top.fail("collateral", f"{symbol}: must be a number >= 0, got {amount!r}")
        if not np.isfinite(amount):
            raise top.fail("collateral", f"{symbol}: must be finite, got {amount!r}")
        amounts[loaded.collateral.index(symbol)] = float(amount)
    return Portfolio(path, loaded, sizes, cash, amounts)


# --------------------------------------------------------------------------------------------
# Computations behind the commands
# --------------------------------------------------------------------------------------------


def market_risk_arrays(m: LoadedMarket) -> np.ndarray:
    """Risk arrays of every instrument of the market file (a model error names the file)."""
    from offchain.risk_arrays import risk_arrays

    try:
        return risk_arrays(m.instruments, m.state, m.grid, m.psr)
    except ValueError as err:
        raise InputError(m.path, "", str(err)) from None


def what_if(p: Portfolio) -> dict[str, Any]:
    """Per-underlying scenario losses, scan, SOM, risk; MM, IM, equity, health (float model)."""
    from offchain.margin import margin_of_accounts, scenario_losses
    from offchain.risk_arrays import market_arrays, spot_leg_arrays

    m = p.market
    arrays = market_risk_arrays(m)
    legs = spot_leg_arrays(m.collateral_price, m.collateral_underlying, m.grid, m.psr)
    ma = replace(
        market_arrays(m.instruments, m.state, arrays, m.som_rate),
        collateral_price=m.collateral_price,
        haircut=m.haircut,
        collateral_underlying=m.collateral_underlying,
        collateral_arrays=legs,
    )
    state = margin_of_accounts(
        p.sizes[None, :],
        ma,
        cash=np.array([p.cash]),
        collateral=p.collateral[None, :],
        im_factor=m.im_factor,
    )
    labels = [sc.label for sc in m.grid.scenarios]
    out: dict[str, Any] = {"underlyings": []}
    for u, name in enumerate(m.names):
        on_u = (m.instruments.underlying == u) & (p.sizes != 0)
        if not on_u.any():
            continue
        losses = scenario_losses(p.sizes, ma, u)
        # the collateral moving with u (a long spot leg)
        on_c = m.collateral_underlying == u
        losses = losses - p.collateral[on_c] @ legs[on_c, : losses.shape[0]]
        worst = int(state.worst_scenario[0, u])
        out["underlyings"].append(
            {
                "name": name,
                "psr": float(m.psr[u]),
                "losses": [float(x) for x in losses],
                "scenarios": labels,
                "worst_scenario": worst,
                "worst_label": labels[worst],
                "scan": float(state.scan[0, u]),
                "som": float(state.som[0, u]),
                "risk": float(state.risk[0, u]),
            }
        )
    out["collateral"] = [
        {
            "symbol": symbol,
            "underlying": m.names[int(m.collateral_underlying[c])],
            "amount": float(p.collateral[c]),
            "price": float(m.collateral_price[c]),
            "haircut": float(m.haircut[c]),
            "value": float(p.collateral[c] * m.collateral_price[c] * (1.0 - m.haircut[c])),
        }
        for c, symbol in enumerate(m.collateral)
        if p.collateral[c]
    ]
    out.update(
        maintenance_margin=float(state.maintenance_margin[0]),
        initial_margin=float(state.initial_margin[0]),
        equity=float(state.equity[0]),
        health=float(state.health[0]),
        im_factor=m.im_factor,
        grid=m.grid.name,
    )
    return out


# --------------------------------------------------------------------------------------------
# Commands
# --------------------------------------------------------------------------------------------


def _console():
    from rich.console import Console

    return Console(width=160)


@click.group(cls=OneLineGroup)
def cli() -> None:
    """Portfolio margin engine, off-chain tools: backtest, what-if margin, risk arrays."""


@cli.command()
@click.option(
    "--out",
    "out_dir",
    type=click.Path(path_type=Path),
    default=Path("out/backtest"),
    show_default=True,
    help="Folder for report.md, backtest.csv and the PNG charts.",
)
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with btc_usd_daily_coingecko.csv and eth_usd_daily.csv [data/].",
)
@click.option(
    "--asset",
    "assets",
    multiple=True,
    default=("BTC", "ETH"),
    show_default=True,
    type=click.Choice(["BTC", "ETH"], case_sensitive=False),
)
@click.option(
    "--confidence",
    "confidences",
    multiple=True,
    type=float,
    default=(0.99, 0.995),
    show_default=True,
    help="PSR confidence (one-sided); repeat for several runs.",
)
@click.option("--horizon", type=int, default=1, show_default=True, help="Horizon in days.")
@click.option("--ewma-lambda", type=float, default=0.94, show_default=True)
@click.option(
    "--iv-premium",
    type=float,
    default=1.10,
    show_default=True,
    help="Implied-vol proxy = premium x EWMA vol x sqrt(365).",
)
@click.option(
    "--som-rate",
    type=float,
    default=None,
    help="Short-option minimum per short option, fraction of spot [params/margin.json].",
)
@click.option("--no-charts", is_flag=True, help="Skip the PNG charts.")
@click.option(
    "--write",
    is_flag=True,
    help="Also replace the backtest tables and the basis stress table of docs/backtest-results.md.",
)
def backtest(
    out_dir: Path,
    data_dir: Path | None,
    assets: tuple[str, ...],
    confidences: tuple[float, ...],
    horizon: int,
    ewma_lambda: float,
    iv_premium: float,
    som_rate: float | None,
    no_charts: bool,
    write: bool,
) -> None:
    """Backtest the margin model on the price history; write report.md and charts."""
    from rich.progress import Progress

    from offchain.backtest import BacktestConfig, run_asset
    from offchain.calibration import CalibrationParams
    from offchain.data import backtest_file, load_backtest_series
    from offchain.report import efficiency_rows, write_report

    try:
        configs = [
            BacktestConfig(
                calibration=CalibrationParams(
                    ewma_lambda=ewma_lambda, confidence=c, horizon_days=horizon
                ),
                iv_premium=iv_premium,
                som_rate=float(margin_params().som_rate) if som_rate is None else som_rate,
            )
            for c in confidences
        ]
    except ValueError as err:
        raise click.BadParameter(str(err)) from None
    series = [load_backtest_series(a, data_dir) for a in assets]
    runs = []
    total = sum(len(s) for s in series) * len(configs)
    with Progress(transient=True) as progress:
        task = progress.add_task("backtest", total=total)
        for config in configs:
            for s in series:
                progress.update(task, description=f"{s.asset} {config.calibration.confidence:.2%}")
                start = len(s)
                try:
                    run = run_asset(s, config, lambda k: progress.advance(task, k))
                except ValueError as err:
                    raise InputError(backtest_file(s.asset, data_dir), "", str(err)) from None
                progress.advance(task, start - run.margin.shape[0])
                runs.append(run)
    try:
        eff = efficiency_rows(series, configs[0])
    except ValueError as err:
        raise InputError(data_dir or data_folder(), "", str(err)) from None
    argv = " ".join(["python -m offchain", *sys.argv[1:]]) if sys.argv[1:] else None
    report = write_report(out_dir, runs, eff, charts=not no_charts, command=argv)
    click.echo(f"wrote {report}")
    if write:
        from offchain.report import efficiency_points, write_backtest_sections

        points = efficiency_points(series, configs[0])
        for path in write_backtest_sections(runs, points, float(margin_params().basis)):
            click.echo(f"wrote {path}")


@cli.command()
@click.argument("portfolio", type=click.Path(path_type=Path))
@click.option(
    "--market",
    type=click.Path(path_type=Path),
    default=None,
    help="Market file (default: the portfolio's 'market' entry).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the result as JSON.")
def margin(portfolio: Path, market: Path | None, as_json: bool) -> None:
    """What-if margin of PORTFOLIO.json: per-scenario losses, MM, IM, the worst scenario."""
    from rich.table import Table

    result = what_if(load_portfolio(portfolio, market))
    if as_json:
        click.echo(json.dumps(result, indent=2))
        return
    console = _console()
    for u in result["underlyings"]:
        table = Table(
            title=f"{u['name']}: scenario losses (grid {result['grid']}, PSR {u['psr']:.2%})"
        )
        table.add_column("#", justify="right")
        table.add_column("scenario")
        table.add_column("loss (USD)", justify="right")
        for s, (label, loss) in enumerate(zip(u["scenarios"], u["losses"], strict=True)):
            mark = " <- worst" if s == u["worst_scenario"] else ""
            shown = loss if abs(loss) >= 0.005 else 0.0  # no "-0.00"
            table.add_row(str(s), label, f"{shown:,.2f}{mark}")
        console.print(table)
        console.print(
            f"{u['name']}: scan {u['scan']:,.2f}  short-option minimum {u['som']:,.2f}  "
            f"risk {u['risk']:,.2f}  worst scenario #{u['worst_scenario']} ({u['worst_label']})"
        )
    console.print(
        f"MM {result['maintenance_margin']:,.2f}  IM {result['initial_margin']:,.2f} "
        f"(x{result['im_factor']:g})  equity {result['equity']:,.2f}  "
        f"health {result['health']:,.2f}"
    )


@cli.command()
@click.argument("market", type=click.Path(path_type=Path))
@click.option(
    "--out",
    "out_file",
    type=click.Path(path_type=Path),
    default=None,
    help="Write to FILE (.json: arrays, labels and the on-chain encoding; else CSV).",
)
def arrays(market: Path, out_file: Path | None) -> None:
    """Risk arrays (weighted value change per long unit, USD) of every instrument in MARKET."""
    from offchain.risk_arrays import encode_all, marks, risk_arrays_wad

    m = load_market(market)
    ra = market_risk_arrays(m)
    mk = marks(m.instruments, m.state)
    labels = [sc.label for sc in m.grid.scenarios]
    if out_file is not None and out_file.suffix.lower() == ".json":
        exps, entries = encode_all(risk_arrays_wad(m.instruments, m.state, m.grid, m.psr))
        doc = {
            "grid": m.grid.name,
            "scenarios": labels,
            "instruments": [
                {
                    "id": ident,
                    "underlying": m.names[int(m.instruments.underlying[j])],
                    "mark": float(mk[j]),
                    "risk_array": [float(x) for x in ra[j]],
                    "exponent": exps[j],
                    "entries": entries[j],
                }
                for j, ident in enumerate(m.ids)
            ],
        }
        _write(out_file, json.dumps(doc, indent=2) + "\n")
        click.echo(f"wrote {out_file}")
        return
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\n")
    writer.writerow(["id", "underlying", "mark", *[f"s{s}" for s in range(len(labels))]])
    for j, ident in enumerate(m.ids):
        und = m.names[int(m.instruments.underlying[j])]
        writer.writerow([ident, und, f"{mk[j]:.6f}", *[f"{x:.6f}" for x in ra[j]]])
    if out_file is None:
        click.echo(buf.getvalue(), nl=False)
    else:
        _write(out_file, buf.getvalue())
        click.echo(f"wrote {out_file}")


@cli.command()
@click.option(
    "--data-dir",
    type=click.Path(path_type=Path),
    default=None,
    help="Folder with btc_usd_daily_coingecko.csv and eth_usd_daily.csv [data/].",
)
@click.option(
    "--asset",
    "assets",
    multiple=True,
    default=("BTC", "ETH"),
    show_default=True,
    type=click.Choice(["BTC", "ETH"], case_sensitive=False),
)
@click.option(
    "--som-rate",
    type=float,
    default=None,
    help="Short-option minimum per short option, fraction of spot [params/margin.json].",
)
@click.option(
    "--write",
    is_flag=True,
    help="Also replace the capital-efficiency sections of README.md and "
    "docs/backtest-results.md with what this prints.",
)
def efficiency(
    data_dir: Path | None, assets: tuple[str, ...], som_rate: float | None, write: bool
) -> None:
    """Margin of the strategy suite: portfolio model vs sum of legs vs full collateral."""
    from offchain.backtest import BacktestConfig
    from offchain.data import load_backtest_series
    from offchain.report import (
        efficiency_doc_section,
        efficiency_points,
        efficiency_readme_section,
        efficiency_rows,
        write_efficiency_sections,
    )

    config = BacktestConfig()
    if som_rate is not None:
        config = replace(config, som_rate=som_rate)
    try:
        series = [load_backtest_series(a, data_dir) for a in assets]
        points = efficiency_points(series, config)
        rows = efficiency_rows(series, config)
    except InputError:
        raise
    except ValueError as err:
        raise InputError(data_dir or data_folder(), "", str(err)) from None
    doc = efficiency_doc_section(points, rows, config)
    click.echo(doc)
    if write:
        readme = efficiency_readme_section(rows, config)
        click.echo(readme)
        for path in write_efficiency_sections(doc, readme):
            click.echo(f"wrote {path}")


def _write(path: Path, text: str) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
    except OSError as err:
        raise InputError(path, "", err.strerror or "cannot be written") from None


def main() -> None:
    """Entry point of ``python -m offchain``."""
    cli(prog_name="python -m offchain")
