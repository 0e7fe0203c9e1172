"""The monitoring report: one self-contained HTML file per monitored scoring run.

Reads only the monitoring tables (`monitoring.tables`) and `scoring_runs`; computes
nothing a reader would have to trust beyond what `propensity monitor` wrote. The file
loads nothing from elsewhere: CSS is inline, every chart is inline SVG drawn here from
the numbers, there is no script, and a Content-Security-Policy meta tag says so (it
opens offline, and the API serves it as a sandboxed document). Every text that comes
from the data is HTML-escaped.

Sections (each `<section id=...>` with an `<h2>`): summary, feature-drift,
score-distributions, attribution-shift, performance, data-checks. A section with
nothing to show says why.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime
from html import escape
from pathlib import Path
from typing import Any

import pandas as pd

from features.load import Warehouse, WarehouseError
from monitoring import tables
from propensity.config import MonitoringConfig
from serving import sink

MODEL_ORDER = ("churn", "response", "value")
TOP_ATTRIBUTIONS = 10
# The metric of a model's performance chart: ranking quality of a probability (AUC), and
# of an amount (Gini of the predicted against the realised value).
CHART_METRIC = {"churn": "auc", "response": "auc", "value": "gini"}
METRIC_LABEL = {"auc": "AUC", "gini": "Gini"}
# A data check flags a feature whose missing share rose by this much since the reference.
MISSING_RISE_WARN = 0.05


class NotMonitored(WarehouseError):
    """No monitoring rows for the run asked for (or none at all); one-line message."""


# -- reading --------------------------------------------------------------------------------

def _read(wh: Warehouse, name: str, where: str = "", params: list | None = None, have: list[str] | None = None,
          order: str = "") -> pd.DataFrame:
    """Rows of a monitoring table (an empty frame with its columns when the table is absent)."""
    cols = tables.columns(name)
    present = have if have is not None else wh.tables()
    if name not in present:
        return pd.DataFrame(columns=cols)
    frame = wh.native_query(f"select * from {name} {where} {order}", params or [])
    if "as_of" in frame and len(frame):
        frame["as_of"] = pd.to_datetime(frame["as_of"]).dt.date
    if "horizon_end" in frame and len(frame):
        frame["horizon_end"] = pd.to_datetime(frame["horizon_end"]).dt.date
    return frame


def monitored_runs(wh: Warehouse) -> pd.DataFrame:
    """Every monitored run's prediction rows (one per run and model), latest as-of first."""
    return _read(wh, tables.PREDICTIONS, order="order by as_of desc, monitored_at desc, run_id, model")


def latest_monitored_run(wh: Warehouse) -> str:
    """The run id of the latest monitored run (latest as_of in monitoring_predictions)."""
    runs = monitored_runs(wh)
    if runs.empty:
        raise NotMonitored("no monitored scoring run yet; run `propensity monitor` after a scoring run")
    return str(runs["run_id"].iloc[0])


def run_tables(wh: Warehouse, run_id: str) -> dict[str, pd.DataFrame]:
    """One run's rows of monitoring_features, monitoring_predictions and monitoring_attributions.

    Raises:
        NotMonitored: the run has no monitoring rows.
    """
    have = wh.tables()
    out = {
        "predictions": _read(wh, tables.PREDICTIONS, "where run_id = ?", [run_id], have, "order by model"),
        "features": _read(wh, tables.FEATURES, "where run_id = ?", [run_id], have, "order by model, psi desc, feature"),
        "attributions": _read(wh, tables.ATTRIBUTIONS, "where run_id = ?", [run_id], have,
                              "order by model, rank, feature"),
        "checks": _read(wh, tables.CHECKS, "where run_id = ?", [run_id], have, "order by position"),
    }
    if out["predictions"].empty and out["features"].empty:
        raise NotMonitored(f"scoring run {run_id!r} has not been monitored; run `propensity monitor --run {run_id}` "
                           "(GET /monitoring/runs lists the monitored runs)")
    return out


def performance_rows(wh: Warehouse, model: str | None = None, run_id: str | None = None) -> pd.DataFrame:
    """run_performance rows (optionally of one model and/or one run), by as-of, model, source, segment."""
    where, params = [], []
    if model is not None:
        where.append("model = ?")
        params.append(model)
    if run_id is not None:
        where.append("run_id = ?")
        params.append(run_id)
    clause = ("where " + " and ".join(where)) if where else ""
    return _read(wh, tables.PERFORMANCE, clause, params, order="order by as_of, model, source, segment")


def _scoring_row(wh: Warehouse, run_id: str) -> dict[str, Any] | None:
    """The published scoring_runs row of the run (else its latest attempt), or None."""
    if not wh.has(sink.RUNS):
        return None
    frame = wh.native_query(f"select * from {sink.RUNS} where run_id = ? "
                            "order by case when status = 'succeeded' then 0 else 1 end, attempt desc limit 1", [run_id])
    return None if frame.empty else {k: _value(v) for k, v in frame.iloc[0].to_dict().items()}


@dataclass(frozen=True)
class ReportRows:
    """What one report shows: the chosen run's rows, the history of runs, the scoring_runs row."""

    run_id: str
    as_of: date
    attempt: int
    features: pd.DataFrame
    predictions: pd.DataFrame
    attributions: pd.DataFrame
    checks: pd.DataFrame  # monitoring_checks: the alert lines the command printed, the data checks
    performance: pd.DataFrame  # every run's (the charts go over time)
    history: pd.DataFrame  # monitoring_predictions of every run
    scoring: dict[str, Any] | None


def read_rows(wh: Warehouse, run_id: str | None = None) -> ReportRows:
    """Everything the report of `run_id` (default: the latest monitored run) reads."""
    run_id = run_id if run_id is not None else latest_monitored_run(wh)
    rows = run_tables(wh, run_id)
    first = rows["predictions"] if len(rows["predictions"]) else rows["features"]
    return ReportRows(run_id=run_id, as_of=first["as_of"].iloc[0], attempt=int(first["attempt"].iloc[0]),
                      features=rows["features"], predictions=rows["predictions"], attributions=rows["attributions"],
                      checks=rows["checks"],
                      performance=performance_rows(wh), history=monitored_runs(wh), scoring=_scoring_row(wh, run_id))


# -- values and text ----------------------------------------------------------------------------

def _value(v: Any) -> Any:
    """A cell as plain Python: None for missing."""
    if v is None:
        return None
    if hasattr(v, "item") and not isinstance(v, (str, bytes)):
        try:
            v = v.item()
        except (ValueError, AttributeError):
            pass
    try:
        if pd.isna(v):
            return None
    except (TypeError, ValueError):
        pass
    return v


