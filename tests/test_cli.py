"""Command line: every subcommand on the example files; bad files give one line and exit 2."""

from __future__ import annotations

import csv
import io
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from offchain.backtest import STRATEGIES
from offchain.cli import cli, load_market
from offchain.paths import data_dir
from offchain.scenarios import CRYPTO_35

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
MARKET = EXAMPLES / "market.json"
PORTFOLIO = EXAMPLES / "portfolio.json"


@pytest.fixture()
def runner() -> CliRunner:
    return CliRunner(mix_stderr=False)


def _one_line_error(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output + result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert "Traceback" not in result.stderr
    assert lines[0].startswith("error: ")
    for part in parts:
        assert part in lines[0], lines[0]


def test_margin_example(runner):
    result = runner.invoke(cli, ["margin", str(PORTFOLIO)])
    assert result.exit_code == 0, result.stderr
    assert "<- worst" in result.output
    assert "MM " in result.output and "IM " in result.output


def test_margin_example_json_is_consistent(runner):
    result = runner.invoke(cli, ["margin", str(PORTFOLIO), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.output)
    assert [u["name"] for u in out["underlyings"]] == ["ETH", "BTC"]
    total = 0.0
    for u in out["underlyings"]:
        assert len(u["losses"]) == len(CRYPTO_35)
        assert u["worst_scenario"] == int(np.argmax(u["losses"]))
        assert u["scan"] == pytest.approx(max(0.0, max(u["losses"])))
        assert u["risk"] == pytest.approx(max(u["scan"], u["som"]))
        total += u["risk"]
    assert out["maintenance_margin"] == pytest.approx(total)
    assert out["initial_margin"] == pytest.approx(1.25 * total)
    assert out["health"] == pytest.approx(out["equity"] - total)


def _calendar_files(tmp_path, **btc):
    market = {
        "valuation_time": "2026-01-05T08:00:00Z",
        "underlyings": [{"name": "BTC", "spot": 92000.0, "psr": 0.08, "atm_vol": 0.45, **btc}],
        "instruments": [
            {"id": "NEAR", "underlying": "BTC", "kind": "future", "expiry": "2026-03-27"},
            {"id": "FAR", "underlying": "BTC", "kind": "future", "expiry": "2026-06-26"},
        ],
    }
    (tmp_path / "market.json").write_text(json.dumps(market))
    book = {
        "market": "market.json",
        "positions": [{"instrument": "NEAR", "size": 1}, {"instrument": "FAR", "size": -1}],
    }
    (tmp_path / "calendar.json").write_text(json.dumps(book))
    return tmp_path / "calendar.json"


def test_quarter_calendar_carries_one_percent_of_spot(runner, tmp_path):
    """A +1 / -1 BTC futures calendar one quarter (91 days) apart: `margin` charges at least a
    1% move of one forward against the other (920 USD at 92,000), from the default basis;
    with basis 0 only the forward gap times the PSR is left."""
    result = runner.invoke(cli, ["margin", str(_calendar_files(tmp_path)), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.output)
    assert out["maintenance_margin"] >= 0.01 * 92000
    assert out["underlyings"][0]["worst_label"].endswith("tilt +1")
    flat = _calendar_files(tmp_path, basis=0)
    result = runner.invoke(cli, ["margin", str(flat), "--json"])
    assert json.loads(result.output)["maintenance_margin"] < 0.01 * 92000


def test_margin_refuses_a_basis_or_roll_out_of_bounds(runner, tmp_path):
    for key, value, hint in (("basis", 0.6, "basis"), ("roll", 14 * 86_400 + 1, "roll")):
        result = runner.invoke(cli, ["margin", str(_calendar_files(tmp_path, **{key: value}))])
        _one_line_error(result, "market.json", f"underlyings[0].{hint}")


def test_margin_market_override(runner, tmp_path):
    doc = json.loads(PORTFOLIO.read_text())
    doc["market"] = "does-not-exist.json"
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    result = runner.invoke(cli, ["margin", str(path), "--market", str(MARKET), "--json"])
    assert result.exit_code == 0, result.stderr


def test_arrays_prints_csv(runner):
    result = runner.invoke(cli, ["arrays", str(MARKET)])
    assert result.exit_code == 0, result.stderr
    rows = list(csv.reader(io.StringIO(result.output)))
    market = json.loads(MARKET.read_text())
    assert len(rows) == 1 + len(market["instruments"])
    assert rows[0][:3] == ["id", "underlying", "mark"] and len(rows[0]) == 3 + len(CRYPTO_35)
    fut = rows[1]  # ETH future: exact linear array F * move * weight
    f, psr = float(fut[2]), market["underlyings"][0]["psr"]
    assert float(fut[3 + 24]) == pytest.approx(-f * psr, rel=1e-6)  # -1 PSR, vol up


def test_arrays_writes_json_with_encoding(runner, tmp_path):
    out = tmp_path / "sub" / "arrays.json"
    result = runner.invoke(cli, ["arrays", str(MARKET), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    doc = json.loads(out.read_text())
    assert len(doc["scenarios"]) == len(CRYPTO_35)
    for ins in doc["instruments"]:
        decoded = np.array(ins["entries"], dtype=float) * 2.0 ** ins["exponent"] / 1e18
        # Decoded never overstates a long unit's gain (docs/fixed-point.md §3).
        assert np.all(decoded <= np.array(ins["risk_array"]) + 1e-9)


def test_arrays_writes_csv_file(runner, tmp_path):
    out = tmp_path / "arrays.csv"
    result = runner.invoke(cli, ["arrays", str(MARKET), "--out", str(out)])
    assert result.exit_code == 0, result.stderr
    assert out.read_text().startswith("id,underlying,mark,s0,")


def test_efficiency(runner):
    result = runner.invoke(cli, ["efficiency", "--asset", "ETH"])
    assert result.exit_code == 0, result.stderr
    assert "| ETH | iron condor |" in result.output
    assert "(b)/(a)" in result.output


def test_backtest_writes_report_and_chart(runner, tmp_path):
    result = runner.invoke(
        cli, ["backtest", "--out", str(tmp_path), "--asset", "BTC", "--confidence", "0.99"]
    )
    assert result.exit_code == 0, result.stderr
    report = (tmp_path / "report.md").read_text()
    assert "| BTC | long future | in-sample |" in report
    assert "| BTC | long future | out-of-sample | 2022-01-01 .. 2025-02-28 |" in report
    assert (tmp_path / "btc_990.png").stat().st_size > 10_000
    rows = list(csv.DictReader((tmp_path / "backtest.csv").open()))
    assert len(rows) == 2 * len(STRATEGIES)
    assert {r["window"] for r in rows} == {"in-sample", "out-of-sample"}


def test_data_options_name_the_repo_data_folder(runner):
    for command in ("backtest", "efficiency"):
        result = runner.invoke(cli, [command, "--help"])
        assert result.exit_code == 0, result.stderr
        text = " ".join(result.output.split())  # click wraps the help text
        assert "btc_usd_daily_coingecko.csv and eth_usd_daily.csv [data/]" in text


def test_module_entry_point():
    proc = subprocess.run(
        [sys.executable, "-m", "offchain", "margin", str(PORTFOLIO), "--json"],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["maintenance_margin"] > 0


def test_module_entry_point_bad_file_has_no_traceback(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    proc = subprocess.run(
        [sys.executable, "-m", "offchain", "arrays", str(bad)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        check=False,
    )
    assert proc.returncode == 2
    assert (
        proc.stderr.strip() == f"error: {bad}: line 1: invalid JSON (Expecting property name "
        "enclosed in double quotes)"
    )


def _market_with(tmp_path: Path, edit) -> Path:
    doc = json.loads(MARKET.read_text())
    edit(doc)
    path = tmp_path / "market.json"
    path.write_text(json.dumps(doc))
    return path


BAD_MARKETS = [
    (lambda d: d.pop("valuation_time"), "valuation_time: missing"),
    (lambda d: d.update(valuation_time="yesterday"), "valuation_time: must be an ISO"),
    (lambda d: d.update(grid="span-99"), "grid: unknown preset"),
    (lambda d: d.update(grid={"name": "g", "scenarios": [{"move": "x"}]}), "grid: scenarios[0]"),
    (lambda d: d["underlyings"][1].update(spot=-5), "underlyings[1].spot: must be"),
    (lambda d: d["underlyings"][0].update(psr=1.6), "underlyings[0].psr: must be a fraction"),
    (lambda d: d["underlyings"][0].pop("atm_vol"), "underlyings[0].atm_vol: missing"),
    (lambda d: d["underlyings"].append(d["underlyings"][0]), "underlyings[2].name: duplicate"),
    (lambda d: d["instruments"][2].update(strike="3400"), "instruments[2].strike: must be"),
    (lambda d: d["instruments"][3].update(kind="swap"), "instruments[3].kind: must be future"),
    (lambda d: d["instruments"][0].update(underlying="SOL"), "instruments[0].underlying: unknown"),
    (lambda d: d["instruments"][1].update(expiry="2025-01-01"), "instruments[1].expiry: must be"),
    (lambda d: d["instruments"][1].update(iv=0), "instruments[1].iv: must be"),
    (lambda d: d.update(instruments=[]), "instruments: must be a non-empty list"),
    (
        lambda d: d.update(im_factr=1.5),
        "top level: unknown key 'im_factr' (did you mean 'im_factor'",
    ),
    (lambda d: d["underlyings"][0].update(skw=0.1), "underlyings[0]: unknown key 'skw'"),
    (lambda d: d["instruments"][4].update(ivv=0.5), "instruments[4]: unknown key 'ivv'"),
    (
        lambda d: d["collateral"][0].update(underlying="ETHH"),
        "collateral[0].underlying: unknown underlying 'ETHH' (did you mean 'ETH'",
    ),
    (lambda d: d["collateral"][0].update(haircut=1), "collateral[0].haircut: must be a fraction"),
    (lambda d: d["collateral"][1].update(price=0), "collateral[1].price: must be"),
    (lambda d: d["collateral"][0].update(haircat=0.1), "(did you mean 'haircut'"),
    (lambda d: d["collateral"].append(d["collateral"][0]), "collateral[2].symbol: duplicate"),
]


@pytest.mark.parametrize(("edit", "message"), BAD_MARKETS, ids=[m for _, m in BAD_MARKETS])
def test_bad_market_file_one_line_exit_2(runner, tmp_path, edit, message):
    path = _market_with(tmp_path, edit)
    _one_line_error(runner.invoke(cli, ["arrays", str(path)]), str(path), message)


POS = [{"instrument": "ETH-04FEB26-F", "size": 1}]


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        ({"market": "m.json"}, "positions: missing"),
        ({"market": "m.json", "positions": [{"instrument": "X", "size": 1}]}, "positions[0]"),
        ({"market": "m.json", "positions": [{"size": 1}]}, "positions[0].instrument: missing"),
        (
            {"market": "m.json", "positions": [{"instrument": "ETH-04FEB26-F", "size": None}]},
            "positions[0].size: must be a number",
        ),
        ({"market": "m.json", "cash": "lots", "positions": []}, "positions: must be a non-empty"),
        ([1, 2], "top level: must be a JSON object"),
        (
            {"market": "m.json", "positons": []},
            "unknown key 'positons' (did you mean 'positions'?)",
        ),
        (
            {"market": "m.json", "positions": POS, "collateral": {"WETh": 1}},
            "collateral: unknown collateral 'WETh' (did you mean 'WETH'?)",
        ),
        (
            {"market": "m.json", "positions": POS, "collateral": {"WETH": -1}},
            "collateral: WETH: must be a number >= 0",
        ),
        (
            {"market": "m.json", "positions": POS, "collateral": [["WETH", 1]]},
            "collateral: must be an object of amounts",
        ),
    ],
)
def test_bad_portfolio_file_one_line_exit_2(runner, tmp_path, doc, message):
    (tmp_path / "m.json").write_text(MARKET.read_text())
    path = tmp_path / "p.json"
    path.write_text(json.dumps(doc))
    _one_line_error(runner.invoke(cli, ["margin", str(path)]), str(path), message)


def test_portfolio_pointing_to_a_missing_market(runner, tmp_path):
    path = tmp_path / "p.json"
    path.write_text(json.dumps({"market": "gone.json", "positions": []}))
    _one_line_error(runner.invoke(cli, ["margin", str(path)]), "gone.json")


def test_missing_file(runner, tmp_path):
    _one_line_error(runner.invoke(cli, ["arrays", str(tmp_path / "x.json")]), "x.json")


def test_backtest_bad_price_file(runner, tmp_path):
    lines = (data_dir() / "btc_usd_daily_coingecko.csv").read_text().splitlines()
    lines[5] = lines[5].replace(lines[5].split(",")[1], "n/a")
    (tmp_path / "btc_usd_daily_coingecko.csv").write_text("\n".join(lines) + "\n")
    result = runner.invoke(
        cli, ["backtest", "--data-dir", str(tmp_path), "--asset", "BTC", "--out", str(tmp_path)]
    )
    _one_line_error(result, "btc_usd_daily_coingecko.csv", "row 6, field 'close'")


def test_load_market_uses_explicit_iv_over_the_smile():
    m = load_market(MARKET)
    j = m.ids.index("ETH-04FEB26-P3100")
    assert m.state.vols[j] == pytest.approx(0.52)
    k = m.ids.index("ETH-04FEB26-C3400")
    # Smile: 0.50 - 0.10 * ln(3400 / 3139.06)
    assert m.state.vols[k] == pytest.approx(0.50 - 0.10 * np.log(3400 / 3139.06))


def test_model_error_on_a_valid_looking_market_is_one_line(runner, tmp_path):
    """PSR 100% moves the -1 PSR scenario to a zero price: the core refuses, the CLI names the
    file in one line."""
    path = _market_with(tmp_path, lambda d: d["underlyings"][0].update(psr=1.0))
    _one_line_error(runner.invoke(cli, ["arrays", str(path)]), str(path), "price to zero")


def test_backtest_too_short_price_file(runner, tmp_path):
    rows = [f"2020-01-{d:02d},100.0" for d in range(1, 21)]
    (tmp_path / "eth_usd_daily.csv").write_text("date,close\n" + "\n".join(rows) + "\n")
    result = runner.invoke(
        cli, ["backtest", "--data-dir", str(tmp_path), "--asset", "ETH", "--out", str(tmp_path)]
    )
    _one_line_error(result, "eth_usd_daily.csv", "warmup_days")


def _what_if(runner, tmp_path, positions, collateral, cash):
    path = tmp_path / "p.json"
    doc = {"market": str(MARKET), "cash": cash, "positions": positions, "collateral": collateral}
    path.write_text(json.dumps(doc))
    result = runner.invoke(cli, ["margin", str(path), "--json"])
    assert result.exit_code == 0, result.stderr
    return json.loads(result.output)


@pytest.mark.parametrize(
    ("option", "covered"), [("ETH-04FEB26-P2800", False), ("ETH-04FEB26-C3100", True)]
)
def test_margin_json_with_collateral_keeps_its_fields(runner, tmp_path, option, covered):
    """30 WETH (the example's spot, haircut 0.2) against the same equity in cash: under short
    ETH puts less health (wrong-way), under short ETH calls more (covered)."""
    positions = [{"instrument": option, "size": -30}]
    weth = _what_if(runner, tmp_path, positions, {"WETH": 30}, 0)
    value = 30 * 3139.06 * 0.8
    assert weth["collateral"] == [
        {
            "symbol": "WETH",
            "underlying": "ETH",
            "amount": 30.0,
            "price": 3139.06,
            "haircut": 0.2,
            "value": pytest.approx(value),
        }
    ]
    usdc = _what_if(runner, tmp_path, positions, {}, value)
    assert weth["equity"] == pytest.approx(usdc["equity"])
    for r in (weth, usdc):
        assert r["health"] == pytest.approx(r["equity"] - r["maintenance_margin"])
    if covered:
        assert weth["health"] > usdc["health"]
    else:
        assert weth["health"] < usdc["health"]


def test_collateral_without_positions_on_its_underlying_adds_no_margin(runner, tmp_path):
    positions = [{"instrument": "BTC-04FEB26-P85000", "size": -1}]
    weth = _what_if(runner, tmp_path, positions, {"WETH": 30}, 0)
    none = _what_if(runner, tmp_path, positions, {}, 0)
    assert weth["maintenance_margin"] == none["maintenance_margin"]
    assert weth["equity"] == pytest.approx(none["equity"] + 30 * 3139.06 * 0.8)


def test_the_weth_example_runs(runner):
    result = runner.invoke(cli, ["margin", str(EXAMPLES / "portfolio_weth.json"), "--json"])
    assert result.exit_code == 0, result.stderr
    out = json.loads(result.output)
    assert {"maintenance_margin", "equity", "health"} <= set(out)
    assert out["collateral"][0]["symbol"] == "WETH"
