"""The DuckDB IO manager: empty days, duckdb 2.x reads, atomic partition replacement."""

import datetime as dt

import dagster as dg
import duckdb
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.defs import rollup
from unitcost_platform.defs.io_managers import UnitcostDuckDBIOManager, _memory_limit
from unitcost_platform.defs.partitions import consecutive_runs, days_text
from unitcost_platform.defs.rollup import (
    BY_DAY,
    BY_KEY,
    MAX_KEYS,
    ROLLUP_KEY,
    ROWS_LOADED,
    ByDay,
    RollupByKey,
    read_by_day,
    rollup_by_key,
)
from unitcost_platform.transforms.allocation import ALLOCATED_COST_SCHEMA
from unitcost_platform.transforms.customer_cost import (
    CUSTOMER_SERVICE_ROLLUP,
    apply_rollup,
    window_spec,
)
from unitcost_platform.transforms.service_unit_cost import ON_END, SERVICE_CUSTOMER_ROLLUP
from unitcost_platform_tests.helpers import selected_rows_assets

PARTITIONS = dg.DailyPartitionsDefinition(start_date="2026-01-01", end_date="2026-01-10")
SCHEMA = {"day": pl.Date, "name": pl.String, "cost": pl.Float64, "at": pl.Datetime("us"), "ok": pl.Boolean}


def _frame(day: str, n: int, cost: float = 1.5) -> pl.DataFrame:
    d = dt.date.fromisoformat(day)
    return pl.DataFrame(
        {"day": [d] * n, "name": [f"r{i}" for i in range(n)], "cost": [cost] * n,
         "at": [dt.datetime.combine(d, dt.time(3))] * n, "ok": [True] * n},
        schema=SCHEMA,
    )  # fmt: skip


