"""The demo SaaS: deterministic, realistic in the ways the issue names, and the pipeline runs on it.

Every expectation is computed from the generated files, not from the pipeline's own tables, except
the last tests, which run the README's main job over the whole demo range and read what it wrote.
"""

import datetime as dt
import json

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.cli import main, summarize
from unitcost_platform.definitions import build_definitions
from unitcost_platform.demo.generator import REGRESSION_DAY, DemoSpec, generate_demo
from unitcost_platform.settings import DEMO_DAYS, DEMO_START_DATE, PROJECT_ROOT
from unitcost_platform_tests.demo.conftest import LAST
from unitcost_platform_tests.saas import read_table

SHARED_BY_DESIGN = ["Amazon Virtual Private Cloud", "Elastic Load Balancing", "Amazon Relational Database Service",
                    "Amazon CloudWatch", "AWS Support (Business)"]  # fmt: skip


@pytest.fixture(scope="session")
def billing(demo_dir) -> pl.DataFrame:
    parquet = pl.read_parquet(demo_dir / "billing" / "aws-focus-*.parquet").with_columns(
        pl.col("Tags").cast(pl.List(pl.Struct({"key": pl.String, "value": pl.String}))).list.eval(
            pl.element().filter(pl.element().struct.field("key") == "tenant_id").struct.field("value")
        ).list.first().alias("tenant")
    )
    csv = pl.read_csv(demo_dir / "billing" / "*.csv", infer_schema=False, null_values="NULL").select(
        "ServiceName", "ResourceId", pl.col("EffectiveCost").cast(pl.Float64),
        pl.col("ChargePeriodStart").str.to_datetime("%Y-%m-%d %H:%M:%S"), pl.lit(None, dtype=pl.String).alias("tenant"),
    )  # fmt: skip
    return pl.concat([parquet.select(csv.columns), csv])


@pytest.fixture(scope="session")
def usage(demo_dir) -> pl.DataFrame:
    return pl.read_parquet(demo_dir / "usage" / "*.parquet")


@pytest.fixture(scope="session")
def customers(demo_dir) -> pl.DataFrame:
    return pl.read_csv(demo_dir / "customers.csv", try_parse_dates=True)


def test_same_seed_same_files(demo_dir, tmp_path):
    again = tmp_path / "again"
    generate_demo(again, DemoSpec(), log=lambda _: None)
    names = sorted(p.relative_to(demo_dir) for p in demo_dir.rglob("*") if p.is_file())
    assert names == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for name in names:
        if name.suffix == ".parquet":
            assert_frame_equal(pl.read_parquet(demo_dir / name), pl.read_parquet(again / name))
        else:
            assert (demo_dir / name).read_bytes() == (again / name).read_bytes()


def test_about_a_thousand_customers_in_five_tiers_with_mrr(customers):
    assert customers["customer_id"].n_unique() == 1000
    assert set(customers["tier"]) == {"enterprise", "mid-market", "smb", "trial", "free"}
    paying = customers.filter(pl.col("tier").is_in(["enterprise", "mid-market", "smb"]) & (pl.col("status") == "active"))
    assert (paying["mrr"] > 0).all()
    assert (customers.filter(pl.col("tier").is_in(["trial", "free"]))["mrr"] == 0).all()
    # History: onboarding, conversions and churn give some customers several rows.
    assert customers.filter(pl.col("status") == "churned").height > 0
    assert customers["valid_from"].drop_nulls().n_unique() > 10


def test_one_hundred_twenty_days_of_billing_and_usage(billing, usage):
    days = billing["ChargePeriodStart"].dt.date().unique()
    assert days.min() == DEMO_START_DATE and days.max() == LAST and days.len() == DEMO_DAYS
    assert usage["usage_date"].n_unique() == DEMO_DAYS
    assert set(usage["metric"]) == {"requests", "storage_bytes", "active_sessions", "searches"}


def test_one_tenant_uses_about_forty_times_the_median(usage):
    requests = usage.filter(pl.col("metric") == "requests")
    ratios = requests.group_by("usage_date").agg((pl.col("value").max() / pl.col("value").median()).alias("r"))
    assert 30 <= ratios["r"].median() <= 50
    top = requests.group_by("usage_date").agg(pl.col("tenant_id").sort_by("value").last())
    assert top["tenant_id"].n_unique() == 1  # the same tenant, every day
    second = requests.group_by("usage_date").agg(
        (pl.col("value").sort(descending=True).get(1) / pl.col("value").median()).alias("r")
    )
    assert second["r"].max() < 30  # the whale stands out


def test_free_and_trial_use_thirty_to_forty_percent_of_requests(usage, customers):
    requests = usage.filter(pl.col("metric") == "requests").join(customers, on="tenant_id", how="left")
    valid = (pl.col("valid_from").is_null() | (pl.col("valid_from") <= pl.col("usage_date"))) & (
        pl.col("valid_to").is_null() | (pl.col("usage_date") < pl.col("valid_to"))
    )
    requests = requests.filter(valid | pl.col("customer_id").is_null())
    share = requests.group_by("usage_date").agg(
        (pl.col("value").filter(pl.col("tier").is_in(["trial", "free"])).sum() / pl.col("value").sum()).alias("s")
    )
    assert share["s"].min() >= 0.28 and share["s"].max() <= 0.42
    assert 0.30 <= share["s"].mean() <= 0.40


