"""`unitcost`: generate the demo data, print the demo range, summarize what the pipeline computed."""

import argparse
import contextlib
import datetime as dt
import http.server
import json
import sys
from pathlib import Path

import duckdb
import polars as pl

from unitcost_platform.config import load_config
from unitcost_platform.config_base import NAMESPACE_TAG_KEYS
from unitcost_platform.demo.generator import DemoSpec, generate_demo
from unitcost_platform.errors import UnitcostError
from unitcost_platform.settings import DEMO_DAYS, DEMO_START_DATE, WAREHOUSE_SCHEMA, Settings
from unitcost_platform.transforms.forecast import backtest
from unitcost_platform.transforms.products import outgrowing_line
from unitcost_platform.transforms.segments import freemium_line, lowest_margin_tier


def _demo_data(args: argparse.Namespace) -> int:
    spec = DemoSpec(customers=args.customers, days=args.days, start=args.start, seed=args.seed)
    out = Path(args.out) if args.out else Settings.from_env().data_dir
    summary = generate_demo(out, spec)
    print(
        f"demo data in {summary.out_dir}: {summary.customers} customers, {summary.tenants} tenants, "
        f"{summary.billing_rows:,} billing line items, {summary.usage_rows:,} usage rows, "
        f"{summary.start}..{summary.end}"
    )
    for role, who in sorted(summary.highlights.items()):
        print(f"  {role:>6}: {who}")
    return 0


def _demo_range(args: argparse.Namespace) -> int:
    end = args.start + dt.timedelta(days=args.days - 1)
    print(f"{args.start.isoformat()}...{end.isoformat()}")
    return 0


def _query(con: duckdb.DuckDBPyConnection, sql: str) -> pl.DataFrame:
    return pl.from_arrow(con.sql(sql).to_arrow_table())


def _json_path(key: str) -> str:
    return "$." + json.dumps(key)


def _kubernetes_lines(con: duckdb.DuckDBPyConnection, s: str, cfg) -> list[str]:
    """Shared clusters: namespaces billed to tenants (split cost allocation data), clusters split by
    OpenCost, and idle capacity kept apart; nothing when the bill has none of them."""
    lines = []
    values = [f"json_extract_string(Tags, '{_json_path(k)}')" for k in NAMESPACE_TAG_KEYS]
    namespace = " or ".join(f"{v} is not null" for v in values)
    pods = _query(con, f"""
        select count(distinct x_TenantId) tenants, count(distinct coalesce({", ".join(values)})) namespaces,
            sum({cfg.cost_column}) cost
        from {s}.raw_billing where x_TenantId is not null and ({namespace})""").row(0, named=True)
    if pods["tenants"]:
        lines.append(f"Kubernetes namespaces as tenants: {pods['namespaces']} namespaces of {pods['tenants']} tenants, "
                     f"${pods['cost'] or 0:,.2f} of pod cost billed to them directly")  # fmt: skip
    metrics = [m.metric for m in cfg.usage.opencost.metrics] if cfg.usage.opencost else []
    if metrics:
        listed = ", ".join(f"'{m}'" for m in metrics)
        split = _query(con, f"""
            select pool, count(distinct customer_id) customers, sum(allocated_cost) cost from {s}.allocated_cost
            where driver in ({listed}) and customer_id is not null group by 1 order by 1""")
        if split.height:
            lines.append("Clusters split by OpenCost: " + "; ".join(
                f"{p} ${c:,.2f} over {n} customers" for p, n, c in split.iter_rows()))  # fmt: skip
    idle = _query(con, f"""
        select pool, sum(allocated_cost) cost from {s}.allocated_cost where unallocated_reason = 'idle'
        group by 1 order by 1""")
    if idle.height:
        lines.append("Idle capacity kept apart (unallocated, reason idle): " + "; ".join(f"{p} ${c:,.2f}" for p, c in idle.iter_rows()))
    return lines


