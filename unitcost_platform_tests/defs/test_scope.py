"""A scoped rollout: unit cost, alerts and customer checks cover the scope; allocation does not change."""

import dagster as dg
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from unitcost_platform.config import load_config
from unitcost_platform.errors import ConfigError
from unitcost_platform_tests.saas import DAYS, materialization_metadata, read_table, run_range


def _config(small_saas, name: str, scope: str | None):
    base = (small_saas / "unitcost.yaml").read_text()
    path = small_saas / f"{name}.yaml"
    path.write_text(base + (f"scope: {scope}\n" if scope else ""))
    return path


def _run(small_saas, make_settings, name: str, scope: str | None):
    settings = make_settings(small_saas, db_name=f"{name}.duckdb", config=_config(small_saas, name, scope))
    result = run_range(settings, DAYS[0], DAYS[-1])
    assert result.success
    return settings, result


def _customer_alerts(settings, customers: list[str]) -> pl.DataFrame:
    alerts = read_table(settings, "cost_alerts").filter(pl.col("customer_id").is_in(customers))
    return alerts.sort(alerts.columns, nulls_last=True)


def test_widening_the_scope_changes_no_figure_of_a_customer_in_it(small_saas, make_settings):
    smb, _ = _run(small_saas, make_settings, "smb", "{tiers: [smb]}")
    wider, _ = _run(small_saas, make_settings, "wider", "{tiers: [smb, Mid-Market]}")
    everyone, _ = _run(small_saas, make_settings, "everyone", None)

    unit = {name: read_table(s, "unit_cost").sort("day", "customer_id") for name, s in
            (("smb", smb), ("wider", wider), ("everyone", everyone))}  # fmt: skip
    assert set(unit["smb"]["customer_id"]) == {"C2"}
    assert set(unit["wider"]["customer_id"]) == {"C1", "C2"}
    assert set(unit["everyone"]["customer_id"]) == {"C1", "C2", "F"}
    for name in ("wider", "everyone"):
        assert_frame_equal(unit["smb"], unit[name].filter(pl.col("customer_id") == "C2"))
    assert_frame_equal(unit["wider"], unit["everyone"].filter(pl.col("customer_id").is_in(["C1", "C2"])))

    # Shared pools are still split over everyone, the free tenant included: C2's shares of the NAT
    # gateway (3 x 500/2000), CloudWatch (1.2 / 3) and the untagged Lambda (1 x 500/2000).
    c2 = unit["smb"].filter(pl.col("day") == DAYS[-1]).row(0, named=True)
    assert c2["direct_cost"] == pytest.approx(10.0)
    assert c2["shared_cost"] == pytest.approx(0.75 + 0.4 + 0.25)
    assert_frame_equal(read_table(smb, "allocated_cost").sort("day", "customer_id", "pool", "service_name", nulls_last=True),
                       read_table(everyone, "allocated_cost").sort("day", "customer_id", "pool", "service_name", nulls_last=True))  # fmt: skip

    # Customer alerts of the customers in scope are the same; nobody outside the scope is alerted.
    assert_frame_equal(_customer_alerts(smb, ["C2"]), _customer_alerts(everyone, ["C2"]))
    assert _customer_alerts(smb, ["C2"]).height > 0
    assert read_table(smb, "cost_alerts").filter(pl.col("customer_id").is_in(["C1", "F"])).is_empty()


def test_metadata_names_the_scope(small_saas, make_settings):
    settings, result = _run(small_saas, make_settings, "scoped", "{tiers: [smb], segments: [SMB]}")
    day = DAYS[-1].isoformat()
    wanted = "tier in smb and segment in SMB"
    assert materialization_metadata(result, "unit_cost", day)["scope"] == wanted
    assert materialization_metadata(result, "unit_cost", day)["customers"] == 1
    assert materialization_metadata(result, "cost_alerts", day)["scope"] == wanted
    assert materialization_metadata(result, "unit_cost_dashboard", day)["scope"] == wanted
    orphans = [
        e.event_specific_data for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and e.event_specific_data.check_name == "orphans"
    ]  # fmt: skip
    assert orphans and all(ev.metadata["scope"].value == wanted for ev in orphans)


def test_a_scope_nobody_is_in_gives_empty_tables_not_errors(small_saas, make_settings):
    # The small SaaS has no valid_from history, so no customer has a known onboarding day: an
    # onboarded_since scope covers nobody (rather than guessing).
    settings, result = _run(small_saas, make_settings, "future", "{onboarded_since: 2026-01-01}")
    assert read_table(settings, "unit_cost").is_empty()
    assert read_table(settings, "cost_alerts").is_empty()
    # The bill is still allocated in full.
    assert read_table(settings, "allocated_cost")["allocated_cost"].sum() == pytest.approx(
        read_table(settings, "raw_billing")["EffectiveCost"].sum()
    )


def test_a_scope_without_criteria_is_a_config_error(tmp_path):
    path = tmp_path / "unitcost.yaml"
    path.write_text("scope: {}\n")
    with pytest.raises(ConfigError, match="scope needs tiers, segments or onboarded_since"):
        load_config(path)
    path.write_text("scope: {tier: [smb]}\n")
    with pytest.raises(ConfigError, match=r"scope\.tier: unknown key"):
        load_config(path)
