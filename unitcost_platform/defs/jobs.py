"""Jobs: the daily unit-cost job over every asset (partitioning comes from the assets)."""

import dagster as dg

UNIT_COST_JOB = "unit_cost_daily"

unit_cost_job = dg.define_asset_job(
    name=UNIT_COST_JOB,
    selection=dg.AssetSelection.all(),
    description="Billing, usage and customers of a day to allocated cost, unit cost, alerts and growth.",
)
