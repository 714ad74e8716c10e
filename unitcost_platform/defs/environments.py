"""The one place the environment picks the warehouse: DuckDB locally, Snowflake in production.

Asset code is the same everywhere; `UNITCOST_ENV` (Settings.env) selects an entry of WAREHOUSES
when the definitions load. Secrets reach the resources as `dg.EnvVar`s, resolved at run time.
"""

import os
from collections.abc import Callable
from dataclasses import dataclass

import dagster as dg

from unitcost_platform.defs.io_managers import UnitcostDuckDBIOManager
from unitcost_platform.settings import WAREHOUSE_SCHEMA, Settings


@dataclass(frozen=True)
class Warehouse:
    io_manager: dg.ConfigurableIOManagerFactory
    kinds: set[str]
    executor: dg.ExecutorDefinition


def local_warehouse(settings: Settings) -> Warehouse:
    """DuckDB file; one writer at a time, so a run's steps share one process."""
    settings.duckdb_path.parent.mkdir(parents=True, exist_ok=True)
    return Warehouse(
        io_manager=UnitcostDuckDBIOManager(
            database=str(settings.duckdb_path),
            schema=WAREHOUSE_SCHEMA,
            config_path=str(settings.config_path),
            connection_config=settings.duckdb_connection_config(),
            read_memory_limit=settings.duckdb_read_memory_limit,
        ),
        kinds={"polars", "duckdb"},
        executor=dg.in_process_executor,
    )


def prod_warehouse(settings: Settings) -> Warehouse:
    """Snowflake; credentials from SNOWFLAKE_* environment variables (password or key pair)."""
    # The prod extra (dagster-snowflake, the Snowflake connector) is needed only here.
    from unitcost_platform.defs.snowflake_io import UnitcostSnowflakeIOManager

    optional = {
        "password": "SNOWFLAKE_PASSWORD",
        "role": "SNOWFLAKE_ROLE",
        "private_key_path": "SNOWFLAKE_PRIVATE_KEY_PATH",
        "private_key_password": "SNOWFLAKE_PRIVATE_KEY_PASSWORD",
    }
    return Warehouse(
        io_manager=UnitcostSnowflakeIOManager(
            account=dg.EnvVar("SNOWFLAKE_ACCOUNT"),
            user=dg.EnvVar("SNOWFLAKE_USER"),
            database=dg.EnvVar("SNOWFLAKE_DATABASE"),
            warehouse=dg.EnvVar("SNOWFLAKE_WAREHOUSE"),
            schema=WAREHOUSE_SCHEMA,
            config_path=str(settings.config_path),
            **{field: dg.EnvVar(env) for field, env in optional.items() if os.environ.get(env)},
        ),
        kinds={"polars", "snowflake"},
        executor=dg.multiprocess_executor,
    )


WAREHOUSES: dict[str, Callable[[Settings], Warehouse]] = {"local": local_warehouse, "prod": prod_warehouse}
