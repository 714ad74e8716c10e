"""The engineers' loop on the small SaaS, through real Dagster runs and a local HTTP receiver:
service unit cost against a target, an incident that opens, escalates and resolves, each message once.

Worked by hand (conftest's small SaaS): Amazon EC2 (compute-team) costs 10 + 5 + 2 = $17/day on days
0-8 and 10 + 10 + 2 = $22/day from day 9, over 3 active customers. Its cost per customer per month on
day 13 is 30 x (9 x 17 + 5 x 22) / 14 / 3 = 187.857, against 30 x 17 / 3 = 170 on day 6: +10.5%, past
the 10% that tells the owner; days 14 and 15 too (+11.8%, +12.9%); day 12 is +9.0%.
C2 is at P2 from day 0 and P1 from day 11. When C2's MRR is restated to $5,000 and days 13-15 re-run,
its last alert is on day 12, so the incident resolves on day 15 (3 quiet days).
"""

import json

import dagster as dg
import pytest

from unitcost_platform_tests.defs.test_alerting import SECRET, _received, restate_customers
from unitcost_platform_tests.saas import DAYS, read_table, run_range

INCIDENT = f"{DAYS[0]}:COST_TO_MRR:C2"


def _with_target(alerting, target: float) -> None:
    config = alerting.data / "unitcost.yaml"
    config.write_text(config.read_text() + f"targets:\n  services: {{Amazon EC2: {target}}}\n")


def test_service_unit_cost_against_a_target_on_real_runs(alerting):
    _with_target(alerting, 186.0)
    run_range(alerting.settings, DAYS[0], DAYS[15], instance=alerting.instance)
    table = read_table(alerting.settings, "service_unit_cost")
    ec2 = {r["day"]: r for r in table.filter(table["service_name"] == "Amazon EC2").iter_rows(named=True)}
    day13 = ec2[DAYS[13]]
    assert day13["owner"] == "compute-team" and day13["active_customers"] == 3 and day13["customers_with_cost"] == 3
    assert day13["cost"] == pytest.approx(22.0) and day13["unallocated_cost"] == 0.0
    assert day13["monthly_run_rate"] == pytest.approx(30 * (9 * 17 + 5 * 22) / 14)
    assert day13["cost_per_customer_month"] == pytest.approx(30 * (9 * 17 + 5 * 22) / 14 / 3)
    assert day13["change_7d"] == pytest.approx(187.857142857 / 170 - 1)
    assert day13["target_ratio"] == pytest.approx(187.857142857 / 186) and day13["over_target"]
    # Per customer on day 13 (30 x mean of its own EC2 cost): C1 300, C2 30 x (9 x 5 + 5 x 10) / 14, F 60.
    c2 = 30 * (9 * 5 + 5 * 10) / 14
    assert day13["p50_customer_month"] == pytest.approx(c2) and day13["max_customer_month"] == pytest.approx(300.0)
    assert day13["p90_customer_month"] == pytest.approx(c2 + 0.8 * (300 - c2))  # position 1.8 of [60, c2, 300]
    assert day13["top_customers"].startswith("One $300.00/month; Two $")
    # Day 12: 30 x (9 x 17 + 4 x 22) / 13 / 3 = 185.38, within the target: day 13 crosses it.
    assert ec2[DAYS[12]]["cost_per_customer_month"] == pytest.approx(30 * 241 / 13 / 3) and not ec2[DAYS[12]]["over_target"]
    assert ec2[DAYS[5]]["change_7d"] is None  # day -2 does not exist
    # Every service with cost in the window is there; the day's services add up to the allocated bill.
    allocated = read_table(alerting.settings, "allocated_cost")
    for day in (DAYS[0], DAYS[15]):
        rows = table.filter(table["day"] == day)
        billed = allocated.filter(allocated["day"] == day)["allocated_cost"].sum()
        assert (rows["cost"].sum() + rows["unallocated_cost"].sum()) == pytest.approx(billed, rel=1e-12)
        assert set(rows["service_name"]) == set(allocated.filter(allocated["day"] == day)["service_name"])


