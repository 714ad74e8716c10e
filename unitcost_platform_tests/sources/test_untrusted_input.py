"""Input that cannot be money, dates or tenants: refused with the file, row and fix named.

Each case is one a user's messy data produced: a NaN or 1e300 in a Parquet float column, a page of
corrupted bytes, costs that overflow a sum, a charge period ending in 9999, epoch-integer
timestamps, a tenant tag holding a JSON object, a date followed by garbage, an unreadable
subdirectory.
"""

import datetime as dt
import json
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.contracts.focus import DEFAULT_LIMITS, BillingLimits
from unitcost_platform.contracts.raw_billing import API_ROW_SCHEMA, to_raw_billing
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.sources.customers.files import read_customer_files
from unitcost_platform.sources.files import list_data_files
from unitcost_platform.sources.usage.files import read_usage_files
from unitcost_platform.transforms.customers import customer_dimension
from unitcost_platform_tests.helpers import D, customer_versions, focus_csv

TENANT = TenantConfig()


def _read(paths, days=(D,), limits=DEFAULT_LIMITS):
    return read_billing_files(
        list(paths), list(days), cost_column="EffectiveCost", tenant=TENANT, spread=True, limits=limits
    )


def _problems(excinfo) -> str:
    return "\n".join(excinfo.value.problems)


def _billing_parquet(path: Path, costs: list[float], *, dictionary: bool = False, start=None) -> Path:
    """A FOCUS Parquet file of hourly rows on D with the given EffectiveCost values (float64)."""
    n = len(costs)
    starts = start if start is not None else pa.array(
        [dt.datetime(2026, 3, 10, i % 24) for i in range(n)], pa.timestamp("us")
    )
    table = pa.table({
        "BilledCost": pa.array([abs(c) if c == c else 1.0 for c in costs], pa.float64()),
        "EffectiveCost": pa.array(costs, pa.float64()),
        "BillingCurrency": ["USD"] * n,
        "ChargePeriodStart": starts,
        "ChargeCategory": ["Usage"] * n,
        "ProviderName": ["AWS"] * n,
        "ServiceName": ["Amazon EC2"] * n,
        "ServiceCategory": ["Compute"] * n,
        "Tags": [json.dumps({"tenant_id": f"t{i % 3}"}) for i in range(n)],
    })  # fmt: skip
    pq.write_table(table, path, use_dictionary=dictionary, compression="none")
    return path


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), float("-inf")])
def test_a_non_finite_cost_in_parquet_is_refused_with_file_and_row(tmp_path, bad):
    path = _billing_parquet(tmp_path / "aws.parquet", [1.0, 2.0, bad, 4.0])
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    text = _problems(excinfo)
    assert f"{path}: column EffectiveCost has 1 non-finite value(s)" in text
    assert "row 3 " in text


def test_an_implausible_cost_in_parquet_is_refused(tmp_path):
    path = _billing_parquet(tmp_path / "aws.parquet", [1.0, 1e300, 2.0])
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    text = _problems(excinfo)
    assert f"{path}: column EffectiveCost has 1 value(s) beyond ±10,000,000: row 2 '1e+300'" in text
    assert "billing.max_line_item_cost" in text
    # The limit is the config's: a customer with bigger line items raises it.
    assert _read([path], limits=BillingLimits(max_line_item_cost=1e301))["EffectiveCost"].sum() == pytest.approx(1e300)


def test_costs_that_overflow_a_sum_are_refused_not_summed_to_infinity(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1e308}, {"day": D, "cost": 1e308}, {"day": D, "cost": 3}])
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    assert "column EffectiveCost has 2 value(s) beyond ±10,000,000: row 1 (line 2) '1e+308'" in _problems(excinfo)


def test_corrupted_bytes_in_a_cost_page_cannot_pass_as_money(tmp_path):
    """64 bytes of a plain-encoded cost page overwritten: the values decode to garbage magnitudes."""
    path = _billing_parquet(tmp_path / "aws.parquet", [1.0 + i / 100 for i in range(50)])
    data = bytearray(path.read_bytes())
    page = pq.ParquetFile(path).metadata.row_group(0).column(1).data_page_offset
    values = data.find(struct.pack("<d", 1.01), page) - 8  # the page's first value (its header holds 1.0 too)
    data[values : values + 64] = b"\x7f\xee" * 32
    path.write_bytes(data)
    assert pl.read_parquet(path)["EffectiveCost"][0] < -1e200  # the corruption reads "fine" as numbers
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    assert "column EffectiveCost has 8 value(s) beyond ±10,000,000" in _problems(excinfo)


