"""The SQL the warehouse runs for us, written once for DuckDB and Snowflake.

The heavy reads of `raw_billing` (tag coverage, allocation's grouping of line items, team spend,
product cost) are aggregated where the line items live: each is a `WarehouseQuery` (the raw columns
it reads, the frame it returns, and its statement built from the run's config), named by an
input's rollup metadata (`defs/rollup.py`, `{"query": name}`) and run by both IO managers. Its Polars
twin (the same function over a frame of line items, used by the benchmark and the tests) must give
the same table; `unitcost_platform_tests/defs/test_warehouse_queries.py` checks both, and that
Snowflake (fakesnow) returns what DuckDB returns. The allocation goes further: its whole table is
computed and written by the warehouse (`transforms/allocation.allocation_sql`, `selected.py`), with
the line items summed by the same statement as the `allocation_items` query.

The two engines differ in a few functions only, so the statements are plain SQL with these few
spelled per dialect (`Dialect`): a string literal, a regular-expression search, a JSON object's
text value, a character-set trim, a linear quantile. Everything else (CASE, window functions, `is not distinct from`) is common SQL.
"""

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import polars as pl

from unitcost_platform.contracts.focus import UNICODE_WHITESPACE
from unitcost_platform.contracts.usage import USAGE_SCHEMA

if TYPE_CHECKING:
    from unitcost_platform.config import ScopeConfig, UnitcostConfig
    from unitcost_platform.config_pools import PoolConfig, PoolMatch


@dataclass(frozen=True)
class Dialect:
    name: str

    def regex_search(self, column: str, pattern: str) -> str:
        """True where `pattern` occurs anywhere in the value (Polars' `str.contains`)."""
        if self.name == "snowflake":
            # REGEXP_LIKE matches the whole value; REGEXP_INSTR finds it anywhere.
            return f"(regexp_instr({column}, {self.text(pattern)}) > 0)"
        return f"regexp_matches({column}, {self.text(pattern)})"

    def json_text(self, column: str, key: str) -> str:
        """The value of a top-level key of a JSON object held as text, as text (null if absent)."""
        if self.name == "snowflake":
            return f"json_extract_path_text({column}, {self.text(json.dumps(key))})"
        return f"json_extract_string({column}, {self.text('$.' + json.dumps(key))})"

    def quantile(self, column: str, q: float) -> str:
        """The `q` quantile of a group's values, interpolated linearly (numpy's default method)."""
        if self.name == "snowflake":
            return f"percentile_cont({q}) within group (order by {column})"
        return f"quantile_cont({column}, {q})"

    def days_between(self, start: str, end: str) -> str:
        """The whole days from the date `start` to the date `end`."""
        return f"datediff('day', {start}, {end})" if self.name == "duckdb" else f"datediff(day, {start}, {end})"

    def date(self, value: str) -> str:
        """A date literal from ISO text."""
        return f"cast({self.text(value)} as date)"

    def text(self, value: str) -> str:
        """A string literal of any value: Snowflake also reads a backslash in one as an escape."""
        if self.name == "snowflake":
            value = value.replace("\\", "\\\\")
        return "'" + value.replace("'", "''") + "'"

    def trim_blank(self, expr: str) -> str:
        """`expr` without leading and trailing Unicode whitespace, null when nothing is left."""
        return f"nullif(trim({expr}, {self.text(UNICODE_WHITESPACE)}), '')"


DUCKDB = Dialect("duckdb")
SNOWFLAKE = Dialect("snowflake")


def in_list(column: str, values: Sequence[str], dialect: Dialect) -> str:
    return f"{column} in ({', '.join(dialect.text(v) for v in values)})"


def scope_sql(scope: "ScopeConfig | None", dialect: Dialect) -> str:
    """The SQL twin of `ScopeConfig.expr`: true for a customer_dimension row in scope."""
    if scope is None:
        return "true"
    conditions = []
    if scope.tiers:
        conditions.append(in_list("lower(tier)", [t.lower() for t in scope.tiers], dialect))
    if scope.segments:
        conditions.append(in_list("lower(segment)", [s.lower() for s in scope.segments], dialect))
    if scope.onboarded_since:
        conditions.append(f"customer_since >= {dialect.date(scope.onboarded_since.isoformat())}")
    return f"coalesce(({' and '.join(conditions)}), false)"


def active_customers_sql(rows: str, scope: "ScopeConfig | None", dialect: Dialect, day: str) -> str:
    """The distinct active customers of each day of customer_dimension's `rows` (in `scope`, when
    given), as (`day`, active_customers): a row per day, not one per tenant."""
    return (
        f"select snapshot_date as {day}, count(distinct customer_id) as active_customers from ({rows}) as unitcost_rows "
        f"where status = 'active' and {scope_sql(scope, dialect)} group by snapshot_date"
    )


