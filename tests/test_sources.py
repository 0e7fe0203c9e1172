"""Adapters for the public data sets: counts reconciled with the data README.

Tests marked `public_data` read ../shared/data in place (skipped when it is absent) and
compare each adapter's counts with the README's documented figures and with counts
computed independently from the raw file with pandas. The unmarked tests use tiny
hand-made files in the publishers' layouts.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import pandas as pd
import pytest

from features.importer import ImportRefused
from features.sources import ADAPTERS, import_public
from features.sources import complete_journey, hillstrom, ifood, online_retail


def count(warehouse, sql: str, params: list | None = None) -> int:
    return int(warehouse.query(sql, params).iloc[0, 0])


def by_table(results) -> dict:
    return {r.table.name: r for r in results}


def assert_reconciled(result) -> None:
    """Every row read is either loaded or rejected, and rejected rows carry a reason."""
    assert len(result.accepted) + len(result.rejected) == result.rows_read
    assert result.rejected["reject_reason"].notna().all()


# -- refusals ------------------------------------------------------------------------
def test_unknown_adapter_name_is_refused(warehouse, tmp_path: Path) -> None:
    refusal = r"unknown public data set 'retail'; choose one of: online_retail"
    with pytest.raises(ImportRefused, match=refusal):
        import_public(warehouse, "retail", tmp_path)
    assert warehouse.tables() == []


@pytest.mark.parametrize("name", sorted(ADAPTERS))
def test_empty_or_missing_folder_is_refused(warehouse, tmp_path: Path, name: str) -> None:
    with pytest.raises(ImportRefused, match=rf"^{name}: .*pass the "):
        import_public(warehouse, name, tmp_path)
    with pytest.raises(ImportRefused, match=r"does not exist"):
        import_public(warehouse, name, tmp_path / "nowhere")
    assert warehouse.tables() == []


def test_file_without_the_publishers_columns_is_refused(warehouse, tmp_path: Path) -> None:
    folder = tmp_path / "hillstrom_email"
    folder.mkdir()
    pd.DataFrame({"customer": ["a"], "visit": [1]}).to_parquet(folder / "hillstrom.parquet")
    with pytest.raises(ImportRefused, match=r"has no column 'recency'"):
        import_public(warehouse, "hillstrom", folder)
    assert warehouse.tables() == []


def test_complete_journey_refuses_an_unknown_category_level(tmp_path: Path) -> None:
    with pytest.raises(ImportRefused, match=r"category 'brand'.*department, product_category"):
        complete_journey.load(tmp_path, category="brand")


@pytest.mark.public_data
def test_wrong_public_paths_are_refused(warehouse, public_data: Path) -> None:
    refusal = r"^hillstrom: .* holds no hillstrom.parquet; pass the hillstrom_email folder"
    with pytest.raises(ImportRefused, match=refusal):
        import_public(warehouse, "hillstrom", public_data / "online_retail")
    with pytest.raises(ImportRefused, match=r"^cdnow: .* is not one of the data set's files"):
        import_public(warehouse, "cdnow", public_data / "online_retail" / "online_retail.parquet")
    one_file = public_data / "complete_journey" / "transactions.parquet"
    with pytest.raises(ImportRefused, match=r"^complete_journey: .* is not a folder"):
        import_public(warehouse, "complete_journey", one_file)
    with pytest.raises(ImportRefused, match=r"^ifood: .* holds no marketing_campaign.parquet"):
        import_public(warehouse, "ifood", public_data)
    assert warehouse.tables() == []


# -- tiny files, hand-computed answers --------------------------------------------------
def test_online_retail_lines_hand_computed(tmp_path: Path) -> None:
    line = {
        "InvoiceNo": "536365", "StockCode": "85123A", "Description": "HEART",
        "Quantity": 6, "InvoiceDate": datetime(2010, 12, 1, 8, 26), "UnitPrice": 2.55,
        "CustomerID": "17850", "Country": "United Kingdom",
    }
    rows = [
        line,
        dict(line),  # exact duplicate -> rejected
        {**line, "Description": "HEART!"},  # differs in an unmapped column -> kept
        {**line, "InvoiceNo": "C536379", "Quantity": -2},  # return -> negative amount
        {**line, "UnitPrice": 0.0, "StockCode": "22000"},  # zero price -> kept
        {**line, "CustomerID": None},  # no customer -> rejected
        {**line, "CustomerID": "12370", "Country": "Cyprus"},
        {**line, "CustomerID": "12370", "Country": "Cyprus", "Quantity": 1},
        {**line, "CustomerID": "12370", "Country": "Austria"},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "online_retail.parquet")

    tx, cust = online_retail.load(tmp_path)

    assert tx.rows_read == 9
    assert tx.reject_counts == {"exact duplicate": 1, "missing customer_id": 1}
    assert tx.rejected["source_row"].tolist() == [2, 6]
    assert tx.rejected.loc[0, "Description"] == "HEART"  # the publisher's row as read
    assert tx.accepted["amount"].tolist() == [15.3, 15.3, -5.1, 0.0, 15.3, 2.55, 15.3]
    assert tx.accepted["category"].tolist()[:5] == ["85123A", "85123A", "85123A", "22000", "85123A"]
    assert dict(zip(cust.accepted["customer_id"], cust.accepted["country"])) == {
        "12370": "Cyprus",  # two lines in Cyprus beat one in Austria
        "17850": "United Kingdom",
    }


def test_hillstrom_segments_hand_computed(tmp_path: Path) -> None:
    row = {
        "recency": 10, "history_segment": "2) $100 - $200", "history": 142.44, "mens": 1,
        "womens": 0, "zip_code": "Surburban", "newbie": 0, "channel": "Phone",
        "segment": "Mens E-Mail", "visit": 1, "conversion": 1, "spend": 29.99,
    }
    rows = [
        row,
        dict(row),  # identical row: a distinct customer
        {**row, "segment": "Womens E-Mail", "visit": 0, "conversion": 0, "spend": 0.0},
        {**row, "segment": "No E-Mail", "visit": 1, "conversion": 0, "spend": 0.0},
    ]
    pd.DataFrame(rows).to_parquet(tmp_path / "hillstrom.parquet")

    results = by_table(hillstrom.load(tmp_path / "hillstrom.parquet"))

    ids = results["customers"].accepted["customer_id"].tolist()
    assert ids == ["H00001", "H00002", "H00003", "H00004"]
    assert "segment" not in results["customers"].accepted.columns
    contacts = results["contacts"].accepted
    assert len(contacts) == 5
    got = sorted(zip(contacts["campaign_id"], contacts["customer_id"], contacts["group"],
                     contacts["responded"], contacts["revenue"]))
    assert got == [
        ("mens_email", "H00001", "treatment", True, 29.99),
        ("mens_email", "H00002", "treatment", True, 29.99),
        ("mens_email", "H00004", "control", True, 0.0),
        ("womens_email", "H00003", "treatment", False, 0.0),
        ("womens_email", "H00004", "control", True, 0.0),
    ]
    assert (contacts["contacted_at"] == hillstrom.SENT).all()


def test_complete_journey_local_time_follows_new_york_daylight_saving() -> None:
    utc = pd.Series(
        pd.to_datetime(["2017-01-01 11:53:26", "2017-07-01 12:00:00", "2018-01-01 04:01:00"])
    )
    local = complete_journey.local_time(utc)
    assert local.tolist() == [
        pd.Timestamp("2017-01-01 06:53:26"),  # EST, UTC-5
        pd.Timestamp("2017-07-01 08:00:00"),  # EDT, UTC-4
        pd.Timestamp("2017-12-31 23:01:00"),  # still 2017 in New York
    ]
    assert local.dt.tz is None


def test_ifood_bands_hand_computed() -> None:
    years = pd.Series([1893, 1940, 1957, 1996])
    assert ifood.birth_decade(years).tolist() == ["before 1940", "1940s", "1950s", "1990s"]
    incomes = pd.Series([1730.0, 20000.0, 58138.0, 99999.0, 666666.0, None])
    bands = ifood.income_band(incomes).tolist()
    assert bands[:5] == ["0-20k", "20-40k", "40-60k", "80-100k", "100k+"]
    assert pd.isna(bands[5])


def test_ifood_nominal_campaign_dates_follow_the_last_enrolment() -> None:
    assert ifood.nominal_window(1) == (datetime(2014, 7, 1), datetime(2014, 7, 31))
    assert ifood.nominal_window(6) == (datetime(2014, 12, 1), datetime(2014, 12, 31))
    assert ifood.PERIOD_END == datetime(2014, 12, 31, 23, 59, 59, 999999)


# -- the public data sets ------------------------------------------------------------
@pytest.mark.public_data
def test_online_retail_reconciles(warehouse, public_data: Path) -> None:
    period_end = datetime(2011, 12, 9, 12, 50)  # the README's last invoice
    folder = public_data / "online_retail"
    raw = pd.read_parquet(folder / "online_retail.parquet")
    no_customer = int(raw["CustomerID"].isna().sum())
    # exact duplicates among lines not already rejected for the missing id
    duplicates = int(raw[raw["CustomerID"].notna()].duplicated().sum())
    assert (len(raw), no_customer, int(raw.duplicated().sum())) == (541_909, 135_080, 5_268)

    results = by_table(import_public(warehouse, "online_retail", folder))

    tx = results["transactions"]
    assert_reconciled(tx)
    assert tx.rows_read == 541_909
    assert tx.reject_counts == {"missing customer_id": 135_080, "exact duplicate": duplicates}
    loaded = 541_909 - 135_080 - duplicates
    assert len(tx.accepted) == loaded
    assert tx.accepted["customer_id"].nunique() == 4_372
    assert results["customers"].rows_read == 4_372
    assert results["customers"].reject_counts == {}

    kept = raw[raw["CustomerID"].notna() & ~raw.duplicated()]
    assert count(warehouse, "select count(*) from transactions") == loaded
    assert count(warehouse, "select count(*) from rejected_transactions") == 135_080 + duplicates
    assert count(warehouse, "select count(distinct customer_id) from transactions") == 4_372
    assert count(warehouse, "select count(*) from customers") == 4_372
    orders = count(warehouse, "select count(distinct order_id) from transactions")
    assert orders == kept["InvoiceNo"].nunique()
    returns = count(warehouse, "select count(*) from transactions where amount < 0")
    assert returns == int((kept["Quantity"] < 0).sum())
    assert count(warehouse, "select count(*) from transactions where amount = 0") == int(
        ((kept["UnitPrice"] == 0) | (kept["Quantity"] == 0)).sum()
    )
    total = warehouse.query("select sum(amount) from transactions").iloc[0, 0]
    assert total == pytest.approx(float((kept["Quantity"] * kept["UnitPrice"]).sum()), abs=0.01)
    assert count(warehouse, "select count(*) from transactions where ts > ?", [period_end]) == 0


@pytest.mark.public_data
def test_cdnow_master_and_sample_reconcile(warehouse, public_data: Path) -> None:
    master = pd.read_parquet(public_data / "cdnow" / "cdnow_master.parquet")
    sample = pd.read_parquet(public_data / "cdnow" / "cdnow_sample.parquet")
    assert (len(master), int(master.duplicated().sum())) == (69_659, 255)
    sample_duplicates = int(sample.duplicated().sum())

    (tx,) = import_public(warehouse, "cdnow", public_data / "cdnow")
    assert_reconciled(tx)
    assert tx.rows_read == 69_659
    assert tx.reject_counts == {"exact duplicate": 255}
    assert tx.accepted["customer_id"].nunique() == 23_570
    assert count(warehouse, "select count(*) from transactions") == 69_659 - 255
    assert count(warehouse, "select count(*) from rejected_transactions") == 255
    assert count(warehouse, "select count(distinct customer_id) from transactions") == 23_570
    # no order ids: an order is a customer-day, so rejecting duplicates loses no order
    days = master[["customer_id", "date"]].drop_duplicates()
    assert count(warehouse, "select count(distinct order_id) from transactions") == len(days)
    assert count(warehouse, "select count(*) from transactions where amount = 0") == 80
    assert count(warehouse, "select count(distinct category) from transactions") == 1

    (tx,) = import_public(warehouse, "cdnow", public_data / "cdnow" / "cdnow_sample.parquet")
    assert_reconciled(tx)
    assert tx.rows_read == 6_919
    assert tx.reject_counts == {"exact duplicate": sample_duplicates}
    assert tx.accepted["customer_id"].nunique() == 2_357
    assert count(warehouse, "select count(*) from transactions") == 6_919 - sample_duplicates
    assert count(warehouse, "select count(distinct customer_id) from transactions") == 2_357
    assert set(tx.accepted["customer_id"]) <= set(master["customer_id"])


@pytest.mark.public_data
def test_complete_journey_reconciles(warehouse, public_data: Path) -> None:
    folder = public_data / "complete_journey"
    lines = pd.read_parquet(folder / "transactions.parquet")
    products = pd.read_parquet(folder / "products.parquet")
    targeted = pd.read_parquet(folder / "campaigns.parquet")
    redemptions = pd.read_parquet(folder / "coupon_redemptions.parquet")
    assert len(lines) == 1_469_307
    assert int(lines.duplicated().sum()) == int(lines["household_id"].isna().sum()) == 0
    no_product = int((~lines["product_id"].isin(products["product_id"])).sum())
    responded = len(redemptions[["campaign_id", "household_id"]].drop_duplicates().merge(targeted))

    results = by_table(import_public(warehouse, "complete_journey", folder))

    tx = results["transactions"]
    assert_reconciled(tx)
    assert tx.rows_read == 1_469_307
    assert tx.reject_counts == {}
    assert tx.accepted["customer_id"].nunique() == 2_469
    for name in ("customers", "campaigns", "contacts"):
        assert_reconciled(results[name])
        assert results[name].reject_counts == {}

    assert count(warehouse, "select count(*) from transactions") == 1_469_307
    assert count(warehouse, "select count(*) from rejected_transactions") == 0
    assert count(warehouse, "select count(distinct customer_id) from transactions") == 2_469
    assert count(warehouse, "select count(distinct order_id) from transactions") == 155_848
    unknown = count(warehouse, "select count(*) from transactions where category = 'unknown'")
    assert unknown == no_product == 4_836
    departments = lines["product_id"].map(products.set_index("product_id")["department"]).nunique()
    assert count(warehouse, "select count(distinct category) from transactions") == departments + 1
    # local New York time: the year is exactly calendar 2017
    first, last = warehouse.query("select min(ts), max(ts) from transactions").iloc[0]
    assert first == pd.Timestamp("2017-01-01 06:53:26")  # 11:53:26 UTC
    assert last == pd.Timestamp("2017-12-31 23:01:20")  # 2018-01-01 04:01:20 UTC

    assert count(warehouse, "select count(*) from customers") == 2_469
    assert count(warehouse, "select count(age) from customers") == 801
    assert count(warehouse, "select count(*) from campaigns") == 27
    assert count(warehouse, "select count(*) from contacts") == len(targeted) == 6_589
    assert count(warehouse, "select count(distinct customer_id) from contacts") == 1_559
    assert count(warehouse, "select count(*) from contacts where responded") == responded
    assert count(warehouse, "select count(*) from contacts where \"group\" <> 'treatment'") == 0
    assert count(warehouse, "select count(*) from contacts where responded_at < contacted_at") == 0


@pytest.mark.public_data
def test_complete_journey_finer_category(public_data: Path) -> None:
    folder = public_data / "complete_journey"
    lines = pd.read_parquet(folder / "transactions.parquet", columns=["product_id"])
    products = pd.read_parquet(folder / "products.parquet")
    categories = lines["product_id"].map(products.set_index("product_id")["product_category"])

    tx = complete_journey.load(folder, category="product_category")[0]

    assert tx.rows_read == 1_469_307
    unknown = int((tx.accepted["category"] == "unknown").sum())
    assert unknown == int(categories.isna().sum()) == 7_045
    assert tx.accepted["category"].nunique() == categories.nunique() + 1


@pytest.mark.public_data
def test_ifood_reconciles(warehouse, public_data: Path) -> None:
    raw = pd.read_parquet(public_data / "ifood_marketing_campaign" / "marketing_campaign.parquet")
    accepted = {c: int(raw[c].sum()) for c in ("AcceptedCmp1", "AcceptedCmp2", "AcceptedCmp3",
                                                "AcceptedCmp4", "AcceptedCmp5", "Response")}

    results = by_table(import_public(warehouse, "ifood", public_data / "ifood_marketing_campaign"))

    customers = results["customers"]
    assert_reconciled(customers)
    assert customers.rows_read == 2_240
    assert customers.reject_counts == {}  # the 182 rows equal but for ID are distinct customers
    assert results["contacts"].rows_read == 6 * 2_240
    assert results["contacts"].reject_counts == {}

    assert count(warehouse, "select count(*) from customers") == 2_240
    assert count(warehouse, "select count(*) from customers where income_band is null") == 24
    assert count(warehouse, "select count(*) from customers where complain = '1'") == 21
    last_enrolment = datetime(2014, 6, 29)
    late = count(warehouse, "select count(*) from customers where first_seen > ?", [last_enrolment])
    assert late == 0
    assert count(warehouse, "select count(*) from campaigns") == 6
    assert count(warehouse, "select count(*) from contacts") == 13_440
    assert count(warehouse, "select count(distinct customer_id) from contacts") == 2_240
    got = dict(warehouse.query(
        "select campaign_id, count(*) filter (where responded) from contacts group by 1"
    ).itertuples(index=False))
    assert {k: int(v) for k, v in got.items()} == {
        "cmp1": accepted["AcceptedCmp1"], "cmp2": accepted["AcceptedCmp2"],
        "cmp3": accepted["AcceptedCmp3"], "cmp4": accepted["AcceptedCmp4"],
        "cmp5": accepted["AcceptedCmp5"], "response": accepted["Response"],
    }
    assert count(warehouse, "select count(*) from contacts c join customers u using (customer_id) "
                            "where c.contacted_at < u.first_seen") == 0


@pytest.mark.public_data
def test_hillstrom_reconciles(warehouse, public_data: Path) -> None:
    raw = pd.read_parquet(public_data / "hillstrom_email" / "hillstrom.parquet")
    assert int(raw.duplicated().sum()) == 6_562  # distinct customers: none may be rejected
    visits = raw.groupby("segment")["visit"].sum()
    spend = raw.groupby("segment")["spend"].sum()

    results = by_table(import_public(warehouse, "hillstrom", public_data / "hillstrom_email"))

    customers, contacts = results["customers"], results["contacts"]
    assert_reconciled(customers)
    assert customers.rows_read == 64_000
    assert customers.reject_counts == {}
    assert contacts.rows_read == 21_307 + 21_387 + 2 * 21_306
    assert contacts.reject_counts == {}

    assert count(warehouse, "select count(*) from customers") == 64_000
    assert count(warehouse, "select count(distinct customer_id) from customers") == 64_000
    assert count(warehouse, "select count(*) from campaigns") == 2
    cells = warehouse.query(
        'select campaign_id, "group", count(*) as n, count(*) filter (where responded) as visits, '
        "sum(revenue) as revenue from contacts group by 1, 2"
    ).set_index(["campaign_id", "group"])
    expected = {
        ("mens_email", "treatment"): ("Mens E-Mail", 21_307),
        ("mens_email", "control"): ("No E-Mail", 21_306),
        ("womens_email", "treatment"): ("Womens E-Mail", 21_387),
        ("womens_email", "control"): ("No E-Mail", 21_306),
    }
    assert set(cells.index) == set(expected)
    for cell, (segment, n) in expected.items():
        assert int(cells.loc[cell, "n"]) == n
        assert int(cells.loc[cell, "visits"]) == int(visits[segment])
        assert cells.loc[cell, "revenue"] == pytest.approx(float(spend[segment]))
    assert count(warehouse, "select count(*) from contacts where revenue > 0") == int(
        raw.loc[raw["segment"] != "No E-Mail", "conversion"].sum()
        + 2 * raw.loc[raw["segment"] == "No E-Mail", "conversion"].sum()
    )


@pytest.mark.public_data
def test_telco_reconciles(warehouse, public_data: Path) -> None:
    (customers,) = import_public(warehouse, "telco", public_data / "telco_churn")
    assert_reconciled(customers)
    assert customers.rows_read == 7_043
    assert customers.reject_counts == {}
    assert count(warehouse, "select count(*) from customers") == 7_043
    assert count(warehouse, "select count(*) from customers where total_charges is null") == 11
    columns = set(warehouse.query("select * from customers limit 0").columns)
    assert "churn" not in {c.lower() for c in columns}  # the label never becomes an attribute
