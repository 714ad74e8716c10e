"""Inputs read at a coarser grain: the warehouse sums them before they leave it.

An AssetIn declares `metadata={ROLLUP_KEY: {"by": [columns], "sum": [columns], "sum_where":
{alias: [column, key, "=" or "!=", value]}, "count": alias, "null": [columns], "not_null":
[columns]}}` (`sum`, `sum_where` or `count`, and the filters, optional); both IO managers (DuckDB,
Snowflake) then read `select by..., sum(x) as x, sum(case when key = value then column else 0 end)
as alias, count(*) as alias ... where ... group by by...` over the input's partitions instead of
every row (a null key matches neither `=` nor `!=`). Trailing windows use it: the 30-day run rate needs one row per
customer and day, not 30 days of tenant x service x pool rows (millions a day for a large SaaS).

An asset that needs a rollup for a few keys only (the customers it flagged) declares it with
`input_manager_key=BY_KEY` and gets a `RollupByKey`: it asks for those keys' rows when it knows
them, and the warehouse adds `where column in (...)` to the same query. The same reader sums
windows of days (`windows`: one row per window end and key rather than one per day and key), so a
daily run that needs two 30-day sums reads two rows per key, not 37.

`metadata={ROLLUP_KEY: {"query": name}}` names a `WarehouseQuery` of QUERIES instead: an aggregate
whose SQL depends on the run's config (the pools, the cost column, the team tag keys), so the IO
manager loads the config to build it. That is how tag coverage, team spend and product_billing
read raw_billing: the warehouse scans the line items, Python gets sums (`warehouse_sql.py`).
allocated_cost reads nothing: the warehouse computes and writes it (`selected.SelectedRows`).

An asset that compares each day with the same day some days earlier (7-day trends, 90-day growth)
declares its input with `input_manager_key=BY_DAY` and gets a `ByDay`: `days(days)` reads those
days of the input's window only (its columns or its rollup, as declared), each run of consecutive
days as one read, so a daily run reads two days of a window of eight (or ninety-one), not all of them.
The same reader runs a named query over the whole window, `query(name, **parameters)` (the query's
`parameters`, text or numbers, given when the asset knows them): the dashboard reads unit_cost's
90 days as a row per day that way, and alert_incidents every alert day reduced to the incidents
alive on the run's days. `rows(days, rollup, column, keys)` reads some keys' rows of those days, as
`RollupByKey.rows` does (cost_anomalies: the history of the customers beyond its thresholds).

A rollup's `then: {"query": name, ...}` names a `RollupQuery` of `follow_ups()`: a query over the
rollup's result that may join other tables of the warehouse (the rest of the spec are its
parameters). `service_unit_cost` reads allocated_cost's service x customer sums of a 30-day window
that way: the warehouse joins them to the day's customers and returns each service's figures,
percentiles and top customers, a few rows per service instead of one per service and customer.
"""

import datetime as dt
from collections.abc import Callable, Iterable, Mapping
from functools import cache
from pathlib import Path
from typing import Any

import dagster as dg
import polars as pl
from dagster._core.storage.db_io_manager import TableSlice

from unitcost_platform.config import UnitcostConfig, load_config
from unitcost_platform.defs.partitions import consecutive_runs
from unitcost_platform.warehouse_sql import Dialect, RollupQuery, WarehouseQuery

ROLLUP_KEY = "rollup"
ROWS_LOADED = "warehouse -> Python"  # logged for every input: how many rows left the warehouse


def log_rows_loaded(context: dg.InputContext, rows: int, how: str | None = None) -> None:
    """One log line per input loaded (the benchmark sums them): what left the warehouse, and why."""
    rollup = (context.definition_metadata or {}).get(ROLLUP_KEY)
    how = how or (f"query {rollup['query']}" if rollup and "query" in rollup else "rollup" if rollup else "rows")
    for column, values in ((rollup or {}).get("keys") or {}).items():
        how += f" of {len(values)} {column}"
    if (rollup or {}).get("windows"):
        how += f" summed over {len(rollup['windows']['days'])} window(s)"
    if (rollup or {}).get("then"):
        how += f" reduced by {rollup['then']['query']}"
    days = len(context.asset_partition_keys) if context.has_asset_partitions else 0
    context.log.info(f"{ROWS_LOADED}: {rows} rows of {context.asset_key.to_user_string()} ({how}, {days} day(s))")


