"""Asset checks: conservation (blocking) and the tag audit, one evaluation per day in the UI.

A single-run backfill evaluates every day of its range in one step, so each check yields one
`AssetCheckEvaluation` per day (with its partition) rather than one `AssetCheckResult`. A failing
blocking evaluation fails the step, which keeps `unit_cost` and everything downstream of
`allocated_cost` from running.
"""

import datetime as dt
from collections.abc import Iterator

import dagster as dg
import polars as pl

from unitcost_platform.defs.metadata import markdown_table, user_errors_as_failures
from unitcost_platform.defs.resources import UnitcostResource
from unitcost_platform.defs.rollup import ROLLUP_KEY, OnDays, WithRollup
from unitcost_platform.transforms import checks

CONSERVATION = "conservation"
COVERAGE_FLOOR = "tag_coverage_floor"
ATTRIBUTION_DRIFT = "attribution_drift"
PROPAGATION_GAPS = "tag_propagation_gaps"
ORPHANS = "orphans"
USAGE_FRESHNESS = "usage_freshness"

TRAILING_WEEK = "trailing_week"  # the input manager of the checks that compare with the trailing week

SEVERITY = {"WARN": dg.AssetCheckSeverity.WARN, "ERROR": dg.AssetCheckSeverity.ERROR}


ALLOCATION_TOTALS = "allocation_totals"  # the input manager of the conservation check
ALLOCATION_BY_TENANT = "allocation_by_tenant"  # the input manager of the orphans check


@dg.input_manager(required_resource_keys={"io_manager"})
def allocation_totals(context: dg.InputContext) -> pl.DataFrame:
    """allocated_cost summed per day and unallocated reason by the warehouse (not its millions of rows)."""
    return WithRollup(context, checks.CONSERVATION_ROLLUP).load()


@dg.input_manager(required_resource_keys={"io_manager"})
def allocation_by_tenant(context: dg.InputContext) -> pl.DataFrame:
    """The days' orphans as the warehouse finds them: allocated_cost summed per day, tenant, customer
    and unallocated reason, joined there to the same days' tenant_usage and customer_dimension, and
    reduced to each day's worst offenders and figures (checks.ORPHANS_QUERY)."""
    days = [dt.date.fromisoformat(k) for k in context.asset_partition_keys]
    return WithRollup(context, {**checks.ORPHANS_ROLLUP, "then": checks.orphans_spec(days)}).load()


@dg.input_manager(required_resource_keys={"io_manager"})
def trailing_week(context: dg.InputContext) -> pl.DataFrame:
    """The input (its columns or its rollup) over the check's days and the trailing week before them,
    through the warehouse IO manager."""
    keys = list(context.asset_partition_keys)
    first = dt.date.fromisoformat(keys[0])
    week = [(first - dt.timedelta(days=n)).isoformat() for n in range(checks.TRAILING_DAYS, 0, -1)]
    return OnDays(context, week + keys).load()


def _days(context: dg.AssetCheckExecutionContext) -> list[dt.date]:
    return [dt.date.fromisoformat(k) for k in context.op_execution_context.partition_keys]


def _format(value: object) -> str:
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 1 else f"{value:,.2f}"
    return str(value)


def evaluations(
    asset: str, name: str, outcomes: list[checks.CheckOutcome], blocking: bool = False
) -> Iterator[dg.AssetCheckEvaluation | dg.Output]:
    """One evaluation per day, its metadata written for a person, then the check's (empty) output."""
    for outcome in outcomes:
        metadata: dict = {k: v for k, v in outcome.figures.items() if v is not None}
        if outcome.offenders is not None and outcome.offenders.height:
            table = markdown_table(outcome.offenders, {c: _format for c in outcome.offenders.columns})
            metadata["worst_offenders"] = dg.MetadataValue.md(table)
        yield dg.AssetCheckEvaluation(
            asset_key=dg.AssetKey(asset),
            check_name=name,
            passed=outcome.passed,
            severity=SEVERITY[outcome.severity],
            description=outcome.description,
            metadata=metadata,
            partition=outcome.day.isoformat(),
            blocking=blocking,
        )
    yield dg.Output(None)


