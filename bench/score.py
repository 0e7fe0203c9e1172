"""Benchmark: the batch scorer end to end at scale, and PostgreSQL writes (binary COPY, text COPY, to_sql).

1. Warehouse (not timed; reused when `bench/.work/score/` already holds one of the same
   size): the seeded sample world generated in slices of `--slice` customers (ids
   prefixed per slice, so slices never collide), each checked by the input contract and
   appended to a DuckDB file. `--start` moves the first day of history so that 1M
   customers give about 20-26M transaction lines.
2. Models (timed separately): churn, response and value trained on a 50,000-customer
   sample world and promoted, in the same MLflow store.
3. Scoring (the measurement): `run_scoring` in a child process as of the day after the
   data, with `--threads` LightGBM threads and `--chunk` customers per chunk: features
   streamed to the Parquet snapshot, three models, reason codes for every customer and
   model, staging and the publishing transaction. The child reports its per-stage times
   and its own peak RSS (RUSAGE_SELF), and, for scale, what the whole feature frame
   would take in pandas memory.
4. PostgreSQL: the run's customer_scores rows (or, when the run's warehouse is gone,
   as many seeded rows of the same shape, see `scores_rows`) written into a temporary
   server (Debian postgresql, initdb in a temp folder) three ways: the scorer's
   `sink.stage` (ADBC binary COPY), the text COPY it used before (CSV through psycopg,
   `tests/test_sink_postgres.text_copy`) and pandas `to_sql` (chunksize 10,000). Each
   writes into `stage_customer_scores`, the table the scorer fills (no index; the
   publishing transaction moves the rows on inside the server), and again into
   `customer_scores` itself (its index maintained row by row, as earlier versions of
   this bench measured). The methods take turns, `--repeat` times: medians and ratios.

Run from the repository root::

    PYTHONPATH=. python bench/score.py --customers 1000000 --threads 2
    PYTHONPATH=. python bench/score.py --customers 1000000 --postgres-only   # section 4 alone
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
WORK = ROOT / "bench" / ".work" / "score"


def _cfg(folder: Path, threads: int, chunk: int):
    """The project's layout inside `folder` (as notebooks and tests use it), with the bench's threads and chunks."""
    from propensity.config import project_in

    cfg = project_in(folder, num_threads=threads)
    return cfg.model_copy(update={"serving": cfg.serving.model_copy(update={"chunk_size": chunk})})


def build_warehouse(folder: Path, customers: int, per_slice: int, start: date) -> dict:
    """The big warehouse, slice by slice; reused when the marker says it matches."""
    from features.importer import write_imports
    from features.load import Warehouse
    from features.synth import SynthConfig, generate
    from features.synth_import import conform_world

    marker = folder / "warehouse.json"
    want = {"customers": customers, "slice": per_slice, "start": start.isoformat(), "version": 1}
    if marker.exists() and json.loads(marker.read_text()).get("spec") == want:
        return json.loads(marker.read_text())
    (folder / "warehouse.duckdb").unlink(missing_ok=True)
    t = time.perf_counter()
    with Warehouse(f"duckdb:///{folder / 'warehouse.duckdb'}") as wh:
        for i, first in enumerate(range(0, customers, per_slice)):
            n = min(per_slice, customers - first)
            world = generate(SynthConfig(customers=n, seed=1000 + i, start=start))
            prefix = f"S{i:03d}-"
            for frame in world.tables().values():
                for col in ("customer_id", "order_id", "campaign_id"):
                    if col in frame:
                        frame[col] = prefix + frame[col].astype(str)
            write_imports(wh, conform_world(world), append=i > 0)
            print(f"  warehouse slice {i + 1}: {first + n:,} / {customers:,} customers "
                  f"({time.perf_counter() - t:.0f}s)", flush=True)
        lines = int(wh.query("select count(*) as n from transactions")["n"][0])
        end = wh.query("select max(ts) as m from transactions")["m"][0]
    info = {"spec": want, "lines": lines, "data_end": (end.date() + __import__("datetime").timedelta(days=1)).isoformat(),
            "seconds": time.perf_counter() - t}
    marker.write_text(json.dumps(info))
    return info


def train_models(folder: Path, threads: int) -> float:
    """Champions trained on a 50,000-customer sample world (its own warehouse file)."""
    from features.load import Warehouse
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from training.pipeline import promote_models, train_and_log
    from training.track import alias_version, configure

    cfg = _cfg(folder, threads, 50_000)
    configure(cfg.mlflow, cfg.training.experiment)
    if all(alias_version(n, "champion") for n in ("churn", "response", "value")):
        return 0.0
    t = time.perf_counter()
    train_cfg = cfg.model_copy(update={"warehouse": cfg.warehouse.model_copy(
        update={"url": f"duckdb:///{folder / 'train.duckdb'}"})})
    with Warehouse(train_cfg.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(customers=50_000, seed=7))
        train_and_log(["churn", "response", "value"], wh, train_cfg)
        promote_models(["churn", "response", "value"], wh, train_cfg, margin=0.0, force=True)
    return time.perf_counter() - t


def child(folder: Path, threads: int, chunk: int, as_of: date) -> None:
    """The measured scoring run; prints one JSON line."""
    from features.load import Warehouse
    from serving.batch import run_scoring

    cfg = _cfg(folder, threads, chunk)
    t = time.perf_counter()
    with Warehouse(cfg.warehouse.url) as wh:
        summary = run_scoring(wh, cfg, as_of, progress=lambda m: print(f"    {m}", file=sys.stderr, flush=True))
    total = time.perf_counter() - t
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20  # GiB (ru_maxrss is KiB)
    import pandas as pd

    frame_gib = pd.read_parquet(summary.snapshot).memory_usage(deep=True).sum() / 2**30
    print(json.dumps({"total": total, "timings": summary.timings, "work": summary.work, "rows": summary.rows,
                      "customers": summary.customers, "peak_rss_gib": peak, "features_frame_gib": frame_gib,
                      "run_id": summary.run_id}))


def scores_rows(folder: Path, n: int) -> tuple[pd.DataFrame, str]:
    """The customer_scores rows to write, and where they come from.

    The scoring run's published rows when its warehouse is still in `folder`; else `n`
    seeded rows of the same columns and value ranges (17-digit scores, deciles, tiers),
    read back through DuckDB so that the pandas dtypes are those of the run's rows.
    """
    import numpy as np
    import pandas as pd

    from features.load import Warehouse
    from serving import sink

    path = folder / "warehouse.duckdb"
    if path.exists():
        with Warehouse(f"duckdb:///{path}", read_only=True) as wh:
            return wh.query("select * from current_customer_scores"), f"the scoring run's rows ({path.name})"
    rng = np.random.default_rng(11)
    churn, response = 1 / (1 + np.exp(-rng.normal(-1.0, 1.2, n))), rng.beta(1.2, 18.0, n)
    value, per_response = rng.gamma(1.5, 120.0, n), rng.gamma(4.0, 25.0, n)
    profit = response * per_response * 0.3 - 1.0
    frame = pd.DataFrame({
        "run_id": "20250630-3f9c2a71b0",
        "customer_id": [f"S{i // 100_000:03d}-C{i % 100_000 + 1:06d}" for i in range(n)],
        "as_of": date(2025, 6, 30), "churn_risk": churn, "response_prob": response, "predicted_value": value,
        "expected_profit": profit, "response_value": per_response,
    })
    for key, col in sink.DECILES.items():
        decile = (frame[col].rank(method="first").to_numpy() * 10 // (n + 1) + 1).astype("int16")
        frame[f"{key}_decile"] = decile
        frame[sink.TIERS[key]] = np.where(decile >= 9, "high", np.where(decile >= 6, "medium", "low"))
    with Warehouse("duckdb:///:memory:") as wh:
        db = sink.database(wh)
        sink.ensure_tables(db)
        db.append(sink.SCORES, frame)
        rows = wh.query(f"select * from {sink.SCORES}")
    return rows, f"{n:,} seeded rows shaped like the run's (its warehouse was not in {folder.relative_to(ROOT)})"


def _cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


METHODS = ("adbc", "text_copy", "to_sql")
LABELS = {"adbc": "ADBC binary COPY (serving.sink)",
          "text_copy": "text COPY, CSV through psycopg (the sink before)",
          "to_sql": "pandas to_sql (chunksize 10,000)"}


def postgres_writes(folder: Path, customers: int, repeat: int) -> dict:
    """customer_scores rows into PostgreSQL: the scorer's binary COPY against the old text COPY and pandas to_sql."""
    sys.path.insert(0, str(ROOT / "tests"))
    from pgserver import temporary_postgres
    from test_sink_postgres import text_copy

    from features.load import Warehouse
    from serving import sink

    rows, source = scores_rows(folder, customers)
    print(f"  rows: {source}", flush=True)
    targets = {"stage": sink.STAGE[sink.SCORES], "published": sink.SCORES}
    times = {t: {m: [] for m in METHODS} for t in targets}
    cpu = {t: {m: [] for m in METHODS} for t in targets}  # this process's CPU seconds (the rest is the server)
    with temporary_postgres() as new_database:
        pg = Warehouse(new_database("bench"))
        db = sink.database(pg)
        sink.ensure_tables(db)
        sink.reset_stage(db)
        server = str(pg.native_query("show server_version")["server_version"][0])
        load = [os.getloadavg()[0]]  # other work on the machine slows the client-bound to_sql most
        for target, table in targets.items():
            db.append(table, rows.head(10))  # untimed: ADBC connects and reads the column types once per run
            for r in range(repeat):
                for method in METHODS[r % 3:] + METHODS[:r % 3]:  # each method first in turn
                    db.execute(f"truncate {table}")
                    c, t = _cpu_seconds(), time.perf_counter()
                    if method == "adbc":
                        with db.transaction():
                            db.append(table, rows)
                    else:
                        with pg.engine().begin() as conn:
                            if method == "text_copy":
                                text_copy(conn, table, rows)
                            else:
                                rows.to_sql(table, conn, if_exists="append", index=False, chunksize=10_000)
                    times[target][method].append(time.perf_counter() - t)
                    cpu[target][method].append(_cpu_seconds() - c)
                    n = int(pg.native_query(f"select count(*) as n from {table}")["n"][0])
                    assert n == len(rows), (method, n)
                    load.append(os.getloadavg()[0])
                    print(f"  {table:<22} {method:<9} {len(rows):,} rows: {times[target][method][-1]:.1f}s "
                          f"(load {load[-1]:.1f})", flush=True)
        db.close()
        pg.close()
    out = {"rows": len(rows), "source": source, "repeat": repeat, "server": server,
           "load": [min(load), statistics.median(load), max(load)], "targets": {}}
    for target, runs in times.items():
        med = {m: statistics.median(v) for m, v in runs.items()}
        out["targets"][target] = {"table": targets[target], "runs": runs, "median": med,
                                  "client_cpu": {m: statistics.median(v) for m, v in cpu[target].items()},
                                  "ratio": med["to_sql"] / med["adbc"],
                                  "ratio_text_copy": med["to_sql"] / med["text_copy"]}
        print(f"  {targets[target]}: ADBC {med['adbc']:.1f}s, text COPY {med['text_copy']:.1f}s, to_sql "
              f"{med['to_sql']:.1f}s: ADBC {out['targets'][target]['ratio']:.1f}x to_sql "
              f"(text COPY {out['targets'][target]['ratio_text_copy']:.1f}x)", flush=True)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--customers", type=int, default=1_000_000)
    ap.add_argument("--slice", type=int, default=100_000, help="customers generated at a time")
    ap.add_argument("--start", default="2024-08-01", help="first day of the sample world's history")
    ap.add_argument("--threads", type=int, default=1, help="LightGBM threads")
    ap.add_argument("--chunk", type=int, default=50_000, help="customers scored and explained at a time")
    ap.add_argument("--repeat", type=int, default=3, help="repetitions of each PostgreSQL write")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "score.md")
    ap.add_argument("--postgres-only", action="store_true",
                    help="re-measure only the PostgreSQL writes (section 4) and replace that section of --output")
    ap.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--as-of", help=argparse.SUPPRESS)
    args = ap.parse_args()
    folder = WORK / f"c{args.customers}"
    if args.child:
        child(folder, args.threads, args.chunk, date.fromisoformat(args.as_of))
        return
    folder.mkdir(parents=True, exist_ok=True)
    if args.postgres_only:
        print("4. PostgreSQL writes: ADBC binary COPY, text COPY, pandas to_sql", flush=True)
        replace_postgres_section(args, postgres_writes(folder, args.customers, args.repeat))
        return
    print(f"1. warehouse: {args.customers:,} customers", flush=True)
    info = build_warehouse(folder, args.customers, args.slice, date.fromisoformat(args.start))
    print(f"   {info['lines']:,} transaction lines, data end {info['data_end']}", flush=True)
    print("2. models (50,000-customer sample world)", flush=True)
    train_seconds = train_models(folder, args.threads)
    print(f"3. scoring as of {info['data_end']} ({args.threads} thread(s), chunks of {args.chunk:,})", flush=True)
    out = subprocess.run(
        [sys.executable, __file__, "--child", "--customers", str(args.customers), "--threads", str(args.threads),
         "--chunk", str(args.chunk), "--as-of", info["data_end"]],
        stdout=subprocess.PIPE, text=True, check=True, env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    run = json.loads(out.stdout.strip().splitlines()[-1])
    print(json.dumps(run, indent=1), flush=True)
    print("4. PostgreSQL writes: ADBC binary COPY, text COPY, pandas to_sql", flush=True)
    pg = postgres_writes(folder, args.customers, args.repeat)
    write_report(args, info, train_seconds, run, pg)


def _now() -> str:
    return f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC"


def _machine() -> str:
    return f"{platform.machine()}, {os.cpu_count()} cores shared with other work; Python {platform.python_version()}"


def postgres_section(args, pg: dict) -> list[str]:
    """Section 4 of the report, with its own command and date (`--postgres-only` replaces it alone)."""
    from importlib.metadata import version

    cmd = (f"PYTHONPATH=. python bench/score.py --customers {args.customers} --postgres-only --repeat {args.repeat}"
           if args.postgres_only else f"PYTHONPATH=. python bench/score.py --customers {args.customers} "
                                      f"--threads {args.threads} --chunk {args.chunk} --repeat {args.repeat}")
    packages = ", ".join(f"{p} {version(p)}" for p in ("adbc-driver-postgresql", "psycopg", "pandas", "pyarrow",
                                                        "sqlalchemy"))
    lines = [
        f"## PostgreSQL: writing {pg['rows']:,} customer_scores rows (median of {pg['repeat']}, methods taking turns)",
        "",
        f"Command: `{cmd}` ({_now()}; {_machine()}; PostgreSQL {pg['server']}, initdb defaults; {packages}). "
        f"Rows: {pg['source']}. Each write is one transaction; `client CPU` is this process's CPU time, "
        "the rest of the wall time is the server (parsing, heap and index inserts, WAL) and waiting. "
        "1-minute load average during the writes, this bench's client and server included: {:.1f} / {:.1f} / "
        "{:.1f} (min / median / max) on {} cores; "
        "to_sql, bound by its own CPU, slows most when the machine is busy.".format(*pg["load"], os.cpu_count()),
        "",
    ]
    titles = {"stage": "the staging table the scorer's `sink.stage` fills (no index; the publishing "
                       "transaction moves the rows on inside the server)",
              "published": "the published table itself, its (run_id, customer_id) index maintained row by row "
                           "(what this section measured before the binary path)"}
    for target, res in pg["targets"].items():
        lines += [f"Into `{res['table']}`, {titles[target]}:", "",
                  "| method | median s | runs | client CPU s | to_sql / method |", "|---|---:|---|---:|---:|"]
        for m in METHODS:
            lines.append(f"| {LABELS[m]} | {res['median'][m]:.1f} | {', '.join(f'{x:.1f}' for x in res['runs'][m])} | "
                         f"{res['client_cpu'][m]:.1f} | {res['median']['to_sql'] / res['median'][m]:.1f}x |")
        lines.append("")
    stage, published = pg["targets"]["stage"], pg["targets"]["published"]
    lines += [
        f"**The scorer's write, ADBC binary COPY into `{stage['table']}`, is {stage['ratio']:.1f}x faster than "
        f"pandas to_sql** for the same rows (the text COPY it replaces: {stage['ratio_text_copy']:.1f}x). Into the "
        f"indexed `{published['table']}` the same writes compare at {published['ratio']:.1f}x and "
        f"{published['ratio_text_copy']:.1f}x: the index inserts are server work every method pays.",
        "",
    ]
    return lines


def replace_postgres_section(args, pg: dict) -> None:
    """Put the new section 4 into --output (and its numbers into the .json), leaving the rest as it is."""
    text = args.output.read_text() if args.output.exists() else "# Batch scorer: end to end at scale\n"
    at = text.find("\n## PostgreSQL")
    after = text.find("\n## ", at + 1) if at >= 0 else -1
    head = (text if at < 0 else text[:at]).rstrip("\n")
    head = re.sub(r"; PostgreSQL comparison [^;]*;", ";", head)  # the section has its own date now
    tail = text[after:] if after >= 0 else ""
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(head + "\n\n" + "\n".join(postgres_section(args, pg)) + tail)
    results = args.output.with_suffix(".json")
    earlier = json.loads(results.read_text()) if results.exists() else {}
    results.write_text(json.dumps({**earlier, "postgres": pg}, indent=1))
    print(f"wrote {args.output} (PostgreSQL section) and {results.name}")


def write_report(args, info: dict, train_seconds: float, run: dict, pg: dict, when: str | None = None) -> None:
    cmd = f"PYTHONPATH=. python bench/score.py --customers {args.customers} --threads {args.threads} --chunk {args.chunk}"
    when = when or _now()
    per_customer_ms = 1000 * run["total"] / run["customers"]
    lines = [
        "# Batch scorer: end to end at scale",
        "",
        f"Command: `{cmd}` (scoring run {when}; {_machine()}). "
        f"`--postgres-only` re-measures the last section alone.",
        "",
        f"Warehouse: the sample world, {args.customers:,} customers generated in slices of {args.slice:,} "
        f"(history from {args.start}), **{info['lines']:,} transaction lines**, in a DuckDB file. "
        f"Models: churn, response and value trained on a 50,000-customer sample world"
        + (f" ({train_seconds:.0f} s)." if train_seconds else " (trained in an earlier run of this bench)."),
        "",
        f"## Scoring run ({args.threads} LightGBM thread(s), chunks of {args.chunk:,} customers)",
        "",
        "| stage | seconds | share |",
        "|---|---:|---:|",
    ]
    total = run["total"]
    for stage, sec in run["timings"].items():
        lines.append(f"| {stage} | {sec:,.1f} | {sec / total:.0%} |")
    lines += [
        f"| **total (wall, incl. lock and bookkeeping)** | **{total:,.1f}** | |",
        "",
        f"Inside *score + explain* ({args.threads} scoring thread(s), pieces scored at once and staged in "
        "order), seconds of work summed over the threads:",
        "",
        "| part | seconds of work |",
        "|---|---:|",
        *[f"| {part} | {sec:,.1f} |" for part, sec in run.get("work", {}).items()],
        "",
        "(*score*: output scale, value per response, expected profit, segments; *explain*: fast exact "
        "TreeSHAP contributions with LightGBM's raw scores and the additivity check; *reasons*: ranking, "
        "effects and sentences; *stage*: writing the rows to the warehouse's staging tables.)",
        "",
        f"- customers scored: {run['customers']:,}; rows published: "
        + ", ".join(f"{k} {v:,}" for k, v in run["rows"].items()),
        f"- {per_customer_ms:.2f} ms per customer for three models with 5 reason codes each.",
        f"- peak memory of the scoring process: **{run['peak_rss_gib']:.2f} GiB** RSS; the whole feature frame "
        f"alone would take {run['features_frame_gib']:.2f} GiB in pandas. No stage holds the run whole: DuckDB "
        "streams the features to the Parquet snapshot, chunks are read from it, and each chunk's scores and "
        "reasons are staged in the warehouse as they are produced; the peak includes DuckDB's buffers "
        "for the feature query and LightGBM's per-chunk SHAP matrices.",
        "",
        *postgres_section(args, pg),
    ]
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text("\n".join(lines))
    args.output.with_suffix(".json").write_text(json.dumps(
        {"warehouse": info, "run": run, "postgres": pg, "train_seconds": train_seconds, "when": when}, indent=1))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
