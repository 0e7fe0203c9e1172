"""Scores, expected profit and reason codes for one chunk of feature rows (frames in, frames out)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import date

import numpy as np
import pandas as pd

from features.snapshots import SEGMENT_COLUMNS
from serving.response_value import ResponseValue, aov_feature, unobserved, value_per_response
from training.explain import contributions, reason_codes
from training.feature_sets import with_campaign_kind
from training.models import LgbmModel

REASON_COLUMNS = ["customer_id", "model", "rank", "feature", "feature_value", "contribution", "scale", "effect",
                  "text"]


def expected_profit(response_prob: np.ndarray, value_per_response: np.ndarray, margin: float,
                    contact_cost: float) -> np.ndarray:
    """Profit expected from contacting a customer: P(response) x value per response x margin - cost.

    The value per response is what one response brings (`serving.response_value`:
    average order value x the campaign kind's k), not the customer's 90-day predicted
    value. Null where the response probability is (no response model).
    """
    return np.asarray(response_prob, float) * np.asarray(value_per_response, float) * margin - contact_cost


@dataclass
class AttributionSums:
    """Sum of |contribution| per feature of one model over the rows explained so far.

    The scorer adds every piece's sums while it explains, so a run's mean |contribution|
    per feature (attribution drift, `monitoring`) needs no second SHAP pass.
    """

    scale: str
    rows: int = 0
    sum_abs: dict[str, float] = field(default_factory=dict)
    sum: dict[str, float] = field(default_factory=dict)  # signed: where the features push the scores

    @classmethod
    def of(cls, values: pd.DataFrame, scale: str) -> AttributionSums:
        x = values.to_numpy(dtype=float)
        names = [str(c) for c in values.columns]
        return cls(scale, len(values), dict(zip(names, np.abs(x).sum(axis=0).tolist())),
                   dict(zip(names, x.sum(axis=0).tolist())))

    def add(self, other: AttributionSums) -> None:
        self.rows += other.rows
        for mine, theirs in ((self.sum_abs, other.sum_abs), (self.sum, other.sum)):
            for k, v in theirs.items():
                mine[k] = mine.get(k, 0.0) + v

    def copy(self) -> AttributionSums:
        return AttributionSums(self.scale, self.rows, dict(self.sum_abs), dict(self.sum))

    def as_json(self) -> dict:
        """{"rows", "scale", "mean_abs": {feature: mean |contribution|}, "mean": {feature: mean contribution}}."""
        n = max(self.rows, 1)
        return {"rows": self.rows, "scale": self.scale, "mean_abs": {k: v / n for k, v in self.sum_abs.items()},
                "mean": {k: v / n for k, v in self.sum.items()}}


@dataclass
class ChunkResult:
    """Published rows of one chunk (without run_id / deciles / tiers, added later)."""

    scores: pd.DataFrame
    segments: pd.DataFrame
    reasons: pd.DataFrame
    # seconds spent on: "explain" (TreeSHAP contributions and raw scores, the additivity
    # check), "reasons" (ranking, effects, sentences), "score" (the rest: output scale,
    # value per response, expected profit, segments)
    seconds: dict[str, float] = field(default_factory=dict)
    # model -> sum of |contribution| per feature over this chunk's rows
    attributions: dict[str, AttributionSums] = field(default_factory=dict)


def score_chunk(
    frame: pd.DataFrame,
    models: dict[str, LgbmModel],
    as_of: date,
    campaign_kind: str | None,
    margin: float,
    contact_cost: float,
    k: int = 5,
    response_value: ResponseValue | None = None,
    threads: int | None = None,
) -> ChunkResult:
    """Score and explain one chunk of customers with the churn, response and value models.

    Args:
        frame: feature rows (from `build_features`), one per customer.
        models: "churn", "response", "value" -> fitted model; a model that is absent (no
            champion) leaves its score column null and adds no reasons.
        as_of: the features' cutoff (recorded on every row).
        campaign_kind: the campaign kind the response model scores for.
        margin: share of the predicted value that is profit.
        contact_cost: cost of one contact.
        k: reason codes per customer and model.
        response_value: k and the AOV fallback of the run (`serving.response_value`); by
            default k = 1 and the chunk's median AOV.
        threads: threads for explaining and scoring this chunk (default: each model's
            `num_threads`); the batch scorer gives 1 to each of its parallel pieces.

    Returns:
        Score, segment and reason rows. Scores come from the same TreeSHAP pass as the
        reasons (raw score -> output scale), so they equal `model.predict` exactly.
    """
    start = time.perf_counter()
    spent = {"explain": 0.0, "reasons": 0.0}
    ids = frame["customer_id"].to_numpy()
    scores = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(as_of)})
    reasons = []
    attributions = {}
    out_col = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value"}
    for name in ("churn", "response", "value"):
        model = models.get(name)
        if model is None:
            scores[out_col[name]] = np.nan
            continue
        rows = with_campaign_kind(model, frame, campaign_kind)
        t = time.perf_counter()
        c = contributions(model, rows, chunk_rows=max(1, len(rows)), threads=threads)
        attributions[name] = AttributionSums.of(c.values, c.scale)
        spent["explain"] += time.perf_counter() - t
        scores[out_col[name]] = model.output(c.raw)
        t = time.perf_counter()
        reasons.append(reason_codes(model, rows, name, k=k, contribs=c)[REASON_COLUMNS])
        spent["reasons"] += time.perf_counter() - t
    value = response_value or unobserved(campaign_kind, as_of, "not measured").with_fallback(
        pd.to_numeric(frame[aov_feature()], errors="coerce").median())
    scores["response_value"] = value_per_response(frame[value.feature], value)
    scores["expected_profit"] = expected_profit(scores["response_prob"], scores["response_value"], margin,
                                                contact_cost)
    segments = frame[["customer_id", *SEGMENT_COLUMNS]].reset_index(drop=True)
    segments.insert(1, "as_of", pd.Timestamp(as_of))
    spent["score"] = time.perf_counter() - start - spent["explain"] - spent["reasons"]
    return ChunkResult(scores, segments, pd.concat(reasons, ignore_index=True), spent,
                       attributions)
