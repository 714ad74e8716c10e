"""Each check on data built to pass and data built to fail, with the figures a person reads."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform.transforms import checks
from unitcost_platform.transforms.coverage import tag_coverage
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform_tests.helpers import D, billing, customers, usage

POOLS = [PoolConfig(name="nat", match=PoolMatch(service_name=["NAT Gateway"]), driver="requests", shared_by_design=True),
         *UnitcostConfig().resolved_pools()]  # fmt: skip
WEEK = [D - dt.timedelta(days=7 - i) for i in range(8)]  # D-7 .. D


def _allocated(rows: list[tuple]) -> pl.DataFrame:
    """(day, customer, tenant, pool, cost, reason) rows."""
    return pl.DataFrame(
        rows, orient="row",
        schema={"day": pl.Date, "customer_id": pl.String, "tenant_id": pl.String, "pool": pl.String,
                "allocated_cost": pl.Float64, "unallocated_reason": pl.String},
    )  # fmt: skip


def test_conservation_passes_within_tolerance_and_fails_beyond():
    billed = pl.DataFrame({"day": [D, D], "cost": [100.0, 50.0]})
    good = _allocated([(D, "C1", "t1", "direct", 120.0, None), (D, None, "x", "direct", 30.0, "unknown_tenant")])
    [ok] = checks.conservation(billed, good, [D], 1e-6)
    assert ok.passed and ok.figures["difference"] == pytest.approx(0.0)
    assert ok.offenders["bucket"].to_list() == ["allocated to customers", "unknown_tenant"]
    short = _allocated([(D, "C1", "t1", "direct", 149.99, None)])
    [bad] = checks.conservation(billed, short, [D], 1e-6)
    assert not bad.passed and bad.severity == "ERROR"
    assert bad.figures["difference"] == pytest.approx(-0.01)
    assert "differs from billed $150.00" in bad.description and "not computed" in bad.description
    tiny = _allocated([(D, "C1", "t1", "direct", 150.0 + 1e-5, None)])  # 6.7e-8 relative
    assert checks.conservation(billed, tiny, [D], 1e-6)[0].passed


def test_conservation_of_an_empty_day():
    empty = _allocated([])
    [out] = checks.conservation(pl.DataFrame(schema={"day": pl.Date, "cost": pl.Float64}), empty, [D], 1e-6)
    assert out.passed and out.figures["billed_total"] == 0.0


def _coverage(days_rows: dict[dt.date, list[dict]]) -> pl.DataFrame:
    frames = [tag_coverage(billing([{**r, "day": day} for r in rows]), [day], POOLS, "EffectiveCost") for day, rows in days_rows.items()]
    return pl.concat(frames)


def test_coverage_floor_warn_and_error():
    cov = _coverage({
        D: [{"cost": 90.0, "tenant": "a"}, {"cost": 10.0, "service": "AWS Lambda"}],  # 90%
        D + dt.timedelta(days=1): [{"cost": 80.0, "tenant": "a"}, {"cost": 20.0, "service": "AWS Lambda"}],  # 80%
        D + dt.timedelta(days=2): [{"cost": 50.0, "tenant": "a"}, {"cost": 10.0, "service": "NAT Gateway"},
                                   {"cost": 40.0, "service": "AWS Lambda"}],  # 60% (NAT by design): hard floor 0.6 holds
        D + dt.timedelta(days=3): [{"cost": 50.0, "tenant": "a"}, {"cost": 50.0, "service": "AWS Lambda"}],  # 50%
    })  # fmt: skip
    days = sorted(cov["day"].unique())
    out = checks.coverage_floor(cov, days, floor=0.85, hard_floor=0.6)
    assert [(o.passed, o.severity) for o in out] == [(True, "WARN"), (False, "WARN"), (False, "WARN"), (False, "ERROR")]
    assert out[3].figures["coverage"] == pytest.approx(0.5)
    assert out[3].offenders.row(0, named=True)["service"] == "AWS Lambda"
    assert "below the hard floor 60.0%" in out[3].description


def _steady_week(last_day_rows: list[dict]) -> pl.DataFrame:
    steady = [{"cost": 90.0, "tenant": "a"}, {"cost": 10.0, "service": "AWS Lambda"},
              {"cost": 20.0, "service": "Amazon DynamoDB", "tenant": "a"}]  # fmt: skip
    return _coverage({day: (steady if day != D else last_day_rows) for day in WEEK})


def test_attribution_drift_against_the_trailing_week():
    steady = [{"cost": 90.0, "tenant": "a"}, {"cost": 10.0, "service": "AWS Lambda"},
              {"cost": 20.0, "service": "Amazon DynamoDB", "tenant": "a"}]  # coverage 110/120 = 91.7%
    assert checks.attribution_drift(_steady_week(steady), [D], points=5)[0].passed
    broken = [{"cost": 90.0, "tenant": "a"}, {"cost": 10.0, "service": "AWS Lambda"},
              {"cost": 20.0, "service": "Amazon DynamoDB"}]  # DynamoDB lost its tags: 90/120 = 75%
    [out] = checks.attribution_drift(_steady_week(broken), [D], points=5)
    assert not out.passed and out.severity == "WARN"
    assert out.figures["drop_points"] == pytest.approx((110 / 120 - 90 / 120) * 100)
    assert out.offenders.row(0, named=True)["service"] == "Amazon DynamoDB"


def test_drift_without_history_passes_with_a_note():
    [out] = checks.attribution_drift(_coverage({D: [{"cost": 1.0}]}), [D], points=5)
    assert out.passed and "no coverage history" in out.description


def test_propagation_gap_when_a_service_stops_tagging_or_never_tagged():
    broken = [{"cost": 90.0, "tenant": "a"}, {"cost": 10.0, "service": "AWS Lambda"},
              {"cost": 20.0, "service": "Amazon DynamoDB", "resource": "table/orders"},
              {"cost": 5.0, "service": "NAT Gateway"}]  # shared by design: never flagged
    [out] = checks.propagation_gaps(_steady_week(broken), [D], drop_points=10, min_cost=1.0)
    assert not out.passed
    problems = dict(out.offenders.select("service", "problem").iter_rows())
    assert problems == {"Amazon DynamoDB": "tagged share dropped", "AWS Lambda": "no tenant tag at all"}
    dynamo = out.offenders.filter(pl.col("service") == "Amazon DynamoDB").row(0, named=True)
    assert dynamo["untagged_cost"] == 20.0 and "table/orders ($20.00)" in dynamo["top_resources"]


def test_no_propagation_gap_on_a_steady_day_above_min_cost():
    steady = [{"cost": 90.0, "tenant": "a"}, {"cost": 0.5, "service": "AWS Lambda"}]  # Lambda below min cost
    [out] = checks.propagation_gaps(_coverage({D: steady}), [D], drop_points=10, min_cost=1.0)
    assert out.passed


# The usage checks read the warehouse's sums of tenant_usage (their rollups); the rows give the same outcome.
AS_READ = {"rows": lambda rows, rollup: rows, "warehouse sums": lambda rows, rollup: apply_rollup(rows, rollup)}


@pytest.mark.parametrize("read", AS_READ.values(), ids=AS_READ.keys())
def test_orphans_both_ways(read):
    cust = customers([{"customer_id": "C1", "tenant_id": "t1"}, {"customer_id": "C2", "tenant_id": "t2"},
                      {"customer_id": "C3", "tenant_id": "t3", "status": "churned"},
                      {"customer_id": "C4", "tenant_id": "t4"}])  # fmt: skip
    allocated = _allocated([
        (D, "C1", "t1", "direct", 10.0, None),
        (D, "C2", "t2", "direct", 7.0, None),  # C2 has cost but no usage: flagged
        (D, "C3", "t3", "direct", 1.0, None),  # churned: not flagged
        (D, "C4", "t4", "direct", 3.0, None),  # storage but no requests is usage: not flagged
        (D, "C1", None, "observability", 2.0, None),
        (D, None, "ghost", "direct", 4.0, "unknown_tenant"),  # cost, no customer
    ])  # fmt: skip
    # canary and lurker: usage, no customer (lurker's is storage only: 0 requests).
    use = read(
        usage([("t1", "requests", 60), ("t1", "requests", 40), ("t4", "storage_bytes", 9),
               ("canary", "requests", 50), ("canary", "storage_bytes", 7), ("lurker", "storage_bytes", 5)]),
        checks.ORPHANS_USAGE_ROLLUP,
    )  # fmt: skip
    [out] = checks.orphans(allocated, use, cust, [D])
    assert not out.passed
    rows = {(r["kind"], r["who"], r["cost"], r["requests"]) for r in out.offenders.iter_rows(named=True)}
    assert rows == {("tenant without customer", "ghost", 4.0, None), ("tenant without customer", "canary", None, 50.0),
                    ("tenant without customer", "lurker", None, 0.0),
                    ("active customer without usage", "C2", 7.0, None)}  # fmt: skip
    assert out.figures == {"tenants_without_customer": 3, "customers_without_usage": 1, "orphan_cost": 11.0,
                           "scope": "all customers"}  # fmt: skip
    # A scoped rollout audits its own customers for missing usage; tenants without a customer
    # are reported whatever the scope.
    [scoped] = checks.orphans(allocated, use, cust, [D], scope=pl.col("customer_id") == "C1", scope_description="C1 only")
    assert {(r["kind"], r["who"]) for r in scoped.offenders.iter_rows(named=True)} == {
        ("tenant without customer", "ghost"), ("tenant without customer", "canary"), ("tenant without customer", "lurker")}  # fmt: skip
    assert scoped.figures["customers_without_usage"] == 0 and scoped.figures["scope"] == "C1 only"
    clean = _allocated([(D, "C1", "t1", "direct", 10.0, None)])
    assert checks.orphans(clean, read(usage([("t1", "requests", 1)]), checks.ORPHANS_USAGE_ROLLUP), cust, [D])[0].passed


@pytest.mark.parametrize("read", AS_READ.values(), ids=AS_READ.keys())
def test_usage_freshness_missing_and_dropped(read):
    # Each day's requests come from two tenants (600 + 400); the week's mean is 1000 a day.
    history = pl.concat([
        usage([("t1", "requests", 600), ("t2", "requests", 400), ("t1", "storage_bytes", 50)], day=d) for d in WEEK[:-1]
    ])  # fmt: skip

    def freshness(rows: pl.DataFrame) -> list:
        return checks.usage_freshness(read(rows, checks.FRESHNESS_ROLLUP), [D], 0.5)

    normal = pl.concat([history, usage([("t1", "requests", 500), ("t2", "requests", 400), ("t1", "storage_bytes", 50)], day=D)])
    assert freshness(normal)[0].passed
    dropped = pl.concat([history, usage([("t1", "requests", 300), ("t2", "requests", 100), ("t1", "storage_bytes", 50)], day=D)])
    [out] = freshness(dropped)
    assert not out.passed and out.severity == "WARN" and "requests" in out.description
    assert out.offenders.row(0, named=True)["change"] == pytest.approx(-0.6)  # 400 against 1000
    [missing] = freshness(history)
    assert not missing.passed and missing.severity == "ERROR" and "no usage telemetry" in missing.description


def test_nan_totals_fail_the_checks_never_pass_them():
    """A NaN compares false with every threshold; before, coverage nan% was 'above the floor'."""
    nan = float("nan")
    billed = pl.DataFrame({"day": [D], "cost": [nan]})
    [conservation] = checks.conservation(billed, _allocated([(D, "C1", "t1", "direct", nan, None)]), [D], 1e-6)
    assert not conservation.passed and "not numbers" in conservation.description
    coverage = pl.DataFrame(
        {"day": [D], "scope_type": ["overall"], "coverage": [nan], "untagged_cost": [0.0],
         "total_cost": [nan], "scope": ["all"]}
    )  # fmt: skip
    [floor] = checks.coverage_floor(coverage, [D], 0.85, 0.6)
    assert not floor.passed and floor.severity == "ERROR" and "not a number" in floor.description
    history = pl.concat([coverage.with_columns(pl.lit(d).alias("day"), pl.lit(0.9).alias("coverage")) for d in WEEK[:-1]] + [coverage])
    drift = checks.attribution_drift(history, [D], 5)[0]
    assert not drift.passed
