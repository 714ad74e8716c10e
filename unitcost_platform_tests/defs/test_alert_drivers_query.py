"""A daily run's alert drivers chosen by the warehouse (ALERT_DRIVERS_QUERY) against the Polars path.

The Polars path reads every customer's two 7-day sums per service and ranks them; from the warehouse a
daily run reads, per customer, only the services that can be among its drivers (its costliest and
its most risen), and the SEGMENT alert's sums per service over the day's non-paying customers. Both
run here on the same rows, the warehouse path with the statements the IO managers build (the rollup
over `driver_windows`, then the follow-up query, reading unit_cost's table), on DuckDB and on
Snowflake (fakesnow): the alerts must be the same, drivers included, and so must every customer's
drivers ranked both ways.
"""

import datetime as dt
import json
import random

import polars as pl
import pytest
from dagster._core.storage.db_io_manager import TableSlice
from polars.testing import assert_frame_equal

from unitcost_platform.config import AlertsConfig, OwnersConfig, UnitcostConfig
from unitcost_platform.defs.rollup import follow_up_of, rollup_statement
from unitcost_platform.transforms.alerts import (
    ALERT_DRIVERS_SCHEMA,
    DriverCandidates,
    _drivers,
    _service_changes,
    alert_drivers_spec,
    cost_alerts,
    driver_windows,
)
from unitcost_platform.transforms.customer_cost import CUSTOMER_SERVICE_ROLLUP, apply_rollup
from unitcost_platform.transforms.unit_cost import UNIT_COST_SCHEMA
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables

D = dt.date(2026, 3, 20)
OWNERS = OwnersConfig(services={"S00": "compute", "S01": "data"}, default_team="platform")
SERVICES = [f"S{i:02d}" for i in range(12)]
ROLLUP_COLUMNS = {"day": pl.Date, "customer_id": pl.String, "service_name": pl.String,
                  "allocated_cost": pl.Float64, "unallocated_reason": pl.String}  # fmt: skip


def _allocated(seed: int = 9) -> pl.DataFrame:
    """15 days of rows (the first outside both windows) for 80 customers; costs from a few values,
    so many services tie as shown, some negative, some zero; rows on no customer or with a reason.

    The warehouse and Polars add a window's rows in different orders, so a sum lying on a rounding
    boundary of the 4 decimals shown (98.30075) may be shown 98.3007 by one and 98.3008 by the other,
    as between a daily and a range run; the random costs (6 decimals) keep the sums off those
    boundaries, and the half-to-even ranking has its own test below."""
    rng = random.Random(seed)
    rows = []
    for offset in range(15):
        day = D - dt.timedelta(days=offset)
        for c in range(80):
            for service in rng.sample(SERVICES, rng.randrange(1, len(SERVICES))):
                cost = rng.choice([0.0, 1.0, 2.5, -0.5, 0.0625, round(rng.random() * 10, 6)])
                rows.append((day, f"C{c:02d}", service, cost, None))
                if rng.random() < 0.1:  # a second row of the same key
                    rows.append((day, f"C{c:02d}", service, 1.0, None))
        rows.append((day, None, "S03", 5.0, "unknown_tenant"))
        rows.append((day, "C01", "S04", 7.0, "unknown_customer"))
    return pl.DataFrame(rows, orient="row", schema=ROLLUP_COLUMNS)


def _unit(seed: int = 4) -> pl.DataFrame:
    """unit_cost of D: P1, P2 and TREND customers, a third not paying (a SEGMENT alert), some churned."""
    rng = random.Random(seed)
    rows = []
    for c in range(80):
        paying = c % 3 != 0
        rows.append({**{k: None for k in UNIT_COST_SCHEMA},
                     "day": D, "customer_id": f"C{c:02d}", "customer_name": f"Customer {c}", "tier": "smb" if paying else "free",
                     "segment": "s", "is_paying": paying, "status": rng.choice(["active"] * 4 + ["churned"]),
                     "mrr": 1000.0 if paying else 0.0, "total_cost": 1.0 if paying else 5.0, "monthly_run_rate": 100.0,
                     "cost_to_mrr": rng.choice([0.1, 0.22, 0.4, None]) if paying else None,
                     "cost_growth_7d": rng.choice([0.0, 0.6, 2.0]), "mrr_growth_7d": 0.0})  # fmt: skip
    return pl.DataFrame(rows, schema=UNIT_COST_SCHEMA)


