"""Product cost (the "Walk" view): the day's bill by product, set against the product's usage.

A line item belongs to the product named by its `product`/`app` tag (`products.tag_keys`, first
non-empty wins); without one, to the product of its service (`products.services`); otherwise to
`unmapped`, shown as such. Every line item lands on exactly one product, so a day's products sum to
its bill. A product given a usage metric (`products.usage`) gets the day's units of it (every
tenant's usage, optionally of one service), a cost per unit, and its 7-day cost growth against its
7-day usage growth: a product whose cost outgrows its usage is getting less efficient to run.

The day's bill summed by the warehouse per service and product tag (`PRODUCT_QUERY`) is a table of
its own, `product_billing`, written once per day with the tag keys it was summed with; product_cost
reads 14 days of it (a few rows per day, where it read and parsed 14 days of line items) and 14 days
of usage per day, service and metric (`USAGE_ROLLUP`). A day of `product_billing` summed with other
tag keys than the run's is left out of the 7-day growth (`usable_days`), as a day not materialized
is. Frames summed per `Tags` string (`BILLING_ROLLUP`) and line items are read too (tests).
"""

import datetime as dt
import json

import polars as pl

from unitcost_platform.config import ProductsConfig, UnitcostConfig
from unitcost_platform.contracts.focus import first_tag
from unitcost_platform.contracts.tenant_key import tenant_keys
from unitcost_platform.transforms.unit_cost import TREND_DAYS
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery, first_tag_sql

UNMAPPED = "unmapped"
HISTORY_DAYS = 2 * TREND_DAYS

BILLING_ROLLUP = {
    "by": ["x_ChargeDate", "ServiceName", "Tags"], "sum": ["BilledCost", "EffectiveCost"], "count": "line_items",
}  # fmt: skip
USAGE_ROLLUP = {"by": ["usage_date", "service_name", "metric"], "sum": ["value"]}

PRODUCT_COST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "product": pl.String(),
    # tag: a product/app tag; service: products.services; unmapped: neither. A product reached both
    # ways on one day lists both, "service+tag".
    "product_source": pl.String(),
    "cost": pl.Float64(),
    "line_items": pl.Int64(),
    "share_of_day": pl.Float64(),
    "usage_metric": pl.String(),
    "units": pl.Float64(),
    "cost_per_unit": pl.Float64(),
    "cost_7d": pl.Float64(),
    "cost_prev_7d": pl.Float64(),
    "cost_growth_7d": pl.Float64(),
    "units_7d": pl.Float64(),
    "units_prev_7d": pl.Float64(),
    "units_growth_7d": pl.Float64(),
    "cost_outgrowing_usage": pl.Boolean(),
}


def _product_statement(rows: str, cfg: UnitcostConfig, dialect: Dialect) -> str:
    return (
        f"select x_ChargeDate, ServiceName, {first_tag_sql(cfg.products.tag_keys, dialect)} as {PRODUCT_TAG}, "
        "sum(BilledCost) as BilledCost, sum(EffectiveCost) as EffectiveCost, count(*) as line_items "
        f"from ({rows}) as unitcost_rows group by 1, 2, 3"
    )


# BILLING_ROLLUP with the product tag (the first configured key, trimmed) chosen by the warehouse
# instead of every distinct Tags string: far fewer rows when tags carry a tenant or a resource name.
PRODUCT_TAG = "x_ProductTag"
PRODUCT_QUERY = WarehouseQuery(
    ["x_ChargeDate", "ServiceName", "Tags", "BilledCost", "EffectiveCost"],
    {"x_ChargeDate": pl.Date(), "ServiceName": pl.String(), PRODUCT_TAG: pl.String(),
     "BilledCost": pl.Float64(), "EffectiveCost": pl.Float64(), "line_items": pl.Int64()},
    _product_statement,
)  # fmt: skip


# product_billing: PRODUCT_QUERY's sums of one day, with the tag keys that chose the product tag.
TAG_KEYS_COLUMN = "product_tag_keys"
PRODUCT_BILLING_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "ServiceName": pl.String(),
    PRODUCT_TAG: pl.String(),
    "BilledCost": pl.Float64(),
    "EffectiveCost": pl.Float64(),
    "line_items": pl.Int64(),
    TAG_KEYS_COLUMN: pl.String(),
}


def tag_keys_text(tag_keys: list[str]) -> str:
    """How product_billing records `products.tag_keys`: a JSON list, in order (order decides)."""
    return json.dumps(list(tag_keys))


