"""service_unit_cost from the warehouse (SERVICE_MONTH_QUERY) against its Polars path.

A daily run reads allocated_cost's 30-day window reduced by the warehouse to a few rows per service
(figures, percentiles over the active customers with zeros, top customers); the Polars path computes
the same table from the window's service x customer sums. Both run here on the same rows: the
warehouse path as the IO managers build it (the rollup's statement, then the follow-up query, with
customer_dimension read from its table), on DuckDB and on Snowflake (fakesnow), and must give the
same table, column by column.

The data: 40 days of allocated_cost for 60 customers (some with two tenants' rows, some churned or
on trial, in three tiers and two segments, onboarded on different days), 6 services, costs that are
negative, zero or equal between customers, rows on no customer and rows of customers the dimension
does not know; the day D and D-7 evaluated, with and without a scope. A hand-built service checks
the top customers' ranking by the cents shown, rounded half to even as Polars rounds.
"""

import datetime as dt
import random

import polars as pl
import pytest
from dagster._core.storage.db_io_manager import TableSlice
from polars.testing import assert_frame_equal

from unitcost_platform.config import OwnersConfig, ScopeConfig, TargetsConfig, UnitcostConfig
from unitcost_platform.contracts.customers import CUSTOMER_DIMENSION_SCHEMA
from unitcost_platform.defs.rollup import follow_up_of, rollup_statement
from unitcost_platform.transforms.customer_cost import apply_rollup, window_spec
from unitcost_platform.transforms.customers import customer_dimension
from unitcost_platform.transforms.service_unit_cost import (
    ACTIVE_IN_SCOPE_QUERY,
    ON_END,
    SERVICE_CUSTOMER_ROLLUP,
    SERVICE_MONTH_SCHEMA,
    ServiceMonthReader,
    active_in_scope,
    service_month_spec,
    service_unit_cost,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import customer_versions, duckdb_tables, fake_snowflake_tables

D = dt.date(2026, 3, 10)
DAYS = [D - dt.timedelta(days=i) for i in range(40)][::-1]
OWNERS = OwnersConfig(services={"Amazon EC2": "compute", "Amazon RDS": "data"})
TARGETS = TargetsConfig(services={"Amazon EC2": 0.5}, teams={"data": 2.0})
SERVICES = ["Amazon EC2", "Amazon RDS", "Amazon S3", "NAT Gateway", "Lambda", "Quiet"]
SCOPE = ScopeConfig(tiers=["Enterprise", "smb"], segments=["north"], onboarded_since=dt.date(2025, 6, 1))


def _customers() -> pl.DataFrame:
    rng = random.Random(3)
    rows = []
    for i in range(60):
        base = {
            "customer_id": f"C{i:02d}", "customer_name": None if i % 11 == 0 else f"Customer {i}",
            "tier": rng.choice(["enterprise", "smb", "trial"]), "segment": rng.choice(["north", "south"]),
            "status": rng.choice(["active"] * 5 + ["churned"]),
            "valid_from": rng.choice([dt.date(2025, 1, 1), dt.date(2025, 9, 1), D - dt.timedelta(days=3)]),
        }  # fmt: skip
        rows.append(base)
        if i % 7 == 0:  # a second tenant of the same customer: two dimension rows
            rows.append({**base, "tenant_id": f"c{i:02d}-eu"})
    return customer_dimension(customer_versions(rows), [D, D - dt.timedelta(days=7)], ["trial", "free"])


def _allocated() -> pl.DataFrame:
    """allocated_cost rows of every day, at the grain the warehouse table has (several rows per key)."""
    rng = random.Random(5)
    rows = []
    for day in DAYS:
        for service in SERVICES[:-1]:
            for c in rng.sample(range(64), 25):  # C60..C63 are unknown to the dimension
                cost = rng.choice([0.0, -0.25, round(rng.lognormvariate(0, 1), 6), 0.75])
                rows.append((day, f"C{c:02d}", service, None, cost))
            rows.append((day, None, service, "unknown_tenant", round(rng.random(), 4)))
            rows.append((day, "C70", service, "unknown_customer", 0.5))
        rows.append((day, "C01", "Amazon EC2", None, 1.0))  # a second row of the same key
    rows.append((D - dt.timedelta(days=35), "C02", "Quiet", None, 3.0))  # outside D's window, in D-7's
    rows.append((D - dt.timedelta(days=20), "C70", "Quiet", "unknown_customer", 3.0))  # on no customer, in D's
    return pl.DataFrame(
        rows, orient="row",
        schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String,
                "unallocated_reason": pl.String, "allocated_cost": pl.Float64},
    )  # fmt: skip


@pytest.fixture(scope="module")
def allocated() -> pl.DataFrame:
    return _allocated()


@pytest.fixture(scope="module")
def dimension() -> pl.DataFrame:
    return _customers()


