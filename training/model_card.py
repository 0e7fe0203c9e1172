"""A model card per model version: one self-contained HTML file for marketers and auditors.

Everything the page shows is inside the file: figures as base64 PNG data URIs, CSS
inline, no JavaScript, no fonts or scripts fetched from anywhere, so the card can be
mailed, archived with the MLflow run and opened offline years later.

Plain objects in, a string out: the caller (the pipeline) gathers a `CardInputs` from a
training result, the registry and the SHAP explainer, and decides where the HTML goes.
"""

from __future__ import annotations

import base64
import html
import io
import math
import numbers
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from sklearn.metrics import roc_auc_score

from training.evaluate import value_metrics

SECTIONS: tuple[str, ...] = (
    "Purpose",
    "Training data",
    "Features",
    "Performance against baselines",
    "Calibration",
    "Explanations (SHAP)",
    "Performance by RFMW segment",
    "Performance by demographic band",
    "Known limitations",
    "Lineage",
)

# The metric each model is judged on first (mirrors training.train.PRIMARY_METRIC,
# kept here so rendering a card does not import LightGBM).
PRIMARY_METRIC = {"churn": "auc", "response": "auc", "value": "gini_norm"}

# Figures go to a section by words in their title; everything else is performance.
FIGURE_SECTION_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("Calibration", ("calibration", "reliability")),
    ("Explanations (SHAP)", ("shap", "importance", "beeswarm", "dependence")),
)

# Metrics where lower is better; every other metric column is "higher is better".
LOWER_IS_BETTER = frozenset({"log_loss", "brier", "ece", "rmse"})

# Parameters only one LightGBM objective uses: a card lists them only for that objective.
OBJECTIVE_PARAMS: dict[str, frozenset[str]] = {
    "binary": frozenset({"calibrated", "calibrate_above_ece"}),
    "tweedie": frozenset({"tweedie_variance_power", "value_level_correction", "value_level_factor"}),
}

# Model-only diagnostics logged as metrics of the model row (the tune half's ECE, the
# value level): shown under Calibration, not as columns of the baseline comparison.
DIAGNOSTIC_PREFIXES: tuple[str, ...] = ("ece_tune_", "value_level_")

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
SEGMENT_COLUMN = "rfmw_segment"
BAND_PREFIX = "attr_"
MISSING_LABEL = "(missing)"


@dataclass
class CardInputs:
    """Everything a model card shows; plain values, no MLflow or model objects."""

    name: str  # churn | response | value
    version: str
    aliases: list[str]  # e.g. ["champion"]
    run_id: str
    created_at: str
    purpose: str  # one paragraph
    target_definition: str  # e.g. "no purchase in [as_of, as_of + 90 days)"
    train_cutoffs: list[str]
    oot_cutoff: str
    rows: dict[str, int]  # train / tune / test
    data_fingerprint: str
    git_commit: str
    warehouse: str
    features_numeric: list[str]
    features_categorical: list[str]
    params: dict[str, Any]
    metrics: pd.DataFrame  # index = scorer ("model", baselines...), columns = metric names
    calibration: dict[str, Any]  # e.g. {"calibrated": True, "ece_before": .., "ece_after": ..}
    figures: dict[str, bytes | Figure]  # title -> PNG bytes or matplotlib Figure
    importance: pd.DataFrame | None = None  # feature, mean_abs, share
    by_segment: pd.DataFrame | None = None  # from segment_performance(...)
    by_band: dict[str, pd.DataFrame] = field(default_factory=dict)  # attribute -> segment_performance
    limitations: list[str] = field(default_factory=list)
    promotion: dict[str, str] = field(default_factory=dict)  # promotion.* tags if any


# --------------------------------------------------------------------------- numbers


