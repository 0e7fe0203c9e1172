"""The monitoring report and the /monitoring endpoints, over hand-made monitoring rows.

Two monitored runs (2025-03-01, whose horizon has elapsed, and 2025-06-01, the latest,
with an alert) are written through `monitoring.tables` into a DuckDB file warehouse,
with their scoring_runs rows; a feature named `<script>` checks the escaping. The report
must have every section, the numbers as written, no outside reference; the API must
give the same rows, 404 with one line for an unknown run, and refuse the marketer.
"""

from __future__ import annotations

import json
import re
from datetime import date, datetime
from pathlib import Path

import pandas as pd
import pytest

from features.load import Warehouse
from monitoring import tables
from serving import sink

R1, R2 = "2025-03-01_c1-r1-v1", "2025-06-01_c1-r2-v1"
AS_OF = {R1: date(2025, 3, 1), R2: date(2025, 6, 1)}
VERSIONS = {R1: {"churn": "1", "response": "1", "value": "1"}, R2: {"churn": "1", "response": "2", "value": "1"}}
EVIL = "<script>alert('x')</script>"
CUSTOMERS = {R1: 1200, R2: 1250}
SECTION_IDS = ("summary", "feature-drift", "score-distributions", "attribution-shift", "performance", "data-checks")
# (feature, kind, psi per run, missing share, reference missing share, new-level share, absent)
FEATURES = {
    "churn": [("recency_days", "numeric", {R1: 0.012, R2: 0.4123}, 0.0, 0.0, 0.0, False),
              ("frequency", "numeric", {R1: 0.008, R2: 0.0871}, 0.0, 0.0, 0.0, False),
              (EVIL, "categorical", {R1: 0.003, R2: 0.1502}, 0.02, 0.01, 0.075, False),
              ("tenure_days", "numeric", {R1: 0.001, R2: 0.0044}, 0.12, 0.01, 0.0, False)],
    "response": [("recency_days", "numeric", {R1: 0.02, R2: 0.031}, 0.0, 0.0, 0.0, False),
                 ("email_opens", "numeric", {R1: 0.0, R2: 0.0}, 1.0, 0.0, 0.0, True)],
    "value": [("monetary", "numeric", {R1: 0.015, R2: 0.061}, 0.0, 0.0, 0.0, False)],
}
ATTRIBUTION_SHIFT = {R1: {"churn": 0.04, "response": 0.03, "value": 0.02},
                     R2: {"churn": 0.2, "response": 0.05, "value": 0.05}}  # alert line 0.1: churn in R2
SCORE_PSI = {R1: {"churn": 0.011, "response": 0.02, "value": 0.009},
             R2: {"churn": 0.3377, "response": 0.045, "value": 0.021}}
ATTRIBUTIONS = {  # feature -> (run share, reference share, run mean signed contribution, reference's) of churn
    "recency_days": (0.50, 0.30, 0.40, 0.21), "frequency": (0.20, 0.40, -0.10, 0.15), EVIL: (0.18, 0.20, 0.05, 0.06),
    "tenure_days": (0.12, 0.10, -0.02, -0.03)}
# direction alert line 0.2: churn in R2 (frequency turned from pushing up, +0.15, to down, -0.10)
DIRECTION_SHIFT = {R1: {"churn": 0.05, "response": 0.02, "value": 0.01},
                   R2: {"churn": 0.35, "response": 0.04, "value": 0.03}}
