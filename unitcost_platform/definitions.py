"""The code location: one entry point that resolves the environment and wires everything."""

import sys
import warnings

import dagster as dg

from unitcost_platform.config import load_config
from unitcost_platform.defs.assets.allocation import build_allocation_assets
from unitcost_platform.defs.assets.anomalies import build_anomaly_assets
from unitcost_platform.defs.assets.common import backfill_policy
from unitcost_platform.defs.assets.dashboard import build_dashboard_assets
from unitcost_platform.defs.assets.economics import build_economics_assets
from unitcost_platform.defs.assets.engineering import build_engineering_assets
from unitcost_platform.defs.assets.ingest import build_ingest_assets
from unitcost_platform.defs.assets.reporting import build_reporting_assets
from unitcost_platform.defs.checks import (
    ALLOCATION_BY_TENANT,
    ALLOCATION_TOTALS,
    TRAILING_WEEK,
    allocation_by_tenant,
    allocation_totals,
    build_checks,
    trailing_week,
)
from unitcost_platform.defs.environments import WAREHOUSES
from unitcost_platform.defs.jobs import unit_cost_job
from unitcost_platform.defs.partitions import daily_partitions
from unitcost_platform.defs.resources import UnitcostResource, source_resources
from unitcost_platform.defs.restatement import build_restatement_sensor
from unitcost_platform.defs.rollup import BY_DAY, BY_KEY, read_by_day, rollup_by_key
from unitcost_platform.defs.schedules import (
    build_daily_schedule,
    build_digest_job,
    build_digest_schedule,
)
from unitcost_platform.defs.sensors import build_alert_sensor, build_run_failure_sensor
from unitcost_platform.errors import UnitcostError
from unitcost_platform.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Everything for one environment; asset code is the same in every environment."""
    # backfill_policy and partition-window options are marked beta in dagster 1.13; we rely on them.
    warnings.filterwarnings("ignore", category=dg.BetaWarning)
    warnings.filterwarnings("ignore", category=dg.PreviewWarning)  # partitioned asset checks
    # Schedule times and the sensor interval are part of the definitions: read the config now.
    cfg = load_config(settings.config_path)
    partitions = daily_partitions(settings.start_date)
    warehouse = WAREHOUSES[settings.env](settings)
    backfill = backfill_policy(cfg.runs.max_days_per_run)
    assets = [
        *build_ingest_assets(partitions, warehouse.kinds, backfill),
        *build_allocation_assets(partitions, warehouse.kinds, backfill),
        *build_reporting_assets(partitions, warehouse.kinds, backfill),
        *build_engineering_assets(partitions, warehouse.kinds, backfill),
        *build_anomaly_assets(partitions, warehouse.kinds, backfill, cfg.anomalies, cfg.forecast),
        *build_dashboard_assets(partitions, warehouse.kinds, backfill, cfg.dashboard.days),
        *build_economics_assets(partitions, warehouse.kinds, backfill),
    ]
    resources = {
        "unitcost": UnitcostResource(
            config_path=str(settings.config_path),
            data_dir=str(settings.data_dir),
            dashboard_dir=str(settings.dashboard_dir),
        ),
        **source_resources(cfg),
        "io_manager": warehouse.io_manager,
        TRAILING_WEEK: trailing_week,
        ALLOCATION_TOTALS: allocation_totals,
        ALLOCATION_BY_TENANT: allocation_by_tenant,
        BY_KEY: rollup_by_key,
        BY_DAY: read_by_day,
    }
    checks = build_checks(partitions)
    digest_job = build_digest_job([key for c in checks for key in c.check_keys])
    return dg.Definitions(
        assets=assets,
        asset_checks=checks,
        jobs=[unit_cost_job, digest_job],
        schedules=[build_daily_schedule(unit_cost_job, cfg.schedules), build_digest_schedule(digest_job, cfg.schedules)],
        sensors=[
            build_alert_sensor(cfg.notifications),
            build_run_failure_sensor(unit_cost_job),
            build_restatement_sensor(cfg, unit_cost_job),
        ],
        resources=resources,
        executor=warehouse.executor,
    )


def _print_message_only(exc: UnitcostError) -> None:
    """If `exc` ends a command-line process (dagster asset materialize, dg launch), print its message,
    which names the file, key and fix, instead of a traceback through Dagster's loader. A code server
    catches the error itself and shows it in the UI; this changes nothing there."""
    previous = sys.excepthook

    def hook(kind, value, traceback) -> None:
        if value is exc:
            print(f"unitcost_platform could not load its definitions:\n{exc}", file=sys.stderr)
        else:
            previous(kind, value, traceback)

    sys.excepthook = hook


@dg.definitions
def defs() -> dg.Definitions:
    try:
        return build_definitions(Settings.from_env())
    except UnitcostError as exc:
        _print_message_only(exc)
        raise
