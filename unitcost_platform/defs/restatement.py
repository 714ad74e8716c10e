"""Restatement: re-materialize days whose billing changed after they were computed.

Two signals, compared with what each `raw_billing` partition recorded in its metadata when it was
computed (`source_versions`, `source_totals`):
- AWS Data Exports: the period's manifest has a new `executionId` (AWS refreshed the month);
- billing APIs (Cost Explorer, Azure, GCP): once a day the re-pull window (the trailing days, and the
  previous month until it closes) is fetched again and each source's daily total compared.
Changed days are requested as single-run ranges; the run key names the change, so the same change
is requested once. Alerts of a restated day are not delivered twice (the delivery ledger).
"""

import datetime as dt
import hashlib
import json

import dagster as dg
import polars as pl
from dagster_aws.s3 import S3Resource

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.defs.assets.ingest import SOURCE_TOTALS_KEY, SOURCE_VERSIONS_KEY
from unitcost_platform.defs.metadata import latest_metadata_by_day
from unitcost_platform.defs.resources import CostExplorerResource, UnitcostResource
from unitcost_platform.sources.aws_cost_explorer import fetch_cost_explorer
from unitcost_platform.sources.aws_exports import manifest_versions
from unitcost_platform.sources.azure_cost import fetch_azure_costs
from unitcost_platform.sources.finality import repull_window
from unitcost_platform.sources.gcp_billing import fetch_gcp_costs

RESTATEMENT_SENSOR = "billing_restatement"
EXPORT_MONTHS_CHECKED = 3  # the current month and the two before: AWS restates closed months too
TOLERANCE = 1e-6


def utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def stored_by_day(instance: dg.DagsterInstance, days: list[dt.date]) -> dict[dt.date, dict]:
    """What each materialized raw_billing day was computed from (its latest materialization)."""
    return {
        day: {
            "totals": md[SOURCE_TOTALS_KEY].value if SOURCE_TOTALS_KEY in md else {},
            "versions": md[SOURCE_VERSIONS_KEY].value if SOURCE_VERSIONS_KEY in md else {},
        }
        for day, md in latest_metadata_by_day(instance, "raw_billing", days).items()
    }


def api_daily_totals(cfg: UnitcostConfig, days: list[dt.date], ce_client_factory, today: dt.date, log) -> dict[dt.date, dict[str, float]]:
    """Each API source's total per day, fetched again (the same requests the asset makes)."""
    frames = []
    billing, cost = cfg.billing, cfg.cost_column
    if billing.cost_explorer is not None:
        rows = fetch_cost_explorer(billing.cost_explorer, days, cost_column=cost, client=ce_client_factory(), log=log)
        frames.append(rows.with_columns(pl.lit("aws_cost_explorer").alias("x_Source")))
    if billing.azure is not None:
        frames.append(fetch_azure_costs(billing.azure, days, cost_column=cost, today=today, restatement=billing.restatement, log=log))
    if billing.gcp is not None:
        frames.append(fetch_gcp_costs(billing.gcp, days, cost_column=cost, today=today, restatement=billing.restatement, log=log))
    totals: dict[dt.date, dict[str, float]] = {d: {} for d in days}
    for frame in frames:
        grouped = frame.group_by(pl.col("ChargePeriodStart").dt.date().alias("day"), "x_Source").agg(pl.col(cost).sum())
        for day, source, total in grouped.iter_rows():
            totals.setdefault(day, {})[source] = round(total or 0.0, 6)
    return totals


def _ranges(days: list[dt.date]) -> list[tuple[dt.date, dt.date]]:
    ranges: list[tuple[dt.date, dt.date]] = []
    for day in sorted(days):
        if ranges and day == ranges[-1][1] + dt.timedelta(days=1):
            ranges[-1] = (ranges[-1][0], day)
        else:
            ranges.append((day, day))
    return ranges


