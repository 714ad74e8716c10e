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
from unitcost_platform.selected import SelectedRows
from unitcost_platform.transforms.allocation import (
    ALLOCATED_COST_SCHEMA,
    ALLOCATION_SUMMARY_SCHEMA,
    allocation_sql,
    allocation_summary_sql,
)
from unitcost_platform.transforms.coverage import tag_coverage as compute_tag_coverage

GROUP = "allocation"



def build_allocation_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    # The line items stay in the warehouse: each asset reads its sums of them (warehouse_sql.py).
    coverage_in = {"raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "coverage_items"}})}

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

    # allocated_cost is computed by the warehouse from its upstreams' days (allocation_sql) and written
    # there: the line items' sums, the usage and the allocated rows never pass through Python.
    @dg.asset(
        deps=["raw_billing", "tenant_usage", "customer_dimension"],
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def allocated_cost(context: dg.AssetExecutionContext, unitcost: UnitcostResource) -> SelectedRows:
        """Every dollar of the day on a customer (direct or by pool driver) or in an explained unallocated bucket."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        pools, cost_column = cfg.resolved_pools(), cfg.cost_column

        def describe(summary: pl.DataFrame) -> None:
            """Each day's metadata from the warehouse's sums of what it wrote (ALLOCATION_SUMMARY)."""
            for day in days:
                part = summary.filter(pl.col("day") == day)
                unallocated = part.filter(pl.col("unallocated_reason").is_not_null()).sort("unallocated_reason")
                context.add_asset_metadata({
                    "dagster/row_count": int(part["row_count"].sum()),
                    "total_cost": money(part["allocated_cost"].sum()),
                    "allocated_to_customers": money(part.filter(pl.col("unallocated_reason").is_null())["allocated_cost"].sum()),
                    "unallocated_by_reason": {
                        r: money(v) for r, v in unallocated.select("unallocated_reason", "allocated_cost").iter_rows()
                    },
                    "customers": int(part["customers"].max() or 0),
                }, partition_key=day.isoformat())  # fmt: skip

        return SelectedRows(
            ALLOCATED_COST_SCHEMA,
            lambda table, dialect: allocation_sql(days, pools, cost_column, table, dialect),
            reads=["raw_billing", "tenant_usage", "customer_dimension"],
            summary=allocation_summary_sql,
            summary_schema=ALLOCATION_SUMMARY_SCHEMA,
            summarized=describe,
        )

    return [tag_coverage, allocated_cost]