def segment_performance(
    test: pd.DataFrame,
    prediction: np.ndarray,
    target: str,
    kind: str,
    by: str,
    min_rows: int = 30,
) -> pd.DataFrame:
    """How well the model ranks inside each value of one column, and over all rows.

    Args:
        test: the out-of-time test rows, with columns `target` and `by`.
        prediction: the model's prediction per row of `test`, in the same order.
        target: the outcome column (0/1 for binary, spend for value).
        kind: "binary" (churn, response) or "value".
        by: the grouping column, e.g. "rfmw_segment" or an "attr_*" band; missing
            values form their own group "(missing)".
        min_rows: groups with fewer rows get no ranking metric (noise, not signal).

    Returns:
        One row per group, largest first (ties by name), then a final "all" row.
        Columns: segment, rows, actual_mean, predicted_mean, then auc (binary; NaN
        when a group has one class or fewer than `min_rows` rows) or spearman and
        gini_norm (value; NaN below `min_rows` or when undefined).
    """
    if kind not in ("binary", "value"):
        raise ValueError(f"kind must be 'binary' or 'value', not {kind!r}")
    for column in (target, by):
        if column not in test.columns:
            raise ValueError(f"test frame has no column {column!r}")
    pred = np.asarray(prediction, dtype="float64").ravel()
    if pred.size != len(test):
        raise ValueError(f"test has {len(test)} rows but prediction has {pred.size}; pass aligned arrays")
    y = pd.Series(test[target]).to_numpy(dtype="float64", na_value=np.nan)
    if np.isnan(y).any() or np.isnan(pred).any():
        raise ValueError(f"{target} or prediction has missing values; drop those rows first")
    if kind == "binary" and not np.isin(y, (0.0, 1.0)).all():
        raise ValueError(f"{target} must hold only 0 and 1 for kind='binary'")
    groups = test[by].astype("object").where(test[by].notna(), MISSING_LABEL).astype(str).to_numpy()

    def row(label: str, mask: np.ndarray) -> dict[str, Any]:
        yy, pp = y[mask], pred[mask]
        out: dict[str, Any] = {
            "segment": label, "rows": int(mask.sum()),
            "actual_mean": float(yy.mean()), "predicted_mean": float(pp.mean()),
        }
        enough = yy.size >= min_rows
        if kind == "binary":
            both = 0 < yy.sum() < yy.size
            out["auc"] = float(roc_auc_score(yy, pp)) if enough and both else float("nan")
        else:
            m = value_metrics(yy, pp) if enough else {}
            out["spearman"] = float(m.get("spearman", float("nan")))
            out["gini_norm"] = float(m.get("gini_norm", float("nan")))
        return out

    labels = sorted(set(groups), key=lambda g: (-int((groups == g).sum()), g))
    rows = [row(g, groups == g) for g in labels]
    rows.append(row("all", np.ones(len(groups), dtype=bool)))
    table = pd.DataFrame(rows)
    table["rows"] = table["rows"].astype("int64")
    return table


def performance_tables(
    test: pd.DataFrame, prediction: np.ndarray, target: str, kind: str, min_rows: int = 30
) -> tuple[pd.DataFrame | None, dict[str, pd.DataFrame]]:
    """`segment_performance` by RFMW segment (None without that column) and by each attr_* band."""
    by_segment = (
        segment_performance(test, prediction, target, kind, SEGMENT_COLUMN, min_rows)
        if SEGMENT_COLUMN in test.columns else None
    )
    bands = sorted(c for c in test.columns if c.startswith(BAND_PREFIX))
    by_band = {c: segment_performance(test, prediction, target, kind, c, min_rows) for c in bands}
    return by_segment, by_band


