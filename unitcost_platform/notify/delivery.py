"""POSTing messages to webhooks: one deadline for the whole answer, bounded retries, and text that
never carries the URL or the receiver's words.

Webhook URLs are secrets (a Slack incoming webhook URL is the credential): they are read through
`dg.EnvVar` when a message is sent and appear in no log line, metadata, cursor or error. A response
body can echo the request path ("Cannot POST /services/T0/B0/<token>"), so it is never read: what is
said about a response is its status code and that code's standard reason phrase.

requests' timeouts bound each socket operation, so a receiver that drips a byte every few seconds
defeats them. The POST runs in a worker thread and the sender stops waiting `timeout_seconds` after
it started. A request that went out and got no status line and headers by then reached a receiver
that is slow, not down: it counts as sent (unconfirmed) and is not sent again, which would
duplicate every message to a consistently slow receiver on every tick.
"""

import http
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import requests
import urllib3

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.retries import RetriesExhausted, Retry, retrying
from unitcost_platform.retry_after import retry_after_seconds

OUT_OF_TIME = "out of time this tick"


@dataclass(frozen=True)
class Delivery:
    ok: bool  # the receiver has the message (answered 2xx, or took it without answering in time): never resend
    detail: str  # what happened, safe to log: "HTTP 200 (OK)", "HTTP 429 (Too Many Requests), Retry-After 120s"
    attempts: int
    unconfirmed: bool = False  # sent, but no status within the timeout


def status_text(code: int) -> str:
    """The code and its standard phrase ("HTTP 404 (Not Found)"), never the receiver's own words."""
    try:
        return f"HTTP {code} ({http.HTTPStatus(code).phrase})"
    except ValueError:
        return f"HTTP {code}"


def _unanswered(timeout: float) -> Delivery:
    """A request that went out and got no status in time: a slow receiver has it."""
    return Delivery(True, f"sent, no answer within {timeout:g}s: not resent, to avoid a duplicate", 1, True)


def _not_sent(within: float) -> Delivery:
    """No connection in time: the receiver cannot have the message, so it is tried again."""
    return Delivery(False, f"not sent: no connection within {within:g}s", 1)


class _GivenUp(Exception):
    """Raised in a worker whose sender stopped waiting before the request went out."""


class _Attempt:
    """One POST made by a worker thread, and whether its request went out before the sender gave up."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.sent = False
        self.given_up = False
        self.finished = threading.Event()
        self.status: int | None = None
        self.retry_after: str | None = None
        self.error: Exception | None = None

    def sending(self) -> None:
        """Marks the request as going out; refused once the sender gave up, so a late connection never
        delivers a message the ledger still holds as pending (it would be sent again next tick)."""
        with self.lock:
            if self.given_up:
                raise _GivenUp
            self.sent = True

    def give_up(self) -> bool:
        """Stops waiting; True if the request had gone out, so the receiver may have it."""
        with self.lock:
            self.given_up = True
            return self.sent


_current = threading.local()  # the attempt a worker thread is making, for its connection to report to


class _ReportsSending:
    """A urllib3 connection that tells the worker's attempt when its request starts going out."""

    def request(self, *args, **kwargs):
        if self.sock is None:
            self.connect()  # plain HTTP connects lazily inside request(): connect first, so "sent" means sent
        attempt = getattr(_current, "attempt", None)
        if attempt is not None:
            attempt.sending()
        return super().request(*args, **kwargs)


class _HTTPConnection(_ReportsSending, urllib3.connection.HTTPConnection):
    pass


class _HTTPSConnection(_ReportsSending, urllib3.connection.HTTPSConnection):
    pass


class _HTTPPool(urllib3.HTTPConnectionPool):
    ConnectionCls = _HTTPConnection


class _HTTPSPool(urllib3.HTTPSConnectionPool):
    ConnectionCls = _HTTPSConnection


_POOLS = {"http": _HTTPPool, "https": _HTTPSPool}


class _ReportingAdapter(requests.adapters.HTTPAdapter):
    """requests' adapter, with connections that report when a request goes out (proxied ones too)."""

    def init_poolmanager(self, *args, **kwargs) -> None:
        super().init_poolmanager(*args, **kwargs)
        self.poolmanager.pool_classes_by_scheme = _POOLS

    def proxy_manager_for(self, proxy, **proxy_kwargs):
        manager = super().proxy_manager_for(proxy, **proxy_kwargs)
        if not proxy.lower().startswith("socks"):  # SOCKS managers bring connection classes of their own
            manager.pool_classes_by_scheme = _POOLS
        return manager


