"""Warehouse I/O: the one module that reads and writes tables.

DuckDB (a local file) is the default warehouse; PostgreSQL is reached by a SQLAlchemy
URL. Feature SQL is DuckDB SQL: on PostgreSQL the canonical tables are read into an
in-memory DuckDB first, so the same definitions run on both.
"""

from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class WarehouseError(RuntimeError):
    """A warehouse problem the user can fix (unreachable server, missing table, ...)."""


def _check_name(name: str) -> str:
    # Table names go into SQL text; only plain identifiers are allowed.
    if not _NAME.match(name):
        raise ValueError(f"not a plain table name: {name!r}")
    return name


def _in_use(path: Path, error: Exception) -> str | None:
    """'warehouse PATH is in use by another process (PID n), ...' when another process holds the file, else None."""
    holder = re.search(r"\(PID (\d+)\)", str(error))
    if not (_is_lock_error(error) and holder):
        return None
    return f"warehouse {path} is in use by another process (PID {holder.group(1)}), e.g. a scoring run or training"


def _open_error(path: Path, error: Exception) -> str:
    """One line for a DuckDB file that cannot be opened; names the process holding it."""
    text = " ".join(str(error).split())
    in_use = _in_use(path, error)
    if in_use is not None:
        return f"{in_use}; wait for it to finish (DuckDB allows one writing process per file)"
    from propensity.faults import disk_fault

    fault = disk_fault(error)  # a read-only mount, a folder this user may not write, a full disk
    if fault is not None:
        return f"cannot open warehouse {path}: {fault.reason}; {fault.remedy('[warehouse] url')}"
    return f"cannot open warehouse {path}: {text}"


def _raise_disk_fault(error: BaseException, path: Path | None) -> None:
    """A write that failed for a full disk or a read-only/unwritable folder: one line, no traceback."""
    from propensity.faults import disk_fault

    fault = disk_fault(error)
    if fault is not None:
        if fault.path is None and path is not None:
            fault = dataclasses.replace(fault, path=str(path))
        raise WarehouseError(fault.line("the warehouse is unchanged", "[warehouse] url")) from None


def _is_lock_error(error: Exception) -> bool:
    """DuckDB's refusal because another process holds the file (not a missing or corrupt file)."""
    return "lock" in str(error).lower()


