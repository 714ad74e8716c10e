"""The one validated config file (unitcost.yaml): everything a FinOps team tunes, nothing in code."""

import datetime as dt
import math
import re
from pathlib import Path
from typing import Literal

import polars as pl
import yaml
from pydantic import Field, ValidationError, create_model, field_validator, model_validator

from unitcost_platform.config_base import (
    Model,
    RestatementConfig,
    RetrySettings,
    TenantConfig,
    plain_tag_keys,
)
from unitcost_platform.config_pools import DEFAULT_POOLS, PoolConfig
from unitcost_platform.errors import ConfigError
from unitcost_platform.sources import registry

# Where a Kubernetes namespace is read from a line item's tags (AWS split cost allocation data
# imports it as `aws:eks:namespace`; CUR 2.0 spells tag keys with underscores).


def _with_sources(settings: type[Model], kind: str) -> type[Model]:
    """`settings` plus one key per registered connector of `kind`: its config model, off by default
    (files on, at their default path); a connector of several sources takes a list."""
    fields = {}
    for connector in registry.CONNECTORS[kind]:
        if connector.many:
            fields[connector.config_key] = (list[connector.config_model], Field(default_factory=list))
        else:
            fields[connector.config_key] = (connector.config_model | None, connector.default)
    return create_model(settings.__name__.removeprefix("_"), __base__=settings, __module__=__name__, **fields)


class _BillingConfig(Model):
    cost_column: Literal["EffectiveCost", "BilledCost"] = "EffectiveCost"
    spread_multi_day_charges: bool = True
    max_line_item_cost: float = Field(
        default=10_000_000.0, gt=0,
        description="a single line item costing more than this (either sign) is refused as implausible: "
        "a corrupted file must not pass as money",
    )
    max_charge_period_days: int = Field(
        default=1096, ge=1,
        description="a charge period longer than this many days (ChargePeriodEnd far in the future) is refused",
    )
    restatement: RestatementConfig = RestatementConfig()


BillingConfig = _with_sources(_BillingConfig, "billing")  # + files, cost_explorer, aws_exports, azure, gcp


class _UsageConfig(Model):
    @model_validator(mode="after")
    def _one_source_per_metric(self) -> "Model":
        fed: dict[str, list[str]] = {}
        for connector in registry.USAGE:
            for source in connector.in_section(self):
                for m in getattr(source, "metrics", []):
                    fed.setdefault(m.metric, []).append(connector.config_key)
        twice = {m: s for m, s in fed.items() if len(s) > 1}
        if twice:
            listed = "; ".join(f"{m} from {', '.join(s)}" for m, s in sorted(twice.items()))
            raise ValueError(f"each usage metric comes from one source, or it is counted twice: {listed}")
        return self


class _CustomersConfig(Model):
    non_paying_tiers: list[str] = Field(default_factory=lambda: ["trial", "free"])
    max_mrr: float = Field(
        default=100_000_000.0, gt=0, description="an MRR above this (per customer per month) is refused as implausible"
    )

    @model_validator(mode="after")
    def _one_source(self) -> "Model":
        configured = [c.config_key for c in registry.CUSTOMERS if c.in_section(self)]
        if len(configured) > 1:
            others = " and ".join(f"{k}: null" for k in configured[1:])
            raise ValueError(f"customers come from one source, not {' and '.join(configured)}: set {others} to use {configured[0]}")
        return self


UsageConfig = _with_sources(_UsageConfig, "usage")  # + files, prometheus, datadog, newrelic, opencost
CustomersConfig = _with_sources(_CustomersConfig, "customers")  # + postgres, files


