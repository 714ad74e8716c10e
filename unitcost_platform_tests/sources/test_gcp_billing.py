"""GCP billing connector: the real BigQuery client against a local server speaking the REST API.

The server answers what `Client.query_and_wait` calls: `jobs.query` (POST .../queries) with the
first page, then, because that page carries a `pageToken`, `jobs.get` (GET .../jobs/{id}) and
`jobs.getQueryResults` (GET .../queries/{id}?pageToken=...) for the rest. Bodies have the API's
shape: schema fields with legacy type names, rows as `{"f": [{"v": ...}]}` with every value a
string (FLOAT too) or null, counts as strings. BigQuery itself aggregates, so a response holds
the query's result columns (all scalar), not export rows.
"""

import datetime as dt
import json
import re
import sys

import google.cloud
import polars as pl
import pytest
from google.auth.credentials import AnonymousCredentials
from google.cloud import bigquery
from polars.testing import assert_frame_equal
from werkzeug import Request, Response

from unitcost_platform.config_base import RestatementConfig
from unitcost_platform.contracts.raw_billing import API_ROW_SCHEMA
from unitcost_platform.sources.billing.gcp import (
    GcpBillingError,
    GcpSource,
    build_query,
    fetch_gcp_costs,
    focus_category,
)

PROJECT = "billing-host"
TABLE = f"{PROJECT}.billing_export.gcp_billing_export_v1_0123AB_4567CD_89EF01"
RESOURCE_TABLE = f"{PROJECT}.billing_export.gcp_billing_export_resource_v1_0123AB_4567CD_89EF01"
FOCUS_VIEW = f"{PROJECT}.billing_export.focus_v1_0"
JOB_ID = "job_Zk3fQ9x2LmA7"
API = re.compile(r"^/bigquery/v2/projects/[^/]+/(queries|jobs)(/[^/]+)?$")

JUNE_1, JUNE_2, JUNE_3 = dt.date(2024, 6, 1), dt.date(2024, 6, 2), dt.date(2024, 6, 3)
# On June 4 with 2 trailing days and the month closed on the 1st, the re-pull window is
# [June 2, June 3]: June 1 is final, June 3 is not.
TODAY = dt.date(2024, 6, 4)
RESTATEMENT = RestatementConfig(trailing_days=2, month_close_day=1)


def field(name: str, type_: str) -> dict:
    return {"name": name, "type": type_, "mode": "NULLABLE"}


EXPORT_SCHEMA = [
    field("charge_day", "DATE"), field("service_name", "STRING"), field("project_id", "STRING"),
    field("region_id", "STRING"), field("tenant", "STRING"), field("currency", "STRING"),
    field("cost", "FLOAT"), field("credits", "FLOAT"),
]  # fmt: skip
RESOURCE_SCHEMA = EXPORT_SCHEMA[:4] + [field("resource_name", "STRING")] + EXPORT_SCHEMA[4:]
FOCUS_SCHEMA = [
    field("charge_day", "DATE"), field("service_name", "STRING"), field("service_category", "STRING"),
    field("sub_account_id", "STRING"), field("resource_id", "STRING"), field("region_id", "STRING"),
    field("tenant", "STRING"), field("currency", "STRING"), field("billed_cost", "FLOAT"),
    field("effective_cost", "FLOAT"),
]  # fmt: skip


def row(*values) -> dict:
    return {"f": [{"v": v} for v in values]}


def api_error(
    code: int, status: str, reason: str, message: str, domain: str = "global"
) -> Response:
    body = {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": domain, "reason": reason}],
            "status": status,
        }
    }
    return Response(json.dumps(body), status=code, content_type="application/json; charset=UTF-8")


