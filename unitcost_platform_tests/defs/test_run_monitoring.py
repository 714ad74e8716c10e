"""A dead run worker must not stop the platform: run monitoring fails its run, FinOps is told, and
the queue (one run at a time) moves on.

The health check of LocalProcessRunLauncher is tested on real processes; then the whole story runs
with dagster-daemon on the project's dagster.yaml (a one-second monitoring interval): the daily job
blocks on a usage API that does not answer, its worker is killed with -9, and the runs queued
behind it must run.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import dagster as dg
import pytest
import yaml
from dagster._core.events import EngineEventData
from dagster._core.launcher import WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG
from pytest_httpserver import HTTPServer
from werkzeug import Request, Response

from unitcost_platform.defs.jobs import UNIT_COST_JOB
from unitcost_platform.defs.run_launcher import (
    LocalProcessRunLauncher,
    process_is_worker,
    worker_pid,
)
from unitcost_platform.defs.sensors import RUN_FAILURE_SENSOR
from unitcost_platform.settings import PROJECT_ROOT
from unitcost_platform_tests.saas import DAYS, START

BIN = Path(sys.executable).parent
HAS_PROC = Path("/proc/self/stat").exists()
LAUNCHER = {"module": "unitcost_platform.defs.run_launcher", "class": "LocalProcessRunLauncher"}
REQUESTS = {"t1": 1000, "t2": 500, "tf": 500}  # the small SaaS's daily requests per tenant
HOOK = "/hooks/finops"
WORKER = "the run worker"
WORKER_AND_DAEMON = "the daemon, its code server and the run worker"


@pytest.fixture
def instance():
    with dg.instance_for_test(overrides={"run_launcher": LAUNCHER}) as instance:
        yield instance


@pytest.fixture
def sleeper():
    process = subprocess.Popen(["sleep", "120"])
    yield process
    process.kill()
    process.wait()


def _started_run(instance: dg.DagsterInstance, pid: int | None = None, tags: dict | None = None) -> dg.DagsterRun:
    run = instance.add_run(dg.DagsterRun(job_name=UNIT_COST_JOB, run_id=str(uuid.uuid4()),
                                         status=dg.DagsterRunStatus.STARTED, tags=tags or {}))  # fmt: skip
    if pid is not None:
        instance.report_engine_event(f"Started process for run (pid: {pid}).", run, EngineEventData.in_process(pid))
    return run


def _wait(what: str, check, timeout: float, every: float = 1.0):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = check()
        if last:
            return last
        time.sleep(every)
    raise AssertionError(f"timed out after {timeout:g}s waiting for {what} (last: {last!r})")


def test_the_local_instance_monitors_runs_with_a_worker_health_check(tmp_path):
    shutil.copy(PROJECT_ROOT / "dagster.yaml", tmp_path / "dagster.yaml")
    with dg.DagsterInstance.from_config(str(tmp_path)) as instance:
        assert instance.run_monitoring_enabled
        assert isinstance(instance.run_launcher, LocalProcessRunLauncher)
        assert instance.run_launcher.supports_check_run_worker_health
        assert instance.run_monitoring_max_resume_run_attempts == 0
        assert instance.run_monitoring_poll_interval_seconds <= 60
        assert instance.run_retries_enabled and not instance.run_retries_retry_on_asset_or_op_failure
        assert instance.run_coordinator.get_run_queue_config().max_concurrent_runs == 1


def test_a_live_worker_is_running_and_a_killed_one_has_failed(instance, sleeper):
    run = _started_run(instance, sleeper.pid)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.RUNNING
    sleeper.kill()
    sleeper.wait()
    health = instance.run_launcher.check_run_worker_health(run)
    assert health.status == WorkerStatus.FAILED
    assert f"the run worker (process {sleeper.pid}) is gone" in health.msg


@pytest.mark.skipif(not HAS_PROC, reason="zombies are told apart through /proc (Linux)")
def test_a_killed_worker_not_yet_reaped_has_failed(instance, sleeper):
    run = _started_run(instance, sleeper.pid)
    os.kill(sleeper.pid, signal.SIGKILL)
    _wait("the zombie", lambda: Path(f"/proc/{sleeper.pid}/stat").read_text().split(") ")[1].startswith("Z"), 10, 0.1)
    assert instance.run_launcher.check_run_worker_health(run).status == WorkerStatus.FAILED


@pytest.mark.skipif(not HAS_PROC, reason="process start times come from /proc (Linux)")
def test_a_pid_taken_by_a_newer_process_is_not_the_worker(sleeper):
    assert process_is_worker(sleeper.pid, reported_at=time.time())
    # After a reboot PIDs start over: a process started after the worker reported is another one.
    assert not process_is_worker(sleeper.pid, reported_at=time.time() - 60)


def test_what_cannot_be_checked_counts_as_running(instance, sleeper):
    sleeper.kill()
    sleeper.wait()
    assert instance.run_launcher.check_run_worker_health(_started_run(instance)).status == WorkerStatus.RUNNING
    remote = {GRPC_INFO_TAG: json.dumps({"host": "user-code", "port": 4000})}
    assert instance.run_launcher.check_run_worker_health(_started_run(instance, sleeper.pid, remote)).status == WorkerStatus.RUNNING
    local = {GRPC_INFO_TAG: json.dumps({"host": "localhost", "socket": "/tmp/x"})}
    assert instance.run_launcher.check_run_worker_health(_started_run(instance, sleeper.pid, local)).status == WorkerStatus.FAILED


def _query_range(released: threading.Event, request: Request) -> Response:
    """Prometheus's answer for the small SaaS's requests, once the test releases it."""
    released.wait(timeout=600)
    step = int(request.args["step"])
    points = range(int(request.args["start"]), int(request.args["end"]) + 1, step)
    result = [{"metric": {"tenant_id": tenant}, "values": [[p, str(value)] for p in points]} for tenant, value in REQUESTS.items()]
    body = {"status": "success", "data": {"resultType": "matrix", "result": result}}
    return Response(json.dumps(body), content_type="application/json")


@pytest.fixture
def usage_api_and_finops():
    """A usage API (Prometheus) that hangs until `released` is set, and the FinOps webhook."""
    server = HTTPServer(host="127.0.0.1", threaded=True)
    released = threading.Event()
    server.expect_request("/api/v1/query_range").respond_with_handler(lambda request: _query_range(released, request))
    server.expect_request(HOOK, method="POST").respond_with_data("ok")
    server.start()
    try:
        yield server, released
    finally:
        released.set()
        server.stop()


class Platform:
    """dagster-daemon on a temporary DAGSTER_HOME with the project's dagster.yaml."""

    def __init__(self, home: Path, env: dict, logs: Path):
        self.home, self.env, self.logs = home, env, logs
        self.daemon: subprocess.Popen | None = None
        self.starts = 0

    def start_daemon(self) -> None:
        self.starts += 1
        log = (self.logs / f"daemon-{self.starts}.log").open("w")
        self.daemon = subprocess.Popen([str(BIN / "dagster-daemon"), "run", "-w", "workspace.yaml"], cwd=PROJECT_ROOT,
                                       env=self.env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)  # fmt: skip

    def kill_daemon(self, sig: int = signal.SIGKILL) -> None:
        """Signals the daemon's process group: the daemon, its code server and the run workers it launched."""
        if self.daemon is not None and self.daemon.poll() is None:
            os.killpg(self.daemon.pid, sig)
            try:
                self.daemon.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.daemon.pid, signal.SIGKILL)
                self.daemon.wait()

    def launch(self, *partitions: str) -> None:
        """Submits one run of the daily job per partition to the queue, as `dagster job launch` does."""
        processes = [
            subprocess.Popen([str(BIN / "dagster"), "job", "launch", "-w", "workspace.yaml", "-j", UNIT_COST_JOB,
                              "--tags", json.dumps({"dagster/partition": p})],
                             cwd=PROJECT_ROOT, env=self.env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)  # fmt: skip
            for p in partitions
        ]
        for process in processes:
            output, _ = process.communicate(timeout=120)
            assert process.returncode == 0, output[-2000:]

    def runs(self) -> list[dg.DagsterRun]:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return list(instance.get_runs())

    def worker_pid(self, run_id: str) -> int | None:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            found = worker_pid(instance, run_id)
        return found[0] if found else None

    def failure_message(self, run_id: str) -> str:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            [failure] = instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_FAILURE)
        return failure.dagster_event.message

    def sensor_ticked(self, name: str) -> bool:
        with dg.DagsterInstance.from_config(str(self.home)) as instance:
            return any(
                instance.get_ticks(state.instigator_origin_id, state.selector_id, limit=1)
                for state in instance.all_instigator_state()
                if state.name == name
            )

    def tail(self) -> str:
        return "\n".join(f"--- {p.name}\n{p.read_text()[-3000:]}" for p in sorted(self.logs.glob("daemon-*.log")))