class AlertsConfig(Model):
    p1_cost_to_mrr: float = 0.25
    p2_cost_to_mrr: float = 0.20
    trend_cost_growth_7d: float = 0.15
    max_drivers: int = Field(default=3, ge=1, le=20)
    resolve_after_days: int = Field(
        default=3, ge=1, le=90,
        description="an incident resolves on the Nth consecutive day without its family's alert",
    )

    @model_validator(mode="after")
    def _ordered(self) -> "AlertsConfig":
        if not self.p2_cost_to_mrr < self.p1_cost_to_mrr:
            raise ValueError("p2_cost_to_mrr must be below p1_cost_to_mrr")
        return self


class OwnersConfig(Model):
    services: dict[str, str] = Field(default_factory=dict, description="ServiceName -> owning team")
    default_team: str = "unowned"
    team_tag_keys: list[str] = Field(
        default_factory=lambda: ["team", "owner"],
        description="tags naming a line item's owning team (team_spend); first non-empty wins over services",
    )

    def team_for(self, service: str | None) -> str:
        return self.services.get(service or "", self.default_team)


class TargetsConfig(Model):
    """What each service may add to the monthly cost of serving one active customer ($ per customer per month)."""

    services: dict[str, float] = Field(default_factory=dict, description="ServiceName -> $ per active customer per month")
    teams: dict[str, float] = Field(
        default_factory=dict, description="team -> target for each service it owns that has no target of its own"
    )
    notify_change: float = Field(
        default=0.10, gt=0,
        description="tell the owning team when a service's cost per customer moves more than this against 7 days earlier",
    )

    @field_validator("services", "teams")
    @classmethod
    def _positive(cls, targets: dict[str, float]) -> dict[str, float]:
        bad = {k: v for k, v in targets.items() if not (math.isfinite(v) and v > 0)}
        if bad:
            raise ValueError(f"targets must be positive dollar amounts; got {bad}")
        return targets

    def target_for(self, service: str, team: str) -> float | None:
        return self.services.get(service, self.teams.get(team))
UNIT_METRIC_NAME = r"[A-Za-z][A-Za-z0-9_]*"


class ProductUsage(Model):
    """The usage a product's cost is set against: a tenant_usage metric, optionally of one service."""

    metric: str = Field(description="a usage metric: requests, documents, tokens, ...")
    service_name: str | None = Field(default=None, description="only usage rows of this service_name")
    per: float = Field(default=1.0, gt=0, description="cost_per_unit is the cost of this many units")


class ProductsConfig(Model):
    """product_cost (the Walk view): which product each line item belongs to, and the usage it is set against."""

    tag_keys: list[str] = Field(
        default_factory=lambda: ["product", "app"],
        description="tags naming a line item's product; the first non-empty wins over services",
    )
    services: dict[str, str] = Field(default_factory=dict, description="ServiceName -> product")
    usage: dict[str, ProductUsage] = Field(default_factory=dict, description="product -> its usage metric")
    tolerance: float = Field(
        default=0.05, ge=0, description="cost_outgrowing_usage: 7-day cost growth above usage growth plus this"
    )

    @field_validator("tag_keys")
    @classmethod
    def _keys_are_plain(cls, keys: list[str]) -> list[str]:
        return plain_tag_keys(keys)


class UnitMetric(Model):
    """A unit the business counts in: cost per `per` units of a usage metric (customer_unit_costs)."""

    name: str = Field(description="the unit metric's name in customer_unit_costs, e.g. per_transaction")
    metric: str = Field(description="the tenant_usage metric counted")
    per: float = Field(default=1.0, gt=0, description="cost_per_unit is the cost of this many units")

    @field_validator("name")
    @classmethod
    def _plain_name(cls, name: str) -> str:
        if not re.fullmatch(UNIT_METRIC_NAME, name):
            raise ValueError(f"unit metric name {name!r} must be a letter then letters, digits or _ (per_transaction)")
        return name


DEFAULT_UNIT_METRICS = [UnitMetric(name="per_1k_requests", metric="requests", per=1000)]


