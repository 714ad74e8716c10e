"""Reading CSV and Parquet files from the data dir, with errors that name the file, row and fix."""

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import polars as pl

from unitcost_platform.contracts.problems import MAX_EXAMPLES, Where, describe_bad_values, row_ref
from unitcost_platform.errors import InputDataError

SUFFIXES = (".csv", ".csv.gz", ".parquet")

Log = Callable[[str], None]


def list_data_files(location: Path, what: str) -> list[Path]:
    """The CSV/Parquet files at `location` (a file, or a directory searched recursively), sorted.

    A directory or file the process cannot read is an error, never skipped: a day computed from
    three of four files would replace a good day with a smaller bill.
    """
    if location.is_file():
        return [location]
    if not location.exists():
        raise InputDataError(
            [f"{location} does not exist; put {what} files there or point the config at them "
             "(UNITCOST_DATA_DIR and the `files.path` of the source in unitcost.yaml)"],
            what=what,
        )
    unreadable: list[str] = []

    def refused(exc: OSError) -> None:
        unreadable.append(
            f"{exc.filename or location}: cannot be read ({exc.strerror or type(exc).__name__}); make it "
            f"readable by the user running the pipeline, or move it out of {location}"
        )

    found = []
    for root, dirs, names in os.walk(location, onerror=refused, followlinks=True):
        dirs.sort()
        for name in names:
            path = Path(root) / name
            if name.lower().endswith(SUFFIXES) and not name.startswith("."):
                if not os.access(path, os.R_OK):
                    refused(PermissionError(13, "Permission denied", str(path)))
                elif path.is_file():
                    found.append(path)
    if unreadable:
        raise InputDataError(unreadable, what=f"{what} files")
    return sorted(found)


def scan_file(path: Path, label: str | None = None, row_index: str | None = None) -> pl.LazyFrame:
    """A lazy frame of the file: CSV columns all as strings (typed later, with row-level errors).

    `row_index`: a column numbering the file's rows from 1, made by the reader itself, so that a
    filter on the frame still skips Parquet row groups by their statistics (a row index added after
    the scan would make every row be read to be numbered)."""
    name = path.name.lower()
    numbered = {"row_index_name": row_index, "row_index_offset": 1} if row_index else {}
    try:
        if name.endswith(".parquet"):
            lazy = pl.scan_parquet(path, **numbered)
        elif name.endswith(".csv.gz"):
            lazy = pl.read_csv(path, infer_schema=False, **numbered).lazy()
        else:
            lazy = pl.scan_csv(path, infer_schema=False, **numbered)
        schema = lazy.collect_schema()
    except Exception as exc:  # polars raises several error types for unreadable files
        raise InputDataError(
            [f"{label or path}: cannot be read as {'Parquet' if name.endswith('.parquet') else 'CSV'} "
             f"({type(exc).__name__}: {str(exc).splitlines()[0] if str(exc) else exc}); "
             "fix or remove the file"],
            what="input files",
        ) from None
    renames = {c: c.strip().lstrip("\ufeff") for c in schema.names() if c != c.strip().lstrip("\ufeff")}
    return lazy.rename(renames) if renames else lazy


