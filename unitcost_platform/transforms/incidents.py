"""Alert incidents: alerts that open, stay open and resolve.

An alert is a row on a day; an incident is what an owner works on. Alerts are grouped by family
(P1 and P2 are one family, COST_TO_MRR; TREND; SEGMENT; any other alert type is its own family) and
key (the customer, or `segment`). An incident opens on the first day its family alerts for the key
while none is open, stays open while alerts keep coming (gaps included) and resolves on the
`resolve_after_days`-th consecutive calendar day without one: alerts on days 10, 11 and 12 and none
on 13, 14 and 15 resolve it on 15 (N = 3); an alert on 14 would have kept it open. So two alerts
belong to one incident exactly when they are at most N days apart.

Incidents are derived from the whole alert history up to each day, never from the order runs
happened in: the same table whether days are materialized one by one, as one range or again after
a restatement, and an incident opened 400 days ago still has its `opened_day`.
"""

import datetime as dt
import json

import polars as pl

from unitcost_platform.config import OwnersConfig
from unitcost_platform.transforms.alerts import (
    COST_ALERTS_SCHEMA,
    SEGMENT_KEY,
    ServiceCosts,
    _service_changes,
    alerts_as_documents,
    service_costs_of,
)
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery

SEGMENT_INCIDENT_KEY = "segment"
SEVERITY_RANK = {"P2": 1, "P1": 2}

INCIDENTS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "incident_id": pl.String(),
    "family": pl.String(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "status": pl.String(),
    "opened_day": pl.Date(),
    "last_alert_day": pl.Date(),
    "resolved_day": pl.Date(),
    "days_open": pl.Int64(),
    "severity": pl.String(),
    "peak_severity": pl.String(),
    "metric": pl.String(),
    "value_at_open": pl.Float64(),
    "peak_value": pl.Float64(),
    "value_now": pl.Float64(),
    "owners": pl.String(),
    "what_changed": pl.String(),
}

FAMILY = (
    pl.when(pl.col("alert_type").is_in(["P1", "P2"])).then(pl.lit("COST_TO_MRR")).otherwise(pl.col("alert_type"))
)


def family_of(alert_type: str) -> str:
    return "COST_TO_MRR" if alert_type in ("P1", "P2") else alert_type


def incident_id(opened_day: dt.date | str, family: str, customer_id: str | None) -> str:
    day = opened_day if isinstance(opened_day, str) else opened_day.isoformat()
    return f"{day}:{family}:{customer_id or SEGMENT_INCIDENT_KEY}"


def _clusters(history: pl.DataFrame, resolve_after_days: int) -> pl.DataFrame:
    """Alert rows numbered into incidents, with the running state of each incident at each of its alerts."""
    rank = pl.col("alert_type").replace_strict(SEVERITY_RANK, default=0, return_dtype=pl.Int64)
    if "drivers" not in history.columns:
        history = history.with_columns(pl.lit(None, dtype=pl.String).alias("drivers"))
    order = ["family", "_key", "day", *(["alert_id"] if "alert_id" in history.columns else [])]
    return (
        history.with_columns(FAMILY.alias("family"), pl.col("customer_id").fill_null(SEGMENT_INCIDENT_KEY).alias("_key"))
        .sort(order)
        .with_columns((pl.col("day").diff().over("family", "_key").dt.total_days() > resolve_after_days).fill_null(True).alias("_new"))
        .with_columns(pl.col("_new").cum_sum().over("family", "_key").alias("_n"))
        .with_columns(
            pl.col("day").first().over("family", "_key", "_n").alias("opened_day"),
            pl.col("value").first().over("family", "_key", "_n").alias("value_at_open"),
            pl.col("value").cum_max().over("family", "_key", "_n").alias("peak_value"),
            rank.cum_max().over("family", "_key", "_n").alias("_peak_rank"),
            pl.col("day").max().over("family", "_key", "_n").alias("_last"),
        )
        .with_columns(
            # The drivers of the alert at the incident's peak so far: what a fix would have changed.
            pl.when(pl.col("value") == pl.col("peak_value")).then(pl.col("drivers")).otherwise(None)
            .forward_fill().over("family", "_key", "_n").alias("_peak_drivers"),
        )
    )


