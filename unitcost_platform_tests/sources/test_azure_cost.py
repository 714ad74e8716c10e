"""The Azure Cost Management connector against a local server standing in for management.azure.com.

Bodies have the shape the Query API returns (`properties.columns` / `rows` / `nextLink`, UsageDate
as an integer yyyymmdd, a TagKey grouping as TagKey + TagValue columns, errors as
`{"error": {"code", "message"}}`); every expected figure below is read off those bodies by hand.
"""

import datetime as dt
import json
import sys

import azure.identity
import polars as pl
import pytest
from azure.core.credentials import AccessToken
from azure.core.exceptions import ClientAuthenticationError

from unitcost_platform.config_base import RestatementConfig
from unitcost_platform.contracts.raw_billing import API_ROW_SCHEMA
from unitcost_platform.sources.billing import azure as azure_cost
from unitcost_platform.sources.billing.azure import (
    AzureCostError,
    AzureSource,
    fetch_azure_costs,
    query_windows,
)
from unitcost_platform_tests.helpers import Recorded

SUB = "3f2a9c1e-5b7d-4e08-9a61-0c4d2b7e8f13"
SCOPE = f"/subscriptions/{SUB}"
QUERY_PATH = f"{SCOPE}/providers/Microsoft.CostManagement/query"
API = {"api-version": "2023-11-01"}
TODAY = dt.date(2026, 3, 20)  # default restatement: days from 2026-03-17 on are still open
TOKEN = "eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.FAKE-BEARER-7c1d9e0b.c2lnbmF0dXJl"
SECRET = "Qx8~FAKE-CLIENT-SECRET~k2Zp.91"

COLUMNS = [
    {"name": "Cost", "type": "Number"},
    {"name": "UsageDate", "type": "Number"},
    {"name": "TagKey", "type": "String"},
    {"name": "TagValue", "type": "String"},
    {"name": "ServiceName", "type": "String"},
    {"name": "Currency", "type": "String"},
]


def result(rows, next_link=None, columns=COLUMNS, scope=SCOPE):
    """A Query - Usage 200 body."""
    return {
        "id": f"{scope.lstrip('/')}/providers/Microsoft.CostManagement/query/6dc7b06a-d90a-4df5-b655-ce6cf1c0814d",
        "name": "6dc7b06a-d90a-4df5-b655-ce6cf1c0814d",
        "type": "Microsoft.CostManagement/query",
        "location": None,
        "sku": None,
        "eTag": None,
        "properties": {"nextLink": next_link, "columns": columns, "rows": rows},
    }


def body(first, last, cost_type="AmortizedCost", tag_key="tenant_id"):
    """The request body the connector must send for [first, last]."""
    return {
        "type": cost_type,
        "timeframe": "Custom",
        "timePeriod": {"from": f"{first}T00:00:00Z", "to": f"{last}T23:59:59Z"},
        "dataset": {
            "granularity": "Daily",
            "aggregation": {"totalCost": {"name": "Cost", "function": "Sum"}},
            "grouping": [{"type": "TagKey", "name": tag_key}, {"type": "Dimension", "name": "ServiceName"}],
        },
    }


def throttled(extra_headers=None, **quotas):
    """A 429 as Cost Management sends it, an x-ms-ratelimit retry-after header per quota given."""
    headers = {f"x-ms-ratelimit-microsoft.costmanagement-{quota}-retry-after": str(s) for quota, s in quotas.items()}
    headers |= extra_headers or {}
    return {"response_json": {"error": {"code": "429", "message": "Too many requests. Please retry."}},
            "status": 429, "headers": headers}  # fmt: skip


def source(httpserver, **kw):
    kw.setdefault("scope", SCOPE)
    return AzureSource(endpoint=httpserver.url_for("/").rstrip("/"), max_retries=3, max_wait_seconds=60, **kw)


@pytest.fixture
def run():
    return Recorded(
        fetch_azure_costs, resource=(azure_cost.CONNECTOR, "principal"), cost_column="EffectiveCost", today=TODAY,
        restatement=RestatementConfig(), token_provider=lambda: TOKEN,
    )  # fmt: skip


