"""Unit-cost anomalies: the day a customer got more (or less) expensive to serve, not busier.

Cost-based anomaly detection fires when a customer simply grows. Here the day's cost is split, against
a baseline of the customer's own trailing history, into a price effect (cost per unit changed) and a
volume effect (units changed), and only the price effect is scored.

Baseline (the 28 days before the day, `BASELINE_DAYS`, robust and weekday-aware):
- expected units Û: the median of the units on the same weekday in the window (4 days);
- expected cost per unit P̂: the median of log cost per unit over the window's days of the same day
  type (weekday Mon-Fri or weekend), and its noise s: the normal-consistent MAD of every day of
  the window against its own day type's median, widened by the uncertainty of that median
  (× √(1 + π/2n) for n days of the type; floored at `MIN_NOISE`, so a perfectly flat history does not make every cent a 100-sigma event);
- expected cost Ĉ = P̂ × Û, so the decomposition is exact:
  actual − expected = (P − P̂)·Û [price] + P̂·(U − Û) [volume] + (P − P̂)·(U − Û) [cross].

Score: z = (ln P − ln P̂) / s, a robust z-score of the day's cost per unit. A day is *beyond*
when |z| > `anomalies.min_score` (5; 4 measured 3.3 false alarms per 1,000 customer-days, see the README) and |impact| = |actual − expected| ≥ `anomalies.min_impact`
($5), with at least `anomalies.min_baseline_days` (14) usable days in the window and 4 of the same day
type. A sustained shift is beyond on every day until the window's median absorbs it (about half
the window); it is an anomaly (`is_anomaly`, an ANOMALY alert) only on its first day: a beyond day
with no beyond day in the same direction in the `QUIET_DAYS` (7) before, so a shift alerts once even
when a noisy day inside it falls short. `first_day` (on beyond days) is the day the shift alerted,
looked up to `SHIFT_LOOKBACK_DAYS` (14) back; an older shift reports that bound.

In: unit_cost's total cost per (day, customer) and the customer's units (`anomalies.unit_metric`)
per day over the window, the customers of the days, and allocated_cost per (day, customer,
service) over the 14 days ending at each day (the drivers). Out: `cost_anomalies`, one row per
(day, active customer).

Where it runs: the warehouse scores every active customer on the run's days (ANOMALY_SCORES_QUERY,
the baseline and figures above in SQL, over unit_cost's window with requests as the units), and only
the customers beyond the thresholds on one of those days leave it with their history: the quiet
period and first_day look back over days no other customer needs. `anomaly_scores` is the query's
numpy twin; `cost_anomalies` without `scores` computes everything from the frames.
"""

import datetime as dt
import json
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy import stats

from unitcost_platform.config import AnomaliesConfig, OwnersConfig
from unitcost_platform.transforms.alerts import ServiceCosts, _service_changes, service_costs_of
from unitcost_platform.warehouse_sql import Dialect, RollupQuery, WarehouseQuery

if TYPE_CHECKING:
    from unitcost_platform.config import UnitcostConfig

BASELINE_DAYS = 28
QUIET_DAYS = 7
SHIFT_LOOKBACK_DAYS = 14
MIN_NOISE = 0.02  # 2% in cost per unit: the smallest noise a baseline is credited with
SAME_WEEKDAY = 4  # same-weekday days in the window (28 / 7)
# Days of unit_cost and units the asset reads: the shift lookback's baselines and the day itself.
HISTORY_DAYS = BASELINE_DAYS + SHIFT_LOOKBACK_DAYS + QUIET_DAYS + 1
DRIVER_DAYS = 14
# The normal-consistent MAD factor (1 / Φ⁻¹(3/4) ≈ 1.4826), as scipy.stats.median_abs_deviation(scale="normal").
MAD_SCALE = 1.0 / stats.norm.ppf(0.75)

