"""The engineers' view: what each service adds to the cost of serving a customer, and alert incidents."""

import datetime as dt

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.assets.reporting import (
    ALERTS_METADATA_KEY,
    GROUP,
    materialized_days,
    materialized_days_in,
)
from unitcost_platform.defs.metadata import (
    documents_metadata,
    markdown_table,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import and_days_before, days_of, trailing_days
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import BY_DAY, BY_KEY, ROLLUP_KEY, ByDay, RollupByKey
from unitcost_platform.transforms.alerts import COST_ALERTS_SCHEMA
from unitcost_platform.transforms.customer_cost import CUSTOMER_SERVICE_ROLLUP, window_spec
from unitcost_platform.transforms.incidents import alert_incidents as compute_incidents
from unitcost_platform.transforms.incidents import documents
from unitcost_platform.transforms.service_unit_cost import (
    ON_END,
    SERVICE_CUSTOMER_ROLLUP,
    ServiceMonthReader,
    impact_documents,
    service_month_spec,
)
from unitcost_platform.transforms.service_unit_cost import (
    service_unit_cost as compute_service_unit_cost,
)
from unitcost_platform.transforms.unit_cost import RUN_RATE_DAYS, TREND_DAYS

UNIT_COST_METADATA_KEY = "unit_cost_messages"
DRIVER_DAYS = 2 * TREND_DAYS


def _ratio(x: float) -> str:
    return f"{x:.1f}\u00d7"


def build_engineering_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    @dg.asset(
        ins={
            # D's window and D-7's (for change_7d), summed by the warehouse per service and customer:
            # over each window in a daily run, per day in a range run.
            "allocated_cost": dg.AssetIn(
                partition_mapping=trailing_days(RUN_RATE_DAYS + TREND_DAYS), input_manager_key=BY_KEY,
                metadata={ROLLUP_KEY: SERVICE_CUSTOMER_ROLLUP},
            ),
            "tag_coverage": materialized_days_in(RUN_RATE_DAYS + TREND_DAYS),
            # The run's days and the days a week before them (change_7d), not the days between: a
            # daily run reads their active customers counted by the warehouse (ACTIVE_IN_SCOPE_QUERY).
            "customer_dimension": dg.AssetIn(
                partition_mapping=trailing_days(TREND_DAYS + 1), input_manager_key=BY_DAY,
                metadata={"columns": ["snapshot_date", "customer_id", "customer_name", "status", "tier", "segment", "customer_since"]},
            ),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def service_unit_cost(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        allocated_cost: RollupByKey,
        tag_coverage: pl.DataFrame,
        customer_dimension: ByDay,
    ) -> pl.DataFrame:
        """What each service adds to the monthly cost of serving one active customer, against its target."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        present = materialized_days(tag_coverage)
        # A daily run's windows are reduced by the warehouse to a few rows per service (with the day's
        # customers of its customer_dimension table); a range run reads every day's rows.
        read = ServiceMonthReader(
            service_month=lambda end, window: allocated_cost.reduced(
                window_spec("day", {end: window}, ON_END), service_month_spec(end, window)
            ),
            rows=lambda windows: allocated_cost.all() if windows is None else allocated_cost.windows(window_spec("day", windows, ON_END)),
            # The days' active customers in scope, counted by the warehouse (a row per day).
            active_customers=lambda eval_days: customer_dimension.days(eval_days, {"query": "active_in_scope"}),
        )  # fmt: skip
        frame = compute_service_unit_cost(
            read, present, lambda: customer_dimension.days(and_days_before(days, TREND_DAYS)), days, cfg.owners,
            cfg.targets, cfg.scope,
        )  # fmt: skip
        messages = impact_documents(frame, cfg.targets.notify_change)

        def describe(day: pl.DataFrame) -> dict:
            over = day.filter(pl.col("over_target")).sort("target_ratio", descending=True).select(
                "service_name", "owner", "cost_per_customer_month", "target_per_customer_month", "target_ratio", "change_7d"
            )
            top = day.filter(pl.col("max_customer_month").is_not_null()).sort("max_customer_month", descending=True).head(1)
            largest = (
                f"{top['service_name'][0]}: {top['top_customers'][0].split(';')[0]}"
                if top.height and top["top_customers"][0] else "none"
            )  # fmt: skip
            on_day = [m for m in messages if day.height and m["day"] == day["day"][0].isoformat()]
            return {
                "scope": cfg.scope_description(),
                "services": day.height,
                "services_over_target": over.height,
                "over_target": dg.MetadataValue.md(
                    markdown_table(over, {"cost_per_customer_month": usd, "target_per_customer_month": usd,
                                          "target_ratio": _ratio, "change_7d": lambda x: f"{x:+.0%}"})  # fmt: skip
                    if over.height else "No service is over its target."
                ),
                "largest_per_customer_cost": largest,
                # Read by the delivery sensor: one message per owning team with a crossing or a large move.
                UNIT_COST_METADATA_KEY: documents_metadata(on_day),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            # Every alert day there is (an incident can be older than any fixed window), reduced by the
            # warehouse to the alerts that matter for the run's days, with their incidents' state.
            "cost_alerts": dg.AssetIn(partition_mapping=dg.AllPartitionMapping(), input_manager_key=BY_DAY),
            "unit_cost": dg.AssetIn(
                metadata={"columns": ["day", "customer_id", "cost_to_mrr", "cost_growth_7d", "status", "is_paying", "total_cost"]}
            ),
            # Read for the customers whose incidents resolve, once they are known: what changed.
            "allocated_cost": dg.AssetIn(
                partition_mapping=trailing_days(DRIVER_DAYS), input_manager_key=BY_KEY,
                metadata={ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP},
            ),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def alert_incidents(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        cost_alerts: ByDay,
        unit_cost: pl.DataFrame,
        allocated_cost: RollupByKey,
    ) -> pl.DataFrame:
        """Incidents open or resolved on each day: alerts grouped until N quiet days resolve them."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        since = min(days) - dt.timedelta(days=cfg.alerts.resolve_after_days)
        history = cost_alerts.query("incident_alerts", since=since.isoformat(), through=max(days).isoformat())
        alerts = history.select(list(COST_ALERTS_SCHEMA))
        frame = compute_incidents(
            history, unit_cost, days, cfg.alerts.resolve_after_days,
            lambda customers: allocated_cost.rows("customer_id", customers), cfg.owners,
        )  # fmt: skip

        def describe(day: pl.DataFrame) -> dict:
            on = day["day"][0] if day.height else None
            docs = documents(day, alerts.filter(pl.col("day") == on)) if on else {"alerts": [], "resolved": []}
            shown = day.sort("status", "days_open", descending=[False, True]).select(
                "incident_id", "status", "severity", "days_open", "value_at_open", "value_now", "owners"
            )
            return {
                "open": day.filter(pl.col("status") == "open").height,
                "resolved": day.filter(pl.col("status") == "resolved").height,
                "incidents": dg.MetadataValue.md(markdown_table(shown.head(20))),
                # Read by the delivery sensor: the day's alerts with their incidents, and the resolved incidents.
                ALERTS_METADATA_KEY: documents_metadata(docs["alerts"] + docs["resolved"]),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    return [service_unit_cost, alert_incidents]
