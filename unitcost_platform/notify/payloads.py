"""Message bodies: the Slack incoming-webhook format and a generic JSON webhook format.

Slack reads `<...>` as links and mentions (`<!channel>` pages a whole channel), so every string that
comes from data is escaped in Slack messages (`&`, `<`, `>`, as Slack documents); our own markup (the
`<link|Open in Dagster>` links, `*bold*`) is not. Generic webhook documents carry the data as it is.
"""

from urllib.parse import quote

from unitcost_platform.formatting import money


def asset_link(dagster_url: str, asset: str, day: str | None = None) -> str:
    base = f"{dagster_url.rstrip('/')}/assets/{quote(asset)}"
    return f"{base}?view=partitions&partition={quote(day)}" if day else base


def run_link(dagster_url: str, run_id: str) -> str:
    return f"{dagster_url.rstrip('/')}/runs/{quote(run_id)}"


def slack_escape(value: object) -> str:
    """Text from data made inert in a Slack message: `<!channel>` shows as itself and pages nobody."""
    return str(value).replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _clip(text: str, limit: int) -> str:
    """Escaped text cut to `limit` characters without splitting an entity such as `&amp;`."""
    if len(text) <= limit:
        return text
    cut = text[:limit]
    amp = cut.rfind("&")
    return cut[:amp] if amp != -1 and ";" not in cut[amp:] else cut


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def _incident_fields(alert: dict) -> dict:
    """The incident an alert belongs to, when it has one: a receiver tells a new problem from an old one."""
    keys = ("incident_id", "opened_day", "days_open", "value_at_open", "escalated_from")
    return {k: alert[k] for k in keys if alert.get(k) is not None}


def alert_document(alert: dict, link: str, route_reason: str) -> dict:
    """The generic webhook body: every figure a receiver needs, named plainly."""
    if alert["alert_type"] == "RESOLVED":
        return resolved_document(alert, link, route_reason)
    if alert["alert_type"] == "UNIT_COST":
        return unit_cost_document(alert, link, route_reason)
    return {
        "kind": "unitcost.alert",
        "alert_id": alert["alert_id"],
        "alert_type": alert["alert_type"],
        "day": alert["day"],
        "customer": {
            "id": alert.get("customer_id"),
            "name": alert.get("customer_name"),
            "tier": alert.get("tier"),
            "segment": alert.get("segment"),
            "mrr": alert.get("mrr"),
        },
        "monthly_run_rate": alert.get("monthly_run_rate"),
        "cost_to_mrr": alert.get("cost_to_mrr"),
        "metric": alert.get("metric"),
        "value": alert.get("value"),
        "threshold": alert.get("threshold"),
        "drivers": alert.get("drivers") or [],
        "owners": alert.get("owners") or [],
        "routed_as": route_reason,
        "message": alert.get("message"),
        "link": link,
        **_incident_fields(alert),
    }


def resolved_message(alert: dict) -> str:
    """ "Resolved: Bluefin Labs cost-to-MRR 18.9% (opened 2026-09-02 at 33.1%, peak 35.0%), after 41 days;
    what changed: Amazon Elastic Compute Cloud -40% in 7 days (compute-team)" """
    family = alert["family"]
    fmt = {"COST_TO_MRR": _pct, "TREND": _pct, "FORECAST": lambda v: "n/a" if v is None else f"{v:.0f} days"}.get(family, money)
    what = {"COST_TO_MRR": "cost-to-MRR", "TREND": "7-day cost growth", "SEGMENT": "median non-paying cost/day",
            "ANOMALY": "unit-cost anomaly impact", "FORECAST": "projected time to P2"}.get(family, alert.get("metric") or family)  # fmt: skip
    who = alert.get("customer_name") or alert.get("customer_id") or "non-paying customers"
    text = (
        f"Resolved: {who} {what} {fmt(alert.get('value_now'))} (opened {alert['opened_day']} at "
        f"{fmt(alert.get('value_at_open'))}, peak {fmt(alert.get('peak_value'))}), after {alert['days_open']} days"
    )
    if alert.get("what_changed"):
        text += f"; what changed: {alert['what_changed']}"
    return text


def resolved_document(alert: dict, link: str, route_reason: str) -> dict:
    keys = ("incident_id", "family", "customer_id", "customer_name", "opened_day", "resolved_day", "last_alert_day",
            "days_open", "peak_severity", "value_at_open", "peak_value", "value_now", "what_changed")  # fmt: skip
    return {
        "kind": "unitcost.alert", "alert_id": alert["alert_id"], "alert_type": "RESOLVED", "day": alert["day"],
        **{k: alert.get(k) for k in keys}, "owners": alert.get("owners") or [],
        "routed_as": route_reason, "message": resolved_message(alert), "link": link,
    }  # fmt: skip


def unit_cost_document(alert: dict, link: str, route_reason: str) -> dict:
    return {
        "kind": "unitcost.unit_cost", "alert_id": alert["alert_id"], "alert_type": "UNIT_COST", "day": alert["day"],
        "team": alert["team"], "services": alert["services"], "routed_as": route_reason,
        "message": alert["message"], "link": link,
    }  # fmt: skip


