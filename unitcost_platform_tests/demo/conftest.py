"""The demo SaaS, generated once per session, and the README's main job run over all of it."""

import datetime as dt
from pathlib import Path

import dagster as dg
import pytest

from unitcost_platform.definitions import build_definitions
from unitcost_platform.demo.generator import DemoSpec, generate_demo
from unitcost_platform.settings import DEMO_DAYS, DEMO_START_DATE, Settings

LAST = DEMO_START_DATE + dt.timedelta(days=DEMO_DAYS - 1)


@pytest.fixture(scope="session")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("demo")
    generate_demo(out, DemoSpec(), log=lambda _: None)
    return out


@pytest.fixture(scope="session")
def demo_run(demo_dir, tmp_path_factory):
    """The README's main job over the whole demo range, into a real (ephemeral) Dagster instance."""
    db = tmp_path_factory.mktemp("warehouse") / "warehouse.duckdb"
    settings = Settings.from_env({"UNITCOST_DATA_DIR": str(demo_dir), "UNITCOST_DUCKDB_PATH": str(db)})
    instance = dg.DagsterInstance.ephemeral()
    result = build_definitions(settings).resolve_job_def("unit_cost_daily").execute_in_process(
        instance=instance,
        tags={"dagster/asset_partition_range_start": DEMO_START_DATE.isoformat(),
              "dagster/asset_partition_range_end": LAST.isoformat()},  # fmt: skip
    )
    return settings, instance, result
