"""Datadog metrics: daily usage per tenant tag, as `USAGE_SCHEMA` rows.

For each configured metric one `GET {base_url}/api/v1/query` over the whole day range (from the
first day's 00:00 UTC to the last second of the last day). Each returned series names its group in
`tag_set` (and `scope`); the tenant is the value of the `<tenant_tag>:<value>` entry. Points carry
millisecond timestamps: each is counted on its UTC day, null points are skipped and the points of a
day are summed, so a `.rollup(sum, 86400)` query gives one point per day and finer count rollups add
up. Throttling (429) honours `X-RateLimit-Reset` (seconds until the rate-limit window resets) and
`Retry-After`; server errors are retried with backoff; anything else is a `DatadogError` a person can
act on.

The API and application keys are read from the environment variables the config names when a fetch
runs, never at import, and appear in no error, log line or returned value.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING

import polars as pl
import requests
from pydantic import Field

from unitcost_platform.config_base import RetrySettings, UsageMetric
from unitcost_platform.contracts.usage import empty_usage, usage_from_records
from unitcost_platform.errors import UnitcostError
from unitcost_platform.retry_after import retry_after_seconds
from unitcost_platform.sources.connector import Connector, ReadContext, Secret, lazy_resources
from unitcost_platform.sources.http_json import (
    JsonService,
    redacting,
    request_json,
    session_keeping_secrets,
)

if TYPE_CHECKING:
    import dagster as dg


class DatadogMetric(UsageMetric):
    query: str = Field(description="a metrics query grouped by the tenant tag, e.g. sum:app.requests{*} by {tenant_id}.rollup(sum, 86400)")


class DatadogSource(RetrySettings):
    site: str = Field(default="datadoghq.com", description="datadoghq.com, datadoghq.eu, us3.datadoghq.com, ...")
    url: str | None = Field(default=None, description="API base URL; default https://api.<site>")
    api_key_env: str = "DD_API_KEY"
    app_key_env: str = "DD_APP_KEY"
    tenant_tag: str = "tenant_id"
    metrics: list[DatadogMetric] = Field(min_length=1)

    @property
    def base_url(self) -> str:
        return (self.url or f"https://api.{self.site}").rstrip("/")


SOURCE = "datadog"
QUERY_PATH = "/api/v1/query"
MS_PER_DAY = 86_400_000
EPOCH = dt.date(1970, 1, 1)
# Datadog reports the group of points that lack the grouping tag as this value (the graphs' "N/A")
UNTAGGED_VALUES = frozenset({"n/a"})

Log = Callable[[str], None]


class DatadogError(UnitcostError):
    """Datadog refused a metrics query, or answered something that cannot be read."""


def query_window(days: list[dt.date]) -> tuple[int, int]:
    """`from` and `to` in Unix seconds: the first day's 00:00 UTC to the last second of the last day."""
    first, last = min(days), max(days)
    start = dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC)
    end = dt.datetime.combine(last + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC)
    return int(start.timestamp()), int(end.timestamp()) - 1


def query_params(metric: DatadogMetric, days: list[dt.date]) -> dict[str, str]:
    """The query string of one metric's request over the whole range of `days`."""
    start, end = query_window(days)
    return {"from": str(start), "to": str(end), "query": metric.query}