def test_resolved_and_unit_cost_messages_arrive_exactly_once(alerting, httpserver, caplog):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    run_range(alerting.settings, DAYS[0], DAYS[10], instance=alerting.instance)
    alerting.tick()
    run_range(alerting.settings, DAYS[11], DAYS[12], instance=alerting.instance)
    alerting.tick()
    assert len(httpserver.log) == 4  # P2 opened, then P1 escalated, to comp and plat

    # The fix: C2's revenue is restated, days 13-15 re-run; the cost-to-MRR incident resolves on day 15.
    restate_customers(alerting.data, c2_mrr=5000)
    run_range(alerting.settings, DAYS[13], DAYS[15], instance=alerting.instance)
    incidents = read_table(alerting.settings, "alert_incidents")
    last = incidents.filter((incidents["day"] == DAYS[15]) & (incidents["incident_id"] == INCIDENT)).row(0, named=True)
    assert last["status"] == "resolved" and last["last_alert_day"] == DAYS[12] and last["days_open"] == 15
    assert last["value_at_open"] == pytest.approx(30 * 6.4 / 900)  # day 0: one day of history
    assert last["peak_value"] == pytest.approx(30 * (9 * 6.4 + 4 * 11.4) / 13 / 900)  # day 12
    assert last["value_now"] == pytest.approx(30 * (9 * 6.4 + 7 * 11.4) / 16 / 5000)
    assert last["peak_severity"] == "P1"

    # plat fails twice (both tries of a tick), then takes it: the message waits one tick, is sent once.
    for _ in range(2):
        httpserver.expect_oneshot_request("/hooks/plat/" + SECRET).respond_with_data("down", status=500)
    with caplog.at_level("DEBUG"):
        first = alerting.tick().skip_reason.skip_message
        assert "1 pending" in first
        second = alerting.tick().skip_reason.skip_message
    assert "delivered 1; 0 pending" in second
    got = _received(httpserver)
    resolved_plat = [b for d, b in got if d == "plat" and b.get("alert_type") == "RESOLVED"]
    assert len(resolved_plat) == 3  # the two refused tries, then the one delivered
    doc = resolved_plat[-1]
    assert doc["incident_id"] == INCIDENT and doc["resolved_day"] == DAYS[15].isoformat()
    assert doc["message"] == (
        f"Resolved: Two cost-to-MRR 5.2% (opened {DAYS[0]} at 21.3%, peak 26.5%), after 15 days"
    )
    resolved_comp = [b for d, b in got if d == "comp" and b["text"].startswith(":white_check_mark: RESOLVED")]
    assert len(resolved_comp) == 1 and "Resolved: Two cost-to-MRR 5.2%" in resolved_comp[0]["text"]
    unit = [b for d, b in got if d == "comp" and b["text"].startswith(":bar_chart:")]
    assert len(unit) == 3  # days 13, 14, 15: EC2 moved more than 10% against 7 days earlier
    assert "Amazon EC2 adds $188 to the monthly cost of serving each customer, +11% in 7 days" in unit[0]["text"]
    total = len(httpserver.log)

    # Re-materializing the days sends nothing again.
    run_range(alerting.settings, DAYS[13], DAYS[15], instance=alerting.instance)
    assert "delivered 0" in alerting.tick().skip_reason.skip_message
    assert len(httpserver.log) == total

    # No webhook URL in any cursor, ledger, log line or materialization metadata.
    ledger = alerting.instance.run_storage.get_cursor_values({"unitcost/alert_delivery_ledger"})
    metadata = [
        json.dumps({k: str(v.value) for k, v in r.asset_materialization.metadata.items()})
        for asset in ("alert_incidents", "service_unit_cost")
        for r in alerting.instance.fetch_materializations(dg.AssetKey(asset), limit=100).records
    ]
    ours = "\n".join(r.getMessage() for r in caplog.records if not r.name.startswith(("urllib3", "werkzeug")))
    for text in (json.dumps(ledger), alerting.cursor, alerting.log.text(), ours, first, second, *metadata):
        assert SECRET not in text and "/hooks/" not in text


def test_a_service_crossing_its_target_tells_its_team(alerting, httpserver):
    httpserver.expect_request("/hooks/comp/" + SECRET).respond_with_data("ok")
    httpserver.expect_request("/hooks/plat/" + SECRET).respond_with_data("ok")
    _with_target(alerting, 186.0)
    run_range(alerting.settings, DAYS[0], DAYS[13], instance=alerting.instance)
    alerting.tick()
    unit = [b for d, b in _received(httpserver) if d == "comp" and b["text"].startswith(":bar_chart:")]
    assert len(unit) == 1
    assert (
        "Amazon EC2 adds $188 to the monthly cost of serving each customer (target $186, 1.0\u00d7), +11% in 7 days; "
        "now over its target (within it 7 days ago); the customers it costs most: One $300.00/month"
    ) in unit[0]["text"]
