"""alert_incidents in real Dagster runs: daily runs read the alerts that matter and write the table a
range run writes.

The small SaaS (conftest): C2's COST_TO_MRR incident opens on day 0 (P2) and escalates on day 11
(P1), TREND alerts on days 13-15, an ANOMALY on day 14. A daily run of day 15 needs the alerts from
day 12 on (N = 3 quiet days resolve an incident): four P1, three TREND and the ANOMALY, 8 of the 20
alerts so far; the incident's opening on day 0 comes with them, computed by the warehouse."""

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from unitcost_platform.defs.rollup import ROWS_LOADED
from unitcost_platform_tests.saas import DAYS, read_table, run_range


def test_daily_runs_read_the_alerts_that_matter_and_equal_one_range_run(small_saas, make_settings):
    whole = make_settings(small_saas, "whole.duckdb")
    assert run_range(whole, DAYS[0], DAYS[15]).success
    daily = make_settings(small_saas, "daily.duckdb")
    instance = dg.DagsterInstance.ephemeral()
    ranged = run_range(daily, DAYS[0], DAYS[10], instance=instance)
    assert ranged.success
    for day in DAYS[11:16]:
        result = run_range(daily, day, day, instance=instance)
        assert result.success

    logged = [e.user_message for e in instance.all_logs(result.run_id) if ROWS_LOADED in (e.user_message or "")]
    [alerts_read] = [line for line in logged if "of cost_alerts (query incident_alerts" in line]
    assert alerts_read.startswith(f"{ROWS_LOADED}: 8 rows of cost_alerts"), alerts_read
    assert read_table(daily, "cost_alerts").height == 20
    # margin_forecast: a row per customer forecast on the day (its 60 days in the row), not 74 days of rows.
    forecast_rows = read_table(daily, "margin_forecast").filter(pl.col("day") == DAYS[15]).height
    [windows_read] = [line for line in logged if "of unit_cost (query forecast_windows" in line]
    assert forecast_rows > 0 and windows_read.startswith(f"{ROWS_LOADED}: {forecast_rows} rows of unit_cost"), windows_read
    # An 11-day range reads its window's rows instead (60 days per customer and day would be more).
    ranged_reads = [e.user_message for e in instance.all_logs(ranged.run_id) if ROWS_LOADED in (e.user_message or "")]
    assert not [line for line in ranged_reads if "forecast_windows" in line]

    incidents = {name: read_table(s, "alert_incidents").sort("day", "incident_id") for name, s in (("whole", whole), ("daily", daily))}
    assert_frame_equal(incidents["daily"], incidents["whole"])
    on_15 = incidents["daily"].filter((pl.col("day") == DAYS[15]) & (pl.col("family") == "COST_TO_MRR")).row(0, named=True)
    assert (on_15["opened_day"], on_15["days_open"], on_15["peak_severity"]) == (DAYS[0], 15, "P1")
