"""Prometheus HTTP API: daily usage per tenant label, as `USAGE_SCHEMA` rows.

Each configured metric is one PromQL expression aggregated `by (<tenant_label>)`, evaluated at the
end of every requested UTC day: `GET /api/v1/query_range` with `step` 86400 and `start`/`end` at
00:00:00 UTC of the day after the first/last day, so the point at D+1 00:00 is day D's figure and
the expression's own `[1d]` window covers exactly that day. A range of more points than Prometheus
serves per series is split into several requests.

Prometheus's own errors (`{"status": "error", "errorType": ..., "error": ...}`) become a
`PrometheusError` naming the metric, the error type, Prometheus's message and what to check; only
transport failures, an `unavailable` server and a proxy's 429/502/503/504 are retried.

The bearer token (when `bearer_token_env` is set) is read when a fetch runs, never at import, and
appears in no error or log line.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import polars as pl
import requests
from pydantic import Field, model_validator

from unitcost_platform.config_base import LABEL_NAME, RetrySettings, UsageMetric
from unitcost_platform.contracts.usage import empty_usage, usage_from_records
from unitcost_platform.errors import UnitcostError
from unitcost_platform.retries import RetriesExhausted, Retry, retrying
from unitcost_platform.retry_after import retry_after_seconds
from unitcost_platform.sources.connector import Connector, ReadContext, Secret, lazy_resources
from unitcost_platform.sources.http_json import redacting, session_keeping_secrets

if TYPE_CHECKING:
    import dagster as dg


class PrometheusMetric(UsageMetric):
    """One usage metric from Prometheus: a full PromQL `query`, or a `series` and its `kind`.

    The query is evaluated at the end of each UTC day and must aggregate `by (<tenant_label>)`;
    from a series: a counter is `sum by (tenant) (increase(series[1d]))`, a gauge
    `sum by (tenant) (avg_over_time(series[1d]))`.
    """

    query: str | None = None
    series: str | None = None
    kind: Literal["counter", "gauge"] | None = None
    matchers: dict[str, str] = Field(default_factory=dict, description="label matchers added to the series")

    @model_validator(mode="after")
    def _query_or_series(self) -> PrometheusMetric:
        if (self.query is None) == (self.series is None):
            raise ValueError(f"usage metric {self.metric!r}: give either query or series (with kind)")
        if self.series is not None:
            if self.kind is None:
                raise ValueError(f"usage metric {self.metric!r}: series needs kind: counter or gauge")
            if not re.fullmatch(r"[a-zA-Z_:][a-zA-Z0-9_:]*", self.series):
                raise ValueError(f"usage metric {self.metric!r}: {self.series!r} is not a Prometheus metric name")
        for label in self.matchers:
            if not re.fullmatch(LABEL_NAME, label):
                raise ValueError(f"usage metric {self.metric!r}: {label!r} is not a label name")
        return self


class PrometheusSource(RetrySettings):
    url: str = Field(description="base URL of the Prometheus HTTP API, e.g. http://prometheus:9090")
    tenant_label: str = Field(default="tenant_id", pattern=LABEL_NAME)
    metrics: list[PrometheusMetric] = Field(min_length=1)
    max_retries: int = Field(default=3, ge=0, le=10)
    max_wait_seconds: float = Field(default=60.0, ge=0)
    bearer_token_env: str | None = Field(default=None, description="env var holding a bearer token, if any")


SOURCE = "prometheus"
QUERY_RANGE_PATH = "/api/v1/query_range"
STEP_SECONDS = 86_400
# Prometheus refuses a range query whose (end - start) / step exceeds 11,000; staying at 11,000
# points (10,999 steps) keeps every request inside the limit with a point to spare.
MAX_POINTS_PER_REQUEST = 11_000
CONNECT_TIMEOUT_SECONDS = 10.0
# the server is told to give up after timeout_seconds; the client waits a little longer so that it
# receives Prometheus's `timeout` error rather than cutting the connection first
READ_GRACE_SECONDS = 5.0
RETRY_STATUSES = frozenset({429, 502, 503, 504})
RETRY_ERROR_TYPES = frozenset({"unavailable"})
SHOWN_CHARS = 500

CHECK = {
    "bad_data": "check the metric's PromQL (run it in the Prometheus UI) and that usage.prometheus.url "
    "points at Prometheus itself",
    "execution": "the query failed while running: try it in the Prometheus UI over one day; a query that "
    "touches too many samples needs narrower matchers or a higher --query.max-samples on the server",
    "timeout": "the query ran out of time: raise usage.prometheus.timeout_seconds (the server's "
    "--query.timeout caps it) or narrow the query with matchers",
    "canceled": "the server canceled the query: check the Prometheus server's logs and run again",
    "internal": "the Prometheus server failed: check its logs",
    "unavailable": "the Prometheus server is not ready (starting up or overloaded): run again later",
    "not_found": "check that usage.prometheus.url is the server's base URL (e.g. http://prometheus:9090, "
    "without /api/v1)",
}
CHECK_HTTP = {
    401: "the server wants credentials: set usage.prometheus.bearer_token_env to the variable holding "
    "a valid token",
    403: "the token is not allowed to query: check the permissions of the token in "
    "usage.prometheus.bearer_token_env",
    404: CHECK["not_found"],
}
NOT_PROMETHEUS = (
    "check that usage.prometheus.url is the Prometheus server's base URL (e.g. http://prometheus:9090), "
    "not its UI, a dashboard or a login page"
)


class PrometheusError(UnitcostError):
    """Prometheus refused a usage query, or answered something that cannot be read."""


def escape_label_value(value: str) -> str:
    """`value` as the inside of a double-quoted PromQL string: backslash, double quote and newline
    escaped (a raw newline ends the string for the PromQL lexer)."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def build_query(metric: PrometheusMetric, tenant_label: str) -> str:
    """The PromQL of a usage metric: its `query` as written, or, from `series` and `kind`,
    `sum by (<tenant_label>) (increase(<series>{<matchers>}[1d]))` for a counter and the same with
    `avg_over_time` for a gauge."""
    if metric.query is not None:
        return metric.query
    matchers = ", ".join(f'{name}="{escape_label_value(value)}"' for name, value in metric.matchers.items())
    selector = f"{metric.series}{{{matchers}}}" if matchers else str(metric.series)
    function = "increase" if metric.kind == "counter" else "avg_over_time"
    return f"sum by ({tenant_label}) ({function}({selector}[1d]))"