def _assets(produce):
    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def upstream(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return produce(context.partition_key)

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def downstream(context: dg.AssetExecutionContext, upstream: pl.DataFrame) -> pl.DataFrame:
        context.add_output_metadata({"upstream_columns": ",".join(upstream.columns)})
        return upstream.with_columns(pl.col("cost") * 2)

    return [upstream, downstream]


def _io(path) -> dict:
    return {"io_manager": UnitcostDuckDBIOManager(database=str(path))}


def _table(path, name: str) -> pl.DataFrame:
    with duckdb.connect(str(path), read_only=True) as con:
        return pl.from_arrow(con.sql(f"select * from unitcost.{name} order by day, name").to_arrow_table())


def test_round_trip_keeps_names_and_types(tmp_path):
    db = tmp_path / "w.duckdb"
    assert dg.materialize(_assets(lambda key: _frame(key, 3)), partition_key="2026-01-02", resources=_io(db)).success
    up = _table(db, "upstream")
    assert up.schema == pl.Schema(SCHEMA)
    assert_frame_equal(up, _frame("2026-01-02", 3))
    assert _table(db, "downstream")["cost"].to_list() == [3.0, 3.0, 3.0]


def test_an_empty_frame_still_creates_the_table_so_the_next_asset_reads_it(tmp_path):
    db = tmp_path / "w.duckdb"
    result = dg.materialize(_assets(lambda key: _frame(key, 0)), partition_key="2026-01-02", resources=_io(db))
    assert result.success
    assert _table(db, "upstream").schema == pl.Schema(SCHEMA)
    assert _table(db, "downstream").is_empty()
    md = result.asset_materializations_for_node("unitcost__downstream")[0].metadata
    assert md["upstream_columns"].value == ",".join(SCHEMA)  # columns even with no rows


def test_replacing_a_partition_touches_only_that_partition(tmp_path):
    db = tmp_path / "w.duckdb"
    for key, n in (("2026-01-02", 2), ("2026-01-03", 3)):
        dg.materialize(_assets(lambda k, n=n: _frame(k, n)), partition_key=key, resources=_io(db))
    dg.materialize(_assets(lambda k: _frame(k, 1, cost=9.0)), partition_key="2026-01-02", resources=_io(db))
    up = _table(db, "upstream")
    assert up.group_by("day").len().sort("day").rows() == [(dt.date(2026, 1, 2), 1), (dt.date(2026, 1, 3), 3)]


def test_a_failed_write_rolls_back_and_keeps_the_old_partition(tmp_path):
    db = tmp_path / "w.duckdb"
    dg.materialize(_assets(lambda k: _frame(k, 2)), partition_key="2026-01-02", resources=_io(db))

    def incompatible(key):  # a frame whose column cannot go into the table: the insert fails
        return _frame(key, 1).with_columns(pl.lit("not a date").alias("day"))

    result = dg.materialize(
        _assets(incompatible), partition_key="2026-01-02", resources=_io(db), raise_on_error=False,
        selection=["unitcost/upstream"],
    )  # fmt: skip
    assert not result.success
    assert _table(db, "upstream").height == 2  # the delete was rolled back with the failed insert


def test_reading_a_table_that_was_never_written_says_what_to_do(tmp_path):
    db = tmp_path / "w.duckdb"
    duckdb.connect(str(db)).close()
    assets = _assets(lambda k: _frame(k, 1))
    result = dg.materialize(
        assets, partition_key="2026-01-02", resources=_io(db), raise_on_error=False, selection=["unitcost/downstream"]
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "table unitcost.upstream does not exist" in str(failure.step_failure_data.error)
    assert "materialize the asset upstream" in str(failure.step_failure_data.error)


def test_a_new_column_is_added_to_an_existing_table(tmp_path):
    db = tmp_path / "w.duckdb"
    dg.materialize(_assets(lambda k: _frame(k, 2)), partition_key="2026-01-02", resources=_io(db), selection=["unitcost/upstream"])
    wider = lambda k: _frame(k, 1).with_columns(pl.lit("inv-1").alias("InvoiceId"))  # noqa: E731
    dg.materialize(_assets(wider), partition_key="2026-01-03", resources=_io(db), selection=["unitcost/upstream"])
    up = _table(db, "upstream")
    assert up.columns[-1] == "InvoiceId"
    assert up.select("day", "InvoiceId").rows() == [
        (dt.date(2026, 1, 2), None), (dt.date(2026, 1, 2), None), (dt.date(2026, 1, 3), "inv-1"),
    ]  # fmt: skip


def test_an_input_with_a_rollup_reads_sums_from_the_warehouse(tmp_path):
    """Trailing windows ask for their input summed to a coarser grain: the sums are the rows'."""
    db = tmp_path / "w.duckdb"
    received: list[pl.DataFrame] = []

    def costs(key: str) -> pl.DataFrame:
        day = dt.date.fromisoformat(key)
        return pl.DataFrame(
            {"day": [day] * 4, "name": ["a", "a", "b", None], "cost": [1.25, 2.5, 4.0, 8.0],
             "at": [dt.datetime(2026, 1, 1)] * 4, "ok": [True, False, True, True]},
            schema=SCHEMA,
        )  # fmt: skip

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def upstream(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return costs(context.partition_key)

    @dg.asset(
        partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"],
        ins={"upstream": dg.AssetIn(
            key=dg.AssetKey(["unitcost", "upstream"]),
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-2),
            metadata={"rollup": {"by": ["day", "name"], "sum": ["cost"]}},
        )},
    )  # fmt: skip
    def downstream(context: dg.AssetExecutionContext, upstream: pl.DataFrame) -> pl.DataFrame:
        received.append(upstream)
        return costs(context.partition_key)

    # Conditional sums: one row per day, the cost of `a` and of everything else (a null name is neither).
    split = {"by": ["day"], "sum_where": {"a_cost": ["cost", "name", "=", "a"], "other_cost": ["cost", "name", "!=", "a"]}}

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"upstream": dg.AssetIn(
            key=dg.AssetKey(["unitcost", "upstream"]),
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-1), metadata={"rollup": split},
        )},
    )  # fmt: skip
    def by_day(upstream: pl.DataFrame) -> None:
        received.append(upstream)

    for day in ("2026-01-02", "2026-01-03", "2026-01-04"):
        assert dg.materialize([upstream], partition_key=day, resources=_io(db)).success
    assert dg.materialize([upstream, downstream], partition_key="2026-01-04", resources=_io(db),
                          selection=[downstream]).success  # fmt: skip
    rows = received[0].sort("day", "name", nulls_last=True)
    assert rows.columns == ["day", "name", "cost"]
    expected = pl.DataFrame(
        {"day": [dt.date(2026, 1, d) for d in (2, 2, 2, 3, 3, 3, 4, 4, 4)],
         "name": ["a", "b", None] * 3, "cost": [3.75, 4.0, 8.0] * 3},
        schema={"day": pl.Date, "name": pl.String, "cost": pl.Float64},
    )  # fmt: skip
    assert_frame_equal(rows, expected)
    assert dg.materialize([upstream, by_day], partition_key="2026-01-04", resources=_io(db),
                          selection=[by_day]).success  # fmt: skip
    assert_frame_equal(
        received[1].sort("day"),
        pl.DataFrame({"day": [dt.date(2026, 1, 3), dt.date(2026, 1, 4)], "a_cost": [3.75, 3.75], "other_cost": [4.0, 4.0]}),
    )


