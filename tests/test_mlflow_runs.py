"""What a data scientist sees in MLflow: an ML-typed experiment, baselines as nested runs
beside the model (same metric names), and the metrics table among the run's files."""

from __future__ import annotations

import mlflow
import pytest

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import project_in


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """Churn trained and logged once on a 1,000-customer sample world."""
    from training.pipeline import train_and_log

    folder = tmp_path_factory.mktemp("runs")
    cfg = project_in(folder)
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=1000, seed=1))
    (outcome,) = train_and_log(["churn"], wh, cfg)
    wh.close()
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    experiment = client.get_experiment_by_name(cfg.training.experiment)
    yield {"cfg": cfg, "outcome": outcome, "client": client, "experiment": experiment}


def test_the_experiment_is_typed_for_ml_training(trained) -> None:
    assert trained["experiment"].tags["mlflow.experimentKind"] == "custom_model_development"


def test_an_untyped_experiment_of_ours_gets_the_ml_type(tmp_path) -> None:
    from training.track import configure

    cfg = project_in(tmp_path)
    client = mlflow.MlflowClient(tracking_uri=cfg.mlflow.tracking_uri)
    made = client.create_experiment(cfg.training.experiment)  # as an older version created it: no type
    assert "mlflow.experimentKind" not in client.get_experiment(made).tags
    assert configure(cfg.mlflow, cfg.training.experiment, recover=False) == made
    assert client.get_experiment(made).tags["mlflow.experimentKind"] == "custom_model_development"


def test_baselines_are_nested_runs_comparable_with_the_model(trained) -> None:
    client, outcome = trained["client"], trained["outcome"]
    exp_id = trained["experiment"].experiment_id
    (model_run,) = client.search_runs([exp_id], filter_string="tags.`propensity.role` = 'model'")
    assert model_run.info.run_id == outcome.version.run_id
    assert model_run.data.tags["propensity.model"] == "churn" and model_run.info.status == "FINISHED"
    assert "baseline: " in model_run.data.tags["mlflow.note.content"]  # the run page says where the baselines are

    children = client.search_runs([exp_id], filter_string=f"tags.`mlflow.parentRunId` = '{model_run.info.run_id}'")
    scorers = set(outcome.result.metrics) - {"model"}
    assert len(scorers) >= 3  # rfm_score, btyd, logistic, ... (the baselines of churn)
    assert {r.info.run_name for r in children} == {f"baseline: {s}" for s in scorers}
    assert len(children) == len(scorers)

    parent = model_run.data.metrics
    # the model run keeps its unprefixed metrics (monitoring reads them) next to the prefixed ones
    assert {k: parent[k] for k in outcome.result.metrics["model"]} == pytest.approx(outcome.result.metrics["model"])
    unprefixed = {k for k in parent if "." not in k}
    for child in children:
        scorer = child.data.tags["propensity.scorer"]
        assert child.data.tags["propensity.role"] == "baseline" and child.data.tags["propensity.model"] == "churn"
        assert child.data.tags["data_fingerprint"] == model_run.data.tags["data_fingerprint"]
        assert child.info.status == "FINISHED"  # ended inside the parent: nothing for crash recovery to judge
        assert child.data.tags["propensity.pid"] == model_run.data.tags["propensity.pid"]
        # every metric of the baseline has the model's column beside it, with the model run's value for it
        assert {"auc", "pr_auc", "ece", "lift_10", "truth_spearman_alive"} <= set(child.data.metrics) <= unprefixed
        assert set(child.data.metrics) == {k.removeprefix(f"{scorer}.") for k in parent if k.startswith(f"{scorer}.")}
        assert child.data.metrics == pytest.approx({k: parent[f"{scorer}.{k}"] for k in child.data.metrics})
        assert child.data.metrics["auc"] == pytest.approx(outcome.result.metrics[scorer]["auc"])


def test_the_metrics_table_is_a_top_level_artifact_of_the_run(trained) -> None:
    import json

    from training.track import configure, recover_abandoned_runs, version_problem

    client, outcome, cfg = trained["client"], trained["outcome"], trained["cfg"]
    configure(cfg.mlflow, cfg.training.experiment, recover=False)  # MLflow's current store: another test may have moved it
    run_id = outcome.version.run_id
    files = {a.path for a in client.list_artifacts(run_id)}
    assert {"metrics_by_scorer.json", "metrics_by_scorer.csv"} <= files
    table = client.load_table(trained["experiment"].experiment_id, "metrics_by_scorer.json", run_ids=[run_id])
    assert sorted(table["scorer"]) == sorted(outcome.result.metrics)
    model_row = table.set_index("scorer").loc["model"]
    assert model_row["auc"] == pytest.approx(outcome.result.metrics["model"]["auc"])
    assert {"path": "metrics_by_scorer.json", "type": "table"} in json.loads(
        client.get_run(run_id).data.tags["mlflow.loggedArtifacts"])
    # the table joined the version's manifest; the version is complete and nothing is left RUNNING
    version = client.get_model_version("churn", outcome.version.version)
    assert "metrics_by_scorer.json" in json.loads(version.tags["propensity.artifacts"])
    assert version_problem("churn", outcome.version.version) is None
    assert recover_abandoned_runs(cfg.mlflow) is None
