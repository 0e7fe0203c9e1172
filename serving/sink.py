"""The segment tables: schema, staging, the one publishing transaction, the run lock.

The only serving module that writes to the warehouse: a DuckDB file or a PostgreSQL
server (rows bulk-loaded with binary COPY through the ADBC driver). The SQL below is
written once, in the subset both speak; `_Db` hides the drivers (placeholders,
transactions, bulk loading).

A run appends its rows chunk by chunk to `stage_*` tables, then `publish` moves them
into the published tables in one transaction: delete any earlier rows of the same
run_id (a re-run replaces, never duplicates), insert the staged rows, mark the attempt
succeeded. Readers use the `current_*` views, which show only the latest successful
run, so a failed, killed or half-written run is never visible.

`scoring_runs` holds one row per attempt (run_id, attempt): run_id is deterministic
(as-of date + model versions + campaign kind), so an attempt that fails while an
earlier attempt of the same run_id is published leaves that earlier attempt
'succeeded' and its rows untouched; a successful re-run marks it 'superseded'. An
attempt whose process died (SIGKILL, power cut) stays 'running' until the next run on
the warehouse finds its process gone and marks it 'stale'.
"""

from __future__ import annotations

import os
import re
import socket
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from urllib.parse import quote

import pandas as pd

from features.load import Warehouse, WarehouseError
from propensity.failpoints import FAILPOINT_ENV, failpoint  # noqa: F401 (serving.sink.failpoint: its old home)

if TYPE_CHECKING:
    import pyarrow as pa
    import sqlalchemy

RUNS = "scoring_runs"
LOCK = "scoring_lock"
SCORES = "customer_scores"
SEGMENTS = "customer_segments"
REASONS = "score_reasons"
PUBLISHED = (SCORES, SEGMENTS, REASONS)
STAGE = {name: f"stage_{name}" for name in PUBLISHED}
RANKED = "stage_ranked_scores"
VIEWS = {name: f"current_{name}" for name in PUBLISHED}

MODELS = ("churn", "response", "value")
# score column per model, as published
SCORE_COLUMN = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value",
                "profit": "expected_profit"}
DECILES = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value",
           "profit": "expected_profit"}
TIERS = {"churn": "churn_tier", "response": "response_tier", "value": "predicted_value_tier",
         "profit": "profit_tier"}

