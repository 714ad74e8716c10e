"""The whole pipeline through real Dagster runs into a temporary DuckDB."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.transforms.alerts import COST_ALERTS_SCHEMA
from unitcost_platform.transforms.allocation import ALLOCATED_COST_SCHEMA
from unitcost_platform.transforms.anomalies import COST_ANOMALIES_SCHEMA
from unitcost_platform.transforms.coverage import TAG_COVERAGE_SCHEMA
from unitcost_platform.transforms.forecast import MARGIN_FORECAST_SCHEMA
from unitcost_platform.transforms.growth import GROWTH_EFFICIENCY_SCHEMA
from unitcost_platform.transforms.incidents import INCIDENTS_SCHEMA
from unitcost_platform.transforms.service_unit_cost import SERVICE_UNIT_COST_SCHEMA
from unitcost_platform.transforms.unit_cost import UNIT_COST_SCHEMA
from unitcost_platform_tests.saas import DAYS, TABLES, read_table, run_range, sorted_table


def test_range_run_writes_every_table_with_its_columns(small_saas, make_settings):
    settings = make_settings(small_saas)
    result = run_range(settings, DAYS[0], DAYS[-1])
    assert result.success
    for table, schema in [("allocated_cost", ALLOCATED_COST_SCHEMA), ("unit_cost", UNIT_COST_SCHEMA),
                          ("cost_alerts", COST_ALERTS_SCHEMA), ("tag_coverage", TAG_COVERAGE_SCHEMA),
                          ("growth_efficiency", GROWTH_EFFICIENCY_SCHEMA),
                          ("service_unit_cost", SERVICE_UNIT_COST_SCHEMA), ("alert_incidents", INCIDENTS_SCHEMA),
                          ("cost_anomalies", COST_ANOMALIES_SCHEMA), ("margin_forecast", MARGIN_FORECAST_SCHEMA)]:  # fmt: skip
        frame = read_table(settings, table)
        assert frame.schema == pl.Schema(schema), table
    billing = read_table(settings, "raw_billing")
    assert billing["x_ChargeDate"].n_unique() == 16 and billing.height == 16 * 8
    # Conservation, day by day: 19.2 + the rising C2 cost.
    alloc = read_table(settings, "allocated_cost").group_by("day").agg(pl.col("allocated_cost").sum())
    bill = billing.group_by("x_ChargeDate").agg(pl.col("EffectiveCost").sum())
    joined = alloc.join(bill, left_on="day", right_on="x_ChargeDate")
    assert joined.height == 16
    assert (joined["allocated_cost"] - joined["EffectiveCost"]).abs().max() < 1e-9


def test_unit_cost_and_alerts_of_the_last_day(small_saas, make_settings):
    settings = make_settings(small_saas)
    run_range(settings, DAYS[0], DAYS[-1])
    unit = read_table(settings, "unit_cost").filter(pl.col("day") == DAYS[-1])
    c2 = unit.filter(pl.col("customer_id") == "C2").row(0, named=True)
    # C2 direct 10; NAT 3 x 500/2000 = 0.75; CloudWatch 1.2 / 3 = 0.4; Lambda 1 x 500/2000 = 0.25.
    assert c2["direct_cost"] == pytest.approx(10.0)
    assert c2["shared_cost"] == pytest.approx(0.75 + 0.4 + 0.25)
    assert c2["requests"] == 500 and c2["cost_per_1k_requests"] == pytest.approx(11.4 / 0.5)
    # 7-day growth on day 15: days 9-15 at 11.4/day against days 2-8 at 6.4/day.
    assert c2["cost_7d"] == pytest.approx(7 * 11.4)
    assert c2["cost_prev_7d"] == pytest.approx(7 * 6.4)
    assert c2["cost_growth_7d"] == pytest.approx(11.4 / 6.4 - 1)
    assert c2["history_days"] == 16
    assert c2["monthly_run_rate"] == pytest.approx(30 * (9 * 6.4 + 7 * 11.4) / 16)
    alerts = read_table(settings, "cost_alerts")
    # C2: run rate 30 x (9 x 6.4 + 7 x 11.4) / 16 = 257.6 on 900 MRR is 28.6% -> P1 on the last day.
    last = alerts.filter(pl.col("day") == DAYS[-1])
    assert ("P1", "C2") in last.select("alert_type", "customer_id").rows()
    # The week C2's cost jumped (day 9 onwards compared with the week before) raised TREND alerts.
    assert alerts.filter((pl.col("alert_type") == "TREND") & (pl.col("customer_id") == "C2")).height > 0
    growth = read_table(settings, "growth_efficiency")
    assert growth.height == 16 and growth["ratio"].null_count() == 16  # 120 days of history needed


def test_rematerializing_a_day_leaves_identical_tables(small_saas, make_settings):
    settings = make_settings(small_saas)
    run_range(settings, DAYS[0], DAYS[-1])
    before = {t: sorted_table(settings, t) for t in TABLES}
    run_range(settings, DAYS[10], DAYS[10])
    run_range(settings, DAYS[3], DAYS[5])
    # The same rows, keys and flags exactly; amounts to 1e-12 relative, as in a range against
    # day-by-day runs: a daily run of unit_cost adds its windows' days in the warehouse's order, a range
    # run as differences of running totals (so even before, a day re-run after a range longer than
    # the 30-day window differed in the last bits).
    for table in TABLES:
        assert_frame_equal(sorted_table(settings, table), before[table], rel_tol=1e-12, abs_tol=1e-12)


def test_range_run_equals_day_by_day_runs(small_saas, make_settings):
    ranged = make_settings(small_saas, "ranged.duckdb")
    daily = make_settings(small_saas, "daily.duckdb")
    run_range(ranged, DAYS[0], DAYS[-1])
    instance = dg.DagsterInstance.ephemeral()
    for day in DAYS:
        run_range(daily, day, day, instance=instance)
    for table in TABLES:
        assert_frame_equal(sorted_table(ranged, table), sorted_table(daily, table), rel_tol=1e-12, abs_tol=1e-12)


def test_per_day_metadata_in_a_range_run(small_saas, make_settings):
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()
    run_range(settings, DAYS[0], DAYS[-1], instance=instance)
    totals = {}
    for day in (DAYS[0], DAYS[-1]):
        event = instance.get_latest_materialization_event(dg.AssetKey("raw_billing"))  # any event exists
        assert event is not None
        records = instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("unit_cost"), asset_partitions=[day.isoformat()]), limit=1
        ).records
        md = records[0].asset_materialization.metadata
        totals[day] = md["total_cost"].value
        assert md["dagster/row_count"].value == 3
        assert "top_cost_to_mrr" in md
    # Day 0: 10 + 5 + 2 + 4.2 + 1.2 = 19.2 + ... minus nothing unallocated; the last day has C2 at 10.
    assert totals[DAYS[0]] == pytest.approx(22.2)
    assert totals[DAYS[-1]] == pytest.approx(27.2)
    # allocated_cost's figures of day 0: t1 10, t2 5, tf 2, Lambda 1 (default pool), CloudWatch 1.2, NAT 3 x 1.
    allocated = instance.fetch_materializations(
        dg.AssetRecordsFilter(asset_key=dg.AssetKey("allocated_cost"), asset_partitions=[DAYS[0].isoformat()]), limit=1
    ).records[0].asset_materialization.metadata
    assert allocated["total_cost"].value == pytest.approx(22.2)
    assert allocated["allocated_to_customers"].value == pytest.approx(22.2)
    assert allocated["unallocated_by_reason"].value == {} and allocated["customers"].value == 3


def test_bad_input_fails_and_leaves_the_previous_partition_intact(small_saas, make_settings):
    settings = make_settings(small_saas)
    run_range(settings, DAYS[0], DAYS[-1])
    before = {t: sorted_table(settings, t) for t in TABLES}
    path = small_saas / "billing" / "march-b.csv"
    frame = pl.read_csv(path, infer_schema=False)
    frame = frame.with_columns(
        pl.when(pl.int_range(pl.len()) == frame.height - 1).then(pl.lit("n/a")).otherwise(pl.col("BilledCost")).alias("BilledCost")
    )
    frame.write_csv(path)
    result = run_range(settings, DAYS[-1], DAYS[-1], raise_on_error=False)
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    message = failure.step_failure_data.error.message
    assert "march-b.csv: column BilledCost has 1 non-numeric value(s)" in message and "'n/a'" in message
    for table in TABLES:
        assert_frame_equal(sorted_table(settings, table), before[table], check_exact=True)


def test_an_empty_day_is_a_valid_partition(small_saas, make_settings, tmp_path):
    settings = make_settings(small_saas)
    empty_day = DAYS[-1] + dt.timedelta(days=1)  # no billing, no usage
    result = run_range(settings, empty_day, empty_day)
    assert result.success
    for table in ("raw_billing", "tenant_usage", "allocated_cost", "cost_alerts"):
        frame = read_table(settings, table)
        assert frame.is_empty() and frame.width > 0, table
    coverage = read_table(settings, "tag_coverage")
    assert coverage.select("scope_type", "total_cost").rows() == [("overall", 0.0)]
    assert read_table(settings, "unit_cost").height == 3  # every customer, cost 0
