"""A config that could only fail in a run fails when the definitions load instead, and the README
says which keys are read at load (and so need a code-location reload)."""

import subprocess
from pathlib import Path

import pytest

from unitcost_platform.config import LOAD_TIME_KEYS
from unitcost_platform.definitions import build_definitions
from unitcost_platform.errors import ConfigError

ROOT = Path(__file__).parents[2]


def test_a_kind_without_any_source_is_refused_at_load(small_saas, make_settings):
    config = small_saas / "unitcost.yaml"
    config.write_text("usage:\n  files: null\n" + config.read_text())
    with pytest.raises(ConfigError) as err:
        build_definitions(make_settings(small_saas))
    assert "(top level): no usage source is configured: set usage.files, usage.prometheus" in str(err.value)
    assert str(config) in str(err.value)


def test_a_configured_source_without_its_secret_is_refused_at_load(small_saas, make_settings, monkeypatch):
    monkeypatch.delenv("UNITCOST_TEST_DD_KEY", raising=False)
    monkeypatch.setenv("DD_APP_KEY", "dd-app-FAKE")
    config = small_saas / "unitcost.yaml"
    config.write_text(
        "usage:\n  datadog:\n    api_key_env: UNITCOST_TEST_DD_KEY\n"
        "    metrics: [{metric: api_calls, query: 'sum:app.calls{*} by {tenant_id}'}]\n" + config.read_text()
    )
    with pytest.raises(ConfigError) as err:
        build_definitions(make_settings(small_saas))
    assert "usage.datadog reads a secret from UNITCOST_TEST_DD_KEY, which is not set" in str(err.value)
    assert "DD_APP_KEY" not in str(err.value)  # that one is set
    monkeypatch.setenv("UNITCOST_TEST_DD_KEY", "dd-api-FAKE")
    defs = build_definitions(make_settings(small_saas))
    assert defs.resources["datadog"].api_key == "UNITCOST_TEST_DD_KEY"  # a dg.EnvVar: resolved by Dagster, never stored


def test_dg_check_defs_fails_on_such_a_config(small_saas, make_settings, tmp_path):
    config = small_saas / "unitcost.yaml"
    config.write_text("customers:\n  files: null\n" + config.read_text())
    env = {"PATH": str(Path(__import__("sys").executable).parent), "UNITCOST_CONFIG": str(config),
           "UNITCOST_DATA_DIR": str(small_saas), "UNITCOST_DUCKDB_PATH": str(tmp_path / "w.duckdb"),
           "DAGSTER_HOME": str(tmp_path)}  # fmt: skip
    done = subprocess.run(["dg", "check", "defs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode != 0
    assert "no customer source is configured: set customers.postgres or customers.files" in done.stdout + done.stderr


def test_the_readme_lists_the_keys_read_at_load():
    readme = (ROOT / "README.md").read_text()
    table = readme.split("read when the definitions load | why", 1)[1].split("\n\n", 1)[0]
    for key in LOAD_TIME_KEYS:
        assert key.split(",")[0] in table, key