def default_limitations(
    name: str,
    *,
    oot_cutoff: str,
    train_cutoffs: Sequence[str],
    test_rows: int,
    data_origin: str,
    calibration: Mapping[str, Any] | None = None,
    by_segment: pd.DataFrame | None = None,
    by_band: Mapping[str, pd.DataFrame] | None = None,
    horizon_days: int | None = None,
    min_rows: int = 30,
) -> list[str]:
    """Honest, specific caveats for a card, from what is known about the run.

    Args:
        name: churn, response or value.
        oot_cutoff: the one out-of-time cutoff every reported metric comes from.
        train_cutoffs: the cutoffs the model was trained on.
        test_rows: rows of the out-of-time test half.
        data_origin: "synthetic" (the sample world), "public" (a public data set) or
            "own" (the user's warehouse).
        calibration: as in CardInputs.calibration (binary models).
        by_segment: segment_performance by RFMW segment, if computed.
        by_band: segment_performance per attr_* band, if any.
        horizon_days: the label horizon, when known.
        min_rows: the min_rows the segment tables were computed with.

    Returns:
        One sentence per caveat.
    """
    if data_origin not in ("synthetic", "public", "own"):
        raise ValueError(f"data_origin must be 'synthetic', 'public' or 'own', not {data_origin!r}")
    horizon = f"{horizon_days}-day " if horizon_days else ""
    out: list[str] = []
    span = f"{train_cutoffs[0]} to {train_cutoffs[-1]}" if train_cutoffs else "no recorded cutoffs"
    out.append(
        f"Every metric comes from one out-of-time cutoff ({oot_cutoff}), {test_rows:,} test rows; "
        f"training used {len(train_cutoffs)} earlier cutoff(s) ({span}). Performance in other "
        "seasons, or after a change in assortment, prices or marketing, has not been measured."
    )
    if test_rows < 1000:
        out.append(
            f"The test half is small ({test_rows:,} rows): differences of a few hundredths in AUC "
            "or Gini between the model and a baseline may be noise."
        )
    if data_origin == "synthetic":
        out.append(
            "Trained and tested on the synthetic sample world: customers behave as the generator "
            "assumes, so these numbers show the pipeline works, not how well it predicts real customers."
        )
    elif data_origin == "public":
        out.append(
            "Trained and tested on a public data set from another business, period and population; "
            "retrain and re-evaluate on your own warehouse before acting on its scores."
        )
    if name in ("churn", "response"):
        cal = dict(calibration or {})
        before, after = tune_ece(cal, "before"), tune_ece(cal, "after")
        if cal.get("calibrated"):
            out.append(
                f"Probabilities were Platt-scaled on the tune half (ECE {_num(before)} before, "
                f"{_num(after)} after); calibration holds for that cutoff's base rate and drifts "
                f"when the share of {'churners' if name == 'churn' else 'responders'} changes."
            )
        elif cal:
            out.append(
                f"Probabilities were not recalibrated (tune-half ECE {_num(before)} was under the "
                "threshold); check the reliability plot before reading scores as exact probabilities."
            )
    else:
        out.append(
            f"Predictions are expected {horizon}spend (Tweedie), returns netted and floored at zero: "
            "individual spend is highly variable, so use the ranking and decile means, not one "
            "customer's number, as a forecast."
        )
    if name == "churn":
        out.append(
            f"Churn means no purchase in the {horizon}horizon; naturally infrequent buyers can look "
            "churned without having left, and a churned customer may still return later."
        )
    if name == "response":
        out.append(
            "The response model learned from treated contacts only: it estimates the chance of a "
            "response given a contact, not the uplift the contact causes."
        )
    out.append(
        "The model sees only purchase history, returns, needs evaluations and customer attributes "
        "before the cutoff: it knows nothing of competitors, prices, service outside the warehouse, "
        "or campaigns planned after the cutoff."
    )
    small = _unscored_groups(by_segment, name)
    if small:
        out.append(
            f"Segments with fewer than {min_rows} test rows (or one class) have no ranking metric: "
            + ", ".join(small) + "."
        )
    if by_band:
        out.append(
            f"Demographic attributes ({', '.join(by_band)}) are model features; the model can "
            "reproduce differences between groups, so review the by-band table before using scores "
            "for decisions that treat people differently."
        )
    else:
        out.append(
            "No demographic attributes in this warehouse, so performance across demographic groups "
            "could not be checked."
        )
    return out


def tune_ece(calibration: Mapping[str, Any], when: str) -> Any:
    """The tune half's ECE `when` ("before" or "after") Platt scaling, or None.

    Training runs log it as `ece_tune_before` / `ece_tune_after`; hand-made inputs may
    say `ece_before` / `ece_after`.
    """
    for key in (f"ece_tune_{when}", f"ece_{when}"):
        value = calibration.get(key)
        if not _is_missing(value):
            return value
    return None


def band_lower_bound(label: str) -> tuple[float, float] | None:
    """Sort key of an ordinal band ("18-24", "65+", "20-40k", "Under 15K", "1950s"), or None.

    The band's lower bound; "under/below/before/less than/<" bands sort before every
    other, by their upper number. A unit (k, m) after the last number applies to a first
    number without one ("20-40k" starts at 20,000).
    """
    m = _BAND_START.match(label)
    if m is None:
        return None
    below, number, unit = m.group("below"), m.group("number"), m.group("unit")
    if not unit:
        tail = _BAND_UNIT_TAIL.search(label)
        unit = tail.group(1) if tail else ""
    value = float(number.replace(",", "")) * {"": 1.0, "k": 1e3, "m": 1e6}[unit.lower()]
    return (-math.inf, value) if below else (value, 0.0)


_BAND_START = re.compile(
    r"^\s*(?P<below>under|below|before|less than|<=?)?\s*[$€£]?\s*"
    r"(?P<number>\d[\d,]*(?:\.\d+)?)\s*(?P<unit>[km](?![a-z]))?",
    re.IGNORECASE,
)
_BAND_UNIT_TAIL = re.compile(r"\d\s*([km])\s*\+?\s*$", re.IGNORECASE)


def order_bands(table: pd.DataFrame) -> pd.DataFrame:
    """A segment_performance table with ordinal bands in order of their lower bound.

    Only when every group except "(missing)" is a numeric band (`band_lower_bound`);
    other attributes keep the largest-first order. "(missing)" and then "all" stay last.
    """
    labels = [str(x) for x in table["segment"]]
    groups = [x for x in labels if x not in ("all", MISSING_LABEL)]
    keys = {x: band_lower_bound(x) for x in groups}
    if len(groups) < 2 or any(k is None for k in keys.values()):
        return table
    tail = [x for x in (MISSING_LABEL, "all") if x in labels]
    order = sorted(groups, key=lambda x: keys[x]) + tail
    return table.set_index(table["segment"].astype(str)).loc[order].reset_index(drop=True)


