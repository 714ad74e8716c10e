"""Cost per unit in the units the business counts in (`unit_metrics`): API calls, transactions, GB stored.

`customer_unit_costs` has one row per day, customer (of the day's `unit_cost`) and configured unit
metric: the customer's units of the metric that day (its tenants' usage), its total cost, the cost
per `per` units (null at 0 units) and the change of that cost per unit against the same weekday a
week earlier (null when either day has none). A metric absent from the day's usage gives null units
rather than an error (telemetry for it may arrive later); a metric never seen in the usage read is
reported as a config warning by `unseen_metric_warnings`. The default unit metric, cost per 1k
requests, is the same figure as `unit_cost.cost_per_1k_requests`.
"""

import datetime as dt
from collections.abc import Callable, Iterable

import polars as pl

from unitcost_platform.config import UnitMetric
from unitcost_platform.transforms.customers import usage_per_customer
from unitcost_platform.transforms.unit_cost import TREND_DAYS

USAGE_ROLLUP = {"by": ["usage_date", "tenant_id", "metric"], "sum": ["value"]}
# The metrics tenant_usage holds (named by a warning about a metric that is not among them).
METRICS_ROLLUP = {"by": ["metric"], "count": "usage_rows"}
UNIT_COST_COLUMNS = ["day", "customer_id", "customer_name", "tier", "total_cost"]
HISTORY_DAYS = TREND_DAYS + 1

CUSTOMER_UNIT_COSTS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "unit_metric": pl.String(),
    "metric": pl.String(),
    "per": pl.Float64(),
    "units": pl.Float64(),
    "total_cost": pl.Float64(),
    "cost_per_unit": pl.Float64(),
    "cost_per_unit_7d_change": pl.Float64(),
}


def _unit_rows(
    unit_cost: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame, unit_metrics: list[UnitMetric]
) -> pl.DataFrame:
    """Every (day, customer, unit metric) of `unit_cost`'s days with units and cost per unit."""
    per_customer = usage_per_customer(usage, customers, "_units")
    # A metric is "present" on a day when any tenant reported it, owned by a customer or not.
    present = usage.select(pl.col("usage_date").cast(pl.Date).alias("day"), "metric").unique().with_columns(
        pl.lit(True).alias("_present")
    )
    configured = pl.DataFrame(
        [{"unit_metric": m.name, "metric": m.metric, "per": m.per} for m in unit_metrics],
        schema={"unit_metric": pl.String, "metric": pl.String, "per": pl.Float64},
    )
    return (
        unit_cost.select(UNIT_COST_COLUMNS)
        .join(configured, how="cross")
        .join(present, on=["day", "metric"], how="left")
        .join(per_customer, on=["day", "customer_id", "metric"], how="left")
        .with_columns(pl.when(pl.col("_present")).then(pl.col("_units").fill_null(0.0)).alias("units"))
        .with_columns(
            pl.when(pl.col("units") > 0).then(pl.col("total_cost") / pl.col("units") * pl.col("per")).alias("cost_per_unit")
        )
    )


def days_read(days: list[dt.date]) -> list[dt.date]:
    """The days `customer_unit_costs` reads: `days` and the days a week before them."""
    return sorted(set(days) | {d - dt.timedelta(days=TREND_DAYS) for d in days})


def customer_unit_costs(
    unit_cost: pl.DataFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    unit_metrics: list[UnitMetric],
    days: list[dt.date],
) -> pl.DataFrame:
    """Rows of `days` from unit_cost, usage at USAGE_ROLLUP and the customer dimension's (snapshot_date,
    tenant_id, customer_id), each covering `days` and the days a week before them."""
    rows = _unit_rows(unit_cost.filter(pl.col("day").is_in(days_read(days))), usage, customers, unit_metrics)
    week_ago = rows.select(
        (pl.col("day") + pl.duration(days=TREND_DAYS)).cast(pl.Date).alias("day"),
        "customer_id", "unit_metric", pl.col("cost_per_unit").alias("_before"),
    )  # fmt: skip
    return (
        rows.filter(pl.col("day").is_in(days))
        .join(week_ago, on=["day", "customer_id", "unit_metric"], how="left")
        .with_columns(
            pl.when(pl.col("_before").is_not_null() & (pl.col("_before") != 0))
            .then(pl.col("cost_per_unit") / pl.col("_before") - 1)
            .alias("cost_per_unit_7d_change")
        )
        .select(pl.col(c).cast(t) for c, t in CUSTOMER_UNIT_COSTS_SCHEMA.items())
        .sort("day", "customer_id", "unit_metric")
    )


def unseen_metric_warnings(
    unit_metrics: list[UnitMetric], usage: pl.DataFrame, where: str, all_metrics: Callable[[], Iterable[str]] | None = None
) -> list[str]:
    """A warning per configured unit metric whose metric appears nowhere in `usage` (read over `where`);
    it names the metrics there are: `all_metrics()` when given (`usage` then holds the unit metrics'
    metrics only), else `usage`'s."""
    seen = set(usage["metric"].unique().to_list())
    if all_metrics is not None and any(m.metric not in seen for m in unit_metrics):
        seen = set(all_metrics())
    return [
        f"unit_metrics {m.name}: metric {m.metric!r} appears in no usage of {where}; its units and cost per unit "
        f"are null. Check the name against the metrics in tenant_usage ({', '.join(sorted(seen)) or 'none'}) "
        "or remove it from unit_metrics in unitcost.yaml."
        for m in unit_metrics
        if m.metric not in seen
    ]
