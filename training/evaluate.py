"""Metrics, curves and plots for churn / response probabilities and value predictions.

Pure functions on arrays (numpy, pandas Series or lists): nothing is read, written,
logged or shown here. Plots return a matplotlib `Figure` built without pyplot, so no
global figure state is created; the caller saves or logs it.

Ranking conventions (they make every rank-based number deterministic and independent
of row order):

- Targeting the top share s of n rows by score (gain curve, lift, capture, top-decile
  capture, Gini) takes m = s * n rows, which may be fractional. Rows with equal scores
  form a block that is taken as a whole or in part; taking part of a block counts the
  same part of the block's total (positives or value). That is the expected result
  over all orders of the tied rows, so ties neither help nor hurt a model, and the
  cumulative curve is piecewise linear between block ends.
- Equal-frequency bins (calibration error, reliability curve, value deciles) keep ties
  together: a row with k rows strictly below it (of n) goes to bin floor(bins * k / n),
  the rule `features.segments` uses for the RFMW scores. With distinct scores every
  bin holds n / bins rows (within one); with ties a bin can be larger and another one
  empty, and empty bins are left out.
"""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from scipy.stats import ConstantInputWarning, spearmanr
from sklearn.metrics import average_precision_score, roc_auc_score

TOP_SHARES_PERCENT: tuple[int, ...] = (5, 10, 20)
CALIBRATION_BINS = 10
# Probabilities are clipped this far from 0 and 1 in the log loss, so a confident
# mistake costs about 34.5 nats instead of infinity.
LOG_LOSS_EPS = 1e-15

ArrayLike = np.ndarray | pd.Series | Sequence[float]


def to_float(values: ArrayLike, name: str) -> np.ndarray:
    """1-d float array; pandas missing values (pd.NA) become NaN."""
    if isinstance(values, (pd.Series, pd.Index, pd.api.extensions.ExtensionArray)):
        out = pd.Series(values).to_numpy(dtype="float64", na_value=np.nan)
    else:
        out = np.asarray(values, dtype="float64")
    out = out.ravel()
    if out.size == 0:
        raise ValueError(f"{name} is empty; evaluate at least one row")
    if np.isnan(out).any():
        raise ValueError(f"{name} has missing values; drop or fill them before evaluating")
    return out


def _pair(y_true: ArrayLike, score: ArrayLike, score_name: str) -> tuple[np.ndarray, np.ndarray]:
    y = to_float(y_true, "y_true")
    s = to_float(score, score_name)
    if y.shape != s.shape:
        raise ValueError(f"y_true has {y.size} rows but {score_name} has {s.size}; pass aligned arrays")
    return y, s


def _binary(y: np.ndarray) -> np.ndarray:
    if not np.isin(y, (0.0, 1.0)).all():
        raise ValueError("y_true must hold only 0 and 1 for classification metrics")
    return y


def _cumulative_by_score(y: np.ndarray, score: np.ndarray, counts: np.ndarray | float) -> np.ndarray:
    """Sum of y over the top `counts` rows by score (fractional counts; ties averaged).

    Rows are ordered by score, highest first; tied rows form one block whose total is
    spread evenly over its rows, so the result is linear inside a block.
    """
    order = np.argsort(-score, kind="stable")
    s_sorted = score[order]
    block_ends = np.flatnonzero(np.r_[s_sorted[1:] != s_sorted[:-1], True]) + 1
    cum = np.cumsum(y[order])[block_ends - 1]
    return np.interp(counts, np.r_[0, block_ends], np.r_[0.0, cum])


def _tie_bins(score: np.ndarray, bins: int) -> np.ndarray:
    """Equal-frequency bin 0..bins-1 per row, ties kept together (see module docstring)."""
    below = np.searchsorted(np.sort(score), score, side="left")  # rows strictly below
    return (bins * below) // score.size


def gain_curve(y_true: ArrayLike, score: ArrayLike, points: int = 101) -> pd.DataFrame:
    """Cumulative gain: share of all positives (or value) captured by targeting the top share.

    Args:
        y_true: 0/1 outcomes, or non-negative values for a value gain chart.
        score: higher means target first; ties are averaged (module docstring).
        points: evenly spaced shares from 0 to 1, both included.

    Returns:
        Columns share_targeted and share_captured; starts at (0, 0), ends at (1, 1).
        `attrs["captured"]` says what is captured: "positives" for 0/1 outcomes, else
        "value" (the gain chart's axis label follows it).
    """
    if points < 2:
        raise ValueError("points must be at least 2 (the curve's two ends)")
    y, s = _pair(y_true, score, "score")
    total = y.sum()
    if total <= 0:
        raise ValueError("y_true sums to zero or less; a gain curve needs positives")
    shares = np.linspace(0.0, 1.0, points)
    captured = _cumulative_by_score(y, s, shares * y.size) / total
    curve = pd.DataFrame({"share_targeted": shares, "share_captured": captured})
    curve.attrs["captured"] = "positives" if np.isin(y, (0.0, 1.0)).all() else "value"
    return curve


