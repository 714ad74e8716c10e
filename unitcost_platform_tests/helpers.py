"""Builders for small, hand-checkable inputs: billing rows, usage, customers, data dirs."""

import datetime as dt
import json
import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import dagster as dg
import polars as pl

from unitcost_platform.contracts import focus
from unitcost_platform.contracts.customers import VERSION_SCHEMA
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.defs.resources import secret
from unitcost_platform.sources.connector import Connector
from unitcost_platform.transforms.customers import customer_dimension

D = dt.date(2026, 3, 10)

SERVICE_CATEGORY = {
    "Amazon EC2": "Compute",
    "AWS Lambda": "Compute",
    "NAT Gateway": "Networking",
    "Amazon RDS": "Databases",
    "Amazon CloudWatch": "Management and Governance",
    "AWS Support": "Other",
    "AWS Security Hub": "Security",
}


def billing(rows: list[dict], cost_column: str = "EffectiveCost") -> pl.DataFrame:
    """raw_billing rows from short dicts: day, cost, service, tenant, resource, category."""
    records = []
    for i, r in enumerate(rows):
        day = r.get("day", D)
        service = r.get("service", "Amazon EC2")
        cost = r["cost"]
        records.append({
            "x_ChargeDate": day,
            "ChargePeriodStart": dt.datetime.combine(day, dt.time(r.get("hour", 0))),
            "ChargePeriodEnd": dt.datetime.combine(day, dt.time(r.get("hour", 0))) + dt.timedelta(hours=1),
            "BilledCost": r.get("billed", cost),
            "EffectiveCost": cost,
            "BillingCurrency": "USD",
            "ChargeCategory": r.get("charge", "Credit" if cost < 0 else "Usage"),
            "ProviderName": r.get("provider", "AWS"),
            "ServiceName": service,
            "ServiceCategory": r.get("category", SERVICE_CATEGORY.get(service, "Other")),
            "ResourceId": r.get("resource", f"res-{i}"),
            "SubAccountId": r.get("sub_account", "111"),
            "Tags": json.dumps({"tenant_id": r["tenant"]}) if r.get("tenant") else r.get("tags"),
            "x_TenantId": r.get("tenant"),
            "x_IsFinal": r.get("final", True),
            "x_Source": "test",
            "x_SourceFile": "test.csv",
            "x_SourceRow": i + 1,
            "x_SpreadFraction": 1.0,
        })  # fmt: skip
    return focus.conform(pl.DataFrame(records, infer_schema_length=None))


def usage(rows: list[tuple], day: dt.date = D) -> pl.DataFrame:
    """tenant_usage from (tenant, metric, value) or (tenant, metric, value, day) tuples."""
    records = [
        {"usage_date": r[3] if len(r) > 3 else day, "tenant_id": r[0], "service_name": None,
         "metric": r[1], "value": float(r[2]), "source": "test"}
        for r in rows
    ]  # fmt: skip
    return pl.DataFrame(records, schema=USAGE_SCHEMA)


def customer_versions(rows: list[dict]) -> pl.DataFrame:
    """Customer versions with defaults: active, smb, mrr 100, open validity."""
    records = []
    for i, r in enumerate(rows):
        records.append({
            "customer_id": r["customer_id"],
            "tenant_id": r.get("tenant_id", r["customer_id"].lower()),
            "customer_name": r.get("customer_name"),
            "tier": r.get("tier", "smb"),
            "is_paying": r.get("is_paying"),
            "mrr": float(r.get("mrr", 100.0)),
            "status": r.get("status", "active"),
            "segment": r.get("segment"),
            "valid_from": r.get("valid_from"),
            "valid_to": r.get("valid_to"),
            "x_Where": f"customers.csv row {i + 1}",
        })  # fmt: skip
    return pl.DataFrame(records, schema=VERSION_SCHEMA)


def customers(rows: list[dict], days: list[dt.date] | None = None) -> pl.DataFrame:
    """customer_dimension snapshots of `days` (default: D)."""
    return customer_dimension(customer_versions(rows), days or [D], ["trial", "free"])


FOCUS_HEADER = [
    "BilledCost", "EffectiveCost", "BillingCurrency", "ChargePeriodStart", "ChargePeriodEnd",
    "ChargeCategory", "ProviderName", "ServiceName", "ServiceCategory", "ResourceId", "SubAccountId", "Tags",
]  # fmt: skip


