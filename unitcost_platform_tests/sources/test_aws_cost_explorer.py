"""Cost Explorer against moto (responses of the real GetCostAndUsage shape) and botocore's Stubber."""

import datetime as dt
from decimal import Decimal

import boto3
import polars as pl
import pytest
import requests
from botocore.stub import Stubber
from moto import mock_aws

from unitcost_platform.config_base import TenantConfig
from unitcost_platform.contracts.raw_billing import to_raw_billing
from unitcost_platform.sources.billing.cost_explorer import (
    CostExplorerError,
    CostExplorerSource,
    build_request,
    fetch_cost_explorer,
)

D1, D2 = dt.date(2026, 3, 10), dt.date(2026, 3, 11)
CFG = CostExplorerSource()


def group(tenant: str, service: str, amount: str, metric: str = "AmortizedCost") -> dict:
    return {"Keys": [f"tenant_id${tenant}", service], "Metrics": {metric: {"Amount": amount, "Unit": "USD"}}}


PAGE_1 = {
    "NextPageToken": "page-2-token",
    "GroupDefinitions": [{"Type": "TAG", "Key": "tenant_id"}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    "ResultsByTime": [
        {"TimePeriod": {"Start": "2026-03-10", "End": "2026-03-11"}, "Total": {}, "Estimated": False,
         "Groups": [group("acme", "Amazon Elastic Compute Cloud - Compute", "12.3456789012"),
                    group("Beta", "Amazon Simple Storage Service", "0.0000012"),
                    group("", "Amazon Virtual Private Cloud", "3.3333333333")]},  # untagged: "tenant_id$"
    ],
    "DimensionValueAttributes": [],
}  # fmt: skip
PAGE_2 = {
    "GroupDefinitions": PAGE_1["GroupDefinitions"],
    "ResultsByTime": [
        {"TimePeriod": {"Start": "2026-03-11", "End": "2026-03-12"}, "Total": {}, "Estimated": True,
         "Groups": [group("acme", "Amazon Elastic Compute Cloud - Compute", "20.01"),
                    group("acme", "Tax", "-1.5")]},  # a credit-like negative amount
    ],
    "DimensionValueAttributes": [],
}  # fmt: skip


def _seed(*pages: dict) -> None:
    response = requests.post(
        "http://motoapi.amazonaws.com/moto-api/static/ce/cost-and-usage-results", json={"results": list(pages)}
    )
    assert response.status_code == 201


@pytest.fixture
def aws(monkeypatch):
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    with mock_aws():
        yield boto3.client("ce", region_name="us-east-1")


def test_request_covers_the_range_once_with_the_chosen_metric():
    request = build_request(CFG, [D2, D1], "EffectiveCost")
    assert request == {
        "TimePeriod": {"Start": "2026-03-10", "End": "2026-03-12"},
        "Granularity": "DAILY",
        "Metrics": ["AmortizedCost"],
        "GroupBy": [{"Type": "TAG", "Key": "tenant_id"}, {"Type": "DIMENSION", "Key": "SERVICE"}],
    }
    assert build_request(CFG, [D1], "BilledCost")["Metrics"] == ["UnblendedCost"]


def test_two_pages_untagged_group_and_totals_to_the_cent(aws):
    _seed(PAGE_1, PAGE_2)
    rows = fetch_cost_explorer(CFG, [D1, D2], cost_column="EffectiveCost", client=aws)
    assert rows.height == 5
    assert rows["BilledCost"].null_count() == 5  # AmortizedCost fills EffectiveCost only
    raw = to_raw_billing(rows, [D1, D2], cost_column="EffectiveCost", tenant=TenantConfig(), tag_key="tenant_id", source="aws_cost_explorer")
    expected = {
        D1: Decimal("12.3456789012") + Decimal("0.0000012") + Decimal("3.3333333333"),
        D2: Decimal("20.01") + Decimal("-1.5"),
    }
    totals = dict(raw.group_by("x_ChargeDate").agg(pl.col("EffectiveCost").sum()).iter_rows())
    for day, amount in expected.items():
        assert round(Decimal(str(totals[day])), 2) == round(amount, 2)
        assert totals[day] == pytest.approx(float(amount), abs=1e-9)
    tenants = raw.filter(pl.col("x_ChargeDate") == D1).sort("x_SourceRow")["x_TenantId"].to_list()
    assert tenants == ["acme", "beta", None]  # normalized like billing tags; "tenant_id$" is untagged
    assert raw.filter(pl.col("x_ChargeDate") == D1)["x_IsFinal"].all()
    assert not raw.filter(pl.col("x_ChargeDate") == D2)["x_IsFinal"].any()  # Estimated
    assert set(raw["ServiceCategory"]) == {"Compute", "Storage", "Networking", "Other"}
    assert set(raw["ProviderName"]) == {"AWS"}


def test_days_outside_the_request_are_ignored(aws):
    _seed({k: v for k, v in PAGE_1.items() if k != "NextPageToken"})  # only 2026-03-10 in it
    rows = fetch_cost_explorer(CFG, [D2], cost_column="EffectiveCost", client=aws)
    assert rows.is_empty()


def _stubbed(responses):
    client = boto3.client("ce", region_name="us-east-1", aws_access_key_id="AKIDEXAMPLE", aws_secret_access_key="sEcReT-kEy-42")
    stubber = Stubber(client)
    for kind, value in responses:
        if kind == "error":
            stubber.add_client_error("get_cost_and_usage", service_error_code=value, service_message="Rate exceeded", http_status_code=400)
        else:
            stubber.add_response("get_cost_and_usage", value)
    stubber.activate()
    return client, stubber


def test_throttling_is_retried_a_bounded_number_of_times():
    ok = {k: v for k, v in PAGE_2.items()}
    client, stubber = _stubbed([("error", "LimitExceededException"), ("error", "LimitExceededException"), ("ok", ok)])
    waits, lines = [], []
    rows = fetch_cost_explorer(CFG, [D2], cost_column="EffectiveCost", client=client, sleep=waits.append, log=lines.append)
    assert rows.height == 2 and waits == [1.0, 2.0]
    assert sum("LimitExceededException" in line for line in lines) == 2
    stubber.assert_no_pending_responses()

    client, _ = _stubbed([("error", "LimitExceededException")] * 3)
    with pytest.raises(CostExplorerError, match=r"LimitExceededException: Rate exceeded \(after 2 retries\)"):
        fetch_cost_explorer(CostExplorerSource(max_retries=2), [D2], cost_column="EffectiveCost", client=client, sleep=lambda _: None)


def test_other_errors_are_reported_without_credentials():
    client, _ = _stubbed([("error", "AccessDeniedException")])
    with pytest.raises(CostExplorerError) as err:
        fetch_cost_explorer(CFG, [D1], cost_column="EffectiveCost", client=client, sleep=lambda _: None)
    assert "AccessDeniedException" in str(err.value)
    assert "sEcReT-kEy-42" not in str(err.value) and "AKIDEXAMPLE" not in str(err.value)


def test_unreadable_group_is_a_clear_error():
    bad = {"ResultsByTime": [{"TimePeriod": {"Start": "2026-03-10", "End": "2026-03-11"}, "Estimated": False,
                              "Groups": [{"Keys": ["tenant_id$a", "EC2"], "Metrics": {"UnblendedCost": {"Amount": "1", "Unit": "USD"}}}]}]}  # fmt: skip
    client, _ = _stubbed([("ok", bad)])
    with pytest.raises(CostExplorerError, match="no readable AmortizedCost amount in 2026-03-10"):
        fetch_cost_explorer(CFG, [D1], cost_column="EffectiveCost", client=client)


def test_next_page_repeats_the_identical_request_with_the_token():
    client = boto3.client("ce", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="y")
    request = build_request(CFG, [D1, D2], "EffectiveCost")
    with Stubber(client) as stubber:
        stubber.add_response("get_cost_and_usage", PAGE_1, expected_params=request)
        stubber.add_response("get_cost_and_usage", PAGE_2, expected_params={**request, "NextPageToken": "page-2-token"})
        rows = fetch_cost_explorer(CFG, [D1, D2], cost_column="EffectiveCost", client=client)
        stubber.assert_no_pending_responses()
    assert rows.height == 5


def test_materialized_through_dagster_and_restated_days_requested_once(aws, small_saas, make_settings, monkeypatch):
    """raw_billing from Cost Explorer to the cent; a day whose total changed is re-requested, once."""
    import dagster as dg
    from moto.ce.models import ce_backends

    import unitcost_platform.defs.restatement as restatement
    from unitcost_platform.definitions import build_definitions
    from unitcost_platform_tests.saas import read_table, run_range

    config = small_saas / "unitcost.yaml"
    config.write_text("billing:\n  files: null\n  cost_explorer: {tag_key: tenant_id}\n" + config.read_text())
    settings = make_settings(small_saas)
    instance = dg.DagsterInstance.ephemeral()
    _seed(PAGE_1, PAGE_2)
    run_range(settings, D1, D2, instance=instance)
    billing = read_table(settings, "raw_billing")
    assert round(Decimal(str(billing.filter(pl.col("x_ChargeDate") == D1)["EffectiveCost"].sum())), 2) == Decimal("15.68")
    assert billing.filter(pl.col("x_ChargeDate") == D2)["EffectiveCost"].sum() == pytest.approx(18.51)
    assert set(billing["x_Source"]) == {"aws_cost_explorer"}

    defs = build_definitions(settings)
    sensor = defs.resolve_sensor_def("billing_restatement")
    resources = {k: defs.resources[k] for k in sensor.required_resource_keys}
    monkeypatch.setattr(restatement, "utc_today", lambda: D2 + dt.timedelta(days=1))
    quiet = sensor(dg.build_sensor_context(instance=instance, resources=resources))
    assert not quiet.run_requests
    assert "2 API day(s) checked" in quiet.skip_reason.skip_message

    # The next day AWS restates 2026-03-11: a credit lowers it. The re-pull sees it.
    backend = ce_backends["123456789012"]["global"]
    backend.cost_usage_results.clear()
    restated = {**PAGE_2, "ResultsByTime": [{**PAGE_2["ResultsByTime"][0], "Estimated": False,
                "Groups": PAGE_2["ResultsByTime"][0]["Groups"] + [group("acme", "Amazon Elastic Compute Cloud - Compute", "-2.51")]}]}  # fmt: skip
    _seed(PAGE_1, restated)
    monkeypatch.setattr(restatement, "utc_today", lambda: D2 + dt.timedelta(days=2))
    result = sensor(dg.build_sensor_context(instance=instance, cursor=quiet.cursor, resources=resources))
    [request] = result.run_requests
    assert (request.tags["dagster/asset_partition_range_start"], request.tags["dagster/asset_partition_range_end"]) == (D2.isoformat(), D2.isoformat())
    again = sensor(dg.build_sensor_context(instance=instance, cursor=result.cursor, resources=resources))
    assert not again.run_requests  # the API is re-pulled once a day
    _seed(restated)  # what Cost Explorer answers the requested run's (one-day) request
    run_range(settings, D2, D2, instance=instance)
    assert read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == D2)["EffectiveCost"].sum() == pytest.approx(16.0)
    assert read_table(settings, "raw_billing").filter(pl.col("x_ChargeDate") == D2)["x_IsFinal"].all()