# (run, model, source, segment, auc, gini)
PERFORMANCE = [
    (R1, "churn", "realised", "all", 0.7412, 0.4824), (R1, "churn", "estimated", "all", 0.7520, 0.5040),
    (R1, "churn", "card", "all", 0.7662, 0.5310), (R1, "churn", "realised", "Champions", 0.6903, 0.3806),
    (R1, "churn", "realised", "At risk", 0.7011, 0.4022),
    (R2, "churn", "estimated", "all", 0.7301, 0.4602), (R2, "churn", "card", "all", 0.7662, 0.5310),
    (R1, "value", "realised", "all", None, 0.6120), (R1, "value", "card", "all", None, 0.6500),
    (R2, "value", "estimated", "all", None, 0.5933), (R2, "value", "card", "all", None, 0.6500),
]
PSI_ALERT = 0.25
# Drift within segments (one level of a categorical input), R2's churn model, where the schema has them:
# (segment, feature, psi, customers, reference customers, alert). frequency moved in one segment only
# (0.0871 over all customers): an alert; recency_days moved everywhere: no alert of its own.
SEGMENTS = [("needs_orientation=price", "frequency", 0.3104, 210, 180, True),
            ("needs_orientation=price", "recency_days", 0.5207, 210, 180, False),
            ("attr_region=north", "frequency", 0.1203, 330, 320, False)]
# R2's estimated Gini of value, 0.5933, is 0.0567 below the card's 0.65: past the default line 0.05
PERFORMANCE_ALERTS = {(R2, "value")}
# The alert lines `propensity monitor` recorded for R2 (monitoring_checks, in its words and order; the
# report shows them as they are), and the run's data checks.
ALERT_LINES = [
    ("churn", "churn v1: feature recency_days PSI 0.412 >= 0.25"),
    ("churn", "churn v1: feature frequency PSI 0.310 in needs_orientation=price (210 customers) >= 0.25, though "
              "0.087 over all customers"),
    ("churn", "churn v1: scores PSI 0.338 >= 0.25 (mean 0.2438 against 0.21)"),
    ("churn", "churn v1: attribution shift (importance) 0.200 >= 0.1 (most moved: recency_days, share 50.0% "
              "against 30.0%)"),
    ("churn", "churn v1: attribution shift (direction) 0.350 >= 0.2 (most moved: frequency, mean contribution "
              "-0.100 against +0.150)"),
    ("value", "value v1: estimated Gini 0.593, 0.057 below the card's 0.650 (alert at 0.05)"),
]
DATA_CHECKS = [("customers_gained", R1, 80.0, f"80 customers gained since run {R1} (2025-03-01)"),
               ("customers_lost", R1, 30.0, f"30 customers lost since run {R1} (2025-03-01)"),
               ("rejected_share", "transactions", 0.004, "12 of 3,000 rows of transactions rejected by its latest "
                                                         "import (replace)")]


def _frame(name: str, rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows)
    for c in tables.columns(name):
        if c not in frame:
            frame[c] = None
    return frame[tables.columns(name)]


def _bins(psi: float) -> str:
    labels = ["< 0.1", "0.1 - 0.2", "0.2 - 0.4", "0.4 - 0.7", ">= 0.7", "missing"]
    ref = [0.3, 0.25, 0.2, 0.15, 0.1, 0.0]
    shift = min(0.2, psi / 2)
    cur = [0.3 - shift, 0.25, 0.2, 0.15, 0.1 + shift, 0.0]
    return json.dumps({"labels": labels, "reference": ref, "current": cur})


