"""service_unit_cost on a hand-built week: 3 services, 5 customers (one churned), targets, scope on and off.

Days 2026-03-01 .. 03-08 are all materialized; D = 03-08, D-7 = 03-01 (the first day).
- A (team-a, target $0.50): C1 $1 and C2 $2 every day; C5 (churned) $10 on D; $0.30 on no customer on D.
- B (team-b, team target $1.00): C3 $4 on D only.
- C (no owner, no target): C4 $6 on 03-01 only.
Active on both days: C1..C4 (4); C5 is churned. History: 8 days for D, 1 day for D-7.
"""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.config import OwnersConfig, ScopeConfig, TargetsConfig
from unitcost_platform.transforms.customer_cost import apply_rollup, window_spec
from unitcost_platform.transforms.service_unit_cost import (
    ON_END,
    SERVICE_CUSTOMER_ROLLUP,
    _top_customers,
    service_unit_cost,
)
from unitcost_platform_tests.helpers import customers

FIRST = dt.date(2026, 3, 1)
D = dt.date(2026, 3, 8)
DAYS = [FIRST + dt.timedelta(days=i) for i in range(8)]
CUSTOMERS = [
    {"customer_id": "C1", "customer_name": "One", "tier": "enterprise"},
    {"customer_id": "C2", "customer_name": "Two", "tier": "smb"},
    {"customer_id": "C3", "customer_name": "Three", "tier": "enterprise"},
    {"customer_id": "C4", "customer_name": "Four", "tier": "smb"},
    {"customer_id": "C5", "customer_name": "Five", "tier": "enterprise", "status": "churned"},
]
OWNERS = OwnersConfig(services={"A": "team-a", "B": "team-b"})
TARGETS = TargetsConfig(services={"A": 0.50}, teams={"team-b": 1.00})


def _allocated() -> pl.DataFrame:
    rows = []
    for d in DAYS:
        rows += [("A", "C1", None, 1.0, d), ("A", "C2", None, 2.0, d)]
    rows += [("A", "C5", None, 10.0, D), ("A", None, "unknown_tenant", 0.30, D), ("B", "C3", None, 4.0, D), ("C", "C4", None, 6.0, FIRST)]
    # A customer row with a reason (a tenant of no known customer) is not the customer's cost.
    rows += [("B", "C9", "unknown_customer", 0.70, D)]
    frame = pl.DataFrame(
        rows, orient="row",
        schema={"service_name": pl.String, "customer_id": pl.String, "unallocated_reason": pl.String,
                "allocated_cost": pl.Float64, "day": pl.Date},
    )  # fmt: skip
    return apply_rollup(frame, SERVICE_CUSTOMER_ROLLUP)


def _compute(scope: ScopeConfig | None = None) -> dict[str, dict]:
    out = service_unit_cost(_allocated(), set(DAYS), customers(CUSTOMERS, [FIRST, D]), [D], OWNERS, TARGETS, scope)
    assert out["day"].unique().to_list() == [D]
    return {r["service_name"]: r for r in out.iter_rows(named=True)}


def test_every_column_without_scope():
    rows = _compute()
    assert sorted(rows) == ["A", "B", "C"]  # C has no cost on D but cost in its window
    a, b, c = rows["A"], rows["B"], rows["C"]
    assert (a["owner"], b["owner"], c["owner"]) == ("team-a", "team-b", "unowned")
    # A: on D, 1 + 2 + 10 (churned C5 still had cost); 0.30 landed on nobody.
    assert a["cost"] == pytest.approx(13.0) and a["unallocated_cost"] == pytest.approx(0.30)
    assert a["history_days"] == 8 and a["active_customers"] == 4 and a["customers_with_cost"] == 2
    assert a["monthly_run_rate"] == pytest.approx(30 * (8 * 1 + 8 * 2 + 10) / 8)  # 127.5
    assert a["cost_per_customer_month"] == pytest.approx(127.5 / 4)  # 31.875
    # Per active customer: C1 30, C2 60, C3 0, C4 0 -> sorted 0, 0, 30, 60.
    assert a["p50_customer_month"] == pytest.approx(15.0)
    assert a["p90_customer_month"] == pytest.approx(30 + 0.7 * 30)  # position 0.9 * 3 = 2.7
    assert a["max_customer_month"] == pytest.approx(60.0)
    assert a["top_customers"] == "Two $60.00/month; One $30.00/month"
    # D-7 (history 1 day): (1 + 2) * 30 / 4 = 22.5 per customer.
    assert a["change_7d"] == pytest.approx(31.875 / 22.5 - 1)
    assert a["target_per_customer_month"] == 0.50 and a["target_ratio"] == pytest.approx(31.875 / 0.5) and a["over_target"]
    # B: C3 $4 on D; the C9 row carries a reason, so it is unallocated. Not in D-7's window: no change.
    assert b["cost"] == pytest.approx(4.0) and b["unallocated_cost"] == pytest.approx(0.70)
    assert b["monthly_run_rate"] == pytest.approx(30 * 4 / 8) and b["cost_per_customer_month"] == pytest.approx(3.75)
    assert b["p50_customer_month"] == 0.0 and b["p90_customer_month"] == pytest.approx(0.7 * 15)
    assert b["customers_with_cost"] == 1 and b["change_7d"] is None
    assert b["target_per_customer_month"] == 1.00 and b["over_target"]  # the team's target
    # C: nothing on D, $6 eight days of history ago; D-7 had it all in a 1-day window.
    assert c["cost"] == 0.0 and c["customers_with_cost"] == 0
    assert c["cost_per_customer_month"] == pytest.approx(30 * 6 / 8 / 4)  # 5.625
    assert c["p50_customer_month"] == 0.0 and c["p90_customer_month"] == pytest.approx(0.7 * 22.5)
    assert c["change_7d"] == pytest.approx(5.625 / (30 * 6 / 1 / 4) - 1)  # against 45
    assert c["target_per_customer_month"] is None and c["target_ratio"] is None and c["over_target"] is False


