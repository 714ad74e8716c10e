"""The orphans check as the warehouse runs it (ORPHANS_QUERY) against its Polars path.

The check once read allocated_cost's sums per tenant, every tenant's requests and the days' whole
customer_dimension into Python (400k rows a day at 100k tenants) to report at most five offenders
a day. The warehouse now joins the three and returns each day's worst offenders with the day's
counts and orphan cost. Here both paths run on the same rows, the warehouse's with the statements
the IO managers build (the rollup of allocated_cost, then the follow-up query reading the days'
tenant_usage and customer_dimension), on DuckDB and on Snowflake (fakesnow).
"""

import datetime as dt
import random

import dagster as dg
import polars as pl
import pytest
from dagster._core.storage.db_io_manager import TableSlice
from polars.testing import assert_frame_equal

from unitcost_platform.config import ScopeConfig, UnitcostConfig
from unitcost_platform.definitions import build_definitions
from unitcost_platform.defs.rollup import follow_up_of, rollup_statement
from unitcost_platform.transforms import checks
from unitcost_platform.warehouse_sql import DUCKDB, SNOWFLAKE, Dialect
from unitcost_platform_tests.helpers import (
    D,
    customers,
    duckdb_tables,
    fake_snowflake_tables,
    focus_csv,
    usage,
)
from unitcost_platform_tests.saas import DAYS as DAYS_OF_SAAS

DAYS = [D - dt.timedelta(days=2), D - dt.timedelta(days=1), D]
ALLOCATED = {"day": pl.Date, "customer_id": pl.String, "tenant_id": pl.String, "pool": pl.String,
             "allocated_cost": pl.Float64, "unallocated_reason": pl.String}  # fmt: skip
SCOPES = {
    "everyone": None,
    "enterprise": ScopeConfig(tiers=["Enterprise"]),  # any case, as the Polars expression reads it
    "recent": ScopeConfig(onboarded_since=D - dt.timedelta(days=1)),
}


def _warehouse(run, dialect: Dialect, table, days: list[dt.date], scope: ScopeConfig | None, worst: int) -> pl.DataFrame:
    """What the check reads: allocated_cost at ORPHANS_ROLLUP, reduced by the follow-up query."""
    spec = checks.orphans_spec(days, worst)
    rollup = {**checks.ORPHANS_ROLLUP, "then": spec}

    def select(table_slice: TableSlice) -> str:
        return f"select {', '.join(table_slice.columns)} from {table('allocated_cost')}"

    statement = rollup_statement(TableSlice(table="allocated_cost", schema="unitcost"), rollup, select, dialect)
    sql = follow_up_of(rollup).statement(statement, spec, UnitcostConfig(scope=scope), table, dialect)
    return _ordered(run(sql).cast(checks.ORPHANS_FOUND_SCHEMA))


def _ordered(frame: pl.DataFrame) -> pl.DataFrame:
    return frame.sort("day", "cost", "requests", "kind", "who", descending=[False, True, True, False, False], nulls_last=True)


def _polars(allocated, rows, dimension, scope: ScopeConfig | None, worst: int) -> pl.DataFrame:
    found = checks.orphans_found(allocated, rows, dimension, scope.expr() if scope else None)
    return _ordered(checks.worst_orphans(found, worst))


def _hand_worked() -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """test_checks' day: ghost has cost and no customer, canary and lurker usage and no customer,
    C2 (active, enterprise) direct cost and no usage; C3 is churned, C4's storage is usage."""
    dimension = customers([{"customer_id": "C1", "tenant_id": "t1"},
                           {"customer_id": "C2", "tenant_id": "t2", "tier": "enterprise"},
                           {"customer_id": "C3", "tenant_id": "t3", "status": "churned"},
                           {"customer_id": "C4", "tenant_id": "t4"}])  # fmt: skip
    allocated = pl.DataFrame([
        (D, "C1", "t1", "direct", 10.0, None), (D, "C2", "t2", "direct", 7.0, None),
        (D, "C3", "t3", "direct", 1.0, None), (D, "C4", "t4", "direct", 3.0, None),
        (D, "C1", None, "observability", 2.0, None), (D, None, "ghost", "direct", 4.0, "unknown_tenant"),
    ], orient="row", schema=ALLOCATED)  # fmt: skip
    rows = usage([("t1", "requests", 60), ("t1", "requests", 40), ("t4", "storage_bytes", 9),
                  ("canary", "requests", 50), ("canary", "storage_bytes", 7), ("lurker", "storage_bytes", 5)])  # fmt: skip
    return allocated, rows, dimension


