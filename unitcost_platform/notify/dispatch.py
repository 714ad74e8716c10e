"""Exactly-once alert delivery: a ledger of what was delivered and what is pending, saved after
every attempt, and one pass of delivery per tick within a time budget.

An alert is identified per day, customer, family (P1 and P2 are one family) and destination. A
re-materialized day offers the same alerts again: already delivered at the same or a higher
severity, they are not sent twice; a P2 that became a P1 is an escalation and is sent. A delivery
that fails stays pending with its error and is tried again on the next tick; so does one that did
not fit in the tick's budget. A message sent to a receiver that did not answer in time counts as
delivered (unconfirmed) and is not sent again.
"""

import json
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.notify import payloads
from unitcost_platform.notify.delivery import OUT_OF_TIME, Delivery, WebhookSender
from unitcost_platform.notify.routing import RANK, RANK_NAME, Route, dedupe_key, family, routes

CURSOR_VERSION = 2
KEEP_DELIVERED_DAYS = 120
ASSET_OF = {"UNIT_COST": "service_unit_cost"}  # the asset a message links to  # restatements arrive within weeks; older keys are forgotten


@dataclass
class Pending:
    key: str
    rank: int
    destination: str
    reason: str
    alert: dict
    attempts: int = 0
    last_error: str | None = None


@dataclass
class Ledger:
    # storage id of the last materialization read, per asset whose metadata carries messages
    after: dict[str, int] = field(default_factory=dict)
    delivered: dict[str, list] = field(default_factory=dict)  # key -> [rank, last day seen] (+ "unconfirmed")
    pending: list[Pending] = field(default_factory=list)
    # incident id -> [last day seen, destinations that got its alerts]: where its RESOLVED message goes
    incidents: dict[str, list] = field(default_factory=dict)

    @classmethod
    def from_cursor(cls, cursor: str | None, assets: tuple[str, ...] = ()) -> "Ledger":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        if data.get("v") == 1:
            # Version 1 read cost_alerts only; storage ids are global, so its position holds for every asset.
            after = data.get("after")
            return cls(
                after={a: after for a in assets} if after is not None else {},
                delivered=data.get("delivered", {}),
                pending=[Pending(**p) for p in data.get("pending", [])],
            )
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"unknown alert-delivery cursor version {data.get('v')!r}")
        return cls(
            after=data.get("after", {}),
            delivered=data.get("delivered", {}),
            pending=[Pending(**p) for p in data.get("pending", [])],
            incidents=data.get("incidents", {}),
        )

    def to_cursor(self) -> str:
        """The whole ledger as JSON, as it is stored."""
        return json.dumps(
            {"v": CURSOR_VERSION, "after": self.after, "delivered": self.delivered,
             "pending": [asdict(p) for p in self.pending], "incidents": self.incidents},
            separators=(",", ":"), sort_keys=True,
        )  # fmt: skip

    def mirror(self) -> str:
        """The ledger without its delivered keys, to show in the sensor cursor (every tick keeps a copy)."""
        return json.dumps(
            {"v": CURSOR_VERSION, "after": self.after, "delivered_keys": len(self.delivered),
             "open_incidents": len(self.incidents), "pending": [asdict(p) for p in self.pending]},
            separators=(",", ":"), sort_keys=True,
        )  # fmt: skip

    def offer(self, alert: dict, destination: str, reason: str) -> str:
        """Queue the alert for `destination` unless it was delivered (or queued) at this severity.

        A higher severity under the same key (a P1 of an incident whose P2 was delivered) is an
        escalation: it is queued marked `escalated_from`."""
        key = dedupe_key(alert, destination)
        rank = RANK[alert["alert_type"]]
        done = self.delivered.get(key)
        if done is not None:
            done[1] = max(done[1], alert["day"])  # an incident still alerting is remembered from its last day
        if done is not None and done[0] >= rank:
            return "already delivered"
        queued = next((p for p in self.pending if p.key == key), None)
        if queued is not None:
            if queued.rank >= rank:
                return "already pending"
            self.pending.remove(queued)
        before = done[0] if done is not None else queued.rank if queued is not None else None
        if before is not None and family(alert) == "cost_to_mrr":
            alert = {**alert, "escalated_from": RANK_NAME.get(before)}
        self.pending.append(Pending(key, rank, destination, reason, alert))
        return "escalated" if before is not None else "queued"

    def destinations_of(self, incident: str) -> list[str]:
        """Every destination an incident's alerts were delivered to or are queued for."""
        found = list(self.incidents.get(incident, [None])[1:])
        for p in self.pending:
            if p.alert.get("incident_id") == incident and p.alert["alert_type"] != "RESOLVED" and p.destination not in found:
                found.append(p.destination)
        return found

    def mark_delivered(self, item: Pending, confirmed: bool = True) -> None:
        self.delivered[item.key] = [item.rank, item.alert["day"]] + ([] if confirmed else ["unconfirmed"])
        self.pending.remove(item)
        incident = item.alert.get("incident_id")
        if incident and item.alert["alert_type"] != "RESOLVED":
            entry = self.incidents.setdefault(incident, [item.alert["day"]])
            entry[0] = max(entry[0], item.alert["day"])
            if item.destination not in entry[1:]:
                entry.append(item.destination)

    def prune(self) -> None:
        days = sorted({v[1] for v in self.delivered.values()})
        if len(days) > KEEP_DELIVERED_DAYS:
            oldest_kept = days[-KEEP_DELIVERED_DAYS]
            self.delivered = {k: v for k, v in self.delivered.items() if v[1] >= oldest_kept}
            self.incidents = {k: v for k, v in self.incidents.items() if v[0] >= oldest_kept}


