"""LightGBM models for churn, response (binary) and value (Tweedie), estimator-shaped.

Categorical features use LightGBM's native categorical splits. The category levels
seen in training are stored (`categories_`) and every frame is encoded with them, so
text arriving at scoring time maps to the same codes; unseen levels become missing.

Classifiers are checked for calibration on the out-of-time tune half; when the expected
calibration error there exceeds the threshold, Platt scaling (a logistic fit on the raw
log-odds) is learned on that half. Probabilities are then sigmoid(a * raw + b): a
monotone map, so rankings (AUC, lift) are unchanged.

The value model (Tweedie, log link) can be trained on cutoffs whose spend level differs
from the out-of-time period (richer holiday windows, a shorter history). With
`level_correction`, a multiplicative factor c is fitted on the tune half after training,
c = sum(actual) / sum(predicted) there (see `level_factor`: skipped when the tune half
has few buyers, shrunk towards 1 as far as that ratio is uncertain), and the output
becomes exp(raw + log c). The raw score, and so every SHAP contribution, is the booster's own;
only the output map moves. Classifiers need no such factor: Platt scaling already sets
their level on the same half.
"""

from __future__ import annotations

import json
import math
import os
from dataclasses import asdict, dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.feature_sets import model_input

Kind = Literal["binary", "tweedie"]

# The value model's level factor: none below this many buyers (target > 0) in the tune
# half; the log ratio is shrunk towards 0 with a normal prior of this standard deviation
# (shifts of about 20 % are common, 40 % plausible).
LEVEL_MIN_BUYERS = 20
LEVEL_PRIOR_SD = 0.2


def free_cores(setting: int) -> int:
    """Threads to use: the setting, or (0) the cores not busy right now; 1 in CI."""
    if setting > 0:
        return setting
    if os.environ.get("CI"):
        return 1
    cores = os.cpu_count() or 1
    busy = int(round(os.getloadavg()[0]))
    return max(1, cores - busy)


@dataclass(frozen=True)
class LgbmParams:
    """Hyper-parameters of one LightGBM model."""

    learning_rate: float = 0.05
    num_leaves: int = 7
    min_child_samples: int = 200
    feature_fraction: float = 0.9
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    tweedie_variance_power: float = 1.3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def level_factor(y: np.ndarray, pred: np.ndarray, min_buyers: int = LEVEL_MIN_BUYERS,
                 prior_sd: float = LEVEL_PRIOR_SD) -> tuple[float, float, float]:
    """The multiplicative level correction of a value model, from the tune half.

    ratio = sum(y) / sum(pred): the factor that makes the mean prediction equal the mean
    actual there. Spend is heavy-tailed (a few customers can hold a fifth of a half's
    spend), so the ratio is shrunk towards 1 by how uncertain it is: se, the delta-method
    standard error of log(ratio), sqrt(sum((y - ratio * pred)^2)) / sum(y), and
    factor = ratio ** w, w = prior_sd^2 / (prior_sd^2 + se^2) (a normal prior on the log
    shift; prior_sd = inf: no shrinkage). The factor is 1 when fewer than `min_buyers`
    rows have y > 0, or when the ratio is not a finite positive number.

    Args:
        y: actual values of the tune half.
        pred: the model's uncorrected predictions there.
        min_buyers: fewest buyers for any correction.
        prior_sd: standard deviation of the prior on log(factor).

    Returns:
        (factor applied, ratio before shrinkage, se of log(ratio)); ratio and se are NaN
        when there is no ratio.
    """
    y, pred = np.asarray(y, dtype=float), np.asarray(pred, dtype=float)
    if len(y) != len(pred):
        raise ValueError(f"{len(y)} actual values for {len(pred)} predictions")
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        ratio = float(np.sum(y) / np.sum(pred)) if len(y) else float("nan")
        if not (np.isfinite(ratio) and ratio > 0 and np.isfinite(pred).all()):
            return 1.0, float("nan"), float("nan")
        se = float(np.sqrt(np.sum((y - ratio * pred) ** 2)) / np.sum(y))
    if int(np.sum(y > 0)) < min_buyers:
        return 1.0, ratio, se
    weight = 1.0 if math.isinf(prior_sd) else prior_sd ** 2 / (prior_sd ** 2 + se ** 2)
    return float(np.exp(np.log(ratio) * weight)), ratio, se


