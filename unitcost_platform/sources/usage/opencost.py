"""OpenCost's allocation API: each Kubernetes namespace's daily cost as usage of the tenant it maps to.

One `GET {url}/allocation` per configured metric over the whole day range, with
`window=<first day>T00:00:00Z,<day after the last>T00:00:00Z`, `aggregate=namespace`, `step=1d` and
`accumulate=false`: OpenCost answers `{"code": 200, "data": [<set>, ...]}`, one set per day, each a
map of allocation name to an allocation (`name`, `start`, `end`, `window`, `totalCost`, cost
breakdowns, `properties`). The namespace's `totalCost` on the set's UTC day becomes the value of the
metric for the tenant `namespace_map` gives it. `__idle__` (capacity nobody requested) and
`__unallocated__` (workloads without the aggregation label) are not tenants: they are reported, not
counted. So a pool whose driver is that metric splits the cluster's *billed* node cost by OpenCost's
list-price shares: OpenCost decides the shares, the bill decides the dollars.
"""

import datetime as dt
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import polars as pl
import requests
from pydantic import Field, field_validator

from unitcost_platform.config_base import (
    RetrySettings,
    UsageMetric,
    check_namespace_map,
    tenant_of_namespace,
)
from unitcost_platform.contracts.usage import empty_usage, usage_from_records
from unitcost_platform.errors import UnitcostError
from unitcost_platform.retry_after import retry_after_seconds
from unitcost_platform.sources.connector import Connector, ReadContext
from unitcost_platform.sources.http_json import JsonService, request_json, session_keeping_secrets


class OpenCostMetric(UsageMetric):
    """Each namespace's totalCost becomes usage of this metric (e.g. k8s_cost_share) for its tenant."""

    aggregate: Literal["namespace"] = "namespace"


class OpenCostSource(RetrySettings):
    """OpenCost's allocation API, per UTC day: each namespace's list-price cost becomes usage of its tenant."""

    url: str = Field(description="the OpenCost API, e.g. http://opencost.opencost:9003")
    metrics: list[OpenCostMetric] = Field(min_length=1)
    namespace_map: dict[str, str] = Field(
        default_factory=dict,
        description="namespace -> tenant; a key starting with ^ is a regex whose value may use {1}, its first group",
    )

    @field_validator("namespace_map")
    @classmethod
    def _patterns_compile(cls, mapping: dict[str, str]) -> dict[str, str]:
        return check_namespace_map(mapping)

    def tenant_of(self, namespace: str) -> str | None:
        return tenant_of_namespace(self.namespace_map, namespace)


SOURCE = "opencost"
PATH = "/allocation"
NOT_TENANTS = frozenset({"__idle__", "__unallocated__"})

Log = Callable[[str], None]


class OpenCostError(UnitcostError):
    """OpenCost refused an allocation query, or answered something that cannot be read."""


def query_params(metric: OpenCostMetric, days: list[dt.date]) -> dict[str, str]:
    """The allocation query of one metric over the whole range of `days`, one set per UTC day."""
    first, after = min(days), max(days) + dt.timedelta(days=1)
    return {
        "window": f"{first.isoformat()}T00:00:00Z,{after.isoformat()}T00:00:00Z",
        "aggregate": metric.aggregate, "step": "1d", "accumulate": "false",
    }  # fmt: skip


def _day(allocation: dict, what: str, n: int, name: str) -> dt.date:
    start = allocation.get("start") or (allocation.get("window") or {}).get("start")
    try:
        return dt.datetime.fromisoformat(str(start).replace("Z", "+00:00")).astimezone(dt.UTC).date()
    except ValueError:
        raise OpenCostError(f"OpenCost response for {what}: set {n}, {name!r}: start {start!r} is not a time") from None


def daily_costs(payload: dict, cfg: OpenCostSource, wanted: set[dt.date], what: str) -> tuple[dict, dict, set]:
    """(day, tenant) -> summed totalCost of its namespaces; what was not a tenant (idle, unallocated)
    per name; and the namespaces no entry of namespace_map matched."""
    if payload.get("code") not in (None, 200):
        raise OpenCostError(f"OpenCost answered code {payload.get('code')} for {what}: {str(payload.get('message'))[:300]}")
    sets = payload.get("data")
    if not isinstance(sets, list):
        raise OpenCostError(f"OpenCost response for {what} has no 'data' list of allocation sets")
    costs: dict[tuple[dt.date, str], float] = {}
    apart: dict[str, float] = {}
    unmapped: set[str] = set()
    for n, allocations in enumerate(sets, start=1):
        if allocations is None:
            continue  # a step with nothing in it
        if not isinstance(allocations, dict):
            raise OpenCostError(f"OpenCost response for {what}: set {n} is not a map of allocations")
        for name, allocation in allocations.items():
            total = allocation.get("totalCost") if isinstance(allocation, dict) else None
            if isinstance(total, bool) or not isinstance(total, int | float):
                raise OpenCostError(f"OpenCost response for {what}: set {n}, {name!r} has no numeric totalCost")
            day = _day(allocation, what, n, name)
            if day not in wanted:
                continue
            if name in NOT_TENANTS:
                apart[name] = apart.get(name, 0.0) + float(total)
                continue
            tenant = cfg.tenant_of(name)
            if tenant is None:
                unmapped.add(name)
                continue
            costs[(day, tenant)] = costs.get((day, tenant), 0.0) + float(total)
    return costs, apart, unmapped


