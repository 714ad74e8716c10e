"""What every unit-cost asset declares: daily partitions, one run per range, group, kinds, owners."""

from typing import Any

import dagster as dg


def backfill_policy(max_days_per_run: int | None) -> dg.BackfillPolicy:
    """A range in one run (the default), or chunks of `max_days_per_run` days for a run launcher."""
    if max_days_per_run is None:
        return dg.BackfillPolicy.single_run()
    return dg.BackfillPolicy.multi_run(max_partitions_per_run=max_days_per_run)


def daily_asset(
    partitions_def: dg.PartitionsDefinition,
    kinds: set[str],
    group: str,
    day_column: str,
    backfill: dg.BackfillPolicy | None = None,
) -> dict[str, Any]:
    """Keyword arguments of `dg.asset` for a table partitioned by the UTC day in `day_column`."""
    return dict(
        partitions_def=partitions_def,
        backfill_policy=backfill or dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds=kinds,
        owners=["team:finops"],
        metadata={"partition_expr": day_column},
    )
