"""FOCUS billing columns and their normalization: one place every billing source goes through.

In: frames of FOCUS columns as a provider or file delivered them (strings, decimals, maps, the literal
`NULL`, enumeration spelling drift, hourly or monthly charge periods). Out: the canonical
`raw_billing` frame: typed FOCUS columns, `Tags` as a JSON string, timestamps as naive UTC, one row
per line item and UTC day, plus our `x_` columns.
"""

import datetime as dt
import json
import os
import threading
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import duckdb
import polars as pl

from unitcost_platform.config_base import NAMESPACE_TAG_KEYS, tenant_of_namespace
from unitcost_platform.contracts.tenant_key import tenant_keys
from unitcost_platform.errors import InputDataError

if TYPE_CHECKING:
    from unitcost_platform.config import BillingConfig

STRING_COLUMNS = [
    "AvailabilityZone", "BillingAccountId", "BillingAccountName", "BillingCurrency",
    "ChargeCategory", "ChargeClass", "ChargeDescription", "ChargeFrequency", "InvoiceId",
    "CommitmentDiscountCategory", "CommitmentDiscountId", "CommitmentDiscountName",
    "CommitmentDiscountStatus", "CommitmentDiscountType", "ConsumedUnit", "InvoiceIssuerName",
    "PricingCategory", "PricingUnit", "ProviderName", "PublisherName", "RegionId", "RegionName",
    "ResourceId", "ResourceName", "ResourceType", "ServiceCategory", "ServiceName",
    "ServiceSubcategory", "SkuId", "SkuPriceId", "SubAccountId", "SubAccountName", "Tags",
]  # fmt: skip
NUMERIC_COLUMNS = [
    "BilledCost", "EffectiveCost", "ListCost", "ContractedCost", "ConsumedQuantity",
    "PricingQuantity", "ListUnitPrice", "ContractedUnitPrice",
]  # fmt: skip
COST_COLUMNS = ["BilledCost", "EffectiveCost", "ListCost", "ContractedCost"]
TIMESTAMP_COLUMNS = ["ChargePeriodStart", "ChargePeriodEnd", "BillingPeriodStart", "BillingPeriodEnd"]
REQUIRED_COLUMNS = [
    "BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargeCategory",
    "ProviderName", "ServiceName", "ServiceCategory",
]  # fmt: skip
FOCUS_COLUMNS = sorted(STRING_COLUMNS + NUMERIC_COLUMNS + TIMESTAMP_COLUMNS)

X_COLUMNS: dict[str, pl.DataType] = {
    "x_ChargeDate": pl.Date(),
    "x_TenantId": pl.String(),
    "x_Source": pl.String(),
    "x_SourceFile": pl.String(),
    "x_SourceRow": pl.Int64(),
    "x_IsFinal": pl.Boolean(),
    "x_SpreadFraction": pl.Float64(),
}

_FOCUS_TYPES: dict[str, pl.DataType] = {
    **{c: pl.String() for c in STRING_COLUMNS},
    **{c: pl.Float64() for c in NUMERIC_COLUMNS},
    **{c: pl.Datetime("us") for c in TIMESTAMP_COLUMNS},
}
# The raw_billing table: the FOCUS columns in alphabetical order, then ours.
RAW_BILLING_SCHEMA: dict[str, pl.DataType] = {c: _FOCUS_TYPES[c] for c in FOCUS_COLUMNS} | X_COLUMNS

