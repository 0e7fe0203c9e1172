"""Batch scorer on the sample world: one row per customer, exact scores, atomic and idempotent runs, the lock."""

from __future__ import annotations

import json
import subprocess
from datetime import date

import numpy as np
import pandas as pd
import pytest

from features.btyd import add_btyd_features
from features.load import Warehouse
from features.snapshots import SEGMENT_COLUMNS, build_features
from features.synth import SynthConfig
from features.synth_import import load_sample_world
from propensity.config import project_in
from serving import sink
from serving.batch import RunSummary, ScoringError, make_run_id, run_scoring
from serving.score import expected_profit

CUSTOMERS = 3000
AS_OF = date(2025, 6, 1)
LATER = date(2025, 6, 15)
K = 5
VIEWS = ("current_customer_scores", "current_customer_segments", "current_score_reasons")
KEYS = {"current_customer_scores": ["customer_id"], "current_customer_segments": ["customer_id"],
        "current_score_reasons": ["customer_id", "model", "rank"]}


@pytest.fixture(scope="module")
def scored(tmp_path_factory):
    """A sample world, three champions in a temp MLflow store, and one scoring run as of AS_OF."""
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("score")
    cfg = project_in(folder)
    wh = Warehouse(cfg.warehouse.url)
    load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=1))
    train_and_log(["churn", "response", "value"], wh, cfg)
    promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
    messages: list[str] = []
    counts: list[tuple[int, int]] = []
    summary = run_scoring(wh, cfg, AS_OF, progress=messages.append, chunk_size=1000,
                          counter=lambda done, total: counts.append((done, total)))
    yield {"cfg": cfg, "wh": wh, "summary": summary, "messages": messages, "counts": counts}
    wh.close()


def _view(wh: Warehouse, view: str) -> pd.DataFrame:
    return wh.query(f"select * from {view} order by {', '.join(KEYS[view])}")


def _snapshot(wh: Warehouse) -> dict[str, pd.DataFrame]:
    return {v: _view(wh, v) for v in VIEWS}


def _champions(cfg):
    from serving.registry import champions

    return champions(cfg)


def test_one_row_per_customer_with_history(scored) -> None:
    wh, s = scored["wh"], scored["summary"]
    with_history = wh.query("select count(distinct customer_id) as n from transactions where ts < ?",
                            [AS_OF])["n"][0]
    all_customers = wh.query("select count(distinct customer_id) as n from transactions")["n"][0]
    assert with_history < all_customers  # the cutoff matters in this world
    scores = _view(wh, "current_customer_scores")
    segments = _view(wh, "current_customer_segments")
    assert len(scores) == len(segments) == with_history == s.customers
    assert scores["customer_id"].is_unique and segments["customer_id"].is_unique
    assert set(scores["customer_id"]) == set(segments["customer_id"])
    assert (scores["run_id"] == s.run_id).all() and (pd.to_datetime(scores["as_of"]) == pd.Timestamp(AS_OF)).all()
    reasons = _view(wh, "current_score_reasons")
    assert len(reasons) == with_history * 3 * K
    per = reasons.groupby(["customer_id", "model"])["rank"].agg(["count", "min", "max", "nunique"])
    assert len(per) == with_history * 3
    assert (per["count"] == K).all() and (per["min"] == 1).all() and (per["max"] == K).all()
    assert (per["nunique"] == K).all()
    # ranked by |contribution|, strongest first
    mags = reasons["contribution"].abs().to_numpy().reshape(-1, K)
    assert (np.diff(mags, axis=1) <= 1e-12).all()
    assert s.rows == {"customer_scores": with_history, "customer_segments": with_history,
                      "score_reasons": with_history * 3 * K}
    run = wh.query("select * from scoring_runs")
    assert len(run) == 1 and run["status"][0] == "succeeded"
    assert run["customers"][0] == with_history and run["reason_rows"][0] == with_history * 15
    assert run["data_fingerprint"][0] == s.data_fingerprint and len(s.data_fingerprint) == 16