class FakeBigQuery:
    """BigQuery REST v2 for one query: its result in pages, optionally failures before it runs."""

    def __init__(
        self,
        schema: list[dict],
        pages: list[list[dict]],
        failures: list[Response] = (),
        page_failures: list[Response] = (),
    ):
        self.schema, self.pages = schema, pages
        self.failures, self.page_failures = list(failures), list(page_failures)
        self.calls: list[tuple[str, str, dict]] = []
        self.query_bodies: list[dict] = []

    def _total(self) -> str:
        return str(sum(len(p) for p in self.pages))

    def _page(self, page: int) -> dict:
        """The rows of a page and the token of the next; the API leaves out `rows` when none."""
        rows = {"rows": self.pages[page]} if self.pages[page] else {}
        return rows | ({"pageToken": f"BHR7Y3{page}"} if page + 1 < len(self.pages) else {})

    def _job_ref(self) -> dict:
        return {"projectId": PROJECT, "jobId": JOB_ID, "location": "US"}

    def __call__(self, request: Request) -> Response:
        self.calls.append((request.method, request.path, dict(request.args)))
        kind, job = API.match(request.path).groups()
        if request.method == "POST" and kind == "queries":
            self.query_bodies.append(json.loads(request.get_data()))
            if self.failures:
                return self.failures.pop(0)
            return self._json({
                "kind": "bigquery#queryResponse", "schema": {"fields": self.schema},
                "jobReference": self._job_ref(), "totalRows": self._total(),
                "totalBytesProcessed": "48213", "jobComplete": True, "cacheHit": False, **self._page(0),
            })  # fmt: skip
        if request.method == "GET" and kind == "jobs":
            return self._json(self._job(self.query_bodies[-1]))
        if request.method == "GET" and kind == "queries":
            if self.page_failures:
                return self.page_failures.pop(0)
            page = int(request.args["pageToken"].removeprefix("BHR7Y3")) + 1
            body = {
                "kind": "bigquery#getQueryResultsResponse", "etag": "k3Vw==", "schema": {"fields": self.schema},
                "jobReference": self._job_ref(), "totalRows": self._total(),
                "totalBytesProcessed": "48213", "jobComplete": True, "cacheHit": False, **self._page(page),
            }  # fmt: skip
            # The API returns only the fields a partial response asks for.
            wanted = request.args.get("fields")
            return self._json(
                {k: v for k, v in body.items() if not wanted or k in wanted.split(",")}
            )
        return api_error(404, "NOT_FOUND", "notFound", f"Not found: {request.path}")

    def _job(self, sent: dict) -> dict:
        return {
            "kind": "bigquery#job",
            "etag": "pX0c2w==",
            "id": f"{PROJECT}:US.{JOB_ID}",
            "selfLink": f"https://bigquery.googleapis.com/bigquery/v2/projects/{PROJECT}/jobs/{JOB_ID}?location=US",
            "user_email": "unitcost@billing-host.iam.gserviceaccount.com",
            "configuration": {
                "query": {
                    "query": sent["query"],
                    "destinationTable": {"projectId": PROJECT, "datasetId": "_5e1c2a", "tableId": "anon3f9b"},
                    "writeDisposition": "WRITE_TRUNCATE",
                    "priority": "INTERACTIVE",
                    "useLegacySql": False,
                    "parameterMode": "NAMED",
                    "queryParameters": sent.get("queryParameters", []),
                },
                "jobType": "QUERY",
            },
            "jobReference": self._job_ref(),
            "statistics": {
                "creationTime": "1717466400123",
                "startTime": "1717466400200",
                "endTime": "1717466401350",
                "totalBytesProcessed": "48213",
                "query": {"totalBytesProcessed": "48213", "totalBytesBilled": "10485760", "cacheHit": False,
                          "statementType": "SELECT"},
            },
            "status": {"state": "DONE"},
        }  # fmt: skip

    @staticmethod
    def _json(body: dict) -> Response:
        return Response(json.dumps(body), content_type="application/json; charset=UTF-8")

    def params(self) -> dict[str, str]:
        """The named parameters of the last jobs.query request, as sent."""
        sent = self.query_bodies[-1]
        assert sent["parameterMode"] == "NAMED"
        return {p["name"]: p["parameterValue"]["value"] for p in sent["queryParameters"]}


@pytest.fixture
def serve(httpserver):
    """Start a FakeBigQuery; returns it and a real client pointed at it."""

    def start(fake: FakeBigQuery) -> bigquery.Client:
        httpserver.expect_request(API).respond_with_handler(fake)
        return bigquery.Client(
            project=PROJECT,
            credentials=AnonymousCredentials(),
            client_options={"api_endpoint": httpserver.url_for("")},
        )

    return start


def expected(rows: list[dict]) -> pl.DataFrame:
    """API rows from the given columns, with the constant columns every GCP row has."""
    frame = pl.DataFrame(rows)
    return (
        frame.with_columns(
            pl.lit("Google Cloud").alias("ProviderName"),
            pl.lit("Usage").alias("ChargeCategory"),
            pl.lit("gcp").alias("x_Source"),
            (pl.col("ChargePeriodStart") + pl.duration(days=1)).alias("ChargePeriodEnd"),
        )
        .select(list(API_ROW_SCHEMA))
        .cast(API_ROW_SCHEMA)
    )


