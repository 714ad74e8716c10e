"""Cost alerts of a day: P1, P2, TREND and SEGMENT, each naming the services that drove it (docs/design.md §7).

In: unit_cost rows of the days, allocated_cost summed per (day, customer, service) over the 14 days
ending at each of them (CUSTOMER_SERVICE_ROLLUP), the alert thresholds and the service owners. Out: `cost_alerts`, one row per alert with a stable `alert_id`
(day, type, customer), the drivers as JSON and a message a person can act on.
"""

import datetime as dt
import json
from collections.abc import Callable, Sequence
from functools import cached_property

import numpy as np
import polars as pl

from unitcost_platform.config import AlertsConfig, OwnersConfig, UnitcostConfig
from unitcost_platform.formatting import money
from unitcost_platform.transforms.customer_cost import window_spec
from unitcost_platform.transforms.unit_cost import TREND_DAYS as TREND_WINDOW
from unitcost_platform.transforms.windows import cumulative, window_at_days
from unitcost_platform.warehouse_sql import Dialect, RollupQuery, round_half_even_sql

COST_ALERTS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "alert_id": pl.String(),
    "alert_type": pl.String(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "segment": pl.String(),
    "mrr": pl.Float64(),
    "monthly_run_rate": pl.Float64(),
    "cost_to_mrr": pl.Float64(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "threshold": pl.Float64(),
    "drivers": pl.String(),
    "owners": pl.String(),
    "message": pl.String(),
}
SEGMENT_KEY = "__segment__"


def customer_alerts(unit: pl.DataFrame, cfg: AlertsConfig) -> pl.DataFrame:
    """P1/P2 on cost-to-MRR (one or the other) and TREND on cost growth outpacing revenue."""
    ratio = pl.col("cost_to_mrr")
    p1 = unit.filter(ratio > cfg.p1_cost_to_mrr).with_columns(
        alert_type=pl.lit("P1"), metric=pl.lit("cost_to_mrr"), value=ratio, threshold=pl.lit(cfg.p1_cost_to_mrr)
    )
    p2 = unit.filter((ratio > cfg.p2_cost_to_mrr) & (ratio <= cfg.p1_cost_to_mrr)).with_columns(
        alert_type=pl.lit("P2"), metric=pl.lit("cost_to_mrr"), value=ratio, threshold=pl.lit(cfg.p2_cost_to_mrr)
    )
    growth = pl.col("cost_growth_7d")
    trend = unit.filter(
        (growth > cfg.trend_cost_growth_7d) & (pl.col("mrr_growth_7d") < growth)
    ).with_columns(
        alert_type=pl.lit("TREND"), metric=pl.lit("cost_growth_7d"), value=growth,
        threshold=pl.lit(cfg.trend_cost_growth_7d),
    )
    return pl.concat([p1, p2, trend], how="vertical")


def segment_alerts(unit: pl.DataFrame) -> pl.DataFrame:
    """SEGMENT: the median non-paying customer costs more than the median paying one (active, day D)."""
    medians = (
        unit.filter(pl.col("status") == "active")
        .group_by("day")
        .agg(
            pl.col("total_cost").filter(~pl.col("is_paying")).median().alias("value"),
            pl.col("total_cost").filter(pl.col("is_paying")).median().alias("threshold"),
            (~pl.col("is_paying")).sum().alias("_non_paying"),
            pl.col("is_paying").sum().alias("_paying"),
        )
    )
    return medians.filter(
        (pl.col("_non_paying") > 0) & (pl.col("_paying") > 0) & (pl.col("value") > pl.col("threshold"))
    ).with_columns(
        alert_type=pl.lit("SEGMENT"), metric=pl.lit("median_cost_non_paying"),
        customer_id=pl.lit(None, dtype=pl.String),
    )


class DriverCandidates:
    """A daily run's drivers as the warehouse chooses them (ALERT_DRIVERS_QUERY), read on first use
    (a day without alerts reads nothing): `rows`, at CUSTOMER_SERVICE_ROLLUP summed over
    `driver_windows` (the day D and D-7, each a 7-day sum), holds for each customer the services that
    can be among its drivers (its `top` costliest and its `top` risen over the 7 days, as `_drivers`
    ranks them), and under the customer SEGMENT_KEY each service's sum over the day's active
    non-paying customers (the SEGMENT alert's targets)."""

    def __init__(self, read: Callable[[], pl.DataFrame], day: dt.date):
        self._read, self._day = read, day

    @cached_property
    def rows(self) -> pl.DataFrame:
        return candidate_rows(self._read(), self._day)


# allocated_cost at CUSTOMER_SERVICE_ROLLUP: every customer's rows, or a function that reads the rows of
# the customers it is given (an asset explaining a few flagged customers reads only theirs), or the
# candidates the warehouse chose.
ServiceCosts = pl.DataFrame | Callable[[Sequence[str]], pl.DataFrame] | DriverCandidates


def service_costs_of(service_costs: ServiceCosts, customers: pl.Series) -> pl.DataFrame:
    """The CUSTOMER_SERVICE_ROLLUP rows of `customers` (or every row, when they are already read)."""
    if isinstance(service_costs, DriverCandidates):
        return service_costs.rows
    if isinstance(service_costs, pl.DataFrame):
        return service_costs
    return service_costs(customers.drop_nulls().unique().to_list())


def _alert_drivers_statement(rollup: str, spec: dict, cfg: UnitcostConfig, table, dialect: Dialect) -> str:
    """Over `rollup` (CUSTOMER_SERVICE_ROLLUP summed over `driver_windows`): per customer, the services
    among its `top` costliest over the 7 days ending at `day` or its `top` risen against the 7 before
    (ranked as `_drivers` ranks them, by the amounts shown: 4 decimals, half to even, ties by service
    name), with both sums; and per service, the sum over the customers active and not paying on `day`
    (unit_cost's rows), with a null customer."""
    day, before = dialect.date(spec["day"]), dialect.date(spec["before"])
    now, prev = round_half_even_sql("cost_7d", DRIVER_DECIMALS), round_half_even_sql("cost_prev_7d", DRIVER_DECIMALS)
    top = int(spec["top"])
    return f"""
with w as ({rollup}),
pairs as (
    select customer_id, service_name,
           sum(case when day = {day} then allocated_cost else 0 end) as cost_7d,
           sum(case when day = {before} then allocated_cost else 0 end) as cost_prev_7d
    from w group by customer_id, service_name
),
ranked as (
    select customer_id, service_name, cost_7d, cost_prev_7d,
           row_number() over (partition by customer_id order by {now} desc, service_name) as by_cost,
           row_number() over (partition by customer_id order by {now} - {prev} desc, service_name) as by_rise
    from pairs
),
non_paying as (
    select distinct customer_id from {table('unit_cost')}
    where day = {day} and status = 'active' and not is_paying
)
select customer_id, service_name, cost_7d, cost_prev_7d from ranked where by_cost <= {top} or by_rise <= {top}
union all
select cast(null as varchar), p.service_name, sum(p.cost_7d), sum(p.cost_prev_7d)
from pairs p join non_paying n on p.customer_id = n.customer_id group by p.service_name
"""


ALERT_DRIVERS_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(), "service_name": pl.String(), "cost_7d": pl.Float64(), "cost_prev_7d": pl.Float64(),
}  # fmt: skip
# allocated_cost's CUSTOMER_SERVICE_ROLLUP over `driver_windows`, reduced by the warehouse: the rollup's
# `then` is `alert_drivers_spec(day, top)`.
ALERT_DRIVERS_QUERY = RollupQuery(ALERT_DRIVERS_SCHEMA, _alert_drivers_statement)


