"""Unit cost: run rate over the days materialized, 7-day growth only on full history (docs/design.md §6)."""

import datetime as dt
import random

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.transforms.customer_cost import (
    CUSTOMER_DAY_ROLLUP,
    apply_rollup,
    customer_daily_cost,
    window_spec,
)
from unitcost_platform.transforms.unit_cost import DayWindows, day_windows, joined_in_month
from unitcost_platform.transforms.unit_cost import unit_cost as compute_unit_cost
from unitcost_platform_tests.helpers import D, customers, usage


def _days(n: int, end: dt.date = D) -> list[dt.date]:
    return [end - dt.timedelta(days=n - 1 - i) for i in range(n)]


def _allocated(costs: dict[str, list[float]], days: list[dt.date], pool: str = "direct") -> pl.DataFrame:
    rows = [
        {"day": d, "customer_id": c, "pool": pool, "allocated_cost": v, "unallocated_reason": None}
        for c, values in costs.items()
        for d, v in zip(days, values, strict=True)
    ]
    return pl.DataFrame(rows, schema={"day": pl.Date, "customer_id": pl.String, "pool": pl.String,
                                      "allocated_cost": pl.Float64, "unallocated_reason": pl.String})  # fmt: skip


def unit_cost(allocated: pl.DataFrame, *args) -> pl.DataFrame:
    """From allocated_cost rows, through the per-customer-pool rollup the asset reads."""
    return compute_unit_cost(customer_daily_cost(apply_rollup(allocated, CUSTOMER_DAY_ROLLUP)), *args)


def _row(frame: pl.DataFrame, customer: str, day: dt.date = D) -> dict:
    return frame.filter((pl.col("customer_id") == customer) & (pl.col("day") == day)).row(0, named=True)


CUST = [{"customer_id": "C1", "tenant_id": "t1", "mrr": 300}]


def test_run_rate_growth_and_requests_on_fourteen_days_of_history():
    days = _days(14)
    allocated = _allocated({"C1": [float(i) for i in range(1, 15)]}, days)  # D-13: 1 ... D: 14
    out = unit_cost(
        allocated, set(days), customers(CUST), customers([{**CUST[0], "mrr": 250}], [D - dt.timedelta(days=7)]),
        usage([("t1", "requests", 7000)]), set(), [D],
    )
    row = _row(out, "C1")
    assert row["total_cost"] == 14.0 and row["direct_cost"] == 14.0 and row["shared_cost"] == 0.0
    assert row["history_days"] == 14
    assert row["monthly_run_rate"] == pytest.approx(30 * 7.5)  # mean of 1..14 is 7.5
    assert row["cost_to_mrr"] == pytest.approx(225 / 300)
    assert row["cost_7d"] == pytest.approx(77.0)  # 8 + ... + 14
    assert row["cost_prev_7d"] == pytest.approx(28.0)  # 1 + ... + 7
    assert row["cost_growth_7d"] == pytest.approx(77 / 28 - 1)
    assert row["mrr_growth_7d"] == pytest.approx(300 / 250 - 1)
    assert row["requests"] == 7000 and row["cost_per_1k_requests"] == pytest.approx(14 / 7)
    assert row["is_provisional"] is False


def test_growth_is_null_until_fourteen_days_of_history():
    days = _days(13)
    out = unit_cost(_allocated({"C1": [1.0] * 13}, days), set(days), customers(CUST), customers([]), usage([]), set(), [D])
    row = _row(out, "C1")
    assert row["cost_growth_7d"] is None
    assert row["monthly_run_rate"] == pytest.approx(30.0)  # mean over the 13 days materialized
    assert row["mrr_growth_7d"] == 0.0  # no customer history for D-7
    assert row["cost_per_1k_requests"] is None  # no requests


