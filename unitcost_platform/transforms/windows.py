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
