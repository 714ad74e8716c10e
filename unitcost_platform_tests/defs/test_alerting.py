"""Alert delivery, run-failure notice, schedules and blocking checks against a real Dagster instance
and a real local HTTP server standing in for Slack and a generic webhook.

The small SaaS of conftest.py, worked out by hand: C2 costs 6.4/day on days 0-8 and 11.4/day on
days 9-15 against 900 MRR, so its 30-day run rate is 21.3% of MRR (P2) through day 10 and crosses
25% (P1) on day 11; its 7-day growth exceeds 15% on days 13-15 (TREND). C1 (12.4/day on 3,000 MRR)
and the free customer raise nothing. C2's drivers are EC2 (compute-team) and NAT/CloudWatch
(platform-team).
"""

import datetime as dt
import json
import logging

import dagster as dg
import duckdb
import pytest
from werkzeug import Response

from unitcost_platform.definitions import build_definitions
from unitcost_platform.defs.schedules import DAILY_SCHEDULE, DIGEST_JOB, DIGEST_SCHEDULE
from unitcost_platform.defs.sensors import ALERT_SENSOR, LEDGER_KEY, RUN_FAILURE_SENSOR
from unitcost_platform_tests.saas import DAYS, read_table, run_range, write_customers_csv

SECRET = "xoxb-s3cr3t-t0k3n"
P2_DAYS = [d.isoformat() for d in DAYS[:11]]
P1_DAYS = [d.isoformat() for d in DAYS[11:]]


class LogRecords(logging.Handler):
    """Keeps what a sensor logs: its logger is Dagster's own and does not propagate to caplog."""

    def __init__(self):
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture
def alerting(small_saas, make_settings, httpserver, monkeypatch):
    """The small SaaS wired to three destinations on the local server, and a real instance."""
    config = small_saas / "unitcost.yaml"
    config.write_text(config.read_text() + (
        "notifications:\n"
        "  dagster_url: http://dagster.example\n"
        "  finops: fin\n"
        "  destinations:\n"
        "    fin: {type: slack, url_env: T_HOOK_FIN}\n"
        "    comp: {type: slack, url_env: T_HOOK_COMP}\n"
        "    plat: {type: webhook, url_env: T_HOOK_PLAT}\n"
        "  teams:\n"
        "    compute-team: {alerts: comp}\n"
        "    platform-team: {alerts: plat}\n"
        "  max_retries: 1\n  backoff_seconds: 0.01\n  timeout_seconds: 1\n"
    ))
    for name in ("fin", "comp", "plat"):
        monkeypatch.setenv(f"T_HOOK_{name.upper()}", httpserver.url_for(f"/hooks/{name}/{SECRET}"))
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()

    class Env:
        pass

    env = Env()
    env.settings, env.instance, env.data = settings, instance, small_saas
    env.defs = build_definitions(settings)
    env.cursor = None
    env.log = LogRecords()

    def tick():
        sensor = env.defs.resolve_sensor_def(ALERT_SENSOR)
        context = dg.build_sensor_context(instance=instance, cursor=env.cursor, resources={"unitcost": env.defs.resources["unitcost"]})
        context.log.addHandler(env.log)
        result = sensor(context)
        env.cursor = result.cursor
        return result

    env.tick = tick
    return env


def restate_customers(data, c2_mrr: float = 900, c2_name: str = "Two") -> None:
    """The small SaaS's customers file again, with C2's MRR or name changed (a restatement)."""
    write_customers_csv(data / "customers.csv", [
        {"customer_id": "C1", "tenant_id": "t1", "customer_name": "One", "tier": "mid-market", "mrr": 3000, "status": "active"},
        {"customer_id": "C2", "tenant_id": "t2", "customer_name": c2_name, "tier": "smb", "mrr": c2_mrr, "status": "active"},
        {"customer_id": "F", "tenant_id": "tf", "customer_name": "Free", "tier": "free", "mrr": 0, "status": "active"},
    ])  # fmt: skip


def _received(httpserver) -> list[tuple[str, dict]]:
    return [(req.path.split("/")[2], json.loads(req.get_data())) for req, _ in httpserver.log]


def _alert_id(dest: str, body: dict) -> str:
    if dest == "plat":
        return body["alert_id"]
    return body["blocks"][0]["text"]["text"]  # Slack header: "<icon> P1 2026-03-12: Two (smb)"


