"""Webhook delivery against a real local HTTP server: retries, Retry-After, timeouts, secrecy."""

import threading
import time

import pytest
import urllib3
from werkzeug import Response

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.notify.delivery import OUT_OF_TIME, Delivery, WebhookSender
from unitcost_platform.retry_after import retry_after_seconds

SECRET_PATH = "/services/T0001/B0002/s3cr3tT0k3n"


def _wait_for(condition, seconds: float = 3.0) -> None:
    stop = time.monotonic() + seconds
    while not condition():
        assert time.monotonic() < stop, "timed out waiting"
        time.sleep(0.02)


@pytest.fixture
def sender(httpserver, monkeypatch):
    monkeypatch.setenv("TEST_HOOK", httpserver.url_for(SECRET_PATH))
    cfg = NotificationsConfig(
        destinations={"team": {"type": "slack", "url_env": "TEST_HOOK"}},
        timeout_seconds=0.5, max_retries=2, backoff_seconds=0.01, max_wait_seconds=2,
    )  # fmt: skip
    waits: list[float] = []
    s = WebhookSender(cfg, sleep=lambda w: (waits.append(w), time.sleep(min(w, 0.01))))
    s.waits = waits
    return s


def test_delivered_first_time(httpserver, sender):
    httpserver.expect_oneshot_request(SECRET_PATH, method="POST", json={"text": "hi"}).respond_with_data("ok")
    result = sender.send("team", {"text": "hi"})
    assert result.ok and result.detail == "HTTP 200 (OK)" and result.attempts == 1 and not result.unconfirmed
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
    assert result.detail == "HTTP 429 (Too Many Requests), Retry-After 120s exceeds the wait allowed in one tick"
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
    assert not result.ok and result.attempts == 3 and result.detail == "HTTP 404 (Not Found)"


def test_error_body_and_reason_phrase_are_never_repeated(httpserver, sender):
    # Express answers an unknown route with the request path, which holds the webhook's token.
    httpserver.expect_request(SECRET_PATH).respond_with_response(
        Response(f"Cannot POST {SECRET_PATH}", status=404, headers={"Content-Type": "text/html"})
    )
    result = sender.send("team", {"text": "x"})
    assert result.detail == "HTTP 404 (Not Found)" and "s3cr3t" not in result.detail


def test_redirect_is_not_a_delivery(httpserver, sender):
    httpserver.expect_request(SECRET_PATH).respond_with_response(Response("", status=302, headers={"Location": "/elsewhere"}))
    result = sender.send("team", {"text": "x"})
    assert not result.ok and result.detail == "HTTP 302 (Found)"
    assert [r.path for r, _ in httpserver.log] == [SECRET_PATH] * 3  # never followed with a GET


def test_sent_without_an_answer_in_time_is_not_sent_again(httpserver, sender):
    def slow(request):
        time.sleep(1.0)
        return Response("late")

    httpserver.expect_request(SECRET_PATH).respond_with_handler(slow)
    started = time.monotonic()
    result = sender.send("team", {"text": "x"})
    assert time.monotonic() - started < 0.9
    assert result.ok and result.unconfirmed and result.attempts == 1
    assert result.detail == "sent, no answer within 0.5s: not resent, to avoid a duplicate"
    _wait_for(lambda: len(httpserver.log) == 1)  # the receiver had it, and answered later


def test_a_connection_made_too_late_sends_nothing(httpserver, sender, monkeypatch):
    httpserver.expect_request(SECRET_PATH).respond_with_data("ok")
    real = urllib3.util.connection.create_connection
    connecting = []

    def stalled(*args, **kwargs):  # a resolver that hangs longer than the whole timeout
        connecting.append(threading.Event())
        time.sleep(0.8)
        try:
            return real(*args, **kwargs)
        finally:
            connecting[-1].set()

    monkeypatch.setattr(urllib3.util.connection, "create_connection", stalled)
    result = sender.send("team", {"text": "too late"}, deadline=time.monotonic() + 0.6)
    assert not result.ok and result.detail == f"not sent: no connection within 0.5s; {OUT_OF_TIME}"
    assert connecting[0].wait(2)
    time.sleep(0.2)
    assert httpserver.log == []  # the late connection was dropped before writing the request


def test_connection_refused_and_missing_secret(monkeypatch):
    monkeypatch.setenv("DOWN_HOOK", "http://127.0.0.1:9/services/T/B/s3cr3tT0k3n")
    cfg = NotificationsConfig(destinations={"d": {"type": "webhook", "url_env": "DOWN_HOOK"},
                                            "off": {"type": "webhook", "url_env": "NOT_SET_HOOK"}},
                              max_retries=0)  # fmt: skip
    s = WebhookSender(cfg, sleep=lambda w: None)
    down = s.send("d", {})
    assert not down.ok and down.detail == "connection failed (receiver down or unreachable)"
    assert "s3cr3t" not in down.detail and "127.0.0.1" not in down.detail
    off = s.send("off", {})
    assert off.detail == "environment variable NOT_SET_HOOK is not set"
    assert s.missing_secret("off") == "NOT_SET_HOOK" and s.missing_secret("d") is None


def test_deadline_stops_retrying(httpserver, sender):
    httpserver.expect_request(SECRET_PATH).respond_with_data("", status=500)
    now = [100.0]  # a clock that only the backoff moves: requests here take no time
    timed = WebhookSender(sender.cfg, sleep=lambda w: now.__setitem__(0, now[0] + w), clock=lambda: now[0])
    # Room for two 0.5 s requests and the 0.01 s backoff between them, not for the 0.02 s one after.
    result = timed.send("team", {"text": "x"}, deadline=100.52)
    assert not result.ok and result.attempts == 2
    assert result.detail == f"HTTP 500 (Internal Server Error); {OUT_OF_TIME}"
    # A request is started only if its whole timeout fits.
    assert timed.send("team", {"text": "x"}, deadline=now[0] + 0.4) == Delivery(False, OUT_OF_TIME, 0)
    assert len(httpserver.log) == 2


def test_retry_after_as_http_date():
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == pytest.approx(10.0)
    assert retry_after_seconds("7") == 7.0 and retry_after_seconds("soon") is None and retry_after_seconds(None) is None
