"""Team spend (day x team) and the HTML dashboard that puts unit cost beside it."""

import datetime as dt
import os
import tempfile
from pathlib import Path

import dagster as dg
import polars as pl

from unitcost_platform.dashboard import DashboardInputs, headline, render_dashboard
from unitcost_platform.defs.assets.common import daily_asset
from unitcost_platform.defs.metadata import (
    markdown_table,
    money,
    per_day_metadata,
    usd,
    user_errors_as_failures,
)
from unitcost_platform.defs.partitions import days_of, trailing_days
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import BY_DAY, ROLLUP_KEY, ByDay
from unitcost_platform.transforms.team_spend import team_spend as compute_team_spend

GROUP = "dashboard"

UNALLOCATED_ROLLUP = {
    "by": ["day", "unallocated_reason"],
    "sum": ["allocated_cost"],
    "not_null": ["unallocated_reason"],
}
PRODUCT_COLUMNS = ["day", "product", "cost", "usage_metric", "cost_growth_7d", "units_growth_7d", "cost_outgrowing_usage"]
SEGMENT_COLUMNS = ["day", "dimension", "group_name", "metric", "revenue_share", "cost_share", "usage_share", "infra_margin"]
UNIT_COST_COLUMNS = [
    "day", "customer_id", "customer_name", "tier", "is_paying", "mrr",
    "total_cost", "cost_to_mrr", "monthly_run_rate",
]  # fmt: skip


def dashboard_file(directory: Path, day: dt.date) -> Path:
    return directory / f"unitcost-dashboard-{day.isoformat()}.html"