def _unscored_groups(table: pd.DataFrame | None, name: str) -> list[str]:
    if table is None or table.empty:
        return []
    metric = "gini_norm" if name == "value" else "auc"
    if metric not in table.columns:
        return []
    groups = table[(table["segment"] != "all") & table[metric].isna()]
    return [str(s) for s in groups["segment"]]


# --------------------------------------------------------------------------- HTML


def render_model_card(card: CardInputs) -> str:
    """The model card as one self-contained HTML document.

    Args:
        card: what to show; figures may be PNG bytes or matplotlib Figures.

    Returns:
        HTML text with inline CSS and base64 PNG images; every heading of SECTIONS
        appears as an <h2> with an id, in order, even when its section is empty.
    """
    images = {title: _png_data_uri(title, fig) for title, fig in card.figures.items()}
    by_section: dict[str, list[tuple[str, str]]] = {s: [] for s in SECTIONS}
    for title, uri in images.items():
        by_section[figure_section(title)].append((title, uri))

    bodies = {
        "Purpose": _purpose(card),
        "Training data": _training_data(card),
        "Features": _features(card),
        "Performance against baselines": _performance(card) + _figures(by_section["Performance against baselines"]),
        "Calibration": _calibration(card, bool(by_section["Calibration"])) + _figures(by_section["Calibration"]),
        "Explanations (SHAP)": _explanations(card, bool(by_section["Explanations (SHAP)"]))
        + _figures(by_section["Explanations (SHAP)"]),
        "Performance by RFMW segment": _by_segment(card),
        "Performance by demographic band": _by_band(card),
        "Known limitations": _limitations(card),
        "Lineage": _lineage(card),
    }
    e = _e
    title = (f"Model card: {card.name} version {card.version}" if card.version.isdigit()
             else f"Model card: {card.name}, training run {card.run_id[:8]}")  # logged before registration
    aliases = "".join(f'<span class="alias">{e(a)}</span>' for a in card.aliases) or '<span class="muted">none</span>'
    nav = "".join(f'<li><a href="#{section_id(s)}">{e(s)}</a></li>' for s in SECTIONS)
    sections = "\n".join(
        f'<section id="section-{section_id(s)}">\n<h2 id="{section_id(s)}">{e(s)}</h2>\n{bodies[s]}\n</section>'
        for s in SECTIONS
    )
    return f"""<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>{e(title)}</title>
<style>{CSS}</style>
</head>
<body>
<header>
<h1>{e(title)}</h1>
<dl class="facts">
<div><dt>Model</dt><dd>{e(card.name)}</dd></div>
<div><dt>Version</dt><dd>{e(card.version)}</dd></div>
<div><dt>Aliases</dt><dd>{aliases}</dd></div>
<div><dt>Run</dt><dd><code>{e(card.run_id)}</code></dd></div>
<div><dt>Created</dt><dd>{e(card.created_at)}</dd></div>
</dl>
<nav><ol>{nav}</ol></nav>
</header>
<main>
{sections}
</main>
</body>
</html>
"""


def section_id(title: str) -> str:
    """The HTML id of a section heading: lower case, words joined by hyphens."""
    return re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")


def figure_section(title: str) -> str:
    """The section a figure is shown in, by words in its title (FIGURE_SECTION_WORDS)."""
    lowered = title.lower()
    for section, words in FIGURE_SECTION_WORDS:
        if any(w in lowered for w in words):
            return section
    return "Performance against baselines"


def figure_png(fig: Figure, dpi: int = 100) -> bytes:
    """A matplotlib figure as PNG bytes (the figure is not closed or changed)."""
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi, bbox_inches="tight")
    return buf.getvalue()


def _png_data_uri(title: str, image: bytes | Figure) -> str:
    data = figure_png(image) if isinstance(image, Figure) else image
    if not isinstance(data, (bytes, bytearray)) or not bytes(data).startswith(PNG_SIGNATURE):
        raise ValueError(f"figure {title!r} is neither a matplotlib Figure nor PNG bytes")
    return "data:image/png;base64," + base64.b64encode(bytes(data)).decode("ascii")


def _e(value: Any) -> str:
    return html.escape(str(value), quote=True)


def _is_missing(value: Any) -> bool:
    try:
        return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _num(value: Any, decimals: int = 4) -> str:
    """Readable text of a number: 4 decimals for floats, thousands separators for counts."""
    if _is_missing(value):
        return "—"
    if isinstance(value, (bool, np.bool_)):
        return "yes" if value else "no"
    if isinstance(value, numbers.Integral):
        return f"{int(value):,}"
    if isinstance(value, numbers.Real):
        v = float(value)
        return "—" if math.isnan(v) else f"{v:,.{decimals}f}"
    return str(value)


