"""The warehouse-side aggregates of raw_billing (warehouse_sql.py) against their Polars twins.

Each named query runs as the IO managers run it: on DuckDB over a table of line items, and on
Snowflake (fakesnow) over the same rows written through `write_pandas`. The Polars twins compute the
same sums from the frame of line items, independently (Polars expressions, not SQL); tag coverage and
allocation computed from either are the same tables. The line items exercise every pool rule (all,
category, name, provider, resource pattern, tag), a direct-cost scope, shared-by-design and idle
pools, blank and padded tag values, and Tags that are null.
"""

import datetime as dt
import json
import random

import duckdb
import fakesnow
import polars as pl
import pytest
import snowflake.connector
import snowflake.connector.pandas_tools
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.focus import RAW_BILLING_SCHEMA, conform
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.defs.rollup import queries
from unitcost_platform.transforms.allocation import allocate, allocation_items
from unitcost_platform.transforms.coverage import coverage_items, tag_coverage
from unitcost_platform.transforms.products import PRODUCT_TAG, product_of_line_items
from unitcost_platform.transforms.team_spend import team_items, team_spend
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables

DAYS = [dt.date(2026, 3, 1), dt.date(2026, 3, 2)]

CONFIG = UnitcostConfig.model_validate({
    "pools": [
        {"name": "nat", "match": {"resource_id_pattern": r"nat-gateway/nat-\d"}, "driver": "requests", "shared_by_design": True},
        {"name": "eks_idle", "match": {"tags": {"unitcost:idle": "true"}}, "idle": "separate"},
        {"name": "lb", "match": {"service_name": ["Elastic Load Balancing"], "provider": ["AWS"]}, "driver": "flat",
         "shared_by_design": True},
        {"name": "db", "match": {"service_category": ["Databases"]}, "driver": "direct_cost",
         "direct_cost_scope": {"service_category": ["Databases", "Storage"]}},
        {"name": "rest", "match": {"all": True}, "driver": "storage_bytes"},
    ],
    "owners": {"team_tag_keys": ["team", "owner"], "services": {"Amazon S3": "storage-team"}},
    "products": {"tag_keys": ["product", "app"], "services": {"Amazon RDS": "core-db"}},
})  # fmt: skip

SERVICES = [
    ("Amazon EC2", "Compute", "AWS"), ("Amazon RDS", "Databases", "AWS"), ("Amazon S3", "Storage", "AWS"),
    ("Elastic Load Balancing", "Networking", "AWS"), ("Azure SQL Database", "Databases", "Microsoft"),
    ("Virtual Machines", "Compute", "Microsoft"), ("Amazon VPC", "Networking", "AWS"),
]  # fmt: skip


def line_items(n: int = 3000, seed: int = 7) -> pl.DataFrame:
    rng = random.Random(seed)
    rows = []
    for i in range(n):
        service, category, provider = rng.choice(SERVICES)
        tags: dict[str, str] = {}
        if rng.random() < 0.7:
            tags["tenant_id"] = f"t{rng.randrange(40)}"
        if rng.random() < 0.5:
            tags[rng.choice(["team", "owner"])] = rng.choice(["payments", " search ", "   ", "ml"])
        if rng.random() < 0.4:
            tags[rng.choice(["product", "app"])] = rng.choice(["checkout", "search", " ", "\u00a0api\u00a0"])
        if rng.random() < 0.05:
            tags["unitcost:idle"] = "true"
        resource = rng.choice([f"arn:aws:ec2:us-east-1:1:nat-gateway/nat-{i % 9}", f"i-{rng.randrange(200)}", None])
        cost = round(rng.lognormvariate(-1, 1.5), 6)
        rows.append({
            "x_ChargeDate": rng.choice(DAYS), "ServiceName": service, "ServiceCategory": category,
            "ProviderName": provider, "SubAccountId": rng.choice(["111", "222", None]), "ResourceId": resource,
            "Tags": None if rng.random() < 0.05 else json.dumps(tags),
            "x_TenantId": tags.get("tenant_id"), "BilledCost": cost, "EffectiveCost": round(cost * 0.9, 6),
        })  # fmt: skip
    return conform(pl.DataFrame(rows, schema_overrides={"x_ChargeDate": pl.Date, "ResourceId": pl.String}))


@pytest.fixture(scope="module")
def billing() -> pl.DataFrame:
    return line_items()


def run_duckdb(billing: pl.DataFrame, name: str, cfg: UnitcostConfig = CONFIG) -> pl.DataFrame:
    query = queries()[name]
    con = duckdb.connect()
    con.register("raw_billing", billing.to_arrow())
    rows = f"select {', '.join(query.columns)} from raw_billing"
    return pl.from_arrow(con.sql(query.statement(rows, cfg, DUCKDB)).to_arrow_table()).cast(query.schema)


