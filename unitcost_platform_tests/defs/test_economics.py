"""product_cost, segment_economics and customer_unit_costs through real Dagster runs on the small SaaS.

(Range against day-by-day and Snowflake against DuckDB cover these tables too: they are in TABLES.)
"""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest

from unitcost_platform.cli import economics_lines, summarize
from unitcost_platform.config import load_config
from unitcost_platform.definitions import build_definitions
from unitcost_platform.errors import ConfigError
from unitcost_platform.settings import WAREHOUSE_SCHEMA
from unitcost_platform_tests.saas import DAYS, materialization_metadata, read_table, run_range

ECONOMICS = (
    "products:\n"
    "  services: {Amazon EC2: app, NAT Gateway: network}\n"
    "  usage: {app: {metric: requests, per: 1000}}\n"
    "unit_metrics:\n"
    "  - {name: per_1k_requests, metric: requests, per: 1000}\n"
    "  - {name: per_gb_month, metric: storage_bytes, per: 1073741824}\n"
)


def _run(small_saas, make_settings, name: str, extra: str):
    path = small_saas / f"{name}.yaml"
    path.write_text((small_saas / "unitcost.yaml").read_text() + extra)
    settings = make_settings(small_saas, db_name=f"{name}.duckdb", config=path)
    result = run_range(settings, DAYS[0], DAYS[-1])
    assert result.success
    return settings, result


def test_products_sum_to_the_bill_and_the_app_outgrows_its_usage(small_saas, make_settings):
    settings, result = _run(small_saas, make_settings, "economics", ECONOMICS)
    products = read_table(settings, "product_cost")
    bill = read_table(settings, "raw_billing").group_by(pl.col("x_ChargeDate").alias("day")).agg(pl.col("EffectiveCost").sum())
    per_day = products.group_by("day").agg(pl.col("cost").sum()).join(bill, on="day")
    assert per_day.height == 16
    assert ((per_day["cost"] - per_day["EffectiveCost"]).abs() <= 1e-9 * per_day["EffectiveCost"].abs()).all()

    last = {r["product"]: r for r in products.filter(pl.col("day") == DAYS[-1]).iter_rows(named=True)}
    assert set(last) == {"app", "network", "unmapped"}
    # EC2 on the last day: t1 10 + t2 10 + tf 2 = 22, against 1000 + 500 + 500 requests.
    app = last["app"]
    assert (app["cost"], app["line_items"], app["units"]) == (22.0, 3, 2000.0)
    assert app["cost_per_unit"] == pytest.approx(22.0 / 2000 * 1000)
    # Days 9-15 at 22/day against days 2-8 at 17/day (t2 cost 5 then 10); requests flat.
    assert app["cost_growth_7d"] == pytest.approx(7 * 22 / (7 * 17) - 1)
    assert app["units_growth_7d"] == pytest.approx(0.0) and app["cost_outgrowing_usage"] is True
    assert last["network"]["cost"] == pytest.approx(3.0) and last["network"]["units"] is None
    assert last["unmapped"]["cost"] == pytest.approx(1.0 + 1.2)  # Lambda and CloudWatch
    # The first 13 days have no 14 days of history: no growth.
    assert products.filter(pl.col("day") < DAYS[13])["cost_growth_7d"].null_count() == products.filter(
        pl.col("day") < DAYS[13]
    ).height
    md = materialization_metadata(result, "product_cost", DAYS[-1].isoformat())
    assert md["cost_outgrowing_usage"].startswith("app (cost +29.4% against requests +0.0% in 7 days)")
    assert md["total_cost"] == pytest.approx(27.2)
    # `unitcost summary` prints it, with the freemium line: F has 500 of the 2000 requests and no MRR.
    lines = economics_lines(settings.duckdb_path, DAYS[-1])
    assert lines[0].startswith(f"Freemium on {DAYS[-1]}: non-paying customers: 25.0% of requests, ")
    # C2 (smb): run rate 30 x (9 x 6.4 + 7 x 11.4) / 16 = 257.625 on 900 MRR: margin 1 - 0.28625 = 71.4%;
    # C1 (mid-market): 30 x 12.4 = 372 on 3000: 87.6%. The small SaaS's segment is its tier.
    assert lines[1] == f"Lowest-margin tier on {DAYS[-1]}: smb (infra margin 71.4%)"
    assert lines[3] == f"Lowest-margin segment on {DAYS[-1]}: smb (infra margin 71.4%)"
    assert lines[2] == f"Products whose cost outgrows their usage on {DAYS[-1]}: app (cost +29.4% against requests +0.0% in 7 days)"
    assert lines[2] in summarize(settings.duckdb_path, settings.config_path).splitlines()


