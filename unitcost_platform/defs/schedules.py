"""Schedules: the daily run of yesterday's partition, and the FinOps weekly digest (a job of its own)."""

import datetime as dt

import dagster as dg

from unitcost_platform.config import SchedulesConfig
from unitcost_platform.defs.assets.reporting import ALERTS_METADATA_KEY
from unitcost_platform.defs.metadata import latest_metadata_by_day, read_documents
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.notify import payloads
from unitcost_platform.notify.delivery import WebhookSender
from unitcost_platform.notify.digest import CheckWarning, build_digest, week_of

DAILY_SCHEDULE = "unit_cost_daily_schedule"
DIGEST_SCHEDULE = "finops_weekly_digest_schedule"
DIGEST_JOB = "finops_weekly_digest"


def _status(running: bool) -> dg.DefaultScheduleStatus:
    return dg.DefaultScheduleStatus.RUNNING if running else dg.DefaultScheduleStatus.STOPPED


def build_daily_schedule(job, cfg: SchedulesConfig) -> dg.ScheduleDefinition:
    """Materializes the previous UTC day (the last complete partition) at the configured time."""
    return dg.build_schedule_from_partitioned_job(
        job,
        name=DAILY_SCHEDULE,
        hour_of_day=cfg.daily.hour,
        minute_of_hour=cfg.daily.minute,
        default_status=_status(cfg.daily.running),
        description="Computes yesterday's unit cost (UTC) every day at the configured time.",
    )


class DigestConfig(dg.Config):
    week_end: str  # the last day of the week, YYYY-MM-DD


def _latest_alerts(instance: dg.DagsterInstance, days: list[dt.date]) -> list[dict]:
    """The alerts of each day from its latest cost_alerts materialization (a restated day counts once)."""
    alerts = []
    for metadata in latest_metadata_by_day(instance, "cost_alerts", days, per_day=50).values():
        alerts += read_documents(metadata.get(ALERTS_METADATA_KEY))
    return sorted(alerts, key=lambda a: (a["day"], a["alert_type"], a.get("customer_id") or ""))


def _check_warnings(instance: dg.DagsterInstance, check_keys: list[dg.AssetCheckKey], days: list[dt.date]) -> list[CheckWarning]:
    """The latest evaluation of each check on each day of the week that did not pass."""
    wanted = {d.isoformat() for d in days}
    found = []
    for key in check_keys:
        latest: dict[str, object] = {}
        for record in instance.event_log_storage.get_asset_check_execution_history(key, limit=500):
            if record.partition in wanted and record.partition not in latest:
                latest[record.partition] = record
        for day, record in sorted(latest.items()):
            evaluation = record.event.dagster_event.event_specific_data if record.event else None
            if evaluation is not None and not evaluation.passed:
                found.append(CheckWarning(day, key.asset_key.to_user_string(), key.name,
                                          evaluation.severity.value, evaluation.description or ""))  # fmt: skip
    return found


def build_digest_job(check_keys: list[dg.AssetCheckKey]) -> dg.JobDefinition:
    @dg.op(retry_policy=dg.RetryPolicy(max_retries=3, delay=60, backoff=dg.Backoff.EXPONENTIAL))
    def send_weekly_digest(context: dg.OpExecutionContext, config: DigestConfig, unitcost: UnitcostResource) -> None:
        """Sends the week's TREND and SEGMENT alerts and check warnings, one message per destination."""
        notifications = unitcost.load_config().notifications
        week_end = dt.date.fromisoformat(config.week_end)
        days = week_of(week_end)
        alerts = [a for a in _latest_alerts(context.instance, days) if a["alert_type"] in ("TREND", "SEGMENT")]
        warnings = _check_warnings(context.instance, check_keys, days)
        messages = build_digest(week_end, alerts, warnings, notifications)
        if not messages:
            context.log.warning("no digest destination configured (notifications.finops or teams); nothing sent")
            return
        sender = WebhookSender(notifications)
        link = payloads.asset_link(notifications.dagster_url, "cost_alerts")
        failures = []
        for dest, (title, sections) in messages.items():
            result = sender.send(dest, payloads.digest_payload(sender.destination_type(dest), title, sections, link))
            # An unconfirmed digest was sent: failing the op would have its retry send it again.
            (context.log.info if result.ok and not result.unconfirmed else context.log.warning)(f"digest to {dest}: {result.detail}")
            if not result.ok:
                failures.append(f"{dest}: {result.detail}")
        if failures:
            raise dg.Failure(f"weekly digest not delivered to {'; '.join(failures)} (retried by the op's retry policy)")

    @dg.job(name=DIGEST_JOB, description="The FinOps weekly digest of TREND/SEGMENT alerts and check warnings.")
    def finops_weekly_digest():
        send_weekly_digest()

    return finops_weekly_digest


def build_digest_schedule(job: dg.JobDefinition, cfg: SchedulesConfig) -> dg.ScheduleDefinition:
    digest = cfg.weekly_digest

    @dg.schedule(
        name=DIGEST_SCHEDULE,
        job=job,
        cron_schedule=f"{digest.minute} {digest.hour} * * {digest.day_of_week}",
        execution_timezone="UTC",
        default_status=_status(digest.running),
    )
    def finops_weekly_digest_schedule(context: dg.ScheduleEvaluationContext) -> dg.RunRequest:
        """Sends the digest of the seven days before the tick, once per week (the run key dedupes)."""
        week_end = (context.scheduled_execution_time.astimezone(dt.UTC).date() - dt.timedelta(days=1)).isoformat()
        return dg.RunRequest(
            run_key=f"digest-{week_end}",
            run_config=dg.RunConfig(ops={"send_weekly_digest": DigestConfig(week_end=week_end)}),
            tags={"unitcost/week_end": week_end},
        )

    return finops_weekly_digest_schedule
