"""GCP Cloud Billing export in BigQuery: daily cost per service, project, region and tenant label.

GCP has no cost API; the billing export to BigQuery is where cost lives. One query covers the whole
day range and BigQuery does the aggregation, so what comes back is one row per UTC day and group:

- standard (`gcp_billing_export_v1_*`) and resource-level (`gcp_billing_export_resource_v1_*`)
  tables: `cost` plus every credit (credits are negative amounts), grouped by service, project,
  region, the tenant label (and `resource.name` for the resource-level table). These tables have
  no amortized cost, so the net cost fills both BilledCost and EffectiveCost.
- a FOCUS view or table (`kind: focus`): its own BilledCost and EffectiveCost, grouped the same way,
  the tenant read from its `Tags` array of `{key, value, x_inherited, ...}` structs.

google-cloud-bigquery is the optional `gcp` extra, imported only when this connector runs.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal

import polars as pl
from pydantic import Field

from unitcost_platform.config_base import Model, RestatementConfig
from unitcost_platform.contracts.raw_billing import API_ROW_SCHEMA, empty_api_rows, tenant_tags
from unitcost_platform.errors import UnitcostError
from unitcost_platform.sources.connector import ReadContext, Secret, api_connector, lazy_resources
from unitcost_platform.sources.finality import is_final
from unitcost_platform.sources.service_categories import service_category


class GcpSource(Model):
    """The GCP Cloud Billing export in BigQuery (standard, resource-level, or the FOCUS view)."""

    table: str = Field(description="project.dataset.table (or view)")
    kind: Literal["standard", "resource", "focus"] = "standard"
    label_key: str = "tenant_id"
    project: str | None = Field(default=None, description="project that runs the query jobs (default: the table's)")
    late_days: int = Field(default=3, ge=0, description="how far past a day its rows may still be exported")


if TYPE_CHECKING:
    import dagster as dg
    from google.cloud import bigquery

PROVIDER = "Google Cloud"
SOURCE = "gcp"
COST_COLUMNS = ("EffectiveCost", "BilledCost")
TABLE_PATTERN = re.compile(r"^[A-Za-z0-9_.\-]+$")

# The columns each query returns, in order; a result without one of them is refused.
RESULT_COLUMNS: dict[str, list[str]] = {
    "standard": ["charge_day", "service_name", "project_id", "region_id", "tenant", "currency", "cost", "credits"],
    "resource": [
        "charge_day", "service_name", "project_id", "region_id", "resource_name", "tenant", "currency",
        "cost", "credits",
    ],
    "focus": [
        "charge_day", "service_name", "service_category", "sub_account_id", "resource_id", "region_id",
        "tenant", "currency", "billed_cost", "effective_cost",
    ],
}  # fmt: skip
RESULT_TYPES: dict[str, pl.DataType] = {
    "charge_day": pl.Date(),
    "cost": pl.Float64(),
    "credits": pl.Float64(),
    "billed_cost": pl.Float64(),
    "effective_cost": pl.Float64(),
}  # the other columns are strings
MEASURES = {
    "standard": {"cost", "credits"},
    "resource": {"cost", "credits"},
    "focus": {"billed_cost", "effective_cost"},
}

_EXPORT_QUERY = """\
SELECT
  {group_keys},
  SUM(cost) AS cost,
  SUM(credits) AS credits
FROM (
  SELECT
    DATE(usage_start_time) AS charge_day,
    service.description AS service_name,
    project.id AS project_id,
    location.region AS region_id,{resource_column}
    (SELECT value FROM UNNEST(labels) WHERE key = @label_key) AS tenant,
    currency,
    cost,
    IFNULL((SELECT SUM(c.amount) FROM UNNEST(credits) AS c), 0) AS credits
  FROM `{table}`
  WHERE _PARTITIONTIME >= TIMESTAMP(@partition_start)
    AND _PARTITIONTIME < TIMESTAMP(@partition_end)
    AND usage_start_time >= TIMESTAMP(@first_day)
    AND usage_start_time < TIMESTAMP(@end_day)
)
GROUP BY {group_keys}
ORDER BY {group_keys}
"""

# ServiceCategory goes through TO_JSON_STRING because Google's FOCUS view template fills it from
# the pricing export's product_taxonomy, an ARRAY<STRING> that BigQuery cannot group by; the
# FOCUS export has a plain string. Tags may hold the same key twice (a resource label and an
# inherited project label), so the resource's own value wins.
_FOCUS_QUERY = """\
SELECT
  {group_keys},
  CAST(SUM(billed) AS FLOAT64) AS billed_cost,
  CAST(SUM(effective) AS FLOAT64) AS effective_cost
