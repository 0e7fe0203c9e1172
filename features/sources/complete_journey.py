"""The Complete Journey (84.51 / dunnhumby, calendar 2017) -> all four canonical tables.

Reads, in place, from the `complete_journey` folder: transactions, products,
demographics, campaigns, campaign_descriptions and coupon_redemptions (`coupons` is not
needed: a redemption already names its campaign).

transactions, one row per product line of a basket (1,469,307):
- customer_id = household_id; order_id = basket_id; amount = sales_value (what the
  retailer received, after discounts); quantity = quantity (not units on FUEL / KIOSK
  lines: gallons and the like, as published).
- ts = transaction_timestamp, which is naive UTC, converted to America/New_York local
  time and stored naive (so days, hours and weekdays are the shopper's; the period is
  then exactly calendar 2017).
- category = the product's `department` (32 values) by default, or `product_category`
  (303) / `product_type` with `load(path, category=...)`. Lines whose product_id is not
  in `products` (4,836) have no category, and for product_category also lines of
  products with a null category (2,209 more: 7,045 lines in all; the data README's
  "7,045 lines join to a product with a null product_category" counts both kinds);
  the importer fills "unknown".
- Lost: store_id, product_id, retail_disc, coupon_disc, coupon_match_disc and week (the
  canonical table has no place for them), and the seconds' meaning (derived from the
  basket id by the packager).
- Nothing is rejected in the published file (no missing ids, no duplicates, nothing
  after 2017 local time); the checks still run.

customers, one row per household (2,469): every household seen in transactions, plus
any demographics household not seen there (none in the published files). Attributes are
the demographics bands as published: age, income, home_ownership, marital_status,
household_size, household_comp, kids_count; null for the 1,668 households without
demographics (and home_ownership / marital_status are null for some that have them).
No first_seen: the panel is a one-year window of longer-standing shoppers.

campaigns, one row per campaign (27): campaign_id; name = "campaign <id>" (the set has
no names); kind = campaign_type (Type A / B / C); start = start_date; end = end_date
(dates at midnight, as published; some windows start in 2016 or end in 2018).

contacts, one row per targeted household and campaign (6,589, from campaigns.parquet):
group = "treatment"; contacted_at = the campaign's start_date (the set has no mailing
date); responded = the household redeemed at least one coupon of that campaign;
responded_at = its first redemption date; revenue = null (coupon values are not in the
set; spend uplift can be computed from transactions). There is **no control group** in
this set: households that were not targeted were not randomly held out, so uplift
cannot be estimated from these contacts.

extracted_at is the end of calendar 2017 (the period in New York time).
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd

from features.importer import Conformed, ImportRefused, conform
from features.schema import CAMPAIGNS, CONTACTS, CUSTOMERS, TRANSACTIONS
from features.sources.publisher import (
    end_of_day,
    find_folder,
    read_publisher_file,
    row_identity,
    source_label,
)

NAME = "complete_journey"
FOLDER = "complete_journey"
COLUMNS = {
    "transactions.parquet": (
        "household_id",
        "store_id",
        "basket_id",
        "product_id",
        "quantity",
        "sales_value",
        "transaction_timestamp",
    ),
    "products.parquet": ("product_id", "department", "product_category", "product_type"),
    "demographics.parquet": (
        "household_id",
        "age",
        "income",
        "home_ownership",
        "marital_status",
        "household_size",
        "household_comp",
        "kids_count",
    ),
    "campaigns.parquet": ("campaign_id", "household_id"),
    "campaign_descriptions.parquet": ("campaign_id", "campaign_type", "start_date", "end_date"),
    "coupon_redemptions.parquet": ("household_id", "campaign_id", "redemption_date"),
}
FILES = tuple(COLUMNS)
CATEGORY_LEVELS = ("department", "product_category", "product_type")
LOCAL_TIME_ZONE = "America/New_York"
PERIOD_END = end_of_day(date(2017, 12, 31))
DEMOGRAPHICS = COLUMNS["demographics.parquet"][1:]


def load(path: Path, category: str = "department") -> list[Conformed]:
    """Read the Complete Journey tables and conform them to the four canonical tables.

    Args:
        path: the `complete_journey` folder.
        category: the products column used as the transaction category:
            department (coarse, default), product_category or product_type.

    Returns:
        The conformed transactions, customers, campaigns and contacts.
    """
    if category not in CATEGORY_LEVELS:
        raise ImportRefused(
            f"{NAME}: category {category!r} is not a products column; "
            f"use one of {', '.join(CATEGORY_LEVELS)}"
        )
    files = find_folder(path, data_set=NAME, folder=FOLDER, files=FILES)
    raw = {name: read_publisher_file(f, COLUMNS[name], data_set=NAME) for name, f in files.items()}
    label = {name: source_label(f) for name, f in files.items()}
    lines = raw["transactions.parquet"]
    descriptions = raw["campaign_descriptions.parquet"]
    return [
        transactions(lines, raw["products.parquet"], category, label["transactions.parquet"]),
        customers(lines, raw["demographics.parquet"], label["demographics.parquet"]),
        campaigns(descriptions, label["campaign_descriptions.parquet"]),
        contacts(
            raw["campaigns.parquet"],
            descriptions,
            raw["coupon_redemptions.parquet"],
            label["campaigns.parquet"],
        ),
    ]


def local_time(utc: pd.Series, zone: str = LOCAL_TIME_ZONE) -> pd.Series:
    """Naive UTC timestamps -> naive local wall-clock time in `zone`."""
    return utc.dt.tz_localize("UTC").dt.tz_convert(zone).dt.tz_localize(None)


def transactions(
    lines: pd.DataFrame, products: pd.DataFrame, category: str, label: str
) -> Conformed:
    """Basket lines with the product's category and local time -> canonical transactions."""
    by_product = products.drop_duplicates("product_id").set_index("product_id")[category]
    source = lines.assign(
        ts=local_time(lines["transaction_timestamp"]),
        category=lines["product_id"].map(by_product),
    )
    result = conform(
        source,
        TRANSACTIONS,
        mapping={"customer_id": "household_id", "order_id": "basket_id", "amount": "sales_value"},
        source=f"{label} + products.parquet",
        extracted_at=PERIOD_END,
        duplicate_key=row_identity(lines),
    )
    unknown_product = int((~lines["product_id"].isin(products["product_id"])).sum())
    no_category = int(source["category"].isna().sum())
    result.notes.append(
        f"category = products.{category}; {no_category:,} lines have none "
        f"({unknown_product:,} with a product_id missing from products) -> 'unknown'"
    )
    return result


