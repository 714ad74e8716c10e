"""Scale data for the benchmark: one or more days of hourly line items at a chosen size.

The demo generator tells a story (tiers, alerts, a tagging break); this one makes volume with the
same shape of files: FOCUS Parquet billing (Tags as JSON strings, as many exports write them),
long-format usage, a customer file. Deterministic for a seed, vectorized (numpy), and written in
parts: billing a file of `rows_per_file` rows at a time, usage a day at a time (row groups of one
Parquet file), so no size (100M line items a day included) holds more than one part in memory.
"""

import datetime as dt
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
import pyarrow.parquet as pq

CATEGORIES = ["Compute", "Networking", "Databases", "Storage", "Management and Governance", "Integration",
              "Security", "Analytics"]  # fmt: skip
METRICS = ["requests", "storage_bytes", "active_sessions", "compute_hours", "tokens"]
TIERS = ["enterprise", "mid-market", "smb", "trial", "free"]


@dataclass(frozen=True)
class ScaleSpec:
    line_items_per_day: int = 1_000_000
    tenants: int = 10_000
    services: int = 40
    metrics: int = 5
    untagged_share: float = 0.10
    days: int = 1
    start: dt.date = dt.date(2026, 3, 1)
    seed: int = 11
    rows_per_file: int = 2_000_000

    @property
    def label(self) -> str:
        def short(n: int) -> str:
            return f"{n // 1_000_000}M" if n >= 1_000_000 else f"{n // 1_000}k" if n >= 1_000 else str(n)

        return (f"{short(self.line_items_per_day)}-{short(self.tenants)}t-{self.services}s-{self.metrics}m-"
                f"{self.days}d-{self.untagged_share:g}u-seed{self.seed}")  # fmt: skip


def tenant_ids(n: int) -> pl.Series:
    return pl.Series("tenant", [f"t{i:06d}" for i in range(n)])


def services(n: int) -> pl.DataFrame:
    return pl.DataFrame({
        "ServiceName": [f"Service {i:02d}" for i in range(n)],
        "ServiceCategory": [CATEGORIES[i % len(CATEGORIES)] for i in range(n)],
    })  # fmt: skip


def _billing_part(spec: ScaleSpec, day: dt.date, rows: int, rng: np.random.Generator, offset: int) -> pl.DataFrame:
    svc = services(spec.services)
    # A few heavy tenants and many light ones: Zipf-like weights over the tenants.
    weights = 1.0 / np.arange(1, spec.tenants + 1) ** 0.6
    tenant = rng.choice(spec.tenants, size=rows, p=weights / weights.sum())
    service = rng.integers(0, spec.services, size=rows)
    hour = rng.integers(0, 24, size=rows)
    cost = np.round(rng.lognormal(-3.0, 1.2, size=rows), 10)
    untagged = rng.random(rows) < spec.untagged_share
    start = dt.datetime.combine(day, dt.time())
    tenant_text = pl.Series(tenant).cast(pl.String).str.zfill(6)
    tags = (
        pl.when(pl.Series(untagged))
        .then(pl.lit('{"env": "prod"}'))
        .otherwise(pl.concat_str([pl.lit('{"tenant_id": "t'), pl.lit(tenant_text), pl.lit('", "env": "prod"}')]))
    )
    frame = pl.DataFrame({"_svc": service, "_hour": hour, "EffectiveCost": cost, "_row": np.arange(offset, offset + rows)})
    return frame.join(svc.with_row_index("_svc").with_columns(pl.col("_svc").cast(pl.Int64)), on="_svc").select(
        pl.col("EffectiveCost").alias("BilledCost"),
        "EffectiveCost",
        pl.lit("USD").alias("BillingCurrency"),
        (pl.lit(start) + pl.duration(hours=pl.col("_hour"))).alias("ChargePeriodStart"),
        (pl.lit(start) + pl.duration(hours=pl.col("_hour") + 1)).alias("ChargePeriodEnd"),
        pl.lit("Usage").alias("ChargeCategory"),
        pl.lit("Usage-Based").alias("ChargeFrequency"),
        pl.lit("AWS").alias("ProviderName"),
        "ServiceName",
        "ServiceCategory",
        pl.concat_str([pl.lit("arn:aws:svc:us-east-1:210987654321:res/"), pl.col("_row").cast(pl.String)]).alias("ResourceId"),
        pl.lit("210987654321").alias("SubAccountId"),
        pl.lit("us-east-1").alias("RegionId"),
        tags.alias("Tags"),
    )


