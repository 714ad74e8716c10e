"""The customer dimension from the product database (PostgreSQL), through a configured query.

The connection is read-only (the session's transactions are READ ONLY, so the query cannot write),
the query gets the day range as bound parameters (`%(first_day)s`, `%(last_day)s`) and runs under
a statement timeout. It returns the customer columns (customer_id, tenant_id, tier, mrr, status and
optionally customer_name, is_paying, segment, valid_from, valid_to); `valid_from`/`valid_to` make
the snapshot historical, so a backfilled day sees the tier and MRR it had then. The rows then go
through the same validation as the customer files.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from decimal import Decimal
from typing import TYPE_CHECKING

import polars as pl
from pydantic import Field

from unitcost_platform.config_base import Model
from unitcost_platform.contracts.customers import VERSION_SCHEMA
from unitcost_platform.contracts.tenant_key import tenant_key_expr
from unitcost_platform.errors import InputDataError, UnitcostError
from unitcost_platform.sources.connector import Connector, ReadContext, Secret, lazy_resources
from unitcost_platform.sources.customers.files import OPTIONAL, REQUIRED
from unitcost_platform.sources.usage.files import parse_date

if TYPE_CHECKING:
    import dagster as dg


class PostgresCustomers(Model):
    """The product database: a read-only query returning the customer columns (see the README)."""

    dsn_env: str = Field(default="UNITCOST_PRODUCT_DB_DSN", description="env var holding the connection string (a secret)")
    query: str = Field(description="SQL returning customer_id, tenant_id, tier, mrr, status (+ optional columns); "
                       "may use %(first_day)s and %(last_day)s")
    statement_timeout_ms: int = Field(default=30_000, ge=100)


TEXT_COLUMNS = ["customer_id", "tenant_id", "customer_name", "tier", "status", "segment"]


class ProductDatabaseError(UnitcostError):
    """The product database could not be reached or the customers query failed."""


def _resources() -> dict[str, type]:
    import dagster as dg

    class ProductDatabaseResource(dg.ConfigurableResource):
        """The product database's connection string (from customers.postgres's dsn_env, wired in
        defs/resources.py)."""

        dsn: str | None = None

    return {"ProductDatabaseResource": ProductDatabaseResource}


__getattr__ = lazy_resources(_resources)


def make_resource(cfg: PostgresCustomers | None, secret: Secret) -> dg.ConfigurableResource:
    resource = __getattr__("ProductDatabaseResource")
    return resource(dsn=secret(cfg.dsn_env)) if cfg else resource()


def _dsn(cfg: PostgresCustomers, dsn: str | None) -> str:
    if not dsn:
        raise ProductDatabaseError(
            f"environment variable {cfg.dsn_env} is not set: it holds the product database connection "
            "string (postgresql://user:password@host:5432/db) that customers.postgres reads"
        )
    return dsn


def _scrub(text: str, dsn: str) -> str:
    """Error text without the connection string's password (libpq may echo parts of the DSN)."""
    import psycopg

    try:
        password = psycopg.conninfo.conninfo_to_dict(dsn).get("password")
    except psycopg.ProgrammingError:
        password = None
    text = text.replace(dsn, "<dsn>")
    return text.replace(password, "***") if password else text


def _date(value: object) -> dt.date | None:
    """A DATE, TIMESTAMP(TZ) or ISO text column as a UTC day; ValueError for anything else."""
    if value is None or isinstance(value, dt.date) and not isinstance(value, dt.datetime):
        return value  # type: ignore[return-value]
    if isinstance(value, dt.datetime):
        return (value.astimezone(dt.UTC) if value.tzinfo else value).date()
    parsed = parse_date(pl.Series([str(value)]))[0]
    if parsed is None:
        raise ValueError(value)
    return parsed


