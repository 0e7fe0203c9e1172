"""Benchmark: uplift models (two-model, X-learner) against response ranking, Hillstrom and sample world.

1. **Hillstrom** (MineThatData e-mail test, 64,000 customers). Imported with the
   product's adapter (``import_public(..., "hillstrom", ...)``) into a throw-away DuckDB
   warehouse; the uplift rows are the contacts of campaign ``womens_email`` (treatment:
   the women's e-mail, control: no e-mail; 42,693 customers), outcome ``responded`` =
   visit, read with ``training.uplift.uplift_contacts``. Features are the customer
   attributes from the warehouse: the columns that parse as numbers (recency, history,
   mens, womens, newbie) as numbers, the others (history_segment, zip_code, channel) as
   categories. The set has one send date, so there is no out-of-time split; instead the
   rows are split at random 50 / 50 exactly as scikit-uplift's tutorial did for its
   published uplift@30 % of 0.0661 (``sklearn.model_selection.train_test_split(rows,
   test_size=0.5, random_state=42)`` on the rows in file order, Mens E-Mail removed), and
   again with random_state 0, 1, 2, ... for medians. Of each training half, 30 % (a
   seeded random subset) is the tune part for early stopping, calibration and the
   "auto" choice; the models train on the other 70 %. Scorers on the same test half:
   ``UpliftModel`` two-model, X-learner and "auto" with the product's uplift parameters
   (``UPLIFT_PARAM_OVERRIDES``: 4 leaves), the two-model learner with the ``[training]``
   default of 31 leaves, and the response ranking: a treatment-only LightGBM classifier
   with the ``[training]`` defaults (what the product's response model is).
2. **Sample world** (``--world-customers``, seeds ``--world-seeds``). The product's own
   path: ``uplift_data`` (email campaigns, treatment and control contacts, features as of
   each campaign start, the latest campaign out of time, tune / test halves by the
   customer-id hash) and ``UpliftModel(learner="auto")`` with the product's uplift
   parameters, against the response model the pipeline trains
   (``fit_response_baseline``: treatment contacts of every kind). On the test half, each
   ranking picks the top 10 / 20 / 30 % of the customers contacted; the true incremental
   responders it reaches are the sum of the stored true uplift
   (P(resp | treated) - P(resp | control), ``synth_truth``) of the customers picked who
   were alive at the campaign start (``training.uplift.true_effect``). Random targeting
   reaches the budget share of the total; the oracle ranks by the truth itself.
   Spearman: predicted vs true uplift over the test customers alive at the start.

Uplift@k is scikit-uplift's ``uplift_at_k`` with strategy "overall" and the Qini
coefficient its ``qini_auc_score`` (``training.uplift_eval``). LightGBM runs with one
thread. No MLflow: the bench calls the model classes directly.

Run from the repository root::

    PYTHONPATH=. python bench/uplift.py
    PYTHONPATH=. python bench/uplift.py --help
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import sys
import tempfile
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parent.parent
# bench/features.py is named like the product's `features` package; when this file runs
# as a script its folder comes first on sys.path and would shadow the package.
sys.path[:] = [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PUBLISHED_UPLIFT_AT_30 = 0.0661
PUBLISHED_SOURCE = (
    "scikit-uplift, notebooks/pipeline_usage_EN.ipynb (output `uplift@30%: 0.0661` at commit 8f2023a, "
    "April 2020; a later re-run of the same notebook printed 0.0660): Womens E-Mail vs No E-Mail, "
    "target visit, `train_test_split(dataset, test_size=0.5, random_state=42)`, CatBoostEncoder on "
    "history_segment / zip_code / channel + `ClassTransformation(XGBClassifier(max_depth=2, "
    "random_state=42))`, `uplift_at_k(y_val, uplift, treat_val, strategy='overall')` (k = 0.3)"
)
SKLIFT_SPLIT_SEED = 42
HILLSTROM_CAMPAIGN = "womens_email"
TUNE_SHARE_OF_TRAIN = 0.3
SHARES = (0.1, 0.2, 0.3)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        description="Uplift models (two-model, X-learner on LightGBM) against response ranking: "
        "Hillstrom (uplift@30 %% next to scikit-uplift's published 0.0661, Qini) and the sample world "
        "(true incremental responders reached at 10/20/30 %% budgets), written as a Markdown report.",
    )
    p.add_argument("--data", type=Path, default=ROOT.parent / "shared" / "data",
                   help="folder of the public data sets (default: ../shared/data)")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "uplift.md",
                   help="Markdown report to write (default: bench/results/uplift.md)")
    p.add_argument("--hillstrom-splits", type=int, default=5,
                   help="random 50/50 splits: random_state 42 (scikit-uplift's) then 0, 1, ... (5)")
    p.add_argument("--world-customers", type=int, default=20_000, help="sample world size (20000)")
    p.add_argument("--world-seeds", type=int, nargs="+", default=[1, 2, 3, 4, 5],
                   help="sample world seeds (1 2 3 4 5)")
    p.add_argument("--only", choices=("hillstrom", "world"), default=None, help="run one part only")
    return p.parse_args(argv)


def log(msg: str) -> None:
    print(f"[{datetime.now():%H:%M:%S}] {msg}", file=sys.stderr, flush=True)


def fmt(v: float, digits: int = 4) -> str:
    return "n/a" if v is None or not np.isfinite(v) else f"{v:.{digits}f}"


def spread(values: list[float], digits: int = 4) -> str:
    """Median [min, max]."""
    if len(values) == 1:
        return fmt(values[0], digits)
    return f"{fmt(float(np.median(values)), digits)} [{fmt(min(values), digits)}, {fmt(max(values), digits)}]"


# ------------------------------------------------------------------------- Hillstrom


def hillstrom_frame(warehouse) -> tuple[pd.DataFrame, list[str], list[str]]:
    """Contacts of the women's e-mail (treatment + control) with the customer attributes.

    Attributes arrive as text (the product stores every attribute as text); columns whose
    every value parses as a number become numeric features, the rest categorical.
    Rows are in file order (customer ids H00001.. follow the file's rows).
    """
    from training.uplift import TARGET, uplift_contacts

    contacts = uplift_contacts(warehouse, "email", None)
    contacts = contacts[contacts["campaign_id"] == HILLSTROM_CAMPAIGN]
    customers = warehouse.read("customers").drop(columns=["first_seen"], errors="ignore")
    numeric, categorical = [], []
    for column in customers.columns.drop("customer_id"):
        parsed = pd.to_numeric(customers[column], errors="coerce")
        if parsed.notna().sum() == customers[column].notna().sum():
            customers[column] = parsed.astype("float64")
            numeric.append(column)
        else:
            categorical.append(column)
    frame = contacts.merge(customers, on="customer_id", how="inner").sort_values("customer_id", ignore_index=True)
    frame[TARGET] = frame["responded"].astype("int64")
    return frame, numeric, categorical


def hillstrom_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(train, tune, test) row positions: scikit-uplift's 50/50 split, then 30 % of train to tune."""
    from sklearn.model_selection import train_test_split

    train, test = train_test_split(np.arange(n), test_size=0.5, random_state=seed)
    rng = np.random.default_rng(seed)
    is_tune = rng.random(len(train)) < TUNE_SHARE_OF_TRAIN
    return train[~is_tune], train[is_tune], test


def uplift_at_30_se(y: np.ndarray, score: np.ndarray, t: np.ndarray) -> float:
    """Binomial standard error of uplift@30 % ("overall"): sqrt(p_T q_T / n_T + p_C q_C / n_C) in the top 30 %."""
    m = int(len(y) * 0.3)
    top = np.argsort(-score, kind="stable")[:m]
    yt, yc = y[top][t[top] == 1], y[top][t[top] == 0]
    return float(np.sqrt(yt.mean() * (1 - yt.mean()) / len(yt) + yc.mean() * (1 - yc.mean()) / len(yc)))


@dataclass
class HillstromRun:
    seed: int
    rows: dict[str, int]
    metrics: dict[str, dict[str, float]]  # scorer -> metrics
    chosen: str
    tune_qini: dict[str, float]
    se30: float
    seconds: float


def run_hillstrom(args: argparse.Namespace, workdir: Path) -> dict:
    from features.load import Warehouse
    from features.sources import import_public
    from training.models import LgbmModel, LgbmParams
    from training.uplift import TARGET, TREATMENT, UPLIFT_PARAM_OVERRIDES, UpliftModel
    from training.uplift_eval import uplift_metrics

    log("Hillstrom: importing with the product's adapter")
    wh = Warehouse(f"duckdb:///{workdir / 'hillstrom.duckdb'}")
    import_public(wh, "hillstrom", args.data / "hillstrom_email")
    frame, numeric, categorical = hillstrom_frame(wh)
    wh.close()
    defaults = LgbmParams()  # the [training] defaults (31 leaves)
    uplift_params = LgbmParams(**{**vars(defaults), **UPLIFT_PARAM_OVERRIDES})
    seeds = [SKLIFT_SPLIT_SEED, *range(args.hillstrom_splits - 1)]
    runs = []
    for seed in seeds:
        t0 = time.perf_counter()
        tr, tu, te = hillstrom_split(len(frame), seed)
        train, tune, test = (frame.iloc[i].reset_index(drop=True) for i in (tr, tu, te))
        fit_args = (train, train[TARGET].to_numpy(), train[TREATMENT].to_numpy(),
                    tune, tune[TARGET].to_numpy(), tune[TREATMENT].to_numpy())
        model = UpliftModel(numeric, categorical, "auto", uplift_params, num_threads=1).fit(*fit_args)
        wide = UpliftModel(numeric, categorical, "two_model", defaults, num_threads=1).fit(*fit_args)
        treated, treated_tune = train[TREATMENT] == 1, tune[TREATMENT] == 1
        response = LgbmModel("binary", numeric, categorical, defaults, num_threads=1).fit(
            train[treated], train.loc[treated, TARGET].to_numpy(), tune[treated_tune],
            tune.loc[treated_tune, TARGET].to_numpy())
        scores = {
            "two_model": model.predict_uplift(test, "two_model"),
            "x_learner": model.predict_uplift(test, "x_learner"),
            "auto": model.predict_uplift(test),
            "two_model_31_leaves": wide.predict_uplift(test),
            "response": response.predict(test),
        }
        y, t = test[TARGET].to_numpy(), test[TREATMENT].to_numpy()
        metrics = {name: uplift_metrics(y, s, t, SHARES) for name, s in scores.items()}
        rows = {"train": len(train), "tune": len(tune), "test": len(test),
                "test_treated": int(t.sum()), "test_control": int(len(t) - t.sum())}
        runs.append(HillstromRun(seed, rows, metrics, model.learner_, model.tune_qini_,
                                 uplift_at_30_se(y, scores["two_model"], t), time.perf_counter() - t0))
        log(f"Hillstrom split {seed}: uplift@30 two_model {metrics['two_model']['uplift_at_30']:.4f}, "
            f"x_learner {metrics['x_learner']['uplift_at_30']:.4f}, response {metrics['response']['uplift_at_30']:.4f} "
            f"(auto: {model.learner_}; {runs[-1].seconds:.1f} s)")
    return {"runs": runs, "numeric": numeric, "categorical": categorical, "rows": len(frame),
            "treated": int(frame[TREATMENT].sum()), "visit_rate": {
                "treatment": float(frame.loc[frame[TREATMENT] == 1, TARGET].mean()),
                "control": float(frame.loc[frame[TREATMENT] == 0, TARGET].mean())}}


# ---------------------------------------------------------------------- sample world


@dataclass
class WorldRun:
    seed: int
    summary: str
    chosen: str
    tune_qini: dict[str, float]
    reached: dict[str, np.ndarray]  # scorer -> true incremental responders at SHARES
    spearman: dict[str, float]
    observed: dict[str, dict[str, float]]  # scorer -> observed Qini / uplift@k on the test half
    seconds: float


def run_world(args: argparse.Namespace, workdir: Path) -> list[WorldRun]:
    from scipy.stats import spearmanr

    from features.load import Warehouse
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import project_in
    from training.feature_sets import with_campaign_kind
    from training.train import lgbm_params
    from training.uplift import (
        TARGET, TREATMENT, UPLIFT_PARAM_OVERRIDES, UpliftModel, fit_response_baseline, true_effect, uplift_data,
    )
    from training.uplift_eval import truth_captured, uplift_metrics

    runs = []
    for seed in args.world_seeds:
        t0 = time.perf_counter()
        folder = workdir / f"world_{seed}"
        cfg = project_in(folder, num_threads=1)
        wh = Warehouse(cfg.warehouse.url)
        log(f"sample world {args.world_customers:,} customers, seed {seed}")
        load_sample_world(wh, SynthConfig(customers=args.world_customers, seed=seed))
        data = uplift_data(wh, cfg.features, "email", cfg.training.tuning_share)
        model = UpliftModel(data.numeric, data.categorical, "auto", lgbm_params(cfg, UPLIFT_PARAM_OVERRIDES),
                            num_threads=1, seed=cfg.lightgbm.seed).fit(
            data.train, data.train[TARGET].to_numpy(), data.train[TREATMENT].to_numpy(),
            data.tune, data.tune[TARGET].to_numpy(), data.tune[TREATMENT].to_numpy())
        response = fit_response_baseline(wh, cfg)
        truth = wh.read("synth_truth")
        wh.close()
        test = data.test
        effect = true_effect(truth, test)
        alive = effect != 0.0
        scores = {
            "uplift (auto)": model.predict_uplift(test),
            "two_model": model.predict_uplift(test, "two_model"),
            "x_learner": model.predict_uplift(test, "x_learner"),
            "response model": response.predict(with_campaign_kind(response, test, "email")),
        }
        reached = {name: truth_captured(effect, s, SHARES) for name, s in scores.items()}
        reached["random"] = np.array(SHARES) * effect.sum()
        reached["oracle (true uplift)"] = truth_captured(effect, effect, SHARES)
        spearman = {name: float(spearmanr(s[alive], effect[alive]).statistic) for name, s in scores.items()}
        y, t = test[TARGET].to_numpy(), test[TREATMENT].to_numpy()
        observed = {name: uplift_metrics(y, s, t, SHARES) for name, s in scores.items()}
        runs.append(WorldRun(seed, data.summary(), model.learner_, model.tune_qini_, reached, spearman, observed,
                             time.perf_counter() - t0))
        log(f"  at 20 %: uplift {reached['uplift (auto)'][1]:.1f}, response {reached['response model'][1]:.1f}, "
            f"random {reached['random'][1]:.1f} true incremental responders ({runs[-1].seconds:.0f} s)")
    return runs


# --------------------------------------------------------------------------- report


def machine_facts() -> dict:
    import duckdb
    import lightgbm
    import scipy
    import sklearn

    cpu = platform.processor() or "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(ln.split(":", 1)[1].strip() for ln in f if ln.startswith("model name"))
    except (OSError, StopIteration):
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)), "cpu": cpu, "python": platform.python_version(),
        "code": code_version(),
        "versions": {"lightgbm": lightgbm.__version__, "scikit-learn": sklearn.__version__,
                     "duckdb": duckdb.__version__, "pandas": pd.__version__, "numpy": np.__version__,
                     "scipy": scipy.__version__},
    }


