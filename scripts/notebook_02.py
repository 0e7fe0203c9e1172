"""Writes notebooks/02_*.ipynb: its cells live here so a review sees plain Python. Run from the repo root."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
nb.cells = [
md("""# 02 · Retrain, compare the challenger with the champion, promote

The monthly routine of a data scientist, on a small copy of the sample world: train the
three models (each registered in MLflow as `@challenger`), read their out-of-time
metrics against the baselines, promote, then retrain with different settings and let
the promotion gate decide. Everything runs through `training.pipeline`, the same code
as `propensity train` and `propensity promote`.

Set `PROPENSITY_NB_CUSTOMERS` for a larger world (default 6,000)."""),
code("""%matplotlib inline
import os
import tempfile
from pathlib import Path

import mlflow
import pandas as pd

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import project_in
from training.pipeline import promote_models, train_and_log

folder = Path(tempfile.mkdtemp(prefix="propensity-nb2-"))
cfg = project_in(folder)
wh = Warehouse(cfg.warehouse.url)
load_sample_world(wh, SynthConfig(customers=int(os.environ.get("PROPENSITY_NB_CUSTOMERS", "6000")), seed=2))
print(wh.tables())"""),
md("## 1. Train all three models\n\nEach is validated out of time: the latest labelled cutoff (churn, value) or the latest finished campaign (response), split by customer into a *tune* half (early stopping, calibration) and a *test* half where every number below is computed."),
code("""outcomes = train_and_log(["churn", "response", "value"], wh, cfg, progress=print)
for o in outcomes:
    print(o.report(), "\\n")"""),
md("## 2. Out-of-time metrics: the model against each baseline"),
code("""rows = []
for o in outcomes:
    t = o.result.table()
    t.insert(0, "target", o.result.name)
    rows.append(t)
comparison = pd.concat(rows)
comparison[[c for c in ["target", "auc", "pr_auc", "brier", "lift_10", "spearman", "gini_norm", "top_decile_capture"] if c in comparison]].round(3)"""),
code("""from training import evaluate as ev

churn = outcomes[0].result
y = churn.data.test[churn.data.target].to_numpy()
display(ev.plot_gain({k: ev.gain_curve(y, p) for k, p in churn.test_predictions.items()}, "churn: gain on the out-of-time test half"))
display(ev.plot_calibration({k: ev.reliability_curve(y, p) for k, p in churn.test_predictions.items()}, "churn: reliability"))"""),
md("## 3. Promote: the first versions become champions"),
code("""for d in promote_models(["churn", "response", "value"], wh, cfg, margin=cfg.training.promotion_margin):
    print(d.line())"""),
md("""## 4. A new challenger

Retrain churn with a much smaller model (4 leaves, a high learning rate) and let the
gate compare it with the champion on the same out-of-time data. The comparison is
recorded on the challenger's version in the registry, whichever way it goes."""),
code("""small = cfg.model_copy(update={"training": cfg.training.model_copy(update={"num_leaves": 4, "learning_rate": 0.3})})
(challenger,) = train_and_log(["churn"], wh, small)
(decision,) = promote_models(["churn"], wh, small, margin=0.0)
print(decision.line())
client = mlflow.MlflowClient()
champion = client.get_model_version_by_alias("churn", "champion")
print("champion is version", champion.version)
{k: v for k, v in client.get_model_version("churn", challenger.version.version).tags.items() if k.startswith("promotion.")}"""),
md("## Checks"),
code("""assert all(o.result.metrics["model"].get("auc", 1) > o.result.metrics["rfm_score"].get("auc", 0) for o in outcomes)
assert decision.promoted == (decision.challenger_score - decision.champion_score > 0)
assert champion.version == (decision.challenger if decision.promoted else decision.champion_before)
print("retrain checks passed")
wh.close()"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/02_retrain_and_compare.ipynb")
