"""The day's cost per customer, and per customer and service, from allocated_cost.

The trailing-window assets read allocated_cost summed by the warehouse (defs/rollup.py):
unit_cost at CUSTOMER_DAY_ROLLUP, one row per day and customer with the cost that landed on the
customer directly (tagged) and through shared pools; cost_alerts at CUSTOMER_SERVICE_ROLLUP, one row
per day, customer and service. Unallocated rows are not a customer's. `apply_rollup` is the same
query in Polars, for tests and the benchmark.
"""

import datetime as dt
from collections.abc import Iterable, Mapping

import polars as pl

from unitcost_platform.config_pools import DIRECT_POOL

# The grains the trailing-window assets read allocated_cost at, summed by the warehouse (defs/rollup.py):
# only money that landed on a customer.
CUSTOMER_DAY_ROLLUP = {
    "by": ["day", "customer_id"],
    "sum_where": {
        "direct_cost": ["allocated_cost", "pool", "=", DIRECT_POOL],
        "shared_cost": ["allocated_cost", "pool", "!=", DIRECT_POOL],
    },
    "null": ["unallocated_reason"], "not_null": ["customer_id"],
}  # fmt: skip
CUSTOMER_SERVICE_ROLLUP = {
    "by": ["day", "customer_id", "service_name"], "sum": ["allocated_cost"],
    "null": ["unallocated_reason"], "not_null": ["customer_id"],
}  # fmt: skip

CUSTOMER_DAILY_COST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "direct_cost": pl.Float64(),
    "shared_cost": pl.Float64(),
    "total_cost": pl.Float64(),
}


def customer_daily_cost(rollup: pl.DataFrame) -> pl.DataFrame:
    """Cost per day and customer from allocated_cost read at CUSTOMER_DAY_ROLLUP (one row per key)."""
    return (
        rollup.lazy()
        .with_columns((pl.col("direct_cost") + pl.col("shared_cost")).alias("total_cost"))
        .select(list(CUSTOMER_DAILY_COST_SCHEMA))
        .cast(CUSTOMER_DAILY_COST_SCHEMA)
        .collect()
    )


def window_spec(column: str, days: Mapping[dt.date, Iterable[dt.date]], on_end: Mapping[str, str] | None = None) -> dict:
    """A rollup's `windows` (defs/rollup.py): `days` maps each window's end to the days it sums;
    `column` then holds the end, and each `on_end` alias the sum of its column on the end day alone."""
    return {
        "column": column,
        "days": {end.isoformat(): sorted(d.isoformat() for d in members) for end, members in sorted(days.items())},
        "on_end": dict(on_end or {}),
    }


def apply_rollup(allocated: pl.DataFrame, rollup: dict) -> pl.DataFrame:
    """What the IO manager's rollup query returns, computed in Polars (for tests and the benchmark)."""
    keep = pl.lit(True)
    for column in rollup.get("null", []):
        keep = keep & pl.col(column).is_null()
    for column in rollup.get("not_null", []):
        keep = keep & pl.col(column).is_not_null()
    compare = {"=": lambda a, b: a == b, "!=": lambda a, b: a != b}
    sums = [pl.col(c).sum() for c in rollup.get("sum", [])] + [
        pl.when(compare[op](pl.col(key), pl.lit(value))).then(pl.col(column)).otherwise(0.0).sum().alias(alias)
        for alias, (column, key, op, value) in rollup.get("sum_where", {}).items()
    ]
    if rollup.get("count"):
        sums.append(pl.len().cast(pl.Int64).alias(rollup["count"]))
    # Lazy, so only the columns the rollup reads are touched (no filtered copy of every column).
    rows = allocated.lazy().filter(keep)
    if windows := rollup.get("windows"):
        # Each row once per window holding its day; the window column becomes the window's end.
        column = windows["column"]
        pairs = pl.LazyFrame(
            [(dt.date.fromisoformat(end), dt.date.fromisoformat(day)) for end, days in windows["days"].items() for day in days],
            schema={"_end": pl.Date, column: pl.Date}, orient="row",
        )  # fmt: skip
        rows = (
            rows.join(pairs, on=column)
            .with_columns(pl.when(pl.col(column) == pl.col("_end")).then(pl.col(c)).otherwise(0.0).alias(alias)
                          for alias, c in windows.get("on_end", {}).items())
            .drop(column).rename({"_end": column})
        )  # fmt: skip
        sums += [pl.col(alias).sum() for alias in windows.get("on_end", {})]
    return rows.group_by(rollup["by"]).agg(sums).collect()
