"""FOCUS billing from CSV and Parquet files (any number, under `$UNITCOST_DATA_DIR/billing/`).

A file with CUR 2.0 columns instead (`line_item_unblended_cost`, no `BilledCost`) is read as the S3
data-exports connector reads CUR 2.0, split cost allocation data included; a FOCUS 1.3 file's
allocated charges become line items of their own (`allocated_charges`).
"""

import datetime as dt
import json
from collections.abc import Collection
from pathlib import Path

import polars as pl

from unitcost_platform.config_base import FileSource, TenantConfig
from unitcost_platform.contracts import focus
from unitcost_platform.contracts.problems import describe_bad_values
from unitcost_platform.contracts.raw_billing import NUMBER_FIX, finish_raw_billing, value_problems
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.connector import BillingRead, Connector, ReadContext
from unitcost_platform.sources.files import (
    Log,
    cast_boolean,
    cast_numeric,
    collect_file,
    duplicates_across_files,
    duplicates_across_parts,
    list_data_files,
    missing_columns_problem,
    read_each,
    scan_file,
)
from unitcost_platform.staging import Stage


def read_billing_files(
    paths: list[Path],
    days: list[dt.date],
    *,
    cost_column: str,
    tenant: TenantConfig,
    spread: bool,
    source: str = "files",
    log: Log | None = None,
    columns: Collection[str] | None = None,
    limits: focus.BillingLimits = focus.DEFAULT_LIMITS,
    stage: Stage | None = None,
    parsed: focus.ParsedTags | None = None,
) -> pl.DataFrame | None:
    """raw_billing rows for `days` from every file; raises InputDataError listing every problem.

    `columns` returns only those FOCUS columns (the files are read for them and for what validation
    and the tenant need) for callers that want a few columns of a large bill; the default is every
    column, as raw_billing stores them, and only then are files checked for copies of each other.
    With `stage`, each file's finished rows become a part of it as soon as the file is read (a day
    is never one frame: the raw_billing asset's path) and None is returned. Each distinct Tags string
    is parsed once for all the files (`parsed`: shared with other reads of the same day, if given).
    """
    window = focus.day_bounds(days)
    parsed = focus.ParsedTags() if parsed is None else parsed
    read = None if columns is None else {*columns, *_ALWAYS_READ, cost_column}
    if stage is not None:
        return _stage_billing_files(paths, days, window, stage, cost_column=cost_column, tenant=tenant,
                                    spread=spread, source=source, log=log, limits=limits, parsed=parsed)  # fmt: skip

    def one(path: Path) -> tuple[pl.DataFrame | None, list[str]]:
        if is_cur2_file(path):
            frame, found = read_cur2_file(path, window, tenant=tenant, limits=limits, parsed=parsed)
        else:
            frame, found = read_focus_file(
                path, window, cost_column, tenant=tenant, columns=columns, limits=limits, parsed=parsed
            )
        if frame is not None and read is not None:
            # Drop what only validation and the tenant needed (Tags) before the files are combined.
            frame = frame.select([c for c in frame.columns if c in read or c.startswith("x_")])
        return frame, found

    frames, problems = read_each(paths, "billing", one, log)
    if problems:
        raise InputDataError(problems, what="billing files")
    if not frames:
        return focus.empty_raw_billing() if columns is None else focus.conform(focus.empty_raw_billing(), columns)
    combined = focus.conform(pl.concat(frames, how="diagonal_relaxed"), read)
    del frames
    # A copy across files is a row equal in every column: a projection cannot tell a copy from two
    # line items that differ only in a column it did not read, so only a full read checks (the
    # raw_billing asset reads every column; a projection reads rows that passed that check).
    if columns is None and len(paths) > 1:
        if log:
            log(f"checking {combined.height:,} billing rows for copies across files")
        key = [c for c in combined.columns if c in focus.FOCUS_COLUMNS]
        problems += duplicates_across_files(combined, key, "billing", prefilter=DUPLICATE_PREFILTER)
    if problems:
        raise InputDataError(problems, what="billing files")
    return finish_raw_billing(
        combined, days, cost_column=cost_column, tenant=tenant, spread=spread, source=source,
        columns=columns, tenants_extracted=True,
    )


