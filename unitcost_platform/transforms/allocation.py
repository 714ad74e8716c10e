"""Allocation: every dollar of the day lands on a customer or in an explained unallocated bucket.

In: raw_billing rows, tenant_usage, customer_dimension (all for the same days), the pools and the
cost column. Out: `allocated_cost`, one row per (day, customer, tenant, service, pool) with how it
was split (`allocation_method`, `driver`, `allocation_ratio`) and, where no customer got the money,
`unallocated_reason`. docs/design.md §4-5: tagged cost is direct; untagged cost goes to the first
matching pool and is split by a usage metric, a blend of metrics, each customer's direct cost,
equally over active customers, by fixed percentages, or excluded; an idle-capacity pool is kept
apart (reason `idle`) or split by direct cost or a metric. The sum of `allocated_cost` per day
equals the day's billed total.
"""

import datetime as dt
from typing import TYPE_CHECKING

import polars as pl

from unitcost_platform.config_pools import DIRECT_POOL, PoolConfig
from unitcost_platform.transforms.pools import match_expr, pool_expr
from unitcost_platform.warehouse_sql import (
    Dialect,
    WarehouseQuery,
    match_sql,
    pool_sql,
    usage_of_metrics,
)

if TYPE_CHECKING:
    from unitcost_platform.config import UnitcostConfig

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

# What coverage and allocation read of raw_billing: every column a pool rule can match on and every
# cost column, so a config change (a new rule, another cost column) needs no code reload; the rest
# of the bill's columns stay in the warehouse.
BILLING_COLUMNS = [
    "x_ChargeDate", "x_TenantId", "ServiceName", "ServiceCategory", "ProviderName", "SubAccountId",
    "ResourceId", "Tags", "BilledCost", "EffectiveCost",
]  # fmt: skip

UNKNOWN_TENANT = "unknown_tenant"
NO_DRIVER_USAGE = "no_driver_usage"
NO_ACTIVE_CUSTOMERS = "no_active_customers"
UNKNOWN_CUSTOMER = "unknown_customer"
EXCLUDED = "excluded"
NO_MATCHING_POOL = "no_matching_pool"
NO_DIRECT_COST = "no_direct_cost"
IDLE = "idle"


Frame = pl.DataFrame | pl.LazyFrame


def _rows(frame: Frame, **columns: object) -> Frame:
    """Shape a partial frame into the allocated_cost schema, with literal values for given columns."""
    names = frame.collect_schema().names() if isinstance(frame, pl.LazyFrame) else frame.columns
    exprs = []
    for name, dtype in ALLOCATED_COST_SCHEMA.items():
        if name in columns:
            value = columns[name]
            exprs.append((value if isinstance(value, pl.Expr) else pl.lit(value)).cast(dtype).alias(name))
        elif name in names:
            exprs.append(pl.col(name).cast(dtype))
        else:
            exprs.append(pl.lit(None, dtype=dtype).alias(name))
    return frame.select(exprs)


def _tenant_to_customer(customers: pl.DataFrame) -> pl.LazyFrame:
    return customers.lazy().select(pl.col("snapshot_date").alias("day"), "tenant_id", "customer_id").unique()


def _with_customers(frame: pl.LazyFrame, tenants: pl.LazyFrame) -> pl.LazyFrame:
    """Attach the tenant's customer; a tenant without one keeps its share as unknown_tenant."""
    joined = frame.join(tenants, on=["day", "tenant_id"], how="left")
    return joined.with_columns(
        pl.when(pl.col("customer_id").is_null()).then(pl.lit(UNKNOWN_TENANT)).alias("unallocated_reason")
    )


