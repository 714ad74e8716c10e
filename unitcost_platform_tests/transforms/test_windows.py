"""Trailing-window sums read from running totals over the days that have values."""

import numpy as np

from unitcost_platform.transforms.windows import cumulative, window_at_days


def test_window_at_days_sums_the_columns_whose_day_is_in_the_window():
    """Columns for days 2, 5 and 9 only (the calendar's other days have no values): a window counts
    the columns whose day is in it, however many calendar days lie between them."""
    totals = cumulative(np.array([[1.0, 10.0, 100.0], [2.0, 0.0, 4.0]]))
    days = np.array([2, 5, 9])
    # Row 0, day 9, 7 days (3..9): days 5 and 9; the 7 days before (-4..2): day 2.
    assert window_at_days(totals, np.array([0]), days, np.array([9]), 7).tolist() == [110.0]
    assert window_at_days(totals, np.array([0]), days, np.array([9]), 7, lag=7).tolist() == [1.0]
    # 3 days: row 0 at day 5 (3..5) holds day 5; at day 1 (-1..1) nothing; row 1 at day 9 (7..9) day 9.
    assert window_at_days(totals, np.array([0, 0, 1]), days, np.array([5, 1, 9]), 3).tolist() == [10.0, 0.0, 4.0]
