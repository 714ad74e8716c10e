"""Usage and customer files: the long format, historical customer rows, and every validation error."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.customers import customer_dimension
from unitcost_platform_tests.helpers import D, write_customers_csv, write_usage_csv

D2 = D + dt.timedelta(days=1)


def test_usage_long_format_normalizes_tenants_and_sums_repeats(tmp_path):
    path = write_usage_csv(tmp_path / "u.csv", [
        (D, " Acme ", "requests", 10), (D, "acme", "requests", 5), (D, "acme", "storage_bytes", 7),
        (D2, "acme", "requests", 99),
    ])  # fmt: skip
    out = read_usage_files([path], [D], normalize="lower")
    assert out.select("tenant_id", "metric", "value").sort("metric").rows() == [
        ("acme", "requests", 15.0), ("acme", "storage_bytes", 7.0),
    ]  # fmt: skip
    assert out["service_name"].null_count() == 2  # empty service_name is missing


def test_usage_parquet_without_service_column(tmp_path):
    pl.DataFrame({"usage_date": [D], "tenant_id": ["T"], "metric": ["tokens"], "value": [3]}).write_parquet(tmp_path / "u.parquet")
    out = read_usage_files([tmp_path / "u.parquet"], [D], normalize="none")
    assert out.select("tenant_id", "metric", "value").rows() == [("T", "tokens", 3.0)]


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ((D, "a", "requests", "many"), "column value has 1 non-numeric value(s): row 1 (line 2) 'many'"),
        ((D, "a", "requests", "-4"), "column value has 1 missing or negative value(s): row 1 (line 2)"),
        ((D, "", "requests", "4"), "row(s) without a tenant_id"),
        (("03/10/2026", "a", "requests", "4"), "column usage_date has 1 missing or unreadable date(s): row 1 (line 2) '03/10/2026'"),
    ],
)
def test_usage_errors_name_the_row(tmp_path, row, message):
    path = tmp_path / "u.csv"
    day = row[0].isoformat() if isinstance(row[0], dt.date) else row[0]
    path.write_text(f"usage_date,tenant_id,service_name,metric,value\n{day},{row[1]},,{row[2]},{row[3]}\n")
    with pytest.raises(InputDataError) as err:
        read_usage_files([path], [D], normalize="lower")
    assert message in str(err.value) and str(path) in str(err.value)


def test_usage_missing_column_and_duplicate_files(tmp_path):
    bad = tmp_path / "bad.csv"
    bad.write_text("day,tenant_id,metric,value\n2026-03-10,a,requests,1\n")
    with pytest.raises(InputDataError, match="missing required column.*usage_date"):
        read_usage_files([bad], [D], normalize="lower")
    a = write_usage_csv(tmp_path / "a.csv", [(D, "a", "requests", 1)])
    b = write_usage_csv(tmp_path / "b.csv", [(D, "a", "requests", 1)])
    with pytest.raises(InputDataError, match="the same usage row appears in .*a.csv row 1 .* and .*b.csv row 1"):
        read_usage_files([a, b], [D], normalize="lower")


CUSTOMERS = [
    {"customer_id": "C1", "tenant_id": "acme", "tier": "Trial", "mrr": 0, "status": "active", "valid_to": D2},
    {"customer_id": "C1", "tenant_id": "acme", "tier": "smb", "mrr": 500, "status": "active", "valid_from": D2},
    {"customer_id": "C2", "tenant_id": "beta", "customer_name": "Beta Inc", "tier": "free", "mrr": 0, "status": "ACTIVE"},
    {"customer_id": "C2", "tenant_id": "beta-eu", "customer_name": "Beta Inc", "tier": "free", "mrr": 0, "status": "active"},
]


def _dimension(tmp_path, rows, days=(D, D2)):
    versions = read_customer_files([write_customers_csv(tmp_path / "customers.csv", rows)], normalize="lower")
    return customer_dimension(versions, list(days), ["trial", "free"])


def test_historical_rows_give_each_day_its_tier_and_mrr(tmp_path):
    out = _dimension(tmp_path, CUSTOMERS)
    c1 = out.filter(pl.col("customer_id") == "C1").sort("snapshot_date")
    assert c1.select("snapshot_date", "tier", "mrr", "is_paying").rows() == [(D, "trial", 0.0, False), (D2, "smb", 500.0, True)]
    assert c1["customer_since"].to_list() == [None, None]  # the first row has no valid_from: always existed
    beta = out.filter((pl.col("customer_id") == "C2") & (pl.col("snapshot_date") == D))
    assert sorted(beta["tenant_id"]) == ["beta", "beta-eu"]
    assert set(beta["status"]) == {"active"} and set(beta["customer_name"]) == {"Beta Inc"}


def test_customer_since_is_the_first_valid_from(tmp_path):
    rows = [{"customer_id": "N", "tenant_id": "n", "tier": "smb", "mrr": 10, "status": "active", "valid_from": D}]
    out = _dimension(tmp_path, rows, days=(D - dt.timedelta(days=1), D, D2))
    assert out["snapshot_date"].to_list() == [D, D2]
    assert out["customer_since"].to_list() == [D, D]


@pytest.mark.parametrize(
    ("rows", "message"),
    [
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": -5, "status": "active"}], "has a negative mrr"),
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": 5, "status": "paused"}], "has an unknown status: status is one of active, churned"),
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": 5, "status": "active"},
          {"customer_id": "D", "tenant_id": "t", "tier": "smb", "mrr": 5, "status": "active", "valid_from": D2}],
         "tenant 't' is mapped to customers C, D on"),
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": 5, "status": "active"},
          {"customer_id": "C", "tenant_id": "T ", "tier": "smb", "mrr": 5, "status": "active"}],
         "tenant 't' is listed more than once for customer C"),
        ([{"customer_id": "C", "tenant_id": "t1", "tier": "smb", "mrr": 5, "status": "active"},
          {"customer_id": "C", "tenant_id": "t2", "tier": "smb", "mrr": 7, "status": "active"}],
         "customer 'C' has rows that disagree on mrr"),
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": 5, "status": "active", "valid_from": D2, "valid_to": D}],
         "has valid_to on or before valid_from"),
        ([{"customer_id": "C", "tenant_id": "t", "tier": "smb", "mrr": "lots", "status": "active"}],
         "column mrr has 1 non-numeric value(s): row 1 (line 2) 'lots'"),
    ],
)  # fmt: skip
def test_customer_validation_errors(tmp_path, rows, message):
    with pytest.raises(InputDataError) as err:
        _dimension(tmp_path, rows)
    assert message in str(err.value)
    assert "customers.csv" in str(err.value)