def _run_selected(settings, assets: list[str], first: dt.date, last: dt.date, instance):
    """One run of `assets` only over [first, last], as selecting them in the UI does."""
    job = build_definitions(settings).resolve_job_def("unit_cost_daily")
    subset = job.get_subset(asset_selection={dg.AssetKey(a) for a in assets})
    return subset.execute_in_process(
        instance=instance, raise_on_error=False,
        tags={"dagster/asset_partition_range_start": first.isoformat(),
              "dagster/asset_partition_range_end": last.isoformat()},
    )  # fmt: skip


def test_product_billing_days_summed_with_other_tag_keys_are_not_counted(small_saas, make_settings):
    """product_cost reads 14 days of product_billing; a day summed with other products.tag_keys is
    refused for the run's own day and left out of the 7-day growth for the days before it."""
    settings, _ = _run(small_saas, make_settings, "economics", ECONOMICS)
    assert set(read_table(settings, "product_billing")["product_tag_keys"]) == {'["product", "app"]'}
    # The same warehouse, now with the tenant tag as the product tag: EC2 goes to t1, t2 and tf.
    by_tenant = small_saas / "by_tenant.yaml"
    by_tenant.write_text(settings.config_path.read_text().replace("products:\n", "products:\n  tag_keys: [tenant_id]\n"))
    settings = make_settings(small_saas, db_name="economics.duckdb", config=by_tenant)
    last, instance = DAYS[-1], dg.DagsterInstance.ephemeral()

    alone = _run_selected(settings, ["product_cost"], last, last, instance)
    assert not alone.success
    failure = next(e for e in alone.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert (f"product_billing of {last} was summed with other products.tag_keys than [\"tenant_id\"]: materialize "
            f"product_billing for {last} with product_cost") in failure.event_specific_data.error.message  # fmt: skip

    day = _run_selected(settings, ["product_billing", "product_cost"], last, last, instance)
    assert day.success
    products = read_table(settings, "product_cost").filter(pl.col("day") == last)
    rows = {r["product"]: r for r in products.iter_rows(named=True)}
    assert {p: rows[p]["cost"] for p in ("t1", "t2", "tf")} == {"t1": 10.0, "t2": 10.0, "tf": 2.0}
    # The 13 days before were summed with the product/app keys: not counted, no growth, and said so.
    assert rows["t2"]["cost_7d"] == 10.0 and products["cost_growth_7d"].null_count() == products.height
    logs = [e.user_message for e in instance.all_logs(day.run_id) if e.user_message]
    assert any(m.startswith(f"product_billing of {DAYS[2]}..{DAYS[14]} was summed with other products.tag_keys") for m in logs)

    assert _run_selected(settings, ["product_billing"], DAYS[2], DAYS[14], instance).success
    assert _run_selected(settings, ["product_cost"], last, last, instance).success
    rows = {r["product"]: r for r in read_table(settings, "product_cost").filter(pl.col("day") == last).iter_rows(named=True)}
    # t2: 10 a day on days 9-15 against 5 on days 2-8; t1 flat at 10.
    assert rows["t2"]["cost_7d"] == 70.0 and rows["t2"]["cost_growth_7d"] == pytest.approx(1.0)
    assert rows["t1"]["cost_growth_7d"] == pytest.approx(0.0)

    # A billed day without product_billing (a warehouse from before the table): not counted, and said so.
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(f"delete from {WAREHOUSE_SCHEMA}.product_billing where day = ?", [DAYS[4]])
    again = _run_selected(settings, ["product_cost"], last, last, instance)
    rows = {r["product"]: r for r in read_table(settings, "product_cost").filter(pl.col("day") == last).iter_rows(named=True)}
    assert rows["t2"]["cost_prev_7d"] == 30.0 and rows["t2"]["cost_growth_7d"] is None
    logs = [e.user_message for e in instance.all_logs(again.run_id) if e.user_message]
    assert any(m.startswith(f"product_billing of {DAYS[4]} is not materialized, though those days are billed") for m in logs)
    # The run's own day without product_billing is refused: its bill would have no product at all.
    with duckdb.connect(str(settings.duckdb_path)) as con:
        con.execute(f"delete from {WAREHOUSE_SCHEMA}.product_billing where day = ?", [last])
    refused = _run_selected(settings, ["product_cost"], last, last, instance)
    failure = next(e for e in refused.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert (f"product_billing of {last} is not materialized, though those days are billed: materialize "
            f"product_billing for {last} with product_cost") in failure.event_specific_data.error.message  # fmt: skip


def test_unit_metrics_default_equals_unit_cost_and_an_unseen_metric_is_a_warning(small_saas, make_settings):
    settings, result = _run(small_saas, make_settings, "economics", ECONOMICS)
    units = read_table(settings, "customer_unit_costs")
    unit = read_table(settings, "unit_cost")
    assert units.height == 16 * 3 * 2
    per_1k = units.filter(pl.col("unit_metric") == "per_1k_requests").join(unit, on=["day", "customer_id"])
    assert per_1k.height == 16 * 3
    assert per_1k["cost_per_unit"].to_list() == per_1k["cost_per_1k_requests"].to_list()
    c2 = per_1k.filter((pl.col("customer_id") == "C2") & (pl.col("day") == DAYS[9])).row(0, named=True)
    # C2: 11.4 on day 9 against 6.4 on day 2, 500 requests both days.
    assert c2["cost_per_unit"] == pytest.approx(11.4 / 500 * 1000)
    assert c2["cost_per_unit_7d_change"] == pytest.approx(11.4 / 6.4 - 1)
    assert units.filter(pl.col("unit_metric") == "per_gb_month")["units"].null_count() == 16 * 3
    md = materialization_metadata(result, "customer_unit_costs", DAYS[-1].isoformat())
    # The range run read its days and the week before them: one run of consecutive days.
    read = f"{(DAYS[0] - dt.timedelta(days=7)).isoformat()}..{DAYS[-1].isoformat()}"
    assert f"unit_metrics per_gb_month: metric 'storage_bytes' appears in no usage of {read};" in md["config_warnings"]
    assert md["unit_metrics"] == ["per_1k_requests", "per_gb_month"]


def test_segment_economics_with_and_without_a_scope(small_saas, make_settings):
    everyone, result = _run(small_saas, make_settings, "everyone", "")
    seg = read_table(everyone, "segment_economics").filter(pl.col("day") == DAYS[-1])
    tiers = {r["group_name"]: r for r in seg.filter(pl.col("dimension") == "tier").iter_rows(named=True)}
    assert set(tiers) == {"mid-market", "smb", "free"}
    # Requests on the last day: C1 1000, C2 500, F 500 of 2000; MRR 3000 + 900 + 0.
    assert tiers["free"]["usage_share"] == pytest.approx(0.25) and tiers["free"]["revenue_share"] == 0.0
    assert tiers["smb"]["revenue_share"] == pytest.approx(900 / 3900)
    # C2's run rate 30 x (9 x 6.4 + 7 x 11.4) / 16 on 900 MRR.
    assert tiers["smb"]["cost_to_mrr"] == pytest.approx(30 * (9 * 6.4 + 7 * 11.4) / 16 / 900)
    md = materialization_metadata(result, "segment_economics", DAYS[-1].isoformat())
    assert md["freemium"].startswith("non-paying customers: 25.0% of requests, ")
    assert md["freemium"].endswith(", 0% of revenue")
    assert md["lowest_margin_tier"].startswith("smb: infra margin ")

    scoped, result = _run(small_saas, make_settings, "scoped", "scope: {tiers: [smb]}\n")
    seg_scoped = read_table(scoped, "segment_economics")
    assert set(seg_scoped["group_name"]) == {"smb", "paying"}
    # Within the scope C2 is all the revenue, cost and usage; its figures are unchanged by the scope.
    last = seg_scoped.filter((pl.col("day") == DAYS[-1]) & (pl.col("dimension") == "tier")).row(0, named=True)
    assert (last["revenue_share"], last["cost_share"], last["usage_share"]) == (1.0, 1.0, 1.0)
    assert last["cost_to_mrr"] == pytest.approx(tiers["smb"]["cost_to_mrr"])
    assert set(read_table(scoped, "customer_unit_costs")["customer_id"]) == {"C2"}
    assert materialization_metadata(result, "segment_economics", DAYS[-1].isoformat())["scope"] == "tier in smb"


def test_bad_economics_config_names_the_key(tmp_path):
    path = tmp_path / "unitcost.yaml"
    path.write_text("unit_metrics:\n  - {name: per_call, metric: calls}\n  - {name: per_call, metric: requests}\n")
    with pytest.raises(ConfigError, match="unit_metrics: names must be unique; repeated: per_call"):
        load_config(path)
    path.write_text("unit_metrics:\n  - {name: per call, metric: calls}\n")
    with pytest.raises(ConfigError, match=r"unit_metrics\.0\.name: unit metric name 'per call' must be"):
        load_config(path)
    path.write_text("unit_metrics: []\n")
    with pytest.raises(ConfigError, match="unit_metrics: List should have at least 1 item"):
        load_config(path)
    path.write_text("products:\n  usage: {search: {metric: requests, per: 0}}\n")
    with pytest.raises(ConfigError, match=r"products\.usage\.search\.per: Input should be greater than 0"):
        load_config(path)
    path.write_text("products:\n  service: {Amazon EC2: api}\n")
    with pytest.raises(ConfigError, match=r"products\.service: unknown key"):
        load_config(path)
    path.write_text("")
    cfg = load_config(path)  # the defaults: cost per 1k requests, product/app tags, 5 points of tolerance
    assert [(m.name, m.metric, m.per) for m in cfg.unit_metrics] == [("per_1k_requests", "requests", 1000.0)]
    assert (cfg.products.tag_keys, cfg.products.tolerance) == (["product", "app"], 0.05)