def test_shared_infrastructure_is_untagged_and_five_to_fifteen_percent_is_untagged_by_mistake(billing):
    shared = billing.filter(pl.col("ServiceName").is_in(SHARED_BY_DESIGN) | pl.col("ResourceId").str.contains(":natgateway/"))
    assert set(SHARED_BY_DESIGN) <= set(shared["ServiceName"])
    assert shared["tenant"].null_count() == shared.height
    tenant_services = billing.filter(~pl.col("ServiceName").is_in(SHARED_BY_DESIGN) & ~pl.col("ResourceId").str.contains(":natgateway/"))
    mistakes = tenant_services.filter(pl.col("tenant").is_null() & (pl.col("ResourceId").str.contains(":savingsplan/").not_()))
    share = mistakes["EffectiveCost"].sum() / billing["EffectiveCost"].sum()
    assert 0.05 <= share <= 0.15


def test_the_main_job_on_the_demo_raises_every_kind_of_alert(demo_run, capsys):
    settings, _, result = demo_run
    assert result.success
    db = settings.duckdb_path
    unit = read_table(settings, "unit_cost").filter(pl.col("day") == LAST)
    ratio = unit["cost_to_mrr"]
    assert (ratio > 0.25).sum() >= 1
    assert ((ratio > 0.20) & (ratio <= 0.25)).sum() >= 1
    rising = unit.filter((pl.col("cost_growth_7d") > 0.15) & (pl.col("mrr_growth_7d") == 0))
    assert rising.height >= 1
    alerts = read_table(settings, "cost_alerts")
    assert set(alerts.filter(pl.col("day") == LAST)["alert_type"]) >= {"P1", "P2", "TREND", "SEGMENT"}
    # Every dollar of the 120 days is accounted for, and the blocking check says so day by day.
    billed = read_table(settings, "raw_billing")["EffectiveCost"].sum()
    assert read_table(settings, "allocated_cost")["allocated_cost"].sum() == pytest.approx(billed, rel=1e-9)
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    conservation = [ev for ev in evaluations if ev.check_name == "conservation"]
    assert len(conservation) == DEMO_DAYS and all(ev.passed for ev in conservation)
    # The tag audit sees the DynamoDB tagging break of day 100.
    gaps = {ev.partition for ev in evaluations if ev.check_name == "tag_propagation_gaps" and not ev.passed}
    assert (DEMO_START_DATE + dt.timedelta(days=100)).isoformat() in gaps
    # The orphans check (found by the warehouse) names the forgotten instance and the canary's usage every day.
    orphans = [ev for ev in evaluations if ev.check_name == "orphans"]
    assert len(orphans) == DEMO_DAYS and not any(ev.passed for ev in orphans)
    for ev in orphans:
        assert "legacy-import-0999" in ev.metadata["worst_offenders"].value and "synthetic-canary" in ev.metadata["worst_offenders"].value
        assert ev.metadata["tenants_without_customer"].value >= 2

    report = summarize(db, PROJECT_ROOT / "unitcost.yaml")
    assert f"Days processed: {DEMO_DAYS} ({DEMO_START_DATE} .. {LAST})" in report
    assert "Alerts by type: ANOMALY " in report and ", P1 " in report and "SEGMENT" in report and "TREND" in report
    assert "Cost forecast backtest (14 days ahead, customers with 60+ days of history): median absolute percentage error" in report
    assert main(["summary", "--duckdb", str(db)]) == 0
    assert "Customers over threshold" in capsys.readouterr().out


