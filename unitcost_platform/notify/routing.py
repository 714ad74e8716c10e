"""Who hears about an alert: owning teams for P1/P2/FORECAST, the team owning the service with the
largest price effect for ANOMALY, FinOps for SEGMENT, the weekly digest for TREND, the owning team
for its services' unit cost (UNIT_COST), and every destination that had an incident's alerts for
its end (RESOLVED, routed by the ledger, which knows where they went).

Alerts here are the dicts that `alert_incidents` and `service_unit_cost` put in each day's
materialization metadata.
"""

from dataclasses import dataclass

from unitcost_platform.config import NotificationsConfig

IMMEDIATE = ("P1", "P2", "SEGMENT", "ANOMALY", "FORECAST")
# ANOMALY and FORECAST are families of their own (family() below): each incident is delivered once.
RANK = {"P2": 1, "P1": 2, "TREND": 1, "SEGMENT": 1, "ANOMALY": 1, "FORECAST": 1, "RESOLVED": 1, "UNIT_COST": 1}
RANK_NAME = {1: "P2", 2: "P1"}  # of the cost-to-MRR family, for "escalated from P2"


@dataclass(frozen=True)
class Route:
    destination: str | None  # None: nowhere to send it (reported, never silently dropped)
    reason: str  # why this destination: "compute-team P1", "finops fallback for data-team", ...


def family(alert: dict) -> str:
    """P1 and P2 are one family (cost-to-MRR): a P2 that becomes a P1 is an escalation, not a new alert."""
    return "cost_to_mrr" if alert["alert_type"] in ("P1", "P2") else alert["alert_type"]


def dedupe_key(alert: dict, destination: str) -> str:
    """One message per incident and destination (a P1 after its P2 is an escalation of the same key); an
    incident's end and a day's unit-cost message have keys of their own; an alert without an incident, one per day."""
    if alert["alert_type"] == "RESOLVED":
        return f"{alert['incident_id']}|{destination}|resolved"
    if alert["alert_type"] == "UNIT_COST":
        return f"{alert['alert_id']}|{destination}"
    if alert.get("incident_id"):
        return f"{alert['incident_id']}|{destination}"
    who = alert.get("customer_id") or "segment"
    return f"{alert['day']}|{who}|{family(alert)}|{destination}"


def routes(alert: dict, cfg: NotificationsConfig) -> list[Route]:
    """Immediate destinations of an alert; TREND goes to the weekly digest instead (empty list)."""
    kind = alert["alert_type"]
    if kind == "TREND":
        return []
    if kind == "UNIT_COST":
        route = cfg.teams.get(alert["team"])
        if route is None:
            return [Route(cfg.finops, f"FinOps fallback for {alert['team']} (no route configured)")]
        return [Route(route.unit_cost_destination(), f"{alert['team']} service unit cost")]
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
