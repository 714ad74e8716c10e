"""`unitcost bench`: the performance figures, the DuckDB SQL baseline next to ours, and the targets.

For each size: generate the scale data once (cached under the work dir), then, several times, run
each measured process fresh (`workers.py`): the pipeline's stages one after another; ours (files to
allocation); ours with unit cost; the DuckDB baseline. Ours and the baseline must allocate the same
dollars to the same (day, customer, tenant, service, pool) before the baseline's time is reported.
Figures are medians over the runs. Optionally, the 365-day demo backfill through Dagster.

`--dagster` measures the real path instead (`dagster_run.py`): every asset of one day per size in
one `dagster asset materialize` process, against the same DuckDB baseline.
"""

import datetime as dt
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark.ours import ALLOCATION_KEYS
from unitcost_platform.benchmark.stages import ANOMALY_STAGE, FORECAST_STAGE
from unitcost_platform.demo.scale import ScaleSpec, generate_scale

SIZES: dict[str, ScaleSpec] = {
    "smoke": ScaleSpec(line_items_per_day=20_000, tenants=200, services=10, metrics=5),
    "1m": ScaleSpec(line_items_per_day=1_000_000, tenants=10_000, services=40, metrics=5),
    "10m": ScaleSpec(line_items_per_day=10_000_000, tenants=100_000, services=40, metrics=5),
    # Generated in files of rows_per_file line items, one at a time; no in-process targets (TARGETS).
    "100m": ScaleSpec(line_items_per_day=100_000_000, tenants=200_000, services=40, metrics=5),
}
# Sizes whose in-process figures are files -> allocation only (ours, file by file into DuckDB's sums,
# and the DuckDB baseline): the stage-by-stage worker holds a day of every column, and ours a day of
# the columns allocation reads, which 100M line items do not fit.
ALLOCATION_ONLY = {"100m"}
# The targets: (ours allocation + unit cost seconds, peak MiB); ratio limits for every size.
TARGETS = {"1m": (1.0, 1024.0), "10m": (6.0, 3072.0)}
MAX_TIME_RATIO, MAX_MEMORY_RATIO, MAX_SCALING = 1.0, 1.5, 10.0
# Issue 18: files -> allocation, whole process, ours / DuckDB at most MAX_TIME_RATIO at these sizes.
PROCESS_RATIO_SIZES = {"1m", "10m", "100m"}
# Issue 16: unit-cost anomalies and the margin forecast add at most this share of allocation + unit cost.
MAX_MODEL_SHARE = 0.25
BACKFILL_TARGET_SECONDS = 120.0
EQUAL_TOLERANCE = 1e-9  # relative, per key, and on the total


@dataclass
class Measured:
    seconds: list[float] = field(default_factory=list)
    process_seconds: list[float] = field(default_factory=list)
    peak_mib: list[float] = field(default_factory=list)

    def add(self, figure: dict, process_seconds: float | None = None) -> None:
        self.seconds.append(figure["seconds"])
        self.peak_mib.append(figure["peak_mib"])
        if process_seconds is not None:
            self.process_seconds.append(process_seconds)

    @property
    def median_seconds(self) -> float:
        return statistics.median(self.seconds)

    @property
    def median_process_seconds(self) -> float:
        return statistics.median(self.process_seconds)

    @property
    def median_peak(self) -> float:
        return statistics.median(self.peak_mib)