# FOCUS 1.0/1.1 allowed values; files drift in case, spacing and hyphenation ("Usage-based").
ENUMERATIONS: dict[str, list[str]] = {
    "ChargeCategory": ["Usage", "Purchase", "Tax", "Credit", "Adjustment"],
    "ChargeClass": ["Correction"],
    "ChargeFrequency": ["One-Time", "Recurring", "Usage-Based"],
    "PricingCategory": ["Standard", "Dynamic", "Committed", "Other"],
    "CommitmentDiscountCategory": ["Spend", "Usage"],
    "CommitmentDiscountStatus": ["Used", "Unused"],
    "ServiceCategory": [
        "AI and Machine Learning", "Analytics", "Business Applications", "Compute", "Databases",
        "Developer Tools", "Multicloud", "Identity", "Integration", "Internet of Things",
        "Management and Governance", "Media", "Migration", "Mobile", "Networking", "Security",
        "Storage", "Web", "Other",
    ],
}  # fmt: skip

NULL_LITERALS = ["NULL", "null", "None", ""]

_TIMESTAMP_FORMATS = [
    ("%Y-%m-%d %H:%M:%S", False),
    ("%Y-%m-%d %H:%M:%S%.f%:z", True),
    ("%Y-%m-%d %H:%M:%S%.f", False),
    ("%Y-%m-%d %H:%M%:z", True),
    ("%Y-%m-%d %H:%M", False),
    ("%Y-%m-%d", False),
]


def _enum_key(value: str) -> str:
    return "".join(ch for ch in value.lower() if ch.isalnum())


def normalize_enumerations(frame: pl.DataFrame) -> pl.DataFrame:
    """Map drifted spellings (`Usage-based`, `usage based`) to the FOCUS value; keep unknown values.

    Works on the distinct values of each column (a handful), so a 10M-row frame is one hash pass.
    """
    columns = [c for c in ENUMERATIONS if c in frame.columns and frame.schema[c] == pl.String]
    if not columns or frame.is_empty():
        return frame
    distinct = frame.lazy().select([pl.col(c).unique().implode() for c in columns]).collect().row(0)
    exprs = []
    for column, values in zip(columns, distinct, strict=True):
        canonical = {_enum_key(v): v for v in ENUMERATIONS[column]}
        drifted = {
            v: canonical[_enum_key(v)]
            for v in values
            if v is not None and v not in ENUMERATIONS[column] and _enum_key(v) in canonical
        }
        if drifted:
            exprs.append(pl.col(column).replace(drifted))
    return frame.with_columns(exprs) if exprs else frame


def null_literals_to_null(columns: list[str]) -> list[pl.Expr]:
    """`NULL`, `null`, `None` and empty strings are missing values in real exports."""
    return [
        pl.when(pl.col(c).str.strip_chars().is_in(NULL_LITERALS)).then(None).otherwise(pl.col(c)).alias(c)
        for c in columns
    ]


def parse_utc_timestamp(series: pl.Series) -> pl.Series:
    """Parse ISO-like timestamp strings to naive UTC datetimes; unparseable values become null.

    The first format that parses every value wins (one pass for a well-formed file); mixed files
    fall back to trying each format per value.
    """
    cleaned = series.str.strip_chars().str.replace("T", " ", literal=True).str.replace(r"Z$", "+00:00")
    frame = cleaned.to_frame("s")
    non_null = cleaned.null_count()
    candidates = []
    for fmt, has_tz in _TIMESTAMP_FORMATS:
        if has_tz:
            expr = pl.col("s").str.strptime(pl.Datetime("us", "UTC"), fmt, strict=False)
            expr = expr.dt.replace_time_zone(None)
        else:
            expr = pl.col("s").str.strptime(pl.Datetime("us"), fmt, strict=False)
        candidates.append(expr)
        parsed = frame.select(expr).to_series()
        if parsed.null_count() == non_null:
            return parsed.alias(series.name)
    return frame.select(pl.coalesce(candidates)).to_series().alias(series.name)


def timestamp_to_naive_utc(series: pl.Series) -> pl.Series:
    """Typed timestamps of any zone (or naive, taken as UTC per FOCUS) to naive UTC microseconds."""
    dtype = series.dtype
    if dtype == pl.String:
        return parse_utc_timestamp(series)
    if isinstance(dtype, pl.Datetime):
        if dtype.time_zone is not None:
            series = series.dt.convert_time_zone("UTC").dt.replace_time_zone(None)
        return series.cast(pl.Datetime("us"))
    if dtype == pl.Date:
        return series.cast(pl.Datetime("us"))
    raise TypeError(f"unsupported timestamp type {dtype}")


