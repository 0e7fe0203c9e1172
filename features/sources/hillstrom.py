"""MineThatData e-mail test (Hillstrom, released 2008-03-20) -> customers, campaigns, contacts.

Reads `hillstrom_email/hillstrom.parquet` in place (64,000 customers). The set has no
customer id, no dates and no transaction log.

customers, one row per file row (64,000):
- customer_id = "H" + the 1-based row number, zero-padded ("H00001" ... "H64000"). The
  row is the only identity: 6,562 rows equal another row in every column and are
  distinct customers (coarse attributes), so duplicates are judged on the row number
  and none is rejected.
- Attributes, as published (text, like every attribute): recency (months since the
  last purchase), history_segment, history (dollars in the past year), mens, womens,
  zip_code (including the source's spelling "Surburban"), newbie, channel.
- The treatment and outcomes (segment, visit, conversion, spend) are **not**
  attributes: the attribute features would use them as inputs of the very models they
  label. They go to contacts.
- No first_seen (not in the set).

campaigns: `mens_email` and `womens_email`, kind "email". The set has no dates; the
nominal send date is 2008-03-06, two weeks before the public release (2008-03-20), and
each campaign ends 2008-03-19, so the 2-week outcome window closes before the release.
Only "both e-mails went out at the same time" is information.

contacts (85,306 rows):
- "Mens E-Mail" rows -> group "treatment" of mens_email (21,307);
  "Womens E-Mail" rows -> "treatment" of womens_email (21,387);
  "No E-Mail" rows (21,306) -> group "control" of **both** campaigns, since the one
  randomised hold-out is the control of each e-mail. So mens_email has 42,613 contacts
  and womens_email 42,693; a control customer appears once per campaign.
- contacted_at = the nominal send date; responded = visit (site visit in the 2 weeks);
  revenue = spend (0 for customers who did not buy); responded_at = null (the day of
  the visit is not in the set).
- conversion is not a separate column: in this file conversion = 1 exactly when spend
  > 0, so it is `revenue > 0` (and every conversion also visited).

extracted_at is the release date 2008-03-20 (end of that day).
"""

from __future__ import annotations

from datetime import date, datetime
from pathlib import Path

import numpy as np
import pandas as pd

from features.importer import Conformed, conform
from features.schema import CAMPAIGNS, CONTACTS, CUSTOMERS
from features.sources.publisher import end_of_day, find_file, read_publisher_file, source_label

NAME = "hillstrom"
FOLDER = "hillstrom_email"
FILES = ("hillstrom.parquet",)
ATTRIBUTES = (
    "recency",
    "history_segment",
    "history",
    "mens",
    "womens",
    "zip_code",
    "newbie",
    "channel",
)
OUTCOMES = ("segment", "visit", "conversion", "spend")
COLUMNS = ATTRIBUTES + OUTCOMES
RELEASED = date(2008, 3, 20)
SENT = datetime(2008, 3, 6)
WINDOW_END = datetime(2008, 3, 19)
PERIOD_END = end_of_day(RELEASED)
ID_PREFIX = "H"
ID_WIDTH = 5
# segment value -> campaign_id it treats; "No E-Mail" is the control of every campaign
TREATMENTS = {"Mens E-Mail": "mens_email", "Womens E-Mail": "womens_email"}
CONTROL_SEGMENT = "No E-Mail"
CAMPAIGN_NAMES = {"mens_email": "Mens E-Mail", "womens_email": "Womens E-Mail"}


def load(path: Path) -> list[Conformed]:
    """Read the Hillstrom file and conform it to `customers`, `campaigns` and `contacts`.

    Args:
        path: the `hillstrom_email` folder or its `hillstrom.parquet`.

    Returns:
        The conformed customers, campaigns and contacts.
    """
    file = find_file(path, data_set=NAME, folder=FOLDER, files=FILES)
    rows = read_publisher_file(file, COLUMNS, data_set=NAME)
    label = source_label(file)
    ids = customer_ids(len(rows), rows.index)
    return [customers(rows, ids, label), campaigns(label), contacts(rows, ids, label)]


def customer_ids(n: int, index: pd.Index) -> pd.Series:
    """"H" + the 1-based row number, zero-padded: the file's only identity for a customer."""
    numbers = pd.Series(np.arange(1, n + 1), index=index).astype("string")
    return ID_PREFIX + numbers.str.zfill(ID_WIDTH)


def customers(rows: pd.DataFrame, ids: pd.Series, label: str) -> Conformed:
    """One customer per row, with the pre-test attributes (not the treatment or outcomes)."""
    source = rows[list(ATTRIBUTES)].copy()
    source.insert(0, "customer_id", ids)
    return conform(
        source,
        CUSTOMERS,
        source=label,
        extracted_at=PERIOD_END,
        duplicate_key=ids,  # identical rows are distinct customers
    )


def campaigns(label: str) -> Conformed:
    """The two e-mails, sent together on the nominal date."""
    source = pd.DataFrame(
        {
            "campaign_id": list(CAMPAIGN_NAMES),
            "name": list(CAMPAIGN_NAMES.values()),
            "kind": "email",
            "start": SENT,
            "end": WINDOW_END,
        }
    )
    return conform(source, CAMPAIGNS, source=label, extracted_at=PERIOD_END)


def contacts(rows: pd.DataFrame, ids: pd.Series, label: str) -> Conformed:
    """Treated rows to their e-mail; control rows to both e-mails; visit is the response."""
    publisher = rows.assign(customer_id=ids, file_row=np.arange(1, len(rows) + 1))
    parts = []
    for segment, campaign_id in TREATMENTS.items():
        treated = publisher[publisher["segment"] == segment]
        control = publisher[publisher["segment"] == CONTROL_SEGMENT]
        parts.append(treated.assign(campaign_id=campaign_id, group="treatment"))
        parts.append(control.assign(campaign_id=campaign_id, group="control"))
    source = pd.concat(parts, ignore_index=True)
    source = source.assign(
        contacted_at=SENT,
        responded=source["visit"] == 1,
        revenue=source["spend"],
    )
    result = conform(
        source,
        CONTACTS,
        source=label,
        extracted_at=PERIOD_END,
        duplicate_key=source["campaign_id"] + "/" + source["customer_id"],
    )
    unknown = int((~rows["segment"].isin([*TREATMENTS, CONTROL_SEGMENT])).sum())
    if unknown:
        result.notes.append(f"{unknown:,} rows have an unknown segment and are not contacts")
    result.notes.append(
        f"the {int((rows['segment'] == CONTROL_SEGMENT).sum()):,} '{CONTROL_SEGMENT}' customers "
        "are the control group of both campaigns"
    )
    return result
