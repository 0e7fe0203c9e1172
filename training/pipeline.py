"""The training stage end to end: data -> (tuning) -> model + baselines -> MLflow.

Used by the CLI and the notebooks, so both run exactly the same steps.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pandas as pd

from features.load import Warehouse
from propensity.config import Config
from training.dataset import TrainingData, TrainingDataError, training_data
from training.feature_sets import model_input
from training.promote import Decision, GateRules, promote, refuse_incomplete
from training.cards import explanation_artifacts, render_run_card
from training.track import (
    CARD_FILE, CHALLENGER, LoggedVersion, alias_version, configure, git_commit, log_model_run, log_trial,
    start_parent_run,
)
from training.train import TrainingResult, baseline_predictions, fit_lgbm, score_on, train_model, truth_spearman

Progress = Callable[[str], None]
Skip = Callable[[str, str], None]  # (model, one-line reason) for a model the data cannot give


@dataclass
class Outcome:
    """A trained, logged and registered model."""

    result: TrainingResult
    version: LoggedVersion
    truth_spearman: dict[str, dict[str, float]] | None
    tuned: dict[str, Any] | None

    def report(self) -> str:
        r = self.result
        table = r.table()
        cols = [c for c in table.columns if c in ("auc", "pr_auc", "log_loss", "brier", "ece", "lift_10", "capture_10",
                                                   "spearman", "gini_norm", "top_decile_capture", "rmse")]
        lines = [
            f"{r.name} version {self.version.version} (run {self.version.run_id[:8]}): {r.data.summary()}",
            table[cols].round(4).to_string(),
        ]
        if self.truth_spearman is not None:
            lines.append("Spearman with the sample world's true probabilities (all / alive customers):")
            lines += [f"  {k:<14} {v['all']:.3f} / {v['alive']:.3f}" for k, v in self.truth_spearman.items()]
        lines += [f"note: {n}" for n in r.notes]
        return "\n".join(lines)


SEARCH_SPACE = {
    "learning_rate": ("float_log", 0.01, 0.2),
    "num_leaves": ("int", 3, 127),
    "min_child_samples": ("int", 10, 300),
    "feature_fraction": ("float", 0.5, 1.0),
    "lambda_l2": ("float_log", 1e-3, 30.0),
}


def tune(data: TrainingData, cfg: Config, trials: int, experiment_id: str, progress: Progress) -> dict[str, Any]:
    """Optuna search on the tune half; each trial is a nested MLflow run. Returns the best parameters."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=cfg.lightgbm.seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    with start_parent_run(experiment_id, f"tune-{data.model}") as parent:
        def objective(trial: optuna.Trial) -> float:
            params: dict[str, Any] = {}
            for name, (kind, lo, hi) in SEARCH_SPACE.items():
                if kind == "int":
                    params[name] = trial.suggest_int(name, int(lo), int(hi))
                else:
                    params[name] = trial.suggest_float(name, lo, hi, log=kind == "float_log")
            model = fit_lgbm(data, cfg, params)
            score = score_on(data, model)
            log_trial(experiment_id, parent.info.run_id, trial.number, params, {"tune_score": score, "trees": model.best_iteration_})
            progress(f"  trial {trial.number + 1}/{trials}: {score:.4f}")
            return score

        study.optimize(objective, n_trials=trials)
    return dict(study.best_params)


def scorer_metrics(result: TrainingResult, spearman: dict[str, dict[str, float]] | None) -> dict[str, dict[str, float]]:
    """scorer (model and each baseline) -> its out-of-time metrics under one set of names, truth checks included."""
    out = {scorer: dict(values) for scorer, values in result.metrics.items()}
    for scorer, values in (spearman or {}).items():
        for subset, value in values.items():
            out.setdefault(scorer, {})[f"truth_spearman_{subset}"] = value
    return out


