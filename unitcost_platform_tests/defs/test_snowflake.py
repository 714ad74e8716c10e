"""The production warehouse path (UNITCOST_ENV=prod: Snowflake) against fakesnow.

fakesnow intercepts `snowflake.connector.connect` and `write_pandas` (the paths the IO manager
uses), so these tests run the production code; the frames read back must equal the ones written,
names and types, and the whole pipeline must give the same tables as on DuckDB.
"""

import datetime as dt
import io

import dagster as dg
import fakesnow
import polars as pl
import pytest
import snowflake.connector
from polars.testing import assert_frame_equal

from unitcost_platform.definitions import build_definitions
from unitcost_platform.defs.rollup import ROLLUP_KEY
from unitcost_platform.defs.snowflake_io import UnitcostSnowflakeIOManager, restore
from unitcost_platform.settings import Settings
from unitcost_platform.transforms.customer_cost import CUSTOMER_SERVICE_ROLLUP
from unitcost_platform.transforms.unit_cost import UNIT_COST_SCHEMA
from unitcost_platform_tests.defs.test_io_manager import (
    BY_DAY_ASKS,
    BY_DAY_ROLLUP_EXPECTED,
    BY_KEY_EXPECTED,
    WINDOWS_EXPECTED,
    _check_read_by_day,
    _explained_by_key,
    _jan,
    _read_by_day,
    _summed_over_windows,
)
from unitcost_platform_tests.helpers import selected_rows_assets
from unitcost_platform_tests.saas import DAYS, START, TABLES, run_range, sorted_table

SNOWFLAKE_ENV = {
    "SNOWFLAKE_ACCOUNT": "acme-test", "SNOWFLAKE_USER": "unitcost", "SNOWFLAKE_PASSWORD": "not-a-real-password",
    "SNOWFLAKE_DATABASE": "ANALYTICS", "SNOWFLAKE_WAREHOUSE": "TRANSFORMING",
}  # fmt: skip


@pytest.fixture
def snowflake_env(monkeypatch):
    for name, value in SNOWFLAKE_ENV.items():
        monkeypatch.setenv(name, value)
    with fakesnow.patch():
        yield


def read_snowflake(table: str) -> pl.DataFrame:
    """A table as an analyst sees it: unquoted (upper-case) identifiers."""
    con = snowflake.connector.connect(account="acme-test", user="x", password="y", database="ANALYTICS")
    frame = pl.from_pandas(con.cursor().execute(f"select * from ANALYTICS.UNITCOST.{table}").fetch_pandas_all())
    con.close()
    return frame


def _io_assets(produce):
    partitions = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-10")

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "day"}, name="unit_cost")
    def unit_cost(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return produce(context.partition_key)

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "day"})
    def reader(context: dg.AssetExecutionContext, unit_cost: pl.DataFrame) -> pl.DataFrame:
        context.add_output_metadata({"read": unit_cost.write_json()})
        return unit_cost.head(0)

    return [unit_cost, reader]


def _unit_cost_frame(day: str, n: int, total: float = 1.25) -> pl.DataFrame:
    d = dt.date.fromisoformat(day)
    rows = [{c: None for c in UNIT_COST_SCHEMA} | {"day": d, "customer_id": f"C{i}", "tier": "smb", "is_paying": True,
             "mrr": 100.0, "tenant_count": 1, "total_cost": total, "history_days": 3, "is_provisional": False}
            for i in range(n)]  # fmt: skip
    return pl.DataFrame(rows, schema=UNIT_COST_SCHEMA)


def _io() -> dict:
    return {"io_manager": UnitcostSnowflakeIOManager(
        account="acme-test", user="unitcost", password="x", database="ANALYTICS", warehouse="W", schema="unitcost")}  # fmt: skip


def test_round_trip_keeps_names_and_types(snowflake_env):
    result = dg.materialize(_io_assets(lambda k: _unit_cost_frame(k, 3)), partition_key="2026-03-05", resources=_io())
    assert result.success
    read = pl.read_json(io.StringIO(result.asset_materializations_for_node("reader")[0].metadata["read"].value), schema=UNIT_COST_SCHEMA)
    assert_frame_equal(read, _unit_cost_frame("2026-03-05", 3))
    stored = read_snowflake("unit_cost")
    assert "CUSTOMER_ID" in stored.columns and "TOTAL_COST" in stored.columns  # plain identifiers for analysts