# Column lists in the subset of SQL types DuckDB and PostgreSQL share.
_COLUMNS: dict[str, list[tuple[str, str]]] = {
    RUNS: [
        ("run_id", "varchar not null"), ("attempt", "integer not null"), ("as_of", "date not null"),
        ("started_at", "timestamp not null"), ("finished_at", "timestamp"), ("status", "varchar not null"),
        ("churn_version", "varchar"), ("response_version", "varchar"), ("value_version", "varchar"),
        ("campaign_kind", "varchar"), ("margin", "double precision"), ("contact_cost", "double precision"),
        ("chunk_size", "bigint"), ("reasons_per_model", "integer"),
        ("customers", "bigint"), ("score_rows", "bigint"), ("segment_rows", "bigint"), ("reason_rows", "bigint"),
        ("data_fingerprint", "varchar"), ("snapshot_path", "varchar"), ("snapshot_sha256", "varchar"),
        ("host", "varchar"), ("pid", "integer"), ("error", "varchar"),
        # Models without a champion when the run started, and why (their score columns are null).
        ("missing_models", "varchar"),
        # What one response is worth (serving.response_value): k x average order value, k and its source.
        ("response_value_k", "double precision"), ("response_value_source", "varchar"),
        # BTYD parameters fitted on the run's snapshot (JSON; features.btyd.add_btyd_features), null
        # when no model reads the BTYD features.
        ("btyd_params", "varchar"),
        # Mean |contribution| per feature of each model over the run's customers, accumulated
        # while explaining (JSON {model: {"rows": n, "scale": ..., "mean_abs": {feature: value}}}).
        ("attributions", "varchar"),
    ],
    LOCK: [("lock_name", "varchar primary key"), ("run_id", "varchar"), ("claimed_at", "timestamp"),
           ("pid", "integer"), ("host", "varchar")],
    SCORES: [
        ("run_id", "varchar not null"), ("customer_id", "varchar not null"), ("as_of", "date not null"),
        ("churn_risk", "double precision"), ("response_prob", "double precision"),
        ("predicted_value", "double precision"), ("expected_profit", "double precision"),
        ("churn_decile", "smallint"), ("response_decile", "smallint"), ("value_decile", "smallint"),
        ("profit_decile", "smallint"),
        ("churn_tier", "varchar"), ("response_tier", "varchar"), ("predicted_value_tier", "varchar"),
        ("profit_tier", "varchar"),
        # value one response brings (average order value x k), the value in expected_profit
        ("response_value", "double precision"),
    ],
    SEGMENTS: [
        ("run_id", "varchar not null"), ("customer_id", "varchar not null"), ("as_of", "date not null"),
        ("r_score", "smallint"), ("f_score", "smallint"), ("m_score", "smallint"), ("w_score", "smallint"),
        ("rfmw_segment", "varchar"), ("value_tier", "varchar"), ("loyalty_tier", "varchar"),
        ("activity", "varchar"), ("risk_tier", "varchar"),
    ],
    REASONS: [
        ("run_id", "varchar not null"), ("customer_id", "varchar not null"), ("model", "varchar not null"),
        ("rank", "smallint not null"), ("feature", "varchar"), ("feature_value", "varchar"),
        ("contribution", "double precision"), ("scale", "varchar"), ("effect", "double precision"),
        ("text", "varchar"),
    ],
}
_KEYS = {RUNS: "primary key (run_id, attempt)"}
_INDEXES = {SCORES: ("run_id", "customer_id"), SEGMENTS: ("run_id", "customer_id"),
            REASONS: ("run_id", "customer_id")}

# Score tiers from deciles (10 = highest score): the top two deciles, the next three, the rest.
# (`predicted_value_tier` is the model's; `value_tier` in customer_segments is the RFMW one.)
TIER_SQL = "case when {d} is null then null when {d} >= 9 then 'high' when {d} >= 6 then 'medium' else 'low' end"


class ScoringError(ValueError):
    """A scoring problem the user can fix (lock held, no customers, ...); one-line message."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


_MISSING_ITEM = re.compile(r"(?:^|;\s*)(churn|response|value):\s")


def is_null(value: object) -> bool:
    """A scoring_runs value that is null: None, NaN or pandas' NA/NaT (as the drivers return them)."""
    return value is None or bool(pd.isna(value))


def missing_text(missing: dict[str, str]) -> str | None:
    """`scoring_runs.missing_models` from model -> why: "response: why; churn: why" (None when none)."""
    return "; ".join(f"{k}: {v}" for k, v in missing.items()) or None


def parse_missing(text: object) -> dict[str, str]:
    """`scoring_runs.missing_models` back to model -> why ({} for null)."""
    if is_null(text):
        return {}
    parts = _MISSING_ITEM.split(str(text))
    return {parts[i]: parts[i + 1].strip().rstrip(";").strip() for i in range(1, len(parts) - 1, 2)}


def columns(name: str) -> list[str]:
    """Column names of a segment table, in order."""
    return [c for c, _ in _COLUMNS[name]]


# -- the drivers -------------------------------------------------------------------------

# PostgreSQL column types the binary bulk writer fills (as ADBC names them), each from the
# Arrow type ADBC reads it as: text, varchar -> string, int2/4/8 -> int16/32/64,
# float8 -> float64, bool, date -> date32, timestamp -> timestamp[us], timestamptz ->
# timestamp[us, UTC]. Binary COPY needs the exact type of each column.
_BINARY_TYPES = frozenset({"varchar", "text", "int2", "int4", "int8", "float8", "bool", "date",
                           "timestamp", "timestamptz"})