def at(day: dt.date) -> dt.datetime:
    return dt.datetime(day.year, day.month, day.day)


def fetch(
    cfg: GcpSource, days: list[dt.date], client, log=None, cost_column="EffectiveCost"
) -> pl.DataFrame:
    return fetch_gcp_costs(
        cfg,
        days,
        cost_column=cost_column,
        today=TODAY,
        restatement=RESTATEMENT,
        client=client,
        log=log,
    )


def test_standard_export_two_pages_credits_untagged_and_days_outside(serve):
    fake = FakeBigQuery(EXPORT_SCHEMA, [
        [
            row("2024-06-01", "Compute Engine", "shop-prod", "us-central1", "acme", "USD", "12.5", "-2.25"),
            row("2024-06-01", "Cloud Storage", "shop-prod", "us", None, "USD", "3.0", "0.0"),
            row("2024-06-02", "Compute Engine", "shop-prod", "us-central1", "acme", "USD", "7.0", "-1.0"),
        ],
        [
            row("2024-06-03", "Cloud SQL", "shop-prod", "europe-west1", "globex", "USD", "1.25E1", "-12.5"),
            row("2024-06-03", "BigQuery", "shop-analytics", None, "", "USD", "0.4", "0.0"),
        ],
    ])  # fmt: skip
    client = serve(fake)
    lines: list[str] = []
    cfg = GcpSource(table=TABLE, kind="standard", label_key="tenant_id", late_days=2)

    got = fetch(cfg, [JUNE_1, JUNE_3], client, log=lines.append)

    # Net cost = cost + credits: 12.5 - 2.25 = 10.25; 3.0 + 0 = 3.0; 12.5 - 12.5 = 0 (fully
    # credited); 0.4 + 0 = 0.4. Row 3 is June 2, between the requested days, so it is dropped.
    # Cloud Storage (null label) and BigQuery (empty label) are untagged.
    want = expected([
        {"ChargePeriodStart": at(JUNE_1), "BilledCost": 10.25, "EffectiveCost": 10.25, "BillingCurrency": "USD",
         "ServiceName": "Compute Engine", "ServiceCategory": "Compute", "SubAccountId": "shop-prod",
         "ResourceId": None, "RegionId": "us-central1", "Tags": '{"tenant_id":"acme"}', "x_IsFinal": True,
         "x_SourceFile": f"gcp:{TABLE}", "x_SourceRow": 1},
        {"ChargePeriodStart": at(JUNE_1), "BilledCost": 3.0, "EffectiveCost": 3.0, "BillingCurrency": "USD",
         "ServiceName": "Cloud Storage", "ServiceCategory": "Storage", "SubAccountId": "shop-prod",
         "ResourceId": None, "RegionId": "us", "Tags": None, "x_IsFinal": True,
         "x_SourceFile": f"gcp:{TABLE}", "x_SourceRow": 2},
        {"ChargePeriodStart": at(JUNE_3), "BilledCost": 0.0, "EffectiveCost": 0.0, "BillingCurrency": "USD",
         "ServiceName": "Cloud SQL", "ServiceCategory": "Databases", "SubAccountId": "shop-prod",
         "ResourceId": None, "RegionId": "europe-west1", "Tags": '{"tenant_id":"globex"}', "x_IsFinal": False,
         "x_SourceFile": f"gcp:{TABLE}", "x_SourceRow": 4},
        {"ChargePeriodStart": at(JUNE_3), "BilledCost": 0.4, "EffectiveCost": 0.4, "BillingCurrency": "USD",
         "ServiceName": "BigQuery", "ServiceCategory": "Analytics", "SubAccountId": "shop-analytics",
         "ResourceId": None, "RegionId": None, "Tags": None, "x_IsFinal": False,
         "x_SourceFile": f"gcp:{TABLE}", "x_SourceRow": 5},
    ])  # fmt: skip
    assert_frame_equal(got, want)

    # One query for the whole range, then the second page by its token.
    assert [(m, p) for m, p, _ in fake.calls] == [
        ("POST", f"/bigquery/v2/projects/{PROJECT}/queries"),
        ("GET", f"/bigquery/v2/projects/{PROJECT}/jobs/{JOB_ID}"),
        ("GET", f"/bigquery/v2/projects/{PROJECT}/queries/{JOB_ID}"),
    ]
    assert fake.calls[2][2]["pageToken"] == "BHR7Y30"
    sent = fake.query_bodies[0]
    assert f"FROM `{TABLE}`" in sent["query"] and sent["useLegacySql"] is False
    # June 1..3: partitions from a day early (May 31) up to (not including) June 4 + 2 late days.
    assert fake.params() == {
        "label_key": "tenant_id", "first_day": "2024-06-01", "end_day": "2024-06-04",
        "partition_start": "2024-05-31", "partition_end": "2024-06-06",
    }  # fmt: skip
    assert any(TABLE in line and "2024-06-01..2024-06-03" in line for line in lines)
    # 10.25 + 3.0 + 0.0 + 0.4 = 13.65 kept of 5 rows received.
    assert any(
        "5 row(s)" in line and "4 in the requested days" in line and "13.65" in line
        for line in lines
    )


