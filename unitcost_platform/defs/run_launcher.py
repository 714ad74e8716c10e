"""The local run launcher: Dagster's default launcher, plus a health check of the run worker process.

Dagster's run monitoring fails a STARTED run whose worker is gone only when the run launcher can
check the worker's health, and the default launcher cannot. The code server that launched a run
notices when its worker dies, but nothing notices when that code server is gone too (the daemon or
`dagster dev` killed or restarted, the machine rebooted) or when the run was started by the CLI
(`make demo`): the run stays STARTED and, with one run at a time, blocks the queue for good. This
launcher finds the worker's PID in the run's event log and tells run monitoring whether that process
still runs on this machine.
"""

import json
import os
from pathlib import Path

import dagster as dg
from dagster._core.launcher import CheckRunHealthResult, WorkerStatus
from dagster._core.storage.tags import GRPC_INFO_TAG

LOOPBACK_HOSTS = frozenset({"localhost", "127.0.0.1", "::1"})
# The worker reports its PID among the first engine events of a run; later ones are step events.
PID_EVENTS_SEARCHED = 50
# /proc gives a start time to the clock tick and the boot time to the second.
START_TIME_SLACK_SECONDS = 5.0
ZOMBIE = "Z"


def worker_pid(instance: dg.DagsterInstance, run_id: str) -> tuple[int, float] | None:
    """The PID of the run's worker and when it reported it: the first engine event carrying a pid."""
    connection = instance.get_records_for_run(
        run_id, of_type=dg.DagsterEventType.ENGINE_EVENT, limit=PID_EVENTS_SEARCHED
    )
    for record in connection.records:
        event = record.event_log_entry.dagster_event
        data = event.engine_event_data if event else None
        pid = data.metadata.get("pid") if data else None
        if pid is not None:
            return int(str(pid.value)), record.event_log_entry.timestamp
    return None


def _proc_start(pid: int) -> tuple[str, float] | None:
    """State letter and start time (epoch seconds) of a process from /proc; None without /proc."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        boot = next(line for line in Path("/proc/stat").read_text().splitlines() if line.startswith("btime "))
    except (OSError, StopIteration):
        return None
    # The command name in parentheses may hold spaces: fields are counted after its closing one.
    fields = stat[stat.rindex(")") + 2 :].split()
    return fields[0], int(boot.split()[1]) + int(fields[19]) / os.sysconf("SC_CLK_TCK")


def process_is_worker(pid: int, reported_at: float) -> bool:
    """Whether `pid` is still the worker that reported it: it exists, is no zombie, and is not a
    newer process that was given the same PID (after a reboot PIDs start over)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # it exists, as another user's process
    proc = _proc_start(pid)
    if proc is None:  # no /proc (macOS): existence is all there is to go on
        return True
    state, started_at = proc
    return state != ZOMBIE and started_at <= reported_at + START_TIME_SLACK_SECONDS


def runs_on_this_machine(run: dg.DagsterRun) -> bool:
    """Whether the run's worker is a local process: launched through a local code server, or by the CLI."""
    info = run.tags.get(GRPC_INFO_TAG)
    if info is None:
        return True
    grpc = json.loads(info)
    return "socket" in grpc or grpc.get("host") in LOOPBACK_HOSTS


class LocalProcessRunLauncher(dg.DefaultRunLauncher):
    """DefaultRunLauncher whose run workers run monitoring can check: a dead worker fails its run."""

    @property
    def supports_check_run_worker_health(self) -> bool:
        return True

    def check_run_worker_health(self, run: dg.DagsterRun) -> CheckRunHealthResult:
        # Anything but RUNNING fails the run, so whatever cannot be checked counts as running.
        if not runs_on_this_machine(run):
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker is on another machine: not checked")
        found = worker_pid(self._instance, run.run_id)
        if found is None:
            return CheckRunHealthResult(WorkerStatus.RUNNING, "the run worker has not reported its PID yet")
        pid, reported_at = found
        if process_is_worker(pid, reported_at):
            return CheckRunHealthResult(WorkerStatus.RUNNING, run_worker_id=str(pid))
        return CheckRunHealthResult(
            WorkerStatus.FAILED,
            f"the run worker (process {pid}) is gone: it was killed (kill -9, or the out-of-memory "
            "killer) or its machine restarted",
            run_worker_id=str(pid),
        )
