"""Tag coverage: how much of the bill can be attributed to a tenant, overall and per scope.

In: raw_billing rows of some days, the pools, the cost column. Out: `tag_coverage`, one row per
(day, scope_type, scope); every day has an `overall` row, an empty day included.

`tagged_cost` carries a tenant tag (or a mapped sub-account); `shared_by_design_cost` is untagged on
purpose and split by a pool marked `shared_by_design` (NAT gateways, load balancers); the rest is
`untagged_cost`, the tag-hygiene gap. `coverage` = (tagged + shared by design) / total;
`tagged_share` = tagged / total.
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
    """Each line item as tagged, shared by design or untagged, with its cost."""
    by_design = [p.name for p in pools if p.shared_by_design]
    return billing.select(
        pl.col("x_ChargeDate").alias("day"),
        *SCOPES.values(),
        "ResourceId",
        pl.col(cost_column).alias("cost"),
        pool_expr(pools),
        pl.col("x_TenantId").is_not_null().alias("tagged"),
    ).with_columns(
        (~pl.col("tagged") & pl.col("pool").is_in(by_design)).alias("by_design"),
    )


def _summary() -> list[pl.Expr]:
    untagged = ~pl.col("tagged") & ~pl.col("by_design")
    total = pl.col("cost").sum()
    return [
        total.alias("total_cost"),
        pl.col("cost").filter(pl.col("tagged")).sum().alias("tagged_cost"),
        pl.col("cost").filter(pl.col("by_design")).sum().alias("shared_by_design_cost"),
        pl.col("cost").filter(untagged).sum().alias("untagged_cost"),
        pl.len().cast(pl.Int64).alias("line_items"),
        untagged.sum().cast(pl.Int64).alias("untagged_line_items"),
    ]


def _top_untagged(items: pl.DataFrame, keys: list[str]) -> pl.DataFrame:
    """The largest untagged resources of each scope, as a JSON list."""
    resource_keys = list(dict.fromkeys(keys + ["ResourceId", "ServiceName"]))
    ranked = (
        items.filter(~pl.col("tagged") & ~pl.col("by_design"))
        .group_by(resource_keys)
        .agg(pl.col("cost").sum())
        .sort("cost", "ResourceId", descending=[True, False], nulls_last=True)
        .group_by(keys, maintain_order=True)
        .head(TOP_RESOURCES)
    )
    resource = pl.struct(
        pl.col("ResourceId").alias("resource_id"),
        pl.col("ServiceName").alias("service"),
        pl.col("cost").round(6),
    ).struct.json_encode()
    return ranked.group_by(keys).agg(
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
        {"overall": 0, "service": 1, "sub_account": 2, "provider": 3}, return_dtype=pl.Int8
    )
    return (
        frame.select(list(TAG_COVERAGE_SCHEMA))
        .cast(TAG_COVERAGE_SCHEMA)
        .sort([pl.col("day"), order, pl.col("total_cost"), pl.col("scope")], descending=[False, False, True, False])
    )
