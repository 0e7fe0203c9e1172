"""Train one model and its baselines on the same out-of-time split, and evaluate them.

Plain objects in, plain objects out: `train_model` returns a `TrainingResult`; the CLI
hands it to `training.track` for MLflow.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from propensity.config import Config
from training.dataset import TrainingData
from training.models import LgbmModel, LgbmParams, free_cores

PRIMARY_METRIC = {"churn": "auc", "response": "auc", "value": "gini_norm"}


@dataclass
class TrainingResult:
    """A fitted model, its baselines' scores and every metric on the OOT test half."""

    name: str
    model: LgbmModel
    data: TrainingData
    metrics: dict[str, dict[str, float]]  # scorer ("model", "rfm_score", ...) -> metrics
    test_predictions: dict[str, np.ndarray]
    params: dict[str, Any]
    notes: list[str] = field(default_factory=list)

    @property
    def primary(self) -> str:
        return PRIMARY_METRIC[self.name]

    def flat_metrics(self) -> dict[str, float]:
        """`<scorer>.<metric>` for MLflow; the model's own metrics also without prefix."""
        out = {f"{scorer}.{k}": v for scorer, m in self.metrics.items() for k, v in m.items()}
        out.update(self.metrics["model"])
        out["best_iteration"] = self.model.best_iteration_
        return out

    def table(self) -> pd.DataFrame:
        """Metrics as a table: one row per scorer."""
        return pd.DataFrame(self.metrics).T


def lgbm_params(cfg: Config, overrides: dict[str, Any] | None = None) -> LgbmParams:
    t = cfg.training
    base = dict(
        learning_rate=t.learning_rate, num_leaves=t.num_leaves, min_child_samples=t.min_child_samples,
        feature_fraction=t.feature_fraction, lambda_l2=t.lambda_l2, max_rounds=t.max_rounds,
        early_stopping_rounds=t.early_stopping_rounds, tweedie_variance_power=t.tweedie_variance_power,
    )
    base.update(overrides or {})
    return LgbmParams(**base)


def fit_lgbm(data: TrainingData, cfg: Config, overrides: dict[str, Any] | None = None) -> LgbmModel:
    """Fit the LightGBM model of `data.model` with early stopping on the tune half."""
    kind = "tweedie" if data.model == "value" else "binary"
    model = LgbmModel(
        kind, data.numeric, data.categorical, lgbm_params(cfg, overrides),
        num_threads=free_cores(cfg.lightgbm.num_threads), seed=cfg.lightgbm.seed,
        calibrate_above_ece=cfg.training.calibrate_above_ece,
        level_correction=cfg.training.value_level_correction,
    )
    return model.fit(data.train, data.train[data.target].to_numpy(), data.tune, data.tune[data.target].to_numpy())


def score_on(data: TrainingData, model: LgbmModel) -> float:
    """The primary metric of `model` on the tune half (for tuning; the test half stays unseen)."""
    from training.evaluate import classification_metrics, value_metrics

    y = data.tune[data.target].to_numpy()
    pred = model.predict(data.tune)
    if data.model == "value":
        return float(value_metrics(y, pred)["gini_norm"])
    return float(classification_metrics(y, pred)["auc"])


def baseline_predictions(data: TrainingData, cfg: Config) -> tuple[dict[str, np.ndarray], list[str]]:
    """Every baseline fitted on the training rows and scored on the test half."""
    from training.baselines import BtydBaseline, LogisticRfmwBaseline, RfmScoreBaseline

    train, test = data.train, data.test
    y = train[data.target].to_numpy()
    window = cfg.features.frequency_window_days
    preds: dict[str, np.ndarray] = {}
    notes: list[str] = []
    if data.model == "value":
        from training.baselines import RidgeRfmwBaseline

        preds["rfm_score"] = RfmScoreBaseline(kind="regression").fit(train, y).predict(test)
        preds["ridge_rfmw"] = RidgeRfmwBaseline(seed=cfg.lightgbm.seed, window_days=window).fit(train, y).predict(test)
    else:
        preds["rfm_score"] = RfmScoreBaseline(kind="classification").fit(train, y).predict(test)
        preds["logistic_rfmw"] = LogisticRfmwBaseline(seed=cfg.lightgbm.seed, window_days=window).fit(train, y).predict_proba(test)
    if data.model in ("churn", "value"):
        # BTYD models fit one cross-section: the latest training cutoff, predicting forward.
        last = train[train["as_of"] == train["as_of"].max()]
        try:
            btyd = BtydBaseline(horizon_days=cfg.features.horizon_days, time_unit_days=7.0, window_days=window).fit(last)
        except ValueError as e:  # the histories give no maximum (e.g. every spend alike): the others still run
            notes.append(f"BTYD baseline skipped: {e}")
        else:
            preds["btyd"] = btyd.predict_churn(test) if data.model == "churn" else btyd.predict_value(test)
    return preds, notes


