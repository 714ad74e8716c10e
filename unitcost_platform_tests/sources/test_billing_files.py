"""Billing files: formats (CSV, Parquet maps and structs, time zones), spreading, and bad input."""

import datetime as dt
import json
from decimal import Decimal

import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.contracts.focus import RAW_BILLING_SCHEMA, parse_utc_timestamp
from unitcost_platform.contracts.raw_billing import billing_summary, mixed_currency_problems
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.billing.files import read_billing_files
from unitcost_platform.staging import Stage
from unitcost_platform_tests.helpers import D, focus_csv

TENANT = TenantConfig()


def _read(paths, days=(D,), spread=True):
    return read_billing_files(list(paths), list(days), cost_column="EffectiveCost", tenant=TENANT, spread=spread)


def test_timestamp_formats_of_real_exports():
    raw = pl.Series(["2026-03-10 05:00:00", "2026-03-10T05:00:00Z", "2026-03-10T05:00:00.000Z",
                     "2026-03-10T06:00:00+01:00", "2026-03-10", None])  # fmt: skip
    parsed = parse_utc_timestamp(raw).to_list()
    assert parsed[:4] == [dt.datetime(2026, 3, 10, 5)] * 4
    assert parsed[4] == dt.datetime(2026, 3, 10) and parsed[5] is None


def test_tenant_tag_keys_in_order_and_normalized(tmp_path):
    rows = [
        {"day": D, "cost": 1, "Tags": json.dumps({"tenant": "Second", "tenant_id": " ACME "})},
        {"day": D, "cost": 1, "Tags": json.dumps({"user:tenant_id": "Beta"})},
        {"day": D, "cost": 1, "Tags": json.dumps({"tenant_id": "", "TenantId": "Gamma"})},
        {"day": D, "cost": 1, "Tags": json.dumps({"team": "x"})},
    ]
    out = _read([focus_csv(tmp_path / "b.csv", rows)])
    assert out.sort("x_SourceRow")["x_TenantId"].to_list() == ["acme", "beta", "gamma", None]


def test_sub_account_mapping_gives_a_tenant_to_untagged_rows(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 2}])
    cfg = TenantConfig(sub_accounts={"111122223333": "Dedicated-1"})
    out = read_billing_files([path], [D], cost_column="EffectiveCost", tenant=cfg, spread=True)
    assert out["x_TenantId"].to_list() == ["dedicated-1"]


def test_parquet_with_map_tags_decimal_costs_and_zoned_timestamps(tmp_path):
    start = dt.datetime(2026, 3, 10, 23, 30, tzinfo=dt.timezone(dt.timedelta(hours=-2)))  # 01:30 UTC on D+1
    table = pa.table({
        "BilledCost": pa.array([Decimal("1.25"), Decimal("2.5")], pa.decimal128(18, 6)),
        "EffectiveCost": pa.array([Decimal("1.25"), Decimal("2.5")], pa.decimal128(18, 6)),
        "BillingCurrency": ["USD", "USD"],
        "ChargePeriodStart": pa.array([dt.datetime(2026, 3, 10, 5, tzinfo=dt.UTC), start], pa.timestamp("us", tz="UTC")),
        "ChargePeriodEnd": pa.array([dt.datetime(2026, 3, 10, 6, tzinfo=dt.UTC), start + dt.timedelta(hours=1)], pa.timestamp("us", tz="UTC")),
        "ChargeCategory": ["usage", "USAGE"],
        "ProviderName": ["AWS", "AWS"],
        "ServiceName": ["Amazon EC2", "Amazon EC2"],
        "ServiceCategory": ["compute", "Compute"],
        "Tags": pa.array([[("tenant_id", "Acme"), ("env", "prod")], []], pa.map_(pa.string(), pa.string())),
    })  # fmt: skip
    pq.write_table(table, tmp_path / "export.parquet")
    out = _read([tmp_path / "export.parquet"], days=[D, D + dt.timedelta(days=1)]).sort("x_ChargeDate")
    assert out["x_ChargeDate"].to_list() == [D, D + dt.timedelta(days=1)]
    assert out["EffectiveCost"].to_list() == [1.25, 2.5]
    assert out["ChargeCategory"].to_list() == ["Usage", "Usage"]
    assert out["ServiceCategory"].to_list() == ["Compute", "Compute"]
    assert out["x_TenantId"].to_list() == ["acme", None]
    assert json.loads(out["Tags"][0]) == {"tenant_id": "Acme", "env": "prod"}
    assert out["ChargePeriodStart"][1] == dt.datetime(2026, 3, 11, 1, 30)


