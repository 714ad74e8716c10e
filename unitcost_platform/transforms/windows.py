"""Trailing-window sums over a dense (entity x calendar day) matrix.

Run rates, 7-day trends and alert drivers all sum the last N days of something per customer (and
service). With the days as columns of a matrix, every window of every day is one cumulative sum:
a year's backfill costs one pass instead of one history read or join per day.
"""

import numpy as np


def window_sums(values: np.ndarray, window: int) -> np.ndarray:
    """For each row and column, the sum of that row's last `window` columns (fewer at the start)."""
    cumulative = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=cumulative[:, 1:])
    lagged = np.zeros_like(values, dtype=np.float64)
    if values.shape[1] > window:
        lagged[:, window:] = cumulative[:, 1 : values.shape[1] + 1 - window]
    return cumulative[:, 1:] - lagged


def shifted(values: np.ndarray, days: int) -> np.ndarray:
    """`values` moved `days` columns to the right (zeros before the calendar starts)."""
    out = np.zeros_like(values)
    if days < values.shape[1]:
        out[:, days:] = values[:, : values.shape[1] - days]
    return out


def cumulative(values: np.ndarray) -> np.ndarray:
    """Row-wise running totals with a leading zero column: the sum of columns [a, b) is c[:, b] - c[:, a]."""
    out = np.zeros((values.shape[0], values.shape[1] + 1))
    np.cumsum(values, axis=1, out=out[:, 1:])
    return out


def window_at_days(
    totals: np.ndarray, rows: np.ndarray, column_days: np.ndarray, days: np.ndarray, window: int, lag: int = 0
) -> np.ndarray:
    """From `cumulative` totals over the days that have values (`column_days`: each column's day
    number, sorted): per (row, day) asked, the sum of the columns whose day falls in the `window`
    days ending `lag` days before that day (fewer at the start). A matrix of 2 data days in 14 has
    2 columns, not 14."""
    end = np.searchsorted(column_days, days - lag, side="right")
    start = np.searchsorted(column_days, days - lag - window, side="right")
    return totals[rows, end] - totals[rows, start]


def running_count(mask: np.ndarray) -> np.ndarray:
    """`cumulative` of a boolean matrix, as exact int32 counts (a quarter of float64's memory)."""
    out = np.zeros((mask.shape[0], mask.shape[1] + 1), dtype=np.int32)
    np.cumsum(mask, axis=1, dtype=np.int32, out=out[:, 1:])
    return out