def test_resource_level_table_keeps_the_resource_name(serve):
    fake = FakeBigQuery(RESOURCE_SCHEMA, [[
        row("2024-06-01", "Compute Engine", "shop-prod", "us-central1", "web-7f9c", "acme", "EUR", "8.0", "-0.5"),
        row("2024-06-01", "Compute Engine", "shop-prod", "us-central1", None, "acme", "EUR", "0.75", "0.0"),
    ]])  # fmt: skip
    client = serve(fake)
    cfg = GcpSource(table=RESOURCE_TABLE, kind="resource", label_key="customer")

    got = fetch(cfg, [JUNE_1], client, cost_column="BilledCost")

    assert got["ResourceId"].to_list() == ["web-7f9c", None]
    assert got["BilledCost"].to_list() == [7.5, 0.75]  # 8.0 - 0.5; 0.75 + 0
    assert got["EffectiveCost"].to_list() == [7.5, 0.75]
    assert got["Tags"].to_list() == ['{"customer":"acme"}'] * 2
    assert got["BillingCurrency"].to_list() == ["EUR", "EUR"]
    assert "resource.name AS resource_name" in fake.query_bodies[0]["query"]
    assert fake.params()["label_key"] == "customer"


def test_rate_limit_and_unavailable_are_retried_by_the_client(serve, monkeypatch):
    # The client's backoff waits are recorded instead of slept (this stands in for time.sleep).
    sleeps: list[float] = []
    monkeypatch.setattr("google.api_core.retry.retry_unary.time.sleep", sleeps.append)
    unavailable = api_error(
        503,
        "UNAVAILABLE",
        "backendError",
        "Visibility check was unavailable. Please retry the request.",
    )
    rate_limited = api_error(
        429, "RESOURCE_EXHAUSTED", "rateLimitExceeded",
        "Exceeded rate limits: too many api requests per user per method for this user_method.",
        domain="usageLimits",
    )  # fmt: skip
    fake = FakeBigQuery(
        EXPORT_SCHEMA,
        [
            [row("2024-06-01", "Cloud Run", "shop-prod", "us-east1", "acme", "USD", "2.5", "0.0")],
            [
                row(
                    "2024-06-01",
                    "Cloud Run",
                    "shop-prod",
                    "us-east1",
                    "globex",
                    "USD",
                    "1.5",
                    "-0.5",
                )
            ],
        ],
        failures=[rate_limited, unavailable],
        page_failures=[unavailable],
    )
    client = serve(fake)

    got = fetch(GcpSource(table=TABLE), [JUNE_1], client)

    assert got["EffectiveCost"].to_list() == [2.5, 1.0]  # 2.5 + 0; 1.5 - 0.5
    assert [m for m, _, _ in fake.calls] == ["POST", "POST", "POST", "GET", "GET", "GET"]
    assert len(sleeps) == 3
    # A retry is the same request: BigQuery deduplicates jobs.query by requestId.
    assert len({b["requestId"] for b in fake.query_bodies}) == 1


