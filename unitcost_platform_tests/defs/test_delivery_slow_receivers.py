"""Exactly-once delivery when a receiver is slow, hangs, or the tick dies mid-way: the real alert
sensor against a real Dagster instance and real local receivers (raw HTTP servers on 127.0.0.1).

Timeout 2 s and a tick budget of 5 s keep these quick: a tick starts a request only if the whole
timeout fits in what is left, so at most two unanswered requests fit in one tick.
"""

import collections
import contextlib
import json
import logging
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import dagster as dg
import pytest

from unitcost_platform.definitions import build_definitions
from unitcost_platform.defs.assets.reporting import ALERTS_METADATA_KEY
from unitcost_platform.defs.metadata import read_documents
from unitcost_platform.defs.sensors import ALERT_SENSOR, LEDGER_KEY
from unitcost_platform.notify.delivery import WebhookSender
from unitcost_platform_tests.helpers import focus_csv, write_customers_csv
from unitcost_platform_tests.saas import DAYS, run_range

SECRET = "s3cr3t-hook-t0k3n"
TIMEOUT, BUDGET = 2, 5
DRIP_SECONDS = 3
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


class Receiver:
    """A webhook receiver that records each POST once it has read it, then answers as `answer` says."""

    def __init__(self):
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.got: list[tuple[str, dict]] = []
        self.first_post = threading.Event()
        self.answer: Callable[[BaseHTTPRequestHandler, str, int], None] = answer_at_once
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                dest = self.path.split("/")[2]
                with receiver.lock:
                    receiver.got.append((dest, body))
                    n = len(receiver.got)
                receiver.first_post.set()
                with contextlib.suppress(OSError):  # the sender closed the connection: it has what it needed
                    receiver.answer(self, dest, n)

            def log_message(self, *args):  # the access log would print the secret path
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def url(self, dest: str) -> str:
        return f"http://127.0.0.1:{self.server.server_port}/hooks/{dest}/{SECRET}"

    def drip(self, handler: BaseHTTPRequestHandler, data: bytes) -> None:
        for i in range(len(data)):
            if self.stop.wait(DRIP_SECONDS):
                return
            handler.wfile.write(data[i : i + 1])
            handler.wfile.flush()

    def close(self) -> None:
        self.stop.set()
        self.server.shutdown()
        self.server.server_close()


def answer_at_once(handler: BaseHTTPRequestHandler, dest: str, n: int) -> None:
    handler.wfile.write(RESPONSE)


@pytest.fixture
def receiver():
    r = Receiver()
    yield r
    r.close()


@pytest.fixture
def deployment(small_saas, make_settings, receiver, monkeypatch):
    """The small SaaS with days 13-15 materialized and two more customers at P1: three P1 incidents
    (C2, C3, C4), each for comp (EC2's owner) and plat (the shared pools' owner)."""
    write_customers_csv(small_saas / "customers.csv", [
        {"customer_id": "C1", "tenant_id": "t1", "customer_name": "One", "tier": "mid-market", "mrr": 3000, "status": "active"},
        {"customer_id": "C2", "tenant_id": "t2", "customer_name": "Two", "tier": "smb", "mrr": 900, "status": "active"},
        {"customer_id": "C3", "tenant_id": "t3", "customer_name": "Three", "tier": "smb", "mrr": 900, "status": "active"},
        {"customer_id": "C4", "tenant_id": "t4", "customer_name": "Four", "tier": "smb", "mrr": 900, "status": "active"},
        {"customer_id": "F", "tenant_id": "tf", "customer_name": "Free", "tier": "free", "mrr": 0, "status": "active"},
    ])  # fmt: skip
    # $10 a day on 900 MRR: a run rate of 33% of MRR, a P1 from the first day.
    focus_csv(small_saas / "billing" / "more-tenants.csv", [
        {"day": d, "cost": 10.0, "tenant": t} for d in DAYS for t in ("t3", "t4")
    ])  # fmt: skip
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + (
        "notifications:\n"
        "  finops: fin\n"
        "  destinations:\n"
        "    fin: {type: slack, url_env: S_HOOK_FIN}\n"
        "    comp: {type: slack, url_env: S_HOOK_COMP}\n"
        "    plat: {type: webhook, url_env: S_HOOK_PLAT}\n"
        "  teams:\n"
        "    compute-team: {alerts: comp}\n"
        "    platform-team: {alerts: plat}\n"
        f"  max_retries: 1\n  backoff_seconds: 0.01\n  timeout_seconds: {TIMEOUT}\n  tick_budget_seconds: {BUDGET}\n"
    ))  # fmt: skip
    for name in ("fin", "comp", "plat"):
        monkeypatch.setenv(f"S_HOOK_{name.upper()}", receiver.url(name))
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()
    run_range(settings, DAYS[13], DAYS[15], instance=instance)
    return Deployment(build_definitions(settings), instance)


