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
from monitoring.attribution import attribution_drift
from monitoring.tables import ALL_SEGMENTS
from monitoring.drift import feature_drift, prediction_drift, segment_drift
from propensity.config import MonitoringConfig
from serving import sink
from serving.current import latest_run
from training.profile import PROFILE_FILE, Bins, shares

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
    # per-feature mean |contribution| of the run against the reference (monitoring.attribution),
    # and the shift; None for runs scored before the scorer kept attributions
    attributions: pd.DataFrame | None = None
    attribution_shift: float | None = None  # importance shift (share of mean |SHAP|), 0-1
    direction_shift: float | None = None  # signed mean contributions moved, over the reference's mean |SHAP|
    # the score distribution on the reference's bins: labels, reference and current shares
    score_bins: dict[str, list] | None = None
    # feature drift inside segments (monitoring.drift.segment_drift)
    segments: pd.DataFrame | None = None


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

    # run_performance rows of this run (estimated, realised once elapsed, card), or None
    performance: pd.DataFrame | None = None

    def alerts(self, cfg: MonitoringConfig) -> list[str]:
        """One line per threshold reached (empty: no alert)."""
        out = []
        for m in self.models:
            out += self.model_alerts(m, cfg)
        return out

    def model_alerts(self, m: ModelDrift, cfg: MonitoringConfig) -> list[str]:
        """The alert lines of one model of the run."""
        out = []
        if m.features is not None:
            for row in m.features[m.features["psi"] >= cfg.feature_psi_alert].itertuples():
                out.append(f"{m.model} v{m.version}: feature {row.feature} PSI {row.psi:.3f} "
                           f">= {cfg.feature_psi_alert}")
        confined = confined_segments(m, cfg.feature_psi_alert)
        for feature, rows in confined.groupby("feature", sort=False):
            top = rows.iloc[0]
            others = f" and {len(rows) - 1} other segment(s)" if len(rows) > 1 else ""
            out.append(f"{m.model} v{m.version}: feature {feature} PSI {top['psi']:.3f} in {top['segment']} "
                       f"({top['rows']:,} customers){others} >= {cfg.feature_psi_alert}, though "
                       f"{m.features.set_index('feature')['psi'].get(feature, float('nan')):.3f} over all customers")
        if m.prediction is not None and m.prediction["psi"] >= cfg.prediction_psi_alert:
            out.append(f"{m.model} v{m.version}: scores PSI {m.prediction['psi']:.3f} >= {cfg.prediction_psi_alert} "
                       f"(mean {m.prediction['mean']:.4g} against {m.prediction['reference_mean']:.4g})")
        if m.attribution_shift is not None and m.attribution_shift >= cfg.attribution_shift_alert:
            top = m.attributions.assign(moved=(m.attributions["share"] - m.attributions["reference_share"]).abs())
            top = top.sort_values("moved", ascending=False, kind="stable").iloc[0]
            out.append(f"{m.model} v{m.version}: attribution shift (importance) {m.attribution_shift:.3f} >= "
                       f"{cfg.attribution_shift_alert} (most moved: {top['feature']}, share "
                       f"{top['share']:.1%} against {top['reference_share']:.1%})")
        if m.direction_shift is not None and m.direction_shift >= cfg.direction_shift_alert:
            a = m.attributions
            top = a.assign(moved=(a["mean_contribution"] - a["reference_mean_contribution"]).abs()).sort_values(
                "moved", ascending=False, kind="stable").iloc[0]
            out.append(f"{m.model} v{m.version}: attribution shift (direction) {m.direction_shift:.3f} >= "
                       f"{cfg.direction_shift_alert} (most moved: {top['feature']}, mean contribution "
                       f"{top['mean_contribution']:+.3f} against {top['reference_mean_contribution']:+.3f})")
        out += self.performance_alerts(m, cfg)
        return out

    def performance_alerts(self, m: ModelDrift, cfg: MonitoringConfig) -> list[str]:
        """Estimated or realised AUC (Gini for value) of the whole run below the card's by the alert line."""
        perf = self.performance
        if perf is None or perf.empty:
            return []
        mine = perf[(perf["model"] == m.model) & (perf["segment"] == ALL_SEGMENTS)].set_index("source")
        if "card" not in mine.index:
            return []
        metric = "gini" if m.model == "value" else "auc"
        card = mine.loc["card", metric]
        out = []
        for source in ("estimated", "realised"):
            if source in mine.index and np.isfinite(mine.loc[source, metric]) and np.isfinite(card) \
                    and card - mine.loc[source, metric] >= cfg.performance_drop_alert:
                out.append(f"{m.model} v{m.version}: {source} {metric.upper() if metric == 'auc' else 'Gini'} "
                           f"{mine.loc[source, metric]:.3f}, {card - mine.loc[source, metric]:.3f} below the "
                           f"card's {card:.3f} (alert at {cfg.performance_drop_alert})")
        return out


