"""A small SaaS on disk (16 days, 3 customers) and helpers to run the real Definitions against it."""

import datetime as dt
import shutil
from pathlib import Path

import dagster as dg
import duckdb
import polars as pl

from unitcost_platform.definitions import build_definitions
from unitcost_platform.settings import PROJECT_ROOT, WAREHOUSE_SCHEMA, Settings
from unitcost_platform_tests.helpers import focus_csv, write_customers_csv, write_usage_csv

START = dt.date(2026, 3, 1)
DAYS = [START + dt.timedelta(days=i) for i in range(16)]
TABLES = [
    "raw_billing", "tenant_usage", "customer_dimension", "tag_coverage",
    "allocated_cost", "unit_cost", "cost_alerts", "growth_efficiency", "team_spend",
    "service_unit_cost", "alert_incidents",
    "product_billing", "product_cost", "segment_economics", "customer_unit_costs",
    "cost_anomalies", "margin_forecast",
]  # fmt: skip
# Assets that are files, not tables.
FILE_ASSETS = ["unit_cost_dashboard"]
DAY_COLUMN = {"raw_billing": "x_ChargeDate", "tenant_usage": "usage_date", "customer_dimension": "snapshot_date"}


# The small SaaS's customers: a tenant each, no valid_from (customers since before any data).
CUSTOMERS = [
    {"customer_id": "C1", "tenant_id": "t1", "customer_name": "One", "tier": "mid-market", "mrr": 3000, "status": "active"},
    {"customer_id": "C2", "tenant_id": "t2", "customer_name": "Two", "tier": "smb", "mrr": 900, "status": "active"},
    {"customer_id": "F", "tenant_id": "tf", "customer_name": "Free", "tier": "free", "mrr": 0, "status": "active"},
]  # fmt: skip


def write_small_saas(root: Path) -> Path:
    """Billing (two CSV files), usage and customers of 16 days; C2's cost doubles in the last week."""
    billing, use = [], []
    for i, day in enumerate(DAYS):
        billing += [
            {"day": day, "cost": 10.0, "tenant": "t1"},
            {"day": day, "cost": 5.0 if i < 9 else 10.0, "tenant": "t2"},
            {"day": day, "cost": 2.0, "tenant": "tf"},
            {"day": day, "cost": 1.0, "service": "AWS Lambda"},  # untagged by mistake -> default compute pool
            {"day": day, "cost": 1.2, "service": "Amazon CloudWatch", "resource": "cw"},
        ]
        billing += [
            {"day": day, "hour": h, "cost": 1.0, "service": "NAT Gateway", "resource": "arn:aws:ec2:r:1:natgateway/nat-1"}
            for h in range(3)
        ]
        use += [(day, "t1", "requests", 1000), (day, "t2", "requests", 500), (day, "tf", "requests", 500)]
    focus_csv(root / "billing" / "march-a.csv", billing[: len(billing) // 2])
    focus_csv(root / "billing" / "march-b.csv", billing[len(billing) // 2 :])
    write_usage_csv(root / "usage" / "usage.csv", use)
    write_customers_csv(root / "customers.csv", CUSTOMERS)
    config = root / "unitcost.yaml"
    config.write_text(
        "pools:\n"
        "  - {name: nat_gateway, match: {resource_id_pattern: ':natgateway/'}, driver: requests, shared_by_design: true}\n"
        "  - {name: observability, match: {service_name: [Amazon CloudWatch]}, driver: flat, shared_by_design: true}\n"
        "owners:\n  services: {Amazon EC2: compute-team}\n  default_team: platform-team\n"
    )
    return root


def run_range(
    settings: Settings, first: dt.date, last: dt.date, raise_on_error: bool = True, instance=None, resources=None
):
    """One run over [first, last] of the daily job, as a single-run backfill does it; `resources`
    swap some of the definitions' resources (a connector's client pointed at a local server)."""
    defs = build_definitions(settings)
    job = defs.resolve_job_def("unit_cost_daily")
    return job.execute_in_process(
        instance=instance or dg.DagsterInstance.ephemeral(),
        resources=resources,
        tags={
            "dagster/asset_partition_range_start": first.isoformat(),
            "dagster/asset_partition_range_end": last.isoformat(),
        },
        raise_on_error=raise_on_error,
    )


def read_table(settings: Settings, table: str) -> pl.DataFrame:
    with duckdb.connect(str(settings.duckdb_path), read_only=True) as con:
        return pl.from_arrow(con.sql(f"select * from {WAREHOUSE_SCHEMA}.{table}").to_arrow_table())


def sorted_table(settings: Settings, table: str) -> pl.DataFrame:
    frame = read_table(settings, table)
    return frame.sort(frame.columns, nulls_last=True)


def copy_demo_config(target: Path) -> Path:
    return Path(shutil.copy(PROJECT_ROOT / "unitcost.yaml", target))


def materialization_metadata(result, asset: str, partition: str) -> dict:
    """The metadata values of `asset`'s materialization of `partition` in an in-process run's events."""
    for event in result.all_events:
        if event.event_type == dg.DagsterEventType.ASSET_MATERIALIZATION:
            mat = event.event_specific_data.materialization
            if mat.asset_key == dg.AssetKey(asset) and mat.partition == partition:
                return {k: v.value for k, v in mat.metadata.items()}
    raise AssertionError(f"no materialization of {asset} for {partition}")