class _Collect(logging.Handler):
    def __init__(self, into: list[str]):
        super().__init__(logging.WARNING)
        self.into = into

    def emit(self, record: logging.LogRecord) -> None:
        self.into.append(record.getMessage())


class Deployment:
    """The alert sensor ticking against one instance, as the daemon would tick it."""

    def __init__(self, defs: dg.Definitions, instance: dg.DagsterInstance):
        self.defs, self.instance = defs, instance
        self.cursor: str | None = None
        self.durations: list[float] = []
        self.warnings: list[str] = []

    def tick(self) -> str:
        context = dg.build_sensor_context(instance=self.instance, cursor=self.cursor,
                                          resources={"unitcost": self.defs.resources["unitcost"]})  # fmt: skip
        # The sensor's logger is Dagster's own and does not propagate to caplog.
        context.log.addHandler(_Collect(self.warnings))
        started = time.monotonic()
        result = self.defs.resolve_sensor_def(ALERT_SENSOR)(context)
        self.durations.append(time.monotonic() - started)
        if isinstance(result, dg.SensorResult):
            self.cursor = result.cursor
            return result.skip_reason.skip_message
        return result.skip_message

    def ledger(self) -> dict:
        return json.loads(self.instance.run_storage.get_cursor_values({LEDGER_KEY})[LEDGER_KEY])

    def expected(self) -> set[tuple[str, str]]:
        """(destination, alert id) of the first P1/P2 of every incident the materializations hold."""
        records = self.instance.fetch_materializations(dg.AssetKey("alert_incidents"), limit=100).records
        alerts = [a for r in records for a in read_documents(r.asset_materialization.metadata[ALERTS_METADATA_KEY])]
        return {
            (dest, a["alert_id"]) for a in alerts
            if a["alert_type"] in ("P1", "P2") and a["day"] == a["opened_day"] for dest in ("comp", "plat")
        }  # fmt: skip

    def tick_until_nothing_pending(self, max_ticks: int = 6) -> list[str]:
        summaries = [self.tick()]
        while " 0 pending" not in summaries[-1] and len(summaries) < max_ticks:
            summaries.append(self.tick())
        return summaries


def _arrivals(receiver: Receiver) -> collections.Counter:
    """How many times each (destination, alert id) arrived; Slack messages name the alert in their header."""
    ids = []
    for dest, body in receiver.got:
        if dest == "plat":
            ids.append((dest, body["alert_id"]))
        else:  # ":rotating_light: P1 2026-03-14: Two (smb)" -> "2026-03-14:P1:C2"
            _, kind, day, name = body["blocks"][0]["text"]["text"].split()[:4]
            ids.append((dest, f"{day.rstrip(':')}:{kind}:{CUSTOMER_IDS[name]}"))
    return collections.Counter(ids)


CUSTOMER_IDS = {"Two": "C2", "Three": "C3", "Four": "C4"}


def _assert_exactly_once(deployment: Deployment, receiver: Receiver) -> None:
    arrivals = _arrivals(receiver)
    assert set(arrivals) == deployment.expected() and len(arrivals) == 6
    assert {k: n for k, n in arrivals.items() if n != 1} == {}
    assert max(deployment.durations) <= BUDGET + 0.5, deployment.durations


