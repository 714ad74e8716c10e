"""Azure and GCP (and files alongside) materialize raw_billing through real Dagster runs, to the cent.

Each cloud answers from a local server in its real wire format (see test_azure_cost.py and
test_gcp_billing.py for the shapes); the run swaps the connectors' resources for ones pointed there.
"""

import datetime as dt
from decimal import Decimal

import dagster as dg
import polars as pl
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery

from unitcost_platform.sources.billing.azure import AzureResource
from unitcost_platform.sources.billing.gcp import BigQueryResource, default_project
from unitcost_platform_tests.saas import read_table, run_range
from unitcost_platform_tests.sources.test_azure_cost import QUERY_PATH, SCOPE, result
from unitcost_platform_tests.sources.test_gcp_billing import (
    API,
    EXPORT_SCHEMA,
    TABLE,
    FakeBigQuery,
    row,
)

D = dt.date(2026, 3, 10)
AZURE_ROWS = [  # Cost, UsageDate, TagKey, TagValue, ServiceName, Currency
    [12.3456789, 20260310, "tenant_id", "T1", "Virtual Machines", "USD"],
    [0.004, 20260310, "tenant_id", "", "Bandwidth", "USD"],
    [7.5, 20260311, "tenant_id", "t2", "Storage", "USD"],  # another day: not in this run
]
GCP_ROWS = [  # charge_day, service, project, region, tenant, currency, cost, credits
    row("2026-03-10", "Compute Engine", "shop-prod", "us-central1", "t2", "USD", "20.0", "-1.255"),
    row("2026-03-10", "Cloud Storage", "shop-prod", "us-central1", None, "USD", "3.1", "0.0"),
]


def to_the_cent(total: float, exact: Decimal) -> bool:
    return abs(Decimal(str(total)) - exact) < Decimal("0.005")


@pytest.fixture
def clouds(small_saas, httpserver, monkeypatch):
    config = small_saas / "unitcost.yaml"
    config.write_text(
        "billing:\n"
        f"  azure: {{scope: '{SCOPE}', endpoint: '{httpserver.url_for('/').rstrip('/')}'}}\n"
        f"  gcp: {{table: {TABLE}, kind: standard}}\n" + config.read_text()
    )
    for env in ("AZURE_TENANT_ID", "AZURE_CLIENT_ID", "AZURE_CLIENT_SECRET"):  # the principal's secrets exist
        monkeypatch.setenv(env, f"{env.lower()}-FAKE")
    httpserver.expect_request(QUERY_PATH, method="POST").respond_with_json(result(AZURE_ROWS))
    httpserver.expect_request(API).respond_with_handler(FakeBigQuery(EXPORT_SCHEMA, [GCP_ROWS]))
    return small_saas


class SignedInAzure(AzureResource):
    """A service principal that already holds a token."""

    def token_provider(self, cfg):
        return lambda: "fake-token"


class LocalBigQuery(BigQueryResource):
    """BigQuery's client, anonymous, talking to the local server."""

    endpoint: str

    def client(self, cfg):
        return bigquery.Client(project=default_project(cfg), credentials=AnonymousCredentials(),
                               client_options={"api_endpoint": self.endpoint})  # fmt: skip


def test_files_azure_and_gcp_merged_for_the_day(clouds, make_settings, httpserver):
    settings = make_settings(clouds)
    swapped = {"azure": SignedInAzure(), "bigquery": LocalBigQuery(endpoint=httpserver.url_for(""))}
    assert run_range(settings, D, D, instance=dg.DagsterInstance.ephemeral(), resources=swapped).success
    billing = read_table(settings, "raw_billing")
    totals = dict(billing.group_by("x_Source").agg(pl.col("EffectiveCost").sum()).iter_rows())
    assert to_the_cent(totals["azure"], Decimal("12.3456789") + Decimal("0.004"))
    assert to_the_cent(totals["gcp"], Decimal("20.0") - Decimal("1.255") + Decimal("3.1"))
    assert totals["files"] == pytest.approx(10 + 10 + 2 + 1 + 1.2 + 3)  # the small SaaS's own day 9
    azure = billing.filter(pl.col("x_Source") == "azure").sort("EffectiveCost")
    assert azure["x_TenantId"].to_list() == [None, "t1"]  # normalized like every other source
    assert set(azure["ProviderName"]) == {"Microsoft"} and set(azure["ServiceCategory"]) == {"Networking", "Compute"}
    gcp = billing.filter(pl.col("x_Source") == "gcp").sort("EffectiveCost")
    assert gcp["x_TenantId"].to_list() == [None, "t2"] and set(gcp["SubAccountId"]) == {"shop-prod"}
    # The cloud costs reach the tenants' customers: t1 is C1's, t2 is C2's.
    allocated = read_table(settings, "allocated_cost").filter(pl.col("pool") == "direct")
    direct = dict(allocated.group_by("customer_id").agg(pl.col("allocated_cost").sum()).iter_rows())
    assert direct["C1"] == pytest.approx(10 + 12.3456789)
    assert direct["C2"] == pytest.approx(10 + 20.0 - 1.255)
