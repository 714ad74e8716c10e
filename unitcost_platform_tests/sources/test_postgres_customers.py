"""The customer dimension from the real PostgreSQL on this machine (a throwaway database per module)."""

import datetime as dt
import os
import uuid

import dagster as dg
import polars as pl
import psycopg
import pytest

from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.customers.postgres import (
    PostgresCustomers,
    ProductDatabaseError,
    read_postgres_customers,
)
from unitcost_platform.transforms.customers import customer_dimension

ADMIN_DSN = os.environ.get("UNITCOST_TEST_POSTGRES", "postgresql://root@127.0.0.1:5432/postgres")
D1, D5, D10 = dt.date(2026, 3, 1), dt.date(2026, 3, 5), dt.date(2026, 3, 10)
QUERY = """
    SELECT id AS customer_id, tenant AS tenant_id, name AS customer_name, plan AS tier,
           monthly_revenue AS mrr, state AS status, region AS segment, starts AS valid_from, ends AS valid_to
    FROM customers
    WHERE (ends IS NULL OR ends > %(first_day)s) AND (starts IS NULL OR starts <= %(last_day)s)
"""


@pytest.fixture(scope="module")
def product_db():
    name = f"unitcost_test_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    dsn = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname=name)
    yield dsn
    with psycopg.connect(ADMIN_DSN, autocommit=True) as admin:
        admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def customers_table(product_db):
    """A fresh `customers` table; returns a function that inserts rows."""
    with psycopg.connect(product_db, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS customers")
        con.execute("""CREATE TABLE customers (
            id integer, tenant text, name text, plan text, monthly_revenue numeric(12, 2),
            state text, region text, starts date, ends date)""")

    def insert(*rows: tuple) -> None:
        with psycopg.connect(product_db, autocommit=True) as con, con.cursor() as cur:
            cur.executemany("INSERT INTO customers VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s)", rows)

    return insert


def _read(dsn: str, days, query=QUERY, timeout=30_000):
    cfg = PostgresCustomers(query=query, statement_timeout_ms=timeout)
    return read_postgres_customers(cfg, list(days), normalize="lower", dsn=dsn)


def test_historical_snapshot_gives_each_day_its_tier_and_mrr(product_db, customers_table):
    customers_table(
        (1, "Acme", "Acme Inc", "trial", 0, "active", "europe", None, D5),
        (1, "Acme", "Acme Inc", "smb", 499.99, "active", "europe", D5, None),
        (2, "beta-1", "Beta", "enterprise", 30000, "active", "apac", None, None),
        (2, "beta-2", "Beta", "enterprise", 30000, "active", "apac", None, None),
        (3, "gone", "Gone Ltd", "smb", 100, "active", "europe", None, dt.date(2026, 2, 1)),  # ended before the range
    )
    versions = _read(product_db, [D1, D10])
    assert sorted(versions["customer_id"].unique()) == ["1", "2"]  # the bound first_day filtered customer 3
    snap = customer_dimension(versions, [D1, D10], ["trial", "free"])
    acme = snap.filter(pl.col("customer_id") == "1").sort("snapshot_date")
    assert acme.select("snapshot_date", "tier", "mrr", "is_paying", "tenant_id").rows() == [
        (D1, "trial", 0.0, False, "acme"), (D10, "smb", 499.99, True, "acme"),
    ]  # fmt: skip
    assert sorted(snap.filter((pl.col("customer_id") == "2") & (pl.col("snapshot_date") == D10))["tenant_id"]) == ["beta-1", "beta-2"]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([(1, "t", "A", "smb", 10, "active", "eu", None, None), (1, "t", "A", "smb", 10, "active", "eu", None, None)],
         "tenant 't' is listed more than once for customer 1"),
        ([(1, "t", "A", "smb", -10, "active", "eu", None, None)], "customers query row 1 (customer 1, status=active mrr=-10.0) has a negative mrr"),
        ([(1, "t", "A", "smb", 10, "suspended", "eu", None, None)], "has an unknown status: status is one of active, churned"),
        ([(1, "t", "A", "smb", 10, "active", "eu", None, None), (2, "t", "B", "smb", 10, "active", "eu", D5, None)],
         "tenant 't' is mapped to customers 1, 2 on 2026-03-10..2026-03-10"),
    ],
)  # fmt: skip
def test_validation_errors_name_the_row(product_db, customers_table, rows, message):
    customers_table(*rows)
    with pytest.raises(InputDataError) as err:
        customer_dimension(_read(product_db, [D1, D10]), [D1, D10], ["trial", "free"])
    assert message in str(err.value)


def test_missing_columns_are_named(product_db, customers_table):
    with pytest.raises(InputDataError, match="it must also return tier, mrr, status"):
        _read(product_db, [D1], query="SELECT id AS customer_id, tenant AS tenant_id FROM customers")


