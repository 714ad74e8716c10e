"""Alert rules at their boundaries (exactly 0.20, 0.25, 15%) and the drivers they name."""

import datetime as dt
import json

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import AlertsConfig, OwnersConfig
from unitcost_platform.transforms.alerts import ReadOnce, _drivers, driver_windows
from unitcost_platform.transforms.alerts import cost_alerts as compute_cost_alerts
from unitcost_platform.transforms.customer_cost import CUSTOMER_SERVICE_ROLLUP, apply_rollup
from unitcost_platform.transforms.unit_cost import UNIT_COST_SCHEMA
from unitcost_platform_tests.helpers import D

OWNERS = OwnersConfig(services={"Amazon EC2": "compute-team", "Amazon RDS": "data-team"}, default_team="platform")


def _unit(rows: list[dict]) -> pl.DataFrame:
    base = {c: None for c in UNIT_COST_SCHEMA}
    defaults = {"day": D, "customer_name": "n", "tier": "smb", "segment": "s", "is_paying": True, "status": "active",
                "mrr": 1000.0, "total_cost": 1.0, "monthly_run_rate": 100.0, "mrr_growth_7d": 0.0}  # fmt: skip
    return pl.DataFrame([{**base, **defaults, **r} for r in rows], schema=UNIT_COST_SCHEMA)


def cost_alerts(unit: pl.DataFrame, allocated: pl.DataFrame, *args) -> pl.DataFrame:
    """From allocated_cost rows, through the per-customer-service rollup the asset reads."""
    return compute_cost_alerts(unit, apply_rollup(allocated, CUSTOMER_SERVICE_ROLLUP), *args)


def _no_costs() -> pl.DataFrame:
    return pl.DataFrame(schema={"day": pl.Date, "customer_id": pl.String, "service_name": pl.String,
                                "allocated_cost": pl.Float64, "unallocated_reason": pl.String})  # fmt: skip


def _types(out: pl.DataFrame) -> dict[str | None, list[str]]:
    result: dict[str | None, list[str]] = {}
    for cid, kind in out.select("customer_id", "alert_type").iter_rows():
        result.setdefault(cid, []).append(kind)
    return result


@pytest.mark.parametrize(
    ("ratio", "expected"),
    [(0.20, []), (0.2000001, ["P2"]), (0.25, ["P2"]), (0.2500001, ["P1"]), (0.9, ["P1"]), (None, [])],
)
def test_cost_to_mrr_boundaries(ratio, expected):
    out = cost_alerts(_unit([{"customer_id": "C", "cost_to_mrr": ratio}]), _no_costs(), [D], AlertsConfig(), OWNERS)
    assert _types(out).get("C", []) == expected


@pytest.mark.parametrize(
    ("growth", "mrr_growth", "fires"),
    [(0.15, 0.0, False), (0.1500001, 0.0, True), (0.30, 0.30, False), (0.30, 0.29, True), (None, 0.0, False),
     (0.40, -0.1, True)],
)  # fmt: skip
def test_trend_boundaries(growth, mrr_growth, fires):
    unit = _unit([{"customer_id": "C", "cost_growth_7d": growth, "mrr_growth_7d": mrr_growth}])
    out = cost_alerts(unit, _no_costs(), [D], AlertsConfig(), OWNERS)
    assert ("TREND" in _types(out).get("C", [])) is fires


def test_segment_when_non_paying_median_exceeds_paying_median():
    rows = [
        {"customer_id": "P1", "total_cost": 1.0}, {"customer_id": "P2", "total_cost": 3.0},  # paying median 2
        {"customer_id": "F1", "is_paying": False, "mrr": 0.0, "total_cost": 2.0},
        {"customer_id": "F2", "is_paying": False, "mrr": 0.0, "total_cost": 4.0},  # non-paying median 3
        {"customer_id": "X", "is_paying": False, "status": "churned", "total_cost": 0.0},  # not active: ignored
    ]  # fmt: skip
    out = cost_alerts(_unit(rows), _no_costs(), [D], AlertsConfig(), OWNERS)
    seg = out.filter(pl.col("alert_type") == "SEGMENT").row(0, named=True)
    assert seg["customer_id"] is None
    assert (seg["value"], seg["threshold"]) == (3.0, 2.0)
    assert seg["alert_id"] == f"{D}:SEGMENT:segment"