FROM (
  SELECT
    DATE(ChargePeriodStart) AS charge_day,
    ServiceName AS service_name,
    TO_JSON_STRING(ServiceCategory) AS service_category,
    SubAccountId AS sub_account_id,
    ResourceId AS resource_id,
    RegionId AS region_id,
    (SELECT t.value FROM UNNEST(Tags) AS t WHERE t.key = @label_key
     ORDER BY t.x_inherited, t.value LIMIT 1) AS tenant,
    BillingCurrency AS currency,
    BilledCost AS billed,
    EffectiveCost AS effective
  FROM `{table}`
  WHERE ChargePeriodStart >= TIMESTAMP(@first_day)
    AND ChargePeriodStart < TIMESTAMP(@end_day)
)
GROUP BY {group_keys}
ORDER BY {group_keys}
"""


# What to do about the BigQuery error reasons a misconfigured source gets.
FIXES = {
    "notFound": "check billing.gcp.table in unitcost.yaml (project.dataset.table, as BigQuery shows it)",
    "accessDenied": "grant the credentials roles/bigquery.dataViewer on the dataset and "
    "roles/bigquery.jobUser on the project that runs the query (billing.gcp.project)",
    "invalidQuery": "check that billing.gcp.kind (standard, resource or focus) matches the table",
}


class GcpBillingError(UnitcostError):
    """The BigQuery billing export could not be queried or returned something we cannot read."""


def _bigquery():
    """The google.cloud.bigquery module, or an error saying which extra to install."""
    try:
        from google.cloud import bigquery
    except ImportError:
        raise GcpBillingError(
            "billing.gcp needs google-cloud-bigquery, which is not installed; "
            "run: pip install 'unitcost_platform[gcp]'"
        ) from None
    return bigquery


def checked_table(table: str) -> str:
    """The table name, refused unless it is a plain project.dataset.table (it is put in the SQL)."""
    parts = table.split(".")
    if not TABLE_PATTERN.fullmatch(table) or len(parts) != 3 or "" in parts:
        raise GcpBillingError(
            f"billing.gcp.table {table!r} is not a BigQuery table name; write it as "
            "project.dataset.table (letters, digits, '_', '-' and '.' only)"
        )
    return table


def build_query(
    cfg: GcpSource, days: list[dt.date]
) -> tuple[str, list[bigquery.ScalarQueryParameter]]:
    """The SQL for `cfg.kind` over [min(days), max(days)] and its named parameters.

    The table is the only interpolated identifier (validated, backquoted); every value is a
    parameter. Export tables also bound `_PARTITIONTIME`: a day's rows are exported into that
    day's partition and up to `cfg.late_days` later ones, so the scan stops there.
    """
    bigquery = _bigquery()
    if not days:
        raise ValueError("build_query needs at least one day")
    table = checked_table(cfg.table)
    first, end = min(days), max(days) + dt.timedelta(days=1)
    params = [
        bigquery.ScalarQueryParameter("label_key", "STRING", cfg.label_key),
        bigquery.ScalarQueryParameter("first_day", "DATE", first),
        bigquery.ScalarQueryParameter("end_day", "DATE", end),
    ]
    group_keys = ", ".join(c for c in RESULT_COLUMNS[cfg.kind] if c not in MEASURES[cfg.kind])
    if cfg.kind == "focus":
        return _FOCUS_QUERY.format(table=table, group_keys=group_keys), params
    params += [
        # Partitions may be cut on Pacific time: start a day early so the first UTC hours are in.
        bigquery.ScalarQueryParameter("partition_start", "DATE", first - dt.timedelta(days=1)),
        bigquery.ScalarQueryParameter(
            "partition_end", "DATE", end + dt.timedelta(days=cfg.late_days)
        ),
    ]
    resource_column = "\n    resource.name AS resource_name," if cfg.kind == "resource" else ""
    sql = _EXPORT_QUERY.format(table=table, group_keys=group_keys, resource_column=resource_column)
    return sql, params


def default_project(cfg: GcpSource) -> str:
    """The project that runs the query job: the configured one, else the table's own project."""
    return cfg.project or checked_table(cfg.table).split(".")[0]