def day_of(timestamp_ms: float) -> dt.date:
    """The UTC day a millisecond timestamp falls on."""
    return EPOCH + dt.timedelta(days=int(timestamp_ms) // MS_PER_DAY)


def tenant_of(series: Mapping, tag: str) -> str | None:
    """The series' value of `tag`, from `tag_set` (else from the comma-separated `scope`); None when
    the series is not grouped by it or is the group of points without it."""
    tag_set, scope = series.get("tag_set"), series.get("scope")
    entries = [*(tag_set if isinstance(tag_set, list) else []), *(scope.split(",") if isinstance(scope, str) else [])]
    prefix = f"{tag}:"
    for entry in entries:
        if isinstance(entry, str) and entry.strip().startswith(prefix):
            value = entry.strip()[len(prefix):]
            return None if not value or value.lower() in UNTAGGED_VALUES else value
    return None


def retry_wait(headers: Mapping[str, str], *, throttled: bool) -> float | None:
    """The wait a response asks for: on a 429 the longest of `X-RateLimit-Reset` and `Retry-After`,
    otherwise `Retry-After` only (every rate-limited response carries X-RateLimit-Reset, and after a
    server error waiting for the whole rate-limit window would be pointless)."""
    asked = []
    reset = headers.get("X-RateLimit-Reset")
    if throttled and reset:
        with contextlib.suppress(ValueError):  # an unreadable header falls back to Retry-After or backoff
            asked.append(max(0.0, float(reset)))
    seconds = retry_after_seconds(headers.get("Retry-After"))
    if seconds is not None:
        asked.append(seconds)
    return max(asked) if asked else None


def _number(value) -> bool:
    """Whether a JSON value is a number (JSON true/false are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def daily_points(payload: Mapping, tenant_tag: str, wanted: set[dt.date], what: str) -> tuple[dict, int]:
    """Summed values per (day, tenant) of one query response on the wanted days, and how many
    series were skipped for lacking the tenant tag. Raises `DatadogError` for an error status or a
    body that is not the documented shape."""
    if payload.get("status") == "error":
        message = str(payload.get("error") or "no error message").strip()[:500]
        raise DatadogError(
            f"Datadog could not run the query for {what}: {message}; check the query in usage.datadog.metrics "
            "(a metrics query such as sum:app.requests{*} by {tenant_id}.rollup(sum, 86400))"
        )
    series_list = payload.get("series")
    if not isinstance(series_list, list):
        raise DatadogError(f"Datadog response for {what} has no 'series' list")
    sums: dict[tuple[dt.date, str], float] = {}
    skipped = 0
    for n, series in enumerate(series_list, start=1):
        if not isinstance(series, dict) or not isinstance(series.get("pointlist"), list):
            raise DatadogError(f"Datadog response for {what}: series {n} has no 'pointlist' list")
        tenant = tenant_of(series, tenant_tag)
        if tenant is None:
            skipped += 1
            continue
        for m, point in enumerate(series["pointlist"], start=1):
            if not isinstance(point, list) or len(point) != 2 or not _number(point[0]):
                raise DatadogError(
                    f"Datadog response for {what}: series {n} point {m}: expected "
                    f"[timestamp ms, value], got {point!r:.100}"
                )
            stamp, value = point
            if value is None:
                continue
            if not _number(value):
                raise DatadogError(f"Datadog response for {what}: series {n} point {m}: value {value!r:.50} is not a number")
            try:
                day = day_of(stamp)
            except OverflowError:
                raise DatadogError(
                    f"Datadog response for {what}: series {n} point {m}: timestamp {stamp!r} is not a date"
                ) from None
            if day in wanted:
                sums[(day, tenant)] = sums.get((day, tenant), 0.0) + float(value)
    return sums, skipped


def _resources() -> dict[str, type]:
    import dagster as dg

    class DatadogResource(dg.ConfigurableResource):
        """The API and application keys of the Datadog organisation (from usage.datadog's api_key_env
        and app_key_env, wired in defs/resources.py)."""

        api_key: str | None = None
        app_key: str | None = None

    return {"DatadogResource": DatadogResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: DatadogSource | None, secret: Secret) -> dg.ConfigurableResource:
    resource = __getattr__("DatadogResource")
    return resource(api_key=secret(cfg.api_key_env), app_key=secret(cfg.app_key_env)) if cfg else resource()


def _keys(cfg: DatadogSource, keys: dg.ConfigurableResource) -> tuple[str, str]:
    """The API and application keys; a missing one is named by its environment variable."""
    values = []
    for value, env, what in ((keys.api_key, cfg.api_key_env, "an API key"), (keys.app_key, cfg.app_key_env, "an application key")):
        if not value:
            raise DatadogError(
                f"environment variable {env} is not set; usage.datadog needs {what} of your Datadog "
                f"organisation in it (usage.datadog.api_key_env / app_key_env name the variables)"
            )
        values.append(value)
    return values[0], values[1]


def _messages(response: requests.Response) -> str:
    """Datadog's error text of a response: the `errors` list (or `error`), else the start of the body."""
    try:
        body = response.json()
    except ValueError:
        body = None
    if isinstance(body, dict):
        errors = body.get("errors")
        if isinstance(errors, list) and errors:
            return "; ".join(str(e).strip() for e in errors)[:500]
        if body.get("error"):
            return str(body["error"]).strip()[:500]
    return (response.text or "").strip().replace("\n", " ")[:200] or "no error body"


def _refusal(response: requests.Response, what: str, cfg: DatadogSource) -> str:
    """The error text of a 4xx: the status, Datadog's message and what to check."""
    status = response.status_code
    if status in (401, 403):
        hint = (
            f"check that {cfg.api_key_env} holds an API key and {cfg.app_key_env} an application key of the "
            f"organisation {cfg.base_url} serves, and that the application key may query timeseries "
            "(the timeseries_query permission)"
        )
    elif status == 404:
        hint = f"check usage.datadog.site / url (requests go to {cfg.base_url})"
    else:
        hint = "check the query in usage.datadog.metrics"
    return f"Datadog refused the query for {what}: HTTP {status} {_messages(response)}; {hint}"


def _service(cfg: DatadogSource, what: str) -> JsonService:
    return JsonService(
        name="Datadog", tag="datadog", error=DatadogError,
        settings=cfg, wait_setting="usage.datadog.max_wait_seconds",
        wait_for=lambda r: retry_wait(r.headers, throttled=r.status_code == 429),
        refusal=lambda r: _refusal(r, what, cfg),
        throttled=lambda r: f"rate limited (HTTP 429: {_messages(r)})",
    )  # fmt: skip


def _get(
    session: requests.Session,
    params: dict[str, str],
    headers: dict[str, str],
    what: str,
    cfg: DatadogSource,
    sleep: Callable[[float], None],
    say: Log,
) -> dict:
    """One query's JSON object (retried and refused as `request_json` does)."""
    url = cfg.base_url + QUERY_PATH
    send = lambda: session.get(url, params=params, headers=headers, timeout=cfg.timeout_seconds)  # noqa: E731
    return request_json(_service(cfg, what), send, what, sleep, say)


def _fetch_records(
    cfg: DatadogSource,
    days: list[dt.date],
    headers: dict[str, str],
    session: requests.Session,
    sleep: Callable[[float], None],
    say: Log,
) -> list[tuple]:
    """(day, tenant, service, metric, value) per day and tenant of every configured metric."""
    wanted = set(days)
    records: list[tuple] = []
    for metric in cfg.metrics:
        what = f"usage metric {metric.metric!r} ({metric.query})"
        payload = _get(session, query_params(metric, days), headers, what, cfg, sleep, say)
        sums, skipped = daily_points(payload, cfg.tenant_tag, wanted, what)
        records += [(day, tenant, metric.service_name, metric.metric, value) for (day, tenant), value in sums.items()]
        series = payload["series"]
        say(f"datadog {metric.metric}: {len(series)} series, {len(sums)} day-tenant value(s)")
        if skipped:
            say(
                f"datadog {metric.metric}: skipped {skipped} series without a {cfg.tenant_tag} tag "
                f"(is the query grouped by {{{cfg.tenant_tag}}}?)"
            )
    return records


def fetch_datadog(
    cfg: DatadogSource,
    days: list[dt.date],
    *,
    keys: dg.ConfigurableResource,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Log | None = None,
) -> pl.DataFrame:
    """Daily usage of every configured Datadog metric on `days`, one `USAGE_SCHEMA` row per (day,
    tenant tag value, metric) with source "datadog"; tenant values are returned as Datadog reports
    them. Raises `DatadogError` for a missing key, refusals, exhausted retries and unreadable answers.
    """
    if not days:
        return empty_usage()
    api_key, app_key = _keys(cfg, keys)
    say = redacting(log, [api_key, app_key])
    headers = {"DD-API-KEY": api_key, "DD-APPLICATION-KEY": app_key, "Accept": "application/json"}
    with session_keeping_secrets(session, DatadogError, [api_key, app_key]) as http:
        records = _fetch_records(cfg, sorted(set(days)), headers, http, sleep, say)
    return usage_from_records(records, SOURCE)


def read(context: ReadContext, cfg: DatadogSource, days: list[dt.date]) -> pl.DataFrame:
    return fetch_datadog(cfg, days, keys=context.resource, log=context.log)


CONNECTOR = Connector(
    name=SOURCE, kind="usage", config_key="datadog", read=read, restatement="none",
    config_model=DatadogSource, resource_key="datadog", make_resource=make_resource,
)  # fmt: skip