def focus_csv(path: Path, rows: list[dict]) -> Path:
    """A FOCUS CSV file; each row: day, hour, cost, service, tenant (optional) and overrides."""
    records = []
    for r in rows:
        start = dt.datetime.combine(r["day"], dt.time(r.get("hour", 0)))
        service = r.get("service", "Amazon EC2")
        tags = json.dumps({"tenant_id": r["tenant"]}) if r.get("tenant") else "NULL"
        record = {
            "BilledCost": str(r["cost"]), "EffectiveCost": str(r["cost"]), "BillingCurrency": "USD",
            "ChargePeriodStart": start.strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ChargePeriodEnd": (start + dt.timedelta(hours=r.get("hours", 1))).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "ChargeCategory": "Usage", "ProviderName": "AWS", "ServiceName": service,
            "ServiceCategory": SERVICE_CATEGORY.get(service, "Other"),
            "ResourceId": r.get("resource", f"arn:aws:{service.lower().replace(' ', '-')}:{r.get('tenant', 'shared')}"),
            "SubAccountId": "111122223333", "Tags": tags,
        }  # fmt: skip
        record.update({k: v for k, v in r.items() if k in FOCUS_HEADER and k not in ("ChargePeriodStart",)})
        records.append(record)
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(records, schema={c: pl.String for c in FOCUS_HEADER}).write_csv(path)
    return path


def write_usage_csv(path: Path, rows: list[tuple]) -> Path:
    """usage CSV from (day, tenant, metric, value) tuples."""
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        [{"usage_date": d.isoformat(), "tenant_id": t, "service_name": "", "metric": m, "value": v} for d, t, m, v in rows],
        schema={"usage_date": pl.String, "tenant_id": pl.String, "service_name": pl.String, "metric": pl.String, "value": pl.Float64},
    ).write_csv(path)
    return path


def write_customers_csv(path: Path, rows: list[dict]) -> Path:
    columns = ["customer_id", "tenant_id", "customer_name", "tier", "mrr", "status", "segment", "valid_from", "valid_to"]
    path.parent.mkdir(parents=True, exist_ok=True)
    pl.DataFrame(
        [{c: (None if r.get(c) is None else str(r[c])) for c in columns} for r in rows],
        schema={c: pl.String for c in columns},
    ).write_csv(path)
    return path


class Recorded:
    """A connector's fetch function with the test seams recorded: waits asked of `sleep`, log lines.

    `defaults` are keyword arguments of every call (a call's own keywords win); `resource` names the
    keyword that gets the connector's resource, wired from the environment as a run gets it."""

    def __init__(self, fetch: Callable[..., pl.DataFrame], resource: tuple[Connector, str] | None = None, **defaults):
        self.fetch, self.defaults, self.resource = fetch, defaults, resource
        self.waits: list[float] = []
        self.lines: list[str] = []

    def __call__(self, cfg, days, **kw) -> pl.DataFrame:
        if self.resource is not None:
            connector, keyword = self.resource
            kw.setdefault(keyword, wired(connector, cfg))
        return self.fetch(cfg, days, sleep=self.waits.append, log=self.lines.append, **{**self.defaults, **kw})


def wired(connector: Connector, source_config):
    """The connector's resource as a run or sensor gets it: secrets wired from the environment
    (defs/resources.py) and resolved by Dagster."""
    with dg.build_resources({"r": connector.resource(source_config, secret)}) as built:
        return built.r


def usage_row(day, tenant, service, metric, value, *, source: str) -> dict:
    """A tenant_usage row as a dict (compare with `usage_rows`)."""
    return {"usage_date": day, "tenant_id": tenant, "service_name": service, "metric": metric, "value": value,
            "source": source}  # fmt: skip


def usage_rows(frame: pl.DataFrame) -> list[dict]:
    """tenant_usage rows in a fixed order, after checking the frame has the table's schema."""
    assert frame.schema == pl.Schema(USAGE_SCHEMA)
    return frame.sort("usage_date", "tenant_id", "service_name", "metric", nulls_last=True).to_dicts()


def duckdb_tables(tables: dict[str, pl.DataFrame]) -> Callable[[str], pl.DataFrame]:
    """An in-memory DuckDB with `tables` in the schema `unitcost`, as the IO manager writes them;
    returns run(sql) -> frame."""
    import duckdb

    con = duckdb.connect()
    con.execute("create schema unitcost")
    for name, frame in tables.items():
        con.register("__frame", frame.to_arrow())
        con.execute(f"create table unitcost.{name} as select * from __frame")
        con.unregister("__frame")
    return lambda sql: pl.from_arrow(con.sql(sql).to_arrow_table())


@contextmanager
def fake_snowflake_tables(tables: dict[str, pl.DataFrame]) -> Iterator[Callable[[str], pl.DataFrame]]:
    """A fake Snowflake (fakesnow) with `tables` in ANALYTICS.UNITCOST, written through `write_pandas`
    with upper-case names as the Snowflake IO manager writes them; yields run(sql) -> frame, its
    column names in lower case."""
    import fakesnow
    import snowflake.connector
    import snowflake.connector.pandas_tools

    with fakesnow.patch():
        con = snowflake.connector.connect(account="acme-test", user="x", password="y", database="ANALYTICS")
        cur = con.cursor()
        cur.execute("create schema if not exists ANALYTICS.UNITCOST")
        for name, frame in tables.items():
            pandas = frame.to_pandas()
            for column, dtype in frame.schema.items():  # a null makes a plain bool column object (text)
                if dtype == pl.Boolean:
                    pandas[column] = pandas[column].astype("boolean")
            pandas.columns = [c.upper() for c in pandas.columns]
            snowflake.connector.pandas_tools.write_pandas(
                con, pandas, name.upper(), database="ANALYTICS", schema="UNITCOST", quote_identifiers=False,
                auto_create_table=True, use_logical_type=True,
            )  # fmt: skip

        def run(sql: str) -> pl.DataFrame:
            cur.execute(sql)
            result = pl.from_pandas(cur.fetch_pandas_all())
            return result.rename({c: c.lower() for c in result.columns})

        try:
            yield run
        finally:
            con.close()