# The running state `_clusters` gives each alert: its incident (family, key, number) and the
# incident's state at that alert.
CLUSTER_SCHEMA: dict[str, pl.DataType] = {
    "family": pl.String(),
    "_key": pl.String(),
    "_n": pl.Int64(),
    "opened_day": pl.Date(),
    "value_at_open": pl.Float64(),
    "peak_value": pl.Float64(),
    "_peak_rank": pl.Int64(),
    "_last": pl.Date(),
    "_peak_drivers": pl.String(),
}
INCIDENT_ALERTS_SCHEMA = {**COST_ALERTS_SCHEMA, **CLUSTER_SCHEMA}


def incident_alerts(history: pl.DataFrame, since: dt.date, through: dt.date, resolve_after_days: int) -> pl.DataFrame:
    """What `alert_incidents` needs of the whole alert history to compute the days from `since` +
    `resolve_after_days` to `through`: the alerts from `since` to `through` of the incidents still
    alive on `since` or later, each with its incident's running state (`CLUSTER_SCHEMA`) computed
    over the whole history. An incident alive on one of those days has all its alerts that matter
    there on or after `since` (its latest alert up to the day is at most `resolve_after_days`
    before it); its opening and peak, however old, come with them. The Polars twin of
    INCIDENT_ALERTS_QUERY."""
    alerts = _clusters(history.filter(pl.col("day") <= through), resolve_after_days)
    if alerts.is_empty():
        return pl.DataFrame(schema=INCIDENT_ALERTS_SCHEMA)
    return (
        alerts.filter((pl.col("day") >= since) & (pl.col("_last") >= since))
        .select(list(INCIDENT_ALERTS_SCHEMA))
        .cast(INCIDENT_ALERTS_SCHEMA)
    )


def _incident_alerts_statement(rows: str, cfg, dialect: Dialect, since: str, through: str) -> str:
    """The SQL twin of `incident_alerts`: the alerts numbered into incidents with window functions
    over every alert up to `through` of the (family, key)s alerting from `since` on, each alert's
    running state, and the rows from `since` on."""
    incident = "partition by family, _key, _n"
    running = "order by day, alert_id rows between unbounded preceding and current row"
    columns = ", ".join(COST_ALERTS_SCHEMA)
    gap = dialect.days_between("lag(day) over (partition by family, _key order by day, alert_id)", "day")
    return f"""
with dated as (
    select {columns},
        case when alert_type in ('P1', 'P2') then 'COST_TO_MRR' else alert_type end as family,
        coalesce(customer_id, {dialect.text(SEGMENT_INCIDENT_KEY)}) as _key,
        case alert_type {" ".join(f"when {dialect.text(k)} then {v}" for k, v in SEVERITY_RANK.items())} else 0 end as unitcost_rank
    from ({rows}) as unitcost_rows where day <= {dialect.date(through)}
), keyed as (
    -- the whole history of the (family, key)s alerting from `since` on, the only ones whose incidents
    -- can be alive; every window below is partitioned by them, so the others change nothing
    select dated.* from dated join (
        select distinct family, _key from dated where day >= {dialect.date(since)}
    ) as alive on alive.family = dated.family and alive._key = dated._key
), flagged as (
    select *, case when {gap} is null or {gap} > {int(cfg.alerts.resolve_after_days)} then 1 else 0 end as unitcost_new
    from keyed
), numbered as (
    select *, sum(unitcost_new) over (partition by family, _key {running}) as _n from flagged
), state as (
    select *,
        first_value(day) over ({incident} {running}) as opened_day,
        first_value(value) over ({incident} {running}) as value_at_open,
        max(value) over ({incident} {running}) as peak_value,
        max(unitcost_rank) over ({incident} {running}) as _peak_rank,
        max(day) over ({incident}) as _last,
        row_number() over ({incident} order by day, alert_id) as unitcost_i
    from numbered
), peaks as (
    -- the latest alert so far at the incident's running peak that has drivers (Polars: forward fill)
    select *, max(case when value = peak_value and drivers is not null then unitcost_i end)
        over ({incident} {running}) as unitcost_peak_i
    from state
)
select {", ".join(f"peaks.{c}" for c in COST_ALERTS_SCHEMA)}, peaks.family, peaks._key, peaks._n, peaks.opened_day,
    peaks.value_at_open, peaks.peak_value, peaks._peak_rank, peaks._last, at_peak.drivers as _peak_drivers
from peaks left join state as at_peak
    on at_peak.family = peaks.family and at_peak._key = peaks._key and at_peak._n = peaks._n
    and at_peak.unitcost_i = peaks.unitcost_peak_i
where peaks.day >= {dialect.date(since)} and peaks._last >= {dialect.date(since)}
"""


