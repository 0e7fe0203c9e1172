"""The service API on a scored sample world: who may call what, error codes, numbers against the warehouse."""

from __future__ import annotations

import io
import itertools
import json
import os
import stat
import subprocess
import sys
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from serving.tokens import Role, TokenError, TokenStore

CUSTOMERS = 2000
AS_OF = date(2025, 6, 1)
_WORLD: dict = {}


def scored_world(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """A sample world with three champions, one published scoring run and a token of each role.

    Built once per test session (test_web reuses it): training and scoring take about
    half a minute. The building connection is closed, so only the app opens the file.
    """
    if _WORLD:
        return _WORLD
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import project_in
    from serving.batch import run_scoring
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp("api")
    cfg = project_in(folder)
    with Warehouse(cfg.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=2))
        train_and_log(["churn", "response", "value"], wh, cfg)
        promote_models(["churn", "response", "value"], wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
        summary = run_scoring(wh, cfg, AS_OF, chunk_size=1000)
    store = TokenStore(folder / "api_tokens.json")
    tokens = {role: store.create(f"test-{role.value}", role)[1] for role in Role}
    _WORLD.update(cfg=cfg, folder=folder, run_id=summary.run_id, versions=summary.versions,
                  token_file=store.path, tokens=tokens)
    return _WORLD


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return scored_world(tmp_path_factory)


@pytest.fixture(scope="module")
def client(world):
    from fastapi.testclient import TestClient

    from serving.api import create_app

    with TestClient(create_app(world["cfg"], world["token_file"])) as c:
        yield c


def auth(world: dict, role: Role | str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['tokens'][Role(role)]}"}


def read(world: dict, sql: str, params: list | None = None) -> pd.DataFrame:
    """Read the warehouse as a second reader would (read-only, like the app)."""
    with Warehouse(world["cfg"].warehouse.url, read_only=True) as wh:
        return wh.native_query(sql, params or [])


@pytest.fixture(scope="module")
def ids(world, client) -> dict[str, str]:
    """A real customer, the run, and a saved target list (built by admin)."""
    customer = read(world, "select customer_id from current_customer_scores order by customer_id limit 1 offset 7")
    made = client.post("/targets", json={"campaign": _campaign(world), "top": 50}, headers=auth(world, "admin"))
    assert made.status_code == 200, made.text
    return {"customer": customer["customer_id"][0], "run": world["run_id"], "list": made.json()["list_id"]}


def _campaign(world: dict) -> str:
    return str(read(world, "select campaign_id from campaigns order by start desc limit 1")["campaign_id"][0])


# -- who may call what ------------------------------------------------------------------------

M, A, D = Role.marketer, Role.auditor, Role.admin
ENDPOINTS = [  # method, path, body, roles allowed
    ("get", "/me", None, {M, A, D}),
    ("get", "/customers/{customer}", None, {A, D}),
    ("get", "/customers/{customer}/segments", None, {M, A, D}),
    ("get", "/segments/summary", None, {M, D}),
    ("get", "/campaigns", None, {M, D}),
    ("get", "/targets/options", None, {M, D}),
    ("post", "/targets", {"campaign": "{campaign}", "budget": 40, "cost": 2.0, "margin": 0.3, "control": 0.2}, {M, D}),
    ("get", "/targets/{list}.csv", None, {M, D}),
    ("post", "/score", {"customer_id": "{customer}", "as_of": str(AS_OF)}, {A, D}),
    ("get", "/models/churn/card", None, {A, D}),
    ("get", "/runs", None, {A, D}),
    ("get", "/runs/{run}", None, {A, D}),
    ("get", "/runs/{run}/customers/{customer}/explain", None, {A, D}),
]


def _fill(value, world: dict, ids: dict):
    names = {**ids, "campaign": _campaign(world)}
    if isinstance(value, str):
        return value.format(**names)
    if isinstance(value, dict):
        return {k: _fill(v, world, ids) for k, v in value.items()}
    return value


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_each_role_reaches_exactly_its_endpoints(world, client, ids, role: Role) -> None:
    got, want = {}, {}
    for method, path, body, allowed in ENDPOINTS:
        kwargs = {"headers": auth(world, role)}
        if body is not None:
            kwargs["json"] = _fill(body, world, ids)
        response = getattr(client, method)(_fill(path, world, ids), **kwargs)
        got[f"{method.upper()} {path}"] = response.status_code
        want[f"{method.upper()} {path}"] = 200 if role in allowed else 403
        if response.status_code == 403:
            assert f"the {role.value} token" in response.json()["detail"]
    assert got == want


def test_the_role_table_is_the_one_the_docs_show(client) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["components"]["securitySchemes"]["token"] == {
        "type": "http", "scheme": "bearer", "description": spec["components"]["securitySchemes"]["token"]["description"]}
    for method, path, _body, allowed in ENDPOINTS:
        key = path.replace("{customer}", "{customer_id}").replace("{run}", "{run_id}").replace("{list}", "{list_id}")
        key = key.replace("/models/churn/", "/models/{name}/")
        op = spec["paths"][key][method]
        assert set(op["x-roles"]) == {r.value for r in allowed}, key
        assert op["security"] == [{"token": []}]
    assert "security" not in spec["paths"]["/health"]["get"]
    docs = client.get("/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()


# -- 401 / 403 ----------------------------------------------------------------------------------

@pytest.mark.parametrize("header", [
    None,
    "Bearer ",
    "Bearer not-a-token",
    "Basic dXNlcjpwYXNz",
    "Bearer ppt_000000000000_" + "A" * 43,
], ids=["missing", "empty", "garbage", "basic-auth", "well-formed-unknown"])
def test_missing_or_wrong_token_is_401(client, ids, header: str | None) -> None:
    headers = {} if header is None else {"Authorization": header}
    response = client.get(f"/customers/{ids['customer']}", headers=headers)
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["detail"] in ("missing token: send the header 'Authorization: Bearer <token>'",
                                         "unknown or revoked token")


def test_a_token_with_a_tampered_secret_is_401(world, client) -> None:
    good = world["tokens"][Role.admin]
    bad = good[:-1] + ("A" if good[-1] != "A" else "B")
    assert client.get("/runs", headers={"Authorization": f"Bearer {good}"}).status_code == 200
    assert client.get("/runs", headers={"Authorization": f"Bearer {bad}"}).status_code == 401


def test_wrong_role_is_403_before_the_input_is_looked_at(world, client) -> None:
    # a marketer's malformed /score request is refused for the role, not validated
    response = client.post("/score", json={"customer_id": ""}, headers=auth(world, "marketer"))
    assert response.status_code == 403
    assert response.json()["detail"] == ("the marketer token 'test-marketer' may not do this "
                                         "(allowed roles: admin, auditor)")


def test_health_needs_no_token_and_names_the_run(world, client) -> None:
    body = client.get("/health").json()
    assert body == {"status": "ok", "warehouse": "ready", "scoring_run": world["run_id"], "as_of": str(AS_OF)}


# -- 422 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body, message", [
    ("post", "/targets", {"campaign": "X", "budget": 10, "top": 5}, "exactly one of budget"),
    ("post", "/targets", {"campaign": "X"}, "exactly one of budget"),
    ("post", "/targets", {"campaign": "X", "budget": -5}, "budget: Input should be greater than 0"),
    ("post", "/targets", {"campaign": "X", "top": 5, "control": 1.5}, "control: Input should be less than 1"),
    ("post", "/targets", {"campaign": "X", "top": 5, "margin": 2}, "margin: Input should be less than or equal to 1"),
    ("post", "/targets", {"campaign": "X", "top": "many"}, "top: Input should be a valid integer"),
    ("post", "/targets", {"campaign": "X", "top": 5, "budjet": 3}, "budjet: Extra inputs are not permitted"),
    ("post", "/targets", {"campaign": "NO-SUCH-CAMPAIGN", "top": 5}, "unknown campaign 'NO-SUCH-CAMPAIGN'"),
    ("post", "/score", {"customer_id": ""}, "customer_id: String should have at least 1 character"),
    ("post", "/score", {"customer_id": "C1", "as_of": "yesterday"}, "as_of: Input should be a valid date"),
    ("post", "/score", {"customer_id": "C1", "reasons": 0}, "reasons: Input should be greater than or equal to 1"),
    ("post", "/score", {"customer_id": "C1", "as_of": str(date.today() + timedelta(days=3))}, "is in the future"),
    ("get", "/models/churn/card?version=latest", None, "version: String should match pattern"),
    ("get", "/runs?limit=0", None, "limit: Input should be greater than or equal to 1"),
    ("get", "/customers/" + "x" * 201, None, "customer_id: String should have at most 200 characters"),
])
def test_malformed_input_is_422_with_a_message(world, client, method: str, path: str, body, message: str) -> None:
    kwargs = {"headers": auth(world, "admin")}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str) and message in detail and "\n" not in detail