@cache
def queries() -> dict[str, WarehouseQuery]:
    """The named warehouse aggregates (imported on first use: they live beside their Polars twins)."""
    from unitcost_platform.transforms.allocation import ALLOCATION_QUERY, POOL_USAGE_QUERY
    from unitcost_platform.transforms.anomalies import ANOMALY_SCORES_QUERY
    from unitcost_platform.transforms.coverage import COVERAGE_QUERY
    from unitcost_platform.transforms.daily_series import (
        ANOMALIES_FOUND_QUERY,
        COST_PER_UNIT_DAILY_QUERY,
        FORECAST_ALERTS_QUERY,
        FORECAST_CROSSINGS_QUERY,
        INCIDENTS_ON_SHOW_QUERY,
        UNIT_COST_DAILY_QUERY,
    )
    from unitcost_platform.transforms.forecast import FORECAST_WINDOWS_QUERY
    from unitcost_platform.transforms.growth import ACTIVE_CUSTOMERS_QUERY
    from unitcost_platform.transforms.incidents import INCIDENT_ALERTS_QUERY
    from unitcost_platform.transforms.products import PRODUCT_QUERY
    from unitcost_platform.transforms.segments import SEGMENT_GROUPS_QUERY
    from unitcost_platform.transforms.service_unit_cost import ACTIVE_IN_SCOPE_QUERY
    from unitcost_platform.transforms.team_spend import TEAM_QUERY
    from unitcost_platform.transforms.unit_cost import REQUESTS_USAGE_QUERY

    return {
        "allocation_items": ALLOCATION_QUERY,
        "coverage_items": COVERAGE_QUERY,
        "team_items": TEAM_QUERY,
        "product_items": PRODUCT_QUERY,
        "pool_usage": POOL_USAGE_QUERY,
        "requests_usage": REQUESTS_USAGE_QUERY,
        "unit_cost_daily": UNIT_COST_DAILY_QUERY,
        "cost_per_unit_daily": COST_PER_UNIT_DAILY_QUERY,
        "anomalies_found": ANOMALIES_FOUND_QUERY,
        "incidents_on_show": INCIDENTS_ON_SHOW_QUERY,
        "forecast_crossings": FORECAST_CROSSINGS_QUERY,
        "forecast_alerts": FORECAST_ALERTS_QUERY,
        "incident_alerts": INCIDENT_ALERTS_QUERY,
        "active_customers": ACTIVE_CUSTOMERS_QUERY,
        "segment_groups": SEGMENT_GROUPS_QUERY,
        "anomaly_scores": ANOMALY_SCORES_QUERY,
        "forecast_windows": FORECAST_WINDOWS_QUERY,
        "active_in_scope": ACTIVE_IN_SCOPE_QUERY,
    }


@cache
def follow_ups() -> dict[str, RollupQuery]:
    """The queries over a rollup's result (a rollup's `then`)."""
    from unitcost_platform.transforms.alerts import ALERT_DRIVERS_QUERY
    from unitcost_platform.transforms.anomalies import CUSTOMER_UNITS_QUERY
    from unitcost_platform.transforms.checks import ORPHANS_QUERY
    from unitcost_platform.transforms.segments import SEGMENT_USAGE_QUERY
    from unitcost_platform.transforms.service_unit_cost import SERVICE_MONTH_QUERY

    return {"service_month": SERVICE_MONTH_QUERY, "alert_drivers": ALERT_DRIVERS_QUERY,
            "customer_units": CUSTOMER_UNITS_QUERY, "segment_usage": SEGMENT_USAGE_QUERY,
            "orphans": ORPHANS_QUERY}  # fmt: skip


def follow_up_of(rollup: Mapping[str, Any] | None) -> RollupQuery | None:
    then = (rollup or {}).get("then")
    if then is None:
        return None
    if not isinstance(then, Mapping) or then.get("query") not in follow_ups():
        raise dg.DagsterInvariantViolationError(
            f"{ROLLUP_KEY} then: expected {{'query': one of {', '.join(follow_ups())}, ...}}, got {then}"
        )
    return follow_ups()[then["query"]]


