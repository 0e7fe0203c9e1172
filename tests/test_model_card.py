"""Model card: hand-computed segment metrics, the HTML's structure, and a real headless render."""

from __future__ import annotations

import base64
import math
import re
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import matplotlib.image as mpimg
import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure

from training.evaluate import (
    gain_curve,
    plot_calibration,
    plot_gain,
    plot_value_deciles,
    reliability_curve,
    value_deciles,
)
from training.model_card import (
    SECTIONS,
    CardInputs,
    band_lower_bound,
    default_limitations,
    figure_png,
    order_bands,
    performance_tables,
    redact_url,
    render_model_card,
    section_id,
    segment_performance,
)

# Three segments. A: y 1,0,1,0 at p .9,.8,.3,.1 -> pairs won 3 of 4 -> AUC 0.75.
# B: y 1,0,0 at p .2,.6,.1 -> 1 of 2 -> 0.5. C: only negatives -> no AUC.
# All nine rows: positives .9,.3,.2 against negatives .8,.1,.6,.1,.5,.4:
# .9 beats 6, .3 beats 2, .2 beats 2 -> 10 of 18 = 5/9.
BINARY = pd.DataFrame({
    "rfmw_segment": ["A", "A", "A", "A", "B", "B", "B", "C", "C"],
    "label_churn": [1, 0, 1, 0, 1, 0, 0, 0, 0],
})
BINARY_P = np.array([0.9, 0.8, 0.3, 0.1, 0.2, 0.6, 0.1, 0.5, 0.4])

# Value. X: y 10,0,5 at pred 9,1,6 -> same order: Spearman 1, Gini 1.
# Y: y 0,4,2 at pred 3,1,2 -> reversed: Spearman -1, Gini -1.
# All six: ranks y 6,1.5,5,1.5,4,3 and pred 6,1.5,5,4,1.5,3 -> rho = 10.75 / 17 = 43/68.
# Gini, pred order 9,6,3,2,{1,1}: sum of L(i) - i/n = 23.5/21; actual order: 33.5/21 -> 47/67.
VALUE = pd.DataFrame({"rfmw_segment": ["X", "X", "X", "Y", "Y", "Y"], "label_value": [10.0, 0, 5, 0, 4, 2]})
VALUE_P = np.array([9.0, 1, 6, 3, 1, 2])


def test_segment_performance_binary_by_hand():
    t = segment_performance(BINARY, BINARY_P, "label_churn", "binary", "rfmw_segment", min_rows=2)
    assert list(t["segment"]) == ["A", "B", "C", "all"]  # rows desc, "all" last
    assert list(t["rows"]) == [4, 3, 2, 9]
    assert t["actual_mean"].tolist() == pytest.approx([0.5, 1 / 3, 0.0, 3 / 9])
    assert t["predicted_mean"].tolist() == pytest.approx([0.525, 0.3, 0.45, 3.9 / 9])
    assert t["auc"].iloc[0] == pytest.approx(0.75)
    assert t["auc"].iloc[1] == pytest.approx(0.5)
    assert np.isnan(t["auc"].iloc[2])  # one class
    assert t["auc"].iloc[3] == pytest.approx(5 / 9)


def test_segment_performance_min_rows():
    t = segment_performance(BINARY, BINARY_P, "label_churn", "binary", "rfmw_segment", min_rows=4)
    assert t["auc"].iloc[0] == pytest.approx(0.75)  # A has exactly 4 rows: kept
    assert np.isnan(t["auc"].iloc[1])  # B has 3: dropped, but still counted
    assert t["rows"].iloc[1] == 3 and t["actual_mean"].iloc[1] == pytest.approx(1 / 3)
    t = segment_performance(BINARY, BINARY_P, "label_churn", "binary", "rfmw_segment", min_rows=10)
    assert t["auc"].isna().all()  # even "all" (9 rows) is below 10


