"""Inputs read at a coarser grain: the warehouse sums them before they leave it.

An AssetIn declares `metadata={ROLLUP_KEY: {"by": [columns], "sum": [columns], "null": [columns],
"not_null": [columns]}}` (the last two optional filters); both IO managers (DuckDB, Snowflake) then
read `select by..., sum(x) as x ... where ... group by by...` over the input's partitions instead
of every row. Trailing windows use it: the 30-day run rate needs one row per
customer and day, not 30 days of tenant x service x pool rows (millions a day for a large SaaS).
"""

from collections.abc import Callable, Mapping
from typing import Any

import dagster as dg
from dagster._core.storage.db_io_manager import TableSlice

ROLLUP_KEY = "rollup"


def rollup_of(context: dg.InputContext) -> Mapping[str, Any] | None:
    rollup = (context.definition_metadata or {}).get(ROLLUP_KEY)
    if rollup is None:
        return None
    if not rollup.get("by") or not rollup.get("sum"):
        raise dg.DagsterInvariantViolationError(f"{ROLLUP_KEY} metadata needs `by` and `sum` columns, got {rollup}")
    return rollup


def rollup_statement(table_slice: TableSlice, rollup: Mapping[str, Any], select: Callable[[TableSlice], str]) -> str:
    """The grouped query over the slice's rows (only the columns it needs are read)."""
    by, sums = list(rollup["by"]), list(rollup["sum"])
    nulls, present = list(rollup.get("null", [])), list(rollup.get("not_null", []))
    rows = select(table_slice._replace(columns=list(dict.fromkeys(by + sums + nulls + present))))
    keys = ", ".join(by)
    totals = ", ".join(f"sum({c}) as {c}" for c in sums)
    conditions = [f"{c} is null" for c in nulls] + [f"{c} is not null" for c in present]
    where = f" where {' and '.join(conditions)}" if conditions else ""
    return f"select {keys}, {totals} from ({rows}) as unitcost_rows{where} group by {keys}"


def empty_rollup_statement(table: str, rollup: Mapping[str, Any]) -> str:
    return f"select {', '.join([*rollup['by'], *rollup['sum']])} from {table} limit 0"
