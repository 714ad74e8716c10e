"""margin_forecast on synthetic customers (lognormal noise σ = 0.1 on daily cost)."""

import math
import warnings

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from unitcost_platform.config import AlertsConfig, ForecastConfig
from unitcost_platform.transforms.forecast import (
    _days_to,
    _days_to_all,
    backtest,
    margin_forecast,
    project_cost_to_mrr,
    theil_sen,
)
from unitcost_platform_tests.transforms.synthetic_customers import SIGMA, day

ALERTS = AlertsConfig()
FORECAST = ForecastConfig()


def unit_rows(costs: dict[str, np.ndarray], mrr: dict[str, float]) -> pl.DataFrame:
    """unit_cost-like rows: cost-to-MRR from the 30-day run rate (30 x mean daily cost of the
    trailing 30 days, fewer at the start), as transforms/unit_cost.py computes it."""
    frames = []
    for customer, series in costs.items():
        frames.append(pl.DataFrame({
            "day": [day(i) for i in range(len(series))], "customer_id": customer, "customer_name": customer,
            "tier": "smb", "status": "active", "mrr": mrr[customer], "total_cost": series,
        }).with_columns(
            (30 * pl.col("total_cost").rolling_mean(30, min_samples=1) / pl.col("mrr")).alias("cost_to_mrr")
        ))  # fmt: skip
    return pl.concat(frames)


