"""The current scoring run, held in memory for the API: reads answer without touching the warehouse.

A published run never changes (a re-run publishes a new attempt), so the API copies the
latest successful run's scores, segments and reasons into Arrow tables once and answers
customer look-ups from them. The warehouse is only opened to see whether a newer run
was published:

- DuckDB: when the file (or its WAL) changed since the last look, at most every
  `recheck_seconds`, read-only and only for as long as the check (and, for a new run,
  the copy) takes. A scoring run that wants the file therefore waits at most that long
  (`[warehouse] lock_wait_seconds` bounds its wait). While a writer holds the file the
  API keeps answering from the copy it has and says so in /health.
- PostgreSQL: every `recheck_seconds`, one small query on the open connection pool.

Memory: about 1 KB per customer with five reasons for each of three models (Arrow
strings, not Python objects), e.g. ~50 MB for the 50,000-customer sample world.
"""

from __future__ import annotations

import atexit
import gc
import threading
import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa

from features.load import Warehouse
from serving import sink

# the identity of a published run: a re-run of the same run id is a new attempt
_RUN_KEY = ("run_id", "attempt", "finished_at")
_LATEST = (f"select * from {sink.RUNS} where status = 'succeeded' "
           "order by as_of desc, finished_at desc limit 1")


class ServiceBusy(RuntimeError):
    """No scoring run to answer from (yet), or the warehouse cannot be read now; one-line message (HTTP 503)."""


def plain(value: Any) -> Any:
    """A warehouse value as JSON-ready Python: None for missing, datetimes, plain numbers."""
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    return value


@dataclass(frozen=True)
class CurrentRun:
    """One published run's rows, indexed by customer; immutable once built."""

    run: dict[str, Any]
    scores: pa.Table
    segments: pa.Table
    reasons: pa.Table  # sorted by customer_id, model, rank
    has_campaigns: bool
    loaded_seconds: float
    _score_row: dict[str, int] = field(repr=False)
    _segment_row: dict[str, int] = field(repr=False)
    _reason_span: dict[str, tuple[int, int]] = field(repr=False)

    @property
    def run_id(self) -> str:
        return str(self.run["run_id"])

    @property
    def customers(self) -> int:
        return self.scores.num_rows

    def score(self, customer_id: str) -> dict[str, Any] | None:
        """The customer's customer_scores row, or None when the run has no such customer."""
        return _one(self.scores, self._score_row.get(customer_id))

    def segment(self, customer_id: str) -> dict[str, Any] | None:
        return _one(self.segments, self._segment_row.get(customer_id))

    def reasons_of(self, customer_id: str) -> list[dict[str, Any]]:
        """The customer's stored reasons, by model then rank."""
        span = self._reason_span.get(customer_id)
        if span is None:
            return []
        return self.reasons.slice(span[0], span[1] - span[0]).to_pylist()

    def scores_frame(self) -> pd.DataFrame:
        return self.scores.to_pandas()

    def segments_frame(self) -> pd.DataFrame:
        return self.segments.to_pandas()


def _one(table: pa.Table, row: int | None) -> dict[str, Any] | None:
    if row is None:
        return None
    return {k: plain(v) for k, v in table.slice(row, 1).to_pylist()[0].items()}


def _row_index(table: pa.Table) -> dict[str, int]:
    ids = table.column("customer_id").to_pylist()
    return dict(zip(ids, range(len(ids))))


def _spans(table: pa.Table) -> dict[str, tuple[int, int]]:
    """customer_id -> (first row, end row) of a table sorted by customer_id."""
    ids = np.asarray(table.column("customer_id").to_pylist(), dtype=object)
    if not len(ids):
        return {}
    starts = np.flatnonzero(np.r_[True, ids[1:] != ids[:-1]])
    ends = np.r_[starts[1:], len(ids)]
    return dict(zip(ids[starts].tolist(), zip(starts.tolist(), ends.tolist())))


def _arrow(frame: pd.DataFrame) -> pa.Table:
    return pa.Table.from_pandas(frame, preserve_index=False)


def load_run(wh: Warehouse, run: dict[str, Any]) -> CurrentRun:
    """Copy one published run's rows out of the warehouse."""
    started = time.perf_counter()
    run_id = run["run_id"]
    scores = wh.native_query(f"select * from {sink.SCORES} where run_id = ?", [run_id])
    segments = wh.native_query(f"select * from {sink.SEGMENTS} where run_id = ?", [run_id])
    reasons = wh.native_query(f"select * from {sink.REASONS} where run_id = ? order by customer_id, model, rank",
                              [run_id])
    campaigns = has_campaigns(wh)
    scores_t, segments_t, reasons_t = _arrow(scores), _arrow(segments), _arrow(reasons)
    return CurrentRun(run=run, scores=scores_t, segments=segments_t, reasons=reasons_t, has_campaigns=campaigns,
                      loaded_seconds=time.perf_counter() - started, _score_row=_row_index(scores_t),
                      _segment_row=_row_index(segments_t), _reason_span=_spans(reasons_t))