def alert_drivers_spec(day: dt.date, top: int) -> dict:
    before = day - dt.timedelta(days=TREND_WINDOW)
    return {"query": "alert_drivers", "day": day.isoformat(), "before": before.isoformat(), "top": top}


def candidate_rows(reduced: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    """What ALERT_DRIVERS_QUERY returned, as rollup rows: each pair's two 7-day sums on their windows'
    ends (D and D-7), the segment's sums under SEGMENT_KEY."""
    pairs = reduced.with_columns(pl.col("customer_id").fill_null(SEGMENT_KEY))
    before = day - dt.timedelta(days=TREND_WINDOW)
    rows = pl.concat([
        pairs.select(pl.lit(day).alias("day"), "customer_id", "service_name", pl.col("cost_7d").alias("allocated_cost")),
        pairs.select(pl.lit(before).alias("day"), "customer_id", "service_name", pl.col("cost_prev_7d").alias("allocated_cost")),
    ])  # fmt: skip
    return rows.cast({"day": pl.Date})


DRIVER_DECIMALS = 4  # a driver's costs and change as the alert carries them


def driver_windows(days: list[dt.date]) -> dict | None:
    """The windows a one-day run reads its drivers' service costs over (a rollup `window_spec`): the 7
    days ending at D and the 7 before, each sum on its window's end. `_service_changes` then finds the
    same sums as from the 14 days' rows (its windows hold exactly one end each, and a pair has a row
    in the 14 days when it has one in either window), from 2 rows per customer and service, not 14.
    A range run reads every day (its targets' windows overlap)."""
    if len(days) != 1:
        return None
    end = days[0]
    return window_spec("day", {
        end: [end - dt.timedelta(days=i) for i in range(TREND_WINDOW)],
        end - dt.timedelta(days=TREND_WINDOW): [end - dt.timedelta(days=TREND_WINDOW + i) for i in range(TREND_WINDOW)],
    })  # fmt: skip


class ReadOnce:
    """Reads CUSTOMER_SERVICE_ROLLUP rows with `read` at most once per customer: cost_alerts asks for
    the drivers of its P1, P2, TREND and SEGMENT alerts, then of its FORECAST alerts."""

    def __init__(self, read: Callable[[Sequence[str]], pl.DataFrame]):
        self._read, self._customers, self._frames = read, set(), []

    def __call__(self, customers: Sequence[str]) -> pl.DataFrame:
        new = sorted(set(customers) - self._customers)
        if new or not self._frames:
            self._frames.append(self._read(new))
            self._customers.update(new)
        rows = pl.concat(self._frames, how="vertical") if len(self._frames) > 1 else self._frames[0]
        if self._customers == set(customers):  # every customer read is asked for: no copy without the others
            return rows
        return rows.filter(pl.col("customer_id").is_in(list(customers)))


def _service_changes(service_costs: pl.DataFrame, targets: pl.DataFrame) -> pl.DataFrame:
    """Per target (day, group key) and service: cost over the last 7 days and the 7 before.

    Each (target customer, service) pair is a row of a dense matrix of daily costs over the days with
    costs in the calendar the targets need (pair = customer index x services + service index); window sums come from
    cumulative sums, so a year of targets (a SEGMENT alert has every non-paying customer) costs one
    pass over the cost rows, not a join of every target with every cost row. Several rows of one
    (day, customer, service) add up.
    """
    schema = {"day": pl.Date, "_key": pl.String, "service_name": pl.String,
              "cost_7d": pl.Float64, "cost_prev_7d": pl.Float64}  # fmt: skip
    if targets.is_empty():
        return pl.DataFrame(schema=schema)
    first = targets["day"].min() - dt.timedelta(days=2 * TREND_WINDOW - 1)
    last = targets["day"].max()
    customers = targets.select("customer_id").unique().with_row_index("_c")
    window = service_costs.lazy().filter(pl.col("day").is_between(first, last))
    services = window.select("service_name").unique().sort("service_name").with_row_index("_s").collect()
    # The matrix's columns are the days that have costs, not the calendar: a daily run's drivers
    # arrive as two 7-day sums (`driver_windows`), two columns rather than 14.
    days = window.select("day").unique().sort("day").with_row_index("_d").collect()
    n_services = max(services.height, 1)
    rows = (
        window.join(customers.lazy(), on="customer_id")  # only the targets' customers, with their index
        .join(services.lazy(), on="service_name")
        .join(days.lazy(), on="day")
        .select((pl.col("_c").cast(pl.Int64) * n_services + pl.col("_s").cast(pl.Int64)).alias("_p"), "_d", "allocated_cost")
        .collect()
    )
    shape = (customers.height * n_services, days.height)
    index = np.ravel_multi_index((rows["_p"].to_numpy(), rows["_d"].to_numpy()), shape)
    costs = np.bincount(index, weights=rows["allocated_cost"].to_numpy(), minlength=shape[0] * shape[1]).reshape(shape)
    present = np.zeros(shape[0] * shape[1])
    present[index] = 1.0
    del rows, index
    # Running totals once; each target reads its windows from them (no full window matrices).
    cost_totals = cumulative(costs)
    del costs
    seen_totals = cumulative(present.reshape(shape))
    del present
    per_target = (
        targets.join(customers, on="customer_id")
        .join(services, how="cross")
        .with_columns(
            (pl.col("_c").cast(pl.Int64) * n_services + pl.col("_s").cast(pl.Int64)).alias("_p"),
            (pl.col("day") - pl.lit(first)).dt.total_days().alias("_n"),
        )
    )
    column_days = days.select((pl.col("day") - pl.lit(first)).dt.total_days())["day"].to_numpy()
    pair, day = per_target["_p"].to_numpy(), per_target["_n"].to_numpy()
    per_target = per_target.with_columns(
        pl.Series("cost_7d", window_at_days(cost_totals, pair, column_days, day, TREND_WINDOW)),
        pl.Series("cost_prev_7d", window_at_days(cost_totals, pair, column_days, day, TREND_WINDOW, lag=TREND_WINDOW)),
        pl.Series("_seen", window_at_days(seen_totals, pair, column_days, day, 2 * TREND_WINDOW)),
    )
    return (
        per_target.filter(pl.col("_seen") > 0)  # a service the customer had no cost row for in the 14 days
        .group_by("day", "_key", "service_name")
        .agg(pl.col("cost_7d").sum(), pl.col("cost_prev_7d").sum())
        .cast(schema)
    )


def _drivers(changes: pl.DataFrame, alerts: pl.DataFrame, owners: OwnersConfig, top: int) -> pl.DataFrame:
    """The top services per alert with owner and 7-day change, as a JSON list and an owner list."""
    by_increase = alerts.filter(pl.col("alert_type") == "TREND").select("day", "_key", "alert_type")
    by_cost = alerts.filter(pl.col("alert_type") != "TREND").select("day", "_key", "alert_type")
    changes = changes.with_columns(
        pl.when(pl.col("cost_prev_7d") != 0).then(pl.col("cost_7d") / pl.col("cost_prev_7d") - 1).alias("change_7d"),
        pl.col("service_name").replace_strict(owners.services, default=owners.default_team, return_dtype=pl.String).alias("owner"),
    )
    # Ranked by the costs as the alert shows them (ties by service name), not by the last bits of the sums, which
    # differ between the warehouse's summation order and Polars' (a daily and a range run agree).
    shown = pl.col("cost_7d").round(DRIVER_DECIMALS)
    ranked = pl.concat([
        by_cost.join(changes, on=["day", "_key"]).sort(shown, "service_name", descending=[True, False]),
        by_increase.join(changes, on=["day", "_key"]).with_columns(
            (shown - pl.col("cost_prev_7d").round(DRIVER_DECIMALS)).alias("_rise")
        ).sort("_rise", "service_name", descending=[True, False]).drop("_rise"),
    ])
    top_rows = ranked.group_by("day", "_key", "alert_type", maintain_order=True).head(top)
    return top_rows.group_by("day", "_key", "alert_type").agg(
        pl.concat_str([
            pl.lit("["),
            pl.struct(
                pl.col("service_name").alias("service"), pl.col("owner"),
                pl.col("cost_7d").round(DRIVER_DECIMALS), pl.col("cost_prev_7d").round(DRIVER_DECIMALS),
                pl.col("change_7d").round(DRIVER_DECIMALS),
            ).struct.json_encode().str.join(","),
            pl.lit("]"),
        ]).alias("drivers"),
        pl.col("owner").unique(maintain_order=True).str.join(",").alias("owners"),
    )


def _pct(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:+.0f}%"


def _message(row: dict) -> str:
    drivers = json.loads(row["drivers"] or "[]")
    named = ", ".join(
        f"{d['service']} {money(d['cost_7d'])}/7d ({_pct(d['change_7d'])}, {d['owner']})" for d in drivers
    ) or "no allocated service cost"
    who = f"{row['customer_name']} ({row['tier']})"
    kind = row["alert_type"]
    if kind in ("P1", "P2"):
        return (
            f"{kind}: {who} runs at {money(row['monthly_run_rate'])}/month against "
            f"{money(row['mrr'])} MRR: cost-to-MRR {row['value']:.1%} > {row['threshold']:.0%}. "
            f"Drivers: {named}."
        )
    if kind == "TREND":
        return (
            f"TREND: {who} cost grew {row['value']:.1%} in 7 days (threshold {row['threshold']:.0%}) "
            f"while MRR changed {row['mrr_growth_7d']:+.1%}. Drivers: {named}."
        )
    return (
        f"SEGMENT: the median non-paying customer costs {money(row['value'])}/day, more than the "
        f"median paying customer ({money(row['threshold'])}/day). Drivers: {named}."
    )


def cost_alerts(
    unit: pl.DataFrame, service_costs: ServiceCosts, days: list[dt.date], cfg: AlertsConfig, owners: OwnersConfig
) -> pl.DataFrame:
    unit = unit.filter(pl.col("day").is_in(days))
    per_customer = customer_alerts(unit, cfg).with_columns(pl.col("customer_id").alias("_key"))
    segment = segment_alerts(unit).with_columns(_key=pl.lit(SEGMENT_KEY))
    if per_customer.is_empty() and segment.is_empty():
        return pl.DataFrame(schema=COST_ALERTS_SCHEMA)

    non_paying = (
        # The warehouse's candidates hold the segment's sums under its key, not its customers' rows.
        pl.DataFrame({"day": days, "customer_id": [SEGMENT_KEY] * len(days)}, schema={"day": pl.Date, "customer_id": pl.String})
        if isinstance(service_costs, DriverCandidates)
        else unit.filter((pl.col("status") == "active") & ~pl.col("is_paying")).select("day", "customer_id")
    )  # fmt: skip
    targets = pl.concat([
        per_customer.select("day", "_key", "customer_id").unique(),
        segment.select("day", "_key").join(non_paying, on="day"),
    ])
    changes = _service_changes(service_costs_of(service_costs, targets["customer_id"]), targets)
    alerts = pl.concat([per_customer, segment], how="diagonal_relaxed")
    alerts = alerts.join(_drivers(changes, alerts, owners, cfg.max_drivers), on=["day", "_key", "alert_type"], how="left")
    alerts = alerts.with_columns(
        pl.concat_str([
            pl.col("day").cast(pl.String), pl.lit(":"), pl.col("alert_type"), pl.lit(":"),
            pl.col("customer_id").fill_null("segment"),
        ]).alias("alert_id"),
        pl.col("drivers").fill_null("[]"),
        pl.col("owners").fill_null(""),
    )
    messages = [_message(row) for row in alerts.iter_rows(named=True)]
    return (
        alerts.with_columns(pl.Series("message", messages, dtype=pl.String))
        .select([pl.col(c) if c in alerts.columns or c == "message" else pl.lit(None).alias(c) for c in COST_ALERTS_SCHEMA])
        .cast(COST_ALERTS_SCHEMA)
        .sort("day", "alert_type", "customer_id", nulls_last=True)
    )


def alerts_as_documents(alerts: pl.DataFrame) -> list[dict]:
    """The alerts of a day as plain dicts (drivers and owners as lists), for the delivery sensor."""
    docs = []
    for row in alerts.sort("alert_type", "customer_id", nulls_last=True).iter_rows(named=True):
        doc = {k: v for k, v in row.items() if k not in ("drivers", "owners")}
        doc["day"] = row["day"].isoformat()
        doc["drivers"] = json.loads(row["drivers"] or "[]")
        doc["owners"] = [o for o in (row["owners"] or "").split(",") if o]
        docs.append(doc)
    return docs


def _signed_money(x: float) -> str:
    return ("+" if x >= 0 else "-") + money(abs(x))


def _model_message(row: dict, drivers: list[dict]) -> str:
    who = f"{row['customer_name']} ({row['tier']})"
    if row["alert_type"] == "ANOMALY":
        named = ", ".join(
            f"{d['service']} {_signed_money(d['price_effect'])}/day ({d['owner']})" for d in drivers
        ) or "no allocated service cost"
        change = row["_cpk"] / row["_cpk_expected"] - 1 if row["_cpk_expected"] else None
        return (
            f"ANOMALY: {who} cost {money(row['_actual'])} on {row['day']} against {money(row['_expected'])} "
            f"expected ({_signed_money(row['value'])}): cost per 1k {row['_unit']} {money(row['_cpk_expected'])} -> "
            f"{money(row['_cpk'])} ({_pct(change)}, score {row['_score']:.1f}); price effect "
            f"{_signed_money(row['_price'])}, volume effect {_signed_money(row['_volume'])}. Drivers: {named}."
        )
    named = ", ".join(
        f"{d['service']} {money(d['cost_7d'])}/7d ({_pct(d['change_7d'])}, {d['owner']})" for d in drivers
    ) or "no allocated service cost"
    return (
        f"FORECAST: {who} at cost-to-MRR {row['cost_to_mrr']:.1%} is projected to cross {row['_p2']:.0%} (P2) "
        f"in {row['value']:.0f} days (cost {row['_growth']:+.1%}/day); in 14 days {row['_ctm14']:.1%} "
        f"(80%: {row['_ctm14_low']:.1%} to {row['_ctm14_high']:.1%}). Drivers: {named}."
    )


def append_model_alerts(
    alerts: pl.DataFrame,
    unit: pl.DataFrame,
    anomalies: pl.DataFrame,
    forecasts: pl.DataFrame,
    service_costs: ServiceCosts,
    days: list[dt.date],
    cfg: AlertsConfig,
    owners: OwnersConfig,
    min_impact: float,
    horizon_days: int,
    unit_metric: str,
) -> pl.DataFrame:
    """`alerts` with the ANOMALY rows (cost_anomalies.is_anomaly: drivers and owners ordered by each
    service's price effect) and the FORECAST rows (margin_forecast.is_forecast_alert: drivers like
    P2's, the services costing most over 7 days) of the days, in the same columns and order."""
    people = unit.filter(pl.col("day").is_in(days)).select(
        "day", "customer_id", "customer_name", "tier", "segment", "mrr", "monthly_run_rate", "cost_to_mrr"
    )
    anomaly = (
        anomalies.filter(pl.col("is_anomaly") & pl.col("day").is_in(days))
        .select(
            "day", "customer_id", "drivers", "owners",
            pl.lit("ANOMALY").alias("alert_type"), pl.lit("impact").alias("metric"), pl.col("impact").alias("value"),
            pl.lit(min_impact).alias("threshold"), pl.col("actual_cost").alias("_actual"),
            pl.col("expected_cost").alias("_expected"), pl.col("actual_cost_per_1k_units").alias("_cpk"),
            pl.col("expected_cost_per_1k_units").alias("_cpk_expected"), pl.col("score").alias("_score"),
            pl.col("price_effect").alias("_price"), pl.col("volume_effect").alias("_volume"),
        )
        .join(people, on=["day", "customer_id"], how="left")
    )  # fmt: skip
    forecast = forecasts.filter(pl.col("is_forecast_alert") & pl.col("day").is_in(days)).select(
        "day", "customer_id", pl.lit("FORECAST").alias("alert_type"), pl.lit("days_to_p2").alias("metric"),
        pl.col("days_to_p2").cast(pl.Float64).alias("value"), pl.lit(float(horizon_days)).alias("threshold"),
        pl.col("daily_growth").alias("_growth"), pl.col("cost_to_mrr_14d").alias("_ctm14"),
        pl.col("cost_to_mrr_14d_low").alias("_ctm14_low"), pl.col("cost_to_mrr_14d_high").alias("_ctm14_high"),
    ).join(people, on=["day", "customer_id"], how="left")  # fmt: skip
    if anomaly.is_empty() and forecast.is_empty():
        return alerts
    if not forecast.is_empty():
        keyed = forecast.with_columns(pl.col("customer_id").alias("_key"))
        changes = _service_changes(service_costs_of(service_costs, keyed["customer_id"]), keyed.select("day", "_key", "customer_id"))
        forecast = keyed.join(
            _drivers(changes, keyed, owners, cfg.max_drivers), on=["day", "_key", "alert_type"], how="left"
        ).drop("_key")
    rows = []
    for row in pl.concat([anomaly, forecast], how="diagonal_relaxed").iter_rows(named=True):
        drivers = json.loads(row.get("drivers") or "[]")
        row = {**row, "_unit": unit_metric, "_p2": cfg.p2_cost_to_mrr}
        row["alert_id"] = f"{row['day']}:{row['alert_type']}:{row['customer_id']}"
        row["drivers"] = row.get("drivers") or "[]"
        row["owners"] = row.get("owners") or ""
        row["message"] = _model_message(row, drivers)
        rows.append({c: row.get(c) for c in COST_ALERTS_SCHEMA})
    new = pl.DataFrame(rows, schema=COST_ALERTS_SCHEMA, orient="row")
    return pl.concat([alerts.cast(COST_ALERTS_SCHEMA), new]).sort("day", "alert_type", "customer_id", nulls_last=True)
