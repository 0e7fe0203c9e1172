"""Writing a monitored run into the monitoring tables (`monitoring.tables`), all in one transaction."""

from __future__ import annotations

import json
from datetime import UTC, datetime

import pandas as pd

from features.load import Warehouse
from monitoring import tables
from monitoring.run import RunDrift, confined_segments
from propensity.config import MonitoringConfig
from serving import sink


def _now() -> datetime:
    return datetime.now(UTC).replace(tzinfo=None)


def drift_frames(drift: RunDrift, cfg: MonitoringConfig, at: datetime | None = None) -> dict[str, pd.DataFrame]:
    """The run's rows of monitoring_features, monitoring_predictions, monitoring_attributions and monitoring_checks."""
    at = at or _now()
    key = {"run_id": drift.run_id, "attempt": drift.attempt, "as_of": drift.as_of}
    features, predictions, attributions = [], [], []
    for m in drift.models:
        model_key = {**key, "model": m.model, "version": m.version}
        alerts = drift.model_alerts(m, cfg)
        if m.features is not None:
            features.append(m.features.assign(**model_key, segment=tables.ALL_SEGMENTS, rows=drift.customers,
                                               reference_rows=None,
                                               alert=m.features["psi"] >= cfg.feature_psi_alert))
        if m.segments is not None and len(m.segments):
            confined = confined_segments(m, cfg.feature_psi_alert)
            keys = set(zip(confined["segment"], confined["feature"]))
            features.append(m.segments.assign(**model_key, absent=False, alert=[
                (a, b) in keys for a, b in zip(m.segments["segment"], m.segments["feature"])]))
        p = m.prediction or {}
        predictions.append({
            **model_key, "rows": p.get("rows"), "psi": p.get("psi"), "mean_score": p.get("mean"),
            "reference_mean_score": p.get("reference_mean"),
            "score_bins": None if m.score_bins is None else json.dumps(m.score_bins),
            "attribution_shift": m.attribution_shift, "direction_shift": m.direction_shift,
            "features_alerted": None if m.features is None else len(
                set(m.features.loc[m.features["psi"] >= cfg.feature_psi_alert, "feature"])
                | set(confined_segments(m, cfg.feature_psi_alert)["feature"])),
            "alert": bool(alerts), "note": m.note, "monitored_at": at})
        if m.attributions is not None:
            attributions.append(m.attributions.assign(**model_key, monitored_at=at))
    checks = [{**key, "check_name": "alert", "model": m.model, "subject": None, "value": None, "message": line,
               "alert": True} for m in drift.models for line in drift.model_alerts(m, cfg)]
    if drift.previous is not None:
        p = drift.previous
        checks += [{**key, "check_name": f"customers_{k}", "model": None, "subject": p["run_id"], "value": float(p[k]),
                    "message": f"{p[k]:,} customers {k} since run {p['run_id']} ({p['as_of']})", "alert": False}
                   for k in ("gained", "lost", "kept")]
    if drift.imports is not None:
        checks += [{**key, "check_name": "rejected_share", "model": None, "subject": r.table_name,
                    "value": float(r.rejected_share), "alert": False,
                    "message": f"{r.rows_rejected:,} of {r.rows_read:,} rows of {r.table_name} rejected by its latest "
                               f"import ({r.mode})"}
                   for r in drift.imports.itertuples()]
    checks = [{**c, "position": i} for i, c in enumerate(checks)]
    if features:
        f = pd.concat(features, ignore_index=True).assign(monitored_at=at)
    else:
        f = pd.DataFrame(columns=tables.columns(tables.FEATURES))
    out = {
        tables.FEATURES: f,
        tables.CHECKS: pd.DataFrame(checks, columns=[c for c in tables.columns(tables.CHECKS) if c != "monitored_at"]
                                    ).assign(monitored_at=at),
        tables.PREDICTIONS: pd.DataFrame(predictions, columns=tables.columns(tables.PREDICTIONS)),
        tables.ATTRIBUTIONS: pd.concat(attributions, ignore_index=True) if attributions else pd.DataFrame(
            columns=tables.columns(tables.ATTRIBUTIONS)),
    }
    return {name: frame[tables.columns(name)] for name, frame in out.items()}


def write(wh: Warehouse, drift: RunDrift, cfg: MonitoringConfig, performance: dict[str, pd.DataFrame]) -> None:
    """Replace the monitored run's drift rows, and each listed run's run_performance rows.

    Args:
        wh: a warehouse opened for writing (DuckDB file or PostgreSQL).
        drift: the monitored run.
        cfg: the alert lines (which rows are alerts).
        performance: run_id -> that run's run_performance rows (`monitoring.performance`).
    """
    db = sink.database(wh)
    try:
        tables.ensure(db)
        at = _now()
        frames = drift_frames(drift, cfg, at)
        with db.transaction():
            for name, frame in frames.items():
                tables.replace_rows(db, name, drift.run_id, frame)
            for run_id, frame in performance.items():
                tables.replace_rows(db, tables.PERFORMANCE, run_id, frame.assign(computed_at=at))
    finally:
        db.close()
