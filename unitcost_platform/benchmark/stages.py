"""The pipeline's stages one after the other, as the benchmark's `pipeline` worker runs them, each
with its own figures (the unit-cost anomalies and margin forecast included). Imported by that
worker only (ours is `ours.py`; the DuckDB baseline's process loads neither).
"""

import datetime as dt
import gc
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark import history
from unitcost_platform.benchmark.measure import Figure, measured
from unitcost_platform.benchmark.ours import read_billing, read_usage_and_customers, unit_cost_of
from unitcost_platform.benchmark.workers import bench_day
from unitcost_platform.config import UnitcostConfig
from unitcost_platform.transforms.allocation import BILLING_COLUMNS, allocate
from unitcost_platform.transforms.customer_cost import (
    CUSTOMER_DAY_ROLLUP,
    CUSTOMER_SERVICE_ROLLUP,
    apply_rollup,
)

ANOMALY_STAGE = "unit-cost anomalies (50-day baselines, drivers)"
FORECAST_STAGE = "margin forecast (74-day Theil-Sen trends)"
CONFIG = UnitcostConfig()  # the defaults: default pools, default tenant tag keys, EffectiveCost


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
        unit = unit_cost_of(rollup, customers, usage, day)
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
