"""AWS Data Exports on S3: CUR 2.0 and FOCUS 1.0/1.2, as Parquet, one billing period per partition.

Layout: `<prefix>/<export>/data/BILLING_PERIOD=YYYY-MM/*.parquet`, and for each execution a
`<prefix>/<export>/metadata/BILLING_PERIOD=YYYY-MM/<export>-Manifest.json` listing the data files
it delivered. A refresh restates the whole billing period, so a day is read from exactly the files
of the period's latest manifest: ingestion replaces, never appends. The manifest's `executionId`
is the version of the period, which the restatement sensor compares with what was ingested.
"""

from __future__ import annotations

import datetime as dt
import json
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Literal

import polars as pl
from pydantic import Field

from unitcost_platform.config_base import Model, TenantConfig
from unitcost_platform.contracts import focus
from unitcost_platform.contracts.problems import describe_bad_values
from unitcost_platform.contracts.raw_billing import finish_raw_billing, value_problems
from unitcost_platform.errors import InputDataError, UnitcostError
from unitcost_platform.sources.billing.files import read_cur2_file, read_focus_file
from unitcost_platform.sources.connector import (
    BillingRead,
    Connector,
    ReadContext,
    Secret,
    lazy_resources,
)
from unitcost_platform.sources.files import missing_columns_problem
from unitcost_platform.sources.service_categories import service_category

if TYPE_CHECKING:
    import dagster as dg


class AwsExportSource(Model):
    """An AWS Data Exports export (CUR 2.0 or FOCUS 1.0/1.2) delivered as Parquet to S3."""

    bucket: str
    prefix: str = ""
    export_name: str
    format: Literal["cur2", "focus"]
    region: str | None = None
    final_after_days: int = Field(
        default=5, ge=0, description="FOCUS exports without InvoiceId: a period is final this many days after its end"
    )

    def data_prefix(self, period: str) -> str:
        base = "/".join(p for p in (self.prefix.strip("/"), self.export_name) if p)
        return f"{base}/data/BILLING_PERIOD={period}/"

    def metadata_prefix(self, period: str) -> str:
        base = "/".join(p for p in (self.prefix.strip("/"), self.export_name) if p)
        return f"{base}/metadata/BILLING_PERIOD={period}/"


CUR2_REQUIRED = [
    "line_item_line_item_type", "line_item_usage_start_date", "line_item_unblended_cost",
    "line_item_currency_code",
]  # fmt: skip
CHARGE_CATEGORY = {
    "Usage": "Usage", "DiscountedUsage": "Usage", "SavingsPlanCoveredUsage": "Usage",
    "Tax": "Tax", "Credit": "Credit", "Refund": "Credit",
    "Fee": "Purchase", "RIFee": "Purchase", "SavingsPlanRecurringFee": "Purchase", "SavingsPlanUpfrontFee": "Purchase",
}  # fmt: skip


class AwsExportError(UnitcostError):
    """The export on S3 is missing or unreadable."""


@dataclass
class ExportRead:
    rows: pl.DataFrame  # raw_billing rows of the days asked for
    versions: dict[str, str] = field(default_factory=dict)  # "<export>/<YYYY-MM>" -> manifest executionId


def periods_of(days: list[dt.date]) -> list[str]:
    return sorted({d.strftime("%Y-%m") for d in days})


def _split_uri(uri: str) -> tuple[str, str]:
    if not uri.startswith("s3://"):
        raise AwsExportError(f"manifest data file {uri!r} is not an s3:// URI")
    bucket, _, key = uri[5:].partition("/")
    return bucket, key


def latest_manifest(s3, cfg: AwsExportSource, period: str) -> dict | None:
    """The period's current manifest (the named one, else the newest *Manifest.json), or None."""
    # imported here: every transform imports this module's config model
    from botocore.exceptions import ClientError

    prefix = cfg.metadata_prefix(period)
    try:
        listing = s3.list_objects_v2(Bucket=cfg.bucket, Prefix=prefix)
    except ClientError as exc:
        code = exc.response.get("Error", {}).get("Code", "error")
        raise AwsExportError(f"cannot list s3://{cfg.bucket}/{prefix}: {code}") from None
    manifests = [o for o in listing.get("Contents", []) if o["Key"].endswith("Manifest.json")]
    if not manifests:
        return None
    named = [o for o in manifests if o["Key"].endswith(f"/{cfg.export_name}-Manifest.json")]
    chosen = max(named or manifests, key=lambda o: o["LastModified"])
    body = s3.get_object(Bucket=cfg.bucket, Key=chosen["Key"])["Body"].read()
    try:
        manifest = json.loads(body)
        manifest["dataFiles"]  # noqa: B018 (presence check)
    except (ValueError, KeyError, TypeError):
        raise AwsExportError(f"s3://{cfg.bucket}/{chosen['Key']} is not a Data Exports manifest (no dataFiles)") from None
    manifest.setdefault("executionId", chosen.get("ETag", "").strip('"'))
    return manifest


