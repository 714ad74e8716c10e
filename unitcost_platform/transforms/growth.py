"""Growth efficiency: is infrastructure cost growing faster than the customer base? (docs/design.md §8)

In: the daily billed totals of the 120 days ending at each computed day (only materialized days are
present), and the active customers counted on each day and on the day 90 days earlier (absent before
the first partition). The warehouse counts them (ACTIVE_CUSTOMERS_QUERY over customer_dimension, a
row per day rather than a row per tenant); `active_counts` is its Polars twin. Out:
`growth_efficiency`, one row per day; a figure is null while its window reaches before the history.
"""

import datetime as dt

import polars as pl

from unitcost_platform.warehouse_sql import WarehouseQuery, active_customers_sql

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


ACTIVE_CUSTOMERS_SCHEMA: dict[str, pl.DataType] = {"snapshot_date": pl.Date(), "active_customers": pl.Int64()}


def active_counts(customers: pl.DataFrame) -> pl.DataFrame:
    """(snapshot_date, active_customers): the distinct active customers of each day of the customer
    dimension (a customer owning several tenants counts once); the Polars twin of ACTIVE_CUSTOMERS_QUERY."""
    return (
        customers.filter(pl.col("status") == "active")
        .group_by("snapshot_date")
        .agg(pl.col("customer_id").n_unique().alias("active_customers"))
        .cast(ACTIVE_CUSTOMERS_SCHEMA)
    )


# Every active customer counts, whatever the rollout's scope: growth is the whole business's.
ACTIVE_CUSTOMERS_QUERY = WarehouseQuery(
    ["snapshot_date", "customer_id", "status"], ACTIVE_CUSTOMERS_SCHEMA,
    lambda rows, _cfg, dialect: active_customers_sql(rows, None, dialect, "snapshot_date"),
)  # fmt: skip


def _shifted(counts: pl.DataFrame, shift_days: int, name: str) -> pl.DataFrame:
    return counts.select(
        (pl.col("snapshot_date") + pl.duration(days=shift_days)).cast(pl.Date).alias("day"),
        pl.col("active_customers").alias(name),
    )


def _growth(now: str, then: str) -> pl.Expr:
    """now / then - 1; null when `then` is missing or 0."""
    return pl.when(pl.col(then) != 0).then(pl.col(now) / pl.col(then) - 1)


def growth_efficiency(
    daily_totals: pl.DataFrame,
    active: pl.DataFrame,
    active_90d_ago: pl.DataFrame,
    days: list[dt.date],
) -> pl.DataFrame:
    """`daily_totals` has (day, total_cost) for each materialized day; a missing day breaks a window.
    `active`, `active_90d_ago`: ACTIVE_CUSTOMERS_SCHEMA rows of the days and of the days 90 before
    them (a day without a row has no customer dimension)."""
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
    now = _shifted(active, 0, "active_customers")
    then = _shifted(active_90d_ago, LOOKBACK_DAYS, "active_customers_90d_ago")
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