INCIDENT_ALERTS_QUERY = WarehouseQuery(
    list(COST_ALERTS_SCHEMA), INCIDENT_ALERTS_SCHEMA, _incident_alerts_statement, parameters=("since", "through")
)


def what_changed(resolved: pl.DataFrame, service_costs: ServiceCosts, owners: OwnersConfig, top: int = 2) -> pl.DataFrame:
    """(day, customer_id, status, what_changed) for resolved customer incidents: of the services that drove
    the alert at the incident's peak, those whose last 7 days cost fell most against their 7 days then,
    "Amazon EC2 -40% against the week of the peak (compute-team)"."""
    schema = {"day": pl.Date, "customer_id": pl.String, "what_changed": pl.String, "status": pl.String}
    targets = resolved.filter(pl.col("customer_id").is_not_null() & pl.col("_peak_drivers").is_not_null())
    if targets.is_empty():
        return pl.DataFrame(schema=schema)
    now = _service_changes(
        service_costs_of(service_costs, targets["customer_id"]), targets.select("day", pl.col("customer_id").alias("_key"), "customer_id").unique()
    ).select("day", pl.col("_key").alias("customer_id"), "service_name", "cost_7d")
    then = [
        (row["day"], row["customer_id"], d["service"], d.get("cost_7d"))
        for row in targets.iter_rows(named=True)
        for d in json.loads(row["_peak_drivers"] or "[]")
    ]
    peak = pl.DataFrame(then, schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String, "_then": pl.Float64}, orient="row")
    moved = (
        peak.join(now, on=["day", "customer_id", "service_name"], how="left")
        .with_columns(pl.col("cost_7d").fill_null(0.0))
        .filter(pl.col("_then") > 0)
        .with_columns((pl.col("cost_7d") / pl.col("_then") - 1).alias("_change"))
        .filter(pl.col("_change") < 0)
        .sort("day", "customer_id", "_change", "service_name")
        .group_by("day", "customer_id", maintain_order=True)
        .head(top)
    )
    lines = [
        (day, customer, f"{service} {_signed_pct(change)} against the week of the peak ({owners.team_for(service)})")
        for day, customer, service, change in moved.select("day", "customer_id", "service_name", "_change").iter_rows()
    ]
    frame = pl.DataFrame(lines, schema={k: v for k, v in schema.items() if k != "status"}, orient="row")
    return (
        frame.group_by("day", "customer_id", maintain_order=True)
        .agg(pl.col("what_changed").str.join(", "))
        .with_columns(pl.lit("resolved").alias("status"))
        .cast(schema)
    )


def _signed_pct(x: float) -> str:
    return f"{x:+.0%}".replace("-", "\u2212")


def alert_incidents(
    history: pl.DataFrame,
    unit: pl.DataFrame,
    days: list[dt.date],
    resolve_after_days: int,
    service_costs: ServiceCosts | None = None,
    owners: OwnersConfig | None = None,
) -> pl.DataFrame:
    """One row per day of `days` and incident open on it or resolved on it.

    `history`: cost_alerts rows (day, alert_type, customer_id, customer_name, metric, value, owners)
    of every day up to the last of `days`, or `incident_alerts` of them (the rows that matter, each
    with its incident's state); `unit`: unit_cost rows of `days` (for `value_now` on quiet days).
    """
    last = max(days)
    history = history.filter(pl.col("day") <= last)
    alerts = history if "_peak_rank" in history.columns else _clusters(history, resolve_after_days)
    if alerts.is_empty():
        return pl.DataFrame(schema=INCIDENTS_SCHEMA)
    spans = alerts.group_by("family", "_key", "_n").agg(pl.col("opened_day").first(), pl.col("_last").first())
    wanted = pl.DataFrame({"day": sorted(set(days))}, schema={"day": pl.Date})
    grid = (
        spans.join(wanted, how="cross")
        .filter((pl.col("day") >= pl.col("opened_day")) & (pl.col("day") <= pl.col("_last") + pl.duration(days=resolve_after_days)))
        .select("family", "_key", "_n", "day")
        .sort("day")
    )
    state = alerts.select(
        "family", "_key", "_n", pl.col("day").alias("last_alert_day"), "opened_day", "customer_id", "customer_name",
        pl.col("alert_type").alias("severity"), "metric", "value_at_open", "peak_value", "_peak_rank", "owners",
        "_peak_drivers",
    ).sort("last_alert_day")  # fmt: skip
    rows = grid.join_asof(
        state, left_on="day", right_on="last_alert_day", by=["family", "_key", "_n"], strategy="backward",
        check_sortedness=False,
    )  # fmt: skip
    resolved = pl.col("day") == pl.col("last_alert_day") + pl.duration(days=resolve_after_days)
    rows = rows.with_columns(
        pl.when(resolved).then(pl.lit("resolved")).otherwise(pl.lit("open")).alias("status"),
        pl.when(resolved).then(pl.col("day")).alias("resolved_day"),
        (pl.col("day") - pl.col("opened_day")).dt.total_days().cast(pl.Int64).alias("days_open"),
        pl.when(pl.col("family") == "COST_TO_MRR")
        .then(pl.col("_peak_rank").replace_strict({v: k for k, v in SEVERITY_RANK.items()}, default=None, return_dtype=pl.String))
        .otherwise(pl.col("severity"))
        .alias("peak_severity"),
        pl.concat_str([pl.col("opened_day").cast(pl.String), pl.col("family"), pl.col("_key")], separator=":").alias("incident_id"),
    )
    rows = rows.join(_value_now(unit, alerts, days), on=["day", "family", "_key"], how="left")
    if service_costs is not None:
        rows = rows.join(
            what_changed(rows.filter(pl.col("status") == "resolved"), service_costs, owners or OwnersConfig()),
            on=["day", "customer_id", "status"], how="left",
        )  # fmt: skip
    else:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("what_changed"))
    return (
        rows.select(list(INCIDENTS_SCHEMA))
        .cast(INCIDENTS_SCHEMA)
        .sort("day", "family", "customer_id", "opened_day", nulls_last=True)
    )


