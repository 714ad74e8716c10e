"""`unitcost bench --dagster`: the real path, every asset of one day through Dagster, as a user runs it.

For each size (its scale data generated once, as for the in-process figures) and each run:
`dagster asset materialize -m unitcost_platform.definitions --select '*' --partition <day>` in a
fresh process, with a fresh DAGSTER_HOME (the repo's dagster.yaml), a fresh DuckDB warehouse and a
generated unitcost.yaml whose file sources point at the scale data (everything else default). Then,
from the run's event log in that instance: each step's seconds (STEP_START to STEP_SUCCESS), the
rows the IO manager moved from the warehouse into Python (the line it logs for every input it loads,
`defs/rollup.log_rows_loaded`). Around it: the whole process's wall time and the peak RSS of every process of
the run (the child and its descendants, summed, sampled every 0.1 s). Next to it, in the same run,
the DuckDB SQL allocation baseline's whole process. Figures are medians over the runs; a failed
Dagster run fails the bench with its stderr (nothing of it is reported).

With `--history-days N` the measured day is the one after N days of history, as every production
day but the first is: the N days are materialized once, in one range run (not measured), and each
measured run starts from a copy of that instance and warehouse. The windows the daily assets read
(30 days of run rate, 37 of service cost, 14 of drivers, 90 of dashboard) are then filled.

The per-size directory (`<work>/dagster/<size>/`) keeps the last run's config, DAGSTER_HOME and
logs; its warehouse is deleted after each run (at 100M line items it is many GiB).
"""

import contextlib
import datetime as dt
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field, replace
from pathlib import Path

import polars as pl
import psutil
import yaml

from unitcost_platform.benchmark.run import SIZES, _worker
from unitcost_platform.defs.rollup import ROWS_LOADED
from unitcost_platform.demo.scale import ScaleSpec, generate_scale
from unitcost_platform.errors import UnitcostError
from unitcost_platform.settings import PROJECT_ROOT

SAMPLE_SECONDS = 0.1
STDERR_TAIL = 4000
MiB, GiB = 2**20, 2**30


@dataclass(frozen=True)
class DagsterTargets:
    max_ratio: float | None = None  # whole process, real path / DuckDB SQL baseline
    max_peak_gib: float | None = None  # every process of the run, summed
    max_rows_share: float | None = None  # rows loaded into Python / the day's line items
    completes: bool = False  # said in the verdict: a failed run fails the bench anyway


# The targets; a size not listed is measured without verdicts.
TARGETS = {
    "10m": DagsterTargets(max_ratio=3.0, max_peak_gib=2.5, max_rows_share=0.05),
    "100m": DagsterTargets(max_peak_gib=8.0, completes=True),
}


class BenchRunFailed(UnitcostError):
    """A measured Dagster run failed: its figures are not reported."""


# --- the environment of one run -----------------------------------------------------------------


def write_config(path: Path, data: Path) -> Path:
    """A unitcost.yaml reading the scale data's files; every other key at its default."""
    data = Path(data).resolve()
    config = {
        "billing": {"files": {"path": str(data / "billing")}},
        "usage": {"files": {"path": str(data / "usage")}},
        "customers": {"files": {"path": str(data / "customers.parquet")}},
    }
    path.write_text(yaml.safe_dump(config, sort_keys=False))
    return path


