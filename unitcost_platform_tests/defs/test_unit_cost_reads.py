"""What a daily run of unit_cost reads of allocated_cost, through real Dagster runs on the small SaaS.

Most customers predate the 30-day window: the warehouse sums it (the day, the two weeks of the trend
and the month's days before them: a row per customer each) and only the customers who joined
inside it are read day by day. When most joined inside it, the days' rows are read, as a range run reads
them. Either way the day's figures equal a range run's.
"""

import dagster as dg
import polars as pl
from polars.testing import assert_frame_equal

from unitcost_platform_tests.helpers import write_customers_csv
from unitcost_platform_tests.saas import CUSTOMERS, DAYS, read_table, run_range


def _daily_against_range(small_saas, make_settings) -> list[str]:
    """unit_cost's reads of allocated_cost in a daily run of the last day, after the days before;
    its rows equal those a range run over every day computes."""
    ranged, daily = make_settings(small_saas, "ranged.duckdb"), make_settings(small_saas, "daily.duckdb")
    assert run_range(ranged, DAYS[0], DAYS[-1]).success
    instance = dg.DagsterInstance.ephemeral()
    assert run_range(daily, DAYS[0], DAYS[-2], instance=instance).success
    result = run_range(daily, DAYS[-1], DAYS[-1], instance=instance)
    last = lambda settings: read_table(settings, "unit_cost").filter(pl.col("day") == DAYS[-1]).sort("customer_id")  # noqa: E731
    assert last(daily).height == 3
    assert_frame_equal(last(daily), last(ranged), rel_tol=1e-12, abs_tol=1e-12)
    return [
        e.user_message for e in instance.all_logs(result.run_id)
        if e.step_key == "unit_cost" and "rows of allocated_cost" in (e.user_message or "")
    ]  # fmt: skip


def test_customers_older_than_the_month_are_read_as_window_sums(small_saas, make_settings):
    # Records without valid_from: customers since before any data, none joined inside the window.
    reads = _daily_against_range(small_saas, make_settings)
    windows = [m for m in reads if "window(s)" in m]
    # The day (a row per customer), then the two weeks and the month's days before them in one scan
    # (every day is materialized): a row per customer and window.
    assert len(windows) == 2, reads
    assert [m for m in windows if ": 3 rows of" in m] and [m for m in windows if ": 9 rows of" in m], windows


def test_a_month_most_customers_joined_in_is_read_as_the_days_rows(small_saas, make_settings):
    joined = [{**c, "valid_from": DAYS[0]} for c in CUSTOMERS]  # all three joined on the first day
    write_customers_csv(small_saas / "customers.csv", joined)
    reads = _daily_against_range(small_saas, make_settings)
    assert not [m for m in reads if "window(s)" in m], reads
    assert [m for m in reads if ": 48 rows of" in m], reads  # 16 days x 3 customers