def test_a_corrupt_dictionary_page_is_an_error_naming_the_file(tmp_path):
    path = _billing_parquet(tmp_path / "aws.parquet", [1.0 + i / 100 for i in range(50)], dictionary=True)
    column = pq.ParquetFile(path).metadata.row_group(0).column(1)
    data = bytearray(path.read_bytes())
    end = column.dictionary_page_offset + column.total_compressed_size
    data[end - 30 : end] = b"\xff" * 30
    path.write_bytes(data)
    good = focus_csv(tmp_path / "good.csv", [{"day": D, "cost": 1, "tenant": "a"}])
    with pytest.raises(InputDataError) as excinfo:
        _read([path, good])
    text = _problems(excinfo)
    assert f"{path}: cannot be read (ComputeError:" in text and "corrupt or truncated" in text


def test_epoch_integer_timestamps_are_an_error_not_a_traceback(tmp_path):
    epoch = pa.array([1_773_100_800_000_000, 1_773_104_400_000_000], pa.int64())
    path = _billing_parquet(tmp_path / "aws.parquet", [1.0, 2.0], start=epoch)
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    assert f"{path}: column ChargePeriodStart has type Int64, not timestamps" in _problems(excinfo)


def test_a_charge_period_ending_in_9999_is_refused(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [
        {"day": D, "cost": 5, "tenant": "a"},
        {"day": D, "cost": 30, "ChargePeriodEnd": "9999-12-31T00:00:00Z"},
    ])  # fmt: skip
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    text = _problems(excinfo)
    assert "column ChargePeriodEnd has 1 charge period(s) longer than 1096 days: row 2 (line 3)" in text
    assert "9999-12-31" in text


def test_a_long_period_is_spread_arithmetically_over_the_days_read(tmp_path):
    """With the horizon raised, a two-year charge read for one day is one row, not 730."""
    path = focus_csv(tmp_path / "b.csv", [
        {"day": dt.date(2026, 1, 1), "cost": 730.0, "ChargePeriodEnd": "2028-01-01T00:00:00Z"},
    ])  # fmt: skip
    out = _read([path], days=[D], limits=BillingLimits(max_charge_period_days=800))
    assert out.height == 1
    assert out["x_SpreadFraction"][0] == pytest.approx(1 / 730)
    assert out["EffectiveCost"][0] == pytest.approx(1.0)


def test_a_charge_period_ending_before_it_starts_is_refused(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "hour": 5, "cost": 1, "ChargePeriodEnd": "2026-03-10T04:00:00Z"}])
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    assert "charge period(s) ending before they start" in _problems(excinfo)


def test_api_rows_with_a_non_finite_cost_are_refused_naming_the_source_row():
    rows = pl.DataFrame(
        {
            "ChargePeriodStart": [dt.datetime(2026, 3, 10)] * 2,
            "ChargePeriodEnd": [dt.datetime(2026, 3, 11)] * 2,
            "BilledCost": [None, None],
            "EffectiveCost": [3.0, float("nan")],
            "BillingCurrency": ["USD"] * 2,
            "ProviderName": ["Microsoft"] * 2,
            "ServiceName": ["Virtual Machines"] * 2,
            "ServiceCategory": ["Compute"] * 2,
            "ChargeCategory": ["Usage"] * 2,
            "SubAccountId": [None, None],
            "ResourceId": [None, None],
            "RegionId": [None, None],
            "Tags": ['{"tenant_id": "a"}', None],
            "x_IsFinal": [True, True],
            "x_Source": ["azure"] * 2,
            "x_SourceFile": ["azure:/subscriptions/1"] * 2,
            "x_SourceRow": [1, 2],
        },
        schema=API_ROW_SCHEMA,
    )
    with pytest.raises(InputDataError) as excinfo:
        to_raw_billing(rows, [D], cost_column="EffectiveCost", tenant=TENANT, tag_key="tenant_id", source="azure")
    assert "azure:/subscriptions/1: column EffectiveCost has 1 non-finite value(s) (NaN or infinity): row 2 'NaN'" in _problems(excinfo)


def test_a_tenant_tag_holding_a_json_object_is_refused(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [
        {"day": D, "cost": 1, "tenant": "ok"},
        {"day": D, "cost": 2, "Tags": json.dumps({"tenant_id": {"id": "x"}})},
        {"day": D, "cost": 3, "Tags": json.dumps({"tenant_id": "", "tenant": ["a", "b"]})},
    ])  # fmt: skip
    with pytest.raises(InputDataError) as excinfo:
        _read([path])
    text = _problems(excinfo)
    assert "column Tags has 2 value(s) whose tenant tag holds a JSON object or array" in text
    assert "row 2 (line 3)" in text and "row 3 (line 4)" in text


def _usage_parquet(path: Path, values: list[float], dates=None) -> Path:
    n = len(values)
    pq.write_table(pa.table({
        "usage_date": dates or ["2026-03-10"] * n,
        "tenant_id": [f"t{i}" for i in range(n)],
        "metric": ["requests"] * n,
        "value": pa.array(values, pa.float64()),
    }), path)  # fmt: skip
    return path


