"""Scenario grids: the two presets as tables, linear coefficients, vol rule, data round trip."""

import json
from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.fixed_point import WAD
from offchain.scenarios import (
    CME_SPAN_16,
    CRYPTO_35,
    PRESETS,
    Scenario,
    ScenarioGrid,
    VolShockRule,
)

F = Fraction


def _table(grid):
    return [(sc.move, sc.unit, sc.vol, sc.weight, sc.weight_rule) for sc in grid.scenarios]


def test_crypto_35_table():
    """docs/design.md §5: {0, +-1/4, +-1/2, +-3/4, +-1} PSR x vol up/none/down, 8 tails vol up."""
    moves = [F(0), F(1, 4), F(-1, 4), F(1, 2), F(-1, 2), F(3, 4), F(-3, 4), F(1), F(-1)]
    expected = [(m, "psr", v, F(1), "fixed") for m in moves for v in ("up", "none", "down")]
    tails = [F(-66, 100), F(-33, 100), F(1, 2), F(1), F(2), F(3), F(4), F(5)]
    expected += [(t, "price", "up", F(7, 10), "psr_over_move") for t in tails]
    assert _table(CRYPTO_35) == expected
    assert len(CRYPTO_35) == 35


def test_cme_span_16_table():
    """CME SPAN's order: 0, +1/3, -1/3, +2/3, -2/3, +1, -1 with vol up/down; +-2 at 35%."""
    moves = [F(0), F(1, 3), F(-1, 3), F(2, 3), F(-2, 3), F(1), F(-1)]
    expected = [(m, "psr", v, F(1), "fixed") for m in moves for v in ("up", "down")]
    expected += [
        (F(2), "psr", "none", F(35, 100), "fixed"),
        (F(-2), "psr", "none", F(7, 20), "fixed"),
    ]
    assert _table(CME_SPAN_16) == expected
    assert len(CME_SPAN_16) == 16
    assert set(PRESETS) == {"crypto-35", "cme-span-16"}


def test_linear_coefficients():
    c = CME_SPAN_16.linear_coefficients()
    assert c[2] == F(1, 3) and c[5] == F(-1, 3) and c[-2:] == (F(7, 10), F(-7, 10))
    c = CRYPTO_35.linear_coefficients()
    assert c[:3] == (0, 0, 0) and c[21] == 1 and c[24] == -1
    # tails: sign(move) * k with k = 0.7 (like CME's 2 x 35%)
    assert c[27:] == (F(-7, 10),) * 2 + (F(7, 10),) * 6


def test_linear_coefficients_wad_round_away_from_zero():
    c = CME_SPAN_16.linear_coefficients_wad()
    assert c[2] == 333333333333333334 and c[5] == -333333333333333334
    assert c[6] == 666666666666666667 and c[9] == -666666666666666667
    assert c[10] == WAD and c[-1] == -7 * 10**17
    for exact, wad in zip(CME_SPAN_16.linear_coefficients(), c, strict=True):
        assert abs(Fraction(wad, WAD)) >= abs(exact)
        assert abs(Fraction(wad, WAD) - exact) < Fraction(1, WAD)


@settings(max_examples=100, deadline=None)
@given(psr=st.floats(0.001, 0.5), grid=st.sampled_from([CRYPTO_35, CME_SPAN_16]))
def test_weighted_move_equals_coefficient_times_psr(psr, grid):
    """move * weight (what a future's array is) == c * PSR for every scenario."""
    weighted = grid.price_moves(psr) * grid.weights(psr)
    c = np.array([float(x) for x in grid.linear_coefficients()])
    np.testing.assert_allclose(weighted, c * psr, rtol=1e-14, atol=1e-17)


def test_tail_weights():
    w = CRYPTO_35.weights(0.16)
    np.testing.assert_allclose(w[27:], 0.7 * 0.16 / np.array([0.66, 0.33, 0.5, 1, 2, 3, 4, 5]))
    assert np.all(w[:27] == 1.0)
    assert CRYPTO_35.weights(np.array([0.1, 0.2])).shape == (2, 35)
    np.testing.assert_array_equal(CRYPTO_35.vol_codes()[:3], [1, 0, -1])


def test_vol_rule_formula():
    rule = VolShockRule(a=0.25, b=0.2, p=0.5, floor_vol=0.1)
    assert rule.shocked(0.6, 30, "up") == pytest.approx(0.75)
    assert rule.shocked(0.6, 30, "down") == pytest.approx(0.48)
    assert rule.shocked(0.6, 7.5, "up") == pytest.approx(0.9)  # (30/7.5)^0.5 = 2
    assert rule.shocked(0.6, 120, "down") == pytest.approx(0.54)
    assert rule.shocked(0.6, 30, "none") == 0.6
    assert rule.shocked(0.05, 3000, "up") == 0.1  # the floor
    # expiring: DTE floored at one day, shock stays finite; down never below zero
    assert rule.shocked(0.6, 0.0, "up") == pytest.approx(0.6 * (1 + 0.25 * 30**0.5))
    assert rule.shocked(0.6, 0.0, "down") == 0.0


