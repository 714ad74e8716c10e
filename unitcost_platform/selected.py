"""A table's new rows as a query the warehouse runs: how an asset computes where the data lives.

An asset whose output is computed from other tables of the warehouse (allocated_cost from the day's
line items, usage and customers) returns `SelectedRows` instead of a frame: the select that
computes its rows. The IO manager (DuckDB or Snowflake) runs it as `insert into the table select
...` inside the transaction that replaces the days, so the rows never leave the warehouse; a failed
statement rolls back and leaves the previous days. A small summary of what was written (a few rows
per day, `summary`) comes back for the asset's metadata.
"""

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import polars as pl

from unitcost_platform.warehouse_sql import Dialect


@dataclass(frozen=True)
class SelectedRows:
    """`statement(table, dialect)`: the select of the new rows, its columns `schema`'s (`table(name)`
    is the quoted name of a table of the same schema); `reads`: the tables it reads (a missing one
    fails the run with what to materialize); `summary(rows, dialect)`: a select over `rows` (the
    written days' rows) whose result, with `summary_schema`, is handed to `summarized`."""

    schema: dict[str, pl.DataType]
    statement: Callable[[Callable[[str], str], Dialect], str]
    reads: Sequence[str] = ()
    summary: Callable[[str, Dialect], str] | None = None
    summary_schema: dict[str, pl.DataType] | None = None
    summarized: Callable[[pl.DataFrame], None] | None = None

    def insert(self, target: str, table: Callable[[str], str], dialect: Dialect) -> str:
        """The statement that adds the rows to `target`, by column name."""
        columns = ", ".join(self.schema)
        return f"insert into {target} ({columns}) select {columns} from ({self.statement(table, dialect)}) as unitcost_selected"

    def summarize(self, frame: pl.DataFrame) -> pl.DataFrame:
        """The summary's result with the summary schema's names (Snowflake returns upper case) and types."""
        schema = self.summary_schema or {}
        by_lower = {name.lower(): name for name in schema}
        frame = frame.rename({c: by_lower.get(c.lower(), c) for c in frame.columns})
        frame = frame.cast({c: t for c, t in schema.items() if c in frame.columns})
        if self.summarized is not None:
            self.summarized(frame)
        return frame
