"""Per-tenant usage telemetry from files, long format: usage_date, tenant_id, service_name, metric, value."""

import datetime as dt
from pathlib import Path

import polars as pl

from unitcost_platform.config_base import FileSource
from unitcost_platform.contracts.focus import (
    NULL_LITERALS,
    null_literals_to_null,
    parse_utc_timestamp,
)
from unitcost_platform.contracts.problems import describe_bad_values
from unitcost_platform.contracts.tenant_key import tenant_key_expr
from unitcost_platform.contracts.usage import KEY, aggregate_usage, empty_usage
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.connector import Connector, ReadContext
from unitcost_platform.sources.files import (
    Log,
    cast_numeric,
    collect_file,
    duplicates_across_files,
    list_data_files,
    missing_columns_problem,
    read_each,
    scan_file,
)

REQUIRED = ["usage_date", "tenant_id", "metric", "value"]




ISO_DAY = r"^\d{4}-\d{2}-\d{2}$"
ISO_TIMESTAMP = r"^\d{4}-\d{2}-\d{2}[T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?(Z|[+-]\d{2}:?\d{2})?$"


def parse_date(series: pl.Series) -> pl.Series:
    """Dates from `YYYY-MM-DD` strings or ISO 8601 timestamps (their UTC day); anything else
    (`2026-07-15 and some garbage`, `soon`) becomes null, for the caller to refuse."""
    if series.dtype == pl.Date:
        return series
    if isinstance(series.dtype, pl.Datetime):
        if series.dtype.time_zone is not None:
            series = series.dt.convert_time_zone("UTC")
        return series.dt.date()
    text = series.cast(pl.String).str.strip_chars()
    day = text.str.strptime(pl.Date, "%Y-%m-%d", strict=False)
    stamp = parse_utc_timestamp(text.str.replace(r"([+-]\d{2})(\d{2})$", "$1:$2")).dt.date()
    frame = pl.DataFrame({"t": text, "day": day, "stamp": stamp})
    return frame.select(
        pl.when(pl.col("t").str.contains(ISO_DAY)).then(pl.col("day"))
        .when(pl.col("t").str.contains(ISO_TIMESTAMP)).then(pl.col("stamp"))
    ).to_series().alias(series.name)






def read_usage_files(
    paths: list[Path], days: list[dt.date], *, normalize: str, log: Log | None = None
) -> pl.DataFrame:
    """tenant_usage rows for `days`; raises InputDataError naming every bad file and row."""
    frames, problems = read_each(paths, "usage", lambda p: _read_file(p, days, normalize), log)
    if not problems and frames:
        combined = pl.concat(frames, how="vertical")
        problems += duplicates_across_files(combined, KEY + ["value"], "usage")
    if problems:
        raise InputDataError(problems, what="usage files")
    if not frames:
        return empty_usage()
    return aggregate_usage(combined.with_columns(source=pl.lit("files")))


def _read_file(path: Path, days: list[dt.date], normalize: str) -> tuple[pl.DataFrame | None, list[str]]:
    lazy = scan_file(path)
    names = lazy.collect_schema().names()
    problems = missing_columns_problem(path, names, REQUIRED, "usage (long format)")
    if problems:
        return None, problems
    cols = REQUIRED + (["service_name"] if "service_name" in names else [])
    frame, unreadable = collect_file(lazy.select(cols).with_row_index("x_SourceRow", offset=1), path)
    if frame is None:
        return None, unreadable
    frame = frame.with_columns(pl.col("x_SourceRow").cast(pl.Int64), x_SourceFile=pl.lit(str(path)))
    if "service_name" not in frame.columns:
        frame = frame.with_columns(service_name=pl.lit(None, dtype=pl.String))
    strings = [c for c in ("tenant_id", "service_name", "metric") if frame.schema[c] == pl.String]
    frame = frame.with_columns(null_literals_to_null(strings))
    frame = frame.with_columns(
        parse_date(frame["usage_date"]).alias("_date"),
        pl.col("usage_date").cast(pl.String).alias("_raw_date"),
    )
    problems += describe_bad_values(
        path, frame, pl.col("_date").is_null(), "_raw_date", "missing or unreadable date(s)",
        "Write usage_date as YYYY-MM-DD (the UTC day).",
    )
    problems = [p.replace("column _raw_date", "column usage_date") for p in problems]
    frame = frame.filter(pl.col("_date").is_in(days)).with_columns(pl.col("_date").alias("usage_date"))
    frame, numeric = cast_numeric(path, frame, ["value"], "Usage values must be numbers; fix or remove those rows.")
    problems += numeric
    if not numeric:
        problems += describe_bad_values(
            path, frame, pl.col("value").is_null() | (pl.col("value") < 0), "value",
            "missing or negative value(s)", "Usage is a count or an amount: 0 or more.",
        )
    frame = frame.with_columns(
        tenant_key_expr(pl.col("tenant_id").cast(pl.String), normalize).alias("tenant_id"),
        pl.col("metric").cast(pl.String).str.strip_chars(),
        pl.col("service_name").cast(pl.String).str.strip_chars(),
    )
    problems += describe_bad_values(
        path, frame, pl.col("tenant_id").is_null(), "metric", "row(s) without a tenant_id (metric shown)",
        "Every usage row names its tenant; drop aggregate rows or fill tenant_id.",
    )
    problems += describe_bad_values(
        path, frame, pl.col("metric").is_null() | pl.col("metric").is_in(NULL_LITERALS), "tenant_id",
        "row(s) without a metric name (tenant shown)", "Name the metric (requests, storage_bytes, ...).",
    )
    if problems:
        return None, problems
    return frame.select(KEY + ["value", "x_SourceFile", "x_SourceRow"]), []


def read(context: ReadContext, cfg: FileSource, days: list[dt.date]) -> pl.DataFrame:
    if not days:
        return empty_usage()
    location = cfg.resolve(context.data_dir)
    paths = list_data_files(location, "usage")
    context.log(f"{len(paths)} usage file(s) under {location}")
    return read_usage_files(paths, days, normalize=context.cfg.tenant.normalize, log=context.log)


CONNECTOR = Connector(
    name="files", kind="usage", config_key="files", read=read, restatement="none",
    config_model=FileSource, default=FileSource(path="usage"),
)  # fmt: skip
