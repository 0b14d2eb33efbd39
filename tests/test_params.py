"""The one margin parameter set (params/margin.json): read strictly, and read by everything that
publishes a margin number (deploy configs, the what-if CLI's example market, the backtest, the
capital-efficiency table in the README and the docs, the crash replay)."""

from __future__ import annotations

import json
import re
from decimal import Decimal
from pathlib import Path

import pytest

from offchain.data import InputError
from offchain.params import PARAMS_FILE, load_params, margin_params, parse_params

REPO = Path(__file__).resolve().parents[1]
SHIPPED = json.loads(PARAMS_FILE.read_text())
PUBLISHED_KEYS = ("som_rate", "psr_min", "psr_max", "im_factor", "basis", "roll")


def edited(edit) -> dict:
    data = json.loads(json.dumps(SHIPPED))
    edit(data)
    return data


def refused(edit, *parts: str) -> None:
    with pytest.raises(InputError) as err:
        parse_params(edited(edit), "params/margin.json")
    message = str(err.value)
    assert "\n" not in message, message
    for part in parts:
        assert part in message, message


def test_the_shipped_set_loads_with_a_source_for_every_value():
    p = load_params()
    assert p == margin_params()
    assert (p.som_rate, p.psr_min, p.psr_max) == (Decimal("0.02"), Decimal("0.04"), Decimal("0.5"))
    assert p.roll == 4 * 86_400 and p.basis == Decimal("0.05")
    assert set(p.sources) == {
        "som_rate",
        "psr_min",
        "psr_max",
        "basis",
        "roll",
        "im_factor",
        *(f"vol_rule.{k}" for k in p.vol_rule),
        *(f"funding.{k}" for k in ("cap_per_hour", "interest", "dampener", "im_reserve_hours")),
    }
    assert all(len(text) > 40 for text in p.sources.values())


@pytest.mark.parametrize(
    "edit,parts",
    [
        (lambda d: d.update(som_rat=d.pop("som_rate")), ("unknown key 'som_rat'", "'som_rate'")),
        (
            lambda d: d["vol_rule"].update(p_lng=d["vol_rule"].pop("p_long")),
            ("vol_rule: unknown key 'p_lng'", "'p_long'"),
        ),
        (lambda d: d["basis"].update(sorce="x"), ("basis: unknown key 'sorce'", "'source'")),
        (lambda d: d["som_rate"].pop("source"), ("som_rate.source: missing",)),
        (lambda d: d.pop("psr_max"), ("psr_max: missing",)),
        (lambda d: d["som_rate"].update(value=1.5), ("som_rate: value must be in [0, 1]",)),
        (lambda d: d["basis"].update(value=0.6), ("basis: value must be in [0, 0.5]",)),
        (lambda d: d["psr_min"].update(value=0.6), ("psr_min: must be <= psr_max",)),
        (lambda d: d["roll"].update(value=1.5), ("roll: value must be whole seconds",)),
        (lambda d: d["vol_rule"]["a"].update(value=-1), ("vol_rule.a: value must be >= 0",)),
        (lambda d: d["im_factor"].update(value="x"), ("im_factor.value: must be a number",)),
        (lambda d: d.pop("funding"), ("funding: missing",)),
        (
            lambda d: d["funding"].update(cap=d["funding"].pop("cap_per_hour")),
            ("funding: unknown key 'cap'", "cap_per_hour"),
        ),
        (
            lambda d: d["funding"]["cap_per_hour"].update(value=0.05),
            ("funding.cap_per_hour: value must be in [0.000001, ",),
        ),
        (
            lambda d: d["funding"]["cap_per_hour"].update(value=0),
            ("funding.cap_per_hour: value must be in [0.000001, ",),
        ),
        (
            lambda d: d["funding"]["cap_per_hour"].update(value=0.0000015),
            ("cap_per_hour: value must be a multiple of 0.000001",),
        ),
        (
            lambda d: d["funding"]["dampener"].update(value=-0.0005),
            ("funding.dampener: value must be in [0, 0.01]",),
        ),
        (
            lambda d: d["funding"]["im_reserve_hours"].update(value=9),
            ("funding.im_reserve_hours: value must be in [0, 8]",),
        ),
        (
            lambda d: d["funding"]["im_reserve_hours"].update(value=2.5),
            ("im_reserve_hours: value must be whole hours",),
        ),
        (lambda d: d["funding"]["interest"].pop("source"), ("funding.interest.source: missing",)),
    ],
)
def test_a_bad_parameter_file_is_one_line_naming_the_field(edit, parts):
    refused(edit, *parts)


