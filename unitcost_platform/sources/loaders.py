"""The three inputs of a day from whatever sources the config turns on."""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import polars as pl

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.errors import ConfigError, InputDataError
from unitcost_platform.sources import focus
from unitcost_platform.sources.api_rows import to_raw_billing
from unitcost_platform.sources.aws_cost_explorer import fetch_cost_explorer
from unitcost_platform.sources.aws_exports import fetch_aws_export
from unitcost_platform.sources.azure_cost import fetch_azure_costs
from unitcost_platform.sources.billing_files import mixed_currency_problems, read_billing_files
from unitcost_platform.sources.customer_files import no_customer_files, read_customer_files
from unitcost_platform.sources.datadog_usage import fetch_datadog
from unitcost_platform.sources.files import Log, list_data_files
from unitcost_platform.sources.gcp_billing import fetch_gcp_costs
from unitcost_platform.sources.newrelic_usage import fetch_newrelic
from unitcost_platform.sources.opencost_usage import fetch_opencost
from unitcost_platform.sources.postgres_customers import read_postgres_customers
from unitcost_platform.sources.prometheus_usage import fetch_prometheus
from unitcost_platform.sources.usage_files import aggregate_usage, read_usage_files
from unitcost_platform.tenant_key import tenant_key_expr
from unitcost_platform.transforms.customers import customer_dimension


@dataclass
class BillingClients:
    """How to reach the billing APIs; each is created only if its source is configured."""

    cost_explorer: Callable[[], object] | None = None  # boto3 "ce" client factory
    s3: Callable[[], object] | None = None  # boto3 "s3" client factory
    azure_session: object | None = None  # requests.Session (tests point it at a local server)
    azure_token: Callable[[], str] | None = None
    bigquery: Callable[[], object] | None = None


@dataclass
class BillingRead:
    rows: pl.DataFrame
    versions: dict[str, str] = field(default_factory=dict)  # what was ingested, per source (export periods)


def load_billing(
    cfg: UnitcostConfig,
    data_dir: Path,
    days: list[dt.date],
    log: Log,
    clients: BillingClients | None = None,
    today: dt.date | None = None,
) -> BillingRead:
    """raw_billing rows of `days`, every configured source merged (several clouds at once)."""
    clients = clients or BillingClients()
    today = today or dt.datetime.now(dt.UTC).date()
    billing = cfg.billing
    common = {"cost_column": cfg.cost_column, "limits": focus.BillingLimits.of(billing)}
    frames, versions = [], {}
    if billing.files is not None:
        location = billing.files.resolve(data_dir)
        paths = list_data_files(location, "billing")
        log(f"{len(paths)} billing file(s) under {location}")
        frames.append(read_billing_files(
            paths, days, tenant=cfg.tenant, spread=billing.spread_multi_day_charges, log=log, **common
        ))  # fmt: skip
    if billing.cost_explorer is not None:
        rows = fetch_cost_explorer(billing.cost_explorer, days, client=_client(clients.cost_explorer, "Cost Explorer"), log=log, cost_column=cfg.cost_column)
        frames.append(to_raw_billing(rows, days, tenant=cfg.tenant, tag_key=billing.cost_explorer.tag_key, source="aws_cost_explorer", **common))
    for export in billing.aws_exports:
        read = fetch_aws_export(
            export, days, tenant=cfg.tenant, spread=billing.spread_multi_day_charges, today=today,
            s3=_client(clients.s3, "S3"), log=log, **common,
        )  # fmt: skip
        frames.append(read.rows)
        versions.update({f"aws_exports:{k}": v for k, v in read.versions.items()})
    if billing.azure is not None:
        rows = fetch_azure_costs(
            billing.azure, days, today=today, restatement=billing.restatement,
            session=clients.azure_session, token_provider=clients.azure_token, log=log, cost_column=cfg.cost_column,
        )  # fmt: skip
        frames.append(to_raw_billing(rows, days, tenant=cfg.tenant, tag_key=billing.azure.tag_key, source="azure", **common))
    if billing.gcp is not None:
        client = clients.bigquery() if clients.bigquery else None
        rows = fetch_gcp_costs(billing.gcp, days, today=today, restatement=billing.restatement, client=client, log=log, cost_column=cfg.cost_column)
        frames.append(to_raw_billing(rows, days, tenant=cfg.tenant, tag_key=billing.gcp.label_key, source="gcp", **common))
    if not frames:
        raise ConfigError(
            "no billing source is configured: set billing.files, billing.cost_explorer, billing.aws_exports, "
            "billing.azure or billing.gcp in unitcost.yaml"
        )
    merged = pl.concat(frames, how="vertical").sort("x_ChargeDate", "x_Source", "x_SourceFile", "x_SourceRow")
    problems = mixed_currency_problems(merged)
    if problems:
        raise InputDataError(problems, what="billing (all sources)")
    return BillingRead(merged, versions)


