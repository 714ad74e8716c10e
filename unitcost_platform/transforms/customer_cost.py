"""The day's cost per customer, and per customer and service, from allocated_cost.

The trailing-window assets read allocated_cost summed by the warehouse (defs/rollup.py):
unit_cost at CUSTOMER_DAY_ROLLUP, one row per day and customer with the cost that landed on the
customer directly (tagged) and through shared pools; cost_alerts at CUSTOMER_SERVICE_ROLLUP, one row
per day, customer and service. Unallocated rows are not a customer's. `apply_rollup` is the same
query in Polars, for tests and the benchmark.
"""

import polars as pl

from unitcost_platform.config import DIRECT_POOL

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
    return allocated.lazy().filter(keep).group_by(rollup["by"]).agg(sums).collect()
