"""Segment economics (the "Run" view): what each tier, segment and paying class costs against what it pays.

Over the customers active on the day and in scope (the day's `unit_cost` rows with status active),
for each dimension (`tier`, `segment`, `paying`) and each of its groups: customers, MRR and its
share of the dimension's MRR, the monthly run rate (sum of the customers' `unit_cost.monthly_run_rate`)
and its share, the group's share of every usage metric of the day, cost-to-MRR and infra margin, and
the median and 90th percentile of the customers' cost of the day.

Long format for usage: one row per day x dimension x group x usage metric. The group's economics
(customers, MRR, run rate, cost, margins) repeat on each of its metric rows, so filter to one
metric before summing them. A day without any usage has one row per group with a null metric.
A customer without a segment is in group `unspecified`.

The usage shares come from the warehouse summed per group (`SEGMENT_USAGE_QUERY`, the rollup of
tenant_usage joined to customer_dimension's tenants and unit_cost's population of the same days),
a few rows per group and metric rather than a row per tenant and metric; `segment_usage` is its
Polars twin over the tenants' rows. The groups' own figures (customers, sums, median and p90) come
from the warehouse too (`SEGMENT_GROUPS_QUERY` over unit_cost, a row per group rather than one per
customer); `segment_groups` is its Polars twin.
"""

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import polars as pl

from unitcost_platform.transforms.customers import usage_per_customer
from unitcost_platform.transforms.unit_cost import REQUESTS_METRIC
from unitcost_platform.warehouse_sql import Dialect, RollupQuery, WarehouseQuery

if TYPE_CHECKING:
    from unitcost_platform.config import UnitcostConfig

DIMENSIONS = ("tier", "segment", "paying")
UNSPECIFIED = "unspecified"
PAYING, NON_PAYING = "paying", "non_paying"
P90 = 0.9

USAGE_ROLLUP = {"by": ["usage_date", "tenant_id", "metric"], "sum": ["value"]}
UNIT_COST_COLUMNS = [
    "day", "customer_id", "tier", "segment", "is_paying", "status", "mrr", "total_cost", "monthly_run_rate",
]  # fmt: skip

SEGMENT_ECONOMICS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "dimension": pl.String(),
    "group_name": pl.String(),
    "customers": pl.Int64(),
    "mrr": pl.Float64(),
    "revenue_share": pl.Float64(),
    "monthly_run_rate": pl.Float64(),
    "cost_share": pl.Float64(),
    "total_cost": pl.Float64(),
    "cost_to_mrr": pl.Float64(),
    "infra_margin": pl.Float64(),
    "median_cost_per_day": pl.Float64(),
    "p90_cost_per_day": pl.Float64(),
    "metric": pl.String(),
    "usage": pl.Float64(),
    "usage_share": pl.Float64(),
}


SEGMENT_GROUPS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "dimension": pl.String(),
    "group_name": pl.String(),
    "customers": pl.Int64(),
    "mrr": pl.Float64(),
    "monthly_run_rate": pl.Float64(),
    "total_cost": pl.Float64(),
    "median_cost_per_day": pl.Float64(),
    "p90_cost_per_day": pl.Float64(),
}


def _share(value: str, keys: list[str]) -> pl.Expr:
    total = pl.col(value).sum().over(keys)
    return pl.when(total != 0).then(pl.col(value) / total)


def _grouped(population: pl.DataFrame) -> pl.DataFrame:
    """The population once per dimension, with its group label."""
    labels = {
        "tier": pl.col("tier").fill_null(UNSPECIFIED),
        "segment": pl.col("segment").fill_null(UNSPECIFIED),
        "paying": pl.when(pl.col("is_paying").fill_null(False)).then(pl.lit(PAYING)).otherwise(pl.lit(NON_PAYING)),
    }
    return pl.concat(
        [population.with_columns(pl.lit(d).alias("dimension"), labels[d].alias("group_name")) for d in DIMENSIONS]
    )


def _group_labels_sql(prefix: str, dialect: Dialect) -> dict[str, str]:
    """The SQL twin of `_grouped`'s labels: each dimension's group of a unit_cost row (`prefix`: its alias and a dot)."""
    text = dialect.text
    return {
        "tier": f"coalesce({prefix}tier, {text(UNSPECIFIED)})",
        "segment": f"coalesce({prefix}segment, {text(UNSPECIFIED)})",
        "paying": f"case when coalesce({prefix}is_paying, false) then {text(PAYING)} else {text(NON_PAYING)} end",
    }


KEYS = ["day", "dimension", "group_name"]
SEGMENT_USAGE_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(), "dimension": pl.String(), "group_name": pl.String(), "metric": pl.String(), "usage": pl.Float64(),
}  # fmt: skip


