"""alert_incidents reads the alerts that matter, not every alert ever (INCIDENT_ALERTS_QUERY).

The incidents of a day computed from the reduced rows (the alerts from `since` on of the incidents
still alive, each with its incident's state over the whole history) equal those computed from the
whole history, on random histories and every kind of run; the warehouse (DuckDB, Snowflake through
fakesnow) returns the rows the Polars twin returns; a 400-day incident keeps its opening and peak
from alerts that stay in the warehouse."""

import datetime as dt
import json
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.defs.rollup import queries
from unitcost_platform.transforms.alerts import COST_ALERTS_SCHEMA
from unitcost_platform.transforms.incidents import (
    INCIDENT_ALERTS_SCHEMA,
    alert_incidents,
    incident_alerts,
)
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables

N = 3  # alerts.resolve_after_days
START = dt.date(2026, 1, 1)
CONFIG = UnitcostConfig.model_validate({"alerts": {"resolve_after_days": N}})


def day(n: int) -> dt.date:
    return START + dt.timedelta(days=n - 1)


def random_history(days: int = 60, seed: int = 3) -> pl.DataFrame:
    """Alerts of 8 customers and the non-paying segment: streaks with gaps of 1 to 6 days (some keep
    an incident open, some resolve it), P2 escalating to P1 and back, TREND and ANOMALY; values on a
    coarse grid (peaks tie), drivers missing on a third of the alerts."""
    rng = random.Random(seed)
    rows = []
    for key in [f"C{i}" for i in range(8)] + [None]:
        for family in (["SEGMENT"] if key is None else ["COST_TO_MRR", "TREND", "ANOMALY"]):
            d = rng.randrange(1, 10)
            while d <= days:
                for _ in range(rng.randrange(1, 12)):  # a streak, with the odd quiet day inside
                    if d > days:
                        break
                    if rng.random() < 0.8:
                        kind = rng.choice(["P1", "P2", "P2"]) if family == "COST_TO_MRR" else family
                        drivers = None if rng.random() < 0.33 else json.dumps([{"service": rng.choice("ABC"), "cost_7d": rng.randrange(1, 9)}])
                        rows.append({
                            "day": day(d), "alert_id": f"{day(d)}:{kind}:{key}", "alert_type": kind, "customer_id": key,
                            "customer_name": key and f"Name {key}", "metric": "m", "value": rng.randrange(1, 6) / 10,
                            "drivers": drivers, "owners": rng.choice(["compute-team", "data-team,compute-team"]),
                        })  # fmt: skip
                    d += 1
                d += rng.randrange(1, 7)  # a gap: up to N keeps the incident open
    return alerts_table(rows)


def alerts_table(rows: list[dict]) -> pl.DataFrame:
    """cost_alerts rows: the columns not given are null."""
    frame = pl.DataFrame(rows, schema={c: COST_ALERTS_SCHEMA[c] for c in rows[0]})
    return frame.with_columns(pl.lit(None, dtype=t).alias(c) for c, t in COST_ALERTS_SCHEMA.items() if c not in frame.columns)


def unit_rows(days: list[dt.date]) -> pl.DataFrame:
    return pl.DataFrame(
        [{"day": d, "customer_id": f"C{i}", "cost_to_mrr": 0.1 * i, "cost_growth_7d": 0.01 * i, "status": "active",
          "is_paying": i % 2 == 0, "total_cost": float(i)} for d in days for i in range(8)]
    )  # fmt: skip


HISTORY = random_history()

# Runs: single days early, mid-streak and late, and ranges (a backfill's chunk), with later alerts in the table.
RUNS = [[day(n)] for n in (2, 12, 25, 31, 44, 60)] + [[day(n) for n in range(a, b + 1)] for a, b in ((1, 7), (20, 34), (50, 60))]


@pytest.mark.parametrize("days", RUNS, ids=lambda ds: f"{ds[0]}..{ds[-1]}")
def test_incidents_from_the_alerts_that_matter_equal_incidents_from_every_alert(days):
    since = min(days) - dt.timedelta(days=N)
    reduced = incident_alerts(HISTORY, since, max(days), N)
    whole = alert_incidents(HISTORY, unit_rows(days), days, N)
    assert_frame_equal(alert_incidents(reduced, unit_rows(days), days, N), whole)
    assert whole.height > 0
    assert reduced.height < HISTORY.filter(pl.col("day") <= max(days)).height or max(days) < day(10)
    assert reduced["day"].min() is None or reduced["day"].min() >= since


def test_an_incident_open_for_400_days_keeps_its_opening_and_peak_from_alerts_left_behind():
    rows = [{"day": day(n), "alert_id": f"a{n}", "alert_type": "P1" if n == 40 else "P2", "customer_id": "C1",
             "customer_name": "Acme", "metric": "cost_to_mrr", "value": 0.9 if n == 40 else 0.21 + n / 1024,
             "drivers": json.dumps([{"service": "EC2", "cost_7d": 7}]) if n == 40 else None, "owners": "compute-team"}
            for n in range(1, 401)]  # fmt: skip
    history = alerts_table(rows)
    reduced = incident_alerts(history, day(400) - dt.timedelta(days=N), day(400), N)
    assert reduced["day"].to_list() == [day(n) for n in range(397, 401)]  # 4 of the 400 alerts leave the warehouse
    last = reduced.row(-1, named=True)
    assert (last["opened_day"], last["value_at_open"], last["peak_value"], last["_peak_rank"]) == (day(1), 0.21 + 1 / 1024, 0.9, 2)
    assert json.loads(last["_peak_drivers"]) == [{"service": "EC2", "cost_7d": 7}]
    incident = alert_incidents(reduced, unit_rows([day(400)]), [day(400)], N).row(0, named=True)
    assert (incident["incident_id"], incident["days_open"], incident["peak_severity"]) == ("2026-01-01:COST_TO_MRR:C1", 399, "P1")


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_the_warehouse_returns_the_rows_and_state_of_the_polars_twin(engine):
    query = queries()["incident_alerts"]
    assert query.parameters == ("since", "through")
    runs = [(day(28), day(31)), (day(1), day(60)), (day(57), day(60)), (day(70), day(75))]
    rows = f"select {', '.join(query.columns)} from unitcost.cost_alerts"
    statements = {dialect: [query.statement(rows, CONFIG, dialect, since=a.isoformat(), through=b.isoformat()) for a, b in runs]
                  for dialect in (DUCKDB, SNOWFLAKE)}  # fmt: skip
    if engine == "duckdb":
        run = duckdb_tables({"cost_alerts": HISTORY})
        got = [run(sql) for sql in statements[DUCKDB]]
    else:
        with fake_snowflake_tables({"cost_alerts": HISTORY}) as run:
            got = [run(sql) for sql in statements[SNOWFLAKE]]
    for frame, (since, through) in zip(got, runs, strict=True):
        frame = frame.select(list(INCIDENT_ALERTS_SCHEMA)).cast(INCIDENT_ALERTS_SCHEMA).sort("alert_id")
        expected = incident_alerts(HISTORY, since, through, N).sort("alert_id")
        assert_frame_equal(frame, expected)
        assert frame["_peak_drivers"].null_count() < frame.height or frame.is_empty()
    assert got[-1].is_empty() and got[1].height == HISTORY.height
