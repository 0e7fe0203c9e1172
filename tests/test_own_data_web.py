"""The API and web page on runs that lack a model: they say what is missing instead of failing.

Two small sample worlds, each with one published scoring run:

- **sales only**: the sample world without its campaigns and contacts tables (a business
  with transactions, customers and needs evaluations only), so only churn and value are
  trained and promoted; the run's response columns are null and `missing_models` says why;
- **no churn**: the whole sample world, with response and value promoted but no churn model.

Every endpoint the page uses answers 200 with the absent model's fields null and a
`missing` explanation; target lists are built without campaigns (ranked by value at
risk, predicted value or churn risk); in headless Chromium the missing model's panel
shows the message in words while the other panels show numbers. Screenshots go to
tests/.artifacts/. Promotion uses force=True: the worlds are too small for the gate's
evidence checks, which is beside the point here.
"""

from __future__ import annotations

import io
import shutil
from contextlib import ExitStack
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from features.load import Warehouse
from serving.tokens import Role, TokenStore
from tests.test_web import CHROMIUM, chromium_browser, click, serving_app, shoot, sign_in
from training.explain import share_text

CUSTOMERS = 2000
AS_OF = date(2025, 6, 1)
SALES_ONLY_DROPPED = ("campaigns", "contacts", "rejected_campaigns", "rejected_contacts")
RESPONSE_NULL = ["response_prob", "expected_profit", "response_decile", "profit_decile", "response_tier", "profit_tier"]
CHURN_NULL = ["churn_risk", "churn_decile", "churn_tier"]
_WORLDS: dict[str, dict] = {}


def _world(tmp_path_factory: pytest.TempPathFactory, kind: str) -> dict:
    """A scored world: "sales_only" (churn + value, no campaigns) or "no_churn" (response + value)."""
    if kind in _WORLDS:
        return _WORLDS[kind]
    from features.synth import SynthConfig
    from features.synth_import import load_sample_world
    from propensity.config import project_in
    from serving.batch import run_scoring
    from training.pipeline import promote_models, train_and_log

    folder = tmp_path_factory.mktemp(kind)
    cfg = project_in(folder)
    names = ["churn", "value"] if kind == "sales_only" else ["response", "value"]
    with Warehouse(cfg.warehouse.url) as wh:
        load_sample_world(wh, SynthConfig(customers=CUSTOMERS, seed=2))
        if kind == "sales_only":
            for table in SALES_ONLY_DROPPED:
                wh.duck().execute(f"drop table if exists {table}")
        train_and_log(names, wh, cfg)
        promote_models(names, wh, cfg, margin=0.0, force=True)  # small world: past the evidence checks
        summary = run_scoring(wh, cfg, AS_OF, chunk_size=1000)
    store = TokenStore(folder / "api_tokens.json")
    tokens = {role: store.create(f"test-{role.value}", role)[1] for role in Role}
    _WORLDS[kind] = dict(cfg=cfg, folder=folder, run_id=summary.run_id, versions=summary.versions,
                         token_file=store.path, tokens=tokens, missing=dict(summary.missing))
    return _WORLDS[kind]


@pytest.fixture(scope="module")
def sales_only(tmp_path_factory):
    return _world(tmp_path_factory, "sales_only")


@pytest.fixture(scope="module")
def no_churn(tmp_path_factory):
    return _world(tmp_path_factory, "no_churn")


def _client(world: dict):
    from fastapi.testclient import TestClient

    from serving.api import create_app

    return TestClient(create_app(world["cfg"], world["token_file"]))


@pytest.fixture(scope="module")
def client(sales_only):
    with _client(sales_only) as c:
        yield c


@pytest.fixture(scope="module")
def client_no_churn(no_churn):
    with _client(no_churn) as c:
        yield c


