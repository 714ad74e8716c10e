"""Unit-cost anomalies and margin forecasts of each day (transforms/anomalies.py, transforms/forecast.py).

Both read unit_cost's trailing history. Anomalies also need the unit metric's usage per customer
(unit_cost holds requests; another metric is summed by the warehouse) and the allocation per
service. Their alerts reach people as ANOMALY and FORECAST rows of cost_alerts, delivered by the
same sensor and ledger as every other alert.
"""

import dagster as dg
import polars as pl

from unitcost_platform.config import AnomaliesConfig, ForecastConfig
from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import (
    markdown_table,
    money,
    pct,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import days_of, trailing_days
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import BY_DAY, BY_KEY, ROLLUP_KEY, ByDay, RollupByKey
from unitcost_platform.transforms.anomalies import (
    CUSTOMER_UNITS_THEN,
    DRIVER_DAYS,
    HISTORY_DAYS,
    usage_rollup,
)
from unitcost_platform.transforms.anomalies import cost_anomalies as compute_anomalies
from unitcost_platform.transforms.customer_cost import CUSTOMER_SERVICE_ROLLUP
from unitcost_platform.transforms.forecast import (
    WINDOW_INPUT_COLUMNS,
    WINDOWS_MAX_DAYS,
    forecast_from_windows,
    history_days,
)
from unitcost_platform.transforms.forecast import margin_forecast as compute_forecast
from unitcost_platform.transforms.unit_cost import REQUESTS_METRIC

GROUP = "unit_cost"
FORECAST_LIST_DAYS = 30
# The history of the customers beyond the thresholds on a run's days: their unit_cost rows (one per
# customer and day, so the sums are the rows), read by key.
HISTORY_ROLLUP = {"by": ["day", "customer_id"], "sum": ["total_cost", REQUESTS_METRIC]}
# The same for the customers forecast to cross on a run's day: what the one-alert lookback reads.
FORECAST_HISTORY_ROLLUP = {"by": ["day", "customer_id"], "sum": ["total_cost", "mrr", "cost_to_mrr"]}


def build_anomaly_assets(
    partitions_def: dg.PartitionsDefinition,
    kinds: set[str],
    backfill: dg.BackfillPolicy | None,
    anomalies: AnomaliesConfig,
    forecast: ForecastConfig,
) -> list[dg.AssetsDefinition]:
    """The two assets; the unit metric and the forecast horizon size their inputs, so they are read
    from the config when the definitions load (as the dashboard's days are)."""

    # The unit metric per customer and day. unit_cost holds the requests of each customer's tenants
    # of the day (0 without usage, which the model counts as no units, as it counts a missing day),
    # so with the default unit metric they come with the cost, in the same rows. Another metric
    # is tenant_usage's sums per tenant joined to customer_dimension's tenants of the same days by
    # the warehouse (one row per customer and day).
    units_in_unit_cost = anomalies.unit_metric == REQUESTS_METRIC
    window = trailing_days(HISTORY_DAYS)
    units_input = {} if units_in_unit_cost else {
        "tenant_usage": dg.AssetIn(
            partition_mapping=window,
            metadata={ROLLUP_KEY: {**usage_rollup(anomalies.unit_metric), "then": CUSTOMER_UNITS_THEN}},
        ),
    }  # fmt: skip
    # Upstreams read through unit_cost, or by tenant_usage's query, not as inputs of their own.
    units_deps = ["customer_dimension"] + (["tenant_usage"] if units_in_unit_cost else [])

    @dg.asset(
        ins={
            # With requests as the unit metric, the warehouse scores every customer on the run's days
            # (ANOMALY_SCORES_QUERY over the window) and only the customers beyond the thresholds
            # leave it with their history; with another metric the window's rows are read.
            "unit_cost": dg.AssetIn(
                partition_mapping=window,
                input_manager_key=BY_DAY,
                metadata={"columns": ["day", "customer_id", "customer_name", "tier", "status", "total_cost",
                                      *([REQUESTS_METRIC] if units_in_unit_cost else [])]},
            ),
            **units_input,
            # Read for the anomalous customers only, once they are known: their service drivers.
            "allocated_cost": dg.AssetIn(
                partition_mapping=trailing_days(DRIVER_DAYS),
                input_manager_key=BY_KEY,
                metadata={ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP},
            ),
        },
        deps=[dg.AssetDep(name, partition_mapping=window) for name in units_deps],
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )  # fmt: skip
    def cost_anomalies(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        unit_cost: ByDay,
        allocated_cost: RollupByKey,
        **usage: pl.DataFrame,  # tenant_usage's units per customer, for another unit metric
    ) -> pl.DataFrame:
        """Each active customer's day against its own weekday-aware baseline: expected and actual
        cost, the price/volume decomposition, the robust score and the anomaly (first day of a shift)."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        scores = None
        if usage:
            rows = unit_cost.days(unit_cost.window)
            units = usage["tenant_usage"]
        else:
            scores = unit_cost.query("anomaly_scores", days=",".join(d.isoformat() for d in days))
            beyond = scores.filter(pl.col("beyond") != 0)["customer_id"]
            rows = unit_cost.rows(unit_cost.window, HISTORY_ROLLUP, "customer_id", beyond)
            units = rows.select("day", "customer_id", pl.col(REQUESTS_METRIC).alias("units"))
        frame = compute_anomalies(
            rows.select("day", "customer_id", "total_cost"),
            units,
            rows,
            lambda customers: allocated_cost.rows("customer_id", customers),
            days,
            cfg.anomalies,
            cfg.owners,
            cfg.alerts.max_drivers,
            scores=scores,
        )

        def describe(day: pl.DataFrame) -> dict:
            found = day.filter(pl.col("is_anomaly")).sort("impact", descending=True)
            return {
                "scope": cfg.scope_description(),
                "unit_metric": cfg.anomalies.unit_metric,
                "customers_scored": day.filter(pl.col("score").is_not_null()).height,
                "anomalies": found.height,
                "anomaly_impact": money(found["impact"].sum()),
                "top_anomalies": dg.MetadataValue.md(markdown_table(
                    found.select("customer_id", "customer_name", "direction", "impact", "price_effect",
                                 "volume_effect", "score", "owners").head(10),
                    {"impact": usd, "price_effect": usd, "volume_effect": usd, "score": lambda s: f"{s:.1f}"},
                )),
            }  # fmt: skip

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    @dg.asset(
        ins={
            # A run of up to WINDOWS_MAX_DAYS days (the daily schedule, a restated week): the
            # warehouse lays out each active customer's 60 days on the run's days
            # (FORECAST_WINDOWS_QUERY), and only the customers forecast to cross on one of them
            # leave it with their history (the one-alert lookback). A longer range reads its
            # window's rows: 60 days per customer and day would be 60 times the rows it needs.
            "unit_cost": dg.AssetIn(
                partition_mapping=trailing_days(history_days(forecast.horizon_days)),
                input_manager_key=BY_DAY,
                metadata={"columns": WINDOW_INPUT_COLUMNS},
            ),
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )  # fmt: skip
    def margin_forecast(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, unit_cost: ByDay
    ) -> pl.DataFrame:
        """Each customer's cost trend (Theil–Sen), cost-to-MRR projected at +7/+14/+30 days with an
        80% interval, the days until P2 and P1, and the FORECAST flag (first day of a crossing)."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        if len(days) <= WINDOWS_MAX_DAYS:
            frame = forecast_from_windows(
                unit_cost.query("forecast_windows", days=",".join(d.isoformat() for d in days)),
                lambda customers: unit_cost.rows(unit_cost.window, FORECAST_HISTORY_ROLLUP, "customer_id", customers),
                days, cfg.alerts, cfg.forecast,
            )  # fmt: skip
        else:  # a longer range: its window's rows, about one per customer and day of the range
            frame = compute_forecast(unit_cost.days(unit_cost.window), days, cfg.alerts, cfg.forecast)

        def describe(day: pl.DataFrame) -> dict:
            soon = day.filter(
                (pl.col("days_to_p2") <= FORECAST_LIST_DAYS) & (pl.col("days_to_p2") > 0)
                | (pl.col("days_to_p1") <= FORECAST_LIST_DAYS) & (pl.col("days_to_p1") > 0)
            ).sort("days_to_p2", "days_to_p1", nulls_last=True)
            return {
                "scope": cfg.scope_description(),
                "customers_with_trend": day.filter(pl.col("daily_growth").is_not_null()).height,
                "projected_to_cross_p2_in_30_days": day.filter(pl.col("days_to_p2").is_between(1, FORECAST_LIST_DAYS)).height,
                "projected_to_cross_p1_in_30_days": day.filter(pl.col("days_to_p1").is_between(1, FORECAST_LIST_DAYS)).height,
                "forecast_alerts": day.filter(pl.col("is_forecast_alert")).height,
                "projected_crossings": dg.MetadataValue.md(markdown_table(
                    soon.select("customer_id", "customer_name", "cost_to_mrr", "cost_to_mrr_14d", "days_to_p2",
                                "days_to_p1").head(10),
                    {"cost_to_mrr": pct, "cost_to_mrr_14d": pct},
                )),
            }  # fmt: skip

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    return [cost_anomalies, margin_forecast]
