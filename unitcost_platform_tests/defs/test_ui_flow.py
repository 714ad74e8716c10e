"""The UI flow, as a user drives it: dagster-webserver and dagster-daemon on loopback, a backfill
launched through the GraphQL API, its tables and checks, then a tick of the daily schedule."""

import datetime as dt
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import dagster as dg
import polars as pl
import pytest
import requests

from unitcost_platform.settings import PROJECT_ROOT
from unitcost_platform_tests.saas import DAYS, START, read_table

BIN = Path(sys.executable).parent
BACKFILL_DAYS = [d.isoformat() for d in DAYS[:3]]
ASSETS = ["raw_billing", "tenant_usage", "customer_dimension", "tag_coverage", "allocated_cost",
          "unit_cost", "cost_alerts", "growth_efficiency", "cost_anomalies", "margin_forecast"]  # fmt: skip

LAUNCH_BACKFILL = """
mutation Launch($params: LaunchBackfillParams!) {
  launchPartitionBackfill(backfillParams: $params) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on PythonError { message }
    ... on UnauthorizedError { message }
  }
}"""
BACKFILL_STATUS = """
query Backfill($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on PythonError { message }
  }
}"""
SCHEDULE_DRY_RUN = """
mutation Tick($selector: ScheduleSelector!, $timestamp: Float) {
  scheduleDryRun(selectorData: $selector, timestamp: $timestamp) {
    __typename
    ... on DryRunInstigationTick {
      evaluationResult { runRequests { runKey runConfigYaml tags { key value } } skipReason error { message } }
    }
    ... on PythonError { message }
  }
}"""
SCHEDULE_STATE = """
query Schedule($selector: ScheduleSelector!) {
  scheduleOrError(scheduleSelector: $selector) {
    __typename ... on Schedule { cronSchedule scheduleState { status } }
  }
}"""
LAUNCH_RUNS = """
mutation Launch($params: [ExecutionParams!]!) {
  launchMultipleRuns(executionParamsList: $params) {
    __typename
    ... on LaunchMultipleRunsResult { launchMultipleRunsResult { __typename ... on LaunchRunSuccess { run { runId } }
                                                                 ... on PythonError { message } } }
    ... on PythonError { message }
  }
}"""
WORKSPACE = """
{ workspaceOrError { __typename ... on Workspace { locationEntries { name
    locationOrLoadError { __typename ... on PythonError { message } } } } } }"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(what: str, check, timeout: float, every: float = 1.0, detail=None):
    """`check()` until it returns something true; on timeout, its last answer and `detail()` (what
    the failure message should show, e.g. a code location's load error)."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except requests.RequestException as exc:
            last = exc
        else:
            if last:
                return last
        time.sleep(every)
    shown = f"; {detail()!r}" if detail is not None else ""
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r}{shown})")