def auth(world: dict, role: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {world['tokens'][Role(role)]}"}


def read(world: dict, sql: str, params: list | None = None) -> pd.DataFrame:
    with Warehouse(world["cfg"].warehouse.url, read_only=True) as wh:
        return wh.native_query(sql, params or [])


def a_customer(world: dict, offset: int = 7) -> str:
    ids = read(world, f"select customer_id from current_customer_scores order by customer_id limit 1 offset {offset}")
    return str(ids["customer_id"][0])


def value_at_risk_order(world: dict) -> pd.DataFrame:
    """Every scored customer by churn risk x predicted value, highest first (ties by id), from the warehouse."""
    s = read(world, "select customer_id, churn_risk, predicted_value from current_customer_scores")
    s["value_at_risk"] = s["churn_risk"].astype(float) * s["predicted_value"].astype(float)
    return s.sort_values(["value_at_risk", "customer_id"], ascending=[False, True]).reset_index(drop=True)


# -- the worlds are what the tests claim ------------------------------------------------------

def test_the_sales_only_run_has_no_response_scores_and_says_why(sales_only) -> None:
    run = read(sales_only, "select * from scoring_runs where status = 'succeeded'").iloc[0]
    assert run["response_version"] is None and run["campaign_kind"] is None
    assert str(run["churn_version"]) == sales_only["versions"]["churn"]
    assert run["missing_models"].startswith("response: no response@champion in the registry")
    assert "campaigns and contacts" in run["missing_models"]
    scores = read(sales_only, "select * from current_customer_scores")
    assert len(scores) > 1500 and scores[RESPONSE_NULL].isna().all().all()
    assert scores[["churn_risk", "predicted_value"]].notna().all().all()
    models = read(sales_only, "select distinct model from current_score_reasons order by 1")["model"].tolist()
    assert models == ["churn", "value"]


# -- the API on the sales-only run ----------------------------------------------------------

def test_recorded_missing_models_parse(sales_only) -> None:
    from serving.sink import parse_missing as recorded_missing

    text = ("response: no response@champion in the registry; it needs campaigns and contacts tables; import them; "
            "churn: no churn@champion: the promotion gate refused churn version 2 (too small)")
    assert recorded_missing(text) == {
        "response": "no response@champion in the registry; it needs campaigns and contacts tables; import them",
        "churn": "no churn@champion: the promotion gate refused churn version 2 (too small)"}
    assert recorded_missing(None) == {} and recorded_missing(float("nan")) == {}
    run = read(sales_only, "select missing_models from scoring_runs")["missing_models"][0]
    assert recorded_missing(run) == {"response": sales_only["missing"]["response"]}


def _response_missing(body: dict, world: dict) -> dict:
    [missing] = body["missing"]
    assert missing["model"] == "response"
    assert missing["reason"] == world["missing"]["response"]  # the run's own words
    assert missing["message"].startswith("No response model: this business has no campaign history yet, "
                                         "so there is no response probability and no expected profit. "
                                         "No response@champion in the registry; it needs campaigns and contacts")
    assert "\n" not in missing["message"] and missing["null_columns"] == RESPONSE_NULL
    return missing


def test_customer_has_null_response_fields_numbers_for_the_rest(sales_only, client) -> None:
    cid = a_customer(sales_only)
    response = client.get(f"/customers/{cid}", headers=auth(sales_only, "auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    stored = read(sales_only, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    reasons = read(sales_only, "select * from current_score_reasons where customer_id = ? order by model, rank", [cid])
    for column in RESPONSE_NULL:
        assert body["scores"][column] is None, column
    assert body["scores"]["churn_risk"] == stored["churn_risk"] and body["scores"]["predicted_value"] == stored["predicted_value"]
    assert body["scores"]["churn_tier"] == stored["churn_tier"]
    _response_missing(body, sales_only)
    assert [m["model"] for m in body["models"]] == ["churn", "value"]
    for m, column in zip(body["models"], ("churn_risk", "predicted_value")):
        assert m["score"] == stored[column] and m["version"] == sales_only["versions"][m["model"]]
        assert [r["feature"] for r in m["reasons"]] == reasons[reasons["model"] == m["model"]]["feature"].tolist()
        assert m["waterfall"][-1]["end"] == m["score"]


def test_segment_summary_means_are_null_for_response_only(sales_only, client) -> None:
    body = client.get("/segments/summary", headers=auth(sales_only, "marketer")).json()
    _response_missing(body, sales_only)
    joined = read(sales_only, "select * from current_customer_scores s join current_customer_segments g "
                              "using (customer_id)")
    expected = joined.groupby("rfmw_segment").agg(churn=("churn_risk", "mean"), value=("predicted_value", "mean"))
    for group in body["by"]["rfmw_segment"]:
        assert group["mean_response_prob"] is None and group["mean_expected_profit"] is None
        assert group["mean_churn_risk"] == pytest.approx(expected.loc[group["value"], "churn"], rel=1e-9)
        assert group["mean_predicted_value"] == pytest.approx(expected.loc[group["value"], "value"], rel=1e-9)
    assert [g["value"] for g in body["by"]["response_tier"]] == [None]  # one group: no tiers without scores


def test_target_options_without_campaigns(sales_only, client) -> None:
    body = client.get("/targets/options", headers=auth(sales_only, "marketer")).json()
    assert body["run_id"] == sales_only["run_id"] and body["campaigns"] == [] and body["free_name"] is True
    _response_missing(body, sales_only)
    choices = {c["value"]: c for c in body["rank_by"]}
    assert list(choices) == ["auto", "uplift", "expected_profit", "value_at_risk", "value", "churn"]
    assert {k for k, c in choices.items() if c["available"]} == {"auto", "value_at_risk", "value", "churn"}
    assert choices["expected_profit"]["why_not"] == "needs response scores, which this run does not have"
    assert choices["auto"]["label"] == "automatic: value at risk (churn risk x predicted value)"
    assert not any(c["needs_campaign"] or c["has_profit"] for c in choices.values() if c["available"])
    assert client.get("/campaigns", headers=auth(sales_only, "marketer")).json() == []


def test_target_list_without_campaigns_ranks_by_value_at_risk(sales_only, client) -> None:
    budget, cost = 60.0, 2.0
    made = client.post("/targets", json={"campaign": "winback june", "budget": budget, "cost": cost,
                                         "control": 0.25, "seed": 1}, headers=auth(sales_only, "marketer"))
    assert made.status_code == 200, made.text
    body = made.json()
    s, ranking = body["summary"], body["ranking"]
    assert body["method"] == ranking["method"] == "value_at_risk" and ranking["has_profit"] is False
    assert ranking["axis"] == "cumulative value at risk" and ranking["measure"] == "value at risk"
    assert s["campaign_kind"] is None and s["contacted"] == budget // cost == 30
    assert s["selected"] == s["contacted"] + s["control"] and s["control"] == 10
    for key in ("expected_profit", "expected_responders", "incremental_profit"):
        assert s[key] is None, key
    _response_missing(body, sales_only)

    order = value_at_risk_order(sales_only)  # the ranking, recomputed from the published scores
    csv = client.get(body["download_url"], headers=auth(sales_only, "marketer"))
    assert csv.status_code == 200 and body["download_url"].startswith("/targets/winback-june-")  # a slug: no space in ids or file names
    rows = pd.read_csv(io.StringIO(csv.text))
    assert rows["customer_id"].astype(str).tolist() == order["customer_id"][: s["selected"]].tolist()
    assert (rows["group"] == "control").sum() == s["control"] and rows["expected_profit"].isna().all()
    treated = order.set_index("customer_id").loc[rows.loc[rows["group"] == "treatment", "customer_id"].astype(str)]
    assert ranking["contacted_total"] == pytest.approx(treated["value_at_risk"].sum(), rel=1e-12)
    gain = pd.DataFrame(body["gain"])
    assert gain["cumulative_profit"].isna().all() and gain["share_contacted"].iloc[-1] == 1
    assert gain["cumulative"].iloc[-1] == pytest.approx(order["value_at_risk"].sum(), rel=1e-9)
    assert gain["cumulative_random"].iloc[-1] == pytest.approx(gain["cumulative"].iloc[-1], rel=1e-12)
    at = gain.iloc[1]  # the top 1 %: the ranking beats a random order
    assert at["cumulative"] == pytest.approx(order["value_at_risk"][: int(at["customers"])].sum(), rel=1e-9)
    assert at["cumulative"] > 3 * at["cumulative_random"]


@pytest.mark.parametrize("rank_by, method, axis", [
    ("value", "value", "cumulative predicted value"),
    ("churn", "churn", "cumulative churn risk (expected churners)"),
])
def test_target_list_by_value_or_churn(sales_only, client, rank_by: str, method: str, axis: str) -> None:
    body = client.post("/targets", json={"campaign": "list-b", "top": 25, "rank_by": rank_by, "control": 0},
                       headers=auth(sales_only, "marketer")).json()
    assert body["method"] == method and body["ranking"]["axis"] == axis and body["summary"]["contacted"] == 25
    column = {"value": "predicted_value", "churn": "churn_risk"}[method]
    top = read(sales_only, f"select {column} from current_customer_scores order by {column} desc, customer_id limit 25")
    assert body["ranking"]["contacted_total"] == pytest.approx(top[column].sum(), rel=1e-12)


@pytest.mark.parametrize("body, message", [
    ({"campaign": "x", "top": 5, "rank_by": "expected_profit"}, "expected_profit"),
    ({"campaign": "x", "top": 5, "rank_by": "uplift"}, "uplift"),
    ({"campaign": "x", "top": 5, "rank_by": "lifetime"}, "rank_by: Input should be"),
    ({"campaign": "a/b", "top": 5}, "cannot contain '/'"),
])
def test_a_ranking_the_run_cannot_give_is_422(sales_only, client, body: dict, message: str) -> None:
    response = client.post("/targets", json=body, headers=auth(sales_only, "marketer"))
    assert response.status_code == 422, response.text
    detail = response.json()["detail"]
    assert message in detail and "\n" not in detail


def test_score_now_uses_the_champions_that_exist(sales_only, client) -> None:
    cid = a_customer(sales_only)
    response = client.post("/score", json={"customer_id": cid, "as_of": str(AS_OF), "reasons": 3},
                           headers=auth(sales_only, "auditor"))
    assert response.status_code == 200, response.text
    body = response.json()
    stored = read(sales_only, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    by_model = {m["model"]: m for m in body["models"]}
    assert list(by_model) == ["churn", "value"]
    assert by_model["churn"]["score"] == pytest.approx(stored["churn_risk"], rel=1e-12)
    assert by_model["value"]["score"] == pytest.approx(stored["predicted_value"], rel=1e-12)
    [missing] = body["missing"]
    assert missing["model"] == "response" and missing["message"].startswith("No response model: this business")
    assert "campaigns and contacts" in missing["reason"]


def test_model_card_of_a_missing_model_is_404_with_one_line(sales_only, client) -> None:
    response = client.get("/models/response/card", headers=auth(sales_only, "auditor"))
    assert response.status_code == 404
    detail = response.json()["detail"]
    assert detail.startswith("no response model card: no response@champion in the registry; it needs campaigns")
    assert "\n" not in detail
    assert client.get("/models/response/card?version=challenger", headers=auth(sales_only, "auditor")).status_code == 404
    assert client.get("/models/churn/card", headers=auth(sales_only, "auditor")).status_code == 200


def test_runs_and_lineage_show_the_missing_model(sales_only, client) -> None:
    runs = client.get("/runs", headers=auth(sales_only, "auditor")).json()
    assert [r["run_id"] for r in runs] == [sales_only["run_id"]]
    assert runs[0]["response_version"] is None and runs[0]["missing_models"].startswith("response: ")
    assert [m["model"] for m in runs[0]["missing"]] == ["response"]
    detail = client.get(f"/runs/{sales_only['run_id']}", headers=auth(sales_only, "auditor")).json()
    _response_missing(detail, sales_only)
    cid = a_customer(sales_only)
    again = client.get(f"/runs/{sales_only['run_id']}/customers/{cid}/explain", headers=auth(sales_only, "auditor"))
    assert again.status_code == 200, again.text
    body = again.json()
    assert body["mismatches"] == 0 and body["stored_rows"] == 10
    assert body["verdict"] == "recomputed reasons equal the 10 stored rows exactly"
    assert [m["model"] for m in body["models"]] == ["churn", "value"]
    _response_missing(body, sales_only)
    health = client.get("/health").json()
    assert health["warehouse"] == "ready" and health["scoring_run"] == sales_only["run_id"]
    segments = client.get(f"/customers/{cid}/segments", headers=auth(sales_only, "marketer"))
    assert segments.status_code == 200 and segments.json()["segments"]["rfmw_segment"]


# -- the API on the run without churn -------------------------------------------------------------

def test_a_run_without_churn(no_churn, client_no_churn) -> None:
    c, headers = client_no_churn, auth(no_churn, "admin")
    cid = a_customer(no_churn)
    body = c.get(f"/customers/{cid}", headers=headers).json()
    [missing] = body["missing"]
    assert missing["model"] == "churn" and missing["null_columns"] == CHURN_NULL
    assert missing["message"].startswith("No churn model in this run, so there is no churn risk (and no value at "
                                         "risk). No churn@champion in the registry; train and promote it")
    assert all(body["scores"][col] is None for col in CHURN_NULL)
    stored = read(no_churn, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    assert stored["response_prob"] is not None and body["scores"]["response_prob"] == stored["response_prob"]
    assert [m["model"] for m in body["models"]] == ["response", "value"]

    options = c.get("/targets/options", headers=headers).json()
    available = {o["value"] for o in options["rank_by"] if o["available"]}
    assert available == {"auto", "expected_profit", "value"} and options["free_name"] is False
    assert options["campaigns"] and all(o["needs_campaign"] for o in options["rank_by"])
    kind = options["campaigns"][0]["kind"]
    made = c.post("/targets", json={"campaign": kind, "budget": 40, "cost": 2.0}, headers=headers)
    assert made.status_code == 200, made.text
    assert made.json()["method"] == "expected_profit" and made.json()["ranking"]["axis"] == "cumulative expected profit"
    assert made.json()["summary"]["expected_profit"] is not None
    refused = c.post("/targets", json={"campaign": kind, "top": 5, "rank_by": "value_at_risk"}, headers=headers)
    assert refused.status_code == 422 and "churn" in refused.json()["detail"]

    summary = c.get("/segments/summary", headers=headers).json()
    assert all(g["mean_churn_risk"] is None and g["mean_response_prob"] is not None
               for g in summary["by"]["rfmw_segment"])
    scored = c.post("/score", json={"customer_id": cid, "as_of": str(AS_OF)}, headers=headers).json()
    assert [m["model"] for m in scored["models"]] == ["response", "value"]
    assert [m["model"] for m in scored["missing"]] == ["churn"]
    assert c.get("/models/churn/card", headers=headers).status_code == 404
    explained = c.get(f"/runs/{no_churn['run_id']}/customers/{cid}/explain", headers=headers).json()
    assert explained["mismatches"] == 0 and [m["model"] for m in explained["missing"]] == ["churn"]


# -- the page in headless Chromium --------------------------------------------------------------

@pytest.fixture(scope="module")
def servers(sales_only, no_churn):
    """Both apps under uvicorn in background threads: kind -> (base URL, world)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/system-deps.sh does)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with ExitStack() as stack:
        yield {kind: (stack.enter_context(serving_app(world["cfg"], world["token_file"])), world)
               for kind, world in (("sales_only", sales_only), ("no_churn", no_churn))}


@pytest.fixture(scope="module")
def browser(servers):
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def _no_nan(page) -> None:
    text = page.inner_text("main")
    assert "NaN" not in text and "undefined" not in text and "null" not in text.replace("null_columns", "")


@pytest.mark.slow
def test_marketer_builds_a_list_without_campaigns(servers, page, tmp_path: Path) -> None:
    base, world = servers["sales_only"]
    sign_in(page, base, world["tokens"][Role.marketer])
    note = page.wait_for_selector("#marketer-missing .missing-note[data-missing=response]")
    assert note.inner_text().startswith("No response model: this business has no campaign history yet")
    options = page.eval_on_selector_all("#rank-by option", "os => os.map(o => [o.value, o.disabled])")
    assert options == [["auto", False], ["uplift", True], ["expected_profit", True], ["value_at_risk", False],
                       ["value", False], ["churn", False]]
    assert page.input_value("#rank-by") == "auto"
    assert page.is_visible("#list-name") and not page.is_visible("#campaign") and not page.is_visible("#margin")
    assert "no profit estimate" in page.inner_text("#rank-note")
    page.wait_for_selector("#segments table")
    headers = page.eval_on_selector_all("#segments th", "hs => hs.map(h => h.textContent)")
    assert headers == ["RFMW segment", "customers", "churn risk", "predicted value"]
    assert page.inner_text("#segments-left-out") == "Not shown, the run has no model for them: response, expected profit."

    page.fill("#list-name", "winback june")
    page.fill("#budget", "60")
    page.fill("#cost", "2")
    page.fill("#control", "25")
    click(page, "#build")
    page.wait_for_selector("#gain-svg polyline[data-series=model]")
    assert not page.is_visible("#target-error")
    assert page.text_content("#gain-y-label") == "cumulative value at risk"
    assert "cumulative value at risk" in page.inner_text("#gain-caption")
    assert page.inner_text("[data-fact=ranked-by] dd") == "value at risk"
    assert int(page.inner_text("[data-fact=contacted] dd")) == 30
    assert int(page.inner_text("[data-fact=control-group] dd")) == 10
    assert page.locator("[data-fact=expected-profit]").count() == 0  # no empty profit figures
    assert page.locator("[data-fact=expected-responders]").count() == 0
    order = value_at_risk_order(world)
    list_id = page.inner_text("#list-id")
    stored = read(world, "select customer_id, \"group\" from target_lists where list_id = ? order by rank", [list_id])
    assert stored["customer_id"].tolist() == order["customer_id"][:40].tolist()
    treated = order.set_index("customer_id").loc[stored.loc[stored["group"] == "treatment", "customer_id"]]
    shown = float(page.inner_text("[data-fact=ranked-total] dd").replace(",", ""))
    assert shown == pytest.approx(treated["value_at_risk"].sum(), abs=0.006)
    notes = page.inner_text("#target-notes")
    assert "Ranked by value at risk (churn risk x predicted value)" in notes
    assert "No expected responders or profit for this list. No response model:" in notes
    _no_nan(page)
    shoot(page, tmp_path, "own-data-marketer-value-at-risk")

    with page.expect_download() as info:
        click(page, "#download")
    saved = tmp_path / "list.csv"
    info.value.save_as(saved)
    assert pd.read_csv(saved)["customer_id"].astype(str).tolist() == stored["customer_id"].tolist()

    page.select_option("#rank-by", "churn")
    click(page, "#build")
    page.wait_for_selector("#gain-y-label:has-text('churn risk')")
    assert page.text_content("#gain-y-label") == "cumulative churn risk (expected churners)"
    assert page.inner_text("[data-fact=ranked-by] dd") == "churn risk"
    _no_nan(page)


@pytest.mark.slow
def test_auditor_sees_the_missing_response_model_in_words(servers, page, tmp_path: Path) -> None:
    base, world = servers["sales_only"]
    sign_in(page, base, world["tokens"][Role.auditor])
    cid = a_customer(world, offset=11)
    stored = read(world, "select * from current_customer_scores where customer_id = ?", [cid]).iloc[0]
    reasons = read(world, "select model, feature from current_score_reasons where customer_id = ? order by model, rank",
                   [cid])
    page.fill("#customer-id", cid)
    click(page, "#lookup")
    page.wait_for_selector("#models article.model[data-model=value] svg rect[data-step]")
    assert not page.is_visible("#customer-error")
    models = page.eval_on_selector_all("#models article.model", "as => as.map(a => a.dataset.model)")
    assert models == ["churn", "response", "value"]
    panel = "#models article.model[data-model=response]"
    assert "missing" in page.get_attribute(panel, "class")
    message = page.inner_text(f"{panel} .missing-note")
    assert message.startswith("No response model: this business has no campaign history yet, so there is no "
                              "response probability and no expected profit. No response@champion in the registry")
    assert page.locator(f"{panel} svg").count() == 0 and page.locator(f"{panel} a.card-link").count() == 0
    for model, column in (("churn", "churn_risk"), ("value", "predicted_value")):
        article = f"#models article.model[data-model={model}]"
        expected = reasons[reasons["model"] == model]["feature"].tolist()
        assert page.locator(f"{article} svg rect[data-step]").count() == len(expected) + 1
        assert page.locator(f"{article} ol.reasons li").count() == len(expected)
        shown = share_text(stored[column]) if model == "churn" else f"{stored[column]:,.2f}"
        assert shown in page.inner_text(f"{article} h3")
    head = page.inner_text("#customer-head")
    assert f"churn risk {share_text(stored['churn_risk'])}" in head and "response no response model" in head
    click(page, "#customer-result details summary")
    assert "no response model" in page.inner_text("#customer-tables")
    _no_nan(page)
    shoot(page, tmp_path, "own-data-auditor-customer")

    click(page, "#lineage-link")
    page.wait_for_selector("#doc-note:not([hidden]) .missing-note[data-missing=response]")
    assert page.inner_text("#doc-note").startswith("No response model: this business has no campaign history yet")
    assert "models missing\tresponse: no response@champion" in page.inner_text("#doc-lineage")
    click(page, "#recompute")
    page.wait_for_selector("#recompute-result.ok")
    assert page.inner_text("#recompute-result") == "recomputed reasons equal the 10 stored rows exactly"
    shoot(page, tmp_path, "own-data-auditor-lineage")


@pytest.mark.slow
def test_page_on_a_run_without_churn(servers, page, tmp_path: Path) -> None:
    base, world = servers["no_churn"]
    sign_in(page, base, world["tokens"][Role.admin])
    page.wait_for_selector("#marketer-missing .missing-note[data-missing=churn]")
    assert page.is_visible("#campaign") and not page.is_visible("#list-name")
    options = dict(page.eval_on_selector_all("#rank-by option", "os => os.map(o => [o.value, o.disabled])"))
    assert options == {"auto": False, "uplift": True, "expected_profit": False, "value_at_risk": True,
                       "value": False, "churn": True}
    page.wait_for_selector("#segments table")
    click(page, "#build")
    page.wait_for_selector("#gain-svg polyline[data-series=model]")
    assert page.text_content("#gain-y-label") == "cumulative expected profit"
    assert page.inner_text("[data-fact=expected-profit] dd")
    _no_nan(page)

    click(page, "#tab-auditor")
    page.fill("#customer-id", a_customer(world))
    click(page, "#lookup")
    page.wait_for_selector("#models article.model[data-model=response] svg rect[data-step]")
    assert page.inner_text("#models article.model[data-model=churn] .missing-note").startswith(
        "No churn model in this run, so there is no churn risk")
    assert page.locator("#models article.model[data-model=value] svg rect[data-step]").count() > 1
    assert "churn risk no churn model" in page.inner_text("#customer-head")
    _no_nan(page)
    shoot(page, tmp_path, "no-churn-auditor-customer")
