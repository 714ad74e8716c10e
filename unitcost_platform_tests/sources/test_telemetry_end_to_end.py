"""One day end to end: usage from a real Prometheus, customers from the real PostgreSQL, billing from
files, through a Dagster run, checked against the allocation worked out by hand."""

import datetime as dt

import dagster as dg
import polars as pl
import pytest

from unitcost_platform_tests.prometheus_server import start_prometheus
from unitcost_platform_tests.saas import DAYS, read_table, run_range
from unitcost_platform_tests.sources.test_postgres_customers import (  # noqa: F401
    QUERY,
    customers_table,
    product_db,
)

D = DAYS[9]  # 2026-03-10 of the small SaaS: C1 and C2 tagged 10.00 each, the free tenant 2.00


def _openmetrics() -> str:
    """http_requests_total of the three tenants every 5 minutes on D: t1 +1000, t2 +500, tf +500
    over the day (an evenly spread rise), and a `legacy` tenant nobody owns that is filtered out
    by the matcher `env="prod"`."""
    start = int(dt.datetime.combine(D, dt.time(), tzinfo=dt.UTC).timestamp())
    lines = ["# TYPE http_requests counter"]
    rises = {("t1", "prod"): 1000, ("t2", "prod"): 500, ("tf", "prod"): 500, ("legacy", "staging"): 9999}
    for (tenant, env), rise in rises.items():
        for step in range(0, 288 + 1):
            value = 5_000 + rise * step / 288
            lines.append(f'http_requests_total{{tenant_id="{tenant}",env="{env}"}} {value} {start + step * 300}')
    return "\n".join(lines) + "\n# EOF\n"


@pytest.fixture
def prometheus(tmp_path):
    (tmp_path / "prom").mkdir()
    with start_prometheus(tmp_path / "prom", _openmetrics()) as server:
        yield server


def test_prometheus_usage_postgres_customers_and_file_billing(
    prometheus, product_db, customers_table, small_saas, make_settings, monkeypatch  # noqa: F811
):
    customers_table(
        (1, "T1", "One", "mid-market", 3000, "active", "na", None, None),  # tenant case as the product db has it
        (2, "t2", "Two", "smb", 900, "active", "na", None, None),
        (3, "tf", "Free", "free", 0, "active", "na", None, None),
    )
    monkeypatch.setenv("UNITCOST_PRODUCT_DB_DSN", product_db)
    config = small_saas / "unitcost.yaml"
    config.write_text(
        "usage:\n  files: null\n  prometheus:\n"
        f"    url: {prometheus.url}\n"
        "    metrics:\n"
        "      - {metric: requests, series: http_requests_total, kind: counter, matchers: {env: prod}, service_name: api}\n"
        f'customers:\n  files: null\n  postgres:\n    query: "{" ".join(QUERY.split())}"\n' + config.read_text()
    )
    settings = make_settings(small_saas)
    assert run_range(settings, D, D, instance=dg.DagsterInstance.ephemeral()).success

    usage = read_table(settings, "tenant_usage").sort("tenant_id")
    assert usage.select("tenant_id", "metric", "value", "service_name", "source").rows() == [
        ("t1", "requests", pytest.approx(1000.0), "api", "prometheus"),
        ("t2", "requests", pytest.approx(500.0), "api", "prometheus"),
        ("tf", "requests", pytest.approx(500.0), "api", "prometheus"),
    ]  # fmt: skip
    # By hand: NAT 3.00 and the untagged Lambda 1.00 split by requests 1000/500/500 (50/25/25%),
    # CloudWatch 1.20 flat over 3 active customers (0.40 each).
    unit = {r["customer_id"]: r for r in read_table(settings, "unit_cost").iter_rows(named=True)}
    assert unit["1"]["total_cost"] == pytest.approx(10 + 1.5 + 0.5 + 0.4)
    assert unit["2"]["total_cost"] == pytest.approx(10 + 0.75 + 0.25 + 0.4)
    assert unit["3"]["total_cost"] == pytest.approx(2 + 0.75 + 0.25 + 0.4)
    assert unit["1"]["requests"] == pytest.approx(1000.0)
    assert unit["1"]["cost_per_1k_requests"] == pytest.approx(12.4)
    allocated = read_table(settings, "allocated_cost")
    assert allocated["allocated_cost"].sum() == pytest.approx(27.2)
    assert allocated.filter(pl.col("unallocated_reason").is_not_null()).is_empty()
