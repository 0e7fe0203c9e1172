"""The web page in headless Chromium (Debian's /usr/bin/chromium, driven by Playwright).

The app runs under uvicorn in a thread on 127.0.0.1 and a free port, over the same
scored sample world as test_api. A marketer signs in with a token, builds a target
list, sees the gain chart and downloads the CSV; an auditor looks up a customer and
sees a reason waterfall per model, the model card and the run's lineage. Screenshots
go to the test's tmp folder and to tests/.artifacts/ (kept by CI).
"""

from __future__ import annotations

import shutil
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from serving.tokens import Role
from tests.test_api import _campaign, read, scored_world

CHROMIUM = Path("/usr/bin/chromium")
# Flags for a root, offline, headless machine (see the machine notes): no sandbox, no GPU,
# no background connections that the closed network would refuse.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync"]
ARTIFACTS = Path(__file__).resolve().parent / ".artifacts"

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def serving_app(cfg, token_file: Path) -> Iterator[str]:
    """The app under uvicorn in a background thread on a free port; yields its base URL."""
    import uvicorn

    from serving.api import create_app

    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(create_app(cfg, token_file), host="127.0.0.1", port=port,
                                        log_level="warning", lifespan="off"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not srv.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("uvicorn did not start within 30 s")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(timeout=10)


@contextmanager
def chromium_browser() -> Iterator[object]:
    """Headless Chromium under Playwright; each launch has a fresh, empty profile of its own."""
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """The app under uvicorn in a background thread; yields (base URL, world)."""
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} not found: install Debian's chromium (scripts/system-deps.sh does)")
    pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    world = scored_world(tmp_path_factory)
    with serving_app(world["cfg"], world["token_file"]) as base:
        yield base, world


@pytest.fixture(scope="module")
def browser(server):
    with chromium_browser() as b:
        yield b


@pytest.fixture
def page(browser, tmp_path):
    context = browser.new_context(viewport={"width": 1100, "height": 900}, accept_downloads=True)
    pg = context.new_page()
    pg.set_default_timeout(60_000)
    errors: list[str] = []
    pg.on("pageerror", lambda e: errors.append(str(e)))
    yield pg
    context.close()
    assert not errors, f"JavaScript errors on the page: {errors}"


