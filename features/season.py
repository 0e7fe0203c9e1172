"""Cutoff-level features: the season of the as-of date and the days to the next known holiday.

They are the same for every customer at one cutoff, so within a cutoff they rank no one;
across the stacked training cutoffs they let a model learn that, say, a cutoff six weeks
before Christmas is followed by more purchases. Off by default (`[features]
season_features`); bench/quality.py measures them.

The SQL is written once for both engines: `as_of` is an SQL expression of type DATE
(`$as_of::date` on DuckDB, a literal on Spark) and `days(a, b)` the engine's whole days
from date a to date b; both engines' LEAST skips NULLs.
"""

from __future__ import annotations

from collections.abc import Callable

from propensity.config import FeaturesConfig, holiday_parts

SEASON_FEATURES = ("cutoff_month", "days_to_holiday")


Days = Callable[[str, str], str]


def _next(as_of: str, days: Days, year: int | None, month: int, day: int) -> str:
    """Days from the as-of date to this holiday's next date on or after it (NULL: none ahead)."""
    if year is not None:
        when = f"make_date({year}, {month}, {day})"
        return f"case when {when} >= {as_of} then {days(as_of, when)} end"
    this_year = f"make_date(year({as_of}), {month}, {day})"
    next_year = f"make_date(year({as_of}) + 1, {month}, {day})"
    return f"case when {this_year} >= {as_of} then {days(as_of, this_year)} else {days(as_of, next_year)} end"


def season_columns(cfg: FeaturesConfig, as_of: str, days: Days) -> list[tuple[str, str]]:
    """(name, SQL expression) of the season features this configuration builds (none when off)."""
    if not cfg.season_features:
        return []
    cols = [("cutoff_month", f"cast(month({as_of}) as bigint)")]
    if cfg.holidays:
        nexts = [_next(as_of, days, *holiday_parts(h)) for h in cfg.holidays]
        expr = nexts[0] if len(nexts) == 1 else f"least({', '.join(nexts)})"
        cols.append(("days_to_holiday", f"cast({expr} as bigint)"))
    return cols