def _float(v: Any) -> float | None:
    v = _value(v)
    if v is None:
        return None
    try:
        f = float(v)
    except (TypeError, ValueError):
        return None
    return f if math.isfinite(f) else None


def num(v: Any, digits: int = 3) -> str:
    """A number with `digits` decimals ('–' when missing)."""
    f = _float(v)
    return "–" if f is None else f"{f:,.{digits}f}"


def pct(v: Any, digits: int = 1) -> str:
    """A share as a percentage ('–' when missing)."""
    f = _float(v)
    return "–" if f is None else f"{100 * f:.{digits}f}%"


def signed(v: Any, digits: int = 3) -> str:
    """A number with its sign ('+0.120', '-0.034'; '–' when missing)."""
    f = _float(v)
    return "–" if f is None else f"{f:+.{digits}f}"


def _count(v: Any) -> str:
    f = _float(v)
    return "–" if f is None else f"{int(round(f)):,}"


def _t(v: Any) -> str:
    """Data as HTML text: escaped, '–' when missing."""
    v = _value(v)
    return "–" if v is None else escape(str(v))


def _flag(v: Any) -> bool:
    v = _value(v)
    return bool(v) if v is not None else False


def _models(frame: pd.DataFrame) -> list[str]:
    names = [str(m) for m in frame["model"].dropna().unique()] if "model" in frame and len(frame) else []
    return sorted(names, key=lambda m: (MODEL_ORDER.index(m) if m in MODEL_ORDER else len(MODEL_ORDER), m))


def _version_text(version: Any) -> str:
    v = _value(version)
    return "" if v is None else f" v{escape(str(v))}"


def _table(header: list[str], rows: list[list[str]], numeric: set[int] | frozenset = frozenset(),
           classes: list[str] | None = None, wrap: set[int] | frozenset = frozenset()) -> str:
    """An HTML table; cells are HTML already (escape data before). `wrap`: columns of long text."""

    def cell(tag: str, i: int, text: str) -> str:
        css = " ".join(c for c, on in (("num", i in numeric), ("wrap", i in wrap)) if on)
        return f"<{tag}{f' class={chr(34)}{css}{chr(34)}' if css else ''}>{text}</{tag}>"

    head = "".join(cell("th", i, h) for i, h in enumerate(header))
    body = []
    for r, row in enumerate(rows):
        cls = f' class="{classes[r]}"' if classes and classes[r] else ""
        body.append(f"<tr{cls}>{''.join(cell('td', i, c) for i, c in enumerate(row))}</tr>")
    return f'<div class="table-wrap"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


def _empty(text: str) -> str:
    return f'<p class="empty">{escape(text)}</p>'


# -- charts (inline SVG) --------------------------------------------------------------------------

def _nice_ticks(lo: float, hi: float, n: int = 5) -> list[float]:
    """About n round tick values between lo and hi."""
    if not hi > lo:
        return [lo]
    raw = (hi - lo) / n
    mag = 10 ** math.floor(math.log10(raw))
    step = next((m * mag for m in (1, 2, 5, 10) if m * mag >= raw), raw)
    start = math.ceil(lo / step) * step
    out, t = [], start
    while t <= hi + step * 1e-9:
        out.append(round(t, 12))
        t += step
    return out


def _svg(width: int, height: int, label: str, body: list[str], css: str = "chart") -> str:
    return (f'<svg class="{css}" width="{width}" height="{height}" viewBox="0 0 {width} {height}" role="img" '
            f'aria-label="{escape(label)}"><title>{escape(label)}</title>{"".join(body)}</svg>')


_NUMBER = re.compile(r"-?\d+\.\d+(?:e[-+]?\d+)?")


def compact_label(text: str) -> str:
    """A bin label with its numbers to 3 significant digits ('[0.0468348, 0.0894792)' -> '[0.0468, 0.0895)')."""
    return _NUMBER.sub(lambda m: f"{float(m.group()):.3g}", text)


def _short(text: str, limit: int = 34) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _value_grid(hi: float, x: Callable[[float], float], top: float, base: float,
                text: Callable[[float], str]) -> list[str]:
    """Vertical grid lines and their labels under a horizontal bar chart whose values run 0..hi."""
    out = []
    for t in _nice_ticks(0.0, hi, 5):
        out.append(f'<line class="grid" x1="{x(t):.1f}" x2="{x(t):.1f}" y1="{top}" y2="{base}"/>')
        out.append(f'<text class="tick" x="{x(t):.1f}" y="{base + 14}" text-anchor="middle">{text(t)}</text>')
    return out


def psi_bars(items: list[tuple[str, float | None, bool]], threshold: float, label: str) -> str:
    """Horizontal PSI bars, largest first, with the alert line at `threshold`.

    Args:
        items: (feature, PSI, alert) per feature.
        threshold: the alert line ([monitoring] feature_psi_alert).
        label: the chart's accessible name.
    """
    items = sorted(items, key=lambda it: (-(it[1] if it[1] is not None else -1.0), it[0]))
    width, row, left, right, top, bottom = 760, 20, 230, 70, 8, 34
    height = top + bottom + row * max(1, len(items))
    hi = max([threshold * 1.15] + [v * 1.05 for _, v, _ in items if v is not None])
    span = width - left - right

    def x(v: float) -> float:
        return left + span * max(0.0, v) / hi

    body = _value_grid(hi, x, top, height - bottom, lambda t: f"{t:g}")
    for i, (name, value, alert) in enumerate(items):
        y = top + row * i
        body.append(f'<text class="tick" x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
                    f"{escape(_short(name))}</text>")
        if value is None:
            body.append(f'<text class="tick" x="{left + 4}" y="{y + row / 2 + 4:.1f}">no value</text>')
            continue
        bar_class = "bar alert" if alert or value >= threshold else "bar"
        body.append(f'<rect class="{bar_class}" data-feature="{escape(name)}" x="{left}" y="{y + 3}" '
                    f'width="{max(1.0, x(value) - left):.1f}" height="{row - 6}"><title>{escape(name)}: PSI '
                    f"{value:.3f}</title></rect>")
        body.append(f'<text class="value" x="{x(value) + 4:.1f}" y="{y + row / 2 + 4:.1f}">{value:.3f}</text>')
    tx = x(threshold)
    body.append(f'<line class="threshold" x1="{tx:.1f}" x2="{tx:.1f}" y1="{top - 4}" y2="{height - bottom + 2}"/>')
    body.append(f'<text class="threshold-label" x="{tx + 3:.1f}" y="{height - 4}">alert line {threshold:g}</text>')
    body.append(f'<text class="axis" x="{left}" y="{height - 4}">PSI</text>')
    return _svg(width, height, label, body)


