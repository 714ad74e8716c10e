"""AWS Cost Explorer: daily cost grouped by the tenant tag and SERVICE (GetCostAndUsage).

Each request is billed by AWS ($0.01 per paginated request), so a run makes one request per page
for the whole day range: one `TimePeriod` covering every day, the same request repeated with
`NextPageToken` until there is none. `LimitExceededException` (throttling) is retried a bounded
number of times; any other error is reported with AWS's code and message.
"""

import datetime as dt
import time
from collections.abc import Callable
from decimal import Decimal, InvalidOperation

import polars as pl
from botocore.exceptions import ClientError

from unitcost_platform.config import CostExplorerSource
from unitcost_platform.errors import UnitcostError
from unitcost_platform.sources.api_rows import (
    API_ROW_SCHEMA,
    day_start,
    empty_api_rows,
    tenant_tags,
)
from unitcost_platform.sources.service_categories import service_category

METRIC_FOR = {"EffectiveCost": "AmortizedCost", "BilledCost": "UnblendedCost"}


class CostExplorerError(UnitcostError):
    """Cost Explorer refused or returned something we cannot read."""


def build_request(cfg: CostExplorerSource, days: list[dt.date], cost_column: str) -> dict:
    return {
        "TimePeriod": {"Start": min(days).isoformat(), "End": (max(days) + dt.timedelta(days=1)).isoformat()},
        "Granularity": "DAILY",
        "Metrics": [METRIC_FOR[cost_column]],
        "GroupBy": [{"Type": "TAG", "Key": cfg.tag_key}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    }


def _call(client, request: dict, cfg: CostExplorerSource, sleep: Callable[[float], None], log) -> dict:
    for attempt in range(cfg.max_retries + 1):
        try:
            return client.get_cost_and_usage(**request)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            code = error.get("Code", "")
            if code == "LimitExceededException" and attempt < cfg.max_retries:
                wait = min(2.0**attempt, 30.0)
                if log:
                    log(f"Cost Explorer throttled (LimitExceededException); retry {attempt + 1} in {wait:g}s")
                sleep(wait)
                continue
            raise CostExplorerError(
                f"Cost Explorer GetCostAndUsage failed: {code or 'error'}: {error.get('Message', '')}".rstrip(": ")
                + (f" (after {attempt} retries)" if attempt else "")
            ) from None
    raise AssertionError("unreachable")


def _amount(group: dict, metric: str, where: str) -> tuple[Decimal, str]:
    try:
        value = group["Metrics"][metric]
        return Decimal(value["Amount"]), value.get("Unit", "USD")
    except (KeyError, TypeError, InvalidOperation):
        raise CostExplorerError(f"Cost Explorer response has no readable {metric} amount in {where}") from None


def fetch_cost_explorer(
    cfg: CostExplorerSource,
    days: list[dt.date],
    *,
    cost_column: str,
    client,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """API rows (API_ROW_SCHEMA) of `days`: one per day, tenant tag value and service."""
    metric = METRIC_FOR[cost_column]
    request = build_request(cfg, days, cost_column)
    wanted = set(days)
    records, page = [], 0
    token = None
    while True:
        page += 1
        response = _call(client, {**request, **({"NextPageToken": token} if token else {})}, cfg, sleep, log)
        for result in response.get("ResultsByTime", []):
            day = dt.date.fromisoformat(result["TimePeriod"]["Start"])
            if day not in wanted:
                continue
            estimated = bool(result.get("Estimated", False))
            for group in result.get("Groups", []):
                keys = group.get("Keys", [])
                if len(keys) != 2 or "$" not in keys[0]:
                    raise CostExplorerError(f"Cost Explorer group keys {keys!r} are not [tag$value, service] on {day}")
                amount, unit = _amount(group, metric, f"{day} {keys}")
                records.append({
                    "day": day, "tenant": keys[0].split("$", 1)[1], "service": keys[1],
                    "amount": float(amount), "currency": unit, "final": not estimated,
                })  # fmt: skip
        token = response.get("NextPageToken")
        if log:
            log(f"Cost Explorer page {page}: {len(records)} group-days so far")
        if not token:
            break
    if not records:
        return empty_api_rows()
    frame = pl.DataFrame(records).with_row_index("x_SourceRow", offset=1)
    other = "BilledCost" if cost_column == "EffectiveCost" else "EffectiveCost"
    return frame.select(
        pl.col("day").map_elements(day_start, return_dtype=pl.Datetime("us")).alias("ChargePeriodStart"),
        (pl.col("day").map_elements(day_start, return_dtype=pl.Datetime("us")) + pl.duration(days=1)).alias("ChargePeriodEnd"),
        pl.col("amount").alias(cost_column),
        pl.lit(None, dtype=pl.Float64).alias(other),
        pl.col("currency").alias("BillingCurrency"),
        pl.lit("AWS").alias("ProviderName"),
        pl.col("service").alias("ServiceName"),
        pl.col("service").map_elements(service_category, return_dtype=pl.String).alias("ServiceCategory"),
        pl.lit("Usage").alias("ChargeCategory"),
        pl.lit(None, dtype=pl.String).alias("SubAccountId"),
        pl.lit(None, dtype=pl.String).alias("ResourceId"),
        pl.lit(None, dtype=pl.String).alias("RegionId"),
        tenant_tags(cfg.tag_key, pl.col("tenant")).alias("Tags"),
        pl.col("final").alias("x_IsFinal"),
        pl.lit("aws_cost_explorer").alias("x_Source"),
        pl.lit(f"aws-cost-explorer:{metric}").alias("x_SourceFile"),
        pl.col("x_SourceRow").cast(pl.Int64),
    ).select(list(API_ROW_SCHEMA)).cast(API_ROW_SCHEMA)