def build_checks(partitions_def: dg.PartitionsDefinition) -> list[dg.AssetChecksDefinition]:
    @dg.asset_check(
        asset="allocated_cost",
        name=CONSERVATION,
        blocking=True,
        partitions_def=partitions_def,
        additional_ins={
            "allocated_cost": dg.AssetIn(input_manager_key=ALLOCATION_TOTALS),
            # The day's bill, summed by the warehouse.
            "raw_billing": dg.AssetIn(
                metadata={ROLLUP_KEY: {"by": ["x_ChargeDate"], "sum": ["BilledCost", "EffectiveCost"]}}
            )
        },
    )
    def conservation(
        context: dg.AssetCheckExecutionContext,
        unitcost: UnitcostResource,
        allocated_cost: pl.DataFrame,
        raw_billing: pl.DataFrame,
    ):
        """Allocated plus unallocated cost equals the day's bill; if not, unit cost is not computed."""
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        billed = raw_billing.select(pl.col("x_ChargeDate").alias("day"), pl.col(cfg.cost_column).alias("cost"))
        outcomes = checks.conservation(billed, allocated_cost, _days(context), cfg.checks.conservation_tolerance)
        yield from evaluations("allocated_cost", CONSERVATION, outcomes, blocking=True)

    @dg.asset_check(asset="tag_coverage", name=COVERAGE_FLOOR, partitions_def=partitions_def)
    def coverage_floor(context: dg.AssetCheckExecutionContext, unitcost: UnitcostResource, tag_coverage: pl.DataFrame):
        """Attributable share of cost against the coverage floor (WARN) and the hard floor (ERROR)."""
        with user_errors_as_failures():
            cfg = unitcost.load_config().checks
        outcomes = checks.coverage_floor(tag_coverage, _days(context), cfg.coverage_floor, cfg.coverage_hard_floor)
        yield from evaluations("tag_coverage", COVERAGE_FLOOR, outcomes)

    # The two tag audits are checks of tag_coverage and read its trailing days: Dagster loads a
    # check's own asset for the check's days only, so their input goes through `TRAILING_WEEK`.
    @dg.asset_check(
        asset="tag_coverage",
        name=ATTRIBUTION_DRIFT,
        partitions_def=partitions_def,
        additional_ins={"tag_coverage": dg.AssetIn(input_manager_key=TRAILING_WEEK)},
    )
    def attribution_drift(context: dg.AssetCheckExecutionContext, unitcost: UnitcostResource, tag_coverage: pl.DataFrame):
        """Coverage of the day's billing fell more than N points below its trailing 7-day mean."""
        with user_errors_as_failures():
            cfg = unitcost.load_config().checks
        outcomes = checks.attribution_drift(tag_coverage, _days(context), cfg.drift_points)
        yield from evaluations("tag_coverage", ATTRIBUTION_DRIFT, outcomes)

    @dg.asset_check(
        asset="tag_coverage",
        name=PROPAGATION_GAPS,
        partitions_def=partitions_def,
        additional_ins={"tag_coverage": dg.AssetIn(input_manager_key=TRAILING_WEEK)},
    )
    def propagation_gaps(context: dg.AssetCheckExecutionContext, unitcost: UnitcostResource, tag_coverage: pl.DataFrame):
        """Services whose line items stopped (or never started) carrying the tenant tag."""
        with user_errors_as_failures():
            cfg = unitcost.load_config().checks
        outcomes = checks.propagation_gaps(
            tag_coverage, _days(context), cfg.propagation_drop_points, cfg.min_service_cost
        )
        yield from evaluations("tag_coverage", PROPAGATION_GAPS, outcomes)

    # On allocated_cost, which reads the customers and the usage it compares: selecting
    # customer_dimension alone does not run a check that needs the allocation. The warehouse joins
    # the three (ORPHANS_QUERY); Python gets each day's worst offenders and figures.
    @dg.asset_check(
        asset="allocated_cost",
        name=ORPHANS,
        partitions_def=partitions_def,
        additional_ins={"allocated_cost": dg.AssetIn(input_manager_key=ALLOCATION_BY_TENANT)},
        additional_deps=["customer_dimension", "tenant_usage"],
    )
    def orphans(context: dg.AssetCheckExecutionContext, unitcost: UnitcostResource, allocated_cost: pl.DataFrame):
        """Tenants with cost or usage but no customer record; active customers (in scope) with direct cost and no usage."""
        with user_errors_as_failures():
            cfg = unitcost.load_config()
        yield from evaluations("allocated_cost", ORPHANS, checks.orphan_outcomes(allocated_cost, _days(context), cfg.scope_description()))

    # Dagster loads a check's inputs for the check's days only, whatever their partition mapping: the
    # trailing week comes through `TRAILING_WEEK`, summed per day and metric by the warehouse.
    @dg.asset_check(
        asset="allocated_cost",
        name=USAGE_FRESHNESS,
        partitions_def=partitions_def,
        additional_ins={
            "tenant_usage": dg.AssetIn(input_manager_key=TRAILING_WEEK, metadata={ROLLUP_KEY: checks.FRESHNESS_ROLLUP})
        },
    )
    def usage_freshness(context: dg.AssetCheckExecutionContext, unitcost: UnitcostResource, tenant_usage: pl.DataFrame):
        """The usage that splits shared pools arrived, and did not drop against the trailing week."""
        with user_errors_as_failures():
            cfg = unitcost.load_config().checks
        outcomes = checks.usage_freshness(tenant_usage, _days(context), cfg.usage_drop_fraction)
        yield from evaluations("allocated_cost", USAGE_FRESHNESS, outcomes)

    return [conservation, coverage_floor, attribution_drift, propagation_gaps, orphans, usage_freshness]
