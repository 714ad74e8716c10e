"""The three inputs of a day from whatever sources the config turns on."""

import datetime as dt
from pathlib import Path

import polars as pl

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.errors import ConfigError
from unitcost_platform.sources.billing_files import read_billing_files
from unitcost_platform.sources.customer_files import no_customer_files, read_customer_files
from unitcost_platform.sources.files import Log, list_data_files
from unitcost_platform.sources.usage_files import read_usage_files
from unitcost_platform.transforms.customers import customer_dimension


def load_billing(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log) -> pl.DataFrame:
    """raw_billing rows of `days`, every configured source merged."""
    frames = []
    if cfg.billing.files is not None:
        location = cfg.billing.files.resolve(data_dir)
        paths = list_data_files(location, "billing")
        log(f"{len(paths)} billing file(s) under {location}")
        frames.append(
            read_billing_files(
                paths, days, cost_column=cfg.cost_column, tenant=cfg.tenant,
                spread=cfg.billing.spread_multi_day_charges, log=log,
            )
        )
    if not frames:
        raise ConfigError("no billing source is configured: set billing.files in unitcost.yaml")
    return pl.concat(frames, how="vertical")


def load_usage(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log) -> pl.DataFrame:
    """tenant_usage rows of `days`, every configured source merged."""
    frames = []
    if cfg.usage.files is not None:
        location = cfg.usage.files.resolve(data_dir)
        paths = list_data_files(location, "usage")
        log(f"{len(paths)} usage file(s) under {location}")
        frames.append(read_usage_files(paths, days, normalize=cfg.tenant.normalize, log=log))
    if not frames:
        raise ConfigError("no usage source is configured: set usage.files in unitcost.yaml")
    return pl.concat(frames, how="vertical")


def load_customers(cfg: UnitcostConfig, data_dir: Path, days: list[dt.date], log: Log) -> pl.DataFrame:
    """customer_dimension snapshots of `days`."""
    if cfg.customers.files is None:
        raise ConfigError("no customer source is configured: set customers.files in unitcost.yaml")
    location = cfg.customers.files.resolve(data_dir)
    if not location.exists():
        raise no_customer_files(location)
    paths = list_data_files(location, "customer")
    if not paths:
        raise no_customer_files(location)
    versions = read_customer_files(paths, normalize=cfg.tenant.normalize, log=log)
    return customer_dimension(versions, days, cfg.customers.non_paying_tiers)