def test_segment_performance_value_by_hand():
    t = segment_performance(VALUE, VALUE_P, "label_value", "value", "rfmw_segment", min_rows=3)
    assert list(t["segment"]) == ["X", "Y", "all"]  # equal sizes: by name
    assert t["actual_mean"].tolist() == pytest.approx([5.0, 2.0, 21 / 6])
    assert t["predicted_mean"].tolist() == pytest.approx([16 / 3, 2.0, 22 / 6])
    assert t["spearman"].tolist() == pytest.approx([1.0, -1.0, 43 / 68])
    assert t["gini_norm"].tolist() == pytest.approx([1.0, -1.0, 47 / 67])
    assert "auc" not in t.columns
    t = segment_performance(VALUE, VALUE_P, "label_value", "value", "rfmw_segment", min_rows=4)
    assert t["spearman"].iloc[:2].isna().all() and t["gini_norm"].iloc[2] == pytest.approx(47 / 67)


def test_segment_performance_missing_group_and_errors():
    frame = BINARY.assign(attr_age=["<30", None, "<30", None, "30+", "30+", "30+", "30+", "<30"])
    t = segment_performance(frame, BINARY_P, "label_churn", "binary", "attr_age", min_rows=1)
    assert list(t["segment"]) == ["30+", "<30", "(missing)", "all"]
    assert list(t["rows"]) == [4, 3, 2, 9]
    with pytest.raises(ValueError, match="aligned"):
        segment_performance(BINARY, BINARY_P[:-1], "label_churn", "binary", "rfmw_segment")
    with pytest.raises(ValueError, match="kind"):
        segment_performance(BINARY, BINARY_P, "label_churn", "churn", "rfmw_segment")
    with pytest.raises(ValueError, match="no column"):
        segment_performance(BINARY, BINARY_P, "label_churn", "binary", "nope")


def test_performance_tables_finds_segment_and_bands():
    frame = BINARY.assign(attr_region=["n"] * 5 + ["s"] * 4)
    seg, bands = performance_tables(frame, BINARY_P, "label_churn", "binary", min_rows=2)
    assert seg is not None and list(seg["segment"]) == ["A", "B", "C", "all"]
    assert list(bands) == ["attr_region"]
    seg, bands = performance_tables(BINARY.drop(columns="rfmw_segment"), BINARY_P, "label_churn", "binary")
    assert seg is None and bands == {}


# ---------------------------------------------------------------- the card itself

def _figures() -> dict[str, object]:
    rng = np.random.default_rng(7)
    y = (rng.random(400) < 0.3).astype(float)
    p = np.clip(0.3 + 0.35 * (y - 0.3) + rng.normal(0, 0.15, 400), 0.01, 0.99)
    base = np.clip(0.3 + 0.15 * (y - 0.3) + rng.normal(0, 0.2, 400), 0.01, 0.99)
    spend = rng.gamma(2.0, 50.0, 400)
    shap = Figure(figsize=(6, 4))
    ax = shap.subplots()
    ax.barh(["recency_days", "frequency_365d", "spend<90d>"], [0.12, 0.3, 0.45])
    ax.set_title("Global SHAP importance")
    return {
        "Gain on out-of-time test": plot_gain({"model": gain_curve(y, p), "rfm_score": gain_curve(y, base)}, "gain"),
        "Calibration (reliability)": plot_calibration({"model": reliability_curve(y, p)}, "reliability"),
        "Value deciles": plot_value_deciles(value_deciles(spend, spend * rng.uniform(0.5, 1.5, 400)), "deciles"),
        "Global SHAP importance": figure_png(shap),  # bytes as well as Figures
    }


