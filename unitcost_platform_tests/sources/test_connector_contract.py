"""Every registered connector satisfies the connector contract (sources/connector.py).

A new connector is one module under sources/<kind>/ and one line in sources/registry.py; this test
then asks it for an example config (EXAMPLES below) and holds it to the contract: the schema of its
kind on an empty range without calling anything, its secrets named, its restatement declared.
"""

import datetime as dt
import importlib
import pkgutil
import re
from pathlib import Path

import dagster as dg
import polars as pl
import pytest

from unitcost_platform.config import BillingConfig, CustomersConfig, UnitcostConfig, UsageConfig
from unitcost_platform.contracts.customers import VERSION_SCHEMA
from unitcost_platform.contracts.focus import RAW_BILLING_SCHEMA
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.defs.resources import source_resources
from unitcost_platform.errors import ConfigError
from unitcost_platform.sources import registry
from unitcost_platform.sources.connector import BillingRead, Connector, ReadContext

UNREACHABLE = "http://127.0.0.1:9"  # the discard port: nothing answers there
# A minimal config of each connector, as unitcost.yaml would hold it.
EXAMPLES = {
    ("billing", "files"): {"path": "/nonexistent/billing"},
    ("billing", "cost_explorer"): {"tag_key": "tenant_id"},
    ("billing", "aws_exports"): [{"bucket": "billing-exports", "export_name": "cur2", "format": "cur2"}],
    ("billing", "azure"): {"scope": "/subscriptions/00000000-0000-0000-0000-000000000000", "endpoint": UNREACHABLE},
    ("billing", "gcp"): {"table": "billing-project.billing.gcp_billing_export_v1_0"},
    ("usage", "files"): {"path": "/nonexistent/usage"},
    ("usage", "prometheus"): {"url": UNREACHABLE, "bearer_token_env": "PROM_TOKEN",
                              "metrics": [{"metric": "requests", "series": "http_requests_total", "kind": "counter"}]},
    ("usage", "datadog"): {"site": "127.0.0.1:9", "metrics": [{"metric": "requests", "query": "sum:app.requests{*} by {tenant_id}"}]},
    ("usage", "newrelic"): {"account_id": 1, "url": UNREACHABLE,
                            "metrics": [{"metric": "requests", "nrql": "SELECT sum(requests) FROM TenantUsage"}]},
    ("usage", "opencost"): {"url": UNREACHABLE, "metrics": [{"metric": "k8s_cost_share"}]},
    ("customers", "files"): {"path": "/nonexistent/customers"},
    ("customers", "postgres"): {"query": "select customer_id, tenant_id, tier, mrr, status from customers"},
}  # fmt: skip
SCHEMAS = {"billing": RAW_BILLING_SCHEMA, "usage": USAGE_SCHEMA, "customers": VERSION_SCHEMA}
MODELS = {"billing": BillingConfig, "usage": UsageConfig, "customers": CustomersConfig}


def config_with(connector: Connector) -> UnitcostConfig:
    """A config where this connector is the only source of its kind."""
    others = {c.config_key: None for c in registry.ALL if c.kind == connector.kind and not c.many}
    kind = {**others, connector.config_key: EXAMPLES[(connector.kind, connector.config_key)]}
    return UnitcostConfig.model_validate({connector.kind: kind})


CONNECTORS = pytest.mark.parametrize("connector", registry.ALL, ids=lambda c: f"{c.kind}.{c.config_key}")


def test_every_connector_module_is_registered():
    import unitcost_platform.sources as sources

    found = set()
    for kind in ("billing", "usage", "customers"):
        package = importlib.import_module(f"{sources.__name__}.{kind}")
        for module in pkgutil.iter_modules(package.__path__):
            connector = getattr(importlib.import_module(f"{package.__name__}.{module.name}"), "CONNECTOR", None)
            assert isinstance(connector, Connector), f"sources/{kind}/{module.name}.py has no CONNECTOR"
            assert connector.kind == kind
            found.add(id(connector))
    assert found == {id(c) for c in registry.ALL}


@CONNECTORS
def test_its_config_key_is_in_unitcost_yaml(connector):
    assert connector.config_key in MODELS[connector.kind].model_fields and connector.config_model is not None
    assert (connector.kind, connector.config_key) in EXAMPLES, "add an example config of the new connector to EXAMPLES"


@CONNECTORS
def test_an_empty_range_is_the_schema_without_calling_anything(connector, tmp_path):
    cfg = config_with(connector)
    [source] = connector.configured(cfg)
    resource = connector.resource(source, lambda env: None)  # its resource, no secret set
    context = ReadContext(cfg, tmp_path, lambda line: pytest.fail(f"logged on an empty range: {line}"), dt.date(2026, 3, 10), resource)
    out = connector.read(context, source, [])
    frame = out.rows if isinstance(out, BillingRead) else out
    assert connector.kind != "billing" or isinstance(out, BillingRead)
    assert isinstance(frame, pl.DataFrame) and frame.height == 0
    assert frame.schema == pl.Schema(SCHEMAS[connector.kind])


@CONNECTORS
def test_it_names_its_secrets_and_its_resource(connector, monkeypatch):
    cfg = config_with(connector)
    [source] = connector.configured(cfg)
    names = connector.secrets(source)
    assert all(re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", n) for n in names), names
    if connector.resource_key is None:
        assert names == []
    else:
        assert isinstance(connector.resource(source, lambda env: None), dg.ConfigurableResource)
        for name in names:
            monkeypatch.delenv(name, raising=False)
        if names:  # the wiring refuses the source while a secret it names is not set
            with pytest.raises(ConfigError, match=f"{connector.kind}.{connector.config_key} reads a secret from {names[0]}"):
                source_resources(cfg)
        for name in names:
            monkeypatch.setenv(name, "FAKE")
        assert connector.resource_key in source_resources(cfg)
    # secrets the example config names (the *_env keys) are exactly what the resource asks for
    named_in_config = {v for k, v in source.model_dump().items() if k.endswith("_env") and v}
    assert set(names) == named_in_config


@CONNECTORS
def test_its_restatement_is_declared(connector):
    assert connector.restatement in ("none", "export_versions", "api_totals")
    assert (connector.api_rows is not None) == (connector.restatement == "api_totals")
    assert (connector.export_versions is not None) == (connector.restatement == "export_versions")
    if connector.restatement != "none":
        assert connector.kind == "billing"


def test_the_readme_shows_how_to_add_a_source():
    readme = (Path(__file__).parents[2] / "README.md").read_text()
    section = readme.split("## Adding a source", 1)[1].split("\n## ", 1)[0]
    assert "sources/registry.py" in section and "CONNECTOR = " in section and "test_connector_contract.py" in section
