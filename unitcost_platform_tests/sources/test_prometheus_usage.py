"""The Prometheus usage connector against a real Prometheus 2.42 and against recorded answers.

A module fixture backfills counters and gauges for several tenants over six days in March 2023
(a sample every 5 minutes, day boundaries included) and starts Prometheus on them; every expected
figure is computed below from the samples written, never read off the connector. What a real
server cannot easily be made to answer (execution and timeout errors, warnings, NaN and Inf, a
vector result, a body that is not JSON, an echoed token) comes from a local HTTP server with the
bodies Prometheus's HTTP API documents.
"""

import datetime as dt
import random
from collections import defaultdict
from itertools import pairwise

import polars as pl
import pytest
import requests

from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.sources.usage import prometheus as prometheus_usage
from unitcost_platform.sources.usage.prometheus import (
    PrometheusError,
    PrometheusMetric,
    PrometheusSource,
    build_query,
    fetch_prometheus,
    query_windows,
)
from unitcost_platform_tests.helpers import wired
from unitcost_platform_tests.prometheus_server import (
    PrometheusServerError,
    binary,
    start_prometheus,
)

D0 = dt.date(2023, 3, 1)  # years before "now": backfilled blocks, kept by a 100-year retention
DAYS = [D0 + dt.timedelta(days=i) for i in range(6)]
DAY_SECONDS = 86_400
SAMPLE_EVERY = 300


def day_start(day: dt.date) -> int:
    return int(dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC).timestamp())


TIMES = range(day_start(DAYS[0]), day_start(DAYS[-1]) + DAY_SECONDS + 1, SAMPLE_EVERY)
RESET_AT = int(dt.datetime(2023, 3, 3, 13, 35, tzinfo=dt.UTC).timestamp())
QUOTED = 'o"brien\\co'  # a tenant value with a double quote and a backslash
TWO_LINES = "two\nlines"  # a tenant value with a newline


def counter_samples(seed: str, reset_at: int | None = None) -> list[tuple[int, int]]:
    """A counter growing by 0..9 per sample; at `reset_at` it restarts from 0 (a process restart)."""
    rng = random.Random(seed)
    value, samples = 0, []
    for t in TIMES:
        step = rng.randint(0, 9)
        value = step if t == reset_at else value + step
        samples.append((t, value))
    return samples


def gauge_samples(seed: str) -> list[tuple[int, float]]:
    rng = random.Random(seed)
    return [(t, round(rng.uniform(0, 50), 2)) for t in TIMES]


def labels(**kw: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(kw.items()))


REQUESTS = {
    labels(tenant_id="acme", service="api"): counter_samples("acme/api"),
    labels(tenant_id="acme", service="worker"): counter_samples("acme/worker"),
    labels(tenant_id="globex", service="api"): counter_samples("globex/api", reset_at=RESET_AT),
    labels(tenant_id="globex", service="worker"): counter_samples("globex/worker"),
    labels(tenant_id="initech", service="api"): counter_samples("initech/api"),
    labels(tenant_id=QUOTED, service="api"): counter_samples("quoted/api"),
    labels(service="batch"): counter_samples("batch"),  # no tenant label
}
SESSIONS = {
    labels(tenant_id="acme", region="eu"): gauge_samples("acme/eu"),
    labels(tenant_id="acme", region="us"): gauge_samples("acme/us"),
    labels(tenant_id="globex", region="eu"): gauge_samples("globex/eu"),
    labels(tenant_id="initech", region="us"): gauge_samples("initech/us"),
    labels(tenant_id=TWO_LINES, region="us"): gauge_samples("two-lines/us"),
}


