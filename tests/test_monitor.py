"""`propensity monitor` on the sample world: a run at the models' own out-of-time date shows
no drift; PSI recomputed by hand from the run's snapshot and the logged profile; exit codes."""

from __future__ import annotations

import json
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from propensity.config import MonitoringConfig, config_toml
from serving.batch import run_scoring

OOT = date(2025, 4, 1)  # the churn and value models' out-of-time cutoff in this world


@pytest.fixture(scope="module")
def monitored(tmp_path_factory, monitored_champions):
    """The three champions of the sample world, and one scoring run at their out-of-time date."""
    folder = tmp_path_factory.mktemp("monitor")
    cfg = monitored_champions(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        summary = run_scoring(wh, cfg, OOT)
    toml = folder / "propensity.toml"
    toml.write_text(config_toml(cfg))
    yield {"cfg": cfg, "folder": folder, "toml": toml, "summary": summary}


def test_a_run_at_the_reference_date_shows_no_drift(monitored) -> None:
    from monitoring.run import monitor_run

    cfg = monitored["cfg"]
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        drift = monitor_run(wh)
    assert drift.run_id == monitored["summary"].run_id and drift.as_of == OOT
    by = {m.model: m for m in drift.models}
    for name in ("churn", "value"):
        m = by[name]
        assert m.note is None and m.version == "1"
        # the run scores every customer with history at the out-of-time date; the reference is
        # the hash-chosen test half of the same customers: only sampling noise between them
        assert m.features["psi"].max() < 0.05, m.features.head()
        assert not m.features["absent"].any()
        assert m.prediction["psi"] < 0.05
        assert m.prediction["mean"] == pytest.approx(m.prediction["reference_mean"], rel=0.1)
    # the run's setting and the per-run BTYD fits are not data drift (monitoring.run.RUN_SETTINGS)
    assert not {"campaign_kind", "btyd_expected_spend"} & set(by["response"].features["feature"])
    # the response model's reference: everyone with history at its out-of-time campaign's
    # start, 2025-04-15, two weeks after this run (not the contacts its test half holds)
    assert by["response"].features["psi"].max() < 0.1, by["response"].features.head()
    assert drift.alerts(MonitoringConfig()) == []


def test_psi_by_hand_from_the_snapshot_and_the_logged_profile(monitored) -> None:
    """recency_days of the churn model: bins from the logged JSON, counts from the run's Parquet."""
    import mlflow

    from monitoring.run import monitor_run

    from training.track import version_record

    cfg = monitored["cfg"]
    churn_run = version_record("churn", "1")["run_id"]
    path = mlflow.artifacts.download_artifacts(run_id=churn_run, artifact_path="reference_profile.json")
    stored = json.loads(Path(path).read_text())["features"]["recency_days"]
    snapshot = pd.read_parquet(monitored["summary"].snapshot)
    x = snapshot["recency_days"].astype("float64").to_numpy()
    edges = [-np.inf, *stored["edges"], np.inf]
    counts = [((x >= lo) & (x < hi)).sum() for lo, hi in zip(edges[:-1], edges[1:])] + [np.isnan(x).sum()]
    a = np.maximum(np.array(counts) / len(x), 1e-4)
    e = np.maximum(np.array(stored["reference"]), 1e-4)
    expected = float(np.sum((a - e) * np.log(a / e)))
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        drift = monitor_run(wh, monitored["summary"].run_id)
    table = next(m for m in drift.models if m.model == "churn").features.set_index("feature")
    assert table.loc["recency_days", "psi"] == pytest.approx(expected, abs=1e-12)


def test_cli_exit_codes(monitored) -> None:
    from propensity.cli import app

    toml = monitored["toml"]
    base = toml.read_text()
    res = CliRunner().invoke(app, ["monitor", "--config", str(toml)])
    assert res.exit_code == 0, res.output
    assert "no alert" in res.output and f"as of {OOT}" in res.output and "churn v1: scores PSI" in res.output
    # thresholds a scheduler would set: anything above them is an alert, exit 3
    toml.write_text(base + "\n[monitoring]\nfeature_psi_alert = 1e-9\nprediction_psi_alert = 1e-9\n")
    try:
        res = CliRunner().invoke(app, ["monitor", "--config", str(toml)])
        assert res.exit_code == 3, res.output
        assert "ALERT churn v1: feature " in res.output and "ALERT value v1: scores PSI" in res.output
    finally:
        toml.write_text(base)
    res = CliRunner().invoke(app, ["monitor", "--run", "no-such-run", "--config", str(toml)])
    assert res.exit_code == 1 and "no scoring run 'no-such-run'" in res.output and "Traceback" not in res.output


def test_a_run_whose_snapshot_is_gone_is_one_line(monitored, tmp_path) -> None:
    from propensity.cli import app

    snapshot = Path(monitored["summary"].snapshot)
    kept = tmp_path / "kept.parquet"
    snapshot.rename(kept)
    try:
        res = CliRunner().invoke(app, ["monitor", "--config", str(monitored["toml"])])
    finally:
        kept.rename(snapshot)
    assert res.exit_code == 1
    errors = [line for line in res.output.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "feature snapshot" in errors[0] and "is gone" in errors[0]
    assert f"propensity score --as-of {OOT}" in errors[0]


def test_tenure_bins_age_with_the_run_date() -> None:
    from monitoring.run import aged

    profile = {"as_of": "2025-01-01", "features": {
        "tenure_days": {"kind": "numeric", "edges": [10.0, 20.0], "levels": [], "other_levels": [], "reference": [0.3, 0.3, 0.4, 0.0]},
        "recency_days": {"kind": "numeric", "edges": [5.0], "levels": [], "other_levels": [], "reference": [0.5, 0.5, 0.0]}}}
    later = aged(profile, date(2025, 1, 15))
    assert later["features"]["tenure_days"]["edges"] == [24.0, 34.0]  # 14 days on
    assert later["features"]["recency_days"]["edges"] == [5.0]  # recency is behaviour, not age
    assert profile["features"]["tenure_days"]["edges"] == [10.0, 20.0]  # the stored profile is left alone
    undated = {**profile, "as_of": None}  # a profile without a date: nothing to age from
    assert aged(undated, date(2025, 1, 15)) is undated


def test_customers_gained_and_lost_and_rejected_imports(monitored) -> None:
    """A second run 61 days on: the customers gained and lost, counted independently."""
    from monitoring.run import monitor_run

    cfg = monitored["cfg"]
    first = monitored["summary"].run_id
    with Warehouse(cfg.warehouse.url) as wh:
        second = run_scoring(wh, cfg, date(2025, 6, 1)).run_id
    try:
        with Warehouse(cfg.warehouse.url, read_only=True) as wh:
            drift = monitor_run(wh)
            ids = {r: set(wh.query("select customer_id from customer_scores where run_id = ?", [r])["customer_id"])
                   for r in (first, second)}
            first_alone = monitor_run(wh, first)
        assert drift.run_id == second and drift.previous["run_id"] == first
        assert drift.previous["gained"] == len(ids[second] - ids[first]) > 0  # new customers since April
        assert drift.previous["lost"] == len(ids[first] - ids[second])
        assert drift.previous["kept"] == len(ids[first] & ids[second])
        assert first_alone.previous is None  # the first run has nothing before it
        imports = drift.imports.set_index("table_name")
        assert imports.loc["transactions", "rows_rejected"] == 0 and imports.loc["transactions", "rejected_share"] == 0.0
        assert imports.loc["transactions", "rows_read"] == imports.loc["transactions", "rows_loaded"] > 0
    finally:  # the other tests read the first run as the latest
        with Warehouse(cfg.warehouse.url) as wh:
            for table in ("score_reasons", "customer_segments", "customer_scores", "scoring_runs"):
                wh.duck().execute(f"delete from {table} where run_id = ?", [second])
