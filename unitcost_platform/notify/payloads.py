"""Message bodies: the Slack incoming-webhook format and a generic JSON webhook format."""

from urllib.parse import quote


def asset_link(dagster_url: str, asset: str, day: str | None = None) -> str:
    base = f"{dagster_url.rstrip('/')}/assets/{quote(asset)}"
    return f"{base}?view=partitions&partition={quote(day)}" if day else base


def run_link(dagster_url: str, run_id: str) -> str:
    return f"{dagster_url.rstrip('/')}/runs/{quote(run_id)}"


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
        f"• {d['service']}: {_money(d.get('cost_7d'))} last 7 days ({_pct(d.get('change_7d'), signed=True)} week on week), owner {d.get('owner')}"
        for d in alert.get("drivers") or []
    ]
    return "\n".join(lines) or "• no allocated service cost"


def slack_alert(alert: dict, link: str, route_reason: str) -> dict:
    """A Slack incoming-webhook message: `text` for notifications, blocks for the channel."""
    kind = alert["alert_type"]
    icon = {"P1": ":rotating_light:", "P2": ":warning:", "TREND": ":chart_with_upwards_trend:", "SEGMENT": ":busts_in_silhouette:"}[kind]
    if kind == "SEGMENT":
        title = f"{icon} SEGMENT {alert['day']}: non-paying customers cost more than paying ones"
        fields = [
            f"*Median non-paying*\n{_money(alert.get('value'))}/day",
            f"*Median paying*\n{_money(alert.get('threshold'))}/day",
        ]
    else:
        title = f"{icon} {kind} {alert['day']}: {alert.get('customer_name')} ({alert.get('tier')})"
        fields = [
            f"*MRR*\n{_money(alert.get('mrr'))}",
            f"*Run-rate cost*\n{_money(alert.get('monthly_run_rate'))}/month",
            f"*Cost to MRR*\n{_pct(alert.get('cost_to_mrr'))}",
            f"*{alert.get('metric')}*\n{_pct(alert.get('value'))} (threshold {_pct(alert.get('threshold'))})",
        ]
    return {
        "text": f"{title}. {alert.get('message', '')}",
        "blocks": [
            {"type": "header", "text": {"type": "plain_text", "text": title[:150], "emoji": True}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f} for f in fields]},
            {"type": "section", "text": {"type": "mrkdwn", "text": f"*Drivers*\n{_drivers_text(alert)}"}},
            {"type": "context", "elements": [
                {"type": "mrkdwn", "text": f"{route_reason} · <{link}|Open in Dagster>"},
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
        blocks: list[dict] = [{"type": "header", "text": {"type": "plain_text", "text": title[:150]}}]
        for heading, lines in sections:
            body = "\n".join(f"• {line}" for line in lines[:40]) or "• none"
            if len(lines) > 40:
                body += f"\n• … and {len(lines) - 40} more"
            blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": f"*{heading}*\n{body}"[:2900]}})
        blocks.append({"type": "context", "elements": [{"type": "mrkdwn", "text": f"<{link}|Open in Dagster>"}]})
        return {"text": title, "blocks": blocks}
    return {"kind": "unitcost.digest", "title": title, "sections": [{"heading": h, "items": lines} for h, lines in sections], "link": link}


def run_failure_payload(destination_type: str, job: str, run_id: str, error: str, link: str) -> dict:
    title = f":x: The {job} run failed"
    if destination_type == "slack":
        return {
            "text": f"{title}: {error[:300]}",
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": f"*{title}*\n```{error[:2500]}```"}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"run {run_id} · <{link}|Open the run>"}]},
            ],
        }
    return {"kind": "unitcost.run_failure", "job": job, "run_id": run_id, "error": error, "link": link}