def ordered(frame: pl.DataFrame) -> pl.DataFrame:
    keys = [c for c, t in frame.schema.items() if t != pl.Float64]
    return frame.sort(keys, nulls_last=True)


def same(a: pl.DataFrame, b: pl.DataFrame) -> None:
    assert_frame_equal(ordered(a), ordered(b.select(a.columns)), check_exact=False, rel_tol=1e-9, abs_tol=1e-9)


def test_allocation_items_are_the_polars_sums(billing):
    warehouse = run_duckdb(billing, "allocation_items")
    same(warehouse, allocation_items(billing, CONFIG.resolved_pools(), CONFIG.cost_column))
    # Every pool took something, and the direct-cost scope marked tagged Databases and Storage rows.
    assert set(warehouse["pool"].drop_nulls()) == {"direct", "nat", "eks_idle", "lb", "db", "rest"}
    scoped = warehouse.filter(pl.col("direct_scopes") == "|db|")
    assert scoped.height and scoped["tenant_id"].null_count() == 0


def test_allocation_from_the_warehouse_sums_equals_allocation_from_line_items(billing):
    usage = pl.DataFrame({
        "usage_date": [d for d in DAYS for _ in range(40)], "tenant_id": [f"t{i}" for _ in DAYS for i in range(40)],
        "service_name": [None] * 80, "metric": ["requests"] * 80, "value": [float(i + 1) for _ in DAYS for i in range(40)],
    }).vstack(pl.DataFrame({
        "usage_date": [d for d in DAYS for _ in range(40)], "tenant_id": [f"t{i}" for _ in DAYS for i in range(40)],
        "service_name": [None] * 80, "metric": ["storage_bytes"] * 80, "value": [float(100 - i) for _ in DAYS for i in range(40)],
    }))  # fmt: skip
    customers = pl.DataFrame({
        "snapshot_date": [d for d in DAYS for _ in range(40)], "tenant_id": [f"t{i}" for _ in DAYS for i in range(40)],
        "customer_id": [f"C{i // 2}" for _ in DAYS for i in range(40)], "status": ["active"] * 80,
    })  # fmt: skip
    pools = CONFIG.resolved_pools()
    from_warehouse = allocate(run_duckdb(billing, "allocation_items"), usage, customers, DAYS, pools, CONFIG.cost_column)
    from_items = allocate(billing, usage, customers, DAYS, pools, CONFIG.cost_column)
    same(from_warehouse, from_items)
    assert from_items["allocated_cost"].sum() == pytest.approx(billing["EffectiveCost"].sum(), abs=1e-9)


def test_tag_coverage_from_the_warehouse_keeps_only_the_largest_resources_and_equals_line_items(billing):
    warehouse = run_duckdb(billing, "coverage_items")
    complete = coverage_items(billing, CONFIG.resolved_pools(), CONFIG.cost_column)
    resources = lambda f: f.filter(pl.col("resource_row"))  # noqa: E731
    assert 0 < resources(warehouse).height < resources(complete).height
    same(warehouse.filter(~pl.col("resource_row")), complete.filter(~pl.col("resource_row")))
    pools = CONFIG.resolved_pools()
    same(tag_coverage(warehouse, DAYS, pools, CONFIG.cost_column), tag_coverage(billing, DAYS, pools, CONFIG.cost_column))


def test_team_and_product_sums_choose_the_same_tags(billing):
    teams = run_duckdb(billing, "team_items")
    same(teams, team_items(billing, CONFIG.owners, CONFIG.cost_column))
    assert set(teams["tag_team"].drop_nulls()) == {"payments", "search", "ml"}  # trimmed, blanks are no team
    assert_frame_equal(
        team_spend(teams, DAYS, CONFIG.owners, CONFIG.cost_column), team_spend(billing, DAYS, CONFIG.owners, CONFIG.cost_column),
        check_exact=False, rel_tol=1e-9,
    )  # fmt: skip
    products = run_duckdb(billing, "product_items")
    assert set(products[PRODUCT_TAG].drop_nulls()) == {"checkout", "search", "api"}
    mine = product_of_line_items(products, CONFIG.products).group_by("x_ChargeDate", "product").agg(pl.col(CONFIG.cost_column).sum())
    theirs = product_of_line_items(billing, CONFIG.products).group_by("x_ChargeDate", "product").agg(pl.col(CONFIG.cost_column).sum())
    same(mine, theirs)


