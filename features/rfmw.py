"""RFMW and order-history features, as named SQL expressions over orders before the as-of.

Definitions (an order is a purchase when its net amount is > 0; an order's day is the
day of its first line; "age" is whole days from that day to the as-of date, so the day
before the as-of date has age 1):

- recency_days: age of the last purchase.
- frequency_<N>d: purchases with age <= N.
- monetary_avg_<N>d: net amount of those purchases / their number (null when none).
- spend_<N>d: net amount of all orders (returns included) with age <= N.
- width_categories: distinct categories of lines with a positive amount.
- frequency_trend / spend_trend: (last T days - prior T days) / (sum of both), in
  [-1, 1]; null when both are zero.
- tenure_days: age of the first purchase. purchases_total: all purchases.
- gap_mean_days / gap_median_days / gap_std_days: gaps between consecutive distinct
  purchase days; overdue_ratio = recency_days / gap_median_days (the usual gap).
- repeat_purchase_days: distinct purchase days after the first (the BTYD "frequency";
  tenure_days is the BTYD "T" and tenure_days - recency_days its "recency", in days).
- returns_share_<N>d: amount returned / amount bought on lines with age <= N.
- last_year_purchases / last_year_spend (`[features] horizon_features`): purchases and
  net spend in the horizon-long window a year before the label window, [as_of - 365,
  as_of - 365 + horizon), i.e. ages 366 - horizon .. 365; null when the data holds less
  than 365 days before the as-of (the window would be cut short). With horizon_features
  the horizon's length is also one of the frequency / monetary / spend windows.
- cutoff_month, days_to_holiday (`[features] season_features`, `features.season`): the
  same for every customer of a cutoff.
- history_days: days from the first transaction line of anyone before the as-of to
  the as-of: how much history the data holds (the same for every customer). Not a
  model feature; reason texts use it to say "in the last 92 days of history" when a
  window is longer than the data.

How the steps are laid out (bench/results/features.md times them): the lines are
aggregated once, into orders, and every customer-level step reads those orders. Width
rides along: each category gets a bit (the 63 most common; see `categories_sql`, which
reads only the category column), each order ORs the bits of its bought lines, and a
customer's width is the number of bits set, plus a count of the distinct rarer
categories when a data set has more than 63. That replaces a customer x category
aggregation as large as the orders one. The gap step sorts purchase orders, not
distinct days: two purchases on one day give a gap of 0, which is dropped, so the gaps
are exactly those between consecutive distinct days. The results are the same as the
plain formulation's (features.spark_sql keeps it), bit for bit.
"""

from __future__ import annotations

from collections.abc import Callable

from propensity.config import FeaturesConfig

from features.season import season_columns
from features.windows import before_as_of, days_before_as_of

YEAR_DAYS = 365


def lines_before_sql() -> str:
    """Transaction lines visible to features."""
    return f"select customer_id, order_id, ts, amount, category from transactions where {before_as_of('ts')}"


# Categories that get a bit of their own in an order's category mask (a BIGINT: 63 bits
# without the sign bit).
MASK_BITS = 63


def categories_sql() -> str:
    """Each category seen before the as-of with its bit: the 63 most common get one, the rest 0.

    An internal code for counting distinct categories, not a feature: any assignment
    gives the same widths; giving the bits to the most common categories keeps the
    rarer-category step (which groups customer x category, as the plain way does) small.
    A null category is a category of its own, as in a GROUP BY.
    """
    return f"""
        select category,
               case when code < {MASK_BITS} then 1::bigint << code::integer else 0::bigint end as category_bit
        from (select category, row_number() over (order by count(*) desc, category) - 1 as code
              from transactions where {before_as_of('ts')} group by category)"""


def lines_coded_sql() -> str:
    """Lines before the as-of with their category's bit."""
    return """
        select l.customer_id, l.order_id, l.ts, l.amount, l.category, c.category_bit
        from lines_before l join categories c on l.category is not distinct from c.category"""


