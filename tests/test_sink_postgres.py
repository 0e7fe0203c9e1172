"""The sink's PostgreSQL bulk writer (ADBC binary COPY) against the text COPY it replaced.

The same frames, every column type the sink writes plus the awkward values, go into two
identical tables of a real server: one through `text_copy` (the CSV COPY through psycopg
the sink used before, kept here as the reference) and one through `_Db.append`. Readers
must see the same tables, floats bit for bit. Also: appends commit with their
transaction and are invisible before, a transaction may not mix appends and statements,
the libpq URI means what psycopg is given, and an unreachable server is one line.
"""

from __future__ import annotations

import struct
from datetime import date, datetime

import numpy as np
import pandas as pd
import psycopg
import pytest
import sqlalchemy
from psycopg.conninfo import conninfo_to_dict

from features.load import Warehouse, WarehouseError
from serving import sink

# pyarrow 25's from_pandas reads zone-aware columns through Series.values, which pandas 3.1
# deprecates; both writers convert with it, and the values are right (the tests below).
pytestmark = pytest.mark.filterwarnings("ignore:Series.values returning an ndarray that drops timezone")


def text_copy(conn: sqlalchemy.Connection, table: str, frame: pd.DataFrame, rows_per_copy: int = 200_000) -> None:
    """The sink's PostgreSQL writer before binary COPY: CSV written by Arrow, COPY FROM STDIN through psycopg.

    The reference the tests compare against and bench/score.py measures; `conn` is a
    SQLAlchemy connection inside a transaction.
    """
    import pyarrow as pa
    import pyarrow.csv as pacsv

    cols = ", ".join(f'"{c}"' for c in frame.columns)
    statement = f"copy {table} ({cols}) from stdin with (format csv)"
    options = pacsv.WriteOptions(include_header=False)
    with conn.connection.driver_connection.cursor() as cur:
        for start in range(0, len(frame), rows_per_copy):
            part = pa.Table.from_pandas(frame.iloc[start:start + rows_per_copy], preserve_index=False)
            out = pa.BufferOutputStream()
            pacsv.write_csv(part, out, options)
            with cur.copy(statement) as copy:
                copy.write(out.getvalue().to_pybytes())


# Every column type the sink's tables use (and the other types the binary writer fills),
# quoted names included ("group", "rank": target_lists has them).
COLUMNS = {
    "id": "bigint", "group": "varchar", "note": "text", "x": "double precision", "rank": "smallint",
    "mid": "integer", "big": "bigint", "flag": "boolean", "day": "date", "day_ts": "date",
    "at": "timestamp", "at_ns": "timestamp", "at_zone": "timestamp", "at_tz": "timestamptz",
}
FLOATS = [0.1 + 0.2, 1e-300, 5e-324, -2.5e-310, 1.7976931348623157e308, -1.7976931348623157e308, -0.0, 0.0,
          1 / 3, np.nan, np.inf, -np.inf, None, 0.6369616873214543, 123456789.12345679]


def awkward_frame() -> pd.DataFrame:
    """One row per awkward float, and in every other column an awkward value or a null."""
    n = len(FLOATS)

    def cycle(values: list) -> list:
        return [values[i % len(values)] for i in range(n)]

    berlin = pd.to_datetime(["2025-03-30 01:59:59.999999", "2025-03-30 03:00:00", "2025-10-26 02:30:00",
                             "2025-06-30 23:30:00"], format="ISO8601")
    berlin = berlin.tz_localize("Europe/Berlin", ambiguous=[True, True, False, True])  # around both DST changes
    return pd.DataFrame({
        "id": np.arange(n, dtype="int64"),
        "group": pd.array(cycle(["", None, "ünïcødé ✓", 'a,b "quoted"', "new\nline", "back\\slash\ttab", "NULL",
                                 "high"]), dtype="str"),
        "note": pd.Series(cycle([None, "", "plain", "\\N"]), dtype=object),
        "x": pd.array(FLOATS, dtype="float64"),
        "rank": pd.array(cycle([1, None, -32768, 32767, 10]), dtype="Int16"),
        "mid": cycle([1.0, np.nan, 2147483647.0, -2147483648.0]),  # ints held as floats (a column with NaN)
        "big": pd.array(cycle([np.iinfo("int64").max, np.iinfo("int64").min, 0, None]), dtype="Int64"),
        "flag": pd.array(cycle([True, False, None]), dtype="boolean"),
        "day": cycle([date(2025, 6, 30), None, date(1999, 12, 31), date(2000, 1, 1), date(1, 1, 1)]),
        "day_ts": pd.to_datetime(cycle(["2025-06-30", None, "2025-06-30 13:45:00", "1970-01-01"]), format="ISO8601"),
        "at": pd.to_datetime(cycle(["2025-06-30 08:05:00.123456", None, "1999-12-31 23:59:59.999999",
                                    "2000-01-01"]), format="ISO8601").astype("datetime64[us]"),
        "at_ns": pd.to_datetime(cycle(["2025-06-30 08:05:00.000000999", "2025-06-30 08:05:00.0000004", None]),
                                format="ISO8601"),
        "at_zone": pd.Series(cycle(list(berlin) + [pd.NaT])),
        "at_tz": pd.Series(cycle(list(berlin.tz_convert("America/New_York")) + [pd.NaT])),
    })