def run_environment(home: Path, warehouse: Path, config: Path, data: Path, day: dt.date) -> dict[str, str]:
    """os.environ without any UNITCOST_* or DAGSTER_HOME of the caller's, plus the run's own."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("UNITCOST_") and k != "DAGSTER_HOME"}
    env.update({
        "DAGSTER_HOME": str(home), "UNITCOST_ENV": "local", "UNITCOST_DUCKDB_PATH": str(warehouse),
        "UNITCOST_DATA_DIR": str(data), "UNITCOST_START_DATE": day.isoformat(), "UNITCOST_CONFIG": str(config),
    })  # fmt: skip
    return env


def materialize_command(day: dt.date, through: dt.date | None = None) -> list[str]:
    """Every asset of `day` (or of the range `day`...`through`, in one run)."""
    partition = ["--partition", day.isoformat()] if through is None else ["--partition-range", f"{day}...{through}"]
    return [
        str(Path(sys.executable).parent / "dagster"), "asset", "materialize", "-m", "unitcost_platform.definitions",
        "--select", "*", *partition,
    ]  # fmt: skip


# --- peak memory of a process tree --------------------------------------------------------------


def tree_rss(process: psutil.Process) -> int:
    """Resident bytes of `process` and all its descendants, summed (0 once it is gone)."""
    try:
        members = [process, *process.children(recursive=True)]
    except (psutil.NoSuchProcess, psutil.ZombieProcess):
        return 0
    total = 0
    for member in members:
        # A member that ended between the listing and the reading counts for nothing.
        with contextlib.suppress(psutil.NoSuchProcess, psutil.ZombieProcess, psutil.AccessDenied):
            total += member.memory_info().rss
    return total


class TreePeak:
    """Samples the process tree rooted at `pid` every `interval` seconds in a thread; `peak` is the
    largest sum seen (a spike shorter than the interval can be missed)."""

    def __init__(self, pid: int, interval: float = SAMPLE_SECONDS):
        self.process = psutil.Process(pid)
        self.interval = interval
        self.peak = 0
        self.samples = 0
        self.timeline: list[tuple[float, int]] = []  # (unix time, bytes): each step's own peak
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, name="tree-rss", daemon=True)

    def _loop(self) -> None:
        while True:
            rss = tree_rss(self.process)
            self.peak = max(self.peak, rss)
            self.timeline.append((time.time(), rss))
            self.samples += 1
            if self._stop.wait(self.interval):
                return

    def __enter__(self) -> "TreePeak":
        self._thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self._stop.set()
        self._thread.join()


# --- what the run's event log says --------------------------------------------------------------


@dataclass(frozen=True)
class StepTime:
    key: str
    kind: str  # "asset", "check" or "op"
    seconds: float
    started: float = 0.0  # unix time
    peak_bytes: int = 0  # the run's processes during the step (set from the sampler's timeline)


def _event_type(entry) -> str | None:
    event = entry.dagster_event
    return event.event_type_value if event is not None else None


def step_times(entries: Iterable) -> list[StepTime]:
    """Each step's STEP_START to STEP_SUCCESS, in the order the steps started. A step that started
    and did not succeed is left out (the caller checks that the run succeeded)."""
    started: dict[str, float] = {}
    succeeded: dict[str, float] = {}
    kinds: dict[str, str] = {}
    for entry in entries:
        kind, step = _event_type(entry), entry.step_key
        if step is None or kind is None:
            continue
        if kind == "STEP_START":
            started.setdefault(step, entry.timestamp)
        elif kind == "STEP_SUCCESS":
            succeeded[step] = entry.timestamp
        elif kind == "ASSET_MATERIALIZATION":
            kinds[step] = "asset"
        elif kind == "ASSET_CHECK_EVALUATION":
            kinds.setdefault(step, "check")
    order = sorted((t, s) for s, t in started.items() if s in succeeded)
    return [StepTime(s, kinds.get(s, "op"), succeeded[s] - t, t) for t, s in order]


def with_step_peaks(steps: list[StepTime], timeline: list[tuple[float, int]]) -> list[StepTime]:
    """Each step with the largest sample taken while it ran (0 for a step shorter than the interval)."""
    return [
        StepTime(st.key, st.kind, st.seconds, st.started,
                 max((b for t, b in timeline if st.started <= t <= st.started + st.seconds), default=0))
        for st in steps
    ]  # fmt: skip


@dataclass(frozen=True)
class RowsLoaded:
    rows: int | None  # None: no input of the run logged its rows
    reporting: int  # inputs that reported it
    inputs: int  # inputs loaded in all


_ROWS_LINE = re.compile(re.escape(ROWS_LOADED) + r": (\d+) rows of ")


def rows_loaded(entries: Iterable) -> RowsLoaded:
    """The sum of the rows the IO manager says it moved out of the warehouse (one log line per input
    it loads, `defs/rollup.log_rows_loaded`), against the run's LOADED_INPUT events."""
    total, reporting, inputs = 0, 0, 0
    for entry in entries:
        if _event_type(entry) == "LOADED_INPUT":
            inputs += 1
            continue
        found = _ROWS_LINE.match(getattr(entry, "user_message", "") or "")
        if found:
            total += int(found.group(1))
            reporting += 1
    return RowsLoaded(total if reporting else None, reporting, inputs)


