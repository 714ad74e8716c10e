"""customer_unit_costs as the warehouse computes it (`customer_unit_costs_sql`) against its Polars twin.

The asset's rows are written by the warehouse from unit_cost, tenant_usage and customer_dimension;
`customer_unit_costs` on frames is the twin. Both run here over random days (a day of the week
before missing, customers with several tenants, tenants nobody owns, zero units and zero cost, a
unit metric nobody reports and one reported on some days only), for a day, two days and a range, on
DuckDB and on Snowflake (fakesnow); the summary the asset's metadata reads is held to the figures
Polars gives over the same rows.
"""

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitMetric
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.transforms.unit_metrics import (
    CUSTOMER_UNIT_COSTS_SCHEMA,
    UNIT_COSTS_SUMMARY_SCHEMA,
    USAGE_ROLLUP,
    customer_unit_costs,
    customer_unit_costs_sql,
    unit_costs_summary_sql,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import (
    D,
    customers,
    duckdb_tables,
    fake_snowflake_tables,
    usage,
)

CALENDAR = [D - dt.timedelta(days=n) for n in range(10, -1, -1)]  # D-10 .. D
MISSING = D - dt.timedelta(days=8)  # no row of any table: D-1's week before is not materialized
METRICS = [
    UnitMetric(name="per_1k_requests", metric="requests", per=1000),
    UnitMetric(name="per_gb_month", metric="storage_bytes", per=1073741824),
    UnitMetric(name="per_transaction", metric="transactions"),  # reported on some days only
    UnitMetric(name="per_token", metric="tokens"),  # reported by nobody
]
RUNS = {"day": [D], "two days": [D - dt.timedelta(days=1), D], "range": CALENDAR[7:]}
SORT = ["day", "customer_id", "unit_metric"]


def _tables(seed: int) -> dict[str, pl.DataFrame]:
    rng = random.Random(seed)
    days = [d for d in CALENDAR if d != MISSING]
    versions = [
        {"customer_id": f"C{c:02d}", "tenant_id": t, "customer_name": f"Customer {c}", "tier": "smb"}
        for c in range(15) for t in ([f"t{c:02d}"] + ([f"t{c:02d}b"] if c % 3 == 0 else []))
    ]  # fmt: skip
    dimension = customers(versions, days)
    unit = pl.DataFrame(
        [{"day": d, "customer_id": f"C{c:02d}", "customer_name": f"Customer {c}", "tier": "smb",
          "total_cost": rng.choice([0.0, 0.5, round(rng.random() * 40, 6), round(rng.random() * 40, 6)])}
         for d in days for c in range(15) if rng.random() < 0.9],
        schema={"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String, "tier": pl.String, "total_cost": pl.Float64},
    )  # fmt: skip
    rows = []
    for d in days:
        tenants = [v["tenant_id"] for v in versions] + ["ghost"]
        for tenant in tenants:
            rows += [(tenant, "requests", rng.choice([0, 10, round(rng.random() * 5000, 3)]), d) for _ in range(rng.randrange(0, 3))]
            if rng.random() < 0.5:
                rows.append((tenant, "storage_bytes", rng.random() * 2**34, d))
            if d.day % 2 == 0 and rng.random() < 0.5:
                rows.append((tenant, "transactions", rng.randrange(0, 40), d))
            if rng.random() < 0.3:
                rows.append((tenant, "cpu_seconds", rng.random(), d))  # not a unit metric's
    return {"unit_cost": unit, "tenant_usage": usage(rows), "customer_dimension": dimension}


def _polars(tables: dict[str, pl.DataFrame], days: list[dt.date]) -> pl.DataFrame:
    usage_sums = apply_rollup(tables["tenant_usage"].filter(pl.col("metric").is_in([m.metric for m in METRICS])), USAGE_ROLLUP)
    return customer_unit_costs(tables["unit_cost"], usage_sums, tables["customer_dimension"], METRICS, days)


def _summary(rows: pl.DataFrame) -> pl.DataFrame:
    """The figures the asset's metadata shows, computed by Polars over the rows."""
    return (
        rows.group_by("day", "unit_metric")
        .agg(
            pl.len().alias("row_count"),
            pl.col("cost_per_unit").median().alias("median"),
            pl.col("cost_per_unit").quantile(0.9, interpolation="linear").alias("p90"),
            pl.col("cost_per_unit").is_not_null().sum().alias("customers_with_units"),
        )
        .cast(UNIT_COSTS_SUMMARY_SCHEMA)
        .sort("day", "unit_metric")
    )


def _warehouse(run, dialect: Dialect, table, days: list[dt.date]) -> tuple[pl.DataFrame, pl.DataFrame]:
    statement = customer_unit_costs_sql(days, METRICS, table, dialect)
    rows = run(statement).cast(CUSTOMER_UNIT_COSTS_SCHEMA).sort(SORT)
    summary = run(unit_costs_summary_sql(statement, dialect)).cast(UNIT_COSTS_SUMMARY_SCHEMA).sort("day", "unit_metric")
    return rows, summary


def _same(rows: pl.DataFrame, summary: pl.DataFrame, expected: pl.DataFrame) -> None:
    assert_frame_equal(rows, expected, check_exact=False, rel_tol=1e-12)
    assert_frame_equal(summary, _summary(expected), check_exact=False, rel_tol=1e-12)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("days", RUNS.values(), ids=RUNS.keys())
def test_duckdb_computes_what_polars_computes(seed, days):
    tables = _tables(seed)
    expected = _polars(tables, days)
    rows, summary = _warehouse(duckdb_tables(tables), DUCKDB, lambda t: f"unitcost.{t}", days)
    _same(rows, summary, expected)
    # Every case above occurs: units null (tokens, transactions on odd days), zero (a customer
    # without requests that day), a change over 7 days and none (D-1 against the missing day).
    assert set(expected["day"]) == set(days)
    assert expected.filter(pl.col("unit_metric") == "per_token")["units"].null_count() == expected.height // len(METRICS)
    assert (expected["units"] == 0).any() and expected["cost_per_unit_7d_change"].is_not_null().any()
    if D - dt.timedelta(days=1) in days:  # an odd day: no transactions reported
        assert expected.filter(pl.col("unit_metric") == "per_transaction")["units"].is_null().any()
        assert expected.filter(pl.col("day") == D - dt.timedelta(days=1))["cost_per_unit_7d_change"].is_null().all()


def test_snowflake_computes_what_polars_computes():
    tables, days = _tables(2), RUNS["range"]
    with fake_snowflake_tables(tables) as run:
        rows, summary = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}", days)
    _same(rows, summary, _polars(tables, days))