def test_parquet_with_struct_tags(tmp_path):
    frame = pl.DataFrame({
        "BilledCost": [3.0], "EffectiveCost": [3.0], "BillingCurrency": ["USD"],
        "ChargePeriodStart": [dt.datetime(2026, 3, 10)], "ChargePeriodEnd": [dt.datetime(2026, 3, 11)],
        "ChargeCategory": ["Usage"], "ProviderName": ["GCP"], "ServiceName": ["Compute Engine"],
        "ServiceCategory": ["Compute"], "Tags": [{"tenant_id": "Zeta", "team": "core"}],
    })  # fmt: skip
    frame.write_parquet(tmp_path / "gcp.parquet")
    out = _read([tmp_path / "gcp.parquet"])
    assert out["x_TenantId"].to_list() == ["zeta"]


def test_monthly_charge_is_spread_over_its_days(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": dt.date(2026, 3, 1), "cost": 310.0, "hours": 31 * 24}])
    march = [dt.date(2026, 3, 1) + dt.timedelta(days=i) for i in range(31)]
    spread = _read([path], days=march)
    assert spread.height == 31
    assert spread["EffectiveCost"].to_list() == pytest.approx([10.0] * 31)
    assert spread["x_SpreadFraction"].sum() == pytest.approx(1.0)
    one_day = _read([path], days=[dt.date(2026, 3, 15)])
    assert one_day["EffectiveCost"].to_list() == pytest.approx([10.0])
    unspread = _read([path], days=march, spread=False)
    assert unspread.select("x_ChargeDate", "EffectiveCost").rows() == [(dt.date(2026, 3, 1), 310.0)]


def test_partial_hours_are_split_at_midnight(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "hour": 22, "cost": 4.0, "hours": 4}])  # 22:00 -> 02:00
    out = _read([path], days=[D, D + dt.timedelta(days=1)]).sort("x_ChargeDate")
    assert out["EffectiveCost"].to_list() == pytest.approx([2.0, 2.0])


def test_no_files_is_an_empty_day():
    out = _read([])
    assert out.is_empty() and "x_ChargeDate" in out.columns


# --- bad input: each error names the file, the column or row, and the fix ---


def test_missing_required_column(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1}])
    pl.read_csv(path).drop("EffectiveCost").write_csv(path)
    with pytest.raises(InputDataError) as err:
        _read([path])
    msg = str(err.value)
    assert str(path) in msg and "EffectiveCost" in msg and "missing required column" in msg
    assert "Add or rename" in msg


def test_non_numeric_cost_names_row_line_and_value(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1}, {"day": D, "cost": 2}, {"day": D, "cost": "12,50"}])
    with pytest.raises(InputDataError) as err:
        _read([path])
    msg = str(err.value)
    assert f"{path}: column BilledCost has 1 non-numeric value(s): row 3 (line 4) '12,50'" in msg
    assert "EffectiveCost" in msg and "plain decimal numbers" in msg


def test_bad_row_on_another_day_does_not_block_this_day(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1}, {"day": D + dt.timedelta(days=1), "cost": "oops"}])
    assert _read([path])["EffectiveCost"].to_list() == [1.0]


