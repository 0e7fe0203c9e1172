"""The monitoring report and the web page's Monitoring tab in headless Chromium (Debian's /usr/bin/chromium).

Over the hand-made monitoring rows of tests/test_monitor_report.py (nothing trained): the
report file opened from disk renders every section, with SVG charts of non-zero size,
no console error and no request leaving the file; an auditor signs in, opens the
Monitoring tab, sees the runs with the alerted one marked and the report in its frame;
a marketer has no such tab. Screenshots go to the test's tmp folder and tests/.artifacts/.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest

from features.load import Warehouse
from monitoring import tables
from serving.tokens import Role
from tests.test_monitor_report import R1, R2, SECTION_IDS, fill_warehouse
from tests.test_web import CHROMIUM, chromium_browser, click, serving_app, shoot, sign_in

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory) -> dict:
    """The hand-made warehouse, its report file, and a token of each role."""
    from monitoring.report import write_report
    from propensity.config import Config, WarehouseConfig
    from serving.tokens import TokenStore

    folder = tmp_path_factory.mktemp("monitor_web")
    url = f"duckdb:///{folder / 'warehouse.duckdb'}"
    fill_warehouse(url)
    with Warehouse(url, read_only=True) as wh:
        report = write_report(wh, None, folder / "report.html")
    store = TokenStore(folder / "tokens.json")
    tokens = {role: store.create(f"test-{role.value}", role)[1] for role in Role}
    return {"cfg": Config(warehouse=WarehouseConfig(url=url)), "report": report, "token_file": store.path,
            "tokens": tokens}


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/system-deps.sh does)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser):
    """A page that fails on a script error and records console errors and every request it makes."""
    context = browser.new_context(viewport={"width": 1100, "height": 900})
    pg = context.new_page()
    pg.set_default_timeout(30_000)
    errors: list[str] = []
    pg.console_errors, pg.requests = [], []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    # a missing favicon is the browser's own request, not the page's
    pg.on("console", lambda m: pg.console_errors.append(f"{m.text} ({m.location.get('url')})")
          if m.type == "error" and not str(m.location.get("url", "")).endswith("/favicon.ico") else None)
    pg.on("request", lambda r: pg.requests.append(r.url))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def assert_report_rendered(frame, where: str) -> None:
    """Every section visible with its heading; every chart an SVG with a real size."""
    for key in SECTION_IDS:
        section = frame.locator(f"section#{key}")
        assert section.is_visible(), f"{where}: section {key} not visible"
        assert section.locator("h2").inner_text().strip(), key
    charts = frame.locator("svg.chart")
    assert charts.count() >= 9, where
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 200 and box["height"] > 50, (where, i, box)
    # the alerted feature's bar is drawn red and longer than the others of its model
    churn = frame.locator("section#feature-drift article[data-model=churn]")
    alert_bar = churn.locator("rect.bar.alert").first.bounding_box()
    other = churn.locator("rect.bar:not(.alert)").first.bounding_box()
    assert alert_bar["width"] > other["width"] > 0
    # the feature named <script> is shown as text, not run
    assert "<script>alert('x')</script>" in churn.inner_text()


def test_the_report_file_renders_offline(world, page, tmp_path: Path) -> None:
    url = Path(world["report"]).resolve().as_uri()
    page.goto(url)
    assert_report_rendered(page, "report file")
    assert page.title().startswith(f"Monitoring report: run {R2}")
    assert page.requests == [url]  # nothing but the file itself: no style, font, image or script from elsewhere
    assert page.console_errors == []
    shoot(page, tmp_path, "monitoring-report")


@pytest.fixture(scope="module")
def server(world):
    """The app under uvicorn in a background thread, over the hand-made warehouse."""
    with serving_app(world["cfg"], world["token_file"]) as base:
        yield base


def test_auditor_sees_monitored_runs_and_reports(world, server, page, tmp_path: Path) -> None:
    sign_in(page, server, world["tokens"][Role.auditor])
    assert page.is_visible("#tab-monitoring") and not page.is_visible("#tab-marketer")
    click(page, "#tab-monitoring")
    page.wait_for_selector("#monitoring-table tbody tr")
    assert page.is_visible("#monitoring-view") and not page.is_visible("#auditor-view")
    rows = page.locator("#monitoring-table tbody tr")
    assert [rows.nth(i).get_attribute("data-run") for i in range(rows.count())] == [R2, R1]  # latest first
    latest = page.locator(f"#monitoring-table tr[data-run='{R2}']")
    assert "alert" in latest.get_attribute("class") and "ALERT" in latest.inner_text()
    assert "0.338" in latest.inner_text()  # churn's score PSI
    assert "alert" not in (page.locator(f"#monitoring-table tr[data-run='{R1}']").get_attribute("class") or "")
    # the alerted row is drawn in another colour than the calm one
    colour = lambda run: page.eval_on_selector(  # noqa: E731
        f"#monitoring-table tr[data-run='{run}'] td", "td => getComputedStyle(td).backgroundColor")
    assert colour(R2) != colour(R1)

    page.wait_for_selector("#report-panel:not([hidden])")
    frame = page.frame_locator("#report-frame")
    frame.locator("section#data-checks").wait_for()
    assert f"scoring run {R2}" in frame.locator("header").inner_text()
    assert_report_rendered(frame, "latest run in the tab")
    shoot(page, tmp_path, "monitoring-tab")

    click(page, f"#monitoring-table button[data-run='{R1}']")
    frame.locator(f"header:has-text('{R1}')").wait_for()
    assert "chosen" in page.locator(f"#monitoring-table tr[data-run='{R1}']").get_attribute("class")
    assert "no alert" in frame.locator("section#summary").inner_text()
    assert "Champions" in frame.locator("section#performance").inner_text()
    assert page.console_errors == []


def test_marketer_has_no_monitoring_tab(world, server, page) -> None:
    sign_in(page, server, world["tokens"][Role.marketer])
    assert not page.is_visible("#tab-monitoring") and not page.is_visible("#monitoring-view")


# -- a real run: `propensity monitor` writes the tables, the report is read from them ------------------

CLEAN, DRIFTED = date(2025, 4, 1), date(2025, 6, 29)  # the models' out-of-time date; the last day of the data
PRICE_RISE = "price-rise:factor=0.25,rise=1.0"  # from CLEAN: price-oriented customers buy less, pay more


@pytest.fixture(scope="module")
def real_world(tmp_path_factory, monitored_champions) -> dict:
    """The monitoring tests' session champions (tests/conftest.py), a world whose prices rise from their
    out-of-time date, a run on each side of it, and `propensity monitor` on the later one."""
    from typer.testing import CliRunner

    from features.synth import parse_drift
    from propensity.cli import app
    from propensity.config import config_toml
    from serving.batch import run_scoring

    folder = tmp_path_factory.mktemp("monitor_web_real")
    cfg = monitored_champions(folder, drift=(parse_drift(PRICE_RISE, CLEAN),))
    with Warehouse(cfg.warehouse.url) as wh:
        runs = [run_scoring(wh, cfg, day, any_date=True).run_id for day in (CLEAN, DRIFTED)]
    toml = folder / "propensity.toml"
    toml.write_text(config_toml(cfg))
    report = folder / "report.html"
    res = CliRunner().invoke(app, ["monitor", "--config", str(toml), "--report", str(report)])
    assert res.exit_code == 3, res.output  # the price rise is an alert
    return {"cfg": cfg, "runs": runs, "report": report, "output": res.output}


def test_the_report_of_a_real_monitored_run(real_world, page, tmp_path: Path) -> None:
    from monitoring.report import write_report

    latest = real_world["runs"][-1]
    with Warehouse(real_world["cfg"].warehouse.url, read_only=True) as wh:
        ours = write_report(wh, None, tmp_path / "real.html", real_world["cfg"].monitoring)
        modelled = wh.query(f"select model, count(*) as n from {tables.FEATURES} where run_id = ? and segment = 'all' "
                            "group by model", [latest])
        alerted = wh.query(f"select model, segment, feature from {tables.FEATURES} where run_id = ? and alert "
                           "order by model, segment, feature", [latest])
    assert real_world["report"].exists()  # the command's own copy
    page.goto(ours.resolve().as_uri())
    assert latest in page.locator("header").inner_text()
    for key in SECTION_IDS:
        assert page.locator(f"section#{key}").is_visible(), key
    drift = page.locator("section#feature-drift")
    for r in modelled.itertuples():  # one PSI bar per feature the run's rows over all customers hold
        assert drift.locator(f"article[data-model={r.model}] rect.bar").count() == r.n, r.model
    # the monitor's alerts (exit 3) are the summary's: a red bar for a feature over all customers, a line for
    # each, and a marked row for a shift confined to a segment
    alerts = page.locator("section#summary ul.alerts").inner_text()
    assert page.locator("section#summary ul.alerts li").count() == int(page.inner_text("[data-fact=alerts] dd")) > 0
    everyone = alerted[alerted["segment"] == "all"]
    red = {(m, drift.locator(f"article[data-model={m}] rect.bar.alert").nth(i).get_attribute("data-feature"))
           for m in modelled["model"]
           for i in range(drift.locator(f"article[data-model={m}] rect.bar.alert").count())}
    assert red == set(everyone[["model", "feature"]].itertuples(index=False, name=None))
    for r in alerted.itertuples():
        where = "" if r.segment == "all" else f" in {r.segment}"
        assert f"{r.model} v1: feature {r.feature} PSI" in alerts and where in alerts, r
    printed = [line.strip().removeprefix("ALERT ") for line in real_world["output"].splitlines()
               if line.strip().startswith("ALERT ")]
    assert len(printed) == page.locator("section#summary ul.alerts li").count()  # the command's alerts, one each
    for line in printed:
        assert line.split(" PSI ")[0].split(" (")[0] in alerts, line
    charts = page.locator("svg.chart")
    assert charts.count() >= len(modelled) * 2
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box["width"] > 200 and box["height"] > 50, (i, box)
    assert "realised" in page.locator("section#performance").inner_text()  # the clean run's horizon has elapsed
    assert page.requests == [ours.resolve().as_uri()] and page.console_errors == []
    shoot(page, tmp_path, "monitoring-report-real")