def test_a_rollup_can_count_the_rows_it_sums(tmp_path):
    """product_cost counts line items in the warehouse: `count` adds count(*) per group, an Int64."""
    db = tmp_path / "w.duckdb"
    received: list[pl.DataFrame] = []
    rollup = {"by": ["day", "name"], "sum": ["cost"], "count": "rows"}

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def upstream(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = dt.date.fromisoformat(context.partition_key)
        return pl.DataFrame(
            {"day": [day] * 4, "name": ["a", "a", "b", None], "cost": [1.25, 2.5, 4.0, 8.0],
             "at": [dt.datetime(2026, 1, 1)] * 4, "ok": [True, False, True, True]},
            schema=SCHEMA,
        )  # fmt: skip

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"upstream": dg.AssetIn(key=dg.AssetKey(["unitcost", "upstream"]), metadata={"rollup": rollup})},
    )  # fmt: skip
    def counted(upstream: pl.DataFrame) -> None:
        received.append(upstream)

    assert dg.materialize([upstream], partition_key="2026-01-02", resources=_io(db)).success
    assert dg.materialize([upstream, counted], partition_key="2026-01-02", resources=_io(db),
                          selection=[counted]).success  # fmt: skip
    rows = received[0].sort("name", nulls_last=True)
    assert rows.schema == pl.Schema({"day": pl.Date, "name": pl.String, "cost": pl.Float64, "rows": pl.Int64})
    # a: 1.25 + 2.5 over two rows; b: 4.0, one row; the null name is its own group of one.
    assert rows.select("name", "cost", "rows").rows() == [("a", 3.75, 2), ("b", 4.0, 1), (None, 8.0, 1)]


def _explained_by_key(io: dict, asked: list[list[str]]) -> list[pl.DataFrame]:
    """allocated_cost rows of two days (customer ids with a quote and a backslash among them), read
    through `rollup_by_key` at CUSTOMER_SERVICE_ROLLUP for each list of customers in `asked`."""
    reads = [lambda reader, customers=customers: reader.rows("customer_id", customers) for customers in asked]
    received = _read_through_rollup(io, CUSTOMER_SERVICE_ROLLUP, reads, ["2026-01-02", "2026-01-03"], lambda day: 1.0)
    return [frame.sort("day", "customer_id", "service_name") for frame in received]