def summarize(duckdb_path: Path, config_path: Path, dashboard_dir: Path | None = None) -> str:
    """The short report the demo prints: days, cost, coverage, customers over threshold, alerts."""
    cfg = load_config(config_path)
    if not duckdb_path.exists():
        raise SystemExit(f"no warehouse at {duckdb_path}: run the pipeline first (make demo)")
    s = WAREHOUSE_SCHEMA
    with duckdb.connect(str(duckdb_path), read_only=True) as con:
        days = _query(con, f"select min(day) lo, max(day) hi, count(distinct day) n from {s}.unit_cost").row(0)
        cov = _query(con, f"""
            select sum(total_cost) total, sum(tagged_cost + shared_by_design_cost) attributed,
                   sum(tagged_cost) tagged, sum(untagged_cost) untagged
            from {s}.tag_coverage where scope_type = 'overall'""").row(0, named=True)
        alloc = _query(con, f"""
            select coalesce(unallocated_reason, 'allocated to customers') bucket, sum(allocated_cost) cost
            from {s}.allocated_cost group by 1 order by 2 desc""")
        latest = _query(con, f"""
            select count(*) filter (where cost_to_mrr > {cfg.alerts.p1_cost_to_mrr}) p1,
                   count(*) filter (where cost_to_mrr > {cfg.alerts.p2_cost_to_mrr}
                                    and cost_to_mrr <= {cfg.alerts.p1_cost_to_mrr}) p2,
                   count(*) customers, median(total_cost) median_cost, max(total_cost) max_cost
            from {s}.unit_cost where day = (select max(day) from {s}.unit_cost)""").row(0, named=True)
        alerts = _query(con, f"select alert_type, count(*) n from {s}.cost_alerts group by 1 order by 1")
        teams = _query(con, f"""
            select team, sum(cost) cost from {s}.team_spend
            where day = (select max(day) from {s}.unit_cost) group by 1 order by 2 desc""")
        last_alerts = _query(con, f"""
            select alert_type, message from {s}.cost_alerts
            where day = (select max(day) from {s}.cost_alerts) order by alert_type, value desc limit 8""")
        tables = set(_query(con, f"select table_name from information_schema.tables where table_schema = '{s}'")["table_name"])
        over = _query(con, f"""
            select service_name, owner, cost_per_customer_month, target_per_customer_month, target_ratio
            from {s}.service_unit_cost where day = (select max(day) from {s}.unit_cost) and over_target
            order by target_ratio desc""") if "service_unit_cost" in tables else None
        incidents = _query(con, f"""
            select count(*) filter (where status = 'open' and day = (select max(day) from {s}.unit_cost)) open,
                   count(distinct incident_id) filter (where status = 'resolved') resolved,
                   count(distinct incident_id) total
            from {s}.alert_incidents""").row(0, named=True) if "alert_incidents" in tables else None
        resolved = _query(con, f"""
            select customer_name, family, opened_day, resolved_day, days_open from {s}.alert_incidents
            where status = 'resolved' and family = 'COST_TO_MRR' order by resolved_day desc limit 3""") if incidents else None
        model_lines = _anomaly_forecast_lines(con, s)
        k8s_lines = _kubernetes_lines(con, s, cfg)
    lo, hi, n = days
    total = cov["total"] or 0.0
    lines = [
        f"Days processed: {n} ({lo} .. {hi})",
        f"Total cost ({cfg.cost_column}): ${total:,.2f}",
        f"Tag coverage: {cov['attributed'] / total:.1%} attributable "
        f"({cov['tagged'] / total:.1%} tenant-tagged, ${cov['untagged']:,.2f} untagged by mistake)"
        if total else "Tag coverage: no cost",
        "Where the money went: " + "; ".join(f"{b} ${c:,.2f}" for b, c in alloc.iter_rows()),
        f"Customers on {hi}: {latest['customers']}, median ${latest['median_cost'] or 0:,.2f}/day, "
        f"max ${latest['max_cost'] or 0:,.2f}/day",
        f"Customers over threshold on {hi}: {latest['p1']} above {cfg.alerts.p1_cost_to_mrr:.0%} "
        f"cost-to-MRR (P1), {latest['p2']} between {cfg.alerts.p2_cost_to_mrr:.0%} and "
        f"{cfg.alerts.p1_cost_to_mrr:.0%} (P2)",
        "Alerts by type: " + (", ".join(f"{t} {k}" for t, k in alerts.iter_rows()) or "none"),
        f"Team spend on {hi}: " + (", ".join(f"{t} ${c:,.2f}" for t, c in teams.iter_rows()) or "none"),
        *k8s_lines,
        *economics_lines(duckdb_path, hi),
        *model_lines,
    ]
    if over is not None:
        lines.append(
            f"Services over their target on {hi}: "
            + ("; ".join(f"{svc} ${c:,.2f} per customer per month against ${t:,.2f} ({r:.1f}x, {o})"
                         for svc, o, c, t, r in over.iter_rows()) or "none")  # fmt: skip
        )
    if incidents is not None:
        lines.append(
            f"Alert incidents: {incidents['total']} in all, {incidents['open']} open on {hi}, "
            f"{incidents['resolved']} resolved"
            + ("; latest resolved: " + "; ".join(f"{n} ({f}) opened {o}, resolved {r} after {d} days"
                                                for n, f, o, r, d in resolved.iter_rows()) if resolved.height else "")  # fmt: skip
        )
    page = (dashboard_dir or duckdb_path.parent / "dashboards") / f"unitcost-dashboard-{hi}.html"
    if page.exists():
        lines.append(f"Dashboard: {page} (open it in a browser)")
    if last_alerts.height:
        lines.append(f"Alerts on {hi}:")
        lines += [f"  {m}" for _, m in last_alerts.iter_rows()]
    return "\n".join(lines)


