"""The DuckDB warehouse: dagster-duckdb-polars, fixed where it falls short for a daily cost table.

Five changes to the stock DuckDBPolarsIOManager, each covered by a test:
- an empty frame still creates the table (with the frame's schema), so an empty day is a valid
  partition and the next asset can read it;
- inputs are read through the relation API (`DuckDBPyConnection.arrow()` is gone in duckdb 2.x), and
  a range with no partitions returns an empty frame with the table's columns, not a frame without any;
  an input can ask for its rows summed by the warehouse (`defs/rollup.py`);
- the delete of the partition range and the insert of the new rows are one transaction, so a failed
  write leaves the previous partition intact; rows are inserted by column name;
- inputs are read under a smaller memory limit than writes (`read_memory_limit`): the rows read are
  in Python too, in the same process.
"""

import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager, suppress

import dagster as dg
import duckdb
import polars as pl
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_duckdb.io_manager import DuckDbClient, _get_cleanup_statement
from dagster_duckdb_polars import DuckDBPolarsIOManager, DuckDBPolarsTypeHandler

from unitcost_platform.defs.rollup import (
    ROWS_LOADED,
    follow_up_of,
    input_statement,
    keep_config,
    log_rows_loaded,
    query_of,
    rollup_of,
    run_config,
)
from unitcost_platform.selected import SelectedRows
from unitcost_platform.staging import StagedRows
from unitcost_platform.warehouse_sql import DUCKDB

# Runs are queued one at a time, so a lock held longer than this is another program's (a `duckdb`
# shell, a notebook, a second `dagster dev`), not a run about to finish: waiting longer only delays
# the failure.
LOCK_WAIT_SECONDS = 5.0
LOCK_POLL_SECONDS = 0.25
LOCK_CONFLICT = "Could not set lock on file"
READ_BATCH_ROWS = WRITE_BATCH_ROWS = 1_000_000
NOT_WRITABLE = ("Permission denied", "Operation not permitted", "Read-only file system")


def _quoted(table_slice: TableSlice) -> str:
    return f'"{table_slice.schema}"."{table_slice.table}"'


def _table_exists(connection: duckdb.DuckDBPyConnection, table_slice: TableSlice) -> bool:
    found = connection.execute(
        "select count(*) from information_schema.tables where table_schema = ? and table_name = ?",
        [table_slice.schema, table_slice.table],
    ).fetchall()
    return bool(found[0][0])


