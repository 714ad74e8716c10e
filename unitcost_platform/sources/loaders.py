"""The three inputs of a day from whatever sources the config turns on, through the connectors'
registry (sources/registry.py): every configured billing and usage source merged, the first
configured customer source."""

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import polars as pl

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.contracts.focus import RAW_BILLING_SCHEMA
from unitcost_platform.contracts.raw_billing import billing_summary, mixed_currency_problems
from unitcost_platform.contracts.tenant_key import tenant_key_expr
from unitcost_platform.contracts.usage import aggregate_usage
from unitcost_platform.errors import ConfigError, InputDataError
from unitcost_platform.sources import registry
from unitcost_platform.sources.connector import Connector, Log, ReadContext
from unitcost_platform.staging import Stage, StagedRows
from unitcost_platform.transforms.customers import customer_dimension

Resources = Mapping[str, Any]  # resource key -> the connector's Dagster resource


def _context(cfg: UnitcostConfig, data_dir: Path, log: Log, today: dt.date | None, resources: Resources, connector: Connector) -> ReadContext:
    resource = None
    if connector.resource_key is not None:
        resource = resources.get(connector.resource_key)
        if resource is None:
            raise ConfigError(
                f"{connector.kind}.{connector.config_key} is configured but its resource "
                f"{connector.resource_key!r} is not available to this run"
            )
    return ReadContext(cfg, data_dir, log, today or dt.datetime.now(dt.UTC).date(), resource)


@dataclass(frozen=True)
class StagedBilling:
    """A day (or range) of raw_billing staged in parts (`staging.StagedRows`), with `billing_summary`
    rows of every part and what was read per export period."""

    rows: StagedRows
    summary: pl.DataFrame
    versions: dict[str, str]


def stage_billing(
    cfg: UnitcostConfig,
    data_dir: Path,
    days: list[dt.date],
    log: Log,
    resources: Resources | None = None,
    today: dt.date | None = None,
) -> StagedBilling:
    """raw_billing rows of `days`, every configured source merged (several clouds at once), without
    ever holding them in one frame: each source's rows (each file's, for connectors that stream)
    become a part as they are read; a day must be billed in one currency across all of them. On any
    problem the parts are removed and the error raised, naming the file, row and fix."""
    versions: dict[str, str] = {}
    with Stage(RAW_BILLING_SCHEMA, billing_summary, prefix="unitcost-raw-billing-") as stage:
        for connector in registry.BILLING:
            for source in connector.configured(cfg):
                context = _context(cfg, data_dir, log, today, resources or {}, connector)
                if connector.streams:
                    read = connector.read(context, source, days, stage=stage)
                else:
                    read = connector.read(context, source, days)
                    stage.add(read.rows.sort("x_ChargeDate", "x_Source", "x_SourceFile", "x_SourceRow"))
                versions.update(read.versions)
        summary = stage.summary()
        problems = mixed_currency_problems(summary)
        if problems:
            raise InputDataError(problems, what="billing (all sources)")
        return StagedBilling(stage.finish(), summary, versions)


def load_usage(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log, resources: Resources | None = None) -> pl.DataFrame:
    """tenant_usage rows of `days`, every configured source merged (each can feed different metrics)."""
    frames, telemetry = [], []
    for connector in registry.USAGE:
        for source in connector.configured(cfg):
            frame = connector.read(_context(cfg, data_dir, log, None, resources or {}, connector), source, days)
            # files are normalized and checked as they are read; telemetry is checked here
            (frames if connector.name == "files" else telemetry).append(frame)
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


def load_customers(
    cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log, resources: Resources | None = None
) -> pl.DataFrame:
    """customer_dimension snapshots of `days`, from the first configured customer source (the config
    has one: UnitcostConfig refuses a config without)."""
    connector, source = next((c, s) for c in registry.CUSTOMERS for s in c.configured(cfg))
    versions = connector.read(_context(cfg, data_dir, log, None, resources or {}, connector), source, days)
    return customer_dimension(versions, days, cfg.customers.non_paying_tiers, cfg.customers.max_mrr)
