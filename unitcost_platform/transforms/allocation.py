"""Allocation: every dollar of the day lands on a customer or in an explained unallocated bucket.

In: raw_billing rows, tenant_usage, customer_dimension (all for the same days), the pools and the
cost column. Out: `allocated_cost`, one row per (day, customer, tenant, service, pool) with how it
was split (`allocation_method`, `driver`, `allocation_ratio`) and, where no customer got the money,
`unallocated_reason`. DESIGN.md §1-5: tagged cost is direct; untagged cost goes to the first
matching pool and is split by a usage metric, equally over active customers, by fixed percentages,
or excluded. The sum of `allocated_cost` per day equals the day's billed total.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import DIRECT_POOL, PoolConfig
from unitcost_platform.transforms.pools import pool_expr

ALLOCATED_COST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "tenant_id": pl.String(),
    "service_name": pl.String(),
    "pool": pl.String(),
    "allocation_method": pl.String(),
    "driver": pl.String(),
    "allocation_ratio": pl.Float64(),
    "allocated_cost": pl.Float64(),
    "unallocated_reason": pl.String(),
}

UNKNOWN_TENANT = "unknown_tenant"
NO_DRIVER_USAGE = "no_driver_usage"
NO_ACTIVE_CUSTOMERS = "no_active_customers"
UNKNOWN_CUSTOMER = "unknown_customer"
EXCLUDED = "excluded"
NO_MATCHING_POOL = "no_matching_pool"


def _rows(frame: pl.DataFrame, **columns: object) -> pl.DataFrame:
    """Shape a partial frame into the allocated_cost schema, with literal values for given columns."""
    exprs = []
    for name, dtype in ALLOCATED_COST_SCHEMA.items():
        if name in columns:
            value = columns[name]
            exprs.append((value if isinstance(value, pl.Expr) else pl.lit(value)).cast(dtype).alias(name))
        elif name in frame.columns:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def _tenant_to_customer(customers: pl.DataFrame) -> pl.DataFrame:
    return customers.select(pl.col("snapshot_date").alias("day"), "tenant_id", "customer_id").unique()


def _with_customers(frame: pl.DataFrame, tenants: pl.DataFrame) -> pl.DataFrame:
    """Attach the tenant's customer; a tenant without one keeps its share as unknown_tenant."""
    joined = frame.join(tenants, on=["day", "tenant_id"], how="left")
    return joined.with_columns(
        pl.when(pl.col("customer_id").is_null()).then(pl.lit(UNKNOWN_TENANT)).alias("unallocated_reason")
    )


def _split_equally(pool_costs: pl.DataFrame, customers: pl.DataFrame, method: str, driver: str | None) -> pl.DataFrame:
    """Split each (day, pool, service) cost equally over the day's active customers."""
    active = (
        customers.filter(pl.col("status") == "active")
        .select(pl.col("snapshot_date").alias("day"), "customer_id")
        .unique()
        .with_columns(pl.len().over("day").alias("_n"))
    )
    split = pool_costs.join(active, on="day", how="inner")
    allocated = _rows(
        split,
        allocation_method=method,
        driver=driver,
        allocation_ratio=1.0 / pl.col("_n"),
        allocated_cost=pl.col("cost") / pl.col("_n"),
    )
    nobody = pool_costs.join(active.select("day").unique(), on="day", how="anti")
    unallocated = _rows(
        nobody, allocation_method=method, driver=driver, allocation_ratio=1.0,
        allocated_cost=pl.col("cost"), unallocated_reason=NO_ACTIVE_CUSTOMERS,
    )
    return pl.concat([allocated, unallocated])