def orders_sql() -> str:
    """One row per order before the as-of: day, age, net, bought and returned amounts, category mask.

    The net is rounded to 6 decimals: lines that cancel exactly (a full return on the
    same order) can sum to +-1e-15 in floating point, whose sign would otherwise decide
    whether the order counts as a purchase, differently by summation order.
    `min(ts::date)` is `min(ts)::date` (the cast keeps the order) and aggregates faster.
    """
    return f"""
        select customer_id, order_id,
               min(ts::date) as day,
               {days_before_as_of('min(ts::date)')} as age,
               round(sum(amount), 6) as net,
               round(coalesce(sum(amount) filter (where amount > 0), 0), 6) as bought,
               round(coalesce(-sum(amount) filter (where amount < 0), 0), 6) as returned,
               bit_or(category_bit) filter (where amount > 0) as category_mask
        from lines_coded group by customer_id, order_id"""


def rare_categories_sql() -> str:
    """Distinct bought categories without a bit of their own, per customer (none when <= 63 categories)."""
    return """
        select customer_id, count(*) as rare_categories
        from (select customer_id, category from lines_coded where amount > 0 and category_bit = 0
              group by customer_id, category)
        group by customer_id"""


def gaps_sql() -> str:
    """Gap statistics over consecutive distinct purchase days.

    Purchase orders sorted by day within a customer; a gap of 0 (a second purchase the
    same day) is dropped, which leaves exactly the gaps between distinct days.
    `list_median(list(gap))` rather than `median(gap)`: the median aggregate took about
    4x the CPU time at 50M lines (and once spilled ~20 GB there; bench/).
    The standard deviation is rounded to 9 decimals: DuckDB's parallel aggregation
    otherwise changes its last bit from run to run.
    """
    return """
        select customer_id,
               avg(gap)::double as gap_mean_days,
               list_median(list(gap))::double as gap_median_days,
               round(stddev_samp(gap), 9)::double as gap_std_days,
               count(*) as repeat_purchase_days
        from (select customer_id,
                     date_diff('day', lag(day) over (partition by customer_id order by day), day) as gap
              from orders where net > 0)
        where gap > 0
        group by customer_id"""


def money(expr: str) -> str:
    """A sum of amounts rounded to 6 decimals.

    DuckDB adds floating-point partial sums in whatever order its threads finish, so an
    unrounded sum can differ in the 12th digit from run to run; downstream, LightGBM can
    then choose a different split. Rounding makes features, and so models, repeatable.
    """
    return f"round({expr}, 6)"


def order_features_sql(cfg: FeaturesConfig) -> str:
    """Recency, frequency, monetary, spend, trend, tenure and returns per customer."""
    n = cfg.frequency_window_days
    t = cfg.trend_window_days
    windows = window_days(cfg)
    parts = [
        "min(age) filter (where net > 0) as recency_days",
        "max(age) filter (where net > 0) as tenure_days",
        "count(*) filter (where net > 0) as purchases_total",
    ]
    for w in windows:
        parts += [
            f"count(*) filter (where net > 0 and age <= {w}) as frequency_{w}d",
            f"{money(f'sum(net) filter (where net > 0 and age <= {w})')} / count(*) filter (where net > 0 and age <= {w}) as monetary_avg_{w}d",
            f"{money(f'coalesce(sum(net) filter (where age <= {w}), 0)')} as spend_{w}d",
        ]
    last_f = f"count(*) filter (where net > 0 and age <= {t})"
    prior_f = f"count(*) filter (where net > 0 and age > {t} and age <= {2 * t})"
    last_s = money(f"coalesce(sum(net) filter (where net > 0 and age <= {t}), 0)")
    prior_s = money(f"coalesce(sum(net) filter (where net > 0 and age > {t} and age <= {2 * t}), 0)")
    parts += [
        f"({last_f} - {prior_f})::double / nullif({last_f} + {prior_f}, 0) as frequency_trend",
        f"({last_s} - {prior_s}) / nullif({last_s} + {prior_s}, 0) as spend_trend",
        f"{money(f'sum(returned) filter (where age <= {n})')} / nullif({money(f'sum(bought) filter (where age <= {n})')}, 0) as returns_share_{n}d",
    ]
    if cfg.horizon_features:
        lo = last_year_first_age(cfg.horizon_days)
        parts += [
            f"count(*) filter (where net > 0 and age between {lo} and {YEAR_DAYS}) as last_year_purchases",
            f"{money(f'coalesce(sum(net) filter (where age between {lo} and {YEAR_DAYS}), 0)')} as last_year_spend",
        ]
    # distinct categories with a bit of their own (see categories_sql); bit_count is a TINYINT
    parts.append("bit_count(bit_or(category_mask))::bigint as common_categories")
    return "select customer_id,\n  " + ",\n  ".join(parts) + "\nfrom orders group by customer_id"


