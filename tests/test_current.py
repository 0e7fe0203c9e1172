"""The API's in-memory copy of the current run: what it holds, when it looks at the warehouse, locks."""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path

import pytest

from features.load import Warehouse, WarehouseError
from serving import sink
from serving.current import RunCache, ServiceBusy


def _publish(where: Path | str, run_id: str, as_of: str, customers: dict[str, float], attempt: int = 1) -> None:
    """Write a succeeded run the way the scorer leaves it (runs row, scores, segments, reasons), on
    a DuckDB file (a path) or a PostgreSQL database (a URL), through the scorer's own connection."""
    url = where if isinstance(where, str) else f"duckdb:///{where}"
    with Warehouse(url) as wh:
        db = sink.database(wh)
        sink.ensure_tables(db)
        db.execute(f"update {sink.RUNS} set status = 'superseded' where run_id = ?", [run_id])
        db.execute(f"insert into {sink.RUNS} (run_id, attempt, as_of, started_at, finished_at, status, customers) "
                   "values (?, ?, ?, ?, ?, 'succeeded', ?)",
                   [run_id, attempt, as_of, datetime(2025, 1, 1), datetime(2025, 1, 1, 0, 0, attempt), len(customers)])
        for table in sink.PUBLISHED:
            db.execute(f"delete from {table} where run_id = ?", [run_id])
        for cid, risk in customers.items():
            db.execute(f"insert into {sink.SCORES} (run_id, customer_id, as_of, churn_risk, churn_decile) "
                       "values (?, ?, ?, ?, ?)", [run_id, cid, as_of, risk, int(risk * 10) + 1])
            db.execute(f"insert into {sink.SEGMENTS} (run_id, customer_id, as_of, rfmw_segment) values (?, ?, ?, ?)",
                       [run_id, cid, as_of, f"seg-{cid}"])
            for model in ("value", "churn"):  # stored out of order on purpose
                for rank in (2, 1):
                    db.execute(f"insert into {sink.REASONS} (run_id, customer_id, model, rank, feature, contribution, "
                               "text) values (?, ?, ?, ?, ?, ?, ?)",
                               [run_id, cid, model, rank, f"f{rank}", risk / rank, f"{cid} {model} {rank}"])
        db.close()


class _Opener:
    """Opens the warehouse read-only for one look, as the API's gate does; counts the opens."""

    def __init__(self, path: Path) -> None:
        self.path, self.opens = path, 0

    @contextmanager
    def __call__(self):
        self.opens += 1
        wh = Warehouse(f"duckdb:///{self.path}", read_only=True)
        try:
            try:
                wh.tables()
            except WarehouseError as e:
                raise ServiceBusy(str(e)) from None
            yield wh
        finally:
            wh.close()


def test_holds_the_run_looks_only_when_the_file_changes_and_switches(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _publish(path, "r1", "2025-01-01", {"a": 0.25, "b": 0.5})
    opener = _Opener(path)
    cache = RunCache(f"duckdb:///{path}", opener, recheck_seconds=0.0)
    held = cache.get()
    assert held.run_id == "r1" and held.customers == 2 and opener.opens == 1
    assert held.score("b")["churn_risk"] == 0.5 and held.score("b")["churn_decile"] == 6
    assert held.score("nope") is None and held.segment("a")["rfmw_segment"] == "seg-a"
    assert [(r["model"], r["rank"]) for r in held.reasons_of("a")] == [("churn", 1), ("churn", 2),
                                                                         ("value", 1), ("value", 2)]
    assert held.reasons_of("nope") == []
    for _ in range(50):
        assert cache.get() is held
    assert opener.opens == 1  # the file did not change: no second look
    time.sleep(0.01)
    _publish(path, "r2", "2025-02-01", {"a": 0.75, "c": 0.1})
    fresh = cache.get()
    assert opener.opens == 2 and fresh.run_id == "r2" and fresh.score("b") is None
    assert fresh.score("a")["churn_risk"] == 0.75
    # a re-run of the same run id publishes a new attempt: the copy follows it
    time.sleep(0.01)
    _publish(path, "r2", "2025-02-01", {"a": 0.5}, attempt=2)
    again = cache.get()
    assert again is not fresh and again.customers == 1 and again.score("a")["churn_risk"] == 0.5


def test_a_writer_holding_the_file_leaves_the_copy_answering(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    _publish(path, "r1", "2025-01-01", {"a": 0.25})
    opener = _Opener(path)
    cache = RunCache(f"duckdb:///{path}", opener, recheck_seconds=0.0)
    held = cache.get()
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                                "c.execute('create table touched as select 1 as x'); c.execute('checkpoint'); "
                                "print('held', flush=True); time.sleep(60)"), str(path)],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        assert cache.get() is held  # the file changed, the look failed: the copy answers
        run, problem = cache.status()
        assert run is held and "in use by another process" in problem
        empty = RunCache(f"duckdb:///{path}", _Opener(path), recheck_seconds=0.0)
        with pytest.raises(ServiceBusy, match="in use by another process"):
            empty.get()
    finally:
        holder.kill()
        holder.wait()
    assert cache.status() == (held, None)


def test_no_run_yet_is_service_busy(tmp_path: Path) -> None:
    path = tmp_path / "w.duckdb"
    with Warehouse(f"duckdb:///{path}") as wh:
        sink.ensure_tables(sink.database(wh))
    cache = RunCache(f"duckdb:///{path}", _Opener(path), recheck_seconds=0.0)
    with pytest.raises(ServiceBusy, match="no successful scoring run yet"):
        cache.get()
    assert cache.status() == (None, "no successful scoring run yet; run `propensity score --as-of DATE` first")


@pytest.mark.postgres
def test_postgres_run_is_held_and_replaced_through_the_apis_gate(postgres_server) -> None:
    """On PostgreSQL the API keeps one pool and looks for a newer run every recheck interval."""
    from serving.api import _WarehouseGate

    url = postgres_server("current")
    _publish(url, "r1", "2025-01-01", {"a": 0.25, "b": 0.5})
    gate = _WarehouseGate(url)
    try:
        cache = RunCache(url, gate.open, recheck_seconds=0.0)
        held = cache.get()
        assert held.run_id == "r1" and held.score("b")["churn_risk"] == 0.5 and held.score("b")["churn_decile"] == 6
        assert [(r["model"], r["rank"]) for r in held.reasons_of("b")] == [("churn", 1), ("churn", 2),
                                                                             ("value", 1), ("value", 2)]
        assert cache.get() is held  # same run: the copy stays
        _publish(url, "r2", "2025-02-01", {"c": 0.1})
        fresh = cache.get()
        assert fresh.run_id == "r2" and fresh.customers == 1 and fresh.score("a") is None
        assert cache.status() == (fresh, None)
    finally:
        gate.close()
