"""The dashboard's window reduced by the warehouse (transforms/daily_series.py): a row per day (and
unit metric), the anomalies found and the incidents on show, on DuckDB and Snowflake (fakesnow),
against figures written by hand and against the Polars twins; and a real Dagster run in which the
dashboard-shaped reader gets a row per day of its window and the rows of its own day only."""

import datetime as dt
import random

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.defs.io_managers import UnitcostDuckDBIOManager
from unitcost_platform.defs.rollup import BY_DAY, ROWS_LOADED, ByDay, queries, read_by_day
from unitcost_platform.settings import PROJECT_ROOT
from unitcost_platform.transforms.daily_series import (
    anomalies_found,
    cost_per_unit_daily,
    forecast_alerts,
    forecast_crossings,
    incidents_on_show,
    unit_cost_daily,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)

# Day 1: paying 1, 3 and 10; non-paying 0.5 and 4; one customer whose paying flag is unknown (2).
# Day 2: one paying customer only.
UNIT_COST = pl.DataFrame(
    [(D1, "a", True, 1.0), (D1, "b", True, 3.0), (D1, "c", True, 10.0), (D1, "d", False, 0.5), (D1, "e", False, 4.0),
     (D1, "f", None, 2.0), (D2, "a", True, 5.0)],
    schema={"day": pl.Date, "customer_id": pl.String, "is_paying": pl.Boolean, "total_cost": pl.Float64}, orient="row",
)  # fmt: skip

UNIT_COST_EXPECTED = pl.DataFrame(
    # Day 1 sorted: 0.5 1 2 3 4 10; median (2 + 3) / 2; p90 at position 0.9 x 5 = 4.5: 4 + 0.5 x 6.
    [(D1, 6, 20.5 / 6, 2.5, 7.0, 3.0, 2.25), (D2, 1, 5.0, 5.0, 5.0, 5.0, None)],
    schema={"day": pl.Date, "customers": pl.Int64, "mean": pl.Float64, "median": pl.Float64, "p90": pl.Float64,
            "median_paying": pl.Float64, "median_non_paying": pl.Float64}, orient="row",
)  # fmt: skip

UNIT_COSTS = pl.DataFrame(
    [(D1, "per_1k_requests", v) for v in (1.0, 2.0, None, 3.0)] + [(D1, "per_gb", None), (D2, "per_gb", 4.0)],
    schema={"day": pl.Date, "unit_metric": pl.String, "cost_per_unit": pl.Float64}, orient="row",
)  # fmt: skip

# Three non-null values 1 2 3: median 2, p90 at position 1.8: 2 + 0.8. per_gb has no value on day 1.
COST_PER_UNIT_EXPECTED = pl.DataFrame(
    [(D1, "per_1k_requests", 2.0, 2.8), (D2, "per_gb", 4.0, 4.0)],
    schema={"day": pl.Date, "unit_metric": pl.String, "median": pl.Float64, "p90": pl.Float64}, orient="row",
)  # fmt: skip

ANOMALY_ROWS = pl.DataFrame(
    [(D1, "a", "Acme", True, 9.0, 5.0, 3.0, 1.0), (D1, "b", "Bolt", False, 0.1, 0.1, 0.0, 0.0),
     (D2, "c", "Cove", None, 0.0, 0.0, 0.0, 0.0), (D2, "b", "Bolt's", True, -2.0, -1.0, -1.0, 0.0)],
    schema={"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String, "is_anomaly": pl.Boolean,
            "impact": pl.Float64, "price_effect": pl.Float64, "volume_effect": pl.Float64, "cross_effect": pl.Float64},
    orient="row",
).with_columns(
    pl.col("impact").abs().alias("actual_cost"), pl.lit(1.0).alias("expected_cost"),
    pl.lit(2.5).alias("actual_cost_per_1k_units"), pl.lit(1.5).alias("expected_cost_per_1k_units"),
    pl.lit(6.0).alias("score"), pl.lit('[{"service":"EC2"}]').alias("drivers"), pl.lit("compute").alias("owners"),
)  # fmt: skip

INCIDENT_ROWS = pl.DataFrame(
    [(D1, "open-1", "open"), (D1, "gone-1", "resolved"), (D2, "open-1", "open"), (D2, "gone-2", "resolved"),
     (D3, "open-1", "open"), (D3, "new-3", "open")],
    schema={"day": pl.Date, "incident_id": pl.String, "status": pl.String}, orient="row",
).with_columns(
    pl.col("incident_id").str.split("-").list.first().alias("family"), pl.lit("c1").alias("customer_id"),
    pl.lit("Acme").alias("customer_name"), pl.lit(3, dtype=pl.Int64).alias("days_open"), pl.lit("P2").alias("severity"),
    pl.lit("team-a").alias("owners"),
)  # fmt: skip

