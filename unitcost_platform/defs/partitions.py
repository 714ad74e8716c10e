"""Daily UTC partitions and the trailing windows the downstream assets read."""

import datetime as dt
import warnings
from collections.abc import Iterable

import dagster as dg


def daily_partitions(start_date: dt.date) -> dg.DailyPartitionsDefinition:
    """One partition per UTC day from `start_date` (UNITCOST_START_DATE) to yesterday."""
    return dg.DailyPartitionsDefinition(start_date=start_date.isoformat(), timezone="UTC")


def trailing_days(days: int) -> dg.TimeWindowPartitionMapping:
    """The `days` days ending at the partition; days before the first partition are simply absent."""
    return _window(start_offset=-(days - 1), end_offset=0)


def _window(start_offset: int, end_offset: int) -> dg.TimeWindowPartitionMapping:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", dg.BetaWarning)
        return dg.TimeWindowPartitionMapping(
            start_offset=start_offset,
            end_offset=end_offset,
            allow_nonexistent_upstream_partitions=True,
        )


def days_of(context: dg.AssetExecutionContext) -> list[dt.date]:
    """Every day the run computes: one partition, or each day of a single-run backfill range."""
    return [dt.date.fromisoformat(key) for key in context.partition_keys]


def consecutive_runs(days: Iterable[dt.date]) -> list[list[dt.date]]:
    """The days, sorted and without repeats, in runs of consecutive days."""
    runs: list[list[dt.date]] = []
    for day in sorted(set(days)):
        if runs and day - runs[-1][-1] == dt.timedelta(days=1):
            runs[-1].append(day)
        else:
            runs.append([day])
    return runs


def days_text(days: Iterable[dt.date]) -> str:
    """`2026-03-02, 2026-03-09` or `2026-02-22..2026-03-31`: days as a person reads them."""
    return ", ".join(
        run[0].isoformat() if len(run) == 1 else f"{run[0].isoformat()}..{run[-1].isoformat()}"
        for run in consecutive_runs(days)
    )


def and_days_before(days: Iterable[dt.date], n: int) -> list[dt.date]:
    """`days` and the day `n` days before each, sorted: what an asset comparing each day with the
    same day `n` days earlier reads."""
    days = set(days)
    return sorted(days | {d - dt.timedelta(days=n) for d in days})
