"""The tag audit and data-health checks of a day, as pure functions over the pipeline's tables.

Each function returns one `CheckOutcome` per day: passed or not, its severity, a sentence, the
figures and thresholds, and the worst offenders (at most five) for a person to read. Only
conservation is meant to block; the others report.
"""

import datetime as dt
import json
import math
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import polars as pl

from unitcost_platform.warehouse_sql import Dialect, RollupQuery, scope_sql

if TYPE_CHECKING:
    from unitcost_platform.config import UnitcostConfig

WORST = 5
TRAILING_DAYS = 7


@dataclass(frozen=True)
class CheckOutcome:
    day: dt.date
    passed: bool
    severity: str  # "WARN" or "ERROR": the severity when the check does not pass
    description: str
    figures: dict = field(default_factory=dict)
    offenders: pl.DataFrame | None = None


def _by_day(frame: pl.DataFrame, column: str) -> dict[dt.date, pl.DataFrame]:
    return {key[0]: part for key, part in frame.group_by([column])}


def _pts(x: float | None) -> str:
    return "n/a" if x is None else f"{x * 100:.1f}%"


# What the two checks of allocated_cost read of it, summed by the warehouse: the day's buckets, and
# each tenant's and customer's cost (unknown tenants, and direct cost per customer).
CONSERVATION_ROLLUP = {"by": ["day", "unallocated_reason"], "sum": ["allocated_cost"], "count": "rows"}
ORPHANS_ROLLUP = {
    "by": ["day", "tenant_id", "customer_id", "unallocated_reason"], "sum": ["allocated_cost"],
    "sum_where": {"direct_cost": ["allocated_cost", "pool", "=", "direct"]},
}  # fmt: skip
# What the usage checks read of tenant_usage, summed by the warehouse: each day's total per metric
# (freshness against the trailing week), and each tenant's requests (orphans: a tenant with any usage
# has a row, with 0 requests when it reported none).
FRESHNESS_ROLLUP = {"by": ["usage_date", "metric"], "sum": ["value"]}
ORPHANS_USAGE_ROLLUP = {"by": ["usage_date", "tenant_id"], "sum_where": {"requests": ["value", "metric", "=", "requests"]}}


def conservation(
    billed: pl.DataFrame, allocated: pl.DataFrame, days: list[dt.date], tolerance: float
) -> list[CheckOutcome]:
    """Allocated plus unallocated equals the day's billed total, within `tolerance` relative.

    `billed`: (day, cost) line items or day totals; `allocated`: allocated_cost rows, or their sums
    per (day, unallocated_reason) with a `rows` count (CONSERVATION_ROLLUP).
    """
    count = pl.col("rows").sum() if "rows" in allocated.columns else pl.len()
    billed_by_day = dict(billed.group_by("day").agg(pl.col("cost").sum()).iter_rows())
    parts = _by_day(allocated, "day")
    outcomes = []
    for day in days:
        rows = parts.get(day, allocated.clear())
        total_billed = float(billed_by_day.get(day, 0.0))
        total_allocated = float(rows["allocated_cost"].sum())
        difference = total_allocated - total_billed
        allowed = tolerance * max(abs(total_billed), 1.0)
        buckets = (
            rows.with_columns(pl.col("unallocated_reason").fill_null("allocated to customers").alias("bucket"))
            .group_by("bucket")
            .agg(pl.col("allocated_cost").sum().alias("cost"), count.alias("rows"))
            .sort("cost", descending=True)
        )
        finite = math.isfinite(total_billed) and math.isfinite(total_allocated)
        passed = finite and abs(difference) <= allowed
        if not finite:
            description = (
                f"the day's totals are not numbers (billed {total_billed}, allocated {total_allocated}): "
                "unit cost is not computed for this day; a non-finite cost reached the tables"
            )
        elif passed:
            description = f"allocated ${total_allocated:,.2f} = billed ${total_billed:,.2f}"
        else:
            description = (
                f"allocated ${total_allocated:,.2f} differs from billed ${total_billed:,.2f} by "
                f"${difference:,.6f} (allowed ${allowed:,.6f}): unit cost is not computed for this day"
            )
        outcomes.append(CheckOutcome(
            day=day, passed=passed, severity="ERROR",
            description=description,
            figures={"billed_total": total_billed, "allocated_total": total_allocated, "difference": difference,
                     "tolerance_relative": tolerance},
            offenders=buckets.head(WORST),
        ))  # fmt: skip
    return outcomes


