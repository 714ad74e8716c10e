"""The config file: the shipped default loads, and every mistake names the file, the key and the fix."""

import pytest

from unitcost_platform.config import load_config
from unitcost_platform.config_base import DEFAULT_TAG_KEYS
from unitcost_platform.errors import ConfigError
from unitcost_platform.settings import PROJECT_ROOT, Settings


def test_shipped_config_loads_with_default_pools_last():
    cfg = load_config(PROJECT_ROOT / "unitcost.yaml")
    names = [p.name for p in cfg.resolved_pools()]
    assert names[-3:] == ["default_compute_networking", "default_data", "default_other"]
    assert cfg.cost_column == "EffectiveCost"
    assert cfg.tenant.tag_keys == DEFAULT_TAG_KEYS


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("billing: {cost_colum: BilledCost}", "billing.cost_colum: unknown key"),
        ("billing: {cost_column: ListCost}", "billing.cost_column: Input should be 'EffectiveCost' or 'BilledCost'"),
        ("pools: [{name: a, match: {}, driver: flat}]", "a pool's match needs at least one of"),
        ("pools: [{name: a, match: {all: true}, driver: fixed, shares: {C1: 60, C2: 30}}]", "fixed shares sum to 90%, they must sum to 100%"),
        ("pools: [{name: a, match: {all: true}, driver: fixed}]", "driver fixed needs shares"),
        ("pools: [{name: a, match: {resource_id_pattern: '(['}, driver: flat}]", "is not a valid regex"),
        ("pools: [{name: direct, match: {all: true}, driver: flat}]", "reserved for tagged (direct) cost"),
        ("pools: [{name: a, match: {all: true}, driver: flat, fallback: flat}]", "fallback only applies to a usage-metric driver"),
        ("pools: [{name: a, match: {all: true}, driver: x}, {name: a, match: {all: true}, driver: y}]", "repeated: a"),
        ("alerts: {p1_cost_to_mrr: 0.1, p2_cost_to_mrr: 0.2}", "p2_cost_to_mrr must be below p1_cost_to_mrr"),
        ("tenant: {tag_keys: [\"it's\"]}", "must be non-empty and contain no quote"),
        ("billing: [1, 2", "is not valid YAML"),
        ("- just a list", "must be a mapping of sections"),
    ],
)  # fmt: skip
def test_mistakes_name_the_file_the_key_and_the_fix(tmp_path, text, message):
    path = tmp_path / "unitcost.yaml"
    path.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)


def test_missing_config_file(tmp_path):
    with pytest.raises(ConfigError, match="does not exist; set UNITCOST_CONFIG"):
        load_config(tmp_path / "nope.yaml")


def test_settings_from_environment(tmp_path):
    s = Settings.from_env({"UNITCOST_DATA_DIR": str(tmp_path), "UNITCOST_START_DATE": "2026-02-03"})
    assert s.data_dir == tmp_path and s.start_date.isoformat() == "2026-02-03" and s.env == "local"
    assert s.config_path == PROJECT_ROOT / "unitcost.yaml"
    with pytest.raises(ConfigError, match="UNITCOST_START_DATE='03/02/2026' is not a date"):
        Settings.from_env({"UNITCOST_START_DATE": "03/02/2026"})
    with pytest.raises(ConfigError, match="clashes with the schema 'unitcost'"):
        Settings.from_env({"UNITCOST_DUCKDB_PATH": str(tmp_path / "unitcost.duckdb")})
    with pytest.raises(ConfigError, match="UNITCOST_ENV='staging' is not a known environment"):
        Settings.from_env({"UNITCOST_ENV": "staging"})


def test_duckdb_memory_for_reads_from_environment():
    assert Settings.from_env({}).duckdb_read_memory_limit == "1.5GB"
    assert Settings.from_env({"UNITCOST_DUCKDB_READ_MEMORY_LIMIT": " 512MiB "}).duckdb_read_memory_limit == "512MiB"
    assert Settings.from_env({"UNITCOST_DUCKDB_READ_MEMORY_LIMIT": "25%"}).duckdb_read_memory_limit == "25%"
    with pytest.raises(ConfigError, match=r"UNITCOST_DUCKDB_READ_MEMORY_LIMIT='a lot' is not an amount of memory.*=1GB"):
        Settings.from_env({"UNITCOST_DUCKDB_READ_MEMORY_LIMIT": "a lot"})
    with pytest.raises(ConfigError, match=r"UNITCOST_DUCKDB_MEMORY_LIMIT='2000000' is not an amount of memory \(.*unit"):
        Settings.from_env({"UNITCOST_DUCKDB_MEMORY_LIMIT": "2000000"})
    assert Settings.from_env({"UNITCOST_DUCKDB_MEMORY_LIMIT": "4GB"}).duckdb_memory_limit == "4GB"


def test_scope_selects_by_tier_segment_and_onboarding_day():
    import datetime as dt

    import polars as pl

    from unitcost_platform.config import ScopeConfig

    customers = pl.DataFrame({
        "customer_id": ["a", "b", "c", "d", "e"],
        "tier": ["Enterprise", "smb", "enterprise", "enterprise", "enterprise"],
        "segment": ["EMEA", "EMEA", "emea", "US", "emea"],
        "customer_since": [dt.date(2026, 8, 1), dt.date(2026, 9, 1), dt.date(2026, 7, 31), dt.date(2026, 9, 1), None],
    })  # fmt: skip

    def chosen(**scope) -> list[str]:
        return customers.filter(ScopeConfig(**scope).expr())["customer_id"].to_list()

    assert chosen(tiers=["enterprise"]) == ["a", "c", "d", "e"]
    assert chosen(segments=["emea"]) == ["a", "b", "c", "e"]
    # On or after the day; an unknown onboarding day is not in scope.
    assert chosen(onboarded_since=dt.date(2026, 8, 1)) == ["a", "b", "d"]
    assert chosen(tiers=["ENTERPRISE"], segments=["EMEA"], onboarded_since=dt.date(2026, 8, 1)) == ["a"]
    assert ScopeConfig(tiers=["smb"], onboarded_since=dt.date(2026, 8, 1)).describe() == (
        "tier in smb and onboarded on or after 2026-08-01"
    )