def test_no_segment_at_equal_medians_or_without_paying_customers():
    equal = [{"customer_id": "P", "total_cost": 2.0}, {"customer_id": "F", "is_paying": False, "total_cost": 2.0}]
    assert cost_alerts(_unit(equal), _no_costs(), [D], AlertsConfig(), OWNERS).is_empty()
    free_only = [{"customer_id": "F", "is_paying": False, "total_cost": 9.0}]
    assert cost_alerts(_unit(free_only), _no_costs(), [D], AlertsConfig(), OWNERS).is_empty()


def test_alert_names_the_services_that_drove_it_with_owners_and_change():
    def cost(day_offset: int, service: str, value: float) -> dict:
        return {"day": D - dt.timedelta(days=day_offset), "customer_id": "C", "service_name": service,
                "allocated_cost": value, "unallocated_reason": None}  # fmt: skip

    rows = [cost(o, "Amazon EC2", 10.0 if o < 7 else 5.0) for o in range(14)]  # 70 vs 35: +100%
    rows += [cost(o, "Amazon RDS", 2.0) for o in range(14)]  # 14 vs 14: 0%
    rows += [cost(o, "AWS Lambda", 1.0) for o in range(7)]  # 7 vs 0: change n/a
    rows += [cost(20, "Amazon EC2", 1000.0)]  # outside the 14 days
    rows += [{**cost(0, "Amazon EC2", 500.0), "unallocated_reason": "unknown_tenant"}]  # not the customer's
    allocated = pl.DataFrame(rows)
    unit = _unit([{"customer_id": "C", "cost_to_mrr": 0.3, "mrr": 1000.0, "monthly_run_rate": 300.0}])
    out = cost_alerts(unit, allocated, [D], AlertsConfig(max_drivers=2), OWNERS)
    alert = out.row(0, named=True)
    drivers = json.loads(alert["drivers"])
    assert [d["service"] for d in drivers] == ["Amazon EC2", "Amazon RDS"]
    assert drivers[0] == {"service": "Amazon EC2", "owner": "compute-team", "cost_7d": 70.0, "cost_prev_7d": 35.0, "change_7d": 1.0}
    assert drivers[1]["change_7d"] == 0.0
    assert alert["owners"] == "compute-team,data-team"
    assert alert["alert_id"] == f"{D}:P1:C"
    assert "Amazon EC2" in alert["message"] and "30.0%" in alert["message"] and "$1,000" in alert["message"]


def test_trend_drivers_are_ranked_by_increase():
    rows = []
    for o in range(14):
        day = D - dt.timedelta(days=o)
        rows.append({"day": day, "customer_id": "C", "service_name": "Big", "allocated_cost": 100.0, "unallocated_reason": None})
        rows.append({"day": day, "customer_id": "C", "service_name": "Rising", "allocated_cost": 5.0 if o < 7 else 1.0, "unallocated_reason": None})
    unit = _unit([{"customer_id": "C", "cost_growth_7d": 0.5, "mrr_growth_7d": 0.0}])
    out = cost_alerts(unit, pl.DataFrame(rows), [D], AlertsConfig(max_drivers=1), OWNERS)
    assert [d["service"] for d in json.loads(out.row(0, named=True)["drivers"])] == ["Rising"]
    assert out.row(0, named=True)["owners"] == "platform"


def test_thresholds_come_from_config():
    unit = _unit([{"customer_id": "C", "cost_to_mrr": 0.12}])
    cfg = AlertsConfig(p1_cost_to_mrr=0.15, p2_cost_to_mrr=0.10)
    assert _types(cost_alerts(unit, _no_costs(), [D], cfg, OWNERS)) == {"C": ["P2"]}