def coverage_floor(coverage: pl.DataFrame, days: list[dt.date], floor: float, hard_floor: float) -> list[CheckOutcome]:
    """Attributable share of cost (tagged or shared by design) against the floors."""
    parts = _by_day(coverage, "day")
    outcomes = []
    for day in days:
        rows = parts.get(day, coverage.clear())
        overall = rows.filter(pl.col("scope_type") == "overall")
        value = overall["coverage"][0] if overall.height else None
        worst = (
            rows.filter((pl.col("scope_type") == "service") & (pl.col("untagged_cost") > 0))
            .sort("untagged_cost", descending=True)
            .select(pl.col("scope").alias("service"), "total_cost", "untagged_cost", "coverage")
            .head(WORST)
        )
        if value is None:
            passed, severity, text = True, "WARN", "no cost on the day: nothing to attribute"
        elif not math.isfinite(value):  # a NaN compares false with every floor: it must fail, not pass
            passed, severity, text = False, "ERROR", f"coverage is not a number ({value}): the day's costs are not finite"
        elif value < hard_floor:
            passed, severity, text = False, "ERROR", f"coverage {_pts(value)} is below the hard floor {_pts(hard_floor)}"
        elif value < floor:
            passed, severity, text = False, "WARN", f"coverage {_pts(value)} is below the floor {_pts(floor)}"
        else:
            passed, severity, text = True, "WARN", f"coverage {_pts(value)} is above the floor {_pts(floor)}"
        untagged = float(overall["untagged_cost"][0]) if overall.height else 0.0
        outcomes.append(CheckOutcome(
            day=day, passed=passed, severity=severity, description=text,
            figures={"coverage": value, "floor": floor, "hard_floor": hard_floor, "untagged_cost": untagged},
            offenders=worst,
        ))  # fmt: skip
    return outcomes


def _trailing_mean(frame: pl.DataFrame, day: dt.date, value: str, keys: list[str]) -> pl.DataFrame:
    window = frame.filter((pl.col("day") < day) & (pl.col("day") >= day - dt.timedelta(days=TRAILING_DAYS)))
    return window.group_by(keys).agg(pl.col(value).mean().alias("trailing"), pl.len().alias("history_days"))


def attribution_drift(coverage: pl.DataFrame, days: list[dt.date], points: float) -> list[CheckOutcome]:
    """Overall coverage fell more than `points` below its trailing 7-day mean."""
    overall = coverage.filter((pl.col("scope_type") == "overall") & pl.col("coverage").is_not_null())
    services = coverage.filter((pl.col("scope_type") == "service") & pl.col("coverage").is_not_null())
    outcomes = []
    for day in days:
        today = overall.filter(pl.col("day") == day)
        history = _trailing_mean(overall, day, "coverage", ["scope_type"])
        if today.is_empty() or history.is_empty():
            outcomes.append(CheckOutcome(day=day, passed=True, severity="WARN",
                                         description="no coverage history to compare with yet",
                                         figures={"coverage": today["coverage"][0] if today.height else None,
                                                  "drift_points": points}))  # fmt: skip
            continue
        value, mean = float(today["coverage"][0]), float(history["trailing"][0])
        drop = (mean - value) * 100
        if not math.isfinite(drop):
            outcomes.append(CheckOutcome(day=day, passed=False, severity="WARN",
                                         description=f"coverage {value} or its trailing mean {mean} is not a number",
                                         figures={"drift_points": points}))  # fmt: skip
            continue
        movers = (
            services.filter(pl.col("day") == day)
            .join(_trailing_mean(services, day, "coverage", ["scope"]), on="scope")
            .with_columns(((pl.col("trailing") - pl.col("coverage")) * 100).alias("drop_points"))
            .filter(pl.col("drop_points") > 0)
            .sort("drop_points", descending=True)
            .select(pl.col("scope").alias("service"), "coverage", "trailing", "drop_points", "untagged_cost")
            .head(WORST)
        )
        passed = drop <= points
        outcomes.append(CheckOutcome(
            day=day, passed=passed, severity="WARN",
            description=(
                f"coverage {_pts(value)} is {drop:.1f} points below its trailing {history['history_days'][0]}-day "
                f"mean {_pts(mean)} (allowed {points:g})" if not passed else
                f"coverage {_pts(value)} against a trailing mean of {_pts(mean)}"
            ),
            figures={"coverage": value, "trailing_mean": mean, "drop_points": drop, "drift_points": points},
            offenders=movers,
        ))  # fmt: skip
    return outcomes