def sent_bodies(httpserver):
    return [json.loads(request.get_data()) for request, _ in httpserver.log]


def row(day, cost, service, tenant, final, source_row, *, column="EffectiveCost", scope=SCOPE, sub=SUB):
    """One expected API row, spelled out."""
    other = "BilledCost" if column == "EffectiveCost" else "EffectiveCost"
    return {
        "ChargePeriodStart": dt.datetime.combine(day, dt.time()),
        "ChargePeriodEnd": dt.datetime.combine(day + dt.timedelta(days=1), dt.time()),
        column: cost, other: None, "BillingCurrency": "USD", "ProviderName": "Microsoft",
        "ServiceName": service[0], "ServiceCategory": service[1], "ChargeCategory": "Usage",
        "SubAccountId": sub, "ResourceId": None, "RegionId": None,
        "Tags": None if tenant is None else {"tenant_id": tenant},
        "x_IsFinal": final, "x_Source": "azure", "x_SourceFile": f"azure:{scope}", "x_SourceRow": source_row,
    }  # fmt: skip


def rows_of(frame: pl.DataFrame) -> list[dict]:
    """Rows as dicts with Tags decoded, so the JSON spelling of the tag object does not matter."""
    assert frame.schema == pl.Schema(API_ROW_SCHEMA)
    return [r | {"Tags": None if r["Tags"] is None else json.loads(r["Tags"])} for r in frame.to_dicts()]


VM = ("Virtual Machines", "Compute")
STORAGE = ("Storage", "Storage")
BANDWIDTH = ("Bandwidth", "Networking")
POSTGRES = ("Azure Database for PostgreSQL", "Databases")
MAR9, MAR10 = dt.date(2026, 3, 9), dt.date(2026, 3, 10)


def test_two_pages_joined_through_next_link(httpserver, run):
    next_link = httpserver.url_for(QUERY_PATH) + "?api-version=2023-11-01&$skiptoken=AQAAAA%3D%3D"
    page1 = result([
        [12.5, 20260309, "tenant_id", "acme", "Virtual Machines", "USD"],
        [3.25, 20260309, "tenant_id", "globex", "Storage", "USD"],
        [0.75, 20260309, "", "", "Bandwidth", "USD"],
    ], next_link=next_link)  # fmt: skip
    page2 = result([
        [14.0, 20260310, "tenant_id", "acme", "Virtual Machines", "USD"],
        [2.0, 20260310, "tenant_id", "acme", "Azure Database for PostgreSQL", "USD"],
    ])  # fmt: skip
    httpserver.expect_ordered_request(QUERY_PATH, method="POST", query_string=API).respond_with_json(page1)
    httpserver.expect_ordered_request(
        QUERY_PATH, method="POST", query_string={**API, "$skiptoken": "AQAAAA=="}
    ).respond_with_json(page2)

    out = run(source(httpserver), [MAR9, MAR10])

    httpserver.check_assertions()
    assert sent_bodies(httpserver) == [body("2026-03-09", "2026-03-10")] * 2  # page 2 repeats the query
    assert [r.headers["Authorization"] for r, _ in httpserver.log] == [f"Bearer {TOKEN}"] * 2
    assert rows_of(out) == [  # both days are before the open window (2026-03-17 on): final
        row(MAR9, 12.5, VM, "acme", True, 1),
        row(MAR9, 3.25, STORAGE, "globex", True, 2),
        row(MAR9, 0.75, BANDWIDTH, None, True, 3),
        row(MAR10, 14.0, VM, "acme", True, 4),
        row(MAR10, 2.0, POSTGRES, "acme", True, 5),
    ]
    assert any("page 1: 3 row(s)" in line for line in run.lines)
    assert any("page 2: 2 row(s)" in line for line in run.lines)


def test_429_waits_for_the_largest_retry_after_header(httpserver, run):
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        **throttled({"Retry-After": "7"}, qpu=12, entity=30, tenant=5, client=0)
    )
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        result([[4.5, 20260310, "tenant_id", "acme", "Storage", "USD"]])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [30.0]  # entity's 30 s, not qpu's 12, tenant's 5 or Retry-After's 7
    assert rows_of(out) == [row(MAR10, 4.5, STORAGE, "acme", True, 1)]


