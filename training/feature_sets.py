"""The features each model reads: constants in git, so a change shows in review.

Segment columns (scores, tiers) are left out on purpose: they are ranks within one
cutoff's population, so the same customer behaviour gets different values at different
cutoffs. Customer attributes (`attr_*`) depend on the warehouse; every one present is
used, and the list a model was trained with is stored with it.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

import pandas as pd

from features.btyd import BTYD_FEATURES
from features.rfmw import LAST_YEAR_FEATURES
from features.season import SEASON_FEATURES

if TYPE_CHECKING:  # models imports this module
    from training.models import LgbmModel

NUMERIC: tuple[str, ...] = (
    "recency_days",
    "tenure_days",
    "purchases_total",
    "repeat_purchase_days",
    "frequency_trend",
    "spend_trend",
    "width_categories",
    "gap_mean_days",
    "gap_median_days",
    "gap_std_days",
    "overdue_ratio",
    "needs_evaluations_total",
    "needs_open_pains",
    "needs_complaints_total",
    "needs_days_since_evaluation",
    "needs_latest_urgency",
    "needs_latest_importance",
    "needs_latest_solution_fit",
    "needs_mean_solution_fit",
)

# Features computed over windows of N days ([features] frequency_window_days and
# short_windows_days): `<prefix>_<N>d`, one per window the feature frame was built with.
WINDOWED: tuple[str, ...] = ("frequency", "monetary_avg", "spend", "returns_share", "needs_complaints")

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


def window_features(frame: pd.DataFrame) -> list[str]:
    """The windowed feature columns present in a feature frame, by prefix, then window length."""
    found = []
    for prefix in WINDOWED:
        pattern = re.compile(rf"^{prefix}_(\d+)d$")
        days = sorted(int(m.group(1)) for c in frame.columns if (m := pattern.match(c)))
        found += [f"{prefix}_{d}d" for d in days]
    return found


def btyd_features(frame: pd.DataFrame) -> list[str]:
    """The BTYD columns present in a feature frame (`features.btyd.add_btyd_features`; the
    training frames have them, a bare `build_features` frame does not)."""
    return [c for c in BTYD_FEATURES if c in frame.columns]


# Built only with `[features] horizon_features` / `season_features` (features.rfmw,
# features.season): used when the frame has them.
OPTIONAL_NUMERIC: tuple[str, ...] = (*LAST_YEAR_FEATURES, *SEASON_FEATURES)


def feature_lists(model: str, frame: pd.DataFrame) -> tuple[list[str], list[str]]:
    """(numeric, categorical) feature names for `model` on this frame (windows as the frame was built)."""
    categorical = list(CATEGORICAL) + attribute_features(frame)
    if model == "response":
        categorical += list(RESPONSE_EXTRA_CATEGORICAL)
    optional = [c for c in OPTIONAL_NUMERIC if c in frame.columns]
    return list(NUMERIC) + window_features(frame) + optional + btyd_features(frame), categorical


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


def checked_model_input(frame: object, numeric: list[str], categorical: list[str]) -> pd.DataFrame:
    """`model_input` for frames from outside (pyfunc callers): refuses text that is not a number.

    Accepts the feature file as `propensity features build` writes it (int64, nullable
    Int64, extra columns), or anything pandas can make a frame of.

    Raises:
        ValueError: a feature column is missing, or a numeric one holds text that is not a number.
    """
    if not isinstance(frame, pd.DataFrame):
        frame = pd.DataFrame(frame)
    not_numbers = []
    for c in numeric:
        if c in frame.columns and not pd.api.types.is_numeric_dtype(frame[c]):
            values = frame[c]
            if (pd.to_numeric(values, errors="coerce").isna() & values.notna()).any():
                not_numbers.append(c)
    if not_numbers:
        raise ValueError(f"numeric feature columns hold values that are not numbers: {', '.join(not_numbers)}")
    return model_input(frame, numeric, categorical)