def test_scope_counts_only_the_customers_in_scope():
    rows = _compute(ScopeConfig(tiers=["enterprise"]))  # C1, C3 active; C5 churned
    a, b, c = rows["A"], rows["B"], rows["C"]
    assert a["cost"] == pytest.approx(1 + 10) and a["unallocated_cost"] == pytest.approx(0.30)
    assert a["active_customers"] == 2 and a["customers_with_cost"] == 1
    assert a["monthly_run_rate"] == pytest.approx(30 * (8 + 10) / 8)  # 67.5
    assert a["cost_per_customer_month"] == pytest.approx(33.75)
    assert a["p50_customer_month"] == pytest.approx(15.0) and a["p90_customer_month"] == pytest.approx(27.0)  # of 0, 30
    assert a["change_7d"] == pytest.approx(33.75 / (30 * 1 / 2) - 1)
    assert b["cost_per_customer_month"] == pytest.approx(7.5) and b["p50_customer_month"] == pytest.approx(7.5)
    assert c["cost_per_customer_month"] == 0.0 and c["change_7d"] is None  # C4 is out of scope; 0 a week ago too


def test_range_equals_day_by_day_and_unmaterialized_days_do_not_count():
    present = set(DAYS) - {dt.date(2026, 3, 4)}
    allocated = _allocated().filter(pl.col("day") != dt.date(2026, 3, 4))
    dims = customers(CUSTOMERS, DAYS)
    days = [d for d in DAYS if d in present]
    ranged = service_unit_cost(allocated, present, dims, days, OWNERS, TARGETS)
    for day in days:
        single = service_unit_cost(allocated.filter(pl.col("day") <= day), present, dims, [day], OWNERS, TARGETS)
        assert ranged.filter(pl.col("day") == day).equals(single)
    a = ranged.filter((pl.col("day") == D) & (pl.col("service_name") == "A")).row(0, named=True)
    assert a["history_days"] == 7 and a["monthly_run_rate"] == pytest.approx(30 * (7 * 3 + 10) / 7)
    assert ranged.filter(pl.col("day") == dt.date(2026, 3, 5))["change_7d"].is_null().all()  # no D-7 at all


def test_a_daily_run_reads_its_two_windows_summed_not_every_day():
    """The asset's reader (the warehouse) is asked for D-7's 30-day window, then D's (one at a time,
    so the run holds one), each with the materialized days it sums (03-04 is not), and D's row is the
    one a range run computes from every day's rows (running totals)."""
    present = set(DAYS) - {dt.date(2026, 3, 4)}
    allocated = _allocated().filter(pl.col("day") != dt.date(2026, 3, 4))
    asked: list = []

    def read(windows):
        asked.append(windows)
        return apply_rollup(allocated, {**SERVICE_CUSTOMER_ROLLUP, "windows": window_spec("day", windows, ON_END)})

    dims = customers(CUSTOMERS, DAYS)
    by_window = service_unit_cost(read, present, dims, [D], OWNERS, TARGETS)
    assert asked == [{FIRST: [FIRST]}, {D: sorted(present)}]
    ranged = service_unit_cost(allocated, present, dims, sorted(present), OWNERS, TARGETS)
    assert by_window.equals(ranged.filter(pl.col("day") == D))
    a = by_window.filter(pl.col("service_name") == "A").row(0, named=True)
    assert a["history_days"] == 7 and a["monthly_run_rate"] == pytest.approx(30 * (7 * 3 + 10) / 7)


def test_customers_shown_at_the_same_cost_are_ordered_by_id():
    """The warehouse and Polars sum a window in different orders, so equal costs can differ in their
    last bit; the customers a service costs most are ranked by the cents shown, then by id, so DuckDB,
    Snowflake and a range run name the same three."""
    monthly = pl.DataFrame(
        {"day": [D] * 4, "service_name": ["A"] * 4, "customer_id": ["C2", "C1", "C3", "C4"],
         "customer_name": ["Two", "One", "Three", "Four"], "_month": [0.35 + 0.35 + 0.35 + 0.4, 1.45, 1.45, 1.44]},
    )  # fmt: skip
    assert monthly["_month"][0] != monthly["_month"][1]  # 1.4499999999999997: the last bits differ
    top = _top_customers(monthly)
    assert top["top_customers"].to_list() == ["One $1.45/month; Two $1.45/month; Three $1.45/month"]