def test_a_day_missing_from_history_breaks_the_growth_window():
    days = _days(20)
    present = set(days) - {D - dt.timedelta(days=3)}
    out = unit_cost(_allocated({"C1": [2.0] * 20}, days), present, customers(CUST), customers([]), usage([]), set(), [D])
    row = _row(out, "C1")
    assert row["cost_growth_7d"] is None
    assert row["history_days"] == 19


def test_new_customer_history_starts_at_valid_from():
    since = D - dt.timedelta(days=5)
    days = _days(30)
    costs = [0.0] * 24 + [3.0] * 6
    cust = [{"customer_id": "C2", "tenant_id": "t2", "mrr": 100, "valid_from": since}]
    out = unit_cost(_allocated({"C2": costs}, days), set(days), customers(cust), customers([]), usage([]), set(), [D])
    row = _row(out, "C2")
    assert row["history_days"] == 6
    assert row["monthly_run_rate"] == pytest.approx(90.0)  # 30 x 3/day, not diluted by days before it existed
    assert row["cost_growth_7d"] is None


def test_zero_mrr_and_zero_previous_week():
    days = _days(14)
    cust = [{"customer_id": "F", "tenant_id": "f", "mrr": 0, "tier": "free"}]
    costs = [0.0] * 7 + [1.0] * 7
    out = unit_cost(_allocated({"F": costs}, days), set(days), customers(cust), customers(cust, [D - dt.timedelta(days=7)]), usage([]), set(), [D])
    row = _row(out, "F")
    assert row["cost_to_mrr"] is None  # null when MRR is 0
    assert row["cost_growth_7d"] is None  # null when the previous week cost 0
    assert row["mrr_growth_7d"] == 0.0
    assert row["is_paying"] is False


def test_unallocated_rows_do_not_count_and_shared_is_split_out():
    days = [D]
    allocated = pl.concat([
        _allocated({"C1": [5.0]}, days),
        _allocated({"C1": [2.0]}, days, pool="nat"),
        _allocated({"C1": [100.0]}, days, pool="nat").with_columns(unallocated_reason=pl.lit("unknown_customer")),
    ])  # fmt: skip
    out = unit_cost(allocated, set(days), customers(CUST), customers([]), usage([]), {D}, [D])
    row = _row(out, "C1")
    assert (row["direct_cost"], row["shared_cost"], row["total_cost"]) == (5.0, 2.0, 7.0)
    assert row["is_provisional"] is True


def test_every_customer_of_the_day_gets_a_row_even_without_cost():
    cust = CUST + [{"customer_id": "C9", "tenant_id": "t9", "status": "churned", "mrr": 0}]
    out = unit_cost(_allocated({"C1": [1.0]}, [D]), {D}, customers(cust), customers([]), usage([]), set(), [D])
    assert sorted(out["customer_id"]) == ["C1", "C9"]
    assert _row(out, "C9")["total_cost"] == 0.0


def test_range_computes_each_day_like_single_days():
    days = _days(20)
    allocated = _allocated({"C1": [float(i % 5 + 1) for i in range(20)]}, days)
    all_days = customers(CUST, days)
    ranged = unit_cost(allocated, set(days), all_days, all_days, usage([]), set(), days[-5:])
    for day in days[-5:]:
        history = allocated.filter(pl.col("day") <= day)
        single = unit_cost(history, {d for d in days if d <= day}, customers(CUST, [day]),
                           customers(CUST, [day - dt.timedelta(days=7)]), usage([]), set(), [day])  # fmt: skip
        assert_frame_equal(ranged.filter(pl.col("day") == day), single, rel_tol=1e-12, abs_tol=1e-12)