class ScopeConfig(Model):
    """A scoped rollout: unit cost, alerts and customer checks cover these customers only.

    Criteria combine (a customer must meet every one given). Allocation is not scoped: shared pools
    are still split over every customer, so a customer's figures do not change when the scope widens.
    """

    tiers: list[str] | None = Field(default=None, description="customer tiers in scope (any case)")
    segments: list[str] | None = Field(default=None, description="customer segments in scope (any case)")
    onboarded_since: dt.date | None = Field(default=None, description="customers whose customer_since is on or after this day")

    @model_validator(mode="after")
    def _something(self) -> "ScopeConfig":
        if not (self.tiers or self.segments or self.onboarded_since):
            raise ValueError("scope needs tiers, segments or onboarded_since; remove the section to cover every customer")
        return self

    def describe(self) -> str:
        parts = []
        if self.tiers:
            parts.append("tier in " + ", ".join(self.tiers))
        if self.segments:
            parts.append("segment in " + ", ".join(self.segments))
        if self.onboarded_since:
            parts.append(f"onboarded on or after {self.onboarded_since.isoformat()}")
        return " and ".join(parts)

    def expr(self) -> pl.Expr:
        """True for a customer_dimension row in scope (columns tier, segment, customer_since)."""
        cond = pl.lit(True)
        if self.tiers:
            cond &= pl.col("tier").str.to_lowercase().is_in([t.lower() for t in self.tiers])
        if self.segments:
            cond &= pl.col("segment").str.to_lowercase().is_in([s.lower() for s in self.segments])
        if self.onboarded_since:
            cond &= pl.col("customer_since") >= pl.lit(self.onboarded_since)
        return cond.fill_null(False)


class DashboardConfig(Model):
    days: int = Field(default=90, ge=7, le=400, description="days of history the dashboard plots")


class ChecksConfig(Model):
    """Thresholds of the asset checks (the tag audit)."""

    coverage_floor: float = Field(default=0.85, ge=0, le=1, description="WARN below this coverage")
    coverage_hard_floor: float = Field(default=0.60, ge=0, le=1, description="ERROR below this coverage")
    drift_points: float = Field(default=5.0, gt=0, description="coverage points below the trailing 7-day mean")
    propagation_drop_points: float = Field(default=10.0, gt=0, description="a service's tagged-share drop, in points")
    min_service_cost: float = Field(default=1.0, ge=0, description="services costing less on the day are not audited")
    usage_drop_fraction: float = Field(default=0.5, gt=0, lt=1, description="usage total drop against the trailing week")
    conservation_tolerance: float = Field(default=1e-6, gt=0, description="relative")

    @model_validator(mode="after")
    def _floors_ordered(self) -> "ChecksConfig":
        if self.coverage_hard_floor > self.coverage_floor:
            raise ValueError("coverage_hard_floor must not be above coverage_floor")
        return self


class Destination(Model):
    """Where messages go: a Slack incoming webhook or a generic JSON webhook, its URL in an env var."""

    type: Literal["slack", "webhook"]
    url_env: str = Field(description="name of the environment variable holding the webhook URL (a secret)")

    @field_validator("url_env")
    @classmethod
    def _env_name(cls, name: str) -> str:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name):
            raise ValueError(f"url_env {name!r} must be an environment variable name, not a URL")
        return name


class TeamRoute(Model):
    alerts: str = Field(description="destination of P1 alerts (immediately)")
    review: str | None = Field(default=None, description="destination of P2 alerts (same-day review); default: alerts")
    unit_cost: str | None = Field(
        default=None, description="destination of the team's service unit-cost messages; default: review, then alerts"
    )

    def unit_cost_destination(self) -> str:
        return self.unit_cost or self.review or self.alerts


