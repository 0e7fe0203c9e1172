"""iFood CRM case (Kaggle "marketing_campaign"; enrolments 2012-07-30 to 2014-06-29)
-> customers, campaigns, contacts. No transactions.

Reads `ifood_marketing_campaign/marketing_campaign.parquet` in place (2,240 customers).
The publisher calls it curated, partly mocked data: fine for schema and response-model
tests, not evidence of real behaviour.

customers, one row per ID (2,240):
- customer_id = ID; first_seen = Dt_Customer (enrolment date).
- Attributes (text, as the attribute features treat them):
  `birth_decade` from Year_Birth ("1940s" ... "1990s"; the 3 implausible years before
  1901 become "before 1940"), `education` = Education, `marital_status` = Marital_Status
  (junk values Alone / Absurd / YOLO kept as published), `income_band` from Income in
  steps of 20,000 ("0-20k" ... "80-100k", "100k+"; the 666,666 outlier is "100k+"; null
  for the 24 missing incomes), `kidhome`, `teenhome`, `complain` (0/1 and counts, as
  published).
- Lost: exact birth year and income (banded), and the behaviour columns Recency,
  Mnt* (2-year spend per category), Num* (purchases per channel) and NumWebVisitsMonth.
  They are snapshots with no dates, so they do not make a transaction log: one summary
  line per category would invent purchase dates and turn 2 years of spend into one
  order, giving wrong recency, frequency and monetary features. They are left out
  rather than faked (read them from the file for the README's R/F/M/W recipe), and
  they are not attributes because the attribute features would use them as
  categories. Z_CostContact / Z_Revenue are case constants (3 and 11) and are dropped.

campaigns: the five earlier campaigns `cmp1` ... `cmp5` (columns AcceptedCmp1..5) and
the final pilot `response` (column Response), kind "offer". The set has **no campaign
dates**. Nominal dates, chosen so that every customer had enrolled before every
campaign and the campaigns keep their order: campaign k (1..6, the pilot is 6) runs
for the k-th calendar month after the last enrolment date 2014-06-29, i.e. cmp1 =
2014-07-01..2014-07-31, ..., response = 2014-12-01..2014-12-31 (start and end at
midnight). The dates are placeholders: only their order is information.

contacts, one per customer and campaign (6 x 2,240 = 13,440): the file does not say
who received which campaign, only who accepted, so every customer is recorded as
contacted in every campaign, group "treatment" (there is no control group; a 0 may also
mean "not reached"); contacted_at = the campaign's nominal start; responded =
AcceptedCmpN / Response is 1; responded_at and revenue are null (the set has neither;
the case's constant Z_Revenue = 11 is an assumption, not a measurement).

extracted_at is the nominal end of the pilot, 2014-12-31 (end of that day), so that
enrolment dates and nominal contact dates are all within the file.
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.importer import Conformed, conform
from features.schema import CAMPAIGNS, CONTACTS, CUSTOMERS
from features.sources.publisher import (
    end_of_day,
    find_file,
    read_publisher_file,
    row_identity,
    source_label,
)

NAME = "ifood"
FOLDER = "ifood_marketing_campaign"
FILES = ("marketing_campaign.parquet",)
COLUMNS = (
    "ID",
    "Year_Birth",
    "Education",
    "Marital_Status",
    "Income",
    "Kidhome",
    "Teenhome",
    "Dt_Customer",
    "Complain",
    "AcceptedCmp1",
    "AcceptedCmp2",
    "AcceptedCmp3",
    "AcceptedCmp4",
    "AcceptedCmp5",
    "Response",
)
LAST_ENROLMENT = date(2014, 6, 29)
# campaign_id -> (publisher column, name); in campaign order
CAMPAIGN_COLUMNS = {
    "cmp1": ("AcceptedCmp1", "campaign 1"),
    "cmp2": ("AcceptedCmp2", "campaign 2"),
    "cmp3": ("AcceptedCmp3", "campaign 3"),
    "cmp4": ("AcceptedCmp4", "campaign 4"),
    "cmp5": ("AcceptedCmp5", "campaign 5"),
    "response": ("Response", "campaign 6 (pilot; the Response target)"),
}
CAMPAIGN_KIND = "offer"
INCOME_STEP = 20_000
INCOME_TOP = 100_000
FIRST_PLAUSIBLE_DECADE = 1940


def nominal_window(k: int) -> tuple[datetime, datetime]:
    """Campaign k (1-based): the k-th calendar month after the last enrolment date."""
    first = pd.Timestamp(LAST_ENROLMENT).to_period("M") + k
    return first.start_time.to_pydatetime(), first.end_time.normalize().to_pydatetime()


PERIOD_END = end_of_day(nominal_window(len(CAMPAIGN_COLUMNS))[1].date())


def load(path: Path) -> list[Conformed]:
    """Read the iFood file and conform it to `customers`, `campaigns` and `contacts`.

    Args:
        path: the `ifood_marketing_campaign` folder or its `marketing_campaign.parquet`.

    Returns:
        The conformed customers, campaigns and contacts.
    """
    file = find_file(path, data_set=NAME, folder=FOLDER, files=FILES)
    rows = read_publisher_file(file, COLUMNS, data_set=NAME)
    label = source_label(file)
    return [customers(rows, label), campaigns(label), contacts(rows, label)]


def birth_decade(year: pd.Series) -> pd.Series:
    """Year_Birth -> "1950s"; years before 1940 (all implausible here) -> "before 1940"."""
    decade = (year // 10 * 10).astype("Int64")
    text = decade.astype("string") + "s"
    return text.mask(decade < FIRST_PLAUSIBLE_DECADE, f"before {FIRST_PLAUSIBLE_DECADE}")


def income_band(income: pd.Series) -> pd.Series:
    """Income -> "20-40k" bands of 20,000; "100k+" at the top; null stays null."""
    low = (np.floor(income / INCOME_STEP) * INCOME_STEP).clip(upper=INCOME_TOP)
    k = (low // 1000).astype("Int64").astype("string")
    hi = ((low + INCOME_STEP) // 1000).astype("Int64").astype("string")
    band = k + "-" + hi + "k"
    return band.mask(low >= INCOME_TOP, f"{INCOME_TOP // 1000}k+")


def customers(rows: pd.DataFrame, label: str) -> Conformed:
    """One customer per ID with banded demographics and the complaint flag."""
    source = pd.DataFrame(
        {
            "customer_id": rows["ID"],
            "first_seen": rows["Dt_Customer"],
            "birth_decade": birth_decade(rows["Year_Birth"]),
            "education": rows["Education"],
            "marital_status": rows["Marital_Status"],
            "income_band": income_band(rows["Income"]),
            "kidhome": rows["Kidhome"],
            "teenhome": rows["Teenhome"],
            "complain": rows["Complain"],
        }
    )
    return conform(
        source,
        CUSTOMERS,
        source=label,
        extracted_at=PERIOD_END,
        duplicate_key=row_identity(rows),
    )


def campaigns(label: str) -> Conformed:
    """The six campaigns with their nominal, order-preserving windows."""
    records = []
    for k, (campaign_id, (column, name)) in enumerate(CAMPAIGN_COLUMNS.items(), start=1):
        start, end = nominal_window(k)
        records.append(
            {"campaign_id": campaign_id, "name": name, "kind": CAMPAIGN_KIND, "start": start,
             "end": end, "source_column": column}
        )
    return conform(pd.DataFrame(records), CAMPAIGNS, source=label, extracted_at=PERIOD_END)


def contacts(rows: pd.DataFrame, label: str) -> Conformed:
    """Every customer in every campaign, as treatment; AcceptedCmpN / Response is the response."""
    parts = []
    for k, (campaign_id, (column, _)) in enumerate(CAMPAIGN_COLUMNS.items(), start=1):
        parts.append(
            pd.DataFrame(
                {
                    "ID": rows["ID"],
                    "source_column": column,
                    "source_value": rows[column],
                    "campaign_id": campaign_id,
                    "contacted_at": nominal_window(k)[0],
                    "group": "treatment",
                    "responded": rows[column] == 1,
                }
            )
        )
    source = pd.concat(parts, ignore_index=True)
    return conform(
        source,
        CONTACTS,
        mapping={"customer_id": "ID"},
        source=label,
        extracted_at=PERIOD_END,
    )