def _json_string(expr: pl.Expr) -> pl.Expr:
    escaped = (
        expr.cast(pl.String)
        .str.replace_all("\\", "\\\\", literal=True)
        .str.replace_all('"', '\\"', literal=True)
        .str.replace_all("\n", "\\n", literal=True)
        .str.replace_all("\r", "\\r", literal=True)
        .str.replace_all("\t", "\\t", literal=True)
    )
    return pl.concat_str([pl.lit('"'), escaped, pl.lit('"')])


def tags_to_json(series: pl.Series) -> pl.Series:
    """`Tags` as a JSON object string, whatever the file held: a string, a map or a struct."""
    dtype = series.dtype
    name = series.name
    if dtype == pl.String:
        # A string that starts with "{" is no null spelling: a file of JSON objects (nearly every row)
        # is returned as it is, without stripping and copying 2M strings (9 ms against 22 ms).
        if series.str.starts_with("{").fill_null(True).all():
            return series.alias(name)
        # Whitespace around a JSON object is valid JSON: only the null spellings need the strip.
        return series.to_frame("t").select(
            pl.when(pl.col("t").str.strip_chars().is_in(NULL_LITERALS)).then(None).otherwise(pl.col("t"))
        ).to_series().alias(name)
    if isinstance(dtype, pl.Struct):
        return series.struct.json_encode().alias(name)
    map_type = getattr(pl, "Map", None)  # polars >= 2 reads Parquet maps as Map, older as List(Struct)
    if map_type is not None and isinstance(dtype, map_type):
        series = series.cast(pl.List(pl.Struct({"key": pl.String, "value": pl.String})))
        dtype = series.dtype
    if isinstance(dtype, pl.List) and isinstance(dtype.inner, pl.Struct):
        fields = [f.name for f in dtype.inner.fields]
        key, value = ("key", "value") if {"key", "value"} <= set(fields) else fields[:2]
        pair = pl.concat_str(
            [
                _json_string(pl.element().struct.field(key)),
                pl.lit(":"),
                pl.when(pl.element().struct.field(value).is_null())
                .then(pl.lit("null"))
                .otherwise(_json_string(pl.element().struct.field(value))),
            ]
        )
        return series.to_frame("t").select(
            pl.when(pl.col("t").is_null())
            .then(None)
            .otherwise(
                pl.concat_str([pl.lit("{"), pl.col("t").list.eval(pair).list.join(","), pl.lit("}")])
            )
        ).to_series().alias(name)
    if dtype == pl.Null:
        return series.cast(pl.String)
    raise TypeError(f"unsupported Tags type {dtype}; expected a JSON string, a map or a struct")


def invalid_json_rows(tags: pl.Series) -> list[int]:
    """Positions of values that are not JSON objects (only called once a batch failed to parse)."""
    bad = []
    for i, value in enumerate(tags.to_list()):
        if value is None:
            continue
        try:
            if not isinstance(json.loads(value), (dict, type(None))):
                bad.append(i)
        except ValueError:
            bad.append(i)
    return bad


class TagsProblem(InputDataError):
    """Some `Tags` values cannot give a tenant; `positions` are their rows (0-based) in the column."""

    problem = "Tags value(s) that cannot be read"
    fix = 'Tags must be a JSON object such as {"tenant_id": "acme"} (or a map in Parquet).'

    def __init__(self, positions: list[int]):
        self.positions = positions
        super().__init__([f"{len(positions)} {self.problem} (rows {positions[:5]})"], what="billing tags")


class TagsNotJson(TagsProblem):
    """Some `Tags` values are not JSON objects."""

    problem = "value(s) that are not a JSON object"