def reliability_curve(y_true: ArrayLike, p: ArrayLike, bins: int = CALIBRATION_BINS) -> pd.DataFrame:
    """Mean predicted probability against observed rate in equal-frequency bins.

    Args:
        y_true: 0/1 outcomes.
        p: predicted probabilities.
        bins: number of bins; ties stay in one bin and empty bins are left out.

    Returns:
        Columns mean_predicted, observed_rate, count; index `bin`, lowest p first.
    """
    y, prob = _pair(y_true, p, "p")
    _binary(y)
    table = (
        pd.DataFrame({"bin": _tie_bins(prob, bins), "p": prob, "y": y})
        .groupby("bin")
        .agg(mean_predicted=("p", "mean"), observed_rate=("y", "mean"), count=("y", "size"))
    )
    return table


def _expected_calibration_error(y: np.ndarray, p: np.ndarray, bins: int) -> float:
    table = reliability_curve(y, p, bins)
    weights = table["count"] / y.size
    return float((weights * (table["mean_predicted"] - table["observed_rate"]).abs()).sum())


def classification_metrics(y_true: ArrayLike, p: ArrayLike) -> dict[str, float]:
    """Ranking, probability and targeting metrics of predicted probabilities.

    - auc: ROC AUC (tied scores count one half); pr_auc: average precision.
      Both are NaN when y_true holds a single class.
    - log_loss: mean negative log-likelihood, p clipped to [1e-15, 1 - 1e-15].
    - brier: mean squared difference between p and the outcome.
    - ece: expected calibration error over 10 equal-frequency bins of p,
      sum over bins of n_b / n * |mean p - mean y| (ties kept in one bin).
    - lift_k / capture_k for k = 5, 10, 20: targeting the top k % of rows by p (ties
      averaged, fractional rows allowed), capture is the share of all positives found
      there and lift the positive rate there divided by the overall rate, which is
      capture / (k / 100). NaN when there are no positives.
    - base_rate: share of positives.

    Args:
        y_true: 0/1 outcomes.
        p: predicted probabilities of outcome 1.

    Returns:
        Metric name -> value (plain floats).
    """
    y, prob = _pair(y_true, p, "p")
    _binary(y)
    if ((prob < 0) | (prob > 1)).any():
        raise ValueError("p must be probabilities in [0, 1]")
    n = y.size
    positives = y.sum()
    both_classes = 0 < positives < n
    clipped = np.clip(prob, LOG_LOSS_EPS, 1 - LOG_LOSS_EPS)
    out: dict[str, float] = {
        "auc": float(roc_auc_score(y, prob)) if both_classes else float("nan"),
        "pr_auc": float(average_precision_score(y, prob)) if both_classes else float("nan"),
        "log_loss": float(-np.mean(y * np.log(clipped) + (1 - y) * np.log1p(-clipped))),
        "brier": float(np.mean((prob - y) ** 2)),
        "ece": _expected_calibration_error(y, prob, CALIBRATION_BINS),
    }
    shares = np.array(TOP_SHARES_PERCENT) / 100
    if positives > 0:
        capture = _cumulative_by_score(y, prob, shares * n) / positives
    else:
        capture = np.full(shares.shape, np.nan)
    for k, share, cap in zip(TOP_SHARES_PERCENT, shares, capture):
        out[f"lift_{k}"] = float(cap / share)
        out[f"capture_{k}"] = float(cap)
    out["base_rate"] = float(positives / n)
    return out


def _gini(y: np.ndarray, score: np.ndarray) -> float:
    """Mean gap between the cumulative share of y (rows taken by score) and the row share."""
    n = y.size
    taken = np.arange(1, n + 1)
    return float(np.mean(_cumulative_by_score(y, score, taken) / y.sum() - taken / n))


