"""The FinOps weekly digest: the week's TREND and SEGMENT alerts and check warnings, one message per
destination (FinOps gets everything; an owning team gets the TREND alerts its services drove)."""

import datetime as dt
from dataclasses import dataclass

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.notify.routing import digest_destinations


@dataclass(frozen=True)
class CheckWarning:
    day: str
    asset: str
    check: str
    severity: str
    description: str


def week_of(week_end: dt.date) -> list[dt.date]:
    return [week_end - dt.timedelta(days=6 - i) for i in range(7)]


def _alert_line(alert: dict) -> str:
    if alert["alert_type"] == "SEGMENT":
        return f"{alert['day']}: median non-paying ${alert['value']:,.2f}/day vs paying ${alert['threshold']:,.2f}/day"
    drivers = ", ".join(f"{d['service']} ({d.get('owner')})" for d in alert.get("drivers") or [])
    return f"{alert['day']} {alert.get('customer_name')} ({alert.get('tier')}): cost +{alert['value'] * 100:.0f}% in 7 days; {drivers}"


def build_digest(
    week_end: dt.date, alerts: list[dict], warnings: list[CheckWarning], cfg: NotificationsConfig
) -> dict[str, tuple[str, list[tuple[str, list[str]]]]]:
    """destination -> (title, sections)."""
    start = week_of(week_end)[0]
    trend = [a for a in alerts if a["alert_type"] == "TREND"]
    segment = [a for a in alerts if a["alert_type"] == "SEGMENT"]
    messages: dict[str, tuple[str, list[tuple[str, list[str]]]]] = {}
    if cfg.finops:
        title = (f"Unit-cost weekly digest {start}..{week_end}: {len(trend)} TREND, "
                 f"{len(segment)} SEGMENT, {len(warnings)} check warning(s)")  # fmt: skip
        messages[cfg.finops] = (title, [
            ("Cost growing faster than revenue (TREND)", [_alert_line(a) for a in trend]),
            ("Non-paying customers costing more than paying ones (SEGMENT)", [_alert_line(a) for a in segment]),
            ("Check warnings", [f"{w.day} {w.asset}.{w.check} [{w.severity}]: {w.description}" for w in warnings]),
        ])  # fmt: skip
    per_team: dict[str, list[dict]] = {}
    for alert in trend:
        for dest in digest_destinations(alert, cfg):
            if dest != cfg.finops:
                per_team.setdefault(dest, []).append(alert)
    for dest, team_alerts in per_team.items():
        title = f"Unit-cost weekly digest {start}..{week_end}: {len(team_alerts)} TREND alert(s) your services drove"
        messages[dest] = (title, [("Cost growing faster than revenue (TREND)", [_alert_line(a) for a in team_alerts])])
    return messages
