"""Ours: allocation (and unit cost) straight from the scale data's files, with the default config,
as the worker of kinds `ours`, `ours_by_file` and `ours_unit` runs it. Its process is measured whole,
like the DuckDB baseline's, so it imports what allocation runs and no more: the pools and tenant
settings from `config_pools` and `config_base`, not `config.py`, which assembles unitcost.yaml from
every connector's module (0.5 s of imports and their teardown on each run). The defaults are
`UnitcostConfig()`'s (a test holds them equal); the baseline spells the same ones in its SQL.
"""

import datetime as dt
import gc
import time
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark.measure import Figure, peak_mib, reset_peak
from unitcost_platform.benchmark.workers import bench_day
from unitcost_platform.config_base import TenantConfig
from unitcost_platform.config_pools import DEFAULT_POOLS
from unitcost_platform.contracts.focus import ParsedTags
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.files import list_data_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.allocation import allocate, allocation_columns, allocation_items
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


def ours(data: Path, out: Path, with_unit_cost: bool = False, by_file: bool = False) -> dict:
    """Allocation (and unit cost) straight from the files, reading only the columns allocation needs;
    `by_file`: one file at a time, each file's line items summed to what allocation reads (a day too
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
        items, lines, parsed = [], 0, ParsedTags()  # each distinct Tags string parsed once, as one read does
        for path in list_data_files(data / "billing", "billing"):
            part = read_billing_files(
                [path], [day], cost_column=COST_COLUMN, tenant=TENANT, spread=True, columns=columns, parsed=parsed,
            )  # fmt: skip
            lines += part.height
            items.append(allocation_items(part, POOLS, COST_COLUMN))
            del part
        # The files' sums summed again: allocate reads one row per key, as the warehouse's query
        # gives it, and the files of a day share most (service, tenant) keys (each of the 50 files
        # of 100M line items sums to 1.4M rows, 69M in all). With Polars' streaming engine the
        # 100M day took 56.5 s at 8.3 GiB; with the in-memory group-by 78.6 s at 16.3 GiB (a run each).
        combined = pl.concat(items)
        del items
        keys = [c for c in combined.columns if c != "cost"]
        billing = combined.lazy().group_by(keys).agg(pl.col("cost").sum()).collect(engine="streaming")
        del combined
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