def _card(**overrides) -> CardInputs:
    metrics = pd.DataFrame(
        {"auc": [0.7812, 0.7514, 0.7012], "log_loss": [0.4711, 0.5012, 0.5533], "lift_10": [2.91, 2.5, 2.1]},
        index=["model", "logistic_rfmw", "rfm_score"],
    )
    by_segment = segment_performance(BINARY, BINARY_P, "label_churn", "binary", "rfmw_segment", min_rows=2)
    banded = BINARY.assign(attr_age_band=["<30", "<30", "30+", "30+", "<30", "30+", "30+", "<30", "30+"])
    by_band = {"attr_age_band": segment_performance(banded, BINARY_P, "label_churn", "binary", "attr_age_band", 2)}
    card = CardInputs(
        name="churn", version="7", aliases=["champion"], run_id="0123456789abcdef0123456789abcdef",
        created_at="2026-11-02 10:15:00", purpose="Ranks customers by the chance they stop buying & <why>.",
        target_definition="no purchase in [as_of, as_of + 90 days)",
        train_cutoffs=["2025-10-01", "2026-01-01", "2026-04-01"], oot_cutoff="2026-07-01",
        rows={"train": 123456, "tune": 4567, "test": 4590},
        data_fingerprint="a1b2c3d4e5f60718", git_commit="deadbeefcafe",
        warehouse="postgresql://analyst:s3cret@db.example/warehouse",
        features_numeric=["recency_days", "frequency_365d", "spend<90d>"],
        features_categorical=["needs_style", "attr_age_band"],
        params={"learning_rate": 0.05, "num_leaves": 31, "max_rounds": 2000, "calibrated": True},
        metrics=metrics,
        calibration={"calibrated": True, "ece_before": 0.0312, "ece_after": 0.0081},
        figures=_figures(),
        importance=pd.DataFrame({"feature": ["spend<90d>", "frequency_365d", "recency_days"],
                                 "mean_abs": [0.45, 0.3, 0.12], "share": [0.5357, 0.3571, 0.1429]}),
        by_segment=by_segment,
        by_band=by_band,
        limitations=default_limitations(
            "churn", oot_cutoff="2026-07-01", train_cutoffs=["2025-10-01", "2026-01-01", "2026-04-01"],
            test_rows=4590, data_origin="synthetic", calibration={"calibrated": True, "ece_before": 0.0312,
                                                                   "ece_after": 0.0081},
            by_segment=by_segment, by_band=by_band, horizon_days=90, min_rows=2),
        promotion={"decision": "promoted", "margin": "0.005"},
    )
    for k, v in overrides.items():
        setattr(card, k, v)
    return card


class _Headings(HTMLParser):
    """Collects <h2> texts and ids, and <img> sources."""

    def __init__(self) -> None:
        super().__init__()
        self.h2: list[tuple[str, str]] = []
        self.images: list[str] = []
        self._in_h2: str | None = None
        self._text = ""

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "h2":
            self._in_h2, self._text = a.get("id") or "", ""
        if tag == "img":
            self.images.append(a.get("src") or "")

    def handle_data(self, data):
        if self._in_h2 is not None:
            self._text += data

    def handle_endtag(self, tag):
        if tag == "h2" and self._in_h2 is not None:
            self.h2.append((self._text, self._in_h2))
            self._in_h2 = None


def _parse(html_text: str) -> _Headings:
    p = _Headings()
    p.feed(html_text)
    return p


def test_card_has_every_section_in_order_and_only_inline_images():
    page = render_model_card(_card())
    parsed = _parse(page)
    assert [t for t, _ in parsed.h2] == list(SECTIONS)
    assert [i for _, i in parsed.h2] == [section_id(s) for s in SECTIONS]
    assert len({i for _, i in parsed.h2}) == len(SECTIONS)
    assert len(parsed.images) == 4
    for src in parsed.images:
        assert src.startswith("data:image/png;base64,")
        assert base64.b64decode(src.split(",", 1)[1]).startswith(b"\x89PNG\r\n\x1a\n")
    # Self-contained: nothing fetched, no scripts.
    assert "<script" not in page and "http://" not in page and "https://" not in page
    assert "<link" not in page and "@import" not in page


def test_card_figures_go_to_their_sections():
    page = render_model_card(_card())
    starts = {s: page.index(f'<h2 id="{section_id(s)}">') for s in SECTIONS}

    def section_of(alt: str) -> str:
        at = page.index(f'alt="{alt}"')
        return max((s for s in SECTIONS if starts[s] < at), key=lambda s: starts[s])

    assert section_of("Gain on out-of-time test") == "Performance against baselines"
    assert section_of("Value deciles") == "Performance against baselines"
    assert section_of("Calibration (reliability)") == "Calibration"
    assert section_of("Global SHAP importance") == "Explanations (SHAP)"