def test_429_asking_longer_than_allowed_is_an_error(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(**throttled(qpu=10, tenant=300))

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10])

    assert "asked to wait 300s" in str(err.value) and "max_wait_seconds (60s)" in str(err.value)
    assert SCOPE in str(err.value)
    assert run.waits == [] and len(httpserver.log) == 1


def test_429_retries_are_bounded(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(**throttled(qpu=2))

    with pytest.raises(AzureCostError, match=r"still failed after 3 retries: throttled \(HTTP 429\)"):
        run(source(httpserver), [MAR10])

    assert run.waits == [2.0, 2.0, 2.0] and len(httpserver.log) == 4  # max_retries=3: four tries


def test_server_errors_are_retried_with_backoff_then_succeed(httpserver, run):
    error = {"error": {"code": "InternalServerError", "message": "An internal error occurred."}}
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(error, status=500)
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_data("", status=503)
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        result([[1.0, 20260310, "tenant_id", "acme", "Storage", "USD"]])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [1.0, 2.0]  # 1 s, then doubled
    assert out["EffectiveCost"].to_list() == [1.0]


def test_server_errors_exhaust_bounded_retries(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_data("upstream timeout", status=504)

    with pytest.raises(AzureCostError, match="still failed after 2 retries: HTTP 504"):
        run(source(httpserver).model_copy(update={"max_retries": 2}), [MAR10])

    assert run.waits == [1.0, 2.0] and len(httpserver.log) == 3


def test_204_no_content_is_no_rows(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_data("", status=204)

    out = run(source(httpserver), [MAR9, MAR10])

    assert out.height == 0 and out.schema == pl.Schema(API_ROW_SCHEMA)
    assert len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("respond", "missing"),
    [
        ({"response_data": "<html><body>Bad gateway</body></html>", "content_type": "text/html"},
         "not a JSON object"),
        ({"response_json": {"id": "x", "name": "x", "type": "Microsoft.CostManagement/query"}}, "no 'properties' object"),
        ({"response_json": {"properties": {"nextLink": None, "rows": []}}}, "no 'properties.columns' list"),
        ({"response_json": {"properties": {"nextLink": None, "columns": COLUMNS}}}, "no 'properties.rows' list"),
        ({"response_json": result([[1.0, 20260310, "tenant_id", "Storage", "USD"]],
                                  columns=[c for c in COLUMNS if c["name"] != "TagValue"])},
         "lacks the column(s) TagValue (it has: Cost, UsageDate, TagKey, ServiceName, Currency)"),
        ({"response_json": result([[1.0, 20260310, "tenant_id", "acme", "Storage"]])},
         "row 1: expected a list with a value for every column"),
    ],
)  # fmt: skip
def test_malformed_body_names_what_is_missing(httpserver, run, respond, missing):
    handler = httpserver.expect_request(QUERY_PATH, method="POST")
    if "response_json" in respond:
        handler.respond_with_json(respond["response_json"])
    else:
        handler.respond_with_data(respond["response_data"], content_type=respond["content_type"])

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10])

    assert missing in str(err.value) and SCOPE in str(err.value)
    assert len(httpserver.log) == 1  # a malformed answer is not retried


def test_403_carries_azure_error_code_and_message(httpserver, run):
    message = (
        "The client '0c6a3e51-7d2b-4f7e-9a44-2b1d8e5f6a70' with object id '0c6a3e51-7d2b-4f7e-9a44-2b1d8e5f6a70' "
        "does not have authorization to perform action 'Microsoft.CostManagement/query/action' over scope "
        f"'{SCOPE}' or the scope is invalid. If access was recently granted, please refresh your credentials."
    )
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        {"error": {"code": "AuthorizationFailed", "message": message}}, status=403
    )

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert "HTTP 403" in text and "AuthorizationFailed" in text and message in text
    assert "Cost Management Reader" in text
    assert run.waits == [] and len(httpserver.log) == 1  # a refusal is not retried


