"""Benchmark: the product's RFMW SQL on DuckDB against a plain pandas groupby baseline.

For each requested size the script

1. generates a synthetic transactions table (seeded numpy; about one customer per 50
   lines, orders of 1-5 lines, ~3% returned lines, 50 categories, three years of
   timestamps) and writes it as Parquet under ``bench/.work/`` (not timed; reused when
   a file of the same size, seed and generator version is already there);
2. runs each method in its own subprocess, ``--repeat`` times, alternating the methods
   so that a noisy neighbour hurts both alike. Each child reports its load and compute
   seconds and its own peak RSS (``RUSAGE_SELF``), so memory figures never mix:
   - ``duckdb``: an in-memory DuckDB loads the Parquet file into a ``transactions``
     table (load), then runs the steps of ``features.rfmw.rfmw_ctes(FeaturesConfig())``
     ending in ``select * from rfmw`` with ``$as_of`` bound, fetched to pandas (compute);
   - ``pandas``: ``pd.read_parquet`` (load), then the same columns computed with
     ordinary groupbys, as one would in a notebook (compute);
3. checks that both methods give the same value for every customer and column
   (R, F, M and W at least; tolerance 1e-9) and stops with an error if they do not;
4. with ``--steps``, times the DuckDB steps one by one in one more child: each step of
   ``rfmw_ctes`` that aggregates, windows or is the last is materialised as a temp table
   from the ones before it (row-level steps stay views, as they stream in the real
   query), with its wall and CPU seconds (``RUSAGE_SELF``) and rows;
5. prints a table per size and writes it as Markdown (``--output``), with a JSON file
   of every run next to it.

Run from the repository root::

    PYTHONPATH=. python bench/features.py --lines 10000000 50000000 --repeat 3
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shlex
import statistics
import subprocess
import sys
import time
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# This file is named like the product's `features` package; when run as a script its own
# folder comes first on sys.path and would shadow the package. Drop it, put the root first.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))
GENERATOR_VERSION = 2
DATA_START = date(2022, 1, 1)
DATA_DAYS = 3 * 365 + 1  # 2022-01-01 .. 2024-12-31
HORIZON_DAYS = 90  # as-of = data end - horizon, like the latest training snapshot
METHODS = ("duckdb", "pandas")
KEY_COLUMNS = ("recency_days", "frequency_365d", "monetary_avg_365d", "width_categories")
COMPUTE_TARGET = 8.0  # pandas compute / DuckDB compute at the largest size (issue 11)


# ---------------------------------------------------------------------------- data


def data_end() -> date:
    return DATA_START + timedelta(days=DATA_DAYS)


def as_of_date() -> date:
    return data_end() - timedelta(days=HORIZON_DAYS)


def generate(lines: int, seed: int, workdir: Path) -> Path:
    """Write (or reuse) the Parquet file of `lines` transaction lines; return its path."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.parquet as pq

    workdir.mkdir(parents=True, exist_ok=True)
    path = workdir / f"transactions_{lines}_s{seed}.parquet"
    meta_path = path.with_suffix(".json")
    if path.exists() and meta_path.exists():
        meta = json.loads(meta_path.read_text())
        if meta.get("lines") == lines and meta.get("seed") == seed and meta.get("version") == GENERATOR_VERSION:
            print(f"  reusing {path.relative_to(ROOT)} ({meta['customers']:,} customers, {meta['orders']:,} orders)")
            return path

    t0 = time.perf_counter()
    rng = np.random.default_rng([seed, lines])
    n_cust = max(1, lines // 50)

    # Orders of 1-5 lines, cut so that the line count is exact.
    k = rng.integers(1, 6, size=lines // 3 + lines // 20 + 10)
    cum = np.cumsum(k)
    n_orders = int(np.searchsorted(cum, lines)) + 1
    k = k[:n_orders]
    k[-1] -= int(cum[n_orders - 1] - lines)
    if n_orders < n_cust:
        raise SystemExit(f"--lines {lines} is too small for the generator")

    # Every customer orders at least once; the rest follow skewed activity weights.
    weight = rng.gamma(0.6, 1.0, size=n_cust)
    cust = np.concatenate([
        np.arange(n_cust),
        rng.choice(n_cust, size=n_orders - n_cust, p=weight / weight.sum()),
    ])
    rng.shuffle(cust)

    # Each customer is active between a start and an end; orders fall uniformly inside.
    span = DATA_DAYS * 86400
    start = rng.uniform(0, 0.95 * span, size=n_cust)
    life = rng.exponential(1.2 * 365 * 86400, size=n_cust) + 30 * 86400
    end = np.minimum(span - 1, start + life)
    sec = (start[cust] + rng.random(n_orders) * (end - start)[cust]).astype(np.int64)
    time_order = np.argsort(sec, kind="stable")  # order ids follow time
    sec, cust, k = sec[time_order], cust[time_order], k[time_order]
    del time_order

    # Lines: repeat each order by its line count (lines stay in time order).
    line_order = np.repeat(np.arange(n_orders, dtype=np.int64), k)
    line_cust = cust[line_order]
    epoch_us = (np.datetime64(DATA_START, "us") - np.datetime64("1970-01-01", "us")).astype(np.int64)
    ts_us = epoch_us + sec[line_order] * 1_000_000
    amount = np.round(rng.lognormal(3.0, 0.8, size=lines), 2) + 0.01
    amount[rng.random(lines) < 0.03] *= -1  # returned lines
    # An order whose lines cancel to the cent has a float net of about +-1e-15 whose sign
    # depends on the summation order, so `net > 0` would classify it differently in
    # DuckDB and pandas (and between DuckDB runs). Move such orders one cent away from 0.
    starts = np.cumsum(k) - k
    net_cents = np.add.reduceat(np.rint(amount * 100).astype(np.int64), starts)
    zero = starts[net_cents == 0]
    amount[zero] += np.where(amount[zero] > 0, 0.01, -0.01)
    amount = np.round(amount, 2)
    n_cat = 50
    pref = rng.integers(0, n_cat, size=n_cust)  # a customer's own favourite category
    p = 1.0 / np.arange(1, n_cat + 1) ** 1.1
    draw = rng.choice(n_cat, size=lines, p=p / p.sum())
    category = ((pref[line_cust] + draw) % n_cat).astype(np.int32)
    del draw

    def ids(prefix: str, n: int, width: int) -> pa.Array:
        digits = pc.utf8_lpad(pc.cast(pa.array(np.arange(1, n + 1)), pa.string()), width, padding="0")
        return pc.binary_join_element_wise(pa.scalar(prefix), digits, "")

    cust_ids = ids("C", n_cust, 8)
    order_ids = ids("O", n_orders, 10)
    cat_names = pa.array([f"category_{i:02d}" for i in range(n_cat)])
    table = pa.table({
        "customer_id": cust_ids.take(pa.array(line_cust)),
        "order_id": order_ids.take(pa.array(line_order)),
        "ts": pa.array(ts_us, type=pa.timestamp("us")),
        "amount": pa.array(amount, type=pa.float64()),
        "category": cat_names.take(pa.array(category)),
    })
    del line_order, line_cust, ts_us, amount, category
    tmp = path.with_suffix(".parquet.tmp")
    pq.write_table(table, tmp)
    tmp.replace(path)
    meta = {
        "version": GENERATOR_VERSION, "lines": lines, "seed": seed, "customers": n_cust,
        "orders": n_orders, "zero_net_orders_nudged": int(len(zero)), "returned_share": float(pc.mean(pc.less(table["amount"], 0)).as_py()),
        "data_start": DATA_START.isoformat(), "data_end": data_end().isoformat(),
        "bytes": path.stat().st_size,
    }
    meta_path.write_text(json.dumps(meta, indent=1))
    print(
        f"  generated {path.relative_to(ROOT)} in {time.perf_counter() - t0:.0f} s: "
        f"{n_cust:,} customers, {n_orders:,} orders, {meta['bytes'] / 2**20:,.0f} MiB"
    )
    return path


# ---------------------------------------------------------------------------- methods


def rfmw_sql() -> str:
    """The product's RFMW steps, assembled as `features.snapshots` does, ending in rfmw."""
    from features.rfmw import rfmw_ctes
    from propensity.config import FeaturesConfig

    steps = rfmw_ctes(FeaturesConfig())
    return "with " + ",\n".join(f"{name} as ({sql})" for name, sql in steps) + "\nselect * from rfmw"


class SpillWatch:
    """Polls the size of DuckDB's spill folder in a thread; `peak` is the largest seen (bytes)."""

    def __init__(self, folder: Path, every: float = 0.2) -> None:
        import threading

        self.folder, self.every, self.peak = folder, every, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _size(self) -> int:
        try:
            return sum(e.stat().st_size for e in os.scandir(self.folder) if e.is_file())
        except OSError:
            return 0

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.peak = max(self.peak, self._size())

    def __enter__(self) -> SpillWatch:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def run_duckdb(parquet: Path, as_of: date, threads: int):
    import duckdb
    import pandas  # noqa: F401  imported before the clock starts, as in run_pandas: .df() would import it (~0.3 s)

    sql = rfmw_sql()
    # Spill files of an in-memory database go to ./.tmp by default; keep them in the work folder.
    spill = Path(parquet).parent / "duckdb_tmp"
    con = duckdb.connect(":memory:", config={"threads": threads, "temp_directory": str(spill)})
    with SpillWatch(spill) as watch:
        t0 = time.perf_counter()
        con.execute("create table transactions as select * from read_parquet(?)", [str(parquet)])
        t1 = time.perf_counter()
        out = con.execute(sql, {"as_of": as_of}).df()
        t2 = time.perf_counter()
    con.close()
    run_duckdb.spill_mib = watch.peak / 2**20
    return out, t1 - t0, t2 - t1


def run_steps(parquet: Path, as_of: date, threads: int) -> list[dict]:
    """Each rfmw step materialised from the ones before it: wall and CPU seconds, rows.

    Steps without an aggregate or a window (row-level selects and joins) stay views, as
    they stream into their consumers in the real query; their cost shows in the next
    materialised step. The sum is not the whole query's time: the real query streams
    `orders` into two consumers instead of writing it out.
    """
    import re

    import duckdb

    from features.rfmw import rfmw_ctes
    from propensity.config import FeaturesConfig

    def cpu() -> float:
        r = resource.getrusage(resource.RUSAGE_SELF)
        return r.ru_utime + r.ru_stime

    spill = Path(parquet).parent / "duckdb_tmp"
    con = duckdb.connect(":memory:", config={"threads": threads, "temp_directory": str(spill)})
    con.execute("create table transactions as select * from read_parquet(?)", [str(parquet)])
    steps = rfmw_ctes(FeaturesConfig())
    out = []
    for i, (name, sql) in enumerate(steps):
        params = {"as_of": as_of} if "$as_of" in sql else {}
        heavy = i == len(steps) - 1 or re.search(r"\bgroup by\b|\bover\s*\(", sql, re.I)
        if not heavy:
            con.execute(f"create temp view {name} as {sql}".replace("$as_of", f"date '{as_of}'"))
            continue
        c0, t0 = cpu(), time.perf_counter()
        con.execute(f"create temp table {name} as {sql}", params)
        wall, used = time.perf_counter() - t0, cpu() - c0
        rows = con.execute(f"select count(*) from {name}").fetchall()[0][0]
        out.append({"step": name, "wall_s": wall, "cpu_s": used, "rows": rows})
    con.close()
    return out


def pandas_rfmw(tx, as_of: date, cfg):
    """The rfmw columns with plain pandas groupbys, from the definitions in features/rfmw.py."""
    import numpy as np
    import pandas as pd

    cut = pd.Timestamp(as_of)
    n, t = cfg.frequency_window_days, cfg.trend_window_days
    windows = sorted({*cfg.short_windows_days, n, 90})

    tx = tx[tx["ts"] < cut]
    tx = tx.assign(bought=tx["amount"].clip(lower=0), returned=(-tx["amount"]).clip(lower=0))

    orders = tx.groupby(["customer_id", "order_id"], as_index=False).agg(
        first_ts=("ts", "min"), net=("amount", "sum"), bought=("bought", "sum"), returned=("returned", "sum")
    )
    orders["day"] = orders["first_ts"].dt.normalize()
    orders["age"] = (cut - orders["day"]).dt.days
    purchases = orders[orders["net"] > 0]

    out = pd.DataFrame(index=pd.Index(orders["customer_id"].unique(), name="customer_id"))
    by = purchases.groupby("customer_id")["age"]
    out["recency_days"] = by.min()
    out["tenure_days"] = by.max()
    out["purchases_total"] = by.size()
    out["purchases_total"] = out["purchases_total"].fillna(0).astype("int64")

    for w in windows:
        pw = purchases[purchases["age"] <= w].groupby("customer_id")["net"]
        out[f"frequency_{w}d"] = pw.size()
        out[f"frequency_{w}d"] = out[f"frequency_{w}d"].fillna(0).astype("int64")
        out[f"monetary_avg_{w}d"] = pw.sum() / pw.size()
        out[f"spend_{w}d"] = orders[orders["age"] <= w].groupby("customer_id")["net"].sum()
        out[f"spend_{w}d"] = out[f"spend_{w}d"].fillna(0.0)

    last = purchases[purchases["age"] <= t].groupby("customer_id")["net"].agg(["size", "sum"])
    prior = purchases[(purchases["age"] > t) & (purchases["age"] <= 2 * t)].groupby("customer_id")["net"].agg(["size", "sum"])
    last = last.reindex(out.index, fill_value=0)
    prior = prior.reindex(out.index, fill_value=0)
    f_sum = (last["size"] + prior["size"]).replace(0, np.nan)
    s_sum = (last["sum"] + prior["sum"]).replace(0, np.nan)
    out["frequency_trend"] = (last["size"] - prior["size"]) / f_sum
    out["spend_trend"] = (last["sum"] - prior["sum"]) / s_sum

    recent = orders[orders["age"] <= n].groupby("customer_id")[["bought", "returned"]].sum()
    out[f"returns_share_{n}d"] = recent["returned"] / recent["bought"].replace(0, np.nan)

    width = tx[tx["amount"] > 0].groupby("customer_id")["category"].nunique()
    out["width_categories"] = width
    out["width_categories"] = out["width_categories"].fillna(0).astype("int64")

    days = purchases[["customer_id", "day"]].drop_duplicates().sort_values(["customer_id", "day"])
    days["gap"] = days.groupby("customer_id")["day"].diff().dt.days
    gaps = days.dropna(subset=["gap"]).groupby("customer_id")["gap"].agg(["mean", "median", "std"])
    out["gap_mean_days"] = gaps["mean"]
    out["gap_median_days"] = gaps["median"]
    out["gap_std_days"] = gaps["std"]
    out["repeat_purchase_days"] = days.groupby("customer_id")["gap"].count()
    out["repeat_purchase_days"] = out["repeat_purchase_days"].fillna(0).astype("int64")
    out["overdue_ratio"] = out["recency_days"] / out["gap_median_days"]
    return out.reset_index()


def run_pandas(parquet: Path, as_of: date, threads: int):
    import pandas as pd
    import pyarrow as pa

    from propensity.config import FeaturesConfig

    pa.set_cpu_count(threads)  # the Parquet reader is the only multi-threaded part
    cfg = FeaturesConfig()
    t0 = time.perf_counter()
    tx = pd.read_parquet(parquet)
    t1 = time.perf_counter()
    out = pandas_rfmw(tx, as_of, cfg)
    t2 = time.perf_counter()
    return out, t1 - t0, t2 - t1


def child(args: argparse.Namespace) -> None:
    """One timed run in this process; prints one JSON line."""
    if args.child == "steps":
        steps = run_steps(Path(args.parquet), date.fromisoformat(args.as_of), args.threads)
        print("RESULT " + json.dumps({"steps": steps}), flush=True)
        return
    rss_start = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    as_of = date.fromisoformat(args.as_of)
    run = {"duckdb": run_duckdb, "pandas": run_pandas}[args.child]
    out, load_s, compute_s = run(Path(args.parquet), as_of, args.threads)
    rss_peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux
    if args.save_output:
        out.to_parquet(args.save_output, index=False)
    print("RESULT " + json.dumps({
        "method": args.child, "load_s": load_s, "compute_s": compute_s,
        "total_s": load_s + compute_s, "peak_rss_mib": rss_peak / 1024,
        "start_rss_mib": rss_start / 1024, "spill_mib": getattr(run, "spill_mib", 0.0), "rows": len(out), "columns": list(out.columns),
    }), flush=True)


def spawn(method: str, parquet: Path, threads: int, save: Path | None) -> dict:
    cmd = [
        sys.executable, str(Path(__file__).resolve()), "--child", method, "--parquet", str(parquet),
        "--as-of", as_of_date().isoformat(), "--threads", str(threads),
    ]
    if save is not None:
        cmd += ["--save-output", str(save)]
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    proc = subprocess.run(cmd, capture_output=True, text=True, env=env, cwd=ROOT)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        sys.stderr.write(proc.stdout + proc.stderr)
        raise SystemExit(f"{method} run failed (exit code {proc.returncode})")
    return json.loads(lines[-1].removeprefix("RESULT "))


# ---------------------------------------------------------------------------- check


def compare(duck_path: Path, pandas_path: Path, tol: float = 1e-9) -> tuple[list[str], list[str]]:
    """Compare the two outputs customer by customer; raise on a mismatch in any column."""
    import numpy as np
    import pandas as pd

    d = pd.read_parquet(duck_path).sort_values("customer_id").reset_index(drop=True)
    p = pd.read_parquet(pandas_path).sort_values("customer_id").reset_index(drop=True)
    if len(d) != len(p) or not (d["customer_id"].to_numpy() == p["customer_id"].to_numpy()).all():
        raise SystemExit(f"CHECK FAILED: customer sets differ (duckdb {len(d):,} rows, pandas {len(p):,} rows)")
    missing = [c for c in KEY_COLUMNS if c not in d.columns or c not in p.columns]
    if missing:
        raise SystemExit(f"CHECK FAILED: columns missing from an output: {missing}")
    common = [c for c in d.columns if c in p.columns and c != "customer_id"]
    problems = []
    for c in common:
        a = d[c].to_numpy(dtype="float64", na_value=np.nan)
        b = p[c].to_numpy(dtype="float64", na_value=np.nan)
        ok = np.isclose(a, b, rtol=tol, atol=tol, equal_nan=True)
        if not ok.all():
            i = int(np.flatnonzero(~ok)[0])
            problems.append(
                f"{c}: {int((~ok).sum()):,} customers differ, e.g. {d['customer_id'].iloc[i]}: "
                f"duckdb {a[i]!r} vs pandas {b[i]!r}"
            )
    if problems:
        raise SystemExit("CHECK FAILED:\n  " + "\n  ".join(problems))
    only = sorted(set(d.columns) ^ set(p.columns))
    if only:
        print(f"  note: columns in one output only (not checked): {only}")
    return common, only


# ---------------------------------------------------------------------------- report


def machine_facts() -> dict:
    import duckdb
    import numpy
    import pandas
    import pyarrow

    mem_kib = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "mem_gib": mem_kib / 2**20,
        "python": platform.python_version(), "duckdb": duckdb.__version__, "pandas": pandas.__version__,
        "numpy": numpy.__version__, "pyarrow": pyarrow.__version__, "kernel": platform.release(),
    }


def summarise(runs: list[dict]) -> dict:
    out = {}
    for key in ("load_s", "compute_s", "total_s", "peak_rss_mib", "spill_mib"):
        vals = [r[key] for r in runs]
        out[key] = statistics.median(vals)
        out[key + "_min"], out[key + "_max"] = min(vals), max(vals)
    return out


def size_table(lines: int, stats: dict[str, dict]) -> list[str]:
    d, p = stats["duckdb"], stats["pandas"]
    rows = [
        "| method | load s | compute s | total s | total range s | peak RSS MiB | spilled MiB |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for m in METHODS:
        s = stats[m]
        rows.append(
            f"| {m} | {s['load_s']:.2f} | {s['compute_s']:.2f} | {s['total_s']:.2f} | "
            f"{s['total_s_min']:.2f}-{s['total_s_max']:.2f} | {s['peak_rss_mib']:,.0f} | "
            + (f"{s['spill_mib']:,.0f} |" if m == "duckdb" else "- |")
        )
    rows.append(
        f"| **pandas / duckdb** | {p['load_s'] / d['load_s']:.2f}× | **{p['compute_s'] / d['compute_s']:.2f}×** | "
        f"**{p['total_s'] / d['total_s']:.2f}×** | | {p['peak_rss_mib'] / d['peak_rss_mib']:.2f}× | |"
    )
    return rows


def reading(results: dict[int, dict], repeat: int, threads: int) -> str:
    """A data-driven paragraph: what the medians say."""
    sizes = sorted(results)
    big = sizes[-1]
    d, p = results[big]["stats"]["duckdb"], results[big]["stats"]["pandas"]
    rc, rt = p["compute_s"] / d["compute_s"], p["total_s"] / d["total_s"]
    verdict = "meets" if rc >= COMPUTE_TARGET else "does not meet"
    parts = [
        f"At {big:,} lines ({results[big]['meta']['customers']:,} customers), the product's DuckDB SQL "
        f"computed the RFMW columns in a median {d['compute_s']:.1f} s against {p['compute_s']:.1f} s for the "
        f"pandas groupby baseline (pandas/DuckDB {rc:.2f}×), which {verdict} the target of a compute at least "
        f"{COMPUTE_TARGET:g}× faster than pandas' at the largest size; with loading included it took "
        f"{d['total_s']:.1f} s against {p['total_s']:.1f} s ({rt:.2f}×)."
    ]
    parts.append(
        f"Loading costs {d['load_s']:.1f} s in DuckDB (Parquet into an in-memory table) and "
        f"{p['load_s']:.1f} s in pandas (`read_parquet`)."
    )
    parts.append(
        f"Peak memory was {d['peak_rss_mib'] / 1024:.1f} GiB for DuckDB and {p['peak_rss_mib'] / 1024:.1f} GiB "
        f"for pandas ({p['peak_rss_mib'] / d['peak_rss_mib']:.1f}×)"
        + (f"; DuckDB also spilled a median {d['spill_mib'] / 1024:.1f} GiB to its temporary folder, which RSS "
           "does not show." if d["spill_mib"] > 100 else ".")
    )
    if len(sizes) > 1:
        small = sizes[0]
        scale = big / small
        ds = results[big]["stats"]["duckdb"]["compute_s"] / results[small]["stats"]["duckdb"]["compute_s"]
        ps = results[big]["stats"]["pandas"]["compute_s"] / results[small]["stats"]["pandas"]["compute_s"]
        small_r = results[small]["stats"]["pandas"]["compute_s"] / results[small]["stats"]["duckdb"]["compute_s"]
        parts.append(
            f"From {small:,} to {big:,} lines ({scale:.0f}× the data) DuckDB's compute time grew {ds:.1f}× "
            f"and pandas' {ps:.1f}×; the compute ratio was {small_r:.1f}× at the small size."
        )
    steps = results[big].get("steps")
    if steps:
        cpu = sum(st["cpu_s"] for st in steps)
        top = sorted(steps, key=lambda st: -st["cpu_s"])[:3]
        parts.append(
            f"Timed one by one at {big:,} lines, the steps used {cpu:.1f} CPU-seconds, most in "
            + ", ".join(f"`{st['step']}` ({st['cpu_s']:.1f} s, {st['cpu_s'] / cpu:.0%})" for st in top) + "."
        )
    spread = max(
        (s["total_s_max"] - s["total_s_min"]) / s["total_s"]
        for r in results.values() for s in r["stats"].values()
    )
    parts.append(
        f"Each figure is the median of {repeat} runs in fresh processes, the methods alternating "
        f"(DuckDB with {threads} threads; pandas is single-threaded apart from the Parquet reader); the widest "
        f"spread of a total between its fastest and slowest run was {spread:.0%} of the median, "
        "so differences of that size are noise on this shared machine."
    )
    return " ".join(parts)


def write_markdown(path: Path, command: str, facts: dict, results: dict, args, load: tuple) -> None:
    now = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        "# RFMW features: DuckDB (product SQL) vs pandas baseline",
        "",
        f"- Command: `{command}`",
        f"- Date: {now}",
        f"- Machine: {facts['nproc']} cores ({facts['cpu']}), {facts['mem_gib']:.1f} GiB memory, "
        f"Linux {facts['kernel']}; load average at start {load[0]}, at end {load[1]} (shared machine)",
        f"- Versions: Python {facts['python']}, duckdb {facts['duckdb']}, pandas {facts['pandas']}, "
        f"numpy {facts['numpy']}, pyarrow {facts['pyarrow']}",
        f"- Data: synthetic transactions, seed {args.seed}; customer_id / order_id / category are strings, "
        f"ts timestamp[us], amount double. As-of {as_of_date()} (data end {data_end()} minus {HORIZON_DAYS} days); "
        "default `FeaturesConfig()` (windows 30/90/365 days, trend 90 days).",
        "- Spilled = the largest size of DuckDB's temporary (spill) folder seen while it ran, polled every 0.2 s.",
        f"- Each number is the median of {args.repeat} runs, each in a fresh subprocess; peak RSS is the "
        "child's own `ru_maxrss` (interpreter and libraries included). Load = DuckDB `create table "
        "transactions as select * from read_parquet(...)` / pandas `read_parquet`; compute = the rfmw "
        "query fetched to a DataFrame / the pandas groupbys (both children import pandas before the clock starts).",
        "",
    ]
    for size in sorted(results):
        r = results[size]
        m = r["meta"]
        lines += [
            f"## {size:,} lines",
            "",
            f"{m['customers']:,} customers, {m['orders']:,} orders ({m['zero_net_orders_nudged']:,} whose lines cancelled "
            f"to the cent moved by one cent), {m['returned_share']:.1%} returned lines, "
            f"Parquet {m['bytes'] / 2**20:,.0f} MiB; {r['rows']:,} customers in the output.",
            "",
            *size_table(size, r["stats"]),
            "",
            f"Check: the two outputs agree for every customer on {len(r['checked'])} columns "
            f"(tolerance 1e-9): {', '.join(r['checked'])}."
            + (f" In one output only, not checked: {', '.join(r['unchecked'])}." if r["unchecked"] else ""),
            "",
        ]
        if r.get("steps"):
            lines += [
                f"DuckDB steps one by one (`--steps`, one run, {args.threads} threads; each step materialised "
                "from the ones before it, row-level steps left as views):",
                "",
                "| step | rows | wall s | CPU s |",
                "| --- | ---: | ---: | ---: |",
                *(f"| {st['step']} | {st['rows']:,} | {st['wall_s']:.2f} | {st['cpu_s']:.2f} |" for st in r["steps"]),
                f"| **sum** | | {sum(st['wall_s'] for st in r['steps']):.2f} | "
                f"{sum(st['cpu_s'] for st in r['steps']):.2f} |",
                "",
            ]
    lines += ["## Reading", "", reading(results, args.repeat, args.threads), ""]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines))


