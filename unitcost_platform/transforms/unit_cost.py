"""Unit cost per customer per day, with run rate, cost-to-MRR and 7-day trends (DESIGN.md §6).

In: allocated_cost over the trailing 30 days of the computed days, the days of that window that are
materialized (history is read from the data: days before the first partition are simply absent),
customer_dimension for the days and for seven days earlier, tenant_usage and the provisional flags
of the days. Out: `unit_cost`, one row per (day, customer) of the day's customer dimension.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import DIRECT_POOL

RUN_RATE_DAYS = 30
TREND_DAYS = 7
REQUESTS_METRIC = "requests"

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


def _customers_of_days(customers: pl.DataFrame) -> pl.DataFrame:
    return customers.group_by(pl.col("snapshot_date").alias("day"), "customer_id").agg(
        pl.col("customer_name", "tier", "segment", "is_paying", "status", "mrr", "customer_since").first(),
        pl.col("tenant_id").n_unique().cast(pl.Int64).alias("tenant_count"),
    )


def _daily_costs(allocated: pl.DataFrame) -> pl.DataFrame:
    return (
        allocated.filter(pl.col("unallocated_reason").is_null() & pl.col("customer_id").is_not_null())
        .group_by("day", "customer_id")
        .agg(
            pl.col("allocated_cost").filter(pl.col("pool") == DIRECT_POOL).sum().alias("direct_cost"),
            pl.col("allocated_cost").filter(pl.col("pool") != DIRECT_POOL).sum().alias("shared_cost"),
        )
        .with_columns((pl.col("direct_cost") + pl.col("shared_cost")).alias("total_cost"))
    )


def _trailing(
    daily: pl.DataFrame, present_days: set[dt.date], days: list[dt.date], since: pl.DataFrame
) -> pl.DataFrame:
    """Trailing sums per customer over a dense calendar, so a window is a fixed number of rows."""
    first = min(days) - dt.timedelta(days=RUN_RATE_DAYS - 1)
    calendar = pl.DataFrame(
        {"day": pl.date_range(first, max(days), "1d", eager=True)}
    ).with_columns(pl.col("day").is_in(sorted(present_days)).alias("_present"))
    grid = (
        since.join(calendar, how="cross")
        .join(daily.select("day", "customer_id", "total_cost"), on=["day", "customer_id"], how="left")
        .with_columns(pl.col("total_cost").fill_null(0.0))
        .with_columns(
            (
                pl.col("_present")
                & (pl.col("customer_since").is_null() | (pl.col("day") >= pl.col("customer_since")))
            ).alias("_eligible")
        )
        .sort("customer_id", "day")
    )

    def roll(expr: pl.Expr, window: int) -> pl.Expr:
        return expr.rolling_sum(window_size=window, min_samples=1).over("customer_id")

    eligible_cost = pl.when(pl.col("_eligible")).then(pl.col("total_cost")).otherwise(0.0)
    eligible = pl.col("_eligible").cast(pl.Int64)
    return grid.with_columns(
        roll(eligible_cost, RUN_RATE_DAYS).alias("_sum30"),
        roll(eligible, RUN_RATE_DAYS).alias("history_days"),
        roll(eligible, 2 * TREND_DAYS).alias("_eligible14"),
        roll(pl.col("total_cost"), TREND_DAYS).alias("cost_7d"),
    ).with_columns(
        pl.col("cost_7d").shift(TREND_DAYS).over("customer_id").fill_null(0.0).alias("cost_prev_7d"),
    ).filter(pl.col("day").is_in(days)).select(
        "day", "customer_id", "_sum30", "history_days", "_eligible14", "cost_7d", "cost_prev_7d"
    )


def unit_cost(
    allocated: pl.DataFrame,
    present_days: set[dt.date],
    customers: pl.DataFrame,
    customers_week_ago: pl.DataFrame,
    usage: pl.DataFrame,
    provisional_days: set[dt.date],
    days: list[dt.date],
) -> pl.DataFrame:
    present = set(present_days) | set(days)
    base = _customers_of_days(customers.filter(pl.col("snapshot_date").is_in(days)))
    since = base.group_by("customer_id").agg(pl.col("customer_since").first())
    daily = _daily_costs(allocated)
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
