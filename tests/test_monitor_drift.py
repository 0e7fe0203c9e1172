"""The monitor against known shifts: models trained on the sample world, then the world
changes after their out-of-time date (`data synth --drift`, rows before the start
untouched), and the same world without a change as the control."""

from __future__ import annotations

from datetime import date

import pytest

from features.load import Warehouse
from features.synth import parse_drift
from serving.batch import run_scoring

START = date(2025, 4, 1)  # the drifts' start: the models' out-of-time date, so the reference is clean
LAST = date(2025, 6, 29)  # the last day of the data
# Each drift in a world of its own, so what one moves does not hide another.
DRIFTS = {
    # the price-oriented customers buy a quarter as often and pay twice as much per line
    "price-rise": "price-rise:factor=0.25,rise=1.0",
    # 80 % of order lines move into electronics (the default)
    "category-mix": "category-mix",
    # a revenue feed that delivers 0 from the start: recent orders stop counting as purchases
    "zero-feed": "zero-feed:column=transactions.amount",
}


# Features that follow from the same rows as a drift's own (spend when the price changes, ...).
RELATED = {"price-rise": {"spend_30d", "spend_90d", "spend_trend"}, "category-mix": {"spend_30d", "spend_90d",
           "monetary_avg_365d"}, "zero-feed": set()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory, monitored_champions):
    """The champions of the world without drift; two runs 30 days apart on that world."""
    folder = tmp_path_factory.mktemp("monitor-drift")
    cfg = monitored_champions(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        runs = [run_scoring(wh, cfg, d, any_date=True).run_id for d in (date(2025, 5, 30), LAST)]
    return {"cfg": cfg, "folder": folder, "runs": runs, "project": monitored_champions}


def monitored(cfg, run_id=None):
    from monitoring.run import monitor_run

    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        return monitor_run(wh, run_id, horizon_days=cfg.features.horizon_days, settings=cfg.monitoring)


def test_no_drift_two_runs_30_days_apart_raise_at_most_one_feature_alert(trained) -> None:
    cfg = trained["cfg"]
    line = cfg.monitoring.feature_psi_alert
    false_alerts, measured = [], 0
    for run_id in trained["runs"]:
        drift = monitored(cfg, run_id)
        for m in drift.models:
            measured += len(m.features) + len(m.segments)
            false_alerts += [a for a in drift.model_alerts(m, cfg.monitoring) if ": feature " in a]
            print(run_id, m.model, "max PSI", round(m.features["psi"].max(), 3), "in segments",
                  round(m.segments["psi"].max(), 3), "attribution shift", round(m.attribution_shift, 3),
                  "direction", round(m.direction_shift, 3))
            assert m.attribution_shift < cfg.monitoring.attribution_shift_alert
            assert m.direction_shift < cfg.monitoring.direction_shift_alert
    print(f"{len(false_alerts)} false feature alerts of {measured} feature PSIs (population and segments) at {line}")
    assert len(false_alerts) <= 1, false_alerts


@pytest.mark.parametrize("kind", list(DRIFTS))
def test_an_injected_shift_is_flagged(trained, tmp_path, kind) -> None:
    drift = parse_drift(DRIFTS[kind], START)
    cfg = trained["project"](tmp_path, (drift,))
    with Warehouse(cfg.warehouse.url) as wh:
        expected = set(wh.query("select expected_features from synth_drift")["expected_features"].iloc[0].split(","))
        run_scoring(wh, cfg, LAST, any_date=True)
    result = monitored(cfg)
    flagged, reads, shifts = set(), set(), {}
    for m in result.models:
        alerts = result.model_alerts(m, cfg.monitoring)
        mine = {a.split(": feature ")[1].split(" ")[0] for a in alerts if ": feature " in a}
        flagged |= mine
        reads |= set(m.features["feature"])
        shifts[m.model] = m.attribution_shift
        print(kind, m.model, "attribution shift", round(m.attribution_shift, 3), "direction", round(m.direction_shift, 3),
              "flagged", sorted(mine))
    # every feature the drift moves that a model reads raises an alert
    assert expected & reads and expected & reads <= flagged, sorted((expected & reads) - flagged)
    # and nothing unrelated does: an alert names a moved feature, or one computed from the same rows
    assert flagged <= expected | RELATED[kind], sorted(flagged - expected - RELATED[kind])
    lines = result.alerts(cfg.monitoring)
    if kind == "zero-feed":  # recent purchases vanish: every model now explains its scores differently
        for model in ("churn", "response", "value"):
            assert any(a.startswith(f"{model} v1: attribution shift (direction)") for a in lines), (model, lines)
