"""The raw billing contract: what every billing API connector returns, and how it becomes raw_billing.

A connector (Cost Explorer, Azure Cost Management, GCP BigQuery export, ...) returns a frame with
the columns of `API_ROW_SCHEMA`: one row per day and group it received (tenant tag x service, or
finer), costs as Float64, the tenant tag value as a `Tags` JSON object, whether the provider
considers the row final, and where it came from (`x_SourceFile`: a human-readable reference such
as `azure:/subscriptions/...`, `x_SourceRow`: its position in the response). `to_raw_billing` then
applies exactly the normalization the files get.
"""

import datetime as dt
from collections.abc import Collection

import polars as pl

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.contracts import focus
from unitcost_platform.contracts.problems import describe_bad_values, row_ref
from unitcost_platform.errors import InputDataError

API_ROW_SCHEMA: dict[str, pl.DataType] = {
    "ChargePeriodStart": pl.Datetime("us"),
    "ChargePeriodEnd": pl.Datetime("us"),
    "BilledCost": pl.Float64(),
    "EffectiveCost": pl.Float64(),
    "BillingCurrency": pl.String(),
    "ProviderName": pl.String(),
    "ServiceName": pl.String(),
    "ServiceCategory": pl.String(),
    "ChargeCategory": pl.String(),
    "SubAccountId": pl.String(),
    "ResourceId": pl.String(),
    "RegionId": pl.String(),
    "Tags": pl.String(),
    "x_IsFinal": pl.Boolean(),
    "x_Source": pl.String(),
    "x_SourceFile": pl.String(),
    "x_SourceRow": pl.Int64(),
}


def empty_api_rows() -> pl.DataFrame:
    return pl.DataFrame(schema=API_ROW_SCHEMA)


def tenant_tags(tag_key: str, value: pl.Expr) -> pl.Expr:
    """`{"<tag_key>": "<value>"}` for a non-empty tag value, null for an untagged group."""
    cleaned = value.cast(pl.String).str.strip_chars()
    return pl.when(cleaned.is_not_null() & (cleaned != "")).then(
        pl.struct(cleaned.alias(tag_key)).struct.json_encode()
    )


def day_start(day: dt.date) -> dt.datetime:
    return dt.datetime.combine(day, dt.time())


def to_raw_billing(
    rows: pl.DataFrame,
    days: list[dt.date],
    *,
    cost_column: str,
    tenant: TenantConfig,
    tag_key: str,
    source: str,
    limits: focus.BillingLimits = focus.DEFAULT_LIMITS,
) -> pl.DataFrame:
    """API rows to raw_billing: the same enumeration, currency, tenant and plausibility handling as files."""
    missing = [c for c in API_ROW_SCHEMA if c not in rows.columns]
    if missing:
        raise ValueError(f"{source} connector returned a frame without {missing}")
    problems = value_problems(rows.cast({c: API_ROW_SCHEMA[c] for c in ("BilledCost", "EffectiveCost")}), limits)
    if problems:
        raise InputDataError(problems, what=f"billing from {source}")
    keys = tenant.tag_keys if tag_key in tenant.tag_keys else [*tenant.tag_keys, tag_key]
    typed = focus.normalize_enumerations(rows.select(list(API_ROW_SCHEMA)).cast(API_ROW_SCHEMA))
    return finish_raw_billing(
        focus.conform(typed), days, cost_column=cost_column,
        tenant=tenant.model_copy(update={"tag_keys": keys}), spread=False, source=source,
    )  # fmt: skip


NUMBER_FIX = "Costs and quantities must be plain decimal numbers (12.34); fix the export or remove those rows."


def finish_raw_billing(
    frame: pl.DataFrame,
    days: list[dt.date],
    *,
    cost_column: str,
    tenant: TenantConfig,
    spread: bool,
    source: str,
    columns: Collection[str] | None = None,
    tenants_extracted: bool = False,
) -> pl.DataFrame:
    """From typed FOCUS rows to raw_billing: days assigned, currency checked, tenant extracted.

    A reader that already extracted `x_TenantId` (per file, with the JSON tag check) says so.
    """
    dated = focus.assign_charge_dates(frame, spread, days)
    dated = dated.filter(pl.col("x_ChargeDate").is_in(days))
    problems = mixed_currency_problems(dated)
    if problems:
        raise InputDataError(problems, what="billing")
    if not tenants_extracted:
        dated = dated.with_columns(
            focus.tenant_from_tags(dated, tenant.tag_keys, tenant.normalize, tenant.sub_accounts, tenant.namespace_map)
        )
    out = dated.with_columns(
        x_Source=pl.coalesce([pl.col("x_Source"), pl.lit(source)]) if "x_Source" in dated.columns else pl.lit(source),
        x_IsFinal=pl.col("x_IsFinal").fill_null(True) if "x_IsFinal" in dated.columns else pl.lit(True),
    )
    return focus.conform(out, columns)


