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
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

from unitcost_platform.config_pools import DIRECT_POOL, PoolConfig
from unitcost_platform.transforms.pools import match_expr, pool_expr
from unitcost_platform.warehouse_sql import (
    Dialect,
    WarehouseQuery,
    match_sql,
    metrics_filter,
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


def items_statement(rows: str, pools: list[PoolConfig], cost_column: str, dialect: Dialect) -> str:
    """ALLOCATION_ITEMS_SCHEMA over `rows` (line items with allocation_columns)."""
    scopes = " || ".join(
        f"(case when x_TenantId is not null and {match_sql(p.direct_cost_scope, dialect)} "
        f"then {dialect.text('|' + p.name + '|')} else '' end)"
        for p in _scoped(pools)
    ) or "''"
    return (
        f"select x_ChargeDate as day, ServiceName as service_name, x_TenantId as tenant_id, "
        f"{pool_sql(pools, dialect)} as pool, {scopes} as direct_scopes, sum({cost_column}) as cost "
        f"from ({rows}) as unitcost_rows group by 1, 2, 3, 4, 5"
    )


def _allocation_statement(rows: str, cfg: "UnitcostConfig", dialect: Dialect) -> str:
    return items_statement(rows, cfg.resolved_pools(), cfg.cost_column, dialect)


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


# allocate in the warehouse: the same rows computed where the line items live and written there by
# the IO manager (`selected.SelectedRows`), so neither the line items' sums (millions of tenant x
# service rows a day at scale) nor the allocated rows pass through Python. `allocate` is its Polars
# twin: unitcost_platform_tests/transforms/test_allocation_sql.py holds the two equal, and the
# hand-worked allocation tests run on both (unitcost_platform_tests/transforms/conftest.py).


def _literal(value: float) -> str:
    """A double literal (Snowflake would read `0.7` or `1.0 / n` as fixed-point NUMBER)."""
    return f"cast({float(value)!r} as double)"


def _text_or_null(value: str | None, dialect: Dialect) -> str:
    return "cast(null as varchar)" if value is None else dialect.text(value)


def _allocated_select(
    source: str,
    dialect: Dialect,
    *,
    customer: str = "cast(null as varchar)",
    tenant: str = "cast(null as varchar)",
    pool: str = "pool",
    method: str,
    driver: str | None = None,
    ratio: str,
    cost: str,
    reason: str = "cast(null as varchar)",
) -> str:
    """One part of allocated_cost, its columns in ALLOCATED_COST_SCHEMA's order."""
    return (
        f"select day, {customer} as customer_id, {tenant} as tenant_id, service_name, {pool} as pool, "
        f"{dialect.text(method)} as allocation_method, {_text_or_null(driver, dialect)} as driver, "
        f"{ratio} as allocation_ratio, {cost} as allocated_cost, {reason} as unallocated_reason from {source}"
    )


def _reason(value: str, dialect: Dialect) -> str:
    return f"cast({dialect.text(value)} as varchar)"


def _unknown_tenant(dialect: Dialect) -> str:
    return f"case when customer_id is null then {_reason(UNKNOWN_TENANT, dialect)} end"


def _with_tenants(rows: str) -> str:
    """`rows` (with day and tenant_id, no customer_id) with each tenant's customer of the day (null:
    an unknown tenant), as `_with_customers` joins them."""
    return (
        f"(select r.*, t.customer_id from ({rows}) as r left join unitcost_tenants as t "
        f"on t.day = r.day and t.tenant_id = r.tenant_id) as unitcost_part"
    )


def _equal_split_sql(pool_costs: str, dialect: Dialect, method: str, driver: str | None) -> list[str]:
    """_split_equally: each (day, pool, service) cost over the day's active customers."""
    split = (
        f"(select c.*, a.customer_id, a.customers from {pool_costs} as c join unitcost_active as a on a.day = c.day) as unitcost_part"
    )
    nobody = f"(select * from {pool_costs} as c where c.day not in (select day from unitcost_active)) as unitcost_part"
    return [
        _allocated_select(split, dialect, customer="customer_id", method=method, driver=driver,
                          ratio=f"{_literal(1.0)} / customers", cost="cost / customers"),
        _allocated_select(nobody, dialect, method=method, driver=driver, ratio=_literal(1.0), cost="cost",
                          reason=_reason(NO_ACTIVE_CUSTOMERS, dialect)),
    ]  # fmt: skip


def _weighted_split_sql(
    pool_costs: str, weights: str, dialect: Dialect, method: str, driver: str, weight: float, undriven: list[str]
) -> list[str]:
    """The pool's cost (times `weight`) split by `weights` (day, tenant_id, ratio) joined to the
    tenants' customers; `undriven`: the parts of the days without weights."""
    split = _with_tenants(
        f"select c.day, c.service_name, c.pool, c.cost * {_literal(weight)} as cost, w.tenant_id, w.ratio "
        f"from {pool_costs} as c join ({weights}) as w on w.day = c.day"
    )
    return [
        _allocated_select(
            split, dialect, customer="customer_id", tenant="tenant_id", method=method, driver=driver,
            ratio=f"ratio * {_literal(weight)}", cost="cost * ratio", reason=_unknown_tenant(dialect),
        ),
        *undriven,
    ]  # fmt: skip


def _shares_sql(rows: str, value: str) -> str:
    """Each (day, tenant_id) of `rows` with its share of the day's total of `value` (positive only)."""
    return f"select day, tenant_id, {value} / sum({value}) over (partition by day) as ratio from ({rows}) as s"


def _pool_sql(pool: PoolConfig, dialect: Dialect) -> list[str]:
    """_split_pool in SQL: one pool's parts."""
    costs = f"(select * from unitcost_pooled where pool = {dialect.text(pool.name)})"
    if pool.idle == "separate":
        return [_allocated_select(f"{costs} as c", dialect, method="idle", driver="idle", ratio=_literal(1.0),
                                  cost="cost", reason=_reason(IDLE, dialect))]  # fmt: skip
    if pool.idle == "by_direct_cost" or pool.driver == "direct_cost":
        method = "idle_by_direct_cost" if pool.idle else "direct_cost"
        scope = (
            f" and direct_scopes like {dialect.text('%|' + pool.name + '|%')}" if pool.direct_cost_scope is not None else ""
        )
        direct = (
            f"select day, tenant_id, sum(cost) as direct from unitcost_items where tenant_id is not null{scope} "
            f"group by day, tenant_id having sum(cost) > 0"
        )
        weights = _shares_sql(direct, "direct")
        nothing = (
            f"(select * from {costs} as c where c.day not in (select day from ({direct}) as d)) as unitcost_part"
        )
        undriven = [_allocated_select(nothing, dialect, method=method, driver="direct_cost", ratio=_literal(1.0),
                                      cost="cost", reason=_reason(NO_DIRECT_COST, dialect))]  # fmt: skip
        return _weighted_split_sql(costs, weights, dialect, method, "direct_cost", 1.0, undriven)
    if pool.driver == "exclude":
        return [_allocated_select(f"{costs} as c", dialect, method="exclude", ratio=_literal(1.0), cost="cost",
                                  reason=_reason(EXCLUDED, dialect))]  # fmt: skip
    if pool.driver == "flat":
        return _equal_split_sql(costs, dialect, "flat", None)
    if pool.driver == "fixed":
        shares = " union all ".join(
            f"select {dialect.text(customer)} as customer_id, {_literal(share / 100.0)} as ratio"
            for customer, share in (pool.shares or {}).items()
        )
        split = (
            f"(select c.*, s.customer_id, s.ratio, p.customer_id as present from {costs} as c cross join ({shares}) as s "
            f"left join unitcost_present as p on p.day = c.day and p.customer_id = s.customer_id) as unitcost_part"
        )
        return [_allocated_select(
            split, dialect, customer="customer_id", method="fixed", ratio="ratio", cost="cost * ratio",
            reason=f"case when present is null then {_reason(UNKNOWN_CUSTOMER, dialect)} end",
        )]  # fmt: skip
    method = "idle_usage" if pool.idle else "blended" if isinstance(pool.driver, dict) else "usage"
    parts: list[str] = []
    for metric, weight in pool.metrics().items():
        service = f" and service_name = {dialect.text(pool.usage_service)}" if pool.usage_service is not None else ""
        drivers = (
            f"select usage_date as day, tenant_id, sum(value) as value from unitcost_usage "
            f"where metric = {dialect.text(metric)}{service} group by usage_date, tenant_id having sum(value) > 0"
        )
        weighted = f"(select day, service_name, pool, cost * {_literal(weight)} as cost from {costs} as c)"
        undriven_costs = f"(select * from {weighted} as c where c.day not in (select day from ({drivers}) as d))"
        if pool.fallback == "flat":
            undriven = _equal_split_sql(undriven_costs, dialect, "flat_fallback", metric)
        else:
            undriven = [_allocated_select(
                f"{undriven_costs} as unitcost_part", dialect, method=method, driver=metric, ratio=_literal(weight),
                cost="cost", reason=_reason(NO_DRIVER_USAGE, dialect),
            )]  # fmt: skip
        parts += _weighted_split_sql(costs, _shares_sql(drivers, "value"), dialect, method, metric, weight, undriven)
    return parts


def allocation_sql(
    days: list[dt.date], pools: list[PoolConfig], cost_column: str, table: Callable[[str], str], dialect: Dialect
) -> str:
    """allocated_cost of `days` as one select over the warehouse's raw_billing, tenant_usage and
    customer_dimension of those days (`table(name)`: the quoted table): `allocate` in SQL, its
    columns ALLOCATED_COST_SCHEMA's. `days` are consecutive (a partition range)."""
    first, last = dialect.date(min(days).isoformat()), dialect.date(max(days).isoformat())
    columns = ", ".join(allocation_columns(pools, cost_column))
    billing = f"select {columns} from {table('raw_billing')} where x_ChargeDate >= {first} and x_ChargeDate <= {last}"
    wanted = metrics_filter(pool_metrics(pools), dialect)  # POOL_USAGE_QUERY's filter
    customers = (
        f"from {table('customer_dimension')} where snapshot_date >= {first} and snapshot_date <= {last}"
    )
    ctes = {
        # ALLOCATION_QUERY's sums over the days' line items.
        "unitcost_items": items_statement(billing, pools, cost_column, dialect),
        "unitcost_pooled": "select day, service_name, pool, sum(cost) as cost from unitcost_items where tenant_id is null group by 1, 2, 3",
        "unitcost_usage": (
            f"select usage_date, tenant_id, service_name, metric, value from {table('tenant_usage')} "
            f"where usage_date >= {first} and usage_date <= {last} and {wanted}"
        ),
        "unitcost_tenants": f"select distinct snapshot_date as day, tenant_id, customer_id {customers}",
        "unitcost_present": f"select distinct snapshot_date as day, customer_id {customers}",
        "unitcost_active": (
            f"select day, customer_id, count(*) over (partition by day) as customers from "
            f"(select distinct snapshot_date as day, customer_id {customers} and status = {dialect.text('active')}) as a"
        ),
    }
    tagged = _with_tenants(
        "select day, service_name, tenant_id, sum(cost) as cost from unitcost_items where tenant_id is not null "
        "group by 1, 2, 3"
    )
    parts = [
        _allocated_select(
            tagged, dialect, customer="customer_id", tenant="tenant_id", pool=dialect.text(DIRECT_POOL),
            method="direct", ratio=_literal(1.0), cost="cost", reason=_unknown_tenant(dialect),
        ),
        _allocated_select(
            "(select * from unitcost_pooled where pool is null) as c", dialect, pool="cast(null as varchar)",
            method="unmatched", ratio=_literal(1.0), cost="cost", reason=_reason(NO_MATCHING_POOL, dialect),
        ),
    ]  # fmt: skip
    for pool in pools:
        parts += _pool_sql(pool, dialect)
    with_clause = ",\n".join(f"{name} as ({sql})" for name, sql in ctes.items())
    return f"with {with_clause}\n" + "\nunion all\n".join(parts)


# What the allocated_cost asset reads back of the rows it wrote, for its metadata: per day and
# unallocated reason, the money and the rows, and the day's customers.
ALLOCATION_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "unallocated_reason": pl.String(),
    "allocated_cost": pl.Float64(),
    "row_count": pl.Int64(),
    "customers": pl.Int64(),
}


def allocation_summary_sql(rows: str, dialect: Dialect) -> str:
    """ALLOCATION_SUMMARY_SCHEMA over `rows` (allocated_cost's rows of the days written)."""
    return (
        f"with unitcost_rows as ({rows}), unitcost_days as (select day, count(distinct customer_id) as customers "
        f"from unitcost_rows group by day) "
        f"select g.day, g.unallocated_reason, g.allocated_cost, g.row_count, d.customers from ("
        f"select day, unallocated_reason, sum(allocated_cost) as allocated_cost, count(*) as row_count "
        f"from unitcost_rows group by day, unallocated_reason) as g join unitcost_days as d on d.day = g.day"
    )
