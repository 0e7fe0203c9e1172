"""The input contract: canonical tables, their columns and the values they allow.

Everything that enters the warehouse (a user's file, a public data set, the synthetic
sample world) is checked against these definitions by `features.importer`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

Kind = Literal["id", "timestamp", "number", "integer", "text", "bool"]


@dataclass(frozen=True)
class Column:
    """One canonical column: its name, its kind and whether a table needs it."""

    name: str
    kind: Kind
    required: bool = True
    allowed: tuple[str, ...] | None = None  # closed set of text values
    value_range: tuple[int, int] | None = None  # inclusive bounds for integers
    fill: str | None = None  # nulls become this value instead of rejecting the row


@dataclass(frozen=True)
class Table:
    """A canonical table: its columns and whether extra source columns are kept."""

    name: str
    columns: tuple[Column, ...]
    keep_extra_columns: bool = False
    description: str = ""
    timestamp_columns_checked_for_future: tuple[str, ...] = field(default=())

    @property
    def required(self) -> list[str]:
        return [c.name for c in self.columns if c.required]

    @property
    def names(self) -> list[str]:
        return [c.name for c in self.columns]

    def column(self, name: str) -> Column:
        for c in self.columns:
            if c.name == name:
                return c
        raise KeyError(name)


NEED_LEVELS = ("requirement", "want", "pain")
DIMENSIONS = ("product", "price", "service", "experience")
ORIENTATIONS = ("price", "value")
STYLES = ("dominant", "analytical", "social", "amiable")
GROUPS = ("treatment", "control")

TRANSACTIONS = Table(
    "transactions",
    (
        Column("customer_id", "id"),
        Column("order_id", "id", required=False),
        Column("ts", "timestamp"),
        Column("amount", "number"),
        Column("category", "text", fill="unknown"),
        Column("quantity", "number", required=False),
        Column("channel", "text", required=False),
    ),
    description="one row per order line or per order; negative amount = return",
    timestamp_columns_checked_for_future=("ts",),
)

CUSTOMERS = Table(
    "customers",
    (
        Column("customer_id", "id"),
        Column("first_seen", "timestamp", required=False),
    ),
    keep_extra_columns=True,  # every other column is a customer attribute
    description="one row per customer; extra columns are attributes (bands, region, ...)",
    timestamp_columns_checked_for_future=("first_seen",),
)

NEEDS_EVALUATIONS = Table(
    "needs_evaluations",
    (
        Column("customer_id", "id"),
        Column("evaluated_at", "timestamp"),
        Column("need_level", "text", allowed=NEED_LEVELS),
        Column("dimension", "text", allowed=DIMENSIONS),
        Column("urgency", "integer", value_range=(1, 5)),
        Column("importance", "integer", value_range=(1, 5)),
        Column("solution_fit", "integer", value_range=(1, 5)),
        Column("orientation", "text", allowed=ORIENTATIONS),
        Column("style", "text", allowed=STYLES),
        Column("complaint", "bool"),
    ),
    description="structured customer-needs assessments recorded by a sales team",
    timestamp_columns_checked_for_future=("evaluated_at",),
)

CAMPAIGNS = Table(
    "campaigns",
    (
        Column("campaign_id", "id"),
        Column("name", "text"),
        Column("kind", "text"),
        Column("start", "timestamp"),
        Column("end", "timestamp"),
    ),
    description="one row per campaign",
)

CONTACTS = Table(
    "contacts",
    (
        Column("campaign_id", "id"),
        Column("customer_id", "id"),
        Column("contacted_at", "timestamp"),
        Column("group", "text", allowed=GROUPS),
        Column("responded", "bool"),
        Column("responded_at", "timestamp", required=False),
        Column("revenue", "number", required=False),
    ),
    description="one row per customer contacted (or held out) in a campaign",
    timestamp_columns_checked_for_future=("contacted_at",),
)

TABLES: dict[str, Table] = {
    t.name: t for t in (TRANSACTIONS, CUSTOMERS, NEEDS_EVALUATIONS, CAMPAIGNS, CONTACTS)
}


def table(name: str) -> Table:
    """Return the canonical table called `name`, or fail with the allowed names."""
    try:
        return TABLES[name]
    except KeyError:
        raise ValueError(
            f"unknown table {name!r}; choose one of: {', '.join(TABLES)}"
        ) from None