# ---------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(
        description="Time the product's RFMW SQL on DuckDB against a pandas groupby baseline "
        "on synthetic transactions of the given sizes.",
    )
    ap.add_argument("--lines", type=int, nargs="+", default=[10_000_000, 50_000_000],
                    help="transaction line counts to benchmark (default: 10000000 50000000)")
    ap.add_argument("--repeat", type=int, default=3, help="runs per method and size; medians are reported (default 3)")
    ap.add_argument("--threads", type=int, default=2, help="DuckDB threads and Arrow reader threads (default 2)")
    ap.add_argument("--seed", type=int, default=42, help="generator seed (default 42)")
    ap.add_argument("--workdir", type=Path, default=ROOT / "bench" / ".work",
                    help="where the generated Parquet files live (default bench/.work)")
    ap.add_argument("--output", type=Path, default=ROOT / "bench" / "results" / "features.md",
                    help="Markdown report (default bench/results/features.md); a .json of every run goes next to it")
    ap.add_argument("--clean", action="store_true", help="delete the generated Parquet files at the end")
    ap.add_argument("--steps", action="store_true",
                    help="also time the DuckDB steps one by one (one more child per size)")
    # Internal: one timed run in a child process.
    ap.add_argument("--child", choices=(*METHODS, "generate", "steps"), help=argparse.SUPPRESS)
    ap.add_argument("--gen-lines", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--parquet", help=argparse.SUPPRESS)
    ap.add_argument("--as-of", help=argparse.SUPPRESS)
    ap.add_argument("--save-output", help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.child == "generate":
        generate(args.gen_lines, args.seed, args.workdir)
        return
    if args.child:
        child(args)
        return

    command = "PYTHONPATH=. python bench/features.py " + shlex.join(sys.argv[1:] if argv is None else argv)
    facts = machine_facts()
    load_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print(f"{facts['nproc']} cores, {facts['mem_gib']:.1f} GiB; duckdb {facts['duckdb']}, pandas {facts['pandas']}, "
          f"numpy {facts['numpy']}; as-of {as_of_date()}; load average {load_start}")
    results: dict[int, dict] = {}
    all_runs = []
    made = []
    for size in args.lines:
        print(f"\n== {size:,} lines")
        # Generate in a child too, so the parent stays small while the methods run.
        gen = [sys.executable, str(Path(__file__).resolve()), "--child", "generate", "--gen-lines", str(size),
               "--seed", str(args.seed), "--workdir", str(args.workdir)]
        subprocess.run(gen, check=True, cwd=ROOT)
        parquet = args.workdir / f"transactions_{size}_s{args.seed}.parquet"
        made.append(parquet)
        meta = json.loads(parquet.with_suffix(".json").read_text())
        runs: dict[str, list[dict]] = {m: [] for m in METHODS}
        saved = {m: args.workdir / f"out_{m}_{size}.parquet" for m in METHODS}
        for i in range(args.repeat):
            for m in METHODS if i % 2 == 0 else reversed(METHODS):
                r = spawn(m, parquet, args.threads, saved[m] if i == 0 else None)
                r.update(lines=size, run=i + 1)
                runs[m].append(r)
                all_runs.append(r)
                print(f"  run {i + 1} {m:6s}: load {r['load_s']:6.2f} s  compute {r['compute_s']:7.2f} s  "
                      f"total {r['total_s']:7.2f} s  peak RSS {r['peak_rss_mib']:8,.0f} MiB"
                      + (f"  spilled {r['spill_mib']:,.0f} MiB" if m == "duckdb" else ""))
        checked, unchecked = compare(saved["duckdb"], saved["pandas"])
        for p in saved.values():
            p.unlink(missing_ok=True)
        print(f"  check ok: {len(checked)} columns agree for all {runs['duckdb'][0]['rows']:,} customers")
        stats = {m: summarise(runs[m]) for m in METHODS}
        results[size] = {"meta": meta, "stats": stats, "checked": checked, "unchecked": unchecked, "rows": runs["duckdb"][0]["rows"]}
        print("\n" + "\n".join(size_table(size, stats)))
        if args.steps:
            steps = spawn("steps", parquet, args.threads, None)["steps"]
            results[size]["steps"] = steps
            for st in steps:
                print(f"  step {st['step']:16s} rows {st['rows']:>12,}  wall {st['wall_s']:6.2f} s  cpu {st['cpu_s']:6.2f} s")

    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    write_markdown(args.output, command, facts, results, args, (load_start, load_end))
    args.output.with_suffix(".json").write_text(json.dumps(
        {"command": command, "machine": facts, "as_of": as_of_date().isoformat(), "runs": all_runs,
         "summary": {str(k): v["stats"] for k, v in results.items()},
         "steps": {str(k): v["steps"] for k, v in results.items() if v.get("steps")}}, indent=1))
    print("\n" + reading(results, args.repeat, args.threads))
    print(f"\nwrote {args.output} and {args.output.with_suffix('.json')}")
    if args.clean:
        for p in made:
            p.unlink(missing_ok=True)
            p.with_suffix(".json").unlink(missing_ok=True)


if __name__ == "__main__":
    main()
