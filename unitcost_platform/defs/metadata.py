"""Materialization metadata a person reads in the UI, attached per partition (day)."""

import datetime as dt
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from typing import Any

import dagster as dg
import polars as pl

from unitcost_platform.errors import UnitcostError


def per_day_metadata(
    context: dg.AssetExecutionContext,
    days: list[dt.date],
    frame: pl.DataFrame,
    day_column: str,
    describe: Callable[[pl.DataFrame], Mapping[str, Any]],
) -> None:
    """Metadata of each day of the run on its own partition (a range run would copy output metadata)."""
    parts = {key[0]: part for key, part in frame.group_by([day_column])}
    for day in days:
        part = parts.get(day, frame.clear())
        context.add_asset_metadata(
            {"dagster/row_count": part.height, **describe(part)}, partition_key=day.isoformat()
        )


def money(value: float | None) -> float:
    return round(float(value or 0.0), 2)


def usd(value: float) -> str:
    return f"${value:,.2f}"


def pct(value: float) -> str:
    return f"{value:.1%}"


def markdown_table(frame: pl.DataFrame, formats: Mapping[str, Callable[[Any], str]] | None = None) -> str:
    """A small markdown table; `formats` renders chosen columns (money, percentages)."""
    formats = formats or {}
    header = "| " + " | ".join(frame.columns) + " |"
    rule = "|" + "|".join("---" for _ in frame.columns) + "|"
    lines = [header, rule]
    for row in frame.iter_rows(named=True):
        cells = [
            "" if row[c] is None else formats[c](row[c]) if c in formats else str(row[c])
            for c in frame.columns
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


@contextmanager
def user_errors_as_failures() -> Iterator[None]:
    """Bad input or config fails the step with its message and is not retried (it would fail again)."""
    try:
        yield
    except UnitcostError as exc:
        raise dg.Failure(description=str(exc), allow_retries=False) from None
