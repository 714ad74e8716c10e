"""Properties of allocation over random days: conservation, and no negative share without a credit."""

import datetime as dt

import polars as pl
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from unitcost_platform.config import UnitcostConfig
from unitcost_platform.transforms.allocation import allocate
from unitcost_platform_tests.helpers import billing, customers, usage

DAYS = [dt.date(2026, 1, 1), dt.date(2026, 1, 2)]
TENANTS = ["t0", "t1", "t2", "t3", "t4", "t5"]
SERVICES = ["Amazon EC2", "NAT Gateway", "Amazon RDS", "Amazon CloudWatch", "AWS Support", "AWS Lambda"]
CONFIG = UnitcostConfig.model_validate({
    "pools": [
        {"name": "nat", "match": {"service_name": ["NAT Gateway"]}, "driver": "requests"},
        {"name": "support", "match": {"service_name": ["AWS Support"]}, "driver": "exclude"},
        {"name": "lambda", "match": {"service_name": ["AWS Lambda"]}, "driver": "active_sessions", "fallback": "flat"},
        {"name": "fixed", "match": {"service_category": ["Security"]}, "driver": "fixed",
         "shares": {"c0": 50, "c1": 30, "c9": 20}},
    ]
})  # fmt: skip

line_items = st.lists(
    st.fixed_dictionaries({
        "day": st.sampled_from(DAYS),
        "cost": st.floats(min_value=-50, max_value=5000, allow_nan=False).map(lambda x: round(x, 6)),
        "service": st.sampled_from(SERVICES + ["AWS Security Hub"]),
        "tenant": st.one_of(st.none(), st.sampled_from(TENANTS + ["ghost"])),
    }),
    min_size=0, max_size=40,
)  # fmt: skip
usage_rows = st.lists(
    st.tuples(
        st.sampled_from(TENANTS + ["unknown"]),
        st.sampled_from(["requests", "storage_bytes", "active_sessions"]),
        st.floats(min_value=0, max_value=1e9, allow_nan=False),
        st.sampled_from(DAYS),
    ),
    max_size=30,
)
customer_rows = st.lists(
    st.tuples(st.sampled_from(["c0", "c1", "c2", "c3"]), st.sampled_from(["active", "churned"])),
    min_size=0, max_size=6,
)  # fmt: skip


def _customers(rows: list[tuple[str, str]]) -> pl.DataFrame:
    """Tenants t0..t5 assigned round-robin to the drawn customers (one status per customer)."""
    status = dict(rows)
    if not status:
        return customers([], DAYS)
    ids = sorted(status)
    mapping = [{"customer_id": ids[i % len(ids)], "tenant_id": t, "status": status[ids[i % len(ids)]]}
               for i, t in enumerate(TENANTS[: max(len(ids), 3)])]  # fmt: skip
    return customers(mapping, DAYS)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=line_items, use=usage_rows, cust=customer_rows)
def test_every_dollar_is_allocated_or_explained(items, use, cust):
    bill = billing([{**i, "tenant": i["tenant"]} for i in items])
    out = allocate(bill, usage(use), _customers(cust), DAYS, CONFIG.resolved_pools(), "EffectiveCost")
    for day in DAYS:
        billed = bill.filter(pl.col("x_ChargeDate") == day)["EffectiveCost"].sum()
        allocated = out.filter(pl.col("day") == day)["allocated_cost"].sum()
        scale = max(1.0, bill.filter(pl.col("x_ChargeDate") == day)["EffectiveCost"].abs().sum())
        assert allocated == pytest.approx(billed, rel=1e-6, abs=1e-9 * scale)
    # Every unallocated row says why; every allocated row names its customer.
    assert out.filter(pl.col("unallocated_reason").is_null())["customer_id"].null_count() == 0



@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(items=line_items, use=usage_rows, cust=customer_rows)
def test_no_customer_share_is_negative_unless_its_direct_cost_is(items, use, cust):
    # Credits here are tagged (a tenant's credit); untagged shared cost is a charge.
    items = [i if i["tenant"] else {**i, "cost": abs(i["cost"])} for i in items]
    bill = billing(items)
    out = allocate(bill, usage(use), _customers(cust), DAYS, CONFIG.resolved_pools(), "EffectiveCost")
    per_customer = (
        out.filter(pl.col("unallocated_reason").is_null())
        .group_by("day", "customer_id")
        .agg(
            pl.col("allocated_cost").filter(pl.col("pool") == "direct").sum().alias("direct"),
            pl.col("allocated_cost").filter(pl.col("pool") != "direct").sum().alias("shared"),
        )
    )
    assert (out.filter(pl.col("pool") != "direct")["allocated_cost"] >= 0).all()
    for row in per_customer.iter_rows(named=True):
        assert row["shared"] >= 0
        if row["direct"] + row["shared"] < 0:
            assert row["direct"] < 0