def run_config(config_path: str | None) -> Callable[[], UnitcostConfig]:
    """How an IO manager gets the run's config for a named query: unitcost.yaml at `config_path`,
    loaded when a query needs it."""

    def load() -> UnitcostConfig:
        if config_path is None:
            raise dg.DagsterInvariantViolationError("a named warehouse query needs the IO manager's config_path")
        return load_config(Path(config_path))

    return load


def query_of(context: dg.InputContext) -> WarehouseQuery | None:
    name = ((context.definition_metadata or {}).get(ROLLUP_KEY) or {}).get("query")
    if name is None:
        return None
    if name not in queries():
        raise dg.DagsterInvariantViolationError(f"{ROLLUP_KEY} query {name!r} is not one of {', '.join(queries())}")
    query = queries()[name]
    spec = context.definition_metadata[ROLLUP_KEY]
    missing = [p for p in query.parameters if p not in spec]
    if missing:
        raise dg.DagsterInvariantViolationError(f"{ROLLUP_KEY} query {name!r} needs {', '.join(missing)}, got {dict(spec)}")
    return query


def rollup_of(context: dg.InputContext) -> Mapping[str, Any] | None:
    rollup = (context.definition_metadata or {}).get(ROLLUP_KEY)
    if rollup is None or "query" in rollup:
        return None
    if not rollup.get("by") or not (rollup.get("sum") or rollup.get("sum_where") or rollup.get("count")):
        raise dg.DagsterInvariantViolationError(
            f"{ROLLUP_KEY} metadata needs `by` columns and `sum`, `sum_where` or `count`, got {rollup}"
        )
    for alias, spec in rollup.get("sum_where", {}).items():
        if len(spec) != 4 or spec[2] not in ("=", "!=") or not isinstance(spec[3], str):
            raise dg.DagsterInvariantViolationError(
                f"{ROLLUP_KEY} sum_where {alias}: expected [column, key, '=' or '!=', text value], got {spec}"
            )
    for column, values in (rollup.get("keys") or {}).items():
        if column not in rollup["by"] or not all(isinstance(v, str) for v in values):
            raise dg.DagsterInvariantViolationError(
                f"{ROLLUP_KEY} keys {column}: expected one of the `by` columns and text values, got {rollup}"
            )
    windows = rollup.get("windows")
    if windows is not None and (
        windows.get("column") not in rollup["by"]
        or not all(isinstance(e, str) and all(isinstance(d, str) for d in ds) for e, ds in windows.get("days", {}).items())
        or any(c not in rollup.get("sum", []) for c in windows.get("on_end", {}).values())
    ):
        raise dg.DagsterInvariantViolationError(
            f"{ROLLUP_KEY} windows: expected a `by` column, days as {{end: [day, ...]}} in ISO text and on_end "
            f"sums of `sum` columns, got {windows}"
        )
    follow_up_of(rollup)
    return rollup


def _windows_source(rows: str, windows: Mapping[str, Any], dialect: Dialect) -> str:
    """The rows joined to (window end, day) pairs: a row counts once in each window holding its day."""
    pairs = " union all ".join(
        f"select {dialect.date(end)} as unitcost_end, {dialect.date(day)} as unitcost_day"
        for end, days in windows["days"].items() for day in days
    ) or "select cast(null as date) as unitcost_end, cast(null as date) as unitcost_day"  # no window: joins no row  # fmt: skip
    return f"({rows}) as unitcost_rows join ({pairs}) as unitcost_windows on unitcost_rows.{windows['column']} = unitcost_day"


