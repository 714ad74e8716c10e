"""Unit cost per customer per day, with run rate, cost-to-MRR and 7-day trends (docs/design.md §6).

In: customer_daily_cost over the trailing 30 days of the computed days, the days of that window that are
materialized (history is read from the data: days before the first partition are simply absent),
customer_dimension for the days and for seven days earlier, tenant_usage and the provisional flags
of the days. Out: `unit_cost`, one row per (day, customer) of the day's customer dimension.

A daily run reads the window's sums instead of its 30 days of rows (`DayWindows`): what a customer
cost on the day, and over the two weeks of the 7-day trend and the month's materialized days before
them, a row per customer and window, summed by the warehouse; only the customers who became
customers inside the window (their run rate counts the days since) are read day by day.
"""

import datetime as dt
from dataclasses import dataclass

import numpy as np
import polars as pl

from unitcost_platform.transforms.customer_cost import customer_daily_cost
from unitcost_platform.transforms.windows import shifted, window_sums
from unitcost_platform.warehouse_sql import usage_of_metrics

RUN_RATE_DAYS = 30
TREND_DAYS = 7
REQUESTS_METRIC = "requests"
# unit_cost reads the day's requests of tenant_usage (cost per 1k requests), not its other metrics.
REQUESTS_USAGE_QUERY = usage_of_metrics(lambda cfg: [REQUESTS_METRIC])

UNIT_COST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "segment": pl.String(),
    "is_paying": pl.Boolean(),
    "status": pl.String(),
    "mrr": pl.Float64(),
    "tenant_count": pl.Int64(),
    "direct_cost": pl.Float64(),
    "shared_cost": pl.Float64(),
    "total_cost": pl.Float64(),
    "requests": pl.Float64(),
    "cost_per_1k_requests": pl.Float64(),
    "history_days": pl.Int64(),
    "monthly_run_rate": pl.Float64(),
    "cost_to_mrr": pl.Float64(),
    "cost_7d": pl.Float64(),
    "cost_prev_7d": pl.Float64(),
    "cost_growth_7d": pl.Float64(),
    "mrr_growth_7d": pl.Float64(),
    "is_provisional": pl.Boolean(),
}


@dataclass(frozen=True)
class DayWindows:
    """One day D's allocated_cost at CUSTOMER_DAY_ROLLUP as the warehouse sums it (`day_windows`
    says which windows): `day` D's own rows; `weeks` per customer over the 7 days ending at D and at
    D-7 (the window column holding the end) and, when those 14 days are all materialized, over the
    month's materialized days before them (end D-14), so that one scan gives the month too;
    otherwise `month` per customer over the month's materialized days. `joined` the daily rows of the
    customers whose customer_since falls inside the month (their run rate counts the days since)."""

    day: pl.DataFrame
    weeks: pl.DataFrame
    joined: pl.DataFrame
    month: pl.DataFrame | None = None


def day_windows(day: dt.date, present_days: set[dt.date]) -> dict[str, dict[dt.date, list[dt.date]]]:
    """The windows DayWindows' frames sum, as {end: days}: `day`, `weeks` and, when a day of the
    trend's two weeks is not materialized, `month`."""
    first = day - dt.timedelta(days=RUN_RATE_DAYS - 1)
    month = [d for d in sorted(set(present_days) | {day}) if first <= d <= day]
    week = lambda end: [end - dt.timedelta(days=k) for k in range(TREND_DAYS)]  # noqa: E731
    before, earlier = day - dt.timedelta(days=TREND_DAYS), day - dt.timedelta(days=2 * TREND_DAYS)
    weeks = {day: week(day), before: week(before)}
    if set(week(day) + week(before)) <= set(month):  # the month is the two weeks and its days before
        return {"day": {day: [day]}, "weeks": weeks | {earlier: [d for d in month if d <= earlier]}}
    return {"day": {day: [day]}, "weeks": weeks, "month": {day: month}}


def joined_in_month(customers: pl.DataFrame, day: dt.date) -> list[str]:
    """The customers of `day` whose customer_since is after the month's first day: DayWindows.joined."""
    first = day - dt.timedelta(days=RUN_RATE_DAYS - 1)
    of_day = customers.filter(pl.col("snapshot_date") == day)
    return sorted(of_day.filter(pl.col("customer_since") > first)["customer_id"].unique().to_list())


def _customers_of_days(customers: pl.DataFrame) -> pl.DataFrame:
    return customers.group_by(pl.col("snapshot_date").alias("day"), "customer_id").agg(
        pl.col("customer_name", "tier", "segment", "is_paying", "status", "mrr", "customer_since").first(),
        pl.col("tenant_id").n_unique().cast(pl.Int64).alias("tenant_count"),
    )