class LgbmModel:
    """One LightGBM model with its feature order, category maps and calibration."""

    # Output multiplier of a Tweedie model (1: none); see `level_factor`.
    level_factor_: float = 1.0

    def __init__(
        self,
        kind: Kind,
        numeric: list[str],
        categorical: list[str],
        params: LgbmParams = LgbmParams(),
        num_threads: int = 1,
        seed: int = 42,
        calibrate_above_ece: float = 0.01,
        level_correction: bool = False,
    ) -> None:
        self.kind = kind
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.params = params
        self.num_threads = num_threads
        self.seed = seed
        self.calibrate_above_ece = calibrate_above_ece
        self.level_correction = level_correction

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    # -- encoding -------------------------------------------------------------------
    def encode(self, frame: pd.DataFrame) -> pd.DataFrame:
        """Model input with categoricals as pandas categories of the training levels."""
        x = model_input(frame, self.numeric, self.categorical)
        for c in self.categorical:
            x[c] = pd.Categorical(x[c], categories=self.categories_[c])
        return x

    def _lgb_params(self) -> dict:
        p = self.params
        params = {
            "objective": "binary" if self.kind == "binary" else "tweedie",
            "learning_rate": p.learning_rate,
            "num_leaves": p.num_leaves,
            "min_child_samples": p.min_child_samples,
            "feature_fraction": p.feature_fraction,
            "bagging_fraction": 1.0,
            "lambda_l2": p.lambda_l2,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "verbose": -1,
            "max_cat_to_onehot": 8,
            "cat_smooth": 10.0,
        }
        if self.kind == "tweedie":
            params["tweedie_variance_power"] = p.tweedie_variance_power
        return params

    # -- fitting --------------------------------------------------------------------
    def fit(self, train: pd.DataFrame, y: np.ndarray, tune: pd.DataFrame, y_tune: np.ndarray) -> LgbmModel:
        """Train with early stopping on the tune frame, then calibrate or level if needed.

        Args:
            train: feature frame of the training cutoffs.
            y: its target.
            tune: feature frame of the out-of-time tune half.
            y_tune: its target.

        Returns:
            self, with `booster_`, `best_iteration_`, `categories_`, `calibration_`,
            `level_factor_` (1 unless Tweedie with `level_correction`) and
            `level_ratio_`, `level_se_` (tune sum(actual) / sum(predicted) before any
            correction, and the standard error of its log; NaN for classifiers).
        """
        raw_cats = model_input(train, [], self.categorical)
        self.categories_ = {
            c: sorted(v for v in raw_cats[c].dropna().unique()) for c in self.categorical
        }
        x, xt = self.encode(train), self.encode(tune)
        dtrain = lgb.Dataset(x, label=np.asarray(y, dtype=float), categorical_feature=self.categorical or "auto", free_raw_data=False)
        dtune = lgb.Dataset(xt, label=np.asarray(y_tune, dtype=float), reference=dtrain)
        self.booster_ = lgb.train(
            self._lgb_params(),
            dtrain,
            num_boost_round=self.params.max_rounds,
            valid_sets=[dtune],
            valid_names=["tune"],
            callbacks=[lgb.early_stopping(self.params.early_stopping_rounds, verbose=False)],
        )
        self.best_iteration_ = int(self.booster_.best_iteration or self.booster_.current_iteration())
        self.calibration_: tuple[float, float] | None = None
        self.ece_before_ = self.ece_after_ = float("nan")
        self.level_factor_, self.level_ratio_, self.level_se_ = 1.0, float("nan"), float("nan")
        if self.kind == "binary":
            self._calibrate(tune, np.asarray(y_tune, dtype=float))
        elif self.kind == "tweedie":
            factor, self.level_ratio_, self.level_se_ = level_factor(np.asarray(y_tune, dtype=float),
                                                                     np.exp(self.predict_raw(tune)))
            if self.level_correction:
                self.level_factor_ = factor
        return self

    def _calibrate(self, tune: pd.DataFrame, y: np.ndarray) -> None:
        from sklearn.linear_model import LogisticRegression

        from training.evaluate import classification_metrics

        raw = self.predict_raw(tune)
        self.ece_before_ = float(classification_metrics(y, _sigmoid(raw))["ece"])
        self.ece_after_ = self.ece_before_
        if self.ece_before_ <= self.calibrate_above_ece or len(np.unique(y)) < 2:
            return
        lr = LogisticRegression(C=1e6, max_iter=1000).fit(raw.reshape(-1, 1), y)
        a, b = float(lr.coef_[0, 0]), float(lr.intercept_[0])
        self.calibration_ = (a, b)
        self.ece_after_ = float(classification_metrics(y, _sigmoid(a * raw + b))["ece"])

    # -- predicting -----------------------------------------------------------------
    def predict_raw(self, frame: pd.DataFrame) -> np.ndarray:
        """Raw scores: log-odds (binary) or log of the expected value (Tweedie)."""
        return self.booster_.predict(self.encode(frame), raw_score=True, num_iteration=self.best_iteration_)

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Calibrated probabilities (binary) or expected values, level-corrected (Tweedie)."""
        return self.output(self.predict_raw(frame))

    def output(self, raw: np.ndarray) -> np.ndarray:
        """Raw scores to this model's output scale (calibration, level factor)."""
        return transform_raw(self.kind, raw, self.calibration_, self.level_factor_)

    # -- persistence ----------------------------------------------------------------
    def meta(self) -> dict:
        """Everything but the booster, as JSON-ready data."""
        return {
            "kind": self.kind,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "categories": self.categories_,
            "calibration": self.calibration_,
            "level_factor": self.level_factor_,
            "best_iteration": self.best_iteration_,
            "params": asdict(self.params),
            "num_threads": self.num_threads,
            "seed": self.seed,
        }

    def save(self, booster_path: str, meta_path: str) -> None:
        self.booster_.save_model(booster_path, num_iteration=self.best_iteration_)
        with open(meta_path, "w") as f:
            json.dump(self.meta(), f, indent=1)

    @classmethod
    def load(cls, booster_path: str, meta_path: str) -> LgbmModel:
        with open(meta_path) as f:
            meta = json.load(f)
        model = cls(
            meta["kind"], meta["numeric"], meta["categorical"], LgbmParams(**meta["params"]),
            meta["num_threads"], meta["seed"],
        )
        model.categories_ = meta["categories"]
        model.calibration_ = tuple(meta["calibration"]) if meta["calibration"] else None
        factor = meta.get("level_factor", 1.0)  # models saved before the factor existed: none
        if isinstance(factor, bool) or not isinstance(factor, (int, float)) or not (math.isfinite(factor) and factor > 0):
            raise ValueError(f"{meta_path}: level_factor must be a finite positive number, got {factor!r}")
        model.level_factor_ = float(factor)
        model.best_iteration_ = meta["best_iteration"]
        model.booster_ = lgb.Booster(model_file=booster_path)
        return model


def transform_raw(kind: Kind, raw: np.ndarray, calibration: tuple[float, float] | None,
                  level_factor: float = 1.0) -> np.ndarray:
    """Raw scores to the model's output scale: probability, or value exp(raw + log level_factor)."""
    if kind == "tweedie":
        return np.exp(np.asarray(raw, dtype=float) + math.log(level_factor))
    if level_factor != 1.0:
        raise ValueError(f"a level factor applies to Tweedie models only, got {level_factor} for {kind}")
    if calibration is None:
        return _sigmoid(raw)
    a, b = calibration
    return _sigmoid(a * raw + b)
