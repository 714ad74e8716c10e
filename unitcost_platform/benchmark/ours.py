"""Ours: allocation (and unit cost) straight from the scale data's files, with the default config,
as the worker of kinds `ours`, `ours_by_file` and `ours_unit` runs it. Its process is measured whole,
like the DuckDB baseline's, so it imports what allocation runs and no more: the pools and tenant
settings from `config_pools` and `config_base`, not `config.py`, which assembles unitcost.yaml from
every connector's module (0.5 s of imports and their teardown on each run). The defaults are
`UnitcostConfig()`'s (a test holds them equal); the baseline spells the same ones in its SQL.
"""

import datetime as dt
import gc
import queue
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark.measure import Figure, peak_mib, reset_peak
from unitcost_platform.benchmark.workers import bench_day
from unitcost_platform.config_base import TenantConfig
from unitcost_platform.config_pools import DEFAULT_POOLS
from unitcost_platform.contracts.focus import ParsedTags, conform, empty_raw_billing
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.files import list_data_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.allocation import (
    ALLOCATION_ITEMS_SCHEMA,
    allocate,
    allocation_columns,
    items_statement,
)
from unitcost_platform.transforms.customers import customer_dimension

# UnitcostConfig()'s: the default pools, the default tenant tag keys, EffectiveCost, trial and free.
POOLS = list(DEFAULT_POOLS)
COST_COLUMN = "EffectiveCost"
TENANT = TenantConfig()
NON_PAYING = ["trial", "free"]
ALLOCATION_KEYS = ["day", "customer_id", "tenant_id", "service_name", "pool"]


def read_billing(data: Path, day: dt.date, columns: list[str] | None) -> pl.DataFrame:
    return read_billing_files(
        list_data_files(data / "billing", "billing"), [day], cost_column=COST_COLUMN, tenant=TENANT,
        spread=True, columns=columns,
    )  # fmt: skip


def read_usage_and_customers(data: Path, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    usage = read_usage_files(list_data_files(data / "usage", "usage"), [day], normalize="lower")
    versions = read_customer_files([data / "customers.parquet"], normalize="lower")
    return usage, customer_dimension(versions, [day], NON_PAYING)


def unit_cost_of(allocated_rollup: pl.DataFrame, customers: pl.DataFrame, usage: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    from unitcost_platform.transforms.customer_cost import customer_daily_cost
    from unitcost_platform.transforms.unit_cost import unit_cost

    present = set(allocated_rollup["day"].unique().to_list())
    return unit_cost(customer_daily_cost(allocated_rollup), present, customers, customers.clear(), usage, set(), [day])


def items_by_file(data: Path, day: dt.date, columns: list[str]) -> tuple[pl.DataFrame, int]:
    """The day's line items summed to what `allocate` reads (ALLOCATION_ITEMS_SCHEMA), one file at
    a time: each file is read and validated by the readers, as `read_billing_files` reads it, and
    streamed into an in-memory DuckDB, which sums every file's rows in one aggregation with the
    warehouse's statement (`items_statement`, ALLOCATION_QUERY's). No more than three files' rows
    are held at once (the one DuckDB sums, the next, and the one being read), and no sums per file
    are summed again: 100M line items sum to 8M rows, but each 2M-line file to 1.4M, and summing
    the files' sums took 13.6 s of a 46 s run and 8.8 GiB.
    Returns the sums and the number of line items read."""
    import duckdb
    import pyarrow as pa

    from unitcost_platform.warehouse_sql import DUCKDB

    empty = conform(empty_raw_billing(), columns).select(columns)
    schema = empty.to_arrow(compat_level=pl.CompatLevel.newest()).schema
    parsed = ParsedTags()  # each distinct Tags string parsed once, as one read does
    lines, failed = 0, []
    ready: queue.Queue = queue.Queue(maxsize=1)
    done, stop = object(), threading.Event()

    def read_files() -> None:
        # In a thread of its own: the next file is read while DuckDB sums the one before (27.2 s to
        # 26.2 s at 100M, medians of 3 pairs; DuckDB sums a stream on both cores).
        nonlocal lines
        try:
            for path in list_data_files(data / "billing", "billing"):
                if stop.is_set():
                    break
                part = read_billing_files(
                    [path], [day], cost_column=COST_COLUMN, tenant=TENANT, spread=True, columns=columns, parsed=parsed,
                )  # fmt: skip
                lines += part.height
                ready.put(part.select(columns).cast(empty.schema).to_arrow(compat_level=pl.CompatLevel.newest()))
        except Exception as error:  # DuckDB would report it as its own; the reader's message is raised below
            failed.append(error)
        finally:
            ready.put(done)

    def batches() -> Iterator[pa.RecordBatch]:
        while (table := ready.get()) is not done:
            yield from table.to_batches()
        if failed:
            raise failed[0]

    reader = threading.Thread(target=read_files, name="billing-files", daemon=True)
    reader.start()
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        con.register("line_items", pa.RecordBatchReader.from_batches(schema, batches()))
        try:
            sums = con.sql(items_statement("select * from line_items", POOLS, COST_COLUMN, DUCKDB)).to_arrow_table()
        except duckdb.Error:
            if failed:
                raise failed[0] from None
            raise
        finally:  # after a failed query, stop the reader (its pending file is taken off the queue)
            stop.set()
            while reader.is_alive():
                try:
                    ready.get_nowait()
                except queue.Empty:
                    reader.join(0.05)
    return pl.from_arrow(sums).cast(ALLOCATION_ITEMS_SCHEMA), lines


def ours(data: Path, out: Path, with_unit_cost: bool = False, by_file: bool = False) -> dict:
    """Allocation (and unit cost) straight from the files, reading only the columns allocation needs;
    `by_file`: one file at a time, summed by DuckDB as they are read (`items_by_file`: a day too
    large to read whole, the 100m size)."""
    day = bench_day(data)
    past = None
    if with_unit_cost:
        from unitcost_platform.benchmark import history

        versions = read_customer_files([data / "customers.parquet"], normalize="lower")
        past = history.synthetic_customer_rollup(versions, day, history.UNIT_COST_HISTORY_DAYS)
        del versions
    gc.collect()
    reset_peak()
    start = time.perf_counter()
    columns = allocation_columns(POOLS, COST_COLUMN)
    if by_file:
        billing, lines = items_by_file(data, day, columns)
    else:
        billing = read_billing(data, day, columns)
        lines = billing.height
    usage, customers = read_usage_and_customers(data, day)
    allocated = allocate(billing, usage, customers, [day], POOLS, COST_COLUMN)
    del billing
    result = allocated
    if past is not None:
        from unitcost_platform.transforms.customer_cost import CUSTOMER_DAY_ROLLUP, apply_rollup

        result = unit_cost_of(pl.concat([past, apply_rollup(allocated, CUSTOMER_DAY_ROLLUP)]), customers, usage, day)
    seconds = time.perf_counter() - start
    figure = Figure("ours", seconds, lines, peak_mib(), True)
    if past is None:  # what the parent compares with the baseline's six columns: both write the same
        # Columns taken as they are: allocate's columns come from frames chunked differently (the
        # pools' splits and the direct costs), and `select` aligns their chunks by copying every
        # row first (0.55 s of the 10M process, 7.1M rows, measured 2026-12-07).
        result = result[[*ALLOCATION_KEYS, "allocated_cost"]]
    result.write_parquet(out)
    return {"figures": [figure.as_dict()], "line_items": lines, "result_rows": result.height}
