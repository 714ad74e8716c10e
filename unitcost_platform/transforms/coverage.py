"""Tag coverage: how much of the bill can be attributed to a tenant, overall and per scope.

In: raw_billing rows of some days, the pools, the cost column. Out: `tag_coverage`, one row per
(day, scope_type, scope); every day has an `overall` row, an empty day included.

`tagged_cost` carries a tenant tag (or a mapped sub-account); `shared_by_design_cost` is untagged on
purpose and split by a pool marked `shared_by_design` (NAT gateways, load balancers); the rest is
`untagged_cost`, the tag-hygiene gap. `coverage` = (tagged + shared by design) / total;
`tagged_share` = tagged / total.

Idle capacity (the line items an `idle:` pool takes: a cluster's unused nodes) is no tagging gap:
it counts as shared by design, and each idle pool gets rows of its own, `scope_type` `idle` and
`scope` the pool's name, whose `total_cost` is the idle cost of the day (whatever the pool's policy;
with `idle: separate` that is what stays unallocated with reason `idle`). Without idle pools the
table is exactly what it was.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.config_pools import PoolConfig
from unitcost_platform.transforms.allocation import BILLING_COLUMNS
from unitcost_platform.transforms.pools import pool_expr
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery, in_list, pool_sql

TOP_RESOURCES = 5
SCOPES = {"service": "ServiceName", "sub_account": "SubAccountId", "provider": "ProviderName"}

TAG_COVERAGE_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "scope_type": pl.String(),
    "scope": pl.String(),
    "total_cost": pl.Float64(),
    "tagged_cost": pl.Float64(),
    "shared_by_design_cost": pl.Float64(),
    "untagged_cost": pl.Float64(),
    "coverage": pl.Float64(),
    "tagged_share": pl.Float64(),
    "line_items": pl.Int64(),
    "untagged_line_items": pl.Int64(),
    "top_untagged_resources": pl.String(),
}


# The day's line items summed to what tag coverage reads: `resource_row` false, one row per (day,
# service, sub-account, provider, tagged, by_design, idle_pool); true, the untagged (not shared by
# design) cost per resource, for the largest untagged resources. The warehouse returns only the
# resources that can be among the largest of some scope (COVERAGE_QUERY); `coverage_items`, its Polars
# twin for frames of line items, returns them all.
COVERAGE_ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "ServiceName": pl.String(),
    "SubAccountId": pl.String(),
    "ProviderName": pl.String(),
    "ResourceId": pl.String(),
    "tagged": pl.Boolean(),
    "by_design": pl.Boolean(),
    "idle_pool": pl.String(),
    "resource_row": pl.Boolean(),
    "cost": pl.Float64(),
    "n": pl.Int64(),
}
_GRAIN = ["day", *SCOPES.values()]


def _pool_kinds(pools: list[PoolConfig]) -> tuple[list[str], list[str]]:
    """The pools counted as shared by design (idle pools included) and the idle pools."""
    idle_pools = [p.name for p in pools if p.idle is not None]
    return [p.name for p in pools if p.shared_by_design] + idle_pools, idle_pools


def coverage_items(billing: pl.DataFrame, pools: list[PoolConfig], cost_column: str) -> pl.DataFrame:
    """Line items summed to COVERAGE_ITEMS_SCHEMA, every untagged resource kept."""
    by_design, idle_pools = _pool_kinds(pools)
    pool = pool_expr(pools)
    tagged = pl.col("x_TenantId").is_not_null()
    classed = billing.lazy().select(
        pl.col("x_ChargeDate").alias("day"), *SCOPES.values(), "ResourceId",
        tagged.alias("tagged"),
        pl.when(tagged).then(False).otherwise(pool.is_in(by_design).fill_null(False)).alias("by_design"),
        pl.when(~tagged & pool.is_in(idle_pools)).then(pool).otherwise(pl.lit(None, dtype=pl.String)).alias("idle_pool"),
        pl.col(cost_column).alias("cost"),
    )  # fmt: skip
    sums = [pl.col("cost").sum(), pl.len().cast(pl.Int64).alias("n")]
    summary, resources = pl.collect_all([
        classed.group_by(*_GRAIN, "tagged", "by_design", "idle_pool").agg(sums)
        .with_columns(ResourceId=pl.lit(None, dtype=pl.String), resource_row=pl.lit(False)),
        classed.filter(~pl.col("tagged") & ~pl.col("by_design")).group_by(*_GRAIN, "ResourceId").agg(sums)
        .with_columns(tagged=pl.lit(False), by_design=pl.lit(False), idle_pool=pl.lit(None, dtype=pl.String),
                      resource_row=pl.lit(True)),
    ])  # fmt: skip
    return pl.concat([summary.select(list(COVERAGE_ITEMS_SCHEMA)), resources.select(list(COVERAGE_ITEMS_SCHEMA))]).cast(
        COVERAGE_ITEMS_SCHEMA
    )


def _coverage_statement(rows: str, cfg: UnitcostConfig, dialect: Dialect) -> str:
    pools = cfg.resolved_pools()
    by_design, idle_pools = _pool_kinds(pools)
    pool = pool_sql(pools, dialect)
    design = in_list("pool", by_design, dialect) if by_design else "false"
    idle = in_list("pool", idle_pools, dialect) if idle_pools else "false"
    grain = ", ".join(SCOPES.values())
    ranked = " union ".join(
        f"select day, ResourceId, ServiceName from (select day, ResourceId, ServiceName, rank() over "
        f"(partition by {', '.join(['day', *scope])} order by sum(cost) desc) as r from gaps group by "
        f"{', '.join(dict.fromkeys(['day', *scope, 'ResourceId', 'ServiceName']))}) as ranked where r <= {TOP_RESOURCES}"
        for scope in ([], *([c] for c in SCOPES.values()))
    )  # fmt: skip
    return f"""with items as (
  select x_ChargeDate as day, {grain}, ResourceId, x_TenantId is not null as tagged, {pool} as pool,
         {cfg.cost_column} as cost
  from ({rows}) as unitcost_rows),
