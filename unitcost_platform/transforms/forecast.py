"""Margin forecasts: when a customer's cost-to-MRR will cross P2 and P1, before it does.

Trend: Theil–Sen (the median of pairwise slopes, robust to outlier days) on the log of weekly mean
daily cost. The points are the whole weeks ending at the day within the trailing 60 days (up to
`WEEKS` = 8 weeks, 56 days), each the mean of its days with cost (a week needs 4 of them):
weekly means remove the weekday cycle, which would otherwise tilt a daily fit by where the window
starts. At least 21 days with cost in the 60 and 3 weekly points are needed. The slope, its 80%
interval (Sen 1968, as `scipy.stats.theilslopes(alpha=0.8)` computes it) and the intercept (median(y) − slope·median(x))
equal scipy's on the same points (a test holds them to it); the computation is vectorised over
every customer and day, because calling scipy per customer costs about 0.25 ms a call: some 90 s
of a year's backfill of the demo's 1,000 customers.

Projection: the daily cost ahead is exp(intercept + slope·τ); the 30-day run rate at D+h, as
unit_cost defines it (30 × mean daily cost of the 30 days ending then), mixes the actual days still
in that window with projected ones; cost-to-MRR at D+h divides it by today's MRR (held). The 80%
interval uses the interval's slopes pivoted at the points' median. `days_to_p2`/`days_to_p1`: the
first day ahead projected above the threshold (0 when already above); null beyond 90 days or when
the trend is flat or down. Only customers that can get above within 90 days are projected that far
(`_days_to_all`: the run rate ahead never exceeds 30 × the largest of the actual and projected days
it averages); the others' answer is the same without the projection.

FORECAST: a customer not at P2 today (cost-to-MRR ≤ p2) projected to cross P2 within
`forecast.horizon_days`; it alerts on the first such day only: not again while a crossing was
already forecast in the `horizon_days` before (one alert per crossing).

Where it runs: the warehouse lays out each active customer's 60 days on the run's days, one row per
customer and day with a column per day back (FORECAST_WINDOWS_QUERY; `forecast_windows` is its Polars
twin). Each row is fitted and projected on its own in numpy (the weekly points, Theil–Sen and the
run rate read nothing older than 60 days), and only the customers forecast to cross on one of the
days leave the warehouse with their history, for the one-alert lookback (`forecast_from_windows`).
That serves runs of up to `WINDOWS_MAX_DAYS` days; a longer range reads its window's rows and fits
every day from one customers x calendar matrix (`margin_forecast`), as 60 days per customer and day
would be 60 times the rows.
"""

import datetime as dt
from collections.abc import Callable
from typing import TYPE_CHECKING

import numpy as np
import polars as pl
from scipy import stats

from unitcost_platform.config import AlertsConfig, ForecastConfig
from unitcost_platform.transforms.anomalies import calendar_matrices, nanmedian
from unitcost_platform.transforms.unit_cost import RUN_RATE_DAYS
from unitcost_platform.transforms.windows import cumulative, running_count
from unitcost_platform.warehouse_sql import Dialect, WarehouseQuery

if TYPE_CHECKING:
    from unitcost_platform.config import UnitcostConfig

WEEKS = 8
TREND_DAYS = 60
MIN_WEEK_DAYS = 4
MIN_POINTS = 3
MIN_HISTORY_DAYS = 21
MAX_DAYS_AHEAD = 90
CONFIDENCE = 0.80
AHEAD = (7, 14, 30)

MARGIN_FORECAST_SCHEMA: dict[str, pl.DataType] = {
    "day": pl.Date(),
    "customer_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "mrr": pl.Float64(),
    "cost_to_mrr": pl.Float64(),
    "trend_weeks": pl.Int64(),
    "daily_growth": pl.Float64(),
    "daily_growth_low": pl.Float64(),
    "daily_growth_high": pl.Float64(),
    **{f"cost_to_mrr_{h}d{s}": pl.Float64() for h in AHEAD for s in ("", "_low", "_high")},
    "days_to_p2": pl.Int64(),
    "days_to_p1": pl.Int64(),
    "is_forecast_alert": pl.Boolean(),
}


