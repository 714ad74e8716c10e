"""Growth efficiency: 30-day cost windows 90 days apart against active customers (docs/design.md §8)."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.transforms.growth import growth_efficiency
from unitcost_platform_tests.helpers import D, customers


def _totals(days: list[dt.date], cost) -> pl.DataFrame:
    return pl.DataFrame({"day": days, "total_cost": [float(cost(d)) for d in days]}, schema={"day": pl.Date, "total_cost": pl.Float64})


def _active(n: int, day: dt.date) -> pl.DataFrame:
    return customers([{"customer_id": f"C{i}", "tenant_id": f"t{i}"} for i in range(n)], [day])


THEN = D - dt.timedelta(days=90)
HISTORY = [D - dt.timedelta(days=i) for i in range(119, -1, -1)]


def test_ratio_of_cost_growth_to_customer_growth():
    totals = _totals(HISTORY, lambda d: 15 if d > D - dt.timedelta(days=30) else 10)
    out = growth_efficiency(totals, _active(12, D), _active(10, THEN), [D]).row(0, named=True)
    assert out["cost_30d"] == pytest.approx(450.0)
    assert out["cost_30d_90d_ago"] == pytest.approx(300.0)
    assert out["cost_growth_90d"] == pytest.approx(0.5)
    assert (out["active_customers"], out["active_customers_90d_ago"]) == (12, 10)
    assert out["customer_growth_90d"] == pytest.approx(0.2)
    assert out["ratio"] == pytest.approx(2.5)


def test_null_while_a_window_reaches_before_the_history():
    short = _totals(HISTORY[1:], lambda d: 10)  # 119 days: the early window misses one day
    out = growth_efficiency(short, _active(12, D), _active(10, THEN), [D]).row(0, named=True)
    assert out["cost_30d"] == pytest.approx(300.0)
    assert out["cost_30d_90d_ago"] is None and out["cost_growth_90d"] is None and out["ratio"] is None


def test_null_ratio_when_customer_count_did_not_change_or_is_unknown():
    totals = _totals(HISTORY, lambda d: 10)
    flat = growth_efficiency(totals, _active(5, D), _active(5, THEN), [D]).row(0, named=True)
    assert flat["customer_growth_90d"] == 0.0 and flat["ratio"] is None
    unknown = growth_efficiency(totals, _active(5, D), _active(0, THEN), [D]).row(0, named=True)
    assert unknown["active_customers_90d_ago"] is None and unknown["ratio"] is None


def test_churned_customers_do_not_count():
    now = customers([{"customer_id": "A", "tenant_id": "a"}, {"customer_id": "B", "tenant_id": "b", "status": "churned"}], [D])
    out = growth_efficiency(_totals(HISTORY, lambda d: 1), now, _active(1, THEN), [D]).row(0, named=True)
    assert out["active_customers"] == 1
