"""What every billing API connector returns, and how it becomes raw_billing.

A connector (Cost Explorer, Azure Cost Management, GCP BigQuery export, ...) returns a frame with
the columns of `API_ROW_SCHEMA`: one row per day and group it received (tenant tag x service, or
finer), costs as Float64, the tenant tag value as a `Tags` JSON object, whether the provider
considers the row final, and where it came from (`x_SourceFile`: a human-readable reference such
as `azure:/subscriptions/...`, `x_SourceRow`: its position in the response). `to_raw_billing` then
applies exactly the normalization the files get.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import TenantConfig
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources import focus
from unitcost_platform.sources.billing_files import finish_raw_billing, value_problems

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
