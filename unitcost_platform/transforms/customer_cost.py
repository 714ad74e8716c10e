"""The day's cost per customer, and per customer and service, from allocated_cost.

In: allocated_cost rows of some days, at any grain that keeps day, customer_id and pool (and
service_name for the per-service cost); the trailing-window assets read allocated_cost already
summed by the warehouse to CUSTOMER_POOL_ROLLUP. Out: one row per (day, customer) or
(day, customer, service) with the cost that landed on the customer directly (tagged) and through
shared pools. Unallocated rows are not a customer's.
"""

import polars as pl

from unitcost_platform.config import DIRECT_POOL

# The grains the trailing-window assets read allocated_cost at, summed by the warehouse (defs/rollup.py):
# only money that landed on a customer.
CUSTOMER_POOL_ROLLUP = {
    "by": ["day", "customer_id", "pool"], "sum": ["allocated_cost"],
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


def _customer_costs(allocated: pl.DataFrame, keys: list[str], schema: dict[str, pl.DataType]) -> pl.DataFrame:
    direct = pl.col("pool") == DIRECT_POOL
    mine = pl.col("customer_id").is_not_null()
    if "unallocated_reason" in allocated.columns:  # a rollup has filtered them out already
        mine = mine & pl.col("unallocated_reason").is_null()
    return (
        allocated.lazy()
        .filter(mine)
        .group_by(keys)
        .agg(
            pl.col("allocated_cost").filter(direct).sum().alias("direct_cost"),
            pl.col("allocated_cost").filter(~direct).sum().alias("shared_cost"),
        )
        .with_columns((pl.col("direct_cost") + pl.col("shared_cost")).alias("total_cost"))
        .select(list(schema))
        .cast(schema)
        .collect()
    )


def customer_daily_cost(allocated: pl.DataFrame) -> pl.DataFrame:
    return _customer_costs(allocated, ["day", "customer_id"], CUSTOMER_DAILY_COST_SCHEMA)


def apply_rollup(allocated: pl.DataFrame, rollup: dict) -> pl.DataFrame:
    """What the IO manager's rollup query returns, computed in Polars (for tests and the benchmark)."""
    keep = pl.lit(True)
    for column in rollup.get("null", []):
        keep = keep & pl.col(column).is_null()
    for column in rollup.get("not_null", []):
        keep = keep & pl.col(column).is_not_null()
    return allocated.filter(keep).group_by(rollup["by"]).agg([pl.col(c).sum() for c in rollup["sum"]])