def om_escape(value: str) -> str:
    """A label value as OpenMetrics writes it."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def openmetrics() -> str:
    lines = []
    for family, kind, name, series in (
        ("app_requests", "counter", "app_requests_total", REQUESTS),
        ("app_active_sessions", "gauge", "app_active_sessions", SESSIONS),
    ):
        lines.append(f"# TYPE {family} {kind}")
        for key, samples in series.items():
            selector = ",".join(f'{k}="{om_escape(v)}"' for k, v in key)
            lines += [f"{name}{{{selector}}} {value!r} {t}" for t, value in samples]
    return "\n".join(lines + ["# EOF"]) + "\n"


# Prometheus 2.42 evaluates `x[1d]` at time T over the samples with T - 1d <= t <= T: both ends are
# included (3.x drops the left one). The query for day D runs at D+1 00:00, so its window is
# [D 00:00, D+1 00:00], and with a sample every 5 minutes from midnight it holds 289 samples
# (test_a_window_holds_both_day_boundaries checks this on the server). With samples at both ends
# of the window, `increase` extrapolates nothing: it is last - first plus the value before each
# counter reset, which is the sum below of the rises and, after a drop, the new value.
def window(samples: list[tuple[int, float]], day: dt.date) -> list[float]:
    end = day_start(day) + DAY_SECONDS
    return [v for t, v in samples if end - DAY_SECONDS <= t <= end]


def increase(values: list[float]) -> float:
    return sum(cur - prev if cur >= prev else cur for prev, cur in pairwise(values))


def average(values: list[float]) -> float:
    return sum(values) / len(values)


def expected(series: dict, fold, days=DAYS, **only: str) -> dict[tuple[dt.date, str], float]:
    """{(day, tenant): figure}: `fold` of each series' window, summed per tenant; series without a
    tenant, or not matching `only`, left out."""
    out: dict[tuple[dt.date, str], float] = defaultdict(float)
    for key, samples in series.items():
        tags = dict(key)
        if "tenant_id" in tags and all(tags.get(k) == v for k, v in only.items()):
            for day in days:
                out[day, tags["tenant_id"]] += fold(window(samples, day))
    return dict(out)


COUNTER = PrometheusMetric(metric="requests", series="app_requests_total", kind="counter", service_name="api")
GAUGE = PrometheusMetric(metric="active_sessions", series="app_active_sessions", kind="gauge")


def source(url: str, *metrics: PrometheusMetric, **kw) -> PrometheusSource:
    return PrometheusSource(url=url, metrics=list(metrics), **kw)


def figures(frame: pl.DataFrame, metric: str) -> dict[tuple[dt.date, str], float]:
    """{(day, tenant): value} of one metric, after checking the frame's shape and keys."""
    assert frame.schema == pl.Schema(USAGE_SCHEMA)
    assert set(frame["source"]) <= {"prometheus"}
    rows = frame.filter(pl.col("metric") == metric)
    keys = list(zip(rows["usage_date"], rows["tenant_id"], strict=True))
    assert len(keys) == len(set(keys)), "one row per (day, tenant, metric)"
    return dict(zip(keys, rows["value"], strict=True))


def approx(figures: dict) -> dict:
    return {k: pytest.approx(v, rel=1e-9) for k, v in figures.items()}


class Recording(requests.Session):
    """A session that records the query parameters of every GET."""

    def __init__(self):
        super().__init__()
        self.sent: list[dict] = []

    def get(self, url, **kw):
        self.sent.append(dict(kw.get("params") or {}))
        return super().get(url, **kw)


@pytest.fixture(scope="module")
def prometheus(tmp_path_factory):
    with start_prometheus(tmp_path_factory.mktemp("prometheus"), openmetrics()) as server:
        yield server


@pytest.fixture
def lines():
    return []


# --- against the real server --------------------------------------------------------------------


def test_counter_is_the_increase_over_each_utc_day(prometheus, lines):
    out = fetch_prometheus(source(prometheus.url, COUNTER), DAYS, log=lines.append)

    want = expected(REQUESTS, increase)
    assert figures(out, "requests") == approx(want)
    assert set(out["service_name"]) == {"api"}
    assert {tenant for _, tenant in want} == {"acme", "globex", "initech", QUOTED}
    # the reset day really tests the reset: without it the day's figure would be last - first
    reset_day = dt.date(2023, 3, 3)
    restarted = window(REQUESTS[labels(tenant_id="globex", service="api")], reset_day)
    assert restarted[-1] - restarted[0] != increase(restarted)
    assert any("skipped 1 series without the tenant_id label" in line for line in lines)


def test_gauge_is_the_average_over_each_utc_day(prometheus):
    out = fetch_prometheus(source(prometheus.url, GAUGE), DAYS)

    assert figures(out, "active_sessions") == approx(expected(SESSIONS, average))
    assert out["service_name"].null_count() == out.height  # no service_name configured


def test_a_window_holds_both_day_boundaries(prometheus):
    counting = PrometheusMetric(
        metric="samples", query='sum by (tenant_id) (count_over_time(app_active_sessions{tenant_id="globex"}[1d]))'
    )

    out = fetch_prometheus(source(prometheus.url, counting), DAYS)

    assert figures(out, "samples") == {(day, "globex"): DAY_SECONDS / SAMPLE_EVERY + 1 for day in DAYS}


