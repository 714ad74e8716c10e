"""The New Relic usage connector against a local server standing in for NerdGraph.

Bodies have the shape NerdGraph returns for `actor.account.nrql.results` of a faceted NRQL query
(each result an object with `facet`, the facet attribute and the selected aggregate, e.g.
`sum.requests`), errors as HTTP 200 with a GraphQL `errors` list (`message`, `extensions.errorClass`,
`path`); every expected figure below is read off those bodies by hand.
"""

import datetime as dt
from functools import partial

import polars as pl
import pytest
import requests

from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.sources.usage import newrelic
from unitcost_platform.sources.usage.newrelic import (
    NewRelicError,
    NewRelicMetric,
    NewRelicSource,
    facet_attribute,
    fetch_newrelic,
)
from unitcost_platform_tests.helpers import Recorded, usage_row, usage_rows

PATH = "/graphql"
API_KEY = "NRAK-FAKE7Q2W9E4R6T8Y0U1I3O5P7A9"
ACCOUNT = 3141592
MAR9, MAR10 = dt.date(2026, 3, 9), dt.date(2026, 3, 10)
# 00:00 UTC in epoch milliseconds: 2026-03-09, 2026-03-10, 2026-03-11
MAR9_MS, MAR10_MS, MAR11_MS = 1773014400000, 1773100800000, 1773187200000
GRAPHQL = "query($accountId: Int!, $nrql: Nrql!) { actor { account(id: $accountId) { nrql(query: $nrql) { results } } } }"

REQUESTS = NewRelicMetric(
    metric="requests", nrql="SELECT sum(requests) FROM TenantUsage WHERE env = 'prod'", service_name="api"
)
USERS = NewRelicMetric(metric="active_users", nrql="SELECT uniqueCount(userId) FROM PageView")


def body(nrql: str) -> dict:
    """The GraphQL request the connector must send for one full NRQL string."""
    return {"query": GRAPHQL, "variables": {"accountId": ACCOUNT, "nrql": nrql}}


def answer(results):
    """A NerdGraph 200 body."""
    return {"data": {"actor": {"account": {"nrql": {"results": results}}}}}


def result(tenant, key, value, attribute="tenant_id"):
    """A faceted result row: the facet, the facet attribute and the aggregate."""
    return {"facet": tenant, attribute: tenant, key: value}


def graphql_error(message, error_class=None, path=("actor", "account", "nrql"), **extensions):
    error = {"message": message, "locations": [{"line": 1, "column": 42}], "path": list(path)}
    if error_class or extensions:
        error["extensions"] = ({"errorClass": error_class} if error_class else {}) | extensions
    return error


def source(httpserver, metrics=(REQUESTS,), **kw):
    return NewRelicSource(
        account_id=ACCOUNT, url=httpserver.url_for(PATH), metrics=list(metrics), max_retries=3, max_wait_seconds=60, **kw
    )


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setenv("NEW_RELIC_API_KEY", API_KEY)
    return Recorded(fetch_newrelic, resource=(newrelic.CONNECTOR, "keys"))


row = partial(usage_row, source="newrelic")
rows_of = usage_rows


