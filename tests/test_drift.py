"""Population stability: the reference bins (training.profile) and PSI (monitoring.drift), by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from monitoring.drift import column_psi, psi
from training.profile import MISSING, NEW, OTHER, Bins, bin_counts, categorical_bins, numeric_bins, shares


def test_psi_by_hand() -> None:
    # (0.6 - 0.5) ln(0.6 / 0.5) + (0.4 - 0.5) ln(0.4 / 0.5)
    assert psi(np.array([0.5, 0.5]), np.array([0.6, 0.4])) == pytest.approx(0.1 * math.log(1.2) + 0.1 * math.log(1.25))
    assert psi(np.array([0.25] * 4), np.array([0.25] * 4)) == 0.0
    # an emptied bin counts as the floor share 1e-4, not as zero (which would be infinite)
    got = psi(np.array([0.5, 0.5]), np.array([1.0, 0.0]))
    assert got == pytest.approx(0.5 * math.log(2.0) + (1e-4 - 0.5) * math.log(1e-4 / 0.5))
    with pytest.raises(ValueError, match="3 reference bins against 2"):
        psi(np.array([0.2, 0.3, 0.5]), np.array([0.5, 0.5]))


def test_numeric_bins_are_the_reference_deciles_with_missing_last() -> None:
    ref = pd.Series([*range(1, 11), None, None])  # 1..10 and two missing
    bins = numeric_bins(ref, n_bins=5)
    # quantiles 0.2, 0.4, 0.6, 0.8 of 1..10 ("higher": 3, 5, 7, 9), each edge halfway down to
    # the next smaller reference value
    assert bins.edges == (2.5, 4.5, 6.5, 8.5)
    # 1-2 | 3-4 | 5-6 | 7-8 | 9-10 | missing: 2 each of 12 rows
    assert bins.reference == pytest.approx((2 / 12,) * 6)
    assert bins.labels[0] == "[-inf, 2.5)" and bins.labels[-1] == MISSING
    # a value on an edge goes to the bin above; text and inf count as missing
    assert bin_counts(bins, [2.5, 2.49, np.inf, "x", 100]).tolist() == [1, 1, 0, 0, 1, 2]


def test_few_distinct_values_merge_edges() -> None:
    bins = numeric_bins([0] * 80 + [1] * 20)  # a flag: deciles 0 ... 0, 1, 1: the cut at the minimum is dropped
    assert bins.edges == (0.5,)
    assert bins.reference == pytest.approx((0.8, 0.2, 0.0))
    assert numeric_bins([5.0] * 10).edges == ()  # a constant: one bin and missing
    assert numeric_bins([None, None]).reference == (0.0, 1.0)


def test_categorical_levels_other_new_and_missing() -> None:
    ref = ["a"] * 5 + ["b"] * 3 + ["c"] + ["d"] + [None] * 2
    bins = categorical_bins(ref, max_levels=2)
    assert bins.levels == ("a", "b") and bins.other_levels == ("c", "d")
    assert bins.labels == ["a", "b", OTHER, NEW, MISSING]
    assert bins.reference == pytest.approx((5 / 12, 3 / 12, 2 / 12, 0.0, 2 / 12))
    # current: a level seen in the reference's tail is "other", one never seen is "new"
    assert bin_counts(bins, ["a", "d", "z", "z", None]).tolist() == [1, 0, 1, 2, 1]
    assert Bins.from_dict(bins.to_dict()) == bins
    only = categorical_bins(["x", "y"])
    assert only.labels == ["x", "y", NEW, MISSING] and only.reference == (0.5, 0.5, 0.0, 0.0)


def test_a_shift_is_measured_on_the_reference_bins() -> None:
    rng = np.random.default_rng(3)
    ref = rng.normal(0, 1, 20_000)
    bins = numeric_bins(ref)
    assert column_psi(bins, rng.normal(0, 1, 20_000)) < 0.01  # same distribution: sampling noise only
    # a half-sigma mean shift of a normal: PSI about 0.25 (the usual "large" line)
    assert 0.2 < column_psi(bins, rng.normal(0.5, 1, 20_000)) < 0.3
    zeroed = column_psi(bins, np.zeros(20_000))  # an upstream feed that zeroes the column
    assert zeroed > 2.0
    assert shares(bins, []).tolist() == [0.0] * (len(bins.edges) + 2)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.one_of(st.none(), st.floats(-1e6, 1e6)), min_size=1, max_size=200))
def test_psi_of_the_reference_against_itself_is_zero_and_shares_sum_to_one(values) -> None:
    bins = numeric_bins(values)
    assert sum(bins.reference) == pytest.approx(1.0)
    assert column_psi(bins, values) == pytest.approx(0.0, abs=1e-12)
    assert psi(np.asarray(bins.reference), shares(bins, values[::-1])) == pytest.approx(0.0, abs=1e-12)


def _profile(frame: pd.DataFrame, scores: np.ndarray) -> dict:
    """A reference profile as training.profile.reference_profile writes it (features and score)."""
    features = {c: (numeric_bins(frame[c]) if pd.api.types.is_numeric_dtype(frame[c]) else categorical_bins(frame[c])).to_dict()
                for c in frame.columns}
    return {"rows": len(frame), "features": features, "score": numeric_bins(scores).to_dict(),
            "score_mean": float(np.mean(scores))}


def test_feature_and_prediction_drift_tables() -> None:
    from monitoring.drift import feature_drift, prediction_drift

    rng = np.random.default_rng(11)
    n = 5_000
    ref = pd.DataFrame({"recency": rng.exponential(30, n), "freq": rng.poisson(3, n).astype(float),
                        "region": rng.choice(["north", "south"], n)})
    profile = _profile(ref, rng.uniform(0, 1, n))
    now = pd.DataFrame({"recency": rng.exponential(30, n), "freq": np.zeros(n),  # a feed that zeroes freq
                        "region": rng.choice(["north", "south", "east"], n)})  # a new level, a third of rows
    table = feature_drift(now, profile)
    assert table["feature"].tolist()[:2] == ["freq", "region"] and table.loc[2, "feature"] == "recency"
    by = table.set_index("feature")
    assert by.loc["freq", "psi"] > 2.0 and by.loc["recency", "psi"] < 0.01
    assert by.loc["region", "new_level_share"] == pytest.approx((now["region"] == "east").mean())
    # PSI of the region by hand: north/south from ~0.5 to ~1/3 each, east from 0 (floor) to ~1/3
    e = np.maximum(np.asarray(profile["features"]["region"]["reference"]), 1e-4)
    a = np.maximum(np.array([(now["region"] == "north").mean(), (now["region"] == "south").mean(),
                             (now["region"] == "east").mean(), 0.0]), 1e-4)
    assert by.loc["region", "psi"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    # a column the run lacks counts as all missing, and says so
    gone = feature_drift(now.drop(columns="recency"), profile).set_index("feature")
    assert bool(gone.loc["recency", "absent"]) and gone.loc["recency", "missing_share"] == 1.0
    drift = prediction_drift(rng.uniform(0, 1, n) ** 2, profile)  # scores pushed down
    assert drift["psi"] > 0.1 and drift["mean"] == pytest.approx(1 / 3, abs=0.02)
    assert drift["reference_mean"] == pytest.approx(0.5, abs=0.02) and drift["rows"] == n


def test_attribution_drift_by_hand() -> None:
    from monitoring.attribution import attribution_drift

    ref_abs = {"a": 3.0, "b": 1.0}  # shares 0.75, 0.25
    run_abs = {"a": 1.0, "b": 1.0, "c": 2.0}  # shares 0.25, 0.25, 0.5; c is new to the model's attention
    table, importance, direction = attribution_drift(run_abs, ref_abs, {"a": -0.5, "b": 0.25, "c": 0.0},
                                                     {"a": 0.5, "b": 0.25})
    by = table.set_index("feature")
    assert list(table["feature"]) == ["c", "a", "b"]  # by the run's importance; a and b tie at rank 2
    assert by["rank"].to_dict() == {"c": 1, "a": 2, "b": 2} and by["reference_rank"].to_dict() == {"a": 1, "b": 2, "c": 3}
    assert by.loc["a", "share"] == 0.25 and by.loc["a", "reference_share"] == 0.75 and by.loc["c", "reference_share"] == 0
    assert importance == pytest.approx(0.5 * (0.5 + 0.0 + 0.5))
    # a's mean contribution flipped from +0.5 to -0.5: |1.0| + 0 + 0 over the reference's 4.0 of mean |SHAP|
    assert direction == pytest.approx(1.0 / 4.0)
    same, none, no_sign = attribution_drift(ref_abs, ref_abs)
    assert none == 0.0 and no_sign is None and same["mean_contribution"].isna().all()


def test_estimated_auc_and_average_precision_by_hand() -> None:
    """CBPE on four calibrated scores, two of them tied: the expected ROC curve steps over
    0.8, then both 0.4s at once, then 0.1 (expected positives 0.8, 1.6, 1.7 of 1.7; negatives
    0.2, 1.4, 2.3 of 2.3)."""
    from monitoring.performance import estimated_metrics

    est = estimated_metrics(np.array([0.4, 0.8, 0.1, 0.4]))
    auc = (0.2 * (0 + 0.8) / 2 + 1.2 * (0.8 + 1.6) / 2 + 0.9 * (1.6 + 1.7) / 2) / (1.7 * 2.3)
    ap = (0.8 * 0.8 / 1 + 0.8 * 1.6 / 3 + 0.1 * 1.7 / 4) / 1.7
    assert est["auc"] == pytest.approx(auc, abs=1e-12) and est["pr_auc"] == pytest.approx(ap, abs=1e-12)
    assert np.isnan(estimated_metrics(np.array([np.nan]))["auc"])
    # scores that are all 1: no expected negative, no curve
    assert np.isnan(estimated_metrics(np.ones(3))["auc"])


def test_segment_drift_by_hand() -> None:
    """Frequency halves for the 'price' customers only: the population barely moves, the segment does."""
    from monitoring.drift import segment_drift
    from monitoring.run import ModelDrift, confined_segments
    from training.profile import segment_profiles

    ref = pd.DataFrame({"orientation": ["price"] * 400 + ["value"] * 400 + ["tiny"] * 100 + [None] * 100,
                        "freq": [0.0, 1.0, 2.0, 3.0] * 250})
    profile = _profile(ref, np.zeros(len(ref)))
    profile["segments"] = segment_profiles(ref, profile["features"], ["orientation"], min_rows=200)
    assert set(profile["segments"]["orientation"]) == {"price", "value"}  # 'tiny' has too few rows to keep
    now = ref.copy()
    now.loc[now["orientation"] == "price", "freq"] = [0.0, 0.0, 1.0, 1.0] * 100
    table = segment_drift(now, profile, min_rows=300)
    by = table.set_index(["segment", "feature"])
    # the freq bins: one per value 0, 1, 2, 3 (edges halfway), then missing
    e = np.maximum(np.array([0.25, 0.25, 0.25, 0.25, 0.0]), 1e-4)
    a = np.maximum(np.array([0.5, 0.5, 0.0, 0.0, 0.0]), 1e-4)
    assert by.loc[("orientation=price", "freq"), "psi"] == pytest.approx(float(np.sum((a - e) * np.log(a / e))))
    assert by.loc[("orientation=value", "freq"), "psi"] == 0.0 and by.loc[("orientation=price", "freq"), "rows"] == 400
    assert segment_drift(now, profile, min_rows=401).empty  # neither side holds 401 of a segment
    # confined: the segment alerts while the whole population stays below the line ...
    from monitoring.drift import feature_drift

    m = ModelDrift("churn", "1", feature_drift(now, profile), segments=table)
    population = m.features.set_index("feature").loc["freq", "psi"]
    assert population < 0.25 < by.loc[("orientation=price", "freq"), "psi"]
    assert list(confined_segments(m, 0.25)["segment"]) == ["orientation=price"]
    # ... and a line the population reaches too is the population's alert, not the segment's
    assert confined_segments(m, population / 2).empty