def test_a_body_that_is_not_json_is_422(world, client) -> None:
    response = client.post("/targets", content=b"{budget: 3", headers={**auth(world, "admin"),
                                                                          "Content-Type": "application/json"})
    assert response.status_code == 422 and "JSON" in response.json()["detail"]


# -- 404 ----------------------------------------------------------------------------------------

@pytest.mark.parametrize("method, path, body, message", [
    ("get", "/customers/NOT-A-CUSTOMER", None, "customer 'NOT-A-CUSTOMER' is not in the current scoring run"),
    ("get", "/customers/NOT-A-CUSTOMER/segments", None, "customer 'NOT-A-CUSTOMER' is not in the current scoring run"),
    ("post", "/score", {"customer_id": "NOT-A-CUSTOMER", "as_of": str(AS_OF)}, "customer 'NOT-A-CUSTOMER' has no transactions"),
    ("get", "/runs/{run}/customers/NOT-A-CUSTOMER/explain", None, "customer 'NOT-A-CUSTOMER' was not scored in run"),
    ("get", "/runs/no-such-run", None, "no scoring run 'no-such-run'"),
    ("get", "/runs/no-such-run/customers/{customer}/explain", None, "no published scoring run 'no-such-run'"),
    ("get", "/models/price/card", None, "unknown model 'price'; use one of churn, response, value"),
    ("get", "/models/churn/card?version=99", None, "no version 99 of model 'churn'"),
    ("get", "/targets/no-such-list.csv", None, "no target list 'no-such-list'"),
])
def test_unknown_things_are_404(world, client, ids, method: str, path: str, body, message: str) -> None:
    kwargs = {"headers": auth(world, "admin")}
    if body is not None:
        kwargs["json"] = body
    response = getattr(client, method)(_fill(path, world, ids), **kwargs)
    assert response.status_code == 404, response.text
    assert message in response.json()["detail"]