def _alerts(got: list[tuple[str, dict]], dest: str) -> list[dict | str]:
    """The alert messages a destination received (not the unit-cost ones): documents, or Slack headers."""
    if dest == "plat":
        return [b for d, b in got if d == dest and b["kind"] == "unitcost.alert"]
    return [b["blocks"][0]["text"]["text"] for d, b in got if d == dest and not b["text"].startswith(":bar_chart:")]


def test_an_incident_arrives_once_when_it_opens_and_once_when_it_escalates(alerting, httpserver):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    # The daily schedule's rhythm, in two steps: days 0-10 (C2 at P2), then 11-15 (P1 from day 11).
    run_range(alerting.settings, DAYS[0], DAYS[10], instance=alerting.instance)
    first = alerting.tick().skip_reason.skip_message
    # 11 daily P2 alerts of one incident: sent once per owner, the other 10 days are the same incident.
    assert first.startswith("read 11 alert(s); delivered 2; 0 pending") and "20 already delivered" in first
    [opened] = _alerts(_received(httpserver), "plat")
    assert opened["alert_id"] == f"{DAYS[0]}:P2:C2" and opened["incident_id"] == f"{DAYS[0]}:COST_TO_MRR:C2"
    assert opened["days_open"] == 0 and "escalated_from" not in opened

    run_range(alerting.settings, DAYS[11], DAYS[15], instance=alerting.instance)
    result = alerting.tick()
    got = _received(httpserver)
    plat = _alerts(got, "plat")
    assert [d["alert_id"] for d in plat] == [f"{DAYS[0]}:P2:C2", f"{DAYS[11]}:P1:C2"]
    doc = plat[1]
    assert doc["escalated_from"] == "P2" and doc["incident_id"] == f"{DAYS[0]}:COST_TO_MRR:C2"
    assert doc["opened_day"] == DAYS[0].isoformat() and doc["days_open"] == 11
    assert doc["customer"] == {"id": "C2", "name": "Two", "tier": "smb", "segment": "smb", "mrr": 900.0}
    run_rate = 30 * (9 * 6.4 + 3 * 11.4) / 12  # 229.5 on day 11
    assert doc["monthly_run_rate"] == pytest.approx(run_rate)
    assert doc["cost_to_mrr"] == pytest.approx(run_rate / 900)
    assert [d["service"] for d in doc["drivers"]][:1] == ["Amazon EC2"]
    assert doc["link"] == f"http://dagster.example/assets/alert_incidents?view=partitions&partition={DAYS[11]}"
    assert doc["routed_as"] == "platform-team immediately"
    comp = _alerts(got, "comp")
    assert len(comp) == 3 and ":rotating_light: P1" in comp[1] and "escalated from P2" in comp[1]
    assert f"open since {DAYS[0]}" in comp[1]
    # C2's cost per request doubled on day 9 on flat requests (5 -> 10 direct for 500 requests): a unit
    # price regression, scored once 14 baseline days exist, sent to EC2's owner only.
    assert comp[2].startswith(f":mag: ANOMALY {DAYS[14]}: Two")  # day 14: days 0-13 are its baseline
    assert not any(dest == "fin" for dest, _ in got)  # no SEGMENT; TREND waits for the digest
    # EC2's cost per customer moved more than 10% against 7 days earlier on days 13, 14 and 15 (hand-worked
    # in test_engineers_view): one unit-cost message a day to compute-team, its owner.
    unit = [b for d, b in got if d == "comp" and b["text"].startswith(":bar_chart:")]
    assert [b["blocks"][0]["text"]["text"].rsplit(" ", 1)[1] for b in unit] == [d.isoformat() for d in DAYS[13:16]]
    # 5 P1 + 3 TREND + 1 ANOMALY alerts and 3 unit-cost messages; the P1 of days 12-15 joined the
    # queued escalation.
    summary = result.skip_reason.skip_message
    assert summary.startswith("read 12 alert(s); delivered 6; 0 pending") and "2 escalation(s)" in summary

    # The next tick has nothing new; a re-materialized day is not delivered again.
    assert alerting.tick().skip_reason.skip_message.startswith("read 0 alert(s); delivered 0")
    run_range(alerting.settings, DAYS[12], DAYS[12], instance=alerting.instance)
    again = alerting.tick().skip_reason.skip_message
    assert "delivered 0" in again and "2 already delivered (not sent again)" in again
    assert len(httpserver.log) == 8


