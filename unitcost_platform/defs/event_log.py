"""The local instance's event log: Dagster's SQLite storage, keeping its database engines open.

Dagster's `SqliteEventLogStorage` opens a new SQLAlchemy engine for every event it stores (one for
the run's database and one for the cross-run index when the event concerns an asset). A new engine
also starts with an empty statement cache, so every INSERT is compiled again. A backfill of a
year writes one materialization per asset and day (23 assets x 365 days) plus the planned and
check events, and profiling the 365-day demo backfill showed about half of its time in opening
engines and compiling statements.

This subclass keeps one engine per database file: the index, and the few most recent runs (a
daemon or webserver reads many runs over its life; older engines are disposed). Files, schema,
transactions (one per stored event, as before) and locking between processes are Dagster's: SQLite
takes its file lock per transaction, not per connection, so other processes (webserver, daemon, run
workers) see the same database as before.

`dagster.yaml` selects it through `instance_class: LocalInstance`, Dagster's hook for an instance
whose defaults differ: the default storage stays SQLite under the instance's own directory
(DAGSTER_HOME, or the temporary one `dg dev` makes), only the event log class changes. A
`storage:` block in dagster.yaml still wins. Production uses PostgreSQL storage
(deploy/dagster.prod.yaml) and is not affected.
"""

from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager

import yaml
from dagster import DagsterInstance
from dagster._core.instance.ref import InstanceRef
from dagster._core.storage.event_log.sqlite.sqlite_event_log import (
    INDEX_SHARD_NAME,
    SqliteEventLogStorage,
)
from dagster._core.storage.sqlite import SQLITE_BUSY_TIMEOUT_SECONDS
from dagster._core.storage.sqlite_storage import DagsterSqliteStorage, _event_logs_directory
from dagster._serdes import ConfigurableClassData
from sqlalchemy import create_engine
from sqlalchemy.engine import Connection, Engine
from sqlalchemy.pool import QueuePool

# Run databases whose engines stay open besides the index (a run writes to its own and the index).
OPEN_RUN_ENGINES = 4


class LocalEventLogStorage(SqliteEventLogStorage):
    """Dagster's SQLite event log with one open engine per database file (see the module docstring)."""

    def __init__(self, base_dir: str, inst_data=None):
        self._engines: OrderedDict[str, Engine] = OrderedDict()
        self._schema_engine: Engine | None = None
        super().__init__(base_dir, inst_data=inst_data)

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls(inst_data=inst_data, **config_value)

    def _create_engine(self, shard: str) -> Engine:
        return create_engine(
            self.conn_string_for_shard(shard),
            poolclass=QueuePool,
            pool_size=1,
            max_overflow=4,  # Dagster opens a second connection while it creates a database
            # Connections are used by one thread at a time, not always the one that opened them.
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_SECONDS, "check_same_thread": False},
        )

    def _engine(self, shard: str) -> Engine:
        engine = self._engines.pop(shard, None) or self._create_engine(shard)
        self._engines[shard] = engine  # most recently used last
        runs = [s for s in self._engines if s != INDEX_SHARD_NAME]
        for old in runs[:-OPEN_RUN_ENGINES]:
            self._engines.pop(old).dispose()
        return engine

    @contextmanager
    def _connect(self, shard: str) -> Iterator[Connection]:
        with self._db_lock:
            engine = self._engine(shard)
            if shard not in self._initialized_dbs:
                self._initdb(engine)
                self._initialized_dbs.add(shard)
            with engine.connect() as conn, conn.begin():
                yield conn

    def has_table(self, table_name: str) -> bool:
        # Dagster asks this for every asset event, from inside the storage's lock; a separate
        # engine (thread-safe pool) answers without taking it.
        if self._schema_engine is None:
            self._schema_engine = self._create_engine(INDEX_SHARD_NAME)
        with self._schema_engine.connect() as conn:
            return bool(self._schema_engine.dialect.has_table(conn, table_name))

    def _dispose_engines(self, keep_index: bool) -> None:
        with self._db_lock:
            for shard in [s for s in self._engines if not (keep_index and s == INDEX_SHARD_NAME)]:
                self._engines.pop(shard).dispose()

    def wipe(self) -> None:
        self._dispose_engines(keep_index=True)  # before the run databases are deleted
        super().wipe()

    def dispose(self) -> None:
        super().dispose()
        self._dispose_engines(keep_index=False)
        if self._schema_engine is not None:
            self._schema_engine.dispose()
            self._schema_engine = None


class LocalSqliteStorage(DagsterSqliteStorage):
    """Dagster's default SQLite storage (runs, schedules, event log under one directory), with the
    event log above."""

    def __init__(self, base_dir: str, inst_data: ConfigurableClassData | None = None):
        super().__init__(base_dir, inst_data=inst_data)
        self._event_log_storage.dispose()
        self._event_log_storage = LocalEventLogStorage(_event_logs_directory(base_dir))

    @classmethod
    def from_config_value(cls, inst_data, config_value):
        return cls.from_local(inst_data=inst_data, **config_value)


class LocalInstance(DagsterInstance):
    """Dagster's instance with LocalSqliteStorage as its default storage (see the module docstring)."""

    @classmethod
    def config_schema(cls) -> dict:
        return {}

    @staticmethod
    def config_defaults(base_dir: str) -> dict:
        defaults = dict(InstanceRef.config_defaults(base_dir))
        defaults["storage"] = ConfigurableClassData(
            __name__, LocalSqliteStorage.__name__, yaml.dump({"base_dir": base_dir})
        )
        # Used when dagster.yaml configures the storages one by one (run_storage: ... only).
        defaults["event_log_storage"] = ConfigurableClassData(
            __name__, LocalEventLogStorage.__name__, yaml.dump({"base_dir": _event_logs_directory(base_dir)})
        )
        return defaults
