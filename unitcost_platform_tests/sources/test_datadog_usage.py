"""The Datadog usage connector against a local server standing in for api.datadoghq.com.

Bodies have the shape `GET /api/v1/query` returns (`status`, `res_type`, `series` of `metric`,
`tag_set`, `scope`, `pointlist` of [milliseconds, value or null], `from_date`/`to_date` in
milliseconds), errors as `{"errors": [...]}` or `{"status": "error", "error": ...}`, throttling as a
429 with the X-RateLimit-* headers; every expected figure below is read off those bodies by hand.
"""

import datetime as dt
from functools import partial

import polars as pl
import pytest
import requests

from unitcost_platform.config import UnitcostConfig, UsageConfig
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.loaders import load_usage
from unitcost_platform.sources.usage import datadog
from unitcost_platform.sources.usage.datadog import (
    DatadogError,
    DatadogMetric,
    DatadogSource,
    fetch_datadog,
    query_window,
    tenant_of,
)
from unitcost_platform_tests.helpers import Recorded, usage_row, usage_rows, wired

QUERY_PATH = "/api/v1/query"
API_KEY = "dd-api-FAKE-7f3e9a1c2b4d6e8f0a1b2c3d4e5f6a7b"
APP_KEY = "dd-app-FAKE-0c5e8b2a9d71f3e4c6b8a0d2e4f6a8b0c2d4e6f8"
MAR8, MAR9, MAR10, MAR11 = (dt.date(2026, 3, d) for d in (8, 9, 10, 11))
# 00:00 UTC of each day, in milliseconds since the epoch (2026-03-09T00:00:00Z = 1773014400 s)
MAR8_MS, MAR9_MS, MAR10_MS, MAR11_MS = 1772928000000, 1773014400000, 1773100800000, 1773187200000
HOUR_MS = 3_600_000
# from = 2026-03-09T00:00:00Z, to = 2026-03-10T23:59:59Z
FROM_MAR9, TO_MAR10 = "1773014400", "1773187199"

REQUESTS = DatadogMetric(
    metric="requests", query="sum:app.requests{env:prod} by {tenant_id}.rollup(sum, 86400)", service_name="api"
)
STORAGE = DatadogMetric(metric="storage_gb_hours", query="sum:app.storage.gb{*} by {tenant_id}.rollup(sum, 3600)")


def series(tags, points, *, scope=None, metric="app.requests", interval=86400):
    """One entry of `series` as /api/v1/query returns it."""
    return {
        "aggr": "sum", "display_name": metric, "end": 1773187199000, "expression": f"sum:{metric}{{{','.join(tags)}}}",
        "interval": interval, "length": len(points), "metric": metric, "pointlist": points, "query_index": 0,
        "scope": ",".join(tags) if scope is None else scope, "start": 1773014400000, "tag_set": tags, "unit": None,
    }  # fmt: skip


def answer(series_list, query=REQUESTS.query, from_s=FROM_MAR9, to_s=TO_MAR10):
    """A 200 body of /api/v1/query."""
    return {
        "status": "ok", "res_type": "time_series", "resp_version": 1, "query": query, "message": "", "error": "",
        "from_date": int(from_s) * 1000, "to_date": int(to_s) * 1000, "group_by": ["tenant_id"],
        "series": series_list, "times": [], "values": [],
    }  # fmt: skip


def params(metric, from_s=FROM_MAR9, to_s=TO_MAR10):
    return {"from": from_s, "to": to_s, "query": metric.query}


RATE_LIMIT_BODY = {"errors": ["Rate limit of 1600 requests in 3600 seconds reached. Please try again later."]}


def throttled(reset=None, retry_after=None):
    """A 429 as Datadog sends it, with its rate-limit headers."""
    headers = {"X-RateLimit-Limit": "1600", "X-RateLimit-Period": "3600", "X-RateLimit-Remaining": "0",
               "X-RateLimit-Name": "query_metrics"}  # fmt: skip
    if reset is not None:
        headers["X-RateLimit-Reset"] = str(reset)
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    return {"response_json": RATE_LIMIT_BODY, "status": 429, "headers": headers}


def source(httpserver, metrics=(REQUESTS,), **kw):
    return DatadogSource(
        url=httpserver.url_for("/").rstrip("/"), metrics=list(metrics), max_retries=3, max_wait_seconds=60, **kw
    )


@pytest.fixture
def run(monkeypatch):
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    return Recorded(fetch_datadog, resource=(datadog.CONNECTOR, "keys"))


row = partial(usage_row, source="datadog")
rows_of = usage_rows