class TenantTagNotText(TagsProblem):
    """A tenant tag key holds a JSON object or array: no tenant id can be read from it."""

    problem = "value(s) whose tenant tag holds a JSON object or array, not a tenant id"
    fix = (
        'A tenant tag holds the tenant id as text or a number ({"tenant_id": "acme"}); fix the tagging '
        "or list the right key in tenant.tag_keys."
    )


def _sql_text(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


# What `str.strip()` removes (Unicode White_Space): DuckDB's `trim` gets the same set, so "is this
# tag empty?" has one answer on both engines.
UNICODE_WHITESPACE = "".join(chr(c) for c in range(0x3001) if chr(c).isspace())


_DUCKDB: dict[int, duckdb.DuckDBPyConnection] = {}
_DUCKDB_LOCK = threading.Lock()


def _duckdb_cursor() -> duckdb.DuckDBPyConnection:
    """A cursor on this process's in-memory DuckDB: opening a database costs about 15 ms, a cursor
    nothing, and a billing read parses tags once per file. Keyed by process id, so a forked step
    process opens its own instead of sharing its parent's."""
    pid = os.getpid()
    with _DUCKDB_LOCK:
        if pid not in _DUCKDB:
            con = duckdb.connect()
            con.execute("SET enable_progress_bar = false")
            _DUCKDB.clear()
            _DUCKDB[pid] = con
        return _DUCKDB[pid].cursor()


def first_tag(tags: pl.Series, tag_keys: list[str], normalize: str = "none") -> pl.Series:
    """Per `Tags` JSON object, the value of the first configured key that is present and not blank,
    as a tenant key (`tenant_key.tenant_key`: trimmed, and NFKC case-folded with `normalize="lower"`).

    DuckDB's JSON reader (yyjson, on every core) does the parsing: keys are tried in order and a
    later key is looked up only where the earlier ones are missing or blank; nothing is parsed in
    Python, and the found values are normalized once per distinct value. Raises TagsNotJson naming
    the rows that are not JSON objects, TenantTagNotText the rows whose chosen key holds an object.
    """
    paths = [_sql_text(_json_path(key)) for key in tag_keys]
    blank = _sql_text(UNICODE_WHITESPACE)
    values = [f"nullif(trim(json_extract_string(Tags, {path}), {blank}), '')" for path in paths]
    chosen_type = " ".join(f"when {v} is not null then json_type(Tags, {p})" for v, p in zip(values, paths, strict=True))
    with _duckdb_cursor() as con:
        con.register("tags", tags.alias("Tags").to_frame().to_arrow())
        try:
            found = con.sql(
                f"select coalesce({', '.join(values)}) as tag, "
                "coalesce(json_type(Tags) not in ('OBJECT', 'NULL'), false) as not_object, "
                f"coalesce((case {chosen_type} end) in ('OBJECT', 'ARRAY'), false) as nested from tags"
            ).to_arrow_table()
        except duckdb.InvalidInputException:  # malformed JSON somewhere: find the rows
            raise TagsNotJson(invalid_json_rows(tags)) from None
    frame = pl.from_arrow(found)
    if frame["not_object"].any():
        raise TagsNotJson(frame["not_object"].arg_true().to_list())
    if frame["nested"].any():
        raise TenantTagNotText(frame["nested"].arg_true().to_list())
    return tenant_keys(frame["tag"], normalize)


def _json_path(key: str) -> str:
    """A JSONPath to a top-level key, whatever characters it has (`user:tenant_id`)."""
    return "$." + json.dumps(key)


DISTINCT_MIN_ROWS = 100_000
PARSED_TAGS_LIMIT = 1_000_000  # distinct Tags strings a read remembers (a few hundred MB at most)


@dataclass
class ParsedTags:
    """The distinct Tags strings one read has parsed, with their tenant, per (tag keys, normalize).

    A resource carries the same tags in every file of a day (hourly files, or a day exported in
    parts), so a read of many files parses each distinct string once, not once per file: the 50
    files of a 100M-line-item day hold the same 200k tag sets. Stop growing at PARSED_TAGS_LIMIT.
    """

    tables: dict[tuple[tuple[str, ...], str], pl.DataFrame] = field(default_factory=dict)


def _tenants_of_distinct_tags(
    tags: pl.Series, tag_keys: list[str], normalize: str, parsed: ParsedTags | None = None
) -> pl.Series | None:
    """Parse each distinct Tags string once and map back: a resource carries the same tags every hour.

    Rows are grouped by a 64-bit hash of their Tags; every row is then compared with its group's
    string, so a hash collision is caught (and the caller parses every row) instead of moving cost.
    With `parsed`, the strings an earlier file of the read parsed are not parsed again. None when the
    tags hardly repeat (parsing every row is then as cheap), on a collision, or when a string is not
    usable (the caller's full parse then names the bad rows).
    """
    hashes = tags.hash(seed=0)
    key = (tuple(tag_keys), normalize)
    known = parsed.tables.get(key) if parsed is not None else None
    # Only the rows whose hash no earlier file had are made distinct (the check below still compares
    # every row with the string it is mapped to).
    unseen = None if known is None else ~hashes.is_in(known["_h"].implode())
    new_hashes, new_tags = (hashes, tags) if unseen is None else (hashes.filter(unseen), tags.filter(unseen))
    first = new_hashes.is_first_distinct()
    if first.sum() * 2 > tags.len():
        return None
    new = pl.DataFrame({"_h": new_hashes.filter(first), "_tags": new_tags.filter(first)})
    try:
        new = new.with_columns(first_tag(new["_tags"], tag_keys, normalize).alias("_tenant"))
    except TagsProblem:
        return None
    table = new if known is None else pl.concat([known, new])
    mapped = pl.DataFrame({"_h": hashes, "Tags": tags}).join(table, on="_h", how="left", maintain_order="left")
    if mapped.select(pl.col("Tags").ne_missing(pl.col("_tags")).any()).item():
        return None
    if parsed is not None and table.height <= PARSED_TAGS_LIMIT:
        parsed.tables[key] = table
    return mapped["_tenant"]


def tenant_from_tags(
    frame: pl.DataFrame,
    tag_keys: list[str],
    normalize: str,
    sub_accounts: dict[str, str],
    namespace_map: dict[str, str] | None = None,
    parsed: ParsedTags | None = None,
) -> pl.Series:
    """The tenant of each line item: first non-blank configured tag key, else its mapped sub-account,
    else the tenant its Kubernetes namespace tag maps to (`tenant.namespace_map`). `parsed`: the
    tags earlier files of the same read parsed (ParsedTags)."""
    tenant = None
    if "Tags" in frame.columns and tag_keys and frame.height:
        if frame.height >= DISTINCT_MIN_ROWS:
            tenant = _tenants_of_distinct_tags(frame["Tags"], tag_keys, normalize, parsed)
        if tenant is None:
            tenant = first_tag(frame["Tags"], tag_keys, normalize)
    if tenant is None:
        tenant = pl.repeat(None, frame.height, dtype=pl.String, eager=True)
    if sub_accounts:
        mapped = frame["SubAccountId"].replace_strict(sub_accounts, default=None, return_dtype=pl.String)
        tenant = tenant.fill_null(tenant_keys(mapped, normalize))
    if namespace_map and "Tags" in frame.columns and frame.height:
        namespaces = first_tag(frame["Tags"], NAMESPACE_TAG_KEYS, "none")
        distinct = namespaces.unique().drop_nulls().to_list()
        lookup = {ns: tenant_of_namespace(namespace_map, ns) for ns in distinct}
        mapped = namespaces.replace_strict(lookup, default=None, return_dtype=pl.String)
        tenant = tenant.fill_null(tenant_keys(mapped, normalize))
    return tenant.alias("x_TenantId")


def assign_charge_dates(frame: pl.DataFrame, spread: bool, days: Collection[dt.date] | None = None) -> pl.DataFrame:
    """One row per line item and UTC day of its charge period (only `days`' rows when given).

    Hourly rows land on the day of their start. A period covering several days (monthly fees) is
    spread over them in proportion to the time in each day when `spread` is on, so a monthly charge
    does not spike its first day; the costs are scaled by `x_SpreadFraction`, which sums to 1 over
    the whole period. With `days`, only the days asked for are expanded: a year-long charge read for
    one day is one row, not 365.
    """
    start, end = pl.col("ChargePeriodStart"), pl.col("ChargePeriodEnd")
    first_day = start.dt.date()
    if not spread:
        return frame.with_columns(x_ChargeDate=first_day, x_SpreadFraction=pl.lit(1.0))
    last_day = (end - pl.duration(microseconds=1)).dt.date()
    multi = (end.is_not_null() & (end > start) & (last_day > first_day)).fill_null(False)
    if "ChargePeriodEnd" not in frame.columns or not frame.select(multi.any()).item():
        return frame.with_columns(x_ChargeDate=first_day, x_SpreadFraction=pl.lit(1.0))
    single = frame.filter(~multi).with_columns(x_ChargeDate=first_day, x_SpreadFraction=pl.lit(1.0))
    spanning = frame.filter(multi)
    lo, hi = first_day, last_day
    if days:
        lo = pl.max_horizontal(first_day, pl.lit(min(days)))
        hi = pl.min_horizontal(last_day, pl.lit(max(days)))
    day_start = pl.col("x_ChargeDate").cast(pl.Datetime("us"))
    day_end = day_start + pl.duration(days=1)
    overlap = pl.min_horizontal(end, day_end) - pl.max_horizontal(start, day_start)
    spread_rows = (
        spanning.with_columns(x_ChargeDate=pl.date_ranges(lo, hi, "1d"))
        .explode("x_ChargeDate")
        .filter(pl.col("x_ChargeDate").is_not_null())  # a period entirely outside `days`
        .with_columns(
            x_SpreadFraction=overlap.dt.total_microseconds() / (end - start).dt.total_microseconds()
        )
        .with_columns([pl.col(c) * pl.col("x_SpreadFraction") for c in COST_COLUMNS])
    )
    return pl.concat([single, spread_rows.select(single.columns)], how="vertical")


@dataclass(frozen=True)
class BillingLimits:
    """What a plausible line item looks like; anything beyond is refused as corrupt input."""

    max_line_item_cost: float = 10_000_000.0
    max_charge_period_days: int = 1096

    @classmethod
    def of(cls, billing: "BillingConfig") -> "BillingLimits":
        return cls(billing.max_line_item_cost, billing.max_charge_period_days)


DEFAULT_LIMITS = BillingLimits()


def empty_raw_billing() -> pl.DataFrame:
    return pl.DataFrame(schema=RAW_BILLING_SCHEMA)


def conform(frame: pl.DataFrame, columns: Collection[str] | None = None) -> pl.DataFrame:
    """Exactly the raw_billing columns, in order, with their types; absent optional ones are null.

    With `columns`, only those FOCUS columns (and every `x_` column): a projection for readers that
    need a few columns of a large bill.
    """
    return frame.select(
        [
            (pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
            for c, t in RAW_BILLING_SCHEMA.items()
            if columns is None or c in columns or c in X_COLUMNS
        ]
    )


def day_bounds(days: list[dt.date]) -> tuple[dt.datetime, dt.datetime]:
    """The naive-UTC [start, end) of a list of days."""
    lo, hi = min(days), max(days)
    return (
        dt.datetime.combine(lo, dt.time()),
        dt.datetime.combine(hi + dt.timedelta(days=1), dt.time()),
    )