classed as (
  select day, {grain}, ResourceId, tagged,
         case when tagged then false else coalesce({design}, false) end as by_design,
         case when not tagged and coalesce({idle}, false) then pool end as idle_pool, cost
  from items),
gaps as (
  select day, {grain}, ResourceId, sum(cost) as cost, count(*) as n
  from classed where not tagged and not by_design group by day, {grain}, ResourceId),
largest as (select distinct day, ResourceId, ServiceName from ({ranked}) as candidates)
select day, {grain}, cast(null as varchar) as ResourceId, tagged, by_design, idle_pool, false as resource_row,
       sum(cost) as cost, count(*) as n
from classed group by day, {grain}, tagged, by_design, idle_pool
union all
select g.day, {", ".join("g." + c for c in SCOPES.values())}, g.ResourceId, false, false, cast(null as varchar), true, g.cost, g.n
from gaps as g join largest as l on g.day = l.day and g.ResourceId is not distinct from l.ResourceId
  and g.ServiceName is not distinct from l.ServiceName"""


COVERAGE_QUERY = WarehouseQuery(BILLING_COLUMNS, COVERAGE_ITEMS_SCHEMA, _coverage_statement)


def _summary() -> list[pl.Expr]:
    untagged = ~pl.col("tagged") & ~pl.col("by_design")
    total = pl.col("cost").sum()
    return [
        total.alias("total_cost"),
        pl.col("cost").filter(pl.col("tagged")).sum().alias("tagged_cost"),
        pl.col("cost").filter(pl.col("by_design")).sum().alias("shared_by_design_cost"),
        pl.col("cost").filter(untagged).sum().alias("untagged_cost"),
        pl.col("n").sum().cast(pl.Int64).alias("line_items"),
        pl.col("n").filter(untagged).sum().cast(pl.Int64).alias("untagged_line_items"),
    ]


def _top_untagged(items: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The largest untagged resources of each scope, as a JSON list."""
    resource_keys = list(dict.fromkeys(keys + ["ResourceId", "ServiceName"]))
    fields = [c for c in resource_keys if c not in keys] + ["cost"]
    ranked = (
        items.lazy()
        .filter(~pl.col("tagged") & ~pl.col("by_design"))
        .group_by(resource_keys)
        .agg(pl.col("cost").sum())
        # The largest per scope without sorting every resource: top-k within each group, then
        # order those few (largest cost first, ties by resource id).
        .group_by(keys)
        .agg(pl.col(fields).top_k_by(["cost", "ResourceId"], k=TOP_RESOURCES, reverse=[False, True]))
        .explode(fields)
        .sort("cost", "ResourceId", descending=[True, False], nulls_last=True)
        .collect()
    )
    resource = pl.struct(
        pl.col("ResourceId").alias("resource_id"),
        pl.col("ServiceName").alias("service"),
        pl.col("cost").round(6),
    ).struct.json_encode()
    return ranked.group_by(keys, maintain_order=True).agg(
        pl.concat_str([pl.lit("["), resource.str.join(","), pl.lit("]")]).alias("top_untagged_resources")
    )