def rollup_statement(
    table_slice: TableSlice, rollup: Mapping[str, Any], select: Callable[[TableSlice], str], dialect: Dialect
) -> str:
    """The grouped query over the slice's rows (only the columns it needs are read)."""
    by, sums = list(rollup["by"]), list(rollup.get("sum", []))
    where_sums = dict(rollup.get("sum_where", {}))
    nulls, present = list(rollup.get("null", [])), list(rollup.get("not_null", []))
    needed = by + sums + [c for spec in where_sums.values() for c in spec[:2]] + nulls + present
    rows = select(table_slice._replace(columns=list(dict.fromkeys(needed))))
    windows = rollup.get("windows")
    # Summed over windows, the window column holds each window's end (qualified: an output alias of
    # the same name must not be what the sums compare).
    key_of = {windows["column"]: "unitcost_end"} if windows else {}
    keys = ", ".join(key_of.get(c, c) for c in by)
    on_end = [
        f"sum(case when unitcost_rows.{windows['column']} = unitcost_end then {column} else 0 end) as {alias}"
        for alias, column in (windows or {}).get("on_end", {}).items()
    ]
    totals = ", ".join(
        [f"sum({c}) as {c}" for c in sums]
        + [f"sum(case when {key} {op} {dialect.text(value)} then {column} else 0 end) as {alias}"
           for alias, (column, key, op, value) in where_sums.items()]
        + ([f"count(*) as {rollup['count']}"] if rollup.get("count") else [])
        + on_end
    )  # fmt: skip
    conditions = [f"{c} is null" for c in nulls] + [f"{c} is not null" for c in present]
    conditions += [
        f"{column} in ({', '.join(dialect.text(v) for v in values)})" if values else "1 = 0"
        for column, values in (rollup.get("keys") or {}).items()
    ]
    where = f" where {' and '.join(conditions)}" if conditions else ""
    source = _windows_source(rows, windows, dialect) if windows else f"({rows}) as unitcost_rows"
    selected = ", ".join(f"{key_of[c]} as {c}" if c in key_of else c for c in by)
    return f"select {selected}, {totals} from {source}{where} group by {keys}"


def rollup_columns(rollup: Mapping[str, Any]) -> dict[str, pl.DataType]:
    """The columns a rollup adds to the table's, named as it names them: conditional sums and sums on a
    window's end (money), a row count."""
    columns: dict[str, pl.DataType] = {alias: pl.Float64() for alias in rollup.get("sum_where", {})}
    columns |= {alias: pl.Float64() for alias in (rollup.get("windows") or {}).get("on_end", {})}
    if rollup.get("count"):
        columns[rollup["count"]] = pl.Int64()
    return columns


def empty_rollup_statement(table: str, rollup: Mapping[str, Any]) -> str:
    columns = [*rollup["by"], *rollup.get("sum", [])]
    columns += [f"cast(0 as double) as {alias}" for alias in rollup.get("sum_where", {})]
    if rollup.get("count"):
        columns.append(f"cast(0 as bigint) as {rollup['count']}")
    columns += [f"cast(0 as double) as {alias}" for alias in (rollup.get("windows") or {}).get("on_end", {})]
    return f"select {', '.join(columns)} from {table} limit 0"


def input_statement(
    context: dg.InputContext,
    table_slice: TableSlice,
    table: str,
    select: Callable[[TableSlice], str],
    dialect: Dialect,
    config: Callable[[], UnitcostConfig] | None = None,
    table_named: Callable[[str], str] | None = None,
) -> str:
    """The query an IO manager runs for an input: no partitions (an empty window) reads no rows,
    a rollup reads sums (reduced further by its `then`), a named query its aggregate, anything else
    the slice's rows. `table` is the quoted table name; `config` (the run's config) is what a named
    query or a `then` needs, `table_named(name)` the quoted name of another table of the same schema."""
    query = query_of(context)
    empty = bool(table_slice.partition_dimensions) and len(context.asset_partition_keys) == 0
    if query is not None:
        if config is None:
            raise dg.DagsterInvariantViolationError("this IO manager cannot run named warehouse queries")
        columns = ", ".join(query.columns)
        rows = f"select {columns} from {table} where 1 = 0" if empty else select(table_slice._replace(columns=list(query.columns)))
        spec = context.definition_metadata[ROLLUP_KEY]
        return query.statement(rows, config(), dialect, **{p: spec[p] for p in query.parameters})
    rollup = rollup_of(context)
    if not rollup:
        return f"select * from {table} limit 0" if empty else select(table_slice)
    statement = empty_rollup_statement(table, rollup) if empty else rollup_statement(table_slice, rollup, select, dialect)
    then = follow_up_of(rollup)
    if then is None:
        return statement
    if config is None or table_named is None:
        raise dg.DagsterInvariantViolationError("this IO manager cannot run a rollup's `then` query")
    return then.statement(statement, dict(rollup["then"]), config(), table_named, dialect)


