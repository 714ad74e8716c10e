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
from unitcost_platform.notify.routing import RANK, dedupe_key, routes

CURSOR_VERSION = 1
KEEP_DELIVERED_DAYS = 120  # restatements arrive within weeks; older keys are forgotten


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
    after: int | None = None  # storage id of the last cost_alerts materialization read
    delivered: dict[str, list] = field(default_factory=dict)  # key -> [rank, day] (+ "unconfirmed": sent, no answer)
    pending: list[Pending] = field(default_factory=list)

    @classmethod
    def from_cursor(cls, cursor: str | None) -> "Ledger":
        if not cursor:
            return cls()
        data = json.loads(cursor)
        if data.get("v") != CURSOR_VERSION:
            raise ValueError(f"unknown alert-delivery cursor version {data.get('v')!r}")
        return cls(
            after=data.get("after"),
            delivered=data.get("delivered", {}),
            pending=[Pending(**p) for p in data.get("pending", [])],
        )

    def to_cursor(self) -> str:
        """The whole ledger as JSON, as it is stored."""
        return json.dumps(
            {"v": CURSOR_VERSION, "after": self.after, "delivered": self.delivered,
             "pending": [asdict(p) for p in self.pending]},
            separators=(",", ":"), sort_keys=True,
        )  # fmt: skip

    def mirror(self) -> str:
        """The ledger without its delivered keys, to show in the sensor cursor (every tick keeps a copy)."""
        return json.dumps(
            {"v": CURSOR_VERSION, "after": self.after, "delivered_keys": len(self.delivered),
             "pending": [asdict(p) for p in self.pending]},
            separators=(",", ":"), sort_keys=True,
        )  # fmt: skip

    def offer(self, alert: dict, destination: str, reason: str) -> str:
        """Queue the alert for `destination` unless it was delivered (or queued) at this severity."""
        key = dedupe_key(alert, destination)
        rank = RANK[alert["alert_type"]]
        done = self.delivered.get(key)
        if done is not None and done[0] >= rank:
            return "already delivered"
        queued = next((p for p in self.pending if p.key == key), None)
        if queued is not None:
            if queued.rank >= rank:
                return "already pending"
            self.pending.remove(queued)
        self.pending.append(Pending(key, rank, destination, reason, alert))
        return "escalated" if done is not None or queued is not None else "queued"

    def mark_delivered(self, item: Pending, confirmed: bool = True) -> None:
        self.delivered[item.key] = [item.rank, item.alert["day"]] + ([] if confirmed else ["unconfirmed"])
        self.pending.remove(item)

    def prune(self) -> None:
        days = sorted({v[1] for v in self.delivered.values()})
        if len(days) > KEEP_DELIVERED_DAYS:
            oldest_kept = days[-KEEP_DELIVERED_DAYS]
            self.delivered = {k: v for k, v in self.delivered.items() if v[1] >= oldest_kept}


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
        for route in routes(alert, cfg):
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
        link = payloads.asset_link(cfg.dagster_url, "cost_alerts", alert["day"])
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
