"""The import half of the malformed-input corpus, and the row-level cases with their numbers.

Every corpus case builds a bad file (small, written by the test) in a project whose
warehouse already holds the five seed lines, runs `propensity data import` on it and
checks with `tests.corpus.assert_refused`: exit 1, one `error:` line that says what to
change, and every warehouse table byte-identical before and after. The project is made
once by `seed_project` and copied for each case.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import time
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features import importer
from features.importer import IN_TABLE, MAX_COLUMNS, ImportRefused, conform
from features.schema import CONTACTS, NEEDS_EVALUATIONS
from tests.corpus import SEED_CSV, assert_refused, copy_project, dump_warehouse, run, seed_project

HEADER = "customer_id,order_id,ts,amount,category\n"
ROWS = "c7,o7,2024-04-01,5.00,a\nc8,o8,2024-04-02,6.00,b\nc9,o9,2024-04-03,7.00,c\n"
AT = ["--extracted-at", "2024-06-30"]


@pytest.fixture(scope="module")
def seeded(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return seed_project(tmp_path_factory.mktemp("seeded") / "project")


@pytest.fixture
def project(seeded: Path, tmp_path: Path) -> Path:
    """A fresh copy of the seeded project (warehouse with five lines and one import_log row)."""
    return copy_project(seeded, tmp_path)


def _parquet_bytes(frame: pd.DataFrame | None = None) -> bytes:
    """A Parquet file of `frame` (default: the good rows HEADER + ROWS, as text)."""
    import pyarrow as pa

    if frame is None:
        frame = pd.read_csv(io.StringIO(HEADER + ROWS), dtype=str)
    return _parquet_of(pa.Table.from_pandas(frame, preserve_index=False))


def _parquet_with(names: list[str]) -> bytes:
    """A one-row Parquet file with these column names (repeats allowed)."""
    import pyarrow as pa

    return _parquet_of(pa.table([pa.array(["x"]) for _ in names], names=names))


def _parquet_of(table) -> bytes:
    import pyarrow.parquet as pq

    sink = io.BytesIO()
    pq.write_table(table, sink)
    return sink.getvalue()


def _zip_bytes() -> bytes:
    sink = io.BytesIO()
    with zipfile.ZipFile(sink, "w") as z:
        z.writestr("xl/workbook.xml", "<workbook/>")
    return sink.getvalue()


def _wide_header(columns: int) -> Callable[[Path], Path]:
    """A maker of a CSV whose header has `columns` names (written when the case runs)."""

    def make(folder: Path) -> Path:
        path = folder / "wide.csv"
        path.write_text(",".join(f"c{i}" for i in range(columns)) + "\n1,2,3\n")
        return path

    return make


def _fifo(folder: Path) -> Path:
    path = folder / "pipe.csv"
    os.mkfifo(path)
    return path


def _symlink_loop(folder: Path) -> Path:
    (folder / "a.csv").symlink_to(folder / "b.csv")
    (folder / "b.csv").symlink_to(folder / "a.csv")
    return folder / "a.csv"


def _dangling(folder: Path) -> Path:
    (folder / "link.csv").symlink_to(folder / "gone.csv")
    return folder / "link.csv"


def _folder(folder: Path) -> Path:
    (folder / "exports.csv").mkdir()
    return folder / "exports.csv"


def _wide_parquet(folder: Path) -> Path:
    path = folder / "wide.parquet"
    path.write_bytes(_parquet_with([f"c{i}" for i in range(MAX_COLUMNS + 1)]))
    return path


def _seed_copy(folder: Path) -> Path:
    path = folder / "seed again.csv"
    path.write_text(SEED_CSV)
    return path


@dataclass(frozen=True)
class Case:
    content: str | bytes | Callable[[Path], Path]  # the file's text or bytes, or a maker
    says: str | tuple[str, ...]
    name: str = "bad.csv"
    args: tuple[str, ...] = ()

    def make(self, folder: Path) -> Path:
        if callable(self.content):
            return self.content(folder)
        path = folder / self.name
        if isinstance(self.content, bytes):
            path.write_bytes(self.content)
        else:
            path.write_text(self.content)
        return path


FUTURE = HEADER + "".join(f"c{i},o{i},2099-01-{1 + i:02d},1,a\n" for i in range(3))

CORPUS: dict[str, Case] = {
    # empty and nearly empty
    "empty file": Case("", "the file is empty"),
    "header only": Case(HEADER, "header but no rows"),
    "blank lines only": Case("\n\n   \n\n", "only blank lines"),
    "parquet without rows": Case(_parquet_bytes(pd.DataFrame({c: pd.Series([], dtype=str) for c in HEADER.strip().split(",")})),
                                 "no rows", name="bad.parquet"),
    # not CSV text at all
    "wrong delimiter": Case(HEADER.replace(",", ";") + ROWS.replace(",", ";"), "semicolon-separated"),
    "binary garbage named .csv": Case(bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)), "binary data"),
    "NUL bytes in the header": Case(b"customer_id,\x00\x00,ts\n1,2,3\n", "binary data"),
    "control byte in the header": Case(b"customer_id,order_id\x02,ts,amount,category\n1,2,3,4,5\n", "byte 0x02"),
    "gzip named .csv": Case(gzip.compress((HEADER + ROWS).encode()), "gzip-compressed"),
    "xlsx named .csv": Case(_zip_bytes(), "ZIP archive or an Excel workbook"),
    "parquet named .csv": Case(_parquet_bytes(), "give it the .parquet extension"),
    "UTF-16 with BOM": Case((HEADER + ROWS).encode("utf-16"), "UTF-16"),
    "UTF-16 without BOM": Case((HEADER + ROWS).encode("utf-16-le"), "UTF-16"),
    "UTF-16 big-endian without BOM": Case((HEADER + ROWS).encode("utf-16-be"), "UTF-16"),
    "Latin-1 value": Case((HEADER + ROWS + "c10,o10,2024-04-04,1,caf\xe9\n").encode("latin-1"), "line 5 is not UTF-8 text (byte 0xe9)"),
    "Latin-1 header": Case(("\n\ncustomer_id,order_id,ts,amount,cat\xe9gorie\n" + ROWS).encode("latin-1"), "line 3 is not UTF-8"),
    "HTML page saved as .csv": Case("<!DOCTYPE html>\n<html><body>Not found</body></html>\n", "required column 'customer_id' is missing"),
    # broken Parquet
    "truncated parquet": Case(_parquet_bytes()[:-40], "truncated or corrupt", name="bad.parquet"),
    "garbage between PAR1 magics": Case(b"PAR1" + b"\x07" * 64 + b"PAR1", "truncated or corrupt", name="bad.parquet"),
    "CSV named .parquet": Case(HEADER + ROWS, "not a Parquet file", name="bad.parquet"),
    # file names and kinds
    "unknown extension": Case('{"customer_id": "c1"}', "unknown file type '.json'", name="bad.json"),
    "Excel workbook": Case(_zip_bytes(), "export the sheet as CSV", name="bad.xlsx"),
    "gzip extension": Case(gzip.compress((HEADER + ROWS).encode()), "decompress it first", name="bad.csv.gz"),
    "missing file": Case(lambda folder: folder / "nowhere.csv", "file not found"),
    "a folder": Case(_folder, "is a folder, not a file"),
    "a FIFO": Case(_fifo, "is a FIFO (named pipe), not a regular file"),
    "symlink loop": Case(_symlink_loop, "symlink loop"),
    "broken symlink": Case(_dangling, "broken symlink"),
    "a device": Case(lambda folder: Path(os.devnull), "is a device"),
    # structure
    "huge single line": Case("x" * (2 << 20), "longer than 1 MiB"),
    "quote never closed": Case(HEADER + ROWS + 'c10,o10,2024-04-04,"1,a\nc11,o11,2024-04-05,2,b\n',
                               "quoted value starting on line 5 is never closed"),
    "extra field in a later row": Case(HEADER + ROWS + "c10,o10,2024-04-04,1,a,oops\n", "line 5 has 6 fields but the header has 5"),
    "extra field in the first row": Case(HEADER + "c10,o10,2024-04-04,1,a,oops\n" + ROWS, "first data line has more fields"),
    "duplicated CSV column": Case("customer_id,order_id,ts,amount,amount,category\n" + "c1,o1,2024-01-01,1,2,a\n",
                                  "duplicated column names: 'amount' (2 times)"),
    "duplicated Parquet column": Case(_parquet_with(["customer_id", "ts", "amount", "ts"]), "'ts' (2 times)", name="bad.parquet"),
    "120k-column header": Case(_wide_header(120_000), "has 120,000 columns"),
    "1.2M-column header": Case(_wide_header(1_200_000), "columns in its first MiB alone"),
    "parquet with 2,001 columns": Case(_wide_parquet, "has 2,001 columns"),
    # columns and mapping
    "all-null amount column": Case(HEADER + "".join(f"c{i},o{i},2024-03-01,,a\n" for i in range(4)),
                                   "column 'amount' (transactions.amount) is empty in every row"),
    "mapped column does not exist": Case(HEADER + ROWS, "the file has no column 'Total'", args=("--map", "amount=Total")),
    "two canonical columns from one source": Case(HEADER + ROWS, "both be read from column 'customer_id'",
                                                  args=("--map", "order_id=customer_id")),
    "mostly infinite amounts": Case(HEADER + "".join(f"c{i},o{i},2024-03-01,{v},a\n" for i, v in enumerate(["inf", "1e309", "2", "3"])),
                                    "2 of 4 values in column 'amount' (transactions.amount) are not finite numbers"),
    "NUL in most ids": Case((HEADER + "".join(f"c\x00{i},o{i},2024-03-01,1,a\n" for i in range(4))).encode(),
                            "are not ids without control characters"),
    # whole-file outcomes
    "all rows rejected (replace)": Case(FUTURE, "all 3 rows would be rejected (ts after file end 3)", args=tuple(AT)),
    "all rows rejected, mixed reasons": Case(FUTURE + ",o8,2024-03-01,1,a\n,o9,2024-03-02,1,a\n",
                                             "all 5 rows would be rejected (ts after file end 3, missing customer_id 2)",
                                             args=tuple(AT)),
    "all rows rejected (append)": Case(FUTURE, "all 3 rows would be rejected (ts after file end 3)", args=(*AT, "--append")),
    "seed file appended again": Case(lambda folder: folder / "seed.csv", "already imported into transactions", args=(*AT, "--append")),
    "same content under another name": Case(_seed_copy, "(as seed.csv)", args=(*AT, "--append")),
    "every row already in the table": Case(SEED_CSV.replace("\n", "\r\n"), f"all 5 rows would be rejected ({IN_TABLE} 5)",
                                           args=(*AT, "--append")),
}

FROM_THE_HEADER = {"120k-column header", "1.2M-column header", "parquet with 2,001 columns",
                   "duplicated CSV column", "duplicated Parquet column", "huge single line"}


@pytest.mark.parametrize("case", list(CORPUS))
def test_malformed_import_is_refused(project: Path, case: str, monkeypatch: pytest.MonkeyPatch) -> None:
    spec = CORPUS[case]
    path = spec.make(project)
    if case in FROM_THE_HEADER:  # refused from the header or schema: the rows are never parsed
        monkeypatch.setattr(pd, "read_csv", _must_not_parse)
        monkeypatch.setattr(pd, "read_parquet", _must_not_parse)
    start = time.perf_counter()
    assert_refused(["data", "import", "transactions", str(path), *spec.args], project, spec.says)
    assert time.perf_counter() - start < 20


def _must_not_parse(*args: object, **kwargs: object) -> None:
    raise AssertionError("the file's rows were parsed")


def test_corpus_size() -> None:
    assert len(CORPUS) >= 28


def test_unreadable_file_is_refused(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = project / "secret.csv"
    path.write_text(HEADER + ROWS)
    path.chmod(0)
    if os.geteuid() == 0:  # root reads any file: let the open fail as it does for a user
        def deny(file: object, *args: object, **kwargs: object):
            if Path(str(file)) == path:
                raise PermissionError(13, "Permission denied", str(file))
            return open(file, *args, **kwargs)

        monkeypatch.setattr(importer, "open", deny, raising=False)
    line = assert_refused(["data", "import", "transactions", str(path)], project, "permission denied")
    assert line.endswith("secret.csv: cannot read the file: permission denied; check its permissions")


def test_long_column_lists_are_cut_to_twenty_names(project: Path) -> None:
    path = project / "wide.csv"
    path.write_text(",".join(f"col{i}" for i in range(300)) + "\n" + ",".join("1" * 300) + "\n")
    line = assert_refused(["data", "import", "transactions", str(path)], project, "required column 'customer_id'")
    assert "(the file has: col0, col1, " in line and "col19 and 280 more)" in line and "col20" not in line


# -- row-level cases: quarantined, with hand-computed counts ---------------------------
def _import(project: Path, name: str, content: str | bytes, *args: str):
    path = project / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    out = run(["data", "import", "transactions", str(path), *AT, *args], project)
    assert out.exit_code == 0 and out.exception is None, out.stderr
    return out


def _tables(project: Path) -> dict[str, pd.DataFrame]:
    import duckdb

    con = duckdb.connect(str(project / "warehouse.duckdb"), read_only=True)
    try:
        return {t: con.sql(f'select * from "{t}"').df() for t in ("transactions", "rejected_transactions", "import_log")}
    finally:
        con.close()


def test_infinite_amounts_and_quantities_are_quarantined(project: Path) -> None:
    # 100 lines: 95 good (amount i + 0.5), 4 infinite amounts, 1 'NaN'; one good line's quantity is inf
    amounts = [f"{i}.5" for i in range(95)] + ["inf", "-inf", "Infinity", "1e309", "NaN"]
    quantity = ["1"] * 100
    quantity[3] = "inf"
    body = "".join(f"c{i},o{i},2024-03-{1 + i % 28:02d},{a},a,{q}\n" for i, (a, q) in enumerate(zip(amounts, quantity)))
    out = _import(project, "inf.csv", "customer_id,order_id,ts,amount,category,quantity\n" + body)
    tables = _tables(project)
    tx, rej = tables["transactions"], tables["rejected_transactions"]
    assert dict(rej["reject_reason"].value_counts()) == {"infinite amount": 4, "bad amount": 1, "infinite quantity": 1}
    assert rej.loc[rej["reject_reason"] == "infinite amount", "amount"].tolist() == ["inf", "-inf", "Infinity", "1e309"]
    assert len(tx) == 94 and np.isfinite(tx["amount"]).all() and np.isfinite(tx["quantity"]).all()
    assert tx["amount"].sum() == sum(i + 0.5 for i in range(95)) - 3.5  # line 3 (3.5) went for its quantity
    assert "100 rows read from inf.csv, 94 loaded, 6 rejected (bad amount 1, infinite amount 4, infinite quantity 1)" in out.stderr


def test_infinite_values_in_other_tables_are_quarantined() -> None:
    needs = pd.DataFrame({
        "customer_id": [str(i) for i in range(40)],
        "evaluated_at": ["2024-01-01"] * 40, "need_level": ["want"] * 40, "dimension": ["price"] * 40,
        "urgency": ["inf"] + ["3"] * 39, "importance": ["2"] * 39 + ["-inf"], "solution_fit": ["1"] * 40,
        "orientation": ["value"] * 40, "style": ["social"] * 40, "complaint": ["no"] * 40,
    })
    out = conform(needs, NEEDS_EVALUATIONS, source="x")
    assert out.reject_counts == {"infinite urgency": 1, "infinite importance": 1} and len(out.accepted) == 38
    contacts = pd.DataFrame({
        "campaign_id": ["k"] * 30, "customer_id": [str(i) for i in range(30)], "contacted_at": ["2024-01-01"] * 30,
        "group": ["treatment"] * 30, "responded": ["yes"] * 30, "revenue": ["1e400"] + ["10"] * 29,
    })
    out = conform(contacts, CONTACTS, source="x")
    assert out.reject_counts == {"infinite revenue": 1} and out.accepted["revenue"].sum() == 290


def test_control_characters_in_ids_are_rejected_not_stripped(project: Path) -> None:
    lines = [f"c{i},o{i},2024-03-{1 + i % 28:02d},1,a" for i in range(60)]  # 2 of 60 bad ids: under 5 %
    lines[4] = "c1\x00,o4,2024-03-05,1,a"  # would be a new customer 'c1\x00' next to c1
    lines[7] = "c\x1b7,o7,2024-03-08,1,a"
    lines[9] = "c9,o9,2024-03-10,1,a\x07"
    lines[11] = "  c11\t,o11,2024-03-12,1,a"  # surrounding blanks are trimmed, as before
    out = _import(project, "nul.csv", (HEADER + "\n".join(lines) + "\n").encode())
    tables = _tables(project)
    tx, rej = tables["transactions"], tables["rejected_transactions"]
    assert dict(zip(rej["source_row"], rej["reject_reason"])) == {
        5: "control character in customer_id", 8: "control character in customer_id", 10: "control character in category"}
    assert rej.loc[rej["source_row"] == 5, "customer_id"].item() == "c1\x00"  # kept as read
    assert len(tx) == 57 and tx["customer_id"].nunique() == 57 and "c11" in set(tx["customer_id"])
    assert not tx["customer_id"].str.contains("[\x00-\x1f]").any()
    assert "60 rows read from nul.csv, 57 loaded, 3 rejected" in out.stderr and "57 customers" in out.stderr


def test_append_rejects_rows_already_in_the_table(project: Path) -> None:
    # 3 seed lines again, 2 new lines, one of them twice
    text = HEADER + "".join(SEED_CSV.splitlines(keepends=True)[1:4]) + ROWS.splitlines(keepends=True)[0] * 2 + ROWS.splitlines(keepends=True)[1]
    out = _import(project, "more.csv", text, "--append")
    assert f"6 rows read from more.csv, 2 loaded, 4 rejected ({IN_TABLE} 3, exact duplicate 1)" in out.stderr
    tables = _tables(project)
    assert len(tables["transactions"]) == 7 and sorted(tables["transactions"]["order_id"])[-2:] == ["o7", "o8"]
    rej = tables["rejected_transactions"]
    assert dict(zip(rej["source_row"], rej["reject_reason"])) == {1: IN_TABLE, 2: IN_TABLE, 3: IN_TABLE, 5: "exact duplicate"}
    log = tables["import_log"]
    assert log["mode"].tolist() == ["replace", "append"] and log["source_file"].tolist() == ["seed.csv", "more.csv"]
    last = log.iloc[-1]
    assert (last["rows_read"], last["rows_loaded"], last["rows_rejected"]) == (6, 2, 4)
    assert last["file_sha256"] == hashlib.sha256(text.encode()).hexdigest() and last["file_bytes"] == len(text.encode())


def test_reimport_rules(project: Path) -> None:
    before = dump_warehouse(project / "warehouse.duckdb")
    # a plain import of the same file again replaces the table with the same rows
    out = _import(project, "seed.csv", SEED_CSV)
    assert "the same content was already imported on" in out.stderr and "now holds this file's rows only" in out.stderr
    after = dump_warehouse(project / "warehouse.duckdb")
    assert after["transactions"] == before["transactions"] and len(_tables(project)["import_log"]) == 2
    # appending it again is refused; --allow-reimport does what it says: the rows twice
    assert_refused(["data", "import", "transactions", "seed.csv", *AT, "--append"], project,
                   "pass --allow-reimport to append it anyway")
    out = _import(project, "seed.csv", SEED_CSV, "--append", "--allow-reimport")
    assert "5 rows read from seed.csv, 5 loaded, 0 rejected" in out.stderr
    assert len(_tables(project)["transactions"]) == 10
    # once another file has replaced the table, the seed file's rows are new again
    _import(project, "other.csv", HEADER + ROWS)
    _import(project, "seed.csv", SEED_CSV, "--append")
    tables = _tables(project)
    assert len(tables["transactions"]) == 8
    assert tables["import_log"]["mode"].tolist() == ["replace", "replace", "append", "replace", "append"]


def test_append_of_a_file_laid_out_differently(project: Path) -> None:
    # other source names (mapped) and an extra column: rejected_transactions gains the columns
    text = "cust,order_id,ts,amount,category,channel\nc7,o7,2024-04-01,5,a,web\n,o8,2024-04-02,6,b,shop\n"
    out = _import(project, "other layout.csv", text, "--append", "--map", "customer_id=cust")
    assert "2 rows read from other layout.csv, 1 loaded, 1 rejected (missing customer_id 1)" in out.stderr
    tables = _tables(project)
    assert len(tables["transactions"]) == 6 and tables["transactions"]["channel"].tolist()[-1] == "web"
    rej = tables["rejected_transactions"]
    assert rej[["source_row", "cust", "channel", "customer_id"]].to_dict("records") == [
        {"source_row": 2, "cust": None, "channel": "shop", "customer_id": None}]


def test_trailing_delimiters_in_the_header_are_not_duplicates(project: Path) -> None:
    # spreadsheet exports often end every line with empty columns: not a duplicated name
    out = _import(project, "trailing.csv", HEADER.replace("\n", ",,\n") + ROWS.replace("\n", ",,\n"))
    assert "3 rows read from trailing.csv, 3 loaded, 0 rejected" in out.stderr


def test_bom_file_imports(project: Path) -> None:
    out = _import(project, "bom.csv", b"\xef\xbb\xbf" + (HEADER + ROWS).replace("\n", "\r\n").encode())
    assert "3 rows read from bom.csv, 3 loaded, 0 rejected" in out.stderr
    assert sorted(_tables(project)["transactions"]["customer_id"]) == ["c7", "c8", "c9"]


def test_refused_import_raises_import_refused_directly(tmp_path: Path) -> None:
    from features.importer import read_source

    path = tmp_path / "t.csv"
    path.write_text("a,a\n1,2\n")
    with pytest.raises(ImportRefused, match="duplicated column names: 'a' \\(2 times\\)"):
        read_source(path)