def evaluate_all(data: TrainingData, predictions: dict[str, np.ndarray]) -> dict[str, dict[str, float]]:
    """Metrics of every scorer on the test half."""
    from training.evaluate import classification_metrics, value_metrics

    y = data.test[data.target].to_numpy()
    fn = value_metrics if data.model == "value" else classification_metrics
    return {name: {k: float(v) for k, v in fn(y, p).items()} for name, p in predictions.items()}


def train_model(
    data: TrainingData,
    cfg: Config,
    overrides: dict[str, Any] | None = None,
    progress: Callable[[str], None] | None = None,
) -> TrainingResult:
    """Fit LightGBM and the baselines on `data`; evaluate all on the same test half."""
    say = progress or (lambda _m: None)
    say(f"fitting LightGBM ({data.model})")
    model = fit_lgbm(data, cfg, overrides)
    say(f"  {model.best_iteration_} trees; fitting baselines")
    preds, notes = baseline_predictions(data, cfg)
    preds = {"model": model.predict(data.test), **preds}
    metrics = evaluate_all(data, preds)
    if model.kind == "binary":
        metrics["model"]["ece_tune_before_calibration"] = model.ece_before_
        metrics["model"]["ece_tune_after_calibration"] = model.ece_after_
    else:  # the value model's level: sum(actual) / sum(predicted) on the tune half, and the factor applied
        metrics["model"]["value_level_ratio_tune"] = model.level_ratio_
        metrics["model"]["value_level_se_tune"] = model.level_se_
        metrics["model"]["value_level_factor"] = model.level_factor_
    params = {
        "model": data.model, "objective": model.kind, **{k: v for k, v in vars(model.params).items()},
        "num_threads": model.num_threads, "seed": model.seed, "calibrated": model.calibration_ is not None,
        "train_cutoffs": ",".join(str(c) for c in data.train_cutoffs), "oot_cutoff": str(data.oot_cutoff),
        "train_rows": len(data.train), "tune_rows": len(data.tune), "test_rows": len(data.test),
        "features": len(data.features),
    }
    if model.kind == "tweedie":
        params["value_level_correction"] = model.level_correction
        params["value_level_factor"] = model.level_factor_
    return TrainingResult(data.model, model, data, metrics, preds, params, data.notes + notes)


def truth_spearman(result: TrainingResult, truth: pd.DataFrame) -> dict[str, dict[str, float]] | None:
    """Spearman correlation of each scorer's test-half predictions with the sample world's truth.

    Churn: against `true_churn_prob`; response: against `p_response_treated` (the
    probability a live customer responds when treated). Both over all test customers
    ("all") and over those alive at the truth date ("alive": for churn the harder
    ranking, the dead being easy; for response the fair one, the dead never responding
    whatever their type). The churn truth is stated as of `truth_as_of`, so it applies
    only when the OOT cutoff is that date. None when it does not apply.

    Returns:
        scorer ("model", baselines) -> {"all": rho, "alive": rho}.
    """
    from scipy.stats import spearmanr

    column = {"churn": "true_churn_prob", "response": "p_response_treated"}.get(result.name)
    if column is None or truth.empty:
        return None
    if result.name == "churn" and pd.Timestamp(truth["truth_as_of"].iloc[0]).date() != result.data.oot_cutoff:
        return None
    test = result.data.test[["customer_id"]].assign(**result.test_predictions)
    joined = test.merge(truth[["customer_id", column, "alive_at_truth"]], on="customer_id")
    if len(joined) < 10:
        return None
    alive = joined[joined["alive_at_truth"]]
    return {
        scorer: {
            "all": float(spearmanr(joined[scorer], joined[column]).statistic),
            "alive": float(spearmanr(alive[scorer], alive[column]).statistic),
        }
        for scorer in result.test_predictions
    }