def _param(value: Any) -> str:
    """Parameters keep their own precision (0.05 stays 0.05)."""
    if isinstance(value, (bool, np.bool_, numbers.Integral)):
        return _num(value)
    if isinstance(value, numbers.Real):
        return "—" if math.isnan(float(value)) else f"{float(value):g}"
    return str(value)


def _table(
    frame: pd.DataFrame,
    *,
    index: str | None = None,
    highlight: str | None = None,
    percent: Sequence[str] = (),
    css_class: str = "",
    caption: str = "",
) -> str:
    """An HTML table of `frame`; `index` names the index column (None: index not shown)."""
    e = _e
    cols = list(frame.columns)
    head = ([f'<th scope="col">{e(index)}</th>'] if index is not None else [])
    # Long snake_case names may break after an underscore (<wbr>) so wide tables fit the page.
    head += [f'<th scope="col" class="{"num" if _numeric(frame[c]) else ""}">{e(c).replace("_", "_<wbr>")}</th>'
             for c in cols]
    body = []
    # Column by column, not iterrows: a row Series would turn integer counts into floats.
    values = {c: frame[c].tolist() for c in cols}
    for i, key in enumerate(frame.index):
        cls = ' class="highlight"' if highlight is not None and key == highlight else ""
        cells = [f'<th scope="row">{e(key)}</th>'] if index is not None else []
        for c in cols:
            v = values[c][i]
            if c in percent and not _is_missing(v):
                text = f"{100 * float(v):.1f} %"
            else:
                text = _num(v)
            num = ' class="num"' if isinstance(v, numbers.Number) and not isinstance(v, bool) else ""
            cells.append(f"<td{num}>{e(text)}</td>")
        body.append(f"<tr{cls}>{''.join(cells)}</tr>")
    cap = f"<caption>{e(caption)}</caption>" if caption else ""
    return (
        f'<div class="table-wrap"><table class="{e(css_class)}">{cap}<thead><tr>{"".join(head)}</tr></thead>'
        f'<tbody>{"".join(body)}</tbody></table></div>'
    )


def _numeric(series: pd.Series) -> bool:
    return pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)


def _kv(pairs: Sequence[tuple[str, str]], code: Sequence[str] = ()) -> str:
    """A two-column definition table; values are already plain text (escaped here)."""
    rows = "".join(
        f'<tr><th scope="row">{_e(k)}</th><td>{"<code>" + _e(v) + "</code>" if k in code else _e(v)}</td></tr>'
        for k, v in pairs
    )
    return f'<div class="table-wrap"><table class="kv"><tbody>{rows}</tbody></table></div>'


def _empty(text: str) -> str:
    return f'<p class="empty">{_e(text)}</p>'


def _figures(items: list[tuple[str, str]]) -> str:
    if not items:
        return ""
    figs = "".join(
        f'<figure><img src="{uri}" alt="{_e(title)}"><figcaption>{_e(title)}</figcaption></figure>'
        for title, uri in items
    )
    return f'<div class="figures">{figs}</div>'


def _purpose(card: CardInputs) -> str:
    text = card.purpose.strip()
    return f"<p>{_e(text)}</p>" if text else _empty("No purpose was written for this model.")


def _training_data(card: CardInputs) -> str:
    cutoffs = ", ".join(card.train_cutoffs) if card.train_cutoffs else "none recorded"
    rows = sum(int(v) for v in card.rows.values())
    facts = _kv([
        ("Target", card.target_definition),
        ("Training cutoffs", f"{cutoffs} ({len(card.train_cutoffs)})"),
        ("Out-of-time cutoff", card.oot_cutoff),
        ("Data fingerprint", card.data_fingerprint),
    ], code=("Data fingerprint",))
    split = pd.DataFrame(
        {"rows": [int(v) for v in card.rows.values()],
         "share": [int(v) / rows if rows else float("nan") for v in card.rows.values()]},
        index=list(card.rows),
    )
    note = (
        "<p>Training rows come from the earlier cutoffs; the out-of-time cutoff is split by customer "
        "into a <em>tune</em> half (early stopping, calibration) and a <em>test</em> half, untouched "
        "until every metric below was computed on it.</p>"
    )
    return facts + note + _table(split, index="part", percent=("share",), css_class="narrow")