def test_two_metrics_over_two_days(httpserver, run):
    keys = {"DD-API-KEY": API_KEY, "DD-APPLICATION-KEY": APP_KEY}
    httpserver.expect_ordered_request(
        QUERY_PATH, method="GET", query_string=params(REQUESTS), headers=keys
    ).respond_with_json(answer([
        series(["tenant_id:acme", "env:prod"], [[float(MAR9_MS), 120.0], [float(MAR10_MS), 80.0],
                                                [float(MAR11_MS), 7.0]]),  # 03-11: not asked for
        series(["tenant_id:acme", "env:staging"], [[float(MAR10_MS), 5.0]]),  # a second acme group
        series(["tenant_id:globex", "env:prod"], [[float(MAR9_MS), None], [float(MAR10_MS), 42.5]]),
        series([], [[float(MAR9_MS), 3.0]], scope="tenant_id:initech,env:prod"),  # tenant only in scope
        series(["env:prod"], [[float(MAR9_MS), 1000.0]]),  # not grouped by tenant: skipped
    ]))  # fmt: skip
    httpserver.expect_ordered_request(
        QUERY_PATH, method="GET", query_string=params(STORAGE), headers=keys
    ).respond_with_json(answer([
        # an hourly rollup: the hours of a day add up
        series(["tenant_id:acme"], [[float(MAR9_MS), 1.5], [float(MAR9_MS + HOUR_MS), 2.25],
                                    [float(MAR10_MS + 23 * HOUR_MS), 4.0]], metric="app.storage.gb", interval=3600),
        series(["tenant_id:N/A"], [[float(MAR9_MS), 10.0]], metric="app.storage.gb", interval=3600),
    ], query=STORAGE.query))  # fmt: skip

    out = run(source(httpserver, metrics=(REQUESTS, STORAGE)), [MAR10, MAR9])

    httpserver.check_assertions()
    assert rows_of(out) == [
        row(MAR9, "acme", "api", "requests", 120.0),
        row(MAR9, "acme", None, "storage_gb_hours", 1.5 + 2.25),
        row(MAR9, "initech", "api", "requests", 3.0),
        row(MAR10, "acme", "api", "requests", 80.0 + 5.0),
        row(MAR10, "acme", None, "storage_gb_hours", 4.0),
        row(MAR10, "globex", "api", "requests", 42.5),  # its 03-09 point is null: no row that day
    ]
    assert any("requests: skipped 1 series without a tenant_id tag" in line for line in run.lines)
    assert any("storage_gb_hours: skipped 1 series without a tenant_id tag" in line for line in run.lines)
    assert run.waits == []


def test_days_between_requested_ones_are_dropped(httpserver, run):
    # one query from 03-09 00:00 to 03-11 23:59:59; 03-10 lies inside but was not asked for
    httpserver.expect_request(
        QUERY_PATH, method="GET", query_string=params(REQUESTS, FROM_MAR9, "1773273599")
    ).respond_with_json(answer([
        series(["tenant_id:acme"], [[float(MAR8_MS), 9.0], [float(MAR9_MS), 1.0], [float(MAR10_MS), 2.0],
                                    [float(MAR11_MS), 3.0]]),
    ], to_s="1773273599"))  # fmt: skip

    out = run(source(httpserver), [MAR9, MAR11])

    assert len(httpserver.log) == 1
    assert rows_of(out) == [row(MAR9, "acme", "api", "requests", 1.0), row(MAR11, "acme", "api", "requests", 3.0)]


def test_query_window():
    assert query_window([MAR10]) == (1773100800, 1773187199)
    assert query_window([MAR11, MAR9]) == (1773014400, 1773273599)


def test_tenant_of():
    assert tenant_of({"tag_set": ["env:prod", "tenant_id:acme"], "scope": "env:prod,tenant_id:acme"}, "tenant_id") == "acme"
    assert tenant_of({"tag_set": [], "scope": "tenant_id:globex,env:prod"}, "tenant_id") == "globex"
    assert tenant_of({"tag_set": ["customer:a:b"]}, "customer") == "a:b"  # a value may hold colons
    assert tenant_of({"tag_set": ["tenant_idx:acme"], "scope": "*"}, "tenant_id") is None
    assert tenant_of({"tag_set": ["tenant_id:n/a"]}, "tenant_id") is None