def test_escalation_on_a_restated_day_is_delivered(alerting, httpserver):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    run_range(alerting.settings, DAYS[0], DAYS[10], instance=alerting.instance)
    alerting.tick()
    before = len(httpserver.log)
    # C2's MRR restated to 700: day 5's run rate of 192 is now 27% of MRR, a P1 of the open P2 incident.
    restate_customers(alerting.data, c2_mrr=700)
    run_range(alerting.settings, DAYS[5], DAYS[5], instance=alerting.instance)
    result = alerting.tick()
    new = _received(httpserver)[before:]
    assert sorted(dest for dest, _ in new) == ["comp", "plat"]
    doc = next(b for d, b in new if d == "plat")
    assert doc["alert_id"] == f"{DAYS[5]}:P1:C2" and doc["escalated_from"] == "P2"
    assert "2 escalation(s)" in result.skip_reason.skip_message
    # Re-materializing the day again sends nothing more.
    run_range(alerting.settings, DAYS[5], DAYS[5], instance=alerting.instance)
    assert "delivered 0" in alerting.tick().skip_reason.skip_message and len(httpserver.log) == before + 2


def test_failed_delivery_stays_pending_and_is_retried_next_tick(alerting, httpserver, caplog):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("upstream down", status=500)
    run_range(alerting.settings, DAYS[14], DAYS[15], instance=alerting.instance)
    with caplog.at_level(logging.DEBUG):
        first = alerting.tick().skip_reason.skip_message
    assert "delivered 1; 1 pending" in first  # one P1 incident opened on day 14, to comp and plat
    assert f"{DAYS[14]}:P1:C2 to plat: HTTP 500 (Internal Server Error)" in first  # the status, never the body
    cursor = json.loads(alerting.cursor)
    assert {p["last_error"] for p in cursor["pending"]} == {"HTTP 500 (Internal Server Error)"}

    httpserver.clear_all_handlers()
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_response(
        Response("slow down", status=429, headers={"Retry-After": "600"})
    )
    second = alerting.tick().skip_reason.skip_message
    assert "Retry-After 600s exceeds the wait allowed in one tick" in second and "1 pending" in second

    httpserver.clear_all_handlers()
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    third = alerting.tick().skip_reason.skip_message
    assert "delivered 1; 0 pending" in third
    delivered_plat = [b["alert_id"] for d, b in _received(httpserver) if d == "plat" and b]
    assert sorted(set(delivered_plat)) == [f"{DAYS[14]}:P1:C2"]
    assert len([r for r, resp in httpserver.log if resp.status_code == 200 and "/plat/" in r.path]) == 1
    # The secret URL is in none of our log lines (nor Dagster's), the cursor or the tick messages.
    # (urllib3's own DEBUG log and the test server's access log print request paths; they are not ours.)
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("urllib3", "werkzeug")))
    assert "could not deliver" in alerting.log.text()
    everything = ours + alerting.log.text() + first + second + third + alerting.cursor
    assert SECRET not in everything and "/hooks/" not in everything


def test_a_404_echoing_the_secret_path_is_never_stored_or_logged(alerting, httpserver, caplog):
    # Express (and many proxies) answer an unknown route with "Cannot POST <path>": the path holds the token.
    for name in ("comp", "plat"):
        path = f"/hooks/{name}/{SECRET}"
        httpserver.expect_request(path).respond_with_response(
            Response(f"<pre>Cannot POST {path}</pre>", status=404, headers={"Content-Type": "text/html"})
        )
    run_range(alerting.settings, DAYS[14], DAYS[15], instance=alerting.instance)
    with caplog.at_level(logging.INFO):
        summaries = [alerting.tick().skip_reason.skip_message for _ in range(2)]
    assert "HTTP 404 (Not Found)" in summaries[0] and "2 pending" in summaries[1]
    ledger = alerting.instance.run_storage.get_cursor_values({LEDGER_KEY})[LEDGER_KEY]
    assert {p["last_error"] for p in json.loads(ledger)["pending"]} == {"HTTP 404 (Not Found)"}
    # The test server's own access log (werkzeug) prints request paths; it is not ours.
    logged = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith("werkzeug")) + alerting.log.text()
    assert "could not deliver" in logged
    for text in (logged, *summaries, alerting.cursor, ledger):
        assert SECRET not in text and "Cannot POST" not in text