def test_each_day_in_its_own_currency_is_not_a_mix():
    """Only a day is summed: USD on one day and EUR on the next pass; a day with both does not."""
    next_day = D + dt.timedelta(days=1)
    rows = pl.DataFrame({
        "x_ChargeDate": [D, D, next_day], "BillingCurrency": ["USD", "USD", "EUR"],
        "x_SourceFile": ["a.csv", "a.csv", "b.csv"], "x_SourceRow": [1, 2, 1],
    })  # fmt: skip
    assert mixed_currency_problems(rows) == []
    assert mixed_currency_problems(rows.clear()) == []
    mixed = rows.with_columns(x_ChargeDate=pl.lit(D))
    assert mixed_currency_problems(mixed) == [
        f"billing for {D} mixes currencies: USD (2 rows, e.g. a.csv row 1 (line 2)); EUR (1 rows, e.g. b.csv row 1 "
        "(line 2)). Unit costs add up one currency: export every source in the same BillingCurrency (or convert "
        "upstream) and re-run the day."
    ]


def test_mixed_currency_within_a_day(tmp_path):
    a = focus_csv(tmp_path / "usd.csv", [{"day": D, "cost": 1}])
    b = focus_csv(tmp_path / "eur.csv", [{"day": D, "cost": 1, "BillingCurrency": "EUR"}])
    with pytest.raises(InputDataError) as err:
        _read([a, b])
    msg = str(err.value)
    assert f"billing for {D} mixes currencies" in msg
    assert "EUR (1 rows, e.g. " in msg and str(b) in msg and str(a) in msg
    assert "same BillingCurrency" in msg


def test_row_duplicated_across_two_files(tmp_path):
    rows = [{"day": D, "cost": 1, "tenant": "a"}, {"day": D, "cost": 2, "tenant": "b"}]
    a = focus_csv(tmp_path / "march.csv", rows)
    b = focus_csv(tmp_path / "march-copy.csv", [rows[1]])
    with pytest.raises(InputDataError) as err:
        _read([a, b])
    msg = str(err.value)
    assert f"{a} row 2 (line 3) and {b} row 1 (line 2)" in msg
    assert "Remove the duplicate file" in msg


def _stage(paths, seen: list | None = None):
    """As raw_billing stages a day (`loaders.stage_billing`): a failed read removes its parts."""
    with Stage(RAW_BILLING_SCHEMA, billing_summary) as stage:
        if seen is not None:
            seen.append(stage)
        read_billing_files(list(paths), [D], cost_column="EffectiveCost", tenant=TENANT, spread=True, stage=stage)
    return stage


def test_staged_reading_finds_the_same_problems_and_rows(tmp_path):
    """raw_billing's path: each file becomes a part; copies across files and currencies mixed across
    files are found over the parts, with the messages of the in-memory reader; the parts hold the
    same rows the in-memory reader returns."""
    rows = [{"day": D, "cost": 1, "tenant": "a"}, {"day": D, "cost": 2, "tenant": "b"}]
    a = focus_csv(tmp_path / "march.csv", rows)
    copy = focus_csv(tmp_path / "march-copy.csv", [rows[1]])
    seen = []
    with pytest.raises(InputDataError) as err:
        _stage([a, copy], seen)
    assert f"{a} row 2 (line 3) and {copy} row 1 (line 2)" in "\n".join(err.value.problems)
    assert len(seen[0].parts) == 2 and not seen[0].directory.exists()  # both were staged, then removed

    other = focus_csv(tmp_path / "april.csv", [{"day": D, "cost": 5, "tenant": "c"}])
    stage = _stage([a, other])
    try:
        assert len(stage.parts) == 2
        staged = stage.finish().collect().sort("x_SourceFile", "x_SourceRow")
        expected = _read([a, other]).sort("x_SourceFile", "x_SourceRow")
        assert staged.equals(expected)
        assert stage.summary()["EffectiveCost"].sum() == 8.0 and stage.summary()["rows"].sum() == 3
        assert mixed_currency_problems(stage.summary()) == []
    finally:
        stage.remove()
    assert not stage.parts[0].exists()

    # A file mixing currencies on a day fails the read (its rows are not left out quietly).
    mixed = focus_csv(tmp_path / "mixed.csv", [{"day": D, "cost": 1}, {"day": D, "cost": 2, "BillingCurrency": "EUR"}])
    seen = []
    with pytest.raises(InputDataError) as err:
        _stage([a, mixed, other], seen)
    assert f"billing for {D} mixes currencies" in "\n".join(err.value.problems)
    assert len(seen[0].parts) == 1 and not seen[0].directory.exists()  # nothing staged after the problem

    euro = focus_csv(tmp_path / "eur.csv", [{"day": D, "cost": 1, "BillingCurrency": "EUR"}])
    stage = _stage([a, euro])
    try:
        problems = mixed_currency_problems(stage.summary())
    finally:
        stage.remove()
    assert len(problems) == 1 and f"billing for {D} mixes currencies" in problems[0]
    assert "EUR (1 rows, e.g. " in problems[0] and str(euro) in problems[0] and str(a) in problems[0]