def test_scores_equal_the_champions_own_predictions(scored) -> None:
    cfg, wh, s = scored["cfg"], scored["wh"], scored["summary"]
    models = _champions(cfg)
    assert s.versions == {k: v for k, (_, v) in models.items()}
    kind = models["response"][0].categories_["campaign_kind"][0]
    assert s.campaign_kind == kind
    assert wh.query("select campaign_kind from scoring_runs")["campaign_kind"][0] == kind
    assert s.run_id == make_run_id(AS_OF, s.versions, kind)
    features = build_features(wh, AS_OF, cfg.features, with_labels=False)
    # BTYD: fitted once on the run's whole snapshot (3 chunks of 1,000) and recorded with the
    # run; a fit on the whole frame at once gives the same parameters.
    params = json.loads(wh.query("select btyd_params from scoring_runs")["btyd_params"][0])
    assert params["horizon_days"] == cfg.features.horizon_days and params["n_bgnbd"] == len(features)
    _, whole = add_btyd_features(features, cfg.features.horizon_days,
                                 window_days=cfg.features.frequency_window_days)
    assert {k: params[k] for k in whole} == pytest.approx(whole, rel=1e-12)
    features, _ = add_btyd_features(features, params["horizon_days"], params)
    some = features.iloc[[0, 17, 1234, len(features) - 1]].reset_index(drop=True)
    scores = _view(wh, "current_customer_scores").set_index("customer_id").loc[some["customer_id"]]
    churn, response, value = (models[k][0] for k in ("churn", "response", "value"))
    assert {"btyd_p_alive", "btyd_expected_purchases"} <= set(churn.numeric) & set(value.numeric)
    np.testing.assert_allclose(scores["churn_risk"], churn.predict(some), rtol=1e-12)
    np.testing.assert_allclose(scores["response_prob"], response.predict(some.assign(campaign_kind=kind)),
                               rtol=1e-12)
    np.testing.assert_allclose(scores["predicted_value"], value.predict(some), rtol=1e-12)
    segments = _view(wh, "current_customer_segments").set_index("customer_id").loc[some["customer_id"]]
    for c in SEGMENT_COLUMNS:
        assert segments[c].tolist() == some[c].tolist(), c


def test_expected_profit_by_hand(scored) -> None:
    """P(response) x value per response x margin - cost; value per response = AOV x k (serving.response_value)."""
    wh, cfg = scored["wh"], scored["cfg"]
    scores = _view(wh, "current_customer_scores").set_index("customer_id")
    row = scores.iloc[5]
    by_hand = row["response_prob"] * row["response_value"] * 0.3 - 1.0
    assert row["expected_profit"] == pytest.approx(by_hand, rel=1e-12)
    assert expected_profit(np.array([0.1]), np.array([50.0]), 0.3, 1.0)[0] == pytest.approx(0.5)
    # k from the sample world's response revenue (contacts.revenue), recorded with the run
    run = wh.query("select * from scoring_runs where status = 'succeeded'").iloc[0]
    assert run["response_value_source"].startswith("k = ") and "contacts.revenue" in run["response_value_source"]
    k = float(run["response_value_k"])
    assert 0.3 < k < 10
    aov = build_features(wh, AS_OF, cfg.features, with_labels=False).set_index("customer_id")["monetary_avg_365d"]
    fallback = aov.median()
    assert aov.isna().any()  # customers without a purchase in 365 days get the population median
    want = aov.fillna(fallback).loc[scores.index] * k
    np.testing.assert_allclose(scores["response_value"], want, rtol=1e-9)


@pytest.mark.parametrize("score, decile, tier", [
    ("churn_risk", "churn_decile", "churn_tier"),
    ("response_prob", "response_decile", "response_tier"),
    ("predicted_value", "value_decile", "predicted_value_tier"),
    ("expected_profit", "profit_decile", "profit_tier"),
])
def test_deciles_and_tiers(scored, score: str, decile: str, tier: str) -> None:
    scores = _view(scored["wh"], "current_customer_scores")
    n = len(scores)
    counts = scores[decile].value_counts().sort_index()
    assert counts.index.tolist() == list(range(1, 11))
    assert counts.min() >= n // 10 and counts.max() <= n // 10 + 1
    by = scores.groupby(decile)[score].agg(["min", "max"])
    assert (by["max"].to_numpy()[:-1] <= by["min"].to_numpy()[1:]).all()  # 10 = highest
    expected = np.where(scores[decile] >= 9, "high", np.where(scores[decile] >= 6, "medium", "low"))
    assert (scores[tier].to_numpy() == expected).all()


