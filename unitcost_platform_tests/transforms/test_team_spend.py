"""Team spend: every line item on one team (tag, else service owner, else unowned), summing to the bill."""

import datetime as dt
import json

import polars as pl
import pytest

from unitcost_platform.config import OwnersConfig
from unitcost_platform.contracts.focus import TagsNotJson
from unitcost_platform.transforms.team_spend import TEAM_SPEND_SCHEMA, team_spend
from unitcost_platform_tests.helpers import D, billing

OWNERS = OwnersConfig(
    services={"Amazon EC2": "compute-team", "Amazon DynamoDB": "data-team"}, default_team="platform"
)


def tags(**kv) -> str:
    return json.dumps(kv)


def test_tag_wins_over_the_service_owner_and_the_rest_is_unowned():
    rows = billing([
        {"cost": 10.0, "service": "Amazon EC2", "tags": tags(tenant_id="t1")},             # service -> compute
        {"cost": 4.0, "service": "Amazon EC2", "tags": tags(team="ml-team")},              # tag beats service
        {"cost": 3.0, "service": "Amazon DynamoDB", "tags": tags(owner=" search-team ")},  # owner tag, trimmed
        {"cost": 2.5, "service": "Amazon DynamoDB", "tags": tags(team="", owner="ml-team")},  # empty team: next key
        {"cost": 1.25, "service": "AWS Support"},                                           # no tag, no owner
        {"cost": 0.75, "service": "Amazon CloudWatch", "tags": tags(cost_center="x")},     # no owner tag, no owner
    ])  # fmt: skip
    out = team_spend(rows, [D], OWNERS, "EffectiveCost")
    assert out.schema == pl.Schema(TEAM_SPEND_SCHEMA)
    got = {(r["team"], r["owner_source"]): (r["cost"], r["line_items"]) for r in out.iter_rows(named=True)}
    assert got == {
        ("compute-team", "service"): (10.0, 1),
        ("ml-team", "tag"): (4.0 + 2.5, 2),
        ("search-team", "tag"): (3.0, 1),
        ("unowned", "unowned"): (1.25 + 0.75, 2),
    }
    # The default team routes alerts; it does not hide unowned spend.
    assert "platform" not in out["team"].to_list()
    assert out["cost"].sum() == pytest.approx(rows["EffectiveCost"].sum())
    assert out["share_of_day"].sum() == pytest.approx(1.0)


def test_each_day_sums_to_its_bill_and_other_days_are_left_out():
    d2 = D + dt.timedelta(days=1)
    rows = billing([
        {"day": D, "cost": 5.0, "service": "Amazon EC2"},
        {"day": D, "cost": -1.0, "service": "Amazon EC2"},   # a credit lowers the team's spend
        {"day": d2, "cost": 7.0, "service": "Amazon DynamoDB"},
        {"day": d2, "cost": 2.0, "service": "Unknown Service"},
        {"day": D + dt.timedelta(days=2), "cost": 99.0, "service": "Amazon EC2"},
    ])  # fmt: skip
    out = team_spend(rows, [D, d2], OWNERS, "EffectiveCost")
    per_day = dict(out.group_by("day").agg(pl.col("cost").sum()).iter_rows())
    assert per_day == {D: pytest.approx(4.0), d2: pytest.approx(9.0)}


def test_billed_cost_column_and_no_team_tags_configured():
    rows = billing([{"cost": 5.0, "billed": 6.0, "service": "Amazon EC2", "tags": tags(team="ml-team")}])
    owners = OwnersConfig(services={"Amazon EC2": "compute-team"}, team_tag_keys=[])
    out = team_spend(rows, [D], owners, "BilledCost")
    assert out.select("team", "owner_source", "cost").rows() == [("compute-team", "service", 6.0)]


def test_an_empty_day_is_an_empty_frame():
    out = team_spend(billing([{"cost": 1.0}]), [D + dt.timedelta(days=5)], OWNERS, "EffectiveCost")
    assert out.is_empty() and out.schema == pl.Schema(TEAM_SPEND_SCHEMA)


def test_tags_that_are_not_json_are_refused():
    rows = billing([{"cost": 1.0, "tags": "team=ml"}])
    with pytest.raises(TagsNotJson):
        team_spend(rows, [D], OWNERS, "EffectiveCost")