def growing(days: int, seed: int, growth: float = 0.01, start: float = 20.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return start * (1 + growth) ** np.arange(days) * rng.lognormal(0.0, SIGMA, days)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_a_customer_growing_1_percent_a_day_is_warned_a_week_before_p2(seed):
    series = growing(100, seed)
    run_rate_day59 = 30 * series[30:60].mean()
    mrr = run_rate_day59 / 0.18  # cost-to-MRR 18% on day 59, after 60 days of growth
    unit = unit_rows({"grower": series}, {"grower": mrr})
    out = margin_forecast(unit, [day(i) for i in range(21, 100)], ALERTS, FORECAST)
    now = out.filter(pl.col("day") == day(59)).row(0, named=True)
    assert now["cost_to_mrr"] == pytest.approx(0.18)
    expected = math.log(20 / 18) / math.log(1.01)  # 10.6 days
    assert abs(now["days_to_p2"] - expected) <= 2
    assert now["daily_growth"] == pytest.approx(0.01, abs=0.004)
    assert now["cost_to_mrr_14d_low"] <= now["cost_to_mrr_14d"] <= now["cost_to_mrr_14d_high"]
    p2_day = out.filter(pl.col("cost_to_mrr") > ALERTS.p2_cost_to_mrr)["day"].min()
    warned = out.filter(pl.col("is_forecast_alert") & (pl.col("day") < p2_day))
    assert warned.height == 1  # one alert per crossing
    assert (p2_day - warned["day"][0]).days >= 7


def test_a_flat_or_shrinking_customer_has_no_crossing():
    flat = growing(90, 4, growth=0.0)
    shrinking = growing(90, 5, growth=-0.01, start=60.0)
    unit = unit_rows({"flat": flat, "shrinking": shrinking}, {"flat": 30 * 20 / 0.18, "shrinking": 30 * 40 / 0.18})
    out = margin_forecast(unit, [day(i) for i in range(60, 90)], ALERTS, FORECAST)
    shrink = out.filter(pl.col("customer_id") == "shrinking")
    assert shrink["days_to_p2"].null_count() == shrink.height and not out["is_forecast_alert"].any()
    assert (shrink["daily_growth"] < 0).all()


def test_too_little_history_gives_no_trend():
    unit = unit_rows({"new": growing(20, 6)}, {"new": 100.0})
    out = margin_forecast(unit, [day(19)], ALERTS, FORECAST)
    row = out.row(0, named=True)
    assert row["daily_growth"] is None and row["cost_to_mrr_14d"] is None and row["days_to_p2"] is None


def test_a_range_equals_day_by_day():
    unit = unit_rows({"a": growing(90, 7), "b": growing(90, 8, growth=0.02, start=5)}, {"a": 4000.0, "b": 1200.0})
    days = [day(i) for i in range(40, 90)]
    single = pl.concat([margin_forecast(unit, [d], ALERTS, FORECAST) for d in days])
    assert_frame_equal(margin_forecast(unit, days, ALERTS, FORECAST), single)


def test_theil_sen_is_scipys():
    rng = np.random.default_rng(0)
    y = rng.normal(0, 1, (50, 8)).cumsum(axis=1)
    y[3, [1, 5]] = np.nan
    y[7, 2:] = np.nan  # two points
    x = -7.0 * np.arange(8) - 3.0
    fit = theil_sen(y, x, confidence=0.8)
    for row in range(50):
        keep = ~np.isnan(y[row])
        ref = stats.theilslopes(y[row, keep], x[keep], alpha=0.8)
        got = (fit["slope"][row], fit["intercept"][row], fit["low"][row], fit["high"][row])
        assert got == pytest.approx((ref.slope, ref.intercept, ref.low_slope, ref.high_slope)), row


def test_backtest_of_a_steady_trend():
    unit = unit_rows({f"c{i}": growing(120, 10 + i, growth=0.005) for i in range(20)}, {f"c{i}": 5000.0 for i in range(20)})
    result = backtest(unit, ahead=14, min_history=60)
    # Origins 59..105 for 20 customers; the 7-day mean's noise alone is about 0.1/sqrt(7) ~ 4%.
    assert result["forecasts"] == 20 * 47 and result["customers"] == 20
    assert 0.005 < result["median_ape"] < 0.06


def test_days_to_projects_only_where_a_crossing_is_reachable_and_agrees_with_projecting_everyone():
    """_days_to_all skips the 90-day projection of customers whose bound (30 x the larger of their
    last 30 days' largest cost and the projection's last day, over MRR) stays below the threshold:
    the answer must be the one projecting every customer gives."""
    rng = np.random.default_rng(0)
    n = 20_000
    daily = rng.lognormal(3, 1, (n, 30))
    daily[rng.random((n, 30)) < 0.1] = np.nan
    daily[rng.random(n) < 0.05] = np.nan  # customers without a cost row in the last 30 days
    latest_first = daily[:, ::-1]
    recent = np.concatenate([np.zeros((n, 1)), np.cumsum(np.nan_to_num(latest_first), axis=1)], axis=1)
    recent_days = np.concatenate([np.zeros((n, 1)), np.cumsum(~np.isnan(latest_first), axis=1)], axis=1)
    slope = rng.normal(0, 0.02, n)
    slope[rng.random(n) < 0.05] = 0.0
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        mean = np.nanmean(daily, axis=1)
    intercept = np.log(np.where(np.isnan(mean), 20.0, mean)) + rng.normal(0, 0.3, n)
    mrr = 30 * np.where(np.isnan(mean), 20.0, mean) / rng.uniform(0.05, 0.4, n)
    mrr[rng.random(n) < 0.05] = np.nan
    now = 30 * np.nan_to_num(mean) / mrr
    latest_max = np.where(np.isnan(daily), -np.inf, daily).max(axis=1)
    everyone = project_cost_to_mrr(recent, recent_days, intercept, slope, mrr)
    thresholds = (ALERTS.p2_cost_to_mrr, ALERTS.p1_cost_to_mrr)
    got = _days_to_all(now, recent, recent_days, intercept, slope, mrr, latest_max, thresholds)
    for threshold, days in zip(thresholds, got, strict=True):
        expected = _days_to(now, everyone, slope, threshold)
        assert (expected > 0).sum() > 1000  # many crossings ahead, at every distance
        np.testing.assert_array_equal(days, expected)
