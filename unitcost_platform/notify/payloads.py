"""Message bodies: the Slack incoming-webhook format and a generic JSON webhook format.

Slack reads `<...>` as links and mentions (`<!channel>` pages a whole channel), so every string that
comes from data is escaped in Slack messages (`&`, `<`, `>`, as Slack documents); our own markup (the
`<link|Open in Dagster>` links, `*bold*`) is not. Generic webhook documents carry the data as it is.
"""

from urllib.parse import quote


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


def _money(x: float | None) -> str:
    return "n/a" if x is None else f"${x:,.0f}" if abs(x) >= 100 else f"${x:,.2f}"


def _pct(x: float | None, signed: bool = False) -> str:
    if x is None:
        return "n/a"
    return f"{x * 100:+.1f}%" if signed else f"{x * 100:.1f}%"


def alert_document(alert: dict, link: str, route_reason: str) -> dict:
    """The generic webhook body: every figure a receiver needs, named plainly."""
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
    }


def _drivers_text(alert: dict) -> str:
    lines = [
        f"• {slack_escape(d['service'])}: {_money(d.get('cost_7d'))} last 7 days "
        f"({_pct(d.get('change_7d'), signed=True)} week on week), owner {slack_escape(d.get('owner'))}"
        for d in alert.get("drivers") or []
    ]
    return "\n".join(lines) or "• no allocated service cost"


def slack_alert(alert: dict, link: str, route_reason: str) -> dict:
    """A Slack incoming-webhook message: `text` for notifications, blocks for the channel."""
    kind = alert["alert_type"]
    icon = {"P1": ":rotating_light:", "P2": ":warning:", "TREND": ":chart_with_upwards_trend:", "SEGMENT": ":busts_in_silhouette:",
            "ANOMALY": ":mag:", "FORECAST": ":crystal_ball:"}[kind]  # fmt: skip
    day = slack_escape(alert["day"])
    if kind == "SEGMENT":
        title = f"{icon} SEGMENT {day}: non-paying customers cost more than paying ones"
        fields = [
            f"*Median non-paying*\n{_money(alert.get('value'))}/day",
            f"*Median paying*\n{_money(alert.get('threshold'))}/day",
        ]
    else:
        title = f"{icon} {kind} {day}: {slack_escape(alert.get('customer_name'))} ({slack_escape(alert.get('tier'))})"
        fields = [
            f"*MRR*\n{_money(alert.get('mrr'))}",
            f"*Run-rate cost*\n{_money(alert.get('monthly_run_rate'))}/month",
            f"*Cost to MRR*\n{_pct(alert.get('cost_to_mrr'))}",
            f"*{slack_escape(alert.get('metric'))}*\n{_pct(alert.get('value'))} (threshold {_pct(alert.get('threshold'))})",
        ]
        if kind == "ANOMALY":  # value: actual minus expected cost of the day, in dollars
            fields[3] = f"*Impact*\n{_money(alert.get('value'))}/day (threshold {_money(alert.get('threshold'))})"
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
