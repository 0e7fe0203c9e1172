"""Writes notebooks/01_*.ipynb: its cells live here so a review sees plain Python. Run from the repo root."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
nb.cells = [
md("""# 01 · Explore RFMW features and segments of the sample world

This notebook generates a small copy of the built-in sample world, builds the as-of
features with the same code the CLI uses (`features.snapshots.build_features`), and looks
at the RFMW distributions and the segments. It holds no logic of its own: everything
comes from the `features` package.

Set `PROPENSITY_NB_CUSTOMERS` to explore a larger world (default 5,000 customers)."""),
code("""%matplotlib inline
import os
import tempfile
from datetime import date
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd

from features.load import Warehouse
from features.snapshots import build_features
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import FeaturesConfig

customers = int(os.environ.get("PROPENSITY_NB_CUSTOMERS", "5000"))
folder = Path(tempfile.mkdtemp(prefix="propensity-nb-"))
world_cfg = SynthConfig(customers=customers, seed=0)
wh = Warehouse(f"duckdb:///{folder / 'warehouse.duckdb'}")
for result in load_sample_world(wh, world_cfg):
    print(result.summary())"""),
md("""## Features as of the truth date

The sample world stores each customer's true churn probability as of `truth_as_of`;
building the features at that date lets us compare segments with the truth."""),
code("""as_of = world_cfg.truth_as_of
feats = build_features(wh, as_of, FeaturesConfig())
truth = wh.read("synth_truth")
feats = feats.merge(truth[["customer_id", "true_churn_prob", "churn_driver"]], on="customer_id", how="left")
print(f"{len(feats):,} customers with history before {as_of}, {feats.shape[1]} columns")
feats[["recency_days", "frequency_365d", "monetary_avg_365d", "width_categories"]].describe().round(1)"""),
md("## R, F, M and W distributions"),
code("""fig, axes = plt.subplots(1, 4, figsize=(16, 3.2))
for ax, col, title in zip(
    axes,
    ["recency_days", "frequency_365d", "monetary_avg_365d", "width_categories"],
    ["Recency (days since last purchase)", "Frequency (purchases, 365 d)", "Monetary (avg spend / purchase)", "Width (distinct categories)"],
):
    feats[col].dropna().clip(upper=feats[col].quantile(0.99)).hist(ax=ax, bins=40, color="#3b6ea5")
    ax.set_title(title, fontsize=10)
fig.tight_layout()"""),
md("""## Segments

Quintile scores are 1-5 by cumulative share with ties kept together; the named segment
is the first matching rule in `features.segments.SEGMENT_RULES`."""),
code("""seg = (
    feats.groupby("rfmw_segment")
    .agg(customers=("customer_id", "size"),
         recency=("recency_days", "median"),
         frequency=("frequency_365d", "mean"),
         monetary=("monetary_avg_365d", "mean"),
         churn_rate=("label_churn", "mean"),
         true_churn=("true_churn_prob", "mean"))
    .sort_values("true_churn")
)
seg.round(2)"""),
code("""fig, ax = plt.subplots(figsize=(9, 3.5))
seg["true_churn"].plot.barh(ax=ax, color="#c0504d")
ax.set_xlabel("mean true churn probability in the next 90 days")
ax.set_title("Named RFMW segments against the sample world's ground truth")
fig.tight_layout()"""),
md("## Tiers and activity"),
code("""for col in ["value_tier", "loyalty_tier", "activity", "risk_tier"]:
    print(feats.groupby(col)["true_churn_prob"].agg(["size", "mean"]).round(3), "\\n")"""),
md("""## Checks

The segments should order customers by risk the way the ground truth does: the labelled
churn rate of `lost` customers is far above that of `champions`, and the rule-based risk
tier is monotone in the true churn probability."""),
code("""by_tier = feats.groupby("risk_tier")["true_churn_prob"].mean()
assert by_tier["low"] < by_tier["medium"] < by_tier["high"], by_tier
assert seg.loc["lost", "churn_rate"] > seg.loc["champions", "churn_rate"] + 0.2, seg
print("segment checks passed")
wh.close()"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/01_explore_rfmw.ipynb")
