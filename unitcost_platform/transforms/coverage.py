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

from unitcost_platform.config import PoolConfig
from unitcost_platform.transforms.pools import pool_expr

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


def classify(billing: pl.DataFrame, pools: list[PoolConfig], cost_column: str) -> pl.DataFrame:
    """The day's cost as tagged, shared by design or untagged, summed per scope (and resource).

    Tagged line items are summed per (day, service, sub-account, provider) without matching pools;
    only untagged ones are matched and kept per resource (for the top untagged resources). `n` is the
    number of line items behind each row.
    """
    idle_pools = [p.name for p in pools if p.idle is not None]
    by_design = [p.name for p in pools if p.shared_by_design] + idle_pools
    items = billing.lazy()
    grain = [pl.col("x_ChargeDate").alias("day"), *SCOPES.values()]
    sums = [pl.col(cost_column).sum().alias("cost"), pl.len().cast(pl.Int64).alias("n")]
    pool = pool_expr(pools)
    idle_pool = pl.when(pool.is_in(idle_pools)).then(pool).otherwise(pl.lit(None, dtype=pl.String)).alias("idle_pool")
    tagged, untagged = pl.collect_all([
        items.filter(pl.col("x_TenantId").is_not_null()).group_by(grain).agg(sums)
        .with_columns(tagged=pl.lit(True), by_design=pl.lit(False), ResourceId=pl.lit(None, dtype=pl.String),
                      idle_pool=pl.lit(None, dtype=pl.String)),
        items.filter(pl.col("x_TenantId").is_null())
        .group_by(*grain, "ResourceId", pool.is_in(by_design).fill_null(False).alias("by_design"), idle_pool)
        .agg(sums)
        .with_columns(tagged=pl.lit(False)),
    ])  # fmt: skip
    return pl.concat([tagged, untagged.select(tagged.columns)], how="vertical")


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


def _scope(items: pl.DataFrame, scope_type: str, column: str | None) -> pl.DataFrame:
    keys = ["day"] + ([column] if column else [])
    summary = items.group_by(keys).agg(_summary())
    top = _top_untagged(items, keys)
    frame = summary.join(top, on=keys, how="left", nulls_equal=True)
    scope = pl.col(column).fill_null("(none)") if column else pl.lit("all")
    return frame.with_columns(scope_type=pl.lit(scope_type), scope=scope)


def tag_coverage(
    billing: pl.DataFrame, days: list[dt.date], pools: list[PoolConfig], cost_column: str
) -> pl.DataFrame:
    items = classify(billing, pools, cost_column)
    calendar = pl.DataFrame({"day": days}, schema={"day": pl.Date})
    # Every day gets its overall row, an empty day included: downstream reads it as "materialized".
    overall = calendar.join(_scope(items, "overall", None), on="day", how="left").with_columns(
        scope_type=pl.lit("overall"), scope=pl.lit("all")
    )
    parts = [overall] + [_scope(items, scope_type, column) for scope_type, column in SCOPES.items()]
    idle = items.filter(pl.col("idle_pool").is_not_null())
    if not idle.is_empty():
        parts.append(_scope(idle, "idle", "idle_pool"))
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