def value_metrics(y_true: ArrayLike, pred: ArrayLike) -> dict[str, float]:
    """Ranking and error metrics of predicted values (future spend).

    - spearman: rank correlation (average ranks for ties); NaN if either side is constant.
    - gini_norm: normalised Gini. Take rows by prediction, highest first, and let L(i)
      be the share of total actual value in the first i rows (ties averaged);
      Gini = mean over i = 1..n of (L(i) - i / n). gini_norm is that Gini divided by
      the Gini of the same rows taken by actual value: 1 for a perfect ranking, 0 for
      a constant or random one, -1 for the reversed ranking. For 0/1 outcomes it equals
      2 * AUC - 1. NaN when total actual value is <= 0 or all actual values are equal.
    - top_decile_capture: share of total actual value held by the top 10 % of rows by
      prediction (ties averaged, fractional rows allowed); NaN when total value <= 0.
    - rmse: root mean squared error.

    Args:
        y_true: actual values.
        pred: predicted values.

    Returns:
        Metric name -> value (plain floats).
    """
    y, s = _pair(y_true, pred, "pred")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConstantInputWarning)
        rho = spearmanr(y, s).statistic
    total = y.sum()
    if total > 0:
        best = _gini(y, y)
        gini_norm = _gini(y, s) / best if best > 0 else float("nan")
        top = float(_cumulative_by_score(y, s, 0.1 * y.size) / total)
    else:
        gini_norm, top = float("nan"), float("nan")
    return {
        "spearman": float(rho),
        "gini_norm": float(gini_norm),
        "top_decile_capture": top,
        "rmse": float(np.sqrt(np.mean((s - y) ** 2))),
    }


def value_deciles(y_true: ArrayLike, pred: ArrayLike) -> pd.DataFrame:
    """Mean predicted and actual value per decile of the prediction.

    Args:
        y_true: actual values.
        pred: predicted values; decile 1 holds the lowest, 10 the highest (ties kept
            together, empty deciles left out).

    Returns:
        Columns decile, mean_pred, mean_actual, count.
    """
    y, s = _pair(y_true, pred, "pred")
    frame = pd.DataFrame({"decile": _tie_bins(s, 10) + 1, "pred": s, "actual": y})
    return (
        frame.groupby("decile", as_index=False)
        .agg(mean_pred=("pred", "mean"), mean_actual=("actual", "mean"), count=("actual", "size"))
    )


GAIN_AXIS = {"positives": "share of positives captured", "value": "share of total value captured"}


def plot_gain(curves: Mapping[str, pd.DataFrame], title: str, captured: str | None = None) -> Figure:
    """Gain chart: one line per model (from `gain_curve`) and the random-targeting diagonal.

    Args:
        curves: label -> frame with share_targeted and share_captured.
        title: the chart title.
        captured: "positives" or "value", for the y-axis label; None reads it from the
            curves (`gain_curve` records it), positives when they do not say.

    Returns:
        The figure (not shown, not saved).
    """
    if captured is None:
        kinds = {c.attrs.get("captured") for c in curves.values()}
        captured = "value" if "value" in kinds else "positives"
    if captured not in GAIN_AXIS:
        raise ValueError(f"captured must be 'positives' or 'value', not {captured!r}")
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot(curve["share_targeted"], curve["share_captured"], label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="share targeted (highest score first)",
           ylabel=GAIN_AXIS[captured], title=title)
    ax.legend(loc="lower right")
    ax.grid(alpha=0.3)
    return fig


def plot_calibration(curves: Mapping[str, pd.DataFrame], title: str) -> Figure:
    """Reliability plot: one line per model (from `reliability_curve`) and the diagonal.

    Args:
        curves: label -> frame with mean_predicted and observed_rate.
        title: the chart title.

    Returns:
        The figure (not shown, not saved).
    """
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    for label, curve in curves.items():
        ax.plot(curve["mean_predicted"], curve["observed_rate"], marker="o", label=label)
    ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="perfectly calibrated")
    ax.set(xlim=(0, 1), ylim=(0, 1), xlabel="mean predicted probability",
           ylabel="observed rate", title=title)
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig


def plot_value_deciles(table: pd.DataFrame, title: str) -> Figure:
    """Mean predicted and mean actual value per prediction decile (from `value_deciles`).

    Args:
        table: frame with decile, mean_pred and mean_actual.
        title: the chart title.

    Returns:
        The figure (not shown, not saved).
    """
    fig = Figure(figsize=(6, 5))
    ax = fig.subplots()
    ax.plot(table["decile"], table["mean_pred"], marker="o", label="predicted")
    ax.plot(table["decile"], table["mean_actual"], marker="s", label="actual")
    ax.set(xlabel="decile of predicted value (10 = highest)", ylabel="mean value per customer",
           title=title)
    ax.set_xticks(list(table["decile"]))
    ax.legend(loc="upper left")
    ax.grid(alpha=0.3)
    return fig