def economics_lines(duckdb_path: Path, day: object) -> list[str]:
    """The Walk and Run lines of the summary: the freemium line, the lowest-margin tier, the products
    whose cost outgrows their usage and the lowest-margin segment on `day` (nothing for a warehouse
    without those tables)."""
    s = WAREHOUSE_SCHEMA
    try:
        with duckdb.connect(str(duckdb_path), read_only=True) as con:
            segments = _query(con, f"select * from {s}.segment_economics where day = '{day}'")
            products = _query(con, f"select * from {s}.product_cost where day = '{day}'")
    except duckdb.CatalogException:
        return []
    lowest = lowest_margin_tier(segments)
    return [
        f"Freemium on {day}: {freemium_line(segments) or 'no non-paying customers'}",
        f"Lowest-margin tier on {day}: "
        + (f"{lowest['group_name']} (infra margin {lowest['infra_margin']:.1%})" if lowest else "none (no tier has MRR)"),
        f"Products whose cost outgrows their usage on {day}: {outgrowing_line(products) or 'none'}",
        *([f"Lowest-margin segment on {day}: {segment['group_name']} (infra margin {segment['infra_margin']:.1%})"]
          if (segment := lowest_margin_tier(segments, "segment")) else []),
    ]


def _anomaly_forecast_lines(con: duckdb.DuckDBPyConnection, s: str) -> list[str]:
    """Unit-cost anomalies, projected crossings and the 14-day cost-forecast backtest (issue 16)."""
    tables = set(_query(con, f"select table_name from information_schema.tables where table_schema = '{s}'")["table_name"])
    if not {"cost_anomalies", "margin_forecast"} <= tables:
        return []
    found = _query(con, f"""
        select count(*) n, count(distinct customer_id) customers, coalesce(sum(impact), 0) impact
        from {s}.cost_anomalies where is_anomaly""").row(0, named=True)
    soon = _query(con, f"""
        select count(*) filter (where days_to_p2 between 1 and 30) p2, count(*) filter (where days_to_p1 between 1 and 30) p1,
               max(day) as last_day
        from {s}.margin_forecast where day = (select max(day) from {s}.margin_forecast)""").row(0, named=True)
    warned = _query(con, f"select count(*) n from {s}.margin_forecast where is_forecast_alert").row(0, named=True)
    result = backtest(_query(con, f"select day, customer_id, total_cost from {s}.unit_cost"))
    error = "n/a (fewer than 74 days)" if result["median_ape"] is None else f"{result['median_ape']:.1%}"
    return [
        f"Unit-cost anomalies: {found['n']} ({found['customers']} customers, ${found['impact']:,.2f} of impact on their days)",
        f"Margin forecast on {soon['last_day']}: {soon['p2']} customers projected to cross P2 and {soon['p1']} P1 within "
        f"30 days; FORECAST alerts over the period: {warned['n']}",
        f"Cost forecast backtest (14 days ahead, customers with 60+ days of history): median absolute "
        f"percentage error {error} over {result['forecasts']:,} forecasts of {result['customers']} customers",
    ]


def _summary(args: argparse.Namespace) -> int:
    settings = Settings.from_env()
    path = Path(args.duckdb) if args.duckdb else settings.duckdb_path
    print(summarize(path, settings.config_path, None if args.duckdb else settings.dashboard_dir))
    return 0


BENCH_BACKFILL_DAYS = 365


