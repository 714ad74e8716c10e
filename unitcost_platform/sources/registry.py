"""Every connector, by kind. Adding a source: one module under sources/<kind>/ ending with a
`CONNECTOR`, and one line here (see "Adding a source" in the README)."""

from unitcost_platform.sources.billing import aws_exports, azure, cost_explorer, gcp
from unitcost_platform.sources.billing import files as billing_files
from unitcost_platform.sources.connector import Connector
from unitcost_platform.sources.customers import files as customer_files
from unitcost_platform.sources.customers import postgres
from unitcost_platform.sources.usage import datadog, newrelic, opencost, prometheus
from unitcost_platform.sources.usage import files as usage_files

BILLING: list[Connector] = [
    billing_files.CONNECTOR,
    cost_explorer.CONNECTOR,
    aws_exports.CONNECTOR,
    azure.CONNECTOR,
    gcp.CONNECTOR,
]
USAGE: list[Connector] = [
    usage_files.CONNECTOR,
    prometheus.CONNECTOR,
    datadog.CONNECTOR,
    newrelic.CONNECTOR,
    opencost.CONNECTOR,
]
# The first configured customer source is read (the product database before files).
CUSTOMERS: list[Connector] = [
    postgres.CONNECTOR,
    customer_files.CONNECTOR,
]
ALL: list[Connector] = [*BILLING, *USAGE, *CUSTOMERS]
CONNECTORS: dict[str, list[Connector]] = {"billing": BILLING, "usage": USAGE, "customers": CUSTOMERS}


def configured_names(connectors: list[Connector], kind: str) -> str:
    """`billing.files, billing.cost_explorer, ...`: how a "no source configured" error lists them."""
    keys = [f"{kind}.{c.config_key}" for c in connectors]
    return ", ".join(keys[:-1]) + " or " + keys[-1]
