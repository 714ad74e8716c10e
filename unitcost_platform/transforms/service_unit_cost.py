"""What each service adds to the monthly cost of serving one customer, against its target.

"Your service costs $3,200 a month" changes no design decision; "your service adds $0.18 to the
monthly cost of serving each customer, and the target is $0.08" is a specification. For a day D and a
service s, over the customers in scope on D (all of them without a `scope` section):

- `cost`: allocated_cost of s on D that landed on one of those customers (the rows unit_cost counts);
  `unallocated_cost`: the cost of s on D that landed on no customer (unknown tenant, no driver usage,
  excluded, ...). Without a scope the two add up to the service's bill of the day.
- `monthly_run_rate`: 30 x the mean daily `cost` over the materialized days of the 30 days ending at D,
  the rule unit_cost's run rate follows.
- `cost_per_customer_month` = monthly_run_rate / customers active on D.
- `p50/p90_customer_month`: percentiles (linear interpolation) over the active customers of each one's
  own 30 x mean daily cost from s over the same days, 0 for a customer s put nothing on.
- `change_7d`: cost_per_customer_month against the same figure computed for D-7, when D-7 is materialized.

A daily run (up to DIRECT_WINDOWS evaluated days: D and D-7) reads allocated_cost summed over those
windows by the warehouse, one row per window and (service, customer, reason) rather than 37 days of
them; from the warehouse (`ServiceMonthReader`) it reads less still: the warehouse also joins the
window to the day's customers and reduces it to each service's figures, percentiles and top customers
(`SERVICE_MONTH_QUERY`), a few rows per service rather than one per service and customer, and counts
the days' active customers in scope (`ACTIVE_IN_SCOPE_QUERY`), a row per day rather than one per
tenant. A range run reads the days' rows once, and its trailing sums are running totals per (service,
customer) looked up at D and D-30 (an as-of join), so a range of days costs one sort, not one 30-day
read per day.
"""

import datetime as dt
from collections.abc import Callable, Mapping
from dataclasses import dataclass

import numpy as np
import polars as pl

from unitcost_platform.config import OwnersConfig, ScopeConfig, TargetsConfig, UnitcostConfig
from unitcost_platform.formatting import money
from unitcost_platform.transforms.customer_cost import apply_rollup, window_spec
from unitcost_platform.transforms.unit_cost import RUN_RATE_DAYS, TREND_DAYS
from unitcost_platform.warehouse_sql import (
    Dialect,
    RollupQuery,
    WarehouseQuery,
    active_customers_sql,
    round_half_even_sql,
    scope_sql,
)

# allocated_cost read at this grain by the warehouse: the reason tells placed rows (null) from the rest.
SERVICE_CUSTOMER_ROLLUP = {
    "by": ["day", "service_name", "customer_id", "unallocated_reason"], "sum": ["allocated_cost"],
}  # fmt: skip
TOP_CUSTOMERS = 3
# Up to this many evaluated days, each 30-day window is summed directly (by the warehouse); beyond (a
# range run), with running totals and an as-of join over the days' rows.
DIRECT_WINDOWS = 4
# Read over windows, the cost of the window's end day alone, beside the window's sum.
ON_END = {"cost_on_day": "allocated_cost"}

# allocated_cost at SERVICE_CUSTOMER_ROLLUP: every day's rows, or a reader given the windows (each
# end with the days it sums) returning the rollup summed over them with ON_END, or, given None,
# every day's rows.
WindowReader = Callable[[Mapping[dt.date, list[dt.date]] | None], pl.DataFrame]


@dataclass(frozen=True)
class ServiceMonthReader:
    """allocated_cost where it lives: `service_month(end, days)` returns the figures of the window
    ending at `end` over its materialized `days` (SERVICE_MONTH_SCHEMA), computed by the warehouse;
    `rows` reads as a WindowReader does (a range run's every day)."""

    service_month: Callable[[dt.date, list[dt.date]], pl.DataFrame]
    rows: WindowReader
    # The active customers in scope of each of those days, counted by the warehouse
    # (ACTIVE_IN_SCOPE_QUERY: day, active_customers); without it, counted from the customers' rows.
    active_customers: Callable[[list[dt.date]], pl.DataFrame] | None = None