def score_bins_chart(labels: list[str], reference: list[float], current: list[float], label: str) -> str:
    """Reference and run shares per score bin, overlaid: reference as outlined bars, the run filled."""
    n = len(labels)
    width, left, right, top, bottom = 760, 56, 16, 14, 86
    height = 300
    span = width - left - right
    step = span / max(1, n)
    hi = max([0.01, *[v for v in reference + current if v is not None]]) * 1.1
    plot = height - top - bottom

    def y(v: float) -> float:
        return top + plot * (1 - max(0.0, v) / hi)

    body = []
    for t in _nice_ticks(0.0, hi, 4):
        body.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        body.append(f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{100 * t:.0f}%</text>')
    for i, name in enumerate(labels):
        x0 = left + step * i
        ref, cur = reference[i], current[i]
        if ref is not None:
            body.append(f'<rect class="ref" data-bin="{i}" x="{x0 + step * 0.12:.1f}" y="{y(ref):.1f}" '
                        f'width="{step * 0.76:.1f}" height="{max(0.5, y(0) - y(ref)):.1f}">'
                        f"<title>{escape(name)}: reference {100 * ref:.1f}%</title></rect>")
        if cur is not None:
            body.append(f'<rect class="cur" data-bin="{i}" x="{x0 + step * 0.24:.1f}" y="{y(cur):.1f}" '
                        f'width="{step * 0.52:.1f}" height="{max(0.5, y(0) - y(cur)):.1f}">'
                        f"<title>{escape(name)}: this run {100 * cur:.1f}%</title></rect>")
        cx, cy = x0 + step / 2, height - bottom + 12
        body.append(f'<text class="tick" x="{cx:.1f}" y="{cy:.1f}" text-anchor="end" '
                    f'transform="rotate(-40 {cx:.1f} {cy:.1f})">{escape(_short(compact_label(str(name)), 20))}'
                    f"<title>{escape(str(name))}</title></text>")
    body.append(f'<line class="zero" x1="{left}" x2="{width - right}" y1="{y(0):.1f}" y2="{y(0):.1f}"/>')
    lx = width - right - 250
    body.append(f'<rect class="ref" x="{lx}" y="{top}" width="14" height="10"/>'
                f'<text class="tick" x="{lx + 18}" y="{top + 9}">reference (training)</text>'
                f'<rect class="cur" x="{lx + 140}" y="{top}" width="14" height="10"/>'
                f'<text class="tick" x="{lx + 158}" y="{top + 9}">this run</text>')
    return _svg(width, height, label, body)


def share_bars(items: list[tuple[str, float | None, float | None]], label: str) -> str:
    """Per feature, the reference share (grey) and the run's share (blue) of total attribution."""
    width, row, left, right, top, bottom = 760, 30, 230, 70, 22, 26
    height = top + bottom + row * max(1, len(items))
    hi = max([0.01] + [v for _, a, b in items for v in (a, b) if v is not None]) * 1.1
    span = width - left - right

    def x(v: float) -> float:
        return left + span * max(0.0, v) / hi

    body = _value_grid(hi, x, top, height - bottom, lambda t: f"{100 * t:.0f}%")
    for i, (name, current, reference) in enumerate(items):
        y = top + row * i
        body.append(f'<text class="tick" x="{left - 6}" y="{y + row / 2 + 4:.1f}" text-anchor="end">'
                    f"{escape(_short(name))}</text>")
        if reference is not None:
            body.append(f'<rect class="ref-fill" x="{left}" y="{y + 4}" width="{max(1.0, x(reference) - left):.1f}" '
                        f'height="10"><title>{escape(name)}: reference {100 * reference:.1f}%</title></rect>')
        if current is not None:
            body.append(f'<rect class="cur" data-feature="{escape(name)}" x="{left}" y="{y + 15}" '
                        f'width="{max(1.0, x(current) - left):.1f}" height="10"><title>{escape(name)}: this run '
                        f"{100 * current:.1f}%</title></rect>")
            body.append(f'<text class="value" x="{x(current) + 4:.1f}" y="{y + 24}">{100 * current:.1f}%</text>')
    body.append(f'<rect class="ref-fill" x="{left}" y="4" width="14" height="10"/>'
                f'<text class="tick" x="{left + 18}" y="13">reference share</text>'
                f'<rect class="cur" x="{left + 130}" y="4" width="14" height="10"/>'
                f'<text class="tick" x="{left + 148}" y="13">this run\'s share</text>')
    return _svg(width, height, label, body)


def line_chart(series: dict[str, list[tuple[date, float]]], references: list[tuple[str, float, date, date, str]],
               marker: date | None, y_label: str, label: str) -> str:
    """Values over as-of dates, one polyline per series, with horizontal reference lines.

    Args:
        series: name ('realised', 'estimated') -> (as_of, value) points.
        references: (label, value, first as_of, last as_of, CSS class): a dotted line over
            those dates (over the whole chart when the dates are one).
        marker: the as_of of the run the report is about (a vertical line), or None.
        y_label: the vertical axis' name.
        label: the chart's accessible name.
    """
    width, height, left, right, top, bottom = 760, 280, 60, 150, 14, 40
    dates = sorted({d for pts in series.values() for d, _ in pts} | {d for _, _, a, b, _ in references for d in (a, b)}
                   | ({marker} if marker else set()))
    values = [v for pts in series.values() for _, v in pts] + [v for _, v, _, _, _ in references]
    lo, hi = min(values), max(values)
    pad = max(0.02, (hi - lo) * 0.15)
    lo, hi = lo - pad, hi + pad
    d0, d1 = dates[0], dates[-1]
    days = max(1, (d1 - d0).days)

    def x(d: date) -> float:
        if d0 == d1:
            return left + (width - left - right) / 2
        return left + (width - left - right) * (d - d0).days / days

    def y(v: float) -> float:
        return top + (height - top - bottom) * (1 - (v - lo) / (hi - lo))

    body = []
    for t in _nice_ticks(lo, hi, 5):
        body.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y(t):.1f}" y2="{y(t):.1f}"/>')
        body.append(f'<text class="tick" x="{left - 6}" y="{y(t) + 4:.1f}" text-anchor="end">{t:.2f}</text>')
    shown = dates if len(dates) <= 8 else [dates[round(i * (len(dates) - 1) / 7)] for i in range(8)]
    for d in shown:
        body.append(f'<text class="tick" x="{x(d):.1f}" y="{height - bottom + 16}" text-anchor="middle">{d}</text>')
    body.append(f'<text class="axis" x="14" y="{(top + height - bottom) / 2:.1f}" text-anchor="middle" '
                f'transform="rotate(-90 14 {(top + height - bottom) / 2:.1f})">{escape(y_label)}</text>')
    if marker is not None:
        body.append(f'<line class="marker" x1="{x(marker):.1f}" x2="{x(marker):.1f}" y1="{top}" '
                    f'y2="{height - bottom}"/>')
    for name, value, a, b, css in references:
        xa, xb = (left, width - right) if a == b else (x(a), x(b))
        body.append(f'<line class="{css}" x1="{xa:.1f}" x2="{xb:.1f}" y1="{y(value):.1f}" y2="{y(value):.1f}">'
                    f"<title>{escape(name)}: {value:.3f}</title></line>")
        body.append(f'<text class="tick" x="{xb + 4:.1f}" y="{y(value) + 4:.1f}">{escape(name)} {value:.3f}</text>')
    for k, (name, pts) in enumerate(series.items()):
        pts = sorted(pts)
        cls = f"series s{k}"
        if len(pts) > 1:
            line = " ".join(f"{x(d):.1f},{y(v):.1f}" for d, v in pts)
            body.append(f'<polyline class="{cls}" data-series="{escape(name)}" points="{line}"/>')
        for d, v in pts:
            body.append(f'<circle class="{cls}" data-series="{escape(name)}" cx="{x(d):.1f}" cy="{y(v):.1f}" r="3.5">'
                        f"<title>{escape(name)} {d}: {v:.3f}</title></circle>")
        ly = top + 10 + 18 * k
        body.append(f'<line class="{cls}" x1="{width - right + 12}" x2="{width - right + 32}" y1="{ly}" y2="{ly}"/>'
                    f'<text class="tick" x="{width - right + 36}" y="{ly + 4}">{escape(name)}</text>')
    return _svg(width, height, label, body)