def _top_resources(json_list: str | None, n: int = 3) -> str:
    resources = json.loads(json_list or "[]")[:n]
    return ", ".join(f"{r.get('resource_id')} (${r.get('cost', 0):,.2f})" for r in resources)


def propagation_gaps(
    coverage: pl.DataFrame, days: list[dt.date], drop_points: float, min_cost: float
) -> list[CheckOutcome]:
    """Services that stopped carrying the tenant tag, or never did ("service B does not propagate tenant_id")."""
    services = coverage.filter(pl.col("scope_type") == "service").with_columns(
        pl.when(pl.col("total_cost") > 0).then(pl.col("tagged_cost") / pl.col("total_cost")).alias("tagged_share")
    )
    outcomes = []
    for day in days:
        today = services.filter((pl.col("day") == day) & (pl.col("total_cost") >= min_cost))
        trailing = _trailing_mean(services.filter(pl.col("tagged_share").is_not_null()), day, "tagged_share", ["scope"])
        joined = today.join(trailing, on="scope", how="left").with_columns(
            ((pl.col("trailing") - pl.col("tagged_share")) * 100).alias("drop_points")
        )
        dropped = (pl.col("drop_points") > drop_points).fill_null(False)
        never = (pl.col("tagged_cost") == 0) & (pl.col("untagged_cost") >= min_cost) & ~dropped
        gaps = joined.filter(never | dropped).with_columns(
            pl.when(dropped).then(pl.lit("tagged share dropped")).otherwise(pl.lit("no tenant tag at all")).alias("problem")
        ).sort("untagged_cost", descending=True)
        offenders = gaps.head(WORST).select(
            pl.col("scope").alias("service"), "problem", "tagged_share", pl.col("trailing").alias("trailing_share"),
            "untagged_cost",
            pl.col("top_untagged_resources").map_elements(_top_resources, return_dtype=pl.String).alias("top_resources"),
        )  # fmt: skip
        names = ", ".join(gaps["scope"].to_list()[:WORST])
        outcomes.append(CheckOutcome(
            day=day, passed=gaps.is_empty(), severity="WARN",
            description=f"{gaps.height} service(s) not propagating tenant_id: {names}" if gaps.height
            else "every service with cost carries tenant tags as before",
            figures={"services_with_gaps": gaps.height, "untagged_cost_of_gaps": float(gaps["untagged_cost"].sum()),
                     "drop_points": drop_points, "min_service_cost": min_cost},
            offenders=offenders,
        ))  # fmt: skip
    return outcomes


ORPHAN_TENANT, ORPHAN_CUSTOMER = "tenant without customer", "active customer without usage"
# What the orphans check reads: each day's worst offenders (WORST at most), each row with the day's
# counts and orphan cost (`worst_orphans`, and ORPHANS_QUERY in the warehouse).
ORPHANS_FOUND_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(), "kind": pl.String(), "who": pl.String(), "cost": pl.Float64(), "requests": pl.Float64(),
    "tenants_without_customer": pl.Int64(), "customers_without_usage": pl.Int64(), "orphan_cost": pl.Float64(),
}  # fmt: skip
# The offenders' order: the costliest first, then the busiest; ties by kind and name, so the worst
# five are the same whichever engine ranks them.
_ORPHAN_ORDER = (["cost", "requests", "kind", "who"], [True, True, False, False])