def fill_warehouse(url: str) -> None:
    """The two runs' scoring_runs rows and monitoring rows, through the sink and `tables.replace_rows`."""
    stamp = datetime(2025, 6, 2, 8, 0)
    with Warehouse(url) as wh:
        db = sink.database(wh)
        sink.ensure_tables(db)
        tables.ensure(db)
        for run_id, as_of in AS_OF.items():
            v = VERSIONS[run_id]
            db.execute(f"insert into {sink.RUNS} (run_id, attempt, as_of, started_at, finished_at, status, "
                       "churn_version, response_version, value_version, customers) values (?, 1, ?, ?, ?, 'succeeded', "
                       "?, ?, ?, ?)", [run_id, as_of, stamp, stamp, v["churn"], v["response"], v["value"],
                                       CUSTOMERS[run_id]])
            base = {"run_id": run_id, "attempt": 1, "as_of": as_of, "monitored_at": stamp}
            feats, preds, attrs, perf = [], [], [], []
            for model, rows in FEATURES.items():
                alerted = 0
                for feature, kind, psi, missing, ref_missing, new, absent in rows:
                    alert = psi[run_id] >= PSI_ALERT
                    alerted += alert
                    feats.append({**base, "model": model, "version": v[model], "feature": feature, "kind": kind,
                                  "psi": psi[run_id], "missing_share": missing if run_id == R2 else ref_missing,
                                  "reference_missing_share": ref_missing, "new_level_share": new if run_id == R2 else 0.0,
                                  "absent": absent and run_id == R2, "alert": alert, "segment": "all",
                                  "rows": CUSTOMERS[run_id], "reference_rows": 1000})
                if model == "churn" and run_id == R2:
                    for segment, feature, psi, n, n_ref, seg_alert in SEGMENTS:
                        alerted += seg_alert
                        feats.append({**base, "model": model, "version": v[model], "feature": feature,
                                      "kind": "numeric", "psi": psi, "missing_share": 0.0,
                                      "reference_missing_share": 0.0, "new_level_share": 0.0, "absent": False,
                                      "alert": seg_alert, "segment": segment, "rows": n, "reference_rows": n_ref})
                score_psi = SCORE_PSI[run_id][model]
                preds.append({**base, "model": model, "version": v[model], "rows": CUSTOMERS[run_id], "psi": score_psi,
                              "mean_score": 0.21 + score_psi / 10, "reference_mean_score": 0.21,
                              "score_bins": _bins(score_psi), "attribution_shift": ATTRIBUTION_SHIFT[run_id][model],
                              "features_alerted": alerted, "direction_shift": DIRECTION_SHIFT[run_id][model],
                              "alert": (bool(alerted) or score_psi >= PSI_ALERT or ATTRIBUTION_SHIFT[run_id][model] >= 0.1
                                        or DIRECTION_SHIFT[run_id][model] >= 0.2 or (run_id, model) in PERFORMANCE_ALERTS),
                              "note": None})
            for rank, (feature, (share, ref_share, mean, ref_mean)) in enumerate(ATTRIBUTIONS.items(), start=1):
                ref_rank = sorted(ATTRIBUTIONS, key=lambda f: -ATTRIBUTIONS[f][1]).index(feature) + 1
                attrs.append({**base, "model": "churn", "version": v["churn"], "feature": feature,
                              "mean_abs_contribution": share * 0.8, "reference_mean_abs_contribution": ref_share * 0.7,
                              "share": share, "reference_share": ref_share, "rank": rank, "reference_rank": ref_rank,
                              "mean_contribution": mean, "reference_mean_contribution": ref_mean,
                              "scale": "log-odds"})
            for run, model, source, segment, auc, gini in PERFORMANCE:
                if run != run_id:
                    continue
                perf.append({**base, "model": model, "version": v[model], "source": source, "segment": segment,
                             "horizon_end": date(2025, 5, 30) if run == R1 else date(2025, 8, 30),
                             "customers": 400 if segment != "all" else CUSTOMERS[run_id], "positives": 97.0,
                             "mean_score": 0.2, "mean_actual": 0.19 if source == "realised" else None, "auc": auc,
                             "pr_auc": None if auc is None else auc - 0.3, "ece": 0.012, "gini": gini,
                             "computed_at": stamp})
            tables.replace_rows(db, tables.FEATURES, run_id, _frame(tables.FEATURES, feats))
            tables.replace_rows(db, tables.PREDICTIONS, run_id, _frame(tables.PREDICTIONS, preds))
            tables.replace_rows(db, tables.ATTRIBUTIONS, run_id, _frame(tables.ATTRIBUTIONS, attrs))
            tables.replace_rows(db, tables.PERFORMANCE, run_id, _frame(tables.PERFORMANCE, perf))
            if run_id == R2:
                checks = [{**base, "check_name": "alert", "model": m, "message": line, "alert": True}
                          for m, line in ALERT_LINES]
                checks += [{**base, "check_name": c, "subject": subject, "value": value, "message": text,
                            "alert": False} for c, subject, value, text in DATA_CHECKS]
                checks = [{**c, "position": i} for i, c in enumerate(checks)]
                tables.replace_rows(db, tables.CHECKS, run_id, _frame(tables.CHECKS, checks))


