"""The richer split rules, on the issue's exact cases worked by hand: idle capacity as a pool of its
own, direct-cost-proportional splits, blended drivers. Every case conserves the day's bill."""

import polars as pl
import pytest

from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform.errors import ConfigError
from unitcost_platform_tests.helpers import D, billing, customers, usage

TENANTS = customers([
    {"customer_id": "A", "tenant_id": "a"}, {"customer_id": "B", "tenant_id": "b"}, {"customer_id": "C", "tenant_id": "c"},
])  # fmt: skip


def _by_customer(out: pl.DataFrame) -> dict:
    return dict(out.group_by("customer_id").agg(pl.col("allocated_cost").sum()).iter_rows())


def test_a_node_day_with_pods_a_shared_ingress_and_idle_by_direct_cost(allocate):
    # A $24 node day: pod rows a $9 and b $4.50 (tagged by namespace), a shared ingress pod $3 split by
    # requests 2:1, and $7.50 of unused capacity split by each tenant's direct cost in the cluster (9 : 4.5).
    bill = billing([
        {"cost": 9.0, "tenant": "a", "resource": "pod-a"},
        {"cost": 4.5, "tenant": "b", "resource": "pod-b"},
        {"cost": 3.0, "resource": "pod-ingress", "tags": '{"k8s:namespace": "ingress"}'},
        {"cost": 7.5, "resource": "node-1", "tags": '{"k8s:idle": "true"}'},
    ])
    pools = [
        PoolConfig(name="cluster_idle", match=PoolMatch(tags={"k8s:idle": "true"}), idle="by_direct_cost",
                   direct_cost_scope=PoolMatch(resource_id_pattern="^pod-")),
        PoolConfig(name="ingress", match=PoolMatch(tags={"k8s:namespace": "ingress"}), driver="requests"),
    ]  # fmt: skip
    out = allocate(bill, usage([("a", "requests", 200), ("b", "requests", 100)]), TENANTS, [D], pools, "EffectiveCost")
    # a: 9 + 3 x 2/3 + 7.5 x 9/13.5 = 9 + 2 + 5 = 16; b: 4.5 + 1 + 2.5 = 8.
    assert _by_customer(out) == {"A": pytest.approx(16.0), "B": pytest.approx(8.0)}
    assert out["allocated_cost"].sum() == pytest.approx(24.0, rel=1e-12)
    idle = out.filter(pl.col("pool") == "cluster_idle")
    assert set(idle["allocation_method"]) == {"idle_by_direct_cost"} and set(idle["driver"]) == {"direct_cost"}
    assert sorted(idle["allocation_ratio"].to_list()) == pytest.approx([1 / 3, 2 / 3])


def test_idle_kept_separate_is_unallocated_as_idle(allocate):
    bill = billing([{"cost": 9.0, "tenant": "a"}, {"cost": 7.5, "resource": "node-1", "tags": '{"k8s:idle": "true"}'}])
    pools = [PoolConfig(name="cluster_idle", match=PoolMatch(tags={"k8s:idle": "true"}), idle="separate")]
    out = allocate(bill, usage([]), TENANTS, [D], pools, "EffectiveCost")
    idle = out.filter(pl.col("pool") == "cluster_idle").row(0, named=True)
    assert idle["unallocated_reason"] == "idle" and idle["allocated_cost"] == 7.5 and idle["customer_id"] is None
    assert out["allocated_cost"].sum() == pytest.approx(16.5, rel=1e-12)  # conservation


def test_a_blended_driver(allocate):
    # $1,000 by 0.7 requests + 0.3 storage; A has 60% of requests and 20% of storage.
    bill = billing([{"cost": 1000.0, "service": "Amazon RDS"}])
    pools = [PoolConfig(name="db", match=PoolMatch(service_name=["Amazon RDS"]), driver={"requests": 0.7, "storage_bytes": 0.3})]
    use = usage([("a", "requests", 600), ("b", "requests", 400), ("a", "storage_bytes", 20), ("b", "storage_bytes", 80)])
    out = allocate(bill, use, TENANTS, [D], pools, "EffectiveCost")
    # A: 1000 x (0.7 x 0.6 + 0.3 x 0.2) = 420 + 60 = 480; B: 1000 x (0.7 x 0.4 + 0.3 x 0.8) = 280 + 240 = 520.
    assert _by_customer(out) == {"A": pytest.approx(480.0), "B": pytest.approx(520.0)}
    a = out.filter(pl.col("customer_id") == "A").sort("driver")
    assert a["driver"].to_list() == ["requests", "storage_bytes"] and set(a["allocation_method"]) == {"blended"}
    assert a["allocation_ratio"].to_list() == pytest.approx([0.42, 0.06])


