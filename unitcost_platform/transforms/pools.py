"""Which shared pool an untagged line item falls into: the first matching rule of the config.

In: raw_billing rows (ServiceCategory, ServiceName, ProviderName, ResourceId, Tags, x_TenantId).
Out: the same rows with `pool`: `direct` for tenant-tagged cost, a pool name, or null (no rule).
"""

import polars as pl

from unitcost_platform.config_pools import DIRECT_POOL, PoolConfig, PoolMatch


def match_expr(match: PoolMatch) -> pl.Expr:
    """A boolean expression that is true for line items the rule matches."""
    conditions: list[pl.Expr] = []
    if match.all:
        conditions.append(pl.lit(True))
    if match.service_category:
        conditions.append(pl.col("ServiceCategory").is_in(match.service_category))
    if match.service_name:
        conditions.append(pl.col("ServiceName").is_in(match.service_name))
    if match.provider:
        conditions.append(pl.col("ProviderName").is_in(match.provider))
    if match.resource_id_pattern:
        conditions.append(pl.col("ResourceId").str.contains(match.resource_id_pattern))
    for key, value in (match.tags or {}).items():
        conditions.append(pl.col("Tags").str.json_path_match(f"$['{key}']") == value)
    return pl.all_horizontal(conditions).fill_null(False)


def pool_expr(pools: list[PoolConfig]) -> pl.Expr:
    """`direct` for tagged rows, else the first matching pool's name, else null."""
    expr = pl.when(pl.col("x_TenantId").is_not_null()).then(pl.lit(DIRECT_POOL))
    for pool in pools:
        expr = expr.when(match_expr(pool.match)).then(pl.lit(pool.name))
    return expr.otherwise(pl.lit(None, dtype=pl.String)).alias("pool")


