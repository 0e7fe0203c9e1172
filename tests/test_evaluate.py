"""Metrics, curves and plots: hand-computed cases, scikit-learn cross-checks, ties."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from matplotlib.figure import Figure
from sklearn.metrics import average_precision_score, brier_score_loss, log_loss, roc_auc_score
from threadpoolctl import threadpool_limits

from training.evaluate import (
    classification_metrics,
    gain_curve,
    plot_calibration,
    plot_gain,
    plot_value_deciles,
    reliability_curve,
    value_deciles,
    value_metrics,
)


@pytest.fixture(autouse=True)
def _one_thread():
    with threadpool_limits(limits=1):
        yield


# Ten rows, scores all distinct. Positives at score ranks 1, 3, 4 and 7 (4 of 10).
P10 = [0.9, 0.8, 0.7, 0.6, 0.5, 0.4, 0.3, 0.2, 0.1, 0.05]
Y10 = [1, 0, 1, 1, 0, 0, 1, 0, 0, 0]


def test_classification_metrics_by_hand():
    m = classification_metrics(Y10, P10)
    assert m["base_rate"] == pytest.approx(0.4)
    # Top 10 % = the top row (a positive): 1 of 4 positives; rate 1 / 0.4 overall.
    assert m["capture_10"] == pytest.approx(0.25)
    assert m["lift_10"] == pytest.approx(2.5)
    # Top 5 % = half of the top row: half a positive.
    assert m["capture_5"] == pytest.approx(0.125)
    assert m["lift_5"] == pytest.approx(2.5)
    # Top 20 % = rows 1-2: one positive; rate 0.5 vs 0.4.
    assert m["capture_20"] == pytest.approx(0.25)
    assert m["lift_20"] == pytest.approx(1.25)
    # 10 rows in 10 equal-frequency bins: one row per bin, ECE = mean |p - y|.
    assert m["ece"] == pytest.approx(3.55 / 10)
    # Positive beats negative in 6 + 5 + 5 + 3 of 4 * 6 pairs.
    assert m["auc"] == pytest.approx(19 / 24)
    # Precision at each positive: 1/1, 2/3, 3/4, 4/7.
    assert m["pr_auc"] == pytest.approx((1 + 2 / 3 + 3 / 4 + 4 / 7) / 4)
    assert m["brier"] == pytest.approx(1.8525 / 10)
    assert set(m) == {
        "auc", "pr_auc", "log_loss", "brier", "ece", "lift_5", "lift_10", "lift_20",
        "capture_5", "capture_10", "capture_20", "base_rate",
    }
    assert all(isinstance(v, float) for v in m.values())


def test_classification_metrics_match_scikit_learn():
    rng = np.random.default_rng(3)
    p = np.round(rng.random(500), 2)  # rounded: many ties
    y = (rng.random(500) < p).astype(int)
    m = classification_metrics(y, p)
    assert m["auc"] == pytest.approx(roc_auc_score(y, p), abs=1e-12)
    assert m["pr_auc"] == pytest.approx(average_precision_score(y, p), abs=1e-12)
    assert m["log_loss"] == pytest.approx(log_loss(y, p), abs=1e-9)
    assert m["brier"] == pytest.approx(brier_score_loss(y, p), abs=1e-12)


@pytest.mark.parametrize(
    ("p", "auc"),
    [
        ([0.9, 0.8, 0.3, 0.2, 0.1], 1.0),  # perfect ranking
        ([0.1, 0.2, 0.7, 0.8, 0.9], 0.0),  # reversed
        ([0.5, 0.5, 0.5, 0.5, 0.5], 0.5),  # all tied
    ],
)
def test_auc_extremes(p, auc):
    assert classification_metrics([1, 1, 0, 0, 0], p)["auc"] == pytest.approx(auc)


def test_ties_are_averaged_for_lift_and_capture():
    # The top block holds 4 tied rows with 2 of the 3 positives; top 10 % = 1 row of it.
    p = [0.9, 0.9, 0.9, 0.9, 0.1, 0.1, 0.1, 0.1, 0.1, 0.1]
    y = [1, 0, 1, 0, 0, 0, 1, 0, 0, 0]
    m = classification_metrics(y, p)
    assert m["capture_10"] == pytest.approx(0.5 / 3)
    assert m["lift_10"] == pytest.approx((0.5 / 3) / 0.1)
    assert m["capture_20"] == pytest.approx(1.0 / 3)
    # Order of the tied rows does not matter.
    order = [3, 2, 1, 0, 9, 8, 7, 6, 5, 4]
    shuffled = classification_metrics(np.array(y)[order], np.array(p)[order])
    assert shuffled == pytest.approx(m)


def test_constant_scores_capture_their_share():
    y = [1, 0, 0, 1, 0, 0, 0, 1, 0, 0]
    m = classification_metrics(y, [0.3] * 10)
    for k in (5, 10, 20):
        assert m[f"capture_{k}"] == pytest.approx(k / 100)
        assert m[f"lift_{k}"] == pytest.approx(1.0)
    assert m["ece"] == pytest.approx(0.0)  # one bin: mean p 0.3 = observed rate 0.3


def test_ece_keeps_ties_in_one_bin():
    # Three tied rows at 0.2 (1 positive) share a bin; 0.8 (positive) is alone.
    p = [0.2, 0.2, 0.2, 0.8]
    y = [0, 1, 0, 1]
    assert classification_metrics(y, p)["ece"] == pytest.approx(0.75 * abs(0.2 - 1 / 3) + 0.25 * 0.2)
    curve = reliability_curve(y, p, bins=2)
    assert list(curve.columns) == ["mean_predicted", "observed_rate", "count"]
    assert curve["count"].tolist() == [3, 1]
    assert curve["mean_predicted"].tolist() == pytest.approx([0.2, 0.8])
    assert curve["observed_rate"].tolist() == pytest.approx([1 / 3, 1.0])


def test_reliability_curve_equal_frequency():
    rng = np.random.default_rng(0)
    p = rng.permutation(np.arange(1, 21) / 21)
    y = (p > 0.5).astype(int)
    curve = reliability_curve(y, p, bins=10)
    assert curve["count"].tolist() == [2] * 10
    assert curve["mean_predicted"].is_monotonic_increasing
    assert curve["observed_rate"].tolist() == [0.0] * 5 + [1.0] * 5


def test_single_class_gives_nan_ranking_metrics():
    m = classification_metrics([0, 0, 0], [0.1, 0.2, 0.3])
    assert np.isnan(m["auc"]) and np.isnan(m["pr_auc"]) and np.isnan(m["lift_10"])
    assert m["brier"] == pytest.approx((0.01 + 0.04 + 0.09) / 3)


def test_inputs_are_checked():
    with pytest.raises(ValueError, match="aligned"):
        classification_metrics([0, 1], [0.5])
    with pytest.raises(ValueError, match="missing"):
        classification_metrics([0, 1], [0.5, np.nan])
    with pytest.raises(ValueError, match="only 0 and 1"):
        classification_metrics([0, 2], [0.5, 0.5])
    with pytest.raises(ValueError, match="probabilities"):
        classification_metrics([0, 1], [0.5, 1.5])
    with pytest.raises(ValueError, match="missing"):
        value_metrics(pd.Series([1, pd.NA], dtype="Int64"), [1.0, 2.0])


def test_nullable_integer_labels_are_accepted():
    y = pd.Series(Y10, dtype="Int64")
    assert classification_metrics(y, pd.Series(P10)) == pytest.approx(classification_metrics(Y10, P10))


def test_value_metrics_by_hand():
    y = [1.0, 2.0, 3.0, 4.0]
    pred = [0.1, 0.4, 0.3, 0.2]
    m = value_metrics(y, pred)
    # By prediction the rows come 2, 3, 4, 1: shares .2 .5 .9 1 vs rows .25 .5 .75 1
    # -> Gini .1 / 4; by actual 4, 3, 2, 1: .4 .7 .9 1 -> .5 / 4.
    assert m["gini_norm"] == pytest.approx(0.2)
    # Ranks 1 4 3 2 against 1 2 3 4: sum d^2 = 8, rho = 1 - 6 * 8 / (4 * 15).
    assert m["spearman"] == pytest.approx(0.2)
    # Top 10 % of 4 rows = 0.4 of the top row (value 2) out of 10.
    assert m["top_decile_capture"] == pytest.approx(0.08)
    assert m["rmse"] == pytest.approx(np.sqrt((0.81 + 2.56 + 7.29 + 14.44) / 4))


@pytest.mark.parametrize(("sign", "expected"), [(1, 1.0), (-1, -1.0)])
def test_value_metrics_perfect_and_reversed(sign, expected):
    y = np.array([0.0, 5.0, 1.0, 30.0, 2.0, 7.0, 0.0, 12.0])
    m = value_metrics(y, sign * y)
    assert m["gini_norm"] == pytest.approx(expected)
    assert m["spearman"] == pytest.approx(expected)


def test_value_metrics_constant_prediction():
    y = np.arange(10.0)
    m = value_metrics(y, np.ones(10))
    assert m["gini_norm"] == pytest.approx(0.0, abs=1e-12)
    assert m["top_decile_capture"] == pytest.approx(0.1)
    assert np.isnan(m["spearman"])


def test_gini_norm_is_two_auc_minus_one_for_binary_outcomes():
    rng = np.random.default_rng(7)
    y = (rng.random(300) < 0.3).astype(float)
    score = np.round(rng.random(300) + 0.4 * y, 1)  # ties
    assert value_metrics(y, score)["gini_norm"] == pytest.approx(2 * roc_auc_score(y, score) - 1)


def test_gain_curve_ends_and_monotone():
    rng = np.random.default_rng(1)
    score = np.round(rng.random(200), 1)
    y = (rng.random(200) < score).astype(int)
    curve = gain_curve(y, score, points=21)
    assert list(curve.columns) == ["share_targeted", "share_captured"]
    assert len(curve) == 21
    assert tuple(curve.iloc[0]) == (0.0, 0.0)
    assert tuple(curve.iloc[-1]) == pytest.approx((1.0, 1.0))
    assert (np.diff(curve["share_captured"]) >= 0).all()
    top10 = curve.loc[np.isclose(curve["share_targeted"], 0.1), "share_captured"].item()
    assert top10 == pytest.approx(classification_metrics(y, score)["capture_10"])


def test_gain_curve_tied_block():
    curve = gain_curve([1, 0, 1, 0], [0.5, 0.5, 0.2, 0.2], points=5)
    assert curve["share_captured"].tolist() == pytest.approx([0, 0.25, 0.5, 0.75, 1.0])


def test_value_deciles():
    pred = np.arange(20.0)[::-1]
    table = value_deciles(2 * pred, pred)
    assert list(table.columns) == ["decile", "mean_pred", "mean_actual", "count"]
    assert table["decile"].tolist() == list(range(1, 11))
    assert table["count"].tolist() == [2] * 10
    assert table.iloc[0][["mean_pred", "mean_actual"]].tolist() == [0.5, 1.0]
    assert table.iloc[-1][["mean_pred", "mean_actual"]].tolist() == [18.5, 37.0]
    # Ties stay in one decile; empty deciles are left out.
    tied = value_deciles([1, 2, 3, 4], [0, 0, 0, 1])
    assert tied["decile"].tolist() == [1, 8] and tied["count"].tolist() == [3, 1]


def test_plots_have_one_line_per_curve():
    y, p = np.array(Y10), np.array(P10)
    gain = plot_gain({"model": gain_curve(y, p), "rfm": gain_curve(y, p[::-1])}, "Churn gain")
    assert isinstance(gain, Figure)
    ax = gain.axes[0]
    assert len(ax.lines) == 3  # two models + random
    assert ax.get_title() == "Churn gain"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["model", "rfm", "random"]

    calib = plot_calibration({"model": reliability_curve(y, p)}, "Churn calibration")
    assert len(calib.axes[0].lines) == 2  # model + diagonal
    assert calib.axes[0].lines[0].get_xdata().tolist() == pytest.approx(sorted(P10))

    deciles = plot_value_deciles(value_deciles(2 * np.arange(20.0), np.arange(20.0)), "Value")
    lines = deciles.axes[0].lines
    assert len(lines) == 2
    assert lines[1].get_ydata().tolist() == pytest.approx([1 + 4 * i for i in range(10)])
