"""The customer contract: what every customer connector returns (versions, one row per customer,
tenant and validity range, `x_Where` saying where the row came from) and the dimension's schema."""

import polars as pl

STATUSES = ("active", "churned")
DEFAULT_MAX_MRR = 100_000_000.0
ATTRIBUTES = ["customer_name", "tier", "is_paying", "mrr", "status", "segment"]

VERSION_SCHEMA: dict[str, pl.DataType] = {
    "customer_id": pl.String(),
    "tenant_id": pl.String(),
    "customer_name": pl.String(),
    "tier": pl.String(),
    "is_paying": pl.Boolean(),
    "mrr": pl.Float64(),
    "status": pl.String(),
    "segment": pl.String(),
    "valid_from": pl.Date(),
    "valid_to": pl.Date(),
    "x_Where": pl.String(),
}

# customer_dimension: the version valid on each day, and since when the customer exists
CUSTOMER_DIMENSION_SCHEMA: dict[str, pl.DataType] = {
    "snapshot_date": pl.Date(),
    **{column: dtype for column, dtype in VERSION_SCHEMA.items() if column != "x_Where"},
    "customer_since": pl.Date(),
}
