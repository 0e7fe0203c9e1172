"""Benchmark: reason-code text per reason row, vectorised (`reason_codes`) against one sentence per row.

1. The set-up of ``bench/explain.py`` (its ``prepare``): a sample world (``--customers``,
   seed ``--seed``) in a DuckDB file under ``bench/.work/reasons/``, the churn, response
   and value models fitted with the product's defaults and 1 thread (no baselines),
   saved with ``LgbmModel.save``, and up to ``--rows`` feature rows of each model's data
   (out-of-time test, tune, then training rows) in Parquet; this bench explains the
   churn rows with every model. Not timed; reused when present.
2. For each model, on the same rows (the response model with its campaign kind added,
   as the scorer does), the contributions are computed once (not timed), then
   ``--repeat`` times, the methods taking turns:
   - ``reason_codes``: ``training.explain.reason_codes(k=5, contribs=...)``, the whole
     product path after SHAP (ranking, effects, value texts, sentences, the frame);
   - ``text, vectorised``: its text step alone (``training.explain._reason_strings``);
   - ``text, per row``: ``format_value`` and ``reason_text`` for each reason row over
     plain dict records: the loop ``reason_codes`` ran before issue 11;
   - ``reason_codes, --baseline``: with ``--baseline FILE``, ``reason_codes`` of another
     version of ``training/explain.py`` (e.g. ``git show b200078:training/explain.py``, before issue 11).
   Then the same for ``reason_codes`` (and the baseline) on the first ``--piece`` rows
   per call: the scorer explains ``serving.batch.PIECE`` customers at a time.
3. Checks that every method gives the same strings (and the baseline the same frame).
4. Prints a table and writes ``--out`` (Markdown): command, date, machine and load,
   versions, medians in microseconds per reason row, speed-ups.

Run from the repository root::

    PYTHONPATH=. python bench/reasons.py
    git show b200078:training/explain.py > /tmp/explain_before.py
    PYTHONPATH=. python bench/reasons.py --baseline /tmp/explain_before.py --repeat 7
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import platform
import shlex
import statistics
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
# bench/features.py is named like the product's `features` package: keep this folder off sys.path.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

import numpy as np  # noqa: E402
import pandas as pd  # noqa: E402

NAMES = ("churn", "response", "value")
K = 5


def _explain_bench():
    """bench/explain.py as a module: its set-up (world, three champions, rows on disk) is this bench's too."""
    return load_module(str(Path(__file__).with_name("explain.py")), "bench_explain")


def work_dir(args: argparse.Namespace) -> Path:
    return _explain_bench().work_dir(args)


def prepare(args: argparse.Namespace) -> dict:
    """World, three models and rows on disk (bench/explain.py's `prepare`); returns facts about them."""
    facts = _explain_bench().prepare(args)
    if facts["models"]["churn"]["rows"] < args.rows:
        raise SystemExit(f"only {facts['models']['churn']['rows']:,} rows available; lower --rows or raise --customers")
    return facts


def per_row_texts(frame: pd.DataFrame, features: list[str], codes: pd.DataFrame, name: str
                  ) -> tuple[list[str], list[str]]:
    """The value texts and sentences as `reason_codes` built them before issue 11: a call per reason row."""
    from training.explain import _CONTEXT_COLUMNS, format_value, reason_text

    wanted = set(features) | _CONTEXT_COLUMNS
    records = frame[[f for f in frame.columns if f in wanted]].to_dict("records")
    rows = np.repeat(np.arange(len(frame)), K)
    values, texts = [], []
    for r, f, v in zip(rows, codes["feature"].tolist(), codes["contribution"].tolist()):
        rec = records[r]
        values.append(format_value(rec.get(f)))
        texts.append(reason_text(f, rec, v, name))
    return values, texts


