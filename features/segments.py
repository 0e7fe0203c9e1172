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


def tier_columns_sql(
    frequency_window_days: int, at_or_below: str | None = None, customers: str = "count(*) over ()"
) -> str:
    """The named segment and the four tiers, as select-list SQL both DuckDB and Spark run.

    Reads r, f, m, w (1-5 scores), spend, frequency, tenure, recency and overdue columns.

    Args:
        frequency_window_days: the window of the spend and frequency columns.
        at_or_below: an expression for the number of customers whose spend is at most
            this one's; default a window count.
        customers: an expression for the number of customers; default a window count.
    """
    n = frequency_window_days
    seg = " ".join(f"when {cond} then '{name}'" for name, cond in SEGMENT_RULES)
    count_le = at_or_below or f"count(*) over (order by spend_{n}d range between unbounded preceding and current row)"
    tiers = " ".join(f"when 100 * {count_le} > {pct} * {customers} then '{name}'" for name, pct in VALUE_TIERS)
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


def _customers_below_sql(value: str, at_or_below: bool = False) -> str:
    """Per distinct `value` over `base`: customers with a smaller value (or smaller or equal).

    The number strictly below is `rank() over (order by value) - 1`, the number at or
    below a `count(*)` window ordered by value with a range frame. Counting per distinct
    value and summing over the sorted values sorts only those (a few hundred for counts
    and days, two narrow columns for amounts) instead of every customer with all its
    columns, once per score. Nulls sort last, as in the windows; -0.0 and 0.0 are one
    value, as they are peers there.
    """
    frame = "current row" if at_or_below else "1 preceding"
    return f"""(select v, coalesce(sum(customers) over (order by v rows between unbounded preceding and {frame}), 0)::bigint as k
                from (select {value} as v, count(*) as customers from base group by all))"""


def segments_sql(frequency_window_days: int) -> str:
    """Select over relation `base` adding scores, segment names and tiers.

    Each score is 1 + (5 * customers strictly worse) // customers, the counts per distinct
    value joined back to each customer (`_customers_below_sql`); features.spark_sql
    computes the same with rank() windows.
    """
    n = frequency_window_days
    better = {
        "r": "-coalesce(recency_days, 1000000)",
        "f": f"frequency_{n}d",
        "m": f"coalesce(monetary_avg_{n}d, 0)",
        "w": "width_categories",
    }
    joins = "".join(
        f"\n              join {_customers_below_sql(expr)} below_{s} on below_{s}.v is not distinct from {expr}"
        for s, expr in better.items()
    )
    spend = f"spend_{n}d"
    scores = ", ".join(f"1 + (5 * below_{s}.k) // t.segment_customers as {s}" for s in better)
    return f"""
        select * exclude (segment_spend_at_or_below, segment_customers),
            {tier_columns_sql(n, at_or_below="segment_spend_at_or_below", customers="segment_customers")}
        from (select base.*, {scores}, below_spend.k as segment_spend_at_or_below, t.segment_customers
              from base
              cross join (select count(*) as segment_customers from base) t{joins}
              join {_customers_below_sql(spend, at_or_below=True)} below_spend
                on below_spend.v is not distinct from {spend})"""
