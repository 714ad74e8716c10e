"""allocated_cost computed by the warehouse (`allocation_sql`, what the asset runs) against its
Polars twin `allocate` over random days, with every kind of pool: a usage metric (of one service),
a blend, a flat fallback, flat, fixed shares, exclude, direct cost (scoped), idle kept apart, idle
by direct cost and by a metric, and line items no pool matches. On DuckDB over many random days, and
on Snowflake (fakesnow) for one. The hand-worked allocation cases run on both as well (conftest.py)."""

import datetime as dt
import json
import random

import polars as pl
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.transforms.allocation import ALLOCATED_COST_SCHEMA, allocate
from unitcost_platform.warehouse_sql import SNOWFLAKE
from unitcost_platform_tests.helpers import (
    billing,
    customers,
    fake_snowflake_tables,
    warehouse_allocate,
)

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2), dt.date(2026, 1, 3)]
TENANTS = ["t0", "t1", "t2", "t3", "t4", "t5"]
SERVICES = [
    "Amazon EC2", "NAT Gateway", "Amazon RDS", "Amazon CloudWatch", "AWS Support", "AWS Lambda", "AWS Security Hub",
    "Amazon S3", "Amazon SageMaker", "AWS Glue",
]  # fmt: skip
POOLS = UnitcostConfig.model_validate({
    "default_pools": False,  # so AWS Glue matches no pool
    "pools": [
        {"name": "idle", "match": {"tags": {"k8s:idle": "true"}}, "idle": "separate"},
        {"name": "nat", "match": {"service_name": ["NAT Gateway"]}, "driver": "requests", "usage_service": "api"},
        {"name": "db", "match": {"service_name": ["Amazon RDS"]}, "driver": {"requests": 0.7, "storage_bytes": 0.3}},
        {"name": "lambda", "match": {"service_name": ["AWS Lambda"]}, "driver": "active_sessions", "fallback": "flat"},
        {"name": "support", "match": {"service_name": ["AWS Support"]}, "driver": "exclude"},
        {"name": "security", "match": {"service_name": ["AWS Security Hub"]}, "driver": "fixed",
         "shares": {"c0": 50, "c1": 30, "c9": 20}},
        {"name": "storage", "match": {"service_name": ["Amazon S3"]}, "driver": "flat"},
        {"name": "monitoring", "match": {"service_name": ["Amazon CloudWatch"]}, "driver": "direct_cost",
         "direct_cost_scope": {"service_name": ["Amazon EC2"]}},
        {"name": "nodes", "match": {"service_name": ["Amazon EC2"]}, "idle": "by_direct_cost"},
        {"name": "gpu", "match": {"service_name": ["Amazon SageMaker"]}, "idle": "gpu_seconds"},
    ]
}).resolved_pools()  # fmt: skip
ORDER = [c for c, t in ALLOCATED_COST_SCHEMA.items() if t != pl.Float64] + ["allocated_cost", "allocation_ratio"]

line_items = st.lists(
    st.fixed_dictionaries({
        "day": st.sampled_from(DAYS),
        "cost": st.floats(min_value=-50, max_value=5000, allow_nan=False).map(lambda x: round(x, 6)),
        "service": st.sampled_from(SERVICES),
        "tenant": st.one_of(st.none(), st.sampled_from(TENANTS + ["ghost"])),
        "idle": st.booleans(),
    }),
    max_size=50,
)  # fmt: skip
usage_rows = st.lists(
    st.tuples(
        st.sampled_from(DAYS), st.sampled_from(TENANTS + ["unknown"]), st.sampled_from(["api", "web", None]),
        st.sampled_from(["requests", "storage_bytes", "active_sessions", "gpu_seconds"]),
        st.floats(min_value=0, max_value=1e9, allow_nan=False),
    ),
    max_size=40,
)  # fmt: skip
customer_rows = st.lists(
    st.tuples(st.sampled_from(["c0", "c1", "c2", "c3"]), st.sampled_from(["active", "churned"])), max_size=6
)


