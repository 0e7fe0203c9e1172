"""The features each model reads: constants in git, so a change shows in review.

Segment columns (scores, tiers) are left out on purpose: they are ranks within one
cutoff's population, so the same customer behaviour gets different values at different
cutoffs. Customer attributes (`attr_*`) depend on the warehouse; every one present is
used, and the list a model was trained with is stored with it.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import pandas as pd

if TYPE_CHECKING:  # models imports this module
    from training.models import LgbmModel

NUMERIC: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "purchases_total",
    "repeat_purchase_days",
    "frequency_30d",
    "frequency_90d",
    "frequency_365d",
    "monetary_avg_30d",
    "monetary_avg_90d",
    "monetary_avg_365d",
    "spend_30d",
    "spend_90d",
    "spend_365d",
    "frequency_trend",
    "spend_trend",
    "returns_share_365d",
    "width_categories",
    "gap_mean_days",
    "gap_median_days",
    "gap_std_days",
    "overdue_ratio",
    "needs_evaluations_total",
    "needs_open_pains",
    "needs_complaints_365d",
    "needs_complaints_total",
    "needs_days_since_evaluation",
    "needs_latest_urgency",
    "needs_latest_importance",
    "needs_latest_solution_fit",
    "needs_mean_solution_fit",
)

CATEGORICAL: tuple[str, ...] = (
    "needs_latest_level",
    "needs_latest_dimension",
    "needs_orientation",
    "needs_style",
)

# The response model also knows what kind of campaign made the contact.
RESPONSE_EXTRA_CATEGORICAL: tuple[str, ...] = ("campaign_kind",)

TARGETS = {"churn": "label_churn", "value": "label_value", "response": "label_response"}


def attribute_features(frame: pd.DataFrame) -> list[str]:
    """Customer attribute columns present in a feature frame."""
    return sorted(c for c in frame.columns if c.startswith("attr_"))


def feature_lists(model: str, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names for `model` on this frame."""
    categorical = list(CATEGORICAL) + attribute_features(frame)
    if model == "response":
        categorical += list(RESPONSE_EXTRA_CATEGORICAL)
    return list(NUMERIC), categorical


def default_campaign_kind(model: LgbmModel) -> str | None:
    """The first campaign kind the model was trained on (None when it has no such feature)."""
    if "campaign_kind" not in model.categorical:
        return None
    levels = model.categories_.get("campaign_kind") or []
    return levels[0] if levels else None


def with_campaign_kind(model: LgbmModel, frame: pd.DataFrame, campaign_kind: str | None) -> pd.DataFrame:
    """The rows as the model expects them: the response model also needs the campaign kind."""
    if "campaign_kind" not in model.categorical:
        return frame
    out = frame.copy()
    out["campaign_kind"] = campaign_kind or default_campaign_kind(model)
    return out


def model_input(frame: pd.DataFrame, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """The frame a model reads: numbers as float64, categories as text, in a fixed order.

    MLflow's schema check refuses int64 where the signature says double, and stores
    pandas categories as strings; this one shape works for training and for pyfunc.
    """
    missing = [c for c in numeric + categorical if c not in frame.columns]
    if missing:
        raise ValueError(f"feature frame lacks columns: {', '.join(missing)}")
    out = pd.DataFrame(index=frame.index)
    for c in numeric:
        out[c] = pd.to_numeric(frame[c], errors="coerce").astype("float64")
    for c in categorical:
        out[c] = frame[c].astype("str")  # text; missing stays missing
    return out.reset_index(drop=True)