def test_statement_timeout(product_db, customers_table):
    customers_table((1, "t", "A", "smb", 10, "active", "eu", None, None))
    slow = "SELECT c.*, c.id AS customer_id, c.tenant AS tenant_id, c.plan AS tier, c.monthly_revenue AS mrr, c.state AS status FROM customers c, pg_sleep(3)"
    with pytest.raises(ProductDatabaseError, match=r"ran longer than customers.postgres.statement_timeout_ms \(200 ms\)"):
        _read(product_db, [D1], query=slow, timeout=200)


def test_the_connection_is_read_only(product_db, customers_table):
    writer = ("INSERT INTO customers VALUES (9, 'x', 'X', 'smb', 1, 'active', 'eu', NULL, NULL) "
              "RETURNING id AS customer_id, tenant AS tenant_id, plan AS tier, monthly_revenue AS mrr, state AS status")  # fmt: skip
    with pytest.raises(ProductDatabaseError, match="tried to write"):
        _read(product_db, [D1], query=writer)
    with psycopg.connect(product_db) as con:
        assert con.execute("SELECT count(*) FROM customers WHERE id = 9").fetchone() == (0,)


def test_connection_errors_hide_the_password_and_a_missing_dsn_names_the_variable(product_db, monkeypatch):
    bad = psycopg.conninfo.make_conninfo(ADMIN_DSN, dbname="no_such_db_here", password="hunter2-s3cret")
    with pytest.raises(ProductDatabaseError) as err:
        _read(bad, [D1])
    assert "no_such_db_here" in str(err.value) and "hunter2-s3cret" not in str(err.value)
    monkeypatch.delenv("UNITCOST_PRODUCT_DB_DSN", raising=False)
    with pytest.raises(ProductDatabaseError, match="environment variable UNITCOST_PRODUCT_DB_DSN is not set"):
        read_postgres_customers(PostgresCustomers(query=QUERY), [D1], normalize="lower")


def test_customer_dimension_asset_from_postgres(product_db, customers_table, small_saas, make_settings, monkeypatch):
    """Through Dagster: the DSN from the environment, the small SaaS's customers from the database."""
    customers_table(
        (1, "t1", "One", "mid-market", 3000, "active", "na", None, None),
        (2, "t2", "Two", "smb", 900, "active", "na", None, None),
        (3, "tf", "Free", "free", 0, "active", "na", None, None),
    )
    config = small_saas / "unitcost.yaml"
    config.write_text(
        f'customers:\n  files: null\n  postgres:\n    query: "{" ".join(QUERY.split())}"\n' + config.read_text()
    )
    monkeypatch.setenv("UNITCOST_PRODUCT_DB_DSN", product_db)
    from unitcost_platform_tests.saas import read_table, run_range

    settings = make_settings(small_saas)
    assert run_range(settings, D10, D10, instance=dg.DagsterInstance.ephemeral()).success
    dim = read_table(settings, "customer_dimension")
    assert dim.select("customer_id", "tenant_id", "mrr").sort("customer_id").rows() == [
        ("1", "t1", 3000.0), ("2", "t2", 900.0), ("3", "tf", 0.0),
    ]  # fmt: skip
    assert read_table(settings, "unit_cost")["customer_id"].sort().to_list() == ["1", "2", "3"]


@pytest.fixture
def loose_table(product_db):
    """A product table typed as real ones often are: MRR as float, validity dates as text."""
    with psycopg.connect(product_db, autocommit=True) as con:
        con.execute("DROP TABLE IF EXISTS loose")
        con.execute("CREATE TABLE loose (id integer, tenant text, plan text, mrr double precision, state text, starts text)")

    def insert(*rows: tuple) -> None:
        with psycopg.connect(product_db, autocommit=True) as con, con.cursor() as cur:
            cur.executemany("INSERT INTO loose VALUES (%s, %s, %s, %s, %s, %s)", rows)

    return insert


LOOSE_QUERY = "SELECT id AS customer_id, tenant AS tenant_id, plan AS tier, mrr, state AS status, starts AS valid_from FROM loose ORDER BY id"


def test_a_nan_mrr_from_the_database_is_refused(product_db, loose_table):
    loose_table((1, "a", "smb", 900.0, "active", None), (2, "b", "smb", float("nan"), "active", None))
    with pytest.raises(InputDataError) as err:
        customer_dimension(_read(product_db, [D1], query=LOOSE_QUERY), [D1], ["trial", "free"])
    assert "customers query row 2 (customer 2, status=active mrr=NaN) has an mrr that is not a finite number" in str(err.value)


def test_a_validity_date_that_is_not_a_date_is_refused_naming_the_row(product_db, loose_table):
    loose_table((1, "a", "smb", 900.0, "active", "2026-03-01"), (2, "b", "smb", 10.0, "active", "soon"),
                (3, "c", "smb", 10.0, "active", "2026-03-01 and later"))  # fmt: skip
    with pytest.raises(InputDataError) as err:
        _read(product_db, [D1], query=LOOSE_QUERY)
    text = str(err.value)
    assert "customers query row 2 (customer 2) has valid_from 'soon', which is not a date" in text
    assert "customers query row 3 (customer 3) has valid_from '2026-03-01 and later', which is not a date" in text