def manifest_versions(s3, cfg: AwsExportSource, periods: list[str]) -> dict[str, str]:
    """executionId of each period's current manifest (the restatement sensor's view of S3)."""
    versions = {}
    for period in periods:
        manifest = latest_manifest(s3, cfg, period)
        if manifest is not None:
            versions[f"{cfg.export_name}/{period}"] = str(manifest["executionId"])
    return versions


def _map_value(frame: pl.DataFrame, column: str, key: str) -> pl.Expr:
    """The value of `key` in a Parquet map column (read as Map or List(Struct)), else null."""
    if column not in frame.columns:
        return pl.lit(None, dtype=pl.String)
    dtype = frame.schema[column]
    expr = pl.col(column)
    map_type = getattr(pl, "Map", None)
    if map_type is not None and isinstance(dtype, map_type):
        expr = expr.cast(pl.List(pl.Struct({"key": pl.String, "value": pl.String})))
    elif not isinstance(dtype, pl.List):
        return pl.lit(None, dtype=pl.String)
    return expr.list.eval(pl.element().filter(pl.element().struct.field("key") == key).struct.field("value")).list.first()


def cur2_rows(
    frame: pl.DataFrame, label: str, limits: focus.BillingLimits = focus.DEFAULT_LIMITS
) -> tuple[pl.DataFrame | None, list[str]]:
    """CUR 2.0 line items as typed FOCUS rows; EffectiveCost is the amortized cost per line item type."""
    problems = missing_columns_problem(label, frame.columns, CUR2_REQUIRED, "CUR 2.0")
    if problems:
        return None, problems

    def num(name: str) -> pl.Expr:
        return (pl.col(name) if name in frame.columns else pl.lit(None)).cast(pl.Float64).fill_null(0.0)

    def text(name: str) -> pl.Expr:
        return (pl.col(name) if name in frame.columns else pl.lit(None)).cast(pl.String)

    kind = pl.col("line_item_line_item_type")
    unblended = num("line_item_unblended_cost")
    reservation_arn = text("reservation_reservation_a_r_n").fill_null("")
    amortized = (
        pl.when(kind == "SavingsPlanCoveredUsage").then(num("savings_plan_savings_plan_effective_cost"))
        .when(kind == "SavingsPlanRecurringFee")
        .then(num("savings_plan_total_commitment_to_date") - num("savings_plan_used_commitment"))
        .when(kind.is_in(["SavingsPlanNegation", "SavingsPlanUpfrontFee"])).then(0.0)
        .when(kind == "DiscountedUsage").then(num("reservation_effective_cost"))
        .when(kind == "RIFee")
        .then(num("reservation_unused_amortized_upfront_fee_for_billing_period") + num("reservation_unused_recurring_fee"))
        .when((kind == "Fee") & (reservation_arn != "")).then(0.0)  # an RI upfront fee, amortized into usage
        .otherwise(unblended)
    )  # fmt: skip
    service = pl.coalesce([_map_value(frame, "product", "product_name"), text("product_servicecode"), text("line_item_product_code")])
    # Numbered by the reader when it filtered the file's rows (`files.read_cur2_file`), else here.
    numbered = frame if "x_SourceRow" in frame.columns else frame.with_row_index("x_SourceRow", offset=1)
    frame = numbered.with_columns(
        focus.timestamp_to_naive_utc(frame["line_item_usage_start_date"]).alias("ChargePeriodStart"),
        focus.timestamp_to_naive_utc(frame["line_item_usage_end_date"]).alias("ChargePeriodEnd")
        if "line_item_usage_end_date" in frame.columns else pl.lit(None, dtype=pl.Datetime("us")).alias("ChargePeriodEnd"),
    )  # fmt: skip
    rows = frame.select(
        "ChargePeriodStart", "ChargePeriodEnd",
        unblended.alias("BilledCost"),
        amortized.alias("EffectiveCost"),
        text("line_item_currency_code").alias("BillingCurrency"),
        pl.lit("AWS").alias("ProviderName"),
        service.alias("ServiceName"),
        service.map_elements(service_category, return_dtype=pl.String).alias("ServiceCategory"),
        kind.replace_strict(CHARGE_CATEGORY, default="Adjustment", return_dtype=pl.String).alias("ChargeCategory"),
        text("line_item_usage_account_id").alias("SubAccountId"),
        text("bill_payer_account_id").alias("BillingAccountId"),
        text("line_item_resource_id").alias("ResourceId"),
        text("product_region_code").alias("RegionId"),
        text("line_item_usage_type").alias("SkuId"),
        text("line_item_line_item_description").alias("ChargeDescription"),
        text("bill_invoice_id").alias("InvoiceId"),
        (text("bill_invoice_id").fill_null("") != "").alias("x_IsFinal"),
        pl.lit(label).alias("x_SourceFile"),
        pl.col("x_SourceRow").cast(pl.Int64),
    )  # fmt: skip
    if "resource_tags" in frame.columns:
        rows = rows.with_columns(focus.tags_to_json(frame["resource_tags"]).alias("Tags"))
    problems += describe_bad_values(
        label, rows.with_columns(frame["line_item_usage_start_date"].cast(pl.String).alias("_raw")),
        pl.col("ChargePeriodStart").is_null(), "_raw", "missing or unreadable line_item_usage_start_date value(s)",
        "Every CUR line item has a usage start date; re-run the export.",
    )  # fmt: skip
    if PARENT_COLUMN in frame.columns:
        rows = split_cost_rows(rows, frame)
    problems += value_problems(rows, limits)
    return (None, problems) if problems else (rows, [])