def _allocated_rows(day: dt.date, scale: float) -> pl.DataFrame:
    rows = [  # customer, service, cost, unallocated reason
        ("a", "EC2", 1.25, None), ("o'neil", "EC2", 2.5, None), ("o'neil", "EC2", 4.0, None),
        ("o'neil", "S3", 0.5, None), ("c:\\tenants", "RDS", 8.0, None), (None, "EC2", 16.0, "untagged"),
        ("c:\\tenants", "RDS", 32.0, "no_usage_driver"),
    ]  # fmt: skip
    return pl.DataFrame(
        [{"day": day, "customer_id": c, "service_name": s, "allocated_cost": v * scale, "unallocated_reason": r}
         for c, s, v, r in rows],
        schema={k: ALLOCATED_COST_SCHEMA[k] for k in ("day", "customer_id", "service_name", "allocated_cost", "unallocated_reason")},
    )  # fmt: skip


def _read_through_rollup(io: dict, spec: dict, reads: list, days: list[str], scale) -> list[pl.DataFrame]:
    """allocated_cost rows of `days` (each day's costs times `scale(day)`), read through `rollup_by_key`
    at `spec` by each of `reads`, on the last day's run (whose window is `days`), the upstream not in it."""
    received: list[pl.DataFrame] = []

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def allocated_cost(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = dt.date.fromisoformat(context.partition_key)
        return _allocated_rows(day, scale(day))

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"allocated_cost": dg.AssetIn(
            key=dg.AssetKey(["unitcost", "allocated_cost"]), input_manager_key=BY_KEY,
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=1 - len(days)),
            metadata={ROLLUP_KEY: spec},
        )},
    )  # fmt: skip
    def explainer(allocated_cost: RollupByKey) -> None:
        received.extend(read(allocated_cost) for read in reads)

    resources = {**io, BY_KEY: rollup_by_key}
    for day in days:
        assert dg.materialize([allocated_cost], partition_key=day, resources=resources).success
    # The upstream is not part of this run, as when one asset is materialized alone.
    assert dg.materialize([allocated_cost, explainer], partition_key=days[-1], resources=resources,
                          selection=[explainer]).success  # fmt: skip
    return received


# The asked customers' service costs on both days of the window; allocated money only.
BY_KEY_EXPECTED = pl.DataFrame(
    [(dt.date(2026, 1, d), c, s, v) for d in (2, 3) for c, s, v in [("c:\\tenants", "RDS", 8.0), ("o'neil", "EC2", 6.5), ("o'neil", "S3", 0.5)]],
    schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String, "allocated_cost": pl.Float64}, orient="row",
)  # fmt: skip


@pytest.mark.parametrize("max_keys", [MAX_KEYS, 2])
def test_a_rollup_read_by_key_returns_only_the_asked_keys(tmp_path, monkeypatch, max_keys):
    """cost_alerts, cost_anomalies and alert_incidents read the service costs of the customers they
    flagged only: the rows of the asked customers over the input's window, summed; ids that need
    quoting are found, an id with no rows adds none, no ids read an empty frame of the same columns,
    and more ids than `max_keys` (the whole rollup is read, then filtered) return the same rows."""
    monkeypatch.setattr(rollup, "MAX_KEYS", max_keys)
    found, none = _explained_by_key(_io(tmp_path / "w.duckdb"), [["o'neil", "c:\\tenants", "nobody"], []])
    assert_frame_equal(found, BY_KEY_EXPECTED)
    assert none.is_empty() and none.schema == BY_KEY_EXPECTED.schema