def test_a_full_query_works_like_series_and_kind(prometheus, lines):
    by_tenant = PrometheusMetric(
        metric="requests", query="sum by (tenant_id) (increase(app_requests_total[1d]))", service_name="api"
    )
    # keeping the service label gives several series per tenant: the connector sums them
    by_service = PrometheusMetric(
        metric="requests", query="sum by (tenant_id, service) (increase(app_requests_total[1d]))", service_name="api"
    )

    from_series = fetch_prometheus(source(prometheus.url, COUNTER), DAYS)
    from_query = fetch_prometheus(source(prometheus.url, by_tenant), DAYS)
    from_finer = fetch_prometheus(source(prometheus.url, by_service), DAYS, log=lines.append)

    want = approx(expected(REQUESTS, increase))
    assert figures(from_query, "requests") == want and figures(from_finer, "requests") == want
    assert from_query.sort(from_query.columns, nulls_last=True).equals(from_series.sort(from_series.columns, nulls_last=True))
    assert any("requests 2023-03-01..2023-03-06: 6 series" in line for line in lines)  # tenant x service


def test_matchers_select_series(prometheus):
    workers = PrometheusMetric(metric="requests", series="app_requests_total", kind="counter",
                               matchers={"service": "worker"})  # fmt: skip

    out = fetch_prometheus(source(prometheus.url, workers), DAYS)

    assert figures(out, "requests") == approx(expected(REQUESTS, increase, service="worker"))
    assert set(out["tenant_id"]) == {"acme", "globex"}


@pytest.mark.parametrize(
    ("metric", "series", "tenant"),
    [
        (PrometheusMetric(metric="requests", series="app_requests_total", kind="counter",
                          matchers={"tenant_id": QUOTED}), REQUESTS, QUOTED),
        (PrometheusMetric(metric="active_sessions", series="app_active_sessions", kind="gauge",
                          matchers={"tenant_id": TWO_LINES, "region": "us"}), SESSIONS, TWO_LINES),
    ],
    ids=["quote-and-backslash", "newline"],
)  # fmt: skip
def test_matcher_values_are_escaped(prometheus, metric, series, tenant):
    fold = increase if metric.kind == "counter" else average

    out = fetch_prometheus(source(prometheus.url, metric), DAYS)

    want = expected(series, fold, tenant_id=tenant)
    assert want and figures(out, metric.metric) == approx(want)
    assert set(out["tenant_id"]) == {tenant}


def test_a_bad_query_is_a_clear_error(prometheus):
    broken = PrometheusMetric(metric="requests", query="sum by (tenant_id) (increase(app_requests_total[1d])")

    with pytest.raises(PrometheusError) as err:
        fetch_prometheus(source(prometheus.url, GAUGE, broken), DAYS)

    text = str(err.value)
    assert "usage metric 'requests'" in text and "HTTP 400, errorType bad_data" in text
    assert "parse error" in text and "check the metric's PromQL" in text


def test_a_long_range_is_split_and_joined(prometheus, monkeypatch):
    single = fetch_prometheus(source(prometheus.url, COUNTER, GAUGE), DAYS)
    monkeypatch.setattr(prometheus_usage, "MAX_POINTS_PER_REQUEST", 4)
    session = Recording()

    chunked = fetch_prometheus(source(prometheus.url, COUNTER, GAUGE), DAYS, session=session)

    ends = [(int(p["start"]), int(p["end"])) for p in session.sent]
    first = (day_start(DAYS[0]) + DAY_SECONDS, day_start(DAYS[3]) + DAY_SECONDS)
    second = (day_start(DAYS[4]) + DAY_SECONDS, day_start(DAYS[5]) + DAY_SECONDS)
    assert ends == [first, second, first, second]  # per metric: days 1-4, then 5-6
    assert all(p["step"] == "86400" for p in session.sent)
    assert chunked.sort(chunked.columns, nulls_last=True).equals(single.sort(single.columns, nulls_last=True))
    assert figures(chunked, "requests") == approx(expected(REQUESTS, increase))