def test_the_warehouse_finds_the_hand_worked_orphans():
    allocated, rows, dimension = _hand_worked()
    run = duckdb_tables({"allocated_cost": allocated, "tenant_usage": rows, "customer_dimension": dimension})
    table = lambda t: f"unitcost.{t}"  # noqa: E731
    [out] = checks.orphan_outcomes(_warehouse(run, DUCKDB, table, [D], None, checks.WORST), [D])
    assert not out.passed
    # Costliest first (C2's 7, ghost's 4), then those without cost by requests (canary 50, lurker 0).
    assert out.offenders.rows() == [
        ("active customer without usage", "C2", 7.0, None), ("tenant without customer", "ghost", 4.0, None),
        ("tenant without customer", "canary", None, 50.0), ("tenant without customer", "lurker", None, 0.0),
    ]  # fmt: skip
    assert out.figures == {"tenants_without_customer": 3, "customers_without_usage": 1, "orphan_cost": 11.0,
                           "scope": "all customers"}  # fmt: skip
    # Two offenders shown; the figures still count all four.
    [top] = checks.orphan_outcomes(_warehouse(run, DUCKDB, table, [D], None, 2), [D])
    assert [r[1] for r in top.offenders.rows()] == ["C2", "ghost"] and top.figures["orphan_cost"] == 11.0
    # A scope without C2's tier audits nobody for missing usage; tenants are reported whatever the scope.
    smb = ScopeConfig(tiers=["smb"])
    [scoped] = checks.orphan_outcomes(_warehouse(run, DUCKDB, table, [D], smb, checks.WORST), [D], smb.describe())
    assert [r[1] for r in scoped.offenders.rows()] == ["ghost", "canary", "lurker"]
    assert scoped.figures["customers_without_usage"] == 0 and scoped.figures["orphan_cost"] == 4.0
    # A day without rows in any table has no orphan.
    [empty] = checks.orphan_outcomes(_warehouse(run, DUCKDB, table, [D + dt.timedelta(days=1)], None, 5), [D + dt.timedelta(days=1)])
    assert empty.passed and empty.figures["orphan_cost"] == 0.0


def _random(seed: int) -> tuple[pl.DataFrame, pl.DataFrame, pl.DataFrame]:
    """Three days: 20 customers owning t00..t24 (some from the second day, some churned, tiers in
    mixed case), t25..t29 nobody's; direct cost per tenant (unknown tenants' as unknown_tenant),
    shared cost per customer, other reasons; usage of known and unknown tenants, some of storage
    only. Costs are sums of binary fractions, so equal sums are equal in both engines and the
    offenders' ties are broken by name."""
    rng = random.Random(seed)
    versions = []
    for c in range(20):
        tenants = [f"t{c:02d}"] + ([f"t{20 + c // 4:02d}"] if c % 4 == 0 else [])
        drawn = {"valid_from": rng.choice([None, None, DAYS[1], DAYS[2]]), "tier": rng.choice(["smb", "Enterprise", "enterprise"]),
                 "status": rng.choice(["active", "active", "active", "churned"])}  # fmt: skip
        versions += [{"customer_id": f"C{c:02d}", "tenant_id": tenant, **drawn} for tenant in tenants]
    dimension = customers(versions, DAYS)
    owner = {(r["snapshot_date"], r["tenant_id"]): r["customer_id"] for r in dimension.iter_rows(named=True)}
    costs = [0.0, 1.0, 2.5, -0.5, 0.25, 4.0]
    allocated, rows = [], []
    for day in DAYS:
        for t in range(30):
            tenant = f"t{t:02d}"
            customer = owner.get((day, tenant))
            for _ in range(rng.randrange(0, 3)):
                reason = None if customer else "unknown_tenant"
                allocated.append((day, customer, tenant, "direct", rng.choice(costs), reason))
            for metric in rng.sample(["requests", "storage_bytes"], rng.randrange(0, 3)):
                rows.append((tenant, metric, rng.choice([0, 10, 50, 50]), day))
        for c in range(20):
            if rng.random() < 0.7:
                allocated.append((day, f"C{c:02d}", None, "nat", rng.choice(costs), None))
        allocated.append((day, None, None, "nat", 3.0, "no_matching_pool"))
        allocated.append((day, "C01", "t01", "direct", 2.0, "unknown_customer"))
    rng.shuffle(allocated), rng.shuffle(rows)  # a tie is not broken by the order the rows were written in
    return pl.DataFrame(allocated, orient="row", schema=ALLOCATED), usage(rows), dimension.sample(fraction=1.0, shuffle=True, seed=seed)


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("scope", SCOPES.values(), ids=SCOPES.keys())
def test_duckdb_returns_what_polars_finds(seed, scope):
    allocated, rows, dimension = _random(seed)
    run = duckdb_tables({"allocated_cost": allocated, "tenant_usage": rows, "customer_dimension": dimension})
    for worst in (2, checks.WORST):
        polars = _polars(allocated, rows, dimension, scope, worst)
        warehouse = _warehouse(run, DUCKDB, lambda t: f"unitcost.{t}", DAYS, scope, worst)
        assert_frame_equal(warehouse, polars, check_exact=False, rel_tol=1e-12)
        # Something to find on every day, of both kinds over the days, and more than shown.
        assert set(polars["day"]) == set(DAYS)
        assert polars["tenants_without_customer"].min() > 0 and polars["customers_without_usage"].max() > 0
        assert (polars["tenants_without_customer"] + polars["customers_without_usage"]).max() > worst