def _write_atomically(path: Path, text: str) -> None:
    """The page appears whole or not at all: a reader never opens half a file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a dashboard is for reading
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def build_dashboard_assets(
    partitions_def: dg.PartitionsDefinition,
    kinds: set[str],
    backfill: dg.BackfillPolicy | None = None,
    history_days: int = 90,
) -> list[dg.AssetsDefinition]:

    @dg.asset(
        ins={
            # Summed by the warehouse per day, service and team tag (team_spend.TEAM_QUERY).
            "raw_billing": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "team_items"}})
        },
        **daily_asset(partitions_def, kinds, GROUP, "day", backfill),
    )
    def team_spend(
        context: dg.AssetExecutionContext, unitcost: UnitcostResource, raw_billing: pl.DataFrame
    ) -> pl.DataFrame:
        """The day's bill by owning team (team/owner tag, else the service's owner, else unowned)."""
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
            frame = compute_team_spend(raw_billing, days, cfg.owners, cfg.cost_column)

        def describe(day: pl.DataFrame) -> dict:
            by_team = day.group_by("team").agg(pl.col("cost").sum()).sort("cost", descending=True)
            return {
                "total_cost": money(day["cost"].sum()),
                "teams": by_team.height,
                "unowned_cost": money(day.filter(pl.col("owner_source") == "unowned")["cost"].sum()),
                "by_team": dg.MetadataValue.md(markdown_table(by_team, {"cost": usd})),
            }

        per_day_metadata(context, days, frame, "day", describe)
        return frame

    window = trailing_days(history_days)

    @dg.asset(
        ins={
            # The run's days as rows (the headline, today's distribution), the window as a row per day
            # (`daily_series`): the window's other rows never leave the warehouse.
            "unit_cost": dg.AssetIn(partition_mapping=window, input_manager_key=BY_DAY, metadata={"columns": UNIT_COST_COLUMNS}),
            "growth_efficiency": dg.AssetIn(
                partition_mapping=window,
                metadata={"columns": ["day", "cost_growth_90d", "customer_growth_90d", "ratio"]},
            ),
            "tag_coverage": dg.AssetIn(
                partition_mapping=window,
                metadata={"columns": ["day", "scope_type", "total_cost", "coverage", "tagged_share", "untagged_cost"]},
            ),
            "allocated_cost": dg.AssetIn(partition_mapping=window, metadata={ROLLUP_KEY: UNALLOCATED_ROLLUP}),
            "team_spend": dg.AssetIn(partition_mapping=window, metadata={"columns": ["day", "team", "cost"]}),
            "service_unit_cost": dg.AssetIn(
                partition_mapping=window,
                metadata={"columns": ["day", "service_name", "owner", "cost_per_customer_month",
                                      "target_per_customer_month", "target_ratio"]},  # fmt: skip
            ),
            "alert_incidents": dg.AssetIn(partition_mapping=window, metadata={ROLLUP_KEY: {"query": "incidents_on_show"}}),
            "product_cost": dg.AssetIn(metadata={"columns": PRODUCT_COLUMNS}),
            "segment_economics": dg.AssetIn(metadata={"columns": SEGMENT_COLUMNS}),
            "customer_unit_costs": dg.AssetIn(
                partition_mapping=window, metadata={ROLLUP_KEY: {"query": "cost_per_unit_daily"}}
            ),
            "cost_anomalies": dg.AssetIn(partition_mapping=window, metadata={ROLLUP_KEY: {"query": "anomalies_found"}}),
            # The customers projected to cross P2 or P1 soon, all the panel shows.
            "margin_forecast": dg.AssetIn(metadata={ROLLUP_KEY: {"query": "forecast_crossings"}}),
        },
        partitions_def=partitions_def,
        backfill_policy=backfill or dg.BackfillPolicy.single_run(),
        group_name=GROUP,
        kinds={"plotly", "html"},
        owners=["team:finops"],
    )
    def unit_cost_dashboard(
        context: dg.AssetExecutionContext,
        unitcost: UnitcostResource,
        unit_cost: ByDay,
        growth_efficiency: pl.DataFrame,
        tag_coverage: pl.DataFrame,
        allocated_cost: pl.DataFrame,
        team_spend: pl.DataFrame,
        service_unit_cost: pl.DataFrame,
        alert_incidents: pl.DataFrame,
        product_cost: pl.DataFrame,
        segment_economics: pl.DataFrame,
        customer_unit_costs: pl.DataFrame,
        cost_anomalies: pl.DataFrame,
        margin_forecast: pl.DataFrame,
    ) -> dg.MaterializeResult:
        """A self-contained HTML page (opens offline) of unit cost beside team spend, as of the run's last day.

        A range run renders one page, as of its last day (a year's backfill would otherwise write
        365 pages of 5 MB); every day of the range still gets its headline numbers.
        """
        days = days_of(context)
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        as_of = max(days)
        unit_cost_rows = unit_cost.days(days)
        unit_cost_daily = unit_cost.query("unit_cost_daily")

        def inputs_for(day: dt.date) -> DashboardInputs:
            start = day - dt.timedelta(days=history_days - 1)

            def window_of(frame: pl.DataFrame) -> pl.DataFrame:
                return frame.filter(pl.col("day").is_between(start, day))

            return DashboardInputs(
                day=day,
                unit_cost=unit_cost_rows.filter(pl.col("day") == day),
                unit_cost_daily=window_of(unit_cost_daily),
                growth=window_of(growth_efficiency),
                coverage=window_of(tag_coverage.filter(pl.col("scope_type") == "overall")),
                idle=window_of(tag_coverage.filter(pl.col("scope_type") == "idle")),
                unallocated=window_of(allocated_cost),
                team_spend=window_of(team_spend),
                service_unit_cost=window_of(service_unit_cost),
                incidents=window_of(alert_incidents),
                products=window_of(product_cost),
                segments=window_of(segment_economics),
                cost_per_unit_daily=window_of(customer_unit_costs),
                anomalies=window_of(cost_anomalies),
                forecast=margin_forecast.filter(pl.col("day") == day),
                p1_cost_to_mrr=cfg.alerts.p1_cost_to_mrr,
                p2_cost_to_mrr=cfg.alerts.p2_cost_to_mrr,
                scope=cfg.scope_description(),
                notes=[
                    "Cost per customer is allocated cost: direct (tenant-tagged) plus its share of the shared pools.",
                    "Team spend is the whole bill by owning team (team/owner tag, else the service's owner).",
                    f"Rendered by unitcost_platform from the warehouse tables; {history_days} days of history.",
                ],
            )

        page = render_dashboard(inputs_for(as_of))
        path = dashboard_file(unitcost.dashboard_path(), as_of).resolve()
        _write_atomically(path, page.html)
        context.log.info(f"dashboard as of {as_of}: {path} ({len(page.html) / 1e6:.1f} MB, {len(page.plots)} plots)")
        for day in days:
            numbers = page.headline if day == as_of else headline(inputs_for(day))
            context.add_asset_metadata(
                {
                    "dashboard": dg.MetadataValue.path(str(path)),
                    "dashboard_url": dg.MetadataValue.url(path.as_uri()),
                    "rendered_as_of": as_of.isoformat(),
                    "plots": len(page.plots),
                    **{k: v for k, v in numbers.items() if v is not None and k != "day"},
                },
                partition_key=day.isoformat(),
            )
        return dg.MaterializeResult()

    return [team_spend, unit_cost_dashboard]