def test_card_escapes_text_and_formats_numbers():
    page = render_model_card(_card())
    assert "spend&lt;90d&gt;" in page and "spend<90d>" not in page
    assert "stop buying &amp; &lt;why&gt;." in page
    assert "123,456" in page and "4,590" in page  # counts with thousands separators
    assert "0.7812" in page and "2.9100" in page  # metrics with 4 decimals
    assert "s3cret" not in page and "postgresql://analyst:***@db.example/warehouse" in page
    # The model row of the metrics table is the highlighted one.
    row = re.search(r'<tr class="highlight"><th scope="row">([^<]*)</th>', page)
    assert row is not None and row.group(1) == "model"
    # Primary metric against the best baseline: 0.7812 - 0.7514.
    assert "+0.0298" in page and "<code>logistic_rfmw</code>" in page
    # Segment rows keep integer counts; the one-class segment shows no AUC.
    assert '<th scope="row">C</th><td class="num">2</td>' in page
    assert "—" in page
    # Header.
    assert '<span class="alias">champion</span>' in page and "0123456789abcdef0123456789abcdef" in page


def test_card_sections_say_why_they_are_empty():
    card = _card(
        name="value", figures={}, importance=None, by_segment=None, by_band={}, calibration={},
        limitations=[], promotion={},
        metrics=pd.DataFrame({"gini_norm": [0.41, 0.38]}, index=["model", "ridge_rfmw"]),
    )
    page = render_model_card(card)
    assert [t for t, _ in _parse(page).h2] == list(SECTIONS)
    assert "no demographic attributes in this warehouse" in page.lower()
    assert "No SHAP explanations were computed" in page
    assert "No RFMW segment column" in page
    assert "Not applicable: the value model predicts spend" in page
    assert "No promotion record" in page
    assert "<img" not in page


def _section(page: str, title: str) -> str:
    """The HTML between a section's <h2> and the end of that section."""
    start = page.index(f'<h2 id="{section_id(title)}">')
    return page[start:page.index("</section>", start)]


# What a training run logs for churn (training.cards.explanation_artifacts): ece_tune_* keys.
LOGGED_CALIBRATION = {"calibrated": True, "platt": [1.0034, 0.1289], "ece_tune_before": 0.0312,
                      "ece_tune_after": 0.0047, "ece_test": 0.0051}


def test_churn_calibration_shows_the_logged_numbers_not_dashes():
    metrics = pd.DataFrame({"auc": [0.78, 0.75], "ece": [0.0051, 0.02], "ece_tune_before_calibration": [0.0312, None],
                            "ece_tune_after_calibration": [0.0047, None]}, index=["model", "rfm_score"])
    card = _card(calibration=LOGGED_CALIBRATION, metrics=metrics)
    calibration = _section(render_model_card(card), "Calibration")
    assert "expected calibration error 0.0312 before, 0.0047 after" in calibration
    assert "Platt coefficients (slope, intercept)</th><td>1.0034, 0.1289" in calibration
    assert "Expected calibration error, test half</th><td>0.0051" in calibration
    assert "—" not in calibration
    limits = default_limitations("churn", oot_cutoff="x", train_cutoffs=["a"], test_rows=5000,
                                 data_origin="own", calibration=LOGGED_CALIBRATION)
    assert any("(ECE 0.0312 before, 0.0047 after)" in x for x in limits)
    # The tune-half diagnostics are model-only: not columns of the baseline table.
    performance = _section(render_model_card(card), "Performance against baselines")
    assert "ece_<wbr>tune" not in performance and "ece_tune" not in performance


