"""Growth efficiency: is infrastructure cost growing faster than the customer base? (docs/design.md §8)

In: the daily billed totals of the 120 days ending at each computed day (only materialized days are
present), and the customer dimension of each day and of the day 90 days earlier (absent before the
first partition). Out:
`growth_efficiency`, one row per day; a figure is null while its window reaches before the history.
"""

import datetime as dt

import polars as pl

WINDOW_DAYS = 30
LOOKBACK_DAYS = 90

GROWTH_EFFICIENCY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "cost_30d": pl.Float64(),
    "cost_30d_90d_ago": pl.Float64(),
    "cost_growth_90d": pl.Float64(),
    "active_customers": pl.Int64(),
    "active_customers_90d_ago": pl.Int64(),
    "customer_growth_90d": pl.Float64(),
    "ratio": pl.Float64(),
}


def _active_counts(customers: pl.DataFrame, shift_days: int) -> pl.DataFrame:
    return (
        customers.filter(pl.col("status") == "active")
        .group_by("snapshot_date")
        .agg(pl.col("customer_id").n_unique().cast(pl.Int64).alias("n"))
        .select((pl.col("snapshot_date") + pl.duration(days=shift_days)).cast(pl.Date).alias("day"), "n")
    )


def _growth(now: str, then: str) -> pl.Expr:
    """now / then - 1; null when `then` is missing or 0."""
    return pl.when(pl.col(then) != 0).then(pl.col(now) / pl.col(then) - 1)


def growth_efficiency(
    daily_totals: pl.DataFrame,
    customers: pl.DataFrame,
    customers_90d_ago: pl.DataFrame,
    days: list[dt.date],
) -> pl.DataFrame:
    """`daily_totals` has (day, total_cost) for each materialized day; a missing day breaks a window."""
    first = min(days) - dt.timedelta(days=LOOKBACK_DAYS + WINDOW_DAYS - 1)
    calendar = pl.DataFrame({"day": pl.date_range(first, max(days), "1d", eager=True)})
    dense = (
        calendar.join(daily_totals.select("day", "total_cost"), on="day", how="left")
        .sort("day")
        .with_columns(
            pl.col("total_cost").fill_null(0.0).rolling_sum(WINDOW_DAYS, min_samples=1).alias("_sum"),
            pl.col("total_cost").is_not_null().cast(pl.Int64).rolling_sum(WINDOW_DAYS, min_samples=1).alias("_n"),
        )
        .with_columns(pl.when(pl.col("_n") == WINDOW_DAYS).then(pl.col("_sum")).alias("cost_30d"))
        .with_columns(pl.col("cost_30d").shift(LOOKBACK_DAYS).alias("cost_30d_90d_ago"))
    )
    now = _active_counts(customers, 0).rename({"n": "active_customers"})
    then = _active_counts(customers_90d_ago, LOOKBACK_DAYS).rename({"n": "active_customers_90d_ago"})
    frame = (
        pl.DataFrame({"day": days}, schema={"day": pl.Date})
        .join(dense.select("day", "cost_30d", "cost_30d_90d_ago"), on="day", how="left")
        .join(now, on="day", how="left")
        .join(then, on="day", how="left")
        .with_columns(pl.col("active_customers").fill_null(0))
    )
    return (
        frame.with_columns(
            _growth("cost_30d", "cost_30d_90d_ago").alias("cost_growth_90d"),
            _growth("active_customers", "active_customers_90d_ago").alias("customer_growth_90d"),
        )
        .with_columns(
            pl.when(pl.col("customer_growth_90d") != 0)
            .then(pl.col("cost_growth_90d") / pl.col("customer_growth_90d"))
            .alias("ratio")
        )
        .select(list(GROWTH_EFFICIENCY_SCHEMA))
        .cast(GROWTH_EFFICIENCY_SCHEMA)
        .sort("day")
    )
