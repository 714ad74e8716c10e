"""cost_anomalies' units per customer and day summed by the warehouse (CUSTOMER_UNITS_QUERY): the
tenants' sums of the unit metric (usage_rollup) joined to customer_dimension's tenants of the same
days, against the Polars twin `customer_units`, on DuckDB and on Snowflake (fakesnow), with the
statements the IO managers build (the rollup over tenant_usage, then the follow-up query reading
customer_dimension's table)."""

import datetime as dt

import polars as pl
import pytest
from dagster._core.storage.db_io_manager import TableSlice
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.defs.rollup import follow_up_of, rollup_statement
from unitcost_platform.transforms.anomalies import (
    CUSTOMER_UNITS_SCHEMA,
    CUSTOMER_UNITS_THEN,
    customer_units,
    usage_rollup,
)
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import (
    duckdb_tables,
    fake_snowflake_tables,
    random_tenant_usage,
)

D1, D2, D3 = dt.date(2026, 3, 1), dt.date(2026, 3, 2), dt.date(2026, 3, 3)
CUSTOMERS = {"snapshot_date": pl.Date, "tenant_id": pl.String, "customer_id": pl.String, "status": pl.String}


def _usage(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame([(*r, "files") for r in rows], schema=USAGE_SCHEMA, orient="row")


# C1 has two tenants on D1; t2 moves to C2 on D2; t3 has storage only (units 0); t4 has no customer;
# customer_dimension holds t1 twice on D1 (two versions of a day: counted once), and D3, a day with no usage.
USAGE = _usage([
    (D1, "t1", "api", "requests", 10.0), (D1, "t1", "web", "requests", 5.0), (D1, "t1", "db", "storage_bytes", 100.0),
    (D1, "t2", "api", "requests", 3.0), (D1, "t3", "db", "storage_bytes", 50.0), (D1, "t4", "api", "requests", 8.0),
    (D2, "t1", "api", "requests", 7.0), (D2, "t2", "api", "requests", 4.0), (D2, "t3", "db", "storage_bytes", 60.0),
])  # fmt: skip
DIMENSION = pl.DataFrame([
    (D1, "t1", "C1", "active"), (D1, "t1", "C1", "active"), (D1, "t2", "C1", "active"), (D1, "t3", "C2", "active"),
    (D2, "t1", "C1", "active"), (D2, "t2", "C2", "active"), (D2, "t3", "C2", "churned"),
    (D3, "t1", "C1", "active"), (D3, "t2", "C9", "active"),
], schema=CUSTOMERS, orient="row")  # fmt: skip
# Worked out by hand: D1 C1 = 10 + 5 + 3, C2 = t3's 0 requests; D2 C1 = 7, C2 = 4 + 0; t4 is nobody's.
EXPECTED = pl.DataFrame(
    [(D1, "C1", 18.0), (D1, "C2", 0.0), (D2, "C1", 7.0), (D2, "C2", 4.0)], schema=CUSTOMER_UNITS_SCHEMA, orient="row"
)


def _warehouse(run, dialect: Dialect, table, metric: str = "requests", where: str = "") -> pl.DataFrame:
    """The asset's read of tenant_usage: usage_rollup, then the follow-up query (`run(sql)` -> frame);
    `where`: which of the table's rows the input's partitions select."""
    rollup = {**usage_rollup(metric), "then": CUSTOMER_UNITS_THEN}

    def select(table_slice: TableSlice) -> str:
        return f"select {', '.join(table_slice.columns)} from {table('tenant_usage')} {where}"

    statement = rollup_statement(TableSlice(table="tenant_usage", schema="unitcost"), rollup, select, dialect)
    sql = follow_up_of(rollup).statement(statement, dict(rollup["then"]), UnitcostConfig(), table, dialect)
    return run(sql).cast(CUSTOMER_UNITS_SCHEMA).sort("day", "customer_id")


def _polars(usage: pl.DataFrame, dimension: pl.DataFrame, metric: str = "requests") -> pl.DataFrame:
    return customer_units(apply_rollup(usage, usage_rollup(metric)), dimension).select(list(CUSTOMER_UNITS_SCHEMA)).sort("day", "customer_id")


def _random(seed: int = 5) -> tuple[pl.DataFrame, pl.DataFrame]:
    return random_tenant_usage(seed, D1)


def test_duckdb_sums_units_per_customer_of_the_day():
    run = duckdb_tables({"tenant_usage": USAGE, "customer_dimension": DIMENSION})
    found = _warehouse(run, DUCKDB, lambda t: f"unitcost.{t}")
    assert_frame_equal(found, EXPECTED)
    assert_frame_equal(_polars(USAGE, DIMENSION), EXPECTED)  # the twin, by the same hand
    usage, dimension = _random()
    run = duckdb_tables({"tenant_usage": usage, "customer_dimension": dimension})
    for metric in ("requests", "sessions"):
        expected = _polars(usage, dimension, metric)
        assert expected.height > 400
        assert_frame_equal(_warehouse(run, DUCKDB, lambda t: f"unitcost.{t}", metric), expected, rel_tol=1e-12)


def test_snowflake_sums_units_per_customer_of_the_day():
    usage, dimension = _random(8)
    with fake_snowflake_tables({"tenant_usage": USAGE, "customer_dimension": DIMENSION}) as run:
        found = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}")
    assert_frame_equal(found, EXPECTED)
    with fake_snowflake_tables({"tenant_usage": usage, "customer_dimension": dimension}) as run:
        found = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}")
    assert_frame_equal(found, _polars(usage, dimension), rel_tol=1e-12)


@pytest.mark.parametrize("dialect", [DUCKDB, SNOWFLAKE], ids=["duckdb", "snowflake"])
def test_days_without_usage_read_no_customers(dialect):
    """The input's days hold no usage (D3 has customers only): nothing, in the query's columns."""
    tables = {"tenant_usage": USAGE, "customer_dimension": DIMENSION}
    where = f"where usage_date = {dialect.date(D3.isoformat())}"
    if dialect is DUCKDB:
        found = _warehouse(duckdb_tables(tables), DUCKDB, lambda t: f"unitcost.{t}", where=where)
    else:
        with fake_snowflake_tables(tables) as run:
            found = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}", where=where)
    assert found.is_empty() and found.schema == EXPECTED.schema
