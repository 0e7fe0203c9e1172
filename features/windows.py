"""As-of boundaries: the one place that decides which rows a feature or a label may see.

Features see rows with a timestamp strictly before the as-of instant (midnight at the
start of the as-of date). Labels see rows in the horizon that starts there:
``as_of <= ts < as_of + horizon``. The two windows meet without a gap or an overlap,
so every row belongs to exactly one side: a purchase at 00:00 on the as-of date is the
first day of the label window, never a feature. (Reading the horizon as
``(as_of, as_of + horizon]`` would drop rows stamped exactly at the as-of instant, which
is every row of a set recorded at day resolution, such as CDNOW.)
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta


@dataclass(frozen=True)
class Cutoff:
    """An as-of date and the label horizon that follows it."""

    as_of: date
    horizon_days: int

    @property
    def horizon_end(self) -> date:
        """The first date after the label window."""
        return self.as_of + timedelta(days=self.horizon_days)

    def params(self) -> dict[str, date]:
        """Bind values for the SQL predicates below."""
        return {"as_of": self.as_of, "horizon_end": self.horizon_end}

    def labels_complete(self, data_end: date) -> bool:
        """True when the data covers the whole label window (data_end is exclusive)."""
        return self.horizon_end <= data_end


def before_as_of(column: str) -> str:
    """SQL predicate: the row is visible to features."""
    return f"{column} < $as_of::timestamp"


def in_horizon(column: str) -> str:
    """SQL predicate: the row falls in the label window."""
    return f"{column} >= $as_of::timestamp and {column} < $horizon_end::timestamp"


def days_before_as_of(day_column: str) -> str:
    """SQL expression: whole days from a date to the as-of date (1 = the day before)."""
    return f"date_diff('day', {day_column}, $as_of::date)"


def snapshot_cutoffs(
    data_end: date, horizon_days: int, step_days: int, count: int,
    data_start: date | None = None, min_history_days: int = 0, purge: bool = True,
) -> list[date]:
    """The `count` latest as-of dates, `step_days` apart, whose label windows are complete.

    For training, the latest is the out-of-time cutoff. With a step shorter than the
    horizon and `purge`, the earlier cutoffs whose label window would reach past it are
    left out (their labels would overlap the out-of-time period), so fewer than `count`
    come back: horizon 90, step 30, count 8 gives the latest and the five from 90 to 210
    days before it.

    Args:
        data_end: the first date after the data (exclusive end).
        horizon_days: label window length.
        step_days: days between consecutive cutoffs.
        count: how many cutoffs (at most).
        data_start: the date of the first row; with it, cutoffs that would see fewer than
            `min_history_days` days of data are left out (so fewer than `count` may come back).
        min_history_days: the least history a cutoff must have.
        purge: leave out the cutoffs whose labels overlap the latest one's (see above).

    Returns:
        As-of dates, oldest first.
    """
    latest = data_end - timedelta(days=horizon_days)
    cutoffs = [latest - timedelta(days=step_days * i) for i in reversed(range(count))]
    if purge:
        cutoffs = [c for c in cutoffs if c == latest or c + timedelta(days=horizon_days) <= latest]
    if data_start is not None:
        cutoffs = [c for c in cutoffs if (c - data_start).days >= min_history_days]
    return cutoffs