def test_a_nan_usage_value_in_parquet_is_refused(tmp_path):
    path = _usage_parquet(tmp_path / "usage.parquet", [10.0, float("nan"), 5.0])
    with pytest.raises(InputDataError) as excinfo:
        read_usage_files([path], [D], normalize="lower")
    assert f"{path}: column value has 1 non-finite value(s) (NaN or infinity): row 2 'NaN'" in _problems(excinfo)


def test_a_usage_date_followed_by_garbage_is_refused(tmp_path):
    path = _usage_parquet(tmp_path / "usage.parquet", [1.0, 2.0], dates=["2026-03-10", "2026-03-10 and some garbage"])
    with pytest.raises(InputDataError) as excinfo:
        read_usage_files([path], [D], normalize="lower")
    assert "column usage_date has 1 missing or unreadable date(s): row 2 '2026-03-10 and some garbage'" in _problems(excinfo)


def test_a_non_finite_or_implausible_mrr_is_refused():
    versions = customer_versions([
        {"customer_id": "A", "mrr": float("nan")},
        {"customer_id": "B", "mrr": float("inf")},
        {"customer_id": "C", "mrr": 5e8},
        {"customer_id": "D", "mrr": 900},
    ])  # fmt: skip
    with pytest.raises(InputDataError) as excinfo:
        customer_dimension(versions, [D], ["free"], max_mrr=1e8)
    text = _problems(excinfo)
    assert "(customer A, status=active mrr=NaN) has an mrr that is not a finite number" in text
    assert "(customer B, status=active mrr=inf) has an mrr that is not a finite number" in text
    assert "(customer C, status=active mrr=500000000.0) has an mrr above 100,000,000" in text
    assert "customer D" not in text


def test_a_nan_mrr_in_a_customer_parquet_file_is_refused(tmp_path):
    path = tmp_path / "customers.parquet"
    pq.write_table(pa.table({
        "customer_id": ["A", "B"], "tenant_id": ["a", "b"], "tier": ["smb", "smb"],
        "mrr": pa.array([100.0, float("nan")], pa.float64()), "status": ["active", "active"],
    }), path)  # fmt: skip
    with pytest.raises(InputDataError) as excinfo:
        read_customer_files([path], normalize="lower")
    assert f"{path}: column mrr has 1 non-finite value(s) (NaN or infinity): row 2 'NaN'" in _problems(excinfo)


# root reads every file whatever its mode: drop the capabilities that let it, as a plain user has none.
AS_PLAIN_USER = (
    ["setpriv", "--inh-caps=-dac_override,-dac_read_search", "--bounding-set=-dac_override,-dac_read_search"]
    if os.geteuid() == 0 else []
)


def test_an_unreadable_subdirectory_is_an_error_not_skipped(tmp_path):
    """The day must not be computed from 3 of 4 files when a subdirectory cannot be read."""
    billing = tmp_path / "billing"
    (billing / "2026-03").mkdir(parents=True)
    focus_csv(billing / "a.csv", [{"day": D, "cost": 1, "tenant": "a"}])
    focus_csv(billing / "2026-03" / "b.csv", [{"day": D, "cost": 2, "tenant": "b"}])
    script = textwrap.dedent(f"""
        from pathlib import Path
        from unitcost_platform.errors import InputDataError
        from unitcost_platform.sources.files import list_data_files
        try:
            print(list_data_files(Path({str(billing)!r}), "billing"))
        except InputDataError as exc:
            print("REFUSED", exc)
    """)
    os.chmod(billing / "2026-03", 0o000)
    try:
        done = subprocess.run([*AS_PLAIN_USER, sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(billing / "2026-03", 0o755)
    assert done.returncode == 0, done.stderr
    assert "REFUSED" in done.stdout, done.stdout
    assert f"{billing / '2026-03'}: cannot be read (Permission denied)" in done.stdout
    # Readable again, both files are listed.
    assert [p.name for p in list_data_files(billing, "billing")] == ["b.csv", "a.csv"]


def test_an_unreadable_file_is_an_error_listed_with_the_others(tmp_path):
    billing = tmp_path / "billing"
    good = focus_csv(billing / "a.csv", [{"day": D, "cost": 1, "tenant": "a"}])
    locked = focus_csv(billing / "b.csv", [{"day": D, "cost": 2, "tenant": "b"}])
    script = textwrap.dedent(f"""
        import datetime as dt
        from pathlib import Path
        from unitcost_platform.config import TenantConfig
        from unitcost_platform.errors import InputDataError
        from unitcost_platform.sources.billing.files import read_billing_files
        try:
            read_billing_files([Path({str(good)!r}), Path({str(locked)!r})], [dt.date(2026, 3, 10)],
                               cost_column="EffectiveCost", tenant=TenantConfig(), spread=True)
            print("READ")
        except InputDataError as exc:
            print("REFUSED", exc)
    """)
    os.chmod(locked, 0o000)
    try:
        done = subprocess.run([*AS_PLAIN_USER, sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    finally:
        os.chmod(locked, 0o644)
    assert "REFUSED" in done.stdout and f"{locked}: cannot be read" in done.stdout, done.stdout + done.stderr