def load_module(path: str, name: str):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def measure(args: argparse.Namespace) -> dict:
    """Times per model and method (seconds, one list per method) and the reason-row counts."""
    from training import explain
    from training.feature_sets import with_campaign_kind
    from training.models import LgbmModel

    folder = work_dir(args)
    base = load_module(args.baseline, "explain_baseline") if args.baseline else None
    frame = pd.read_parquet(folder / "churn" / "rows.parquet")  # the same rows for every model
    out: dict = {}
    for name in NAMES:
        model = LgbmModel.load(str(folder / name / "booster.txt"), str(folder / name / "meta.json"))
        rows = with_campaign_kind(model, frame, None)
        c = explain.contributions(model, rows)
        features = list(c.values.columns)
        codes = explain.reason_codes(model, rows, name, k=K, contribs=c)
        n = len(rows)
        ranked = np.repeat(np.arange(n), K)
        cols = pd.Index(features).get_indexer(codes["feature"])
        contrib = codes["contribution"].to_numpy()
        methods = {
            "reason_codes": lambda: explain.reason_codes(model, rows, name, k=K, contribs=c),
            "text, vectorised": lambda: explain._reason_strings(rows, ranked, cols, features, contrib, name),
            "text, per row": lambda: per_row_texts(rows, features, codes, name),
        }
        if base is not None:
            methods["reason_codes, --baseline"] = lambda: base.reason_codes(model, rows, name, k=K, contribs=c)
        values, texts = per_row_texts(rows, features, codes, name)
        if codes["feature_value"].tolist() != values or codes["text"].tolist() != texts:
            raise SystemExit(f"{name}: the vectorised texts differ from the per-row reference")
        if base is not None:
            pd.testing.assert_frame_equal(codes, methods["reason_codes, --baseline"]())
        out[name] = {"reason_rows": len(codes), **timed(methods, args.repeat)}
        # the scorer explains `serving.batch.PIECE` customers per call: fixed costs weigh more there
        piece = rows.head(args.piece)
        pc = explain.contributions(model, piece)
        piece_methods = {"reason_codes": lambda: explain.reason_codes(model, piece, name, k=K, contribs=pc)}
        if base is not None:
            piece_methods["reason_codes, --baseline"] = lambda: base.reason_codes(model, piece, name, k=K, contribs=pc)
        out[name]["piece"] = {"reason_rows": len(piece) * K, **timed(piece_methods, args.repeat)}
        per = {m: statistics.median(ts) / len(codes) * 1e6 for m, ts in out[name]["cpu"].items()}
        print(f"{name}: {len(codes):,} reason rows; CPU " + ", ".join(f"{m} {v:.2f} us" for m, v in per.items()),
              flush=True)
    return out


def timed(methods: dict, repeat: int) -> dict[str, dict[str, list[float]]]:
    """Wall and CPU seconds of each method, `repeat` times, the methods taking turns."""
    times: dict[str, list[float]] = {m: [] for m in methods}
    cpu: dict[str, list[float]] = {m: [] for m in methods}
    for _ in range(repeat):
        for m, fn in methods.items():
            t, c0 = time.perf_counter(), time.process_time()
            fn()
            cpu[m].append(time.process_time() - c0)
            times[m].append(time.perf_counter() - t)
    return {"times": times, "cpu": cpu}


def render(args: argparse.Namespace, facts: dict, runs: dict, loads: tuple[str, str], wall: float) -> str:
    import pyarrow

    command = "PYTHONPATH=. python bench/reasons.py " + shlex.join(sys.argv[1:])
    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    lines = [
        "# Reason-code text: vectorised `reason_codes` against one sentence per reason row",
        "",
        f"- Command: `{command.strip()}`",
        f"- Date: {datetime.now(UTC):%Y-%m-%d %H:%M} UTC; wall time {wall:.0f} s",
        (f"- Machine: {len(os.sched_getaffinity(0))} cores ({cpu}); load average at start {loads[0]}, "
         f"at end {loads[1]} (shared machine)"),
        (f"- Versions: Python {platform.python_version()}, pandas {pd.__version__}, numpy {np.__version__}, "
         f"pyarrow {pyarrow.__version__}"),
        (f"- Data: {args.rows:,} feature rows of a {args.customers:,}-customer sample world (seed {args.seed}), "
         f"k = {K} reasons per row and model, the models' contributions computed once beforehand (not timed). "
         f"Medians of {args.repeat} runs, methods taking turns, in microseconds per reason row: CPU time "
         "of the process (`time.process_time`, less sensitive to the other users of a shared machine) and "
         "wall time."),
        "",
        ("| model | reason rows | method | CPU us per reason row | CPU min-max | wall us per reason row | "
         "vs text per row (CPU) |"),
        "| --- | ---: | --- | ---: | ---: | ---: | ---: |",
    ]
    for name, run in runs.items():
        n = run["reason_rows"]
        ref = statistics.median(run["cpu"]["text, per row"])
        for m, ts in run["cpu"].items():
            med = statistics.median(ts)
            lines.append(f"| {name} | {n:,} | {m} | {med / n * 1e6:.2f} | {min(ts) / n * 1e6:.2f}-"
                         f"{max(ts) / n * 1e6:.2f} | {statistics.median(run['times'][m]) / n * 1e6:.2f} | "
                         f"{ref / med:.1f}x |")
    lines += ["", (f"At the scorer's piece size: the first {args.piece:,} of those rows per call "
                   "(`serving.batch.PIECE` customers are scored and explained at a time):"), "",
              "| model | reason rows | method | CPU us per reason row | wall us per reason row |",
              "| --- | ---: | --- | ---: | ---: |"]
    for name, run in runs.items():
        piece = run["piece"]
        n = piece["reason_rows"]
        for m, ts in piece["cpu"].items():
            lines.append(f"| {name} | {n:,} | {m} | {statistics.median(ts) / n * 1e6:.2f} | "
                         f"{statistics.median(piece['times'][m]) / n * 1e6:.2f} |")
    lines += ["", "## Reading", "", reading(runs), ""]
    return "\n".join(lines)


