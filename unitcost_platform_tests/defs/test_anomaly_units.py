"""cost_anomalies' units through real Dagster runs on the small SaaS (t1 is C1's, t2 C2's, tf F's).

With the default unit metric, requests, the units come with unit_cost's rows (its requests per
customer), and tenant_usage is not read; with another metric they are tenant_usage's, summed per
customer by the warehouse (CUSTOMER_UNITS_QUERY, whose SQL test_customer_units_query.py holds).
"""

import dagster as dg

from unitcost_platform.definitions import build_definitions
from unitcost_platform_tests.helpers import write_usage_csv
from unitcost_platform_tests.saas import DAYS, read_table, run_range


def _units_and_inputs(settings) -> tuple[dict, set[str]]:
    result = run_range(settings, DAYS[0], DAYS[-1])
    assert result.success
    loaded = {
        event.event_specific_data.input_name
        for event in result.all_events
        if event.event_type == dg.DagsterEventType.LOADED_INPUT and event.step_key == "cost_anomalies"
    }
    anomalies = read_table(settings, "cost_anomalies")
    return {(r["day"], r["customer_id"]): r["actual_units"] for r in anomalies.iter_rows(named=True)}, loaded


def test_requests_come_with_unit_costs_rows(small_saas, make_settings):
    settings = make_settings(small_saas)
    units, loaded = _units_and_inputs(settings)
    # Every day: t1 1000, t2 500 and tf 500 requests (the small SaaS's usage).
    assert units == {(d, c): u for d in DAYS for c, u in (("C1", 1000.0), ("C2", 500.0), ("F", 500.0))}
    assert loaded == {"unit_cost", "allocated_cost"}
    definition = build_definitions(settings).resolve_assets_def("cost_anomalies")
    # Still downstream of what its units come from: a restated day of usage or customers marks it stale.
    assert {"tenant_usage", "customer_dimension"} <= {k.to_user_string() for k in definition.dependency_keys}


def test_another_unit_metric_is_summed_from_tenant_usage(small_saas, make_settings):
    rows = []
    for i, day in enumerate(DAYS):
        rows += [(day, "t1", "requests", 1000), (day, "t2", "requests", 500), (day, "tf", "requests", 500)]
        rows += [(day, "t1", "sessions", 40 + i), (day, "t2", "sessions", 20)]  # tf has no sessions
    write_usage_csv(small_saas / "usage" / "usage.csv", rows)
    config = small_saas / "sessions.yaml"
    config.write_text((small_saas / "unitcost.yaml").read_text() + "anomalies:\n  unit_metric: sessions\n")
    units, loaded = _units_and_inputs(make_settings(small_saas, config=config))
    # A customer without the metric has no units, which the asset reports as 0.
    assert units == {(d, c): u for i, d in enumerate(DAYS) for c, u in (("C1", 40.0 + i), ("C2", 20.0), ("F", 0.0))}
    assert loaded == {"unit_cost", "tenant_usage", "allocated_cost"}