def test_rematerializing_replaces_the_day_and_empty_days_are_written(snowflake_env):
    for key, n in (("2026-03-05", 3), ("2026-03-06", 2)):
        dg.materialize(_io_assets(lambda k, n=n: _unit_cost_frame(k, n)), partition_key=key, resources=_io(), selection=["unit_cost"])
    dg.materialize(_io_assets(lambda k: _unit_cost_frame(k, 1, total=9.0)), partition_key="2026-03-05", resources=_io(), selection=["unit_cost"])
    dg.materialize(_io_assets(lambda k: _unit_cost_frame(k, 0)), partition_key="2026-03-07", resources=_io(), selection=["unit_cost"])
    stored = read_snowflake("unit_cost").sort("DAY", "CUSTOMER_ID")
    assert stored.group_by("DAY").len().sort("DAY").rows() == [(dt.date(2026, 3, 5), 1), (dt.date(2026, 3, 6), 2)]
    assert stored.filter(pl.col("DAY") == dt.date(2026, 3, 5))["TOTAL_COST"].to_list() == [9.0]


def test_a_failed_write_keeps_the_previous_day(snowflake_env):
    dg.materialize(_io_assets(lambda k: _unit_cost_frame(k, 2)), partition_key="2026-03-05", resources=_io(), selection=["unit_cost"])

    def broken(key):  # a column Snowflake cannot take as a NUMBER: the insert fails after the delete
        return _unit_cost_frame(key, 1).with_columns(pl.lit("many").alias("tenant_count"))

    result = dg.materialize(_io_assets(broken), partition_key="2026-03-05", resources=_io(), selection=["unit_cost"], raise_on_error=False)
    assert not result.success
    assert read_snowflake("unit_cost").height == 2


def test_pipeline_on_snowflake_equals_duckdb(snowflake_env, small_saas, make_settings):
    local = make_settings(small_saas)
    run_range(local, DAYS[0], DAYS[-1])
    prod = Settings.from_env({
        "UNITCOST_ENV": "prod", "UNITCOST_DATA_DIR": str(small_saas), "UNITCOST_CONFIG": str(small_saas / "unitcost.yaml"),
        "UNITCOST_START_DATE": START.isoformat(),
    })  # fmt: skip
    defs = build_definitions(prod)
    node = defs.resolve_asset_graph().get(dg.AssetKey("unit_cost"))
    assert node.kinds >= {"snowflake", "polars"}
    job = defs.resolve_job_def("unit_cost_daily")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(),
        tags={"dagster/asset_partition_range_start": DAYS[0].isoformat(), "dagster/asset_partition_range_end": DAYS[-1].isoformat()},
    )  # fmt: skip
    assert result.success
    for table in TABLES:
        duck = sorted_table(local, table)
        snow = read_snowflake(table)
        assert [c.upper() for c in duck.columns] == snow.columns, table
        restored = restore(snow, table)
        assert_frame_equal(restored.sort(restored.columns, nulls_last=True), duck, rel_tol=1e-12, abs_tol=1e-12)
    # A daily run of the last day computes service_unit_cost and the alerts' drivers in the warehouse
    # (SERVICE_MONTH_QUERY joined to customer_dimension's table, ALERT_DRIVERS_QUERY to unit_cost's),
    # and unit_cost from its windows' sums: the same rows as the range run.
    tables = ["service_unit_cost", "cost_alerts", "unit_cost"]
    before = {t: restore(read_snowflake(t), t) for t in tables}
    instance = dg.DagsterInstance.ephemeral()
    daily = job.execute_in_process(
        instance=instance, partition_key=DAYS[-1].isoformat(), asset_selection=[dg.AssetKey(t) for t in tables],
    )  # fmt: skip
    assert daily.success
    messages = [entry.user_message for entry in instance.all_logs(daily.run_id)]
    for query in ("service_month", "alert_drivers"):
        assert [m for m in messages if f"reduced by {query}" in m and "rows of allocated_cost" in m], messages
    unit_reads = [e.user_message for e in instance.all_logs(daily.run_id) if e.step_key == "unit_cost"]
    assert len([m for m in unit_reads if "rows of allocated_cost" in m and "window(s)" in m]) == 2, unit_reads
    assert before["cost_alerts"].filter(pl.col("day") == DAYS[-1]).height > 0
    for table in tables:
        after = restore(read_snowflake(table), table)
        keys = {"service_unit_cost": ["day", "service_name"], "cost_alerts": ["day", "alert_id"]}.get(table, ["day", "customer_id"])
        assert_frame_equal(after.sort(keys), before[table].sort(keys), rel_tol=1e-9, abs_tol=1e-9)

