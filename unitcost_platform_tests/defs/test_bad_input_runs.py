"""Bad numbers are refused before they overwrite a good day, and config errors read as messages.

Real Dagster runs on the small SaaS: every day is computed first; then a file with one bad value
arrives for the last day and that day is run again. The run must fail naming the file and row, and
every table must still hold the good day (before, NaN was written to raw_billing, tag_coverage,
allocated_cost and team_spend, and only then did the conservation check fail with "$nan").
"""

import os
import subprocess
import sys

import dagster as dg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.definitions import build_definitions
from unitcost_platform_tests.saas import DAYS, TABLES, run_range, sorted_table

LAST = DAYS[-1]


def _step_failures(result) -> str:
    return "\n".join(
        e.step_failure_data.error.message
        for e in result.all_events
        if e.event_type == dg.DagsterEventType.STEP_FAILURE
    )


@pytest.fixture
def computed(small_saas, make_settings):
    settings = make_settings(small_saas)
    assert run_range(settings, DAYS[0], LAST).success
    return settings, {t: sorted_table(settings, t) for t in TABLES}


def _unchanged(settings, before) -> None:
    for table in TABLES:
        assert_frame_equal(sorted_table(settings, table), before[table], check_exact=True)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), 1e300])
def test_a_bad_cost_in_a_parquet_file_leaves_the_good_day_intact(computed, small_saas, bad):
    settings, before = computed
    path = small_saas / "billing" / "late-credit.parquet"
    pq.write_table(pa.table({
        "BilledCost": [1.0, 1.0], "EffectiveCost": pa.array([1.0, bad], pa.float64()), "BillingCurrency": ["USD"] * 2,
        "ChargePeriodStart": pa.array([f"{LAST}T01:00:00Z", f"{LAST}T02:00:00Z"]), "ChargeCategory": ["Usage"] * 2,
        "ProviderName": ["AWS"] * 2, "ServiceName": ["Amazon EC2"] * 2, "ServiceCategory": ["Compute"] * 2,
        "Tags": ['{"tenant_id": "t1"}'] * 2,
    }), path)  # fmt: skip
    result = run_range(settings, LAST, LAST, raise_on_error=False)
    assert not result.success
    message = _step_failures(result)
    assert f"{path}: column EffectiveCost has 1" in message and "row 2" in message
    assert "$nan" not in message
    _unchanged(settings, before)


def test_a_nan_usage_value_leaves_the_good_day_intact(computed, small_saas):
    settings, before = computed
    path = small_saas / "usage" / "late.parquet"
    pq.write_table(pa.table({
        "usage_date": [LAST.isoformat()], "tenant_id": ["t1"], "metric": ["sessions"],
        "value": pa.array([float("nan")], pa.float64()),
    }), path)  # fmt: skip
    result = run_range(settings, LAST, LAST, raise_on_error=False)
    assert not result.success
    assert f"{path}: column value has 1 non-finite value(s) (NaN or infinity): row 1 'NaN'" in _step_failures(result)
    _unchanged(settings, before)


def test_a_config_error_during_a_run_is_its_message(computed, small_saas):
    """Config changed after the code location loaded: the step fails with the file, key and fix only."""
    settings, before = computed
    job = build_definitions(settings).resolve_job_def("unit_cost_daily")  # the code location as loaded
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + "alerts:\n  p1_cost_to_mr: 0.3\n")
    result = job.execute_in_process(
        instance=dg.DagsterInstance.ephemeral(), partition_key=LAST.isoformat(), raise_on_error=False
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.STEP_FAILURE)
    error = failure.step_failure_data.error
    assert f"{config}: alerts.p1_cost_to_mr: unknown key" in error.message
    assert error.cause is None  # no second traceback of where the config was read
    _unchanged(settings, before)


def test_the_cli_prints_a_config_error_without_a_traceback(small_saas, tmp_path):
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + "billing:\n  cost_colum: BilledCost\n")
    env = {**os.environ, "UNITCOST_CONFIG": str(config), "UNITCOST_DATA_DIR": str(small_saas),
           "UNITCOST_DUCKDB_PATH": str(tmp_path / "w.duckdb"), "UNITCOST_START_DATE": DAYS[0].isoformat(),
           "DAGSTER_HOME": str(tmp_path)}  # fmt: skip
    done = _launch_raw_billing(env)
    assert done.returncode != 0
    assert f"{config}: billing.cost_colum: unknown key" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr


def _launch_raw_billing(env: dict) -> subprocess.CompletedProcess:
    """The README's command line for one asset and day: `dg launch -m ... --assets raw_billing --partition <day>`."""
    return subprocess.run(
        [os.path.join(os.path.dirname(sys.executable), "dg"), "launch", "-m", "unitcost_platform.definitions",
         "--assets", "raw_billing", "--partition", LAST.isoformat()],
        env=env, capture_output=True, text=True, timeout=180,
    )  # fmt: skip


def test_the_cli_prints_an_environment_error_without_a_traceback(small_saas, tmp_path):
    env = {**os.environ, "UNITCOST_START_DATE": "yesterday", "DAGSTER_HOME": str(tmp_path)}
    done = _launch_raw_billing(env)
    assert done.returncode != 0
    assert "UNITCOST_START_DATE='yesterday' is not a date" in done.stderr
    assert "Traceback" not in done.stderr, done.stderr