@pytest.fixture
def platform(small_saas, tmp_path, usage_api_and_finops):
    server, _ = usage_api_and_finops
    home = tmp_path / "dagster_home"
    home.mkdir()
    instance_config = yaml.safe_load((PROJECT_ROOT / "dagster.yaml").read_text())
    instance_config["run_monitoring"]["poll_interval_seconds"] = 1
    (home / "dagster.yaml").write_text(yaml.safe_dump(instance_config))
    # Storage created up front: the daemon and two `dagster job launch` would otherwise race to
    # create the same SQLite schema.
    dg.DagsterInstance.from_config(str(home)).dispose()
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + (
        "usage:\n"
        "  files: null\n"
        f"  prometheus: {{url: '{server.url_for('')}', timeout_seconds: 600,"
        " metrics: [{metric: requests, series: http_requests_total, kind: counter}]}\n"
        "notifications:\n"
        "  finops: finops\n"
        "  destinations: {finops: {type: webhook, url_env: T_HOOK_FINOPS}}\n"
    ))  # fmt: skip
    env = {
        **os.environ,
        "DAGSTER_HOME": str(home),
        "UNITCOST_DATA_DIR": str(small_saas),
        "UNITCOST_CONFIG": str(config),
        "UNITCOST_DUCKDB_PATH": str(tmp_path / "warehouse.duckdb"),
        "UNITCOST_START_DATE": START.isoformat(),
        "T_HOOK_FINOPS": server.url_for(HOOK),
    }
    logs = tmp_path / "logs"
    logs.mkdir()
    platform = Platform(home, env, logs)
    try:
        yield platform
    finally:
        platform.kill_daemon(signal.SIGTERM)