ServiceCustomerCost = pl.DataFrame | WindowReader | ServiceMonthReader

SERVICE_UNIT_COST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "service_name": pl.String(),
    "owner": pl.String(),
    "cost": pl.Float64(),
    "unallocated_cost": pl.Float64(),
    "monthly_run_rate": pl.Float64(),
    "history_days": pl.Int64(),
    "active_customers": pl.Int64(),
    "customers_with_cost": pl.Int64(),
    "cost_per_customer_month": pl.Float64(),
    "p50_customer_month": pl.Float64(),
    "p90_customer_month": pl.Float64(),
    "max_customer_month": pl.Float64(),
    "top_customers": pl.String(),
    "cost_per_customer_month_7d_ago": pl.Float64(),
    "change_7d": pl.Float64(),
    "target_per_customer_month": pl.Float64(),
    "target_ratio": pl.Float64(),
    "over_target": pl.Boolean(),
}


def _customers_in_scope(customers: pl.DataFrame, scope: ScopeConfig | None) -> pl.DataFrame:
    """(day, customer_id, customer_name, active) of the customers each day counts."""
    rows = customers if scope is None else customers.filter(scope.expr())
    return (
        rows.group_by(pl.col("snapshot_date").alias("day"), "customer_id")
        .agg(pl.col("customer_name").first(), (pl.col("status").first() == "active").alias("active"))
    )


def _running_window_sums(placed: pl.DataFrame, eval_days: list[dt.date]) -> pl.DataFrame:
    """(service_name, customer_id, day=eval day, window_cost): the sum over the 30 days ending at each
    eval day, from running totals (a range run)."""
    if placed.is_empty():
        return pl.DataFrame(schema={"service_name": pl.String, "customer_id": pl.String, "day": pl.Date, "window_cost": pl.Float64})
    running = placed.sort("service_name", "customer_id", "day").with_columns(
        pl.col("cost").cum_sum().over("service_name", "customer_id").alias("_running")
    )
    pairs = running.select("service_name", "customer_id").unique()
    grid = pairs.join(pl.DataFrame({"day": eval_days}, schema={"day": pl.Date}), how="cross").with_columns(
        (pl.col("day") - pl.duration(days=RUN_RATE_DAYS)).alias("_before")
    )
    lookup = running.select("service_name", "customer_id", pl.col("day").alias("_at"), "_running").sort("_at")

    def asof(on: str, name: str) -> pl.DataFrame:
        return grid.sort(on).join_asof(
            lookup, left_on=on, right_on="_at", by=["service_name", "customer_id"], strategy="backward",
            check_sortedness=False,  # both sides are sorted on the day, as the join needs within each group
        ).select("service_name", "customer_id", "day", pl.col("_running").fill_null(0.0).alias(name))

    return (
        asof("day", "_upto")
        .join(asof("_before", "_earlier"), on=["service_name", "customer_id", "day"])
        .select("service_name", "customer_id", "day", (pl.col("_upto") - pl.col("_earlier")).alias("window_cost"))
    )


