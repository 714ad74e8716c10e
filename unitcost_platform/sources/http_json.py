"""The requests the JSON APIs share (Azure Cost Management, Datadog, New Relic NerdGraph, OpenCost).

429, 5xx and connection failures are retried through the one retry policy (`unitcost_platform.retries`),
waiting what the service asks (Retry-After and its cousins) or the doubling backoff; a wait longer
than allowed, any other refusal, or a 2xx body that is not a JSON object is an error written for a
person. Error texts never quote the request: URLs and headers can carry secrets.
"""

import contextlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import requests

from unitcost_platform.config_base import RetrySettings
from unitcost_platform.errors import UnitcostError
from unitcost_platform.retries import RetriesExhausted, Retry, retrying


def redact(text: str, secrets: list[str | None]) -> str:
    """`text` with every occurrence of a secret replaced by ***."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, "***")
    return text


def redacting(log: Callable[[str], None] | None, secrets: list[str | None]) -> Callable[[str], None]:
    """A log function that never writes a secret (a no-op without `log`)."""
    return (lambda line: log(redact(line, secrets))) if log else (lambda _line: None)


@contextlib.contextmanager
def session_keeping_secrets(
    session: requests.Session | None, error: type[UnitcostError], secrets: list[str | None]
) -> Iterator[requests.Session]:
    """The session to call the API with (a new one, closed after, unless the caller gave one); an
    `error` raised inside loses every secret: a service that echoes the request back must not carry
    a key or token into an error."""
    http = session or requests.Session()
    try:
        yield http
    except error as exc:
        raise error(redact(str(exc), secrets)) from None
    finally:
        if session is None:
            http.close()


@dataclass(frozen=True)
class JsonService:
    """How one API is called and talked about."""

    name: str  # in messages: "Datadog", "NerdGraph", "Azure Cost Management"
    tag: str  # in log lines: "datadog"
    error: type[UnitcostError]
    settings: RetrySettings  # the source's timeout_seconds, max_retries, backoff_seconds, max_wait_seconds
    wait_setting: str  # the config key of max_wait_seconds, for the message that names it
    wait_for: Callable[[requests.Response], float | None]  # what a 429/5xx asks to wait, in seconds
    refusal: Callable[[requests.Response], str]  # the message of a 4xx that is not retried
    throttled: Callable[[requests.Response], str] = lambda _: "rate limited (HTTP 429)"


def request_json(
    service: JsonService,
    send: Callable[[], requests.Response],
    what: str,
    sleep: Callable[[float], None],
    say: Callable[[str], None],
    empty_statuses: tuple[int, ...] = (),
) -> dict | None:
    """The JSON object `send()` answers with, None for an `empty_statuses` answer (e.g. 204)."""
    settings = service.settings

    def attempt() -> dict | None:
        try:
            response = send()
        except requests.RequestException as exc:  # the text could carry the URL or a proxy's: type only
            raise Retry(f"request failed ({type(exc).__name__})") from None
        status = response.status_code
        if status in empty_statuses:
            return None
        if 200 <= status < 300:
            try:
                payload = response.json()
            except ValueError:
                payload = None
            if not isinstance(payload, dict):
                raise service.error(
                    f"{service.name} answered the query for {what} with HTTP {status} and a body that "
                    "is not a JSON object"
                )
            return payload
        if status != 429 and status < 500:
            raise service.error(service.refusal(response))
        problem = service.throttled(response) if status == 429 else f"HTTP {status}"
        asked = service.wait_for(response)
        if asked is not None and asked > settings.max_wait_seconds:
            raise service.error(
                f"{service.name} {problem} for {what} and asked to wait {asked:g}s, longer than "
                f"{service.wait_setting} ({settings.max_wait_seconds:g}s); run again later or raise that limit"
            )
        raise Retry(problem, asked)

    def on_retry(retry: int, wait: float, problem: str) -> None:
        say(f"{service.tag} {what}: {problem}, retry {retry} of {settings.max_retries} in {wait:g}s")

    try:
        return retrying(settings, attempt, sleep=sleep, on_retry=on_retry)
    except RetriesExhausted as exc:
        raise service.error(f"{service.name} query for {what} still failed after {exc.retries} retries: {exc.problem}") from None
