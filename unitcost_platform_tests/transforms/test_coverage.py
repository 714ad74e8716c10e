"""Tag coverage: tagged, shared by design, and untagged-by-mistake cost per day and scope."""

import datetime as dt
import json

import polars as pl
import pytest

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform.transforms.coverage import tag_coverage
from unitcost_platform_tests.helpers import D, billing

POOLS = [
    PoolConfig(name="nat", match=PoolMatch(service_name=["NAT Gateway"]), driver="requests", shared_by_design=True),
    *UnitcostConfig().resolved_pools(),
]


def test_overall_and_per_service_figures():
    bill = billing([
        {"cost": 60.0, "tenant": "a"},
        {"cost": 20.0, "service": "NAT Gateway"},  # shared by design
        {"cost": 15.0, "service": "AWS Lambda", "resource": "fn-1"},  # untagged by mistake
        {"cost": 5.0, "service": "AWS Lambda", "resource": "fn-2"},
    ])
    out = tag_coverage(bill, [D], POOLS, "EffectiveCost")
    overall = out.filter(pl.col("scope_type") == "overall").row(0, named=True)
    assert (overall["total_cost"], overall["tagged_cost"], overall["shared_by_design_cost"], overall["untagged_cost"]) == (100, 60, 20, 20)
    assert overall["coverage"] == pytest.approx(0.8)
    assert overall["tagged_share"] == pytest.approx(0.6)
    assert (overall["line_items"], overall["untagged_line_items"]) == (4, 2)
    top = json.loads(overall["top_untagged_resources"])
    assert [r["resource_id"] for r in top] == ["fn-1", "fn-2"] and top[0]["cost"] == 15.0
    lam = out.filter((pl.col("scope_type") == "service") & (pl.col("scope") == "AWS Lambda")).row(0, named=True)
    assert lam["coverage"] == 0.0 and lam["untagged_cost"] == 20.0
    assert set(out.filter(pl.col("scope_type") == "sub_account")["scope"]) == {"111"}
    assert set(out.filter(pl.col("scope_type") == "provider")["scope"]) == {"AWS"}


def test_an_empty_day_still_has_its_overall_row():
    other = D + dt.timedelta(days=1)
    out = tag_coverage(billing([{"cost": 1.0, "tenant": "a"}]), [D, other], POOLS, "EffectiveCost")
    empty = out.filter(pl.col("day") == other)
    assert empty.select("scope_type", "total_cost", "coverage", "top_untagged_resources").rows() == [("overall", 0.0, None, "[]")]


def test_idle_capacity_is_its_own_figure_not_a_tagging_gap():
    # The $24 node day: pods a $9 and b $4.50 (tagged), ingress $3 (untagged), $7.50 idle kept apart.
    idle_tags = json.dumps({"unitcost:idle": "true", "unitcost:parent": "i-node"})
    rows = [
        {"cost": 9.0, "tenant": "a", "resource": "pod-a"}, {"cost": 4.5, "tenant": "b", "resource": "pod-b"},
        {"cost": 3.0, "resource": "pod-ingress"},
        {"cost": 5.0, "resource": "i-node", "tags": idle_tags}, {"cost": 2.5, "resource": "i-node", "tags": idle_tags},
    ]  # fmt: skip
    idle = PoolConfig(name="cluster_idle", match=PoolMatch(tags={"unitcost:idle": "true"}), idle="separate")
    out = tag_coverage(billing(rows), [D], [idle, *POOLS], "EffectiveCost")
    overall = out.filter(pl.col("scope_type") == "overall").row(0, named=True)
    assert (overall["total_cost"], overall["tagged_cost"], overall["shared_by_design_cost"], overall["untagged_cost"]) == (24, 13.5, 7.5, 3)
    assert overall["coverage"] == pytest.approx(21 / 24) and overall["untagged_line_items"] == 1
    assert [r["resource_id"] for r in json.loads(overall["top_untagged_resources"])] == ["pod-ingress"]
    rows_of_idle = out.filter(pl.col("scope_type") == "idle")
    assert rows_of_idle.select("scope", "total_cost", "shared_by_design_cost", "untagged_cost", "line_items").rows() == [
        ("cluster_idle", 7.5, 7.5, 0.0, 2)
    ]
    assert out["scope_type"].to_list()[-1] == "idle"  # after overall, service, sub_account, provider
    # Without an idle pool, nothing changes: the same rows and values as before idle pools existed.
    without = tag_coverage(billing(rows), [D], POOLS, "EffectiveCost")
    assert "idle" not in without["scope_type"].to_list()
    assert without.filter(pl.col("scope_type") == "overall")["untagged_cost"].to_list() == [10.5]
