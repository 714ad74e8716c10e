"""New Relic (NerdGraph NRQL): daily usage per tenant attribute, as `USAGE_SCHEMA` rows.

For each configured metric and each UTC day one POST to NerdGraph running
`<nrql> FACET <tenant_attribute> SINCE <day start ms> UNTIL <next day start ms> LIMIT MAX`: epoch
milliseconds leave no time-zone ambiguity, SINCE is inclusive and UNTIL exclusive, so consecutive
days neither overlap nor leave a gap. Each result row carries the tenant in `facet` and the one
aggregate the NRQL selects.

NerdGraph reports query problems (NRQL syntax, an unknown account, a bad key) as HTTP 200 with a
GraphQL `errors` list: those are errors, never an empty day. Throttling (429) honours `Retry-After`;
server errors are retried with backoff; anything else is a `NewRelicError` a person can act on.

The API key is read from the environment variable the config names when a fetch runs, never at
import, and appears in no error, log line or returned value.
"""

from __future__ import annotations

import datetime as dt
import re
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


class NewRelicMetric(UsageMetric):
    nrql: str = Field(description="SELECT ... FROM ... [WHERE ...]; FACET, SINCE, UNTIL and LIMIT are added")


class NewRelicSource(RetrySettings):
    account_id: int
    url: str = Field(default="https://api.newrelic.com/graphql", description="NerdGraph; EU: https://api.eu.newrelic.com/graphql")
    api_key_env: str = "NEW_RELIC_API_KEY"
    tenant_attribute: str = "tenant_id"
    metrics: list[NewRelicMetric] = Field(min_length=1)


SOURCE = "newrelic"
GRAPHQL_QUERY = (
    "query($accountId: Int!, $nrql: Nrql!) "
    "{ actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"
)
FACET_LIMIT = 5000  # what LIMIT MAX means today: a day with this many results may have lost tenants
# keys of a faceted result row that are not the selected aggregate
NON_VALUE_KEYS = frozenset({"facet", "beginTimeSeconds", "endTimeSeconds"})
PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
# an attribute spelled like one of these must be backquoted to be read as an attribute
NRQL_KEYWORDS = frozenset({
    "ago", "and", "as", "auto", "begin", "begintime", "by", "compare", "day", "days", "end", "endtime",
    "explain", "extrapolate", "facet", "false", "from", "hour", "hours", "in", "is", "join", "like",
    "limit", "max", "minute", "minutes", "month", "months", "not", "null", "offset", "on", "or",
    "order", "predict", "quarter", "raw", "second", "seconds", "select", "show", "since", "slide",
    "timeseries", "today", "true", "until", "week", "weeks", "where", "with", "year", "years",
    "yesterday",
})  # fmt: skip
ADDED_CLAUSES = re.compile(r"\b(FACET|SINCE|UNTIL|LIMIT|TIMESERIES|COMPARE\s+WITH)\b", re.IGNORECASE)
QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|`[^`]*`")

Log = Callable[[str], None]


class NewRelicError(UnitcostError):
    """NerdGraph refused an NRQL query, reported an error for it, or answered something unreadable."""


def facet_attribute(name: str) -> str:
    """The attribute as NRQL reads it: backquoted unless it is a plain name that is not a keyword."""
    if "`" in name or not name.strip():
        raise NewRelicError(f"usage.newrelic.tenant_attribute {name!r} must be a non-empty attribute name without a backquote")
    if PLAIN_NAME.fullmatch(name) and name.lower() not in NRQL_KEYWORDS:
        return name
    return f"`{name}`"


def day_bounds_ms(day: dt.date) -> tuple[int, int]:
    """The UTC day as epoch milliseconds: its start (inclusive) and the next day's start (exclusive)."""
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return int(start.timestamp()) * 1000, int((start + dt.timedelta(days=1)).timestamp()) * 1000


def check_nrql(metric: NewRelicMetric) -> None:
    """Raise `NewRelicError` if the metric's NRQL already has a clause the connector adds."""
    clause = ADDED_CLAUSES.search(QUOTED.sub("''", metric.nrql))
    if clause:
        raise NewRelicError(
            f"usage.newrelic metric {metric.metric!r}: remove {clause.group(1).upper()} from its nrql "
            "(SELECT ... FROM ... [WHERE ...]); FACET, SINCE, UNTIL and LIMIT are added per day "
            "(an attribute named like a clause must be backquoted)"
        )