COST_ANOMALIES_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "baseline_days": pl.Int64(),
    "expected_units": pl.Float64(),
    "actual_units": pl.Float64(),
    "expected_cost_per_1k_units": pl.Float64(),
    "actual_cost_per_1k_units": pl.Float64(),
    "expected_cost": pl.Float64(),
    "actual_cost": pl.Float64(),
    "impact": pl.Float64(),
    "price_effect": pl.Float64(),
    "volume_effect": pl.Float64(),
    "cross_effect": pl.Float64(),
    "score": pl.Float64(),
    "direction": pl.String(),
    "is_anomaly": pl.Boolean(),
    "first_day": pl.Date(),
    "drivers": pl.String(),
    "owners": pl.String(),
}


def usage_rollup(metric: str) -> dict:
    """tenant_usage summed by the warehouse to one row per (day, tenant): the unit metric's value."""
    return {"by": ["usage_date", "tenant_id"], "sum_where": {"units": ["value", "metric", "=", metric]}}


def customer_units(usage: pl.DataFrame, customers: pl.DataFrame) -> pl.DataFrame:
    """(day, customer_id, units): the tenants' units (usage_rollup) summed per customer of that day;
    the Polars twin of CUSTOMER_UNITS_QUERY."""
    return (
        usage.join(
            customers.select("snapshot_date", "tenant_id", "customer_id").unique(),
            left_on=["usage_date", "tenant_id"], right_on=["snapshot_date", "tenant_id"],
        )
        .group_by(pl.col("usage_date").alias("day"), "customer_id")
        .agg(pl.col("units").sum())
    )  # fmt: skip


CUSTOMER_UNITS_SCHEMA: dict[str, pl.DataType] = {"day": pl.Date(), "customer_id": pl.String(), "units": pl.Float64()}


def _customer_units_statement(rollup: str, spec: dict, cfg: "UnitcostConfig", table: Callable[[str], str], dialect: Dialect) -> str:
    """`customer_units` in the warehouse: usage_rollup's rows joined to customer_dimension's tenants of
    the same days (only those days are scanned) and summed per customer."""
    return f"""
with usage as ({rollup})
select u.usage_date as day, c.customer_id, sum(u.units) as units
from usage as u
join (
    select distinct snapshot_date, tenant_id, customer_id from {table("customer_dimension")}
    where snapshot_date >= (select min(usage_date) from usage) and snapshot_date <= (select max(usage_date) from usage)
) as c on c.snapshot_date = u.usage_date and c.tenant_id = u.tenant_id
group by u.usage_date, c.customer_id
"""


# tenant_usage's usage_rollup, reduced by the warehouse to one row per (day, customer) with the
# customer_dimension of the same days: the rollup's `then` is CUSTOMER_UNITS_THEN.
CUSTOMER_UNITS_QUERY = RollupQuery(CUSTOMER_UNITS_SCHEMA, _customer_units_statement)
CUSTOMER_UNITS_THEN = {"query": "customer_units"}


