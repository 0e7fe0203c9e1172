"""CDNOW purchase histories (Fader & Hardie; 1997-01-01 to 1998-06-30) -> transactions.

Reads `cdnow/cdnow_master.parquet` (the folder's default: 69,659 purchases of the 23,570
customers of the Q1 1997 cohort) or, when that file is passed, `cdnow_sample.parquet`
(Hardie's 1/10 sample: 6,919 purchases, 2,357 customers). Read in place.

transactions, one row per purchase record:
- customer_id = customer_id (the master's 5-digit id, in both files, so the sample
  joins the master); ts = date (a day, stored at midnight); amount = dollar_value;
  quantity = number_of_cds.
- category = "cds" for every row: the set has no categories, so width is 1 for all.
- No order_id: the importer makes an order a customer-day, which is the "one purchase
  occasion per day" convention of the BTYD papers.
- Rejected: exact duplicate rows (255 in the master, 21 in the sample), judged on the
  publisher's row. Hardie keeps them as separate transactions (same customer, day, CDs
  and value); the input contract rejects exact duplicates, so their CDs and dollars are
  missing from `transactions` and kept in `rejected_transactions`. Because an order is a
  customer-day, the day's order still exists (its first copy loads), so recency and
  frequency are unchanged; only that day's spend and CD count are lower.
- Kept: the 80 master rows with dollar_value 0.
- Lost: the sample's `sample_id` (Hardie's 0001-2357 numbering inside the sample).

No customers table: the set has no attributes, and the first purchase (the cohort
entry) is the first transaction.

extracted_at is the end of the documented period, 1998-06-30 (end of that day).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

from features.importer import Conformed, conform
from features.schema import TRANSACTIONS
from features.sources.publisher import (
    end_of_day,
    find_file,
    read_publisher_file,
    row_identity,
    source_label,
)

NAME = "cdnow"
FOLDER = "cdnow"
FILES = ("cdnow_master.parquet", "cdnow_sample.parquet")
COLUMNS = ("customer_id", "date", "number_of_cds", "dollar_value")
SAMPLE_COLUMNS = ("customer_id", "sample_id", "date", "number_of_cds", "dollar_value")
PERIOD_END = end_of_day(date(1998, 6, 30))
CATEGORY = "cds"

MAPPING = {"ts": "date", "amount": "dollar_value", "quantity": "number_of_cds"}


def load(path: Path) -> list[Conformed]:
    """Read the CDNOW master (folder or file) or sample file and conform it to `transactions`.

    Args:
        path: the `cdnow` folder (the master file), `cdnow_master.parquet` or
            `cdnow_sample.parquet`.

    Returns:
        The conformed transactions.
    """
    file = find_file(path, data_set=NAME, folder=FOLDER, files=FILES)
    columns = SAMPLE_COLUMNS if file.name == "cdnow_sample.parquet" else COLUMNS
    purchases = read_publisher_file(file, columns, data_set=NAME)
    result = conform(
        purchases.assign(category=CATEGORY),
        TRANSACTIONS,
        mapping=MAPPING,
        source=source_label(file),
        extracted_at=PERIOD_END,
        duplicate_key=row_identity(purchases),
    )
    duplicates = result.reject_counts.get("exact duplicate", 0)
    if duplicates:
        result.notes.append(
            f"{duplicates:,} exact duplicate rows rejected by the contract; Hardie counts "
            "them as separate purchases (see rejected_transactions)"
        )
    return [result]
