"""The Snowflake warehouse: dagster-snowflake's IO manager with a Polars type handler that writes
through the Snowflake connector.

Why not dagster-snowflake-polars: its ADBC driver writes over its own protocol, which cannot be
verified here (fakesnow cannot intercept it); `write_pandas` (Parquet, PUT, COPY INTO) is the
connector's documented bulk path against real Snowflake and fakesnow intercepts it, so the code
the tests run is the code production runs.

- Identifiers are written unquoted, so tables read naturally in Snowflake (`select customer_id
  from unitcost.unit_cost`); reading back restores each column's name and type from the table
  registry, so the frame equals the one the asset wrote.
- A day is replaced atomically: the new rows go to a staging table first (bulk loading runs DDL,
  which would commit an open transaction), then `BEGIN; DELETE the days; INSERT from staging;
  COMMIT`. A failure rolls back and leaves the previous partition.
"""

import uuid
from collections.abc import Iterable, Sequence

import dagster as dg
import polars as pl
import snowflake.connector.pandas_tools
from dagster._core.storage.db_io_manager import DbIOManager, DbTypeHandler, TableSlice
from dagster_snowflake import SnowflakeIOManager
from dagster_snowflake.snowflake_io_manager import SnowflakeDbClient, _get_cleanup_statement

from unitcost_platform.defs.io_managers import SelectedRowsTypeHandler, columns_metadata
from unitcost_platform.defs.rollup import (
    follow_up_of,
    input_statement,
    keep_config,
    log_rows_loaded,
    query_of,
    rollup_columns,
    rollup_of,
    run_config,
)
from unitcost_platform.selected import SelectedRows
from unitcost_platform.staging import StagedRows
from unitcost_platform.tables import TABLE_SCHEMAS
from unitcost_platform.warehouse_sql import SNOWFLAKE

SNOWFLAKE_TYPES: dict[type[pl.DataType], str] = {
    pl.String: "VARCHAR",
    pl.Float64: "FLOAT",
    pl.Int64: "NUMBER(38,0)",
    pl.Int32: "NUMBER(38,0)",
    pl.Boolean: "BOOLEAN",
    pl.Date: "DATE",
    pl.Datetime: "TIMESTAMP_NTZ",
}


def snowflake_type(dtype: pl.DataType) -> str:
    for polars_type, name in SNOWFLAKE_TYPES.items():
        if isinstance(dtype, polars_type) or dtype == polars_type:
            return name
    raise TypeError(f"no Snowflake column type for {dtype}")


def _name(table_slice: TableSlice, table: str | None = None) -> str:
    return f"{table_slice.database}.{table_slice.schema}.{table or table_slice.table}"


def _columns(cursor, table_slice: TableSlice) -> list[str]:
    cursor.execute(
        f"select column_name from {table_slice.database}.information_schema.columns "
        "where table_schema = %s and table_name = %s order by ordinal_position",
        (table_slice.schema.upper(), table_slice.table.upper()),
    )
    return [row[0] for row in cursor.fetchall()]


def restore(frame: pl.DataFrame, table: str, extra: dict[str, pl.DataType] | None = None) -> pl.DataFrame:
    """Names and types as the asset wrote them (Snowflake returns upper-case names, its own types)."""
    schema = TABLE_SCHEMAS.get(table)
    if schema is None:
        return frame
    schema = {**schema, **(extra or {})}
    by_upper = {name.upper(): name for name in schema}
    frame = frame.rename({c: by_upper.get(c.upper(), c) for c in frame.columns})
    casts = [pl.col(c).cast(schema[c]) for c in frame.columns if c in schema]
    return frame.with_columns(casts) if casts else frame


def _missing_table(cursor, table_slice: TableSlice) -> None:
    """A table read that was never written fails the run with what to materialize."""
    if not _columns(cursor, table_slice):
        raise dg.Failure(
            description=(
                f"table {table_slice.schema}.{table_slice.table} does not exist in Snowflake: materialize the "
                f"asset {table_slice.table} for these days first (or select it with its downstream assets)."
            )
        )


def _ensure_table(cursor, table_slice: TableSlice, schema: dict[str, pl.DataType]) -> str:
    """The table with (at least) the columns of `schema`, created from it if new; its column definitions."""
    definition = ", ".join(f"{c} {snowflake_type(t)}" for c, t in schema.items())
    cursor.execute(f"create table if not exists {_name(table_slice)} ({definition})")
    existing = set(_columns(cursor, table_slice))
    for column, dtype in schema.items():
        if column.upper() not in existing:
            cursor.execute(f"alter table {_name(table_slice)} add column {column} {snowflake_type(dtype)}")
    return definition


def _swap_in(cursor, table_slice: TableSlice, insert: str | None) -> None:
    """The days deleted and the new rows inserted (`insert`, none for an empty day) in one transaction."""
    try:
        cursor.execute("begin")
        cursor.execute(_get_cleanup_statement(table_slice))
        if insert is not None:
            cursor.execute(insert)
        cursor.execute("commit")
    except BaseException:
        cursor.execute("rollback")
        raise