def _features(card: CardInputs) -> str:
    n, c = card.features_numeric, card.features_categorical
    if not n and not c:
        return _empty("No feature list was recorded for this version.")

    def block(title: str, names: list[str]) -> str:
        items = "".join(f"<li><code>{_e(x)}</code></li>" for x in names) or '<li class="muted">none</li>'
        return f'<div><h3>{_e(title)} ({len(names)})</h3><ul class="features">{items}</ul></div>'

    params = ""
    shown = _applicable_params(card)
    if shown:
        params = "<h3>Parameters</h3>" + _kv([(str(k), _param(v)) for k, v in sorted(shown.items())])
    return f'<div class="columns">{block("Numeric", n)}{block("Categorical", c)}</div>{params}'


def objective(card: CardInputs) -> str:
    """The LightGBM objective of the card's model: "binary" or "tweedie"."""
    logged = str(card.params.get("objective", "")).strip().lower()
    if logged in OBJECTIVE_PARAMS:
        return logged
    return "tweedie" if card.name == "value" else "binary"


def _applicable_params(card: CardInputs) -> dict[str, Any]:
    """The card's parameters without those of another objective (no Tweedie power on churn)."""
    other = set().union(*(keys for obj, keys in OBJECTIVE_PARAMS.items() if obj != objective(card)))
    return {k: v for k, v in card.params.items() if str(k) not in other}


def _model_value(card: CardInputs, metric: str, param: str | None = None) -> float | None:
    """A number logged for the model row (or, failing that, as parameter `param`)."""
    m = card.metrics
    candidates = []
    if m is not None and metric in m.columns and "model" in m.index:
        candidates.append(m.loc["model", metric])
    if param is not None:
        candidates.append(card.params.get(param))
    for value in candidates:
        try:
            number = float(value)
        except (TypeError, ValueError):
            continue
        if not math.isnan(number):
            return number
    return None


def _performance(card: CardInputs) -> str:
    m = card.metrics
    if m is None or m.empty:
        return _empty("No metrics were recorded for this version.")
    m = m[[c for c in m.columns if not str(c).startswith(DIAGNOSTIC_PREFIXES)]]
    out = []
    primary = PRIMARY_METRIC.get(card.name)
    if primary in m.columns and "model" in m.index:
        model_score = m.loc["model", primary]
        baselines = m.drop(index="model")[primary].dropna()
        if not baselines.empty and not _is_missing(model_score):
            best = baselines.idxmin() if primary in LOWER_IS_BETTER else baselines.idxmax()
            diff = float(model_score) - float(baselines[best])
            out.append(
                f"<p>Primary metric <strong>{_e(primary)}</strong> on the out-of-time test half: model "
                f"<strong>{_e(_num(model_score))}</strong> against the best baseline "
                f"<code>{_e(best)}</code> {_e(_num(baselines[best]))} ({_e(f'{diff:+.4f}')}).</p>"
            )
    out.append(_table(m, index="scorer", highlight="model", css_class="metrics",
                      caption="One row per scorer on the same test rows; the model row is highlighted."))
    return "".join(out)


def _calibration(card: CardInputs, has_figure: bool) -> str:
    if objective(card) == "tweedie":
        return _level_check(card)
    cal = dict(card.calibration or {})
    before, after = tune_ece(cal, "before"), tune_ece(cal, "after")
    if before is None:
        before = _model_value(card, "ece_tune_before_calibration")
    if after is None:
        after = _model_value(card, "ece_tune_after_calibration")
    test = cal.get("ece_test")
    if _is_missing(test):
        test = _model_value(card, "ece")
    if not cal and before is None and test is None:
        return "" if has_figure else _empty("No calibration record for this version.")
    text = ""
    if cal.get("calibrated") is True:
        text = (f"<p>Probabilities were recalibrated (Platt scaling on the tune half): expected "
                f"calibration error {_e(_num(before))} before, {_e(_num(after))} after.</p>")
        if before is None or after is None:  # an old run without the tune-half numbers
            text = "<p>Probabilities were recalibrated (Platt scaling on the tune half).</p>"
    elif cal.get("calibrated") is False:
        text = ("<p>Probabilities were not recalibrated: the tune-half expected calibration error"
                + (f" ({_e(_num(before))})" if before is not None else "") + " was under the threshold.</p>")
    platt = cal.get("platt")
    pairs = [
        ("Platt-scaled on the tune half", _num(cal["calibrated"]) if "calibrated" in cal else None),
        ("Platt coefficients (slope, intercept)",
         ", ".join(_num(float(x)) for x in platt) if isinstance(platt, (list, tuple)) and platt else None),
        ("Expected calibration error, tune half, before", None if before is None else _num(before)),
        ("Expected calibration error, tune half, after", None if after is None else _num(after)),
        ("Expected calibration error, test half", None if _is_missing(test) else _num(test)),
    ]
    known = {"calibrated", "platt", "ece_tune_before", "ece_tune_after", "ece_before", "ece_after", "ece_test"}
    pairs += [(str(k), _num(v) if isinstance(v, numbers.Number) else str(v))
              for k, v in cal.items() if k not in known and not _is_missing(v)]
    # Rows without a value are left out rather than shown as a dash.
    return text + _kv([(k, v) for k, v in pairs if v is not None])


