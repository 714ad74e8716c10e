"""AWS Data Exports (CUR 2.0 and FOCUS) on moto's S3: amortized cost per line item type, manifests,
finality, restated refreshes that replace rather than append, and the restatement sensor."""

import datetime as dt
import io
import json

import boto3
import dagster as dg
import polars as pl
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from moto import mock_aws

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.config_pools import PoolConfig, PoolMatch
from unitcost_platform.defs.restatement import RESTATEMENT_SENSOR
from unitcost_platform.errors import InputDataError
from unitcost_platform.sources.billing.aws_exports import (
    AwsExportSource,
    fetch_aws_export,
    latest_manifest,
)
from unitcost_platform.transforms.allocation import allocate
from unitcost_platform_tests.helpers import customers, usage
from unitcost_platform_tests.saas import DAYS, read_table, run_range

D = dt.date(2026, 3, 10)
BUCKET = "billing-exports"
CUR = AwsExportSource(bucket=BUCKET, prefix="exports", export_name="cur2", format="cur2")
FOCUS = AwsExportSource(bucket=BUCKET, prefix="exports", export_name="focus12", format="focus")
TS = pa.timestamp("ms")
TAGS = pa.map_(pa.string(), pa.string())


def cur_item(kind: str, unblended: float, *, day=D, tags=None, service="AmazonEC2", invoice="", **extra) -> dict:
    start = dt.datetime.combine(day, dt.time(5))
    return {
        "bill_invoice_id": invoice, "bill_payer_account_id": "111122223333",
        "bill_billing_period_start_date": dt.datetime(2026, 3, 1), "bill_billing_period_end_date": dt.datetime(2026, 4, 1),
        "line_item_usage_account_id": "210987654321", "line_item_line_item_type": kind,
        "line_item_usage_start_date": start, "line_item_usage_end_date": start + dt.timedelta(hours=1),
        "line_item_product_code": service, "line_item_usage_type": "BoxUsage:m5.large",
        "line_item_resource_id": f"arn:aws:ec2:us-east-1:210987654321:instance/i-{kind.lower()}",
        "line_item_unblended_cost": unblended, "line_item_currency_code": "USD",
        "line_item_line_item_description": f"{kind} line", "product_region_code": "us-east-1",
        "product": [("product_name", {"AmazonEC2": "Amazon Elastic Compute Cloud", "AmazonRDS": "Amazon Relational Database Service"}.get(service, service))],
        "resource_tags": list((tags or {}).items()),
        "savings_plan_savings_plan_effective_cost": extra.get("sp_effective", 0.0),
        "savings_plan_total_commitment_to_date": extra.get("sp_commitment", 0.0),
        "savings_plan_used_commitment": extra.get("sp_used", 0.0),
        "reservation_effective_cost": extra.get("ri_effective", 0.0),
        "reservation_unused_amortized_upfront_fee_for_billing_period": extra.get("ri_unused_upfront", 0.0),
        "reservation_unused_recurring_fee": extra.get("ri_unused_recurring", 0.0),
        "reservation_reservation_a_r_n": extra.get("ri_arn", ""),
    }  # fmt: skip


CUR_SCHEMA = pa.schema([
    ("bill_invoice_id", pa.string()), ("bill_payer_account_id", pa.string()),
    ("bill_billing_period_start_date", TS), ("bill_billing_period_end_date", TS),
    ("line_item_usage_account_id", pa.string()), ("line_item_line_item_type", pa.string()),
    ("line_item_usage_start_date", TS), ("line_item_usage_end_date", TS),
    ("line_item_product_code", pa.string()), ("line_item_usage_type", pa.string()),
    ("line_item_resource_id", pa.string()), ("line_item_unblended_cost", pa.float64()),
    ("line_item_currency_code", pa.string()), ("line_item_line_item_description", pa.string()),
    ("product_region_code", pa.string()), ("product", TAGS), ("resource_tags", TAGS),
    ("savings_plan_savings_plan_effective_cost", pa.float64()), ("savings_plan_total_commitment_to_date", pa.float64()),
    ("savings_plan_used_commitment", pa.float64()), ("reservation_effective_cost", pa.float64()),
    ("reservation_unused_amortized_upfront_fee_for_billing_period", pa.float64()),
    ("reservation_unused_recurring_fee", pa.float64()), ("reservation_reservation_a_r_n", pa.string()),
])  # fmt: skip

