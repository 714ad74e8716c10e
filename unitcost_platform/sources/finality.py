"""Which billing days a provider may still change: the re-pull window of the API connectors.

Providers restate recent days (late usage, credits, amortization) and the previous month until it
closes. A day inside the window is provisional (`x_IsFinal` false) and re-pulled daily by the
restatement sensor; a day outside it is final.
"""

import datetime as dt

from unitcost_platform.config_base import RestatementConfig


def repull_window(today: dt.date, cfg: RestatementConfig) -> tuple[dt.date, dt.date]:
    """[first, last] days still open on `today`: the trailing days, and last month until its close."""
    last = today - dt.timedelta(days=1)
    first = today - dt.timedelta(days=max(cfg.trailing_days, 1))
    if today.day <= cfg.month_close_day:
        previous_month_start = (today.replace(day=1) - dt.timedelta(days=1)).replace(day=1)
        first = min(first, previous_month_start)
    return first, last


def is_final(day: dt.date, today: dt.date, cfg: RestatementConfig) -> bool:
    first, _ = repull_window(today, cfg)
    return day < first
