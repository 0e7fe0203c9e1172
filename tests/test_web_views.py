"""What marketers and auditors see on the web page (issue 15), in headless Chromium.

The fixtures (app under uvicorn over the scored sample world, Chromium, a page that
fails on any JavaScript error) are test_web's. Checked here: the reason waterfall's bars
follow the reasons (on the raw scale each bar is as long as its |contribution|), the
reason sizes in words, readable lineage and segments, integer deciles, errors and
unknown customers that leave nothing old on the page, the customer search, campaign ids
in the picker, the profit-maximising list size, and the model card opening at its top.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import requests

from serving.tokens import Role
from tests.test_api import _campaign, read
from tests.test_web import browser, click, page, server, shoot, sign_in  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow

READABLE = {"cant_lose_them": "Can't lose them", "loyal_narrow": "Loyal, few categories", "at_risk": "At risk",
            "new_customers": "New customers", "potential_loyalists": "Potential loyalists",
            "about_to_sleep": "About to sleep", "champions": "Champions", "lost": "Lost"}


def api(base: str, world: dict, role: Role, path: str, **kwargs) -> dict:
    answer = requests.request(kwargs.pop("method", "GET"), base + path, timeout=60,
                              headers={"Authorization": f"Bearer {world['tokens'][role]}"}, **kwargs)
    assert answer.status_code == 200, answer.text
    return answer.json()


def a_customer(world: dict, offset: int = 11) -> str:
    return read(world, "select customer_id from current_customer_scores order by customer_id limit 1 offset ?",
                [offset])["customer_id"][0]


def look_up(page, cid: str) -> None:
    page.fill("#customer-id", cid)
    click(page, "#lookup")
    page.wait_for_selector("#models article.model[data-model=value] svg rect[data-step]")


def test_waterfall_bars_follow_the_reasons_and_say_their_size(server, page, tmp_path: Path) -> None:
    base, world = server
    cid = a_customer(world)
    detail = api(base, world, Role.auditor, f"/customers/{cid}")
    sign_in(page, base, world["tokens"][Role.auditor])
    look_up(page, cid)
    for m in detail["models"]:
        article = f"#models article.model[data-model={m['model']}]"
        bars = page.locator(f"{article} svg rect[data-step]")
        n = len(m["reasons"])
        assert bars.count() == n + 1
        steps = [bars.nth(i).get_attribute("data-step") for i in range(n)]
        assert steps == [r["feature"] for r in m["reasons"]]
        widths = [float(bars.nth(i).get_attribute("width")) for i in range(n)]
        sizes = [abs(r["contribution"]) for r in m["reasons"]]
        assert widths == sorted(widths, reverse=True), (m["model"], widths)  # the biggest reason, the longest bar
        per_unit = widths[0] / sizes[0]  # one scale for every bar: width = |contribution| x pixels per unit
        for w, size in zip(widths, sizes):
            assert w == pytest.approx(max(1.0, size * per_unit), rel=1e-6, abs=1e-6)
        labels = page.locator(f"{article} svg text").evaluate_all("ns => ns.map((n) => n.textContent)")
        assert any(t.startswith("model baseline: raw ") for t in labels)
        assert any(t.startswith("score: raw ") for t in labels)
        chart = page.inner_text(article)
        assert "average customer" not in " ".join(labels) and "base value" not in chart
        assert "not the " in page.inner_text(f"{article} .scale-note")
        items = page.locator(f"{article} ol.reasons li").all_inner_texts()
        for item, r in zip(items, m["reasons"]):
            assert r["effect_text"] in item and "without it the" in item
            assert re.search(r"(multiplies|divides) the (odds|predicted value) by [\d,.]+", item)
    shoot(page, tmp_path, "views-waterfalls")


def test_customer_tables_show_integers_readable_names_and_no_dash_for_a_value(server, page) -> None:
    base, world = server
    cid = a_customer(world, 3)
    detail = api(base, world, Role.auditor, f"/customers/{cid}")
    sign_in(page, base, world["tokens"][Role.auditor])
    look_up(page, cid)
    page.click("#customer-result details summary")
    rows = page.locator("#customer-tables tr").all_inner_texts()
    cells = {}
    for row in rows:
        parts = row.split("\t")
        if len(parts) == 2:
            cells[parts[0].strip()] = parts[1].strip()
    everything = {**detail["scores"], **detail["segments"]}
    for key, value in everything.items():
        shown = cells[key.replace("_", " ")]
        if value is not None:  # a dash or "none" only where the API has no value (value_tier may be 'none')
            assert shown not in ("–", "—", "") and (shown != "none" or value == "none"), (key, value, shown)
        if key.endswith("_decile") and value is not None:
            assert shown == str(int(value)), (key, shown)  # 10, not 10.0000
    segment, name = detail["segments"]["rfmw_segment"], cells["rfmw segment"]
    assert "_" not in name and name[0].isupper() and name == READABLE.get(segment, name), (segment, name)
    assert f"segment {cells['rfmw segment']}," in page.inner_text("#customer-head")


def test_lineage_is_a_readable_table_and_the_card_opens_at_its_top(server, page, tmp_path: Path) -> None:
    base, world = server
    sign_in(page, base, world["tokens"][Role.auditor])
    look_up(page, a_customer(world))
    click(page, "#models article.model[data-model=value] a.card-link")
    page.wait_for_selector("#doc-panel:not([hidden]) #doc-frame:not([hidden])")
    page.frame_locator("#doc-frame").locator("body").inner_text(timeout=60_000)
    for _ in range(100):  # the scroll may be smooth; the page's CSP refuses wait_for_function's eval
        top = page.evaluate("document.getElementById('doc-panel').getBoundingClientRect().top")
        if abs(top) < 5:
            break
        page.wait_for_timeout(50)
    assert abs(top) < 5  # the panel's top at the top of the window, not its bottom

    click(page, "#lineage-link")
    page.wait_for_selector("#doc-lineage:not([hidden]) dl.fields")
    assert not page.is_visible("#doc-frame")
    text = page.inner_text("#doc-lineage")
    assert world["run_id"] in text and "published attempt" in text and "churn model version" in text
    body = page.inner_text("body")
    assert '{"' not in body and '":' not in body and '"run_id"' not in body  # no raw JSON anywhere
    assert page.locator("#doc-lineage table.fields th[scope=row]").count() >= 8
    shoot(page, tmp_path, "views-lineage")


def test_an_unknown_customer_clears_the_last_one_and_closes_the_lineage(server, page) -> None:
    base, world = server
    sign_in(page, base, world["tokens"][Role.auditor])
    look_up(page, a_customer(world))
    click(page, "#lineage-link")
    page.wait_for_selector("#doc-lineage:not([hidden]) dl.fields")
    page.fill("#customer-id", "NOT-A-CUSTOMER")
    click(page, "#lookup")
    page.wait_for_selector("#customer-error:not([hidden])")
    assert page.inner_text("#customer-error").startswith("Not found: customer 'NOT-A-CUSTOMER'")
    assert not page.is_visible("#doc-panel") and not page.is_visible("#customer-result")
    assert page.locator("#models article").count() == 0 and page.inner_text("#doc-lineage") == ""


def test_customer_search_lists_ids_by_prefix_and_looks_one_up(server, page) -> None:
    base, world = server
    cid = a_customer(world, 25)
    prefix = cid[:-1].lower()
    expected = api(base, world, Role.auditor, "/customers", params={"prefix": prefix, "limit": 10})["customers"]
    assert cid in expected
    sign_in(page, base, world["tokens"][Role.auditor])
    page.fill("#customer-id", prefix)
    page.wait_for_selector("#customer-matches button.match")
    shown = page.locator("#customer-matches button.match").all_inner_texts()
    assert shown == expected
    click(page, f"#customer-matches button.match[data-customer='{cid}']")
    page.wait_for_selector("#models article.model[data-model=churn] svg rect[data-step]")
    assert page.inner_text("#customer-head").startswith(f"customer {cid} in scoring run")
    page.fill("#customer-id", "zz-nobody")
    page.wait_for_selector("#customer-matches:has-text('no customer id starts with')")


def test_segments_campaigns_best_size_and_errors_for_marketers(server, page, tmp_path: Path) -> None:
    base, world = server
    summary = api(base, world, Role.marketer, "/segments/summary")
    campaigns = api(base, world, Role.marketer, "/campaigns")
    sign_in(page, base, world["tokens"][Role.marketer])
    page.wait_for_selector("#segments table")

    names = page.locator("#segments tbody tr td:first-child").all_inner_texts()
    assert len(names) == len(summary["by"]["rfmw_segment"])
    assert all("_" not in n for n in names)
    ids = [g["value"] for g in summary["by"]["rfmw_segment"]]
    for i, segment in enumerate(ids):
        assert names[i] == READABLE.get(segment, names[i]), (segment, names[i])

    offered = page.locator("#campaign-ids option").evaluate_all("os => os.map(o => o.value)")
    assert offered == [c["campaign"] for c in campaigns] and offered  # every campaign id, not only kinds
    assert page.locator("#campaign-kinds option").count() == len({c["kind"] for c in campaigns})

    page.select_option("#campaign", _campaign(world))
    page.fill("#budget", "400")
    page.fill("#cost", "1")
    with page.expect_response(lambda r: r.url.endswith("/targets") and r.request.method == "POST") as info:
        click(page, "#build")
    result = info.value.json()
    page.wait_for_selector("#gain-svg polyline[data-series=model]")
    gain = result["gain"]
    if result["ranking"]["has_profit"]:
        best = max(gain, key=lambda p: p["cumulative"])  # first of the highest: the smallest such list
        dot = page.locator("#gain-best-point")
        assert int(dot.get_attribute("data-customers")) == best["customers"]
        words = page.inner_text("#gain-best")
        assert f"{best['customers']:,}" in words and f"{best['cumulative']:,.2f}" in words
    assert page.text_content("#gain-y-label") == result["ranking"]["axis"]  # e.g. "cumulative expected profit"
    assert "added up over the customers contacted so far" in page.inner_text("#gain-caption")
    shoot(page, tmp_path, "views-target-list")

    # an error clears the list above which it would otherwise stand
    page.fill("#budget", "0")
    click(page, "#build")
    page.wait_for_selector("#target-error:not([hidden])")
    assert not page.is_visible("#target-result") and page.locator("#gain-svg").count() == 0
    assert page.inner_text("#list-id") == ""
