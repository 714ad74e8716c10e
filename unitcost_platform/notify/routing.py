"""Who hears about an alert: owning teams for P1/P2/FORECAST, the team owning the service with the
largest price effect for ANOMALY, FinOps for SEGMENT, the weekly digest for TREND.

Alerts here are the dicts that `cost_alerts` puts in each day's materialization metadata.
"""

from dataclasses import dataclass

from unitcost_platform.config import NotificationsConfig

IMMEDIATE = ("P1", "P2", "SEGMENT", "ANOMALY", "FORECAST")
# ANOMALY and FORECAST are families of their own (family() below): each is delivered once.
RANK = {"P2": 1, "P1": 2, "TREND": 1, "SEGMENT": 1, "ANOMALY": 1, "FORECAST": 1}


@dataclass(frozen=True)
class Route:
    destination: str | None  # None: nowhere to send it (reported, never silently dropped)
    reason: str  # why this destination: "compute-team P1", "finops fallback for data-team", ...


def family(alert: dict) -> str:
    """P1 and P2 are one family (cost-to-MRR): a P2 that becomes a P1 is an escalation, not a new alert."""
    return "cost_to_mrr" if alert["alert_type"] in ("P1", "P2") else alert["alert_type"]


def dedupe_key(alert: dict, destination: str) -> str:
    who = alert.get("customer_id") or "segment"
    return f"{alert['day']}|{who}|{family(alert)}|{destination}"


def routes(alert: dict, cfg: NotificationsConfig) -> list[Route]:
    """Immediate destinations of an alert; TREND goes to the weekly digest instead (empty list)."""
    kind = alert["alert_type"]
    if kind == "TREND":
        return []
    if kind == "SEGMENT":
        return [Route(cfg.finops, "FinOps channel (SEGMENT)")]
    found: dict[str | None, list[str]] = {}
    teams = alert.get("owners") or []
    if kind == "ANOMALY":
        teams = teams[:1]  # owners are ordered by price effect: the team that can undo the change
    for team in teams:
        route = cfg.teams.get(team)
        if route is None:
            found.setdefault(cfg.finops, []).append(f"FinOps fallback for {team} (no route configured)")
            continue
        now = kind in ("P1", "ANOMALY")  # FORECAST goes where P2 goes, for same-day review
        dest = route.alerts if now else (route.review or route.alerts)
        found.setdefault(dest, []).append(f"{team} {'immediately' if now else 'for same-day review'}")
    if not found:
        found[cfg.finops] = ["FinOps (no owning team)"]
    return [Route(dest, "; ".join(reasons)) for dest, reasons in found.items()]


def digest_destinations(alert: dict, cfg: NotificationsConfig) -> list[str]:
    """Where a TREND or SEGMENT alert appears in the weekly digest: FinOps, and the owning teams' channels."""
    dests = [cfg.finops] if cfg.finops else []
    if alert["alert_type"] == "TREND":
        for team in alert.get("owners") or []:
            route = cfg.teams.get(team)
            if route is not None and route.alerts not in dests:
                dests.append(route.alerts)
    return dests