def focus_category(encoded: str | None, service_name: str | None) -> str:
    """The view's ServiceCategory when it is a plain string, else our category for the service.

    `encoded` is the column's TO_JSON_STRING: a JSON string for a FOCUS export, a JSON array of
    product taxonomy terms for Google's FOCUS view template, `null` when unset.
    """
    try:
        value = json.loads(encoded) if encoded is not None else None
    except json.JSONDecodeError:
        value = encoded
    if isinstance(value, str) and value.strip():
        return value.strip()
    return service_category(service_name)


def _failure(table: str, exc: Exception) -> GcpBillingError:
    """A GoogleAPICallError as a message naming the table, BigQuery's reason and the likely fix."""
    errors = getattr(exc, "errors", None) or []
    first = errors[0] if errors and isinstance(errors[0], dict) else {}
    reason = first.get("reason") or type(exc).__name__
    # BigQuery's own message; the exception's message also carries the request URL.
    message = first.get("message") or getattr(exc, "message", None) or str(exc)
    code = getattr(exc, "code", None)
    status = f"HTTP {int(code)} {reason}" if code is not None else reason
    hint = FIXES.get(reason)
    return GcpBillingError(
        f"BigQuery query on {table} failed ({status}): {message}" + (f"; {hint}" if hint else "")
    )


def _result_frame(rows, table: str, kind: str) -> pl.DataFrame:
    """The query result as a frame of RESULT_COLUMNS[kind], in the order received."""
    columns = RESULT_COLUMNS[kind]
    present = [field.name for field in rows.schema or []]
    missing = [c for c in columns if c not in present]
    if missing:
        raise GcpBillingError(
            f"BigQuery result for {table} has no column(s) {', '.join(missing)} "
            f"(it returned {', '.join(present) or 'none'}); is billing.gcp.kind ({kind!r}) right?"
        )
    data: dict[str, list] = {c: [] for c in columns}
    for row in rows:
        for c in columns:
            data[c].append(row[c])
    return pl.DataFrame(data, schema={c: RESULT_TYPES.get(c, pl.String) for c in columns})


