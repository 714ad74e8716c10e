"""Walk and Run: product cost against usage, segment economics, and cost in the business's own units."""

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.assets.reporting import day_totals, materialized_days_in
from unitcost_platform.defs.metadata import (
    markdown_table,
    money,
    pct,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import days_of, days_text, trailing_days
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import BY_DAY, ROLLUP_KEY, ByDay
from unitcost_platform.selected import SelectedRows
from unitcost_platform.transforms import products as products_t
from unitcost_platform.transforms import segments as segments_t
from unitcost_platform.transforms import unit_metrics as unit_metrics_t

GROUP = "economics"


def _fmt(value: float | None, fmt=pct) -> str:
    return "n/a" if value is None else fmt(value)


def build_economics_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    history = trailing_days(products_t.HISTORY_DAYS)

    @dg.asset(
        # The day's line items summed per service and product tag by the warehouse (a few rows).
        ins={"raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "product_items"}})},
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def product_billing(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, raw_billing: pl.DataFrame
    ) -> pl.DataFrame:
        """The day's bill per service and product tag (the first of products.tag_keys), as product_cost's 14 days read it."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        frame = products_t.product_billing(raw_billing, cfg.products.tag_keys)

        def describe(day: pl.DataFrame) -> dict:
            return {
                "total_cost": money(day[cfg.cost_column].sum()),
                "line_items": int(day["line_items"].sum()),
                "product_tags": day[products_t.PRODUCT_TAG].drop_nulls().n_unique(),
                "tag_keys": ", ".join(cfg.products.tag_keys) or "none",
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            # 14 days of the bill summed per day, service and product tag (product_billing's rows).
            "product_billing": dg.AssetIn(partition_mapping=history),
            "tenant_usage": dg.AssetIn(partition_mapping=history, metadata={ROLLUP_KEY: products_t.USAGE_ROLLUP}),
            "tag_coverage": materialized_days_in(products_t.HISTORY_DAYS),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def product_cost(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        product_billing: pl.DataFrame,
        tenant_usage: pl.DataFrame,
        tag_coverage: pl.DataFrame,
    ) -> pl.DataFrame:
        """The day's bill by product (tag, else service, else unmapped) against the product's usage and its 7-day growth."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        totals = day_totals(tag_coverage)
        present, other_keys, missing = products_t.usable_days(product_billing, totals, cfg.products.tag_keys)
        if stale := sorted(set(other_keys) & set(days)):
            raise dg.Failure(
                description=f"product_billing of {days_text(stale)} was summed with other products.tag_keys than "
                f"{products_t.tag_keys_text(cfg.products.tag_keys)}: materialize product_billing for "
                f"{days_text(stale)} with product_cost (select both), so the day's products follow the config",
                allow_retries=False,
            )
        if absent := sorted(set(missing) & set(days)):  # the day's bill would have no product at all
            raise dg.Failure(
                description=f"product_billing of {days_text(absent)} is not materialized, though those days are "
                f"billed: materialize product_billing for {days_text(absent)} with product_cost (select both)",
                allow_retries=False,
            )
        if other_keys:
            context.log.warning(
                f"product_billing of {days_text(other_keys)} was summed with other products.tag_keys than "
                f"{products_t.tag_keys_text(cfg.products.tag_keys)}: those days are left out of the 7-day "
                "growth; re-materialize product_billing for them (then product_cost) to count them"
            )
        if missing:  # the run's own days among them were refused above
            context.log.warning(
                f"product_billing of {days_text(missing)} is not materialized, though those days are billed: "
                "they are left out of the 7-day growth; materialize product_billing for them (then "
                "product_cost) to count them"
            )
        billing = product_billing.filter(pl.col("day").is_in(sorted(present | set(days)))).rename({"day": "x_ChargeDate"})
        with user_errors_as_failures():
            frame = products_t.product_cost(
                billing.drop(products_t.TAG_KEYS_COLUMN), tenant_usage, present, days, cfg.products, cfg.cost_column
            )

        def describe(day: pl.DataFrame) -> dict:
            top = day.head(10).select("product", "product_source", "cost", "share_of_day", "cost_growth_7d", "units_growth_7d")
            return {
                "total_cost": money(day["cost"].sum()),
                "products": day.height,
                "unmapped_cost": money(day.filter(pl.col("product") == products_t.UNMAPPED)["cost"].sum()),
                "cost_outgrowing_usage": products_t.outgrowing_line(day) or "none",
                "by_product": dg.MetadataValue.md(
                    markdown_table(top, {"cost": usd, "share_of_day": pct, "cost_growth_7d": _fmt, "units_growth_7d": _fmt})
                ),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            # The day's active customers summed per group by the warehouse (SEGMENT_GROUPS_QUERY).
            "unit_cost": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "segment_groups"}}),
            # The usage per group and metric: the tenants' sums joined by the warehouse to
            # customer_dimension's tenants and unit_cost's active customers (a few rows per group).
            "tenant_usage": dg.AssetIn(metadata={ROLLUP_KEY: {**segments_t.USAGE_ROLLUP, "then": segments_t.SEGMENT_USAGE_THEN}}),
        },
        # Read by tenant_usage's query, not as an input of its own.
        deps=["customer_dimension"],
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def segment_economics(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, unit_cost: pl.DataFrame, tenant_usage: pl.DataFrame
    ) -> pl.DataFrame:
        """Per tier, segment and paying class: customers, MRR, run rate, usage shares, cost-to-MRR and margin."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        frame = segments_t.segment_economics(unit_cost, tenant_usage, None, days)

        def describe(day: pl.DataFrame) -> dict:
            lowest = segments_t.lowest_margin_tier(day)
            tiers = (
                day.filter(pl.col("dimension") == "tier")
                .unique(["group_name"])
                .sort("monthly_run_rate", descending=True)
                .select("group_name", "customers", "mrr", "monthly_run_rate", "revenue_share", "cost_share", "infra_margin")
            )
            return {
                "scope": cfg.scope_description(),
                "freemium": segments_t.freemium_line(day) or "no non-paying customers",
                "lowest_margin_tier": (
                    f"{lowest['group_name']}: infra margin {lowest['infra_margin']:.1%} "
                    f"(run rate {usd(lowest['monthly_run_rate'])} on {usd(lowest['mrr'])} MRR)"
                    if lowest else "none (no tier has MRR)"
                ),
                "lowest_margin_segment": (
                    f"{segment['group_name']}: infra margin {segment['infra_margin']:.1%}"
                    if (segment := segments_t.lowest_margin_tier(day, "segment")) else "none"
                ),
                "tiers": dg.MetadataValue.md(
                    markdown_table(tiers, {"mrr": usd, "monthly_run_rate": usd, "revenue_share": _fmt,
                                           "cost_share": _fmt, "infra_margin": _fmt})  # fmt: skip
                ),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    week = trailing_days(unit_metrics_t.HISTORY_DAYS)

    # Computed and written by the warehouse from unit_cost, tenant_usage and customer_dimension of the
    # run's days and the days a week before them: only the metrics there are (to name them in a
    # warning) and a summary per day and unit metric come back.
    @dg.asset(
        ins={
            "tenant_usage": dg.AssetIn(
                partition_mapping=week, input_manager_key=BY_DAY, metadata={ROLLUP_KEY: unit_metrics_t.METRICS_ROLLUP}
            ),
        },
        deps=[dg.AssetDep(name, partition_mapping=week) for name in ("unit_cost", "customer_dimension")],
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def customer_unit_costs(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, tenant_usage: ByDay
    ) -> SelectedRows:
        """Cost per unit of each configured unit metric, per customer and day, and its change over 7 days."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        unit_metrics = cfg.unit_metrics
        wanted = unit_metrics_t.days_read(days)
        seen = tenant_usage.days(wanted)  # the metrics there are, a row each
        warnings = unit_metrics_t.unseen_metric_warnings(unit_metrics, seen, days_text(wanted))
        for warning in warnings:
            context.log.warning(warning)

        def describe(summary: pl.DataFrame) -> None:
            """Each day's metadata from the warehouse's figures of what it wrote (UNIT_COSTS_SUMMARY)."""
            for day in days:
                part = summary.filter(pl.col("day") == day).sort("unit_metric")
                stats = part.select("unit_metric", "median", "p90", "customers_with_units")
                context.add_asset_metadata({
                    "dagster/row_count": int(part["row_count"].sum()),
                    "unit_metrics": [m.name for m in unit_metrics],
                    "config_warnings": dg.MetadataValue.md("\n".join(f"- {w}" for w in warnings) or "none"),
                    "cost_per_unit": dg.MetadataValue.md(markdown_table(stats, {"median": _usd_unit, "p90": _usd_unit})),
                }, partition_key=day.isoformat())  # fmt: skip

        return SelectedRows(
            unit_metrics_t.CUSTOMER_UNIT_COSTS_SCHEMA,
            lambda table, dialect: unit_metrics_t.customer_unit_costs_sql(days, unit_metrics, table, dialect),
            reads=["unit_cost", "tenant_usage", "customer_dimension"],
            summary=unit_metrics_t.unit_costs_summary_sql,
            summary_schema=unit_metrics_t.UNIT_COSTS_SUMMARY_SCHEMA,
            summarized=describe,
        )

    return [product_billing, product_cost, segment_economics, customer_unit_costs]


def _usd_unit(value: float) -> str:
    return f"${value:,.4f}"