@dataclass
class TickReport:
    new_alerts: int = 0
    queued: int = 0
    duplicates: int = 0
    escalations: int = 0
    delivered: list[str] = field(default_factory=list)
    unconfirmed: list[str] = field(default_factory=list)  # sent, no answer in time: not resent
    failed: list[str] = field(default_factory=list)
    waiting: int = 0  # pending, not tried: the tick's time budget ran out
    skipped: list[str] = field(default_factory=list)  # no destination, or its secret not set: said, not queued

    def summary(self, pending: int) -> str:
        parts = [f"read {self.new_alerts} alert(s)", f"delivered {len(self.delivered)}"]
        if self.unconfirmed:
            parts.append(f"{len(self.unconfirmed)} sent, unconfirmed")
        parts.append(f"{pending} pending")
        if self.waiting:
            parts.append(f"{self.waiting} of them wait for the next tick (out of time in this one)")
        if self.duplicates:
            parts.append(f"{self.duplicates} already delivered (not sent again)")
        if self.escalations:
            parts.append(f"{self.escalations} escalation(s)")
        text = "; ".join(parts) + "."
        if self.unconfirmed:
            text += " Sent, unconfirmed: " + "; ".join(self.unconfirmed[:5])
            if len(self.unconfirmed) > 5:
                text += f" (+{len(self.unconfirmed) - 5} more)"
        if self.failed:
            text += " Failed, will retry next tick: " + "; ".join(self.failed[:5])
            if len(self.failed) > 5:
                text += f" (+{len(self.failed) - 5} more)"
        if self.skipped:
            text += " Not sent: " + "; ".join(sorted(set(self.skipped))[:5])
        return text


def offer_alerts(ledger: Ledger, alerts: list[dict], cfg: NotificationsConfig, sender: WebhookSender, report: TickReport) -> None:
    """Route each alert and queue it where it has not been delivered yet."""
    for alert in alerts:
        report.new_alerts += 1
        if alert["alert_type"] == "RESOLVED":
            found = [Route(d, "where the incident's alerts went") for d in ledger.destinations_of(alert["incident_id"])]
            entry = ledger.incidents.get(alert["incident_id"])
            if entry is not None:
                entry[0] = max(entry[0], alert["day"])
        else:
            found = routes(alert, cfg)
        for route in found:
            if route.destination is None:
                report.skipped.append(f"{alert['alert_type']} alerts have no destination (set notifications.finops or teams)")
                continue
            missing = sender.missing_secret(route.destination)
            if missing:
                report.skipped.append(f"destination {route.destination} is off: {missing} is not set")
                continue
            outcome = ledger.offer(alert, route.destination, route.reason)
            if outcome == "already delivered" or outcome == "already pending":
                report.duplicates += 1
            elif outcome == "escalated":
                report.escalations += 1
                report.queued += 1
            else:
                report.queued += 1


def deliver_pending(
    ledger: Ledger,
    cfg: NotificationsConfig,
    sender: WebhookSender,
    report: TickReport,
    deadline: float,
    save: Callable[[Ledger], None] = lambda _: None,
    log: Callable[[str], None] = lambda _: None,
    warn: Callable[[str], None] = lambda _: None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Send pending messages while a whole request still fits before `deadline`, saving the ledger after every attempt."""
    for item in list(ledger.pending):
        if clock() + cfg.timeout_seconds > deadline:
            report.waiting += 1
            continue
        alert = item.alert
        link = payloads.asset_link(cfg.dagster_url, ASSET_OF.get(alert["alert_type"], "alert_incidents"), alert["day"])
        body = payloads.alert_payload(sender.destination_type(item.destination), alert, link, item.reason)

        def record(outcome: Delivery, item: Pending = item) -> None:
            item.attempts += 1
            if outcome.ok:
                ledger.mark_delivered(item, confirmed=not outcome.unconfirmed)
            else:
                item.last_error = outcome.detail
            save(ledger)

        result = sender.send(item.destination, body, deadline=deadline, on_attempt=record)
        what = f"{alert['alert_id']} to {item.destination}"
        if result.ok and result.unconfirmed:
            report.unconfirmed.append(f"{what}: {result.detail}")
            warn(f"{what} ({item.reason}): {result.detail}")
        elif result.ok:
            report.delivered.append(item.key)
            log(f"delivered {what} ({item.reason})")
        elif result.attempts == 0 and result.detail == OUT_OF_TIME:
            report.waiting += 1
        else:
            item.last_error = result.detail
            save(ledger)
            report.failed.append(f"{what}: {result.detail}")
            log(f"could not deliver {what} after {item.attempts} attempt(s): {result.detail}")