def _failure_notices(server: HTTPServer) -> list[dict]:
    """The run-failure messages FinOps received (alerts go to the same webhook)."""
    bodies = [json.loads(request.get_data()) for request, _ in list(server.log) if request.path == HOOK]
    return [body for body in bodies if body.get("kind") == "unitcost.run_failure"]


@pytest.mark.parametrize("killed", [WORKER, WORKER_AND_DAEMON])
def test_a_run_killed_with_minus_9_fails_finops_is_told_and_the_queue_moves_on(platform, usage_api_and_finops, killed):
    server, released = usage_api_and_finops
    platform.start_daemon()
    platform.launch(DAYS[3].isoformat(), DAYS[4].isoformat())

    def one_started_with_its_worker():
        started = [r for r in platform.runs() if r.status == dg.DagsterRunStatus.STARTED]
        return started and (pid := platform.worker_pid(started[0].run_id)) and (started[0], pid)

    dead, pid = _wait("a run to start (it then waits for the usage API)", one_started_with_its_worker, timeout=120)
    [queued] = [r for r in platform.runs() if r.run_id != dead.run_id]
    assert queued.status == dg.DagsterRunStatus.QUEUED
    _wait("the run-failure sensor's first tick", lambda: platform.sensor_ticked(RUN_FAILURE_SENSOR), timeout=60)

    if killed == WORKER:
        # The code server that launched the run is still there to see its worker die.
        os.kill(pid, signal.SIGKILL)
        released.set()
    else:
        # The daemon, its code server and the run worker die at once (kill -9 of the process group,
        # as an out-of-memory kill of the machine's Dagster or a container restart does): nothing is
        # left to notice that the worker is gone, and the run stays STARTED until run monitoring of
        # the restarted daemon fails it.
        platform.kill_daemon()
        _wait("the run worker to die", lambda: not process_is_worker(pid, reported_at=time.time()), timeout=10, every=0.1)
        assert {r.run_id: r.status for r in platform.runs()} == {dead.run_id: dg.DagsterRunStatus.STARTED,
                                                                 queued.run_id: dg.DagsterRunStatus.QUEUED}  # fmt: skip
        released.set()
        platform.start_daemon()

    def finished():
        runs = {r.run_id: r for r in platform.runs()}
        retries = [r for r in runs.values() if r.parent_run_id == dead.run_id]
        done = [runs[dead.run_id], runs[queued.run_id], *retries]
        return len(done) == 3 and all(r.is_finished for r in done) and (runs[dead.run_id], runs[queued.run_id], retries[0])

    failed, next_run, retry = _wait("the dead run to fail and the queue to run on", finished, timeout=180, every=2)
    assert failed.status == dg.DagsterRunStatus.FAILURE, platform.tail()
    # One run at a time, yet the run queued behind the dead one ran, and so did the dead one's retry.
    assert next_run.status == dg.DagsterRunStatus.SUCCESS, platform.tail()
    assert retry.status == dg.DagsterRunStatus.SUCCESS and retry.tags["dagster/partition"] == dead.tags["dagster/partition"]

    notices = _wait("FinOps to be told", lambda: _failure_notices(server), timeout=60)
    # Told once, even when the code server and run monitoring both report the dead run failed.
    assert len(notices) == 1, (notices, platform.tail())
    [notice] = notices
    assert notice["run_id"] == dead.run_id and notice["job"] == UNIT_COST_JOB
    if killed == WORKER_AND_DAEMON:
        gone = f"the run worker (process {pid}) is gone"
        assert gone in platform.failure_message(dead.run_id) and gone in notice["error"]
