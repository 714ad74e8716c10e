"""Tag coverage: tagged, shared by design, and untagged-by-mistake cost per day and scope."""

import datetime as dt
import json

import polars as pl
import pytest

from unitcost_platform.config import PoolConfig, PoolMatch, UnitcostConfig
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