def _replace_days(
    context: dg.OutputContext,
    table_slice: TableSlice,
    schema: dict[str, pl.DataType],
    frames: Iterable[pl.DataFrame],
    connection,
) -> None:
    """The frames (one, or a staged day's parts one at a time) into a staging table, then the days
    swapped in one transaction."""
    target = _name(table_slice)
    with connection.cursor() as cursor:
        definition = _ensure_table(cursor, table_slice, schema)
        stage = f"{table_slice.table}__load_{uuid.uuid4().hex[:12]}"
        staged = False
        try:
            for obj in frames:
                if not obj.height:
                    continue
                if not staged:
                    cursor.execute(f"create table {_name(table_slice, stage)} ({definition})")
                    staged = True
                frame = obj.to_pandas()
                frame.columns = [c.upper() for c in frame.columns]
                snowflake.connector.pandas_tools.write_pandas(
                    connection, frame, stage.upper(), database=table_slice.database,
                    schema=table_slice.schema, quote_identifiers=False, use_logical_type=True,
                )  # fmt: skip
            columns = ", ".join(schema)
            _swap_in(
                cursor, table_slice,
                f"insert into {target} ({columns}) select {columns} from {_name(table_slice, stage)}" if staged else None,
            )  # fmt: skip
        finally:
            if staged:
                cursor.execute(f"drop table if exists {_name(table_slice, stage)}")
    context.add_output_metadata({"dataframe_columns": columns_metadata(schema)})


class StagedRowsSnowflakeTypeHandler(DbTypeHandler[StagedRows]):
    """A staged day (raw_billing) loaded part by part into the staging table, swapped in at once."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: StagedRows, connection):
        try:
            _replace_days(context, table_slice, obj.schema, obj.frames(), connection)
        finally:
            obj.remove()

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> StagedRows:
        raise dg.DagsterInvariantViolationError("staged rows are written, not read: read the table as a Polars frame")

    @property
    def supported_types(self):
        return [StagedRows]


class SelectedRowsSnowflakeTypeHandler(SelectedRowsTypeHandler):
    """The days deleted and the INSERT ... SELECT in one transaction, then the summary of what it wrote."""

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: SelectedRows, connection):
        with connection.cursor() as cursor:
            for name in obj.reads:
                _missing_table(cursor, table_slice._replace(table=name))
            _ensure_table(cursor, table_slice, obj.schema)
            _swap_in(cursor, table_slice, obj.insert(_name(table_slice), lambda name: _name(table_slice, name), SNOWFLAKE))
            if obj.summary is not None:
                cursor.execute(obj.summary(SnowflakeDbClient.get_select_statement(table_slice), SNOWFLAKE))
                found = cursor.fetch_pandas_all()
                frame = pl.DataFrame(schema=obj.summary_schema) if found.empty else pl.from_pandas(found)
                self.summarized(context, table_slice, obj, frame)
        context.add_output_metadata({"dataframe_columns": columns_metadata(obj.schema)})


class PolarsSnowflakeTypeHandler(DbTypeHandler[pl.DataFrame]):
    """Writes Polars frames through `write_pandas` into a staging table, then swaps the days in."""

    def __init__(self, config_path: str | None = None):
        self.config_path = config_path

    def handle_output(self, context: dg.OutputContext, table_slice: TableSlice, obj: pl.DataFrame, connection):
        _replace_days(context, table_slice, dict(obj.schema), [obj], connection)

    def load_input(self, context: dg.InputContext, table_slice: TableSlice, connection) -> pl.DataFrame:
        with connection.cursor() as cursor:
            _missing_table(cursor, table_slice)
            rollup = rollup_of(context)
            named = query_of(context) or follow_up_of(rollup)
            statement = input_statement(
                context, table_slice, _name(table_slice), SnowflakeDbClient.get_select_statement, SNOWFLAKE,
                run_config(self.config_path), lambda name: _name(table_slice, name),
            )  # fmt: skip
            cursor.execute(statement)
            frame = cursor.fetch_pandas_all()
        extra = rollup_columns(rollup or {})
        if named is not None:
            extra = dict(named.schema)
        if frame.empty:
            columns = [c.upper() for c in frame.columns]
            schema = {**TABLE_SCHEMAS.get(table_slice.table, {}), **extra}
            by_upper = {n.upper(): n for n in schema}
            result = pl.DataFrame(schema={by_upper.get(c, c): schema.get(by_upper.get(c, c), pl.String) for c in columns})
        else:
            result = restore(pl.from_pandas(frame), table_slice.table, extra)
        if named is not None:
            result = result.select(list(named.schema))
        log_rows_loaded(context, result.height)
        return result

    @property
    def supported_types(self):
        return [pl.DataFrame]


class DeferredDeleteSnowflakeDbClient(SnowflakeDbClient):
    """The type handler deletes the days inside its own transaction; the client's delete is skipped."""

    @staticmethod
    def delete_table_slice(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        return None

    @staticmethod
    def ensure_schema_exists(context: dg.OutputContext, table_slice: TableSlice, connection) -> None:
        with connection.cursor() as cursor:
            cursor.execute(f"create schema if not exists {table_slice.database}.{table_slice.schema}")


class UnitcostSnowflakeIOManager(SnowflakeIOManager):
    """Snowflake IO manager for the unit-cost tables (schema `unitcost`).

    `config_path`: the unitcost.yaml named warehouse queries are built from (defs/rollup.py)."""

    config_path: str | None = None

    def type_handlers(self) -> Sequence[DbTypeHandler]:
        return [PolarsSnowflakeTypeHandler(self.config_path), StagedRowsSnowflakeTypeHandler(), SelectedRowsSnowflakeTypeHandler()]

    @staticmethod
    def default_load_type() -> type | None:
        return pl.DataFrame

    def create_io_manager(self, context) -> DbIOManager:
        return keep_config(DbIOManager(
            db_client=DeferredDeleteSnowflakeDbClient(),
            io_manager_name="UnitcostSnowflakeIOManager",
            database=self.database,
            schema=self.schema_,
            type_handlers=self.type_handlers(),
            default_load_type=self.default_load_type(),
        ), context)
