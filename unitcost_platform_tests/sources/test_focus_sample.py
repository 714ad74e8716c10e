"""The real FOCUS 1.0 sample (anonymized AWS/Microsoft/Oracle billing) through the billing reader.

Expectations are recomputed from the file with Python's csv module, independently of polars.
"""

import csv
import datetime as dt
import json
from collections import Counter, defaultdict
from decimal import Decimal
from pathlib import Path

import polars as pl
import pytest

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.sources.billing.files import read_billing_files

# A copy of ../shared/fixtures/focus-1.0-sample (CC BY 4.0, see its README), so a clone tests alone.
SAMPLE = Path(__file__).resolve().parents[1] / "fixtures" / "focus-1.0-sample" / "focus_sample.csv"
SEPTEMBER = [dt.date(2024, 9, 1) + dt.timedelta(days=i) for i in range(30)]


def _csv_rows() -> list[dict]:
    with SAMPLE.open(newline="") as f:
        return list(csv.DictReader(f))


@pytest.fixture(scope="module")
def sample() -> pl.DataFrame:
    return read_billing_files(
        [SAMPLE], SEPTEMBER, cost_column="EffectiveCost", tenant=TenantConfig(tag_keys=["application"]), spread=True
    )


def test_every_row_loads_with_totals_per_provider(sample):
    rows = _csv_rows()
    assert sample.height == len(rows)
    expected = defaultdict(Decimal)
    counts = Counter()
    for r in rows:
        expected[r["ProviderName"]] += Decimal(r["EffectiveCost"])
        counts[r["ProviderName"]] += 1
    got = sample.group_by("ProviderName").agg(pl.col("EffectiveCost").sum(), pl.len())
    for provider, total, n in got.iter_rows():
        assert total == pytest.approx(float(expected[provider]), abs=1e-9)
        assert n == counts[provider]
    assert set(got["ProviderName"]) == set(counts)


def test_hourly_periods_land_on_their_utc_day(sample):
    rows = _csv_rows()
    per_day = Counter(dt.date.fromisoformat(r["ChargePeriodStart"][:10]) for r in rows)
    got = dict(sample.group_by("x_ChargeDate").len().iter_rows())
    assert got == dict(per_day)


def test_null_literals_and_empty_strings_are_missing(sample):
    rows = _csv_rows()
    missing_zone = sum(1 for r in rows if r["AvailabilityZone"] in ("NULL", ""))
    assert sample["AvailabilityZone"].null_count() == missing_zone
    assert sample["ChargeClass"].null_count() == sum(1 for r in rows if r["ChargeClass"] in ("NULL", ""))
    assert "NULL" not in sample["CommitmentDiscountCategory"].drop_nulls().to_list()
    assert "" not in sample["PricingCategory"].drop_nulls().to_list()


def test_enumeration_spelling_drift_is_normalized(sample):
    raw = Counter(r["ChargeFrequency"] for r in _csv_rows())
    assert raw["Usage-based"] > 0  # the drift is really in the file
    got = Counter(sample["ChargeFrequency"].to_list())
    assert got["Usage-Based"] == raw["Usage-Based"] + raw["Usage-based"]
    assert "Usage-based" not in got
    assert set(sample["ChargeCategory"]) == {r["ChargeCategory"] for r in _csv_rows()}


def test_tags_json_strings_are_read_and_the_tenant_key_extracted(sample):
    rows = _csv_rows()
    expected = [
        json.loads(r["Tags"]).get("application", "").strip().lower() or None if r["Tags"] not in ("NULL", "") else None
        for r in rows
    ]
    by_row = dict(sample.select("x_SourceRow", "x_TenantId").iter_rows())
    assert [by_row[i + 1] for i in range(len(rows))] == expected


def test_credit_and_committed_rows_keep_their_sign_and_category(sample):
    credit = sample.filter(pl.col("ChargeCategory") == "Credit")
    raw = [r for r in _csv_rows() if r["ChargeCategory"] == "Credit"]
    assert credit.height == len(raw)
    assert credit["EffectiveCost"].sum() == pytest.approx(sum(float(r["EffectiveCost"]) for r in raw))
    assert credit["EffectiveCost"].sum() < 0


def test_a_single_day_reads_only_that_day(sample):
    day = dt.date(2024, 9, 18)
    one = read_billing_files([SAMPLE], [day], cost_column="EffectiveCost", tenant=TenantConfig(), spread=True)
    assert one["x_ChargeDate"].unique().to_list() == [day]
    assert one.height == sample.filter(pl.col("x_ChargeDate") == day).height
    assert one["x_SourceFile"].unique().to_list() == [str(SAMPLE)]