def changed_days(
    stored: dict[dt.date, dict],
    export_versions: dict[str, str],
    api_totals: dict[dt.date, dict[str, float]],
) -> dict[dt.date, list[str]]:
    """Days whose export version or API total differs from what they were computed from, and why."""
    reasons: dict[dt.date, list[str]] = {}
    for day, seen in stored.items():
        period = day.strftime("%Y-%m")
        for key, version in export_versions.items():
            if key.endswith(period) and seen["versions"].get(key) != version:
                reasons.setdefault(day, []).append(f"{key} execution {seen['versions'].get(key)} -> {version}")
        for source, total in api_totals.get(day, {}).items():
            before = seen["totals"].get(source)
            if before is None or abs(total - before) > TOLERANCE * max(1.0, abs(before)):
                reasons.setdefault(day, []).append(f"{source} total {before} -> {total}")
        for source in seen["totals"]:
            if day in api_totals and source in ("aws_cost_explorer", "azure", "gcp") and source not in api_totals[day]:
                reasons.setdefault(day, []).append(f"{source} rows disappeared")
    return reasons


def build_restatement_sensor(cfg: UnitcostConfig, job) -> dg.SensorDefinition:
    billing = cfg.billing
    watched = billing.cost_explorer or billing.aws_exports or billing.azure or billing.gcp

    @dg.sensor(
        name=RESTATEMENT_SENSOR,
        job=job,
        minimum_interval_seconds=billing.restatement.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if watched else dg.DefaultSensorStatus.STOPPED,
    )
    def billing_restatement(
        context: dg.SensorEvaluationContext,
        unitcost: UnitcostResource,
        aws_cost_explorer: CostExplorerResource,
        s3: S3Resource,
    ):
        """Re-materializes days whose billing changed after they were computed (refreshed exports, restated API days)."""
        config = unitcost.load_config()
        today = utc_today()
        state = json.loads(context.cursor) if context.cursor else {}
        materialized = {
            dt.date.fromisoformat(k) for k in context.instance.get_materialized_partitions(dg.AssetKey("raw_billing"))
        }
        oldest = (today.replace(day=1) - dt.timedelta(days=31 * (EXPORT_MONTHS_CHECKED - 1))).replace(day=1)
        export_days = sorted(d for d in materialized if d >= oldest) if config.billing.aws_exports else []
        first, last = repull_window(today, config.billing.restatement)
        api_due = state.get("api_day") != today.isoformat() and bool(
            config.billing.cost_explorer or config.billing.azure or config.billing.gcp
        )
        api_days = sorted(d for d in materialized if first <= d <= last) if api_due else []

        versions: dict[str, str] = {}
        if export_days:
            periods = sorted({d.strftime("%Y-%m") for d in export_days})
            client = s3.get_client()
            for export in config.billing.aws_exports:
                versions.update({f"aws_exports:{k}": v for k, v in manifest_versions(client, export, periods).items()})
        totals = api_daily_totals(config, api_days, aws_cost_explorer.get_client, today, context.log.info) if api_days else {}
        if api_due:
            state["api_day"] = today.isoformat()

        stored = stored_by_day(context.instance, sorted(set(export_days) | set(api_days)))
        reasons = changed_days(stored, versions, totals)
        cursor = json.dumps(state, sort_keys=True)
        if not reasons:
            return dg.SensorResult(
                skip_reason=f"no restated billing: {len(export_days)} export day(s) and {len(api_days)} API day(s) checked",
                cursor=cursor,
            )
        requests = []
        for start, end in _ranges(list(reasons)):
            why = [r for d in sorted(reasons) if start <= d <= end for r in reasons[d]]
            digest = hashlib.sha1("\n".join(why).encode()).hexdigest()[:12]
            context.log.info(f"restated {start}..{end}: {'; '.join(sorted(set(why)))[:500]}")
            requests.append(dg.RunRequest(
                run_key=f"restate:{start}:{end}:{digest}",
                tags={"dagster/asset_partition_range_start": start.isoformat(),
                      "dagster/asset_partition_range_end": end.isoformat(),
                      "unitcost/restatement": "true"},
            ))  # fmt: skip
        return dg.SensorResult(run_requests=requests, cursor=cursor)

    return billing_restatement