# -- the numbers ----------------------------------------------------------------------------------

def test_customer_scores_segments_and_reasons_equal_the_warehouse(world, client, ids) -> None:
    cid = ids["customer"]
    body = client.get(f"/customers/{cid}", headers=auth(world, "auditor")).json()
    scores = read(world, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    segments = read(world, "select * from current_customer_segments where customer_id = ?", [cid]).iloc[0]
    reasons = read(world, "select * from current_score_reasons where customer_id = ? order by model, rank", [cid])
    assert body["run_id"] == world["run_id"] == scores["run_id"] and body["as_of"] == str(AS_OF)
    for column in ("churn_risk", "response_prob", "predicted_value", "expected_profit"):
        assert body["scores"][column] == scores[column]  # exact: the same float
    assert body["scores"]["churn_decile"] == scores["churn_decile"]
    assert body["scores"]["churn_tier"] == scores["churn_tier"]
    for column in ("rfmw_segment", "value_tier", "loyalty_tier", "activity", "risk_tier", "r_score"):
        assert body["segments"][column] == segments[column]
    by_model = {m["model"]: m for m in body["models"]}
    assert list(by_model) == ["churn", "response", "value"]
    score_of = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value"}
    for name, m in by_model.items():
        assert m["version"] == world["versions"][name]
        assert m["score"] == scores[score_of[name]]
        stored = reasons[reasons["model"] == name]
        assert [r["feature"] for r in m["reasons"]] == stored["feature"].tolist()
        assert [r["contribution"] for r in m["reasons"]] == stored["contribution"].tolist()
        assert [r["text"] for r in m["reasons"]] == stored["text"].tolist()
        steps = m["waterfall"]
        assert len(steps) == len(stored) + 1 and steps[-1]["label"] == "other features"
        assert steps[0]["start"] == pytest.approx(m["base_value"], rel=1e-12)
        assert steps[-1]["end"] == m["score"]
        for a, b in itertools.pairwise(steps):
            assert a["end"] == b["start"]  # a chain: each step starts where the last ended
        for step, contribution in zip(steps, stored["contribution"]):
            assert step["contribution"] == contribution
            assert (step["end"] - step["start"]) * contribution >= 0  # same direction on both scales
        assert m["card_url"] == f"/models/{name}/card?version={world['versions'][name]}"
    assert body["lineage_url"] == f"/runs/{world['run_id']}"
    assert body["explain_url"] == f"/runs/{world['run_id']}/customers/{cid}/explain"


def test_waterfall_base_value_is_the_models_expected_output(world, client, ids) -> None:
    from serving.registry import champions
    from training.explain import contributions
    from training.models import transform_raw

    body = client.get(f"/customers/{ids['customer']}", headers=auth(world, "admin")).json()
    loaded = champions(world["cfg"])
    for m in body["models"]:
        model = loaded[m["model"]][0]
        base = contributions(model, pd.DataFrame()).base_value
        expected = transform_raw(model.kind, np.array([base]), model.calibration_, model.level_factor_)[0]
        assert m["base_value"] == pytest.approx(float(expected), rel=1e-12)


def test_customer_segments_for_marketers(world, client, ids) -> None:
    cid = ids["customer"]
    body = client.get(f"/customers/{cid}/segments", headers=auth(world, "marketer")).json()
    row = read(world, "select * from current_customer_segments where customer_id = ?", [cid]).iloc[0]
    assert set(body) == {"customer_id", "run_id", "as_of", "segments"}
    assert body["segments"]["rfmw_segment"] == row["rfmw_segment"]
    assert body["segments"]["f_score"] == row["f_score"]
    assert "churn_risk" not in json.dumps(body)  # no scores for marketers here


def test_segment_summary_counts_and_means(world, client) -> None:
    body = client.get("/segments/summary", headers=auth(world, "marketer")).json()
    joined = read(world, "select * from current_customer_scores s join current_customer_segments g using (customer_id)")
    assert body["customers"] == len(joined) and body["run_id"] == world["run_id"]
    assert set(body["by"]) == {"rfmw_segment", "value_tier", "loyalty_tier", "activity", "risk_tier",
                               "churn_tier", "response_tier", "predicted_value_tier", "profit_tier"}
    for column, groups in body["by"].items():
        assert sum(g["customers"] for g in groups) == len(joined), column
    expected = joined.groupby("rfmw_segment").agg(n=("customer_id", "size"), churn=("churn_risk", "mean"),
                                                  profit=("expected_profit", "mean"))
    got = {g["value"]: g for g in body["by"]["rfmw_segment"]}
    assert set(got) == set(expected.index)
    for segment, r in expected.iterrows():
        assert got[segment]["customers"] == r["n"]
        assert got[segment]["mean_churn_risk"] == pytest.approx(r["churn"], rel=1e-9)
        assert got[segment]["mean_expected_profit"] == pytest.approx(r["profit"], rel=1e-9)


def test_campaigns_are_the_warehouse_campaigns(world, client) -> None:
    body = client.get("/campaigns", headers=auth(world, "marketer")).json()
    table = read(world, "select campaign_id, kind from campaigns")
    assert sorted(c["campaign"] for c in body) == sorted(table["campaign_id"])
    assert {c["campaign"]: c["kind"] for c in body} == dict(zip(table["campaign_id"], table["kind"]))


def test_a_full_run_misses_nothing_and_offers_profit_rankings(world, client, ids) -> None:
    headers = auth(world, "admin")
    assert client.get(f"/customers/{ids['customer']}", headers=headers).json()["missing"] == []
    assert client.get("/segments/summary", headers=headers).json()["missing"] == []
    assert client.get(f"/runs/{world['run_id']}", headers=headers).json()["missing"] == []
    options = client.get("/targets/options", headers=headers).json()
    assert options["missing"] == [] and options["free_name"] is False and options["default_rank_by"] == "auto"
    assert sorted(c["campaign"] for c in options["campaigns"]) == sorted(
        read(world, "select campaign_id from campaigns")["campaign_id"])
    choices = {c["value"]: c for c in options["rank_by"]}
    assert {k for k, c in choices.items() if c["available"]} == {"auto", "expected_profit", "value_at_risk", "value",
                                                                  "churn"}
    assert choices["uplift"]["why_not"].startswith("no uplift model is registered")  # none trained in this world
    assert choices["auto"]["has_profit"] and all(c["needs_campaign"] for c in choices.values())
    made = client.post("/targets", json={"campaign": _campaign(world), "top": 20}, headers=headers).json()
    assert made["method"] == made["ranking"]["method"] == "expected_profit" and made["ranking"]["has_profit"]
    assert made["ranking"]["axis"] == "cumulative expected profit"
    assert made["ranking"]["contacted_total"] == pytest.approx(made["summary"]["expected_profit"], rel=1e-12)
    assert all(g["cumulative_profit"] == g["cumulative"] for g in made["gain"])


def test_target_list_summary_gain_and_csv(world, client) -> None:
    campaign = _campaign(world)
    budget, cost = 60.0, 2.0
    made = client.post("/targets", json={"campaign": campaign, "budget": budget, "cost": cost, "margin": 0.4,
                                         "control": 0.25, "seed": 3}, headers=auth(world, "marketer"))
    assert made.status_code == 200, made.text
    body = made.json()
    s = body["summary"]
    assert s["contacted"] + s["control"] == s["selected"] and s["contacted"] * cost <= budget
    assert s["cost"] == pytest.approx(s["contacted"] * cost) and s["run_id"] == world["run_id"]
    assert s["list_id"] == body["list_id"] and body["download_url"] == f"/targets/{body['list_id']}.csv"
    gain = pd.DataFrame(body["gain"])
    assert 2 <= len(gain) <= 201 and gain["share_contacted"].is_monotonic_increasing
    assert gain["share_contacted"].iloc[0] == 0 and gain["share_contacted"].iloc[-1] == 1
    assert gain["cumulative_profit"].iloc[-1] == pytest.approx(gain["cumulative_profit_random"].iloc[-1])
    csv = client.get(body["download_url"], headers=auth(world, "marketer"))
    assert csv.status_code == 200 and csv.headers["content-type"].startswith("text/csv")
    assert f'filename="target-{body["list_id"]}.csv"' in csv.headers["content-disposition"]
    rows = pd.read_csv(io.StringIO(csv.text))
    stored = read(world, "select * from target_lists where list_id = ? order by rank", [body["list_id"]])
    assert len(rows) == len(stored) == s["selected"]
    assert rows["customer_id"].astype(str).tolist() == stored["customer_id"].tolist()
    assert (rows["group"] == "control").sum() == s["control"]
    treated = stored[stored["group"] == "treatment"]
    assert s["expected_profit"] == pytest.approx(treated["expected_profit"].sum(), rel=1e-9)


def test_score_now_equals_the_run_for_the_same_date(world, client, ids) -> None:
    cid = ids["customer"]
    body = client.post("/score", json={"customer_id": cid, "as_of": str(AS_OF), "reasons": 3},
                       headers=auth(world, "auditor")).json()
    stored = read(world, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    assert body["as_of"] == str(AS_OF) and body["alias"] == "champion"
    by_model = {m["model"]: m for m in body["models"]}
    assert by_model["churn"]["score"] == pytest.approx(stored["churn_risk"], rel=1e-12)
    assert by_model["response"]["score"] == pytest.approx(stored["response_prob"], rel=1e-12)
    assert by_model["value"]["score"] == pytest.approx(stored["predicted_value"], rel=1e-12)
    for m in body["models"]:
        assert len(m["reasons"]) == 3 and m["waterfall"][-1]["end"] == m["score"]
    today = client.post("/score", json={"customer_id": cid}, headers=auth(world, "admin")).json()
    assert today["as_of"] == str(date.today()) and len(today["models"]) == 3


def test_runs_lineage_and_recomputation(world, client, ids) -> None:
    runs = client.get("/runs", headers=auth(world, "auditor")).json()
    assert [r["run_id"] for r in runs] == [world["run_id"]]
    stored = read(world, "select * from scoring_runs").iloc[0]
    assert runs[0]["data_fingerprint"] == stored["data_fingerprint"] and runs[0]["customers"] == stored["customers"]
    assert runs[0]["snapshot_sha256"] == stored["snapshot_sha256"]
    detail = client.get(f"/runs/{world['run_id']}", headers=auth(world, "auditor")).json()
    assert detail["published_attempt"] == 1 and detail["attempts"][0]["churn_version"] == world["versions"]["churn"]
    again = client.get(f"/runs/{world['run_id']}/customers/{ids['customer']}/explain", headers=auth(world, "auditor"))
    body = again.json()
    assert body["mismatches"] == 0 and body["stored_rows"] == 15
    assert body["verdict"] == "recomputed reasons equal the 15 stored rows exactly"


def test_model_card_is_html_for_the_version(world, client) -> None:
    version = world["versions"]["value"]
    card = client.get(f"/models/value/card?version={version}", headers=auth(world, "auditor"))
    assert card.status_code == 200 and card.headers["content-type"].startswith("text/html")
    assert "<html" in card.text.lower() and "value" in card.text


def test_busy_warehouse_reads_from_memory_or_503_with_one_line(world, client, ids) -> None:
    """A writer holding the DuckDB file (a scoring run, say): the run in memory answers; without one, 503."""
    from fastapi.testclient import TestClient

    from serving.api import create_app

    path = world["cfg"].warehouse.url.removeprefix("duckdb:///")
    url = f"/customers/{ids['customer']}"
    before = client.get(url, headers=auth(world, "auditor"))
    assert before.status_code == 200
    holder = subprocess.Popen(
        [sys.executable, "-c", ("import duckdb, sys, time; c = duckdb.connect(sys.argv[1]); "
                                "print('held', flush=True); time.sleep(60)"), path],
        stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "held"
        health = client.get("/health").json()
        assert health["status"] == "ok" and "in use by another process" in health["warehouse"]
        assert health["scoring_run"] == world["run_id"]  # still answering from the run it holds
        during = client.get(url, headers=auth(world, "auditor"))
        assert during.status_code == 200 and during.json() == before.json()
        with TestClient(create_app(world["cfg"], world["token_file"])) as fresh:  # holds no run yet
            response = fresh.get(url, headers=auth(world, "auditor"))
            assert response.status_code == 503 and response.headers["retry-after"] == "30"
            detail = response.json()["detail"]
            assert "in use by another process" in detail and "\n" not in detail
            assert fresh.get("/health").json()["scoring_run"] is None
    finally:
        holder.kill()
        holder.wait()
    assert client.get("/health").json()["warehouse"] == "ready"
    assert client.get(url, headers=auth(world, "auditor")).status_code == 200


def test_web_page_is_served_without_a_token(client) -> None:
    page = client.get("/")
    assert page.status_code == 200 and '<script src="/static/app.js"' in page.text
    assert "default-src 'self'" in page.headers["content-security-policy"]
    for asset in ("/static/app.js", "/static/style.css"):
        assert client.get(asset).status_code == 200
    assert "http://" not in client.get("/static/app.js").text.replace("http://www.w3.org/2000/svg", "")


# -- tokens -----------------------------------------------------------------------------------

def test_token_file_holds_no_secret(world) -> None:
    text = world["token_file"].read_text()
    for secret in world["tokens"].values():
        assert secret not in text and secret.split("_")[-1] not in text
    records = json.loads(text)["tokens"]
    assert {r["role"] for r in records} >= {"marketer", "auditor", "admin"}
    assert all(len(r["sha256"]) == 64 and len(r["salt"]) == 32 for r in records)
    assert stat.S_IMODE(os.stat(world["token_file"]).st_mode) == 0o600


def test_token_store_create_list_verify_revoke(tmp_path: Path) -> None:
    store = TokenStore(tmp_path / "t.json")
    info, secret = store.create("anna", "marketer")
    assert secret.startswith(f"ppt_{info.token_id}_") and len(secret) == 4 + 12 + 1 + 43
    assert store.verify(secret) == info and store.verify(secret + "x") is None and store.verify("") is None
    other = TokenStore(tmp_path / "t.json")  # another process (the server) sees it too
    assert other.verify(secret) == info
    assert [t.name for t in store.list()] == ["anna"]
    with pytest.raises(TokenError, match="exists already"):
        store.create("anna", "admin")
    with pytest.raises(TokenError, match="role 'boss': use one of marketer, auditor, admin"):
        store.create("bob", "boss")
    with pytest.raises(TokenError, match="token name"):
        store.create("no spaces please", "admin")
    store.revoke("anna")
    assert other.verify(secret) is None and store.list() == []
    with pytest.raises(TokenError, match="no token named 'anna'"):
        store.revoke("anna")
    (tmp_path / "t.json").write_text("{not json")
    with pytest.raises(TokenError, match="unreadable or damaged"):
        TokenStore(tmp_path / "t.json").list()


def test_a_revoked_token_stops_working_on_the_running_app(world, client) -> None:
    store = TokenStore(world["token_file"])
    _info, secret = store.create("short-lived", "auditor")
    headers = {"Authorization": f"Bearer {secret}"}
    assert client.get("/runs", headers=headers).status_code == 200
    store.revoke("short-lived")
    assert client.get("/runs", headers=headers).status_code == 401


def test_tokens_cli(tmp_path: Path) -> None:
    import typer

    from serving.api_cli import register

    app = typer.Typer()
    register(app)
    runner = CliRunner()
    path = tmp_path / "tokens.json"
    made = runner.invoke(app, ["tokens", "create", "--role", "auditor", "--name", "eve", "--token-file", str(path)])
    assert made.exit_code == 0, made.output
    secret = made.stdout.strip()
    assert TokenStore(path).verify(secret).role is Role.auditor
    listed = runner.invoke(app, ["tokens", "list", "--token-file", str(path)])
    assert listed.exit_code == 0 and "eve" in listed.stdout and "auditor" in listed.stdout
    assert secret not in listed.output
    again = runner.invoke(app, ["tokens", "create", "--role", "auditor", "--name", "eve", "--token-file", str(path)])
    assert again.exit_code == 1 and "error: a token named 'eve' exists already" in again.output
    bad_role = runner.invoke(app, ["tokens", "create", "--role", "boss", "--name", "x", "--token-file", str(path)])
    assert bad_role.exit_code == 2
    gone = runner.invoke(app, ["tokens", "revoke", "eve", "--token-file", str(path)])
    assert gone.exit_code == 0 and TokenStore(path).verify(secret) is None
    assert runner.invoke(app, ["tokens", "revoke", "eve", "--token-file", str(path)]).exit_code == 1


def test_settings_defaults_and_token_path(tmp_path: Path) -> None:
    from propensity.config import Config
    from serving.api import ApiSettings, api_settings, token_file_path

    s = api_settings(Config())
    assert s == ApiSettings() and (s.host, s.port, s.token_file) == ("127.0.0.1", 8000, "api_tokens.json")
    assert token_file_path(s, tmp_path / "propensity.toml") == tmp_path / "api_tokens.json"
    assert token_file_path(ApiSettings(token_file="/etc/x.json"), tmp_path / "p.toml") == Path("/etc/x.json")


# -- monitoring (issue 14; the numbers: tests/test_monitor_report.py) ----------------------------

MONITORING = [  # path, answer for a role allowed on this world, where `propensity monitor` has not run
    ("/monitoring/runs", 200), ("/monitoring/performance", 200),
    ("/monitoring/runs/{run}", 404), ("/monitoring/report", 404),
]


@pytest.mark.parametrize("role", list(Role), ids=lambda r: r.value)
def test_monitoring_is_for_auditors_and_says_when_nothing_is_monitored(world, client, ids, role: Role) -> None:
    got = {path: client.get(_fill(path, world, ids), headers=auth(world, role)) for path, _ in MONITORING}
    for path, status in MONITORING:
        answer = got[path]
        assert answer.status_code == (status if role in (A, D) else 403), (path, answer.text)
        if status == 200 and role in (A, D):
            assert answer.json() == []
    if role in (A, D):
        assert got["/monitoring/report"].json()["detail"] == (
            "no monitored scoring run yet; run `propensity monitor` after a scoring run")
        assert got["/monitoring/runs/{run}"].json()["detail"].startswith(
            f"scoring run '{ids['run']}' has not been monitored; run `propensity monitor --run {ids['run']}`")


def test_monitoring_roles_in_the_docs(client) -> None:
    spec = client.get("/openapi.json").json()
    for path in ("/monitoring/runs", "/monitoring/runs/{run_id}", "/monitoring/performance", "/monitoring/report"):
        op = spec["paths"][path]["get"]
        assert set(op["x-roles"]) == {"auditor", "admin"} and op["security"] == [{"token": []}], path
        assert "404" in op["responses"], path


# -- what auditors see (issue 15) ----------------------------------------------------------------

def test_waterfall_adds_up_on_the_raw_scale_and_says_so(world, client, ids) -> None:
    """Bars on the page are raw contributions: baseline + contributions = raw score, each step a chain."""
    from serving.registry import champions
    from training.explain import effect_words
    from training.models import transform_raw

    body = client.get(f"/customers/{ids['customer']}", headers=auth(world, "auditor")).json()
    loaded = champions(world["cfg"])
    for m in body["models"]:
        model = loaded[m["model"]][0]
        steps = m["waterfall"]
        assert m["scale"] == ("log" if m["model"] == "value" else "log-odds")
        assert steps[0]["raw_start"] == m["base_raw"] and steps[-1]["raw_end"] == m["raw_score"]
        for a, b in itertools.pairwise(steps):
            assert a["raw_end"] == b["raw_start"]
        for step in steps:
            assert step["raw_end"] - step["raw_start"] == pytest.approx(step["contribution"], abs=1e-12)
        assert m["base_raw"] + sum(s["contribution"] for s in steps) == pytest.approx(m["raw_score"], abs=1e-9)
        out = transform_raw(model.kind, np.array([m["base_raw"], m["raw_score"]]), model.calibration_,
                            model.level_factor_)
        assert out[0] == pytest.approx(m["base_value"], rel=1e-12) and out[1] == pytest.approx(m["score"], rel=1e-9)
        assert f"baseline {m['base_raw']:.3f} + contributions = raw score {m['raw_score']:.3f}" in m["scale_note"]
        assert "not the " in m["scale_note"] and "average customer" in m["scale_note"]
        for r in m["reasons"]:  # the words `propensity explain customer` prints
            assert r["effect_text"] == effect_words(m["model"], r["contribution"], m["score"], r["effect"])


def test_customer_search_is_a_case_insensitive_prefix_match(world, client, ids) -> None:
    every = read(world, "select customer_id from current_customer_scores order by customer_id")["customer_id"].tolist()
    prefix = ids["customer"][:-1]
    expected = [c for c in every if c.lower().startswith(prefix.lower())]
    assert 1 < len(expected) <= 20
    got = client.get("/customers", params={"prefix": prefix.lower()}, headers=auth(world, "auditor"))
    assert got.status_code == 200, got.text
    assert got.json() == {"run_id": world["run_id"], "prefix": prefix.lower(), "customers": expected, "more": False}
    few = client.get("/customers", params={"prefix": prefix, "limit": 1}, headers=auth(world, "admin")).json()
    assert few["customers"] == expected[:1] and few["more"] is True
    none = client.get("/customers", params={"prefix": "no-such-"}, headers=auth(world, "auditor")).json()
    assert none["customers"] == [] and none["more"] is False
    assert client.get("/customers", params={"prefix": prefix}, headers=auth(world, "marketer")).status_code == 403
    assert client.get("/customers", params={"prefix": ""}, headers=auth(world, "auditor")).status_code == 422