def test_two_metrics_over_two_days(httpserver, run):
    base = "SELECT sum(requests) FROM TenantUsage WHERE env = 'prod' FACET tenant_id"
    headers = {"API-Key": API_KEY}
    expect = httpserver.expect_ordered_request
    expect(PATH, method="POST", headers=headers, json=body(f"{base} SINCE {MAR9_MS} UNTIL {MAR10_MS} LIMIT MAX")
           ).respond_with_json(answer([
        result("acme", "sum.requests", 1200.0),
        result("globex", "sum.requests", 310.5),
        result(None, "sum.requests", 44.0),  # events without tenant_id: skipped
    ]))  # fmt: skip
    expect(PATH, method="POST", headers=headers, json=body(f"{base} SINCE {MAR10_MS} UNTIL {MAR11_MS} LIMIT MAX")
           ).respond_with_json(answer([
        result("acme", "sum.requests", 1500.0),
        result("initech", "sum.requests", None),  # no value: skipped
        result("globex", "sum.requests", 290.0),
    ]))  # fmt: skip
    users = "SELECT uniqueCount(userId) FROM PageView FACET tenant_id"
    expect(PATH, method="POST", headers=headers, json=body(f"{users} SINCE {MAR9_MS} UNTIL {MAR10_MS} LIMIT MAX")
           ).respond_with_json(answer([result("acme", "uniqueCount.userId", 17)]))  # fmt: skip
    expect(PATH, method="POST", headers=headers, json=body(f"{users} SINCE {MAR10_MS} UNTIL {MAR11_MS} LIMIT MAX")
           ).respond_with_json(answer([]))  # fmt: skip

    out = run(source(httpserver, metrics=(REQUESTS, USERS)), [MAR10, MAR9])

    httpserver.check_assertions()
    assert rows_of(out) == [
        row(MAR9, "acme", "api", "requests", 1200.0),
        row(MAR9, "acme", None, "active_users", 17.0),
        row(MAR9, "globex", "api", "requests", 310.5),
        row(MAR10, "acme", "api", "requests", 1500.0),
        row(MAR10, "globex", "api", "requests", 290.0),
    ]
    skipped = [line for line in run.lines if "skipped 1 result(s) with a null tenant_id or value" in line]
    assert len(skipped) == 2 and "2026-03-09" in skipped[0] and "2026-03-10" in skipped[1]
    assert run.waits == []


def test_an_attribute_that_needs_quoting_is_backquoted(httpserver, run):
    nrql = f"SELECT sum(requests) FROM TenantUsage WHERE env = 'prod' FACET `tenant.id` SINCE {MAR10_MS} UNTIL {MAR11_MS} LIMIT MAX"
    httpserver.expect_request(PATH, method="POST", json=body(nrql)).respond_with_json(
        answer([result("acme", "sum.requests", 8.0, attribute="tenant.id")])
    )

    out = run(source(httpserver, tenant_attribute="tenant.id"), [MAR10])

    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 8.0)]


def test_facet_attribute():
    assert facet_attribute("tenant_id") == "tenant_id"
    assert facet_attribute("tenantId") == "tenantId"
    assert facet_attribute("tenant.id") == "`tenant.id`"
    assert facet_attribute("customer-id") == "`customer-id`"
    assert facet_attribute("since") == "`since`"  # a keyword
    with pytest.raises(NewRelicError, match="without a backquote"):
        facet_attribute("a`b")


def test_numeric_facets_become_text(httpserver, run):
    httpserver.expect_request(PATH, method="POST").respond_with_json(answer([result(1042, "count", 3)]))

    out = run(source(httpserver), [MAR10])

    assert rows_of(out) == [row(MAR10, "1042", "api", "requests", 3.0)]


def test_429_waits_as_retry_after_asks_then_succeeds(httpserver, run):
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"errors": [{"message": "Too many requests"}]}, status=429, headers={"Retry-After": "7"}
    )
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        answer([result("acme", "sum.requests", 5.0)])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [7.0]
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 5.0)]


def test_429_asking_longer_than_allowed_is_an_error(httpserver, run):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"errors": [{"message": "Too many requests"}]}, status=429, headers={"Retry-After": "600"}
    )

    with pytest.raises(NewRelicError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert "asked to wait 600s" in text and "max_wait_seconds (60s)" in text and "'requests' on 2026-03-10" in text
    assert run.waits == [] and len(httpserver.log) == 1


def test_429_retries_are_bounded(httpserver, run):
    httpserver.expect_request(PATH, method="POST").respond_with_data("", status=429, headers={"Retry-After": "3"})

    with pytest.raises(NewRelicError, match=r"still failed after 3 retries: rate limited \(HTTP 429\)"):
        run(source(httpserver), [MAR10])

    assert run.waits == [3.0, 3.0, 3.0] and len(httpserver.log) == 4


def test_server_errors_are_retried_with_backoff_then_succeed(httpserver, run):
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("<html>502 Bad Gateway</html>", status=502)
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("", status=503)
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        answer([result("acme", "sum.requests", 2.0)])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [1.0, 2.0]  # 1 s, then doubled
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 2.0)]