# -- sections --------------------------------------------------------------------------------------

def population(features: pd.DataFrame) -> pd.DataFrame:
    """monitoring_features rows over every customer of the run (segment 'all'; all rows of a table without segments)."""
    if "segment" not in features.columns or features.empty:
        return features
    return features[features["segment"].fillna(tables.ALL_SEGMENTS) == tables.ALL_SEGMENTS]


def within_segments(features: pd.DataFrame) -> pd.DataFrame:
    """monitoring_features rows inside one segment (one level of a categorical input), largest PSI first."""
    if "segment" not in features.columns or features.empty:
        return features.iloc[0:0]
    inside = features[features["segment"].fillna(tables.ALL_SEGMENTS) != tables.ALL_SEGMENTS]
    return inside.assign(_psi=inside["psi"].map(lambda v: _float(v) or 0.0)).sort_values(
        ["_psi", "segment", "feature"], ascending=[False, True, True]).drop(columns="_psi")


def _alerts(rows: ReportRows) -> list[str]:
    """The run's alert lines as `propensity monitor` printed and recorded them (monitoring_checks)."""
    c = rows.checks
    if c.empty or "check_name" not in c.columns:
        return []
    return [str(m) for m in c.loc[c["check_name"] == "alert", "message"]]


def _direction_moves(attributions: pd.DataFrame, model: str) -> pd.Series:
    """|mean signed contribution - the reference's| per attribution row of the model (empty without the columns)."""
    a = attributions[attributions["model"] == model] if len(attributions) else attributions
    if a.empty or "mean_contribution" not in a or "reference_mean_contribution" not in a:
        return pd.Series(dtype="float64")
    return (a["mean_contribution"].astype("float64") - a["reference_mean_contribution"].astype("float64")).abs().dropna()


def _plain_version(version: Any) -> str:
    v = _value(version)
    return "" if v is None else f" v{v}"


def _summary(rows: ReportRows, cfg: MonitoringConfig) -> str:
    s = rows.scoring or {}
    alerts = _alerts(rows)
    facts = [("scoring run", _t(rows.run_id)), ("attempt", str(rows.attempt)), ("as of", _t(rows.as_of)),
             ("customers", _count(s.get("customers"))), ("alerts", str(len(alerts)))]
    cards = "".join(f'<div class="fact" data-fact="{escape(k.replace(" ", "-"))}"><dt>{escape(k)}</dt><dd>{v}</dd></div>'
                    for k, v in facts)
    models = []
    classes = []
    for r in rows.predictions.to_dict("records"):
        models.append([_t(r["model"]), _t(r["version"]), _count(r["rows"]), num(r["psi"]), num(r["mean_score"], 4),
                       num(r["reference_mean_score"], 4), _count(r["features_alerted"]), num(r["attribution_shift"]),
                       num(r.get("direction_shift")), "ALERT" if _flag(r["alert"]) else "ok",
                       _t(r["note"]) if _value(r["note"]) else ""])
        classes.append("alert" if _flag(r["alert"]) else "")
    model_table = (_table(["model", "version", "rows", "score PSI", "mean score", "reference mean", "features alerted",
                           "importance shift", "direction shift", "status", "note"], models, {2, 3, 4, 5, 6, 7, 8},
                          classes, wrap={10})
                   if models else _empty("no prediction rows for this run"))
    alert_list = ("<ul class=\"alerts\">" + "".join(f"<li>{escape(a)}</li>" for a in alerts) + "</ul>" if alerts
                  else '<p class="ok">no alert: every measure is below its alert line (feature PSI '
                       f"{cfg.feature_psi_alert:g}, score PSI {cfg.prediction_psi_alert:g}, importance shift "
                       f"{cfg.attribution_shift_alert:g}, direction shift {cfg.direction_shift_alert:g}, AUC or Gini "
                       f"{cfg.performance_drop_alert:g} below the card)</p>")
    history = _history(rows)
    missing = _value(s.get("missing_models"))
    missing_note = f'<p class="note">models not scored in this run: {escape(str(missing))}</p>' if missing else ""
    return (f'<section id="summary"><h2>Summary</h2><dl class="facts">{cards}</dl>{missing_note}'
            f"<h3>Models</h3>{model_table}<h3>Alerts</h3>{alert_list}{history}</section>")


