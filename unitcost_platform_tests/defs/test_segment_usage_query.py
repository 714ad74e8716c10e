"""segment_economics' usage per group summed by the warehouse (SEGMENT_USAGE_QUERY): the tenants'
sums (USAGE_ROLLUP) joined to customer_dimension's tenants and unit_cost's active customers of the
same days, summed per tier, segment and paying group, against the Polars twin `segment_usage`, on
DuckDB and on Snowflake (fakesnow), with the statements the IO managers build."""

import datetime as dt
import random

import polars as pl
from dagster._core.storage.db_io_manager import TableSlice
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.defs.rollup import follow_up_of, rollup_statement
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.transforms.segments import (
    SEGMENT_USAGE_SCHEMA,
    SEGMENT_USAGE_THEN,
    USAGE_ROLLUP,
    segment_economics,
    segment_usage,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import (
    duckdb_tables,
    fake_snowflake_tables,
    random_tenant_usage,
)

D1, D2 = dt.date(2026, 3, 1), dt.date(2026, 3, 2)
CUSTOMERS = {"snapshot_date": pl.Date, "tenant_id": pl.String, "customer_id": pl.String}
UNIT_COST = {"day": pl.Date, "customer_id": pl.String, "tier": pl.String, "segment": pl.String, "is_paying": pl.Boolean,
             "status": pl.String, "mrr": pl.Float64, "total_cost": pl.Float64, "monthly_run_rate": pl.Float64}  # fmt: skip


def _usage(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame([(*r, "files") for r in rows], schema=USAGE_SCHEMA, orient="row")


# D1: C1 (smb, paying) owns t1 and t2, C2 (free, no segment, not paying) t3, C3 is churned (t4), t5 is
# nobody's. D2: t2 moves to C2; C1 has no usage at all.
USAGE = _usage([
    (D1, "t1", "api", "requests", 10.0), (D1, "t1", "web", "requests", 5.0), (D1, "t2", "api", "requests", 3.0),
    (D1, "t1", "db", "storage_bytes", 100.0), (D1, "t3", "api", "requests", 4.0), (D1, "t4", "api", "requests", 50.0),
    (D1, "t5", "api", "requests", 8.0),
    (D2, "t2", "api", "requests", 6.0), (D2, "t3", "db", "storage_bytes", 7.0),
])  # fmt: skip
DIMENSION = pl.DataFrame([
    (D1, "t1", "C1"), (D1, "t1", "C1"), (D1, "t2", "C1"), (D1, "t3", "C2"), (D1, "t4", "C3"),
    (D2, "t1", "C1"), (D2, "t2", "C2"), (D2, "t3", "C2"), (D2, "t4", "C3"),
], schema=CUSTOMERS, orient="row")  # fmt: skip
POPULATION = pl.DataFrame([
    (D1, "C1", "smb", "emea", True, "active", 900.0, 5.0, 150.0), (D1, "C2", "free", None, False, "active", 0.0, 1.0, 30.0),
    (D1, "C3", "smb", "emea", True, "churned", 0.0, 0.0, 0.0),
    (D2, "C1", "smb", "emea", True, "active", 900.0, 5.0, 150.0), (D2, "C2", "free", None, False, "active", 0.0, 1.0, 30.0),
], schema=UNIT_COST, orient="row")  # fmt: skip
# By hand: D1 C1 requests 10 + 5 + 3 = 18, storage 100; C2 requests 4; C3 churned and t5 nobody's: not counted.
# D2 C2 requests 6 (t2 now its), storage 7; C1 nothing.
EXPECTED = pl.DataFrame([
    (D1, "paying", "non_paying", "requests", 4.0), (D1, "paying", "paying", "requests", 18.0),
    (D1, "paying", "paying", "storage_bytes", 100.0),
    (D1, "segment", "emea", "requests", 18.0), (D1, "segment", "emea", "storage_bytes", 100.0),
    (D1, "segment", "unspecified", "requests", 4.0),
    (D1, "tier", "free", "requests", 4.0), (D1, "tier", "smb", "requests", 18.0), (D1, "tier", "smb", "storage_bytes", 100.0),
    (D2, "paying", "non_paying", "requests", 6.0), (D2, "paying", "non_paying", "storage_bytes", 7.0),
    (D2, "segment", "unspecified", "requests", 6.0), (D2, "segment", "unspecified", "storage_bytes", 7.0),
    (D2, "tier", "free", "requests", 6.0), (D2, "tier", "free", "storage_bytes", 7.0),
], schema=SEGMENT_USAGE_SCHEMA, orient="row")  # fmt: skip
ORDER = ["day", "dimension", "group_name", "metric"]


def _warehouse(run, dialect: Dialect, table) -> pl.DataFrame:
    """The asset's read of tenant_usage: USAGE_ROLLUP, then the follow-up query (`run(sql)` -> frame)."""
    rollup = {**USAGE_ROLLUP, "then": SEGMENT_USAGE_THEN}

    def select(table_slice: TableSlice) -> str:
        return f"select {', '.join(table_slice.columns)} from {table('tenant_usage')}"

    statement = rollup_statement(TableSlice(table="tenant_usage", schema="unitcost"), rollup, select, dialect)
    sql = follow_up_of(rollup).statement(statement, dict(rollup["then"]), UnitcostConfig(), table, dialect)
    return run(sql).cast(SEGMENT_USAGE_SCHEMA).sort(ORDER)


def _polars(usage: pl.DataFrame, dimension: pl.DataFrame, population: pl.DataFrame) -> pl.DataFrame:
    days = sorted(set(population["day"]))
    return segment_usage(population, apply_rollup(usage, USAGE_ROLLUP), dimension, days).sort(ORDER)


def _random(seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """10 days of random_tenant_usage, and a population of its 25 customers each day: 3 tiers (one
    unspecified), a segment or none, paying, not or unknown, some churned."""
    usage, dimension = random_tenant_usage(seed, D1, days=10)
    rng = random.Random(seed)
    population = [
        (day, f"C{c:02d}", rng.choice(["smb", "mid", None]), rng.choice(["a", None]), rng.choice([True, False, None]),
         rng.choice(["active"] * 4 + ["churned"]), 100.0, 1.0, 30.0)
        for day in sorted(set(dimension["snapshot_date"])) for c in range(25)
    ]  # fmt: skip
    return usage, dimension.drop("status"), pl.DataFrame(population, schema=UNIT_COST, orient="row")


def test_duckdb_sums_usage_per_group_of_the_day():
    run = duckdb_tables({"tenant_usage": USAGE, "customer_dimension": DIMENSION, "unit_cost": POPULATION})
    assert_frame_equal(_warehouse(run, DUCKDB, lambda t: f"unitcost.{t}"), EXPECTED)
    assert_frame_equal(_polars(USAGE, DIMENSION, POPULATION), EXPECTED)  # the twin, by the same hand
    usage, dimension, population = _random(3)
    run = duckdb_tables({"tenant_usage": usage, "customer_dimension": dimension, "unit_cost": population})
    expected = _polars(usage, dimension, population)
    assert expected.height > 200
    assert_frame_equal(_warehouse(run, DUCKDB, lambda t: f"unitcost.{t}"), expected, rel_tol=1e-12)


def test_snowflake_sums_usage_per_group_of_the_day():
    tables = {"tenant_usage": USAGE, "customer_dimension": DIMENSION, "unit_cost": POPULATION}
    with fake_snowflake_tables(tables) as run:
        assert_frame_equal(_warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}"), EXPECTED)
    usage, dimension, population = _random(4)
    with fake_snowflake_tables({"tenant_usage": usage, "customer_dimension": dimension, "unit_cost": population}) as run:
        found = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}")
    assert_frame_equal(found, _polars(usage, dimension, population), rel_tol=1e-12)


def test_segment_economics_from_the_groups_equals_it_from_the_tenants():
    usage, dimension, population = _random(5)
    days = sorted(set(population["day"]))
    from_tenants = segment_economics(population, apply_rollup(usage, USAGE_ROLLUP), dimension, days)
    from_groups = segment_economics(population, _polars(usage, dimension, population), None, days)
    assert from_tenants.height == 10 * 7 * 3  # days x (3 tiers, 2 segments, 2 paying groups) x metrics
    assert_frame_equal(from_groups, from_tenants)