def _stage_billing_files(
    paths: list[Path],
    days: list[dt.date],
    window: tuple[dt.datetime, dt.datetime],
    stage: Stage,
    *,
    cost_column: str,
    tenant: TenantConfig,
    spread: bool,
    source: str,
    log: Log | None,
    limits: focus.BillingLimits,
    parsed: focus.ParsedTags,
) -> None:
    """`read_billing_files` one file at a time into `stage`: the same checks and messages; after the
    first problem the other files are still read for theirs, but nothing more is staged."""
    problems: list[str] = []
    first = len(stage.parts)

    def one(path: Path) -> tuple[None, list[str]]:
        if is_cur2_file(path):
            frame, found = read_cur2_file(path, window, tenant=tenant, limits=limits, parsed=parsed)
        else:
            frame, found = read_focus_file(path, window, cost_column, tenant=tenant, limits=limits, parsed=parsed)
        if frame is not None and not found and not problems:
            try:
                stage.add(finish_raw_billing(
                    frame, days, cost_column=cost_column, tenant=tenant, spread=spread, source=source,
                    tenants_extracted=True,
                ))  # fmt: skip
            except InputDataError as exc:  # e.g. a file mixing currencies on a day
                found = [*found, *exc.problems]
        problems.extend(found)
        return None, []

    # read_each also collects what a file raised (an unreadable file, a file mixing currencies).
    _, raised = read_each(paths, "billing", one, log)
    problems += raised
    if problems:
        raise InputDataError(problems, what="billing files")
    parts = stage.parts[first:]
    if len(parts) > 1:
        if log:
            log(f"checking {stage.rows:,} billing rows for copies across files")
        key = [c for c in focus.RAW_BILLING_SCHEMA if c in focus.FOCUS_COLUMNS]
        copies = duplicates_across_parts(parts, key, "billing", prefilter=DUPLICATE_PREFILTER)
        if copies:
            raise InputDataError(copies, what="billing files")


# What the day, the currency check and the spreading of multi-day charges need, whatever is asked.
_ALWAYS_READ = ["ChargePeriodStart", "ChargePeriodEnd", "BillingCurrency", *focus.COST_COLUMNS]

# Rows copied across files agree on these first; only rows that do are compared on every column.
DUPLICATE_PREFILTER = ["ChargePeriodStart", "ChargePeriodEnd", "BilledCost", "EffectiveCost"]






def is_cur2_file(path: Path) -> bool:
    """A CUR 2.0 export (line_item_* columns, no FOCUS cost columns) rather than a FOCUS one."""
    names = scan_file(path).collect_schema().names()
    return "line_item_unblended_cost" in names and "BilledCost" not in names


def read_cur2_file(
    path: Path,
    window: tuple[dt.datetime, dt.datetime],
    label: str | None = None,
    *,
    tenant: TenantConfig | None = None,
    limits: focus.BillingLimits = focus.DEFAULT_LIMITS,
    parsed: focus.ParsedTags | None = None,
) -> tuple[pl.DataFrame | None, list[str]]:
    """A CUR 2.0 file (Parquet as Data Exports write it, or CSV) as typed FOCUS rows overlapping `window`.

    The same code as the S3 data-exports connector: amortized EffectiveCost per line item type, and
    split cost allocation data (`split_line_item_*`: pods as line items, unused capacity as idle line
    items, the node not counted twice) where the columns are present.
    """
    # Imported here: aws_exports reads its FOCUS files through this module.
    from unitcost_platform.sources.billing.aws_exports import cur2_rows

    where = label or str(path)
    lazy = scan_file(path, where, row_index=_ROW)
    in_window = _in_window(lazy.collect_schema(), CUR2_START, CUR2_END, window)
    if in_window is not None:
        lazy = lazy.filter(in_window)
    raw, problems = collect_file(lazy.rename({_ROW: "x_SourceRow"}), where)
    if raw is None:
        return None, problems
    rows, problems = cur2_rows(raw, where, limits)
    if rows is None:
        return None, problems
    lo, hi = window
    end = pl.col("ChargePeriodEnd")
    rows = rows.filter((pl.col("ChargePeriodStart") < hi) & ((end > lo).fill_null(False) | (pl.col("ChargePeriodStart") >= lo)))
    rows, tag_problems = _with_tenant(where, rows, tenant, parsed)
    if tag_problems:
        return None, tag_problems
    return focus.normalize_enumerations(rows), []


