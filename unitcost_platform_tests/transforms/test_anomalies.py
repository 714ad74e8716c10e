"""cost_anomalies on synthetic customers (lognormal noise σ = 0.1 on requests and on cost per request)."""

import json

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal
from scipy import stats

from unitcost_platform.config import AnomaliesConfig, OwnersConfig
from unitcost_platform.transforms.anomalies import (
    BASELINE_DAYS,
    MAD_SCALE,
    cost_anomalies,
    nanmedian,
    robust_baseline,
)
from unitcost_platform_tests.transforms.synthetic_customers import OWNERS, customers_frames, day

CFG = AnomaliesConfig()
OWNERS_CFG = OwnersConfig(services=OWNERS, default_team="platform")
# Total cost per request triples on day 90 (a Sunday) through the compute service alone (70% of the bill).
COMPUTE_STEP = (90, (3 - 0.3) / 0.7)


def _run(frames, days, cfg=CFG):
    return cost_anomalies(frames["cost"], frames["units"], frames["customers"], frames["service_costs"],
                          days, cfg, OWNERS_CFG)  # fmt: skip


def _excess(frames, on_day):
    """True excess of each customer on the day: its cost minus what the same requests cost at the
    old price with the same noise (known to the generator, not to the detector)."""
    return frames["truth"].filter(pl.col("day") == on_day).select(
        "customer_id", (pl.col("total_cost") - pl.col("cost_at_old_price")).alias("excess")
    )


def test_a_tripled_cost_per_request_is_one_anomaly_on_its_first_day():
    frames = customers_frames(1, 101, seed=11, compute_price_step=COMPUTE_STEP)
    out = _run(frames, [day(i) for i in range(85, 101)])
    anomalies = out.filter(pl.col("is_anomaly"))
    assert anomalies.height == 1
    row = anomalies.row(0, named=True)
    assert row["day"] == day(90) and row["direction"] == "up" and row["score"] > CFG.min_score
    excess = _excess(frames, day(90))["excess"][0]
    assert row["impact"] == pytest.approx(excess, rel=0.05)
    assert row["price_effect"] >= 0.9 * excess
    # The decomposition is exact: price + volume + cross = actual - expected.
    assert row["price_effect"] + row["volume_effect"] + row["cross_effect"] == pytest.approx(row["impact"], rel=1e-9)
    # The service whose cost per request changed leads the drivers, and its team is named first.
    drivers = json.loads(row["drivers"])
    assert drivers[0]["service"] == "Amazon Elastic Compute Cloud" and drivers[0]["price_effect"] > 0.8 * row["price_effect"]
    assert row["owners"].split(",")[0] == "compute-team"
    # The next days of the new level are beyond the baseline but belong to the same shift.
    later = out.filter((pl.col("day") > day(90)) & pl.col("first_day").is_not_null())
    assert later.height > 0 and set(later["first_day"]) == {day(90)}


def test_a_tripled_cost_per_request_over_300_customers():
    """The same step on 300 customers: every one alerts once, on day 90. A single day's cost carries
    its own 10% noise, which no baseline can predict, so the impact of one customer is within ±5% of
    its true excess only about half the time (±5% is about one standard deviation); over customers
    the impact is unbiased and the price effect carries the excess."""
    frames = customers_frames(300, 101, seed=99, compute_price_step=COMPUTE_STEP)
    out = _run(frames, [day(i) for i in range(85, 101)])
    per_customer = out.group_by("customer_id").agg(
        pl.col("is_anomaly").sum().alias("n"), pl.col("day").filter(pl.col("is_anomaly")).first().alias("on")
    )
    assert (per_customer["n"] == 1).all() and (per_customer["on"] == day(90)).all()
    joined = out.filter(pl.col("day") == day(90)).join(_excess(frames, day(90)), on="customer_id")
    ratio = (joined["impact"] / joined["excess"]).to_numpy()
    assert np.median(ratio) == pytest.approx(1.0, abs=0.02)
    assert np.median((joined["price_effect"] / joined["excess"]).to_numpy()) >= 0.95
    assert np.mean(np.abs(ratio - 1) <= 0.05) > 0.35  # about 0.45: the day's own noise