def customers(lines: pd.DataFrame, demographics: pd.DataFrame, label: str) -> Conformed:
    """Every household seen in transactions or demographics, with its demographic bands."""
    seen = pd.Series(lines["household_id"].unique(), name="household_id")
    extra = demographics.loc[~demographics["household_id"].isin(seen), "household_id"]
    households = pd.concat([seen, extra], ignore_index=True).sort_values(ignore_index=True)
    source = pd.DataFrame({"household_id": households}).merge(
        demographics[["household_id", *DEMOGRAPHICS]], on="household_id", how="left"
    )
    result = conform(
        source,
        CUSTOMERS,
        mapping={"customer_id": "household_id"},
        source=f"transactions.parquet + {label}",
        extracted_at=PERIOD_END,
    )
    result.notes.append(
        f"{int(source['household_id'].isin(demographics['household_id']).sum()):,} of "
        f"{len(source):,} households have demographics"
    )
    return result


def campaigns(descriptions: pd.DataFrame, label: str) -> Conformed:
    """campaign_descriptions -> canonical campaigns (named by id: the set has no names)."""
    source = descriptions.assign(name="campaign " + descriptions["campaign_id"].astype("string"))
    return conform(
        source,
        CAMPAIGNS,
        mapping={"kind": "campaign_type", "start": "start_date", "end": "end_date"},
        source=label,
        extracted_at=PERIOD_END,
    )


def contacts(
    targeted: pd.DataFrame,
    descriptions: pd.DataFrame,
    redemptions: pd.DataFrame,
    label: str,
) -> Conformed:
    """Targeted households -> treatment contacts; a coupon redemption is the response."""
    first_redemption = (
        redemptions.groupby(["campaign_id", "household_id"], as_index=False)["redemption_date"]
        .min()
        .rename(columns={"redemption_date": "responded_at"})
    )
    starts = descriptions[["campaign_id", "start_date"]].rename(
        columns={"start_date": "contacted_at"}
    )
    source = (
        targeted.merge(starts, on="campaign_id", how="left")
        .merge(first_redemption, on=["campaign_id", "household_id"], how="left")
        .assign(group="treatment")
    )
    source["responded"] = source["responded_at"].notna()
    result = conform(
        source,
        CONTACTS,
        mapping={"customer_id": "household_id"},
        source=f"{label} + campaign_descriptions.parquet + coupon_redemptions.parquet",
        extracted_at=PERIOD_END,
        duplicate_key=row_identity(targeted),
    )
    pairs = first_redemption.merge(
        targeted, on=["campaign_id", "household_id"], how="left", indicator=True
    )
    untargeted = int((pairs["_merge"] == "left_only").sum())
    note = "no control group in this set (treatment rows only)"
    if untargeted:
        note += f"; {untargeted:,} redeeming household-campaign pairs were not targeted"
    result.notes.append(note)
    return result
