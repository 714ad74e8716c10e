"""ANOMALY and FORECAST alerts: where they go, what the message shows, delivered once."""

import json

from unitcost_platform.notify import payloads
from unitcost_platform.notify.dispatch import Ledger
from unitcost_platform.notify.routing import routes
from unitcost_platform_tests.notify.test_routing_and_ledger import CFG, alert


def _anomaly(owners=("data-team", "compute-team"), **extra) -> dict:
    return alert("ANOMALY", owners=owners, metric="impact", value=212.4, threshold=5.0,
                 drivers=[{"service": "Amazon DynamoDB", "owner": "data-team", "cost_7d": 900.0, "cost_prev_7d": 500.0,
                           "change_7d": 0.8, "price_effect": 190.0},
                          {"service": "Amazon EC2", "owner": "compute-team", "cost_7d": 70.0, "cost_prev_7d": 69.0,
                           "change_7d": 0.01, "price_effect": 3.0}], **extra)  # fmt: skip


def _forecast(owners=("compute-team", "data-team"), **extra) -> dict:
    return alert("FORECAST", owners=owners, metric="days_to_p2", value=11.0, threshold=14.0,
                 cost_to_mrr=0.18, **extra)  # fmt: skip


def test_anomaly_goes_to_the_team_owning_the_largest_price_effect_immediately():
    found = routes(_anomaly(), CFG)
    assert [r.destination for r in found] == ["data"] and found[0].reason == "data-team immediately"
    # compute-team's route has a review channel; an anomaly still goes to its alerts channel.
    assert [r.destination for r in routes(_anomaly(owners=["compute-team"]), CFG)] == ["comp"]
    assert [r.destination for r in routes(_anomaly(owners=["storage-team"]), CFG)] == ["fin"]  # no route: FinOps


def test_forecast_is_routed_like_p2():
    found = routes(_forecast(), CFG)
    assert [r.destination for r in found] == ["comp-review", "data"]
    assert found[0].reason == "compute-team for same-day review"


def test_each_is_its_own_family_and_delivered_once():
    ledger = Ledger()
    for a in (alert("P2"), _anomaly(), _forecast()):
        assert ledger.offer(a, "comp", "r") == "queued"  # same customer, day and destination: three keys
    for item in list(ledger.pending):
        ledger.mark_delivered(item)
    for a in (_anomaly(), _forecast()):
        assert ledger.offer(a, "comp", "r") == "already delivered"  # a re-materialized day is not news
    assert ledger.offer(alert("P1"), "comp", "r") == "escalated"  # P2 -> P1 unaffected by the other two


def test_slack_and_webhook_bodies():
    link = "http://dagster/assets/cost_alerts"
    slack = json.dumps(payloads.alert_payload("slack", _anomaly(), link, "data-team immediately"))
    assert ":mag: ANOMALY 2026-03-10: Acme (smb)" in slack and "*Impact*\\n$212/day (threshold $5.00)" in slack
    assert "Amazon DynamoDB" in slack
    slack = json.dumps(payloads.alert_payload("slack", _forecast(), link, "compute-team for same-day review"))
    assert ":crystal_ball: FORECAST 2026-03-10" in slack and "*Days to P2*\\n11 (horizon 14 days)" in slack
    document = payloads.alert_payload("webhook", _anomaly(), link, "r")
    assert document["alert_type"] == "ANOMALY" and document["drivers"][0]["price_effect"] == 190.0
    assert document["owners"] == ["data-team", "compute-team"]