def read_focus_file(
    path: Path,
    window: tuple[dt.datetime, dt.datetime],
    cost_column: str,
    label: str | None = None,
    *,
    tenant: TenantConfig | None = None,
    columns: Collection[str] | None = None,
    limits: focus.BillingLimits = focus.DEFAULT_LIMITS,
    parsed: focus.ParsedTags | None = None,
) -> tuple[pl.DataFrame | None, list[str]]:
    """Typed FOCUS rows of one file overlapping `window`, or the problems found (named by `label`).

    With `tenant`, the tenant of each row (`x_TenantId`) is extracted here, in the same pass over the
    JSON tags that validates them. With `columns`, only those FOCUS columns are read (plus the ones
    the day, the cost, the currency and the tenant come from).
    """
    where = label or str(path)
    lazy = scan_file(path, where, row_index=_ROW)
    schema = lazy.collect_schema()
    problems = missing_columns_problem(where, schema.names(), focus.REQUIRED_COLUMNS, "FOCUS billing")
    if problems:
        return None, [p + " unitcost_platform reads FOCUS 1.0 or newer exports." for p in problems]

    wanted = None
    if columns is not None:
        wanted = set(columns) | {"ChargePeriodStart", "ChargePeriodEnd", cost_column, "BillingCurrency", "x_IsFinal"}
        if tenant is not None:
            wanted |= {"Tags"} | ({"SubAccountId"} if tenant.sub_accounts else set())
    if wanted is not None and "AllocatedMethodId" in schema.names():
        wanted |= {"ResourceId", "Tags", "ChargeCategory", "SkuId", *focus.COST_COLUMNS}
    keep = [
        c for c in schema.names()
        if (c in focus.FOCUS_COLUMNS or c == "x_IsFinal") and (wanted is None or c in wanted)
        or c in ALLOCATED_COLUMNS
    ]  # fmt: skip
    lazy = lazy.select(*keep, pl.col(_ROW).alias("x_SourceRow"))
    strings = [c for c in keep if schema[c] == pl.String and c not in ("Tags", "AllocatedTags")]
    lazy = lazy.with_columns(focus.null_literals_to_null(strings))
    lo, hi = window
    in_window = _in_window(schema, "ChargePeriodStart", "ChargePeriodEnd", window)
    if in_window is not None:
        lazy = lazy.filter(in_window)
    frame, unreadable = collect_file(lazy, where)
    if frame is None:
        return None, unreadable
    frame = frame.with_columns(pl.lit(where).alias("x_SourceFile"), pl.col("x_SourceRow").cast(pl.Int64))

    raw_start = frame["ChargePeriodStart"]
    frame, timestamp_problems = _typed_timestamps(where, frame)
    if timestamp_problems:
        return None, timestamp_problems
    bad_start = pl.col("ChargePeriodStart").is_null()
    if frame.select(bad_start.any()).item():
        problems += describe_bad_values(
            where,
            frame.with_columns(raw_start.cast(pl.String).alias("_raw")),
            bad_start,
            "_raw",
            "missing or unreadable ChargePeriodStart value(s)",
            "Write timestamps as ISO 8601 UTC (2026-03-10T00:00:00Z); the day of a line item comes from it.",
        )
        problems = [p.replace("column _raw", "column ChargePeriodStart") for p in problems]
        return None, problems
    del raw_start

    end = pl.col("ChargePeriodEnd") if "ChargePeriodEnd" in frame.columns else pl.lit(None)
    overlaps = (pl.col("ChargePeriodStart") < hi) & (
        (end > lo).fill_null(False) | (pl.col("ChargePeriodStart") >= lo)
    )
    frame = frame.filter(overlaps)

    frame, numeric_problems = cast_numeric(where, frame, focus.NUMERIC_COLUMNS, NUMBER_FIX)
    problems += numeric_problems
    if not numeric_problems:
        problems += describe_bad_values(
            where, frame, pl.col(cost_column).is_null(), cost_column, "empty cost value(s)",
            f"Every line item needs a {cost_column}; use 0 for free usage.",
        )
    problems += value_problems(frame, limits, check_finite=False)
    problems += describe_bad_values(
        where, frame, pl.col("BillingCurrency").is_null(), "BillingCurrency", "empty currency value(s)",
        "Every line item needs its BillingCurrency (e.g. USD).",
    )
    if "Tags" in frame.columns:
        try:
            frame = frame.with_columns(focus.tags_to_json(frame["Tags"]))
        except TypeError as exc:
            problems.append(f"{where}: column Tags: {exc}")
    if "AllocatedMethodId" in frame.columns and not problems:
        frame, allocation_problems = allocated_charges(where, frame)
        problems += allocation_problems
    frame = frame.drop([c for c in ALLOCATED_COLUMNS if c in frame.columns])
    if "x_IsFinal" in frame.columns:
        frame, bool_problems = cast_boolean(where, frame, "x_IsFinal", "Write x_IsFinal as true or false.")
        problems += bool_problems
    if problems:
        return None, problems
    frame, tag_problems = _with_tenant(where, frame, tenant, parsed)
    if tag_problems:
        return None, tag_problems
    return focus.normalize_enumerations(frame), []


