"""A scoring run's lineage: recompute one customer's stored reasons from what the run recorded.

A run records its model versions, the campaign kind, the number of reasons and the
feature snapshot it scored (path and SHA-256). Loading those versions and that row
gives back, bit for bit, the scores and reasons the run published; the comparison
with the stored rows is part of the answer, so an auditor sees it, not just trusts it.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from features.btyd import add_btyd_features
from features.load import Warehouse, WarehouseError
from features.snapshots import read_features
from propensity.config import Config
from serving import sink
from training.customer_reasons import CustomerExplanation, UnknownCustomer, explain_customer, versioned_model
from training.track import configure

COMPARED = ["model", "rank", "feature", "feature_value", "contribution", "scale", "effect", "text"]


@dataclass(frozen=True)
class RunExplanation:
    """One customer's recomputed explanations for a published run, and how they compare."""

    run: dict
    customer_id: str
    explanations: list[CustomerExplanation]
    stored: pd.DataFrame  # score_reasons rows of the run for this customer
    recomputed: pd.DataFrame
    mismatches: int  # rows whose recomputed values differ from the stored ones (0 = exact)

    def lines(self) -> list[str]:
        r = self.run
        head = [
            f"customer {self.customer_id} in scoring run {r['run_id']} (attempt {r['attempt']}, as of "
            f"{pd.Timestamp(r['as_of']).date()}, status {r['status']})",
            "  models: " + ", ".join(f"{m} v{r[f'{m}_version']}" for m in sink.MODELS
                                     if not sink.is_null(r.get(f"{m}_version")))
            + (f"; campaign kind {r['campaign_kind']!r}" if not sink.is_null(r.get("campaign_kind")) else "")
            + f"; data fingerprint {r['data_fingerprint']}",
            *([f"  not scored in this run: {r['missing_models']}"]
              if not sink.is_null(r.get("missing_models")) else []),
            f"  feature snapshot: {r['snapshot_path']} (sha256 {str(r['snapshot_sha256'])[:12]}..., verified)",
        ]
        body = []
        for exp in self.explanations:
            body += ["", *exp.lines()]
        verdict = (f"recomputed reasons equal the {len(self.stored)} stored rows exactly"
                   if self.mismatches == 0 else
                   f"WARNING: {self.mismatches} of {len(self.stored)} stored reason rows differ from the recomputation")
        return head + body + ["", verdict]


def explain_run_customer(warehouse: Warehouse, cfg: Config, run_id: str, customer_id: str) -> RunExplanation:
    """Recompute a customer's reasons as the published attempt of `run_id` computed them.

    Raises:
        WarehouseError: no such published run, or its snapshot is missing or changed.
        UnknownCustomer: the customer was not scored in that run.
    """
    run = sink.run_row(warehouse, run_id)
    path = Path(str(run["snapshot_path"] or ""))
    if not run["snapshot_path"] or not path.exists():
        raise WarehouseError(f"the feature snapshot of run {run_id} is missing ({path}); "
                             f"the run's reasons cannot be recomputed (restore the file or re-run the scoring)")
    from serving.batch import file_sha256

    if file_sha256(path) != run["snapshot_sha256"]:
        raise WarehouseError(f"the feature snapshot {path} was changed after run {run_id} wrote it "
                             "(SHA-256 differs); restore the original file")
    as_of = pd.Timestamp(run["as_of"]).date()
    row = read_features(path, as_of, [customer_id])
    if row.empty:
        raise UnknownCustomer(f"customer {customer_id!r} was not scored in run {run_id} "
                              f"(no transactions before {as_of}); check the id")
    if not sink.is_null(run.get("btyd_params")):  # the parameters the run fitted on its whole snapshot
        params = json.loads(run["btyd_params"])
        row, _ = add_btyd_features(row, params["horizon_days"], params)
    configure(cfg.mlflow, cfg.training.experiment)
    models = {name: (versioned_model(name, str(run[f"{name}_version"])), str(run[f"{name}_version"]))
              for name in sink.MODELS if not sink.is_null(run.get(f"{name}_version"))}
    k = int(run["reasons_per_model"]) if pd.notna(run.get("reasons_per_model")) else 5
    explanations = explain_customer(row, models, k=k, campaign_kind=run["campaign_kind"])
    recomputed = pd.concat([e.reasons.assign(model=e.model) for e in explanations], ignore_index=True)
    stored = warehouse.native_query(
        f"select * from {sink.REASONS} where run_id = ? and customer_id = ? order by model, rank",
        [run_id, customer_id])
    return RunExplanation(run, customer_id, explanations, stored, recomputed, _mismatches(stored, recomputed))


def _mismatches(stored: pd.DataFrame, recomputed: pd.DataFrame) -> int:
    a = stored[COMPARED].sort_values(["model", "rank"]).reset_index(drop=True)
    b = recomputed[COMPARED].sort_values(["model", "rank"]).reset_index(drop=True)
    if len(a) != len(b):
        return max(len(a), len(b))
    differ = np.zeros(len(a), dtype=bool)
    for c in COMPARED:
        if c in ("contribution", "effect"):
            differ |= a[c].to_numpy(float) != b[c].to_numpy(float)
        else:
            differ |= a[c].astype(str).to_numpy() != b[c].astype(str).to_numpy()
    return int(differ.sum())