@pytest.mark.parametrize(
    ("response", "says"),
    [
        (
            api_error(404, "NOT_FOUND", "notFound",
                      f"Not found: Table {PROJECT}:billing_export.gcp_billing_export_v1_0123AB_4567CD_89EF01 "
                      "was not found in location US"),
            ["HTTP 404 notFound", "was not found in location US", "check billing.gcp.table"],
        ),
        (
            api_error(403, "PERMISSION_DENIED", "accessDenied",
                      f"Access Denied: Table {PROJECT}:billing_export.gcp_billing_export_v1_0123AB_4567CD_89EF01: "
                      "User does not have permission to query table"),
            ["HTTP 403 accessDenied", "does not have permission", "roles/bigquery.dataViewer"],
        ),
        (
            api_error(400, "INVALID_ARGUMENT", "invalidQuery", "Unrecognized name: usage_start_time at [7:10]"),
            ["HTTP 400 invalidQuery", "Unrecognized name: usage_start_time", "billing.gcp.kind"],
        ),
    ],
)  # fmt: skip
def test_api_errors_name_the_table_and_the_reason(serve, response, says):
    client = serve(FakeBigQuery(EXPORT_SCHEMA, [[]], failures=[response]))

    with pytest.raises(GcpBillingError) as caught:
        fetch(GcpSource(table=TABLE), [JUNE_1], client)

    message = str(caught.value)
    assert message.startswith(f"BigQuery query on {TABLE} failed")
    for part in says:
        assert part in message


def test_a_result_without_an_expected_column_is_refused(serve):
    schema = [f for f in EXPORT_SCHEMA if f["name"] != "currency"]
    client = serve(
        FakeBigQuery(
            schema,
            [[row("2024-06-01", "Cloud Run", "shop-prod", "us-east1", "acme", "1.0", "0.0")]],
        )
    )

    with pytest.raises(
        GcpBillingError,
        match=f"BigQuery result for {re.escape(TABLE)} has no column\\(s\\) currency",
    ):
        fetch(GcpSource(table=TABLE), [JUNE_1], client)


def test_focus_view_uses_its_own_costs_and_categories(serve):
    fake = FakeBigQuery(FOCUS_SCHEMA, [[
        # Google's FOCUS view template: ServiceCategory is the pricing export's product_taxonomy
        # array, sent through TO_JSON_STRING; it is not a FOCUS category, so ours is used.
        row("2024-06-01", "Compute Engine", '["GCP","Compute","GCE","VMs On Demand","Cores: Per Core"]',
            "shop-prod", "//compute.googleapis.com/projects/shop-prod/zones/us-central1-a/instances/4711",
            "us-central1", "acme", "USD", "20.0", "15.5"),
        # A FOCUS export's plain string category wins over ours ("Other" for this name).
        row("2024-06-01", "Secret Manager", '"Security"', "shop-prod", None, "global", None, "USD", "0.06", "0.06"),
        row("2024-06-03", "Vertex AI", "null", "shop-ml", None, "europe-west4", "globex", "USD", "4.0", "3.0"),
        row("2024-06-02", "Cloud SQL", '"Databases"', "shop-prod", None, "us-central1", "acme", "USD", "9.0", "9.0"),
    ]])  # fmt: skip
    client = serve(fake)
    cfg = GcpSource(table=FOCUS_VIEW, kind="focus", label_key="tenant_id")

    got = fetch(cfg, [JUNE_1, JUNE_3], client)

    want = expected([
        {"ChargePeriodStart": at(JUNE_1), "BilledCost": 20.0, "EffectiveCost": 15.5, "BillingCurrency": "USD",
         "ServiceName": "Compute Engine", "ServiceCategory": "Compute", "SubAccountId": "shop-prod",
         "ResourceId": "//compute.googleapis.com/projects/shop-prod/zones/us-central1-a/instances/4711",
         "RegionId": "us-central1", "Tags": '{"tenant_id":"acme"}', "x_IsFinal": True,
         "x_SourceFile": f"gcp:{FOCUS_VIEW}", "x_SourceRow": 1},
        {"ChargePeriodStart": at(JUNE_1), "BilledCost": 0.06, "EffectiveCost": 0.06, "BillingCurrency": "USD",
         "ServiceName": "Secret Manager", "ServiceCategory": "Security", "SubAccountId": "shop-prod",
         "ResourceId": None, "RegionId": "global", "Tags": None, "x_IsFinal": True,
         "x_SourceFile": f"gcp:{FOCUS_VIEW}", "x_SourceRow": 2},
        {"ChargePeriodStart": at(JUNE_3), "BilledCost": 4.0, "EffectiveCost": 3.0, "BillingCurrency": "USD",
         "ServiceName": "Vertex AI", "ServiceCategory": "AI and Machine Learning", "SubAccountId": "shop-ml",
         "ResourceId": None, "RegionId": "europe-west4", "Tags": '{"tenant_id":"globex"}', "x_IsFinal": False,
         "x_SourceFile": f"gcp:{FOCUS_VIEW}", "x_SourceRow": 3},
    ])  # fmt: skip
    assert_frame_equal(got, want)
    sql = fake.query_bodies[0]["query"]
    assert "UNNEST(Tags) AS t WHERE t.key = @label_key" in sql
    assert "ORDER BY t.x_inherited" in sql  # a resource label beats an inherited project label
    assert "_PARTITIONTIME" not in sql  # a view has no partition pseudo-column
    assert fake.params() == {
        "label_key": "tenant_id",
        "first_day": "2024-06-01",
        "end_day": "2024-06-04",
    }