def test_identical_rows_within_one_file_are_kept(tmp_path):
    row = {"day": D, "cost": 1, "tenant": "a"}
    assert _read([focus_csv(tmp_path / "b.csv", [row, row])])["EffectiveCost"].sum() == 2.0


def test_tags_that_are_not_json(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1, "Tags": "tenant_id=acme"}])
    with pytest.raises(InputDataError, match=r"column Tags has 1 value\(s\) that are not a JSON object: row 1"):
        _read([path])


def test_unreadable_charge_period(tmp_path):
    path = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1}])
    pl.read_csv(path, infer_schema=False).with_columns(ChargePeriodStart=pl.lit("10/03/2026")).write_csv(path)
    with pytest.raises(InputDataError, match=r"column ChargePeriodStart has 1 missing or unreadable .* row 1 \(line 2\) '10/03/2026'"):
        _read([path])


def test_every_problem_of_every_file_is_reported_at_once(tmp_path):
    a = focus_csv(tmp_path / "a.csv", [{"day": D, "cost": "x"}])
    b = focus_csv(tmp_path / "b.csv", [{"day": D, "cost": 1}])
    pl.read_csv(b).drop("ServiceName").write_csv(b)
    with pytest.raises(InputDataError) as err:
        _read([a, b])
    assert str(a) in str(err.value) and str(b) in str(err.value)
    assert len(err.value.problems) == 3  # BilledCost and EffectiveCost in a, the missing column in b


def test_unreadable_file(tmp_path):
    path = tmp_path / "broken.parquet"
    path.write_bytes(b"not parquet at all")
    with pytest.raises(InputDataError, match="broken.parquet: cannot be read as Parquet"):
        _read([path])


def test_repeated_tags_are_parsed_once_per_distinct_string(monkeypatch):
    """Large bills parse each distinct Tags string once and give every row its own tenant back."""
    from unitcost_platform.contracts import focus

    n = 120_000
    values = [None if i % 11 == 0 else f'{{"tenant_id": " T{i % 7} "}}' if i % 5 else '{"env": "prod"}' for i in range(n)]
    frame = pl.Series("Tags", values, dtype=pl.String).to_frame()
    expected = [None if i % 11 == 0 else f"t{i % 7}" if i % 5 else None for i in range(n)]
    parsed: list[int] = []
    real = focus.first_tag
    monkeypatch.setattr(focus, "first_tag", lambda t, keys, norm="none": parsed.append(t.len()) or real(t, keys, norm))
    assert focus.tenant_from_tags(frame, ["tenant_id"], "lower", {}).to_list() == expected
    assert parsed == [9]  # seven tenants, one untagged string and the null, not 120,000 rows


def test_tags_that_are_not_json_are_named_by_row_in_a_large_bill(tmp_path):
    rows = [{"day": D, "hour": i % 24, "cost": 1.0, "tenant": f"t{i % 3}", "resource": f"r{i}"} for i in range(100_005)]
    rows[100_000]["Tags"] = "tenant=t1"  # row 100,001 of the file (line 100,002)
    path = focus_csv(tmp_path / "big.csv", rows)
    with pytest.raises(InputDataError, match=r"big.csv: column Tags has 1 value\(s\) that are not a JSON object: row 100001 \(line 100002\)"):
        _read([path])