def _reader(run, dialect: Dialect, table, top: int):
    """The asset's read: the rollup over `driver_windows`, then the follow-up query (`run(sql)` -> frame)."""
    windows = driver_windows([D])
    spec = alert_drivers_spec(D, top)
    rollup = {**CUSTOMER_SERVICE_ROLLUP, "windows": windows, "then": spec}

    def select(table_slice: TableSlice) -> str:
        return f"select {', '.join(table_slice.columns)} from {table('allocated_cost')}"

    statement = rollup_statement(TableSlice(table="allocated_cost", schema="unitcost"), rollup, select, dialect)
    return lambda: run(follow_up_of(rollup).statement(statement, spec, UnitcostConfig(), table, dialect)).cast(ALERT_DRIVERS_SCHEMA)


def _every_customer_ranked(service_costs, unit: pl.DataFrame, top: int) -> pl.DataFrame:
    """Every customer's drivers, ranked by cost (as P1, P2 and FORECAST are) and by rise (TREND)."""
    customers = unit.select("day", pl.col("customer_id").alias("_key"), "customer_id")
    rows = service_costs.rows if isinstance(service_costs, DriverCandidates) else service_costs
    changes = _service_changes(rows, customers)
    alerts = pl.concat([customers.select("day", "_key", pl.lit(kind).alias("alert_type")) for kind in ("P2", "TREND")])
    return _drivers(changes, alerts, OWNERS, top).sort("_key", "alert_type")


def _same_alerts(every: pl.DataFrame, candidates: DriverCandidates, unit: pl.DataFrame, top: int) -> None:
    cfg = AlertsConfig(max_drivers=top)
    polars = cost_alerts(unit, every, [D], cfg, OWNERS)
    warehouse = cost_alerts(unit, candidates, [D], cfg, OWNERS)
    assert set(polars["alert_type"]) == {"P1", "P2", "TREND", "SEGMENT"}
    assert_frame_equal(warehouse, polars)
    assert_frame_equal(_every_customer_ranked(candidates, unit, top), _every_customer_ranked(every, unit, top))


@pytest.mark.parametrize("top", [1, 3])
def test_duckdb_chooses_the_drivers_polars_ranks(top):
    allocated, unit = _allocated(), _unit()
    every = apply_rollup(allocated, {**CUSTOMER_SERVICE_ROLLUP, "windows": driver_windows([D])})
    run = duckdb_tables({"allocated_cost": allocated, "unit_cost": unit})
    candidates = DriverCandidates(_reader(run, DUCKDB, lambda t: f"unitcost.{t}", top), D)
    _same_alerts(every, candidates, unit, top)
    # Fewer rows than every pair's two sums: at most 2 x top services per customer, and the segment's.
    assert candidates.rows.height < every.height
    assert candidates.rows.filter(pl.col("customer_id") != "__segment__").group_by("customer_id").len()["len"].max() <= 2 * 2 * top


def test_snowflake_chooses_the_drivers_polars_ranks():
    allocated, unit = _allocated(), _unit()
    every = apply_rollup(allocated, {**CUSTOMER_SERVICE_ROLLUP, "windows": driver_windows([D])})
    with fake_snowflake_tables({"allocated_cost": allocated, "unit_cost": unit}) as run:
        candidates = DriverCandidates(_reader(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}", 3), D)
        candidates.rows  # noqa: B018 - read while the fake Snowflake is up
    _same_alerts(every, candidates, unit, 3)


def test_the_driver_chosen_is_ranked_by_the_amount_shown_rounded_half_to_even():
    """One driver (max_drivers 1) of a P1 customer. S1's 7-day cost is 1/32 = 0.03125 (exact in
    binary), shown 0.0312 (half to even); S2's 0.0313 is shown 0.0313 and drives. Rounded half away
    from zero, S1 would show 0.0313 too and win the tie by name."""
    rows = [(D, "C", "S1", 1 / 32, None), (D, "C", "S2", 0.0313, None)]
    allocated = pl.DataFrame(rows, orient="row", schema=ROLLUP_COLUMNS)
    unit = pl.DataFrame([{**{k: None for k in UNIT_COST_SCHEMA}, "day": D, "customer_id": "C", "customer_name": "C",
                          "tier": "smb", "segment": "s", "is_paying": True, "status": "active", "mrr": 1000.0,
                          "total_cost": 1.0, "monthly_run_rate": 400.0, "cost_to_mrr": 0.4, "cost_growth_7d": 0.0,
                          "mrr_growth_7d": 0.0}], schema=UNIT_COST_SCHEMA)  # fmt: skip
    run = duckdb_tables({"allocated_cost": allocated, "unit_cost": unit})
    candidates = DriverCandidates(_reader(run, DUCKDB, lambda t: f"unitcost.{t}", 1), D)
    out = cost_alerts(unit, candidates, [D], AlertsConfig(max_drivers=1), OWNERS)
    assert out["alert_type"].to_list() == ["P1"]
    assert [d["service"] for d in json.loads(out["drivers"][0])] == ["S2"]