def collect_file(lazy: pl.LazyFrame, where: "Where") -> tuple[pl.DataFrame | None, list[str]]:
    """Read a scanned file's rows; a corrupt or truncated file is a problem that names it."""
    try:
        return lazy.collect(), []
    except (pl.exceptions.PolarsError, OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
        return None, [
            f"{where}: cannot be read ({type(exc).__name__}: {first}); the file is corrupt or truncated. "
            "Export or download it again, or remove it."
        ]












def cast_numeric(
    path: Where, frame: pl.DataFrame, columns: list[str], fix: str
) -> tuple[pl.DataFrame, list[str]]:
    """Cast columns to Float64; a value that is present but not a number is a problem, not a null."""
    problems: list[str] = []
    casts = []
    for c in columns:
        if c not in frame.columns:
            continue
        dtype = frame.schema[c]
        if dtype == pl.String:
            parsed = pl.col(c).str.strip_chars().cast(pl.Float64, strict=False)
            bad = pl.col(c).is_not_null() & parsed.is_null()
            bad = bad | parsed.is_nan() | parsed.is_infinite()
            problems += describe_bad_values(path, frame, bad, c, "non-numeric value(s)", fix)
            casts.append(parsed.alias(c))
        elif dtype.is_numeric() or dtype == pl.Null:
            # Parquet floats arrive typed: NaN and infinities are refused like unparseable text.
            typed = pl.col(c).cast(pl.Float64)
            problems += describe_bad_values(
                path, frame, typed.is_nan() | typed.is_infinite(), c, "non-finite value(s) (NaN or infinity)", fix
            )
            casts.append(typed)
        else:
            problems.append(f"{path}: column {c} has type {dtype}, expected numbers. {fix}")
    return (frame.with_columns(casts) if casts else frame), problems


def missing_columns_problem(path: Where, names: list[str], required: list[str], what: str) -> list[str]:
    missing = [c for c in required if c not in names]
    if not missing:
        return []
    return [
        f"{path}: missing required column(s) {', '.join(missing)} for {what}; the file has "
        f"{', '.join(names) if names else 'no columns'}. Add or rename the column(s) "
        f"(names are case-sensitive)."
    ]


def file_runs(column: str) -> pl.Expr:
    """A number per run of equal values (rows of one file are contiguous): cheaper than hashing text."""
    return (pl.col(column) != pl.col(column).shift()).fill_null(True).cum_sum()


def duplicates_across_files(
    frame: pl.DataFrame, key_columns: list[str], what: str, prefilter: list[str] | None = None
) -> list[str]:
    """Rows identical in every key column that come from two different files: one file is a copy.

    Rows are hashed on `prefilter` (a few cheap, discriminating key columns; default all of them)
    to find candidates: rows whose hash occurs in more than one file. Only those are compared on
    every key column, so a large bill costs one cheap hash pass, and a collision is never reported.
    """
    if frame.is_empty() or frame["x_SourceFile"].n_unique() < 2:
        return []
    hash_on = [c for c in (prefilter or key_columns) if c in key_columns] or key_columns
    hashed = frame.select(
        pl.struct(hash_on).hash(seed=0).alias("_h"), file_runs("x_SourceFile").alias("_f")
    )
    suspects = (
        hashed.lazy().unique()
        .filter(pl.len().over("_h") > 1)
        .select("_h").unique()
        .collect()
    )  # fmt: skip
    if suspects.is_empty():
        return []
    return _copies(frame.filter(hashed["_h"].is_in(suspects["_h"].implode())), key_columns, what)


def duplicates_across_parts(
    parts: list[Path], key_columns: list[str], what: str, prefilter: list[str] | None = None
) -> list[str]:
    """`duplicates_across_files` over staged Parquet parts (one file's rows each), never a day in memory.

    Each part's distinct row hashes are split by their top HASH_BUCKET_BITS bits into arrays spilled next
    to the parts; each bucket is then sorted alone, and a hash found twice is in two parts (a part's
    hashes are distinct). Only the rows with such a hash are read back and compared on every column.
    """
    hash_on = [c for c in (prefilter or key_columns) if c in key_columns] or key_columns
    row_hash = pl.struct(hash_on).hash(seed=0)
    spill = parts[0].parent / "hashes"
    spill.mkdir(exist_ok=True)
    shift = np.uint64(64 - HASH_BUCKET_BITS)
    for i, part in enumerate(parts):
        hashes = pl.scan_parquet(part).select(row_hash.alias("h")).unique().collect()["h"].to_numpy()
        bucket = hashes >> shift
        for b in range(2**HASH_BUCKET_BITS):
            np.save(spill / f"{b:03d}-{i:05d}.npy", hashes[bucket == b])
        del hashes, bucket
    found = []
    for b in range(2**HASH_BUCKET_BITS):
        hashes = np.concatenate([np.load(f) for f in sorted(spill.glob(f"{b:03d}-*.npy"))])
        hashes.sort()
        found.append(np.unique(hashes[1:][hashes[1:] == hashes[:-1]]))
        del hashes
    shutil.rmtree(spill, ignore_errors=True)
    suspects = pl.Series("h", np.concatenate(found), dtype=pl.UInt64)
    if suspects.is_empty():
        return []
    wanted = suspects.implode()
    # In the parts' order (the files' reading order), as the in-memory check sees them.
    candidates = pl.concat([pl.scan_parquet(p).filter(row_hash.is_in(wanted)) for p in parts]).collect()
    return _copies(candidates, key_columns, what)


HASH_BUCKET_BITS = 4  # 16 buckets: at 100M line items a day, about 6M hashes (50 MB) sorted at a time


def _copies(candidates: pl.DataFrame, key_columns: list[str], what: str) -> list[str]:
    groups = (
        candidates.group_by(key_columns, maintain_order=True)
        .agg(pl.col("x_SourceFile"), pl.col("x_SourceRow"))
        .filter(pl.col("x_SourceFile").list.n_unique() > 1)
    )
    problems = []
    for files, rows in groups.select("x_SourceFile", "x_SourceRow").head(MAX_EXAMPLES).iter_rows():
        pairs = list(zip(files, rows, strict=True))
        places = " and ".join(f"{f} {row_ref(f, r)}" for f, r in pairs[:MAX_EXAMPLES])
        if len(pairs) > MAX_EXAMPLES:
            places += f" ({len(pairs) - MAX_EXAMPLES} more copies)"
        problems.append(
            f"the same {what} row appears in {places}; the same data was delivered twice. "
            "Remove the duplicate file (or the overlapping rows) so nothing is counted twice."
        )
    if groups.height > MAX_EXAMPLES:
        problems.append(f"... {groups.height - MAX_EXAMPLES} more {what} rows are duplicated across files")
    return problems


BOOLEANS = {"true": True, "t": True, "1": True, "yes": True, "y": True,
            "false": False, "f": False, "0": False, "no": False, "n": False}  # fmt: skip


def read_each(
    paths: list[Path], what: str, read: Callable[[Path], tuple[Any, list[str]]], log: Log | None
) -> tuple[list[Any], list[str]]:
    """Read every file, logging progress; collect the frames and every problem of every file."""
    frames, problems = [], []
    for i, path in enumerate(paths, 1):
        if log:
            log(f"reading {what} file {i}/{len(paths)}: {path}")
        try:
            frame, file_problems = read(path)
        except InputDataError as exc:  # an unreadable file: listed with the others' problems
            frame, file_problems = None, exc.problems
        problems += file_problems
        if frame is not None:
            frames.append(frame)
    return frames, problems


def cast_boolean(path: Where, frame: pl.DataFrame, column: str, fix: str) -> tuple[pl.DataFrame, list[str]]:
    """true/false, yes/no, 1/0 (any case) to Boolean; anything else present is a problem."""
    if frame.schema[column] == pl.Boolean:
        return frame, []
    text = pl.col(column).cast(pl.String).str.strip_chars().str.to_lowercase()
    parsed = text.replace_strict(BOOLEANS, default=None, return_dtype=pl.Boolean)
    problems = describe_bad_values(
        path, frame, pl.col(column).is_not_null() & parsed.is_null(), column, "value(s) that are not true/false", fix
    )
    return frame.with_columns(parsed.alias(column)), problems