def code_version() -> str:
    """The commit and whether the working tree differs from it (read-only git calls)."""
    import subprocess

    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True,
                              text=True, check=True).stdout.strip()
        changed = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT,
                                 capture_output=True, text=True, check=True).stdout.splitlines()
    except (OSError, subprocess.CalledProcessError):
        return "unknown (not a git checkout)"
    new = sum(line.startswith("??") for line in changed)
    return f"commit {head}" + (f", working tree with {len(changed) - new} modified and {new} new files"
                               if changed else ", clean working tree")


HILLSTROM_NAMES = {
    "two_model": "two-model (T-learner), 4 leaves",
    "x_learner": "X-learner, 4 leaves",
    "auto": "auto (learner chosen on the tune part)",
    "two_model_31_leaves": "two-model, 31 leaves ([training] default)",
    "response": "response model (treatment-only classifier, [training] defaults)",
}


def hillstrom_section(h: dict) -> list[str]:
    runs: list[HillstromRun] = h["runs"]
    first = runs[0]
    out = [
        "## 1. Hillstrom: women's e-mail vs no e-mail, outcome visit",
        "",
        f"{h['rows']:,} customers ({h['treated']:,} treated, {h['rows'] - h['treated']:,} control); visit rate "
        f"{h['visit_rate']['treatment']:.4f} treated vs {h['visit_rate']['control']:.4f} control "
        f"(average uplift {h['visit_rate']['treatment'] - h['visit_rate']['control']:.4f}). Features: "
        f"{', '.join(h['numeric'])} as numbers; {', '.join(h['categorical'])} as categories.",
        "",
        f"**Split.** Hillstrom has one send date, so no out-of-time split exists. The published figure comes from "
        f"{PUBLISHED_SOURCE}. The same random 50/50 split is reproduced here (random_state {SKLIFT_SPLIT_SEED}: "
        f"test {first.rows['test']:,} rows, {first.rows['test_control']:,} of them control), and repeated with "
        f"random_state {', '.join(str(r.seed) for r in runs[1:])} for the medians. 30 % of each training half "
        f"(seeded) is the tune part (early stopping, calibration, the auto choice): models train on "
        f"{first.rows['train']:,} rows, tune on {first.rows['tune']:,}; scikit-uplift's model trained on the "
        "whole half without early stopping.",
        "",
        f"| scorer | uplift@30 % (split {SKLIFT_SPLIT_SEED}) | uplift@30 %, median [min, max] over "
        f"{len(runs)} splits | Qini coefficient (split {SKLIFT_SPLIT_SEED}) | Qini, median [min, max] |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for key, label in HILLSTROM_NAMES.items():
        u30 = [r.metrics[key]["uplift_at_30"] for r in runs]
        qini = [r.metrics[key]["qini_coefficient"] for r in runs]
        out.append(f"| {label} | {fmt(u30[0])} | {spread(u30)} | {fmt(qini[0])} | {spread(qini)} |")
    out.append(f"| scikit-uplift tutorial (published) | {PUBLISHED_UPLIFT_AT_30:.4f} | | | |")
    ate = [r.metrics["two_model"]["observed_uplift"] for r in runs]
    out += [
        f"| random targeting (expected: the test half's average uplift) | {fmt(ate[0])} | {spread(ate)} | 0 | 0 |",
        "",
        f"Noise: the binomial standard error of uplift@30 % on this test half is about {first.se30:.4f} "
        f"(top 30 % = {int(first.rows['test'] * 0.3):,} rows). Auto chose: "
        + ", ".join(f"{r.chosen} (split {r.seed}; tune Qini two_model {r.tune_qini['two_model']:.4f}, "
                    f"x_learner {r.tune_qini['x_learner']:.4f})" for r in runs) + ".",
        "",
        "uplift@10 % / 20 % (median over splits): "
        + "; ".join(f"{HILLSTROM_NAMES[k].split(',')[0].split(' (')[0]} "
                    f"{np.median([r.metrics[k]['uplift_at_10'] for r in runs]):.4f} / "
                    f"{np.median([r.metrics[k]['uplift_at_20'] for r in runs]):.4f}"
                    for k in ("two_model", "x_learner", "response")) + ".",
        "",
    ]
    return out


WORLD_ORDER = ("uplift (auto)", "two_model", "x_learner", "response model", "random", "oracle (true uplift)")


def world_section(runs: list[WorldRun], customers: int) -> list[str]:
    out = [
        "## 2. Sample world: true incremental responders at the same budget",
        "",
        f"{len(runs)} worlds of {customers:,} customers (seeds {', '.join(str(r.seed) for r in runs)}), email "
        f"campaigns. World of seed {runs[0].seed}: " + runs[0].summary + ". Budget = share of the test half's contacted customers "
        "(treatment and control alike: whom to contact next time). Values: true incremental responders "
        "reached (sum of true uplift of the customers picked, alive at the campaign start), median over worlds "
        "[min, max].",
        "",
        "| ranking | top 10 % | top 20 % | top 30 % | Spearman with true uplift |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    for name in WORLD_ORDER:
        cells = [spread([float(r.reached[name][i]) for r in runs], 1) for i in range(len(SHARES))]
        rho = spread([r.spearman[name] for r in runs], 3) if name in runs[0].spearman else ""
        out.append(f"| {name} | " + " | ".join(cells) + f" | {rho} |")
    ratios = [[r.reached["uplift (auto)"][i] / r.reached["response model"][i] for r in runs]
              for i in range(len(SHARES))]
    out += [
        "",
        "Uplift (auto) over response model, per world (10 / 20 / 30 %): "
        + "; ".join(f"seed {r.seed}: " + " / ".join(f"{ratios[i][j]:.3f}" for i in range(len(SHARES)))
                    for j, r in enumerate(runs)) + ".",
        "",
        "Auto chose: " + ", ".join(f"{r.chosen} (seed {r.seed}; tune Qini two_model "
                                   f"{r.tune_qini['two_model']:.4f}, x_learner {r.tune_qini['x_learner']:.4f})"
                                   for r in runs) + ".",
        "",
        "Observed on the same test half (Qini coefficient / uplift@30 %, median over worlds): "
        + "; ".join(f"{name} {np.median([r.observed[name]['qini_coefficient'] for r in runs]):.4f} / "
                    f"{np.median([r.observed[name]['uplift_at_30'] for r in runs]):.4f}"
                    for name in WORLD_ORDER if name in runs[0].observed) + ".",
        "",
    ]
    return out


def _versus(value: float, reference: float, se: float) -> str:
    """The gap between `value` and `reference` in binomial standard errors."""
    return f"{(value - reference) / se:+.1f} s.e."


def reading(h: dict | None, world: list[WorldRun] | None) -> list[str]:
    """A short reading of the numbers, generated from them (so it stays true on a re-run)."""
    out = ["## Reading", ""]
    if h is not None:
        runs: list[HillstromRun] = h["runs"]
        first, se = runs[0], runs[0].se30

        def med(key: str, metric: str) -> float:
            return float(np.median([r.metrics[key][metric] for r in runs]))

        out.append(
            f"- **Hillstrom, scikit-uplift's split.** uplift@30 %: two-model {first.metrics['two_model']['uplift_at_30']:.4f} "
            f"({_versus(first.metrics['two_model']['uplift_at_30'], PUBLISHED_UPLIFT_AT_30, se)} from the published "
            f"{PUBLISHED_UPLIFT_AT_30}), X-learner {first.metrics['x_learner']['uplift_at_30']:.4f} "
            f"({_versus(first.metrics['x_learner']['uplift_at_30'], PUBLISHED_UPLIFT_AT_30, se)}), response ranking "
            f"{first.metrics['response']['uplift_at_30']:.4f}; random targeting gives "
            f"{first.metrics['two_model']['observed_uplift']:.4f}. One split is one draw: the s.e. ({se:.4f}) is as "
            "large as the differences between the learners."
        )
        out.append(
            f"- **Over {len(runs)} splits** (medians): uplift@30 % two-model {med('two_model', 'uplift_at_30'):.4f}, "
            f"X-learner {med('x_learner', 'uplift_at_30'):.4f}, response ranking {med('response', 'uplift_at_30'):.4f}; "
            f"Qini coefficient {med('two_model', 'qini_coefficient'):.4f} / {med('x_learner', 'qini_coefficient'):.4f} "
            f"/ {med('response', 'qini_coefficient'):.4f}. The Qini coefficient covers every budget and so varies less "
            "between splits than one cut at 30 %, where a single split can put the response ranking level with or "
            "ahead of an uplift learner."
        )
        out.append(
            f"- **Tree size.** The two-model learner with the [training] default of 31 leaves: uplift@30 % "
            f"{med('two_model_31_leaves', 'uplift_at_30'):.4f}, Qini {med('two_model_31_leaves', 'qini_coefficient'):.4f} "
            f"(median), against {med('two_model', 'uplift_at_30'):.4f} and {med('two_model', 'qini_coefficient'):.4f} "
            "with 4 leaves, the product's uplift setting (`UPLIFT_PARAM_OVERRIDES`)."
        )
    if world is not None:
        def reached(name: str, i: int) -> float:
            return float(np.median([r.reached[name][i] for r in world]))

        ratios = [r.reached["uplift (auto)"][1] / r.reached["response model"][1] for r in world]
        rho_u = float(np.median([r.spearman["uplift (auto)"] for r in world]))
        rho_r = float(np.median([r.spearman["response model"] for r in world]))
        out.append(
            f"- **Sample world, budget 20 %.** Uplift ranking reaches {reached('uplift (auto)', 1):.1f} true "
            f"incremental responders (median of {len(world)} worlds), the response model {reached('response model', 1):.1f}, "
            f"random {reached('random', 1):.1f}, the oracle {reached('oracle (true uplift)', 1):.1f}; uplift over "
            f"response per world {min(ratios):.2f}-{max(ratios):.2f}. At 10 %: {reached('uplift (auto)', 0):.1f} vs "
            f"{reached('response model', 0):.1f}; at 30 %: {reached('uplift (auto)', 2):.1f} vs "
            f"{reached('response model', 2):.1f}: the gap narrows as the budget grows"
            + (f", and in {behind} of {len(world)} worlds the response ranking is level or ahead at 30 %."
               if (behind := sum(r.reached["uplift (auto)"][2] <= r.reached["response model"][2] for r in world))
               else ".")
        )
        out.append(
            f"- **Why the response model does this well and no better.** It ranks by P(respond | treated). In the "
            "world's generative model (features/synth.py) persuadables (treated 0.26, control 0.04) and sure things (0.34 vs 0.30) both score high, so it "
            "spends part of the budget on sure things, whose uplift is small; do-not-disturbs (0.03 vs 0.14) "
            f"it ranks low, as it should. Spearman with the true uplift: uplift {rho_u:.3f}, response {rho_r:.3f} "
            "(medians). The type behind the true uplift is only partly visible in the features (customers with "
            "no needs evaluation show no orientation or style), so even the best ranking on these features stays "
            "far below the oracle."
        )
    out.append("")
    return out


def build_report(args: argparse.Namespace, facts: dict, h: dict | None, world: list[WorldRun] | None,
                 command: str, started: datetime, load_start: tuple, load_end: tuple, wall: float) -> str:
    v = facts["versions"]
    out = [
        "# Uplift: two-model and X-learner against response ranking",
        "",
        f"- Command: `{command}`",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; wall time {wall:.0f} s",
        f"- Machine: {facts['nproc']} cores ({facts['cpu']}), shared with other work; load average at start "
        f"{' / '.join(f'{x:.1f}' for x in load_start)}, at end {' / '.join(f'{x:.1f}' for x in load_end)}; "
        "LightGBM `num_threads = 1`",
        f"- Code: {facts['code']}",
        f"- Versions: Python {facts['python']}, " + ", ".join(f"{k} {val}" for k, val in v.items()),
        "- Metrics: `training.uplift_eval` (uplift@k = scikit-uplift's `uplift_at_k`, strategy \"overall\", "
        "int(n * k) rows; Qini coefficient = its `qini_auc_score`, normalised by the perfect Qini curve with "
        "negative effects). Both were checked against scikit-uplift 0.5.1 on random arrays: identical.",
        "",
    ]
    if h is not None:
        out += hillstrom_section(h)
    if world is not None:
        out += world_section(world, args.world_customers)
    out += reading(h, world)
    return "\n".join(out) + "\n"


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    args.data = args.data.resolve()
    if args.only in (None, "hillstrom") and not (args.data / "hillstrom_email").is_dir():
        print(f"error: {args.data / 'hillstrom_email'} not found; pass --data or --only world", file=sys.stderr)
        return 2
    import warnings

    warnings.filterwarnings("ignore", category=FutureWarning)
    started = datetime.now(timezone.utc)
    load_start = os.getloadavg()
    t0 = time.perf_counter()
    env = f"PYTHONPATH={os.environ['PYTHONPATH']} " if os.environ.get("PYTHONPATH") else ""
    command = env + shlex.join(["python", *sys.argv])
    h = world = None
    with tempfile.TemporaryDirectory(prefix="propensity_uplift_") as tmp:
        if args.only in (None, "hillstrom"):
            h = run_hillstrom(args, Path(tmp))
        if args.only in (None, "world"):
            world = run_world(args, Path(tmp))
    wall = time.perf_counter() - t0
    report = build_report(args, machine_facts(), h, world, command, started, load_start, os.getloadavg(), wall)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(report)
    print(report)
    log(f"wrote {args.out} ({wall:.0f} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
