"""Needs-evaluation features: what the sales team recorded before the as-of date.

- needs_evaluations_total: evaluations before the as-of.
- needs_days_since_evaluation: whole days from the latest evaluation's day to the as-of.
- needs_latest_*: level, dimension, urgency, importance, solution fit, orientation and
  style of the latest evaluation (ties on the timestamp: the last by dimension, level).
- needs_open_pains: dimensions whose latest evaluation records a pain (a pain stays open
  until a later evaluation of the same dimension records something else).
- needs_mean_solution_fit: mean solution fit over all evaluations before the as-of.
- needs_complaints_<N>d / needs_complaints_total: evaluations that recorded a complaint.
"""

from __future__ import annotations

from propensity.config import FeaturesConfig

from features.windows import before_as_of, days_before_as_of

LATEST_ORDER = "evaluated_at desc, dimension desc, need_level desc, urgency desc, importance desc, solution_fit desc"


def needs_ctes(cfg: FeaturesConfig) -> list[tuple[str, str]]:
    """Named SQL steps that end in `needs`: one row per evaluated customer."""
    n = cfg.frequency_window_days
    return [
        ("evals_before", f"select * from needs_evaluations where {before_as_of('evaluated_at')}"),
        (
            "evals_latest",
            f"""
            select * from (
                select *, row_number() over (partition by customer_id order by {LATEST_ORDER}) as rn
                from evals_before) where rn = 1""",
        ),
        (
            "open_pains",
            f"""
            select customer_id, count(*) filter (where need_level = 'pain') as needs_open_pains
            from (select *, row_number() over (partition by customer_id, dimension order by {LATEST_ORDER}) as rn
                  from evals_before) where rn = 1
            group by customer_id""",
        ),
        (
            "needs",
            f"""
            select a.customer_id,
                   a.needs_evaluations_total,
                   {days_before_as_of('l.evaluated_at::date')} as needs_days_since_evaluation,
                   l.need_level as needs_latest_level,
                   l.dimension as needs_latest_dimension,
                   l.urgency as needs_latest_urgency,
                   l.importance as needs_latest_importance,
                   l.solution_fit as needs_latest_solution_fit,
                   l.orientation as needs_orientation,
                   l.style as needs_style,
                   p.needs_open_pains,
                   a.needs_mean_solution_fit,
                   a.needs_complaints_{n}d,
                   a.needs_complaints_total
            from (select customer_id, count(*) as needs_evaluations_total,
                         avg(solution_fit)::double as needs_mean_solution_fit,
                         count(*) filter (where complaint and {days_before_as_of('evaluated_at::date')} <= {n}) as needs_complaints_{n}d,
                         count(*) filter (where complaint) as needs_complaints_total
                  from evals_before group by customer_id) a
            join evals_latest l using (customer_id)
            join open_pains p using (customer_id)""",
        ),
    ]


def needs_count_columns(cfg: FeaturesConfig) -> list[str]:
    """Count columns that are 0, not null, for customers never evaluated."""
    n = cfg.frequency_window_days
    return ["needs_evaluations_total", "needs_open_pains", f"needs_complaints_{n}d", "needs_complaints_total"]