def _value_card(**overrides) -> CardInputs:
    by_segment = segment_performance(VALUE, VALUE_P, "label_value", "value", "rfmw_segment", min_rows=3)
    metrics = pd.DataFrame(
        {"gini_norm": [0.41, 0.38], "rmse": [12.5, 13.1], "value_level_ratio_tune": [1.0062, None],
         "value_level_se_tune": [0.0297, None], "value_level_factor": [1.0060, None]},
        index=["model", "ridge_rfmw"],
    )
    params = {"objective": "tweedie", "tweedie_variance_power": "1.3", "value_level_correction": "True",
              "value_level_factor": "1.0060", "calibrated": "False", "learning_rate": "0.05"}
    fields = dict(name="value", metrics=metrics, params=params, by_segment=by_segment, by_band={},
                  calibration={"calibrated": False, "platt": None, "ece_tune_before": float("nan"),
                               "ece_tune_after": float("nan"), "ece_test": None},
                  figures={})
    fields.update(overrides)
    return _card(**fields)


def test_value_card_calibration_section_holds_the_level_check():
    page = render_model_card(_value_card())
    calibration = _section(page, "Calibration")
    assert "Calibration does not apply: the value model predicts spend, not a probability" in calibration
    assert "1.0062 (standard error 0.0297)" in calibration
    assert "1.0060 (level correction on)" in calibration
    # Test half, VALUE: mean predicted 22/6 = 3.67, mean actual 21/6 = 3.50, ratio 21/22 = 0.9545.
    assert "mean predicted spend</th><td>3.67" in calibration
    assert "mean actual spend</th><td>3.50" in calibration
    assert "actual / predicted</th><td>0.9545" in calibration
    assert "—" not in calibration and "recalibrated" not in calibration
    assert "value_level" not in _section(page, "Performance against baselines")


def test_gain_axis_says_what_is_captured():
    rng = np.random.default_rng(3)
    spend = rng.gamma(2.0, 50.0, 200)
    value = plot_gain({"model": gain_curve(spend, spend * rng.uniform(0.5, 1.5, 200))}, "value")
    assert value.axes[0].get_ylabel() == "share of total value captured"
    churn = plot_gain({"model": gain_curve(BINARY["label_churn"], BINARY_P)}, "churn")
    assert churn.axes[0].get_ylabel() == "share of positives captured"
    assert plot_gain({"m": gain_curve([1, 0], [0.4, 0.2])}, "t", captured="value").axes[0].get_ylabel() \
        == "share of total value captured"
    with pytest.raises(ValueError, match="captured"):
        plot_gain({"m": gain_curve([1, 0], [0.4, 0.2])}, "t", captured="spend")


@pytest.mark.parametrize(("labels", "ordered"), [
    (["25-34", "65+", "18-24", "35-44"], ["18-24", "25-34", "35-44", "65+"]),
    (["20-40k", "100k+", "0-20k", "40-60k"], ["0-20k", "20-40k", "40-60k", "100k+"]),
    (["15-24K", "250K+", "Under 15K", "100-124K"], ["Under 15K", "15-24K", "100-124K", "250K+"]),
    (["1950s", "before 1940", "1940s"], ["before 1940", "1940s", "1950s"]),
    (["north", "south", "east"], ["north", "south", "east"]),  # not bands: largest first, as given
    (["18-24", "unknown", "65+"], ["18-24", "unknown", "65+"]),  # one label is no band: as given
])
def test_order_bands_by_lower_bound(labels, ordered):
    table = pd.DataFrame({"segment": [*labels, "(missing)", "all"], "rows": range(len(labels) + 2)})
    assert list(order_bands(table)["segment"]) == [*ordered, "(missing)", "all"]


def test_band_lower_bound():
    assert band_lower_bound("18-24") == (18.0, 0.0)
    assert band_lower_bound("65+") == (65.0, 0.0)
    assert band_lower_bound("20-40k") == (20_000.0, 0.0)
    assert band_lower_bound("<30") == (-math.inf, 30.0)
    assert band_lower_bound("middle") is None