def _metric_pool(
    pool_costs: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame, tenants: pl.DataFrame, pool: PoolConfig
) -> pl.DataFrame:
    wanted = usage.filter(pl.col("metric") == pool.driver)
    if pool.usage_service is not None:
        wanted = wanted.filter(pl.col("service_name") == pool.usage_service)
    drivers = (
        wanted.group_by(pl.col("usage_date").alias("day"), "tenant_id")
        .agg(pl.col("value").sum())
        .filter(pl.col("value") > 0)
        .with_columns((pl.col("value") / pl.col("value").sum().over("day")).alias("_ratio"))
    )
    split = pool_costs.join(drivers, on="day", how="inner")
    split = _with_customers(split, tenants)
    allocated = _rows(
        split, allocation_method="usage", driver=pool.driver,
        allocation_ratio=pl.col("_ratio"), allocated_cost=pl.col("cost") * pl.col("_ratio"),
    )
    undriven = pool_costs.join(drivers.select("day").unique(), on="day", how="anti")
    if pool.fallback == "flat":
        fallback = _split_equally(undriven, customers, "flat_fallback", pool.driver)
    else:
        fallback = _rows(
            undriven, allocation_method="usage", driver=pool.driver, allocation_ratio=1.0,
            allocated_cost=pl.col("cost"), unallocated_reason=NO_DRIVER_USAGE,
        )
    return pl.concat([allocated, fallback])


def _fixed_pool(pool_costs: pl.DataFrame, customers: pl.DataFrame, pool: PoolConfig) -> pl.DataFrame:
    shares = pl.DataFrame(
        {"customer_id": list(pool.shares), "_ratio": [v / 100.0 for v in pool.shares.values()]},
        schema={"customer_id": pl.String, "_ratio": pl.Float64},
    )
    present = customers.select(pl.col("snapshot_date").alias("day"), "customer_id").unique()
    split = pool_costs.join(shares, how="cross").join(
        present.with_columns(_present=pl.lit(True)), on=["day", "customer_id"], how="left"
    )
    return _rows(
        split, allocation_method="fixed", allocation_ratio=pl.col("_ratio"),
        allocated_cost=pl.col("cost") * pl.col("_ratio"),
        unallocated_reason=pl.when(pl.col("_present").is_null()).then(pl.lit(UNKNOWN_CUSTOMER)),
    )


def allocate(
    billing: pl.DataFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    days: list[dt.date],
    pools: list[PoolConfig],
    cost_column: str,
) -> pl.DataFrame:
    """allocated_cost for `days` (see the module docstring for the contract)."""
    items = (
        billing.filter(pl.col("x_ChargeDate").is_in(days))
        .with_columns(pool_expr(pools))
        .group_by(
            pl.col("x_ChargeDate").alias("day"),
            "pool",
            pl.col("ServiceName").alias("service_name"),
            pl.col("x_TenantId").alias("tenant_id"),
        )
        .agg(pl.col(cost_column).sum().alias("cost"))
    )
    tenants = _tenant_to_customer(customers)
    parts = [
        _rows(
            _with_customers(items.filter(pl.col("pool") == DIRECT_POOL), tenants),
            allocation_method="direct", allocation_ratio=1.0, allocated_cost=pl.col("cost"),
        ),
        _rows(
            items.filter(pl.col("pool").is_null()), pool=None, allocation_method="unmatched",
            allocation_ratio=1.0, allocated_cost=pl.col("cost"), unallocated_reason=NO_MATCHING_POOL,
        ),
    ]
    for pool in pools:
        pool_costs = (
            items.filter(pl.col("pool") == pool.name)
            .group_by("day", "pool", "service_name")
            .agg(pl.col("cost").sum())
        )
        if pool_costs.is_empty():
            continue
        if pool.driver == "exclude":
            parts.append(_rows(
                pool_costs, allocation_method="exclude", allocation_ratio=1.0,
                allocated_cost=pl.col("cost"), unallocated_reason=EXCLUDED,
            ))
        elif pool.driver == "flat":
            parts.append(_split_equally(pool_costs, customers, "flat", None))
        elif pool.driver == "fixed":
            parts.append(_fixed_pool(pool_costs, customers, pool))
        else:
            parts.append(_metric_pool(pool_costs, usage, customers, tenants, pool))
    return pl.concat(parts, how="vertical").sort(
        "day", "pool", "service_name", "customer_id", "tenant_id", nulls_last=True
    )
