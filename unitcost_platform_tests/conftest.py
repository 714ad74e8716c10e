"""Fixtures shared by the test packages: the small SaaS data dir and settings pointing at it."""

from collections.abc import Callable
from pathlib import Path

import pytest

from unitcost_platform.settings import Settings
from unitcost_platform_tests.saas import START, write_small_saas


@pytest.fixture
def small_saas(tmp_path) -> Path:
    return write_small_saas(tmp_path / "data")


@pytest.fixture
def make_settings(tmp_path) -> Callable[..., Settings]:
    def make(data_dir: Path, db_name: str = "warehouse.duckdb", config: Path | None = None) -> Settings:
        return Settings.from_env({
            "UNITCOST_DATA_DIR": str(data_dir),
            "UNITCOST_CONFIG": str(config or data_dir / "unitcost.yaml"),
            "UNITCOST_DUCKDB_PATH": str(tmp_path / db_name),
            "UNITCOST_START_DATE": START.isoformat(),
        })  # fmt: skip

    return make