def test_a_hash_collision_falls_back_to_parsing_every_row(monkeypatch):
    """Rows are checked against their group's string: the worst collision (every string hashing
    alike) is caught and every row parsed, so no row takes another's tenant."""
    from unitcost_platform.contracts import focus

    n = 120_000
    frame = pl.Series("Tags", [f'{{"tenant_id": "T{i % 7}"}}' if i % 5 else '{"env": "prod"}' for i in range(n)]).to_frame()
    expected = [f"t{i % 7}" if i % 5 else None for i in range(n)]
    monkeypatch.setattr(pl.Series, "hash", lambda self, seed=0: pl.Series([0] * self.len(), dtype=pl.UInt64))
    assert focus.tenant_from_tags(frame, ["tenant_id"], "lower", {}).to_list() == expected


def test_the_files_of_one_read_parse_each_distinct_tags_string_once(monkeypatch, tmp_path):
    """A day in parts carries the same tag sets in every part: the second file parses only the
    strings the first did not have, and every row still gets its own tenant."""
    from unitcost_platform.contracts import focus

    n = 100_000
    first = [{"day": D, "hour": i % 24, "cost": 1.0, "tenant": f"T{i % 7}", "resource": f"r{i}"} for i in range(n)]
    second = [{"day": D, "hour": i % 24, "cost": 2.0, "tenant": f"T{i % 9}", "resource": f"s{i}"} for i in range(n)]
    paths = [focus_csv(tmp_path / "part-1.csv", first), focus_csv(tmp_path / "part-2.csv", second)]
    parsed: list[int] = []
    real = focus.first_tag
    monkeypatch.setattr(focus, "first_tag", lambda t, keys, norm="none": parsed.append(t.len()) or real(t, keys, norm))
    out = _read(paths)
    assert parsed == [7, 2]  # T0-T6 in the first file; only T7 and T8 are new in the second
    got = out.group_by("x_TenantId").agg(pl.col("EffectiveCost").sum()).sort("x_TenantId").rows()
    per_tenant = {f"t{t}": 0.0 for t in range(9)}
    for i in range(n):
        per_tenant[f"t{i % 7}"] += 1.0
        per_tenant[f"t{i % 9}"] += 2.0
    assert got == sorted(per_tenant.items())


def test_a_string_remembered_under_another_strings_hash_is_not_trusted(monkeypatch, tmp_path):
    """A tag set an earlier file parsed can share its 64-bit hash with a different string of a later
    file; the later rows are compared with the remembered string and parsed again, not given its tenant."""
    from unitcost_platform.contracts import focus

    path = focus_csv(tmp_path / "part.csv", [
        {"day": D, "hour": i % 24, "cost": 1.0, "tenant": f"T{i % 3}", "resource": f"r{i}"} for i in range(100_000)
    ])  # fmt: skip
    tags = pl.read_csv(path, columns=["Tags"])["Tags"].unique().sort()
    remembered = pl.DataFrame({
        "_h": tags.hash(seed=0), "_tags": ['{"tenant_id": "someone else"}'] * tags.len(), "_tenant": ["someone else"] * tags.len(),
    })  # fmt: skip
    parsed = focus.ParsedTags({(tuple(TenantConfig().tag_keys), TenantConfig().normalize): remembered})
    out = read_billing_files([path], [D], cost_column="EffectiveCost", tenant=TenantConfig(), spread=True, parsed=parsed)
    assert sorted(out["x_TenantId"].unique().to_list()) == ["t0", "t1", "t2"]


