"""What every unit-cost asset declares: daily partitions, one run per range, group, kinds, owners."""

from typing import Any

import dagster as dg


def daily_asset(partitions_def: dg.PartitionsDefinition, kinds: set[str], group: str, day_column: str) -> dict[str, Any]:
    """Keyword arguments of `dg.asset` for a table partitioned by the UTC day in `day_column`."""
    return dict(
        partitions_def=partitions_def,
        backfill_policy=dg.BackfillPolicy.single_run(),
        group_name=group,
        kinds=kinds,
        owners=["team:finops"],
        metadata={"partition_expr": day_column},
    )