def _json_literals(text: str, key: str) -> list[Decimal]:
    return [Decimal(v) for v in re.findall(rf'"{key}"\s*:\s*"?([0-9.eE+-]+)', text)]


def test_every_published_parameter_reads_the_one_source():
    """No deploy config, example, README or doc carries a som_rate / psr / im_factor / basis /
    roll literal that differs from params/margin.json, and the code that publishes numbers
    (backtest, efficiency, calibration, crash replay, the CLI's market default, the crypto grid's
    vol shocks) takes its values from it."""
    from offchain import crash_replay
    from offchain.backtest import BacktestConfig
    from offchain.calibration import CalibrationParams
    from offchain.cli import load_market
    from offchain.scenarios import CRYPTO_35

    p = margin_params()
    files = [
        *(REPO / "deploy").glob("*.json"),
        *(REPO / "examples").glob("*.json"),
        REPO / "README.md",
        *(REPO / "docs").glob("*.md"),
    ]
    for path in files:
        text = path.read_text()
        for key in PUBLISHED_KEYS:
            for value in _json_literals(text, key):
                assert value == p.value(key), f"{path.name}: {key} {value} != {p.value(key)}"
    config = BacktestConfig()
    assert config.som_rate == float(p.som_rate) and config.im_factor == float(p.im_factor)
    cal = CalibrationParams()
    assert (cal.psr_floor, cal.psr_cap) == (float(p.psr_min), float(p.psr_max))
    assert crash_replay.SOM_RATE == float(p.som_rate)
    assert CRYPTO_35.vol_rule.__dict__ == {**CRYPTO_35.vol_rule.__dict__, **p.vol_rule}
    market = load_market(REPO / "examples" / "market.json")
    assert list(market.som_rate) == [float(p.som_rate)] * len(market.names)
    assert market.im_factor == float(p.im_factor)


def test_readme_efficiency_numbers_are_the_ones_make_efficiency_prints():
    """README.md's and docs/backtest-results.md's capital-efficiency sections are exactly what
    ``make efficiency`` (``python -m offchain efficiency --write``) writes from the parameter set:
    no number in them is copied by hand."""
    from bench.doc import _section
    from offchain.backtest import BacktestConfig
    from offchain.data import load_backtest_series
    from offchain.report import (
        EFFICIENCY_TITLE,
        efficiency_doc_section,
        efficiency_points,
        efficiency_readme_section,
        efficiency_rows,
    )

    config = BacktestConfig()
    series = [load_backtest_series(a) for a in ("BTC", "ETH")]
    rows = efficiency_rows(series, config)
    expected = {
        REPO / "README.md": efficiency_readme_section(rows, config),
        REPO / "docs" / "backtest-results.md": efficiency_doc_section(
            efficiency_points(series, config), rows, config
        ),
    }
    for path, body in expected.items():
        found = _section(EFFICIENCY_TITLE).search(path.read_text())
        assert found is not None, path
        assert found.group(0).strip() == f"## {EFFICIENCY_TITLE}\n\n{body.strip()}", path
    assert f"short-option minimum {config.som_rate:.0%} of spot" in expected[REPO / "README.md"]


def test_the_basis_stress_table_is_the_one_make_backtest_writes():
    """docs/backtest-results.md's basis stress section is what ``make backtest`` writes from the
    parameter set's basis at the capital-efficiency market state."""
    from bench.doc import _section
    from offchain.backtest import BacktestConfig
    from offchain.data import load_backtest_series
    from offchain.report import BASIS_TITLE, basis_doc_section, efficiency_points

    points = efficiency_points([load_backtest_series(a) for a in ("BTC", "ETH")], BacktestConfig())
    body = basis_doc_section(points, float(margin_params().basis))
    found = _section(BASIS_TITLE).search((REPO / "docs" / "backtest-results.md").read_text())
    assert found is not None
    assert found.group(0).strip() == f"## {BASIS_TITLE}\n\n{body.strip()}"