_BATCH_ROWS = 200_000  # rows converted to Arrow at a time (bounds the copy next to the frame)


class _Db:
    """SQL on the warehouse itself: `?` placeholders, nested-free transactions, bulk appends.

    PostgreSQL uses two connections: statements go through the warehouse's SQLAlchemy
    engine (psycopg), bulk appends through one ADBC connection (binary COPY), opened on
    the first append and closed with `close()` or when this object is collected. A
    transaction therefore either runs statements or appends rows, never both (the two
    would commit separately, and a statement holding a lock on the appended table would
    wait for the append forever); mixing them raises RuntimeError.
    """

    def __init__(self, warehouse: Warehouse) -> None:
        if warehouse.read_only:
            raise ScoringError("the warehouse is opened read-only; scoring writes tables")
        self.warehouse = warehouse
        self.kind = warehouse.kind
        self._conn = None  # PostgreSQL: the SQLAlchemy connection of the open transaction
        self._statements = 0  # PostgreSQL: statements run in the open transaction
        self._appended = False  # PostgreSQL: rows appended in the open transaction (uncommitted)
        self._bulk = None  # PostgreSQL: the ADBC connection for appends
        self._close_bulk: weakref.finalize | None = None
        self._arrow_types: dict[str, dict[str, pa.Field]] = {}  # table -> column -> Arrow field

    # PostgreSQL ---------------------------------------------------------------------
    @contextmanager
    def _pg_conn(self):
        if self._conn is not None:
            if self._appended:
                raise RuntimeError("a PostgreSQL transaction of the sink either appends rows or runs "
                                   "statements, not both")
            self._statements += 1
            yield self._conn
            return
        with self.warehouse.engine().begin() as conn:
            yield conn

    @staticmethod
    def _pg_sql(sql: str) -> str:
        return sql.replace("%", "%%").replace("?", "%s")

    def _bulk_conn(self):
        """The ADBC connection for appends (autocommit off), opened on first use."""
        if self._bulk is None:
            import adbc_driver_postgresql.dbapi as adbc

            try:
                conn = adbc.connect(libpq_uri(self.warehouse.engine()))
            except adbc.Error as e:
                first = re.sub(r"^\w+: \[libpq\] (Failed to connect: )?", "", str(e).strip().splitlines()[0])
                raise WarehouseError(f"cannot reach PostgreSQL at {self.warehouse._safe_url()}: {first}") from None
            self._bulk = conn
            self._close_bulk = weakref.finalize(self, conn.close)
        return self._bulk

    def _abandon_appends(self) -> None:
        """Roll back the ADBC transaction; a connection that cannot even do that is closed."""
        try:
            self._bulk.rollback()
        except Exception:
            self.close()

    def _arrow_schema(self, table: str, names: list[str]) -> pa.Schema:
        """The Arrow types binary COPY needs for these columns of `table` (read once per table)."""
        import pyarrow as pa

        have = self._arrow_types.get(table)
        if have is None or any(n not in have for n in names):  # first use, or columns added since
            with self._bulk_conn().cursor() as cur:
                cur.execute(f"select * from {table} where false")
                have = {f.name: f for f in cur.fetch_arrow_table().schema}
            self._arrow_types[table] = have
        fields = []
        for name in names:
            if name not in have:
                raise ValueError(f"table {table} has no column {name!r}")
            field = have[name]
            pg_type = (field.metadata or {}).get(b"POSTGRESQL:type", b"?").decode()
            if pg_type not in _BINARY_TYPES:
                raise TypeError(f"column {name!r} of {table} is of PostgreSQL type {pg_type}, which the "
                                f"binary writer does not fill (it fills {', '.join(sorted(_BINARY_TYPES))})")
            fields.append(pa.field(name, field.type))
        return pa.schema(fields)

    def close(self) -> None:
        """Close the ADBC connection, if one was opened (statements' connections are pooled)."""
        if self._close_bulk is not None:
            self._close_bulk()
        self._bulk, self._close_bulk = None, None

    # both -------------------------------------------------------------------------------
    def execute(self, sql: str, params: Sequence = ()) -> None:
        if self.kind == "duckdb":
            self.warehouse.duck().execute(sql, list(params))
        else:
            with self._pg_conn() as conn:
                conn.exec_driver_sql(self._pg_sql(sql), tuple(params))

    def fetchall(self, sql: str, params: Sequence = ()) -> list[tuple]:
        if self.kind == "duckdb":
            return self.warehouse.duck().execute(sql, list(params)).fetchall()
        with self._pg_conn() as conn:
            return [tuple(r) for r in conn.exec_driver_sql(self._pg_sql(sql), tuple(params)).fetchall()]

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All statements inside commit together or not at all (on PostgreSQL: all appends; see `_Db`)."""
        if self.kind == "duckdb":
            con = self.warehouse.duck()
            con.execute("begin transaction")
            try:
                yield
            except BaseException:
                con.execute("rollback")
                raise
            con.execute("commit")
            return
        with self.warehouse.engine().begin() as conn:
            self._conn, self._statements, self._appended = conn, 0, False
            try:
                yield
                if self._appended:
                    self._bulk.commit()
            except BaseException:
                if self._appended:
                    self._abandon_appends()
                raise
            finally:
                self._conn, self._appended = None, False

    def append(self, table: str, frame: pd.DataFrame) -> None:
        """Bulk-append `frame` (columns by name) to an existing table: DuckDB scan or PostgreSQL binary COPY.

        On PostgreSQL the rows commit at the end of the enclosing `transaction()`, or at
        once outside one. Floats arrive bit for bit; see `arrow_batches` for nulls and times.
        """
        if self.kind == "duckdb":
            con = self.warehouse.duck()
            con.register("_incoming", frame)
            try:
                con.execute(f"insert into {table} by name select * from _incoming")
            finally:
                con.unregister("_incoming")
            return
        if self._conn is not None and self._statements:
            raise RuntimeError("a PostgreSQL transaction of the sink either appends rows or runs statements, not both")
        if frame.empty:
            return
        bulk = self._bulk_conn()
        try:
            batches = arrow_batches(frame, self._arrow_schema(table, [str(c) for c in frame.columns]))
            with bulk.cursor() as cur:
                cur.adbc_ingest(table, batches, mode="append")  # COPY ... FROM STDIN (FORMAT binary)
            if self._conn is None:
                bulk.commit()
        except BaseException:
            self._abandon_appends()
            raise
        if self._conn is not None:
            self._appended = True

    def existing_columns(self, table: str) -> list[str]:
        rows = self.fetchall("select column_name from information_schema.columns where table_name = ? "
                             "and table_schema = current_schema()", [table])
        return [r[0] for r in rows]

    def is_conflict(self, error: BaseException) -> bool:
        """A write lost a race against another connection (same key, or a transaction conflict)."""
        text = f"{type(error).__name__} {getattr(error, 'orig', '')} {error}".lower()
        return any(w in text for w in ("unique", "duplicate key", "constraint", "conflict"))


def libpq_uri(engine: sqlalchemy.Engine) -> str:
    """The libpq URI of the server and options the SQLAlchemy engine's psycopg connections use.

    Built from the dialect's own connect arguments (the `+psycopg` driver gone, several
    hosts and `?host=` sockets resolved as SQLAlchemy resolves them), every part
    percent-encoded.
    """
    _, params = engine.dialect.create_connect_args(engine.url)
    kw = {k: str(v) for k, v in params.items() if isinstance(v, (str, int)) and not isinstance(v, bool)}

    def enc(text: str) -> str:
        return quote(text, safe="")

    auth = ""
    if "user" in kw:
        auth = enc(kw.pop("user")) + (f":{enc(kw.pop('password'))}" if "password" in kw else "") + "@"
    netloc, host, port = "", kw.get("host", ""), kw.get("port", "")
    if host and "," not in host + port and not host.startswith("/"):  # one TCP host: in the authority
        netloc = f"[{kw.pop('host')}]" if ":" in host else enc(kw.pop("host"))
        netloc += f":{kw.pop('port')}" if port else ""
    path = f"/{enc(kw.pop('dbname'))}" if "dbname" in kw else ""
    query = "&".join(f"{enc(k)}={enc(v)}" for k, v in kw.items())  # sockets, host lists, sslmode, ...
    return f"postgresql://{auth}{netloc}{path}" + (f"?{query}" if query else "")


def arrow_batches(frame: pd.DataFrame, schema: pa.Schema) -> pa.RecordBatchReader:
    """`frame` as Arrow record batches of `schema` (the target table's types), as the old text COPY stored them.

    pandas' NaN and NA become null (NaN in a float column is written as NULL); other
    floats keep their bits. Integers and floats are cast to the column type only when
    the values fit exactly (else ArrowInvalid). A zone-aware time bound for a `date` or
    `timestamp` column keeps its wall-clock time (PostgreSQL ignores a zone in text for
    those types); for `timestamptz` it keeps its instant, and a naive time is taken as
    UTC (the sink's convention: `_now()`). Nanoseconds are rounded to microseconds.
    """
    import pyarrow as pa
    import pyarrow.compute as pc

    def column(values: pa.ChunkedArray, target: pa.DataType) -> pa.ChunkedArray:
        if pa.types.is_timestamp(values.type):
            if values.type.tz is not None and not getattr(target, "tz", None):
                values = pc.local_timestamp(values)
            if values.type.unit == "ns":
                values = pc.round_temporal(values, unit="microsecond")
        return values.cast(target)

    def batches() -> Iterator[pa.RecordBatch]:
        for start in range(0, len(frame), _BATCH_ROWS):
            part = pa.Table.from_pandas(frame.iloc[start:start + _BATCH_ROWS], preserve_index=False)
            part = pa.table([column(part.column(i), f.type) for i, f in enumerate(schema)], schema=schema)
            yield from part.to_batches()

    return pa.RecordBatchReader.from_batches(schema, batches())


def database(warehouse: Warehouse) -> _Db:
    """The writing handle for the segment tables of this warehouse."""
    return _Db(warehouse)


# -- schema --------------------------------------------------------------------------------

def create_tables(db: _Db, tables: dict[str, list[tuple[str, str]]], keys: dict[str, str] | None = None) -> None:
    """Create each table (name -> [(column, SQL type)]) if missing; add columns an existing one lacks."""
    for name, cols in tables.items():
        body = ", ".join(f'"{c}" {t}' for c, t in cols)
        if keys and name in keys:
            body += ", " + keys[name]
        db.execute(f"create table if not exists {name} ({body})")
        have = set(db.existing_columns(name))
        for c, t in cols:
            if c not in have:
                db.execute(f'alter table {name} add column "{c}" {t.replace(" not null", "")}')


def ensure_tables(db: _Db) -> None:
    """Create the run, lock and published tables and the current_* views if missing.

    Columns added by later versions of propensity are added to existing tables.
    """
    create_tables(db, _COLUMNS, _KEYS)
    if db.kind == "postgresql":  # lookups by customer (the API); DuckDB's zone maps need no index
        for name, key in _INDEXES.items():
            db.execute(f"create index if not exists {name}_run_customer on {name} ({', '.join(key)})")
    latest = (f"(select run_id from {RUNS} where status = 'succeeded' "
              "order by as_of desc, finished_at desc limit 1)")
    for name, view in VIEWS.items():
        db.execute(f"create or replace view {view} as select * from {name} where run_id = {latest}")


# -- lock ----------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim_lock(db: _Db, run_id: str, break_lock: bool = False) -> None:
    """Claim the one scoring lock of this warehouse, or raise ScoringError naming the holder.

    A lock left by a process of this host that no longer exists is taken over (and that
    process's 'running' attempts are marked 'stale'). `break_lock` takes over any lock:
    for a holder on another host that is known to be gone.
    """
    ensure_tables(db)
    host, pid = socket.gethostname(), os.getpid()
    try:
        with db.transaction():
            held = db.fetchall(f"select run_id, claimed_at, pid, host from {LOCK} where lock_name = 'scoring'")
            if held:
                other_run, since, other_pid, other_host = held[0]
                dead = other_host == host and other_pid != pid and not _pid_alive(other_pid)
                if not (dead or break_lock):
                    hint = ("" if other_host == host else
                            "; if that process is gone, re-run with --break-lock")
                    raise ScoringError(
                        f"another scoring run ({other_run}, pid {other_pid} on {other_host}, since "
                        f"{since:%Y-%m-%d %H:%M:%S} UTC) holds the lock on this warehouse; "
                        f"wait for it to finish{hint}"
                    )
                db.execute(f"delete from {LOCK} where lock_name = 'scoring'")
            db.execute(f"insert into {LOCK} values ('scoring', ?, ?, ?, ?)", [run_id, _now(), pid, host])
            _mark_stale(db, host, break_lock)
    except ScoringError:
        raise
    except Exception as e:
        if db.is_conflict(e):  # another connection claimed it between our read and our commit
            raise ScoringError("another scoring run claimed the lock on this warehouse at the same moment; "
                               "wait for it to finish") from None
        raise


def _mark_stale(db: _Db, host: str, everywhere: bool) -> None:
    """Attempts still 'running' whose process is gone: killed runs, never published."""
    running = db.fetchall(f"select run_id, attempt, pid, host from {RUNS} where status = 'running'")
    for run_id, attempt, pid, run_host in running:
        if everywhere or (run_host == host and pid is not None and not _pid_alive(pid)):
            db.execute(f"update {RUNS} set status = 'stale', error = ? where run_id = ? and attempt = ?",
                       [f"process {pid} on {run_host} ended without finishing (killed?)", run_id, attempt])


def release_lock(db: _Db, run_id: str) -> None:
    """Release the lock if this run holds it."""
    with db.transaction():
        db.execute(f"delete from {LOCK} where lock_name = 'scoring' and run_id = ?", [run_id])


# -- run rows ------------------------------------------------------------------------------

def start_attempt(db: _Db, run: dict) -> int:
    """Insert a 'running' row for a new attempt of `run['run_id']`; returns the attempt number."""
    with db.transaction():
        attempt = db.fetchall(f"select coalesce(max(attempt), 0) + 1 from {RUNS} where run_id = ?",
                              [run["run_id"]])[0][0]
        row = {**run, "attempt": int(attempt), "started_at": _now(), "status": "running",
               "host": socket.gethostname(), "pid": os.getpid()}
        cols = ", ".join(f'"{c}"' for c in row)
        db.execute(f"insert into {RUNS} ({cols}) values ({', '.join('?' for _ in row)})", list(row.values()))
    return int(attempt)


def update_attempt(db: _Db, run_id: str, attempt: int, **values: object) -> None:
    """Record facts learnt during the run (snapshot path and hash, fingerprint)."""
    sets = ", ".join(f'"{c}" = ?' for c in values)
    with db.transaction():
        db.execute(f"update {RUNS} set {sets} where run_id = ? and attempt = ?", [*values.values(), run_id, attempt])


def mark_failed(db: _Db, run_id: str, attempt: int, error: str) -> None:
    """Record that an attempt failed (its staged rows are dropped; published rows untouched)."""
    with db.transaction():
        db.execute(f"update {RUNS} set status = 'failed', finished_at = ?, error = ? "
                   "where run_id = ? and attempt = ?", [_now(), error[:2000], run_id, attempt])
    drop_stage(db)


# -- staging -------------------------------------------------------------------------------

def reset_stage(db: _Db) -> None:
    """Empty staging tables shaped like the published ones (one run at a time: the lock)."""
    drop_stage(db)
    for name, stage_name in STAGE.items():
        db.execute(f"create table {stage_name} as select * from {name} where false")


def drop_stage(db: _Db) -> None:
    for stage_name in (*STAGE.values(), RANKED):
        db.execute(f"drop table if exists {stage_name}")


def stage(db: _Db, name: str, frame: pd.DataFrame) -> None:
    """Append one chunk of rows of published table `name` to its staging table."""
    with db.transaction():
        db.append(STAGE[name], frame)


def rank_stage(db: _Db) -> None:
    """Deciles (1-10, 10 = highest, equal counts; ties by customer id) and tiers over the whole run.

    A score that is null (its model has no champion) gets a null decile and tier.
    """
    ranks = ", ".join(f"case when {col} is null then null else ntile(10) over "
                      f"(partition by {col} is null order by {col}, customer_id) end as {key}_decile"
                      for key, col in DECILES.items())
    keep = [c for c in columns(SCORES) if not c.endswith(("_decile", "_tier"))]
    out = [*keep, *(f"{k}_decile" for k in DECILES),
           *(f"{TIER_SQL.format(d=f'{k}_decile')} as {TIERS[k]}" for k in DECILES)]
    db.execute(f"drop table if exists {RANKED}")
    db.execute(f"create table {RANKED} as select {', '.join(out)} from "
               f"(select {', '.join(keep)}, {ranks} from {STAGE[SCORES]}) r")


def staged_counts(db: _Db) -> dict[str, int]:
    return {name: int(db.fetchall(f"select count(*) from {stage_name}")[0][0]) for name, stage_name in STAGE.items()}


# -- publishing ----------------------------------------------------------------------------

def publish_table(db: _Db, name: str, run_id: str) -> None:
    """Inside the publishing transaction: replace run_id's rows of `name` by the staged ones."""
    source = RANKED if name == SCORES else STAGE[name]
    cols = ", ".join(f'"{c}"' for c in columns(name))
    db.execute(f"delete from {name} where run_id = ?", [run_id])
    db.execute(f"insert into {name} ({cols}) select {cols} from {source}")
    failpoint(f"publish:{name}")


def publish(db: _Db, run_id: str, attempt: int, counts: dict[str, int], fingerprint: str) -> None:
    """Make the staged run the published one, all or nothing."""
    with db.transaction():
        for name in PUBLISHED:
            publish_table(db, name, run_id)
        db.execute(f"update {RUNS} set status = 'superseded' where run_id = ? and status = 'succeeded'", [run_id])
        db.execute(
            f"update {RUNS} set status = 'succeeded', finished_at = ?, customers = ?, score_rows = ?, "
            "segment_rows = ?, reason_rows = ?, data_fingerprint = ? where run_id = ? and attempt = ?",
            [_now(), counts[SCORES], counts[SCORES], counts[SEGMENTS], counts[REASONS], fingerprint, run_id, attempt],
        )
        failpoint("publish:before-commit")
    drop_stage(db)


# -- reading (lineage) ---------------------------------------------------------------------

def run_row(warehouse: Warehouse, run_id: str, attempt: int | None = None) -> dict:
    """The scoring_runs row of one attempt (default: the run's published attempt)."""
    if attempt is None:
        sql = f"select * from {RUNS} where run_id = ? and status = 'succeeded'"
        params: list = [run_id]
    else:
        sql = f"select * from {RUNS} where run_id = ? and attempt = ?"
        params = [run_id, attempt]
    frame = warehouse.native_query(sql, params) if warehouse.has(RUNS) else pd.DataFrame()
    if frame.empty:
        what = f"scoring run {run_id!r}" + (f" attempt {attempt}" if attempt is not None else " (published)")
        raise WarehouseError(f"no {what} in the warehouse; list runs with `propensity runs`")
    return frame.iloc[0].to_dict()
