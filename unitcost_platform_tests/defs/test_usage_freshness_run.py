"""The usage freshness check in real Dagster runs: a daily run compares the day with its trailing week."""

import dagster as dg
import polars as pl

from unitcost_platform_tests.helpers import write_usage_csv
from unitcost_platform_tests.saas import DAYS, run_range


def _freshness(result) -> dict[str, dg.AssetCheckEvaluation]:
    return {
        e.event_specific_data.partition: e.event_specific_data
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and e.event_specific_data.check_name == "usage_freshness"
    }


def test_a_daily_run_flags_usage_that_fell_against_the_trailing_week(small_saas, make_settings):
    """Every day's requests are 2,000 (1,000 + 500 + 500); on the last day telemetry of most of them is
    lost (100 + 100 + 100). The daily run of that day reads its trailing week (Dagster loads a check's
    inputs for its own days only) and warns: 300 against a mean of 2,000 is -85%."""
    rows = pl.read_csv(small_saas / "usage" / "usage.csv", try_parse_dates=True)
    last = DAYS[-1]
    write_usage_csv(small_saas / "usage" / "usage.csv", [
        (d, t, m, 100.0 if d == last else v) for d, t, m, v in rows.select("usage_date", "tenant_id", "metric", "value").iter_rows()
    ])  # fmt: skip
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()
    assert run_range(settings, DAYS[-9], DAYS[-2], instance=instance).success
    assert _freshness(run_range(settings, DAYS[-2], DAYS[-2], instance=instance))[DAYS[-2].isoformat()].passed
    daily = _freshness(run_range(settings, last, last, instance=instance))[last.isoformat()]
    assert not daily.passed and daily.severity == dg.AssetCheckSeverity.WARN
    assert daily.description == "usage of requests fell more than 50% against the trailing week"
    assert "-0.8500" in daily.metadata["worst_offenders"].value  # 300 / 2,000 - 1
