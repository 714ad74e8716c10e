"""The benchmark: a smoke-size run of the documented command, and its equality check failing when it should.

Timings are not asserted (speed is measured by the benchmark, not by tests); the run must produce
every figure, find ours and the DuckDB SQL baseline equal, and print the ratio.
"""

import datetime as dt
import subprocess
import sys
from pathlib import Path

import polars as pl

from unitcost_platform.benchmark.run import compare_allocations
from unitcost_platform.demo.scale import ScaleSpec, generate_scale

UNITCOST = Path(sys.executable).parent / "unitcost"
D = dt.date(2026, 3, 1)


def test_smoke_size_prints_every_figure_and_matches_the_baseline(tmp_path):
    done = subprocess.run(
        [str(UNITCOST), "bench", "--sizes", "smoke", "--runs", "1", "--no-backfill", "--work-dir", str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
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