def _history(rows: ReportRows) -> str:
    """The monitored runs, latest first: score PSI per model, alerts; this run's row marked."""
    h = rows.history
    if h.empty:
        return ""
    models = _models(h)
    out, classes = [], []
    for (run_id, as_of), part in h.groupby(["run_id", "as_of"], sort=False):
        by = {str(r["model"]): r for r in part.to_dict("records")}
        cells = [_t(as_of), _t(run_id)]
        for m in models:
            r = by.get(m)
            cells.append("–" if r is None else num(r["psi"]) + (" ⚠" if _flag(r["alert"]) else ""))
        alert = any(_flag(r["alert"]) for r in by.values())
        cells.append("ALERT" if alert else "ok")
        out.append(cells)
        classes.append(" ".join(c for c in ("this-run" if run_id == rows.run_id else "", "alert" if alert else "") if c))
    return ("<h3>Monitored runs</h3>"
            + _table(["as of", "run", *[f"{escape(m)} score PSI" for m in models], "status"], out,
                     set(range(2, 2 + len(models))), classes))


def _feature_drift(rows: ReportRows, cfg: MonitoringConfig) -> str:
    f = population(rows.features)
    inside = within_segments(rows.features)
    parts = ['<section id="feature-drift"><h2>Feature drift</h2>',
             f'<p class="muted">PSI of each feature the model reads against its reference profile (the model\'s '
             f"out-of-time test half); below 0.1 stable, 0.1–0.25 moderate, above 0.25 large. Alert line: "
             f"{cfg.feature_psi_alert:g}.</p>"]
    notes = {str(r["model"]): _value(r["note"]) for r in rows.predictions.to_dict("records")}
    models = _models(pd.concat([f[["model"]], rows.predictions[["model"]]])) if len(f) or len(rows.predictions) else []
    if not models:
        parts.append(_empty("no feature rows for this run"))
    for model in models:
        part = f[f["model"] == model]
        version = part["version"].iloc[0] if len(part) else None
        parts.append(f'<article class="model" data-model="{escape(model)}"><h3>{escape(model)}{_version_text(version)}</h3>')
        if part.empty:
            parts.append(_empty(f"no feature drift for {model}: {notes.get(model) or 'no feature rows recorded'}"))
            parts.append("</article>")
            continue
        records = part.to_dict("records")
        items = [(str(r["feature"]), _float(r["psi"]), _flag(r["alert"])) for r in records]
        parts.append(f'<figure class="chart">{psi_bars(items, cfg.feature_psi_alert, f"{model} feature PSI")}'
                     f"<figcaption>{escape(model)}: PSI per feature, largest first; red bars reached the alert line."
                     f"</figcaption></figure>")
        table_rows = [[_t(r["feature"]), _t(r["kind"]), num(r["psi"]), pct(r["missing_share"]),
                       pct(r["reference_missing_share"]), pct(r["new_level_share"]),
                       "yes" if _flag(r["absent"]) else "", "ALERT" if _flag(r["alert"]) else ""] for r in records]
        parts.append("<details><summary>Table: PSI, missing and new-level shares</summary>"
                     + _table(["feature", "kind", "PSI", "missing", "missing (reference)", "new levels", "absent",
                               "alert"], table_rows, {2, 3, 4, 5},
                              ["alert" if _flag(r["alert"]) else "" for r in records])
                     + "</details>")
        parts.append(_segment_table(inside[inside["model"] == model], part, cfg.feature_psi_alert))
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _segment_table(inside: pd.DataFrame, overall: pd.DataFrame, line: float, top: int = 15) -> str:
    """A model's drift within segments: the largest PSIs, alerted (confined to segments) ones marked."""
    if inside.empty:
        return ""
    over = overall.set_index("feature")["psi"] if len(overall) else pd.Series(dtype=float)
    alerted = int(inside["alert"].map(_flag).sum())
    shown = pd.concat([inside[inside["alert"].map(_flag)], inside[~inside["alert"].map(_flag)]]).head(top)
    records = shown.to_dict("records")
    table_rows = [[_t(r["segment"]), _t(r["feature"]), num(r["psi"]), num(over.get(r["feature"])),
                   _count(r.get("rows")), _count(r.get("reference_rows")), pct(r["missing_share"]),
                   "ALERT" if _flag(r["alert"]) else ""] for r in records]
    n = inside["segment"].nunique()
    head = (f'<details class="segments"{" open" if alerted else ""}><summary>Within segments: {n} segment(s) (one '
            f"level of a categorical input each) measured; {alerted} shift(s) at the alert line {line:g} confined to "
            f"segments (the feature stays below it over all customers)</summary><p class=\"muted\">The "
            f"{len(records)} largest PSIs within segments:</p>")
    return head + _table(["segment", "feature", "PSI", "PSI over all", "customers", "reference customers", "missing",
                          "alert"], table_rows, {2, 3, 4, 5, 6},
                         ["alert" if _flag(r["alert"]) else "" for r in records]) + "</details>"


def _bins(text: Any) -> tuple[list[str], list[float | None], list[float | None]] | None:
    """monitoring_predictions.score_bins JSON as (labels, reference, current), or None when unusable."""
    raw = _value(text)
    if raw is None:
        return None
    try:
        data = json.loads(raw) if isinstance(raw, str) else raw
        labels = [str(v) for v in data["labels"]]
        ref = [_float(v) for v in data["reference"]]
        cur = [_float(v) for v in data["current"]]
    except (ValueError, KeyError, TypeError):
        return None
    if not labels or len(ref) != len(labels) or len(cur) != len(labels):
        return None
    return labels, ref, cur


def _score_distributions(rows: ReportRows) -> str:
    parts = ['<section id="score-distributions"><h2>Score distributions</h2>',
             '<p class="muted">Share of customers per score bin (bins cut on the reference scores): the reference '
             "profile against this run.</p>"]
    if rows.predictions.empty:
        parts.append(_empty("no prediction rows for this run"))
    for r in rows.predictions.to_dict("records"):
        model = str(r["model"])
        parts.append(f'<article class="model" data-model="{escape(model)}"><h3>{escape(model)}'
                     f'{_version_text(r["version"])} <span class="muted">score PSI {num(r["psi"])}, mean '
                     f'{num(r["mean_score"], 4)} (reference {num(r["reference_mean_score"], 4)})</span></h3>')
        bins = _bins(r["score_bins"])
        if bins is None:
            why = _value(r["note"]) or "the run recorded no score bins for this model"
            parts.append(_empty(f"no score distribution for {model}: {why}"))
        else:
            labels, ref, cur = bins
            parts.append(f'<figure class="chart">{score_bins_chart(labels, ref, cur, f"{model} score distribution")}'
                         "</figure>")
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _rank_change(rank: Any, reference_rank: Any) -> str:
    a, b = _float(rank), _float(reference_rank)
    if a is None or b is None:
        return '<span class="new">new</span>' if a is not None else "–"
    moved = int(b - a)  # a smaller rank number is higher up
    if moved > 0:
        return f'<span class="up" title="up {moved}">▲ {moved}</span>'
    if moved < 0:
        return f'<span class="down" title="down {-moved}">▼ {-moved}</span>'
    return '<span class="same">=</span>'


