"""The usage contract: what every usage connector returns (`tenant_usage` rows)."""

import polars as pl

USAGE_SCHEMA: dict[str, pl.DataType] = {
    "usage_date": pl.Date(),
    "tenant_id": pl.String(),
    "service_name": pl.String(),
    "metric": pl.String(),
    "value": pl.Float64(),
    "source": pl.String(),
}


KEY = ["usage_date", "tenant_id", "service_name", "metric"]


def empty_usage() -> pl.DataFrame:
    return pl.DataFrame(schema=USAGE_SCHEMA)


def aggregate_usage(frame: pl.DataFrame) -> pl.DataFrame:
    """The tenant × service × metric grain of tenant_usage: repeated keys within a source are summed."""
    return (
        frame.group_by(KEY + ["source"])
        .agg(pl.col("value").sum())
        .select(list(USAGE_SCHEMA))
        .cast(USAGE_SCHEMA)
    )


def usage_from_records(records: list[tuple], source: str) -> pl.DataFrame:
    """tenant_usage from (usage_date, tenant_id, service_name, metric, value) tuples of one source."""
    if not records:
        return empty_usage()
    schema = {name: dtype for name, dtype in USAGE_SCHEMA.items() if name != "source"}
    frame = pl.DataFrame(records, schema=schema, orient="row")
    return aggregate_usage(frame.with_columns(source=pl.lit(source)))

