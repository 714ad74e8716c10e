"""Sensors: deliver new cost alerts once to their owners, and tell FinOps when the daily run fails."""

import dagster as dg

from unitcost_platform.config import NotificationsConfig
from unitcost_platform.defs.assets.reporting import ALERTS_METADATA_KEY
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.notify import payloads
from unitcost_platform.notify.delivery import WebhookSender
from unitcost_platform.notify.dispatch import Ledger, TickReport, deliver_pending, offer_alerts

ALERT_SENSOR = "cost_alert_delivery"
RUN_FAILURE_SENSOR = "daily_run_failure_to_finops"
MATERIALIZATIONS_PER_TICK = 200


def build_alert_sensor(cfg: NotificationsConfig) -> dg.SensorDefinition:
    @dg.sensor(
        name=ALERT_SENSOR,
        minimum_interval_seconds=cfg.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING,
    )
    def cost_alert_delivery(context: dg.SensorEvaluationContext, unitcost: UnitcostResource) -> dg.SensorResult:
        """Delivers each new or escalated cost alert once: P1/P2 to the owning team, SEGMENT to FinOps."""
        notifications = unitcost.load_config().notifications
        ledger = Ledger.from_cursor(context.cursor)
        sender = WebhookSender(notifications)
        report = TickReport()
        result = context.instance.fetch_materializations(
            dg.AssetRecordsFilter(asset_key=dg.AssetKey("cost_alerts"), after_storage_id=ledger.after),
            limit=MATERIALIZATIONS_PER_TICK,
            ascending=True,
        )
        for record in result.records:
            entry = record.asset_materialization.metadata.get(ALERTS_METADATA_KEY) if record.asset_materialization else None
            alerts = entry.value if entry is not None else []
            offer_alerts(ledger, alerts, notifications, sender, report)
            ledger.after = record.storage_id
        deliver_pending(ledger, notifications, sender, report, log=context.log.info)
        for line in report.failed:
            context.log.warning(line)
        ledger.prune()
        summary = report.summary(len(ledger.pending))
        context.log.info(summary)
        return dg.SensorResult(cursor=ledger.to_cursor(), skip_reason=summary)

    return cost_alert_delivery


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
        sender = WebhookSender(notifications)
        run_id = context.dagster_run.run_id
        error = context.failure_event.message or "the run failed"
        body = payloads.run_failure_payload(
            sender.destination_type(notifications.finops), context.dagster_run.job_name, run_id, error,
            payloads.run_link(notifications.dagster_url, run_id),
        )  # fmt: skip
        result = sender.send(notifications.finops, body)
        if not result.ok:
            # A failed tick is kept in the sensor's history with this message; the run itself stays failed in the UI.
            raise dg.Failure(f"could not tell FinOps ({notifications.finops}) that run {run_id} failed: {result.detail}")
        context.log.info(f"told {notifications.finops} that run {run_id} failed")

    return daily_run_failure_to_finops