def _worker(kind: str, data: Path, out: Path) -> tuple[dict, float]:
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "unitcost_platform.benchmark.workers", kind, str(data), str(out)],
        capture_output=True, text=True,
    )  # fmt: skip
    wall = time.perf_counter() - start
    if done.returncode != 0:
        raise RuntimeError(f"benchmark worker {kind} on {data} failed:\n{done.stderr[-4000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1]), wall


def compare_allocations(ours: pl.DataFrame, baseline: pl.DataFrame) -> str | None:
    """None when both put the same dollars on the same keys; else what differs."""
    keys = ALLOCATION_KEYS

    def totals(frame: pl.DataFrame) -> pl.DataFrame:
        return frame.group_by(keys).agg(pl.col("allocated_cost").sum())

    joined = totals(ours).join(totals(baseline), on=keys, how="full", coalesce=True, nulls_equal=True, suffix="_sql")
    missing = joined.filter(pl.col("allocated_cost").is_null() | pl.col("allocated_cost_sql").is_null())
    if missing.height:
        return f"{missing.height} key(s) only on one side, e.g. {missing.head(3).to_dicts()}"
    off = joined.filter(
        (pl.col("allocated_cost") - pl.col("allocated_cost_sql")).abs()
        > EQUAL_TOLERANCE * pl.max_horizontal(pl.col("allocated_cost").abs(), pl.lit(1.0))
    )
    if off.height:
        return f"{off.height} key(s) with different amounts, e.g. {off.head(3).to_dicts()}"
    total, total_sql = ours["allocated_cost"].sum(), baseline["allocated_cost"].sum()
    if abs(total - total_sql) > EQUAL_TOLERANCE * max(abs(total), 1.0):
        return f"totals differ: {total!r} vs {total_sql!r}"
    return None


@dataclass
class SizeResult:
    name: str
    spec: ScaleSpec
    stages: dict[str, Measured]
    stage_rows: dict[str, int]
    ours: Measured
    ours_unit: Measured
    duckdb: Measured
    equal: bool
    difference: str | None


def run_size(name: str, spec: ScaleSpec, work: Path, runs: int, log: Callable[[str], None]) -> SizeResult:
    data = generate_scale(work / spec.label, spec, log=log)
    out = work / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    stages: dict[str, Measured] = {}
    rows: dict[str, int] = {}
    ours, ours_unit, duck = Measured(), Measured(), Measured()
    difference = None
    for run in range(1, runs + 1):
        if name not in ALLOCATION_ONLY:
            log(f"{name}: run {run}/{runs}: pipeline stages")
            result, _ = _worker("pipeline", data, out / "pipeline.parquet")
            for figure in result["figures"]:
                stages.setdefault(figure["stage"], Measured()).add(figure)
                rows[figure["stage"]] = figure["rows"]
        log(f"{name}: run {run}/{runs}: ours (allocation), ours (allocation + unit cost), DuckDB SQL")
        result, wall = _worker("ours_by_file" if name in ALLOCATION_ONLY else "ours", data, out / "ours.parquet")
        ours.add(result["figures"][0], wall)
        if name not in ALLOCATION_ONLY:
            result, wall = _worker("ours_unit", data, out / "ours_unit.parquet")
            ours_unit.add(result["figures"][0], wall)
        result, wall = _worker("duckdb", data, out / "duckdb.parquet")
        if run == 1:
            difference = compare_allocations(pl.read_parquet(out / "ours.parquet"), pl.read_parquet(out / "duckdb.parquet"))
            if difference:
                log(f"{name}: ours and the DuckDB SQL allocation DIFFER: {difference}")
        duck.add(result["figures"][0], wall)
    return SizeResult(name, spec, stages, rows, ours, ours_unit, duck, difference is None, difference)


def measure_backfill(work: Path, days: int, log: Callable[[str], None]) -> dict:
    """The demo (1,000 customers) over `days` days, one `dg launch` run, as a user runs it."""
    from unitcost_platform.demo.generator import DemoSpec, generate_demo
    from unitcost_platform.settings import PROJECT_ROOT

    end = dt.datetime.now(dt.UTC).date() - dt.timedelta(days=1)
    start = end - dt.timedelta(days=days - 1)
    root = work / f"demo-{days}d"
    data = root / "data"
    marker = root / "range.txt"
    if not (marker.exists() and marker.read_text() == f"{start}...{end}"):
        shutil.rmtree(root, ignore_errors=True)
        generate_demo(data, DemoSpec(days=days, start=start))
        marker.write_text(f"{start}...{end}")
    home, warehouse = root / "dagster_home", root / "warehouse.duckdb"
    shutil.rmtree(home, ignore_errors=True)
    warehouse.unlink(missing_ok=True)
    home.mkdir(parents=True)
    shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    env = {**os.environ, "DAGSTER_HOME": str(home), "UNITCOST_DATA_DIR": str(data), "UNITCOST_ENV": "local",
           "UNITCOST_DUCKDB_PATH": str(warehouse), "UNITCOST_START_DATE": start.isoformat()}  # fmt: skip
    env.pop("UNITCOST_CONFIG", None)
    command = [
        str(Path(sys.executable).parent / "dg"), "launch", "-m", "unitcost_platform.definitions",
        "--assets", "*", "--partition-range", f"{start}...{end}",
        "--config-json", json.dumps({"loggers": {"console": {"config": {"log_level": "WARNING"}}}}),
    ]  # fmt: skip
    log(f"backfill: {days} days of the demo in one Dagster run ({start}...{end})")
    began = time.perf_counter()
    done = subprocess.run(command, env=env, capture_output=True, text=True)
    seconds = time.perf_counter() - began
    if done.returncode != 0:
        raise RuntimeError(f"the backfill run failed:\n{done.stderr[-4000:]}")
    import duckdb

    with duckdb.connect(str(warehouse), read_only=True) as con:
        materialized = con.execute("select count(distinct day) from unitcost.unit_cost").fetchone()[0]
    return {"days": days, "seconds": seconds, "unit_cost_days": materialized}


def _mib(x: float) -> str:
    return f"{x:,.0f} MiB"


def _rate(rows: int, seconds: float) -> str:
    rate = rows / seconds if seconds else float("inf")
    return f"{rate / 1e6:,.2f}M/s" if rate >= 1e6 else f"{rate / 1e3:,.0f}k/s"


def report(results: list[SizeResult], backfill: dict | None, runs: int) -> tuple[str, bool]:
    """The printed table and whether every target holds."""
    cpu = os.cpu_count()
    lines = [
        f"unitcost bench — {platform.machine()}, {cpu} cores, "
        f"{os.sysconf('SC_PAGE_SIZE') * os.sysconf('SC_PHYS_PAGES') / 2**30:.0f} GiB, Python {platform.python_version()}, "
        f"polars {pl.__version__}; medians of {runs} run(s)",
    ]
    ok = True
    for r in results:
        s = r.spec
        lines += ["", f"{r.name}: {s.line_items_per_day:,} line items, {s.tenants:,} tenants, {s.services} services, "
                      f"{s.metrics} usage metrics, {s.untagged_share:.0%} untagged (one day)"]  # fmt: skip
        if r.stages:
            lines.append(f"  {'stage':46} {'seconds':>8} {'rows':>12} {'rows/s':>10} {'peak RSS':>11}")
            total = 0.0
            for stage, m in r.stages.items():
                total += m.median_seconds
                rows = r.stage_rows[stage]
                lines.append(f"  {stage:46} {m.median_seconds:8.3f} {rows:12,} {_rate(rows, m.median_seconds):>10} {_mib(m.median_peak):>11}")
            peak = max(m.median_peak for m in r.stages.values())
            lines.append(f"  {'end to end (sum of stages, max peak)':46} {total:8.3f} {s.line_items_per_day:12,} "
                         f"{_rate(s.line_items_per_day, total):>10} {_mib(peak):>11}")  # fmt: skip
            lines.append("")
        lines.append(f"  {'files -> allocation':46} {'compute s':>9} {'process s':>9} {'peak RSS':>11}")
        lines.append(f"  {'ours':46} {r.ours.median_seconds:9.3f} {r.ours.median_process_seconds:9.3f} {_mib(r.ours.median_peak):>11}")
        verdict = "same dollars on the same keys" if r.equal else f"RESULTS DIFFER: {r.difference}"
        if r.equal:
            lines.append(f"  {'DuckDB SQL baseline (' + verdict + ')':46} {r.duckdb.median_seconds:9.3f} "
                         f"{r.duckdb.median_process_seconds:9.3f} {_mib(r.duckdb.median_peak):>11}")  # fmt: skip
            t_ratio = r.ours.median_seconds / r.duckdb.median_seconds
            p_ratio = r.ours.median_process_seconds / r.duckdb.median_process_seconds
            m_ratio = r.ours.median_peak / r.duckdb.median_peak
            good = t_ratio <= MAX_TIME_RATIO and m_ratio <= MAX_MEMORY_RATIO
            verdict = (f"target <= {MAX_TIME_RATIO} time, <= {MAX_MEMORY_RATIO} memory: {'met' if good else 'MISSED'}"
                       if r.name in TARGETS else "")  # fmt: skip
            lines.append(f"  {'ratio ours / DuckDB':46} {t_ratio:9.2f} {p_ratio:9.2f} {m_ratio:10.2f}x   {verdict}")
            ok &= good or r.name not in TARGETS
            if r.name in PROCESS_RATIO_SIZES:
                good = p_ratio <= MAX_TIME_RATIO
                lines.append(f"  {'':46} whole process: target <= {MAX_TIME_RATIO}: {'met' if good else 'MISSED'}")
                ok &= good
        else:
            lines.append(f"  DuckDB SQL baseline: {verdict} (its time is not reported)")
            ok = False
        if not r.ours_unit.seconds:
            continue  # an allocation-only size
        lines.append(f"  {'ours, allocation + unit cost (30-day windows)':46} {r.ours_unit.median_seconds:9.3f} "
                     f"{r.ours_unit.median_process_seconds:9.3f} {_mib(r.ours_unit.median_peak):>11}")  # fmt: skip
        if r.name in TARGETS:
            limit_s, limit_m = TARGETS[r.name]
            good = r.ours_unit.median_seconds <= limit_s and r.ours_unit.median_peak <= limit_m
            lines.append(f"  {'':46} target <= {limit_s:g} s and <= {_mib(limit_m)}: {'met' if good else 'MISSED'}")
            ok &= good
        if ANOMALY_STAGE in r.stages and FORECAST_STAGE in r.stages:
            added = r.stages[ANOMALY_STAGE].median_seconds + r.stages[FORECAST_STAGE].median_seconds
            share = added / r.ours_unit.median_seconds
            good = share <= MAX_MODEL_SHARE
            verdict = f"target <= {MAX_MODEL_SHARE:.0%}: {'met' if good else 'MISSED'}" if r.name in TARGETS else ""
            lines.append(f"  {'anomalies + forecast, share of the above':46} {added:9.3f} {share:>9.0%} {'':11}   {verdict}")
            ok &= good or r.name not in TARGETS
    by_name = {r.name: r for r in results}
    if "1m" in by_name and "10m" in by_name:
        scaling = by_name["10m"].ours_unit.median_seconds / by_name["1m"].ours_unit.median_seconds
        good = scaling <= MAX_SCALING
        lines += ["", f"scaling 1M -> 10M (allocation + unit cost): {scaling:.1f}x for 10x the line items "
                      f"(target <= {MAX_SCALING:g}x): {'met' if good else 'MISSED'}"]  # fmt: skip
        ok &= good
    if backfill:
        line, good = backfill_line(backfill)
        lines += ["", line]
        ok &= good
    return "\n".join(lines), ok


def backfill_line(backfill: dict) -> tuple[str, bool]:
    good = backfill["seconds"] <= BACKFILL_TARGET_SECONDS and backfill["unit_cost_days"] == backfill["days"]
    return (f"demo backfill: {backfill['days']} days x 1,000 customers in one Dagster run: "
            f"{backfill['seconds']:.1f} s, {backfill['unit_cost_days']} days of unit_cost "
            f"(target <= {BACKFILL_TARGET_SECONDS:g} s): {'met' if good else 'MISSED'}"), good  # fmt: skip


def main(
    sizes: list[str], runs: int, work: Path, backfill_days: int | None, log: Callable[[str], None], dagster: bool = False,
    history_days: int = 0,
) -> int:
    unknown = [s for s in sizes if s not in SIZES]
    if unknown:
        raise SystemExit(f"unknown size(s) {', '.join(unknown)}; choose from {', '.join(SIZES)}")
    work = work.resolve()  # DAGSTER_HOME of the backfill run must be absolute
    if dagster:
        return _main_dagster(sizes, runs, work, backfill_days, log, history_days)
    results = [run_size(name, SIZES[name], work, runs, log) for name in sizes]
    backfill = measure_backfill(work, backfill_days, log) if backfill_days else None
    text, ok = report(results, backfill, runs)
    print(text, flush=True)
    return 0 if all(r.equal for r in results) else 1


def _main_dagster(
    sizes: list[str], runs: int, work: Path, backfill_days: int | None, log: Callable[[str], None], history_days: int = 0
) -> int:
    """The real path only (`dagster_run.py`), and the demo backfill when asked for."""
    from unitcost_platform.benchmark import dagster_run

    results = dagster_run.measure(sizes, runs, work, log, history_days)
    backfill = measure_backfill(work, backfill_days, log) if backfill_days else None
    text, _ = dagster_run.report(results, runs)
    if backfill:
        text += "\n\n" + backfill_line(backfill)[0]
    print(text, flush=True)
    return 0
