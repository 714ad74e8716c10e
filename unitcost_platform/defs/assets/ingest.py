"""The three inputs of a day: billing line items, tenant usage, the customer dimension."""

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import money, per_day_metadata, user_errors_as_failures
from unitcost_platform.defs.partitions import days_of
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.sources.loaders import load_billing, load_customers, load_usage

GROUP = "ingest"


def build_ingest_assets(partitions_def: dg.PartitionsDefinition, kinds: set[str]) -> list[dg.AssetsDefinition]:

    @dg.asset(**daily_asset(partitions_def, kinds, GROUP, "x_ChargeDate"))
    def raw_billing(context: dg.AssetExecutionContext, unitcost: UnitcostResource) -> pl.DataFrame:
        """Billing line items of the day from every configured source, normalized to FOCUS columns."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = load_billing(cfg, unitcost.data_path(), days, context.log.info)
        cost = cfg.cost_column

        def describe(day: pl.DataFrame) -> dict:
            total = day[cost].sum()
            tagged = day.filter(pl.col("x_TenantId").is_not_null())[cost].sum()
            return {
                "total_cost": money(total),
                "cost_column": cost,
                "tagged_share": round(tagged / total, 4) if total else None,
                "providers": ", ".join(sorted(day["ProviderName"].drop_nulls().unique().to_list())),
                "is_final": bool(day["x_IsFinal"].all()) if day.height else True,
            }

        per_day_metadata(context, days, frame, "x_ChargeDate", describe)
        return frame

    @dg.asset(**daily_asset(partitions_def, kinds, GROUP, "usage_date"))
    def tenant_usage(context: dg.AssetExecutionContext, unitcost: UnitcostResource) -> pl.DataFrame:
        """Per-tenant usage telemetry of the day in long format (tenant x service x metric)."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = load_usage(cfg, unitcost.data_path(), days, context.log.info)

        def describe(day: pl.DataFrame) -> dict:
            totals = day.group_by("metric").agg(pl.col("value").sum()).sort("metric")
            return {
                "tenants": day["tenant_id"].n_unique(),
                "metrics": {m: round(v, 2) for m, v in totals.iter_rows()},
            }

        per_day_metadata(context, days, frame, "usage_date", describe)
        return frame

    @dg.asset(**daily_asset(partitions_def, kinds, GROUP, "snapshot_date"))
    def customer_dimension(context: dg.AssetExecutionContext, unitcost: UnitcostResource) -> pl.DataFrame:
        """The customers (tier, MRR, status) each tenant belonged to on the day."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = load_customers(cfg, unitcost.data_path(), days, context.log.info)

        def describe(day: pl.DataFrame) -> dict:
            per_customer = day.unique("customer_id")
            active = per_customer.filter(pl.col("status") == "active")
            return {
                "customers": per_customer.height,
                "active_customers": active.height,
                "paying_customers": active.filter(pl.col("is_paying")).height,
                "total_mrr": money(active["mrr"].sum()),
            }

        per_day_metadata(context, days, frame, "snapshot_date", describe)
        return frame

    return [raw_billing, tenant_usage, customer_dimension]