def window_days(cfg: FeaturesConfig) -> list[int]:
    """The windows of frequency_<N>d, monetary_avg_<N>d and spend_<N>d, shortest first.

    90 days is also the activity window of the segments, so it is always built; with
    horizon_features, so is the horizon's length.
    """
    extra = {cfg.horizon_days} if cfg.horizon_features else set()
    return sorted({*cfg.short_windows_days, cfg.frequency_window_days, 90, *extra})


def last_year_first_age(horizon_days: int) -> int:
    """The youngest age in the window a year before the label window (ages up to 365)."""
    return max(1, YEAR_DAYS + 1 - horizon_days)


LAST_YEAR_FEATURES = ("last_year_purchases", "last_year_spend")


def rfmw_tail_sql(cfg: FeaturesConfig, as_of: str, days: Callable[[str, str], str]) -> str:
    """The select items after history_days in the `rfmw` step: last-year and season columns.

    Args:
        cfg: which of them are built.
        as_of: the as-of date as an SQL DATE expression.
        days: the engine's whole days from one date expression to another.
    """
    items = []
    if cfg.horizon_features:
        items += [f"case when h.history_days >= {YEAR_DAYS} then o.{c} end as {c}" for c in LAST_YEAR_FEATURES]
    items += [f"{expr} as {name}" for name, expr in season_columns(cfg, as_of, days)]
    return "".join(f",\n                   {item}" for item in items)


def rfmw_ctes(cfg: FeaturesConfig) -> list[tuple[str, str]]:
    """Named SQL steps that end in `rfmw`: one row per customer with lines before as-of.

    Every customer with a line before the as-of has an order, so `order_features` holds
    exactly those customers; the first line's day is the first order's day.
    """
    last_year = "".join(f", {c}" for c in LAST_YEAR_FEATURES) if cfg.horizon_features else ""
    tail = rfmw_tail_sql(cfg, "$as_of::date", lambda a, b: f"date_diff('day', {a}, {b})")
    return [
        ("lines_before", lines_before_sql()),
        ("categories", categories_sql()),
        ("lines_coded", lines_coded_sql()),
        ("orders", orders_sql()),
        ("order_features", order_features_sql(cfg)),
        ("rare_categories", rare_categories_sql()),
        ("gaps", gaps_sql()),
        (
            "rfmw",
            f"""
            select o.customer_id, o.* exclude (customer_id, common_categories{last_year}),
                   coalesce(o.common_categories, 0) + coalesce(r.rare_categories, 0) as width_categories,
                   g.gap_mean_days, g.gap_median_days, g.gap_std_days,
                   coalesce(g.repeat_purchase_days, 0) as repeat_purchase_days,
                   o.recency_days / g.gap_median_days as overdue_ratio,
                   h.history_days{tail}
            from order_features o
            cross join (select max(age) as history_days from orders) h
            left join rare_categories r using (customer_id)
            left join gaps g using (customer_id)""",
        ),
    ]