def _slack_simple(title: str, lines: list[str], link: str, route_reason: str) -> dict:
    body = "\n".join(f"• {slack_escape(line)}" for line in lines)
    return {
        "text": f"{title}. {slack_escape(' '.join(lines))}"[:3000],
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150), "emoji": True}},
            {"type": "section", "text": {"type": "mrkdwn", "text": _clip(body, 2900)}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"{slack_escape(route_reason)} · <{link}|Open in Dagster>"},
            ]},
        ],
    }  # fmt: skip


def _drivers_text(alert: dict) -> str:
    lines = [
        f"• {slack_escape(d['service'])}: {money(d.get('cost_7d'))} last 7 days "
        f"({_pct(d.get('change_7d'), signed=True)} week on week), owner {slack_escape(d.get('owner'))}"
        for d in alert.get("drivers") or []
    ]
    return "\n".join(lines) or "• no allocated service cost"


def slack_alert(alert: dict, link: str, route_reason: str) -> dict:
    """A Slack incoming-webhook message: `text` for notifications, blocks for the channel."""
    kind = alert["alert_type"]
    if kind == "RESOLVED":
        title = f":white_check_mark: RESOLVED {slack_escape(alert['day'])}: {slack_escape(alert['incident_id'])}"
        return _slack_simple(title, [resolved_message(alert)], link, route_reason)
    if kind == "UNIT_COST":
        title = f":bar_chart: {slack_escape(alert['team'])}: cost per customer of your services, {slack_escape(alert['day'])}"
        return _slack_simple(title, [s["line"] for s in alert["services"]], link, route_reason)
    icon = {"P1": ":rotating_light:", "P2": ":warning:", "TREND": ":chart_with_upwards_trend:", "SEGMENT": ":busts_in_silhouette:",
            "ANOMALY": ":mag:", "FORECAST": ":crystal_ball:"}[kind]  # fmt: skip
    day = slack_escape(alert["day"])
    if kind == "SEGMENT":
        title = f"{icon} SEGMENT {day}: non-paying customers cost more than paying ones"
        fields = [
            f"*Median non-paying*\n{money(alert.get('value'))}/day",
            f"*Median paying*\n{money(alert.get('threshold'))}/day",
        ]
    else:
        title = f"{icon} {kind} {day}: {slack_escape(alert.get('customer_name'))} ({slack_escape(alert.get('tier'))})"
        if alert.get("escalated_from"):
            title += f", escalated from {slack_escape(alert['escalated_from'])}"
        if alert.get("opened_day") and alert["opened_day"] != alert["day"]:
            title += f", open since {slack_escape(alert['opened_day'])}"
        fields = [
            f"*MRR*\n{money(alert.get('mrr'))}",
            f"*Run-rate cost*\n{money(alert.get('monthly_run_rate'))}/month",
            f"*Cost to MRR*\n{_pct(alert.get('cost_to_mrr'))}",
            f"*{slack_escape(alert.get('metric'))}*\n{_pct(alert.get('value'))} (threshold {_pct(alert.get('threshold'))})",
        ]
        if kind == "ANOMALY":  # value: actual minus expected cost of the day, in dollars
            fields[3] = f"*Impact*\n{money(alert.get('value'))}/day (threshold {money(alert.get('threshold'))})"
        elif kind == "FORECAST":  # value: days until cost-to-MRR is projected above P2
            fields[3] = f"*Days to P2*\n{alert.get('value'):.0f} (horizon {alert.get('threshold'):.0f} days)"
    return {
        "text": f"{title}. {slack_escape(alert.get('message', ''))}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150), "emoji": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Drivers*\n{_drivers_text(alert)}"}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"{slack_escape(route_reason)} · <{link}|Open in Dagster>"},
            ]},
        ],
    }  # fmt: skip


def alert_payload(destination_type: str, alert: dict, link: str, route_reason: str) -> dict:
    if destination_type == "slack":
        return slack_alert(alert, link, route_reason)
    return alert_document(alert, link, route_reason)


def digest_payload(destination_type: str, title: str, sections: list[tuple[str, list[str]]], link: str) -> dict:
    """The weekly digest: a title and sections of lines, as one message."""
    if destination_type == "slack":
        title = slack_escape(title)
        blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": _clip(title, 150)}}]
        for heading, lines in sections:
            body = "\n".join(f"• {slack_escape(line)}" for line in lines[:40]) or "• none"
            if len(lines) > 40:
                body += f"\n• … and {len(lines) - 40} more"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": _clip(f"*{slack_escape(heading)}*\n{body}", 2900)}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in Dagster>"}]})
        return {"text": title, "blocks": blocks}
    return {"kind": "unitcost.digest", "title": title, "sections": [{"heading": h, "items": lines} for h, lines in sections], "link": link}


def run_failure_payload(destination_type: str, job: str, run_id: str, error: str, link: str) -> dict:
    if destination_type == "slack":
        title, error = f":x: The {slack_escape(job)} run failed", slack_escape(error)
        return {
            "text": f"{title}: {_clip(error, 300)}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n```{_clip(error, 2500)}```"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"run {slack_escape(run_id)} · <{link}|Open the run>"}]},
            ],
        }
    return {"kind": "unitcost.run_failure", "job": job, "run_id": run_id, "error": error, "link": link}