def _level_check(card: CardInputs) -> str:
    """The value model's counterpart of calibration: mean predicted against mean actual spend."""
    intro = ("<p>Calibration does not apply: the value model predicts spend, not a probability. Its "
             "counterpart is the level check: does mean predicted spend match mean actual spend?</p>")
    ratio = _model_value(card, "value_level_ratio_tune")
    se = _model_value(card, "value_level_se_tune")
    factor = _model_value(card, "value_level_factor", "value_level_factor")
    correction = str(card.params.get("value_level_correction", "")).strip().lower()
    pairs: list[tuple[str, str]] = []
    if ratio is not None:
        pairs.append(("Tune half: actual / predicted spend, before the level factor",
                      _num(ratio) + (f" (standard error {_num(se)})" if se is not None else "")))
    if factor is not None:
        applied = {"true": " (level correction on)", "false": " (level correction off)"}.get(correction, "")
        pairs.append(("Level factor multiplying every prediction", _num(factor) + applied))
    overall = _overall_means(card)
    if overall is not None:
        predicted, actual = overall
        pairs.append(("Test half: mean predicted spend", _num(predicted, 2)))
        pairs.append(("Test half: mean actual spend", _num(actual, 2)))
        if predicted > 0:
            pairs.append(("Test half: actual / predicted", _num(actual / predicted)))
    if not pairs:
        return _empty("Not applicable: the value model predicts spend, not a probability, and no level "
                      "check was recorded for this version; compare predicted and actual means by decile "
                      "under Performance.")
    return intro + _kv(pairs) + ("<p>Mean predicted and actual spend per decile of the prediction are in the "
                                 "decile chart under Performance against baselines.</p>")


def _overall_means(card: CardInputs) -> tuple[float, float] | None:
    """(mean predicted, mean actual) over the test half: the "all" row of a segment table."""
    for table in [card.by_segment, *card.by_band.values()]:
        if table is None or table.empty or not {"segment", "predicted_mean", "actual_mean"} <= set(table.columns):
            continue
        rows = table[table["segment"].astype(str) == "all"]
        if not rows.empty:
            return float(rows["predicted_mean"].iloc[0]), float(rows["actual_mean"].iloc[0])
    return None


def _explanations(card: CardInputs, has_figure: bool) -> str:
    imp = card.importance
    if (imp is None or imp.empty) and not has_figure:
        return _empty("No SHAP explanations were computed for this version.")
    if imp is None or imp.empty:
        return ""
    frame = imp.reset_index(drop=True)
    rows = []
    for _, r in frame.iterrows():
        share = float(r["share"]) if "share" in frame.columns and not _is_missing(r["share"]) else float("nan")
        width = 0.0 if math.isnan(share) else max(0.0, min(100.0, 100 * share))
        rows.append(
            f'<tr><td><code>{_e(r["feature"])}</code></td><td class="num">{_e(_num(r.get("mean_abs")))}</td>'
            f'<td class="num">{_e("—" if math.isnan(share) else f"{100 * share:.1f} %")}</td>'
            f'<td class="bar"><span style="width:{width:.1f}%"></span></td></tr>'
        )
    return (
        "<p>Mean absolute SHAP value per feature on the test half: how much, on average, the feature "
        "moves a customer's prediction (on the model's raw scale).</p>"
        '<div class="table-wrap"><table class="importance"><thead><tr><th scope="col">feature</th>'
        '<th scope="col" class="num">mean |SHAP|</th><th scope="col" class="num">share</th>'
        f'<th scope="col"></th></tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
    )


def _segment_table(table: pd.DataFrame, label: str) -> str:
    frame = table.set_index("segment")
    return _table(frame, index=label, highlight="all", css_class="segments")


def _by_segment(card: CardInputs) -> str:
    if card.by_segment is None or card.by_segment.empty:
        return _empty(f"No RFMW segment column ({SEGMENT_COLUMN}) in the test rows of this model.")
    return ("<p>Ranking quality inside each RFMW segment of the test half; metrics are left empty for "
            "segments too small to measure or holding a single class.</p>" + _segment_table(card.by_segment, "segment"))


def _by_band(card: CardInputs) -> str:
    if not card.by_band:
        return _empty("No demographic attributes in this warehouse (no attr_* columns), "
                      "so performance by band could not be checked.")
    parts = [f"<h3><code>{_e(attr)}</code></h3>{_segment_table(order_bands(t), 'band')}"
             for attr, t in card.by_band.items()]
    return "".join(parts)


