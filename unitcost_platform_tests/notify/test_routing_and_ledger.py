"""Routing to owners, message shapes, and the exactly-once ledger (pure, no server)."""

import datetime as dt
import json

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.notify import payloads
from unitcost_platform.notify.digest import CheckWarning, build_digest
from unitcost_platform.notify.dispatch import KEEP_DELIVERED_DAYS, Ledger
from unitcost_platform.notify.routing import routes

CFG = NotificationsConfig(
    finops="fin",
    destinations={"fin": {"type": "slack", "url_env": "A"}, "comp": {"type": "slack", "url_env": "B"},
                  "comp-review": {"type": "webhook", "url_env": "C"}, "data": {"type": "webhook", "url_env": "D"}},
    teams={"compute-team": {"alerts": "comp", "review": "comp-review"}, "data-team": {"alerts": "data"}},
)  # fmt: skip


def alert(kind: str, owners=("compute-team",), day="2026-03-10", customer="C1", **extra) -> dict:
    return {"alert_id": f"{day}:{kind}:{customer}", "alert_type": kind, "day": day, "customer_id": customer,
            "customer_name": "Acme", "tier": "smb", "segment": "s", "mrr": 900.0, "monthly_run_rate": 300.0,
            "cost_to_mrr": 0.333, "metric": "cost_to_mrr", "value": 0.333, "threshold": 0.25,
            "owners": list(owners), "message": "msg",
            "drivers": [{"service": "Amazon EC2", "owner": "compute-team", "cost_7d": 70.0, "cost_prev_7d": 35.0, "change_7d": 1.0}],
            **extra}  # fmt: skip


def _dests(a: dict) -> list:
    return [r.destination for r in routes(a, CFG)]


def test_routing_by_type_and_owner():
    assert _dests(alert("P1", owners=["compute-team", "data-team"])) == ["comp", "data"]
    assert _dests(alert("P2", owners=["compute-team", "data-team"])) == ["comp-review", "data"]
    assert _dests(alert("SEGMENT", customer=None)) == ["fin"]
    assert _dests(alert("TREND")) == []  # the weekly digest, not immediately
    fallback = routes(alert("P1", owners=["storage-team"]), CFG)
    assert [r.destination for r in fallback] == ["fin"] and "FinOps fallback for storage-team" in fallback[0].reason
    assert _dests(alert("P1", owners=[])) == ["fin"]
    assert _dests(alert("P1", owners=["compute-team"])) == ["comp"]


def test_unroutable_without_finops():
    cfg = NotificationsConfig(destinations={}, teams={})
    assert [r.destination for r in routes(alert("SEGMENT"), cfg)] == [None]


def test_slack_payload_names_customer_figures_drivers_and_link():
    link = payloads.asset_link("http://dagster:3000/", "cost_alerts", "2026-03-10")
    assert link == "http://dagster:3000/assets/cost_alerts?view=partitions&partition=2026-03-10"
    body = payloads.slack_alert(alert("P1"), link, "compute-team immediately")
    text = str(body)
    for expected in ("Acme (smb)", "$900", "$300/month", "33.3%", "Amazon EC2", "+100.0% week on week",
                     "compute-team", f"<{link}|Open in Dagster>"):  # fmt: skip
        assert expected in text, expected
    assert body["blocks"][0]["type"] == "header" and isinstance(body["text"], str)


def test_webhook_document_fields():
    doc = payloads.alert_document(alert("P2"), "http://x/l", "compute-team for same-day review")
    assert doc["customer"] == {"id": "C1", "name": "Acme", "tier": "smb", "segment": "s", "mrr": 900.0}
    assert doc["monthly_run_rate"] == 300.0 and doc["cost_to_mrr"] == 0.333
    assert doc["drivers"][0]["change_7d"] == 1.0 and doc["link"] == "http://x/l"