def _attribution_shift(rows: ReportRows, cfg: MonitoringConfig) -> str:
    a = rows.attributions
    parts = ['<section id="attribution-shift"><h2>Attribution shift</h2>',
             '<p class="muted">Importance: each feature\'s share of the model\'s total mean |contribution| over this '
             "run's customers against the reference; its shift is the total variation distance between the two (0: "
             "the same mix of reasons, 1: disjoint). Direction: the mean signed contribution, where a feature pushes "
             "the scores on average; its shift is the sum of the moves over the reference's total mean |contribution|. "
             f"Top {TOP_ATTRIBUTIONS} features by either share (and the feature whose direction moved most).</p>"]
    shifts = {str(r["model"]): r for r in rows.predictions.to_dict("records")}
    models = _models(pd.concat([a[["model"]], rows.predictions[["model"]]])) if len(a) or len(rows.predictions) else []
    if not models:
        parts.append(_empty("no attribution rows for this run"))
    for model in models:
        part = a[a["model"] == model]
        p = shifts.get(model, {})
        version = part["version"].iloc[0] if len(part) else p.get("version")
        shift, direction = _float(p.get("attribution_shift")), _float(p.get("direction_shift"))

        def said(name: str, value: float | None, line: float) -> str:
            alerted = value is not None and value >= line
            return (f'<span class="{"alert-text" if alerted else "muted"}" data-shift="{name}">{name} shift {num(value)}'
                    f'{" ALERT" if alerted else ""} (alert at {line:g})</span>')

        parts.append(f'<article class="model" data-model="{escape(model)}"><h3>{escape(model)}{_version_text(version)} '
                     f"{said('importance', shift, cfg.attribution_shift_alert)} · "
                     f"{said('direction', direction, cfg.direction_shift_alert)}</h3>")
        if part.empty:
            parts.append(_empty(f"no attributions for {model}: the scorer recorded none for this run "
                                "(runs scored before attributions were accumulated, or a model not scored)"))
            parts.append("</article>")
            continue
        top = (part.assign(_key=part[["share", "reference_share"]].astype("float64").max(axis=1).fillna(0.0))
               .sort_values(["_key", "feature"], ascending=[False, True]).head(TOP_ATTRIBUTIONS))
        moves = _direction_moves(part, model)
        if len(moves) and moves.idxmax() not in top.index:
            top = pd.concat([top, part.loc[[moves.idxmax()]]])
        records = top.to_dict("records")
        items = [(str(r["feature"]), _float(r["share"]), _float(r["reference_share"])) for r in records]
        parts.append(f'<figure class="chart">{share_bars(items, f"{model} attribution shares")}</figure>')
        table_rows = [[_t(r["feature"]), _t(r["rank"]), _t(r["reference_rank"]),
                       _rank_change(r["rank"], r["reference_rank"]), pct(r["share"]), pct(r["reference_share"]),
                       num(r["mean_abs_contribution"], 4), num(r["reference_mean_abs_contribution"], 4),
                       _pushes(r.get("mean_contribution"), r.get("reference_mean_contribution")),
                       signed(r.get("reference_mean_contribution"), 4), _t(r["scale"])] for r in records]
        parts.append(_table(["feature", "rank", "reference rank", "change", "share", "reference share",
                             "mean |contribution|", "reference", "mean contribution", "reference", "scale"],
                            table_rows, {1, 2, 4, 5, 6, 7, 8, 9}))
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def _pushes(current: Any, reference: Any) -> str:
    """The run's mean signed contribution, marked when it pushes the other way than the reference's."""
    a, b = _float(current), _float(reference)
    if a is not None and b is not None and a * b < 0:
        return f'<span class="flipped" title="pushes the other way than in the reference">{signed(a, 4)} ⇄</span>'
    return signed(a, 4)


def _performance(rows: ReportRows, cfg: MonitoringConfig) -> str:
    perf = rows.performance
    parts = ['<section id="performance"><h2>Performance</h2>',
             '<p class="muted">Realised: against the labels of the horizon after each run, once it has elapsed. '
             "Estimated: from the scores alone (confidence-based). Card: the model card's out-of-time number of the "
             "version that scored the run. AUC for churn and response, Gini for value.</p>"]
    if perf.empty:
        parts.append(_empty("no performance rows yet: no run whose horizon has elapsed yet, and no estimate "
                            "recorded"))
        parts.append("</section>")
        return "".join(parts)
    if not (perf["source"] == "realised").any():
        parts.append(_empty("no run whose horizon has elapsed yet: realised performance appears once a run's "
                            "horizon is over; estimated numbers are shown meanwhile"))
    whole = perf[perf["segment"] == tables.ALL_SEGMENTS]
    for model in _models(perf):
        mine = whole[whole["model"] == model]
        metric = CHART_METRIC.get(model, "auc")
        if mine[metric].map(_float).isna().all() and not mine.empty:
            metric = "gini" if metric == "auc" else "auc"
        name = METRIC_LABEL[metric]
        parts.append(f'<article class="model" data-model="{escape(model)}"><h3>{escape(model)} '
                     f'<span class="muted">{name} over runs</span></h3>')
        series: dict[str, list[tuple[date, float]]] = {}
        for source in ("realised", "estimated"):
            pts = [(r["as_of"], _float(r[metric])) for r in mine[mine["source"] == source].to_dict("records")]
            pts = [(d, v) for d, v in pts if v is not None]
            if pts:
                series[source] = pts
        references = []
        cards = mine[mine["source"] == "card"]
        for version, part in cards.groupby(cards["version"].map(lambda v: "" if _value(v) is None else str(v)),
                                           sort=True):
            values = [v for v in part[metric].map(_float) if v is not None]
            if values:
                name_v = f"card v{version}" if version else "card"
                a, b = min(part["as_of"]), max(part["as_of"])
                references.append((name_v, values[-1], a, b, "card"))
                references.append((f"alert: card − {cfg.performance_drop_alert:g}",
                                   values[-1] - cfg.performance_drop_alert, a, b, "drop"))
        if series or references:
            if not series:
                parts.append(_empty(f"no realised or estimated {name} for {model} yet; the card is shown alone"))
            parts.append(f'<figure class="chart">{line_chart(series, references, rows.as_of, name, f"{model} {name} over runs")}'
                         "</figure>")
        else:
            parts.append(_empty(f"no {name} recorded for {model}"))
        here = perf[(perf["model"] == model) & (perf["run_id"] == rows.run_id)]
        if here.empty:
            parts.append(_empty(f"no performance rows of {model} for this run"))
        else:
            if not (here["source"] == "realised").any():
                ends = [d for d in here["horizon_end"].map(_value) if d is not None]
                until = f" (its horizon ends {max(ends)})" if ends else ""
                campaigns = " or no campaign finished within it" if model == "response" else ""
                parts.append(_empty(f"no realised {model} numbers for this run yet: its horizon has not elapsed"
                                    f"{until}{campaigns}"))
            order = {"realised": 0, "estimated": 1, "card": 2}
            here = here.assign(_s=here["source"].map(lambda s: order.get(s, 3)),
                               _g=(here["segment"] != tables.ALL_SEGMENTS)).sort_values(["_g", "segment", "_s"])
            table_rows = [[_t(r["segment"]), _t(r["source"]), _count(r["customers"]), num(r["positives"], 1),
                           num(r["mean_score"], 4), num(r["mean_actual"], 4), num(r["auc"]), num(r["pr_auc"]),
                           num(r["ece"], 4), num(r["gini"]), _t(r["horizon_end"])] for r in here.to_dict("records")]
            parts.append("<h4>This run by segment</h4>" + _table(
                ["segment", "source", "customers", "positives", "mean score", "mean actual", "AUC", "PR-AUC", "ECE",
                 "Gini", "horizon end"], table_rows, set(range(2, 10))))
        parts.append("</article>")
    parts.append("</section>")
    return "".join(parts)