def failure_messages(entries: Iterable) -> list[str]:
    """`step: message` of each failed step (and of the run's failure), for the bench's error."""
    found = []
    for entry in entries:
        if _event_type(entry) in ("STEP_FAILURE", "RUN_FAILURE"):
            data = entry.dagster_event.event_specific_data
            error = getattr(data, "error", None)
            text = error.message.strip() if error is not None else (entry.dagster_event.message or "")
            found.append(f"{entry.step_key or 'run'}: {text[:1500]}")
    return found


def read_run(home: Path) -> tuple[str, str, list] | None:
    """(run id, status, event log entries) of the newest run of the instance at `home`."""
    import dagster as dg

    with dg.DagsterInstance.from_config(str(home)) as instance:
        runs = instance.get_runs(limit=1)
        if not runs:
            return None
        run = runs[0]
        return run.run_id, run.status.value, list(instance.all_logs(run.run_id))


# --- one run, one size --------------------------------------------------------------------------


@dataclass
class DagsterRun:
    run_id: str
    seconds: float  # the whole `dagster asset materialize` process
    peak_bytes: int  # every process of the run, summed, sampled
    steps: list[StepTime]
    rows: RowsLoaded
    baseline_seconds: float  # the DuckDB SQL baseline's whole process, in the same bench run
    baseline_peak_mib: float


def _fresh(root: Path, history: Path | None) -> tuple[Path, Path]:
    """DAGSTER_HOME and the warehouse of a run in `root`: new, or a copy of `history`'s."""
    shutil.rmtree(root, ignore_errors=True)
    home, warehouse = root / "dagster_home", root / "warehouse.duckdb"
    if history is None:
        home.mkdir(parents=True)
        shutil.copy(PROJECT_ROOT / "dagster.yaml", home / "dagster.yaml")
    else:
        shutil.copytree(history / "dagster_home", home)
        for part in history.glob("warehouse.duckdb*"):  # the file and its WAL, if any
            shutil.copy(part, root / part.name)
    return home, warehouse


def _run_dagster(command: list[str], root: Path, env: dict[str, str], what: str) -> tuple[float, TreePeak, str, list]:
    """`command` in `root` under a tree-peak sampler: its seconds, peak, run id and event log entries;
    raises BenchRunFailed unless its run succeeded."""
    stdout, stderr = root / "stdout.log", root / "stderr.log"
    with stdout.open("wb") as out, stderr.open("wb") as err:
        began = time.perf_counter()
        process = subprocess.Popen(command, env=env, cwd=root, stdout=out, stderr=err)
        with TreePeak(process.pid) as peak:
            code = process.wait()
        seconds = time.perf_counter() - began
    found = read_run(Path(env["DAGSTER_HOME"]))
    entries = found[2] if found else []
    if code != 0 or found is None or found[1] != "SUCCESS":
        status = f"run {found[0]} {found[1]}" if found else "no run was recorded"
        failures = "\n".join(failure_messages(entries))
        tail = stderr.read_text(errors="replace")[-STDERR_TAIL:]
        raise BenchRunFailed(
            f"the Dagster run of {what} failed (exit code {code}, {status}); its figures are not "
            f"reported. Logs and DAGSTER_HOME in {root}.\n"
            + (f"failed steps:\n{failures}\n" if failures else "")
            + f"stderr (last {STDERR_TAIL} characters):\n{tail}"
        )
    return seconds, peak, found[0], entries


def prepare_history(data: Path, first: dt.date, last: dt.date, root: Path) -> float:
    """Every asset of `first`...`last` materialized in one range run into a new instance and warehouse
    in `root` (what the measured runs copy); returns the run's seconds."""
    home, warehouse = _fresh(root, None)
    config = write_config(root / "unitcost.yaml", data)
    env = run_environment(home, warehouse, config, data, first)
    seconds, *_ = _run_dagster(materialize_command(first, last), root, env, f"the history {first}...{last} on {data}")
    return seconds