def query_windows(days: list[dt.date], max_points: int) -> list[tuple[dt.date, dt.date]]:
    """[first, last] day ranges covering every day in `days`, each of at most `max_points` days
    (one point per day). Ranges start at a requested day, so a long gap between days is skipped."""
    if max_points < 1:
        raise ValueError(f"max_points must be 1 or more, not {max_points}")
    windows: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if windows and (day - windows[-1][0]).days < max_points:
            windows[-1] = (windows[-1][0], day)
        else:
            windows.append((day, day))
    return windows


def day_end(day: dt.date) -> int:
    """Unix seconds of the end of the UTC day: 00:00:00 UTC of the next day."""
    return int(dt.datetime.combine(day + dt.timedelta(days=1), dt.time(), tzinfo=dt.UTC).timestamp())


def day_of_point(timestamp: float) -> dt.date:
    """The UTC day whose figure a point at `timestamp` (the end of that day) carries."""
    seconds = round(timestamp)
    if seconds % STEP_SECONDS:
        at = dt.datetime.fromtimestamp(timestamp, dt.UTC).isoformat()
        raise ValueError(f"a point at {at} is not at the end of a UTC day (00:00:00 UTC)")
    return dt.datetime.fromtimestamp(seconds, dt.UTC).date() - dt.timedelta(days=1)


def parse_points(
    data: object, tenant_label: str
) -> tuple[list[tuple[dt.date, str, float]], int, int, int]:
    """(day, tenant, value) of every finite point in a query_range `data` object, and the counts of
    series kept, series without the tenant label and non-finite (NaN, ±Inf) values skipped.

    Reads a `matrix` (`values` lists) and a `vector` (one `value` per series); values are strings
    such as "12.5", "NaN", "+Inf". Raises ValueError naming what is malformed.
    """
    if not isinstance(data, dict):
        raise ValueError("the response has no 'data' object")
    result_type, result = data.get("resultType"), data.get("result")
    if result_type not in ("matrix", "vector"):
        raise ValueError(
            f"the query returned a {result_type!r}, not one series per tenant: it must aggregate "
            f"`by ({tenant_label})` over a range vector (e.g. sum by ({tenant_label}) (increase(x[1d])))"
        )
    if not isinstance(result, list):
        raise ValueError(f"the {result_type} response has no 'result' list")
    points: list[tuple[dt.date, str, float]] = []
    kept = unlabelled = non_finite = 0
    for series in result:
        if not isinstance(series, dict) or not isinstance(series.get("metric"), dict):
            raise ValueError(f"a result entry is not a series with a 'metric' object: {series!r:.200}")
        tenant = series["metric"].get(tenant_label)
        if not tenant:  # Prometheus treats an empty label value as no label at all
            unlabelled += 1
            continue
        kept += 1
        samples = series.get("values", []) if result_type == "matrix" else [series.get("value")]
        if not isinstance(samples, list):
            raise ValueError(f"the series of {tenant_label}={tenant!r} has no list of values")
        for sample in samples:
            if not (isinstance(sample, list) and len(sample) == 2):
                raise ValueError(f"the series of {tenant_label}={tenant!r} has a point that is not "
                                 f"[<time>, \"<value>\"]: {sample!r:.100}")
            try:
                day = day_of_point(float(sample[0]))
                value = float(sample[1])
            except (TypeError, ValueError, OverflowError, OSError) as exc:
                raise ValueError(f"the series of {tenant_label}={tenant!r} has an unreadable point "
                                 f"{sample!r:.100}: {exc}") from None
            if not math.isfinite(value):
                non_finite += 1
                continue
            points.append((day, tenant, value))
    return points, kept, unlabelled, non_finite


