"""Tag coverage and the allocation of every dollar of the day to customers."""

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import (
    markdown_table,
    money,
    pct,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import days_of
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import ROLLUP_KEY
from unitcost_platform.transforms.allocation import allocate
from unitcost_platform.transforms.coverage import tag_coverage as compute_tag_coverage

GROUP = "allocation"



def build_allocation_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    # The line items stay in the warehouse: each asset reads its sums of them (warehouse_sql.py).
    coverage_in = {"raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "coverage_items"}})}
    allocation_in = {
        "raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "allocation_items"}}),
        # The usage of the metrics the pools split by; the day's other metrics stay in the warehouse.
        "tenant_usage": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "pool_usage"}}),
    }

    @dg.asset(ins=coverage_in, **daily_asset(partitions_def, kinds, GROUP, "day", backfill))
    def tag_coverage(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, raw_billing: pl.DataFrame
    ) -> pl.DataFrame:
        """Share of the day's cost attributable to a tenant, overall and per service, sub-account and provider."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        frame = compute_tag_coverage(raw_billing, days, cfg.resolved_pools(), cfg.cost_column)

        def describe(day: pl.DataFrame) -> dict:
            overall = day.filter(pl.col("scope_type") == "overall").row(0, named=True)
            worst = (
                day.filter(pl.col("scope_type") == "service")
                .sort("untagged_cost", descending=True)
                .head(5)
                .select("scope", "total_cost", "untagged_cost", "coverage")
            )
            idle = day.filter(pl.col("scope_type") == "idle")
            return {
                "total_cost": money(overall["total_cost"]),
                "coverage": overall["coverage"],
                "tagged_share": overall["tagged_share"],
                "untagged_cost": money(overall["untagged_cost"]),
                "services_with_untagged_cost": dg.MetadataValue.md(
                    markdown_table(worst, {"total_cost": usd, "untagged_cost": usd, "coverage": pct})
                ),
                **({"idle_cost": money(idle["total_cost"].sum())} if idle.height else {}),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(ins=allocation_in, **daily_asset(partitions_def, kinds, GROUP, "day", backfill))
    def allocated_cost(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        raw_billing: pl.DataFrame,
        tenant_usage: pl.DataFrame,
        customer_dimension: pl.DataFrame,
    ) -> pl.DataFrame:
        """Every dollar of the day on a customer (direct or by pool driver) or in an explained unallocated bucket."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        frame = allocate(
            raw_billing, tenant_usage, customer_dimension, days, cfg.resolved_pools(), cfg.cost_column
        )

        def describe(day: pl.DataFrame) -> dict:
            # Lazy: an eager filter of the day's rows (7M at 10M line items, in a hundred chunks)
            # allocated 0.76 GiB, for a handful of unallocated rows.
            rows = day.lazy()
            unallocated = (
                rows.filter(pl.col("unallocated_reason").is_not_null())
                .group_by("unallocated_reason")
                .agg(pl.col("allocated_cost").sum())
                .sort("unallocated_reason")
                .collect()
            )
            figures = rows.select(
                pl.col("allocated_cost").sum().alias("total_cost"),
                pl.col("allocated_cost").filter(pl.col("unallocated_reason").is_null()).sum().alias("allocated"),
                pl.col("customer_id").drop_nulls().n_unique().alias("customers"),
            ).collect().row(0, named=True)
            return {
                "total_cost": money(figures["total_cost"]),
                "allocated_to_customers": money(figures["allocated"]),
                "unallocated_by_reason": {r: money(v) for r, v in unallocated.iter_rows()},
                "customers": figures["customers"],
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    return [tag_coverage, allocated_cost]