def derive_vol_shock(sigma: np.ndarray, dte_days: np.ndarray, up: bool) -> np.ndarray:
    """Derive's (Lyra v2) portfolio-margin vol shock, the anchor of params/margin.json: PMRMLib
    ``_addVolShocks`` (derivexyz/v2-core) with the mainnet parameters of its
    scripts/config-mainnet.sol: volRangeUp 0.6, volRangeDown 0.3, shortTermPower 0.3 up to 30
    days, longTermPower 0.13 beyond, dteFloor 1 day."""
    dte = np.asarray(dte_days, dtype=np.float64)
    power = np.where(dte <= 30.0, 0.3, 0.13)
    mult = (30.0 / np.maximum(dte, 1.0)) ** power
    return sigma * (1.0 + 0.6 * mult) if up else sigma * np.maximum(0.0, 1.0 - 0.3 * mult)


def test_vol_shocks_at_least_derives_beyond_a_week():
    """The crypto grid's vol shocks are at least Derive's at every expiry from a week to two
    years and every vol from 0.3 to 1.5, up and down (at 30 days and sigma 0.6: 0.96 up)."""
    dte = np.linspace(7.0, 730.0, 2_000)
    for sigma in np.linspace(0.3, 1.5, 13):
        ours_up = CRYPTO_35.vol_rule.shocked(sigma, dte, "up")
        ours_down = CRYPTO_35.vol_rule.shocked(sigma, dte, "down")
        assert np.all(ours_up >= derive_vol_shock(sigma, dte, True) - 1e-12)
        assert np.all(ours_down <= derive_vol_shock(sigma, dte, False) + 1e-12)
    assert CRYPTO_35.vol_rule.shocked(0.6, 30, "up") == pytest.approx(0.96)
    # the rule before this parameter set was below Derive's beyond a week (0.75 at 30 days)
    assert VolShockRule().shocked(0.6, 30, "up") < derive_vol_shock(0.6, 30.0, True)


def test_a_long_power_applies_beyond_the_reference_expiry_only():
    rule = VolShockRule(a=0.6, b=0.3, p=0.3, p_long=0.13)
    assert rule.shocked(0.6, 10, "up") == pytest.approx(0.6 * (1 + 0.6 * 3**0.3))
    assert rule.shocked(0.6, 30, "up") == pytest.approx(0.96)
    assert rule.shocked(0.6, 365, "up") == pytest.approx(0.6 * (1 + 0.6 * (30 / 365) ** 0.13))
    with pytest.raises(ValueError, match="p_long"):
        VolShockRule(p_long=-1.0)


@settings(max_examples=100, deadline=None)
@given(sigma=st.floats(0.0, 3.0), d1=st.floats(0.0, 1000.0), d2=st.floats(0.0, 1000.0))
@pytest.mark.parametrize("rule", [VolShockRule(), CRYPTO_35.vol_rule])
def test_vol_shocks_shrink_with_time_to_expiry(rule, sigma, d1, d2):
    near, far = min(d1, d2), max(d1, d2)
    assert rule.shocked(sigma, near, "up") >= rule.shocked(sigma, far, "up")
    assert rule.shocked(sigma, near, "down") <= rule.shocked(sigma, far, "down")
    assert rule.shocked(sigma, far, "down") <= sigma <= rule.shocked(sigma, far, "up")


def test_dict_and_json_round_trip(tmp_path):
    for grid in (CRYPTO_35, CME_SPAN_16):
        assert ScenarioGrid.from_dict(grid.to_dict()) == grid
        path = tmp_path / f"{grid.name}.json"
        path.write_text(json.dumps(grid.to_dict()))
        assert ScenarioGrid.from_json(path) == grid


def test_new_grid_is_data_only():
    grid = ScenarioGrid.from_dict(
        {
            "name": "tiny",
            "vol_rule": {"a": 0.1, "b": 0.1, "p": 0},
            "scenarios": [
                {"move": "1/2"},
                {"move": -0.5, "vol": "down"},
                {"move": "-50%", "unit": "price", "weight": 0.3, "weight_rule": "psr_over_move"},
            ],
        }
    )
    assert len(grid) == 3 and grid.vol_rule.a == 0.1
    assert grid.linear_coefficients() == (F(1, 2), F(-1, 2), F(-3, 10))
    assert grid.scenarios[2].label == "-50%, vol none, w 3/10 PSR/|move|"
    assert grid.scenarios[0].label == "+1/2 PSR, vol none, w 1"


