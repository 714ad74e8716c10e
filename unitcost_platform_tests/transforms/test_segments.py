"""Segment economics over 6 customers in 3 tiers, one churned and one without MRR, all hand-computed."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.transforms.segments import (
    SEGMENT_ECONOMICS_SCHEMA,
    SEGMENT_GROUPS_QUERY,
    UNIT_COST_COLUMNS,
    USAGE_ROLLUP,
    freemium_line,
    lowest_margin_tier,
    segment_economics,
    segment_usage,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import D, duckdb_tables, fake_snowflake_tables, usage

#          id     tier          segment paying status     mrr      run rate  cost of D  tenants
CUSTOMERS = [
    ("E1", "enterprise", "emea", True, "active", 10000.0, 1500.0, 50.0, ["e1"]),
    ("E2", "enterprise", "emea", True, "active", 6000.0, 900.0, 40.0, ["e2"]),
    ("S1", "smb", "na", True, "active", 500.0, 150.0, 5.0, ["s1a", "s1b"]),
    ("S2", "smb", "na", True, "active", 500.0, 210.0, 7.0, ["s2"]),
    ("S3", "smb", "na", True, "churned", 500.0, 300.0, 10.0, ["s3"]),  # churned: not in any group
    ("F1", "free", None, False, "active", 0.0, 240.0, 8.0, ["f1"]),     # no MRR, no segment
]  # fmt: skip


def _unit_cost(day: dt.date = D) -> pl.DataFrame:
    return pl.DataFrame(
        [{"day": day, "customer_id": c, "tier": t, "segment": s, "is_paying": p, "status": st, "mrr": m,
          "monthly_run_rate": rr, "total_cost": cost} for c, t, s, p, st, m, rr, cost, _ in CUSTOMERS],
    )  # fmt: skip


def _dimension(day: dt.date = D) -> pl.DataFrame:
    return pl.DataFrame(
        [{"snapshot_date": day, "tenant_id": tenant, "customer_id": c} for c, *_, tenants in CUSTOMERS for tenant in tenants]
    )


USAGE = usage([
    ("e1", "requests", 4000), ("e2", "requests", 2000), ("s1a", "requests", 600), ("s1b", "requests", 400),
    ("s3", "requests", 5000),   # the churned customer's usage is nobody's in the groups
    ("f1", "requests", 3000),
    ("tx", "requests", 9999),   # a tenant no customer owns
    ("e1", "storage_bytes", 100),
])  # fmt: skip


def _groups_in(engine: str, unit_cost: pl.DataFrame) -> pl.DataFrame:
    """SEGMENT_GROUPS_QUERY over `unit_cost` as the IO managers run it (DuckDB, Snowflake by fakesnow)."""
    rows = f"select {', '.join(UNIT_COST_COLUMNS)} from unitcost.unit_cost"
    if engine == "duckdb":
        out = duckdb_tables({"unit_cost": unit_cost})(SEGMENT_GROUPS_QUERY.statement(rows, None, DUCKDB))
    else:
        with fake_snowflake_tables({"unit_cost": unit_cost}) as snowflake:
            out = snowflake(SEGMENT_GROUPS_QUERY.statement(rows, None, SNOWFLAKE))
    return out.select(list(SEGMENT_GROUPS_QUERY.schema)).cast(SEGMENT_GROUPS_QUERY.schema)


@pytest.fixture(params=["polars", "duckdb", "snowflake"])
def engine(request) -> str:
    """Who sums the groups: Polars from unit_cost's rows, or the warehouse (what the asset reads)."""
    return request.param


def _run(engine: str = "polars", days=(D,)) -> pl.DataFrame:
    usage = apply_rollup(USAGE, USAGE_ROLLUP)
    if engine == "polars":
        return segment_economics(_unit_cost(), usage, _dimension(), list(days))
    group_usage = segment_usage(_unit_cost(), usage, _dimension(), list(days))
    return segment_economics(_groups_in(engine, _unit_cost()), group_usage, None, list(days))


def _row(out: pl.DataFrame, dimension: str, group: str, metric: str = "requests") -> dict:
    return out.filter(
        (pl.col("dimension") == dimension) & (pl.col("group_name") == group) & (pl.col("metric") == metric)
    ).row(0, named=True)


def test_tiers_with_shares_margins_and_percentiles(engine):
    out = _run(engine)
    assert out.schema == pl.Schema(SEGMENT_ECONOMICS_SCHEMA)
    # Active: E1, E2, S1, S2, F1. MRR 10000 + 6000 + 500 + 500 + 0 = 17000; run rate 1500 + 900 + 150 + 210 + 240 = 3000.
    ent = _row(out, "tier", "enterprise")
    assert (ent["customers"], ent["mrr"], ent["monthly_run_rate"]) == (2, 16000.0, 2400.0)
    assert ent["revenue_share"] == pytest.approx(16000 / 17000)
    assert ent["cost_share"] == pytest.approx(2400 / 3000)
    assert ent["cost_to_mrr"] == pytest.approx(2400 / 16000) and ent["infra_margin"] == pytest.approx(1 - 0.15)
    assert ent["total_cost"] == 90.0 and ent["median_cost_per_day"] == 45.0
    assert ent["p90_cost_per_day"] == pytest.approx(40 + 0.9 * (50 - 40))  # linear between the two
    assert ent["usage"] == 6000.0 and ent["usage_share"] == pytest.approx(6000 / 10000)

    smb = _row(out, "tier", "smb")  # S3 churned: only S1 and S2
    assert (smb["customers"], smb["mrr"], smb["monthly_run_rate"]) == (2, 1000.0, 360.0)
    assert smb["cost_to_mrr"] == pytest.approx(0.36) and smb["infra_margin"] == pytest.approx(0.64)
    assert smb["median_cost_per_day"] == 6.0 and smb["p90_cost_per_day"] == pytest.approx(5 + 0.9 * 2)
    assert smb["usage"] == 1000.0 and smb["usage_share"] == pytest.approx(0.1)  # S1's two tenants

    free = _row(out, "tier", "free")
    assert (free["customers"], free["mrr"], free["revenue_share"]) == (1, 0.0, 0.0)
    assert free["cost_share"] == pytest.approx(240 / 3000)
    assert free["cost_to_mrr"] is None and free["infra_margin"] is None  # no MRR: no ratio
    assert free["usage_share"] == pytest.approx(3000 / 10000)

    # storage_bytes: only E1 used any; the other groups have a row with 0.
    assert _row(out, "tier", "enterprise", "storage_bytes")["usage_share"] == 1.0
    assert _row(out, "tier", "free", "storage_bytes")["usage"] == 0.0
    assert _row(out, "tier", "free", "storage_bytes")["usage_share"] == 0.0