class NotificationsConfig(RetrySettings):
    dagster_url: str = "http://localhost:3000"
    finops: str | None = Field(default=None, description="destination of SEGMENT alerts, the weekly digest and run failures")
    destinations: dict[str, Destination] = Field(default_factory=dict)
    teams: dict[str, TeamRoute] = Field(default_factory=dict)
    timeout_seconds: float = Field(default=10.0, gt=0)
    max_retries: int = Field(default=2, ge=0, le=9, description="retries per message per sensor tick")
    max_wait_seconds: float = Field(default=30.0, ge=0, description="longest wait, Retry-After included")
    sensor_interval_seconds: int = Field(default=30, ge=5)
    tick_budget_seconds: float = Field(
        default=40.0, gt=0, le=55,
        description="time one delivery tick may spend sending (Dagster stops a sensor tick at 60 s); "
        "what is left waits for the next tick",
    )

    @model_validator(mode="after")
    def _tick_fits(self) -> "NotificationsConfig":
        if self.timeout_seconds > self.tick_budget_seconds:
            raise ValueError(
                f"timeout_seconds ({self.timeout_seconds:g}) must not exceed tick_budget_seconds "
                f"({self.tick_budget_seconds:g}): one request must fit in one tick"
            )
        return self

    @model_validator(mode="after")
    def _known_destinations(self) -> "NotificationsConfig":
        named = [("finops", self.finops)] + [
            (f"teams.{team}.{kind}", dest)
            for team, route in self.teams.items()
            for kind, dest in (("alerts", route.alerts), ("review", route.review), ("unit_cost", route.unit_cost))
        ]
        for where, dest in named:
            if dest is not None and dest not in self.destinations:
                known = ", ".join(sorted(self.destinations)) or "none"
                raise ValueError(f"{where} names destination {dest!r}, which is not under destinations (known: {known})")
        return self


class DailySchedule(Model):
    hour: int = Field(default=6, ge=0, le=23)
    minute: int = Field(default=0, ge=0, le=59)
    running: bool = Field(default=False, description="start the schedule when the code location loads")


class DigestSchedule(DailySchedule):
    day_of_week: int = Field(default=1, ge=0, le=6, description="0 = Sunday, 1 = Monday")
    hour: int = Field(default=9, ge=0, le=23)


class SchedulesConfig(Model):
    daily: DailySchedule = DailySchedule()
    weekly_digest: DigestSchedule = DigestSchedule()


class RunsConfig(Model):
    max_days_per_run: int | None = Field(
        default=None, ge=1,
        description="backfills in chunks of this many days (one run each, e.g. 31 on ECS); default: one run per range",
    )


class AnomaliesConfig(Model):
    """cost_anomalies: when a change in a customer's cost per unit is an anomaly (see transforms/anomalies.py)."""

    unit_metric: str = Field(default="requests", description="the usage metric cost per unit is measured in")
    min_score: float = Field(default=5.0, gt=0, description="robust z of the day's cost per unit against its baseline")
    min_impact: float = Field(default=5.0, ge=0, description="dollars a day, actual minus expected cost (either sign)")
    min_baseline_days: int = Field(default=14, ge=7, le=28, description="usable days in the 28-day baseline window")


class ForecastConfig(Model):
    """margin_forecast: how far ahead a projected P2 crossing raises a FORECAST alert."""

    horizon_days: int = Field(default=14, ge=1, le=90, description="FORECAST when P2 is projected within this many days")


