"""Disk and permission faults: the environment's problems, told in one line.

A full disk, a quota, a read-only mount or a folder the user may not write are not bugs:
the command stops with what happened, where, and what to do. `disk_fault` recognises
them in an exception (an `OSError` with the errno, or the text DuckDB, SQLite, Arrow and
PostgreSQL put in their own errors), following the chain of exceptions only through
database and I/O errors, so that a real bug raised while handling one keeps its traceback.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass

# errno -> (what happened, what to do; {where} is the setting that names the place)
_KINDS = {
    errno.ENOSPC: ("no space left on device", "free space there and re-run"),
    errno.EDQUOT: ("disk quota exceeded", "free space or raise the quota, then re-run"),
    errno.EROFS: ("read-only file system", "remount it read-write, or point {where} at a writable folder, "
                                           "then re-run"),
    errno.EACCES: ("permission denied", "make its folder writable for this user, or point {where} at a "
                                        "writable folder, then re-run"),
}

# The same faults as the libraries word them in their own exception types.
_TEXTS = (
    (re.compile(r"no space left on device|database or disk is full|could not extend file", re.I), errno.ENOSPC),
    (re.compile(r"disk quota exceeded", re.I), errno.EDQUOT),
    (re.compile(r"read-only file system|attempt to write a readonly database", re.I), errno.EROFS),
    (re.compile(r"permission denied", re.I), errno.EACCES),
)
_PG_SQLSTATE = {"53100": errno.ENOSPC}  # PostgreSQL's disk_full
# Exceptions whose cause may be a disk fault: database drivers, Arrow, MLflow's store.
_IO_MODULES = ("duckdb", "_duckdb", "sqlite3", "sqlalchemy", "psycopg", "pyarrow", "mlflow")
_QUOTED_PATH = re.compile(r"""(?:file|directory)\s+["']([^"']+)["']""", re.I)


@dataclass(frozen=True)
class DiskFault:
    """What happened (`reason`), where (`path`, when known) and what to do (`remedy`)."""

    code: int  # the errno
    path: str | None

    @property
    def reason(self) -> str:
        return _KINDS[self.code][0]

    def remedy(self, setting: str | None = None) -> str:
        """What to do; `setting` names the config key that chose the place (e.g. [warehouse] url)."""
        return _KINDS[self.code][1].format(where=setting or "propensity.toml")

    def line(self, outcome: str = "", setting: str | None = None) -> str:
        """One line, e.g. `no space left on device writing /x/w.duckdb; free space there and re-run`.

        Args:
            outcome: what became of the data, appended after a colon (e.g. "the warehouse is unchanged").
            setting: the config key that names the place written to, when known.
        """
        if self.path is None:  # Arrow, for one, does not say which file
            where = " while writing"
            remedy = (self.remedy(setting) if self.code not in (errno.ENOSPC, errno.EDQUOT) else
                      "free space where this command writes (the warehouse's folder, [features] output_dir, "
                      "[serving] snapshot_dir, the MLflow store) and re-run")
        else:
            where = f" on {self.path}" if self.code == errno.EACCES else f" writing {self.path}"
            remedy = self.remedy(setting)
        return f"{self.reason}{where}; {remedy}" + (f": {outcome}" if outcome else "")


def _io_kind(exc: BaseException) -> bool:
    return isinstance(exc, OSError) or type(exc).__module__.split(".")[0] in _IO_MODULES


def _fault_of(exc: BaseException) -> DiskFault | None:
    if isinstance(exc, OSError) and exc.errno in _KINDS:
        path = exc.filename
        if path is None:
            quoted = _QUOTED_PATH.search(str(exc))
            path = quoted.group(1) if quoted else None
        if path is None and exc.errno == errno.EACCES:
            return None  # not a file (a socket on a privileged port, say): not ours to explain
        return DiskFault(exc.errno, None if path is None else str(path))
    if not _io_kind(exc):
        return None
    state = getattr(exc, "sqlstate", None) or getattr(getattr(exc, "orig", None), "sqlstate", None)
    if state in _PG_SQLSTATE:
        return DiskFault(_PG_SQLSTATE[state], None)
    text = str(exc)
    for pattern, code in _TEXTS:
        if pattern.search(text):
            quoted = _QUOTED_PATH.search(text)
            return DiskFault(code, quoted.group(1) if quoted else None)
    return None


def disk_fault(exc: BaseException) -> DiskFault | None:
    """The disk or permission fault behind `exc`, or None when it is something else.

    Follows `__cause__`/`__context__` (e.g. DuckDB's "transaction is aborted" raised while
    cleaning up after "No space left on device") only through database and I/O errors.
    """
    seen: set[int] = set()
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        fault = _fault_of(current)
        if fault is not None:
            return fault
        if not _io_kind(current):
            return None
        current = current.__cause__ or current.__context__
    return None