def test_every_dimension_shares_sum_to_one_and_groups_cover_the_active_customers(engine):
    out = _run(engine)
    assert set(out["dimension"]) == {"tier", "segment", "paying"}
    assert sorted(out.filter(pl.col("dimension") == "segment")["group_name"].unique()) == ["emea", "na", "unspecified"]
    for dimension in ("tier", "segment", "paying"):
        for metric in ("requests", "storage_bytes"):
            rows = out.filter((pl.col("dimension") == dimension) & (pl.col("metric") == metric))
            assert rows["revenue_share"].sum() == pytest.approx(1.0), dimension
            assert rows["cost_share"].sum() == pytest.approx(1.0), dimension
            assert rows["usage_share"].sum() == pytest.approx(1.0), (dimension, metric)
            assert rows["customers"].sum() == 5 and rows["mrr"].sum() == 17000.0


def test_paying_against_non_paying_the_freemium_line_and_the_lowest_margin_tier(engine):
    out = _run(engine)
    paying, free = _row(out, "paying", "paying"), _row(out, "paying", "non_paying")
    assert (paying["customers"], paying["mrr"], paying["monthly_run_rate"]) == (4, 17000.0, 2760.0)
    assert paying["cost_to_mrr"] == pytest.approx(2760 / 17000)
    assert (free["customers"], free["cost_share"], free["usage_share"]) == (1, pytest.approx(0.08), pytest.approx(0.3))
    # Non-paying: 3000 of 10000 requests, 240 of 3000 run rate, 0 of 17000 MRR.
    assert freemium_line(out) == "non-paying customers: 30.0% of requests, 8.0% of cost, 0% of revenue"
    lowest = lowest_margin_tier(out)
    assert (lowest["group_name"], lowest["infra_margin"]) == ("smb", pytest.approx(0.64))


def test_a_day_without_usage_has_one_row_per_group_and_no_customers_no_rows():
    out = segment_economics(_unit_cost(), apply_rollup(usage([]), USAGE_ROLLUP), _dimension(), [D])
    assert out.height == 3 + 3 + 2  # tiers, segments, paying classes
    assert out["metric"].null_count() == out.height and out["usage_share"].null_count() == out.height
    assert freemium_line(out) == "non-paying customers: 8.0% of cost, 0% of revenue"
    empty = segment_economics(_unit_cost(), USAGE, _dimension(), [D + dt.timedelta(days=1)])
    assert empty.is_empty() and empty.schema == pl.Schema(SEGMENT_ECONOMICS_SCHEMA)


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_warehouse_groups_equal_the_polars_twin(engine, seed):
    """Random days of unit_cost (tiers and segments some unspecified, paying unknown, churned rows, a
    run rate unknown, costs of zero and ties, shuffled): the warehouse's groups equal `segment_groups`,
    and segment economics from them equals it from the rows."""
    import random

    from polars.testing import assert_frame_equal

    from unitcost_platform.transforms.segments import segment_groups

    rng = random.Random(seed)
    days = [D - dt.timedelta(days=k) for k in range(3)]
    rows = [
        {"day": day, "customer_id": f"C{c:02d}", "tier": rng.choice(["smb", "mid", "enterprise", None]),
         "segment": rng.choice(["emea", "na", None]), "is_paying": rng.choice([True, False, None]),
         "status": rng.choice(["active"] * 4 + ["churned"]), "mrr": rng.choice([0.0, round(rng.uniform(10, 5000), 2)]),
         "monthly_run_rate": rng.choice([None, round(rng.uniform(0, 900), 4)]),
         "total_cost": rng.choice([0.0, 1.5, round(rng.lognormvariate(1, 1.2), 6)])}
        for day in days for c in range(rng.randrange(30, 60))
    ]  # fmt: skip
    unit_cost = pl.DataFrame(rows, schema_overrides={"segment": pl.String, "monthly_run_rate": pl.Float64})
    unit_cost = unit_cost.select(UNIT_COST_COLUMNS).sample(fraction=1.0, shuffle=True, seed=seed)
    keys = ["day", "dimension", "group_name"]
    expected = segment_groups(unit_cost, days).sort(keys)
    assert expected.height >= 3 * 8 and (expected["customers"] > 2).any()
    found = _groups_in(engine, unit_cost).sort(keys)
    assert_frame_equal(found, expected, check_exact=False, rel_tol=1e-12, abs_tol=1e-12)
    group_usage = segment_usage(unit_cost, apply_rollup(USAGE, USAGE_ROLLUP), _dimension(), days)
    assert_frame_equal(
        segment_economics(found, group_usage, None, days),
        segment_economics(unit_cost, group_usage, None, days),
        check_exact=False, rel_tol=1e-12, abs_tol=1e-12,
    )  # fmt: skip
