"""Benchmark: start-up time of the command line, `propensity --help`, wall clock.

Runs the installed console script (``.venv/bin/propensity`` beside this Python, else
``python -m propensity.cli``) ``--repeat`` times after one untimed warm-up (which fills
the OS file cache and ``__pycache__``), and prints each time, the median and the
slowest; the target of issue 15 is a median of at most 1.5 s on an idle machine. With
``--imports`` it also lists the heavy libraries (pandas, mlflow, ...) that importing
``propensity.cli`` pulls in: none, as the commands import them when they run.

Run from the repository root::

    PYTHONPATH=. python bench/cli_startup.py
    PYTHONPATH=. python bench/cli_startup.py --repeat 9 --args data import --help --imports
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
HEAVY = ("pandas", "numpy", "pyarrow", "duckdb", "sklearn", "lightgbm", "shap", "mlflow", "fastapi",
         "uvicorn", "sqlalchemy", "matplotlib", "optuna", "numba")


def command() -> list[str]:
    """The console script next to this interpreter, as a user runs it; else the module."""
    script = Path(sys.executable).parent / "propensity"
    return [str(script)] if script.exists() else [sys.executable, "-m", "propensity.cli"]


def wall_times(argv: list[str], repeat: int) -> list[float]:
    """Seconds per run of `argv` (output discarded), after one warm-up run."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    times = []
    for i in range(repeat + 1):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        took = time.perf_counter() - start
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed: {done.stderr.decode()[-500:]}")
        if i:  # the first run warms the caches
            times.append(took)
    return times


def heavy_imports() -> list[str]:
    """The heavy libraries in sys.modules after `import propensity.cli`, in a fresh interpreter."""
    code = f"import sys, propensity.cli; print(' '.join(m for m in {HEAVY!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env={**os.environ, "PYTHONPATH": str(ROOT)},
                         capture_output=True, text=True, check=True)
    return out.stdout.split()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="timed runs (default 5)")
    parser.add_argument("--args", nargs="+", default=["--help"], help="arguments to time (default: --help)")
    parser.add_argument("--imports", action="store_true", help="also list heavy libraries imported at start-up")
    opts = parser.parse_args()
    argv = [*command(), *opts.args]
    times = wall_times(argv, opts.repeat)
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    print(f"{' '.join(argv)}  ({opts.repeat} runs after a warm-up; load average {load:.2f}, {os.cpu_count()} CPUs)")
    print("  runs:   " + "  ".join(f"{t:.3f}" for t in times) + " s")
    print(f"  median: {statistics.median(times):.3f} s   slowest: {max(times):.3f} s   (target: median <= 1.5 s)")
    if opts.imports:
        heavy = heavy_imports()
        print("  heavy libraries imported by `import propensity.cli`: " + (", ".join(heavy) or "none"))


if __name__ == "__main__":
    main()