def artifacts(
    result: TrainingResult, spearman: dict[str, dict[str, float]] | None, commit: str, fingerprint: str
) -> dict[str, Any]:
    """Files logged with each run: feature list, charts, fingerprint, cutoffs, metrics."""
    from training import evaluate as ev

    data = result.data
    y = data.test[data.target].to_numpy()
    out: dict[str, Any] = {
        "features.json": {"numeric": data.numeric, "categorical": data.categorical,
                          "categories": result.model.categories_, "left_out_constant": data.constant},
        "data_fingerprint.json": {"fingerprint": fingerprint, "train_rows": len(data.train),
                                  "tune_rows": len(data.tune), "test_rows": len(data.test),
                                  "git_commit": commit},
        "cutoffs.json": {"train": [str(c) for c in data.train_cutoffs], "out_of_time": str(data.oot_cutoff)},
        "metrics_by_scorer.csv": result.table().reset_index(names="scorer"),
        # the same table as an MLflow table: the run's artifact view shows it as one
        "metrics_by_scorer.json": result.table().reset_index(names="scorer"),
    }
    if spearman is not None:
        out["truth_check.json"] = {"spearman_with_true_probability": spearman}
    if data.model == "value":
        out["value_deciles.png"] = ev.plot_value_deciles(
            ev.value_deciles(y, result.test_predictions["model"]), f"{data.model}: predicted vs actual by decile")
        out["gain.png"] = ev.plot_gain(
            {k: ev.gain_curve(y, p) for k, p in result.test_predictions.items()}, f"{data.model}: value captured")
    else:
        out["gain.png"] = ev.plot_gain(
            {k: ev.gain_curve(y, p) for k, p in result.test_predictions.items()}, f"{data.model}: gain on out-of-time test")
        out["calibration.png"] = ev.plot_calibration(
            {k: ev.reliability_curve(y, p) for k, p in result.test_predictions.items()}, f"{data.model}: reliability")
    return out


def data_builder(
    warehouse: Warehouse, cfg: Config, cutoff_progress: Callable[[Any], None] | None = None
) -> Callable[[str], TrainingData]:
    """Builds each model's training data; churn and value share one set of snapshots.

    Each model's data is built once per builder: a builder handed from `train_and_log`
    to `promote_models` (the demo, where the warehouse does not change in between)
    spares the gate a second build.
    """
    snapshots: pd.DataFrame | None = None
    built: dict[str, TrainingData] = {}

    def build(name: str) -> TrainingData:
        nonlocal snapshots
        if name in built:
            return built[name]
        data = training_data(name, warehouse, cfg.features, cfg.training.tuning_share,
                             progress=cutoff_progress, snapshots=snapshots)
        if name in ("churn", "value") and snapshots is None:
            snapshots = pd.concat([data.train, data.tune, data.test], ignore_index=True)
        built[name] = data
        return data

    return build


def _built_or_skipped(build: Callable[[str], TrainingData], name: str, on_skip: Skip | None) -> TrainingData | None:
    """`build(name)`, or None after telling `on_skip` why the data cannot give it (raises without on_skip)."""
    try:
        return build(name)
    except TrainingDataError as e:
        if on_skip is None:
            raise
        on_skip(name, str(e))
        return None