def orphans_found(
    allocated: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame, scope: pl.Expr | None = None
) -> pl.DataFrame:
    """Every orphan of the days, (day, kind, who, cost, requests): tenants with cost or usage but no
    customer, and active customers (in scope) with direct cost but no usage.

    `allocated`: allocated_cost rows, or their sums per (day, tenant_id, customer_id,
    unallocated_reason) with `direct_cost` (ORPHANS_ROLLUP); `usage`: tenant_usage rows, or their
    requests per (usage_date, tenant_id) (ORPHANS_USAGE_ROLLUP).
    """
    known = customers.select(pl.col("snapshot_date").alias("day"), "tenant_id").unique()
    cost_orphans = (
        allocated.filter(pl.col("unallocated_reason") == "unknown_tenant")
        .group_by("day", "tenant_id")
        .agg(pl.col("allocated_cost").sum().alias("cost"))
    )
    requests = (
        pl.col("requests").sum() if "requests" in usage.columns
        else pl.col("value").filter(pl.col("metric") == "requests").sum()
    )  # fmt: skip
    usage_orphans = (
        usage.rename({"usage_date": "day"})
        .join(known, on=["day", "tenant_id"], how="anti")
        .group_by("day", "tenant_id")
        .agg(requests.alias("requests"))
    )
    tenants = cost_orphans.join(usage_orphans, on=["day", "tenant_id"], how="full", coalesce=True).with_columns(
        pl.lit(ORPHAN_TENANT).alias("kind"), pl.col("tenant_id").alias("who")
    )
    used = usage.select(pl.col("usage_date").alias("day"), "tenant_id").unique().join(
        customers.select(pl.col("snapshot_date").alias("day"), "tenant_id", "customer_id"), on=["day", "tenant_id"]
    ).select("day", "customer_id").unique()
    direct_cost = (
        pl.col("direct_cost") if "direct_cost" in allocated.columns
        else pl.when(pl.col("pool") == "direct").then(pl.col("allocated_cost")).otherwise(0.0)
    )  # fmt: skip
    direct = (
        allocated.filter(pl.col("unallocated_reason").is_null())
        .group_by("day", "customer_id").agg(direct_cost.sum().alias("cost"))
        .filter(pl.col("cost") > 0)
    )
    audited = customers if scope is None else customers.filter(scope)
    active = audited.filter(pl.col("status") == "active").select(pl.col("snapshot_date").alias("day"), "customer_id").unique()
    silent = direct.join(active, on=["day", "customer_id"]).join(used, on=["day", "customer_id"], how="anti").with_columns(
        pl.lit(ORPHAN_CUSTOMER).alias("kind"), pl.col("customer_id").alias("who"),
        pl.lit(None, dtype=pl.Float64).alias("requests"),
    )
    columns = ["day", "kind", "who", "cost", "requests"]
    return pl.concat([tenants.select(columns), silent.select(columns)], how="vertical_relaxed")


def worst_orphans(found: pl.DataFrame, worst: int = WORST) -> pl.DataFrame:
    """Each day's `worst` offenders of `found` (orphans_found), with the day's counts and orphan cost
    on every row: what ORPHANS_QUERY returns from the warehouse."""
    by_day = pl.col("day")
    return (
        found.with_columns(
            (pl.col("kind") == ORPHAN_TENANT).sum().over(by_day).cast(pl.Int64).alias("tenants_without_customer"),
            (pl.col("kind") == ORPHAN_CUSTOMER).sum().over(by_day).cast(pl.Int64).alias("customers_without_usage"),
            pl.col("cost").fill_null(0.0).sum().over(by_day).alias("orphan_cost"),
        )
        .sort("day", *_ORPHAN_ORDER[0], descending=[False, *_ORPHAN_ORDER[1]], nulls_last=True)
        .filter(pl.int_range(pl.len()).over(by_day) < worst)
        .select(list(ORPHANS_FOUND_SCHEMA))
        .cast(ORPHANS_FOUND_SCHEMA)
    )