def nanmedian(values: np.ndarray, axis: int) -> np.ndarray:
    """Median ignoring NaN (NaN where a slice has no value), as np.nanmedian computes it, by sorting:
    NaN sort last, so the middle of each slice's n values is at (n - 1) // 2 and n // 2. numpy's own
    nanmedian goes through masked arrays for short slices, several times slower."""
    ordered = np.sort(np.moveaxis(values, axis, -1), axis=-1)
    n = (~np.isnan(ordered)).sum(axis=-1)
    lo = np.expand_dims(np.clip((n - 1) // 2, 0, None), -1)
    hi = np.expand_dims(np.clip(n // 2, 0, None), -1)
    middle = (np.take_along_axis(ordered, lo, -1) + np.take_along_axis(ordered, hi, -1))[..., 0] / 2
    return np.where(n > 0, middle, np.nan)


def robust_baseline(log_price: np.ndarray, log_units: np.ndarray, weekend: np.ndarray, t: int) -> dict[str, np.ndarray]:
    """The baseline of calendar column `t` from the `BASELINE_DAYS` columns before it, per row (customer).

    `log_price`, `log_units`: (customers x calendar) matrices, NaN where the customer had no cost or
    no units; `weekend`: per calendar column. Returns log P̂, the noise s, log Û and the counts.
    """
    cols = np.arange(t - BASELINE_DAYS, t)
    same_type = cols[weekend[cols] == weekend[t]]
    window = log_price[:, same_type]
    level = nanmedian(window, axis=1)
    # The noise from every day of the window, each against its own day type's median: 28 values
    # give a steadier MAD than the 8 weekend days alone would.
    other = cols[weekend[cols] != weekend[t]]
    other_level = nanmedian(log_price[:, other], axis=1) if other.size else level
    residuals = np.concatenate([window - level[:, None], log_price[:, other] - other_level[:, None]], axis=1)
    # The day is compared with an estimated median, itself uncertain (variance π/2·σ²/n for n days):
    # the score's scale counts both, so a baseline of 8 weekend days is not over-trusted.
    n_same = (~np.isnan(window)).sum(axis=1)
    with np.errstate(all="ignore"):
        noise = MAD_SCALE * nanmedian(np.abs(residuals), axis=1) * np.sqrt(1 + np.pi / (2 * n_same))
    same_weekday = log_units[:, [t - 7 * k for k in range(1, SAME_WEEKDAY + 1)]]
    return {
        "log_price": level,
        "noise": np.fmax(noise, MIN_NOISE),
        "log_units": nanmedian(same_weekday, axis=1),
        "days": (~np.isnan(log_price[:, cols])).sum(axis=1),
        "same_type_days": (~np.isnan(window)).sum(axis=1),
    }


def calendar_matrices(
    frame: pl.DataFrame,
    ids: pl.DataFrame,
    first: dt.date,
    n_days: int,
    columns: dict[str, float | None],
    read: tuple[int, int] | None = None,
    out: dict[str, np.ndarray] | None = None,
) -> dict[str, np.ndarray]:
    """(customers x calendar days from `first`) matrices of `frame`'s columns, NaN where a customer
    has no row. `columns`: name -> the value of a null (None: NaN). `ids`: (_c, customer_id), _c
    numbering the matrices' rows; `read`: the calendar columns [start, end) to read (default all);
    `out`: matrices to fill instead of new ones (e.g. the earlier days of a few customers). One
    join, of those days' rows and the columns needed only (gathering strings is what costs), to a
    flat index into the matrices."""
    start, end = read or (0, n_days)
    located = (
        frame.lazy()
        .filter(pl.col("day").is_between(first + dt.timedelta(days=start), first + dt.timedelta(days=end - 1)))
        .join(ids.lazy(), on="customer_id")
        .select((pl.col("_c").cast(pl.Int64) * n_days + (pl.col("day") - pl.lit(first)).dt.total_days()).alias("_i"),
                *[pl.col(c) if fill is None else pl.col(c).fill_null(fill) for c, fill in columns.items()])
        .collect()
    )  # fmt: skip
    index = located["_i"].to_numpy()
    out = {name: np.full((ids.height, n_days), np.nan) for name in columns} if out is None else out
    for name in columns:
        out[name].reshape(-1)[index] = located[name].to_numpy()  # a view: the matrices are contiguous
    return out


SCORE_COLUMNS = ("baseline_days", "expected_units", "actual_units", "expected_cost_per_1k_units",
                 "actual_cost_per_1k_units", "expected_cost", "actual_cost", "impact", "price_effect",
                 "volume_effect", "cross_effect", "score")  # fmt: skip


def _price_and_units(
    cost: pl.DataFrame, units: pl.DataFrame, ids: pl.DataFrame, first: dt.date, n_days: int
) -> dict[str, np.ndarray]:
    """The customers' (ids x calendar) matrices of cost, units, log cost per unit and log units."""
    m = calendar_matrices(cost, ids, first, n_days, {"total_cost": None})
    m |= calendar_matrices(units, ids, first, n_days, {"units": None})
    return _with_logs(m)


def _with_logs(m: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    c, u = m["total_cost"], m["units"]
    with np.errstate(all="ignore"):
        m["log_units"] = np.where(u > 0, np.log(u), np.nan)
        m["log_price"] = np.where((c > 0) & (u > 0), np.log(c / u), np.nan)
    return m


def _score(m: dict[str, np.ndarray], weekend: np.ndarray, t: int, cfg: AnomaliesConfig) -> dict[str, np.ndarray]:
    """The figures of the rows of `m` (customers x calendar matrices, `weekend` per column) on calendar
    column t, against the baseline of the `BASELINE_DAYS` columns before it."""
    base = robust_baseline(m["log_price"], m["log_units"], weekend, t)
    p_hat, u_hat = np.exp(base["log_price"]), np.exp(base["log_units"])
    actual_cost = np.nan_to_num(m["total_cost"][:, t])
    actual_units = np.nan_to_num(m["units"][:, t])
    usable = (base["days"] >= cfg.min_baseline_days) & (base["same_type_days"] >= SAME_WEEKDAY) & np.isfinite(u_hat)
    with np.errstate(all="ignore"):
        price = np.where(actual_units > 0, actual_cost / actual_units, np.nan)
        z = (m["log_price"][:, t] - base["log_price"]) / base["noise"]
        expected_cost = np.where(usable, p_hat * u_hat, np.nan)
        return {
            "baseline_days": base["days"].astype(np.float64),
            "expected_units": np.where(usable, u_hat, np.nan),
            "actual_units": actual_units,
            "expected_cost_per_1k_units": np.where(usable, 1000 * p_hat, np.nan),
            "actual_cost_per_1k_units": 1000 * price,
            "expected_cost": expected_cost,
            "actual_cost": actual_cost,
            "impact": actual_cost - expected_cost,
            "price_effect": (price - p_hat) * u_hat,
            "volume_effect": p_hat * (actual_units - u_hat),
            "cross_effect": (price - p_hat) * (actual_units - u_hat),
            "score": np.where(usable, z, np.nan),
        }


def _beyond_sign(figures: dict[str, np.ndarray], cfg: AnomaliesConfig) -> np.ndarray:
    """+1 (up) or -1 (down) where the day is beyond the thresholds, 0 elsewhere."""
    with np.errstate(invalid="ignore"):
        z, impact = figures["score"], figures["impact"]
        beyond = (np.abs(z) > cfg.min_score) & (np.abs(impact) >= cfg.min_impact)
        return np.where(beyond, np.where(z > 0, 1, -1), 0)


def _calendar(days: list[dt.date]) -> tuple[dt.date, int, np.ndarray]:
    """The calendar the days' history spans: its first day, its length, and which of its days are weekend days."""
    first = min(days) - dt.timedelta(days=HISTORY_DAYS - 1)
    n_days = (max(days) - first).days + 1
    weekend = np.array([(first + dt.timedelta(days=i)).weekday() >= 5 for i in range(n_days)])
    return first, n_days, weekend


ANOMALY_SCORES_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    **{c: COST_ANOMALIES_SCHEMA[c] for c in SCORE_COLUMNS},
    "direction": pl.String(),
    "beyond": pl.Int64(),
}


def anomaly_scores(cost: pl.DataFrame, units: pl.DataFrame, active: pl.DataFrame, days: list[dt.date], cfg: AnomaliesConfig) -> pl.DataFrame:
    """ANOMALY_SCORES_SCHEMA: every active customer of each day (`active`: day, customer_id,
    customer_name, tier) scored against the `BASELINE_DAYS` before it, with `beyond`, +1 or -1 where
    the day is beyond the thresholds (0 elsewhere); the Polars twin of ANOMALY_SCORES_QUERY."""
    days = sorted(set(days))
    active = active.filter(pl.col("day").is_in(days))
    if active.is_empty():
        return pl.DataFrame(schema=ANOMALY_SCORES_SCHEMA)
    ids = active.select("customer_id").unique().sort("customer_id").with_row_index("_c")
    first, n_days, weekend = _calendar(days)
    # The days' figures need the days and the BASELINE_DAYS before them only: the matrices start at `since`.
    since = (min(days) - first).days - BASELINE_DAYS
    everyone = _price_and_units(cost, units, ids, first + dt.timedelta(days=since), n_days - since)
    frames = []
    for d in days:
        figures = _score(everyone, weekend[since:], (d - first).days - since, cfg)
        z = figures["score"]  # a day without a usable baseline has no score, and no direction
        frames.append(pl.DataFrame({
            "day": pl.repeat(d, ids.height, eager=True),
            "customer_id": ids["customer_id"],
            **{name: figures[name] for name in SCORE_COLUMNS},
            "direction": pl.Series(np.where(z >= 0, "up", "down"), dtype=pl.String).scatter(np.flatnonzero(np.isnan(z)), None),
            "beyond": _beyond_sign(figures, cfg),
        }, nan_to_null=True).with_columns(pl.col("baseline_days").cast(pl.Int64)))  # fmt: skip
    scored = pl.concat(frames)
    return active.select("day", "customer_id", "customer_name", "tier").join(scored, on=["day", "customer_id"]).cast(
        ANOMALY_SCORES_SCHEMA
    ).select(list(ANOMALY_SCORES_SCHEMA))


def _anomaly_scores_statement(rows: str, cfg: "UnitcostConfig", dialect: Dialect, days: str) -> str:
    """`anomaly_scores` in the warehouse, over unit_cost's rows of the window (requests are the units):
    each target (a day of `days`, comma-separated ISO dates, and an active customer of it) joined to
    its customer's rows of the 28 days before it, the medians and counts of `robust_baseline` per
    target, the MAD of every baseline day against its own day type's median, then the figures."""
    a = cfg.anomalies
    targets = ", ".join(dialect.date(d) for d in days.split(",") if d) or "cast(null as date)"
    # Days as numbers from a Monday (1970-01-05): the baseline's days are the target's minus 1..28, and
    # a day is a weekend day when its number mod 7 is 5 or 6.
    number = lambda day: dialect.days_between(dialect.date("1970-01-05"), day)  # noqa: E731
    q = dialect.quantile
    lags = ", ".join(f"({k})" for k in range(1, BASELINE_DAYS + 1))
    return f"""
with unit_rows as (
    select day, {number("day")} as day_number, customer_id, customer_name, tier, status, total_cost, requests as units
    from ({rows}) as unitcost_rows
),
base as (
    select day, day_number, customer_id, total_cost, units,
        case when total_cost > 0 and units > 0 then ln(total_cost / units) end as log_price,
        case when units > 0 then ln(units) end as log_units
    from unit_rows
),
targets as (
    select day as target, day_number as target_number, customer_id, customer_name, tier
    from unit_rows where status = 'active' and day in ({targets})
),
baseline as (
    select t.target, t.customer_id, lags.lag, b.log_price, b.log_units,
        (mod(b.day_number, 7) >= 5) = (mod(t.target_number, 7) >= 5) as same_type
    from targets as t
    cross join (values {lags}) as lags(lag)
    join base as b on b.customer_id = t.customer_id and b.day_number = t.target_number - lags.lag
),
levels as (
    select target, customer_id,
        {q("case when same_type then log_price end", 0.5)} as level,
        {q("case when not same_type then log_price end", 0.5)} as other_level,
        count(case when same_type then log_price end) as same_type_days,
        count(log_price) as baseline_days,
        {q("case when mod(lag, 7) = 0 then log_units end", 0.5)} as log_units_hat
    from baseline group by target, customer_id
),
spread as (
    select b.target, b.customer_id,
        {q("abs(b.log_price - case when b.same_type then l.level else l.other_level end)", 0.5)} as mad
    from baseline as b join levels as l on l.target = b.target and l.customer_id = b.customer_id
    group by b.target, b.customer_id
),
figures as (
    select t.target as day, t.customer_id, t.customer_name, t.tier,
        coalesce(l.baseline_days, 0) as baseline_days,
        coalesce(d.total_cost, 0) as actual_cost,
        coalesce(d.units, 0) as actual_units,
        case when d.units > 0 then coalesce(d.total_cost, 0) / d.units end as price,
        exp(l.level) as p_hat,
        exp(l.log_units_hat) as u_hat,
        coalesce(l.baseline_days, 0) >= {int(a.min_baseline_days)} and coalesce(l.same_type_days, 0) >= {SAME_WEEKDAY}
            and l.log_units_hat is not null as usable,
        (d.log_price - l.level) / greatest(coalesce(
            case when l.same_type_days > 0 then {float(MAD_SCALE)!r} * s.mad * sqrt(1 + {np.pi!r} / (2 * l.same_type_days)) end,
            {MIN_NOISE!r}), {MIN_NOISE!r}) as z
    from targets as t
    left join base as d on d.customer_id = t.customer_id and d.day = t.target
    left join levels as l on l.target = t.target and l.customer_id = t.customer_id
    left join spread as s on s.target = t.target and s.customer_id = t.customer_id
),
scored as (
    select day, customer_id, customer_name, tier, baseline_days,
        case when usable then u_hat end as expected_units,
        actual_units,
        case when usable then 1000 * p_hat end as expected_cost_per_1k_units,
        1000 * price as actual_cost_per_1k_units,
        case when usable then p_hat * u_hat end as expected_cost,
        actual_cost,
        actual_cost - case when usable then p_hat * u_hat end as impact,
        (price - p_hat) * u_hat as price_effect,
        p_hat * (actual_units - u_hat) as volume_effect,
        (price - p_hat) * (actual_units - u_hat) as cross_effect,
        case when usable then z end as score,
        case when not usable or z is null then null when z >= 0 then 'up' else 'down' end as direction
    from figures
)
select *,
    case when abs(score) > {float(a.min_score)!r} and abs(impact) >= {float(a.min_impact)!r}
        then case when score > 0 then 1 else -1 end else 0 end as beyond
from scored
"""


# unit_cost's window scored by the warehouse on the run's days (`days`): a row per active customer
# and day, the figures cost_anomalies writes; only the customers beyond on one of them leave the
# warehouse with their history (for the quiet period, first_day and the drivers).
ANOMALY_SCORES_QUERY = WarehouseQuery(
    ["day", "customer_id", "customer_name", "tier", "status", "total_cost", "requests"],
    ANOMALY_SCORES_SCHEMA, _anomaly_scores_statement, parameters=("days",),
)  # fmt: skip


def _shifts(
    scores: pl.DataFrame, cost: pl.DataFrame, units: pl.DataFrame, days: list[dt.date], cfg: AnomaliesConfig
) -> tuple[pl.DataFrame, np.ndarray, pl.DataFrame, dt.date]:
    """The anomalies and first days of the customers beyond on one of the days (`scores`' beyond): their
    days of the shift lookback are scored too, from `cost` and `units` over the calendar (only
    theirs are read). Returns (day, customer_id, is_anomaly, first_day) of those customers on the days,
    their units matrix over the calendar from `first`, and their ids numbering its rows."""
    first, n_days, weekend = _calendar(days)
    n_t = n_days - BASELINE_DAYS
    few = scores.filter(pl.col("beyond") != 0).select("customer_id").unique().sort("customer_id").with_row_index("_c")
    n_k = few.height
    lookback = {name: np.full((n_k, n_days), np.nan) for name in ("total_cost", "units")}
    calendar_matrices(cost, few, first, n_days, {"total_cost": None}, out=lookback)
    calendar_matrices(units, few, first, n_days, {"units": None}, out=lookback)
    _with_logs(lookback)
    # Beyond days (+1 up, -1 down, 0 not) of the candidates: the days' from `scores`, the earlier
    # ones scored here. The anomaly (no beyond day in the same direction in the QUIET_DAYS before)
    # and first_day: the shift's alert day, the latest anomaly in the same direction, looked up to
    # SHIFT_LOOKBACK_DAYS back (a range run and a single day agree); an older shift reports that
    # bound. The other customers are beyond on none of the days.
    wanted = {(d - first).days - BASELINE_DAYS: d for d in days}
    on_days = (
        few.join(scores.select("day", "customer_id", "beyond"), on="customer_id")
        .with_columns(((pl.col("day") - pl.lit(first)).dt.total_days() - BASELINE_DAYS).alias("_j"))
    )
    sign = np.zeros((n_k, n_t), dtype=np.int64)
    for j in range(n_t):  # the days too: a customer not active on one of them has no score there
        if n_k:
            sign[:, j] = _beyond_sign(_score(lookback, weekend, BASELINE_DAYS + j, cfg), cfg)
    sign[on_days["_c"].to_numpy(), on_days["_j"].to_numpy()] = on_days["beyond"].to_numpy()
    anomaly = np.zeros((n_k, n_t), dtype=bool)
    first_day = np.full((n_k, n_t), -1)
    last = {1: np.full(n_k, -1), -1: np.full(n_k, -1)}
    for j in range(n_t):
        earlier = sign[:, max(j - QUIET_DAYS, 0) : j]
        quiet = (earlier == sign[:, [j]]).any(axis=1)
        anomaly[:, j] = (sign[:, j] != 0) & ~quiet
        for direction in (1, -1):
            last[direction] = np.where(anomaly[:, j] & (sign[:, j] == direction), j, last[direction])
        alerted = np.where(sign[:, j] == 1, last[1], last[-1])
        first_day[:, j] = np.where(sign[:, j] != 0, np.maximum(alerted, j - SHIFT_LOOKBACK_DAYS), -1)
    epoch_days = (first + dt.timedelta(days=BASELINE_DAYS) - dt.date(1970, 1, 1)).days  # first_day as a polars Date
    frames = [
        pl.DataFrame({
            "day": pl.repeat(d, n_k, eager=True, dtype=pl.Date),
            "customer_id": few["customer_id"],
            "is_anomaly": anomaly[:, j],
            "first_day": pl.Series(first_day[:, j] + epoch_days, dtype=pl.Int32).cast(pl.Date)
            .scatter(np.flatnonzero(first_day[:, j] < 0), None),
        })
        for j, d in wanted.items()
    ]  # fmt: skip
    return pl.concat(frames), lookback["units"], few, first


def _anomaly_drivers(
    anomalies: pl.DataFrame,
    service_costs: ServiceCosts,
    unit_values: np.ndarray,
    ids: pl.DataFrame,
    first: dt.date,
    owners: OwnersConfig,
    top: int,
) -> pl.DataFrame:
    """Per anomaly, the services whose cost per unit changed most (the day against the 7 days before),
    each with its part of the price effect, owner and 7-day costs, as JSON; owners ordered by effect."""
    schema = {"day": pl.Date, "customer_id": pl.String, "drivers": pl.String, "owners": pl.String}
    if anomalies.is_empty():
        return pl.DataFrame(schema=schema)
    service_costs = service_costs_of(service_costs, anomalies["customer_id"])
    targets = anomalies.select("day", "customer_id", pl.col("customer_id").alias("_key"))
    changes = _service_changes(service_costs, targets).rename({"_key": "customer_id"})
    located = anomalies.join(ids, on="customer_id").with_columns(
        (pl.col("day") - pl.lit(first)).dt.total_days().alias("_d")
    )
    rows, d = located["_c"].to_numpy(), located["_d"].to_numpy()
    week = np.stack([unit_values[rows, d - k] for k in range(1, 8)], axis=1)
    units_prev = np.nansum(np.where(week > 0, week, 0.0), axis=1)
    days_prev = (week > 0).sum(axis=1)
    located = located.with_columns(pl.Series("_units_prev", units_prev), pl.Series("_days_prev", days_prev))
    per_service = (
        service_costs.lazy()
        .join(located.lazy().select("day", "customer_id", "actual_units", "expected_units", "_units_prev"),
              on="customer_id", suffix="_target")
        .filter((pl.col("day") <= pl.col("day_target")) & (pl.col("day") >= pl.col("day_target") - pl.duration(days=7)))
        .group_by("day_target", "customer_id", "service_name")
        .agg(
            pl.col("allocated_cost").filter(pl.col("day") == pl.col("day_target")).sum().alias("_cost_day"),
            pl.col("allocated_cost").filter(pl.col("day") < pl.col("day_target")).sum().alias("_cost_prev"),
            pl.col("actual_units", "expected_units", "_units_prev").first(),
        )
        .rename({"day_target": "day"})
        .collect()
    )  # fmt: skip
    per_service = per_service.with_columns(
        (
            (
                pl.when(pl.col("actual_units") > 0).then(pl.col("_cost_day") / pl.col("actual_units")).otherwise(0.0)
                - pl.when(pl.col("_units_prev") > 0).then(pl.col("_cost_prev") / pl.col("_units_prev")).otherwise(0.0)
            )
            * pl.col("expected_units")
        ).alias("price_effect")
    ).join(changes, on=["day", "customer_id", "service_name"], how="left")
    out = []
    directions = dict(zip(zip(anomalies["day"], anomalies["customer_id"], strict=True), anomalies["direction"], strict=True))
    for (day, customer), group in per_service.group_by("day", "customer_id"):
        sign = 1.0 if directions[(day, customer)] == "up" else -1.0
        ranked = group.with_columns((pl.col("price_effect") * sign).alias("_rank")).sort(
            "_rank", "service_name", descending=[True, False]
        ).head(top)
        drivers = []
        for r in ranked.iter_rows(named=True):
            prev = r["cost_prev_7d"]
            drivers.append({
                "service": r["service_name"],
                "owner": owners.team_for(r["service_name"]),
                "cost_7d": None if r["cost_7d"] is None else round(r["cost_7d"], 4),
                "cost_prev_7d": None if prev is None else round(prev, 4),
                "change_7d": round(r["cost_7d"] / prev - 1, 4) if prev else None,
                "price_effect": round(r["price_effect"], 4),
            })  # fmt: skip
        team_order = list(dict.fromkeys(d["owner"] for d in drivers))
        out.append({"day": day, "customer_id": customer, "drivers": json.dumps(drivers, separators=(",", ":")),
                    "owners": ",".join(team_order)})  # fmt: skip
    return pl.DataFrame(out, schema=schema) if out else pl.DataFrame(schema=schema)


def cost_anomalies(
    cost: pl.DataFrame,
    units: pl.DataFrame,
    customers: pl.DataFrame,
    service_costs: ServiceCosts,
    days: list[dt.date],
    cfg: AnomaliesConfig,
    owners: OwnersConfig,
    max_drivers: int = 3,
    scores: pl.DataFrame | None = None,
) -> pl.DataFrame:
    """`cost_anomalies` of the days.

    cost: (day, customer_id, total_cost) over the days and the `HISTORY_DAYS` before each;
    units: (day, customer_id, units) over the same window; customers: unit_cost rows of the days
    (day, customer_id, customer_name, tier, status): the active ones get a row; service_costs:
    allocated_cost at CUSTOMER_SERVICE_ROLLUP over the 14 days ending at each day (or a function
    reading the rows of the anomalous customers it is given).

    `scores`: the days' ANOMALY_SCORES_SCHEMA rows as the warehouse computed them
    (ANOMALY_SCORES_QUERY); then `customers` is not read, and `cost` and `units` need only hold
    the customers beyond on one of the days (their history, for the quiet period and first_day).
    """
    days = sorted(set(days))
    if scores is None:
        active = customers.filter(pl.col("day").is_in(days) & (pl.col("status") == "active")).select(
            "day", "customer_id", "customer_name", "tier"
        )
        scores = anomaly_scores(cost, units, active, days, cfg)
    scores = scores.filter(pl.col("day").is_in(days))
    if not days or scores.is_empty():
        return pl.DataFrame(schema=COST_ANOMALIES_SCHEMA)
    shifts, unit_values, candidates, first = _shifts(scores, cost, units, days, cfg)
    frame = scores.drop("beyond").join(shifts, on=["day", "customer_id"], how="left")
    drivers = _anomaly_drivers(
        frame.filter(pl.col("is_anomaly")), service_costs, unit_values, candidates, first, owners, max_drivers
    )
    return (
        frame.join(drivers, on=["day", "customer_id"], how="left")
        .with_columns(pl.col("is_anomaly").fill_null(False))
        .select(list(COST_ANOMALIES_SCHEMA))
        .cast(COST_ANOMALIES_SCHEMA)
        .sort("day", "customer_id")
    )
