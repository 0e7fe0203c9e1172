"""Model cards from what a training run logged, and the explanations logged with each run.

At training time `explanation_artifacts` computes global SHAP (importance, beeswarm,
dependence plots) and performance by RFMW segment and demographic band on the
out-of-time test half; they are logged with the run, and then the run's own card
(`render_run_card`, from what the run logged), all before the run is registered. A
version's card is assembled only from the registry and its run (`card_inputs`), so
`propensity explain model` needs neither the warehouse nor a retrain, and shows what the
version was judged on, with its number, aliases and promotion record.
"""

from __future__ import annotations

import json
import tempfile
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from training.train import TrainingResult

PURPOSE = {
    "churn": "Estimates, for every customer with purchase history, the probability of making no purchase "
             "in the horizon after the scoring date, so that retention effort goes where the risk is.",
    "response": "Estimates the probability that a customer contacted in a campaign responds, "
                "from their history as of the campaign start, to rank a campaign's audience.",
    "value": "Predicts each customer's net spend in the horizon after the scoring date "
             "(zero for most), to size expected profit and prioritise high-value customers.",
}
TARGET = {
    "churn": "label_churn = 1 when the customer makes no purchase (order with net amount > 0) in [as_of, as_of + horizon)",
    "response": "label_response = 1 when a treatment contact of the campaign was followed by a response",
    "value": "label_value = net amount of all lines in [as_of, as_of + horizon), clipped at 0",
}


def explanation_artifacts(result: TrainingResult) -> dict[str, Any]:
    """Global SHAP and performance by segment and band, on the out-of-time test half."""
    from training.explain import (
        contributions, dependence_features, global_importance, plot_beeswarm, plot_dependence, plot_importance,
    )
    from training.model_card import segment_performance
    from training.profile import PROFILE_FILE, reference_profile

    data, model = result.data, result.model
    test = data.test
    contribs = contributions(model, test)
    importance = global_importance(contribs)
    out: dict[str, Any] = {
        "shap_importance.csv": importance,
        "shap_importance.png": plot_importance(importance, f"{data.model}: mean |SHAP| ({contribs.scale})"),
        "shap_beeswarm.png": plot_beeswarm(contribs, test, model, f"{data.model}: SHAP values ({contribs.scale})"),
    }
    for feature in dependence_features(importance):
        out[f"shap_dependence_{feature}.png"] = plot_dependence(contribs, test, feature, f"{data.model}: {feature}")
    pred = result.test_predictions["model"]
    kind = "binary" if model.kind == "binary" else "value"
    if "rfmw_segment" in test.columns:
        out["performance_by_segment.csv"] = segment_performance(test, pred, data.target, kind, "rfmw_segment")
    for column in (c for c in test.columns if c.startswith("attr_")):
        out[f"performance_by_{column}.csv"] = segment_performance(test, pred, data.target, kind, column)
    # what monitoring measures every later scoring run against (monitoring.drift): the test
    # half, or for response everyone the scorer would have scored at that campaign's start
    if data.population is None:
        out[PROFILE_FILE] = reference_profile(model, test, np.asarray(pred, dtype=float), contribs, data.oot_cutoff)
    else:
        population = data.population
        out[PROFILE_FILE] = reference_profile(model, population, model.predict(population),
                                              contributions(model, population), data.oot_cutoff)
    out["calibration_summary.json"] = {
        "calibrated": model.calibration_ is not None,
        "platt": model.calibration_,
        "ece_tune_before": getattr(model, "ece_before_", None),
        "ece_tune_after": getattr(model, "ece_after_", None),
        "ece_test": result.metrics["model"].get("ece"),
    }
    return out


def _metrics_table(metrics: dict[str, float]) -> pd.DataFrame:
    rows: dict[str, dict[str, float]] = {}
    for key, value in metrics.items():
        scorer, dot, metric = key.partition(".")
        if dot and not metric.startswith("truth_"):
            rows.setdefault(scorer, {})[metric] = value
    table = pd.DataFrame(rows).T
    order = ["model"] + sorted(i for i in table.index if i != "model")
    return table.loc[[i for i in order if i in table.index]]


# The version field of the card logged with a training run: the run is registered only
# after everything, the card included, is logged (`propensity explain model` renders a
# version's card with its number, aliases and promotion record).
UNREGISTERED = "not yet registered when this card was logged"


