"""The unit-cost dashboard: one self-contained HTML page (plotly.js embedded, nothing fetched).

`render_dashboard` takes the trailing history of the tables (already read by the asset; the history
of per-customer tables as a row per day, `transforms/daily_series.py`) and returns the page and its headline numbers. Each plot is a plotly figure in its own `<div
class="unitcost-plot">`; the page sets `window.unitcostPlotsRendered` to the number of plots drawn
once Plotly has drawn them all (the browser test waits on it).
"""

import datetime as dt
import html
import math
from dataclasses import dataclass, field

import numpy as np
import plotly.graph_objects as go
import polars as pl
from plotly.offline import get_plotlyjs

from unitcost_platform.transforms.daily_series import (
    CROSSING_DAYS,
    forecast_crossings,
    unit_cost_daily,
)

PAYING_COLORS = {"paying": "#1f77b4", "non-paying": "#ff7f0e"}
TOP_CUSTOMERS = 20


@dataclass(frozen=True)
class DashboardInputs:
    """The tables of the trailing window, read by the asset; `day` is the day the page is as of."""

    day: dt.date
    # unit_cost rows of `day` at least (more days are fine): day, customer_id, customer_name, tier,
    # is_paying, mrr, total_cost, cost_to_mrr, monthly_run_rate
    unit_cost: pl.DataFrame
    growth: pl.DataFrame  # day, cost_growth_90d, customer_growth_90d, ratio
    coverage: pl.DataFrame  # overall rows: day, total_cost, coverage, tagged_share, untagged_cost
    unallocated: pl.DataFrame  # day, unallocated_reason, allocated_cost
    team_spend: pl.DataFrame  # day, team, cost
    p1_cost_to_mrr: float
    p2_cost_to_mrr: float
    scope: str = "all customers"
    notes: list[str] = field(default_factory=list)
    # day, service_name, owner, cost_per_customer_month, target_per_customer_month
    service_unit_cost: pl.DataFrame = field(default_factory=pl.DataFrame)
    # day, incident_id, family, customer_id, customer_name, status, opened_day, resolved_day, days_open, severity, owners
    incidents: pl.DataFrame = field(default_factory=pl.DataFrame)
    # Walk and Run (absent: their panels are left out). product_cost of the day: day, product, cost,
    # usage_metric, cost_growth_7d, units_growth_7d, cost_outgrowing_usage; segment_economics of the
    # day: day, dimension, group_name, metric, revenue_share, cost_share, usage_share, infra_margin;
    # customer_unit_costs of the window per day and unit metric (`daily_series.cost_per_unit_daily`).
    products: pl.DataFrame | None = None
    segments: pl.DataFrame | None = None
    cost_per_unit_daily: pl.DataFrame | None = None
    # cost_anomalies rows (day, customer_id, customer_name, is_anomaly, impact, price_effect,
    # volume_effect, cross_effect) and the day's margin_forecast rows; None: those plots are left out.
    anomalies: pl.DataFrame | None = None
    forecast: pl.DataFrame | None = None
    # tag_coverage rows of scope_type `idle` (day, scope = the idle pool, total_cost): idle capacity.
    idle: pl.DataFrame | None = None
    # unit_cost of the window per day (`daily_series.unit_cost_daily`); None: computed from `unit_cost`.
    unit_cost_daily: pl.DataFrame | None = None


@dataclass(frozen=True)
class Dashboard:
    html: str
    headline: dict
    plots: list[str]


def _layout(fig: go.Figure, title: str, **kwargs) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.01, "xanchor": "left"},
        template="plotly_white",
        height=kwargs.pop("height", 380),
        margin={"l": 60, "r": 20, "t": 60, "b": 50},
        legend={"orientation": "h", "y": -0.2},
        **kwargs,
    )
    return fig