def _limitations(card: CardInputs) -> str:
    if not card.limitations:
        return _empty("No limitations were recorded for this version; that does not mean there are none.")
    return "<ul>" + "".join(f"<li>{_e(x)}</li>" for x in card.limitations) + "</ul>"


def redact_url(url: str) -> str:
    """A connection URL with any password replaced by ***."""
    return re.sub(r"(//[^:/@]+):[^@/]*@", r"\1:***@", url)


def _lineage(card: CardInputs) -> str:
    pairs = [
        ("Registered model", card.name),
        ("Version", card.version),
        ("Aliases", ", ".join(card.aliases) or "none"),
        ("MLflow run", card.run_id),
        ("Created", card.created_at),
        ("Git commit", card.git_commit),
        ("Data fingerprint", card.data_fingerprint),
        ("Warehouse", redact_url(card.warehouse)),
    ]
    out = _kv(pairs, code=("MLflow run", "Git commit", "Data fingerprint", "Warehouse"))
    if card.promotion:
        out += "<h3>Promotion record</h3>" + _kv([(str(k), str(v)) for k, v in sorted(card.promotion.items())])
    else:
        out += _empty("No promotion record: this version has not been through the promotion gate.")
    return out


CSS = """
:root { --ink: #1d2330; --muted: #5b6475; --line: #d8dde6; --accent: #1f5fa8; --hl: #fff4cc; }
* { box-sizing: border-box; }
body { font: 14px/1.45 -apple-system, "Segoe UI", "Liberation Sans", Arial, sans-serif; color: var(--ink);
       margin: 0 auto; max-width: 1180px; padding: 24px 32px 48px; background: #fff; }
header { border-bottom: 3px solid var(--accent); margin-bottom: 8px; }
h1 { font-size: 26px; margin: 0 0 12px; }
h2 { font-size: 20px; margin: 32px 0 10px; padding-bottom: 4px; border-bottom: 1px solid var(--line); color: var(--accent); }
h3 { font-size: 15px; margin: 18px 0 6px; }
dl.facts { display: flex; flex-wrap: wrap; gap: 8px 28px; margin: 0 0 12px; }
dl.facts div { display: flex; gap: 6px; align-items: baseline; }
dl.facts dt { color: var(--muted); font-size: 12px; text-transform: uppercase; letter-spacing: .04em; }
dl.facts dd { margin: 0; font-weight: 600; }
.alias { display: inline-block; background: var(--accent); color: #fff; border-radius: 10px; padding: 0 8px;
         margin-right: 4px; font-size: 12px; }
nav ol { columns: 2; margin: 0 0 14px; padding-left: 20px; font-size: 13px; }
nav a { color: var(--accent); text-decoration: none; }
code { font: 12.5px/1.3 "Liberation Mono", Menlo, Consolas, monospace; background: #f3f5f8; padding: 0 3px; border-radius: 3px; }
.table-wrap { overflow-x: auto; max-width: 100%; }
table.metrics thead th, table.segments thead th { white-space: normal; }
table { border-collapse: collapse; margin: 6px 0 12px; font-size: 13px; }
caption { caption-side: bottom; text-align: left; color: var(--muted); font-size: 12px; padding-top: 4px; }
th, td { border-bottom: 1px solid var(--line); padding: 4px 10px; text-align: left; vertical-align: top; }
thead th { border-bottom: 2px solid var(--ink); white-space: nowrap; }
.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
table.kv th { color: var(--muted); font-weight: 600; white-space: nowrap; }
tr.highlight td, tr.highlight th { background: var(--hl); font-weight: 700; }
td.bar { width: 220px; }
td.bar span { display: block; height: 10px; background: var(--accent); border-radius: 2px; }
.columns { display: flex; gap: 40px; flex-wrap: wrap; }
ul.features { columns: 2; padding-left: 18px; margin: 0; }
.figures { display: flex; flex-wrap: wrap; gap: 16px; }
figure { margin: 0; border: 1px solid var(--line); padding: 8px; border-radius: 4px; }
figure img { display: block; max-width: 100%; width: 520px; height: auto; }
figcaption { color: var(--muted); font-size: 12px; margin-top: 4px; }
.empty, .muted { color: var(--muted); font-style: italic; }
@media print {
  body { max-width: none; padding: 0; font-size: 10pt; }
  nav { display: none; }
  h2 { break-after: avoid; page-break-after: avoid; }
  figure, table, tr { break-inside: avoid; page-break-inside: avoid; }
  .table-wrap { overflow: visible; }
  tr.highlight td, tr.highlight th { -webkit-print-color-adjust: exact; print-color-adjust: exact; }
  a { color: inherit; }
}
@page { margin: 14mm; }
"""
