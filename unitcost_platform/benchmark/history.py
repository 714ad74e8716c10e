"""Trailing history for the unit-cost and alert stages: earlier days shaped like the measured day.

The pipeline's trailing-window assets read the warehouse's rollup of allocated_cost (one row per
day and customer; and per day, customer and service for alert drivers). The benchmark has one day of
billing, so the earlier days are copies of a day's rollup with deterministic day-to-day variation:
the same number of rows, customers and services as the pipeline would read.
"""

import datetime as dt

import polars as pl

UNIT_COST_HISTORY_DAYS = 29  # the run rate looks at 30 days: the day and 29 before
ALERT_HISTORY_DAYS = 13  # alert drivers compare the last 7 days with the 7 before


def earlier_days(rollup: pl.DataFrame, day: dt.date, days_back: int) -> pl.DataFrame:
    """`days_back` days before `day`, each a copy of `rollup` with its money varied by a few percent."""
    money = [c for c, t in rollup.schema.items() if t == pl.Float64]
    frames = []
    for back in range(1, days_back + 1):
        factor = 1.0 + ((back * 7) % 11 - 5) / 100.0
        frames.append(
            rollup.with_columns(
                pl.lit(day - dt.timedelta(days=back)).alias("day"), *[(pl.col(c) * factor).alias(c) for c in money]
            )
        )
    return pl.concat(frames) if frames else rollup.clear()


def synthetic_customer_rollup(customers: pl.DataFrame, day: dt.date, days_back: int) -> pl.DataFrame:
    """Run-rate history before any allocation exists: every customer with direct and shared cost."""
    cost = (pl.col("customer_id").hash(seed=1) % 10_000).cast(pl.Float64) / 1000.0
    day_rows = customers.select("customer_id").unique().select(
        pl.lit(day).alias("day"), "customer_id", cost.alias("direct_cost"), (cost / 4).alias("shared_cost")
    )
    return earlier_days(day_rows, day, days_back)