def materialize_day(
    data: Path, day: dt.date, root: Path, history: Path | None = None, start: dt.date | None = None
) -> tuple[DagsterRun, Path]:
    """One `dagster asset materialize` of every asset for `day` in a fresh process, with a fresh
    instance and warehouse or copies of `history`'s (partitions from `start`, default `day`);
    raises BenchRunFailed."""
    home, warehouse = _fresh(root, history)
    config = write_config(root / "unitcost.yaml", data)
    env = run_environment(home, warehouse, config, data, start or day)
    seconds, peak, run_id, entries = _run_dagster(materialize_command(day), root, env, f"{day} on {data}")
    for leftover in root.glob("warehouse.duckdb*"):  # the file and its WAL, if any
        leftover.unlink()
    steps = with_step_peaks(step_times(entries), peak.timeline)
    run = DagsterRun(run_id, seconds, peak.peak, steps, rows_loaded(entries), 0.0, 0.0)
    return run, root


@dataclass
class DagsterSizeResult:
    name: str
    spec: ScaleSpec
    day: dt.date
    history_days: int = 0
    runs: list[DagsterRun] = field(default_factory=list)

    @property
    def steps(self) -> list[StepTime]:
        """The steps of the first run (every run has the same), in the order they started."""
        return self.runs[0].steps

    def median_step(self, key: str) -> float:
        return statistics.median(s.seconds for r in self.runs for s in r.steps if s.key == key)

    def median(self, figure: Callable[[DagsterRun], float]) -> float:
        return statistics.median(figure(r) for r in self.runs)

    @property
    def rows(self) -> RowsLoaded:
        counted = [r.rows.rows for r in self.runs if r.rows.rows is not None]
        first = self.runs[0].rows
        return RowsLoaded(round(statistics.median(counted)) if counted else None, first.reporting, first.inputs)


def measure_size(
    name: str, spec: ScaleSpec, work: Path, runs: int, log: Callable[[str], None], history_days: int = 0
) -> DagsterSizeResult:
    spec = replace(spec, days=history_days + 1)
    data = generate_scale(work / spec.label, spec, log=log)
    start = dt.date.fromisoformat(json.loads((data / "spec.json").read_text())["start"])
    day = start + dt.timedelta(days=history_days)
    out = work / "results" / name
    out.mkdir(parents=True, exist_ok=True)
    result = DagsterSizeResult(name, spec, day, history_days)
    history = None
    if history_days:
        last = day - dt.timedelta(days=1)
        log(f"{name}: the history: every asset of {start}...{last} in one range run (not measured)")
        history = work / "dagster" / f"{name}-history"
        seconds = prepare_history(data, start, last, history)
        log(f"{name}: the history took {seconds:.1f} s")
    for k in range(1, runs + 1):
        fresh = "a copy of the history's instance and warehouse" if history else "fresh instance and warehouse"
        log(f"{name}: run {k}/{runs}: every asset of {day} through `dagster asset materialize` ({fresh})")
        run, root = materialize_day(data, day, work / "dagster" / name, history, start)
        log(f"{name}: run {k}/{runs}: Dagster run {run.run_id} succeeded: {len(run.steps)} steps, "
            f"{run.seconds:.1f} s, peak RSS {run.peak_bytes / MiB:,.0f} MiB (logs in {root})")  # fmt: skip
        log(f"{name}: run {k}/{runs}: DuckDB SQL baseline")
        figures, wall = _worker("duckdb", data, out / "duckdb.parquet")
        run.baseline_seconds, run.baseline_peak_mib = wall, figures["process_peak_mib"]
        result.runs.append(run)
    return result


# --- the report ---------------------------------------------------------------------------------


def _verdict(good: bool) -> str:
    return "met" if good else "MISSED"


def _runs(values: list[float], unit: str = "") -> str:
    return "" if len(values) < 2 else "  (runs: " + ", ".join(f"{v:.1f}{unit}" for v in values) + ")"


