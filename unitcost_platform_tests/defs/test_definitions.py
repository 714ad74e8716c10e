"""The code location loads, with the asset graph of docs/design.md §3, from the environment at load time."""

import os
import subprocess
import sys

import dagster as dg
import pytest

from unitcost_platform.definitions import build_definitions, defs
from unitcost_platform.settings import PROJECT_ROOT
from unitcost_platform_tests.saas import DAYS, FILE_ASSETS, START, TABLES, read_table

EDGES = {
    "tag_coverage": {"raw_billing"},
    "allocated_cost": {"raw_billing", "tenant_usage", "customer_dimension"},
    "unit_cost": {"allocated_cost", "tag_coverage", "customer_dimension", "tenant_usage", "raw_billing"},
    "cost_alerts": {"unit_cost", "allocated_cost", "cost_anomalies", "margin_forecast"},
    "growth_efficiency": {"tag_coverage", "customer_dimension"},
    "team_spend": {"raw_billing"},
    "service_unit_cost": {"allocated_cost", "tag_coverage", "customer_dimension"},
    "alert_incidents": {"cost_alerts", "unit_cost", "allocated_cost"},
    "product_billing": {"raw_billing"},
    "product_cost": {"product_billing", "tenant_usage", "tag_coverage"},
    "segment_economics": {"unit_cost", "tenant_usage", "customer_dimension"},
    "customer_unit_costs": {"unit_cost", "tenant_usage", "customer_dimension"},
    "unit_cost_dashboard": {"unit_cost", "growth_efficiency", "tag_coverage", "allocated_cost", "team_spend",
                            "service_unit_cost", "alert_incidents",
                            "product_cost", "segment_economics", "customer_unit_costs",
                            "cost_anomalies", "margin_forecast"},
    "cost_anomalies": {"unit_cost", "tenant_usage", "customer_dimension", "allocated_cost"},
    "margin_forecast": {"unit_cost"},
}


def test_definitions_load_with_every_asset(small_saas, make_settings):
    loaded = build_definitions(make_settings(small_saas))
    graph = loaded.resolve_asset_graph()
    assert {k.to_user_string() for k in graph.get_all_asset_keys()} == set(TABLES) | set(FILE_ASSETS)
    for asset, parents in EDGES.items():
        assert {p.to_user_string() for p in graph.get(dg.AssetKey(asset)).parent_keys} == parents
    for key in graph.get_all_asset_keys():
        node = graph.get(key)
        assert node.partitions_def.start.date() == START
        assert node.backfill_policy == dg.BackfillPolicy.single_run()
        assert node.description  # the docstring is the UI description
    assert loaded.resolve_job_def("unit_cost_daily") is not None
    dg.Definitions.validate_loadable(loaded)


def test_the_entry_point_reads_the_environment_when_called_not_at_import(small_saas, tmp_path, monkeypatch):
    monkeypatch.setenv("UNITCOST_START_DATE", "2025-12-01")
    monkeypatch.setenv("UNITCOST_DUCKDB_PATH", str(tmp_path / "x.duckdb"))
    first = defs()
    monkeypatch.setenv("UNITCOST_START_DATE", "2026-02-01")
    second = defs()
    starts = [d.resolve_asset_graph().get(dg.AssetKey("raw_billing")).partitions_def.start.date().isoformat()
              for d in (first, second)]  # fmt: skip
    assert starts == ["2025-12-01", "2026-02-01"]


def test_standard_dagster_cli_materializes_a_day(small_saas, tmp_path):
    """`dg launch -m unitcost_platform.definitions --assets '*' --partition <day>`, the README's command."""
    env = {
        **os.environ,
        "UNITCOST_DATA_DIR": str(small_saas),
        "UNITCOST_CONFIG": str(small_saas / "unitcost.yaml"),
        "UNITCOST_DUCKDB_PATH": str(tmp_path / "cli.duckdb"),
        "UNITCOST_START_DATE": START.isoformat(),
        "DAGSTER_HOME": str(tmp_path / "dagster_home"),
    }
    (tmp_path / "dagster_home").mkdir()
    (tmp_path / "dagster_home" / "dagster.yaml").write_text((PROJECT_ROOT / "dagster.yaml").read_text())
    dg_cli = os.path.join(os.path.dirname(sys.executable), "dg")
    done = subprocess.run(
        [dg_cli, "launch", "-m", "unitcost_platform.definitions", "--assets", "*", "--partition", DAYS[3].isoformat()],
        env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    assert "SupersessionWarning" not in done.stderr  # the current command, not a superseded one

    class _S:  # read_table only needs the path
        duckdb_path = tmp_path / "cli.duckdb"

    unit = read_table(_S, "unit_cost")
    assert unit["day"].unique().to_list() == [DAYS[3]]
    assert unit.height == 3
    # 10 + 5 + 2 tagged, 1 Lambda, 1.2 CloudWatch, 3 NAT hours.
    assert read_table(_S, "allocated_cost")["allocated_cost"].sum() == pytest.approx(22.2)
