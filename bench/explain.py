"""Benchmark: reason codes for every customer, `training.explain` against shap's TreeExplainer.

1. Builds a sample world (``--customers``, seed ``--seed``) in a DuckDB file under
   ``bench/.work/explain/``, the training data of each model with the product's
   defaults, and fits the churn, response and value LightGBM models with 1 thread
   (``training.train.fit_lgbm``; baselines not fitted). Each model is saved with
   ``LgbmModel.save`` and up to ``--rows`` of its feature rows (out-of-time test, then
   tune, then training rows) go to Parquet. Not timed; reused when present.
2. For each ``--threads`` value a fresh subprocess with ``OMP_NUM_THREADS`` set loads
   the saved models (``LgbmModel.load``, the serving path), warms up on 500 rows (the
   fast engine's tables are built and numba's code compiled or loaded there), then
   ``--repeat`` times, per model, methods taking turns:
   - ``reason codes``: ``training.explain.reason_codes(k=5)`` from the frame: encode,
     fast exact TreeSHAP, raw score, additivity check, ranking, effects, sentences;
   - ``contributions``: ``training.explain.contributions`` alone (the default, fast);
   - ``contributions (pred_contrib)``: the same with ``method="lightgbm"``, LightGBM's
     own TreeSHAP, the reference;
   - ``shap TreeExplainer``: ``shap.TreeExplainer(model.booster_).shap_values(model.encode(rows))``
     (the explainer is built once per child, its build time reported apart);
   - ``predict_raw``: plain scoring, for scale.
3. Compares the values: max |fast contribution - shap value| over all rows and
   features, and the base value against shap's ``expected_value``.
4. Prints a table and writes ``--out`` (Markdown) with the command, date, machine,
   versions, the tables and a reading.

Run from the repository root::

    PYTHONPATH=. python bench/explain.py
    PYTHONPATH=. python bench/explain.py --customers 20000 --rows 20000 --repeat 3 --threads 1 2
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import warnings
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/features.py is named like the product's `features` package; when this file runs
# as a script its folder comes first on sys.path and would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

METHODS = ("reason codes", "contributions", "contributions (pred_contrib)", "shap TreeExplainer", "predict_raw")
MODELS = ("churn", "response", "value")
K = 5


def work_dir(args: argparse.Namespace) -> Path:
    return Path(args.work) / f"c{args.customers}_s{args.seed}_r{args.rows}_v2"


# ---------------------------------------------------------------------------- set-up


def prepare(args: argparse.Namespace) -> dict:
    """World, churn model and rows on disk; returns facts about them."""
    folder = work_dir(args)
    facts_path = folder / "facts.json"
    if facts_path.exists():
        return json.loads(facts_path.read_text())
    import pandas as pd

    from features.load import Warehouse
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import Config
    from training.dataset import training_data
    from training.train import fit_lgbm

    folder.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    db = folder / "warehouse.duckdb"
    db.unlink(missing_ok=True)
    cfg = Config(warehouse={"url": f"duckdb:///{db}"}, lightgbm={"num_threads": 1})
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=args.customers, seed=args.seed))
    datas, snapshots = {}, None
    for name in MODELS:
        datas[name] = training_data(name, wh, cfg.features, cfg.training.tuning_share,
                                    snapshots=snapshots if name == "value" else None)
        if name == "churn":
            snapshots = pd.concat([datas[name].train, datas[name].tune, datas[name].test], ignore_index=True)
    wh.close()
    facts = {"prepare_seconds": 0.0, "models": {}}
    for name, data in datas.items():
        model = fit_lgbm(data, cfg)
        (folder / name).mkdir(exist_ok=True)
        model.save(str(folder / name / "booster.txt"), str(folder / name / "meta.json"))
        rows = pd.concat([data.test, data.tune, data.train], ignore_index=True).head(args.rows)
        rows.to_parquet(folder / name / "rows.parquet", index=False)
        facts["models"][name] = {
            "summary": data.summary(), "trees": model.best_iteration_, "num_leaves": model.params.num_leaves,
            "features": len(model.features), "categorical": len(model.categorical), "rows": len(rows),
            "calibrated": model.calibration_ is not None,
        }
    facts["prepare_seconds"] = round(time.perf_counter() - t0, 1)
    facts_path.write_text(json.dumps(facts, indent=1))
    return facts


# ---------------------------------------------------------------------------- child


def child(args: argparse.Namespace) -> None:
    """Time every method in this process (threads fixed by the parent); print JSON."""
    import numpy as np
    import pandas as pd
    import shap

    from training.explain import contributions, reason_codes
    from training.models import LgbmModel

    folder = work_dir(args)
    threads = args.threads[0]
    warnings.simplefilter("ignore")  # shap: "binary classifier ... output has changed to a list"
    out: dict = {"threads": threads, "models": {}}
    for name in MODELS:
        model = LgbmModel.load(str(folder / name / "booster.txt"), str(folder / name / "meta.json"))
        model.num_threads = threads
        rows = pd.read_parquet(folder / name / "rows.parquet")
        t0 = time.perf_counter()
        explainer = shap.TreeExplainer(model.booster_)
        build = time.perf_counter() - t0

        def run_shap(frame: pd.DataFrame, model=model, explainer=explainer) -> np.ndarray:
            return np.asarray(explainer.shap_values(model.encode(frame)))

        methods = {
            "reason codes": lambda f, model=model, name=name: reason_codes(model, f, name, k=K),
            "contributions": lambda f, model=model: contributions(model, f),
            "contributions (pred_contrib)": lambda f, model=model: contributions(model, f, method="lightgbm"),
            "shap TreeExplainer": run_shap,
            "predict_raw": model.predict_raw,
        }
        t0 = time.perf_counter()
        contributions(model, rows.head(500))  # builds the fast engine (tables, compiled code)
        engine_build = time.perf_counter() - t0
        warm = rows.head(500)
        for fn in methods.values():
            fn(warm)
        times: dict[str, list[float]] = {m: [] for m in methods}
        for _ in range(args.repeat):
            for method, fn in methods.items():
                t = time.perf_counter()
                fn(rows)
                times[method].append(time.perf_counter() - t)
        ours = contributions(model, rows)
        theirs = run_shap(rows)
        codes = reason_codes(model, rows, name, k=K, contribs=ours)
        out["models"][name] = {
            "times": times, "explainer_build_seconds": build, "engine_build_seconds": engine_build,
            "method": ours.method, "rows": len(rows),
            "max_abs_diff": float(np.max(np.abs(ours.values.to_numpy() - theirs))),
            "base_diff": float(abs(ours.base_value - float(np.ravel(explainer.expected_value)[0]))),
            "max_additivity_deviation": ours.max_deviation(),
            "reason_rows": len(codes), "example": codes.head(K)[["rank", "feature", "contribution", "effect", "text"]]
            .to_dict("records"),
        }
    print(json.dumps(out))


# ---------------------------------------------------------------------------- report


def machine_facts() -> dict:
    import lightgbm
    import numba
    import numpy
    import pandas
    import shap

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
        "lightgbm": lightgbm.__version__, "shap": shap.__version__, "pandas": pandas.__version__,
        "numpy": numpy.__version__, "numba": numba.__version__,
    }


def _med(run: dict, name: str, method: str) -> float:
    return statistics.median(run["models"][name]["times"][method])


def _total(run: dict, method: str) -> float:
    """Seconds for all three models, the sum of the per-model medians."""
    return sum(_med(run, name, method) for name in MODELS)


def render(args: argparse.Namespace, facts: dict, runs: list[dict], machine: dict, loads: tuple[str, str],
           command: str, wall: float) -> str:
    lines = [
        "# Reason codes for every customer: `training.explain` against shap's TreeExplainer",
        "",
        f"- Command: `{command}`",
        (f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wall time {wall:.0f} s "
         f"(set-up {facts['prepare_seconds']} s when not reused)"),
        (f"- Machine: {machine['nproc']} cores ({machine['cpu']}); load average at start {loads[0]}, "
         f"at end {loads[1]} (shared machine)"),
        (f"- Versions: Python {machine['python']}, lightgbm {machine['lightgbm']}, shap {machine['shap']}, "
         f"numba {machine['numba']}, pandas {machine['pandas']}, numpy {machine['numpy']}"),
        (f"- Models: churn, response and value LightGBM models of a {args.customers:,}-customer sample world "
         f"(seed {args.seed}), product defaults, trained with 1 thread, saved and reloaded with "
         "`LgbmModel.save` / `load`:"),
    ]
    for name in MODELS:
        m = facts["models"][name]
        lines.append(f"  - {name}: {m['trees']} trees x up to {m['num_leaves']} leaves, {m['features']} features "
                     f"({m['categorical']} categorical, native categorical splits), {m['rows']:,} rows explained. "
                     f"{m['summary']}.")
    lines += [
        (f"- Each number is the median of {args.repeat} runs in one subprocess per thread count "
         "(`OMP_NUM_THREADS` set, `model.num_threads` set for ours), methods taking turns; a 500-row warm-up "
         "first. shap's explainer and our engine are built once per subprocess (times listed apart). "
         "*Reason codes* is the whole product path from the feature frame: contributions (fast exact "
         "TreeSHAP), raw score, additivity check, top 5 per row, effects and sentences."),
        "",
        "| threads | model | method | median s | min-max s | rows/s | rows/s per thread | speed vs shap |",
        "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for run in runs:
        for name in MODELS:
            n = run["models"][name]["rows"]
            shap_med = _med(run, name, "shap TreeExplainer")
            for m in METHODS:
                ts = run["models"][name]["times"][m]
                med = statistics.median(ts)
                lines.append(f"| {run['threads']} | {name} | {m} | {med:.2f} | {min(ts):.2f}-{max(ts):.2f} | "
                             f"{n / med:,.0f} | {n / med / run['threads']:,.0f} | {shap_med / med:.2f}x |")
    lines += ["", "All three models together (sum of the per-model medians):", "",
              "| threads | reason codes s | shap TreeExplainer s | reason codes vs shap |",
              "| ---: | ---: | ---: | ---: |"]
    for run in runs:
        rc, sh = _total(run, "reason codes"), _total(run, "shap TreeExplainer")
        lines.append(f"| {run['threads']} | {rc:.2f} | {sh:.2f} | **{sh / rc:.1f}x** |")
    lines += ["", ("| threads | model | engine | engine build s | shap explainer build s | max abs diff (fast - shap) "
                   "| base value diff | max additivity deviation |"),
              "| ---: | --- | --- | ---: | ---: | ---: | ---: | ---: |"]
    for run in runs:
        for name in MODELS:
            r = run["models"][name]
            lines.append(f"| {run['threads']} | {name} | {r['method']} | {r['engine_build_seconds']:.2f} | "
                         f"{r['explainer_build_seconds']:.2f} | {r['max_abs_diff']:.1e} | {r['base_diff']:.1e} | "
                         f"{r['max_additivity_deviation']:.1e} |")
    ex = runs[0]["models"]["churn"]["example"]
    lines += ["", "Example, the first churn row's reason codes (k = 5):", "",
              "| rank | feature | contribution (log-odds) | effect (probability) | text |",
              "| ---: | --- | ---: | ---: | --- |"]
    lines += [f"| {e['rank']} | {e['feature']} | {e['contribution']:+.3f} | {e['effect']:+.4f} | {e['text']} |"
              for e in ex]
    lines += ["", "## Reading", "", reading(runs), ""]
    return "\n".join(lines)


def reading(runs: list[dict]) -> str:
    parts = []
    for run in runs:
        rc, c, ref, sh = (_total(run, m) for m in METHODS[:4])
        parts.append(
            f"With {run['threads']} thread(s), reason codes for every row of the three models take {rc:.2f} s "
            f"against {sh:.2f} s for shap's TreeExplainer values alone: **{sh / rc:.1f}x**. The contributions "
            f"alone take {c:.2f} s ({sh / c:.1f}x shap; LightGBM's own pred_contrib {ref:.2f} s); ranking, "
            f"effects and sentences add {rc - c:.2f} s ({(rc - c) / rc:.0%} of the reason codes' time)."
        )
    diffs = max(r["max_abs_diff"] for run in runs for r in run["models"].values())
    parts.append(
        f"The values are the same numbers: the largest difference between our contributions and shap's "
        f"over every row and feature is {diffs:.1e} (summation order). shap hands a LightGBM booster to "
        "LightGBM's `pred_contrib`; ours computes the same path-dependent TreeSHAP from per-leaf tables "
        "(`training/treeshap.py`), checked against `pred_contrib` on every row by tests/test_treeshap.py."
    )
    if len(runs) > 1:
        one, two = runs[0], runs[-1]
        parts.append(
            f"Going from {one['threads']} to {two['threads']} threads changed the reason codes from "
            f"{_total(one, METHODS[0]):.2f} s to {_total(two, METHODS[0]):.2f} s and shap from "
            f"{_total(one, METHODS[3]):.2f} s to {_total(two, METHODS[3]):.2f} s; on a shared 2-core machine "
            "the second core is only worth having when it is free (see the load averages above)."
        )
    return "\n\n".join(parts)


# ---------------------------------------------------------------------------- main


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000, help="sample world size (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="sample world seed (default 1)")
    p.add_argument("--rows", type=int, default=20_000, help="rows explained per run (default 20000)")
    p.add_argument("--repeat", type=int, default=3, help="runs per method; the median is reported (default 3)")
    p.add_argument("--threads", type=int, nargs="+", default=[1, 2], help="thread counts (default 1 2)")
    p.add_argument("--work", default=str(ROOT / "bench" / ".work" / "explain"), help="scratch folder")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "explain.md"), help="Markdown report")
    p.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.child:
        child(args)
        return
    t0 = time.perf_counter()
    load_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print("preparing the world and the churn, response and value models ...", flush=True)
    facts = prepare(args)
    for name, m in facts["models"].items():
        print(f"{name}: {m['summary']} - {m['trees']} trees", flush=True)
    runs = []
    for threads in args.threads:
        cmd = [sys.executable, str(Path(__file__).resolve()), "--child", "--customers", str(args.customers),
               "--seed", str(args.seed), "--rows", str(args.rows), "--repeat", str(args.repeat),
               "--threads", str(threads), "--work", args.work]
        env = {**os.environ, "OMP_NUM_THREADS": str(threads), "PYTHONPATH": str(ROOT)}
        print(f"timing with {threads} thread(s) ...", flush=True)
        proc = subprocess.run(cmd, check=False, capture_output=True, text=True, env=env, cwd=ROOT)
        if proc.returncode != 0:
            raise SystemExit(f"child failed ({threads} threads):\n{proc.stderr[-3000:]}")
        run = json.loads(proc.stdout.strip().splitlines()[-1])
        runs.append(run)
        for name in MODELS:
            n = run["models"][name]["rows"]
            for m in METHODS:
                med = _med(run, name, m)
                print(f"  {name:<9} {m:<30} {med:8.2f} s  {n / med:10,.0f} rows/s", flush=True)
            print(f"  {name:<9} max abs diff vs shap {run['models'][name]['max_abs_diff']:.1e}", flush=True)
        print(f"  reason codes vs shap, three models: "
              f"{_total(run, METHODS[3]) / _total(run, METHODS[0]):.1f}x", flush=True)
    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    command = "PYTHONPATH=. python bench/explain.py " + shlex.join(sys.argv[1:])
    text = render(args, facts, runs, machine_facts(), (load_start, load_end), command.strip(),
                  time.perf_counter() - t0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