def report(results: list[DagsterSizeResult], runs: int) -> tuple[str, bool]:
    """The printed table and whether every target holds."""
    import dagster as dg

    lines = [
        f"unitcost bench --dagster — {platform.machine()}, {os.cpu_count()} cores, "
        f"{psutil.virtual_memory().total / GiB:.0f} GiB, Python {platform.python_version()}, polars {pl.__version__}, "
        f"dagster {dg.__version__}; medians of {runs} run(s)",
    ]  # fmt: skip
    ok = True
    for r in results:
        s, target = r.spec, TARGETS.get(r.name, DagsterTargets())
        kinds = [st.kind for st in r.steps]
        lines += ["", f"{r.name}: {s.line_items_per_day:,} line items, {s.tenants:,} tenants, {s.services} services, "
                      f"{s.metrics} usage metrics, {s.untagged_share:.0%} untagged; every asset of {r.day} in one "
                      f"`dagster asset materialize` ({kinds.count('asset')} assets, {kinds.count('check')} checks)"
                      + (f", after {r.history_days} days of history" if r.history_days else ", the first day (no history)")]  # fmt: skip
        lines.append(f"  {'step':52} {'seconds':>9} {'peak RSS':>11}")
        total = 0.0
        for st in r.steps:
            seconds = r.median_step(st.key)
            total += seconds
            label = st.key if st.kind == "asset" else f"{st.key} ({st.kind})"
            step_peak = statistics.median(x.peak_bytes for run in r.runs for x in run.steps if x.key == st.key)
            lines.append(f"  {label:52} {seconds:9.3f} {step_peak / MiB:7,.0f} MiB")
        wall = r.median(lambda x: x.seconds)
        lines.append(f"  {'sum of the steps':52} {total:9.3f}")
        lines.append(f"  {'outside the steps (start-up, definitions, events)':52} {wall - total:9.3f}")
        lines.append(f"  {'whole process (wall)':52} {wall:9.3f}{_runs([x.seconds for x in r.runs], ' s')}")
        lines.append("")
        peak_gib = r.median(lambda x: x.peak_bytes) / GiB
        verdict = ""
        if target.max_peak_gib is not None:
            good = peak_gib <= target.max_peak_gib
            done = "completes, " if target.completes else ""
            verdict = f"target {done}<= {target.max_peak_gib:g} GiB: {_verdict(good)}"
            ok &= good
        lines.append(f"  {'peak RSS, every process of the run (summed)':52} {peak_gib * 1024:9,.0f} MiB "
                     f"({peak_gib:.2f} GiB)   {verdict}")  # fmt: skip
        rows = r.rows
        verdict = ""
        if rows.rows is None:
            shown = f"{'n/a':>9}     (no input of the run logged its rows)"
            if target.max_rows_share is not None:
                verdict = f"   target <= {target.max_rows_share:.0%}: not measured"
        else:
            share = rows.rows / s.line_items_per_day
            partial = f", {rows.reporting} of {rows.inputs} inputs report it" if rows.reporting < rows.inputs else ""
            shown = f"{rows.rows:9,}     ({share:.2%} of the day's line items{partial})"
            if target.max_rows_share is not None:
                good = share <= target.max_rows_share and rows.reporting == rows.inputs
                verdict = f"   target <= {target.max_rows_share:.0%}: {_verdict(good)}"
                ok &= good
        lines.append(f"  {'rows loaded from the warehouse into Python':52} {shown}{verdict}")
        baseline = r.median(lambda x: x.baseline_seconds)
        lines.append(f"  {'DuckDB SQL baseline (files -> allocation), process':52} {baseline:9.3f} s, peak RSS "
                     f"{r.median(lambda x: x.baseline_peak_mib):,.0f} MiB")  # fmt: skip
        ratio = wall / baseline
        verdict = ""
        if target.max_ratio is not None:
            good = ratio <= target.max_ratio
            verdict = f"   target <= {target.max_ratio:g}x: {_verdict(good)}"
            ok &= good
        lines.append(f"  {'ratio real path / DuckDB baseline (whole process)':52} {ratio:8.2f}x{verdict}")
    return "\n".join(line.rstrip() for line in lines), ok


def measure(
    sizes: list[str], runs: int, work: Path, log: Callable[[str], None], history_days: int = 0
) -> list[DagsterSizeResult]:
    return [measure_size(name, SIZES[name], work, runs, log, history_days) for name in sizes]
