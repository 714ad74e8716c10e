"""Idle capacity on the dashboard: its own bar in "Unallocated cost by reason", a line in tag coverage."""

import datetime as dt

import polars as pl

from unitcost_platform.dashboard import IDLE_LABEL, coverage_over_time, unallocated_over_time

D = dt.date(2026, 3, 10)


def test_unallocated_idle_is_its_own_bar():
    unallocated = pl.DataFrame({"day": [D, D, D + dt.timedelta(days=1)], "unallocated_reason": ["idle", "unknown_tenant", "idle"],
                                "allocated_cost": [7.5, 1.0, 6.0]})  # fmt: skip
    fig = unallocated_over_time(unallocated)
    bars = {trace.name: list(trace.y) for trace in fig.data}
    assert bars == {IDLE_LABEL: [7.5, 6.0], "unknown_tenant": [1.0]}
    assert fig.layout.barmode == "stack"


def test_idle_share_beside_tag_coverage_only_when_there_is_idle():
    coverage = pl.DataFrame({"day": [D], "total_cost": [24.0], "coverage": [21 / 24], "tagged_share": [13.5 / 24],
                             "untagged_cost": [3.0]})  # fmt: skip
    assert [t.name for t in coverage_over_time(coverage).data] == ["attributable (tagged + shared by design)", "tenant-tagged"]
    idle = pl.DataFrame({"day": [D], "scope_type": ["idle"], "total_cost": [7.5]})
    fig = coverage_over_time(coverage, idle=idle)
    assert [t.name for t in fig.data][-1] == IDLE_LABEL and list(fig.data[-1].y) == [7.5 / 24]