def test_untagged_rows_have_null_tags(httpserver, run):
    # the service reports an untagged group with empty strings, and sometimes with nulls
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(result([
        [1.5, 20260310, "", "", "Bandwidth", "USD"],
        [0.5, 20260310, None, None, "Bandwidth", "USD"],
        [4.0, 20260310, "tenant_id", "acme", "Bandwidth", "USD"],
    ]))  # fmt: skip

    out = run(source(httpserver), [MAR10])

    assert rows_of(out) == [
        row(MAR10, 1.5 + 0.5, BANDWIDTH, None, True, 1),  # one untagged group, at its first row
        row(MAR10, 4.0, BANDWIDTH, "acme", True, 3),
    ]


def test_rows_outside_the_requested_days_are_dropped(httpserver, run):
    mar12 = dt.date(2026, 3, 12)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(result([
        [9.0, 20260309, "tenant_id", "acme", "Virtual Machines", "USD"],  # before the range
        [1.0, 20260310, "tenant_id", "acme", "Virtual Machines", "USD"],
        [2.0, 20260311, "tenant_id", "acme", "Virtual Machines", "USD"],  # in the range, not asked for
        [3.0, 20260312, "tenant_id", "acme", "Virtual Machines", "USD"],
        [4.0, 20260313, "tenant_id", "acme", "Virtual Machines", "USD"],  # after the range
    ]))  # fmt: skip

    out = run(source(httpserver), [MAR10, mar12])

    assert sent_bodies(httpserver) == [body("2026-03-10", "2026-03-12")]  # one query, min to max
    assert rows_of(out) == [row(MAR10, 1.0, VM, "acme", True, 2), row(mar12, 3.0, VM, "acme", True, 4)]


@pytest.mark.parametrize(
    ("cost_column", "cost_type", "sent_type", "filled"),
    [
        ("EffectiveCost", None, "AmortizedCost", "EffectiveCost"),
        ("BilledCost", None, "ActualCost", "BilledCost"),
        ("EffectiveCost", "ActualCost", "ActualCost", "BilledCost"),  # the configured type wins
        ("BilledCost", "AmortizedCost", "AmortizedCost", "EffectiveCost"),
    ],
)
def test_query_type_chooses_the_cost_column(httpserver, run, cost_column, cost_type, sent_type, filled):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        result([[7.25, 20260310, "tenant_id", "acme", "Virtual Machines", "USD"]])
    )

    out = run(source(httpserver, cost_type=cost_type), [MAR10], cost_column=cost_column)

    assert sent_bodies(httpserver) == [body("2026-03-10", "2026-03-10", cost_type=sent_type)]
    assert rows_of(out) == [row(MAR10, 7.25, VM, "acme", True, 1, column=filled)]


@pytest.mark.parametrize(
    ("today", "finality"),
    [
        # trailing 3 days: on 2026-03-20 the open window starts 2026-03-17
        (TODAY, {dt.date(2026, 3, 15): True, dt.date(2026, 3, 16): True,
                 dt.date(2026, 3, 17): False, dt.date(2026, 3, 19): False}),
        # on 2026-04-03 (before the month closes on the 5th) all of March is still open
        (dt.date(2026, 4, 3), {dt.date(2026, 2, 27): True, dt.date(2026, 2, 28): True,
                               dt.date(2026, 3, 1): False, dt.date(2026, 3, 2): False}),
    ],
)  # fmt: skip
def test_recent_days_are_not_final(httpserver, run, today, finality):
    days = sorted(finality)
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        result([[1.0, int(d.strftime("%Y%m%d")), "tenant_id", "acme", "Storage", "USD"] for d in days])
    )

    out = run(source(httpserver), days, today=today)

    assert dict(zip(out["ChargePeriodStart"].dt.date().to_list(), out["x_IsFinal"].to_list(), strict=True)) == finality


