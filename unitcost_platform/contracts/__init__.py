"""What every source returns, imported by sources and transforms alike (never the other way round).

- `focus`: the raw_billing table (`RAW_BILLING_SCHEMA`: FOCUS columns + our `x_` columns), FOCUS
  normalization (enumerations, timestamps, NULL literals), tag parsing and the tenant of a line item;
- `raw_billing`: what a billing API connector returns (`API_ROW_SCHEMA`) and `to_raw_billing`, the
  one step from API rows to raw billing, with the checks every billing source gets;
- `usage`: `tenant_usage` rows (`USAGE_SCHEMA`); `customers`: customer versions (`VERSION_SCHEMA`)
  and the customer dimension's schema;
- `tenant_key`: the one normalization of tenant ids; `problems`: how a bad value's place is named.
"""