# One day of CUR 2.0 line items; billed (unblended) and amortized (effective) worked out per line:
DAY_ITEMS = [
    cur_item("Usage", 10.0, tags={"user_tenant_id": "acme"}),  # billed 10, effective 10
    cur_item("SavingsPlanCoveredUsage", 8.0, tags={"user:tenant_id": "Beta"}, sp_effective=5.6),  # 8 / 5.6
    cur_item("SavingsPlanNegation", -8.0, tags={"user:tenant_id": "Beta"}),  # -8 / 0: not counted twice
    cur_item("SavingsPlanRecurringFee", 24.0, sp_commitment=24.0, sp_used=20.0),  # 24 / 4 unused commitment
    cur_item("DiscountedUsage", 0.0, tags={"user_tenant_id": "acme"}, service="AmazonRDS", ri_effective=1.9),  # 0 / 1.9
    cur_item("RIFee", 2.0, ri_unused_upfront=0.3, ri_unused_recurring=0.2),  # 2 / 0.5
    cur_item("Fee", 100.0, ri_arn="arn:aws:ec2:us-east-1:1:reserved-instances/r-1"),  # upfront: 100 / 0
    cur_item("Tax", 1.25, service="Tax"),  # 1.25 / 1.25
    cur_item("Credit", -2.0, tags={"user_tenant_id": "acme"}),  # -2 / -2
    cur_item("Usage", 7.0, day=D + dt.timedelta(days=1), tags={"user_tenant_id": "acme"}),  # another day
]
BILLED_D, EFFECTIVE_D = 10 + 8 - 8 + 24 + 0 + 2 + 100 + 1.25 - 2, 10 + 5.6 + 0 + 4 + 1.9 + 0.5 + 0 + 1.25 - 2


def put_parquet(s3, key: str, rows: list[dict], schema: pa.Schema) -> str:
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    s3.put_object(Bucket=BUCKET, Key=key, Body=buffer.getvalue())
    return f"s3://{BUCKET}/{key}"


def put_manifest(s3, export: AwsExportSource, period: str, execution: str, files: list[str]) -> None:
    manifest = {
        "executionId": execution,
        "exportArn": f"arn:aws:bcm-data-exports:us-east-1:111122223333:export/{export.export_name}-0f1e2d",
        "columns": [{"name": "line_item_unblended_cost", "type": "double"}],
        "dataFiles": files,
        "additionalOutputFiles": [],
    }
    key = f"{export.metadata_prefix(period)}{export.export_name}-Manifest.json"
    s3.put_object(Bucket=BUCKET, Key=key, Body=json.dumps(manifest).encode())