def shoot(page, tmp_path: Path, name: str) -> Path:
    """Screenshot into the test's tmp folder and a copy into tests/.artifacts/ for CI."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    ARTIFACTS.mkdir(exist_ok=True)
    shutil.copy(path, ARTIFACTS / path.name)
    assert path.stat().st_size > 5_000
    return path


def click(page, selector: str) -> None:
    """Scroll the element into view, then click it.

    Seen here: after the page scrolled down to the model-card frame, Playwright's own
    scroll-and-click on a link at the top landed no click event; scrolling first does.
    """
    target = page.locator(selector)
    target.scroll_into_view_if_needed()
    target.click()


def sign_in(page, base: str, token: str) -> None:
    page.goto(base + "/")
    page.fill("#token", token)
    click(page, "#login-form button[type=submit]")
    page.wait_for_selector("#whoami:has-text('signed in as')")


def test_wrong_token_shows_the_api_message(server, page) -> None:
    base, _world = server
    page.goto(base + "/")
    page.fill("#token", "ppt_000000000000_" + "A" * 43)
    click(page, "#login-form button[type=submit]")
    page.wait_for_selector("#login-error:not([hidden])")
    assert page.inner_text("#login-error") == "Not signed in: unknown or revoked token"
    assert page.is_visible("#login-view") and not page.is_visible("#marketer-view")


def test_marketer_builds_a_target_list_and_sees_the_gain_chart(server, page, tmp_path: Path) -> None:
    base, world = server
    sign_in(page, base, world["tokens"][Role.marketer])
    assert page.inner_text("#whoami") == "signed in as test-marketer (marketer)"
    assert page.is_visible("#tab-marketer") and not page.is_visible("#tab-auditor")
    page.wait_for_selector("#segments table")
    campaign = _campaign(world)
    page.select_option("#campaign", campaign)

    # an invalid budget: the API's 422 message is shown on the page
    page.fill("#budget", "0")
    click(page, "#build")
    page.wait_for_selector("#target-error:not([hidden])")
    assert "budget: Input should be greater than 0" in page.inner_text("#target-error")

    page.fill("#budget", "80")
    page.fill("#cost", "2")
    page.fill("#margin", "0.3")
    page.fill("#control", "20")
    click(page, "#build")
    page.wait_for_selector("#gain-svg polyline[data-series=model]")
    assert not page.is_visible("#target-error")
    points = page.get_attribute("#gain-svg polyline[data-series=model]", "points").split()
    assert len(points) >= 20
    xs = [float(p.split(",")[0]) for p in points]
    assert xs == sorted(xs) and xs[-1] > xs[0]
    assert len(page.get_attribute("#gain-svg polyline[data-series=random]", "points").split()) == len(points)
    contacted = int(page.inner_text("[data-fact=contacted] dd").replace(",", ""))
    control = int(page.inner_text("[data-fact=control-group] dd").replace(",", ""))
    assert 0 < contacted <= 40 and control == round(0.2 * (contacted + control))
    assert page.inner_text("[data-fact=expected-profit] dd")
    list_id = page.inner_text("#list-id")
    shoot(page, tmp_path, "marketer-target-list")

    with page.expect_download() as info:
        click(page, "#download")
    saved = tmp_path / "list.csv"
    info.value.save_as(saved)
    rows = pd.read_csv(saved)
    stored = read(world, "select customer_id, \"group\" from target_lists where list_id = ? order by rank", [list_id])
    assert rows["customer_id"].astype(str).tolist() == stored["customer_id"].tolist()
    assert (rows["group"] == "control").sum() == control


def test_auditor_sees_reason_waterfalls_card_and_lineage(server, page, tmp_path: Path) -> None:
    base, world = server
    sign_in(page, base, world["tokens"][Role.auditor])
    assert page.is_visible("#auditor-view") and not page.is_visible("#tab-marketer")

    page.fill("#customer-id", "NOT-A-CUSTOMER")
    click(page, "#lookup")
    page.wait_for_selector("#customer-error:not([hidden])")
    assert page.inner_text("#customer-error").startswith("Not found: customer 'NOT-A-CUSTOMER' is not in the current")

    customer = read(world, "select customer_id from current_customer_scores order by customer_id limit 1 offset 11")
    cid = customer["customer_id"][0]
    reasons = read(world, "select model, feature from current_score_reasons where customer_id = ? order by model, rank",
                   [cid])
    page.fill("#customer-id", cid)
    click(page, "#lookup")
    page.wait_for_selector("#models article.model[data-model=value] svg rect[data-step]")
    assert not page.is_visible("#customer-error")
    for model in ("churn", "response", "value"):
        article = f"#models article.model[data-model={model}]"
        bars = page.locator(f"{article} svg rect[data-step]")
        expected = reasons[reasons["model"] == model]["feature"].tolist()
        assert bars.count() == len(expected) + 1  # one bar per reason and one for the rest
        assert [bars.nth(i).get_attribute("data-step") for i in range(len(expected))] == expected
        assert page.locator(f"{article} ol.reasons li").count() == len(expected)
    shoot(page, tmp_path, "auditor-customer-reasons")

    click(page, "#models article.model[data-model=churn] a.card-link")
    page.wait_for_selector("#doc-panel:not([hidden]) #doc-frame")
    frame = page.frame_locator("#doc-frame")
    assert "churn" in frame.locator("body").inner_text(timeout=60_000).lower()
    shoot(page, tmp_path, "auditor-model-card")

    click(page, "#lineage-link")
    page.wait_for_selector("#doc-lineage:not([hidden]) dl.fields")
    assert world["run_id"] in page.inner_text("#doc-lineage") and '"run_id"' not in page.inner_text("#doc-lineage")
    click(page, "#recompute")
    page.wait_for_selector("#recompute-result.ok")
    assert page.inner_text("#recompute-result") == "recomputed reasons equal the 15 stored rows exactly"
    shoot(page, tmp_path, "auditor-lineage")
