"""What the dashboard plots over its trailing window, reduced by the warehouse.

The dashboard's history panels are statistics over customers per day (the median and 90th
percentile of cost per customer, of cost per unit) or a few rows of a large table (the anomalies
found, the incidents on show). Read as rows, its 90-day window is 90 rows per customer of three
tables: 27 million rows a day at 100k customers. cost_alerts reads the day's anomalies and forecast
alerts the same way, not a row per customer of each table. Each is a `WarehouseQuery` here, with its Polars
twin (the same figures from the rows, for the tests and for a caller holding the rows); the
warehouse returns a row per day (and unit metric), or the rows the panel shows.

Percentiles are linear interpolations (DuckDB's `quantile_cont`, Snowflake's `percentile_cont`,
Polars' `interpolation="linear"`), so all three engines give the same figure.
"""

import polars as pl

from unitcost_platform.transforms.anomalies import COST_ANOMALIES_SCHEMA
from unitcost_platform.transforms.forecast import MARGIN_FORECAST_SCHEMA
from unitcost_platform.transforms.incidents import INCIDENTS_SCHEMA
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery

UNIT_COST_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customers": pl.Int64(),
    "mean": pl.Float64(),
    "median": pl.Float64(),
    "p90": pl.Float64(),
    "median_paying": pl.Float64(),
    "median_non_paying": pl.Float64(),
}

COST_PER_UNIT_DAILY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "unit_metric": pl.String(),
    "median": pl.Float64(),
    "p90": pl.Float64(),
}

# What the dashboard's anomaly panel and cost_alerts' ANOMALY rows show of an anomaly.
ANOMALY_COLUMNS = [
    "day", "customer_id", "customer_name", "is_anomaly", "impact", "price_effect", "volume_effect", "cross_effect",
    "actual_cost", "expected_cost", "actual_cost_per_1k_units", "expected_cost_per_1k_units", "score", "drivers",
    "owners",
]  # fmt: skip
# What cost_alerts' FORECAST rows show of a forecast alert.
FORECAST_ALERT_COLUMNS = [
    "day", "customer_id", "is_forecast_alert", "days_to_p2", "daily_growth", "cost_to_mrr_14d", "cost_to_mrr_14d_low",
    "cost_to_mrr_14d_high",
]  # fmt: skip
FORECAST_COLUMNS = [
    "day", "customer_id", "customer_name", "cost_to_mrr", "cost_to_mrr_30d", "cost_to_mrr_30d_low",
    "cost_to_mrr_30d_high", "days_to_p2", "days_to_p1",
]  # fmt: skip
CROSSING_DAYS = 30  # the dashboard shows the customers projected to cross P2 or P1 within this many days
INCIDENT_COLUMNS = ["day", "incident_id", "family", "customer_id", "customer_name", "status", "days_open", "severity", "owners"]


def unit_cost_daily(unit_cost: pl.DataFrame) -> pl.DataFrame:
    """Per day: customers, and the mean, median and 90th percentile of cost per customer, and the
    median of paying and of non-paying customers (null on a day without any)."""
    cost = pl.col("total_cost")
    return (
        unit_cost.group_by("day")
        .agg(
            pl.len().alias("customers"),
            cost.mean().alias("mean"),
            cost.median().alias("median"),
            cost.quantile(0.9, interpolation="linear").alias("p90"),
            cost.filter(pl.col("is_paying")).median().alias("median_paying"),
            cost.filter(pl.col("is_paying").not_()).median().alias("median_non_paying"),
        )
        .cast(UNIT_COST_DAILY_SCHEMA)
        .sort("day")
    )


def _unit_cost_daily_statement(rows: str, _cfg, dialect: Dialect) -> str:
    paying = "case when is_paying then total_cost end"
    non_paying = "case when not is_paying then total_cost end"
    return (
        f"select day, count(*) as customers, avg(total_cost) as mean, {dialect.quantile('total_cost', 0.5)} as median, "
        f"{dialect.quantile('total_cost', 0.9)} as p90, {dialect.quantile(paying, 0.5)} as median_paying, "
        f"{dialect.quantile(non_paying, 0.5)} as median_non_paying from ({rows}) as unitcost_rows group by day"
    )


UNIT_COST_DAILY_QUERY = WarehouseQuery(
    ["day", "is_paying", "total_cost"], UNIT_COST_DAILY_SCHEMA, _unit_cost_daily_statement
)