def test_focus_1_3_allocated_charges_in_a_billing_file(tmp_path):
    # A $24 node day split by the data generator (FOCUS 1.3): two pods and the unallocated part.
    # Same result whether every column is read or only a projection (what the engineers' views read).
    base = {"BilledCost": "", "EffectiveCost": "", "BillingCurrency": "USD", "ChargePeriodStart": "2026-03-10T00:00:00Z",
            "ChargePeriodEnd": "2026-03-11T00:00:00Z", "ChargeCategory": "Usage", "ProviderName": "AWS",
            "ServiceName": "Amazon EC2", "ServiceCategory": "Compute", "ResourceId": "i-node",
            "Tags": '{"team": "platform"}', "AllocatedMethodId": "split-by-requests", "AllocatedResourceId": "",
            "AllocatedTags": ""}  # fmt: skip
    rows = [
        {**base, "BilledCost": "16.5", "EffectiveCost": "16.5", "AllocatedResourceId": "pod-a", "AllocatedTags": '{"k8s:namespace": "tenant-a"}'},
        {**base, "BilledCost": "4.5", "EffectiveCost": "4.5", "AllocatedResourceId": "pod-b", "AllocatedTags": '{"tenant_id": "b"}'},
        {**base, "BilledCost": "3", "EffectiveCost": "3", "AllocatedTags": "NULL"},
        {**base, "BilledCost": "1", "EffectiveCost": "1", "ResourceId": "i-other", "AllocatedMethodId": "NULL", "Tags": "NULL"},
    ]  # fmt: skip
    path = tmp_path / "focus13.csv"
    pl.DataFrame(rows).write_csv(path)
    cfg = TenantConfig(namespace_map={"^tenant-(.+)$": "{1}"})
    for columns in (None, ["ResourceId", "ServiceName", "EffectiveCost"]):
        out = read_billing_files([path], [D], cost_column="EffectiveCost", tenant=cfg, spread=True, columns=columns)
        got = {(r["ResourceId"], r["x_TenantId"]): r["EffectiveCost"] for r in out.iter_rows(named=True)}
        assert got == {("pod-a", "a"): 16.5, ("pod-b", "b"): 4.5, ("i-node", None): 3.0, ("i-other", None): 1.0}
        assert "AllocatedTags" not in out.columns and round(out["EffectiveCost"].sum(), 2) == 25.00
    out = _read([path]).sort("x_SourceRow")
    assert [json.loads(t) if t else None for t in out["Tags"]] == [
        {"team": "platform", "k8s:namespace": "tenant-a", "unitcost:parent": "i-node"},
        {"team": "platform", "tenant_id": "b", "unitcost:parent": "i-node"},
        {"team": "platform", "unitcost:idle": "true", "unitcost:parent": "i-node"},
        None,
    ]
    pl.DataFrame([{**rows[0], "AllocatedTags": "[1, 2]"}]).write_csv(path)
    with pytest.raises(InputDataError, match="AllocatedTags value.*not JSON objects"):
        _read([path])


def test_a_cur2_file_with_split_cost_allocation_data(tmp_path):
    # The $24 node day as a CUR 2.0 file among the billing files: pods a $9 + $5 unused, b $4.50 +
    # $2.50, ingress $3; read by the S3 connector's code: the node keeps $0, the unused $7.50 is idle.
    def item(resource, unblended, tags, parent=None, split=None, unused=None):
        return {"line_item_line_item_type": "Usage", "line_item_usage_start_date": "2026-03-10T00:00:00Z",
                "line_item_usage_end_date": "2026-03-11T00:00:00Z", "line_item_unblended_cost": unblended,
                "line_item_currency_code": "USD", "line_item_product_code": "AmazonEC2", "bill_invoice_id": "INV-1",
                "line_item_resource_id": resource, "resource_tags": json.dumps(tags),
                "split_line_item_parent_resource_id": parent, "split_line_item_split_cost": split,
                "split_line_item_unused_cost": unused}  # fmt: skip

    def pod(ns, split, unused):
        return item(f"pod/{ns}", 0.0, {"aws_eks_namespace": ns}, "i-node", split, unused)

    rows = [item("i-node", 24.0, {"aws_eks_cluster_name": "prod"}), pod("tenant-a", 9.0, 5.0), pod("tenant-b", 4.5, 2.5), pod("ingress", 3.0, 0.0)]
    path = tmp_path / "cur2.csv"
    pl.DataFrame(rows).write_csv(path)
    cfg = TenantConfig(namespace_map={"^tenant-(.+)$": "{1}"})
    out = read_billing_files([path], [D], cost_column="EffectiveCost", tenant=cfg, spread=True)
    got = {}
    for r in out.iter_rows(named=True):
        key = (r["ResourceId"], r["x_TenantId"], "unitcost:idle" in (r["Tags"] or ""))
        got[key] = round(got.get(key, 0.0) + r["EffectiveCost"], 2)
    assert got == {("i-node", None, False): 0.0, ("pod/tenant-a", "a", False): 9.0, ("pod/tenant-b", "b", False): 4.5,
                   ("pod/ingress", None, False): 3.0, ("i-node", None, True): 7.5}  # fmt: skip
    assert round(out["EffectiveCost"].sum(), 2) == 24.00 and round(out["BilledCost"].sum(), 2) == 24.00
    assert set(out["ServiceName"]) == {"AmazonEC2"} and out["x_IsFinal"].all()