def _value_now(unit: pl.DataFrame, alerts: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    """The family's measure on each day, also on days without an alert: cost-to-MRR, 7-day cost
    growth, the median non-paying customer's cost; other families, the day's alert value if any."""
    unit = unit.filter(pl.col("day").is_in(days))
    per_customer = pl.concat([
        unit.select("day", pl.lit("COST_TO_MRR").alias("family"), pl.col("customer_id").alias("_key"), pl.col("cost_to_mrr").alias("value_now")),
        unit.select("day", pl.lit("TREND").alias("family"), pl.col("customer_id").alias("_key"), pl.col("cost_growth_7d").alias("value_now")),
    ])  # fmt: skip
    segment = (
        unit.filter((pl.col("status") == "active") & ~pl.col("is_paying"))
        .group_by("day")
        .agg(pl.col("total_cost").median().alias("value_now"))
        .select("day", pl.lit("SEGMENT").alias("family"), pl.lit(SEGMENT_INCIDENT_KEY).alias("_key"), "value_now")
    )
    others = alerts.filter(~pl.col("family").is_in(["COST_TO_MRR", "TREND", "SEGMENT"]) & pl.col("day").is_in(days)).group_by(
        "day", "family", "_key"
    ).agg(pl.col("value").max().alias("value_now"))
    return pl.concat([per_customer, segment.cast(per_customer.schema), others.cast(per_customer.schema)])


def documents(incidents: pl.DataFrame, alerts: pl.DataFrame) -> dict[str, list[dict]]:
    """What the delivery sensor reads from a day's materialization: the day's alerts, each with its
    incident, and the incidents resolved that day (alert_type RESOLVED), as plain dicts."""
    keyed = incidents.select("day", "family", "customer_id", "incident_id", "opened_day", "days_open", "value_at_open", "peak_value", "peak_severity")
    docs = []
    by_key = {
        (r["day"].isoformat(), r["family"], r["customer_id"]): r for r in keyed.iter_rows(named=True)
    }
    for doc in alerts_as_documents(alerts):
        incident = by_key.get((doc["day"], family_of(doc["alert_type"]), doc.get("customer_id")))
        if incident is not None:
            doc.update(
                incident_id=incident["incident_id"], opened_day=incident["opened_day"].isoformat(),
                days_open=incident["days_open"], value_at_open=incident["value_at_open"],
            )  # fmt: skip
        docs.append(doc)
    resolved = []
    for row in incidents.filter(pl.col("status") == "resolved").iter_rows(named=True):
        resolved.append({
            "alert_type": "RESOLVED", "alert_id": f"{row['incident_id']}:resolved",
            **{k: (v.isoformat() if isinstance(v, dt.date) else v) for k, v in row.items()},
            "owners": [o for o in (row["owners"] or "").split(",") if o],
        })  # fmt: skip
    return {"alerts": docs, "resolved": resolved}


__all__ = ["SEGMENT_KEY", "alert_incidents", "documents", "family_of", "incident_id"]
