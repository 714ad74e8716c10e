"""Daily UTC partitions and the trailing windows the downstream assets read."""

import datetime as dt
import warnings

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
