"""Calibration: golden EWMA and Kupiec rows, EWMA properties, PSR behaviour, data loading."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from offchain.backtest import kupiec_lr, kupiec_pvalue
from offchain.calibration import (
    CalibrationParams,
    StudentT,
    calibrate,
    ewma_sigma,
    ewma_update,
    fit_student_t,
    log_returns,
    psr_from_sigma,
    psr_series,
)
from offchain.data import InputError, load_asset, load_backtest_series, load_prices

GOLDEN_DIR = Path(__file__).resolve().parent / "golden"


def _golden_rows() -> list[dict[str, str]]:
    path = GOLDEN_DIR / "backtest.csv"
    lines = [ln for ln in path.read_text().splitlines() if ln and not ln.startswith("#")]
    return list(csv.DictReader(lines))


GOLDEN = _golden_rows()
KUPIEC_ROWS = [r for r in GOLDEN if r["test"] == "kupiec_lr"]
EWMA_ROWS = [r for r in GOLDEN if r["test"] == "ewma_sigma"]


def test_golden_file_has_both_kinds_of_rows():
    assert len(KUPIEC_ROWS) == 5
    assert len(EWMA_ROWS) == 2
    assert len(GOLDEN) == len(KUPIEC_ROWS) + len(EWMA_ROWS)


@pytest.mark.parametrize("row", KUPIEC_ROWS, ids=lambda r: f"p{r['p']}-T{r['T']}-N{r['N']}")
def test_kupiec_lr_golden(row):
    """Kupiec (1995) POF statistic, values in tests/golden/backtest.csv (4 decimals)."""
    lr = kupiec_lr(float(row["p"]), int(row["T"]), int(row["N"]))
    assert lr == pytest.approx(float(row["expected"]), abs=1e-4)


@pytest.mark.parametrize("row", EWMA_ROWS, ids=lambda r: f"lam{r['lambda']}")
def test_ewma_update_golden(row):
    """RiskMetrics step; the 0.90 row is Hull's worked example (sigma 1%, return 2%)."""
    lam, prev, ret = float(row["lambda"]), float(row["prev_sigma"]), float(row["ret"])
    assert ewma_update(prev, ret, lam) == pytest.approx(float(row["expected"]), abs=1e-7)
    # The vectorised filter gives the same number from the same state.
    assert ewma_sigma(np.array([ret]), lam, sigma0=prev)[1] == pytest.approx(
        float(row["expected"]), abs=1e-7
    )


def test_kupiec_pvalue_at_critical_value():
    assert kupiec_pvalue(3.841) == pytest.approx(0.05, abs=1e-4)
    assert kupiec_pvalue(0.0) == 1.0


def test_kupiec_is_zero_when_rate_matches():
    assert kupiec_lr(0.01, 1000, 10) == pytest.approx(0.0, abs=1e-12)
    assert kupiec_lr(0.01, 250, 2) < kupiec_lr(0.01, 250, 0)


@pytest.mark.parametrize(
    "args", [(0.0, 250, 1), (1.0, 250, 1), (0.01, 0, 0), (0.01, 250, -1), (0.01, 250, 251)]
)
def test_kupiec_rejects_bad_inputs(args):
    with pytest.raises(ValueError):
        kupiec_lr(*args)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=1, max_size=60),
    st.floats(0.5, 0.99),
    st.floats(1e-4, 0.2),
)
def test_ewma_filter_equals_recursion(rets, lam, sigma0):
    """The linear-filter implementation equals the one-step recursion applied in a loop."""
    out = ewma_sigma(np.array(rets), lam, sigma0)
    s = sigma0
    assert out[0] == pytest.approx(sigma0)
    for k, r in enumerate(rets):
        s = ewma_update(s, r, lam)
        assert out[k + 1] == pytest.approx(s, rel=1e-9, abs=1e-15)


@settings(max_examples=50, deadline=None)
@given(
    st.lists(st.floats(-0.5, 0.5, allow_nan=False), min_size=1, max_size=60),
    st.floats(0.5, 0.99),
    st.floats(1e-4, 0.2),
)
def test_ewma_variance_is_a_convex_combination(rets, lam, sigma0):
    """Each variance lies between the previous variance and the last squared return."""
    out = ewma_sigma(np.array(rets), lam, sigma0)
    prev, new, r2 = out[:-1] ** 2, out[1:] ** 2, np.array(rets) ** 2
    lo, hi = np.minimum(prev, r2), np.maximum(prev, r2)
    assert np.all(new >= lo * (1 - 1e-12) - 1e-18)
    assert np.all(new <= hi * (1 + 1e-12) + 1e-18)


def test_ewma_constant_returns_converge_to_their_size():
    out = ewma_sigma(np.full(400, 0.03), 0.94, sigma0=0.10)
    assert out[-1] == pytest.approx(0.03, rel=1e-6)
    assert np.all(np.diff(out) <= 0)


def test_ewma_rejects_bad_lambda():
    with pytest.raises(ValueError, match="lam"):
        ewma_sigma(np.array([0.01]), 1.0)
    with pytest.raises(ValueError, match="lam"):
        ewma_update(0.01, 0.01, 0.0)


def test_fit_student_t_recovers_fat_tails():
    rng = np.random.default_rng(7)
    z = rng.standard_t(4.0, size=20_000) * 0.7
    fit = fit_student_t(z)
    assert 3.5 < fit.dof < 4.6
    assert fit.scale == pytest.approx(0.7, rel=0.05)