def history_days(horizon_days: int) -> int:
    """Days of unit_cost the asset reads: the trend window of each day of the one-alert lookback."""
    return TREND_DAYS + horizon_days


def theil_sen(y: np.ndarray, x: np.ndarray, confidence: float = CONFIDENCE) -> dict[str, np.ndarray]:
    """Theil–Sen per row of `y` (NaN = no point), with `x` shared: slope, intercept, interval, points.

    The same estimator and interval as scipy.stats.theilslopes (method 'separate'; continuous data,
    so no tied values to correct for), vectorised over rows.
    """
    n_rows, n_x = y.shape
    i, j = np.triu_indices(n_x, k=1)
    dx = x[j] - x[i]
    keep = dx != 0
    i, j, dx = i[keep], j[keep], dx[keep]
    slopes = np.sort((y[:, j] - y[:, i]) / dx, axis=1)  # NaN (missing points) sort last
    pairs = (~np.isnan(slopes)).sum(axis=1)
    points = (~np.isnan(y)).sum(axis=1)
    rows = np.arange(n_rows)
    lo, hi = np.clip((pairs - 1) // 2, 0, None), np.clip(pairs // 2, 0, None)
    slope = np.where(pairs > 0, (slopes[rows, lo] + slopes[rows, hi]) / 2, np.nan)
    x_rows = np.where(np.isnan(y), np.nan, x[None, :])
    with np.errstate(all="ignore"):
        med_y, med_x = nanmedian(y, axis=1), nanmedian(x_rows, axis=1)
        z = stats.norm.ppf((1 - confidence) / 2)
        sigma = np.sqrt(points * (points - 1) * (2 * points + 5) / 18.0)
        upper = np.minimum(np.round((pairs - z * sigma) / 2), pairs - 1)
        lower = np.maximum(np.round((pairs + z * sigma) / 2) - 1, 0)
    ok = pairs > 0
    upper = np.where(ok, upper, 0).astype(np.int64)
    lower = np.where(ok, lower, 0).astype(np.int64)
    return {
        "slope": slope,
        "intercept": med_y - slope * med_x,
        "low": np.where(ok, slopes[rows, lower], np.nan),
        "high": np.where(ok, slopes[rows, upper], np.nan),
        "median_x": med_x,
        "median_y": med_y,
        "points": points,
    }


def weekly_points(costs: np.ndarray, t: np.ndarray, counts: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Log mean daily cost of the `WEEKS` whole weeks ending at each column of `t` (rows x columns x weeks).

    `costs`: customers x calendar, NaN where the customer had no row; days with cost ≤ 0 do not count.
    x of week k is the offset of its middle day from the day: −7k − 3. `counts`: the running count
    of days with cost (`running_count(costs > 0)`), when the caller has it.
    """
    sums = cumulative(np.where(costs > 0, costs, 0.0))
    counts = running_count(costs > 0) if counts is None else counts
    y = np.full((costs.shape[0], len(t), WEEKS), np.nan)
    for k in range(WEEKS):
        end = t - 7 * k + 1
        start = end - 7
        valid = start >= 0
        s = np.where(valid, sums[:, np.clip(end, 0, None)] - sums[:, np.clip(start, 0, None)], np.nan)
        n = np.where(valid, counts[:, np.clip(end, 0, None)] - counts[:, np.clip(start, 0, None)], 0)
        with np.errstate(all="ignore"):
            y[:, :, k] = np.where(n >= MIN_WEEK_DAYS, np.log(s / n), np.nan)
    x = -7.0 * np.arange(WEEKS) - 3.0
    return y, x


def project_cost_to_mrr(
    recent: np.ndarray,
    recent_days: np.ndarray,
    intercept: np.ndarray,
    slope: np.ndarray,
    mrr: np.ndarray,
    days_ahead: int = MAX_DAYS_AHEAD,
    at: tuple[int, ...] | None = None,
) -> np.ndarray:
    """Cost-to-MRR at D+1..D+days_ahead (rows x days ahead), or only at the days ahead in `at`.

    `recent`: sums of actual cost over the last m days, m = 0..30 (rows x 31), `recent_days` the
    days with a row among them; the run rate at D+h is 30 × (actual cost of the 30 − h last days +
    projected cost of the h days ahead) / (days counted).
    """
    tau = np.arange(1, days_ahead + 1)
    with np.errstate(all="ignore"):
        cum = np.exp(intercept[:, None] + slope[:, None] * tau[None, :])  # day D+1 in column 0
    np.cumsum(cum, axis=1, out=cum)
    h = tau if at is None else np.asarray(at)
    projected_days = np.minimum(h, RUN_RATE_DAYS)  # of the run rate's 30 days, those ahead
    actual_days = RUN_RATE_DAYS - projected_days  # and those of actual cost (none from D+30 on)
    before = h - projected_days  # projected days before the window: none until D+30
    earlier = np.zeros((len(slope), len(h)))
    earlier[:, before > 0] = cum[:, before[before > 0] - 1]
    total = recent[:, actual_days] + cum[:, h - 1] - earlier
    counted = recent_days[:, actual_days] + projected_days[None, :]
    with np.errstate(all="ignore"):
        rate = RUN_RATE_DAYS * total / counted
        return np.where(mrr[:, None] > 0, rate / mrr[:, None], np.nan)


def _days_to(ratio_now: np.ndarray, ahead: np.ndarray, slope: np.ndarray, threshold: float) -> np.ndarray:
    """First day ahead above `threshold`; 0 when already above; -1 (null) beyond 90 days or trending down."""
    above = ahead > threshold
    first = np.where(above.any(axis=1), above.argmax(axis=1) + 1, -1)
    first = np.where(slope > 0, first, -1)
    return np.where(ratio_now > threshold, 0, first)


def _days_to_all(
    now: np.ndarray,
    recent: np.ndarray,
    recent_days: np.ndarray,
    intercept: np.ndarray,
    slope: np.ndarray,
    mrr: np.ndarray,
    latest_max: np.ndarray,
    thresholds: tuple[float, ...],
) -> list[np.ndarray]:
    """`_days_to` of each threshold over `MAX_DAYS_AHEAD` days, projecting those days only for the
    rows that can get above one: trending up, not above it yet, with an MRR, and whose bound can
    reach it. The run rate ahead is 30 x the mean of days that are either actual days of the last
    30 or projected ones, so it never exceeds 30 x the largest of them: the largest actual daily cost
    of the last 30 days (`latest_max`) or the projection's last day (the trend rises). A row whose
    bound is below the threshold (with a 1e-6 margin for rounding) never crosses it within the
    horizon: its answer (-1, or 0 when already above) needs no projection, the same as projecting."""
    with np.errstate(all="ignore"):
        bound = RUN_RATE_DAYS * np.fmax(latest_max, np.exp(intercept + slope * MAX_DAYS_AHEAD)) / mrr
    out = []
    for threshold in thresholds:
        can = (slope > 0) & ~(now > threshold) & (mrr > 0) & ~(bound <= threshold * (1 - 1e-6))
        days = np.where(now > threshold, 0, -1)
        rows = np.flatnonzero(can)
        if rows.size:
            ahead = project_cost_to_mrr(recent[rows], recent_days[rows], intercept[rows], slope[rows], mrr[rows])
            days[rows] = _days_to(now[rows], ahead, slope[rows], threshold)
        out.append(days)
    return out


def _trend(costs: np.ndarray, t: np.ndarray) -> dict[str, np.ndarray]:
    """The trend of every row of `costs` (customers x calendar) at every calendar column of `t`
    (flattened: row-major over customers, then targets), and its days with cost in the window.
    Only the calendar's columns the targets' windows cover are read."""
    lo = max(int(t.min()) - (TREND_DAYS - 1), 0)
    costs, t = costs[:, lo : int(t.max()) + 1], t - lo
    cost_days = running_count(costs > 0)
    y, x = weekly_points(costs, t, cost_days)
    fit = theil_sen(y.reshape(-1, WEEKS), x)
    fit["days"] = (cost_days[:, t + 1] - cost_days[:, np.clip(t + 1 - TREND_DAYS, 0, None)]).reshape(-1)
    return fit


def _trend_table(unit: pl.DataFrame, targets: list[dt.date], until: dt.date | None = None) -> tuple[pl.DataFrame, dict]:
    """Matrices over the calendar the targets need (to `until`, default the last target); the trend
    of every customer at every target."""
    first = min(targets) - dt.timedelta(days=TREND_DAYS - 1)
    n_days = (max(until or max(targets), max(targets)) - first).days + 1
    ids = unit.select("customer_id").unique().sort("customer_id").with_row_index("_c")
    costs = calendar_matrices(unit, ids, first, n_days, {"total_cost": 0.0})["total_cost"]
    t = np.array([(d - first).days for d in targets])
    return ids, {"fit": _trend(costs, t), "costs": costs, "t": t, "first": first}


def _evaluate(
    m: dict[str, np.ndarray],
    rows: np.ndarray | slice,
    t: np.ndarray,
    wanted: np.ndarray,
    alerts: AlertsConfig,
    cfg: ForecastConfig,
) -> tuple[np.ndarray, list[dict]]:
    """The trend of the `rows` of the calendar matrices `m` (total_cost, mrr, cost_to_mrr) at the
    calendar columns `t`: whether it forecast a crossing (within the horizon, not at P2 yet) and,
    for the targets where `wanted`, every output column. `rows`: indices, or a slice (a view, no copy)."""
    costs = m["total_cost"][rows]
    fit = _trend(costs, t)
    n_c, n_t = costs.shape[0], len(t)
    # Running totals for the run rate: from 30 days before the first target only.
    lo = max(int(t.min()) - RUN_RATE_DAYS, 0)
    window = costs[:, lo : int(t.max()) + 1]
    sums, counts = cumulative(np.nan_to_num(window)), running_count(~np.isnan(window))
    mrr, now = m["mrr"][rows][:, t - m["t0"]], m["cost_to_mrr"][rows][:, t - m["t0"]]
    frames = []
    crossing = np.zeros((n_c, n_t), dtype=bool)
    for k in range(n_t):
        at = np.arange(n_c) * n_t + k
        slope, intercept = fit["slope"][at], fit["intercept"][at]
        points = fit["points"][at]
        usable = (points >= MIN_POINTS) & (fit["days"][at] >= MIN_HISTORY_DAYS) & np.isfinite(slope)
        end = t[k] + 1 - lo
        starts = np.clip(end - np.arange(RUN_RATE_DAYS + 1), 0, None)
        recent = sums[:, [end]] - sums[:, starts]
        recent_days = counts[:, [end]] - counts[:, starts]
        icpt = np.where(usable, intercept, np.nan)
        if not wanted[k]:  # only whether it forecast a crossing: project to the horizon
            soon = project_cost_to_mrr(recent, recent_days, icpt, slope, mrr[:, k], cfg.horizon_days)
            p2 = np.where(usable, _days_to(now[:, k], soon, slope, alerts.p2_cost_to_mrr), -1)
            crossing[:, k] = usable & (now[:, k] <= alerts.p2_cost_to_mrr) & (p2 >= 1)
            continue
        central = project_cost_to_mrr(recent, recent_days, icpt, slope, mrr[:, k], max(AHEAD), AHEAD)
        with np.errstate(all="ignore"):
            last30 = costs[:, max(t[k] + 1 - RUN_RATE_DAYS, 0) : t[k] + 1]
            latest_max = np.where(np.isnan(last30), -np.inf, last30).max(axis=1)
        p2, p1 = _days_to_all(now[:, k], recent, recent_days, icpt, slope, mrr[:, k], latest_max,
                              (alerts.p2_cost_to_mrr, alerts.p1_cost_to_mrr))  # fmt: skip
        p2, p1 = np.where(usable, p2, -1), np.where(usable, p1, -1)
        crossing[:, k] = usable & (now[:, k] <= alerts.p2_cost_to_mrr) & (p2 >= 1) & (p2 <= cfg.horizon_days)
        bands = {}
        for name in ("low", "high"):
            s = fit[name][at]
            icpt = fit["median_y"][at] - s * fit["median_x"][at]
            bands[name] = project_cost_to_mrr(
                recent, recent_days, np.where(usable, icpt, np.nan), s, mrr[:, k], max(AHEAD), AHEAD
            )
        frames.append({
            "trend_weeks": points.astype(np.int64),
            **{name: np.where(usable, np.expm1(s), np.nan) for name, s in
               (("daily_growth", slope), ("daily_growth_low", fit["low"][at]), ("daily_growth_high", fit["high"][at]))},
            **{f"cost_to_mrr_{h}d{suffix}": values[:, i] for i, h in enumerate(AHEAD)
               for suffix, values in (("", central), ("_low", bands["low"]), ("_high", bands["high"]))},
            "days_to_p2": pl.Series(p2).cast(pl.Int64).replace(-1, None),
            "days_to_p1": pl.Series(p1).cast(pl.Int64).replace(-1, None),
        })  # fmt: skip
    return crossing, frames


# The days before a target its window holds: its own day (0) back to the trend window's first (59).
WINDOW_COLUMNS = [f"cost_back_{k:02d}" for k in range(TREND_DAYS - 1, -1, -1)]  # oldest first
# What the table takes from a customer's unit_cost row of the day.
DAY_COLUMNS = ["day", "customer_id", "customer_name", "tier", "mrr", "cost_to_mrr"]
FORECAST_WINDOWS_SCHEMA: dict[str, pl.DataType] = {
    **{c: MARGIN_FORECAST_SCHEMA[c] for c in DAY_COLUMNS},
    **{c: pl.Float64() for c in WINDOW_COLUMNS},
}
# The longest run the windows serve: a longer range reads its window's rows (about one per customer
# and day of the range), not 60 per customer and day.
WINDOWS_MAX_DAYS = 7
WINDOW_INPUT_COLUMNS = ["day", "customer_id", "customer_name", "tier", "status", "total_cost", "mrr", "cost_to_mrr"]


def forecast_windows(unit: pl.DataFrame, days: list[dt.date]) -> pl.DataFrame:
    """FORECAST_WINDOWS_SCHEMA: a row per day of `days` and customer active on it, with its MRR and
    cost-to-MRR of the day and its daily cost of the `TREND_DAYS` ending that day (`cost_back_k`: the
    cost k days before; a null cost counts 0, a day without a row is null); the Polars twin of
    FORECAST_WINDOWS_QUERY."""
    targets = (
        unit.filter(pl.col("day").is_in(sorted(set(days))) & (pl.col("status") == "active"))
        .select(DAY_COLUMNS)
        .sort("day", "customer_id")
        .with_row_index("_t")
    )
    located = (
        targets.lazy()
        .select("_t", "customer_id", pl.col("day").alias("_target"))
        .join(unit.lazy().select("customer_id", "day", pl.col("total_cost").fill_null(0.0)), on="customer_id")
        .with_columns((pl.col("_target") - pl.col("day")).dt.total_days().alias("_back"))
        .filter(pl.col("_back").is_between(0, TREND_DAYS - 1))
        .select((pl.col("_t").cast(pl.Int64) * TREND_DAYS + (TREND_DAYS - 1) - pl.col("_back")).alias("_i"), "total_cost")
        .collect()
    )
    costs = np.full((targets.height, TREND_DAYS), np.nan)
    costs.reshape(-1)[located["_i"].to_numpy()] = located["total_cost"].to_numpy()
    return targets.drop("_t").with_columns(
        pl.from_numpy(costs, schema=WINDOW_COLUMNS, orient="row").fill_nan(None)
    ).cast(FORECAST_WINDOWS_SCHEMA)


def _forecast_windows_statement(rows: str, _cfg: "UnitcostConfig", dialect: Dialect, days: str) -> str:
    """`forecast_windows` in the warehouse, over unit_cost's rows of the window: each target (a day of
    `days`, comma-separated ISO dates, and an active customer of it) joined to its customer's rows
    of the `TREND_DAYS` ending that day, one column per day back."""
    targets = ", ".join(dialect.date(d) for d in days.split(",") if d) or "cast(null as date)"
    number = lambda day: dialect.days_between(dialect.date("1970-01-05"), day)  # noqa: E731
    backs = ",\n        ".join(
        f"max(case when days_back = {k} then total_cost end) as cost_back_{k:02d}" for k in range(TREND_DAYS - 1, -1, -1)
    )
    # The history reads the three columns it needs from the rows, not a shared wide CTE (which
    # DuckDB materializes, names and all: twice the time).
    return f"""
with targets as (
    select day, {number("day")} as day_number, customer_id, customer_name, tier, mrr, cost_to_mrr
    from ({rows}) as unitcost_rows where status = 'active' and day in ({targets})
),
history as (
    select t.day, t.customer_id, t.day_number - {number("h.day")} as days_back, coalesce(h.total_cost, 0) as total_cost
    from targets as t
    join (select day, customer_id, total_cost from ({rows}) as unitcost_rows) as h on h.customer_id = t.customer_id
        and {number("h.day")} between t.day_number - {TREND_DAYS - 1} and t.day_number
),
windows as (
    select day, customer_id,
        {backs}
    from history group by day, customer_id
)
select t.day, t.customer_id, t.customer_name, t.tier, t.mrr, t.cost_to_mrr, {", ".join(f"w.{c}" for c in WINDOW_COLUMNS)}
from targets as t join windows as w on w.day = t.day and w.customer_id = t.customer_id
"""


# unit_cost's window as the warehouse lays it out for the run's days (`days`): a row per active
# customer and day with the 60 daily costs its trend and run rate read, not 74 rows per customer.
FORECAST_WINDOWS_QUERY = WarehouseQuery(
    WINDOW_INPUT_COLUMNS, FORECAST_WINDOWS_SCHEMA, _forecast_windows_statement, parameters=("days",)
)


def _calendar(unit: pl.DataFrame, ids: pl.DataFrame, first: dt.date, n_days: int) -> dict:
    """`_evaluate`'s matrices of the customers `ids` over the calendar from `first`: daily cost (a null
    cost 0), and MRR and cost-to-MRR from column t0 on (the first day a trend window ends)."""
    t0 = TREND_DAYS - 1
    m = calendar_matrices(unit, ids, first, n_days, {"total_cost": 0.0})
    m |= calendar_matrices(unit, ids, first + dt.timedelta(days=t0), n_days - t0, {"mrr": None, "cost_to_mrr": None})
    return m | {"t0": t0}


def _alert_days(history: pl.DataFrame, days: list[dt.date], alerts: AlertsConfig, cfg: ForecastConfig) -> pl.DataFrame:
    """(day, customer_id, is_forecast_alert) of the days on which a customer of `history` (its
    unit_cost rows over the days and `history_days` before each) raises a FORECAST alert: forecast
    to cross on the day, and on none of the `horizon_days` before (one alert per crossing)."""
    t0, h = TREND_DAYS - 1, cfg.horizon_days
    few = history.select("customer_id").unique().sort("customer_id").with_row_index("_c")
    start = min(days) - dt.timedelta(days=h + t0)
    n_days = (max(days) - start).days + 1
    m = _calendar(history, few, start, n_days)
    targets = [start + dt.timedelta(days=t0 + i) for i in range(n_days - t0)]
    t = np.array([(d - start).days for d in targets])
    crossing, _ = _evaluate(m, slice(None), t, np.zeros(len(targets), dtype=bool), alerts, cfg)
    rows = []
    for k, target in enumerate(targets):
        if target in days:
            alert = crossing[:, k] & ~crossing[:, max(k - h, 0) : k].any(axis=1)
            rows += [(target, c) for c in few["customer_id"].filter(pl.Series(alert))]
    return pl.DataFrame(rows, schema={"day": pl.Date, "customer_id": pl.String}, orient="row").with_columns(
        is_forecast_alert=pl.lit(True)
    )


def forecast_from_windows(
    windows: pl.DataFrame,
    history: Callable[[list[str]], pl.DataFrame],
    days: list[dt.date],
    alerts: AlertsConfig,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """`margin_forecast` of the days from their FORECAST_WINDOWS rows (`windows`): each row's trend
    and projections from its own 60 days; the customers forecast to cross on one of the days are
    then looked back on over the `horizon_days` before, from their unit_cost rows (`history(ids)`,
    the days and `history_days` before each; no other customer's are read)."""
    days = sorted(set(days))
    windows = windows.filter(pl.col("day").is_in(days)).sort("day", "customer_id")
    if not days or windows.is_empty():
        return pl.DataFrame(schema=MARGIN_FORECAST_SCHEMA)
    # Each (day, customer) is a row of matrices over its own 60 days: column 59 is the day.
    t0 = TREND_DAYS - 1
    m = {
        "total_cost": windows.select(WINDOW_COLUMNS).to_numpy(order="c"),
        "mrr": windows["mrr"].to_numpy()[:, None],
        "cost_to_mrr": windows["cost_to_mrr"].to_numpy()[:, None],
        "t0": t0,
    }
    crossing, [computed] = _evaluate(m, slice(None), np.array([t0]), np.ones(1, dtype=bool), alerts, cfg)
    frame = windows.select(DAY_COLUMNS).with_columns(
        pl.DataFrame(computed, nan_to_null=True)
    )
    candidates = windows["customer_id"].filter(pl.Series(crossing[:, 0])).unique().sort().to_list()
    return _with_alerts(frame, history, candidates, days, alerts, cfg)


def _with_alerts(
    frame: pl.DataFrame,
    history: Callable[[list[str]], pl.DataFrame],
    candidates: list[str],
    days: list[dt.date],
    alerts: AlertsConfig,
    cfg: ForecastConfig,
) -> pl.DataFrame:
    """The table: `frame` (the days' rows, every column but the alert) with `is_forecast_alert` of
    the `candidates` (those forecast to cross on one of the days) from their `history(candidates)`."""
    warned = pl.DataFrame(schema={"day": pl.Date, "customer_id": pl.String, "is_forecast_alert": pl.Boolean})
    if candidates:
        warned = _alert_days(history(candidates), days, alerts, cfg)
    return (
        frame.join(warned, on=["day", "customer_id"], how="left")
        .with_columns(pl.col("is_forecast_alert").fill_null(False), pl.col("trend_weeks").fill_null(0),
                      pl.col(pl.Float64).fill_nan(None))
        .select(list(MARGIN_FORECAST_SCHEMA))
        .cast(MARGIN_FORECAST_SCHEMA)
        .sort("day", "customer_id")
    )  # fmt: skip


def margin_forecast(
    unit: pl.DataFrame, days: list[dt.date], alerts: AlertsConfig, cfg: ForecastConfig
) -> pl.DataFrame:
    """`margin_forecast` of the days from unit_cost rows over the days and `history_days` before each.

    The days share one calendar: every customer active on a day is fitted on the days from
    customers x calendar matrices (a range of days reads each day once, not in 60 windows); those
    forecast to cross on one of them are looked back on as `forecast_from_windows` does.
    """
    days = sorted(set(days))
    today = unit.filter(pl.col("day").is_in(days) & (pl.col("status") == "active"))
    if not days or today.is_empty():
        return pl.DataFrame(schema=MARGIN_FORECAST_SCHEMA)
    ids = today.select("customer_id").unique().sort("customer_id").with_row_index("_c")
    # Daily cost over the trend windows of the days, MRR and cost-to-MRR on the days (from column t0 on).
    t0 = TREND_DAYS - 1
    first = min(days) - dt.timedelta(days=t0)
    n_days = (max(days) - first).days + 1
    m = _calendar(unit, ids, first, n_days)
    t_days = np.array([(d - first).days for d in days])
    crossing, computed = _evaluate(m, slice(None), t_days, np.ones(len(days), dtype=bool), alerts, cfg)
    frame = today.select(DAY_COLUMNS).join(
        pl.concat([
            pl.DataFrame({"day": pl.repeat(d, ids.height, eager=True), "customer_id": ids["customer_id"], **columns},
                         nan_to_null=True)
            for d, columns in zip(days, computed, strict=True)
        ]),
        on=["day", "customer_id"], how="left",
    )  # fmt: skip
    candidates = ids["customer_id"].gather(np.flatnonzero(crossing.any(axis=1))).to_list()
    return _with_alerts(
        frame, lambda few: unit.filter(pl.col("customer_id").is_in(few)), candidates, days, alerts, cfg
    )


def backtest(unit: pl.DataFrame, ahead: int = 14, min_history: int = 60) -> dict:
    """How far off the cost forecast is `ahead` days out, on a unit_cost history (e.g. the demo's).

    For every customer and origin day with at least `min_history` days of cost history and the
    7 days ending `ahead` days later all in the data: the forecast mean daily cost of those 7 days
    (the trend's projection) against the actual mean (a week, so the weekday cycle the trend does
    not model is not counted as error). Returns the median absolute percentage error and counts.
    """
    unit = unit.select("day", "customer_id", "total_cost")
    all_days = sorted(unit["day"].unique().to_list())
    if len(all_days) < min_history + ahead:
        return {"median_ape": None, "forecasts": 0, "customers": 0}
    origins = [d for d in all_days if d + dt.timedelta(days=ahead) <= all_days[-1]]
    ids, m = _trend_table(unit, origins, until=all_days[-1])
    fit, costs, t = m["fit"], m["costs"], m["t"]
    n_c, n_t = ids.height, len(origins)
    history = np.cumsum(costs > 0, axis=1)
    tau = np.arange(ahead - 6, ahead + 1)
    errors, who = [], []
    for k in range(n_t):
        rows = np.arange(n_c) * n_t + k
        slope, intercept, points = fit["slope"][rows], fit["intercept"][rows], fit["points"][rows]
        cols = t[k] + tau
        actual = costs[:, cols]
        ok = (history[:, t[k]] >= min_history) & (points >= MIN_POINTS) & (actual > 0).all(axis=1)
        ok &= fit["days"][rows] >= MIN_HISTORY_DAYS
        with np.errstate(all="ignore"):
            forecast = np.exp(intercept[:, None] + slope[:, None] * tau[None, :]).mean(axis=1)
            ape = np.abs(forecast - actual.mean(axis=1)) / actual.mean(axis=1)
        errors.append(ape[ok])
        who.append(np.nonzero(ok)[0])
    ape = np.concatenate(errors) if errors else np.array([])
    return {
        "median_ape": float(np.median(ape)) if ape.size else None,
        "forecasts": int(ape.size),
        "customers": int(np.unique(np.concatenate(who)).size) if who else 0,
    }
