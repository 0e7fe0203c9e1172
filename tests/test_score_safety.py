"""The batch scorer as real processes, on DuckDB and on a real PostgreSQL server.

SIGKILL while publishing (the process kills itself at a named point inside the
publishing transaction, or the test kills it from outside mid-run): the current_*
views stay byte-identical, the attempt is marked stale by the next run, which
succeeds. A second scorer on the same warehouse is refused with one line while the
first holds it. PostgreSQL (rows bulk-loaded with COPY) publishes exactly what DuckDB
publishes. `explain customer --run` recomputes a run's stored reasons exactly.
"""

from __future__ import annotations

import io
import os
import signal
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import config_toml, project_in

pytestmark = pytest.mark.slow

CUSTOMERS = 2000
AS_OF = date(2025, 6, 1)
LATER = date(2025, 6, 15)
VIEWS = {"current_customer_scores": "customer_id", "current_customer_segments": "customer_id",
         "current_score_reasons": "customer_id, model, rank"}
ROOT = Path(__file__).resolve().parents[1]


def _write_config(folder: Path, url: str, cfg) -> Path:
    cfg = cfg.model_copy(update={
        "warehouse": cfg.warehouse.model_copy(update={"url": url}),
        "serving": cfg.serving.model_copy(update={"chunk_size": 1000, "snapshot_dir": str(folder / "scoring")}),
    })
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "propensity.toml"
    path.write_text(config_toml(cfg))
    return path


@pytest.fixture(scope="module")
def world(tmp_path_factory, postgres_server):
    """Champions trained once; the same sample world in a DuckDB file and a PostgreSQL database,
    each scored once as of AS_OF by the CLI."""
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("safety")
    cfg = project_in(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=3))
        train_and_log(["churn", "response", "value"], wh, cfg)
        promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
    pg_url = postgres_server("safety")
    with Warehouse(pg_url) as pg:
        load_sample_world(pg, SynthConfig(customers=CUSTOMERS, seed=3))
    out = {}
    for kind, url in (("duckdb", cfg.warehouse.url), ("postgresql", pg_url)):
        config = _write_config(folder / kind, url, cfg)
        first = _cli(config, "score", "--as-of", str(AS_OF))
        assert first.returncode == 0, first.stderr
        out[kind] = {"url": url, "config": config}
    return out


def _cli(config: Path, *args: str, failpoint: str | None = None, wait: bool = True):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("PROPENSITY_FAILPOINT", None)
    if failpoint:
        env["PROPENSITY_FAILPOINT"] = failpoint
    cmd = [sys.executable, "-m", "propensity.cli", *args, "--config", str(config)]
    if wait:
        return subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=600)
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)


def _dump(url: str) -> dict[str, bytes]:
    """The current_* views as CSV bytes, rows in key order (what a reader sees)."""
    out = {}
    if url.startswith("duckdb"):
        con = duckdb.connect(url.removeprefix("duckdb:///"), read_only=True)
        try:
            for view, keys in VIEWS.items():
                out[view] = con.execute(f"select * from {view} order by {keys}").df().to_csv(index=False).encode()
        finally:
            con.close()
        return out
    import psycopg

    with psycopg.connect(url.replace("postgresql://", "postgresql://", 1)) as conn:
        for view, keys in VIEWS.items():
            buf = io.BytesIO()
            with conn.cursor().copy(f"copy (select * from {view} order by {keys}) to stdout with (format csv, header)") as cp:
                for block in cp:
                    buf.write(block)
            out[view] = buf.getvalue()
    return out


def _runs(url: str) -> pd.DataFrame:
    with Warehouse(url, read_only=url.startswith("duckdb")) as wh:
        return wh.native_query("select run_id, attempt, as_of, status, error from scoring_runs "
                               "order by started_at")