def test_progress_and_report(scored) -> None:
    s, messages = scored["summary"], scored["messages"]
    assert isinstance(s, RunSummary) and s.status == "succeeded"
    assert messages[0] == f"features as of {AS_OF} -> {s.snapshot}"
    chunks = [m for m in messages if m.startswith("scored and explained")]
    assert len(chunks) == -(-s.customers // 2048)  # chunks are whole DuckDB vectors of 2,048 rows
    assert chunks[-1].startswith(f"scored and explained {s.customers:,} / {s.customers:,}")
    counts = scored["counts"]  # the progress bar's feed: from 0 to every customer, never backwards
    assert counts[0] == (0, s.customers) and counts[-1] == (s.customers, s.customers)
    assert all(b[0] > a[0] for a, b in zip(counts, counts[1:])) and len(counts) == len(chunks) + 1
    text = s.report()
    assert s.run_id in text and f"customers: {s.customers:,}" in text and "score_reasons" in text
    assert set(s.timings) == {"load models", "features", "score + explain", "rank", "publish"}
    # the work inside "score + explain", by part (one thread here: it cannot exceed the stage's time)
    assert set(s.work) == {"score", "explain", "reasons", "stage"} and min(s.work.values()) > 0
    assert sum(s.work.values()) <= s.timings["score + explain"]
    assert "seconds of work over the scoring threads: score " in text


def test_rerun_replaces_not_duplicates(scored, monkeypatch) -> None:
    cfg, wh = scored["cfg"], scored["wh"]
    before = _snapshot(wh)
    totals = {t: wh.query(f"select count(*) as n from {t}")["n"][0] for t in sink.PUBLISHED}
    # other chunking, pieces of 700 customers scored on two threads at once: same result
    monkeypatch.setattr("serving.batch.PIECE", 700)
    two = cfg.model_copy(update={"lightgbm": cfg.lightgbm.model_copy(update={"num_threads": 2})})
    again = run_scoring(wh, two, AS_OF, chunk_size=5000)
    assert again.run_id == scored["summary"].run_id and again.attempt == 2
    assert again.data_fingerprint == scored["summary"].data_fingerprint
    after = _snapshot(wh)
    for v in VIEWS:
        # features repeat bit for bit, so the re-run's rows are identical
        pd.testing.assert_frame_equal(before[v], after[v], check_exact=True)
    assert {t: wh.query(f"select count(*) as n from {t}")["n"][0] for t in sink.PUBLISHED} == totals
    runs = wh.query("select attempt, status from scoring_runs order by attempt")
    assert runs.values.tolist() == [[1, "superseded"], [2, "succeeded"]]


@pytest.mark.parametrize("as_of", [LATER, AS_OF], ids=["new-run", "rerun-of-published"])
def test_failure_while_publishing_leaves_published_results(scored, monkeypatch, as_of: date) -> None:
    cfg, wh = scored["cfg"], scored["wh"]
    before = _snapshot(wh)
    real = sink.publish_table

    def fail_on_segments(db, name, run_id):
        real(db, name, run_id)  # scores are already replaced inside the transaction by now
        if name == sink.SEGMENTS:
            raise OSError("disk full (injected)")

    monkeypatch.setattr(sink, "publish_table", fail_on_segments)
    with pytest.raises(OSError, match="injected"):
        run_scoring(wh, cfg, as_of, chunk_size=1000)
    after = _snapshot(wh)
    for v in VIEWS:
        pd.testing.assert_frame_equal(before[v], after[v])
        assert pd.util.hash_pandas_object(before[v]).sum() == pd.util.hash_pandas_object(after[v]).sum()
    failed = wh.query("select * from scoring_runs where as_of = ? order by started_at desc limit 1", [as_of])
    assert failed["status"][0] == "failed" and failed["error"][0] == "OSError: disk full (injected)"
    assert failed["finished_at"].notna()[0]
    assert wh.query("select count(*) as n from scoring_lock")["n"][0] == 0  # released
    assert not any(t.startswith("stage_") for t in wh.tables())
    if as_of == LATER:  # nothing of the failed run was published
        assert wh.query("select count(*) as n from customer_scores where as_of = ?", [LATER])["n"][0] == 0


def test_second_run_is_refused_while_the_lock_is_held(scored) -> None:
    cfg, wh = scored["cfg"], scored["wh"]
    before = _snapshot(wh)
    runs_before = len(wh.query("select * from scoring_runs"))
    db = sink.database(wh)
    sink.claim_lock(db, "other-run")
    try:
        with pytest.raises(ScoringError, match=r"another scoring run \(other-run, pid \d+ on .*\) holds the lock") as e:
            run_scoring(wh, cfg, AS_OF)
        assert "\n" not in str(e.value)
        # a second claim from anywhere is refused the same way
        with pytest.raises(ScoringError, match="holds the lock"):
            sink.claim_lock(db, "third-run")
    finally:
        sink.release_lock(db, "other-run")
    assert len(wh.query("select * from scoring_runs")) == runs_before  # the refused run left no row
    for v in VIEWS:
        pd.testing.assert_frame_equal(before[v], _view(wh, v))


def test_lock_of_a_dead_process_is_taken_over(scored) -> None:
    wh = scored["wh"]
    proc = subprocess.Popen(["true"])
    proc.wait()
    import socket

    with wh.transaction():
        wh.duck().execute("insert into scoring_lock values ('scoring', 'crashed-run', now(), ?, ?)",
                          [proc.pid, socket.gethostname()])
    db = sink.database(wh)
    sink.claim_lock(db, "new-run")
    held = wh.query("select run_id from scoring_lock")["run_id"].tolist()
    sink.release_lock(db, "new-run")
    assert held == ["new-run"]


def test_no_customers_before_as_of_is_a_clear_error(scored) -> None:
    from features.snapshots import CutoffError

    # refused before anything is written ...
    with pytest.raises(CutoffError, match=r"--as-of 2000-01-01 is not after the first transaction \(2023-01-01\)"):
        run_scoring(scored["wh"], scored["cfg"], date(2000, 1, 1))
    assert scored["wh"].query("select count(*) n from scoring_runs where as_of = '2000-01-01'")["n"][0] == 0
    # ... and, past that check, the run fails cleanly and says why
    with pytest.raises(ScoringError, match="no customer has transactions before 2000-01-01"):
        run_scoring(scored["wh"], scored["cfg"], date(2000, 1, 1), any_date=True)
    row = scored["wh"].query("select status from scoring_runs where as_of = '2000-01-01'")
    assert row["status"].tolist() == ["failed"]


def test_explain_from_the_run_reproduces_stored_reasons_exactly(scored) -> None:
    from serving.lineage import explain_run_customer

    cfg, wh = scored["cfg"], scored["wh"]
    run_id = wh.query("select run_id from current_customer_scores limit 1")["run_id"][0]
    ids = wh.query("select customer_id from current_customer_scores order by customer_id")["customer_id"]
    for customer in ids.iloc[[0, 400, len(ids) - 1]]:
        result = explain_run_customer(wh, cfg, run_id, customer)
        assert result.mismatches == 0 and len(result.stored) == 3 * K
        stored = result.stored.sort_values(["model", "rank"])
        again = result.recomputed.sort_values(["model", "rank"])
        assert (stored["contribution"].to_numpy() == again["contribution"].to_numpy()).all()  # bit for bit
        assert stored["text"].tolist() == again["text"].tolist()
        scores = wh.query("select * from current_customer_scores where customer_id = ?", [customer]).iloc[0]
        by_model = {e.model: e.score for e in result.explanations}
        assert by_model["churn"] == scores["churn_risk"] and by_model["value"] == scores["predicted_value"]
        assert by_model["response"] == scores["response_prob"]
        assert "equal the 15 stored rows exactly" in "\n".join(result.lines())


def test_explain_from_a_run_refuses_a_changed_snapshot_or_unknown_customer(scored) -> None:
    from features.load import WarehouseError
    from serving.lineage import explain_run_customer
    from training.customer_reasons import UnknownCustomer

    cfg, wh = scored["cfg"], scored["wh"]
    run = wh.query("select run_id, snapshot_path from scoring_runs where status = 'succeeded' "
                   "order by finished_at desc limit 1").iloc[0]
    with pytest.raises(UnknownCustomer, match="was not scored in run"):
        explain_run_customer(wh, cfg, run["run_id"], "NOT-A-CUSTOMER")
    with pytest.raises(WarehouseError, match="no scoring run 'nope' \\(published\\)"):
        explain_run_customer(wh, cfg, "nope", "C1")
    path = __import__("pathlib").Path(run["snapshot_path"])
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        with pytest.raises(WarehouseError, match="was changed after run"):
            explain_run_customer(wh, cfg, run["run_id"], "C1")
    finally:
        path.write_bytes(original)
