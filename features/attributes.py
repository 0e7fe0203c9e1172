"""Customer attributes (demographic bands, region, ...) as categorical features.

Every column of `customers` other than the id and `first_seen` becomes `attr_<name>`,
as text, so models treat it as a category whatever its source type.
"""

from __future__ import annotations

import re

_SAFE = re.compile(r"[^a-z0-9_]+")


def attribute_columns(customer_columns: list[str]) -> list[str]:
    """Source columns of `customers` that are attributes."""
    return [c for c in customer_columns if c not in ("customer_id", "first_seen")]


def feature_name(column: str) -> str:
    """`attr_` + the column name in lower snake case."""
    return "attr_" + _SAFE.sub("_", column.lower()).strip("_")


def attributes_sql(customer_columns: list[str]) -> str:
    """One row per customer of `customers`, attributes cast to text."""
    cols = [
        f'cast("{c}" as varchar) as {feature_name(c)}' for c in attribute_columns(customer_columns)
    ]
    return "select customer_id" + "".join(", " + c for c in cols) + " from customers"