def nrql_for(metric: NewRelicMetric, tenant_attribute: str, day: dt.date) -> str:
    """The metric's NRQL for one UTC day, faceted by the tenant attribute."""
    since, until = day_bounds_ms(day)
    base = metric.nrql.strip().rstrip(";").strip()
    return f"{base} FACET {facet_attribute(tenant_attribute)} SINCE {since} UNTIL {until} LIMIT MAX"


def request_body(cfg: NewRelicSource, metric: NewRelicMetric, day: dt.date) -> dict:
    """The GraphQL request of one metric and day: the NRQL travels as a variable, unescaped."""
    return {
        "query": GRAPHQL_QUERY,
        "variables": {"accountId": cfg.account_id, "nrql": nrql_for(metric, cfg.tenant_attribute, day)},
    }


def graphql_errors(payload: Mapping) -> str | None:
    """The messages of a GraphQL `errors` list, each with its error class when given; None if none."""
    errors = payload.get("errors")
    if not errors:
        return None
    if not isinstance(errors, list):
        return str(errors)[:500]
    parts = []
    for error in errors:
        if not isinstance(error, dict):
            parts.append(str(error)[:200])
            continue
        message = str(error.get("message") or "no message").strip()[:500]
        extensions = error.get("extensions") if isinstance(error.get("extensions"), dict) else {}
        codes = [str(extensions[k]) for k in ("errorClass", "error_code", "code") if extensions.get(k)]
        parts.append(f"{message} ({', '.join(codes)})" if codes else message)
    return "; ".join(parts)