def cost_per_unit_daily(unit_costs: pl.DataFrame) -> pl.DataFrame:
    """Per day and unit metric: the median and 90th percentile of cost per unit over the customers that have one."""
    value = pl.col("cost_per_unit")
    return (
        unit_costs.filter(value.is_not_null())
        .group_by("day", "unit_metric")
        .agg(value.median().alias("median"), value.quantile(0.9, interpolation="linear").alias("p90"))
        .cast(COST_PER_UNIT_DAILY_SCHEMA)
        .sort("unit_metric", "day")
    )


def _cost_per_unit_daily_statement(rows: str, _cfg, dialect: Dialect) -> str:
    return (
        f"select day, unit_metric, {dialect.quantile('cost_per_unit', 0.5)} as median, "
        f"{dialect.quantile('cost_per_unit', 0.9)} as p90 from ({rows}) as unitcost_rows "
        "where cost_per_unit is not null group by day, unit_metric"
    )


COST_PER_UNIT_DAILY_QUERY = WarehouseQuery(
    ["day", "unit_metric", "cost_per_unit"], COST_PER_UNIT_DAILY_SCHEMA, _cost_per_unit_daily_statement
)


def anomalies_found(anomalies: pl.DataFrame) -> pl.DataFrame:
    """The anomalies of the window (the other rows score every customer and day, and are not plotted)."""
    return anomalies.filter(pl.col("is_anomaly")).select(ANOMALY_COLUMNS)


def flagged_rows(schema: dict[str, pl.DataType], columns: list[str], flag: str) -> WarehouseQuery:
    """The `columns` of the rows whose boolean column `flag` is true (a few rows of a large table)."""
    return WarehouseQuery(
        columns, {c: schema[c] for c in columns}, lambda rows, _cfg, _dialect: f"select * from ({rows}) as unitcost_rows where {flag}"
    )


ANOMALIES_FOUND_QUERY = flagged_rows(COST_ANOMALIES_SCHEMA, ANOMALY_COLUMNS, "is_anomaly")


def incidents_on_show(incidents: pl.DataFrame) -> pl.DataFrame:
    """The incidents of the window's last day and every resolved one (the panel shows those open on
    its day and those resolved in the 30 days before)."""
    if incidents.is_empty():
        return incidents.select(INCIDENT_COLUMNS)
    last = incidents["day"].max()
    return incidents.filter((pl.col("day") == last) | (pl.col("status") == "resolved")).select(INCIDENT_COLUMNS)


INCIDENTS_ON_SHOW_QUERY = WarehouseQuery(
    INCIDENT_COLUMNS,
    {c: INCIDENTS_SCHEMA[c] for c in INCIDENT_COLUMNS},
    lambda rows, _cfg, _dialect: (
        f"with unitcost_rows as ({rows}) select * from unitcost_rows "
        "where status = 'resolved' or day = (select max(day) from unitcost_rows)"
    ),
)


def forecast_crossings(forecast: pl.DataFrame) -> pl.DataFrame:
    """The customers projected to cross P2 or P1 within CROSSING_DAYS (not every customer's forecast)."""
    soon = pl.col("days_to_p2").is_between(1, CROSSING_DAYS) | pl.col("days_to_p1").is_between(1, CROSSING_DAYS)
    return forecast.filter(soon).select(FORECAST_COLUMNS)


FORECAST_CROSSINGS_QUERY = WarehouseQuery(
    FORECAST_COLUMNS,
    {c: MARGIN_FORECAST_SCHEMA[c] for c in FORECAST_COLUMNS},
    lambda rows, _cfg, _dialect: (
        f"select * from ({rows}) as unitcost_rows "
        f"where days_to_p2 between 1 and {CROSSING_DAYS} or days_to_p1 between 1 and {CROSSING_DAYS}"
    ),
)


def forecast_alerts(forecast: pl.DataFrame) -> pl.DataFrame:
    """The forecasts that raise a FORECAST alert (cost_alerts reads those, not every customer's)."""
    return forecast.filter(pl.col("is_forecast_alert")).select(FORECAST_ALERT_COLUMNS)


FORECAST_ALERTS_QUERY = flagged_rows(MARGIN_FORECAST_SCHEMA, FORECAST_ALERT_COLUMNS, "is_forecast_alert")