def _monthly_per_customer(window: pl.DataFrame, active: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """(day, service_name, customer_id, customer_name, _month): each active customer's 30 x mean daily
    cost from each service over the day's window (customers without cost from it are absent)."""
    return (
        window.join(active.select("day", "customer_id", "customer_name"), on=["day", "customer_id"])
        .join(history, on="day")
        .with_columns((RUN_RATE_DAYS * pl.col("window_cost") / pl.col("history_days")).alias("_month"))
    )


def _percentiles(monthly: pl.DataFrame, active: pl.DataFrame) -> pl.DataFrame:
    """p50/p90/max of each active customer's monthly cost from the service, zeros included."""
    counts = dict(active.group_by("day").len().iter_rows())
    per_customer = monthly.group_by("day", "service_name").agg(pl.col("_month"))
    rows = []
    for day, service, months in per_customer.iter_rows():
        n = counts.get(day, 0)
        values = np.zeros(n)
        values[: len(months)] = months
        rows.append((day, service, *np.quantile(values, [0.5, 0.9]).tolist(), float(values.max())) if n else (day, service, None, None, None))
    return pl.DataFrame(
        rows, schema={"day": pl.Date, "service_name": pl.String, "p50_customer_month": pl.Float64,
                      "p90_customer_month": pl.Float64, "max_customer_month": pl.Float64},
        orient="row",
    )  # fmt: skip


def _top_customers(monthly: pl.DataFrame) -> pl.DataFrame:
    """The customers a service costs most per month, in words: "Bluefin Labs $1.20/month; ..."."""
    fields = ["customer_id", "customer_name", "_month", "_shown"]
    ranked = (
        # Ranked by the cents shown: customers shown at the same cost are ordered by id, whatever the
        # last bits of their sums (which differ between the warehouse's and Polars' summation order).
        monthly.filter(pl.col("_month") > 0).with_columns(pl.col("_month").round(2).alias("_shown"))
        # The largest per service without sorting every customer: top-k within each group, then
        # order those few (largest first, ties by customer id).
        .group_by("day", "service_name")
        .agg(pl.col(fields).top_k_by(["_shown", "customer_id"], k=TOP_CUSTOMERS, reverse=[False, True]))
        .explode(fields)
        .sort(["day", "service_name", "_shown", "customer_id"], descending=[False, False, True, False])
    )
    return ranked.group_by("day", "service_name").agg(
        pl.format(
            "{} ${}/month",
            pl.col("customer_name").fill_null(pl.col("customer_id")),
            pl.col("_month").map_elements(lambda v: f"{v:,.2f}", return_dtype=pl.String),
        ).str.join("; ")
        .alias("top_customers")
    )


def _reader(rollup: ServiceCustomerCost) -> WindowReader:
    """A reader of the rollup; a frame of every day's rows is summed over windows in Polars, as the
    warehouse sums them."""
    if not isinstance(rollup, pl.DataFrame):
        return rollup
    return lambda windows: rollup if windows is None else apply_rollup(
        rollup, {**SERVICE_CUSTOMER_ROLLUP, "windows": window_spec("day", windows, ON_END)}
    )


def _window_days(present: list[dt.date], end: dt.date) -> list[dt.date]:
    """The materialized days of the 30-day window ending at `end`."""
    return [p for p in present if end - dt.timedelta(days=RUN_RATE_DAYS) < p <= end]


# What `_window_costs` and `_running_costs` return, for each eval day D: the services with any row in
# D's window (day, service_name); the placed cost of each (service_name, customer_id) over the window
# (`window_cost`) and on D (`cost`); the cost of each service on D that landed on no customer
# (`unallocated_cost`). Customers and services without cost in a window are absent; callers treat
# them as 0.
WindowCosts = tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame, pl.DataFrame]
_PLACED = pl.col("unallocated_reason").is_null() & pl.col("customer_id").is_not_null()


def _window_costs(read: WindowReader, present: list[dt.date], end: dt.date) -> WindowCosts:
    """The window ending at `end` summed where the rows live: (service, customer, reason) once, not per day."""
    summed = read({end: _window_days(present, end)})
    # A placed row has no reason, so it is the only one of its (window, service, customer).
    mine = summed.filter(_PLACED)
    return (
        summed.select("day", "service_name").unique(),
        mine.select("service_name", "customer_id", "day", pl.col("allocated_cost").alias("window_cost")),
        mine.select("service_name", "customer_id", "day", pl.col("cost_on_day").alias("cost")),
        summed.filter(~_PLACED).group_by("day", "service_name").agg(pl.col("cost_on_day").sum().alias("unallocated_cost")),
    )


def _running_costs(read: WindowReader, present: list[dt.date], eval_days: list[dt.date]) -> WindowCosts:
    """Every eval day's window from one read of every day's rows, with running totals (a range run)."""
    rows = read(None).filter(pl.col("day").is_in(present))
    per_day = (
        rows.filter(_PLACED).group_by("service_name", "customer_id", "day").agg(pl.col("allocated_cost").sum().alias("cost"))
    )
    eval_frame = pl.DataFrame({"day": eval_days}, schema={"day": pl.Date})
    # A service appears on D when it has any allocated row in D's window.
    services = (
        rows.select("service_name", pl.col("day").alias("_seen")).unique()
        .join(eval_frame, how="cross")
        .filter((pl.col("_seen") <= pl.col("day")) & (pl.col("_seen") > pl.col("day") - pl.duration(days=RUN_RATE_DAYS)))
        .select("day", "service_name").unique()
    )  # fmt: skip
    unallocated = (
        rows.filter(~_PLACED).group_by("day", "service_name").agg(pl.col("allocated_cost").sum().alias("unallocated_cost"))
    )
    return services, _running_window_sums(per_day, eval_days), per_day.join(eval_frame, on="day"), unallocated