def windowed(allocated: pl.DataFrame, present: set[dt.date], *args, day: dt.date = D) -> pl.DataFrame:
    """A daily run's read: the window sums the warehouse returns (apply_rollup is the IO manager's
    rollup query in Polars, windows included) and the rows of the customers who joined in the month."""
    rollup = lambda spans: apply_rollup(allocated, {**CUSTOMER_DAY_ROLLUP, "windows": window_spec("day", spans)})  # noqa: E731
    month = allocated.filter(pl.col("day").is_between(day - dt.timedelta(days=29), day))
    joined = joined_in_month(args[0], day)
    costs = DayWindows(
        **{name: rollup(spans) for name, spans in day_windows(day, present).items()},
        joined=apply_rollup(month.filter(pl.col("customer_id").is_in(joined)), CUSTOMER_DAY_ROLLUP),
    )
    return compute_unit_cost(costs, present, *args, [day])


def test_a_daily_run_from_window_sums_counts_a_new_customer_from_its_first_day():
    since = D - dt.timedelta(days=5)
    days = _days(30)
    costs = [1.0] * 24 + [3.0] * 6  # tagged before it became a customer: in its trend, not its run rate
    cust = [{"customer_id": "C2", "tenant_id": "t2", "mrr": 100, "valid_from": since}] + CUST
    allocated = _allocated({"C2": costs, "C1": [2.0] * 30}, days)
    out = windowed(allocated, set(days), customers(cust), customers([]), usage([]), set())
    new, old = _row(out, "C2"), _row(out, "C1")
    assert (new["history_days"], new["monthly_run_rate"], new["total_cost"]) == (6, pytest.approx(90.0), 3.0)
    assert (new["cost_7d"], new["cost_prev_7d"]) == (pytest.approx(1.0 + 6 * 3.0), pytest.approx(7.0))
    assert (old["history_days"], old["monthly_run_rate"], old["cost_growth_7d"]) == (30, pytest.approx(60.0), 0.0)


def test_a_daily_run_from_window_sums_equals_the_days_rows():
    """Random customers, joining before, inside and after the month or never dated, with days not
    materialized (rows on some of them too): every figure of each of 10 days as from the rows."""
    rng = random.Random(7)
    days = _days(45)
    present = {d for d in days if rng.random() > 0.15} | {days[-1]}
    cust = []
    for i in range(40):
        offset = rng.choice([None, 60, 35, 29, 20, 10, 3, 0, -2])
        since = None if offset is None else D - dt.timedelta(days=offset)
        cust.append({"customer_id": f"C{i:02}", "tenant_id": f"t{i:02}", "mrr": rng.choice([0, 50, 400]),
                     **({"valid_from": since} if since else {})})  # fmt: skip
    rows = [
        {"day": d, "customer_id": c["customer_id"], "pool": rng.choice(["direct", "nat_gateway"]),
         "allocated_cost": round(rng.uniform(0, 40), 2), "unallocated_reason": None}
        for d in days for c in cust if rng.random() < 0.8 and (d in present or rng.random() < 0.3)
    ]  # fmt: skip
    allocated = pl.DataFrame(rows, schema={"day": pl.Date, "customer_id": pl.String, "pool": pl.String,
                                           "allocated_cost": pl.Float64, "unallocated_reason": pl.String})  # fmt: skip
    checked, joined, paths = 0, 0, set()
    # Days missing from the two weeks (the month read apart), and every day materialized (the month
    # from the weeks' scan).
    for materialized in (present, set(days)):
        for day in days[-10:]:
            of_day = customers(cust, [day])
            week_ago = customers(cust, [day - dt.timedelta(days=7)])
            window = {d for d in materialized if d <= day} | {day}
            history = allocated.filter(pl.col("day") <= day)
            expected = unit_cost(history, window, of_day, week_ago, usage([]), set(), [day])
            got = windowed(history, window, of_day, week_ago, usage([]), set(), day=day)
            assert_frame_equal(got, expected, rel_tol=1e-12, abs_tol=1e-12)
            checked += expected.height
            joined += len(joined_in_month(of_day, day))
            paths.add("month" in day_windows(day, window))
    assert checked >= 500 and joined >= 60 and paths == {True, False}