def test_fit_student_t_clips_dof_for_normal_data():
    z = np.random.default_rng(3).standard_normal(5_000)
    fit = fit_student_t(z, max_dof=30.0)
    assert fit.dof == 30.0
    assert fit.scale == pytest.approx(np.sqrt(28 / 30), rel=0.05)


def test_psr_worked_number():
    params = CalibrationParams(psr_floor=0.0, psr_cap=1.0)
    assert psr_from_sigma(0.04, StudentT(4.0, 0.72), params) == pytest.approx(0.1079, abs=1e-4)


@pytest.mark.parametrize("asset", ["BTC", "ETH"])
def test_psr_monotone_in_confidence(asset):
    series = load_asset(asset)
    psrs = [
        psr_series(series.close[-800:], CalibrationParams(confidence=c)).psr[-200:]
        for c in (0.95, 0.975, 0.99, 0.995, 0.999)
    ]
    for lower, higher in zip(psrs, psrs[1:], strict=False):
        assert np.all(higher >= lower)
    assert np.all(psrs[-1] > psrs[0])  # strictly, where floor and cap do not bind


def test_psr_respects_floor_and_cap_and_scales_with_horizon():
    dist = StudentT(4.0, 0.7)
    base = CalibrationParams(psr_floor=0.05, psr_cap=0.30)
    sig = np.array([0.001, 0.03, 0.5])
    psr = psr_from_sigma(sig, dist, base)
    assert psr[0] == 0.05 and psr[2] == 0.30
    wide = CalibrationParams(psr_floor=0.0, psr_cap=10.0, horizon_days=4)
    one = CalibrationParams(psr_floor=0.0, psr_cap=10.0)
    assert psr_from_sigma(0.03, dist, wide) == pytest.approx(2 * psr_from_sigma(0.03, dist, one))


def test_psr_series_has_no_look_ahead():
    """Changing prices after day t leaves every calibration of days <= t unchanged."""
    close = load_asset("BTC").close[:700]
    params = CalibrationParams(refit_every_days=20)
    base = psr_series(close, params)
    bumped = close.copy()
    bumped[600:] *= np.exp(np.linspace(0, 1.5, 100))
    other = psr_series(bumped, params)
    np.testing.assert_array_equal(base.psr[:600], other.psr[:600])
    assert not np.allclose(base.psr[600:], other.psr[600:])
    assert np.isnan(base.psr[: params.warmup_days]).all()
    assert base.first_valid == params.warmup_days


def test_calibrate_real_data_is_plausible():
    btc = load_asset("BTC").window(end="2021-08-24")
    cal = calibrate("BTC", btc.close, btc.dates)
    assert cal.as_of == "2021-08-24"
    assert 0.01 < cal.sigma_daily < 0.10
    assert 2.5 <= cal.dof < 10
    assert 0.04 <= cal.psr <= 0.30


@pytest.mark.parametrize(
    "kwargs",
    [
        {"ewma_lambda": 1.0},
        {"confidence": 0.4},
        {"horizon_days": 0},
        {"psr_floor": 0.5, "psr_cap": 0.4},
        {"warmup_days": 10},
        {"min_dof": 2.0},
    ],
)
def test_params_validate(kwargs):
    with pytest.raises(ValueError):
        CalibrationParams(**kwargs)


def test_log_returns_rejects_bad_prices():
    with pytest.raises(ValueError, match="close"):
        log_returns(np.array([1.0, 0.0, 2.0]))
    with pytest.raises(ValueError, match="close"):
        log_returns(np.array([1.0]))


def test_load_repo_data():
    btc, eth = load_asset("BTC"), load_asset("ETH")
    assert (len(btc), str(btc.dates[0]), str(btc.dates[-1])) == (2530, "2014-09-17", "2021-08-24")
    assert (len(eth), str(eth.dates[0]), str(eth.dates[-1])) == (3804, "2015-08-07", "2026-01-05")
    assert btc.high is not None and eth.high is None
    long_btc = load_backtest_series("BTC")
    span = (len(long_btc), str(long_btc.dates[0]), str(long_btc.dates[-1]))
    assert span == (4324, "2013-04-28", "2025-03-01")
    assert long_btc.high is None
    assert load_backtest_series("ETH").close.tolist() == eth.close.tolist()
    assert np.all(btc.low <= btc.close) and np.all(btc.close <= btc.high)
    w = eth.window("2022-01-01", "2022-12-31")
    assert len(w) == 365 and str(w.dates[0]) == "2022-01-01"


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("date,close\n2020-01-01,1\n2020-01-02,abc\n", "row 3, field 'close'"),
        ("date,close\n2020-01-01,1\n2020-01-01,2\n", "row 3, field 'date'"),
        ("date,close\n2020-01-01,1\n01/02/2020,2\n", "row 3, field 'date'"),
        ("date,close\n2020-01-01,1\n2020-01-02,-5\n", "row 3, field 'close'"),
        ("date,close\n2020-01-01,1\n2020-01-02,\n", "row 3, field 'close'"),
        ("day,close\n2020-01-01,1\n", "header"),
        ("date,open,close\n2020-01-01,1,1\n", "header"),
        ("date,open,high,low,close\n2020-01-01,1,2,1,1\n2020-01-02,1,2,1.5,3\n", "row 3"),
    ],
)
def test_bad_price_file_names_file_row_and_field(tmp_path: Path, text, where):
    path = tmp_path / "prices.csv"
    path.write_text(text)
    with pytest.raises(InputError) as err:
        load_prices(path)
    assert str(err.value).startswith(f"{path}: {where}")
    assert "\n" not in str(err.value)


def test_missing_price_file(tmp_path: Path):
    with pytest.raises(InputError, match="nope.csv"):
        load_prices(tmp_path / "nope.csv")