def _split_equally(pool_costs: pl.LazyFrame, customers: pl.DataFrame, method: str, driver: str | None) -> pl.LazyFrame:
    """Split each (day, pool, service) cost equally over the day's active customers."""
    active = (
        customers.lazy()
        .filter(pl.col("status") == "active")
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
    pool_costs: pl.LazyFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    tenants: pl.LazyFrame,
    pool: PoolConfig,
    metric: str,
    weight: float = 1.0,
    method: str = "usage",
) -> pl.LazyFrame:
    """`weight` of the pool's cost split by each tenant's share of `metric` that day."""
    wanted = usage.lazy().filter(pl.col("metric") == metric)
    if pool.usage_service is not None:
        wanted = wanted.filter(pl.col("service_name") == pool.usage_service)
    drivers = (
        wanted.group_by(pl.col("usage_date").alias("day"), "tenant_id")
        .agg(pl.col("value").sum())
        .filter(pl.col("value") > 0)
        .with_columns((pl.col("value") / pl.col("value").sum().over("day")).alias("_ratio"))
    )
    weighted = pool_costs.with_columns(pl.col("cost") * weight)
    split = _with_customers(weighted.join(drivers, on="day", how="inner"), tenants)
    allocated = _rows(
        split, allocation_method=method, driver=metric,
        allocation_ratio=pl.col("_ratio") * weight, allocated_cost=pl.col("cost") * pl.col("_ratio"),
    )
    undriven = weighted.join(drivers.select("day").unique(), on="day", how="anti")
    if pool.fallback == "flat":
        fallback = _split_equally(undriven, customers, "flat_fallback", metric)
    else:
        fallback = _rows(
            undriven, allocation_method=method, driver=metric, allocation_ratio=weight,
            allocated_cost=pl.col("cost"), unallocated_reason=NO_DRIVER_USAGE,
        )
    return pl.concat([allocated, fallback])


def _direct_cost_pool(
    pool_costs: pl.LazyFrame, direct: pl.LazyFrame, tenants: pl.LazyFrame, method: str
) -> pl.LazyFrame:
    """The pool's cost split in proportion to each tenant's direct (tagged) cost of the day.

    `direct`: (day, tenant_id, direct) of the tagged line items in the pool's scope; tenants with a
    positive direct cost weigh in. A day without any is unallocated (`no_direct_cost`)."""
    weights = direct.filter(pl.col("direct") > 0).with_columns(
        (pl.col("direct") / pl.col("direct").sum().over("day")).alias("_ratio")
    )
    split = _with_customers(pool_costs.join(weights, on="day", how="inner"), tenants)
    allocated = _rows(
        split, allocation_method=method, driver="direct_cost",
        allocation_ratio=pl.col("_ratio"), allocated_cost=pl.col("cost") * pl.col("_ratio"),
    )
    nothing = pool_costs.join(weights.select("day").unique(), on="day", how="anti")
    return pl.concat([allocated, _rows(
        nothing, allocation_method=method, driver="direct_cost", allocation_ratio=1.0,
        allocated_cost=pl.col("cost"), unallocated_reason=NO_DIRECT_COST,
    )])  # fmt: skip


def _fixed_pool(pool_costs: pl.LazyFrame, customers: pl.DataFrame, pool: PoolConfig) -> pl.LazyFrame:
    shares = pl.LazyFrame(
        {"customer_id": list(pool.shares), "_ratio": [v / 100.0 for v in pool.shares.values()]},
        schema={"customer_id": pl.String, "_ratio": pl.Float64},
    )
    present = customers.lazy().select(pl.col("snapshot_date").alias("day"), "customer_id").unique()
    split = pool_costs.join(shares, how="cross").join(
        present.with_columns(_present=pl.lit(True)), on=["day", "customer_id"], how="left"
    )
    return _rows(
        split, allocation_method="fixed", allocation_ratio=pl.col("_ratio"),
        allocated_cost=pl.col("cost") * pl.col("_ratio"),
        unallocated_reason=pl.when(pl.col("_present").is_null()).then(pl.lit(UNKNOWN_CUSTOMER)),
    )


def allocation_columns(pools: list[PoolConfig], cost_column: str) -> list[str]:
    """The raw_billing columns `allocate` reads with these pools (a projection for large bills)."""
    columns = {"x_ChargeDate", "x_TenantId", "ServiceName", cost_column}
    matches = [p.match for p in pools] + [p.direct_cost_scope for p in pools if p.direct_cost_scope is not None]
    for match in matches:
        columns |= {"ServiceCategory"} if match.service_category else set()
        columns |= {"ProviderName"} if match.provider else set()
        columns |= {"ResourceId"} if match.resource_id_pattern else set()
        columns |= {"Tags"} if match.tags else set()
    return sorted(columns)