def match_sql(match: "PoolMatch", dialect: Dialect) -> str:
    """The SQL twin of `transforms.pools.match_expr`: true for the line items the rule matches."""
    conditions: list[str] = []
    if match.all:
        conditions.append("true")
    if match.service_category:
        conditions.append(in_list("ServiceCategory", match.service_category, dialect))
    if match.service_name:
        conditions.append(in_list("ServiceName", match.service_name, dialect))
    if match.provider:
        conditions.append(in_list("ProviderName", match.provider, dialect))
    if match.resource_id_pattern:
        conditions.append(dialect.regex_search("ResourceId", match.resource_id_pattern))
    for key, value in (match.tags or {}).items():
        conditions.append(f"{dialect.json_text('Tags', key)} = {dialect.text(value)}")
    return f"coalesce(({' and '.join(conditions)}), false)"


def pool_sql(pools: "list[PoolConfig]", dialect: Dialect) -> str:
    """The SQL twin of `transforms.pools.pool_expr`: direct, the first matching pool, or null."""
    from unitcost_platform.config_pools import DIRECT_POOL

    whens = "".join(f" when {match_sql(p.match, dialect)} then {dialect.text(p.name)}" for p in pools)
    return f"case when x_TenantId is not null then {dialect.text(DIRECT_POOL)}{whens} else null end"


def round_half_even_sql(expr: str, decimals: int) -> str:
    """`expr` (a double) rounded to `decimals` as Polars' `round` does it: the value times 10^decimals,
    rounded half to even, divided back (SQL's `round` rounds half away from zero)."""
    scale = 10**decimals
    scaled = f"(({expr}) * {scale})"
    return (
        f"((case when {scaled} - floor({scaled}) = 0.5 then floor({scaled}) + abs(mod(floor({scaled}), 2)) "
        f"else round({scaled}) end) / {scale})"
    )


def first_tag_sql(keys: Sequence[str], dialect: Dialect) -> str:
    """The SQL twin of `contracts.focus.first_tag` before key normalization: the first configured key
    present and not blank, trimmed."""
    if not keys:
        return "cast(null as varchar)"
    return f"coalesce({', '.join(dialect.trim_blank(dialect.json_text('Tags', k)) for k in keys)})"


@dataclass(frozen=True)
class WarehouseQuery:
    """An aggregate of a table's rows computed by the warehouse.

    `columns`: the table's columns it reads (the partition's rows are selected with these only);
    `schema`: the frame it returns; `statement(rows, cfg, dialect, **parameters)`: the SQL over
    `rows`, a select of those columns for the input's partitions; `parameters`: the names of the
    values the asset gives it when it reads (`ByDay.query(name, **parameters)`), text or numbers.
    """

    columns: Sequence[str]
    schema: dict[str, pl.DataType]
    statement: Callable[..., str]
    parameters: Sequence[str] = ()


def metrics_filter(metrics: Sequence[str], dialect: Dialect) -> str:
    """The condition keeping tenant_usage's rows of `metrics` (none: no row)."""
    wanted = sorted(set(metrics))
    return f"metric in ({', '.join(dialect.text(m) for m in wanted)})" if wanted else "1 = 0"


def usage_of_metrics(metrics: Callable[["UnitcostConfig"], Sequence[str]]) -> WarehouseQuery:
    """tenant_usage's rows of the metrics a step uses (`metrics(cfg)`), the others left in the
    warehouse: the same rows, not sums."""
    def statement(rows: str, cfg: "UnitcostConfig", dialect: Dialect) -> str:
        return f"select * from ({rows}) as unitcost_rows where {metrics_filter(metrics(cfg), dialect)}"

    return WarehouseQuery(list(USAGE_SCHEMA), dict(USAGE_SCHEMA), statement)


@dataclass(frozen=True)
class RollupQuery:
    """A query over a rollup's result (a rollup's `then`, defs/rollup.py): the warehouse reduces the
    rollup further, with other tables of the same schema, before anything leaves it.

    `schema`: the frame it returns; `statement(rollup, spec, cfg, table, dialect)`: the SQL over
    `rollup` (the rollup's statement), given the `then` spec, the run's config, and `table(name)`,
    the quoted name of another table of the warehouse.
    """

    schema: dict[str, pl.DataType]
    statement: Callable[[str, dict, "UnitcostConfig", Callable[[str], str], Dialect], str]