def test_a_rollup_read_by_key_returns_only_the_asked_keys_on_snowflake(snowflake_env):
    """The same rows as on DuckDB (test_io_manager): Snowflake reads a backslash in a string literal
    as an escape, so the customer ids are spelled for Snowflake."""
    found, none = _explained_by_key(_io(), [["o'neil", "c:\\tenants", "nobody"], []])
    assert_frame_equal(found, BY_KEY_EXPECTED)
    assert none.is_empty() and none.columns == BY_KEY_EXPECTED.columns


def test_a_rollup_summed_over_windows_on_snowflake(snowflake_env):
    """The same window sums as on DuckDB (test_io_manager), read through the Snowflake IO manager: the
    end day's sum comes back under its own name and type, also when no window reads a row."""
    summed, none = _summed_over_windows(_io())
    assert_frame_equal(restore(summed, "allocated_cost").select(WINDOWS_EXPECTED.columns), WINDOWS_EXPECTED)
    assert none.is_empty() and none.columns == WINDOWS_EXPECTED.columns


def test_an_input_read_by_day_on_snowflake(snowflake_env):
    """The same days as on DuckDB (test_io_manager), rows and rollup, read through the Snowflake IO manager."""
    received, logged = _read_by_day(_io(), {"columns": ["day", "customer_id", "allocated_cost"]}, BY_DAY_ASKS)
    _check_read_by_day([restore(frame, "allocated_cost") for frame in received], logged)
    [summed], _ = _read_by_day(_io(), {ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP}, [_jan(2, 9)])
    summed = restore(summed, "allocated_cost").select(BY_DAY_ROLLUP_EXPECTED.columns)
    assert_frame_equal(summed.sort("day", "customer_id", "service_name"), BY_DAY_ROLLUP_EXPECTED)


def test_rows_computed_by_snowflake_replace_their_days_atomically(snowflake_env):
    partitions = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-10")

    def named(day: str, n: int, cost: float) -> pl.DataFrame:
        return pl.DataFrame({"day": [dt.date.fromisoformat(day)] * n, "name": [f"r{i}" for i in range(n)], "cost": [cost] * n})

    assets, summaries = selected_rows_assets(partitions, lambda k: named(k, 3, 1.5))
    assert dg.materialize(assets, partition_key="2026-03-05", resources=_io()).success
    assert dg.materialize(assets, partition_key="2026-03-06", resources=_io()).success
    # Read back with the summary schema's names and types, though Snowflake answers in upper case.
    assert summaries[0].rows() == [(dt.date(2026, 3, 5), 3, 9.0)]
    assert summaries[0].schema == pl.Schema({"day": pl.Date, "row_count": pl.Int64, "cost": pl.Float64})
    assets, _ = selected_rows_assets(partitions, lambda k: named(k, 1, 5.0))
    assert dg.materialize(assets, partition_key="2026-03-05", resources=_io()).success
    stored = read_snowflake("doubled")
    assert stored.group_by("DAY").agg(pl.col("COST").sum()).sort("DAY").rows() == [
        (dt.date(2026, 3, 5), 10.0), (dt.date(2026, 3, 6), 9.0),
    ]  # fmt: skip
    assets, _ = selected_rows_assets(partitions, lambda k: named(k, 1, 5.0), broken=True)
    result = dg.materialize(assets, partition_key="2026-03-05", resources=_io(), selection=["doubled"], raise_on_error=False)
    assert not result.success
    assert read_snowflake("doubled").filter(pl.col("DAY") == dt.date(2026, 3, 5))["COST"].to_list() == [10.0]
