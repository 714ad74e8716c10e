"""Sensors: deliver new cost alerts once to their owners, and tell FinOps when the daily run fails."""

import threading
import time

import dagster as dg

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.defs.assets.engineering import UNIT_COST_METADATA_KEY
from unitcost_platform.defs.assets.reporting import ALERTS_METADATA_KEY
from unitcost_platform.defs.metadata import read_documents
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.notify import payloads
from unitcost_platform.notify.delivery import WebhookSender
from unitcost_platform.notify.dispatch import Ledger, TickReport, deliver_pending, offer_alerts

ALERT_SENSOR = "cost_alert_delivery"
RUN_FAILURE_SENSOR = "daily_run_failure_to_finops"
MATERIALIZATIONS_PER_TICK = 200
LEDGER_KEY = "unitcost/alert_delivery_ledger"
# The assets whose materializations carry messages, and under which metadata key: the day's alerts
# with their incidents and the incidents resolved (alert_incidents), the teams' unit-cost messages.
MESSAGE_SOURCES = {"alert_incidents": ALERTS_METADATA_KEY, "service_unit_cost": UNIT_COST_METADATA_KEY}
# Dagster gives up on a tick after 60 s, but the code server goes on evaluating it: a second
# evaluation running beside it would send what the first is sending.
_DELIVERING = threading.Lock()


class LedgerStore:
    """The delivery ledger in the instance's key-value store, which a tick that times out cannot lose."""

    def __init__(self, instance: dg.DagsterInstance):
        self.instance = instance
        self.saved: str | None = None

    def load(self, cursor: str | None) -> tuple[Ledger, bool]:
        """The stored ledger, or the one the sensor cursor held before it was stored here (True if so)."""
        self.saved = self.instance.run_storage.get_cursor_values({LEDGER_KEY}).get(LEDGER_KEY)
        return Ledger.from_cursor(self.saved or cursor, tuple(MESSAGE_SOURCES)), self.saved is None and bool(cursor)

    def save(self, ledger: Ledger) -> None:
        """Writes the ledger unless it is unchanged since the last write."""
        text = ledger.to_cursor()
        if text != self.saved:
            self.instance.run_storage.set_cursor_values({LEDGER_KEY: text})
            self.saved = text


def deliver_alerts(context: dg.SensorEvaluationContext, notifications: NotificationsConfig) -> dg.SensorResult:
    """One tick: queue the messages of new alert_incidents and service_unit_cost materializations, then
    send within the tick budget."""
    deadline = time.monotonic() + notifications.tick_budget_seconds
    store = LedgerStore(context.instance)
    ledger, from_cursor = store.load(context.cursor)
    if from_cursor:
        context.log.warning(f"no delivery ledger under {LEDGER_KEY} in the instance; starting from the sensor cursor")
    sender = WebhookSender(notifications)
    report = TickReport()
    for asset, key in MESSAGE_SOURCES.items():
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey(asset), after_storage_id=ledger.after.get(asset)),
            limit=MATERIALIZATIONS_PER_TICK,
            ascending=True,
        )
        for record in result.records:
            entry = record.asset_materialization.metadata.get(key) if record.asset_materialization else None
            alerts = read_documents(entry)
            offer_alerts(ledger, alerts, notifications, sender, report)
            ledger.after[asset] = record.storage_id
    store.save(ledger)
    deliver_pending(ledger, notifications, sender, report, deadline, save=store.save,
                    log=context.log.info, warn=context.log.warning)  # fmt: skip
    for line in report.failed:
        context.log.warning(line)
    ledger.prune()
    store.save(ledger)
    summary = report.summary(len(ledger.pending))
    context.log.info(summary)
    return dg.SensorResult(cursor=ledger.mirror(), skip_reason=summary)


def build_alert_sensor(cfg: NotificationsConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=cfg.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def cost_alert_delivery(context: dg.SensorEvaluationContext, unitcost: UnitcostResource) -> dg.SensorResult:
        """Delivers each incident once when it opens, again when it escalates and when it resolves (P1/P2 to
        the owning team, SEGMENT to FinOps), and each team's service unit-cost message once a day."""
        if not _DELIVERING.acquire(blocking=False):
            message = "skipped: an earlier evaluation of this sensor is still delivering (it outlived its tick) and records what it sends"
            context.log.warning(message)
            return dg.SkipReason(message)
        try:
            return deliver_alerts(context, unitcost.load_config().notifications)
        finally:
            _DELIVERING.release()

    return cost_alert_delivery


def failure_text(context: dg.RunFailureSensorContext) -> str:
    """The run's failure and, under it, what each failed step said (the cause FinOps can act on)."""
    lines = [context.failure_event.message or "the run failed"]
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        user = data.user_failure_data
        said = user.description if user is not None and user.description else data.error.message if data.error else ""
        lines.append(f"{event.step_key}: {said.strip() or 'failed'}")
    return "\n".join(lines)


def is_first_failure(context: dg.RunFailureSensorContext) -> bool:
    """Whether this failure event is the run's first. A run whose worker dies can be reported failed twice: the code
    server that launched it and the daemon's run monitoring each see the dead worker, check that the run has not
    finished and report it failed, so Dagster stores two failure events and runs this sensor for each."""
    run_id = context.dagster_run.run_id
    records = context.instance.get_records_for_run(run_id, of_type=dg.DagsterEventType.RUN_FAILURE, limit=1).records
    return not records or records[0].event_log_entry.dagster_event == context.failure_event


def build_run_failure_sensor(monitored_job) -> dg.SensorDefinition:
    @dg.run_failure_sensor(
        name=RUN_FAILURE_SENSOR,
        monitored_jobs=[monitored_job],
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def daily_run_failure_to_finops(context: dg.RunFailureSensorContext, unitcost: UnitcostResource):
        """Tells the FinOps channel when the daily unit-cost run fails, with the error and a link to the run."""
        notifications = unitcost.load_config().notifications
        if notifications.finops is None:
            return dg.SkipReason("no FinOps destination configured (notifications.finops)")
        run_id = context.dagster_run.run_id
        if not is_first_failure(context):
            return dg.SkipReason(f"run {run_id} was reported failed twice; FinOps was told at the first report")
        sender = WebhookSender(notifications)
        error = failure_text(context)
        body = payloads.run_failure_payload(
            sender.destination_type(notifications.finops), context.dagster_run.job_name, run_id, error,
            payloads.run_link(notifications.dagster_url, run_id),
        )  # fmt: skip
        result = sender.send(notifications.finops, body, deadline=time.monotonic() + notifications.tick_budget_seconds)
        if not result.ok:
            # A failed tick is kept in the sensor's history with this message; the run itself stays failed in the UI.
            raise dg.Failure(f"could not tell FinOps ({notifications.finops}) that run {run_id} failed: {result.detail}")
        if result.unconfirmed:
            context.log.warning(f"told {notifications.finops} that run {run_id} failed: {result.detail}")
        else:
            context.log.info(f"told {notifications.finops} that run {run_id} failed")

    return daily_run_failure_to_finops
