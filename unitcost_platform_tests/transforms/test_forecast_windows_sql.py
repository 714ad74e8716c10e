"""margin_forecast's windows laid out by the warehouse (FORECAST_WINDOWS_QUERY) against the Polars
twin `forecast_windows`, on DuckDB and on Snowflake (fakesnow), with the statement the IO managers
build; and the whole table from the warehouse's windows plus the history of the customers forecast
to cross only, equal to the table from every customer's rows.

The data: synthetic customers growing 0-3% a day (some cross P2 inside the range, so alerts are
raised) with the holes the real tables have: missing days, null costs, a customer churned for some
days, a customer new inside the window; the table is shuffled.
"""

import datetime as dt

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import AlertsConfig, ForecastConfig, UnitcostConfig
from unitcost_platform.transforms.forecast import (
    FORECAST_WINDOWS_QUERY,
    FORECAST_WINDOWS_SCHEMA,
    forecast_from_windows,
    forecast_windows,
    margin_forecast,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables
from unitcost_platform_tests.transforms.synthetic_customers import day

ALERTS, FORECAST = AlertsConfig(), ForecastConfig()


def _unit_cost(seed: int, customers: int = 24, days: int = 130) -> pl.DataFrame:
    """unit_cost's columns the query reads: cost-to-MRR from the 30-day run rate, as unit_cost has it."""
    rng = np.random.default_rng(seed)
    rows = []
    for c in range(customers):
        growth, start = rng.uniform(0.0, 0.03), rng.uniform(5, 40)
        mrr = 30 * start / rng.uniform(0.05, 0.15)  # cost-to-MRR starts at 5-15%: P2 (20%) ahead for some
        for i in range(days):
            if rng.random() < 0.06 or (c == 4 and i < 80):  # holes; c004 is new on day 80
                continue
            cost = start * (1 + growth) ** i * rng.lognormal(0, 0.12)
            status = "churned" if c == 3 and 95 <= i <= 110 else "active"
            rows.append((day(i), f"c{c:03d}", f"Customer {c}", "smb", status, None if rng.random() < 0.03 else cost, mrr))
    unit = pl.DataFrame(
        rows, schema=["day", "customer_id", "customer_name", "tier", "status", "total_cost", "mrr"], orient="row"
    ).sort("customer_id", "day")
    run_rate = 30 * pl.col("total_cost").fill_null(0.0).rolling_mean(30, min_samples=1).over("customer_id")
    return (
        unit.with_columns((run_rate / pl.col("mrr")).alias("cost_to_mrr"))
        .select(FORECAST_WINDOWS_QUERY.columns)
        .sample(fraction=1.0, shuffle=True, seed=seed)
    )


def _warehouse(table: pl.DataFrame, days: list[dt.date], engine: str) -> pl.DataFrame:
    rows = f"select {', '.join(FORECAST_WINDOWS_QUERY.columns)} from unitcost.unit_cost"
    text = ",".join(d.isoformat() for d in days)
    if engine == "duckdb":
        out = duckdb_tables({"unit_cost": table})(FORECAST_WINDOWS_QUERY.statement(rows, UnitcostConfig(), DUCKDB, days=text))
    else:
        with fake_snowflake_tables({"unit_cost": table}) as snowflake:
            out = snowflake(FORECAST_WINDOWS_QUERY.statement(rows, UnitcostConfig(), SNOWFLAKE, days=text))
    return out.select(list(FORECAST_WINDOWS_SCHEMA)).cast(FORECAST_WINDOWS_SCHEMA).sort("day", "customer_id")


RUNS = {
    "a day": [day(120)],
    "two days apart": [day(100), day(107)],
    "a range": [day(i) for i in range(70, 130)],
}


def test_a_window_by_hand():
    """One customer: rows on days 0..61 but day 10, a null cost on day 20; the window of day 61."""
    costs = {i: float(i + 1) for i in range(62) if i != 10}
    costs[20] = None
    table = pl.DataFrame({
        "day": [day(i) for i in costs], "customer_id": "a", "customer_name": "A", "tier": "smb", "status": "active",
        "total_cost": list(costs.values()), "mrr": 100.0, "cost_to_mrr": 0.3,
    })  # fmt: skip
    for found in (forecast_windows(table, [day(61)]), _warehouse(table, [day(61)], "duckdb")):
        row = found.row(0, named=True)
        assert found.height == 1 and (row["day"], row["mrr"], row["cost_to_mrr"]) == (day(61), 100.0, 0.3)
        assert row["cost_back_00"] == 62.0 and row["cost_back_59"] == 3.0  # day 61 and day 2; days 0, 1 are out
        assert row["cost_back_51"] is None  # day 10: no row
        assert row["cost_back_41"] == 0.0  # day 20: a null cost counts 0
        assert sum(v for k, v in row.items() if k.startswith("cost_back") and v) == sum(range(3, 63)) - 11 - 21


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_the_warehouse_windows_equal_the_twin(engine):
    table = _unit_cost(21)
    for name, days in RUNS.items():
        expected = forecast_windows(table, days).sort("day", "customer_id")
        assert_frame_equal(_warehouse(table, days, engine), expected)  # the same values, no arithmetic
        if name == "a range":
            assert expected.height > 1000
            assert expected.filter((pl.col("customer_id") == "c003") & pl.col("day").is_between(day(95), day(110))).is_empty()
            back = expected.filter((pl.col("customer_id") == "c003") & (pl.col("day") == day(115))).row(0, named=True)
            churned_day = table.filter((pl.col("customer_id") == "c003") & (pl.col("day") == day(105)))
            assert back["cost_back_10"] == (churned_day["total_cost"].fill_null(0.0)[0] if churned_day.height else None)
            new = expected.filter((pl.col("customer_id") == "c004") & (pl.col("day") == day(90))).row(0, named=True)
            assert new["cost_back_10"] is not None and all(new[f"cost_back_{k:02d}"] is None for k in range(11, 60))


@pytest.mark.parametrize("seed", [21, 22])
def test_the_table_from_the_windows_and_the_crossing_customers_history_is_the_same(seed):
    table = _unit_cost(seed)
    for name, days in RUNS.items():
        everyone = margin_forecast(table, days, ALERTS, FORECAST)
        asked = []

        def history(ids: list[str], asked: list = asked) -> pl.DataFrame:
            asked.append(ids)
            return table.filter(pl.col("customer_id").is_in(ids))

        found = forecast_from_windows(_warehouse(table, days, "duckdb"), history, days, ALERTS, FORECAST)
        # Each row's own 60 days against one calendar for every day: the same figures, the running
        # sums started elsewhere (a range differs in the last bits).
        assert_frame_equal(found, everyone, check_exact=False, rel_tol=1e-9, abs_tol=1e-12)
        if name == "a range":
            alerted = everyone.filter(pl.col("is_forecast_alert"))["customer_id"].unique()
            assert alerted.len() >= 2
            [ids] = asked
            assert set(alerted) <= set(ids) and len(ids) < table["customer_id"].n_unique()  # the candidates only
