"""Cost per unit in the business's units: missing metrics are null, zero units give no ratio."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.config import UnitMetric
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.transforms.unit_metrics import (
    CUSTOMER_UNIT_COSTS_SCHEMA,
    USAGE_ROLLUP,
    customer_unit_costs,
    customer_unit_costs_sql,
    unseen_metric_warnings,
)
from unitcost_platform.warehouse_sql import DUCKDB
from unitcost_platform_tests.helpers import D, duckdb_tables, usage

WEEK_AGO = D - dt.timedelta(days=7)
METRICS = [
    UnitMetric(name="per_1k_requests", metric="requests", per=1000),
    UnitMetric(name="per_transaction", metric="transactions"),
    UnitMetric(name="per_gb_month", metric="storage_bytes", per=1073741824),
]
TENANTS = {"C1": ["t1"], "C2": ["t2"], "C3": ["t3a", "t3b"]}
COST = {D: {"C1": 8.0, "C2": 3.0, "C3": 2.0}, WEEK_AGO: {"C1": 5.0, "C2": 3.0, "C3": 1.0}}


def _unit_cost() -> pl.DataFrame:
    return pl.DataFrame([
        {"day": d, "customer_id": c, "customer_name": f"Customer {c}", "tier": "smb", "total_cost": v}
        for d, costs in COST.items() for c, v in costs.items()
    ])  # fmt: skip


def _dimension() -> pl.DataFrame:
    return pl.DataFrame([
        {"snapshot_date": d, "tenant_id": t, "customer_id": c} for d in COST for c, ts in TENANTS.items() for t in ts
    ])  # fmt: skip


USAGE = pl.concat([
    # D: C1 2000 requests, C2 none (the metric is there, C2 used 0), C3 300 + 200; no transactions at all.
    usage([("t1", "requests", 2000), ("t3a", "requests", 300), ("t3b", "requests", 200)], D),
    # A week before: C1 1000 requests and 10 transactions, C3 500 requests.
    usage([("t1", "requests", 1000), ("t3a", "requests", 500), ("t1", "transactions", 10)], WEEK_AGO),
])  # fmt: skip


def _polars() -> pl.DataFrame:
    return customer_unit_costs(_unit_cost(), apply_rollup(USAGE, USAGE_ROLLUP), _dimension(), METRICS, [D])


def _warehouse() -> pl.DataFrame:
    """What the asset runs: the SQL over the three tables, in DuckDB."""
    run = duckdb_tables({"unit_cost": _unit_cost(), "tenant_usage": USAGE, "customer_dimension": _dimension()})
    statement = customer_unit_costs_sql([D], METRICS, lambda t: f"unitcost.{t}", DUCKDB)
    return run(statement).cast(CUSTOMER_UNIT_COSTS_SCHEMA).sort("day", "customer_id", "unit_metric")


@pytest.fixture(params=["polars", "warehouse"])
def _run(request):
    """The rows under test: `customer_unit_costs` on frames, or its SQL twin (what the asset runs);
    the hand-worked figures hold for both."""
    return _polars if request.param == "polars" else _warehouse


def _row(out: pl.DataFrame, customer: str, metric: str) -> dict:
    return out.filter((pl.col("customer_id") == customer) & (pl.col("unit_metric") == metric)).row(0, named=True)


def test_cost_per_unit_and_its_change_over_seven_days(_run):
    out = _run()
    assert out.schema == pl.Schema(CUSTOMER_UNIT_COSTS_SCHEMA)
    assert out.height == 3 * 3 and set(out["day"]) == {D}
    c1 = _row(out, "C1", "per_1k_requests")
    assert (c1["units"], c1["total_cost"], c1["per"]) == (2000.0, 8.0, 1000.0)
    assert c1["cost_per_unit"] == pytest.approx(8.0 / 2000 * 1000)  # $4 per 1k
    assert c1["cost_per_unit_7d_change"] == pytest.approx(4.0 / (5.0 / 1000 * 1000) - 1)  # 4 against 5: -20%
    c3 = _row(out, "C3", "per_1k_requests")  # two tenants: 300 + 200
    assert c3["units"] == 500.0 and c3["cost_per_unit"] == pytest.approx(2.0 / 500 * 1000)
    assert c3["cost_per_unit_7d_change"] == pytest.approx(4.0 / 2.0 - 1)  # 1/500 x 1000 = 2 a week ago


def test_zero_units_and_a_metric_missing_that_day_are_null_not_errors(_run):
    out = _run()
    c2 = _row(out, "C2", "per_1k_requests")  # requests were reported that day, none by C2
    assert c2["units"] == 0.0 and c2["cost_per_unit"] is None and c2["cost_per_unit_7d_change"] is None
    # transactions: reported a week ago, not on D -> unknown units, not zero.
    for customer in ("C1", "C2", "C3"):
        row = _row(out, customer, "per_transaction")
        assert row["units"] is None and row["cost_per_unit"] is None and row["cost_per_unit_7d_change"] is None
        assert row["total_cost"] == COST[D][customer]
    assert _row(out, "C1", "per_gb_month")["units"] is None


def test_a_metric_never_seen_is_a_config_warning():
    warnings = unseen_metric_warnings(METRICS, apply_rollup(USAGE, USAGE_ROLLUP), "2026-03-03..2026-03-10")
    assert len(warnings) == 1
    assert warnings[0].startswith("unit_metrics per_gb_month: metric 'storage_bytes' appears in no usage of 2026-03-03..2026-03-10")
    assert "(requests, transactions)" in warnings[0] and "unitcost.yaml" in warnings[0]