def _read_by_day(io: dict, metadata: dict, asks: list[list[dt.date]]) -> tuple[list[pl.DataFrame], list[str]]:
    """allocated_cost of 01-02 .. 01-09 (each day's costs times its day of the month), read through
    `read_by_day` with `metadata` for each list of days in `asks`, on 01-09's run (an 8-day window,
    the upstream not in the run); and the run's "warehouse -> Python" log lines."""
    days = [dt.date(2026, 1, d) for d in range(2, 10)]
    received: list[pl.DataFrame] = []

    @dg.asset(partitions_def=PARTITIONS, metadata={"partition_expr": "day"}, key_prefix=["unitcost"])
    def allocated_cost(context: dg.AssetExecutionContext) -> pl.DataFrame:
        day = dt.date.fromisoformat(context.partition_key)
        return _allocated_rows(day, float(day.day))

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"allocated_cost": dg.AssetIn(
            key=dg.AssetKey(["unitcost", "allocated_cost"]), input_manager_key=BY_DAY,
            partition_mapping=dg.TimeWindowPartitionMapping(start_offset=-7), metadata=metadata,
        )},
    )  # fmt: skip
    def trend(allocated_cost: ByDay) -> None:
        # An ask is days, or (days, the rollup to read them at).
        received.extend(allocated_cost.days(*asked) if isinstance(asked, tuple) else allocated_cost.days(asked) for asked in asks)

    resources = {**io, BY_DAY: read_by_day}
    for day in days:
        assert dg.materialize([allocated_cost], partition_key=day.isoformat(), resources=resources).success
    instance = dg.DagsterInstance.ephemeral()
    result = dg.materialize([allocated_cost, trend], partition_key=days[-1].isoformat(), resources=resources,
                            selection=[trend], instance=instance)  # fmt: skip
    assert result.success
    logged = [e.user_message for e in instance.all_logs(result.run_id) if ROWS_LOADED in (e.user_message or "")]
    return received, logged


def _jan(*days: int) -> list[dt.date]:
    return [dt.date(2026, 1, d) for d in days]


# The asked days that are in 01-09's window (01-02 .. 01-09): 01-01 and 01-10 are not.
BY_DAY_ASKS = [_jan(9, 2), _jan(1, 3, 4, 9, 10), []]


def _check_read_by_day(received: list[pl.DataFrame], logged: list[str]) -> None:
    """Every row of the asked days in the window and no other: each day's 7 rows, whose costs sum to
    64.25 times its day of the month; nothing for no day."""
    two, three, none = (frame.sort("day", "customer_id", "allocated_cost", nulls_last=True) for frame in received)
    for frame, expected in ((two, _jan(2, 9)), (three, _jan(3, 4, 9))):
        totals = frame.group_by("day").agg(pl.col("allocated_cost").sum(), pl.len()).sort("day")
        assert totals.rows() == [(d, 64.25 * d.day, 7) for d in expected]
        assert frame.columns == ["day", "customer_id", "allocated_cost"]
    assert none.is_empty()
    # One read per run of consecutive days: 01-02; 01-09 | 01-03..01-04; 01-09 | nothing asked.
    assert logged == [
        f"{ROWS_LOADED}: 0 rows of unitcost/allocated_cost (read by day when the asset asks, 8 day(s))",
        *(f"{ROWS_LOADED}: {rows} rows of unitcost/allocated_cost (rows, {days} day(s))"
          for rows, days in [(7, 1), (7, 1), (14, 2), (7, 1), (0, 0)]),
    ]  # fmt: skip


def test_an_input_read_by_day_reads_the_asked_days_of_its_window_only(tmp_path):
    """unit_cost, service_unit_cost, customer_unit_costs and growth_efficiency compare each day with a
    day 7 (or 90) days earlier: they read those days of their window, not the days between."""
    received, logged = _read_by_day(
        _io(tmp_path / "w.duckdb"), {"columns": ["day", "customer_id", "allocated_cost"]}, BY_DAY_ASKS
    )
    _check_read_by_day(received, logged)


def test_days_read_are_named_as_runs_of_consecutive_days():
    assert consecutive_runs(_jan(9, 2, 3, 9)) == [_jan(2, 3), _jan(9)]
    assert days_text(_jan(9, 2)) == "2026-01-02, 2026-01-09"
    assert days_text(_jan(4, 2, 3, 7)) == "2026-01-02..2026-01-04, 2026-01-07"
    assert consecutive_runs([]) == [] and days_text([]) == ""