def _client(factory: Callable[[], object] | None, what: str) -> object:
    if factory is None:
        raise ConfigError(f"{what} is configured as a billing source but no {what} client is available")
    return factory()


def load_usage(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log) -> pl.DataFrame:
    """tenant_usage rows of `days`, every configured source merged (each can feed different metrics)."""
    usage = cfg.usage
    frames = []
    if usage.files is not None:
        location = usage.files.resolve(data_dir)
        paths = list_data_files(location, "usage")
        log(f"{len(paths)} usage file(s) under {location}")
        frames.append(read_usage_files(paths, days, normalize=cfg.tenant.normalize, log=log))
    telemetry = []
    if usage.prometheus is not None:
        telemetry.append(fetch_prometheus(usage.prometheus, days, log=log))
    if usage.datadog is not None:
        telemetry.append(fetch_datadog(usage.datadog, days, log=log))
    if usage.newrelic is not None:
        telemetry.append(fetch_newrelic(usage.newrelic, days, log=log))
    if usage.opencost is not None:
        telemetry.append(fetch_opencost(usage.opencost, days, log=log))
    for frame in telemetry:
        refusals = (
            (~pl.col("value").is_finite(), "usage must be a finite number; fix the query (a division by zero, an empty rate window)"),
            (pl.col("value") < 0, "usage is a count or an amount, 0 or more; fix the query (increase() rather than delta(), a gauge's average)"),
        )  # fmt: skip
        for refused, why in refusals:
            bad = frame.filter(refused)
            if bad.height:
                raise InputDataError(
                    [f"{source} returned {metric} = {value:g} for tenant {tenant!r} on {day}: {why}"
                     for day, tenant, metric, value, source in bad.select(
                         "usage_date", "tenant_id", "metric", "value", "source").head(5).iter_rows()],
                    what="usage telemetry",
                )  # fmt: skip
        normalized = frame.with_columns(tenant_key_expr(pl.col("tenant_id"), cfg.tenant.normalize).alias("tenant_id"))
        frames.append(aggregate_usage(normalized.filter(pl.col("tenant_id").is_not_null())))
    if not frames:
        raise ConfigError("no usage source is configured: set usage.files, usage.prometheus, usage.datadog, usage.newrelic or usage.opencost")
    merged = aggregate_usage(pl.concat(frames, how="vertical"))
    doubled = (
        merged.group_by("usage_date", "metric").agg(pl.col("source").unique().sort())
        .filter(pl.col("source").list.len() > 1).sort("usage_date", "metric")
    )  # fmt: skip
    if doubled.height:
        raise InputDataError(
            [f"usage metric {m!r} on {d} comes from {' and '.join(s)}: each metric must come from one "
             "source, or it is counted twice; drop it from one of them" for d, m, s in doubled.head(5).iter_rows()],
            what="usage",
        )  # fmt: skip
    return merged


def load_customers(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log) -> pl.DataFrame:
    """customer_dimension snapshots of `days`."""
    if cfg.customers.postgres is not None:
        versions = read_postgres_customers(cfg.customers.postgres, days, normalize=cfg.tenant.normalize, log=log)
        return customer_dimension(versions, days, cfg.customers.non_paying_tiers, cfg.customers.max_mrr)
    if cfg.customers.files is None:
        raise ConfigError("no customer source is configured: set customers.files or customers.postgres in unitcost.yaml")
    location = cfg.customers.files.resolve(data_dir)
    if not location.exists():
        raise no_customer_files(location)
    paths = list_data_files(location, "customer")
    if not paths:
        raise no_customer_files(location)
    versions = read_customer_files(paths, normalize=cfg.tenant.normalize, log=log)
    return customer_dimension(versions, days, cfg.customers.non_paying_tiers, cfg.customers.max_mrr)