def run_snowflake(billing: pl.DataFrame, name: str, cfg: UnitcostConfig = CONFIG) -> pl.DataFrame:
    query = queries()[name]
    with fakesnow.patch():
        con = snowflake.connector.connect(account="acme-test", user="x", password="y", database="ANALYTICS")
        cur = con.cursor()
        cur.execute("create schema if not exists ANALYTICS.UNITCOST")
        columns = ", ".join(f"{c} {'DATE' if c == 'x_ChargeDate' else 'FLOAT' if t == pl.Float64 else 'VARCHAR'}"
                            for c, t in RAW_BILLING_SCHEMA.items() if c in query.columns)  # fmt: skip
        cur.execute(f"create or replace table ANALYTICS.UNITCOST.RAW_BILLING ({columns})")
        frame = billing.select(query.columns).to_pandas()
        frame.columns = [c.upper() for c in frame.columns]
        snowflake.connector.pandas_tools.write_pandas(
            con, frame, "RAW_BILLING", database="ANALYTICS", schema="UNITCOST", quote_identifiers=False,
            use_logical_type=True,
        )  # fmt: skip
        rows = f"select {', '.join(query.columns)} from ANALYTICS.UNITCOST.RAW_BILLING"
        cur.execute(query.statement(rows, cfg, SNOWFLAKE))
        result = pl.from_pandas(cur.fetch_pandas_all())
        con.close()
    by_upper = {c.upper(): c for c in query.schema}
    return result.rename({c: by_upper[c.upper()] for c in result.columns}).cast(query.schema)


@pytest.mark.parametrize("name", ["allocation_items", "coverage_items", "team_items", "product_items"])
def test_snowflake_returns_what_duckdb_returns(billing, name):
    same(run_snowflake(billing, name), run_duckdb(billing, name))


def test_allocation_items_without_direct_cost_scopes_on_both_engines(billing):
    """The default pools (the bench's, and a new user's) have no direct-cost scope: both engines return
    the Polars sums, one row per day, service, tenant and pool, with empty scopes."""
    cfg = UnitcostConfig()
    assert not any(p.direct_cost_scope for p in cfg.resolved_pools())
    polars = allocation_items(billing, cfg.resolved_pools(), cfg.cost_column)
    duck = run_duckdb(billing, "allocation_items", cfg)
    same(duck, polars)
    same(run_snowflake(billing, "allocation_items", cfg), duck)
    assert (duck["direct_scopes"] == "").all()
    assert duck.select("day", "service_name", "tenant_id", "pool").n_unique() == duck.height
    # The fixture's categories are Compute, Networking, Databases and Storage: no "other" pool.
    assert set(duck["pool"].drop_nulls()) == {"direct", "default_compute_networking", "default_data"}


# tenant_usage of two days: the pools' metrics (requests, storage_bytes), others no pool splits by,
# a metric name that needs quoting, and a service-scoped row.
USAGE = pl.DataFrame(
    [(d, f"t{i % 7}", "api" if i % 5 == 0 else None, metric, float(i + 1), "test")
     for d in DAYS for i, metric in enumerate(["requests", "storage_bytes", "tokens", "it's", "active_sessions"] * 6)],
    schema=USAGE_SCHEMA, orient="row",
)  # fmt: skip


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_usage_queries_read_the_metrics_their_step_uses_and_allocation_is_unchanged(engine):
    """allocated_cost reads the usage of its pools' metrics, unit_cost the requests: the same rows as
    the table's of those metrics, on DuckDB and Snowflake; a config whose pools split by no metric
    reads none; allocation from the fewer rows equals allocation from all of them."""
    flat = UnitcostConfig.model_validate({"default_pools": False, "pools": [{"name": "all", "match": {"all": True}, "driver": "flat"}]})

    def run(sql_of) -> list[pl.DataFrame]:
        if engine == "duckdb":
            return [duckdb_tables({"tenant_usage": USAGE})(sql) for sql in sql_of(DUCKDB)]
        with fake_snowflake_tables({"tenant_usage": USAGE}) as snowflake:
            return [snowflake(sql).cast(USAGE_SCHEMA) for sql in sql_of(SNOWFLAKE)]

    rows = f"select {', '.join(USAGE_SCHEMA)} from unitcost.tenant_usage"
    pools, requests, none = run(lambda dialect: [
        queries()["pool_usage"].statement(rows, CONFIG, dialect),
        queries()["requests_usage"].statement(rows, CONFIG, dialect),
        queries()["pool_usage"].statement(rows, flat, dialect),
    ])  # fmt: skip
    keys = ["usage_date", "tenant_id", "metric", "value"]
    assert_frame_equal(pools.sort(keys), USAGE.filter(pl.col("metric").is_in(["requests", "storage_bytes"])).sort(keys))
    assert_frame_equal(requests.sort(keys), USAGE.filter(pl.col("metric") == "requests").sort(keys))
    assert pools.height == 2 * 12 and none.is_empty()
    customers = pl.DataFrame({
        "snapshot_date": [d for d in DAYS for _ in range(7)], "tenant_id": [f"t{i}" for _ in DAYS for i in range(7)],
        "customer_id": [f"C{i // 2}" for _ in DAYS for i in range(7)], "status": ["active"] * 14,
    })  # fmt: skip
    billing = line_items(600, seed=3)
    allocated = [allocate(billing, usage, customers, DAYS, CONFIG.resolved_pools(), CONFIG.cost_column) for usage in (pools, USAGE)]
    same(*allocated)
