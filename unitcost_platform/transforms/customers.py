"""The customer dimension: validation of customer records and the snapshot each day sees.

In: customer versions, one row per (customer, tenant, validity range) with `x_Where` saying where the
row came from. Out: `customer_dimension`, one row per (snapshot_date, customer, tenant).
"""

import datetime as dt

import polars as pl

from unitcost_platform.contracts.customers import (
    ATTRIBUTES,
    CUSTOMER_DIMENSION_SCHEMA,
    DEFAULT_MAX_MRR,
    STATUSES,
    VERSION_SCHEMA,
)
from unitcost_platform.errors import InputDataError


def complete_versions(versions: pl.DataFrame, non_paying_tiers: list[str]) -> pl.DataFrame:
    """Fill the optional columns: name defaults to the id, segment to the tier, is_paying from the tier."""
    non_paying = [t.lower() for t in non_paying_tiers]
    return versions.with_columns(
        pl.col("tier").str.strip_chars().str.to_lowercase(),
        pl.col("status").str.strip_chars().str.to_lowercase(),
    ).with_columns(
        pl.coalesce(["customer_name", "customer_id"]).alias("customer_name"),
        pl.coalesce(["segment", "tier"]).alias("segment"),
        pl.coalesce([pl.col("is_paying"), ~pl.col("tier").is_in(non_paying)]).alias("is_paying"),
    ).select(list(VERSION_SCHEMA)).cast(VERSION_SCHEMA)


def version_problems(versions: pl.DataFrame, max_mrr: float = DEFAULT_MAX_MRR) -> list[str]:
    """Problems visible on single rows: missing keys, an MRR that is not money, unknown status, inverted dates."""
    finite = pl.col("mrr").is_finite()
    checks = [
        (pl.col("customer_id").is_null(), "has no customer_id", "every row names its customer"),
        (pl.col("tenant_id").is_null(), "has no tenant_id", "every row maps a tenant to its customer"),
        (pl.col("mrr").is_null(), "has no mrr", "use 0 for free and trial customers"),
        (~finite, "has an mrr that is not a finite number (NaN or infinity)", "MRR is an amount of money"),
        (finite & (pl.col("mrr") < 0), "has a negative mrr", "MRR is recurring revenue: 0 or more"),
        (
            finite & (pl.col("mrr") > max_mrr),
            f"has an mrr above {max_mrr:,.0f}",
            "that is taken for corrupt data; fix the source, or raise customers.max_mrr in unitcost.yaml",
        ),
        (
            pl.col("status").is_null() | ~pl.col("status").is_in(STATUSES),
            "has an unknown status",
            f"status is one of {', '.join(STATUSES)}",
        ),
        (
            pl.col("valid_to") <= pl.col("valid_from"),
            "has valid_to on or before valid_from",
            "valid_from is inclusive, valid_to exclusive; leave valid_to empty for open-ended rows",
        ),
    ]
    problems = []
    for bad, what, fix in checks:
        rows = versions.filter(bad.fill_null(False))
        for where, cid, value in rows.select(
            "x_Where", "customer_id", pl.concat_str([pl.lit("status="), "status", pl.lit(" mrr="), pl.col("mrr").cast(pl.String)], ignore_nulls=True)
        ).head(5).iter_rows():
            problems.append(f"{where} (customer {cid}, {value}) {what}: {fix}.")
        if rows.height > 5:
            problems.append(f"... {rows.height - 5} more rows {what}")
    return problems