def _population(unit_cost: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    return unit_cost.filter(pl.col("day").is_in(days) & (pl.col("status") == "active"))


def segment_usage(
    unit_cost: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame, days: list[dt.date]
) -> pl.DataFrame:
    """(day, dimension, group_name, metric, usage): the population's usage per group, from usage at
    USAGE_ROLLUP and the customer dimension's (snapshot_date, tenant_id, customer_id); the Polars
    twin of SEGMENT_USAGE_QUERY."""
    grouped = _grouped(_population(unit_cost, days))
    # Usage of the population's tenants, per customer and metric (a tenant no customer owns is nobody's).
    per_customer = usage_per_customer(usage.filter(pl.col("usage_date").is_in(days)), customers)
    return (
        grouped.select(*KEYS, "customer_id")
        .join(per_customer, on=["day", "customer_id"])
        .sort(*KEYS, "metric", "customer_id")
        .group_by(*KEYS, "metric", maintain_order=True)
        .agg(pl.col("value").sum().alias("usage"))
        .cast(SEGMENT_USAGE_SCHEMA)
    )


def _segment_usage_statement(rollup: str, spec: dict, cfg: "UnitcostConfig", table: Callable[[str], str], dialect: Dialect) -> str:
    """`segment_usage` in the warehouse: USAGE_ROLLUP's rows joined to customer_dimension's tenants
    and unit_cost's active customers of the same days (only those days are scanned), summed per
    customer, then per group of each dimension."""
    days = "between (select min(usage_date) from usage) and (select max(usage_date) from usage)"
    labelled = "\nunion all\n".join(
        f"select c.day, {dialect.text(d)} as dimension, {label} as group_name, c.metric, c.value from per_customer as c "
        "join population as p on p.day = c.day and p.customer_id = c.customer_id"
        for d, label in _group_labels_sql("p.", dialect).items()
    )
    return f"""
with usage as ({rollup}),
owners as (
    select distinct snapshot_date, tenant_id, customer_id from {table("customer_dimension")}
    where snapshot_date {days}
),
per_customer as (
    select u.usage_date as day, o.customer_id, u.metric, sum(u.value) as value
    from usage as u join owners as o on o.snapshot_date = u.usage_date and o.tenant_id = u.tenant_id
    group by u.usage_date, o.customer_id, u.metric
),
population as (
    select day, customer_id, tier, segment, is_paying from {table("unit_cost")}
    where status = 'active' and day {days}
),
labelled as (
{labelled}
)
select day, dimension, group_name, metric, sum(value) as usage from labelled group by day, dimension, group_name, metric
"""


# tenant_usage's USAGE_ROLLUP reduced by the warehouse to one row per (day, dimension, group, metric).
SEGMENT_USAGE_QUERY = RollupQuery(SEGMENT_USAGE_SCHEMA, _segment_usage_statement)
SEGMENT_USAGE_THEN = {"query": "segment_usage"}


def segment_groups(unit_cost: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    """SEGMENT_GROUPS_SCHEMA: each group's customers, MRR, run rate and cost of the day, and the median
    and 90th percentile of its customers' cost, over the days' active unit_cost rows; the Polars
    twin of SEGMENT_GROUPS_QUERY."""
    # Sorted, and grouped in that order: float sums come out the same bits whatever the run's range.
    grouped = _grouped(_population(unit_cost, days)).sort(*KEYS, "customer_id")
    return (
        grouped.group_by(KEYS, maintain_order=True)
        .agg(
            pl.len().alias("customers"),
            pl.col("mrr").sum(),
            pl.col("monthly_run_rate").fill_null(0.0).sum(),
            pl.col("total_cost").sum(),
            pl.col("total_cost").median().alias("median_cost_per_day"),
            pl.col("total_cost").quantile(P90, interpolation="linear").alias("p90_cost_per_day"),
        )
        .cast(SEGMENT_GROUPS_SCHEMA)
    )


def _segment_groups_statement(rows: str, _cfg: "UnitcostConfig", dialect: Dialect) -> str:
    """`segment_groups` in the warehouse: the population's rows labelled once per dimension and grouped
    (a customer without a run rate adds 0 to it, as `fill_null(0.0)` does)."""
    labelled = "\nunion all\n".join(
        f"select day, {dialect.text(d)} as dimension, {label} as group_name, mrr, monthly_run_rate, total_cost "
        "from population"
        for d, label in _group_labels_sql("", dialect).items()
    )
    return f"""
with population as (select * from ({rows}) as unitcost_rows where status = 'active'),
labelled as (
{labelled}
)
select day, dimension, group_name, count(*) as customers, sum(mrr) as mrr,
    sum(coalesce(monthly_run_rate, 0)) as monthly_run_rate, sum(total_cost) as total_cost,
    {dialect.quantile("total_cost", 0.5)} as median_cost_per_day, {dialect.quantile("total_cost", P90)} as p90_cost_per_day
from labelled group by day, dimension, group_name
"""


# unit_cost's active customers of the input's days reduced by the warehouse to a row per group.
SEGMENT_GROUPS_QUERY = WarehouseQuery(UNIT_COST_COLUMNS, SEGMENT_GROUPS_SCHEMA, _segment_groups_statement)


def segment_economics(
    unit_cost: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame | None, days: list[dt.date]
) -> pl.DataFrame:
    """(day, dimension, group, metric) rows from the days' unit_cost (already scoped), or its groups
    (SEGMENT_GROUPS_SCHEMA, as the warehouse sums them), and the usage per group
    (SEGMENT_USAGE_SCHEMA), or usage at USAGE_ROLLUP with the customer dimension's (snapshot_date,
    tenant_id, customer_id) and the days' unit_cost rows to compute it from (`segment_usage`)."""
    keys = KEYS
    if "dimension" in unit_cost.columns:
        groups = unit_cost.filter(pl.col("day").is_in(days))
    else:
        groups = segment_groups(unit_cost, days)
    if groups.is_empty():
        return pl.DataFrame(schema=SEGMENT_ECONOMICS_SCHEMA)
    economics = (
        groups.sort(keys)
        .with_columns(
            _share("mrr", ["day", "dimension"]).alias("revenue_share"),
            _share("monthly_run_rate", ["day", "dimension"]).alias("cost_share"),
            pl.when(pl.col("mrr") > 0).then(pl.col("monthly_run_rate") / pl.col("mrr")).alias("cost_to_mrr"),
        )
        .with_columns((1 - pl.col("cost_to_mrr")).alias("infra_margin"))
    )
    if "dimension" in usage.columns:
        group_usage = usage.filter(pl.col("day").is_in(days)).cast(SEGMENT_USAGE_SCHEMA)
    elif "dimension" in unit_cost.columns:
        raise ValueError("segment_economics: usage per tenant needs unit_cost's rows, not its groups")
    else:
        group_usage = segment_usage(unit_cost, usage, customers, days)
    metrics_of_day = group_usage.select("day", "metric").unique()
    usage_rows = (
        economics.select(keys)
        .join(metrics_of_day, on="day", how="left")  # every group x every metric of its day; null when none
        .join(group_usage, on=[*keys, "metric"], how="left")
        .with_columns(pl.when(pl.col("metric").is_not_null()).then(pl.col("usage").fill_null(0.0)).alias("usage"))
        .sort(*keys, "metric", nulls_last=True)
        .with_columns(_share("usage", ["day", "dimension", "metric"]).alias("usage_share"))
    )
    frame = economics.join(usage_rows, on=keys, how="left")
    return (
        frame.select(pl.col(c).cast(t) for c, t in SEGMENT_ECONOMICS_SCHEMA.items())
        .sort(["day", "dimension", "group_name", "metric"], nulls_last=True)
    )


def _pct(value: float | None) -> str:
    if value is None:
        return "n/a"
    return "0%" if value == 0 else f"{value:.1%}"


def freemium_line(day: pl.DataFrame) -> str | None:
    """One day's non-paying share of usage, cost and revenue, in words (None without non-paying customers)."""
    rows = day.filter((pl.col("dimension") == "paying") & (pl.col("group_name") == NON_PAYING))
    if rows.is_empty():
        return None
    first = rows.row(0, named=True)
    metrics = rows.filter(pl.col("metric").is_not_null()).sort(pl.col("metric") != REQUESTS_METRIC, "metric")
    usage = [f"{_pct(r['usage_share'])} of {r['metric']}" for r in metrics.iter_rows(named=True)][:1]
    parts = [*usage, f"{_pct(first['cost_share'])} of cost", f"{_pct(first['revenue_share'])} of revenue"]
    return "non-paying customers: " + ", ".join(parts)


def lowest_margin_tier(day: pl.DataFrame, dimension: str = "tier") -> dict | None:
    """The tier (or group of `dimension`) with the lowest infra margin on one day (groups without MRR
    have none), or None."""
    tiers = (
        day.filter((pl.col("dimension") == dimension) & pl.col("infra_margin").is_not_null())
        .unique(["group_name"])
        .sort("infra_margin", "group_name")
    )
    return tiers.row(0, named=True) if tiers.height else None