def random_tenant_usage(seed: int, first: dt.date, days: int = 20) -> tuple[pl.DataFrame, pl.DataFrame]:
    """(tenant_usage, customer_dimension's snapshot_date, tenant_id, customer_id, status): `days` days
    from `first`, 60 tenants of 25 customers (reassigned now and then), 2 services and 3 metrics, with
    gaps on both sides: a tenant missing from the dimension on a day, a metric missing from usage."""
    rng = random.Random(seed)
    usage, dimension = [], []
    owner = {f"t{t:02d}": f"C{rng.randrange(25):02d}" for t in range(60)}
    for offset in range(days):
        day = first + dt.timedelta(days=offset)
        for tenant in owner:
            if rng.random() < 0.05:
                owner[tenant] = f"C{rng.randrange(25):02d}"
            if rng.random() < 0.9:
                dimension.append((day, tenant, owner[tenant], "active"))
            for service in ("api", "web"):
                for metric in ("requests", "storage_bytes", "sessions"):
                    if rng.random() < 0.7:
                        usage.append((day, tenant, service, metric, round(rng.random() * 1000, 3), "files"))
    schema = {"snapshot_date": pl.Date, "tenant_id": pl.String, "customer_id": pl.String, "status": pl.String}
    return (pl.DataFrame(usage, schema=USAGE_SCHEMA, orient="row"),
            pl.DataFrame(dimension, schema=schema, orient="row"))  # fmt: skip


def warehouse_allocate(
    billing: pl.DataFrame, usage: pl.DataFrame, customers: pl.DataFrame, days: list[dt.date], pools, cost_column: str,
    run: Callable[[str], pl.DataFrame] | None = None, dialect=None,
) -> pl.DataFrame:
    """`allocate`'s result computed by the warehouse (`allocation_sql`) over the same frames as tables:
    an in-memory DuckDB unless `run` (say `fake_snowflake_tables`) and its `dialect` are given."""
    from unitcost_platform.transforms.allocation import ALLOCATED_COST_SCHEMA, allocation_sql
    from unitcost_platform.warehouse_sql import DUCKDB

    if run is None:
        run = duckdb_tables({"raw_billing": billing, "tenant_usage": usage, "customer_dimension": customers})
    frame = run(allocation_sql(days, pools, cost_column, lambda name: f"unitcost.{name}", dialect or DUCKDB))
    return frame.select(list(ALLOCATED_COST_SCHEMA)).cast(ALLOCATED_COST_SCHEMA)


def selected_rows_assets(partitions, produce: Callable[[str], pl.DataFrame], broken: bool = False) -> tuple[list, list]:
    """`upstream` (a frame per day from `produce`, with day, name and cost) and `doubled`, whose rows
    the warehouse computes from it (`SelectedRows`: each row's cost times two; `broken`: a statement
    that fails in the warehouse after the day was deleted). Returns (assets, the summaries the IO
    manager handed back: one frame per write)."""
    import dagster as dg

    from unitcost_platform.selected import SelectedRows

    summaries: list[pl.DataFrame] = []

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "day"}, name="upstream")
    def upstream(context: dg.AssetExecutionContext) -> pl.DataFrame:
        return produce(context.partition_key)

    @dg.asset(partitions_def=partitions, metadata={"partition_expr": "day"}, deps=[upstream])
    def doubled(context: dg.AssetExecutionContext) -> SelectedRows:
        first, last = context.partition_key_range.start, context.partition_key_range.end
        cost = "cast('not a number' as double)" if broken else "cost * 2"
        return SelectedRows(
            {"day": pl.Date(), "name": pl.String(), "cost": pl.Float64()},
            lambda table, dialect: (
                f"select day, name, {cost} as cost from {table('upstream')} "
                f"where day >= {dialect.date(first)} and day <= {dialect.date(last)}"
            ),
            reads=["upstream"],
            summary=lambda rows, dialect: f"select day, count(*) as row_count, sum(cost) as cost from ({rows}) as r group by day",
            summary_schema={"day": pl.Date(), "row_count": pl.Int64(), "cost": pl.Float64()},
            summarized=summaries.append,
        )

    return [upstream, doubled], summaries