def test_columns_are_found_by_name_not_position(httpserver, run):
    columns = [COLUMNS[i] for i in (5, 4, 3, 1, 2, 0)]  # Currency, ServiceName, TagValue, UsageDate, TagKey, Cost
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        result([["USD", "Storage", "globex", 20260310, "tenant_id", 6.5]], columns=columns)
    )

    out = run(source(httpserver), [MAR10])

    assert rows_of(out) == [row(MAR10, 6.5, STORAGE, "globex", True, 1)]


def test_billing_account_scope_has_no_sub_account(httpserver, run):
    scope = "/providers/Microsoft.Billing/billingAccounts/70664866"
    httpserver.expect_request(f"{scope}/providers/Microsoft.CostManagement/query", method="POST").respond_with_json(
        result([[2.5, 20260310, "tenant_id", "acme", "Storage", "USD"]], scope=scope)
    )

    out = run(source(httpserver, scope=scope), [MAR10])

    assert rows_of(out) == [row(MAR10, 2.5, STORAGE, "acme", True, 1, scope=scope, sub=None)]


def test_a_range_longer_than_a_daily_query_allows_is_split(httpserver, run):
    # a daily query's `from` is cut to a month before `to`: 2026-03-01..04-09 needs two queries
    days = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(40)]
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        result([[1.0, 20260301, "tenant_id", "acme", "Storage", "USD"]])
    )
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        result([[2.0, 20260409, "tenant_id", "acme", "Storage", "USD"]])
    )

    out = run(source(httpserver), days, today=dt.date(2026, 6, 1))

    httpserver.check_assertions()
    assert sent_bodies(httpserver) == [body("2026-03-01", "2026-03-31"), body("2026-04-01", "2026-04-09")]
    assert rows_of(out) == [
        row(dt.date(2026, 3, 1), 1.0, STORAGE, "acme", True, 1),
        row(dt.date(2026, 4, 9), 2.0, STORAGE, "acme", True, 2),  # positions run on across queries
    ]


def test_query_windows():
    d = dt.date
    assert query_windows([d(2026, 3, 12), d(2026, 3, 10)]) == [(d(2026, 3, 10), d(2026, 3, 12))]
    assert query_windows([d(2026, 1, 1), d(2026, 1, 31)]) == [(d(2026, 1, 1), d(2026, 1, 31))]
    # February: a query ending 2026-03-01 may start no earlier than 2026-02-02
    assert query_windows([d(2026, 2, 1), d(2026, 2, 28), d(2026, 3, 1)]) == [
        (d(2026, 2, 1), d(2026, 2, 28)), (d(2026, 3, 1), d(2026, 3, 1))
    ]
    assert query_windows([d(2026, 1, 5), d(2026, 3, 20)]) == [(d(2026, 1, 5), d(2026, 1, 5)), (d(2026, 3, 20), d(2026, 3, 20))]


def test_next_link_to_another_host_is_not_followed(httpserver, run):
    elsewhere = "https://management.example.net/subscriptions/x/providers/Microsoft.CostManagement/query?$skiptoken=AQ"
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(
        result([[1.0, 20260310, "tenant_id", "acme", "Storage", "USD"]], next_link=elsewhere)
    )

    with pytest.raises(AzureCostError, match="points to management.example.net"):
        run(source(httpserver), [MAR10])

    assert len(httpserver.log) == 1


def test_no_days_makes_no_request(httpserver, run):
    def no_token():
        raise AssertionError("no token is needed for no days")

    out = run(source(httpserver), [], token_provider=no_token)

    assert out.height == 0 and out.schema == pl.Schema(API_ROW_SCHEMA) and len(httpserver.log) == 0


# --- secrets ------------------------------------------------------------------------------------


def test_token_never_in_errors_logs_or_rows(httpserver, run):
    # a throttle, a success, then a second fetch whose refusal echoes the token back
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(**throttled(qpu=1))
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        result([[1.0, 20260310, "tenant_id", "acme", "Storage", "USD"]])
    )
    httpserver.expect_ordered_request(QUERY_PATH, method="POST").respond_with_json(
        {"error": {"code": "InvalidAuthenticationToken", "message": f"The access token is invalid: Bearer {TOKEN}"}},
        status=401,
    )
    cfg = source(httpserver)

    out = run(cfg, [MAR10])
    with pytest.raises(AzureCostError) as err:
        run(cfg, [MAR10])

    assert "InvalidAuthenticationToken" in str(err.value) and "HTTP 401" in str(err.value)
    assert TOKEN not in str(err.value) and "FAKE-BEARER" not in str(err.value)
    assert run.lines and not any("FAKE-BEARER" in line for line in run.lines)
    cells = [v for r in out.to_dicts() for v in r.values() if isinstance(v, str)]
    assert not any("FAKE-BEARER" in c for c in cells)


