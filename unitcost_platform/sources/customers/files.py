"""Customer records from `customers.csv` (or a `customers/` directory of CSV/Parquet files)."""

import datetime as dt
from pathlib import Path

import polars as pl

from unitcost_platform.config_base import FileSource
from unitcost_platform.contracts.customers import VERSION_SCHEMA
from unitcost_platform.contracts.focus import null_literals_to_null
from unitcost_platform.contracts.problems import describe_bad_values, row_ref_expr
from unitcost_platform.contracts.tenant_key import tenant_key_expr
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.connector import Connector, ReadContext
from unitcost_platform.sources.files import (
    Log,
    cast_boolean,
    cast_numeric,
    collect_file,
    list_data_files,
    missing_columns_problem,
    read_each,
    scan_file,
)
from unitcost_platform.sources.usage.files import parse_date

REQUIRED = ["customer_id", "tenant_id", "tier", "mrr", "status"]
OPTIONAL = ["customer_name", "is_paying", "segment", "valid_from", "valid_to"]


def read_customer_files(paths: list[Path], *, normalize: str, log: Log | None = None) -> pl.DataFrame:
    """Customer versions (VERSION_SCHEMA) from every file; raises InputDataError on bad rows."""
    frames, problems = read_each(paths, "customer", lambda p: _read_file(p, normalize), log)
    if problems:
        raise InputDataError(problems, what="customer files")
    if not frames:
        return pl.DataFrame(schema=VERSION_SCHEMA)
    return pl.concat(frames, how="vertical")


def _read_file(path: Path, normalize: str) -> tuple[pl.DataFrame | None, list[str]]:
    lazy = scan_file(path)
    names = lazy.collect_schema().names()
    problems = missing_columns_problem(path, names, REQUIRED, "customers")
    if problems:
        return None, problems
    lazy = lazy.select([c for c in REQUIRED + OPTIONAL if c in names]).with_row_index("x_SourceRow", offset=1)
    frame, unreadable = collect_file(lazy, path)
    if frame is None:
        return None, unreadable
    frame = frame.with_columns(pl.col("x_SourceRow").cast(pl.Int64))
    frame = frame.with_columns([pl.lit(None, dtype=pl.String).alias(c) for c in OPTIONAL if c not in names])
    strings = [c for c in frame.columns if frame.schema[c] == pl.String]
    frame = frame.with_columns(null_literals_to_null(strings))
    frame, problems = cast_numeric(path, frame, ["mrr"], "MRR must be a number (monthly recurring revenue).")
    for column in ("valid_from", "valid_to"):
        parsed = parse_date(frame[column]).alias(f"_{column}")
        frame = frame.with_columns(parsed)
        problems += describe_bad_values(
            path, frame, pl.col(column).is_not_null() & pl.col(f"_{column}").is_null(), column,
            "unreadable date(s)", "Write dates as YYYY-MM-DD; leave empty for an open range.",
        )
        frame = frame.with_columns(pl.col(f"_{column}").alias(column))
    frame, bool_problems = cast_boolean(
        path, frame, "is_paying", "Write is_paying as true or false (or leave it empty)."
    )
    problems += bool_problems
    if problems:
        return None, problems
    frame = frame.with_columns(
        pl.col("customer_id").cast(pl.String).str.strip_chars(),
        tenant_key_expr(pl.col("tenant_id").cast(pl.String), normalize).alias("tenant_id"),
        pl.concat_str([pl.lit(f"{path} "), row_ref_expr(path, pl.col("x_SourceRow"))]).alias("x_Where"),
    )
    return frame.select([pl.col(c).cast(t) for c, t in VERSION_SCHEMA.items()]), []


def no_customer_files(location: Path) -> InputDataError:
    return InputDataError(
        [f"no customer file at {location}; write customers.csv (customer_id, tenant_id, tier, mrr, "
         "status, ...) or point customers.files.path in unitcost.yaml at yours"],
        what="customer files",
    )


def read(context: ReadContext, cfg: FileSource, days: list[dt.date]) -> pl.DataFrame:
    """Every customer file's versions (the dimension of each day is taken from them)."""
    if not days:
        return pl.DataFrame(schema=VERSION_SCHEMA)
    location = cfg.resolve(context.data_dir)
    if not location.exists():
        raise no_customer_files(location)
    paths = list_data_files(location, "customer")
    if not paths:
        raise no_customer_files(location)
    return read_customer_files(paths, normalize=context.cfg.tenant.normalize, log=context.log)


CONNECTOR = Connector(
    name="files", kind="customers", config_key="files", read=read, restatement="none",
    config_model=FileSource, default=FileSource(path="customers.csv"),
)  # fmt: skip