class Warehouse:
    """A connection to the warehouse named by `url` (duckdb:///file or postgresql://...)."""

    def __init__(self, url: str, read_only: bool = False, lock_wait: float = 0.0,
                 on_wait: Callable[[str], None] | None = None) -> None:
        """Name the warehouse; nothing is opened until the first use.

        Args:
            url: duckdb:///FILE or postgresql://...
            read_only: open a DuckDB file read-only (several processes may read at once).
            lock_wait: seconds to keep trying when another process holds the DuckDB file
                (0: fail at once, as the API does; commands use [warehouse] lock_wait_seconds).
            on_wait: told once, in one line, that the file is in use and we are waiting.
        """
        self.url = url
        self.read_only = read_only
        self.lock_wait = lock_wait
        self._on_wait = on_wait
        self._duck: duckdb.DuckDBPyConnection | None = None
        self._engine = None
        if url.startswith("duckdb://"):
            self.kind = "duckdb"
            path = url.removeprefix("duckdb://").removeprefix("/")
            self.path: Path | None = Path(path) if path and path != ":memory:" else None
        elif url.startswith("postgresql"):
            self.kind = "postgresql"
            self.path = None
        else:
            raise WarehouseError(f"warehouse url {url!r}: use duckdb:///FILE or postgresql://...")

    @classmethod
    def of(cls, settings, read_only: bool = False, on_wait: Callable[[str], None] | None = None) -> Warehouse:
        """The warehouse of a `[warehouse]` config section (url, lock_wait_seconds), for commands."""
        return cls(settings.url, read_only=read_only, lock_wait=settings.lock_wait_seconds, on_wait=on_wait)

    # -- connections -------------------------------------------------------------
    def duck(self) -> duckdb.DuckDBPyConnection:
        """A DuckDB connection on which the warehouse tables can be queried by name."""
        if self._duck is None:
            if self.kind == "duckdb":
                if self.path is None:
                    self._duck = duckdb.connect(":memory:")
                else:
                    if self.read_only and not self.path.exists():
                        raise WarehouseError(
                            f"warehouse {self.path} does not exist yet; import data first "
                            "(`propensity data import` or `propensity data synth`)"
                        )
                    self.path.parent.mkdir(parents=True, exist_ok=True)
                    self._duck = self._connect_waiting()
            else:
                from features.schema import TABLES

                # the input tables only: the features read these, and output tables can be large
                self._duck = duckdb.connect(":memory:")
                for name in self._pg_tables():
                    if name in TABLES or name.startswith("rejected_") or name == "synth_truth":
                        self._duck.register(name, self._pg_read(name))
        return self._duck

    def _connect_waiting(self) -> duckdb.DuckDBPyConnection:
        """Connect to the DuckDB file, waiting up to `lock_wait` seconds while another process holds it."""
        deadline = time.monotonic() + self.lock_wait
        told, pause = False, 0.05
        while True:
            try:
                return duckdb.connect(str(self.path), read_only=self.read_only)
            except duckdb.IOException as e:
                if not _is_lock_error(e) or time.monotonic() + pause > deadline:
                    message = _open_error(self.path, e)
                    if _is_lock_error(e) and self.lock_wait > 0:
                        message += f" (waited {self.lock_wait:g} s: [warehouse] lock_wait_seconds)"
                    raise WarehouseError(message) from None
                if not told and self._on_wait is not None:
                    holder = _in_use(self.path, e) or _open_error(self.path, e)
                    self._on_wait(f"{holder}; waiting up to {self.lock_wait:g} s for it ([warehouse] lock_wait_seconds)")
                    told = True
                time.sleep(pause)
                pause = min(pause * 2, 1.0)

    def engine(self):
        """The SQLAlchemy engine of a PostgreSQL warehouse."""
        if self.kind != "postgresql":
            raise ValueError("engine() is for PostgreSQL warehouses")
        return self._pg()

    def _pg(self):
        if self._engine is None:
            import sqlalchemy

            url = self.url
            if url.startswith("postgresql://"):
                url = "postgresql+psycopg://" + url.removeprefix("postgresql://")
            self._engine = sqlalchemy.create_engine(url)
        return self._engine

    def _pg_tables(self) -> list[str]:
        import sqlalchemy

        try:
            inspector = sqlalchemy.inspect(self._pg())
            return inspector.get_table_names() + inspector.get_view_names()
        except sqlalchemy.exc.OperationalError as e:
            first = str(e.orig).strip().splitlines()[0] if e.orig else str(e)
            raise WarehouseError(f"cannot reach PostgreSQL at {self._safe_url()}: {first}") from None

    def _pg_read(self, name: str) -> pd.DataFrame:
        with self._pg().connect() as conn:
            return pd.read_sql_table(name, conn)

    def _safe_url(self) -> str:
        return re.sub(r"//([^:/@]+):[^@]*@", r"//\1:***@", self.url)

    def close(self) -> None:
        if self._duck is not None:
            self._duck.close()
            self._duck = None
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def __enter__(self) -> Warehouse:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- reading -------------------------------------------------------------------
    def tables(self) -> list[str]:
        """Names of the tables (and views) in the warehouse."""
        if self.kind == "postgresql":
            return sorted(self._pg_tables())
        rows = self.duck().execute(
            "select table_name from information_schema.tables "
            "where table_schema = current_schema() order by 1"
        ).fetchall()
        return [r[0] for r in rows]

    def has(self, name: str) -> bool:
        return name in self.tables()

    def read(self, name: str) -> pd.DataFrame:
        """The whole table `name` as a DataFrame."""
        _check_name(name)
        if not self.has(name):
            raise WarehouseError(f"table {name!r} is not in the warehouse {self._safe_url()}")
        if self.kind == "postgresql":
            return self._pg_read(name)
        return self.duck().execute(f'select * from "{name}"').df()

    def query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run DuckDB SQL against the warehouse tables and return the result."""
        return self.duck().execute(sql, params or []).df()

    def native_query(self, sql: str, params: list | None = None) -> pd.DataFrame:
        """Run SQL on the warehouse's own engine (`?` placeholders): PostgreSQL on a server.

        For tables the warehouse itself holds (scores, runs, views); `query` runs DuckDB
        SQL over a copy of the input tables instead.
        """
        if self.kind == "duckdb":
            return self.query(sql, params)
        with self._pg().connect() as conn:
            result = conn.exec_driver_sql(sql.replace("%", "%%").replace("?", "%s"), tuple(params or ()))
            return pd.DataFrame(result.fetchall(), columns=list(result.keys()))

    def export_parquet(self, folder: Path, names: list[str] | None = None) -> dict[str, Path]:
        """Write tables as `<folder>/<name>.parquet` (default: the canonical tables present).

        The input of the Spark engine; DuckDB writes the files without going through pandas.
        """
        from features.schema import TABLES

        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        have = set(self.tables())
        wanted = names if names is not None else [n for n in TABLES if n in have]
        out = {}
        for name in wanted:
            _check_name(name)
            if name not in have:
                raise WarehouseError(f"table {name!r} is not in the warehouse {self._safe_url()}")
            path = folder / f"{name}.parquet"
            self.duck().execute(f"copy (select * from \"{name}\") to '{path}' (format parquet)")
            out[name] = path
        return out

    # -- writing -------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[TableWriter]:
        """Write several tables all-or-nothing: commit on success, roll back on any error."""
        if self.read_only:
            raise WarehouseError("warehouse opened read-only")
        if self.kind == "postgresql":
            with self._pg().begin() as conn:
                yield _PgWriter(conn)
            if self._duck is not None:  # the cached copy is stale now
                self._duck.close()
                self._duck = None
            return
        con = self.duck()
        con.execute("begin transaction")
        try:
            yield _DuckWriter(con)
        except BaseException as e:
            try:
                con.execute("rollback")
            except duckdb.Error:  # already aborted by DuckDB (a failed write): nothing to undo
                pass
            _raise_disk_fault(e, self.path)
            raise
        try:
            con.execute("commit")
        except duckdb.Error as e:  # DuckDB rolls back a failed commit itself
            _raise_disk_fault(e, self.path)
            raise


class TableWriter:
    """Writes tables inside an open transaction."""

    def replace(self, name: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError

    def append(self, name: str, frame: pd.DataFrame) -> None:
        raise NotImplementedError


class _DuckWriter(TableWriter):
    def __init__(self, con: duckdb.DuckDBPyConnection) -> None:
        self.con = con

    def replace(self, name: str, frame: pd.DataFrame) -> None:
        _check_name(name)
        self.con.register("_incoming", frame)
        try:
            self.con.execute(f'create or replace table "{name}" as select * from _incoming')
        finally:
            self.con.unregister("_incoming")

    def append(self, name: str, frame: pd.DataFrame) -> None:
        _check_name(name)
        exists = self.con.execute(
            "select count(*) from information_schema.tables where table_name = ?", [name]
        ).fetchall()[0][0]
        if not exists:
            self.replace(name, frame)
            return
        self.con.register("_incoming", frame)
        try:
            self.con.execute(f'insert into "{name}" by name select * from _incoming')
        finally:
            self.con.unregister("_incoming")


class _PgWriter(TableWriter):
    def __init__(self, conn) -> None:
        self.conn = conn

    def replace(self, name: str, frame: pd.DataFrame) -> None:
        _check_name(name)
        frame.to_sql(name, self.conn, if_exists="replace", index=False, chunksize=50_000)

    def append(self, name: str, frame: pd.DataFrame) -> None:
        _check_name(name)
        frame.to_sql(name, self.conn, if_exists="append", index=False, chunksize=50_000)