def reading(runs: dict) -> str:
    def per(run: dict, m: str) -> float:
        return statistics.median(run["cpu"][m]) / run["reason_rows"] * 1e6

    parts = []
    for name, run in runs.items():
        text = (f"{name}: in CPU time, the text step costs {per(run, 'text, vectorised'):.2f} us per reason row "
                f"vectorised against {per(run, 'text, per row'):.2f} us one row at a time "
                f"({per(run, 'text, per row') / per(run, 'text, vectorised'):.1f}x); the whole `reason_codes` "
                f"after SHAP takes {per(run, 'reason_codes'):.2f} us per reason row")
        if "reason_codes, --baseline" in run["times"]:
            text += (f", against {per(run, 'reason_codes, --baseline'):.2f} us for the baseline version "
                     f"({per(run, 'reason_codes, --baseline') / per(run, 'reason_codes'):.1f}x)")
            piece = run["piece"]
            new, old = (statistics.median(piece["cpu"][m]) for m in ("reason_codes", "reason_codes, --baseline"))
            text += (f"; on {piece['reason_rows'] // K:,}-customer pieces, {new / piece['reason_rows'] * 1e6:.2f} "
                     f"against {old / piece['reason_rows'] * 1e6:.2f} us ({old / new:.1f}x)")
        parts.append(text + ".")
    parts.append(
        "The outputs are checked equal string for string before timing. The vectorised step works a feature "
        "at a time and holds text as codes into its distinct strings: each distinct number is formatted once "
        "(values are printed rounded to 1 or 2 decimals), pieces are joined once per distinct combination "
        "(Arrow kernels), and what remains per row is integer work, hashing and the final take of the strings. "
        "Each call also pays a fixed cost per feature shown (a few dozen NumPy, pandas and Arrow calls), which "
        "weighs more on the scorer's smaller pieces."
    )
    return "\n\n".join(parts)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--customers", type=int, default=20_000, help="sample world size (default 20000)")
    p.add_argument("--seed", type=int, default=1, help="sample world seed (default 1)")
    p.add_argument("--rows", type=int, default=50_000, help="customers explained per run (default 50000)")
    p.add_argument("--repeat", type=int, default=5, help="runs per method; the median is reported (default 5)")
    p.add_argument("--piece", type=int, default=10_000, help="customers per call at the scorer's size (default 10000)")
    p.add_argument("--baseline", help="another training/explain.py whose reason_codes is timed too")
    p.add_argument("--work", default=str(ROOT / "bench" / ".work" / "reasons"), help="scratch folder")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "reasons.md"), help="Markdown report")
    args = p.parse_args()
    t0 = time.perf_counter()
    load_start = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    print("preparing the world and the models ...", flush=True)
    facts = prepare(args)
    runs = measure(args)
    load_end = " / ".join(f"{x:.1f}" for x in os.getloadavg())
    text = render(args, facts, runs, (load_start, load_end), time.perf_counter() - t0)
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
