"""Drift of one scoring run against the reference profiles of the models that scored it.

A run keeps what monitoring needs: its feature snapshot (Parquet), the BTYD parameters it
applied, the model versions, and its scores. The features each model read are rebuilt
from those exactly as the scorer built them (snapshot + BTYD features with the stored
parameters), and compared with the `reference_profile.json` logged with the model's
training run (`training.profile`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from features.btyd import BTYD_FEATURES, add_btyd_features
from features.load import Warehouse, WarehouseError
from monitoring.drift import feature_drift, prediction_drift
from propensity.config import MonitoringConfig
from serving import sink
from serving.current import latest_run
from training.profile import PROFILE_FILE

MODELS = ("churn", "response", "value")
SCORE_COLUMN = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value"}
# Model inputs left out of feature drift: campaign_kind is the run's choice, not the
# customers' data; the BTYD features are refitted by every run (and at every training
# cutoff), so their values move with the fit even when the data does not (Gamma-Gamma's
# spend for one-time buyers is one fitted constant held by up to half the customers: a
# two-week refit moved it across a decile edge, PSI 1.5); their inputs (recency,
# frequency, tenure, monetary) are profiled and say whether the data moved.
RUN_SETTINGS = ("campaign_kind", *BTYD_FEATURES)
# Features every customer's value grows by one a day: between the reference's date and the
# run's, the reference bins are moved by the days between, so ageing alone is no drift
# (a cohort's tenure_days two weeks on had PSI 0.8 against unaged bins).
AGEING = ("tenure_days",)


def aged(profile: dict, as_of: date) -> dict:
    """The profile with the AGEING features' bin edges moved to `as_of` (unchanged without a date)."""
    if not profile.get("as_of"):
        return profile
    days = (as_of - date.fromisoformat(profile["as_of"])).days
    features = dict(profile["features"])
    for name in AGEING:
        if name in features and features[name]["kind"] == "numeric":
            features[name] = {**features[name], "edges": [e + days for e in features[name]["edges"]]}
    return {**profile, "features": features}


@dataclass
class ModelDrift:
    """One model of the run: its version, feature and prediction drift (or why there is none)."""

    model: str
    version: str | None
    features: pd.DataFrame | None = None
    prediction: dict[str, float] | None = None
    note: str | None = None


@dataclass
class RunDrift:
    """The drift of one scoring run, model by model."""

    run_id: str
    attempt: int
    as_of: date
    customers: int
    models: list[ModelDrift] = field(default_factory=list)
    # the published run before this one (by as-of, then finish time): its id and the
    # customers gained and lost since; None when this is the first
    previous: dict[str, Any] | None = None
    # the latest import of each table: rows read, rejected, and the rejected share
    imports: pd.DataFrame | None = None

    def alerts(self, cfg: MonitoringConfig) -> list[str]:
        """One line per threshold reached (empty: no alert)."""
        out = []
        for m in self.models:
            if m.features is not None:
                for row in m.features[m.features["psi"] >= cfg.feature_psi_alert].itertuples():
                    out.append(f"{m.model} v{m.version}: feature {row.feature} PSI {row.psi:.3f} "
                               f">= {cfg.feature_psi_alert}")
            if m.prediction is not None and m.prediction["psi"] >= cfg.prediction_psi_alert:
                out.append(f"{m.model} v{m.version}: scores PSI {m.prediction['psi']:.3f} >= {cfg.prediction_psi_alert} "
                           f"(mean {m.prediction['mean']:.4g} against {m.prediction['reference_mean']:.4g})")
        return out


def chosen_run(wh: Warehouse, run_id: str | None) -> dict[str, Any]:
    """The scoring_runs row of `run_id` (its published attempt), or of the latest successful run."""
    if run_id is not None:
        return sink.run_row(wh, run_id)
    row = latest_run(wh)
    if row is None:
        raise WarehouseError("no successful scoring run in the warehouse; run `propensity score --as-of DATE` first")
    return row


def run_features(row: dict[str, Any]) -> pd.DataFrame:
    """The run's feature rows as its models read them: the snapshot plus the BTYD features it applied."""
    path = Path(str(row.get("snapshot_path") or ""))
    if not row.get("snapshot_path") or not path.is_file():
        raise WarehouseError(f"scoring run {row['run_id']}'s feature snapshot {path} is gone; re-score its date "
                             f"(`propensity score --as-of {pd.Timestamp(row['as_of']).date()}`) to monitor it")
    frame = pd.read_parquet(path)
    if row.get("btyd_params"):
        params = json.loads(row["btyd_params"])
        if "note" not in params:  # a failed fit leaves the columns out, as at scoring
            frame, _ = add_btyd_features(frame, int(params["horizon_days"]), params)
    return frame


