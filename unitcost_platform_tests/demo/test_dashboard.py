"""Team spend and the dashboard on the demo, looked at in a real headless Chromium."""


import polars as pl
import pytest

from unitcost_platform.dashboard import DashboardInputs, render_dashboard
from unitcost_platform.defs.assets.dashboard import dashboard_file
from unitcost_platform.settings import DEMO_DAYS, PROJECT_ROOT
from unitcost_platform_tests.browser import open_page
from unitcost_platform_tests.demo.conftest import LAST
from unitcost_platform_tests.saas import materialization_metadata, read_table

PLOTS = [
    "cost_distribution", "top_cost_to_mrr", "paying_vs_non_paying", "growth_ratio",
    "tag_coverage", "unallocated_by_reason", "team_spend", "unit_cost",
    "service_cost_against_target", "alert_incidents",
    "product_growth", "segment_economics", "cost_per_unit",
    "anomaly_impact", "projected_crossings",
]  # fmt: skip


def test_team_spend_sums_to_each_days_bill(demo_run):
    settings, _, result = demo_run
    assert result.success
    bill = read_table(settings, "raw_billing").group_by(pl.col("x_ChargeDate").alias("day")).agg(
        pl.col("EffectiveCost").sum().alias("bill")
    )
    teams = read_table(settings, "team_spend")
    per_day = teams.group_by("day").agg(pl.col("cost").sum()).join(bill, on="day", how="full", coalesce=True)
    assert per_day.height == DEMO_DAYS
    assert (per_day["cost"] - per_day["bill"]).abs().max() < 1e-6
    # Where no team/owner tag is set, the service's owner from unitcost.yaml gets the cost; the
    # monthly support plan has neither, and is shown as unowned.
    raw = read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == LAST).with_columns(
        pl.col("Tags").str.json_path_match("$.team").alias("team_tag")
    )
    ec2 = raw.filter((pl.col("ServiceName") == "Amazon Elastic Compute Cloud") & pl.col("team_tag").is_null())
    support = raw.filter(pl.col("ServiceName") == "AWS Support (Business)")
    last = teams.filter(pl.col("day") == LAST)
    compute = last.filter((pl.col("team") == "compute-team") & (pl.col("owner_source") == "service"))
    assert compute["cost"].sum() == pytest.approx(ec2["EffectiveCost"].sum())
    unowned = last.filter(pl.col("team") == "unowned")
    assert unowned["cost"].sum() == pytest.approx(support["EffectiveCost"].sum()) and support.height > 0
    tagged = raw.filter(pl.col("team_tag").is_not_null()).group_by("team_tag").agg(pl.col("EffectiveCost").sum())
    for team, cost in tagged.iter_rows():
        row = last.filter((pl.col("team") == team) & (pl.col("owner_source") == "tag"))
        assert row["cost"].sum() == pytest.approx(cost)


def test_dashboard_metadata_links_the_page_and_carries_the_headline(demo_run):
    settings, _, result = demo_run
    meta = materialization_metadata(result, "unit_cost_dashboard", LAST.isoformat())
    page = dashboard_file(settings.dashboard_dir, LAST)
    assert meta["dashboard"] == str(page.resolve()) and page.exists()
    assert meta["dashboard_url"] == page.resolve().as_uri()
    assert meta["plots"] == len(PLOTS) and meta["scope"] == "all customers"
    unit = read_table(settings, "unit_cost").filter(pl.col("day") == LAST)
    bill = read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == LAST)["EffectiveCost"].sum()
    assert meta["customers"] == unit.height == 1000
    assert meta["bill_total"] == pytest.approx(bill, abs=0.01)
    assert meta["customer_cost"] == pytest.approx(unit["total_cost"].sum(), abs=0.01)
    assert meta["median_cost_per_customer"] == pytest.approx(unit["total_cost"].median(), abs=0.01)
    assert meta["customers_over_p1"] == unit.filter(pl.col("cost_to_mrr") > 0.25).height >= 1
    # The one-tenant-at-40x-the-median tail is visible in the headline.
    assert meta["max_to_median"] >= 40
    # A range run renders one page, as of its last day; the other days link it and keep their numbers.
    first = materialization_metadata(result, "unit_cost_dashboard", (LAST.replace(day=1)).isoformat())
    assert first["rendered_as_of"] == LAST.isoformat() and first["dashboard"] == meta["dashboard"]
    assert first["customers"] == read_table(settings, "unit_cost").filter(pl.col("day") == LAST.replace(day=1)).height