def test_connection_failures_are_retried_and_not_quoted(httpserver, run):
    class FlakySession(requests.Session):
        """Fails the first request the way a timeout does, with the key in the text."""

        calls = 0

        def post(self, *args, **kw):
            FlakySession.calls += 1
            if FlakySession.calls == 1:
                raise requests.ReadTimeout(f"Read timed out (API-Key: {API_KEY})")
            return super().post(*args, **kw)

    httpserver.expect_request(PATH, method="POST").respond_with_json(answer([result("acme", "sum.requests", 3.0)]))

    out = run(source(httpserver), [MAR10], session=FlakySession())

    assert run.waits == [1.0] and len(httpserver.log) == 1
    assert any("request failed (ReadTimeout)" in line for line in run.lines)
    assert not any("FAKE" in line for line in run.lines)
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 3.0)]


@pytest.mark.parametrize(
    ("payload", "expected"),
    [
        ({"data": {"actor": {"account": {"nrql": None}}},
          "errors": [graphql_error("NRQL Syntax Error: Error at line 1 position 8, unexpected 'FORM'", "INVALID_INPUT")]},
         ["NRQL Syntax Error: Error at line 1 position 8, unexpected 'FORM' (INVALID_INPUT)",
          "check the nrql in usage.newrelic.metrics"]),
        ({"data": {"actor": {"account": None}},
          "errors": [graphql_error(f"Account {ACCOUNT} not found or not authorized", "FORBIDDEN",
                                   path=("actor", "account"))]},
         [f"Account {ACCOUNT} not found or not authorized (FORBIDDEN)",
          f"check that NEW_RELIC_API_KEY holds a user API key (NRAK-...) with access to account {ACCOUNT}"]),
        ({"data": None, "errors": [graphql_error("Invalid API key", path=(), error_code="BAD_API_KEY")]},
         ["Invalid API key (BAD_API_KEY)", "NEW_RELIC_API_KEY"]),
        # errors beside data are still errors: the results may be partial
        ({"data": {"actor": {"account": {"nrql": {"results": [result("acme", "sum.requests", 1.0)]}}}},
          "errors": [graphql_error("NRDB query timed out", "TIMEOUT"), graphql_error("second problem")]},
         ["NRDB query timed out (TIMEOUT); second problem"]),
    ],
)  # fmt: skip
def test_graphql_errors_on_http_200_are_errors(httpserver, run, payload, expected):
    httpserver.expect_request(PATH, method="POST").respond_with_json(payload)

    with pytest.raises(NewRelicError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert "NerdGraph reported an error for usage metric 'requests' on 2026-03-10" in text
    assert all(part in text for part in expected), text
    assert run.waits == [] and len(httpserver.log) == 1  # an answered error is not retried


@pytest.mark.parametrize("status", [401, 403])
def test_auth_refusals_say_what_to_check(httpserver, run, status):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        {"errors": [graphql_error("Invalid API key", path=(), error_code="BAD_API_KEY")]}, status=status
    )

    with pytest.raises(NewRelicError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert f"HTTP {status} Invalid API key (BAD_API_KEY)" in text
    assert "NEW_RELIC_API_KEY" in text and "https://api.eu.newrelic.com/graphql" in text
    assert run.waits == [] and len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("respond", "problem"),
    [
        ({"response_data": "<html><body>Bad gateway</body></html>", "content_type": "text/html"},
         "a body that is not a JSON object"),
        ({"response_json": {"data": None}}, "has no data.actor.account.nrql.results list"),
        ({"response_json": {"data": {"actor": {"account": {"nrql": {"results": None}}}}}},
         "has no data.actor.account.nrql.results list"),
        ({"response_json": answer(["acme"])}, "result 1 is not an object"),
        ({"response_json": answer([{"tenant_id": "acme", "sum.requests": 1.0}])}, "result 1 has no 'facet'"),
        ({"response_json": answer([{"facet": "acme", "tenant_id": "acme", "sum.requests": 1.0, "count": 4}])},
         "result 1 has several aggregates: sum.requests, count; select exactly one aggregate"),
        ({"response_json": answer([{"facet": "acme", "tenant_id": "acme"}])}, "result 1 has no aggregate"),
        ({"response_json": answer([result("acme", "sum.requests", 1.0), result("globex", "latest.plan", "gold")])},
         "result 2 latest.plan 'gold' is not a number"),
        ({"response_json": answer([{"facet": ["acme", "eu"], "tenant_id": "acme", "sum.requests": 1.0}])},
         "result 1 facet ['acme', 'eu'] is not a single value"),
    ],
)  # fmt: skip
def test_malformed_body_is_a_clear_error(httpserver, run, respond, problem):
    handler = httpserver.expect_request(PATH, method="POST")
    if "response_json" in respond:
        handler.respond_with_json(respond["response_json"])
    else:
        handler.respond_with_data(respond["response_data"], content_type=respond["content_type"])

    with pytest.raises(NewRelicError) as err:
        run(source(httpserver), [MAR10])

    assert problem in str(err.value) and "'requests' on 2026-03-10" in str(err.value)
    assert len(httpserver.log) == 1  # a malformed answer is not retried


