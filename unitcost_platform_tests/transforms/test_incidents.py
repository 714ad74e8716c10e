"""Alert incidents: open, kept open through gaps, resolved on the Nth quiet day, escalation, long histories."""

import datetime as dt

import polars as pl

from unitcost_platform.config import OwnersConfig
from unitcost_platform.transforms.incidents import alert_incidents

N = 3  # alerts.resolve_after_days


def day(n: int) -> dt.date:
    return dt.date(2026, 3, 1) + dt.timedelta(days=n - 1)  # day(10) is 2026-03-10


def _history(rows: list[tuple]) -> pl.DataFrame:
    """(day number, alert_type, customer_id, value) alert rows."""
    return pl.DataFrame(
        [{"day": day(d), "alert_type": t, "customer_id": c, "customer_name": c and f"Name {c}",
          "metric": "m", "value": v, "owners": "compute-team"} for d, t, c, v in rows],
        schema={"day": pl.Date, "alert_type": pl.String, "customer_id": pl.String, "customer_name": pl.String,
                "metric": pl.String, "value": pl.Float64, "owners": pl.String},
    )  # fmt: skip


HISTORY = _history([
    (10, "P2", "C1", 0.21), (11, "P2", "C1", 0.22), (12, "P2", "C1", 0.215),  # quiet 13, 14, 15: resolved on 15
    (20, "P2", "C1", 0.21), (23, "P2", "C1", 0.23), (24, "P1", "C1", 0.26),  # a 3-day gap keeps it open; escalates
    (10, "TREND", "C2", 0.30), (14, "TREND", "C2", 0.40),  # a 4-day gap: the first resolved on 13, a new one on 14
    (11, "SEGMENT", None, 2.5),
])  # fmt: skip


def _unit(days: list[dt.date]) -> pl.DataFrame:
    """unit_cost rows for value_now: C1 at 19% cost-to-MRR every day, C2 growing 5%; one paying, one free."""
    rows = []
    for d in days:
        rows += [
            {"day": d, "customer_id": "C1", "cost_to_mrr": 0.19, "cost_growth_7d": 0.01, "status": "active", "is_paying": True, "total_cost": 5.0},
            {"day": d, "customer_id": "C2", "cost_to_mrr": 0.05, "cost_growth_7d": 0.05, "status": "active", "is_paying": False, "total_cost": 1.5},
        ]  # fmt: skip
    return pl.DataFrame(rows)


def _on(n: int, history: pl.DataFrame = HISTORY) -> dict[str, dict]:
    out = alert_incidents(history, _unit([day(n)]), [day(n)], N)
    return {r["incident_id"]: r for r in out.iter_rows(named=True)}


def test_open_then_resolved_on_the_third_quiet_day():
    assert list(_on(9)) == []
    first = "2026-03-10:COST_TO_MRR:C1"
    row = _on(12)[first]
    assert (row["status"], row["opened_day"], row["last_alert_day"], row["days_open"]) == ("open", day(10), day(12), 2)
    assert (row["severity"], row["peak_severity"], row["value_at_open"], row["peak_value"]) == ("P2", "P2", 0.21, 0.22)
    quiet = _on(14)[first]
    assert quiet["status"] == "open" and quiet["resolved_day"] is None and quiet["value_now"] == 0.19  # no alert on 14
    done = _on(15)[first]
    assert (done["status"], done["resolved_day"], done["days_open"]) == ("resolved", day(15), 5)
    assert first not in _on(16)


def test_a_gap_shorter_than_the_resolve_window_keeps_it_open_and_p1_escalates():
    second = "2026-03-20:COST_TO_MRR:C1"
    assert _on(22)[second]["status"] == "open"  # quiet 21, 22
    row = _on(24)[second]
    assert row["severity"] == "P1" and row["peak_severity"] == "P1" and row["value_at_open"] == 0.21 and row["peak_value"] == 0.26
    assert _on(26)[second]["status"] == "open" and _on(27)[second]["status"] == "resolved"


def test_trend_reopens_after_a_resolve_and_segment_has_no_customer():
    assert _on(13)["2026-03-10:TREND:C2"]["status"] == "resolved"
    on14 = _on(14)
    assert on14["2026-03-14:TREND:C2"]["status"] == "open" and "2026-03-10:TREND:C2" not in on14
    assert on14["2026-03-14:TREND:C2"]["value_now"] == 0.05
    segment = on14["2026-03-11:SEGMENT:segment"]
    assert segment["status"] == "resolved" and segment["customer_id"] is None
    assert segment["value_now"] == 1.5  # the median non-paying customer's cost on 14 (only C2)


def test_a_range_equals_day_by_day_and_later_alerts_change_nothing_before_them():
    days = [day(n) for n in range(8, 30)]
    ranged = alert_incidents(HISTORY, _unit(days), days, N)
    singles = pl.concat([alert_incidents(HISTORY.filter(pl.col("day") <= d), _unit([d]), [d], N) for d in days])
    assert ranged.equals(singles)
    assert ranged.height == (15 - 10 + 1) + (27 - 20 + 1) + (13 - 10 + 1) + (17 - 14 + 1) + (14 - 11 + 1)


def test_a_400_day_incident_keeps_its_opened_day():
    start = dt.date(2025, 1, 1)
    history = _history([]).vstack(pl.DataFrame(
        [{"day": start + dt.timedelta(days=i), "alert_type": "P2", "customer_id": "C1", "customer_name": "Name C1",
          "metric": "m", "value": 0.21, "owners": "compute-team"} for i in range(0, 400, 3)],
        schema=_history([]).schema,
    ))  # fmt: skip
    last = start + dt.timedelta(days=399)
    [row] = alert_incidents(history, _unit([last]), [last], N).iter_rows(named=True)
    assert row["incident_id"] == "2025-01-01:COST_TO_MRR:C1" and row["days_open"] == 399 and row["status"] == "open"


def test_what_changed_compares_the_peak_drivers_with_the_last_week():
    d15 = day(15)
    drivers = (
        '[{"service": "Amazon EC2", "owner": "compute-team", "cost_7d": 70.0},'
        ' {"service": "Amazon S3", "owner": "storage-team", "cost_7d": 7.0}]'
    )
    history = HISTORY.with_columns(
        pl.when((pl.col("customer_id") == "C1") & (pl.col("day") == day(11))).then(pl.lit(drivers)).alias("drivers")
    )  # day 11 is the peak (22%) of the first C1 incident
    costs = pl.DataFrame(
        [{"day": day(n), "customer_id": "C1", "service_name": s, "allocated_cost": c}
         for n in range(1, 16) for s, c in (("Amazon EC2", 6.0), ("Amazon S3", 1.0))],
    )  # fmt: skip
    out = alert_incidents(history, _unit([d15]), [d15], N, costs, OwnersConfig(services={"Amazon EC2": "compute-team"}))
    row = out.filter(pl.col("incident_id") == "2026-03-10:COST_TO_MRR:C1").row(0, named=True)
    # EC2: 7 x 6 = 42 in the last 7 days against 70 in the week of the peak; S3 did not fall (7 against 7).
    assert row["what_changed"] == "Amazon EC2 \u221240% against the week of the peak (compute-team)"