def _per_service(costs: WindowCosts, scoped: pl.DataFrame, active: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """Per eval day and service, every figure but the 7-day change and the target, from
    `_window_costs`' or `_running_costs`' frames."""
    services, window, placed_on_day, unallocated = costs
    window = window.join(scoped.select("day", "customer_id"), on=["day", "customer_id"])
    monthly = _monthly_per_customer(window, active, history)
    on_day = placed_on_day.join(scoped, on=["day", "customer_id"])
    day_cost = on_day.group_by("day", "service_name").agg(
        pl.col("cost").sum(),
        (pl.col("active") & (pl.col("cost") != 0)).sum().cast(pl.Int64).alias("customers_with_cost"),
    )
    run_rate = window.group_by("day", "service_name").agg(pl.col("window_cost").sum().alias("_window"))
    figures = (
        services.join(day_cost, on=["day", "service_name"], how="left")
        .join(unallocated, on=["day", "service_name"], how="left")
        .join(run_rate, on=["day", "service_name"], how="left")
        .join(_percentiles(monthly, active), on=["day", "service_name"], how="left")
        .join(_top_customers(monthly), on=["day", "service_name"], how="left")
    )
    return _with_rates(figures, _count_active(active), history)


ACTIVE_IN_SCOPE_SCHEMA: dict[str, pl.DataType] = {"day": pl.Date(), "active_customers": pl.Int64()}


def _count_active(active: pl.DataFrame) -> pl.DataFrame:
    return active.group_by("day").agg(pl.len().alias("active_customers")).cast(ACTIVE_IN_SCOPE_SCHEMA)


def active_in_scope(customers: pl.DataFrame, scope: ScopeConfig | None) -> pl.DataFrame:
    """(day, active_customers): the active customers in scope of each day of the customer dimension;
    the Polars twin of ACTIVE_IN_SCOPE_QUERY."""
    return _count_active(_customers_in_scope(customers, scope).filter(pl.col("active")))


# customer_dimension's days counted by the warehouse: a row per day, not one per tenant.
ACTIVE_IN_SCOPE_QUERY = WarehouseQuery(
    ["snapshot_date", "customer_id", "status", "tier", "segment", "customer_since"], ACTIVE_IN_SCOPE_SCHEMA,
    lambda rows, cfg, dialect: active_customers_sql(rows, cfg.scope, dialect, "day"),
)  # fmt: skip


def _with_rates(figures: pl.DataFrame, active_counts: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """`figures` (per eval day and service: cost, customers_with_cost, unallocated_cost, _window, the
    percentiles and top_customers, null where the service had none) with the day's history and
    active customers (ACTIVE_IN_SCOPE_SCHEMA), the run rate and the cost per customer."""
    return (
        figures.join(history, on="day", how="left")
        .join(active_counts, on="day", how="left")
        .with_columns(
            pl.col("cost", "unallocated_cost", "_window").fill_null(0.0),
            pl.col("customers_with_cost", "active_customers").fill_null(0),
        )
        .with_columns((RUN_RATE_DAYS * pl.col("_window") / pl.col("history_days")).alias("monthly_run_rate"))
        .with_columns(
            pl.when(pl.col("active_customers") > 0)
            .then(pl.col("monthly_run_rate") / pl.col("active_customers"))
            .alias("cost_per_customer_month"),
            *[pl.when(pl.col("active_customers") > 0).then(pl.col(c).fill_null(0.0)).alias(c)
              for c in ("p50_customer_month", "p90_customer_month", "max_customer_month")],
        )
    )


# What the warehouse returns for one window (SERVICE_MONTH_QUERY): a `service` row per service with
# any row in the window (its figures over the customers in scope, null where it has none), and up to
# TOP_CUSTOMERS `top` rows per service (customer, name, monthly cost, rank).
SERVICE_MONTH_SCHEMA: dict[str, pl.DataType] = {
    "kind": pl.String(),
    "service_name": pl.String(),
    "cost": pl.Float64(),
    "customers_with_cost": pl.Int64(),
    "unallocated_cost": pl.Float64(),
    "window_cost": pl.Float64(),
    "p50_customer_month": pl.Float64(),
    "p90_customer_month": pl.Float64(),
    "max_customer_month": pl.Float64(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "monthly_cost": pl.Float64(),
    "top_rank": pl.Int64(),
}
# The customer_dimension columns the query reads of the window's end day.
SERVICE_MONTH_CUSTOMER_COLUMNS = ["customer_id", "customer_name", "status", "tier", "segment", "customer_since"]


def _service_month_statement(window: str, customers: str, history_days: int, cfg: UnitcostConfig, dialect: Dialect) -> str:
    """One window's figures per service, as `_per_service` computes them from its rows.

    `window`: allocated_cost at SERVICE_CUSTOMER_ROLLUP summed over the window, `cost_on_day` beside
    (ON_END); `customers`: the customer_dimension rows (SERVICE_MONTH_CUSTOMER_COLUMNS) of its end day.
    The percentiles count every active customer in scope, 0 for one the service put nothing on: the
    customers without a cost are added as zeros (a cross join of the services with the active
    customers, which the warehouse holds, not Python). The top customers are ranked by the cents shown,
    rounded half to even as Polars rounds (ties by customer id).
    """
    month = f"{RUN_RATE_DAYS} * window_cost / {int(history_days)}"
    shown = round_half_even_sql("m.monthly_cost", 2)  # the cents shown, as Polars rounds them
    return f"""
with w as ({window}),
scoped as (
    select customer_id, min(customer_name) as customer_name, min(status) = 'active' as active
    from ({customers}) as unitcost_customers where {scope_sql(cfg.scope, dialect)} group by customer_id
),
placed as (
    select w.service_name, w.customer_id, w.allocated_cost as window_cost, w.cost_on_day as cost, s.customer_name, s.active
    from w join scoped s on w.customer_id = s.customer_id
    where w.unallocated_reason is null and w.customer_id is not null
),
figures as (
    select service_name, sum(cost) as cost,
           count(case when active and cost <> 0 then 1 end) as customers_with_cost,
           sum(window_cost) as window_cost
    from placed group by service_name
),
unallocated as (
    select service_name, sum(cost_on_day) as unallocated_cost from w
    where not (unallocated_reason is null and customer_id is not null) group by service_name
),
monthly as (select service_name, customer_id, customer_name, {month} as monthly_cost from placed where active),
zeros as (
    select m.service_name, coalesce(v.monthly_cost, 0) as monthly_cost
    from (select distinct service_name from monthly) as m
    cross join (select customer_id from scoped where active) as a
    left join monthly as v on v.service_name = m.service_name and v.customer_id = a.customer_id
),
percentiles as (
    select service_name, {dialect.quantile('monthly_cost', 0.5)} as p50_customer_month,
           {dialect.quantile('monthly_cost', 0.9)} as p90_customer_month, max(monthly_cost) as max_customer_month
    from zeros group by service_name
),
ranked as (
    select m.service_name, m.customer_id, m.customer_name, m.monthly_cost,
           row_number() over (partition by m.service_name order by {shown} desc, m.customer_id) as top_rank
    from monthly as m where m.monthly_cost > 0
)
select 'service' as kind, s.service_name, f.cost, f.customers_with_cost, u.unallocated_cost, f.window_cost,
       p.p50_customer_month, p.p90_customer_month, p.max_customer_month,
       cast(null as varchar) as customer_id, cast(null as varchar) as customer_name,
       cast(null as double) as monthly_cost, cast(null as bigint) as top_rank
from (select distinct service_name from w) as s
left join figures f on f.service_name = s.service_name
left join unallocated u on u.service_name = s.service_name
left join percentiles p on p.service_name = s.service_name
union all
select 'top', service_name, null, null, null, null, null, null, null, customer_id, customer_name, monthly_cost, top_rank
from ranked where top_rank <= {TOP_CUSTOMERS}
"""


def _service_month(rollup: str, spec: dict, cfg: UnitcostConfig, table: Callable[[str], str], dialect: Dialect) -> str:
    customers = (
        f"select {', '.join(SERVICE_MONTH_CUSTOMER_COLUMNS)} from {table('customer_dimension')} "
        f"where snapshot_date = {dialect.date(spec['day'])}"
    )
    return _service_month_statement(rollup, customers, spec["history_days"], cfg, dialect)


# allocated_cost's SERVICE_CUSTOMER_ROLLUP over one window, reduced by the warehouse: the rollup's
# `then` is `service_month_spec(end, days)`.
SERVICE_MONTH_QUERY = RollupQuery(SERVICE_MONTH_SCHEMA, _service_month)


def service_month_spec(end: dt.date, days: list[dt.date]) -> dict:
    """The `then` of the window ending at `end` over its materialized `days` (their count divides the
    window's sum into a daily mean)."""
    return {"query": "service_month", "day": end.isoformat(), "history_days": len(days)}


def _per_service_from_warehouse(rows: pl.DataFrame, end: dt.date, active_counts: pl.DataFrame, history: pl.DataFrame) -> pl.DataFrame:
    """`_per_service` of one window from what SERVICE_MONTH_QUERY returned for it."""
    rows = rows.with_columns(day=pl.lit(end, dtype=pl.Date))
    top = rows.filter(pl.col("kind") == "top").select(
        "day", "service_name", "customer_id", "customer_name", pl.col("monthly_cost").alias("_month")
    )
    figures = (
        rows.filter(pl.col("kind") == "service")
        .select("day", "service_name", "cost", "customers_with_cost", "unallocated_cost",
                pl.col("window_cost").alias("_window"), "p50_customer_month", "p90_customer_month", "max_customer_month")
        .join(_top_customers(top), on=["day", "service_name"], how="left")
    )  # fmt: skip
    return _with_rates(figures, active_counts, history)


def service_unit_cost(
    rollup: ServiceCustomerCost,
    present_days: set[dt.date],
    customers: pl.DataFrame | Callable[[], pl.DataFrame],
    days: list[dt.date],
    owners: OwnersConfig,
    targets: TargetsConfig,
    scope: ScopeConfig | None = None,
) -> pl.DataFrame:
    """One row per day of `days` and service with cost in its trailing 30 days.

    `rollup`: allocated_cost at SERVICE_CUSTOMER_ROLLUP over the 37 days ending at each day (D-7's own
    window included), or a reader of it (ServiceCustomerCost); `present_days`: the materialized days
    among them; `customers`: customer_dimension of each day and of 7 days earlier, or a function
    reading them (not called when the warehouse counts the active customers, `ServiceMonthReader`).
    """
    present = sorted(set(present_days) | set(days))
    week_ago = [d - dt.timedelta(days=TREND_DAYS) for d in days]
    eval_days = sorted(set(days) | {d for d in week_ago if d in set(present)})

    def scoped_customers() -> tuple[pl.DataFrame, pl.DataFrame]:
        rows = customers() if callable(customers) else customers
        scoped = _customers_in_scope(rows.filter(pl.col("snapshot_date").is_in(eval_days)), scope)
        return scoped, scoped.filter(pl.col("active"))

    history = pl.DataFrame(
        {"day": eval_days,
         "history_days": [len(_window_days(present, e)) for e in eval_days]},
        schema={"day": pl.Date, "history_days": pl.Int64},
    )  # fmt: skip
    if isinstance(rollup, ServiceMonthReader) and len(eval_days) <= DIRECT_WINDOWS:
        # A daily run from the warehouse: each window's figures computed where its rows are, and
        # the days' active customers counted there.
        counts = (
            rollup.active_customers(eval_days).cast(ACTIVE_IN_SCOPE_SCHEMA) if rollup.active_customers
            else _count_active(scoped_customers()[1])
        )  # fmt: skip
        frame = pl.concat(
            [_per_service_from_warehouse(rollup.service_month(e, _window_days(present, e)), e, counts, history)
             for e in eval_days],
            how="vertical_relaxed",
        )  # fmt: skip
    elif len(eval_days) <= DIRECT_WINDOWS:
        scoped, active = scoped_customers()
        read = _reader(rollup)
        # A daily run, one window at a time: each is read, reduced to per-service rows and dropped
        # before the next, so the run holds one window of customer x service sums, not two.
        frame = pl.concat(
            [_per_service(_window_costs(read, present, e), scoped, active, history) for e in eval_days],
            how="vertical_relaxed",
        )
    else:
        scoped, active = scoped_customers()
        read = _reader(rollup.rows if isinstance(rollup, ServiceMonthReader) else rollup)
        frame = _per_service(_running_costs(read, present, eval_days), scoped, active, history)
    before = frame.select(
        (pl.col("day") + pl.duration(days=TREND_DAYS)).cast(pl.Date).alias("day"), "service_name",
        pl.col("cost_per_customer_month").alias("_before"),
    )  # fmt: skip
    names = frame["service_name"].unique().to_list()
    owned = pl.DataFrame(
        {"service_name": names, "owner": [owners.team_for(s) for s in names],
         "target_per_customer_month": [targets.target_for(s, owners.team_for(s)) for s in names]},
        schema={"service_name": pl.String, "owner": pl.String, "target_per_customer_month": pl.Float64},
    )  # fmt: skip
    return (
        frame.filter(pl.col("day").is_in(days))
        .join(before, on=["day", "service_name"], how="left")
        .join(owned, on="service_name", how="left")
        .with_columns(
            pl.col("_before").alias("cost_per_customer_month_7d_ago"),
            pl.when((pl.col("_before") != 0) & pl.col("_before").is_not_null())
            .then(pl.col("cost_per_customer_month") / pl.col("_before") - 1)
            .alias("change_7d"),
        )
        .with_columns((pl.col("cost_per_customer_month") / pl.col("target_per_customer_month")).alias("target_ratio"))
        .with_columns((pl.col("target_ratio") > 1).fill_null(False).alias("over_target"))
        .select(list(SERVICE_UNIT_COST_SCHEMA))
        .cast(SERVICE_UNIT_COST_SCHEMA)
        .sort("day", "service_name")
    )


def impact_line(row: dict) -> str:
    """ "Amazon DynamoDB adds $0.18 to the monthly cost of serving each customer (target $0.08, 2.3x),
    +12% in 7 days; the customers it costs most: ..." """
    text = f"{row['service_name']} adds {money(row['cost_per_customer_month'])} to the monthly cost of serving each customer"
    if row["target_per_customer_month"] is not None:
        text += f" (target {money(row['target_per_customer_month'])}, {row['target_ratio']:.1f}\u00d7)"
    if row["change_7d"] is not None:
        text += f", {row['change_7d']:+.0%} in 7 days"
    if row.get("crossed"):
        text += f"; {row['crossed']}"
    if row["top_customers"]:
        text += f"; the customers it costs most: {row['top_customers']}"
    return text


def impact_documents(frame: pl.DataFrame, notify_change: float) -> list[dict]:
    """One message per day and owning team: its services that crossed their target (either way) on the
    day, or whose cost per customer moved more than `notify_change` against 7 days earlier."""
    before = pl.col("cost_per_customer_month_7d_ago") / pl.col("target_per_customer_month")
    marked = frame.with_columns(
        pl.when(pl.col("over_target") & (before <= 1))
        .then(pl.lit("now over its target (within it 7 days ago)"))
        .when(~pl.col("over_target") & (before > 1) & pl.col("target_ratio").is_not_null())
        .then(pl.lit("back within its target (over it 7 days ago)"))
        .alias("crossed")
    ).filter(pl.col("crossed").is_not_null() | (pl.col("change_7d").abs() > notify_change))
    docs = []
    for (day, team), rows in marked.sort("day", "owner", "service_name").group_by(["day", "owner"], maintain_order=True):
        services = [
            {**{k: r[k] for k in ("service_name", "cost_per_customer_month", "target_per_customer_month", "target_ratio",
                                   "change_7d", "over_target", "crossed", "top_customers", "active_customers")},
             "line": impact_line(r)}
            for r in rows.iter_rows(named=True)
        ]  # fmt: skip
        docs.append({
            "alert_type": "UNIT_COST", "alert_id": f"{day.isoformat()}:UNIT_COST:{team}", "day": day.isoformat(),
            "team": team, "owners": [team], "services": services,
            "message": f"{team}: " + "; ".join(s["line"] for s in services),
        })  # fmt: skip
    return docs
