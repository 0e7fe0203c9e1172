"""How well a scoring run's scores turned out: realised once its horizon has passed,
estimated from the scores alone before that.

Realised (labels from the raw tables, as training defines them, `features.labels`):
- churn: 1 when the customer made no purchase (an order with net amount > 0) in
  [as_of, as_of + horizon); every customer the run scored.
- value: net amount of all lines in that window (returns included, 0 without any).
- response: the treatment contacts of the finished campaigns of the run's campaign kind
  that started in that window (start as training dates it: the earlier of the
  campaign's start and its first contact); 1 when the customer responded.
A run's horizon has elapsed when as_of + horizon <= the data's end (the day after the
last transaction); for response, when the campaigns in the window have all ended.

Estimated (confidence-based performance estimation, the idea of NannyML's CBPE; NannyML
itself pins lightgbm < 4.6, which the pinned stack cannot take): for a calibrated
classifier, a customer with score p is a positive with probability p. Taking customers
by score, highest first, the expected true positives are the running sum of p and the
expected false positives the running sum of 1 - p; the expected ROC curve and its area
follow, and the expected precision at each cut gives the expected average precision.
Tied scores move together (one step of the curve), as in the realised AUC.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime, timedelta

import numpy as np
import pandas as pd

from features.load import Warehouse
from features.snapshots import data_end
from monitoring.tables import ALL_SEGMENTS
from serving import sink
from training.evaluate import classification_metrics, value_metrics

CLASSIFIERS = ("churn", "response")
MIN_SEGMENT_ROWS = 50  # segments with fewer customers get no row of their own


def expected_curve(p: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Expected (FPR, TPR, precision) at each distinct score, highest first, if `p` is calibrated.

    FPR and TPR start at 0; precision has one value per cut (no leading point).
    """
    p = np.asarray(p, dtype=float)
    order = np.argsort(-p, kind="stable")
    s = p[order]
    tp = np.cumsum(s)
    fp = np.cumsum(1.0 - s)
    last = np.r_[np.flatnonzero(np.diff(s) != 0), s.size - 1]  # the last row of each run of ties
    tp, fp, taken = tp[last], fp[last], last + 1.0
    pos, neg = tp[-1], fp[-1]
    tpr = np.r_[0.0, tp / pos] if pos > 0 else np.r_[0.0, np.full(tp.size, np.nan)]
    fpr = np.r_[0.0, fp / neg] if neg > 0 else np.r_[0.0, np.full(fp.size, np.nan)]
    return fpr, tpr, tp / taken


def estimated_metrics(p: np.ndarray) -> dict[str, float]:
    """Expected ROC AUC and average precision of calibrated probabilities `p` (NaN for no rows)."""
    p = np.asarray(p, dtype=float)
    p = p[np.isfinite(p)]
    if p.size == 0:
        return {"auc": float("nan"), "pr_auc": float("nan")}
    fpr, tpr, precision = expected_curve(p)
    auc = float(np.sum(np.diff(fpr) * (tpr[1:] + tpr[:-1]) / 2))
    pr_auc = float(np.sum(np.diff(tpr) * precision))
    return {"auc": auc, "pr_auc": pr_auc}


@dataclass(frozen=True)
class RunRef:
    """A published scoring run: what its performance rows are keyed by."""

    run_id: str
    attempt: int
    as_of: date
    versions: dict[str, str]  # model -> version, for the models it scored
    campaign_kind: str | None

    @classmethod
    def of(cls, row: dict) -> RunRef:
        versions = {m: str(row[f"{m}_version"]) for m in sink.MODELS if not sink.is_null(row.get(f"{m}_version"))}
        kind = None if sink.is_null(row.get("campaign_kind")) else str(row["campaign_kind"])
        return cls(str(row["run_id"]), int(row["attempt"]), pd.Timestamp(row["as_of"]).date(), versions, kind)


def published_runs(wh: Warehouse) -> list[RunRef]:
    """Every published scoring run, oldest first."""
    if not wh.has(sink.RUNS):
        return []
    rows = wh.native_query(f"select * from {sink.RUNS} where status = 'succeeded' order by as_of, finished_at")
    return [RunRef.of(r) for r in rows.to_dict("records")]


def _window(as_of: date, horizon_days: int) -> dict[str, datetime]:
    start = datetime.combine(as_of, datetime.min.time())
    return {"as_of": start, "horizon_end": start + timedelta(days=horizon_days)}


def customer_outcomes(wh: Warehouse, run: RunRef, horizon_days: int) -> pd.DataFrame:
    """Each scored customer's scores, RFMW segment and realised churn and value labels."""
    sql = f"""
        with orders_after as (
            select customer_id, order_id, sum(amount) as net from transactions
            where ts >= ? and ts < ? group by customer_id, order_id),
        spend_after as (
            select customer_id, sum(net) as value, count(*) filter (where net > 0) as purchases
            from orders_after group by customer_id)
        select s.customer_id, s.churn_risk, s.predicted_value, s.response_prob, g.rfmw_segment,
               case when coalesce(a.purchases, 0) = 0 then 1 else 0 end as label_churn,
               coalesce(a.value, 0) as label_value
        from {sink.SCORES} s
        left join {sink.SEGMENTS} g on g.run_id = s.run_id and g.customer_id = s.customer_id
        left join spend_after a on a.customer_id = s.customer_id
        where s.run_id = ? order by s.customer_id"""
    w = _window(run.as_of, horizon_days)
    return wh.native_query(sql, [w["as_of"], w["horizon_end"], run.run_id])