def test_the_default_limit_is_what_prometheus_accepts(prometheus):
    # Prometheus refuses (end - start) / step > 11,000: 11,002 daily points is one too many
    params = {"query": "vector(1)", "start": "0", "step": "86400"}
    refused = requests.get(f"{prometheus.url}/api/v1/query_range",
                           params=params | {"end": str(11_001 * DAY_SECONDS)}, timeout=10)  # fmt: skip
    assert refused.status_code == 400 and "11,000 points" in refused.json()["error"]

    for span, requests_made in ((11_000, 1), (11_001, 2)):
        days = [DAYS[-1] - dt.timedelta(days=i) for i in range(span)]
        session = Recording()
        out = fetch_prometheus(source(prometheus.url, COUNTER), days, session=session)
        assert len(session.sent) == requests_made
        assert figures(out, "requests") == approx(expected(REQUESTS, increase))


def test_only_the_requested_days_are_returned(prometheus):
    session = Recording()

    out = fetch_prometheus(source(prometheus.url, COUNTER), [DAYS[3], DAYS[0]], session=session)

    assert len(session.sent) == 1  # one range from the first to the last day
    assert figures(out, "requests") == approx(expected(REQUESTS, increase, days=[DAYS[0], DAYS[3]]))


def test_a_missing_binary_says_what_to_install():
    with pytest.raises(PrometheusServerError, match="install Debian's prometheus package"):
        binary("prometheus-not-installed")


# --- pure parts ---------------------------------------------------------------------------------


def test_build_query_for_counters_and_gauges():
    assert build_query(COUNTER, "tenant_id") == "sum by (tenant_id) (increase(app_requests_total[1d]))"
    gauge = PrometheusMetric(metric="storage_bytes", series="bucket_bytes", kind="gauge",
                             matchers={"env": "prod", "class": "standard"})  # fmt: skip
    assert build_query(gauge, "customer") == (
        'sum by (customer) (avg_over_time(bucket_bytes{env="prod", class="standard"}[1d]))'
    )
    written = PrometheusMetric(metric="requests", query="sum by (tenant_id) (rate(x[5m])) * 86400")
    assert build_query(written, "tenant_id") == "sum by (tenant_id) (rate(x[5m])) * 86400"


def test_build_query_escapes_matcher_values():
    metric = PrometheusMetric(metric="m", series="s", kind="counter", matchers={"a": 'say "hi"\\ok\nbye'})
    assert build_query(metric, "t") == r'sum by (t) (increase(s{a="say \"hi\"\\ok\nbye"}[1d]))'


def test_query_windows():
    d = dt.date
    assert query_windows([d(2026, 3, 3), d(2026, 3, 1)], 11_000) == [(d(2026, 3, 1), d(2026, 3, 3))]
    assert query_windows([D0 + dt.timedelta(days=i) for i in range(5)], 2) == [
        (D0, D0 + dt.timedelta(days=1)),
        (D0 + dt.timedelta(days=2), D0 + dt.timedelta(days=3)),
        (D0 + dt.timedelta(days=4), D0 + dt.timedelta(days=4)),
    ]
    assert query_windows([d(2026, 1, 1), d(2026, 1, 30)], 30) == [(d(2026, 1, 1), d(2026, 1, 30))]
    # a gap longer than a window is not queried
    assert query_windows([d(2026, 1, 1), d(2026, 3, 1)], 30) == [(d(2026, 1, 1),) * 2, (d(2026, 3, 1),) * 2]


# --- recorded answers ---------------------------------------------------------------------------

PATH = "/api/v1/query_range"
MAR1_END = 1677715200  # 2023-03-02T00:00:00Z: the point carrying 2023-03-01
MAR2_END = MAR1_END + DAY_SECONDS
TOKEN = "FAKE-PROM-TOKEN-3b9f0c71e2"


def matrix(*series, warnings=None) -> dict:
    body = {"status": "success", "data": {"resultType": "matrix", "result": list(series)}}
    if warnings:
        body["warnings"] = warnings
    return body


def run(httpserver, days=(D0,), *metrics, lines=None, waits=None, **kw):
    cfg = source(httpserver.url_for("/").rstrip("/"), *(metrics or [COUNTER]), **kw)
    return fetch_prometheus(cfg, list(days), auth=wired(prometheus_usage.CONNECTOR, cfg),
                            log=(lines if lines is not None else []).append,
                            sleep=(waits if waits is not None else []).append)  # fmt: skip


