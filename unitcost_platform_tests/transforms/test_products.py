"""Product cost: every line item on one product (tag, else service, else unmapped), against its usage."""

import datetime as dt
import json

import polars as pl
import pytest

from unitcost_platform.config import ProductsConfig
from unitcost_platform.contracts.usage import USAGE_SCHEMA
from unitcost_platform.transforms.customer_cost import apply_rollup
from unitcost_platform.transforms.products import (
    BILLING_ROLLUP,
    PRODUCT_COST_SCHEMA,
    USAGE_ROLLUP,
    outgrowing_line,
)
from unitcost_platform.transforms.products import product_cost as compute_product_cost
from unitcost_platform_tests.helpers import D, billing

PRODUCTS = ProductsConfig(
    services={"Amazon DynamoDB": "checkout", "Amazon EC2": "api"},
    usage={
        "search": {"metric": "requests", "per": 1000},
        "checkout": {"metric": "transactions", "service_name": "payments"},
        "api": {"metric": "calls"},
    },
)


def tags(**kv) -> str:
    return json.dumps(kv)


def usage_frame(rows: list[tuple]) -> pl.DataFrame:
    """tenant_usage from (day, tenant, service, metric, value)."""
    return pl.DataFrame(
        [{"usage_date": d, "tenant_id": t, "service_name": s, "metric": m, "value": float(v), "source": "test"}
         for d, t, s, m, v in rows],
        schema=USAGE_SCHEMA,
    )  # fmt: skip


def product_cost(bill: pl.DataFrame, use: pl.DataFrame, present, days, products=PRODUCTS, cost_column="EffectiveCost"):
    """Through the rollups the asset reads (the warehouse's sums, computed in Polars)."""
    return compute_product_cost(
        apply_rollup(bill, BILLING_ROLLUP), apply_rollup(use, USAGE_ROLLUP), present, days, products, cost_column
    )


def _by_product(frame: pl.DataFrame, day: dt.date = D) -> dict[str, dict]:
    return {r["product"]: r for r in frame.filter(pl.col("day") == day).iter_rows(named=True)}


def test_tag_then_service_then_unmapped_with_a_credit_and_the_day_sums_to_its_bill():
    bill = billing([
        {"cost": 10.0, "service": "Amazon EC2", "tags": tags(product="search")},        # tag beats the EC2 -> api rule
        {"cost": 4.0, "service": "Amazon S3", "tags": tags(app="checkout")},             # second key
        {"cost": 3.0, "service": "Amazon S3", "tags": tags(product=" ", app="search")},  # blank product: next key
        {"cost": 6.0, "service": "Amazon DynamoDB"},                                      # service -> checkout
        {"cost": -2.0, "service": "Amazon DynamoDB"},                                     # its credit, same product
        {"cost": 1.5, "service": "AWS Support"},                                          # neither: unmapped
        {"cost": 0.25, "service": "Amazon CloudWatch", "tags": tags(tenant_id="t1")},    # a tenant tag is no product
    ])  # fmt: skip
    use = usage_frame([
        (D, "t1", None, "requests", 3000), (D, "t2", None, "requests", 1000),
        (D, "t1", "payments", "transactions", 40), (D, "t2", "payments", "transactions", 60),
        (D, "t1", "search", "transactions", 1000),  # another service's transactions: not checkout's
    ])  # fmt: skip
    out = product_cost(bill, use, {D}, [D])
    assert out.schema == pl.Schema(PRODUCT_COST_SCHEMA)
    got = _by_product(out)
    assert set(got) == {"search", "checkout", "unmapped"}
    assert (got["search"]["cost"], got["search"]["line_items"], got["search"]["product_source"]) == (13.0, 2, "tag")
    assert got["checkout"]["cost"] == pytest.approx(4.0 + 6.0 - 2.0)
    assert (got["checkout"]["line_items"], got["checkout"]["product_source"]) == (3, "service+tag")
    assert got["unmapped"]["cost"] == pytest.approx(1.5 + 0.25)
    assert (got["unmapped"]["line_items"], got["unmapped"]["product_source"]) == (2, "unmapped")
    # Units: every tenant's requests (3000 + 1000) per 1000; checkout counts the payments service only (40 + 60).
    assert got["search"]["usage_metric"] == "requests" and got["search"]["units"] == 4000.0
    assert got["search"]["cost_per_unit"] == pytest.approx(13.0 / 4000 * 1000)
    assert got["checkout"]["units"] == 100.0 and got["checkout"]["cost_per_unit"] == pytest.approx(8.0 / 100)
    assert got["unmapped"]["usage_metric"] is None and got["unmapped"]["units"] is None
    assert got["unmapped"]["cost_per_unit"] is None
    # One day of history: no growth, no flag.
    assert got["search"]["cost_growth_7d"] is None and got["search"]["cost_outgrowing_usage"] is None
    # The products sum to the bill: 10 + 4 + 3 + 6 - 2 + 1.5 + 0.25 = 22.75.
    assert abs(out["cost"].sum() - 22.75) <= 1e-9 * 22.75
    assert out["cost"].sum() == pytest.approx(bill["EffectiveCost"].sum(), rel=1e-9)
    assert got["search"]["share_of_day"] == pytest.approx(13.0 / 22.75)