def _bill(items: list[dict]) -> pl.DataFrame:
    return billing([
        {**{k: v for k, v in i.items() if k != "idle"},
         **({"tags": json.dumps({"k8s:idle": "true"})} if i["idle"] and not i["tenant"] else {})}
        for i in items
    ])  # fmt: skip


def _usage(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame([(*r, "test") for r in rows], schema=USAGE_SCHEMA, orient="row")


def _customers(rows: list[tuple[str, str]], days: list[dt.date]) -> pl.DataFrame:
    """Tenants t0..t5 assigned round-robin to the drawn customers (one status per customer); the
    last day drops t5 from the dimension."""
    status = dict(rows)
    if not status:
        return customers([], days)
    ids = sorted(status)
    mapping = [{"customer_id": ids[i % len(ids)], "tenant_id": t, "status": status[ids[i % len(ids)]]}
               for i, t in enumerate(TENANTS)]  # fmt: skip
    frame = customers(mapping, days)
    return frame.filter(~((pl.col("snapshot_date") == days[-1]) & (pl.col("tenant_id") == "t5")))


def _same(warehouse: pl.DataFrame, polars: pl.DataFrame) -> None:
    assert warehouse.schema == pl.Schema(ALLOCATED_COST_SCHEMA)
    assert_frame_equal(
        warehouse.sort(ORDER, nulls_last=True), polars.sort(ORDER, nulls_last=True),
        check_exact=False, rel_tol=1e-9, abs_tol=1e-9,
    )  # fmt: skip


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=line_items, use=usage_rows, cust=customer_rows, days=st.sampled_from([DAYS, DAYS[1:], DAYS[:1]]))
def test_the_warehouse_allocates_as_polars_does(items, use, cust, days):
    bill, usage, dimension = _bill(items), _usage(use), _customers(cust, DAYS)
    expected = allocate(bill, usage, dimension, days, POOLS, "EffectiveCost")
    _same(warehouse_allocate(bill, usage, dimension, days, POOLS, "EffectiveCost"), expected)


def test_snowflake_allocates_as_polars_does():
    rng = random.Random(7)
    items = [
        {"day": rng.choice(DAYS), "cost": round(rng.uniform(-10, 500), 4), "service": rng.choice(SERVICES),
         "tenant": rng.choice([None, None, *TENANTS, "ghost"]), "idle": rng.random() < 0.2}
        for _ in range(300)
    ]  # fmt: skip
    use = [
        (day, tenant, rng.choice(["api", "web"]), metric, rng.uniform(0, 1e6))
        for day in DAYS for tenant in [*TENANTS, "unknown"] for metric in ["requests", "storage_bytes", "gpu_seconds"]
        if rng.random() < 0.7
    ]  # fmt: skip
    bill, usage = _bill(items), _usage(use)
    dimension = _customers([("c0", "active"), ("c1", "active"), ("c2", "churned"), ("c3", "active")], DAYS)
    expected = allocate(bill, usage, dimension, DAYS, POOLS, "EffectiveCost")
    # Rows of every method, and the reasons these days give (every day has driver usage and direct cost).
    assert set(expected["allocation_method"]) == {
        "direct", "usage", "blended", "flat_fallback", "exclude", "fixed", "flat", "direct_cost", "idle",
        "idle_by_direct_cost", "idle_usage", "unmatched",
    }  # fmt: skip
    assert set(expected["unallocated_reason"]) == {None, "unknown_tenant", "idle", "excluded", "unknown_customer", "no_matching_pool"}
    tables = {"raw_billing": bill, "tenant_usage": usage, "customer_dimension": dimension}
    with fake_snowflake_tables(tables) as run:
        found = warehouse_allocate(bill, usage, dimension, DAYS, POOLS, "EffectiveCost", run, SNOWFLAKE)
    _same(found, expected)