def test_sends_the_end_of_each_day_and_a_daily_step(httpserver):
    httpserver.expect_request(PATH, method="GET").respond_with_json(matrix(
        {"metric": {"tenant_id": "acme"}, "values": [[MAR1_END, "5"], [MAR2_END, "7"]]},
    ))  # fmt: skip

    out = run(httpserver, [D0, D0 + dt.timedelta(days=1)], timeout_seconds=30)

    sent = httpserver.log[0][0].args
    assert sent["query"] == "sum by (tenant_id) (increase(app_requests_total[1d]))"
    assert (sent["start"], sent["end"], sent["step"], sent["timeout"]) == (str(MAR1_END), str(MAR2_END), "86400", "30")
    assert figures(out, "requests") == {(D0, "acme"): 5.0, (D0 + dt.timedelta(days=1), "acme"): 7.0}


@pytest.mark.parametrize(
    ("status", "error_type", "message", "check"),
    [
        (422, "execution", "query processing would load too many samples into memory in query execution",
         "--query.max-samples"),
        (503, "timeout", "query timed out in expression evaluation", "usage.prometheus.timeout_seconds"),
    ],
)  # fmt: skip
def test_prometheus_errors_name_metric_type_message_and_fix(httpserver, status, error_type, message, check):
    httpserver.expect_request(PATH).respond_with_json(
        {"status": "error", "errorType": error_type, "error": message}, status=status
    )
    waits = []

    with pytest.raises(PrometheusError) as err:
        run(httpserver, [D0], waits=waits)

    text = str(err.value)
    assert "usage metric 'requests' for 2023-03-01..2023-03-01" in text
    assert f"HTTP {status}, errorType {error_type}): {message}" in text and check in text
    assert waits == [] and len(httpserver.log) == 1  # the query would fail again: not retried


def test_a_server_not_ready_is_retried(httpserver):
    # what Prometheus answers while its TSDB is still loading
    httpserver.expect_ordered_request(PATH).respond_with_data(
        "Service Unavailable", status=503, content_type="text/plain; charset=utf-8"
    )
    httpserver.expect_ordered_request(PATH).respond_with_json(
        matrix({"metric": {"tenant_id": "acme"}, "values": [[MAR1_END, "3"]]})
    )
    waits, lines = [], []

    out = run(httpserver, [D0], waits=waits, lines=lines)

    assert figures(out, "requests") == {(D0, "acme"): 3.0}
    assert waits == [1.0] and "retry 1 of 3" in lines[0]


def test_a_proxy_error_page_fails_after_the_retries(httpserver):
    httpserver.expect_request(PATH).respond_with_data(
        "<html><body><h1>502 Bad Gateway</h1></body></html>", status=502, content_type="text/html"
    )
    waits = []

    with pytest.raises(PrometheusError) as err:
        run(httpserver, [D0], waits=waits)

    assert "after 3 retries: HTTP 502 (text/html: <html><body><h1>502 Bad Gateway" in str(err.value)
    assert waits == [1.0, 2.0, 4.0] and len(httpserver.log) == 4


def test_a_body_that_is_not_json_is_a_clear_error(httpserver):
    httpserver.expect_request(PATH).respond_with_data(
        "<!doctype html><title>Grafana</title>", status=200, content_type="text/html; charset=utf-8"
    )

    with pytest.raises(PrometheusError) as err:
        run(httpserver, [D0])

    text = str(err.value)
    assert "HTTP 200 and a body that is not a JSON object (text/html; charset=utf-8: <!doctype html>" in text
    assert "base URL (e.g. http://prometheus:9090)" in text


def test_warnings_are_logged(httpserver):
    note = "remote_read: error sending request: Post \"http://thanos:10901/api/v1/read\": connection refused"
    httpserver.expect_request(PATH).respond_with_json(
        matrix({"metric": {"tenant_id": "acme"}, "values": [[MAR1_END, "2"]]}, warnings=[note])
    )
    lines = []

    out = run(httpserver, [D0], lines=lines)

    assert figures(out, "requests") == {(D0, "acme"): 2.0}
    assert f"prometheus requests 2023-03-01..2023-03-01: warning from Prometheus: {note}" in lines