def confined_segments(m: ModelDrift, line: float) -> pd.DataFrame:
    """Segment rows at the alert line whose feature stays below it over all customers (largest first).

    A shift of the whole population shows inside every segment too; those rows add
    nothing to the population's alert, so only a shift confined to segments alerts here.
    """
    if m.segments is None or m.segments.empty:
        return pd.DataFrame(columns=["segment", "feature", "psi", "rows"])
    alerted = set(m.features.loc[m.features["psi"] >= line, "feature"]) if m.features is not None else set()
    rows = m.segments[(m.segments["psi"] >= line) & ~m.segments["feature"].isin(alerted)]
    return rows.reset_index(drop=True)


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


def _score_bins(scores: np.ndarray, profile: dict) -> dict[str, list]:
    bins = Bins.from_dict(profile["score"])
    return {"labels": list(bins.labels), "reference": [float(x) for x in bins.reference],
            "current": [float(x) for x in shares(bins, scores)]}


def _attributions(row: dict[str, Any]) -> dict[str, Any]:
    """scoring_runs.attributions of a run ({} for Spark runs and runs scored before the scorer kept them)."""
    text = row.get("attributions")
    return {} if sink.is_null(text) else json.loads(str(text))


def _default_profiles(model: str, version: str) -> dict | None:
    from training.track import version_json

    return version_json(model, version, PROFILE_FILE)


def _default_cards(model: str, version: str) -> dict[str, float] | None:
    from training.track import version_metrics

    return version_metrics(model, version)


def monitor_run(wh: Warehouse, run_id: str | None = None, profiles=None, horizon_days: int | None = None,
                cards=None, settings: MonitoringConfig | None = None) -> RunDrift:
    """Feature, prediction and attribution drift of a scoring run against each of its models' reference
    profiles, and (with `horizon_days`) the run's estimated and realised performance.

    Args:
        wh: the warehouse holding scoring_runs and customer_scores.
        run_id: a published run (default: the latest successful one).
        profiles: (model, version) -> the profile dict or None; default: the registry's
            `reference_profile.json` of that version (`training.track.version_json`).
        horizon_days: the models' horizon; None leaves performance out.
        cards: (model, version) -> the version's logged out-of-time metrics or None
            (default: the registry's, `training.track.version_metrics`).
        settings: `[monitoring]` (segment_min_rows, segment_columns; default: the defaults).
    """
    settings = settings or MonitoringConfig()
    profiles = profiles or _default_profiles
    cards = cards or _default_cards
    row = chosen_run(wh, run_id)
    frame = run_features(row)
    scores = wh.native_query(f"select * from {sink.SCORES} where run_id = ? order by customer_id", [row["run_id"]])
    result = RunDrift(str(row["run_id"]), int(row["attempt"]), pd.Timestamp(row["as_of"]).date(), len(frame),
                      previous=previous_run(wh, row), imports=latest_imports(wh))
    attributions = _attributions(row)
    for model in sink.MODELS:
        version = row.get(f"{model}_version")
        if sink.is_null(version):
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
        x = scores[sink.SCORE_COLUMN[model]].to_numpy(dtype=float)
        columns = [c for c in (settings.segment_columns or (profile.get("segments") or {})) if c not in RUN_SETTINGS]
        m = ModelDrift(model, version, feature_drift(frame, profile), prediction_drift(x, profile),
                       score_bins=_score_bins(x, profile),
                       segments=segment_drift(frame, profile, settings.segment_min_rows, columns))
        if model in attributions and profile.get("mean_abs_contribution"):
            kept = attributions[model]
            table, m.attribution_shift, m.direction_shift = attribution_drift(
                kept["mean_abs"], profile["mean_abs_contribution"], kept.get("mean"), profile.get("mean_contribution"))
            m.attributions = table.assign(scale=attributions[model].get("scale"))
        result.models.append(m)
    if horizon_days is not None:
        from monitoring.performance import RunRef, run_performance

        run = RunRef.of(row)
        result.performance = run_performance(wh, run, horizon_days, card=card_metrics(run, cards))
    return result


