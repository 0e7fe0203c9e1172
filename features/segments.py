"""Segments from RFMW features: quintile scores, named segments and tiers.

Scores are 1-5 by the share of customers a customer beats, with ties kept together:
score = 1 + floor(5 * k / n), where k is the number of customers whose value is
strictly worse and n the number of customers. The customers tied at the bottom (for
example every one-time buyer on F) therefore all score 1, and the integer arithmetic
keeps SQL and any reference implementation identical at the boundaries. Better means:
more recent (R), more purchases in the frequency window (F), higher average spend (M,
none = 0), more categories (W).
"""

from __future__ import annotations

# First matching rule names the segment (r, f, m, w are the 1-5 scores).
SEGMENT_RULES: tuple[tuple[str, str], ...] = (
    ("champions", "r >= 4 and f >= 4 and m >= 4 and w >= 3"),
    ("loyal_narrow", "r >= 3 and f >= 4 and w <= 2"),
    ("loyal", "r >= 3 and f >= 4"),
    ("cant_lose_them", "r <= 2 and f >= 4"),
    ("at_risk", "r <= 2 and (f = 3 or m >= 4)"),
    ("new_customers", "r = 5 and f <= 1"),
    ("promising", "r >= 4 and f <= 2"),
    ("potential_loyalists", "r >= 3 and f >= 2"),
    ("about_to_sleep", "r = 3"),
    ("hibernating", "r = 2"),
    ("lost", "true"),
)

# Value tier by net spend in the frequency window: share of customers at or below.
VALUE_TIERS: tuple[tuple[str, int], ...] = (("top", 90), ("high", 70), ("medium", 40))


def score_sql(better: str) -> str:
    """SQL for a 1-5 score of the expression `better` (larger is better)."""
    beaten = f"(rank() over (order by {better}) - 1)"  # customers strictly worse
    return f"1 + (5 * {beaten}) // count(*) over ()"


def tier_columns_sql(frequency_window_days: int) -> str:
    """The named segment and the four tiers, as select-list SQL both DuckDB and Spark run.

    Reads r, f, m, w (1-5 scores), spend, frequency, tenure, recency and overdue columns.
    """
    n = frequency_window_days
    seg = " ".join(f"when {cond} then '{name}'" for name, cond in SEGMENT_RULES)
    count_le = f"count(*) over (order by spend_{n}d range between unbounded preceding and current row)"
    tiers = " ".join(f"when 100 * {count_le} > {pct} * count(*) over () then '{name}'" for name, pct in VALUE_TIERS)
    return f"""case {seg} end as rfmw_segment,
            case when spend_{n}d <= 0 then 'none' {tiers} else 'low' end as value_tier,
            case when f >= 4 and tenure_days >= 365 then 'core'
                 when f >= 3 then 'regular'
                 when frequency_{n}d >= 1 then 'occasional'
                 else 'lapsed' end as loyalty_tier,
            case when frequency_90d > 0 then 'active'
                 when frequency_{n}d > 0 then 'passive'
                 else 'potential' end as activity,
            case when recency_days is null or overdue_ratio >= 3
                      or (overdue_ratio is null and recency_days > 180) then 'high'
                 when overdue_ratio >= 1.5 or (overdue_ratio is null and recency_days > 90) then 'medium'
                 else 'low' end as risk_tier"""


def segments_sql(frequency_window_days: int) -> str:
    """Select over relation `base` adding scores, segment names and tiers."""
    n = frequency_window_days
    return f"""
        select *,
            {tier_columns_sql(n)}
        from (select *,
                {score_sql('-coalesce(recency_days, 1000000)')} as r,
                {score_sql(f'frequency_{n}d')} as f,
                {score_sql(f'coalesce(monetary_avg_{n}d, 0)')} as m,
                {score_sql('width_categories')} as w
              from base)"""
