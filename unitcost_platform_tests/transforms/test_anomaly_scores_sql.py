"""cost_anomalies' scores computed by the warehouse (ANOMALY_SCORES_QUERY) against the Polars/numpy
twin `anomaly_scores`, on DuckDB and on Snowflake (fakesnow), with the statement the IO managers
build; and the whole table from the warehouse's scores plus the beyond customers' history equal to
the table computed from every customer's rows.

The data: synthetic customers (lognormal noise on requests and on cost per request, weekends at
60%), a tripled compute price from day 90 for some of them (beyond days, a shift, first days), and
then holes the real tables have: missing days, days with no requests, days with no cost, customers
churned on some days, a customer new inside the window; the table is shuffled.
"""

import datetime as dt
import random

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import AnomaliesConfig, OwnersConfig, UnitcostConfig
from unitcost_platform.transforms.anomalies import (
    ANOMALY_SCORES_QUERY,
    ANOMALY_SCORES_SCHEMA,
    anomaly_scores,
    cost_anomalies,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables
from unitcost_platform_tests.transforms.synthetic_customers import OWNERS, customers_frames, day

OWNERS_CFG = OwnersConfig(services=OWNERS, default_team="platform")
STEP = (90, (3 - 0.3) / 0.7)  # the compute service's cost per request triples on day 90


def _unit_cost(seed: int) -> tuple[pl.DataFrame, pl.DataFrame]:
    """unit_cost's columns the query reads, over 101 days of 12 customers, and the service costs."""
    stepped = customers_frames(4, 101, seed=seed, compute_price_step=STEP, weekend_factor=0.6)
    flat = customers_frames(8, 101, seed=seed + 100, weekend_factor=0.6)
    rows, services = [], []
    for prefix, frames in (("s", stepped), ("f", flat)):
        rows.append(frames["truth"].select(
            "day", (pl.lit(prefix) + pl.col("customer_id")).alias("customer_id"), "total_cost", pl.col("units").alias("requests"),
        ))  # fmt: skip
        services.append(frames["service_costs"].with_columns((pl.lit(prefix) + pl.col("customer_id")).alias("customer_id")))
    table = pl.concat(rows)
    rng = random.Random(seed)
    keys = table.select("day", "customer_id").rows()
    holes = set(rng.sample(keys, len(keys) // 12))  # missing rows
    no_requests = set(rng.sample(keys, len(keys) // 25))
    # One customer never has requests on the step's weekday: no expected units on those days, so not scored.
    no_requests |= {k for k in keys if k[1] == "fc0005" and k[0].weekday() == day(90).weekday()}
    no_cost = set(rng.sample(keys, len(keys) // 25))
    churned = {k for k in keys if k[1] == "fc0003" and day(70) <= k[0] <= day(95)}
    new = {k for k in keys if k[1] == "fc0004" and k[0] < day(80)}  # joins inside the window
    table = table.with_columns(
        pl.Series("_key", [f"{d}|{c}" for d, c in keys]),
    )
    text = lambda ks: [f"{d}|{c}" for d, c in ks]  # noqa: E731
    table = (
        table.filter(~pl.col("_key").is_in(text(holes | new)))
        .with_columns(
            pl.when(pl.col("_key").is_in(text(no_requests))).then(0.0).otherwise(pl.col("requests")).alias("requests"),
            pl.when(pl.col("_key").is_in(text(no_cost))).then(0.0).otherwise(pl.col("total_cost")).alias("total_cost"),
            pl.when(pl.col("_key").is_in(text(churned))).then(pl.lit("churned")).otherwise(pl.lit("active")).alias("status"),
            pl.col("customer_id").str.to_uppercase().alias("customer_name"),
            pl.lit("mid-market").alias("tier"),
        )
        .drop("_key")
        .select(ANOMALY_SCORES_QUERY.columns)
        .sample(fraction=1.0, shuffle=True, seed=seed)
    )
    return table, pl.concat(services)


def _twin(table: pl.DataFrame, days: list[dt.date], cfg: AnomaliesConfig) -> pl.DataFrame:
    active = table.filter(pl.col("day").is_in(days) & (pl.col("status") == "active"))
    return anomaly_scores(
        table.select("day", "customer_id", "total_cost"),
        table.select("day", "customer_id", pl.col("requests").alias("units")),
        active.select("day", "customer_id", "customer_name", "tier"),
        days, cfg,
    ).sort("day", "customer_id")  # fmt: skip


def _warehouse(table: pl.DataFrame, days: list[dt.date], cfg: UnitcostConfig, engine: str) -> pl.DataFrame:
    rows = f"select {', '.join(ANOMALY_SCORES_QUERY.columns)} from unitcost.unit_cost"
    text = ",".join(d.isoformat() for d in days)
    if engine == "duckdb":
        out = duckdb_tables({"unit_cost": table})(ANOMALY_SCORES_QUERY.statement(rows, cfg, DUCKDB, days=text))
    else:
        with fake_snowflake_tables({"unit_cost": table}) as snowflake:
            out = snowflake(ANOMALY_SCORES_QUERY.statement(rows, cfg, SNOWFLAKE, days=text))
    return out.select(list(ANOMALY_SCORES_SCHEMA)).cast(ANOMALY_SCORES_SCHEMA).sort("day", "customer_id")


RUNS = {
    "the step's day": [day(90)],
    "the days after it": [day(91), day(92)],
    "a range over the step": [day(i) for i in range(84, 101)],
}


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
@pytest.mark.parametrize("seed", [11, 12])
def test_the_warehouse_scores_equal_the_twin(engine, seed):
    table, _ = _unit_cost(seed)
    cfg = UnitcostConfig()
    for name, days in RUNS.items():
        expected = _twin(table, days, cfg.anomalies)
        found = _warehouse(table, days, cfg, engine)
        assert_frame_equal(found, expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-12), name
        if name == "a range over the step":
            assert (expected["beyond"] == 1).sum() >= 4 and (expected["beyond"] == 0).sum() > 100
            assert expected["score"].null_count() > 0 and expected["score"].is_not_null().sum() > 100  # holes and a new customer
            # A day without a usable baseline has no score and no direction; a scored day has both.
            assert (expected["score"].is_null() == expected["direction"].is_null()).all()
            assert expected.filter(pl.col("score") < 0)["direction"].eq("down").all()
            unscored = expected.filter((pl.col("customer_id") == "fc0005") & (pl.col("day") == day(97)))
            assert unscored["score"].is_null().all() and unscored["expected_units"].is_null().all()
            assert unscored["baseline_days"][0] >= 14  # days enough; no units on its weekday
            assert expected.filter((pl.col("customer_id") == "fc0003") & (pl.col("day") <= day(95))).is_empty()  # churned
            joined = expected.filter((pl.col("customer_id") == "fc0004") & (pl.col("day") == day(84))).row(0, named=True)
            assert joined["baseline_days"] <= 4 and joined["score"] is None  # new: 4 days of history at most
    # A stricter config moves the thresholds the same way on both sides.
    strict = UnitcostConfig.model_validate({"anomalies": {"min_score": 2.5, "min_impact": 0.5, "min_baseline_days": 20}})
    days = RUNS["a range over the step"]
    expected = _twin(table, days, strict.anomalies)
    assert (expected["beyond"] != 0).sum() > (_twin(table, days, cfg.anomalies)["beyond"] != 0).sum()
    assert_frame_equal(_warehouse(table, days, strict, engine), expected, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)


@pytest.mark.parametrize("seed", [11, 12])
def test_the_table_from_the_warehouse_scores_and_the_beyond_customers_history_is_the_same(seed):
    table, services = _unit_cost(seed)
    cfg = UnitcostConfig()
    for days in RUNS.values():
        cost = table.select("day", "customer_id", "total_cost")
        units = table.select("day", "customer_id", pl.col("requests").alias("units"))
        everyone = cost_anomalies(cost, units, table, services, days, cfg.anomalies, OWNERS_CFG)
        scores = _warehouse(table, days, cfg, "duckdb")
        beyond = scores.filter(pl.col("beyond") != 0)["customer_id"].unique()
        theirs = pl.col("customer_id").is_in(beyond.implode())
        from_scores = cost_anomalies(
            cost.filter(theirs), units.filter(theirs), table.clear(), services, days, cfg.anomalies, OWNERS_CFG,
            scores=scores,
        )  # fmt: skip
        assert_frame_equal(from_scores, everyone, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
    # The range has the shifts: anomalies on the step's day, later beyond days naming it as first day.
    assert everyone.filter(pl.col("is_anomaly") & (pl.col("day") == day(90))).height >= 2
    assert (everyone.filter(pl.col("day") > day(90))["first_day"] == day(90)).sum() >= 3
    assert np.all(everyone.filter(pl.col("is_anomaly"))["drivers"].str.contains("Elastic Compute").to_numpy())