def _shown_url(url: str) -> str:
    """The URL without any user:password@ part, for messages."""
    parts = urlsplit(url)
    return f"{parts.scheme}://{parts.netloc.rpartition('@')[2]}{parts.path}".rstrip("/")


def _resources() -> dict[str, type]:
    import dagster as dg

    class PrometheusResource(dg.ConfigurableResource):
        """The bearer token for the Prometheus API, if it needs one (from usage.prometheus's
        bearer_token_env, wired in defs/resources.py)."""

        bearer_token: str | None = None

    return {"PrometheusResource": PrometheusResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: PrometheusSource | None, secret: Secret) -> dg.ConfigurableResource:
    resource = __getattr__("PrometheusResource")
    if cfg is None or cfg.bearer_token_env is None:
        return resource()
    return resource(bearer_token=secret(cfg.bearer_token_env))


def _bearer_token(cfg: PrometheusSource, auth: dg.ConfigurableResource) -> str | None:
    """The bearer token; None when no token is configured, an error when configured but missing."""
    if cfg.bearer_token_env is None:
        return None
    token = auth.bearer_token
    if not token:
        raise PrometheusError(
            f"environment variable {cfg.bearer_token_env} is not set; usage.prometheus.bearer_token_env "
            f"names it as holding the bearer token for {_shown_url(cfg.url)}: set it, or remove "
            "bearer_token_env if the server needs no token"
        )
    return token


def _json_object(response: requests.Response) -> dict | None:
    """The body as a JSON object, or None when it is not one."""
    try:
        payload = response.json()
    except ValueError:
        return None
    return payload if isinstance(payload, dict) else None


def _body_excerpt(response: requests.Response) -> str:
    """The start of a body that is not Prometheus JSON, with its content type, on one line."""
    kind = response.headers.get("Content-Type", "no content type")
    text = " ".join((response.text or "").split())[:200] or "an empty body"
    return f"{kind}: {text}"


def _refusal(payload: dict, status: int, what: str) -> str:
    """The message of a Prometheus error body: metric, HTTP status, errorType, message, what to check."""
    error_type = str(payload.get("errorType") or "unknown")
    message = str(payload.get("error") or "no message").strip()[:SHOWN_CHARS]
    check = CHECK.get(error_type) or CHECK_HTTP.get(status) or "check the Prometheus server's logs"
    return f"Prometheus refused {what} (HTTP {status}, errorType {error_type}): {message}. To fix: {check}"


def _get(
    session: requests.Session,
    url: str,
    params: dict,
    headers: dict,
    cfg: PrometheusSource,
    what: str,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
) -> dict:
    """The JSON object of one successful query_range answer; retries transport failures, an
    `unavailable` server and a proxy's 429/502/503/504 through the retry policy (`max_retries`)."""

    def attempt() -> dict:
        try:
            response = session.get(
                url, params=params, headers=headers,
                timeout=(CONNECT_TIMEOUT_SECONDS, cfg.timeout_seconds + READ_GRACE_SECONDS),
            )  # fmt: skip
        except requests.RequestException as exc:  # its text can carry the URL: the type only
            raise Retry(f"the request failed ({type(exc).__name__})") from None
        status = response.status_code
        payload = _json_object(response)
        if payload is not None and payload.get("status") == "error":
            if payload.get("errorType") not in RETRY_ERROR_TYPES:
                raise PrometheusError(_refusal(payload, status, what))
            raise Retry(f"HTTP {status}, errorType {payload.get('errorType')}: {payload.get('error')}")
        if payload is not None and status == 200:
            if payload.get("status") != "success":
                raise PrometheusError(
                    f"Prometheus answered {what} with a JSON object whose status is "
                    f"{payload.get('status')!r}, not 'success' or 'error'; {NOT_PROMETHEUS}"
                )
            return payload
        if status in RETRY_STATUSES:
            asked = retry_after_seconds(response.headers.get("Retry-After"))
            # a proxy's Retry-After is waited up to max_wait_seconds (Prometheus itself sends none)
            raise Retry(f"HTTP {status} ({_body_excerpt(response)})", None if asked is None else min(asked, cfg.max_wait_seconds))
        if 200 <= status < 300:
            raise PrometheusError(
                f"Prometheus answered {what} with HTTP {status} and a body that is not a JSON "
                f"object ({_body_excerpt(response)}); {NOT_PROMETHEUS}"
            )
        check = CHECK_HTTP.get(status, NOT_PROMETHEUS)
        raise PrometheusError(f"Prometheus refused {what} with HTTP {status} ({_body_excerpt(response)}). To fix: {check}")

    def on_retry(retry: int, wait: float, problem: str) -> None:
        say(f"prometheus: {what}: {problem}; retry {retry} of {cfg.max_retries} in {wait:g}s")

    try:
        return retrying(cfg, attempt, sleep=sleep, on_retry=on_retry)
    except RetriesExhausted as exc:
        raise PrometheusError(
            f"Prometheus at {_shown_url(cfg.url)} still failed {what} after {exc.retries} retries: "
            f"{exc.problem}. Check that the server is up and reachable from here"
        ) from None