def _table(db: sink._Db, name: str) -> None:
    db.execute(f"drop table if exists {name}")
    db.execute(f"create table {name} ({', '.join(f'{chr(34)}{c}{chr(34)} {t}' for c, t in COLUMNS.items())})")


def _seen(url: str, table: str) -> list[tuple]:
    """What a reader sees: each value as PostgreSQL prints it, doubles as their 8 bytes."""
    cols = ", ".join(f'float8send("{c}")' if t == "double precision" else f'"{c}"::text'
                     for c, t in COLUMNS.items())
    with psycopg.connect(url) as conn:
        return conn.execute(f"select {cols} from {table} t order by t.id").fetchall()  # by the number


@pytest.fixture(scope="module")
def pg_url(postgres_server) -> str:
    return postgres_server("sink")


@pytest.fixture
def db(pg_url):
    wh = Warehouse(pg_url)
    handle = sink.database(wh)
    yield handle
    handle.close()
    wh.close()


@pytest.mark.postgres
@pytest.mark.parametrize("batch_rows", [200_000, 4])  # one Arrow batch, or several in one COPY
def test_binary_append_stores_what_text_copy_stored(db, pg_url, monkeypatch, batch_rows: int) -> None:
    monkeypatch.setattr(sink, "_BATCH_ROWS", batch_rows)
    frame = awkward_frame()
    _table(db, "by_text")
    _table(db, "by_binary")
    with db.warehouse.engine().begin() as conn:
        text_copy(conn, "by_text", frame)
    with db.transaction():
        db.append("by_binary", frame)
    old, new = _seen(pg_url, "by_text"), _seen(pg_url, "by_binary")
    assert len(new) == len(frame)
    for c, (a, b) in enumerate(zip(zip(*old), zip(*new), strict=True)):
        assert a == b, list(COLUMNS)[c]
    # floats bit for bit, NaN and None as NULL (as the text COPY wrote them)
    x = list(COLUMNS).index("x")
    want = [None if v is None or np.isnan(v) else struct.pack(">d", v) for v in FLOATS]
    assert [None if r[x] is None else bytes(r[x]) for r in new] == want
    # spot checks of what the two paths agree on: wall-clock kept for `timestamp`, the instant for `timestamptz`
    cols = list(COLUMNS)
    first = new[0]
    assert first[cols.index("at_zone")] == "2025-03-30 01:59:59.999999"
    assert first[cols.index("at_tz")] == "2025-03-30 00:59:59.999999+00"
    assert first[cols.index("at_ns")] == "2025-06-30 08:05:00.000001"
    assert new[2][cols.index("day_ts")] == "2025-06-30"  # the time of a timestamp bound for a date is dropped


@pytest.mark.postgres
def test_readers_get_equal_frames(db, pg_url) -> None:
    frame = awkward_frame()
    _table(db, "read_text")
    _table(db, "read_binary")
    with db.warehouse.engine().begin() as conn:
        text_copy(conn, "read_text", frame)
    db.append("read_binary", frame)  # outside a transaction: commits at once
    old = db.warehouse.native_query("select * from read_text order by id")
    new = db.warehouse.native_query("select * from read_binary order by id")
    pd.testing.assert_frame_equal(old, new)


@pytest.mark.postgres
def test_appends_are_invisible_until_their_transaction_commits(db, pg_url) -> None:
    frame = awkward_frame()
    _table(db, "atomic")

    def count() -> int:
        with psycopg.connect(pg_url) as conn:
            return conn.execute("select count(*) from atomic").fetchone()[0]

    with pytest.raises(OSError, match="injected"):
        with db.transaction():
            db.append("atomic", frame)
            db.append("atomic", frame)
            assert count() == 0
            raise OSError("injected")
    assert count() == 0  # rolled back, both appends
    with db.transaction():
        db.append("atomic", frame)
        db.append("atomic", frame)
        assert count() == 0
    assert count() == 2 * len(frame)
    # a failed append (a value out of the column's range) leaves nothing and the connection usable
    with pytest.raises(Exception, match="out of bounds|Integer value"):
        with db.transaction():
            db.append("atomic", frame)
            db.append("atomic", frame.assign(rank=pd.array([40_000] * len(frame), dtype="Int32")))
    assert count() == 2 * len(frame)
    db.append("atomic", frame)
    assert count() == 3 * len(frame)


@pytest.mark.postgres
def test_a_transaction_either_appends_or_runs_statements(db, pg_url) -> None:
    _table(db, "mixed")
    frame = awkward_frame()
    with pytest.raises(RuntimeError, match="either appends rows or runs statements"):
        with db.transaction():
            db.execute("delete from mixed")
            db.append("mixed", frame)
    with pytest.raises(RuntimeError, match="either appends rows or runs statements"):
        with db.transaction():
            db.append("mixed", frame)
            db.execute("delete from mixed")
    assert db.fetchall("select count(*) from mixed") == [(0,)]


