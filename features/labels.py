"""Labels from the horizon that starts at the as-of date: [as_of, as_of + horizon).

- label_churn: 1 when the customer made no purchase (order with net amount > 0) there.
- label_value: net amount of all lines there (returns included).
- label_purchases: purchases there.
- label_contacted / label_response: contacted in a campaign there; responded to any
  such contact (null when not contacted).
"""

from __future__ import annotations

from features.windows import in_horizon


def labels_ctes() -> list[tuple[str, str]]:
    """Named SQL steps that end in `labels` (customers with activity in the horizon)."""
    return [
        (
            "orders_after",
            f"""
            select customer_id, order_id, round(sum(amount), 6) as net
            from transactions where {in_horizon('ts')}
            group by customer_id, order_id""",
        ),
        (
            "spend_after",
            """
            select customer_id, round(sum(net), 6) as label_value,
                   count(*) filter (where net > 0) as label_purchases
            from orders_after group by customer_id""",
        ),
        (
            "contacts_after",
            f"""
            select customer_id, 1 as label_contacted, max(responded::int) as label_response
            from contacts where {in_horizon('contacted_at')} and "group" = 'treatment'
            group by customer_id""",
        ),
    ]


def label_select() -> str:
    """Label columns (after `label_joins`)."""
    return """
        case when coalesce(sa.label_purchases, 0) = 0 then 1 else 0 end as label_churn,
        coalesce(sa.label_value, 0) as label_value,
        coalesce(sa.label_purchases, 0) as label_purchases,
        coalesce(ca.label_contacted, 0) as label_contacted,
        ca.label_response
    """


def label_joins(population: str) -> str:
    """Joins that bring the label steps onto `population`."""
    return (
        f" left join spend_after sa on sa.customer_id = {population}.customer_id"
        f" left join contacts_after ca on ca.customer_id = {population}.customer_id"
    )
