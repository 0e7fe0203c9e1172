"""Population stability: how far a run's distribution of one feature (or score) has moved
from the reference saved at training time.

Bins come from the reference only (`training.profile`), so a later run is always measured
on the same cut.

PSI = sum over bins of (a - e) * ln(a / e), with e and a the reference and current
shares; a share of 0 is raised to `SHARE_FLOOR` first, so a bin that empties or appears
adds a large but finite term. Common reading: below 0.1 stable, 0.1-0.25 a moderate
shift, above 0.25 a large one (the thresholds are settings of `[monitoring]`).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from training.profile import Bins, shares

SHARE_FLOOR = 1e-4


def psi(expected: np.ndarray, actual: np.ndarray, floor: float = SHARE_FLOOR) -> float:
    """Population stability index of two share vectors over the same bins (0: identical)."""
    e = np.maximum(np.asarray(expected, dtype=float), floor)
    a = np.maximum(np.asarray(actual, dtype=float), floor)
    if e.shape != a.shape:
        raise ValueError(f"{e.size} reference bins against {a.size} current bins")
    return float(np.sum((a - e) * np.log(a / e)))


def column_psi(bins: Bins, values: pd.Series | np.ndarray) -> float:
    """PSI of `values` against the reference shares stored in `bins`."""
    return psi(np.asarray(bins.reference), shares(bins, values))


def feature_drift(frame: pd.DataFrame, profile: dict) -> pd.DataFrame:
    """PSI of every profiled feature of `frame` against a model's reference profile.

    Args:
        frame: the run's feature rows (a scoring snapshot, with any columns the scorer adds).
        profile: the model's `reference_profile.json` (`training.profile.reference_profile`).

    Returns:
        One row per profiled feature, largest PSI first: feature, kind, psi, missing share
        now and in the reference, the share of categorical levels the reference never saw,
        and `absent` (True when the frame lacks the column: every row counts as missing).
    """
    rows = []
    n = len(frame)
    for feature, stored in profile["features"].items():
        bins = Bins.from_dict(stored)
        absent = feature not in frame.columns
        values = pd.Series([None] * n, dtype="object") if absent else frame[feature]
        now = shares(bins, values)
        new_share = float(now[-2]) if bins.kind == "categorical" else 0.0
        rows.append({"feature": feature, "kind": bins.kind, "psi": psi(np.asarray(bins.reference), now),
                     "missing_share": float(now[-1]), "reference_missing_share": float(bins.reference[-1]),
                     "new_level_share": new_share, "absent": absent})
    out = pd.DataFrame(rows, columns=["feature", "kind", "psi", "missing_share", "reference_missing_share",
                                      "new_level_share", "absent"])
    return out.sort_values(["psi", "feature"], ascending=[False, True], kind="stable").reset_index(drop=True)


def prediction_drift(scores: np.ndarray, profile: dict) -> dict[str, float]:
    """PSI of a run's scores against the reference score bins, and the two means."""
    x = np.asarray(scores, dtype=float)
    bins = Bins.from_dict(profile["score"])
    present = x[np.isfinite(x)]
    return {"psi": column_psi(bins, x), "mean": float(present.mean()) if len(present) else float("nan"),
            "reference_mean": float(profile["score_mean"]), "rows": int(len(x))}


SEGMENT_COLUMNS = ["segment", "feature", "kind", "psi", "rows", "reference_rows", "missing_share",
                   "reference_missing_share", "new_level_share"]


def segment_drift(frame: pd.DataFrame, profile: dict, min_rows: int, columns: list[str] | None = None) -> pd.DataFrame:
    """PSI of every profiled feature inside each reference segment (`training.profile.segment_profiles`).

    A segment is one level of a categorical feature ("needs_orientation=price"); it is
    measured when both the reference and the run hold at least `min_rows` of its customers.

    Args:
        frame: the run's feature rows.
        profile: the model's reference profile (with "segments"; none: an empty table).
        min_rows: the fewest customers on each side for a segment to be measured.
        columns: the segmenting columns to use (default: every one the profile split by).

    Returns:
        One row per measured segment and feature, largest PSI first.
    """
    rows = []
    for column, levels in (profile.get("segments") or {}).items():
        if (columns is not None and column not in columns) or column not in frame.columns:
            continue
        text = frame[column].astype("object").where(frame[column].notna())
        for level, stored in levels.items():
            part = frame[(text.astype(str) == level) & text.notna()]
            if stored["rows"] < min_rows or len(part) < min_rows:
                continue
            for feature, reference in stored["shares"].items():
                if feature not in profile["features"]:
                    continue
                bins = Bins.from_dict(profile["features"][feature])
                values = part[feature] if feature in part.columns else pd.Series([None] * len(part), dtype="object")
                now = shares(bins, values)
                rows.append({"segment": f"{column}={level}", "feature": feature, "kind": bins.kind,
                             "psi": psi(np.asarray(reference), now), "rows": len(part), "reference_rows": stored["rows"],
                             "missing_share": float(now[-1]), "reference_missing_share": float(reference[-1]),
                             "new_level_share": float(now[-2]) if bins.kind == "categorical" else 0.0})
    out = pd.DataFrame(rows, columns=SEGMENT_COLUMNS)
    return out.sort_values(["psi", "segment", "feature"], ascending=[False, True, True], kind="stable").reset_index(drop=True)
