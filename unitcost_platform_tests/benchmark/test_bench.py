"""The benchmark: a smoke-size run of the documented command, and its equality check failing when it should.

Timings are not asserted (speed is measured by the benchmark, not by tests); the run must produce
every figure, find ours and the DuckDB SQL baseline equal, and print the ratio. `--dagster` (the real
path) the same way: every step of the run listed with its time, the peak RSS of its processes, the
ratio to the baseline; what it reads from a run's event log is tested on a tiny Dagster job.
"""

import datetime as dt
import re
import subprocess
import sys
import weakref
from pathlib import Path

import dagster as dg
import polars as pl
import psutil
import pytest

from unitcost_platform.benchmark import dagster_run
from unitcost_platform.benchmark.run import SIZES, TARGETS, compare_allocations
from unitcost_platform.definitions import build_definitions
from unitcost_platform.defs.rollup import log_rows_loaded
from unitcost_platform.demo import scale
from unitcost_platform.demo.scale import ScaleSpec, generate_scale
from unitcost_platform.settings import Settings

UNITCOST = Path(sys.executable).parent / "unitcost"
D = dt.date(2026, 3, 1)


def _smoke_bench(tmp_path: Path, mode: str, timeout: int) -> subprocess.CompletedProcess:
    """`unitcost bench --sizes smoke --runs 1 <mode>` as a user runs it; it must succeed."""
    done = subprocess.run(
        [str(UNITCOST), "bench", "--sizes", "smoke", "--runs", "1", mode, "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    return done


def test_smoke_size_prints_every_figure_and_matches_the_baseline(tmp_path):
    done = _smoke_bench(tmp_path, "--no-backfill", timeout=600)
    out = done.stdout
    for stage in ("read billing (raw_billing, every column)", "tag coverage", "allocation",
                  "unit cost (30-day run rate, 7-day trends)", "alerts (14-day service drivers)",
                  "end to end", "ratio ours / DuckDB", "ours, allocation + unit cost",
                  "unit-cost anomalies", "margin forecast", "anomalies + forecast, share of the above"):  # fmt: skip
        assert stage in out, out
    assert "same dollars on the same keys" in out
    assert "20,000 line items, 200 tenants" in out


def _allocation(rows: list[tuple]) -> pl.DataFrame:
    return pl.DataFrame(
        rows, schema={"day": pl.Date, "customer_id": pl.String, "tenant_id": pl.String, "service_name": pl.String,
                      "pool": pl.String, "allocated_cost": pl.Float64}, orient="row",
    )  # fmt: skip


def test_the_equality_check_catches_a_moved_dollar_and_a_missing_key():
    ours = _allocation([(D, "C1", "t1", "EC2", "direct", 10.0), (D, None, None, "NAT", "default_other", 2.0)])
    assert compare_allocations(ours, ours.reverse()) is None
    moved = _allocation([(D, "C1", "t1", "EC2", "direct", 9.0), (D, None, None, "NAT", "default_other", 3.0)])
    assert "different amounts" in compare_allocations(ours, moved)
    missing = ours.head(1)
    assert "only on one side" in compare_allocations(ours, missing)


def test_file_by_file_allocation_has_one_row_per_key_and_equals_the_whole_day(tmp_path):
    """The 100m size's path (ours_by_file): the files' rows are streamed into DuckDB and summed in
    one aggregation, so allocation reads one row per key as from the warehouse, and gives what the
    whole-day read and the baseline give."""
    from unitcost_platform.benchmark import ours
    from unitcost_platform.benchmark.baseline import run_baseline

    spec = ScaleSpec(line_items_per_day=12_000, tenants=60, services=5, metrics=3, rows_per_file=3_000)
    data = generate_scale(tmp_path / "data", spec, log=lambda _: None)
    assert len(list((data / "billing").glob("*.parquet"))) == 4
    by_file = ours.ours(data, tmp_path / "by_file.parquet", by_file=True)
    whole = ours.ours(data, tmp_path / "whole.parquet")
    assert by_file["line_items"] == whole["line_items"] == 12_000
    parts, day = pl.read_parquet(tmp_path / "by_file.parquet"), pl.read_parquet(tmp_path / "whole.parquet")
    keys = ["day", "customer_id", "tenant_id", "service_name", "pool"]
    assert parts.columns == day.columns == [*keys, "allocated_cost"]
    assert parts.select(keys).n_unique() == parts.height == day.height
    assert compare_allocations(parts, day) is None
    assert compare_allocations(parts, run_baseline(data, [D])) is None


def test_file_by_file_allocation_raises_the_readers_error_for_a_bad_file(tmp_path):
    """A bad file met while DuckDB pulls the stream fails the run with the reader's own message (the
    file and the row), not DuckDB's report of a failed stream, and nothing is written."""
    from unitcost_platform.benchmark import ours
    from unitcost_platform.errors import InputDataError
    from unitcost_platform.sources.billing.files import read_billing_files

    spec = ScaleSpec(line_items_per_day=12_000, tenants=60, services=5, metrics=3, rows_per_file=3_000)
    data = generate_scale(tmp_path / "data", spec, log=lambda _: None)
    bad = sorted((data / "billing").glob("*.parquet"))[2]
    frame = pl.read_parquet(bad)
    frame.with_columns(Tags=pl.when(pl.int_range(pl.len()) == 41).then(pl.lit("{tenant: broken")).otherwise("Tags")).write_parquet(bad)
    with pytest.raises(InputDataError) as raised:
        ours.ours(data, tmp_path / "by_file.parquet", by_file=True)
    with pytest.raises(InputDataError) as alone:
        read_billing_files([bad], [D], cost_column=ours.COST_COLUMN, tenant=ours.TENANT, spread=True)
    assert str(raised.value) == str(alone.value)
    assert bad.name in str(raised.value) and "row 42" in str(raised.value), str(raised.value)
    assert not (tmp_path / "by_file.parquet").exists()


def _modules_loaded_by_worker(kind: str, data: Path, out: Path) -> set[str]:
    """The modules a worker process of `kind` has loaded once it has run, as `unitcost bench` starts it."""
    code = (
        "import sys; from pathlib import Path; from unitcost_platform.benchmark import workers; "
        f"workers.main([{kind!r}, {str(data)!r}, {str(out)!r}]); print(' '.join(sorted(sys.modules)))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return set(done.stdout.strip().splitlines()[-1].split())


def test_each_worker_process_loads_what_its_kind_runs_and_nothing_more(tmp_path):
    """The whole process is measured, so the baseline's must not carry this platform's imports (its
    config and connectors, scipy for the anomaly and forecast models), nor ours the models it does not run."""
    spec = ScaleSpec(line_items_per_day=2_000, tenants=20, services=4, metrics=3)
    data = generate_scale(tmp_path / "data", spec, log=lambda _: None)
    baseline = _modules_loaded_by_worker("duckdb", data, tmp_path / "baseline.parquet")
    assert {"duckdb", "polars", "unitcost_platform.benchmark.baseline"} <= baseline
    platform = {m for m in baseline if m.startswith("unitcost_platform.")}
    assert platform == {
        "unitcost_platform.benchmark", "unitcost_platform.benchmark.baseline", "unitcost_platform.benchmark.measure",
        "unitcost_platform.benchmark.workers", "unitcost_platform.config_base",
    }  # fmt: skip
    assert "scipy" not in baseline
    ours = _modules_loaded_by_worker("ours", data, tmp_path / "ours.parquet")
    assert {"unitcost_platform.transforms.allocation", "unitcost_platform.sources.billing.files"} <= ours
    assert not {"scipy", "unitcost_platform.transforms.anomalies", "unitcost_platform.transforms.forecast"} & ours
    # Nor unitcost.yaml's assembly from every connector (pydantic models of each source, requests):
    # ours allocates with the default pools, as the baseline's SQL spells them.
    assert not {"unitcost_platform.config", "unitcost_platform.sources.registry", "requests", "yaml"} & ours
    assert compare_allocations(pl.read_parquet(tmp_path / "ours.parquet"), pl.read_parquet(tmp_path / "baseline.parquet")) is None


def test_ours_allocates_with_the_configs_defaults():
    """Ours spells the defaults instead of loading unitcost.yaml's models: they are UnitcostConfig()'s."""
    from unitcost_platform.benchmark import ours
    from unitcost_platform.config import UnitcostConfig

    defaults = UnitcostConfig()
    assert defaults.resolved_pools() == ours.POOLS
    assert [p.name for p in ours.POOLS] == ["default_compute_networking", "default_data", "default_other"]
    assert defaults.billing.cost_column == ours.COST_COLUMN
    assert defaults.tenant == ours.TENANT
    assert defaults.customers.non_paying_tiers == ours.NON_PAYING


def test_scale_data_has_the_asked_shape(tmp_path):
    spec = ScaleSpec(line_items_per_day=5_000, tenants=50, services=6, metrics=3, untagged_share=0.2, rows_per_file=2_000)
    out = generate_scale(tmp_path, spec, log=lambda _: None)
    billing = pl.read_parquet(sorted((out / "billing").glob("*.parquet")))
    assert billing.height == 5_000 and len(list((out / "billing").glob("*.parquet"))) == 3
    assert billing["ServiceName"].n_unique() == 6
    untagged = billing["Tags"].str.contains("tenant_id").not_().mean()
    assert 0.15 < untagged < 0.25
    usage = pl.read_parquet(out / "usage" / "usage.parquet")
    assert usage["metric"].n_unique() == 3 and usage["tenant_id"].n_unique() == 50
    assert pl.read_parquet(out / "customers.parquet").height == 50


def test_generating_keeps_one_part_in_memory_at_a_time(tmp_path, monkeypatch):
    """A billing file (and a day of usage) is dropped before the next is made: 100M line items never
    need more memory than one part."""
    live: list[weakref.ref] = []
    most = 0

    def tracked(make):
        def part(*args, **kwargs):
            nonlocal most
            frame = make(*args, **kwargs)
            live.append(weakref.ref(frame))
            most = max(most, sum(ref() is not None for ref in live))
            return frame

        return part

    monkeypatch.setattr(scale, "_billing_part", tracked(scale._billing_part))
    monkeypatch.setattr(scale, "_usage_day", tracked(scale._usage_day))
    spec = ScaleSpec(line_items_per_day=5_000, tenants=40, services=4, metrics=2, days=2, rows_per_file=2_000)
    generate_scale(tmp_path, spec, log=lambda _: None)
    assert len(live) == 2 * 3 + 2 and most == 1
    assert pl.read_parquet(tmp_path / "usage" / "usage.parquet").height == 2 * 40 * 2


def test_the_100m_size_is_defined_and_not_in_the_in_process_targets():
    spec = SIZES["100m"]
    assert (spec.line_items_per_day, spec.tenants, spec.services, spec.metrics) == (100_000_000, 200_000, 40, 5)
    assert spec.rows_per_file < spec.line_items_per_day and "100m" not in TARGETS
    assert dagster_run.TARGETS["100m"].max_peak_gib == 8.0


STEP_LINE = r"^  (?P<step>\w+)(?: \(check\))? +(?P<seconds>\d+\.\d{3}) +(?P<peak>[\d,]+) MiB$"


def _step_lines(out: str) -> dict[str, float]:
    """step -> seconds of the report's step lines (each also shows the step's peak RSS)."""
    return {m["step"]: float(m["seconds"]) for m in re.finditer(STEP_LINE, out, re.M)}


def test_dagster_mode_reports_every_step_the_peak_rss_and_the_baseline_ratio(tmp_path):
    """`unitcost bench --sizes smoke --dagster`: one real `dagster asset materialize` of every asset."""
    done = _smoke_bench(tmp_path, "--dagster", timeout=300)
    out = done.stdout
    assert "20,000 line items, 200 tenants" in out and "medians of 1 run(s)" in out
    assert "Dagster run" in done.stderr and "succeeded" in done.stderr  # the progress lines
    # Every asset of the definitions the run loaded is a step with its time; so is every check.
    run_dir = tmp_path / "dagster" / "smoke"
    settings = Settings.from_env({
        "UNITCOST_DATA_DIR": str(tmp_path), "UNITCOST_CONFIG": str(run_dir / "unitcost.yaml"),
        "UNITCOST_DUCKDB_PATH": str(tmp_path / "unused.duckdb"), "UNITCOST_START_DATE": "2026-03-01",
    })  # fmt: skip
    graph = build_definitions(settings).resolve_asset_graph()
    assets = {key.to_user_string() for key in graph.get_all_asset_keys()}
    steps = _step_lines(out)
    assert assets <= steps.keys(), sorted(assets - steps.keys())
    assert out.count(" (check) ") == len(graph.asset_check_keys) > 0
    assert f"({len(assets)} assets, {len(graph.asset_check_keys)} checks)" in out
    for figure in ("sum of the steps", "outside the steps", "whole process (wall)"):
        assert re.search(rf"^  {re.escape(figure)}.* +\d+\.\d{{3}}", out, re.M), figure
    peak = re.search(r"peak RSS, every process of the run \(summed\) +([\d,]+) MiB", out)
    assert peak and int(peak[1].replace(",", "")) > 0, out
    assert re.search(r"rows loaded from the warehouse into Python +(n/a|[\d,]+)", out), out
    assert re.search(r"DuckDB SQL baseline \(files -> allocation\), process +\d+\.\d{3} s", out), out
    assert re.search(r"ratio real path / DuckDB baseline \(whole process\) +\d+\.\d{2}x", out), out
    # The run succeeded in its own instance (the bench read it from there); its warehouse is gone.
    run_id, status, _ = dagster_run.read_run(run_dir / "dagster_home")
    assert status == "SUCCESS" and not list(run_dir.glob("warehouse.duckdb*"))


def test_dagster_mode_measures_the_day_after_its_history(tmp_path):
    """`--history-days 8`: the 8 days are materialized once (not measured), and the measured run of the
    ninth starts from a copy of them, so its trailing windows are filled: service_unit_cost reads the
    30-day window of the day 7 days earlier and then the day's, each summed and reduced per service
    by the warehouse."""
    done = subprocess.run(
        [str(UNITCOST), "bench", "--sizes", "smoke", "--runs", "1", "--dagster", "--history-days", "8",
         "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "every asset of 2026-03-09 in one `dagster asset materialize`" in done.stdout, done.stdout
    assert "after 8 days of history" in done.stdout and "the history took" in done.stderr
    home = tmp_path / "dagster" / "smoke" / "dagster_home"
    run_id, status, entries = dagster_run.read_run(home)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert len(instance.get_runs()) == 2  # the history's range run, copied, and the measured run
    messages = [getattr(e, "user_message", "") or "" for e in entries]
    # service_unit_cost: D-7's window, then D's, one read each.
    read = "rows of allocated_cost (rollup summed over 1 window(s) reduced by service_month, 9 day(s))"
    assert sum(read in m for m in messages) == 2, messages
    assert status == "SUCCESS" and (tmp_path / "dagster" / "smoke-history" / "warehouse.duckdb").exists()


def test_history_days_needs_the_dagster_mode(tmp_path):
    done = subprocess.run(
        [str(UNITCOST), "bench", "--sizes", "smoke", "--history-days", "8", "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and "--history-days measures the real path: add --dagster" in done.stderr


def test_a_failed_dagster_run_fails_the_bench_with_its_stderr(tmp_path):
    spec = ScaleSpec(line_items_per_day=200, tenants=5, services=2, metrics=2)
    data = generate_scale(tmp_path / "data", spec, log=lambda _: None)
    (data / "customers.parquet").write_text("not parquet")
    with pytest.raises(dagster_run.BenchRunFailed) as failed:
        dagster_run.materialize_day(data, spec.start, tmp_path / "run")
    message = str(failed.value)
    assert "failed (exit code 1, run " in message and "FAILURE" in message
    assert "customer_dimension" in message and "stderr (last" in message


class _Rows(dg.ConfigurableIOManager):
    """Keeps frames in memory; `counts` says whether it logs its rows as the warehouse IO managers do."""

    counts: bool = True

    def handle_output(self, context: dg.OutputContext, obj: pl.DataFrame) -> None:
        _STORE[context.asset_key.to_user_string()] = obj

    def load_input(self, context: dg.InputContext) -> pl.DataFrame:
        frame = _STORE[context.asset_key.to_user_string()]
        if self.counts:
            log_rows_loaded(context, frame.height)
        return frame


_STORE: dict[str, pl.DataFrame] = {}


@dg.asset
def bench_a() -> pl.DataFrame:
    return pl.DataFrame({"x": range(7)})


@dg.asset
def bench_b(bench_a: pl.DataFrame) -> pl.DataFrame:
    return bench_a.head(3)


@dg.asset
def bench_c(bench_a: pl.DataFrame, bench_b: pl.DataFrame) -> pl.DataFrame:
    return pl.concat([bench_a, bench_b])


@dg.asset_check(asset=bench_c)
def bench_c_check(bench_c: pl.DataFrame) -> dg.AssetCheckResult:
    return dg.AssetCheckResult(passed=bench_c.height == 10)


def _tiny_run(counts: bool) -> list:
    """The event log of one run of three assets and a check of the last."""
    with dg.instance_for_test() as instance:
        result = dg.materialize(
            [bench_a, bench_b, bench_c, bench_c_check], resources={"io_manager": _Rows(counts=counts)},
            instance=instance,
        )  # fmt: skip
        assert result.success
        return list(instance.all_logs(result.run_id))


def test_rows_loaded_sums_the_io_managers_metadata_of_every_loaded_input():
    rows = dagster_run.rows_loaded(_tiny_run(counts=True))
    # b loads a (7); c loads a (7) and b (3); the check loads c (10).
    assert rows == dagster_run.RowsLoaded(rows=7 + 7 + 3 + 10, reporting=4, inputs=4)


def test_rows_loaded_is_none_when_no_input_reports_it():
    assert dagster_run.rows_loaded(_tiny_run(counts=False)) == dagster_run.RowsLoaded(rows=None, reporting=0, inputs=4)


def test_step_times_come_from_the_event_log_in_start_order():
    steps = dagster_run.step_times(_tiny_run(counts=False))
    assert [(s.key, s.kind) for s in steps] == [
        ("bench_a", "asset"), ("bench_b", "asset"), ("bench_c", "asset"), ("bench_c_bench_c_check", "check"),
    ]  # fmt: skip
    assert all(s.seconds >= 0 for s in steps)


def test_the_process_tree_peak_counts_the_descendants(tmp_path):
    """The sampled sum covers a grandchild: the child here is small, its own child holds 200 MiB."""
    grandchild = "import time; x = b'1' * (200 * 2**20); time.sleep(2)"
    child = f"import subprocess, sys; subprocess.run([sys.executable, '-c', {grandchild!r}])"
    process = subprocess.Popen([sys.executable, "-c", child])
    with dagster_run.TreePeak(process.pid, interval=0.05) as peak:
        process.wait()
    assert peak.samples > 1 and peak.peak > 200 * 2**20
    assert dagster_run.tree_rss(psutil.Process()) > 0
