"""Azure Cost Management Query API: daily cost per tenant tag and service, as API rows.

One POST to `{scope}/providers/Microsoft.CostManagement/query` per window of days (the whole range
unless it is longer than the API serves at daily granularity), pages followed through
`properties.nextLink`, columns looked up by name. Throttling (429) honours the largest of the
`x-ms-ratelimit-microsoft.costmanagement-*-retry-after` headers and `Retry-After`; server errors
are retried with backoff; anything else is an `AzureCostError` a person can act on.

The service principal's secret and the bearer token are read or obtained when a fetch runs, never
at import, and appear in no error, log line or returned value.
"""

from __future__ import annotations

import calendar
import datetime as dt
import re
import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Literal
from urllib.parse import urlsplit

import polars as pl
import requests
from pydantic import Field

from unitcost_platform.config_base import RestatementConfig, RetrySettings
from unitcost_platform.contracts.raw_billing import (
    API_ROW_SCHEMA,
    day_start,
    empty_api_rows,
    tenant_tags,
)
from unitcost_platform.errors import UnitcostError
from unitcost_platform.retry_after import retry_after_seconds
from unitcost_platform.sources.connector import ReadContext, Secret, api_connector, lazy_resources
from unitcost_platform.sources.finality import is_final
from unitcost_platform.sources.http_json import (
    JsonService,
    redact,
    request_json,
    session_keeping_secrets,
)
from unitcost_platform.sources.service_categories import service_category

if TYPE_CHECKING:
    import dagster as dg


class AzureSource(RetrySettings):
    """Azure Cost Management Query API, daily, grouped by the tenant tag and ServiceName."""

    scope: str = Field(description="e.g. /subscriptions/<id> or /providers/Microsoft.Billing/billingAccounts/<id>")
    tag_key: str = "tenant_id"
    cost_type: Literal["AmortizedCost", "ActualCost"] | None = Field(
        default=None, description="default: AmortizedCost for EffectiveCost, ActualCost for BilledCost"
    )
    endpoint: str = "https://management.azure.com"
    api_version: str = "2023-11-01"
    tenant_id_env: str = "AZURE_TENANT_ID"
    client_id_env: str = "AZURE_CLIENT_ID"
    client_secret_env: str = "AZURE_CLIENT_SECRET"
    timeout_seconds: float = Field(default=120.0, gt=0, description="a query over a month of data can take a while")


ARM_TOKEN_SCOPE = "https://management.azure.com/.default"
COST = "Cost"  # the aggregated column: the response names it after the aggregation's `name`
TAG_KEY, TAG_VALUE = "TagKey", "TagValue"  # what a TagKey grouping comes back as
REQUIRED_COLUMNS = (COST, "UsageDate", TAG_KEY, TAG_VALUE, "ServiceName", "Currency")
RATELIMIT_HEADER = re.compile(r"x-ms-ratelimit-microsoft\.costmanagement-[a-z]+-retry-after", re.IGNORECASE)
CONNECT_TIMEOUT_SECONDS = 10.0  # the read timeout is billing.azure.timeout_seconds
MAX_PAGES = 1000  # a nextLink that never ends is a service fault, not a reason to loop forever
SUBSCRIPTION_SCOPE = re.compile(r"^/?subscriptions/([^/]+)", re.IGNORECASE)


class AzureCostError(UnitcostError):
    """The Cost Management API refused the query, or answered something that cannot be read."""


def query_type(cfg: AzureSource, cost_column: str) -> str:
    """The query's `type`: the configured one, else AmortizedCost for EffectiveCost and ActualCost
    for BilledCost."""
    if cost_column not in ("EffectiveCost", "BilledCost"):
        raise ValueError(f"cost_column must be EffectiveCost or BilledCost, not {cost_column!r}")
    return cfg.cost_type or ("AmortizedCost" if cost_column == "EffectiveCost" else "ActualCost")