def snapshot(versions: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    """The customer rows valid on each day (valid_from inclusive, valid_to exclusive, empty = open)."""
    since = versions.group_by("customer_id").agg(pl.col("valid_from").min().alias("customer_since"))
    open_since = versions.group_by("customer_id").agg(pl.col("valid_from").is_null().any().alias("_open"))
    since = since.join(open_since, on="customer_id").with_columns(
        pl.when(pl.col("_open")).then(None).otherwise(pl.col("customer_since")).alias("customer_since")
    ).drop("_open")
    calendar = pl.DataFrame({"snapshot_date": days}, schema={"snapshot_date": pl.Date})
    valid = (pl.col("valid_from").is_null() | (pl.col("valid_from") <= pl.col("snapshot_date"))) & (
        pl.col("valid_to").is_null() | (pl.col("snapshot_date") < pl.col("valid_to"))
    )
    return (
        calendar.join(versions, how="cross")
        .filter(valid)
        .join(since, on="customer_id", how="left")
    )


def snapshot_problems(snap: pl.DataFrame) -> list[str]:
    """Problems of a day's view: a tenant owned twice, a customer whose rows disagree."""
    problems = []
    dup = (
        snap.group_by("snapshot_date", "tenant_id")
        .agg(pl.col("customer_id").unique().sort(), pl.col("x_Where"), pl.len().alias("n"))
        .filter(pl.col("n") > 1)
        .sort("tenant_id", "snapshot_date")
    )
    for tenant, rows in dup.group_by(["tenant_id"], maintain_order=True):
        first = rows.row(0, named=True)
        days = f"{rows['snapshot_date'].min()}..{rows['snapshot_date'].max()}"
        where = " and ".join(first["x_Where"])
        if len(first["customer_id"]) > 1:
            problems.append(
                f"tenant {tenant[0]!r} is mapped to customers {', '.join(first['customer_id'])} on "
                f"{days} ({where}); a tenant belongs to one customer at a time. Close the old row "
                "with valid_to or remove one mapping."
            )
        else:
            problems.append(
                f"tenant {tenant[0]!r} is listed more than once for customer {first['customer_id'][0]} "
                f"on {days} ({where}): duplicate tenant id. Keep one row per tenant and period."
            )
    disagree = (
        snap.group_by("snapshot_date", "customer_id")
        .agg([pl.col(a).n_unique().alias(a) for a in ATTRIBUTES] + [pl.col("x_Where")])
        .filter(pl.any_horizontal([pl.col(a) > 1 for a in ATTRIBUTES]))
        .sort("customer_id", "snapshot_date")
    )
    for cid, rows in disagree.group_by(["customer_id"], maintain_order=True):
        first = rows.row(0, named=True)
        cols = [a for a in ATTRIBUTES if first[a] > 1]
        problems.append(
            f"customer {cid[0]!r} has rows that disagree on {', '.join(cols)} on {first['snapshot_date']} "
            f"({' and '.join(first['x_Where'])}); a customer's tier, MRR and status are one value per "
            "day, repeated on each of its tenant rows."
        )
    return problems


def customer_dimension(
    versions: pl.DataFrame, days: list[dt.date], non_paying_tiers: list[str], max_mrr: float = DEFAULT_MAX_MRR
) -> pl.DataFrame:
    """Validated snapshots of `days`; raises InputDataError naming every bad row."""
    versions = complete_versions(versions, non_paying_tiers)
    problems = version_problems(versions, max_mrr)
    if problems:
        raise InputDataError(problems, what="customer records")
    snap = snapshot(versions, days)
    problems = snapshot_problems(snap)
    if problems:
        raise InputDataError(problems, what="customer records")
    return (
        snap.select(list(CUSTOMER_DIMENSION_SCHEMA))
        .cast(CUSTOMER_DIMENSION_SCHEMA)
        .sort("snapshot_date", "customer_id", "tenant_id")
    )


def usage_per_customer(usage: pl.DataFrame, customers: pl.DataFrame, name: str = "value") -> pl.DataFrame:
    """(day, customer_id, metric, <name>): each day's tenant usage summed per customer that owns the
    tenant that day (a tenant no customer owns is nobody's). Rows are summed in a fixed order, so the
    float sums are the same in every run."""
    return (
        usage.join(
            customers.select("snapshot_date", "tenant_id", "customer_id").unique(),
            left_on=["usage_date", "tenant_id"], right_on=["snapshot_date", "tenant_id"],
        )
        .sort("usage_date", "customer_id", "metric", "tenant_id")
        .group_by(pl.col("usage_date").alias("day"), "customer_id", "metric", maintain_order=True)
        .agg(pl.col("value").sum().alias(name))
        .cast({"day": pl.Date})
    )  # fmt: skip