# CUSTOMER_SERVICE_ROLLUP of 01-02 and 01-09: each customer's service costs, allocated money only.
BY_DAY_ROLLUP_EXPECTED = pl.DataFrame(
    [(dt.date(2026, 1, d), c, s, v * d) for d in (2, 9)
     for c, s, v in [("a", "EC2", 1.25), ("c:\\tenants", "RDS", 8.0), ("o'neil", "EC2", 6.5), ("o'neil", "S3", 0.5)]],
    schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String, "allocated_cost": pl.Float64}, orient="row",
)  # fmt: skip


def test_a_rollup_read_by_day_sums_the_asked_days_only(tmp_path):
    """customer_unit_costs reads tenant_usage's sums per tenant and metric of D and D-7 only."""
    [summed], _ = _read_by_day(_io(tmp_path / "w.duckdb"), {ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP}, [_jan(2, 9)])
    assert_frame_equal(summed.sort("day", "customer_id", "service_name"), BY_DAY_ROLLUP_EXPECTED)


def test_days_read_at_another_rollup_once_the_asset_knows_what_it_needs(tmp_path):
    """customer_unit_costs reads the sums of its unit metrics' metrics only, and the metrics there are
    only to name them in a warning: the same days at the declared rollup with keys, or at another one."""
    keyed = {**CUSTOMER_SERVICE_ROLLUP, "keys": {"customer_id": ["o'neil"]}}
    counted = {"by": ["service_name"], "count": "items"}
    [mine, services], logged = _read_by_day(
        _io(tmp_path / "w.duckdb"), {ROLLUP_KEY: CUSTOMER_SERVICE_ROLLUP}, [(_jan(2, 9), keyed), (_jan(9), counted)]
    )
    assert_frame_equal(mine.sort("day", "service_name"), BY_DAY_ROLLUP_EXPECTED.filter(pl.col("customer_id") == "o'neil"))
    # 01-09's seven rows: four EC2 (a, two of o'neil's, untagged), two RDS, one S3.
    assert sorted(services.rows()) == [("EC2", 4), ("RDS", 2), ("S3", 1)]
    assert logged[1:] == [
        f"{ROWS_LOADED}: 2 rows of unitcost/allocated_cost (rollup of 1 customer_id, 1 day(s))",
        f"{ROWS_LOADED}: 2 rows of unitcost/allocated_cost (rollup of 1 customer_id, 1 day(s))",
        f"{ROWS_LOADED}: 3 rows of unitcost/allocated_cost (rollup, 1 day(s))",
    ]


FACTOR = {dt.date(2026, 1, 2): 1.0, dt.date(2026, 1, 3): 2.0, dt.date(2026, 1, 4): 4.0}
WINDOWS = {dt.date(2026, 1, 4): [dt.date(2026, 1, 3), dt.date(2026, 1, 4)], dt.date(2026, 1, 2): [dt.date(2026, 1, 2)]}


def _summed_over_windows(io: dict) -> tuple[pl.DataFrame, pl.DataFrame]:
    """allocated_cost of 01-02, 01-03 and 01-04 (each day's costs 1x, 2x, 4x), read at
    SERVICE_CUSTOMER_ROLLUP summed over two windows: 01-04's of 01-03 and 01-04 (01-02 left out, as a
    day not materialized is), and 01-02's of itself; then over no window at all."""
    summed, none = _read_through_rollup(
        io, SERVICE_CUSTOMER_ROLLUP,
        [lambda reader: reader.windows(window_spec("day", WINDOWS, ON_END)), lambda reader: reader.windows(window_spec("day", {}, ON_END))],
        ["2026-01-02", "2026-01-03", "2026-01-04"], FACTOR.get,
    )  # fmt: skip
    return summed.sort("day", "service_name", "customer_id", "unallocated_reason", nulls_last=True), none


