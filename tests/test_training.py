"""Training on the sample world: out-of-time split, models vs baselines, MLflow registry, gate."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import lightgbm as lgb
import numpy as np
import pandas as pd
import pytest

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import FeaturesConfig, project_in
from training.dataset import TrainingDataError, training_data, tune_mask
from training.feature_sets import model_input
from training.models import LgbmModel

CUSTOMERS = 8000

# "Ranks customers like the truth": Spearman of test-half predictions with the stored
# true probability, over customers alive at the truth date (the dead are trivially
# ranked for churn and never respond whatever their type). Floors, measured on this
# world and seed and set below what was seen:
# - churn: the RFM score heuristic reaches ~0.67 and BTYD ~0.80 here; the model must
#   reach 0.7 and beat every baseline.
# - response: the true probability depends on a latent type that attributes and needs
#   evaluations reveal; RFMW-only baselines see it only indirectly (income shows in
#   spend): measured 0.07-0.10 here (8,000 customers) and ~0.01 at 50,000, the model
#   0.19-0.23. The floor 0.12 says it found the types; it must also beat every
#   baseline by 0.03.
MIN_SPEARMAN_ALIVE = {"churn": 0.7, "response": 0.12}
MIN_GAIN_OVER_BASELINES = {"churn": 0.0, "response": 0.03}


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    """A sample world, an MLflow store, and all three models trained and promoted once."""
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("train")
    cfg = project_in(folder)
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=1))
    outcomes = {o.result.name: o for o in train_and_log(["churn", "response", "value"], wh, cfg)}
    decisions = {d.name: d for d in promote_models(["churn", "response", "value"], wh, cfg, margin=0.0)}
    yield {"cfg": cfg, "wh": wh, "outcomes": outcomes, "decisions": decisions, "folder": folder}
    wh.close()


def test_out_of_time_split(project) -> None:
    data = project["outcomes"]["churn"].result.data
    assert data.oot_cutoff == date(2025, 4, 1)
    assert data.train["as_of"].max() < pd.Timestamp(data.oot_cutoff)
    # cutoffs every 30 days: the two within 90 days of 2025-04-01 would label into its window
    assert [(data.oot_cutoff - c).days for c in data.train_cutoffs] == [330, 300, 270, 240, 210, 180, 150, 120, 90]
    assert set(data.tune["customer_id"]).isdisjoint(data.test["customer_id"])
    assert (data.tune["as_of"] == pd.Timestamp(data.oot_cutoff)).all()
    # the split is a stable function of the id, the same in every run
    ids = pd.Series(["C000001", "C000002", "C000003", "x"])
    assert tune_mask(ids, 0.5).tolist() == tune_mask(ids.copy(), 0.5).tolist()


def test_step_shorter_than_horizon_leaves_out_overlapping_cutoffs(project) -> None:
    data = training_data("churn", project["wh"], FeaturesConfig(snapshot_step_days=30, snapshot_count=8), 0.5)
    oot = data.oot_cutoff
    # cutoffs 30 and 60 days before the out-of-time one would see labels after it
    assert [(oot - c).days for c in data.train_cutoffs] == [210, 180, 150, 120, 90]
    assert len(data.train) == sum(len(data.train[data.train["as_of"] == pd.Timestamp(c)]) for c in data.train_cutoffs)
    # snapshots made elsewhere with such a cutoff are refused in one line
    from features.snapshots import build_snapshots

    snaps = build_snapshots(project["wh"], FeaturesConfig(), cutoffs=[oot - timedelta(days=30), oot])
    with pytest.raises(TrainingDataError, match="reach past the out-of-time cutoff"):
        training_data("churn", project["wh"], FeaturesConfig(), 0.5, snapshots=snaps)


@pytest.mark.parametrize("name", ["churn", "response"])
def test_classifiers_beat_every_baseline_out_of_time(project, name: str) -> None:
    metrics = project["outcomes"][name].result.metrics
    model_auc = metrics["model"]["auc"]
    baselines = {k: v["auc"] for k, v in metrics.items() if k != "model"}
    expected = {"rfm_score", "logistic_rfmw"} | ({"btyd"} if name == "churn" else set())
    assert set(baselines) == expected
    for baseline, auc in baselines.items():
        assert model_auc > auc, f"{name}: model AUC {model_auc:.4f} <= {baseline} {auc:.4f}"


@pytest.mark.parametrize("name", ["churn", "response"])
def test_predictions_rank_like_the_truth(project, name: str) -> None:
    rho = project["outcomes"][name].truth_spearman
    model = rho["model"]["alive"]
    best_baseline = max(v["alive"] for k, v in rho.items() if k != "model")
    assert model > MIN_SPEARMAN_ALIVE[name], rho
    assert model > best_baseline + MIN_GAIN_OVER_BASELINES[name], rho


def test_value_model_metrics(project) -> None:
    m = project["outcomes"]["value"].result.metrics
    assert set(m) >= {"model", "rfm_score", "ridge_rfmw", "btyd"}
    assert m["model"]["spearman"] > 0.5
    assert m["model"]["gini_norm"] > max(v["gini_norm"] for k, v in m.items() if k != "model") - 0.02


def test_three_champions_registered(project) -> None:
    import mlflow

    for name in ("churn", "response", "value"):
        d = project["decisions"][name]
        assert d.promoted and d.champion_before is None
        mv = mlflow.MlflowClient().get_model_version_by_alias(name, "champion")
        assert mv.tags["promotion.decision"] == "first champion"
        assert mv.tags["data_fingerprint"] == project["outcomes"][name].result.data.fingerprint()


def test_pyfunc_equals_native_booster_exactly(project) -> None:
    """models:/churn@champion through pyfunc == the native booster, categoricals as strings."""
    import mlflow

    data = project["outcomes"]["churn"].result.data
    pyfunc = mlflow.pyfunc.load_model("models:/churn@champion")
    inner = pyfunc.unwrap_python_model().model
    frame = model_input(data.test, inner.numeric, inner.categorical)
    assert all(str(frame[c].dtype) == "str" for c in inner.categorical)  # categories arrive as text
    via_pyfunc = np.asarray(pyfunc.predict(frame))
    # the native path: a booster read straight from the logged model text, pandas categories
    # built from the training levels, LightGBM's own probability
    source = mlflow.MlflowClient().get_model_version_by_alias("churn", "champion").source
    local = Path(mlflow.artifacts.download_artifacts(source))
    booster = lgb.Booster(model_file=str(local / "artifacts" / "booster.txt"))
    native_in = frame.copy()
    for c in inner.categorical:
        native_in[c] = pd.Categorical(native_in[c], categories=inner.categories_[c])
    raw = booster.predict(native_in, raw_score=True)
    a, b = inner.calibration_ if inner.calibration_ is not None else (1.0, 0.0)
    native = 1 / (1 + np.exp(-(a * raw + b)))
    assert np.max(np.abs(via_pyfunc - native)) == 0.0
    if inner.calibration_ is None:  # LightGBM's own sigmoid: the same up to the last bit
        assert np.max(np.abs(via_pyfunc - booster.predict(native_in))) <= 1e-15
    assert 0 < via_pyfunc.min() and via_pyfunc.max() < 1


def test_value_pyfunc_applies_the_logged_level_factor(project) -> None:
    """models:/value@champion predicts exp(raw + log c), c the factor logged with its run."""
    import math

    import mlflow

    result = project["outcomes"]["value"].result
    pyfunc = mlflow.pyfunc.load_model("models:/value@champion")
    inner = pyfunc.unwrap_python_model().model
    assert inner.level_factor_ == result.model.level_factor_ != 1.0
    mv = mlflow.MlflowClient().get_model_version_by_alias("value", "champion")
    run = mlflow.get_run(mv.run_id)
    assert run.data.metrics["value_level_factor"] == inner.level_factor_
    assert float(run.data.params["value_level_factor"]) == inner.level_factor_
    assert run.data.params["value_level_correction"] == "True"
    frame = model_input(result.data.test, inner.numeric, inner.categorical)
    raw = inner.predict_raw(frame)
    np.testing.assert_array_equal(np.asarray(pyfunc.predict(frame)), np.exp(raw + math.log(inner.level_factor_)))
    y = result.data.test[result.data.target].to_numpy()
    assert abs(np.asarray(pyfunc.predict(frame)).mean() / y.mean() - 1) < 0.10


def test_promotion_refuses_a_worse_challenger(project) -> None:
    import mlflow

    from training.pipeline import promote_models, train_and_log

    cfg = project["cfg"].model_copy(update={"training": project["cfg"].training.model_copy(
        update={"num_leaves": 2, "max_rounds": 2, "early_stopping_rounds": 1})})
    before = mlflow.MlflowClient().get_model_version_by_alias("churn", "champion").version
    (weak,) = train_and_log(["churn"], project["wh"], cfg)
    baselines = {k: v["auc"] for k, v in weak.result.metrics.items() if k != "model"}
    best = max(baselines, key=baselines.get)
    assert weak.result.metrics["model"]["auc"] < baselines["logistic_rfmw"]  # a 2-tree stump is below logistic
    # 1. the gate refuses it for not beating the best baseline on the same test half, before
    #    any comparison with the champion, and says so on the version
    (decision,) = promote_models(["churn"], project["wh"], cfg, margin=0.0)
    assert not decision.promoted and decision.champion_score is None
    assert f"is not ahead of the {best} baseline {baselines[best]:.4f}" in decision.reason
    client = mlflow.MlflowClient()
    assert client.get_model_version_by_alias("churn", "champion").version == before
    refused = client.get_model_version("churn", weak.version.version)
    assert refused.tags["promotion.decision"] == "refused"
    assert f"not ahead of the {best} baseline" in refused.tags["promotion.reason"]
    assert refused.tags["promotion.best_baseline"] == best
    assert float(refused.tags["promotion.best_baseline_score"]) == pytest.approx(baselines[best], abs=1e-6)
    assert refused.tags["promotion.baselines_from"].startswith("logged")  # same data: the run's own numbers
    # 2. --force passes the evidence checks, never the champion: still refused, on the champion
    (forced,) = promote_models(["churn"], project["wh"], cfg, margin=0.0, force=True)
    assert not forced.promoted
    assert forced.challenger_score < forced.champion_score
    assert client.get_model_version_by_alias("churn", "champion").version == before


def test_gate_refuses_a_test_half_too_small_to_judge(project) -> None:
    import mlflow

    from training.pipeline import promote_models

    from training.pipeline import train_and_log

    strict = project["cfg"].model_copy(update={"training": project["cfg"].training.model_copy(
        update={"min_test_rows": 10**6, "max_rounds": 3})})
    (small,) = train_and_log(["value"], project["wh"], strict)
    (decision,) = promote_models(["value"], project["wh"], strict, margin=0.0)
    n = len(small.result.data.test)
    buyers = int((small.result.data.test["label_value"] > 0).sum())
    assert not decision.promoted and str(decision.challenger) == str(small.version.version)
    assert f"too small to judge it ({n:,} rows, {buyers:,} positives; [training] min_test_rows 1000000" in decision.reason
    version = mlflow.MlflowClient().get_model_version("value", decision.challenger)
    assert "too small to judge" in version.tags["promotion.reason"]


def test_same_data_and_seed_give_identical_predictions(project) -> None:
    data = project["outcomes"]["response"].result.data
    preds = []
    for _ in range(2):
        m = LgbmModel("binary", data.numeric, data.categorical, num_threads=1, seed=7)
        m.fit(data.train, data.train[data.target].to_numpy(), data.tune, data.tune[data.target].to_numpy())
        preds.append(m.predict(data.test))
    assert np.array_equal(preds[0], preds[1])


def test_tuning_logs_nested_trials(project) -> None:
    import mlflow

    from training.pipeline import train_and_log

    (out,) = train_and_log(["response"], project["wh"], project["cfg"], tune_trials=2)
    assert set(out.tuned) == {"learning_rate", "num_leaves", "min_child_samples", "feature_fraction", "lambda_l2"}
    runs = mlflow.search_runs(search_all_experiments=True, filter_string="attributes.run_name LIKE 'trial-%'")
    assert len(runs) >= 2
    assert runs["tags.mlflow.parentRunId"].notna().all()


def test_each_run_logs_explanations_and_a_complete_model_card(project) -> None:
    import re

    import mlflow

    from training.cards import render_card
    from training.model_card import SECTIONS, section_id

    for name in ("churn", "response", "value"):
        run_id = project["outcomes"][name].version.run_id
        logged = {a.path for a in mlflow.MlflowClient().list_artifacts(run_id)}
        assert {"model_card.html", "shap_importance.png", "shap_beeswarm.png", "performance_by_segment.csv"} <= logged
        assert any(p.startswith("shap_dependence_recency_days") for p in logged)
        card = render_card(name, "champion")
        ids = re.findall(r'<h2 id="([^"]+)"', card)
        assert ids == [section_id(s) for s in SECTIONS]
        assert card.count("data:image/png;base64,") >= 5
        assert "champion" in card and project["outcomes"][name].result.data.fingerprint() in card


def test_each_run_logs_the_reference_profile_monitoring_reads(project) -> None:
    """reference_profile.json: the test half's bins per feature and for the score, and mean |SHAP|."""
    import json

    import mlflow

    from monitoring.drift import column_psi
    from training.explain import contributions
    from training.profile import PROFILE_FILE, Bins

    for name in ("churn", "value"):
        outcome = project["outcomes"][name]
        result, run_id = outcome.result, outcome.version.run_id
        path = mlflow.artifacts.download_artifacts(run_id=run_id, artifact_path=PROFILE_FILE)
        profile = json.loads(Path(path).read_text())
        test, model = result.data.test, result.model
        assert profile["rows"] == len(test)
        assert set(profile["features"]) == set(model.numeric) | set(model.categorical)
        for feature, stored in profile["features"].items():
            bins = Bins.from_dict(stored)
            assert sum(bins.reference) == pytest.approx(1.0)
            # the test half against its own profile: no drift; shares recounted by hand for one bin
            assert column_psi(bins, test[feature]) == pytest.approx(0.0, abs=1e-12)
            if bins.kind == "numeric":
                x = pd.to_numeric(test[feature], errors="coerce").astype("float64").to_numpy()
                assert bins.reference[-1] == pytest.approx(float(np.isnan(x).mean()))
                if bins.edges:  # NaN < edge is False: the missing rows are in no bin but their own
                    assert bins.reference[0] == pytest.approx(float((x < bins.edges[0]).sum() / len(x)))
        pred = np.asarray(result.test_predictions["model"], dtype=float)
        assert profile["score_mean"] == pytest.approx(pred.mean(), rel=1e-12)
        assert column_psi(Bins.from_dict(profile["score"]), pred) == pytest.approx(0.0, abs=1e-12)
        values = contributions(model, test).values
        for feature, mean_abs in profile["mean_abs_contribution"].items():
            assert mean_abs == pytest.approx(float(values[feature].abs().mean()), rel=1e-9)