def _over_time(fig: go.Figure, title: str, xrange: tuple[dt.date, dt.date] | None = None, **kwargs) -> go.Figure:
    """A time axis over the whole window (half a day either side), even when a series has one point."""
    axis: dict = {"type": "date"}
    if xrange is not None:
        first, last = xrange
        axis["range"] = [f"{first - dt.timedelta(days=1)}T12:00", f"{last}T12:00"]
    return _layout(fig, title, xaxis=axis, **kwargs)


def _dates(frame: pl.DataFrame) -> list[str]:
    return [d.isoformat() for d in frame["day"].to_list()]


def cost_distribution(today: pl.DataFrame) -> go.Figure:
    """Customers by daily cost on log-spaced bins, so the long tail is as visible as the body."""
    costs = today.filter(pl.col("total_cost") > 0)["total_cost"]
    if costs.is_empty():
        return _layout(go.Figure(), "Cost per customer: no customer has cost on this day")
    low, high = math.floor(math.log10(costs.min())), math.ceil(math.log10(costs.max()))
    high = max(high, low + 1)
    edges = np.logspace(low, high, (high - low) * 5 + 1)
    counts, _ = np.histogram(costs.to_numpy(), bins=edges)
    centers = np.sqrt(edges[:-1] * edges[1:])
    median = float(costs.median())
    tail = float(costs.max()) / median if median > 0 else float("nan")
    fig = go.Figure(
        go.Bar(
            x=centers.tolist(), y=counts.tolist(), width=(edges[1:] - edges[:-1]).tolist(),
            customdata=np.column_stack([edges[:-1], edges[1:]]).tolist(),
            hovertemplate="$%{customdata[0]:,.2f} – $%{customdata[1]:,.2f}: %{y} customers<extra></extra>",
            marker_color="#1f77b4", name="customers",
        )  # fmt: skip
    )
    fig.add_vline(x=median, line_dash="dash", line_color="#444",
                  annotation_text=f"median ${median:,.2f}", annotation_position="top right")  # fmt: skip
    return _layout(
        fig,
        f"Cost per customer (log scale): the costliest is {tail:,.0f}x the median",
        xaxis={"type": "log", "title": "cost per customer per day (USD)"},
        yaxis={"title": "customers"},
        bargap=0.05,
    )


def top_cost_to_mrr(today: pl.DataFrame, p1: float, p2: float) -> go.Figure:
    top = (
        today.filter(pl.col("cost_to_mrr").is_not_null())
        .sort("cost_to_mrr", descending=True)
        .head(TOP_CUSTOMERS)
        .reverse()
    )
    colors = ["#d62728" if v > p1 else "#ff7f0e" if v > p2 else "#1f77b4" for v in top["cost_to_mrr"]]
    labels = [f"{n} ({t})" for n, t in zip(top["customer_name"], top["tier"], strict=True)]
    fig = go.Figure(
        go.Bar(
            x=top["cost_to_mrr"].to_list(), y=labels, orientation="h", marker_color=colors,
            customdata=top.select("monthly_run_rate", "mrr").rows(),
            hovertemplate="%{y}: %{x:.1%} (run rate $%{customdata[0]:,.0f} / MRR $%{customdata[1]:,.0f})<extra></extra>",
            name="cost-to-MRR",
        )  # fmt: skip
    )
    for value, label, color in ((p2, "P2", "#ff7f0e"), (p1, "P1", "#d62728")):
        fig.add_vline(x=value, line_dash="dash", line_color=color,
                      annotation_text=f"{label} {value:.0%}", annotation_position="top")  # fmt: skip
    return _layout(
        fig,
        f"Top {top.height} customers by cost-to-MRR (monthly run rate / MRR)",
        xaxis={"tickformat": ".0%", "title": "cost-to-MRR"},
        height=max(380, 24 * top.height + 120),
    )


