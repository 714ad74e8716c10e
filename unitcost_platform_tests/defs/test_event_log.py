"""The local instance's event log (defs/event_log.py): Dagster's SQLite files, engines kept open.

What a user relies on: the project's dagster.yaml selects it, what it writes reads the same through
Dagster's own SQLite storage (the files are Dagster's), another process writing to the same
databases between its events is not locked out, and a long-lived process does not keep an engine
for every run it has touched.
"""

import shutil

import dagster as dg

from unitcost_platform.defs.event_log import OPEN_RUN_ENGINES, LocalEventLogStorage
from unitcost_platform.settings import PROJECT_ROOT

DAYS = dg.DailyPartitionsDefinition(start_date="2026-03-01", end_date="2026-03-04")


@dg.asset(partitions_def=DAYS, check_specs=[dg.AssetCheckSpec("positive", asset="numbers")])
def numbers(context: dg.AssetExecutionContext):
    yield dg.Output(len(context.partition_key), metadata={"day": context.partition_key})
    yield dg.AssetCheckResult(check_name="positive", passed=True)


def _home(tmp_path, name: str, project_yaml: bool):
    home = tmp_path / name
    home.mkdir()
    if project_yaml:
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    return home


def _materialize(instance: dg.DagsterInstance, partition: str) -> None:
    result = dg.materialize([numbers], instance=instance, partition_key=partition)
    assert result.success


def _what_was_stored(instance: dg.DagsterInstance) -> dict:
    key = dg.AssetKey("numbers")
    records = instance.fetch_materializations(key, limit=100).records
    checks = instance.event_log_storage.get_asset_check_execution_history(
        dg.AssetCheckKey(key, "positive"), limit=100
    )
    return {
        "partitions": sorted(r.partition_key for r in records),
        "metadata": sorted(r.asset_materialization.metadata["day"].value for r in records),
        "materialized": sorted(instance.get_materialized_partitions(key)),
        "checks": sorted(c.status.value for c in checks),
        "runs": sorted(r.status.value for r in instance.get_runs()),
    }


def test_the_project_instance_uses_it(tmp_path):
    home = _home(tmp_path, "home", project_yaml=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert isinstance(instance.event_log_storage, LocalEventLogStorage)
        # Dagster's default place for the event log, so an existing DAGSTER_HOME keeps its history.
        assert instance.event_log_storage._base_dir == str(home / "history" / "runs")
        _materialize(instance, "2026-03-01")
        # A run worker gets the instance from its ref (dagster.yaml's instance_class travels with it).
        with dg.DagsterInstance.from_ref(instance.get_ref()) as worker:
            assert isinstance(worker.event_log_storage, LocalEventLogStorage)
            assert worker.get_materialized_partitions(dg.AssetKey("numbers")) == {"2026-03-01"}


def test_stores_what_dagsters_own_storage_stores(tmp_path):
    ours, default = _home(tmp_path, "home", project_yaml=True), _home(tmp_path, "default", project_yaml=False)
    for home in (ours, default):
        with dg.DagsterInstance.from_config(str(home)) as instance:
            for day in ("2026-03-01", "2026-03-02", "2026-03-03"):
                _materialize(instance, day)
    with dg.DagsterInstance.from_config(str(ours)) as instance:
        stored_by_ours = _what_was_stored(instance)
    (ours / "dagster.yaml").unlink()  # now read the same files with Dagster's own SqliteEventLogStorage
    with dg.DagsterInstance.from_config(str(ours)) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        read_by_dagster = _what_was_stored(instance)
    with dg.DagsterInstance.from_config(str(default)) as instance:
        stored_by_dagster = _what_was_stored(instance)

    assert stored_by_ours == stored_by_dagster == read_by_dagster
    assert stored_by_ours["partitions"] == ["2026-03-01", "2026-03-02", "2026-03-03"]
    assert stored_by_ours["checks"].count("SUCCEEDED") == 3


def test_another_writer_between_its_events_is_not_locked_out(tmp_path):
    home = _home(tmp_path, "home", project_yaml=True)
    with dg.DagsterInstance.from_config(str(home)) as ours:
        _materialize(ours, "2026-03-01")  # our engines (index and run) now hold open connections
        (home / "dagster.yaml").rename(home / "ours.yaml")
        with dg.DagsterInstance.from_config(str(home)) as other:  # Dagster's own storage, same files
            assert not isinstance(other.event_log_storage, LocalEventLogStorage)
            _materialize(other, "2026-03-02")
        _materialize(ours, "2026-03-03")
        assert sorted(ours.get_materialized_partitions(dg.AssetKey("numbers"))) == [
            "2026-03-01", "2026-03-02", "2026-03-03"
        ]  # fmt: skip


def test_keeps_a_bounded_number_of_engines_and_wipes(tmp_path):
    home = _home(tmp_path, "home", project_yaml=True)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        storage = instance.event_log_storage
        for _ in range(OPEN_RUN_ENGINES + 3):
            _materialize(instance, "2026-03-01")
        assert len(instance.get_runs()) == OPEN_RUN_ENGINES + 3
        assert "index" in storage._engines
        assert len(storage._engines) == OPEN_RUN_ENGINES + 1  # the index and the most recent runs
        # Every run's events are still readable, including those whose engine was disposed.
        for run in instance.get_runs():
            assert any(e.is_dagster_event and e.dagster_event.event_type_value == "ASSET_MATERIALIZATION"
                       for e in instance.all_logs(run.run_id))  # fmt: skip

        instance.wipe()
        assert list(storage._engines) in ([], ["index"])
        assert instance.get_runs() == []
        _materialize(instance, "2026-03-02")
        assert instance.get_materialized_partitions(dg.AssetKey("numbers")) == {"2026-03-02"}


def test_a_storage_block_in_dagster_yaml_still_wins(tmp_path):
    home = _home(tmp_path, "home", project_yaml=True)
    elsewhere = tmp_path / "elsewhere"
    with open(home / "dagster.yaml", "a") as f:
        f.write(f"\nstorage:\n  sqlite:\n    base_dir: {elsewhere}\n")
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.event_log_storage).__name__ == "SqliteEventLogStorage"
        _materialize(instance, "2026-03-01")
    assert (elsewhere / "history" / "runs" / "index.db").exists()


def test_a_temporary_home_with_the_projects_yaml(tmp_path):
    # `dg dev` without DAGSTER_HOME: a temporary home, dagster.yaml read from the current folder.
    from dagster._core.instance.ref import InstanceRef

    config_dir = _home(tmp_path, "checkout", project_yaml=True)
    temporary = tmp_path / ".tmp_dagster_home_x"
    temporary.mkdir()
    with dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(temporary), config_dir=str(config_dir))) as instance:
        assert isinstance(instance.event_log_storage, LocalEventLogStorage)
        _materialize(instance, "2026-03-01")
    assert (temporary / "history" / "runs" / "index.db").exists()
    assert not (config_dir / "history").exists()
