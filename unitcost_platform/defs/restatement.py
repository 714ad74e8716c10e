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
from pathlib import Path

import dagster as dg
import polars as pl

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.defs.assets.ingest import SOURCE_TOTALS_KEY, SOURCE_VERSIONS_KEY
from unitcost_platform.defs.metadata import latest_metadata_by_day
from unitcost_platform.defs.resources import SOURCE_RESOURCE_KEYS
from unitcost_platform.sources import registry
from unitcost_platform.sources.connector import ReadContext
from unitcost_platform.sources.finality import repull_window

API_CONNECTORS = [c for c in registry.BILLING if c.restatement == "api_totals"]
EXPORT_CONNECTORS = [c for c in registry.BILLING if c.restatement == "export_versions"]
API_SOURCES = {c.name for c in API_CONNECTORS}
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


def api_daily_totals(
    cfg: UnitcostConfig, days: list[dt.date], resources: dict, today: dt.date, log
) -> dict[dt.date, dict[str, float]]:
    """Each API source's total per day, fetched again (the same requests the asset makes)."""
    cost = cfg.cost_column
    totals: dict[dt.date, dict[str, float]] = {d: {} for d in days}
    for connector in API_CONNECTORS:
        for source in connector.configured(cfg):
            context = ReadContext(cfg, Path("."), log, today, resources.get(connector.resource_key))
            rows = connector.api_rows(context, source, days)
            grouped = rows.group_by(pl.col("ChargePeriodStart").dt.date().alias("day")).agg(pl.col(cost).sum())
            for day, total in grouped.iter_rows():
                totals.setdefault(day, {})[connector.name] = round(total or 0.0, 6)
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
            if day in api_totals and source in API_SOURCES and source not in api_totals[day]:
                reasons.setdefault(day, []).append(f"{source} rows disappeared")
    return reasons


def build_restatement_sensor(cfg: UnitcostConfig, job) -> dg.SensorDefinition:
    watched = any(c.configured(cfg) for c in (*API_CONNECTORS, *EXPORT_CONNECTORS))

    @dg.sensor(
        name=RESTATEMENT_SENSOR,
        job=job,
        minimum_interval_seconds=cfg.billing.restatement.sensor_interval_seconds,
        default_status=dg.DefaultSensorStatus.RUNNING if watched else dg.DefaultSensorStatus.STOPPED,
        required_resource_keys={"unitcost", *SOURCE_RESOURCE_KEYS["billing"]},
    )
    def billing_restatement(context: dg.SensorEvaluationContext, **_as_arguments):
        """Re-materializes days whose billing changed after they were computed (refreshed exports, restated API days)."""
        # The resources are read from the context; a direct call (tests) also passes them as arguments.
        config = context.resources.unitcost.load_config()
        resources = {key: getattr(context.resources, key) for key in SOURCE_RESOURCE_KEYS["billing"]}
        today = utc_today()
        state = json.loads(context.cursor) if context.cursor else {}
        materialized = {
            dt.date.fromisoformat(k) for k in context.instance.get_materialized_partitions(dg.AssetKey("raw_billing"))
        }
        oldest = (today.replace(day=1) - dt.timedelta(days=31 * (EXPORT_MONTHS_CHECKED - 1))).replace(day=1)
        exports = [(c, source) for c in EXPORT_CONNECTORS for source in c.configured(config)]
        export_days = sorted(d for d in materialized if d >= oldest) if exports else []
        first, last = repull_window(today, config.billing.restatement)
        api_due = state.get("api_day") != today.isoformat() and any(c.configured(config) for c in API_CONNECTORS)
        api_days = sorted(d for d in materialized if first <= d <= last) if api_due else []

        versions: dict[str, str] = {}
        if export_days:
            periods = sorted({d.strftime("%Y-%m") for d in export_days})
            for connector, source in exports:
                versions.update(connector.export_versions(resources[connector.resource_key], source, periods))
        totals = api_daily_totals(config, api_days, resources, today, context.log.info) if api_days else {}
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