@pytest.mark.parametrize(
    ("headers", "wait"),
    [({"reset": 17}, 17.0), ({"retry_after": 9}, 9.0), ({"reset": 4, "retry_after": 11}, 11.0)],
)
def test_429_waits_as_the_headers_ask_then_succeeds(httpserver, run, headers, wait):
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(**throttled(**headers))
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(
        answer([series(["tenant_id:acme"], [[float(MAR10_MS), 6.0]])])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [wait]
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 6.0)]
    assert any("rate limited (HTTP 429" in line and f"in {wait:g}s" in line for line in run.lines)


def test_429_asking_longer_than_allowed_is_an_error(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(**throttled(reset=2400))

    with pytest.raises(DatadogError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert "asked to wait 2400s" in text and "max_wait_seconds (60s)" in text and "'requests'" in text
    assert "Rate limit of 1600 requests in 3600 seconds reached" in text
    assert run.waits == [] and len(httpserver.log) == 1


def test_429_retries_are_bounded(httpserver, run):
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(**throttled(reset=2))

    with pytest.raises(DatadogError, match=r"still failed after 3 retries: rate limited \(HTTP 429"):
        run(source(httpserver), [MAR10])

    assert run.waits == [2.0, 2.0, 2.0] and len(httpserver.log) == 4  # max_retries=3: four tries


def test_server_errors_are_retried_with_backoff_then_succeed(httpserver, run):
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(
        {"errors": ["Internal Server Error"]}, status=500
    )
    # the window's reset time rides on every response: after a 5xx it is not a reason to wait
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_data(
        "<html>503 Service Unavailable</html>", status=503, headers={"X-RateLimit-Reset": "3000"}
    )
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(
        answer([series(["tenant_id:acme"], [[float(MAR10_MS), 2.0]])])
    )

    out = run(source(httpserver), [MAR10])

    httpserver.check_assertions()
    assert run.waits == [1.0, 2.0]  # 1 s, then doubled
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 2.0)]


def test_connection_failures_are_retried_and_not_quoted(httpserver, run):
    class FlakySession(requests.Session):
        """Fails the first request the way a dropped connection does, with a key in the text."""

        calls = 0

        def get(self, *args, **kw):
            FlakySession.calls += 1
            if FlakySession.calls == 1:
                raise requests.ConnectionError(f"Connection aborted (headers DD-API-KEY: {API_KEY})")
            return super().get(*args, **kw)

    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(
        answer([series(["tenant_id:acme"], [[float(MAR10_MS), 3.0]])])
    )

    out = run(source(httpserver), [MAR10], session=FlakySession())

    assert run.waits == [1.0] and len(httpserver.log) == 1
    assert any("request failed (ConnectionError)" in line for line in run.lines)
    assert not any("FAKE" in line for line in run.lines)
    assert rows_of(out) == [row(MAR10, "acme", "api", "requests", 3.0)]


