"""Importing files: quarantine with reasons, refused files leave the warehouse untouched."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.importer import ImportRefused, conform
from features.load import Warehouse
from features.schema import NEEDS_EVALUATIONS, TRANSACTIONS
from propensity.cli import app

runner = CliRunner()

GOOD = """cust,invoice,when,total,group
1,o1,2024-01-02 10:00,10.50,a
1,o1,2024-01-02 10:00,10.50,a
,o2,2024-01-03,5,b
2,o3,2024-01-03T11:00:00,7,b
3,o4,2099-01-01,4,c
4,,2024-02-01,7,
""" + "".join(f"{5 + i},p{i},2024-03-{1 + i % 28:02d},{i}.25,d\n" for i in range(40))

MAP = ["--map", "customer_id=cust", "--map", "order_id=invoice", "--map", "ts=when",
       "--map", "amount=total", "--map", "category=group"]


def write(tmp: Path, name: str, text: str) -> Path:
    path = tmp / name
    path.write_text(text)
    return path


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    return tmp_path


def cli(*args: str):
    return runner.invoke(app, list(args))


def snapshot(folder: Path) -> dict[str, pd.DataFrame]:
    with Warehouse(f"duckdb:///{folder / 'warehouse.duckdb'}", read_only=True) as wh:
        return {t: wh.read(t) for t in wh.tables()}


def test_good_file_quarantines_bad_rows(project: Path) -> None:
    res = cli("data", "import", "transactions", str(write(project, "t.csv", GOOD)), *MAP)
    assert res.exit_code == 0, res.output
    tables = snapshot(project)
    tx, rej = tables["transactions"], tables["rejected_transactions"]
    assert len(tx) == 43 and len(rej) == 3  # 46 rows read
    reasons = dict(zip(rej["source_row"], rej["reject_reason"]))
    assert reasons == {2: "exact duplicate", 3: "missing customer_id", 5: "ts after file end"}
    # the row as read is kept next to the reason
    assert rej.loc[rej["source_row"] == 5, "when"].item() == "2099-01-01"
    # no order id: the order is the customer-day; no category: 'unknown'
    row4 = tx[tx["customer_id"] == "4"].iloc[0]
    assert row4["order_id"] == "4@2024-02-01" and row4["category"] == "unknown"
    assert tx.loc[tx["customer_id"] == "2", "ts"].item() == pd.Timestamp("2024-01-03 11:00")
    assert "46 rows read" in res.output and "3 rejected" in res.output


BAD_FILES = {
    "missing column": ("cust,invoice,when,group\n1,o1,2024-01-02,a\n", "required column 'amount' is missing"),
    "unparsable dates": (
        "cust,invoice,when,total,group\n" + "".join(f"{i},o{i},31/01/2024,3,a\n" for i in range(10)),
        "are not timestamps",
    ),
    "text in amount": (
        "cust,invoice,when,total,group\n" + "".join(f"{i},o{i},2024-01-02,ten,a\n" for i in range(10)),
        "are not numbers",
    ),
    "empty file": ("", "the file is empty"),
    "header only": ("cust,invoice,when,total,group\n", "no rows"),
    "binary junk": ("\x00\x01\x02PK\x03\x04", ""),
}


@pytest.mark.parametrize("case", list(BAD_FILES))
def test_malformed_file_is_refused_and_warehouse_unchanged(project: Path, case: str) -> None:
    assert cli("data", "import", "transactions", str(write(project, "good.csv", GOOD)), *MAP).exit_code == 0
    before = snapshot(project)
    text, message = BAD_FILES[case]
    maps = MAP[:6] + MAP[8:] if case == "missing column" else MAP  # no amount mapping
    res = cli("data", "import", "transactions", str(write(project, "bad.csv", text)), *maps)
    assert res.exit_code == 1
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: "), res.output
    assert message in lines[0]
    after = snapshot(project)
    assert before.keys() == after.keys()
    for name in before:
        pd.testing.assert_frame_equal(before[name], after[name])


def test_a_few_bad_dates_are_quarantined_not_refused() -> None:
    raw = pd.DataFrame({
        "customer_id": [str(i) for i in range(100)],
        "ts": ["2024-01-02"] * 97 + ["31/01/2024", "yesterday", "2024-13-01"],
        "amount": ["1"] * 100,
        "category": ["a"] * 100,
    })
    out = conform(raw, TRANSACTIONS, source="x")
    assert len(out.accepted) == 97
    assert out.reject_counts == {"bad ts": 3}
    with pytest.raises(ImportRefused, match="3 of 100 values"):
        conform(raw, TRANSACTIONS, source="x", max_unparsable_share=0.02)


def test_needs_values_outside_the_contract_are_rejected() -> None:
    raw = pd.DataFrame({
        "customer_id": ["1"] * 40,
        "evaluated_at": ["2024-01-01"] * 40,
        "need_level": ["Pain"] * 38 + ["angry", "pain"],
        "dimension": ["price"] * 40,
        "urgency": ["5"] * 39 + ["7"],
        "importance": ["3"] * 40,
        "solution_fit": ["2"] * 40,
        "orientation": ["value"] * 40,
        "style": ["social"] * 40,
        "complaint": ["yes"] * 20 + ["no"] * 20,
    })
    raw.loc[1, "importance"] = "2"  # keep rows distinct so no duplicate rejections
    raw["evaluated_at"] = [f"2024-01-{1 + i % 28:02d} {i % 24:02d}:00" for i in range(40)]
    out = conform(raw, NEEDS_EVALUATIONS, source="x")
    assert out.reject_counts == {"bad need_level": 1, "bad urgency": 1}
    assert set(out.accepted["need_level"]) == {"pain"}  # case folded
    assert out.accepted["complaint"].sum() == 20
    assert str(out.accepted["urgency"].dtype) == "int64"


def test_unknown_table_and_bad_map_are_one_line_errors(project: Path) -> None:
    path = str(write(project, "t.csv", GOOD))
    res = cli("data", "import", "orders", path)
    assert res.exit_code == 1 and "unknown table 'orders'" in res.output
    res = cli("data", "import", "transactions", path, "--map", "ts")
    assert res.exit_code == 1 and "canonical=source" in res.output
    res = cli("data", "import", "transactions", path, "--map", "ts=nope")
    assert res.exit_code == 1 and "the file has no column 'nope'" in res.output


def test_append_adds_rows(project: Path) -> None:
    path = str(write(project, "t.csv", GOOD))
    more = GOOD.replace(",p", ",q").replace(",o", ",r")  # the same lines under other order ids
    assert cli("data", "import", "transactions", path, *MAP).exit_code == 0
    assert cli("data", "import", "transactions", str(write(project, "t2.csv", more)), *MAP, "--append").exit_code == 0
    tables = snapshot(project)
    # 43 + 42: customer 4's line has no order id, so it is the same row in both files
    assert len(tables["transactions"]) == 85
    assert (tables["rejected_transactions"]["reject_reason"] == "duplicate of a row already in the table").sum() == 1
    # the same file again is refused: its rows are already in the table
    res = cli("data", "import", "transactions", path, *MAP, "--append")
    assert res.exit_code == 1 and "already imported into transactions" in res.output


def test_source_columns_named_like_bookkeeping_are_kept() -> None:
    raw = pd.DataFrame({
        "customer_id": ["1", None], "ts": ["2024-01-02", "2024-01-02"], "amount": ["1", "2"],
        "category": ["a", "b"], "source_row": ["x", "y"],
    })
    out = conform(raw, TRANSACTIONS, source="x")
    assert out.rejected.loc[0, "source_row"] == 2
    assert out.rejected.loc[0, "source_source_row"] == "y"


DAY_FIRST = "cust,when,total,category\n1,02/01/2024 10:30,5,a\n2,31/01/2024 00:00,7,b\n"


def test_timestamp_format_flag_overrides_the_config(project: Path) -> None:
    path = str(write(project, "d.csv", DAY_FIRST))
    (project / "propensity.toml").write_text('[import]\ntimestamp_format = "%Y/%m/%d"\n')
    cols = ["--map", "customer_id=cust", "--map", "ts=when", "--map", "amount=total"]
    # the config's format does not fit the file: refused, and the message names the flag
    res = cli("data", "import", "transactions", path, *cols)
    assert res.exit_code == 1 and "pass --timestamp-format or set [import] timestamp_format" in res.output
    res = cli("data", "import", "transactions", path, *cols, "--timestamp-format", "%d/%m/%Y %H:%M")
    assert res.exit_code == 0, res.output
    tx = snapshot(project)["transactions"].sort_values("customer_id")
    assert list(tx["ts"]) == [pd.Timestamp("2024-01-02 10:30"), pd.Timestamp("2024-01-31 00:00")]
    # checked as [import] timestamp_format is, in one line
    for fmt, message in (("%d/%m %H:%M", "has no year (%Y or %y)"), ("%d/%Q/%Y", "%Q is not a strftime code")):
        res = cli("data", "import", "transactions", path, *cols, "--timestamp-format", fmt)
        assert res.exit_code == 1 and res.output.count("\n") == 1
        assert res.output.startswith(f"error: --timestamp-format {fmt!r}: {message}")


RETAIL = """Invoice,Customer,Date,Quantity,UnitPrice,Kind
o1,1,2024-01-02,3,2.50,a
o2,2,2024-01-03,2,0.1,a
o3,3,2024-01-04,x,4,a
o4,4,2024-01-05,,4,a
""" + "".join(f"p{i},{10 + i},2024-02-{1 + i:02d},1,{i}.5,b\n" for i in range(20))
RETAIL_MAP = ["--map", "order_id=Invoice", "--map", "customer_id=Customer", "--map", "ts=Date",
              "--map", "category=Kind"]


def test_amount_as_quantity_times_unit_price(project: Path) -> None:
    path = str(write(project, "r.csv", RETAIL))
    res = cli("data", "import", "transactions", path, *RETAIL_MAP, "--map", "amount=Quantity*UnitPrice")
    assert res.exit_code == 0, res.output
    tables = snapshot(project)
    amounts = dict(zip(tables["transactions"]["order_id"], tables["transactions"]["amount"]))
    assert amounts["o1"] == 7.5 and amounts["o2"] == pytest.approx(0.2) and amounts["p3"] == 3.5
    assert len(amounts) == 22
    # a factor that is not a number rejects the row as a bad amount; an empty one leaves the amount missing
    rej = tables["rejected_transactions"]
    assert dict(zip(rej["Invoice"], rej["reject_reason"])) == {"o3": "bad amount", "o4": "missing amount"}
    assert "Quantity*UnitPrice" not in rej.columns  # the rows as read


@pytest.mark.parametrize("mapping, message", [
    ("amount=Qty*UnitPrice", "r.csv: --map amount=Qty*UnitPrice: the file has no column 'Qty' (it has: Invoice, "),
    ("amount=Quantity*", "r.csv: --map amount=Quantity*: write a product as COLUMN*COLUMN, e.g. amount=Quantity*UnitPrice"),
    ("category=Quantity*UnitPrice", "r.csv: --map category=Quantity*UnitPrice: only a number column can be a "
                                    "product of columns; transactions.category is not one"),
    ("amount=Kind*UnitPrice", "r.csv: 24 of 24 values in column 'Kind*UnitPrice' (transactions.amount) are not "
                              "numbers, e.g. 'a*2.50'"),
])
def test_products_of_columns_are_checked_in_one_line(project: Path, mapping: str, message: str) -> None:
    path = str(write(project, "r.csv", RETAIL))
    maps = RETAIL_MAP[:-2] if mapping.startswith("category") else RETAIL_MAP  # category is mapped last
    res = cli("data", "import", "transactions", path, *maps, "--map", mapping)
    assert res.exit_code == 1 and res.output.count("\n") == 1
    assert res.output.startswith("error: " + message), res.output
