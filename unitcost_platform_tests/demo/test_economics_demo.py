"""Walk and Run on the demo: products sum to the bill, search outgrows its usage, the freemium line."""

import polars as pl
import pytest

from unitcost_platform.cli import economics_lines
from unitcost_platform.demo.generator import SEARCH_CACHE_DROP
from unitcost_platform.settings import DEMO_DAYS
from unitcost_platform_tests.demo.conftest import LAST
from unitcost_platform_tests.saas import materialization_metadata, read_table


def test_products_sum_to_each_days_bill_and_search_outgrows_its_usage(demo_run):
    settings, _, result = demo_run
    products = read_table(settings, "product_cost")
    raw = read_table(settings, "raw_billing")
    bill = raw.group_by(pl.col("x_ChargeDate").alias("day")).agg(pl.col("EffectiveCost").sum().alias("bill"))
    per_day = products.group_by("day").agg(pl.col("cost").sum()).join(bill, on="day", how="full", coalesce=True)
    assert per_day.height == DEMO_DAYS
    assert ((per_day["cost"] - per_day["bill"]).abs() <= 1e-9 * per_day["bill"].abs()).all()

    last = {r["product"]: r for r in products.filter(pl.col("day") == LAST).iter_rows(named=True)}
    assert set(last) == {"api", "search", "file-storage", "observability", "unmapped"}
    # The support plan is the one service nobody mapped: it is shown as unmapped, not dropped.
    support = raw.filter((pl.col("x_ChargeDate") == LAST) & (pl.col("ServiceName") == "AWS Support (Business)"))
    assert last["unmapped"]["cost"] == pytest.approx(support["EffectiveCost"].sum()) and support.height > 0
    search = last["search"]
    assert search["product_source"] == "tag" and search["usage_metric"] == "searches"
    # The cache shipped 10 days before the end: this week all at 70%, the week before 4 days at 100%
    # and 3 at 70%, so usage fell by about 1 - 7 x 0.7 / (4 + 3 x 0.7) = 19.7%; the clusters cost the same.
    expected = 7 * (1 - SEARCH_CACHE_DROP) / (4 + 3 * (1 - SEARCH_CACHE_DROP)) - 1
    assert search["units_growth_7d"] == pytest.approx(expected, abs=0.03)
    assert abs(search["cost_growth_7d"]) < 0.03
    assert search["cost_outgrowing_usage"] is True
    flagged = [p for p, r in last.items() if r["cost_outgrowing_usage"]]
    assert flagged == ["search"]
    md = materialization_metadata(result, "product_cost", LAST.isoformat())
    assert md["cost_outgrowing_usage"].startswith("search (cost ")


def test_segment_economics_and_unit_metrics_on_the_demo(demo_run):
    settings, _, result = demo_run
    seg = read_table(settings, "segment_economics").filter(
        (pl.col("day") == LAST) & (pl.col("metric") == "requests")
    )
    for dimension in ("tier", "segment", "paying"):
        rows = seg.filter(pl.col("dimension") == dimension)
        for share in ("revenue_share", "cost_share", "usage_share"):
            assert rows[share].sum() == pytest.approx(1.0), (dimension, share)
    non_paying = seg.filter((pl.col("dimension") == "paying") & (pl.col("group_name") == "non_paying")).row(0, named=True)
    # The demo's free and trial tenants use 30-40% of the requests and pay nothing.
    assert 0.30 <= non_paying["usage_share"] <= 0.40 and non_paying["revenue_share"] == 0.0
    md = materialization_metadata(result, "segment_economics", LAST.isoformat())
    assert md["freemium"].startswith(f"non-paying customers: {non_paying['usage_share']:.1%} of requests, ")
    tiers = seg.filter((pl.col("dimension") == "tier") & pl.col("infra_margin").is_not_null())
    assert md["lowest_margin_tier"].startswith(tiers.sort("infra_margin")["group_name"][0] + ": infra margin ")

    units = read_table(settings, "customer_unit_costs").filter(pl.col("day") == LAST)
    unit = read_table(settings, "unit_cost").filter(pl.col("day") == LAST)
    assert units.height == 3 * unit.height
    per_1k = units.filter(pl.col("unit_metric") == "per_1k_requests").join(unit, on=["day", "customer_id"])
    assert per_1k["cost_per_unit"].to_list() == per_1k["cost_per_1k_requests"].to_list()
    # Only enterprise and mid-market customers search; everyone else has 0 searches, so no cost per search.
    searches = units.filter(pl.col("unit_metric") == "per_1k_searches")
    assert searches.filter(pl.col("tier").is_in(["smb", "trial", "free"]))["cost_per_unit"].null_count() == (
        searches.filter(pl.col("tier").is_in(["smb", "trial", "free"])).height
    )
    assert searches.filter(pl.col("tier") == "enterprise")["cost_per_unit"].null_count() == 0
    meta = materialization_metadata(result, "customer_unit_costs", LAST.isoformat())
    assert meta["config_warnings"] == "none"

    lines = economics_lines(settings.duckdb_path, LAST)
    assert lines[0] == f"Freemium on {LAST}: {md['freemium']}"
    assert lines[2].startswith(f"Products whose cost outgrows their usage on {LAST}: search (cost ")