@pytest.fixture
def s3(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        yield client


def _fetch(s3, export=CUR, days=(D,), today=dt.date(2026, 3, 20)):
    return fetch_aws_export(export, list(days), cost_column="EffectiveCost", tenant=TenantConfig(), spread=True, today=today, s3=s3)


def test_cur2_amortized_cost_per_line_item_type(s3):
    uri = put_parquet(s3, CUR.data_prefix("2026-03") + "cur2-00001.snappy.parquet", DAY_ITEMS, CUR_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-1", [uri])
    read = _fetch(s3)
    rows = read.rows
    assert rows.height == 9 and set(rows["x_ChargeDate"]) == {D}
    assert rows["BilledCost"].sum() == pytest.approx(BILLED_D)
    assert rows["EffectiveCost"].sum() == pytest.approx(EFFECTIVE_D)
    per_tenant = dict(rows.group_by("x_TenantId").agg(pl.col("EffectiveCost").sum()).iter_rows())
    assert per_tenant["acme"] == pytest.approx(10 + 1.9 - 2) and per_tenant["beta"] == pytest.approx(5.6)
    assert set(rows["ServiceName"]) >= {"Amazon Elastic Compute Cloud", "Amazon Relational Database Service"}
    assert dict(rows.select("ChargeCategory").group_by("ChargeCategory").len().iter_rows())["Purchase"] == 3
    assert not rows["x_IsFinal"].any()  # no bill_invoice_id yet
    assert read.versions == {"cur2/2026-03": "exec-1"}
    assert set(rows["x_SourceFile"]) == {uri} and set(rows["x_Source"]) == {"aws_exports"}


def test_a_refresh_restates_the_period_and_replaces_it(s3):
    old = put_parquet(s3, CUR.data_prefix("2026-03") + "cur2-00001.snappy.parquet", DAY_ITEMS, CUR_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-1", [old])
    first = _fetch(s3).rows["EffectiveCost"].sum()
    # AWS refreshes the month: a late credit, the invoice issued, split over two new files. The old
    # file stays in the prefix; only the manifest's files count.
    restated = [dict(i, bill_invoice_id="INV-2026-03") for i in DAY_ITEMS] + [
        cur_item("Credit", -4.0, tags={"user_tenant_id": "acme"}, invoice="INV-2026-03")
    ]  # fmt: skip
    a = put_parquet(s3, CUR.data_prefix("2026-03") + "exec-2/cur2-00001.snappy.parquet", restated[:5], CUR_SCHEMA)
    b = put_parquet(s3, CUR.data_prefix("2026-03") + "exec-2/cur2-00002.snappy.parquet", restated[5:], CUR_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-2", [a, b])
    read = _fetch(s3)
    assert first == pytest.approx(EFFECTIVE_D)
    assert read.rows["EffectiveCost"].sum() == pytest.approx(EFFECTIVE_D - 4.0)  # replaced, not appended
    assert read.rows["x_IsFinal"].all() and read.versions == {"cur2/2026-03": "exec-2"}


FOCUS_SCHEMA = pa.schema([
    ("BilledCost", pa.decimal128(20, 10)), ("EffectiveCost", pa.decimal128(20, 10)), ("BillingCurrency", pa.string()),
    ("BillingPeriodStart", pa.timestamp("ms", tz="UTC")), ("BillingPeriodEnd", pa.timestamp("ms", tz="UTC")),
    ("ChargePeriodStart", pa.timestamp("ms", tz="UTC")), ("ChargePeriodEnd", pa.timestamp("ms", tz="UTC")),
    ("ChargeCategory", pa.string()), ("ProviderName", pa.string()), ("ServiceName", pa.string()),
    ("ServiceCategory", pa.string()), ("ResourceId", pa.string()), ("SubAccountId", pa.string()),
    ("Tags", TAGS), ("InvoiceId", pa.string()),
])  # fmt: skip


def focus_item(cost: str, tenant: str | None, invoice: str | None, day=D) -> dict:
    from decimal import Decimal

    start = dt.datetime.combine(day, dt.time(3), tzinfo=dt.UTC)
    return {
        "BilledCost": Decimal(cost), "EffectiveCost": Decimal(cost), "BillingCurrency": "USD",
        "BillingPeriodStart": dt.datetime(2026, 3, 1, tzinfo=dt.UTC), "BillingPeriodEnd": dt.datetime(2026, 4, 1, tzinfo=dt.UTC),
        "ChargePeriodStart": start, "ChargePeriodEnd": start + dt.timedelta(hours=1),
        "ChargeCategory": "Usage", "ProviderName": "AWS", "ServiceName": "Amazon Elastic Compute Cloud",
        "ServiceCategory": "Compute", "ResourceId": "i-1", "SubAccountId": "210987654321",
        "Tags": [("user:tenant_id", tenant)] if tenant else [], "InvoiceId": invoice,
    }  # fmt: skip


def test_focus_export_with_invoice_ids_and_without(s3):
    uri = put_parquet(s3, FOCUS.data_prefix("2026-03") + "focus12-00001.snappy.parquet",
                      [focus_item("4.25", "acme", "INV-1"), focus_item("0.75", None, None)], FOCUS_SCHEMA)  # fmt: skip
    put_manifest(s3, FOCUS, "2026-03", "f-1", [uri])
    rows = _fetch(s3, FOCUS).rows.sort("EffectiveCost")
    assert rows["EffectiveCost"].to_list() == [0.75, 4.25]
    assert rows["x_TenantId"].to_list() == [None, "acme"]
    assert rows["x_IsFinal"].to_list() == [False, True]  # final once the invoice is issued
    without = FOCUS_SCHEMA.remove(FOCUS_SCHEMA.get_field_index("InvoiceId"))
    items = [{k: v for k, v in focus_item("1.00", "acme", None).items() if k != "InvoiceId"}]
    put_manifest(s3, FOCUS, "2026-03", "f-2", [put_parquet(s3, FOCUS.data_prefix("2026-03") + "v10.parquet", items, without)])
    assert not _fetch(s3, FOCUS, today=dt.date(2026, 4, 5)).rows["x_IsFinal"].any()
    assert _fetch(s3, FOCUS, today=dt.date(2026, 4, 6)).rows["x_IsFinal"].all()  # period end + 5 days


FOCUS13_SCHEMA = pa.schema([*FOCUS_SCHEMA, ("SkuId", pa.string()), ("AllocatedMethodId", pa.string()),
                            ("AllocatedResourceId", pa.string()), ("AllocatedResourceName", pa.string()),
                            ("AllocatedTags", TAGS)])  # fmt: skip


def allocated(cost: str, namespace: str | None, *, resource: str | None = None, labels=None) -> dict:
    """A FOCUS 1.3 allocated charge of the $24 node hour on i-1: a pod (namespace) or the unallocated part."""
    pod = resource or (f"pod/prod/{namespace}/app-{namespace}" if namespace else None)
    tags = ([("k8s:namespace", namespace)] if namespace else []) + list((labels or {}).items())
    return {**focus_item(cost, None, "INV-1"), "Tags": [("eks:cluster-name", "prod")], "SkuId": "BoxUsage:m6i.2xlarge",
            "AllocatedMethodId": "aws-eks-split-cost-allocation", "AllocatedResourceId": pod,
            "AllocatedResourceName": pod, "AllocatedTags": tags or None}  # fmt: skip


def test_focus_1_3_allocated_charges_are_read_like_split_cost_allocation_data(s3):
    # The $24 node hour as FOCUS 1.3 allocated charges: tenant a $9 (namespace), tenant b $4.50 (a
    # tenant label in AllocatedTags), ingress $3, and the unallocated $7.50 (no AllocatedResourceId)
    # as idle; plus the origin charge repeated by the export, which must not count twice, and a
    # $2 EBS volume of another tenant that has nothing to do with the split.
    origin = {**focus_item("24", None, "INV-1"), "Tags": [("eks:cluster-name", "prod")], "SkuId": "BoxUsage:m6i.2xlarge",
              "AllocatedMethodId": None, "AllocatedResourceId": None, "AllocatedResourceName": None, "AllocatedTags": None}  # fmt: skip
    other = {**origin, **focus_item("2", "c", "INV-1"), "ResourceId": "vol-1", "SkuId": "EBS:VolumeUsage.gp3"}
    rows = [origin, allocated("9", "tenant-a"), allocated("4.5", None, resource="pod/prod/shop/web", labels={"tenant_id": "B"}),
            allocated("3", "ingress"), allocated("7.5", None), other]  # fmt: skip
    uri = put_parquet(s3, FOCUS.data_prefix("2026-03") + "focus13-00001.snappy.parquet", rows, FOCUS13_SCHEMA)
    put_manifest(s3, FOCUS, "2026-03", "f13-1", [uri])
    tenant = TenantConfig(tag_keys=["tenant_id", "user:tenant_id"], namespace_map={"^tenant-(.+)$": "{1}"})
    billing = fetch_aws_export(FOCUS, [D], cost_column="EffectiveCost", tenant=tenant, spread=True,
                               today=dt.date(2026, 3, 20), s3=s3).rows  # fmt: skip
    assert round(billing["EffectiveCost"].sum(), 2) == 26.00 and round(billing["BilledCost"].sum(), 2) == 26.00
    by = {(r["ResourceId"], r["x_TenantId"]): r["EffectiveCost"] for r in billing.iter_rows(named=True)}
    assert by == {
        ("pod/prod/tenant-a/app-tenant-a", "a"): 9.0, ("pod/prod/shop/web", "b"): 4.5,
        ("pod/prod/ingress/app-ingress", None): 3.0, ("i-1", None): 7.5, ("vol-1", "c"): 2.0,
    }
    idle = billing.filter(pl.col("ResourceId") == "i-1")
    assert json.loads(idle["Tags"][0]) == {"eks:cluster-name": "prod", "unitcost:idle": "true", "unitcost:parent": "i-1"}
    pod_a = billing.filter(pl.col("x_TenantId") == "a")
    assert json.loads(pod_a["Tags"][0]) == {"eks:cluster-name": "prod", "k8s:namespace": "tenant-a", "unitcost:parent": "i-1"}

    # The same pools as the CUR 2.0 case: a $16, b $8; with idle kept apart, $7.50 unallocated (idle).
    pools = [
        PoolConfig(name="cluster_idle", match=PoolMatch(tags={"unitcost:idle": "true"}), idle="by_direct_cost",
                   direct_cost_scope=PoolMatch(resource_id_pattern="^pod/")),
        PoolConfig(name="ingress", match=PoolMatch(tags={"k8s:namespace": "ingress"}), driver="requests"),
    ]  # fmt: skip
    dims = customers([{"customer_id": "A", "tenant_id": "a"}, {"customer_id": "B", "tenant_id": "b"},
                      {"customer_id": "C", "tenant_id": "c"}])  # fmt: skip
    demand = usage([("a", "requests", 200), ("b", "requests", 100)])
    out = allocate(billing, demand, dims, [D], pools, "EffectiveCost")
    per = dict(out.group_by("customer_id").agg(pl.col("allocated_cost").sum()).iter_rows())
    assert {k: round(v, 2) for k, v in per.items()} == {"A": 16.00, "B": 8.00, "C": 2.00}
    pools[0] = PoolConfig(name="cluster_idle", match=PoolMatch(tags={"unitcost:idle": "true"}), idle="separate")
    out = allocate(billing, demand, dims, [D], pools, "EffectiveCost")
    kept = out.filter(pl.col("customer_id").is_null())
    assert kept["unallocated_reason"].to_list() == ["idle"] and round(kept["allocated_cost"].sum(), 2) == 7.50
    assert round(out["allocated_cost"].sum(), 2) == 26.00


def test_no_manifest_yet_and_missing_files(s3):
    assert _fetch(s3).rows.is_empty()
    put_manifest(s3, CUR, "2026-03", "exec-9", [f"s3://{BUCKET}/exports/cur2/data/BILLING_PERIOD=2026-03/gone.parquet"])
    with pytest.raises(InputDataError, match="gone.parquet: listed in the 2026-03 manifest but cannot be read"):
        _fetch(s3)


def test_missing_cur_column_names_the_s3_file(s3):
    rows = [{k: v for k, v in DAY_ITEMS[0].items() if k != "line_item_unblended_cost"}]
    schema = CUR_SCHEMA.remove(CUR_SCHEMA.get_field_index("line_item_unblended_cost"))
    uri = put_parquet(s3, CUR.data_prefix("2026-03") + "bad.parquet", rows, schema)
    put_manifest(s3, CUR, "2026-03", "exec-3", [uri])
    with pytest.raises(InputDataError, match=rf"{uri}: missing required column\(s\) line_item_unblended_cost for CUR 2.0"):
        _fetch(s3)


def test_latest_manifest_falls_back_to_the_newest(s3):
    s3.put_object(Bucket=BUCKET, Key=CUR.metadata_prefix("2026-03") + "other-Manifest.json",
                  Body=json.dumps({"executionId": "x", "dataFiles": []}).encode())  # fmt: skip
    assert latest_manifest(s3, CUR, "2026-03")["executionId"] == "x"


def _saas_on_the_export(s3, small_saas, make_settings, monkeypatch):
    """The small SaaS billed from the CUR 2.0 export only (execution exec-1 of March), on 2026-03-20."""
    import unitcost_platform.defs.restatement as restatement

    monkeypatch.setattr(restatement, "utc_today", lambda: dt.date(2026, 3, 20))
    config = small_saas / "unitcost.yaml"
    config.write_text(
        "billing:\n  files: null\n  aws_exports:\n"
        f"    - {{bucket: {BUCKET}, prefix: exports, export_name: cur2, format: cur2}}\n" + config.read_text()
    )
    uri = put_parquet(s3, CUR.data_prefix("2026-03") + "cur2-00001.snappy.parquet", DAY_ITEMS, CUR_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-1", [uri])
    return make_settings(small_saas), dg.DagsterInstance.ephemeral()


def test_restated_export_day_is_rematerialized_once(s3, small_saas, make_settings, monkeypatch):
    """Through Dagster: a refreshed manifest makes the sensor request the period's days, once."""
    settings, instance = _saas_on_the_export(s3, small_saas, make_settings, monkeypatch)
    from unitcost_platform.definitions import build_definitions

    run_range(settings, DAYS[9], DAYS[10], instance=instance)  # 2026-03-10 and 11
    billing = read_table(settings, "raw_billing")
    assert billing.filter(pl.col("x_ChargeDate") == D)["EffectiveCost"].sum() == pytest.approx(EFFECTIVE_D)
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(RESTATEMENT_SENSOR)
    resources = {k: defs.resources[k] for k in sensor.required_resource_keys}
    quiet = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not quiet.run_requests and "no restated billing: 2 export day(s)" in quiet.skip_reason.skip_message

    restated = DAY_ITEMS + [cur_item("Credit", -4.0, tags={"user_tenant_id": "acme"})]
    new = put_parquet(s3, CUR.data_prefix("2026-03") + "exec-2/cur2-00001.snappy.parquet", restated, CUR_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-2", [new])
    result = sensor(dg.build_sensor_context(instance=instance, cursor=quiet.cursor, resources=resources))
    [request] = result.run_requests
    assert request.tags["dagster/asset_partition_range_start"] == "2026-03-10"
    assert request.tags["dagster/asset_partition_range_end"] == "2026-03-11"
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert [r.run_key for r in again.run_requests] == [request.run_key]  # the same change: one run key

    run_range(settings, DAYS[9], DAYS[10], instance=instance)
    restated_total = read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == D)["EffectiveCost"].sum()
    assert restated_total == pytest.approx(EFFECTIVE_D - 4.0)
    done = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert not done.run_requests


def test_the_focus_sample_through_an_s3_export_reads_like_the_file(s3, tmp_path):
    """The real FOCUS 1.0 sample, delivered as a FOCUS export, normalizes exactly as from disk."""
    from pathlib import Path

    from unitcost_platform.sources.billing.files import read_billing_files

    sample = Path(__file__).resolve().parents[1] / "fixtures" / "focus-1.0-sample" / "focus_sample.csv"
    september = [dt.date(2024, 9, 1) + dt.timedelta(days=i) for i in range(30)]
    as_parquet = tmp_path / "sample.parquet"
    pl.read_csv(sample, infer_schema=False).write_parquet(as_parquet)  # strings, NULL literals and all
    key = FOCUS.data_prefix("2024-09") + "focus12-00001.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=key, Body=as_parquet.read_bytes())
    put_manifest(s3, FOCUS, "2024-09", "sample", [f"s3://{BUCKET}/{key}"])
    from_s3 = fetch_aws_export(FOCUS, september, cost_column="EffectiveCost", tenant=TenantConfig(), spread=True,
                               today=dt.date(2024, 11, 1), s3=s3).rows  # fmt: skip
    from_disk = read_billing_files([sample], september, cost_column="EffectiveCost", tenant=TenantConfig(), spread=True)
    columns = ["x_ChargeDate", "BilledCost", "EffectiveCost", "ChargeCategory", "ChargeFrequency", "ServiceName", "Tags", "x_SourceRow"]
    assert from_s3.height == from_disk.height == 1000
    assert from_s3.select(columns).sort("x_SourceRow").equals(from_disk.select(columns).sort("x_SourceRow"))
    # FOCUS 1.0 has no InvoiceId: a row is final 5 days after its billing period ends. One Oracle row
    # of the sample is billed in the October period, still open on 2024-11-01.
    provisional = from_s3.filter(~pl.col("x_IsFinal"))
    assert provisional.select("ProviderName", "BillingPeriodEnd").rows() == [("Oracle", dt.datetime(2024, 11, 1))]


def test_a_day_without_rows_in_the_export_is_not_restated_on_every_tick(s3, small_saas, make_settings, monkeypatch):
    """The period of a day is the partition's, not its rows': a day the export has no line items for
    recorded the manifest it was read from, and the sensor settles."""
    from unitcost_platform.definitions import build_definitions

    settings, instance = _saas_on_the_export(s3, small_saas, make_settings, monkeypatch)
    empty = dt.date(2026, 3, 14)  # no line item of the export falls on it
    run_range(settings, empty, empty, instance=instance)
    assert read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == empty).height == 0
    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def(RESTATEMENT_SENSOR)
    resources = {k: defs.resources[k] for k in sensor.required_resource_keys}
    first = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not first.run_requests, [r.tags for r in first.run_requests]
    second = sensor(dg.build_sensor_context(instance=instance, cursor=first.cursor, resources=resources))
    assert not second.run_requests and "no restated billing: 1 export day(s)" in second.skip_reason.skip_message


SPLIT_SCHEMA = pa.schema([*CUR_SCHEMA, ("split_line_item_parent_resource_id", pa.string()),
                          ("split_line_item_split_cost", pa.float64()), ("split_line_item_unused_cost", pa.float64())])  # fmt: skip
NODE = "i-0node"


def pod(namespace: str, split: float, unused: float) -> dict:
    """A split cost allocation usage record of one EKS pod for one hour on NODE (cost 0 in line_item)."""
    row = cur_item("Usage", 0.0, tags={"aws_eks_namespace": namespace, "aws_eks_cluster_name": "prod"})
    row["line_item_resource_id"] = f"arn:aws:eks:us-east-1:210987654321:pod/prod/{namespace}/app-{namespace}/9f1c"
    return {**row, "split_line_item_parent_resource_id": NODE, "split_line_item_split_cost": split,
            "split_line_item_unused_cost": unused}  # fmt: skip


def test_split_cost_allocation_data_splits_a_node_without_counting_it_twice(s3):
    # The $24 node hour: pods of tenant a ($9 split + $5 unused), tenant b ($4.50 + $2.50) and a shared
    # ingress pod ($3 + 0). The node's own line item keeps what its pods do not account for: 0.
    node = {**cur_item("Usage", 24.0), "line_item_resource_id": NODE,
            "split_line_item_parent_resource_id": None, "split_line_item_split_cost": None, "split_line_item_unused_cost": None}  # fmt: skip
    rows = [node, pod("tenant-a", 9.0, 5.0), pod("tenant-b", 4.5, 2.5), pod("ingress", 3.0, 0.0)]
    uri = put_parquet(s3, CUR.data_prefix("2026-03") + "cur2-00001.snappy.parquet", rows, SPLIT_SCHEMA)
    put_manifest(s3, CUR, "2026-03", "exec-1", [uri])
    tenant = TenantConfig(namespace_map={"^tenant-(.+)$": "{1}"})
    read = fetch_aws_export(CUR, [D], cost_column="EffectiveCost", tenant=tenant, spread=True, today=dt.date(2026, 3, 20), s3=s3)
    billing = read.rows
    assert billing["EffectiveCost"].sum() == pytest.approx(24.0, rel=1e-12)
    assert billing["BilledCost"].sum() == pytest.approx(24.0, rel=1e-12)  # the invoice still shows the instance
    by = {(r["ResourceId"].rsplit("/", 3)[-3] if "pod/" in r["ResourceId"] else r["ResourceId"], r["x_TenantId"]): r["EffectiveCost"]
          for r in billing.iter_rows(named=True) if "unitcost:idle" not in (r["Tags"] or "")}  # fmt: skip
    assert by == {
        (NODE, None): pytest.approx(0.0, abs=1e-12),  # 24 - (9 + 5) - (4.5 + 2.5) - (3 + 0)
        ("tenant-a", "a"): 9.0, ("tenant-b", "b"): 4.5, ("ingress", None): 3.0,
    }  # the idle rows are checked below
    idle = billing.filter(pl.col("Tags").str.contains("unitcost:idle"))
    assert sorted(idle["EffectiveCost"].to_list()) == [2.5, 5.0] and set(idle["ResourceId"]) == {NODE}

    # With an idle pool by direct cost (pods only) and the ingress split 2:1 by requests: a $16, b $8.
    pools = [
        PoolConfig(name="cluster_idle", match=PoolMatch(tags={"unitcost:idle": "true"}), idle="by_direct_cost",
                   direct_cost_scope=PoolMatch(resource_id_pattern=":pod/")),
        PoolConfig(name="ingress", match=PoolMatch(tags={"aws_eks_namespace": "ingress"}), driver="requests"),
        PoolConfig(name="nodes", match=PoolMatch(resource_id_pattern="^i-"), driver="requests"),
    ]  # fmt: skip
    dims = customers([{"customer_id": "A", "tenant_id": "a"}, {"customer_id": "B", "tenant_id": "b"}])
    out = allocate(billing, usage([("a", "requests", 200), ("b", "requests", 100)]), dims, [D], pools, "EffectiveCost")
    per = dict(out.group_by("customer_id").agg(pl.col("allocated_cost").sum()).iter_rows())
    assert per == {"A": pytest.approx(16.0), "B": pytest.approx(8.0)}


def _damage_row_group(path, group: int, column: str) -> None:
    """Overwrite one row group's data pages of `column`: that row group cannot be decoded any more."""
    metadata = pq.ParquetFile(path).metadata
    chunk = metadata.row_group(group).column(metadata.schema.names.index(column))
    with open(path, "r+b") as f:
        f.seek(chunk.data_page_offset)
        f.write(b"\xff" * chunk.total_compressed_size)


def test_a_month_of_cur2_is_read_for_the_day_only(s3, tmp_path):
    # A month's export, a row group per day (D-1, D, D+1). The day's read keeps D's line items and
    # never decodes the other days' row groups: one of them is damaged and the read still succeeds.
    month = [cur_item("Usage", cost, day=D + dt.timedelta(days=shift), tags={"user_tenant_id": "acme"})
             for shift, cost in ((-1, 1.0), (-1, 2.0), (0, 3.0), (0, 4.0), (1, 5.0), (1, 6.0))]  # fmt: skip
    path = tmp_path / "cur2-00001.snappy.parquet"
    pq.write_table(pa.Table.from_pylist(month, schema=CUR_SCHEMA), path, row_group_size=2)
    _damage_row_group(path, 0, "line_item_unblended_cost")
    key = CUR.data_prefix("2026-03") + "cur2-00001.snappy.parquet"
    s3.put_object(Bucket=BUCKET, Key=key, Body=path.read_bytes())
    put_manifest(s3, CUR, "2026-03", "exec-1", [f"s3://{BUCKET}/{key}"])
    rows = _fetch(s3).rows.sort("x_SourceRow")
    assert rows.select("x_SourceRow", "EffectiveCost").rows() == [(3, 3.0), (4, 4.0)]  # rows of the file, as exported
    with pytest.raises(InputDataError, match=r"cur2-00001\.snappy\.parquet: cannot be read"):
        fetch_aws_export(CUR, [D - dt.timedelta(days=1)], cost_column="EffectiveCost", tenant=TenantConfig(),
                         spread=True, today=dt.date(2026, 3, 20), s3=s3)  # fmt: skip


def test_a_cur2_file_among_billing_files_is_read_for_the_day_only(tmp_path):
    from unitcost_platform.sources.billing.files import read_billing_files

    month = [cur_item("Usage", cost, day=D + dt.timedelta(days=shift), tags={"user_tenant_id": "acme"})
             for shift, cost in ((-1, 1.0), (-1, 2.0), (0, 3.0), (0, float("inf")), (1, 5.0), (1, 6.0))]  # fmt: skip
    path = tmp_path / "cur2.parquet"
    pq.write_table(pa.Table.from_pylist(month, schema=CUR_SCHEMA), path, row_group_size=2)
    _damage_row_group(path, 2, "line_item_unblended_cost")

    def read(day):
        return read_billing_files([path], [day], cost_column="EffectiveCost", tenant=TenantConfig(), spread=True)

    # D's second line item has an infinite cost: named by its row in the file, after the skipped row group.
    with pytest.raises(InputDataError, match=r"cur2\.parquet: column BilledCost has 1 non-finite value\(s\) .*: row 4 'inf'"):
        read(D)
    assert read(D - dt.timedelta(days=1)).sort("x_SourceRow").select("x_SourceRow", "EffectiveCost").rows() == [(1, 1.0), (2, 2.0)]