@pytest.fixture
def principal(monkeypatch):
    """The default provider's env vars, with a stand-in for azure-identity's credential."""
    monkeypatch.setenv("AZURE_TENANT_ID", "72f988bf-86f1-41af-91ab-2d7cd011db47")
    monkeypatch.setenv("AZURE_CLIENT_ID", "0c6a3e51-7d2b-4f7e-9a44-2b1d8e5f6a70")
    monkeypatch.setenv("AZURE_CLIENT_SECRET", SECRET)
    seen: dict = {}

    class FakeCredential:
        def __init__(self, tenant_id, client_id, client_secret):
            seen["args"] = (tenant_id, client_id, client_secret)

        def get_token(self, *scopes):
            seen["scopes"] = scopes
            if seen.get("fail"):
                raise ClientAuthenticationError(
                    message=f"AADSTS7000215: Invalid client secret provided ({SECRET}).\nTrace ID: 1f7c"
                )
            return AccessToken(TOKEN, 4_102_444_800)

    monkeypatch.setattr(azure.identity, "ClientSecretCredential", FakeCredential)
    return seen


def test_default_provider_uses_the_service_principal(httpserver, run, principal):
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(result([]))

    out = run(source(httpserver), [MAR10], token_provider=None)

    assert out.height == 0
    assert principal["args"] == ("72f988bf-86f1-41af-91ab-2d7cd011db47", "0c6a3e51-7d2b-4f7e-9a44-2b1d8e5f6a70", SECRET)
    assert principal["scopes"] == ("https://management.azure.com/.default",)
    assert httpserver.log[0][0].headers["Authorization"] == f"Bearer {TOKEN}"


def test_default_provider_hides_the_secret_when_azure_rejects_it(httpserver, run, principal):
    principal["fail"] = True

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10], token_provider=None)

    assert "AADSTS7000215" in str(err.value) and "AZURE_CLIENT_ID" in str(err.value)
    assert SECRET not in str(err.value) and "FAKE-CLIENT-SECRET" not in str(err.value)
    assert not any("FAKE-CLIENT-SECRET" in line for line in run.lines) and len(httpserver.log) == 0


def test_default_provider_names_a_missing_env_var_not_the_values(httpserver, run, principal, monkeypatch):
    monkeypatch.delenv("AZURE_CLIENT_SECRET")
    monkeypatch.setenv("AZURE_CLIENT_ID", "client-id-VALUE-not-to-show")

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10], token_provider=None)

    assert "environment variable AZURE_CLIENT_SECRET is not set" in str(err.value)
    assert "VALUE-not-to-show" not in str(err.value) and "72f988bf" not in str(err.value)
    assert len(httpserver.log) == 0


def test_default_provider_with_renamed_env_vars(httpserver, run, principal, monkeypatch):
    monkeypatch.setenv("BILLING_SP_SECRET", SECRET)
    cfg = source(httpserver, client_secret_env="BILLING_SP_SECRET", tenant_id_env="BILLING_SP_TENANT")

    with pytest.raises(AzureCostError, match="environment variable BILLING_SP_TENANT is not set"):
        run(cfg, [MAR10], token_provider=None)


def test_default_provider_without_azure_identity(httpserver, run, principal, monkeypatch):
    monkeypatch.setitem(sys.modules, "azure.identity", None)  # makes `import azure.identity` fail

    with pytest.raises(AzureCostError) as err:
        run(source(httpserver), [MAR10], token_provider=None)

    assert "pip install 'unitcost_platform[azure]'" in str(err.value)
    assert SECRET not in str(err.value) and len(httpserver.log) == 0