# What allocation needs of the day's line items, summed: tagged cost per (day, service, tenant),
# untagged cost per (day, service, pool). `direct_scopes` lists the pools whose direct_cost_scope a
# tagged line item falls in ("|a||b|"; empty without such pools). The warehouse computes it
# (ALLOCATION_QUERY); `allocation_items` is its Polars twin for frames of line items.
ALLOCATION_ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "service_name": pl.String(),
    "tenant_id": pl.String(),
    "pool": pl.String(),
    "direct_scopes": pl.String(),
    "cost": pl.Float64(),
}


def _scoped(pools: list[PoolConfig]) -> list[PoolConfig]:
    return [p for p in pools if p.direct_cost_scope is not None]


def _tagged_and_pooled(
    billing: pl.DataFrame, pools: list[PoolConfig], cost_column: str
) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(tagged, pooled): tagged cost per (day, service_name, tenant_id, direct_scopes), untagged cost
    per (day, service_name, pool), from line items (the pool rules evaluated for untagged line items
    only) or from the warehouse's sums (ALLOCATION_ITEMS_SCHEMA)."""
    columns = ["day", "service_name", "tenant_id", "direct_scopes", "cost"]
    if "pool" in billing.columns:
        items = billing.lazy()
        return pl.collect_all([
            items.filter(pl.col("tenant_id").is_not_null()).select(columns),
            items.filter(pl.col("tenant_id").is_null()).group_by("day", "service_name", "pool").agg(pl.col("cost").sum()),
        ])  # fmt: skip
    items = billing.lazy()
    day_service = [pl.col("x_ChargeDate").alias("day"), pl.col("ServiceName").alias("service_name")]
    scopes = pl.concat_str(
        [pl.when(match_expr(p.direct_cost_scope)).then(pl.lit(f"|{p.name}|")).otherwise(pl.lit("")) for p in _scoped(pools)]
        or [pl.lit("")]
    )  # fmt: skip
    # The scopes are a grouping key only when some pool has one (a constant key costs a hash per row).
    by_scope = [scopes.alias("direct_scopes")] if _scoped(pools) else []
    return pl.collect_all([
        items.filter(pl.col("x_TenantId").is_not_null())
        .group_by(*day_service, pl.col("x_TenantId").alias("tenant_id"), *by_scope)
        .agg(pl.col(cost_column).sum().alias("cost"))
        .with_columns(*([] if by_scope else [pl.lit("").alias("direct_scopes")]))
        .select(columns),
        items.filter(pl.col("x_TenantId").is_null())
        .group_by(*day_service, pool_expr(pools))
        .agg(pl.col(cost_column).sum().alias("cost")),
    ])  # fmt: skip


def allocation_items(billing: pl.DataFrame, pools: list[PoolConfig], cost_column: str) -> pl.DataFrame:
    """Line items summed to what `allocate` reads (ALLOCATION_ITEMS_SCHEMA): the Polars twin of
    ALLOCATION_QUERY."""
    tagged, pooled = _tagged_and_pooled(billing, pools, cost_column)
    columns = list(ALLOCATION_ITEMS_SCHEMA)
    return pl.concat([
        tagged.with_columns(pool=pl.lit(DIRECT_POOL)).select(columns),
        pooled.with_columns(tenant_id=pl.lit(None, dtype=pl.String), direct_scopes=pl.lit("")).select(columns),
    ]).cast(ALLOCATION_ITEMS_SCHEMA)  # fmt: skip


def _allocation_statement(rows: str, cfg: "UnitcostConfig", dialect: Dialect) -> str:
    pools = cfg.resolved_pools()
    scopes = " || ".join(
        f"(case when x_TenantId is not null and {match_sql(p.direct_cost_scope, dialect)} "
        f"then {dialect.text('|' + p.name + '|')} else '' end)"
        for p in _scoped(pools)
    ) or "''"
    return (
        f"select x_ChargeDate as day, ServiceName as service_name, x_TenantId as tenant_id, "
        f"{pool_sql(pools, dialect)} as pool, {scopes} as direct_scopes, sum({cfg.cost_column}) as cost "
        f"from ({rows}) as unitcost_rows group by 1, 2, 3, 4, 5"
    )


ALLOCATION_QUERY = WarehouseQuery(BILLING_COLUMNS, ALLOCATION_ITEMS_SCHEMA, _allocation_statement)