def test_card_lists_age_bands_by_age():
    # Counts: 65+ has 4 rows, 18-24 three, 25-34 two: largest first would be 65+, 18-24, 25-34.
    banded = BINARY.assign(attr_age_band=["65+", "65+", "18-24", "65+", "25-34", "18-24", "65+", "25-34", "18-24"],
                           attr_region=["n", "n", "n", "n", "n", "s", "s", "s", "e"])
    tables = {c: segment_performance(banded, BINARY_P, "label_churn", "binary", c, 2)
              for c in ("attr_age_band", "attr_region")}
    assert list(tables["attr_age_band"]["segment"]) == ["65+", "18-24", "25-34", "all"]
    band = _section(render_model_card(_card(by_band=tables)), "Performance by demographic band")
    rows = re.findall(r'<th scope="row">([^<]*)</th>', band)
    assert rows == ["18-24", "25-34", "65+", "all", "n", "s", "e", "all"]  # regions stay largest first


def test_parameters_apply_to_the_objective():
    params = {"objective": "binary", "learning_rate": 0.05, "tweedie_variance_power": 1.3, "calibrated": True}
    features = _section(render_model_card(_card(params=params)), "Features")
    assert "tweedie" not in features.replace("objective", "") and "calibrated" in features
    features = _section(render_model_card(_card(params={k: v for k, v in params.items() if k != "objective"})),
                        "Features")  # no objective logged: churn is binary
    assert "tweedie_variance_power" not in features
    value = _section(render_model_card(_value_card()), "Features")
    assert "tweedie_variance_power" in value and "value_level_factor" in value and "calibrated" not in value


def test_card_refuses_non_png_figure():
    with pytest.raises(ValueError, match="neither a matplotlib Figure nor PNG"):
        render_model_card(_card(figures={"broken": b"GIF89a..."}))


def test_default_limitations_are_specific():
    seg = segment_performance(BINARY, BINARY_P, "label_churn", "binary", "rfmw_segment", min_rows=4)
    out = default_limitations(
        "churn", oot_cutoff="2026-07-01", train_cutoffs=["2026-01-01", "2026-04-01"], test_rows=600,
        data_origin="synthetic", calibration={"calibrated": False, "ece_before": 0.004}, by_segment=seg,
        horizon_days=90, min_rows=4,
    )
    text = "\n".join(out)
    assert "one out-of-time cutoff (2026-07-01), 600 test rows" in text
    assert "2 earlier cutoff(s) (2026-01-01 to 2026-04-01)" in text
    assert "small (600 rows)" in text
    assert "synthetic sample world" in text
    assert "not recalibrated (tune-half ECE 0.0040" in text
    assert "fewer than 4 test rows (or one class) have no ranking metric: B, C." in text
    assert "No demographic attributes in this warehouse" in text
    value = default_limitations("value", oot_cutoff="x", train_cutoffs=["a"], test_rows=5000, data_origin="public")
    assert any("expected spend" in x for x in value) and any("public data set" in x for x in value)
    assert not any("small" in x for x in value)
    with pytest.raises(ValueError, match="data_origin"):
        default_limitations("value", oot_cutoff="x", train_cutoffs=[], test_rows=1, data_origin="real")


def test_redact_url():
    assert redact_url("postgresql://u:p@h:5432/db") == "postgresql://u:***@h:5432/db"
    assert redact_url("duckdb:///tmp/w.duckdb") == "duckdb:///tmp/w.duckdb"


# ---------------------------------------------------------------- a real browser

CHROMIUM_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--hide-scrollbars", "--force-device-scale-factor=1",
)


def _chromium() -> str:
    for name in ("chromium", "chromium-browser"):
        found = shutil.which(name)
        if found:
            return found
    pytest.skip("Chromium not found on PATH (apt-get install chromium); `make test` installs it "
                "through scripts/system-deps.sh")