class UnitcostConfig(Model):
    billing: BillingConfig = BillingConfig()
    tenant: TenantConfig = TenantConfig()
    usage: UsageConfig = UsageConfig()
    customers: CustomersConfig = CustomersConfig()
    pools: list[PoolConfig] = Field(default_factory=list)
    default_pools: bool = True
    alerts: AlertsConfig = AlertsConfig()
    owners: OwnersConfig = OwnersConfig()
    targets: TargetsConfig = TargetsConfig()
    products: ProductsConfig = ProductsConfig()
    unit_metrics: list[UnitMetric] = Field(
        default_factory=lambda: list(DEFAULT_UNIT_METRICS), min_length=1,
        description="units the business counts in (customer_unit_costs); default: cost per 1k requests",
    )
    checks: ChecksConfig = ChecksConfig()
    notifications: NotificationsConfig = NotificationsConfig()
    schedules: SchedulesConfig = SchedulesConfig()
    runs: RunsConfig = RunsConfig()
    scope: ScopeConfig | None = Field(default=None, description="a scoped rollout; default: every customer")
    dashboard: DashboardConfig = DashboardConfig()
    anomalies: AnomaliesConfig = AnomaliesConfig()
    forecast: ForecastConfig = ForecastConfig()

    def scope_description(self) -> str:
        return self.scope.describe() if self.scope else "all customers"

    @model_validator(mode="after")
    def _unique_pools(self) -> "UnitcostConfig":
        names = [p.name for p in self.resolved_pools()]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(dupes)}")
        return self

    @field_validator("unit_metrics")
    @classmethod
    def _unique_unit_metrics(cls, metrics: list[UnitMetric]) -> list[UnitMetric]:
        names = [m.name for m in metrics]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"names must be unique; repeated: {', '.join(dupes)}")
        return metrics

    @model_validator(mode="after")
    def _a_source_of_each_kind(self) -> "UnitcostConfig":
        """Without a billing, usage or customer source every run would fail: refuse it when the
        definitions load instead (the connectors' registry says what could be set)."""
        for kind, connectors in registry.CONNECTORS.items():
            if not any(c.configured(self) for c in connectors):
                noun = "customer" if kind == "customers" else kind
                raise ValueError(f"no {noun} source is configured: set {registry.configured_names(connectors, kind)}")
        return self

    @model_validator(mode="after")
    def _azure_cost_type_matches(self) -> "UnitcostConfig":
        azure = self.billing.azure
        wanted = {"EffectiveCost": "AmortizedCost", "BilledCost": "ActualCost"}[self.billing.cost_column]
        if azure is not None and azure.cost_type not in (None, wanted):
            raise ValueError(
                f"billing.azure.cost_type {azure.cost_type} does not fill billing.cost_column "
                f"{self.billing.cost_column}; use {wanted} (or leave cost_type out)"
            )
        return self

    def resolved_pools(self) -> list[PoolConfig]:
        """User pools first (first match wins), then the default category rules."""
        return list(self.pools) + (DEFAULT_POOLS if self.default_pools else [])

    @property
    def cost_column(self) -> str:
        return self.billing.cost_column


# Read when the definitions load (schedules, sensors, partition mappings, resources): a change needs a
# reload of the code location (`dg dev` reloads on the UI's "Reload"; a deployed code server restarts).
# Every other key is read again by each run and sensor tick. The README's config reference lists these.
LOAD_TIME_KEYS = (
    "schedules.daily",
    "schedules.weekly_digest",
    "notifications.sensor_interval_seconds",
    "billing.restatement.sensor_interval_seconds",
    "billing.cost_explorer.region",
    "dashboard.days",
    "runs.max_days_per_run",
    "anomalies.unit_metric",
    "forecast.horizon_days",
    "which sources are configured, and the *_env names of their secrets",
)


def load_config(path: Path) -> UnitcostConfig:
    """Read and validate the config file; errors name the file, the key and the fix."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        raise ConfigError(
            f"config file {path} does not exist; set UNITCOST_CONFIG to your unitcost.yaml "
            "(the project's unitcost.yaml is the documented template)"
        ) from None
    try:
        raw = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if not isinstance(raw, dict):
        raise ConfigError(f"config file {path} must be a mapping of sections (billing:, pools:, ...)")
    try:
        return UnitcostConfig.model_validate(raw)
    except ValidationError as exc:
        problems = []
        for err in exc.errors():
            key = ".".join(str(p) for p in err["loc"]) or "(top level)"
            msg = err["msg"].removeprefix("Value error, ")
            if err["type"] == "extra_forbidden":
                msg = "unknown key; check its spelling against the README's config reference"
            problems.append(f"{path}: {key}: {msg}")
        raise ConfigError("invalid config:\n  " + "\n  ".join(problems)) from None
