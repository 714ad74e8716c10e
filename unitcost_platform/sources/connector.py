"""The connector contract: what every source of billing, usage or customers provides.

A connector is one module under `sources/billing/`, `sources/usage/` or `sources/customers/` that
ends with a `CONNECTOR = Connector(...)` and is listed in `sources/registry.py`. It declares:

- where its config lives (`<kind>.<config_key>` in unitcost.yaml; a list for `many` sources) and
  its model (`config_model`, defined in its module; config.py adds one key per registered connector);
- `read(context, source_config, days)`: the contract of its kind for `days` —
  billing: `BillingRead` (rows of `contracts.focus.RAW_BILLING_SCHEMA`, plus export versions),
  usage: rows of `contracts.usage.USAGE_SCHEMA`, customers: rows of `contracts.customers.VERSION_SCHEMA`;
  an empty list of days returns the schema with no rows, without calling anything;
- its Dagster resource (client and secrets), built by `make_resource(source_config, secret)` where
  `secret(env_name)` is the one place an environment variable becomes a `dg.EnvVar`
  (`defs/resources.py`); the names it asks for are the connector's secrets;
- its restatement behaviour: `none` (files, telemetry, customers), `export_versions` (a refreshed
  export replaces a month: `export_versions(resource, source_config, periods)`), or `api_totals`
  (a billing API restates recent days: `api_rows(context, source_config, days)` is fetched again
  and each day's total compared).

The loaders (`sources/loaders.py`), the restatement sensor (`defs/restatement.py`), the resource
wiring (`defs/resources.py`) and config validation (`config.py`'s "no source configured" errors)
iterate the registry; none of them names a connector.
"""

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import polars as pl

if TYPE_CHECKING:
    import dagster as dg

    from unitcost_platform.config import UnitcostConfig

Kind = Literal["billing", "usage", "customers"]
Restatement = Literal["none", "export_versions", "api_totals"]
Log = Callable[[str], None]
Secret = Callable[[str], Any]  # env var name -> what the resource field gets (a dg.EnvVar, or None)


@dataclass
class BillingRead:
    """What a billing connector returns: raw_billing rows and what was read, per export period."""

    rows: pl.DataFrame | None  # None when the connector staged its rows (Connector.streams)
    versions: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class ReadContext:
    """What a connector gets at run time besides its own config."""

    cfg: "UnitcostConfig"
    data_dir: Path
    log: Log
    today: dt.date
    resource: Any = None  # the connector's resource (None for connectors without one)


@dataclass(frozen=True)
class Connector:
    name: str  # the x_Source / source value its rows carry
    kind: Kind
    config_key: str  # <kind>.<config_key> in unitcost.yaml
    read: Callable[[ReadContext, Any, list[dt.date]], Any]
    restatement: Restatement
    resource_key: str | None = None
    make_resource: Callable[[Any, Secret], "dg.ConfigurableResource"] | None = None
    api_rows: Callable[[ReadContext, Any, list[dt.date]], pl.DataFrame] | None = None
    export_versions: Callable[[Any, Any, list[str]], dict[str, str]] | None = None
    config_model: type | None = None  # its section of unitcost.yaml (a pydantic model)
    default: Any = None  # its config when unitcost.yaml does not mention it (None: off)
    many: bool = False  # the config key holds a list of sources
    # A billing connector whose read takes a `stage=` (staging.Stage) and writes its rows there part by
    # part (returning BillingRead(None)) instead of one frame: large file drops, never a day in memory.
    streams: bool = False

    def configured(self, cfg: "UnitcostConfig") -> list[Any]:
        """This connector's source configs in `cfg` (none, one, or several for `many`)."""
        return self.in_section(getattr(cfg, self.kind))

    def in_section(self, section: Any) -> list[Any]:
        """The same, from its kind's section (`cfg.billing`, `cfg.usage`, `cfg.customers`)."""
        value = getattr(section, self.config_key)
        if value is None:
            return []
        return list(value) if self.many else [value]

    def secrets(self, source_config: Any) -> list[str]:
        """The environment variables the source reads its secrets from (asked for by its resource)."""
        names: list[str] = []
        if self.make_resource is not None:
            self.make_resource(source_config, lambda env: names.append(env))
        return names

    def resource(self, source_config: Any, secret: Secret) -> "dg.ConfigurableResource | None":
        return None if self.make_resource is None else self.make_resource(source_config, secret)


def api_connector(
    *,
    name: str,
    config_key: str,
    config_model: type,
    api_rows: Callable[[ReadContext, Any, list[dt.date]], pl.DataFrame],
    tag_key: Callable[[Any], str],
    resource_key: str,
    make_resource: Callable[[Any, Secret], "dg.ConfigurableResource"],
) -> Connector:
    """A billing API connector: its API rows (`contracts.raw_billing.API_ROW_SCHEMA`) become
    raw_billing through the one shared step, and a restated day is found by its daily total."""
    from unitcost_platform.contracts import focus
    from unitcost_platform.contracts.raw_billing import to_raw_billing

    def read(context: ReadContext, source_config: Any, days: list[dt.date]) -> BillingRead:
        cfg = context.cfg
        rows = api_rows(context, source_config, days)
        return BillingRead(to_raw_billing(
            rows, days, cost_column=cfg.cost_column, tenant=cfg.tenant, tag_key=tag_key(source_config),
            source=name, limits=focus.BillingLimits.of(cfg.billing),
        ))  # fmt: skip

    return Connector(
        name=name, kind="billing", config_key=config_key, read=read, restatement="api_totals",
        resource_key=resource_key, make_resource=make_resource, api_rows=api_rows, config_model=config_model,
    )  # fmt: skip


def lazy_resources(build: Callable[[], dict[str, type]]) -> Callable[[str], type]:
    """A connector module's `__getattr__` for its Dagster resource classes, built on first use.

    Every transform imports the config models (config.py imports each connector's), so a connector
    module must import without Dagster; its resource classes, which subclass
    `dg.ConfigurableResource`, are made by `build()` the first time one is asked for (by the resource
    wiring, a test, or the module itself through `module.__getattr__(name)`)."""
    classes: dict[str, type] = {}

    def __getattr__(name: str) -> type:
        if not classes:
            classes.update(build())
        if name not in classes:
            raise AttributeError(name)
        return classes[name]

    return __getattr__