def _run(connection: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Execute and consume the result: duckdb 2.x refuses new work while a result is unfinished."""
    connection.execute(sql).fetchall()


def _add_new_columns(connection: duckdb.DuckDBPyConnection, table_slice: TableSlice) -> None:
    """A column the table does not have yet (a newer version of the asset) is added, nullable."""
    existing = {
        row[0]
        for row in connection.execute(
            "select column_name from information_schema.columns where table_schema = ? and table_name = ?",
            [table_slice.schema, table_slice.table],
        ).fetchall()
    }
    for name, duck_type, *_ in connection.execute("describe select * from __unitcost_frame").fetchall():
        if name not in existing:
            _run(connection, f'alter table {_quoted(table_slice)} add column "{name}" {duck_type}')


def _ensure_table(connection: duckdb.DuckDBPyConnection, table_slice: TableSlice, schema: pl.Schema | dict) -> None:
    """The table with (at least) the columns of `schema`, created from it if new."""
    connection.register("__unitcost_frame", pl.DataFrame(schema=schema).to_arrow(compat_level=pl.CompatLevel.newest()))
    try:
        _run(connection, f"create table if not exists {_quoted(table_slice)} as select * from __unitcost_frame limit 0")
        _add_new_columns(connection, table_slice)
    finally:
        connection.unregister("__unitcost_frame")


class PolarsDuckDBTypeHandler(DuckDBPolarsTypeHandler):
    """Writes every frame (empty ones too) and reads with the relation API."""

    def handle_output(
        self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection
    ):
        # In slices of WRITE_BATCH_ROWS: a frame's Arrow copy (strings are copied) is one slice's at a
        # time, not the whole table's next to it. Newest Arrow types: string views need no conversion.
        _ensure_table(connection, table_slice, obj.schema)
        for chunk in obj.iter_slices(WRITE_BATCH_ROWS):
            connection.register("__unitcost_frame", chunk.to_arrow(compat_level=pl.CompatLevel.newest()))
            try:
                _run(connection, f"insert into {_quoted(table_slice)} by name select * from __unitcost_frame")
            finally:
                connection.unregister("__unitcost_frame")
        context.add_output_metadata({"dataframe_columns": columns_metadata(obj.schema)})

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        _missing_table(connection, table_slice)
        query = input_statement(
            context, table_slice, _quoted(table_slice), DuckDbClient.get_select_statement, DUCKDB,
            run_config(self.config_path), lambda name: _quoted(table_slice._replace(table=name)),
        )  # fmt: skip
        # Streamed out in batches: the result is not held in DuckDB's memory as well as in Python's.
        with _memory_limit(connection, self.read_memory_limit, self.memory_limit):
            frame = pl.from_arrow(connection.sql(query).to_arrow_reader(READ_BATCH_ROWS).read_all())
        named = query_of(context) or follow_up_of(rollup_of(context))
        if named is not None:
            frame = frame.cast({c: t for c, t in named.schema.items() if c in frame.columns})
        log_rows_loaded(context, frame.height)
        return frame

    def __init__(self, config_path: str | None = None, read_memory_limit: str | None = None, memory_limit: str | None = None):
        self.config_path = config_path
        self.read_memory_limit, self.memory_limit = read_memory_limit, memory_limit


@contextmanager
def _memory_limit(connection: duckdb.DuckDBPyConnection, limit: str | None, own: str | None) -> Iterator[None]:
    """DuckDB's memory limit at `limit` for a read, then back at the connection's `own` (a setting of
    the database, not of the statement). A failed read leaves its error to tell: its aborted
    transaction refuses the reset, and the connection is rolled back and closed."""
    if limit is None:
        yield
        return
    _run(connection, f"set memory_limit = '{limit}'")
    try:
        yield
    finally:
        with suppress(duckdb.TransactionException):
            _run(connection, f"set memory_limit = '{own}'" if own else "reset memory_limit")


class StagedRowsDuckDBTypeHandler(DbTypeHandler[StagedRows]):
    """Rows staged in Parquet parts (raw_billing's day, never one frame) go in with one INSERT that
    DuckDB streams from the files; the parts are deleted afterwards, written or not."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: StagedRows, connection):
        try:
            _ensure_table(connection, table_slice, obj.schema)
            if obj.parts:
                context.log.info(f"inserting {obj.rows:,} rows of {table_slice.table} from {len(obj.parts)} staged part(s)")
                files = ", ".join("'" + str(p).replace("'", "''") + "'" for p in obj.parts)
                _run(connection, f"insert into {_quoted(table_slice)} by name select * from read_parquet([{files}])")
        finally:
            obj.remove()
        context.add_output_metadata({"staged_parts": len(obj.parts)})

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> StagedRows:
        raise dg.DagsterInvariantViolationError("staged rows are written, not read: read the table as a Polars frame")

    @property
    def supported_types(self):
        return [StagedRows]


class SelectedRowsTypeHandler(DbTypeHandler[SelectedRows]):
    """Rows computed by the warehouse from other tables (`SelectedRows`), written by the subclass for
    its warehouse; never read back as such (the table is read as a frame)."""

    @staticmethod
    def summarized(context: dg.OutputContext, table_slice: TableSlice, obj: SelectedRows, frame: pl.DataFrame) -> None:
        """The summary of what was written handed to the asset, and logged as what left the warehouse."""
        summary = obj.summarize(frame)
        context.log.info(f"{ROWS_LOADED}: {summary.height} rows of {table_slice.table} (summary of the rows the warehouse wrote)")

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> SelectedRows:
        raise dg.DagsterInvariantViolationError("selected rows are written, not read: read the table as a Polars frame")

    @property
    def supported_types(self):
        return [SelectedRows]


class SelectedRowsDuckDBTypeHandler(SelectedRowsTypeHandler):
    """One INSERT ... SELECT in the transaction that replaced the days, then the summary of what it wrote."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: SelectedRows, connection):
        for name in obj.reads:
            _missing_table(connection, table_slice._replace(table=name))
        _ensure_table(connection, table_slice, obj.schema)
        _run(connection, obj.insert(_quoted(table_slice), lambda name: _quoted(table_slice._replace(table=name)), DUCKDB))
        if obj.summary is not None:
            statement = obj.summary(DuckDbClient.get_select_statement(table_slice), DUCKDB)
            self.summarized(context, table_slice, obj, pl.from_arrow(connection.sql(statement).to_arrow_table()))
        context.add_output_metadata({"dataframe_columns": columns_metadata(obj.schema)})


def columns_metadata(schema: pl.Schema | dict) -> dg.MetadataValue:
    """The table's columns as Dagster shows them (`dataframe_columns`)."""
    return dg.MetadataValue.table_schema(
        dg.TableSchema(columns=[dg.TableColumn(name=n, type=str(t)) for n, t in schema.items()])
    )


def _missing_table(connection: duckdb.DuckDBPyConnection, table_slice: TableSlice) -> None:
    if not _table_exists(connection, table_slice):
        raise dg.Failure(
            description=(
                f"table {table_slice.schema}.{table_slice.table} does not exist in the warehouse: "
                f"materialize the asset {table_slice.table} for these days first (or select it "
                "together with its downstream assets)."
            )
        )


def _cannot_write(database: str, message: str) -> dg.Failure:
    """The failure of a warehouse file that cannot be opened for writing, with what to do."""
    if LOCK_CONFLICT in message:
        fix = (
            f"Another process still held it after {LOCK_WAIT_SECONDS:g}s, and DuckDB lets one process "
            "write a file at a time: stop that process (a `duckdb` shell, a notebook, a second "
            "`dg dev` or `dg launch` on this file), then re-execute the run"
        )
    elif any(cause in message for cause in NOT_WRITABLE):
        fix = (
            "The file or its directory is read-only for this process: make both writable by the user "
            "running Dagster, or point UNITCOST_DUCKDB_PATH at a writable file"
        )
    else:
        fix = "Check that it is a DuckDB database file of this DuckDB version, or move it aside"
    # Not retried: the same open would fail the same way a moment later.
    return dg.Failure(
        description=f"the warehouse {database} cannot be opened for writing: {message}. {fix}.",
        allow_retries=False,
    )


def open_for_writing(database: str, config: dict) -> duckdb.DuckDBPyConnection:
    """Opens the warehouse read-write, waiting up to LOCK_WAIT_SECONDS for another process's lock."""
    deadline = time.monotonic() + LOCK_WAIT_SECONDS
    while True:
        try:
            return duckdb.connect(database, read_only=False, config=config)
        except duckdb.IOException as exc:
            message = str(exc)
            if LOCK_CONFLICT not in message or time.monotonic() >= deadline:
                raise _cannot_write(database, message) from exc
        time.sleep(LOCK_POLL_SECONDS)


class TransactionalDuckDbClient(DuckDbClient):
    """Delete-then-insert in one transaction: a failed write rolls back and keeps the old partition."""

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        # Checked, not caught: a failed statement would abort the surrounding transaction.
        if _table_exists(connection, table_slice):
            _run(connection, _get_cleanup_statement(table_slice))

    @staticmethod
    def ensure_schema_exists(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        _run(connection, f'create schema if not exists "{table_slice.schema}"')

    @staticmethod
    @contextmanager
    def connect(context, table_slice) -> Iterator[duckdb.DuckDBPyConnection]:
        config = {"custom_user_agent": "dagster", **context.resource_config["connection_config"]}
        connection = open_for_writing(context.resource_config["database"], config)
        try:
            connection.begin()
            try:
                yield connection
            except BaseException:
                connection.rollback()
                raise
            connection.commit()
        finally:
            connection.close()


class UnitcostDuckDBIOManager(DuckDBPolarsIOManager):
    """DuckDB IO manager for the unit-cost tables (schema `unitcost`).

    `config_path`: the unitcost.yaml named warehouse queries are built from (defs/rollup.py)."""

    config_path: str | None = None
    read_memory_limit: str | None = None  # DuckDB's memory while reading inputs (Settings.duckdb_read_memory_limit)

    def type_handlers(self) -> Sequence[DbTypeHandler]:
        own = (self.connection_config or {}).get("memory_limit")
        return [
            PolarsDuckDBTypeHandler(self.config_path, self.read_memory_limit, own),
            StagedRowsDuckDBTypeHandler(),
            SelectedRowsDuckDBTypeHandler(),
        ]

    def create_io_manager(self, context) -> DbIOManager:
        return keep_config(DbIOManager(
            db_client=TransactionalDuckDbClient(),
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
            io_manager_name="UnitcostDuckDBIOManager",
        ), context)