def test_drivers_read_by_customer_read_the_alerted_customers_once():
    """The asset reads service costs for the customers it alerts on (and then its FORECAST ones), each
    once: the drivers are the same as from every customer's rows."""
    rows = [{"day": D - dt.timedelta(days=o), "customer_id": c, "service_name": s, "allocated_cost": v, "unallocated_reason": None}
            for o in range(14) for c, s, v in [("C", "Amazon EC2", 10.0), ("C", "Amazon RDS", 1.0), ("Q", "Amazon EC2", 99.0)]]  # fmt: skip
    every = apply_rollup(pl.DataFrame(rows), CUSTOMER_SERVICE_ROLLUP)
    unit = _unit([{"customer_id": "C", "cost_to_mrr": 0.3}, {"customer_id": "Q", "cost_to_mrr": 0.01}])
    asked: list[list[str]] = []

    def read(customers):
        asked.append(list(customers))
        return every.filter(pl.col("customer_id").is_in(list(customers)))

    reader = ReadOnce(read)
    by_customer = compute_cost_alerts(unit, reader, [D], AlertsConfig(max_drivers=2), OWNERS)
    assert asked == [["C"]]  # Q is not alerted: its rows stay in the warehouse
    assert_frame_equal(by_customer, compute_cost_alerts(unit, every, [D], AlertsConfig(max_drivers=2), OWNERS))
    assert json.loads(by_customer["drivers"][0])[0] == {"service": "Amazon EC2", "owner": "compute-team", "cost_7d": 70.0,
                                                         "cost_prev_7d": 70.0, "change_7d": 0.0}  # fmt: skip
    # Asked again (the FORECAST drivers) for C and a new customer: only the new one is read.
    assert reader(["C", "Q"])["customer_id"].unique().sort().to_list() == ["C", "Q"]
    assert asked == [["C"], ["Q"]]


def test_a_one_day_run_reads_two_seven_day_sums_per_service_with_the_same_drivers():
    """A daily run reads its drivers summed over the 7 days ending at D and the 7 before (2 rows per
    customer and service, not 14): the alerts and their drivers are those from the 14 days' rows.
    EC2 grows (10 a day, then 30 in the last week); RDS costs only before the last week (it is still
    a driver, 0 now against 14); S3 has a row of 0 only; a row 15 days back is outside both windows."""
    def row(offset, service, cost):
        return {"day": D - dt.timedelta(days=offset), "customer_id": "C", "service_name": service,
                "allocated_cost": cost, "unallocated_reason": None}  # fmt: skip

    rows = [row(o, "Amazon EC2", 30.0 if o < 7 else 10.0) for o in range(14)]
    rows += [row(o, "Amazon RDS", 2.0) for o in range(7, 14)] + [row(3, "Amazon S3", 0.0), row(14, "Amazon EC2", 1000.0)]
    every = apply_rollup(pl.DataFrame(rows), CUSTOMER_SERVICE_ROLLUP)
    windows = driver_windows([D])
    summed = apply_rollup(pl.DataFrame(rows), {**CUSTOMER_SERVICE_ROLLUP, "windows": windows})
    assert summed.height == 4  # EC2 in both windows, RDS in the earlier, S3 in the later
    unit = _unit([{"customer_id": "C", "cost_to_mrr": 0.3, "cost_growth_7d": 2.0}])
    cfg = AlertsConfig(max_drivers=3)
    by_window = compute_cost_alerts(unit, summed, [D], cfg, OWNERS)
    assert_frame_equal(by_window, compute_cost_alerts(unit, every, [D], cfg, OWNERS))
    drivers = {d["service"]: d for a in by_window["drivers"] for d in json.loads(a)}
    assert (drivers["Amazon EC2"]["cost_7d"], drivers["Amazon EC2"]["cost_prev_7d"]) == (210.0, 70.0)
    assert (drivers["Amazon RDS"]["cost_7d"], drivers["Amazon RDS"]["cost_prev_7d"]) == (0.0, 14.0)
    assert driver_windows([D, D + dt.timedelta(days=1)]) is None  # a range run reads every day


def test_drivers_equal_as_shown_are_ordered_by_service_name():
    """Two services that did not grow, one with a rise of 4e-16 from its sums' last bits (a daily
    run's warehouse sums and a range run's running totals add in different orders): ranked by the
    costs the alert shows, they tie and are ordered by name, so both runs write the same drivers."""
    changes = pl.DataFrame(
        {"day": [D] * 3, "_key": ["C"] * 3, "service_name": ["Amazon CloudWatch", "AWS Lambda", "Amazon EC2"],
         "cost_7d": [0.4 * 7, 1.75, 60.0], "cost_prev_7d": [2.8, 1.75, 35.0]},
    )  # fmt: skip
    assert 0.4 * 7 != 2.8
    alerts = pl.DataFrame({"day": [D], "_key": ["C"], "alert_type": ["TREND"]})
    drivers = json.loads(_drivers(changes, alerts, OWNERS, 3)["drivers"][0])
    assert [d["service"] for d in drivers] == ["Amazon EC2", "AWS Lambda", "Amazon CloudWatch"]