@pytest.mark.postgres
def test_columns_the_binary_writer_cannot_fill_are_refused(db) -> None:
    db.execute("drop table if exists odd")
    db.execute("create table odd (id bigint, amount numeric(12, 2))")
    with pytest.raises(TypeError, match="column 'amount' of odd is of PostgreSQL type numeric"):
        db.append("odd", pd.DataFrame({"id": [1], "amount": [1.5]}))
    with pytest.raises(ValueError, match="table odd has no column 'nope'"):
        db.append("odd", pd.DataFrame({"id": [1], "nope": [1.5]}))
    assert db.fetchall("select count(*) from odd") == [(0,)]


@pytest.mark.postgres
def test_scorer_stages_and_publishes_through_binary_copy(db, pg_url) -> None:
    """A small run through the sink's own steps: staged rows, deciles, the published view."""
    sink.ensure_tables(db)
    sink.reset_stage(db)
    n = 50
    rng = np.random.default_rng(1)
    ids = [f"C{i:03d}" for i in range(n)]
    scores = pd.DataFrame({"run_id": "r1", "customer_id": ids, "as_of": pd.Timestamp("2025-06-30"),
                           "churn_risk": rng.random(n), "response_prob": np.nan,
                           "predicted_value": rng.gamma(2.0, 50.0, n), "expected_profit": np.nan,
                           "response_value": 42.0})
    segments = pd.DataFrame({"run_id": "r1", "customer_id": ids, "as_of": date(2025, 6, 30),
                             "r_score": np.int16(3), "rfmw_segment": "loyal"})
    reasons = pd.DataFrame({"run_id": "r1", "customer_id": ids, "model": "churn", "rank": 1,
                            "feature": "recency_days", "contribution": rng.normal(size=n), "text": "recent"})
    for name, frame in ((sink.SCORES, scores), (sink.SEGMENTS, segments), (sink.REASONS, reasons)):
        sink.stage(db, name, frame)
    sink.rank_stage(db)
    attempt = sink.start_attempt(db, {"run_id": "r1", "as_of": date(2025, 6, 30)})
    sink.publish(db, "r1", attempt, sink.staged_counts(db), "fp")
    seen = db.warehouse.native_query("select * from current_customer_scores order by customer_id")
    assert seen["churn_risk"].to_numpy().tobytes() == scores["churn_risk"].to_numpy().tobytes()
    assert seen["response_prob"].isna().all() and seen["response_decile"].isna().all()
    assert sorted(seen["churn_decile"].astype(int).value_counts().tolist()) == [5] * 10
    assert db.fetchall("select count(*) from current_score_reasons") == [(n,)]


URLS = [
    "postgresql://propensity@127.0.0.1:5432/warehouse",
    "postgresql+psycopg://u:p%40ss%3Aw%2Fo%25rd+x%20y@db.example:5433/ware%20house?sslmode=require&connect_timeout=5",
    "postgresql:///warehouse?host=/var/run/postgresql",
    "postgresql://u@[::1]:5432/db",
    "postgresql://db.example/db",
    "postgresql://u@/db?host=h1:5432&host=h2:5433",
    "postgresql://u:@h",
]


@pytest.mark.parametrize("url", URLS)
def test_libpq_uri_means_what_psycopg_is_given(url: str) -> None:
    wh = Warehouse(url)
    engine = wh.engine()
    _, given = engine.dialect.create_connect_args(engine.url)
    want = {k: str(v) for k, v in given.items() if k != "context"}
    uri = sink.libpq_uri(engine)
    assert uri.startswith("postgresql://") and "+psycopg" not in uri
    assert conninfo_to_dict(uri) == want
    wh.close()


@pytest.mark.postgres
def test_unreachable_server_for_appends_is_one_line() -> None:
    db = sink.database(Warehouse("postgresql://u:secret@127.0.0.1:1/db"))
    with pytest.raises(WarehouseError) as e:
        db.append("customer_scores", pd.DataFrame({"run_id": ["r"]}))
    assert str(e.value).startswith("cannot reach PostgreSQL at postgresql://u:***@127.0.0.1:1/db: ")
    assert "Connection refused" in str(e.value) and "\n" not in str(e.value) and "secret" not in str(e.value)


def test_timestamps_from_the_clock_survive_the_arrow_conversion() -> None:
    """The sink's own times (`_now()`: naive UTC) reach Arrow unchanged."""
    import pyarrow as pa

    now = datetime(2025, 6, 30, 8, 5, 0, 123456)
    frame = pd.DataFrame({"at": [now, None]})
    batches = sink.arrow_batches(frame, pa.schema([pa.field("at", pa.timestamp("us"))])).read_all()
    assert batches.column("at").to_pylist() == [now, None]