CONFIG_ATTRIBUTE = "unitcost_resource_config"


def keep_config(manager: dg.IOManager, context: dg.InitResourceContext) -> dg.IOManager:
    """The warehouse IO manager with its own resource config, for inputs read through input managers."""
    setattr(manager, CONFIG_ATTRIBUTE, dict(context.resource_config or {}))
    return manager


class ThroughWarehouse:
    """An input manager's context, loaded through the warehouse IO manager that wrote the table
    (`load`); subclasses change what is read, everything else is the context's."""

    def __init__(self, context: dg.InputContext):
        self._context, self._io_manager = context, context.resources.io_manager

    def __getattr__(self, name: str):
        return getattr(self._context, name)

    @property
    def resource_config(self):
        # Dagster passes the IO manager's config as the upstream output's, but leaves that empty when
        # the upstream asset is not part of the run (one asset materialized alone).
        return self._context.upstream_output.resource_config or getattr(self._io_manager, CONFIG_ATTRIBUTE, {})

    def load(self) -> pl.DataFrame:
        return self._io_manager.load_input(self)


class WithRollup(ThroughWarehouse):
    """The input read at `rollup` (an input manager cannot set its input's metadata)."""

    def __init__(self, context: dg.InputContext, rollup: Mapping[str, Any]):
        super().__init__(context)
        self._rollup = rollup

    @property
    def definition_metadata(self):
        return {**(self._context.definition_metadata or {}), ROLLUP_KEY: self._rollup}

    @property
    def dagster_type(self) -> dg.DagsterType:  # the IO manager reads a rollup as a frame, whatever the input is
        return _FRAME


_FRAME = dg.PythonObjectDagsterType(pl.DataFrame)


BY_KEY = "rollup_by_key"  # the input manager of inputs read for some keys only
# Up to this many keys go into the query (`in (...)`, well under Snowflake's 1 MB statement text);
# more read the whole rollup, as a plain rollup input does, and keep their rows in Python.
MAX_KEYS = 10_000


def read_keys(
    load: Callable[[Mapping[str, Any]], pl.DataFrame], rollup: Mapping[str, Any], column: str, values: Iterable[str | None]
) -> pl.DataFrame:
    """`load(rollup)` for the keys `values` of `column` only: the warehouse adds `column in (...)`, or,
    beyond MAX_KEYS keys, the whole rollup is read and filtered here. No key reads no row."""
    wanted = sorted({v for v in values if v is not None})
    if len(wanted) > MAX_KEYS:
        return load(rollup).filter(pl.col(column).is_in(wanted))
    return load({**rollup, "keys": {column: wanted}})


