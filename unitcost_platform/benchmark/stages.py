"""What the benchmark's measured processes run (`workers.py` starts one per run): the pipeline's
stages one after the other, each with its own figures (the unit-cost anomalies and margin forecast
included), and "ours", allocation (and unit cost) straight from the Parquet files, whole or one file
at a time. Imported by the worker of those kinds only: the DuckDB baseline's process loads none of it.
"""

import datetime as dt
import gc
import time
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark import history
from unitcost_platform.benchmark.measure import Figure, measured, peak_mib, reset_peak
from unitcost_platform.benchmark.workers import bench_day
from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.focus import ParsedTags
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.files import list_data_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.allocation import (
    BILLING_COLUMNS,
    allocate,
    allocation_columns,
    allocation_items,
)
from unitcost_platform.transforms.customer_cost import (
    CUSTOMER_DAY_ROLLUP,
    CUSTOMER_SERVICE_ROLLUP,
    apply_rollup,
    customer_daily_cost,
)
from unitcost_platform.transforms.customers import customer_dimension
from unitcost_platform.transforms.unit_cost import unit_cost

ANOMALY_STAGE = "unit-cost anomalies (50-day baselines, drivers)"
FORECAST_STAGE = "margin forecast (74-day Theil-Sen trends)"
CONFIG = UnitcostConfig()  # the defaults: default pools, default tenant tag keys, EffectiveCost
NON_PAYING = ["trial", "free"]
ALLOCATION_KEYS = ["day", "customer_id", "tenant_id", "service_name", "pool"]


def read_billing(data: Path, day: dt.date, columns: list[str] | None) -> pl.DataFrame:
    return read_billing_files(
        list_data_files(data / "billing", "billing"), [day], cost_column=CONFIG.cost_column,
        tenant=CONFIG.tenant, spread=True, columns=columns,
    )  # fmt: skip


def read_usage_and_customers(data: Path, day: dt.date) -> tuple[pl.DataFrame, pl.DataFrame]:
    usage = read_usage_files(list_data_files(data / "usage", "usage"), [day], normalize="lower")
    versions = read_customer_files([data / "customers.parquet"], normalize="lower")
    return usage, customer_dimension(versions, [day], NON_PAYING)


def _unit_cost(allocated_rollup: pl.DataFrame, customers: pl.DataFrame, usage: pl.DataFrame, day: dt.date) -> pl.DataFrame:
    present = set(allocated_rollup["day"].unique().to_list())
    return unit_cost(customer_daily_cost(allocated_rollup), present, customers, customers.clear(), usage, set(), [day])


def pipeline(data: Path, out: Path) -> dict:
    """Every stage as the pipeline's assets run it, each with the inputs its step would hold."""
    from unitcost_platform.transforms.alerts import cost_alerts
    from unitcost_platform.transforms.coverage import tag_coverage

    day, pools, figures = bench_day(data), CONFIG.resolved_pools(), []
    with measured("read billing (raw_billing, every column)", 0, figures):
        billing = read_billing(data, day, None)
    lines = billing.height
    figures[-1].rows = lines
    with measured("read usage and customers", 0, figures):
        usage, customers = read_usage_and_customers(data, day)
    figures[-1].rows = usage.height + customers.height
    projected = billing.select([c for c in BILLING_COLUMNS if c in billing.columns])  # what the IO manager loads
    del billing
    gc.collect()
    with measured("tag coverage", lines, figures):
        tag_coverage(projected, [day], pools, CONFIG.cost_column)
    with measured("allocation", lines, figures):
        allocated = allocate(projected, usage, customers, [day], pools, CONFIG.cost_column)
    del projected
    gc.collect()
    today = apply_rollup(allocated, CUSTOMER_DAY_ROLLUP)
    rollup = pl.concat([history.earlier_days(today, day, history.UNIT_COST_HISTORY_DAYS), today])
    with measured("unit cost (30-day run rate, 7-day trends)", 0, figures):
        unit = _unit_cost(rollup, customers, usage, day)
    figures[-1].rows = rollup.height
    del rollup
    gc.collect()
    today = apply_rollup(allocated, CUSTOMER_SERVICE_ROLLUP)
    services = pl.concat([history.earlier_days(today, day, history.ALERT_HISTORY_DAYS), today])
    del allocated, today
    gc.collect()
    with measured("alerts (14-day service drivers)", 0, figures):
        alerts = cost_alerts(unit, services, [day], CONFIG.alerts, CONFIG.owners)
    figures[-1].rows = services.height
    _anomaly_and_forecast_stages(unit, services, day, figures)
    return {"figures": [f.as_dict() for f in figures], "line_items": lines, "alerts": alerts.height,
            "customers": unit.height}  # fmt: skip