def data_checks(rows: ReportRows) -> list[tuple[str, str, str, str]]:
    """(check, model, result, status 'ok' | 'warn' | 'fail' | 'info') for the run, from the tables."""
    out: list[tuple[str, str, str, str]] = []
    c = rows.checks
    if not c.empty and "check_name" in c.columns:
        for r in c[c["check_name"] != "alert"].to_dict("records"):
            name = str(r["check_name"])
            status = "warn" if name == "rejected_share" and (_float(r["value"]) or 0.0) > 0 else "info"
            out.append((name.replace("_", " "), "", str(r["message"]), status))
    f = population(rows.features)
    for model in _models(f):
        part = f[f["model"] == model]
        absent = [str(r) for r in part.loc[part["absent"].map(_flag), "feature"]]
        out.append(("columns present", model, f"{len(absent)} of {len(part)} features absent from the run"
                    + (f": {', '.join(absent)}" if absent else ""), "fail" if absent else "ok"))
        new = part[part["new_level_share"].map(lambda v: (_float(v) or 0.0) > 0)]
        out.append(("categorical levels", model,
                    "no level unseen in training" if new.empty else "; ".join(
                        f"{r['feature']}: {pct(r['new_level_share'])} new levels" for r in new.to_dict("records")),
                    "ok" if new.empty else "warn"))
        rise = part[(part["missing_share"].map(lambda v: _float(v) or 0.0)
                     - part["reference_missing_share"].map(lambda v: _float(v) or 0.0)) >= MISSING_RISE_WARN]
        rise = rise[~rise["absent"].map(_flag)]
        out.append(("missing values", model,
                    f"no missing share {MISSING_RISE_WARN:.0%} or more above the reference" if rise.empty else "; ".join(
                        f"{r['feature']}: {pct(r['missing_share'])} missing (reference {pct(r['reference_missing_share'])})"
                        for r in rise.to_dict("records")),
                    "ok" if rise.empty else "warn"))
    customers = _float((rows.scoring or {}).get("customers"))
    for r in rows.predictions.to_dict("records"):
        scored = _float(r["rows"])
        if customers is not None and scored is not None:
            same = int(scored) == int(customers)
            out.append(("rows scored", str(r["model"]), f"{int(scored):,} scores of {int(customers):,} customers",
                        "ok" if same else "warn"))
        if _value(r["note"]):
            out.append(("note", str(r["model"]), str(r["note"]), "info"))
    if rows.scoring is None:
        out.append(("scoring run", "", "the run is not in scoring_runs (deleted?): its counts cannot be checked",
                    "warn"))
    elif _value(rows.scoring.get("status")) != "succeeded":
        out.append(("scoring run", "", f"status {rows.scoring.get('status')}", "warn"))
    return out


def _data_checks(rows: ReportRows) -> str:
    checks = data_checks(rows)
    parts = ['<section id="data-checks"><h2>Data checks</h2>']
    if not checks:
        parts.append(_empty("no data checks recorded for this run"))
    else:
        parts.append(_table(["check", "model", "result", "status"],
                            [[escape(c), escape(m), escape(r), f'<span class="status {s}">{s}</span>']
                             for c, m, r, s in checks], classes=[f"check-{s}" for *_, s in checks], wrap={2}))
    parts.append("</section>")
    return "".join(parts)


# -- the page ---------------------------------------------------------------------------------------