class RollupByKey:
    """A rollup input read when the asset knows what it needs, and nothing else leaves the warehouse:
    `rows(column, values)` the rows of those keys only (every partition of the input's window); an
    asset explaining a few flagged customers reads their rows, not every customer's. `windows` the
    rollup summed over windows of days, `all` the whole rollup."""

    def __init__(self, context: dg.InputContext, rollup: Mapping[str, Any]):
        self._context, self._rollup = context, rollup

    def rows(self, column: str, values: Iterable[str | None], windows: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """The rows of those keys; summed over `windows` (a `window_spec`) when given."""
        rollup = {**self._rollup, "windows": windows} if windows else self._rollup
        return read_keys(lambda r: WithRollup(self._context, r).load(), rollup, column, values)

    def windows(self, windows: Mapping[str, Any]) -> pl.DataFrame:
        """The rollup summed over `windows` (a `window_spec`): one row per window end and key, the end
        in the window column; a row counts in every window holding its day."""
        return WithRollup(self._context, {**self._rollup, "windows": windows}).load()

    def all(self) -> pl.DataFrame:
        return WithRollup(self._context, self._rollup).load()

    def reduced(self, windows: Mapping[str, Any], then: Mapping[str, Any]) -> pl.DataFrame:
        """The rollup summed over `windows`, then reduced by the warehouse with the follow-up query
        `then` names (`follow_ups()`): what that query returns, not the rollup's rows."""
        return WithRollup(self._context, {**self._rollup, "windows": windows, "then": dict(then)}).load()


@dg.input_manager(required_resource_keys={"io_manager"})
def rollup_by_key(context: dg.InputContext) -> RollupByKey:
    """The input's rollup (its ROLLUP_KEY metadata), read through the warehouse IO manager for the
    keys the asset asks for."""
    rollup = rollup_of(context)
    if rollup is None:
        raise dg.DagsterInvariantViolationError(f"an input read with {BY_KEY} needs {ROLLUP_KEY} metadata with `by` and `sum`")
    # Every input says what it moved when it is loaded: nothing yet; each read by key says its own.
    log_rows_loaded(context, 0, "rollup read by key when the asset asks")
    return RollupByKey(context, rollup)


BY_DAY = "read_by_day"  # the input manager of inputs read for some days of their window only


class OnDays(ThroughWarehouse):
    """The input read as declared (or at `rollup`), over `keys` (consecutive partitions) only."""

    def __init__(self, context: dg.InputContext, keys: list[str], rollup: Mapping[str, Any] | None = None):
        super().__init__(context)
        self._keys, self._rollup = keys, rollup

    @property
    def definition_metadata(self):
        declared = self._context.definition_metadata or {}
        return declared if self._rollup is None else {**declared, ROLLUP_KEY: self._rollup}

    @property
    def asset_partition_keys(self) -> list[str]:
        return self._keys

    @property
    def asset_partition_key_range(self) -> dg.PartitionKeyRange:
        return dg.PartitionKeyRange(self._keys[0], self._keys[-1])

    @property
    def asset_partitions_time_window(self) -> dg.TimeWindow:
        window = self._context.asset_partitions_def.time_window_for_partition_key
        return dg.TimeWindow(window(self._keys[0]).start, window(self._keys[-1]).end)

    @property
    def dagster_type(self) -> dg.DagsterType:  # read as a frame, whatever the input is
        return _FRAME


class ByDay:
    """An input of a trailing window read for the days the asset asks for: the window's other days
    never leave the warehouse (a daily run comparing D with D-7 reads two days, not eight)."""

    def __init__(self, context: dg.InputContext):
        self._context = context

    def days(self, days: Iterable[dt.date], rollup: Mapping[str, Any] | None = None) -> pl.DataFrame:
        """The input's rows (or rollup) of those of `days` that are in its window; none of them reads
        the input's empty frame. `rollup`: read at that rollup instead of as declared (the declared
        one with `keys`, say, once the asset knows which it needs)."""
        keys = {dt.date.fromisoformat(key): key for key in self._context.asset_partition_keys}
        runs = consecutive_runs(d for d in days if d in keys)
        frames = [OnDays(self._context, [keys[d] for d in run], rollup).load() for run in runs]
        return pl.concat(frames, how="vertical") if frames else OnDays(self._context, [], rollup).load()

    @property
    def window(self) -> list[dt.date]:
        """Every day of the input's window (its partitions), in order."""
        return sorted(dt.date.fromisoformat(key) for key in self._context.asset_partition_keys)

    def rows(self, days: Iterable[dt.date], rollup: Mapping[str, Any], column: str, values: Iterable[str | None]) -> pl.DataFrame:
        """`days(days, rollup)` for the keys `values` of `column` only (`read_keys`)."""
        days = list(days)
        return read_keys(lambda r: self.days(days, r), rollup, column, values)

    def query(self, name: str, **parameters: str | int | float) -> pl.DataFrame:
        """The whole window through the named warehouse query `name` (one of `queries()`), given its
        `parameters`: what the query returns, a row per day say, not the window's rows (an unknown
        name or a missing parameter is an error, `query_of`)."""
        return WithRollup(self._context, {"query": name, **parameters}).load()


@dg.input_manager(required_resource_keys={"io_manager"})
def read_by_day(context: dg.InputContext) -> ByDay:
    """The input (its columns or its rollup), read through the warehouse IO manager for the days the
    asset asks for."""
    rollup_of(context)  # a rollup is checked when the run starts, not at the first read
    log_rows_loaded(context, 0, "read by day when the asset asks")
    return ByDay(context)
