"""Allocation on a day small enough to work out by hand (figures in the comments)."""

import polars as pl
import pytest

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform_tests.helpers import D, billing, customers, usage

POOLS = [
    PoolConfig(name="nat", match=PoolMatch(resource_id_pattern="natgateway/"), driver="requests"),
    PoolConfig(name="rds", match=PoolMatch(service_name=["Amazon RDS"]), driver="storage_bytes"),
    PoolConfig(name="observability", match=PoolMatch(service_name=["Amazon CloudWatch"]), driver="flat"),
    PoolConfig(name="support", match=PoolMatch(service_name=["AWS Support"]), driver="exclude"),
    PoolConfig(name="sessions", match=PoolMatch(service_name=["AWS Lambda"]), driver="active_sessions"),
    PoolConfig(
        name="security", match=PoolMatch(service_name=["AWS Security Hub"]), driver="fixed",
        shares={"C1": 70, "C2": 20, "C9": 10},
    ),
]

BILL = billing([
    {"cost": 100.0, "tenant": "t1"},  # tagged compute -> C1 direct
    {"cost": 50.0, "tenant": "t2"},  # tagged compute -> C2 direct
    {"cost": -10.0, "tenant": "t1"},  # a credit on C1's compute: direct, negative
    {"cost": 30.0, "service": "NAT Gateway", "resource": "arn:aws:ec2:r:1:natgateway/nat-1"},
    {"cost": 40.0, "service": "Amazon RDS"},
    {"cost": 12.0, "service": "Amazon CloudWatch"},
    {"cost": 20.0, "service": "AWS Support"},
    {"cost": 8.0, "service": "AWS Lambda"},
    {"cost": 10.0, "service": "AWS Security Hub"},
    {"cost": 5.0, "tenant": "ghost"},  # tagged with a tenant no customer owns
])
USAGE = usage([
    ("t1", "requests", 600), ("t2", "requests", 300), ("tx", "requests", 100),  # tx: unknown tenant
    ("t1", "storage_bytes", 100e9), ("t2", "storage_bytes", 300e9),
])
CUSTOMERS = customers([
    {"customer_id": "C1", "tenant_id": "t1", "mrr": 1000},
    {"customer_id": "C2", "tenant_id": "t2", "mrr": 500},
    {"customer_id": "C3", "tenant_id": "t3", "status": "churned", "mrr": 0},
])


def _allocate(allocate, pools=POOLS) -> pl.DataFrame:
    return allocate(BILL, USAGE, CUSTOMERS, [D], pools, "EffectiveCost")


def _cost(frame: pl.DataFrame, **where) -> float:
    cond = pl.lit(True)
    for col, value in where.items():
        cond = cond & (pl.col(col).is_null() if value is None else pl.col(col) == value)
    return frame.filter(cond)["allocated_cost"].sum()


def test_every_figure_of_the_day(allocate):
    out = _allocate(allocate)
    # Direct: C1 = 100 - 10 (credit) = 90; C2 = 50.
    assert _cost(out, customer_id="C1", pool="direct") == pytest.approx(90.0)
    assert _cost(out, customer_id="C2", pool="direct") == pytest.approx(50.0)
    # NAT 30 by requests 600/300/100: C1 18, C2 9, unknown tenant tx 3.
    assert _cost(out, customer_id="C1", pool="nat") == pytest.approx(18.0)
    assert _cost(out, customer_id="C2", pool="nat") == pytest.approx(9.0)
    assert _cost(out, tenant_id="tx", pool="nat", unallocated_reason="unknown_tenant") == pytest.approx(3.0)
    # RDS 40 by storage 100/300 GB: C1 10, C2 30.
    assert _cost(out, customer_id="C1", pool="rds") == pytest.approx(10.0)
    assert _cost(out, customer_id="C2", pool="rds") == pytest.approx(30.0)
    # CloudWatch 12 flat over the active customers C1, C2 (C3 churned): 6 each.
    assert _cost(out, customer_id="C1", pool="observability") == pytest.approx(6.0)
    assert _cost(out, customer_id="C2", pool="observability") == pytest.approx(6.0)
    assert _cost(out, customer_id="C3") == 0.0
    # Support 20 excluded; Lambda 8 has no active_sessions usage; tagged ghost 5 unknown.
    assert _cost(out, pool="support", unallocated_reason="excluded") == pytest.approx(20.0)
    assert _cost(out, pool="sessions", unallocated_reason="no_driver_usage") == pytest.approx(8.0)
    assert _cost(out, tenant_id="ghost", pool="direct", unallocated_reason="unknown_tenant") == pytest.approx(5.0)
    # Security Hub 10 fixed 70/20/10 with C9 not a customer: C1 7, C2 2, 1 unknown_customer.
    assert _cost(out, customer_id="C1", pool="security") == pytest.approx(7.0)
    assert _cost(out, customer_id="C2", pool="security") == pytest.approx(2.0)
    assert _cost(out, customer_id="C9", unallocated_reason="unknown_customer") == pytest.approx(1.0)
    # Totals: C1 131, C2 97, unallocated 37; the day's bill is 265.
    allocated = out.filter(pl.col("unallocated_reason").is_null())
    assert _cost(allocated, customer_id="C1") == pytest.approx(131.0)
    assert _cost(allocated, customer_id="C2") == pytest.approx(97.0)
    assert out.filter(pl.col("unallocated_reason").is_not_null())["allocated_cost"].sum() == pytest.approx(37.0)
    assert out["allocated_cost"].sum() == pytest.approx(265.0, rel=1e-12)