def _hourly_parquet(path, starts, costs, row_group_size):
    """A typed FOCUS Parquet file of hourly line items, `row_group_size` rows per row group."""
    table = pa.table({
        "BilledCost": pa.array(costs, pa.float64()), "EffectiveCost": pa.array(costs, pa.float64()),
        "BillingCurrency": ["USD"] * len(starts),
        "ChargePeriodStart": pa.array(starts, pa.timestamp("us")),
        "ChargePeriodEnd": pa.array([None if s is None else s + dt.timedelta(hours=1) for s in starts], pa.timestamp("us")),
        "ChargeCategory": ["Usage"] * len(starts), "ProviderName": ["AWS"] * len(starts),
        "ServiceName": ["Amazon EC2"] * len(starts), "ServiceCategory": ["Compute"] * len(starts),
        "Tags": [json.dumps({"tenant_id": "acme"})] * len(starts),
    })  # fmt: skip
    pq.write_table(table, path, row_group_size=row_group_size)
    return path


def test_typed_line_item_without_a_start_is_refused_not_dropped(tmp_path):
    # Parquet timestamps: the window's filter runs in the reader, and a null start must not fall out of it.
    path = _hourly_parquet(tmp_path / "b.parquet", [dt.datetime(2026, 3, 10, 5), None], [3.0, 4.0], 2)
    with pytest.raises(InputDataError, match=r"b\.parquet: column ChargePeriodStart has 1 missing .* row 2 None"):
        _read([path])


def test_row_groups_of_other_days_are_not_read_and_rows_keep_their_numbers(tmp_path):
    day = [dt.datetime(2026, 3, 10, h) for h in (5, 6)]
    before, after = [dt.datetime(2026, 3, 9, h) for h in (5, 6)], [dt.datetime(2026, 3, 11, h) for h in (5, 6)]
    path = _hourly_parquet(tmp_path / "month.parquet", before + day + after, [1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 2)
    out = _read([path]).sort("x_SourceRow")
    assert out.select("x_SourceRow", "EffectiveCost").rows() == [(3, 3.0), (4, 4.0)]

    # Another day's row group damaged on disk: the day's read never decodes it (its statistics
    # exclude it), so a month's export is read for one day without reading the month.
    metadata = pq.ParquetFile(path).metadata
    chunk = metadata.row_group(0).column(metadata.schema.names.index("BilledCost"))
    with open(path, "r+b") as f:
        f.seek(chunk.data_page_offset)
        f.write(b"\xff" * chunk.total_compressed_size)
    with pytest.raises(InputDataError, match=r"month\.parquet: cannot be read"):
        _read([path], days=[dt.date(2026, 3, 9)])
    assert _read([path]).sort("x_SourceRow")["x_SourceRow"].to_list() == [3, 4]

    # A bad value on the day is named by its row in the file, after the skipped row group.
    bad = _hourly_parquet(tmp_path / "bad.parquet", before + day + after, [1.0, 2.0, 3.0, None, 5.0, 6.0], 2)
    with pytest.raises(InputDataError, match=r"bad\.parquet: column EffectiveCost has 1 empty cost value\(s\): row 4"):
        _read([bad])