def query_customers(
    cfg: PostgresCustomers, days: list[dt.date], *, dsn: str | None = None, log: Callable[[str], None] | None = None
) -> tuple[list[str], list[tuple]]:
    """Run the configured query read-only: its column names and rows."""
    import psycopg  # here, not at import: every transform imports this module's config model

    dsn = _dsn(cfg, dsn)
    params = {"first_day": min(days), "last_day": max(days)} if "%(" in cfg.query else None
    options = f"-c statement_timeout={cfg.statement_timeout_ms} -c default_transaction_read_only=on"
    try:
        with psycopg.connect(dsn, options=options, connect_timeout=10) as connection:
            connection.read_only = True
            with connection.cursor() as cursor:
                cursor.execute(cfg.query, params)
                columns = [c.name for c in cursor.description or []]
                rows = cursor.fetchall()
    except psycopg.errors.QueryCanceled:
        raise ProductDatabaseError(
            f"the customers query ran longer than customers.postgres.statement_timeout_ms "
            f"({cfg.statement_timeout_ms} ms); make it cheaper (an index on the validity columns) or raise the timeout"
        ) from None
    except psycopg.errors.ReadOnlySqlTransaction:
        raise ProductDatabaseError(
            "the customers query tried to write: the product database is read through a read-only "
            "session; customers.postgres.query must be a SELECT"
        ) from None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise ProductDatabaseError(
            f"product database ({cfg.dsn_env}): {type(exc).__name__}: {_scrub(first, dsn)}"
        ) from None
    if log:
        log(f"product database: {len(rows)} customer row(s) for {min(days)}..{max(days)}")
    return columns, rows


def read_postgres_customers(
    cfg: PostgresCustomers,
    days: list[dt.date],
    *,
    normalize: str,
    dsn: str | None = None,
    log: Callable[[str], None] | None = None,
) -> pl.DataFrame:
    """Customer versions (VERSION_SCHEMA) from the product database; raises naming what is wrong."""
    columns, rows = query_customers(cfg, days, dsn=dsn, log=log)
    missing = [c for c in REQUIRED if c not in columns]
    if missing:
        raise InputDataError(
            [f"the customers query returns {', '.join(columns) or 'no columns'}; it must also return "
             f"{', '.join(missing)} (alias the columns: SELECT id AS customer_id, ...)"],
            what="the product database",
        )  # fmt: skip
    index = {c: columns.index(c) for c in REQUIRED + OPTIONAL if c in columns}
    problems, records = [], []
    for n, row in enumerate(rows, 1):
        where = f"customers query row {n}"
        record = {c: row[i] for c, i in index.items()}
        for column in TEXT_COLUMNS:
            if record.get(column) is not None:
                record[column] = str(record[column])
        mrr = record.get("mrr")
        try:
            record["mrr"] = None if mrr is None else float(mrr if isinstance(mrr, (int, float, Decimal)) else str(mrr))
        except ValueError:
            problems.append(f"{where} (customer {record.get('customer_id')}) has mrr {mrr!r}, which is not a number.")
        paying = record.get("is_paying")
        if paying is not None and not isinstance(paying, bool):
            problems.append(f"{where} (customer {record.get('customer_id')}): is_paying must be a boolean, got {paying!r}.")
        for column in ("valid_from", "valid_to"):
            try:
                record[column] = _date(record.get(column))
            except ValueError:
                problems.append(
                    f"{where} (customer {record.get('customer_id')}) has {column} {record.get(column)!r}, which is not "
                    "a date; return a DATE or TIMESTAMP column (or YYYY-MM-DD text), NULL for an open range."
                )
                record[column] = None
        records.append({**{c: None for c in VERSION_SCHEMA}, **record, "x_Where": where})
    if problems:
        raise InputDataError(problems, what="the product database")
    frame = pl.DataFrame({c: [r[c] for r in records] for c in VERSION_SCHEMA}, schema=VERSION_SCHEMA)
    return frame.with_columns(
        pl.col("customer_id").str.strip_chars(),
        tenant_key_expr(pl.col("tenant_id"), normalize).alias("tenant_id"),
    )


def read(context: ReadContext, cfg: PostgresCustomers, days: list[dt.date]) -> pl.DataFrame:
    if not days:
        return pl.DataFrame(schema=VERSION_SCHEMA)
    return read_postgres_customers(cfg, days, normalize=context.cfg.tenant.normalize, dsn=context.resource.dsn, log=context.log)


CONNECTOR = Connector(
    name="postgres", kind="customers", config_key="postgres", read=read, restatement="none",
    config_model=PostgresCustomers, resource_key="product_db", make_resource=make_resource,
)  # fmt: skip