def _usage_day(
    spec: ScaleSpec, day: dt.date, tenants: pl.Series, per_tenant: np.ndarray, rng: np.random.Generator
) -> pl.DataFrame:
    """One day of long-format usage: every tenant, every metric."""
    return pl.concat([
        pl.DataFrame({
            "usage_date": [day] * spec.tenants, "tenant_id": tenants, "service_name": [None] * spec.tenants,
            "metric": [metric] * spec.tenants,
            "value": np.round(per_tenant * 10 ** (3 + m) * np.exp(rng.normal(0, 0.1, spec.tenants)), 0),
        }, schema_overrides={"service_name": pl.String})
        for m, metric in enumerate(METRICS[: spec.metrics])
    ])  # fmt: skip


def generate_scale(out: Path, spec: ScaleSpec = ScaleSpec(), log: Callable[[str], None] = print) -> Path:
    """Write billing/, usage/ and customers.parquet for `spec` into `out` (skipped if already there)."""
    out = Path(out)
    marker = out / "spec.json"
    if marker.exists() and json.loads(marker.read_text()) == {**spec.__dict__, "start": spec.start.isoformat()}:
        log(f"scale data {spec.label} already in {out}")
        return out
    rng = np.random.default_rng(spec.seed)
    for sub in ("billing", "usage"):
        (out / sub).mkdir(parents=True, exist_ok=True)
        for old in (out / sub).glob("*"):
            old.unlink()
    part, parts_per_day = 0, -(-spec.line_items_per_day // spec.rows_per_file)
    for d in range(spec.days):
        day = spec.start + dt.timedelta(days=d)
        written = 0
        while written < spec.line_items_per_day:
            rows = min(spec.rows_per_file, spec.line_items_per_day - written)
            # One part at a time: written, then dropped before the next is made.
            _billing_part(spec, day, rows, rng, written + d * spec.line_items_per_day).write_parquet(
                out / "billing" / f"focus-{part:04d}.parquet", row_group_size=250_000
            )
            written += rows
            part += 1
            if parts_per_day > 1:
                log(f"billing {day}: {written:,} of {spec.line_items_per_day:,} line items "
                    f"({part - d * parts_per_day}/{parts_per_day} files)")  # fmt: skip
        log(f"billing {day}: {written:,} line items in {part} file(s) so far")
    tenants = tenant_ids(spec.tenants)
    per_tenant = np.exp(rng.normal(0, 1, spec.tenants))
    writer = None
    try:
        for d in range(spec.days):
            table = _usage_day(spec, spec.start + dt.timedelta(days=d), tenants, per_tenant, rng).to_arrow()
            if writer is None:
                writer = pq.ParquetWriter(out / "usage" / "usage.parquet", table.schema)
            writer.write_table(table)
            del table
    finally:
        if writer is not None:
            writer.close()
    pl.DataFrame({
        "customer_id": pl.Series([f"C{i:06d}" for i in range(spec.tenants)]),
        "tenant_id": tenants,
        "tier": [TIERS[i % len(TIERS)] for i in range(spec.tenants)],
        "mrr": np.where(np.arange(spec.tenants) % 5 >= 3, 0.0, np.round(per_tenant * 500, 2)),
        "status": ["active"] * spec.tenants,
    }).write_parquet(out / "customers.parquet")  # fmt: skip
    marker.write_text(json.dumps({**spec.__dict__, "start": spec.start.isoformat()}))
    log(f"scale data {spec.label} written to {out}")
    return out
