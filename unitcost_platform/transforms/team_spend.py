"""Team-level spend: the day's bill by owning team, the "Crawl" view unit cost sits beside.

A line item belongs to the team named by its `team`/`owner` tag (the configured keys, first
non-empty wins); without one, to the team that owns its service in `owners.services`; otherwise it
is `unowned`, and shown as such. Every line item lands on exactly one team, so the teams of a day
sum to the day's bill.
"""

import datetime as dt

import polars as pl

from unitcost_platform.config import OwnersConfig
from unitcost_platform.contracts.focus import first_tag

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


def team_spend(billing: pl.DataFrame, days: list[dt.date], owners: OwnersConfig, cost_column: str) -> pl.DataFrame:
    """(day, team, owner_source) rows with the cost, line items and services, and the team's share of the day."""
    billing = billing.filter(pl.col("x_ChargeDate").is_in(days))
    if billing.is_empty():
        return pl.DataFrame(schema=TEAM_SPEND_SCHEMA)
    tagged = first_tag(billing["Tags"], owners.team_tag_keys) if owners.team_tag_keys else None
    service_team = pl.col("ServiceName").replace_strict(owners.services, default=None, return_dtype=pl.String)
    frame = billing.select(
        pl.col("x_ChargeDate").alias("day"),
        pl.col("ServiceName"),
        pl.col(cost_column).fill_null(0.0).alias("cost"),
        (tagged if tagged is not None else pl.lit(None, pl.String)).alias("tag_team"),
    ).with_columns(service_team.alias("service_team"))
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
            pl.len().cast(pl.Int64).alias("line_items"),
            pl.col("ServiceName").n_unique().cast(pl.Int64).alias("services"),
        )
        .with_columns((pl.col("cost") / pl.col("cost").sum().over("day")).fill_nan(None).alias("share_of_day"))
        .sort("day", pl.col("cost"), descending=[False, True])
    )
    return out.select(pl.col(c).cast(t) for c, t in TEAM_SPEND_SCHEMA.items())