def orphan_outcomes(worst: pl.DataFrame, days: list[dt.date], scope_description: str = "all customers") -> list[CheckOutcome]:
    """One outcome per day from its worst offenders and figures (ORPHANS_FOUND_SCHEMA); a day
    without a row has no orphan."""
    parts = _by_day(worst, "day")
    outcomes = []
    for day in days:
        rows = parts.get(day, worst.clear()).sort(*_ORPHAN_ORDER[0], descending=_ORPHAN_ORDER[1], nulls_last=True)
        first = rows.row(0, named=True) if rows.height else {}
        n_tenants, n_silent = first.get("tenants_without_customer", 0), first.get("customers_without_usage", 0)
        outcomes.append(CheckOutcome(
            day=day, passed=rows.is_empty(), severity="WARN",
            description=(f"{n_tenants} tenant(s) with cost or usage but no customer record; "
                         f"{n_silent} active customer(s) with direct cost and no usage"),
            figures={"tenants_without_customer": n_tenants, "customers_without_usage": n_silent,
                     "orphan_cost": float(first.get("orphan_cost", 0.0)), "scope": scope_description},
            offenders=rows.select("kind", "who", "cost", "requests"),
        ))  # fmt: skip
    return outcomes


def orphans(
    allocated: pl.DataFrame,
    usage: pl.DataFrame,
    customers: pl.DataFrame,
    days: list[dt.date],
    scope: pl.Expr | None = None,
    scope_description: str = "all customers",
) -> list[CheckOutcome]:
    """Tenants with cost or usage but no customer; active customers with direct cost but no usage.

    The Polars path of the check (`orphans_found`, `worst_orphans`, `orphan_outcomes`); the asset
    check gets `worst_orphans`' frame from the warehouse (ORPHANS_QUERY). With a scope (a scoped
    rollout), only customers in scope are audited for missing usage; a tenant without a customer
    record is reported whatever the scope (it cannot be placed in or out of it).
    """
    return orphan_outcomes(worst_orphans(orphans_found(allocated, usage, customers, scope)), days, scope_description)


