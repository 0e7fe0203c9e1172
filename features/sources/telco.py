"""IBM Telco customer churn sample (one fictional quarterly snapshot) -> customers.

Reads `telco_churn/telco_customer_churn.parquet` in place (7,043 customers).

customers, one row per customerID (7,043):
- customer_id = customerID.
- Attributes, renamed to snake case, values as published (text, like every
  attribute): gender, senior_citizen, partner, dependents, tenure (months),
  phone_service, multiple_lines, internet_service, online_security, online_backup,
  device_protection, tech_support, streaming_tv, streaming_movies, contract,
  paperless_billing, payment_method, monthly_charges, total_charges (null for the 11
  customers with tenure 0, whose source value was blank).
- Lost: **Churn**, the set's label. It is not loaded as an attribute because the
  attribute features would then feed the label to the churn model; the contract has no
  table for an externally given label (the service derives churn from transactions,
  which this set does not have). Read it from the file for a label-only benchmark.
- No first_seen: the snapshot has no dates (tenure is relative to an unknown date).

No other table: there are no transactions, campaigns or contacts. With no dates in
the set, nothing can be "after the file's end"; extracted_at is not passed.
"""

from __future__ import annotations

from pathlib import Path

from features.importer import Conformed, conform
from features.schema import CUSTOMERS
from features.sources.publisher import find_file, read_publisher_file, row_identity, source_label

NAME = "telco"
FOLDER = "telco_churn"
FILES = ("telco_customer_churn.parquet",)
ID_COLUMN = "customerID"
LABEL_COLUMN = "Churn"
# publisher column -> attribute name
ATTRIBUTES = {
    "gender": "gender",
    "SeniorCitizen": "senior_citizen",
    "Partner": "partner",
    "Dependents": "dependents",
    "tenure": "tenure",
    "PhoneService": "phone_service",
    "MultipleLines": "multiple_lines",
    "InternetService": "internet_service",
    "OnlineSecurity": "online_security",
    "OnlineBackup": "online_backup",
    "DeviceProtection": "device_protection",
    "TechSupport": "tech_support",
    "StreamingTV": "streaming_tv",
    "StreamingMovies": "streaming_movies",
    "Contract": "contract",
    "PaperlessBilling": "paperless_billing",
    "PaymentMethod": "payment_method",
    "MonthlyCharges": "monthly_charges",
    "TotalCharges": "total_charges",
}
COLUMNS = (ID_COLUMN, *ATTRIBUTES, LABEL_COLUMN)


def load(path: Path) -> list[Conformed]:
    """Read the Telco file and conform it to `customers` (attributes only, no label).

    Args:
        path: the `telco_churn` folder or its `telco_customer_churn.parquet`.

    Returns:
        The conformed customers.
    """
    file = find_file(path, data_set=NAME, folder=FOLDER, files=FILES)
    rows = read_publisher_file(file, COLUMNS, data_set=NAME)
    source = rows[[ID_COLUMN, *ATTRIBUTES]].rename(columns={ID_COLUMN: "customer_id", **ATTRIBUTES})
    result = conform(source, CUSTOMERS, source=source_label(file), duplicate_key=row_identity(rows))
    result.notes.append(
        f"the {LABEL_COLUMN} label is not loaded (it would leak into the attribute features)"
    )
    return [result]