def response_outcomes(wh: Warehouse, run: RunRef, horizon_days: int, end: date) -> pd.DataFrame | None:
    """Treatment contacts of finished campaigns of the run's kind that started in its horizon.

    None when a campaign that starts in the window has not ended by `end` (the horizon of
    response has not elapsed) or there are no campaign tables.
    """
    if not (wh.has("campaigns") and wh.has("contacts")):
        return None
    w = _window(run.as_of, horizon_days)
    kind = "and c.kind = ?" if run.campaign_kind is not None else ""
    starts = wh.native_query(
        f"""select c.campaign_id, least(min(c.start), min(k.contacted_at))::date as started,
                   max(c."end")::date as ends
            from campaigns c join contacts k using (campaign_id)
            where k."group" = 'treatment' {kind} group by c.campaign_id""",
        [run.campaign_kind] if run.campaign_kind is not None else [])
    started = pd.to_datetime(starts["started"])
    inside = starts[(started >= w["as_of"]) & (started < w["horizon_end"])]
    if inside.empty or (pd.to_datetime(inside["ends"]) >= pd.Timestamp(end)).any():
        return None
    ids = list(inside["campaign_id"])
    marks = ", ".join("?" for _ in ids)
    return wh.native_query(
        f"""select k.campaign_id, k.customer_id, bool_or(k.responded)::int as label_response,
                   max(s.response_prob) as response_prob, max(g.rfmw_segment) as rfmw_segment
            from contacts k
            join {sink.SCORES} s on s.customer_id = k.customer_id and s.run_id = ?
            left join {sink.SEGMENTS} g on g.run_id = s.run_id and g.customer_id = s.customer_id
            where k."group" = 'treatment' and k.campaign_id in ({marks})
            group by k.campaign_id, k.customer_id order by k.campaign_id, k.customer_id""",
        [run.run_id, *ids])


def _row(run: RunRef, model: str, source: str, segment: str, horizon_end: date | None,
         scores: np.ndarray, actual: np.ndarray | None) -> dict:
    scores = np.asarray(scores, dtype=float)
    out = {"run_id": run.run_id, "attempt": run.attempt, "as_of": run.as_of, "model": model,
           "version": run.versions.get(model), "source": source, "segment": segment, "horizon_end": horizon_end,
           "customers": int(scores.size), "mean_score": float(np.mean(scores)) if scores.size else np.nan,
           "positives": np.nan, "mean_actual": np.nan, "auc": np.nan, "pr_auc": np.nan, "ece": np.nan,
           "gini": np.nan}
    if source == "estimated":
        out.update(estimated_metrics(scores))
        out["positives"] = float(scores.sum())
        return out
    y = np.asarray(actual, dtype=float)
    out["mean_actual"] = float(y.mean()) if y.size else np.nan
    if model == "value":
        out["gini"] = value_metrics(y, scores)["gini_norm"] if y.size else np.nan
        out["positives"] = float(np.sum(y > 0))
    elif y.size:
        m = classification_metrics(y, scores)
        out.update(auc=m["auc"], pr_auc=m["pr_auc"], ece=m["ece"], gini=2 * m["auc"] - 1)
        out["positives"] = float(y.sum())
    return out


def _by_segment(run: RunRef, model: str, source: str, horizon_end: date | None, frame: pd.DataFrame,
                score: str, label: str | None) -> list[dict]:
    frame = frame[np.isfinite(frame[score].to_numpy(dtype=float))]
    rows = [_row(run, model, source, ALL_SEGMENTS, horizon_end, frame[score].to_numpy(dtype=float),
                 None if label is None else frame[label].to_numpy(dtype=float))]
    for segment, part in frame.groupby("rfmw_segment", sort=True):
        if len(part) >= MIN_SEGMENT_ROWS:
            rows.append(_row(run, model, source, str(segment), horizon_end, part[score].to_numpy(dtype=float),
                             None if label is None else part[label].to_numpy(dtype=float)))
    return rows


def run_performance(wh: Warehouse, run: RunRef, horizon_days: int, end: date | None = None,
                    card: dict[str, dict[str, float]] | None = None) -> pd.DataFrame:
    """The run_performance rows of one run: estimated always, realised once its horizon has elapsed.

    Args:
        wh: the warehouse with the run's scores and segments and the raw tables.
        run: the run.
        horizon_days: the models' horizon (`[features] horizon_days`).
        end: the data's end (default: the day after the last transaction).
        card: model -> the model card's out-of-time metrics of the run's version (rows
            with source 'card'); None leaves them out.
    """
    end = data_end(wh) if end is None else end
    horizon_end = run.as_of + timedelta(days=horizon_days)
    rows: list[dict] = []
    outcomes = customer_outcomes(wh, run, horizon_days)
    elapsed = horizon_end <= end
    for model in run.versions:
        score = sink.SCORE_COLUMN[model]
        if model in CLASSIFIERS:
            rows += _by_segment(run, model, "estimated", None, outcomes, score, None)
        if model == "response":
            contacts = response_outcomes(wh, run, horizon_days, end)
            if contacts is not None and len(contacts):
                rows += _by_segment(run, model, "realised", horizon_end, contacts, score, "label_response")
        elif elapsed:
            label = "label_churn" if model == "churn" else "label_value"
            rows += _by_segment(run, model, "realised", horizon_end, outcomes, score, label)
        if card and card.get(model):
            c = card[model]
            auc = c.get("auc", np.nan)
            gini = c.get("gini_norm", np.nan) if model == "value" else 2 * auc - 1
            rows.append({**_row(run, model, "card", ALL_SEGMENTS, None, np.array([]), np.array([])),
                         "customers": None, "positives": np.nan, "mean_actual": np.nan, "mean_score": np.nan,
                         "auc": auc, "pr_auc": c.get("pr_auc", np.nan), "ece": c.get("ece", np.nan), "gini": gini})
    return pd.DataFrame(rows)