def test_snowflake_returns_what_polars_finds():
    allocated, rows, dimension = _random(2)
    scope = SCOPES["enterprise"]
    tables = {"allocated_cost": allocated, "tenant_usage": rows, "customer_dimension": dimension}
    with fake_snowflake_tables(tables) as run:
        warehouse = _warehouse(run, SNOWFLAKE, lambda t: f"ANALYTICS.UNITCOST.{t}", DAYS, scope, checks.WORST)
    assert_frame_equal(warehouse, _polars(allocated, rows, dimension, scope, checks.WORST), check_exact=False, rel_tol=1e-12)


def test_a_dagster_run_reports_the_orphans_the_warehouse_found(small_saas, make_settings):
    """The real Definitions on the small SaaS, with on one day a tenant billed that no customer owns
    (ghost, $4), two that report usage and have no customer (canary's requests, lurker's storage),
    and C2 ($5 of direct cost) reporting no usage: the check says so, the costliest first, and what
    left the warehouse for it is the day's four offenders."""
    day = DAYS_OF_SAAS[8]
    focus_csv(small_saas / "billing" / "ghost.csv", [{"day": day, "cost": 4.0, "tenant": "ghost"}])
    path = small_saas / "usage" / "usage.csv"
    reported = pl.read_csv(path, schema_overrides={"service_name": pl.String})
    reported = reported.filter(~((pl.col("usage_date") == day.isoformat()) & (pl.col("tenant_id") == "t2")))
    extra = [(day.isoformat(), "canary", "", "requests", 50.0), (day.isoformat(), "lurker", "", "storage_bytes", 5.0)]
    pl.concat([reported, pl.DataFrame(extra, schema=reported.schema, orient="row")]).write_csv(path)
    defs = build_definitions(make_settings(small_saas))
    instance = dg.DagsterInstance.ephemeral()
    selection = [dg.AssetKey(k) for k in ("raw_billing", "tenant_usage", "customer_dimension", "allocated_cost")]
    result = defs.resolve_implicit_global_asset_job_def().execute_in_process(
        partition_key=day.isoformat(), asset_selection=selection, instance=instance
    )
    [found] = [
        e.event_specific_data for e in result.all_events
        if e.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION and e.event_specific_data.check_name == "orphans"
    ]  # fmt: skip
    assert not found.passed and found.severity == dg.AssetCheckSeverity.WARN
    figures = {k: v.value for k, v in found.metadata.items()}
    assert (figures["tenants_without_customer"], figures["customers_without_usage"]) == (3, 1)
    # canary's requests also draw a share of the day's $4 split by requests (NAT's 3 hours, the
    # untagged Lambda in the default compute pool): 50 of 1,550 requests (t1 1,000, tf 500, canary 50).
    canary = 4.0 * 50 / 1550
    assert figures["orphan_cost"] == pytest.approx(5.0 + 4.0 + canary, rel=1e-12)
    table = figures["worst_offenders"]
    assert [w for w in ("C2", "ghost", "canary", "lurker") if w in table] == ["C2", "ghost", "canary", "lurker"]
    assert table.index("C2") < table.index("ghost") < table.index("canary") < table.index("lurker")
    moved = [e.user_message for e in instance.all_logs(result.run_id) if "reduced by orphans" in (e.user_message or "")]
    assert moved and moved[0].startswith("warehouse -> Python: 4 rows of allocated_cost"), moved