def previous_run(wh: Warehouse, row: dict[str, Any]) -> dict[str, Any] | None:
    """The run before `row` and the customers gained and lost since (None for the first run)."""
    before = wh.native_query(
        f"select run_id, as_of from {sink.RUNS} where status = 'succeeded' and run_id <> ? "
        "and (as_of < ? or (as_of = ? and finished_at < ?)) order by as_of desc, finished_at desc limit 1",
        [row["run_id"], row["as_of"], row["as_of"], row["finished_at"]])
    if before.empty:
        return None
    prev_id = str(before["run_id"].iloc[0])
    counts = wh.native_query(
        f"""select count(*) filter (where p.customer_id is null) as gained,
                   count(*) filter (where c.customer_id is null) as lost,
                   count(*) filter (where c.customer_id is not null and p.customer_id is not null) as kept
            from (select customer_id from {sink.SCORES} where run_id = ?) c
            full outer join (select customer_id from {sink.SCORES} where run_id = ?) p using (customer_id)""",
        [row["run_id"], prev_id])
    return {"run_id": prev_id, "as_of": pd.Timestamp(before["as_of"].iloc[0]).date(),
            **{k: int(counts[k].iloc[0]) for k in ("gained", "lost", "kept")}}


def latest_imports(wh: Warehouse) -> pd.DataFrame | None:
    """The latest `import_log` row of each table, with the share of its rows rejected."""
    if not wh.has("import_log"):
        return None
    frame = wh.native_query(
        "select l.table_name, l.imported_at, l.mode, l.rows_read, l.rows_loaded, l.rows_rejected from import_log l "
        "join (select table_name, max(imported_at) as latest from import_log group by table_name) x "
        "on l.table_name = x.table_name and l.imported_at = x.latest order by l.table_name")
    read = frame["rows_read"].astype("float64")
    return frame.assign(rejected_share=np.where(read > 0, frame["rows_rejected"].astype("float64") / read.where(read > 0), 0.0))


def monitor_run(wh: Warehouse, run_id: str | None = None, profiles=None) -> RunDrift:
    """Feature and prediction drift of a scoring run against each of its models' reference profiles.

    Args:
        wh: the warehouse holding scoring_runs and customer_scores.
        run_id: a published run (default: the latest successful one).
        profiles: (model, version) -> the profile dict or None; default: the registry's
            `reference_profile.json` of that version (`training.track.version_json`).
    """
    if profiles is None:
        from training.track import version_json

        def profiles(model: str, version: str) -> dict | None:
            return version_json(model, version, PROFILE_FILE)

    row = chosen_run(wh, run_id)
    frame = run_features(row)
    scores = wh.native_query(f"select * from {sink.SCORES} where run_id = ? order by customer_id", [row["run_id"]])
    result = RunDrift(str(row["run_id"]), int(row["attempt"]), pd.Timestamp(row["as_of"]).date(), len(frame),
                      previous=previous_run(wh, row), imports=latest_imports(wh))
    for model in MODELS:
        version = row.get(f"{model}_version")
        if version is None or (isinstance(version, float) and np.isnan(version)):
            result.models.append(ModelDrift(model, None, note="not scored in this run"))
            continue
        version = str(version)
        profile = profiles(model, version)
        if profile is None:
            result.models.append(ModelDrift(model, version, note=f"version {version} was trained before reference "
                                            f"profiles were logged; retrain it (`propensity train {model}`) to monitor it"))
            continue
        profile = aged({**profile, "features": {k: v for k, v in profile["features"].items() if k not in RUN_SETTINGS}},
                       result.as_of)
        result.models.append(ModelDrift(model, version, feature_drift(frame, profile),
                                        prediction_drift(scores[SCORE_COLUMN[model]].to_numpy(dtype=float), profile)))
    return result


def summary_lines(drift: RunDrift, cfg: MonitoringConfig, top: int = 5) -> list[str]:
    """The one-screen summary `propensity monitor` prints."""
    lines = [f"scoring run {drift.run_id} (attempt {drift.attempt}) as of {drift.as_of}: {drift.customers:,} customers"]
    p = drift.previous
    lines.append("  first published run: nothing to compare customers with" if p is None else
                 f"  since run {p['run_id']} ({p['as_of']}): {p['gained']:,} customers gained, {p['lost']:,} lost, "
                 f"{p['kept']:,} kept")
    if drift.imports is not None and len(drift.imports):
        lines.append("  latest imports: " + "; ".join(
            f"{r.table_name} {r.rows_rejected:,} of {r.rows_read:,} rows rejected ({r.rejected_share:.1%})"
            for r in drift.imports.itertuples()))
    for m in drift.models:
        if m.note is not None:
            lines.append(f"  {m.model}: {m.note}")
            continue
        p = m.prediction
        lines.append(f"  {m.model} v{m.version}: scores PSI {p['psi']:.3f}, mean {p['mean']:.4g} "
                     f"(reference {p['reference_mean']:.4g})")
        f = m.features
        moved = f[f["psi"] >= 0.1]
        lines.append(f"    features: {len(f)} profiled, {len(moved)} with PSI >= 0.1, "
                     f"{int((f['psi'] >= cfg.feature_psi_alert).sum())} at the alert line {cfg.feature_psi_alert}")
        for r in f.head(top).itertuples():
            extra = (f", {r.new_level_share:.1%} new levels" if r.new_level_share > 0 else "") + \
                (" (column absent)" if r.absent else "")
            lines.append(f"    {r.feature:<32} PSI {r.psi:7.3f}  missing {r.missing_share:6.1%} "
                         f"(reference {r.reference_missing_share:.1%}){extra}")
    alerts = drift.alerts(cfg)
    lines.append(f"alerts: {len(alerts)}" if alerts else "no alert")
    lines += [f"  ALERT {a}" for a in alerts]
    return lines