@pytest.mark.slow
def test_headless_chromium_renders_the_card(tmp_path: Path):
    browser = _chromium()
    page = tmp_path / "model_card.html"
    page.write_text(render_model_card(_card()), encoding="utf-8")
    shot = tmp_path / "model_card.png"

    def run(*args: str, profile: str) -> subprocess.CompletedProcess[str]:
        cmd = [browser, *CHROMIUM_FLAGS, f"--user-data-dir={tmp_path / profile}", *args, page.as_uri()]
        return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=180)

    done = run(f"--screenshot={shot}", "--window-size=1280,4000", profile="profile-shot")
    print(f"model card screenshot: {shot}")
    assert shot.exists(), f"no screenshot; chromium said:\n{done.stderr[-2000:]}"
    assert shot.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    pixels = mpimg.imread(shot)  # float RGB(A) in [0, 1]
    assert pixels.shape[:2] == (4000, 1280)
    rgb = pixels[..., :3]
    assert rgb.std() > 0.05  # not one flat colour
    ink = (rgb.min(axis=2) < 0.6).mean()
    assert 0.005 < ink < 0.6  # some text and figures, mostly white page
    # The embedded figures decoded: the charts' coloured lines are in the page.
    blue = (rgb[..., 2] > 0.6) & (rgb[..., 0] < 0.3)
    assert blue.sum() > 500

    dom = run("--dump-dom", profile="profile-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert [t for t, _ in _parse(dom.stdout).h2] == list(SECTIONS)
    assert "spend&lt;90d&gt;" in dom.stdout


BINARY_METRICS = ("auc", "pr_auc", "log_loss", "brier", "ece", "lift_5", "capture_5", "lift_10", "capture_10",
                  "lift_20", "capture_20", "base_rate", "ece_tune_before_calibration", "ece_tune_after_calibration")

METRICS_TABLE_BOX = """() => {
  const table = document.querySelector('table.metrics');
  const wrap = table.closest('.table-wrap');
  const t = table.getBoundingClientRect(), w = wrap.getBoundingClientRect();
  return {tableRight: t.right, wrapRight: w.right, viewport: window.innerWidth,
          pageWidth: document.documentElement.scrollWidth, overflowX: getComputedStyle(wrap).overflowX,
          wrapScroll: wrap.scrollWidth, wrapClient: wrap.clientWidth};
}"""


@pytest.mark.slow
def test_metrics_table_fits_or_scrolls_in_chromium(tmp_path: Path):
    chromium = Path("/usr/bin/chromium")
    if not chromium.exists():
        pytest.skip(f"{chromium} not found: install Debian's chromium (scripts/system-deps.sh does)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="the playwright package is not installed")
    # Every metric a churn run logs, for the model and three baselines, as on a real card.
    metrics = pd.DataFrame(
        [[0.9339 - i / 100 for _ in BINARY_METRICS] for i in range(4)],
        index=["model", "btyd", "logistic_rfmw", "rfm_score"], columns=list(BINARY_METRICS),
    )
    page = tmp_path / "model_card.html"
    page.write_text(render_model_card(_card(metrics=metrics)), encoding="utf-8")
    flags = [f for f in CHROMIUM_FLAGS if f not in ("--headless", "--hide-scrollbars")]
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(chromium), headless=True, args=flags)
        try:
            tab = browser.new_page(viewport={"width": 1100, "height": 900})
            tab.goto(page.as_uri())
            wide = tab.evaluate(METRICS_TABLE_BOX)
            tab.locator("table.metrics").screenshot(path=str(tmp_path / "metrics_1100.png"))
            tab.set_viewport_size({"width": 600, "height": 900})
            narrow = tab.evaluate(METRICS_TABLE_BOX)
        finally:
            browser.close()
    # At 1100 px the whole table, base_rate column included, is on the page.
    assert wide["tableRight"] <= wide["viewport"], wide
    assert wide["pageWidth"] <= wide["viewport"], wide
    # Narrower, the page still does not overflow: the table scrolls inside its own box.
    assert narrow["pageWidth"] <= narrow["viewport"], narrow
    assert narrow["wrapRight"] <= narrow["viewport"], narrow
    assert narrow["overflowX"] == "auto" and narrow["wrapScroll"] > narrow["wrapClient"], narrow