def test_billed_cost_and_a_product_with_usage_but_none_that_day():
    bill = billing([{"cost": 5.0, "billed": 6.0, "service": "Amazon EC2"}])
    out = product_cost(bill, usage_frame([(D, "t1", None, "requests", 10)]), {D}, [D], cost_column="BilledCost")
    row = _by_product(out)["api"]
    # api counts `calls`; nobody made any that day: 0 units, no cost per unit.
    assert (row["cost"], row["product_source"], row["usage_metric"], row["units"]) == (6.0, "service", "calls", 0.0)
    assert row["cost_per_unit"] is None


def _fortnight(cost_before: float, cost_now: float, units_before: float, units_now: float, product: str, metric: str):
    days = [D - dt.timedelta(days=13 - i) for i in range(14)]
    bill = [{"day": d, "cost": cost_before if i < 7 else cost_now, "service": "Amazon S3", "tags": tags(product=product)}
            for i, d in enumerate(days)]  # fmt: skip
    use = [(d, "t1", None, metric, units_before if i < 7 else units_now) for i, d in enumerate(days)]
    return days, bill, use


def test_growth_windows_and_the_outgrowing_flag():
    products = ProductsConfig(usage={"search": {"metric": "requests"}, "docs": {"metric": "documents"},
                                     "flat": {"metric": "calls"}})  # fmt: skip
    days, bill_s, use_s = _fortnight(10.0, 12.0, 1000, 1100, "search", "requests")  # cost +20%, usage +10%
    _, bill_d, use_d = _fortnight(50.0, 57.0, 100, 110, "docs", "documents")       # cost +14%, usage +10%
    _, bill_f, use_f = _fortnight(5.0, 5.0, 100, 110, "flat", "calls")             # cost +0%, usage +10%
    _, bill_n, _ = _fortnight(0.0, 3.0, 0, 0, "new", "none")                       # no cost the week before
    out = product_cost(billing(bill_s + bill_d + bill_f + bill_n), usage_frame(use_s + use_d + use_f),
                       set(days), [D], products)  # fmt: skip
    got = _by_product(out)
    s = got["search"]
    assert (s["cost_7d"], s["cost_prev_7d"]) == (pytest.approx(7 * 12.0), pytest.approx(7 * 10.0))
    assert s["cost_growth_7d"] == pytest.approx(84 / 70 - 1)  # 0.20
    assert (s["units_7d"], s["units_prev_7d"]) == (7 * 1100.0, 7 * 1000.0)
    assert s["units_growth_7d"] == pytest.approx(7700 / 7000 - 1)  # 0.10
    assert s["cost_outgrowing_usage"] is True  # 0.20 > 0.10 + 0.05
    d = got["docs"]
    assert d["cost_growth_7d"] == pytest.approx(399 / 350 - 1)  # 0.14: within 0.10 + 0.05
    assert d["cost_outgrowing_usage"] is False
    assert got["flat"]["cost_growth_7d"] == pytest.approx(0.0) and got["flat"]["cost_outgrowing_usage"] is False
    # Nothing the week before: no growth (not infinite), so no flag; no usage metric: no flag either.
    assert got["new"]["cost_growth_7d"] is None and got["new"]["cost_outgrowing_usage"] is None
    assert outgrowing_line(out) == "search (cost +20.0% against requests +10.0% in 7 days)"

    # A tolerance of 0.15 lets search's 0.20 against 0.10 pass.
    lenient = products.model_copy(update={"tolerance": 0.15})
    assert _by_product(product_cost(billing(bill_s), usage_frame(use_s), set(days), [D], lenient))["search"][
        "cost_outgrowing_usage"
    ] is False
    # One of the 14 days not materialized: growth is null, as in unit_cost.
    missing = set(days) - {days[0]}
    partial = _by_product(product_cost(billing(bill_s), usage_frame(use_s), missing, [D], products))["search"]
    assert partial["cost_growth_7d"] is None and partial["units_growth_7d"] is None
    assert partial["cost_outgrowing_usage"] is None and partial["cost_7d"] == pytest.approx(84.0)


def test_several_days_at_once_equal_each_day_alone():
    days, bill, use = _fortnight(10.0, 12.0, 1000, 1100, "search", "requests")
    products = ProductsConfig(usage={"search": {"metric": "requests"}})
    both = product_cost(billing(bill), usage_frame(use), set(days), days[-2:], products)
    alone = pl.concat([product_cost(billing(bill), usage_frame(use), set(days), [d], products) for d in days[-2:]])
    assert both.equals(alone.sort(["day", "cost", "product"], descending=[False, True, False]))
    assert both.height == 2


def test_a_day_without_billing_is_an_empty_frame():
    out = product_cost(billing([{"cost": 1.0}]), usage_frame([]), {D}, [D + dt.timedelta(days=1)])
    assert out.is_empty() and out.schema == pl.Schema(PRODUCT_COST_SCHEMA)