@pytest.mark.parametrize(
    "data,match",
    [
        ([], "grid must be a dict"),
        ({"name": "x", "scenarios": [], "extra": 1}, "unknown keys"),
        ({"name": "x", "scenarios": []}, "1..39 scenarios"),
        ({"name": "x", "scenarios": [{"move": 0}] * 40}, "1..39 scenarios"),
        ({"name": "", "scenarios": [{"move": 0}]}, "name must be a non-empty"),
        ({"name": "x", "scenarios": "all"}, "scenarios must be a list"),
        (
            {"name": "x", "scenarios": [{"vol": "up"}]},
            r"scenarios\[0\] must be a dict with a 'move'",
        ),
        ({"name": "x", "scenarios": [{"move": 0}, {"move": "abc"}]}, r"scenarios\[1\]: move must"),
        ({"name": "x", "scenarios": [{"move": 0, "vol": "sideways"}]}, r"scenarios\[0\]: vol must"),
        ({"name": "x", "scenarios": [{"move": 1, "unit": "bp"}]}, "unit must be one of"),
        ({"name": "x", "scenarios": [{"move": 1, "weight": -1}]}, "weight must be >= 0"),
        ({"name": "x", "scenarios": [{"move": 1, "colour": 1}]}, r"scenarios\[0\]: .*colour"),
        ({"name": "x", "scenarios": [{"move": 1, "weight_rule": "x"}]}, "weight_rule must be"),
        (
            {"name": "x", "scenarios": [{"move": 0, "weight_rule": "psr_over_move"}]},
            "needs a non-zero move",
        ),
        ({"name": "x", "scenarios": [{"move": "-100%", "unit": "price"}]}, "must be > -1"),
        ({"name": "x", "scenarios": [{"move": 0.5, "unit": "price"}]}, "not linear in the scan"),
        ({"name": "x", "scenarios": [{"move": 1}], "vol_rule": {"a": -1}}, "vol rule a must"),
        ({"name": "x", "scenarios": [{"move": 1}], "vol_rule": {"z": 1}}, "vol_rule: "),
        ({"name": "x", "scenarios": [{"move": float("nan")}]}, "move must be a finite"),
        ({"name": "x", "scenarios": [{"move": True}]}, "move must be a number"),
    ],
)
def test_from_dict_errors_name_the_field(data, match):
    with pytest.raises(ValueError, match=match):
        ScenarioGrid.from_dict(data)


def test_from_json_errors_name_the_file(tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text("{not json")
    with pytest.raises(ValueError, match="bad.json: invalid JSON"):
        ScenarioGrid.from_json(bad)
    bad.write_text(json.dumps({"name": "x", "scenarios": [{"move": 0, "vol": "?"}]}))
    with pytest.raises(ValueError, match=r"bad.json: scenarios\[0\]: vol"):
        ScenarioGrid.from_json(bad)


def test_vol_rule_bad_inputs():
    with pytest.raises(ValueError, match="direction must be one of"):
        VolShockRule().shocked(0.5, 30, "sideways")
    with pytest.raises(ValueError, match="ref_days and min_days must be > 0"):
        VolShockRule(min_days=0)
    with pytest.raises(ValueError, match="vol rule p must be a number"):
        VolShockRule(p="half")
    with pytest.raises(ValueError, match="must be a Scenario"):
        ScenarioGrid("x", ({"move": 0},))
    assert Scenario(move=0.35).move == F(7, 20)


def test_tilts_crypto_carries_two_and_cme_none():
    """crypto-35 tilts the unmoved vol-up scenario by +1 and the unmoved vol-down one by -1;
    CME-16 carries no tilt, so its arrays and golden examples are unchanged."""
    t = CRYPTO_35.tilt_coefficients_wad()
    assert [(k, v) for k, v in enumerate(t) if v] == [(0, WAD), (2, -WAD)]
    assert CRYPTO_35.scenarios[0].move == 0 and CRYPTO_35.scenarios[0].vol == "up"
    assert CRYPTO_35.scenarios[2].move == 0 and CRYPTO_35.scenarios[2].vol == "down"
    assert CME_SPAN_16.tilt_coefficients_wad() == [0] * 16
    assert "tilt" not in CME_SPAN_16.to_dict()["scenarios"][0]
    again = ScenarioGrid.from_dict(CRYPTO_35.to_dict())
    assert again.tilt_coefficients_wad() == t
    assert CRYPTO_35.scenarios[0].label.endswith("tilt +1")


def test_bad_tilts_are_refused():
    with pytest.raises(ValueError, match=r"tilt must be in \[-1, 1\]"):
        Scenario(move=0, tilt="3/2")
    with pytest.raises(ValueError, match="tilted scenario needs weight 1"):
        Scenario(move=0, weight=2, tilt=1)
    with pytest.raises(ValueError, match="at most 2 scenarios"):
        ScenarioGrid("x", tuple(Scenario(move=0, tilt=1) for _ in range(3)))