def train_and_log(
    names: list[str],
    warehouse: Warehouse,
    cfg: Config,
    tune_trials: int = 0,
    progress: Progress = lambda _m: None,
    on_skip: Skip | None = None,
    build: Callable[[str], TrainingData] | None = None,
) -> list[Outcome]:
    """Train, evaluate, log and register each named model (churn, response, value).

    Models are independent: with `on_skip`, a model whose training data the warehouse
    cannot give (no campaigns for response, a history too short for the cutoffs, ...)
    is reported there with the reason and the others still train; without it, the
    first such model raises TrainingDataError. `build` (from `data_builder`) may be
    shared with a later `promote_models` on the same, unchanged warehouse.
    """
    experiment_id = configure(cfg.mlflow, cfg.training.experiment)
    truth = warehouse.read("synth_truth") if warehouse.has("synth_truth") else pd.DataFrame()
    commit = git_commit()
    if build is None:
        build = data_builder(warehouse, cfg, cutoff_progress=lambda c: progress(f"  features as of {c}"))
    outcomes = []
    for name in names:
        progress(f"{name}: building training data")
        data = _built_or_skipped(build, name, on_skip)
        if data is None:
            continue
        progress(data.summary())
        tuned = tune(data, cfg, tune_trials, experiment_id, progress) if tune_trials else None
        result = train_model(data, cfg, tuned, progress)
        spearman = truth_spearman(result, truth)
        fingerprint = data.fingerprint()  # hashes every training row: once per model
        # The model run: `<scorer>.<metric>` for every scorer, the model's own also unprefixed;
        # each baseline also gets a nested run with the unprefixed names.
        by_scorer = scorer_metrics(result, spearman)
        metrics = {**result.flat_metrics(), **{f"{s}.{k}": v for s, m in by_scorer.items() for k, v in m.items()},
                   **by_scorer["model"]}
        tags = {
            "model": name, "git_commit": commit, "data_fingerprint": fingerprint,
            "oot_cutoff": str(data.oot_cutoff), "train_cutoffs": ",".join(str(c) for c in data.train_cutoffs),
            "warehouse": warehouse.url, "tuned_trials": str(tune_trials),
            "horizon_days": str(cfg.features.horizon_days),
            "data_origin": "synthetic" if not truth.empty else "own",
        }
        example = model_input(data.test.head(5), data.numeric, data.categorical)
        progress(f"{name}: explanations (SHAP)")
        files = {**artifacts(result, spearman, commit, fingerprint), **explanation_artifacts(result)}
        progress(f"{name}: logging the run and its model card, then registering it")
        # Registration is the last step: every file, the card included, is logged first.
        version = log_model_run(name, result.model, example, result.params, metrics, tags, files, experiment_id,
                                late_artifacts=lambda run_id: {CARD_FILE: render_run_card(name, run_id)},
                                baselines={k: v for k, v in by_scorer.items() if k != "model"})
        outcomes.append(Outcome(result, version, spearman, tuned))
    return outcomes


def promote_models(
    names: list[str], warehouse: Warehouse, cfg: Config, margin: float, progress: Progress = lambda _m: None,
    force: bool = False, on_skip: Skip | None = None, build: Callable[[str], TrainingData] | None = None,
) -> list[Decision]:
    """Run the promotion gate for each named model on freshly built out-of-time data.

    Args:
        names: models to promote.
        margin: required improvement over the champion.
        force: promote past the evidence checks (test-half size, baselines); never past
            the champion comparison.
        build: a `data_builder` already used by `train_and_log` on the same warehouse
            (its data is reused); by default the data is built afresh.
        on_skip: called with (model, reason) for a model that has no challenger or whose
            data cannot be rebuilt; the others go on. Without it, such a model raises.
    """
    configure(cfg.mlflow, cfg.training.experiment)
    build = build or data_builder(warehouse, cfg)
    rules = GateRules(margin=margin, min_test_rows=cfg.training.min_test_rows,
                      min_test_positives=cfg.training.min_test_positives, force=force)

    def refit(data: TrainingData) -> dict:
        return baseline_predictions(data, cfg)[0]

    decisions = []
    for name in names:
        if on_skip is not None and alias_version(name, CHALLENGER) is None:
            on_skip(name, f"no {name}@{CHALLENGER} to promote; train one with `propensity train {name}`")
            continue
        if on_skip is not None:  # checked before the data is rebuilt; `promote` checks it again
            refused = refuse_incomplete(name)
            if refused:
                on_skip(name, refused)
                continue
        progress(f"{name}: rebuilding the out-of-time data")
        data = _built_or_skipped(build, name, on_skip)
        if data is None:
            continue
        decisions.append(promote(name, data, rules, refit_baselines=refit))
    return decisions
