"""The baseline: the default allocation as DuckDB SQL over the same files ("the join layer in the
warehouse", as FinOps teams often build it). Tags are read from their JSON strings in SQL, untagged
cost goes to pools by ServiceCategory (Compute/Networking by requests, Databases/Storage by storage
bytes, everything else flat over active customers), tenants nobody owns keep their share as
unallocated. Its result is checked equal to ours before its time counts.
"""

import datetime as dt
from pathlib import Path

import duckdb
import polars as pl

from unitcost_platform.config_base import DEFAULT_TAG_KEYS

SQL = """
WITH items AS (
    SELECT CAST(ChargePeriodStart AS DATE) AS day, ServiceName AS service_name, ServiceCategory AS category,
           EffectiveCost AS cost,
           NULLIF(lower(trim(coalesce({tag_lookups}))), '') AS tenant_id
    FROM read_parquet('{billing}')
    WHERE ChargePeriodStart >= TIMESTAMP '{start}' AND ChargePeriodStart < TIMESTAMP '{end}'
),
customers AS (SELECT DISTINCT lower(tenant_id) AS tenant_id, customer_id, status FROM read_parquet('{customers}')),
usage AS (
    SELECT usage_date AS day, lower(tenant_id) AS tenant_id, metric, sum(value) AS value
    FROM read_parquet('{usage}') WHERE value > 0 GROUP BY ALL
),
direct AS (
    SELECT i.day, c.customer_id, i.tenant_id, i.service_name, 'direct' AS pool, sum(i.cost) AS allocated_cost
    FROM items i LEFT JOIN customers c USING (tenant_id)
    WHERE i.tenant_id IS NOT NULL GROUP BY ALL
),
pool_costs AS (
    SELECT day, service_name,
           CASE WHEN category IN ('Compute', 'Networking') THEN 'default_compute_networking'
                WHEN category IN ('Databases', 'Storage') THEN 'default_data'
                ELSE 'default_other' END AS pool,
           sum(cost) AS cost
    FROM items WHERE tenant_id IS NULL GROUP BY ALL
),
weights AS (
    SELECT day, tenant_id, CASE metric WHEN 'requests' THEN 'default_compute_networking'
                                       ELSE 'default_data' END AS pool,
           value / sum(value) OVER (PARTITION BY day, metric) AS ratio
    FROM usage WHERE metric IN ('requests', 'storage_bytes')
),
by_usage AS (
    SELECT p.day, c.customer_id, w.tenant_id, p.service_name, p.pool, sum(p.cost * w.ratio) AS allocated_cost
    FROM pool_costs p JOIN weights w USING (day, pool) LEFT JOIN customers c USING (tenant_id)
    GROUP BY ALL
),
active AS (SELECT customer_id, count(*) OVER () AS n FROM (SELECT DISTINCT customer_id FROM customers WHERE status = 'active')),
flat AS (
    SELECT p.day, a.customer_id, NULL AS tenant_id, p.service_name, p.pool, sum(p.cost / a.n) AS allocated_cost
    FROM pool_costs p CROSS JOIN active a WHERE p.pool = 'default_other' GROUP BY ALL
)
SELECT * FROM direct UNION ALL SELECT * FROM by_usage UNION ALL SELECT * FROM flat
"""


def run_baseline(data_dir: Path, days: list[dt.date], threads: int | None = None) -> pl.DataFrame:
    """The allocation of `days` from the files in `data_dir`, computed by DuckDB."""
    lookups = ", ".join(f"json_extract_string(Tags, '$.\"{k}\"')" for k in DEFAULT_TAG_KEYS)
    sql = SQL.format(
        tag_lookups=lookups,
        billing=str(Path(data_dir) / "billing" / "*.parquet"),
        usage=str(Path(data_dir) / "usage" / "*.parquet"),
        customers=str(Path(data_dir) / "customers.parquet"),
        start=f"{min(days)} 00:00:00",
        end=f"{max(days) + dt.timedelta(days=1)} 00:00:00",
    )
    with duckdb.connect() as con:
        con.execute("SET enable_progress_bar = false")
        if threads:
            con.execute(f"SET threads = {threads}")
        return pl.from_arrow(con.sql(sql).to_arrow_table())