def test_a_blended_metric_without_usage_leaves_its_weight_unallocated(allocate):
    bill = billing([{"cost": 1000.0, "service": "Amazon RDS"}])
    pools = [PoolConfig(name="db", match=PoolMatch(service_name=["Amazon RDS"]), driver={"requests": 0.7, "storage_bytes": 0.3})]
    out = allocate(bill, usage([("a", "requests", 1)]), TENANTS, [D], pools, "EffectiveCost")
    assert _by_customer(out)["A"] == pytest.approx(700.0)
    assert out.filter(pl.col("unallocated_reason") == "no_driver_usage")["allocated_cost"].sum() == pytest.approx(300.0)


def test_direct_cost_proportional_split(allocate):
    # $300 of support over direct costs 50 / 30 / 20.
    bill = billing([
        {"cost": 50.0, "tenant": "a"}, {"cost": 30.0, "tenant": "b"}, {"cost": 20.0, "tenant": "c"},
        {"cost": 300.0, "service": "AWS Support"},
    ])  # fmt: skip
    pools = [PoolConfig(name="support", match=PoolMatch(service_name=["AWS Support"]), driver="direct_cost")]
    out = allocate(bill, usage([]), TENANTS, [D], pools, "EffectiveCost")
    support = out.filter(pl.col("pool") == "support")
    assert _by_customer(support) == {"A": pytest.approx(150.0), "B": pytest.approx(90.0), "C": pytest.approx(60.0)}
    assert out["allocated_cost"].sum() == pytest.approx(400.0, rel=1e-12)


def test_direct_cost_scope_and_a_day_without_direct_cost(allocate):
    bill = billing([
        {"cost": 50.0, "tenant": "a", "service": "Amazon EC2"}, {"cost": 30.0, "tenant": "b", "service": "AWS Lambda"},
        {"cost": 100.0, "service": "AWS Support"},
    ])  # fmt: skip
    scoped = [PoolConfig(name="support", match=PoolMatch(service_name=["AWS Support"]), driver="direct_cost",
                         direct_cost_scope=PoolMatch(service_name=["Amazon EC2"]))]  # fmt: skip
    out = allocate(bill, usage([]), TENANTS, [D], scoped, "EffectiveCost")
    assert _by_customer(out.filter(pl.col("pool") == "support")) == {"A": pytest.approx(100.0)}  # only EC2 weighs
    untagged = billing([{"cost": 100.0, "service": "AWS Support"}])
    out = allocate(untagged, usage([]), TENANTS, [D], scoped, "EffectiveCost")
    assert out.row(0, named=True)["unallocated_reason"] == "no_direct_cost" and out["allocated_cost"].sum() == 100.0


@pytest.mark.parametrize(
    ("pool", "message"),
    [
        ({"driver": {"requests": 0.7, "storage_bytes": 0.4}}, "blended driver weights sum to 1.1, they must sum to 1"),
        ({"driver": {"requests": 0.5, "flat": 0.5}}, "a blend mixes usage metrics only, not flat"),
        ({"driver": "requests", "idle": "separate"}, "give a driver (how its cost is split) or idle"),
        ({}, "give a driver (how its cost is split) or idle (it is idle capacity), not neither"),
        ({"driver": "flat", "direct_cost_scope": {"all": True}}, "direct_cost_scope applies to driver direct_cost"),
    ],
)
def test_bad_split_rules_are_refused_with_the_pool_named(pool, message, tmp_path):
    import yaml

    from unitcost_platform.config import load_config

    path = tmp_path / "unitcost.yaml"
    path.write_text(yaml.safe_dump({"pools": [{"name": "p", "match": {"all": True}, **pool}]}))
    with pytest.raises(ConfigError) as error:
        load_config(path)
    assert "pool 'p'" in str(error.value) and message in str(error.value)