def _one_line_error(result) -> str:
    """The single `error:` line of a refused command (library warnings may precede it)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = [line for line in result.stderr.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.stderr
    return lines[0]


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
@pytest.mark.parametrize("point", ["publish:customer_segments", "publish:before-commit"])
def test_sigkill_inside_the_publishing_transaction(world, kind: str, point: str) -> None:
    w = world[kind]
    before = _dump(w["url"])
    assert all(len(v.splitlines()) > 100 for v in before.values())
    killed = _cli(w["config"], "score", "--as-of", str(AS_OF), failpoint=point)  # a re-run of the published run
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert killed.stderr.rstrip().endswith("publishing")  # progress goes to stderr
    assert _dump(w["url"]) == before  # byte-identical
    runs = _runs(w["url"])
    assert runs["status"].iloc[-1] == "running"  # nobody has looked yet
    again = _cli(w["config"], "score", "--as-of", str(AS_OF))
    assert again.returncode == 0, again.stderr
    runs = _runs(w["url"])
    killed_row = runs.iloc[-2]
    assert killed_row["status"] == "stale" and "ended without finishing" in killed_row["error"]
    assert runs["status"].iloc[-1] == "succeeded"
    assert (runs["status"] == "succeeded").sum() == 1  # one published attempt of this run
    # the same as-of date and models: the re-run's rows are the same rows
    assert _dump(w["url"]) == before


def test_external_sigkill_mid_run_then_recovery(world) -> None:
    w = world["duckdb"]
    before = _dump(w["url"])
    proc = _cli(w["config"], "score", "--as-of", str(LATER), wait=False)
    for line in proc.stdout:  # wait until rows are being staged, then kill from outside
        if "scored and explained" in line:
            os.kill(proc.pid, signal.SIGKILL)
            break
    proc.wait(timeout=120)
    assert proc.returncode == -signal.SIGKILL
    assert _dump(w["url"]) == before
    again = _cli(w["config"], "score", "--as-of", str(LATER))
    assert again.returncode == 0, again.stderr
    runs = _runs(w["url"])
    later = runs[pd.to_datetime(runs["as_of"]) == pd.Timestamp(LATER)]
    assert later["status"].tolist() == ["stale", "succeeded"]
    after = _dump(w["url"])
    scores = pd.read_csv(io.BytesIO(after["current_customer_scores"]))
    assert scores["customer_id"].is_unique and (pd.to_datetime(scores["as_of"]) == pd.Timestamp(LATER)).all()
    assert not any(name.startswith("stage_") for name in _tables(w["url"]))  # staging cleaned


def _tables(url: str) -> list[str]:
    with Warehouse(url, read_only=url.startswith("duckdb")) as wh:
        return wh.tables()


def _stopped(pid: int) -> bool:
    state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    return state == "T"


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_second_process_is_refused_while_a_run_holds_the_warehouse(world, kind: str) -> None:
    w = world[kind]
    first = _cli(w["config"], "score", "--as-of", str(AS_OF), failpoint="staged-chunk:stop", wait=False)
    try:
        deadline = time.monotonic() + 180
        while not _stopped(first.pid):  # stopped by itself after staging its first chunk, lock held
            assert first.poll() is None, first.stdout.read()
            assert time.monotonic() < deadline
            time.sleep(0.2)
        second = _cli(w["config"], "score", "--as-of", str(AS_OF))
        assert second.returncode == 1
        line = _one_line_error(second)
        if kind == "duckdb":  # DuckDB: one writing process per file
            assert line.startswith("error: warehouse ") and f"in use by another process (PID {first.pid})" in line
        else:
            assert line.startswith("error: another scoring run (") and f"pid {first.pid} " in line
            assert "holds the lock on this warehouse; wait for it to finish" in line
    finally:
        os.kill(first.pid, signal.SIGCONT)
    out, _ = first.communicate(timeout=300)
    assert first.returncode == 0, out
    assert "published run" in out
    scores = pd.read_csv(io.BytesIO(_dump(w["url"])["current_customer_scores"]))
    assert scores["customer_id"].is_unique


def _published(url: str, as_of: date) -> dict[str, pd.DataFrame]:
    """The published rows of the successful run as of a date, per table, in key order."""
    run = ("(select run_id from scoring_runs where status = 'succeeded' and as_of = ?)")
    with Warehouse(url, read_only=url.startswith("duckdb")) as wh:
        return {view: wh.native_query(f"select * from {view.removeprefix('current_')} where run_id in {run} "
                                      f"order by {keys}", [as_of])
                for view, keys in VIEWS.items()}


def test_postgresql_publishes_exactly_what_duckdb_publishes(world) -> None:
    duck, pg = _published(world["duckdb"]["url"], AS_OF), _published(world["postgresql"]["url"], AS_OF)
    assert len(duck["current_customer_scores"]) > 1000
    for view in VIEWS:
        a, b = duck[view], pg[view]
        assert list(a.columns) == list(b.columns)
        assert len(a) == len(b) and len(a) > 1000
        for c in a.columns:
            if c == "as_of":
                assert (pd.to_datetime(a[c]) == pd.to_datetime(b[c])).all()
            elif pd.api.types.is_float_dtype(a[c]):
                # floats went through COPY as text and came back bit for bit
                assert (a[c].to_numpy() == b[c].to_numpy(dtype=float)).all(), c
            else:
                assert a[c].astype(str).tolist() == b[c].astype(str).tolist(), c
    with Warehouse(world["postgresql"]["url"]) as pgw:
        kinds = pgw.native_query("select indexname from pg_indexes where tablename = 'score_reasons'")
    assert "score_reasons_run_customer" in kinds["indexname"].tolist()


@pytest.mark.parametrize("kind", ["duckdb", "postgresql"])
def test_explain_customer_from_a_run_reproduces_its_stored_reasons(world, kind: str) -> None:
    w = world[kind]
    scores = pd.read_csv(io.BytesIO(_dump(w["url"])["current_customer_scores"]))
    run_id, customer = scores["run_id"].iloc[0], scores["customer_id"].iloc[7]
    out = _cli(w["config"], "explain", "customer", customer, "--run", run_id)
    assert out.returncode == 0, out.stderr
    assert f"customer {customer} in scoring run {run_id}" in out.stdout
    assert "recomputed reasons equal the 15 stored rows exactly" in out.stdout
    unknown = _cli(w["config"], "explain", "customer", "NOPE", "--run", run_id)
    assert unknown.returncode == 1 and f"no customer 'NOPE' in run {run_id}" in _one_line_error(unknown)
