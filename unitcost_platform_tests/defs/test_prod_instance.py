"""The production instance config (deploy/dagster.prod.yaml) on the real PostgreSQL of this machine.

Everything but the run launcher is the production file: ECS cannot run here, so the default
launcher takes its place; storage, run queue and retries are as deployed.
"""

import os
import uuid
from urllib.parse import urlsplit, urlunsplit

import dagster as dg
import psycopg
import pytest
import yaml

from unitcost_platform.settings import PROJECT_ROOT
from unitcost_platform_tests.saas import DAYS, FILE_ASSETS, TABLES, read_table, run_range

ADMIN_DSN = os.environ.get("UNITCOST_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")


@pytest.fixture
def instance_db():
    name = f"unitcost_dagster_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    yield name
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def test_production_config_is_a_valid_instance_with_an_ecs_launcher(monkeypatch):
    from dagster._config import process_config
    from dagster._core.instance.config import dagster_instance_config_schema
    from dagster_aws.ecs import EcsRunLauncher

    for name in ("DAGSTER_PG_HOST", "DAGSTER_PG_DB", "DAGSTER_PG_USERNAME", "DAGSTER_PG_PASSWORD"):
        monkeypatch.setenv(name, "x")
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.prod.yaml").read_text())
    instance = process_config(dagster_instance_config_schema(), config)
    assert instance.success, instance.errors
    assert (config["run_launcher"]["module"], config["run_launcher"]["class"]) == ("dagster_aws.ecs", "EcsRunLauncher")
    launcher = process_config(EcsRunLauncher.config_type(), config["run_launcher"]["config"])
    assert launcher.success, launcher.errors
    # A stopped task fails its run: the ECS launcher checks its workers, and runs are retried, not resumed.
    assert EcsRunLauncher.supports_check_run_worker_health.fget(None)
    assert config["run_monitoring"]["enabled"] and config["run_monitoring"]["max_resume_run_attempts"] == 0
    assert config["run_retries"] == {"enabled": True, "max_retries": 2, "retry_on_asset_or_op_failure": False}


def test_a_partition_materializes_through_a_postgres_instance(instance_db, tmp_path, monkeypatch, small_saas, make_settings):
    config = yaml.safe_load((PROJECT_ROOT / "deploy" / "dagster.prod.yaml").read_text())
    config["run_launcher"] = {"module": "dagster._core.launcher", "class": "DefaultRunLauncher"}
    home = tmp_path / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml.safe_dump(config))
    admin = urlsplit(ADMIN_DSN)
    for name, value in {"DAGSTER_PG_HOST": admin.hostname, "DAGSTER_PG_DB": instance_db,
                        "DAGSTER_PG_USERNAME": admin.username or "root", "DAGSTER_PG_PASSWORD": admin.password or ""}.items():  # fmt: skip
        monkeypatch.setenv(name, value)
    monkeypatch.setenv("DAGSTER_HOME", str(home))

    instance = dg.DagsterInstance.get()
    try:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        assert type(instance.run_coordinator).__name__ == "QueuedRunCoordinator"
        assert instance.run_monitoring_enabled and instance.run_monitoring_poll_interval_seconds == 60
        settings = make_settings(small_saas)
        result = run_range(settings, DAYS[3], DAYS[3], instance=instance)
        assert result.success
        assert instance.get_run_by_id(result.run_id).is_success
        materialized = instance.get_materialized_partitions(dg.AssetKey("unit_cost"))
        assert materialized == {DAYS[3].isoformat()}
    finally:
        instance.dispose()
    # The run and its events are rows in PostgreSQL, not files under DAGSTER_HOME.
    with psycopg.connect(urlunsplit(urlsplit(ADMIN_DSN)._replace(path=f"/{instance_db}"))) as con:
        assert con.execute("SELECT count(*) FROM runs WHERE run_id = %s", (result.run_id,)).fetchone() == (1,)
        events = con.execute(
            "SELECT count(*) FROM event_logs WHERE run_id = %s AND dagster_event_type = 'ASSET_MATERIALIZATION'",
            (result.run_id,),
        ).fetchone()[0]
        assert events == len(TABLES) + len(FILE_ASSETS)
    assert read_table(settings, "unit_cost").height == 3