def paying_vs_non_paying(daily: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    """`daily`: unit_cost per day (`unit_cost_daily`)."""
    fig = go.Figure()
    for column, name in (("median_paying", "paying"), ("median_non_paying", "non-paying")):
        part = daily.filter(pl.col(column).is_not_null()).sort("day")
        fig.add_trace(go.Scatter(x=_dates(part), y=part[column].to_list(), mode="lines", name=name,
                                 line_color=PAYING_COLORS[name]))  # fmt: skip
    return _over_time(
        fig,
        "Median cost per customer: paying vs non-paying",
        xrange,
        yaxis={"title": "USD per customer per day", "tickprefix": "$"},
    )


def growth_ratio(growth: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    rows = growth.filter(pl.col("ratio").is_not_null()).sort("day")
    fig = go.Figure(go.Scatter(x=_dates(rows), y=rows["ratio"].to_list(), mode="lines+markers",
                               name="cost growth / customer growth"))  # fmt: skip
    fig.add_hline(y=1.0, line_dash="dash", line_color="#444",
                  annotation_text="cost grows as fast as customers", annotation_position="bottom right")  # fmt: skip
    title = "90-day cost growth / customer growth"
    if rows.is_empty():
        title += ": needs 120 days of history"
    return _over_time(fig, title, xrange, yaxis={"title": "ratio"})


def coverage_over_time(
    coverage: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None, idle: pl.DataFrame | None = None
) -> go.Figure:
    rows = coverage.sort("day")
    has_idle = idle is not None and not idle.is_empty()
    fig = go.Figure()
    fig.add_trace(go.Scatter(x=_dates(rows), y=rows["coverage"].to_list(), mode="lines",
                             name="attributable (tagged + shared by design" + (" + idle)" if has_idle else ")")))  # fmt: skip
    fig.add_trace(go.Scatter(x=_dates(rows), y=rows["tagged_share"].to_list(), mode="lines", name="tenant-tagged"))
    if has_idle:
        per_day = idle.group_by("day").agg(pl.col("total_cost").sum().alias("idle"))
        share = rows.join(per_day, on="day", how="left").select(
            "day", pl.when(pl.col("total_cost") > 0).then(pl.col("idle").fill_null(0.0) / pl.col("total_cost")).alias("share")
        )
        fig.add_trace(go.Scatter(x=_dates(share), y=share["share"].to_list(), mode="lines", name=IDLE_LABEL,
                                 line={"color": IDLE_COLOR, "dash": "dot"}))  # fmt: skip
    return _over_time(fig, "Tag coverage (share of cost)", xrange, yaxis={"tickformat": ".0%", "rangemode": "tozero"})


# Idle capacity (an `idle: separate` pool's cost, unallocated with reason `idle`) has its own bar and colour.
IDLE_LABEL = "idle capacity (kept apart)"
IDLE_COLOR = "#9e9e9e"


def unallocated_over_time(unallocated: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    fig = go.Figure()
    for (reason,), part in sorted(unallocated.group_by(["unallocated_reason"]), key=lambda kv: kv[0][0]):
        part = part.sort("day")
        style = {"name": IDLE_LABEL, "marker": {"color": IDLE_COLOR}} if reason == "idle" else {"name": reason}
        fig.add_trace(go.Bar(x=_dates(part), y=part["allocated_cost"].to_list(), **style))
    title = "Unallocated cost by reason"
    if unallocated.is_empty():
        title += ": none (every dollar lands on a customer)"
    return _over_time(fig, title, xrange, barmode="stack", yaxis={"title": "USD per day", "tickprefix": "$"})


def team_spend_over_time(team_spend: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    totals = team_spend.group_by("team").agg(pl.col("cost").sum()).sort("cost", descending=True)
    fig = go.Figure()
    for team in totals["team"]:
        part = team_spend.filter(pl.col("team") == team).group_by("day").agg(pl.col("cost").sum()).sort("day")
        fig.add_trace(go.Bar(x=_dates(part), y=part["cost"].to_list(), name=team))
    return _over_time(fig, "Team spend (by owning team)", xrange, barmode="stack", yaxis={"title": "USD per day", "tickprefix": "$"})


def unit_cost_over_time(daily: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    """`daily`: unit_cost per day (`unit_cost_daily`)."""
    daily = daily.sort("day")
    fig = go.Figure()
    for column, name in (("p90", "90th percentile"), ("mean", "mean"), ("median", "median")):
        fig.add_trace(go.Scatter(x=_dates(daily), y=daily[column].to_list(), mode="lines", name=name))
    return _over_time(fig, "Unit cost: cost per customer per day", xrange, yaxis={"title": "USD", "tickprefix": "$"})


SERVICES_WITHOUT_TARGET_SHOWN = 5


def service_cost_against_target(services: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    """Cost per active customer per month of each service with a target, its target dashed beside it;
    without targets, the five services that cost each customer most."""
    fig = go.Figure()
    if services.is_empty():
        return _over_time(fig, "Cost per customer by service (no data)", xrange)
    targeted = services.filter(pl.col("target_per_customer_month").is_not_null())
    if targeted.height:
        names = targeted.group_by("service_name").agg(pl.col("target_ratio").last()).sort("target_ratio", descending=True)["service_name"]
        title = "Cost per customer by service against target ($ per active customer per month)"
    else:
        last = services.filter(pl.col("day") == services["day"].max())
        names = last.sort("cost_per_customer_month", descending=True, nulls_last=True)["service_name"].head(SERVICES_WITHOUT_TARGET_SHOWN)
        title = "Cost per customer by service, top 5 (no targets set)"
    palette = ["#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#ff7f0e"]
    for i, name in enumerate(names):
        part = services.filter(pl.col("service_name") == name).sort("day")
        color = palette[i % len(palette)]
        owner = part["owner"][0]
        fig.add_trace(go.Scatter(x=_dates(part), y=part["cost_per_customer_month"].to_list(), mode="lines",
                                 name=f"{name} ({owner})", line={"color": color}))  # fmt: skip
        if part["target_per_customer_month"].is_not_null().any():
            fig.add_trace(go.Scatter(x=_dates(part), y=part["target_per_customer_month"].to_list(), mode="lines",
                                     name=f"target: {name}", line={"color": color, "dash": "dash"}))  # fmt: skip
    return _over_time(fig, title, xrange, yaxis={"title": "USD per customer per month", "tickprefix": "$"})


RESOLVED_SHOWN_DAYS = 30


def incidents_panel(incidents: pl.DataFrame, day: dt.date) -> go.Figure:
    """Open incidents by age (days open) and owner, and those resolved in the last 30 days."""
    fig = go.Figure()
    if incidents.is_empty():
        return _layout(fig, "Alert incidents: none open, none resolved in 30 days")
    today = incidents.filter((pl.col("day") == day) & (pl.col("status") == "open"))
    resolved = incidents.filter(
        (pl.col("status") == "resolved") & (pl.col("day") > day - dt.timedelta(days=RESOLVED_SHOWN_DAYS))
    )

    def label(frame: pl.DataFrame) -> list[str]:
        return [
            f"{r['customer_name'] or r['customer_id'] or 'non-paying customers'} · {r['family']} · {r['owners'] or 'no owner'}"
            for r in frame.iter_rows(named=True)
        ]

    for frame, name, color in ((today.sort("days_open"), "open (days so far)", "#d62728"),
                               (resolved.sort("days_open"), f"resolved in the last {RESOLVED_SHOWN_DAYS} days (days it was open)", "#2ca02c")):  # fmt: skip
        if frame.height:
            fig.add_trace(go.Bar(x=frame["days_open"].to_list(), y=label(frame), orientation="h", name=name,
                                 marker={"color": color}, text=frame["severity"].to_list()))  # fmt: skip
    title = f"Alert incidents: {today.height} open, {resolved.height} resolved in {RESOLVED_SHOWN_DAYS} days"
    return _layout(fig, title, xaxis={"title": "days open"}, barmode="group", yaxis={"automargin": True})
def product_growth(products: pl.DataFrame, day: dt.date) -> go.Figure:
    """Walk: each product's 7-day cost growth beside its usage growth; a product whose cost outgrows
    its usage is red. Before 14 days of history, the day's cost per product instead."""
    today = products.filter(pl.col("day") == day)
    grown = today.filter(pl.col("cost_growth_7d").is_not_null() & pl.col("units_growth_7d").is_not_null())
    if grown.is_empty():
        rows = today.sort("cost", descending=True)
        fig = go.Figure(go.Bar(x=rows["product"].to_list(), y=rows["cost"].to_list(), name="cost of the day",
                               hovertemplate="%{x}: $%{y:,.2f}<extra></extra>"))  # fmt: skip
        return _layout(fig, "Cost per product (growth against usage needs 14 days of history)",
                       yaxis={"title": "USD per day", "tickprefix": "$"})  # fmt: skip
    rows = grown.sort("cost", descending=True)
    outgrowing = rows["cost_outgrowing_usage"].fill_null(False).to_list()
    labels = [f"{p} ({m})" for p, m in zip(rows["product"], rows["usage_metric"], strict=True)]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=labels, y=rows["cost_growth_7d"].to_list(), name="cost, 7-day growth",
                         marker_color=["#d62728" if o else "#1f77b4" for o in outgrowing],
                         hovertemplate="%{x}: cost %{y:+.1%}<extra></extra>"))  # fmt: skip
    fig.add_trace(go.Bar(x=labels, y=rows["units_growth_7d"].to_list(), name="usage, 7-day growth",
                         marker_color="#2ca02c", hovertemplate="%{x}: usage %{y:+.1%}<extra></extra>"))  # fmt: skip
    names = rows.filter(pl.col("cost_outgrowing_usage").fill_null(False))["product"].to_list()
    title = "Product cost against usage (7-day growth): " + (
        f"{', '.join(names)} {'outgrows' if len(names) == 1 else 'outgrow'} {'its' if len(names) == 1 else 'their'} usage"
        if names else "no product outgrows its usage"
    )
    return _layout(fig, title, barmode="group", yaxis={"tickformat": "+.0%", "title": "growth, last 7 days vs the 7 before"})


def segment_margins(segments: pl.DataFrame, day: dt.date) -> go.Figure:
    """Run: per tier, its share of cost against its share of revenue and of usage, and its infra margin."""
    today = segments.filter((pl.col("day") == day) & (pl.col("dimension") == "tier"))
    metrics = today["metric"].drop_nulls().unique().sort().to_list()
    metric = "requests" if "requests" in metrics else (metrics[0] if metrics else None)
    rows = (today.filter(pl.col("metric") == metric) if metric else today.unique(["group_name"])).sort(
        "cost_share", descending=True, nulls_last=True
    )
    tiers = rows["group_name"].to_list()
    fig = go.Figure()
    for column, name, color in (("cost_share", "share of cost (run rate)", "#d62728"),
                                ("revenue_share", "share of revenue (MRR)", "#1f77b4"),
                                ("usage_share", f"share of {metric or 'usage'}", "#7f7f7f")):  # fmt: skip
        fig.add_trace(go.Bar(x=tiers, y=rows[column].to_list(), name=name, marker_color=color,
                             hovertemplate="%{x}: %{y:.1%}<extra>" + name + "</extra>"))  # fmt: skip
    fig.add_trace(go.Scatter(x=tiers, y=rows["infra_margin"].to_list(), name="infra margin (1 - cost/MRR)", yaxis="y2",
                             mode="markers", marker={"size": 12, "symbol": "diamond", "color": "#2ca02c"},
                             hovertemplate="%{x}: margin %{y:.1%}<extra></extra>"))  # fmt: skip
    margins = rows["infra_margin"].drop_nulls()
    low = min(0.0, float(margins.min())) if margins.len() else 0.0  # a margin on the full 0-100% scale
    return _layout(
        fig, "Segment economics per tier: cost share against revenue share, and margin", barmode="group",
        yaxis={"tickformat": ".0%", "title": "share of the day's active customers", "rangemode": "tozero"},
        yaxis2={"tickformat": ".0%", "title": "infra margin", "overlaying": "y", "side": "right", "showgrid": False,
                "range": [low, 1.0]},
    )


def cost_per_unit_over_time(daily: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    """Cost per unit of each configured unit metric: median and 90th percentile over customers, per
    day. `daily`: customer_unit_costs per day and unit metric (`cost_per_unit_daily`)."""
    daily = daily.sort("unit_metric", "day")
    fig = go.Figure()
    for (metric,), part in daily.group_by(["unit_metric"], maintain_order=True):
        for column, dash in (("median", "solid"), ("p90", "dot")):
            fig.add_trace(go.Scatter(x=_dates(part), y=part[column].to_list(), mode="lines", line_dash=dash,
                                     name=f"{metric}, {'median' if column == 'median' else '90th percentile'}"))  # fmt: skip
    return _over_time(fig, "Cost per unit, per unit metric (median and 90th percentile over customers)", xrange,
                      yaxis={"type": "log", "title": "USD per unit (log)", "tickprefix": "$"}, height=460)  # fmt: skip


def economics_figures(inputs: DashboardInputs, xrange: tuple[dt.date, dt.date] | None) -> dict[str, go.Figure]:
    """The Walk and Run panels, for the tables the inputs carry."""
    figures = {}
    if inputs.products is not None:
        figures["product_growth"] = product_growth(inputs.products, inputs.day)
    if inputs.segments is not None:
        figures["segment_economics"] = segment_margins(inputs.segments, inputs.day)
    if inputs.cost_per_unit_daily is not None:
        figures["cost_per_unit"] = cost_per_unit_over_time(inputs.cost_per_unit_daily, xrange)
    return figures
def anomaly_impact(anomalies: pl.DataFrame, xrange: tuple[dt.date, dt.date] | None = None) -> go.Figure:
    """Impact of the unit-cost anomalies per day, split into price, volume and cross effects: a
    price change someone shipped shows as price, growth as volume."""
    found = anomalies.filter(pl.col("is_anomaly"))
    daily = found.group_by("day").agg(
        pl.col("price_effect", "volume_effect", "cross_effect").sum(),
        pl.col("customer_name").str.join(", ").alias("who"),
    ).sort("day")
    fig = go.Figure()
    for column, name in (("price_effect", "price effect"), ("volume_effect", "volume effect"), ("cross_effect", "cross term")):
        fig.add_bar(x=_dates(daily), y=daily[column].to_list(), name=name, customdata=daily["who"].to_list(),
                    hovertemplate="%{x}: $%{y:,.2f} (%{customdata})<extra>" + name + "</extra>")  # fmt: skip
    title = f"Unit-cost anomalies: impact per day ({found.height} in the window)"
    return _over_time(fig, title, xrange, barmode="relative", yaxis={"title": "USD per day", "tickprefix": "$"})


def projected_crossings(forecast: pl.DataFrame, p1: float, p2: float) -> go.Figure:
    """Customers projected to cross P2 or P1 within CROSSING_DAYS: cost-to-MRR today and in 30 days,
    with the 80% interval of the projection, against the two lines."""
    soon = forecast_crossings(forecast).sort("days_to_p2", "days_to_p1", nulls_last=True)
    labels = [f"{n} ({d if d is not None else '-'} d to P2)" for n, d in zip(soon["customer_name"], soon["days_to_p2"], strict=True)]
    fig = go.Figure()
    fig.add_scatter(x=soon["cost_to_mrr"].to_list(), y=labels, mode="markers", name="today", marker={"size": 10})
    fig.add_scatter(
        x=soon["cost_to_mrr_30d"].to_list(), y=labels, mode="markers", name="in 30 days (80% interval)",
        marker={"size": 10, "symbol": "diamond"},
        error_x={"type": "data", "symmetric": False,
                 "array": (soon["cost_to_mrr_30d_high"] - soon["cost_to_mrr_30d"]).to_list(),
                 "arrayminus": (soon["cost_to_mrr_30d"] - soon["cost_to_mrr_30d_low"]).to_list()},
    )  # fmt: skip
    for value, name in ((p2, "P2"), (p1, "P1")):
        fig.add_vline(x=value, line_dash="dash", annotation_text=name)
    title = f"Projected to cross P2/P1 within {CROSSING_DAYS} days: {soon.height} customer(s)"
    return _layout(fig, title, xaxis={"title": "cost to MRR", "tickformat": ".0%"}, yaxis={"autorange": "reversed"})


def headline(inputs: DashboardInputs) -> dict:
    today = inputs.unit_cost.filter(pl.col("day") == inputs.day)
    costs = today["total_cost"]
    coverage = inputs.coverage.filter(pl.col("day") == inputs.day)
    growth = inputs.growth.filter(pl.col("day") == inputs.day)
    teams = inputs.team_spend.filter(pl.col("day") == inputs.day).group_by("team").agg(pl.col("cost").sum())
    positive = costs.filter(costs > 0)

    def first(frame: pl.DataFrame, column: str) -> float | None:
        return frame[column][0] if frame.height else None

    def rounded(value: float | None, digits: int) -> float | None:
        return None if value is None else round(float(value), digits)

    idle = {}
    if inputs.idle is not None and not inputs.idle.is_empty():
        idle = {"idle_cost": round(float(inputs.idle.filter(pl.col("day") == inputs.day)["total_cost"].sum()), 2)}
    return {
        "day": inputs.day.isoformat(),
        "scope": inputs.scope,
        "customers": today.height,
        "customer_cost": round(float(costs.sum() or 0.0), 2),
        "median_cost_per_customer": rounded(costs.median(), 2),
        "max_to_median": rounded(positive.max() / positive.median(), 1) if positive.len() else None,
        "customers_over_p1": today.filter(pl.col("cost_to_mrr") > inputs.p1_cost_to_mrr).height,
        "customers_over_p2": today.filter(pl.col("cost_to_mrr") > inputs.p2_cost_to_mrr).height,
        "bill_total": rounded(first(coverage, "total_cost"), 2),
        "coverage": rounded(first(coverage, "coverage"), 4),
        "growth_ratio_90d": rounded(first(growth, "ratio"), 3),
        "teams": teams.height,
        "largest_team": None if not teams.height else teams.sort("cost", descending=True)["team"][0],
        **idle,
    }


def _headline_html(numbers: dict) -> str:
    def fmt(key: str, value) -> str:
        if value is None:
            return "n/a"
        if key in ("customer_cost", "median_cost_per_customer", "bill_total", "idle_cost"):
            return f"${value:,.2f}"
        if key == "coverage":
            return f"{value:.1%}"
        if key == "max_to_median":
            return f"{value:,.1f}x"
        return f"{value:,}" if isinstance(value, int) else str(value)

    labels = {
        "bill_total": "bill of the day", "customer_cost": "cost on customers",
        "customers": "customers", "median_cost_per_customer": "median cost / customer",
        "max_to_median": "costliest / median", "customers_over_p1": "over P1 cost-to-MRR",
        "customers_over_p2": "over P2 cost-to-MRR", "coverage": "tag coverage",
        "growth_ratio_90d": "90-day cost / customer growth", "largest_team": "largest team",
        **({"idle_cost": "idle capacity of the day"} if "idle_cost" in numbers else {}),
    }  # fmt: skip
    cells = "".join(
        f'<div class="kpi"><div class="v">{html.escape(fmt(k, numbers.get(k)))}</div>'
        f'<div class="k">{html.escape(label)}</div></div>'
        for k, label in labels.items()
    )
    return f'<div class="kpis">{cells}</div>'


STYLE = """
body { font-family: system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; margin: 24px; color: #222; background: #fafafa; }
h1 { font-size: 22px; margin: 0 0 4px; } .sub { color: #666; margin-bottom: 16px; }
.kpis { display: grid; grid-template-columns: repeat(5, 1fr); gap: 8px; margin-bottom: 16px; }
.kpi { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 10px; }
.kpi .v { font-size: 20px; font-weight: 600; } .kpi .k { color: #666; font-size: 12px; }
.grid { display: grid; grid-template-columns: 1fr 1fr; gap: 12px; }
.unitcost-plot { background: #fff; border: 1px solid #e3e3e3; border-radius: 6px; padding: 4px; min-width: 0; }
.notes { color: #666; font-size: 12px; margin-top: 12px; }
"""

RENDER_SCRIPT = """
(function () {
  var started = Date.now();
  window.unitcostPlotsRendered = -1;
  function drawn(d) { return d._fullData && d.querySelector('.main-svg'); }
  (function wait() {
    var divs = Array.prototype.slice.call(document.querySelectorAll('.unitcost-plot .plotly-graph-div'));
    if (divs.every(drawn)) { window.unitcostPlotsRendered = divs.length; return; }
    if (Date.now() - started < 20000) { setTimeout(wait, 50); }
  })();
})();
"""


def render_dashboard(inputs: DashboardInputs) -> Dashboard:
    """The page and its headline numbers; every plot reads only the frames it is given."""
    today = inputs.unit_cost.filter(pl.col("day") == inputs.day)
    daily = inputs.unit_cost_daily if inputs.unit_cost_daily is not None else unit_cost_daily(inputs.unit_cost)
    days = daily["day"]
    xrange = (days.min(), inputs.day) if days.len() else None
    figures = {
        "cost_distribution": cost_distribution(today),
        "top_cost_to_mrr": top_cost_to_mrr(today, inputs.p1_cost_to_mrr, inputs.p2_cost_to_mrr),
        "paying_vs_non_paying": paying_vs_non_paying(daily, xrange),
        "growth_ratio": growth_ratio(inputs.growth, xrange),
        "tag_coverage": coverage_over_time(inputs.coverage, xrange, inputs.idle),
        "unallocated_by_reason": unallocated_over_time(inputs.unallocated, xrange),
        "team_spend": team_spend_over_time(inputs.team_spend, xrange),
        "unit_cost": unit_cost_over_time(daily, xrange),
        "service_cost_against_target": service_cost_against_target(inputs.service_unit_cost, xrange),
        "alert_incidents": incidents_panel(inputs.incidents, inputs.day),
    }
    figures.update(economics_figures(inputs, xrange))
    if inputs.anomalies is not None:
        figures["anomaly_impact"] = anomaly_impact(inputs.anomalies, xrange)
    if inputs.forecast is not None:
        figures["projected_crossings"] = projected_crossings(inputs.forecast, inputs.p1_cost_to_mrr, inputs.p2_cost_to_mrr)
    config = {"displaylogo": False, "responsive": True}
    plots = "".join(
        f'<div class="unitcost-plot" data-plot="{name}">'
        f"{fig.to_html(full_html=False, include_plotlyjs=False, div_id=f'plot-{name}', config=config)}</div>"
        for name, fig in figures.items()
    )
    numbers = headline(inputs)
    window = f"{days.min()} .. {days.max()}" if days.len() else "no history"
    notes = "".join(f"<li>{html.escape(n)}</li>" for n in inputs.notes)
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Unit cost per customer: {inputs.day.isoformat()}</title>
<style>{STYLE}</style>
<script type="text/javascript">{get_plotlyjs()}</script>
</head><body>
<h1>Unit cost per customer, {inputs.day.isoformat()}</h1>
<div class="sub">Scope: {html.escape(inputs.scope)} · history {html.escape(window)} · team spend beside unit cost</div>
{_headline_html(numbers)}
<div class="grid">{plots}</div>
<ul class="notes">{notes}</ul>
<script type="text/javascript">{RENDER_SCRIPT}</script>
</body></html>
"""
    return Dashboard(html=page, headline=numbers, plots=list(figures))