def _bench(args: argparse.Namespace) -> int:
    from unitcost_platform.benchmark.run import main as bench_main

    sizes = [s.strip() for s in args.sizes.split(",") if s.strip()]
    if args.no_backfill:
        backfill = None
    elif args.backfill_days is not None:
        backfill = args.backfill_days
    else:  # the default: 365 days with the in-process figures, none with --dagster
        backfill = None if args.dagster else BENCH_BACKFILL_DAYS
    if args.history_days and not args.dagster:
        raise UnitcostError("--history-days measures the real path: add --dagster")
    return bench_main(
        sizes, args.runs, Path(args.work_dir), backfill, log=_progress, dagster=args.dagster, history_days=args.history_days
    )


def _progress(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def _receiver(args: argparse.Namespace) -> int:
    """A local stand-in for Slack and webhooks: prints one line per message it receives."""

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            body = json.loads(self.rfile.read(int(self.headers.get("content-length", 0))) or b"{}")
            title = body.get("alert_id") or body.get("title") or body.get("text", "")
            print(f"{self.path.strip('/') or '/'}: {str(title)[:160]}", flush=True)
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *_: object) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"listening on http://127.0.0.1:{args.port}/<destination> (Ctrl-C to stop)", flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        server.serve_forever()
    return 0


def _at_least(minimum: int):
    """An argparse type: an integer of at least `minimum`, refused with a message otherwise."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"must be at least {minimum}, got {value}")
        return value

    return parse


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="unitcost", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    def demo_args(p: argparse.ArgumentParser) -> None:
        p.add_argument("--start", type=dt.date.fromisoformat, default=DEMO_START_DATE, help="first day (YYYY-MM-DD)")
        p.add_argument("--days", type=_at_least(1), default=DEMO_DAYS, help="number of days")

    gen = sub.add_parser("demo-data", help="write the demo SaaS (billing, usage, customers) into a data dir")
    gen.add_argument("--out", help="data dir (default: $UNITCOST_DATA_DIR or data/demo)")
    gen.add_argument("--seed", type=int, default=7)
    gen.add_argument("--customers", type=_at_least(1), default=1000)
    demo_args(gen)
    gen.set_defaults(func=_demo_data)

    rng = sub.add_parser("demo-range", help="print the demo's partition range as START...END")
    demo_args(rng)
    rng.set_defaults(func=_demo_range)

    summ = sub.add_parser("summary", help="print what the pipeline computed, from the warehouse")
    summ.add_argument("--duckdb", help="warehouse file (default: $UNITCOST_DUCKDB_PATH)")
    summ.set_defaults(func=_summary)

    bench = sub.add_parser("bench", help="measure the pipeline at scale against a DuckDB SQL baseline; print the figures")
    bench.add_argument("--sizes", default="1m,10m", help="comma-separated: smoke, 1m, 10m, 100m (default 1m,10m)")
    bench.add_argument("--runs", type=_at_least(1), default=3, help="runs per size; figures are medians (default 3)")
    bench.add_argument("--work-dir", default="data/bench", help="where scale data is generated and kept")
    bench.add_argument("--backfill-days", type=_at_least(1), default=None,
                       help=f"days of the demo backfill through Dagster (default {BENCH_BACKFILL_DAYS}; "
                            "with --dagster, no backfill unless given)")  # fmt: skip
    bench.add_argument("--no-backfill", action="store_true", help="skip the demo backfill")
    bench.add_argument(
        "--dagster", action="store_true",
        help="measure the real path instead of the in-process stages: per size, every asset of one day in one "
             "`dagster asset materialize` process (fresh DAGSTER_HOME and warehouse): each step's seconds, the "
             "whole process, the peak RSS of all its processes, the rows loaded into Python, and the ratio to "
             "the DuckDB SQL baseline's process. The in-process stages, ours/baseline comparison and the demo "
             "backfill (unless --backfill-days is given) are not run",
    )  # fmt: skip
    bench.add_argument(
        "--history-days", type=_at_least(0), default=0,
        help="with --dagster: measure the day after this many days of history (materialized once, in one range "
             "run, not measured; each measured run starts from a copy), as every production day but the first is "
             "(default 0: the first day, nothing in the trailing windows)",
    )  # fmt: skip
    bench.set_defaults(func=_bench)

    recv = sub.add_parser("webhook-receiver", help="print messages POSTed to http://127.0.0.1:PORT/<destination>")
    recv.add_argument("--port", type=int, default=8787)
    recv.set_defaults(func=_receiver)

    args = parser.parse_args(argv)
    try:
        return args.func(args)
    except UnitcostError as exc:  # a message written for the person running the command, not a traceback
        print(f"unitcost: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
