"""The segment tables: schema, staging, the one publishing transaction, the run lock.

The only serving module that writes to the warehouse (DuckDB for now).

A run appends its rows chunk by chunk to `stage_*` tables, then `publish` moves them
into the published tables in one transaction: delete any earlier rows of the same
run_id (a re-run replaces, never duplicates), insert the staged rows, mark the attempt
succeeded. Readers use the `current_*` views, which show only the latest successful
run, so a failed or half-written run is never visible.

`scoring_runs` holds one row per attempt (run_id, attempt): run_id is deterministic
(as-of date + model versions + campaign kind), so an attempt that fails while an
earlier attempt of the same run_id is published leaves that earlier attempt
'succeeded' and its rows untouched; a successful re-run marks it 'superseded'.
"""

from __future__ import annotations

import os
import socket
from datetime import UTC, datetime

import duckdb
import pandas as pd

from features.load import Warehouse, WarehouseError

RUNS = "scoring_runs"
LOCK = "scoring_lock"
SCORES = "customer_scores"
SEGMENTS = "customer_segments"
REASONS = "score_reasons"
PUBLISHED = (SCORES, SEGMENTS, REASONS)
STAGE = {name: f"stage_{name}" for name in PUBLISHED}
VIEWS = {name: f"current_{name}" for name in PUBLISHED}

MODELS = ("churn", "response", "value")
# score column per model, as published
SCORE_COLUMN = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value",
                "profit": "expected_profit"}

_DDL = {
    RUNS: """
        run_id varchar not null, attempt integer not null, as_of date not null,
        started_at timestamp not null, finished_at timestamp, status varchar not null,
        churn_version varchar, response_version varchar, value_version varchar,
        campaign_kind varchar, margin double, contact_cost double, chunk_size bigint,
        customers bigint, score_rows bigint, segment_rows bigint, reason_rows bigint,
        data_fingerprint varchar, error varchar,
        primary key (run_id, attempt)""",
    LOCK: """
        lock_name varchar primary key, run_id varchar, claimed_at timestamp, pid integer, host varchar""",
    SCORES: """
        run_id varchar not null, customer_id varchar not null, as_of date not null,
        churn_risk double, response_prob double, predicted_value double, expected_profit double,
        churn_decile tinyint, response_decile tinyint, value_decile tinyint, profit_decile tinyint,
        churn_tier varchar, response_tier varchar, predicted_value_tier varchar, profit_tier varchar""",
    SEGMENTS: """
        run_id varchar not null, customer_id varchar not null, as_of date not null,
        r_score tinyint, f_score tinyint, m_score tinyint, w_score tinyint,
        rfmw_segment varchar, value_tier varchar, loyalty_tier varchar, activity varchar,
        risk_tier varchar""",
    REASONS: """
        run_id varchar not null, customer_id varchar not null, model varchar not null,
        rank tinyint not null, feature varchar, feature_value varchar, contribution double,
        scale varchar, effect double, text varchar""",
}

# Score tiers from deciles (10 = highest score): the top two deciles, the next three, the rest.
# (`predicted_value_tier` is the model's; `value_tier` in customer_segments is the RFMW one.)
TIER_SQL = "case when {d} >= 9 then 'high' when {d} >= 6 then 'medium' else 'low' end"


class ScoringError(ValueError):
    """A scoring problem the user can fix (lock held, no customers, ...); one-line message."""


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def _con(warehouse: Warehouse) -> duckdb.DuckDBPyConnection:
    if warehouse.kind != "duckdb":
        raise ScoringError("the batch scorer writes to DuckDB warehouses only for now (PostgreSQL comes later)")
    if warehouse.read_only:
        raise ScoringError("the warehouse is opened read-only; scoring writes tables")
    return warehouse.duck()


def ensure_tables(warehouse: Warehouse) -> None:
    """Create the run, lock and published tables and the current_* views if missing."""
    con = _con(warehouse)
    for name, ddl in _DDL.items():
        con.execute(f"create table if not exists {name} ({ddl})")
    latest = (f"(select run_id from {RUNS} where status = 'succeeded' "
              "order by as_of desc, finished_at desc limit 1)")
    for name, view in VIEWS.items():
        con.execute(f"create or replace view {view} as select * from {name} where run_id = {latest}")


# -- lock ------------------------------------------------------------------------------

def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def claim_lock(warehouse: Warehouse, run_id: str) -> None:
    """Claim the one scoring lock of this warehouse, or raise ScoringError naming the holder.

    A lock left by a process of this host that no longer exists is taken over.
    """
    con = _con(warehouse)
    ensure_tables(warehouse)
    host, pid = socket.gethostname(), os.getpid()
    try:
        with warehouse.transaction():
            held = con.execute(
                f"select run_id, claimed_at, pid, host from {LOCK} where lock_name = 'scoring'"
            ).fetchall()
            if held:
                other_run, since, other_pid, other_host = held[0]
                if other_host == host and other_pid != pid and not _pid_alive(other_pid):
                    con.execute(f"delete from {LOCK} where lock_name = 'scoring'")
                else:
                    raise ScoringError(
                        f"another scoring run ({other_run}, pid {other_pid} on {other_host}, since "
                        f"{since:%Y-%m-%d %H:%M:%S} UTC) holds the lock on this warehouse; wait for it to finish"
                    )
            con.execute(f"insert into {LOCK} values ('scoring', ?, ?, ?, ?)", [run_id, _now(), pid, host])
    except (duckdb.TransactionException, duckdb.ConstraintException):
        # another connection claimed it between our read and our commit
        raise ScoringError("another scoring run claimed the lock on this warehouse at the same moment; "
                           "wait for it to finish") from None


