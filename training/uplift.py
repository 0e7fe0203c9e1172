"""Uplift models: who responds *because of* a contact, from campaigns with control groups.

A response model ranks by P(respond | contacted). Where a campaign kind held out
randomised control groups, an uplift model estimates the difference a contact makes,
uplift(x) = P(respond | treated, x) - P(respond | control, x), so targeting can skip the
"sure things" (who respond anyway) and the "do-not-disturbs" (who respond less when
contacted) and rank by incremental response, hence incremental profit.

Data (`uplift_data`): one row per treatment **and** control contact of every finished
campaign of one kind, with the features as of the campaign's start, built by
`features.snapshots.build_features` exactly as for the response model. The latest such
campaign is out of time; its customers are split into tune / test halves by the same
stable hash as every other model (`training.dataset.tune_mask`), so a customer is on
the same side for the response and the uplift model.

Learners (`UpliftModel`), both on LightGBM (`training.models.LgbmModel`):

- ``two_model`` (T-learner): one classifier on the treated rows, one on the control
  rows; uplift = P_T(x) - P_C(x). Each is early-stopped and, when needed,
  Platt-calibrated on its own group of the tune half.
- ``x_learner`` (Künzel et al. 2019, PNAS 116(10)): the two classifiers above, then
  imputed effects D1 = y - P_C(x) on treated rows and D0 = P_T(x) - y on control rows,
  each regressed on x (LightGBM, squared error) into tau_1 and tau_0, combined as
  uplift = e * tau_0 + (1 - e) * tau_1. e is the propensity P(treated | x); with
  randomised control groups it does not depend on x, so it is the treated share of the
  training rows. The imputed effect of each group uses the *other* group's model, so no
  row is scored by a model that saw its own label.
- ``auto``: fit the X-learner (which contains the two-model one) and keep the learner
  with the higher Qini coefficient on the out-of-time **tune** half (ties: two_model,
  the simpler). The test half stays unseen until every metric is computed.

`train_uplift` fits, evaluates on the test half (Qini, uplift@k, gain charts; on a
sample world also against the stored true uplift), logs an MLflow run and registers
the model as ``uplift`` (model as code, returning uplift). `load_uplift` reads it back;
`has_control_groups` tells targeting whether uplift ranking is possible for a kind.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from features.load import Warehouse
from features.snapshots import build_features, data_end
from propensity.config import Config, FeaturesConfig
from propensity.failpoints import failpoint
from training.dataset import TrainingDataError, frames_fingerprint, split_out_of_time
from training.feature_sets import feature_lists, model_input
from training.models import LgbmModel, LgbmParams

if TYPE_CHECKING:
    from training.track import LoggedVersion

MODEL_NAME = "uplift"
LEARNERS = ("two_model", "x_learner")
LEARNER_CHOICES = ("auto", *LEARNERS)
TARGET = "label_response"
TREATMENT = "treated"
REPORT_SHARES = (0.1, 0.2, 0.3)  # budgets for uplift@k and the truth check
RESPONSE_SCORER = "treated_response"  # P(respond | treated): the response-model ranking
# Shallower trees than the [training] section gives the response model. Uplift is a small
# difference between two noisy models, so variance dominates: on 20,000-customer sample
# worlds (8 seeds, out-of-time test half) 31 leaves reached a median of 91 true incremental
# responders in the top 20 %, 4 leaves 99.5 and the response ranking 86; on Hillstrom
# (5 random splits) the two-model Qini coefficient was 0.041 with 31 leaves, 0.061 with 4
# (bench/results/uplift.md), both with min 50 rows per leaf: kept here, since the [training]
# default of 200 (chosen for churn and value, issue 13) halved the true incremental
# responders the uplift ranking reached on the 6,000-customer test world.
# `train_uplift(..., overrides=...)` replaces these.
UPLIFT_PARAM_OVERRIDES: dict[str, Any] = {"num_leaves": 4, "min_child_samples": 50}

Progress = Callable[[str], None]


# -- data --------------------------------------------------------------------------------
def has_control_groups(warehouse: Warehouse, kind: str) -> bool:
    """True when some campaign of this kind has both treatment and control contacts.

    Targeting uses it to choose uplift ranking (control groups exist) or expected-profit
    ranking (they do not). It does not check that an uplift model has been trained;
    `load_uplift` says so when none has.
    """
    if not (warehouse.has("contacts") and warehouse.has("campaigns")):
        return False
    found = warehouse.query(
        """
        select count(*) as n from (
            select k.campaign_id
            from contacts k join campaigns c using (campaign_id)
            where c.kind = ?
            group by k.campaign_id
            having bool_or(k."group" = 'control') and bool_or(k."group" = 'treatment')
        )
        """,
        [kind],
    )
    return int(found["n"].iloc[0]) > 0


def uplift_contacts(warehouse: Warehouse, kind: str, end: date | None) -> pd.DataFrame:
    """One row per (campaign, customer) of the campaigns of `kind` that have control groups.

    Args:
        warehouse: holds `campaigns` and `contacts`.
        kind: the campaign kind (e.g. "email").
        end: keep campaigns that ended before this date (the data end: finished
            campaigns only); None keeps all.

    Returns:
        Columns campaign_id, campaign_kind, as_of (the campaign's start, or its first
        contact if earlier, as a date), customer_id, group, treated (1/0), responded.
        A customer listed in both groups of one campaign is left out (the group is the
        thing being measured).
    """
    if not (warehouse.has("contacts") and warehouse.has("campaigns")):
        raise TrainingDataError("an uplift model needs `campaigns` and `contacts` tables; import them first")
    # DuckDB refuses parameters a query does not use, so the optional end is a literal far in the future.
    end_date = end or date(9999, 12, 31)
    frame = warehouse.query(
        """
        with campaign as (
            select c.campaign_id, any_value(c.kind) as campaign_kind,
                   least(min(c.start), min(k.contacted_at))::date as as_of
            from campaigns c join contacts k using (campaign_id)
            where c.kind = ?
            group by c.campaign_id
            having max(c."end")::date < ?
               and bool_or(k."group" = 'control') and bool_or(k."group" = 'treatment')
        )
        select k.campaign_id, any_value(m.campaign_kind) as campaign_kind, any_value(m.as_of) as as_of,
               k.customer_id, any_value(k."group") as "group", bool_or(k.responded) as responded
        from contacts k join campaign m using (campaign_id)
        group by k.campaign_id, k.customer_id
        having count(distinct k."group") = 1
        order by as_of, k.campaign_id, k.customer_id
        """,
        [kind, end_date],
    )
    frame["as_of"] = pd.to_datetime(frame["as_of"])
    frame["treated"] = (frame["group"] == "treatment").astype("int64")
    frame["responded"] = frame["responded"].fillna(False).astype(bool)
    return frame


@dataclass
class UpliftData:
    """Treatment and control contacts of one campaign kind, split out of time."""

    kind: str
    train: pd.DataFrame
    tune: pd.DataFrame
    test: pd.DataFrame
    numeric: list[str]
    categorical: list[str]
    train_starts: list[date]
    oot_start: date
    target: str = TARGET
    treatment: str = TREATMENT
    notes: list[str] = field(default_factory=list)

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def fingerprint(self) -> str:
        """A short hash of every row and column the model sees (train + OOT)."""
        return frames_fingerprint((self.train, self.tune, self.test),
                                  ["customer_id", "as_of", self.treatment, *self.features, self.target])

    def counts(self) -> dict[str, int]:
        """Rows per part and group (train_treated, train_control, tune_treated, ...)."""
        out = {}
        for name, part in (("train", self.train), ("tune", self.tune), ("test", self.test)):
            treated = int(part[self.treatment].sum())
            out[f"{name}_treated"] = treated
            out[f"{name}_control"] = len(part) - treated
        return out

    def summary(self) -> str:
        c = self.counts()
        return (
            f"uplift ({self.kind}): train {len(self.train):,} contacts ({c['train_treated']:,} treated / "
            f"{c['train_control']:,} control; campaigns starting {self.train_starts[0]}..{self.train_starts[-1]}), "
            f"out-of-time {self.oot_start}: tune {len(self.tune):,} / test {len(self.test):,} "
            f"({c['test_control']:,} control), {len(self.features)} features"
        )


def uplift_data(
    warehouse: Warehouse,
    fcfg: FeaturesConfig,
    kind: str,
    tuning_share: float,
    progress: Callable[[date], None] | None = None,
) -> UpliftData:
    """Treatment and control contacts of finished campaigns of `kind`, features as of each start.

    Args:
        warehouse: holds transactions, campaigns and contacts (and optional tables).
        fcfg: feature windows (the same as every model's).
        kind: the campaign kind.
        tuning_share: share of the out-of-time customers for early stopping, calibration
            and choosing the learner.
        progress: called with each campaign start as its features are built.

    Raises:
        TrainingDataError: no such campaigns, fewer than two start dates, or a part of the
            split without treatment or control rows; the message says what is missing.
    """
    contacts = uplift_contacts(warehouse, kind, data_end(warehouse))
    starts = sorted(contacts["as_of"].unique())
    if len(starts) < 2:
        found = ", ".join(str(pd.Timestamp(s).date()) for s in starts) or "none"
        raise TrainingDataError(
            f"an uplift model for {kind!r} campaigns needs finished campaigns of that kind with control "
            f"groups on at least two start dates (found: {found}): one to train on, one out of time"
        )
    frames, dropped = [], 0
    for stamp, group in contacts.groupby("as_of", sort=True):
        as_of = pd.Timestamp(stamp).date()
        if progress is not None:
            progress(as_of)
        feats = build_features(warehouse, as_of, fcfg, with_labels=False)
        joined = group.drop(columns=["as_of"]).merge(feats, on="customer_id", how="inner")
        dropped += len(group) - len(joined)
        frames.append(joined)
    frame = pd.concat(frames, ignore_index=True)
    frame[TARGET] = frame["responded"].astype("int64")
    oot = frame["as_of"].max()
    train, tune, test = split_out_of_time(frame, oot, tuning_share)
    for name, part in (("training", train), ("tune", tune), ("test", test)):
        groups = set(part[TREATMENT].unique())
        if groups != {0, 1}:
            raise TrainingDataError(
                f"the {name} part of the {kind!r} uplift data has no "
                f"{'control' if 0 not in groups else 'treatment'} contacts; uplift needs both groups "
                "(more campaigns with control groups, or a larger tuning_share)"
            )
    numeric, categorical = feature_lists(MODEL_NAME, frame)  # the shared lists; no campaign kind: one kind
    notes = []
    if dropped:
        notes.append(f"{dropped:,} contacts of customers with no purchase history before the campaign were left out")
    return UpliftData(
        kind, train, tune, test, numeric, categorical,
        sorted({pd.Timestamp(d).date() for d in train["as_of"]}), pd.Timestamp(oot).date(), notes=notes,
    )


# -- models ------------------------------------------------------------------------------
class _EffectModel(LgbmModel):
    """LightGBM with squared error: the X-learner's regressions on imputed effects.

    Reuses LgbmModel's encoding, early stopping and persistence; only the objective and
    the output scale (raw, no link, no calibration) differ.
    """

    def __init__(self, kind: str, numeric: list[str], categorical: list[str], params: LgbmParams = LgbmParams(),
                 num_threads: int = 1, seed: int = 42, calibrate_above_ece: float = 0.01) -> None:
        super().__init__("regression", numeric, categorical, params, num_threads, seed,  # type: ignore[arg-type]
                         calibrate_above_ece)

    def _lgb_params(self) -> dict:
        params = super()._lgb_params()
        params["objective"] = "regression"
        return params

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """The predicted effect (identity link)."""
        return self.predict_raw(frame)


def _both_classes(y: np.ndarray, where: str) -> None:
    if len(np.unique(y)) < 2:
        raise TrainingDataError(f"the {where} rows all have the same outcome; a response classifier needs both")


class UpliftModel:
    """Two-model (T-learner) or X-learner uplift on LightGBM; estimator-shaped.

    Args:
        numeric, categorical: the feature lists (as `training.feature_sets`).
        learner: "two_model", "x_learner" or "auto" (see the module docstring).
        params: LightGBM hyper-parameters, shared by every sub-model.
        num_threads: LightGBM threads.
        seed: LightGBM seed.
        calibrate_above_ece: Platt-calibrate a group's classifier when its tune ECE exceeds this.
    """

    def __init__(
        self,
        numeric: list[str],
        categorical: list[str],
        learner: str = "auto",
        params: LgbmParams = LgbmParams(),
        num_threads: int = 1,
        seed: int = 42,
        calibrate_above_ece: float = 0.01,
    ) -> None:
        if learner not in LEARNER_CHOICES:
            raise ValueError(f"learner {learner!r}: use one of {', '.join(LEARNER_CHOICES)}")
        self.numeric = list(numeric)
        self.categorical = list(categorical)
        self.learner = learner
        self.params = params
        self.num_threads = num_threads
        self.seed = seed
        self.calibrate_above_ece = calibrate_above_ece

    @property
    def features(self) -> list[str]:
        return self.numeric + self.categorical

    def _classifier(self) -> LgbmModel:
        return LgbmModel("binary", self.numeric, self.categorical, self.params, self.num_threads, self.seed,
                         self.calibrate_above_ece)

    def _regressor(self) -> _EffectModel:
        return _EffectModel("regression", self.numeric, self.categorical, self.params, self.num_threads, self.seed)

    def fit(
        self,
        train: pd.DataFrame,
        y: np.ndarray,
        treated: np.ndarray,
        tune: pd.DataFrame,
        y_tune: np.ndarray,
        treated_tune: np.ndarray,
    ) -> UpliftModel:
        """Fit the group classifiers (and the X-learner's effect models), then pick the learner.

        Args:
            train: feature frame of the training campaigns (both groups).
            y: 0/1 responses of `train`.
            treated: 1 for treatment rows, 0 for control rows of `train`.
            tune: feature frame of the out-of-time tune half.
            y_tune, treated_tune: its responses and groups.

        Returns:
            self, with `treated_model_`, `control_model_`, `effect_treated_` and
            `effect_control_` (None for two_model), `propensity_`, `learner_` and
            `tune_qini_` (learner -> Qini coefficient on the tune half).
        """
        from training.uplift_eval import qini_coefficient

        y, t = np.asarray(y, dtype=float), np.asarray(treated, dtype=int)
        yt, tt = np.asarray(y_tune, dtype=float), np.asarray(treated_tune, dtype=int)
        parts = {}
        for group, label in ((1, "treatment"), (0, "control")):
            rows, rows_tune = t == group, tt == group
            if not rows.any() or not rows_tune.any():
                raise TrainingDataError(f"no {label} rows in the training or tune data; uplift needs both groups")
            _both_classes(y[rows], f"training {label}")
            _both_classes(yt[rows_tune], f"tune {label}")
            parts[group] = (train[rows], y[rows], tune[rows_tune], yt[rows_tune])
        x1, y1, x1t, y1t = parts[1]
        x0, y0, x0t, y0t = parts[0]
        self.treated_model_ = self._classifier().fit(x1, y1, x1t, y1t)
        self.control_model_ = self._classifier().fit(x0, y0, x0t, y0t)
        self.propensity_ = float(t.mean())
        self.effect_treated_: _EffectModel | None = None
        self.effect_control_: _EffectModel | None = None
        if self.learner in ("x_learner", "auto"):
            # Each group's imputed effect comes from the other group's model (no own-label leak).
            d1, d1t = y1 - self.control_model_.predict(x1), y1t - self.control_model_.predict(x1t)
            d0, d0t = self.treated_model_.predict(x0) - y0, self.treated_model_.predict(x0t) - y0t
            self.effect_treated_ = self._regressor().fit(x1, d1, x1t, d1t)
            self.effect_control_ = self._regressor().fit(x0, d0, x0t, d0t)
        self.tune_qini_ = {
            learner: float(qini_coefficient(yt, self._uplift(tune, learner), tt)) for learner in self.fitted_learners
        }
        if self.learner == "auto":
            # NaN (e.g. no responders in the tune half) ranks last; ties go to the simpler learner.
            self.learner_ = max(LEARNERS, key=lambda k: (np.nan_to_num(self.tune_qini_[k], nan=-np.inf),
                                                         k == "two_model"))
        else:
            self.learner_ = self.learner
        return self

    @property
    def fitted_learners(self) -> list[str]:
        """The learners this fit can predict with."""
        return list(LEARNERS) if self.effect_treated_ is not None else ["two_model"]

    def predict_treated(self, frame: pd.DataFrame) -> np.ndarray:
        """P(respond | treated, x): the treated group's classifier (a response model)."""
        return self.treated_model_.predict(frame)

    def predict_control(self, frame: pd.DataFrame) -> np.ndarray:
        """P(respond | control, x): the control group's classifier."""
        return self.control_model_.predict(frame)

    def _uplift(self, frame: pd.DataFrame, learner: str) -> np.ndarray:
        if learner == "two_model":
            return self.predict_treated(frame) - self.predict_control(frame)
        if learner == "x_learner" and self.effect_treated_ is not None and self.effect_control_ is not None:
            tau1, tau0 = self.effect_treated_.predict(frame), self.effect_control_.predict(frame)
            e = self.propensity_
            return np.clip(e * tau0 + (1.0 - e) * tau1, -1.0, 1.0)
        raise ValueError(f"learner {learner!r} was not fitted; this model has {', '.join(self.fitted_learners)}")

    def predict_uplift(self, frame: pd.DataFrame, learner: str | None = None) -> np.ndarray:
        """P(respond | treated, x) - P(respond | control, x), as estimated by the chosen learner.

        Args:
            frame: feature rows (any extra columns are ignored).
            learner: another fitted learner to ask instead (None: `learner_`).
        """
        return self._uplift(frame, learner or self.learner_)

    # -- persistence ----------------------------------------------------------------
    _PARTS = (("treated", "treated_model_"), ("control", "control_model_"),
              ("effect_treated", "effect_treated_"), ("effect_control", "effect_control_"))

    def save(self, folder: str | Path) -> None:
        """Every sub-model as booster text + JSON meta, and `uplift.json`, into `folder`."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        for name, attr in self._PARTS:
            part = getattr(self, attr)
            if part is not None:
                part.save(str(folder / f"{name}.txt"), str(folder / f"{name}.json"))
        meta = {
            "learner": self.learner, "learner_chosen": self.learner_, "propensity": self.propensity_,
            "tune_qini": self.tune_qini_, "numeric": self.numeric, "categorical": self.categorical,
            "params": asdict(self.params), "num_threads": self.num_threads, "seed": self.seed,
            "calibrate_above_ece": self.calibrate_above_ece,
        }
        (folder / "uplift.json").write_text(json.dumps(meta, indent=1))

    @classmethod
    def load(cls, folder: str | Path) -> UpliftModel:
        """A model written by `save`."""
        folder = Path(folder)
        meta = json.loads((folder / "uplift.json").read_text())
        model = cls(meta["numeric"], meta["categorical"], meta["learner"], LgbmParams(**meta["params"]),
                    meta["num_threads"], meta["seed"], meta["calibrate_above_ece"])
        model.learner_ = meta["learner_chosen"]
        model.propensity_ = float(meta["propensity"])
        model.tune_qini_ = meta["tune_qini"]
        for name, attr in cls._PARTS:
            booster = folder / f"{name}.txt"
            loader = _EffectModel if name.startswith("effect") else LgbmModel
            setattr(model, attr, loader.load(str(booster), str(folder / f"{name}.json")) if booster.exists() else None)
        return model


# -- evaluation --------------------------------------------------------------------------
def true_effect(truth: pd.DataFrame, frame: pd.DataFrame) -> np.ndarray:
    """Per row of `frame`: the sample world's true uplift, 0 if the customer churned before the row's as_of.

    A churned customer never responds, treated or not, so a contact cannot change their
    response: the stored `true_uplift` (a fixed trait) applies only to customers alive
    when the campaign starts. Summed over chosen rows, this is the expected number of
    true incremental responders.

    Args:
        truth: the `synth_truth` table (customer_id, true_uplift, churned_at).
        frame: rows with customer_id and as_of.
    """
    joined = frame[["customer_id", "as_of"]].merge(
        truth[["customer_id", "true_uplift", "churned_at"]], on="customer_id", how="left"
    )
    if joined["true_uplift"].isna().any():
        raise ValueError("some rows have no customer in the truth table; pass the world's own synth_truth")
    churned = pd.to_datetime(joined["churned_at"])
    alive = churned.isna() | (churned >= pd.to_datetime(joined["as_of"]))
    return np.where(alive.to_numpy(), joined["true_uplift"].to_numpy(dtype=float), 0.0)


@dataclass
class UpliftResult:
    """A fitted uplift model and its scores and metrics on the out-of-time test half."""

    model: UpliftModel
    data: UpliftData
    scores: dict[str, np.ndarray]  # scorer -> test-half scores (learners and the response ranking)
    metrics: dict[str, dict[str, float]]  # scorer -> metrics

    def table(self) -> pd.DataFrame:
        return pd.DataFrame(self.metrics).T


def evaluate_uplift(model: UpliftModel, data: UpliftData, truth: pd.DataFrame | None = None) -> UpliftResult:
    """Qini coefficient and uplift@10/20/30 % of every learner and of the response ranking.

    The response ranking is P(respond | treated) from the model's own treated-group
    classifier: a response model of the same campaign kind. With a sample world's
    `truth`, also the Spearman correlation of each score with the true uplift (rows of
    customers alive at the campaign start) and the true incremental responders reached
    at each budget (`true_incremental_<k>`), next to random targeting and the oracle.
    """
    from scipy.stats import spearmanr

    from training.uplift_eval import truth_captured, uplift_metrics

    test = data.test
    y, t = test[data.target].to_numpy(), test[data.treatment].to_numpy()
    scores = {learner: model.predict_uplift(test, learner) for learner in model.fitted_learners}
    scores[RESPONSE_SCORER] = model.predict_treated(test)
    metrics = {name: uplift_metrics(y, s, t, REPORT_SHARES) for name, s in scores.items()}
    if truth is not None and not truth.empty:
        effect = true_effect(truth, test)
        alive = effect != 0.0
        for name, s in scores.items():
            metrics[name]["truth_spearman"] = float(spearmanr(s[alive], effect[alive]).statistic)
            for share, reached in zip(REPORT_SHARES, truth_captured(effect, s, REPORT_SHARES)):
                metrics[name][f"true_incremental_{round(share * 100)}"] = float(reached)
        metrics["random"] = {f"true_incremental_{round(s * 100)}": float(s * effect.sum()) for s in REPORT_SHARES}
        metrics["oracle"] = {
            f"true_incremental_{round(s * 100)}": float(v)
            for s, v in zip(REPORT_SHARES, truth_captured(effect, effect, REPORT_SHARES))
        }
    return UpliftResult(model, data, scores, metrics)


def uplift_artifacts(result: UpliftResult, commit: str, fingerprint: str) -> dict[str, Any]:
    """Files logged with an uplift run: features, split, metrics, Qini and gain charts, deciles."""
    from training import uplift_eval as ue

    data, model = result.data, result.model
    test = data.test
    y, t = test[data.target].to_numpy(), test[data.treatment].to_numpy()
    curves = {name: ue.qini_curve(y, s, t) for name, s in result.scores.items()}
    chosen = result.scores[model.learner_]
    deciles = ue.uplift_by_decile(y, chosen, t)
    title = f"uplift ({data.kind}), out-of-time test half"
    return {
        "features.json": {"numeric": data.numeric, "categorical": data.categorical,
                          "categories": model.treated_model_.categories_},
        "data_fingerprint.json": {"fingerprint": fingerprint, **data.counts(), "git_commit": commit},
        "campaigns.json": {"kind": data.kind, "train_starts": [str(d) for d in data.train_starts],
                           "out_of_time": str(data.oot_start)},
        "learner_selection.json": {"requested": model.learner, "chosen": model.learner_,
                                   "tune_qini_coefficient": model.tune_qini_,
                                   "rule": "auto keeps the learner with the higher Qini coefficient on the tune half"},
        "metrics_by_scorer.csv": result.table().reset_index(names="scorer"),
        "qini.png": ue.plot_qini(curves, f"{title}: Qini", perfect=ue.perfect_qini_curve(y, t)),
        "uplift_gain.png": ue.plot_uplift_gain(curves, f"{title}: cumulative uplift"),
        "uplift_by_decile.csv": deciles,
        "uplift_by_decile.png": ue.plot_uplift_by_decile(deciles, f"{title}: {model.learner_} by decile"),
    }


# -- MLflow: logging, registry, loading --------------------------------------------------
# MLflow loads this file when `models:/uplift@<alias>` is opened; it is written next to
# the model at logging time, so the stored model is code (readable), not a pickle.
UPLIFT_CODE = Path(__file__).with_name("pyfunc_uplift.py")  # the logged model, as code


@dataclass(frozen=True)
class LoadedUplift:
    """A registered uplift model and what it was trained for."""

    model: UpliftModel
    version: str
    campaign_kind: str
    learner: str


@dataclass
class UpliftOutcome:
    """A trained, evaluated, logged and registered uplift model."""

    result: UpliftResult
    version: LoggedVersion
    champion: bool  # the version also became `champion` (the first uplift model)

    def report(self) -> str:
        r, v = self.result, self.version
        cols = [c for c in ("qini_coefficient", "uplift_at_10", "uplift_at_20", "uplift_at_30", "truth_spearman",
                            "true_incremental_10", "true_incremental_20", "true_incremental_30")
                if c in r.table().columns]
        lines = [
            f"uplift version {v.version} (run {v.run_id[:8]}), learner {r.model.learner_} "
            f"(tune Qini: {', '.join(f'{k} {q:.4f}' for k, q in r.model.tune_qini_.items())})",
            r.data.summary(),
            r.table()[cols].round(4).to_string(),
        ]
        if self.champion:
            lines.append("no uplift champion existed: this version is now `champion` as well")
        lines += [f"note: {n}" for n in r.data.notes]
        return "\n".join(lines)


def _log_and_register(
    result: UpliftResult, params: dict[str, Any], metrics: dict[str, float], tags: dict[str, str],
    artifacts: dict[str, Any], experiment_id: str,
) -> LoggedVersion:
    """Log the run, the model as code and every artifact; then register it under `uplift` as `challenger`.

    Registration is the last step and the version is tagged complete last
    (`training.track.register_version`), as for the other models.
    """
    import mlflow

    from training.track import (
        LoggedVersion, log_files, model_requirements, pyfunc_signature, register_version, tracked_run,
    )

    data = result.data
    example = model_input(data.test.head(5), data.numeric, data.categorical)
    with tracked_run(experiment_id, f"train-{MODEL_NAME}-{data.kind}") as run:
        failpoint("train:run-started")
        mlflow.log_params(params)
        mlflow.log_metrics({k: float(v) for k, v in metrics.items() if v is not None and np.isfinite(v)})
        mlflow.set_tags(tags)
        with tempfile.TemporaryDirectory() as tmp:
            folder = Path(tmp) / "uplift"
            result.model.save(folder)
            # No input schema: MLflow would refuse the int64 columns of a feature file (see
            # training.track.pyfunc_signature); the pyfunc checks and casts its input itself.
            info = mlflow.pyfunc.log_model(name="model", python_model=str(UPLIFT_CODE),
                                           artifacts={"uplift": str(folder)}, input_example=example,
                                           signature=pyfunc_signature(), pip_requirements=model_requirements(),
                                           metadata={"features": {"numeric": result.model.numeric,
                                                                  "categorical": result.model.categorical}})
        failpoint("train:model-logged")
        log_files(artifacts)
        run_id = run.info.run_id
    failpoint("train:run-finished")
    version = register_version(MODEL_NAME, info.model_uri, run_id, tags, list(artifacts),
                               description="propensity uplift model (incremental response)")
    return LoggedVersion(MODEL_NAME, version, run_id)


def train_uplift(
    warehouse: Warehouse,
    cfg: Config,
    kind: str,
    learner: str = "auto",
    progress: Progress | None = None,
    overrides: dict[str, Any] | None = None,
) -> UpliftOutcome:
    """Fit, evaluate, log and register an uplift model for campaigns of `kind`.

    Args:
        warehouse: holds the canonical tables (and `synth_truth` for a sample world).
        cfg: the project config (features, LightGBM, training and MLflow sections).
        kind: the campaign kind; its finished campaigns need control groups.
        learner: "auto", "two_model" or "x_learner".
        progress: called with a short message at each step.
        overrides: LightGBM parameters replacing the config's (default
            `UPLIFT_PARAM_OVERRIDES`).

    Returns:
        The result and the registered version. Alias `challenger` points at it, and
        `champion` too when the registry had no uplift champion yet; the version is
        tagged with campaign_kind and learner.

    Raises:
        TrainingDataError: the warehouse cannot give this kind an uplift training set.
        ValueError: unknown learner.
    """
    from training.models import free_cores
    from training.track import CHAMPION, alias_version, configure, git_commit, set_champion
    from training.train import lgbm_params

    say = progress or (lambda _m: None)
    if learner not in LEARNER_CHOICES:
        raise ValueError(f"learner {learner!r}: use one of {', '.join(LEARNER_CHOICES)}")
    experiment_id = configure(cfg.mlflow, cfg.training.experiment)
    say(f"uplift ({kind}): building training data")
    data = uplift_data(warehouse, cfg.features, kind, cfg.training.tuning_share,
                       progress=lambda d: say(f"  features as of {d}"))
    say(data.summary())
    model = UpliftModel(
        data.numeric, data.categorical, learner,
        lgbm_params(cfg, UPLIFT_PARAM_OVERRIDES if overrides is None else overrides),
        free_cores(cfg.lightgbm.num_threads),
        cfg.lightgbm.seed, cfg.training.calibrate_above_ece,
    )
    say(f"fitting LightGBM uplift ({learner})")
    model.fit(data.train, data.train[TARGET].to_numpy(), data.train[TREATMENT].to_numpy(),
              data.tune, data.tune[TARGET].to_numpy(), data.tune[TREATMENT].to_numpy())
    say(f"  learner {model.learner_}; evaluating on the out-of-time test half")
    truth = warehouse.read("synth_truth") if warehouse.has("synth_truth") else None
    result = evaluate_uplift(model, data, truth)

    commit, fingerprint = git_commit(), data.fingerprint()
    metrics = {f"{scorer}.{k}": v for scorer, m in result.metrics.items() for k, v in m.items()}
    metrics.update(result.metrics[model.learner_])
    metrics.update({f"tune_qini.{k}": v for k, v in model.tune_qini_.items()})
    params = {
        "model": MODEL_NAME, "campaign_kind": kind, "learner_requested": learner, "learner": model.learner_,
        **vars(model.params), "num_threads": model.num_threads, "seed": model.seed,
        "propensity": round(model.propensity_, 6), "features": len(data.features),
        "train_starts": ",".join(str(d) for d in data.train_starts), "oot_start": str(data.oot_start),
        "train_rows": len(data.train), "tune_rows": len(data.tune), "test_rows": len(data.test), **data.counts(),
    }
    tags = {
        "model": MODEL_NAME, "campaign_kind": kind, "learner": model.learner_, "git_commit": commit,
        "data_fingerprint": fingerprint, "oot_cutoff": str(data.oot_start),
        "train_cutoffs": ",".join(str(d) for d in data.train_starts), "warehouse": warehouse.url,
        "data_origin": "synthetic" if truth is not None else "own",
    }
    version = _log_and_register(result, params, metrics, tags, uplift_artifacts(result, commit, fingerprint),
                                experiment_id)
    champion = alias_version(MODEL_NAME, CHAMPION) is None
    if champion:
        qini = result.metrics[model.learner_]["qini_coefficient"]
        set_champion(MODEL_NAME, version.version, {
            "at": datetime.now(timezone.utc).isoformat(timespec="seconds"), "decision": "first champion",
            "metric": "qini_coefficient", "challenger_version": version.version,
            "challenger_score": round(qini, 6) if np.isfinite(qini) else "nan",
            "oot_cutoff": data.oot_start, "test_rows": len(data.test), "campaign_kind": kind,
        })
    return UpliftOutcome(result, version, champion)


def load_uplift(cfg: Config, alias: str = "champion", kind: str | None = None) -> LoadedUplift:
    """The registered `uplift@alias`, ready to score frames with `model.predict_uplift`.

    Args:
        cfg: the project config (MLflow store, LightGBM threads).
        alias: "champion" (default) or "challenger".
        kind: when given, refuse a model trained on another campaign kind.

    Raises:
        RegistryError: no such alias, or a model of another kind; the message says what to do.
    """
    from training.models import free_cores
    from training.track import RegistryError, alias_version, configure, load_pyfunc_version

    configure(cfg.mlflow, cfg.training.experiment)
    info = alias_version(MODEL_NAME, alias)
    if info is None:
        raise RegistryError(
            f"no {MODEL_NAME}@{alias} in the registry; train an uplift model on a campaign kind with "
            "control groups first (training.uplift.train_uplift)"
        )
    tags = info["tags"]
    trained_kind = tags.get("campaign_kind", "")
    if kind is not None and trained_kind != kind:
        raise RegistryError(
            f"{MODEL_NAME}@{alias} (version {info['version']}) was trained on {trained_kind!r} campaigns, "
            f"not {kind!r}; train one for {kind!r} or rank by expected profit"
        )
    model = load_pyfunc_version(MODEL_NAME, str(info["version"]), alias).unwrap_python_model().model
    threads = free_cores(cfg.lightgbm.num_threads)
    for _name, attr in UpliftModel._PARTS:
        part = getattr(model, attr)
        if part is not None:
            part.num_threads = threads
    model.num_threads = threads
    return LoadedUplift(model, str(info["version"]), trained_kind, tags.get("learner", model.learner_))


def fit_response_baseline(warehouse: Warehouse, cfg: Config) -> LgbmModel:
    """The product's response model as the pipeline trains it (treatment contacts of every kind).

    The ranking uplift targeting is compared against: score rows with
    `model.predict(training.feature_sets.with_campaign_kind(model, frame, kind))`.
    """
    from training.dataset import training_data
    from training.train import fit_lgbm

    data = training_data("response", warehouse, cfg.features, cfg.training.tuning_share)
    return fit_lgbm(data, cfg)