def test_the_dashboard_renders_every_plot_offline_with_no_console_errors(demo_run, tmp_path):
    settings, _, _ = demo_run
    page = dashboard_file(settings.dashboard_dir, LAST)
    view = open_page(page, tmp_path / "dashboard.png", tmp_path / "chromium-profile")
    assert view.rendered_flag == len(PLOTS), view
    assert [p["name"] for p in view.plots] == PLOTS
    for plot in view.plots:
        assert plot["svg"] and plot["traces"] >= 1 and plot["points"] >= 1 and plot["drawn"] >= 1, plot
    by_name = {p["name"]: p for p in view.plots}
    assert "costliest is" in by_name["cost_distribution"]["title"]
    # Walk and Run: the demo's search product outgrows its usage; five tiers; three unit metrics x (median, p90).
    assert by_name["product_growth"]["title"].endswith("search outgrows its usage")
    assert by_name["segment_economics"]["points"] >= 4 * 5
    assert by_name["cost_per_unit"]["traces"] == 3 * 2 and by_name["cost_per_unit"]["points"] >= 3 * 2 * 30
    # Five tiers of customers over 30+ days: the history plots have a point per day and series.
    assert by_name["paying_vs_non_paying"]["points"] >= 2 * 30
    assert view.console == [] or all(entry["level"] not in ("SEVERE", "WARNING") for entry in view.console), view.console
    assert view.resources == [], "the page fetched something; it must work offline"
    png = view.screenshot.read_bytes()
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and len(png) > 50_000


def test_the_browser_check_sees_a_broken_page(tmp_path):
    """The checks above can fail: a page with a script error and an empty plot is caught."""
    inputs = DashboardInputs(
        day=LAST, unit_cost=pl.DataFrame(schema={"day": pl.Date, "customer_id": pl.String, "customer_name": pl.String,
                                                 "tier": pl.String, "is_paying": pl.Boolean, "mrr": pl.Float64,
                                                 "total_cost": pl.Float64, "cost_to_mrr": pl.Float64,
                                                 "monthly_run_rate": pl.Float64}),
        growth=pl.DataFrame(schema={"day": pl.Date, "ratio": pl.Float64}),
        coverage=pl.DataFrame(schema={"day": pl.Date, "total_cost": pl.Float64, "coverage": pl.Float64,
                                      "tagged_share": pl.Float64}),
        unallocated=pl.DataFrame(schema={"day": pl.Date, "unallocated_reason": pl.String, "allocated_cost": pl.Float64}),
        team_spend=pl.DataFrame(schema={"day": pl.Date, "team": pl.String, "cost": pl.Float64}),
        p1_cost_to_mrr=0.25, p2_cost_to_mrr=0.2,
    )  # fmt: skip
    html = render_dashboard(inputs).html.replace("</body>", "<script>undefinedFunction();</script></body>")
    page = tmp_path / "broken.html"
    page.write_text(html)
    view = open_page(page, tmp_path / "broken.png", tmp_path / "profile")
    assert any(entry["level"] == "SEVERE" and "undefinedFunction" in entry["message"] for entry in view.console)
    empty = [p["name"] for p in view.plots if p["points"] == 0]
    assert "cost_distribution" in empty and "team_spend" in empty


def test_readme_shows_the_dashboard():
    readme = (PROJECT_ROOT / "README.md").read_text()
    assert "docs/dashboard.png" in readme and (PROJECT_ROOT / "docs" / "dashboard.png").exists()
    assert "unit_cost_dashboard" in readme
