"""The three inputs of a day: billing line items, tenant usage, the customer dimension."""

import datetime as dt

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import money, per_day_metadata, user_errors_as_failures
from unitcost_platform.defs.partitions import days_of
from unitcost_platform.defs.resources import SOURCE_RESOURCE_KEYS, UnitcostResource
from unitcost_platform.sources.loaders import load_customers, load_usage, stage_billing
from unitcost_platform.staging import StagedRows

GROUP = "ingest"


def _resources(context: dg.AssetExecutionContext, kind: str) -> dict:
    return {key: getattr(context.resources, key) for key in SOURCE_RESOURCE_KEYS[kind]}

SOURCE_TOTALS_KEY = "source_totals"
SOURCE_VERSIONS_KEY = "source_versions"


def build_ingest_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    # Each connector's resource (client and secrets) is required by the asset of its kind.
    @dg.asset(
        **daily_asset(partitions_def, kinds, GROUP, "x_ChargeDate", backfill),
        required_resource_keys={"unitcost", *SOURCE_RESOURCE_KEYS["billing"]},
    )
    def raw_billing(context: dg.AssetExecutionContext) -> StagedRows:
        """Billing line items of the day from every configured source, normalized to FOCUS columns.

        Staged file by file and inserted by the warehouse (never one frame of the day's rows)."""
        days = days_of(context)
        unitcost: UnitcostResource = context.resources.unitcost
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            read = stage_billing(cfg, unitcost.data_path(), days, context.log.info, _resources(context, "billing"))
        cost = cfg.cost_column

        def describe(date: dt.date, day: pl.DataFrame) -> dict:
            """`day`: billing_summary rows of the day (one per source, provider, currency, ...)."""
            total = day[cost].sum()
            tagged = day.filter(pl.col("tagged"))[cost].sum()
            by_source = day.group_by("x_Source").agg(pl.col(cost).sum()).sort("x_Source")
            # The partition's billing period, not its rows': a day without line items was read from
            # the period's manifest too (and is not restated on every tick for lack of a version).
            period = date.strftime("%Y-%m")
            return {
                "dagster/row_count": int(day["rows"].sum()),
                "total_cost": money(total),
                "cost_column": cost,
                "tagged_share": round(tagged / total, 4) if total else None,
                "providers": ", ".join(sorted(day["ProviderName"].drop_nulls().unique().to_list())),
                "is_final": bool(day["x_IsFinal"].all()) if day.height else True,
                # Read by the restatement sensor: what this day was computed from.
                SOURCE_TOTALS_KEY: {s: round(v or 0.0, 6) for s, v in by_source.iter_rows()},
                SOURCE_VERSIONS_KEY: {k: v for k, v in read.versions.items() if k.endswith(period)},
            }

        per_day_metadata(context, days, read.summary, "x_ChargeDate", describe_day=describe)
        context.log.info(f"{read.rows.rows:,} line items staged in {len(read.rows.parts)} part(s)")
        return read.rows

    @dg.asset(
        **daily_asset(partitions_def, kinds, GROUP, "usage_date", backfill),
        required_resource_keys={"unitcost", *SOURCE_RESOURCE_KEYS["usage"]},
    )
    def tenant_usage(context: dg.AssetExecutionContext) -> pl.DataFrame:
        """Per-tenant usage telemetry of the day in long format (tenant x service x metric)."""
        days = days_of(context)
        unitcost: UnitcostResource = context.resources.unitcost
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = load_usage(cfg, unitcost.data_path(), days, context.log.info, _resources(context, "usage"))

        def describe(day: pl.DataFrame) -> dict:
            totals = day.group_by("metric").agg(pl.col("value").sum()).sort("metric")
            return {
                "tenants": day["tenant_id"].n_unique(),
                "metrics": {m: round(v, 2) for m, v in totals.iter_rows()},
            }

        per_day_metadata(context, days, frame, "usage_date", describe)
        return frame

    @dg.asset(
        **daily_asset(partitions_def, kinds, GROUP, "snapshot_date", backfill),
        required_resource_keys={"unitcost", *SOURCE_RESOURCE_KEYS["customers"]},
    )
    def customer_dimension(context: dg.AssetExecutionContext) -> pl.DataFrame:
        """The customers (tier, MRR, status) each tenant belonged to on the day."""
        days = days_of(context)
        unitcost: UnitcostResource = context.resources.unitcost
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = load_customers(cfg, unitcost.data_path(), days, context.log.info, _resources(context, "customers"))

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
