"""The columns and types of every table the pipeline writes: the contract with the warehouse.

DuckDB keeps names and types as written; Snowflake upper-cases unquoted identifiers and has its
own types, so its IO manager restores each table's frame from this registry on the way back.
"""

import polars as pl

from unitcost_platform.contracts.customers import CUSTOMER_DIMENSION_SCHEMA
from unitcost_platform.contracts.focus import RAW_BILLING_SCHEMA
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.transforms.alerts import COST_ALERTS_SCHEMA
from unitcost_platform.transforms.allocation import ALLOCATED_COST_SCHEMA
from unitcost_platform.transforms.anomalies import COST_ANOMALIES_SCHEMA
from unitcost_platform.transforms.coverage import TAG_COVERAGE_SCHEMA
from unitcost_platform.transforms.forecast import MARGIN_FORECAST_SCHEMA
from unitcost_platform.transforms.growth import GROWTH_EFFICIENCY_SCHEMA
from unitcost_platform.transforms.incidents import INCIDENTS_SCHEMA
from unitcost_platform.transforms.products import PRODUCT_BILLING_SCHEMA, PRODUCT_COST_SCHEMA
from unitcost_platform.transforms.segments import SEGMENT_ECONOMICS_SCHEMA
from unitcost_platform.transforms.service_unit_cost import SERVICE_UNIT_COST_SCHEMA
from unitcost_platform.transforms.team_spend import TEAM_SPEND_SCHEMA
from unitcost_platform.transforms.unit_cost import UNIT_COST_SCHEMA
from unitcost_platform.transforms.unit_metrics import CUSTOMER_UNIT_COSTS_SCHEMA

TABLE_SCHEMAS: dict[str, dict[str, pl.DataType]] = {
    "raw_billing": RAW_BILLING_SCHEMA,
    "tenant_usage": USAGE_SCHEMA,
    "customer_dimension": CUSTOMER_DIMENSION_SCHEMA,
    "tag_coverage": TAG_COVERAGE_SCHEMA,
    "allocated_cost": ALLOCATED_COST_SCHEMA,
    "unit_cost": UNIT_COST_SCHEMA,
    "cost_alerts": COST_ALERTS_SCHEMA,
    "growth_efficiency": GROWTH_EFFICIENCY_SCHEMA,
    "team_spend": TEAM_SPEND_SCHEMA,
    "service_unit_cost": SERVICE_UNIT_COST_SCHEMA,
    "alert_incidents": INCIDENTS_SCHEMA,
    "product_billing": PRODUCT_BILLING_SCHEMA,
    "product_cost": PRODUCT_COST_SCHEMA,
    "segment_economics": SEGMENT_ECONOMICS_SCHEMA,
    "customer_unit_costs": CUSTOMER_UNIT_COSTS_SCHEMA,
    "cost_anomalies": COST_ANOMALIES_SCHEMA,
    "margin_forecast": MARGIN_FORECAST_SCHEMA,
}