def test_customer_names_cannot_page_a_slack_channel(alerting, httpserver):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    restate_customers(alerting.data, c2_name="Acme <!channel> & Co")
    run_range(alerting.settings, DAYS[15], DAYS[15], instance=alerting.instance)
    alerting.tick()
    got = dict(_received(httpserver))
    slack = json.dumps(got["comp"])
    assert "<!channel>" not in slack and "Acme &lt;!channel&gt; &amp; Co (smb)" in got["comp"]["text"]
    assert "|Open in Dagster>" in slack  # our own link markup stays
    assert got["plat"]["customer"]["name"] == "Acme <!channel> & Co"  # a JSON document carries the data as it is


def test_run_failure_tells_finops(alerting, httpserver):
    httpserver.expect_request("/hooks/fin/" + SECRET).respond_with_data("ok")
    billing = alerting.data / "billing" / "march-a.csv"
    billing.write_text(billing.read_text().replace("USD", "EUR", 1))  # mixed currency on day 0
    result = run_range(alerting.settings, DAYS[0], DAYS[0], instance=alerting.instance, raise_on_error=False)
    assert not result.success
    run = alerting.instance.get_run_by_id(result.run_id)
    failure = next(e for e in result.all_events if e.event_type == dg.DagsterEventType.RUN_FAILURE)
    context = dg.build_run_status_sensor_context(
        sensor_name=RUN_FAILURE_SENSOR, dagster_instance=alerting.instance, dagster_run=run, dagster_event=failure,
        resources={"unitcost": alerting.defs.resources["unitcost"]},
    ).for_run_failure()
    alerting.defs.resolve_sensor_def(RUN_FAILURE_SENSOR)(context)
    [(dest, body)] = _received(httpserver)
    assert dest == "fin" and "The unit_cost_daily run failed" in body["text"]
    # The step's own error, naming the day and the fix, not only "Steps failed: [raw_billing]": in the
    # message's block whole; the notification's fallback text (clipped at 300 characters, so how much
    # of the error it shows depends on the file's path) names the step.
    assert "raw_billing: " in body["text"]
    shown = body["blocks"][0]["text"]["text"]
    assert "raw_billing: " in shown and "mixes currencies" in shown and "EUR" in shown
    assert f"http://dagster.example/runs/{run.run_id}" in json.dumps(body)


def test_a_run_reported_failed_twice_tells_finops_once(alerting, httpserver):
    # When a run worker dies, the code server that launched it and the daemon's run monitoring can both
    # report the run failed; Dagster then stores two failure events and runs the sensor for each.
    httpserver.expect_request("/hooks/fin/" + SECRET).respond_with_data("ok")
    billing = alerting.data / "billing" / "march-a.csv"
    billing.write_text(billing.read_text().replace("USD", "EUR", 1))
    result = run_range(alerting.settings, DAYS[0], DAYS[0], instance=alerting.instance, raise_on_error=False)
    run = alerting.instance.get_run_by_id(result.run_id)
    alerting.instance.report_run_failed(run, "Detected run worker status FAILED. Marking run as failed.")
    failures = [r.event_log_entry.dagster_event for r in alerting.instance.get_records_for_run(
        run.run_id, of_type=dg.DagsterEventType.RUN_FAILURE).records]  # fmt: skip
    assert len(failures) == 2
    sensor = alerting.defs.resolve_sensor_def(RUN_FAILURE_SENSOR)
    outcomes = [
        sensor(dg.build_run_status_sensor_context(
            sensor_name=RUN_FAILURE_SENSOR, dagster_instance=alerting.instance, dagster_run=run, dagster_event=failure,
            resources={"unitcost": alerting.defs.resources["unitcost"]},
        ).for_run_failure())
        for failure in failures
    ]  # fmt: skip
    [(dest, body)] = _received(httpserver)
    assert dest == "fin" and "mixes currencies" in body["text"]  # the first report's error
    assert outcomes[0] is None and "reported failed twice" in outcomes[1].skip_message