# Per window and (service, customer, reason): the window's sum, and the sum on its end day alone.
# 01-04's window holds 2x and 4x of each day's cost (6x), its end 4x; 01-02's is 1x, its end too.
WINDOWS_EXPECTED = pl.DataFrame(
    [(dt.date(2026, 1, d), s, c, r, v * window, v * end)
     for d, window, end in [(2, 1.0, 1.0), (4, 6.0, 4.0)]
     for s, c, r, v in [("EC2", "a", None, 1.25), ("EC2", "o'neil", None, 6.5), ("EC2", None, "untagged", 16.0),
                        ("RDS", "c:\\tenants", None, 8.0), ("RDS", "c:\\tenants", "no_usage_driver", 32.0),
                        ("S3", "o'neil", None, 0.5)]],
    schema={"day": pl.Date, "service_name": pl.String, "customer_id": pl.String, "unallocated_reason": pl.String,
            "allocated_cost": pl.Float64, "cost_on_day": pl.Float64}, orient="row",
).sort("day", "service_name", "customer_id", "unallocated_reason", nulls_last=True)  # fmt: skip


def test_a_rollup_summed_over_windows_reads_one_row_per_window_and_key(tmp_path):
    """service_unit_cost's daily run reads two 30-day sums per service and customer, not 37 days of
    them: each row counts in every window holding its day and in no other, the day column holds the
    window's end, cost_on_day the end day's own sum; no window reads an empty frame of the same columns."""
    summed, none = _summed_over_windows(_io(tmp_path / "w.duckdb"))
    assert_frame_equal(summed, WINDOWS_EXPECTED)
    assert none.is_empty() and none.schema == WINDOWS_EXPECTED.schema
    # The Polars twin (service_unit_cost given a frame, the benchmark) sums the same windows.
    rows = pl.concat([_allocated_rows(day, factor) for day, factor in FACTOR.items()])
    twin = apply_rollup(rows, {**SERVICE_CUSTOMER_ROLLUP, "windows": window_spec("day", WINDOWS, ON_END)})
    assert_frame_equal(twin.sort(summed.columns[:4], nulls_last=True), WINDOWS_EXPECTED)