def test_slack_messages_escape_data_and_keep_our_markup():
    named = alert("P1", customer_name="Acme <!channel> & Co", tier="<b>", message="<@U123> look",
                  drivers=[{"service": "S3 <x>", "owner": "<!here>", "cost_7d": 1.0, "change_7d": 0.1}])  # fmt: skip
    link = "http://dagster/assets/cost_alerts?view=partitions&partition=2026-03-10"
    slack = json.dumps(payloads.alert_payload("slack", named, link, "compute-team immediately"))
    for control in ("<!channel>", "<!here>", "<@U123>", "<b>", "<x>"):
        assert control not in slack, control
    assert "Acme &lt;!channel&gt; &amp; Co (&lt;b&gt;)" in slack and f"<{link}|Open in Dagster>" in slack
    document = payloads.alert_payload("webhook", named, link, "r")
    assert document["customer"]["name"] == "Acme <!channel> & Co" and document["message"] == "<@U123> look"

    digest = payloads.digest_payload("slack", "Digest", [("TREND", ["2026-03-10 Acme <!channel> & Co"] * 3)], link)
    assert "<!channel>" not in json.dumps(digest) and "&lt;!channel&gt; &amp; Co" in json.dumps(digest)
    failure = payloads.run_failure_payload("slack", "unit_cost_daily", "r1", "bad row <!channel>" + "&" * 400, "http://x")
    assert "<!channel>" not in json.dumps(failure)
    assert failure["text"].endswith("&amp;")  # cut between entities, never inside one


def test_ledger_delivers_once_and_escalations_again():
    ledger = Ledger()
    assert ledger.offer(alert("P2"), "comp", "r") == "queued"
    assert ledger.offer(alert("P2"), "comp", "r") == "already pending"
    ledger.mark_delivered(ledger.pending[0])
    assert ledger.offer(alert("P2"), "comp", "r") == "already delivered"
    assert ledger.offer(alert("P1"), "comp", "r") == "escalated"  # P2 -> P1 on a restated day
    ledger.mark_delivered(ledger.pending[0])
    assert ledger.offer(alert("P2"), "comp", "r") == "already delivered"  # de-escalation is not news
    assert ledger.offer(alert("P1", day="2026-03-11"), "comp", "r") == "queued"  # another day, another alert
    restored = Ledger.from_cursor(ledger.to_cursor())
    assert restored.delivered == ledger.delivered and [p.key for p in restored.pending] == [p.key for p in ledger.pending]
    mirror = json.loads(ledger.mirror())  # what the sensor cursor shows: no delivered keys, copied into every tick
    assert "delivered" not in mirror and mirror["delivered_keys"] == 1 and len(mirror["pending"]) == 1


def test_ledger_forgets_only_old_days():
    ledger = Ledger()
    start = dt.date(2026, 1, 1)
    for i in range(KEEP_DELIVERED_DAYS + 10):
        ledger.offer(alert("P1", day=(start + dt.timedelta(days=i)).isoformat()), "comp", "r")
        ledger.mark_delivered(ledger.pending[0])
    ledger.prune()
    kept = sorted({v[1] for v in ledger.delivered.values()})
    assert len(kept) == KEEP_DELIVERED_DAYS and kept[0] == (start + dt.timedelta(days=10)).isoformat()


def test_digest_one_message_per_destination():
    trend = alert("TREND", owners=["compute-team", "storage-team"], value=0.4)
    segment = alert("SEGMENT", customer=None, value=2.0, threshold=1.5)
    warning = CheckWarning("2026-03-09", "raw_billing", "attribution_drift", "WARN", "coverage fell")
    messages = build_digest(dt.date(2026, 3, 15), [trend, segment], [warning], CFG)
    assert set(messages) == {"fin", "comp"}
    title, sections = messages["fin"]
    assert title.startswith("Unit-cost weekly digest 2026-03-09..2026-03-15: 1 TREND, 1 SEGMENT, 1 check warning")
    assert any("attribution_drift" in line for _, lines in sections for line in lines)
    assert len(messages["comp"][1][0][1]) == 1