def test_methods_and_ratios_explain_each_row(allocate):
    out = _allocate(allocate)
    nat = out.filter(pl.col("pool") == "nat").sort("tenant_id")
    assert nat["allocation_method"].unique().to_list() == ["usage"]
    assert nat["driver"].unique().to_list() == ["requests"]
    assert nat["allocation_ratio"].to_list() == pytest.approx([0.6, 0.3, 0.1])
    flat = out.filter(pl.col("pool") == "observability")
    assert flat["allocation_ratio"].to_list() == pytest.approx([0.5, 0.5])
    direct = out.filter(pl.col("pool") == "direct")
    assert set(direct["allocation_method"]) == {"direct"}
    assert set(direct["allocation_ratio"]) == {1.0}


def test_pool_without_driver_usage_can_fall_back_to_flat(allocate):
    pools = [p if p.name != "sessions" else p.model_copy(update={"fallback": "flat"}) for p in POOLS]
    out = _allocate(allocate, pools)
    sessions = out.filter(pl.col("pool") == "sessions")
    assert sessions["unallocated_reason"].is_null().all()
    assert set(sessions["allocation_method"]) == {"flat_fallback"}
    assert _cost(sessions, customer_id="C1") == pytest.approx(4.0)
    assert _cost(sessions, customer_id="C2") == pytest.approx(4.0)


def test_default_pools_follow_the_service_category(allocate):
    """Compute/Networking by requests, Databases/Storage by storage bytes, the rest flat."""
    cfg = UnitcostConfig()
    bill = billing([
        {"cost": 9.0, "service": "Amazon EC2"},
        {"cost": 8.0, "service": "Amazon RDS"},
        {"cost": 4.0, "service": "Amazon CloudWatch"},
    ])
    use = usage([("t1", "requests", 2), ("t2", "requests", 1), ("t1", "storage_bytes", 1), ("t2", "storage_bytes", 3)])
    out = allocate(bill, use, CUSTOMERS, [D], cfg.resolved_pools(), "EffectiveCost")
    assert _cost(out, pool="default_compute_networking", customer_id="C1") == pytest.approx(6.0)
    assert _cost(out, pool="default_data", customer_id="C2") == pytest.approx(6.0)
    assert _cost(out, pool="default_other", customer_id="C1") == pytest.approx(2.0)
    assert out["allocated_cost"].sum() == pytest.approx(21.0)


def test_no_matching_pool_is_explained_not_dropped(allocate):
    cfg = UnitcostConfig(default_pools=False)
    bill = billing([{"cost": 3.0, "service": "Amazon EC2"}])
    out = allocate(bill, USAGE, CUSTOMERS, [D], cfg.resolved_pools(), "EffectiveCost")
    assert out.select("unallocated_reason", "allocated_cost").rows() == [("no_matching_pool", 3.0)]


def test_flat_pool_with_no_active_customer_is_unallocated(allocate):
    nobody = customers([{"customer_id": "C3", "tenant_id": "t3", "status": "churned"}])
    bill = billing([{"cost": 12.0, "service": "Amazon CloudWatch"}])
    out = allocate(bill, USAGE, nobody, [D], POOLS, "EffectiveCost")
    assert out.select("unallocated_reason", "allocated_cost").rows() == [("no_active_customers", 12.0)]


def test_billed_cost_column_is_configurable(allocate):
    bill = billing([{"cost": 10.0, "billed": 14.0, "tenant": "t1"}])
    out = allocate(bill, USAGE, CUSTOMERS, [D], POOLS, "BilledCost")
    assert out["allocated_cost"].sum() == pytest.approx(14.0)


def test_days_are_allocated_independently(allocate):
    d2 = D.replace(day=D.day + 1)
    bill = billing([
        {"cost": 30.0, "service": "NAT Gateway", "resource": "natgateway/a"},
        {"cost": 10.0, "service": "NAT Gateway", "resource": "natgateway/a", "day": d2},
    ])
    use = pl.concat([usage([("t1", "requests", 1), ("t2", "requests", 2)]),
                     usage([("t1", "requests", 1)], day=d2)])  # fmt: skip
    both = customers([{"customer_id": "C1", "tenant_id": "t1"}, {"customer_id": "C2", "tenant_id": "t2"}], [D, d2])
    out = allocate(bill, use, both, [D, d2], POOLS, "EffectiveCost")
    assert _cost(out, day=D, customer_id="C1") == pytest.approx(10.0)
    assert _cost(out, day=D, customer_id="C2") == pytest.approx(20.0)
    assert _cost(out, day=d2, customer_id="C1") == pytest.approx(10.0)
    assert _cost(out, day=d2, customer_id="C2") == 0.0
