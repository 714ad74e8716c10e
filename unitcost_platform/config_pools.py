"""The pool rules of unitcost.yaml (`pools:`) and the default pools: what allocation needs of the
config. Apart from config.py (which assembles unitcost.yaml from the connectors' registry), so that
allocation's code and the benchmark's allocation process import no connector."""

import re
from typing import Literal

from pydantic import Field, field_validator, model_validator

from unitcost_platform.config_base import Model

RESERVED_DRIVERS = ("flat", "fixed", "exclude", "direct_cost")
IDLE_POLICIES = ("separate", "by_direct_cost")  # or a usage metric name
DIRECT_POOL = "direct"


class PoolMatch(Model):
    """All given criteria must hold (AND); each list matches any of its values (OR)."""

    all: bool = Field(default=False, description="match every line item (a catch-all rule)")
    service_category: list[str] | None = None
    service_name: list[str] | None = None
    provider: list[str] | None = None
    resource_id_pattern: str | None = None
    tags: dict[str, str] | None = None

    @field_validator("resource_id_pattern")
    @classmethod
    def _valid_regex(cls, pattern: str | None) -> str | None:
        if pattern is not None:
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"resource_id_pattern {pattern!r} is not a valid regex: {exc}") from None
        return pattern

    @model_validator(mode="after")
    def _not_empty(self) -> "PoolMatch":
        if not any(v for v in self.model_dump().values()):
            raise ValueError(
                "a pool's match needs at least one of all, service_category, service_name, provider, "
                "resource_id_pattern, tags (all: true catches every remaining line item)"
            )
        return self


class PoolConfig(Model):
    name: str
    match: PoolMatch
    driver: str | dict[str, float] | None = Field(
        default=None,
        description="a usage metric name, flat, fixed, exclude, direct_cost, or a blend {metric: weight} "
        "with weights summing to 1",
    )
    idle: str | None = Field(
        default=None,
        description="an idle-capacity pool instead of a driver: separate (unallocated, reason idle), "
        "by_direct_cost, or a usage metric",
    )
    direct_cost_scope: PoolMatch | None = Field(
        default=None,
        description="direct_cost / idle by_direct_cost: weigh only the direct cost of the line items this matches",
    )
    fallback: Literal["flat"] | None = None
    shares: dict[str, float] | None = Field(
        default=None, description="fixed driver: percent of the pool per customer_id, summing to 100"
    )
    usage_service: str | None = Field(
        default=None, description="metric driver: only count usage rows of this service_name"
    )
    shared_by_design: bool = Field(
        default=False,
        description="untagged on purpose (NAT, load balancers, shared databases): counts as attributed "
        "in tag coverage",
    )

    @model_validator(mode="after")
    def _driver_consistent(self) -> "PoolConfig":
        if self.name == DIRECT_POOL:
            raise ValueError(f"pool name {DIRECT_POOL!r} is reserved for tagged (direct) cost")
        if (self.driver is None) == (self.idle is None):
            raise ValueError(
                f"pool {self.name!r}: give a driver (how its cost is split) or idle (it is idle capacity), not "
                + ("both" if self.driver is not None else "neither")
            )
        if self.driver == "fixed":
            if not self.shares:
                raise ValueError(f"pool {self.name!r}: driver fixed needs shares: {{customer_id: percent}}")
            if any(v < 0 for v in self.shares.values()):
                raise ValueError(f"pool {self.name!r}: fixed shares must not be negative")
            total = sum(self.shares.values())
            if abs(total - 100.0) > 1e-9:
                raise ValueError(
                    f"pool {self.name!r}: fixed shares sum to {total:g}%, they must sum to 100%"
                )
        elif self.shares:
            raise ValueError(f"pool {self.name!r}: shares only apply to driver fixed, not {self.driver!r}")
        if isinstance(self.driver, dict):
            if not self.driver or any(not (w > 0) for w in self.driver.values()):
                raise ValueError(f"pool {self.name!r}: a blended driver needs positive weights, got {self.driver}")
            if abs(sum(self.driver.values()) - 1.0) > 1e-9:
                raise ValueError(
                    f"pool {self.name!r}: blended driver weights sum to {sum(self.driver.values()):g}, they must sum to 1"
                )
            reserved = [m for m in self.driver if m in RESERVED_DRIVERS]
            if reserved:
                raise ValueError(f"pool {self.name!r}: a blend mixes usage metrics only, not {', '.join(reserved)}")
        if self.fallback and not self.metrics():
            raise ValueError(
                f"pool {self.name!r}: fallback only applies to a usage-metric driver (or a blend), not {self.driver!r}"
            )
        for metric in self.metrics():
            if not re.fullmatch(r"[A-Za-z0-9_.:\-]+", metric):
                raise ValueError(f"pool {self.name!r}: driver {metric!r} is not a metric name")
        uses_direct = self.driver == "direct_cost" or self.idle == "by_direct_cost"
        if self.direct_cost_scope is not None and not uses_direct:
            raise ValueError(f"pool {self.name!r}: direct_cost_scope applies to driver direct_cost or idle by_direct_cost")
        return self

    def metrics(self) -> dict[str, float]:
        """The usage metrics that split the pool and their weights (empty for flat, fixed, exclude, direct_cost)."""
        driver = self.idle if self.idle is not None and self.idle not in IDLE_POLICIES else self.driver
        if isinstance(driver, dict):
            return dict(driver)
        if driver is None or driver in RESERVED_DRIVERS or driver in IDLE_POLICIES:
            return {}
        return {driver: 1.0}

    @property
    def is_metric(self) -> bool:
        return bool(self.metrics())


DEFAULT_POOLS = [
    PoolConfig(
        name="default_compute_networking",
        match=PoolMatch(service_category=["Compute", "Networking"]),
        driver="requests",
    ),
    PoolConfig(
        name="default_data",
        match=PoolMatch(service_category=["Databases", "Storage"]),
        driver="storage_bytes",
    ),
    PoolConfig(
        name="default_other",
        match=PoolMatch(all=True),
        driver="flat",
    ),
]