def _message(response: requests.Response) -> str:
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict) and body.get("message"):
        return str(body["message"]).strip()[:300]
    return (response.text or "").strip().replace("\n", " ")[:200] or "no error body"


def _service(cfg: OpenCostSource, what: str) -> JsonService:
    return JsonService(
        name="OpenCost", tag="opencost", error=OpenCostError,
        settings=cfg, wait_setting="usage.opencost.max_wait_seconds",
        wait_for=lambda r: retry_after_seconds(r.headers.get("Retry-After")),
        refusal=lambda r: (
            f"OpenCost refused the allocation query for {what}: HTTP {r.status_code} {_message(r)}; "
            f"check usage.opencost.url ({cfg.url}) and the metric's aggregate"
        ),
    )  # fmt: skip


def fetch_opencost(
    cfg: OpenCostSource,
    days: list[dt.date],
    *,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Log | None = None,
) -> pl.DataFrame:
    """Daily usage of every configured metric: one `USAGE_SCHEMA` row per (day, tenant, metric), the
    summed totalCost of the tenant's namespaces, source "opencost". Raises `OpenCostError`."""
    if not days:
        return empty_usage()
    say: Log = log or (lambda _line: None)
    wanted, records = set(days), []
    with session_keeping_secrets(session, OpenCostError, []) as http:
        for metric in cfg.metrics:
            what = f"usage metric {metric.metric!r} (aggregate={metric.aggregate})"
            url = cfg.url.rstrip("/") + PATH
            params = query_params(metric, sorted(wanted))
            send = lambda url=url, params=params: http.get(url, params=params, timeout=cfg.timeout_seconds)  # noqa: E731
            payload = request_json(_service(cfg, what), send, what, sleep, say)
            costs, apart, unmapped = daily_costs(payload, cfg, wanted, what)
            records += _records(metric, costs, apart, unmapped, say, "")
    return usage_from_records(records, SOURCE)


def _records(metric: OpenCostMetric, costs: dict, apart: dict, unmapped: set, say: Log, how: str) -> list[tuple]:
    """The usage rows of one metric, and what was left out said in the log."""
    say(f"opencost {metric.metric}{how}: {len(costs)} day-tenant value(s)"
        + "".join(f"; {name} ${total:,.2f} (not a tenant, not counted)" for name, total in sorted(apart.items())))  # fmt: skip
    if unmapped:
        say(f"opencost {metric.metric}: namespaces without a tenant in usage.opencost.namespace_map "
            f"(not counted): {', '.join(sorted(unmapped)[:20])}")  # fmt: skip
    return [(day, tenant, metric.service_name, metric.metric, value) for (day, tenant), value in costs.items()]


FILE_SCHEME = "file://"


def replay_opencost(cfg: OpenCostSource, days: list[dt.date], directory: Path, log: Log | None = None) -> pl.DataFrame:
    """The same usage from recorded `/allocation` responses (`url: file://<dir>`, relative to the data
    dir): every `*.json` file under the directory is one response in OpenCost's exact shape (`code`,
    `data`: one set per day), read by the same code as a live answer; the days asked for are kept. For
    clusters whose OpenCost is not reachable from the pipeline (its responses shipped as files), and
    the demo."""
    if not days:
        return empty_usage()
    say: Log = log or (lambda _line: None)
    files = sorted(directory.rglob("*.json")) if directory.is_dir() else []
    if not files:
        raise OpenCostError(f"usage.opencost.url {cfg.url}: no recorded allocation responses (*.json) under {directory}")
    wanted, records = set(days), []
    for metric in cfg.metrics:
        costs: dict[tuple[dt.date, str], float] = {}
        apart: dict[str, float] = {}
        unmapped: set[str] = set()
        for path in files:
            what = f"usage metric {metric.metric!r} ({path.name})"
            try:
                payload = json.loads(path.read_text())
            except (OSError, ValueError) as exc:
                raise OpenCostError(f"{path}: not a recorded OpenCost response ({type(exc).__name__}: {exc})") from None
            if not isinstance(payload, dict):
                raise OpenCostError(f"{path}: not a recorded OpenCost response (not a JSON object)")
            found, skipped, missing = daily_costs(payload, cfg, wanted, what)
            for key, value in found.items():
                costs[key] = costs.get(key, 0.0) + value
            for name, value in skipped.items():
                apart[name] = apart.get(name, 0.0) + value
            unmapped |= missing
        records += _records(metric, costs, apart, unmapped, say, f" (recorded, {len(files)} file(s))")
    return usage_from_records(records, SOURCE)


def read(context: ReadContext, cfg: OpenCostSource, days: list[dt.date]) -> pl.DataFrame:
    if cfg.url.startswith(FILE_SCHEME):
        directory = Path(cfg.url.removeprefix(FILE_SCHEME)).expanduser()
        return replay_opencost(cfg, days, directory if directory.is_absolute() else context.data_dir / directory, context.log)
    return fetch_opencost(cfg, days, log=context.log)


CONNECTOR = Connector(
    name=SOURCE, kind="usage", config_key="opencost", read=read, restatement="none", config_model=OpenCostSource
)