def performance_history(wh: Warehouse, horizon_days: int, skip: str | None = None,
                        cards=None) -> dict[str, pd.DataFrame]:
    """run_id -> run_performance rows of every published run (but `skip`): estimated, realised where elapsed, card."""
    from features.snapshots import data_end
    from monitoring.performance import published_runs, run_performance

    cards = cards or _default_cards
    known: dict[tuple[str, str], dict | None] = {}

    def cached(model: str, version: str) -> dict | None:
        if (model, version) not in known:
            known[model, version] = cards(model, version)
        return known[model, version]

    end = data_end(wh)
    return {run.run_id: run_performance(wh, run, horizon_days, end, card_metrics(run, cached))
            for run in published_runs(wh) if run.run_id != skip}


def card_metrics(run, cards) -> dict[str, dict[str, float]]:
    """model -> the card's out-of-time metrics of the version `run` scored with (models without them left out)."""
    out = {}
    for model, version in run.versions.items():
        metrics = cards(model, version)
        if metrics:
            out[model] = metrics
    return out


def _performance_lines(perf: pd.DataFrame | None, model: str) -> list[str]:
    if perf is None or perf.empty:
        return []
    mine = perf[(perf["model"] == model) & (perf["segment"] == ALL_SEGMENTS)].set_index("source")
    metric, name = ("gini", "Gini") if model == "value" else ("auc", "AUC")
    parts = [f"{label} {mine.loc[source, metric]:.3f}" for source, label in
             (("estimated", "estimated"), ("realised", "realised"), ("card", "card"))
             if source in mine.index and np.isfinite(mine.loc[source, metric])]
    if "realised" not in mine.index:
        parts.append("realised: horizon not elapsed yet" if model != "response"
                     else "realised: no finished campaign in the horizon yet")
    return [f"    {name}: " + ", ".join(parts)] if parts else []


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
        g = m.segments
        if g is not None and len(g):
            lines.append(f"    segments: {g['segment'].nunique()} measured, "
                         f"{len(confined_segments(m, cfg.feature_psi_alert))} shift(s) at the alert line confined "
                         f"to segments; largest: " + ", ".join(
                             f"{r.feature} in {r.segment} {r.psi:.3f}" for r in g.head(3).itertuples()))
        for r in f.head(top).itertuples():
            extra = (f", {r.new_level_share:.1%} new levels" if r.new_level_share > 0 else "") + \
                (" (column absent)" if r.absent else "")
            lines.append(f"    {r.feature:<32} PSI {r.psi:7.3f}  missing {r.missing_share:6.1%} "
                         f"(reference {r.reference_missing_share:.1%}){extra}")
        if m.attributions is not None:
            a = m.attributions
            moved = a.assign(moved=(a["share"] - a["reference_share"]).abs()).sort_values(
                "moved", ascending=False, kind="stable").head(3)
            direction = "" if m.direction_shift is None else f", direction {m.direction_shift:.3f}"
            lines.append(f"    attribution shift: importance {m.attribution_shift:.3f}{direction}; most moved: " + ", ".join(
                f"{r.feature} {r.reference_share:.1%} -> {r.share:.1%} (rank {r.reference_rank} -> {r.rank})"
                for r in moved.itertuples()))
        else:
            lines.append("    attribution: not kept by this run (scored by the Spark engine, or before the scorer "
                         "accumulated it); re-score with the batch scorer to see it")
        lines += _performance_lines(drift.performance, m.model)
    alerts = drift.alerts(cfg)
    lines.append(f"alerts: {len(alerts)}" if alerts else "no alert")
    lines += [f"  ALERT {a}" for a in alerts]
    return lines