def test_results_at_the_facet_limit_are_an_error(httpserver, run):
    httpserver.expect_request(PATH, method="POST").respond_with_json(
        answer([result(f"tenant-{i}", "sum.requests", 1.0) for i in range(5000)])
    )

    with pytest.raises(NewRelicError, match="returned 5000 results .* some tenants may be missing"):
        run(source(httpserver), [MAR10])


@pytest.mark.parametrize(
    "nrql", ["SELECT sum(requests) FROM TenantUsage FACET tenant_id", "SELECT count(*) FROM Transaction since 1 day ago"]
)
def test_nrql_with_a_clause_the_connector_adds_is_refused(httpserver, run, nrql):
    cfg = source(httpserver, metrics=(NewRelicMetric(metric="requests", nrql=nrql),))

    with pytest.raises(NewRelicError, match="remove (FACET|SINCE) from its nrql"):
        run(cfg, [MAR10])

    assert len(httpserver.log) == 0


def test_clause_words_inside_quotes_are_not_clauses(httpserver, run):
    nrql = "SELECT count(*) FROM Transaction WHERE name = 'limit since facet'"
    httpserver.expect_request(PATH, method="POST").respond_with_json(answer([result("acme", "count", 4)]))

    out = run(source(httpserver, metrics=(NewRelicMetric(metric="requests", nrql=nrql),)), [MAR10])

    assert rows_of(out) == [row(MAR10, "acme", None, "requests", 4.0)]


def test_no_days_makes_no_request(httpserver, run):
    out = run(source(httpserver), [])

    assert out.height == 0 and out.schema == pl.Schema(USAGE_SCHEMA) and len(httpserver.log) == 0


# --- secrets ------------------------------------------------------------------------------------


def test_key_never_in_errors_logs_or_rows(httpserver, run):
    # a throttle, a success, then a second fetch whose GraphQL error echoes the key back
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_data("", status=429, headers={"Retry-After": "1"})
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        answer([result("acme", "sum.requests", 1.0)])
    )
    httpserver.expect_ordered_request(PATH, method="POST").respond_with_json(
        {"errors": [graphql_error(f"Invalid API key: {API_KEY}", path=(), error_code="BAD_API_KEY")]}
    )
    cfg = source(httpserver)

    out = run(cfg, [MAR10])
    with pytest.raises(NewRelicError) as err:
        run(cfg, [MAR10])

    httpserver.check_assertions()
    assert [r.headers["API-Key"] for r, _ in httpserver.log] == [API_KEY] * 3  # sent where it belongs
    assert "BAD_API_KEY" in str(err.value) and "FAKE" not in str(err.value)
    assert run.lines and not any("FAKE" in line for line in run.lines)
    cells = [v for r in out.to_dicts() for v in r.values() if isinstance(v, str)]
    assert not any("FAKE" in c for c in cells)


def test_a_missing_key_names_the_variable(httpserver, run, monkeypatch):
    monkeypatch.delenv("NEW_RELIC_API_KEY")

    with pytest.raises(NewRelicError) as err:
        run(source(httpserver), [MAR10])

    assert "environment variable NEW_RELIC_API_KEY is not set" in str(err.value) and len(httpserver.log) == 0


def test_a_renamed_key_variable_is_read(httpserver, run, monkeypatch):
    monkeypatch.setenv("USAGE_NR_KEY", "NRAK-FAKE-renamed")
    httpserver.expect_request(PATH, method="POST").respond_with_json(answer([]))

    out = run(source(httpserver, api_key_env="USAGE_NR_KEY"), [MAR10])

    assert httpserver.log[0][0].headers["API-Key"] == "NRAK-FAKE-renamed"
    assert out.height == 0 and out.schema == pl.Schema(USAGE_SCHEMA)