def card_inputs(name: str, version: str):
    """Everything a card shows, read from the registry and the version's training run."""
    from training.track import version_record

    record = version_record(name, version)
    return _inputs(name, record["run_id"], str(version), record["aliases"], record["created_at"], record["tags"])


def run_card_inputs(name: str, run_id: str):
    """What the card of a training run shows before the run is registered (tags from the run)."""
    from training.track import run_tags_metrics

    tags, _ = run_tags_metrics(run_id)
    return _inputs(name, run_id, UNREGISTERED, [], datetime.now(timezone.utc).timestamp() * 1000, tags)


def render_run_card(name: str, run_id: str) -> str:
    """The HTML model card of a training run, from what it has logged so far (logged with the run)."""
    from training.model_card import render_model_card

    return render_model_card(run_card_inputs(name, run_id))


def _inputs(name: str, run_id: str, version: str, aliases: list[str], created_ms: float, tags: dict[str, str]):
    from training.model_card import CardInputs, default_limitations
    from training.track import download_run_artifacts, run_data

    record = {"run_id": run_id, "aliases": aliases, "created_at": created_ms}
    params, metrics = run_data(run_id)
    with tempfile.TemporaryDirectory() as tmp:
        folder = download_run_artifacts(run_id, Path(tmp))
        gain = ("Gain on the out-of-time test half: share of total value captured" if name == "value"
                else "Gain on the out-of-time test half: share of positives captured")
        figures = {
            title: (folder / fname).read_bytes()
            for fname, title in [
                ("gain.png", gain),
                ("calibration.png", "Reliability (calibration) on the out-of-time test half"),
                ("value_deciles.png", "Predicted and actual value by decile"),
                ("shap_importance.png", "Global importance: mean |SHAP|"),
                ("shap_beeswarm.png", "SHAP values per customer"),
            ]
            if (folder / fname).exists()
        }
        for path in sorted(folder.glob("shap_dependence_*.png")):
            figures[f"Dependence: {path.stem.removeprefix('shap_dependence_')}"] = path.read_bytes()
        features = json.loads((folder / "features.json").read_text())
        fingerprint = json.loads((folder / "data_fingerprint.json").read_text())
        cutoffs = json.loads((folder / "cutoffs.json").read_text())
        calibration = json.loads((folder / "calibration_summary.json").read_text()) if (folder / "calibration_summary.json").exists() else {}
        importance = pd.read_csv(folder / "shap_importance.csv") if (folder / "shap_importance.csv").exists() else None
        by_segment = pd.read_csv(folder / "performance_by_segment.csv") if (folder / "performance_by_segment.csv").exists() else None
        by_band = {
            path.stem.removeprefix("performance_by_attr_"): pd.read_csv(path)
            for path in sorted(folder.glob("performance_by_attr_*.csv"))
        }
    created = datetime.fromtimestamp(record["created_at"] / 1000, tz=timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return CardInputs(
        name=name,
        version=version,
        aliases=record["aliases"],
        run_id=record["run_id"],
        created_at=created,
        purpose=PURPOSE[name],
        target_definition=TARGET[name],
        train_cutoffs=cutoffs["train"],
        oot_cutoff=cutoffs["out_of_time"],
        rows={k: int(fingerprint[f"{k}_rows"]) for k in ("train", "tune", "test")},
        data_fingerprint=fingerprint["fingerprint"],
        git_commit=fingerprint.get("git_commit", tags.get("git_commit", "unknown")),
        warehouse=tags.get("warehouse", ""),
        features_numeric=features["numeric"],
        features_categorical=features["categorical"],
        params=params,
        metrics=_metrics_table(metrics),
        calibration=calibration,
        figures=figures,
        importance=importance,
        by_segment=by_segment,
        by_band=by_band,
        limitations=default_limitations(
            name,
            oot_cutoff=cutoffs["out_of_time"],
            train_cutoffs=cutoffs["train"],
            test_rows=int(fingerprint["test_rows"]),
            data_origin=tags.get("data_origin", "own"),
            calibration=calibration,
            by_segment=by_segment,
            by_band=by_band,
            horizon_days=int(tags["horizon_days"]) if tags.get("horizon_days") else None,
        ),
        promotion={k: v for k, v in tags.items() if k.startswith("promotion.")},
    )


def render_card(name: str, ref: str) -> str:
    """The HTML model card of `name` at version number or alias `ref`."""
    from training.model_card import render_model_card
    from training.track import resolve_version

    return render_model_card(card_inputs(name, resolve_version(name, ref)))
