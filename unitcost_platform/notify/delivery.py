"""POSTing messages to webhooks with bounded retries, and error text that never carries the URL.

Webhook URLs are secrets (a Slack incoming webhook URL is the credential): they are read through
`dg.EnvVar` when a message is sent and appear in no log line, metadata, cursor or error.
"""

import time
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg
import requests

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.retry_after import retry_after_seconds


@dataclass(frozen=True)
class Delivery:
    ok: bool
    detail: str  # what happened, safe to log: "HTTP 200", "timed out after 10s", "HTTP 429, retry after 120s"
    attempts: int


class WebhookSender:
    """Sends JSON to configured destinations; one instance per sensor tick or run."""

    def __init__(
        self,
        cfg: NotificationsConfig,
        session: requests.Session | None = None,
        sleep: Callable[[float], None] = time.sleep,
        clock: Callable[[], float] = time.monotonic,
    ):
        self.cfg = cfg
        self.session = session or requests.Session()
        self.sleep = sleep
        self.clock = clock

    def destination_type(self, destination: str) -> str:
        return self.cfg.destinations[destination].type

    def missing_secret(self, destination: str) -> str | None:
        """The env var a destination needs but does not have, if any."""
        env = self.cfg.destinations[destination].url_env
        return None if dg.EnvVar(env).get_value() else env

    def send(self, destination: str, payload: dict, deadline: float | None = None) -> Delivery:
        """POST with up to `attempts` tries and exponential backoff, stopping at `deadline`."""
        env = self.cfg.destinations[destination].url_env
        url = dg.EnvVar(env).get_value()
        if not url:
            return Delivery(False, f"environment variable {env} is not set", 0)
        detail = "not attempted"
        for attempt in range(1, self.cfg.attempts + 1):
            wait = min(self.cfg.backoff_seconds * 2 ** (attempt - 1), self.cfg.max_backoff_seconds)
            try:
                response = self.session.post(url, json=payload, timeout=self.cfg.timeout_seconds)
            except requests.Timeout:
                detail = f"timed out after {self.cfg.timeout_seconds:g}s"
            except requests.ConnectionError:
                detail = "connection failed (receiver down or unreachable)"
            except requests.RequestException as exc:  # the message could contain the URL: say the type only
                detail = f"request failed ({type(exc).__name__})"
            else:
                if 200 <= response.status_code < 300:
                    return Delivery(True, f"HTTP {response.status_code}", attempt)
                body = (response.text or "").strip().replace("\n", " ")[:120]
                detail = f"HTTP {response.status_code}" + (f" ({body})" if body else "")
                if response.status_code == 429:
                    asked = retry_after_seconds(response.headers.get("Retry-After"))
                    if asked is not None:
                        detail += f", Retry-After {asked:g}s"
                        if asked > self.cfg.max_backoff_seconds:
                            return Delivery(False, detail + " exceeds the wait allowed in one tick", attempt)
                        wait = asked
            if attempt == self.cfg.attempts:
                break
            if deadline is not None and self.clock() + wait > deadline:
                return Delivery(False, detail + "; out of time this tick", attempt)
            self.sleep(wait)
        return Delivery(False, detail, self.cfg.attempts)
