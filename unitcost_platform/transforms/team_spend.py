"""Team-level spend: the day's bill by owning team, the "Crawl" view unit cost sits beside.

A line item belongs to the team named by its `team`/`owner` tag (the configured keys, first
non-empty wins); without one, to the team that owns its service in `owners.services`; otherwise it
is `unowned`, and shown as such. Every line item lands on exactly one team, so the teams of a day
sum to the day's bill.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import OwnersConfig, UnitcostConfig
from unitcost_platform.contracts.focus import first_tag
from unitcost_platform.contracts.tenant_key import tenant_keys
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery, first_tag_sql

UNOWNED = "unowned"

TEAM_SPEND_SCHEMA = {
    "day": pl.Date(),
    "team": pl.String(),
    # tag: the line items' team/owner tag; service: owners.services; unowned: neither.
    "owner_source": pl.String(),
    "cost": pl.Float64(),
    "line_items": pl.Int64(),
    "services": pl.Int64(),
    "share_of_day": pl.Float64(),
}


# The day's line items summed to what team spend reads: per (day, service, team tag). The warehouse
# computes it (TEAM_QUERY); `team_items` is its Polars twin for frames of line items.
TEAM_ITEMS_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "ServiceName": pl.String(),
    "tag_team": pl.String(),
    "cost": pl.Float64(),
    "line_items": pl.Int64(),
}


def team_items(billing: pl.DataFrame, owners: OwnersConfig, cost_column: str) -> pl.DataFrame:
    tagged = first_tag(billing["Tags"], owners.team_tag_keys) if owners.team_tag_keys and billing.height else None
    return (
        billing.select(
            pl.col("x_ChargeDate").alias("day"), "ServiceName",
            (tagged if tagged is not None else pl.lit(None, pl.String)).alias("tag_team"),
            pl.col(cost_column).fill_null(0.0).alias("cost"),
        )  # fmt: skip
        .group_by("day", "ServiceName", "tag_team")
        .agg(pl.col("cost").sum(), pl.len().alias("line_items"))
        .cast(TEAM_ITEMS_SCHEMA)
    )


def _team_statement(rows: str, cfg: UnitcostConfig, dialect: Dialect) -> str:
    return (
        f"select x_ChargeDate as day, ServiceName, {first_tag_sql(cfg.owners.team_tag_keys, dialect)} as tag_team, "
        f"sum(coalesce({cfg.cost_column}, 0)) as cost, count(*) as line_items "
        f"from ({rows}) as unitcost_rows group by 1, 2, 3"
    )


TEAM_QUERY = WarehouseQuery(
    ["x_ChargeDate", "ServiceName", "Tags", "BilledCost", "EffectiveCost"], TEAM_ITEMS_SCHEMA, _team_statement
)


def team_spend(billing: pl.DataFrame, days: list[dt.date], owners: OwnersConfig, cost_column: str) -> pl.DataFrame:
    """(day, team, owner_source) rows with the cost, line items and services, and the team's share of the day.

    `billing`: line items, or the warehouse's sums of them (TEAM_ITEMS_SCHEMA)."""
    items = billing if "tag_team" in billing.columns else team_items(billing, owners, cost_column)
    items = items.filter(pl.col("day").is_in(days))
    if items.is_empty():
        return pl.DataFrame(schema=TEAM_SPEND_SCHEMA)
    service_team = pl.col("ServiceName").replace_strict(owners.services, default=None, return_dtype=pl.String)
    frame = items.with_columns(tenant_keys(items["tag_team"], "none"), service_team.alias("service_team"))
    frame = frame.with_columns(
        pl.coalesce("tag_team", "service_team", pl.lit(UNOWNED)).alias("team"),
        pl.when(pl.col("tag_team").is_not_null())
        .then(pl.lit("tag"))
        .when(pl.col("service_team").is_not_null())
        .then(pl.lit("service"))
        .otherwise(pl.lit(UNOWNED))
        .alias("owner_source"),
    )
    out = (
        frame.group_by("day", "team", "owner_source")
        .agg(
            pl.col("cost").sum(),
            pl.col("line_items").sum().cast(pl.Int64),
            pl.col("ServiceName").n_unique().cast(pl.Int64).alias("services"),
        )
        .with_columns((pl.col("cost") / pl.col("cost").sum().over("day")).fill_nan(None).alias("share_of_day"))
        .sort("day", pl.col("cost"), descending=[False, True])
    )
    return out.select(pl.col(c).cast(t) for c, t in TEAM_SPEND_SCHEMA.items())