def _drip_everything(receiver: Receiver) -> Callable:
    def answer(handler: BaseHTTPRequestHandler, dest: str, n: int) -> None:
        if dest == "plat":
            receiver.drip(handler, RESPONSE)  # status line included: a byte every 3 s
        else:
            answer_at_once(handler, dest, n)

    return answer


def _drip_body(receiver: Receiver) -> Callable:
    def answer(handler: BaseHTTPRequestHandler, dest: str, n: int) -> None:
        if dest != "plat":
            return answer_at_once(handler, dest, n)
        handler.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\nConnection: close\r\n\r\n")
        handler.wfile.flush()
        receiver.drip(handler, b"x" * 100)

    return answer


def test_receiver_dripping_its_status_line_gets_each_alert_once(deployment, receiver):
    receiver.answer = _drip_everything(receiver)
    summaries = deployment.tick_until_nothing_pending()
    _assert_exactly_once(deployment, receiver)
    assert len(summaries) == 2  # three unanswered 2 s requests do not fit in one 5 s tick
    assert "wait for the next tick" in summaries[0]
    assert f"sent, no answer within {TIMEOUT}s: not resent, to avoid a duplicate" in summaries[0]
    ledger = deployment.ledger()
    assert ledger["pending"] == [] and len(ledger["delivered"]) == 6
    assert sorted(k.split("|")[-1] for k, v in ledger["delivered"].items() if v[2:] == ["unconfirmed"]) == ["plat"] * 3
    assert sum("sent, no answer within 2s" in w for w in deployment.warnings) == 3
    assert deployment.tick().startswith("read 0 alert(s); delivered 0; 0 pending")
    assert len(receiver.got) == 6


def test_receiver_dripping_its_body_is_answered_by_its_status(deployment, receiver):
    receiver.answer = _drip_body(receiver)
    summaries = deployment.tick_until_nothing_pending()
    _assert_exactly_once(deployment, receiver)
    # 3 incidents x 3 days of P1s, one message per incident and destination; the body is never waited for.
    assert summaries[0].startswith("read 9 alert(s); delivered 6; 0 pending")
    assert max(deployment.durations) < TIMEOUT


def test_receiver_hanging_on_the_first_post_gets_it_once(deployment, receiver):
    def answer(handler: BaseHTTPRequestHandler, dest: str, n: int) -> None:
        if n == 1 and receiver.stop.wait(20):
            return
        answer_at_once(handler, dest, n)

    receiver.answer = answer
    first: list[str] = []
    ticking = threading.Thread(target=lambda: first.append(deployment.tick()))
    ticking.start()
    assert receiver.first_post.wait(10)
    # The daemon ticks again while the first evaluation is still delivering: that one is skipped.
    assert "still delivering" in deployment.tick()
    assert any("still delivering" in w for w in deployment.warnings)
    ticking.join()
    deployment.tick_until_nothing_pending()
    _assert_exactly_once(deployment, receiver)
    assert "sent, no answer within 2s" in first[0] and "delivered 5; 1 sent, unconfirmed; 0 pending" in first[0]


class TickKilled(BaseException):
    """Stands for Dagster giving up on a tick: nothing after it runs, the cursor is not saved."""


def test_a_tick_that_dies_mid_way_does_not_resend_what_it_delivered(deployment, receiver, monkeypatch):
    real_send = WebhookSender.send
    sends = []

    def dying_send(self, *args, **kwargs):
        result = real_send(self, *args, **kwargs)
        sends.append(result)
        if len(sends) == 3:
            raise TickKilled
        return result

    monkeypatch.setattr(WebhookSender, "send", dying_send)
    with pytest.raises(TickKilled):
        deployment.tick()
    assert deployment.cursor is None and len(receiver.got) == 3
    summary = deployment.tick()
    assert summary.startswith("read 0 alert(s); delivered 3; 0 pending"), summary
    _assert_exactly_once(deployment, receiver)