class WebhookSender:
    """Sends JSON to configured destinations; one instance per sensor tick or run."""

    def __init__(
        self,
        cfg: NotificationsConfig,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.sleep = sleep
        self.clock = clock
        # Well inside the total, so that a connection that is not made fails as such, before the deadline.
        self.connect_timeout = cfg.timeout_seconds / 2

    def destination_type(self, destination: str) -> str:
        return self.cfg.destinations[destination].type

    def missing_secret(self, destination: str) -> str | None:
        """The env var a destination needs but does not have, if any."""
        env = self.cfg.destinations[destination].url_env
        return None if dg.EnvVar(env).get_value() else env

    def send(
        self,
        destination: str,
        payload: dict,
        deadline: float | None = None,
        on_attempt: Callable[[Delivery], None] | None = None,
    ) -> Delivery:
        """POST with up to `max_retries` retries through the retry policy, starting a try only if its
        whole timeout (and the wait before it) fits before `deadline`."""
        env = self.cfg.destinations[destination].url_env
        url = dg.EnvVar(env).get_value()
        if not url:
            return Delivery(False, f"environment variable {env} is not set", 0)
        timeout = self.cfg.timeout_seconds
        if deadline is not None and self.clock() + timeout > deadline:
            return Delivery(False, OUT_OF_TIME, 0)
        tries = 0

        def attempt() -> Delivery:
            nonlocal tries
            tries += 1
            outcome, asked = self._attempt(url, payload)
            if on_attempt is not None:
                on_attempt(outcome)
            if outcome.ok:
                return Delivery(True, outcome.detail, tries, outcome.unconfirmed)
            if asked is not None and asked > self.cfg.max_wait_seconds:
                return Delivery(False, outcome.detail + " exceeds the wait allowed in one tick", tries)
            raise Retry(outcome.detail, asked)

        def out_of_time(wait: float) -> bool:
            return deadline is not None and self.clock() + wait + timeout > deadline

        try:
            return retrying(self.cfg, attempt, sleep=self.sleep, give_up=out_of_time)
        except RetriesExhausted as last:
            return Delivery(False, f"{last.problem}; {OUT_OF_TIME}" if last.gave_up else last.problem, tries)

    def _attempt(self, url: str, payload: dict) -> tuple[Delivery, float | None]:
        """One POST, waited for `timeout_seconds` in all; also the Retry-After of a 429, in seconds."""
        timeout = self.cfg.timeout_seconds
        attempt = _Attempt()
        threading.Thread(target=self._post, args=(url, payload, attempt), name="webhook-post", daemon=True).start()
        if not attempt.finished.wait(timeout):
            sent = attempt.give_up()
            if not attempt.finished.is_set():
                return (_unanswered(timeout) if sent else _not_sent(timeout)), None
        if attempt.status is not None:
            detail = status_text(attempt.status)
            asked = retry_after_seconds(attempt.retry_after) if attempt.status == 429 else None
            if asked is not None:
                detail += f", Retry-After {asked:g}s"
            return Delivery(200 <= attempt.status < 300, detail, 1), asked
        return self._failure(attempt), None

    def _failure(self, attempt: _Attempt) -> Delivery:
        """What an exception says, by type and phase only: its message could contain the URL."""
        error = attempt.error
        if isinstance(error, requests.Timeout) and attempt.sent:
            return _unanswered(self.cfg.timeout_seconds)
        if isinstance(error, requests.ConnectTimeout):
            return _not_sent(self.connect_timeout)
        if isinstance(error, requests.Timeout | _GivenUp):
            return _not_sent(self.cfg.timeout_seconds)
        if isinstance(error, requests.ConnectionError):
            return Delivery(False, "connection failed (receiver down or unreachable)", 1)
        return Delivery(False, f"request failed ({type(error).__name__})", 1)

    def _post(self, url: str, payload: dict, attempt: _Attempt) -> None:
        """The POST itself, in a worker thread: reads the status line and headers, never the body."""
        _current.attempt = attempt
        try:
            with requests.Session() as session:
                session.mount("http://", _ReportingAdapter())
                session.mount("https://", _ReportingAdapter())
                # A redirect is not a delivery (requests would follow a 302 with a GET); it is reported as such.
                response = session.post(url, json=payload, stream=True, allow_redirects=False,
                                        timeout=(self.connect_timeout, self.cfg.timeout_seconds))  # fmt: skip
                with response:
                    attempt.status, attempt.retry_after = response.status_code, response.headers.get("Retry-After")
        except Exception as exc:  # the sender reports it by type only
            attempt.error = exc
        finally:
            _current.attempt = None
            attempt.finished.set()
