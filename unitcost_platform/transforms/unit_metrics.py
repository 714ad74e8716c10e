"""Cost per unit in the units the business counts in (`unit_metrics`): API calls, transactions, GB stored.

`customer_unit_costs` has one row per day, customer (of the day's `unit_cost`) and configured unit
metric: the customer's units of the metric that day (its tenants' usage), its total cost, the cost
per `per` units (null at 0 units) and the change of that cost per unit against the same weekday a
week earlier (null when either day has none). A metric absent from the day's usage gives null units
rather than an error (telemetry for it may arrive later); a metric never seen in the usage read is
reported as a config warning by `unseen_metric_warnings`. The default unit metric, cost per 1k
requests, is the same figure as `unit_cost.cost_per_1k_requests`.

The asset's rows are computed by the warehouse (`customer_unit_costs_sql`, written by the IO manager
as `SelectedRows`): unit_cost's rows of the days and of a week before, the unit metrics' usage
summed per customer there, never read into Python. `customer_unit_costs` is its Polars twin.
"""

import datetime as dt
from collections.abc import Callable

import polars as pl

from unitcost_platform.config import UnitMetric
from unitcost_platform.transforms.customers import usage_per_customer
from unitcost_platform.transforms.unit_cost import TREND_DAYS
from unitcost_platform.warehouse_sql import Dialect, metrics_filter

USAGE_ROLLUP = {"by": ["usage_date", "tenant_id", "metric"], "sum": ["value"]}
# The metrics tenant_usage holds over the days read: what the asset reads of it, for its warnings.
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


def unseen_metric_warnings(unit_metrics: list[UnitMetric], usage: pl.DataFrame, where: str) -> list[str]:
    """A warning per configured unit metric whose metric appears nowhere in `usage` (read over
    `where`: its rows, or a row per metric, METRICS_ROLLUP); it names the metrics there are."""
    seen = set(usage["metric"].unique().to_list())
    return [
        f"unit_metrics {m.name}: metric {m.metric!r} appears in no usage of {where}; its units and cost per unit "
        f"are null. Check the name against the metrics in tenant_usage ({', '.join(sorted(seen)) or 'none'}) "
        "or remove it from unit_metrics in unitcost.yaml."
        for m in unit_metrics
        if m.metric not in seen
    ]


def customer_unit_costs_sql(days: list[dt.date], unit_metrics: list[UnitMetric], table: Callable[[str], str], dialect: Dialect) -> str:
    """`customer_unit_costs` in the warehouse: the rows of `days` (CUSTOMER_UNIT_COSTS_SCHEMA's columns)
    from the tables unit_cost, tenant_usage and customer_dimension of `days` and the days a week before
    them (`table(name)` quotes a table's name)."""
    date = lambda d: dialect.date(d.isoformat())  # noqa: E731
    read = ", ".join(date(d) for d in days_read(days))
    pairs = " union all ".join(
        f"select {date(d)} as day, {date(d - dt.timedelta(days=TREND_DAYS))} as before_day" for d in sorted(set(days))
    ) or "select cast(null as date) as day, cast(null as date) as before_day"
    configured = " union all ".join(
        f"select {dialect.text(m.name)} as unit_metric, {dialect.text(m.metric)} as metric, cast({float(m.per)!r} as double) as per"
        for m in unit_metrics
    ) or "select cast(null as varchar) as unit_metric, cast(null as varchar) as metric, cast(null as double) as per where 1 = 0"
    return f"""
with configured as ({configured}),
unit as (select day, customer_id, customer_name, tier, total_cost from {table('unit_cost')} where day in ({read})),
usage as (
    select usage_date as day, tenant_id, metric, value from {table('tenant_usage')}
    where usage_date in ({read}) and {metrics_filter([m.metric for m in unit_metrics], dialect)}
),
present as (select distinct day, metric from usage),
owners as (
    select distinct snapshot_date as day, tenant_id, customer_id from {table('customer_dimension')}
    where snapshot_date in ({read})
),
per_customer as (
    select u.day, o.customer_id, u.metric, sum(u.value) as units
    from usage as u join owners as o on o.day = u.day and o.tenant_id = u.tenant_id
    group by u.day, o.customer_id, u.metric
),
costed as (
    select n.day, n.customer_id, n.customer_name, n.tier, c.unit_metric, c.metric, c.per,
           case when p.metric is not null then coalesce(pc.units, 0) end as units, n.total_cost
    from unit as n cross join configured as c
    left join present as p on p.day = n.day and p.metric = c.metric
    left join per_customer as pc on pc.day = n.day and pc.customer_id = n.customer_id and pc.metric = c.metric
),
unit_costs as (select *, case when units > 0 then total_cost / units * per end as cost_per_unit from costed),
pairs as ({pairs})
select r.day, r.customer_id, r.customer_name, r.tier, r.unit_metric, r.metric, r.per, r.units, r.total_cost, r.cost_per_unit,
       case when b.cost_per_unit is not null and b.cost_per_unit <> 0 then r.cost_per_unit / b.cost_per_unit - 1 end
           as cost_per_unit_7d_change
from unit_costs as r join pairs as w on w.day = r.day
left join unit_costs as b on b.day = w.before_day and b.customer_id = r.customer_id and b.unit_metric = r.unit_metric
"""


# What the asset's metadata reads of the rows the warehouse wrote: per day and unit metric.
UNIT_COSTS_SUMMARY_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(), "unit_metric": pl.String(), "row_count": pl.Int64(),
    "median": pl.Float64(), "p90": pl.Float64(), "customers_with_units": pl.Int64(),
}  # fmt: skip


def unit_costs_summary_sql(rows: str, dialect: Dialect) -> str:
    """UNIT_COSTS_SUMMARY_SCHEMA over `rows` (customer_unit_costs' rows of the days written): the
    median and 90th percentile (linear) of the cost per unit, and the customers with units."""
    return (
        f"select day, unit_metric, count(*) as row_count, {dialect.quantile('cost_per_unit', 0.5)} as median, "
        f"{dialect.quantile('cost_per_unit', 0.9)} as p90, count(cost_per_unit) as customers_with_units "
        f"from ({rows}) as unitcost_rows group by day, unit_metric"
    )