def query_url(cfg: AzureSource) -> str:
    """The Query - Usage URL of the configured scope."""
    base = f"{cfg.endpoint.rstrip('/')}/{cfg.scope.strip('/')}"
    return f"{base}/providers/Microsoft.CostManagement/query?api-version={cfg.api_version}"


def query_body(cfg: AzureSource, cost_type: str, first: dt.date, last: dt.date) -> dict:
    """Daily summed cost of [first, last] (whole days), grouped by the tenant tag and ServiceName."""
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{first.isoformat()}T00:00:00Z", "to": f"{last.isoformat()}T23:59:59Z"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": COST, "function": "Sum"}},
            "grouping": [{"type": "TagKey", "name": cfg.tag_key}, {"type": "Dimension", "name": "ServiceName"}],
        },
    }


def _earliest_from(to: dt.date) -> dt.date:
    """The first day a daily query ending on `to` may start: the service silently cuts `from` to
    one month before `to` (plus a day) instead of failing, so a longer range loses its first days."""
    year, month = (to.year, to.month - 1) if to.month > 1 else (to.year - 1, 12)
    month_before = dt.date(year, month, min(to.day, calendar.monthrange(year, month)[1]))
    return month_before + dt.timedelta(days=1)


def query_windows(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    """[first, last] ranges covering every day in `days`, each short enough for one daily query.

    Normally one range, min(days) to max(days); ranges start at a requested day, so a gap longer
    than the limit is not queried.
    """
    windows: list[tuple[dt.date, dt.date]] = []
    for day in sorted(set(days)):
        if windows and windows[-1][0] >= _earliest_from(day):
            windows[-1] = (windows[-1][0], day)
        else:
            windows.append((day, day))
    return windows


def subscription_id(scope: str) -> str | None:
    """The subscription of a subscription (or resource group) scope; None for billing scopes."""
    match = SUBSCRIPTION_SCOPE.match(scope)
    return match.group(1) if match else None


def retry_wait(headers: Mapping[str, str]) -> float | None:
    """The longest wait the response asks for: each x-ms-ratelimit quota (qpu, entity, tenant,
    client) reports its own, and waiting for a shorter one would only be throttled again."""
    asked = []
    for name, value in headers.items():
        if RATELIMIT_HEADER.fullmatch(name) or name.lower() == "retry-after":
            try:
                asked.append(float(value))
            except ValueError:
                seconds = retry_after_seconds(value)
                if seconds is not None:
                    asked.append(seconds)
    return max(asked) if asked else None


def _resources() -> dict[str, type]:
    import dagster as dg

    class AzureResource(dg.ConfigurableResource):
        """The service principal billing.azure signs in with (from its tenant_id_env, client_id_env and
        client_secret_env, wired in defs/resources.py), and the HTTP session its queries use."""

        tenant_id: str | None = None
        client_id: str | None = None
        client_secret: str | None = None

        def token_provider(self, cfg: AzureSource) -> Callable[[], str]:
            return default_token_provider(cfg, self)

        def session(self) -> requests.Session:
            return requests.Session()

    return {"AzureResource": AzureResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: AzureSource | None, secret: Secret) -> dg.ConfigurableResource:
    resource = __getattr__("AzureResource")
    if cfg is None:
        return resource()
    return resource(
        tenant_id=secret(cfg.tenant_id_env), client_id=secret(cfg.client_id_env), client_secret=secret(cfg.client_secret_env)
    )


def default_token_provider(cfg: AzureSource, principal: dg.ConfigurableResource) -> Callable[[], str]:
    """A bearer-token source from the service principal's tenant id, client id and secret.

    Raises `AzureCostError` naming the environment variable of a missing one, or telling how to
    install azure-identity when it is absent.
    """
    try:
        from azure.core.exceptions import ClientAuthenticationError
        from azure.identity import ClientSecretCredential
    except ImportError:
        raise AzureCostError(
            "billing.azure needs the azure-identity package: pip install 'unitcost_platform[azure]'"
        ) from None
    values = {}
    for env, value in ((cfg.tenant_id_env, principal.tenant_id), (cfg.client_id_env, principal.client_id),
                       (cfg.client_secret_env, principal.client_secret)):  # fmt: skip
        values[env] = value
        if not value:
            raise AzureCostError(
                f"environment variable {env} is not set; billing.azure needs the service principal's "
                f"tenant id, client id and client secret in {cfg.tenant_id_env}, {cfg.client_id_env} "
                f"and {cfg.client_secret_env}"
            )
    secret = values[cfg.client_secret_env]
    credential = ClientSecretCredential(values[cfg.tenant_id_env], values[cfg.client_id_env], secret)

    def token() -> str:
        try:
            return credential.get_token(ARM_TOKEN_SCOPE).token
        except ClientAuthenticationError as exc:
            text = str(exc).strip()
            reason = redact(text.splitlines()[0] if text else type(exc).__name__, [secret])
            raise AzureCostError(
                f"could not get an Azure token for the service principal in {cfg.client_id_env}: {reason}"
            ) from None

    return token


def _refusal(response: requests.Response, scope: str) -> str:
    """The error text of a 4xx: status and Azure's error code and message from the body."""
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    if isinstance(error, dict) and (error.get("code") or error.get("message")):
        detail = f"{error.get('code') or 'no code'}: {str(error.get('message') or '').strip()[:500]}"
    else:
        detail = (response.text or "").strip().replace("\n", " ")[:200] or "no error body"
    hint = ""
    if response.status_code in (401, 403):
        hint = " (the service principal needs the Cost Management Reader role on the scope)"
    return f"Azure Cost Management refused the query for {scope}: HTTP {response.status_code} {detail}{hint}"


def _post(
    session: requests.Session,
    url: str,
    body: dict,
    token: str,
    cfg: AzureSource,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
) -> dict | None:
    """One page: the JSON object, or None for 204 (nothing to return); retried as `request_json` does."""
    service = JsonService(
        name="Azure Cost Management", tag="azure", error=AzureCostError,
        settings=cfg, wait_setting="billing.azure.max_wait_seconds",
        wait_for=lambda r: retry_wait(r.headers),
        refusal=lambda r: _refusal(r, cfg.scope),
        throttled=lambda _: "throttled (HTTP 429)",
    )  # fmt: skip
    headers = {"Authorization": f"Bearer {token}"}
    send = lambda: session.post(url, json=body, headers=headers, timeout=(CONNECT_TIMEOUT_SECONDS, cfg.timeout_seconds))  # noqa: E731
    return request_json(service, send, cfg.scope, sleep, say, empty_statuses=(204,))


def _columns(payload: dict, scope: str) -> tuple[dict[str, int], list, str | None]:
    """Column positions by name, the rows and the nextLink of one page."""
    props = payload.get("properties")
    if not isinstance(props, dict):
        raise AzureCostError(f"Azure Cost Management response for {scope} has no 'properties' object")
    columns, rows = props.get("columns"), props.get("rows")
    if not isinstance(columns, list):
        raise AzureCostError(f"Azure Cost Management response for {scope} has no 'properties.columns' list")
    if not isinstance(rows, list):
        raise AzureCostError(f"Azure Cost Management response for {scope} has no 'properties.rows' list")
    names = [c.get("name") if isinstance(c, dict) else None for c in columns]
    position = {str(n).lower(): i for i, n in enumerate(names) if n}
    missing = [c for c in REQUIRED_COLUMNS if c.lower() not in position]
    if missing:
        raise AzureCostError(
            f"Azure Cost Management response for {scope} lacks the column(s) {', '.join(missing)} "
            f"(it has: {', '.join(str(n) for n in names) or 'none'})"
        )
    return {c: position[c.lower()] for c in REQUIRED_COLUMNS}, rows, props.get("nextLink") or None


def _usage_date(value, where: str) -> dt.date:
    """UsageDate is an integer yyyymmdd (20260310); a string of either form is read too."""
    try:
        text = str(int(value)) if isinstance(value, int | float) and not isinstance(value, bool) else str(value)
        if re.fullmatch(r"\d{8}", text):
            return dt.datetime.strptime(text, "%Y%m%d").date()
        return dt.date.fromisoformat(text[:10])
    except (ValueError, OverflowError):
        raise AzureCostError(f"{where}: UsageDate {value!r} is not a date") from None


def _same_origin(url: str, endpoint: str) -> bool:
    """Whether `url` is on the endpoint's scheme and host (and port)."""
    a, b = urlsplit(url), urlsplit(endpoint)
    return (a.scheme, a.netloc.lower()) == (b.scheme, b.netloc.lower())


def _fetch_records(
    cfg: AzureSource,
    wanted: set[dt.date],
    cost_type: str,
    token: str,
    session: requests.Session,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
) -> list[tuple]:
    """(day, tag value, service, currency, cost, position) of every received row on a wanted day."""
    records: list[tuple] = []
    position = 0
    for first, last in query_windows(sorted(wanted)):
        body = query_body(cfg, cost_type, first, last)
        url: str | None = query_url(cfg)
        pages = 0
        while url:
            if pages == MAX_PAGES:
                raise AzureCostError(
                    f"Azure Cost Management query for {cfg.scope} did not end after {MAX_PAGES} pages"
                )
            payload = _post(session, url, body, token, cfg, sleep, say)
            pages += 1
            if payload is None:
                say(f"azure {cfg.scope}: {first}..{last} page {pages}: no content")
                break
            col, rows, url = _columns(payload, cfg.scope)
            for row in rows:
                position += 1
                where = f"Azure Cost Management response for {cfg.scope}, row {position}"
                if not isinstance(row, list) or len(row) <= max(col.values()):
                    raise AzureCostError(
                        f"{where}: expected a list with a value for every column, got {row!r:.200}"
                    )
                day = _usage_date(row[col["UsageDate"]], where)
                if day not in wanted:
                    continue
                try:
                    cost = float(row[col[COST]])
                except (TypeError, ValueError):
                    raise AzureCostError(f"{where}: {COST} {row[col[COST]]!r} is not a number") from None
                tag, service, currency = (row[col[c]] for c in (TAG_VALUE, "ServiceName", "Currency"))
                records.append((day, tag, service, currency, cost, position))
            say(f"azure {cfg.scope}: {first}..{last} page {pages}: {len(rows)} row(s)")
            if url and not _same_origin(url, cfg.endpoint):
                # the token goes with every page: never to a host other than the configured endpoint
                raise AzureCostError(
                    f"Azure Cost Management nextLink for {cfg.scope} points to {urlsplit(url).netloc}, "
                    f"not to the configured endpoint {urlsplit(cfg.endpoint).netloc}"
                )
    return records


def _api_rows(
    records: list[tuple], cfg: AzureSource, cost_type: str, today: dt.date, restatement: RestatementConfig
) -> pl.DataFrame:
    """API_ROW_SCHEMA rows, one per (day, tenant tag, service, currency)."""
    if not records:
        return empty_api_rows()
    final = {day: is_final(day, today, restatement) for day in {r[0] for r in records}}
    frame = pl.DataFrame(
        [
            (day_start(day), day_start(day + dt.timedelta(days=1)), tag, service, service_category(service),
             currency, cost, final[day], row)
            for day, tag, service, currency, cost, row in records
        ],
        schema={
            "ChargePeriodStart": pl.Datetime("us"), "ChargePeriodEnd": pl.Datetime("us"), "tag": pl.String,
            "ServiceName": pl.String, "ServiceCategory": pl.String, "BillingCurrency": pl.String,
            "cost": pl.Float64, "x_IsFinal": pl.Boolean, "x_SourceRow": pl.Int64,
        },
        orient="row",
    )  # fmt: skip
    amortized = cost_type == "AmortizedCost"
    amount, other = ("EffectiveCost", "BilledCost") if amortized else ("BilledCost", "EffectiveCost")
    # untagged groups arrive with an empty or a null tag value: both become one group with null Tags
    keys = ["ChargePeriodStart", "ChargePeriodEnd", "Tags", "ServiceName", "ServiceCategory",
            "BillingCurrency", "x_IsFinal"]  # fmt: skip
    grouped = (
        frame.with_columns(tenant_tags(cfg.tag_key, pl.col("tag")).alias("Tags"))
        .group_by(keys, maintain_order=True)
        .agg(pl.col("cost").sum(), pl.col("x_SourceRow").min())
        .sort("x_SourceRow")
    )
    return grouped.with_columns(
        pl.col("cost").alias(amount),
        pl.lit(None, pl.Float64).alias(other),
        pl.lit("Microsoft").alias("ProviderName"),
        pl.lit("Usage").alias("ChargeCategory"),
        pl.lit(subscription_id(cfg.scope), pl.String).alias("SubAccountId"),
        pl.lit(None, pl.String).alias("ResourceId"),
        pl.lit(None, pl.String).alias("RegionId"),
        pl.lit("azure").alias("x_Source"),
        pl.lit(f"azure:{cfg.scope}").alias("x_SourceFile"),
    ).select(list(API_ROW_SCHEMA)).cast(API_ROW_SCHEMA)


def fetch_azure_costs(
    cfg: AzureSource,
    days: list[dt.date],
    *,
    cost_column: str,
    today: dt.date,
    restatement: RestatementConfig,
    session: requests.Session | None = None,
    principal: dg.ConfigurableResource | None = None,
    token_provider: Callable[[], str] | None = None,
    sleep: Callable[[float], None] = time.sleep,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Daily Azure cost of `days` per tenant tag value and ServiceName, as `API_ROW_SCHEMA` rows.

    The amount lands in EffectiveCost for an AmortizedCost query and in BilledCost for ActualCost
    (the other column null); `x_IsFinal` says whether the day is outside the restatement window on
    `today`. Raises `AzureCostError` for refusals, exhausted retries and unreadable responses.
    """
    cost_type = query_type(cfg, cost_column)
    wanted = set(days)
    if not wanted:
        return empty_api_rows()
    say = log or (lambda _line: None)
    token = (token_provider or default_token_provider(cfg, principal or make_resource(None, lambda env: None)))()
    if not token:
        raise AzureCostError(f"the Azure token provider returned no token for {cfg.scope}")
    with session_keeping_secrets(session, AzureCostError, [token]) as http:
        records = _fetch_records(cfg, wanted, cost_type, token, http, sleep, say)
    rows = _api_rows(records, cfg, cost_type, today, restatement)
    say(f"azure {cfg.scope}: {len(records)} row(s) on the requested days, "
        f"{rows.height} API row(s) ({cost_type})")
    return rows


def api_rows(context: ReadContext, cfg: AzureSource, days: list[dt.date]) -> pl.DataFrame:
    if not days:
        return empty_api_rows()
    billing = context.cfg.billing
    principal: dg.ConfigurableResource = context.resource
    return fetch_azure_costs(
        cfg, days, cost_column=context.cfg.cost_column, today=context.today, restatement=billing.restatement,
        session=principal.session(), principal=principal, token_provider=principal.token_provider(cfg), log=context.log,
    )  # fmt: skip


CONNECTOR = api_connector(
    config_model=AzureSource,
    name="azure", config_key="azure", api_rows=api_rows, tag_key=lambda cfg: cfg.tag_key,
    resource_key="azure", make_resource=make_resource,
)  # fmt: skip
