"""LightGBM models for churn, response (binary) and value (Tweedie), estimator-shaped.

Categorical features use LightGBM's native categorical splits. The category levels
seen in training are stored (`categories_`) and every frame is encoded with them, so
text arriving at scoring time maps to the same codes; unseen levels become missing.

Classifiers are checked for calibration on the out-of-time tune half; when the expected
calibration error there exceeds the threshold, Platt scaling (a logistic fit on the raw
log-odds) is learned on that half. Probabilities are then sigmoid(a * raw + b): a
monotone map, so rankings (AUC, lift) are unchanged.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass
from typing import Literal

import lightgbm as lgb
import numpy as np
import pandas as pd

from training.feature_sets import model_input

Kind = Literal["binary", "tweedie"]


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
    num_leaves: int = 31
    min_child_samples: int = 50
    feature_fraction: float = 0.9
    lambda_l2: float = 1.0
    max_rounds: int = 2000
    early_stopping_rounds: int = 100
    tweedie_variance_power: float = 1.3


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


class LgbmModel:
    """One LightGBM model with its feature order, category maps and calibration."""

    def __init__(
        self,
        kind: Kind,
        numeric: list[str],
        categorical: list[str],
        params: LgbmParams = LgbmParams(),
        num_threads: int = 1,
        seed: int = 42,
        calibrate_above_ece: float = 0.01,
    ) -> None:
        self.kind = kind
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.params = params
        self.num_threads = num_threads
        self.seed = seed
        self.calibrate_above_ece = calibrate_above_ece

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
        """Train with early stopping on the tune frame, then calibrate if needed.

        Args:
            train: feature frame of the training cutoffs.
            y: its target.
            tune: feature frame of the out-of-time tune half.
            y_tune: its target.

        Returns:
            self, with `booster_`, `best_iteration_`, `categories_`, `calibration_`.
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
        if self.kind == "binary":
            self._calibrate(tune, np.asarray(y_tune, dtype=float))
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
        """Calibrated probabilities (binary) or expected values (Tweedie)."""
        return transform_raw(self.kind, self.predict_raw(frame), self.calibration_)

    # -- persistence ----------------------------------------------------------------
    def meta(self) -> dict:
        """Everything but the booster, as JSON-ready data."""
        return {
            "kind": self.kind,
            "numeric": self.numeric,
            "categorical": self.categorical,
            "categories": self.categories_,
            "calibration": self.calibration_,
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
        model.best_iteration_ = meta["best_iteration"]
        model.booster_ = lgb.Booster(model_file=booster_path)
        return model


def transform_raw(kind: Kind, raw: np.ndarray, calibration: tuple[float, float] | None) -> np.ndarray:
    """Raw scores to the model's output scale (probability or value)."""
    if kind == "tweedie":
        return np.exp(raw)
    if calibration is None:
        return _sigmoid(raw)
    a, b = calibration
    return _sigmoid(a * raw + b)