@pytest.fixture
def dagster_services(small_saas, tmp_path):
    """Webserver and daemon on a temporary DAGSTER_HOME, the small SaaS as data; stopped afterwards."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + "schedules:\n  daily: {running: true}\n")
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UNITCOST_DATA_DIR": str(small_saas),
        "UNITCOST_CONFIG": str(config),
        "UNITCOST_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "UNITCOST_START_DATE": START.isoformat(),
    }
    # The instance's SQLite storage is created once, before the processes start, as `dagster dev`
    # does: the webserver, the daemon and the code server each create a missing database, and two
    # doing it at once can stamp its schema version twice (alembic: "more than one head present"),
    # after which the code location never loads.
    with dg.DagsterInstance.from_config(str(home)):
        pass
    port = _free_port()
    logs = tmp_path / "logs"
    logs.mkdir()
    commands = {
        "webserver": [str(BIN / "dagster-webserver"), "-h", "127.0.0.1", "-p", str(port), "-w", "workspace.yaml"],
        "daemon": [str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"],
    }
    processes = {
        name: subprocess.Popen(cmd, cwd=PROJECT_ROOT, env=env, stdout=(logs / f"{name}.log").open("w"),
                               stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip
        for name, cmd in commands.items()
    }

    class Services:
        url = f"http://127.0.0.1:{port}"
        settings_env = env
        log_dir = logs

        @staticmethod
        def graphql(query: str, **variables) -> dict:
            response = requests.post(f"{Services.url}/graphql", json={"query": query, "variables": variables}, timeout=30)
            response.raise_for_status()
            body = response.json()
            assert "errors" not in body, body["errors"]
            return body["data"]

    try:
        _wait("the webserver", lambda: requests.get(f"{Services.url}/server_info", timeout=5).ok, timeout=300)  # a loaded 2-core machine needs minutes to start it
        yield Services
    finally:
        for process in processes.values():
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for process in processes.values():
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()


def test_backfill_from_the_ui_api_then_the_daily_schedule_tick(dagster_services):
    services = dagster_services
    def locations() -> list[dict]:
        return services.graphql(WORKSPACE)["workspaceOrError"]["locationEntries"]

    entries = _wait(
        "the workspace to load",
        lambda: [e for e in locations()
                 if e["locationOrLoadError"] and e["locationOrLoadError"]["__typename"] == "RepositoryLocation"],
        timeout=120, detail=locations,  # a load error is shown, not only that nothing loaded
    )  # fmt: skip
    assert entries[0]["name"] == "unitcost_platform.definitions"

    launched = services.graphql(LAUNCH_BACKFILL, params={
        "partitionNames": BACKFILL_DAYS,
        "assetSelection": [{"path": [a]} for a in ASSETS],
    })["launchPartitionBackfill"]  # fmt: skip
    assert launched["__typename"] == "LaunchBackfillSuccess", launched
    status = _wait(
        "the backfill to finish",
        lambda: (s := services.graphql(BACKFILL_STATUS, id=launched["backfillId"])["partitionBackfillOrError"]["status"])
        in ("COMPLETED", "COMPLETED_SUCCESS", "FAILED", "COMPLETED_FAILED", "CANCELED") and s,
        timeout=300, every=2,
    )  # fmt: skip
    assert status in ("COMPLETED", "COMPLETED_SUCCESS"), (status, (services.log_dir / "daemon.log").read_text()[-3000:])

    # The daily schedule's tick, as the UI's "Test schedule" does it: evaluate the tick of this
    # morning (06:00 UTC), then launch the run it asks for; it computes yesterday.
    location = entries[0]["name"]
    selector = {"repositoryLocationName": location, "repositoryName": "__repository__", "scheduleName": "unit_cost_daily_schedule"}
    schedule = services.graphql(SCHEDULE_STATE, selector=selector)["scheduleOrError"]
    assert schedule["cronSchedule"] == "0 6 * * *" and schedule["scheduleState"]["status"] == "RUNNING"
    today = dt.datetime.now(dt.UTC).date()
    tick = dt.datetime.combine(today, dt.time(6), tzinfo=dt.UTC).timestamp()
    evaluated = services.graphql(SCHEDULE_DRY_RUN, selector=selector, timestamp=tick)["scheduleDryRun"]
    [request] = evaluated["evaluationResult"]["runRequests"]
    tags = {t["key"]: t["value"] for t in request["tags"]}
    yesterday = (today - dt.timedelta(days=1)).isoformat()
    assert tags["dagster/partition"] == yesterday
    launched_runs = services.graphql(LAUNCH_RUNS, params=[{
        "selector": {"repositoryLocationName": location, "repositoryName": "__repository__", "jobName": "unit_cost_daily"},
        "runConfigData": request["runConfigYaml"],
        "executionMetadata": {"tags": [{"key": k, "value": v} for k, v in tags.items()]},
    }])["launchMultipleRuns"]["launchMultipleRunsResult"]  # fmt: skip
    assert launched_runs[0]["__typename"] == "LaunchRunSuccess", launched_runs
    run_id = launched_runs[0]["run"]["runId"]
    home = Path(services.settings_env["DAGSTER_HOME"])

    def finished():
        with dg.DagsterInstance.from_config(str(home)) as instance:
            run = instance.get_run_by_id(run_id)
            return run if run.is_finished else None

    run = _wait("the scheduled run (queued, then launched by the daemon)", finished, timeout=240, every=2)
    assert run.status == dg.DagsterRunStatus.SUCCESS and run.tags["dagster/partition"] == yesterday

    class _S:
        duckdb_path = Path(services.settings_env["UNITCOST_DUCKDB_PATH"])

    unit = read_table(_S, "unit_cost")
    assert sorted({d.isoformat() for d in unit["day"]}) == [*BACKFILL_DAYS, yesterday]
    # Yesterday has no billing in the small SaaS: its customers are there, at zero cost.
    assert unit.filter(pl.col("day") == dt.date.fromisoformat(yesterday))["total_cost"].to_list() == [0.0, 0.0, 0.0]
    assert read_table(_S, "raw_billing")["x_ChargeDate"].n_unique() == 3
    with dg.DagsterInstance.from_config(str(home)) as instance:
        history = instance.event_log_storage.get_asset_check_execution_history(
            dg.AssetCheckKey(dg.AssetKey("allocated_cost"), "conservation"), limit=20
        )
        assert {r.partition for r in history} >= set(BACKFILL_DAYS)
        assert all(r.status.value == "SUCCEEDED" for r in history if r.partition in BACKFILL_DAYS)