def test_daily_schedule_runs_yesterday(alerting):
    schedule = alerting.defs.resolve_schedule_def(DAILY_SCHEDULE)
    assert schedule.cron_schedule == "0 6 * * *" and schedule.execution_timezone in (None, "UTC")
    context = dg.build_schedule_context(
        instance=alerting.instance, scheduled_execution_time=dt.datetime(2026, 3, 17, 6, tzinfo=dt.UTC),
        repository_def=alerting.defs.get_repository_def(),
    )
    [request] = schedule.evaluate_tick(context).run_requests
    assert request.partition_key == "2026-03-16"


def test_weekly_digest_sends_one_message_per_destination(alerting, httpserver):
    for name in ("fin", "comp", "plat"):
        httpserver.expect_request(f"/hooks/{name}/{SECRET}").respond_with_data("ok")
    run_range(alerting.settings, DAYS[0], DAYS[-1], instance=alerting.instance)
    schedule = alerting.defs.resolve_schedule_def(DIGEST_SCHEDULE)
    assert schedule.cron_schedule == "0 9 * * 1"
    tick_time = dt.datetime(2026, 3, 16, 9, tzinfo=dt.UTC)  # Monday after the week 2026-03-09..15
    [request] = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick_time)).run_requests
    assert request.run_key == "digest-2026-03-15"
    job = alerting.defs.resolve_job_def(DIGEST_JOB)
    result = job.execute_in_process(
        run_config=request.run_config, instance=alerting.instance,
        resources={"unitcost": alerting.defs.resources["unitcost"]},
    )  # fmt: skip
    assert result.success
    received = _received(httpserver)
    assert sorted(dest for dest, _ in received) == ["comp", "fin", "plat"]  # one message each
    got = dict(received)
    # TREND on days 13-15 (03-14..03-16): two of them fall in the week; the untagged Lambda is a
    # propagation gap on each of the 7 days.
    assert got["fin"]["text"] == "Unit-cost weekly digest 2026-03-09..2026-03-15: 2 TREND, 0 SEGMENT, 7 check warning(s)"
    assert json.dumps(got["fin"]).count("tag_propagation_gaps") == 7
    assert "2 TREND alert(s) your services drove" in got["comp"]["text"]  # EC2 is compute-team's
    assert got["plat"]["kind"] == "unitcost.digest" and len(got["plat"]["sections"][0]["items"]) == 2
    # The digest runs once a week: a second tick of the same week asks for the same run key.
    again = schedule.evaluate_tick(dg.build_schedule_context(scheduled_execution_time=tick_time)).run_requests
    assert again[0].run_key == request.run_key


def test_failing_conservation_blocks_unit_cost(small_saas, make_settings, monkeypatch):
    import unitcost_platform.defs.assets.allocation as allocation_assets

    real = allocation_assets.allocation_sql

    def leaky(*args, **kwargs):  # a bug that loses a dollar of NAT cost
        return (
            "select day, customer_id, tenant_id, service_name, pool, allocation_method, driver, allocation_ratio, "
            "case when pool = 'nat_gateway' then allocated_cost * 0.9 else allocated_cost end as allocated_cost, "
            f"unallocated_reason from ({real(*args, **kwargs)}) as leaked"
        )

    monkeypatch.setattr(allocation_assets, "allocation_sql", leaky)
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()
    result = run_range(settings, DAYS[2], DAYS[3], instance=instance, raise_on_error=False)
    assert not result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert "allocated_cost" in materialized and "unit_cost" not in materialized and "cost_alerts" not in materialized
    evaluations = [e.event_specific_data for e in result.all_events if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION]
    conservation = {ev.partition: ev for ev in evaluations if ev.check_name == "conservation"}
    assert set(conservation) == {DAYS[2].isoformat(), DAYS[3].isoformat()}
    failed = conservation[DAYS[2].isoformat()]
    assert not failed.passed and failed.blocking
    assert failed.metadata["difference"].value == pytest.approx(-0.3)  # 10% of the 3.00 NAT cost
    # The report checks that do not read the failed allocation still ran; they never block.
    assert {ev.check_name for ev in evaluations} >= {"tag_coverage_floor", "usage_freshness", "attribution_drift"}
    with pytest.raises(duckdb.CatalogException, match="unit_cost does not exist"):
        read_table(settings, "unit_cost")