def _fetch_metric(
    cfg: PrometheusSource,
    metric: PrometheusMetric,
    days: set[dt.date],
    headers: dict,
    session: requests.Session,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
) -> list[tuple[dt.date, str, float]]:
    """(day, tenant, value) of one usage metric on the requested days, window by window."""
    query = build_query(metric, cfg.tenant_label)
    url = cfg.url.rstrip("/") + QUERY_RANGE_PATH
    points: list[tuple[dt.date, str, float]] = []
    for first, last in query_windows(sorted(days), MAX_POINTS_PER_REQUEST):
        what = f"usage metric {metric.metric!r} for {first}..{last} (query: {query[:SHOWN_CHARS]})"
        params = {
            "query": query,
            "start": str(day_end(first)),
            "end": str(day_end(last)),
            "step": str(STEP_SECONDS),
            "timeout": f"{cfg.timeout_seconds:g}",
        }
        payload = _get(session, url, params, headers, cfg, what, sleep, say)
        for key in ("warnings", "infos"):
            for note in payload.get(key) or []:
                say(f"prometheus {metric.metric} {first}..{last}: {key[:-1]} from Prometheus: {note}")
        try:
            found, kept, unlabelled, non_finite = parse_points(payload.get("data"), cfg.tenant_label)
        except ValueError as exc:
            raise PrometheusError(f"Prometheus's answer to {what} cannot be read: {exc}") from None
        wanted = [p for p in found if p[0] in days]
        points += wanted
        line = f"prometheus {metric.metric} {first}..{last}: {kept} series, {len(wanted)} point(s)"
        if unlabelled:
            line += f"; skipped {unlabelled} series without the {cfg.tenant_label} label"
        if non_finite:
            line += f"; skipped {non_finite} non-finite value(s) (NaN or ±Inf)"
        say(line)
    return points


def fetch_prometheus(
    cfg: PrometheusSource,
    days: list[dt.date],
    *,
    auth: dg.ConfigurableResource | None = None,
    session: requests.Session | None = None,
    log: Callable[[str], None] | None = None,
    sleep: Callable[[float], None] = time.sleep,
) -> pl.DataFrame:
    """Daily usage of `days` from Prometheus, as `USAGE_SCHEMA` rows with source "prometheus".

    One row per (day, tenant, service_name, metric): series sharing a tenant value are summed,
    tenant values are returned as Prometheus has them (the caller normalizes), service_name comes
    from the metric's config. Series without the tenant label and non-finite values are skipped and
    counted in the log. Raises `PrometheusError` for refusals, exhausted retries and unreadable
    answers.
    """
    wanted = set(days)
    if not wanted:
        return empty_usage()
    token = _bearer_token(cfg, auth or make_resource(None, lambda env: None))
    say = redacting(log, [token])
    headers = {"Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    rows: list[tuple] = []
    with session_keeping_secrets(session, PrometheusError, [token]) as http:
        for metric in cfg.metrics:
            points = _fetch_metric(cfg, metric, wanted, headers, http, sleep, say)
            rows += [(day, tenant, metric.service_name, metric.metric, value) for day, tenant, value in points]
    return usage_from_records(rows, SOURCE)


def read(context: ReadContext, cfg: PrometheusSource, days: list[dt.date]) -> pl.DataFrame:
    return fetch_prometheus(cfg, days, auth=context.resource, log=context.log)


CONNECTOR = Connector(
    name=SOURCE, kind="usage", config_key="prometheus", read=read, restatement="none",
    config_model=PrometheusSource, resource_key="prometheus", make_resource=make_resource,
)  # fmt: skip
