"""The one retry policy: every HTTP connector (Azure, Datadog, New Relic, OpenCost, Prometheus), Cost
Explorer's throttling and alert delivery retry through `retrying`, built on tenacity.

The settings have the same names wherever they appear in unitcost.yaml (`RetrySettings` in
config.py): `timeout_seconds` per request, `max_retries` after the first try, `backoff_seconds`
doubled at each retry up to `max_wait_seconds`, and a service's own Retry-After (or its cousins)
honoured when it asks, a wait longer than `max_wait_seconds` being the caller's error to report.
"""

from collections.abc import Callable
from typing import TypeVar

import tenacity

T = TypeVar("T")
__all__ = ["Retry", "RetriesExhausted", "backoff", "retrying"]


class Retry(Exception):
    """Raised by one try that is worth another: what happened, and the wait the service asked for."""

    def __init__(self, problem: str, asked: float | None = None):
        super().__init__(problem)
        self.problem, self.asked = problem, asked


class RetriesExhausted(Exception):
    """The last allowed try also failed (or the caller's `give_up` said no more); the caller says so
    in its own words."""

    def __init__(self, retries: int, problem: str, gave_up: bool = False):
        super().__init__(problem)
        self.retries, self.problem, self.gave_up = retries, problem, gave_up


def backoff(settings, retry: int, asked: float | None = None) -> float:
    """The wait before retry number `retry` (1-based): what the service asked, or the doubling backoff."""
    if asked is not None:
        return asked
    return min(settings.backoff_seconds * 2 ** (retry - 1), settings.max_wait_seconds)


def retrying(
    settings,
    attempt: Callable[[], T],
    *,
    sleep: Callable[[float], None],
    on_retry: Callable[[int, float, str], None] = lambda retry, wait, problem: None,
    give_up: Callable[[float], bool] = lambda wait: False,
) -> T:
    """`attempt()`'s result, trying again while it raises `Retry`, at most `settings.max_retries`
    times and while `give_up(the next wait)` is false (a deadline); `on_retry(retry number, wait,
    problem)` before each wait. Raises `RetriesExhausted`."""
    gave_up = False

    def stop(state: tenacity.RetryCallState) -> bool:
        nonlocal gave_up
        if state.attempt_number > settings.max_retries:
            return True
        gave_up = give_up(state.upcoming_sleep)
        return gave_up

    def wait(state: tenacity.RetryCallState) -> float:
        asked = getattr(state.outcome.exception(), "asked", None)
        return backoff(settings, state.attempt_number, asked)

    def before_sleep(state: tenacity.RetryCallState) -> None:
        on_retry(state.attempt_number, state.upcoming_sleep, state.outcome.exception().problem)

    policy = tenacity.Retrying(
        stop=stop,
        wait=wait,
        retry=tenacity.retry_if_exception_type(Retry),
        sleep=sleep,
        before_sleep=before_sleep,
        reraise=True,
    )
    try:
        return policy(attempt)
    except Retry as last:
        raise RetriesExhausted(settings.max_retries, last.problem, gave_up) from None