def release_lock(warehouse: Warehouse, run_id: str) -> None:
    """Release the lock if this run holds it."""
    with warehouse.transaction():
        _con(warehouse).execute(f"delete from {LOCK} where lock_name = 'scoring' and run_id = ?", [run_id])


# -- run rows --------------------------------------------------------------------------

def start_attempt(warehouse: Warehouse, run: dict) -> int:
    """Insert a 'running' row for a new attempt of `run['run_id']`; returns the attempt number."""
    con = _con(warehouse)
    with warehouse.transaction():
        attempt = con.execute(f"select coalesce(max(attempt), 0) + 1 from {RUNS} where run_id = ?",
                              [run["run_id"]]).fetchall()[0][0]
        row = {**run, "attempt": attempt, "started_at": _now(), "status": "running"}
        cols = ", ".join(row)
        con.execute(f"insert into {RUNS} ({cols}) values ({', '.join('?' for _ in row)})", list(row.values()))
    return int(attempt)


def mark_failed(warehouse: Warehouse, run_id: str, attempt: int, error: str) -> None:
    """Record that an attempt failed (its staged rows are dropped; published rows untouched)."""
    con = _con(warehouse)
    with warehouse.transaction():
        con.execute(f"update {RUNS} set status = 'failed', finished_at = ?, error = ? where run_id = ? and attempt = ?",
                    [_now(), error[:2000], run_id, attempt])
    drop_stage(warehouse)


# -- staging ---------------------------------------------------------------------------

def reset_stage(warehouse: Warehouse) -> None:
    """Empty staging tables shaped like the published ones (one run at a time: the lock)."""
    con = _con(warehouse)
    for name, stage in STAGE.items():
        con.execute(f"create or replace table {stage} as select * from {name} where false")


def drop_stage(warehouse: Warehouse) -> None:
    con = _con(warehouse)
    for stage in STAGE.values():
        con.execute(f"drop table if exists {stage}")


def stage(warehouse: Warehouse, name: str, frame: pd.DataFrame) -> None:
    """Append one chunk of rows of published table `name` to its staging table."""
    with warehouse.transaction() as w:
        w.append(STAGE[name], frame)


def rank_stage(warehouse: Warehouse) -> None:
    """Deciles (1-10, 10 = highest, equal counts; ties by customer id) and tiers over the whole run."""
    con = _con(warehouse)
    sets = []
    for key, tier in (("churn", "churn_tier"), ("response", "response_tier"), ("value", "predicted_value_tier"),
                      ("profit", "profit_tier")):
        sets.append(f"{key}_decile = r.{key}_decile")
        sets.append(f"{tier} = {TIER_SQL.format(d=f'r.{key}_decile')}")
    ranks = ", ".join(f"ntile(10) over (order by {col}, customer_id) as {key}_decile"
                      for key, col in (("churn", "churn_risk"), ("response", "response_prob"),
                                       ("value", "predicted_value"), ("profit", "expected_profit")))
    with warehouse.transaction():
        con.execute(f"update {STAGE[SCORES]} s set {', '.join(sets)} from "
                    f"(select customer_id, {ranks} from {STAGE[SCORES]}) r where s.customer_id = r.customer_id")


def staged_counts(warehouse: Warehouse) -> dict[str, int]:
    con = _con(warehouse)
    return {name: int(con.execute(f"select count(*) from {stage}").fetchall()[0][0]) for name, stage in STAGE.items()}


# -- publishing ------------------------------------------------------------------------

def publish_table(con: duckdb.DuckDBPyConnection, name: str, run_id: str) -> None:
    """Inside the publishing transaction: replace run_id's rows of `name` by the staged ones."""
    con.execute(f"delete from {name} where run_id = ?", [run_id])
    con.execute(f"insert into {name} by name select * from {STAGE[name]}")


def publish(warehouse: Warehouse, run_id: str, attempt: int, counts: dict[str, int], fingerprint: str) -> None:
    """Make the staged run the published one, all or nothing."""
    con = _con(warehouse)
    with warehouse.transaction():
        for name in PUBLISHED:
            publish_table(con, name, run_id)
        con.execute(f"update {RUNS} set status = 'superseded' where run_id = ? and status = 'succeeded'", [run_id])
        con.execute(
            f"update {RUNS} set status = 'succeeded', finished_at = ?, customers = ?, score_rows = ?, "
            "segment_rows = ?, reason_rows = ?, data_fingerprint = ? where run_id = ? and attempt = ?",
            [_now(), counts[SCORES], counts[SCORES], counts[SEGMENTS], counts[REASONS], fingerprint, run_id, attempt],
        )
    drop_stage(warehouse)


def run_row(warehouse: Warehouse, run_id: str, attempt: int) -> dict:
    """The scoring_runs row of one attempt."""
    frame = warehouse.query(f"select * from {RUNS} where run_id = ? and attempt = ?", [run_id, attempt])
    if frame.empty:
        raise WarehouseError(f"no scoring run {run_id} attempt {attempt}")
    return frame.iloc[0].to_dict()