PARENT_COLUMN = "split_line_item_parent_resource_id"
IDLE_TAG = "unitcost:idle"


def split_cost_rows(rows: pl.DataFrame, frame: pl.DataFrame) -> pl.DataFrame:
    """CUR 2.0 split cost allocation data (EKS pods, ECS tasks on EC2) as line items of their own.

    AWS adds a usage record per pod (or task) and hour whose `split_line_item_split_cost` is its share
    of the parent instance's amortized cost and whose `split_line_item_unused_cost` is its part of the
    instance's unused capacity; the parent instance's own line item keeps the whole cost. So that no
    dollar counts twice: a pod row's EffectiveCost is its split cost (its tags, namespace included,
    name the tenant); its unused cost becomes a line item of its own on the parent resource, tagged
    `unitcost:idle: "true"` (an `idle:` pool takes it); and the parent's line item of that hour keeps
    only what its pods do not account for (normally nothing). BilledCost is untouched: the invoice
    still shows the instance, and only EffectiveCost is split.
    """

    def num(name: str) -> pl.Expr:
        return (pl.col(name) if name in frame.columns else pl.lit(None)).cast(pl.Float64).fill_null(0.0)

    if "Tags" not in rows.columns:
        rows = rows.with_columns(pl.lit(None, dtype=pl.String).alias("Tags"))
    parent = frame[PARENT_COLUMN].cast(pl.String)
    is_pod = (parent.fill_null("") != "").alias("_pod")
    split, unused = frame.select(num("split_line_item_split_cost")).to_series(), frame.select(num("split_line_item_unused_cost")).to_series()
    rows = rows.with_columns(is_pod, parent.alias("_parent"), split.alias("_split"), unused.alias("_unused"))
    pods = rows.filter(pl.col("_pod"))
    accounted = pods.group_by("_parent", "ChargePeriodStart").agg((pl.col("_split") + pl.col("_unused")).sum().alias("_pods"))
    others = (
        rows.filter(~pl.col("_pod"))
        .join(accounted, left_on=["ResourceId", "ChargePeriodStart"], right_on=["_parent", "ChargePeriodStart"], how="left")
        .with_columns((pl.col("EffectiveCost") - pl.col("_pods").fill_null(0.0)).alias("EffectiveCost"))
    )
    pod_rows = pods.with_columns(pl.col("_split").alias("EffectiveCost"))
    idle = pods.filter(pl.col("_unused") != 0).with_columns(
        pl.col("_unused").alias("EffectiveCost"),
        pl.lit(0.0).alias("BilledCost"),
        pl.col("_parent").alias("ResourceId"),
        pl.concat_str([pl.lit(f'{{"{IDLE_TAG}": "true", "unitcost:parent": "'), pl.col("_parent"), pl.lit('"}')]).alias("Tags"),
    )
    helper = ["_pod", "_parent", "_split", "_unused", "_pods"]
    parts = [part.drop([c for c in helper if c in part.columns]) for part in (others, pod_rows, idle)]
    return pl.concat(parts, how="vertical_relaxed").sort("x_SourceRow", "EffectiveCost", maintain_order=True)


def _focus_finality(rows: pl.DataFrame, has_invoice: bool, cfg: AwsExportSource, today: dt.date) -> pl.DataFrame:
    if has_invoice:
        return rows.with_columns((pl.col("InvoiceId").fill_null("") != "").alias("x_IsFinal"))
    closes = (pl.col("BillingPeriodEnd") + pl.duration(days=cfg.final_after_days)).dt.date()
    return rows.with_columns((closes <= today).fill_null(False).alias("x_IsFinal"))


