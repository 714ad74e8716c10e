"""One measured process of the benchmark: `python -m unitcost_platform.benchmark.workers KIND DATA OUT`.

KIND is `pipeline` (every stage, one after the other, each with its own figures, the unit-cost
anomalies and margin forecast included), `ours` (allocation from the Parquet files), `ours_by_file`
(the same, each file streamed into DuckDB's sums as it is read), `ours_unit` (allocation and unit
cost with its 30-day window from the Parquet files) or `duckdb` (the baseline). It prints its
figures as one JSON line and writes its result to OUT (after the clock stops) for the parent to
compare.

Each kind imports what it runs and nothing else, because the whole process is measured: the
baseline's process loads DuckDB, Polars and its SQL, as a team's own DuckDB script would, not this
platform's modules (its config, its connectors, the anomaly and forecast models: 1.5 s of imports,
which its figure carried until 2026-12-06); ours loads the readers and allocation with the default
pools, not config.py and the connectors it assembles (0.5 s more, until 2026-12-07).
"""

import datetime as dt
import json
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

from unitcost_platform.benchmark.measure import Figure, peak_mib, reset_peak


def bench_day(data: Path) -> dt.date:
    """The day measured: the scale data's last (the others are history)."""
    spec = json.loads((data / "spec.json").read_text())
    return dt.date.fromisoformat(spec["start"]) + dt.timedelta(days=int(spec.get("days", 1)) - 1)


def baseline(data: Path, out: Path) -> dict:
    from unitcost_platform.benchmark.baseline import run_baseline

    day = bench_day(data)
    reset_peak()
    start = time.perf_counter()
    result = run_baseline(data, [day])
    seconds = time.perf_counter() - start
    figure = Figure("duckdb", seconds, 0, peak_mib(), True)
    result.write_parquet(out)
    return {"figures": [figure.as_dict()], "result_rows": result.height}


def _stages() -> ModuleType:
    from unitcost_platform.benchmark import stages

    return stages


def _ours() -> ModuleType:
    from unitcost_platform.benchmark import ours

    return ours


KINDS: dict[str, Callable[[Path, Path], dict]] = {
    "pipeline": lambda data, out: _stages().pipeline(data, out),
    "ours": lambda data, out: _ours().ours(data, out),
    "ours_by_file": lambda data, out: _ours().ours(data, out, by_file=True),
    "ours_unit": lambda data, out: _ours().ours(data, out, with_unit_cost=True),
    "duckdb": baseline,
}


def main(argv: list[str]) -> int:
    kind, data, out = argv
    result = KINDS[kind](Path(data), Path(out))
    result["process_peak_mib"] = peak_mib()
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
