"""Warehouse I/O on DuckDB and on a real PostgreSQL server: same tables, same features."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest

from features.load import Warehouse, WarehouseError
from features.snapshots import build_features
from propensity.config import FeaturesConfig
from tests.test_features import random_world


def test_transaction_rolls_back_everything(warehouse: Warehouse) -> None:
    with warehouse.transaction() as tx:
        tx.replace("a", pd.DataFrame({"x": [1, 2]}))
    with pytest.raises(RuntimeError):
        with warehouse.transaction() as tx:
            tx.replace("a", pd.DataFrame({"x": [9]}))
            tx.replace("b", pd.DataFrame({"y": [1]}))
            raise RuntimeError("crash in the middle")
    assert warehouse.tables() == ["a"]
    assert warehouse.read("a")["x"].tolist() == [1, 2]


def test_missing_table_and_missing_file_are_user_errors(tmp_path) -> None:
    with pytest.raises(WarehouseError, match="does not exist yet"):
        Warehouse(f"duckdb:///{tmp_path / 'none.duckdb'}", read_only=True).tables()
    with Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}") as wh:
        with pytest.raises(WarehouseError, match="'transactions' is not in the warehouse"):
            wh.read("transactions")


@pytest.mark.postgres
def test_postgres_features_equal_duckdb(postgres_url: str, tmp_path) -> None:
    world = random_world(11)
    with Warehouse(postgres_url) as pg:
        with pg.transaction() as tx:
            for name, frame in world.items():
                tx.replace(name, frame)
        assert set(world) <= set(pg.tables())
        back = pg.read("transactions")
        assert len(back) == len(world["transactions"])
        from_pg = build_features(pg, date(2024, 1, 1), FeaturesConfig())
    with Warehouse(f"duckdb:///{tmp_path / 'w.duckdb'}") as duck:
        with duck.transaction() as tx:
            for name, frame in world.items():
                tx.replace(name, frame)
        from_duck = build_features(duck, date(2024, 1, 1), FeaturesConfig())
    assert len(from_pg) > 40
    pd.testing.assert_frame_equal(from_pg, from_duck, check_dtype=False)


@pytest.mark.postgres
def test_unreachable_postgres_is_one_line(tmp_path) -> None:
    with pytest.raises(WarehouseError, match="cannot reach PostgreSQL at postgresql://u:\\*\\*\\*@127.0.0.1:1/db"):
        Warehouse("postgresql://u:secret@127.0.0.1:1/db").tables()


def _hold(path, seconds: float):
    """Another process that opens the DuckDB file read-write, says 'held', keeps it `seconds`, exits."""
    import subprocess
    import sys

    holder = subprocess.Popen(
        [sys.executable, "-c", ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                                "print('held', flush=True); time.sleep(float(sys.argv[2]))"), str(path), str(seconds)],
        stdout=subprocess.PIPE, text=True)
    assert holder.stdout.readline().strip() == "held"
    return holder


def test_a_command_waits_for_the_file_then_works(tmp_path) -> None:
    import time

    path = tmp_path / "w.duckdb"
    with Warehouse(f"duckdb:///{path}") as wh, wh.transaction() as tx:
        tx.replace("a", pd.DataFrame({"x": [1, 2, 3]}))
    told: list[str] = []
    holder = _hold(path, 1.5)
    try:
        started = time.monotonic()
        with Warehouse(f"duckdb:///{path}", lock_wait=30, on_wait=told.append) as wh:
            assert wh.read("a")["x"].tolist() == [1, 2, 3]
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait()
    assert waited >= 0.5  # it really waited for the holder (which kept the file ~1.5 s)
    assert len(told) == 1 and "in use by another process" in told[0] and "waiting up to 30 s" in told[0]


def test_a_command_gives_up_after_lock_wait_in_one_line(tmp_path) -> None:
    path = tmp_path / "w.duckdb"
    with Warehouse(f"duckdb:///{path}") as wh, wh.transaction() as tx:
        tx.replace("a", pd.DataFrame({"x": [1]}))
    holder = _hold(path, 60)
    try:
        with pytest.raises(WarehouseError) as err:
            Warehouse(f"duckdb:///{path}", lock_wait=0.4).tables()
        with pytest.raises(WarehouseError) as at_once:
            Warehouse(f"duckdb:///{path}", read_only=True).tables()  # the API's way: no wait
    finally:
        holder.kill()
        holder.wait()
    text = str(err.value)
    assert "\n" not in text and f"(PID {holder.pid})" in text and "waited 0.4 s" in text
    assert "lock_wait_seconds" in text and "waited" not in str(at_once.value)