@pytest.fixture(scope="module")
def warehouse(tmp_path_factory) -> str:
    url = f"duckdb:///{tmp_path_factory.mktemp('monitor_report') / 'warehouse.duckdb'}"
    fill_warehouse(url)
    return url


@pytest.fixture(scope="module")
def html(warehouse) -> str:
    from monitoring.report import report_html

    with Warehouse(warehouse, read_only=True) as wh:
        return report_html(wh)


def _section(html: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', html, re.S)
    assert match, f"no section {key}"
    return match.group(1)


def test_every_section_has_a_heading(html) -> None:
    for key in SECTION_IDS:
        assert re.search(rf'<section id="{key}"><h2>[^<]+</h2>', html), key
    assert html.count("<section ") == len(SECTION_IDS)


def test_the_default_run_is_the_latest_monitored_one(html, warehouse) -> None:
    from monitoring.report import report_html

    summary = _section(html, "summary")
    assert R2 in summary and "2025-06-01" in summary and "1,250" in summary  # customers from scoring_runs
    with Warehouse(warehouse, read_only=True) as wh:
        first = report_html(wh, R1)
    assert "1,200" in _section(first, "summary") and "no alert" in _section(first, "summary")


def test_the_numbers_as_written(html) -> None:
    summary = _section(html, "summary")
    assert "churn v1: feature recency_days PSI 0.412 &gt;= 0.25" in summary
    assert "churn v1: scores PSI 0.338 &gt;= 0.25" in summary
    assert ("churn v1: attribution shift (importance) 0.200 &gt;= 0.1 (most moved: recency_days, share 50.0% "
            "against 30.0%)") in summary
    assert ("churn v1: attribution shift (direction) 0.350 &gt;= 0.2 (most moved: frequency, mean contribution "
            "-0.100 against +0.150)") in summary
    assert "value v1: estimated Gini 0.593, 0.057 below the card&#x27;s 0.650 (alert at 0.05)" in summary
    assert "<dd>6</dd>" in summary  # feature, scores, importance, direction, performance, and one in a segment
    drift = _section(html, "feature-drift")
    assert ">0.412<" in drift and ">0.150<" in drift  # bar values and table cells, 3 decimals
    assert "alert line 0.25" in drift  # the threshold line's label
    assert "12.0%" in drift and "7.5%" in drift  # tenure missing share, new-level share of the evil feature
    # the bars are sorted, largest PSI first
    churn = re.search(r'<article class="model" data-model="churn">(.*?)</article>', drift, re.S).group(1)
    bars = re.findall(r'<rect class="bar[^"]*" data-feature="([^"]+)"', churn)
    assert bars == ["recency_days", "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;", "frequency", "tenure_days"]
    assert re.search(r'<rect class="bar alert" data-feature="recency_days"', churn)
    scores = _section(html, "score-distributions")
    assert scores.count('<rect class="cur" data-bin=') == 3 * 6 and "score PSI 0.338" in scores
    attribution = _section(html, "attribution-shift")
    assert "importance shift 0.200 ALERT (alert at 0.1)" in attribution and "direction shift 0.350 ALERT" in attribution
    assert '<span class="flipped" title="pushes the other way than in the reference">-0.1000 ⇄</span>' in attribution
    assert "50.0%" in attribution and "30.0%" in attribution
    # recency_days went from rank 2 to 1, frequency from 1 to 2
    assert '<span class="up" title="up 1">▲ 1</span>' in attribution
    assert '<span class="down" title="down 1">▼ 1</span>' in attribution
    performance = _section(html, "performance")
    assert "0.741" in performance and "card v1 0.766" in performance and "Gini over runs" in performance
    assert "alert: card − 0.05 0.716" in performance  # the card's AUC less the drop alert line
    assert "no realised churn numbers for this run yet: its horizon has not elapsed (its horizon ends 2025-08-30)" in performance
    assert re.search(r'<polyline class="series s1" data-series="estimated"', performance)
    checks = _section(html, "data-checks")
    assert f"80 customers gained since run {R1} (2025-03-01)" in checks
    assert re.search(r"<td>rejected share</td><td></td><td[^>]*>12 of 3,000 rows of transactions rejected by its "
                     r"latest import \(replace\)</td><td><span class=\"status warn\">", checks)
    assert "1 of 2 features absent from the run: email_opens" in checks
    assert "tenure_days: 12.0% missing (reference 1.0%)" in checks


def test_drift_confined_to_a_segment(html) -> None:
    summary = _section(html, "summary")
    assert ("churn v1: feature frequency PSI 0.310 in needs_orientation=price (210 customers) &gt;= 0.25, though "
            "0.087 over all customers") in summary
    assert "recency_days PSI 0.521 in" not in summary  # moved everywhere: the population's alert says it
    drift = _section(html, "feature-drift")
    churn = re.search(r'<article class="model" data-model="churn">(.*?)</article>', drift, re.S).group(1)
    # the bars are the population's: one per feature, not per segment
    assert len(re.findall(r'<rect class="bar', churn)) == len(FEATURES["churn"])
    assert ('<details class="segments" open><summary>Within segments: 2 segment(s) (one level of a categorical input '
            "each) measured; 1 shift(s) at the alert line 0.25") in churn
    rows = re.findall(r"<tr( class=\"alert\")?><td>([^<]+)</td><td>([^<]+)</td><td class=\"num\">([^<]+)</td>",
                      churn.split("Within segments:")[1])
    assert rows == [(' class="alert"', "needs_orientation=price", "frequency", "0.310"),
                    ("", "needs_orientation=price", "recency_days", "0.521"),
                    ("", "attr_region=north", "frequency", "0.120")]


def test_segments_of_the_chosen_run(warehouse) -> None:
    from monitoring.report import report_html

    with Warehouse(warehouse, read_only=True) as wh:
        first = _section(report_html(wh, R1), "performance")
    assert "<td>Champions</td>" in first and "<td>At risk</td>" in first
    assert "<td class=\"num\">0.690</td>" in first and ">0.381<" in first  # Champions: AUC 0.6903, Gini 0.3806


def test_data_is_escaped(html) -> None:
    assert "<script" not in html.lower()  # the feature named <script> is text, and the report has no script
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt;" in html


def test_self_contained(html) -> None:
    assert not re.search(r"""(?:src|href)\s*=\s*["']?\s*(?:https?:)?//""", html, re.I)
    assert "http://" not in html and "https://" not in html and "@import" not in html and "url(" not in html
    assert "<link" not in html and "<img" not in html and "<iframe" not in html
    assert html.count("<svg ") >= 3 + 3 + 1 + 2  # PSI bars x3, score bins x3, shares, performance lines


def test_empty_performance_says_why(tmp_path) -> None:
    """A warehouse where no run's horizon has elapsed: the section says so instead of an empty chart."""
    from monitoring.report import report_html

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    fill_warehouse(url)
    with Warehouse(url) as wh:
        wh.duck().execute(f"delete from {tables.PERFORMANCE}")
        wh.duck().execute(f"delete from {tables.ATTRIBUTIONS}")
        page = report_html(wh)
    assert "no run whose horizon has elapsed yet" in _section(page, "performance")
    assert "no attributions for churn" in _section(page, "attribution-shift")


def test_unknown_and_unmonitored_runs_are_one_line(warehouse, tmp_path) -> None:
    from monitoring.report import NotMonitored, report_html, write_report

    with Warehouse(warehouse, read_only=True) as wh:
        with pytest.raises(NotMonitored, match=r"^scoring run 'nope' has not been monitored; run `propensity monitor"):
            report_html(wh, "nope")
        out = write_report(wh, R1, tmp_path / "r" / "report.html")
    assert out.read_text(encoding="utf-8").startswith("<!doctype html>") and R1 in out.read_text(encoding="utf-8")
    with Warehouse(f"duckdb:///{tmp_path / 'empty.duckdb'}") as wh:
        with pytest.raises(NotMonitored, match="no monitored scoring run yet"):
            report_html(wh)


# -- the API -------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def api(warehouse, tmp_path_factory):
    """The app over the hand-made warehouse (nothing is trained: monitoring reads tables only)."""
    from fastapi.testclient import TestClient

    from propensity.config import Config, WarehouseConfig
    from serving.api import create_app
    from serving.tokens import Role, TokenStore

    folder = tmp_path_factory.mktemp("monitor_api")
    store = TokenStore(folder / "tokens.json")
    tokens = {role: store.create(f"t-{role.value}", role)[1] for role in Role}
    cfg = Config(warehouse=WarehouseConfig(url=warehouse))
    with TestClient(create_app(cfg, store.path)) as client:
        yield client, {role.value: {"Authorization": f"Bearer {t}"} for role, t in tokens.items()}


MONITORING_ENDPOINTS = ["/monitoring/runs", f"/monitoring/runs/{R1}", "/monitoring/performance",
                        "/monitoring/report"]


@pytest.mark.parametrize("role", ["marketer", "auditor", "admin"])
def test_monitoring_endpoints_are_for_auditors(api, role) -> None:
    client, headers = api
    got = {path: client.get(path, headers=headers[role]).status_code for path in MONITORING_ENDPOINTS}
    want = 403 if role == "marketer" else 200
    assert got == {path: want for path in MONITORING_ENDPOINTS}
    assert client.get("/monitoring/runs").status_code == 401


def test_monitored_runs(api) -> None:
    client, headers = api
    runs = client.get("/monitoring/runs", headers=headers["auditor"]).json()
    assert [r["run_id"] for r in runs] == [R2, R1]
    latest = runs[0]
    assert latest["as_of"] == "2025-06-01" and latest["alert"] is True and latest["attempt"] == 1
    churn = next(m for m in latest["models"] if m["model"] == "churn")
    assert churn == {"model": "churn", "version": "1", "psi": 0.3377, "alert": True, "attribution_shift": 0.2,
                     "features_alerted": 2, "direction_shift": 0.35, "mean_score": pytest.approx(0.21 + 0.03377), "reference_mean_score": 0.21,
                     "note": None}
    assert runs[1]["alert"] is False
    assert [r["run_id"] for r in client.get("/monitoring/runs?limit=1", headers=headers["auditor"]).json()] == [R2]


def test_one_monitored_run(api) -> None:
    client, headers = api
    detail = client.get(f"/monitoring/runs/{R2}", headers=headers["auditor"]).json()
    assert detail["run_id"] == R2 and detail["as_of"] == "2025-06-01"
    assert len(detail["features"]) == sum(len(v) for v in FEATURES.values()) + len(SEGMENTS)
    evil = next(f for f in detail["features"] if f["feature"] == EVIL)
    assert evil["psi"] == 0.1502 and evil["new_level_share"] == 0.075 and evil["alert"] is False
    assert evil["segment"] == "all"
    inside = [(f["segment"], f["feature"], f["psi"], f["rows"], f["reference_rows"], f["alert"])
              for f in detail["features"] if f["segment"] != "all"]
    assert sorted(inside) == sorted(SEGMENTS)
    assert {p["model"] for p in detail["predictions"]} == {"churn", "response", "value"}
    bins = next(p for p in detail["predictions"] if p["model"] == "churn")["score_bins"]
    assert bins["labels"][-1] == "missing" and len(bins["current"]) == 6
    # the alert lines in the command's order, then the data checks
    assert [(c["model"], c["message"]) for c in detail["checks"] if c["check_name"] == "alert"] == ALERT_LINES
    assert [(c["check_name"], c["subject"], c["value"]) for c in detail["checks"] if c["check_name"] != "alert"] == \
        [(c, subject, value) for c, subject, value, _ in DATA_CHECKS]
    assert [a["feature"] for a in detail["attributions"]] == list(ATTRIBUTIONS)
    assert [(a["mean_contribution"], a["reference_mean_contribution"]) for a in detail["attributions"]] == [
        v[2:] for v in ATTRIBUTIONS.values()]


def test_performance_rows(api) -> None:
    client, headers = api
    rows = client.get("/monitoring/performance", headers=headers["auditor"]).json()
    assert len(rows) == len(PERFORMANCE)
    value = client.get("/monitoring/performance?model=value", headers=headers["auditor"]).json()
    assert {r["model"] for r in value} == {"value"} and len(value) == 4
    realised = next(r for r in value if r["source"] == "realised")
    assert realised["gini"] == 0.612 and realised["auc"] is None and realised["as_of"] == "2025-03-01"
    one = client.get(f"/monitoring/performance?run_id={R1}&model=churn", headers=headers["auditor"]).json()
    assert {r["segment"] for r in one} == {"all", "Champions", "At risk"}
    bad = client.get("/monitoring/performance?model=uplift", headers=headers["auditor"])
    assert bad.status_code == 422


def test_the_report_endpoint(api) -> None:
    client, headers = api
    page = client.get("/monitoring/report", headers=headers["auditor"])
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    assert "sandbox" in page.headers["content-security-policy"]  # served as a document that runs no script
    assert f"scoring run {R2}" in page.text
    first = client.get(f"/monitoring/report?run_id={R1}", headers=headers["auditor"])
    assert first.status_code == 200 and f"scoring run {R1}" in first.text


@pytest.mark.parametrize("path", ["/monitoring/runs/no-such-run", "/monitoring/report?run_id=no-such-run"])
def test_unknown_run_is_404_with_one_line(api, path) -> None:
    client, headers = api
    answer = client.get(path, headers=headers["auditor"])
    assert answer.status_code == 404
    detail = answer.json()["detail"]
    assert "'no-such-run' has not been monitored" in detail and "\n" not in detail


def test_a_warehouse_never_monitored(tmp_path) -> None:
    """No monitoring tables: empty lists, and the report is 404 saying what to run."""
    from fastapi.testclient import TestClient

    from propensity.config import Config, WarehouseConfig
    from serving.api import create_app
    from serving.tokens import Role, TokenStore

    url = f"duckdb:///{tmp_path / 'w.duckdb'}"
    with Warehouse(url) as wh:
        sink.ensure_tables(sink.database(wh))
    store = TokenStore(tmp_path / "tokens.json")
    token = store.create("a", Role.auditor)[1]
    headers = {"Authorization": f"Bearer {token}"}
    with TestClient(create_app(Config(warehouse=WarehouseConfig(url=url)), store.path)) as client:
        assert client.get("/monitoring/runs", headers=headers).json() == []
        assert client.get("/monitoring/performance", headers=headers).json() == []
        report = client.get("/monitoring/report", headers=headers)
        assert report.status_code == 404 and "no monitored scoring run yet" in report.json()["detail"]


def test_report_file_path_is_returned(warehouse, tmp_path) -> None:
    from monitoring.report import write_report

    with Warehouse(warehouse, read_only=True) as wh:
        path = write_report(wh, None, tmp_path / "report.html")
    assert isinstance(path, Path) and path.exists() and not (tmp_path / "report.html.tmp").exists()


@pytest.mark.parametrize("label, shown", [
    ("[-inf, 0.0468348)", "[-inf, 0.0468)"),
    ("[0.9984, inf)", "[0.998, inf)"),
    ("[12.9175, 56.1999)", "[12.9, 56.2)"),
    ("[1.5e-05, 0.25)", "[1.5e-05, 0.25)"),
    ("(missing)", "(missing)"),
    ("gold", "gold"),
])
def test_bin_labels_are_shortened_on_the_axis_only(label: str, shown: str) -> None:
    from monitoring.report import compact_label

    assert compact_label(label) == shown