# FOCUS 1.3 data generator-calculated split cost allocation (e.g. a node's cost split over its pods).
ALLOCATED_COLUMNS = ["AllocatedMethodId", "AllocatedMethodDetails", "AllocatedResourceId", "AllocatedResourceName", "AllocatedTags"]
IDLE_TAG = "unitcost:idle"
PARENT_TAG = "unitcost:parent"


def allocated_charges(where: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """FOCUS 1.3 allocated charges read as line items of their own, as CUR 2.0 split cost data is.

    The spec splits an origin charge (a node's hour) into allocated charges (`AllocatedMethodId` set)
    whose costs sum to the origin's. An allocated charge with an `AllocatedResourceId` (a pod) becomes
    a line item of that resource: `ResourceId` is the allocated resource, `Tags` are the origin's
    merged with `AllocatedTags` (where its namespace or tenant label lives) plus `unitcost:parent`,
    so its tenant comes from a tenant tag key or `tenant.namespace_map`. One without (the unallocated,
    i.e. unused, portion) stays on the origin resource, tagged `unitcost:idle: "true"` for an `idle:`
    pool. An export that also repeats the origin charge (not allowed by the spec, but seen) would count
    it twice: a non-allocated row with the origin's resource, charge period, category and SKU whose
    costs equal its allocated charges' sums to the cent is dropped.
    """
    method = pl.col("AllocatedMethodId").cast(pl.String).str.strip_chars()
    allocated = method.is_not_null() & (method != "")
    if not frame.select(allocated.any()).item():
        return frame, []
    problems: list[str] = []
    for column in ("AllocatedTags", "Tags"):
        if column in frame.columns and frame.schema[column] != pl.String:
            try:
                frame = frame.with_columns(focus.tags_to_json(frame[column]))
            except TypeError as exc:
                problems.append(f"{where}: column {column}: {exc}")
    if problems:
        return frame, problems
    frame = frame.with_columns(allocated.alias("_allocated"))
    frame = _drop_repeated_origins(frame)
    text = lambda c: (pl.col(c) if c in frame.columns else pl.lit(None)).cast(pl.String)  # noqa: E731
    resource = text("AllocatedResourceId").str.strip_chars()
    resource = pl.when(resource != "").then(resource)
    pairs = frame.filter(pl.col("_allocated")).select(
        text("Tags").alias("t"), text("AllocatedTags").alias("a"), text("ResourceId").alias("p"),
        resource.is_null().alias("idle"),
    ).unique()
    merged, bad = {}, []
    for t, a, parent, idle in pairs.iter_rows():
        try:
            tags = _json_object(t) | _json_object(a)
        except ValueError as exc:
            bad.append(str(exc))
            continue
        extra = {IDLE_TAG: "true"} if idle else {}
        if parent is not None:
            extra[PARENT_TAG] = parent
        merged[(t, a, parent, idle)] = json.dumps(tags | extra, separators=(", ", ": "))
    if bad:
        return frame, [f"{where}: {len(bad)} Tags/AllocatedTags value(s) of allocated charges that are not "
                       f"JSON objects (first: {bad[0]}); FOCUS tags are JSON objects"]  # fmt: skip
    lookup = pl.DataFrame(
        [(*k, v) for k, v in merged.items()],
        schema={"_t": pl.String, "_a": pl.String, "_p": pl.String, "_idle": pl.Boolean, "_merged": pl.String},
        orient="row",
    )
    frame = frame.with_columns(
        text("Tags").alias("_t"), text("AllocatedTags").alias("_a"), text("ResourceId").alias("_p"),
        resource.is_null().alias("_idle"),
    ).join(lookup, on=["_t", "_a", "_p", "_idle"], how="left", maintain_order="left", nulls_equal=True)
    updates = [pl.when(pl.col("_allocated")).then(pl.col("_merged")).otherwise(text("Tags")).alias("Tags")]
    if "ResourceId" in frame.columns:
        updates.append(pl.when(pl.col("_allocated")).then(pl.coalesce(resource, pl.col("ResourceId"))).otherwise(pl.col("ResourceId")).alias("ResourceId"))
    return frame.with_columns(updates).drop("_t", "_a", "_p", "_idle", "_merged", "_allocated"), []


def _json_object(value: str | None) -> dict:
    if value is None or value.strip() in focus.NULL_LITERALS:
        return {}
    parsed = json.loads(value)
    if not isinstance(parsed, dict):
        raise ValueError(repr(value[:80]))
    return parsed


def _drop_repeated_origins(frame: pl.DataFrame) -> pl.DataFrame:
    """Without the rows that repeat an origin charge its allocated charges already carry (see above)."""
    if "ResourceId" not in frame.columns:
        return frame
    key = [c for c in ("ResourceId", "ChargePeriodStart", "ChargePeriodEnd", "ChargeCategory", "SkuId") if c in frame.columns]
    costs = [c for c in focus.COST_COLUMNS if c in frame.columns]
    sums = frame.filter(pl.col("_allocated")).group_by(key).agg([pl.col(c).sum().alias(f"_sum_{c}") for c in costs])
    candidates = frame.with_row_index("_i").filter(~pl.col("_allocated")).join(sums, on=key, how="inner")
    same = pl.all_horizontal([(pl.col(c).fill_null(0.0) - pl.col(f"_sum_{c}").fill_null(0.0)).abs() < 0.005 for c in costs])
    repeated = candidates.filter(same)["_i"]
    if repeated.is_empty():
        return frame
    return frame.with_row_index("_i").filter(~pl.col("_i").is_in(repeated.implode())).drop("_i")


def _with_tenant(
    path: str, frame: pl.DataFrame, tenant: TenantConfig | None, parsed: focus.ParsedTags | None = None
) -> tuple[pl.DataFrame, list[str]]:
    """The tenant column (with `tenant`), else just a check that Tags are JSON objects."""
    if "Tags" not in frame.columns and tenant is None:
        return frame, []
    try:
        if tenant is None:
            focus.first_tag(frame["Tags"], ["_"])
            return frame, []
        tenant_ids = focus.tenant_from_tags(
            frame, tenant.tag_keys, tenant.normalize, tenant.sub_accounts, tenant.namespace_map, parsed
        )
        return frame.with_columns(tenant_ids), []
    except focus.TagsProblem as exc:
        problem = exc
    bad = pl.Series(range(frame.height)).is_in(problem.positions)
    return frame, describe_bad_values(
        path, frame.with_columns(bad.alias("_bad")), pl.col("_bad"), "Tags", problem.problem, problem.fix
    )


# The reader's row number (a name no export uses; a file may carry raw_billing's own x_SourceRow).
_ROW = "__unitcost_source_row"
CUR2_START, CUR2_END = "line_item_usage_start_date", "line_item_usage_end_date"


def _in_window(schema: pl.Schema, start_column: str, end_column: str, window: tuple[dt.datetime, dt.datetime]) -> pl.Expr | None:
    """The rows a file's reader keeps for `window` when its start column holds typed timestamps
    (None for text, parsed later): those that overlap it, as the readers' own filter keeps them,
    and those without a start, to be refused rather than dropped. A filter on the scan, so that
    Parquet statistics skip the row groups (and files) of other days: a folder of exports, or a
    month's export, is read for one day without reading the rest."""
    if not isinstance(schema.get(start_column), pl.Datetime):
        return None
    lo, hi = window
    start = _naive_utc(start_column, schema)
    inside = start < hi
    if isinstance(schema.get(end_column), pl.Datetime):
        inside = inside & ((_naive_utc(end_column, schema) > lo) | (start >= lo))
    return start.is_null() | inside


def _naive_utc(column: str, schema: pl.Schema) -> pl.Expr:
    """A typed timestamp column as naive UTC microseconds, as `_typed_timestamps` makes it."""
    expr = pl.col(column)
    if schema[column].time_zone is not None:
        expr = expr.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
    return expr.cast(pl.Datetime("us"))


def _typed_timestamps(where: str, frame: pl.DataFrame) -> tuple[pl.DataFrame, list[str]]:
    """Timestamp columns as naive UTC; a column of another type (epoch integers) names itself."""
    converted, problems = [], []
    for column in focus.TIMESTAMP_COLUMNS:
        if column not in frame.columns:
            continue
        try:
            converted.append(focus.timestamp_to_naive_utc(frame[column]))
        except TypeError:
            problems.append(
                f"{where}: column {column} has type {frame.schema[column]}, not timestamps. FOCUS timestamps are "
                "ISO 8601 text (2026-03-10T00:00:00Z) or Parquet timestamps; epoch numbers are not read (their unit "
                "is ambiguous): fix the export."
            )
    return frame.with_columns(converted), problems


def read(context: ReadContext, cfg: FileSource, days: list[dt.date], stage: Stage | None = None) -> BillingRead:
    """The files' rows of `days`; with `stage`, staged file by file (BillingRead.rows is then None)."""
    if not days:
        return BillingRead(focus.empty_raw_billing())
    location = cfg.resolve(context.data_dir)
    paths = list_data_files(location, "billing")
    context.log(f"{len(paths)} billing file(s) under {location}")
    billing = context.cfg.billing
    rows = read_billing_files(
        paths, days, tenant=context.cfg.tenant, spread=billing.spread_multi_day_charges, log=context.log,
        cost_column=context.cfg.cost_column, limits=focus.BillingLimits.of(billing), stage=stage,
    )  # fmt: skip
    return BillingRead(rows)


CONNECTOR = Connector(
    name="files", kind="billing", config_key="files", read=read, restatement="none", streams=True,
    config_model=FileSource, default=FileSource(path="billing"),
)  # fmt: skip
