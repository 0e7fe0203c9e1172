"""`propensity monitor` on past runs of the sample world: the attributions the scorer kept,
realised performance recomputed independently from the raw tables, the confidence-based
estimate against it, the four monitoring tables, and the same rows on PostgreSQL."""

from __future__ import annotations

import json
from datetime import date, timedelta

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import average_precision_score, roc_auc_score
from typer.testing import CliRunner

from features.load import Warehouse
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from monitoring import tables
from propensity.config import config_toml
from serving.batch import run_scoring
from tests.conftest import MONITORED_WORLD

WORLD = SynthConfig(**MONITORED_WORLD)  # the world of the monitored_champions fixture
HORIZON = 90
# 2025-02-20: the discount campaign that starts 2025-02-25 and ends 2025-03-18 falls in its
# horizon (the runs score the response model for its first kind, discount); 2025-04-01: the
# churn and value models' out-of-time date; both horizons end before the data (2025-06-30).
EARLY, OOT = date(2025, 2, 20), date(2025, 4, 1)


def monitor_cli(toml) -> object:
    from propensity.cli import app

    return CliRunner().invoke(app, ["monitor", "--config", str(toml)])


@pytest.fixture(scope="module")
def world(tmp_path_factory, monitored_champions):
    """The sample world's champions, two runs (the early one scored 700 customers a chunk), monitored once."""
    folder = tmp_path_factory.mktemp("monitor-perf")
    cfg = monitored_champions(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        runs = {EARLY: run_scoring(wh, cfg, EARLY, chunk_size=700).run_id, OOT: run_scoring(wh, cfg, OOT).run_id}
    toml = folder / "propensity.toml"
    toml.write_text(config_toml(cfg))
    res = monitor_cli(toml)
    assert res.exit_code == 0, res.output
    return {"cfg": cfg, "folder": folder, "toml": toml, "runs": runs, "output": res.output}


def performance(cfg, run_id: str, model: str, source: str, segment: str = "all") -> pd.Series:
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        rows = wh.query("select * from run_performance where run_id = ? and model = ? and source = ? and segment = ?",
                        [run_id, model, source, segment])
    assert len(rows) == 1, (run_id, model, source, segment, rows)
    return rows.iloc[0]


def gini_norm(y: np.ndarray, pred: np.ndarray) -> float:
    """Normalised Gini written out: the mean gap between the Lorenz curve (customers taken by
    prediction, highest first) and the diagonal, over the same for the perfect order. Customers
    with equal predictions are taken together: inside the tie the curve rises evenly."""
    def area(score: np.ndarray) -> float:
        frame = pd.DataFrame({"y": y, "s": score}).groupby("s", sort=True)["y"].agg(["sum", "size"]).iloc[::-1]
        curve, before = [], 0.0
        for total, size in zip(frame["sum"], frame["size"]):
            curve += [before + total * k / size for k in range(1, size + 1)]
            before += total
        return float(np.mean(np.array(curve) / y.sum() - np.arange(1, y.size + 1) / y.size))
    return area(pred) / area(y)


def raw_outcomes(wh: Warehouse, run_id: str, as_of: date) -> pd.DataFrame:
    """The run's scores with churn and value labels recomputed in pandas from the transactions."""
    lines = wh.query("select customer_id, order_id, ts, amount from transactions")
    start = pd.Timestamp(as_of)
    window = lines[(lines["ts"] >= start) & (lines["ts"] < start + pd.Timedelta(days=HORIZON))]
    orders = window.groupby(["customer_id", "order_id"])["amount"].sum()
    per = pd.DataFrame({"value": orders.groupby(level=0).sum(),
                        "purchases": (orders > 0).groupby(level=0).sum()})
    scores = wh.query("select s.customer_id, churn_risk, predicted_value, rfmw_segment from customer_scores s "
                      "join customer_segments g using (run_id, customer_id) where run_id = ?", [run_id])
    out = scores.merge(per, left_on="customer_id", right_index=True, how="left")
    out["churned"] = (out["purchases"].fillna(0) == 0).astype(int)
    out["value"] = out["value"].fillna(0.0)
    return out


def test_the_attributions_the_scorer_kept_equal_a_direct_shap_pass(world) -> None:
    """Mean |contribution| per feature accumulated over 700-customer chunks and parallel pieces
    equals one TreeSHAP pass over the run's whole snapshot."""
    from monitoring.run import run_features
    from serving import sink
    from serving.registry import champions
    from training.explain import contributions
    from training.feature_sets import with_campaign_kind

    cfg = world["cfg"]
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        row = sink.run_row(wh, world["runs"][EARLY])
    kept = json.loads(row["attributions"])
    frame = run_features(row).sort_values("customer_id").reset_index(drop=True)
    for name, (model, _) in champions(cfg).items():
        c = contributions(model, with_campaign_kind(model, frame, row["campaign_kind"]))
        direct = c.values.abs().mean()
        assert kept[name]["rows"] == len(frame) == row["customers"]
        assert kept[name]["scale"] == c.scale
        assert set(kept[name]["mean_abs"]) == set(direct.index)
        for feature, value in direct.items():
            assert kept[name]["mean_abs"][feature] == pytest.approx(value, rel=1e-9, abs=1e-12), (name, feature)


@pytest.mark.parametrize("as_of", [EARLY, OOT])
def test_realised_churn_and_value_equal_an_independent_recomputation(world, as_of) -> None:
    cfg, run_id = world["cfg"], world["runs"][as_of]
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        raw = raw_outcomes(wh, run_id, as_of)
    churn = performance(cfg, run_id, "churn", "realised")
    assert churn["customers"] == len(raw) and churn["positives"] == raw["churned"].sum()
    assert churn["horizon_end"] == pd.Timestamp(as_of + timedelta(days=HORIZON))
    assert abs(churn["auc"] - roc_auc_score(raw["churned"], raw["churn_risk"])) < 1e-9
    assert abs(churn["pr_auc"] - average_precision_score(raw["churned"], raw["churn_risk"])) < 1e-9
    value = performance(cfg, run_id, "value", "realised")
    assert value["mean_actual"] == pytest.approx(raw["value"].mean(), rel=1e-9)
    assert abs(value["gini"] - gini_norm(raw["value"].to_numpy(float), raw["predicted_value"].to_numpy(float))) < 1e-9
    # one segment, the same way
    seg = raw[raw["rfmw_segment"] == "champions"]
    part = performance(cfg, run_id, "churn", "realised", "champions")
    assert part["customers"] == len(seg) >= 50
    assert abs(part["auc"] - roc_auc_score(seg["churned"], seg["churn_risk"])) < 1e-9


def test_realised_response_on_the_finished_campaign_in_the_horizon(world) -> None:
    """The early run's response scores against the discount campaign's treatment contacts."""
    cfg, run_id = world["cfg"], world["runs"][EARLY]
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        campaigns = wh.query('select campaign_id, kind, start, "end" from campaigns')
        contacts = wh.query("select campaign_id, customer_id, \"group\", responded from contacts")
        scores = wh.query("select customer_id, response_prob from customer_scores where run_id = ?", [run_id])
    inside = campaigns[(campaigns["kind"] == "discount") & (campaigns["start"] >= pd.Timestamp(EARLY))
                       & (campaigns["start"] < pd.Timestamp(EARLY + timedelta(days=HORIZON)))]
    assert list(inside["campaign_id"]) == ["CMP006"]
    treated = contacts[(contacts["campaign_id"] == "CMP006") & (contacts["group"] == "treatment")]
    y = treated.groupby("customer_id")["responded"].max().astype(int)
    joined = scores.merge(y.rename("y"), left_on="customer_id", right_index=True)
    row = performance(cfg, run_id, "response", "realised")
    assert row["customers"] == len(joined) > 300 and row["positives"] == joined["y"].sum()
    assert abs(row["auc"] - roc_auc_score(joined["y"], joined["response_prob"])) < 1e-9
    # the out-of-time run's horizon holds only an email campaign: nothing realised for its discount scores
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        later = wh.query("select count(*) as n from run_performance where run_id = ? and model = 'response' "
                         "and source = 'realised'", [world["runs"][OOT]])
    assert later["n"].iloc[0] == 0


def test_estimated_auc_is_the_expected_auc_and_near_the_realised(world) -> None:
    """CBPE: the estimate equals the AUC of each customer counted positive with weight p and
    negative with weight 1 - p (sklearn), and lands within 0.03 of the realised AUC here."""
    cfg = world["cfg"]
    for as_of, run_id in world["runs"].items():
        with Warehouse(cfg.warehouse.url, read_only=True) as wh:
            p = wh.query("select churn_risk from customer_scores where run_id = ?", [run_id])["churn_risk"].to_numpy()
        est = performance(cfg, run_id, "churn", "estimated")
        weighted = roc_auc_score(np.r_[np.ones(p.size), np.zeros(p.size)], np.r_[p, p], sample_weight=np.r_[p, 1 - p])
        assert est["auc"] == pytest.approx(weighted, abs=1e-12)
        realised = performance(cfg, run_id, "churn", "realised")
        assert abs(est["auc"] - realised["auc"]) < 0.03, (as_of, est["auc"], realised["auc"])
        # beside the model card's out-of-time AUC
        card = performance(cfg, run_id, "churn", "card")
        assert 0.8 < card["auc"] <= 1 and card["gini"] == pytest.approx(2 * card["auc"] - 1)


def test_monitor_prints_performance_and_writes_each_table_once(world) -> None:
    cfg, toml = world["cfg"], world["toml"]
    out = world["output"]
    assert "AUC: estimated 0." in out and "realised 0." in out and "card 0." in out and "attribution shift" in out
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        before = {t: wh.query(f"select count(*) as n from {t}")["n"].iloc[0] for t in tables.TABLES}
    res = monitor_cli(toml)  # again: rows replaced, not added
    assert res.exit_code == 0, res.output
    with Warehouse(cfg.warehouse.url, read_only=True) as wh:
        after = {t: wh.query(f"select count(*) as n from {t}")["n"].iloc[0] for t in tables.TABLES}
        predictions = wh.query("select * from monitoring_predictions order by model")
        attributions = wh.query("select * from monitoring_attributions where model = 'churn' order by rank")
        runs = wh.query("select distinct run_id from run_performance")
    assert after == before
    assert list(predictions["model"]) == ["churn", "response", "value"]
    assert set(predictions["run_id"]) == {world["runs"][OOT]} and not predictions["alert"].any()
    assert (predictions["attribution_shift"] < 0.1).all()
    bins = json.loads(predictions["score_bins"].iloc[0])
    assert len(bins["labels"]) == len(bins["reference"]) == len(bins["current"]) and sum(bins["current"]) == pytest.approx(1)
    assert attributions["share"].sum() == pytest.approx(1) and attributions["rank"].iloc[0] == 1
    assert set(runs["run_id"]) == set(world["runs"].values())
    report = world["folder"] / "out" / "monitoring" / f"{world['runs'][OOT]}.html"
    assert report.is_file() and "<svg" in report.read_text()


NUMBERS = {c for cols in tables.COLUMNS.values() for c, t in cols
           if t.split()[0] in ("double", "bigint", "integer")}


@pytest.mark.postgres
def test_postgres_gets_the_same_monitoring_rows(world, postgres_server) -> None:
    """The same world, models and runs on a PostgreSQL warehouse: the four tables hold the same rows."""
    cfg = world["cfg"]
    url = postgres_server("monitoring")
    pg_cfg = cfg.model_copy(update={
        "warehouse": cfg.warehouse.model_copy(update={"url": url}),
        "serving": cfg.serving.model_copy(update={"snapshot_dir": str(world["folder"] / "pg-scoring")}),
        "features": cfg.features.model_copy(update={"output_dir": str(world["folder"] / "pg-out")})})
    with Warehouse(url) as wh:
        load_sample_world(wh, WORLD)
        for as_of in (EARLY, OOT):
            assert run_scoring(wh, pg_cfg, as_of, chunk_size=700 if as_of == EARLY else None).run_id == world["runs"][as_of]
    toml = world["folder"] / "pg.toml"
    toml.write_text(config_toml(pg_cfg))
    res = monitor_cli(toml)
    assert res.exit_code == 0, res.output
    stamps = {"monitored_at", "computed_at"}
    for name in tables.TABLES:
        cols = [c for c in tables.columns(name) if c not in stamps]
        keys = [c for c in ("run_id", "model", "source", "segment", "feature", "position") if c in cols]
        with Warehouse(cfg.warehouse.url, read_only=True) as duck:
            a = duck.native_query(f"select * from {name}")[cols].sort_values(keys).reset_index(drop=True)
        with Warehouse(url, read_only=True) as pg:
            b = pg.native_query(f"select * from {name}")[cols].sort_values(keys).reset_index(drop=True)
        assert len(a) == len(b) > 0, name
        for c in cols:
            x, y = a[c], b[c]
            if c in ("as_of", "horizon_end"):
                assert list(pd.to_datetime(x)) == list(pd.to_datetime(y)), f"{name}.{c}"
            elif c in NUMBERS:  # PostgreSQL hands a bigint column with nulls back as floats
                np.testing.assert_allclose(pd.to_numeric(x).to_numpy(float), pd.to_numeric(y).to_numpy(float),
                                           rtol=1e-12, atol=1e-12, equal_nan=True, err_msg=f"{name}.{c}")
            else:
                assert [None if pd.isna(v) else str(v) for v in x] == [None if pd.isna(v) else str(v) for v in y], \
                    f"{name}.{c}"
