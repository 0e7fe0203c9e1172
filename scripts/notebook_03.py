"""Writes notebooks/03_*.ipynb: its cells live here so a review sees plain Python. Run from the repo root."""
import nbformat as nbf
nb = nbf.v4.new_notebook()
md = nbf.v4.new_markdown_cell
code = nbf.v4.new_code_cell
nb.cells = [
md("""# 03 · Reading the explanations: an auditor's walk-through

Questions an auditor asks of a score, answered with the project's own functions on a
small copy of the sample world:

1. **Which model produced it?** The registry: name, version, alias, training run, data
   fingerprint and code version, all on the model card.
2. **Why this customer?** Reason codes: the largest SHAP contributions for that
   customer, with the feature's value, the contribution in the model's raw scale
   (log-odds for churn and response, log of the amount for value), the approximate
   effect on the probability or amount, and a sentence.
3. **Do the numbers add up?** Base value + contributions = the model's raw score, for
   every customer (checked on every batch; a violation stops the run).
4. **Does it point at the real causes?** In the sample world we know each customer's
   true churn driver, so we can check.

Set `PROPENSITY_NB_CUSTOMERS` for a larger world (default 6,000)."""),
code("""%matplotlib inline
import os
import tempfile
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from IPython.display import HTML, display

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import project_in
from training.cards import render_card
from training.customer_reasons import customer_row, explain_customer, registered_model
from training.explain import contributions, reason_codes
from training.pipeline import promote_models, train_and_log

folder = Path(tempfile.mkdtemp(prefix="propensity-nb3-"))
cfg = project_in(folder)
wh = Warehouse(cfg.warehouse.url)
load_sample_world(wh, SynthConfig(customers=int(os.environ.get("PROPENSITY_NB_CUSTOMERS", "6000")), seed=3))
outcomes = {o.result.name: o for o in train_and_log(["churn", "response", "value"], wh, cfg)}
for d in promote_models(["churn", "response", "value"], wh, cfg, margin=0.0):
    print(d.line())"""),
md("## 1. The model card of the churn champion\n\nThe same HTML that `propensity explain model churn@champion --out card.html` writes. Below, its first part; the full card has every section."),
code("""card = render_card("churn", "champion")
(folder / "churn_card.html").write_text(card)
print(f"{len(card) / 1024:,.0f} KiB, written to {folder / 'churn_card.html'}")
display(HTML(card[: card.find('id="performance-by-rfmw-segment"')] if 'id="performance-by-rfmw-segment"' in card else card[:20000]))"""),
md("## 2. One customer's reasons\n\nA customer whose true churn driver in the sample world is an unresolved pain, alive at the cutoff, and whom the model rates at high risk."),
code("""truth = wh.read("synth_truth")
churn = outcomes["churn"].result
test = churn.data.test.assign(p=churn.test_predictions["model"]).merge(truth, on="customer_id")
candidates = test[(test["churn_driver"] == "unresolved_pain") & test["alive_at_truth"]].sort_values("p", ascending=False)
customer = candidates["customer_id"].iloc[0]
as_of = churn.data.oot_cutoff
row = customer_row(wh, cfg.features, customer, as_of)
models = {name: registered_model(name, "champion") for name in ("churn", "response", "value")}
for exp in explain_customer(row, models, k=5):
    print("\\n".join(exp.lines()), "\\n")"""),
md("### The same reasons as a waterfall, from the base value to the customer's raw score"),
code("""model, _ = models["churn"]
c = contributions(model, row)
vals = c.values.iloc[0].sort_values(key=np.abs, ascending=False)
top = vals.head(8)
rest = vals.iloc[8:].sum()
steps = pd.concat([top, pd.Series({"all other features": rest})])
fig, ax = plt.subplots(figsize=(8, 4))
start = c.base_value
for i, (name, v) in enumerate(steps.items()):
    ax.barh(i, v, left=start, color="#c0504d" if v > 0 else "#4f81bd")
    start += v
ax.set_yticks(range(len(steps)), steps.index)
ax.invert_yaxis()
ax.axvline(c.base_value, color="grey", linestyle=":", label=f"base value {c.base_value:.2f}")
ax.axvline(c.raw[0], color="black", linestyle="--", label=f"raw score {c.raw[0]:.2f}")
ax.set_xlabel(f"contribution ({c.scale}); red raises churn risk")
ax.legend(loc="lower right")
fig.tight_layout()"""),
md("## 3. Do the numbers add up?"),
code("""deviations = {}
for name, out in outcomes.items():
    contribs = contributions(out.result.model, out.result.data.test)
    deviations[name] = np.max(np.abs(contribs.base_value + contribs.values.sum(axis=1).to_numpy() - contribs.raw))
    print(f"{name:<9} {len(contribs.raw):>6,} customers, max |base + sum - raw| = {deviations[name]:.2e} ({contribs.scale})")"""),
md("""## 4. Do the reasons point at the true drivers?

Share of customers (alive at the cutoff) with a needs-evaluation *finding* (open pains,
solution fit, need level, urgency, importance, complaints) among their top-5 churn
reasons, by their true churn driver. The two scheduling features (days since the last
evaluation, number of evaluations) are left out of this count: in the sample world a
sales team only evaluates live customers, so those two mostly say "still being
looked after", whatever the driver."""),
code("""SCHEDULING = {"needs_days_since_evaluation", "needs_evaluations_total"}
alive = test[test["alive_at_truth"]]
reasons = reason_codes(churn.model, churn.data.test[churn.data.test["customer_id"].isin(alive["customer_id"])], "churn", k=5)
finding = reasons["feature"].str.startswith("needs_") & ~reasons["feature"].isin(SCHEDULING)
has_finding = reasons.assign(finding=finding).groupby("customer_id")["finding"].any()
share = alive.assign(needs_finding_in_top5=alive["customer_id"].map(has_finding)).groupby("churn_driver")["needs_finding_in_top5"].agg(["size", "mean"])
share.round(3)"""),
md("## Checks"),
code("""assert max(deviations.values()) < 1e-6
others = alive[alive["churn_driver"] != "unresolved_pain"]["customer_id"].map(has_finding).mean()
assert share.loc["unresolved_pain", "mean"] > 0.5 and share.loc["unresolved_pain", "mean"] > others + 0.2, (share, others)
assert all(s in card for s in ["Purpose", "Known limitations", "Lineage"])
print("auditor checks passed")
wh.close()"""),
]
nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
nbf.write(nb, "notebooks/03_read_explanations.ipynb")