def test_build_query_bounds_partitions_by_late_days_and_passes_values_as_parameters():
    cfg = GcpSource(table=RESOURCE_TABLE, kind="resource", label_key="customer-slug", late_days=4)

    sql, params = build_query(
        cfg, [dt.date(2024, 5, 30), dt.date(2024, 6, 2), dt.date(2024, 5, 31)]
    )

    values = {p.name: (p.type_, p.value) for p in params}
    # Usage May 30 .. June 2 inclusive; partitions May 29 (a day early) up to June 3 + 4 late days = June 7.
    assert values == {
        "label_key": ("STRING", "customer-slug"),
        "first_day": ("DATE", dt.date(2024, 5, 30)),
        "end_day": ("DATE", dt.date(2024, 6, 3)),
        "partition_start": ("DATE", dt.date(2024, 5, 29)),
        "partition_end": ("DATE", dt.date(2024, 6, 7)),
    }
    assert "_PARTITIONTIME >= TIMESTAMP(@partition_start)" in sql
    assert "_PARTITIONTIME < TIMESTAMP(@partition_end)" in sql
    assert (
        "usage_start_time >= TIMESTAMP(@first_day)" in sql
        and "usage_start_time < TIMESTAMP(@end_day)" in sql
    )
    assert "(SELECT value FROM UNNEST(labels) WHERE key = @label_key)" in sql
    assert "(SELECT SUM(c.amount) FROM UNNEST(credits) AS c)" in sql
    assert f"`{RESOURCE_TABLE}`" in sql
    assert "customer-slug" not in sql and "2024" not in sql  # values only travel as parameters


def test_build_query_without_late_days_and_for_the_standard_table():
    sql, params = build_query(GcpSource(table=TABLE, late_days=0), [JUNE_1])

    values = {p.name: p.value for p in params}
    assert values["partition_start"] == JUNE_1 - dt.timedelta(days=1) and values["partition_end"] == JUNE_2
    assert "resource" not in sql


@pytest.mark.parametrize(
    "table",
    [
        "p.d.t`; DROP TABLE p.d.x; --",
        "p.d.t x",
        "dataset.table",
        "p..t",
        "a.b.c.d",
        ".d.t",
        "p.d.t\n",
    ],
)
def test_unsafe_or_partial_table_names_are_refused(table):
    with pytest.raises(GcpBillingError, match="is not a BigQuery table name"):
        build_query(GcpSource(table=table), [JUNE_1])


def test_default_client_runs_the_job_in_the_tables_project(serve, monkeypatch):
    fake = FakeBigQuery(EXPORT_SCHEMA, [[]])
    real_client = serve(fake)
    made: list[dict] = []

    def client_factory(**kwargs):
        made.append(kwargs)
        return real_client

    monkeypatch.setattr(bigquery, "Client", client_factory)

    assert fetch(GcpSource(table=TABLE), [JUNE_1], None).is_empty()
    fetch(GcpSource(table=TABLE, project="finops-jobs"), [JUNE_1], None)

    assert made == [{"project": PROJECT}, {"project": "finops-jobs"}]


def test_missing_bigquery_package_says_which_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "google.cloud.bigquery", None)
    monkeypatch.delattr(google.cloud, "bigquery")

    with pytest.raises(GcpBillingError, match=re.escape("pip install 'unitcost_platform[gcp]'")):
        fetch(GcpSource(table=TABLE), [JUNE_1], None)


def test_no_days_is_no_query_and_the_empty_schema():
    got = fetch(GcpSource(table=TABLE), [], client=None)
    assert got.schema == pl.Schema(API_ROW_SCHEMA) and got.is_empty()


def test_focus_category():
    assert focus_category('"Databases"', "Cloud SQL") == "Databases"
    assert focus_category('["GCP","Storage","GCS"]', "Cloud Storage") == "Storage"
    assert focus_category("null", "Kubernetes Engine") == "Compute"
    assert focus_category(None, None) == "Other"