def fetch_gcp_costs(
    cfg: GcpSource,
    days: list[dt.date],
    *,
    cost_column: str,
    today: dt.date,
    restatement: RestatementConfig,
    client: bigquery.Client | None = None,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """API rows (API_ROW_SCHEMA) of `days` from the billing export table or FOCUS view in `cfg`."""
    if cost_column not in COST_COLUMNS:
        raise ValueError(f"cost_column must be one of {COST_COLUMNS}, not {cost_column!r}")
    if not days:
        return empty_api_rows()
    bigquery = _bigquery()
    from google.api_core.exceptions import GoogleAPICallError
    from google.auth.exceptions import GoogleAuthError

    sql, params = build_query(cfg, days)
    table = cfg.table
    if log:
        log(f"GCP billing: querying {table} ({cfg.kind}) for {min(days)}..{max(days)}")
    try:
        if client is None:
            client = bigquery.Client(project=default_project(cfg))
        rows = client.query_and_wait(
            sql, job_config=bigquery.QueryJobConfig(query_parameters=params)
        )
        result = _result_frame(rows, table, cfg.kind)
    except GoogleAPICallError as exc:
        raise _failure(table, exc) from None
    except GoogleAuthError as exc:
        raise GcpBillingError(
            f"BigQuery query on {table} failed: no usable Google credentials ({exc}); run "
            "`gcloud auth application-default login` or set GOOGLE_APPLICATION_CREDENTIALS"
        ) from None
    api_rows = gcp_api_rows(result, cfg, days, today=today, restatement=restatement)
    if log:
        scanned = getattr(rows, "total_bytes_processed", None)
        log(
            f"GCP billing: {result.height} row(s) from {table}, {api_rows.height} in the requested days, "
            f"{cost_column} {api_rows[cost_column].sum():,.2f}"
            + (f", {int(scanned):,} bytes scanned" if scanned is not None else "")
        )
    return api_rows


def gcp_api_rows(
    result: pl.DataFrame,
    cfg: GcpSource,
    days: list[dt.date],
    *,
    today: dt.date,
    restatement: RestatementConfig,
) -> pl.DataFrame:
    """A query result (RESULT_COLUMNS[cfg.kind]) to API rows of `days`, numbered as received.

    Export tables: cost + credits (credits are negative) in both cost columns, our service
    category. FOCUS: the view's BilledCost and EffectiveCost, its ServiceCategory when a string.
    """
    if result.is_empty():
        return empty_api_rows()
    focus = cfg.kind == "focus"
    names = result["service_name"].to_list()
    if focus:
        encoded = result["service_category"].to_list()
        categories = [focus_category(c, n) for c, n in zip(encoded, names, strict=True)]
        billed, effective = pl.col("billed_cost"), pl.col("effective_cost")
        sub_account, resource = pl.col("sub_account_id"), pl.col("resource_id")
    else:
        categories = [service_category(n) for n in names]
        billed = effective = pl.col("cost") + pl.col("credits").fill_null(0.0)
        sub_account = pl.col("project_id")
        resource = pl.col("resource_name") if cfg.kind == "resource" else pl.lit(None, pl.String)
    final = {d: is_final(d, today, restatement) for d in set(days)}
    start = pl.col("charge_day").cast(pl.Datetime("us"))
    return (
        result.with_row_index("x_SourceRow", offset=1)
        .with_columns(pl.Series("category", categories, dtype=pl.String))
        .filter(pl.col("charge_day").is_in(list(final)))
        .select(
            start.alias("ChargePeriodStart"),
            (start + pl.duration(days=1)).alias("ChargePeriodEnd"),
            billed.alias("BilledCost"),
            effective.alias("EffectiveCost"),
            pl.col("currency").alias("BillingCurrency"),
            pl.lit(PROVIDER).alias("ProviderName"),
            pl.col("service_name").alias("ServiceName"),
            pl.col("category").alias("ServiceCategory"),
            pl.lit("Usage").alias("ChargeCategory"),
            sub_account.alias("SubAccountId"),
            resource.alias("ResourceId"),
            pl.col("region_id").alias("RegionId"),
            tenant_tags(cfg.label_key, pl.col("tenant")).alias("Tags"),
            pl.col("charge_day").replace_strict(final, return_dtype=pl.Boolean).alias("x_IsFinal"),
            pl.lit(SOURCE).alias("x_Source"),
            pl.lit(f"gcp:{cfg.table}").alias("x_SourceFile"),
            pl.col("x_SourceRow").cast(pl.Int64),
        )
        .cast(API_ROW_SCHEMA)
    )


def _resources() -> dict[str, type]:
    import dagster as dg

    class BigQueryResource(dg.ConfigurableResource):
        """The BigQuery client billing.gcp queries with: Application Default Credentials (a service
        account key file in GOOGLE_APPLICATION_CREDENTIALS, workload identity, or gcloud's login)."""

        def client(self, cfg: GcpSource) -> bigquery.Client:
            return _bigquery().Client(project=default_project(cfg))

    return {"BigQueryResource": BigQueryResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: GcpSource | None, secret: Secret) -> dg.ConfigurableResource:
    return __getattr__("BigQueryResource")()


def api_rows(context: ReadContext, cfg: GcpSource, days: list[dt.date]) -> pl.DataFrame:
    if not days:
        return empty_api_rows()
    client = context.resource.client(cfg)
    return fetch_gcp_costs(
        cfg, days, cost_column=context.cfg.cost_column, today=context.today,
        restatement=context.cfg.billing.restatement, client=client, log=context.log,
    )  # fmt: skip


CONNECTOR = api_connector(
    config_model=GcpSource,
    name=SOURCE, config_key="gcp", api_rows=api_rows, tag_key=lambda cfg: cfg.label_key,
    resource_key="bigquery", make_resource=make_resource,
)  # fmt: skip