def _eligible(customers: pl.DataFrame, present: np.ndarray, first: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Which (customer, calendar day from `first`) count towards the run rate: the day is
    materialized (`present`) and the customer existed (customer_since; none: every day). Also each
    customer's offset of customer_since in the calendar (-1 when none or before it)."""
    n_days = present.shape[0]
    offset = (
        customers.select((pl.col("customer_since") - pl.lit(first)).dt.total_days().fill_null(-1).clip(-1, n_days))
        .to_series()
        .to_numpy()
    )
    return offset, present[None, :] & (np.arange(n_days)[None, :] >= offset[:, None])


def _trailing(
    daily: pl.DataFrame, present_days: set[dt.date], days: list[dt.date], since: pl.DataFrame
) -> pl.DataFrame:
    """Trailing sums per customer over a dense (customer x calendar day) matrix.

    The calendar runs from 29 days before the first computed day to the last, so each window is a
    fixed number of columns and a year's backfill is one pass, not one history read per day. A day
    counts towards the run rate when it is materialized and the customer existed (customer_since).
    """
    first = min(days) - dt.timedelta(days=RUN_RATE_DAYS - 1)
    calendar = pl.date_range(first, max(days), "1d", eager=True)
    n_days = calendar.len()
    customers = since.sort("customer_id").with_row_index("_c")
    costs = np.zeros((customers.height, n_days))
    located = (
        daily.select("day", "customer_id", "total_cost")
        .join(customers.select("customer_id", "_c"), on="customer_id")
        .filter((pl.col("day") >= first) & (pl.col("day") <= max(days)))
        .with_columns((pl.col("day") - pl.lit(first)).dt.total_days().alias("_d"))
    )
    costs[located["_c"].to_numpy(), located["_d"].to_numpy()] = located["total_cost"].to_numpy()
    _, eligible = _eligible(customers, calendar.is_in(sorted(present_days)).to_numpy(), first)
    cost_7d = window_sums(costs, TREND_DAYS)
    cost_prev_7d = shifted(cost_7d, TREND_DAYS)
    columns = {
        "_sum30": window_sums(np.where(eligible, costs, 0.0), RUN_RATE_DAYS),
        "history_days": window_sums(eligible.astype(np.float64), RUN_RATE_DAYS).round().astype(np.int64),
        "_eligible14": window_sums(eligible.astype(np.float64), 2 * TREND_DAYS).round().astype(np.int64),
        "cost_7d": cost_7d,
        "cost_prev_7d": cost_prev_7d,
    }
    wanted = np.array([(d - first).days for d in sorted(set(days))])
    frames = []
    for offset in wanted:
        frames.append(
            pl.DataFrame({
                "day": pl.repeat(first + dt.timedelta(days=int(offset)), customers.height, eager=True),
                "customer_id": customers["customer_id"],
                **{name: values[:, offset] for name, values in columns.items()},
            })  # fmt: skip
        )
    if not frames:
        return pl.DataFrame(schema={"day": pl.Date, "customer_id": pl.String, "_sum30": pl.Float64,
                                    "history_days": pl.Int64, "_eligible14": pl.Int64,
                                    "cost_7d": pl.Float64, "cost_prev_7d": pl.Float64})  # fmt: skip
    return pl.concat(frames)


def _trailing_of_day(windows: DayWindows, present_days: set[dt.date], day: dt.date, since: pl.DataFrame) -> pl.DataFrame:
    """`_trailing`'s figures of one day from its window sums (DayWindows): the same days counted,
    added in the warehouse's order instead of as differences of running totals."""
    first = day - dt.timedelta(days=RUN_RATE_DAYS - 1)
    customers = since.sort("customer_id")
    present = np.array([first + dt.timedelta(days=i) in present_days for i in range(RUN_RATE_DAYS)])
    offset, eligible = _eligible(customers, present, first)
    total = (pl.col("direct_cost") + pl.col("shared_cost")).alias("_cost")
    month = (
        windows.weeks.group_by("customer_id").agg(total.sum())  # the two weeks and the days before
        if windows.month is None else windows.month.select("customer_id", total)
    )  # fmt: skip
    week = lambda end, name: windows.weeks.filter(pl.col("day") == end).select("customer_id", total.alias(name))  # noqa: E731
    # Those who became customers inside the month: their days since (as `eligible` counts them).
    since_joined = (
        windows.joined.filter(pl.col("day").is_in(sorted(present_days)) & pl.col("day").is_between(first, day))
        .join(customers, on="customer_id")
        .filter(pl.col("customer_since").is_null() | (pl.col("day") >= pl.col("customer_since")))
        .group_by("customer_id")
        .agg(total.sum().alias("_since"))
    )
    return (
        customers.select(
            pl.lit(day).alias("day"), "customer_id",
            pl.Series("_offset", offset),
            pl.Series("history_days", eligible.sum(axis=1).astype(np.int64)),
            pl.Series("_eligible14", eligible[:, -2 * TREND_DAYS :].sum(axis=1).astype(np.int64)),
        )
        .join(month, on="customer_id", how="left")
        .join(since_joined, on="customer_id", how="left")
        .join(week(day, "cost_7d"), on="customer_id", how="left")
        .join(week(day - dt.timedelta(days=TREND_DAYS), "cost_prev_7d"), on="customer_id", how="left")
        .select(
            "day", "customer_id",
            pl.when(pl.col("_offset") > 0).then(pl.col("_since")).otherwise(pl.col("_cost")).fill_null(0.0).alias("_sum30"),
            "history_days", "_eligible14",
            pl.col("cost_7d", "cost_prev_7d").fill_null(0.0),
        )
    )  # fmt: skip


def unit_cost(
    daily: pl.DataFrame | DayWindows,
    present_days: set[dt.date],
    customers: pl.DataFrame,
    customers_week_ago: pl.DataFrame,
    usage: pl.DataFrame,
    provisional_days: set[dt.date],
    days: list[dt.date],
) -> pl.DataFrame:
    """`daily`: customer_daily_cost over the trailing window of every day, or one day's DayWindows."""
    present = set(present_days) | set(days)
    base = _customers_of_days(customers.filter(pl.col("snapshot_date").is_in(days)))
    since = base.group_by("customer_id").agg(pl.col("customer_since").first())
    if isinstance(daily, DayWindows):
        (day,) = days
        trailing = _trailing_of_day(daily, present, day, since)
        daily = customer_daily_cost(daily.day)
    else:
        trailing = _trailing(daily, present, days, since)

    requests = (
        usage.filter((pl.col("metric") == REQUESTS_METRIC) & pl.col("usage_date").is_in(days))
        .join(
            customers.select("snapshot_date", "tenant_id", "customer_id"),
            left_on=["usage_date", "tenant_id"], right_on=["snapshot_date", "tenant_id"],
        )
        .group_by(pl.col("usage_date").alias("day"), "customer_id")
        .agg(pl.col("value").sum().alias("requests"))
    )
    mrr_week_ago = (
        customers_week_ago.group_by("snapshot_date", "customer_id")
        .agg(pl.col("mrr").first().alias("_mrr_prev"))
        .select((pl.col("snapshot_date") + pl.duration(days=TREND_DAYS)).cast(pl.Date).alias("day"), "customer_id", "_mrr_prev")
    )
    frame = (
        base.join(daily, on=["day", "customer_id"], how="left")
        .join(trailing, on=["day", "customer_id"], how="left")
        .join(requests, on=["day", "customer_id"], how="left")
        .join(mrr_week_ago, on=["day", "customer_id"], how="left")
        .with_columns(
            [pl.col(c).fill_null(0.0) for c in ("direct_cost", "shared_cost", "total_cost", "requests")]
        )
    )
    run_rate = RUN_RATE_DAYS * pl.col("_sum30") / pl.col("history_days")
    return (
        frame.with_columns(
            pl.when(pl.col("requests") > 0).then(pl.col("total_cost") / pl.col("requests") * 1000).alias("cost_per_1k_requests"),
            pl.when(pl.col("history_days") > 0).then(run_rate).alias("monthly_run_rate"),
            pl.when((pl.col("_eligible14") == 2 * TREND_DAYS) & (pl.col("cost_prev_7d") != 0))
            .then(pl.col("cost_7d") / pl.col("cost_prev_7d") - 1)
            .alias("cost_growth_7d"),
            pl.when(pl.col("_mrr_prev").is_null())
            .then(0.0)
            .when(pl.col("_mrr_prev") > 0)
            .then(pl.col("mrr") / pl.col("_mrr_prev") - 1)
            .when(pl.col("mrr") == 0)
            .then(0.0)
            .alias("mrr_growth_7d"),
            pl.col("day").is_in(sorted(provisional_days)).alias("is_provisional"),
        )
        .with_columns(
            pl.when(pl.col("mrr") > 0).then(pl.col("monthly_run_rate") / pl.col("mrr")).alias("cost_to_mrr"),
        )
        .select(list(UNIT_COST_SCHEMA))
        .cast(UNIT_COST_SCHEMA)
        .sort("day", "customer_id")
    )