def fetch_aws_export(
    cfg: AwsExportSource,
    days: list[dt.date],
    *,
    cost_column: str,
    tenant: TenantConfig,
    spread: bool,
    today: dt.date,
    s3,
    log: Callable[[str], None] | None = None,
    limits: focus.BillingLimits = focus.DEFAULT_LIMITS,
) -> ExportRead:
    """raw_billing rows of `days` from the export's current files, and the manifest versions read."""
    from botocore.exceptions import ClientError

    window = focus.day_bounds(days)
    parsed = focus.ParsedTags()  # each distinct Tags string parsed once for every file of the read
    frames, problems, versions = [], [], {}
    for period in periods_of(days):
        manifest = latest_manifest(s3, cfg, period)
        if manifest is None:
            if log:
                log(f"{cfg.export_name}: no manifest for BILLING_PERIOD={period} yet; no data for that month")
            continue
        versions[f"{cfg.export_name}/{period}"] = str(manifest["executionId"])
        files = manifest["dataFiles"]
        if log:
            log(f"{cfg.export_name} {period}: execution {manifest['executionId']}, {len(files)} file(s)")
        with tempfile.TemporaryDirectory() as tmp:
            for i, uri in enumerate(files, 1):
                bucket, key = _split_uri(uri)
                local = Path(tmp) / f"part-{i}.parquet"
                try:
                    s3.download_file(bucket, key, str(local))
                except ClientError as exc:
                    code = exc.response.get("Error", {}).get("Code", "error")
                    problems.append(f"{uri}: listed in the {period} manifest but cannot be read ({code})")
                    continue
                if log:
                    log(f"reading {uri} ({i}/{len(files)})")
                if cfg.format == "focus":
                    has_invoice = "InvoiceId" in pl.read_parquet_schema(local)
                    rows, found = read_focus_file(
                        local, window, cost_column, label=uri, tenant=tenant, limits=limits, parsed=parsed
                    )
                    if rows is not None:
                        rows = _focus_finality(rows, has_invoice, cfg, today)
                else:
                    # The file's rows of the window only (a month's export is read for a day).
                    rows, found = read_cur2_file(local, window, label=uri, tenant=tenant, limits=limits, parsed=parsed)
                problems += found
                if rows is not None:
                    frames.append(focus.conform(rows.with_columns(x_Source=pl.lit("aws_exports"))))
    if problems:
        raise InputDataError(problems, what=f"the {cfg.export_name} export")
    if not frames:
        return ExportRead(focus.empty_raw_billing(), versions)
    # Each file's rows come from its reader with their enumerations spelled and tenants extracted
    # (in the pass that checks the tags), as the billing files' do.
    rows = finish_raw_billing(
        pl.concat(frames, how="vertical"), days, cost_column=cost_column, tenant=tenant, spread=spread,
        source="aws_exports", tenants_extracted=True,
    )  # fmt: skip
    return ExportRead(rows, versions)


def _resources() -> dict[str, type]:
    import boto3
    import dagster as dg

    class S3ExportsResource(dg.ConfigurableResource):
        """A boto3 S3 client for the exports' buckets, credentials from the standard AWS chain."""

        region_name: str | None = None
        endpoint_url: str | None = None

        def get_client(self):
            return boto3.session.Session().client("s3", region_name=self.region_name, endpoint_url=self.endpoint_url)

    return {"S3ExportsResource": S3ExportsResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: AwsExportSource | None, secret: Secret) -> dg.ConfigurableResource:
    """Credentials come from the AWS chain at run time."""
    return __getattr__("S3ExportsResource")()


def read(context: ReadContext, cfg: AwsExportSource, days: list[dt.date]) -> BillingRead:
    if not days:
        return BillingRead(focus.empty_raw_billing())
    billing = context.cfg.billing
    export = fetch_aws_export(
        cfg, days, tenant=context.cfg.tenant, spread=billing.spread_multi_day_charges, today=context.today,
        s3=context.resource.get_client(), log=context.log, cost_column=context.cfg.cost_column,
        limits=focus.BillingLimits.of(billing),
    )  # fmt: skip
    return BillingRead(export.rows, {f"aws_exports:{k}": v for k, v in export.versions.items()})


def export_versions(s3, cfg: AwsExportSource, periods: list[str]) -> dict[str, str]:
    return {f"aws_exports:{k}": v for k, v in manifest_versions(s3.get_client(), cfg, periods).items()}


CONNECTOR = Connector(
    name="aws_exports", kind="billing", config_key="aws_exports", read=read, restatement="export_versions",
    resource_key="s3", make_resource=make_resource, export_versions=export_versions, many=True,
    config_model=AwsExportSource,
)  # fmt: skip