def _orphans_statement(rollup: str, spec: dict, cfg: "UnitcostConfig", table: Callable[[str], str], dialect: Dialect) -> str:
    """`orphans_found` then `worst_orphans` in the warehouse, over `rollup` (allocated_cost at
    ORPHANS_ROLLUP) and the same days' tenant_usage and customer_dimension (`spec["days"]`, ISO text):
    each day's `spec["worst"]` offenders, the day's counts and orphan cost on each row."""
    days = ", ".join(dialect.date(d) for d in spec["days"]) or "cast(null as date)"
    text = dialect.text
    order = ", ".join(f"{c} {'desc' if down else 'asc'} nulls last" for c, down in zip(*_ORPHAN_ORDER, strict=True))
    return f"""
with alloc as ({rollup}),
customers as (
    select snapshot_date as day, tenant_id, customer_id, status, {scope_sql(cfg.scope, dialect)} as in_scope
    from {table('customer_dimension')} where snapshot_date in ({days})
),
usage as (
    select usage_date as day, tenant_id, sum(case when metric = {text('requests')} then value else 0 end) as requests
    from {table('tenant_usage')} where usage_date in ({days}) group by usage_date, tenant_id
),
cost_orphans as (
    select day, tenant_id, sum(allocated_cost) as cost from alloc
    where unallocated_reason = {text('unknown_tenant')} group by day, tenant_id
),
usage_orphans as (
    select u.day, u.tenant_id, u.requests from usage as u
    where not exists (select 1 from customers as k where k.day = u.day and k.tenant_id = u.tenant_id)
),
used as (
    select distinct u.day, k.customer_id from usage as u join customers as k on k.day = u.day and k.tenant_id = u.tenant_id
),
direct as (
    select day, customer_id, sum(direct_cost) as cost from alloc where unallocated_reason is null
    group by day, customer_id having sum(direct_cost) > 0
),
active as (select distinct day, customer_id from customers where status = {text('active')} and in_scope),
found as (
    select coalesce(c.day, u.day) as day, {text(ORPHAN_TENANT)} as kind, coalesce(c.tenant_id, u.tenant_id) as who,
           c.cost, u.requests
    from cost_orphans as c full outer join usage_orphans as u on c.day = u.day and c.tenant_id = u.tenant_id
    union all
    select d.day, {text(ORPHAN_CUSTOMER)}, d.customer_id, d.cost, cast(null as double)
    from direct as d join active as a on a.day = d.day and a.customer_id = d.customer_id
    where not exists (select 1 from used where used.day = d.day and used.customer_id = d.customer_id)
),
ranked as (
    select day, kind, who, cost, requests,
           sum(case when kind = {text(ORPHAN_TENANT)} then 1 else 0 end) over (partition by day) as tenants_without_customer,
           sum(case when kind = {text(ORPHAN_CUSTOMER)} then 1 else 0 end) over (partition by day) as customers_without_usage,
           sum(coalesce(cost, 0)) over (partition by day) as orphan_cost,
           row_number() over (partition by day order by {order}) as unitcost_rank
    from found
)
select day, kind, who, cost, requests, tenants_without_customer, customers_without_usage, orphan_cost
from ranked where unitcost_rank <= {int(spec["worst"])}
"""


# allocated_cost at ORPHANS_ROLLUP, reduced by the warehouse with the days' usage and customers: the
# rollup's `then` is `orphans_spec(days)`.
ORPHANS_QUERY = RollupQuery(ORPHANS_FOUND_SCHEMA, _orphans_statement)


def orphans_spec(days: list[dt.date], worst: int = WORST) -> dict:
    return {"query": "orphans", "days": [d.isoformat() for d in days], "worst": worst}


def usage_freshness(usage: pl.DataFrame, days: list[dt.date], drop_fraction: float) -> list[CheckOutcome]:
    """The day's usage arrived, and no metric's total fell more than `drop_fraction` against the week.

    `usage`: tenant_usage rows of the days and the trailing week, or their sums per (usage_date,
    metric) (FRESHNESS_ROLLUP)."""
    totals = usage.group_by(pl.col("usage_date").alias("day"), "metric").agg(pl.col("value").sum().alias("total"))
    outcomes = []
    for day in days:
        today = totals.filter(pl.col("day") == day)
        trailing = _trailing_mean(totals, day, "total", ["metric"])
        compared = trailing.join(today.select("metric", "total"), on="metric", how="left").with_columns(
            pl.col("total").fill_null(0.0)
        ).with_columns(
            pl.when(pl.col("trailing") > 0).then(pl.col("total") / pl.col("trailing") - 1).alias("change")
        ).sort("change", nulls_last=True)
        dropped = compared.filter(pl.col("change") < -drop_fraction)
        figures = {"metrics_today": today.height, "drop_fraction": drop_fraction}
        if today.is_empty():
            outcomes.append(CheckOutcome(
                day=day, passed=False, severity="ERROR",
                description="no usage telemetry for the day: usage-driven pools cannot be split (telemetry lost?)",
                figures=figures, offenders=compared.head(WORST),
            ))  # fmt: skip
            continue
        outcomes.append(CheckOutcome(
            day=day, passed=dropped.is_empty(), severity="WARN",
            description=(
                f"usage of {', '.join(dropped['metric'])} fell more than {drop_fraction:.0%} against the trailing week"
                if dropped.height else "usage arrived and is in line with the trailing week"
            ),
            figures=figures, offenders=compared.head(WORST),
        ))  # fmt: skip
    return outcomes