def test_inputs_are_read_within_the_read_memory_limit_and_writes_keep_their_own(tmp_path):
    """DuckDB's memory while an input is read is the read limit: a rollup of 200k keys needs more than
    1MB, so the read fails under it while the writes of the same IO manager (the connection's limit)
    succeed, before and after; with room to read it reads."""
    db = tmp_path / "w.duckdb"

    def many(key: str) -> pl.DataFrame:
        n = 200_000
        d = dt.date.fromisoformat(key)
        return pl.DataFrame({"day": [d] * n, "name": [f"n{i}" for i in range(n)], "cost": [1.0] * n,
                             "at": [dt.datetime(2026, 1, 1)] * n, "ok": [True] * n}, schema=SCHEMA)  # fmt: skip

    upstream, _ = _assets(many)
    sums: list[int] = []

    @dg.asset(
        partitions_def=PARTITIONS, key_prefix=["unitcost"],
        ins={"upstream": dg.AssetIn(key=dg.AssetKey(["unitcost", "upstream"]),
                                    metadata={"rollup": {"by": ["day", "name"], "sum": ["cost"]}})},
    )  # fmt: skip
    def summed(upstream: pl.DataFrame) -> None:
        sums.append(upstream.height)

    def io(read_limit: str) -> dict:
        return {"io_manager": UnitcostDuckDBIOManager(
            database=str(db), connection_config={"memory_limit": "1GB"}, read_memory_limit=read_limit
        )}  # fmt: skip

    assert dg.materialize([upstream], partition_key="2026-01-02", resources=io("1MB")).success
    starved = dg.materialize([upstream, summed], partition_key="2026-01-02", resources=io("1MB"),
                             selection=[summed], raise_on_error=False)  # fmt: skip
    failure = next(e for e in starved.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    error = failure.step_failure_data.error
    assert "Error occurred while loading input" in error.message and not sums
    assert error.cause.cls_name == "OutOfMemoryException" and "Out of Memory Error" in error.cause.message
    assert dg.materialize([upstream], partition_key="2026-01-03", resources=io("1MB")).success
    assert dg.materialize([upstream, summed], partition_key="2026-01-02", resources=io("256MB"),
                          selection=[summed]).success  # fmt: skip
    assert sums == [200_000]


def test_the_read_memory_limit_is_set_for_the_read_and_then_restored():
    with duckdb.connect(":memory:", config={"memory_limit": "1GB"}) as con:
        def limit() -> str:
            return con.execute("select current_setting('memory_limit')").fetchone()[0]

        own = limit()
        with _memory_limit(con, "64MB", "1GB"):
            assert limit() == "61.0 MiB"  # 64 MB in DuckDB's binary units
        assert limit() == own
        with pytest.raises(RuntimeError), _memory_limit(con, "64MB", "1GB"):
            raise RuntimeError("the read failed")
        assert limit() == own
        with _memory_limit(con, None, "1GB"):
            assert limit() == own


def _schema_io(path) -> dict:
    return {"io_manager": UnitcostDuckDBIOManager(database=str(path), schema="unitcost")}


def _named(day: str, n: int, cost: float = 1.5) -> pl.DataFrame:
    return _frame(day, n, cost).select("day", "name", "cost")


def test_rows_computed_by_the_warehouse_replace_their_days_atomically(tmp_path):
    db = tmp_path / "w.duckdb"
    assets, summaries = selected_rows_assets(PARTITIONS, lambda k: _named(k, 3))
    result = dg.materialize(assets, partition_key="2026-01-02", resources=_schema_io(db))
    assert result.success
    assert _table(db, "doubled").rows() == [(dt.date(2026, 1, 2), f"r{i}", 3.0) for i in range(3)]
    # The summary is of the rows written, read back by the IO manager: 3 rows of 3.0.
    assert summaries[-1].rows() == [(dt.date(2026, 1, 2), 3, 9.0)]
    assert summaries[-1].schema == pl.Schema({"day": pl.Date, "row_count": pl.Int64, "cost": pl.Float64})
    # Another day, then the first again with other rows: only that day is replaced.
    assert dg.materialize(assets, partition_key="2026-01-03", resources=_schema_io(db)).success
    assets, summaries = selected_rows_assets(PARTITIONS, lambda k: _named(k, 1, cost=5.0))
    assert dg.materialize(assets, partition_key="2026-01-02", resources=_schema_io(db)).success
    assert _table(db, "doubled").group_by("day").agg(pl.col("cost").sum()).sort("day").rows() == [
        (dt.date(2026, 1, 2), 10.0), (dt.date(2026, 1, 3), 9.0),
    ]  # fmt: skip
    # A statement that fails in the warehouse leaves the day as it was.
    assets, _ = selected_rows_assets(PARTITIONS, lambda k: _named(k, 1), broken=True)
    result = dg.materialize(assets, partition_key="2026-01-02", resources=_schema_io(db), raise_on_error=False, selection=["doubled"])
    assert not result.success
    assert _table(db, "doubled").filter(pl.col("day") == dt.date(2026, 1, 2)).rows() == [(dt.date(2026, 1, 2), "r0", 10.0)]


def test_rows_computed_from_a_table_never_written_say_what_to_materialize(tmp_path):
    db = tmp_path / "w.duckdb"
    assets, summaries = selected_rows_assets(PARTITIONS, lambda k: _named(k, 1))
    result = dg.materialize(assets, partition_key="2026-01-02", resources=_schema_io(db), raise_on_error=False, selection=["doubled"])
    assert not result.success and not summaries
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    assert "table unitcost.upstream does not exist" in str(failure.step_failure_data.error)
    assert "materialize the asset upstream" in str(failure.step_failure_data.error)
