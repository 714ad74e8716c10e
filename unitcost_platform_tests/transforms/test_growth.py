"""Growth efficiency: 30-day cost windows 90 days apart against active customers (docs/design.md §8)."""

import datetime as dt

import polars as pl
import pytest

from unitcost_platform.transforms.growth import active_counts
from unitcost_platform.transforms.growth import growth_efficiency as growth_from_counts
from unitcost_platform_tests.helpers import D, customers


def _totals(days: list[dt.date], cost) -> pl.DataFrame:
    return pl.DataFrame({"day": days, "total_cost": [float(cost(d)) for d in days]}, schema={"day": pl.Date, "total_cost": pl.Float64})


def _active(n: int, day: dt.date) -> pl.DataFrame:
    return customers([{"customer_id": f"C{i}", "tenant_id": f"t{i}"} for i in range(n)], [day])


def growth_efficiency(totals, customers_now, customers_then, days):
    """From the customer dimension's rows, counted as the Polars twin counts them."""
    return growth_from_counts(totals, active_counts(customers_now), active_counts(customers_then), days)


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


# The active customers counted by the warehouse (ACTIVE_CUSTOMERS_QUERY), as the asset reads them.

def _dimension(rows_of_day: dict[dt.date, list[dict]]) -> pl.DataFrame:
    return pl.concat([customers(rows, [day]) for day, rows in rows_of_day.items()], how="vertical_relaxed")


def _counted(dimension: pl.DataFrame, engine: str) -> pl.DataFrame:
    from unitcost_platform.transforms.growth import ACTIVE_CUSTOMERS_QUERY
    from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE
    from unitcost_platform_tests.helpers import duckdb_tables, fake_snowflake_tables

    rows = f"select {', '.join(ACTIVE_CUSTOMERS_QUERY.columns)} from unitcost.customer_dimension"
    table = dimension.select(ACTIVE_CUSTOMERS_QUERY.columns)
    if engine == "duckdb":
        out = duckdb_tables({"customer_dimension": table})(ACTIVE_CUSTOMERS_QUERY.statement(rows, None, DUCKDB))
    else:
        with fake_snowflake_tables({"customer_dimension": table}) as snowflake:
            out = snowflake(ACTIVE_CUSTOMERS_QUERY.statement(rows, None, SNOWFLAKE))
    return out.cast(ACTIVE_CUSTOMERS_QUERY.schema).sort("snapshot_date")


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
def test_the_warehouse_counts_each_active_customer_once_per_day(engine):
    """A customer with two tenants counts once, a churned one not at all, a day of churned customers
    only has no row (growth then has no count for it)."""
    dimension = _dimension({
        THEN: [{"customer_id": "A", "tenant_id": "a1"}, {"customer_id": "B", "tenant_id": "b", "status": "churned"}],
        D: [{"customer_id": "A", "tenant_id": "a1"}, {"customer_id": "A", "tenant_id": "a2"},
            {"customer_id": "B", "tenant_id": "b", "status": "churned"}, {"customer_id": "C", "tenant_id": "c"}],
        D - dt.timedelta(days=1): [{"customer_id": "B", "tenant_id": "b", "status": "churned"}],
    })  # fmt: skip
    out = _counted(dimension, engine)
    assert out.rows() == [(THEN, 1), (D, 2)]


@pytest.mark.parametrize("engine", ["duckdb", "snowflake"])
@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_warehouse_counts_equal_the_polars_twin(engine, seed):
    import random

    rng = random.Random(seed)
    days = [D - dt.timedelta(days=k) for k in (0, 1, 7, 90, 91)]

    def day_rows() -> list[dict]:  # a customer's status is one per day, on each of its tenants
        status = {f"C{c}": rng.choice(["active", "active", "churned"]) for c in range(25)}
        owners = [f"C{rng.randrange(25)}" for _ in range(rng.randrange(10, 40))]
        return [{"customer_id": c, "tenant_id": f"t{i}", "status": status[c]} for i, c in enumerate(owners)]

    dimension = _dimension({day: day_rows() for day in days})
    dimension = dimension.sample(fraction=1.0, shuffle=True, seed=seed)
    expected = active_counts(dimension).sort("snapshot_date")
    assert expected.height >= 4 and (expected["active_customers"] > 1).all()
    assert _counted(dimension, engine).equals(expected)
    # And growth from the warehouse's counts is growth from the dimension's rows.
    totals = _totals(HISTORY, lambda d: 10 + (d - HISTORY[0]).days)
    now, then = (_counted(dimension.filter(pl.col("snapshot_date") == d), engine) for d in (D, THEN))
    assert growth_from_counts(totals, now, then, [D]).equals(
        growth_efficiency(totals, dimension.filter(pl.col("snapshot_date") == D), dimension.filter(pl.col("snapshot_date") == THEN), [D])
    )