def _number(value) -> bool:
    """Whether a JSON value is a number (JSON true/false are not)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def results_of(payload: Mapping, what: str) -> list:
    """`data.actor.account.nrql.results` of a response without errors."""
    node = payload
    for key in ("data", "actor", "account", "nrql", "results"):
        node = node.get(key) if isinstance(node, dict) else None
        if node is None:
            break
    if not isinstance(node, list):
        raise NewRelicError(f"NerdGraph response for {what} has no data.actor.account.nrql.results list")
    return node


def tenant_values(results: list, tenant_attribute: str, what: str) -> tuple[dict[str, float], int]:
    """Summed value per facet (tenant) of one day's results, and how many results had a null facet
    or value. Raises `NewRelicError` when a result selects no or several aggregates."""
    skip_keys = NON_VALUE_KEYS | {tenant_attribute}
    values: dict[str, float] = {}
    skipped = 0
    for n, result in enumerate(results, start=1):
        if not isinstance(result, dict):
            raise NewRelicError(f"NerdGraph response for {what}: result {n} is not an object: {result!r:.100}")
        if "facet" not in result:
            raise NewRelicError(f"NerdGraph response for {what}: result {n} has no 'facet' (keys: {', '.join(result)})")
        candidates = [k for k in result if k not in skip_keys]
        if len(candidates) != 1:
            raise NewRelicError(
                f"NerdGraph response for {what}: result {n} has "
                f"{'no aggregate' if not candidates else 'several aggregates: ' + ', '.join(candidates)}; "
                "select exactly one aggregate in the nrql (e.g. SELECT sum(requests) FROM ...)"
            )
        facet, value = result["facet"], result[candidates[0]]
        if facet is None or value is None:
            skipped += 1
            continue
        if isinstance(facet, list | dict):
            raise NewRelicError(f"NerdGraph response for {what}: result {n} facet {facet!r:.100} is not a single value")
        if not _number(value):
            raise NewRelicError(
                f"NerdGraph response for {what}: result {n} {candidates[0]} {value!r:.50} is not a number"
            )
        tenant = str(facet)
        values[tenant] = values.get(tenant, 0.0) + float(value)
    return values, skipped


def _resources() -> dict[str, type]:
    import dagster as dg

    class NewRelicResource(dg.ConfigurableResource):
        """The New Relic user API key (from usage.newrelic's api_key_env, wired in defs/resources.py)."""

        api_key: str | None = None

    return {"NewRelicResource": NewRelicResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: NewRelicSource | None, secret: Secret) -> dg.ConfigurableResource:
    resource = __getattr__("NewRelicResource")
    return resource(api_key=secret(cfg.api_key_env)) if cfg else resource()


def _api_key(cfg: NewRelicSource, keys: dg.ConfigurableResource) -> str:
    """The API key; missing, it is named by its environment variable."""
    value = keys.api_key
    if not value:
        raise NewRelicError(
            f"environment variable {cfg.api_key_env} is not set; usage.newrelic needs a New Relic user API key "
            f"(NRAK-...) with access to account {cfg.account_id} in it"
        )
    return value


def _auth_hint(cfg: NewRelicSource) -> str:
    """What to check when NerdGraph rejects the key or the account."""
    return (
        f"check that {cfg.api_key_env} holds a user API key (NRAK-...) with access to account {cfg.account_id}, "
        "and that usage.newrelic.url is your region's NerdGraph (EU accounts: https://api.eu.newrelic.com/graphql)"
    )


def _refusal(response: requests.Response, what: str, cfg: NewRelicSource) -> str:
    """The error text of a 4xx: the status, NerdGraph's messages and what to check."""
    try:
        body = response.json()
    except ValueError:
        body = None
    detail = graphql_errors(body) if isinstance(body, dict) else None
    if not detail:
        detail = (response.text or "").strip().replace("\n", " ")[:200] or "no error body"
    hint = _auth_hint(cfg) if response.status_code in (401, 403) else "check the nrql in usage.newrelic.metrics"
    return f"NerdGraph refused the query for {what}: HTTP {response.status_code} {detail}; {hint}"


def _post(
    session: requests.Session,
    body: dict,
    api_key: str,
    what: str,
    cfg: NewRelicSource,
    sleep: Callable[[float], None],
    say: Log,
) -> dict:
    """One query's JSON object (retried and refused as `request_json` does)."""
    service = JsonService(
        name="NerdGraph", tag="newrelic", error=NewRelicError,
        settings=cfg, wait_setting="usage.newrelic.max_wait_seconds",
        wait_for=lambda r: retry_after_seconds(r.headers.get("Retry-After")),
        refusal=lambda r: _refusal(r, what, cfg),
    )  # fmt: skip
    send = lambda: session.post(cfg.url, json=body, headers={"API-Key": api_key}, timeout=cfg.timeout_seconds)  # noqa: E731
    return request_json(service, send, what, sleep, say)


def _day_values(payload: dict, cfg: NewRelicSource, what: str, say: Log) -> dict[str, float]:
    """Value per tenant of one day's answer; GraphQL errors and truncated results are errors."""
    errors = graphql_errors(payload)
    if errors:
        auth = any(word in errors.upper() for word in ("BAD_API_KEY", "UNAUTHORIZED", "FORBIDDEN"))
        hint = _auth_hint(cfg) if auth else "check the nrql in usage.newrelic.metrics and usage.newrelic.account_id"
        raise NewRelicError(f"NerdGraph reported an error for {what}: {errors}; {hint}")
    results = results_of(payload, what)
    if len(results) >= FACET_LIMIT:
        raise NewRelicError(
            f"NerdGraph returned {len(results)} results for {what}, the most a FACET query returns, so some "
            "tenants may be missing; narrow the nrql's WHERE or split it into several metrics"
        )
    values, skipped = tenant_values(results, cfg.tenant_attribute, what)
    say(f"newrelic {what}: {len(results)} result(s), {len(values)} tenant(s)")
    if skipped:
        say(f"newrelic {what}: skipped {skipped} result(s) with a null {cfg.tenant_attribute} or value")
    return values


def fetch_newrelic(
    cfg: NewRelicSource,
    days: list[dt.date],
    *,
    keys: dg.ConfigurableResource,
    session: requests.Session | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Log | None = None,
) -> pl.DataFrame:
    """Daily usage of every configured New Relic metric on `days`, one `USAGE_SCHEMA` row per (day,
    tenant attribute value, metric) with source "newrelic"; tenant values are returned as New Relic
    reports them. Raises `NewRelicError` for a missing key, refusals, GraphQL errors, exhausted
    retries and unreadable answers.
    """
    if not days:
        return empty_usage()
    for metric in cfg.metrics:
        check_nrql(metric)
    facet_attribute(cfg.tenant_attribute)
    api_key = _api_key(cfg, keys)
    say = redacting(log, [api_key])
    records: list[tuple] = []
    with session_keeping_secrets(session, NewRelicError, [api_key]) as http:
        for metric in cfg.metrics:
            for day in sorted(set(days)):
                what = f"usage metric {metric.metric!r} on {day}"
                payload = _post(http, request_body(cfg, metric, day), api_key, what, cfg, sleep, say)
                values = _day_values(payload, cfg, what, say)
                records += [(day, tenant, metric.service_name, metric.metric, v) for tenant, v in values.items()]
    return usage_from_records(records, SOURCE)


def read(context: ReadContext, cfg: NewRelicSource, days: list[dt.date]) -> pl.DataFrame:
    return fetch_newrelic(cfg, days, keys=context.resource, log=context.log)


CONNECTOR = Connector(
    name=SOURCE, kind="usage", config_key="newrelic", read=read, restatement="none",
    config_model=NewRelicSource, resource_key="newrelic", make_resource=make_resource,
)  # fmt: skip
