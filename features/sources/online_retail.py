"""UCI Online Retail (UK gift-ware, 2010-12-01 to 2011-12-09) -> transactions, customers.

Reads `online_retail/online_retail.parquet` in place (541,909 invoice lines).

transactions, one row per invoice line:
- customer_id = CustomerID; order_id = InvoiceNo; ts = InvoiceDate (UK local time, as
  published); quantity = Quantity.
- amount = Quantity x UnitPrice, rounded to 6 decimals (only to drop float noise such
  as 15.299999999999999; prices have at most 3 decimals). Lines of cancelled (`C...`)
  invoices have a negative Quantity, so they load as returns with a negative amount.
- category = StockCode, as published. The set has no product category, so width is the
  number of distinct stock codes (3,684 among attributed lines; codes differing only in
  letter case, e.g. `85123A`/`85123a`, count as different, as the publisher wrote them).
  Non-product codes (POST, M, BANK CHARGES, ...) are categories like any other.
- Rejected: lines with no CustomerID (135,080, about 25%: they cannot be attributed) and
  exact duplicate lines, judged on the publisher's 8 columns (5,268 in the file; those
  without a CustomerID are counted under the missing id). Kept: zero-price lines,
  returns and the two negative-price bad-debt adjustments (those have no customer, so
  they end up rejected for the missing id anyway).
- Lost: Description (free text) and UnitPrice as a separate value (amount / quantity
  gives it back except on zero-quantity lines, of which there are none).

customers, one row per CustomerID (4,372):
- customer_id = CustomerID; attribute `country` = Country. Eight customers have lines in
  two countries; they get the country of most of their lines (ties: of the later line).
- No first_seen: the file starts on 2010-12-01 and many customers bought before that,
  so the first line seen is not when the customer started.

extracted_at is the documented end of the period, 2011-12-09 12:50 (the last invoice).
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd

from features.importer import Conformed, conform
from features.schema import CUSTOMERS, TRANSACTIONS
from features.sources.publisher import find_file, read_publisher_file, row_identity, source_label

NAME = "online_retail"
FOLDER = "online_retail"
FILES = ("online_retail.parquet",)
COLUMNS = (
    "InvoiceNo",
    "StockCode",
    "Description",
    "Quantity",
    "InvoiceDate",
    "UnitPrice",
    "CustomerID",
    "Country",
)
PERIOD_END = datetime(2011, 12, 9, 12, 50)

TRANSACTION_MAPPING = {
    "customer_id": "CustomerID",
    "order_id": "InvoiceNo",
    "ts": "InvoiceDate",
    "category": "StockCode",
    "quantity": "Quantity",
}


def load(path: Path) -> list[Conformed]:
    """Read the Online Retail file and conform it to `transactions` and `customers`.

    Args:
        path: the `online_retail` folder or its `online_retail.parquet`.

    Returns:
        The conformed transactions and customers.
    """
    file = find_file(path, data_set=NAME, folder=FOLDER, files=FILES)
    lines = read_publisher_file(file, COLUMNS, data_set=NAME)
    label = source_label(file)
    return [transactions(lines, label), customers(lines, label)]


def line_amount(quantity: pd.Series, unit_price: pd.Series) -> pd.Series:
    """Quantity x UnitPrice, negative on returns; rounded only to drop float noise."""
    return (quantity.astype("float64") * unit_price.astype("float64")).round(6)


def transactions(lines: pd.DataFrame, label: str) -> Conformed:
    """Invoice lines -> canonical transactions (missing ids and exact duplicates rejected)."""
    source = lines.assign(amount=line_amount(lines["Quantity"], lines["UnitPrice"]))
    return conform(
        source,
        TRANSACTIONS,
        mapping=TRANSACTION_MAPPING,
        source=label,
        extracted_at=PERIOD_END,
        duplicate_key=row_identity(lines),
    )


def customer_countries(lines: pd.DataFrame) -> pd.DataFrame:
    """One row per CustomerID: the country of most of its lines (ties: the later line)."""
    known = lines.loc[lines["CustomerID"].notna(), ["CustomerID", "Country", "InvoiceDate"]]
    per_country = known.groupby(["CustomerID", "Country"], as_index=False, dropna=False).agg(
        lines=("InvoiceDate", "size"), last=("InvoiceDate", "max")
    )
    best = per_country.sort_values(
        ["CustomerID", "lines", "last"], ascending=[True, False, False], kind="stable"
    ).drop_duplicates("CustomerID")
    return best[["CustomerID", "Country"]].reset_index(drop=True)


def customers(lines: pd.DataFrame, label: str) -> Conformed:
    """Distinct CustomerIDs with their country as the one attribute."""
    countries = customer_countries(lines)
    source = countries.rename(columns={"CustomerID": "customer_id", "Country": "country"})
    result = conform(source, CUSTOMERS, source=label, extracted_at=PERIOD_END)
    known = lines.loc[lines["CustomerID"].notna()]
    several = int((known.groupby("CustomerID")["Country"].nunique() > 1).sum())
    result.notes.append(
        f"{several:,} customers have lines in more than one country; "
        "each keeps the country of most of its lines"
    )
    return result
