"""Webhook delivery against a real local HTTP server: retries, Retry-After, timeouts, secrecy."""

import time

import pytest
from werkzeug import Response

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.notify.delivery import WebhookSender
from unitcost_platform.retry_after import retry_after_seconds

SECRET_PATH = "/services/T0001/B0002/s3cr3tT0k3n"


@pytest.fixture
def sender(httpserver, monkeypatch):
    monkeypatch.setenv("TEST_HOOK", httpserver.url_for(SECRET_PATH))
    cfg = NotificationsConfig(
        destinations={"team": {"type": "slack", "url_env": "TEST_HOOK"}},
        timeout_seconds=0.5, attempts=3, backoff_seconds=0.01, max_backoff_seconds=2,
    )  # fmt: skip
    waits: list[float] = []
    s = WebhookSender(cfg, sleep=lambda w: (waits.append(w), time.sleep(min(w, 0.01))))
    s.waits = waits
    return s


def test_delivered_first_time(httpserver, sender):
    httpserver.expect_oneshot_request(SECRET_PATH, method="POST", json={"text": "hi"}).respond_with_data("ok")
    result = sender.send("team", {"text": "hi"})
    assert result.ok and result.detail == "HTTP 200" and result.attempts == 1
    httpserver.check_assertions()


def test_429_with_retry_after_is_honoured(httpserver, sender):
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_response(
        Response("rate_limited", status=429, headers={"Retry-After": "1"})
    )
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
    result = sender.send("team", {"text": "x"})
    assert result.ok and result.attempts == 2
    assert sender.waits == [1.0]  # the Retry-After, not the backoff


def test_429_asking_for_longer_than_a_tick_allows_stays_pending(httpserver, sender):
    httpserver.expect_request(SECRET_PATH).respond_with_response(
        Response("", status=429, headers={"Retry-After": "120"})
    )
    result = sender.send("team", {"text": "x"})
    assert not result.ok and result.attempts == 1
    assert result.detail == "HTTP 429, Retry-After 120s exceeds the wait allowed in one tick"
    assert sender.waits == []


def test_500_is_retried_with_backoff_then_succeeds(httpserver, sender):
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("boom", status=500)
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("boom", status=503)
    httpserver.expect_ordered_request(SECRET_PATH).respond_with_data("ok")
    result = sender.send("team", {"text": "x"})
    assert result.ok and result.attempts == 3
    assert sender.waits == [0.01, 0.02]


def test_bounded_attempts_and_4xx(httpserver, sender):
    httpserver.expect_request(SECRET_PATH).respond_with_data("no_service", status=404)
    result = sender.send("team", {"text": "x"})
    assert not result.ok and result.attempts == 3 and result.detail == "HTTP 404 (no_service)"


def test_timeout(httpserver, sender):
    def slow(request):
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request(SECRET_PATH).respond_with_handler(slow)
    result = sender.send("team", {"text": "x"})
    assert not result.ok and result.detail == "timed out after 0.5s"


def test_connection_refused_and_missing_secret(monkeypatch):
    monkeypatch.setenv("DOWN_HOOK", "http://127.0.0.1:9/services/T/B/s3cr3tT0k3n")
    cfg = NotificationsConfig(destinations={"d": {"type": "webhook", "url_env": "DOWN_HOOK"},
                                            "off": {"type": "webhook", "url_env": "NOT_SET_HOOK"}},
                              attempts=1)  # fmt: skip
    s = WebhookSender(cfg, sleep=lambda w: None)
    down = s.send("d", {})
    assert not down.ok and down.detail == "connection failed (receiver down or unreachable)"
    assert "s3cr3t" not in down.detail and "127.0.0.1" not in down.detail
    off = s.send("off", {})
    assert off.detail == "environment variable NOT_SET_HOOK is not set"
    assert s.missing_secret("off") == "NOT_SET_HOOK" and s.missing_secret("d") is None


def test_deadline_stops_retrying(httpserver, sender):
    httpserver.expect_request(SECRET_PATH).respond_with_data("", status=500)
    result = sender.send("team", {"text": "x"}, deadline=time.monotonic())
    assert not result.ok and result.attempts == 1 and result.detail.endswith("out of time this tick")


def test_retry_after_as_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("soon") is None and retry_after_seconds(None) is None