def billing_summary(frame: pl.DataFrame) -> pl.DataFrame:
    """raw_billing rows summed per day, source, provider, currency, finality and tagged-or-not, with
    the first row of each (`frame` is in the table's order: source, file, row): what the currency
    check and raw_billing's metadata read, so a day staged in parts is summarized part by part."""
    return frame.group_by(
        "x_ChargeDate", "x_Source", "ProviderName", "BillingCurrency", "x_IsFinal",
        pl.col("x_TenantId").is_not_null().alias("tagged"), maintain_order=True,
    ).agg(
        pl.col("BilledCost").sum(), pl.col("EffectiveCost").sum(), pl.len().cast(pl.Int64).alias("rows"),
        pl.col("x_SourceFile").first(), pl.col("x_SourceRow").first(),
    )  # fmt: skip


def mixed_currency_problems(frame: pl.DataFrame) -> list[str]:
    """Costs of one day are summed, so a day must be billed in one currency.

    `frame`: raw_billing rows, or `billing_summary` rows (of every part of a staged day)."""
    currency = frame["BillingCurrency"]
    if currency.is_empty() or not currency.ne_missing(currency[0]).any():
        return []  # the usual case: one comparison per row instead of hashing 10M strings per day (1.2 s)
    currencies = frame.group_by("x_ChargeDate").agg(pl.col("BillingCurrency").n_unique().alias("n"))
    if currencies.is_empty() or currencies["n"].max() < 2:
        return []
    order = [c for c in ("x_Source", "x_SourceFile", "x_SourceRow") if c in frame.columns]
    rows = pl.col("rows").sum() if "rows" in frame.columns else pl.len().alias("rows")
    per_day = (
        (frame.sort(order, maintain_order=True) if order else frame)
        .group_by("x_ChargeDate", "BillingCurrency", maintain_order=True)
        .agg(rows, pl.col("x_SourceFile").first(), pl.col("x_SourceRow").first())
        .sort("x_ChargeDate", "rows", descending=[False, True])
    )
    mixed = per_day.filter(pl.col("BillingCurrency").n_unique().over("x_ChargeDate") > 1)
    problems = []
    for (day,), rows in mixed.group_by(["x_ChargeDate"], maintain_order=True):
        parts = [
            f"{cur} ({n} rows, e.g. {f} {row_ref(f, r)})"
            for cur, n, f, r in rows.select("BillingCurrency", "rows", "x_SourceFile", "x_SourceRow").iter_rows()
        ]
        problems.append(
            f"billing for {day} mixes currencies: {'; '.join(parts)}. Unit costs add up one currency: "
            "export every source in the same BillingCurrency (or convert upstream) and re-run the day."
        )
    return problems


MAGNITUDE_FIX = (
    "A single line item above billing.max_line_item_cost is taken for corrupt data (a damaged file, a unit "
    "mix-up), not money; check the export, or raise the limit in unitcost.yaml if the charge is real."
)


def value_problems(frame: pl.DataFrame, limits: focus.BillingLimits, *, check_finite: bool = True) -> list[str]:
    """Numbers that cannot be money and charge periods that cannot be real, per source file and row.

    Non-finite numbers (NaN, infinity) in any numeric column; a cost beyond the plausible size of one
    line item; a charge period ending before it starts or lasting longer than the horizon (a
    ChargePeriodEnd of 9999-12-31 would otherwise spread one charge over millions of days).
    """
    problems: list[str] = []
    numeric = [c for c in focus.NUMERIC_COLUMNS if c in frame.columns and frame.schema[c].is_float()]
    longest = pl.duration(days=limits.max_charge_period_days)
    checks = [~pl.col(c).is_finite() for c in numeric] if check_finite else []
    checks += [pl.col(c).abs() > limits.max_line_item_cost for c in numeric if c in focus.COST_COLUMNS]
    if "ChargePeriodEnd" in frame.columns:
        span = pl.col("ChargePeriodEnd") - pl.col("ChargePeriodStart")
        checks += [span < pl.duration(microseconds=0), span > longest]
    if not checks or not frame.select(pl.any_horizontal(checks).any()).item():
        return problems  # the usual case: one pass over the rows, nothing to describe
    for (label,), part in frame.group_by(["x_SourceFile"], maintain_order=True):
        if check_finite:
            for column in numeric:
                problems += describe_bad_values(
                    label, part, ~pl.col(column).is_finite(), column, "non-finite value(s) (NaN or infinity)", NUMBER_FIX
                )
        for column in (c for c in numeric if c in focus.COST_COLUMNS):
            too_big = pl.col(column).is_finite() & (pl.col(column).abs() > limits.max_line_item_cost)
            problems += describe_bad_values(
                label, part, too_big, column, f"value(s) beyond ±{limits.max_line_item_cost:,.0f}", MAGNITUDE_FIX
            )
        if "ChargePeriodEnd" in part.columns:
            span = pl.col("ChargePeriodEnd") - pl.col("ChargePeriodStart")
            problems += describe_bad_values(
                label, part, span < pl.duration(microseconds=0), "ChargePeriodEnd",
                "charge period(s) ending before they start", "ChargePeriodEnd must not be before ChargePeriodStart; fix the export.",
            )  # fmt: skip
            problems += describe_bad_values(
                label, part, span > longest, "ChargePeriodEnd",
                f"charge period(s) longer than {limits.max_charge_period_days} days",
                "A ChargePeriodEnd that far after ChargePeriodStart is a placeholder or corrupt date (9999-12-31); "
                "fix the export, or raise billing.max_charge_period_days if such a period is real.",
            )  # fmt: skip
    return problems