# Days to P2 and P1: already above (0), within the 30 days shown (1, 30; P1 in 5), beyond (31), never.
FORECAST_ROWS = pl.DataFrame(
    [(D3, f"c{i}", f"C{i}", 0.1, 0.2, 0.15, 0.25, p2, p1)
     for i, (p2, p1) in enumerate([(0, None), (1, None), (30, 40), (31, None), (None, 5), (None, 31), (None, None)])],
    schema={"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String, "cost_to_mrr": pl.Float64,
            "cost_to_mrr_30d": pl.Float64, "cost_to_mrr_30d_low": pl.Float64, "cost_to_mrr_30d_high": pl.Float64,
            "days_to_p2": pl.Int64, "days_to_p1": pl.Int64}, orient="row",
).with_columns(
    # A FORECAST alert on c1 and c2 only (c1: the first day of its crossing; c0 is above P2 already).
    pl.col("customer_id").is_in(["c1", "c2"]).alias("is_forecast_alert"), pl.lit(0.01).alias("daily_growth"),
    pl.lit(0.2).alias("cost_to_mrr_14d"), pl.lit(0.18).alias("cost_to_mrr_14d_low"), pl.lit(0.22).alias("cost_to_mrr_14d_high"),
)  # fmt: skip

TABLES = {
    "unit_cost": UNIT_COST, "customer_unit_costs": UNIT_COSTS, "cost_anomalies": ANOMALY_ROWS,
    "alert_incidents": INCIDENT_ROWS, "margin_forecast": FORECAST_ROWS,
}  # fmt: skip


def run_queries(engine: str, tables: dict[str, pl.DataFrame], names: dict[str, str]) -> dict[str, pl.DataFrame]:
    """Each named query over its table's rows, as the IO managers run it, on `engine`."""

    def statements(dialect) -> dict[str, str]:
        return {
            name: queries()[name].statement(f"select {', '.join(queries()[name].columns)} from unitcost.{table}", None, dialect)
            for name, table in names.items()
        }

    if engine == "duckdb":
        run = duckdb_tables(tables)
        results = {name: run(sql) for name, sql in statements(DUCKDB).items()}
    else:
        with fake_snowflake_tables(tables) as run:
            results = {name: run(sql) for name, sql in statements(SNOWFLAKE).items()}
    return {name: frame.select(list(queries()[name].schema)).cast(queries()[name].schema) for name, frame in results.items()}


QUERY_TABLES = {
    "unit_cost_daily": "unit_cost", "cost_per_unit_daily": "customer_unit_costs",
    "anomalies_found": "cost_anomalies", "incidents_on_show": "alert_incidents",
    "forecast_crossings": "margin_forecast", "forecast_alerts": "margin_forecast",
}  # fmt: skip


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_the_dashboards_window_is_reduced_by_the_warehouse(engine):
    got = run_queries(engine, TABLES, QUERY_TABLES)
    assert_frame_equal(got["unit_cost_daily"].sort("day"), UNIT_COST_EXPECTED, check_exact=False, abs_tol=1e-12)
    assert_frame_equal(got["cost_per_unit_daily"].sort("day"), COST_PER_UNIT_EXPECTED, check_exact=False, abs_tol=1e-12)
    # The anomalies found only (not the customer scored quiet, nor the one without a score).
    assert sorted(got["anomalies_found"].select("day", "customer_name", "impact").rows()) == [
        (D1, "Acme", 9.0), (D2, "Bolt's", -2.0)
    ]
    # The last day's incidents and every resolved one; day 1 and 2's open rows stay in the warehouse.
    assert sorted(got["incidents_on_show"].select("day", "incident_id", "status").rows()) == [
        (D1, "gone-1", "resolved"), (D2, "gone-2", "resolved"), (D3, "new-3", "open"), (D3, "open-1", "open")
    ]
    # The projected crossings the panel shows: P2 in 1 and in 30 days, P1 in 5.
    assert sorted(got["forecast_crossings"]["customer_id"]) == ["c1", "c2", "c4"]
    # cost_alerts' FORECAST rows: the forecast alerts only.
    assert sorted(got["forecast_alerts"]["customer_id"]) == ["c1", "c2"]
    # The Polars twins (what a caller holding the rows computes) give the same tables.
    for name, twin in (("unit_cost_daily", unit_cost_daily), ("cost_per_unit_daily", cost_per_unit_daily),
                       ("anomalies_found", anomalies_found), ("incidents_on_show", incidents_on_show),
                       ("forecast_crossings", forecast_crossings), ("forecast_alerts", forecast_alerts)):  # fmt: skip
        keys = [c for c in ("day", "unit_metric", "customer_id", "incident_id") if c in got[name].columns]
        assert_frame_equal(got[name].sort(keys), twin(TABLES[QUERY_TABLES[name]]).sort(keys),
                           check_exact=False, abs_tol=1e-9, check_column_order=False)  # fmt: skip


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_the_warehouse_figures_equal_polars_on_many_customers(engine):
    """30 days of 300 customers (costs spread over four orders of magnitude, a share non-paying, a
    share of cost per unit missing): the warehouse's percentiles are the Polars twins'."""
    rng = random.Random(5)
    days = [D1 + dt.timedelta(days=n) for n in range(30)]
    unit_cost = pl.DataFrame(
        [(d, f"c{i}", rng.random() < 0.7, rng.lognormvariate(0, 2)) for d in days for i in range(300)],
        schema=UNIT_COST.schema, orient="row",
    )  # fmt: skip
    unit_costs = pl.DataFrame(
        [(d, m, None if rng.random() < 0.2 else rng.lognormvariate(-3, 1)) for d in days for m in ("a", "b") for _ in range(300)],
        schema=UNIT_COSTS.schema, orient="row",
    )  # fmt: skip
    got = run_queries(engine, {"unit_cost": unit_cost, "customer_unit_costs": unit_costs},
                      {"unit_cost_daily": "unit_cost", "cost_per_unit_daily": "customer_unit_costs"})  # fmt: skip
    assert got["unit_cost_daily"].height == 30 and got["cost_per_unit_daily"].height == 60
    assert_frame_equal(got["unit_cost_daily"].sort("day"), unit_cost_daily(unit_cost), check_exact=False, rel_tol=1e-9)
    assert_frame_equal(got["cost_per_unit_daily"].sort("unit_metric", "day"), cost_per_unit_daily(unit_costs),
                       check_exact=False, rel_tol=1e-9)  # fmt: skip


PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-10")


def test_a_window_read_through_a_query_is_a_row_per_day_and_the_days_asked_are_rows(tmp_path):
    """The dashboard's unit_cost input: on 01-09's run, a window of 8 days of 4 customers (costs
    1, 3, 2 and 10 times the day of the month; the first two paying) comes back as 8 rows, one per
    day, and the rows of 01-09 only; an unknown query is an error that names the known ones."""
    io = {"io_manager": UnitcostDuckDBIOManager(database=str(tmp_path / "w.duckdb"),
                                                config_path=str(PROJECT_ROOT / "unitcost.yaml")), BY_DAY: read_by_day}  # fmt: skip
    received: dict[str, pl.DataFrame] = {}

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def unit_cost(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = dt.date.fromisoformat(context.partition_key)
        return pl.DataFrame(
            [(day, c, paying, k * day.day) for c, paying, k in [("a", True, 1.0), ("b", True, 3.0), ("c", False, 2.0), ("d", False, 10.0)]],
            schema=UNIT_COST.schema, orient="row",
        )  # fmt: skip

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"unit_cost": dg.AssetIn(key=dg.AssetKey(["unitcost", "unit_cost"]), input_manager_key=BY_DAY,
                                     partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-7),
                                     metadata={"columns": ["day", "customer_id", "total_cost"]})},
    )  # fmt: skip
    def dashboard(unit_cost: ByDay) -> None:
        received["daily"] = unit_cost.query("unit_cost_daily")
        received["today"] = unit_cost.days([dt.date(2026, 1, 9)])
        with pytest.raises(dg.DagsterInvariantViolationError, match="'no_such' is not one of .*unit_cost_daily"):
            unit_cost.query("no_such")

    days = [dt.date(2026, 1, d) for d in range(2, 10)]
    for day in days:
        assert dg.materialize([unit_cost], partition_key=day.isoformat(), resources=io).success
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([unit_cost, dashboard], partition_key="2026-01-09", resources=io, selection=[dashboard],
                            instance=instance)  # fmt: skip
    assert result.success
    # All four: 1 2 3 10 (x day): median 2.5, p90 at 2.7: 3 + 0.7 x 7 = 7.9, mean 4; paying 1 and 3, non-paying 2 and 10.
    assert received["daily"].sort("day").rows() == [
        (d, 4, pytest.approx(4.0 * d.day), pytest.approx(2.5 * d.day), pytest.approx(7.9 * d.day),
         pytest.approx(2.0 * d.day), pytest.approx(6.0 * d.day)) for d in days
    ]  # fmt: skip
    assert received["today"].sort("customer_id").rows() == [
        (dt.date(2026, 1, 9), c, 9.0 * k) for c, k in [("a", 1.0), ("b", 3.0), ("c", 2.0), ("d", 10.0)]
    ]
    logged = [e.user_message for e in instance.all_logs(result.run_id) if ROWS_LOADED in (e.user_message or "")]
    assert logged == [
        f"{ROWS_LOADED}: 0 rows of unitcost/unit_cost (read by day when the asset asks, 8 day(s))",
        f"{ROWS_LOADED}: 8 rows of unitcost/unit_cost (query unit_cost_daily, 8 day(s))",
        f"{ROWS_LOADED}: 4 rows of unitcost/unit_cost (rows, 1 day(s))",
    ]