def test_error_status_in_the_body_is_an_error(httpserver, run):
    message = "Error parsing query: unable to parse sum:app.requests{env:prod} by {tenant_id.rollup(sum, 86400)"
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(
        {**answer([]), "status": "error", "error": message}
    )

    with pytest.raises(DatadogError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert message in text and "'requests'" in text and "check the query in usage.datadog.metrics" in text
    assert run.waits == [] and len(httpserver.log) == 1


@pytest.mark.parametrize(
    ("status", "errors", "hint"),
    [
        (403, ["Forbidden"], "check that DD_API_KEY holds an API key and DD_APP_KEY an application key"),
        (400, ["Error parsing query: Rule 'scope_expr' didn't match at 'tenant_id.rollup'"],
         "check the query in usage.datadog.metrics"),
        (404, ["Not found"], "check usage.datadog.site / url"),
    ],
)  # fmt: skip
def test_refusals_carry_datadog_message_and_what_to_check(httpserver, run, status, errors, hint):
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json({"errors": errors}, status=status)

    with pytest.raises(DatadogError) as err:
        run(source(httpserver), [MAR10])

    text = str(err.value)
    assert f"HTTP {status} {errors[0]}" in text and hint in text and "'requests'" in text
    assert run.waits == [] and len(httpserver.log) == 1  # a refusal is not retried


@pytest.mark.parametrize(
    ("respond", "problem"),
    [
        ({"response_data": "<html><body>Bad gateway</body></html>", "content_type": "text/html"},
         "a body that is not a JSON object"),
        ({"response_json": {"status": "ok", "res_type": "time_series"}}, "has no 'series' list"),
        ({"response_json": answer([{"metric": "app.requests", "tag_set": ["tenant_id:acme"]}])},
         "series 1 has no 'pointlist' list"),
        ({"response_json": answer([series(["tenant_id:acme"], [[float(MAR10_MS)]])])},
         "series 1 point 1: expected [timestamp ms, value]"),
        ({"response_json": answer([series(["tenant_id:acme"], [[float(MAR10_MS), 1.0], [float(MAR10_MS), "12"]])])},
         "series 1 point 2: value '12' is not a number"),
    ],
)  # fmt: skip
def test_malformed_body_is_a_clear_error(httpserver, run, respond, problem):
    handler = httpserver.expect_request(QUERY_PATH, method="GET")
    if "response_json" in respond:
        handler.respond_with_json(respond["response_json"])
    else:
        handler.respond_with_data(respond["response_data"], content_type=respond["content_type"])

    with pytest.raises(DatadogError) as err:
        run(source(httpserver), [MAR10])

    assert problem in str(err.value) and "'requests'" in str(err.value)
    assert len(httpserver.log) == 1  # a malformed answer is not retried


def test_no_days_makes_no_request(httpserver, run):
    out = run(source(httpserver), [])

    assert out.height == 0 and out.schema == pl.Schema(USAGE_SCHEMA) and len(httpserver.log) == 0


# --- secrets ------------------------------------------------------------------------------------


def test_keys_never_in_errors_logs_or_rows(httpserver, run):
    # a throttle, a success, then a second fetch whose refusal echoes both keys back
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(**throttled(reset=1))
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(
        answer([series(["tenant_id:acme"], [[float(MAR10_MS), 1.0]])])
    )
    httpserver.expect_ordered_request(QUERY_PATH, method="GET").respond_with_json(
        {"errors": [f"Forbidden: API key {API_KEY} is not valid with application key {APP_KEY}"]}, status=403
    )
    cfg = source(httpserver)

    out = run(cfg, [MAR10])
    with pytest.raises(DatadogError) as err:
        run(cfg, [MAR10])

    httpserver.check_assertions()
    sent = [(r.headers["DD-API-KEY"], r.headers["DD-APPLICATION-KEY"]) for r, _ in httpserver.log]
    assert sent == [(API_KEY, APP_KEY)] * 3  # the keys went where they belong
    assert "HTTP 403" in str(err.value) and "Forbidden" in str(err.value)
    assert "FAKE" not in str(err.value)
    assert run.lines and not any("FAKE" in line for line in run.lines)
    cells = [v for r in out.to_dicts() for v in r.values() if isinstance(v, str)]
    assert not any("FAKE" in c for c in cells)


def test_a_missing_key_names_the_variable_not_the_values(httpserver, run, monkeypatch):
    monkeypatch.delenv("DD_APP_KEY")

    with pytest.raises(DatadogError) as err:
        run(source(httpserver), [MAR10])

    assert "environment variable DD_APP_KEY is not set" in str(err.value)
    assert "FAKE" not in str(err.value) and len(httpserver.log) == 0


def test_renamed_key_variables_are_read(httpserver, run, monkeypatch):
    monkeypatch.setenv("BILLING_DD_API", "dd-api-FAKE-renamed")
    monkeypatch.setenv("BILLING_DD_APP", "dd-app-FAKE-renamed")
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(answer([]))

    out = run(source(httpserver, api_key_env="BILLING_DD_API", app_key_env="BILLING_DD_APP"), [MAR10])

    request = httpserver.log[0][0]
    assert request.headers["DD-API-KEY"] == "dd-api-FAKE-renamed"
    assert request.headers["DD-APPLICATION-KEY"] == "dd-app-FAKE-renamed"
    assert out.height == 0 and out.schema == pl.Schema(USAGE_SCHEMA)


def test_usage_summing_to_infinity_is_refused_before_anything_is_written(httpserver, monkeypatch, tmp_path):
    """Two 1e308 points of one tenant-day overflow to inf: load_usage refuses the day, naming it."""
    monkeypatch.setenv("DD_API_KEY", API_KEY)
    monkeypatch.setenv("DD_APP_KEY", APP_KEY)
    httpserver.expect_request(QUERY_PATH, method="GET").respond_with_json(answer([
        series(["tenant_id:acme"], [[float(MAR10_MS), 1e308], [float(MAR10_MS + HOUR_MS), 1e308]]),
    ], from_s="1773100800", to_s=TO_MAR10))  # fmt: skip
    cfg = UnitcostConfig(usage=UsageConfig(files=None, datadog=source(httpserver)))
    with pytest.raises(InputDataError) as err:
        load_usage(cfg, tmp_path, [MAR10], log=lambda _: None, resources={"datadog": wired(datadog.CONNECTOR, cfg.usage.datadog)})
    assert "datadog returned requests = inf for tenant 'acme' on 2026-03-10: usage must be a finite number" in str(err.value)