def pool_metrics(pools: list[PoolConfig]) -> list[str]:
    """The usage metrics that split some pool: the only tenant_usage rows `allocate` reads."""
    return sorted({metric for pool in pools for metric in pool.metrics()})


# allocated_cost reads the day's usage of its pools' metrics (two of five with the default pools).
POOL_USAGE_QUERY = usage_of_metrics(lambda cfg: pool_metrics(cfg.resolved_pools()))


def allocate(
    billing: pl.DataFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    days: list[dt.date],
    pools: list[PoolConfig],
    cost_column: str,
) -> pl.DataFrame:
    """allocated_cost for `days` (see the module docstring for the contract).

    `billing`: line items, or the warehouse's sums of them (ALLOCATION_ITEMS_SCHEMA). Tagged cost is
    summed per (day, service, tenant) without looking at the pools; only untagged cost is matched to
    pools, and the (small) pool totals are split.
    """
    scoped, pooled = _tagged_and_pooled(billing, pools, cost_column)
    scoped = scoped.filter(pl.col("day").is_in(days))
    pooled = pooled.filter(pl.col("day").is_in(days))
    # Without direct-cost scopes a (day, service, tenant) has one row already.
    tagged = (
        scoped.group_by("day", "service_name", "tenant_id").agg(pl.col("cost").sum())
        if _scoped(pools) else scoped.select("day", "service_name", "tenant_id", "cost")
    )  # fmt: skip
    tenants = _tenant_to_customer(customers)
    parts = [
        _rows(
            _with_customers(tagged.lazy(), tenants),
            pool=DIRECT_POOL, allocation_method="direct", allocation_ratio=1.0, allocated_cost=pl.col("cost"),
        ),
        _rows(
            pooled.lazy().filter(pl.col("pool").is_null()), pool=None, allocation_method="unmatched",
            allocation_ratio=1.0, allocated_cost=pl.col("cost"), unallocated_reason=NO_MATCHING_POOL,
        ),
    ]
    present = set(pooled["pool"].drop_nulls().unique())
    for pool in pools:
        if pool.name not in present:
            continue
        pool_costs = pooled.lazy().filter(pl.col("pool") == pool.name)
        parts.append(_split_pool(pool, pool_costs, scoped.lazy(), usage, customers, tenants))
    return pl.concat(parts, how="vertical").collect()


def _direct_costs(items: pl.LazyFrame, pool: PoolConfig) -> pl.LazyFrame:
    """(day, tenant_id, direct): tagged cost per tenant, within the pool's direct_cost_scope if any."""
    tagged = items.filter(pl.col("tenant_id").is_not_null())
    if pool.direct_cost_scope is not None:
        tagged = tagged.filter(pl.col("direct_scopes").str.contains(f"|{pool.name}|", literal=True))
    return tagged.group_by("day", "tenant_id").agg(pl.col("cost").sum().alias("direct"))


def _split_pool(
    pool: PoolConfig,
    pool_costs: pl.LazyFrame,
    items: pl.LazyFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    tenants: pl.LazyFrame,
) -> pl.LazyFrame:
    """One pool's cost of each day and service, split by its driver (or its idle policy)."""
    if pool.idle == "separate":
        return _rows(
            pool_costs, allocation_method="idle", driver="idle", allocation_ratio=1.0,
            allocated_cost=pl.col("cost"), unallocated_reason=IDLE,
        )  # fmt: skip
    if pool.idle == "by_direct_cost" or pool.driver == "direct_cost":
        method = "idle_by_direct_cost" if pool.idle else "direct_cost"
        return _direct_cost_pool(pool_costs, _direct_costs(items, pool), tenants, method)
    if pool.driver == "exclude":
        return _rows(
            pool_costs, allocation_method="exclude", allocation_ratio=1.0,
            allocated_cost=pl.col("cost"), unallocated_reason=EXCLUDED,
        )
    if pool.driver == "flat":
        return _split_equally(pool_costs, customers, "flat", None)
    if pool.driver == "fixed":
        return _fixed_pool(pool_costs, customers, pool)
    metrics = pool.metrics()
    method = "idle_usage" if pool.idle else "blended" if isinstance(pool.driver, dict) else "usage"
    return pl.concat([
        _metric_pool(pool_costs, usage, customers, tenants, pool, metric, weight, method)
        for metric, weight in metrics.items()
    ])  # fmt: skip