def _scope(summary: pl.DataFrame, resources: pl.DataFrame, scope_type: str, column: str | None) -> pl.DataFrame:
    keys = ["day"] + ([column] if column else [])
    frame = summary.group_by(keys).agg(_summary()).join(
        _top_untagged(resources, keys), on=keys, how="left", nulls_equal=True
    )
    scope = pl.col(column).fill_null("(none)") if column else pl.lit("all")
    return frame.with_columns(scope_type=pl.lit(scope_type), scope=scope)


def tag_coverage(
    billing: pl.DataFrame, days: list[dt.date], pools: list[PoolConfig], cost_column: str
) -> pl.DataFrame:
    """tag_coverage of `days` from line items or the warehouse's sums of them (COVERAGE_ITEMS_SCHEMA)."""
    items = billing if "resource_row" in billing.columns else coverage_items(billing, pools, cost_column)
    summary, resources = items.filter(~pl.col("resource_row")), items.filter(pl.col("resource_row"))
    calendar = pl.DataFrame({"day": days}, schema={"day": pl.Date})
    # Every day gets its overall row, an empty day included: downstream reads it as "materialized".
    overall = calendar.join(_scope(summary, resources, "overall", None), on="day", how="left").with_columns(
        scope_type=pl.lit("overall"), scope=pl.lit("all")
    )
    parts = [overall] + [_scope(summary, resources, scope_type, column) for scope_type, column in SCOPES.items()]
    idle = summary.filter(pl.col("idle_pool").is_not_null())
    if not idle.is_empty():
        parts.append(_scope(idle, resources.clear(), "idle", "idle_pool"))
    counts = ["total_cost", "tagged_cost", "shared_by_design_cost", "untagged_cost", "line_items", "untagged_line_items"]
    frame = (
        pl.concat([p.select([c for c in TAG_COVERAGE_SCHEMA if c in p.columns]) for p in parts], how="diagonal_relaxed")
        .with_columns([pl.col(c).fill_null(0) for c in counts])
        .with_columns(
            pl.when(pl.col("total_cost") > 0)
            .then((pl.col("tagged_cost") + pl.col("shared_by_design_cost")) / pl.col("total_cost"))
            .alias("coverage"),
            pl.when(pl.col("total_cost") > 0).then(pl.col("tagged_cost") / pl.col("total_cost")).alias("tagged_share"),
            pl.col("top_untagged_resources").fill_null("[]"),
        )
    )
    order = pl.col("scope_type").replace_strict(
        {"overall": 0, "service": 1, "sub_account": 2, "provider": 3, "idle": 4}, return_dtype=pl.Int8
    )
    return (
        frame.select(list(TAG_COVERAGE_SCHEMA))
        .cast(TAG_COVERAGE_SCHEMA)
        .sort([pl.col("day"), order, pl.col("total_cost"), pl.col("scope")], descending=[False, False, True, False])
    )