def has_campaigns(wh: Warehouse) -> bool:
    """The warehouse has campaign history (a campaigns table with rows)."""
    return wh.has("campaigns") and int(wh.query("select count(*) as n from campaigns")["n"][0]) > 0


def latest_run(wh: Warehouse) -> dict[str, Any] | None:
    """The latest successful scoring run's row, or None."""
    if not wh.has(sink.RUNS):
        return None
    frame = wh.native_query(_LATEST)
    if frame.empty:
        return None
    return {k: plain(v) for k, v in frame.iloc[0].to_dict().items()}


_UNFREEZE_AT_EXIT = False


def quiet_collector() -> None:
    """Take what is in memory now out of the cyclic garbage collector's full passes.

    A loaded run and models are millions of long-lived objects; a full collection
    walking them all stalls every request for a fraction of a second (seen as p99
    spikes under load). Frozen objects are still freed by reference counting when
    dropped (a newer run replacing this one); only reference cycles among them would stay.
    """
    global _UNFREEZE_AT_EXIT
    gc.collect()
    gc.freeze()
    if not _UNFREEZE_AT_EXIT:  # let the collector see them again at shutdown (bindings report leaks otherwise)
        atexit.register(gc.unfreeze)
        _UNFREEZE_AT_EXIT = True


def _key(run: dict[str, Any] | None) -> tuple | None:
    return None if run is None else tuple(str(run.get(k)) for k in _RUN_KEY)


class RunCache:
    """The current run for the API, refreshed when the warehouse shows a newer one.

    Args:
        url: the warehouse URL.
        opener: opens the warehouse for one short read (the API's gate, which keeps
            in-process readers and writers apart); a context manager yielding a Warehouse.
        recheck_seconds: how often at most the warehouse is looked at for a new run.
    """

    def __init__(self, url: str, opener: Callable[[], AbstractContextManager[Warehouse]],
                 recheck_seconds: float = 1.0) -> None:
        self.url = url
        self._open = opener
        self.recheck_seconds = recheck_seconds
        self._path = Warehouse(url).path if url.startswith("duckdb") else None
        self._lock = threading.Lock()
        self._current: CurrentRun | None = None
        self._signature: tuple | None = None
        self._looked_at = float("-inf")  # when the file's signature was last compared
        self.last_error: str | None = None  # why the last look at the warehouse failed (e.g. locked)

    def _file_signature(self) -> tuple | None:
        if self._path is None:
            return None
        out = []
        for path in (self._path, Path(f"{self._path}.wal")):
            try:
                st = path.stat()
                out.append((st.st_mtime_ns, st.st_size, st.st_ino))
            except OSError:
                out.append(None)
        return tuple(out)

    def _due(self) -> bool:
        """Time to look at the warehouse again? At most every `recheck_seconds`; for a DuckDB
        file whose run is held, only when the file changed since the last look."""
        now = time.monotonic()
        if now - self._looked_at < self.recheck_seconds:
            return False
        if self._path is not None and self._current is not None and self._file_signature() == self._signature:
            self._looked_at = now  # unchanged: nothing to look at until the next interval
            return False
        return True

    def fresh(self) -> CurrentRun | None:
        """The held run when no look at the warehouse is due (never blocks); else None: call `get`."""
        held = self._current
        return held if held is not None and not self._due() else None

    def get(self) -> CurrentRun:
        """The current run: the copy in memory, refreshed first when due.

        Raises:
            ServiceBusy: nothing scored yet, or the warehouse cannot be read and no copy is held.
        """
        held = self._current
        if self._due():
            # one request refreshes; the others answer from the copy meanwhile (or wait for the first one)
            if self._lock.acquire(blocking=held is None):
                try:
                    if self._current is held:  # nobody refreshed while this request waited
                        self._refresh()
                finally:
                    self._lock.release()
            held = self._current
        if held is None:
            raise ServiceBusy(self.last_error or "no successful scoring run yet; run `propensity score --as-of DATE` first")
        return held

    def _refresh(self) -> None:
        signature = self._file_signature()
        self._looked_at = time.monotonic()
        try:
            with self._open() as wh:
                run = latest_run(wh)
                if run is None:
                    self._current, self.last_error = None, None
                elif _key(run) != _key(self._current.run if self._current else None):
                    self._current = load_run(wh, run)
                    quiet_collector()
            self._signature = signature
            self.last_error = None
        except ServiceBusy as e:
            self.last_error = str(e)

    def status(self) -> tuple[CurrentRun | None, str | None]:
        """What /health reports: the run held and why the warehouse cannot be read now (None: it can).

        Looks at the warehouse now, whatever the file's signature says: a writer holding
        the file changes nothing on disk until it writes.
        """
        with self._lock:
            self._refresh()
        if self._current is None and self.last_error is None:
            return None, "no successful scoring run yet; run `propensity score --as-of DATE` first"
        return self._current, self.last_error

