"""Unit cost per customer, the alerts it raises, and growth efficiency."""

import datetime as dt

import dagster as dg
import polars as pl

from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import (
    documents_metadata,
    markdown_table,
    money,
    pct,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import and_days_before, days_of, trailing_days
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import BY_DAY, BY_KEY, MAX_KEYS, ROLLUP_KEY, ByDay, RollupByKey
from unitcost_platform.transforms.alerts import (
    DriverCandidates,
    ReadOnce,
    alert_drivers_spec,
    alerts_as_documents,
    append_model_alerts,
    driver_windows,
)
from unitcost_platform.transforms.alerts import cost_alerts as compute_cost_alerts
from unitcost_platform.transforms.customer_cost import (
    CUSTOMER_DAY_ROLLUP,
    CUSTOMER_SERVICE_ROLLUP,
    customer_daily_cost,
    window_spec,
)
from unitcost_platform.transforms.growth import LOOKBACK_DAYS, WINDOW_DAYS
from unitcost_platform.transforms.growth import growth_efficiency as compute_growth
from unitcost_platform.transforms.unit_cost import (
    RUN_RATE_DAYS,
    TREND_DAYS,
    DayWindows,
    day_windows,
    joined_in_month,
)
from unitcost_platform.transforms.unit_cost import unit_cost as compute_unit_cost

GROUP = "unit_cost"
ALERTS_METADATA_KEY = "alerts_payload"
ALERT_HISTORY_DAYS = 2 * TREND_DAYS
GROWTH_HISTORY_DAYS = LOOKBACK_DAYS + WINDOW_DAYS


def day_totals(tag_coverage: pl.DataFrame) -> pl.DataFrame:
    """(day, total_cost) of each materialized day: tag_coverage has an overall row for every day."""
    return tag_coverage.filter(pl.col("scope_type") == "overall").select("day", "total_cost")


def materialized_days_in(days: int) -> dg.AssetIn:
    """tag_coverage's day totals over the `days` days ending at the partition: which days exist."""
    return dg.AssetIn(partition_mapping=trailing_days(days), metadata={"columns": ["day", "scope_type", "total_cost"]})


def materialized_days(tag_coverage: pl.DataFrame) -> set:
    """The days of a window that are materialized (read through `materialized_days_in`)."""
    return set(day_totals(tag_coverage)["day"].to_list())


def build_reporting_assets(
    partitions_def: dg.PartitionsDefinition, kinds: set[str], backfill: dg.BackfillPolicy | None = None
) -> list[dg.AssetsDefinition]:

    @dg.asset(
        ins={
            # 30 days of allocation rows summed by the warehouse to one row per customer and day
            # (direct and shared): a range run reads that; a daily run reads its windows' sums, a
            # row per customer each (DayWindows), and the days of the customers who joined inside it.
            "allocated_cost": dg.AssetIn(
                partition_mapping=trailing_days(RUN_RATE_DAYS),
                input_manager_key=BY_KEY,
                metadata={ROLLUP_KEY: CUSTOMER_DAY_ROLLUP},
            ),
            "tag_coverage": materialized_days_in(RUN_RATE_DAYS),
            # The run's days and the days a week before them (cost_growth_7d), not the days between.
            "customer_dimension": dg.AssetIn(partition_mapping=trailing_days(TREND_DAYS + 1), input_manager_key=BY_DAY),
            "tenant_usage": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "requests_usage"}}),  # cost per 1k requests
            # Which days are still provisional: one row per day and finality, counted by the warehouse.
            "raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"by": ["x_ChargeDate", "x_IsFinal"], "count": "line_items"}}),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def unit_cost(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        allocated_cost: RollupByKey,
        tag_coverage: pl.DataFrame,
        customer_dimension: ByDay,
        tenant_usage: pl.DataFrame,
        raw_billing: pl.DataFrame,
    ) -> pl.DataFrame:
        """Cost per customer per day with run rate, cost-to-MRR, cost per 1k requests and 7-day trends."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        thresholds = cfg.alerts
        present = materialized_days(tag_coverage)
        week_ago = [d - dt.timedelta(days=TREND_DAYS) for d in days]
        customers = customer_dimension.days(and_days_before(days, TREND_DAYS))
        provisional = set(raw_billing.filter(~pl.col("x_IsFinal"))["x_ChargeDate"].unique().to_list())
        joined = joined_in_month(customers, days[0]) if len(days) == 1 else None
        of_day = customers.filter(pl.col("snapshot_date") == days[0])["customer_id"].n_unique()
        if joined is not None and len(joined) <= min(MAX_KEYS, of_day // 2):
            # A daily run where most customers predate the month: a row per customer and window, and
            # the days of the few who joined inside it. Otherwise (a range run, or a month most
            # customers joined in) the days' rows are the smaller read.
            costs = DayWindows(
                **{name: allocated_cost.windows(window_spec("day", spans)) for name, spans in day_windows(days[0], present).items()},
                joined=allocated_cost.rows("customer_id", joined),
            )  # fmt: skip
        else:
            costs = customer_daily_cost(allocated_cost.all())
        frame = compute_unit_cost(
            costs,
            present,
            customers.filter(pl.col("snapshot_date").is_in(days)),
            customers.filter(pl.col("snapshot_date").is_in(week_ago)),
            tenant_usage,
            provisional,
            days,
        )
        if cfg.scope is not None:
            # A scoped rollout: every customer was costed (shared pools are split over everyone),
            # only the customers in scope are reported, so widening the scope changes no figure.
            in_scope = customers.filter(pl.col("snapshot_date").is_in(days) & cfg.scope.expr()).select(
                pl.col("snapshot_date").alias("day"), "customer_id"
            )
            frame = frame.join(in_scope.unique(), on=["day", "customer_id"], how="semi")

        def describe(day: pl.DataFrame) -> dict:
            top = (
                day.filter(pl.col("cost_to_mrr").is_not_null())
                .sort("cost_to_mrr", descending=True)
                .head(10)
                .select("customer_id", "customer_name", "tier", "mrr", "monthly_run_rate", "cost_to_mrr", "total_cost")
            )
            return {
                "scope": cfg.scope_description(),
                "customers": day.height,
                "total_cost": money(day["total_cost"].sum()),
                "median_cost_per_customer": money(day["total_cost"].median()),
                "customers_over_p1_threshold": day.filter(pl.col("cost_to_mrr") > thresholds.p1_cost_to_mrr).height,
                "customers_over_p2_threshold": day.filter(pl.col("cost_to_mrr") > thresholds.p2_cost_to_mrr).height,
                "is_provisional": bool(day["is_provisional"].any()) if day.height else False,
                "top_cost_to_mrr": dg.MetadataValue.md(
                    markdown_table(top, {"mrr": usd, "monthly_run_rate": usd, "total_cost": usd, "cost_to_mrr": pct})
                ),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            "unit_cost": dg.AssetIn(),
            # Read for the alerted customers only, once they are known: their service drivers.
            "allocated_cost": dg.AssetIn(
                partition_mapping=trailing_days(ALERT_HISTORY_DAYS),
                input_manager_key=BY_KEY,
                metadata={ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP},
            ),
            # ANOMALY and FORECAST rows (defs/assets/anomalies.py), the same day: the anomalies and
            # the forecast alerts only, chosen by the warehouse (transforms/daily_series.py).
            "cost_anomalies": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "anomalies_found"}}),
            "margin_forecast": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "forecast_alerts"}}),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def cost_alerts(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        unit_cost: pl.DataFrame,
        allocated_cost: RollupByKey,
        cost_anomalies: pl.DataFrame,
        margin_forecast: pl.DataFrame,
    ) -> pl.DataFrame:
        """P1/P2 cost-to-MRR, TREND, SEGMENT, ANOMALY and FORECAST alerts of the day, with the services (and owners) that drove them."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        # A daily run reads the drivers' candidates the warehouse chose from each customer's two 7-day
        # sums per service (and the segment's sums), when some alert needs them; a range run reads
        # the alerted customers' rows of every day.
        windows = driver_windows(days)
        service_costs = (
            ReadOnce(lambda customers: allocated_cost.rows("customer_id", customers))
            if windows is None
            else DriverCandidates(
                lambda: allocated_cost.reduced(windows, alert_drivers_spec(days[0], cfg.alerts.max_drivers)), days[0]
            )
        )  # fmt: skip
        frame = compute_cost_alerts(unit_cost, service_costs, days, cfg.alerts, cfg.owners)
        frame = append_model_alerts(
            frame, unit_cost, cost_anomalies, margin_forecast, service_costs, days, cfg.alerts, cfg.owners,
            cfg.anomalies.min_impact, cfg.forecast.horizon_days, cfg.anomalies.unit_metric,
        )  # fmt: skip

        def describe(day: pl.DataFrame) -> dict:
            counts = day.group_by("alert_type").len().sort("alert_type")
            return {
                "scope": cfg.scope_description(),
                "alerts_by_type": {t: n for t, n in counts.iter_rows()},
                "alerts": dg.MetadataValue.md(
                    markdown_table(day.select("alert_type", "customer_id", "value", "owners", "message").head(20))
                ),
                # Read by the delivery sensor: the alerts travel with the materialization event.
                ALERTS_METADATA_KEY: documents_metadata(alerts_as_documents(day)),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            "tag_coverage": materialized_days_in(GROWTH_HISTORY_DAYS),
            # The run's days and the days 90 before them (two days of 91 in a daily run), each
            # counted by the warehouse: a row per day, not per tenant (ACTIVE_CUSTOMERS_QUERY).
            "customer_dimension": dg.AssetIn(
                partition_mapping=trailing_days(LOOKBACK_DAYS + 1), input_manager_key=BY_DAY,
                metadata={ROLLUP_KEY: {"query": "active_customers"}},
            ),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def growth_efficiency(
        context: dg.AssetExecutionContext, tag_coverage: pl.DataFrame, customer_dimension: ByDay
    ) -> pl.DataFrame:
        """Rolling 90-day growth of infrastructure cost against growth of active customers."""
        days = days_of(context)
        then = [d - dt.timedelta(days=LOOKBACK_DAYS) for d in days]
        active = customer_dimension.days([*days, *then])
        frame = compute_growth(
            day_totals(tag_coverage),
            active.filter(pl.col("snapshot_date").is_in(days)),
            active.filter(pl.col("snapshot_date").is_in(then)),
            days,
        )

        def describe(day: pl.DataFrame) -> dict:
            row = day.row(0, named=True) if day.height else {}
            return {k: row.get(k) for k in ("cost_growth_90d", "customer_growth_90d", "ratio")}

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    return [unit_cost, cost_alerts, growth_efficiency]