def product_billing(sums: pl.DataFrame, tag_keys: list[str]) -> pl.DataFrame:
    """product_billing rows from the warehouse's PRODUCT_QUERY sums (x_ChargeDate renamed `day`)."""
    return (
        sums.rename({"x_ChargeDate": "day"})
        .with_columns(pl.lit(tag_keys_text(tag_keys)).alias(TAG_KEYS_COLUMN))
        .select(pl.col(c).cast(t) for c, t in PRODUCT_BILLING_SCHEMA.items())
        .sort("day", "ServiceName", PRODUCT_TAG, nulls_last=True)
    )


def usable_days(
    billing: pl.DataFrame, day_totals: pl.DataFrame, tag_keys: list[str]
) -> tuple[set[dt.date], list[dt.date], list[dt.date]]:
    """(days the 7-day growth may count, days summed with other tag keys, billed days without
    product_billing) of a product_billing window.

    `day_totals`: (day, total_cost) of the materialized days (tag_coverage's overall rows). A day
    counts when its product_billing rows were summed with `tag_keys`, or when it has none and its
    bill is zero; a day billed but without rows (product_billing not materialized for it, as in a
    warehouse older than the table) does not, nor a day summed with other keys (its products would
    be another config's)."""
    wanted = tag_keys_text(tag_keys)
    keys = billing.group_by("day").agg(pl.col(TAG_KEYS_COLUMN).unique())
    summed = {day: set(found) for day, found in keys.iter_rows()}
    other = sorted(day for day, found in summed.items() if found != {wanted})
    totals = dict(day_totals.select("day", "total_cost").iter_rows())
    missing = sorted(day for day, total in totals.items() if day not in summed and total)
    usable = {day for day in totals if summed.get(day) == {wanted} or (day not in summed and not totals[day])}
    return usable, other, missing


def product_of_line_items(billing: pl.DataFrame, products: ProductsConfig) -> pl.DataFrame:
    """`billing` with `product` and `product_source` columns: the tag, else the service, else unmapped.

    `billing` has `Tags`, or the product tag the warehouse chose (PRODUCT_QUERY)."""
    if PRODUCT_TAG in billing.columns:
        tagged = tenant_keys(billing[PRODUCT_TAG], "none").alias("_tag")
    elif products.tag_keys and billing.height:
        tagged = first_tag(billing["Tags"], products.tag_keys).alias("_tag")
    else:
        tagged = pl.Series("_tag", [None] * billing.height, dtype=pl.String)
    service = pl.col("ServiceName").replace_strict(products.services, default=None, return_dtype=pl.String)
    return (
        billing.with_columns(tagged, service.alias("_service"))
        .with_columns(
            pl.coalesce("_tag", "_service", pl.lit(UNMAPPED)).alias("product"),
            pl.when(pl.col("_tag").is_not_null())
            .then(pl.lit("tag"))
            .when(pl.col("_service").is_not_null())
            .then(pl.lit("service"))
            .otherwise(pl.lit(UNMAPPED))
            .alias("product_source"),
        )
        .drop("_tag", "_service")
    )


def _daily_units(usage: pl.DataFrame, products: ProductsConfig) -> pl.DataFrame:
    """(day, product, units) for every product with a usage metric and every day of `usage`."""
    frames = []
    for product, spec in products.usage.items():
        rows = usage.filter(pl.col("metric") == spec.metric)
        if spec.service_name is not None:
            rows = rows.filter(pl.col("service_name") == spec.service_name)
        frames.append(
            rows.sort("usage_date", "service_name", "value", nulls_last=True)
            .group_by(pl.col("usage_date").alias("day"), maintain_order=True)
            .agg(pl.col("value").sum().alias("units"))
            .with_columns(pl.lit(product).alias("product"))
            .select("day", "product", "units")
        )
    schema = {"day": pl.Date, "product": pl.String, "units": pl.Float64}
    return pl.concat([f.cast(schema) for f in frames]) if frames else pl.DataFrame(schema=schema)


def _growth(now: pl.Expr, before: pl.Expr, full: pl.Expr) -> pl.Expr:
    return pl.when(full & (before != 0)).then(now / before - 1)