def _warehouse_reader(run, dialect: Dialect, cfg: UnitcostConfig, table) -> ServiceMonthReader:
    """The reader the asset builds, with the statements the IO managers run (`run(sql)` -> frame)."""
    allocated_slice = TableSlice(table="allocated_cost", schema="unitcost")

    def select(table_slice: TableSlice) -> str:
        return f"select {', '.join(table_slice.columns)} from {table('allocated_cost')}"

    def service_month(end: dt.date, days: list[dt.date]) -> pl.DataFrame:
        spec = service_month_spec(end, days)
        rollup = {**SERVICE_CUSTOMER_ROLLUP, "windows": window_spec("day", {end: days}, ON_END), "then": spec}
        query = follow_up_of(rollup)
        statement = query.statement(rollup_statement(allocated_slice, rollup, select, dialect), spec, cfg, table, dialect)
        return run(statement).cast(SERVICE_MONTH_SCHEMA)

    def active_customers(days: list[dt.date]) -> pl.DataFrame:
        wanted = ", ".join(dialect.date(d.isoformat()) for d in days)
        rows = f"select {', '.join(ACTIVE_IN_SCOPE_QUERY.columns)} from {table('customer_dimension')} where snapshot_date in ({wanted})"
        return run(ACTIVE_IN_SCOPE_QUERY.statement(rows, cfg, dialect)).cast(ACTIVE_IN_SCOPE_QUERY.schema)

    return ServiceMonthReader(
        service_month, rows=lambda windows: pytest.fail("a daily run reads no rows"), active_customers=active_customers
    )


def _both(allocated: pl.DataFrame, dimension: pl.DataFrame, reader: ServiceMonthReader, scope: ScopeConfig | None):
    days = [D]
    polars = service_unit_cost(apply_rollup(allocated, SERVICE_CUSTOMER_ROLLUP), set(DAYS), dimension, days, OWNERS, TARGETS, scope)
    # The warehouse counts the active customers: the dimension's rows are not read.
    customers = lambda: pytest.fail("a daily run from the warehouse reads no customer rows")  # noqa: E731
    warehouse = service_unit_cost(reader, set(DAYS), customers, days, OWNERS, TARGETS, scope)
    # The counts themselves: the warehouse's against the Polars twin's, for D and D-7.
    week = [D - dt.timedelta(days=7), D]
    counted = reader.active_customers(week).sort("day")
    assert counted.height == 2 and counted.equals(active_in_scope(dimension.filter(pl.col("snapshot_date").is_in(week)), scope).sort("day"))
    return polars, warehouse


def _same(polars: pl.DataFrame, warehouse: pl.DataFrame) -> None:
    assert polars.height == warehouse.height == len(SERVICES)
    assert_frame_equal(warehouse, polars, check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("scope", [None, SCOPE], ids=["every customer", "scoped"])
def test_duckdb_gives_the_polars_table(allocated, dimension, scope):
    cfg = UnitcostConfig.model_validate({"scope": scope.model_dump() if scope else None})
    run = duckdb_tables({"allocated_cost": allocated, "customer_dimension": dimension})
    reader = _warehouse_reader(run, DUCKDB, cfg, lambda t: f"unitcost.{t}")
    polars, warehouse = _both(allocated, dimension, reader, scope)
    _same(polars, warehouse)
    ec2 = polars.filter(pl.col("service_name") == "Amazon EC2").row(0, named=True)
    assert ec2["p50_customer_month"] is not None and ec2["top_customers"].count("/month") == 3
    quiet = polars.filter(pl.col("service_name") == "Quiet").row(0, named=True)  # no customer's cost in D's window
    assert quiet["cost"] == 0 and quiet["cost_per_customer_month"] == 0 and quiet["p90_customer_month"] == 0
    assert (quiet["cost_per_customer_month_7d_ago"] > 0) == (scope is None)  # C02 is out of the scope


def test_snowflake_gives_the_polars_table(allocated, dimension):
    cfg = UnitcostConfig.model_validate({"scope": SCOPE.model_dump()})
    tables = {"allocated_cost": allocated, "customer_dimension": dimension.select(list(CUSTOMER_DIMENSION_SCHEMA))}
    with fake_snowflake_tables(tables) as run:
        reader = _warehouse_reader(run, SNOWFLAKE, cfg, lambda t: f"ANALYTICS.UNITCOST.{t}")
        polars, warehouse = _both(allocated, dimension, reader, SCOPE)
    _same(polars, warehouse)


def test_top_customers_are_ranked_by_the_cents_shown_rounded_half_to_even():
    """Over a 30-day window of 30 days, a customer's monthly cost is its window's cost. A's $1.125 is
    shown $1.12 (half to even), so B's $1.13 takes the third place; rounded half away from zero, both
    would show $1.13 and A would take it by id. The warehouse chooses the three, so it must round as
    Polars does."""
    days = [D - dt.timedelta(days=i) for i in range(30)]
    costs = {"A": 1.125, "B": 1.13, "X": 5.0, "Y": 4.0}
    allocated = pl.DataFrame(
        [(D, c, "Ties", None, v) for c, v in costs.items()], orient="row",
        schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String,
                "unallocated_reason": pl.String, "allocated_cost": pl.Float64},
    )  # fmt: skip
    dimension = customer_dimension(
        customer_versions([{"customer_id": c, "customer_name": f"Customer {c}"} for c in costs]), [D], ["trial"]
    )
    run = duckdb_tables({"allocated_cost": allocated, "customer_dimension": dimension})
    reader = _warehouse_reader(run, DUCKDB, UnitcostConfig(), lambda t: f"unitcost.{t}")
    for source in (apply_rollup(allocated, SERVICE_CUSTOMER_ROLLUP), reader):
        out = service_unit_cost(source, set(days), dimension, [D], OWNERS, TARGETS)
        ties = out.row(0, named=True)
        assert ties["top_customers"] == "Customer X $5.00/month; Customer Y $4.00/month; Customer B $1.13/month"
        # Four active customers: 1.125, 1.13, 4 and 5; the median is (1.13 + 4) / 2, p90 4 + 0.7 x (5 - 4).
        assert ties["p50_customer_month"] == pytest.approx(2.565)
        assert ties["p90_customer_month"] == pytest.approx(4.7)
        assert ties["max_customer_month"] == 5.0