def test_demo_alerts_arrive_once_each_with_their_routing(demo_run, httpserver, monkeypatch):
    """Done-when of the alerting issue: a backfill's alerts reach a local receiver once, routed."""
    settings, instance, _ = demo_run
    for dest in ("finops", "compute", "data", "network"):
        monkeypatch.setenv(f"UNITCOST_WEBHOOK_{dest.upper()}", httpserver.url_for(f"/{dest}"))
        httpserver.expect_request(f"/{dest}").respond_with_data("ok")
    defs = build_definitions(settings)
    resources = {"unitcost": defs.resources["unitcost"]}
    sensor = defs.resolve_sensor_def("cost_alert_delivery")
    result = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert "0 pending" in result.skip_reason.skip_message

    alerts = read_table(settings, "cost_alerts")
    incidents = read_table(settings, "alert_incidents")
    received = [(req.path.strip("/"), json.loads(req.get_data())) for req, _ in httpserver.log]
    data_alerts = [body for dest, body in received if dest == "data" and body["kind"] == "unitcost.alert"]
    delivered = [b["incident_id"] for b in data_alerts if b["alert_type"] in ("P1", "P2", "FORECAST", "ANOMALY")]
    # One message per incident (a P2 that became a P1 in the same catch-up tick is one, escalated).
    assert len(delivered) == len(set(delivered))
    # Every incident with a P1, P2 or FORECAST naming a data-team service reached the data team's
    # webhook, and every ANOMALY whose largest price effect is a data-team service's.
    family = pl.when(pl.col("alert_type").is_in(["P1", "P2"])).then(pl.lit("COST_TO_MRR")).otherwise(pl.col("alert_type"))
    owned = (
        alerts.filter(
            pl.col("alert_type").is_in(["P1", "P2", "FORECAST"]) & pl.col("owners").str.contains("data-team")
            | (pl.col("alert_type") == "ANOMALY") & (pl.col("owners").str.split(",").list.first() == "data-team")
        )
        .with_columns(family.alias("family"))
        .join(incidents.select("day", "family", "customer_id", "incident_id"), on=["day", "family", "customer_id"])
    )
    assert owned.filter(pl.col("alert_type") == "ANOMALY").height > 0
    assert set(delivered) == set(owned["incident_id"]) and len(delivered) > 0
    # SEGMENT incidents went to the FinOps Slack channel, one message when each opened.
    segment_incidents = incidents.filter(pl.col("family") == "SEGMENT")["incident_id"].unique()
    finops_segment = [b["text"] for d, b in received if d == "finops" and b["text"].startswith(":busts_in_silhouette: SEGMENT")]
    assert len(finops_segment) == segment_incidents.len() > 0
    compute_p1 = [b for d, b in received if d == "compute" and b["text"].startswith(":rotating_light: P1")]
    assert any("Bluefin Labs" in b["text"] for b in compute_p1)
    assert not any("TREND" in b.get("text", "") for _, b in received)  # TREND waits for the digest
    # The fix Bluefin Labs' team shipped closed its incident: the compute team hears it once.
    resolved = [b for d, b in received if d == "compute" and b["text"].startswith(":white_check_mark: RESOLVED")]
    bluefin = [b for b in resolved if "Resolved: Bluefin Labs cost-to-MRR" in b["text"]]
    assert len(bluefin) == 1 and "Amazon Elastic Compute Cloud \u2212" in bluefin[0]["text"]
    # DynamoDB crossed its $24.50 target: its owner, the data team, has the unit-cost message.
    unit = [b for d, b in received if d == "data" and b["kind"] == "unitcost.unit_cost"]
    assert any(s["service_name"] == "Amazon DynamoDB" and s["crossed"] for b in unit for s in b["services"])
    total = len(httpserver.log)

    # Re-materializing the last day (restated billing) delivers nothing twice.
    job = defs.resolve_job_def("unit_cost_daily")
    job.execute_in_process(instance=instance, partition_key=LAST.isoformat())
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert "delivered 0" in again.skip_reason.skip_message
    assert len(httpserver.log) == total

    # TREND alerts arrive in the weekly digest.
    tick = dt.datetime.combine(LAST + dt.timedelta(days=1), dt.time(9), tzinfo=dt.UTC)
    [request] = defs.resolve_schedule_def("finops_weekly_digest_schedule").evaluate_tick(
        dg.build_schedule_context(scheduled_execution_time=tick)
    ).run_requests
    defs.resolve_job_def("finops_weekly_digest").execute_in_process(
        run_config=request.run_config, instance=instance, resources=resources
    )
    digest = [b for d, b in received + [(r.path.strip("/"), json.loads(r.get_data())) for r, _ in httpserver.log[total:]]
              if d == "finops" and b.get("text", "").startswith("Unit-cost weekly digest")]  # fmt: skip
    assert len(digest) == 1 and "Lantern Retail" in json.dumps(digest[0])


def test_the_demo_regression_is_an_anomaly_and_the_customer_towards_p2_is_forecast(demo_run):
    settings, _, result = demo_run
    alerts = read_table(settings, "cost_alerts")
    kestrel = alerts.filter((pl.col("alert_type") == "ANOMALY") & pl.col("message").str.contains("Kestrel Freight"))
    # Its compute cost per request triples on day 95, requests flat: one anomaly, that day, compute-team first.
    assert kestrel["day"].to_list() == [DEMO_START_DATE + dt.timedelta(days=REGRESSION_DAY)]
    assert kestrel["owners"][0].split(",")[0] == "compute-team"
    juniper = alerts.filter((pl.col("alert_type") == "FORECAST") & pl.col("message").str.contains("Juniper Robotics"))
    assert juniper.height == 1  # one warning for the crossing, days before it happens
    unit = read_table(settings, "unit_cost").filter(pl.col("customer_id") == juniper["customer_id"][0])
    assert unit.filter(pl.col("day") == juniper["day"][0])["cost_to_mrr"][0] <= 0.20
    forecast = read_table(settings, "margin_forecast").filter(pl.col("day") == LAST)
    assert forecast.filter(pl.col("customer_id") == juniper["customer_id"][0])["days_to_p2"][0] <= 14
