"""A warehouse file another process holds, or one that cannot be written, fails the run within
seconds with the cause and what to do, instead of after minutes of retries per step."""

import os
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from types import SimpleNamespace

import dagster as dg
import duckdb
import pytest

from unitcost_platform.defs.io_managers import TransactionalDuckDbClient
from unitcost_platform_tests.saas import DAYS, run_range

HOLD_LOCK = "import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); print('locked', flush=True); time.sleep(600)"
# A held lock is waited for a few seconds (LOCK_WAIT_SECONDS), not retried for minutes; the run's
# three root steps (raw_billing, tenant_usage, customer_dimension) each wait before failing.
LOCK_WAIT_BOUNDS = (2.0, 10.0)
RUN_SECONDS = 60


@pytest.fixture
def settings(small_saas, make_settings):
    settings = make_settings(small_saas)
    duckdb.connect(str(settings.duckdb_path)).close()
    return settings


@pytest.fixture
def lock_holder(settings) -> Iterator[int]:
    """Another process with the warehouse open read-write, as a `duckdb` shell keeps it; its PID."""
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(settings.duckdb_path)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        yield holder.pid
    finally:
        holder.kill()
        holder.wait()


@pytest.fixture
def read_only_warehouse(settings) -> Iterator[Path]:
    """The warehouse file made read-only: immutable for root (which ignores permission bits), mode 444 otherwise."""
    path = settings.duckdb_path
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i", str(path)], check=True, capture_output=True)
        try:
            yield path
        finally:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    else:
        path.chmod(0o444)
        try:
            yield path
        finally:
            path.chmod(0o644)


def _connect(path: Path) -> None:
    context = SimpleNamespace(resource_config={"database": str(path), "connection_config": {}})
    with TransactionalDuckDbClient.connect(context, None):
        pass


def _step_failures(result) -> dict[str, str]:
    return {
        e.step_key: e.step_failure_data.user_failure_data.description
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE and e.step_failure_data.user_failure_data
    }


def test_a_lock_held_by_another_process_is_waited_for_briefly_then_names_the_holder(settings, lock_holder):
    started = time.monotonic()
    with pytest.raises(dg.Failure) as failure:
        _connect(settings.duckdb_path)
    waited = time.monotonic() - started
    assert LOCK_WAIT_BOUNDS[0] <= waited < LOCK_WAIT_BOUNDS[1]
    message = failure.value.description
    assert f"the warehouse {settings.duckdb_path} cannot be opened for writing" in message
    assert f"(PID {lock_holder})" in message and "Conflicting lock" in message
    assert "stop that process" in message
    assert not failure.value.allow_retries


def test_a_lock_released_while_waiting_is_taken(settings):
    holder = subprocess.Popen([sys.executable, "-c", HOLD_LOCK, str(settings.duckdb_path)], stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "locked"
    threading.Timer(1.0, holder.kill).start()
    try:
        _connect(settings.duckdb_path)
    finally:
        holder.kill()
        holder.wait()


def test_a_locked_warehouse_fails_the_run_in_seconds_without_retries(settings, lock_holder):
    started = time.monotonic()
    result = run_range(settings, DAYS[0], DAYS[0], raise_on_error=False)
    elapsed = time.monotonic() - started
    assert not result.success
    failures = _step_failures(result)
    assert set(failures) == {"raw_billing", "tenant_usage", "customer_dimension"}
    assert all(f"(PID {lock_holder})" in message and str(settings.duckdb_path) in message for message in failures.values())
    assert not [e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_UP_FOR_RETRY]
    assert elapsed < RUN_SECONDS


def test_a_read_only_warehouse_fails_the_run_at_once_with_the_cause(settings, read_only_warehouse):
    started = time.monotonic()
    with pytest.raises(dg.Failure) as failure:
        _connect(read_only_warehouse)
    assert time.monotonic() - started < 1
    message = failure.value.description
    assert f'Cannot open file "{read_only_warehouse}"' in message and "read-only for this process" in message

    started = time.monotonic()
    result = run_range(settings, DAYS[0], DAYS[0], raise_on_error=False)
    elapsed = time.monotonic() - started
    assert not result.success
    failures = _step_failures(result)
    assert set(failures) == {"raw_billing", "tenant_usage", "customer_dimension"}
    assert all("read-only for this process" in message for message in failures.values())
    assert elapsed < RUN_SECONDS