_CSS = """
:root { --ink:#1f2328; --muted:#656d76; --line:#d0d7de; --panel:#f6f8fa; --accent:#0b5cad; --alert:#c0392b;
        --ok:#1f7a4d; --warn:#9a6700; --est:#d4731c; }
* { box-sizing: border-box; }
body { margin: 0; font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: var(--ink); }
header { padding: 0.8rem 1.5rem; border-bottom: 1px solid var(--line); background: var(--panel); }
header h1 { font-size: 1.3rem; margin: 0; }
nav { display: flex; flex-wrap: wrap; gap: 1rem; padding: 0.4rem 1.5rem; border-bottom: 1px solid var(--line); }
nav a { color: var(--accent); text-decoration: none; }
main { max-width: 1000px; margin: 0 auto; padding: 0.5rem 1.5rem 3rem; }
section { margin: 1.5rem 0; }
h2 { font-size: 1.25rem; margin: 1rem 0 0.5rem; border-bottom: 1px solid var(--line); padding-bottom: 0.2rem; }
h3 { font-size: 1.05rem; margin: 1.2rem 0 0.4rem; }
h4 { font-size: 0.95rem; margin: 0.8rem 0 0.3rem; }
.muted, figcaption { color: var(--muted); font-size: 0.9rem; }
.empty { color: var(--muted); font-style: italic; padding: 0.4rem 0.8rem; border-left: 3px solid var(--line);
         background: var(--panel); }
.ok { color: var(--ok); font-weight: 600; }
.note { color: var(--warn); }
ul.alerts li { color: var(--alert); font-weight: 600; }
dl.facts { display: flex; flex-wrap: wrap; gap: 0.6rem; margin: 0.8rem 0; padding: 0; }
.fact { border: 1px solid var(--line); border-radius: 6px; padding: 0.3rem 0.8rem; background: var(--panel); }
.fact dt { font-size: 0.8rem; color: var(--muted); }
.fact dd { margin: 0; font-weight: 600; word-break: break-all; }
.table-wrap { overflow-x: auto; }
table { border-collapse: collapse; margin: 0.4rem 0; font-size: 0.9rem; }
th, td { border-bottom: 1px solid var(--line); padding: 0.2rem 0.6rem; text-align: left; vertical-align: top; }
td { white-space: nowrap; } td.wrap { white-space: normal; min-width: 16rem; }
th { background: var(--panel); }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
tr.alert td, tr.check-fail td { background: #fdecea; }
tr.check-warn td { background: #fff8c5; }
tr.this-run td { font-weight: 600; }
.status.fail { color: var(--alert); font-weight: 600; } .status.warn { color: var(--warn); font-weight: 600; }
.status.ok { color: var(--ok); } .status.info { color: var(--muted); }
.flipped { color: var(--alert); font-weight: 600; }
.up { color: var(--ok); } .down { color: var(--alert); } .new { color: var(--warn); } .same { color: var(--muted); }
figure { margin: 0.5rem 0; }
details { margin: 0.4rem 0; } summary { cursor: pointer; }
svg.chart { display: block; max-width: 100%; height: auto; background: #fff; }
svg .grid { stroke: #eaeef2; } svg .zero { stroke: #8c959f; }
svg .tick { font-size: 11px; fill: var(--muted); } svg .axis { font-size: 12px; fill: var(--ink); }
svg .value { font-size: 11px; fill: var(--ink); }
svg .bar { fill: var(--accent); } svg .bar.alert { fill: var(--alert); }
svg .threshold { stroke: var(--alert); stroke-width: 1.5; stroke-dasharray: 5 3; }
svg .threshold-label { font-size: 11px; fill: var(--alert); }
svg .ref { fill: #d0d7de; fill-opacity: 0.55; stroke: #57606a; stroke-width: 1; }
svg .ref-fill { fill: #afb8c1; }
svg .cur { fill: var(--accent); fill-opacity: 0.75; }
svg .marker { stroke: #8c959f; stroke-dasharray: 2 3; }
svg .card { stroke: #57606a; stroke-width: 1.5; stroke-dasharray: 1 3; }
svg .drop { stroke: var(--alert); stroke-width: 1; stroke-dasharray: 5 3; }
.alert-text { color: var(--alert); font-weight: 600; font-size: 0.9rem; }
svg polyline.series { fill: none; stroke-width: 2.2; }
svg line.series { stroke-width: 2.2; }
svg .s0 { stroke: var(--accent); fill: var(--accent); } svg polyline.s0 { fill: none; }
svg .s1 { stroke: var(--est); fill: var(--est); stroke-dasharray: 6 4; } svg polyline.s1 { fill: none; }
svg circle.s1 { stroke-dasharray: none; }
footer { color: var(--muted); font-size: 0.8rem; padding: 1rem 1.5rem; border-top: 1px solid var(--line); }
@media print { nav { display: none; } section { break-inside: avoid-page; } }
"""
# The file loads nothing: no script, no outside style or image (charts are inline SVG).
_CSP = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; base-uri 'none'; form-action 'none'"
SECTIONS = (("summary", "Summary"), ("feature-drift", "Feature drift"), ("score-distributions", "Score distributions"),
            ("attribution-shift", "Attribution shift"), ("performance", "Performance"), ("data-checks", "Data checks"))


def render(rows: ReportRows, cfg: MonitoringConfig | None = None, generated_at: datetime | None = None) -> str:
    """The report of `rows` as one HTML document (pure: no I/O).

    Args:
        rows: what `read_rows` read.
        cfg: the alert lines ([monitoring]; default: the defaults).
        generated_at: the time in the footer (default: now, UTC).
    """
    cfg = cfg or MonitoringConfig()
    when = (generated_at or datetime.now(UTC)).strftime("%Y-%m-%d %H:%M UTC")
    nav = "".join(f'<a href="#{key}">{title}</a>' for key, title in SECTIONS)
    body = "".join([_summary(rows, cfg), _feature_drift(rows, cfg), _score_distributions(rows),
                    _attribution_shift(rows, cfg), _performance(rows, cfg), _data_checks(rows)])
    return (
        "<!doctype html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
        f'<meta http-equiv="Content-Security-Policy" content="{_CSP}">\n'
        '<meta name="viewport" content="width=device-width, initial-scale=1">\n'
        f"<title>Monitoring report: run {escape(rows.run_id)} ({rows.as_of})</title>\n<style>{_CSS}</style>\n"
        f"</head>\n<body>\n<header><h1>Monitoring report: scoring run {escape(rows.run_id)} as of {rows.as_of}</h1>"
        f"</header>\n<nav>{nav}</nav>\n<main>\n{body}\n</main>\n"
        f"<footer>Generated {when} from the monitoring tables ({', '.join(tables.TABLES)}) and scoring_runs. "
        "Self-contained: no script, nothing loaded from elsewhere.</footer>\n</body>\n</html>\n")


def report_html(wh: Warehouse, run_id: str | None = None, cfg: MonitoringConfig | None = None) -> str:
    """The monitoring report of a run as one self-contained HTML document.

    Args:
        wh: the warehouse holding the monitoring tables and scoring_runs.
        run_id: a monitored run (default: the latest monitored one, by as_of).
        cfg: the alert lines drawn ([monitoring]; default: the defaults).

    Raises:
        NotMonitored: no monitoring rows for the run (or none at all).
    """
    return render(read_rows(wh, run_id), cfg)


def write_report(wh: Warehouse, run_id: str | None, path: Path | str, cfg: MonitoringConfig | None = None) -> Path:
    """Write the report of `run_id` (None: the latest monitored run) to `path`; returns the path."""
    html = report_html(wh, run_id, cfg)
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = out.with_name(out.name + ".tmp")
    tmp.write_text(html, encoding="utf-8")
    tmp.replace(out)
    return out
