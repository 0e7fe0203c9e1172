"""Scores, expected profit and reason codes for one chunk of feature rows (frames in, frames out)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date

import numpy as np
import pandas as pd

from features.snapshots import SEGMENT_COLUMNS
from training.explain import contributions, reason_codes
from training.feature_sets import with_campaign_kind
from training.models import LgbmModel, transform_raw

REASON_COLUMNS = ["customer_id", "model", "rank", "feature", "feature_value", "contribution", "scale", "effect",
                  "text"]


def expected_profit(response_prob: np.ndarray, predicted_value: np.ndarray, margin: float,
                    contact_cost: float) -> np.ndarray:
    """Profit expected from contacting a customer: P(response) x value x margin - cost of the contact."""
    return np.asarray(response_prob, float) * np.asarray(predicted_value, float) * margin - contact_cost


@dataclass
class ChunkResult:
    """Published rows of one chunk (without run_id / deciles / tiers, added later)."""

    scores: pd.DataFrame
    segments: pd.DataFrame
    reasons: pd.DataFrame


def score_chunk(
    frame: pd.DataFrame,
    models: dict[str, LgbmModel],
    as_of: date,
    campaign_kind: str | None,
    margin: float,
    contact_cost: float,
    k: int = 5,
) -> ChunkResult:
    """Score and explain one chunk of customers with the churn, response and value models.

    Args:
        frame: feature rows (from `build_features`), one per customer.
        models: "churn", "response", "value" -> fitted model.
        as_of: the features' cutoff (recorded on every row).
        campaign_kind: the campaign kind the response model scores for.
        margin: share of the predicted value that is profit.
        contact_cost: cost of one contact.
        k: reason codes per customer and model.

    Returns:
        Score, segment and reason rows. Scores come from the same TreeSHAP pass as the
        reasons (raw score -> output scale), so they equal `model.predict` exactly.
    """
    ids = frame["customer_id"].to_numpy()
    scores = pd.DataFrame({"customer_id": ids, "as_of": pd.Timestamp(as_of)})
    reasons = []
    out_col = {"churn": "churn_risk", "response": "response_prob", "value": "predicted_value"}
    for name in ("churn", "response", "value"):
        model = models[name]
        rows = with_campaign_kind(model, frame, campaign_kind)
        c = contributions(model, rows, chunk_rows=max(1, len(rows)))
        scores[out_col[name]] = transform_raw(model.kind, c.raw, model.calibration_)
        reasons.append(reason_codes(model, rows, name, k=k, contribs=c)[REASON_COLUMNS])
    scores["expected_profit"] = expected_profit(scores["response_prob"], scores["predicted_value"], margin,
                                                contact_cost)
    segments = frame[["customer_id", *SEGMENT_COLUMNS]].reset_index(drop=True)
    segments.insert(1, "as_of", pd.Timestamp(as_of))
    return ChunkResult(scores, segments, pd.concat(reasons, ignore_index=True))
