"""Where things are: resolved from environment variables when definitions load, never at import."""

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import duckdb

from unitcost_platform.errors import ConfigError

PROJECT_ROOT = Path(__file__).resolve().parents[1]
DEMO_START_DATE = dt.date(2026, 7, 1)
DEMO_DAYS = 120
WAREHOUSE_SCHEMA = "unitcost"


@dataclass(frozen=True)
class Settings:
    """The run environment: which warehouse, which files, which first partition."""

    env: str
    data_dir: Path
    config_path: Path
    duckdb_path: Path
    start_date: dt.date
    dashboard_dir: Path
    # DuckDB's memory for a run (it spills to disk beyond it): UNITCOST_DUCKDB_MEMORY_LIMIT, e.g. 4GB.
    duckdb_memory_limit: str = "2GB"
    # DuckDB's memory while an asset reads its inputs: UNITCOST_DUCKDB_READ_MEMORY_LIMIT. The read's
    # result is in Python as well, so DuckDB's cache of table blocks and a rollup's hash tables spill
    # beyond this smaller limit rather than sit next to it (cost_alerts at 10M line items: 2.5 -> 2.1 GiB).
    duckdb_read_memory_limit: str = "1.5GB"

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> "Settings":
        environ = os.environ if environ is None else environ
        env = environ.get("UNITCOST_ENV", "local").strip().lower() or "local"
        if env not in ("local", "prod"):
            raise ConfigError(
                f"UNITCOST_ENV={env!r} is not a known environment; use 'local' (DuckDB) or 'prod' "
                "(Snowflake)."
            )
        start_raw = environ.get("UNITCOST_START_DATE", "").strip()
        try:
            start = dt.date.fromisoformat(start_raw) if start_raw else DEMO_START_DATE
        except ValueError:
            raise ConfigError(
                f"UNITCOST_START_DATE={start_raw!r} is not a date; write it as YYYY-MM-DD, "
                "e.g. UNITCOST_START_DATE=2026-03-01."
            ) from None
        duckdb_path = _duckdb_path(environ)
        return cls(
            env=env,
            data_dir=_path(environ, "UNITCOST_DATA_DIR", PROJECT_ROOT / "data" / "demo"),
            config_path=_path(environ, "UNITCOST_CONFIG", PROJECT_ROOT / "unitcost.yaml"),
            duckdb_path=duckdb_path,
            start_date=start,
            # The dashboard pages go next to the warehouse file unless told otherwise.
            dashboard_dir=_path(environ, "UNITCOST_DASHBOARD_DIR", duckdb_path.parent / "dashboards"),
            duckdb_memory_limit=_memory(environ, "UNITCOST_DUCKDB_MEMORY_LIMIT", cls.duckdb_memory_limit),
            duckdb_read_memory_limit=_memory(environ, "UNITCOST_DUCKDB_READ_MEMORY_LIMIT", cls.duckdb_read_memory_limit),
        )

    def duckdb_connection_config(self) -> dict[str, str | bool]:
        """How the warehouse connection runs: bounded memory (a day of line items is scanned,
        aggregated and inserted by DuckDB, which spills beyond the limit), row order not kept on
        insert (tables are read by key; keeping it costs memory on a large insert)."""
        return {"memory_limit": self.duckdb_memory_limit, "preserve_insertion_order": False}


def _memory(environ: Mapping[str, str], name: str, default: str) -> str:
    """An amount of memory as DuckDB reads it (1.5GB, 512MiB, 50%), checked when the definitions
    load rather than at a run's first read or write."""
    raw = environ.get(name, "").strip()
    if not raw:
        return default
    try:
        duckdb.connect(":memory:", config={"memory_limit": raw}).close()
    except duckdb.Error as exc:
        reason = str(exc).splitlines()[0]
        raise ConfigError(
            f"{name}={raw!r} is not an amount of memory ({reason}); write a number and a unit, e.g. {name}=1GB."
        ) from None
    return raw


def _path(environ: Mapping[str, str], name: str, default: Path) -> Path:
    raw = environ.get(name, "").strip()
    return Path(raw).expanduser().resolve() if raw else default


def _duckdb_path(environ: Mapping[str, str]) -> Path:
    path = _path(environ, "UNITCOST_DUCKDB_PATH", PROJECT_ROOT / "data" / "warehouse.duckdb")
    if path.stem == WAREHOUSE_SCHEMA:
        # DuckDB names the catalog after the file: `unitcost.x` would be ambiguous.
        raise ConfigError(
            f"UNITCOST_DUCKDB_PATH={path}: a DuckDB file named {WAREHOUSE_SCHEMA}.* clashes with the "
            f"schema {WAREHOUSE_SCHEMA!r} the tables live in; name it e.g. warehouse.duckdb."
        )
    return path