def test_the_new_level_becomes_the_baseline():
    frames = customers_frames(1, 140, seed=11, compute_price_step=COMPUTE_STEP)
    out = _run(frames, [day(i) for i in range(119, 140)])
    assert out["score"].abs().max() < CFG.min_score and not out["is_anomaly"].any()


@pytest.mark.parametrize("seed", [21, 22])
def test_doubled_requests_at_the_same_unit_price_are_not_an_anomaly(seed):
    frames = customers_frames(5, 101, seed=seed, volume_step=(90, 2.0))
    out = _run(frames, [day(i) for i in range(85, 101)])
    assert not out["is_anomaly"].any()
    on_the_day = out.filter(pl.col("day") == day(90))
    # The growth is volume: the volume effect carries most of the change, the price score stays small.
    assert (on_the_day["volume_effect"] > 0.6 * on_the_day["impact"]).all()
    assert on_the_day["score"].abs().max() < CFG.min_score


def test_weekends_at_minus_40_percent_raise_at_most_one_anomaly_per_thousand_customer_days():
    rng = np.random.default_rng(5)
    n = 1000
    # $20 to $800 a day: far above the $5 floor, so the score alone decides.
    requests = rng.uniform(20_000, 800_000, n)
    frames = customers_frames(n, 120, seed=31, requests=requests, weekend_factor=0.6)
    days = [day(i) for i in range(BASELINE_DAYS, 120)]
    out = _run(frames, days)
    scored = out.filter(pl.col("score").is_not_null())
    assert scored.height == n * len(days)
    assert out["is_anomaly"].sum() <= scored.height / 1000
    # The expectation follows the weekend: expected cost on Saturdays about 60% of Wednesdays'.
    by_weekday = out.group_by(pl.col("day").dt.weekday().alias("wd")).agg(pl.col("expected_cost").median())
    ratio = dict(by_weekday.iter_rows())
    assert ratio[6] / ratio[3] == pytest.approx(0.6, rel=0.05)


def test_a_range_equals_day_by_day():
    frames = customers_frames(4, 101, seed=11, compute_price_step=COMPUTE_STEP)
    days = [day(i) for i in range(80, 101)]
    ranged = _run(frames, days)
    single = pl.concat([_run(frames, [d]) for d in days])
    assert_frame_equal(ranged, single)


def test_a_flat_price_history_is_credited_with_the_minimum_noise():
    frames = customers_frames(1, 40, seed=1)
    frames["cost"] = frames["units"].select("day", "customer_id", (pl.col("units") / 1000).alias("total_cost"))
    out = _run(frames, [day(39)])
    assert out["score"][0] == pytest.approx(0.0, abs=1e-9)


def test_baseline_median_and_mad_are_scipys():
    rng = np.random.default_rng(3)
    log_price = rng.normal(0, 0.1, (5, BASELINE_DAYS + 1))
    log_price[0, 3] = np.nan
    weekend = np.array([i % 7 in (5, 6) for i in range(BASELINE_DAYS + 1)])
    base = robust_baseline(log_price, log_price, weekend, BASELINE_DAYS)
    same = weekend[:BASELINE_DAYS] == weekend[BASELINE_DAYS]
    for row in range(5):
        history = log_price[row, :BASELINE_DAYS]
        residuals = []
        for mask in (same, ~same):
            values = history[mask][~np.isnan(history[mask])]
            residuals += list(values - np.median(values))
        values = history[same][~np.isnan(history[same])]
        assert base["log_price"][row] == pytest.approx(np.median(values))
        # Deviations from each day type's own median (centre 0), widened for the median's own error.
        mad = stats.median_abs_deviation(residuals, scale="normal", center=lambda x, axis: 0.0)
        assert base["noise"][row] == pytest.approx(max(mad * np.sqrt(1 + np.pi / (2 * len(values))), 0.02))
    assert float(MAD_SCALE) == pytest.approx(1.482602218505602)


def test_nanmedian_is_numpys():
    rng = np.random.default_rng(8)
    values = rng.normal(size=(200, 9))
    values[rng.random(values.shape) < 0.3] = np.nan
    values[5] = np.nan
    with np.errstate(all="ignore"), pytest.warns(RuntimeWarning):
        expected = np.nanmedian(values, axis=1)
    np.testing.assert_array_equal(nanmedian(values, axis=1), expected)