def test_non_finite_values_are_skipped_and_counted(httpserver):
    days = [D0 + dt.timedelta(days=i) for i in range(4)]
    httpserver.expect_request(PATH).respond_with_json(matrix(
        {"metric": {"tenant_id": "acme"},
         "values": [[MAR1_END, "NaN"], [MAR2_END, "+Inf"], [MAR2_END + DAY_SECONDS, "4.5"],
                    [MAR2_END + 2 * DAY_SECONDS, "-Inf"]]},
        {"metric": {"tenant_id": "globex"}, "values": [[MAR1_END, "1e+06"]]},
    ))  # fmt: skip
    lines = []

    out = run(httpserver, days, lines=lines)

    assert figures(out, "requests") == {(days[2], "acme"): 4.5, (D0, "globex"): 1e6}
    assert "skipped 3 non-finite value(s) (NaN or ±Inf)" in lines[-1]


def test_a_vector_result_is_read_as_one_point_per_series(httpserver):
    httpserver.expect_request(PATH).respond_with_json({"status": "success", "data": {"resultType": "vector", "result": [
        {"metric": {"tenant_id": "acme"}, "value": [MAR1_END, "12"]},
        {"metric": {"tenant_id": "acme", "service": "worker"}, "value": [MAR1_END, "0.5"]},
        {"metric": {}, "value": [MAR1_END, "99"]},
    ]}})  # fmt: skip
    lines = []

    out = run(httpserver, [D0], lines=lines)

    assert figures(out, "requests") == {(D0, "acme"): 12.5}
    assert "2 series, 2 point(s); skipped 1 series without the tenant_id label" in lines[-1]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"resultType": "scalar", "result": [MAR1_END, "1"]},
         "returned a 'scalar', not one series per tenant: it must aggregate `by (tenant_id)`"),
        ({"resultType": "matrix", "result": [{"metric": {"tenant_id": "a"}, "values": [[MAR1_END + 3600, "1"]]}]},
         "a point at 2023-03-02T01:00:00+00:00 is not at the end of a UTC day"),
        ({"resultType": "matrix", "result": [{"metric": {"tenant_id": "a"}, "values": [[MAR1_END, "many"]]}]},
         "the series of tenant_id='a' has an unreadable point"),
    ],
)  # fmt: skip
def test_unreadable_answers_are_clear_errors(httpserver, data, message):
    httpserver.expect_request(PATH).respond_with_json({"status": "success", "data": data})

    with pytest.raises(PrometheusError) as err:
        run(httpserver, [D0])

    assert "answer to usage metric 'requests'" in str(err.value) and message in str(err.value)


def test_no_days_makes_no_request(httpserver, monkeypatch):
    monkeypatch.delenv("PROM_TOKEN", raising=False)

    out = run(httpserver, [], bearer_token_env="PROM_TOKEN")

    assert out.height == 0 and out.schema == pl.Schema(USAGE_SCHEMA) and len(httpserver.log) == 0


# --- the bearer token ---------------------------------------------------------------------------


def test_the_bearer_token_is_sent_and_never_shown(httpserver, monkeypatch):
    monkeypatch.setenv("PROM_TOKEN", TOKEN)
    httpserver.expect_ordered_request(PATH, headers={"Authorization": f"Bearer {TOKEN}"}).respond_with_json(
        matrix({"metric": {"tenant_id": "acme"}, "values": [[MAR1_END, "1"]]}, warnings=[f"seen token {TOKEN}"])
    )
    # a proxy that echoes the credentials it refused
    httpserver.expect_ordered_request(PATH).respond_with_data(
        f"invalid credentials: Bearer {TOKEN}", status=401, content_type="text/plain"
    )
    lines = []

    out = run(httpserver, [D0], lines=lines, bearer_token_env="PROM_TOKEN")
    with pytest.raises(PrometheusError) as err:
        run(httpserver, [D0], lines=lines, bearer_token_env="PROM_TOKEN")

    assert figures(out, "requests") == {(D0, "acme"): 1.0}
    assert "HTTP 401" in str(err.value) and "bearer_token_env" in str(err.value)
    assert TOKEN not in str(err.value) and "FAKE-PROM-TOKEN" not in str(err.value)
    assert lines and not any("FAKE-PROM-TOKEN" in line for line in lines)
    assert "seen token ***" in lines[0]


def test_a_missing_token_variable_is_named(httpserver, monkeypatch):
    monkeypatch.delenv("PROM_TOKEN", raising=False)

    with pytest.raises(PrometheusError, match="environment variable PROM_TOKEN is not set"):
        run(httpserver, [D0], bearer_token_env="PROM_TOKEN")

    assert len(httpserver.log) == 0
