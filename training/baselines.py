"""Baselines the LightGBM models must beat, fitted in the same run on the same split.

All of them take a feature frame as built by `features.snapshots.build_features` and
follow the scikit-learn shape: hyper-parameters in `__init__`, learned state ending in
`_`, `fit` returns `self`.

- `RfmScoreBaseline`: the classic RFM heuristic, score = r_score + f_score + m_score,
  mapped to a probability or a value by the smoothed mean target per score.
- `LogisticRfmwBaseline` / `RidgeRfmwBaseline`: logistic and ridge-penalised Poisson
  (log link) regressions on the numeric RFMW columns (log1p, median imputation with
  missing flags, standardised).
- `BtydBaseline`: BG/NBD (purchases, P(alive), churn) and Gamma-Gamma (spend per
  purchase) fitted by maximum likelihood (`fit_bgnbd`, `fit_gamma_gamma`: scipy).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import numpy as np
import pandas as pd
from scipy.optimize import minimize
from scipy.special import betaln, digamma, gammaln, hyp2f1
from sklearn.impute import SimpleImputer
from sklearn.linear_model import LogisticRegression, PoissonRegressor
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import FunctionTransformer, StandardScaler
from threadpoolctl import threadpool_limits

log = logging.getLogger(__name__)

RFM_SCORE_COLUMNS: tuple[str, ...] = ("r_score", "f_score", "m_score")


def rfmw_columns(window_days: int = 365) -> tuple[str, ...]:
    """The numeric RFMW inputs of the linear baselines, for a frequency window."""
    return (
        "recency_days",
        f"frequency_{window_days}d",
        f"monetary_avg_{window_days}d",
        "width_categories",
        "tenure_days",
    )


def _numeric(frame: pd.DataFrame, columns: tuple[str, ...] | list[str]) -> pd.DataFrame:
    """Selected columns as float64 (nullable integers' missing values become NaN)."""
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise ValueError(
            f"the frame lacks {', '.join(missing)}; pass a frame from build_features "
            "(with the same frequency window)"
        )
    return pd.DataFrame(
        {c: frame[c].to_numpy(dtype="float64", na_value=np.nan) for c in columns}, index=frame.index
    )


def _target(y: Any, n: int) -> np.ndarray:
    out = pd.Series(y).to_numpy(dtype="float64", na_value=np.nan).ravel()
    if out.size != n:
        raise ValueError(f"y has {out.size} values but the frame has {n} rows")
    if np.isnan(out).any():
        raise ValueError("y has missing values; drop those rows before fitting")
    return out


# --- RFM score heuristic -----------------------------------------------------------


def rfm_score(frame: pd.DataFrame) -> np.ndarray:
    """The classic RFM score r_score + f_score + m_score (3-15; higher = better customer)."""
    return _numeric(frame, RFM_SCORE_COLUMNS).sum(axis=1, min_count=3).to_numpy()


class RfmScoreBaseline:
    """Mean target per RFM score (3-15), smoothed toward the overall mean.

    The map learns the direction itself: for churn the rate is high at low scores.
    Each cell's estimate is (sum of y + smoothing * overall mean) / (count + smoothing),
    so a score seen in few rows stays near the overall mean; a score never seen in
    training (or a row without scores) gets the overall mean.

    Args:
        kind: "classification" (0/1 target; predictions are probabilities) or
            "regression" (any numeric target, e.g. future value).
        smoothing: weight of the overall mean, in pseudo-rows.
    """

    def __init__(self, kind: Literal["classification", "regression"] = "classification",
                 smoothing: float = 20.0):
        self.kind = kind
        self.smoothing = smoothing

    def fit(self, frame: pd.DataFrame, y: Any) -> RfmScoreBaseline:
        """Learn the smoothed mean target per score value.

        Args:
            frame: feature frame with r_score, f_score and m_score.
            y: target per row (0/1 for classification).

        Returns:
            self, with `overall_mean_` and `score_map_` (score -> estimate).
        """
        if self.kind not in ("classification", "regression"):
            raise ValueError(f"kind must be 'classification' or 'regression', not {self.kind!r}")
        if self.smoothing < 0:
            raise ValueError("smoothing must be >= 0")
        target = _target(y, len(frame))
        if self.kind == "classification" and not np.isin(target, (0.0, 1.0)).all():
            raise ValueError("a classification target must hold only 0 and 1")
        score = rfm_score(frame)
        known = ~np.isnan(score)
        if not known.any():
            raise ValueError("no row has r_score, f_score and m_score; build features first")
        self.overall_mean_ = float(target[known].mean())
        cells = (
            pd.DataFrame({"score": score[known].astype(int), "y": target[known]})
            .groupby("score")["y"].agg(["sum", "count"])
        )
        estimate = (cells["sum"] + self.smoothing * self.overall_mean_) / (cells["count"] + self.smoothing)
        self.score_map_ = {int(s): float(v) for s, v in estimate.items()}
        self.score_counts_ = {int(s): int(c) for s, c in cells["count"].items()}
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability (classification) or value (regression) per row."""
        mapped = pd.Series(rfm_score(frame)).map(self.score_map_)
        return mapped.fillna(self.overall_mean_).to_numpy(dtype="float64")

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of the positive class per row (classification only)."""
        if self.kind != "classification":
            raise ValueError("predict_proba needs kind='classification'; use predict for values")
        return self.predict(frame)


# --- linear models on RFMW ---------------------------------------------------------


def _log1p_nonnegative(x: np.ndarray) -> np.ndarray:
    # Every RFMW input is a count, a number of days or a positive spend: clip stray
    # negatives at 0 so log1p stays defined. NaN passes through to the imputer.
    return np.log1p(np.clip(x, 0, None))


def _rfmw_steps() -> list[tuple[str, Any]]:
    return [
        ("log1p", FunctionTransformer(_log1p_nonnegative, feature_names_out="one-to-one")),
        ("impute", SimpleImputer(strategy="median", add_indicator=True)),
        ("scale", StandardScaler()),
    ]


class LogisticRfmwBaseline:
    """Logistic regression on log1p RFMW columns (median-imputed with missing flags, scaled).

    Args:
        seed: random state of the solver (lbfgs is deterministic; kept for uniformity).
        C: inverse L2 regularisation strength.
        window_days: frequency window of the frequency_/monetary_avg_ columns.
    """

    def __init__(self, seed: int = 42, C: float = 1.0, window_days: int = 365):
        self.seed = seed
        self.C = C
        self.window_days = window_days

    def fit(self, frame: pd.DataFrame, y: Any) -> LogisticRfmwBaseline:
        """Fit the pipeline on the frame's RFMW columns and a 0/1 target.

        Returns:
            self, with `pipeline_` (the fitted scikit-learn Pipeline) and `columns_`.
        """
        self.columns_ = rfmw_columns(self.window_days)
        target = _target(y, len(frame))
        if not np.isin(target, (0.0, 1.0)).all():
            raise ValueError("the target must hold only 0 and 1")
        self.pipeline_ = Pipeline(
            [*_rfmw_steps(), ("model", LogisticRegression(C=self.C, max_iter=1000, random_state=self.seed))]
        )
        self.pipeline_.fit(_numeric(frame, self.columns_), target.astype(int))
        return self

    def predict_proba(self, frame: pd.DataFrame) -> np.ndarray:
        """Probability of target 1 per row (1-d)."""
        return self.pipeline_.predict_proba(_numeric(frame, self.columns_))[:, 1]


class RidgeRfmwBaseline:
    """Poisson regression with a ridge (L2) penalty and log link on the RFMW inputs.

    E[value | x] = exp(b0 + w . x), with x the inputs of `LogisticRfmwBaseline` (log1p,
    median-imputed with missing flags, standardised), fitted by penalised Poisson
    maximum likelihood (scikit-learn's `PoissonRegressor`). Future spend is zero-heavy
    (most customers spend nothing in the horizon, a few spend a lot): the Poisson
    likelihood takes zeros as they are, needs no retransformation, and with an
    unpenalised intercept its score equation makes the mean prediction on the training
    rows equal to the mean target exactly. (The former ridge on log1p(value) with
    Duan's smearing over-predicted such targets, 28-fold on Online Retail's 90-day
    spend: the smearing factor, driven by the large residuals of rare big spenders,
    multiplied every prediction.)
    Negative targets (net returns) are clipped at 0. The target is divided by its
    training mean before fitting (and predictions multiplied back), so `alpha` does not
    depend on the currency unit. The class keeps its name (and the `ridge_rfmw` key
    in the metric tables) for continuity.

    Args:
        seed: kept for uniformity with `LogisticRfmwBaseline` (the solver,
            Newton-Cholesky, is deterministic).
        alpha: L2 penalty on the standardised coefficients, relative to the mean
            Poisson deviance of the target scaled to mean 1 (0 = unpenalised).
        window_days: frequency window of the frequency_/monetary_avg_ columns.
    """

    def __init__(self, seed: int = 42, alpha: float = 0.01, window_days: int = 365):
        self.seed = seed
        self.alpha = alpha
        self.window_days = window_days

    def fit(self, frame: pd.DataFrame, y: Any) -> RidgeRfmwBaseline:
        """Fit on the frame's RFMW columns and a value target.

        Returns:
            self, with `pipeline_` (None when every target is 0: predictions are then
            0), `columns_` and `target_mean_` (the mean clipped target, the scale).
        """
        if self.alpha < 0:
            raise ValueError("alpha must be >= 0")
        self.columns_ = rfmw_columns(self.window_days)
        target = np.clip(_target(y, len(frame)), 0, None)
        x = _numeric(frame, self.columns_)
        self.target_mean_ = float(target.mean()) if target.size else 0.0
        if self.target_mean_ <= 0:
            self.pipeline_ = None
            return self
        self.pipeline_ = Pipeline([
            *_rfmw_steps(),
            ("model", PoissonRegressor(alpha=self.alpha, solver="newton-cholesky", max_iter=1000)),
        ])
        self.pipeline_.fit(x, target / self.target_mean_)
        return self

    def predict(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected value per row (>= 0)."""
        x = _numeric(frame, self.columns_)
        if self.pipeline_ is None:
            return np.zeros(len(x))
        return self.pipeline_.predict(x) * self.target_mean_


# --- BTYD: BG/NBD and Gamma-Gamma ---------------------------------------------------

PUBLISHED_CDNOW_BGNBD = {"r": 0.243, "alpha": 4.414, "a": 0.793, "b": 2.426}  # Fader, Hardie & Lee (2005)

# The fits search log-parameters within +-30 (parameters 1e-13 .. 1e13). A maximum on
# that edge is no estimate: the likelihood keeps rising toward a degenerate model (for
# Gamma-Gamma, e.g., when every customer has the same mean spend).
_LOG_PARAM_BOUND = 30.0
# At a maximum the gradient vanishes. Below this in every coordinate (gradient of the
# mean log-likelihood per customer with respect to the log-parameters) counts as one.
# Fits end at 1e-9 .. 2e-7, so this flags only real failures (an iteration limit, a
# search drifting along a flat ridge toward a degenerate model).
_GRADIENT_TOL = 1e-5


def btyd_inputs(frame: pd.DataFrame, time_unit_days: float = 7.0, window_days: int = 365) -> pd.DataFrame:
    """BTYD summary per row from as-of features, in time units of `time_unit_days`.

    - frequency x = repeat_purchase_days (distinct purchase days after the first);
    - recency t_x = (tenure_days - recency_days) / unit: first to last purchase day;
    - T = (tenure_days - 1) / unit: first purchase day to the last day before the
      as-of date. This is the convention of Hardie's CDNOW summary and of
      `rfm_summary` / lifetimes with the observation end set to that last day: a
      purchase on it has t_x = T. With it the label horizon [as_of, as_of + h) is
      exactly (T, T + h / unit] in model time (the day after the last observed day is
      T + 1 / unit, and so on). Measuring T to the as-of date (tenure_days / unit)
      instead moves every T one day later and the CDNOW fit off the published
      parameters (a = 0.814, b = 2.474 instead of 0.793, 2.426).
    - has_purchase: False for customers with no purchase before the as-of date (their
      tenure is null); they are summarised as brand-new (x = t_x = T = 0), which gives
      the population-level prediction.
    - spend_count / spend_mean: frequency_<w>d and monetary_avg_<w>d, the number of
      purchases in the window and their mean net amount (Gamma-Gamma input).

    Returns:
        A frame aligned with `frame` (same index).
    """
    cols = ["tenure_days", "recency_days", "repeat_purchase_days",
            f"frequency_{window_days}d", f"monetary_avg_{window_days}d"]
    num = _numeric(frame, cols)
    has = num["tenure_days"].notna().to_numpy()
    tenure = num["tenure_days"].fillna(1.0).to_numpy()
    recency_days = num["recency_days"].fillna(1.0).to_numpy()
    return pd.DataFrame(
        {
            "frequency": np.where(has, num["repeat_purchase_days"].fillna(0.0), 0.0),
            "recency": np.where(has, (tenure - recency_days) / time_unit_days, 0.0),
            "T": np.where(has, (tenure - 1.0) / time_unit_days, 0.0),
            "has_purchase": has,
            "spend_count": num[f"frequency_{window_days}d"].fillna(0.0).to_numpy(),
            "spend_mean": num[f"monetary_avg_{window_days}d"].to_numpy(),
        },
        index=frame.index,
    )


def bgnbd_p_alive(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float,
                  a: float, b: float) -> np.ndarray:
    """P(alive at T | x, t_x, T) under BG/NBD; 1 when x = 0 (death only follows a purchase)."""
    x1 = np.maximum(x, 1)
    log_odds_dead = np.log(a) - np.log(b + x1 - 1) + (r + x) * np.log((alpha + T) / (alpha + t_x))
    return np.where(x > 0, 1.0 / (1.0 + np.exp(log_odds_dead)), 1.0)


def bgnbd_expected_purchases(t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float,
                             alpha: float, a: float, b: float) -> np.ndarray:
    """E[X(T, T + t] | x, t_x, T]: Fader, Hardie & Lee (2005) equation (10)."""
    x1 = np.maximum(x, 1)
    head = (a + b + x - 1) / (a - 1)
    tail = 1 - ((alpha + T) / (alpha + T + t)) ** (r + x) * hyp2f1(
        r + x, b + x, a + b + x - 1, t / (alpha + T + t)
    )
    dead_term = np.where(x > 0, a / (b + x1 - 1) * ((alpha + T) / (alpha + t_x)) ** (r + x), 0.0)
    return head * tail / (1 + dead_term)


def bgnbd_prob_no_purchase(t: float, x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float,
                           alpha: float, a: float, b: float) -> np.ndarray:
    """P(X(T, T + t] = 0 | x, t_x, T) under BG/NBD.

    With the likelihood written as
    L = C * [B(a, b + x) (alpha + T)^-(r+x) + d B(a + 1, b + x - 1) (alpha + t_x)^-(r+x)],
    d = 1 if x > 0 else 0, the first term is "alive at T, no purchase in (t_x, T]" and
    the second "died right after purchase x". No purchase in (T, T + t] joint with the
    history is the same expression with T + t in the first term (alive, no purchase in
    (t_x, T + t]) plus the unchanged second term, so
    P = [B(a, b+x) (alpha+T+t)^-(r+x) + d B(a+1, b+x-1) (alpha+t_x)^-(r+x)] / (L / C).
    (Hardie's note 039, eq. 34 with y = 0.) Computed in logs. For x = 0 it reduces to
    ((alpha + T) / (alpha + T + t))^r. pymc-marketing 0.18's
    `expected_probability_no_purchase` leaves out d, so it differs for x = 0.
    """
    x1 = np.maximum(x, 1)
    alive_later = betaln(a, b + x) - (r + x) * np.log(alpha + T + t)
    alive_now = betaln(a, b + x) - (r + x) * np.log(alpha + T)
    dead = np.where(x > 0, betaln(a + 1, b + x1 - 1) - (r + x) * np.log(alpha + t_x), -np.inf)
    return np.exp(np.logaddexp(alive_later, dead) - np.logaddexp(alive_now, dead))


def gamma_gamma_expected_spend(count: np.ndarray, mean: np.ndarray, p: float, q: float,
                               v: float) -> np.ndarray:
    """E[spend per purchase | count purchases of mean `mean`] (Fader & Hardie 2013, eq. 5).

    A weighted average of the population mean p v / (q - 1) and the customer's own
    mean, with weight p x / (p x + q - 1) on the latter; count 0 (or no mean) gives the
    population mean.
    """
    population = p * v / (q - 1)
    known = (count > 0) & ~np.isnan(mean)
    x = np.where(known, count, 0.0)
    weight = p * x / (p * x + q - 1)
    return (1 - weight) * population + weight * np.where(known, mean, 0.0)


@dataclass(frozen=True)
class _Histories:
    """Distinct customer rows with their counts, and the distinct purchase counts among them.

    Both likelihoods split into terms of the purchase count alone (the gamma and
    digamma functions, the costly part) and elementary terms of the whole row; the
    former are evaluated once per distinct count, the latter once per distinct row.
    """

    rows: tuple[np.ndarray, ...]  # columns; the first is the purchase count
    weights: np.ndarray  # customers per row
    counts: np.ndarray  # distinct values of rows[0]
    count_index: np.ndarray  # rows[0] == counts[count_index]
    count_weights: np.ndarray  # customers per distinct count


def _histories(*columns: np.ndarray, compress: bool = True) -> _Histories:
    """Histories from per-customer columns (purchase count first), identical rows merged if `compress`."""
    if compress:
        distinct = pd.DataFrame(dict(enumerate(columns))).value_counts(sort=False)
        rows = tuple(distinct.index.get_level_values(j).to_numpy("float64") for j in range(len(columns)))
        weights = distinct.to_numpy("float64")
    else:
        rows = tuple(np.asarray(c, "float64") for c in columns)
        weights = np.ones(rows[0].size)
    counts, index = np.unique(rows[0], return_inverse=True)
    count_weights = np.bincount(index, weights=weights, minlength=counts.size)
    return _Histories(rows, weights, counts, index, count_weights)


def _bgnbd_loglik(h: _Histories, r: float, alpha: float, a: float, b: float) -> tuple[np.ndarray, np.ndarray]:
    """BG/NBD log-likelihood per row of (x, t_x, T), and the gradient of its weighted sum in (r, alpha, a, b).

    ln L = lnG(r + x) - lnG(r) + r ln alpha + lnG(a + b) + lnG(b + x) - lnG(b)
    - lnG(a + b + x) + ln[(alpha + T)^-(r+x) + d a / (b + x - 1) (alpha + t_x)^-(r+x)],
    d = 1 if x > 0 else 0. The bracket adds "alive at T" and "died right after
    purchase x"; the derivative of its log weights each branch's derivative by the
    branch's share of the bracket.
    """
    xs = h.counts
    x, t_x, T = h.rows
    # Terms of x alone, per distinct x.
    count_ll = (gammaln(r + xs) - gammaln(r) + r * np.log(alpha) + gammaln(a + b) + gammaln(b + xs)
                - gammaln(b) - gammaln(a + b + xs))
    psi_abx = digamma(a + b + xs)
    count_grad = np.column_stack([
        digamma(r + xs) - digamma(r) + np.log(alpha),
        np.full(xs.size, r / alpha),
        digamma(a + b) - psi_abx,
        digamma(a + b) + digamma(b + xs) - digamma(b) - psi_abx,
    ])
    # ln(a / (b + x - 1)) where the dropout branch exists (x > 0); -inf removes it for x = 0.
    dropout_odds = np.full(xs.size, -np.inf)
    dropout_odds[xs > 0] = np.log(a) - np.log(b + xs[xs > 0] - 1)
    # The bracket, per row.
    log_T, log_t = np.log(alpha + T), np.log(alpha + t_x)
    log_alive = -(r + x) * log_T
    log_dead = dropout_odds[h.count_index] - (r + x) * log_t
    log_mix = np.logaddexp(log_alive, log_dead)
    alive = h.weights * np.exp(log_alive - log_mix)  # customers x the branch's share
    dead = h.weights * np.exp(log_dead - log_mix)
    dead_per_count = np.bincount(h.count_index, weights=dead, minlength=xs.size)
    with np.errstate(divide="ignore"):  # x = 0 has no dropout branch: its weight is 0
        inv_b_x = np.where(xs > 0, 1 / (b + np.maximum(xs, 1) - 1), 0.0)
    grad = h.count_weights @ count_grad + np.array([
        -(alive @ log_T) - dead @ log_t,
        -((alive / (alpha + T) + dead / (alpha + t_x)) @ (r + x)),
        dead_per_count.sum() / a,
        -(dead_per_count @ inv_b_x),
    ])
    return count_ll[h.count_index] + log_mix, grad


def _gamma_gamma_loglik(h: _Histories, p: float, q: float, v: float) -> tuple[np.ndarray, np.ndarray]:
    """Gamma-Gamma log-likelihood per row of (x, m), and the gradient of its weighted sum in (p, q, v).

    For x purchases of mean spend m: ln L = lnG(p x + q) - lnG(p x) - lnG(q) + q ln v
    + (p x - 1) ln m + p x ln x - (p x + q) ln(v + m x).
    """
    xs = h.counts
    x, m = h.rows
    # Terms of x alone, per distinct x.
    pxs = p * xs
    psi_pxq = digamma(pxs + q)
    count_ll = gammaln(pxs + q) - gammaln(pxs) - gammaln(q) + q * np.log(v) + pxs * np.log(xs)
    count_grad = np.column_stack([
        xs * (psi_pxq - digamma(pxs) + np.log(xs)),
        psi_pxq - digamma(q) + np.log(v),
        np.full(xs.size, q / v),
    ])
    # The rest, per row.
    px = p * x
    log_m, log_pooled = np.log(m), np.log(v + m * x)
    w = h.weights
    grad = h.count_weights @ count_grad + np.array([
        (w * x) @ (log_m - log_pooled),
        -(w @ log_pooled),
        -((w * (px + q)) @ (1 / (v + m * x))),
    ])
    return count_ll[h.count_index] + (px - 1) * log_m - (px + q) * log_pooled, grad


def bgnbd_log_likelihood(x: np.ndarray, t_x: np.ndarray, T: np.ndarray, r: float, alpha: float,
                         a: float, b: float) -> np.ndarray:
    """Per-customer BG/NBD log-likelihood of (x repeat purchases, recency t_x, age T).

    Fader, Hardie & Lee (2005), "Counting your customers the easy way".
    """
    return _bgnbd_loglik(_histories(x, t_x, T, compress=False), r, alpha, a, b)[0]


def gamma_gamma_log_likelihood(count: np.ndarray, mean: np.ndarray, p: float, q: float,
                               v: float) -> np.ndarray:
    """Per-customer Gamma-Gamma log-likelihood of a mean spend over `count` purchases.

    Fader, Hardie & Lee (2005), "RFM and CLV: using iso-value curves for customer base
    analysis" (the density of the mean, the customer's spend scale integrated out).
    """
    return _gamma_gamma_loglik(_histories(count, mean, compress=False), p, q, v)[0]


def _maximise_likelihood(
    loglik: Callable[..., tuple[np.ndarray, np.ndarray]],
    histories: _Histories,
    start: dict[str, float],
    model: str,
) -> dict[str, float]:
    """Maximum-likelihood parameters of `loglik` over `histories`.

    Minimises the mean negative log-likelihood per customer over the log-parameters
    (so every parameter stays positive, and rescaling time or money only shifts the
    log-parameters) with L-BFGS-B and the analytic gradient.

    Raises:
        ValueError: when the optimiser ends away from a maximum (gradient not ~0) or
            on the edge of the search box.
    """
    total = float(histories.weights.sum())

    def objective(log_params: np.ndarray) -> tuple[float, np.ndarray]:
        params = np.exp(log_params)
        ll, grad = loglik(histories, *params)
        return -float(histories.weights @ ll) / total, -grad * params / total

    bound = (-_LOG_PARAM_BOUND, _LOG_PARAM_BOUND)
    # One BLAS thread: L-BFGS-B (scipy >= 1.15) and the dot products over all rows make
    # many small BLAS calls, and OpenBLAS waking its threads for each one slowed a fit
    # of 131k customers from 0.2 s to 1.6 s with the two cores shared (scipy issue
    # 22438). A trial step may overflow; the line search then backs off.
    # Stopping: a step that lowers the mean negative log-likelihood by less than 1e-12
    # of itself ends the search. Estimates then agree with those of ftol = 1e-15 to 2e-6
    # in the log-parameters (CDNOW, the sample world, simulations; gradient <= 2e-7),
    # and the fit takes 18-23 evaluations instead of up to 62, which the tighter setting
    # spends on line searches at the limit of double precision.
    with threadpool_limits(limits=1, user_api="blas"), np.errstate(all="ignore"):
        result = minimize(objective, np.log(list(start.values())), jac=True, method="L-BFGS-B",
                          bounds=[bound] * len(start),
                          options={"maxiter": 2000, "ftol": 1e-12, "gtol": 1e-9})
    params = dict(zip(start, np.exp(result.x).tolist()))
    gradient = float(np.max(np.abs(result.jac))) if np.isfinite(result.jac).all() else np.inf
    log.debug("%s: %d iterations, %d evaluations, max |gradient| %.1e, %s", model, result.nit, result.nfev,
              gradient, result.message)
    on_edge = [k for k, lp in zip(start, result.x) if abs(lp) >= _LOG_PARAM_BOUND - 1e-3]
    if not np.isfinite(result.fun) or gradient > _GRADIENT_TOL or on_edge:
        detail = (f"{', '.join(on_edge)} ran off to {params[on_edge[0]]:.3g}" if on_edge
                  else f"gradient {gradient:.2g} after {result.nit} iterations")
        raise ValueError(
            f"{model} fit found no maximum of the likelihood ({detail}); the histories do not pin "
            "the parameters down: fit on more customers, or check for inputs that are all alike"
        )
    return params


def _finite_columns(**columns: np.ndarray) -> list[np.ndarray]:
    out = [np.asarray(c, "float64").ravel() for c in columns.values()]
    if len({c.size for c in out}) > 1:
        raise ValueError(f"{', '.join(columns)} must have the same length")
    if not all(np.isfinite(c).all() for c in out):
        raise ValueError(f"{', '.join(columns)} must be finite (no missing values)")
    return out


def fit_bgnbd(x: np.ndarray, t_x: np.ndarray, T: np.ndarray) -> dict[str, float]:
    """BG/NBD maximum-likelihood parameters from per-customer histories.

    Customers with the same (x, t_x, T) share a likelihood term, so the fit runs over
    the distinct histories weighted by their counts.

    Args:
        x: repeat purchases per customer.
        t_x: time of the last purchase, from the first (0 when x = 0).
        T: time from the first purchase to the end of observation (>= t_x).

    Returns:
        {"r", "alpha", "a", "b"}.
    """
    x, t_x, T = _finite_columns(x=x, t_x=t_x, T=T)
    if (x < 0).any() or (t_x < 0).any() or (T < t_x).any():
        raise ValueError("BG/NBD histories need x >= 0 and 0 <= t_x <= T")
    if not (x > 0).any():
        raise ValueError("BG/NBD needs customers with repeat purchases; no history has one")
    histories = _histories(x, t_x, T)
    # Start at a = b = 1 and a purchase rate r / alpha equal to the pooled observed rate.
    alpha = float(T.sum() / x.sum())
    return _maximise_likelihood(_bgnbd_loglik, histories, {"r": 1.0, "alpha": alpha, "a": 1.0, "b": 1.0},
                                "BG/NBD")


def fit_gamma_gamma(count: np.ndarray, mean: np.ndarray) -> dict[str, float]:
    """Gamma-Gamma maximum-likelihood parameters from per-customer purchase counts and mean spends.

    Args:
        count: purchases per customer (> 0).
        mean: their mean spend (> 0).

    Returns:
        {"p", "q", "v"}.
    """
    count, mean = _finite_columns(count=count, mean=mean)
    if (count <= 0).any() or (mean <= 0).any():
        raise ValueError("Gamma-Gamma needs purchase counts and mean spends > 0")
    # Start at p = 1, q = 2, where the population mean spend p v / (q - 1) is v: the mean.
    return _maximise_likelihood(_gamma_gamma_loglik, _histories(count, mean),
                                {"p": 1.0, "q": 2.0, "v": float(mean.mean())}, "Gamma-Gamma")


class BtydBaseline:
    """BG/NBD purchases, P(alive) and churn, and Gamma-Gamma spend, by maximum likelihood.

    Fitted by `fit_bgnbd` and `fit_gamma_gamma` (L-BFGS-B on the log-parameters with
    analytic gradients, over distinct histories), which need only numpy and scipy;
    tests/test_baselines.py checks them against pymc-marketing's MAP with flat priors.
    Predictions use the closed forms in this module with the fitted parameters
    (`params_`).

    Inputs come from the feature frame (see `btyd_inputs`). BG/NBD is fitted on every
    customer with a purchase before the as-of date; customers without one get the
    population-level (brand-new customer) prediction. Gamma-Gamma is fitted on
    customers with at least one repeat purchase day, with spend per purchase =
    monetary_avg_<w>d averaged over frequency_<w>d purchases. That approximates the
    model's "mean value of repeat transactions": it includes the first purchase and
    covers only the last w days, and a purchase is a customer-day's net amount. On
    CDNOW weeks 1-39 it gives p = 7.94, q = 3.96, v = 13.15 (mean spend $35.29) where
    the repeat-only mean gives the published p = 6.25, q = 3.74, v = 15.44 ($35.18).

    Each row is one customer history; fit on one snapshot (one as-of date).

    Args:
        horizon_days: prediction horizon in days (the label window length).
        time_unit_days: days per model time unit (7 = weeks, as in the BTYD papers).
        window_days: frequency window of the frequency_/monetary_avg_ columns.
    """

    def __init__(self, horizon_days: int, time_unit_days: float = 7.0, window_days: int = 365):
        self.horizon_days = horizon_days
        self.time_unit_days = time_unit_days
        self.window_days = window_days

    def fit(self, frame: pd.DataFrame, y: Any = None) -> BtydBaseline:
        """Fit BG/NBD and Gamma-Gamma on the frame's purchase histories.

        Args:
            frame: feature frame from `build_features`.
            y: ignored (the models learn from the histories); accepted for uniformity.

        Returns:
            self, with `params_` (r, alpha, a, b, p, q, v) and `n_fit_` (customers in
            each fit).
        """
        if self.horizon_days <= 0 or self.time_unit_days <= 0:
            raise ValueError("horizon_days and time_unit_days must be positive")
        data = btyd_inputs(frame, self.time_unit_days, self.window_days)
        buyers = data[data["has_purchase"]]
        if len(buyers) == 0:
            raise ValueError("no customer has a purchase before the as-of date; nothing to fit")
        spenders = buyers[(buyers["frequency"] > 0) & (buyers["spend_count"] > 0) & (buyers["spend_mean"] > 0)]
        if len(spenders) < 2:
            raise ValueError("Gamma-Gamma needs at least two customers with repeat purchases")
        params = fit_bgnbd(buyers["frequency"].to_numpy(), buyers["recency"].to_numpy(), buyers["T"].to_numpy())
        params |= fit_gamma_gamma(spenders["spend_count"].to_numpy(), spenders["spend_mean"].to_numpy())
        if params["q"] <= 1:
            raise ValueError(
                f"Gamma-Gamma fit gave q = {params['q']:.3f} <= 1, so mean spend is undefined; "
                "check monetary_avg values (a few extreme spends?)"
            )
        self.params_ = params
        self.n_fit_ = {"bgnbd": len(buyers), "gamma_gamma": len(spenders)}
        log.info("BTYD fit on %d customers (%d with repeat purchases): %s",
                 len(buyers), len(spenders), {k: round(v, 4) for k, v in params.items()})
        return self

    def _summary(self, frame: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, float]]:
        data = btyd_inputs(frame, self.time_unit_days, self.window_days)
        bg = {k: self.params_[k] for k in ("r", "alpha", "a", "b")}
        return data, bg

    @property
    def _horizon_units(self) -> float:
        return self.horizon_days / self.time_unit_days

    def p_alive(self, frame: pd.DataFrame) -> np.ndarray:
        """P(the customer is still alive at the as-of date) per row."""
        d, bg = self._summary(frame)
        return bgnbd_p_alive(d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy(), **bg)

    def predict_churn(self, frame: pd.DataFrame) -> np.ndarray:
        """P(no purchase in the next horizon_days) per row (see `bgnbd_prob_no_purchase`)."""
        d, bg = self._summary(frame)
        return bgnbd_prob_no_purchase(
            self._horizon_units, d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy(), **bg
        )

    def predict_purchases(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected purchases (purchase days) in the next horizon_days per row."""
        d, bg = self._summary(frame)
        return bgnbd_expected_purchases(
            self._horizon_units, d["frequency"].to_numpy(), d["recency"].to_numpy(), d["T"].to_numpy(), **bg
        )

    def predict_spend(self, frame: pd.DataFrame) -> np.ndarray:
        """Gamma-Gamma expected spend per purchase per row.

        Customers without a repeat purchase get the population mean p v / (q - 1), as
        the model is fitted on repeat buyers only.
        """
        d, _ = self._summary(frame)
        count = np.where(d["frequency"] > 0, d["spend_count"], 0.0)
        return gamma_gamma_expected_spend(
            count, d["spend_mean"].to_numpy(), self.params_["p"], self.params_["q"], self.params_["v"]
        )

    def predict_value(self, frame: pd.DataFrame) -> np.ndarray:
        """Expected spend in the next horizon_days: expected purchases x expected spend each."""
        return self.predict_purchases(frame) * self.predict_spend(frame)