def product_cost(
    billing: pl.DataFrame,
    usage: pl.DataFrame,
    present_days: set[dt.date],
    days: list[dt.date],
    products: ProductsConfig,
    cost_column: str,
) -> pl.DataFrame:
    """(day, product) rows of `days` from billing at BILLING_ROLLUP and usage at USAGE_ROLLUP over the
    14 days ending at each day; `present_days` are the materialized days (growth needs all 14)."""
    if not days:
        return pl.DataFrame(schema=PRODUCT_COST_SCHEMA)
    first = min(days) - dt.timedelta(days=HISTORY_DAYS - 1)
    billing = billing.filter(pl.col("x_ChargeDate").is_between(first, max(days)))
    mapped = product_of_line_items(billing, products)
    # Sorted, and grouped in that order: float sums come out the same bits whatever order the
    # warehouse returned the rollup in and whatever the run's range.
    daily = (
        mapped.sort("x_ChargeDate", "product", "ServiceName", PRODUCT_TAG if PRODUCT_TAG in mapped.columns else "Tags",
                    cost_column, nulls_last=True)
        .group_by(pl.col("x_ChargeDate").alias("day"), "product", maintain_order=True)
        .agg(
            pl.col(cost_column).fill_null(0.0).sum().alias("cost"),
            pl.col("line_items").sum().cast(pl.Int64),
            pl.col("product_source").unique().sort().str.join("+"),
        )
        .cast({"day": pl.Date})
    )
    units = _daily_units(usage.filter(pl.col("usage_date").is_between(first, max(days))), products)
    targets = daily.filter(pl.col("day").is_in(days))
    if targets.is_empty():
        return pl.DataFrame(schema=PRODUCT_COST_SCHEMA)
    present = sorted(set(present_days) | set(days))
    # Each (day, product) against the 14 days ending at its day: offset 0-6 is this week, 7-13 the one before.
    window = (
        targets.select("day", "product")
        .join(pl.DataFrame({"_offset": range(HISTORY_DAYS)}, schema={"_offset": pl.Int64}), how="cross")
        .with_columns((pl.col("day") - pl.duration(days=pl.col("_offset"))).cast(pl.Date).alias("_at"))
        .join(daily.select(pl.col("day").alias("_at"), "product", pl.col("cost").alias("_cost")), on=["_at", "product"], how="left")
        .join(units.rename({"day": "_at", "units": "_units"}), on=["_at", "product"], how="left")
        .with_columns(pl.col("_cost").fill_null(0.0), pl.col("_units").fill_null(0.0))
        .sort("day", "product", "_offset")
        .group_by("day", "product", maintain_order=True)
        .agg(
            pl.col("_cost").filter(pl.col("_offset") < TREND_DAYS).sum().alias("cost_7d"),
            pl.col("_cost").filter(pl.col("_offset") >= TREND_DAYS).sum().alias("cost_prev_7d"),
            pl.col("_units").filter(pl.col("_offset") < TREND_DAYS).sum().alias("units_7d"),
            pl.col("_units").filter(pl.col("_offset") >= TREND_DAYS).sum().alias("units_prev_7d"),
            pl.col("_at").is_in(present).sum().alias("_present"),
        )
    )
    metric_of = {product: spec.metric for product, spec in products.usage.items()}
    per_of = {product: spec.per for product, spec in products.usage.items()}
    has_usage = pl.col("product").is_in(list(metric_of))
    full = pl.col("_present") == HISTORY_DAYS
    day_total = pl.col("cost").sum().over("day")
    frame = (
        targets.join(window, on=["day", "product"], how="left")
        .join(units, on=["day", "product"], how="left")
        .sort("day", "product")
        .with_columns(
            pl.when(day_total != 0).then(pl.col("cost") / day_total).alias("share_of_day"),
            pl.col("product").replace_strict(metric_of, default=None, return_dtype=pl.String).alias("usage_metric"),
            pl.when(has_usage).then(pl.col("units").fill_null(0.0)).alias("units"),
            pl.when(has_usage).then(pl.col("units_7d")).alias("units_7d"),
            pl.when(has_usage).then(pl.col("units_prev_7d")).alias("units_prev_7d"),
            _growth(pl.col("cost_7d"), pl.col("cost_prev_7d"), full).alias("cost_growth_7d"),
        )
        .with_columns(
            pl.when(pl.col("units") > 0)
            .then(pl.col("cost") / pl.col("units") * pl.col("product").replace_strict(per_of, default=None, return_dtype=pl.Float64))
            .alias("cost_per_unit"),
            _growth(pl.col("units_7d"), pl.col("units_prev_7d"), full).alias("units_growth_7d"),
        )
        .with_columns(
            (pl.col("cost_growth_7d") > pl.col("units_growth_7d") + products.tolerance).alias("cost_outgrowing_usage")
        )
    )
    return (
        frame.select(pl.col(c).cast(t) for c, t in PRODUCT_COST_SCHEMA.items())
        .sort(["day", "cost", "product"], descending=[False, True, False])
    )


def outgrowing_line(day: pl.DataFrame) -> str | None:
    """The products of one day whose cost outgrows their usage, in words (None when there are none)."""
    rows = day.filter(pl.col("cost_outgrowing_usage").fill_null(False)).sort("cost", descending=True)
    if rows.is_empty():
        return None
    return ", ".join(
        f"{r['product']} (cost {r['cost_growth_7d']:+.1%} against {r['usage_metric']} {r['units_growth_7d']:+.1%} in 7 days)"
        for r in rows.iter_rows(named=True)
    )