def _anomaly_and_forecast_stages(unit: pl.DataFrame, services: pl.DataFrame, day: dt.date, figures: list[Figure]) -> None:
    """cost_anomalies and margin_forecast as their assets run them, on unit_cost history shaped like
    the measured day (history.earlier_days) and the alerts stage's 14 days of service rollups."""
    from unitcost_platform.transforms.anomalies import HISTORY_DAYS as ANOMALY_HISTORY_DAYS
    from unitcost_platform.transforms.anomalies import cost_anomalies
    from unitcost_platform.transforms.forecast import history_days as forecast_history_days
    from unitcost_platform.transforms.forecast import margin_forecast

    columns = ["day", "customer_id", "customer_name", "tier", "status", "total_cost", "requests", "mrr", "cost_to_mrr"]
    today = unit.select(columns)
    past = pl.concat([history.earlier_days(today, day, ANOMALY_HISTORY_DAYS - 1), today])
    gc.collect()
    with measured(ANOMALY_STAGE, 0, figures):
        cost_anomalies(past.select("day", "customer_id", "total_cost"),
                       past.select("day", "customer_id", pl.col("requests").alias("units")),
                       past, services, [day], CONFIG.anomalies, CONFIG.owners)  # fmt: skip
    figures[-1].rows = past.height
    past = pl.concat([history.earlier_days(today, day, forecast_history_days(CONFIG.forecast.horizon_days) - 1), today])
    gc.collect()
    with measured(FORECAST_STAGE, 0, figures):
        margin_forecast(past, [day], CONFIG.alerts, CONFIG.forecast)
    figures[-1].rows = past.height


def ours(data: Path, out: Path, with_unit_cost: bool = False, by_file: bool = False) -> dict:
    """Allocation (and unit cost) straight from the files, reading only the columns allocation needs;
    `by_file`: one file at a time, each file's line items summed to what allocation reads (a day too
    large to read whole, the 100m size)."""
    day, pools = bench_day(data), CONFIG.resolved_pools()
    past = None
    if with_unit_cost:
        versions = read_customer_files([data / "customers.parquet"], normalize="lower")
        past = history.synthetic_customer_rollup(versions, day, history.UNIT_COST_HISTORY_DAYS)
        del versions
    gc.collect()
    reset_peak()
    start = time.perf_counter()
    columns = allocation_columns(pools, CONFIG.cost_column)
    if by_file:
        items, lines, parsed = [], 0, ParsedTags()  # each distinct Tags string parsed once, as one read does
        for path in list_data_files(data / "billing", "billing"):
            part = read_billing_files(
                [path], [day], cost_column=CONFIG.cost_column, tenant=CONFIG.tenant, spread=True, columns=columns,
                parsed=parsed,
            )
            lines += part.height
            items.append(allocation_items(part, pools, CONFIG.cost_column))
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
    allocated = allocate(billing, usage, customers, [day], pools, CONFIG.cost_column)
    del billing
    result = allocated
    if past is not None:
        result = _unit_cost(pl.concat([past, apply_rollup(allocated, CUSTOMER_DAY_ROLLUP)]), customers, usage, day)
    seconds = time.perf_counter() - start
    figure = Figure("ours", seconds, lines, peak_mib(), True)
    if past is None:  # what the parent compares with the baseline's six columns: both write the same
        result = result.select(*ALLOCATION_KEYS, "allocated_cost")
    result.write_parquet(out)
    return {"figures": [figure.as_dict()], "line_items": lines, "result_rows": result.height}
